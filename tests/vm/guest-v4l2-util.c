/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-v4l2, the parts every phase uses (see guest-v4l2.h). */
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "guest-v4l2.h"

/* ------------------------------------------------------------------ TAP --- */

const char *phase = "?";
unsigned n_passed, n_failed;

static void print_oneline(const char *s) {
        for (; *s; s++)
                putchar(*s == '\n' || *s == '\r' ? ' ' : *s);
}

_printf_(1, 2) void diag(const char *fmt, ...) {
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

_printf_(2, 3) bool check(bool ok, const char *fmt, ...) {
        va_list ap;
        bool r;

        va_start(ap, fmt);
        r = vcheck(ok, fmt, ap);
        va_end(ap);
        return r;
}

/* The reasons a multi-part case failed: empty means it passed. */
_printf_(2, 3) void why(Why *w, const char *fmt, ...) {
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

_printf_(2, 3) bool check_why(const Why *w, const char *fmt, ...) {
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

uint64_t now_ms(void) {
        return pbus_now_usec() / 1000u;
}

void msleep(unsigned ms) {
        pbus_msleep(ms);
}

uint64_t page_align(uint64_t n) {
        uint64_t p = (uint64_t) sysconf(_SC_PAGESIZE);
        return (n + p - 1) / p * p;
}

const char *fcc(uint32_t f, char buf[static 5]) {
        return bb_fourcc_to_string(f, buf);
}

uint64_t fnv1a(const void *p, size_t n) {
        const unsigned char *b = p;
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < n; i++) {
                h ^= b[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

/* ----------------------------------------------------------------- bus --- */

sd_bus *bus;                     /* the test's raw connection */
pid_t daemon_pid;
char daemon_owner[128];

const char *errname(const sd_bus_error *e, int r) {
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

int daemon_lookup(void) {
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
bool daemon_alive(void) {
        char owner[128];

        return daemon_pid > 0 && kill(daemon_pid, 0) == 0 && name_owner(owner, sizeof(owner)) >= 0 &&
               strcmp(owner, daemon_owner) == 0;
}

int snap_read(Snapshot *s) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = snapshot_read(bus, daemon_pid, s, &e);

        sd_bus_error_free(&e);
        return r;
}

Snapshot base;   /* the daemon after warm-up, nothing held */

static bool alive(void *userdata) {
        return daemon_alive();
}

/* Poll until the daemon is back at the baseline; say why not into w. */
bool back_to_base(int timeout_ms, Why *w) {
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

void created_done(Created *c) {
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
int read_format(sd_bus_message *m, RFmt *f) {
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

int create_raw(sd_bus *b, const char *dev, uint32_t count, const KV *fmt, const KV *opts,
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

int release_path(sd_bus *b, const char *path) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(b, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release", &e, NULL, "");
        if (r < 0)
                diag("Release %s: %s: %s", path, errname(&e, r), e.message ?: "");
        sd_bus_error_free(&e);
        return r;
}

int release_all(sd_bus *b, Created *c) {
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

int xioctl(int fd, unsigned long req, void *arg) {
        int r;

        do
                r = ioctl(fd, req, arg);
        while (r < 0 && errno == EINTR);
        return r < 0 ? -errno : 0;
}

bool type_is_mplane(uint32_t t) {
        return t == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE || t == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
}

void devfmt_from(const struct v4l2_format *f, DevFmt *d) {
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
int dev_open(const char *path, uint32_t *ret_type, char bus_info[33]) {
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
int dev_get_fmt(const char *path, DevFmt *ret) {
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

void mapping_done(Mapping *m) {
        if (m->addr && m->addr != MAP_FAILED)
                munmap(m->addr, m->len);
        *m = (Mapping) {};
}

/* The exporter's own view: map MMAP buffer @index, plane @plane, of the
 * device's queue through a V4L2 file handle of ours (QUERYBUF and mmap are
 * open to any file handle of the device, not only the queue's owner). */
int exporter_map(const char *path, unsigned index, unsigned plane, Mapping *ret) {
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

void dmabuf_info(int fd, DmaBuf *d) {
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

int dma_sync(int fd, uint64_t flags) {
        struct dma_buf_sync s = { .flags = flags };
        return xioctl(fd, DMA_BUF_IOCTL_SYNC, &s);
}

/* ---- library helpers ------------------------------------------------------- */

int lib_create(bb_client *c, const char *dev, unsigned count, uint32_t fourcc, unsigned flags,
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

int release_list(bb_buffer **l, size_t n) {
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

int client_new(bb_client **c) {
        int r = bb_client_new(c);
        if (r < 0)
                diag("bb_client_new: %s", strerror(-r));
        return r;
}

/* ------------------------------------------------------------- warm-up --- */

/* Warm the daemon up (a set created, shared, opened and released: every lazy
 * thing opened once), then take the baseline the cases come back to. By raw
 * calls on the connection the baseline is taken with: no library client
 * comes and goes around it. */
bool warm_up(const char *dev) {
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

bool can_create(const char *dev, Why *w, const char *when) {
        bb_client *c = NULL;
        bb_buffer **l = NULL;
        size_t n = 0;
        bool ok;

        if (client_new(&c) < 0) {
                why(w, "%s: no library client", when);
                return false;
        }
        ok = lib_create(c, dev, 2, V4L2_PIX_FMT_YUYV, 0, &l, &n) >= 0;
        if (!ok)
                why(w, "%s: a new CreateV4L2 on %s fails", when, dev);
        else if (release_list(l, n) < 0)
                why(w, "%s: release failed", when);
        bb_buffer_list_free(l, n);
        bb_client_unref(c);
        return ok;
}
