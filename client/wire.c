/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading what the broker says about a buffer into a bb_buffer: the
 * "ah fds, a{sv} info" of Open and OpenFds, and the a{sv} of GetAll on
 * org.bufbroker.Buffer1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "libbufbroker-private.h"
#include "macro.h"

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
                        r = buffer_set_string(&buf->kind, s);
        } else if (IS_KEY(BB_INFO_NAME, "s")) {
                r = sd_bus_message_read(m, "v", "s", &s);
                if (r >= 0)
                        r = buffer_set_string(&buf->name, s);
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
                        r = buffer_set_string(&buf->format_type, s);
        } else
                r = sd_bus_message_skip(m, "v");
#undef IS_KEY
        return r < 0 ? r : 0;
}

/* Read the "ah fds, a{sv} info" that Open and OpenFds reply with. */
int wire_read_fds_and_info(bb_buffer *buf, sd_bus_message *reply) {
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

/* Fill buf from a GetAll reply of org.bufbroker.Buffer1. */
int wire_read_properties(bb_buffer *buf, sd_bus_message *m) {
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
                                r = buffer_set_string(&buf->name, s);
                } else if (IS_PROP(BB_PROP_KIND, "s")) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0)
                                r = buffer_set_string(&buf->kind, s);
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
