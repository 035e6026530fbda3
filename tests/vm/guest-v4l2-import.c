/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-v4l2, phase 3: a second device imports the broker's dma-bufs (see guest-v4l2.h). */
#include <poll.h>

#include "guest-v4l2.h"

/* ---- 3: a second device imports the broker's dma-bufs ------------------------ */

/* Luma at (x, y) of plane 0. */
static unsigned luma(const unsigned char *p, uint32_t fourcc, uint32_t bpl, unsigned x, unsigned y) {
        return fourcc == V4L2_PIX_FMT_YUYV ? p[(size_t) y * bpl + 2 * x] : p[(size_t) y * bpl + x];
}

void case_import(uint32_t fourcc, unsigned n_planes, unsigned nbuf) {
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
