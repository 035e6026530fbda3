/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libbufbroker: bb_client wraps one sd-bus connection, bb_buffer one broker
 * buffer (its properties and, when the connection holds it, its fds: one per
 * plane, with each plane's metadata and mapping).
 *
 * Every call that talks to the broker goes through call_method(): it clears
 * the client's last error, sends the message, keeps the D-Bus error's name and
 * message for bb_client_error_*() and turns the error into a negative errno,
 * first through the protocol's table, then through sd-bus's standard map.
 * Received fds are dup'ed (F_DUPFD_CLOEXEC, at or above 3) while the reply
 * still owns the originals.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <unistd.h>
#include <linux/dma-buf.h>

#include "bufbroker-protocol.h"
#include "bufbroker.h"
#include "macro.h"

#define _public_ __attribute__((__visibility__("default")))


typedef struct bb_plane {
        int fd;                 /* -1 until the handle owns one */
        uint64_t length;
        uint32_t stride;
        uint32_t offset;
        void *map_addr;
        size_t map_size;        /* what was mmap()ed */
        size_t map_length;      /* what bb_buffer_map_plane() reports */
} bb_plane;

struct bb_client {
        unsigned n_ref;
        sd_bus *bus;
        sd_bus_slot *monitor_slot;
        bb_released_func monitor_callback;
        void *monitor_userdata;
        char *error_name;
        char *error_message;
};

struct bb_buffer {
        unsigned n_ref;
        bb_client *client;
        char *path;
        uint64_t id;
        char *name;
        char *kind;
        uint64_t size;
        uid_t owner_uid;
        bool read_only;
        bool persistent;
        bool frozen;
        uint64_t created_usec;
        bool have_holders;
        unsigned holders;
        /* Received fds (0, or n_planes once the handle is complete). */
        unsigned n_fds;
        /* Planes of the info's "planes" key (or made up from the fds). */
        unsigned n_planes;
        bb_plane planes[BB_PLANES_MAX];
        /* V4L2 format, from the info of Open/OpenFds. */
        uint32_t width, height, fourcc;
        char *format_type;
        bool have_index;
        uint32_t v4l2_index;
};

DEFINE_POINTER_CLEANUP(bb_client, bb_client_unref);
DEFINE_POINTER_CLEANUP(bb_buffer, bb_buffer_unref);

/* ------------------------------------------------------------ errors --- */

static void client_clear_error(bb_client *c) {
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
static int call_method(bb_client *c, sd_bus_message *m, bool buffer_object, sd_bus_message **ret_reply) {
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

static int new_method_call(bb_client *c, const char *path, const char *interface, const char *member,
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
        const char *path;
        uint64_t id;
        int r;

        r = sd_bus_message_read(m, "ot", &path, &id);
        if (r < 0)
                return 0; /* a malformed signal is not worth failing the loop */
        if (c->monitor_callback)
                c->monitor_callback(path, id, c->monitor_userdata);
        return 0;
}

_public_ int bb_client_monitor(bb_client *c, bb_released_func callback, void *userdata) {
        sd_bus_slot *slot = NULL;
        int r;

        if (!c)
                return -EINVAL;
        client_clear_error(c);

        if (!callback) {
                c->monitor_slot = sd_bus_slot_unref(c->monitor_slot);
                c->monitor_callback = NULL;
                c->monitor_userdata = NULL;
                return 0;
        }

        if (!c->monitor_slot) {
                /* Synchronous AddMatch: when this returns, no signal can be missed. */
                r = sd_bus_match_signal(c->bus, &slot, BB_BUS_NAME, NULL, BB_MANAGER_INTERFACE,
                                        "BufferReleased", on_buffer_released, c);
                if (r < 0)
                        return r;
                c->monitor_slot = slot;
        }
        c->monitor_callback = callback;
        c->monitor_userdata = userdata;
        return 0;
}

/* Read a property of the manager object into reply, positioned at the variant. */
static int get_manager_property(bb_client *c, const char *property, const char *contents,
                                sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = new_method_call(c, BB_MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", BB_MANAGER_INTERFACE, property);
        if (r < 0)
                return r;
        r = call_method(c, m, false, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'v', contents);
        if (r < 0)
                return r;
        *ret_reply = TAKE_PTR(reply);
        return 0;
}

_public_ int bb_client_get_version(bb_client *c, char **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *s;
        char *copy;
        int r;

        if (!c || !ret)
                return -EINVAL;
        client_clear_error(c);

        r = get_manager_property(c, "Version", "s", &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &s);
        if (r < 0)
                return r;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

/* Read a variant holding an unsigned number into a uint64_t. The contract
 * says "t"; smaller unsigned types are accepted too, signed ones when not
 * negative. Returns 0 when the variant holds something else (skipped). */
static int read_variant_uint(sd_bus_message *m, uint64_t *ret) {
        union {
                uint64_t t;
                uint32_t u;
                int64_t x;
                int32_t i;
        } v;
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (type != SD_BUS_TYPE_VARIANT || !contents || strlen(contents) != 1 ||
            !strchr("tuxi", contents[0])) {
                r = sd_bus_message_skip(m, "v");
                return r < 0 ? r : 0;
        }

        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, contents);
        if (r < 0)
                return r;
        r = sd_bus_message_read_basic(m, contents[0], &v);
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        switch (contents[0]) {
        case SD_BUS_TYPE_UINT64:
                *ret = v.t;
                return 1;
        case SD_BUS_TYPE_UINT32:
                *ret = v.u;
                return 1;
        case SD_BUS_TYPE_INT64:
                if (v.x < 0)
                        return 0;
                *ret = (uint64_t) v.x;
                return 1;
        default:        /* SD_BUS_TYPE_INT32 */
                if (v.i < 0)
                        return 0;
                *ret = (uint64_t) v.i;
                return 1;
        }
}

/* Read an a{sv} of numbers (Stats or Limits) into one allocation: the array
 * of pairs followed by the key strings it points into. */
static int read_key_values(sd_bus_message *m, bb_key_value **ret, size_t *ret_n) {
        struct pending {
                const char *key;
                uint64_t value;
        } *pending = NULL;
        size_t n = 0, allocated = 0, strings = 0;
        bb_key_value *kv;
        char *p;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;

        for (;;) {
                const char *key;
                uint64_t v;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        goto fail;
                r = read_variant_uint(m, &v);
                if (r < 0)
                        goto fail;
                if (r > 0) {
                        if (n == allocated) {
                                size_t k = allocated ? allocated * 2 : 8;
                                struct pending *np = realloc(pending, k * sizeof(*np));
                                if (!np) {
                                        r = -ENOMEM;
                                        goto fail;
                                }
                                pending = np;
                                allocated = k;
                        }
                        /* key points into m, which outlives this function's use of it */
                        pending[n].key = key;
                        pending[n].value = v;
                        strings += strlen(key) + 1;
                        n++;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        goto fail;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                goto fail;

        kv = malloc(n * sizeof(*kv) + strings + 1);
        if (!kv) {
                r = -ENOMEM;
                goto fail;
        }
        p = (char *) (kv + n);
        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(pending[i].key) + 1;
                memcpy(p, pending[i].key, l);
                kv[i].key = p;
                kv[i].value = pending[i].value;
                p += l;
        }
        free(pending);
        *ret = kv;
        *ret_n = n;
        return 0;
fail:
        free(pending);
        return r;
}

static int get_key_values(bb_client *c, const char *property, bb_key_value **ret, size_t *ret_n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (!c || !ret || !ret_n)
                return -EINVAL;
        client_clear_error(c);

        r = get_manager_property(c, property, "a{sv}", &reply);
        if (r < 0)
                return r;
        return read_key_values(reply, ret, ret_n);
}

static int get_key_value(bb_client *c, const char *property, const char *key, uint64_t *ret) {
        _cleanup_free_ bb_key_value *kv = NULL;
        size_t n;
        int r;

        if (!key || !ret)
                return -EINVAL;
        r = get_key_values(c, property, &kv, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (strcmp(kv[i].key, key) == 0) {
                        *ret = kv[i].value;
                        return 0;
                }
        return -ENODATA;
}

_public_ int bb_client_get_stats(bb_client *c, bb_key_value **ret, size_t *ret_n) {
        return get_key_values(c, "Stats", ret, ret_n);
}

_public_ int bb_client_get_limits(bb_client *c, bb_key_value **ret, size_t *ret_n) {
        return get_key_values(c, "Limits", ret, ret_n);
}

_public_ int bb_client_get_stat(bb_client *c, const char *key, uint64_t *ret) {
        return get_key_value(c, "Stats", key, ret);
}

_public_ int bb_client_get_limit(bb_client *c, const char *key, uint64_t *ret) {
        return get_key_value(c, "Limits", key, ret);
}

/* ------------------------------------------------------------ buffer --- */

static int buffer_new(bb_client *c, const char *path, bb_buffer **ret) {
        bb_buffer *buf;

        buf = calloc(1, sizeof(*buf));
        if (!buf)
                return -ENOMEM;
        buf->n_ref = 1;
        buf->owner_uid = (uid_t) -1;
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

static int set_string(char **field, const char *value) {
        char *copy = strdup(value);

        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

/* Keep a dup of a received fd (at 3 or above, so that it never lands on
 * stdin/stdout/stderr of a process that closed them). */
static int buffer_add_fd(bb_buffer *buf, int fd) {
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
        (void) bb_buffer_unmap(buf);
        for (unsigned i = 0; i < buf->n_fds; i++)
                safe_close(buf->planes[i].fd);
        bb_client_unref(buf->client);
        free(buf->path);
        free(buf->name);
        free(buf->kind);
        free(buf->format_type);
        free(buf);
        return NULL;
}

_public_ bb_buffer **bb_buffer_list_free(bb_buffer **list, size_t n) {
        if (!list)
                return NULL;
        for (size_t i = 0; i < n; i++)
                bb_buffer_unref(list[i]);
        free(list);
        return NULL;
}

static int append_bool_option(sd_bus_message *m, const char *key) {
        return sd_bus_message_append(m, "{sv}", key, "b", 1);
}

static int append_uint64_option(sd_bus_message *m, const char *key, uint64_t v) {
        return sd_bus_message_append(m, "{sv}", key, "t", v);
}

/* Release the buffer at path, for the cleanup of a failed call: errors are
 * ignored, and the client's last error (the one that made us clean up) is
 * left as it is. */
static void release_path_quietly(bb_client *c, const char *path) {
        (void) sd_bus_call_method(c->bus, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release", NULL, NULL, "");
}

_public_ int bb_buffer_create(bb_client *c, const char *name, uint64_t size, unsigned flags,
                              uint64_t ttl_usec, bb_buffer **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        const char *path;
        uint64_t real_size;
        int fd, r;

        if (!c || !ret || (flags & ~BB_CREATE_PERSISTENT))
                return -EINVAL;
        if (!name)
                name = "";
        client_clear_error(c);

        r = new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "st", name, size);
        if (r < 0)
                return r;
        /* Only the options that are set: an older broker that knows fewer
         * keys keeps working for the calls that do not need them. */
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (flags & BB_CREATE_PERSISTENT) {
                r = append_bool_option(m, BB_OPT_PERSISTENT);
                if (r < 0)
                        return r;
        }
        if (ttl_usec > 0) {
                r = append_uint64_option(m, BB_OPT_TTL_USEC, ttl_usec);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;

        r = call_method(c, m, false, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "oht", &path, &fd, &real_size);
        if (r < 0)
                return r;

        /* The buffer exists now: if it cannot become a handle (EMFILE on
         * the dup, ENOMEM), release it, or a persistent one would outlive
         * everything with an id nobody knows. */
        r = buffer_new(c, path, &buf);
        if (r >= 0)
                r = buffer_add_fd(buf, fd);
        if (r >= 0)
                r = set_string(&buf->name, name);
        if (r < 0) {
                release_path_quietly(c, path);
                return r;
        }
        buf->size = real_size;
        buf->n_planes = 1;
        buf->planes[0].length = real_size;
        buf->persistent = flags & BB_CREATE_PERSISTENT;
        /* The broker charges the uid the bus vouches for: the effective one. */
        buf->owner_uid = geteuid();

        *ret = TAKE_PTR(buf);
        return 0;
}

/* Read the "planes" a(tuu) of an info a{sv}, positioned at its variant. */
static int buffer_read_planes(bb_buffer *buf, sd_bus_message *m) {
        unsigned n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "a(tuu)");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'a', "(tuu)");
        if (r < 0)
                return r;
        for (;;) {
                uint64_t length;
                uint32_t stride, offset;

                r = sd_bus_message_read(m, "(tuu)", &length, &stride, &offset);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (n >= BB_PLANES_MAX)
                        return -EBADMSG;
                buf->planes[n].length = length;
                buf->planes[n].stride = stride;
                buf->planes[n].offset = offset;
                n++;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        buf->n_planes = n;
        return 0;
}

/* Apply one entry of Open's info a{sv} to buf; unknown keys are skipped so
 * that a newer broker may add some. */
static int buffer_apply_info(bb_buffer *buf, sd_bus_message *m, const char *key) {
        const char *contents, *s;
        uint64_t t;
        uint32_t u;
        int b, r;
        char type;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;

#define IS_KEY(k, sig) (strcmp(key, (k)) == 0 && contents && strcmp(contents, (sig)) == 0)
        if (IS_KEY(BB_INFO_ID, "t")) {
                r = sd_bus_message_read(m, "v", "t", &t);
                if (r >= 0)
                        buf->id = t;
        } else if (IS_KEY(BB_INFO_SIZE, "t")) {
                r = sd_bus_message_read(m, "v", "t", &t);
                if (r >= 0)
                        buf->size = t;
        } else if (IS_KEY(BB_INFO_KIND, "s")) {
                r = sd_bus_message_read(m, "v", "s", &s);
                if (r >= 0)
                        r = set_string(&buf->kind, s);
        } else if (IS_KEY(BB_INFO_NAME, "s")) {
                r = sd_bus_message_read(m, "v", "s", &s);
                if (r >= 0)
                        r = set_string(&buf->name, s);
        } else if (IS_KEY(BB_INFO_READ_ONLY, "b")) {
                r = sd_bus_message_read(m, "v", "b", &b);
                if (r >= 0)
                        buf->read_only = b;
        } else if (IS_KEY(BB_INFO_OWNER_UID, "u")) {
                r = sd_bus_message_read(m, "v", "u", &u);
                if (r >= 0)
                        buf->owner_uid = u;
        } else if (IS_KEY(BB_INFO_FROZEN, "b")) {
                r = sd_bus_message_read(m, "v", "b", &b);
                if (r >= 0)
                        buf->frozen = b;
        } else if (IS_KEY(BB_INFO_PLANES, "a(tuu)")) {
                r = buffer_read_planes(buf, m);
        } else if (IS_KEY(BB_INFO_INDEX, "u")) {
                r = sd_bus_message_read(m, "v", "u", &u);
                if (r >= 0) {
                        buf->v4l2_index = u;
                        buf->have_index = true;
                }
        } else if (IS_KEY(BB_FMT_WIDTH, "u")) {
                r = sd_bus_message_read(m, "v", "u", &u);
                if (r >= 0)
                        buf->width = u;
        } else if (IS_KEY(BB_FMT_HEIGHT, "u")) {
                r = sd_bus_message_read(m, "v", "u", &u);
                if (r >= 0)
                        buf->height = u;
        } else if (IS_KEY(BB_FMT_FOURCC, "u")) {
                r = sd_bus_message_read(m, "v", "u", &u);
                if (r >= 0)
                        buf->fourcc = u;
        } else if (IS_KEY(BB_FMT_FOURCC, "s")) {
                /* The contract sends the characters ("YUYV"). */
                r = sd_bus_message_read(m, "v", "s", &s);
                if (r >= 0 && bb_fourcc_from_string(s, &u) >= 0)
                        buf->fourcc = u;
        } else if (IS_KEY(BB_FMT_TYPE, "s")) {
                r = sd_bus_message_read(m, "v", "s", &s);
                if (r >= 0)
                        r = set_string(&buf->format_type, s);
        } else
                r = sd_bus_message_skip(m, "v");
#undef IS_KEY
        return r < 0 ? r : 0;
}

/* Read the "ah fds, a{sv} info" that Open and OpenFds reply with. */
static int buffer_read_fds_and_info(bb_buffer *buf, sd_bus_message *reply) {
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "h");
        if (r < 0)
                return r;
        for (;;) {
                int fd;

                r = sd_bus_message_read(reply, "h", &fd);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = buffer_add_fd(buf, fd);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;
        if (buf->n_fds == 0)
                return -EBADMSG;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key;

                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                r = buffer_apply_info(buf, reply, key);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;

        /* One plane per fd. A broker that does not describe its planes has
         * the memfd's one, as long as the whole buffer. */
        if (buf->n_planes == 0) {
                if (buf->n_fds != 1)
                        return -EBADMSG;
                buf->n_planes = 1;
                buf->planes[0].length = buf->size;
        } else if (buf->n_planes != buf->n_fds)
                return -EBADMSG;

        /* Believe the fd over the info: an O_RDONLY fd cannot be mapped
         * writable whatever the info says. */
        r = fcntl(buf->planes[0].fd, F_GETFL);
        if (r >= 0 && (r & O_ACCMODE) == O_RDONLY)
                buf->read_only = true;
        return 0;
}

_public_ int bb_buffer_open(bb_client *c, const char *token, bb_buffer **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        const char *path;
        int r;

        if (!c || !token || !ret)
                return -EINVAL;
        client_clear_error(c);

        r = new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "sa{sv}", token, 0);
        if (r < 0)
                return r;
        r = call_method(c, m, false, &reply);
        if (r < 0)
                return r;

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        r = buffer_new(c, path, &buf);
        if (r < 0)
                return r;
        r = buffer_read_fds_and_info(buf, reply);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(buf);
        return 0;
}

/* Buffer1.OpenFds on the buffer at path. */
static int buffer_open_fds_path(bb_client *c, const char *path, unsigned flags, bb_buffer **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        int r;

        r = new_method_call(c, path, BB_BUFFER_INTERFACE, "OpenFds", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (flags & BB_OPEN_READ_ONLY) {
                r = append_bool_option(m, BB_OPT_READ_ONLY);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = call_method(c, m, true, &reply);
        if (r < 0)
                return r;

        r = buffer_new(c, path, &buf);
        if (r < 0)
                return r;
        r = buffer_read_fds_and_info(buf, reply);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(buf);
        return 0;
}

_public_ int bb_buffer_open_fds(bb_client *c, uint64_t id, unsigned flags, bb_buffer **ret) {
        char path[BB_BUFFER_PATH_MAX];

        if (!c || !ret || (flags & ~BB_OPEN_READ_ONLY))
                return -EINVAL;
        client_clear_error(c);

        bb_buffer_path_from_id(id, path);
        return buffer_open_fds_path(c, path, flags, ret);
}

_public_ int bb_buffer_create_v4l2(bb_client *c, const char *device, unsigned count, uint32_t width,
                                   uint32_t height, uint32_t fourcc, const char *type, unsigned flags,
                                   uint64_t ttl_usec, bb_buffer ***ret, size_t *ret_n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const unsigned known = BB_CREATE_PERSISTENT | BB_CREATE_READ_ONLY;
        _cleanup_free_ const char **paths = NULL;
        bb_buffer **list = NULL;
        size_t n = 0, allocated = 0, i;
        int r;

        if (!c || !device || !*device || count == 0 || (type && !*type) ||
            (flags & ~known) || !ret || !ret_n)
                return -EINVAL;
        client_clear_error(c);

        r = new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateV4L2", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "su", device, (uint32_t) count);
        if (r < 0)
                return r;

        /* Only what is asked for: a value left out is the device's own. */
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && width > 0)
                r = sd_bus_message_append(m, "{sv}", BB_FMT_WIDTH, "u", width);
        if (r >= 0 && height > 0)
                r = sd_bus_message_append(m, "{sv}", BB_FMT_HEIGHT, "u", height);
        if (r >= 0 && fourcc != 0)
                r = sd_bus_message_append(m, "{sv}", BB_FMT_FOURCC, "u", fourcc);
        if (r >= 0 && type)
                r = sd_bus_message_append(m, "{sv}", BB_FMT_TYPE, "s", type);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && (flags & BB_CREATE_PERSISTENT))
                r = append_bool_option(m, BB_OPT_PERSISTENT);
        if (r >= 0 && (flags & BB_CREATE_READ_ONLY))
                r = append_bool_option(m, BB_OPT_READ_ONLY);
        if (r >= 0 && ttl_usec > 0)
                r = append_uint64_option(m, BB_OPT_TTL_USEC, ttl_usec);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;

        r = call_method(c, m, false, &reply);
        if (r < 0)
                return r;

        /* From here on the buffers exist: any failure releases them all. The
         * paths point into reply, which lives until we return. */
        r = sd_bus_message_enter_container(reply, 'a', "o");
        if (r < 0)
                return r;       /* no paths to release: nothing we could do */
        for (;;) {
                const char *path;

                r = sd_bus_message_read(reply, "o", &path);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                if (n == allocated) {
                        size_t k = allocated ? allocated * 2 : 16;
                        const char **np = realloc(paths, k * sizeof(*np));
                        if (!np) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        paths = np;
                        allocated = k;
                }
                paths[n++] = path;
        }
        if (n == 0) {
                r = -EBADMSG;
                goto fail;
        }

        list = calloc(n, sizeof(*list));
        if (!list) {
                r = -ENOMEM;
                goto fail;
        }
        /* One OpenFds per buffer: a message carries only this buffer's fds. */
        for (i = 0; i < n; i++) {
                r = buffer_open_fds_path(c, paths[i], 0, &list[i]);
                if (r < 0)
                        goto fail;
                list[i]->persistent = flags & BB_CREATE_PERSISTENT;
        }

        *ret = list;
        *ret_n = n;
        return 0;

fail:
        /* The hold of this connection goes with it anyway; the persistence
         * of persistent buffers does not: Release ends both. */
        for (i = 0; i < n; i++)
                release_path_quietly(c, paths[i]);
        bb_buffer_list_free(list, n);
        return r;
}

/* Fill buf from a GetAll reply of org.bufbroker.Buffer1. */
static int buffer_apply_properties(bb_buffer *buf, sd_bus_message *m) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key, *contents, *s;
                uint64_t t;
                uint32_t u;
                int b;
                char type;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;

#define IS_PROP(k, sig) (strcmp(key, (k)) == 0 && contents && strcmp(contents, (sig)) == 0)
                if (IS_PROP(BB_PROP_ID, "t")) {
                        r = sd_bus_message_read(m, "v", "t", &t);
                        if (r >= 0)
                                buf->id = t;
                } else if (IS_PROP(BB_PROP_SIZE, "t")) {
                        r = sd_bus_message_read(m, "v", "t", &t);
                        if (r >= 0)
                                buf->size = t;
                } else if (IS_PROP(BB_PROP_CREATED_USEC, "t")) {
                        r = sd_bus_message_read(m, "v", "t", &t);
                        if (r >= 0)
                                buf->created_usec = t;
                } else if (IS_PROP(BB_PROP_NAME, "s")) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0)
                                r = set_string(&buf->name, s);
                } else if (IS_PROP(BB_PROP_KIND, "s")) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0)
                                r = set_string(&buf->kind, s);
                } else if (IS_PROP(BB_PROP_OWNER_UID, "u")) {
                        r = sd_bus_message_read(m, "v", "u", &u);
                        if (r >= 0)
                                buf->owner_uid = u;
                } else if (IS_PROP(BB_PROP_PERSISTENT, "b")) {
                        r = sd_bus_message_read(m, "v", "b", &b);
                        if (r >= 0)
                                buf->persistent = b;
                } else if (IS_PROP(BB_PROP_FROZEN, "b")) {
                        r = sd_bus_message_read(m, "v", "b", &b);
                        if (r >= 0)
                                buf->frozen = b;
                } else
                        r = sd_bus_message_skip(m, "v");
#undef IS_PROP
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        return r < 0 ? r : 0;
}

static int buffer_fetch_properties(bb_buffer *buf) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        bb_client *c = buf->client;
        int r;

        r = new_method_call(c, buf->path, "org.freedesktop.DBus.Properties", "GetAll", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", BB_BUFFER_INTERFACE);
        if (r < 0)
                return r;
        r = call_method(c, m, true, &reply);
        if (r < 0)
                return r;
        return buffer_apply_properties(buf, reply);
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

_public_ int bb_buffer_share(bb_buffer *buf, unsigned flags, uid_t uid, uint64_t ttl_usec, char **ret_token) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const unsigned known = BB_SHARE_READ_ONLY | BB_SHARE_SINGLE_USE | BB_SHARE_UID;
        const char *token;
        char *copy;
        int r;

        if (!buf || !ret_token || (flags & ~known))
                return -EINVAL;
        client_clear_error(buf->client);

        r = new_method_call(buf->client, buf->path, BB_BUFFER_INTERFACE, "Share", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (flags & BB_SHARE_READ_ONLY) {
                r = append_bool_option(m, BB_OPT_READ_ONLY);
                if (r < 0)
                        return r;
        }
        if (flags & BB_SHARE_SINGLE_USE) {
                r = append_bool_option(m, BB_OPT_SINGLE_USE);
                if (r < 0)
                        return r;
        }
        if (flags & BB_SHARE_UID) {
                r = sd_bus_message_append(m, "{sv}", BB_OPT_UID, "u", (uint32_t) uid);
                if (r < 0)
                        return r;
        }
        if (ttl_usec > 0) {
                r = append_uint64_option(m, BB_OPT_TTL_USEC, ttl_usec);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;

        r = call_method(buf->client, m, true, &reply);
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

        r = new_method_call(buf->client, buf->path, BB_BUFFER_INTERFACE, member, &m);
        if (r < 0)
                return r;
        return call_method(buf->client, m, true, NULL);
}

_public_ int bb_buffer_release(bb_buffer *buf) {
        int r;

        r = buffer_call_simple(buf, "Release");
        if (r < 0)
                return r;
        /* It is no longer the owner's to keep: Release ends persistence. */
        if (buf->owner_uid == geteuid() || geteuid() == 0)
                buf->persistent = false;
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

_public_ int bb_buffer_fd(bb_buffer *buf) {
        return bb_buffer_plane_fd(buf, 0);
}

_public_ unsigned bb_buffer_n_planes(bb_buffer *buf) {
        return buf && buf->n_fds > 0 ? buf->n_planes : 0;
}

_public_ int bb_buffer_plane_fd(bb_buffer *buf, unsigned plane) {
        if (!buf)
                return -EINVAL;
        if (buf->n_fds == 0)
                return -ENODATA;
        if (plane >= buf->n_fds)
                return -ERANGE;
        return buf->planes[plane].fd;
}

static const bb_plane *buffer_plane(bb_buffer *buf, unsigned plane) {
        return buf && buf->n_fds > 0 && plane < buf->n_planes ? &buf->planes[plane] : NULL;
}

_public_ uint64_t bb_buffer_plane_length(bb_buffer *buf, unsigned plane) {
        const bb_plane *p = buffer_plane(buf, plane);

        return p ? p->length : 0;
}

_public_ uint32_t bb_buffer_plane_stride(bb_buffer *buf, unsigned plane) {
        const bb_plane *p = buffer_plane(buf, plane);

        return p ? p->stride : 0;
}

_public_ uint32_t bb_buffer_plane_offset(bb_buffer *buf, unsigned plane) {
        const bb_plane *p = buffer_plane(buf, plane);

        return p ? p->offset : 0;
}

_public_ int bb_buffer_is_frozen(bb_buffer *buf) {
        int seals;

        if (!buf)
                return 0;
        if (buf->n_fds > 0) {
                /* The seal is the truth: another holder may have frozen it
                 * since we last asked the broker. (A dma-buf has no seals:
                 * EINVAL, and the broker's word stands.) */
                seals = fcntl(buf->planes[0].fd, F_GET_SEALS);
                if (seals >= 0)
                        return !!(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE));
        }
        return buf->frozen;
}

static bool fd_is_writable(int fd) {
        int flags = fcntl(fd, F_GETFL);

        return flags >= 0 && (flags & O_ACCMODE) != O_RDONLY;
}

_public_ int bb_buffer_is_writable(bb_buffer *buf) {
        if (!buf || buf->n_fds == 0 || buf->read_only)
                return 0;
        for (unsigned i = 0; i < buf->n_fds; i++)
                if (!fd_is_writable(buf->planes[i].fd))
                        return 0;
        return !bb_buffer_is_frozen(buf);
}

_public_ int bb_buffer_map_plane(bb_buffer *buf, unsigned plane, void **ret_addr, size_t *ret_size) {
        struct stat st;
        bb_plane *p;
        uint64_t size;
        void *addr;
        int prot;

        if (!buf || !ret_addr || !ret_size)
                return -EINVAL;
        if (buf->n_fds == 0)
                return -ENODATA;
        if (plane >= buf->n_fds)
                return -ERANGE;
        p = &buf->planes[plane];

        if (!p->map_addr) {
                /* Map what the fd really has: mapping beyond the end of a
                 * memfd only buys SIGBUS, and a dma-buf refuses it. A dma-buf
                 * is usually larger than its plane (page-rounded). */
                if (fstat(p->fd, &st) < 0)
                        return negative_errno();
                size = st.st_size > 0 ? (uint64_t) st.st_size : p->length;
                if (size == 0)
                        return -EBADFD;
                if (size > SIZE_MAX)
                        return -EFBIG;

                prot = bb_buffer_is_writable(buf) ? PROT_READ | PROT_WRITE : PROT_READ;
                addr = mmap(NULL, (size_t) size, prot, MAP_SHARED, p->fd, 0);
                if (addr == MAP_FAILED)
                        return negative_errno();
                p->map_addr = addr;
                p->map_size = (size_t) size;
                /* The caller gets the plane's bytes, never more than is mapped. */
                p->map_length = p->length > 0 && p->length <= size ? (size_t) p->length : (size_t) size;
        }
        *ret_addr = p->map_addr;
        *ret_size = p->map_length;
        return 0;
}

_public_ int bb_buffer_map(bb_buffer *buf, void **ret_addr, size_t *ret_size) {
        return bb_buffer_map_plane(buf, 0, ret_addr, ret_size);
}

_public_ int bb_buffer_unmap(bb_buffer *buf) {
        int r = 0;

        if (!buf)
                return -EINVAL;
        for (unsigned i = 0; i < BB_PLANES_MAX; i++) {
                bb_plane *p = &buf->planes[i];

                if (!p->map_addr)
                        continue;
                if (munmap(p->map_addr, p->map_size) < 0) {
                        if (r == 0)
                                r = negative_errno();
                        continue;
                }
                p->map_addr = NULL;
                p->map_size = p->map_length = 0;
        }
        return r;
}

/* DMA_BUF_IOCTL_SYNC on one fd. The kernel may be interrupted, or ask us to
 * come back while a fence is pending: both mean "again". */
static int dma_buf_sync(int fd, uint64_t flags) {
        struct dma_buf_sync sync = { .flags = flags };

        while (ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) < 0)
                if (errno != EINTR && errno != EAGAIN)
                        return negative_errno();
        return 0;
}

static int sync_check(bb_buffer *buf, unsigned flags, uint64_t *ret_dma_flags) {
        uint64_t f = 0;

        if (!buf || flags == 0 || (flags & ~(unsigned) BB_SYNC_RW))
                return -EINVAL;
        if (buf->n_fds == 0)
                return -ENODATA;
        /* A memfd is plain memory: nothing to be coherent with. */
        if (strcmp(buf->kind, BB_KIND_MEMFD) == 0)
                return 0;
        if (flags & BB_SYNC_READ)
                f |= DMA_BUF_SYNC_READ;
        if (flags & BB_SYNC_WRITE)
                f |= DMA_BUF_SYNC_WRITE;
        *ret_dma_flags = f;
        return 1;
}

_public_ int bb_buffer_sync_begin(bb_buffer *buf, unsigned flags) {
        uint64_t f;
        int r;

        r = sync_check(buf, flags, &f);
        if (r <= 0)
                return r;
        for (unsigned i = 0; i < buf->n_fds; i++) {
                r = dma_buf_sync(buf->planes[i].fd, DMA_BUF_SYNC_START | f);
                if (r < 0) {
                        /* Leave nothing begun that the caller will not end. */
                        while (i > 0)
                                (void) dma_buf_sync(buf->planes[--i].fd, DMA_BUF_SYNC_END | f);
                        return r;
                }
        }
        return 0;
}

_public_ int bb_buffer_sync_end(bb_buffer *buf, unsigned flags) {
        uint64_t f;
        int r, k;

        r = sync_check(buf, flags, &f);
        if (r <= 0)
                return r;
        /* End every plane even if one fails; report the first failure. */
        r = 0;
        for (unsigned i = 0; i < buf->n_fds; i++) {
                k = dma_buf_sync(buf->planes[i].fd, DMA_BUF_SYNC_END | f);
                if (k < 0 && r == 0)
                        r = k;
        }
        return r;
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

_public_ uint64_t bb_buffer_created_usec(bb_buffer *buf) {
        return buf ? buf->created_usec : 0;
}

_public_ int bb_buffer_get_holders(bb_buffer *buf, unsigned *ret) {
        if (!buf || !ret)
                return -EINVAL;
        if (!buf->have_holders)
                return -ENODATA;
        *ret = buf->holders;
        return 0;
}

_public_ uint32_t bb_buffer_width(bb_buffer *buf) {
        return buf ? buf->width : 0;
}

_public_ uint32_t bb_buffer_height(bb_buffer *buf) {
        return buf ? buf->height : 0;
}

_public_ uint32_t bb_buffer_fourcc(bb_buffer *buf) {
        return buf ? buf->fourcc : 0;
}

_public_ const char *bb_buffer_format_type(bb_buffer *buf) {
        return buf ? buf->format_type : NULL;
}

_public_ int bb_buffer_v4l2_index(bb_buffer *buf) {
        if (!buf)
                return -EINVAL;
        if (!buf->have_index || buf->v4l2_index > INT_MAX)
                return -ENODATA;
        return (int) buf->v4l2_index;
}

/* ------------------------------------------------------------ fourcc --- */

_public_ int bb_fourcc_from_string(const char *s, uint32_t *ret) {
        uint32_t v = 0;
        size_t n;

        if (!s || !ret)
                return -EINVAL;
        n = strlen(s);
        if (n < 1 || n > 4 || s[0] == ' ')
                return -EINVAL;
        for (size_t i = 0; i < 4; i++) {
                unsigned char ch = i < n ? (unsigned char) s[i] : ' ';

                if (ch < 0x20 || ch > 0x7e)
                        return -EINVAL;
                v |= (uint32_t) ch << (8 * i);
        }
        *ret = v;
        return 0;
}

_public_ char *bb_fourcc_to_string(uint32_t fourcc, char *buf) {
        if (!buf)
                return NULL;
        for (unsigned i = 0; i < 4; i++) {
                unsigned char ch = (unsigned char) (fourcc >> (8 * i));

                buf[i] = ch >= 0x20 && ch <= 0x7e ? (char) ch : '?';
        }
        buf[4] = 0;
        return buf;
}

/* ----------------------------------------------------------- listing --- */

_public_ int bb_client_list_buffers(bb_client *c, bb_buffer ***ret, size_t *ret_n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        bb_buffer **list = NULL;
        size_t n = 0, allocated = 0;
        int r;

        if (!c || !ret || !ret_n)
                return -EINVAL;
        client_clear_error(c);

        r = new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "ListBuffers", &m);
        if (r < 0)
                return r;
        r = call_method(c, m, false, &reply);
        if (r < 0)
                return r;

        r = sd_bus_message_enter_container(reply, 'a', BB_LIST_ENTRY_SIGNATURE);
        if (r < 0)
                return r;
        for (;;) {
                const char *path, *name, *kind;
                uint64_t id, size, created;
                uint32_t owner, holders;
                int persistent, frozen;
                bb_buffer *buf;

                r = sd_bus_message_read(reply, BB_LIST_ENTRY_SIGNATURE, &path, &id, &name, &kind, &size,
                                        &owner, &persistent, &frozen, &holders, &created);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;

                if (n == allocated) {
                        size_t k = allocated ? allocated * 2 : 16;
                        bb_buffer **nl = realloc(list, k * sizeof(*nl));
                        if (!nl) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        list = nl;
                        allocated = k;
                }

                r = buffer_new(c, path, &buf);
                if (r < 0)
                        goto fail;
                list[n++] = buf;
                buf->id = id;
                r = set_string(&buf->name, name);
                if (r < 0)
                        goto fail;
                r = set_string(&buf->kind, kind);
                if (r < 0)
                        goto fail;
                buf->size = size;
                buf->owner_uid = owner;
                buf->persistent = persistent;
                buf->frozen = frozen;
                buf->holders = holders;
                buf->have_holders = true;
                buf->created_usec = created;
        }
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                goto fail;

        *ret = list;
        *ret_n = n;
        return 0;
fail:
        bb_buffer_list_free(list, n);
        return r;
}
