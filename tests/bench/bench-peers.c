/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The yardsticks: the least a program can do to hand out a sealed memfd, so
 * that bufbrokerd's rows read as "x D" and "x B" -- what the broker costs
 * over the plainest peer on the same transport.
 *
 *   D  a minimal sd-bus service on the same private bus as bufbrokerd, with
 *      its own name: Create(t) makes a memfd, seals it and returns it as 'h'.
 *      No bookkeeping, no quotas, no objects: one method call, one fd.
 *      Its Sink(ay) takes bulk data for the 'ay' half of the bulk row.
 *   B  no bus at all: a forked server on a SOCK_SEQPACKET socket pair that
 *      answers each request byte with a fresh sealed memfd by SCM_RIGHTS.
 *
 * Both run in their own process, as bufbrokerd does, so every row pays the
 * same context switches.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

static unsigned memfd_flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL;

/* Like daemon/memfd.c: MFD_NOEXEC_SEAL where the kernel knows it (6.3+). */
void bench_probe_memfd_flags(void) {
        int fd = memfd_create("bench-probe", memfd_flags);

        if (fd < 0 && errno == EINVAL)
                memfd_flags &= ~MFD_NOEXEC_SEAL;
        else if (fd < 0)
                fail("memfd_create: %m");
        safe_close(fd);
}

int bench_memfd_new(uint64_t size) {
        int fd = memfd_create("bench", memfd_flags);

        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) size) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

int bench_map_touch(int fd) {
        void *p = mmap(NULL, BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        if (p == MAP_FAILED)
                return -errno;
        *(volatile uint8_t *) p = 1;
        munmap(p, BUFFER_SIZE);
        return 0;
}

/* ------------------------------------------------------------------ D --- */

const char bench_d_policy[] =
        "    <allow own=\"" BENCH_D_NAME "\"/>\n"
        "    <allow send_destination=\"" BENCH_D_NAME "\"/>\n";

static int d_create(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint64_t size;
        int fd, r;

        r = sd_bus_message_read(m, "t", &size);
        if (r < 0)
                return r;
        fd = bench_memfd_new(size);
        if (fd < 0)
                return sd_bus_error_set_errno(error, fd);
        r = sd_bus_reply_method_return(m, "h", fd);
        close(fd);
        return r;
}

uint64_t bench_sum_words(const void *p, size_t n) {
        const uint8_t *b = p;
        uint64_t sum = 0;

        /* memcpy: a bus message's array need not be 8-byte aligned */
        for (size_t i = 0; i + sizeof(uint64_t) <= n; i += sizeof(uint64_t)) {
                uint64_t w;

                memcpy(&w, b + i, sizeof(w));
                sum += w;
        }
        return sum;
}

/* Reads every word, as the shared-buffer reader does. */
static int d_sink(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const void *p;
        size_t n;
        int r;

        r = sd_bus_message_read_array(m, 'y', &p, &n);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "t", bench_sum_words(p, n));
}

static const sd_bus_vtable d_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Create", "t", "h", d_create, 0),
        SD_BUS_METHOD("Sink", "ay", "t", d_sink, 0),
        SD_BUS_VTABLE_END,
};

static _Noreturn void d_main(const char *address) {
        sd_bus *bus = NULL;
        int r;

        r = pbus_connect(address, &bus);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, BENCH_D_PATH, BENCH_D_INTERFACE, d_vtable, NULL);
        if (r >= 0)
                r = sd_bus_request_name(bus, BENCH_D_NAME, 0);
        if (r < 0) {
                fprintf(stderr, "bench-broker: D: %s\n", strerror(-r));
                _exit(1);
        }
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        _exit(0);       /* the bus went away */
                if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                        _exit(0);
        }
}

pid_t bench_d_start(const char *address, sd_bus *bus) {
        pid_t parent = getpid(), pid;
        uint64_t deadline;

        fflush(NULL);
        pid = fork();
        if (pid < 0)
                fail("fork: %m");
        if (pid == 0) {
                pbus_child_die_with_parent(parent);
                pbus_close_fds_except(-1);
                d_main(address);
        }
        deadline = now_ns() + UINT64_C(10000000000);
        for (;;) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "GetNameOwner", &error, NULL, "s",
                                           BENCH_D_NAME);

                sd_bus_error_free(&error);
                if (r >= 0)
                        return pid;
                if (now_ns() > deadline)
                        fail("D did not take %s within 10 s", BENCH_D_NAME);
                pbus_msleep(5);
        }
}

/* D's row: Create, map, touch, unmap, close (the reply owns the fd). */
int bench_d_create_cycle(sd_bus *bus, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        int fd, r;

        r = sd_bus_call_method(bus, BENCH_D_NAME, BENCH_D_PATH, BENCH_D_INTERFACE, "Create", error, &reply, "t",
                               (uint64_t) BUFFER_SIZE);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "h", &fd);
        if (r >= 0)
                r = bench_map_touch(fd);
        sd_bus_message_unref(reply);
        return r;
}

/* ------------------------------------------------------------------ B --- */

static _Noreturn void b_main(int sock) {
        for (;;) {
                char req, control[CMSG_SPACE(sizeof(int))] = {};
                struct iovec iov = { &req, 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                     .msg_controllen = sizeof(control) };
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                int fd;

                if (recv(sock, &req, 1, 0) <= 0)
                        _exit(0);       /* the client closed its end */
                fd = bench_memfd_new(BUFFER_SIZE);
                if (fd < 0)
                        _exit(1);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof(int));
                if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
                        _exit(0);
                close(fd);
        }
}

pid_t bench_b_start(int *ret_fd) {
        pid_t parent = getpid(), pid;
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                fail("socketpair: %m");
        fflush(NULL);
        pid = fork();
        if (pid < 0)
                fail("fork: %m");
        if (pid == 0) {
                pbus_child_die_with_parent(parent);
                pbus_close_fds_except(sv[1]);
                b_main(sv[1]);
        }
        close(sv[1]);
        *ret_fd = sv[0];
        return pid;
}

/* B's row: a request byte, a memfd back, map, touch, unmap, close. */
int bench_b_cycle(int sock) {
        char req = 'c', control[CMSG_SPACE(sizeof(int))];
        struct iovec iov = { &req, 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                             .msg_controllen = sizeof(control) };
        struct cmsghdr *c;
        int fd = -1, r;

        if (send(sock, &req, 1, MSG_NOSIGNAL) < 0)
                return -errno;
        if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) <= 0)
                return errno ? -errno : -ECONNRESET;
        c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                memcpy(&fd, CMSG_DATA(c), sizeof(int));
        if (fd < 0)
                return -EBADMSG;
        r = bench_map_touch(fd);
        close(fd);
        return r;
}
