/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Buffers of kind "posix": a POSIX shared memory object under /dev/shm,
 * made by Create("posix", ...), handed out as an fd and as a name for
 * shm_open(). The daemon runs as an unprivileged user ("daemon"), as under
 * systemd: it owns the file and lets uids in by ACL entries, with no
 * capability. Root's own shm_open() would pass any permission check, so
 * every "who may open the name" case runs the opener as another uid.
 *
 * Cases: create through sd-bus and busctl, attach by name (the owner's
 * second process, another uid by token, read-write and read-only) and by
 * fd, a uid never granted refused; contents match; Release, a killed
 * holder, persistence and the lease (a description opened by name counts);
 * the size guard puts back a holder's ftruncate; quotas count the kind;
 * hostile options; restarts through the fd store keep the object and its
 * name. After every case the daemon is back at its baseline and every name
 * it made is gone from /dev/shm.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

#define K (UINT64_C(1) << 10)
#define M (UINT64_C(1) << 20)
#define SHM_NAME_LEN 43         /* "/bufbroker-" and 32 hex digits */
#define LINGER_MS 300

static const char *const daemon_args[] = { "--max-bytes-per-uid=1M", NULL };

/* ---------------------------------------------------- /dev/shm entries --- */

/* The bufbroker-* entries of /dev/shm that the daemon's uid owns when the
 * case starts: other tests (their daemons run as root) may add theirs
 * meanwhile, this daemon only its own. */
#define SHM_MAX 64
static char shm_base[SHM_MAX][SHM_NAME_LEN + 1];
static unsigned n_shm_base;

static uid_t daemon_uid(void) {
        return system_uid("daemon");
}

/* Calls @fn for each /dev/shm/bufbroker-* entry owned by the daemon's uid
 * ("/bufbroker-...", as shm_open() takes it). */
static unsigned shm_entries(void (*fn)(const char *name, void *userdata), void *userdata) {
        DIR *d = opendir("/dev/shm");
        struct dirent *de;
        unsigned n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d))) {
                char name[300];
                struct stat st;

                if (strncmp(de->d_name, "bufbroker-", 10) != 0)
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_uid != daemon_uid())
                        continue;
                snprintf(name, sizeof(name), "/%s", de->d_name);
                if (fn)
                        fn(name, userdata);
                n++;
        }
        closedir(d);
        return n;
}

static void shm_base_add(const char *name, void *userdata) {
        ck_assert_uint_lt(n_shm_base, SHM_MAX);
        snprintf(shm_base[n_shm_base++], SHM_NAME_LEN + 1, "%s", name);
}

static void shm_baseline(void) {
        n_shm_base = 0;
        (void) shm_entries(shm_base_add, NULL);
}

static void shm_not_new(const char *name, void *userdata) {
        for (unsigned i = 0; i < n_shm_base; i++)
                if (strcmp(shm_base[i], name) == 0)
                        return;
        ck_abort_msg("%s: /dev/shm%s was left behind", (const char *) userdata, name);
}

static bool shm_exists(const char *name) {
        char path[128];
        struct stat st;

        snprintf(path, sizeof(path), "/dev/shm%s", name);
        return stat(path, &st) == 0;
}

/* Poll: @name gone from /dev/shm (the daemon unlinks as it drops). */
static void assert_shm_gone(const char *name, const char *context) {
        for (int waited = 0; shm_exists(name); waited += 10) {
                ck_assert_msg(waited < scaled_ms(3000), "%s: /dev/shm%s is still there", context, name);
                msleep(10);
        }
}

/* The daemon back at *base, and no entry of its own left that was not
 * there when the case started. */
static void assert_clean(const Snapshot *base, const char *context) {
        assert_back_to(base, context);
        (void) shm_entries(shm_not_new, (void *) context);
}

/* ----------------------------------------------------------------- calls --- */

typedef struct Posix {
        Created c;                      /* path, id, our fd (a dup), size */
        char name[SHM_NAME_LEN + 1];    /* shm-name */
        bool prefaulted;
        char kind[16];
} Posix;

static void posix_done(Posix *p) {
        created_done(&p->c);
}
#define _cleanup_posix_ _cleanup_(posix_done)

/* Read Create's reply (o, ah, a{sv}) into *ret. */
static int read_created(sd_bus_message *reply, Posix *ret) {
        const char *path, *key;
        unsigned n_fds = 0;
        int fd, r;

        *ret = (Posix) { .c.fd = -1 };
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "h");
        while (r >= 0 && (r = sd_bus_message_read(reply, "h", &fd)) > 0)
                if (n_fds++ == 0)
                        ret->c.fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *s;
                int b;

                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0 && strcmp(key, BB_INFO_SHM_NAME) == 0) {
                        r = sd_bus_message_read(reply, "v", "s", &s);
                        if (r >= 0)
                                snprintf(ret->name, sizeof(ret->name), "%s", s);
                } else if (r >= 0 && strcmp(key, BB_INFO_KIND) == 0) {
                        r = sd_bus_message_read(reply, "v", "s", &s);
                        if (r >= 0)
                                snprintf(ret->kind, sizeof(ret->kind), "%s", s);
                } else if (r >= 0 && strcmp(key, BB_INFO_SIZE) == 0)
                        r = sd_bus_message_read(reply, "v", "t", &ret->c.size);
                else if (r >= 0 && strcmp(key, BB_INFO_PREFAULTED) == 0) {
                        r = sd_bus_message_read(reply, "v", "b", &b);
                        ret->prefaulted = b;
                } else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return r;
        if (n_fds != 1 || ret->c.fd < 0)
                return -EBADMSG;
        ret->c.path = strdup(path);
        ret->c.id = buffer_id_from_path(path);
        return 0;
}

/* Create(kind, name, size, options) on @bus; the options as the caller
 * built them in @m's a{sv} (see create_call()). */
static sd_bus_message *create_call(sd_bus *bus, const char *kind, uint64_t size) {
        sd_bus_message *m = NULL;

        ck_assert_int_ge(sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, BB_MANAGER_PATH,
                                                        BB_MANAGER_INTERFACE, "Create"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "sst", kind, "posix-test", size), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "{sv}"), 0);
        return m;
}

static int create_finish(sd_bus *bus, sd_bus_message *m, Posix *ret, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        int r;

        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        r = sd_bus_call(bus, m, 0, error, &reply);
        sd_bus_message_unref(m);
        if (r < 0)
                return r;
        r = read_created(reply, ret);
        sd_bus_message_unref(reply);
        return r;
}

