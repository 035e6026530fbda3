/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerd: options, the sd-event loop, the bus connection and signals.
 */
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include "bus.h"
#include "config.h"
#include "fdstore.h"
#include "parse-util.h"
#include "tmpfile.h"

static bool arg_user = false;
static uint64_t arg_exit_idle_usec = 0;
static uint64_t arg_fdstore_max = 0;
static uint64_t arg_max_fds = UINT64_MAX;       /* as many as RLIMIT_NOFILE and the store allow */
static BrokerLimits arg_limits;
static const char *arg_file_dir = NULL;        /* NULL: the default; "": none */
static bool arg_remove_stale_objects = false;

/* fds that are not buffers': the bus connections (two while reconnecting),
 * the private connections, the ones a call opens for its reply, a V4L2
 * device being probed, the state file, the event loop. */
#define FD_RESERVE (256 + PRIVATE_MAX)

static void help(void) {
        printf("Usage: bufbrokerd [OPTIONS...]\n\n"
               "Hands out sealed memfd buffers over D-Bus as %s.\n\n"
               "  -h --help                    Show this help\n"
               "     --version                 Show the version\n"
               "     --system                  Serve the system bus (default; honours\n"
               "                               DBUS_SYSTEM_BUS_ADDRESS)\n"
               "     --user                    Serve the session bus (honours\n"
               "                               DBUS_SESSION_BUS_ADDRESS)\n"
               "     --exit-idle-time=TIME     Exit after TIME without buffers, tokens or\n"
               "                               clients (e.g. 30s; default: never); bus\n"
               "                               activation brings the daemon back\n"
               "     --max-buffer-size=SIZE    Largest buffer (default %" PRIu64 ")\n"
               "     --max-buffers-per-uid=N   Buffers one uid may own (default %" PRIu64 ")\n"
               "     --max-bytes-per-uid=SIZE  Bytes one uid may own (default %" PRIu64 ")\n"
               "     --max-tokens-per-uid=N    Share tokens one uid may have (default %" PRIu64 ")\n"
               "     --max-buffers=N           Buffers in all (default %" PRIu64 ")\n"
               "     --max-bytes=SIZE          Bytes in all (default %" PRIu64 ")\n"
               "     --max-tokens=N            Tokens in all (default %" PRIu64 ")\n"
               "     --max-fds=N               File descriptors kept for buffers (default:\n"
               "                               all that RLIMIT_NOFILE and the fd store allow)\n"
               "     --fdstore-max=N           FileDescriptorStoreMax= of the unit: keep no\n"
               "                               more fds than the store takes (default:\n"
               "                               $FDSTORE, else no limit from the store)\n"
               "     --file-dir=DIR            Make file buffers (kind \"file\") in DIR\n"
               "                               (default: $STATE_DIRECTORY/files; empty:\n"
               "                               no file buffers)\n"
               "     --remove-stale-objects    At start, remove the posix names and SysV\n"
               "                               segments of this uid that no restored\n"
               "                               buffer names (for a uid of its own only)\n"
               "\nSIZE takes K, M, G, T suffixes (powers of 1024). See bufbrokerd(8).\n",
               BB_BUS_NAME,
               arg_limits.max_buffer_size, arg_limits.max_buffers_per_uid,
               arg_limits.max_bytes_per_uid, arg_limits.max_tokens_per_uid,
               arg_limits.max_buffers, arg_limits.max_bytes, arg_limits.max_tokens);
}

