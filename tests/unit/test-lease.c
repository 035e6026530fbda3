/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Leases (daemon/lease.c, the rules in daemon/broker.h): a memfd buffer's
 * holds go once no open file description of it is alive but the broker's
 * own; a buffer nobody holds stays, charged, while one is. Driven here
 * without an event loop: broker_leases_process() is called by hand after
 * the fds and mappings changed, as the loop would when the inotify fd is
 * readable. And the size guard of posix buffers, whose watch also asks
 * for IN_MODIFY.
 */
#include <linux/falloc.h>
#include <stdlib.h>
#include <sys/inotify.h>

#include "test-helpers.h"

static void leases_on(void) {
        ck_assert_int_eq(broker_leases_enable(b), 0);
        ck_assert_int_ge(broker_leases_fd(b), 0);
}

/* What a holder gets: a description of its own (as the bus layer hands
 * out). */
static int handout(Buffer *buf, bool read_only) {
        int fds[BB_PLANES_MAX];

        ck_assert_int_eq(buffer_open_fds(buf, read_only, fds), 0);
        return fds[0];
}

/* Leases on, a buffer of :1.1 (uid A) with *ret_id, and (ret_fd) its
 * creator's description. */
static Buffer *leased(bool persistent, uint64_t *ret_id, int *ret_fd) {
        Buffer *buf;

        leases_on();
        buf = create_ok(":1.1", UID_A, "l", 4096, persistent, 0);
        *ret_id = buf->id;
        ck_assert_int_ge(buf->lease_wd, 0);
        if (ret_fd)
                *ret_fd = handout(buf, false);
        return buf;
}

static void process(void) {
        ck_assert_int_eq(broker_leases_process(b), 0);
}

START_TEST(test_close_releases) {
        Buffer *buf;
        uint64_t id;
        int fd;

        buf = leased(false, &id, &fd);
        process();
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);

        close(fd);
        process();
        ck_assert_ptr_null(broker_find_buffer(b, id));
        ck_assert_uint_eq(count_dropped(id), 1);
        ck_assert_uint_eq(rec.removed, 1);
        assert_stats(0, 0, 0, 0);
}
END_TEST

START_TEST(test_mapping_keeps) {
        Buffer *buf;
        uint64_t id;
        void *p;
        int fd;

        buf = leased(false, &id, &fd);
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        close(fd);
        process();
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        ck_assert_uint_eq(buf->n_holds, 1);

        ck_assert_int_eq(munmap(p, 4096), 0);
        process();
        ck_assert_ptr_null(broker_find_buffer(b, id));
        ck_assert_uint_eq(count_dropped(id), 1);
}
END_TEST

/* Released while its fd is open: unheld, still charged; gone at the close. */
START_TEST(test_release_keeps_charge) {
        Buffer *buf;
        uint64_t id;
        int fd;

        buf = leased(false, &id, &fd);
        ck_assert_int_eq(broker_release(b, CALLER(":1.1", UID_A), buf, NULL), 0);
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        ck_assert_uint_eq(buf->n_holds, 0);
        ck_assert_uint_eq(count_dropped(id), 0);
        assert_stats(1, 4096, 0, 0);
        ck_assert_uint_eq(broker_usage(b, UID_A)->bytes, 4096);

        close(fd);
        process();
        ck_assert_ptr_null(broker_find_buffer(b, id));
        ck_assert_uint_eq(count_dropped(id), 1);
        ck_assert_ptr_null(broker_usage(b, UID_A));
        assert_stats(0, 0, 0, 0);
}
END_TEST

/* Its owner's close ends the holds of a persistent buffer, not the buffer. */
START_TEST(test_persistent_stays) {
        Buffer *buf;
        uint64_t id;

        buf = leased(true, &id, NULL);
        close(handout(buf, false));
        process();
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        ck_assert_uint_eq(buf->n_holds, 0);
        ck_assert_uint_eq(rec.removed, 1);
        ck_assert(buf->persistent);
        ck_assert_uint_eq(count_dropped(id), 0);
}
END_TEST

/* Closes read together (inotify merges identical queued events): one look
 * decides from what is alive, not from how many events came. */
