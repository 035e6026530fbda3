/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The V4L2 allocator: a device's MMAP buffer queue, exported as dma-bufs.
 *
 * One V4L2Queue is one open device with buffers allocated by VIDIOC_REQBUFS.
 * Every bufbroker buffer made from it keeps a reference; the last reference
 * frees the queue (REQBUFS(0)) and closes the device. Exported dma-bufs stay
 * valid after that: the kernel keeps the memory while any fd refers to it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "bufbroker-protocol.h"

struct BrokerError;
struct Caller;

/* What CreateV4L2 asks for, all of it: the allocator reads the device and
 * the format, broker_create_v4l2() the rest. A new option is a field here
 * (zero must mean "not given"), a row in CreateV4L2's option tables and its
 * use. */
typedef struct V4L2Request {
        const char *device;             /* path of the video device */
        uint32_t width, height;         /* 0: keep the device's current value */
        uint32_t fourcc;                /* 0: keep the device's current format */
        uint32_t type;                  /* V4L2_BUF_TYPE_*; 0: the device's capture
                                         * queue, else its output queue */
        uint32_t count;                 /* buffers asked for, 1..VIDEO_MAX_FRAME */
        const char *name;               /* buffer i is named "@name<i>" */
        bool persistent;                /* they live on with no holder */
        bool read_only;                 /* even the owner gets read-only fds */
        uint64_t ttl_usec;              /* 0: no expiry */
} V4L2Request;

typedef struct V4L2Format {
        uint32_t type;                  /* V4L2_BUF_TYPE_* */
        uint32_t width, height, fourcc, field;
        uint32_t n_planes;
        uint32_t bytesperline[BB_PLANES_MAX];
        uint32_t sizeimage[BB_PLANES_MAX];
} V4L2Format;

typedef struct V4L2Plane {
        int fd;                         /* dma-buf, O_CLOEXEC */
        uint64_t length;
        uint32_t bytesperline;
        uint32_t offset;                /* data offset in the dma-buf at allocation
                                         * (QUERYBUF); a driver may put each frame's
                                         * data elsewhere (DQBUF's data_offset) */
} V4L2Plane;

typedef struct V4L2Queue V4L2Queue;

/* Check that @req->device is a V4L2 streaming device (character device of
 * the video4linux major, capture or output, streaming I/O), open it through
 * libv4l2 and set the format; v4l2_queue_format() then tells the sizes, so
 * the caller can refuse before any device memory is allocated. Errors:
 * -EINVAL bad request, -ENODEV not a usable device (the message says why),
 * -EBUSY the device's queue is in use, others from the driver. */
int v4l2_queue_new(const V4L2Request *req, const struct Caller *caller, struct BrokerError *err,
                   V4L2Queue **ret);
/* VIDIOC_REQBUFS @count MMAP buffers; the driver may give more or fewer
 * (v4l2_queue_count()). */
int v4l2_queue_allocate(V4L2Queue *q, unsigned count, struct BrokerError *err);

V4L2Queue *v4l2_queue_ref(V4L2Queue *q);
V4L2Queue *v4l2_queue_unref(V4L2Queue *q);
static inline void v4l2_queue_unrefp(V4L2Queue **q) {
        v4l2_queue_unref(*q);
}

/* Take over a device fd whose queue already holds @count MMAP buffers in
 * @format (kept open by systemd's fd store across a restart of the daemon).
 * Takes @fd on success. */
int v4l2_queue_adopt(int fd, const char *path, const V4L2Format *format, unsigned count, V4L2Queue **ret);
int v4l2_queue_fd(const V4L2Queue *q);
/* Whether the caller's reference is the last one. */
bool v4l2_queue_is_last_ref(const V4L2Queue *q);
/* A number the fd store names the queue by (0: not stored yet). */
uint64_t v4l2_queue_get_tag(const V4L2Queue *q);
void v4l2_queue_set_tag(V4L2Queue *q, uint64_t tag);

/* What the driver chose, and how many buffers it gave. */
const V4L2Format *v4l2_queue_format(const V4L2Queue *q);
unsigned v4l2_queue_count(const V4L2Queue *q);
const char *v4l2_queue_device(const V4L2Queue *q);

/* Export every plane of buffer @index with VIDIOC_EXPBUF: n_planes fds. */
int v4l2_queue_export(V4L2Queue *q, unsigned index, bool read_only, const char *name,
                      struct BrokerError *err, V4L2Plane planes[BB_PLANES_MAX]);

/* "YUYV" for V4L2_PIX_FMT_YUYV; @buf must hold 5 bytes. */
const char *v4l2_fourcc_to_string(uint32_t fourcc, char buf[static 5]);
