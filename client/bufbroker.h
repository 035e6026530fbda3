/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libbufbroker: the client library of bufbroker, a daemon that hands out
 * shared-memory buffers (sealed memfds, and dma-bufs exported by V4L2
 * devices) over D-Bus.
 *
 * Conventions, for every function below:
 *  - Functions returning int return 0 (or a documented positive value) on
 *    success and a negative errno on failure. Output arguments ("ret_*") are
 *    only written on success.
 *  - D-Bus errors of the daemon become errnos: QuotaExceeded -EDQUOT,
 *    NoSuchBuffer -ENOENT, NoSuchToken -ENOKEY, NotOwner -EPERM,
 *    AccessDenied -EACCES, Frozen -EALREADY, Busy -ETXTBSY,
 *    DeviceNotSupported -ENODEV, DeviceBusy -EBUSY, InvalidArgs -EINVAL (the
 *    table in bufbroker-protocol.h is the reference); other standard D-Bus
 *    errors as sd-bus maps them (ServiceUnknown -EHOSTUNREACH, ...). The
 *    error's name and human-readable message stay
 *    available through bb_client_error_name()/bb_client_error_message().
 *  - Handles are reference counted; *_unref() takes NULL and returns NULL.
 *  - A bb_client and its buffers belong to one thread at a time; the library
 *    keeps no global state. A forked child cannot use its parent's bb_client
 *    (calls fail with -ECHILD); it may use the fds and mappings it inherited.
 *  - All file descriptors the library creates are O_CLOEXEC.
 *
 * This header is C89-clean so that any program may include it.
 */
#ifndef BUFBROKER_H
#define BUFBROKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A connection to the broker (one sd-bus connection). */
typedef struct bb_client bb_client;

/* A handle on one broker buffer. It may own the buffer's fds, one per plane
 * (handles from bb_buffer_create(), bb_buffer_create_v4l2(), bb_buffer_open()
 * and bb_buffer_open_fds()), or describe it only (handles from bb_buffer_get()
 * and bb_client_list_buffers()).
 *
 * Planes: a memfd buffer has one plane; a V4L2 buffer has one per plane of
 * its pixel format (a multi-planar format such as YM12 has 3), each its own
 * dma-buf fd. Every plane has a length (bytes), a stride (bytes per line; 0
 * when not meaningful, as for memfds) and an offset (where the data starts
 * in the plane's fd). Plane metadata and the V4L2 format are known for
 * handles that own fds, and for handles of bb_buffer_get() (and after
 * bb_buffer_refresh()) when the broker has the Planes and Format properties;
 * other descriptive handles have 0 planes. */
typedef struct bb_buffer bb_buffer;

/* One key/value pair of the Stats or Limits properties. */
typedef struct bb_key_value {
        const char *key;
        uint64_t value;
} bb_key_value;

/* Flags of bb_buffer_create(), bb_buffer_create_kind() and
 * bb_buffer_create_v4l2(). */
#define BB_CREATE_PERSISTENT    (1U << 0)  /* outlive this connection until released or expired */
#define BB_CREATE_READ_ONLY     (1U << 1)  /* V4L2 only: exported O_RDONLY, nobody gets a writable fd */
#define BB_CREATE_HUGETLB       (1U << 2)  /* memfd only: huge pages, all reserved by the broker */
#define BB_CREATE_PREFAULT      (1U << 3)  /* not V4L2: every page allocated by the broker */

/* Flags of bb_buffer_open_fds(). */
#define BB_OPEN_READ_ONLY       (1U << 0)  /* O_RDONLY fds, even for the owner */

/* Flags of bb_buffer_sync_begin() and bb_buffer_sync_end(). */
#define BB_SYNC_READ            (1U << 0)  /* the CPU reads the mapping */
#define BB_SYNC_WRITE           (1U << 1)  /* the CPU writes the mapping */
#define BB_SYNC_RW              (BB_SYNC_READ | BB_SYNC_WRITE)

/* Room for a fourcc string and its NUL: see bb_fourcc_to_string(). */
#define BB_FOURCC_STRING_MAX    5

/* Flags of bb_buffer_share(). */
#define BB_SHARE_READ_ONLY      (1U << 0)  /* the opener gets an O_RDONLY fd */
#define BB_SHARE_SINGLE_USE     (1U << 1)  /* the token dies after one bb_buffer_open() */
#define BB_SHARE_UID            (1U << 2)  /* only the given uid may open the token */

/* Callback of bb_client_monitor(): the buffer at object path "path" with id
 * "id" was released by the broker (nobody holds it any more). */
