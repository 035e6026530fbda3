/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading what the broker says about a buffer into a bb_buffer. Open and
 * OpenFds reply "ah fds, a{sv} info", GetAll on org.bufbroker.Buffer1 an
 * a{sv} of properties: two dictionaries with different key names for mostly
 * the same fields. One table says, per field, its key in each dictionary,
 * its signature and how to store it, and one reader walks any of them, so
 * that a field is added (or fixed) in one place for both.
 *
 * Unknown keys, and known keys with another signature, are skipped: a newer
 * broker may add some. A key the broker leaves out leaves the field as it
 * was, so an older broker that lacks a property (Planes and Format are
 * newer than the others) is no error: the handle just knows less.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "libbufbroker-private.h"
#include "macro.h"

/* The dictionaries a key may appear in. */
enum {
        WIRE_INFO,              /* the info a{sv} of Open and OpenFds */
        WIRE_PROPERTY,          /* the properties of org.bufbroker.Buffer1 */
        WIRE_FORMAT,            /* the a{sv} of the Format property */
        _WIRE_SCOPE_MAX,
};

/* Store the variant m is positioned at into field (a member of buf). */
typedef int (*wire_store)(bb_buffer *buf, void *field, sd_bus_message *m);

typedef struct wire_field {
        const char *key[_WIRE_SCOPE_MAX];       /* NULL: not in that dictionary */
        const char *signature;                  /* of the variant's contents */
        wire_store store;
        size_t offset;                          /* of field in bb_buffer */
} wire_field;

_Static_assert(sizeof(uid_t) == sizeof(uint32_t), "uid_t is read as a D-Bus 'u'");

static int read_dict(bb_buffer *buf, sd_bus_message *m, unsigned scope);

static int store_uint64(bb_buffer *buf, void *field, sd_bus_message *m) {
        return sd_bus_message_read(m, "v", "t", field);
}

static int store_uint32(bb_buffer *buf, void *field, sd_bus_message *m) {
        return sd_bus_message_read(m, "v", "u", field);
}

static int store_bool(bb_buffer *buf, void *field, sd_bus_message *m) {
        int b, r;

        r = sd_bus_message_read(m, "v", "b", &b);
        if (r >= 0)
                *(bool *) field = b;
        return r;
}

static int store_string(bb_buffer *buf, void *field, sd_bus_message *m) {
        const char *s;
        int r;

        r = sd_bus_message_read(m, "v", "s", &s);
        if (r < 0)
                return r;
        return buffer_set_string(field, s);
}

/* The contract sends a fourcc as its characters ("YUYV"); a string that is
 * none is ignored. */
static int store_fourcc_string(bb_buffer *buf, void *field, sd_bus_message *m) {
        const char *s;
        uint32_t u;
        int r;

        r = sd_bus_message_read(m, "v", "s", &s);
        if (r >= 0 && bb_fourcc_from_string(s, &u) >= 0)
                *(uint32_t *) field = u;
        return r;
}

static int store_index(bb_buffer *buf, void *field, sd_bus_message *m) {
        int r;

        r = store_uint32(buf, field, m);
        if (r >= 0)
                buf->have_index = true;
        return r;
}

/* a(tuu): length, bytesperline, offset per plane. A handle that owns fds
 * keeps one plane per fd (a sysv holder its one segment): a list of another
 * length is a broken reply (an empty one says nothing, and changes
 * nothing). */
static int store_planes(bb_buffer *buf, void *field, sd_bus_message *m) {
        struct {
                uint64_t length;
                uint32_t stride, offset;
        } planes[BB_PLANES_MAX];
        unsigned n = 0, held;
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
                planes[n].length = length;
                planes[n].stride = stride;
                planes[n].offset = offset;
                n++;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        /* A holder's handle keeps its planes: one per fd, or the one
         * segment it attaches. */
        held = buf->segment_held ? 1 : buf->n_fds;
        if (held > 0) {
                if (n == 0)
                        return 0;
                if (n != held)
                        return -EBADMSG;
        }
        for (unsigned i = 0; i < n; i++) {
                buf->planes[i].length = planes[i].length;
                buf->planes[i].stride = planes[i].stride;
                buf->planes[i].offset = planes[i].offset;
        }
        buf->n_planes = n;
        return 0;
}