/* Returns <0 on error, 0 to exit successfully, >0 to run. */
static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_SYSTEM,
                ARG_USER,
                ARG_EXIT_IDLE_TIME,
                ARG_MAX_BUFFER_SIZE,
                ARG_MAX_BUFFERS_PER_UID,
                ARG_MAX_BYTES_PER_UID,
                ARG_MAX_TOKENS_PER_UID,
                ARG_MAX_BUFFERS,
                ARG_MAX_BYTES,
                ARG_MAX_TOKENS,
                ARG_MAX_FDS,
                ARG_FDSTORE_MAX,
                ARG_FILE_DIR,
                ARG_REMOVE_STALE_OBJECTS,
        };
        static const struct option options[] = {
                { "help",                no_argument,       NULL, 'h' },
                { "version",             no_argument,       NULL, ARG_VERSION },
                { "system",              no_argument,       NULL, ARG_SYSTEM },
                { "user",                no_argument,       NULL, ARG_USER },
                { "exit-idle-time",      required_argument, NULL, ARG_EXIT_IDLE_TIME },
                { "max-buffer-size",     required_argument, NULL, ARG_MAX_BUFFER_SIZE },
                { "max-buffers-per-uid", required_argument, NULL, ARG_MAX_BUFFERS_PER_UID },
                { "max-bytes-per-uid",   required_argument, NULL, ARG_MAX_BYTES_PER_UID },
                { "max-tokens-per-uid",  required_argument, NULL, ARG_MAX_TOKENS_PER_UID },
                { "max-buffers",         required_argument, NULL, ARG_MAX_BUFFERS },
                { "max-bytes",           required_argument, NULL, ARG_MAX_BYTES },
                { "max-tokens",          required_argument, NULL, ARG_MAX_TOKENS },
                { "max-fds",             required_argument, NULL, ARG_MAX_FDS },
                { "fdstore-max",         required_argument, NULL, ARG_FDSTORE_MAX },
                { "file-dir",            required_argument, NULL, ARG_FILE_DIR },
                { "remove-stale-objects", no_argument,      NULL, ARG_REMOVE_STALE_OBJECTS },
                {}
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                uint64_t *limit = NULL;
                bool is_size = false;

                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("bufbrokerd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_SYSTEM:
                        arg_user = false;
                        continue;
                case ARG_USER:
                        arg_user = true;
                        continue;
                case ARG_REMOVE_STALE_OBJECTS:
                        arg_remove_stale_objects = true;
                        continue;
                case ARG_EXIT_IDLE_TIME:
                        r = parse_duration_usec(optarg, &arg_exit_idle_usec);
                        if (r < 0) {
                                log_error("invalid value '%s' for --exit-idle-time: %s",
                                        optarg, strerror(-r));
                                return r;
                        }
                        continue;
                case ARG_FILE_DIR:
                        arg_file_dir = optarg;
                        continue;
                case ARG_MAX_BUFFER_SIZE:
                        limit = &arg_limits.max_buffer_size, is_size = true;
                        break;
                case ARG_MAX_BUFFERS_PER_UID:
                        limit = &arg_limits.max_buffers_per_uid;
                        break;
                case ARG_MAX_BYTES_PER_UID:
                        limit = &arg_limits.max_bytes_per_uid, is_size = true;
                        break;
                case ARG_MAX_TOKENS_PER_UID:
                        limit = &arg_limits.max_tokens_per_uid;
                        break;
                case ARG_MAX_BUFFERS:
                        limit = &arg_limits.max_buffers;
                        break;
                case ARG_MAX_BYTES:
                        limit = &arg_limits.max_bytes, is_size = true;
                        break;
                case ARG_MAX_TOKENS:
                        limit = &arg_limits.max_tokens;
                        break;
                case ARG_MAX_FDS:
                        limit = &arg_max_fds;
                        break;
                case ARG_FDSTORE_MAX:
                        limit = &arg_fdstore_max;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return -EINVAL;
                }

                r = is_size ? parse_size(optarg, limit) : parse_uint64(optarg, limit);
                if (r < 0) {
                        const char *opt = "?";
                        for (const struct option *o = options; o->name; o++)
                                if (o->val == c)
                                        opt = o->name;
                        log_error("invalid value '%s' for --%s: %s",
                                optarg, opt, strerror(-r));
                        return r;
                }
        }

        if (optind < argc) {
                log_error("unexpected argument '%s'", argv[optind]);
                return -EINVAL;
        }

        /* Sizes are rounded up to pages: keep far away from 2^64. */
        if (arg_limits.max_buffer_size > (UINT64_C(1) << 48)) {
                log_error("--max-buffer-size must be at most 256T");
                return -ERANGE;
        }
        return 1;
}

/* Buffers keep fds: one per memfd, one or two per V4L2 plane. Take all the
 * fds we are allowed, and budget for buffers what the other uses leave
 * (FD_RESERVE), what the fd store can keep (all of a buffer's fds, plus the
 * state: two of it while a new snapshot replaces the old), and no more than
 * --max-fds. No other cap: the rlimit is the administrator's word on how
 * many fds we may have (LimitNOFILE= in the unit). The budget is a limit
 * like the others (BrokerLimits.max_fds, shared fairly), so a full table is
 * QuotaExceeded, never EMFILE halfway through a call or a buffer lost at the
 * next restart. */
