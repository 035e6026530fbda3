/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * File buffers (Create kind "file"): unnamed files in the daemon's
 * --file-dir, sparse or prefaulted, handed out as fds like memfds. The
 * daemon runs as an unprivileged user, as under systemd.
 *
 * The directory is a 16 MiB tmpfs of the daemon's uid, mounted in a mount
 * namespace of the test's own (the daemon, started after, shares it; the
 * machine never sees it): so the space a buffer takes and gives back is
 * exact (statfs), and "the filesystem is full" can be made. One case puts
 * its buffer on the disk filesystem of /tmp instead: a sparse buffer twice
 * the size of RAM.
 *
 * Cases: create, map by fd in another process, share with uid 65534 read-
 * write and read-only, contents match, release gives the space back; the
 * same through busctl; a killed holder's buffer goes; the fd (a mapping) is
 * the lease; larger than RAM; quotas count file buffers; prefault on a full
 * filesystem is NoSpace; no directory (or an unfit one) is NotSupported;
 * $STATE_DIRECTORY/files is the default; hostile options; a daemon killed
 * and restarted from the fd store keeps the buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "harness.h"

#define M (UINT64_C(1) << 20)
#define FS_SIZE (16 * M)                /* the tmpfs of the file directory */
#define QUOTA (48 * M)                  /* --max-bytes-per-uid */

#define DAEMON_USER "daemon"

static char file_dir[128];              /* the tmpfs, in our mount namespace */
static char file_dir_arg[160];          /* --file-dir=file_dir */
static char log_path[128];              /* the daemon's stderr */
static uid_t daemon_uid;
static gid_t daemon_gid;
static uint64_t empty_free;             /* free bytes of the empty tmpfs */
static long page;

static const char *const *default_args(void) {
        static const char *args[4];

        args[0] = file_dir_arg;
        args[1] = "--max-bytes-per-uid=48M";
        args[2] = NULL;
        return args;
}

/* ------------------------------------------------------- the file dir --- */

static uint64_t free_bytes(const char *dir) {
        struct statfs s;

        ck_assert_msg(statfs(dir, &s) == 0, "statfs %s: %s", dir, strerror(errno));
        return (uint64_t) s.f_bfree * (uint64_t) s.f_bsize;
}

/* Poll (up to 3 s): the space comes back when the last description of a
 * file goes, which may be a moment after BufferReleased (a reply being
 * freed, a client exiting). */
static void assert_space_back(const char *context) {
        uint64_t deadline = now_usec() + (uint64_t) scaled_ms(3000) * 1000u, now_free;

        while ((now_free = free_bytes(file_dir)) != empty_free && now_usec() < deadline)
                msleep(10);
        ck_assert_msg(now_free == empty_free, "%s: %" PRIu64 " bytes of the file directory still taken", context,
                      empty_free - now_free);
}

static void make_dir_of_daemon(const char *path) {
        ck_assert_msg(mkdir(path, 0700) == 0, "mkdir %s: %s", path, strerror(errno));
        ck_assert_int_eq(chown(path, daemon_uid, daemon_gid), 0);
}

static void stop_daemon_now(void) {
        ck_assert_int_eq(kill(H->daemon_pid, SIGTERM), 0);
        while (daemon_alive())
                msleep(5);
        ck_assert_int_eq(H->daemon_status, 0);
        H->daemon_pid = -1;             /* stopped, as the teardown would */
}

static void restart_with(const char *const *args) {
        stop_daemon_now();
        harness_restart_daemon(args);
}

/* The bus as the harness makes it; then our own mount namespace with the
 * tmpfs, and the daemon in it. */
