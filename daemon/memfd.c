/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * memfd allocator. Seals are what make a shared buffer safe to map: with
 * F_SEAL_SHRINK no holder can truncate the file under another holder's
 * mapping (which would SIGBUS the victim on access), with F_SEAL_GROW no
 * holder can make the daemon account for less than it hands out.
 *
 * Huge pages (MFD_HUGETLB) take the same seals (hugetlbfs supports them
 * since Linux 4.16; before that memfd_create() refuses the combination, and
 * so do we: an unsealed buffer is never handed out). A hugetlbfs file gets
 * its pages at fault time, and a fault with no free huge page is SIGBUS:
 * so the daemon maps the whole file once, shared, which makes the kernel
 * reserve every page for the inode (the reservation outlives the mapping
 * and goes with the file, HugePages_Rsvd in /proc/meminfo), and refuses
 * when the pages are not there. A prefault allocates the pages instead
 * (fallocate(2)): on shmem they are charged to the daemon's memory cgroup.
 */
#include <fcntl.h>
#include <linux/falloc.h>
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

/* What memfd_create(MFD_HUGETLB) says when the kernel cannot: no
 * hugetlbfs (ENOSYS), or no sealing on it (EINVAL, before 4.16). */
static int hugetlb_errno(int error) {
        return error == EINVAL || error == ENOSYS || error == ENODEV || error == ENOENT ? -EOPNOTSUPP : -error;
}

int64_t memfd_huge_page_size(void) {
        static int64_t cached = 0;
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (cached != 0)
                return cached;
        /* The block size of a hugetlbfs file is its huge page size: the
         * one a hugetlb memfd gets, whatever the boot options chose. */
        fd = memfd_create("bufbroker:huge-page-size", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
        if (fd < 0) {
                int r = hugetlb_errno(errno);

                /* What the kernel cannot do it will not do later; EMFILE
                 * or ENOMEM may pass. */
                if (r == -EOPNOTSUPP)
                        cached = r;
                return r;
        }
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_blksize <= 0 || (st.st_blksize & (st.st_blksize - 1)))
                return cached = -EOPNOTSUPP;
        return cached = st.st_blksize;
}

/* Reserve (or allocate) every huge page of @fd now: -ENOSPC when there are
 * not enough free ones. */
static int hugetlb_reserve(int fd, uint64_t size) {
        void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

        if (p == MAP_FAILED)
                return errno == ENOMEM ? -ENOSPC : negative_errno();
        (void) munmap(p, size);
        return 0;
}

int memfd_new_sealed(const CreateRequest *req, int *ret_fd) {
        _cleanup_close_ int fd = -1;
        char full[MEMFD_NAME_MAX + 1];
        unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (req->hugetlb ? MFD_HUGETLB : 0);
        int reopened;
        uint64_t size = req->size;

        if ((uint64_t) (off_t) size != size || (off_t) size < 0)
                return -EFBIG;

        snprintf(full, sizeof(full), "bufbroker:%s", req->name);

        fd = memfd_create(full, flags | MFD_NOEXEC_SEAL);
        if (fd < 0 && errno == EINVAL)
                /* Kernels before 6.3 do not know MFD_NOEXEC_SEAL. */
                fd = memfd_create(full, flags);
        if (fd < 0)
                return req->hugetlb ? hugetlb_errno(errno) : negative_errno();

        /* memfds start out mode 0777 (0666 with MFD_NOEXEC_SEAL). Anyone who
         * has an fd can reopen /proc/self/fd/N with the inode's permissions,
         * which would turn a read-only share into a writable one: only the
         * daemon's own uid may open the inode by path. */
        if (fchmod(fd, 0600) < 0)
                return negative_errno();

        if (ftruncate(fd, (off_t) size) < 0)
                return negative_errno();

        /* ENOMEM (shmem: the cgroup's limit) or ENOSPC (no free huge
         * pages): the memory is not there. */
        if (req->prefault && fallocate(fd, 0, 0, (off_t) size) < 0)
                return errno == ENOMEM || errno == ENOSPC ? -ENOSPC : negative_errno();
        if (req->hugetlb && !req->prefault) {
                int r = hugetlb_reserve(fd, size);
                if (r < 0)
                        return r;
        }

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
