/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Links the installed-style shared libbufbroker and calls its API where no
 * bus is needed: argument checks, NULL-safe destructors and getters, and
 * connection failures that must come back as exact negative errnos (with
 * the output argument left alone). The real-bus cases are in
 * tests/integration.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <bufbroker.h>

#define NOWHERE "unix:path=/nonexistent-bufbroker-test/bus"

/* A value no constructor may leave behind when it fails. */
#define SENTINEL_CLIENT ((bb_client *) (uintptr_t) 0x1)

START_TEST(test_refs_null) {
        ck_assert_ptr_null(bb_client_ref(NULL));
        ck_assert_ptr_null(bb_client_unref(NULL));
        ck_assert_ptr_null(bb_buffer_ref(NULL));
        ck_assert_ptr_null(bb_buffer_unref(NULL));
        ck_assert_ptr_null(bb_buffer_list_free(NULL, 0));
        ck_assert_ptr_null(bb_buffer_list_free(NULL, 3));
}
END_TEST

/* The cleanup helpers of bufbroker.h take a pointer to a NULL handle too. */
START_TEST(test_unrefp_null) {
        bb_client *c = NULL;
        bb_buffer *buf = NULL;

        bb_client_unrefp(&c);
        bb_buffer_unrefp(&buf);
        {
                __attribute__((cleanup(bb_client_unrefp))) bb_client *scoped_c = NULL;
                __attribute__((cleanup(bb_buffer_unrefp))) bb_buffer *scoped_buf = NULL;

                ck_assert_ptr_null(scoped_c);
                ck_assert_ptr_null(scoped_buf);
        }
}
END_TEST

START_TEST(test_getters_null) {
        unsigned holders = 7;
        void *addr = NULL;
        size_t size = 0;

        ck_assert_uint_eq(bb_buffer_id(NULL), 0);
        ck_assert_uint_eq(bb_buffer_size(NULL), 0);
        ck_assert_ptr_null(bb_buffer_name(NULL));
        ck_assert_ptr_null(bb_buffer_kind(NULL));
        ck_assert_ptr_null(bb_buffer_path(NULL));
        ck_assert_uint_eq(bb_buffer_owner_uid(NULL), (uid_t) -1);
        ck_assert_int_eq(bb_buffer_is_read_only(NULL), 0);
        ck_assert_int_eq(bb_buffer_is_persistent(NULL), 0);
        ck_assert_int_eq(bb_buffer_is_frozen(NULL), 0);
        ck_assert_int_eq(bb_buffer_is_writable(NULL), 0);
        ck_assert_uint_eq(bb_buffer_created_usec(NULL), 0);
        ck_assert_int_eq(bb_buffer_get_holders(NULL, &holders), -EINVAL);
        ck_assert_uint_eq(holders, 7);
        ck_assert_int_eq(bb_buffer_fd(NULL), -EINVAL);
        ck_assert_ptr_null(bb_buffer_shm_name(NULL));
        ck_assert_int_eq(bb_buffer_shmid(NULL), -EINVAL);
        {
                uint64_t allocated = 9;

                ck_assert_int_eq(bb_buffer_get_allocated_bytes(NULL, &allocated), -EINVAL);
                ck_assert_uint_eq(allocated, 9);
        }
        ck_assert_int_eq(bb_buffer_map(NULL, &addr, &size), -EINVAL);
        ck_assert_int_eq(bb_buffer_unmap(NULL), -EINVAL);
        ck_assert_ptr_null(bb_client_error_name(NULL));
        ck_assert_ptr_null(bb_client_error_message(NULL));
}
END_TEST

START_TEST(test_plane_getters_null) {
        void *addr = (void *) &addr;
        size_t size = 99;

        ck_assert_uint_eq(bb_buffer_n_planes(NULL), 0);
        for (unsigned i = 0; i < 9; i++) {
                ck_assert_int_eq(bb_buffer_plane_fd(NULL, i), -EINVAL);
                ck_assert_uint_eq(bb_buffer_plane_length(NULL, i), 0);
                ck_assert_uint_eq(bb_buffer_plane_stride(NULL, i), 0);
                ck_assert_uint_eq(bb_buffer_plane_offset(NULL, i), 0);
                ck_assert_int_eq(bb_buffer_map_plane(NULL, i, &addr, &size), -EINVAL);
        }
        ck_assert_ptr_eq(addr, (void *) &addr);
        ck_assert_uint_eq(size, 99);
        ck_assert_int_eq(bb_buffer_plane_fd(NULL, UINT32_MAX), -EINVAL);
        ck_assert_int_eq(bb_buffer_sync_begin(NULL, BB_SYNC_READ), -EINVAL);
        ck_assert_int_eq(bb_buffer_sync_end(NULL, BB_SYNC_READ), -EINVAL);
        ck_assert_int_eq(bb_buffer_sync_begin(NULL, BB_SYNC_RW), -EINVAL);
        ck_assert_int_eq(bb_buffer_sync_end(NULL, BB_SYNC_WRITE), -EINVAL);
}
END_TEST

