/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bufbroker D-Bus contract in C: bus name, object paths, interfaces,
 * error names, option and property names, limits, and the one rule that maps
 * a buffer's path to its id. Daemon, library and CLI all include this file,
 * so each fact is spelled once. org.bufbroker.Broker1.xml beside it is the
 * authoritative description of the methods; a test compares the daemon's live
 * introspection against it.
 */
#pragma once

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define BB_BUS_NAME             "org.bufbroker.Broker1"
#define BB_MANAGER_PATH         "/org/bufbroker/Broker1"
#define BB_MANAGER_INTERFACE    "org.bufbroker.Broker1"
#define BB_BUFFER_PATH_PREFIX   "/org/bufbroker/Broker1/buffer"
#define BB_BUFFER_INTERFACE     "org.bufbroker.Buffer1"
/* The daemon calls Check(h) of this interface, which nobody implements, on
 * a client after a reply whose loss would go unnoticed: the bus refuses it
 * when the client cannot take fds. Clients need not answer. */
#define BB_FD_CHECK_INTERFACE   "org.bufbroker.FdCheck"

/* The path of buffer ID is BB_BUFFER_PATH_PREFIX "/ID": ID in decimal, no
 * sign, no leading zero, 1 to UINT64_MAX, so each buffer has one path. */
#define BB_BUFFER_PATH_MAX      (sizeof(BB_BUFFER_PATH_PREFIX "/") + 20)

/* "42" → 42 by the rule above; -ERANGE above UINT64_MAX, -EINVAL for
 * anything else. */
static inline int bb_buffer_id_parse(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || *s < '1' || *s > '9')
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret = v;
        return 0;
}

/* "/org/bufbroker/Broker1/buffer/42" → 42; errors as above. */
static inline int bb_buffer_path_to_id(const char *path, uint64_t *ret) {
        const size_t n = strlen(BB_BUFFER_PATH_PREFIX "/");

        if (!path || strncmp(path, BB_BUFFER_PATH_PREFIX "/", n) != 0)
                return -EINVAL;
        return bb_buffer_id_parse(path + n, ret);
}

/* 42 → "/org/bufbroker/Broker1/buffer/42" in @buf; returns @buf. */
static inline const char *bb_buffer_path_from_id(uint64_t id, char buf[static BB_BUFFER_PATH_MAX]) {
        snprintf(buf, BB_BUFFER_PATH_MAX, BB_BUFFER_PATH_PREFIX "/%" PRIu64, id);
        return buf;
}

/* Buffer kinds (the Kind property, "kind" in Open's info, Create's kind).
 * Create makes the first four; CreateV4L2 the last. */
#define BB_KIND_MEMFD           "memfd"         /* sealed memfd (memfd_create) */
#define BB_KIND_POSIX           "posix"         /* POSIX shm object: fd and name */
#define BB_KIND_SYSV            "sysv"          /* SysV segment: a shmid, no fd */
#define BB_KIND_FILE            "file"          /* unnamed file on disk (O_TMPFILE) */
#define BB_KIND_V4L2            "v4l2"

/* Properties of org.bufbroker.Buffer1. */
#define BB_PROP_ID              "Id"            /* t */
#define BB_PROP_NAME            "Name"          /* s */
#define BB_PROP_KIND            "Kind"          /* s */
#define BB_PROP_SIZE            "Size"          /* t */
#define BB_PROP_OWNER_UID       "OwnerUid"      /* u */
#define BB_PROP_PERSISTENT      "Persistent"    /* b */
#define BB_PROP_FROZEN          "Frozen"        /* b */
#define BB_PROP_CREATED_USEC    "CreatedUsec"   /* t */
#define BB_PROP_PAGE_SIZE       "PageSize"      /* t: bytes; a hugetlb memfd's huge pages */
#define BB_PROP_PREFAULTED      "Prefaulted"    /* b */
#define BB_PROP_PLANES          "Planes"        /* a(tuu): as BB_INFO_PLANES */
#define BB_PROP_FORMAT          "Format"        /* a{sv}: the BB_FMT_* keys of a V4L2
                                                 * buffer (not count) and BB_INFO_INDEX;
                                                 * empty for a memfd */
