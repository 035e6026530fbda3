/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers every handler uses: who is calling, how to read options, how core
 * errnos become D-Bus errors, and the expiry timer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bus.h"

uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

int bus_get_caller(Manager *m, sd_bus_message *msg, Caller *ret, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender;
        Client *c;
        uid_t uid;
        int r;

        sender = sd_bus_message_get_sender(msg);
        if (!sender)
                /* Only on a direct connection, which bufbrokerd does not offer yet. */
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Caller has no bus name");

        c = broker_find_client(m->broker, sender);
        if (c) {
                *ret = (Caller) { .name = c->name, .uid = c->uid };
                return 0;
        }
        if (m->cached_sender && strcmp(m->cached_sender, sender) == 0) {
                *ret = (Caller) { .name = m->cached_sender, .uid = m->cached_uid };
                return 0;
        }

        r = sd_bus_query_sender_creds(msg, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to get the caller's credentials: %m");
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to get the caller's uid: %m");

        free(m->cached_sender);
        m->cached_sender = strdup(sender);
        if (!m->cached_sender)
                return sd_bus_error_set_errno(error, -ENOMEM);
        m->cached_uid = uid;

        *ret = (Caller) { .name = m->cached_sender, .uid = uid };
        return 0;
}

int bus_map_broker_error(sd_bus_error *error, int r, const BrokerError *err) {
        static const struct bb_error_errno table[] = BB_ERROR_ERRNO_TABLE;
        const char *message = err && err->message[0] ? err->message : strerror(-r);

        if (r == -EINVAL)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s", message);
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].error == -r)
                        return sd_bus_error_setf(error, table[i].name, "%s", message);
        return sd_bus_error_set_errnof(error, r, "%s", message);
}

static const char *type_name(char type) {
        switch (type) {
        case 'b': return "boolean (b)";
        case 't': return "uint64 (t)";
        case 'u': return "uint32 (u)";
        case 's': return "string (s)";
        case 'F': return "fourcc string (s) or uint32 (u)";
        default:  return "?";
        }
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

                for (o = options; o->key; o++)
                        if (strcmp(o->key, key) == 0)
                                break;
                if (!o->key)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown option '%s'", key);
                if (o->seen)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Option '%s' given twice", key);

                r = sd_bus_message_peek_type(msg, NULL, &contents);
                if (r < 0)
                        return r;
                if (!contents || strlen(contents) != 1 ||
                    (o->type == 'F' ? !strchr("su", contents[0]) : contents[0] != o->type))
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Option '%s' must be a %s, got a value of type '%s'",
                                                 key, type_name(o->type), contents ?: "?");

                switch (o->type) {
                case 's':
                        r = sd_bus_message_read(msg, "v", "s", (const char **) o->value);
                        break;
                case 'F':
                        if (contents[0] == 'u')
                                r = sd_bus_message_read(msg, "v", "u", (uint32_t *) o->value);
                        else {
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
                case 't':
                        r = sd_bus_message_read(msg, "v", "t", (uint64_t *) o->value);
                        break;
                case 'u':
                        r = sd_bus_message_read(msg, "v", "u", (uint32_t *) o->value);
                        break;
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
        uint64_t next = broker_next_deadline(m->broker);
        int r;

        if (next == USEC_INFINITY) {
                if (m->expire_timer)
                        sd_event_source_set_enabled(m->expire_timer, SD_EVENT_OFF);
                return;
        }

        if (!m->expire_timer) {
                r = sd_event_add_time(m->event, &m->expire_timer, CLOCK_MONOTONIC, next, 0, on_expire, m);
                if (r < 0) {
                        fprintf(stderr, "Failed to add the expiry timer: %s\n", strerror(-r));
                        return;
                }
                return;
        }
        sd_event_source_set_time(m->expire_timer, next);
        sd_event_source_set_enabled(m->expire_timer, SD_EVENT_ONESHOT);
}

int log_errno(int r, const char *message) {
        fprintf(stderr, "bufbrokerd: %s: %s\n", message, strerror(-r));
        return r;
}

void strv_free_simple(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

void close_fds(int (*fds)[BUFFER_PLANES_MAX]) {
        for (unsigned i = 0; i < BUFFER_PLANES_MAX; i++)
                safe_close((*fds)[i]);
}
