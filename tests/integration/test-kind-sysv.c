/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Create("sysv"): a SysV segment made by the daemon (an unprivileged user,
 * as under systemd) and given to the caller's uid, attached by its shmid.
 * Its owner uid attaches it read-write from any process; another uid
 * cannot, and a Share bound to one, or an Open by one, is NotSupported.
 * No fds anywhere (Create, Open, OpenFds). It goes as every buffer goes
 * (Release, its holder's death), and the segment with it (IPC_RMID) once
 * nothing is attached: while a process is, the buffer stays (reason
 * "lease" when it goes). Quotas count it; a restart with the fd store keeps
 * it; nothing of the daemon's is left in /proc/sysvipc/shm.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define SYSV_ONE_UID "a SysV segment has one owner uid"

static const char *const daemon_args[] = { "--max-bytes-per-uid=1M", NULL };

/* ------------------------------------------------------------ replies --- */

/* What Create and Open answer, as far as a sysv buffer goes. */
typedef struct Reply {
        char path[128];
        uint64_t id;
        unsigned n_fds;
        int32_t shmid;                  /* -1: no "shmid" in info */
        uint64_t size;
        uint32_t owner_uid;
        char kind[16];
        bool read_only, prefaulted;
} Reply;

/* The fds and info of a reply (after its path, if any). */
static int read_fds_and_info(sd_bus_message *reply, Reply *ret) {
        const char *key;
        int fd, r;

        r = sd_bus_message_enter_container(reply, 'a', "h");
        while (r >= 0 && (r = sd_bus_message_read(reply, "h", &fd)) > 0)
                ret->n_fds++;
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        break;
                if (strcmp(key, BB_INFO_SHMID) == 0)
                        r = sd_bus_message_read(reply, "v", "i", &ret->shmid);
                else if (strcmp(key, BB_INFO_ID) == 0)
                        r = sd_bus_message_read(reply, "v", "t", &ret->id);
                else if (strcmp(key, BB_INFO_SIZE) == 0)
                        r = sd_bus_message_read(reply, "v", "t", &ret->size);
                else if (strcmp(key, BB_INFO_OWNER_UID) == 0)
                        r = sd_bus_message_read(reply, "v", "u", &ret->owner_uid);
                else if (strcmp(key, BB_INFO_KIND) == 0) {
                        const char *k;

                        r = sd_bus_message_read(reply, "v", "s", &k);
                        if (r >= 0)
                                snprintf(ret->kind, sizeof(ret->kind), "%s", k);
                } else if (strcmp(key, BB_INFO_READ_ONLY) == 0 || strcmp(key, BB_INFO_PREFAULTED) == 0) {
                        int b;

                        r = sd_bus_message_read(reply, "v", "b", &b);
                        if (strcmp(key, BB_INFO_READ_ONLY) == 0)
                                ret->read_only = b;
                        else
                                ret->prefaulted = b;
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        return r < 0 ? r : 0;
}

static int read_reply(sd_bus_message *reply, Reply *ret) {
        const char *path;
        int r;

        *ret = (Reply) { .shmid = -1 };
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        snprintf(ret->path, sizeof(ret->path), "%s", path);
        return read_fds_and_info(reply, ret);
}

/* Create(kind, name, size, {persistent, prefault}) on @bus. */
static int create_kind(sd_bus *bus, const char *kind, const char *name, uint64_t size, bool persistent,
                       bool prefault, Reply *ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create");
        if (r >= 0)
                r = sd_bus_message_append(m, "sst", kind, name, size);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && persistent)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_PERSISTENT, "b", 1);
        if (r >= 0 && prefault)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_PREFAULT, "b", 1);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, 0, error, &reply);
        if (r < 0)
                return r;
        return read_reply(reply, ret);
}

static int create_sysv(sd_bus *bus, const char *name, uint64_t size, bool persistent, bool prefault, Reply *ret,
                       sd_bus_error *error) {
        return create_kind(bus, BB_KIND_SYSV, name, size, persistent, prefault, ret, error);
}

static Reply create_sysv_ok(sd_bus *bus, const char *name, uint64_t size, bool persistent, bool prefault) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Reply c;
        int r = create_sysv(bus ?: test_bus(), name, size, persistent, prefault, &c, &error);

        ck_assert_msg(r >= 0, "Create(sysv, %" PRIu64 "): %s", size, error.message);
        ck_assert_uint_eq(c.n_fds, 0);
        ck_assert_str_eq(c.kind, BB_KIND_SYSV);
        ck_assert_int_ge(c.shmid, 0);
        ck_assert_uint_eq(c.id, buffer_id_from_path(c.path));
        return c;
}

static int open_token(sd_bus *bus, const char *token, Reply *ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open", error, &reply,
                               "sa{sv}", token, 0);
        return r < 0 ? r : read_reply(reply, ret);
}

