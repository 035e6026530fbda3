/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's side of systemd's file descriptor store (daemon/fdstore.c),
 * outside the VM. systemd itself is tested in the VM (tests/vm/
 * guest-systemd.sh: restarts, the watchdog, a lost bus connection). Here the
 * test stands in for the service manager at its two interfaces, because only
 * so can it hand the daemon a state systemd would never produce, or a
 * notify socket that fails:
 *
 * - restore: fds passed at 3, 4, ... with $LISTEN_FDS, $LISTEN_PID and
 *   $LISTEN_FDNAMES, exactly as systemd passes its store to a new instance;
 * - store: $NOTIFY_SOCKET, where the daemon sends FDSTORE=1 messages.
 *
 * Cases: a saved state comes back (buffer, contents, token, a holder that
 * left is dropped, ids go on); a state in an unknown format is dropped
 * whole; a buffer that cannot be stored is refused; the daemon keeps no
 * more fds than --fdstore-max (FileDescriptorStoreMax=) allows; a state that
 * cannot be written leaks nothing; a daemon killed (SIGKILL) at any point
 * of a busy life, its journal full or not, comes back whole from what it
 * stored.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define CONTENT "restored across a restart"
#define TOKEN "0123456789abcdef0123456789abcdef"

static int memfd_with(const char *name, const char *text, size_t size, bool seal) {
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t) size), 0);
        ck_assert_int_eq(pwrite(fd, text, strlen(text), 0), (ssize_t) strlen(text));
        if (seal)
                ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
        return fd;
}

/* A saved state with buffer 5 (persistent, owner 65534, named "kept"), a
 * token for it, and a hold of a connection that is gone; the buffer's fd.
 * The state is stored as @fdname, after the header @header. */
static void start_with_state(const char *header, const char *fdname, int fds[2]) {
        char state[1024], names[64];

        snprintf(state, sizeof(state),
                 "%s\n"
                 "buffer 5 65534 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b657074\n"
                 "token 5 " TOKEN " 65534 4294967295 1 0 18446744073709551615\n"
                 "hold 5 65534 :1.999\n",
                 header);
        snprintf(names, sizeof(names), "%s:buf-5-0", fdname);
        fds[0] = memfd_with("bb-test-state", state, strlen(state), false);
        fds[1] = memfd_with("bb-test-kept", CONTENT, 4096, true);
        harness_daemon_spawn = (PbusSpawn) {
                .listen_fds = fds,
                .n_listen_fds = 2,
                .listen_fdnames = names,
        };
        harness_restart_daemon(NULL);
        close(fds[0]);
        close(fds[1]);
}

/* Does the daemon hold an fd of the memfd named @name? */
static bool daemon_has_memfd(const char *name) {
        char dir[64], link[128], target[256];
        bool found = false;

        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int) H->daemon_pid);
        for (int fd = 0; fd < 1024; fd++) {
                ssize_t n;

                snprintf(link, sizeof(link), "%s/%d", dir, fd);
                n = readlink(link, target, sizeof(target) - 1);
                if (n < 0)
                        continue;
                target[n] = 0;
                if (strstr(target, name))
                        found = true;
        }
        return found;
}

/* Both formats: a snapshot of version 2 stored as "state" (a daemon
 * upgraded across a restart), and the journal of version 3, as "state-b". */
static const struct {
        const char *header, *fdname;
} saved_states[] = {
        { "bufbroker-state 2 10", "state" },
        { "bufbroker-state 3 10 7", "state-b" },
};

