/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Disk-backed buffers (kind "file"): unnamed files (O_TMPFILE) in one
 * directory the daemon opens at start (--file-dir). A file has no name, so
 * nobody reaches it but through a descriptor, and its blocks go back to the
 * filesystem when the last descriptor closes: nothing to unlink, nothing
 * left behind by a crash.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Open @path as the directory of file buffers and return an fd to it
 * (O_CLOEXEC), after checking that the daemon alone controls it (owned by
 * its uid, no write permission for group or others) and that its
 * filesystem makes unnamed files. With @create, a missing last component is
 * made (mode 0700). Logs why it refuses: -EPERM (owner, mode), -EOPNOTSUPP
 * (no O_TMPFILE on that filesystem), -EROFS, or open(2)'s error. */
int tmpfile_dir_open(const char *path, bool create);

/* A new unnamed file of exactly @size bytes in @dir_fd, O_RDWR|O_CLOEXEC,
 * mode 0600, that can never be given a name (O_EXCL): sparse, or with every
 * block allocated when @prefault. -ENOSPC when the filesystem (or the
 * daemon's disk quota) has not the room to prefault or no inode left,
 * -EOPNOTSUPP when it makes no unnamed files (or, prefaulting, cannot
 * allocate ahead), -EFBIG when @size is more than a file there can be.
 * *ret_fd is left alone on failure. */
int tmpfile_new(int dir_fd, uint64_t size, bool prefault, int *ret_fd);

/* What the filesystem has allocated for the file of @fd now, in bytes
 * (st_blocks * 512: a sparse file's holes count nothing). */
int tmpfile_allocated_bytes(int fd, uint64_t *ret);