typedef void (*bb_released_func)(const char *path, uint64_t id, void *userdata);

/* sd-event's loop (<systemd/sd-event.h>), for bb_client_attach_event(). */
struct sd_event;

/* A pending asynchronous call (since LIBBUFBROKER_1.2): see "Asynchronous
 * calls" below. */
typedef struct bb_call bb_call;

/* Callbacks of the asynchronous calls. Each gets the client, error (0, or
 * a negative errno as the blocking call would return it), the D-Bus error's
 * name and message when the broker refused (NULL for a local failure and
 * on success), the result (NULL on failure) and the userdata given to the
 * call. Results are borrowed: valid during the callback only; take a
 * reference (bb_buffer_ref()) or a copy to keep them. */
typedef void (*bb_buffer_done_func)(bb_client *c, int error, const char *error_name, const char *error_message,
                                    bb_buffer *buf, void *userdata);
typedef void (*bb_buffers_done_func)(bb_client *c, int error, const char *error_name,
                                     const char *error_message, bb_buffer **bufs, size_t n, void *userdata);
typedef void (*bb_token_done_func)(bb_client *c, int error, const char *error_name, const char *error_message,
                                   const char *token, void *userdata);
typedef void (*bb_done_func)(bb_client *c, int error, const char *error_name, const char *error_message,
                             void *userdata);
/* Callback of bb_client_monitor_reason(): as bb_released_func, and why the
 * buffer went: "released", "expired", "holders-gone", "lease" or "undone"
 * (see org.bufbroker.Broker1(5)); "" from a broker that tells no reason. */
typedef void (*bb_released_reason_func)(const char *path, uint64_t id, const char *reason, void *userdata);

/* ------------------------------------------------------------ client --- */

/* Connect to the broker on the system bus (DBUS_SYSTEM_BUS_ADDRESS when set).
 * Connects synchronously, so an unreachable bus fails here (-ENOENT,
 * -ECONNREFUSED, ...), and fails with -EOPNOTSUPP when the bus cannot pass
 * file descriptors. The broker itself is first contacted by later calls. */
int bb_client_new(bb_client **ret);

/* Connect to the broker on the session bus (DBUS_SESSION_BUS_ADDRESS or
 * $XDG_RUNTIME_DIR/bus). */
int bb_client_new_user(bb_client **ret);

/* Connect to the broker on the bus at a D-Bus address such as
 * "unix:path=/run/foo/bus". */
int bb_client_new_address(bb_client **ret, const char *address);

/* A new client on a private connection to the broker, opened through c
 * (OpenPrivateConnection): a socket to the daemon with no bus in between,
 * so each call costs one round trip on it instead of two through the bus.
 * Its calls are those of c's uid; the buffers it creates or opens are held
 * by it and go when it closes (bb_client_unref()), as with any connection.
 * bb_client_monitor() on it hears the buffers its uid may see, as on the
 * bus. It ends with the daemon (a restart keeps buffers, not private
 * connections). -EDQUOT past the broker's limit on
 * private connections. c stays usable and independent. */
int bb_client_open_private(bb_client *c, bb_client **ret);

/* Take a reference. Returns c. */
bb_client *bb_client_ref(bb_client *c);

/* Drop a reference; the connection closes with the last one (buffer handles
 * keep a reference on their client; pending asynchronous calls do not).
 * Closing the connection drops every hold it had on non-persistent buffers
 * and cancels the asynchronous calls still pending: their callbacks are not
 * called. Persistent buffers whose creation is pending are waited for and
 * released (unless the last reference goes from within a callback of c:
 * then they persist until their TTL or a Release). Takes NULL; returns
 * NULL. */
bb_client *bb_client_unref(bb_client *c);

/* The D-Bus error name of the last failed call on c (or one of its buffers),
 * or NULL when that failure was local or the last call succeeded. Valid until
 * the next call on c. */
const char *bb_client_error_name(bb_client *c);

/* The human-readable message of that D-Bus error, or NULL. Valid until the
 * next call on c. */
const char *bb_client_error_message(bb_client *c);

/* Event loops. The callbacks of bb_client_monitor() and of the
 * asynchronous calls run from bb_client_process(), which some loop must
 * call. Three ways:
 *
 *  - sd-event: bb_client_attach_event(); the loop does the rest.
 *  - any poll()-style loop (GLib's GSource, libuv, plain poll()): every
 *    iteration, wait on bb_client_get_fd() for bb_client_get_events() until
 *    bb_client_get_timeout(), then call bb_client_process(c, 0). All three
 *    change after every call on c (blocking, asynchronous or processing):
 *    ask again before each wait. The timeout is not optional: a blocking
 *    call may have read a signal or a reply off the socket while it waited
 *    for its own reply; the socket is empty then, and only the timeout (0:
 *    now) says that there is something to process.
 *  - no loop: bb_client_process(c, timeout_usec) waits by itself.
 *
 * The connection's file descriptor, for poll(). Do not read from, write to
 * or close it. */