static void setup(BusKind kind) {
        char opts[128];

        harness_daemon_user = DAEMON_USER;
        daemon_uid = system_uid(DAEMON_USER);
        daemon_gid = getpwnam(DAEMON_USER)->pw_gid;
        page = sysconf(_SC_PAGESIZE);
        unsetenv("STATE_DIRECTORY");

        harness_daemon_spawn = (PbusSpawn) {};
        harness_start(kind, false, NULL);

        snprintf(log_path, sizeof(log_path), "%s/daemon.log", H->dir);
        harness_daemon_spawn = (PbusSpawn) { .log_path = log_path };

        ck_assert_msg(unshare(CLONE_NEWNS) == 0, "unshare: %s", strerror(errno));
        ck_assert_int_eq(mount("none", "/", "none", MS_REC | MS_SLAVE, NULL), 0);
        snprintf(file_dir, sizeof(file_dir), "%s/files", H->dir);
        make_dir_of_daemon(file_dir);
        snprintf(opts, sizeof(opts), "size=%" PRIu64 ",mode=0700,uid=%u,gid=%u", FS_SIZE, (unsigned) daemon_uid,
                 (unsigned) daemon_gid);
        ck_assert_msg(mount("tmpfs", file_dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) == 0, "mount tmpfs: %s",
                      strerror(errno));
        empty_free = free_bytes(file_dir);
        snprintf(file_dir_arg, sizeof(file_dir_arg), "--file-dir=%s", file_dir);

        harness_restart_daemon(default_args());
}

static void setup_dbus_daemon(void) {
        setup(BUS_DBUS_DAEMON);
}

static void setup_dbus_broker(void) {
        setup(BUS_DBUS_BROKER);
}

static void teardown(void) {
        if (file_dir[0] && H) {
                /* Emptied by the daemon: every file it made had no name. */
                (void) umount2(file_dir, MNT_DETACH);
                file_dir[0] = 0;
        }
        harness_stop();
}

/* ------------------------------------------------------------- calls --- */

typedef struct FileOptions {
        bool persistent, prefault;
} FileOptions;

/* Create("file", name, size, options) on @bus (H->bus if NULL). The reply
 * must have one fd and info of kind "file". */
static int create_file_with(sd_bus *bus, const char *name, uint64_t size, FileOptions o, Created *ret,
                            sd_bus_error *error) {
        sd_bus_message *m = NULL, *reply = NULL;
        const char *path, *key, *kind = NULL;
        uint64_t info_size = 0;
        unsigned n_fds = 0;
        int fd = -1, r;

        bus = bus ?: H->bus;
        ck_assert_int_ge(sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, BB_MANAGER_PATH,
                                                        BB_MANAGER_INTERFACE, "Create"), 0);
        r = sd_bus_message_append(m, "sst", BB_KIND_FILE, name, size);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && o.persistent)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_PERSISTENT, "b", true);
        if (r >= 0 && o.prefault)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_PREFAULT, "b", true);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        ck_assert_int_ge(r, 0);
        r = sd_bus_call(bus, m, 0, error, &reply);
        sd_bus_message_unref(m);
        if (r < 0)
                return r;

        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "h"), 0);
        while ((r = sd_bus_message_read(reply, "h", &fd)) > 0)
                n_fds++;
        ck_assert_int_ge(r, 0);
        ck_assert_uint_eq(n_fds, 1);
        ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);
        ck_assert_int_ge(sd_bus_message_rewind(reply, true), 0);
        ck_assert_int_ge(sd_bus_message_skip(reply, "o"), 0);
        ck_assert_int_ge(sd_bus_message_read(reply, "ah", 1, &fd), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "{sv}"), 0);
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                ck_assert_int_ge(sd_bus_message_read(reply, "s", &key), 0);
                if (strcmp(key, BB_INFO_KIND) == 0)
                        r = sd_bus_message_read(reply, "v", "s", &kind);
                else if (strcmp(key, BB_INFO_SIZE) == 0)
                        r = sd_bus_message_read(reply, "v", "t", &info_size);
                else
                        r = sd_bus_message_skip(reply, "v");
                ck_assert_int_ge(r, 0);
                ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);
        }
        ck_assert_int_ge(r, 0);
        ck_assert_msg(kind && strcmp(kind, BB_KIND_FILE) == 0, "info kind %s", kind ? kind : "(none)");

        *ret = (Created) { .fd = -1, .size = info_size };
        ret->path = strdup(path);
        ret->id = buffer_id_from_path(path);
        ret->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        ck_assert_int_ge(ret->fd, 0);
        sd_bus_message_unref(reply);
        return 0;
}

static Created create_file(const char *name, uint64_t size, FileOptions o) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Created c = { .fd = -1 };
        int r = create_file_with(NULL, name, size, o, &c, &error);

        ck_assert_msg(r >= 0, "Create(file, %s, %" PRIu64 "): %s: %s", name, size, error.name, error.message);
        sd_bus_error_free(&error);
        return c;
}

