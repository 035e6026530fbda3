/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the memfd allocator as the broker core hands it out: the fds
 * are sealed memfds that no holder can shrink or grow, shared between fds,
 * and Freeze() makes the contents immutable; first the allocator on its own
 * (memfd.h), then as the core hands it out. No D-Bus.
 */
#include <sys/mman.h>

#include "memfd.h"
#include "test-helpers.h"

/* ========================================================= allocator === */

START_TEST(test_alloc_new_sealed) {
        char path[64], target[512];
        struct stat st;
        ssize_t n;
        int fd = -1;

        ck_assert_int_eq(memfd_new_sealed(&(CreateRequest) { .name = "cam0", .size = 12345 }, &fd), 0);
        ck_assert_int_ge(fd, 0);
        /* Exactly the size asked: rounding is the broker's business. */
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, 12345);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ck_assert_int_eq(seals(fd) & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
        ck_assert_int_eq(seals(fd) & (F_SEAL_WRITE | F_SEAL_SEAL), 0);

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        ck_assert_int_gt(n, 0);
        target[n] = 0;
        ck_assert_msg(strncmp(target, "/memfd:bufbroker:cam0", 21) == 0, "named %s", target);

        errno = 0;
        ck_assert_int_eq(ftruncate(fd, 0), -1);
        ck_assert_int_eq(errno, EPERM);
        errno = 0;
        ck_assert_int_eq(ftruncate(fd, 1 << 20), -1);
        ck_assert_int_eq(errno, EPERM);
        close(fd);
}
END_TEST

START_TEST(test_alloc_long_name) {
        char name[BB_NAME_MAX + 1];
        int fd = -1;

        /* Longer than memfd_create() takes: truncated, not refused. */
        memset(name, 'n', BB_NAME_MAX);
        name[BB_NAME_MAX] = 0;
        ck_assert_int_eq(memfd_new_sealed(&(CreateRequest) { .name = name, .size = 4096 }, &fd), 0);
        ck_assert_int_ge(fd, 0);
        close(fd);
}
END_TEST

START_TEST(test_alloc_huge_size) {
        const uint64_t sizes[] = { UINT64_MAX, UINT64_MAX - 4095, UINT64_C(1) << 63 };
        int fds = count_fds();

        for (unsigned i = 0; i < ELEMENTSOF(sizes); i++) {
                int fd = -42, r;

                r = memfd_new_sealed(&(CreateRequest) { .name = "huge", .size = sizes[i] }, &fd);
                ck_assert_msg(r < 0, "size %" PRIu64 " accepted", sizes[i]);
                ck_assert_int_eq(fd, -42);      /* *ret_fd untouched on failure */
        }
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_alloc_freeze) {
        void *p;
        int fd = -1;

        ck_assert_int_eq(memfd_new_sealed(&(CreateRequest) { .name = "freeze", .size = 8192 }, &fd), 0);
        p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        ck_assert_int_eq(memfd_freeze(fd), -EBUSY);
        ck_assert_int_eq(seals(fd) & F_SEAL_WRITE, 0);
        munmap(p, 8192);

        ck_assert_int_eq(memfd_freeze(fd), 0);
        ck_assert_int_eq(seals(fd) & F_SEAL_WRITE, F_SEAL_WRITE);
        ck_assert_int_eq(memfd_freeze(fd), -EALREADY);
        errno = 0;
        ck_assert_int_eq(pwrite(fd, "x", 1, 0), -1);
        ck_assert_int_eq(errno, EPERM);
        close(fd);
}
END_TEST

