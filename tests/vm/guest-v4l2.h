/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * guest-v4l2's shared parts (guest-v4l2-util.c): TAP output, the daemon and
 * its baseline, raw CreateV4L2 for the cases that need the exact D-Bus error
 * or an argument the library cannot produce, plain V4L2 ioctls, dma-buf
 * facts, library helpers; and the cases, one file per phase:
 *
 *   guest-v4l2-set.c       1/2: a set's format, planes and dma-bufs
 *   guest-v4l2-import.c    3: a second device imports the broker's dma-bufs
 *   guest-v4l2-planes.c    4: 32 buffers x 3 planes through a 16-fd bus
 *   guest-v4l2-refusals.c  5: refusals
 *   guest-v4l2-lifetime.c  6: lifetime
 *   guest-v4l2-access.c    7: who may open the device
 *   guest-v4l2-faults.c    8: vivid's error injection, disconnect, EMFILE
 *   guest-v4l2-quota.c     quotas
 *
 * guest-v4l2.c holds main() and the table of which case runs in which mode.
 */
#pragma once

/* what nearly every case file uses */
#include <errno.h>
#include <inttypes.h>
#include <linux/videodev2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

#include "bufbroker-protocol.h"
#include "bufbroker.h"
#include "daemon-state.h"
#include "macro.h"
#include "private-bus.h"                /* pbus_wait_child() */

#define DEV_A           "/dev/video0"           /* exporter: vivid instance 0 capture */
#define DEV_A_OUT       "/dev/video1"           /* instance 0 video output */
#define DEV_B           "/dev/video4"           /* importer: vivid instance 1 capture */
#define DEV_TOUCH       "/dev/v4l-touch0"       /* native TD16 only: libv4l2 emulates RGB3 & co. */

#define W 640
#define H 480
#define FRAME_TIMEOUT_MS 30000  /* TCG: vivid's frame thread is slow, be generous */

/* ---- TAP ------------------------------------------------------------------ */

extern const char *phase;
extern unsigned n_passed, n_failed;

_printf_(1, 2) void diag(const char *fmt, ...);
_printf_(2, 3) bool check(bool ok, const char *fmt, ...);

/* The reasons a multi-part case failed: empty means it passed. */
typedef struct Why {
        char s[4096];
        size_t n;
} Why;

_printf_(2, 3) void why(Why *w, const char *fmt, ...);
_printf_(2, 3) bool check_why(const Why *w, const char *fmt, ...);

/* ---- misc ----------------------------------------------------------------- */

uint64_t now_ms(void);
void msleep(unsigned ms);
uint64_t page_align(uint64_t n);
const char *fcc(uint32_t f, char buf[static 5]);
uint64_t fnv1a(const void *p, size_t n);

/* ---- the daemon ----------------------------------------------------------- */

extern sd_bus *bus;                     /* the test's raw connection */
extern pid_t daemon_pid;
extern char daemon_owner[128];
extern Snapshot base;                   /* the daemon after warm-up, nothing held */

const char *errname(const sd_bus_error *e, int r);
int daemon_lookup(void);
/* The same process still owns the name. */
bool daemon_alive(void);
int snap_read(Snapshot *s);
/* Poll until the daemon is back at the baseline; say why not into w. */
bool back_to_base(int timeout_ms, Why *w);
/* Warm the daemon up (a set created, shared, opened and released: every lazy
 * thing opened once), then take the baseline the cases come back to. */
bool warm_up(const char *dev);

/* ---- raw CreateV4L2 ------------------------------------------------------- */

/* Only for what the library cannot or must not do: arguments it never sends
 * (refusals), the reply itself (not the Open info the library reads), and
 * fd accounting that one CreateV4L2 without OpenFds makes exact (EMFILE).
 * Everything else goes through libbufbroker (lib_create, can_create). */

typedef struct KV {
        const char *key;
        char type;              /* u t b d s */
        uint64_t n;
        const char *s;
} KV;
#define KU(k, v) { (k), 'u', (v), NULL }
#define KT(k, v) { (k), 't', (v), NULL }
#define KB(k, v) { (k), 'b', (v), NULL }
#define KD(k, v) { (k), 'd', (v), NULL }
#define KS(k, v) { (k), 's', 0, (v) }
#define KEND { NULL, 0, 0, NULL }

