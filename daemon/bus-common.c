/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers every handler uses: who is calling, how to read options, how core
 * errnos become D-Bus errors, and the expiry timer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "bus.h"
#include "memfd.h"

/* Arm the one-shot CLOCK_MONOTONIC timer *@s for @next (USEC_INFINITY: turn
 * it off), creating it on first use. */
static void manager_arm_timer(Manager *m, sd_event_source **s, uint64_t next, sd_event_time_handler_t handler,
                              const char *what) {
        int r;

        if (next == USEC_INFINITY) {
                if (*s)
                        (void) sd_event_source_set_enabled(*s, SD_EVENT_OFF);
                return;
        }
        if (!*s) {
                r = sd_event_add_time(m->event, s, CLOCK_MONOTONIC, next, 0, handler, m);
                if (r < 0)
                        log_error_errno(r, "Failed to add %s", what);
                return;
        }
        (void) sd_event_source_set_time(*s, next);
        (void) sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
}

/* Closes (the inotify events of lease.c) are looked at in two ways. While
 * calls come, each call looks first (manager_leases_poll()), and the inotify
 * fd is out of the loop: a client that closes a buffer and asks for the next
 * one would otherwise wake the daemon twice, once for the close and once for
 * the call, and on a busy CPU each wake is a context switch (18 % of the
 * daemon's time in a create -> close loop). Looking first also means a
 * client is never refused for a quota it has just freed by closing. Once no
 * call came for LEASE_PER_CALL_USEC, the inotify fd wakes the loop again,
 * so that a buffer closed while the daemon is otherwise idle goes at once;
 * at most LEASE_PER_CALL_USEC (and the timer's slack) after the last call,
 * a close is seen even if nothing else happens. */
#define LEASE_PER_CALL_USEC (5 * UINT64_C(1000))
#define LEASE_PER_CALL_SLACK_USEC (1 * UINT64_C(1000))

static void manager_leases_process(Manager *m) {
        (void) broker_leases_process(m->broker);
        manager_schedule_lease_recheck(m);
}

static int on_lease_events(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        manager_leases_process(userdata);
        return 0;
}

int manager_leases_per_call_end(Manager *m) {
        int r;

        if (!m->lease_per_call)
                return 0;
        r = sd_event_source_set_enabled(m->lease_source, SD_EVENT_ON);
        if (r < 0)
                return r;
        m->lease_per_call = false;
        (void) sd_event_source_set_enabled(m->lease_lazy, SD_EVENT_OFF);
        manager_leases_process(m);
        return 1;
}

static int on_lease_per_call_end(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t end = m->lease_polled_usec + LEASE_PER_CALL_USEC;

        /* Calls still came: look again when the last one is that old. One
         * wake per LEASE_PER_CALL_USEC at most, not a timer move per call. */
        if (usec < end && sd_event_source_set_time(s, end) >= 0 &&
            sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) >= 0)
                return 0;
        if (manager_leases_per_call_end(m) < 0) {
                /* Keep looking per call, and try again later. */
                if (sd_event_source_set_time(s, usec + LEASE_PER_CALL_USEC) < 0 ||
                    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) < 0)
                        log_warning("Cannot watch buffers for closes between calls; a buffer closed now goes "
                                    "with the next call");
        }
        return 0;
}

void manager_leases_poll(Manager *m) {
        /* Detaching sends no event: each call asks about the sysv buffers
         * kept only by attachments (few: they are charged to quotas), so
         * that a caller who detached is not refused for what it freed. */
        broker_attachments_check(m->broker);
        if (!m->lease_source)
                return;         /* no leases */
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &m->lease_polled_usec);
        if (!m->lease_per_call) {
                int r;

                if (!m->lease_lazy)
                        r = sd_event_add_time(m->event, &m->lease_lazy, CLOCK_MONOTONIC,
                                              m->lease_polled_usec + LEASE_PER_CALL_USEC, LEASE_PER_CALL_SLACK_USEC,
                                              on_lease_per_call_end, m);
                else {
                        r = sd_event_source_set_time(m->lease_lazy, m->lease_polled_usec + LEASE_PER_CALL_USEC);
                        if (r >= 0)
                                r = sd_event_source_set_enabled(m->lease_lazy, SD_EVENT_ONESHOT);
                }
                /* Without the timer the inotify fd stays in the loop. */
                if (r >= 0 && sd_event_source_set_enabled(m->lease_source, SD_EVENT_OFF) >= 0)
                        m->lease_per_call = true;
        }
        manager_leases_process(m);
}

