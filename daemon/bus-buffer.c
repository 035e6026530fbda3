/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.bufbroker.Buffer1 on /org/bufbroker/Broker1/buffer/<id>: one object per
 * buffer, served by a fallback vtable whose find callback maps the path to
 * the core's Buffer. Properties are visible to whoever may see the buffer
 * (owner uid, root, holders); methods enforce ownership in the core.
 */
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include "bus.h"

/* "/org/bufbroker/Broker1/buffer/42" → 42; 0 for anything else. */
static uint64_t buffer_id_from_path(const char *path) {
        uint64_t id;

        return bb_buffer_path_to_id(path, &id) < 0 ? 0 : id;
}

static int buffer_object_find(sd_bus *bus, const char *path, const char *interface,
                              void *userdata, void **ret_found, sd_bus_error *error) {
        Manager *m = userdata;
        sd_bus_message *msg;
        const char *iface;
        Caller caller;
        Buffer *buf;
        uint64_t id;
        int r;

        if (strcmp(path, BB_BUFFER_PATH_PREFIX) == 0)
                return 0;       /* the parent node itself is no buffer */

        id = buffer_id_from_path(path);
        buf = id > 0 ? broker_find_buffer(m->broker, id) : NULL;
        if (!buf)
                return sd_bus_error_setf(error, BB_ERROR_NO_SUCH_BUFFER,
                                         "No buffer at %s", path);

        /* Reading a property is seeing the buffer: checked once here, for
         * Get and GetAll alike. Methods check what each allows in the core. */
        msg = sd_bus_get_current_message(bus);
        iface = msg ? sd_bus_message_get_interface(msg) : NULL;
        if (iface && strcmp(iface, "org.freedesktop.DBus.Properties") == 0) {
                r = bus_get_caller(m, msg, &caller, error);
                if (r < 0)
                        return r;
                if (!broker_may_see(m->broker, &caller, buf))
                        return sd_bus_error_setf(error, BB_ERROR_NOT_OWNER,
                                                 "Buffer %" PRIu64 " belongs to uid %u; only its owner, root and its holders may read it",
                                                 buf->id, (unsigned) buf->owner_uid);
        }
        *ret_found = buf;
        return 1;
}

/* A call on a path where no buffer lives fails with NoSuchBuffer, whatever
 * it calls (the contract). The vtable's find callback says so only to the
 * calls that reach it (Buffer1's members and properties): for anything else
 * sd-bus just asks it whether the object exists, and answers with the bare
 * errno of its error (IOError, "Input/output error"). Object callbacks run
 * before the vtables, for every call under the prefix. */
static int buffer_missing(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *path = sd_bus_message_get_path(msg);
        uint64_t id;

        if (!path || strcmp(path, BB_BUFFER_PATH_PREFIX) == 0)
                return 0;
        id = buffer_id_from_path(path);
        if (id > 0 && broker_find_buffer(m->broker, id))
                return 0;       /* the vtable serves it */
        return sd_bus_error_setf(error, BB_ERROR_NO_SUCH_BUFFER, "No buffer at %s", path);
}

static int buffer_node_enumerator(sd_bus *bus, const char *path, void *userdata,
                                  char ***ret_nodes, sd_bus_error *error) {
        Manager *m = userdata;
        sd_bus_message *msg = sd_bus_get_current_message(bus);
        Caller caller;
        Buffer *buf;
        char **nodes;
        size_t n = 0;
        int r;

        if (!msg)
                return -EINVAL;
        r = bus_get_caller(m, msg, &caller, error);
        if (r < 0)
                return r;

        nodes = calloc(m->broker->stats.buffers + 1, sizeof(char *));
        if (!nodes)
                return -ENOMEM;
        BROKER_FOREACH_BUFFER(buf, m->broker) {
                if (!broker_may_see(m->broker, &caller, buf))
                        continue;
                nodes[n] = strdup(buf->path);
                if (!nodes[n]) {
                        while (n > 0)
                                free(nodes[--n]);
                        free(nodes);
                        return -ENOMEM;
                }
                n++;
        }
        *ret_nodes = nodes;
        return 0;
}

/* Buffer1 methods all start the same way: who calls, and on what. */
static int get_caller(sd_bus_message *msg, Buffer *buf, Caller *ret, sd_bus_error *error) {
        Manager *m = buf->broker->userdata;
        return bus_get_caller(m, msg, ret, error);
}

static int method_release(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Buffer *buf = userdata;
        Broker *b = buf->broker;
        BrokerError err = {};
        Caller caller;
        int r;

        r = get_caller(msg, buf, &caller, error);
        if (r < 0)
                return r;

        /* May free buf (and emit BufferReleased before this reply). */
        r = broker_release(b, &caller, buf, &err);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);

        return sd_bus_reply_method_return(msg, NULL);
}