static uint64_t allocated_bytes(const char *path) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t v = UINT64_MAX;
        int r = sd_bus_get_property_trivial(H->bus, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, BB_PROP_ALLOCATED_BYTES, &error,
                                            't', &v);

        ck_assert_msg(r >= 0, "AllocatedBytes: %s", error.message);
        return v;
}

static void release_and_wait(Created *c) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t id = c->id;

        ck_assert_msg(call_release(NULL, c->path, &error) >= 0, "Release: %s", error.message);
        created_done(c);
        ck_assert_msg(released_wait(id, scaled_ms(5000)), "no BufferReleased for %" PRIu64, id);
}

/* ------------------------------------------------------------- cases --- */

/* By fd, in another process of another uid: the same file. Reopening it
 * through /proc/self/fd is for the daemon's uid only (mode 0600). */
static int nobody_maps_by_fd(void *userdata) {
        int fd = *(int *) userdata, rw;
        char path[64], *p;

        p = mmap(NULL, (size_t) page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        child_check(p != MAP_FAILED, "mmap: %s", strerror(errno));
        child_check(memcmp(p, "file", 4) == 0, "not the creator's data");
        p[4] = 'F';
        munmap(p, (size_t) page);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        rw = open(path, O_RDWR | O_CLOEXEC);
        child_check(rw < 0 && errno == EACCES, "reopened by path: %s", rw >= 0 ? "yes" : strerror(errno));
        return 0;
}

typedef struct OpenArgs {
        const char *token;
        bool read_only;
} OpenArgs;

static int nobody_opens(void *userdata) {
        const OpenArgs *a = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        bool read_only = false;
        char *path = NULL, procpath[64], *p;
        int fd = -1, r, rw;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        r = call_open(bus, a->token, &path, &fd, &read_only, &error);
        child_check(r >= 0, "Open: %s", error.message);
        child_check(read_only == a->read_only, "read-only %d", read_only);
        child_check((fcntl(fd, F_GETFL) & O_ACCMODE) == (a->read_only ? O_RDONLY : O_RDWR), "access mode");
        p = mmap(NULL, (size_t) page, PROT_READ, MAP_SHARED, fd, 0);
        child_check(p != MAP_FAILED, "mmap: %s", strerror(errno));
        child_check(memcmp(p, "fileF", 5) == 0, "not the creator's data: %.5s", p);
        munmap(p, (size_t) page);
        if (a->read_only) {
                p = mmap(NULL, (size_t) page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                child_check(p == MAP_FAILED && errno == EACCES, "mapped writable: %s", strerror(errno));
                child_check(pwrite(fd, "x", 1, 0) < 0 && errno == EBADF, "written: %s", strerror(errno));
                child_check(ftruncate(fd, 0) < 0, "truncated");
                child_check(fallocate(fd, 0, 0, page) < 0 && errno == EBADF, "fallocate: %s", strerror(errno));
        } else
                child_check(pwrite(fd, "N", 1, 5) == 1, "write: %s", strerror(errno));
        snprintf(procpath, sizeof(procpath), "/proc/self/fd/%d", fd);
        rw = open(procpath, O_RDWR | O_CLOEXEC);
        child_check(rw < 0 && errno == EACCES, "reopened writable: %s", rw >= 0 ? "yes" : strerror(errno));
        close(fd);
        free(path);
        sd_bus_flush_close_unref(bus);
        return 0;
}

START_TEST(test_create_map_share_release) {
        _cleanup_created_ Created c = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *rw_token = NULL, *ro_token = NULL, buf[8] = "";
        struct stat st;
        Snapshot base;
        char *p;

        baseline_after_warmup(&base);
        released_watch();
        c = create_file("file", M + 1, (FileOptions) {});
        ck_assert_uint_eq(c.size, M + (uint64_t) page);
        ck_assert_int_eq(fstat(c.fd, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_uint_eq((uint64_t) st.st_size, c.size);
        ck_assert_int_eq(st.st_nlink, 0);
        ck_assert_int_eq(st.st_uid, daemon_uid);
        ck_assert_int_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(fcntl(c.fd, F_GETFL) & O_ACCMODE, O_RDWR);
        /* Sparse: nothing taken yet. */
        ck_assert_uint_eq(allocated_bytes(c.path), 0);
        ck_assert_uint_eq(free_bytes(file_dir), empty_free);
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + c.size);

        p = mmap(NULL, c.size, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd, 0);
        ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
        memcpy(p, "file", 4);
        ck_assert_uint_eq(allocated_bytes(c.path), (uint64_t) page);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_maps_by_fd, &c.fd, scaled_ms(10000)), 0);
        ck_assert_int_eq(p[4], 'F');

        ck_assert_msg(call_share(NULL, c.path, true, NOBODY_UID, false, 0, &ro_token, &error) >= 0, "Share: %s",
                      error.message);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_opens, &(OpenArgs) { ro_token, true }, scaled_ms(10000)), 0);
        ck_assert_msg(call_share(NULL, c.path, false, NOBODY_UID, false, 0, &rw_token, &error) >= 0, "Share: %s",
                      error.message);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_opens, &(OpenArgs) { rw_token, false }, scaled_ms(10000)), 0);
        ck_assert_int_eq(pread(c.fd, buf, 6, 0), 6);
        ck_assert_int_eq(memcmp(buf, "fileFN", 6), 0);
        ck_assert_int_eq(munmap(p, c.size), 0);
        free(ro_token);
        free(rw_token);

        ck_assert_uint_lt(free_bytes(file_dir), empty_free);
        release_and_wait(&c);
        assert_space_back("released");
        assert_back_to(&base, "file buffer released");
}
END_TEST

