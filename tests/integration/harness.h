/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration-test harness: a private bus (dbus-daemon or dbus-broker) with a
 * system-like configuration that <include>s the project's real policy file,
 * the real bufbrokerd on it, and helpers to drive clients as root or as
 * nobody (65534): commands (bufbrokerctl, busctl) and C functions in forked
 * children (for libbufbroker).
 *
 * Every test file builds one Suite with harness_add_tcases(): the same test
 * functions run once against each bus. Fixtures are checked (they run in the
 * forked test process); every process the harness starts dies with it
 * (PR_SET_PDEATHSIG) so a failed assertion leaves nothing behind.
 *
 * One include for test files; the parts live in
 *   harness.c        the fixture: the buses, bufbrokerd, suites (this header)
 *   harness-proc.c   processes: commands and C functions as another uid
 *   harness-state.c  the daemon's state: Stats and fd-count snapshots
 *   harness-calls.c  calls on the test's connection, BufferReleased
 *   harness-hugepages.c  the huge page pool, put back as it was
 *   harness-fdstore.c    a stand-in for systemd's fd store, across restarts
 *
 * Environment: BUFBROKERD, BUFBROKERCTL (paths, set by meson), DBUS_POLICY_CONF
 * (the policy file to include), PROTOCOL_XML; BUFBROKER_TEST_DAEMON_WRAPPER
 * (e.g. "valgrind --leak-check=full --error-exitcode=99") prefixes the daemon.
 */
#pragma once

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "bufbroker-protocol.h"
#include "macro.h"

#define NOBODY_UID ((uid_t) 65534)
#define NOBODY_GID ((gid_t) 65534)
#define AS_ROOT ((uid_t) 0)

typedef enum BusKind {
        BUS_DBUS_DAEMON,
        BUS_DBUS_BROKER,
} BusKind;

typedef struct Harness {
        BusKind kind;
        char dir[64];                   /* fresh 0755 temp dir */
        char socket_path[108];          /* fits sockaddr_un */
        char address[128];              /* unix:path=... */
        pid_t bus_pid;                  /* dbus-daemon or dbus-broker-launch */
        pid_t journal_pid;              /* drains our fake journal socket */
        pid_t daemon_pid;               /* bufbrokerd (or its wrapper) */
        int daemon_status;              /* its exit status once reaped, else -1 */
        char daemon_unique_name[64];
        bool wrapped;                   /* BUFBROKER_TEST_DAEMON_WRAPPER set */
        sd_bus *bus;                    /* the test's own connection, as root */
} Harness;

/* The fixture of the running test; NULL outside one. */
extern Harness *H;

/* Extra daemon arguments for the default fixtures (NULL-terminated); a test
 * file sets it before srunner_run_all(). */
extern const char *const *harness_daemon_args;
/* When false the default fixtures start only the bus, not bufbrokerd. */
extern bool harness_with_daemon;
/* The user bufbrokerd runs as (NULL: root, as usual); that user may own the
 * name on the private bus. Set before harness_start(). */
extern const char *harness_daemon_user;
/* More of how the daemon starts (its notify socket, fds handed over as
 * systemd's fd store would); uid and gid are the harness's. */
#include "private-bus.h"
extern PbusSpawn harness_daemon_spawn;

/* Start/stop by hand (fixtures call these). */
void harness_start(BusKind kind, bool with_daemon, const char *const *daemon_args);
void harness_stop(void);
/* Start bufbrokerd again on the fixture's bus, after it exited. */
void harness_restart_daemon(const char *const *daemon_args);
/* Wait until the fixture's daemon has exited (it was told to); its exit
 * status (the fixture will not stop it again), -1 if it still runs after
 * @timeout_ms. */
int wait_daemon_exit(int timeout_ms);

/* Suite plumbing: two TCases, "dbus-daemon" and "dbus-broker", each with the
 * checked fixture for its bus and the tests that add_tests() adds. */
void harness_add_tcases(Suite *s, const char *prefix, void (*add_tests)(TCase *tc));
/* One TCase with a custom checked fixture (setup calls harness_start()). */
void harness_add_tcase(Suite *s, const char *name, void (*setup)(void),
                       void (*add_tests)(TCase *tc));
/* Runs the suite (CK_NORMAL); refuses loudly (exit 77 = skip) when not root. */
int harness_main(Suite *s);

const char *harness_env(const char *name);     /* getenv or abort */
const char *bus_kind_name(BusKind kind);
uint64_t now_usec(void);
/* Sleep a little (for polling loops). */
void msleep(unsigned ms);
/* Extend timeouts when the daemon runs under a wrapper (valgrind). */
int scaled_ms(int ms);

/* ---- bus ---------------------------------------------------------------- */

/* A new connection to the fixture's bus as the current uid (fds negotiated). */
int bus_connect(sd_bus **ret);
sd_bus *test_bus(void);                 /* H->bus */

/* Poll until the daemon owns/no longer owns its name. */
bool wait_name_owner(sd_bus *bus, const char *name, int timeout_ms);

/* Is the daemon we started still running (reaps it, keeping its status)? */
bool daemon_alive(void);

#include "harness-proc.h"
#include "harness-state.h"
#include "harness-calls.h"
#include "harness-hugepages.h"
#include "harness-fdstore.h"