START_TEST(test_restore_a_saved_state) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_created_ Created next = {};
        char *path = NULL, buf[sizeof(CONTENT)] = "";
        bool read_only = false;
        int fds[2], fd = -1;

        start_with_state(saved_states[_i].header, saved_states[_i].fdname, fds);
        ck_assert_msg(list_has(NULL, 5), "buffer 5 was not restored");
        ck_assert_msg(call_open(NULL, TOKEN, &path, &fd, &read_only, &error) >= 0, "the saved token: %s",
                      error.message);
        ck_assert_str_eq(path, BB_BUFFER_PATH_PREFIX "/5");
        ck_assert(read_only);
        ck_assert_int_eq(pread(fd, buf, strlen(CONTENT), 0), (ssize_t) strlen(CONTENT));
        ck_assert_str_eq(buf, CONTENT);
        /* The holder that left while the daemon was down has let go (the
         * buffer stays: it is persistent); ids go on from the saved next id. */
        ck_assert_uint_eq(stats_get(BB_STAT_CLIENTS), 1);       /* us, by Open */
        create_memfd(NULL, "next", 4096, false, 0, &next);
        ck_assert_uint_ge(next.id, 10);
        close(fd);
        free(path);
}
END_TEST

/* A state in a format this daemon does not know is dropped whole, never
 * guessed at: nothing restored, the store's fds closed. */
START_TEST(test_unknown_state_format_is_dropped) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_created_ Created next = {};
        int fds[2], r;

        start_with_state("bufbroker-state 99 10 1", "state-a", fds);
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), 0);
        ck_assert(!list_has(NULL, 5));
        r = call_open(NULL, TOKEN, NULL, NULL, NULL, &error);
        assert_bus_error(&error, r, BB_ERROR_NO_SUCH_TOKEN, NULL, "the token of a dropped state");
        sd_bus_error_free(&error);
        ck_assert_msg(!daemon_has_memfd("bb-test-"), "the daemon kept an fd of the dropped state");
        create_memfd(NULL, "next", 4096, false, 0, &next);
        ck_assert_uint_eq(next.id, 1);
}
END_TEST

/* A buffer whose fds cannot be stored would be lost at the next restart:
 * the create fails, and leaves nothing. */
START_TEST(test_store_failure_refuses_the_buffer) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        Snapshot base;
        int r;

        harness_daemon_spawn = (PbusSpawn) { .notify_socket = "/run/bb-test-no-such-dir/notify" };
        harness_restart_daemon(NULL);
        stats_read(&base);
        r = sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                               &error, &reply, "sta{sv}", "unstorable", (uint64_t) 4096, 1, BB_OPT_PERSISTENT, "b",
                               1);
        assert_bus_error(&error, r, SD_BUS_ERROR_FAILED, "file descriptor store", "create without a store");
        sd_bus_error_free(&error);
        assert_back_to(&base, "after the refused create");
}
END_TEST

/* --fdstore-max= (FileDescriptorStoreMax= of the unit): the daemon keeps no
 * more fds for buffers than the store takes, less two for the state (the
 * old one stays until the new one is stored), and a
 * full budget is QuotaExceeded, not a buffer the next restart would lose. */
START_TEST(test_fd_budget_fits_the_store) {
        static const char *const args[] = { "--fdstore-max=8", NULL };
        char notify[108];
        Created c[4] = {};
        uint64_t limit = 0;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        pid_t drainer;
        int fd, r;

        drainer = notify_drainer_start(notify, &fd);
        harness_daemon_spawn = (PbusSpawn) { .notify_socket = notify };
        harness_restart_daemon(args);

        ck_assert(sd_bus_get_property(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Limits",
                                      &error, &reply, "a{sv}") >= 0);
        ck_assert(sd_bus_message_enter_container(reply, 'a', "{sv}") > 0);
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;
                uint64_t v;

                ck_assert(sd_bus_message_read(reply, "s", &key) > 0);
                ck_assert(sd_bus_message_read(reply, "v", "t", &v) > 0);
                if (strcmp(key, BB_LIMIT_MAX_FDS) == 0)
                        limit = v;
                ck_assert(sd_bus_message_exit_container(reply) >= 0);
        }
        sd_bus_message_unref(reply);
        ck_assert_uint_eq(limit, 6);
        /* One uid alone gets half of it (the fair share). */
        for (unsigned i = 0; i < 3; i++)
                create_memfd(NULL, "stored", 4096, false, 0, &c[i]);
        r = sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                               &error, NULL, "sta{sv}", "one-too-many", (uint64_t) 4096, 0);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, "file descriptors", "create over the fd budget");
        sd_bus_error_free(&error);
        for (unsigned i = 0; i < 3; i++)
                created_done(&c[i]);
        notify_drainer_stop(drainer, fd);
}
END_TEST

