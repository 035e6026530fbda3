/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CreateMemfd's hugetlb and prefault options: huge pages (the size rounded
 * up to the kernel's huge page size, every page reserved before the reply,
 * NoSpace when they are not there) and pages allocated before the reply.
 * The daemon runs as an unprivileged user, as under systemd.
 *
 * The test reserves huge pages itself (/proc/sys/vm/nr_hugepages) and puts
 * the old value back on every way out: after the run, at exit, and on
 * SIGTERM/SIGINT (meson's timeout). A kernel without huge pages, or a pool
 * that cannot be set, is a skip (77) with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bufbroker.h"
#include "harness.h"

#define M (UINT64_C(1) << 20)
static const char *const daemon_args[] = { "--max-bytes-per-uid=12M", NULL };

static uint64_t huge;                   /* the kernel's huge page size */

/* ------------------------------------------------------------ calls --- */

static bb_client *lib_connect(void) {
        bb_client *c = NULL;
        int r = bb_client_new_address(&c, H->address);

        ck_assert_msg(r == 0, "bb_client_new_address: %s", strerror(-r));
        return c;
}

/* CreateMemfd with the options hugetlb and prefault (when set), on the
 * test's connection; r and *error as the call left them. */
static int create_with(bool hugetlb, bool prefault, bool persistent, uint64_t size, Created *ret,
                       sd_bus_error *error) {
        sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        int fd, r;

        r = sd_bus_message_new_method_call(H->bus, &m, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                           "CreateMemfd");
        ck_assert_int_ge(r, 0);
        r = sd_bus_message_append(m, "st", "huge", size);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && hugetlb)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_HUGETLB, "b", true);
        if (r >= 0 && prefault)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_PREFAULT, "b", true);
        if (r >= 0 && persistent)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_PERSISTENT, "b", true);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        ck_assert_int_ge(r, 0);
        r = sd_bus_call(H->bus, m, 0, error, &reply);
        sd_bus_message_unref(m);
        if (r < 0)
                return r;
        ck_assert_int_ge(sd_bus_message_read(reply, "oht", &path, &fd, &ret->size), 0);
        ret->path = strdup(path);
        ret->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        ck_assert_int_ge(ret->fd, 0);
        ret->id = buffer_id_from_path(path);
        sd_bus_message_unref(reply);
        return 0;
}

static Created create_ok(bool hugetlb, bool prefault, uint64_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Created c = { .fd = -1 };
        int r = create_with(hugetlb, prefault, false, size, &c, &error);

        ck_assert_msg(r >= 0, "CreateMemfd(hugetlb %d, prefault %d, %" PRIu64 "): %s", hugetlb, prefault, size,
                      error.message);
        sd_bus_error_free(&error);
        return c;
}

static uint64_t allocated(int fd) {
        struct stat st;

        ck_assert_int_eq(fstat(fd, &st), 0);
        return (uint64_t) st.st_blocks * 512;
}

/* Release, close, and wait until the daemon let it go. */
static void release_and_wait(Created *c) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t id = c->id;

        ck_assert_msg(call_release(NULL, c->path, &error) >= 0, "Release: %s", error.message);
        created_done(c);
        ck_assert_msg(released_wait(id, scaled_ms(5000)), "no BufferReleased for %" PRIu64, id);
}

/* ------------------------------------------------------------ cases --- */

/* uid 65534 opens the token: the same huge pages, page-size and prefaulted
 * in Open's info, the data written by the creator. */
static int nobody_opens(void *userdata) {
        const char *token = userdata;
        sd_bus *bus = NULL;
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *path, *key;
        uint64_t page_size = 0;
        int prefaulted = -1, fd, r;
        char *p;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open", &error, &reply,
                               "sa{sv}", token, 0);
        child_check(r >= 0, "Open: %s", error.message);
        r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0)
                r = sd_bus_message_read(reply, "ah", 1, &fd);
        child_check(r >= 0, "read: %s", strerror(-r));
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0 && strcmp(key, BB_INFO_PAGE_SIZE) == 0)
                        r = sd_bus_message_read(reply, "v", "t", &page_size);
                else if (r >= 0 && strcmp(key, BB_INFO_PREFAULTED) == 0)
                        r = sd_bus_message_read(reply, "v", "b", &prefaulted);
                else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        child_check(r >= 0, "info: %s", strerror(-r));
        child_check(page_size == huge, "page-size %" PRIu64 ", want %" PRIu64, page_size, huge);
        child_check(prefaulted == 0, "prefaulted %d", prefaulted);
        p = mmap(NULL, huge, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        child_check(p != MAP_FAILED, "mmap: %s", strerror(errno));
        child_check(memcmp(p, "huge", 4) == 0 && p[huge - 1] == 'z', "not the creator's data");
        p[1] = 'U';
        munmap(p, huge);
        /* Not ours to shrink: the seals hold on hugetlbfs too. */
        child_check(ftruncate(fd, 0) < 0 && errno == EPERM, "ftruncate: %s", strerror(errno));
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return 0;
}

