/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * guest-v4l2: the vm suite's V4L2 cases, run inside the VM by guest-v4l2.sh.
 *
 * The driver script owns the processes: a private system-like dbus-daemon
 * (max_message_unix_fds 16, the project's real policy file), the real
 * bufbrokerd on it, and vivid, reloaded in the configuration a phase needs.
 * This program owns the cases. It talks to the broker through libbufbroker
 * (the client under test) and through raw sd-bus calls where a case needs
 * the exact D-Bus error name or an argument no library call can produce, and
 * to the devices with plain V4L2 ioctls: a second vivid instance imports the
 * broker's dma-bufs, and our own V4L2 file handle on the exporting device
 * maps its MMAP buffers, an independent view of the memory behind them.
 *
 *   guest-v4l2 sp ALLOC    vivid n_devs=2, single-planar; ALLOC = vmalloc|dma-contig
 *   guest-v4l2 mp ALLOC    vivid n_devs=2 multiplanar=2,2
 *   guest-v4l2 quota       a daemon started with --max-buffers-per-uid=4
 *                          --max-bytes-per-uid=2097152 --max-buffer-size=716800
 *                          (vivid single-planar)
 *   guest-v4l2 disconnect  vivid's "Disconnect" while clients hold buffers (vivid
 *                          reconnects when the last file of the device is closed)
 *
 * "sp vmalloc" also runs the device-access cases (uid 65534 with and without
 * group video, an ACL entry, paths it must learn nothing about) and vivid's
 * REQBUFS error injection; "mp vmalloc" runs out of fds in the daemon in the
 * middle of exporting a multi-planar set.
 *
 * Devices: instance A is /dev/video0 (capture) with /dev/video1 (output) and
 * /dev/v4l-touch0; instance B is /dev/video4 (capture). Output: TAP-style
 * "ok - " / "not ok - " lines and "# " diagnostics; exit 0 when all passed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/dma-buf.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

#include "bufbroker-protocol.h"
#include "bufbroker.h"
#include "daemon-state.h"
#include "macro.h"
#include "private-bus.h"

#define DEV_A           "/dev/video0"           /* exporter: vivid instance 0 capture */
#define DEV_A_OUT       "/dev/video1"           /* instance 0 video output */
#define DEV_B           "/dev/video4"           /* importer: vivid instance 1 capture */
#define DEV_TOUCH       "/dev/v4l-touch0"       /* native TD16 only: libv4l2 emulates RGB3 & co. */

#define W 640
#define H 480
#define FRAME_TIMEOUT_MS 30000  /* TCG: vivid's frame thread is slow, be generous */

/* ------------------------------------------------------------------ TAP --- */

static const char *phase = "?";
static unsigned n_passed, n_failed;

static void print_oneline(const char *s) {
        for (; *s; s++)
                putchar(*s == '\n' || *s == '\r' ? ' ' : *s);
}

_printf_(1, 2) static void diag(const char *fmt, ...) {
        char buf[4096];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        fputs("# ", stdout);
        print_oneline(buf);
        putchar('\n');
        fflush(stdout);
}

__attribute__((__format__(printf, 2, 0))) static bool vcheck(bool ok, const char *fmt, va_list ap) {
        char buf[4096];

        vsnprintf(buf, sizeof(buf), fmt, ap);
        printf("%s - [%s] ", ok ? "ok" : "not ok", phase);
        print_oneline(buf);
        putchar('\n');
        fflush(stdout);
        if (ok)
                n_passed++;
        else
                n_failed++;
        return ok;
}

_printf_(2, 3) static bool check(bool ok, const char *fmt, ...) {
        va_list ap;
        bool r;

        va_start(ap, fmt);
        r = vcheck(ok, fmt, ap);
        va_end(ap);
        return r;
}

/* The reasons a multi-part case failed: empty means it passed. */
typedef struct Why {
        char s[4096];
        size_t n;
} Why;

_printf_(2, 3) static void why(Why *w, const char *fmt, ...) {
        va_list ap;
        int k;

        if (w->n >= sizeof(w->s) - 16)
                return;
        if (w->n > 0)
                w->n += (size_t) snprintf(w->s + w->n, sizeof(w->s) - w->n, "; ");
        va_start(ap, fmt);
        k = vsnprintf(w->s + w->n, sizeof(w->s) - w->n, fmt, ap);
        va_end(ap);
        if (k > 0)
                w->n += (size_t) k;
        if (w->n >= sizeof(w->s))
                w->n = sizeof(w->s) - 1;
}

_printf_(2, 3) static bool check_why(const Why *w, const char *fmt, ...) {
        va_list ap;
        bool r;

        va_start(ap, fmt);
        r = vcheck(w->n == 0, fmt, ap);
        va_end(ap);
        if (!r)
                diag("because: %s", w->s);
        return r;
}

/* ---------------------------------------------------------------- misc --- */

static uint64_t now_ms(void) {
        return pbus_now_usec() / 1000u;
}

static void msleep(unsigned ms) {
        pbus_msleep(ms);
}

static uint64_t page_align(uint64_t n) {
        uint64_t p = (uint64_t) sysconf(_SC_PAGESIZE);
        return (n + p - 1) / p * p;
}

static const char *fcc(uint32_t f, char buf[static 5]) {
        return bb_fourcc_to_string(f, buf);
}

static uint64_t fnv1a(const void *p, size_t n) {
        const unsigned char *b = p;
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < n; i++) {
                h ^= b[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

/* ----------------------------------------------------------------- bus --- */

static sd_bus *bus;                     /* the test's raw connection */
static pid_t daemon_pid;
static char daemon_owner[128];

static const char *errname(const sd_bus_error *e, int r) {
        return e && e->name ? e->name : strerror(r < 0 ? -r : r);
}

static int name_owner(char *buf, size_t n) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        const char *s;
        int r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetNameOwner", &e, &m, "s", BB_BUS_NAME);
        if (r >= 0)
                r = sd_bus_message_read(m, "s", &s);
        if (r >= 0)
                snprintf(buf, n, "%s", s);
        sd_bus_message_unref(m);
        sd_bus_error_free(&e);
        return r;
}

static int daemon_lookup(void) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        uint32_t pid;
        int r;

        r = name_owner(daemon_owner, sizeof(daemon_owner));
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetConnectionUnixProcessID", &e, &m, "s", daemon_owner);
        if (r >= 0)
                r = sd_bus_message_read(m, "u", &pid);
        if (r >= 0)
                daemon_pid = (pid_t) pid;
        sd_bus_message_unref(m);
        sd_bus_error_free(&e);
        return r;
}

/* The same process still owns the name. */
static bool daemon_alive(void) {
        char owner[128];

        return daemon_pid > 0 && kill(daemon_pid, 0) == 0 && name_owner(owner, sizeof(owner)) >= 0 &&
               strcmp(owner, daemon_owner) == 0;
}

static int snap_read(Snapshot *s) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = snapshot_read(bus, daemon_pid, s, &e);

        sd_bus_error_free(&e);
        return r;
}

static Snapshot base;   /* the daemon after warm-up, nothing held */

static bool alive(void *userdata) {
        return daemon_alive();
}

/* Poll until the daemon is back at the baseline; say why not into w. */
static bool back_to_base(int timeout_ms, Why *w) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char a[256], b[256];
        Snapshot s;
        int r;

        r = snapshot_wait(bus, daemon_pid, &base, timeout_ms, 50, alive, NULL, &s, &e);
        if (r == -ESRCH)
                why(w, "the daemon (pid %d, %s) is gone", (int) daemon_pid, daemon_owner);
        else if (r < 0)
                why(w, "cannot read the daemon's state: %s", e.message ?: strerror(-r));
        else if (r == 0) {
                snapshot_format(&s, a, sizeof(a));
                snapshot_format(&base, b, sizeof(b));
                why(w, "daemon state {%s}, baseline {%s}", a, b);
        }
        sd_bus_error_free(&e);
        return r > 0;
}

/* ---- raw CreateV4L2 ------------------------------------------------------- */

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

static int append_kv(sd_bus_message *m, const KV *kv) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (; r >= 0 && kv && kv->key; kv++) {
                char sig[2] = { kv->type, 0 };

                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", kv->key);
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', sig);
                if (r >= 0)
                        switch (kv->type) {
                        case 'u': r = sd_bus_message_append(m, "u", (uint32_t) kv->n); break;
                        case 't': r = sd_bus_message_append(m, "t", kv->n); break;
                        case 'b': r = sd_bus_message_append(m, "b", (int) kv->n); break;
                        case 'd': r = sd_bus_message_append(m, "d", (double) kv->n); break;
                        case 's': r = sd_bus_message_append(m, "s", kv->s); break;
                        default: r = -EINVAL;
                        }
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

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

static void created_done(Created *c) {
        for (unsigned i = 0; i < c->n; i++)
                free(c->paths[i]);
        *c = (Created) {};
}

static int read_au(sd_bus_message *m, uint32_t *v, unsigned *n) {
        const void *p;
        size_t sz;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "au");
        if (r >= 0)
                r = sd_bus_message_read_array(m, 'u', &p, &sz);
        if (r >= 0) {
                *n = (unsigned) (sz / sizeof(uint32_t));
                if (*n > 8)
                        *n = 8;
                memcpy(v, p, *n * sizeof(uint32_t));
                r = sd_bus_message_exit_container(m);
        }
        return r;
}

/* Read an a{sv} format (CreateV4L2's reply, or the format keys of an info). */
static int read_format(sd_bus_message *m, RFmt *f) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0) {
                const char *key, *contents, *s;
                char type;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(m, "s", &key);
                if (r >= 0)
                        r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        break;
                f->seen++;
#define U(k, field) else if (strcmp(key, k) == 0 && strcmp(contents, "u") == 0) r = sd_bus_message_read(m, "v", "u", &f->field)
                if (0)
                        ;
                U(BB_FMT_WIDTH, width);
                U(BB_FMT_HEIGHT, height);
                U(BB_FMT_FIELD, field);
                U(BB_FMT_NUM_PLANES, num_planes);
                U(BB_FMT_COUNT, count);
#undef U
                else if (strcmp(key, BB_FMT_FOURCC) == 0 && strcmp(contents, "s") == 0) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0)
                                snprintf(f->fourcc, sizeof(f->fourcc), "%s", s);
                } else if (strcmp(key, BB_FMT_TYPE) == 0 && strcmp(contents, "s") == 0) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0)
                                snprintf(f->type, sizeof(f->type), "%s", s);
                } else if (strcmp(key, BB_FMT_BYTESPERLINE) == 0 && strcmp(contents, "au") == 0)
                        r = read_au(m, f->bpl, &f->n_bpl);
                else if (strcmp(key, BB_FMT_SIZEIMAGE) == 0 && strcmp(contents, "au") == 0)
                        r = read_au(m, f->size, &f->n_size);
                else
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r;
}

static int create_raw(sd_bus *b, const char *dev, uint32_t count, const KV *fmt, const KV *opts,
                      Created *ret, sd_bus_error *e) {
        sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        int r;

        *ret = (Created) {};
        r = sd_bus_message_new_method_call(b, &m, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateV4L2");
        if (r >= 0)
                r = sd_bus_message_append(m, "su", dev, count);
        if (r >= 0)
                r = append_kv(m, fmt);
        if (r >= 0)
                r = append_kv(m, opts);
        if (r >= 0)
                r = sd_bus_call(b, m, 60 * 1000000ULL, e, &reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "o");
        while (r >= 0) {
                r = sd_bus_message_read(reply, "o", &path);
                if (r <= 0)
                        break;
                if (ret->n < ELEMENTSOF(ret->paths))
                        ret->paths[ret->n++] = strdup(path);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = read_format(reply, &ret->fmt);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        return r;
}

static int release_path(sd_bus *b, const char *path) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(b, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release", &e, NULL, "");
        if (r < 0)
                diag("Release %s: %s: %s", path, errname(&e, r), e.message ?: "");
        sd_bus_error_free(&e);
        return r;
}

static int release_all(sd_bus *b, Created *c) {
        int r = 0;

        for (unsigned i = 0; i < c->n; i++)
                if (release_path(b, c->paths[i]) < 0)
                        r = -EIO;
        return r;
}

/* CreateV4L2 with a plain format; returns r, diag on failure. */
static int create_simple(const char *dev, uint32_t count, uint32_t fourcc, Created *ret) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char f[5];
        KV fmt[] = { KU(BB_FMT_WIDTH, W), KU(BB_FMT_HEIGHT, H), KS(BB_FMT_FOURCC, fcc(fourcc, f)), KEND };
        int r;

        r = create_raw(bus, dev, count, fmt, NULL, ret, &e);
        if (r < 0)
                diag("CreateV4L2 %s %u %s: %s: %s", dev, count, f, errname(&e, r), e.message ?: "");
        sd_bus_error_free(&e);
        return r;
}

/* ---- V4L2 ------------------------------------------------------------------ */

static int xioctl(int fd, unsigned long req, void *arg) {
        int r;

        do
                r = ioctl(fd, req, arg);
        while (r < 0 && errno == EINTR);
        return r < 0 ? -errno : 0;
}

static bool type_is_mplane(uint32_t t) {
        return t == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE || t == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
}

typedef struct DevFmt {
        uint32_t type, width, height, fourcc, field, n_planes;
        uint32_t bpl[VIDEO_MAX_PLANES], size[VIDEO_MAX_PLANES];
        char bus_info[33];
} DevFmt;

static void devfmt_from(const struct v4l2_format *f, DevFmt *d) {
        d->type = f->type;
        if (type_is_mplane(f->type)) {
                d->width = f->fmt.pix_mp.width;
                d->height = f->fmt.pix_mp.height;
                d->fourcc = f->fmt.pix_mp.pixelformat;
                d->field = f->fmt.pix_mp.field;
                d->n_planes = f->fmt.pix_mp.num_planes;
                for (unsigned i = 0; i < d->n_planes && i < VIDEO_MAX_PLANES; i++) {
                        d->bpl[i] = f->fmt.pix_mp.plane_fmt[i].bytesperline;
                        d->size[i] = f->fmt.pix_mp.plane_fmt[i].sizeimage;
                }
        } else {
                d->width = f->fmt.pix.width;
                d->height = f->fmt.pix.height;
                d->fourcc = f->fmt.pix.pixelformat;
                d->field = f->fmt.pix.field;
                d->n_planes = 1;
                d->bpl[0] = f->fmt.pix.bytesperline;
                d->size[0] = f->fmt.pix.sizeimage;
        }
}

/* Open a capture node of ours; type is its (only) capture type. */
static int dev_open(const char *path, uint32_t *ret_type, char bus_info[33]) {
        struct v4l2_capability cap = {};
        uint32_t caps;
        int fd, r;

        fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = xioctl(fd, VIDIOC_QUERYCAP, &cap);
        if (r < 0) {
                close(fd);
                return r;
        }
        caps = cap.capabilities & V4L2_CAP_DEVICE_CAPS ? cap.device_caps : cap.capabilities;
        if (caps & V4L2_CAP_VIDEO_CAPTURE_MPLANE)
                *ret_type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
        else if (caps & V4L2_CAP_VIDEO_CAPTURE)
                *ret_type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        else if (caps & V4L2_CAP_VIDEO_OUTPUT_MPLANE)
                *ret_type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
        else
                *ret_type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        if (bus_info)
                snprintf(bus_info, 33, "%.32s", (const char *) cap.bus_info);
        return fd;
}

/* What the driver says its current format is (another file handle may ask). */
static int dev_get_fmt(const char *path, DevFmt *ret) {
        struct v4l2_format f = {};
        uint32_t type;
        int fd, r;

        *ret = (DevFmt) {};
        fd = dev_open(path, &type, ret->bus_info);
        if (fd < 0)
                return fd;
        f.type = type;
        r = xioctl(fd, VIDIOC_G_FMT, &f);
        close(fd);
        if (r >= 0)
                devfmt_from(&f, ret);
        return r;
}

typedef struct Mapping {
        void *addr;
        size_t len;
} Mapping;

static void mapping_done(Mapping *m) {
        if (m->addr && m->addr != MAP_FAILED)
                munmap(m->addr, m->len);
        *m = (Mapping) {};
}

/* The exporter's own view: map MMAP buffer @index, plane @plane, of the
 * device's queue through a V4L2 file handle of ours (QUERYBUF and mmap are
 * open to any file handle of the device, not only the queue's owner). */
static int exporter_map(const char *path, unsigned index, unsigned plane, Mapping *ret) {
        struct v4l2_plane planes[VIDEO_MAX_PLANES] = {};
        struct v4l2_buffer b = {};
        uint32_t type;
        uint64_t offset;
        size_t len;
        void *p;
        int fd, r;

        *ret = (Mapping) {};
        fd = dev_open(path, &type, NULL);
        if (fd < 0)
                return fd;
        b.type = type;
        b.memory = V4L2_MEMORY_MMAP;
        b.index = index;
        if (type_is_mplane(type)) {
                b.m.planes = planes;
                b.length = VIDEO_MAX_PLANES;
        }
        r = xioctl(fd, VIDIOC_QUERYBUF, &b);
        if (r < 0) {
                close(fd);
                return r;
        }
        if (type_is_mplane(type)) {
                len = planes[plane].length;
                offset = planes[plane].m.mem_offset;
        } else {
                len = b.length;
                offset = b.m.offset;
        }
        p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t) offset);
        r = p == MAP_FAILED ? -errno : 0;
        close(fd);
        if (r < 0)
                return r;
        *ret = (Mapping) { p, len };
        return 0;
}

