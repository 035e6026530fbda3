/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Buffer handles (a bb_buffer is one broker buffer: its properties and,
 * when the connection holds it, its fds) and the calls that create, open,
 * describe or change a buffer: CreateMemfd, Create (any kind), Open,
 * OpenFds, GetAll, Share, Release, Freeze. Received fds are dup'ed (F_DUPFD_CLOEXEC, at or above 3)
 * while the reply still owns the originals; what a reply says about the
 * buffer is read by wire.c.
 *
 * Each call is three steps, shared by its blocking and its asynchronous
 * (callback) form: build the message (*_message), send it (client_call()
 * or client_call_async()), read the reply (*_reply_read). The asynchronous
 * forms' reply handlers (*_finish) call the user back with the result.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "libbufbroker-private.h"
#include "macro.h"

/* ------------------------------------------------------------ buffer --- */

int buffer_new(bb_client *c, const char *path, bb_buffer **ret) {
        bb_buffer *buf;

        buf = calloc(1, sizeof(*buf));
        if (!buf)
                return -ENOMEM;
        buf->n_ref = 1;
        buf->owner_uid = (uid_t) -1;
        buf->shmid = -1;
        for (unsigned i = 0; i < BB_PLANES_MAX; i++)
                buf->planes[i].fd = -1;
        buf->path = strdup(path);
        buf->name = strdup("");
        buf->kind = strdup(BB_KIND_MEMFD);
        if (!buf->path || !buf->name || !buf->kind) {
                free(buf->path);
                free(buf->name);
                free(buf->kind);
                free(buf);
                return -ENOMEM;
        }
        /* An id in the path is what the broker promises; a path without one
         * is not ours to judge here, the Id property will fill it in. */
        (void) bb_buffer_path_to_id(path, &buf->id);
        buf->client = bb_client_ref(c);
        *ret = buf;
        return 0;
}

int buffer_set_string(char **field, const char *value) {
        char *copy = strdup(value);

        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

/* Keep a dup of a received fd (at 3 or above, so that it never lands on
 * stdin/stdout/stderr of a process that closed them). */
int buffer_add_fd(bb_buffer *buf, int fd) {
        int copy;

        if (buf->n_fds >= BB_PLANES_MAX)
                return -E2BIG;
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return negative_errno();
        buf->planes[buf->n_fds++].fd = copy;
        return 0;
}

_public_ bb_buffer *bb_buffer_ref(bb_buffer *buf) {
        if (buf)
                buf->n_ref++;
        return buf;
}

_public_ bb_buffer *bb_buffer_unref(bb_buffer *buf) {
        if (!buf || --buf->n_ref > 0)
                return NULL;
        if (buf->client)
                client_forget_buffer(buf->client, buf);
        (void) bb_buffer_unmap(buf);
        for (unsigned i = 0; i < buf->n_fds; i++)
                safe_close(buf->planes[i].fd);
        bb_client_unref(buf->client);
        free(buf->path);
        free(buf->name);
        free(buf->kind);
        free(buf->format_type);
        free(buf->shm_name);
        free(buf);
        return NULL;
}

bool buffer_is_kind(const bb_buffer *buf, const char *kind) {
        return buf->kind && strcmp(buf->kind, kind) == 0;
}

bool buffer_holds_memory(const bb_buffer *buf) {
        return buf->n_fds > 0 || buf->segment_held;
}

_public_ void bb_buffer_unrefp(bb_buffer **p) {
        if (p && *p)
                bb_buffer_unref(*p);
}

_public_ bb_buffer **bb_buffer_list_free(bb_buffer **list, size_t n) {
        if (!list)
                return NULL;
        for (size_t i = 0; i < n; i++)
                bb_buffer_unref(list[i]);
        free(list);
        return NULL;
}

int buffer_append_bool_option(sd_bus_message *m, const char *key) {
        return sd_bus_message_append(m, "{sv}", key, "b", 1);
}

int buffer_append_uint64_option(sd_bus_message *m, const char *key, uint64_t v) {
        return sd_bus_message_append(m, "{sv}", key, "t", v);
}

/* Release the buffer at path, for the cleanup of a failed call: errors are
 * ignored, and the client's last error (the one that made us clean up) is
 * left as it is. */
void buffer_release_path_quietly(bb_client *c, const char *path) {
        (void) sd_bus_call_method(c->bus, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release", NULL, NULL, "");
}

static void ignore_reply(bb_call *call, int error, const char *error_name, const char *error_message,
                         sd_bus_message *reply) {
}

/* The same from a reply handler, which must not block: an asynchronous
 * call of the library's own. A client that closes waits for its reply, as
 * for a persistent create: the broker may drop what a connection that went
 * had queued, and a Release of a persistent buffer must not be lost. */
void buffer_release_path_async_quietly(bb_client *c, const char *path) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bb_call *call;

        if (client_new_method_call(c, path, BB_BUFFER_INTERFACE, "Release", &m) < 0)
                return;
        if (client_call_new(c, ignore_reply, NULL, NULL, &call) < 0)
                return;
        call->undo_on_close = true;
        call->internal = true;
        if (client_call_async(c, m, call, NULL) < 0)
                call_unref_internal(call);
}

static void release_path(bb_client *c, const char *path, bool async) {
        if (async)
                buffer_release_path_async_quietly(c, path);
        else
                buffer_release_path_quietly(c, path);
}

/* Release a buffer the broker made for us that did not become a handle.
 * A blocking release drops the reply, and the fds in it, before it waits
 * (@path, which may point into the reply, is copied first); an
 * asynchronous one leaves the reply to its caller. */
static void release_unclaimed(bb_client *c, sd_bus_message **reply, const char *path, bool async) {
        _cleanup_free_ char *copy = async ? NULL : strdup(path);

        if (copy) {
                *reply = sd_bus_message_unref(*reply);
                path = copy;
        }
        release_path(c, path, async);
}

#define MEMFD_CREATE_FLAGS (BB_CREATE_PERSISTENT | BB_CREATE_HUGETLB | BB_CREATE_PREFAULT)

/* The options of a create call, only those that are set: an older broker
 * that knows fewer keys keeps working for the calls that do not need them. */
static int append_create_options(sd_bus_message *m, unsigned flags, uint64_t ttl_usec) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && (flags & BB_CREATE_PERSISTENT))
                r = buffer_append_bool_option(m, BB_OPT_PERSISTENT);
        if (r >= 0 && ttl_usec > 0)
                r = buffer_append_uint64_option(m, BB_OPT_TTL_USEC, ttl_usec);
        if (r >= 0 && (flags & BB_CREATE_HUGETLB))
                r = buffer_append_bool_option(m, BB_OPT_HUGETLB);
        if (r >= 0 && (flags & BB_CREATE_PREFAULT))
                r = buffer_append_bool_option(m, BB_OPT_PREFAULT);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* CreateMemfd (count 0) or CreateMemfds (count buffers), options as set. */