static int open_fds(sd_bus *bus, const char *path, bool read_only, Reply *ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "OpenFds", error, &reply, "a{sv}",
                               read_only ? 1 : 0, BB_OPT_READ_ONLY, "b", 1);
        if (r < 0)
                return r;
        *ret = (Reply) { .shmid = -1 };
        return read_fds_and_info(reply, ret);
}

/* ----------------------------------------------------------- segments --- */

static uid_t daemon_uid(void) {
        return system_uid("daemon");
}

/* Another uid than the owner's (65534), the daemon's and root. */
static uid_t other_uid(void) {
        return system_uid("bin");
}

static bool segment_exists(int shmid) {
        struct shmid_ds ds;

        if (shmctl(shmid, IPC_STAT, &ds) == 0)
                return true;
        ck_assert_msg(errno == EINVAL || errno == EIDRM, "IPC_STAT %d: %s", shmid, strerror(errno));
        return false;
}

/* Every daemon of the run, kept where the runner sees it: a failed test
 * ends at once (no teardown), and segments outlive the daemons, so the
 * runner removes whatever they left when all tests are done. */
typedef struct AllDaemons {
        unsigned n;
        pid_t pids[256];
} AllDaemons;
static AllDaemons *all_daemons;

/* The pids of the daemons this test started (one per restart): a segment
 * with one of them as its creator pid is the daemon's. */
static pid_t daemon_pids[16];
static unsigned n_daemon_pids;

static void note_daemon(void) {
        for (unsigned i = 0; i < n_daemon_pids; i++)
                if (daemon_pids[i] == H->daemon_pid)
                        return;
        ck_assert_uint_lt(n_daemon_pids, ELEMENTSOF(daemon_pids));
        daemon_pids[n_daemon_pids++] = H->daemon_pid;
        if (all_daemons->n < ELEMENTSOF(all_daemons->pids))
                all_daemons->pids[all_daemons->n++] = H->daemon_pid;
}

/* Segments made by our daemons still in /proc/sysvipc/shm (other tests of
 * the machine may have their own). */
static unsigned daemon_segments(void) {
        FILE *f = fopen("/proc/sysvipc/shm", "re");
        char line[512];
        unsigned n = 0;

        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
        while (fgets(line, sizeof(line), f)) {
                int key, id, cpid;
                unsigned perms;
                unsigned long long size;

                ck_assert_int_eq(sscanf(line, "%d %d %o %llu %d", &key, &id, &perms, &size, &cpid), 5);
                for (unsigned i = 0; i < n_daemon_pids; i++)
                        if (cpid == daemon_pids[i])
                                n++;
        }
        fclose(f);
        return n;
}

static void remove_daemon_segments(void) {
        FILE *f = fopen("/proc/sysvipc/shm", "re");
        char line[512];

        if (!f || !fgets(line, sizeof(line), f)) {
                if (f)
                        fclose(f);
                return;
        }
        while (fgets(line, sizeof(line), f)) {
                int key, id, cpid;
                unsigned perms;
                unsigned long long size;

                if (sscanf(line, "%d %d %o %llu %d", &key, &id, &perms, &size, &cpid) != 5)
                        continue;
                for (unsigned i = 0; i < all_daemons->n; i++)
                        if (cpid == all_daemons->pids[i])
                                (void) shmctl(id, IPC_RMID, NULL);
        }
        fclose(f);
}

static void assert_nothing_left(const Snapshot *base, const char *context) {
        assert_back_to(base, context);
        ck_assert_msg(daemon_segments() == 0, "%s: %u segments of the daemon left", context, daemon_segments());
}

/* Drop the buffer as root (it may: privileged) and wait until it went. */
static void release_as_root(const Reply *c, const char *reason) {
        sd_bus_error error = SD_BUS_ERROR_NULL;

        ck_assert_msg(call_release(NULL, c->path, &error) >= 0, "Release %s: %s", c->path, error.message);
        ck_assert_msg(released_wait(c->id, scaled_ms(5000)), "no BufferReleased for %" PRIu64, c->id);
        if (reason)
                ck_assert_str_eq(released_reason(c->id), reason);
        ck_assert_msg(!segment_exists(c->shmid), "segment %d of a released buffer is still there", c->shmid);
}

/* ---------------------------------------------------- in other uids --- */

/* A page shared with the children: what they made, what they saw. */
typedef struct Shared {
        Reply reply;
        char token[BB_TOKEN_LEN + 1];
        char text[64];
        int error_r;
        char error_name[128];
        char error_message[256];
} Shared;

static Shared *shared_new(void) {
        Shared *s = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        ck_assert(s != MAP_FAILED);
        memset(s, 0, sizeof(*s));
        return s;
}

