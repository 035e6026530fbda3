/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library's one reader of buffer fields (client/wire.c) on hand-built
 * GetAll replies of org.bufbroker.Buffer1: with the Planes and Format
 * properties (a descriptive handle then knows its planes and V4L2 format),
 * without them (an older broker: no error, the handle knows less), with
 * unknown keys and wrong signatures (skipped), and on a handle that owns
 * fds (one plane per fd, whatever the reply says); and on hand-built
 * "ah fds, a{sv} info" replies of Create/Open for the kinds of issue 11: a
 * posix buffer's name, a sysv buffer's shmid and no fd (mapped by shmat()
 * of a real segment made here). Links the library's
 * objects, not the shared library, to reach the internal calls; no bus
 * daemon is needed, only an sd-bus connection object to build messages on.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "libbufbroker-private.h"
#include "macro.h"

#define PATH BB_BUFFER_PATH_PREFIX "/7"

static sd_bus *bus;

static void setup(void) {
        int fds[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        ck_assert_int_ge(sd_bus_new(&bus), 0);
        ck_assert_int_ge(sd_bus_set_fd(bus, fds[0], fds[0]), 0);
        /* Starts the authentication, which nobody answers: enough for sd-bus
         * to build messages on it. */
        ck_assert_int_ge(sd_bus_start(bus), 0);
        close(fds[1]);
}

static void teardown(void) {
        bus = sd_bus_close_unref(bus);
}

/* A message to read as a GetAll reply: its body is the properties' a{sv}. */
static sd_bus_message *new_reply(void) {
        sd_bus_message *m = NULL;

        ck_assert_int_ge(sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, PATH, BB_BUFFER_INTERFACE, "X"), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "{sv}"), 0);
        return m;
}

static void append_common(sd_bus_message *m, const char *kind) {
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_ID, "t", (uint64_t) 7), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_NAME, "s", "cam"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_KIND, "s", kind), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_SIZE, "t", (uint64_t) 614400), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_OWNER_UID, "u", (uint32_t) 1000), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_PERSISTENT, "b", 1), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_FROZEN, "b", 0), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_CREATED_USEC, "t", (uint64_t) 1234), 0);
}

static void append_planes_as(sd_bus_message *m, const char *key, unsigned n, uint64_t length, uint32_t stride) {
        ck_assert_int_ge(sd_bus_message_open_container(m, 'e', "sv"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "s", key), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'v', "a(tuu)"), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "(tuu)"), 0);
        for (unsigned i = 0; i < n; i++)
                ck_assert_int_ge(sd_bus_message_append(m, "(tuu)", length, stride, (uint32_t) i * 16), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
}

static void append_planes(sd_bus_message *m, unsigned n, uint64_t length, uint32_t stride) {
        append_planes_as(m, BB_PROP_PLANES, n, length, stride);
}

static void append_v4l2_format(sd_bus_message *m) {
        ck_assert_int_ge(sd_bus_message_open_container(m, 'e', "sv"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "s", BB_PROP_FORMAT), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'v', "a{sv}"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "a{sv}", 7,
                                               BB_FMT_WIDTH, "u", (uint32_t) 640,
                                               BB_FMT_HEIGHT, "u", (uint32_t) 480,
                                               BB_FMT_FOURCC, "s", "YUYV",
                                               BB_FMT_TYPE, "s", "capture",
                                               BB_FMT_FIELD, "u", (uint32_t) 1,
                                               BB_FMT_NUM_PLANES, "u", (uint32_t) 1,
                                               /* not a key of Format: ignored there */
                                               BB_PROP_SIZE, "t", (uint64_t) 1), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
}

/* Close the a{sv}, seal, and read it into buf. */
static int read_reply(sd_bus_message *m, bb_buffer *buf) {
        int r;

        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_int_ge(sd_bus_message_seal(m, 1, 0), 0);
        ck_assert_int_ge(sd_bus_message_rewind(m, 1), 0);
        r = wire_read_properties(buf, m);
        sd_bus_message_unref(m);
        return r;
}