START_TEST(test_alloc_reopen_read_only) {
        char data[4] = {};
        int fd = -1, ro;

        ck_assert_int_eq(memfd_new_sealed(&(CreateRequest) { .name = "ro", .size = 4096 }, &fd), 0);
        ck_assert_int_eq(pwrite(fd, "abc", 3, 0), 3);
        ro = fd_reopen(fd, O_RDONLY);
        ck_assert_int_ge(ro, 0);
        ck_assert_int_ne(ro, fd);
        ck_assert_int_eq(fcntl(ro, F_GETFL) & O_ACCMODE, O_RDONLY);
        ck_assert(fcntl(ro, F_GETFD) & FD_CLOEXEC);
        ck_assert_int_eq(pread(ro, data, 3, 0), 3);
        ck_assert_str_eq(data, "abc");

        errno = 0;
        ck_assert_ptr_eq(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0), MAP_FAILED);
        ck_assert_int_eq(errno, EACCES);
        ck_assert_int_eq(write(ro, "x", 1), -1);
        ck_assert_int_eq(ftruncate(ro, 0), -1);
        /* Nor sealed by whoever receives it (it could freeze the owner's buffer). */
        errno = 0;
        ck_assert_int_eq(fcntl(ro, F_ADD_SEALS, F_SEAL_WRITE), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(seals(fd) & F_SEAL_WRITE, 0);

        /* Nor reopened writable through /proc/self/fd by another uid: the
         * inode grants group and others nothing (test-broker checks the real
         * thing as uid 65534 when run as root). */
        {
                struct stat st;

                ck_assert_int_eq(fstat(ro, &st), 0);
                ck_assert_int_eq(st.st_mode & 077, 0);
                ck_assert_uint_eq(st.st_uid, geteuid());
        }

        /* A fresh open: its status flags are its own. */
        ck_assert_int_eq(fcntl(ro, F_SETFL, O_NONBLOCK), 0);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
        close(ro);
        close(fd);
}
END_TEST

