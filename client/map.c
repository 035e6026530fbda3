/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A handle's planes and what a process does with them: the fds the handle
 * owns, each plane's metadata, mmap() of a plane, the writability and frozen
 * checks that decide PROT_WRITE, and DMA_BUF_IOCTL_SYNC around CPU access
 * to a dma-buf. A SysV segment has no fd: its holder attaches it by shmid
 * (shmat), read-only when the handle is. No bus traffic here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <linux/dma-buf.h>

#include "libbufbroker-private.h"
#include "macro.h"

_public_ int bb_buffer_fd(bb_buffer *buf) {
        return bb_buffer_plane_fd(buf, 0);
}

_public_ unsigned bb_buffer_n_planes(bb_buffer *buf) {
        return buf ? buf->n_planes : 0;
}

_public_ int bb_buffer_plane_fd(bb_buffer *buf, unsigned plane) {
        if (!buf)
                return -EINVAL;
        /* A segment is attached by its shmid, never through an fd. */
        if (buf->segment_held)
                return -EOPNOTSUPP;
        if (buf->n_fds == 0)
                return -ENODATA;
        if (plane >= buf->n_fds)
                return -ERANGE;
        return buf->planes[plane].fd;
}

static const bb_plane *buffer_plane(bb_buffer *buf, unsigned plane) {
        return buf && plane < buf->n_planes ? &buf->planes[plane] : NULL;
}

_public_ uint64_t bb_buffer_plane_length(bb_buffer *buf, unsigned plane) {
        const bb_plane *p = buffer_plane(buf, plane);

        return p ? p->length : 0;
}

_public_ uint32_t bb_buffer_plane_stride(bb_buffer *buf, unsigned plane) {
        const bb_plane *p = buffer_plane(buf, plane);

        return p ? p->stride : 0;
}

_public_ uint32_t bb_buffer_plane_offset(bb_buffer *buf, unsigned plane) {
        const bb_plane *p = buffer_plane(buf, plane);

        return p ? p->offset : 0;
}

_public_ int bb_buffer_is_frozen(bb_buffer *buf) {
        int seals;

        if (!buf)
                return 0;
        if (buf->n_fds > 0) {
                /* The seal is the truth: another holder may have frozen it
                 * since we last asked the broker. (A dma-buf has no seals:
                 * EINVAL, and the broker's word stands.) */
                seals = fcntl(buf->planes[0].fd, F_GET_SEALS);
                if (seals >= 0)
                        return !!(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE));
        }
        return buf->frozen;
}

static bool fd_is_writable(int fd) {
        int flags = fcntl(fd, F_GETFL);

        return flags >= 0 && (flags & O_ACCMODE) != O_RDONLY;
}

_public_ int bb_buffer_is_writable(bb_buffer *buf) {
        if (!buf || !buffer_holds_memory(buf) || buf->read_only)
                return 0;
        for (unsigned i = 0; i < buf->n_fds; i++)
                if (!fd_is_writable(buf->planes[i].fd))
                        return 0;
        return !bb_buffer_is_frozen(buf);
}

/* Attach a sysv buffer's segment: the whole segment, SHM_RDONLY unless the
 * handle may write. The kernel's size is the truth, as fstat() is for an
 * fd. */
static int map_segment(bb_buffer *buf, unsigned plane, void **ret_addr, size_t *ret_size) {
        bb_plane *p = &buf->planes[0];
        struct shmid_ds ds;
        void *addr;

        if (plane >= buf->n_planes)
                return -ERANGE;
        if (!p->map_addr) {
                if (shmctl(buf->shmid, IPC_STAT, &ds) < 0)
                        return negative_errno();
                if (ds.shm_segsz == 0)
                        return -EBADFD;
                addr = shmat(buf->shmid, NULL, bb_buffer_is_writable(buf) ? 0 : SHM_RDONLY);
                if (addr == (void *) -1)
                        return negative_errno();
                p->map_addr = addr;
                p->map_shm = true;
                p->map_size = ds.shm_segsz;
                p->map_length = p->length > 0 && p->length <= ds.shm_segsz ? (size_t) p->length : ds.shm_segsz;
        }
        *ret_addr = p->map_addr;
        *ret_size = p->map_length;
        return 0;
}