typedef struct RFmt {
        uint32_t width, height, field, num_planes, count;
        char fourcc[16], type[32];
        uint32_t bpl[8], size[8];
        unsigned n_bpl, n_size;
        unsigned seen;          /* how many keys */
} RFmt;

typedef struct Created {
        char *paths[64];
        unsigned n;
        RFmt fmt;
} Created;

void created_done(Created *c);
/* Read an a{sv} format (CreateV4L2's reply, or the format keys of an info). */
int read_format(sd_bus_message *m, RFmt *f);
int create_raw(sd_bus *b, const char *dev, uint32_t count, const KV *fmt, const KV *opts,
               Created *ret, sd_bus_error *e);
int release_path(sd_bus *b, const char *path);
int release_all(sd_bus *b, Created *c);

/* ---- V4L2 ----------------------------------------------------------------- */

int xioctl(int fd, unsigned long req, void *arg);
bool type_is_mplane(uint32_t t);

typedef struct DevFmt {
        uint32_t type, width, height, fourcc, field, n_planes;
        uint32_t bpl[VIDEO_MAX_PLANES], size[VIDEO_MAX_PLANES];
        char bus_info[33];
} DevFmt;

void devfmt_from(const struct v4l2_format *f, DevFmt *d);

/* Open a capture node of ours; type is its (only) capture type. */
int dev_open(const char *path, uint32_t *ret_type, char bus_info[33]);
/* What the driver says its current format is (another file handle may ask). */
int dev_get_fmt(const char *path, DevFmt *ret);

typedef struct Mapping {
        void *addr;
        size_t len;
} Mapping;

void mapping_done(Mapping *m);
/* The exporter's own view: map MMAP buffer @index, plane @plane, of the
 * device's queue through a V4L2 file handle of ours. */
int exporter_map(const char *path, unsigned index, unsigned plane, Mapping *ret);

/* ---- dma-buf -------------------------------------------------------------- */

typedef struct DmaBuf {
        bool is_dmabuf;
        char link[160];
        uint64_t size;          /* fdinfo "size:" */
        char exp_name[64];
        char name[160];
} DmaBuf;

void dmabuf_info(int fd, DmaBuf *d);
int dma_sync(int fd, uint64_t flags);

/* ---- library helpers ------------------------------------------------------ */

int lib_create(bb_client *c, const char *dev, unsigned count, uint32_t fourcc, unsigned flags,
               bb_buffer ***l, size_t *n);
int release_list(bb_buffer **l, size_t n);
int client_new(bb_client **c);
/* Can a set of 2 YUYV buffers be created on dev (and released), by a new
 * library client? Says why not into w, prefixed with when. */
bool can_create(const char *dev, Why *w, const char *when);

/* ---- the cases, by phase -------------------------------------------------- */

typedef struct Expect {
        uint32_t fourcc;
        const char *type;               /* "capture" or "capture-mplane" */
        unsigned n_planes;
        uint32_t bpl[3], size[3];       /* vivid at 640x480 */
} Expect;

/* guest-v4l2-set.c */
void case_set(const Expect *x, unsigned count, const char *alloc_exp);
void case_sharing_and_orphans(void);
void case_options_and_nodes(void);
/* guest-v4l2-import.c */
void case_import(uint32_t fourcc, unsigned n_planes, unsigned nbuf);
/* guest-v4l2-planes.c */
void case_many_planes(void);
/* guest-v4l2-refusals.c */
void expect_refusal(const char *what, const char *dev, uint32_t count, const KV *fmt, const KV *opts,
                    const char *ename, const char *needle1, const char *needle2);
void case_refusals(void);
/* guest-v4l2-lifetime.c */
void case_lifetime(void);
/* guest-v4l2-access.c */
void case_access(void);
/* guest-v4l2-faults.c */
void case_reqbufs_injection(void);
void case_disconnect(void);
void case_emfile(void);
/* guest-v4l2-quota.c */
void case_quota(void);
