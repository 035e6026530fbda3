/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * V4L2 buffers: CreateV4L2 (the device allocates, the broker exports one
 * dma-buf per plane, the library fetches them one buffer per message,
 * several messages in flight at once), the V4L2 format a handle carries,
 * and the fourcc <-> string helpers.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "libbufbroker-private.h"
#include "macro.h"

/* OpenFds calls in flight at once. The broker lets 32 calls of a connection
 * wait (PEER_QUEUE_MAX in daemon/bus.h; beyond, LimitsExceeded) and
 * dbus-daemon bounds a connection's pending replies too: 8 leaves room for
 * the caller's own asynchronous calls, and already hides the round trips
 * (one buffer's reply is read while the next 7 are served). */
#define OPEN_FDS_WINDOW 8u

/* The OpenFds calls of one CreateV4L2 reply, in flight. */
typedef struct open_fds_batch {
        bb_client *client;
        const char *const *paths;
        size_t n;
        bb_buffer **list;       /* n handles, in paths' order */
        bb_call *calls[OPEN_FDS_WINDOW];
        size_t next;            /* the next path to ask for */
        size_t done;
        int error;
} open_fds_batch;

static void open_fds_collected(bb_call *call, int error, const char *error_name, const char *error_message,
                               sd_bus_message *reply) {
        open_fds_batch *b = call->userdata;
        size_t i = call->count;

        b->calls[i % OPEN_FDS_WINDOW] = call_unref_internal(b->calls[i % OPEN_FDS_WINDOW]);
        b->done++;
        if (error >= 0)
                error = buffer_from_fds_reply(b->client, b->paths[i], reply, &b->list[i]);
        if (error < 0 && b->error == 0) {
                b->error = error;
                if (error_name) {       /* the first failure is the one to report */
                        b->client->error_name = strdup(error_name);
                        b->client->error_message = error_message ? strdup(error_message) : NULL;
                }
        }
}

static int open_fds_send(open_fds_batch *b) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        size_t i = b->next;
        bb_call *call;
        int r;

        r = buffer_open_fds_message(b->client, b->paths[i], 0, &m);
        if (r < 0)
                return r;
        r = client_call_new(b->client, open_fds_collected, NULL, b, &call);
        if (r < 0)
                return r;
        call->internal = true;
        call->buffer_object = true;
        call->count = (unsigned) i;
        r = client_call_async(b->client, m, call, &b->calls[i % OPEN_FDS_WINDOW]);
        if (r < 0) {
                call_unref_internal(call);
                return r;
        }
        b->next++;
        return 0;
}

/* One OpenFds per buffer (a message carries only that buffer's fds), up to
 * OPEN_FDS_WINDOW in flight: n buffers cost about n/8 round trips, not n.
 * The bus is processed here; the user's callbacks that come meanwhile wait
 * (client_defer()) and run from the next bb_client_process(). From within
 * a callback sd-bus does not let us process (its dispatch is not
 * reentrant): then the calls go one at a time. */
static int open_fds_all(bb_client *c, const char *const *paths, size_t n, bb_buffer **list) {
        open_fds_batch b = { .client = c, .paths = paths, .n = n, .list = list };
        int r = 0;

        if (sd_bus_get_current_message(c->bus)) {
                for (size_t i = 0; i < n; i++) {
                        r = buffer_open_fds_path(c, paths[i], 0, &list[i]);
                        if (r < 0)
                                return r;
                }
                return 0;
        }

        c->hold_callbacks++;
        while (b.done < b.next || (b.error == 0 && b.next < n)) {
                /* A slot is free once its call was answered (in order, as
                 * the broker answers, or not: a timeout is local). */
                while (b.error == 0 && b.next < n && !b.calls[b.next % OPEN_FDS_WINDOW]) {
                        r = open_fds_send(&b);
                        if (r < 0)
                                b.error = r;
                }
                if (b.done == b.next)
                        break;
                r = sd_bus_process(c->bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(c->bus, UINT64_MAX);
                if (r < 0 && r != -EINTR) {
                        b.error = b.error ?: r;
                        break;
                }
        }
        /* Calls still in flight (the connection failed): never called back. */
        for (size_t i = 0; i < OPEN_FDS_WINDOW; i++)
                b.calls[i] = bb_call_unref(b.calls[i]);
        c->hold_callbacks--;
        return b.error;
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
        r = open_fds_all(c, paths, n, list);
        if (r < 0)
                goto fail;
        for (i = 0; i < n; i++)
                list[i]->persistent = flags & BB_CREATE_PERSISTENT;

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

