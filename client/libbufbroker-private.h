/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the files of libbufbroker share and nobody else sees: the two handle
 * structs and the internal calls between the files. Each file holds one job:
 *
 *   client.c   the connection, the call path and the D-Bus error → errno map
 *   manager.c  what the Broker1 object reports: version, stats, limits, list
 *   buffer.c   buffer handles and the calls that change a buffer's state
 *   wire.c     the one table-driven reader of a buffer's fields (Open's info
 *              and Buffer1's properties)
 *   map.c      a handle's planes: fds, mappings, DMA-BUF sync
 *   v4l2.c     CreateV4L2, the V4L2 format of a handle, fourcc strings
 *
 * Everything here is hidden (-fvisibility=hidden); only _public_ functions,
 * all declared in bufbroker.h, are exported.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "bufbroker-protocol.h"
#include "bufbroker.h"

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
        bool is_private;        /* a private connection (bb_client_open_private) */
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
        bool prefaulted;
        uint64_t page_size;
        uint64_t created_usec;
        bool have_holders;
        unsigned holders;
        /* Received fds (0, or n_planes once the handle is complete). */
        unsigned n_fds;
        /* Planes of the info's "planes" key or the Planes property (or made
         * up from the fds). */
        unsigned n_planes;
        bb_plane planes[BB_PLANES_MAX];
        /* V4L2 format, from the info of Open/OpenFds or the Format property. */
        uint32_t width, height, fourcc;
        char *format_type;
        bool have_index;
        uint32_t v4l2_index;
};

/* client.c */
void client_clear_error(bb_client *c);
int client_call(bb_client *c, sd_bus_message *m, bool buffer_object, sd_bus_message **ret_reply);
int client_new_method_call(bb_client *c, const char *path, const char *interface, const char *member,
                           sd_bus_message **ret);

/* buffer.c */
int buffer_new(bb_client *c, const char *path, bb_buffer **ret);
int buffer_set_string(char **field, const char *value);
int buffer_add_fd(bb_buffer *buf, int fd);
int buffer_append_bool_option(sd_bus_message *m, const char *key);
int buffer_append_uint64_option(sd_bus_message *m, const char *key, uint64_t v);
void buffer_release_path_quietly(bb_client *c, const char *path);
int buffer_open_fds_path(bb_client *c, const char *path, unsigned flags, bb_buffer **ret);

/* wire.c */
int wire_read_fds_and_info(bb_buffer *buf, sd_bus_message *reply);
int wire_read_properties(bb_buffer *buf, sd_bus_message *reply);
