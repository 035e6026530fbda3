/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration-test harness, the daemon's state (harness-state.c): snapshots
 * of its Stats and fd count, and the baseline the tests come back to.
 * Include harness.h.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon-state.h"               /* Snapshot, shared with tests/vm */

/* Count /proc/PID/fd of the daemon. */
int daemon_fd_count(void);
/* Does the daemon we started (by pid) own BB_BUS_NAME? */
bool daemon_owns_name(void);
void stats_read(Snapshot *ret);         /* Stats property + fd count; asserts */
uint64_t stats_get(const char *key);
/* Poll (up to 3 s) until Stats and the fd count equal base; assert the daemon
 * is alive and still owns the name. */
void assert_back_to(const Snapshot *base, const char *context);
/* Warm the daemon up (create, share, open, release, with a ttl) so lazily
 * opened fds are open, then take the baseline. */
void baseline_after_warmup(Snapshot *ret);
