/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may do what: only the owner uid (or root) may Release, Share or Freeze;
 * other uids see only their own (and held) buffers; uid-bound tokens refuse
 * other uids; single-use tokens die after one Open. uid 65534 acts in forked
 * children, through raw sd-bus calls and through libbufbroker.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bufbroker.h"
#include "harness.h"

/* ---- a call made by uid 65534 that must fail with a given error -------- */

typedef struct Expect {
        const char *path;
        const char *interface;
        const char *member;
        const char *signature;          /* NULL: no arguments; "a{sv}": empty dict;
                                         * "ss": Properties.Get of property; "s": GetAll */
        const char *property;
        const char *error;
        const char *needle;             /* the message must contain it */
} Expect;

static int nobody_expect_error(void *userdata) {
        const Expect *e = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        if (e->signature && strcmp(e->signature, "a{sv}") == 0)
                r = sd_bus_call_method(bus, BB_BUS_NAME, e->path, e->interface, e->member, &error,
                                       NULL, "a{sv}", 0);
        else if (e->signature && strcmp(e->signature, "ss") == 0)
                /* Properties.Get */
                r = sd_bus_call_method(bus, BB_BUS_NAME, e->path, e->interface, e->member, &error,
                                       NULL, "ss", BB_BUFFER_INTERFACE, e->property);
        else if (e->signature && strcmp(e->signature, "s") == 0)
                r = sd_bus_call_method(bus, BB_BUS_NAME, e->path, e->interface, e->member, &error,
                                       NULL, "s", BB_BUFFER_INTERFACE);
        else
                r = sd_bus_call_method(bus, BB_BUS_NAME, e->path, e->interface, e->member, &error,
                                       NULL, "");
        child_check(r < 0, "%s.%s on %s as uid %u succeeded, want %s", e->interface, e->member,
                    e->path, (unsigned) getuid(), e->error);
        child_check(sd_bus_error_has_name(&error, e->error), "%s.%s: got %s (%s), want %s",
                    e->interface, e->member, error.name, error.message, e->error);
        child_check(!e->needle || strstr(error.message, e->needle),
                    "%s.%s: message '%s' does not mention '%s'", e->interface, e->member,
                    error.message, e->needle);
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return 0;
}

static char *id_str(uint64_t id) {
        char *s;

        ck_assert(asprintf(&s, "%" PRIu64, id) > 0);
        return s;
}

START_TEST(test_nobody_cannot_manage_roots_buffer) {
        _cleanup_created_ Created cr = { .fd = -1 };
        char *ids;
        Snapshot before;
        Expect e[] = {
                { NULL, BB_BUFFER_INTERFACE, "Release", NULL, NULL, BB_ERROR_NOT_OWNER, NULL },
                { NULL, BB_BUFFER_INTERFACE, "Share", "a{sv}", NULL, BB_ERROR_NOT_OWNER, NULL },
                { NULL, BB_BUFFER_INTERFACE, "Freeze", NULL, NULL, BB_ERROR_NOT_OWNER, NULL },
                /* reading its properties is seeing it: each, and all at once */
                { NULL, "org.freedesktop.DBus.Properties", "Get", "ss", BB_PROP_NAME, BB_ERROR_NOT_OWNER, NULL },
                { NULL, "org.freedesktop.DBus.Properties", "Get", "ss", BB_PROP_PLANES, BB_ERROR_NOT_OWNER, NULL },
                { NULL, "org.freedesktop.DBus.Properties", "Get", "ss", BB_PROP_FORMAT, BB_ERROR_NOT_OWNER, NULL },
                { NULL, "org.freedesktop.DBus.Properties", "GetAll", "s", NULL, BB_ERROR_NOT_OWNER, NULL },
        };

        create_memfd(NULL, "roots", 4096, true, 0, &cr);
        ids = id_str(cr.id);
        stats_read(&before);
        for (size_t i = 0; i < ELEMENTSOF(e); i++) {
                e[i].path = cr.path;
                e[i].needle = ids;      /* the message names the buffer */
                ck_assert_msg(run_as(NOBODY_UID, nobody_expect_error, &e[i], 10000) == 0,
                              "uid 65534 %s on root's buffer was not refused with NotOwner",
                              e[i].member);
        }
        /* nothing happened to it */
        ck_assert(list_has(NULL, cr.id));
        assert_back_to(&before, "after refused calls by another uid");
        {
                int frozen = 1, persistent = 0;
                sd_bus_error error = SD_BUS_ERROR_NULL;

                ck_assert(sd_bus_get_property_trivial(test_bus(), BB_BUS_NAME, cr.path,
                                                      BB_BUFFER_INTERFACE, "Frozen", &error, 'b',
                                                      &frozen) >= 0);
                ck_assert(sd_bus_get_property_trivial(test_bus(), BB_BUS_NAME, cr.path,
                                                      BB_BUFFER_INTERFACE, "Persistent", &error,
                                                      'b', &persistent) >= 0);
                ck_assert(!frozen);
                ck_assert(persistent);
        }
        free(ids);
}
END_TEST

