/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The V4L2 allocator when bufbroker is built with -Dv4l2=disabled. */
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "v4l2.h"

int v4l2_queue_new(const V4L2Request *req, const struct Caller *caller, struct BrokerError *err,
                   V4L2Queue **ret) {
        return broker_refuse(err, -ENODEV, "This bufbrokerd was built without V4L2 support");
}

int v4l2_queue_adopt(int fd, const char *path, const V4L2Format *format, unsigned count, V4L2Queue **ret) {
        return -EOPNOTSUPP;
}
int v4l2_queue_fd(const V4L2Queue *q) { return -1; }
bool v4l2_queue_is_last_ref(const V4L2Queue *q) { return true; }
uint64_t v4l2_queue_get_tag(const V4L2Queue *q) { return 0; }
void v4l2_queue_set_tag(V4L2Queue *q, uint64_t tag) {}
int v4l2_queue_allocate(V4L2Queue *q, unsigned count, struct BrokerError *err) { return -ENODEV; }
V4L2Queue *v4l2_queue_ref(V4L2Queue *q) { return q; }
V4L2Queue *v4l2_queue_unref(V4L2Queue *q) { return NULL; }
const V4L2Format *v4l2_queue_format(const V4L2Queue *q) { return NULL; }
unsigned v4l2_queue_count(const V4L2Queue *q) { return 0; }
const char *v4l2_queue_device(const V4L2Queue *q) { return NULL; }

int v4l2_queue_export(V4L2Queue *q, unsigned index, bool read_only, const char *name,
                      struct BrokerError *err, V4L2Plane planes[BB_PLANES_MAX]) {
        return -ENODEV;
}

const char *v4l2_fourcc_to_string(uint32_t fourcc, char buf[static 5]) {
        memcpy(buf, &fourcc, 4);
        buf[4] = 0;
        return buf;
}