static void assert_no_format(bb_buffer *buf) {
        ck_assert_uint_eq(bb_buffer_width(buf), 0);
        ck_assert_uint_eq(bb_buffer_height(buf), 0);
        ck_assert_uint_eq(bb_buffer_fourcc(buf), 0);
        ck_assert_ptr_null(bb_buffer_format_type(buf));
}

START_TEST(test_properties_v4l2) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        sd_bus_message *m;
        void *addr;
        size_t size;

        ck_assert_int_eq(buffer_new(NULL, PATH, &buf), 0);
        m = new_reply();
        append_common(m, BB_KIND_V4L2);
        append_planes(m, 2, 307200, 1280);
        append_v4l2_format(m);
        ck_assert_int_eq(read_reply(m, buf), 0);

        ck_assert_uint_eq(bb_buffer_id(buf), 7);
        ck_assert_str_eq(bb_buffer_name(buf), "cam");
        ck_assert_str_eq(bb_buffer_kind(buf), BB_KIND_V4L2);
        ck_assert_uint_eq(bb_buffer_size(buf), 614400);
        ck_assert_uint_eq(bb_buffer_owner_uid(buf), 1000);
        ck_assert_int_eq(bb_buffer_is_persistent(buf), 1);
        ck_assert_int_eq(bb_buffer_is_frozen(buf), 0);
        ck_assert_uint_eq(bb_buffer_created_usec(buf), 1234);

        ck_assert_uint_eq(bb_buffer_n_planes(buf), 2);
        ck_assert_uint_eq(bb_buffer_plane_length(buf, 1), 307200);
        ck_assert_uint_eq(bb_buffer_plane_stride(buf, 1), 1280);
        ck_assert_uint_eq(bb_buffer_plane_offset(buf, 1), 16);
        ck_assert_uint_eq(bb_buffer_plane_length(buf, 2), 0);
        ck_assert_uint_eq(bb_buffer_width(buf), 640);
        ck_assert_uint_eq(bb_buffer_height(buf), 480);
        ck_assert_uint_eq(bb_buffer_fourcc(buf), 0x56595559);
        ck_assert_str_eq(bb_buffer_format_type(buf), "capture");
        ck_assert_uint_eq(bb_buffer_size(buf), 614400);

        /* Described, not owned: still no fds to use. */
        ck_assert_int_eq(bb_buffer_plane_fd(buf, 0), -ENODATA);
        ck_assert_int_eq(bb_buffer_map_plane(buf, 0, &addr, &size), -ENODATA);
        ck_assert_int_eq(bb_buffer_v4l2_index(buf), -ENODATA);
}
END_TEST

START_TEST(test_properties_memfd) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        sd_bus_message *m;

        ck_assert_int_eq(buffer_new(NULL, PATH, &buf), 0);
        m = new_reply();
        append_common(m, BB_KIND_MEMFD);
        append_planes(m, 1, 614400, 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_FORMAT, "a{sv}", 0), 0);
        ck_assert_int_eq(read_reply(m, buf), 0);

        ck_assert_uint_eq(bb_buffer_n_planes(buf), 1);
        ck_assert_uint_eq(bb_buffer_plane_length(buf, 0), 614400);
        assert_no_format(buf);
}
END_TEST

/* A broker older than Planes and Format: the rest is read, no error. */
START_TEST(test_properties_old_broker) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        sd_bus_message *m;

        ck_assert_int_eq(buffer_new(NULL, PATH, &buf), 0);
        m = new_reply();
        append_common(m, BB_KIND_V4L2);
        ck_assert_int_eq(read_reply(m, buf), 0);

        ck_assert_uint_eq(bb_buffer_size(buf), 614400);
        ck_assert_uint_eq(bb_buffer_n_planes(buf), 0);
        assert_no_format(buf);
}
END_TEST