START_TEST(test_create_share_open_release) {
        _cleanup_created_ Created c = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *token = NULL, *p;
        Snapshot base;

        huge_pages_set(2);
        baseline_after_warmup(&base);
        released_watch();
        c = create_ok(true, false, 1);
        ck_assert_uint_eq(c.size, huge);
        /* Reserved for the buffer, not allocated yet: nobody faults. */
        ck_assert_int_eq(meminfo_value("HugePages_Rsvd"), 1);
        ck_assert_int_eq(meminfo_value("HugePages_Free"), 2);
        ck_assert_uint_eq(allocated(c.fd), 0);
        ck_assert_uint_eq(property_t(c.path, BB_PROP_PAGE_SIZE), huge);
        ck_assert(!property_b(c.path, BB_PROP_PREFAULTED));
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + huge);

        p = mmap(NULL, huge, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd, 0);
        ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
        memcpy(p, "huge", 4);
        p[huge - 1] = 'z';
        ck_assert_int_eq(meminfo_value("HugePages_Free"), 1);

        ck_assert_msg(call_share(NULL, c.path, false, NOBODY_UID, false, 0, &token, &error) >= 0, "Share: %s",
                      error.message);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_opens, token, scaled_ms(10000)), 0);
        ck_assert_int_eq(p[1], 'U');
        free(token);
        ck_assert_int_eq(munmap(p, huge), 0);

        release_and_wait(&c);
        assert_meminfo_becomes("HugePages_Rsvd", 0);
        assert_meminfo_becomes("HugePages_Free", 2);
        assert_back_to(&base, "hugetlb buffer released");
}
END_TEST

/* Up to the huge page size, whatever was asked; the reply's size is the
 * file's; a batch too. */
START_TEST(test_size_rounding) {
        const uint64_t asked[] = { 1, 4096, huge - 1, huge, huge + 1 };
        const uint64_t want[] = { huge, huge, huge, huge, 2 * huge };
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Snapshot base;
        struct stat st;
        const char *paths[2];
        uint64_t sizes[2];
        int fds[2], r;

        huge_pages_set(4);
        baseline_after_warmup(&base);
        released_watch();
        for (size_t i = 0; i < ELEMENTSOF(asked); i++) {
                Created c = create_ok(true, false, asked[i]);

                ck_assert_msg(c.size == want[i], "asked %" PRIu64 ": %" PRIu64 ", want %" PRIu64, asked[i], c.size,
                              want[i]);
                ck_assert_int_eq(fstat(c.fd, &st), 0);
                ck_assert_uint_eq((uint64_t) st.st_size, want[i]);
                ck_assert_uint_eq((uint64_t) st.st_blksize, huge);
                release_and_wait(&c);
        }

        r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfds", &error,
                               &reply, "stua{sv}", "batch", huge + 1, 2, 1, BB_OPT_HUGETLB, "b", true);
        ck_assert_msg(r >= 0, "CreateMemfds: %s", error.message);
        ck_assert_int_ge(sd_bus_message_read(reply, "a(oht)", 2, &paths[0], &fds[0], &sizes[0], &paths[1], &fds[1],
                                             &sizes[1]), 0);
        ck_assert_uint_eq(sizes[0], 2 * huge);
        ck_assert_uint_eq(sizes[1], 2 * huge);
        ck_assert_int_eq(meminfo_value("HugePages_Rsvd"), 4);
        for (unsigned i = 0; i < 2; i++)
                ck_assert_int_ge(call_release(NULL, paths[i], &error), 0);
        sd_bus_message_unref(reply);
        assert_back_to(&base, "batch released");
        assert_meminfo_becomes("HugePages_Rsvd", 0);
}
END_TEST

/* No free huge pages: NoSpace naming them, -ENOSPC in the library, and
 * nothing left: no buffer, no fd, no reservation. A batch that does not
 * fit is all or none. */
