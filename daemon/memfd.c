/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * memfd allocator. Seals are what make a shared buffer safe to map: with
 * F_SEAL_SHRINK no holder can truncate the file under another holder's
 * mapping (which would SIGBUS the victim on access), with F_SEAL_GROW no
 * holder can make the daemon account for less than it hands out.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "memfd.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

/* memfd_create() accepts names up to 249 bytes (NAME_MAX minus "memfd:"). */
#define MEMFD_NAME_MAX 249

int memfd_new_sealed(const MemfdRequest *req, int *ret_fd) {
        _cleanup_close_ int fd = -1;
        char full[MEMFD_NAME_MAX + 1];
        int reopened;
        uint64_t size = req->size;

        if ((uint64_t) (off_t) size != size || (off_t) size < 0)
                return -EFBIG;

        snprintf(full, sizeof(full), "bufbroker:%s", req->name);

        fd = memfd_create(full, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
        if (fd < 0 && errno == EINVAL)
                /* Kernels before 6.3 do not know MFD_NOEXEC_SEAL. */
                fd = memfd_create(full, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return negative_errno();

        /* memfds start out mode 0777 (0666 with MFD_NOEXEC_SEAL). Anyone who
         * has an fd can reopen /proc/self/fd/N with the inode's permissions,
         * which would turn a read-only share into a writable one: only the
         * daemon's own uid may open the inode by path. */
        if (fchmod(fd, 0600) < 0)
                return negative_errno();

        if (ftruncate(fd, (off_t) size) < 0)
                return negative_errno();

        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
                return negative_errno();

        /* Keep a description that open(2) made, not memfd_create()'s: the
         * kernel counts the former among the inode's writers and the latter
         * not, and lease.c asks whether the daemon's is the only writer. */
        reopened = fd_reopen(fd, O_RDWR);
        if (reopened < 0)
                return reopened;

        *ret_fd = reopened;
        return 0;
}

int memfd_freeze(int fd) {
        int seals;

        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return negative_errno();
        if (seals & F_SEAL_WRITE)
                return -EALREADY;

        /* The kernel refuses F_SEAL_WRITE with EBUSY while a writable shared
         * mapping exists: freezing would otherwise be a lie. */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) < 0)
                /* EPERM: a writable holder added F_SEAL_SEAL on its own. */
                return errno == EPERM ? -EBUSY : negative_errno();

        return 0;
}

/* /proc/self/fd, kept open by the daemon (fd_reopen_dir_open()): a
 * reopen then looks up one name in it instead of walking /proc/self/fd/N
 * from the root (open + close of a memfd: 2.6-5.1 us instead of 6.2-7.0 us
 * here, and the daemon reopens twice per buffer it creates). The daemon
 * never forks, so "self" stays this process. Without it (tests, or the
 * directory cannot be opened), the full path. */
static int proc_fd_dir = -1;

void fd_reopen_dir_open(void) {
        if (proc_fd_dir < 0)
                proc_fd_dir = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

void fd_reopen_dir_close(void) {
        proc_fd_dir = safe_close(proc_fd_dir);
}

int fd_reopen(int fd, int flags) {
        char path[sizeof("/proc/self/fd/") + 12];
        int r;

        if (proc_fd_dir >= 0) {
                snprintf(path, sizeof(path), "%i", fd);
                r = openat(proc_fd_dir, path, flags | O_CLOEXEC | O_NOCTTY);
        } else {
                snprintf(path, sizeof(path), "/proc/self/fd/%i", fd);
                r = open(path, flags | O_CLOEXEC | O_NOCTTY);
        }
        if (r < 0)
                return negative_errno();
        return r;
}