/* Unknown keys, known keys of another signature, and info keys that are no
 * property names are skipped. */
START_TEST(test_properties_skipped) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        sd_bus_message *m;

        ck_assert_int_eq(buffer_new(NULL, PATH, &buf), 0);
        m = new_reply();
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", "Future", "as", 2, "a", "b"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_SIZE, "u", (uint32_t) 5), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_INFO_SIZE, "t", (uint64_t) 6), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_FMT_WIDTH, "u", (uint32_t) 640), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_PLANES, "s", "no"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_NAME, "s", "after"), 0);
        ck_assert_int_eq(read_reply(m, buf), 0);

        ck_assert_uint_eq(bb_buffer_size(buf), 0);
        ck_assert_uint_eq(bb_buffer_n_planes(buf), 0);
        assert_no_format(buf);
        ck_assert_str_eq(bb_buffer_name(buf), "after");
}
END_TEST

START_TEST(test_properties_too_many_planes) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        sd_bus_message *m;

        ck_assert_int_eq(buffer_new(NULL, PATH, &buf), 0);
        m = new_reply();
        append_planes(m, BB_PLANES_MAX + 1, 4096, 0);
        ck_assert_int_eq(read_reply(m, buf), -EBADMSG);
}
END_TEST

/* A handle that owns fds keeps one plane per fd: a refresh that says
 * otherwise is refused, one that agrees updates the metadata only. */
START_TEST(test_properties_with_fds) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        _cleanup_close_ int fd = -1;
        sd_bus_message *m;
        int plane_fd;

        fd = memfd_create("test-wire", MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(buffer_new(NULL, PATH, &buf), 0);
        ck_assert_int_eq(buffer_add_fd(buf, fd), 0);
        buf->n_planes = 1;
        plane_fd = bb_buffer_plane_fd(buf, 0);
        ck_assert_int_ge(plane_fd, 3);

        m = new_reply();
        append_planes(m, 2, 4096, 0);
        ck_assert_int_eq(read_reply(m, buf), -EBADMSG);
        ck_assert_uint_eq(bb_buffer_n_planes(buf), 1);

        m = new_reply();
        append_planes(m, 1, 4096, 64);
        ck_assert_int_eq(read_reply(m, buf), 0);
        ck_assert_uint_eq(bb_buffer_n_planes(buf), 1);
        ck_assert_uint_eq(bb_buffer_plane_stride(buf, 0), 64);
        ck_assert_int_eq(bb_buffer_plane_fd(buf, 0), plane_fd);
}
END_TEST

/* ---- the info of Create/Open: handles of the new kinds -------------------- */

/* A Create/Open reply past its path: fds (those >= 0 of fds[], n of them),
 * then the info a{sv} left open for the caller's keys. */
static sd_bus_message *new_info(const int *fds, unsigned n, const char *kind, uint64_t size, bool read_only) {
        sd_bus_message *m = NULL;

        ck_assert_int_ge(sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, PATH, BB_BUFFER_INTERFACE, "X"), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "h"), 0);
        for (unsigned i = 0; i < n; i++)
                ck_assert_int_ge(sd_bus_message_append(m, "h", fds[i]), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "{sv}"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}{sv}{sv}{sv}{sv}",
                                               BB_INFO_ID, "t", (uint64_t) 7,
                                               BB_INFO_KIND, "s", kind,
                                               BB_INFO_SIZE, "t", size,
                                               BB_INFO_NAME, "s", "k",
                                               BB_INFO_READ_ONLY, "b", read_only), 0);
        return m;
}

static int read_info(sd_bus_message *m, bb_buffer *buf) {
        int r;

        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_int_ge(sd_bus_message_seal(m, 1, 0), 0);
        ck_assert_int_ge(sd_bus_message_rewind(m, 1), 0);
        r = wire_read_fds_and_info(buf, m);
        sd_bus_message_unref(m);
        return r;
}

