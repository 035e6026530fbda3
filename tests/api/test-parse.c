/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerctl's argument helpers (client/ctl-util.c): ids vs tokens, sizes,
 * TTLs, uids, buffer counts, V4L2 formats ("640x480:YUYV") and types, and the
 * formatting of sizes, JSON strings, user names (or uids), JSON documents
 * (ctl-json.c) and tables.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-json.h"
#include "ctl-util.h"
#include "macro.h"

#define TOKEN "0123456789abcdef0123456789abcdef"

START_TEST(test_token_is_valid) {
        ck_assert(token_is_valid(TOKEN));
        ck_assert(token_is_valid("00000000000000000000000000000000"));
        ck_assert(!token_is_valid(NULL));
        ck_assert(!token_is_valid(""));
        ck_assert(!token_is_valid("0123456789abcdef0123456789abcde"));        /* 31 */
        ck_assert(!token_is_valid("0123456789abcdef0123456789abcdef0"));      /* 33 */
        ck_assert(!token_is_valid("0123456789ABCDEF0123456789abcdef"));       /* upper case */
        ck_assert(!token_is_valid("0123456789abcdeg0123456789abcdef"));
}
END_TEST

START_TEST(test_parse_buffer_id) {
        uint64_t id = 0;

        ck_assert_int_eq(parse_buffer_id("1", &id), 0);
        ck_assert_uint_eq(id, 1);
        ck_assert_int_eq(parse_buffer_id("18446744073709551615", &id), 0);
        ck_assert_uint_eq(id, UINT64_MAX);
        ck_assert_int_eq(parse_buffer_id("/org/bufbroker/Broker1/buffer/42", &id), 0);
        ck_assert_uint_eq(id, 42);

        id = 7;
        ck_assert_int_eq(parse_buffer_id("18446744073709551616", &id), -ERANGE);
        ck_assert_int_eq(parse_buffer_id("", &id), -EINVAL);
        ck_assert_int_eq(parse_buffer_id("-1", &id), -EINVAL);
        ck_assert_int_eq(parse_buffer_id(" 1", &id), -EINVAL);
        ck_assert_int_eq(parse_buffer_id("1 ", &id), -EINVAL);
        ck_assert_int_eq(parse_buffer_id("0x10", &id), -EINVAL);
        /* one path per id: the daemon serves no other */
        ck_assert_int_eq(parse_buffer_id("0", &id), -EINVAL);
        ck_assert_int_eq(parse_buffer_id("007", &id), -EINVAL);
        ck_assert_int_eq(parse_buffer_id("/org/bufbroker/Broker1/buffer/07", &id), -EINVAL);
        ck_assert_int_eq(parse_buffer_id("/org/bufbroker/Broker1/buffer/", &id), -EINVAL);
        ck_assert_int_eq(parse_buffer_id("/org/bufbroker/Broker1/buffer/4/2", &id), -EINVAL);
        ck_assert_int_eq(parse_buffer_id("/org/other/buffer/4", &id), -EINVAL);
        ck_assert_uint_eq(id, 7);
}
END_TEST

START_TEST(test_parse_buffer_ref) {
        const char *token = NULL;
        uint64_t id = 0;

        ck_assert_int_eq(parse_buffer_ref(TOKEN, &id, &token), BUFFER_REF_TOKEN);
        ck_assert_str_eq(token, TOKEN);
        ck_assert_int_eq(parse_buffer_ref("12", &id, &token), BUFFER_REF_ID);
        ck_assert_uint_eq(id, 12);
        /* 32 decimal digits are hex digits too: a token, never an (overflowing) id. */
        ck_assert_int_eq(parse_buffer_ref("12345678901234567890123456789012", &id, &token), BUFFER_REF_TOKEN);
        ck_assert_int_lt(parse_buffer_ref("abc", &id, &token), 0);
        ck_assert_int_lt(parse_buffer_ref("0123456789ABCDEF0123456789ABCDEF", &id, &token), 0);
}
END_TEST