/* ---- dma-buf ---------------------------------------------------------------- */

typedef struct DmaBuf {
        bool is_dmabuf;
        char link[160];
        uint64_t size;          /* fdinfo "size:" */
        char exp_name[64];
        char name[160];
} DmaBuf;

static void dmabuf_info(int fd, DmaBuf *d) {
        char path[64], line[256];
        ssize_t k;
        FILE *f;

        *d = (DmaBuf) {};
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        k = readlink(path, d->link, sizeof(d->link) - 1);
        if (k > 0)
                d->link[k] = 0;
        d->is_dmabuf = strncmp(d->link, "/dmabuf:", 8) == 0 || strncmp(d->link, "anon_inode:dmabuf", 17) == 0;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
        f = fopen(path, "re");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = 0;
                if (strncmp(line, "size:", 5) == 0)
                        d->size = strtoull(line + 5, NULL, 10);
                else if (strncmp(line, "exp_name:", 9) == 0)
                        snprintf(d->exp_name, sizeof(d->exp_name), "%s", line + 9 + strspn(line + 9, " \t"));
                else if (strncmp(line, "name:", 5) == 0)
                        snprintf(d->name, sizeof(d->name), "%s", line + 5 + strspn(line + 5, " \t"));
        }
        fclose(f);
}

static int dma_sync(int fd, uint64_t flags) {
        struct dma_buf_sync s = { .flags = flags };
        return xioctl(fd, DMA_BUF_IOCTL_SYNC, &s);
}

/* ---- library helpers ------------------------------------------------------- */

static int lib_create(bb_client *c, const char *dev, unsigned count, uint32_t fourcc, unsigned flags,
                      bb_buffer ***l, size_t *n) {
        char f[5];
        int r;

        *l = NULL;
        *n = 0;
        r = bb_buffer_create_v4l2(c, dev, count, W, H, fourcc, NULL, flags, 0, l, n);
        if (r < 0)
                diag("bb_buffer_create_v4l2(%s, %u, %ux%u %s): %s (%s: %s)", dev, count, W, H, fcc(fourcc, f),
                     strerror(-r), bb_client_error_name(c) ?: "-", bb_client_error_message(c) ?: "-");
        return r;
}

static int release_list(bb_buffer **l, size_t n) {
        int r = 0, k;

        for (size_t i = 0; i < n; i++) {
                k = bb_buffer_release(l[i]);
                if (k < 0) {
                        diag("bb_buffer_release(%" PRIu64 "): %s", bb_buffer_id(l[i]), strerror(-k));
                        r = k;
                }
        }
        return r;
}

static int client_new(bb_client **c) {
        int r = bb_client_new(c);
        if (r < 0)
                diag("bb_client_new: %s", strerror(-r));
        return r;
}

/* ============================================================== cases === */

/* Warm the daemon up (a set created, shared, opened and released: every lazy
 * thing opened once), then take the baseline the cases come back to. */
static bool warm_up(const char *dev) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        Created c = {};
        Why w = {};
        int r;

        r = create_simple(dev, 2, V4L2_PIX_FMT_YUYV, &c);
        if (r < 0)
                why(&w, "CreateV4L2 failed");
        else {
                r = sd_bus_call_method(bus, BB_BUS_NAME, c.paths[0], BB_BUFFER_INTERFACE, "Share", &e, &reply,
                                       "a{sv}", 1, BB_OPT_TTL_USEC, "t", (uint64_t) 60000000);
                if (r < 0)
                        why(&w, "Share: %s", errname(&e, r));
                reply = sd_bus_message_unref(reply);
                sd_bus_error_free(&e);
                r = sd_bus_call_method(bus, BB_BUS_NAME, c.paths[0], BB_BUFFER_INTERFACE, "OpenFds", &e, &reply,
                                       "a{sv}", 0);
                if (r < 0)
                        why(&w, "OpenFds: %s", errname(&e, r));
                reply = sd_bus_message_unref(reply);
                sd_bus_error_free(&e);
                if (release_all(bus, &c) < 0)
                        why(&w, "Release failed");
        }
        created_done(&c);
        /* The share token went with its buffer; let everything settle. */
        msleep(200);
        if (snap_read(&base) < 0)
                why(&w, "cannot read Stats");
        else if (base.buffers != 0 || base.tokens != 0)
                why(&w, "the daemon holds %" PRIu64 " buffers and %" PRIu64 " tokens before the cases (start it fresh)",
                    base.buffers, base.tokens);
        return check_why(&w, "warm-up on %s (create, share, open, release); baseline: %d daemon fds", dev, base.fds);
}

/* ---- 1/2: a set's format, planes and dma-bufs ---------------------------------- */

typedef struct Expect {
        uint32_t fourcc;
        const char *type;               /* "capture" or "capture-mplane" */
        unsigned n_planes;
        uint32_t bpl[3], size[3];       /* vivid at 640x480 */
} Expect;

static void case_set(const Expect *x, unsigned count, const char *alloc_exp) {
        bb_client *c = NULL;
        bb_buffer **l = NULL;
        size_t n = 0;
        DevFmt df;
        char f[5], s[5];
        Why w = {};
        int r;

        fcc(x->fourcc, f);
        if (client_new(&c) < 0 || lib_create(c, DEV_A, count, x->fourcc, 0, &l, &n) < 0 || n != count) {
                check(false, "%s: library creates %u buffers of %ux%u %s (got %zu)", DEV_A, count, W, H, f, n);
                goto out;
        }
        check(true, "%s: library creates %u buffers of %ux%u %s (one OpenFds per buffer)", DEV_A, count, W, H, f);

        /* The driver's own word, through a file handle of ours. */
        r = dev_get_fmt(DEV_A, &df);
        if (r < 0)
                why(&w, "G_FMT on %s: %s", DEV_A, strerror(-r));
        else {
                if (df.width != W || df.height != H || df.fourcc != x->fourcc || df.n_planes != x->n_planes)
                        why(&w, "the driver has %ux%u %s with %u planes", df.width, df.height, fcc(df.fourcc, s),
                            df.n_planes);
                for (unsigned p = 0; p < x->n_planes && p < df.n_planes; p++)
                        if (df.bpl[p] != x->bpl[p] || df.size[p] != x->size[p])
                                why(&w, "driver plane %u: bytesperline %u sizeimage %u, vivid's are %u %u", p,
                                    df.bpl[p], df.size[p], x->bpl[p], x->size[p]);
        }
        for (size_t i = 0; i < n; i++) {
                bb_buffer *b = l[i];
                uint64_t total = 0;

                if (bb_buffer_width(b) != df.width || bb_buffer_height(b) != df.height ||
                    bb_buffer_fourcc(b) != df.fourcc)
                        why(&w, "buffer %zu says %ux%u %s", i, bb_buffer_width(b), bb_buffer_height(b),
                            fcc(bb_buffer_fourcc(b), s));
                if (strcmp(bb_buffer_kind(b), BB_KIND_V4L2) != 0)
                        why(&w, "buffer %zu: kind %s", i, bb_buffer_kind(b));
                if (!bb_buffer_format_type(b) || strcmp(bb_buffer_format_type(b), x->type) != 0)
                        why(&w, "buffer %zu: type %s", i, bb_buffer_format_type(b) ?: "(null)");
                if (bb_buffer_v4l2_index(b) != (int) i)
                        why(&w, "buffer %zu: index %d", i, bb_buffer_v4l2_index(b));
                if (bb_buffer_n_planes(b) != x->n_planes) {
                        why(&w, "buffer %zu: %u planes", i, bb_buffer_n_planes(b));
                        continue;
                }
                for (unsigned p = 0; p < x->n_planes; p++) {
                        if (bb_buffer_plane_length(b, p) != df.size[p] || bb_buffer_plane_stride(b, p) != df.bpl[p] ||
                            bb_buffer_plane_offset(b, p) != 0)
                                why(&w, "buffer %zu plane %u: length %" PRIu64 " stride %u offset %u", i, p,
                                    bb_buffer_plane_length(b, p), bb_buffer_plane_stride(b, p),
                                    bb_buffer_plane_offset(b, p));
                        total += bb_buffer_plane_length(b, p);
                }
                if (bb_buffer_size(b) != total)
                        why(&w, "buffer %zu: size %" PRIu64 ", its planes make %" PRIu64, i, bb_buffer_size(b), total);
        }
        check_why(&w, "the buffers carry the driver's format (G_FMT on our own fd): %s, %s, %u plane(s), "
                  "bytesperline %u/%u/%u, lengths %u/%u/%u, offset 0, kind v4l2, V4L2 index order",
                  f, x->type, x->n_planes, x->bpl[0], x->bpl[1], x->bpl[2], x->size[0], x->size[1], x->size[2]);

        /* Real dma-bufs, one per plane. */
        w = (Why) {};
        {
                ino_t inodes[64 * 3];
                unsigned n_ino = 0;
                char example[160] = "";

                for (size_t i = 0; i < n; i++)
                        for (unsigned p = 0; p < bb_buffer_n_planes(l[i]); p++) {
                                int fd = bb_buffer_plane_fd(l[i], p);
                                uint64_t len = bb_buffer_plane_length(l[i], p);
                                struct stat st;
                                off_t end;
                                DmaBuf d;
                                int fl, fdfl;

                                dmabuf_info(fd, &d);
                                if (!example[0])
                                        snprintf(example, sizeof(example), "%s", d.link);
                                if (!d.is_dmabuf) {
                                        why(&w, "buffer %zu plane %u: fd %d is %s, no dma-buf", i, p, fd, d.link);
                                        continue;
                                }
                                if (strcmp(d.exp_name, alloc_exp) != 0)
                                        why(&w, "buffer %zu plane %u: exported by %s, not %s", i, p, d.exp_name,
                                            alloc_exp);
                                if (strcmp(d.name, bb_buffer_name(l[i])) != 0)
                                        why(&w, "buffer %zu plane %u: dma-buf name '%s', buffer name '%s'", i, p,
                                            d.name, bb_buffer_name(l[i]));
                                end = lseek(fd, 0, SEEK_END);
                                if (end < 0 || (uint64_t) end != page_align(len) || d.size != (uint64_t) end)
                                        why(&w, "buffer %zu plane %u: lseek(SEEK_END) %lld, fdinfo size %" PRIu64
                                            ", plane length %" PRIu64, i, p, (long long) end, d.size, len);
                                (void) lseek(fd, 0, SEEK_SET);
                                fl = fcntl(fd, F_GETFL);
                                fdfl = fcntl(fd, F_GETFD);
                                if (fl < 0 || (fl & O_ACCMODE) != O_RDWR || fdfl < 0 || !(fdfl & FD_CLOEXEC))
                                        why(&w, "buffer %zu plane %u: flags 0%o fd flags %d (want O_RDWR, FD_CLOEXEC)",
                                            i, p, fl, fdfl);
                                if (fstat(fd, &st) == 0) {
                                        for (unsigned k = 0; k < n_ino; k++)
                                                if (inodes[k] == st.st_ino)
                                                        why(&w, "buffer %zu plane %u: the same dma-buf as another plane", i, p);
                                        if (n_ino < ELEMENTSOF(inodes))
                                                inodes[n_ino++] = st.st_ino;
                                }
                        }
                check_why(&w, "every plane is its own %s dma-buf (%s...), named after its buffer, "
                          "lseek(SEEK_END) = the page-rounded plane length, O_RDWR|O_CLOEXEC",
                          alloc_exp, example);
        }

        /* CPU access: write through our dma-buf mapping between sync begin
         * and end, and find the bytes in the device's own V4L2 mapping. */
        w = (Why) {};
        for (size_t i = 0; i < n; i++) {
                if (!bb_buffer_is_writable(l[i])) {
                        why(&w, "buffer %zu: the creator's handle is not writable", i);
                        continue;
                }
                r = bb_buffer_sync_begin(l[i], BB_SYNC_WRITE);
                if (r < 0)
                        why(&w, "buffer %zu: sync_begin(WRITE): %s", i, strerror(-r));
                for (unsigned p = 0; p < bb_buffer_n_planes(l[i]); p++) {
                        unsigned char *a;
                        size_t sz;
                        void *v;

                        r = bb_buffer_map_plane(l[i], p, &v, &sz);
                        if (r < 0) {
                                why(&w, "buffer %zu plane %u: map: %s", i, p, strerror(-r));
                                continue;
                        }
                        a = v;
                        if (sz != bb_buffer_plane_length(l[i], p))
                                why(&w, "buffer %zu plane %u: mapped %zu bytes", i, p, sz);
                        for (size_t k = 0; k < sz; k++)
                                a[k] = (unsigned char) (k * 7 + i * 13 + p * 101);
                }
                r = bb_buffer_sync_end(l[i], BB_SYNC_WRITE);
                if (r < 0)
                        why(&w, "buffer %zu: sync_end(WRITE): %s", i, strerror(-r));

                for (unsigned p = 0; p < bb_buffer_n_planes(l[i]); p++) {
                        int fd = bb_buffer_plane_fd(l[i], p);
                        Mapping em;
                        size_t sz;
                        void *v;

                        /* the raw ioctls, too */
                        if ((r = dma_sync(fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)) < 0 ||
                            (r = dma_sync(fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ)) < 0)
                                why(&w, "buffer %zu plane %u: DMA_BUF_IOCTL_SYNC: %s", i, p, strerror(-r));
                        r = exporter_map(DEV_A, (unsigned) i, p, &em);
                        if (r < 0) {
                                why(&w, "buffer %zu plane %u: V4L2 mmap of %s: %s", i, p, DEV_A, strerror(-r));
                                continue;
                        }
                        if (bb_buffer_map_plane(l[i], p, &v, &sz) < 0 || em.len < sz || memcmp(em.addr, v, sz) != 0)
                                why(&w, "buffer %zu plane %u: %s's V4L2 mapping (%zu bytes) differs from the dma-buf's", i,
                                    p, DEV_A, em.len);
                        mapping_done(&em);
                }
        }
        check_why(&w, "bytes written through each dma-buf mmap (between bb_buffer_sync_begin/end) are in %s's own "
                  "V4L2 MMAP buffer; DMA_BUF_IOCTL_SYNC START/END|READ succeed", DEV_A);

        if (release_list(l, n) < 0)
                check(false, "release of the set");
out:
        bb_buffer_list_free(l, n);
        bb_client_unref(c);
        w = (Why) {};
        back_to_base(5000, &w);
        check_why(&w, "%s set released: Stats and daemon fds back at baseline", f);
}