static int on_lease_recheck(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        broker_leases_recheck(m->broker);
        manager_schedule_lease_recheck(m);
        return 0;
}

void manager_schedule_lease_recheck(Manager *m) {
        manager_arm_timer(m, &m->lease_timer, broker_leases_next_recheck(m->broker), on_lease_recheck,
                          "the timer of lease rechecks");
}

static int on_attachment_check(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        broker_attachments_check(m->broker);
        manager_schedule_attachment_check(m);
        return 0;
}

void manager_schedule_attachment_check(Manager *m) {
        manager_arm_timer(m, &m->attach_timer, broker_attachments_next_check(m->broker), on_attachment_check,
                          "the timer of attachment checks");
}

/* Leases (broker.h) need the inotify fd read by the loop; without them a
 * buffer is held until released or its holders disconnect. */
static void manager_start_leases(Manager *m) {
        int r;

        if (broker_leases_enable(m->broker) < 0)
                return;         /* logged */
        r = sd_event_add_io(m->event, &m->lease_source, broker_leases_fd(m->broker), EPOLLIN,
                            on_lease_events, m);
        if (r < 0) {
                /* No buffer exists yet: turning leases off leaves none watched. */
                broker_leases_free(m->broker);
                log_warning_errno(r, "Cannot watch buffers for closed fds; a buffer is held until "
                                  "released or its holders disconnect");
        }
}

int manager_init(Manager *m, const BrokerLimits *limits) {
        int r;

        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        r = broker_new(&m->broker, limits, &bus_broker_callbacks, m);
        if (r < 0)
                return r;
        fd_reopen_dir_open();           /* every handout reopens a memfd */
        manager_start_leases(m);
        return 0;
}

void manager_done(Manager *m) {
        /* The core first (but for the source of its inotify fd, which it
         * closes): its callbacks still use the bus. */
        m->lease_source = sd_event_source_disable_unref(m->lease_source);
        m->lease_timer = sd_event_source_disable_unref(m->lease_timer);
        m->attach_timer = sd_event_source_disable_unref(m->attach_timer);
        m->lease_lazy = sd_event_source_disable_unref(m->lease_lazy);
        m->broker = broker_free(m->broker);
        fd_reopen_dir_close();
        peers_free(m);
        m->expire_timer = sd_event_source_disable_unref(m->expire_timer);
        m->idle_timer = sd_event_source_disable_unref(m->idle_timer);
        m->status_timer = sd_event_source_disable_unref(m->status_timer);
        m->post = sd_event_source_disable_unref(m->post);
        bus_connection_close(m);
        m->event = sd_event_unref(m->event);
}

uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

int bus_get_caller(Manager *m, sd_bus_message *msg, Caller *ret, sd_bus_error *error) {
        Peer *p = peer_of_message(m, msg);

        if (!p || !p->creds_known)
                /* Only for calls that bypassed the queue, which none should. */
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED,
                                        "bufbrokerd does not know who the caller is");

        *ret = (Caller) {
                .name = p->name,
                .uid = p->uid,
                .groups = p->groups,
                .n_groups = p->n_groups,
        };
        return 0;
}

int bus_map_broker_error(sd_bus_error *error, int r, const BrokerError *err) {
        const char *message = err && err->message[0] ? err->message : strerror(-r);

        /* Only the conditions the core names get protocol errors; a kernel's
         * or driver's errno says nothing about the caller's request. */
        if (err && err->name)
                return sd_bus_error_set(error, err->name, message);
        if (r == -ENOMEM)
                return sd_bus_error_set(error, SD_BUS_ERROR_NO_MEMORY, message);
        return sd_bus_error_set(error, SD_BUS_ERROR_FAILED, message);
}

static const char *type_name(char type) {
        switch (type) {
        case 'b': return "boolean (b)";
        case 't': return "non-negative integer up to 2^64-1 (y, n, q, i, u, x or t)";
        case 'u': return "non-negative integer up to 2^32-1 (y, n, q, i, u, x or t)";
        case 's': return "string (s)";
        case 'F': return "fourcc string (s) or integer up to 2^32-1";
        default:  return "?";
        }
}

/* D-Bus integer types: dynamic bindings send what their language has (a
 * Python int goes out as 'i', gdbus' text syntax makes <1000000> an 'i'),
 * so an option takes any of them whose value fits. */
static bool is_integer_type(char t) {
        return t && strchr("ynqiuxt", t);
}