#define BB_PROP_HOLDERS         "Holders"       /* u: connections holding it now (no
                                                 * PropertiesChanged: it changes often) */
#define BB_PROP_SHM_NAME        "ShmName"       /* s: posix: the shm_open() name; "" */
#define BB_PROP_SHM_ID          "ShmId"         /* i: sysv: the shmid; -1 */
#define BB_PROP_ALLOCATED_BYTES "AllocatedBytes" /* t: memory or disk the kernel has
                                                 * allocated for it now */

/* The most fds one buffer has (V4L2's VIDEO_MAX_PLANES): the length of every
 * per-plane array on both sides. */
#define BB_PLANES_MAX           8

/* Error names. Malformed input uses org.freedesktop.DBus.Error.InvalidArgs;
 * a failure of the system itself (kernel, driver, memory) is
 * org.freedesktop.DBus.Error.Failed (NoMemory for ENOMEM) with a message that
 * says what failed: it never poses as one of the names below. */
#define BB_ERROR_QUOTA_EXCEEDED "org.bufbroker.Error.QuotaExceeded"
#define BB_ERROR_NO_SUCH_BUFFER "org.bufbroker.Error.NoSuchBuffer"
#define BB_ERROR_NO_SUCH_TOKEN  "org.bufbroker.Error.NoSuchToken"
#define BB_ERROR_NOT_OWNER      "org.bufbroker.Error.NotOwner"
#define BB_ERROR_ACCESS_DENIED  "org.bufbroker.Error.AccessDenied"
#define BB_ERROR_FROZEN         "org.bufbroker.Error.Frozen"
#define BB_ERROR_BUSY           "org.bufbroker.Error.Busy"
#define BB_ERROR_DEVICE_NOT_SUPPORTED "org.bufbroker.Error.DeviceNotSupported"
#define BB_ERROR_DEVICE_BUSY    "org.bufbroker.Error.DeviceBusy"
#define BB_ERROR_NO_SPACE       "org.bufbroker.Error.NoSpace"  /* no free huge pages,
                                                                 * or no memory to prefault */

/* Standard D-Bus error names the protocol uses (spelled here for the parts
 * that do not include sd-bus). */
#define BB_ERROR_INVALID_ARGS   "org.freedesktop.DBus.Error.InvalidArgs"
#define BB_ERROR_NOT_SUPPORTED  "org.freedesktop.DBus.Error.NotSupported"
#define BB_ERROR_LIMITS_EXCEEDED "org.freedesktop.DBus.Error.LimitsExceeded"
#define BB_ERROR_FAILED         "org.freedesktop.DBus.Error.Failed"
#define BB_ERROR_NO_MEMORY      "org.freedesktop.DBus.Error.NoMemory"

/* The errno each error name stands for, on both sides of the bus: the daemon's
 * core returns these errnos, the library hands them to its callers. */
struct bb_error_errno {
        const char *name;
        int error;
};

#define BB_ERROR_ERRNO_TABLE                                    \
        {                                                       \
                { BB_ERROR_QUOTA_EXCEEDED, EDQUOT },            \
                { BB_ERROR_NO_SUCH_BUFFER, ENOENT },            \
                { BB_ERROR_NO_SUCH_TOKEN, ENOKEY },             \
                { BB_ERROR_NOT_OWNER, EPERM },                  \
                { BB_ERROR_ACCESS_DENIED, EACCES },             \
                { BB_ERROR_FROZEN, EALREADY },                  \
                { BB_ERROR_BUSY, ETXTBSY },                     \
                { BB_ERROR_DEVICE_NOT_SUPPORTED, ENODEV },      \
                { BB_ERROR_DEVICE_BUSY, EBUSY },                \
                { BB_ERROR_NO_SPACE, ENOSPC },                  \
        }