static void shared_free(Shared *s) {
        munmap(s, sizeof(*s));
}

/* uid 65534 creates a persistent sysv buffer on its own connection. */
static int nobody_creates_persistent(void *userdata) {
        Shared *s = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        child_check(bus_connect(&bus) >= 0, "connect");
        r = create_sysv(bus, "nobodys", 5000, true, false, &s->reply, &error);
        child_check(r >= 0, "Create: %s", error.message);
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* Attach rw by the shmid, check what is there, write @s->text after it. */
static int attach_rw(void *userdata) {
        Shared *s = userdata;
        char *p = shmat(s->reply.shmid, NULL, 0);

        child_check(p != (void *) -1, "shmat(%d) as uid %u: %s", s->reply.shmid, (unsigned) getuid(), strerror(errno));
        child_check(strcmp(p, s->text) == 0, "found '%.32s', want '%s'", p, s->text);
        snprintf(p, 128, "%s, and uid %u was here", s->text, (unsigned) getuid());
        child_check(shmdt(p) == 0, "shmdt");
        return 0;
}

/* The kernel refuses with EACCES. Under valgrind the test's shmat() is
 * valgrind's, which first asks IPC_STAT for the size, is refused too, and
 * fails with EINVAL before the kernel is asked: a refusal either way. */
static bool refused(void *p) {
        return p == (void *) -1 && (errno == EACCES || errno == EINVAL);
}

static int attach_refused(void *userdata) {
        Shared *s = userdata;

        child_check(refused(shmat(s->reply.shmid, NULL, 0)), "rw shmat as uid %u: %s", (unsigned) getuid(),
                    strerror(errno));
        child_check(refused(shmat(s->reply.shmid, NULL, SHM_RDONLY)), "ro shmat as uid %u: %s", (unsigned) getuid(),
                    strerror(errno));
        return 0;
}

/* Open s->token on a new connection; the reply (or the error) in @s. */
static int open_in_child(void *userdata) {
        Shared *s = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;

        child_check(bus_connect(&bus) >= 0, "connect");
        s->error_r = open_token(bus, s->token, &s->reply, &error);
        if (s->error_r < 0) {
                snprintf(s->error_name, sizeof(s->error_name), "%s", error.name ?: "");
                snprintf(s->error_message, sizeof(s->error_message), "%s", error.message ?: "");
        }
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* ============================================================== tests === */

/* Made for uid 65534: its segment, given to it; any process of its uid
 * attaches read-write and sees what another wrote; another uid attaches
 * nothing, and cannot be given the buffer (Share bound to it, Open by it);
 * the owner's Open of a token works, with no fd. */
START_TEST(test_owner_attaches_others_cannot) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t page = (uint64_t) sysconf(_SC_PAGESIZE);
        Shared *s = shared_new();
        struct shmid_ds ds;
        char *token = NULL;
        Snapshot base;
        Reply c;
        int r;

        note_daemon();
        baseline_after_warmup(&base);
        released_watch();

        ck_assert_int_eq(run_as(NOBODY_UID, nobody_creates_persistent, s, scaled_ms(10000)), 0);
        c = s->reply;
        ck_assert_uint_eq(c.n_fds, 0);
        ck_assert_str_eq(c.kind, BB_KIND_SYSV);
        ck_assert_uint_eq(c.owner_uid, NOBODY_UID);
        ck_assert_uint_eq(c.size, (5000 + page - 1) / page * page);
        ck_assert_int_ge(c.shmid, 0);
        ck_assert_int_eq(shmctl(c.shmid, IPC_STAT, &ds), 0);
        ck_assert_uint_eq(ds.shm_perm.uid, NOBODY_UID);
        ck_assert_uint_eq(ds.shm_perm.cuid, daemon_uid());
        ck_assert_uint_eq(ds.shm_perm.mode & 0777, 0600);
        ck_assert_uint_eq(ds.shm_segsz, c.size);
        ck_assert_uint_eq(ds.shm_nattch, 0);
        ck_assert_int_eq(property_i(c.path, BB_PROP_SHM_ID), c.shmid);
        ck_assert_uint_eq(property_t(c.path, BB_PROP_ALLOCATED_BYTES), 0);
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + c.size);
        ck_assert_uint_eq(daemon_segments(), 1);

        /* Two processes of the owner uid, one after the other. */
        ck_assert_int_eq(run_as(NOBODY_UID, attach_rw, s, scaled_ms(10000)), 0);
        snprintf(s->text, sizeof(s->text), ", and uid %u was here", (unsigned) NOBODY_UID);
        ck_assert_int_eq(run_as(NOBODY_UID, attach_rw, s, scaled_ms(10000)), 0);
        /* The first touched one page. */
        ck_assert_uint_eq(property_t(c.path, BB_PROP_ALLOCATED_BYTES), page);

        /* Another uid: not by shmat, not through the broker. */
        ck_assert_int_eq(run_as(other_uid(), attach_refused, s, scaled_ms(10000)), 0);
        r = call_share(NULL, c.path, false, other_uid(), false, 0, &token, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_NOT_SUPPORTED, SYSV_ONE_UID, "Share bound to another uid");
        sd_bus_error_free(&error);
        r = call_share(NULL, c.path, true, (uid_t) -1, false, 0, &token, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_NOT_SUPPORTED, "read-write", "a read-only Share");
        sd_bus_error_free(&error);
        ck_assert_int_ge(call_share(NULL, c.path, false, (uid_t) -1, false, 0, &token, &error), 0);
        memcpy(s->token, token, BB_TOKEN_LEN);
        free(token);
        ck_assert_int_eq(run_as(other_uid(), open_in_child, s, scaled_ms(10000)), 0);
        ck_assert_int_lt(s->error_r, 0);
        ck_assert_str_eq(s->error_name, SD_BUS_ERROR_NOT_SUPPORTED);
        ck_assert_msg(strstr(s->error_message, SYSV_ONE_UID), "message: %s", s->error_message);

        /* The owner's uid, by the token (which a refused Open left). */
        s->reply = (Reply) {};
        ck_assert_int_eq(run_as(NOBODY_UID, open_in_child, s, scaled_ms(10000)), 0);
        ck_assert_msg(s->error_r >= 0, "Open as the owner: %s: %s", s->error_name, s->error_message);
        ck_assert_uint_eq(s->reply.n_fds, 0);
        ck_assert_int_eq(s->reply.shmid, c.shmid);
        ck_assert_uint_eq(s->reply.id, c.id);
        ck_assert(!s->reply.read_only);

        /* Root attaches any segment: a share bound to it, and its Open,
         * are allowed (its hold is released with the buffer). */
        ck_assert_msg(call_share(NULL, c.path, false, AS_ROOT, false, 0, &token, &error) >= 0,
                      "Share bound to root: %s", error.message);
        memcpy(s->token, token, BB_TOKEN_LEN);
        free(token);
        ck_assert_msg(open_token(test_bus(), s->token, &s->reply, &error) >= 0, "Open as root: %s", error.message);
        ck_assert_int_eq(s->reply.shmid, c.shmid);
        ck_assert_uint_eq(s->reply.n_fds, 0);

        /* Nobody attached: Release takes the segment with the buffer. */
        release_as_root(&c, BB_REASON_RELEASED);
        shared_free(s);
        assert_nothing_left(&base, "sysv buffer released");
}
END_TEST