static int method_share(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Buffer *buf = userdata;
        Handout h;
        Manager *m = buf->broker->userdata;
        ShareOptions opts = { .bound_uid = (uid_t) -1 };
        uint32_t uid = UINT32_MAX;
        BusOption options[] = {
                { BB_OPT_READ_ONLY, 'b', &opts.read_only },
                { BB_OPT_UID, 'u', &uid },
                { BB_OPT_SINGLE_USE, 'b', &opts.single_use },
                { BB_OPT_TTL_USEC, 't', &opts.ttl_usec },
                {}
        };
        BrokerError err = {};
        const char *token;
        Caller caller;
        int r;

        r = bus_read_options(msg, options, error);
        if (r < 0)
                return r;
        if (bus_option_seen(options, BB_OPT_UID) && uid == UINT32_MAX)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "Option 'uid' must be a valid uid, not 4294967295");
        if (bus_option_seen(options, BB_OPT_TTL_USEC) && opts.ttl_usec == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "Option 'ttl-usec' must be greater than 0 (leave it out for no expiry)");
        if (bus_option_seen(options, BB_OPT_UID))
                opts.bound_uid = (uid_t) uid;

        r = get_caller(msg, buf, &caller, error);
        if (r < 0)
                return r;

        r = broker_share(m->broker, &caller, buf, &opts, now_usec(), &err, &token);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);
        if (opts.ttl_usec > 0)
                manager_schedule_expiry(m);

        h = (Handout) { .client = caller.name, .uid = caller.uid, .revoke_token = true };
        memcpy(h.token, token, sizeof(h.token));
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", token);
        if (r >= 0)
                r = bus_send_reply(m, reply, &h);
        if (r < 0)
                (void) broker_revoke_token(m->broker, h.token);
        return r;
}

static int method_revoke_token(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Buffer *buf = userdata;
        Manager *m = buf->broker->userdata;
        BrokerError err = {};
        const char *token;
        Caller caller;
        uint64_t id = buf->id;
        int r;

        r = sd_bus_message_read(msg, "s", &token);
        if (r < 0)
                return r;
        r = get_caller(msg, buf, &caller, error);
        if (r < 0)
                return r;

        r = broker_revoke_buffer_token(m->broker, &caller, buf, token, now_usec(), &err);
        /* A single-use token spent by an Open whose reply may still be
         * refused must not come back when that Open is undone. */
        if (r >= 0 || r == -ENOKEY)
                handouts_token_revoked(m, id, token);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_revoke_tokens(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Buffer *buf = userdata;
        Manager *m = buf->broker->userdata;
        BrokerError err = {};
        unsigned count = 0;
        Caller caller;
        int r;

        r = get_caller(msg, buf, &caller, error);
        if (r < 0)
                return r;

        r = broker_revoke_buffer_tokens(m->broker, &caller, buf, now_usec(), &err, &count);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);
        handouts_token_revoked(m, buf->id, NULL);
        return sd_bus_reply_method_return(msg, "u", count);
}

static int method_open_fds(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(close_fds) int fds[BB_PLANES_MAX] = FD_ARRAY_INIT;
        Buffer *buf = userdata;
        Manager *m = buf->broker->userdata;
        bool read_only = false, new_hold;
        BusOption options[] = {
                { BB_OPT_READ_ONLY, 'b', &read_only },
                {}
        };
        BrokerError err = {};
        Caller caller;
        int r;

        r = bus_read_options(msg, options, error);
        if (r < 0)
                return r;
        r = bus_get_fd_caller(m, msg, &caller, error);
        if (r < 0)
                return r;

        new_hold = !broker_holds(buf->broker, buf, caller.name);
        r = broker_open_fds(buf->broker, &caller, buf, read_only, &err, fds);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = bus_append_fds_and_info(reply, buf, read_only || buf->read_only, fds);
        if (r >= 0)
                r = bus_send_reply(m, reply, &(Handout) {
                        .client = caller.name, .uid = caller.uid, .ids = &buf->id, .n_ids = 1, .drop_holds = new_hold,
                });
        return r;
}

static int method_freeze(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Buffer *buf = userdata;
        BrokerError err = {};
        Caller caller;
        int r;

        r = get_caller(msg, buf, &caller, error);
        if (r < 0)
                return r;

        r = broker_freeze(buf->broker, &caller, buf, &err);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);

        return sd_bus_reply_method_return(msg, NULL);
}

/* Getters by offsetof: the find callback has checked that the caller may
 * see the buffer (buffer_object_find). */
static int property_get_uint64(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "t", *(const uint64_t *) userdata);
}

static int property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", *(const char *const *) userdata);
}

static int property_get_bool(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", *(const bool *) userdata);
}

static int property_get_uid(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "u", (uint32_t) *(const uid_t *) userdata);
}

static int property_get_planes(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return bus_append_planes(reply, userdata);
}

static int property_get_holders(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "u", (uint32_t) ((const Buffer *) userdata)->n_holds);
}

static int property_get_shm_name(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", ((const Buffer *) userdata)->shm_name ?: "");
}

