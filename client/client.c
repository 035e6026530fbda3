/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The connection and the call path of libbufbroker: a bb_client wraps one
 * sd-bus connection. Every call that talks to the broker goes through
 * client_call(): it clears the client's last error, sends the message, keeps
 * the D-Bus error's name and message for bb_client_error_*() and turns the
 * error into a negative errno, first through the protocol's table, then
 * through sd-bus's standard map. Signals (BufferReleased) are dispatched
 * from here too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "libbufbroker-private.h"
#include "macro.h"

/* ------------------------------------------------------------ errors --- */

void client_clear_error(bb_client *c) {
        free(c->error_name);
        c->error_name = NULL;
        free(c->error_message);
        c->error_message = NULL;
}

/* The errno a D-Bus error stands for. The protocol's own names come first;
 * UnknownObject on a buffer's path means the buffer is gone (or was never
 * visible), which callers know as -ENOENT, not sd-bus's -EBADR. */
static int error_to_errno(const sd_bus_error *error, bool buffer_object) {
        static const struct bb_error_errno table[] = BB_ERROR_ERRNO_TABLE;

        if (!sd_bus_error_is_set(error))
                return -EIO;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (sd_bus_error_has_name(error, table[i].name))
                        return -table[i].error;
        if (buffer_object &&
            (sd_bus_error_has_name(error, SD_BUS_ERROR_UNKNOWN_OBJECT) ||
             sd_bus_error_has_name(error, SD_BUS_ERROR_UNKNOWN_INTERFACE)))
                return -ENOENT;
        /* The daemon's own failures (kernel, driver): sd-bus would say
         * EACCES, which callers would take for a refusal. */
        if (sd_bus_error_has_name(error, BB_ERROR_FAILED))
                return -EIO;
        return -sd_bus_error_get_errno(error);
}

/* Send m and wait for the reply; on failure record the error in c. */
int client_call(bb_client *c, sd_bus_message *m, bool buffer_object, sd_bus_message **ret_reply) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call(c->bus, m, 0, &error, ret_reply);
        if (r < 0) {
                /* sd-bus dresses local errnos up as "System.Error.E*": those
                 * are no D-Bus error, and r says all they say. */
                if (sd_bus_error_is_set(&error) && strncmp(error.name, "System.Error.", 13) != 0) {
                        r = error_to_errno(&error, buffer_object);
                        c->error_name = strdup(error.name);
                        c->error_message = error.message ? strdup(error.message) : NULL;
                }
                sd_bus_error_free(&error);
                return r;
        }
        return 0;
}

int client_new_method_call(bb_client *c, const char *path, const char *interface, const char *member,
                           sd_bus_message **ret) {
        return sd_bus_message_new_method_call(c->bus, ret, BB_BUS_NAME, path, interface, member);
}

/* ------------------------------------------------------------ client --- */

/* Takes over *bus on success (and leaves *bus NULL). */
static int client_new_from_bus(sd_bus **bus, bb_client **ret) {
        bb_client *c;
        int r;

        /* sd-bus negotiates fd passing by default; a bus that refuses it is
         * useless to us, so find out now rather than at the first call. This
         * also completes the connection, so a dead bus fails here. */
        r = sd_bus_can_send(*bus, SD_BUS_TYPE_UNIX_FD);
        if (r < 0)
                return r;
        if (r == 0)
                return -EOPNOTSUPP;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->bus = TAKE_PTR(*bus);
        *ret = c;
        return 0;
}

_public_ int bb_client_new(bb_client **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        return client_new_from_bus(&bus, ret);
}

_public_ int bb_client_new_user(bb_client **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = sd_bus_open_user(&bus);
        if (r < 0)
                return r;
        return client_new_from_bus(&bus, ret);
}

_public_ int bb_client_new_address(bb_client **ret, const char *address) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (!ret || !address || !*address)
                return -EINVAL;
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r < 0)
                return r;
        r = sd_bus_set_bus_client(bus, 1);
        if (r < 0)
                return r;
        r = sd_bus_negotiate_fds(bus, 1);
        if (r < 0)
                return r;
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        return client_new_from_bus(&bus, ret);
}

_public_ int bb_client_open_private(bb_client *c, bb_client **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int fd, copy, r;

        if (!c || !ret || c->is_private)
                return -EINVAL;
        client_clear_error(c);

        r = client_new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "OpenPrivateConnection", &m);
        if (r < 0)
                return r;
        r = client_call(c, m, false, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "h", &fd);
        if (r < 0)
                return r;
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;

        /* A peer-to-peer connection: no bus, no Hello, and the daemon at the
         * other end decides who we are from the bus call above. */
        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_fd(bus, copy, copy);
        if (r < 0) {
                close(copy);
                return r;
        }
        r = sd_bus_negotiate_fds(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r >= 0)
                r = client_new_from_bus(&bus, ret);
        if (r >= 0)
                (*ret)->is_private = true;
        return r;
}