int bb_client_get_fd(bb_client *c);

/* The poll() events to wait for on bb_client_get_fd(): POLLIN always, and
 * POLLOUT while output is queued. */
int bb_client_get_events(bb_client *c);

/* When to call bb_client_process() even if bb_client_get_fd() stays quiet,
 * as an absolute CLOCK_MONOTONIC time in microseconds (as sd_bus_get_timeout()
 * gives it): 0 when something waits to be processed already (do not sleep),
 * the instant the oldest asynchronous call times out, or UINT64_MAX for no
 * timeout (wait for the fd alone). For poll(), the timeout in milliseconds
 * is the difference to clock_gettime(CLOCK_MONOTONIC) now, rounded up, 0
 * when it is in the past, -1 for UINT64_MAX. Since LIBBUFBROKER_1.2. */
int bb_client_get_timeout(bb_client *c, uint64_t *ret_usec);

/* Let an sd-event loop process c: the connection's fd and timeouts become
 * sources of e at the given priority (SD_EVENT_PRIORITY_NORMAL is 0), and
 * callbacks run from sd_event_run()/sd_event_loop(). e NULL: the calling
 * thread's default loop (sd_event_default()). -EBUSY when c is attached
 * already. Blocking calls keep working on an attached client. The client
 * detaches itself when it closes. Since LIBBUFBROKER_1.2. */
int bb_client_attach_event(bb_client *c, struct sd_event *e, int64_t priority);

/* Undo bb_client_attach_event(); 0 also when c was not attached. Since
 * LIBBUFBROKER_1.2. */
int bb_client_detach_event(bb_client *c);

/* Process pending input: run the bb_client_monitor() callback for signals
 * and the callbacks of asynchronous calls for their replies (and those held
 * back by bb_buffer_create_v4l2()). When nothing was pending, waits up to timeout_usec microseconds
 * for input first (0: do not wait; UINT64_MAX: wait forever). Returns 1 when
 * something was processed, 0 when not, -EINTR when a signal interrupted the
 * wait, -ECONNRESET/-ENOTCONN when the bus connection is gone. */
int bb_client_process(bb_client *c, uint64_t timeout_usec);

/* Call callback for every BufferReleased signal of the broker, from
 * bb_client_process(). The broker tells a connection only of the buffers
 * it may see (its uid owns or holds them; root: all): this makes c a
 * listener (Broker1.Subscribe; -ENOBUFS past the broker's limit of listeners,
 * see bb_client_get_limit()). One callback per client: a new call (of this
 * or bb_client_monitor_reason()) replaces the old one; callback NULL
 * unsubscribes. */
int bb_client_monitor(bb_client *c, bb_released_func callback, void *userdata);

/* bb_client_monitor() with the reason the buffer went. Since
 * LIBBUFBROKER_1.2. */
int bb_client_monitor_reason(bb_client *c, bb_released_reason_func callback, void *userdata);

/* The broker's version string, newly allocated: free() it. */
int bb_client_get_version(bb_client *c, char **ret);

/* One value of the broker's Stats property ("buffers", "bytes", "clients",
 * "tokens"). -ENODATA when the broker does not report that key. */
int bb_client_get_stat(bb_client *c, const char *key, uint64_t *ret);

/* One value of the broker's Limits property ("max-buffer-size",
 * "max-buffers-per-uid", ...). -ENODATA when the broker has no such limit. */
int bb_client_get_limit(bb_client *c, const char *key, uint64_t *ret);

/* All key/value pairs of the Stats property, read at one instant, in the
 * broker's order. *ret is one allocation (keys included): free() it. */
int bb_client_get_stats(bb_client *c, bb_key_value **ret, size_t *ret_n);

/* All key/value pairs of the Limits property; as bb_client_get_stats(). */
int bb_client_get_limits(bb_client *c, bb_key_value **ret, size_t *ret_n);

/* The buffers the caller may see (its uid owns or holds them; root: all),
 * as handles without fds, in the broker's order (by id). *ret is NULL when
 * there are none. Free with bb_buffer_list_free(). */
int bb_client_list_buffers(bb_client *c, bb_buffer ***ret, size_t *ret_n);

