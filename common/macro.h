/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers shared by the daemon, the library and the tests: cleanup
 * attributes, ownership transfer and a few size macros. Destructors used with
 * _cleanup_ take NULL (or a negative fd) and do nothing then.
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((__cleanup__(f)))
#define _unused_ __attribute__((__unused__))
#define _printf_(a, b) __attribute__((__format__(printf, a, b)))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

/* Hand a pointer or fd out of a _cleanup_ variable: returns it, leaves NULL/-1. */
#define TAKE_PTR(p)                                     \
        ({                                              \
                __typeof__(p) *_pp_ = &(p);             \
                __typeof__(p) _p_ = *_pp_;              \
                *_pp_ = NULL;                           \
                _p_;                                    \
        })
#define TAKE_FD(fd)                                     \
        ({                                              \
                int *_pfd_ = &(fd);                     \
                int _fd_ = *_pfd_;                      \
                *_pfd_ = -1;                            \
                _fd_;                                   \
        })

/* Define "void namep(type **p)" that calls func(*p) when *p is not NULL.
 * Unused is fine: clang warns about unused static inline functions in .c
 * files, gcc does not. */
#define DEFINE_POINTER_CLEANUP(type, func)              \
        static inline _unused_ void func##p(type **p) { \
                if (*p)                                 \
                        func(*p);                       \
        }

/* Close an fd, keeping errno; returns -1 so that "fd = safe_close(fd);" works. */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -1;
}

static inline void closep(int *fd) {
        safe_close(*fd);
}

static inline void freep(void *p) {
        free(*(void **) p);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* errno of a failed libc call as a negative value, never 0. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* A copy of @n bytes at @p (malloc(0) may be NULL: callers check n > 0). */
static inline void *memdup(const void *p, size_t n) {
        void *q = malloc(n);
        return q ? memcpy(q, p, n) : NULL;
}
