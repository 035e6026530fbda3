/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-v4l2, phase 4: 32 buffers x 3 planes through a bus that passes 16 fds (see guest-v4l2.h). */
#include <fcntl.h>

#include "guest-v4l2.h"

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

void case_many_planes(void) {
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