START_TEST(test_closes_read_together) {
        Buffer *buf;
        uint64_t id;
        int fd[3];

        buf = leased(false, &id, NULL);
        {
                int fds[BB_PLANES_MAX];

                ck_assert_int_eq(broker_open_fds(b, CALLER(":1.2", UID_A), buf, true, NULL, fds), 0);
                fd[0] = fds[0];
        }
        for (unsigned i = 1; i < 3; i++)
                fd[i] = handout(buf, i == 1);
        ck_assert_uint_eq(buf->n_holds, 2);

        close(fd[0]);
        close(fd[1]);
        process();
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        ck_assert_uint_eq(buf->n_holds, 2);

        close(fd[2]);
        process();
        ck_assert_ptr_null(broker_find_buffer(b, id));
        ck_assert_uint_eq(rec.removed, 2);
}
END_TEST

/* A description the broker opened and closed again (a reply that failed)
 * ends nothing while a holder's is alive. */
START_TEST(test_own_transient_open) {
        Buffer *buf;
        uint64_t id;
        int fd;

        buf = leased(false, &id, &fd);
        for (unsigned i = 0; i < 4; i++)
                close(handout(buf, i % 2));
        process();
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        ck_assert_uint_eq(buf->n_holds, 1);
        close(fd);
        process();
        ck_assert_ptr_null(broker_find_buffer(b, id));
}
END_TEST

/* Never handed out: the creator holds it until it releases (the lease is
 * only looked at when a description closes or the last hold goes). */
START_TEST(test_held_without_description) {
        Buffer *buf;
        uint64_t id;

        buf = leased(false, &id, NULL);
        process();
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        ck_assert_int_eq(broker_release(b, CALLER(":1.1", UID_A), buf, NULL), 0);
        ck_assert_ptr_null(broker_find_buffer(b, id));
}
END_TEST

/* An answer "still open" after a close is asked again later (the kernel
 * uncounts a description only after it queued its close event): even with
 * no event read, the recheck finds the buffer closed. Release itself, with
 * no close, asks no recheck: the close to come will be seen. */
START_TEST(test_recheck) {
        char proc[64];
        Buffer *buf;
        uint64_t id;
        int fd, fd2;

        buf = leased(false, &id, &fd);
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        fd2 = open(proc, O_RDWR | O_CLOEXEC);   /* a second description */
        ck_assert_int_ge(fd2, 0);
        ck_assert_uint_eq(broker_leases_next_recheck(b), USEC_INFINITY);
        ck_assert_int_eq(broker_release(b, CALLER(":1.1", UID_A), buf, NULL), 0);
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        ck_assert_uint_eq(broker_leases_next_recheck(b), USEC_INFINITY);

        close(fd);
        process();              /* a close, and fd2 still open: ask again later */
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        ck_assert_uint_ne(broker_leases_next_recheck(b), USEC_INFINITY);
        close(fd2);             /* its event is not read */
        usleep(2000);
        broker_leases_recheck(b);
        ck_assert_ptr_null(broker_find_buffer(b, id));
        ck_assert_uint_eq(broker_leases_next_recheck(b), USEC_INFINITY);
}
END_TEST

/* Without leases, holds are explicit, as before. */
START_TEST(test_leases_off) {
        Buffer *buf;
        uint64_t id;
        int fd;

        buf = create_ok(":1.1", UID_A, "l", 4096, false, 0);
        id = buf->id;
        ck_assert_int_lt(buf->lease_wd, 0);
        ck_assert_int_lt(broker_leases_fd(b), 0);
        fd = handout(buf, false);
        close(fd);
        process();
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);

        fd = handout(buf, false);
        ck_assert_int_eq(broker_release(b, CALLER(":1.1", UID_A), buf, NULL), 0);
        ck_assert_ptr_null(broker_find_buffer(b, id));
        close(fd);
}
END_TEST

/* A posix buffer of :1.1 (uid A), leases on; *ret_fd its creator's
 * description. */