/* Unref every handle of a list (of bb_client_list_buffers() or
 * bb_buffer_create_v4l2()) and free the array. Takes NULL; returns NULL. */
bb_buffer **bb_buffer_list_free(bb_buffer **list, size_t n);

/* ------------------------------------------------------------ buffer --- */

/* Create a sealed memfd buffer of at least size bytes (the broker rounds up
 * to the page size, or with BB_CREATE_HUGETLB to the huge page size;
 * bb_buffer_size() is the real size). name may be NULL (an empty name).
 * flags: BB_CREATE_PERSISTENT, BB_CREATE_HUGETLB (-ENOSPC when there are not
 * enough free huge pages, -EOPNOTSUPP when the kernel has none),
 * BB_CREATE_PREFAULT (the broker allocates every page before it replies;
 * -ENOSPC when the memory is not there). ttl_usec: lifetime in
 * microseconds, 0 for none. The connection becomes a holder; the handle owns
 * the buffer's fd. */
int bb_buffer_create(bb_client *c, const char *name, uint64_t size, unsigned flags,
                     uint64_t ttl_usec, bb_buffer **ret);

/* Create a buffer of the given kind (since LIBBUFBROKER_1.2), as
 * bb_buffer_create() does a memfd:
 *   "memfd"  a sealed memfd (as bb_buffer_create(), through Create);
 *   "posix"  a POSIX shared memory object under /dev/shm with an unguessable
 *            name (bb_buffer_shm_name()) that only the owner, and those it
 *            shares with, can shm_open(); unlinked when the buffer goes;
 *   "sysv"   a SysV segment (bb_buffer_shmid()) owned by the caller's uid,
 *            mode 0600; removed (IPC_RMID) when the buffer goes. It has no
 *            fd: bb_buffer_map() attaches it (shmat), bb_buffer_fd()
 *            returns -EOPNOTSUPP. Shared with the owner's uid only, and
 *            not read-only: that uid may attach it read-write anyway, so
 *            the broker refuses read-only shares and BB_OPEN_READ_ONLY
 *            (-EOPNOTSUPP);
 *   "file"   an unnamed file (O_TMPFILE) in the broker's file directory,
 *            for buffers larger than memory; its space is freed when the
 *            last fd closes.
 * Not sealable: only a memfd can be frozen. flags: BB_CREATE_PERSISTENT,
 * BB_CREATE_PREFAULT (every kind; -ENOSPC when memory or disk space is
 * not there), BB_CREATE_HUGETLB (memfd only: -EOPNOTSUPP for the others).
 * An unknown kind is -EINVAL; a kind the broker cannot make -EOPNOTSUPP
 * (NotSupported; its message says why, see bb_client_error_message()). The
 * connection becomes a holder; the handle owns the buffer's fd (none for
 * sysv). Needs a broker with Create(); bb_buffer_create() makes memfds on
 * every broker. */
int bb_buffer_create_kind(bb_client *c, const char *kind, const char *name, uint64_t size, unsigned flags,
                          uint64_t ttl_usec, bb_buffer **ret);

/* Allocate count buffers on the V4L2 device at path device (for example
 * "/dev/video0") and export them as dma-bufs: one broker buffer per V4L2
 * buffer, one fd per plane. The format asked for: width and height (0: keep
 * the device's), fourcc (a V4L2 pixel format such as 0x56595559 "YUYV", see
 * bb_fourcc_from_string(); 0: keep the device's) and type ("capture",
 * "output", "capture-mplane", "output-mplane"; NULL: the device's capture
 * queue, else its output queue). The driver may adjust width, height and the
 * number of buffers: the handles say what it chose (bb_buffer_width(), ...,
 * *ret_n). flags: BB_CREATE_PERSISTENT, BB_CREATE_READ_ONLY. ttl_usec:
 * lifetime in microseconds, 0 for none.
 *
 * The connection becomes a holder of every buffer; the handles own their fds
 * and are in V4L2 index order. The fds are fetched one buffer per message, so
 * this works on a bus that passes few fds per message (a system bus: 16);
 * up to 8 of those calls are in flight at once (callbacks of c that come
 * meanwhile wait for the next bb_client_process(), see the event loops
 * above). On any failure nothing is left behind: buffers already created
 * are released.
 * Errors besides the usual: -EACCES (AccessDenied: the caller could not
 * open @device read-write itself, or there is no such file), -ENODEV
 * (DeviceNotSupported: not a V4L2 streaming device, or it cannot export
 * dma-bufs; the message says which), -EBUSY (DeviceBusy), -EDQUOT, -EINVAL
 * (a format the driver refuses; an unknown type), -EIO (Failed: the driver
 * failed; the message names the call and its error). Free *ret with
 * bb_buffer_list_free(). */
