# Read by cpack before each generator runs (CPACK_PROJECT_CONFIG_FILE, set in
# scallocPackaging.cmake), with CPACK_GENERATOR naming that generator.

if(CPACK_GENERATOR STREQUAL "DEB")
    # CPackDeb puts CPACK_PACKAGE_DESCRIPTION_SUMMARY in front of each
    # component's description; ours start with their own summary line, so
    # that the runtime and -dev packages are told apart in `apt search`.
    unset(CPACK_PACKAGE_DESCRIPTION_SUMMARY)
endif()