static int property_get_shm_id(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "i", (int32_t) ((const Buffer *) userdata)->shmid);
}

static int property_get_allocated_bytes(sd_bus *bus, const char *path, const char *interface,
                                        const char *property, sd_bus_message *reply, void *userdata,
                                        sd_bus_error *error) {
        return sd_bus_message_append(reply, "t", buffer_allocated_bytes(userdata));
}

/* A V4L2 buffer's format and index; empty for a memfd. */
static int property_get_format(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Buffer *buf = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r >= 0 && buf->queue)
                r = bus_append_v4l2_format_entries(reply, v4l2_queue_format(buf->queue));
        if (r >= 0 && buf->queue)
                r = sd_bus_message_append(reply, "{sv}", BB_INFO_INDEX, "u", buf->v4l2_index);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

int bus_append_buffer_properties(sd_bus_message *reply, Buffer *buf) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}",
                                          BB_PROP_ID, "t", buf->id,
                                          BB_PROP_NAME, "s", buf->name,
                                          BB_PROP_KIND, "s", buf->kind,
                                          BB_PROP_SIZE, "t", buf->size,
                                          BB_PROP_OWNER_UID, "u", (uint32_t) buf->owner_uid,
                                          BB_PROP_PERSISTENT, "b", buf->persistent,
                                          BB_PROP_FROZEN, "b", buf->frozen,
                                          BB_PROP_CREATED_USEC, "t", buf->created_usec,
                                          BB_PROP_HOLDERS, "u", (uint32_t) buf->n_holds,
                                          BB_PROP_PAGE_SIZE, "t", buf->page_size,
                                          BB_PROP_PREFAULTED, "b", buf->prefaulted,
                                          BB_PROP_SHM_NAME, "s", buf->shm_name ?: "",
                                          BB_PROP_SHM_ID, "i", (int32_t) buf->shmid,
                                          BB_PROP_ALLOCATED_BYTES, "t", buffer_allocated_bytes(buf));
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", BB_PROP_PLANES);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'v', "a(tuu)");
        if (r >= 0)
                r = bus_append_planes(reply, buf);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", BB_PROP_FORMAT);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'v', "a{sv}");
        if (r >= 0)
                r = property_get_format(NULL, NULL, NULL, NULL, reply, buf, NULL);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

const sd_bus_vtable buffer_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY(BB_PROP_ID, "t", property_get_uint64, offsetof(Buffer, id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_NAME, "s", property_get_string, offsetof(Buffer, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_KIND, "s", property_get_string, offsetof(Buffer, kind), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_SIZE, "t", property_get_uint64, offsetof(Buffer, size), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_OWNER_UID, "u", property_get_uid, offsetof(Buffer, owner_uid),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        /* PropertiesChanged: bus-notify.c sends it, to those who may see
         * the buffer (sd-bus would broadcast it). */
        SD_BUS_PROPERTY(BB_PROP_PERSISTENT, "b", property_get_bool, offsetof(Buffer, persistent),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY(BB_PROP_FROZEN, "b", property_get_bool, offsetof(Buffer, frozen),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY(BB_PROP_CREATED_USEC, "t", property_get_uint64, offsetof(Buffer, created_usec),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_PAGE_SIZE, "t", property_get_uint64, offsetof(Buffer, page_size),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_PREFAULTED, "b", property_get_bool, offsetof(Buffer, prefaulted),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_PLANES, "a(tuu)", property_get_planes, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_FORMAT, "a{sv}", property_get_format, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_HOLDERS, "u", property_get_holders, 0, 0),
        SD_BUS_PROPERTY(BB_PROP_SHM_NAME, "s", property_get_shm_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_SHM_ID, "i", property_get_shm_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY(BB_PROP_ALLOCATED_BYTES, "t", property_get_allocated_bytes, 0, 0),
        SD_BUS_METHOD("Release", NULL, NULL, method_release, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Share",
                                SD_BUS_ARGS("a{sv}", options),
                                SD_BUS_RESULT("s", token),
                                method_share,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Freeze", NULL, NULL, method_freeze, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenFds",
                                SD_BUS_ARGS("a{sv}", options),
                                SD_BUS_RESULT("ah", fds, "a{sv}", info),
                                method_open_fds,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RevokeToken",
                                SD_BUS_ARGS("s", token),
                                SD_BUS_NO_RESULT,
                                method_revoke_token,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RevokeTokens",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("u", count),
                                method_revoke_tokens,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int bus_buffer_register(Manager *m, sd_bus *bus) {
        int r;

        r = sd_bus_add_fallback(bus, NULL, BB_BUFFER_PATH_PREFIX, buffer_missing, m);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(bus, NULL, BB_BUFFER_PATH_PREFIX, BB_BUFFER_INTERFACE,
                                       buffer_vtable, buffer_object_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(bus, NULL, BB_BUFFER_PATH_PREFIX, buffer_node_enumerator, m);
}