int bb_buffer_create_v4l2(bb_client *c, const char *device, unsigned count, uint32_t width, uint32_t height,
                          uint32_t fourcc, const char *type, unsigned flags, uint64_t ttl_usec,
                          bb_buffer ***ret, size_t *ret_n);

/* Open a buffer by a token that bb_buffer_share() returned. The connection
 * becomes a holder; the handle owns the buffer's fds (O_RDONLY for a
 * read-only token). bb_buffer_is_persistent() and bb_buffer_created_usec()
 * are 0 until bb_buffer_refresh(): the Open reply does not carry them. */
int bb_buffer_open(bb_client *c, const char *token, bb_buffer **ret);

/* Open a buffer by id, without a token: for its owner uid (or root) only
 * (-EPERM for others: they need a token). The connection becomes a holder;
 * the handle owns the buffer's fds, O_RDONLY with BB_OPEN_READ_ONLY or when
 * the buffer is read-only. -ENOENT when there is no such buffer. As for
 * bb_buffer_open(), persistence and creation time are 0 until
 * bb_buffer_refresh(). */
int bb_buffer_open_fds(bb_client *c, uint64_t id, unsigned flags, bb_buffer **ret);

/* A handle without fd on an existing buffer, by id, with its properties. The
 * connection does not become a holder. -ENOENT when there is no such buffer,
 * -EPERM (NotOwner) when it exists but the caller is neither its owner uid,
 * root, nor a holder (the broker does not hide a buffer's existence: ids are
 * sequential anyway). */
int bb_buffer_get(bb_client *c, uint64_t id, bb_buffer **ret);

/* Take a reference. Returns buf. */
bb_buffer *bb_buffer_ref(bb_buffer *buf);

/* Drop a reference. The last one unmaps the buffer and closes the handle's
 * fds. It does NOT release the buffer: the connection keeps its hold until
 * bb_buffer_release() or until the connection closes (bb_client_unref() of
 * the last reference), so that unref of a persistent buffer's handle never
 * ends its persistence by accident. Takes NULL; returns NULL. */
bb_buffer *bb_buffer_unref(bb_buffer *buf);

/* Re-read the buffer's properties (name, size, frozen, persistent, ...) from
 * the broker. */
int bb_buffer_refresh(bb_buffer *buf);

/* Share the buffer: returns a new token in *ret_token (free() it). flags:
 * BB_SHARE_*; uid is only used with BB_SHARE_UID; ttl_usec 0: no expiry.
 * Only the owner uid (or root) may share. */
int bb_buffer_share(bb_buffer *buf, unsigned flags, uid_t uid, uint64_t ttl_usec, char **ret_token);

/* Create count (1 to 16) buffers alike in one call, all or none (a quota
 * that has room for fewer refuses them all): ret must have room for count
 * handles. Each is as from bb_buffer_create(), with the same name. */
int bb_buffer_create_many(bb_client *c, const char *name, uint64_t size, unsigned flags,
                          uint64_t ttl_usec, unsigned count, bb_buffer **ret);

/* Release n (1 to 1024) distinct buffers of one client in one call, as
 * bb_buffer_release() does each: all, or none when one may not be released
 * (-EPERM, -ENOENT: nothing changed). -EINVAL for handles of different
 * clients. */
int bb_buffer_release_many(bb_buffer **bufs, size_t n);

/* Drop the connection's hold; for the owner uid (or root) also end
 * persistence. The broker drops the buffer once nobody holds it. The handle
 * stays valid: its fd and mapping keep the memory alive (the kernel counts
 * references) until bb_buffer_unmap()/bb_buffer_unref(), but the buffer can
 * no longer be shared or frozen. */
int bb_buffer_release(bb_buffer *buf);

/* Seal the contents against writes (owner uid or root only). -ETXTBSY while
 * writable mappings exist (unmap yours first), -EALREADY when frozen. */
int bb_buffer_freeze(bb_buffer *buf);

/* Revoke a token of the buffer (owner uid or root only, else -EPERM):
 * opening it fails from now on with -ENOKEY, as for a token that never
 * was. -ENOKEY if it is not this buffer's (unknown, expired, used up,
 * revoked, another buffer's), -EINVAL if malformed. Fds already opened
 * with it stay open: an fd cannot be taken back. Since LIBBUFBROKER_1.2. */
int bb_buffer_revoke_token(bb_buffer *buf, const char *token);

/* Revoke every token of the buffer (owner uid or root only, else -EPERM);
 * *ret_count (may be NULL): how many were valid. Since LIBBUFBROKER_1.2. */
