/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-v4l2, phases 1 and 2: a set's format, planes and dma-bufs (see guest-v4l2.h). */
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "guest-v4l2.h"

/* ---- 1/2: a set's format, planes and dma-bufs ---------------------------------- */

void case_set(const Expect *x, unsigned count, const char *alloc_exp) {
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

        /* The same, read as properties (Planes, Format): no fd, no hold. */
        w = (Why) {};
        for (size_t i = 0; i < n; i++) {
                bb_buffer *g = NULL;

                r = bb_buffer_get(c, bb_buffer_id(l[i]), &g);
                if (r < 0) {
                        why(&w, "bb_buffer_get of buffer %zu: %s", i, strerror(-r));
                        continue;
                }
                if (bb_buffer_width(g) != bb_buffer_width(l[i]) || bb_buffer_height(g) != bb_buffer_height(l[i]) ||
                    bb_buffer_fourcc(g) != bb_buffer_fourcc(l[i]) || bb_buffer_v4l2_index(g) != (int) i ||
                    !bb_buffer_format_type(g) || strcmp(bb_buffer_format_type(g), x->type) != 0)
                        why(&w, "buffer %zu: Format says %ux%u %s %s index %d", i, bb_buffer_width(g),
                            bb_buffer_height(g), fcc(bb_buffer_fourcc(g), s), bb_buffer_format_type(g) ?: "(null)",
                            bb_buffer_v4l2_index(g));
                if (bb_buffer_n_planes(g) != bb_buffer_n_planes(l[i]))
                        why(&w, "buffer %zu: Planes has %u, the fds %u", i, bb_buffer_n_planes(g),
                            bb_buffer_n_planes(l[i]));
                for (unsigned p = 0; p < bb_buffer_n_planes(g) && p < bb_buffer_n_planes(l[i]); p++)
                        if (bb_buffer_plane_length(g, p) != bb_buffer_plane_length(l[i], p) ||
                            bb_buffer_plane_stride(g, p) != bb_buffer_plane_stride(l[i], p))
                                why(&w, "buffer %zu plane %u: Planes says length %" PRIu64 " stride %u", i, p,
                                    bb_buffer_plane_length(g, p), bb_buffer_plane_stride(g, p));
                if (bb_buffer_fd(g) >= 0)
                        why(&w, "buffer %zu: reading its properties handed out an fd", i);
                bb_buffer_unref(g);
        }
        check_why(&w, "the Planes and Format properties say the same as the fds' info, and hand out no fd");

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
void case_sharing_and_orphans(void) {
        bb_client *c = NULL, *c2 = NULL;
        bb_buffer **l = NULL, *o = NULL, *ro = NULL;
        char *token = NULL;
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
        can_create(DEV_A, &w, "while we still hold the old set's fds");
        if (fnv1a(v, sz) != sum || memcmp(v, "bufbroker", 9) != 0)
                why(&w, "our mapping of the released buffer changed");
        if (lseek(bb_buffer_fd(l[0]), 0, SEEK_END) != (off_t) page_align(sz))
                why(&w, "lseek on the orphaned dma-buf fails");
        check_why(&w, "released while we keep the fds: set torn down, a new CreateV4L2 on %s succeeds, "
                  "and our mapping still shows our bytes (orphaned buffers live on)", DEV_A);

out:
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
void case_options_and_nodes(void) {
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

        /* the driver adjusts size and count: the reply says what it chose
         * (raw: the library reads the format from OpenFds, not the reply) */
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
