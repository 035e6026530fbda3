/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library's one reader of buffer fields (client/wire.c) on hand-built
 * GetAll replies of org.bufbroker.Buffer1: with the Planes and Format
 * properties (a descriptive handle then knows its planes and V4L2 format),
 * without them (an older broker: no error, the handle knows less), with
 * unknown keys and wrong signatures (skipped), and on a handle that owns
 * fds (one plane per fd, whatever the reply says). Links the library's
 * objects, not the shared library, to reach the internal calls; no bus
 * daemon is needed, only an sd-bus connection object to build messages on.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
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

static void append_planes(sd_bus_message *m, unsigned n, uint64_t length, uint32_t stride) {
        ck_assert_int_ge(sd_bus_message_open_container(m, 'e', "sv"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "s", BB_PROP_PLANES), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'v', "a(tuu)"), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "(tuu)"), 0);
        for (unsigned i = 0; i < n; i++)
                ck_assert_int_ge(sd_bus_message_append(m, "(tuu)", length, stride, (uint32_t) i * 16), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
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
        suite_add_tcase(s, tc);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? 0 : 1;
}
