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
#include "parse-util.h"

static bool arg_user = false;
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
                        fprintf(stderr, "bufbrokerd: invalid value '%s' for --%s: %s\n",
                                optarg, options[c - ARG_VERSION + 1].name, strerror(-r));
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

static void manager_done(Manager *m) {
        /* The core first: its callbacks still use the bus. */
        m->broker = broker_free(m->broker);
        m->expire_timer = sd_event_source_unref(m->expire_timer);
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