/* A posix buffer on @bus (the test's if NULL), asserting success. */
static void create_posix(sd_bus *bus, uint64_t size, bool persistent, bool prefault, Posix *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m;
        int r;

        bus = bus ?: test_bus();
        m = create_call(bus, BB_KIND_POSIX, size);
        if (persistent)
                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_OPT_PERSISTENT, "b", 1), 0);
        if (prefault)
                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_OPT_PREFAULT, "b", 1), 0);
        r = create_finish(bus, m, ret, &error);
        ck_assert_msg(r >= 0, "Create(posix, %" PRIu64 "): %s: %s", size, error.name ?: "",
                      error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        ck_assert_str_eq(ret->kind, BB_KIND_POSIX);
        ck_assert_uint_eq(strlen(ret->name), SHM_NAME_LEN);
}

static uint64_t st_size(int fd) {
        struct stat st;

        ck_assert_int_eq(fstat(fd, &st), 0);
        return (uint64_t) st.st_size;
}

static uint64_t st_allocated(int fd) {
        struct stat st;

        ck_assert_int_eq(fstat(fd, &st), 0);
        return (uint64_t) st.st_blocks * 512;
}

/* Release and close ours; the buffer is then dropped and its name gone. */
static void release_and_wait(Posix *p, const char *context) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t id = p->c.id;

        ck_assert_msg(call_release(NULL, p->c.path, &error) >= 0, "%s: Release: %s", context, error.message);
        posix_done(p);
        ck_assert_msg(released_wait(id, scaled_ms(5000)), "%s: no BufferReleased for %" PRIu64, context, id);
        assert_shm_gone(p->name, context);
}

/* ------------------------------------------------- another process, by name --- */

typedef struct Attach {
        const char *name;
        int flags;                      /* O_RDONLY or O_RDWR */
        const char *expect;             /* what it reads at 0 (NULL: not checked) */
        const char *write;              /* what it writes at 100 (O_RDWR; NULL: nothing) */
        int fd;                         /* >= 0: also read @expect through this inherited fd */
        uint64_t size;                  /* its size, as fstat tells (0: not checked) */
} Attach;

/* In a child: shm_open() the name and check what the Attach says. Exits
 * with 0, the errno shm_open() failed with, or 1 (a check failed). */
static int attach(void *userdata) {
        const Attach *a = userdata;
        char got[64] = "";
        struct stat st;
        int fd;

        fd = shm_open(a->name, a->flags | O_CLOEXEC, 0);
        if (fd < 0)
                return errno;
        child_check(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
        child_check(a->size == 0 || (uint64_t) st.st_size == a->size, "size %" PRIu64 ", want %" PRIu64,
                    (uint64_t) st.st_size, a->size);
        if (a->expect) {
                char *p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);

                child_check(p != MAP_FAILED, "mmap: %s", strerror(errno));
                child_check(memcmp(p, a->expect, strlen(a->expect)) == 0, "by name: not \"%s\"", a->expect);
                munmap(p, st.st_size);
        }
        if (a->fd >= 0 && a->expect) {
                child_check(pread(a->fd, got, strlen(a->expect), 0) == (ssize_t) strlen(a->expect), "pread: %s",
                            strerror(errno));
                child_check(strcmp(got, a->expect) == 0, "by fd: \"%s\", not \"%s\"", got, a->expect);
        }
        if (a->write) {
                char *p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

                child_check(p != MAP_FAILED, "mmap rw: %s", strerror(errno));
                memcpy(p + 100, a->write, strlen(a->write));
                munmap(p, st.st_size);
        }
        if ((a->flags & O_ACCMODE) == O_RDONLY) {
                /* Read-only is read-only: no writing, no resizing. */
                child_check(pwrite(fd, "x", 1, 0) < 0 && errno == EBADF, "pwrite on O_RDONLY");
                child_check(ftruncate(fd, 0) < 0, "ftruncate on O_RDONLY");
                child_check(mmap(NULL, 4096, PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED, "writable mapping");
        }
        close(fd);
        return 0;
}

/* shm_open(@name, @flags) as @uid: 0, or the errno it failed with. */
static int attach_as(uid_t uid, const char *name, int flags, const char *expect, const char *write) {
        Attach a = { .name = name, .flags = flags, .expect = expect, .write = write, .fd = -1 };
        int r = run_as(uid, attach, &a, scaled_ms(10000));

        ck_assert_msg(r != 1 && r < 125, "attach as uid %u: the child failed (%d)", (unsigned) uid, r);
        return r;
}

/* The uid nobody shares anything with: no ACL entry, not the owner. */
static uid_t stranger_uid(void) {
        return system_uid("bin");
}

/* ---------------------------------------------------------------- cases --- */

/* Create through sd-bus: the size rounded up to pages, an fd and a name in
 * info and the properties; the /dev/shm file is the daemon's, mode 0600
 * plus an ACL entry for the owner (root here), sparse. The owner's second
 * process attaches by name and by fd and sees the same memory. */
START_TEST(test_create_attach_by_name_and_fd) {
        _cleanup_posix_ Posix p = {};
        char path[128], *v, got[32] = "";
        struct stat st;
        Snapshot base;
        Attach a;
        void *m;

        baseline_after_warmup(&base);
        released_watch();
        create_posix(NULL, 10000, false, false, &p);
        ck_assert_uint_eq(p.c.size, 12288);
        ck_assert(!p.prefaulted);
        ck_assert_msg(strncmp(p.name, "/bufbroker-", 11) == 0 && strspn(p.name + 11, "0123456789abcdef") == 32,
                      "shm-name %s", p.name);
        v = property_s(p.c.path, BB_PROP_SHM_NAME);
        ck_assert_str_eq(v, p.name);
        free(v);
        v = property_s(p.c.path, BB_PROP_KIND);
        ck_assert_str_eq(v, BB_KIND_POSIX);
        free(v);
        ck_assert_int_eq(property_i(p.c.path, BB_PROP_SHM_ID), -1);
        ck_assert_uint_eq(property_t(p.c.path, BB_PROP_ALLOCATED_BYTES), 0);

        snprintf(path, sizeof(path), "/dev/shm%s", p.name);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_uid, daemon_uid());
        ck_assert_int_eq(st.st_size, 12288);
        /* rw for the owner (its ACL entry, under the mask), nothing for others. */
        ck_assert_uint_eq(st.st_mode & 0007, 0);
        ck_assert_int_gt(getxattr(path, "system.posix_acl_access", NULL, 0), 0);
        ck_assert_uint_eq(st_size(p.c.fd), 12288);

        /* Our fd is the file. */
        {
                struct stat fst;

                ck_assert_int_eq(fstat(p.c.fd, &fst), 0);
                ck_assert_uint_eq(fst.st_ino, st.st_ino);
                ck_assert_int_eq(fcntl(p.c.fd, F_GETFL) & O_ACCMODE, O_RDWR);
        }
        m = mmap(NULL, 12288, PROT_READ | PROT_WRITE, MAP_SHARED, p.c.fd, 0);
        ck_assert_ptr_ne(m, MAP_FAILED);
        memcpy(m, "written by the creator", 22);
        /* Allocated: one page touched. */
        ck_assert_uint_eq(property_t(p.c.path, BB_PROP_ALLOCATED_BYTES), 4096);

        /* A second process of ours: by name, and by the fd it inherited. */
        a = (Attach) { .name = p.name, .flags = O_RDWR, .expect = "written by the creator",
                       .write = "by name", .fd = p.c.fd, .size = 12288 };
        ck_assert_int_eq(run_as(AS_ROOT, attach, &a, scaled_ms(10000)), 0);
        ck_assert_int_eq(memcmp((char *) m + 100, "by name", 7), 0);
        ck_assert_int_eq(pread(p.c.fd, got, 7, 100), 7);
        ck_assert_str_eq(got, "by name");
        munmap(m, 12288);

        /* Nobody else: no token, no entry. */
        ck_assert_int_eq(attach_as(NOBODY_UID, p.name, O_RDONLY, NULL, NULL), EACCES);
        ck_assert_int_eq(attach_as(stranger_uid(), p.name, O_RDONLY, NULL, NULL), EACCES);

        release_and_wait(&p, "released");
        ck_assert_int_eq(attach_as(AS_ROOT, p.name, O_RDONLY, NULL, NULL), ENOENT);
        assert_clean(&base, "create, attach, release");
}
END_TEST

