/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * V4L2 allocator: validate a device path, open it through libv4l2, set the
 * format, VIDIOC_REQBUFS MMAP buffers and VIDIOC_EXPBUF every plane.
 *
 * libv4l2 and the multi-planar API: libv4l2 loads its "mplane" plugin for
 * devices that only speak the multi-planar API and shows them to the
 * application as single-planar devices. That emulation cannot export
 * dma-bufs (VIDIOC_EXPBUF with the single-planar type fails with EINVAL)
 * and cannot express formats with several planes (NV12M, YUV420M). So
 * libv4l2 carries single-planar devices, where it also tells which formats
 * it only emulates by converting in user space (those cannot be exported:
 * the dma-buf would hold the driver's format, not the one asked for), and
 * multi-planar queues are driven with the kernel's own ioctls.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <libv4l2.h>
#include <linux/dma-buf.h>
#include <linux/videodev2.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "access.h"
#include "broker.h"
#include "memfd.h"
#include "v4l2.h"

#define VIDEO4LINUX_MAJOR 81

struct V4L2Queue {
        unsigned n_ref;
        char *path;
        int fd;
        bool libv4l2;                   /* fd is wrapped by v4l2_fd_open() */
        uint32_t capabilities;          /* REQBUFS capabilities */
        unsigned count;
        V4L2Format format;
        uint64_t tag;
};

#define refuse broker_refuse
#define fail broker_fail

const char *v4l2_fourcc_to_string(uint32_t fourcc, char buf[static 5]) {
        for (unsigned i = 0; i < 4; i++) {
                char c = (char) ((fourcc >> (8 * i)) & 0xff);
                buf[i] = c >= 0x20 && c < 0x7f ? c : '?';
        }
        buf[4] = 0;
        return buf;
}

/* protocol/ names the types by their kernel ABI numbers */
_Static_assert(V4L2_BUF_TYPE_VIDEO_CAPTURE == 1 && V4L2_BUF_TYPE_VIDEO_OUTPUT == 2 &&
               V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE == 9 && V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE == 10,
               "V4L2 buffer type numbers");

static bool type_is_mplane(uint32_t type) {
        return type == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE || type == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
}

static int xioctl(V4L2Queue *q, unsigned long request, void *arg) {
        int r;

        do
                r = q->libv4l2 ? v4l2_ioctl(q->fd, request, arg) : ioctl(q->fd, request, arg);
        while (r < 0 && errno == EINTR);
        return r < 0 ? negative_errno() : 0;
}

static uint32_t cap_to_type(uint32_t caps, uint32_t wanted) {
        static const struct {
                uint32_t cap, type;
        } table[] = {   /* in the order "auto" prefers them */
                { V4L2_CAP_VIDEO_CAPTURE_MPLANE, V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE },
                { V4L2_CAP_VIDEO_CAPTURE, V4L2_BUF_TYPE_VIDEO_CAPTURE },
                { V4L2_CAP_VIDEO_OUTPUT_MPLANE, V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE },
                { V4L2_CAP_VIDEO_OUTPUT, V4L2_BUF_TYPE_VIDEO_OUTPUT },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if ((caps & table[i].cap) && (wanted == 0 || wanted == table[i].type))
                        return table[i].type;
        return 0;
}

/* Open @path for @caller, only if the caller could open it read-write
 * itself, and only if it is a V4L2 character device.
 *
 * Until the caller is proven to have access, every failure is one answer:
 * whether the path exists, what it is, or which permission is missing, as
 * the daemon sees it (files under /root, say), is none of the caller's
 * business. Only running out of fds is told apart: that is the daemon's own
 * state, the same for every path (the walk holds at most two fds, and its
 * first lookup already needs both). Once access is proven, the specifics
 * (not a character device, not video4linux, busy...) are what the caller
 * could find out itself.
 *
 * The walk ends in an O_PATH fd: nothing is opened for real (no driver
 * open() runs, so /dev/watchdog & co. are safe), and reopening that very
 * inode afterwards means a symlink swapped in between cannot redirect us. */
static int open_video_device(const char *path, const struct Caller *caller, struct BrokerError *err) {
        const AccessCreds creds = {
                .uid = caller->uid,
                .groups = caller->groups,
                .n_groups = caller->n_groups,
        };
        _cleanup_close_ int pfd = -1;
        struct stat st;
        int fd, r;

        r = access_open_path(path, &creds, &pfd);
        if (r >= 0) {
                r = access_inode(pfd, &creds, ACCESS_READ | ACCESS_WRITE);
                if (r == 0)
                        r = -EACCES;
        }
        if (r == -EMFILE || r == -ENFILE)
                return fail(err, r, "Cannot look up '%s': %s", path, strerror(-r));
        if (r < 0)
                return refuse(err, -EACCES,
                              "Access denied: uid %u cannot open '%s' for reading and writing (or there is no such file)",
                              (unsigned) caller->uid, path);

        if (fstat(pfd, &st) < 0) {
                r = negative_errno();
                return fail(err, r, "Cannot stat '%s': %s", path, strerror(-r));
        }
        if (!S_ISCHR(st.st_mode))
                return refuse(err, -ENODEV, "'%s' is not a character device, so not a V4L2 device", path);
        if (major(st.st_rdev) != VIDEO4LINUX_MAJOR)
                return refuse(err, -ENODEV, "'%s' is character device %u:%u, not a video4linux device (major %u)",
                            path, major(st.st_rdev), minor(st.st_rdev), VIDEO4LINUX_MAJOR);

        /* The driver's open() runs here: its failures are the driver's. */
        fd = fd_reopen(pfd, O_RDWR | O_NONBLOCK);
        if (fd == -EBUSY)
                return refuse(err, fd, "'%s' is busy: its driver refuses another open", path);
        if (fd < 0)
                return fail(err, fd, "Cannot open '%s': %s", path, strerror(-fd));
        return fd;
}

/* Refuse formats that libv4l2 only emulates (see the top of this file). */
static int check_not_emulated(V4L2Queue *q, uint32_t fourcc, struct BrokerError *err) {
        struct v4l2_fmtdesc desc = { .type = q->format.type };
        char s[5];

        for (desc.index = 0; xioctl(q, VIDIOC_ENUM_FMT, &desc) == 0; desc.index++) {
                if (desc.pixelformat != fourcc)
                        continue;
                if (desc.flags & V4L2_FMT_FLAG_EMULATED)
                        return refuse(err, -ENODEV,
                                    "Format %s on '%s' is emulated by libv4l2 (converted in user space) and cannot be exported as a dma-buf; ask for a format the driver offers natively",
                                    v4l2_fourcc_to_string(fourcc, s), q->path);
                return 0;
        }
        return refuse(err, -EINVAL, "'%s' does not offer format %s for %s",
                    q->path, v4l2_fourcc_to_string(fourcc, s), bb_v4l2_type_name(q->format.type));
}

static int set_format(V4L2Queue *q, const V4L2Request *req, struct BrokerError *err) {
        struct v4l2_format f = { .type = q->format.type };
        V4L2Format *out = &q->format;
        char s[5];
        int r;

        r = xioctl(q, VIDIOC_G_FMT, &f);
        if (r < 0)
                return fail(err, r, "VIDIOC_G_FMT on '%s' failed: %s", q->path, strerror(-r));

        if (type_is_mplane(f.type)) {
                if (req->width)
                        f.fmt.pix_mp.width = req->width;
                if (req->height)
                        f.fmt.pix_mp.height = req->height;
                if (req->fourcc)
                        f.fmt.pix_mp.pixelformat = req->fourcc;
                /* Left over from the previous format, drivers would take
                 * them as padding: let them compute the layout afresh. */
                for (unsigned i = 0; i < VIDEO_MAX_PLANES; i++) {
                        f.fmt.pix_mp.plane_fmt[i].bytesperline = 0;
                        f.fmt.pix_mp.plane_fmt[i].sizeimage = 0;
                }
        } else {
                if (req->width)
                        f.fmt.pix.width = req->width;
                if (req->height)
                        f.fmt.pix.height = req->height;
                if (req->fourcc)
                        f.fmt.pix.pixelformat = req->fourcc;
                /* Drivers recompute these from the new size. */
                f.fmt.pix.bytesperline = 0;
                f.fmt.pix.sizeimage = 0;
        }

        r = xioctl(q, VIDIOC_S_FMT, &f);
        if (r == -EBUSY)
                return refuse(err, r, "'%s' is busy: another process streams from it or holds its buffers", q->path);
        if (r < 0)
                return fail(err, r, "VIDIOC_S_FMT on '%s' failed: %s", q->path, strerror(-r));

        if (type_is_mplane(f.type)) {
                out->width = f.fmt.pix_mp.width;
                out->height = f.fmt.pix_mp.height;
                out->fourcc = f.fmt.pix_mp.pixelformat;
                out->field = f.fmt.pix_mp.field;
                out->n_planes = f.fmt.pix_mp.num_planes;
                if (out->n_planes == 0 || out->n_planes > BB_PLANES_MAX)
                        return fail(err, -EIO, "'%s' reported %u planes", q->path, out->n_planes);
                for (unsigned i = 0; i < out->n_planes; i++) {
                        out->bytesperline[i] = f.fmt.pix_mp.plane_fmt[i].bytesperline;
                        out->sizeimage[i] = f.fmt.pix_mp.plane_fmt[i].sizeimage;
                }
        } else {
                out->width = f.fmt.pix.width;
                out->height = f.fmt.pix.height;
                out->fourcc = f.fmt.pix.pixelformat;
                out->field = f.fmt.pix.field;
                out->n_planes = 1;
                out->bytesperline[0] = f.fmt.pix.bytesperline;
                out->sizeimage[0] = f.fmt.pix.sizeimage;
        }

        if (req->fourcc && out->fourcc != req->fourcc) {
                char t[5];
                return refuse(err, -EINVAL, "'%s' does not take format %s (it chose %s)",
                            q->path, v4l2_fourcc_to_string(req->fourcc, s), v4l2_fourcc_to_string(out->fourcc, t));
        }
        return 0;
}

/* The driver's card name, for a message: NUL-terminated, and only printable
 * ASCII (D-Bus refuses to send a message that is not valid UTF-8). */
static const char *card_name(const struct v4l2_capability *cap, char buf[static sizeof(cap->card) + 1]) {
        size_t i;

        for (i = 0; i < sizeof(cap->card) && cap->card[i]; i++)
                buf[i] = cap->card[i] >= 0x20 && cap->card[i] < 0x7f ? (char) cap->card[i] : '?';
        buf[i] = 0;
        return buf;
}

int v4l2_queue_new(const V4L2Request *req, const struct Caller *caller, struct BrokerError *err,
                   V4L2Queue **ret) {
        _cleanup_(v4l2_queue_unrefp) V4L2Queue *q = NULL;
        struct v4l2_capability cap = {};
        char card[sizeof(cap.card) + 1];
        const char *path = req->device;
        uint32_t caps;
        int r;

        if (req->count == 0 || req->count > VIDEO_MAX_FRAME)
                return refuse(err, -EINVAL, "Buffer count %u is out of range 1..%u", req->count, VIDEO_MAX_FRAME);
        if (req->type != 0 && !bb_v4l2_type_name(req->type))
                return refuse(err, -EINVAL, "Buffer type %u is not a video capture or output type", req->type);

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->n_ref = 1;
        q->fd = -1;
        q->path = strdup(path);
        if (!q->path)
                return -ENOMEM;

        q->fd = open_video_device(path, caller, err);
        if (q->fd < 0)
                return q->fd;

        r = xioctl(q, VIDIOC_QUERYCAP, &cap);
        if (r == -ENOTTY || r == -EINVAL)
                /* a V4L2 sub-device or a media node: the same major */
                return refuse(err, -ENODEV, "'%s' does not answer VIDIOC_QUERYCAP: %s", path, strerror(-r));
        if (r < 0)
                return fail(err, r, "VIDIOC_QUERYCAP on '%s' failed: %s", path, strerror(-r));
        caps = cap.capabilities & V4L2_CAP_DEVICE_CAPS ? cap.device_caps : cap.capabilities;
        if (!(caps & V4L2_CAP_STREAMING) || !cap_to_type(caps, 0))
                return refuse(err, -ENODEV, "'%s' (%s) offers no streaming video capture or output",
                            path, card_name(&cap, card));

        q->format.type = cap_to_type(caps, req->type);
        if (q->format.type == 0)
                return refuse(err, -ENODEV, "'%s' (%s) has no %s queue",
                            path, card_name(&cap, card), bb_v4l2_type_name(req->type));

        if (!type_is_mplane(q->format.type)) {
                /* libv4l2 takes over the fd (and closes it in v4l2_close()). */
                if (v4l2_fd_open(q->fd, V4L2_ENABLE_ENUM_FMT_EMULATION) < 0)
                        return refuse(err, -ENODEV, "libv4l2 cannot open '%s': %s", path, strerror(errno));
                q->libv4l2 = true;
                if (req->fourcc) {
                        r = check_not_emulated(q, req->fourcc, err);
                        if (r < 0)
                                return r;
                }
        }

        r = set_format(q, req, err);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(q);
        return 0;
}

int v4l2_queue_allocate(V4L2Queue *q, unsigned count, struct BrokerError *err) {
        struct v4l2_requestbuffers probe = {
                .count = 0,
                .type = q->format.type,
                .memory = V4L2_MEMORY_MMAP,
        }, rb = {
                .count = count,
                .type = q->format.type,
                .memory = V4L2_MEMORY_MMAP,
        };
        int r;

        if (q->count > 0)
                return -EALREADY;

        /* REQBUFS(0) allocates nothing and says EINVAL only when the queue
         * cannot do MMAP at all. So an EINVAL for real buffers afterwards is
         * the driver failing (its queue_setup(), as vivid's "Inject
         * VIDIOC_REQBUFS Error" makes it), not a device we cannot use. */
        r = xioctl(q, VIDIOC_REQBUFS, &probe);
        if (r == -EBUSY)
                return refuse(err, r, "'%s' is busy: another process streams from it or holds its buffers", q->path);
        if (r == -EINVAL || r == -ENOTTY)
                return refuse(err, -ENODEV, "'%s' cannot allocate MMAP buffers", q->path);
        if (r < 0)
                return fail(err, r, "VIDIOC_REQBUFS 0 on '%s' failed: %s", q->path, strerror(-r));

        r = xioctl(q, VIDIOC_REQBUFS, &rb);
        if (r == -EBUSY)
                return refuse(err, r, "'%s' is busy: another process streams from it or holds its buffers", q->path);
        if (r < 0)
                return fail(err, r, "VIDIOC_REQBUFS %u on '%s' failed: %s", count, q->path, strerror(-r));
        if (rb.count == 0)
                return fail(err, -ENOMEM, "'%s' allocated no buffers", q->path);
        q->count = rb.count;
        q->capabilities = rb.capabilities;
        return 0;
}

int v4l2_queue_export(V4L2Queue *q, unsigned index, bool read_only, const char *name,
                      struct BrokerError *err, V4L2Plane planes[BB_PLANES_MAX]) {
        struct v4l2_plane qplanes[VIDEO_MAX_PLANES] = {};
        struct v4l2_buffer qb = {
                .type = q->format.type,
                .memory = V4L2_MEMORY_MMAP,
                .index = index,
        };
        unsigned i;
        int r;

        if (type_is_mplane(q->format.type)) {
                qb.m.planes = qplanes;
                qb.length = VIDEO_MAX_PLANES;
        }
        r = xioctl(q, VIDIOC_QUERYBUF, &qb);
        if (r < 0)
                return fail(err, r, "VIDIOC_QUERYBUF %u on '%s' failed: %s", index, q->path, strerror(-r));

        for (i = 0; i < q->format.n_planes; i++) {
                struct v4l2_exportbuffer e = {
                        .type = q->format.type,
                        .index = index,
                        .plane = i,
                        .flags = O_CLOEXEC | (read_only ? O_RDONLY : O_RDWR),
                };

                r = xioctl(q, VIDIOC_EXPBUF, &e);
                if (r < 0) {
                        for (unsigned k = 0; k < i; k++)
                                safe_close(planes[k].fd);
                        if (r == -ENOTTY || r == -EINVAL)
                                return refuse(err, -ENODEV, "'%s' cannot export its buffers as dma-bufs (VIDIOC_EXPBUF: %s)",
                                            q->path, strerror(-r));
                        return fail(err, r, "VIDIOC_EXPBUF of buffer %u plane %u (%s) on '%s' failed: %s", index, i,
                                    read_only ? "read-only" : "read-write", q->path, strerror(-r));
                }

                /* Shows up in /sys/kernel/debug/dma_buf/bufinfo and fdinfo;
                 * kernels without it (ENOTTY) just do not name it. */
                (void) ioctl(e.fd, DMA_BUF_SET_NAME, name);

                planes[i] = (V4L2Plane) {
                        .fd = e.fd,
                        .length = type_is_mplane(q->format.type) ? qplanes[i].length : qb.length,
                        .bytesperline = q->format.bytesperline[i],
                        .offset = type_is_mplane(q->format.type) ? qplanes[i].data_offset : 0,
                };
        }
        return 0;
}

int v4l2_queue_adopt(int fd, const char *path, const V4L2Format *format, unsigned count, V4L2Queue **ret) {
        V4L2Queue *q;

        if (fd < 0 || count == 0 || count > VIDEO_MAX_FRAME || !bb_v4l2_type_name(format->type) ||
            format->n_planes == 0 || format->n_planes > BB_PLANES_MAX)
                return -EINVAL;

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->path = strdup(path);
        if (!q->path) {
                free(q);
                return -ENOMEM;
        }
        /* The kernel's ioctls from here on: libv4l2 would query and reset
         * the device's state when wrapping the fd. */
        q->n_ref = 1;
        q->fd = fd;
        q->count = count;
        q->format = *format;
        *ret = q;
        return 0;
}

int v4l2_queue_fd(const V4L2Queue *q) {
        return q->fd;
}

bool v4l2_queue_is_last_ref(const V4L2Queue *q) {
        return q->n_ref == 1;
}

uint64_t v4l2_queue_get_tag(const V4L2Queue *q) {
        return q->tag;
}

void v4l2_queue_set_tag(V4L2Queue *q, uint64_t tag) {
        q->tag = tag;
}

V4L2Queue *v4l2_queue_ref(V4L2Queue *q) {
        if (q)
                q->n_ref++;
        return q;
}

V4L2Queue *v4l2_queue_unref(V4L2Queue *q) {
        if (!q || --q->n_ref > 0)
                return NULL;

        if (q->fd >= 0) {
                if (q->count > 0) {
                        /* With V4L2_BUF_CAP_SUPPORTS_ORPHANED_BUFS this frees
                         * the queue even while dma-bufs are out (they become
                         * orphans the kernel frees with their last fd);
                         * without it, it fails with EBUSY and close() does
                         * the same. */
                        struct v4l2_requestbuffers rb = {
                                .count = 0,
                                .type = q->format.type,
                                .memory = V4L2_MEMORY_MMAP,
                        };
                        (void) xioctl(q, VIDIOC_REQBUFS, &rb);
                }
                if (q->libv4l2)
                        v4l2_close(q->fd);
                else
                        close(q->fd);
        }
        free(q->path);
        free(q);
        return NULL;
}

const V4L2Format *v4l2_queue_format(const V4L2Queue *q) {
        return &q->format;
}

unsigned v4l2_queue_count(const V4L2Queue *q) {
        return q->count;
}

const char *v4l2_queue_device(const V4L2Queue *q) {
        return q->path;
}