int bb_buffer_revoke_tokens(bb_buffer *buf, unsigned *ret_count);

/* The fd the handle owns (plane 0). It stays owned by the handle: do not
 * close it; dup it to keep it beyond bb_buffer_unref(). -ENODATA when the
 * handle has no fd (bb_buffer_get(), bb_client_list_buffers()),
 * -EOPNOTSUPP for a sysv buffer (a segment has no fd: bb_buffer_map() or
 * shmat() of bb_buffer_shmid()). */
int bb_buffer_fd(bb_buffer *buf);

/* Map plane 0 (for a memfd: the whole buffer) MAP_SHARED: PROT_READ|
 * PROT_WRITE, or PROT_READ only when the fd is read-only or the buffer is
 * frozen (bb_buffer_is_writable() tells which). A sysv buffer's segment is
 * attached instead (shmat(), SHM_RDONLY when the handle is read-only) and
 * bb_buffer_unmap() detaches it (shmdt()). *ret_size is the plane's
 * length. Mapping twice returns the same mapping. -ENODATA when the handle
 * has no fd (nor, for sysv, a hold). Other planes: bb_buffer_map_plane(). */
int bb_buffer_map(bb_buffer *buf, void **ret_addr, size_t *ret_size);

/* Map one plane MAP_SHARED, as bb_buffer_map() does plane 0 (bb_buffer_map()
 * is bb_buffer_map_plane(buf, 0, ...)). *ret_size is the plane's length: its
 * bytes are ret_addr[bb_buffer_plane_offset()] up to ret_addr[*ret_size - 1].
 * Mapping twice returns the same mapping. -ENODATA when the handle has no
 * fds, -ERANGE when plane >= bb_buffer_n_planes(). A dma-buf's CPU access
 * belongs between bb_buffer_sync_begin() and bb_buffer_sync_end(). */
int bb_buffer_map_plane(bb_buffer *buf, unsigned plane, void **ret_addr, size_t *ret_size);

/* Unmap every mapping of bb_buffer_map()/bb_buffer_map_plane(); nothing when
 * there is none. */
int bb_buffer_unmap(bb_buffer *buf);

/* Bracket CPU access to the mappings of a dma-buf (DMA_BUF_IOCTL_SYNC start
 * and end, on every plane, retried on EINTR and EAGAIN) so that caches are
 * coherent with the device. flags: BB_SYNC_READ and/or BB_SYNC_WRITE; end
 * takes the flags begin took. A failure of begin leaves no plane begun. For
 * every kind but "v4l2" (plain memory) both do nothing and return 0. -EINVAL for no
 * or unknown flags, -ENODATA when the handle has no fds. */
int bb_buffer_sync_begin(bb_buffer *buf, unsigned flags);
int bb_buffer_sync_end(bb_buffer *buf, unsigned flags);

/* The number of planes of the buffer: of a handle that owns fds, one per
 * fd; of a sysv buffer's holder, 1 (the segment); of a handle without fds, as the broker's Planes property said (0 when
 * the broker has none, and for bb_client_list_buffers() handles); 0 for
 * NULL. */
unsigned bb_buffer_n_planes(bb_buffer *buf);

/* The fd of one plane, owned by the handle (do not close it). -EINVAL for
 * NULL, -ENODATA when the handle has no fds (even when it knows its
 * planes), -EOPNOTSUPP for a sysv buffer, -ERANGE when plane >=
 * bb_buffer_n_planes(). */
int bb_buffer_plane_fd(bb_buffer *buf, unsigned plane);

/* A plane's length in bytes, its stride (bytes per line; 0 when it has none,
 * as memfds) and the offset of its data in its fd. 0 for NULL and for planes
 * out of range. */
uint64_t bb_buffer_plane_length(bb_buffer *buf, unsigned plane);
uint32_t bb_buffer_plane_stride(bb_buffer *buf, unsigned plane);
uint32_t bb_buffer_plane_offset(bb_buffer *buf, unsigned plane);

/* The buffer's id; 0 only for NULL. */
uint64_t bb_buffer_id(bb_buffer *buf);

/* The buffer's size in bytes (memfd: the page-rounded size the broker
 * allocated; V4L2: the sum of its planes' lengths). */
uint64_t bb_buffer_size(bb_buffer *buf);

/* The buffer's name (never NULL for a valid handle). Valid while buf is. */
const char *bb_buffer_name(bb_buffer *buf);

/* The buffer's kind: "memfd", "posix", "sysv", "file" or "v4l2". Valid
 * while buf is. */
