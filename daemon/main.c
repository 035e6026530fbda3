/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerd: options, the sd-event loop, the bus connection and signals.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include "bus.h"
#include "config.h"
#include "fdstore.h"
#include "parse-util.h"

static bool arg_user = false;
static uint64_t arg_exit_idle_usec = 0;
static BrokerLimits arg_limits;

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
                case ARG_EXIT_IDLE_TIME:
                        r = parse_duration_usec(optarg, &arg_exit_idle_usec);
                        if (r < 0) {
                                fprintf(stderr, "bufbrokerd: invalid value '%s' for --exit-idle-time: %s\n",
                                        optarg, strerror(-r));
                                return r;
                        }
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
                        fprintf(stderr, "bufbrokerd: invalid value '%s' for --%s: %s\n",
                                optarg, opt, strerror(-r));
                        return r;
                }
        }

        if (optind < argc) {
                fprintf(stderr, "bufbrokerd: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }

        /* Sizes are rounded up to pages: keep far away from 2^64. */
        if (arg_limits.max_buffer_size > (UINT64_C(1) << 48)) {
                fprintf(stderr, "bufbrokerd: --max-buffer-size must be at most 256T\n");
                return -ERANGE;
        }
        return 1;
}

/* One fd per buffer plane, plus tokens' and clients' worth of slack: take
 * all the fds we are allowed, and trim the buffer limit to fit. */
static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 64 &&
            arg_limits.max_buffers > (uint64_t) rl.rlim_cur - 64) {
                arg_limits.max_buffers = (uint64_t) rl.rlim_cur - 64;
                fprintf(stderr, "bufbrokerd: RLIMIT_NOFILE is %llu: limiting to %" PRIu64 " buffers\n",
                        (unsigned long long) rl.rlim_cur, arg_limits.max_buffers);
        }
}

static bool manager_is_idle(Manager *m) {
        const BrokerStats *s = &m->broker->stats;
        return s->buffers == 0 && s->tokens == 0 && s->clients == 0;
}

static int on_idle_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        if (!manager_is_idle(m))
                return 0;

        /* Give the name back first: calls made from now on wait for the bus
         * to activate a new instance instead of reaching a dying one. */
        fprintf(stderr, "bufbrokerd: idle for %" PRIu64 " s, exiting\n", m->exit_idle_usec / 1000000);
        r = sd_bus_release_name(m->bus, BB_BUS_NAME);
        if (r < 0)
                fprintf(stderr, "bufbrokerd: failed to release %s: %s\n", BB_BUS_NAME, strerror(-r));
        return sd_event_exit(m->event, 0);
}

/* After each round of events: tell systemd how we are, save the state for a
 * restart, and start or stop counting idle time. One place, once per round,
 * however many things changed in it. */
static int on_post(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        const BrokerStats *st = &m->broker->stats;
        uint64_t now;
        int r;

        fdstore_flush(m);

        if (m->status_generation != m->broker->generation) {
                m->status_generation = m->broker->generation;
                (void) sd_notifyf(false, "STATUS=%" PRIu64 " buffers (%" PRIu64 " bytes), %" PRIu64 " clients, %" PRIu64 " tokens",
                                  st->buffers, st->bytes, st->clients, st->tokens);
        }

        if (m->exit_idle_usec == 0)
                return 0;
        if (!manager_is_idle(m)) {
                if (m->idle_timer)
                        sd_event_source_set_enabled(m->idle_timer, SD_EVENT_OFF);
                return 0;
        }
        if (m->idle_timer) {
                int enabled = SD_EVENT_OFF;
                sd_event_source_get_enabled(m->idle_timer, &enabled);
                if (enabled != SD_EVENT_OFF)
                        return 0;       /* already counting */
        }
        r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return 0;
        if (!m->idle_timer) {
                r = sd_event_add_time(m->event, &m->idle_timer, CLOCK_MONOTONIC,
                                      now + m->exit_idle_usec, 0, on_idle_timeout, m);
                if (r < 0)
                        fprintf(stderr, "bufbrokerd: cannot arm the idle timer: %s\n", strerror(-r));
                return 0;
        }
        sd_event_source_set_time(m->idle_timer, now + m->exit_idle_usec);
        sd_event_source_set_enabled(m->idle_timer, SD_EVENT_ONESHOT);
        return 0;
}

static void manager_done(Manager *m) {
        /* The core first: its callbacks still use the bus. */
        m->broker = broker_free(m->broker);
        m->expire_timer = sd_event_source_unref(m->expire_timer);
        m->idle_timer = sd_event_source_unref(m->idle_timer);
        m->post = sd_event_source_unref(m->post);
        if (m->bus) {
                sd_bus_flush(m->bus);
                m->bus = sd_bus_flush_close_unref(m->bus);
        }
        m->event = sd_event_unref(m->event);
        free(m->cached_sender);
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_done) Manager m = {};
        sigset_t mask;
        int r;

        broker_limits_default(&arg_limits);
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;

        raise_fd_limit();

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        /* A client going away mid-reply must not kill us. */
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&m.event);
        if (r < 0)
                return log_errno(r, "Failed to allocate the event loop");
        r = sd_event_add_signal(m.event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m.event, NULL, SIGINT, NULL, NULL);
        if (r < 0)
                return log_errno(r, "Failed to watch SIGTERM/SIGINT");

        r = arg_user ? sd_bus_open_user(&m.bus) : sd_bus_open_system(&m.bus);
        if (r < 0)
                return log_errno(r, arg_user ? "Failed to connect to the session bus"
                                             : "Failed to connect to the system bus");
        r = sd_bus_attach_event(m.bus, m.event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_errno(r, "Failed to attach the bus to the event loop");

        r = broker_new(&m.broker, &arg_limits, &bus_broker_callbacks, &m);
        if (r < 0)
                return log_errno(r, "Failed to set up the broker");
        m.exit_idle_usec = arg_exit_idle_usec;
        m.fdstore = fdstore_enabled();

        /* Buffers kept by systemd across our restart come back first, so the
         * first call sees them (and their ids are not handed out again). */
        r = fdstore_restore(&m);
        if (r < 0)
                log_errno(r, "Failed to restore buffers from the file descriptor store");
        manager_schedule_expiry(&m);

        /* The watchdog is pinged from the loop: a hung loop gets restarted. */
        r = sd_event_set_watchdog(m.event, true);
        if (r < 0)
                log_errno(r, "Failed to enable the watchdog");
        r = sd_event_add_post(m.event, &m.post, on_post, &m);
        if (r < 0)
                return log_errno(r, "Failed to add the post-event hook");
        r = sd_event_source_set_enabled(m.post, SD_EVENT_ON);
        if (r < 0)
                return log_errno(r, "Failed to enable the post-event hook");

        r = bus_manager_register(&m);
        if (r < 0)
                return log_errno(r, "Failed to register " BB_MANAGER_PATH);
        r = bus_buffer_register(&m);
        if (r < 0)
                return log_errno(r, "Failed to register " BB_BUFFER_PATH_PREFIX);

        r = sd_bus_request_name(m.bus, BB_BUS_NAME, 0);
        if (r == -EEXIST)
                return log_errno(r, "Another process owns " BB_BUS_NAME);
        if (r < 0)
                return log_errno(r, "Failed to own " BB_BUS_NAME);

        (void) sd_notify(false, "READY=1\nSTATUS=Serving " BB_BUS_NAME);

        r = sd_event_loop(m.event);
        if (r < 0)
                return log_errno(r, "Event loop failed");

        (void) sd_notify(false, "STOPPING=1");
        return 0;
}

int main(int argc, char *argv[]) {
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
