/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * systemd-probe: the bus client guest-systemd.sh needs where busctl and
 * bufbrokerctl cannot do the job: print the exact D-Bus error name of a
 * refused call, and keep a library client (with its holds) running across a
 * restart of the daemon, releasing its buffers when told to.
 *
 *   systemd-probe request-name NAME
 *           RequestName(NAME, DO_NOT_QUEUE) on the system bus; prints "reply N" or
 *           "error ERROR.NAME: message"
 *   systemd-probe call [--fd] DEST PATH INTERFACE METHOD
 *           a method call without arguments, or (--fd) with one UNIX_FD
 *           argument (/dev/null); prints "reply SIGNATURE" or "error ..."
 *   systemd-probe hold N
 *           creates N buffers through libbufbroker (not persistent: held by
 *           this connection only), prints "held ID" for each and "ready",
 *           then waits: SIGUSR1 releases them all ("released ID" or
 *           "release ID failed: ...") and exits 0 if every Release worked;
 *           SIGTERM exits 2 without releasing.
 *
 * Exit status: 0 when the call completed (with a reply or an error: the
 * caller judges the printed line), 1 on local failures, 2 on usage errors.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include <bufbroker.h>

#include "macro.h"

static int print_result(int r, sd_bus_message *reply, const sd_bus_error *error) {
        if (r >= 0) {
                const char *sig = sd_bus_message_get_signature(reply, true);
                printf("reply %s\n", sig && *sig ? sig : "-");
                return 0;
        }
        if (sd_bus_error_is_set(error)) {
                printf("error %s: %s\n", error->name, error->message ? error->message : "");
                return 0;
        }
        fprintf(stderr, "systemd-probe: call failed locally: %s\n", strerror(-r));
        return 1;
}

static int do_request_name(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint32_t ret = 0;
        int r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "RequestName", &error, &reply, "su", name, (uint32_t) 4 /* DO_NOT_QUEUE */);
        if (r >= 0 && sd_bus_message_read(reply, "u", &ret) >= 0) {
                /* 1: primary owner, 2: queued, 3: exists, 4: already owner */
                printf("reply %" PRIu32 "\n", ret);
                return 0;
        }
        r = print_result(r, reply, &error);
        sd_bus_error_free(&error);
        return r;
}

static int do_call(sd_bus *bus, bool with_fd, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_close_ int fd = -1;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, argv[0], argv[1], argv[2], argv[3]);
        if (r < 0) {
                fprintf(stderr, "systemd-probe: cannot build the call: %s\n", strerror(-r));
                return 1;
        }
        if (with_fd) {
                fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        perror("systemd-probe: /dev/null");
                        return 1;
                }
                r = sd_bus_message_append(m, "h", fd);
                if (r < 0) {
                        fprintf(stderr, "systemd-probe: cannot append the fd: %s\n", strerror(-r));
                        return 1;
                }
        }
        r = sd_bus_call(bus, m, 0, &error, &reply);
        r = print_result(r, reply, &error);
        sd_bus_error_free(&error);
        return r;
}

static int do_hold(unsigned n) {
        bb_client *c = NULL;
        bb_buffer **bufs;
        sigset_t mask;
        int sig = 0, r, ret = 0;

        /* Blocked before anything can send them, so none is lost. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGUSR1);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        bufs = calloc(n, sizeof(*bufs));
        if (!bufs)
                return 1;
        r = bb_client_new(&c);
        if (r < 0) {
                fprintf(stderr, "systemd-probe: cannot connect: %s\n", strerror(-r));
                return 1;
        }
        for (unsigned i = 0; i < n; i++) {
                char name[32];

                snprintf(name, sizeof(name), "held-by-client-%u", i);
                r = bb_buffer_create(c, name, 4096, 0, 0, &bufs[i]);
                if (r < 0) {
                        fprintf(stderr, "systemd-probe: create: %s (%s)\n", strerror(-r),
                                bb_client_error_name(c) ? bb_client_error_name(c) : "local");
                        return 1;
                }
                printf("held %" PRIu64 "\n", bb_buffer_id(bufs[i]));
        }
        printf("ready\n");
        fflush(stdout);

        if (sigwait(&mask, &sig) != 0 || sig != SIGUSR1)
                return 2;

        for (unsigned i = 0; i < n; i++) {
                r = bb_buffer_release(bufs[i]);
                if (r < 0) {
                        printf("release %" PRIu64 " failed: %s (%s)\n", bb_buffer_id(bufs[i]), strerror(-r),
                               bb_client_error_name(c) ? bb_client_error_name(c) : "local");
                        ret = 1;
                } else
                        printf("released %" PRIu64 "\n", bb_buffer_id(bufs[i]));
                bufs[i] = bb_buffer_unref(bufs[i]);
        }
        fflush(stdout);
        free(bufs);
        bb_client_unref(c);
        return ret;
}

static int usage(void) {
        fprintf(stderr, "usage: systemd-probe request-name NAME\n"
                        "       systemd-probe call [--fd] DEST PATH INTERFACE METHOD\n"
                        "       systemd-probe hold N\n");
        return 2;
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (argc == 3 && strcmp(argv[1], "hold") == 0) {
                unsigned long n = strtoul(argv[2], NULL, 10);
                if (n == 0 || n > 64)
                        return usage();
                return do_hold((unsigned) n);
        }

        if (argc < 3)
                return usage();
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "systemd-probe: cannot connect to the system bus: %s\n", strerror(-r));
                return 1;
        }
        if (argc == 3 && strcmp(argv[1], "request-name") == 0)
                return do_request_name(bus, argv[2]);
        if (strcmp(argv[1], "call") == 0) {
                bool with_fd = argc > 2 && strcmp(argv[2], "--fd") == 0;
                if (argc != 6 + with_fd)
                        return usage();
                return do_call(bus, with_fd, argv + 2 + with_fd);
        }
        return usage();
}