static int create_message(bb_client *c, const char *name, uint64_t size, unsigned count, unsigned flags,
                          uint64_t ttl_usec, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = client_new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, count ? "CreateMemfds" : "CreateMemfd",
                                   &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "st", name, size);
        if (r >= 0 && count)
                r = sd_bus_message_append(m, "u", count);
        if (r < 0)
                return r;
        r = append_create_options(m, flags, ttl_usec);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static int create_call(bb_client *c, const char *name, uint64_t size, unsigned count, unsigned flags,
                       uint64_t ttl_usec, sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = create_message(c, name, size, count, flags, ttl_usec, &m);
        if (r < 0)
                return r;
        return client_call(c, m, false, ret_reply);
}

/* A handle for one created buffer of the reply. */
static int created_handle(bb_client *c, const char *name, unsigned flags, const char *path, int fd,
                          uint64_t real_size, bb_buffer **ret) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        int r;

        r = buffer_new(c, path, &buf);
        if (r >= 0)
                r = buffer_add_fd(buf, fd);
        if (r >= 0)
                r = buffer_set_string(&buf->name, name);
        if (r < 0)
                return r;
        buf->size = real_size;
        buf->n_planes = 1;
        buf->planes[0].length = real_size;
        buf->persistent = flags & BB_CREATE_PERSISTENT;
        buf->prefaulted = flags & BB_CREATE_PREFAULT;
        /* The broker charges the uid the bus vouches for: the effective one. */
        buf->owner_uid = geteuid();
        *ret = TAKE_PTR(buf);
        return 0;
}

/* A blocking release drops the reply first (*reply, which the caller
 * owns then): at the fd limit, the release's answer may come behind a
 * message with an fd (the daemon's check whether we take fds), which needs
 * a free slot. A reply handler (async) neither owns nor drops it. */
static int create_reply_read(bb_client *c, const char *name, unsigned flags, sd_bus_message **reply, bool async,
                             bb_buffer **ret) {
        const char *path;
        uint64_t real_size;
        int fd, r;

        r = sd_bus_message_read(*reply, "oht", &path, &fd, &real_size);
        if (r < 0)
                return r;

        /* The buffer exists now: if it cannot become a handle (EMFILE on
         * the dup, ENOMEM), release it, or a persistent one would outlive
         * everything with an id nobody knows. */
        r = created_handle(c, name, flags, path, fd, real_size, ret);
        if (r < 0)
                release_unclaimed(c, reply, path, async);
        return r;
}

