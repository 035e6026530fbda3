/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Change notification without leaks. Every signal about a buffer
 * (InterfacesAdded, InterfacesRemoved, PropertiesChanged, BufferReleased)
 * goes out as one copy per connection that may see that buffer, with that
 * connection as its destination: the listeners whose uid may see it (its
 * owner, root, the daemon's uid; the rule of ListBuffers), and for
 * PropertiesChanged and BufferReleased also its holders (a proxy of the
 * buffer object keeps its cache by the one, and the other tells a holder
 * its buffer is gone). A broadcast would tell every uid on the bus the ids,
 * names and owners of everyone's buffers as they come and go.
 *
 * InterfacesAdded and InterfacesRemoved go to listeners only: an object
 * manager client listens by construction (GetManagedObjects), and two more
 * messages per buffer to every creator that does not listen halved the
 * create+release rate a uid keeps under another's flood (tests/hostile).
 *
 * A connection listens from its Subscribe() or GetManagedObjects() (so that
 * GDBusObjectManagerClient and the like work unchanged) until Unsubscribe()
 * or until it goes (bus-peer.c forgets it). Listeners are bounded per uid
 * and in all, the total shared fairly among uids as the broker's global
 * limits are: each costs a message per change it may see.
 */
#include <inttypes.h>
#include <string.h>

#include "bus.h"

/* ---------------------------------------------------------- listeners --- */

static ListenerUid *listener_uid_get(Manager *m, uid_t uid, bool create) {
        ListenerUid *u;

        TAILQ_FOREACH(u, &m->listener_uids, link)
                if (u->uid == uid)
                        return u;
        if (!create)
                return NULL;
        u = calloc(1, sizeof(*u));
        if (!u)
                return NULL;
        u->uid = uid;
        TAILQ_INSERT_TAIL(&m->listener_uids, u, link);
        m->n_listener_uids++;
        return u;
}

/* Make @p a listener (again: nothing changes). */
static int listen_start(Manager *m, Peer *p, sd_bus_error *error) {
        ListenerUid *u;
        unsigned have;

        if (p->listening)
                return 0;
        u = listener_uid_get(m, p->uid, false);
        have = u ? u->n : 0;
        if (have >= LISTENERS_PER_UID)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "uid %u has %u connections listening to bufbrokerd, the most one uid may have; "
                                         "close one or call Unsubscribe() on it",
                                         (unsigned) p->uid, have);
        if (!fair_share_allows(LISTENERS_MAX, m->n_listeners, have, 1, m->n_listener_uids, have > 0))
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "uid %u has %u of the %u connections listening to bufbrokerd "
                                         "(limit %u, shared fairly among %u uids)",
                                         (unsigned) p->uid, have, m->n_listeners, LISTENERS_MAX,
                                         m->n_listener_uids + (have == 0));
        u = listener_uid_get(m, p->uid, true);
        if (!u)
                return -ENOMEM;
        u->n++;
        m->n_listeners++;
        p->listening = true;
        TAILQ_INSERT_TAIL(&m->listeners, p, listener_link);
        return 0;
}

static void listen_stop(Manager *m, Peer *p) {
        ListenerUid *u;

        if (!p->listening)
                return;
        TAILQ_REMOVE(&m->listeners, p, listener_link);
        p->listening = false;
        m->n_listeners--;
        u = listener_uid_get(m, p->uid, false);
        if (u && --u->n == 0) {
                TAILQ_REMOVE(&m->listener_uids, u, link);
                m->n_listener_uids--;
                free(u);
        }
}

void notify_forget_peer(Manager *m, Peer *p) {
        listen_stop(m, p);
}

/* The caller's peer, known (the queue hands out calls only once it is). */
static int caller_peer(Manager *m, sd_bus_message *msg, Peer **ret, sd_bus_error *error) {
        Peer *p = peer_of_message(m, msg);

        if (!p || !p->creds_known)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED,
                                        "bufbrokerd does not know who the caller is");
        *ret = p;
        return 0;
}