static Buffer *posix_leased(uint64_t *ret_id, int *ret_fd) {
        BrokerError err = {};
        Buffer *buf = NULL;

        leases_on();
        ck_assert_msg(broker_create(b, CALLER(":1.1", UID_A),
                                    &(CreateRequest) { .kind = BB_KIND_POSIX, .name = "p", .size = 4096 }, T0, &err,
                                    &buf) == 0, "create: %s", err.message);
        ck_assert_str_eq(buf->kind, BB_KIND_POSIX);
        ck_assert_ptr_nonnull(buf->shm_name);
        ck_assert_int_ge(buf->lease_wd, 0);
        *ret_id = buf->id;
        *ret_fd = handout(buf, false);
        return buf;
}

static uint64_t file_size(int fd) {
        struct stat st;

        ck_assert_int_eq(fstat(fd, &st), 0);
        return (uint64_t) st.st_size;
}

static uint64_t file_allocated(int fd) {
        struct stat st;

        ck_assert_int_eq(fstat(fd, &st), 0);
        return (uint64_t) st.st_blocks * 512;
}

/* The size guard: a posix buffer put back to its size after a holder's
 * ftruncate (either way), write past the end, or fallocate beyond it;
 * charged the same all along; and still leased. */
START_TEST(test_size_guard_posix) {
        char path[96];
        Buffer *buf;
        uint64_t id;
        int fd;

        buf = posix_leased(&id, &fd);
        snprintf(path, sizeof(path), "/dev/shm%s", buf->shm_name);

        ck_assert_int_eq(ftruncate(fd, 5 * 4096), 0);
        process();
        ck_assert_uint_eq(file_size(fd), 4096);
        ck_assert_int_eq(ftruncate(fd, 0), 0);
        process();
        ck_assert_uint_eq(file_size(fd), 4096);
        ck_assert_int_eq(pwrite(fd, "x", 1, 1 << 20), 1);
        process();
        ck_assert_uint_eq(file_size(fd), 4096);
        ck_assert_int_eq(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20), 0);
        ck_assert_uint_gt(file_allocated(fd), 4096);
        process();
        ck_assert_uint_eq(file_size(fd), 4096);
        ck_assert_uint_le(file_allocated(fd), 4096);
        /* Plain writes inside change nothing. */
        ck_assert_int_eq(pwrite(fd, "kept", 4, 0), 4);
        process();
        ck_assert_uint_eq(file_size(fd), 4096);
        assert_stats(1, 4096, 1, 0);
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);

        /* The lease still works: its last description closes, it goes, and
         * its name with it. */
        close(fd);
        process();
        ck_assert_ptr_null(broker_find_buffer(b, id));
        ck_assert_int_eq(access(path, F_OK), -1);
        assert_stats(0, 0, 0, 0);
}
END_TEST

/* A memfd's watch asks for no IN_MODIFY: writes wake nobody. */
START_TEST(test_no_size_guard_for_memfd) {
        char line[256];
        Buffer *buf;
        uint64_t id;
        bool found = false;
        FILE *f;
        int fd;

        buf = leased(false, &id, &fd);
        snprintf(line, sizeof(line), "/proc/self/fdinfo/%d", broker_leases_fd(b));
        f = fopen(line, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f)) {
                unsigned wd, mask;

                if (sscanf(line, "inotify wd:%x %*s %*s mask:%x", &wd, &mask) == 2 && (int) wd == buf->lease_wd) {
                        found = true;
                        ck_assert_uint_eq(mask & IN_MODIFY, 0);
                }
        }
        fclose(f);
        ck_assert(found);
        close(fd);
}
END_TEST

static Suite *suite_lease(void) {
        Suite *s = suite_create("lease");
        TCase *tc = tcase_new("lease");         /* a fresh broker per test */

        tcase_add_test(tc, test_close_releases);
        tcase_add_test(tc, test_mapping_keeps);
        tcase_add_test(tc, test_release_keeps_charge);
        tcase_add_test(tc, test_persistent_stays);
        tcase_add_test(tc, test_closes_read_together);
        tcase_add_test(tc, test_own_transient_open);
        tcase_add_test(tc, test_held_without_description);
        tcase_add_test(tc, test_recheck);
        tcase_add_test(tc, test_leases_off);
        tcase_add_test(tc, test_size_guard_posix);
        tcase_add_test(tc, test_no_size_guard_for_memfd);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr;
        int failed;

        sr = srunner_create(suite_lease());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