/* Share/Open, read-only fds, orphaned memory after teardown. */
static void case_sharing_and_orphans(void) {
        bb_client *c = NULL, *c2 = NULL;
        bb_buffer **l = NULL, *o = NULL, *ro = NULL;
        char *token = NULL;
        Created again = {};
        struct stat st1, st2;
        size_t n = 0, sz, sz2;
        void *v, *v2;
        uint64_t sum;
        Why w = {};
        int r;

        if (client_new(&c) < 0 || client_new(&c2) < 0 || lib_create(c, DEV_A, 3, V4L2_PIX_FMT_YUYV, 0, &l, &n) < 0) {
                check(false, "set up for sharing");
                goto out;
        }
        if (!bb_buffer_is_writable(l[0]) || bb_buffer_map(l[0], &v, &sz) < 0) {
                check(false, "map buffer 0 writable");
                goto out;
        }
        bb_buffer_sync_begin(l[0], BB_SYNC_WRITE);
        memset(v, 0x5a, sz);
        memcpy(v, "bufbroker", 9);
        bb_buffer_sync_end(l[0], BB_SYNC_WRITE);
        sum = fnv1a(v, sz);

        /* Another connection opens it by token. */
        r = bb_buffer_share(l[0], 0, 0, 0, &token);
        if (r < 0)
                why(&w, "share: %s", strerror(-r));
        else if ((r = bb_buffer_open(c2, token, &o)) < 0)
                why(&w, "open: %s (%s)", strerror(-r), bb_client_error_message(c2) ?: "");
        else {
                if (bb_buffer_n_planes(o) != 1 || bb_buffer_width(o) != W || bb_buffer_fourcc(o) != V4L2_PIX_FMT_YUYV ||
                    strcmp(bb_buffer_kind(o), BB_KIND_V4L2) != 0 || bb_buffer_v4l2_index(o) != 0)
                        why(&w, "opened: %u planes, width %u, kind %s, index %d", bb_buffer_n_planes(o),
                            bb_buffer_width(o), bb_buffer_kind(o), bb_buffer_v4l2_index(o));
                if (fstat(bb_buffer_fd(o), &st2) < 0 || fstat(bb_buffer_fd(l[0]), &st1) < 0 || st1.st_ino != st2.st_ino)
                        why(&w, "the opener's fd is not the same dma-buf");
                if (bb_buffer_map(o, &v2, &sz2) < 0 || sz2 != sz || fnv1a(v2, sz2) != sum)
                        why(&w, "the opener does not see the creator's bytes");
        }
        check_why(&w, "Share + Open from a second connection: the same dma-buf, with format and index in its info");

        /* Read-only fds: by option for the owner, and a read-only set. */
        w = (Why) {};
        r = bb_buffer_open_fds(c2, bb_buffer_id(l[0]), BB_OPEN_READ_ONLY, &ro);
        if (r < 0)
                why(&w, "open_fds(READ_ONLY): %s", strerror(-r));
        else {
                int fd = bb_buffer_fd(ro), fl = fcntl(fd, F_GETFL);
                void *p;
                DmaBuf d;

                dmabuf_info(fd, &d);
                if (!d.is_dmabuf || fl < 0 || (fl & O_ACCMODE) != O_RDONLY)
                        why(&w, "fd %s, flags 0%o (want an O_RDONLY dma-buf)", d.link, fl);
                p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (p != MAP_FAILED) {
                        why(&w, "a writable mmap of the O_RDONLY fd succeeded");
                        munmap(p, sz);
                } else if (errno != EACCES)
                        why(&w, "writable mmap failed with %s, not EACCES", strerror(errno));
                if (bb_buffer_is_writable(ro))
                        why(&w, "bb_buffer_is_writable() says 1");
                if (bb_buffer_map(ro, &v2, &sz2) < 0 || fnv1a(v2, sz2) != sum)
                        why(&w, "its read-only mapping does not show the bytes");
        }
        check_why(&w, "OpenFds read-only: an O_RDONLY dma-buf of the same memory that refuses PROT_WRITE (EACCES)");

        /* A read-only token: the opener gets the read-only export. */
        w = (Why) {};
        {
                char *rt = NULL;
                bb_buffer *rb = NULL;

                r = bb_buffer_share(l[1], BB_SHARE_READ_ONLY, 0, 0, &rt);
                if (r < 0)
                        why(&w, "share read-only: %s", strerror(-r));
                else if ((r = bb_buffer_open(c2, rt, &rb)) < 0)
                        why(&w, "open: %s (%s)", strerror(-r), bb_client_error_message(c2) ?: "");
                else {
                        int fl = fcntl(bb_buffer_fd(rb), F_GETFL);
                        void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, bb_buffer_fd(rb), 0);
                        DmaBuf d;

                        dmabuf_info(bb_buffer_fd(rb), &d);
                        if (!d.is_dmabuf || fl < 0 || (fl & O_ACCMODE) != O_RDONLY || !bb_buffer_is_read_only(rb))
                                why(&w, "fd %s flags 0%o, read-only %d", d.link, fl, bb_buffer_is_read_only(rb));
                        if (p != MAP_FAILED) {
                                why(&w, "a writable mmap succeeded");
                                munmap(p, sz);
                        }
                }
                bb_buffer_unref(rb);
                free(rt);
        }
        check_why(&w, "a read-only token opens as an O_RDONLY dma-buf that refuses PROT_WRITE");

        /* Freeze is for memfds: a dma-buf has no seals. */
        w = (Why) {};
        r = bb_buffer_freeze(l[2]);
        if (r >= 0)
                why(&w, "Freeze of a v4l2 buffer succeeded");
        else if (!bb_client_error_message(c) || !strstr(bb_client_error_message(c), "v4l2"))
                why(&w, "Freeze failed with %s: %s (no word of v4l2)", bb_client_error_name(c) ?: strerror(-r),
                    bb_client_error_message(c) ?: "");
        check_why(&w, "Freeze of a v4l2 buffer is refused (%s: %s)", bb_client_error_name(c) ?: "-",
                  bb_client_error_message(c) ?: "-");

        /* Release everything on the broker's side, keep our fds: the set is
         * torn down (REQBUFS(0), ORPHANED_BUFS) and the device free again,
         * while our mapping still holds the memory. */
        w = (Why) {};
        bb_buffer_unref(o);
        bb_buffer_unref(ro);
        o = ro = NULL;
        c2 = bb_client_unref(c2);
        if (release_list(l, n) < 0)
                why(&w, "release failed");
        back_to_base(5000, &w);
        if (create_simple(DEV_A, 2, V4L2_PIX_FMT_YUYV, &again) < 0)
                why(&w, "a new CreateV4L2 on %s failed while we still hold the old set's fds", DEV_A);
        else if (release_all(bus, &again) < 0)
                why(&w, "release of the new set failed");
        if (fnv1a(v, sz) != sum || memcmp(v, "bufbroker", 9) != 0)
                why(&w, "our mapping of the released buffer changed");
        if (lseek(bb_buffer_fd(l[0]), 0, SEEK_END) != (off_t) page_align(sz))
                why(&w, "lseek on the orphaned dma-buf fails");
        check_why(&w, "released while we keep the fds: set torn down, a new CreateV4L2 on %s succeeds, "
                  "and our mapping still shows our bytes (orphaned buffers live on)", DEV_A);

out:
        created_done(&again);
        free(token);
        bb_buffer_unref(o);
        bb_buffer_unref(ro);
        bb_buffer_list_free(l, n);
        bb_client_unref(c2);
        bb_client_unref(c);
        w = (Why) {};
        back_to_base(5000, &w);
        check_why(&w, "after sharing: Stats and daemon fds back at baseline");
}