START_TEST(test_format_getters_null) {
        ck_assert_uint_eq(bb_buffer_width(NULL), 0);
        ck_assert_uint_eq(bb_buffer_height(NULL), 0);
        ck_assert_uint_eq(bb_buffer_fourcc(NULL), 0);
        ck_assert_ptr_null(bb_buffer_format_type(NULL));
        ck_assert_int_eq(bb_buffer_v4l2_index(NULL), -EINVAL);
}
END_TEST

START_TEST(test_fourcc) {
        char s[BB_FOURCC_STRING_MAX];
        uint32_t v = 0;

        ck_assert_int_eq(bb_fourcc_from_string("YUYV", &v), 0);
        ck_assert_uint_eq(v, 0x56595559);       /* V4L2_PIX_FMT_YUYV */
        ck_assert_int_eq(bb_fourcc_from_string("YM12", &v), 0);
        ck_assert_uint_eq(v, 0x32314d59);       /* V4L2_PIX_FMT_YUV420M */
        ck_assert_int_eq(bb_fourcc_from_string("NM12", &v), 0);
        ck_assert_uint_eq(v, 0x32314d4e);       /* V4L2_PIX_FMT_NV12M */
        /* short ones are padded with spaces, like V4L2's "Y10 " */
        ck_assert_int_eq(bb_fourcc_from_string("Y10", &v), 0);
        ck_assert_uint_eq(v, 0x20303159);
        ck_assert_int_eq(bb_fourcc_from_string("Y10 ", &v), 0);
        ck_assert_uint_eq(v, 0x20303159);
        ck_assert_int_eq(bb_fourcc_from_string("R", &v), 0);
        ck_assert_uint_eq(v, 0x20202052);

        v = 7;
        ck_assert_int_eq(bb_fourcc_from_string(NULL, &v), -EINVAL);
        ck_assert_int_eq(bb_fourcc_from_string("YUYV", NULL), -EINVAL);
        ck_assert_int_eq(bb_fourcc_from_string("", &v), -EINVAL);
        ck_assert_int_eq(bb_fourcc_from_string("YUYVX", &v), -EINVAL);
        ck_assert_int_eq(bb_fourcc_from_string(" YUV", &v), -EINVAL);
        ck_assert_int_eq(bb_fourcc_from_string("YU\tV", &v), -EINVAL);
        ck_assert_int_eq(bb_fourcc_from_string("YU\xc3\xa9", &v), -EINVAL);
        ck_assert_uint_eq(v, 7);

        ck_assert_str_eq(bb_fourcc_to_string(0x56595559, s), "YUYV");
        ck_assert_str_eq(bb_fourcc_to_string(0x32314d59, s), "YM12");
        ck_assert_str_eq(bb_fourcc_to_string(0x20303159, s), "Y10 ");
        ck_assert_str_eq(bb_fourcc_to_string(0, s), "????");
        ck_assert_str_eq(bb_fourcc_to_string(0x80000000u | 0x34325258u, s), "XR2?");
        ck_assert_ptr_null(bb_fourcc_to_string(0x56595559, NULL));

        /* round trip */
        ck_assert_int_eq(bb_fourcc_from_string(bb_fourcc_to_string(0x3231564e, s), &v), 0);
        ck_assert_uint_eq(v, 0x3231564e);
}
END_TEST