START_TEST(test_no_free_huge_pages) {
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Created c = { .fd = -1 };
        bb_client *lib;
        bb_buffer *buf = NULL;
        Snapshot base;
        int r;

        huge_pages_set(0);
        baseline_after_warmup(&base);
        r = create_with(true, false, false, 1, &c, &error);
        assert_bus_error(&error, r, BB_ERROR_NO_SPACE, "huge pages", "hugetlb, no pool");
        sd_bus_error_free(&error);
        r = create_with(true, true, false, 1, &c, &error);
        assert_bus_error(&error, r, BB_ERROR_NO_SPACE, "huge pages", "hugetlb prefault, no pool");
        sd_bus_error_free(&error);

        lib = lib_connect();
        r = bb_buffer_create(lib, "lib", 1, BB_CREATE_HUGETLB, 0, &buf);
        ck_assert_msg(r == -ENOSPC, "bb_buffer_create: %d", r);
        ck_assert_str_eq(bb_client_error_name(lib), BB_ERROR_NO_SPACE);
        bb_client_unref(lib);
        assert_back_to(&base, "no huge pages");

        /* Two free, three asked: none. */
        huge_pages_set(2);
        r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfds", &error,
                               &reply, "stua{sv}", "batch", huge, 3, 1, BB_OPT_HUGETLB, "b", true);
        assert_bus_error(&error, r, BB_ERROR_NO_SPACE, "huge pages", "batch over the pool");
        sd_bus_error_free(&error);
        assert_back_to(&base, "batch over the pool");
        ck_assert_int_eq(meminfo_value("HugePages_Rsvd"), 0);
        ck_assert_int_eq(meminfo_value("HugePages_Free"), 2);
}
END_TEST

/* The quota is charged the rounded size: 1 byte of huge pages is a whole
 * huge page. The daemon allows 12M per uid. */
START_TEST(test_quota_counts_huge_pages) {
        _cleanup_created_ Created big = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Created c = { .fd = -1 }, small;
        Snapshot base;
        int r;

        huge_pages_set(2);
        baseline_after_warmup(&base);
        released_watch();
        c = create_ok(true, false, 1);
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + huge);
        release_and_wait(&c);

        big = create_ok(false, false, 12 * M - huge / 2);
        r = create_with(true, false, false, 1, &c, &error);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, NULL, "a huge page over the quota");
        sd_bus_error_free(&error);
        ck_assert_int_eq(meminfo_value("HugePages_Rsvd"), 0);
        /* What is left still takes small pages. */
        small = create_ok(false, false, 1);
        release_and_wait(&small);
        release_and_wait(&big);
        assert_back_to(&base, "quota");
}
END_TEST

/* A value of any type but b, for each option, on both create methods; and
 * the options mean nothing to CreateV4L2. Nothing is created. */
START_TEST(test_hostile_options) {
        static const char *const keys[] = { BB_OPT_HUGETLB, BB_OPT_PREFAULT };
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Snapshot base;
        int r;

        huge_pages_set(0);
        baseline_after_warmup(&base);
        for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
                char want[64];

                snprintf(want, sizeof(want), "'%s'", keys[k]);
                r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                                       &error, &reply, "sta{sv}", "x", UINT64_C(4096), 1, keys[k], "s", "true");
                assert_bus_error(&error, r, BB_ERROR_INVALID_ARGS, want, "string");
                sd_bus_error_free(&error);
                r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                                       &error, &reply, "sta{sv}", "x", UINT64_C(4096), 1, keys[k], "u", 1);
                assert_bus_error(&error, r, BB_ERROR_INVALID_ARGS, want, "integer");
                sd_bus_error_free(&error);
                r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                                       &error, &reply, "sta{sv}", "x", UINT64_C(4096), 1, keys[k], "as", 1, "b");
                assert_bus_error(&error, r, BB_ERROR_INVALID_ARGS, want, "array");
                sd_bus_error_free(&error);
                r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfds",
                                       &error, &reply, "stua{sv}", "x", UINT64_C(4096), 2, 1, keys[k], "i", -1);
                assert_bus_error(&error, r, BB_ERROR_INVALID_ARGS, want, "batch, integer");
                sd_bus_error_free(&error);
                r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateV4L2",
                                       &error, &reply, "sua{sv}a{sv}", "/dev/video0", 1, 0, 1, keys[k], "b", true);
                assert_bus_error(&error, r, BB_ERROR_INVALID_ARGS, want, "CreateV4L2");
                sd_bus_error_free(&error);
        }
        /* Huge pages over the largest buffer: refused before any is reserved. */
        r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd", &error,
                               &reply, "sta{sv}", "x", UINT64_MAX - 1, 1, BB_OPT_HUGETLB, "b", true);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, NULL, "2^64-2 bytes of huge pages");
        sd_bus_error_free(&error);
        /* false is as not given. */
        {
                const char *path;
                uint64_t size;
                int fd;

                r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                                       &error, &reply, "sta{sv}", "x", UINT64_C(1), 2, BB_OPT_HUGETLB, "b", false,
                                       BB_OPT_PREFAULT, "b", false);
                ck_assert_msg(r >= 0, "false options: %s", error.message);
                ck_assert_int_ge(sd_bus_message_read(reply, "oht", &path, &fd, &size), 0);
                ck_assert_uint_eq(size, (uint64_t) sysconf(_SC_PAGESIZE));
                ck_assert_uint_eq(property_t(path, BB_PROP_PAGE_SIZE), size);
                ck_assert_int_ge(call_release(NULL, path, &error), 0);
                reply = sd_bus_message_unref(reply);
        }
        assert_back_to(&base, "hostile options");
}
END_TEST

