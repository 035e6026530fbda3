/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon-state: what a test compares bufbrokerd's state by -- its Stats
 * property (buffers, bytes, clients, tokens) and its number of open fds --
 * read, compared, printed, and waited for to come back to a baseline.
 *
 * Shared by the integration harness (tests/integration/harness-state.c) and
 * the vm suite's guest-v4l2. Nothing here uses check: functions return 0 on
 * success and a negative errno on failure.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

typedef struct Snapshot {
        uint64_t buffers, bytes, clients, tokens;
        int fds;
} Snapshot;

/* The number of open fds of pid (/proc/PID/fd); for the caller itself, not
 * counting the one that reads the directory. -errno on failure. */
int proc_fd_count(pid_t pid);

/* Read the daemon's Stats on bus into ret and count daemon_pid's fds. A
 * reply that is not an a{sv} of t values fails with error set. */
int snapshot_read(sd_bus *bus, pid_t daemon_pid, Snapshot *ret, sd_bus_error *error);

bool snapshot_eq(const Snapshot *a, const Snapshot *b);
/* "buffers 1 bytes 4096 clients 1 tokens 0 fds 12" */
void snapshot_format(const Snapshot *s, char *buf, size_t size);

/* Poll every poll_ms, up to timeout_ms, until the daemon's snapshot equals
 * base. alive (may be NULL) is asked first each time; when it says no, stop.
 * Returns 1 once equal, 0 on timeout, -ESRCH when the daemon is gone, a
 * read's error at once (error set). *ret_last (may be NULL) gets the last
 * snapshot read. */
int snapshot_wait(sd_bus *bus, pid_t daemon_pid, const Snapshot *base, int timeout_ms,
                  unsigned poll_ms, bool (*alive)(void *userdata), void *userdata,
                  Snapshot *ret_last, sd_bus_error *error);
