/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * systemd-probe: the bus client guest-systemd.sh needs where busctl and
 * bufbrokerctl cannot do the job: print the exact D-Bus error name of a
 * refused call, and keep a library client (with its holds) running across a
 * restart of the daemon, releasing its buffers when told to.
 *
 *   systemd-probe request-name NAME
 *           RequestName(NAME, DO_NOT_QUEUE) on the system bus; prints "reply N" or
 *           "error ERROR.NAME: message"
 *   systemd-probe call [--fd] DEST PATH INTERFACE METHOD
 *           a method call without arguments, or (--fd) with one UNIX_FD
 *           argument (/dev/null); prints "reply SIGNATURE" or "error ..."
 *   systemd-probe hold N
 *           creates N buffers through libbufbroker (not persistent: held by
 *           this connection only), prints "held ID" for each and "ready",
 *           then waits: SIGUSR1 releases them all ("released ID" or
 *           "release ID failed: ...") and exits 0 if every Release worked;
 *           SIGTERM exits 2 without releasing.
 *
 *   systemd-probe pattern SIZE SEED
 *           prints SIZE bytes of a pattern made from SEED (the expected
 *           contents of a buffer "fill" wrote)
 *   systemd-probe fill posix|sysv|fd HANDLE SIZE SEED
 *   systemd-probe dump posix|sysv|fd HANDLE
 *           write the pattern into, or print the contents of, a buffer
 *           attached by its native handle (posix: shm_open(HANDLE); sysv:
 *           shmat(HANDLE)) or by a descriptor (fd: HANDLE is the buffer id;
 *           Buffer1.OpenFds() on the system bus, its first fd); "dump fd"
 *           of a buffer without fds prints "no fds" on stderr, exit 3
 *   systemd-probe inode ID
 *           "DEV:INO" (decimal, as stat -L -c %d:%i prints them) of the file
 *           behind the buffer's first fd (OpenFds): to find every other
 *           descriptor of it, whatever its link text
 *
 * Exit status: 0 when the call completed (with a reply or an error: the
 * caller judges the printed line), 1 on local failures, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <bufbroker.h>

#include "macro.h"

static int print_result(int r, sd_bus_message *reply, const sd_bus_error *error) {
        if (r >= 0) {
                const char *sig = sd_bus_message_get_signature(reply, true);
                printf("reply %s\n", sig && *sig ? sig : "-");
                return 0;
        }
        if (sd_bus_error_is_set(error)) {
                printf("error %s: %s\n", error->name, error->message ? error->message : "");
                return 0;
        }
        fprintf(stderr, "systemd-probe: call failed locally: %s\n", strerror(-r));
        return 1;
}

static int do_request_name(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint32_t ret = 0;
        int r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "RequestName", &error, &reply, "su", name, (uint32_t) 4 /* DO_NOT_QUEUE */);
        if (r >= 0 && sd_bus_message_read(reply, "u", &ret) >= 0) {
                /* 1: primary owner, 2: queued, 3: exists, 4: already owner */
                printf("reply %" PRIu32 "\n", ret);
                return 0;
        }
        r = print_result(r, reply, &error);
        sd_bus_error_free(&error);
        return r;
}

static int do_call(sd_bus *bus, bool with_fd, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_close_ int fd = -1;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, argv[0], argv[1], argv[2], argv[3]);
        if (r < 0) {
                fprintf(stderr, "systemd-probe: cannot build the call: %s\n", strerror(-r));
                return 1;
        }
        if (with_fd) {
                fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        perror("systemd-probe: /dev/null");
                        return 1;
                }
                r = sd_bus_message_append(m, "h", fd);
                if (r < 0) {
                        fprintf(stderr, "systemd-probe: cannot append the fd: %s\n", strerror(-r));
                        return 1;
                }
        }
        r = sd_bus_call(bus, m, 0, &error, &reply);
        r = print_result(r, reply, &error);
        sd_bus_error_free(&error);
        return r;
}

