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

/* ---- processes -------------------------------------------------------- */

typedef struct RunResult {
        int status;             /* exit code; 128+signal if killed; -1 timeout */
        char *out;              /* NUL-terminated captured stdout */
        size_t out_len;
        char *err;              /* captured stderr */
} RunResult;

void run_result_done(RunResult *r);
#define _cleanup_run_result_ _cleanup_(run_result_done)

/* Run argv (argv[0] searched in PATH) as uid (0 or 65534), feeding input (may
 * be NULL) on stdin, capturing stdout/stderr; 30 s timeout. Extra environment
 * entries "K=V" in env (NULL-terminated, may be NULL). Returns 0 or -errno for
 * a harness failure (the command's own failure is in res->status). */
int run_argv(RunResult *res, uid_t uid, const char *input, size_t input_len,
             const char *const *env, const char *const *argv);

/* bufbrokerctl --address=ADDR args... */
#define ctl(res, uid, input, ...) \
        run_ctl((res), (uid), (input), (const char *[]) { __VA_ARGS__, NULL })
int run_ctl(RunResult *res, uid_t uid, const char *input, const char *const *args);
/* busctl --address=ADDR args... */
#define busctl(res, uid, ...) \
        run_busctl((res), (uid), (const char *[]) { __VA_ARGS__, NULL })
int run_busctl(RunResult *res, uid_t uid, const char *const *args);

/* Log a RunResult to stderr (for failure diagnostics). */
void run_result_dump(const char *what, const RunResult *r);

/* Assert exit status, dumping output on mismatch. */
#define ck_assert_run_status(r, expected)                                       \
        do {                                                                    \
                if ((r)->status != (expected))                                  \
                        run_result_dump(#r, (r));                               \
                ck_assert_msg((r)->status == (expected),                        \
                              "%s: exit status %d, expected %d (stderr: %s)",   \
                              #r, (r)->status, (expected),                      \
                              (r)->err ? (r)->err : "");                        \
        } while (0)

/* A background process with stdout and stderr captured into one pipe. */
typedef struct BgProc {
        pid_t pid;
        int out_fd;             /* read end, O_NONBLOCK */
        char *out;
        size_t out_len;
} BgProc;

int bg_spawn(BgProc *p, uid_t uid, const char *const *env, const char *const *argv);
/* Read what is available; returns true once out contains needle (waits up to
 * timeout_ms). */
bool bg_wait_output(BgProc *p, const char *needle, int timeout_ms);
/* SIGTERM (then SIGKILL), reap; returns the wait status translated like RunResult. */
int bg_stop(BgProc *p);

/* The uid of a system user that exists on every Debian system ("daemon",
 * "bin", "sys"): dbus-daemon refuses connections from uids without a passwd
 * entry. Asserts that it exists. */
uid_t system_uid(const char *user);

/* Fork, become uid/gid (setgroups(0), setresgid, setresuid unless uid is 0),
 * run fn(userdata), _exit with its return value. Returns the exit status
 * (128+signal if killed, -1 on timeout after timeout_ms). */
int run_as(uid_t uid, int (*fn)(void *userdata), void *userdata, int timeout_ms);
/* Fork like run_as() but return at once; reap with wait_child(). */
pid_t fork_as(uid_t uid, int (*fn)(void *userdata), void *userdata);
int wait_child(pid_t pid, int timeout_ms);

/* In a child (run_as), report and fail: prints file:line and the message,
 * then _exit(1). */
#define child_check(expr, ...)                                                  \
        do {                                                                    \
                if (!(expr)) {                                                  \
                        fprintf(stderr, "%s:%d: child check failed: %s: ",      \
                                __FILE__, __LINE__, #expr);                     \
                        fprintf(stderr, __VA_ARGS__);                           \
                        fputc('\n', stderr);                                    \
                        fflush(stderr);                                         \
                        _exit(1);                                               \
                }                                                               \
        } while (0)

/* ---- bus ---------------------------------------------------------------- */

/* A new connection to the fixture's bus as the current uid (fds negotiated). */
int bus_connect(sd_bus **ret);
sd_bus *test_bus(void);                 /* H->bus */

/* Poll until the daemon owns/no longer owns its name. */
bool wait_name_owner(sd_bus *bus, const char *name, int timeout_ms);

/* ---- daemon state ------------------------------------------------------- */

typedef struct Snapshot {
        uint64_t buffers, bytes, clients, tokens;
        int fds;
} Snapshot;

/* Count /proc/PID/fd of the daemon. */
int daemon_fd_count(void);
bool daemon_alive(void);
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

/* Assert that err carries error name `name` and that its message contains
 * `needle` (if not NULL). */
void assert_bus_error(const sd_bus_error *err, int r, const char *name, const char *needle,
                      const char *context);

/* ---- calls on the test's own connection ---------------------------------- */

typedef struct Created {
        char *path;
        uint64_t id;
        int fd;                 /* our own dup, O_CLOEXEC */
        uint64_t size;
} Created;

void created_done(Created *c);
#define _cleanup_created_ _cleanup_(created_done)

/* CreateMemfd on bus (H->bus if NULL); ttl_usec 0: option left out. Asserts
 * success. */
void create_memfd(sd_bus *bus, const char *name, uint64_t size, bool persistent,
                  uint64_t ttl_usec, Created *ret);
/* Buffer1 methods; return r and fill error. */
int call_release(sd_bus *bus, const char *path, sd_bus_error *error);
int call_freeze(sd_bus *bus, const char *path, sd_bus_error *error);
/* Share with the usual options; uid (uid_t)-1: not bound; ttl 0: none. */
int call_share(sd_bus *bus, const char *path, bool read_only, uid_t uid, bool single_use,
               uint64_t ttl_usec, char **ret_token, sd_bus_error *error);
/* Open; ret_fd gets a dup of the first fd (or NULL), ret_read_only the info. */
int call_open(sd_bus *bus, const char *token, char **ret_path, int *ret_fd,
              bool *ret_read_only, sd_bus_error *error);
/* Does the ListBuffers() of bus (H->bus if NULL) include id? */
bool list_has(sd_bus *bus, uint64_t id);

/* BufferReleased: subscribe the test's connection (synchronously, so no
 * signal is missed afterwards), then wait for a given id. */
void released_watch(void);
bool released_wait(uint64_t id, int timeout_ms);
/* Was id seen already (no waiting)? */
bool released_seen(uint64_t id);

/* ---- misc ----------------------------------------------------------------- */

/* A buffer object path for an id. */
char *buffer_path(uint64_t id);
uint64_t buffer_id_from_path(const char *path);
uint64_t now_usec(void);
/* Sleep a little (for polling loops). */
void msleep(unsigned ms);
/* Extend timeouts when the daemon runs under a wrapper (valgrind). */
int scaled_ms(int ms);