/* The Format property: the same keys as the format part of Open's info. */
static int store_format(bb_buffer *buf, void *field, sd_bus_message *m) {
        int r;

        r = sd_bus_message_enter_container(m, 'v', "a{sv}");
        if (r < 0)
                return r;
        r = read_dict(buf, m, WIRE_FORMAT);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

/* ShmName is "" for every kind but posix: no name, as from an older broker. */
static int store_shm_name(bb_buffer *buf, void *field, sd_bus_message *m) {
        const char *s;
        int r;

        r = sd_bus_message_read(m, "v", "s", &s);
        if (r < 0)
                return r;
        if (!*s) {
                free(buf->shm_name);
                buf->shm_name = NULL;
                return 0;
        }
        return buffer_set_string(field, s);
}

/* ShmId is -1 for every kind but sysv; anything negative means none. */
static int store_shmid(bb_buffer *buf, void *field, sd_bus_message *m) {
        int32_t id;
        int r;

        r = sd_bus_message_read(m, "v", "i", &id);
        if (r >= 0)
                buf->shmid = id < 0 ? -1 : id;
        return r;
}

static int store_allocated(bb_buffer *buf, void *field, sd_bus_message *m) {
        int r;

        r = store_uint64(buf, field, m);
        if (r >= 0)
                buf->have_allocated = true;
        return r;
}

static int store_holders(bb_buffer *buf, void *field, sd_bus_message *m) {
        int r;

        r = store_uint32(buf, field, m);
        if (r >= 0)
                buf->have_holders = true;
        return r;
}

#define FIELD(member) offsetof(bb_buffer, member)

static const wire_field wire_fields[] = {
        /* info key             property                format key */
        { { BB_INFO_ID,         BB_PROP_ID,             NULL },
          "t",          store_uint64,           FIELD(id) },
        { { BB_INFO_SIZE,       BB_PROP_SIZE,           NULL },
          "t",          store_uint64,           FIELD(size) },
        { { NULL,               BB_PROP_CREATED_USEC,   NULL },
          "t",          store_uint64,           FIELD(created_usec) },
        { { BB_INFO_NAME,       BB_PROP_NAME,           NULL },
          "s",          store_string,           FIELD(name) },
        { { BB_INFO_KIND,       BB_PROP_KIND,           NULL },
          "s",          store_string,           FIELD(kind) },
        { { BB_INFO_OWNER_UID,  BB_PROP_OWNER_UID,      NULL },
          "u",          store_uint32,           FIELD(owner_uid) },
        { { BB_INFO_READ_ONLY,  NULL,                   NULL },
          "b",          store_bool,             FIELD(read_only) },
        { { NULL,               BB_PROP_PERSISTENT,     NULL },
          "b",          store_bool,             FIELD(persistent) },
        { { BB_INFO_FROZEN,     BB_PROP_FROZEN,         NULL },
          "b",          store_bool,             FIELD(frozen) },
        { { BB_INFO_PAGE_SIZE,  BB_PROP_PAGE_SIZE,      NULL },
          "t",          store_uint64,           FIELD(page_size) },
        { { BB_INFO_PREFAULTED, BB_PROP_PREFAULTED,     NULL },
          "b",          store_bool,             FIELD(prefaulted) },
        { { BB_INFO_PLANES,     BB_PROP_PLANES,         NULL },
          "a(tuu)",     store_planes,           FIELD(planes) },
        { { BB_INFO_INDEX,      NULL,                   BB_INFO_INDEX },
          "u",          store_index,            FIELD(v4l2_index) },
        { { BB_FMT_WIDTH,       NULL,                   BB_FMT_WIDTH },
          "u",          store_uint32,           FIELD(width) },
        { { BB_FMT_HEIGHT,      NULL,                   BB_FMT_HEIGHT },
          "u",          store_uint32,           FIELD(height) },
        { { BB_FMT_FOURCC,      NULL,                   BB_FMT_FOURCC },
          "u",          store_uint32,           FIELD(fourcc) },
        { { BB_FMT_FOURCC,      NULL,                   BB_FMT_FOURCC },
          "s",          store_fourcc_string,    FIELD(fourcc) },
        { { BB_FMT_TYPE,        NULL,                   BB_FMT_TYPE },
          "s",          store_string,           FIELD(format_type) },
        { { NULL,               BB_PROP_FORMAT,         NULL },
          "a{sv}",      store_format,           0 },
        { { NULL,               BB_PROP_HOLDERS,        NULL },
          "u",          store_holders,          FIELD(holders) },
        { { BB_INFO_SHM_NAME,   BB_PROP_SHM_NAME,       NULL },
          "s",          store_shm_name,         FIELD(shm_name) },
        { { BB_INFO_SHMID,      BB_PROP_SHM_ID,         NULL },
          "i",          store_shmid,            FIELD(shmid) },
        { { NULL,               BB_PROP_ALLOCATED_BYTES, NULL },
          "t",          store_allocated,        FIELD(allocated_bytes) },
};

static const wire_field *find_field(unsigned scope, const char *key, const char *signature) {
        for (size_t i = 0; i < ELEMENTSOF(wire_fields); i++) {
                const wire_field *f = &wire_fields[i];

                if (f->key[scope] && strcmp(f->key[scope], key) == 0 && signature &&
                    strcmp(f->signature, signature) == 0)
                        return f;
        }
        return NULL;
}

/* Read an a{sv} of the dictionary scope into buf. */
static int read_dict(bb_buffer *buf, sd_bus_message *m, unsigned scope) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key, *contents;
                const wire_field *f;
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
                f = find_field(scope, key, contents);
                if (f)
                        r = f->store(buf, (char *) buf + f->offset, m);
                else
                        r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        return r < 0 ? r : 0;
}

/* Read the "ah fds, a{sv} info" that Create, Open and OpenFds reply with. */
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

        r = read_dict(buf, reply, WIRE_INFO);
        if (r < 0)
                return r;

        /* A SysV segment comes without fds: the holder attaches it by its
         * shmid, which the info must then carry. Every other kind has one
         * fd per plane. */
        if (buf->n_fds == 0) {
                if (!buffer_is_kind(buf, BB_KIND_SYSV) || buf->shmid < 0 || buf->n_planes > 1)
                        return -EBADMSG;
                buf->segment_held = true;
                buf->n_planes = 1;
                if (buf->planes[0].length == 0)
                        buf->planes[0].length = buf->size;
                return 0;
        }

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

/* Read a GetAll reply of org.bufbroker.Buffer1, or the a{sv} of one entry
 * of ListBufferProperties (the same keys). */
int wire_read_properties(bb_buffer *buf, sd_bus_message *reply) {
        return read_dict(buf, reply, WIRE_PROPERTY);
}