_public_ int bb_buffer_create(bb_client *c, const char *name, uint64_t size, unsigned flags,
                              uint64_t ttl_usec, bb_buffer **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (!c || !ret || (flags & ~MEMFD_CREATE_FLAGS))
                return -EINVAL;
        if (!name)
                name = "";
        client_clear_error(c);

        r = create_call(c, name, size, 0, flags, ttl_usec, &reply);
        if (r < 0)
                return r;
        return create_reply_read(c, name, flags, &reply, false, ret);
}

static int create_many_reply_read(bb_client *c, const char *name, unsigned flags, unsigned count,
                                  sd_bus_message **reply, bool async, bb_buffer **ret);

_public_ int bb_buffer_create_many(bb_client *c, const char *name, uint64_t size, unsigned flags,
                                   uint64_t ttl_usec, unsigned count, bb_buffer **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (!c || !ret || (flags & ~MEMFD_CREATE_FLAGS) || count == 0 || count > BB_CREATE_BATCH_MAX)
                return -EINVAL;
        if (!name)
                name = "";
        client_clear_error(c);

        r = create_call(c, name, size, count, flags, ttl_usec, &reply);
        if (r < 0)
                return r;
        return create_many_reply_read(c, name, flags, count, &reply, false, ret);
}

/* Every buffer of a CreateMemfds reply into ret (room for count), or none:
 * on failure all are released (the reply dropped first when blocking, as in
 * create_reply_read()). */
static int create_many_reply_read(bb_client *c, const char *name, unsigned flags, unsigned count,
                                  sd_bus_message **reply, bool async, bb_buffer **ret) {
        unsigned n = 0;
        int r;

        r = sd_bus_message_enter_container(*reply, 'a', "(oht)");
        while (r >= 0 && n < count) {
                const char *path;
                uint64_t real_size;
                int fd;

                r = sd_bus_message_read(*reply, "(oht)", &path, &fd, &real_size);
                if (r == 0)
                        r = -EBADMSG;   /* fewer than asked */
                if (r > 0)
                        r = created_handle(c, name, flags, path, fd, real_size, &ret[n]);
                if (r >= 0)
                        n++;
        }
        if (r >= 0)
                return 0;

        /* All or none, here too: release every buffer of the reply, once
         * its fds are closed (see bb_buffer_create()). */
        for (unsigned i = 0; i < n; i++)
                ret[i] = bb_buffer_unref(ret[i]);
        if (sd_bus_message_rewind(*reply, true) >= 0 && sd_bus_message_enter_container(*reply, 'a', "(oht)") >= 0) {
                char *paths[BB_CREATE_BATCH_MAX];
                unsigned n_paths = 0;
                const char *path;
                uint64_t real_size;
                int fd;

                while (sd_bus_message_read(*reply, "(oht)", &path, &fd, &real_size) > 0)
                        if (!async && n_paths < BB_CREATE_BATCH_MAX && (paths[n_paths] = strdup(path)))
                                n_paths++;
                        else
                                release_path(c, path, async);
                if (n_paths > 0)
                        *reply = sd_bus_message_unref(*reply);
                for (unsigned i = 0; i < n_paths; i++) {
                        release_path(c, paths[i], false);
                        free(paths[i]);
                }
        }
        return r;
}

/* ReleaseBuffers of n handles of one client. */
static int release_many_message(bb_buffer **bufs, size_t n, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bb_client *c;
        int r;

        if (!bufs || n == 0 || n > BB_RELEASE_BATCH_MAX || !bufs[0])
                return -EINVAL;
        c = bufs[0]->client;
        for (size_t i = 0; i < n; i++)
                if (!bufs[i] || bufs[i]->client != c)
                        return -EINVAL;         /* one connection's holds at a time */

        r = client_new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "ReleaseBuffers", &m);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "o");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(m, "o", bufs[i]->path);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

_public_ int bb_buffer_release_many(bb_buffer **bufs, size_t n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bb_client *c;
        int r;

        r = release_many_message(bufs, n, &m);
        if (r < 0)
                return r;
        c = bufs[0]->client;
        client_clear_error(c);
        r = client_call(c, m, true, NULL);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (bufs[i]->owner_uid == geteuid() || geteuid() == 0)
                        bufs[i]->persistent = false;
        return 0;
}