/* busctl as uid 65534: Create with prefault, persistent; its info says
 * "file"; AllocatedBytes is all of it; Release gives the space back. */
START_TEST(test_busctl) {
        _cleanup_run_result_ RunResult cr = {}, rel = {};
        char path[128];
        Snapshot base;

        baseline_after_warmup(&base);
        busctl(&cr, NOBODY_UID, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", "ssta{sv}",
               "file", "by-busctl", "65536", "2", BB_OPT_PERSISTENT, "b", "true", BB_OPT_PREFAULT, "b", "true");
        ck_assert_run_status(&cr, 0);
        ck_assert_msg(sscanf(cr.out, "oaha{sv} \"%127[^\"]\" 1 ", path) == 1, "reply: %s", cr.out);
        ck_assert_msg(strstr(cr.out, "\"" BB_INFO_KIND "\" s \"file\""), "reply: %s", cr.out);
        ck_assert_uint_eq(allocated_bytes(path), 65536);
        ck_assert_uint_eq(free_bytes(file_dir), empty_free - 65536);
        busctl(&rel, NOBODY_UID, "call", BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release");
        ck_assert_run_status(&rel, 0);
        assert_space_back("released by busctl");
        assert_back_to(&base, "busctl");
}
END_TEST

/* A holder killed: its buffer goes with its connection, and the space
 * with its last fd. */
static int nobody_creates_and_waits(void *userdata) {
        int report = *(int *) userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        Created c;
        int r;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        r = create_file_with(bus, "killed", 2 * M, (FileOptions) { .prefault = true }, &c, &error);
        child_check(r >= 0, "Create: %s", error.message);
        child_check(write(report, &c.id, sizeof(c.id)) == sizeof(c.id), "report");
        for (;;)
                pause();
}

START_TEST(test_holder_killed) {
        Snapshot base;
        uint64_t id = 0;
        int pipefd[2];
        pid_t pid;

        baseline_after_warmup(&base);
        released_watch();
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork_as(NOBODY_UID, nobody_creates_and_waits, &pipefd[1]);
        close(pipefd[1]);
        ck_assert_int_eq(read(pipefd[0], &id, sizeof(id)), (ssize_t) sizeof(id));
        close(pipefd[0]);
        ck_assert_uint_le(free_bytes(file_dir), empty_free - 2 * M);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(wait_child(pid, scaled_ms(5000)), 128 + SIGKILL);
        ck_assert_msg(released_wait(id, scaled_ms(5000)), "not released when its holder died");
        assert_space_back("holder killed");
        assert_back_to(&base, "holder killed");
}
END_TEST

/* The fd is the lease, as for memfds: the creator's connection gone, a
 * mapping keeps the buffer; unmapped, it goes. */
START_TEST(test_mapping_is_the_lease) {
        sd_bus *other = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Snapshot base;
        Created c;
        void *p;

        baseline_after_warmup(&base);
        released_watch();
        ck_assert_int_ge(bus_connect(&other), 0);
        ck_assert_msg(create_file_with(other, "lease", M, (FileOptions) {}, &c, &error) >= 0, "Create: %s",
                      error.message);
        p = mmap(NULL, c.size, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd, 0);
        ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
        c.fd = safe_close(c.fd);
        sd_bus_flush_close_unref(other);
        msleep((unsigned) scaled_ms(300));
        ck_assert_msg(!released_seen(c.id), "released while mapped");
        ck_assert(list_has(NULL, c.id));
        ck_assert_int_eq(munmap(p, c.size), 0);
        ck_assert_msg(released_wait(c.id, scaled_ms(5000)), "not released once unmapped");
        ck_assert_str_eq(released_reason(c.id), BB_REASON_LEASE);
        created_done(&c);
        assert_space_back("lease");
        assert_back_to(&base, "lease");
}
END_TEST

/* Twice the machine's RAM, sparse, on the disk filesystem of /tmp: the
 * limits decide, not the memory. Only its size: nothing is written. And
 * leases on that filesystem. */
START_TEST(test_larger_than_ram) {
        char disk[160], arg_dir[200], arg_size[64], arg_uid[64], arg_all[64];
        int64_t mem_kib = meminfo_value("MemTotal");
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *other = NULL;
        uint64_t size;
        struct stat st;
        Created c;
        void *p;

        ck_assert_int_gt(mem_kib, 0);
        size = 2 * (uint64_t) mem_kib * 1024;
        snprintf(disk, sizeof(disk), "%s/disk", H->dir);
        make_dir_of_daemon(disk);
        snprintf(arg_dir, sizeof(arg_dir), "--file-dir=%s", disk);
        snprintf(arg_size, sizeof(arg_size), "--max-buffer-size=%" PRIu64, 2 * size);
        snprintf(arg_uid, sizeof(arg_uid), "--max-bytes-per-uid=%" PRIu64, 2 * size);
        snprintf(arg_all, sizeof(arg_all), "--max-bytes=%" PRIu64, 4 * size);
        restart_with((const char *const[]) { arg_dir, arg_size, arg_uid, arg_all, NULL });

        released_watch();
        c = create_file("larger-than-ram", size, (FileOptions) {});
        ck_assert_uint_ge(c.size, size);
        ck_assert_int_eq(fstat(c.fd, &st), 0);
        ck_assert_uint_eq((uint64_t) st.st_size, c.size);
        ck_assert_uint_eq(allocated_bytes(c.path), 0);
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), c.size);
        release_and_wait(&c);

        /* On the disk's filesystem too, the fd is the lease: a read-only
         * mapping of its last page (nothing allocated) keeps the buffer
         * after its creator's connection is gone. */
        ck_assert_int_ge(bus_connect(&other), 0);
        ck_assert_msg(create_file_with(other, "lease-on-disk", size, (FileOptions) {}, &c, &error) >= 0,
                      "Create: %s", error.message);
        p = mmap(NULL, (size_t) page, PROT_READ, MAP_SHARED, c.fd, (off_t) (c.size - (uint64_t) page));
        ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
        c.fd = safe_close(c.fd);
        sd_bus_flush_close_unref(other);
        msleep((unsigned) scaled_ms(300));
        ck_assert_msg(!released_seen(c.id), "released while mapped");
        ck_assert_int_eq(munmap(p, (size_t) page), 0);
        ck_assert_msg(released_wait(c.id, scaled_ms(5000)), "not released once unmapped");
        ck_assert_str_eq(released_reason(c.id), BB_REASON_LEASE);
        created_done(&c);
}
END_TEST