/* Prefault on shmem: every page is there before anyone maps it. */
START_TEST(test_prefault_memfd) {
        _cleanup_created_ Created plain = { .fd = -1 };
        Created c;
        Snapshot base;

        baseline_after_warmup(&base);
        released_watch();
        c = create_ok(false, true, M + 1);
        ck_assert_uint_eq(c.size, M + (uint64_t) sysconf(_SC_PAGESIZE));
        ck_assert_uint_ge(allocated(c.fd), c.size);
        ck_assert(property_b(c.path, BB_PROP_PREFAULTED));
        ck_assert_uint_eq(property_t(c.path, BB_PROP_PAGE_SIZE), (uint64_t) sysconf(_SC_PAGESIZE));
        plain = create_ok(false, false, M);
        ck_assert_uint_eq(allocated(plain.fd), 0);
        ck_assert(!property_b(plain.path, BB_PROP_PREFAULTED));
        release_and_wait(&c);
        release_and_wait(&plain);
        assert_back_to(&base, "prefaulted memfd released");
}
END_TEST

/* Prefault on huge pages: allocated, not only reserved; too many: NoSpace,
 * and the pages taken for the failed one are given back. */
START_TEST(test_prefault_hugetlb) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Created c, over = { .fd = -1 };
        Snapshot base;
        int r;

        huge_pages_set(2);
        baseline_after_warmup(&base);
        released_watch();
        c = create_ok(true, true, 1);
        ck_assert_int_eq(meminfo_value("HugePages_Free"), 1);
        ck_assert_uint_eq(allocated(c.fd), huge);
        ck_assert(property_b(c.path, BB_PROP_PREFAULTED));

        r = create_with(true, true, false, huge + 1, &over, &error);
        assert_bus_error(&error, r, BB_ERROR_NO_SPACE, "huge pages", "prefault over the pool");
        sd_bus_error_free(&error);
        ck_assert_int_eq(meminfo_value("HugePages_Free"), 1);
        release_and_wait(&c);
        assert_meminfo_becomes("HugePages_Free", 2);
        assert_back_to(&base, "prefaulted hugetlb released");
}
END_TEST

/* The fd is the lease on hugetlbfs too: the creator's connection gone, its
 * mapping keeps the buffer; unmapped, it goes. */
START_TEST(test_lease_on_huge_pages) {
        sd_bus *other = NULL;
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *path;
        uint64_t id, size;
        Snapshot base;
        int fd, r;
        void *p;

        huge_pages_set(1);
        baseline_after_warmup(&base);
        released_watch();
        ck_assert_int_ge(bus_connect(&other), 0);
        r = sd_bus_call_method(other, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd", &error,
                               &reply, "sta{sv}", "lease", UINT64_C(1), 1, BB_OPT_HUGETLB, "b", true);
        ck_assert_msg(r >= 0, "CreateMemfd: %s", error.message);
        ck_assert_int_ge(sd_bus_message_read(reply, "oht", &path, &fd, &size), 0);
        id = buffer_id_from_path(path);
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
        sd_bus_message_unref(reply);            /* closes the fd */
        sd_bus_flush_close_unref(other);        /* and the hold goes */
        msleep((unsigned) scaled_ms(300));
        ck_assert_msg(!released_seen(id), "released while mapped");
        ck_assert(list_has(NULL, id));
        ck_assert_int_eq(munmap(p, size), 0);
        ck_assert_msg(released_wait(id, scaled_ms(5000)), "not released once unmapped");
        assert_back_to(&base, "lease");
        assert_meminfo_becomes("HugePages_Rsvd", 0);
}
END_TEST