/* The owner is not root: uid 65534 creates, and its second process opens
 * the name by the owner's ACL entry (the daemon cannot chown the file to
 * it). A uid that was never granted cannot, by name, read-only or not. */
typedef struct Creator {
        const char *address;
        int ready_fd;                   /* writes the name, then "\n" */
        int go_fd;                      /* a byte: release and exit */
        bool persistent;
        bool map;                       /* keep a mapping of it too */
} Creator;

static int creator(void *userdata) {
        const Creator *a = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const char *path = NULL, *key, *name = NULL;
        sd_bus *bus = NULL;
        char line[256], c;
        int fd = -1, r;
        void *p;

        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, a->address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        r = sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create");
        if (r >= 0)
                r = sd_bus_message_append(m, "ssta{sv}", BB_KIND_POSIX, "creator", UINT64_C(8192), 1,
                                          BB_OPT_PERSISTENT, "b", a->persistent);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, &error, &reply);
        sd_bus_message_unref(m);
        child_check(r >= 0, "Create: %s", error.message ?: strerror(-r));
        r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0)
                r = sd_bus_message_read(reply, "ah", 1, &fd);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0 && strcmp(key, BB_INFO_SHM_NAME) == 0)
                        r = sd_bus_message_read(reply, "v", "s", &name);
                else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        child_check(r >= 0 && name && fd >= 0, "reply: %s", strerror(-r));
        /* Our own description: the fd is the lease (without it, the
         * buffer would go when another process's by-name fd closes). */
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        child_check(fd >= 0, "dup: %s", strerror(errno));
        p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        child_check(p != MAP_FAILED, "mmap: %s", strerror(errno));
        memcpy(p, "nobody's", 8);
        if (!a->map)
                munmap(p, 8192);
        snprintf(line, sizeof(line), "%s %s\n", name, path);
        child_check(write(a->ready_fd, line, strlen(line)) == (ssize_t) strlen(line), "ready: %s", strerror(errno));
        if (a->go_fd < 0)
                for (;;)
                        pause();
        child_check(read(a->go_fd, &c, 1) == 1, "go: %s", strerror(errno));
        r = sd_bus_call_method(bus, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release", &error, NULL, "");
        child_check(r >= 0, "Release: %s", error.message);
        sd_bus_message_unref(reply);    /* path points into it */
        sd_bus_flush_close_unref(bus);
        return 0;
}

typedef struct CreatorProc {
        pid_t pid;
        int go;                         /* write end, -1: none (killed instead) */
        char name[SHM_NAME_LEN + 1];
        uint64_t id;
} CreatorProc;

static void creator_start(uid_t uid, bool persistent, bool map, bool wait_for_go, CreatorProc *ret) {
        Creator a = { .address = H->address, .persistent = persistent, .map = map, .go_fd = -1 };
        int ready[2], go[2] = { -1, -1 };
        char line[256] = "", path[200] = "";
        size_t have = 0;

        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        if (wait_for_go) {
                ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
                a.go_fd = go[0];
        }
        a.ready_fd = ready[1];
        ret->pid = fork_as(uid, creator, &a);
        close(ready[1]);
        safe_close(go[0]);
        ret->go = go[1];
        while (have < sizeof(line) - 1 && !memchr(line, '\n', have)) {
                ssize_t n = read(ready[0], line + have, sizeof(line) - 1 - have);

                ck_assert_msg(n > 0, "the creator died before it created");
                have += (size_t) n;
        }
        close(ready[0]);
        ck_assert_int_eq(sscanf(line, "%43s %199s", ret->name, path), 2);
        ret->id = buffer_id_from_path(path);
}

static void creator_go(CreatorProc *p) {
        ck_assert_int_eq(write(p->go, "g", 1), 1);
        ck_assert_int_eq(wait_child(p->pid, scaled_ms(10000)), 0);
        p->go = safe_close(p->go);
}

static void creator_kill(CreatorProc *p) {
        ck_assert_int_eq(kill(p->pid, SIGKILL), 0);
        ck_assert_int_eq(wait_child(p->pid, scaled_ms(5000)), 128 + SIGKILL);
        p->go = safe_close(p->go);
}

START_TEST(test_unprivileged_owner_by_name) {
        CreatorProc cp;
        Snapshot base;

        baseline_after_warmup(&base);
        released_watch();
        creator_start(NOBODY_UID, false, false, true, &cp);

        /* The owner's other process, by the ACL (the file is the daemon's). */
        ck_assert_int_eq(attach_as(NOBODY_UID, cp.name, O_RDWR, "nobody's", "again"), 0);
        ck_assert_int_eq(attach_as(NOBODY_UID, cp.name, O_RDONLY, "nobody's", NULL), 0);
        /* Neither root's buffer nor anyone's: no entry, no access. */
        ck_assert_int_eq(attach_as(stranger_uid(), cp.name, O_RDONLY, NULL, NULL), EACCES);
        ck_assert_int_eq(attach_as(stranger_uid(), cp.name, O_RDWR, NULL, NULL), EACCES);
        /* The daemon's group, by the GROUP_OBJ entry: nothing either. */
        ck_assert_int_eq(attach_as(system_uid("sys"), cp.name, O_RDONLY, NULL, NULL), EACCES);

        creator_go(&cp);
        ck_assert_msg(released_wait(cp.id, scaled_ms(5000)), "no BufferReleased");
        assert_shm_gone(cp.name, "nobody released");
        assert_clean(&base, "an unprivileged owner");
}
END_TEST

/* Another uid (65534) opens by token, then by name: read-write with a
 * read-write token, read-only with a read-only one (O_RDWR refused, by
 * name as by the fd it got). Contents match every way. */
