/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the broker's manager object reports, as opposed to what one buffer
 * does: the Version, Stats and Limits properties and the list of buffers.
 * None of these changes the broker's state.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "libbufbroker-private.h"
#include "macro.h"

/* Read a property of the manager object into reply, positioned at the variant. */
static int get_manager_property(bb_client *c, const char *property, const char *contents,
                                sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = client_new_method_call(c, BB_MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", BB_MANAGER_INTERFACE, property);
        if (r < 0)
                return r;
        r = client_call(c, m, false, &reply);
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

static int list_append(bb_buffer ***list, size_t *n, size_t *allocated, bb_buffer *buf) {
        if (*n == *allocated) {
                size_t k = *allocated ? *allocated * 2 : 16;
                bb_buffer **nl = realloc(*list, k * sizeof(*nl));

                if (!nl)
                        return -ENOMEM;
                *list = nl;
                *allocated = k;
        }
        (*list)[(*n)++] = buf;
        return 0;
}

/* ListBufferProperties: each buffer's fields by name (wire.c's table), so
 * that a field the broker adds breaks nothing. */
static int list_by_name(bb_client *c, sd_bus_message *reply, bb_buffer ***ret, size_t *ret_n) {
        bb_buffer **list = NULL;
        size_t n = 0, allocated = 0;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', BB_LIST_PROPERTIES_ENTRY_SIGNATURE);
        while (r >= 0) {
                const char *path;
                bb_buffer *buf;

                r = sd_bus_message_enter_container(reply, 'r', "oa{sv}");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "o", &path);
                if (r < 0)
                        break;
                r = buffer_new(c, path, &buf);
                if (r < 0)
                        break;
                r = list_append(&list, &n, &allocated, buf);
                if (r < 0) {
                        bb_buffer_unref(buf);
                        break;
                }
                r = wire_read_properties(buf, reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                bb_buffer_list_free(list, n);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

_public_ int bb_client_list_buffers(bb_client *c, bb_buffer ***ret, size_t *ret_n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        bb_buffer **list = NULL;
        size_t n = 0, allocated = 0;
        int r;

        if (!c || !ret || !ret_n)
                return -EINVAL;
        client_clear_error(c);

        r = client_new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "ListBufferProperties", &m);
        if (r < 0)
                return r;
        r = client_call(c, m, false, &reply);
        if (r >= 0)
                return list_by_name(c, reply, ret, ret_n);
        if (!c->error_name || strcmp(c->error_name, SD_BUS_ERROR_UNKNOWN_METHOD) != 0)
                return r;

        /* An older broker: the positional ListBuffers. */
        client_clear_error(c);
        m = sd_bus_message_unref(m);
        r = client_new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "ListBuffers", &m);
        if (r < 0)
                return r;
        r = client_call(c, m, false, &reply);
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
                r = buffer_set_string(&buf->name, name);
                if (r < 0)
                        goto fail;
                r = buffer_set_string(&buf->kind, kind);
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
