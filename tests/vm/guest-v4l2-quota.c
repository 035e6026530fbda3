/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-v4l2, quotas (see guest-v4l2.h). */
#include "guest-v4l2.h"

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

void case_quota(void) {
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