int bus_method_subscribe(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        Peer *p = NULL;
        int r;

        r = caller_peer(m, msg, &p, error);
        if (r < 0)
                return r;
        r = listen_start(m, p, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, NULL);
}

int bus_method_unsubscribe(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        Peer *p = NULL;
        int r;

        r = caller_peer(m, msg, &p, error);
        if (r < 0)
                return r;
        listen_stop(m, p);
        return sd_bus_reply_method_return(msg, NULL);
}

/* --------------------------------------------------- GetManagedObjects --- */

/* A buffer as the ObjectManager shows it (GetManagedObjects' entries and
 * InterfacesAdded's arguments): its path, then its one interface with its
 * properties, "oa{sa{sv}}". */
static int append_object(sd_bus_message *m, Buffer *buf) {
        int r;

        r = sd_bus_message_append(m, "o", buf->path);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sa{sv}}");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'e', "sa{sv}");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", BB_BUFFER_INTERFACE);
        if (r >= 0)
                r = bus_append_buffer_properties(m, buf);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* sd-bus serves org.freedesktop.DBus.ObjectManager itself and takes no
 * vtable for it; an object callback runs before its own answer. Ours makes
 * the caller a listener first, so that after the reply no change is missed,
 * and shows only the buffers the caller may see. */
static int on_manager_object(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        const char *signature;
        Caller caller;
        Buffer *buf;
        Peer *p = NULL;
        int r;

        if (!sd_bus_message_is_method_call(msg, BB_OBJECT_MANAGER_INTERFACE, "GetManagedObjects"))
                return 0;
        signature = sd_bus_message_get_signature(msg, true);
        if (signature && signature[0])
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "GetManagedObjects takes no arguments, got signature '%s'", signature);

        r = caller_peer(m, msg, &p, error);
        if (r < 0)
                return r;
        r = bus_get_caller(m, msg, &caller, error);
        if (r < 0)
                return r;
        r = listen_start(m, p, error);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "{oa{sa{sv}}}");
        BROKER_FOREACH_BUFFER(buf, m->broker) {
                if (r < 0)
                        break;
                if (!broker_may_see(m->broker, &caller, buf))
                        continue;
                r = sd_bus_message_open_container(reply, 'e', "oa{sa{sv}}");
                if (r >= 0)
                        r = append_object(reply, buf);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        return r < 0 ? r : 1;
}

int bus_notify_register(Manager *m, sd_bus *bus) {
        int r;

        /* For the introspection (and anything else sd-bus answers there). */
        r = sd_bus_add_object_manager(bus, NULL, BB_MANAGER_PATH);
        if (r < 0)
                return r;
        return sd_bus_add_object(bus, NULL, BB_MANAGER_PATH, on_manager_object, m);
}

/* ------------------------------------------------------------- signals --- */

typedef struct Signal {
        const char *path;
        const char *interface;
        const char *member;
        int (*append)(sd_bus_message *s, Buffer *buf, const void *data);
        const void *data;
        bool listeners_only;            /* not to holders that do not listen */
} Signal;

static void send_signal(Manager *m, sd_bus *bus, const char *destination, Buffer *buf, const Signal *sig) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
        int r;

        r = sd_bus_message_new_signal(bus, &s, sig->path, sig->interface, sig->member);
        if (r >= 0 && destination)
                r = sd_bus_message_set_destination(s, destination);
        if (r >= 0)
                r = sig->append(s, buf, sig->data);
        if (r >= 0)
                r = sd_bus_send(bus, s, NULL);
        if (r < 0 && r != -ENOTCONN && r != -ECONNRESET)
                log_warning_errno(r, "Failed to send %s of buffer %" PRIu64 " to %s", sig->member, buf->id,
                                  destination ?: "a direct connection");
}

/* To a bus connection by its unique name, or on a direct connection (no
 * destination there: it has one peer). */