/* A state that cannot be written leaves no fd behind. Here fdopen() fails
 * through an LD_PRELOAD shim (fault-fdopen.c): glibc's fails only when
 * malloc does, which nothing else can bring about inside the daemon. */
START_TEST(test_unwritable_state_leaks_no_fd) {
        char notify[108];
        Created c = {};
        Snapshot base;
        int fd;
        pid_t drainer;

        drainer = notify_drainer_start(notify, &fd);
        harness_daemon_spawn = (PbusSpawn) { .notify_socket = notify, .preload = harness_env("FAULT_FDOPEN_SO") };
        harness_restart_daemon(NULL);
        baseline_after_warmup(&base);
        /* No state can be written at all, so every round tries again: 20
         * saves fail. The fds come back to the baseline (without the fix:
         * 20 more). */
        for (unsigned i = 0; i < 10; i++) {
                create_memfd(NULL, "unsaved", 4096, false, 0, &c);
                ck_assert_int_ge(call_release(test_bus(), c.path, NULL), 0);
                created_done(&c);
        }
        assert_back_to(&base, "after 20 failed saves");
        notify_drainer_stop(drainer, fd);
}
END_TEST

/* ------------------------------------------------ a store that keeps --- */

typedef struct Kept {
        uint64_t id;
        char *token;
        char content[32];
        bool gone;
} Kept;

#define KILL_ROUNDS 3
#define KEPT_PER_ROUND 4                /* and one released: 12 fds, and the state's */
#define CHURN 700

/* Stop the daemon with @sig (SIGKILL: as it is), and start a new one with
 * what the store kept, as systemd does (the store keeps them, and goes on
 * keeping). */
static void kill_and_restart(FdStore *store, int sig) {
        fd_store_stop_daemon(store, sig);
        ck_assert_msg(fd_store_count(store, "state-") >= 1, "no state stored");
        fd_store_restart_daemon(store, NULL);
}

/* A busy life, SIGKILLed: buffers made persistent and shared (their
 * tokens), released again, frozen, single-use tokens used up, and many
 * created and released (the journal fills and is replaced by snapshots).
 * Every persistent buffer and token comes back, with its contents; the
 * ones released do not; ids go on. Three times: a restored daemon's
 * journal is restored too, and (the last time) that of a daemon that
 * exited on SIGTERM. */