typedef struct ByToken {
        const char *address;
        const char *token;
        bool read_only;
        const char *name;
        const char *expect;             /* at 0 */
} ByToken;

static int open_token_then_name(void *userdata) {
        const ByToken *t = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path, *key, *name = NULL;
        sd_bus *bus = NULL;
        int fd = -1, ro = -1, by_name, r;
        char got[32] = "";
        void *p;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        /* Before Open: the name is not ours. */
        child_check(shm_open(t->name, O_RDONLY | O_CLOEXEC, 0) < 0 && errno == EACCES, "opened before the token: %s",
                    strerror(errno));
        r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open", &error, &reply,
                               "sa{sv}", t->token, 0);
        child_check(r >= 0, "Open: %s", error.message);
        r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0)
                r = sd_bus_message_read(reply, "ah", 1, &fd);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0 && strcmp(key, BB_INFO_SHM_NAME) == 0)
                        r = sd_bus_message_read(reply, "v", "s", &name);
                else if (r >= 0 && strcmp(key, BB_INFO_READ_ONLY) == 0)
                        r = sd_bus_message_read(reply, "v", "b", &ro);
                else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        child_check(r >= 0 && fd >= 0, "reply: %s", strerror(-r));
        child_check(name && strcmp(name, t->name) == 0, "Open's shm-name %s, Create's %s", name ?: "(none)", t->name);
        child_check(ro == t->read_only, "read-only %d", ro);
        child_check((fcntl(fd, F_GETFL) & O_ACCMODE) == (t->read_only ? O_RDONLY : O_RDWR), "fd mode");
        child_check(pread(fd, got, strlen(t->expect), 0) == (ssize_t) strlen(t->expect) && strcmp(got, t->expect) == 0,
                    "by fd: \"%s\"", got);

        by_name = shm_open(t->name, O_RDWR | O_CLOEXEC, 0);
        if (t->read_only) {
                child_check(by_name < 0 && errno == EACCES, "O_RDWR by name with a read-only token: %s",
                            by_name >= 0 ? "opened" : strerror(errno));
                by_name = shm_open(t->name, O_RDONLY | O_CLOEXEC, 0);
                child_check(by_name >= 0, "O_RDONLY by name: %s", strerror(errno));
                child_check(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, by_name, 0) == MAP_FAILED,
                            "a writable mapping of a read-only share");
                p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, by_name, 0);
                child_check(p != MAP_FAILED, "mmap: %s", strerror(errno));
                child_check(memcmp(p, t->expect, strlen(t->expect)) == 0, "by name: not the creator's data");
        } else {
                child_check(by_name >= 0, "O_RDWR by name: %s", strerror(errno));
                p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, by_name, 0);
                child_check(p != MAP_FAILED, "mmap: %s", strerror(errno));
                child_check(memcmp(p, t->expect, strlen(t->expect)) == 0, "by name: not the creator's data");
                memcpy((char *) p + 100, "by nobody", 9);
        }
        munmap(p, 4096);
        close(by_name);
        sd_bus_message_unref(reply);    /* and the fd it carried */
        sd_bus_flush_close_unref(bus);
        return 0;
}

START_TEST(test_other_uid_by_token_then_name) {
        _cleanup_posix_ Posix rw = {}, ro = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *t_rw = NULL, *t_ro = NULL, got[16] = "";
        ByToken bt;
        Snapshot base;

        baseline_after_warmup(&base);
        released_watch();
        create_posix(NULL, 4096, false, false, &rw);
        create_posix(NULL, 4096, false, false, &ro);
        ck_assert_int_eq(pwrite(rw.c.fd, "by root", 7, 0), 7);
        ck_assert_int_eq(pwrite(ro.c.fd, "by root", 7, 0), 7);
        ck_assert_msg(call_share(NULL, rw.c.path, false, NOBODY_UID, false, 0, &t_rw, &error) >= 0, "Share: %s",
                      error.message);
        ck_assert_msg(call_share(NULL, ro.c.path, true, NOBODY_UID, false, 0, &t_ro, &error) >= 0, "Share: %s",
                      error.message);

        bt = (ByToken) { .address = H->address, .token = t_rw, .read_only = false, .name = rw.name,
                         .expect = "by root" };
        ck_assert_int_eq(run_as(NOBODY_UID, open_token_then_name, &bt, scaled_ms(10000)), 0);
        ck_assert_int_eq(pread(rw.c.fd, got, 9, 100), 9);
        ck_assert_str_eq(got, "by nobody");
        bt = (ByToken) { .address = H->address, .token = t_ro, .read_only = true, .name = ro.name,
                         .expect = "by root" };
        ck_assert_int_eq(run_as(NOBODY_UID, open_token_then_name, &bt, scaled_ms(10000)), 0);

        /* Granted to 65534 only: the stranger still gets nothing. */
        ck_assert_int_eq(attach_as(stranger_uid(), rw.name, O_RDONLY, NULL, NULL), EACCES);
        ck_assert_int_eq(attach_as(stranger_uid(), ro.name, O_RDONLY, NULL, NULL), EACCES);
        /* The grant outlives the opener's connection, as an fd would. */
        ck_assert_int_eq(attach_as(NOBODY_UID, ro.name, O_RDONLY, "by root", NULL), 0);
        ck_assert_int_eq(attach_as(NOBODY_UID, ro.name, O_RDWR, NULL, NULL), EACCES);

        release_and_wait(&rw, "read-write share released");
        release_and_wait(&ro, "read-only share released");
        free(t_rw);
        free(t_ro);
        assert_clean(&base, "shared by token");
}
END_TEST

/* A read-write grantee hard-links the file elsewhere in /dev/shm (the ACL
 * lets it: protected_hardlinks asks only for read and write access). That
 * link must not keep the memory past the buffer, uncharged: the daemon
 * empties the file when the buffer goes. */
typedef struct Linker {
        const char *token;
        const char *name;
        const char *link;
} Linker;

static int open_and_link(void *userdata) {
        const Linker *l = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        char from[PATH_MAX];
        int r;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open", &error, &reply,
                               "sa{sv}", l->token, 0);
        child_check(r >= 0, "Open: %s", error.message);
        snprintf(from, sizeof(from), "/dev/shm%s", l->name);
        child_check(link(from, l->link) == 0, "link %s %s: %s", from, l->link, strerror(errno));
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return 0;
}

