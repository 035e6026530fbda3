/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The private buses themselves and the project's policy file, without
 * bufbrokerd: each bus answers; uids 0 and 65534 may connect; only root may
 * own org.bufbroker.Broker1; everyone may call it; nobody may send its owner
 * a file descriptor, by well-known or unique name. A stand-in service (a
 * forked root process) owns the name so the policy is what is tested.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define ACCESS_DENIED "org.freedesktop.DBus.Error.AccessDenied"

/* ---- a stand-in for bufbrokerd that owns the name ------------------------ */

static int method_plain(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(m, "s", "pong");
}

static int method_take_fd(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int fd;
        int r = sd_bus_message_read(m, "h", &fd);

        if (r < 0)
                return r;
        /* Reaching here means the bus let an fd through: say so loudly. */
        return sd_bus_reply_method_return(m, "s", "fd-received");
}

static const sd_bus_vtable standin_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Plain", "", "s", method_plain, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("TakeFd", "h", "s", method_take_fd, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int standin_main(void *userdata) {
        sd_bus *bus = NULL;
        int r;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        r = sd_bus_add_object_vtable(bus, NULL, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                     standin_vtable, NULL);
        child_check(r >= 0, "vtable: %s", strerror(-r));
        r = sd_bus_add_object_vtable(bus, NULL, BB_MANAGER_PATH, BB_BUFFER_INTERFACE,
                                     standin_vtable, NULL);
        child_check(r >= 0, "vtable: %s", strerror(-r));
        r = sd_bus_request_name(bus, BB_BUS_NAME, 0);
        child_check(r >= 0, "RequestName as root: %s", strerror(-r));
        for (;;) {
                r = sd_bus_process(bus, NULL);
                child_check(r >= 0, "process: %s", strerror(-r));
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, UINT64_MAX);
                child_check(r >= 0 || r == -EINTR, "wait: %s", strerror(-r));
        }
}

static pid_t standin_pid = -1;

static void start_standin(void) {
        standin_pid = fork_as(AS_ROOT, standin_main, NULL);
        ck_assert_msg(wait_name_owner(test_bus(), BB_BUS_NAME, 10000),
                      "the stand-in service (root) could not own %s", BB_BUS_NAME);
}

static void stop_standin(void) {
        if (standin_pid > 0) {
                kill(standin_pid, SIGKILL);
                wait_child(standin_pid, 5000);
                standin_pid = -1;
        }
}

static char *standin_unique_name(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *owner;
        char *s;

        ck_assert(sd_bus_call_method(test_bus(), "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "GetNameOwner", &error, &reply, "s",
                                     BB_BUS_NAME) >= 0);
        ck_assert(sd_bus_message_read(reply, "s", &owner) > 0);
        s = strdup(owner);
        sd_bus_message_unref(reply);
        return s;
}

/* ---- the tests --------------------------------------------------------- */

/* The bus answers ListNames and lists itself. */
START_TEST(test_bus_answers) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char **names = NULL;
        bool found = false;

        ck_assert(sd_bus_call_method(test_bus(), "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "ListNames", &error, &reply, "") >= 0);
        ck_assert(sd_bus_message_read_strv(reply, &names) >= 0);
        for (char **n = names; n && *n; n++)
                found = found || strcmp(*n, "org.freedesktop.DBus") == 0;
        ck_assert_msg(found, "ListNames lacks org.freedesktop.DBus");
        for (char **n = names; n && *n; n++)
                free(*n);
        free(names);
        sd_bus_message_unref(reply);
        /* and the bus passes fds to us */
        ck_assert_int_gt(sd_bus_can_send(test_bus(), 'h'), 0);
}
END_TEST

static void read_comm(pid_t pid, char *comm, size_t n) {
        char path[64];
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
        f = fopen(path, "re");
        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        ck_assert(fgets(comm, (int) n, f));
        fclose(f);
        comm[strcspn(comm, "\n")] = 0;
}

/* The bus is the implementation this TCase claims to test: no silent
 * fallback from one to the other. */
START_TEST(test_bus_is_the_claimed_kind) {
        char comm[64] = "";

        read_comm(H->bus_pid, comm, sizeof(comm));
        if (H->kind == BUS_DBUS_DAEMON)
                ck_assert_str_eq(comm, "dbus-daemon");
        else {
                char path[64], children[64] = "";
                FILE *f;

                ck_assert_str_eq(comm, "dbus-broker-lau");     /* comm is cut at 15 */
                snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int) H->bus_pid,
                         (int) H->bus_pid);
                f = fopen(path, "re");
                ck_assert_ptr_nonnull(f);
                ck_assert(fgets(children, sizeof(children), f));
                fclose(f);
                read_comm((pid_t) atoi(children), comm, sizeof(comm));
                ck_assert_str_eq(comm, "dbus-broker");
        }
}
END_TEST

static int connect_and_list(void *userdata) {
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *unique;
        uid_t uid;
        int r;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect as uid %u: %s", (unsigned) getuid(), strerror(-r));
        r = sd_bus_get_unique_name(bus, &unique);
        child_check(r >= 0, "unique name: %s", strerror(-r));
        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetConnectionUnixUser", &error, &reply,
                               "s", unique);
        child_check(r >= 0, "GetConnectionUnixUser: %s", error.message);
        r = sd_bus_message_read(reply, "u", &uid);
        child_check(r > 0 && uid == NOBODY_UID, "bus says uid %u", (unsigned) uid);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* uid 65534 can connect, and the bus sees it as 65534. */