START_TEST(test_killed_daemon_comes_back) {
        Kept kept[KILL_ROUNDS * (KEPT_PER_ROUND + 1)] = {};
        unsigned n_kept = 0;
        uint64_t max_id = 0;
        FdStore store;

        fd_store_start(&store);
        fd_store_restart_daemon(&store, NULL);

        for (unsigned round = 0; round < KILL_ROUNDS; round++) {
                for (unsigned i = 0; i < KEPT_PER_ROUND + 1; i++) {
                        _cleanup_created_ Created c = {};
                        Kept *kp = &kept[n_kept++];

                        create_memfd(NULL, "kept", 4096, true, 0, &c);
                        kp->id = c.id;
                        max_id = c.id;
                        snprintf(kp->content, sizeof(kp->content), "contents of %" PRIu64, c.id);
                        ck_assert_int_eq(pwrite(c.fd, kp->content, strlen(kp->content), 0),
                                         (ssize_t) strlen(kp->content));
                        ck_assert_int_ge(call_share(NULL, c.path, i % 2, (uid_t) -1, false, 0, &kp->token, NULL), 0);
                        if (i == 1)
                                ck_assert_int_ge(call_freeze(NULL, c.path, NULL), 0);
                        if (i == 2) {
                                char *once = NULL;

                                ck_assert_int_ge(call_share(NULL, c.path, false, (uid_t) -1, true, 0, &once, NULL), 0);
                                ck_assert_int_ge(call_open(NULL, once, NULL, NULL, NULL, NULL), 0);
                                free(once);
                        }
                        /* The last one of each round goes again. */
                        if (i == KEPT_PER_ROUND) {
                                ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
                                kp->gone = true;
                        }
                }
                for (unsigned i = 0; i < CHURN; i++) {
                        _cleanup_created_ Created c = {};

                        create_memfd(NULL, "churn", 4096, i % 2, 0, &c);
                        max_id = c.id;
                        if (i % 3 == 0)
                                ck_assert_int_ge(call_share(NULL, c.path, true, (uid_t) -1, false, 0, NULL, NULL), 0);
                        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
                }

                /* The last time it is stopped as systemctl restart does:
                 * exiting, it keeps the state as it is. */
                kill_and_restart(&store, round + 1 < KILL_ROUNDS ? SIGKILL : SIGTERM);

                for (unsigned i = 0; i < n_kept; i++) {
                        sd_bus_error error = SD_BUS_ERROR_NULL;
                        char got[32] = "", *p = NULL;
                        int fd = -1, r;

                        if (kept[i].gone) {
                                ck_assert_msg(!list_has(NULL, kept[i].id), "buffer %" PRIu64 " came back", kept[i].id);
                                continue;
                        }
                        ck_assert_msg(list_has(NULL, kept[i].id), "round %u: buffer %" PRIu64 " is lost", round,
                                      kept[i].id);
                        r = call_open(NULL, kept[i].token, &p, &fd, NULL, &error);
                        ck_assert_msg(r >= 0, "round %u: the token of buffer %" PRIu64 ": %s", round, kept[i].id,
                                      error.message);
                        ck_assert_uint_eq(buffer_id_from_path(p), kept[i].id);
                        ck_assert_int_eq(pread(fd, got, strlen(kept[i].content), 0), (ssize_t) strlen(kept[i].content));
                        ck_assert_str_eq(got, kept[i].content);
                        close(fd);
                        free(p);
                }
                ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), (round + 1) * KEPT_PER_ROUND);
                ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), (round + 1) * KEPT_PER_ROUND);
                {
                        _cleanup_created_ Created next = {};

                        create_memfd(NULL, "next", 4096, false, 0, &next);
                        ck_assert_uint_gt(next.id, max_id);
                        max_id = next.id;
                        ck_assert_int_ge(call_release(NULL, next.path, NULL), 0);
                }
        }
        for (unsigned i = 0; i < n_kept; i++)
                free(kept[i].token);
        /* The daemon is stopped by the fixture; its store goes with us. */
        fd_store_pause(&store);
        ck_assert_uint_eq(fd_store_count(&store, "state-"), 1);
        fd_store_done(&store);
}
END_TEST

static int call_revoke_token(const char *path, const char *token, sd_bus_error *error) {
        return sd_bus_call_method(test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "RevokeToken", error, NULL, "s",
                                  token);
}

/* Revoked tokens stay revoked across a SIGKILL and a restart from the
 * store; the others come back; an fd opened before the revocation stays. */