_public_ bb_client *bb_client_ref(bb_client *c) {
        if (c)
                c->n_ref++;
        return c;
}

_public_ bb_client *bb_client_unref(bb_client *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        sd_bus_slot_unref(c->monitor_slot);
        sd_bus_flush_close_unref(c->bus);
        client_clear_error(c);
        free(c);
        return NULL;
}

_public_ void bb_client_unrefp(bb_client **p) {
        if (p && *p)
                bb_client_unref(*p);
}

_public_ const char *bb_client_error_name(bb_client *c) {
        return c ? c->error_name : NULL;
}

_public_ const char *bb_client_error_message(bb_client *c) {
        return c ? c->error_message : NULL;
}

_public_ int bb_client_get_fd(bb_client *c) {
        if (!c)
                return -EINVAL;
        return sd_bus_get_fd(c->bus);
}

_public_ int bb_client_get_events(bb_client *c) {
        if (!c)
                return -EINVAL;
        return sd_bus_get_events(c->bus);
}

_public_ int bb_client_process(bb_client *c, uint64_t timeout_usec) {
        bool processed = false;
        int r;

        if (!c)
                return -EINVAL;
        client_clear_error(c);

        for (;;) {
                r = sd_bus_process(c->bus, NULL);
                if (r < 0)
                        return r;
                if (r > 0) {
                        processed = true;
                        continue;
                }
                if (processed || timeout_usec == 0)
                        return processed;

                r = sd_bus_wait(c->bus, timeout_usec);
                if (r < 0)
                        return r;
                if (r == 0)
                        return 0;
                /* Input arrived: process it, but do not wait again. */
                timeout_usec = 0;
        }
}

static int on_buffer_released(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        bb_client *c = userdata;
        const char *path, *reason = NULL;
        uint64_t id;
        int r;

        r = sd_bus_message_read(m, "ot", &path, &id);
        if (r < 0)
                return 0; /* a malformed signal is not worth failing the loop */
        /* An older broker sends no reason. */
        if (sd_bus_message_peek_type(m, NULL, NULL) > 0 && sd_bus_message_read(m, "s", &reason) < 0)
                reason = NULL;
        if (c->monitor_callback)
                c->monitor_callback(path, id, c->monitor_userdata);
        if (c->monitor_reason_callback)
                c->monitor_reason_callback(path, id, reason ?: "", c->monitor_userdata);
        return 0;
}

/* The broker sends its signals only to holders and listeners: listen, once
 * the match is in (so that nothing is missed in between). An older broker
 * has no such method: it broadcasts, and the match is all it takes. */
static int monitor_subscribe(bb_client *c, const char *member) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = client_new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, member, &m);
        if (r < 0)
                return r;
        r = client_call(c, m, false, NULL);
        if (r < 0 && c->error_name && strcmp(c->error_name, SD_BUS_ERROR_UNKNOWN_METHOD) == 0) {
                client_clear_error(c);
                return 0;
        }
        return r;
}

static int monitor_set(bb_client *c, bb_released_func callback, bb_released_reason_func reason_callback,
                       void *userdata) {
        sd_bus_slot *slot = NULL;
        int r;

        if (!c)
                return -EINVAL;
        client_clear_error(c);

        if (!callback && !reason_callback) {
                if (c->monitor_slot)
                        (void) monitor_subscribe(c, "Unsubscribe");
                c->monitor_slot = sd_bus_slot_unref(c->monitor_slot);
                c->monitor_callback = NULL;
                c->monitor_reason_callback = NULL;
                c->monitor_userdata = NULL;
                return 0;
        }

        if (c->is_private)
                return -EOPNOTSUPP;     /* not here (yet): monitor on the bus connection */
        if (!c->monitor_slot) {
                /* Synchronous AddMatch: when this returns, no signal can be missed. */
                r = sd_bus_match_signal(c->bus, &slot, BB_BUS_NAME, NULL, BB_MANAGER_INTERFACE,
                                        "BufferReleased", on_buffer_released, c);
                if (r < 0)
                        return r;
                r = monitor_subscribe(c, "Subscribe");
                if (r < 0) {
                        sd_bus_slot_unref(slot);
                        return r;
                }
                c->monitor_slot = slot;
        }
        c->monitor_callback = callback;
        c->monitor_reason_callback = reason_callback;
        c->monitor_userdata = userdata;
        return 0;
}

_public_ int bb_client_monitor(bb_client *c, bb_released_func callback, void *userdata) {
        return monitor_set(c, callback, NULL, userdata);
}

_public_ int bb_client_monitor_reason(bb_client *c, bb_released_reason_func callback, void *userdata) {
        return monitor_set(c, NULL, callback, userdata);
}
