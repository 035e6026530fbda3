/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The integration-test harness's view of the daemon's state (see
 * harness-state.h): Stats and fd-count snapshots, the warmed-up baseline.
 */
#include <fcntl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>


#include "harness.h"

int daemon_fd_count(void) {
        int n;

        ck_assert(H && H->daemon_pid > 0);
        n = proc_fd_count(H->daemon_pid);
        ck_assert_msg(n >= 0, "counting the fds of bufbrokerd (pid %d): %s", (int) H->daemon_pid,
                      strerror(-n));
        return n;
}

void stats_read(Snapshot *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        ck_assert(H && H->daemon_pid > 0);
        r = snapshot_read(test_bus(), H->daemon_pid, ret, &error);
        ck_assert_msg(r >= 0, "reading Stats: %s: %s", error.name ? error.name : "",
                      error.message ? error.message : strerror(-r));
        sd_bus_error_free(&error);
}

uint64_t stats_get(const char *key) {
        Snapshot s;

        stats_read(&s);
        if (strcmp(key, BB_STAT_BUFFERS) == 0)
                return s.buffers;
        if (strcmp(key, BB_STAT_BYTES) == 0)
                return s.bytes;
        if (strcmp(key, BB_STAT_CLIENTS) == 0)
                return s.clients;
        if (strcmp(key, BB_STAT_TOKENS) == 0)
                return s.tokens;
        ck_abort_msg("unknown stat %s", key);
        return 0;
}

static bool alive(void *userdata) {
        return daemon_alive();
}

void assert_back_to(const Snapshot *base, const char *context) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Snapshot now;
        int r;

        r = snapshot_wait(test_bus(), H->daemon_pid, base, scaled_ms(3000), 10, alive, NULL, &now,
                          &error);
        ck_assert_msg(r != -ESRCH, "%s: bufbrokerd died", context);
        ck_assert_msg(r >= 0, "%s: reading Stats: %s: %s", context, error.name ? error.name : "",
                      error.message ? error.message : strerror(-r));
        if (r == 0)
                ck_abort_msg("%s: daemon not back at baseline: buffers %" PRIu64
                             " (want %" PRIu64 "), bytes %" PRIu64 " (%" PRIu64
                             "), clients %" PRIu64 " (%" PRIu64 "), tokens %" PRIu64
                             " (%" PRIu64 "), fds %d (%d)",
                             context, now.buffers, base->buffers, now.bytes, base->bytes,
                             now.clients, base->clients, now.tokens, base->tokens, now.fds,
                             base->fds);
        sd_bus_error_free(&error);
        ck_assert_msg(daemon_owns_name(), "%s: bufbrokerd no longer owns %s", context, BB_BUS_NAME);
}

bool daemon_owns_name(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint32_t pid = 0;
        int r;

        /* By pid, not unique name: the daemon moves to a fresh connection
         * when the bus stops reading the old one. */
        r = sd_bus_call_method(test_bus(), "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetConnectionUnixProcessID", &error, &reply,
                               "s", BB_BUS_NAME);
        if (r >= 0)
                r = sd_bus_message_read(reply, "u", &pid);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return r >= 0 && (pid_t) pid == H->daemon_pid;
}

void baseline_after_warmup(Snapshot *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL, *reply2 = NULL;
        const char *path, *token;
        char *p;
        int fd, kept;
        uint64_t size;

        /* create with a ttl, share with a ttl, open, release: every kind of
         * timer and tracking object the daemon may open lazily */
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH,
                                         BB_MANAGER_INTERFACE, "CreateMemfd", &error, &reply,
                                         "sta{sv}", "warmup", (uint64_t) 4096, 1, BB_OPT_TTL_USEC,
                                         "t", (uint64_t) 60000000) >= 0,
                      "warm-up CreateMemfd: %s", error.message);
        ck_assert(sd_bus_message_read(reply, "oht", &path, &fd, &size) >= 0);
        /* The fd is the lease: keep ours until after Release, or the
         * buffer goes as soon as the reply (with its fd) is freed. */
        kept = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        ck_assert_int_ge(kept, 0);
        p = strdup(path);
        sd_bus_message_unref(reply);
        reply = NULL;
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, p, BB_BUFFER_INTERFACE, "Share",
                                         &error, &reply, "a{sv}", 1, BB_OPT_TTL_USEC, "t",
                                         (uint64_t) 60000000) >= 0,
                      "warm-up Share: %s", error.message);
        ck_assert(sd_bus_message_read(reply, "s", &token) >= 0);
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH,
                                         BB_MANAGER_INTERFACE, "Open", &error, &reply2, "sa{sv}",
                                         token, 0) >= 0,
                      "warm-up Open: %s", error.message);
        sd_bus_message_unref(reply2);
        sd_bus_message_unref(reply);
        /* Release drops our single hold (created and opened by one connection) */
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, p, BB_BUFFER_INTERFACE,
                                         "Release", &error, NULL, "") >= 0,
                      "warm-up Release: %s", error.message);
        sd_bus_error_free(&error);
        free(p);
        close(kept);

        /* Wait for the buffer (and its token) to be gone, then take the state. */
        {
                uint64_t deadline = now_usec() + (uint64_t) scaled_ms(3000) * 1000u;

                for (;;) {
                        stats_read(ret);
                        if (ret->buffers == 0 && ret->tokens == 0)
                                break;
                        ck_assert_msg(now_usec() < deadline,
                                      "warm-up buffer not released: buffers %" PRIu64
                                      ", tokens %" PRIu64,
                                      ret->buffers, ret->tokens);
                        msleep(10);
                }
        }
}