/* A handle for the buffer at @path from an Open or OpenFds reply (its fds
 * and info, read past the path). */
int buffer_from_fds_reply(bb_client *c, const char *path, sd_bus_message *reply, bb_buffer **ret) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        int r;

        r = buffer_new(c, path, &buf);
        if (r < 0)
                return r;
        r = wire_read_fds_and_info(buf, reply);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int open_message(bb_client *c, const char *token, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = client_new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "sa{sv}", token, 0);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static int open_reply_read(bb_client *c, sd_bus_message *reply, bb_buffer **ret) {
        const char *path;
        int r;

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        return buffer_from_fds_reply(c, path, reply, ret);
}

/* ----------------------------------------------------- create by kind --- */

#define KIND_CREATE_FLAGS (BB_CREATE_PERSISTENT | BB_CREATE_HUGETLB | BB_CREATE_PREFAULT)

/* Create(kind, name, size, options). The options are those of
 * CreateMemfd; the broker judges which a kind takes (hugetlb: memfd only). */
static int create_kind_message(bb_client *c, const char *kind, const char *name, uint64_t size, unsigned flags,
                               uint64_t ttl_usec, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = client_new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "sst", kind, name, size);
        if (r >= 0)
                r = append_create_options(m, flags, ttl_usec);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* The Create reply is Open's: "o buffer, ah fds, a{sv} info". Persistence
 * is not in the info: it is what was asked for. A buffer that cannot
 * become a handle is released (see create_reply_read()). */
static int create_kind_reply_read(bb_client *c, unsigned flags, sd_bus_message **reply, bool async,
                                  bb_buffer **ret) {
        bb_buffer *buf = NULL;
        const char *path;
        int r;

        r = sd_bus_message_read(*reply, "o", &path);
        if (r < 0)
                return r;
        /* On failure no handle is left: its dups are closed before the
         * release, as in create_many_reply_read(). */
        r = buffer_from_fds_reply(c, path, *reply, &buf);
        if (r < 0) {
                release_unclaimed(c, reply, path, async);
                return r;
        }
        buf->persistent = flags & BB_CREATE_PERSISTENT;
        *ret = buf;
        return 0;
}

_public_ int bb_buffer_create_kind(bb_client *c, const char *kind, const char *name, uint64_t size,
                                   unsigned flags, uint64_t ttl_usec, bb_buffer **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        if (!c || !kind || !*kind || !ret || (flags & ~KIND_CREATE_FLAGS))
                return -EINVAL;
        if (!name)
                name = "";
        client_clear_error(c);

        r = create_kind_message(c, kind, name, size, flags, ttl_usec, &m);
        if (r < 0)
                return r;
        r = client_call(c, m, false, &reply);
        if (r < 0)
                return r;
        return create_kind_reply_read(c, flags, &reply, false, ret);
}

_public_ int bb_buffer_open(bb_client *c, const char *token, bb_buffer **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        if (!c || !token || !ret)
                return -EINVAL;
        client_clear_error(c);

        r = open_message(c, token, &m);
        if (r < 0)
                return r;
        r = client_call(c, m, false, &reply);
        if (r < 0)
                return r;
        return open_reply_read(c, reply, ret);
}