START_TEST(test_hard_link_is_emptied) {
        _cleanup_posix_ Posix p = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *token = NULL, link_path[64];
        struct stat st;
        Snapshot base;
        Linker l;

        baseline_after_warmup(&base);
        released_watch();
        create_posix(NULL, 1 << 20, false, true, &p);
        ck_assert_msg(call_share(NULL, p.c.path, false, NOBODY_UID, false, 0, &token, &error) >= 0, "Share: %s",
                      error.message);
        snprintf(link_path, sizeof(link_path), "/dev/shm/bb-test-link-%d", (int) getpid());
        l = (Linker) { .token = token, .name = p.name, .link = link_path };
        ck_assert_int_eq(run_as(NOBODY_UID, open_and_link, &l, scaled_ms(10000)), 0);
        ck_assert_int_eq(stat(link_path, &st), 0);
        ck_assert_uint_ge((uint64_t) st.st_blocks * 512, 1 << 20);      /* prefaulted: the memory is there */

        release_and_wait(&p, "linked buffer released");
        ck_assert_int_eq(stat(link_path, &st), 0);
        ck_assert_msg(st.st_size == 0 && st.st_blocks == 0, "the link keeps %jd bytes (%jd blocks) past the buffer",
                      (intmax_t) st.st_size, (intmax_t) st.st_blocks);
        ck_assert_int_eq(unlink(link_path), 0);
        free(token);
        assert_clean(&base, "a hard link made by a holder");
}
END_TEST

/* busctl, as uid 65534: Create with a{sv}, the shm-name in its output, the
 * name opened by another process of that uid, Release. */
START_TEST(test_busctl) {
        _cleanup_run_result_ RunResult cr = {}, rel = {};
        char name[SHM_NAME_LEN + 1] = "", path[128] = "";
        const char *s;
        Snapshot base;

        baseline_after_warmup(&base);
        released_watch();
        busctl(&cr, NOBODY_UID, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", "ssta{sv}",
               BB_KIND_POSIX, "busctl", "5000", "1", BB_OPT_PERSISTENT, "b", "true");
        ck_assert_run_status(&cr, 0);
        /* oaha{sv} "/org/bufbroker/Broker1/buffer/N" 1 FD ... "shm-name" s "/bufbroker-..." */
        ck_assert_msg(sscanf(cr.out, "oaha{sv} \"%127[^\"]\"", path) == 1, "busctl: %s", cr.out);
        s = strstr(cr.out, "\"" BB_INFO_SHM_NAME "\" s \"");
        ck_assert_msg(s, "no shm-name in: %s", cr.out);
        snprintf(name, sizeof(name), "%s", s + strlen("\"" BB_INFO_SHM_NAME "\" s \""));
        ck_assert_msg(strstr(cr.out, "\"" BB_INFO_SIZE "\" t 8192"), "size: %s", cr.out);
        ck_assert_msg(strstr(cr.out, "\"" BB_INFO_KIND "\" s \"" BB_KIND_POSIX "\""), "kind: %s", cr.out);

        /* busctl has exited (its fd with it): persistent, it stays. */
        ck_assert(shm_exists(name));
        ck_assert_int_eq(attach_as(NOBODY_UID, name, O_RDWR, NULL, "from busctl's owner"), 0);
        ck_assert_int_eq(attach_as(stranger_uid(), name, O_RDONLY, NULL, NULL), EACCES);

        busctl(&rel, NOBODY_UID, "call", BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release");
        ck_assert_run_status(&rel, 0);
        ck_assert_msg(released_wait(buffer_id_from_path(path), scaled_ms(5000)), "no BufferReleased");
        assert_shm_gone(name, "busctl release");
        assert_clean(&base, "busctl");
}
END_TEST

/* Release while a description opened by name is alive: the buffer stays
 * (the lease counts it, as an fd handed out), and goes with it. */
START_TEST(test_lease_counts_a_description_by_name) {
        _cleanup_posix_ Posix p = {};
        Snapshot base;
        uint64_t id;
        int by_name;
        void *m;

        baseline_after_warmup(&base);
        released_watch();
        create_posix(NULL, 4096, false, false, &p);
        id = p.c.id;
        by_name = shm_open(p.name, O_RDWR | O_CLOEXEC, 0);
        ck_assert_int_ge(by_name, 0);
        m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, by_name, 0);
        ck_assert_ptr_ne(m, MAP_FAILED);
        close(by_name);

        ck_assert_int_ge(call_release(NULL, p.c.path, NULL), 0);
        posix_done(&p);
        msleep((unsigned) scaled_ms(LINGER_MS));
        ck_assert_msg(!released_seen(id), "released while a mapping by name is alive");
        ck_assert(list_has(NULL, id));
        ck_assert(shm_exists(p.name));

        munmap(m, 4096);
        ck_assert_msg(released_wait(id, scaled_ms(5000)), "not released when the mapping went");
        assert_shm_gone(p.name, "lease ended");
        assert_clean(&base, "lease by name");
}
END_TEST

/* A holder's connection dies (SIGKILL): its buffer goes, and its name,
 * unless it is persistent (then its owner releases it later), or a
 * mapping elsewhere keeps it (the lease). */