/* Charged like any buffer: its size rounded up to pages, with memfds in
 * the same quota (48M per uid here, the filesystem 16M: sparse files do
 * not care). */
START_TEST(test_quota_counts_file) {
        _cleanup_created_ Created big = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        Created c = { .fd = -1 }, small;
        Snapshot base;
        int r;

        baseline_after_warmup(&base);
        released_watch();
        big = create_file("big", 40 * M + 1, (FileOptions) {});
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + 40 * M + (uint64_t) page);
        r = create_file_with(NULL, "over", 8 * M, (FileOptions) {}, &c, &error);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, NULL, "a file buffer over the quota");
        sd_bus_error_free(&error);
        r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd", &error,
                               &reply, "sta{sv}", "over", 8 * M, 0);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, NULL, "a memfd over the quota with a file buffer");
        sd_bus_error_free(&error);
        small = create_file("small", 8 * M - 2 * (uint64_t) page, (FileOptions) {});
        release_and_wait(&small);
        release_and_wait(&big);
        assert_space_back("quota");
        assert_back_to(&base, "quota");
}
END_TEST

/* Prefault asks the filesystem for every block: more than it has is
 * NoSpace, and what the failed one took is given back. */
START_TEST(test_prefault_no_space) {
        _cleanup_created_ Created fits = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Created c = { .fd = -1 };
        Snapshot base;
        int r;

        baseline_after_warmup(&base);
        released_watch();
        r = create_file_with(NULL, "too-big", 2 * FS_SIZE, (FileOptions) { .prefault = true }, &c, &error);
        assert_bus_error(&error, r, BB_ERROR_NO_SPACE, NULL, "prefault beyond the filesystem");
        sd_bus_error_free(&error);
        assert_space_back("failed prefault");
        assert_back_to(&base, "failed prefault");

        /* Half of it taken: the other half no longer fits whole. */
        fits = create_file("half", FS_SIZE / 2, (FileOptions) { .prefault = true });
        ck_assert_uint_ge(allocated_bytes(fits.path), FS_SIZE / 2);
        r = create_file_with(NULL, "rest", FS_SIZE / 2 + M, (FileOptions) { .prefault = true }, &c, &error);
        assert_bus_error(&error, r, BB_ERROR_NO_SPACE, NULL, "prefault of the rest");
        sd_bus_error_free(&error);
        /* Sparse, it is made: only writes need room. */
        c = create_file("sparse", FS_SIZE, (FileOptions) {});
        release_and_wait(&c);
        release_and_wait(&fits);
        assert_space_back("prefault");
        assert_back_to(&base, "prefault");
}
END_TEST