/* A read-only set, the driver adjusting size and count, other node kinds. */
static void case_options_and_nodes(void) {
        bb_client *c = NULL;
        bb_buffer **l = NULL;
        size_t n = 0;
        Created cr = {};
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char f[5];
        DevFmt df;
        Why w = {};
        int r;

        if (client_new(&c) < 0)
                return;

        /* read-only */
        r = lib_create(c, DEV_A, 2, V4L2_PIX_FMT_YUYV, BB_CREATE_READ_ONLY, &l, &n);
        if (r < 0)
                why(&w, "create: %s", strerror(-r));
        for (size_t i = 0; i < n; i++) {
                int fd = bb_buffer_fd(l[i]), fl = fcntl(fd, F_GETFL);
                void *p = mmap(NULL, bb_buffer_plane_length(l[i], 0), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

                if (fl < 0 || (fl & O_ACCMODE) != O_RDONLY)
                        why(&w, "buffer %zu: fd flags 0%o", i, fl);
                if (p != MAP_FAILED) {
                        why(&w, "buffer %zu: writable mmap succeeded", i);
                        munmap(p, bb_buffer_plane_length(l[i], 0));
                }
                if (!bb_buffer_is_read_only(l[i]) || bb_buffer_is_writable(l[i]))
                        why(&w, "buffer %zu: is_read_only %d is_writable %d", i, bb_buffer_is_read_only(l[i]),
                            bb_buffer_is_writable(l[i]));
        }
        release_list(l, n);
        l = bb_buffer_list_free(l, n);
        back_to_base(5000, &w);
        check_why(&w, "option read-only: the creator itself gets O_RDONLY dma-bufs that refuse PROT_WRITE");

        /* the driver adjusts size and count: the reply says what it chose */
        w = (Why) {};
        {
                KV fmt[] = { KU(BB_FMT_WIDTH, 650), KU(BB_FMT_HEIGHT, 490), KS(BB_FMT_FOURCC, "YUYV"), KEND };

                r = create_raw(bus, DEV_A, 1, fmt, NULL, &cr, &e);
                if (r < 0)
                        why(&w, "CreateV4L2 650x490, 1 buffer: %s: %s", errname(&e, r), e.message ?: "");
                else {
                        r = dev_get_fmt(DEV_A, &df);
                        if (r < 0)
                                why(&w, "G_FMT: %s", strerror(-r));
                        else if (cr.fmt.width != df.width || cr.fmt.height != df.height ||
                                 strcmp(cr.fmt.fourcc, fcc(df.fourcc, f)) != 0 || cr.fmt.field != df.field ||
                                 cr.fmt.num_planes != 1 || cr.fmt.n_bpl != 1 || cr.fmt.bpl[0] != df.bpl[0] ||
                                 cr.fmt.n_size != 1 || cr.fmt.size[0] != df.size[0] ||
                                 strcmp(cr.fmt.type, "capture") != 0)
                                why(&w, "reply %ux%u %s field %u type %s planes %u bpl %u size %u; driver %ux%u %s field %u bpl %u size %u",
                                    cr.fmt.width, cr.fmt.height, cr.fmt.fourcc, cr.fmt.field, cr.fmt.type,
                                    cr.fmt.num_planes, cr.fmt.bpl[0], cr.fmt.size[0], df.width, df.height, f,
                                    df.field, df.bpl[0], df.size[0]);
                        if (cr.fmt.count != cr.n || cr.n < 1)
                                why(&w, "reply count %u with %u buffer paths", cr.fmt.count, cr.n);
                        if (cr.fmt.width == 650 && cr.fmt.height == 490)
                                diag("note: vivid took 650x490 as asked");
                        diag("asked 650x490 x1: the driver chose %ux%u, %u buffers", cr.fmt.width, cr.fmt.height, cr.n);
                        release_all(bus, &cr);
                }
                created_done(&cr);
                sd_bus_error_free(&e);
        }
        back_to_base(5000, &w);
        check_why(&w, "CreateV4L2's reply is the driver's choice (650x490 x1 asked; G_FMT compared: size, field, "
                  "bytesperline, sizeimage; count = number of buffers)");

        /* an output node, and a touch node in its native format */
        w = (Why) {};
        r = bb_buffer_create_v4l2(c, DEV_A_OUT, 2, 0, 0, 0, NULL, 0, 0, &l, &n);
        if (r < 0)
                why(&w, "%s: %s (%s)", DEV_A_OUT, strerror(-r), bb_client_error_message(c) ?: "");
        else {
                DmaBuf d;

                dmabuf_info(bb_buffer_fd(l[0]), &d);
                if (!bb_buffer_format_type(l[0]) || strcmp(bb_buffer_format_type(l[0]), "output") != 0 || !d.is_dmabuf)
                        why(&w, "%s: type %s, fd %s", DEV_A_OUT, bb_buffer_format_type(l[0]) ?: "-", d.link);
                release_list(l, n);
                l = bb_buffer_list_free(l, n);
        }
        r = bb_buffer_create_v4l2(c, DEV_TOUCH, 2, 0, 0, 0, NULL, 0, 0, &l, &n);
        if (r < 0)
                why(&w, "%s: %s (%s)", DEV_TOUCH, strerror(-r), bb_client_error_message(c) ?: "");
        else {
                DmaBuf d;

                dmabuf_info(bb_buffer_fd(l[0]), &d);
                if (bb_buffer_fourcc(l[0]) != v4l2_fourcc('T', 'D', '1', '6') || !d.is_dmabuf)
                        why(&w, "%s: fourcc %s, fd %s", DEV_TOUCH, fcc(bb_buffer_fourcc(l[0]), f), d.link);
                release_list(l, n);
                l = bb_buffer_list_free(l, n);
        }
        back_to_base(5000, &w);
        check_why(&w, "other streaming nodes work: %s (type output) and %s (native TD16)", DEV_A_OUT, DEV_TOUCH);

        bb_buffer_list_free(l, n);
        bb_client_unref(c);
}

/* ---- 3: a second device imports the broker's dma-bufs ------------------------ */

/* Luma at (x, y) of plane 0. */
static unsigned luma(const unsigned char *p, uint32_t fourcc, uint32_t bpl, unsigned x, unsigned y) {
        return fourcc == V4L2_PIX_FMT_YUYV ? p[(size_t) y * bpl + 2 * x] : p[(size_t) y * bpl + x];
}

static void case_import(uint32_t fourcc, unsigned n_planes, unsigned nbuf) {
        bb_client *c = NULL;
        bb_buffer **l = NULL;
        size_t n = 0;
        DevFmt fa = {}, fb = {};
        struct v4l2_format vf = {};
        struct v4l2_requestbuffers rb = {};
        uint32_t type = 0;
        int fd = -1, r;
        bool streaming = false;
        char f[5];
        Why w = {};

        fcc(fourcc, f);
        if (client_new(&c) < 0 || lib_create(c, DEV_A, nbuf, fourcc, 0, &l, &n) < 0 || n != nbuf ||
            bb_buffer_n_planes(l[0]) != n_planes) {
                check(false, "import %s: %u buffers of %u planes from the broker", f, nbuf, n_planes);
                goto out;
        }
        (void) dev_get_fmt(DEV_A, &fa);

        /* A canary in every plane, written through the broker's fds. */
        for (size_t i = 0; i < n; i++) {
                if (!bb_buffer_is_writable(l[i])) {
                        check(false, "import %s: buffer %zu is writable for its creator", f, i);
                        goto out;
                }
                bb_buffer_sync_begin(l[i], BB_SYNC_WRITE);
                for (unsigned p = 0; p < n_planes; p++) {
                        void *v;
                        size_t sz;
                        if (bb_buffer_map_plane(l[i], p, &v, &sz) >= 0)
                                memset(v, 0xa5, sz);
                }
                bb_buffer_sync_end(l[i], BB_SYNC_WRITE);
        }

        /* The importer: vivid's second instance, V4L2_MEMORY_DMABUF. */
        fd = dev_open(DEV_B, &type, fb.bus_info);
        if (fd < 0) {
                why(&w, "open %s: %s", DEV_B, strerror(-fd));
                goto report;
        }
        if (strcmp(fb.bus_info, fa.bus_info) == 0)
                why(&w, "%s and %s are the same device (%s)", DEV_A, DEV_B, fb.bus_info);
        vf.type = type;
        if (type_is_mplane(type)) {
                vf.fmt.pix_mp.width = W;
                vf.fmt.pix_mp.height = H;
                vf.fmt.pix_mp.pixelformat = fourcc;
        } else {
                vf.fmt.pix.width = W;
                vf.fmt.pix.height = H;
                vf.fmt.pix.pixelformat = fourcc;
        }
        r = xioctl(fd, VIDIOC_S_FMT, &vf);
        if (r < 0) {
                why(&w, "S_FMT on %s: %s", DEV_B, strerror(-r));
                goto report;
        }
        devfmt_from(&vf, &fb);
        if (fb.fourcc != fourcc || fb.n_planes != n_planes) {
                why(&w, "%s took %s with %u planes", DEV_B, fcc(fb.fourcc, f), fb.n_planes);
                goto report;
        }
        for (unsigned p = 0; p < n_planes; p++)
                if (fb.size[p] > bb_buffer_plane_length(l[0], p))
                        why(&w, "%s needs %u bytes in plane %u, the broker's plane has %" PRIu64, DEV_B, fb.size[p], p,
                            bb_buffer_plane_length(l[0], p));
        rb = (struct v4l2_requestbuffers) { .count = nbuf, .type = type, .memory = V4L2_MEMORY_DMABUF };
        r = xioctl(fd, VIDIOC_REQBUFS, &rb);
        if (r < 0 || rb.count != nbuf) {
                why(&w, "REQBUFS %u DMABUF on %s: %s, got %u", nbuf, DEV_B, strerror(-r), rb.count);
                goto report;
        }
        for (unsigned i = 0; i < nbuf; i++) {
                struct v4l2_plane planes[VIDEO_MAX_PLANES] = {};
                struct v4l2_buffer b = { .type = type, .memory = V4L2_MEMORY_DMABUF, .index = i };

                if (type_is_mplane(type)) {
                        b.m.planes = planes;
                        b.length = n_planes;
                        for (unsigned p = 0; p < n_planes; p++) {
                                planes[p].m.fd = bb_buffer_plane_fd(l[i], p);
                                planes[p].length = (uint32_t) page_align(bb_buffer_plane_length(l[i], p));
                        }
                } else {
                        b.m.fd = bb_buffer_plane_fd(l[i], 0);
                        b.length = (uint32_t) page_align(bb_buffer_plane_length(l[i], 0));
                }
                r = xioctl(fd, VIDIOC_QBUF, &b);
                if (r < 0)
                        why(&w, "QBUF %u (dma-buf fds from the broker) on %s: %s", i, DEV_B, strerror(-r));
        }
        if (w.n == 0) {
                r = xioctl(fd, VIDIOC_STREAMON, &type);
                if (r < 0)
                        why(&w, "STREAMON on %s: %s", DEV_B, strerror(-r));
                streaming = r >= 0;
        }
report:
        if (!check_why(&w, "import %s: %s (%s, another vivid instance) takes the broker's %u x %u dma-buf fds "
                       "with V4L2_MEMORY_DMABUF and streams", f, DEV_B, fb.bus_info, nbuf, n_planes))
                goto out;

        /* Each frame: the importer filled it, we read it through the broker's fds. */
        for (unsigned k = 0; k < nbuf; k++) {
                struct v4l2_plane planes[VIDEO_MAX_PLANES] = {};
                struct v4l2_buffer b = { .type = type, .memory = V4L2_MEMORY_DMABUF };
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                uint64_t sums[VIDEO_MAX_PLANES] = {};
                uint32_t offs[VIDEO_MAX_PLANES] = {};
                unsigned bars[8] = {};
                uint64_t t0 = now_ms();

                w = (Why) {};
                if (type_is_mplane(type)) {
                        b.m.planes = planes;
                        b.length = n_planes;
                }
                r = poll(&pfd, 1, FRAME_TIMEOUT_MS);
                if (r <= 0) {
                        why(&w, "no frame from %s within %d ms", DEV_B, FRAME_TIMEOUT_MS);
                        check_why(&w, "import %s: frame %u", f, k);
                        break;
                }
                r = xioctl(fd, VIDIOC_DQBUF, &b);
                if (r < 0) {
                        why(&w, "DQBUF: %s", strerror(-r));
                        check_why(&w, "import %s: frame %u", f, k);
                        break;
                }
                if (b.flags & V4L2_BUF_FLAG_ERROR)
                        why(&w, "the frame has V4L2_BUF_FLAG_ERROR");
                for (unsigned p = 0; p < n_planes; p++) {
                        uint32_t used = type_is_mplane(type) ? planes[p].bytesused : b.bytesused;
                        if (used != fb.size[p])
                                why(&w, "plane %u: bytesused %u, sizeimage %u", p, used, fb.size[p]);
                        /* where this frame's data starts: per frame, from DQBUF */
                        offs[p] = type_is_mplane(type) ? planes[p].data_offset : 0;
                        if (offs[p] >= fb.size[p])
                                why(&w, "plane %u: data_offset %u", p, offs[p]);
                        else if (offs[p] != bb_buffer_plane_offset(l[b.index], p))
                                diag("import %s: plane %u data_offset %u in this frame (DQBUF), the broker's plane "
                                     "offset says %u", f, p, offs[p], bb_buffer_plane_offset(l[b.index], p));
                }

                r = bb_buffer_sync_begin(l[b.index], BB_SYNC_READ);
                if (r < 0)
                        why(&w, "sync_begin(READ): %s", strerror(-r));
                for (unsigned p = 0; p < n_planes; p++) {
                        const unsigned char *a;
                        size_t sz, canary = 0, zero = 0;
                        Mapping em;
                        void *v;

                        if (bb_buffer_map_plane(l[b.index], p, &v, &sz) < 0) {
                                why(&w, "plane %u: map failed", p);
                                continue;
                        }
                        a = v;
                        sz = fb.size[p];
                        if (offs[p] >= sz)
                                continue;
                        for (size_t x = offs[p]; x < sz; x++) {
                                canary += a[x] == 0xa5;
                                zero += a[x] == 0;
                        }
                        if (canary > (sz - offs[p]) / 2 || zero == sz - offs[p])
                                why(&w, "plane %u: %zu of %zu bytes still the canary, %zu zero", p, canary,
                                    sz - offs[p], zero);
                        sums[p] = fnv1a(a, sz);
                        if (p == 0) {
                                /* vivid's 75% colour bar, below its text: 8
                                 * bars, luma strictly falling left to right */
                                for (unsigned i = 0; i < 8; i++)
                                        bars[i] = luma(a + offs[0], fourcc, fb.bpl[0], (2 * i + 1) * W / 16, H * 5 / 6);
                                for (unsigned i = 1; i < 8; i++)
                                        if (bars[i] >= bars[i - 1])
                                                why(&w, "row %u is no colour bar: luma %u %u %u %u %u %u %u %u", H * 5 / 6,
                                                    bars[0], bars[1], bars[2], bars[3], bars[4], bars[5], bars[6], bars[7]);
                        } else {
                                /* chroma: not one flat value */
                                bool flat = true;
                                for (size_t x = offs[p] + 1; x < sz && flat; x++)
                                        flat = a[x] == a[offs[p]];
                                if (flat)
                                        why(&w, "plane %u is flat (0x%02x)", p, a[offs[p]]);
                        }
                        r = exporter_map(DEV_A, b.index, p, &em);
                        if (r < 0)
                                why(&w, "plane %u: V4L2 mmap of %s: %s", p, DEV_A, strerror(-r));
                        else if (em.len < sz || fnv1a(em.addr, sz) != sums[p])
                                why(&w, "plane %u: checksum via the broker's fd %016" PRIx64 " != via %s's V4L2 mapping",
                                    p, sums[p], DEV_A);
                        mapping_done(&em);
                }
                r = bb_buffer_sync_end(l[b.index], BB_SYNC_READ);
                if (r < 0)
                        why(&w, "sync_end(READ): %s", strerror(-r));
                check_why(&w, "import %s: frame %u (seq %u, buffer %u, %" PRIu64 " ms) written by %s is read through the "
                          "broker's fd with sync: bytesused = sizeimage, data_offset %u, colour-bar luma %u>%u>...>%u, "
                          "fnv1a %016" PRIx64 " = %s's own V4L2 mapping",
                          f, k, b.sequence, b.index, now_ms() - t0, DEV_B, offs[0], bars[0], bars[1], bars[7], sums[0],
                          DEV_A);
        }

out:
        if (fd >= 0) {
                if (streaming)
                        (void) xioctl(fd, VIDIOC_STREAMOFF, &type);
                rb = (struct v4l2_requestbuffers) { .count = 0, .type = type, .memory = V4L2_MEMORY_DMABUF };
                (void) xioctl(fd, VIDIOC_REQBUFS, &rb);
                close(fd);
        }
        release_list(l, n);
        bb_buffer_list_free(l, n);
        bb_client_unref(c);
        w = (Why) {};
        back_to_base(5000, &w);
        check_why(&w, "import %s: set released, Stats and daemon fds back at baseline", f);
}

/* ---- 4: 32 buffers x 3 planes through a bus that passes 16 fds ------------------ */

/* A message with @nfds fds to the bus driver: does the connection survive? */
static int bus_probe_fds(unsigned nfds, bool *ret_alive) {
        sd_bus *b = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r, devnull;

        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        r = sd_bus_open_system(&b);
        if (r < 0)
                goto finish;
        r = sd_bus_message_new_method_call(b, &m, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus.Peer", "Ping");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "h");
        for (unsigned i = 0; r >= 0 && i < nfds; i++)
                r = sd_bus_message_append(m, "h", devnull);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                goto finish;
        (void) sd_bus_call(b, m, 10 * 1000000ULL, &e, &reply);
        sd_bus_error_free(&e);
        reply = sd_bus_message_unref(reply);
        r = sd_bus_call_method(b, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId",
                               &e, &reply, "");
        *ret_alive = r >= 0;
        r = 0;
finish:
        sd_bus_error_free(&e);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(b);
        safe_close(devnull);
        return r;
}

static void case_many_planes(void) {
        bb_client *c = NULL;
        bb_buffer **l = NULL;
        size_t n = 0;
        int before, after, fds[32 * 3];
        unsigned n_fds = 0;
        bool alive16 = false, alive17 = true;
        Why w = {};
        int r;

        r = bus_probe_fds(16, &alive16);
        if (r >= 0)
                r = bus_probe_fds(17, &alive17);
        check(r >= 0 && alive16 && !alive17,
              "the private bus enforces max_message_unix_fds=16 (16 fds pass, 17 drop the sender: %s/%s)",
              alive16 ? "alive" : "dropped", alive17 ? "alive" : "dropped");

        before = proc_fd_count(getpid());
        if (client_new(&c) < 0 || lib_create(c, DEV_A, 32, V4L2_PIX_FMT_YUV420M, 0, &l, &n) < 0 || n != 32) {
                check(false, "32 x YM12 buffers through the library (got %zu)", n);
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                if (bb_buffer_n_planes(l[i]) != 3) {
                        why(&w, "buffer %zu: %u planes", i, bb_buffer_n_planes(l[i]));
                        continue;
                }
                for (unsigned p = 0; p < 3; p++) {
                        static const uint64_t len[3] = { W * H, W * H / 4, W * H / 4 };
                        int fd = bb_buffer_plane_fd(l[i], p);
                        DmaBuf d;

                        dmabuf_info(fd, &d);
                        if (!d.is_dmabuf || bb_buffer_plane_length(l[i], p) != len[p] ||
                            lseek(fd, 0, SEEK_END) != (off_t) page_align(len[p]))
                                why(&w, "buffer %zu plane %u: fd %d %s length %" PRIu64, i, p, fd, d.link,
                                    bb_buffer_plane_length(l[i], p));
                        for (unsigned k = 0; k < n_fds; k++)
                                if (fds[k] == fd)
                                        why(&w, "fd %d twice", fd);
                        if (n_fds < ELEMENTSOF(fds))
                                fds[n_fds++] = fd;
                }
        }
        after = proc_fd_count(getpid());
        if (n_fds != 96)
                why(&w, "%u fds", n_fds);
        if (after - before < 96)
                why(&w, "our process gained only %d fds", after - before);
        check_why(&w, "32 x YM12 on a bus with max_message_unix_fds=16: all 96 plane fds received "
                  "(distinct dma-bufs of 307200/76800/76800 bytes; +%d fds in this process)", after - before);
        release_list(l, n);
out:
        bb_buffer_list_free(l, n);
        bb_client_unref(c);
        w = (Why) {};
        back_to_base(10000, &w);
        check_why(&w, "32 x 3 set released: Stats and daemon fds back at baseline");
}

/* ---- 5: refusals ----------------------------------------------------------------- */

static void expect_refusal(const char *what, const char *dev, uint32_t count, const KV *fmt, const KV *opts,
                           const char *ename, const char *needle1, const char *needle2) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        Created cr = {};
        Why w = {};
        int r;

        r = create_raw(bus, dev, count, fmt, opts, &cr, &e);
        if (r >= 0) {
                why(&w, "it succeeded (%u buffers)", cr.n);
                release_all(bus, &cr);
        } else {
                if (!e.name || strcmp(e.name, ename) != 0)
                        why(&w, "error %s", errname(&e, r));
                if (needle1 && (!e.message || !strstr(e.message, needle1)))
                        why(&w, "the message does not say '%s'", needle1);
                if (needle2 && (!e.message || !strstr(e.message, needle2)))
                        why(&w, "the message does not say '%s'", needle2);
        }
        check_why(&w, "refuses %s with %s: \"%.200s\"", what, ename, e.message ?: "");
        created_done(&cr);
        sd_bus_error_free(&e);

        w = (Why) {};
        back_to_base(3000, &w);
        check_why(&w, "after refusing %s: Stats and daemon fds at baseline, daemon alive", what);
}

static char tmpdir[64];

static void case_refusals(void) {
        const char *dns = BB_ERROR_DEVICE_NOT_SUPPORTED, *inval = "org.freedesktop.DBus.Error.InvalidArgs";
        static const KV yuyv[] = { KU(BB_FMT_WIDTH, W), KU(BB_FMT_HEIGHT, H), KS(BB_FMT_FOURCC, "YUYV"), KEND };
        char fifo[128], dir[128], l_shadow[128], l_null[128];
        struct stat st;

        snprintf(tmpdir, sizeof(tmpdir), "/tmp/bb-v4l2-XXXXXX");
        if (!mkdtemp(tmpdir)) {
                check(false, "mkdtemp: %s", strerror(errno));
                return;
        }
        snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
        snprintf(dir, sizeof(dir), "%s/dir", tmpdir);
        snprintf(l_shadow, sizeof(l_shadow), "%s/shadow-link", tmpdir);
        snprintf(l_null, sizeof(l_null), "%s/null-link", tmpdir);
        if (mkfifo(fifo, 0600) < 0 || mkdir(dir, 0700) < 0 || symlink("/etc/shadow", l_shadow) < 0 ||
            symlink("/dev/null", l_null) < 0)
                diag("setting up %s: %s", tmpdir, strerror(errno));

        expect_refusal("/etc/shadow", "/etc/shadow", 2, yuyv, NULL, dns, "/etc/shadow", "not a character device");
        expect_refusal("/dev/null", "/dev/null", 2, yuyv, NULL, dns, "/dev/null", "not a video4linux");
        if (stat("/dev/mem", &st) == 0)
                expect_refusal("/dev/mem", "/dev/mem", 2, yuyv, NULL, dns, "/dev/mem", "not a video4linux");
        else
                printf("ok - [%s] refuses /dev/mem # SKIP no /dev/mem in this kernel\n", phase);
        expect_refusal("a FIFO", fifo, 2, yuyv, NULL, dns, fifo, "not a character device");
        expect_refusal("a directory", dir, 2, yuyv, NULL, dns, dir, "not a character device");
        expect_refusal("a symlink to /etc/shadow", l_shadow, 2, yuyv, NULL, dns, l_shadow, "not a character device");
        expect_refusal("a symlink to /dev/null", l_null, 2, yuyv, NULL, dns, l_null, "not a video4linux");
        expect_refusal("a path with '..' (/dev/../etc/shadow)", "/dev/../etc/shadow", 2, yuyv, NULL, inval,
                       "/dev/../etc/shadow", "..");
        expect_refusal("a path with '..' (/dev/video0/..)", "/dev/video0/..", 2, yuyv, NULL, inval,
                       "/dev/video0/..", "..");
        expect_refusal("a relative path (dev/video0)", "dev/video0", 2, yuyv, NULL, inval, "dev/video0",
                       "not absolute");
        expect_refusal("an empty path", "", 2, yuyv, NULL, inval, "not absolute", NULL);
        /* Not there: even root gets the one answer for "cannot open it" */
        expect_refusal("a non-existent path", "/dev/video99", 2, yuyv, NULL, BB_ERROR_ACCESS_DENIED,
                       "'/dev/video99'", "uid 0");
        expect_refusal("/dev/video2 (vivid metadata capture, major 81)", "/dev/video2", 2, NULL, NULL, dns,
                       "/dev/video2", "no streaming video");
        expect_refusal("/dev/vbi0 (VBI capture, major 81)", "/dev/vbi0", 2, NULL, NULL, dns, "/dev/vbi0",
                       "no streaming video");
        expect_refusal("/dev/radio0 (radio, major 81, no streaming)", "/dev/radio0", 2, NULL, NULL, dns,
                       "/dev/radio0", "no streaming video");
        expect_refusal("/dev/swradio0 (SDR capture, major 81)", "/dev/swradio0", 2, NULL, NULL, dns,
                       "/dev/swradio0", "no streaming video");
        expect_refusal("/dev/media0 (media controller, not major 81)", "/dev/media0", 2, NULL, NULL, dns,
                       "/dev/media0", "not a video4linux");
        {
                static const KV out[] = { KS(BB_FMT_TYPE, "output"), KEND };
                expect_refusal("type output on a capture-only node", DEV_A, 2, out, NULL, dns, DEV_A, "output");
        }
        {
                static const KV mp[] = { KS(BB_FMT_TYPE, "capture-mplane"), KEND };
                expect_refusal("type capture-mplane on a single-planar node", DEV_A, 2, mp, NULL, dns, DEV_A,
                               "capture-mplane");
        }
        expect_refusal("count 0", DEV_A, 0, yuyv, NULL, inval, "0", "range");
        expect_refusal("count 33", DEV_A, 33, yuyv, NULL, inval, "33", "range");
        {
                static const KV bad1[] = { KS(BB_FMT_WIDTH, "640"), KEND };
                static const KV bad2[] = { KD(BB_FMT_FOURCC, 1), KEND };
                static const KV bad3[] = { KS(BB_FMT_FOURCC, "YUYVX"), KEND };
                static const KV bad4[] = { KU("colour", 1), KEND };
                static const KV bad5[] = { KS(BB_FMT_TYPE, "sideways"), KEND };
                static const KV bad6[] = { KU(BB_FMT_WIDTH, 640), KU(BB_FMT_WIDTH, 320), KEND };
                static const KV opt1[] = { KB("bogus", 1), KEND };
                static const KV opt2[] = { KT(BB_OPT_TTL_USEC, 0), KEND };
                static const KV opt3[] = { KS(BB_OPT_PERSISTENT, "yes"), KEND };
                static const KV abcd[] = { KS(BB_FMT_FOURCC, "ABCD"), KEND };

                expect_refusal("format width as a string", DEV_A, 2, bad1, NULL, inval, "width", NULL);
                expect_refusal("format fourcc as a double", DEV_A, 2, bad2, NULL, inval, "fourcc", NULL);
                expect_refusal("format fourcc \"YUYVX\"", DEV_A, 2, bad3, NULL, inval, "fourcc", "YUYVX");
                expect_refusal("an unknown format key", DEV_A, 2, bad4, NULL, inval, "colour", NULL);
                expect_refusal("an unknown type", DEV_A, 2, bad5, NULL, inval, "sideways", NULL);
                expect_refusal("a format key given twice", DEV_A, 2, bad6, NULL, inval, "width", NULL);
                expect_refusal("an unknown option", DEV_A, 2, yuyv, opt1, inval, "bogus", NULL);
                expect_refusal("ttl-usec 0", DEV_A, 2, yuyv, opt2, inval, "ttl-usec", NULL);
                expect_refusal("persistent as a string", DEV_A, 2, yuyv, opt3, inval, "persistent", NULL);
                expect_refusal("a fourcc the driver does not offer (ABCD)", DEV_A, 2, abcd, NULL, inval, "ABCD",
                               DEV_A);
        }
        {
                static const KV rgb3[] = { KS(BB_FMT_FOURCC, "RGB3"), KEND };
                static const KV yu12[] = { KS(BB_FMT_FOURCC, "YU12"), KEND };
                expect_refusal("RGB3 on " DEV_TOUCH " (libv4l2-emulated from TD16)", DEV_TOUCH, 2, rgb3, NULL, dns,
                               "emulated", DEV_TOUCH);
                expect_refusal("YU12 on " DEV_TOUCH " (libv4l2-emulated from TD16)", DEV_TOUCH, 2, yu12, NULL, dns,
                               "emulated", DEV_TOUCH);
        }

        /* The library's view of a refusal. */
        {
                bb_client *c = NULL;
                bb_buffer **l = NULL;
                size_t n = 0;
                int r = -1;

                if (client_new(&c) >= 0)
                        r = bb_buffer_create_v4l2(c, "/dev/null", 2, W, H, V4L2_PIX_FMT_YUYV, NULL, 0, 0, &l, &n);
                check(r == -ENODEV && bb_client_error_name(c) &&
                      strcmp(bb_client_error_name(c), BB_ERROR_DEVICE_NOT_SUPPORTED) == 0 &&
                      bb_client_error_message(c) && strstr(bb_client_error_message(c), "/dev/null"),
                      "library: bb_buffer_create_v4l2(/dev/null) = %d (-ENODEV), error %s: %s", r,
                      c ? bb_client_error_name(c) ?: "-" : "-", c ? bb_client_error_message(c) ?: "-" : "-");
                bb_buffer_list_free(l, n);
                bb_client_unref(c);
        }

        /* The device's queue belongs to another process: DeviceBusy. */
        {
                struct v4l2_requestbuffers rb = { .count = 2, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                                  .memory = V4L2_MEMORY_MMAP };
                uint32_t type;
                int fd = dev_open(DEV_A, &type, NULL);

                if (fd < 0 || xioctl(fd, VIDIOC_REQBUFS, &rb) < 0)
                        check(false, "set up: our own MMAP queue on %s", DEV_A);
                else
                        expect_refusal(DEV_A " while another process owns its queue", DEV_A, 2, yuyv, NULL,
                                       BB_ERROR_DEVICE_BUSY, DEV_A, "busy");
                if (fd >= 0) {
                        rb.count = 0;
                        (void) xioctl(fd, VIDIOC_REQBUFS, &rb);
                        close(fd);
                }
        }

        unlink(fifo);
        unlink(l_shadow);
        unlink(l_null);
        rmdir(dir);
        rmdir(tmpdir);
}

/* ---- 6: lifetime ---------------------------------------------------------------- */

static bool is_busy(const char *dev, Why *w, const char *when) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        static const KV none[] = { KEND };
        Created cr = {};
        bool busy;
        int r;

        r = create_raw(bus, dev, 2, none, NULL, &cr, &e);
        busy = r < 0 && e.name && strcmp(e.name, BB_ERROR_DEVICE_BUSY) == 0;
        if (r >= 0)
                release_all(bus, &cr);
        else if (!busy)
                why(w, "%s: CreateV4L2 failed with %s: %s", when, errname(&e, r), e.message ?: "");
        else if (!e.message || !strstr(e.message, dev))
                why(w, "%s: the DeviceBusy message does not name %s: %s", when, dev, e.message ?: "");
        created_done(&cr);
        sd_bus_error_free(&e);
        return busy;
}

