/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's state as tests compare it (see daemon-state.h). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bufbroker-protocol.h"
#include "daemon-state.h"
#include "private-bus.h"

int proc_fd_count(pid_t pid) {
        char path[64];
        struct dirent *de;
        int n = 0;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return pid == getpid() ? n - 1 : n;    /* our own count includes the DIR's fd */
}

static int stats_parse(sd_bus_message *m, Snapshot *s, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r == 0)
                r = -EBADMSG;
        while (r >= 0) {
                const char *key;
                uint64_t v;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        break;
                r = sd_bus_message_read(m, "v", "t", &v);
                if (r < 0)
                        return sd_bus_error_set_errnof(error, r, "Stats[%s] is not a t", key);
                if (strcmp(key, BB_STAT_BUFFERS) == 0)
                        s->buffers = v;
                else if (strcmp(key, BB_STAT_BYTES) == 0)
                        s->bytes = v;
                else if (strcmp(key, BB_STAT_CLIENTS) == 0)
                        s->clients = v;
                else if (strcmp(key, BB_STAT_TOKENS) == 0)
                        s->tokens = v;
                r = sd_bus_message_exit_container(m);
        }
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Stats is not an a{sv}: %s", strerror(-r));
        return 0;
}

int snapshot_read(sd_bus *bus, pid_t daemon_pid, Snapshot *ret, sd_bus_error *error) {
        sd_bus_message *m = NULL;
        int r;

        *ret = (Snapshot) { 0 };
        r = sd_bus_get_property(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Stats",
                                error, &m, "a{sv}");
        if (r >= 0)
                r = stats_parse(m, ret, error);
        sd_bus_message_unref(m);
        if (r < 0)
                return r;
        ret->fds = proc_fd_count(daemon_pid);
        if (ret->fds < 0)
                return sd_bus_error_set_errnof(error, ret->fds, "counting the fds of pid %d: %s",
                                               (int) daemon_pid, strerror(-ret->fds));
        return 0;
}

bool snapshot_eq(const Snapshot *a, const Snapshot *b) {
        return a->buffers == b->buffers && a->bytes == b->bytes && a->clients == b->clients &&
               a->tokens == b->tokens && a->fds == b->fds;
}

void snapshot_format(const Snapshot *s, char *buf, size_t size) {
        snprintf(buf, size,
                 "buffers %" PRIu64 " bytes %" PRIu64 " clients %" PRIu64 " tokens %" PRIu64
                 " fds %d",
                 s->buffers, s->bytes, s->clients, s->tokens, s->fds);
}

int snapshot_wait(sd_bus *bus, pid_t daemon_pid, const Snapshot *base, int timeout_ms,
                  unsigned poll_ms, bool (*alive)(void *userdata), void *userdata,
                  Snapshot *ret_last, sd_bus_error *error) {
        uint64_t deadline = pbus_now_usec() + (uint64_t) timeout_ms * 1000u;
        Snapshot s = { 0 };
        int r;

        for (;;) {
                if (alive && !alive(userdata)) {
                        r = -ESRCH;
                        break;
                }
                r = snapshot_read(bus, daemon_pid, &s, error);
                if (r < 0)
                        break;
                if (snapshot_eq(&s, base)) {
                        r = 1;
                        break;
                }
                if (pbus_now_usec() >= deadline) {
                        r = 0;
                        break;
                }
                pbus_msleep(poll_ms);
        }
        if (ret_last)
                *ret_last = s;
        return r;
}
