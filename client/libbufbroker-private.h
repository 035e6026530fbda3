/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the files of libbufbroker share and nobody else sees: the two handle
 * structs and the internal calls between the files. Each file holds one job:
 *
 *   client.c   the connection, the call path (blocking and asynchronous:
 *              bb_call), the event loop hooks and the D-Bus error → errno map
 *   manager.c  what the Broker1 object reports: version, stats, limits, list
 *   buffer.c   buffer handles and the calls that change a buffer's state
 *   wire.c     the one table-driven reader of a buffer's fields (Open's info
 *              and Buffer1's properties)
 *   map.c      a handle's planes: fds, mappings (SysV segments: shmat),
 *              DMA-BUF sync
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
        bool map_shm;           /* map_addr is a SysV attachment (shmdt, not munmap) */
} bb_plane;

typedef struct bb_call bb_call;

/* A reply or signal whose callback waits (see client_defer()). */
typedef struct deferred {
        struct deferred *next;
        sd_bus_message *message;
        bb_call *call;          /* a reference; NULL for BufferReleased */
} deferred;

struct bb_client {
        unsigned n_ref;
        sd_bus *bus;
        /* Asynchronous calls whose reply is awaited (cancelled ones too,
         * while their reply still has something to undo). */
        bb_call *calls;
        /* While a blocking call of the library processes the bus itself
         * (hold_callbacks > 0), the user's callbacks wait here, and run
         * from the next bb_client_process() or the event loop's
         * defer_source, in the order their messages came. */
        unsigned hold_callbacks;
        bool delivering;
        deferred *deferred_head, *deferred_tail;
        struct sd_event_source *defer_source;
        bool is_private;        /* a private connection (bb_client_open_private) */
        sd_bus_slot *monitor_slot;
        bb_released_func monitor_callback;
        bb_released_reason_func monitor_reason_callback;
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
        /* The kind's own handle: a posix buffer's name for shm_open() (NULL
         * when none or ""), a sysv buffer's shmid (-1 when none). */
        char *shm_name;
        int32_t shmid;
        /* A sysv handle of Create/Open/OpenFds: a holder's handle, with no fd
         * (a segment has none) but the right to shmat() the segment. */
        bool segment_held;
        bool have_allocated;
        uint64_t allocated_bytes;
};

/* Is buf of that kind? */
bool buffer_is_kind(const bb_buffer *buf, const char *kind);
/* Does the handle hold the buffer's memory: fds, or a sysv segment it may
 * attach? (Descriptive handles of bb_buffer_get() and lists do not.) */
bool buffer_holds_memory(const bb_buffer *buf);

/* What an asynchronous call does with its reply. error is 0 or a negative
 * errno (error_name/error_message then say what the broker said, or are
 * NULL for a local failure); reply is NULL on error. It calls the user's
 * callback, if any is left. */
typedef void (*call_finish_func)(bb_call *call, int error, const char *error_name, const char *error_message,
                                 sd_bus_message *reply);
/* The reply of a call that was cancelled: undo what the broker did for it
 * (release the buffers it created). */
typedef void (*call_undo_func)(bb_call *call, sd_bus_message *reply);

/* One asynchronous call. References: the user's handle (bb_call_unref()
 * cancels it) and the client's while the reply is awaited. */
struct bb_call {
        unsigned n_ref;
        bb_client *client;      /* not a reference; used only while pending */
        bool pending;           /* on client->calls, a reference of the client's */
        sd_bus_slot *slot;      /* while pending */
        bb_call *next, *prev;   /* in client->calls */
        bool buffer_object;     /* the call is on a buffer's object */
        bool internal;          /* the library's own: never held back */
        bool deferred;          /* its reply waits on client->deferred_head */
        bool cancelled;
        call_finish_func finish;
        call_undo_func undo;    /* NULL: a cancelled call's reply changes nothing */
        bool undo_on_close;     /* the reply must be undone even when the client closes */
        /* The user's callback (one of the bb_*_done_func types) and what
         * the reply is read with. */
        void (*callback)(void);
        void *userdata;
        char *name;
        char *path;
        unsigned flags;
        unsigned count;
        /* Not a reference (a handle refs its client, whose calls this one
         * is of): bb_buffer_unref() clears it when the handle goes first. */
        bb_buffer *buf;
};

/* client.c */
int client_call_new(bb_client *c, call_finish_func finish, void (*callback)(void), void *userdata,
                    bb_call **ret);
/* Send m as call's method call; on success the client owns a reference of
 * call until the reply came, and *ret_call (may be NULL) gets the creator's
 * reference (else it is dropped). On failure the caller still has it. */
int client_call_async(bb_client *c, sd_bus_message *m, bb_call *call, bb_call **ret_call);
bb_call *call_unref_internal(bb_call *call);
/* Hold the user's callbacks back while a blocking call processes the bus. */
bool client_defer(bb_client *c, sd_bus_message *m, bb_call *call);
/* A handle is going: forget it in the calls that would update it. */
void client_forget_buffer(bb_client *c, bb_buffer *buf);
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
void buffer_release_path_async_quietly(bb_client *c, const char *path);
int buffer_open_fds_message(bb_client *c, const char *path, unsigned flags, sd_bus_message **ret);
int buffer_from_fds_reply(bb_client *c, const char *path, sd_bus_message *reply, bb_buffer **ret);
int buffer_open_fds_path(bb_client *c, const char *path, unsigned flags, bb_buffer **ret);

/* wire.c */
int wire_read_fds_and_info(bb_buffer *buf, sd_bus_message *reply);
int wire_read_properties(bb_buffer *buf, sd_bus_message *reply);