/* Planes and Format describe a buffer without OpenFds: reading them hands
 * out no fd and takes no hold. A memfd has one plane and no format. */
START_TEST(test_planes_and_format_without_a_hold) {
        _cleanup_created_ Created cr = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint64_t length = 0;
        uint32_t bpl = 1, offset = 1;
        Snapshot before;

        create_memfd(NULL, "described", 8192, true, 0, &cr);
        stats_read(&before);
        ck_assert_msg(sd_bus_get_property(test_bus(), BB_BUS_NAME, cr.path, BB_BUFFER_INTERFACE, BB_PROP_PLANES,
                                          &error, &reply, "a(tuu)") >= 0, "Planes: %s", error.message);
        ck_assert(sd_bus_message_enter_container(reply, 'a', "(tuu)") > 0);
        ck_assert(sd_bus_message_read(reply, "(tuu)", &length, &bpl, &offset) > 0);
        ck_assert_uint_eq(length, 8192);
        ck_assert_uint_eq(bpl, 0);
        ck_assert_uint_eq(offset, 0);
        ck_assert_int_eq(sd_bus_message_read(reply, "(tuu)", &length, &bpl, &offset), 0);    /* one plane */
        reply = sd_bus_message_unref(reply);
        ck_assert_msg(sd_bus_get_property(test_bus(), BB_BUS_NAME, cr.path, BB_BUFFER_INTERFACE, BB_PROP_FORMAT,
                                          &error, &reply, "a{sv}") >= 0, "Format: %s", error.message);
        ck_assert(sd_bus_message_enter_container(reply, 'a', "{sv}") >= 0);
        ck_assert_int_eq(sd_bus_message_at_end(reply, false), 1);                           /* empty */
        reply = sd_bus_message_unref(reply);
        /* and GetAll has them too */
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, cr.path, "org.freedesktop.DBus.Properties",
                                         "GetAll", &error, &reply, "s", BB_BUFFER_INTERFACE) >= 0,
                      "GetAll: %s", error.message);
        reply = sd_bus_message_unref(reply);
        assert_back_to(&before, "after reading Planes and Format");
}
END_TEST

/* The same refusals through the library: -EPERM and the error name. */
typedef struct LibArgs {
        const char *address;
        uint64_t id;
        const char *token;
} LibArgs;

static int nobody_lib_refused(void *userdata) {
        const LibArgs *a = userdata;
        bb_client *c = NULL;
        bb_buffer *buf = NULL;
        bb_buffer **list = NULL;
        size_t n = 0;
        char *token = NULL;
        int r;

        r = bb_client_new_address(&c, a->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        /* not ours: reading it is NotOwner (-EPERM), the list leaves it out */
        r = bb_buffer_get(c, a->id, &buf);
        child_check(r == -EPERM, "bb_buffer_get of another uid's buffer: %d (%s), want -EPERM "
                    "(NotOwner) as bufbroker.h documents", r, bb_client_error_name(c) ?: "");
        child_check(bb_client_error_name(c) && strcmp(bb_client_error_name(c), BB_ERROR_NOT_OWNER) == 0,
                    "error name %s, want " BB_ERROR_NOT_OWNER, bb_client_error_name(c) ?: "(none)");
        r = bb_client_list_buffers(c, &list, &n);
        child_check(r == 0, "list: %s", strerror(-r));
        for (size_t i = 0; i < n; i++)
                child_check(bb_buffer_id(list[i]) != a->id, "root's buffer %" PRIu64 " listed for uid %u",
                            a->id, (unsigned) getuid());
        bb_buffer_list_free(list, n);

        /* hold it through a token: now visible, but still not ours to manage */
        r = bb_buffer_open(c, a->token, &buf);
        child_check(r == 0, "open: %s", strerror(-r));
        r = bb_buffer_share(buf, 0, 0, 0, &token);
        child_check(r == -EPERM, "share by a mere holder: %d", r);
        child_check(strcmp(bb_client_error_name(c) ?: "", BB_ERROR_NOT_OWNER) == 0,
                    "error name %s", bb_client_error_name(c));
        r = bb_buffer_freeze(buf);
        child_check(r == -EPERM, "freeze by a mere holder: %d", r);
        r = bb_client_list_buffers(c, &list, &n);
        child_check(r == 0 && n == 1 && bb_buffer_id(list[0]) == a->id,
                    "a holder sees the buffer it holds (n=%zu)", n);
        bb_buffer_list_free(list, n);
        /* a holder's Release drops its own hold only */
        r = bb_buffer_release(buf);
        child_check(r == 0, "holder's release: %s", strerror(-r));
        bb_buffer_unref(buf);
        buf = NULL;
        r = bb_client_list_buffers(c, &list, &n);
        child_check(r == 0 && n == 0, "after releasing its hold uid %u still sees %zu buffers",
                    (unsigned) getuid(), n);
        bb_buffer_list_free(list, n);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_holder_is_not_owner) {
        _cleanup_created_ Created cr = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *token = NULL;
        LibArgs a;

        released_watch();
        create_memfd(NULL, "roots", 4096, false, 0, &cr);
        ck_assert(call_share(NULL, cr.path, false, (uid_t) -1, false, 0, &token, &error) >= 0);
        a = (LibArgs) { .address = H->address, .id = cr.id, .token = token };
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_lib_refused, &a, 20000), 0);
        /* root's hold still keeps it */
        ck_assert(list_has(NULL, cr.id));
        ck_assert(!released_seen(cr.id));
        free(token);
}
END_TEST