static void fit_fd_budget(bool fdstore) {
        uint64_t budget = UINT64_MAX;
        const char *why = NULL, *e;
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
                if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur != RLIM_INFINITY) {
                        budget = rl.rlim_cur > 2 * FD_RESERVE ? (uint64_t) rl.rlim_cur - FD_RESERVE
                                                              : (uint64_t) rl.rlim_cur / 2;
                        why = "RLIMIT_NOFILE";
                }
        }

        e = getenv("FDSTORE");          /* systemd >= 254 tells FileDescriptorStoreMax= */
        if (fdstore && arg_fdstore_max == 0 && e)
                (void) parse_uint64(e, &arg_fdstore_max);
        if (fdstore && arg_fdstore_max > 0 && arg_fdstore_max - MIN(arg_fdstore_max, 2) < budget) {
                budget = arg_fdstore_max - MIN(arg_fdstore_max, 2);
                why = "the file descriptor store";
        }

        if (arg_max_fds <= budget)
                budget = arg_max_fds;
        else if (arg_max_fds != UINT64_MAX)
                log_notice("--max-fds=%" PRIu64 " is more than %s allows: keeping at most %" PRIu64 " fds for buffers",
                           arg_max_fds, why, budget);
        else if (why)
                log_info("keeping at most %" PRIu64 " fds for buffers (all that %s allows)", budget, why);
        arg_limits.max_fds = budget;
}

/* The directory of file buffers: --file-dir, else "files" in the state
 * directory systemd made for us (StateDirectory=, the first one if there
 * are several), made 0700 when missing. Without either, or when it is not
 * fit (tmpfile_dir_open() logs why), the daemon serves every other kind and
 * refuses file buffers: returns -1 then. */
static int open_file_dir(void) {
        _cleanup_free_ char *path = NULL;
        const char *state;
        int fd;

        if (arg_file_dir && !arg_file_dir[0])
                return -1;
        if (arg_file_dir) {
                fd = tmpfile_dir_open(arg_file_dir, false);
                return fd < 0 ? -1 : fd;
        }
        state = getenv("STATE_DIRECTORY");
        if (!state || !state[0]) {
                log_info("no --file-dir and no $STATE_DIRECTORY: file buffers are off");
                return -1;
        }
        if (asprintf(&path, "%.*s/files", (int) strcspn(state, ":"), state) < 0) {
                log_error("out of memory");
                return -1;
        }
        fd = tmpfile_dir_open(path, true);
        return fd < 0 ? -1 : fd;
}

static bool manager_is_idle(Manager *m) {
        const BrokerStats *s = &m->broker->stats;
        /* An open private connection is a client that may call at any time. */
        return s->buffers == 0 && s->tokens == 0 && s->clients == 0 && m->n_queued == 0 && m->n_released == 0 &&
               m->n_direct == 0;
}

static int on_name_released(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;

        /* The bus handles our messages in order: every call it routed to us
         * under the name came before this answer, and is queued here now. */
        if (sd_bus_message_is_method_error(reply, NULL))
                log_error("failed to release %s: %s", BB_BUS_NAME,
                        sd_bus_message_get_error(reply)->message);
        m->name_released = true;
        return 0;
}

static int on_idle_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        if (!manager_is_idle(m) || m->exiting)
                return 0;

        /* Tell systemd first, so that it queues a start request from now on
         * instead of taking us for running; then give the name back without
         * waiting, and answer whatever reaches us until the bus confirms.
         * Calls made after that wait for a new instance (bus activation). */
        log_info("idle for %" PRIu64 " s, exiting", m->exit_idle_usec / 1000000);
        (void) sd_notify(false, "STOPPING=1");
        m->exiting = true;
        r = sd_bus_release_name_async(m->bus, NULL, BB_BUS_NAME, on_name_released, m);
        if (r < 0) {
                log_error_errno(r, "Failed to release " BB_BUS_NAME);
                m->name_released = true;
        }
        return 0;
}

/* Exiting, the name given back: leave once every call that reached us is
 * answered. Buffers those calls made are in the fd store; a failure status
 * makes systemd restart us with them (a clean exit would empty the store). */
static void manager_check_exit(Manager *m) {
        if (!m->name_released || m->n_queued > 0 || m->n_released > 0)
                return;
        if (manager_is_idle(m)) {
                (void) sd_event_exit(m->event, 0);
                return;
        }
        log_notice("calls during the exit made %" PRIu64 " buffers; %s",
                m->broker->stats.buffers,
                m->fdstore ? "exiting with a failure, so that the service manager restarts us with them"
                           : "they go with this instance");
        (void) sd_event_exit(m->event, m->fdstore ? EXIT_FAILURE : 0);
}