static int do_hold(unsigned n) {
        bb_client *c = NULL;
        bb_buffer **bufs;
        sigset_t mask;
        int sig = 0, r, ret = 0;

        /* Blocked before anything can send them, so none is lost. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGUSR1);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        bufs = calloc(n, sizeof(*bufs));
        if (!bufs)
                return 1;
        r = bb_client_new(&c);
        if (r < 0) {
                fprintf(stderr, "systemd-probe: cannot connect: %s\n", strerror(-r));
                return 1;
        }
        for (unsigned i = 0; i < n; i++) {
                char name[32];

                snprintf(name, sizeof(name), "held-by-client-%u", i);
                r = bb_buffer_create(c, name, 4096, 0, 0, &bufs[i]);
                if (r < 0) {
                        fprintf(stderr, "systemd-probe: create: %s (%s)\n", strerror(-r),
                                bb_client_error_name(c) ? bb_client_error_name(c) : "local");
                        return 1;
                }
                printf("held %" PRIu64 "\n", bb_buffer_id(bufs[i]));
        }
        printf("ready\n");
        fflush(stdout);

        if (sigwait(&mask, &sig) != 0 || sig != SIGUSR1)
                return 2;

        for (unsigned i = 0; i < n; i++) {
                r = bb_buffer_release(bufs[i]);
                if (r < 0) {
                        printf("release %" PRIu64 " failed: %s (%s)\n", bb_buffer_id(bufs[i]), strerror(-r),
                               bb_client_error_name(c) ? bb_client_error_name(c) : "local");
                        ret = 1;
                } else
                        printf("released %" PRIu64 "\n", bb_buffer_id(bufs[i]));
                bufs[i] = bb_buffer_unref(bufs[i]);
        }
        fflush(stdout);
        free(bufs);
        bb_client_unref(c);
        return ret;
}

/* Byte @i of the pattern of @seed: the seed's text over and over, so a
 * buffer filled for another seed, or shifted, never matches. */
static char pattern_byte(const char *seed, uint64_t i) {
        size_t n = strlen(seed) + 1;

        return i % n == n - 1 ? '\n' : seed[i % n];
}

static int do_pattern(uint64_t size, const char *seed) {
        for (uint64_t i = 0; i < size; i++)
                putchar(pattern_byte(seed, i));
        return fflush(stdout) == 0 ? 0 : 1;
}

/* The buffer's first fd through Buffer1.OpenFds(), or -1 (and why). */
static int open_fd_by_id(const char *id) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char path[128];
        int r, fd = -1;

        snprintf(path, sizeof(path), "/org/bufbroker/Broker1/buffer/%s", id);
        r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_call_method(bus, "org.bufbroker.Broker1", path, "org.bufbroker.Buffer1", "OpenFds",
                                       &error, &reply, "a{sv}", 0);
        if (r < 0) {
                fprintf(stderr, "systemd-probe: OpenFds %s: %s\n", path,
                        sd_bus_error_is_set(&error) ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return -1;
        }
        r = sd_bus_message_enter_container(reply, 'a', "h");
        if (r > 0)
                r = sd_bus_message_read(reply, "h", &fd);
        if (r <= 0) {
                fprintf(stderr, "no fds\n");
                return -2;
        }
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                perror("systemd-probe: dup");
        return fd;
}

/* Maps the buffer by @how and @handle; its size in *size. */
static void *attach(const char *how, const char *handle, bool writable, uint64_t *size, int *ret) {
        struct stat st;
        void *p;
        int fd;

        *ret = 1;
        if (strcmp(how, "sysv") == 0) {
                struct shmid_ds ds;
                int id = atoi(handle);

                if (shmctl(id, IPC_STAT, &ds) < 0) {
                        fprintf(stderr, "systemd-probe: shmctl(%d, IPC_STAT): %s\n", id, strerror(errno));
                        return NULL;
                }
                p = shmat(id, NULL, writable ? 0 : SHM_RDONLY);
                if (p == (void *) -1) {
                        fprintf(stderr, "systemd-probe: shmat(%d): %s\n", id, strerror(errno));
                        return NULL;
                }
                *size = ds.shm_segsz;
                return p;
        }
        if (strcmp(how, "posix") == 0) {
                fd = shm_open(handle, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
                if (fd < 0)
                        fprintf(stderr, "systemd-probe: shm_open(%s): %s\n", handle, strerror(errno));
        } else if (strcmp(how, "fd") == 0) {
                fd = open_fd_by_id(handle);
                if (fd == -2)
                        *ret = 3;
        } else {
                fprintf(stderr, "systemd-probe: attach by posix, sysv or fd, not '%s'\n", how);
                *ret = 2;
                return NULL;
        }
        if (fd < 0)
                return NULL;
        if (fstat(fd, &st) < 0 || st.st_size <= 0) {
                fprintf(stderr, "systemd-probe: fstat: %s\n", st.st_size <= 0 ? "empty" : strerror(errno));
                close(fd);
                return NULL;
        }
        *size = (uint64_t) st.st_size;
        p = mmap(NULL, *size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (p == MAP_FAILED) {
                fprintf(stderr, "systemd-probe: mmap: %s\n", strerror(errno));
                return NULL;
        }
        return p;
}

static void detach(const char *how, void *p, uint64_t size) {
        if (strcmp(how, "sysv") == 0)
                shmdt(p);
        else
                munmap(p, size);
}

static int do_fill(const char *how, const char *handle, uint64_t want, const char *seed) {
        uint64_t size;
        int ret;
        char *p = attach(how, handle, true, &size, &ret);

        if (!p)
                return ret;
        if (size < want) {
                fprintf(stderr, "systemd-probe: %s %s has %" PRIu64 " bytes, not %" PRIu64 "\n", how, handle,
                        size, want);
                detach(how, p, size);
                return 1;
        }
        for (uint64_t i = 0; i < want; i++)
                p[i] = pattern_byte(seed, i);
        detach(how, p, size);
        return 0;
}

static int do_dump(const char *how, const char *handle) {
        uint64_t size;
        int ret;
        void *p = attach(how, handle, false, &size, &ret);

        if (!p)
                return ret;
        ret = fwrite(p, 1, size, stdout) == size && fflush(stdout) == 0 ? 0 : 1;
        detach(how, p, size);
        return ret;
}

static int do_inode(const char *id) {
        struct stat st;
        int fd = open_fd_by_id(id);

        if (fd < 0)
                return fd == -2 ? 3 : 1;
        if (fstat(fd, &st) < 0) {
                perror("systemd-probe: fstat");
                close(fd);
                return 1;
        }
        printf("%ju:%ju\n", (uintmax_t) st.st_dev, (uintmax_t) st.st_ino);
        close(fd);
        return 0;
}

static int usage(void) {
        fprintf(stderr, "usage: systemd-probe request-name NAME\n"
                        "       systemd-probe call [--fd] DEST PATH INTERFACE METHOD\n"
                        "       systemd-probe hold N\n"
                        "       systemd-probe pattern SIZE SEED\n"
                        "       systemd-probe fill posix|sysv|fd HANDLE SIZE SEED\n"
                        "       systemd-probe dump posix|sysv|fd HANDLE\n"
                        "       systemd-probe inode ID\n");
        return 2;
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (argc == 3 && strcmp(argv[1], "hold") == 0) {
                unsigned long n = strtoul(argv[2], NULL, 10);
                if (n == 0 || n > 64)
                        return usage();
                return do_hold((unsigned) n);
        }

        if (argc == 4 && strcmp(argv[1], "pattern") == 0)
                return do_pattern(strtoull(argv[2], NULL, 10), argv[3]);
        if (argc == 6 && strcmp(argv[1], "fill") == 0)
                return do_fill(argv[2], argv[3], strtoull(argv[4], NULL, 10), argv[5]);
        if (argc == 4 && strcmp(argv[1], "dump") == 0)
                return do_dump(argv[2], argv[3]);
        if (argc == 3 && strcmp(argv[1], "inode") == 0)
                return do_inode(argv[2]);

        if (argc < 3)
                return usage();
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "systemd-probe: cannot connect to the system bus: %s\n", strerror(-r));
                return 1;
        }
        if (argc == 3 && strcmp(argv[1], "request-name") == 0)
                return do_request_name(bus, argv[2]);
        if (strcmp(argv[1], "call") == 0) {
                bool with_fd = argc > 2 && strcmp(argv[2], "--fd") == 0;
                if (argc != 6 + with_fd)
                        return usage();
                return do_call(bus, with_fd, argv + 2 + with_fd);
        }
        return usage();
}
