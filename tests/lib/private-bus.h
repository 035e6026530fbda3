/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * private-bus: a private system-like bus for tests and benchmarks -- its
 * configuration, dbus-daemon (--print-address) or dbus-broker-launch (socket
 * activation, fake journal socket in a private mount namespace), and
 * bufbrokerd on it -- plus the process helpers they need.
 *
 * Shared by tests/integration/harness.c and tests/bench/bench-broker.c.
 * Nothing here uses check: functions return 0 (or a pid) on success and a
 * negative errno on failure, after printing a message to stderr.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

/* ---- processes ------------------------------------------------------------ */

/* A wait status as an exit code: 128+signal if killed, -1 otherwise. */
int pbus_status_of(int wstatus);
/* Wait for pid up to timeout_ms (<0: forever); returns its translated status,
 * or -1 on timeout (the child is then killed and reaped). */
int pbus_wait_child(pid_t pid, int timeout_ms);
/* In a forked child: die with parent (PR_SET_PDEATHSIG) and reset the
 * signals a parent may have caught (check's SIGTERM handler kills the whole
 * process group). */
void pbus_child_die_with_parent(pid_t parent);
/* Close every fd >= 3 except keep (may be -1). */
void pbus_close_fds_except(int keep);
/* Close every fd >= from. */
void pbus_close_fds_except_from(int from);
/* The first child of pid (dbus-broker-launch's dbus-broker), or -1. */
pid_t pbus_first_child_of(pid_t pid);
/* Remove dir and everything below it (best effort). */
void pbus_rm_rf_dir(const char *dir);
uint64_t pbus_now_usec(void);           /* CLOCK_MONOTONIC */
void pbus_msleep(unsigned ms);

/* ---- the bus -------------------------------------------------------------- */

/* Write a bus configuration to path: like Debian's system.conf (everyone may
 * connect, nobody may own names or call methods unless a policy file says
 * so, system-bus limits), listening on socket_path and <include>ing
 * policy_conf. default_extra (may be NULL): more rules at the end of the
 * default <policy>; extra (may be NULL): more <policy> elements after it. */
int pbus_write_config(const char *path, const char *socket_path, const char *policy_conf,
                      const char *default_extra, const char *extra);

/* dbus-daemon --config-file=config --nofork --print-address; returns once it
 * printed an address on socket_path (so it listens). */
int pbus_start_dbus_daemon(const char *config, const char *socket_path, pid_t *ret_pid);

/* Unshare the mount namespace of the calling process, make / a recursive
 * slave, mount a tmpfs on /run/systemd and bind a datagram socket at
 * /run/systemd/journal/socket that a child (*ret_pid) drains: dbus-broker-launch
 * exits at once without a journal. Needs root. */
int pbus_setup_journal_namespace(pid_t *ret_pid);

/* dbus-broker-launch --scope system --config-file=config, with a listening
 * socket on socket_path passed by socket activation (fd 3) and
 * DBUS_SYSTEM_BUS_ADDRESS=address (it connects back to the bus it serves).
 * Call pbus_setup_journal_namespace() first. */
int pbus_start_dbus_broker(const char *config, const char *socket_path, const char *address,
                           pid_t *ret_pid);

/* A new connection to address (bus client, fds negotiated). */
int pbus_connect(const char *address, sd_bus **ret);

/* Connect to address (retrying for up to 10 s: dbus-broker's socket accepts
 * before the broker serves it) and make a GetId round trip; fails at once if
 * bus_pid exits. what names the bus in messages. */
int pbus_wait_ready(const char *address, pid_t bus_pid, const char *what, sd_bus **ret);

/* ---- the daemon ----------------------------------------------------------- */

/* How to start the daemon (NULL: as the caller, nothing handed over). */
typedef struct PbusSpawn {
        uid_t uid;                      /* (uid_t) -1: the caller's */
        gid_t gid;
        const char *notify_socket;      /* $NOTIFY_SOCKET, or NULL */
        /* Handed over as systemd hands over its fd store: at 3, 4, ... with
         * $LISTEN_FDS, $LISTEN_PID and $LISTEN_FDNAMES ("a:b:c"). */
        const int *listen_fds;
        unsigned n_listen_fds;
        const char *listen_fdnames;
        /* $LD_PRELOAD: a fault-injection shim (and ASan told to accept it
         * ahead of its runtime), or NULL */
        const char *preload;
        /* Its stderr (the log) appended to this file, or NULL: ours. */
        const char *log_path;
} PbusSpawn;

/* Fork and exec argv (argv[0] searched in PATH) as a system-bus service on
 * address: stdin from /dev/null, own session, DBUS_SYSTEM_BUS_ADDRESS set,
 * NOTIFY_SOCKET and LISTEN_* unset unless opts sets them. Returns the pid. */
pid_t pbus_spawn_daemon(const char *address, const char *const *argv, const PbusSpawn *opts);