/* Buffer1.OpenFds on the buffer at path. */
int buffer_open_fds_message(bb_client *c, const char *path, unsigned flags, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = client_new_method_call(c, path, BB_BUFFER_INTERFACE, "OpenFds", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (flags & BB_OPEN_READ_ONLY) {
                r = buffer_append_bool_option(m, BB_OPT_READ_ONLY);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

int buffer_open_fds_path(bb_client *c, const char *path, unsigned flags, bb_buffer **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = buffer_open_fds_message(c, path, flags, &m);
        if (r < 0)
                return r;
        r = client_call(c, m, true, &reply);
        if (r < 0)
                return r;
        return buffer_from_fds_reply(c, path, reply, ret);
}

_public_ int bb_buffer_open_fds(bb_client *c, uint64_t id, unsigned flags, bb_buffer **ret) {
        char path[BB_BUFFER_PATH_MAX];

        if (!c || !ret || (flags & ~BB_OPEN_READ_ONLY))
                return -EINVAL;
        client_clear_error(c);

        bb_buffer_path_from_id(id, path);
        return buffer_open_fds_path(c, path, flags, ret);
}

static int buffer_fetch_properties(bb_buffer *buf) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        bb_client *c = buf->client;
        int r;

        r = client_new_method_call(c, buf->path, "org.freedesktop.DBus.Properties", "GetAll", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", BB_BUFFER_INTERFACE);
        if (r < 0)
                return r;
        r = client_call(c, m, true, &reply);
        if (r < 0)
                return r;
        return wire_read_properties(buf, reply);
}

_public_ int bb_buffer_get(bb_client *c, uint64_t id, bb_buffer **ret) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        char path[BB_BUFFER_PATH_MAX];
        int r;

        if (!c || !ret)
                return -EINVAL;
        client_clear_error(c);

        bb_buffer_path_from_id(id, path);
        r = buffer_new(c, path, &buf);
        if (r < 0)
                return r;
        r = buffer_fetch_properties(buf);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        return 0;
}

_public_ int bb_buffer_refresh(bb_buffer *buf) {
        if (!buf)
                return -EINVAL;
        client_clear_error(buf->client);
        return buffer_fetch_properties(buf);
}

static int share_message(bb_buffer *buf, unsigned flags, uid_t uid, uint64_t ttl_usec, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = client_new_method_call(buf->client, buf->path, BB_BUFFER_INTERFACE, "Share", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (flags & BB_SHARE_READ_ONLY) {
                r = buffer_append_bool_option(m, BB_OPT_READ_ONLY);
                if (r < 0)
                        return r;
        }
        if (flags & BB_SHARE_SINGLE_USE) {
                r = buffer_append_bool_option(m, BB_OPT_SINGLE_USE);
                if (r < 0)
                        return r;
        }
        if (flags & BB_SHARE_UID) {
                r = sd_bus_message_append(m, "{sv}", BB_OPT_UID, "u", (uint32_t) uid);
                if (r < 0)
                        return r;
        }
        if (ttl_usec > 0) {
                r = buffer_append_uint64_option(m, BB_OPT_TTL_USEC, ttl_usec);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

#define SHARE_FLAGS_KNOWN (BB_SHARE_READ_ONLY | BB_SHARE_SINGLE_USE | BB_SHARE_UID)

_public_ int bb_buffer_share(bb_buffer *buf, unsigned flags, uid_t uid, uint64_t ttl_usec, char **ret_token) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *token;
        char *copy;
        int r;

        if (!buf || !ret_token || (flags & ~SHARE_FLAGS_KNOWN))
                return -EINVAL;
        client_clear_error(buf->client);

        r = share_message(buf, flags, uid, ttl_usec, &m);
        if (r < 0)
                return r;
        r = client_call(buf->client, m, true, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &token);
        if (r < 0)
                return r;
        copy = strdup(token);
        if (!copy)
                return -ENOMEM;
        *ret_token = copy;
        return 0;
}

static int buffer_call_simple(bb_buffer *buf, const char *member) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        if (!buf)
                return -EINVAL;
        client_clear_error(buf->client);

        r = client_new_method_call(buf->client, buf->path, BB_BUFFER_INTERFACE, member, &m);
        if (r < 0)
                return r;
        return client_call(buf->client, m, true, NULL);
}

/* What a successful Release says about the handle: it is no longer the
 * owner's to keep, Release ends persistence. */
static void released(bb_buffer *buf) {
        if (buf->owner_uid == geteuid() || geteuid() == 0)
                buf->persistent = false;
}

_public_ int bb_buffer_release(bb_buffer *buf) {
        int r;

        r = buffer_call_simple(buf, "Release");
        if (r < 0)
                return r;
        released(buf);
        return 0;
}

_public_ int bb_buffer_freeze(bb_buffer *buf) {
        int r;

        r = buffer_call_simple(buf, "Freeze");
        if (r < 0)
                return r;
        buf->frozen = true;
        return 0;
}

/* ------------------------------------------------------------- async --- */

#define CALLBACK(f) ((void (*)(void)) (f))

static void undo_create(bb_call *call, sd_bus_message *reply) {
        const char *path;

        if (sd_bus_message_read(reply, "o", &path) > 0)
                buffer_release_path_async_quietly(call->client, path);
}

static void undo_create_many(bb_call *call, sd_bus_message *reply) {
        const char *path;
        uint64_t size;
        int fd;

        if (sd_bus_message_enter_container(reply, 'a', "(oht)") <= 0)
                return;
        while (sd_bus_message_read(reply, "(oht)", &path, &fd, &size) > 0)
                buffer_release_path_async_quietly(call->client, path);
}

/* Send m as call; the creator's reference goes on failure. */
static int send_call(bb_call *call, sd_bus_message *m, bb_call **ret_call) {
        int r;

        r = client_call_async(call->client, m, call, ret_call);
        if (r < 0)
                call_unref_internal(call);
        return r;
}

/* Hand the result to the callback; buf is the callback's to borrow. */
static void deliver_buffer(bb_call *call, int error, const char *error_name, const char *error_message,
                           bb_buffer *buf) {
        if (call->callback)
                ((bb_buffer_done_func) call->callback)(call->client, error, error_name, error_message,
                                                       error >= 0 ? buf : NULL, call->userdata);
        bb_buffer_unref(buf);
}

static void create_finish(bb_call *call, int error, const char *error_name, const char *error_message,
                          sd_bus_message *reply) {
        bb_buffer *buf = NULL;

        if (error >= 0)
                error = create_reply_read(call->client, call->name, call->flags, &reply, true, &buf);
        deliver_buffer(call, error, error_name, error_message, buf);
}

static void open_finish(bb_call *call, int error, const char *error_name, const char *error_message,
                        sd_bus_message *reply) {
        bb_buffer *buf = NULL;

        if (error >= 0)
                error = open_reply_read(call->client, reply, &buf);
        deliver_buffer(call, error, error_name, error_message, buf);
}

static void open_fds_finish(bb_call *call, int error, const char *error_name, const char *error_message,
                            sd_bus_message *reply) {
        bb_buffer *buf = NULL;

        if (error >= 0)
                error = buffer_from_fds_reply(call->client, call->path, reply, &buf);
        deliver_buffer(call, error, error_name, error_message, buf);
}

/* CreateMemfd (count 0) or CreateMemfds (count buffers), asynchronously. A
 * cancelled persistent create is undone even when the client closes. */
static int create_async(bb_client *c, const char *name, uint64_t size, unsigned count, unsigned flags,
                        uint64_t ttl_usec, call_finish_func finish, call_undo_func undo, void (*callback)(void),
                        void *userdata, bb_call **ret_call) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bb_call *call;
        int r;

        if (!c || (flags & ~MEMFD_CREATE_FLAGS))
                return -EINVAL;
        if (!name)
                name = "";
        r = create_message(c, name, size, count, flags, ttl_usec, &m);
        if (r < 0)
                return r;
        r = client_call_new(c, finish, callback, userdata, &call);
        if (r < 0)
                return r;
        call->flags = flags;
        call->count = count;
        call->undo = undo;
        call->undo_on_close = flags & BB_CREATE_PERSISTENT;
        call->name = strdup(name);
        if (!call->name) {
                call_unref_internal(call);
                return -ENOMEM;
        }
        return send_call(call, m, ret_call);
}

_public_ int bb_buffer_create_async(bb_client *c, const char *name, uint64_t size, unsigned flags,
                                    uint64_t ttl_usec, bb_buffer_done_func callback, void *userdata,
                                    bb_call **ret_call) {
        if (!callback)
                return -EINVAL;
        return create_async(c, name, size, 0, flags, ttl_usec, create_finish, undo_create, CALLBACK(callback),
                            userdata, ret_call);
}

static void create_kind_finish(bb_call *call, int error, const char *error_name, const char *error_message,
                               sd_bus_message *reply) {
        bb_buffer *buf = NULL;

        if (error >= 0)
                error = create_kind_reply_read(call->client, call->flags, &reply, true, &buf);
        deliver_buffer(call, error, error_name, error_message, buf);
}

_public_ int bb_buffer_create_kind_async(bb_client *c, const char *kind, const char *name, uint64_t size,
                                         unsigned flags, uint64_t ttl_usec, bb_buffer_done_func callback,
                                         void *userdata, bb_call **ret_call) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bb_call *call;
        int r;

        if (!c || !kind || !*kind || !callback || (flags & ~KIND_CREATE_FLAGS))
                return -EINVAL;
        if (!name)
                name = "";
        r = create_kind_message(c, kind, name, size, flags, ttl_usec, &m);
        if (r < 0)
                return r;
        r = client_call_new(c, create_kind_finish, CALLBACK(callback), userdata, &call);
        if (r < 0)
                return r;
        call->flags = flags;
        /* The reply starts with the path, as CreateMemfd's: undone alike. */
        call->undo = undo_create;
        call->undo_on_close = flags & BB_CREATE_PERSISTENT;
        return send_call(call, m, ret_call);
}

static void buffers_finish(bb_call *call, int error, const char *error_name, const char *error_message,
                           sd_bus_message *reply) {
        bb_buffer *bufs[BB_CREATE_BATCH_MAX] = { NULL };

        if (error >= 0)
                error = create_many_reply_read(call->client, call->name, call->flags, call->count, &reply, true,
                                               bufs);
        if (call->callback)
                ((bb_buffers_done_func) call->callback)(call->client, error, error_name, error_message,
                                                        error >= 0 ? bufs : NULL, error >= 0 ? call->count : 0,
                                                        call->userdata);
        if (error >= 0)
                for (unsigned i = 0; i < call->count; i++)
                        bb_buffer_unref(bufs[i]);
}

_public_ int bb_buffer_create_many_async(bb_client *c, const char *name, uint64_t size, unsigned flags,
                                         uint64_t ttl_usec, unsigned count, bb_buffers_done_func callback,
                                         void *userdata, bb_call **ret_call) {
        if (!callback || count == 0 || count > BB_CREATE_BATCH_MAX)
                return -EINVAL;
        return create_async(c, name, size, count, flags, ttl_usec, buffers_finish, undo_create_many,
                            CALLBACK(callback), userdata, ret_call);
}

_public_ int bb_buffer_open_async(bb_client *c, const char *token, bb_buffer_done_func callback, void *userdata,
                                  bb_call **ret_call) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bb_call *call;
        int r;

        if (!c || !token || !callback)
                return -EINVAL;
        r = open_message(c, token, &m);
        if (r < 0)
                return r;
        r = client_call_new(c, open_finish, CALLBACK(callback), userdata, &call);
        if (r < 0)
                return r;
        return send_call(call, m, ret_call);
}