const char *bb_buffer_kind(bb_buffer *buf);

/* A posix buffer's name for shm_open(), with its leading '/'; NULL for NULL,
 * other kinds, and handles that know no name. Valid while buf is. Since
 * LIBBUFBROKER_1.2. */
const char *bb_buffer_shm_name(bb_buffer *buf);

/* A sysv buffer's segment id for shmat() (0 or more). -EINVAL for NULL,
 * -ENODATA for other kinds and handles that know none. Since
 * LIBBUFBROKER_1.2. */
int bb_buffer_shmid(bb_buffer *buf);

/* The bytes the kernel has allocated for the buffer (the AllocatedBytes
 * property: a file's blocks on disk, a segment's resident memory), as the
 * broker last reported it (bb_client_list_buffers(), bb_buffer_get(),
 * bb_buffer_refresh()). -ENODATA for handles that learnt none. Since
 * LIBBUFBROKER_1.2. */
int bb_buffer_get_allocated_bytes(bb_buffer *buf, uint64_t *ret);

/* The buffer's D-Bus object path. Valid while buf is. */
const char *bb_buffer_path(bb_buffer *buf);

/* The uid that owns the buffer; (uid_t) -1 for NULL. */
uid_t bb_buffer_owner_uid(bb_buffer *buf);

/* 1 when the handle's access is read-only (opened through a read-only
 * token), else 0. */
int bb_buffer_is_read_only(bb_buffer *buf);

/* 1 when the buffer outlives its holders (as last known), else 0. */
int bb_buffer_is_persistent(bb_buffer *buf);

/* 1 when the buffer is frozen: checked on the fd's seals when the handle has
 * an fd, else as last known from the broker. */
int bb_buffer_is_frozen(bb_buffer *buf);

/* 1 when bb_buffer_map() maps writable: the handle has an fd, that fd is not
 * read-only and the buffer is not frozen; else 0. */
int bb_buffer_is_writable(bb_buffer *buf);

/* The size of the buffer's pages in bytes: a hugetlb memfd's huge page
 * size, else the system's page size; from the fd when the handle has one,
 * else as last known (0: not known). */
uint64_t bb_buffer_page_size(bb_buffer *buf);

/* 1 when the broker allocated the buffer's pages when it created it
 * (BB_CREATE_PREFAULT), as last known; else 0. */
int bb_buffer_is_prefaulted(bb_buffer *buf);

/* When the buffer was created, CLOCK_REALTIME microseconds; 0 when not known
 * (see bb_buffer_open()). */
uint64_t bb_buffer_created_usec(bb_buffer *buf);

/* The number of connections holding the buffer, as the broker last reported
 * it (bb_client_list_buffers(), bb_buffer_get(), bb_buffer_refresh()).
 * -ENODATA for handles that learnt none. */
int bb_buffer_get_holders(bb_buffer *buf, unsigned *ret);

/* The V4L2 format of a V4L2 buffer, as the driver chose it: width and height
 * in pixels, the pixel format's fourcc. 0 for NULL, for other kinds and for
 * handles that know no format (see bb_buffer_n_planes()). */
uint32_t bb_buffer_width(bb_buffer *buf);
uint32_t bb_buffer_height(bb_buffer *buf);
uint32_t bb_buffer_fourcc(bb_buffer *buf);

/* The V4L2 buffer type: "capture", "output", "capture-mplane" or
 * "output-mplane"; NULL for NULL, for other kinds and for handles that know
 * no format. Valid while buf is. */
const char *bb_buffer_format_type(bb_buffer *buf);

/* The buffer's index in its V4L2 queue (0, 1, ...). -EINVAL for NULL,
 * -ENODATA for other kinds and for handles without fds. */
int bb_buffer_v4l2_index(bb_buffer *buf);

/* ------------------------------------------------------------- async --- */

/* Asynchronous calls (since LIBBUFBROKER_1.2). Each sends the same request
 * as its blocking namesake and returns at once: 0 when the request is on
 * its way, a negative errno when it could not be sent (invalid arguments
 * as for the blocking call, -ENOMEM, -ENOTCONN; the callback is then never
 * called). The reply comes to callback (not NULL) from bb_client_process(),
 * or from the event loop c is attached to, with the result the blocking
 * call would have returned and the same errnos (see the conventions at the
 * top). The broker answers calls in the order it got them; many may be in
 * flight at once, up to 32 per connection waiting in the broker (beyond,
 * -ENOBUFS: LimitsExceeded). bb_client_error_name() is not touched: the
 * callback has the error's name and message.
 *
 * ret_call may be NULL: the call then runs to its end on its own. Else it
 * gets a handle on the pending call, which the caller must drop with
 * bb_call_unref(), before or after the callback (also from within it).
 * Dropping it before the reply cancels the call: the callback is never
 * called. The broker may have acted on the request already; the library
 * undoes what would be left behind: buffers a cancelled create made are
 * released when its reply comes. A cancelled open keeps the connection's
 * hold until the connection closes, as a bb_buffer_unref() of its handle
 * would; a cancelled share's token, if made, lives until it expires or the
 * buffer goes. */