START_TEST(test_alloc_reopen_bad_fd) {
        int fds = count_fds();

        ck_assert_int_lt(fd_reopen(-1, O_RDONLY), 0);
        ck_assert_int_lt(fd_reopen(INT32_MAX, O_RDONLY), 0);
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ================================================= as the core hands it === */

START_TEST(test_fd_is_sealed_memfd) {
        char tok[BB_TOKEN_LEN + 1], path[64], target[512];
        Buffer *buf;
        ssize_t n;
        int fd = -1;

        buf = create_shared("frames", 2 * page_size(), tok);
        /* Sealed before it is handed out: the daemon's own fd already is. */
        ck_assert_int_eq(seals(buf->planes[0].fd) & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);

        open_ok(":1.2", UID_B, tok, T0, &fd);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        ck_assert_int_gt(n, 0);
        target[n] = 0;
        ck_assert_msg(strncmp(target, "/memfd:", 7) == 0, "fd %d is %s, not a memfd", fd, target);

        ck_assert_int_eq(seals(fd) & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
        /* Not frozen yet, and still freezable: neither WRITE nor SEAL. */
        ck_assert_int_eq(seals(fd) & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL), 0);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
}
END_TEST

START_TEST(test_truncate_and_grow_fail) {
        const uint64_t ps = page_size();
        char tok[BB_TOKEN_LEN + 1];
        struct stat st;
        Buffer *buf;
        int fd = -1;

        buf = create_shared("fixed", 4 * ps, tok);
        open_ok(":1.2", UID_B, tok, T0, &fd);

        errno = 0;
        ck_assert_int_eq(ftruncate(fd, (off_t) (buf->size - ps)), -1);
        ck_assert_int_eq(errno, EPERM);
        errno = 0;
        ck_assert_int_eq(ftruncate(fd, 0), -1);
        ck_assert_int_eq(errno, EPERM);
        errno = 0;
        ck_assert_int_eq(ftruncate(fd, (off_t) (buf->size + ps)), -1);
        ck_assert_int_eq(errno, EPERM);
        /* Nor through the daemon's own fd. */
        errno = 0;
        ck_assert_int_eq(ftruncate(buf->planes[0].fd, 1), -1);
        ck_assert_int_eq(errno, EPERM);
        /* Growing by writing or allocating past the end. */
        errno = 0;
        ck_assert_int_eq(pwrite(fd, "x", 1, (off_t) buf->size), -1);
        ck_assert_int_eq(errno, EPERM);
        errno = 0;
        ck_assert_int_eq(fallocate(fd, 0, (off_t) buf->size, (off_t) ps), -1);
        ck_assert_int_eq(errno, EPERM);

        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq((uint64_t) st.st_size, 4 * ps);
        /* Writing inside the buffer is fine. */
        ck_assert_int_eq(pwrite(fd, "x", 1, (off_t) buf->size - 1), 1);
        close(fd);
}
END_TEST

START_TEST(test_writes_visible_across_fds) {
        const uint64_t ps = page_size();
        char tok[BB_TOKEN_LEN + 1], data[16] = {};
        char *p1, *p2;
        Buffer *buf;
        int fd1 = -1, fd2 = -1;

        buf = create_shared("shared", 2 * ps, tok);
        open_ok(":1.2", UID_B, tok, T0, &fd1);
        open_ok(":1.3", UID_C, tok, T0, &fd2);
        ck_assert_int_ne(fd1, fd2);

        ck_assert_int_eq(pwrite(fd1, "through fd1", 11, 10), 11);
        ck_assert_int_eq(pread(fd2, data, 11, 10), 11);
        ck_assert_str_eq(data, "through fd1");
        memset(data, 0, sizeof(data));
        ck_assert_int_eq(pread(buf->planes[0].fd, data, 11, 10), 11);
        ck_assert_str_eq(data, "through fd1");

        p1 = mmap(NULL, buf->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd1, 0);
        ck_assert_ptr_ne(p1, MAP_FAILED);
        p2 = mmap(NULL, buf->size, PROT_READ, MAP_SHARED, fd2, 0);
        ck_assert_ptr_ne(p2, MAP_FAILED);
        memcpy(p1 + ps + 7, "mapped", 6);
        ck_assert_int_eq(memcmp(p2 + ps + 7, "mapped", 6), 0);
        ck_assert_int_eq(memcmp(p2 + 10, "through fd1", 11), 0);
        ck_assert_int_eq(munmap(p1, buf->size), 0);
        ck_assert_int_eq(munmap(p2, buf->size), 0);
        close(fd1);
        close(fd2);
}
END_TEST

START_TEST(test_holders_have_own_file_descriptions) {
        char tok[BB_TOKEN_LEN + 1];
        Buffer *buf;
        int fd1 = -1, fd2 = -1;

        /* One holder's O_APPEND must not turn another's pwrite() into EPERM
         * (sealed files refuse appends), nor move the daemon's offset. */
        buf = create_shared("own-description", page_size(), tok);
        open_ok(":1.2", UID_B, tok, T0, &fd1);
        open_ok(":1.3", UID_C, tok, T0, &fd2);

        ck_assert_int_eq(fcntl(fd1, F_SETFL, O_APPEND), 0);
        ck_assert_int_eq(fcntl(fd2, F_GETFL) & O_APPEND, 0);
        ck_assert_int_eq(fcntl(buf->planes[0].fd, F_GETFL) & O_APPEND, 0);
        ck_assert_int_eq(pwrite(fd2, "x", 1, 0), 1);

        ck_assert_int_eq(lseek(fd2, 100, SEEK_SET), 100);
        ck_assert_int_eq(lseek(fd1, 0, SEEK_CUR), 0);
        ck_assert_int_eq(lseek(buf->planes[0].fd, 0, SEEK_CUR), 0);
        close(fd1);
        close(fd2);
}
END_TEST

START_TEST(test_freeze_adds_seal_write) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1], rotok[BB_TOKEN_LEN + 1], data[8] = {};
        Buffer *buf;
        void *p;
        int fd = -1, fd2 = -1;

        buf = create_shared("frozen", 2 * page_size(), tok);
        open_ok(":1.2", UID_B, tok, T0, &fd);
        ck_assert_int_eq(pwrite(fd, "before", 6, 0), 6);

        ck_assert_int_eq(freeze(buf, ":1.1", UID_A), 0);
        ck_assert(buf->frozen);
        ck_assert_int_eq(seals(fd) & F_SEAL_WRITE, F_SEAL_WRITE);
        ck_assert_int_eq(seals(fd) & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);

        /* Writes fail, through any fd, the daemon's included. */
        errno = 0;
        ck_assert_int_eq(pwrite(fd, "after", 5, 0), -1);
        ck_assert_int_eq(errno, EPERM);
        errno = 0;
        ck_assert_int_eq(write(buf->planes[0].fd, "after", 5), -1);
        ck_assert_int_eq(errno, EPERM);
        errno = 0;
        ck_assert_ptr_eq(mmap(NULL, buf->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
        ck_assert_int_eq(errno, EPERM);

        /* Reading still works, and shows what was there. */
        p = mmap(NULL, buf->size, PROT_READ, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        ck_assert_int_eq(memcmp(p, "before", 6), 0);
        munmap(p, buf->size);

        /* New opens after the freeze: read-write tokens give unwritable fds too. */
        open_ok(":1.3", UID_C, tok, T0, &fd2);
        errno = 0;
        ck_assert_int_eq(pwrite(fd2, "x", 1, 0), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(pread(fd2, data, 6, 0), 6);
        ck_assert_str_eq(data, "before");
        close(fd2);
        o.read_only = true;
        share_ok(buf, ":1.1", UID_A, &o, T0, rotok);
        open_ok(":1.3", UID_C, rotok, T0, &fd2);
        close(fd2);
        close(fd);
}
END_TEST

START_TEST(test_freeze_twice) {
        char tok[BB_TOKEN_LEN + 1];
        BrokerError err = {};
        Buffer *buf;

        buf = create_shared("twice", page_size(), tok);
        ck_assert_int_eq(freeze(buf, ":1.1", UID_A), 0);
        assert_fails(broker_freeze(b, CALLER(":1.1", UID_A), buf, &err), EALREADY, err);
        assert_fails(broker_freeze(b, CALLER(":1.0", 0), buf, &err), EALREADY, err);
        ck_assert(buf->frozen);
        ck_assert_int_eq(seals(buf->planes[0].fd) & F_SEAL_WRITE, F_SEAL_WRITE);
}
END_TEST

START_TEST(test_freeze_busy_with_writable_mapping) {
        char tok[BB_TOKEN_LEN + 1];
        BrokerError err = {};
        Buffer *buf;
        char *p;
        int fd = -1;

        buf = create_shared("busy", 2 * page_size(), tok);
        open_ok(":1.2", UID_B, tok, T0, &fd);
        p = mmap(NULL, buf->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);

        assert_fails(broker_freeze(b, CALLER(":1.1", UID_A), buf, &err), ETXTBSY, err);
        ck_assert(!buf->frozen);
        ck_assert_int_eq(seals(fd) & F_SEAL_WRITE, 0);
        /* Nothing changed: the mapping still writes, files still write. */
        memcpy(p, "still", 5);
        ck_assert_int_eq(pwrite(fd, "yes", 3, 10), 3);

        /* A second try fails the same way, then succeeds once the mapping is gone. */
        assert_fails(broker_freeze(b, CALLER(":1.1", UID_A), buf, &err), ETXTBSY, err);
        ck_assert_int_eq(munmap(p, buf->size), 0);
        ck_assert_int_eq(freeze(buf, ":1.1", UID_A), 0);
        ck_assert(buf->frozen);
        ck_assert_int_eq(seals(fd) & F_SEAL_WRITE, F_SEAL_WRITE);

        /* A writable mapping of the daemon's own fd counts too. */
        buf = create_shared("busy2", page_size(), tok);
        p = mmap(NULL, buf->size, PROT_READ | PROT_WRITE, MAP_SHARED, buf->planes[0].fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        assert_fails(broker_freeze(b, CALLER(":1.1", UID_A), buf, &err), ETXTBSY, err);
        ck_assert(!buf->frozen);
        munmap(p, buf->size);
        close(fd);
}
END_TEST

START_TEST(test_freeze_permissions) {
        char tok[BB_TOKEN_LEN + 1];
        BrokerError err = {};
        Buffer *buf;

        buf = create_shared("perm", page_size(), tok);
        open_ok(":1.2", UID_B, tok, T0, NULL);

        assert_fails(broker_freeze(b, CALLER(":1.2", UID_B), buf, &err), EPERM, err);   /* holder */
        assert_fails(broker_freeze(b, CALLER(":1.3", UID_C), buf, &err), EPERM, err);   /* stranger */
        ck_assert(!buf->frozen);
        ck_assert_int_eq(seals(buf->planes[0].fd) & F_SEAL_WRITE, 0);
        ck_assert_ptr_null(broker_find_client(b, ":1.3"));
        assert_stats(1, page_size(), 2, 1);

        ck_assert_int_eq(freeze(buf, ":1.0", 0), 0);                            /* root */
        ck_assert(buf->frozen);

        buf = create_shared("perm2", page_size(), tok);
        ck_assert_int_eq(freeze(buf, ":1.9", UID_A), 0);                        /* owner uid */
        buf = create_shared("perm3", page_size(), tok);
        ck_assert_int_eq(freeze(buf, ":1.7", b->self_uid), 0);                 /* the daemon's uid */
}
END_TEST

START_TEST(test_fd_outlives_buffer) {
        char tok[BB_TOKEN_LEN + 1], data[8] = {};
        Buffer *buf;
        void *p;
        int fd = -1;

        buf = create_shared("gone", page_size(), tok);
        open_ok(":1.2", UID_B, tok, T0, &fd);
        ck_assert_int_eq(pwrite(fd, "kept", 4, 0), 4);
        p = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);

        vanish(":1.1");
        vanish(":1.2");
        assert_stats(0, 0, 0, 0);
        ck_assert_uint_eq(rec.dropped, 1);
        (void) buf;

        /* The kernel keeps the memory for who has it: "released" is not "freed". */
        ck_assert_int_eq(pread(fd, data, 4, 0), 4);
        ck_assert_str_eq(data, "kept");
        ck_assert_int_eq(memcmp(p, "kept", 4), 0);
        memcpy(p, "more", 4);
        munmap(p, page_size());
        close(fd);
}
END_TEST

static Suite *suite_memfd(void) {
        Suite *s = suite_create("memfd");
        TCase *tc = tcase_new("allocator");

        tcase_add_test(tc, test_alloc_new_sealed);
        tcase_add_test(tc, test_alloc_long_name);
        tcase_add_test(tc, test_alloc_huge_size);
        tcase_add_test(tc, test_alloc_freeze);
        tcase_add_test(tc, test_alloc_reopen_read_only);
        tcase_add_test(tc, test_alloc_reopen_bad_fd);
        suite_add_tcase(s, tc);

        tc = tcase_new("seals");

        tcase_add_test(tc, test_fd_is_sealed_memfd);
        tcase_add_test(tc, test_truncate_and_grow_fail);
        tcase_add_test(tc, test_writes_visible_across_fds);
        tcase_add_test(tc, test_holders_have_own_file_descriptions);
        tcase_add_test(tc, test_fd_outlives_buffer);
        suite_add_tcase(s, tc);

        tc = tcase_new("freeze");
        tcase_add_test(tc, test_freeze_adds_seal_write);
        tcase_add_test(tc, test_freeze_twice);
        tcase_add_test(tc, test_freeze_busy_with_writable_mapping);
        tcase_add_test(tc, test_freeze_permissions);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr;
        int failed;

        sr = srunner_create(suite_memfd());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
