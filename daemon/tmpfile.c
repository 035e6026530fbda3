/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Disk-backed buffers: O_TMPFILE files in the directory of --file-dir.
 *
 * O_EXCL matters: without it, anyone holding a descriptor could give the
 * file a name with linkat("/proc/self/fd/N", AT_SYMLINK_FOLLOW) in any
 * directory they may write to on the same filesystem, and the file would
 * outlive its buffer: disk space the daemon no longer counts. With O_EXCL
 * the kernel refuses every link (ENOENT); reopening through /proc/self/fd
 * still works, and each holder gets its own open as with memfds.
 *
 * The files are not sealable: a holder with a writable descriptor can
 * resize one (the size guard in lease.c puts it back) or allocate blocks
 * past its end (fallocate with FALLOC_FL_KEEP_SIZE), which an ftruncate to
 * the same size gives back on ext4, xfs and tmpfs.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "tmpfile.h"

/* What openat(O_TMPFILE) says when the filesystem makes no unnamed files:
 * EOPNOTSUPP, or EISDIR from a kernel before 3.11 (O_TMPFILE contains
 * O_DIRECTORY, which it took for a plain open of the directory). */
static bool tmpfile_unsupported(int error) {
        return error == EOPNOTSUPP || error == EISDIR;
}

static int open_unnamed(int dir_fd) {
        int fd = openat(dir_fd, ".", O_TMPFILE | O_EXCL | O_RDWR | O_CLOEXEC | O_NOCTTY, 0600);

        if (fd >= 0)
                return fd;
        if (tmpfile_unsupported(errno))
                return -EOPNOTSUPP;
        /* ENOSPC: no inode left; EDQUOT: the daemon's disk quota. */
        if (errno == ENOSPC || errno == EDQUOT)
                return -ENOSPC;
        return negative_errno();
}

int tmpfile_dir_open(const char *path, bool create) {
        _cleanup_close_ int fd = -1, probe = -1;
        struct statfs sfs;
        struct stat st;

        if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
                return log_error_errno(negative_errno(), "cannot create the directory for file buffers %s", path);

        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(negative_errno(), "cannot open the directory for file buffers %s", path);
        if (fstat(fd, &st) < 0)
                return log_error_errno(negative_errno(), "cannot stat %s", path);

        /* The files in it have no names, so no one reaches them through the
         * directory; but one that others own or may write to is not the
         * daemon's own (--file-dir=/tmp, say): its owner could change its
         * mode or take it away, and others fill the same space. Better
         * refused at start than found out later. */
        if (st.st_uid != geteuid()) {
                log_error("the directory for file buffers %s belongs to uid %u, not to the daemon's uid %u: "
                          "file buffers are off",
                          path, (unsigned) st.st_uid, (unsigned) geteuid());
                return -EPERM;
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
                log_error("the directory for file buffers %s is writable by %s (mode %04o): file buffers are off",
                          path, st.st_mode & S_IWOTH ? "others" : "its group", (unsigned) (st.st_mode & 07777));
                return -EPERM;
        }

        /* Find out now whether the filesystem makes unnamed files, rather
         * than at every Create. */
        probe = open_unnamed(fd);
        if (probe == -EOPNOTSUPP) {
                unsigned long type = fstatfs(fd, &sfs) >= 0 ? (unsigned long) sfs.f_type : 0;

                log_error("the filesystem of %s (type 0x%lx) cannot make unnamed files (O_TMPFILE): file buffers are off",
                          path, type);
                return -EOPNOTSUPP;
        }
        if (probe < 0)
                return log_error_errno(probe, "cannot make a file in %s: file buffers are off", path);

        return TAKE_FD(fd);
}

int tmpfile_new(int dir_fd, uint64_t size, bool prefault, int *ret_fd) {
        _cleanup_close_ int fd = -1;

        if ((uint64_t) (off_t) size != size || (off_t) size < 0)
                return -EFBIG;

        fd = open_unnamed(dir_fd);
        if (fd < 0)
                return fd;

        /* The mode asked for is 0600 less the umask, and a default ACL on
         * the directory would add entries: set it, which also sets the ACL
         * mask to none. Only the daemon's uid may then reopen the file by
         * /proc/PID/fd/N, so a read-only holder cannot make its descriptor
         * a writable one. */
        if (fchmod(fd, 0600) < 0)
                return negative_errno();

        if (ftruncate(fd, (off_t) size) < 0)
                return negative_errno();        /* EFBIG: more than a file there can be */

        if (prefault && fallocate(fd, 0, 0, (off_t) size) < 0)
                /* What was allocated goes back when fd closes, below. */
                return errno == ENOSPC || errno == EDQUOT ? -ENOSPC : negative_errno();

        *ret_fd = TAKE_FD(fd);
        return 0;
}

int tmpfile_allocated_bytes(int fd, uint64_t *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        *ret = (uint64_t) st.st_blocks * 512;
        return 0;
}