_public_ int bb_buffer_open_fds_async(bb_client *c, uint64_t id, unsigned flags, bb_buffer_done_func callback,
                                      void *userdata, bb_call **ret_call) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        char path[BB_BUFFER_PATH_MAX];
        bb_call *call;
        int r;

        if (!c || !callback || (flags & ~BB_OPEN_READ_ONLY))
                return -EINVAL;
        bb_buffer_path_from_id(id, path);
        r = buffer_open_fds_message(c, path, flags, &m);
        if (r < 0)
                return r;
        r = client_call_new(c, open_fds_finish, CALLBACK(callback), userdata, &call);
        if (r < 0)
                return r;
        call->buffer_object = true;
        call->path = strdup(path);
        if (!call->path) {
                call_unref_internal(call);
                return -ENOMEM;
        }
        return send_call(call, m, ret_call);
}

static void token_finish(bb_call *call, int error, const char *error_name, const char *error_message,
                         sd_bus_message *reply) {
        const char *token = NULL;

        if (error >= 0)
                error = sd_bus_message_read(reply, "s", &token);
        if (error >= 0)
                error = 0;
        if (call->callback)
                ((bb_token_done_func) call->callback)(call->client, error, error_name, error_message,
                                                      error >= 0 ? token : NULL, call->userdata);
}

