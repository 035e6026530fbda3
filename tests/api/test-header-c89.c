/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The public header must compile as strict C89 (-std=c89 -pedantic -Werror):
 * any program may include it. Referencing every declaration here also makes
 * the linker prove that each one is exported from the shared library.
 */
#include <stdio.h>

#include <bufbroker.h>

typedef void (*any_func)(void);

static void released(const char *path, uint64_t id, void *userdata) {
        (void) path;
        (void) id;
        (void) userdata;
}

int main(void) {
        /* C89: declarations first, no // comments, no bool, no inline. */
        bb_client *c = NULL;
        bb_buffer *buf = NULL;
        bb_key_value kv;
        bb_released_func cb = released;
        unsigned flags = BB_CREATE_PERSISTENT | BB_CREATE_READ_ONLY | BB_SHARE_READ_ONLY | BB_SHARE_SINGLE_USE |
                BB_SHARE_UID | BB_OPEN_READ_ONLY | BB_SYNC_READ | BB_SYNC_WRITE | BB_SYNC_RW;
        char fourcc[BB_FOURCC_STRING_MAX];
        any_func funcs[61];
        size_t i = 0;

        funcs[i++] = (any_func) bb_client_new;
        funcs[i++] = (any_func) bb_client_new_user;
        funcs[i++] = (any_func) bb_client_new_address;
        funcs[i++] = (any_func) bb_client_ref;
        funcs[i++] = (any_func) bb_client_unref;
        funcs[i++] = (any_func) bb_client_unrefp;
        funcs[i++] = (any_func) bb_client_error_name;
        funcs[i++] = (any_func) bb_client_error_message;
        funcs[i++] = (any_func) bb_client_get_fd;
        funcs[i++] = (any_func) bb_client_get_events;
        funcs[i++] = (any_func) bb_client_process;
        funcs[i++] = (any_func) bb_client_monitor;
        funcs[i++] = (any_func) bb_client_get_version;
        funcs[i++] = (any_func) bb_client_get_stat;
        funcs[i++] = (any_func) bb_client_get_limit;
        funcs[i++] = (any_func) bb_client_get_stats;
        funcs[i++] = (any_func) bb_client_get_limits;
        funcs[i++] = (any_func) bb_client_list_buffers;
        funcs[i++] = (any_func) bb_buffer_list_free;
        funcs[i++] = (any_func) bb_buffer_create;
        funcs[i++] = (any_func) bb_buffer_open;
        funcs[i++] = (any_func) bb_buffer_get;
        funcs[i++] = (any_func) bb_buffer_ref;
        funcs[i++] = (any_func) bb_buffer_unref;
        funcs[i++] = (any_func) bb_buffer_unrefp;
        funcs[i++] = (any_func) bb_buffer_refresh;
        funcs[i++] = (any_func) bb_buffer_share;
        funcs[i++] = (any_func) bb_buffer_release;
        funcs[i++] = (any_func) bb_buffer_freeze;
        funcs[i++] = (any_func) bb_buffer_fd;
        funcs[i++] = (any_func) bb_buffer_map;
        funcs[i++] = (any_func) bb_buffer_unmap;
        funcs[i++] = (any_func) bb_buffer_id;
        funcs[i++] = (any_func) bb_buffer_size;
        funcs[i++] = (any_func) bb_buffer_name;
        funcs[i++] = (any_func) bb_buffer_kind;
        funcs[i++] = (any_func) bb_buffer_path;
        funcs[i++] = (any_func) bb_buffer_owner_uid;
        funcs[i++] = (any_func) bb_buffer_is_read_only;
        funcs[i++] = (any_func) bb_buffer_is_persistent;
        funcs[i++] = (any_func) bb_buffer_is_frozen;
        funcs[i++] = (any_func) bb_buffer_is_writable;
        funcs[i++] = (any_func) bb_buffer_created_usec;
        funcs[i++] = (any_func) bb_buffer_get_holders;
        funcs[i++] = (any_func) bb_buffer_create_v4l2;
        funcs[i++] = (any_func) bb_buffer_open_fds;
        funcs[i++] = (any_func) bb_buffer_map_plane;
        funcs[i++] = (any_func) bb_buffer_sync_begin;
        funcs[i++] = (any_func) bb_buffer_sync_end;
        funcs[i++] = (any_func) bb_buffer_n_planes;
        funcs[i++] = (any_func) bb_buffer_plane_fd;
        funcs[i++] = (any_func) bb_buffer_plane_length;
        funcs[i++] = (any_func) bb_buffer_plane_stride;
        funcs[i++] = (any_func) bb_buffer_plane_offset;
        funcs[i++] = (any_func) bb_buffer_width;
        funcs[i++] = (any_func) bb_buffer_height;
        funcs[i++] = (any_func) bb_buffer_fourcc;
        funcs[i++] = (any_func) bb_buffer_format_type;
        funcs[i++] = (any_func) bb_buffer_v4l2_index;
        funcs[i++] = (any_func) bb_fourcc_from_string;
        funcs[i++] = (any_func) bb_fourcc_to_string;

        kv.key = "buffers";
        kv.value = 0;
        (void) cb;
        (void) flags;
        (void) funcs;

        /* Handles from nowhere: only the NULL-safe destructors may run. */
        c = bb_client_unref(c);
        buf = bb_buffer_unref(buf);
#ifdef __GNUC__
        {
                /* The cleanup helpers, as C89 with GNU attributes. */
                bb_client *scoped_c __attribute__((cleanup(bb_client_unrefp))) = NULL;
                bb_buffer *scoped_buf __attribute__((cleanup(bb_buffer_unrefp))) = NULL;

                (void) scoped_c;
                (void) scoped_buf;
        }
#endif

        printf("%lu declarations referenced, %s, %s\n", (unsigned long) i, kv.key,
               bb_fourcc_to_string(0x56595559UL, fourcc));
        return c == NULL && buf == NULL && i == sizeof(funcs) / sizeof(funcs[0]) ? 0 : 1;
}