static bool log_has(const char *needle) {
        char buf[65536];
        ssize_t n;
        int fd = open(log_path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n < 0)
                return false;
        buf[n] = 0;
        return strstr(buf, needle) != NULL;
}

static void assert_file_refused(const char *needle, const char *context) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_created_ Created mem = { .fd = -1 };
        Created c = { .fd = -1 };
        Snapshot base;
        int r;

        stats_read(&base);
        r = create_file_with(NULL, "refused", M, (FileOptions) {}, &c, &error);
        assert_bus_error(&error, r, BB_ERROR_NOT_SUPPORTED, needle, context);
        sd_bus_error_free(&error);
        r = create_file_with(NULL, "refused", M, (FileOptions) { .prefault = true, .persistent = true }, &c, &error);
        assert_bus_error(&error, r, BB_ERROR_NOT_SUPPORTED, needle, context);
        sd_bus_error_free(&error);
        assert_back_to(&base, context);
        /* The other kinds are served. */
        create_memfd(NULL, "memfd", M, false, 0, &mem);
}

/* No directory: NotSupported, saying how to give one; an unfit one: the
 * same, and the log says why. */
START_TEST(test_no_file_dir) {
        char bad[160], arg[200];

        restart_with((const char *const[]) { NULL });
        assert_file_refused("--file-dir", "no --file-dir, no $STATE_DIRECTORY");
        ck_assert(log_has("file buffers are off"));

        restart_with((const char *const[]) { "--file-dir=", NULL });
        assert_file_refused("--file-dir", "--file-dir=");

        /* Writable by others. */
        snprintf(bad, sizeof(bad), "%s/open-to-all", H->dir);
        make_dir_of_daemon(bad);
        ck_assert_int_eq(chmod(bad, 0777), 0);
        snprintf(arg, sizeof(arg), "--file-dir=%s", bad);
        restart_with((const char *const[]) { arg, NULL });
        assert_file_refused("--file-dir", "a directory writable by others");
        ck_assert_msg(log_has("is writable by others (mode 0777): file buffers are off"), "log: see %s", log_path);

        /* Someone else's (that the daemon may open and read). */
        ck_assert_int_eq(chmod(bad, 0755), 0);
        ck_assert_int_eq(chown(bad, NOBODY_UID, NOBODY_GID), 0);
        restart_with((const char *const[]) { arg, NULL });
        assert_file_refused("--file-dir", "a directory of another uid");
        ck_assert_msg(log_has("belongs to uid 65534, not to the daemon's uid"), "log: see %s", log_path);

        /* Not there: not made (only the default under $STATE_DIRECTORY is). */
        snprintf(arg, sizeof(arg), "--file-dir=%s/missing", H->dir);
        restart_with((const char *const[]) { arg, NULL });
        assert_file_refused("--file-dir", "a missing directory");
        ck_assert_msg(log_has("missing: No such file or directory"), "log: see %s", log_path);
}
END_TEST