static bool can_create(const char *dev, Why *w, const char *when) {
        Created cr = {};
        bool ok;

        ok = create_simple(dev, 2, V4L2_PIX_FMT_YUYV, &cr) >= 0;
        if (!ok)
                why(w, "%s: a new CreateV4L2 on %s fails", when, dev);
        else if (release_all(bus, &cr) < 0)
                why(w, "%s: release failed", when);
        created_done(&cr);
        return ok;
}

static bool wait_buffers(uint64_t want, int timeout_ms) {
        uint64_t end = now_ms() + (uint64_t) timeout_ms;
        Snapshot s;

        do {
                if (snap_read(&s) >= 0 && s.buffers == want)
                        return true;
                msleep(50);
        } while (now_ms() < end);
        return false;
}

/* A child that creates a set with its own connection, reports the ids on
 * the pipe, then waits to be killed (or exits, when persistent). */
static pid_t spawn_holder(unsigned count, bool persistent, int *ret_fd) {
        int p[2];
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                bb_client *c = NULL;
                bb_buffer **l = NULL;
                size_t n = 0;
                char line[512] = "";
                size_t k = 0;

                close(p[0]);
                if (bb_client_new(&c) < 0 ||
                    bb_buffer_create_v4l2(c, DEV_A, count, W, H, V4L2_PIX_FMT_YUYV, NULL,
                                          persistent ? BB_CREATE_PERSISTENT : 0, 0, &l, &n) < 0) {
                        fprintf(stderr, "holder: create failed: %s\n", c ? bb_client_error_message(c) ?: "" : "");
                        _exit(3);
                }
                for (size_t i = 0; i < n && k < sizeof(line) - 24; i++)
                        k += (size_t) snprintf(line + k, sizeof(line) - k, "%" PRIu64 " ", bb_buffer_id(l[i]));
                line[k++] = '\n';
                if (write(p[1], line, k) != (ssize_t) k)
                        _exit(4);
                if (persistent) {
                        bb_buffer_list_free(l, n);
                        bb_client_unref(c);
                        _exit(0);
                }
                for (;;)
                        pause();
        }
        close(p[1]);
        *ret_fd = p[0];
        return pid;
}

