/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sandbox-probe: does the unit's sandbox let the service user do what the
 * posix, sysv and file kinds need?  guest-systemd.sh runs it as the unit's
 * ExecStart (a drop-in), so it gets exactly the unit's User=, syscall filter,
 * namespaces and StateDirectory=.
 *
 *   sandbox-probe sandbox OTHER_UID
 *           makes one object of each kind as the daemon would and prints
 *           "ok STEP" or "fail STEP: error" per system call, then
 *           "shm-name NAME", "shmid ID", "devshm DEV:INO", "ready"; keeps the
 *           objects until SIGTERM, then removes them and exits 0.
 *   sandbox-probe hold-ipc OTHER_UID
 *           (RemoveIPC= facts) a POSIX object and three SysV segments of
 *           1 page, each described by a line "posix NAME", "sysv ID uid=U
 *           gid=G"; "ready"; SIGUSR1: exit 0 leaving them; SIGTERM: the same.
 *   sandbox-probe attach-wait SHMID
 *           shmat the segment and wait for SIGTERM (an attachment held by a
 *           process outside the service).
 *   sandbox-probe stat-devshm
 *           prints "devshm DEV:INO" for /dev/shm as this process sees it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define OBJ_SIZE (1024 * 1024)

static int failures;

static void step(const char *what, int ok) {
        if (ok)
                printf("ok %s\n", what);
        else {
                printf("fail %s: %s\n", what, strerror(errno));
                failures++;
        }
        fflush(stdout);
}

/* The ACL the posix kind writes: owner rw, @uid rw, group and other none.
 * The on-disk xattr layout (version 2, then tag/perm/id entries) is the
 * kernel's uapi; written here by hand as the daemon does, without libacl. */
static int set_acl(int fd, uid_t uid) {
        struct { uint16_t tag, perm; uint32_t id; } __attribute__((packed)) e[5] = {
                { 0x01, 6, UINT32_MAX },        /* ACL_USER_OBJ rw */
                { 0x02, 6, uid },               /* ACL_USER rw */
                { 0x04, 0, UINT32_MAX },        /* ACL_GROUP_OBJ --- */
                { 0x10, 6, UINT32_MAX },        /* ACL_MASK rw */
                { 0x20, 0, UINT32_MAX },        /* ACL_OTHER --- */
        };
        char buf[4 + sizeof(e)];
        uint32_t version = 2;

        memcpy(buf, &version, 4);
        memcpy(buf + 4, e, sizeof(e));
        return fsetxattr(fd, "system.posix_acl_access", buf, sizeof(buf), 0);
}

static void print_devshm(void) {
        struct stat st;
        struct statvfs sv;

        if (stat("/dev/shm", &st) < 0 || statvfs("/dev/shm", &sv) < 0) {
                printf("devshm ?: %s\n", strerror(errno));
                return;
        }
        printf("devshm %u:%u:%ju %s\n", major(st.st_dev), minor(st.st_dev), (uintmax_t) st.st_ino,
               sv.f_flag & ST_RDONLY ? "ro" : "rw");
}

static void wait_for(int sig1, int sig2) {
        sigset_t mask;
        int sig;

        sigemptyset(&mask);
        sigaddset(&mask, sig1);
        sigaddset(&mask, sig2);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        printf("ready\n");
        fflush(stdout);
        sigwait(&mask, &sig);
}