/* Read a variant of integer type @t: its value, and whether negative. */
static int read_integer(sd_bus_message *msg, char t, bool *ret_negative, uint64_t *ret) {
        union { uint8_t y; int16_t n; uint16_t q; int32_t i; uint32_t u; int64_t x; uint64_t t; } v;
        char sig[2] = { t, 0 };
        int64_t s = 0;
        int r;

        r = sd_bus_message_read(msg, "v", sig, &v);
        if (r < 0)
                return r;
        switch (t) {
        case 'y': *ret = v.y; break;
        case 'q': *ret = v.q; break;
        case 'u': *ret = v.u; break;
        case 't': *ret = v.t; break;
        case 'n': s = v.n; break;
        case 'i': s = v.i; break;
        case 'x': s = v.x; break;
        default: return -EINVAL;
        }
        if (strchr("nix", t)) {
                *ret_negative = s < 0;
                *ret = s < 0 ? (uint64_t) -(s + 1) + 1 : (uint64_t) s;
        } else
                *ret_negative = false;
        return 0;
}

static BusOption *option_find(const BusOption *options, const char *key) {
        for (const BusOption *o = options; o->key; o++)
                if (strcmp(o->key, key) == 0)
                        return (BusOption *) o;
        return NULL;
}

bool bus_option_seen(const BusOption *options, const char *key) {
        const BusOption *o = option_find(options, key);
        return o && o->seen;
}

int bus_read_options(sd_bus_message *msg, BusOption *options, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;

        for (;;) {
                const char *key, *contents;
                BusOption *o;

                r = sd_bus_message_enter_container(msg, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;

                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;

                o = option_find(options, key);
                if (!o)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown option '%s'", key);
                if (o->seen)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Option '%s' given twice", key);

                r = sd_bus_message_peek_type(msg, NULL, &contents);
                if (r < 0)
                        return r;
                if (!contents || strlen(contents) != 1 ||
                    (o->type == 'F'   ? contents[0] != 's' && !is_integer_type(contents[0]) :
                     strchr("tu", o->type) ? !is_integer_type(contents[0]) :
                                        contents[0] != o->type))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Option '%s' must be a %s, got a value of type '%s'",
                                                 key, type_name(o->type), contents ?: "?");

                if (is_integer_type(contents[0])) {
                        uint64_t max = o->type == 't' ? UINT64_MAX : UINT32_MAX, v = 0;
                        bool negative;

                        r = read_integer(msg, contents[0], &negative, &v);
                        if (r < 0)
                                return r;
                        if (negative || v > max)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Option '%s' must be from 0 to %" PRIu64 ", not %s%" PRIu64,
                                                         key, max, negative ? "-" : "", v);
                        if (o->type == 't')
                                *(uint64_t *) o->value = v;
                        else
                                *(uint32_t *) o->value = (uint32_t) v;
                        o->seen = true;
                        r = sd_bus_message_exit_container(msg);
                        if (r < 0)
                                return r;
                        continue;
                }

                switch (o->type) {
                case 's':
                        r = sd_bus_message_read(msg, "v", "s", (const char **) o->value);
                        break;
                case 'F':
                        {
                                const char *f;

                                r = sd_bus_message_read(msg, "v", "s", &f);
                                if (r >= 0 && strlen(f) != 4)
                                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                                 "Option '%s' must be four characters like \"YUYV\", not \"%s\"",
                                                                 key, f);
                                if (r >= 0)
                                        *(uint32_t *) o->value = (uint32_t) (uint8_t) f[0] |
                                                (uint32_t) (uint8_t) f[1] << 8 |
                                                (uint32_t) (uint8_t) f[2] << 16 |
                                                (uint32_t) (uint8_t) f[3] << 24;
                        }
                        break;
                case 'b': {
                        int b;
                        r = sd_bus_message_read(msg, "v", "b", &b);
                        *(bool *) o->value = b;
                        break;
                }
                default:
                        return -EINVAL;
                }
                if (r < 0)
                        return r;
                o->seen = true;

                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }

        return sd_bus_message_exit_container(msg);
}

static int on_expire(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        broker_expire(m->broker, now_usec());
        manager_schedule_expiry(m);
        return 0;
}

/* Arm the timer for the core's next deadline. Called after anything that
 * can add a deadline and after each expiry run; a timer that fires for a
 * deadline that went away early does no harm. */
void manager_schedule_expiry(Manager *m) {
        manager_arm_timer(m, &m->expire_timer, broker_next_deadline(m->broker), on_expire, "the expiry timer");
}

void strv_free_simple(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

void close_fds(int (*fds)[BB_PLANES_MAX]) {
        for (unsigned i = 0; i < BB_PLANES_MAX; i++)
                safe_close((*fds)[i]);
}