START_TEST(test_revocation_survives_restart) {
        _cleanup_created_ Created x = {}, y = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *t[4] = {}, got[8] = "";
        uint32_t count = 0;
        int fd = -1;
        FdStore store;

        fd_store_start(&store);
        fd_store_restart_daemon(&store, NULL);

        create_memfd(NULL, "revoked", 4096, true, 0, &x);
        create_memfd(NULL, "all-revoked", 4096, true, 0, &y);
        ck_assert_int_eq(pwrite(x.fd, "kept", 4, 0), 4);
        for (unsigned i = 0; i < 3; i++)
                ck_assert_int_ge(call_share(NULL, x.path, false, (uid_t) -1, false, 0, &t[i], NULL), 0);
        ck_assert_int_ge(call_share(NULL, y.path, false, (uid_t) -1, false, 0, &t[3], NULL), 0);
        ck_assert_int_ge(call_open(NULL, t[0], NULL, &fd, NULL, NULL), 0);
        ck_assert_int_ge(call_revoke_token(x.path, t[0], &error), 0);
        ck_assert_int_ge(call_revoke_token(x.path, t[1], &error), 0);
        ck_assert_int_ge(sd_bus_call_method(test_bus(), BB_BUS_NAME, y.path, BB_BUFFER_INTERFACE, "RevokeTokens",
                                            &error, &reply, ""), 0);
        ck_assert_int_ge(sd_bus_message_read(reply, "u", &count), 0);
        ck_assert_uint_eq(count, 1);
        reply = sd_bus_message_unref(reply);

        kill_and_restart(&store, SIGKILL);

        for (unsigned i = 0; i < 4; i++) {
                int r = call_open(NULL, t[i], NULL, NULL, NULL, &error);

                if (i == 2)
                        ck_assert_msg(r >= 0, "the token not revoked: %s", error.message);
                else
                        assert_bus_error(&error, r, BB_ERROR_NO_SUCH_TOKEN, NULL, "a revoked token after a restart");
                sd_bus_error_free(&error);
        }
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), 1);
        /* Opened before the revocation: an fd cannot be taken back. */
        ck_assert_int_eq(pread(fd, got, 4, 0), 4);
        ck_assert_str_eq(got, "kept");
        close(fd);
        for (unsigned i = 0; i < 4; i++)
                free(t[i]);
        fd_store_done(&store);
}
END_TEST

static uint64_t huge;                   /* 0: no huge pages here */

/* A persistent, prefaulted buffer (of huge pages with @hugetlb). */
static char *create_kind(bool hugetlb) {
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *path;
        uint64_t size;
        char *ret;
        int fd, r;

        r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd", &error,
                               &reply, "sta{sv}", "kind", UINT64_C(1), 3, BB_OPT_PERSISTENT, "b", true,
                               BB_OPT_PREFAULT, "b", true, BB_OPT_HUGETLB, "b", hugetlb);
        ck_assert_msg(r >= 0, "CreateMemfd: %s", error.message);
        ck_assert_int_ge(sd_bus_message_read(reply, "oht", &path, &fd, &size), 0);
        ret = strdup(path);
        sd_bus_message_unref(reply);
        return ret;
}

static void assert_kind(const char *path, uint64_t page_size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t got_page_size = 0;
        int prefaulted = 0;

        ck_assert_int_ge(sd_bus_get_property_trivial(H->bus, BB_BUS_NAME, path, BB_BUFFER_INTERFACE,
                                                     BB_PROP_PAGE_SIZE, &error, 't', &got_page_size), 0);
        ck_assert_int_ge(sd_bus_get_property_trivial(H->bus, BB_BUS_NAME, path, BB_BUFFER_INTERFACE,
                                                     BB_PROP_PREFAULTED, &error, 'b', &prefaulted), 0);
        ck_assert_uint_eq(got_page_size, page_size);
        ck_assert(prefaulted);
}

/* A restarted daemon shows a huge-page buffer's page size (its file's) and
 * that it was prefaulted (the state keeps it), and the huge page it has is
 * the one it had: none freed, none taken. */
START_TEST(test_huge_pages_and_prefault_come_back) {
        char *shm, *hp = NULL;
        FdStore store;

        fd_store_start(&store);
        fd_store_restart_daemon(&store, NULL);

        shm = create_kind(false);
        if (huge > 0) {
                huge_pages_set(1);
                hp = create_kind(true);
                ck_assert_int_eq(meminfo_value("HugePages_Free"), 0);
        } else
                fprintf(stderr, "note: no huge pages here, only prefault on shmem is tested\n");

        kill_and_restart(&store, SIGKILL);

        assert_kind(shm, (uint64_t) sysconf(_SC_PAGESIZE));
        ck_assert_int_ge(call_release(NULL, shm, NULL), 0);
        if (hp) {
                assert_kind(hp, huge);
                ck_assert_int_eq(meminfo_value("HugePages_Free"), 0);
                ck_assert_int_ge(call_release(NULL, hp, NULL), 0);
                assert_meminfo_becomes("HugePages_Free", 1);
        }
        free(shm);
        free(hp);
        fd_store_done(&store);
}
END_TEST