static int do_sandbox(uid_t other) {
        char name[64], path[64];
        const char *state = getenv("STATE_DIRECTORY");
        struct shmid_ds ds;
        void *p;
        int fd, ino, tmp, reopened, id;

        printf("uid %u gid %u\n", (unsigned) getuid(), (unsigned) getgid());
        print_devshm();

        /* posix */
        snprintf(name, sizeof(name), "/bbprobe-%d", (int) getpid());
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        step("posix shm_open(O_CREAT|O_EXCL, 0600)", fd >= 0);
        if (fd >= 0) {
                step("posix ftruncate", ftruncate(fd, OBJ_SIZE) == 0);
                step("posix fallocate", fallocate(fd, 0, 0, OBJ_SIZE) == 0);
                step("posix fsetxattr(system.posix_acl_access)", set_acl(fd, other) == 0);
                p = mmap(NULL, OBJ_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                step("posix mmap", p != MAP_FAILED);
                if (p != MAP_FAILED) {
                        step("posix madvise(MADV_POPULATE_WRITE)", madvise(p, OBJ_SIZE, MADV_POPULATE_WRITE) == 0);
                        strcpy(p, "posix from the service");
                        munmap(p, OBJ_SIZE);
                }
                step("posix F_SETLEASE F_WRLCK (lease.c)", fcntl(fd, F_SETLEASE, F_WRLCK) == 0);
                step("posix F_SETLEASE F_UNLCK", fcntl(fd, F_SETLEASE, F_UNLCK) == 0);
                ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                step("posix inotify_add_watch(/proc/self/fd/N, IN_MODIFY|IN_CLOSE)",
                     ino >= 0 && inotify_add_watch(ino, path, IN_MODIFY | IN_CLOSE) >= 0);
                printf("shm-name %s\n", name);
        }

        /* sysv */
        id = shmget(IPC_PRIVATE, OBJ_SIZE, IPC_CREAT | IPC_EXCL | 0600);
        step("sysv shmget(IPC_PRIVATE)", id >= 0);
        if (id >= 0) {
                p = shmat(id, NULL, 0);
                step("sysv shmat", p != (void *) -1);
                if (p != (void *) -1) {
                        step("sysv madvise(MADV_POPULATE_WRITE)", madvise(p, OBJ_SIZE, MADV_POPULATE_WRITE) == 0);
                        strcpy(p, "sysv from the service");
                        step("sysv shmdt", shmdt(p) == 0);
                }
                step("sysv shmctl(IPC_STAT)", shmctl(id, IPC_STAT, &ds) == 0);
                ds.shm_perm.uid = other;
                ds.shm_perm.gid = getgid();
                ds.shm_perm.mode = 0600;
                step("sysv shmctl(IPC_SET uid=other)", shmctl(id, IPC_SET, &ds) == 0);
                step("sysv shmctl(IPC_STAT) after IPC_SET (creator still may)", shmctl(id, IPC_STAT, &ds) == 0);
                step("sysv uid is the other user, cuid the service's",
                     ds.shm_perm.uid == other && ds.shm_perm.cuid == getuid());
                printf("shmid %d\n", id);
        }

        /* file */
        if (!state)
                printf("fail file: no $STATE_DIRECTORY\n"), failures++;
        else {
                tmp = open(state, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
                step("file open(O_TMPFILE) in $STATE_DIRECTORY", tmp >= 0);
                if (tmp >= 0) {
                        step("file ftruncate", ftruncate(tmp, OBJ_SIZE) == 0);
                        step("file fallocate", fallocate(tmp, 0, 0, OBJ_SIZE) == 0);
                        p = mmap(NULL, OBJ_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, tmp, 0);
                        step("file mmap", p != MAP_FAILED);
                        if (p != MAP_FAILED) {
                                step("file madvise(MADV_POPULATE_WRITE)",
                                     madvise(p, OBJ_SIZE, MADV_POPULATE_WRITE) == 0);
                                munmap(p, OBJ_SIZE);
                        }
                        /* The lease first: a write lease needs the only open description. */
                        step("file F_SETLEASE F_WRLCK", fcntl(tmp, F_SETLEASE, F_WRLCK) == 0);
                        step("file F_SETLEASE F_UNLCK", fcntl(tmp, F_SETLEASE, F_UNLCK) == 0);
                        snprintf(path, sizeof(path), "/proc/self/fd/%d", tmp);
                        reopened = open(path, O_RDONLY | O_CLOEXEC);
                        step("file reopen through /proc/self/fd (O_RDONLY)", reopened >= 0);
                        if (reopened >= 0)
                                close(reopened);
                }
        }
        printf("failures %d\n", failures);

        wait_for(SIGTERM, SIGINT);
        shm_unlink(name);
        if (id >= 0)
                shmctl(id, IPC_RMID, NULL);
        return 0;
}

static int make_segment(uid_t uid, gid_t gid) {
        struct shmid_ds ds;
        int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | IPC_EXCL | 0600);

        if (id < 0 || shmctl(id, IPC_STAT, &ds) < 0)
                return -1;
        ds.shm_perm.uid = uid;
        ds.shm_perm.gid = gid;
        if (shmctl(id, IPC_SET, &ds) < 0)
                return -1;
        printf("sysv %d uid=%u gid=%u\n", id, (unsigned) uid, (unsigned) gid);
        return id;
}

static int do_hold_ipc(uid_t other) {
        char name[64];
        int fd;

        snprintf(name, sizeof(name), "/bbipc-%d", (int) getpid());
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, 4096) < 0)
                return 1;
        printf("posix %s\n", name);
        /* the design's: uid = the owner, gid = the daemon's */
        if (make_segment(other, getgid()) < 0 ||
            /* uid and gid both another's */
            make_segment(other, other) < 0 ||
            /* what shmget leaves: all the service's */
            make_segment(getuid(), getgid()) < 0)
                return 1;
        wait_for(SIGUSR1, SIGTERM);
        return 0;
}

static int do_attach_wait(int id) {
        void *p = shmat(id, NULL, SHM_RDONLY);

        if (p == (void *) -1) {
                perror("sandbox-probe: shmat");
                return 1;
        }
        wait_for(SIGTERM, SIGINT);
        return 0;
}

int main(int argc, char *argv[]) {
        if (argc == 3 && strcmp(argv[1], "sandbox") == 0)
                return do_sandbox((uid_t) strtoul(argv[2], NULL, 10));
        if (argc == 3 && strcmp(argv[1], "hold-ipc") == 0)
                return do_hold_ipc((uid_t) strtoul(argv[2], NULL, 10));
        if (argc == 3 && strcmp(argv[1], "attach-wait") == 0)
                return do_attach_wait(atoi(argv[2]));
        if (argc == 2 && strcmp(argv[1], "stat-devshm") == 0) {
                print_devshm();
                return 0;
        }
        fprintf(stderr, "usage: sandbox-probe sandbox|hold-ipc OTHER_UID | attach-wait SHMID | stat-devshm\n");
        return 2;
}
