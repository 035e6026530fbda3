/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-v4l2, phase 5: refusals (see guest-v4l2.h). */
#include <sys/stat.h>

#include "guest-v4l2.h"

/* ---- 5: refusals ----------------------------------------------------------------- */

void expect_refusal(const char *what, const char *dev, uint32_t count, const KV *fmt, const KV *opts,
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

void case_refusals(void) {
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