/* As bb_buffer_create(); callback gets the handle. */
int bb_buffer_create_async(bb_client *c, const char *name, uint64_t size, unsigned flags, uint64_t ttl_usec,
                           bb_buffer_done_func callback, void *userdata, bb_call **ret_call);

/* As bb_buffer_create_kind(); callback gets the handle. */
int bb_buffer_create_kind_async(bb_client *c, const char *kind, const char *name, uint64_t size, unsigned flags,
                                uint64_t ttl_usec, bb_buffer_done_func callback, void *userdata,
                                bb_call **ret_call);

/* As bb_buffer_create_many(); callback gets the count handles. */
int bb_buffer_create_many_async(bb_client *c, const char *name, uint64_t size, unsigned flags,
                                uint64_t ttl_usec, unsigned count, bb_buffers_done_func callback,
                                void *userdata, bb_call **ret_call);

/* As bb_buffer_open(); callback gets the handle. */
int bb_buffer_open_async(bb_client *c, const char *token, bb_buffer_done_func callback, void *userdata,
                         bb_call **ret_call);

/* As bb_buffer_open_fds(); callback gets the handle. */
int bb_buffer_open_fds_async(bb_client *c, uint64_t id, unsigned flags, bb_buffer_done_func callback,
                             void *userdata, bb_call **ret_call);

/* As bb_buffer_share(); callback gets the token (copy it to keep it). */
int bb_buffer_share_async(bb_buffer *buf, unsigned flags, uid_t uid, uint64_t ttl_usec,
                          bb_token_done_func callback, void *userdata, bb_call **ret_call);

/* As bb_buffer_release() and bb_buffer_freeze(); a success updates the
 * handle (bb_buffer_is_persistent(), bb_buffer_is_frozen()) if it still
 * exists. */
int bb_buffer_release_async(bb_buffer *buf, bb_done_func callback, void *userdata, bb_call **ret_call);
int bb_buffer_freeze_async(bb_buffer *buf, bb_done_func callback, void *userdata, bb_call **ret_call);

/* As bb_buffer_release_many(); the handles are not updated. */
int bb_buffer_release_many_async(bb_buffer **bufs, size_t n, bb_done_func callback, void *userdata,
                                 bb_call **ret_call);

/* Drop the handle of an asynchronous call; while the call is pending this
 * cancels it (see above). Takes NULL; returns NULL. */
bb_call *bb_call_unref(bb_call *call);
void bb_call_unrefp(bb_call **p);

/* 1 while the call waits for its reply and is not cancelled, 0 once its
 * callback was called (or it was cancelled, or its client closed); -EINVAL
 * for NULL. */
int bb_call_is_pending(bb_call *call);

/* ----------------------------------------------------------- cleanup --- */

/* For the cleanup variable attribute of GCC and clang, as sd-bus.h offers
 * for its types:
 *
 *     __attribute__((cleanup(bb_buffer_unrefp))) bb_buffer *buf = NULL;
 *
 * unrefs buf whichever way its scope is left. They take the address of a
 * handle pointer; the handle may be NULL. Plain functions (exported since
 * LIBBUFBROKER_1.1), so that this header stays C89 for every compiler. */
void bb_client_unrefp(bb_client **p);
void bb_buffer_unrefp(bb_buffer **p);

/* ------------------------------------------------------------ fourcc --- */

/* A fourcc from its characters: "YUYV" is 0x56595559 (the first character
 * in the lowest byte, as V4L2 and DRM define them). 1 to 4 printable ASCII
 * characters, the first not a space; shorter ones are padded with spaces
 * ("Y10" is "Y10 "). -EINVAL otherwise, and *ret is left alone. */
int bb_fourcc_from_string(const char *s, uint32_t *ret);

/* The 4 characters of a fourcc, NUL-terminated, into buf (at least
 * BB_FOURCC_STRING_MAX bytes); bytes that are not printable ASCII become
 * '?'. Returns buf. */
char *bb_fourcc_to_string(uint32_t fourcc, char *buf);

#ifdef __cplusplus
}
#endif

#endif