/* Option keys of CreateMemfd's a{sv}. */
#define BB_OPT_PERSISTENT       "persistent"    /* b */
#define BB_OPT_TTL_USEC         "ttl-usec"      /* t */
#define BB_OPT_HUGETLB          "hugetlb"       /* b: huge pages, reserved at creation */
#define BB_OPT_PREFAULT         "prefault"      /* b: pages allocated at creation */

/* Option keys of Buffer1.Share's a{sv}. */
#define BB_OPT_READ_ONLY        "read-only"     /* b */
#define BB_OPT_UID              "uid"           /* u */
#define BB_OPT_SINGLE_USE       "single-use"    /* b */
/* and BB_OPT_TTL_USEC */

/* Keys of Open's info a{sv}. */
#define BB_INFO_ID              "id"            /* t */
#define BB_INFO_KIND            "kind"          /* s */
#define BB_INFO_SIZE            "size"          /* t */
#define BB_INFO_NAME            "name"          /* s */
#define BB_INFO_READ_ONLY       "read-only"     /* b */
#define BB_INFO_OWNER_UID       "owner-uid"     /* u */
#define BB_INFO_FROZEN          "frozen"        /* b */
#define BB_INFO_PAGE_SIZE       "page-size"     /* t */
#define BB_INFO_PREFAULTED      "prefaulted"    /* b */
#define BB_INFO_PLANES          "planes"        /* a(tuu): length, bytesperline, offset per fd;
                                                 * offset: where the data starts at allocation
                                                 * (V4L2 drivers may move it per frame) */
#define BB_INFO_INDEX           "index"         /* u: V4L2 buffer index */
#define BB_INFO_SHM_NAME        "shm-name"      /* s: posix: the shm_open() name */
#define BB_INFO_SHMID           "shmid"         /* i: sysv: the shmid for shmat() */
/* V4L2 buffers' info also carries the BB_FMT_* keys below. */

/* Keys of CreateV4L2's format argument (in) and reply (out). In: width,
 * height (u), fourcc (s like "YUYV", or u), type (s: "capture", "output",
 * "capture-mplane", "output-mplane"). Out: all of them as chosen by the
 * driver (fourcc as s), and field, num-planes, count (u), bytesperline and
 * sizeimage (au, one per plane). */
#define BB_FMT_WIDTH            "width"
#define BB_FMT_HEIGHT           "height"
#define BB_FMT_FOURCC           "fourcc"
#define BB_FMT_TYPE             "type"
#define BB_FMT_FIELD            "field"
#define BB_FMT_NUM_PLANES       "num-planes"
#define BB_FMT_COUNT            "count"
#define BB_FMT_BYTESPERLINE     "bytesperline"
#define BB_FMT_SIZEIMAGE        "sizeimage"

/* BB_FMT_TYPE's names for V4L2's buffer types (enum v4l2_buf_type, kernel
 * ABI: the numbers never change). */
#define BB_V4L2_TYPES                                   \
        {                                               \
                { "capture", 1 },                       \
                { "output", 2 },                        \
                { "capture-mplane", 9 },                \
                { "output-mplane", 10 },                \
        }

/* "capture" → 1 (V4L2_BUF_TYPE_VIDEO_CAPTURE) ...; 0 for other names. */
static inline uint32_t bb_v4l2_type_from_name(const char *name) {
        static const struct { const char *name; uint32_t type; } types[] = BB_V4L2_TYPES;

        for (size_t i = 0; name && i < sizeof(types) / sizeof(types[0]); i++)
                if (strcmp(types[i].name, name) == 0)
                        return types[i].type;
        return 0;
}

/* 1 → "capture" ...; NULL for other types. */
static inline const char *bb_v4l2_type_name(uint32_t type) {
        static const struct { const char *name; uint32_t type; } types[] = BB_V4L2_TYPES;

        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
                if (types[i].type == type)
                        return types[i].name;
        return NULL;
}