START_TEST(test_holder_killed) {
        CreatorProc cp;
        Snapshot base;
        int fd;
        void *m;

        baseline_after_warmup(&base);
        released_watch();

        creator_start(NOBODY_UID, false, true, false, &cp);
        ck_assert(shm_exists(cp.name));
        creator_kill(&cp);
        ck_assert_msg(released_wait(cp.id, scaled_ms(5000)), "the killed holder's buffer stayed");
        assert_shm_gone(cp.name, "holder killed");

        creator_start(NOBODY_UID, true, true, false, &cp);
        creator_kill(&cp);
        msleep((unsigned) scaled_ms(LINGER_MS));
        ck_assert_msg(!released_seen(cp.id), "a persistent buffer went with its holder");
        ck_assert(shm_exists(cp.name));
        ck_assert_int_eq(attach_as(NOBODY_UID, cp.name, O_RDONLY, "nobody's", NULL), 0);
        {
                _cleanup_run_result_ RunResult rel = {};
                char *path = buffer_path(cp.id);

                busctl(&rel, NOBODY_UID, "call", BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release");
                ck_assert_run_status(&rel, 0);
                free(path);
        }
        ck_assert_msg(released_wait(cp.id, scaled_ms(5000)), "no BufferReleased");
        assert_shm_gone(cp.name, "persistent, released by its owner");

        /* Our mapping (by name) outlives the holder: the buffer too. */
        creator_start(NOBODY_UID, false, false, false, &cp);
        fd = shm_open(cp.name, O_RDWR | O_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(m, MAP_FAILED);
        close(fd);
        creator_kill(&cp);
        msleep((unsigned) scaled_ms(LINGER_MS));
        ck_assert_msg(!released_seen(cp.id), "released while mapped");
        ck_assert(shm_exists(cp.name));
        ck_assert_int_eq(memcmp(m, "nobody's", 8), 0);
        munmap(m, 8192);
        ck_assert_msg(released_wait(cp.id, scaled_ms(5000)), "not released when the mapping went");
        assert_shm_gone(cp.name, "mapping gone");
        assert_clean(&base, "holders killed");
}
END_TEST

/* Poke the daemon (any call makes it read its inotify queue first) until
 * @fd's file is @size bytes again. */
static bool size_becomes(int fd, uint64_t size, uint64_t max_allocated) {
        for (int waited = 0; waited < scaled_ms(3000); waited += 10) {
                (void) stats_get(BB_STAT_BUFFERS);
                if (st_size(fd) == size && st_allocated(fd) <= max_allocated)
                        return true;
                msleep(10);
        }
        return false;
}

/* A posix object cannot be sealed: a holder with write access may resize
 * it. The daemon puts the size back, so that what it charges is what there
 * is, and frees what was allocated beyond it. */
START_TEST(test_size_guard) {
        _cleanup_posix_ Posix p = {};
        Snapshot base;
        char got[8] = "";
        int by_name;

        baseline_after_warmup(&base);
        released_watch();
        create_posix(NULL, 8192, false, false, &p);
        ck_assert_int_eq(pwrite(p.c.fd, "keep", 4, 0), 4);

        ck_assert_int_eq(ftruncate(p.c.fd, 64 * K), 0);
        ck_assert_msg(size_becomes(p.c.fd, 8192, 8192), "grown by ftruncate: %" PRIu64 " bytes", st_size(p.c.fd));
        ck_assert_int_eq(ftruncate(p.c.fd, 0), 0);
        ck_assert_msg(size_becomes(p.c.fd, 8192, 8192), "shrunk by ftruncate: %" PRIu64 " bytes", st_size(p.c.fd));
        /* Truncated is truncated: the data went (the size comes back, zeroed). */
        ck_assert_int_eq(pread(p.c.fd, got, 4, 0), 4);
        ck_assert_int_eq(memcmp(got, "\0\0\0\0", 4), 0);

        /* Writing past the end grows it too. */
        ck_assert_int_eq(pwrite(p.c.fd, "beyond", 6, 100 * K), 6);
        ck_assert_msg(size_becomes(p.c.fd, 8192, 8192), "grown by a write: %" PRIu64 " bytes", st_size(p.c.fd));

        /* Pages allocated beyond the end (the size unchanged) are freed. */
        ck_assert_int_eq(fallocate(p.c.fd, FALLOC_FL_KEEP_SIZE, 0, (off_t) M), 0);
        ck_assert_uint_eq(st_size(p.c.fd), 8192);
        ck_assert_msg(size_becomes(p.c.fd, 8192, 8192), "allocated beyond its end: %" PRIu64 " bytes",
                      st_allocated(p.c.fd));

        /* By name, as another process would. */
        by_name = shm_open(p.name, O_RDWR | O_CLOEXEC, 0);
        ck_assert_int_ge(by_name, 0);
        ck_assert_int_eq(ftruncate(by_name, 3 * 4096), 0);
        ck_assert_msg(size_becomes(p.c.fd, 8192, 8192), "grown by name: %" PRIu64 " bytes", st_size(p.c.fd));
        close(by_name);

        /* What is charged never changed. */
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + 8192);
        release_and_wait(&p, "guarded buffer released");
        assert_clean(&base, "size guard");
}
END_TEST

/* Quotas count posix buffers as any: bytes rounded up to pages, shared
 * with memfds; a refused Create leaves nothing in /dev/shm. */
START_TEST(test_quota_counts_posix) {
        _cleanup_posix_ Posix a = {}, b = {};
        _cleanup_created_ Created mem = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        unsigned before;
        Posix c = {};
        Snapshot base;
        int r;

        baseline_after_warmup(&base);
        released_watch();
        before = shm_entries(NULL, NULL);
        create_posix(NULL, 256 * K + 1, false, false, &a);     /* 260K charged */
        ck_assert_uint_eq(a.c.size, 260 * K);
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + 260 * K);
        create_memfd(NULL, "memfd", 500 * K, false, 0, &mem);
        create_posix(NULL, 260 * K, false, false, &b);
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + 1020 * K);
        ck_assert_uint_eq(shm_entries(NULL, NULL), before + 2);

        /* 1M per uid: 4K are left (the warm-up's own buffer is gone). */
        r = create_finish(test_bus(), create_call(test_bus(), BB_KIND_POSIX, 4 * K + 1), &c, &error);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, NULL, "posix over the quota");
        sd_bus_error_free(&error);
        ck_assert_uint_eq(shm_entries(NULL, NULL), before + 2);
        /* Prefault too. */
        {
                sd_bus_message *m = create_call(test_bus(), BB_KIND_POSIX, 8 * K);

                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_OPT_PREFAULT, "b", 1), 0);
                r = create_finish(test_bus(), m, &c, &error);
                assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, NULL, "prefaulted posix over the quota");
                sd_bus_error_free(&error);
        }
        ck_assert_uint_eq(shm_entries(NULL, NULL), before + 2);

        release_and_wait(&a, "a");
        release_and_wait(&b, "b");
        ck_assert_int_ge(call_release(NULL, mem.path, NULL), 0);
        created_done(&mem);
        assert_clean(&base, "quota");
}
END_TEST

/* prefault: every page allocated before the reply (AllocatedBytes, the
 * file's blocks), and said so. */
START_TEST(test_prefault) {
        _cleanup_posix_ Posix p = {};
        Snapshot base;
        int b = 0;

        baseline_after_warmup(&base);
        released_watch();
        create_posix(NULL, 200 * K, false, true, &p);
        ck_assert(p.prefaulted);
        ck_assert_uint_ge(st_allocated(p.c.fd), 200 * K);
        ck_assert_uint_eq(property_t(p.c.path, BB_PROP_ALLOCATED_BYTES), 200 * K);
        ck_assert_int_ge(sd_bus_get_property_trivial(test_bus(), BB_BUS_NAME, p.c.path, BB_BUFFER_INTERFACE,
                                                     BB_PROP_PREFAULTED, NULL, 'b', &b), 0);
        ck_assert(b);
        release_and_wait(&p, "prefaulted");
        assert_clean(&base, "prefault");
}
END_TEST

/* A time to live ends a posix buffer as any other, persistent or not:
 * BufferReleased says "expired", and the name is unlinked. */
START_TEST(test_ttl_expires) {
        _cleanup_posix_ Posix p = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m;
        Snapshot base;
        int r;

        baseline_after_warmup(&base);
        released_watch();
        m = create_call(test_bus(), BB_KIND_POSIX, 4096);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_OPT_PERSISTENT, "b", 1), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_OPT_TTL_USEC, "t", UINT64_C(200000)), 0);
        r = create_finish(test_bus(), m, &p, &error);
        ck_assert_msg(r >= 0, "Create with a ttl: %s", error.message);
        posix_done(&p);                 /* no description keeps it past its ttl either */
        ck_assert(shm_exists(p.name));
        ck_assert_msg(released_wait(p.c.id, scaled_ms(5000)), "not expired");
        ck_assert_str_eq(released_reason(p.c.id), BB_REASON_EXPIRED);
        assert_shm_gone(p.name, "expired");
        assert_clean(&base, "ttl");
}
END_TEST

