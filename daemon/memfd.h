/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memfd allocator: sealed anonymous memory that can be handed out safely.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* What Create (and CreateMemfd) asks for, all of it: the kind's allocator
 * reads what makes the kernel object, broker_create() the rest. A new
 * option is a field here (zero must mean "not given"), a row in the create
 * methods' option table and its use. */
typedef struct CreateRequest {
        const char *kind;               /* BB_KIND_MEMFD, _POSIX, _SYSV or _FILE
                                         * (NULL: memfd) */
        const char *name;
        uint64_t size;
        bool persistent;                /* lives on with no holder */
        uint64_t ttl_usec;              /* 0: no expiry */
        unsigned count;                 /* buffers alike, all or none (0: 1);
                                         * at most BB_CREATE_BATCH_MAX */
        bool hugetlb;                   /* huge pages (hugetlbfs), size a multiple
                                         * of memfd_huge_page_size() */
        bool prefault;                  /* every page allocated before the reply */
} CreateRequest;

/* The size of the huge pages a hugetlb memfd gets (the kernel's default
 * huge page size), as the kernel tells it; -EOPNOTSUPP when it has none. */
int64_t memfd_huge_page_size(void);

/* A memfd of exactly @req->size bytes named "bufbroker:@req->name"
 * (truncated to what memfd_create() takes), O_RDWR|O_CLOEXEC,
 * non-executable where the kernel supports MFD_NOEXEC_SEAL, sealed against
 * shrinking and growing. With @req->hugetlb its huge pages are reserved (and
 * with @req->prefault allocated) before it is returned: -ENOSPC when there
 * are not enough of them (or, prefaulting, not enough memory); -EOPNOTSUPP
 * when the kernel has no huge pages or cannot seal them. */
int memfd_new_sealed(const CreateRequest *req, int *ret_fd);

/* Seal against writes: -EBUSY while writable shared mappings exist (or a
 * holder sealed the seals), -EALREADY when already write-sealed. */
int memfd_freeze(int fd);

/* A new, independent open of the same file (O_CLOEXEC is added). Every
 * holder gets its own open file description, so one holder's fcntl flags
 * (O_APPEND, O_NONBLOCK) or file offset never reach another. With O_RDONLY
 * the fd cannot be mapped writable, written, truncated or sealed. */
int fd_reopen(int fd, int flags);

/* Make fd_reopen() cheaper for the life of the process: one more fd, kept
 * until fd_reopen_dir_close(). */
void fd_reopen_dir_open(void);
void fd_reopen_dir_close(void);