START_TEST(test_info_posix) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        _cleanup_close_ int fd = -1;
        sd_bus_message *m;
        uint64_t allocated;

        fd = memfd_create("test-wire-posix", MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 8192), 0);
        ck_assert_int_eq(buffer_new(NULL, PATH, &buf), 0);
        m = new_info(&fd, 1, BB_KIND_POSIX, 8192, false);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_INFO_SHM_NAME, "s",
                                               "/bufbroker-0123456789abcdef0123456789abcdef"), 0);
        /* a shmid of -1 says "none", as the property does */
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_INFO_SHMID, "i", (int32_t) -1), 0);
        ck_assert_int_eq(read_info(m, buf), 0);

        ck_assert_str_eq(bb_buffer_kind(buf), BB_KIND_POSIX);
        ck_assert_str_eq(bb_buffer_shm_name(buf), "/bufbroker-0123456789abcdef0123456789abcdef");
        ck_assert_int_eq(bb_buffer_shmid(buf), -ENODATA);
        ck_assert_int_ge(bb_buffer_fd(buf), 3);
        ck_assert_uint_eq(bb_buffer_n_planes(buf), 1);
        ck_assert_uint_eq(bb_buffer_plane_length(buf, 0), 8192);
        ck_assert_int_eq(bb_buffer_is_writable(buf), 1);
        /* plain memory: nothing to sync, no error */
        ck_assert_int_eq(bb_buffer_sync_begin(buf, BB_SYNC_RW), 0);
        ck_assert_int_eq(bb_buffer_sync_end(buf, BB_SYNC_RW), 0);
        /* not in Open's info: only the property tells */
        ck_assert_int_eq(bb_buffer_get_allocated_bytes(buf, &allocated), -ENODATA);
}
END_TEST

/* A child writes through the mapping: 0 when it could, the signal's
 * number when the write faulted. */
static int write_in_child(volatile char *p) {
        int status;
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* The kernel's verdict, not a sanitizer's handler's. */
                signal(SIGSEGV, SIG_DFL);
                p[0] = 'x';
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status);
}