static void send_to_peer(Manager *m, Peer *p, Buffer *buf, const Signal *sig) {
        if (p->is_direct) {
                /* Not while it closes (its holds go then): nobody to tell. */
                if (p->direct && sd_bus_is_open(p->direct) > 0)
                        send_signal(m, p->direct, NULL, buf, sig);
        } else if (m->bus)
                send_signal(m, m->bus, p->name, buf, sig);
}

static bool peer_may_see(Manager *m, Peer *p, Buffer *buf) {
        Caller caller = { .name = p->name, .uid = p->uid };

        return p->creds_known && broker_may_see(m->broker, &caller, buf);
}

/* One copy to each listener that may see @buf, and (unless the signal is
 * for listeners only) to each holder that is no listener (a listening
 * holder may see it: it was told above). */
static void notify(Manager *m, Buffer *buf, const Signal *sig) {
        Peer *p = NULL;
        Hold *h;

        TAILQ_FOREACH(p, &m->listeners, listener_link)
                if (peer_may_see(m, p, buf))
                        send_to_peer(m, p, buf, sig);
        if (sig->listeners_only)
                return;
        TAILQ_FOREACH(h, &buf->holds, by_buffer) {
                const char *name = h->client->name;

                p = peer_find(m, name);
                if (p && p->listening)
                        continue;
                if (p)
                        send_to_peer(m, p, buf, sig);
                else if (name[0] == ':' && m->bus)
                        /* A holder from before a restart that has not called since. */
                        send_signal(m, m->bus, name, buf, sig);
        }
}

static int append_interfaces_added(sd_bus_message *s, Buffer *buf, const void *data) {
        return append_object(s, buf);
}

static int append_interfaces_removed(sd_bus_message *s, Buffer *buf, const void *data) {
        return sd_bus_message_append(s, "oas", buf->path, 1, BB_BUFFER_INTERFACE);
}

static int append_buffer_released(sd_bus_message *s, Buffer *buf, const void *data) {
        return sd_bus_message_append(s, "ots", buf->path, buf->id, (const char *) data);
}

static int append_properties_changed(sd_bus_message *s, Buffer *buf, const void *data) {
        const char *property = data;
        bool value = strcmp(property, BB_PROP_FROZEN) == 0 ? buf->frozen : buf->persistent;

        return sd_bus_message_append(s, "sa{sv}as", BB_BUFFER_INTERFACE, 1, property, "b", value, 0);
}

void notify_buffer_added(Manager *m, Buffer *buf) {
        notify(m, buf, &(Signal) {
                BB_MANAGER_PATH, BB_OBJECT_MANAGER_INTERFACE, "InterfacesAdded", append_interfaces_added,
                .listeners_only = true,
        });
}

static const char *reason_name(BrokerDropReason reason) {
        switch (reason) {
        case BROKER_DROP_RELEASED:      return BB_REASON_RELEASED;
        case BROKER_DROP_EXPIRED:       return BB_REASON_EXPIRED;
        case BROKER_DROP_HOLDERS_GONE:  return BB_REASON_HOLDERS_GONE;
        case BROKER_DROP_LEASE:         return BB_REASON_LEASE;
        default:                        return BB_REASON_UNDONE;
        }
}

void notify_buffer_dropped(Manager *m, Buffer *buf, BrokerDropReason reason) {
        /* Why first, then that the object is gone: a client that keeps
         * only an object cache still sees the reason on the way. */
        notify(m, buf, &(Signal) {
                BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "BufferReleased", append_buffer_released,
                reason_name(reason),
        });
        notify(m, buf, &(Signal) {
                BB_MANAGER_PATH, BB_OBJECT_MANAGER_INTERFACE, "InterfacesRemoved", append_interfaces_removed,
                .listeners_only = true,
        });
}

void notify_buffer_changed(Manager *m, Buffer *buf, const char *property) {
        notify(m, buf, &(Signal) {
                buf->path, BB_PROPERTIES_INTERFACE, "PropertiesChanged", append_properties_changed, property,
        });
}