_public_ int bb_buffer_share_async(bb_buffer *buf, unsigned flags, uid_t uid, uint64_t ttl_usec,
                                   bb_token_done_func callback, void *userdata, bb_call **ret_call) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bb_call *call;
        int r;

        if (!buf || !callback || (flags & ~SHARE_FLAGS_KNOWN))
                return -EINVAL;
        r = share_message(buf, flags, uid, ttl_usec, &m);
        if (r < 0)
                return r;
        r = client_call_new(buf->client, token_finish, CALLBACK(callback), userdata, &call);
        if (r < 0)
                return r;
        call->buffer_object = true;
        return send_call(call, m, ret_call);
}

/* Release, Freeze, ReleaseBuffers: nothing in the reply; a successful one
 * updates the handle, if it is still there. */
static void done_finish(bb_call *call, int error, const char *error_name, const char *error_message,
                        sd_bus_message *reply) {
        if (error >= 0 && call->buf) {
                if (call->flags)        /* 1: a Freeze */
                        call->buf->frozen = true;
                else
                        released(call->buf);
        }
        if (call->callback)
                ((bb_done_func) call->callback)(call->client, error, error_name, error_message, call->userdata);
}

static int buffer_call_simple_async(bb_buffer *buf, const char *member, bool freeze, bb_done_func callback,
                                    void *userdata, bb_call **ret_call) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bb_call *call;
        int r;

        if (!buf || !callback)
                return -EINVAL;
        r = client_new_method_call(buf->client, buf->path, BB_BUFFER_INTERFACE, member, &m);
        if (r < 0)
                return r;
        r = client_call_new(buf->client, done_finish, CALLBACK(callback), userdata, &call);
        if (r < 0)
                return r;
        call->buffer_object = true;
        call->buf = buf;
        call->flags = freeze;
        return send_call(call, m, ret_call);
}