static int read_ids(int fd, uint64_t *ids, unsigned max, int timeout_ms) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        char buf[512];
        size_t k = 0;
        unsigned n = 0;
        char *s, *e;

        while (k < sizeof(buf) - 1 && !memchr(buf, '\n', k)) {
                ssize_t r;
                if (poll(&pfd, 1, timeout_ms) <= 0)
                        return -ETIMEDOUT;
                r = read(fd, buf + k, sizeof(buf) - 1 - k);
                if (r <= 0)
                        return -EPIPE;
                k += (size_t) r;
        }
        buf[k] = 0;
        for (s = buf; n < max; s = e) {
                uint64_t v = strtoull(s, &e, 10);
                if (e == s)
                        break;
                ids[n++] = v;
        }
        return (int) n;
}

static int wait_pid(pid_t pid, int timeout_ms) {
        uint64_t end = now_ms() + (uint64_t) timeout_ms;
        int status;

        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (now_ms() >= end) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        return -1;
                }
                msleep(20);
        }
}

static void case_lifetime(void) {
        bb_client *c = NULL;
        bb_buffer **l = NULL, **l2 = NULL;
        size_t n = 0, n2 = 0;
        uint64_t ids[8];
        Why w = {};
        pid_t pid;
        int pfd = -1, r;

        /* busy while a set lives; free again once its last buffer goes */
        if (client_new(&c) < 0 || lib_create(c, DEV_A, 4, V4L2_PIX_FMT_YUYV, 0, &l, &n) < 0 || n != 4) {
                check(false, "lifetime: set up a set of 4");
                goto out;
        }
        if (!is_busy(DEV_A, &w, "another connection, while the set lives"))
                why(&w, "another connection's CreateV4L2 on %s is not DeviceBusy", DEV_A);
        r = bb_buffer_create_v4l2(c, DEV_A, 2, W, H, V4L2_PIX_FMT_YUYV, NULL, 0, 0, &l2, &n2);
        if (r != -EBUSY || !bb_client_error_name(c) || strcmp(bb_client_error_name(c), BB_ERROR_DEVICE_BUSY) != 0)
                why(&w, "the same client's second create: %d %s", r, bb_client_error_name(c) ?: "-");
        l2 = bb_buffer_list_free(l2, n2);
        if (!wait_buffers(base.buffers + 4, 1000))
                why(&w, "the refused requests changed Stats");
        check_why(&w, "a second CreateV4L2 on a busy device is %s (from another connection and from the holder), "
                  "naming the device", BB_ERROR_DEVICE_BUSY);

        w = (Why) {};
        for (size_t i = 0; i < 3; i++)
                if (bb_buffer_release(l[i]) < 0)
                        why(&w, "release %zu failed", i);
        if (!is_busy(DEV_A, &w, "3 of 4 released"))
                why(&w, "the device is free although buffer 3 of the set still lives");
        if (bb_buffer_release(l[3]) < 0)
                why(&w, "release 3 failed");
        back_to_base(5000, &w);
        can_create(DEV_A, &w, "all 4 released");
        check_why(&w, "the set stays while any of its buffers lives (busy with 1 of 4 left); releasing the last "
                  "tears it down and a new CreateV4L2 on %s succeeds; fds at baseline", DEV_A);
        l = bb_buffer_list_free(l, n);
        c = bb_client_unref(c);

        /* SIGKILL of the holder */
        w = (Why) {};
        pid = spawn_holder(4, false, &pfd);
        if (pid < 0 || read_ids(pfd, ids, 8, 60000) != 4) {
                why(&w, "the holder did not report its set");
        } else {
                if (!wait_buffers(base.buffers + 4, 2000))
                        why(&w, "Stats do not show the holder's 4 buffers");
                if (!is_busy(DEV_A, &w, "holder alive"))
                        why(&w, "not busy while the holder lives");
                kill(pid, SIGKILL);
        }
        if (pid > 0)
                wait_pid(pid, 10000);
        safe_close(pfd);
        pfd = -1;
        back_to_base(10000, &w);
        can_create(DEV_A, &w, "after SIGKILL");
        check_why(&w, "SIGKILL of the holding client tears its set down: Stats and fds back at baseline, "
                  "%s free again", DEV_A);

        /* persistent buffers outlive their creator */
        w = (Why) {};
        pid = spawn_holder(2, true, &pfd);
        r = pid < 0 ? -1 : read_ids(pfd, ids, 8, 60000);
        if (pid > 0 && wait_pid(pid, 30000) != 0)
                why(&w, "the creator did not exit 0");
        safe_close(pfd);
        pfd = -1;
        if (r != 2)
                why(&w, "the creator reported %d ids", r);
        else {
                bb_buffer **list = NULL;
                size_t nl = 0, found = 0;

                msleep(300);
                if (!wait_buffers(base.buffers + 2, 1000))
                        why(&w, "the buffers went with their creator");
                if (client_new(&c) < 0 || bb_client_list_buffers(c, &list, &nl) < 0)
                        why(&w, "list failed");
                for (size_t i = 0; i < nl; i++)
                        for (unsigned k = 0; k < 2; k++)
                                if (bb_buffer_id(list[i]) == ids[k] && strcmp(bb_buffer_kind(list[i]), BB_KIND_V4L2) == 0 &&
                                    bb_buffer_is_persistent(list[i]))
                                        found++;
                if (found != 2)
                        why(&w, "ListBuffers shows %zu of the 2 persistent v4l2 buffers", found);
                bb_buffer_list_free(list, nl);
                if (!is_busy(DEV_A, &w, "creator gone"))
                        why(&w, "the device is free although persistent buffers live");
                for (unsigned k = 0; k < 2 && c; k++) {
                        bb_buffer *b = NULL;
                        DmaBuf d;

                        r = bb_buffer_open_fds(c, ids[k], 0, &b);
                        if (r < 0) {
                                why(&w, "open_fds(%" PRIu64 "): %s", ids[k], strerror(-r));
                                continue;
                        }
                        dmabuf_info(bb_buffer_fd(b), &d);
                        if (!d.is_dmabuf || bb_buffer_plane_length(b, 0) != (uint64_t) W * H * 2)
                                why(&w, "buffer %" PRIu64 ": fd %s length %" PRIu64, ids[k], d.link,
                                    bb_buffer_plane_length(b, 0));
                        if (bb_buffer_release(b) < 0)
                                why(&w, "release %" PRIu64 " failed", ids[k]);
                        bb_buffer_unref(b);
                }
                back_to_base(5000, &w);
                can_create(DEV_A, &w, "persistent set released");
        }
        check_why(&w, "persistent V4L2 buffers survive their creator (listed, device busy, OpenFds by id gives "
                  "the dma-bufs); the owner's release tears the set down");
        c = bb_client_unref(c);

        /* A buffer another connection holds keeps the whole set (and the
         * device) after its creator is gone; its release ends the set. */
        w = (Why) {};
        {
                bb_client *ca = NULL, *cb = NULL;
                bb_buffer *ob = NULL;
                char *tok = NULL;

                if (client_new(&ca) < 0 || client_new(&cb) < 0 || lib_create(ca, DEV_A, 3, V4L2_PIX_FMT_YUYV, 0, &l, &n) < 0)
                        why(&w, "set up failed");
                else if ((r = bb_buffer_share(l[1], 0, 0, 0, &tok)) < 0 || (r = bb_buffer_open(cb, tok, &ob)) < 0)
                        why(&w, "share/open: %s", strerror(-r));
                else {
                        l = bb_buffer_list_free(l, n);
                        ca = bb_client_unref(ca);       /* the creator's connection closes */
                        if (!wait_buffers(base.buffers + 1, 5000))
                                why(&w, "after the creator left, Stats do not show exactly the 1 buffer held by the other connection");
                        if (!is_busy(DEV_A, &w, "creator gone, 1 buffer held elsewhere"))
                                why(&w, "the device is free while a buffer of its set lives");
                        if (bb_buffer_release(ob) < 0)
                                why(&w, "release by the opener failed");
                        back_to_base(5000, &w);
                        can_create(DEV_A, &w, "last holder released");
                }
                free(tok);
                bb_buffer_unref(ob);
                bb_client_unref(cb);
                bb_client_unref(ca);
        }
        check_why(&w, "a set whose creator left stays while another connection holds one of its buffers "
                  "(device busy); that release tears it down");

        /* ttl */
        w = (Why) {};
        {
                static const KV fmt[] = { KU(BB_FMT_WIDTH, W), KU(BB_FMT_HEIGHT, H), KS(BB_FMT_FOURCC, "YUYV"), KEND };
                static const KV opts[] = { KB(BB_OPT_PERSISTENT, 1), KT(BB_OPT_TTL_USEC, 1500000), KEND };
                sd_bus_error e = SD_BUS_ERROR_NULL;
                Created cr = {};

                r = create_raw(bus, DEV_A, 2, fmt, opts, &cr, &e);
                if (r < 0)
                        why(&w, "create with ttl: %s: %s", errname(&e, r), e.message ?: "");
                else {
                        if (!wait_buffers(base.buffers + 2, 500))
                                why(&w, "the set is not there right after creation");
                        back_to_base(20000, &w);
                        can_create(DEV_A, &w, "after expiry");
                }
                created_done(&cr);
                sd_bus_error_free(&e);
        }
        check_why(&w, "a persistent set with ttl-usec 1.5 s expires: torn down, fds at baseline, device free");

out:
        safe_close(pfd);
        bb_buffer_list_free(l, n);
        bb_client_unref(c);
}

/* ---- 7: who may open the device (CreateV4L2 only for callers with access) ------ */

#define NOBODY ((uid_t) 65534)

typedef struct AsResult {
        int r;                          /* bb_buffer_create_v4l2()'s */
        char name[128], message[512];
        unsigned n_buffers, n_dmabufs;  /* on success: buffers, and plane fds that are dma-bufs */
} AsResult;

/* CreateV4L2 (2 x YUYV through the library, so OpenFds too) on each of
 * @devs, as uid 65534 with exactly the groups @groups (the first is the
 * primary one), in a child that connects to the bus after setgroups(): the
 * bus reports those groups to the daemon. The set is released again. */
static int as_nobody(const gid_t *groups, size_t n_groups, const char *const *devs, size_t n_devs, AsResult *res) {
        AsResult *shared;
        pid_t pid;
        int rc;

        shared = mmap(NULL, n_devs * sizeof(AsResult), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (shared == MAP_FAILED)
                return -errno;
        memset(shared, 0, n_devs * sizeof(AsResult));
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                bb_client *c = NULL;

                if (setgroups(n_groups, groups) < 0 || setresgid(groups[0], groups[0], groups[0]) < 0 ||
                    setresuid(NOBODY, NOBODY, NOBODY) < 0)
                        _exit(2);
                if (bb_client_new(&c) < 0)
                        _exit(3);
                for (size_t i = 0; i < n_devs; i++) {
                        bb_buffer **l = NULL;
                        size_t n = 0;

                        shared[i].r = bb_buffer_create_v4l2(c, devs[i], 2, W, H, V4L2_PIX_FMT_YUYV, NULL, 0, 0, &l, &n);
                        if (shared[i].r < 0) {
                                snprintf(shared[i].name, sizeof(shared[i].name), "%s", bb_client_error_name(c) ?: "");
                                snprintf(shared[i].message, sizeof(shared[i].message), "%s",
                                         bb_client_error_message(c) ?: "");
                                continue;
                        }
                        shared[i].n_buffers = (unsigned) n;
                        for (size_t k = 0; k < n; k++) {
                                DmaBuf d;

                                dmabuf_info(bb_buffer_plane_fd(l[k], 0), &d);
                                shared[i].n_dmabufs += d.is_dmabuf;
                        }
                        release_list(l, n);
                        bb_buffer_list_free(l, n);
                }
                bb_client_unref(c);
                _exit(0);
        }
        rc = wait_pid(pid, 60000);
        memcpy(res, shared, n_devs * sizeof(AsResult));
        munmap(shared, n_devs * sizeof(AsResult));
        return rc;
}

/* Run a program, stdout and stderr to ours; its exit status. */
static int run(const char *const *argv) {
        pid_t pid;

        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                dup2(STDOUT_FILENO, STDERR_FILENO);
                execvp(argv[0], (char *const *) argv);
                _exit(127);
        }
        return wait_pid(pid, 30000);
}