static int on_signal_keep(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        const BrokerStats *st = &m->broker->stats;

        /* Not a way to end the daemon (SIGTERM is): these would kill it by
         * default, and with it every buffer. */
        log_notice("got %s from pid %u; %" PRIu64 " buffers (%" PRIu64 " bytes), %" PRIu64 " clients, "
                "%" PRIu64 " tokens, %" PRIu64 " fds kept, %u calls queued, %u reconnects%s",
                strsignal((int) si->ssi_signo), (unsigned) si->ssi_pid, st->buffers, st->bytes, st->clients,
                st->tokens, st->fds, m->n_queued, m->n_reconnects,
                si->ssi_signo == SIGHUP ? "; there is no configuration to reload" : "");
        return 0;
}

/* The STATUS= line is for people (systemctl status), not a record of each
 * change: sent after every change it would be a datagram to the service
 * manager per create and per drop, and ~3,000 instructions of formatting
 * per round. At most one per STATUS_INTERVAL_USEC; when changes come faster,
 * a timer sends the state as it is then, so the last one is always told.
 * Without a service manager (no $NOTIFY_SOCKET) there is no one to tell. */
#define STATUS_INTERVAL_USEC (100 * UINT64_C(1000))
#define STATUS_ACCURACY_USEC (10 * UINT64_C(1000))     /* not sd-event's default 250 ms */

static void status_send(Manager *m) {
        const BrokerStats *st = &m->broker->stats;

        m->status_generation = m->broker->generation;
        m->status_sent_usec = now_usec();
        (void) sd_notifyf(false, "STATUS=%" PRIu64 " buffers (%" PRIu64 " bytes), %" PRIu64 " clients, %" PRIu64 " tokens",
                          st->buffers, st->bytes, st->clients, st->tokens);
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (m->status_generation != m->broker->generation)
                status_send(m);
        return 0;
}

static void status_update(Manager *m) {
        uint64_t due;
        int r;

        if (!m->status_notify || m->status_generation == m->broker->generation)
                return;
        due = m->status_sent_usec + STATUS_INTERVAL_USEC;
        if (m->status_sent_usec == 0 || now_usec() >= due) {
                status_send(m);
                return;
        }
        if (m->status_timer) {
                int enabled = SD_EVENT_OFF;

                (void) sd_event_source_get_enabled(m->status_timer, &enabled);
                if (enabled != SD_EVENT_OFF)
                        return;         /* already due */
                (void) sd_event_source_set_time(m->status_timer, due);
                (void) sd_event_source_set_enabled(m->status_timer, SD_EVENT_ONESHOT);
                return;
        }
        r = sd_event_add_time(m->event, &m->status_timer, CLOCK_MONOTONIC, due, STATUS_ACCURACY_USEC,
                              on_status_timer, m);
        if (r < 0) {
                log_error_errno(r, "cannot arm the status timer");
                status_send(m);         /* better too often than stale */
        }
}

/* Give the memory of dropped buffers back to the kernel once many are
 * gone: glibc keeps freed small chunks in its heap, so a daemon that once
 * held 100,000 buffers would keep their RSS for good. Amortized: a trim
 * (a walk over the free heap) at most once per TRIM_AFTER_DROPPED buffers
 * dropped, and only when at least half of the peak is gone. */
#define TRIM_AFTER_DROPPED 4096

static void trim_after_drops(uint64_t buffers) {
        static uint64_t peak;

        if (buffers > peak) {
                peak = buffers;
                return;
        }
        if (peak - buffers < TRIM_AFTER_DROPPED || buffers > peak / 2)
                return;
        (void) malloc_trim(0);
        peak = buffers;
}

/* After each round of events: tell systemd how we are, save the state for a
 * restart, watch our bus output, arm the lease rechecks and the attachment
 * checks (broker.h), and
 * start or stop counting idle time. One
 * place, once per round, however many things changed in it. */