/* Option keys of CreateV4L2's options: BB_OPT_PERSISTENT, BB_OPT_TTL_USEC,
 * BB_OPT_READ_ONLY (export O_RDONLY: nobody gets a writable fd), and: */
#define BB_OPT_NAME             "name"          /* s: buffers are named NAME<index> */

/* Keys of the Limits property (all t; 0 never appears: every limit is finite). */
#define BB_LIMIT_MAX_BUFFER_SIZE        "max-buffer-size"
#define BB_LIMIT_MAX_BUFFERS_PER_UID    "max-buffers-per-uid"
#define BB_LIMIT_MAX_BYTES_PER_UID      "max-bytes-per-uid"
#define BB_LIMIT_MAX_TOKENS_PER_UID     "max-tokens-per-uid"
#define BB_LIMIT_MAX_BUFFERS            "max-buffers"
#define BB_LIMIT_MAX_BYTES              "max-bytes"
#define BB_LIMIT_MAX_TOKENS             "max-tokens"
#define BB_LIMIT_MAX_FDS                "max-fds"       /* fds the daemon keeps for buffers:
                                                         * its RLIMIT_NOFILE and fd store allow */
#define BB_LIMIT_MAX_PRIVATE_PER_UID    "max-private-connections-per-uid"
#define BB_LIMIT_MAX_PRIVATE            "max-private-connections"
#define BB_LIMIT_MAX_LISTENERS_PER_UID  "max-listeners-per-uid"
#define BB_LIMIT_MAX_LISTENERS          "max-listeners"

/* Keys of the Stats property (all t). */
#define BB_STAT_BUFFERS         "buffers"
#define BB_STAT_BYTES           "bytes"
#define BB_STAT_CLIENTS         "clients"
#define BB_STAT_TOKENS          "tokens"

/* CreateMemfds() makes at most this many buffers (its reply carries an fd
 * each, and a default system bus passes 16 per message); ReleaseBuffers()
 * takes at most BB_RELEASE_BATCH_MAX paths. */
#define BB_CREATE_BATCH_MAX     16
#define BB_RELEASE_BATCH_MAX    1024

/* A buffer name is at most this many bytes, with no control characters. */
#define BB_NAME_MAX             255
/* A token is this many lower-case hex digits (128 random bits). */
#define BB_TOKEN_LEN            32

/* The reason of BufferReleased(o buffer, t id, s reason): why the buffer went. */
#define BB_REASON_RELEASED      "released"      /* its last holder released it, or its owner
                                                 * ended its persistence with nobody holding it */
#define BB_REASON_EXPIRED       "expired"       /* its ttl-usec passed */
#define BB_REASON_HOLDERS_GONE  "holders-gone"  /* its last holder's connection closed */
#define BB_REASON_LEASE         "lease"         /* every fd and mapping handed out of it closed */
#define BB_REASON_UNDONE        "undone"        /* the call that created or opened it was taken
                                                 * back: it failed, or its reply could not be
                                                 * delivered */

/* The ObjectManager interface the manager object implements. */
#define BB_OBJECT_MANAGER_INTERFACE "org.freedesktop.DBus.ObjectManager"
#define BB_PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

/* ListBufferProperties(): one (o path, a{sv} properties) per buffer; the keys
 * are the BB_PROP_* names of org.bufbroker.Buffer1. */
#define BB_LIST_PROPERTIES_ENTRY_SIGNATURE "(oa{sv})"

/* Signature of one ListBuffers() entry (frozen: positional, kept for old
 * clients; new fields go to ListBufferProperties() only):
 * (o path, t id, s name, s kind, t size, u owner_uid, b persistent, b frozen,
 *  u holders, t created_usec) */
#define BB_LIST_ENTRY_SIGNATURE "(otsstubbut)"