START_TEST(test_parse_size_arg) {
        uint64_t v = 0;

        ck_assert_int_eq(parse_size_arg("4096", &v), 0);
        ck_assert_uint_eq(v, 4096);
        ck_assert_int_eq(parse_size_arg("64K", &v), 0);
        ck_assert_uint_eq(v, 65536);
        ck_assert_int_eq(parse_size_arg("64k", &v), 0);
        ck_assert_uint_eq(v, 65536);
        ck_assert_int_eq(parse_size_arg("64KiB", &v), 0);
        ck_assert_uint_eq(v, 65536);
        ck_assert_int_eq(parse_size_arg("64KB", &v), 0);
        ck_assert_uint_eq(v, 65536);
        ck_assert_int_eq(parse_size_arg("1M", &v), 0);
        ck_assert_uint_eq(v, 1048576);
        ck_assert_int_eq(parse_size_arg("1m", &v), 0);
        ck_assert_uint_eq(v, 1048576);
        ck_assert_int_eq(parse_size_arg("1G", &v), 0);
        ck_assert_uint_eq(v, 1073741824);
        ck_assert_int_eq(parse_size_arg("2T", &v), 0);
        ck_assert_uint_eq(v, UINT64_C(2) << 40);
        ck_assert_int_eq(parse_size_arg("16777215T", &v), 0);
        ck_assert_uint_eq(v, UINT64_C(16777215) << 40);

        v = 9;
        ck_assert_int_eq(parse_size_arg("0", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg("0K", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg("", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg("K", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg("-1", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg("+1", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg(" 1", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg("1 K", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg("1X", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg("1KK", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg("1.5M", &v), -EINVAL);
        ck_assert_int_eq(parse_size_arg("16777216T", &v), -ERANGE);
        ck_assert_int_eq(parse_size_arg("18446744073709551616", &v), -ERANGE);
        ck_assert_int_eq(parse_size_arg("99999999999999999999999", &v), -ERANGE);
        ck_assert_uint_eq(v, 9);
}
END_TEST

START_TEST(test_parse_ttl_arg) {
        uint64_t v = 0;

        ck_assert_int_eq(parse_ttl_arg("500ms", &v), 0);
        ck_assert_uint_eq(v, 500000);
        ck_assert_int_eq(parse_ttl_arg("10s", &v), 0);
        ck_assert_uint_eq(v, 10000000);
        ck_assert_int_eq(parse_ttl_arg("10", &v), 0);
        ck_assert_uint_eq(v, 10000000);
        ck_assert_int_eq(parse_ttl_arg("5min", &v), 0);
        ck_assert_uint_eq(v, 300000000);
        ck_assert_int_eq(parse_ttl_arg("1h", &v), 0);
        ck_assert_uint_eq(v, UINT64_C(3600000000));
        ck_assert_int_eq(parse_ttl_arg("100us", &v), 0);
        ck_assert_uint_eq(v, 100);

        v = 9;
        ck_assert_int_eq(parse_ttl_arg("0", &v), -EINVAL);
        ck_assert_int_eq(parse_ttl_arg("0s", &v), -EINVAL);
        ck_assert_int_eq(parse_ttl_arg("", &v), -EINVAL);
        ck_assert_int_eq(parse_ttl_arg("s", &v), -EINVAL);
        ck_assert_int_eq(parse_ttl_arg("-1s", &v), -EINVAL);
        ck_assert_int_eq(parse_ttl_arg("10 s", &v), -EINVAL);
        ck_assert_int_eq(parse_ttl_arg("10years", &v), -EINVAL);
        ck_assert_int_eq(parse_ttl_arg("18446744073709551615s", &v), -ERANGE);
        ck_assert_uint_eq(v, 9);
}
END_TEST

START_TEST(test_parse_uid_arg) {
        uid_t uid = 5;

        ck_assert_int_eq(parse_uid_arg("0", &uid), 0);
        ck_assert_uint_eq(uid, 0);
        ck_assert_int_eq(parse_uid_arg("65534", &uid), 0);
        ck_assert_uint_eq(uid, 65534);
        ck_assert_int_eq(parse_uid_arg("root", &uid), 0);
        ck_assert_uint_eq(uid, 0);

        uid = 5;
        ck_assert_int_eq(parse_uid_arg("4294967295", &uid), -ERANGE);
        ck_assert_int_eq(parse_uid_arg("4294967296", &uid), -ERANGE);
        ck_assert_int_lt(parse_uid_arg("", &uid), 0);
        ck_assert_int_lt(parse_uid_arg("no-such-user-bufbroker", &uid), 0);
        ck_assert_uint_eq(uid, 5);
}
END_TEST

START_TEST(test_parse_count_arg) {
        unsigned v = 0;

        ck_assert_int_eq(parse_count_arg("1", &v), 0);
        ck_assert_uint_eq(v, 1);
        ck_assert_int_eq(parse_count_arg("32", &v), 0);
        ck_assert_uint_eq(v, 32);
        ck_assert_int_eq(parse_count_arg("4294967295", &v), 0);
        ck_assert_uint_eq(v, UINT32_MAX);

        v = 9;
        ck_assert_int_eq(parse_count_arg("0", &v), -EINVAL);
        ck_assert_int_eq(parse_count_arg("", &v), -EINVAL);
        ck_assert_int_eq(parse_count_arg("-1", &v), -EINVAL);
        ck_assert_int_eq(parse_count_arg("4x", &v), -EINVAL);
        ck_assert_int_eq(parse_count_arg("4294967296", &v), -ERANGE);
        ck_assert_uint_eq(v, 9);
}
END_TEST

START_TEST(test_parse_v4l2_format) {
        uint32_t w = 1, h = 2, f = 3;

        ck_assert_int_eq(parse_v4l2_format("640x480:YUYV", &w, &h, &f), 0);
        ck_assert_uint_eq(w, 640);
        ck_assert_uint_eq(h, 480);
        ck_assert_uint_eq(f, 0x56595559);
        ck_assert_int_eq(parse_v4l2_format("1920X1080:NM12", &w, &h, &f), 0);
        ck_assert_uint_eq(w, 1920);
        ck_assert_uint_eq(h, 1080);
        ck_assert_uint_eq(f, 0x32314d4e);
        ck_assert_int_eq(parse_v4l2_format("4294967295x1:Y10", &w, &h, &f), 0);
        ck_assert_uint_eq(w, UINT32_MAX);
        ck_assert_uint_eq(h, 1);
        ck_assert_uint_eq(f, 0x20303159);
        /* what is left out is 0: "keep the device's" */
        ck_assert_int_eq(parse_v4l2_format("320x240", &w, &h, &f), 0);
        ck_assert_uint_eq(w, 320);
        ck_assert_uint_eq(h, 240);
        ck_assert_uint_eq(f, 0);
        ck_assert_int_eq(parse_v4l2_format(":YM12", &w, &h, &f), 0);
        ck_assert_uint_eq(w, 0);
        ck_assert_uint_eq(h, 0);
        ck_assert_uint_eq(f, 0x32314d59);

        w = 1, h = 2, f = 3;
        ck_assert_int_eq(parse_v4l2_format(NULL, &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format(":", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("YUYV", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("640", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("640x", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("x480", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("0x480:YUYV", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("640x0:YUYV", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("640x480:", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("640x480:YUYVY", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("640x480: YUV", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("640x480x2:YUYV", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("-640x480:YUYV", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format(" 640x480:YUYV", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("640 x 480:YUYV", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("0x10x480", &w, &h, &f), -EINVAL);
        ck_assert_int_eq(parse_v4l2_format("4294967296x480:YUYV", &w, &h, &f), -ERANGE);
        ck_assert_int_eq(parse_v4l2_format("640x99999999999999999999999999:YUYV", &w, &h, &f), -ERANGE);
        ck_assert_int_eq(parse_v4l2_format("640xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:YUYV", &w, &h, &f), -EINVAL);
        ck_assert_uint_eq(w, 1);
        ck_assert_uint_eq(h, 2);
        ck_assert_uint_eq(f, 3);
}
END_TEST

START_TEST(test_v4l2_type_is_valid) {
        ck_assert(v4l2_type_is_valid("capture"));
        ck_assert(v4l2_type_is_valid("output"));
        ck_assert(v4l2_type_is_valid("capture-mplane"));
        ck_assert(v4l2_type_is_valid("output-mplane"));
        ck_assert(!v4l2_type_is_valid(NULL));
        ck_assert(!v4l2_type_is_valid(""));
        ck_assert(!v4l2_type_is_valid("Capture"));
        ck_assert(!v4l2_type_is_valid("capture "));
        ck_assert(!v4l2_type_is_valid("overlay"));
}
END_TEST

START_TEST(test_format_size) {
        char buf[FORMAT_SIZE_MAX];

        ck_assert_str_eq(format_size(buf, 0), "0");
        ck_assert_str_eq(format_size(buf, 1000), "1000");
        ck_assert_str_eq(format_size(buf, 4096), "4K");
        ck_assert_str_eq(format_size(buf, 4097), "4097");
        ck_assert_str_eq(format_size(buf, 1536 * 1024), "1536K");
        ck_assert_str_eq(format_size(buf, 1 << 20), "1M");
        ck_assert_str_eq(format_size(buf, UINT64_C(3) << 30), "3G");
        ck_assert_str_eq(format_size(buf, UINT64_C(1) << 60), "1E");
        ck_assert_str_eq(format_size(buf, UINT64_MAX), "18446744073709551615");
}
END_TEST

START_TEST(test_json_print_string) {
        char *out = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&out, &n);

        ck_assert_ptr_nonnull(f);
        json_print_string(f, "a\"b\\c\nd\te\x01" "f\xc3\xa9");
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_str_eq(out, "\"a\\\"b\\\\c\\nd\\te\\u0001f\xc3\xa9\"");
        free(out);
}
END_TEST


/* A uid the passwd database does not know: the integration tests cannot
 * make a buffer owned by one (dbus-daemon refuses a connection from a uid
 * without a passwd entry), so its formatting is tested here. */
static uid_t unnamed_uid(void) {
        for (uid_t uid = 4242; uid < 4242 + 10000; uid++)
                if (!getpwuid(uid))
                        return uid;
        ck_abort_msg("every uid from 4242 on has a passwd entry");
        return 0;
}

START_TEST(test_format_user) {
        char buf[FORMAT_USER_MAX];
        struct passwd *pw = getpwuid(65534);
        _cleanup_free_ char *nobody = pw ? strdup(pw->pw_name) : NULL;  /* getpwuid()'s storage is reused */
        char long_name[400], want[24];
        uid_t unnamed = unnamed_uid();

        ck_assert_str_eq(format_user_name(buf, 1000, "alice"), "alice");
        ck_assert_str_eq(format_user_name(buf, 1000, NULL), "1000");
        ck_assert_str_eq(format_user_name(buf, 1000, ""), "1000");
        ck_assert_str_eq(format_user_name(buf, 4294967294U, NULL), "4294967294");
        /* a long name is cut, the buffer never overrun */
        memset(long_name, 'x', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = 0;
        format_user_name(buf, 1, long_name);
        ck_assert_uint_eq(strlen(buf), FORMAT_USER_MAX - 1);

        /* from the passwd database */
        ck_assert_str_eq(format_user(buf, 0), "root");
        ck_assert_str_eq(uid_to_user_name(0), "root");
        if (nobody)
                ck_assert_str_eq(format_user(buf, 65534), nobody);
        snprintf(want, sizeof(want), "%u", (unsigned) unnamed);
        ck_assert_str_eq(format_user(buf, unnamed), want);
        ck_assert_ptr_null(uid_to_user_name(unnamed));
}
END_TEST

/* Write a document with both modes; returns what short and pretty gave. */
static void json_sample(JsonMode mode, char **ret) {
        size_t n = 0;
        FILE *f = open_memstream(ret, &n);
        JsonWriter w;

        ck_assert_ptr_nonnull(f);
        json_writer_init(&w, f, mode);
        json_object_begin(&w);
        json_field_uint(&w, "id", 18446744073709551615ULL);
        json_field_string(&w, "name", "a\"b");
        json_field_string(&w, "none", NULL);
        json_field_bool(&w, "yes", true);
        json_field_null(&w, "nil");
        json_key(&w, "empty");
        json_array_begin(&w);
        json_array_end(&w);
        json_key(&w, "list");
        json_array_begin(&w);
        json_uint(&w, 1);
        json_object_begin(&w);
        json_object_end(&w);
        json_array_begin(&w);
        json_bool(&w, false);
        json_array_end(&w);
        json_array_end(&w);
        json_object_end(&w);
        json_document_end(&w);
        ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_json_writer) {
        _cleanup_free_ char *short_doc = NULL, *pretty_doc = NULL;
        JsonMode mode = JSON_OFF;

        json_sample(JSON_SHORT, &short_doc);
        ck_assert_str_eq(short_doc,
                         "{\"id\":18446744073709551615,\"name\":\"a\\\"b\",\"none\":null,\"yes\":true,"
                         "\"nil\":null,\"empty\":[],\"list\":[1,{},[false]]}\n");
        json_sample(JSON_PRETTY, &pretty_doc);
        ck_assert_str_eq(pretty_doc,
                         "{\n"
                         "  \"id\": 18446744073709551615,\n"
                         "  \"name\": \"a\\\"b\",\n"
                         "  \"none\": null,\n"
                         "  \"yes\": true,\n"
                         "  \"nil\": null,\n"
                         "  \"empty\": [],\n"
                         "  \"list\": [\n"
                         "    1,\n"
                         "    {},\n"
                         "    [\n"
                         "      false\n"
                         "    ]\n"
                         "  ]\n"
                         "}\n");

        ck_assert_int_eq(json_mode_from_string("pretty", &mode), 0);
        ck_assert_int_eq(mode, JSON_PRETTY);
        ck_assert_int_eq(json_mode_from_string("short", &mode), 0);
        ck_assert_int_eq(mode, JSON_SHORT);
        ck_assert_int_eq(json_mode_from_string("off", &mode), 0);
        ck_assert_int_eq(mode, JSON_OFF);
        mode = JSON_SHORT;
        ck_assert_int_eq(json_mode_from_string("", &mode), -EINVAL);
        ck_assert_int_eq(json_mode_from_string("Pretty", &mode), -EINVAL);
        ck_assert_int_eq(json_mode_from_string("pretty ", &mode), -EINVAL);
        ck_assert_int_eq(json_mode_from_string(NULL, &mode), -EINVAL);
        ck_assert_int_eq(mode, JSON_SHORT);
}
END_TEST

START_TEST(test_table) {
        static const char *const header[] = { "ID", "OWNER", "NAME" };
        _cleanup_(table_done) Table t = {};
        _cleanup_free_ char *with = NULL, *without = NULL;
        size_t n = 0;
        FILE *f;

        ck_assert_int_eq(table_new(&t, 3, header), 0);
        ck_assert_int_eq(table_add(&t, "12"), 0);
        ck_assert_int_eq(table_add(&t, "0 (root)"), 0);
        ck_assert_int_eq(table_add(&t, "a b"), 0);
        ck_assert_int_eq(table_add(&t, "7"), 0);
        ck_assert_int_eq(table_add(&t, "4242"), 0);
        ck_assert_int_eq(table_add(&t, "\xc3\xbc" "ber"), 0);   /* 4 columns wide, 5 bytes */
        ck_assert_int_eq(table_add(&t, "8"), 0);
        ck_assert_int_eq(table_add(&t, ""), 0);
        ck_assert_int_eq(table_add(&t, ""), 0);                 /* no trailing spaces */

        f = open_memstream(&with, &n);
        table_print(&t, f, true);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_str_eq(with,
                         "ID OWNER    NAME\n"
                         "12 0 (root) a b\n"
                         "7  4242     \xc3\xbc" "ber\n"
                         "8\n");
        /* without the header, columns are as wide as the rows need */
        f = open_memstream(&without, &n);
        table_print(&t, f, false);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_str_eq(without,
                         "12 0 (root) a b\n"
                         "7  4242     \xc3\xbc" "ber\n"
                         "8\n");
}
END_TEST

static Suite *parse_suite(void) {
        Suite *s = suite_create("bufbrokerctl argument helpers");
        TCase *tc = tcase_create("parse");

        tcase_add_test(tc, test_token_is_valid);
        tcase_add_test(tc, test_parse_buffer_id);
        tcase_add_test(tc, test_parse_buffer_ref);
        tcase_add_test(tc, test_parse_size_arg);
        tcase_add_test(tc, test_parse_ttl_arg);
        tcase_add_test(tc, test_parse_uid_arg);
        tcase_add_test(tc, test_parse_count_arg);
        tcase_add_test(tc, test_parse_v4l2_format);
        tcase_add_test(tc, test_v4l2_type_is_valid);
        tcase_add_test(tc, test_format_size);
        tcase_add_test(tc, test_json_print_string);
        tcase_add_test(tc, test_format_user);
        tcase_add_test(tc, test_json_writer);
        tcase_add_test(tc, test_table);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(parse_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