START_TEST(test_info_sysv) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL, *ro = NULL;
        struct shmid_ds ds;
        sd_bus_message *m;
        void *addr, *addr2, *mine;
        size_t size;
        int id;

        id = shmget(IPC_PRIVATE, 8192, IPC_CREAT | IPC_EXCL | 0600);
        ck_assert_int_ge(id, 0);
        mine = shmat(id, NULL, 0);
        ck_assert_ptr_ne(mine, (void *) -1);

        ck_assert_int_eq(buffer_new(NULL, PATH, &buf), 0);
        m = new_info(NULL, 0, BB_KIND_SYSV, 8192, false);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}{sv}", BB_INFO_SHMID, "i", (int32_t) id,
                                               BB_INFO_SHM_NAME, "s", ""), 0);
        ck_assert_int_eq(read_info(m, buf), 0);

        ck_assert_int_eq(bb_buffer_shmid(buf), id);
        ck_assert_ptr_null(bb_buffer_shm_name(buf));
        ck_assert_int_eq(bb_buffer_fd(buf), -EOPNOTSUPP);
        ck_assert_int_eq(bb_buffer_plane_fd(buf, 0), -EOPNOTSUPP);
        ck_assert_uint_eq(bb_buffer_n_planes(buf), 1);
        ck_assert_uint_eq(bb_buffer_plane_length(buf, 0), 8192);
        ck_assert_int_eq(bb_buffer_is_writable(buf), 1);
        ck_assert_int_eq(bb_buffer_sync_begin(buf, BB_SYNC_WRITE), 0);
        ck_assert_int_eq(bb_buffer_map_plane(buf, 1, &addr, &size), -ERANGE);

        /* a refresh keeps the holder's one plane: none said changes nothing,
         * two are a broken reply */
        m = new_reply();
        append_planes(m, 0, 0, 0);
        ck_assert_int_eq(read_reply(m, buf), 0);
        ck_assert_uint_eq(bb_buffer_n_planes(buf), 1);
        m = new_reply();
        append_planes(m, 2, 4096, 0);
        ck_assert_int_eq(read_reply(m, buf), -EBADMSG);
        ck_assert_uint_eq(bb_buffer_n_planes(buf), 1);
        m = new_reply();
        append_planes(m, 1, 8192, 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_SHM_ID, "i", (int32_t) id), 0);
        ck_assert_int_eq(read_reply(m, buf), 0);
        ck_assert_uint_eq(bb_buffer_n_planes(buf), 1);
        ck_assert_int_eq(bb_buffer_shmid(buf), id);

        /* mapped is attached: the segment's own memory, once */
        ck_assert_int_eq(bb_buffer_map(buf, &addr, &size), 0);
        ck_assert_uint_eq(size, 8192);
        ck_assert_int_eq(bb_buffer_map(buf, &addr2, &size), 0);
        ck_assert_ptr_eq(addr, addr2);
        ck_assert_int_eq(shmctl(id, IPC_STAT, &ds), 0);
        ck_assert_uint_eq(ds.shm_nattch, 2);
        memcpy(addr, "through shmat", 14);
        ck_assert_str_eq(mine, "through shmat");
        ck_assert_int_eq(write_in_child(addr), 0);
        ck_assert_int_eq(((char *) mine)[0], 'x');

        /* unmapped is detached */
        ck_assert_int_eq(bb_buffer_unmap(buf), 0);
        ck_assert_int_eq(shmctl(id, IPC_STAT, &ds), 0);
        ck_assert_uint_eq(ds.shm_nattch, 1);

        /* a read-only handle attaches SHM_RDONLY: a write faults */
        ck_assert_int_eq(buffer_new(NULL, PATH, &ro), 0);
        m = new_info(NULL, 0, BB_KIND_SYSV, 8192, true);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_INFO_SHMID, "i", (int32_t) id), 0);
        append_planes_as(m, BB_INFO_PLANES, 1, 8192, 0);
        ck_assert_int_eq(read_info(m, ro), 0);
        ck_assert_int_eq(bb_buffer_is_read_only(ro), 1);
        ck_assert_int_eq(bb_buffer_is_writable(ro), 0);
        ck_assert_int_eq(bb_buffer_map(ro, &addr, &size), 0);
        ck_assert_mem_eq(addr, "xhrough shmat", 14);
        ck_assert_int_eq(write_in_child(addr), SIGSEGV);

        /* the last unref detaches too */
        ro = bb_buffer_unref(ro);
        ck_assert_int_eq(shmctl(id, IPC_STAT, &ds), 0);
        ck_assert_uint_eq(ds.shm_nattch, 1);

        ck_assert_int_eq(shmdt(mine), 0);
        ck_assert_int_eq(shmctl(id, IPC_RMID, NULL), 0);
        /* a segment that is gone: the attach says so */
        ck_assert_int_eq(bb_buffer_map(buf, &addr, &size), -EINVAL);
}
END_TEST

/* No fds is a sysv buffer's right only, and then with its shmid and one
 * plane. */
START_TEST(test_info_without_fds) {
        static const struct {
                const char *kind;
                int32_t shmid;          /* -2: left out */
                unsigned planes;
        } cases[] = {
                { BB_KIND_MEMFD, -2, 0 },
                { BB_KIND_POSIX, -2, 0 },
                { BB_KIND_SYSV, -2, 0 },
                { BB_KIND_SYSV, -1, 0 },
                { BB_KIND_SYSV, 5, 2 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
                sd_bus_message *m;

                ck_assert_int_eq(buffer_new(NULL, PATH, &buf), 0);
                m = new_info(NULL, 0, cases[i].kind, 8192, false);
                if (cases[i].shmid != -2)
                        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_INFO_SHMID, "i", cases[i].shmid), 0);
                if (cases[i].planes > 0)
                        append_planes_as(m, BB_INFO_PLANES, cases[i].planes, 4096, 0);
                ck_assert_msg(read_info(m, buf) == -EBADMSG, "case %zu (%s) was accepted", i, cases[i].kind);
        }
}
END_TEST