/* More than /dev/shm holds, with limits that allow it: prefault says
 * NoSpace and leaves nothing; without prefault it is a sparse file. */
START_TEST(test_prefault_no_space) {
        _cleanup_posix_ Posix sparse = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char size_arg[64], bytes_arg[64];
        struct statvfs vfs;
        unsigned before;
        uint64_t size;
        Snapshot base;
        Posix p;
        int r;

        ck_assert_int_eq(statvfs("/dev/shm", &vfs), 0);
        size = ((uint64_t) vfs.f_blocks * vfs.f_frsize + M) / (4 * K) * (4 * K);
        snprintf(size_arg, sizeof(size_arg), "--max-buffer-size=%" PRIu64, 2 * size);
        snprintf(bytes_arg, sizeof(bytes_arg), "--max-bytes-per-uid=%" PRIu64, 2 * size);
        {
                const char *const args[] = { size_arg, bytes_arg, NULL };

                ck_assert_int_eq(kill(H->daemon_pid, SIGTERM), 0);
                while (daemon_alive())
                        msleep(5);
                harness_restart_daemon(args);
        }
        baseline_after_warmup(&base);
        released_watch();
        before = shm_entries(NULL, NULL);

        {
                sd_bus_message *m = create_call(test_bus(), BB_KIND_POSIX, size);

                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_OPT_PREFAULT, "b", 1), 0);
                r = create_finish(test_bus(), m, &p, &error);
                assert_bus_error(&error, r, BB_ERROR_NO_SPACE, "/dev/shm", "prefault beyond /dev/shm");
                sd_bus_error_free(&error);
        }
        ck_assert_uint_eq(shm_entries(NULL, NULL), before);
        assert_back_to(&base, "no space");

        create_posix(NULL, size, false, false, &sparse);
        ck_assert_uint_eq(st_allocated(sparse.c.fd), 0);
        release_and_wait(&sparse, "sparse, larger than /dev/shm");
        assert_clean(&base, "prefault without space");
}
END_TEST

/* Create("posix") with what it must refuse: each a clear error naming
 * what was wrong, and nothing left (no buffer, no fd, no /dev/shm entry). */
START_TEST(test_hostile_options) {
        static const struct {
                const char *what, *key, *type, *error, *needle;
                union {
                        int b;
                        uint64_t t;
                        const char *s;
                        uint32_t u;
                } v;
        } bad[] = {
                { "hugetlb on posix", BB_OPT_HUGETLB, "b", BB_ERROR_NOT_SUPPORTED, BB_KIND_POSIX, { .b = 1 } },
                { "prefault as a string", BB_OPT_PREFAULT, "s", BB_ERROR_INVALID_ARGS, BB_OPT_PREFAULT,
                  { .s = "yes" } },
                { "prefault as a number", BB_OPT_PREFAULT, "u", BB_ERROR_INVALID_ARGS, BB_OPT_PREFAULT, { .u = 1 } },
                { "hugetlb as a number", BB_OPT_HUGETLB, "t", BB_ERROR_INVALID_ARGS, BB_OPT_HUGETLB, { .t = 1 } },
                { "persistent as a string", BB_OPT_PERSISTENT, "s", BB_ERROR_INVALID_ARGS, BB_OPT_PERSISTENT,
                  { .s = "true" } },
                { "ttl-usec as a boolean", BB_OPT_TTL_USEC, "b", BB_ERROR_INVALID_ARGS, BB_OPT_TTL_USEC, { .b = 1 } },
                { "shm-name as an option", BB_INFO_SHM_NAME, "s", BB_ERROR_INVALID_ARGS, BB_INFO_SHM_NAME,
                  { .s = "/bufbroker-0123456789abcdef0123456789abcdef" } },
        };
        static const struct {
                const char *what, *kind;
                uint64_t size;
                const char *error, *needle;
        } bad_args[] = {
                { "size 0", BB_KIND_POSIX, 0, BB_ERROR_INVALID_ARGS, "0" },
                { "size 2^64-1", BB_KIND_POSIX, UINT64_MAX, BB_ERROR_QUOTA_EXCEEDED, NULL },
                { "size 2^63", BB_KIND_POSIX, UINT64_C(1) << 63, BB_ERROR_QUOTA_EXCEEDED, NULL },
                { "kind POSIX", "POSIX", 4096, BB_ERROR_INVALID_ARGS, "POSIX" },
                { "kind posix/", "posix/", 4096, BB_ERROR_INVALID_ARGS, "posix/" },
                { "kind empty", "", 4096, BB_ERROR_INVALID_ARGS, NULL },
        };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        unsigned before;
        Snapshot base;
        Posix p;
        int r;

        baseline_after_warmup(&base);
        before = shm_entries(NULL, NULL);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                sd_bus_message *m = create_call(test_bus(), BB_KIND_POSIX, 4096);

                ck_assert_int_ge(sd_bus_message_open_container(m, 'e', "sv"), 0);
                ck_assert_int_ge(sd_bus_message_append(m, "s", bad[i].key), 0);
                switch (bad[i].type[0]) {
                case 'b':
                        ck_assert_int_ge(sd_bus_message_append(m, "v", "b", bad[i].v.b), 0);
                        break;
                case 's':
                        ck_assert_int_ge(sd_bus_message_append(m, "v", "s", bad[i].v.s), 0);
                        break;
                case 't':
                        ck_assert_int_ge(sd_bus_message_append(m, "v", "t", bad[i].v.t), 0);
                        break;
                case 'u':
                        ck_assert_int_ge(sd_bus_message_append(m, "v", "u", bad[i].v.u), 0);
                        break;
                }
                ck_assert_int_ge(sd_bus_message_close_container(m), 0);
                r = create_finish(test_bus(), m, &p, &error);
                assert_bus_error(&error, r, bad[i].error, bad[i].needle, bad[i].what);
                sd_bus_error_free(&error);
                ck_assert_msg(shm_entries(NULL, NULL) == before, "%s: left an entry in /dev/shm", bad[i].what);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_args); i++) {
                r = create_finish(test_bus(), create_call(test_bus(), bad_args[i].kind, bad_args[i].size), &p,
                                  &error);
                assert_bus_error(&error, r, bad_args[i].error, bad_args[i].needle, bad_args[i].what);
                sd_bus_error_free(&error);
                ck_assert_msg(shm_entries(NULL, NULL) == before, "%s: left an entry in /dev/shm", bad_args[i].what);
        }
        /* hugetlb false is no request for huge pages: fine. */
        {
                sd_bus_message *m = create_call(test_bus(), BB_KIND_POSIX, 4096);
                _cleanup_posix_ Posix ok = {};

                released_watch();
                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", BB_OPT_HUGETLB, "b", 0), 0);
                r = create_finish(test_bus(), m, &ok, &error);
                ck_assert_msg(r >= 0, "hugetlb false: %s", error.message);
                release_and_wait(&ok, "hugetlb false");
        }
        /* Freeze needs seals: a posix object has none. */
        {
                _cleanup_posix_ Posix fz = {};

                create_posix(NULL, 4096, false, false, &fz);
                r = call_freeze(NULL, fz.c.path, &error);
                assert_bus_error(&error, r, BB_ERROR_NOT_SUPPORTED, BB_KIND_POSIX, "Freeze of a posix buffer");
                sd_bus_error_free(&error);
                release_and_wait(&fz, "not frozen");
        }
        assert_clean(&base, "hostile options");
}
END_TEST

