/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-v4l2, phase 8: faults (see guest-v4l2.h). */
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>

#include "guest-v4l2.h"

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

void case_reqbufs_injection(void) {
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

void case_disconnect(void) {
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
/* Raw: the limit counts the fds CreateV4L2 itself exports; the library
 * would follow with OpenFds calls of its own. */
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

void case_emfile(void) {
        /* exports go buffer by buffer, each 3 read-write then 3 read-only */
        emfile_at(11, "buffer 1, read-only plane 1");
        emfile_at(20, "buffer 3, read-write plane 1");
        emfile_at(2, "buffer 0, read-write plane 1");
        emfile_at(24, "buffer 3, read-only plane 2: the very last");
}