static bool granted(const AsResult *a, Why *w, const char *what) {
        if (a->r < 0) {
                why(w, "%s: %s (%s: %s)", what, strerror(-a->r), a->name, a->message);
                return false;
        }
        if (a->n_buffers != 2 || a->n_dmabufs != 2) {
                why(w, "%s: %u buffers, %u dma-bufs", what, a->n_buffers, a->n_dmabufs);
                return false;
        }
        return true;
}

static bool denied(const AsResult *a, const char *path, Why *w, const char *what) {
        if (a->r >= 0) {
                why(w, "%s: allowed (%u buffers)", what, a->n_buffers);
                return false;
        }
        if (a->r != -EACCES || strcmp(a->name, BB_ERROR_ACCESS_DENIED) != 0) {
                why(w, "%s: %s %s: %s, not %s", what, strerror(-a->r), a->name, a->message, BB_ERROR_ACCESS_DENIED);
                return false;
        }
        if (!strstr(a->message, path) || !strstr(a->message, "65534")) {
                why(w, "%s: the message does not name the path and uid 65534: %s", what, a->message);
                return false;
        }
        return true;
}

/* @message with @path replaced by "PATH": what is left must be the same for
 * every path uid 65534 cannot open. */
static void message_shape(const char *message, const char *path, char *buf, size_t size) {
        const char *p = strstr(message, path);

        if (p)
                snprintf(buf, size, "%.*sPATH%s", (int) (p - message), message, p + strlen(path));
        else
                snprintf(buf, size, "%s", message);
}

static void case_access(void) {
        static const char *const leaks[] = {
                "No such", "ermission", "irectory", "character", "shadow", "secret", "video4linux", "exist:",
                "81:", "busy",
        };
        const char *secret = "/root/secret-dir/video-like", *link_ok = "/dev/v4l/by-id/bb-test-cam",
                   *link_secret = "/dev/v4l/by-id/bb-test-secret";
        const char *const hidden[] = { DEV_A, secret, "/root/does-not-exist", "/etc/shadow", link_secret };
        const char *const one[] = { DEV_A }, *const via_link[] = { DEV_A, link_ok };
        AsResult res[ELEMENTSOF(hidden)], ok2[2];
        struct group *g = getgrnam("video");
        gid_t video = g ? g->gr_gid : 44;
        gid_t plain[] = { NOBODY }, in_video[] = { NOBODY, video };
        char first[512] = "", shape[512];
        struct stat st0;
        Why w = {};
        int r;

        /* /dev/videoN as udev makes it: root:video 0660, no ACL. Plain mode
         * has no udev (devtmpfs gives root:root 0600). */
        if (stat(DEV_A, &st0) < 0 || chown(DEV_A, 0, video) < 0 || chmod(DEV_A, 0660) < 0 ||
            (removexattr(DEV_A, "system.posix_acl_access") < 0 && errno != ENODATA)) {
                check(false, "access: make %s root:video 0660 without an ACL: %s", DEV_A, strerror(errno));
                return;
        }
        /* A node of the same device, world read-write, in a directory only
         * root may search; and by-id links as udev makes them. */
        if ((mkdir("/root/secret-dir", 0700) < 0 && errno != EEXIST) ||
            (mknod(secret, S_IFCHR | 0666, st0.st_rdev) < 0 && errno != EEXIST) || chmod(secret, 0666) < 0 ||
            (mkdir("/dev/v4l", 0755) < 0 && errno != EEXIST) || (mkdir("/dev/v4l/by-id", 0755) < 0 && errno != EEXIST) ||
            (symlink("../../video0", link_ok) < 0 && errno != EEXIST) ||
            (symlink(secret, link_secret) < 0 && errno != EEXIST))
                diag("access: setting up %s and the links: %s", secret, strerror(errno));

        /* uid 65534 without group video: the device and four paths it must
         * learn nothing about, one answer for all */
        r = as_nobody(plain, ELEMENTSOF(plain), hidden, ELEMENTSOF(hidden), res);
        if (r != 0)
                why(&w, "the uid 65534 client ended with %d", r);
        else
                for (size_t i = 0; i < ELEMENTSOF(hidden); i++) {
                        if (!denied(&res[i], hidden[i], &w, hidden[i]))
                                continue;
                        message_shape(res[i].message, hidden[i], shape, sizeof(shape));
                        for (size_t k = 0; k < ELEMENTSOF(leaks); k++)
                                if (strstr(shape, leaks[k]))
                                        why(&w, "%s: \"%s\" says \"%s\"", hidden[i], res[i].message, leaks[k]);
                        if (i == 0)
                                snprintf(first, sizeof(first), "%s", shape);
                        else if (strcmp(first, shape) != 0)
                                why(&w, "the refusals differ beyond the path: \"%s\" and \"%s\"", first, shape);
                }
        check_why(&w, "uid 65534 without group video: %s (root:video 0660), %s (0666 behind a 0700 dir), "
                  "/root/does-not-exist, /etc/shadow and a link into /root all give %s with one message "
                  "naming only the path and the uid: \"%s\"", DEV_A, secret, BB_ERROR_ACCESS_DENIED, first);
        w = (Why) {};
        back_to_base(5000, &w);
        check_why(&w, "after the refusals: Stats and daemon fds at baseline");

        /* with the supplementary group video: allowed, through the by-id
         * link as well */
        w = (Why) {};
        r = as_nobody(in_video, ELEMENTSOF(in_video), via_link, ELEMENTSOF(via_link), ok2);
        if (r != 0)
                why(&w, "the client ended with %d", r);
        else {
                granted(&ok2[0], &w, DEV_A);
                granted(&ok2[1], &w, link_ok);
        }
        back_to_base(5000, &w);
        check_why(&w, "uid 65534 with supplementary group video (%u, setgroups before connecting) gets buffers "
                  "(dma-bufs) on %s and on %s -> ../../video0; released, back at baseline",
                  (unsigned) video, DEV_A, link_ok);

        /* an ACL entry, as logind's uaccess makes it, written by setfacl */
        w = (Why) {};
        r = run((const char *const[]) { "setfacl", "-m", "u:65534:rw", DEV_A, NULL });
        if (r != 0)
                why(&w, "setfacl -m u:65534:rw %s: exit %d (is the acl package installed?)", DEV_A, r);
        else {
                r = as_nobody(plain, ELEMENTSOF(plain), one, 1, res);
                if (r != 0)
                        why(&w, "the client ended with %d", r);
                else
                        granted(&res[0], &w, "with the ACL entry");
                /* the mask limits named entries: r-- leaves no write */
                r = run((const char *const[]) { "setfacl", "-m", "m::r", DEV_A, NULL });
                if (r != 0)
                        why(&w, "setfacl -m m::r: exit %d", r);
                else if (as_nobody(plain, ELEMENTSOF(plain), one, 1, res) != 0)
                        why(&w, "the client ended with an error");
                else
                        denied(&res[0], DEV_A, &w, "with the ACL entry masked to r--");
        }
        back_to_base(5000, &w);
        check_why(&w, "uid 65534 with an ACL entry u:65534:rw on %s (setfacl) gets buffers; with the mask "
                  "set to r-- it gets %s", DEV_A, BB_ERROR_ACCESS_DENIED);

        /* root may open anything, root:video 0660 or not */
        w = (Why) {};
        can_create(DEV_A, &w, "as root");
        check_why(&w, "root gets buffers on %s", DEV_A);

        (void) removexattr(DEV_A, "system.posix_acl_access");
        (void) chown(DEV_A, st0.st_uid, st0.st_gid);
        (void) chmod(DEV_A, st0.st_mode & 07777);
        (void) unlink(link_ok);
        (void) unlink(link_secret);
        (void) unlink(secret);
        (void) rmdir("/root/secret-dir");
}

/* ---- 8: faults: vivid's error injection, disconnect, the daemon out of fds ------ */

/* Press vivid's button control @name on @dev. */
static int vivid_press(const char *dev, const char *name) {
        struct v4l2_query_ext_ctrl q = { .id = V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND };
        int fd, r = -ENOENT;

        fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        while (xioctl(fd, VIDIOC_QUERY_EXT_CTRL, &q) == 0) {
                if (strcmp(q.name, name) == 0) {
                        struct v4l2_control c = { .id = q.id, .value = 1 };

                        r = xioctl(fd, VIDIOC_S_CTRL, &c);
                        break;
                }
                q.id |= V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND;
        }
        close(fd);
        return r;
}

/* CreateV4L2 must fail as a driver failure (Failed, message naming @needle1
 * and @needle2), and leave nothing: Stats and fds at baseline. */
static void expect_failed(const char *what, const char *dev, uint32_t count, const KV *fmt, const char *needle1,
                          const char *needle2) {
        expect_refusal(what, dev, count, fmt, NULL, "org.freedesktop.DBus.Error.Failed", needle1, needle2);
}

static void case_reqbufs_injection(void) {
        static const KV yuyv[] = { KU(BB_FMT_WIDTH, W), KU(BB_FMT_HEIGHT, H), KS(BB_FMT_FOURCC, "YUYV"), KEND };
        Why w = {};
        int r;

        r = vivid_press(DEV_A, "Inject VIDIOC_REQBUFS Error");
        if (!check(r >= 0, "vivid control \"Inject VIDIOC_REQBUFS Error\" on %s: %s", DEV_A, strerror(-r)))
                return;
        expect_failed("REQBUFS failing in the driver (vivid's injection)", DEV_A, 2, yuyv, "VIDIOC_REQBUFS", DEV_A);
        /* vivid's injection fires once: the device must be free again */
        can_create(DEV_A, &w, "after the injected REQBUFS failure");
        back_to_base(5000, &w);
        check_why(&w, "after the injected REQBUFS failure the device is free: a second CreateV4L2 on %s works", DEV_A);
}

static void case_disconnect(void) {
        static const KV yuyv[] = { KU(BB_FMT_WIDTH, W), KU(BB_FMT_HEIGHT, H), KS(BB_FMT_FOURCC, "YUYV"), KEND };
        bb_client *c = NULL, *c2 = NULL;
        bb_buffer **l = NULL, *o = NULL, *b1 = NULL;
        char *token = NULL;
        size_t n = 0, sz[3] = {};
        uint64_t sums[3] = {};
        void *v[3] = {};
        Why w = {};
        int r;

        if (client_new(&c) < 0 || client_new(&c2) < 0 || lib_create(c, DEV_A, 3, V4L2_PIX_FMT_YUYV, 0, &l, &n) < 0 ||
            n != 3) {
                check(false, "disconnect: a set of 3 on %s", DEV_A);
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                if (bb_buffer_map(l[i], &v[i], &sz[i]) < 0) {
                        why(&w, "map %zu failed", i);
                        continue;
                }
                bb_buffer_sync_begin(l[i], BB_SYNC_WRITE);
                for (size_t k = 0; k < sz[i]; k++)
                        ((unsigned char *) v[i])[k] = (unsigned char) (k * 3 + i);
                bb_buffer_sync_end(l[i], BB_SYNC_WRITE);
                sums[i] = fnv1a(v[i], sz[i]);
        }
        /* a second holder of buffer 0, through a token */
        if ((r = bb_buffer_share(l[0], 0, 0, 0, &token)) < 0 || (r = bb_buffer_open(c2, token, &o)) < 0)
                why(&w, "share/open: %s", strerror(-r));
        if (!check_why(&w, "disconnect: 3 buffers created, mapped and filled, buffer 0 opened by a second client"))
                goto out;

        w = (Why) {};
        r = vivid_press(DEV_A, "Disconnect");
        if (!check(r >= 0, "vivid control \"Disconnect\" on %s: %s", DEV_A, strerror(-r)))
                goto out;
        msleep(200);
        if (!daemon_alive())
                why(&w, "the daemon is gone");
        for (size_t i = 0; i < n; i++)
                if (v[i] && fnv1a(v[i], sz[i]) != sums[i])
                        why(&w, "buffer %zu: the mapping changed", i);
        {
                void *ov;
                size_t osz;

                if (!o || bb_buffer_map(o, &ov, &osz) < 0 || osz != sz[0] || fnv1a(ov, osz) != sums[0])
                        why(&w, "the second holder's mapping of buffer 0 does not show the bytes");
        }
        /* the daemon still hands out what it holds */
        r = bb_buffer_open_fds(c2, bb_buffer_id(l[1]), BB_OPEN_READ_ONLY, &b1);
        if (r < 0)
                why(&w, "OpenFds of buffer 1 after the disconnect: %s (%s)", strerror(-r),
                    bb_client_error_message(c2) ?: "");
        else {
                void *bv;
                size_t bsz;

                if (bb_buffer_map(b1, &bv, &bsz) < 0 || bsz != sz[1] || fnv1a(bv, bsz) != sums[1])
                        why(&w, "buffer 1 opened after the disconnect does not show the bytes");
        }
        check_why(&w, "vivid disconnected under 3 held buffers: the daemon lives on the bus, every holder keeps "
                  "its mapping and bytes, OpenFds still gives the dma-bufs");

        /* A new set on the disconnected device: the driver's failure. What
         * it must leave unchanged is the state with the 3 buffers held. */
        {
                Snapshot saved = base;

                if (snap_read(&base) < 0)
                        base = saved;
                expect_failed("CreateV4L2 on the disconnected device (its buffers still held)", DEV_A, 2, yuyv,
                              DEV_A, "No such device");
                base = saved;
        }

        w = (Why) {};
        if (b1 && bb_buffer_release(b1) < 0)
                why(&w, "the release of buffer 1 opened after the disconnect failed");
        b1 = bb_buffer_unref(b1);
        if (release_list(l, n) < 0)
                why(&w, "the creator's release failed");
        if (o && bb_buffer_release(o) < 0)
                why(&w, "the second holder's release failed");
        back_to_base(5000, &w);
        for (size_t i = 0; i < n; i++)
                if (v[i] && fnv1a(v[i], sz[i]) != sums[i])
                        why(&w, "buffer %zu: the mapping changed after the release", i);
        check_why(&w, "after the disconnect every buffer releases: Stats and daemon fds back at baseline, the "
                  "daemon on the bus, our mappings (now orphaned) intact");

        /* vivid reconnects a disconnected instance when its last file is
         * closed: only if the daemon kept no fd of the device */
        w = (Why) {};
        can_create(DEV_A, &w, "after the last release");
        check_why(&w, "vivid reconnected %s once its last file was closed, the daemon's queue included: a new "
                  "CreateV4L2 works", DEV_A);

out:
        free(token);
        bb_buffer_unref(o);
        bb_buffer_unref(b1);
        bb_buffer_list_free(l, n);
        bb_client_unref(c2);
        bb_client_unref(c);
        w = (Why) {};
        back_to_base(5000, &w);
        check_why(&w, "disconnect cases: Stats and daemon fds back at baseline");
}