_public_ int bb_buffer_map_plane(bb_buffer *buf, unsigned plane, void **ret_addr, size_t *ret_size) {
        struct stat st;
        bb_plane *p;
        uint64_t size;
        void *addr;
        int prot;

        if (!buf || !ret_addr || !ret_size)
                return -EINVAL;
        if (buf->segment_held)
                return map_segment(buf, plane, ret_addr, ret_size);
        if (buf->n_fds == 0)
                return -ENODATA;
        if (plane >= buf->n_fds)
                return -ERANGE;
        p = &buf->planes[plane];

        if (!p->map_addr) {
                /* Map what the fd really has: mapping beyond the end of a
                 * memfd only buys SIGBUS, and a dma-buf refuses it. A dma-buf
                 * is usually larger than its plane (page-rounded). */
                if (fstat(p->fd, &st) < 0)
                        return negative_errno();
                size = st.st_size > 0 ? (uint64_t) st.st_size : p->length;
                if (size == 0)
                        return -EBADFD;
                if (size > SIZE_MAX)
                        return -EFBIG;

                prot = bb_buffer_is_writable(buf) ? PROT_READ | PROT_WRITE : PROT_READ;
                addr = mmap(NULL, (size_t) size, prot, MAP_SHARED, p->fd, 0);
                if (addr == MAP_FAILED)
                        return negative_errno();
                p->map_addr = addr;
                p->map_size = (size_t) size;
                /* The caller gets the plane's bytes, never more than is mapped. */
                p->map_length = p->length > 0 && p->length <= size ? (size_t) p->length : (size_t) size;
        }
        *ret_addr = p->map_addr;
        *ret_size = p->map_length;
        return 0;
}

_public_ int bb_buffer_map(bb_buffer *buf, void **ret_addr, size_t *ret_size) {
        return bb_buffer_map_plane(buf, 0, ret_addr, ret_size);
}

_public_ int bb_buffer_unmap(bb_buffer *buf) {
        int r = 0;

        if (!buf)
                return -EINVAL;
        for (unsigned i = 0; i < BB_PLANES_MAX; i++) {
                bb_plane *p = &buf->planes[i];

                if (!p->map_addr)
                        continue;
                if ((p->map_shm ? shmdt(p->map_addr) : munmap(p->map_addr, p->map_size)) < 0) {
                        if (r == 0)
                                r = negative_errno();
                        continue;
                }
                p->map_addr = NULL;
                p->map_size = p->map_length = 0;
                p->map_shm = false;
        }
        return r;
}

/* DMA_BUF_IOCTL_SYNC on one fd. The kernel may be interrupted, or ask us to
 * come back while a fence is pending: both mean "again". */
static int dma_buf_sync(int fd, uint64_t flags) {
        struct dma_buf_sync sync = { .flags = flags };

        while (ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) < 0)
                if (errno != EINTR && errno != EAGAIN)
                        return negative_errno();
        return 0;
}

static int sync_check(bb_buffer *buf, unsigned flags, uint64_t *ret_dma_flags) {
        uint64_t f = 0;

        if (!buf || flags == 0 || (flags & ~(unsigned) BB_SYNC_RW))
                return -EINVAL;
        if (!buffer_holds_memory(buf))
                return -ENODATA;
        /* Only a dma-buf has a device to be coherent with; memfds, shm
         * objects, segments and files are plain memory. */
        if (!buffer_is_kind(buf, BB_KIND_V4L2))
                return 0;
        if (flags & BB_SYNC_READ)
                f |= DMA_BUF_SYNC_READ;
        if (flags & BB_SYNC_WRITE)
                f |= DMA_BUF_SYNC_WRITE;
        *ret_dma_flags = f;
        return 1;
}

_public_ int bb_buffer_sync_begin(bb_buffer *buf, unsigned flags) {
        uint64_t f;
        int r;

        r = sync_check(buf, flags, &f);
        if (r <= 0)
                return r;
        for (unsigned i = 0; i < buf->n_fds; i++) {
                r = dma_buf_sync(buf->planes[i].fd, DMA_BUF_SYNC_START | f);
                if (r < 0) {
                        /* Leave nothing begun that the caller will not end. */
                        while (i > 0)
                                (void) dma_buf_sync(buf->planes[--i].fd, DMA_BUF_SYNC_END | f);
                        return r;
                }
        }
        return 0;
}

_public_ int bb_buffer_sync_end(bb_buffer *buf, unsigned flags) {
        uint64_t f;
        int r, k;

        r = sync_check(buf, flags, &f);
        if (r <= 0)
                return r;
        /* End every plane even if one fails; report the first failure. */
        r = 0;
        for (unsigned i = 0; i < buf->n_fds; i++) {
                k = dma_buf_sync(buf->planes[i].fd, DMA_BUF_SYNC_END | f);
                if (k < 0 && r == 0)
                        r = k;
        }
        return r;
}