/* busctl can make one and read the shmid; the owner releases it. */
START_TEST(test_busctl) {
        _cleanup_run_result_ RunResult r = {}, rel = {};
        const char *p;
        char path[128];
        Snapshot base;
        int shmid = -1;

        note_daemon();
        baseline_after_warmup(&base);
        busctl(&r, NOBODY_UID, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", "ssta{sv}",
               BB_KIND_SYSV, "from-busctl", "4096", "1", BB_OPT_PERSISTENT, "b", "true");
        ck_assert_run_status(&r, 0);
        ck_assert_msg(strncmp(r.out, "oaha{sv} \"", 10) == 0, "busctl printed: %s", r.out);
        ck_assert_msg(strstr(r.out, "\" 0 "), "fds in a sysv reply: %s", r.out);
        p = strstr(r.out, "\"shmid\" i ");
        ck_assert_msg(p && sscanf(p, "\"shmid\" i %d", &shmid) == 1, "no shmid: %s", r.out);
        ck_assert(segment_exists(shmid));
        ck_assert_int_eq(sscanf(r.out, "oaha{sv} \"%127[^\"]\"", path), 1);

        busctl(&rel, NOBODY_UID, "call", BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release");
        ck_assert_run_status(&rel, 0);
        ck_assert(!segment_exists(shmid));
        assert_nothing_left(&base, "busctl's sysv buffer released");
}
END_TEST

/* An attachment keeps a buffer nobody holds: listed and charged until the
 * last process detaches, then gone with reason "lease" (found by the next
 * call, or by the timer when no call comes). */
START_TEST(test_attachment_keeps_it) {
        Snapshot base;

        note_daemon();
        baseline_after_warmup(&base);
        released_watch();

        for (unsigned by_call = 0; by_call < 2; by_call++) {
                Reply c = create_sysv_ok(NULL, "attached", 4096, false, false);
                sd_bus_error error = SD_BUS_ERROR_NULL;
                char *p = shmat(c.shmid, NULL, 0);

                ck_assert(p != (void *) -1);
                strcpy(p, "still mapped");
                ck_assert_msg(call_release(NULL, c.path, &error) >= 0, "Release: %s", error.message);
                ck_assert_msg(list_has(NULL, c.id), "released while attached: gone already");
                ck_assert(segment_exists(c.shmid));
                ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + 4096);
                /* Longer than a period of the timer: still there. */
                msleep(1300);
                ck_assert_msg(!released_seen(c.id), "dropped while attached");
                ck_assert_msg(list_has(NULL, c.id), "dropped while attached");

                ck_assert_int_eq(shmdt(p), 0);
                if (by_call)
                        ck_assert_msg(!list_has(NULL, c.id), "the call after the detach still lists it");
                ck_assert_msg(released_wait(c.id, scaled_ms(3000)), "not dropped after the detach");
                ck_assert_str_eq(released_reason(c.id), BB_REASON_LEASE);
                ck_assert(!segment_exists(c.shmid));
        }
        assert_nothing_left(&base, "attached buffers detached");
}
END_TEST