START_TEST(test_calls_null) {
        bb_buffer *buf = NULL;
        char *s = NULL;
        uint64_t v = 42;

        ck_assert_int_eq(bb_client_get_fd(NULL), -EINVAL);
        ck_assert_int_eq(bb_client_get_events(NULL), -EINVAL);
        ck_assert_int_eq(bb_client_process(NULL, 0), -EINVAL);
        ck_assert_int_eq(bb_client_monitor(NULL, NULL, NULL), -EINVAL);
        ck_assert_int_eq(bb_client_get_version(NULL, &s), -EINVAL);
        ck_assert_int_eq(bb_client_get_stat(NULL, "buffers", &v), -EINVAL);
        ck_assert_int_eq(bb_client_get_limit(NULL, "max-buffers", &v), -EINVAL);
        ck_assert_uint_eq(v, 42);
        ck_assert_int_eq(bb_buffer_create(NULL, "x", 4096, 0, 0, &buf), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_kind(NULL, "posix", "x", 4096, 0, 0, &buf), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_kind_async(NULL, "posix", "x", 4096, 0, 0, NULL, NULL, NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_open(NULL, "0123456789abcdef0123456789abcdef", &buf), -EINVAL);
        ck_assert_int_eq(bb_buffer_get(NULL, 1, &buf), -EINVAL);
        ck_assert_ptr_null(buf);
        ck_assert_int_eq(bb_buffer_refresh(NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_share(NULL, 0, 0, 0, &s), -EINVAL);
        ck_assert_ptr_null(s);
        ck_assert_int_eq(bb_buffer_release(NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_freeze(NULL), -EINVAL);
}
END_TEST

START_TEST(test_v4l2_calls_null) {
        bb_buffer *buf = NULL, **list = (bb_buffer **) &buf;
        size_t n = 5;

        ck_assert_int_eq(bb_buffer_open_fds(NULL, 1, 0, &buf), -EINVAL);
        ck_assert_int_eq(bb_buffer_open_fds(NULL, 1, BB_OPEN_READ_ONLY, &buf), -EINVAL);
        ck_assert_ptr_null(buf);
        ck_assert_int_eq(bb_buffer_create_v4l2(NULL, "/dev/video0", 4, 640, 480, 0x56595559, NULL, 0, 0,
                                               &list, &n), -EINVAL);
        ck_assert_ptr_eq(list, (bb_buffer **) &buf);
        ck_assert_uint_eq(n, 5);
}
END_TEST

START_TEST(test_new_bad_arguments) {
        bb_client *c = SENTINEL_CLIENT;

        ck_assert_int_eq(bb_client_new(NULL), -EINVAL);
        ck_assert_int_eq(bb_client_new_user(NULL), -EINVAL);
        ck_assert_int_eq(bb_client_new_address(NULL, NOWHERE), -EINVAL);
        ck_assert_int_eq(bb_client_new_address(&c, NULL), -EINVAL);
        ck_assert_int_eq(bb_client_new_address(&c, ""), -EINVAL);
        ck_assert_ptr_eq(c, SENTINEL_CLIENT);
}
END_TEST

START_TEST(test_new_address_unreachable) {
        bb_client *c = SENTINEL_CLIENT;

        /* connect() on a socket path that does not exist. */
        ck_assert_int_eq(bb_client_new_address(&c, NOWHERE), -ENOENT);
        ck_assert_ptr_eq(c, SENTINEL_CLIENT);
        /* An address sd-bus cannot parse. */
        ck_assert_int_lt(bb_client_new_address(&c, "no-such-transport:foo=bar"), 0);
        ck_assert_ptr_eq(c, SENTINEL_CLIENT);
}
END_TEST

START_TEST(test_new_system_honours_env) {
        bb_client *c = SENTINEL_CLIENT;

        ck_assert_int_eq(setenv("DBUS_SYSTEM_BUS_ADDRESS", NOWHERE, 1), 0);
        ck_assert_int_eq(bb_client_new(&c), -ENOENT);
        ck_assert_ptr_eq(c, SENTINEL_CLIENT);
}
END_TEST

START_TEST(test_new_user_honours_env) {
        bb_client *c = SENTINEL_CLIENT;

        ck_assert_int_eq(setenv("DBUS_SESSION_BUS_ADDRESS", NOWHERE, 1), 0);
        ck_assert_int_eq(bb_client_new_user(&c), -ENOENT);
        ck_assert_ptr_eq(c, SENTINEL_CLIENT);
}
END_TEST

static Suite *api_suite(void) {
        Suite *s = suite_create("libbufbroker API without a bus");
        TCase *tc = tcase_create("api");

        tcase_add_test(tc, test_refs_null);
        tcase_add_test(tc, test_unrefp_null);
        tcase_add_test(tc, test_getters_null);
        tcase_add_test(tc, test_plane_getters_null);
        tcase_add_test(tc, test_format_getters_null);
        tcase_add_test(tc, test_fourcc);
        tcase_add_test(tc, test_calls_null);
        tcase_add_test(tc, test_v4l2_calls_null);
        tcase_add_test(tc, test_new_bad_arguments);
        tcase_add_test(tc, test_new_address_unreachable);
        tcase_add_test(tc, test_new_system_honours_env);
        tcase_add_test(tc, test_new_user_honours_env);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(api_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