/* The CLI: --hugetlb --prefault, and info says so; not for --v4l2. */
START_TEST(test_cli) {
        _cleanup_run_result_ RunResult cr = {}, info = {}, rel = {}, v4l2 = {};
        char want[64];
        Snapshot base;

        huge_pages_set(1);
        baseline_after_warmup(&base);
        ctl(&cr, AS_ROOT, NULL, "--address", H->address, "create", "--size", "1", "--hugetlb", "--prefault",
            "--persistent");
        ck_assert_run_status(&cr, 0);
        cr.out[strcspn(cr.out, "\n")] = 0;
        ck_assert_int_eq(meminfo_value("HugePages_Free"), 0);
        ctl(&info, AS_ROOT, NULL, "--address", H->address, "info", cr.out);
        ck_assert_run_status(&info, 0);
        snprintf(want, sizeof(want), "PageSize:   %" PRIu64 "\n", huge);
        ck_assert_msg(strstr(info.out, want), "info: %s", info.out);
        ck_assert_msg(strstr(info.out, "Prefaulted: yes\n"), "info: %s", info.out);
        ctl(&rel, AS_ROOT, NULL, "--address", H->address, "release", cr.out);
        ck_assert_run_status(&rel, 0);
        ctl(&v4l2, AS_ROOT, NULL, "--address", H->address, "create", "--v4l2", "/dev/video0", "--count", "1",
            "--hugetlb");
        ck_assert_run_status(&v4l2, 2);
        ck_assert_msg(strstr(v4l2.err, "--hugetlb"), "stderr: %s", v4l2.err);
        assert_back_to(&base, "cli");
}
END_TEST

/* An unprivileged caller through the library: create, map, write, release. */
static int nobody_creates(void *userdata) {
        bb_client *c = NULL;
        bb_buffer *buf = NULL;
        size_t size = 0;
        void *p = NULL;
        int r;

        r = bb_client_new_address(&c, H->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        r = bb_buffer_create(c, "nobody", 1, BB_CREATE_HUGETLB | BB_CREATE_PREFAULT, 0, &buf);
        child_check(r == 0, "create: %s (%s)", strerror(-r), bb_client_error_message(c) ?: "");
        child_check(bb_buffer_size(buf) == huge, "size %" PRIu64, bb_buffer_size(buf));
        child_check(bb_buffer_page_size(buf) == huge, "page size %" PRIu64, bb_buffer_page_size(buf));
        child_check(bb_buffer_is_prefaulted(buf) == 1, "not prefaulted");
        r = bb_buffer_map(buf, &p, &size);
        child_check(r == 0 && size == huge, "map: %s", strerror(-r));
        memset(p, 0xa5, size);
        r = bb_buffer_release(buf);
        child_check(r == 0, "release: %s", strerror(-r));
        bb_buffer_unref(buf);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_unprivileged_caller) {
        Snapshot base;

        huge_pages_set(1);
        baseline_after_warmup(&base);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_creates, NULL, scaled_ms(10000)), 0);
        assert_back_to(&base, "nobody's buffer released");
        assert_meminfo_becomes("HugePages_Free", 1);
        assert_meminfo_becomes("HugePages_Rsvd", 0);
}
END_TEST

/* As under systemd: the daemon as an unprivileged user. */
static void setup_daemon(void) {
        harness_daemon_user = "daemon";
        harness_start(BUS_DBUS_DAEMON, true, daemon_args);
}
static void setup_broker(void) {
        harness_daemon_user = "daemon";
        harness_start(BUS_DBUS_BROKER, true, daemon_args);
}

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_create_share_open_release);
        tcase_add_test(tc, test_size_rounding);
        tcase_add_test(tc, test_no_free_huge_pages);
        tcase_add_test(tc, test_quota_counts_huge_pages);
        tcase_add_test(tc, test_hostile_options);
        tcase_add_test(tc, test_prefault_memfd);
        tcase_add_test(tc, test_prefault_hugetlb);
        tcase_add_test(tc, test_lease_on_huge_pages);
        tcase_add_test(tc, test_cli);
        tcase_add_test(tc, test_unprivileged_caller);
}

int main(void) {
        Suite *s = suite_create("hugetlb and prefault");
        int r;

        if (geteuid() == 0) {
                char reason[256];

                huge = huge_pages_prepare(reason, sizeof(reason));
                if (huge == 0) {
                        fprintf(stderr, "SKIP: %s; nothing was tested.\n", reason);
                        return 77;
                }
        }
        harness_add_tcase(s, "dbus-daemon", setup_daemon, add_tests);
        harness_add_tcase(s, "dbus-broker", setup_broker, add_tests);
        r = harness_main(s);
        huge_pages_restore();
        return r;
}