/* uid 65534 creates one on its own connection, reports it and waits to be
 * killed (the buffer lives while its connection does). */
static int nobody_creates_and_waits(void *userdata) {
        Shared *s = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        child_check(bus_connect(&bus) >= 0, "connect");
        r = create_sysv(bus, "held", 4096, false, s->text[0] == 'a', &s->reply, &error);
        child_check(r >= 0, "Create: %s", error.message);
        if (s->text[0] == 'a')
                child_check(shmat(s->reply.shmid, NULL, 0) != (void *) -1, "shmat: %s", strerror(errno));
        __atomic_store_n(&s->error_r, 1, __ATOMIC_SEQ_CST);
        for (;;)
                pause();
}

/* The holder dies (attached or not): the buffer and its segment go. */
START_TEST(test_holder_killed) {
        Snapshot base;

        note_daemon();
        baseline_after_warmup(&base);
        released_watch();
        for (unsigned attached = 0; attached < 2; attached++) {
                Shared *s = shared_new();
                pid_t pid;

                snprintf(s->text, sizeof(s->text), "%s", attached ? "attached" : "not attached");
                pid = fork_as(NOBODY_UID, nobody_creates_and_waits, s);
                for (uint64_t end = now_usec() + (uint64_t) scaled_ms(10000) * 1000u;
                     now_usec() < end && !__atomic_load_n(&s->error_r, __ATOMIC_SEQ_CST);)
                        msleep(10);
                ck_assert_msg(s->error_r == 1, "the child did not create");
                ck_assert(segment_exists(s->reply.shmid));
                ck_assert_int_eq(kill(pid, SIGKILL), 0);
                ck_assert_int_eq(wait_child(pid, scaled_ms(5000)), 128 + SIGKILL);
                ck_assert_msg(released_wait(s->reply.id, scaled_ms(5000)), "%s: not dropped", s->text);
                ck_assert_str_eq(released_reason(s->reply.id), BB_REASON_HOLDERS_GONE);
                ck_assert(!segment_exists(s->reply.shmid));
                shared_free(s);
        }
        assert_nothing_left(&base, "holders killed");
}
END_TEST

/* uid 65534 creates a persistent buffer of kind @s->text, 512K. */
static int nobody_creates_persistent_size(void *userdata) {
        Shared *s = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;

        child_check(bus_connect(&bus) >= 0, "connect");
        s->error_r = create_kind(bus, s->text, "quota", UINT64_C(512) << 10, true, false, &s->reply, &error);
        if (s->error_r < 0) {
                snprintf(s->error_name, sizeof(s->error_name), "%s", error.name ?: "");
                snprintf(s->error_message, sizeof(s->error_message), "%s", error.message ?: "");
        }
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* --max-bytes-per-uid=1M: two of 512K fit, the third does not; nor does
 * a memfd then. Charged as long as they live. */
START_TEST(test_quota_counts_sysv) {
        Shared *s = shared_new();
        Reply made[2];
        Snapshot base;

        note_daemon();
        baseline_after_warmup(&base);
        released_watch();
        snprintf(s->text, sizeof(s->text), "%s", BB_KIND_SYSV);
        for (unsigned i = 0; i < 2; i++) {
                ck_assert_int_eq(run_as(NOBODY_UID, nobody_creates_persistent_size, s, scaled_ms(10000)), 0);
                ck_assert_msg(s->error_r >= 0, "Create %u: %s", i, s->error_message);
                made[i] = s->reply;
        }
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + (UINT64_C(1) << 20));
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_creates_persistent_size, s, scaled_ms(10000)), 0);
        ck_assert_int_lt(s->error_r, 0);
        ck_assert_str_eq(s->error_name, BB_ERROR_QUOTA_EXCEEDED);
        ck_assert_uint_eq(daemon_segments(), 2);
        snprintf(s->text, sizeof(s->text), "%s", BB_KIND_MEMFD);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_creates_persistent_size, s, scaled_ms(10000)), 0);
        ck_assert_int_lt(s->error_r, 0);
        ck_assert_str_eq(s->error_name, BB_ERROR_QUOTA_EXCEEDED);
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + (UINT64_C(1) << 20));
        for (unsigned i = 0; i < 2; i++)
                release_as_root(&made[i], BB_REASON_RELEASED);
        shared_free(s);
        assert_nothing_left(&base, "quota");
}
END_TEST