/* Under systemd: files/ in $STATE_DIRECTORY, made 0700 when missing. */
START_TEST(test_state_directory_default) {
        char state[160], files[200];
        struct stat st;
        Created c;

        snprintf(state, sizeof(state), "%s/state", H->dir);
        make_dir_of_daemon(state);
        ck_assert_int_eq(setenv("STATE_DIRECTORY", state, 1), 0);
        restart_with((const char *const[]) { NULL });
        ck_assert_int_eq(unsetenv("STATE_DIRECTORY"), 0);
        snprintf(files, sizeof(files), "%s/files", state);
        ck_assert_int_eq(stat(files, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_int_eq(st.st_uid, daemon_uid);
        ck_assert_int_eq(st.st_mode & 07777, 0700);
        released_watch();
        c = create_file("default", M, (FileOptions) {});
        release_and_wait(&c);
}
END_TEST

/* Options of the wrong type, hugetlb (memfd only), sizes no buffer can
 * have: each refused, nothing left. */
START_TEST(test_hostile_options) {
        static const char *const keys[] = { BB_OPT_PREFAULT, BB_OPT_PERSISTENT, BB_OPT_HUGETLB };
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Snapshot base;
        int r;

        baseline_after_warmup(&base);
        for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
                char want[64];

                snprintf(want, sizeof(want), "'%s'", keys[k]);
                r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", &error,
                                       &reply, "ssta{sv}", "file", "x", UINT64_C(4096), 1, keys[k], "s", "true");
                assert_bus_error(&error, r, BB_ERROR_INVALID_ARGS, want, "string");
                sd_bus_error_free(&error);
                r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", &error,
                                       &reply, "ssta{sv}", "file", "x", UINT64_C(4096), 1, keys[k], "u", 1);
                assert_bus_error(&error, r, BB_ERROR_INVALID_ARGS, want, "integer");
                sd_bus_error_free(&error);
                r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", &error,
                                       &reply, "ssta{sv}", "file", "x", UINT64_C(4096), 1, keys[k], "as", 1, "b");
                assert_bus_error(&error, r, BB_ERROR_INVALID_ARGS, want, "array");
                sd_bus_error_free(&error);
        }
        r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", &error, &reply,
                               "ssta{sv}", "file", "x", UINT64_C(4096), 1, BB_OPT_TTL_USEC, "s", "1s");
        assert_bus_error(&error, r, BB_ERROR_INVALID_ARGS, "'" BB_OPT_TTL_USEC "'", "ttl string");
        sd_bus_error_free(&error);
        /* Huge pages are for memfds: named so. */
        r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", &error, &reply,
                               "ssta{sv}", "file", "x", UINT64_C(4096), 1, BB_OPT_HUGETLB, "b", true);
        assert_bus_error(&error, r, BB_ERROR_NOT_SUPPORTED, "file", "hugetlb");
        sd_bus_error_free(&error);
        r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", &error, &reply,
                               "ssta{sv}", "file", "x", UINT64_C(0), 0);
        assert_bus_error(&error, r, BB_ERROR_INVALID_ARGS, NULL, "size 0");
        sd_bus_error_free(&error);
        r = sd_bus_call_method(H->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", &error, &reply,
                               "ssta{sv}", "file", "x", UINT64_MAX, 1, BB_OPT_PREFAULT, "b", true);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, NULL, "2^64-1 bytes");
        sd_bus_error_free(&error);
        assert_space_back("hostile options");
        assert_back_to(&base, "hostile options");
}
END_TEST

