/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * V4L2 buffers: CreateV4L2 (the device allocates, the broker exports one
 * dma-buf per plane, the library fetches them one buffer per message), the
 * V4L2 format a handle carries, and the fourcc <-> string helpers.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "libbufbroker-private.h"
#include "macro.h"

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

        r = client_new_method_call(c, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateV4L2", &m);
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
                r = buffer_append_bool_option(m, BB_OPT_PERSISTENT);
        if (r >= 0 && (flags & BB_CREATE_READ_ONLY))
                r = buffer_append_bool_option(m, BB_OPT_READ_ONLY);
        if (r >= 0 && ttl_usec > 0)
                r = buffer_append_uint64_option(m, BB_OPT_TTL_USEC, ttl_usec);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;

        r = client_call(c, m, false, &reply);
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
                buffer_release_path_quietly(c, paths[i]);
        bb_buffer_list_free(list, n);
        return r;
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