/* prefault: every page resident before the reply (AllocatedBytes). */
START_TEST(test_prefault) {
        Snapshot base;
        Reply c, d;

        note_daemon();
        baseline_after_warmup(&base);
        released_watch();
        c = create_sysv_ok(NULL, "prefaulted", 65536, false, true);
        ck_assert(c.prefaulted);
        ck_assert_uint_eq(property_t(c.path, BB_PROP_ALLOCATED_BYTES), 65536);
        d = create_sysv_ok(NULL, "lazy", 65536, false, false);
        ck_assert(!d.prefaulted);
        ck_assert_uint_eq(property_t(d.path, BB_PROP_ALLOCATED_BYTES), 0);
        release_as_root(&c, BB_REASON_RELEASED);
        release_as_root(&d, BB_REASON_RELEASED);
        assert_nothing_left(&base, "prefault");
}
END_TEST

static int create_with_option(const char *opt, char type, const void *value, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = sd_bus_message_new_method_call(test_bus(), &m, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                           "Create");
        ck_assert_int_ge(r, 0);
        ck_assert_int_ge(sd_bus_message_append(m, "sst", BB_KIND_SYSV, "hostile", (uint64_t) 4096), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "{sv}"), 0);
        if (type == 'b' || type == 'u')
                r = sd_bus_message_append(m, "{sv}", opt, (char[]) { type, 0 }, *(const uint32_t *) value);
        else if (type == 's')
                r = sd_bus_message_append(m, "{sv}", opt, "s", (const char *) value);
        else
                r = sd_bus_message_append(m, "{sv}", opt, "t", *(const uint64_t *) value);
        ck_assert_int_ge(r, 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        return sd_bus_call(test_bus(), m, 0, error, &reply);
}

/* Refused with the name of what was wrong, nothing left behind. */
START_TEST(test_hostile) {
        static const struct {
                const char *opt;
                char type;
                uint64_t value;
                const char *error, *needle;
        } cases[] = {
                { BB_OPT_HUGETLB, 'b', 1, SD_BUS_ERROR_NOT_SUPPORTED, "sysv" },
                { BB_OPT_HUGETLB, 's', 0, SD_BUS_ERROR_INVALID_ARGS, "'hugetlb'" },
                { BB_OPT_PREFAULT, 's', 0, SD_BUS_ERROR_INVALID_ARGS, "'prefault'" },
                { BB_OPT_PREFAULT, 'u', 1, SD_BUS_ERROR_INVALID_ARGS, "'prefault'" },
                { BB_OPT_PERSISTENT, 't', 1, SD_BUS_ERROR_INVALID_ARGS, "'persistent'" },
                { BB_OPT_TTL_USEC, 't', 0, SD_BUS_ERROR_INVALID_ARGS, "'ttl-usec'" },
                { BB_OPT_TTL_USEC, 'b', 1, SD_BUS_ERROR_INVALID_ARGS, "'ttl-usec'" },
                { "shmid", 'u', 1, SD_BUS_ERROR_INVALID_ARGS, "'shmid'" },
        };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Snapshot base;
        Reply c, o;
        int r;

        note_daemon();
        baseline_after_warmup(&base);
        released_watch();
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint32_t v32 = (uint32_t) cases[i].value;

                r = create_with_option(cases[i].opt, cases[i].type,
                                       cases[i].type == 't' ? (const void *) &cases[i].value
                                       : cases[i].type == 's' ? (const void *) "yes" : (const void *) &v32,
                                       &error);
                assert_bus_error(&error, r, cases[i].error, cases[i].needle, cases[i].opt);
                sd_bus_error_free(&error);
        }
        for (uint64_t size = 0; size < 2; size++) {
                r = create_sysv(test_bus(), "bad", size ? UINT64_MAX : 0, false, false, &c, &error);
                assert_bus_error(&error, r, size ? BB_ERROR_QUOTA_EXCEEDED : SD_BUS_ERROR_INVALID_ARGS, NULL,
                                 "size");
                sd_bus_error_free(&error);
        }
        r = create_sysv(test_bus(), "bad\x01name", 4096, false, false, &c, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, "control character", "name");
        sd_bus_error_free(&error);
        assert_nothing_left(&base, "refused creates");

        /* What a sysv buffer cannot do. */
        c = create_sysv_ok(NULL, "limits", 4096, false, false);
        r = call_freeze(NULL, c.path, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_NOT_SUPPORTED, "sysv", "Freeze");
        sd_bus_error_free(&error);
        r = open_fds(test_bus(), c.path, true, &o, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_NOT_SUPPORTED, "SHM_RDONLY", "OpenFds read-only");
        sd_bus_error_free(&error);
        ck_assert_msg(open_fds(test_bus(), c.path, false, &o, &error) >= 0, "OpenFds: %s", error.message);
        ck_assert_uint_eq(o.n_fds, 0);
        ck_assert_int_eq(o.shmid, c.shmid);
        release_as_root(&c, BB_REASON_RELEASED);
        assert_nothing_left(&base, "a sysv buffer's refusals");
}
END_TEST