/* Not sealable, so no Freeze: NotSupported naming the kind. */
START_TEST(test_freeze_refused) {
        _cleanup_created_ Created c = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        released_watch();
        c = create_file("freeze", M, (FileOptions) {});
        r = call_freeze(NULL, c.path, &error);
        assert_bus_error(&error, r, BB_ERROR_NOT_SUPPORTED, "file", "Freeze");
        sd_bus_error_free(&error);
        release_and_wait(&c);
        assert_space_back("freeze refused");
}
END_TEST

/* ------------------------------------------------------ the fd store --- */

/* A persistent file buffer, written and shared, survives a SIGKILL of the
 * daemon: same id, contents, token, space; released, the space comes back
 * (the store's copy is removed too). */
START_TEST(test_restart_keeps_the_buffer) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *token = NULL, *path = NULL, buf[16] = "";
        uint64_t taken;
        bool read_only = true;
        Created c;
        FdStore store;
        int fd = -1;

        /* The fixture's daemon has no store: one that has (and logs to
         * log_path, as the fixture set it). */
        fd_store_start(&store);
        stop_daemon_now();
        fd_store_restart_daemon(&store, default_args());

        c = create_file("kept", 2 * M, (FileOptions) { .persistent = true, .prefault = true });
        ck_assert_int_eq(pwrite(c.fd, "survives", 8, M), 8);
        ck_assert_msg(call_share(NULL, c.path, false, (uid_t) -1, false, 0, &token, &error) >= 0, "Share: %s",
                      error.message);
        c.fd = safe_close(c.fd);
        taken = empty_free - free_bytes(file_dir);
        ck_assert_uint_ge(taken, 2 * M);
        for (unsigned tries = 0; fd_store_count(&store, "buf-") != 1; tries++) {
                ck_assert_msg(tries < 300, "the store has %u fds of buffers", fd_store_count(&store, "buf-"));
                msleep(10);
        }

        /* Killed: what it stored is all the next one has. */
        fd_store_stop_daemon(&store, SIGKILL);
        fd_store_restart_daemon(&store, default_args());

        ck_assert_msg(list_has(NULL, c.id), "the file buffer was not restored");
        ck_assert_uint_eq(allocated_bytes(c.path), 2 * M);
        ck_assert_uint_eq(empty_free - free_bytes(file_dir), taken);
        ck_assert_msg(call_open(NULL, token, &path, &fd, &read_only, &error) >= 0, "the token: %s", error.message);
        ck_assert_str_eq(path, c.path);
        ck_assert(!read_only);
        ck_assert_int_eq(pread(fd, buf, 8, M), 8);
        ck_assert_str_eq(buf, "survives");
        close(fd);
        free(path);
        free(token);

        released_watch();
        ck_assert_int_ge(call_release(NULL, c.path, &error), 0);
        ck_assert_msg(released_wait(c.id, scaled_ms(5000)), "not released");
        created_done(&c);
        /* The space comes back once the store let go of its copy too
         * (FDSTOREREMOVE=1). */
        assert_space_back("released after the restart");
        ck_assert_uint_eq(fd_store_count(&store, "buf-"), 0);
        stop_daemon_now();
        fd_store_done(&store);
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_create_map_share_release);
        tcase_add_test(tc, test_busctl);
        tcase_add_test(tc, test_holder_killed);
        tcase_add_test(tc, test_mapping_is_the_lease);
        tcase_add_test(tc, test_larger_than_ram);
        tcase_add_test(tc, test_quota_counts_file);
        tcase_add_test(tc, test_prefault_no_space);
        tcase_add_test(tc, test_no_file_dir);
        tcase_add_test(tc, test_state_directory_default);
        tcase_add_test(tc, test_hostile_options);
        tcase_add_test(tc, test_freeze_refused);
        tcase_add_test(tc, test_restart_keeps_the_buffer);
}

static void add_tcase(Suite *s, const char *name, void (*setup_fn)(void)) {
        TCase *tc = tcase_create(name);

        tcase_add_checked_fixture(tc, setup_fn, teardown);
        tcase_set_timeout(tc, getenv("BUFBROKER_TEST_DAEMON_WRAPPER") ? 600 : 60);
        add_tests(tc);
        suite_add_tcase(s, tc);
}

int main(void) {
        Suite *s = suite_create("file buffers");

        add_tcase(s, "dbus-daemon", setup_dbus_daemon);
        add_tcase(s, "dbus-broker", setup_dbus_broker);
        return harness_main(s);
}