/* The daemon's RLIMIT_NOFILE for exactly @free new fds: fds are numbered
 * from the lowest free one, and the limit bounds the number. */
static rlim_t limit_for_free_fds(int free) {
        int nums[4096], n = 0;
        char path[64];
        struct dirent *de;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) daemon_pid);
        d = opendir(path);
        if (!d)
                return 0;
        while ((de = readdir(d)) && n < (int) ELEMENTSOF(nums))
                if (de->d_name[0] != '.')
                        nums[n++] = atoi(de->d_name);
        closedir(d);
        for (rlim_t lim = 1; lim < 65536; lim++) {
                int below = 0;

                for (int i = 0; i < n; i++)
                        below += (rlim_t) nums[i] < lim;
                if ((int) lim - below == free)
                        return lim;
        }
        return 0;
}

/* Run out of fds in the middle of exporting 4 x YM12 (3 planes, each
 * exported read-write and read-only: 24 dma-bufs): export number @fail_at
 * (1-based, at least 2) gets EMFILE. The daemon gets @fail_at free fds: the
 * device takes one (two for a moment, the O_PATH fd and the open), the
 * exports the rest. */
static void emfile_at(unsigned fail_at, const char *where) {
        char expect[64];
        static const KV ym12[] = { KU(BB_FMT_WIDTH, W), KU(BB_FMT_HEIGHT, H), KS(BB_FMT_FOURCC, "YM12"), KEND };
        sd_bus_error e = SD_BUS_ERROR_NULL;
        struct rlimit old, low;
        Created cr = {};
        char what[160];
        Why w = {};
        int r;

        snprintf(what, sizeof(what), "4 x YM12 with the daemon out of fds at export %u (%s)", fail_at, where);
        snprintf(expect, sizeof(expect), "buffer %u plane %u (%s)", (fail_at - 1) / 6, (fail_at - 1) % 3,
                 (fail_at - 1) % 6 < 3 ? "read-write" : "read-only");
        if (prlimit(daemon_pid, RLIMIT_NOFILE, NULL, &old) < 0) {
                check(false, "%s: prlimit: %s", what, strerror(errno));
                return;
        }
        low = old;
        low.rlim_cur = limit_for_free_fds((int) fail_at);
        if (low.rlim_cur == 0 || prlimit(daemon_pid, RLIMIT_NOFILE, &low, NULL) < 0) {
                check(false, "%s: lower RLIMIT_NOFILE to %llu: %s", what, (unsigned long long) low.rlim_cur,
                      strerror(errno));
                return;
        }
        r = create_raw(bus, DEV_A, 4, ym12, NULL, &cr, &e);
        /* At once: the daemon needs fds for anything else. */
        if (prlimit(daemon_pid, RLIMIT_NOFILE, &old, NULL) < 0)
                why(&w, "restoring RLIMIT_NOFILE %llu: %s", (unsigned long long) old.rlim_cur, strerror(errno));
        if (r >= 0) {
                why(&w, "it succeeded (%u buffers)", cr.n);
                release_all(bus, &cr);
        } else {
                if (!e.name || strcmp(e.name, "org.freedesktop.DBus.Error.Failed") != 0)
                        why(&w, "error %s, not Failed", errname(&e, r));
                if (!e.message || !strstr(e.message, "VIDIOC_EXPBUF") || !strstr(e.message, strerror(EMFILE)))
                        why(&w, "the message does not name VIDIOC_EXPBUF and \"%s\"", strerror(EMFILE));
                if (!e.message || !strstr(e.message, expect))
                        why(&w, "the message does not say \"%s\"", expect);
        }
        back_to_base(5000, &w);
        can_create(DEV_A, &w, "after the EMFILE");
        check_why(&w, "%s (RLIMIT_NOFILE %llu, lowered with prlimit): Failed \"%.200s\"; every plane of every "
                  "buffer rolled back: Stats and daemon fds at baseline, %s free again", what,
                  (unsigned long long) low.rlim_cur, e.message ?: "", DEV_A);
        created_done(&cr);
        sd_bus_error_free(&e);
}

static void case_emfile(void) {
        /* exports go buffer by buffer, each 3 read-write then 3 read-only */
        emfile_at(11, "buffer 1, read-only plane 1");
        emfile_at(20, "buffer 3, read-write plane 1");
        emfile_at(2, "buffer 0, read-write plane 1");
        emfile_at(24, "buffer 3, read-only plane 2: the very last");
}

/* ---- quotas (daemon with --max-buffers-per-uid=4 --max-bytes-per-uid=2097152
 *      --max-buffer-size=716800) ------------------------------------------------ */

static void expect_quota(const char *what, unsigned count) {
        char buf[160];

        snprintf(buf, sizeof(buf), "%s (%u x 614400 bytes)", what, count);
        {
                static const KV fmt[] = { KU(BB_FMT_WIDTH, W), KU(BB_FMT_HEIGHT, H), KS(BB_FMT_FOURCC, "YUYV"), KEND };
                expect_refusal(buf, DEV_A, count, fmt, NULL, BB_ERROR_QUOTA_EXCEEDED, NULL, NULL);
        }
}

static void case_quota(void) {
        bb_client *c = NULL;
        bb_buffer **l = NULL, *m1 = NULL, *m2 = NULL, *m3 = NULL;
        size_t n = 0;
        uint64_t lb = 0, lz = 0, ls = 0;
        Why w = {};
        int r;

        if (client_new(&c) < 0)
                return;
        bb_client_get_limit(c, BB_LIMIT_MAX_BUFFERS_PER_UID, &lb);
        bb_client_get_limit(c, BB_LIMIT_MAX_BYTES_PER_UID, &lz);
        bb_client_get_limit(c, BB_LIMIT_MAX_BUFFER_SIZE, &ls);
        if (!check(lb == 4 && lz == 2097152 && ls == 716800,
                   "Limits: max-buffers-per-uid %" PRIu64 ", max-bytes-per-uid %" PRIu64 ", max-buffer-size %" PRIu64
                   " (daemon started with 4, 2097152, 716800)", lb, lz, ls))
                goto out;

        /* one buffer larger than max-buffer-size, within every other limit:
         * 2 x GREY 1280x720 = 2 x 921600 bytes */
        {
                static const KV grey[] = { KU(BB_FMT_WIDTH, 1280), KU(BB_FMT_HEIGHT, 720), KS(BB_FMT_FOURCC, "GREY"),
                                           KEND };
                expect_refusal("2 buffers of GREY 1280x720 (921600 bytes each) over max-buffer-size 716800", DEV_A, 2,
                               grey, NULL, BB_ERROR_QUOTA_EXCEEDED, NULL, NULL);
        }

        expect_quota("5 buffers over max-buffers-per-uid 4", 5);
        expect_quota("4 buffers over max-bytes-per-uid 2 MiB", 4);
        can_create(DEV_A, &w, "after the quota refusals");
        check_why(&w, "after the quota refusals %s is free (nothing half-created left on the device)", DEV_A);

        /* V4L2 buffers count with memfds against the same quotas */
        w = (Why) {};
        r = lib_create(c, DEV_A, 3, V4L2_PIX_FMT_YUYV, 0, &l, &n);
        if (r < 0 || n != 3)
                why(&w, "3 buffers (1843200 bytes) within the quota: %s", strerror(-r));
        r = bb_buffer_create(c, "too-big", 300 * 1024, 0, 0, &m1);
        if (r != -EDQUOT)
                why(&w, "a 300 KiB memfd beside 1843200 v4l2 bytes: %s, not -EDQUOT", strerror(-r));
        r = bb_buffer_create(c, "fits", 4096, 0, 0, &m2);
        if (r < 0)
                why(&w, "a 4 KiB memfd as buffer 4: %s", strerror(-r));
        r = bb_buffer_create(c, "fifth", 4096, 0, 0, &m3);
        if (r != -EDQUOT)
                why(&w, "a fifth buffer: %s, not -EDQUOT", strerror(-r));
        {
                bb_buffer **l2 = NULL;
                size_t n2 = 0;

                release_list(l, n);
                l = bb_buffer_list_free(l, n);
                /* 1 memfd held: 4 v4l2 buffers would make 5 */
                r = bb_buffer_create_v4l2(c, DEV_A, 4, W, H, V4L2_PIX_FMT_YUYV, NULL, 0, 0, &l2, &n2);
                if (r != -EDQUOT || !bb_client_error_name(c) ||
                    strcmp(bb_client_error_name(c), BB_ERROR_QUOTA_EXCEEDED) != 0)
                        why(&w, "library: 4 v4l2 buffers beside a memfd: %d %s, not -EDQUOT", r,
                            bb_client_error_name(c) ?: "-");
                bb_buffer_list_free(l2, n2);
        }
        if (m2)
                bb_buffer_release(m2);
        check_why(&w, "V4L2 buffers count against the per-uid buffer and byte quotas together with memfds "
                  "(QuotaExceeded / -EDQUOT)");
out:
        bb_buffer_unref(m1);
        bb_buffer_unref(m2);
        bb_buffer_unref(m3);
        bb_buffer_list_free(l, n);
        bb_client_unref(c);
        w = (Why) {};
        back_to_base(5000, &w);
        check_why(&w, "quota cases: Stats and daemon fds back at baseline");
}

/* ================================================================= main === */

/* Run a case and say how long it took (TCG is slow: keep an eye on it). */
#define TIMED(call)                                                             \
        do {                                                                    \
                uint64_t _t0 = now_ms();                                        \
                call;                                                           \
                diag("(%s took %" PRIu64 " ms)", #call, now_ms() - _t0);        \
        } while (0)

int main(int argc, char *argv[]) {
        const char *mode = argc > 1 ? argv[1] : "", *alloc = argc > 2 ? argv[2] : "vmalloc";
        const char *exp_name;
        char ph[64];
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        if (strcmp(mode, "sp") != 0 && strcmp(mode, "mp") != 0 && strcmp(mode, "quota") != 0 &&
            strcmp(mode, "disconnect") != 0) {
                fprintf(stderr, "usage: %s sp|mp vmalloc|dma-contig, or %s quota|disconnect\n", argv[0], argv[0]);
                return 2;
        }
        exp_name = strcmp(alloc, "dma-contig") == 0 ? "videobuf2_dma_contig" : "videobuf2_vmalloc";
        snprintf(ph, sizeof(ph), "%s/%s", mode, strcmp(mode, "quota") == 0 ? "limits" :
                 strcmp(mode, "disconnect") == 0 ? "vivid" : alloc);
        phase = ph;

        r = sd_bus_open_system(&bus);
        if (r < 0 || daemon_lookup() < 0) {
                check(false, "connect to the private bus (%s) and find bufbrokerd: %s",
                      getenv("DBUS_SYSTEM_BUS_ADDRESS") ?: "(unset)", strerror(-r));
                return 1;
        }
        diag("bufbrokerd is pid %d (%s)", (int) daemon_pid, daemon_owner);
        if (!warm_up(DEV_A))
                return 1;

        if (strcmp(mode, "sp") == 0) {
                static const Expect yuyv = { V4L2_PIX_FMT_YUYV, "capture", 1, { W * 2 }, { W * H * 2 } };

                TIMED(case_set(&yuyv, 4, exp_name));
                TIMED(case_import(V4L2_PIX_FMT_YUYV, 1, 4));
                if (strcmp(alloc, "vmalloc") == 0) {
                        TIMED(case_sharing_and_orphans());
                        TIMED(case_options_and_nodes());
                        TIMED(case_refusals());
                        TIMED(case_lifetime());
                        TIMED(case_access());
                        TIMED(case_reqbufs_injection());
                }
        } else if (strcmp(mode, "mp") == 0) {
                static const Expect nm12 = { V4L2_PIX_FMT_NV12M, "capture-mplane", 2, { W, W }, { W * H, W * H / 2 } };
                static const Expect ym12 = { V4L2_PIX_FMT_YUV420M, "capture-mplane", 3, { W, W / 2, W / 2 },
                                             { W * H, W * H / 4, W * H / 4 } };
                /* vivid's multi-planar YUYV has a 128-byte header in
                 * plane 0 (data_offset, reported per frame by DQBUF) */
                static const Expect yuyv = { V4L2_PIX_FMT_YUYV, "capture-mplane", 1, { W * 2 }, { W * H * 2 + 128 } };
                static const KV abcd[] = { KS(BB_FMT_FOURCC, "ABCD"), KEND };
                static const KV sp[] = { KS(BB_FMT_TYPE, "capture"), KEND };

                TIMED(case_set(&nm12, 3, exp_name));
                TIMED(case_set(&ym12, 3, exp_name));
                TIMED(case_set(&yuyv, 2, exp_name));
                TIMED(case_import(V4L2_PIX_FMT_NV12M, 2, 3));
                TIMED(case_import(V4L2_PIX_FMT_YUV420M, 3, 3));
                TIMED(case_import(V4L2_PIX_FMT_YUYV, 1, 3));
                TIMED(case_many_planes());
                if (strcmp(alloc, "vmalloc") == 0)
                        TIMED(case_emfile());
                expect_refusal("a fourcc the multi-planar driver does not take (ABCD)", DEV_A, 2, abcd, NULL,
                               "org.freedesktop.DBus.Error.InvalidArgs", "ABCD", DEV_A);
                expect_refusal("type capture on a multi-planar-only node", DEV_A, 2, sp, NULL,
                               BB_ERROR_DEVICE_NOT_SUPPORTED, DEV_A, "capture");
        } else if (strcmp(mode, "disconnect") == 0)
                TIMED(case_disconnect());
        else
                TIMED(case_quota());

        check(daemon_alive(), "bufbrokerd (pid %d) is alive and owns %s after the %s cases", (int) daemon_pid,
              BB_BUS_NAME, ph);
        diag("%s: %u passed, %u failed", ph, n_passed, n_failed);
        sd_bus_flush_close_unref(bus);
        return n_failed > 0 ? 1 : 0;
}
