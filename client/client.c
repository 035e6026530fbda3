/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The connection and the call path of libbufbroker: a bb_client wraps one
 * sd-bus connection. Every call that talks to the broker goes through
 * client_call(): it clears the client's last error, sends the message, keeps
 * the D-Bus error's name and message for bb_client_error_*() and turns the
 * error into a negative errno, first through the protocol's table, then
 * through sd-bus's standard map. Signals (BufferReleased) are dispatched
 * from here too.
 *
 * Asynchronous calls (bb_call) go through client_call_async(): the same
 * messages as the blocking calls, the same error map, and a reply handler
 * (call->finish, in buffer.c) that reads the reply as the blocking call
 * would and hands the result to the user's callback. A cancelled call is
 * never called back; when its reply still matters (it created buffers) the
 * call stays on the client's list until the reply came and was undone.
 * The event loop side: bb_client_attach_event() (sd-event) or the
 * get_fd/get_events/get_timeout/process quartet for any other loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

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

/* sd-bus dresses local errnos up as "System.Error.E*": those are no D-Bus
 * error, and the errno says all they say. */
static bool is_bus_error(const sd_bus_error *error) {
        return sd_bus_error_is_set(error) && strncmp(error->name, "System.Error.", 13) != 0;
}

/* Send m and wait for the reply; on failure record the error in c. */
int client_call(bb_client *c, sd_bus_message *m, bool buffer_object, sd_bus_message **ret_reply) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call(c->bus, m, 0, &error, ret_reply);
        if (r < 0) {
                if (is_bus_error(&error)) {
                        r = error_to_errno(&error, buffer_object);
                        c->error_name = strdup(error.name);
                        c->error_message = error.message ? strdup(error.message) : NULL;
                }
                sd_bus_error_free(&error);
                return r;
        }
        return 0;
}

/* ------------------------------------------------------------- calls --- */

static void call_link(bb_client *c, bb_call *call) {
        call->pending = true;
        call->n_ref++;
        call->prev = NULL;
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
}

/* Off the client's list, the slot dropped (sd-bus calls nothing for it any
 * more; safe from within the slot's own callback, sd-bus holds a reference
 * then), and the client's reference dropped. */
static void call_finish_pending(bb_call *call) {
        bb_client *c = call->client;

        if (!call->pending)
                return;
        if (call->prev)
                call->prev->next = call->next;
        else
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        call->next = call->prev = NULL;
        call->slot = sd_bus_slot_unref(call->slot);
        call->pending = false;
        call_unref_internal(call);
}

int client_call_new(bb_client *c, call_finish_func finish, void (*callback)(void), void *userdata,
                    bb_call **ret) {
        bb_call *call;

        call = calloc(1, sizeof(*call));
        if (!call)
                return -ENOMEM;
        call->n_ref = 1;        /* the creator's, until client_call_async() */
        call->client = c;
        call->finish = finish;
        call->callback = callback;
        call->userdata = userdata;
        *ret = call;
        return 0;
}

bb_call *call_unref_internal(bb_call *call) {
        if (!call || --call->n_ref > 0)
                return NULL;
        free(call->name);
        free(call->path);
        free(call);
        return NULL;
}

/* The reply of call, which is off the client's list: undo it when the call
 * was cancelled, else read it and call back. */
static void call_deliver(bb_call *call, sd_bus_message *reply) {
        const sd_bus_error *error = sd_bus_message_get_error(reply);
        int r;

        call->deferred = false;
        if (call->cancelled) {
                if (!error && call->undo)
                        call->undo(call, reply);
        } else if (error) {
                bool ours = is_bus_error(error);

                r = ours ? error_to_errno(error, call->buffer_object) : -sd_bus_error_get_errno(error);
                if (r >= 0)
                        r = -EIO;
                call->finish(call, r, ours ? error->name : NULL, ours ? error->message : NULL, NULL);
        } else
                call->finish(call, 0, NULL, NULL, reply);
}

static int on_call_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        bb_call *call = userdata;
        bb_client *c = call->client;

        /* Keep call alive through the callback (which may drop the user's
         * reference, or the client's last) and take it off the list first:
         * a client that closes from within the callback has nothing left
         * to cancel. */
        call->n_ref++;
        call_finish_pending(call);

        if (!call->internal && !call->cancelled && client_defer(c, reply, call))
                return 0;       /* the reference went with it */
        call_deliver(call, reply);
        call_unref_internal(call);
        return 0;
}