static uint64_t meminfo_bytes(const char *field) {
        FILE *f = fopen("/proc/meminfo", "re");
        unsigned long long v = 0;
        char line[256];
        size_t n = strlen(field);

        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, n) == 0 && line[n] == ':')
                        ck_assert_int_eq(sscanf(line + n + 1, "%llu", &v), 1);
        fclose(f);
        return (uint64_t) v * 1024;
}

/* More than the kernel will commit (limits that let it through): NoSpace
 * saying so, nothing left. With vm.overcommit_memory=1 the kernel promises
 * anything: then it is made (nothing is allocated) and released. */
START_TEST(test_no_space) {
        static const char *const args[] = { "--max-buffer-size=4T", "--max-bytes-per-uid=4T", "--max-bytes=8T", NULL };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t size = 2 * (meminfo_bytes("MemTotal") + meminfo_bytes("SwapTotal"));
        int overcommit = -1, r;
        Snapshot base;
        Reply c;
        FILE *f;

        f = fopen("/proc/sys/vm/overcommit_memory", "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fscanf(f, "%d", &overcommit), 1);
        fclose(f);
        note_daemon();
        ck_assert_int_eq(kill(H->daemon_pid, SIGTERM), 0);
        while (daemon_alive())
                msleep(5);
        harness_restart_daemon(args);
        note_daemon();
        baseline_after_warmup(&base);
        r = create_sysv(test_bus(), "too-large", size, false, false, &c, &error);
        if (overcommit == 1) {
                ck_assert_msg(r >= 0, "vm.overcommit_memory=1, and still: %s", error.message);
                released_watch();
                release_as_root(&c, BB_REASON_RELEASED);
                assert_nothing_left(&base, "a segment larger than memory, overcommitted");
                return;
        }
        assert_bus_error(&error, r, BB_ERROR_NO_SPACE, "not enough memory", "larger than memory");
        ck_assert_msg(strstr(error.message, "SysV segment"), "%s", error.message);
        sd_bus_error_free(&error);
        assert_nothing_left(&base, "a segment larger than memory");
}
END_TEST

/* A client whose connection takes no fds may have sysv buffers: there are
 * none in the replies. */
START_TEST(test_client_without_fd_passing) {
        sd_bus *bus = NULL;
        Snapshot base;
        Reply c;

        note_daemon();
        baseline_after_warmup(&base);
        released_watch();
        ck_assert_int_ge(sd_bus_new(&bus), 0);
        ck_assert_int_ge(sd_bus_set_address(bus, H->address), 0);
        ck_assert_int_ge(sd_bus_set_bus_client(bus, 1), 0);
        ck_assert_int_ge(sd_bus_negotiate_fds(bus, 0), 0);
        ck_assert_int_ge(sd_bus_start(bus), 0);

        c = create_sysv_ok(bus, "no-fds", 4096, false, false);
        ck_assert(segment_exists(c.shmid));
        sd_bus_flush_close_unref(bus);
        /* Its only holder left. */
        ck_assert_msg(released_wait(c.id, scaled_ms(5000)), "not dropped with its holder");
        ck_assert(!segment_exists(c.shmid));
        assert_nothing_left(&base, "no fd passing");
}
END_TEST

/* The daemon exits without a store to keep its state: its segments go. */
START_TEST(test_exit_removes_segments) {
        Reply c;

        note_daemon();
        c = create_sysv_ok(NULL, "at-exit", 4096, true, false);
        ck_assert_int_eq(kill(H->daemon_pid, SIGTERM), 0);
        while (daemon_alive())
                msleep(5);
        ck_assert_msg(!segment_exists(c.shmid), "the daemon left its segment behind at exit");
        ck_assert_uint_eq(daemon_segments(), 0);
        harness_restart_daemon(daemon_args);
}
END_TEST

/* ------------------------------------------------ the fd store keeps --- */

/* A sysv buffer has no fd: what the daemon stores for it is in its state
 * alone. Start the next daemon with what was kept, after checking that. */
static void restart_from_store(FdStore *store) {
        unsigned n_states = fd_store_count(store, "state");

        ck_assert_msg(n_states >= 1, "no state stored");
        ck_assert_msg(n_states == store->n, "stored for a sysv buffer: %u fds that are no state",
                      store->n - n_states);
        fd_store_restart_daemon(store, daemon_args);
        note_daemon();
}

/* Persistent sysv buffers survive a restart (systemctl restart: SIGTERM,
 * and a crash: SIGKILL) with their segment, contents and token; one whose
 * segment was removed while the daemon was down is dropped; a release
 * afterwards removes the segment; nothing is left. */
START_TEST(test_restart_keeps_it) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *token = NULL, *p;
        Reply c, gone, o;
        FdStore store;

        /* The fixture's daemon has no store: one that has. */
        fd_store_start(&store);
        note_daemon();
        fd_store_stop_daemon(&store, SIGTERM);
        fd_store_restart_daemon(&store, daemon_args);
        note_daemon();
        c = create_sysv_ok(NULL, "kept", 8192, true, false);
        gone = create_sysv_ok(NULL, "removed-meanwhile", 4096, true, false);
        ck_assert_int_ge(call_share(NULL, c.path, false, (uid_t) -1, false, 0, &token, &error), 0);
        p = shmat(c.shmid, NULL, 0);
        ck_assert(p != (void *) -1);
        strcpy(p, "kept across restarts");
        ck_assert_int_eq(shmdt(p), 0);

        for (int round = 0; round < 2; round++) {
                fd_store_stop_daemon(&store, round == 0 ? SIGTERM : SIGKILL);
                /* Kept, not removed, by a daemon that exits with a store. */
                ck_assert(segment_exists(c.shmid));
                if (round == 0) {
                        /* Removed while the daemon is down. */
                        ck_assert(segment_exists(gone.shmid));
                        ck_assert_int_eq(shmctl(gone.shmid, IPC_RMID, NULL), 0);
                }
                restart_from_store(&store);
                ck_assert_msg(!list_has(NULL, gone.id), "a buffer whose segment went came back");
                ck_assert_msg(list_has(NULL, c.id), "round %d: buffer %" PRIu64 " lost", round, c.id);
                ck_assert_int_eq(property_i(c.path, BB_PROP_SHM_ID), c.shmid);
                ck_assert_msg(open_token(test_bus(), token, &o, &error) >= 0, "the token: %s", error.message);
                ck_assert_int_eq(o.shmid, c.shmid);
                ck_assert_uint_eq(o.n_fds, 0);
                p = shmat(o.shmid, NULL, SHM_RDONLY);
                ck_assert(p != (void *) -1);
                ck_assert_str_eq(p, "kept across restarts");
                ck_assert_int_eq(shmdt(p), 0);
        }
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), 1);
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), 8192);

        released_watch();
        release_as_root(&c, NULL);
        ck_assert_uint_eq(daemon_segments(), 0);
        free(token);
        fd_store_done(&store);
}
END_TEST

