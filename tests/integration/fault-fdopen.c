/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LD_PRELOAD shim for test-fdstore.c: fdopen() for writing fails with
 * ENOMEM. glibc's fdopen fails only when malloc does, which no test can
 * bring about inside the daemon otherwise; reading (the restore) is left
 * alone.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>

FILE *fdopen(int fd, const char *mode) {
        static FILE *(*real_fdopen)(int, const char *);

        if (mode && mode[0] == 'w') {
                errno = ENOMEM;
                return NULL;
        }
        if (!real_fdopen)
                real_fdopen = (FILE * (*)(int, const char *)) dlsym(RTLD_NEXT, "fdopen");
        return real_fdopen(fd, mode);
}