/* ---- visibility ---------------------------------------------------------- */

/* uid 65534 creates a persistent buffer through the library and reports its
 * id through a pipe (the child's memory is its own). */
static int nobody_creates_persistent(void *userdata) {
        int out_fd = *(int *) userdata;
        bb_client *c = NULL;
        bb_buffer *buf = NULL;
        uint64_t id;
        int r;

        r = bb_client_new_address(&c, H->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        r = bb_buffer_create(c, "nobodys", 4096, BB_CREATE_PERSISTENT, 0, &buf);
        child_check(r == 0, "create: %s", strerror(-r));
        id = bb_buffer_id(buf);
        child_check(write(out_fd, &id, sizeof(id)) == sizeof(id), "write: %s", strerror(errno));
        bb_buffer_unref(buf);
        bb_client_unref(c);
        return 0;
}

static int nobody_lists(void *userdata) {
        const uint64_t *ids = userdata;    /* [0] own, [1] root's */
        bb_client *c = NULL;
        bb_buffer **list = NULL;
        size_t n = 0;
        int r;

        r = bb_client_new_address(&c, H->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        r = bb_client_list_buffers(c, &list, &n);
        child_check(r == 0, "list: %s", strerror(-r));
        child_check(n == 1, "uid %u sees %zu buffers, want only its own", (unsigned) getuid(), n);
        child_check(bb_buffer_id(list[0]) == ids[0], "uid %u sees buffer %" PRIu64,
                    (unsigned) getuid(), bb_buffer_id(list[0]));
        child_check(bb_buffer_owner_uid(list[0]) == NOBODY_UID, "owner %u",
                    (unsigned) bb_buffer_owner_uid(list[0]));
        bb_buffer_list_free(list, n);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_list_visibility) {
        _cleanup_created_ Created cr = { .fd = -1 };
        _cleanup_run_result_ RunResult r = { 0 };
        uint64_t ids[2] = { 0, 0 }, other = 0;
        int pipefd[2];

        create_memfd(NULL, "roots", 4096, true, 0, &cr);
        ids[1] = cr.id;

        ck_assert(pipe2(pipefd, O_CLOEXEC) == 0);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_creates_persistent, &pipefd[1], 10000), 0);
        ck_assert(read(pipefd[0], &ids[0], sizeof(ids[0])) == sizeof(ids[0]));
        close(pipefd[0]);
        close(pipefd[1]);

        /* nobody's persistent buffer outlived its library client; nobody lists
         * it and not root's */
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_lists, ids, 10000), 0);
        /* root sees both */
        ck_assert(list_has(NULL, ids[0]));
        ck_assert(list_has(NULL, ids[1]));

        /* a second buffer of nobody's, through busctl: still only nobody's own */
        busctl(&r, NOBODY_UID, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
               "CreateMemfd", "sta{sv}", "nobodys2", "4096", "1", BB_OPT_PERSISTENT, "b", "true");
        ck_assert_run_status(&r, 0);
        {
                char path[256];

                ck_assert(sscanf(r.out, "oht \"%255[^\"]\"", path) == 1);
                other = buffer_id_from_path(path);
        }
        ck_assert(list_has(NULL, other));
}
END_TEST

/* ---- tokens ------------------------------------------------------------- */

typedef struct OpenExpect {
        const char *token;
        const char *error;      /* NULL: must succeed */
} OpenExpect;

