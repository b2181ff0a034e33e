/* Prints the file of the shared object whose malloc this process calls:
 * run.sh checks that each LD_PRELOAD really took over (glibc's run must
 * name libc). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    Dl_info info;
    void *p = malloc(1);
    if (dladdr((void *)(uintptr_t)&malloc, &info) == 0 || info.dli_fname == NULL) {
        printf("unknown\n");
        return 1;
    }
    printf("%s\n", info.dli_fname);
    free(p);
    return 0;
}
