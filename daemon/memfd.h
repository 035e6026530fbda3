/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memfd allocator: sealed anonymous memory that can be handed out safely.
 */
#pragma once

#include <stdint.h>

/* A memfd of exactly @size bytes named "bufbroker:@name" (truncated to what
 * memfd_create() takes), O_RDWR|O_CLOEXEC, non-executable where the kernel
 * supports MFD_NOEXEC_SEAL, sealed against shrinking and growing. */
int memfd_new_sealed(const char *name, uint64_t size, int *ret_fd);

/* Seal against writes: -EBUSY while writable shared mappings exist,
 * -EALREADY when already write-sealed. */
int memfd_freeze(int fd);

/* A new, independent O_RDONLY open of the same memory: it cannot be mapped
 * writable, written, truncated or sealed by whoever receives it. */
int fd_reopen_read_only(int fd);