START_TEST(test_nobody_connects) {
        ck_assert_int_eq(run_as(NOBODY_UID, connect_and_list, NULL, 10000), 0);
}
END_TEST

static int nobody_request_name(void *userdata) {
        sd_bus *bus = NULL;
        int r;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        r = sd_bus_request_name(bus, BB_BUS_NAME, 0);
        child_check(r == -EACCES, "RequestName(%s) as nobody returned %d (%s), want -EACCES",
                    BB_BUS_NAME, r, strerror(-r));
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* Only root (and the service user) may own the name; nobody may not. The
 * policy file also names a user "bufbroker" that need not exist: both buses
 * must still load it and must not apply that policy to everyone. */
START_TEST(test_policy_own) {
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_request_name, NULL, 10000), 0);
        start_standin();
        stop_standin();
}
END_TEST

typedef struct CallArgs {
        const char *destination;
        const char *interface;
        bool with_fd;
        const char *want_error;         /* NULL: must succeed */
} CallArgs;

static int call_standin(void *userdata) {
        const CallArgs *a = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        int r, fd = -1;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        if (a->with_fd) {
                fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                child_check(fd >= 0, "open: %s", strerror(errno));
                r = sd_bus_call_method(bus, a->destination, BB_MANAGER_PATH, a->interface,
                                       "TakeFd", &error, &reply, "h", fd);
        } else
                r = sd_bus_call_method(bus, a->destination, BB_MANAGER_PATH, a->interface, "Plain",
                                       &error, &reply, "");
        if (a->want_error) {
                child_check(r < 0, "uid %u: %s.%s to %s succeeded, want %s", (unsigned) getuid(),
                            a->interface, a->with_fd ? "TakeFd" : "Plain", a->destination,
                            a->want_error);
                child_check(sd_bus_error_has_name(&error, a->want_error),
                            "uid %u: got %s (%s), want %s", (unsigned) getuid(), error.name,
                            error.message, a->want_error);
        } else {
                const char *s;

                child_check(r >= 0, "uid %u: %s.%s to %s failed: %s: %s", (unsigned) getuid(),
                            a->interface, a->with_fd ? "TakeFd" : "Plain", a->destination,
                            error.name, error.message);
                child_check(sd_bus_message_read(reply, "s", &s) > 0 && strcmp(s, "pong") == 0,
                            "unexpected reply");
        }
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* Everyone may call the daemon's interfaces without fds. */
START_TEST(test_policy_call_allowed) {
        static const char *const ifaces[] = { BB_MANAGER_INTERFACE, BB_BUFFER_INTERFACE };

        start_standin();
        for (size_t i = 0; i < ELEMENTSOF(ifaces); i++) {
                CallArgs a = { .destination = BB_BUS_NAME, .interface = ifaces[i] };

                ck_assert_int_eq(run_as(AS_ROOT, call_standin, &a, 10000), 0);
                ck_assert_int_eq(run_as(NOBODY_UID, call_standin, &a, 10000), 0);
        }
        stop_standin();
}
END_TEST

/* An interface the policy does not open stays closed (the default deny of
 * method calls is in force: the allow rules are not an open door). */
START_TEST(test_policy_other_interface_denied) {
        CallArgs a = { .destination = BB_BUS_NAME, .interface = "org.example.NotOurs",
                       .want_error = ACCESS_DENIED };

        start_standin();
        ck_assert_int_eq(run_as(NOBODY_UID, call_standin, &a, 10000), 0);
        stop_standin();
}
END_TEST

/* No uid may send the daemon an fd, on any of its interfaces, whether the
 * message names the well-known or the unique name. */
START_TEST(test_policy_fd_refused) {
        static const char *const ifaces[] = { BB_MANAGER_INTERFACE, BB_BUFFER_INTERFACE,
                                              "org.freedesktop.DBus.Properties",
                                              "org.freedesktop.DBus.Peer" };
        static const uid_t uids[] = { AS_ROOT, NOBODY_UID };
        char *unique;

        start_standin();
        unique = standin_unique_name();
        for (size_t i = 0; i < ELEMENTSOF(ifaces); i++)
                for (size_t u = 0; u < ELEMENTSOF(uids); u++) {
                        CallArgs a = { .destination = BB_BUS_NAME, .interface = ifaces[i],
                                       .with_fd = true, .want_error = ACCESS_DENIED };

                        ck_assert_msg(run_as(uids[u], call_standin, &a, 10000) == 0,
                                      "fd to %s on %s as uid %u was not refused", BB_BUS_NAME,
                                      ifaces[i], (unsigned) uids[u]);
                        a.destination = unique;
                        ck_assert_msg(run_as(uids[u], call_standin, &a, 10000) == 0,
                                      "fd to %s (unique name) on %s as uid %u was not refused",
                                      unique, ifaces[i], (unsigned) uids[u]);
                }
        free(unique);
        stop_standin();
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_bus_answers);
        tcase_add_test(tc, test_bus_is_the_claimed_kind);
        tcase_add_test(tc, test_nobody_connects);
        tcase_add_test(tc, test_policy_own);
        tcase_add_test(tc, test_policy_call_allowed);
        tcase_add_test(tc, test_policy_other_interface_denied);
        tcase_add_test(tc, test_policy_fd_refused);
}

int main(void) {
        Suite *s = suite_create("bus and policy");

        harness_with_daemon = false;
        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