static int on_post(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        uint64_t now;
        int r;

        fdstore_flush(m);
        bus_connection_check_output(m);
        manager_schedule_lease_recheck(m);
        manager_schedule_attachment_check(m);
        trim_after_drops(m->broker->stats.buffers);

        status_update(m);

        if (m->exiting) {
                manager_check_exit(m);
                return 0;
        }
        if (m->exit_idle_usec == 0)
                return 0;
        if (!manager_is_idle(m)) {
                if (m->idle_timer)
                        sd_event_source_set_enabled(m->idle_timer, SD_EVENT_OFF);
                return 0;
        }
        if (m->idle_timer && m->idle_calls == m->n_calls) {
                int enabled = SD_EVENT_OFF;
                sd_event_source_get_enabled(m->idle_timer, &enabled);
                if (enabled != SD_EVENT_OFF)
                        return 0;       /* already counting, and no call since */
        }
        /* Idle time counts from the last call, as in systemd's own bus
         * services: a daemon that is being talked to is not idle. */
        m->idle_calls = m->n_calls;
        r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return 0;
        if (!m->idle_timer) {
                r = sd_event_add_time(m->event, &m->idle_timer, CLOCK_MONOTONIC,
                                      now + m->exit_idle_usec, 0, on_idle_timeout, m);
                if (r < 0)
                        log_error_errno(r, "cannot arm the idle timer");
                return 0;
        }
        sd_event_source_set_time(m->idle_timer, now + m->exit_idle_usec);
        sd_event_source_set_enabled(m->idle_timer, SD_EVENT_ONESHOT);
        return 0;
}

/* Returns <0 on error, else the exit status: EXIT_FAILURE when the bus
 * connection was lost (sd-bus ends the loop so), for systemd to restart us. */
static int run(int argc, char *argv[]) {
        _cleanup_(manager_done) Manager m = MANAGER_INIT(m);
        static const int kept_signals[] = { SIGHUP, SIGUSR1, SIGUSR2 };
        sigset_t mask;
        int r;

        broker_limits_default(&arg_limits);
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;

        m.fdstore = fdstore_enabled();
        fit_fd_budget(m.fdstore);

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        for (size_t i = 0; i < ELEMENTSOF(kept_signals); i++)
                sigaddset(&mask, kept_signals[i]);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        /* A client going away mid-reply must not kill us. */
        signal(SIGPIPE, SIG_IGN);

        r = manager_init(&m, &arg_limits);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the broker");
        /* With the fd store our buffers outlive us, so must the posix names
         * and SysV segments that are part of them. If the store is dropped
         * (the service stopped), the next start removes them
         * (--remove-stale-objects). */
        m.broker->keep_objects = m.fdstore;
        m.broker->file_dir_fd = open_file_dir();
        r = sd_event_add_signal(m.event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m.event, NULL, SIGINT, NULL, NULL);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(kept_signals); i++)
                r = sd_event_add_signal(m.event, NULL, kept_signals[i], on_signal_keep, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals");

        m.exit_idle_usec = arg_exit_idle_usec;
        m.user_bus = arg_user;

        r = bus_connection_open(&m);
        if (r < 0)
                return r;

        /* Buffers kept by systemd across our restart come back first, so the
         * first call sees them (and their ids are not handed out again). */
        r = fdstore_restore(&m);
        if (r < 0)
                log_warning_errno(r, "Failed to restore buffers from the file descriptor store");
        /* A stop drops the fd store but not the posix names and SysV
         * segments of the buffers it kept: what no restored buffer names is
         * nobody's now. */
        if (arg_remove_stale_objects)
                (void) broker_remove_stale_objects(m.broker);
        manager_schedule_expiry(&m);

        /* The watchdog is pinged from the loop: a hung loop gets restarted. */
        r = sd_event_set_watchdog(m.event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog");
        r = sd_event_add_post(m.event, &m.post, on_post, &m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the post-event hook");
        r = sd_event_source_set_enabled(m.post, SD_EVENT_ON);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the post-event hook");

        r = bus_connection_request_name(&m);
        if (r < 0)
                return r;

        (void) sd_notify(false, "READY=1\nSTATUS=Serving " BB_BUS_NAME);
        m.status_notify = fdstore_enabled();

        r = sd_event_loop(m.event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed");
        if (r != 0 && !m.exiting) {
                log_error("lost the bus connection; exiting with a failure, so that the service manager restarts us%s",
                        m.fdstore ? " (the fd store keeps every buffer)" : "");
                (void) sd_notify(false, "STATUS=Lost the bus connection");
                return r;
        }
        if (r != 0)
                return r;

        (void) sd_notify(false, "STOPPING=1");
        return 0;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);
        return r < 0 || r > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
