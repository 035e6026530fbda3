/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-v4l2, phase 6: lifetime (see guest-v4l2.h). */
#include <fcntl.h>
#include <poll.h>

#include "guest-v4l2.h"

/* ---- 6: lifetime ---------------------------------------------------------------- */

/* Does CreateV4L2 on dev (the device's own format) fail with DeviceBusy,
 * naming dev? */
static bool is_busy(const char *dev, Why *w, const char *when) {
        bb_client *c = NULL;
        bb_buffer **l = NULL;
        const char *name, *message;
        size_t n = 0;
        bool busy;
        int r;

        if (client_new(&c) < 0) {
                why(w, "%s: no library client", when);
                return false;
        }
        r = bb_buffer_create_v4l2(c, dev, 2, 0, 0, 0, NULL, 0, 0, &l, &n);
        name = bb_client_error_name(c);
        message = bb_client_error_message(c);
        busy = r < 0 && name && strcmp(name, BB_ERROR_DEVICE_BUSY) == 0;
        if (r >= 0)
                release_list(l, n);
        else if (!busy)
                why(w, "%s: CreateV4L2 failed with %s: %s", when, name ?: strerror(-r), message ?: "");
        else if (!message || !strstr(message, dev))
                why(w, "%s: the DeviceBusy message does not name %s: %s", when, dev, message ?: "");
        bb_buffer_list_free(l, n);
        bb_client_unref(c);
        return busy;
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

void case_lifetime(void) {
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
                pbus_wait_child(pid, 10000);
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
        if (pid > 0 && pbus_wait_child(pid, 30000) != 0)
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
                bb_buffer **lt = NULL;
                size_t nt = 0;

                r = client_new(&c);
                if (r >= 0)
                        r = bb_buffer_create_v4l2(c, DEV_A, 2, W, H, V4L2_PIX_FMT_YUYV, NULL, BB_CREATE_PERSISTENT,
                                                  1500000, &lt, &nt);
                if (r < 0)
                        why(&w, "create with ttl: %s: %s", bb_client_error_name(c) ?: strerror(-r),
                            bb_client_error_message(c) ?: "");
                else {
                        if (!wait_buffers(base.buffers + 2, 500))
                                why(&w, "the set is not there right after creation");
                        back_to_base(20000, &w);
                        can_create(DEV_A, &w, "after expiry");
                }
                bb_buffer_list_free(lt, nt);
                c = bb_client_unref(c);
        }
        check_why(&w, "a persistent set with ttl-usec 1.5 s expires: torn down, fds at baseline, device free");

out:
        safe_close(pfd);
        bb_buffer_list_free(l, n);
        bb_client_unref(c);
}