_public_ int bb_buffer_release_async(bb_buffer *buf, bb_done_func callback, void *userdata, bb_call **ret_call) {
        return buffer_call_simple_async(buf, "Release", false, callback, userdata, ret_call);
}

_public_ int bb_buffer_freeze_async(bb_buffer *buf, bb_done_func callback, void *userdata, bb_call **ret_call) {
        return buffer_call_simple_async(buf, "Freeze", true, callback, userdata, ret_call);
}

_public_ int bb_buffer_release_many_async(bb_buffer **bufs, size_t n, bb_done_func callback, void *userdata,
                                          bb_call **ret_call) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bb_call *call;
        int r;

        if (!callback)
                return -EINVAL;
        r = release_many_message(bufs, n, &m);
        if (r < 0)
                return r;
        /* The handles are not updated: bb_buffer_refresh() tells. */
        r = client_call_new(bufs[0]->client, done_finish, CALLBACK(callback), userdata, &call);
        if (r < 0)
                return r;
        call->buffer_object = true;
        return send_call(call, m, ret_call);
}

_public_ uint64_t bb_buffer_id(bb_buffer *buf) {
        return buf ? buf->id : 0;
}

_public_ uint64_t bb_buffer_size(bb_buffer *buf) {
        return buf ? buf->size : 0;
}

_public_ const char *bb_buffer_name(bb_buffer *buf) {
        return buf ? buf->name : NULL;
}

_public_ const char *bb_buffer_kind(bb_buffer *buf) {
        return buf ? buf->kind : NULL;
}

_public_ const char *bb_buffer_path(bb_buffer *buf) {
        return buf ? buf->path : NULL;
}

_public_ uid_t bb_buffer_owner_uid(bb_buffer *buf) {
        return buf ? buf->owner_uid : (uid_t) -1;
}

_public_ int bb_buffer_is_read_only(bb_buffer *buf) {
        return buf ? buf->read_only : 0;
}

_public_ int bb_buffer_is_persistent(bb_buffer *buf) {
        return buf ? buf->persistent : 0;
}

_public_ uint64_t bb_buffer_page_size(bb_buffer *buf) {
        struct stat st;

        if (!buf)
                return 0;
        /* A hugetlbfs file's block size is its huge page size. */
        if (buf->n_fds > 0 && buf->kind && strcmp(buf->kind, BB_KIND_MEMFD) == 0 &&
            fstat(buf->planes[0].fd, &st) >= 0 && st.st_blksize > 0)
                return (uint64_t) st.st_blksize;
        return buf->page_size;
}

_public_ int bb_buffer_is_prefaulted(bb_buffer *buf) {
        return buf ? buf->prefaulted : 0;
}

_public_ uint64_t bb_buffer_created_usec(bb_buffer *buf) {
        return buf ? buf->created_usec : 0;
}

_public_ const char *bb_buffer_shm_name(bb_buffer *buf) {
        return buf ? buf->shm_name : NULL;
}

_public_ int bb_buffer_shmid(bb_buffer *buf) {
        if (!buf)
                return -EINVAL;
        if (buf->shmid < 0)
                return -ENODATA;
        return buf->shmid;
}

_public_ int bb_buffer_get_allocated_bytes(bb_buffer *buf, uint64_t *ret) {
        if (!buf || !ret)
                return -EINVAL;
        if (!buf->have_allocated)
                return -ENODATA;
        *ret = buf->allocated_bytes;
        return 0;
}

_public_ int bb_buffer_get_holders(bb_buffer *buf, unsigned *ret) {
        if (!buf || !ret)
                return -EINVAL;
        if (!buf->have_holders)
                return -ENODATA;
        *ret = buf->holders;
        return 0;
}

/* ---------------------------------------------------------- revocation --- */

_public_ int bb_buffer_revoke_token(bb_buffer *buf, const char *token) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        if (!buf || !token)
                return -EINVAL;
        client_clear_error(buf->client);

        r = client_new_method_call(buf->client, buf->path, BB_BUFFER_INTERFACE, "RevokeToken", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", token);
        if (r < 0)
                return r;
        return client_call(buf->client, m, true, NULL);
}

_public_ int bb_buffer_revoke_tokens(bb_buffer *buf, unsigned *ret_count) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        uint32_t count;
        int r;

        if (!buf)
                return -EINVAL;
        client_clear_error(buf->client);

        r = client_new_method_call(buf->client, buf->path, BB_BUFFER_INTERFACE, "RevokeTokens", &m);
        if (r < 0)
                return r;
        r = client_call(buf->client, m, true, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "u", &count);
        if (r < 0)
                return r;
        if (ret_count)
                *ret_count = count;
        return 0;
}
