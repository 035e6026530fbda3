/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memfd allocator: sealed anonymous memory that can be handed out safely.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* What CreateMemfd asks for, all of it: the allocator reads what makes the
 * memfd, broker_create_memfd() the rest. A new option is a field here (zero
 * must mean "not given"), a row in CreateMemfd's option table and its use. */
typedef struct MemfdRequest {
        const char *name;
        uint64_t size;
        bool persistent;                /* lives on with no holder */
        uint64_t ttl_usec;              /* 0: no expiry */
        unsigned count;                 /* buffers alike, all or none (0: 1);
                                         * at most BB_CREATE_BATCH_MAX */
} MemfdRequest;

/* A memfd of exactly @req->size bytes named "bufbroker:@req->name"
 * (truncated to what memfd_create() takes), O_RDWR|O_CLOEXEC,
 * non-executable where the kernel supports MFD_NOEXEC_SEAL, sealed against
 * shrinking and growing. */
int memfd_new_sealed(const MemfdRequest *req, int *ret_fd);

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
