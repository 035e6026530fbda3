/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerd --remove-stale-objects: what a stop leaves, the next start
 * removes. With the fd store the daemon keeps its posix names and SysV
 * segments when it exits, for the restart; a stop (systemctl stop) drops
 * the store, and the objects are nobody's. The next start with the option
 * removes each that no restored buffer names, and nothing else: not the
 * objects of restored buffers, not another uid's, not a name of another
 * form.
 *
 * The daemon runs as "bin", a uid no other test's daemon uses (they run as
 * root or "daemon"): the sweep takes whatever its uid made, and the tests
 * run in parallel.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static const char *const with_sweep[] = { "--remove-stale-objects", NULL };

typedef struct Object {
        char path[128];                 /* the buffer's */
        char shm_name[64];              /* posix: "/bufbroker-..." */
        int shmid;                      /* sysv */
} Object;

/* A persistent buffer of @kind, owned by root, nobody holding it. */
static Object create_persistent(const char *kind) {
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Object o = { .shmid = -1 };
        const char *path, *key;
        int r;

        r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", &error, &reply,
                               "ssta{sv}", kind, "stale", UINT64_C(8192), 1, BB_OPT_PERSISTENT, "b", 1);
        ck_assert_msg(r >= 0, "Create(%s): %s", kind, error.message);
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        snprintf(o.path, sizeof(o.path), "%s", path);
        ck_assert_int_ge(sd_bus_message_skip(reply, "ah"), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "{sv}"), 0);
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                ck_assert_int_ge(sd_bus_message_read(reply, "s", &key), 0);
                if (strcmp(key, BB_INFO_SHM_NAME) == 0) {
                        const char *name;

                        ck_assert_int_ge(sd_bus_message_read(reply, "v", "s", &name), 0);
                        snprintf(o.shm_name, sizeof(o.shm_name), "%s", name);
                } else if (strcmp(key, BB_INFO_SHMID) == 0)
                        ck_assert_int_ge(sd_bus_message_read(reply, "v", "i", &o.shmid), 0);
                else
                        ck_assert_int_ge(sd_bus_message_skip(reply, "v"), 0);
                ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);
        }
        ck_assert_int_ge(r, 0);
        sd_bus_message_unref(reply);
        ck_assert_msg(o.shm_name[0] || o.shmid >= 0, "Create(%s) named no object", kind);
        return o;
}

static bool object_exists(const Object *o) {
        struct shmid_ds ds;
        char path[128];
        struct stat st;

        if (o->shmid >= 0)
                return shmctl(o->shmid, IPC_STAT, &ds) == 0;
        snprintf(path, sizeof(path), "/dev/shm%s", o->shm_name);
        return stat(path, &st) == 0;
}

static void release(const Object *o) {
        sd_bus_error error = SD_BUS_ERROR_NULL;

        ck_assert_msg(call_release(NULL, o->path, &error) >= 0, "Release %s: %s", o->path, error.message);
}

START_TEST(test_stop_leaves_start_removes) {
        char foreign_name[] = "/dev/shm/bufbroker-0123456789abcdef0123456789abcdef", other_form[64];
        Object kept_posix, kept_sysv, left_posix, left_sysv, root_segment = { .shmid = -1 };
        FdStore store;
        int fd;

        /* Not the daemon's: a name of its form that root made, a name of
         * another form that its uid made, a segment root made. */
        (void) unlink(foreign_name);    /* a failed run's */
        fd = open(foreign_name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
        ck_assert_msg(fd >= 0, "%s: %s", foreign_name, strerror(errno));
        close(fd);
        snprintf(other_form, sizeof(other_form), "/dev/shm/bb-test-stale-%d", (int) getpid());
        fd = open(other_form, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fchown(fd, system_uid("bin"), (gid_t) -1), 0);
        close(fd);
        root_segment.shmid = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        ck_assert_int_ge(root_segment.shmid, 0);

        /* A daemon with a store, its buffers kept for a restart. */
        fd_store_start(&store);
        fd_store_stop_daemon(&store, SIGTERM);
        fd_store_restart_daemon(&store, NULL);
        kept_posix = create_persistent(BB_KIND_POSIX);
        kept_sysv = create_persistent(BB_KIND_SYSV);
        left_posix = create_persistent(BB_KIND_POSIX);
        left_sysv = create_persistent(BB_KIND_SYSV);

        /* A restart with the sweep: every object is a restored buffer's. */
        fd_store_stop_daemon(&store, SIGTERM);
        fd_store_restart_daemon(&store, with_sweep);
        ck_assert(list_has(NULL, buffer_id_from_path(left_posix.path)));
        ck_assert(object_exists(&kept_posix) && object_exists(&kept_sysv));
        ck_assert(object_exists(&left_posix) && object_exists(&left_sysv));

        /* Two released, then a stop that drops the store whole, as
         * systemctl stop does: the other two objects are left behind. */
        release(&kept_posix);
        release(&kept_sysv);
        ck_assert(!object_exists(&kept_posix) && !object_exists(&kept_sysv));
        fd_store_stop_daemon(&store, SIGTERM);
        fd_store_done(&store);
        ck_assert_msg(object_exists(&left_posix), "the stop took %s: nothing left to test", left_posix.shm_name);
        ck_assert_msg(object_exists(&left_sysv), "the stop took segment %d", left_sysv.shmid);

        /* Without the option, a start leaves them. */
        harness_restart_daemon(NULL);
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), 0);
        ck_assert(object_exists(&left_posix) && object_exists(&left_sysv));

        /* With it, they go; what is not the daemon's stays. */
        ck_assert_int_eq(kill(H->daemon_pid, SIGTERM), 0);
        ck_assert_int_eq(wait_daemon_exit(scaled_ms(10000)), 0);
        harness_restart_daemon(with_sweep);
        ck_assert_msg(!object_exists(&left_posix), "%s stays", left_posix.shm_name);
        ck_assert_msg(!object_exists(&left_sysv), "segment %d stays", left_sysv.shmid);
        ck_assert_msg(access(foreign_name, F_OK) == 0, "root's %s was removed", foreign_name);
        ck_assert_msg(access(other_form, F_OK) == 0, "%s (not a buffer's name) was removed", other_form);
        ck_assert_msg(object_exists(&root_segment), "root's segment %d was removed", root_segment.shmid);

        ck_assert_int_eq(unlink(foreign_name), 0);
        ck_assert_int_eq(unlink(other_form), 0);
        ck_assert_int_eq(shmctl(root_segment.shmid, IPC_RMID, NULL), 0);
}
END_TEST

static void setup_daemon(void) {
        harness_daemon_user = "bin";
        harness_start(BUS_DBUS_DAEMON, true, NULL);
}
static void setup_broker(void) {
        harness_daemon_user = "bin";
        harness_start(BUS_DBUS_BROKER, true, NULL);
}

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_stop_leaves_start_removes);
}

int main(void) {
        Suite *s = suite_create("stale objects");

        harness_add_tcase(s, "dbus-daemon", setup_daemon, add_tests);
        harness_add_tcase(s, "dbus-broker", setup_broker, add_tests);
        return harness_main(s);
}