static int nobody_open(void *userdata) {
        const OpenExpect *o = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r, fd = -1;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        r = call_open(bus, o->token, NULL, &fd, NULL, &error);
        if (o->error) {
                child_check(r < 0, "Open as uid %u succeeded, want %s", (unsigned) getuid(),
                            o->error);
                child_check(sd_bus_error_has_name(&error, o->error), "Open: %s (%s), want %s",
                            error.name, error.message, o->error);
        } else {
                child_check(r >= 0, "Open as uid %u: %s (%s)", (unsigned) getuid(), error.name,
                            error.message);
                child_check(fd >= 0, "no fd");
                close(fd);
        }
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return 0;
}

START_TEST(test_uid_bound_tokens) {
        _cleanup_created_ Created cr = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *for_nobody = NULL, *for_root = NULL;
        OpenExpect o;
        int r;

        create_memfd(NULL, "bound", 4096, false, 0, &cr);
        ck_assert(call_share(NULL, cr.path, false, NOBODY_UID, false, 0, &for_nobody, &error) >= 0);
        ck_assert(call_share(NULL, cr.path, false, 0, false, 0, &for_root, &error) >= 0);

        /* bound to 65534: root is another uid and is refused */
        r = call_open(NULL, for_nobody, NULL, NULL, NULL, &error);
        assert_bus_error(&error, r, BB_ERROR_ACCESS_DENIED, "65534", "root opens a token bound to 65534");
        sd_bus_error_free(&error);
        o = (OpenExpect) { .token = for_nobody };
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_open, &o, 10000), 0);
        /* the refusal did not use it up: still usable by its uid */
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_open, &o, 10000), 0);

        /* bound to root: nobody is refused, root may */
        o = (OpenExpect) { .token = for_root, .error = BB_ERROR_ACCESS_DENIED };
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_open, &o, 10000), 0);
        ck_assert_msg(call_open(NULL, for_root, NULL, NULL, NULL, &error) >= 0, "root: %s",
                      error.message);
        free(for_nobody);
        free(for_root);
}
END_TEST

START_TEST(test_single_use_token) {
        _cleanup_created_ Created cr = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *token = NULL;
        OpenExpect o;
        Snapshot s;

        create_memfd(NULL, "once", 4096, false, 0, &cr);
        ck_assert(call_share(NULL, cr.path, true, (uid_t) -1, true, 0, &token, &error) >= 0);
        stats_read(&s);
        ck_assert_uint_eq(s.tokens, 1);
        o = (OpenExpect) { .token = token };
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_open, &o, 10000), 0);
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), 0);
        o.error = BB_ERROR_NO_SUCH_TOKEN;
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_open, &o, 10000), 0);
        {
                int r = call_open(NULL, token, NULL, NULL, NULL, &error);

                assert_bus_error(&error, r, BB_ERROR_NO_SUCH_TOKEN, NULL, "second use by root");
        }
        free(token);
        sd_bus_error_free(&error);
}
END_TEST

/* ---- root may manage other uids' buffers --------------------------------- */

START_TEST(test_root_manages_nobodys_buffer) {
        _cleanup_run_result_ RunResult r = { 0 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char path[256], *token = NULL;
        uint64_t id;

        released_watch();
        busctl(&r, NOBODY_UID, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
               "CreateMemfd", "sta{sv}", "nobodys", "4096", "1", BB_OPT_PERSISTENT, "b", "true");
        ck_assert_run_status(&r, 0);
        ck_assert(sscanf(r.out, "oht \"%255[^\"]\"", path) == 1);
        id = buffer_id_from_path(path);
        {
                uint32_t owner = 0;

                ck_assert(sd_bus_get_property_trivial(test_bus(), BB_BUS_NAME, path,
                                                      BB_BUFFER_INTERFACE, "OwnerUid", &error,
                                                      'u', &owner) >= 0);
                ck_assert_uint_eq(owner, NOBODY_UID);
        }
        ck_assert_msg(call_share(NULL, path, true, (uid_t) -1, false, 0, &token, &error) >= 0,
                      "root Share of nobody's buffer: %s", error.message);
        ck_assert_msg(call_freeze(NULL, path, &error) >= 0, "root Freeze: %s", error.message);
        /* root's Release ends persistence although root holds nothing */
        ck_assert_msg(call_release(NULL, path, &error) >= 0, "root Release: %s", error.message);
        ck_assert(released_wait(id, 5000));
        free(token);
        sd_bus_error_free(&error);
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_nobody_cannot_manage_roots_buffer);
        tcase_add_test(tc, test_holder_is_not_owner);
        tcase_add_test(tc, test_planes_and_format_without_a_hold);
        tcase_add_test(tc, test_list_visibility);
        tcase_add_test(tc, test_uid_bound_tokens);
        tcase_add_test(tc, test_single_use_token);
        tcase_add_test(tc, test_root_manages_nobodys_buffer);
}

int main(void) {
        Suite *s = suite_create("ownership");

        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