#define STATUS_CHURN 30
#define STATUS_INTERVAL_MS 100          /* daemon/main.c */

/* systemctl status shows the STATUS= line: it is told at most every
 * 100 ms however fast buffers come and go (not a datagram to the service
 * manager per change), and the last one is the state as it is. */
START_TEST(test_status_line_is_paced_and_ends_current) {
        Created c[STATUS_CHURN] = {};
        uint64_t t0, elapsed_ms;
        char want[64];
        FdStore store;

        fd_store_start(&store);
        fd_store_restart_daemon(&store, NULL);

        t0 = now_usec();
        for (unsigned i = 0; i < STATUS_CHURN; i++)
                create_memfd(NULL, "status", 4096, false, 0, &c[i]);
        for (unsigned i = 3; i < STATUS_CHURN; i++) {
                ck_assert_int_ge(call_release(NULL, c[i].path, NULL), 0);
                created_done(&c[i]);    /* its fd is a lease too */
        }
        elapsed_ms = (now_usec() - t0) / 1000;

        /* The last state comes by the timer, an interval later at most
         * (waited for longer: the machine may be busy). */
        snprintf(want, sizeof(want), "3 buffers (%u bytes), ", 3 * 4096);
        for (unsigned tries = 0;; tries++) {
                fd_store_pause(&store);
                if (strncmp(store.status, want, strlen(want)) == 0)
                        break;
                ck_assert_msg(tries < 250, "the last STATUS= is \"%s\", not \"%s…\"", store.status, want);
                fd_store_resume(&store);
                msleep(20);
        }
        /* 57 changes: "Serving" at start, then one line at once, at most
         * one per interval, and the last one after the changes stopped. */
        ck_assert_msg(store.n_status <= 3 + elapsed_ms / STATUS_INTERVAL_MS,
                      "%u STATUS= lines for %d changes in %" PRIu64 " ms", store.n_status,
                      2 * STATUS_CHURN - 3, elapsed_ms);
        for (unsigned i = 0; i < STATUS_CHURN; i++)
                created_done(&c[i]);
        /* The daemon is stopped by the fixture; its store goes with us. */
        fd_store_done(&store);
}
END_TEST

static void setup_bus_only(BusKind kind) {
        harness_daemon_spawn = (PbusSpawn) {};
        harness_start(kind, false, NULL);
}

static void setup_dbus_daemon_only(void) {
        setup_bus_only(BUS_DBUS_DAEMON);
}

static void setup_dbus_broker_only(void) {
        setup_bus_only(BUS_DBUS_BROKER);
}

static void add_tests(TCase *tc) {
        tcase_add_loop_test(tc, test_restore_a_saved_state, 0, ELEMENTSOF(saved_states));
        tcase_add_test(tc, test_unknown_state_format_is_dropped);
        tcase_add_test(tc, test_store_failure_refuses_the_buffer);
        tcase_add_test(tc, test_fd_budget_fits_the_store);
        tcase_add_test(tc, test_unwritable_state_leaks_no_fd);
        tcase_add_test(tc, test_killed_daemon_comes_back);
        tcase_add_test(tc, test_revocation_survives_restart);
        tcase_add_test(tc, test_huge_pages_and_prefault_come_back);
        tcase_add_test(tc, test_status_line_is_paced_and_ends_current);
}

int main(void) {
        Suite *s = suite_create("fdstore");
        char reason[256];
        int r;

        huge = huge_pages_prepare(reason, sizeof(reason));

        harness_add_tcase(s, "fd store: dbus-daemon", setup_dbus_daemon_only, add_tests);
        harness_add_tcase(s, "fd store: dbus-broker", setup_dbus_broker_only, add_tests);
        r = harness_main(s);
        huge_pages_restore();
        return r;
}