/* ShmName, ShmId, AllocatedBytes as properties; a descriptive sysv handle
 * knows its shmid but may not attach it (it holds nothing). */
START_TEST(test_properties_handles) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL, *none = NULL;
        sd_bus_message *m;
        uint64_t allocated = 0;
        void *addr;
        size_t size;

        ck_assert_int_eq(buffer_new(NULL, PATH, &buf), 0);
        m = new_reply();
        append_common(m, BB_KIND_SYSV);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}{sv}{sv}", BB_PROP_SHM_NAME, "s", "",
                                               BB_PROP_SHM_ID, "i", (int32_t) 1234,
                                               BB_PROP_ALLOCATED_BYTES, "t", (uint64_t) 12288), 0);
        ck_assert_int_eq(read_reply(m, buf), 0);
        ck_assert_int_eq(bb_buffer_shmid(buf), 1234);
        ck_assert_ptr_null(bb_buffer_shm_name(buf));
        ck_assert_int_eq(bb_buffer_get_allocated_bytes(buf, &allocated), 0);
        ck_assert_uint_eq(allocated, 12288);
        ck_assert_int_eq(bb_buffer_map(buf, &addr, &size), -ENODATA);
        ck_assert_int_eq(bb_buffer_fd(buf), -ENODATA);
        ck_assert_int_eq(bb_buffer_is_writable(buf), 0);
        ck_assert_int_eq(bb_buffer_sync_begin(buf, BB_SYNC_READ), -ENODATA);

        /* the info's key names are no property names, and a wrong type is skipped */
        ck_assert_int_eq(buffer_new(NULL, PATH, &none), 0);
        m = new_reply();
        append_common(m, BB_KIND_POSIX);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}{sv}{sv}{sv}", BB_INFO_SHM_NAME, "s", "/info-key",
                                               BB_INFO_SHMID, "i", (int32_t) 3,
                                               BB_PROP_SHM_ID, "u", (uint32_t) 4,
                                               BB_PROP_ALLOCATED_BYTES, "u", (uint32_t) 5), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_PROP_SHM_NAME, "s", "/bufbroker-x"), 0);
        ck_assert_int_eq(read_reply(m, none), 0);
        ck_assert_str_eq(bb_buffer_shm_name(none), "/bufbroker-x");
        ck_assert_int_eq(bb_buffer_shmid(none), -ENODATA);
        ck_assert_int_eq(bb_buffer_get_allocated_bytes(none, &allocated), -ENODATA);

        /* NULL handles */
        ck_assert_ptr_null(bb_buffer_shm_name(NULL));
        ck_assert_int_eq(bb_buffer_shmid(NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_get_allocated_bytes(NULL, &allocated), -EINVAL);
        ck_assert_int_eq(bb_buffer_get_allocated_bytes(none, NULL), -EINVAL);
}
END_TEST

int main(void) {
        Suite *s = suite_create("libbufbroker wire reader");
        TCase *tc = tcase_create("properties");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_properties_v4l2);
        tcase_add_test(tc, test_properties_memfd);
        tcase_add_test(tc, test_properties_old_broker);
        tcase_add_test(tc, test_properties_skipped);
        tcase_add_test(tc, test_properties_too_many_planes);
        tcase_add_test(tc, test_properties_with_fds);
        tcase_add_test(tc, test_properties_handles);
        suite_add_tcase(s, tc);

        tc = tcase_create("info");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_info_posix);
        tcase_add_test(tc, test_info_sysv);
        tcase_add_test(tc, test_info_without_fds);
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