static int on_buffer_released(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

bool client_defer(bb_client *c, sd_bus_message *m, bb_call *call) {
        deferred *d;

        /* Once something waits, everything after it waits too: callbacks
         * run in the order their messages came. A blocking call from a
         * callback that is being delivered holds back what comes meanwhile
         * as well. */
        if (c->hold_callbacks == 0 && (c->delivering || !c->deferred_head))
                return false;
        d = calloc(1, sizeof(*d));
        if (!d)
                return false;   /* better early than never */
        d->message = sd_bus_message_ref(m);
        d->call = call;
        if (call)
                call->deferred = true;
        if (c->deferred_tail)
                c->deferred_tail->next = d;
        else
                c->deferred_head = d;
        c->deferred_tail = d;
        if (c->defer_source)
                (void) sd_event_source_set_enabled(c->defer_source, SD_EVENT_ONESHOT);
        return true;
}

static deferred *deferred_pop(bb_client *c) {
        deferred *d = c->deferred_head;

        if (d) {
                c->deferred_head = d->next;
                if (!c->deferred_head)
                        c->deferred_tail = NULL;
        }
        return d;
}

/* Run the callbacks that waited. The caller holds a reference on c. */
static int client_deliver_deferred(bb_client *c) {
        bool was_delivering = c->delivering;   /* a callback may process c again */
        deferred *d;
        int n = 0;

        if (c->hold_callbacks > 0)
                return 0;
        c->delivering = true;
        while ((d = deferred_pop(c))) {
                if (d->call) {
                        call_deliver(d->call, d->message);
                        call_unref_internal(d->call);
                } else
                        (void) on_buffer_released(d->message, c, NULL);
                sd_bus_message_unref(d->message);
                free(d);
                n++;
        }
        c->delivering = was_delivering;
        return n;
}

static int on_defer(sd_event_source *s, void *userdata) {
        bb_client *c = bb_client_ref(userdata);

        (void) client_deliver_deferred(c);
        bb_client_unref(c);
        return 0;
}

int client_call_async(bb_client *c, sd_bus_message *m, bb_call *call, bb_call **ret_call) {
        int r;

        /* The same reply timeout as the blocking calls (sd-bus's default). */
        r = sd_bus_call_async(c->bus, &call->slot, m, on_call_reply, call, 0);
        if (r < 0)
                return r;
        call_link(c, call);
        /* The creator's reference becomes the user's, or goes. */
        if (ret_call)
                *ret_call = call;
        else
                call_unref_internal(call);
        return 0;
}

/* The callback is never called after this. A reply that must be undone
 * keeps the call on the client's list until it came. */
static void call_cancel(bb_call *call) {
        call->cancelled = true;
        call->callback = NULL;
        if (!call->undo)
                call_finish_pending(call);
}

_public_ bb_call *bb_call_unref(bb_call *call) {
        if (!call)
                return NULL;
        if ((call->pending || call->deferred) && !call->cancelled)
                call_cancel(call);
        return call_unref_internal(call);
}

_public_ void bb_call_unrefp(bb_call **p) {
        if (p && *p)
                bb_call_unref(*p);
}

_public_ int bb_call_is_pending(bb_call *call) {
        if (!call)
                return -EINVAL;
        return (call->pending || call->deferred) && !call->cancelled;
}

void client_forget_buffer(bb_client *c, bb_buffer *buf) {
        for (bb_call *call = c->calls; call; call = call->next)
                if (call->buf == buf)
                        call->buf = NULL;
        for (deferred *d = c->deferred_head; d; d = d->next)
                if (d->call && d->call->buf == buf)
                        d->call->buf = NULL;
}

/* The client closes: no callback is called any more. Replies that create
 * what would outlive the connection (persistent buffers) are waited for
 * and undone; everything else the broker drops with the connection. */
static void client_cancel_calls(bb_client *c) {
        bb_call *call, *next;
        bool wait = false;
        deferred *d;

        /* Replies that waited: undone if they must be, never called back. */
        c->defer_source = sd_event_source_disable_unref(c->defer_source);
        while ((d = deferred_pop(c))) {
                if (d->call) {
                        d->call->cancelled = true;
                        d->call->callback = NULL;
                        call_deliver(d->call, d->message);
                        call_unref_internal(d->call);
                }
                sd_bus_message_unref(d->message);
                free(d);
        }

        for (call = c->calls; call; call = next) {
                next = call->next;
                call->cancelled = true;
                call->callback = NULL;
                if (call->undo_on_close)
                        wait = true;
                else
                        call_finish_pending(call);
        }
        /* sd_bus_process() refuses to run from within a callback of the same
         * bus (-EBUSY): then the persistent buffers stay until their TTL or
         * a Release by id, as after a crash. */
        while (wait && c->calls) {
                int r = sd_bus_process(c->bus, NULL);
                if (r > 0)
                        continue;
                if (r == 0)
                        r = sd_bus_wait(c->bus, UINT64_MAX);
                if (r < 0 && r != -EINTR)
                        break;
        }
        while (c->calls)
                call_finish_pending(c->calls);
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
        c->monitor_slot = sd_bus_slot_unref(c->monitor_slot);
        client_cancel_calls(c);
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
        int r;

        if (!c)
                return -EINVAL;
        r = sd_bus_get_events(c->bus);
        if (r < 0)
                return r;
        /* sd-bus leaves POLLIN out while messages it has read wait to be
         * dispatched (a blocking call read them while it waited for its
         * reply): the socket may then be empty, and a loop that trusts the
         * events alone would sleep. bb_client_get_timeout() is 0 then; and
         * asking for POLLIN costs nothing, bb_client_process() empties that
         * queue whenever it runs. */
        return r | POLLIN;
}

_public_ int bb_client_get_timeout(bb_client *c, uint64_t *ret_usec) {
        uint64_t t;
        int r;

        if (!c || !ret_usec)
                return -EINVAL;
        /* UINT64_MAX: no timeout; 0: now (messages read but not dispatched
         * yet); else the CLOCK_MONOTONIC instant the first reply awaited
         * times out. */
        r = sd_bus_get_timeout(c->bus, &t);
        if (r < 0)
                return r;
        *ret_usec = c->deferred_head ? 0 : r > 0 ? t : UINT64_MAX;
        return 0;
}

_public_ int bb_client_attach_event(bb_client *c, struct sd_event *e, int64_t priority) {
        int r;

        if (!c || priority < INT32_MIN || priority > INT32_MAX)
                return -EINVAL;
        /* NULL: the thread's default loop, as sd_bus_attach_event() does. */
        r = sd_bus_attach_event(c->bus, e, (int) priority);
        if (r < 0)
                return r;
        /* Callbacks held back by a blocking call run from here. */
        r = sd_event_add_defer(sd_bus_get_event(c->bus), &c->defer_source, on_defer, c);
        if (r >= 0)
                r = sd_event_source_set_priority(c->defer_source, priority);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->defer_source, c->deferred_head ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
        if (r < 0) {
                c->defer_source = sd_event_source_disable_unref(c->defer_source);
                (void) sd_bus_detach_event(c->bus);
                return r;
        }
        (void) sd_event_source_set_description(c->defer_source, "bufbroker-deferred");
        return 0;
}

_public_ int bb_client_detach_event(bb_client *c) {
        int r;

        if (!c)
                return -EINVAL;
        c->defer_source = sd_event_source_disable_unref(c->defer_source);
        r = sd_bus_detach_event(c->bus);
        return r < 0 ? r : 0;
}

static int client_process(bb_client *c, uint64_t timeout_usec);

_public_ int bb_client_process(bb_client *c, uint64_t timeout_usec) {
        int r;

        if (!c)
                return -EINVAL;
        client_clear_error(c);

        /* A callback may drop the caller's last reference. */
        bb_client_ref(c);
        r = client_process(c, timeout_usec);
        bb_client_unref(c);
        return r;
}

static int client_process(bb_client *c, uint64_t timeout_usec) {
        bool processed = client_deliver_deferred(c) > 0;
        int r;

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

        if (client_defer(c, m, NULL))
                return 0;
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

        if (!c->monitor_slot) {
                /* Synchronous AddMatch: when this returns, no signal can be
                 * missed. A private connection has no bus and no sender
                 * names: everything on it comes from the broker. */
                r = sd_bus_match_signal(c->bus, &slot, c->is_private ? NULL : BB_BUS_NAME, NULL,
                                        BB_MANAGER_INTERFACE,
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