/* ------------------------------------------------------------ restarts --- */

/* A persistent posix buffer and its token come back after a restart (a
 * SIGKILL, then a SIGTERM: the daemon that exits must not unlink what the
 * store keeps), with its name, its contents and its ACL; one whose holder
 * left meanwhile is dropped, and its name unlinked; a release after the
 * restart unlinks the kept one. */
START_TEST(test_restart_keeps_the_name) {
        _cleanup_posix_ Posix kept = {};
        char *token = NULL, *v, got[32] = "";
        sd_bus_error error = SD_BUS_ERROR_NULL;
        CreatorProc cp;
        FdStore store;

        /* The fixture's daemon has no store: one that has. */
        fd_store_start(&store);
        fd_store_stop_daemon(&store, SIGTERM);
        fd_store_restart_daemon(&store, daemon_args);
        create_posix(NULL, 4096, true, false, &kept);
        ck_assert_int_eq(pwrite(kept.c.fd, "across restarts", 15, 0), 15);
        ck_assert_int_ge(call_share(NULL, kept.c.path, false, NOBODY_UID, false, 0, &token, &error), 0);
        /* Held by a process that is gone when the next daemon starts. */
        creator_start(NOBODY_UID, false, false, true, &cp);

        for (int round = 0; round < 2; round++) {
                fd_store_stop_daemon(&store, round == 0 ? SIGKILL : SIGTERM);
                if (round == 0) {
                        /* The holder leaves while no daemon runs. */
                        ck_assert_int_eq(kill(cp.pid, SIGKILL), 0);
                        ck_assert_int_eq(wait_child(cp.pid, scaled_ms(5000)), 128 + SIGKILL);
                        cp.go = safe_close(cp.go);
                        ck_assert(shm_exists(cp.name));
                }
                fd_store_restart_daemon(&store, daemon_args);
                released_watch();

                ck_assert_msg(list_has(NULL, kept.c.id), "round %d: the kept buffer is lost", round);
                v = property_s(kept.c.path, BB_PROP_SHM_NAME);
                ck_assert_str_eq(v, kept.name);
                free(v);
                ck_assert_msg(shm_exists(kept.name), "round %d: %s unlinked by a restart", round, kept.name);
                ck_assert_int_eq(attach_as(NOBODY_UID, kept.name, O_RDONLY, NULL, NULL), EACCES);
                if (round == 0) {
                        ck_assert_msg(!list_has(NULL, cp.id), "the gone holder's buffer came back");
                        assert_shm_gone(cp.name, "holder gone across the restart");
                }
        }

        /* A restored buffer's size is guarded too. */
        ck_assert_int_eq(ftruncate(kept.c.fd, 5 * 4096), 0);
        ck_assert_msg(size_becomes(kept.c.fd, 4096, 4096), "restored, grown: %" PRIu64 " bytes", st_size(kept.c.fd));

        /* Its token, after two restarts: Open grants 65534 as before. */
        {
                ByToken bt = { .address = H->address, .token = token, .name = kept.name,
                               .expect = "across restarts" };

                ck_assert_int_eq(run_as(NOBODY_UID, open_token_then_name, &bt, scaled_ms(10000)), 0);
        }
        ck_assert_int_eq(pread(kept.c.fd, got, 9, 100), 9);
        ck_assert_str_eq(got, "by nobody");

        /* Released after the restart: unlinked. */
        release_and_wait(&kept, "released after restarts");
        free(token);
        fd_store_done(&store);
}
END_TEST

/* A daemon that exits with no store to keep its state unlinks every name
 * it made: nothing outlives it in /dev/shm. */
START_TEST(test_exit_without_store_unlinks) {
        _cleanup_posix_ Posix a = {}, b = {};

        create_posix(NULL, 4096, true, false, &a);
        create_posix(NULL, 4096, false, true, &b);
        ck_assert(shm_exists(a.name) && shm_exists(b.name));
        ck_assert_int_eq(kill(H->daemon_pid, SIGTERM), 0);
        for (int waited = 0; daemon_alive(); waited += 5) {
                ck_assert_msg(waited < scaled_ms(10000), "the daemon did not exit");
                msleep(5);
        }
        ck_assert_msg(!shm_exists(a.name), "%s outlived the daemon", a.name);
        ck_assert_msg(!shm_exists(b.name), "%s outlived the daemon", b.name);
        harness_restart_daemon(daemon_args);
}
END_TEST

/* ---------------------------------------------------------------- suite --- */

static void setup(BusKind kind) {
        harness_daemon_user = "daemon";
        harness_daemon_spawn = (PbusSpawn) {};
        harness_start(kind, true, daemon_args);
        shm_baseline();
}

static void setup_daemon(void) {
        setup(BUS_DBUS_DAEMON);
}

static void setup_broker(void) {
        setup(BUS_DBUS_BROKER);
}

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_create_attach_by_name_and_fd);
        tcase_add_test(tc, test_unprivileged_owner_by_name);
        tcase_add_test(tc, test_other_uid_by_token_then_name);
        tcase_add_test(tc, test_hard_link_is_emptied);
        tcase_add_test(tc, test_busctl);
        tcase_add_test(tc, test_lease_counts_a_description_by_name);
        tcase_add_test(tc, test_holder_killed);
        tcase_add_test(tc, test_size_guard);
        tcase_add_test(tc, test_quota_counts_posix);
        tcase_add_test(tc, test_prefault);
        tcase_add_test(tc, test_prefault_no_space);
        tcase_add_test(tc, test_ttl_expires);
        tcase_add_test(tc, test_hostile_options);
        tcase_add_test(tc, test_restart_keeps_the_name);
        tcase_add_test(tc, test_exit_without_store_unlinks);
}

int main(void) {
        Suite *s = suite_create("kind posix");

        harness_add_tcase(s, "dbus-daemon", setup_daemon, add_tests);
        harness_add_tcase(s, "dbus-broker", setup_broker, add_tests);
        return harness_main(s);
}
