# Binary packages, built with `cpack` from a configured build directory:
#
#   libscalloc0_<version>_<arch>.deb     runtime: libscalloc.so.0 (SONAME) and
#                                        the versioned file it links to
#   libscalloc-dev_<version>_<arch>.deb  development: headers (scalloc.h,
#                                        scalloc.hpp), libscalloc.so,
#                                        libscalloc.a, scalloc.pc, the CMake
#                                        package; depends on libscalloc0 of
#                                        exactly the same version
#   scalloc-<version>-Linux.tar.gz       everything, relocatable: unpack
#                                        anywhere
#
# The Debian names follow the policy for shared libraries (runtime package
# named after the SONAME, -dev package unversioned), so a future
# libscalloc1 can be installed beside libscalloc0. The two install
# components ("runtime", "development") are set on the install() rules in
# the top-level CMakeLists.txt.

set(CPACK_PACKAGE_NAME "scalloc")
set(CPACK_PACKAGE_VENDOR "scalloc")
# A placeholder until the project has a public address: Debian requires a
# Maintainer field.
set(CPACK_PACKAGE_CONTACT "scalloc maintainers <scalloc@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_VERSION_MAJOR "${PROJECT_VERSION_MAJOR}")
set(CPACK_PACKAGE_VERSION_MINOR "${PROJECT_VERSION_MINOR}")
set(CPACK_PACKAGE_VERSION_PATCH "${PROJECT_VERSION_PATCH}")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_RESOURCE_FILE_README "${PROJECT_SOURCE_DIR}/README.md")

if(NOT CPACK_GENERATOR)
    set(CPACK_GENERATOR "DEB;TGZ")
endif()
# Packages land in <build>/packages, not among the build's own files.
if(NOT CPACK_PACKAGE_DIRECTORY)
    set(CPACK_PACKAGE_DIRECTORY "${PROJECT_BINARY_DIR}/packages")
endif()
# Only the two components: nothing else (tests, examples, benchmarks) has
# install rules, and anything added later without a component must not slip
# into a package unnoticed.
set(CPACK_COMPONENTS_ALL runtime development)
set(CPACK_COMPONENT_RUNTIME_DISPLAY_NAME "scalloc shared library")
set(CPACK_COMPONENT_DEVELOPMENT_DISPLAY_NAME "scalloc headers and development files")
set(CPACK_COMPONENT_DEVELOPMENT_DEPENDS runtime)

# --- Debian -----------------------------------------------------------------
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(SCALLOC_DEB_RUNTIME "libscalloc${PROJECT_VERSION_MAJOR}")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME "${SCALLOC_DEB_RUNTIME}")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
# The first line is the package's summary (cmake/scallocCPackOptions.cmake
# keeps CPack from putting the project's summary in front of it).
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION
    "explicit isolated heaps for C and C++ (shared library)
scalloc gives a program explicit, isolated heaps: create one per subsystem,
request or tenant, allocate and free from any thread, and drop a whole heap
at once. It never replaces malloc.

This package holds the shared library.")
# Depends on the libc the library was linked against, as dpkg-shlibdeps
# reads it from the ELF file (needs dpkg-dev).
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
# A shlibs file, so that packages built against libscalloc0 get a
# dependency on it from dpkg-shlibdeps in turn. 0.x releases promise
# nothing across versions: depend on at least the version built against.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")

set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME "libscalloc-dev")
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEVELOPMENT_DESCRIPTION
    "explicit isolated heaps for C and C++ (development files)
scalloc gives a program explicit, isolated heaps: create one per subsystem,
request or tenant, allocate and free from any thread, and drop a whole heap
at once. It never replaces malloc.

This package holds the C header scalloc.h, the header-only C++17 layer
scalloc.hpp (RAII heap, STL allocator, std::pmr resource), the static
library, scalloc.pc for pkg-config and the CMake package for
find_package(scalloc).")
# The -dev files name the exact runtime they were built with (the
# libscalloc.so link, the CMake targets' file names): same version only.
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS "${SCALLOC_DEB_RUNTIME} (= ${PROJECT_VERSION})")
# Building against the archive or the shared library needs pthreads, which
# are part of libc6-dev.
string(APPEND CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS ", libc6-dev")

# Per-generator settings cpack reads before each generator runs.
set(CPACK_PROJECT_CONFIG_FILE "${CMAKE_CURRENT_LIST_DIR}/scallocCPackOptions.cmake")

# --- tar.gz -----------------------------------------------------------------
# One archive with both components, unpacked under scalloc-<version>-Linux/.
set(CPACK_ARCHIVE_COMPONENT_INSTALL OFF)

include(CPack)