/* As under systemd: the daemon as an unprivileged user. */
static void setup_daemon(void) {
        harness_daemon_user = "daemon";
        n_daemon_pids = 0;
        harness_start(BUS_DBUS_DAEMON, true, daemon_args);
}
static void setup_broker(void) {
        harness_daemon_user = "daemon";
        n_daemon_pids = 0;
        harness_start(BUS_DBUS_BROKER, true, daemon_args);
}

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_owner_attaches_others_cannot);
        tcase_add_test(tc, test_busctl);
        tcase_add_test(tc, test_attachment_keeps_it);
        tcase_add_test(tc, test_holder_killed);
        tcase_add_test(tc, test_quota_counts_sysv);
        tcase_add_test(tc, test_prefault);
        tcase_add_test(tc, test_hostile);
        tcase_add_test(tc, test_client_without_fd_passing);
        tcase_add_test(tc, test_no_space);
        tcase_add_test(tc, test_exit_removes_segments);
        tcase_add_test(tc, test_restart_keeps_it);
}

int main(void) {
        Suite *s = suite_create("sysv buffers");
        int r;

        all_daemons = mmap(NULL, sizeof(AllDaemons), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (all_daemons == MAP_FAILED)
                return EXIT_FAILURE;
        all_daemons->n = 0;
        harness_add_tcase(s, "dbus-daemon", setup_daemon, add_tests);
        harness_add_tcase(s, "dbus-broker", setup_broker, add_tests);
        r = harness_main(s);
        remove_daemon_segments();
        return r;
}
