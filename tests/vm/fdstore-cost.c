/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fdstore-cost: what systemd's file descriptor store costs as it fills, the
 * fact behind the unit's FileDescriptorStoreMax= (bufbrokerd(8)). A
 * measurement run by hand in the vm harness's systemd mode, not a test:
 *
 *   tests/vm/vm-run --systemd -- systemd-run --wait --pipe \
 *           -p Type=exec -p NotifyAccess=all -p FileDescriptorStoreMax=70000 \
 *           -p LimitNOFILE=80000 $BUILD/tests/vm/fdstore-cost 40000
 *
 * Stores N memfds one message each (FDSTORE=1, FDPOLL=0, as bufbrokerd
 * stores its state; its buffers are stored with polling) and prints, per
 * step, the wall time per fd and PID 1's CPU time per fd (/proc/1/schedstat).
 * sd_pid_notify_with_fds() blocks when PID 1's queue is full, so the wall
 * time follows PID 1's pace.
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static uint64_t pid1_cpu_ns(void) {
        unsigned long long ns = 0;
        FILE *f = fopen("/proc/1/schedstat", "re");

        if (f) {
                if (fscanf(f, "%llu", &ns) != 1)
                        ns = 0;
                fclose(f);
        }
        return ns;
}

int main(int argc, char *argv[]) {
        unsigned n = argc > 1 ? (unsigned) strtoul(argv[1], NULL, 10) : 10000, step = n / 8 ? n / 8 : 1;
        uint64_t t_step = now_ns(), cpu_step = pid1_cpu_ns();

        printf("storing %u memfds in the fd store, one message each\n", n);
        printf("%8s %14s %18s\n", "stored", "wall us/fd", "PID 1 CPU us/fd");
        for (unsigned i = 1; i <= n; i++) {
                char msg[64];
                int fd = memfd_create("fdstore-cost", MFD_CLOEXEC), r;

                if (fd < 0) {
                        fprintf(stderr, "memfd_create: %m\n");
                        return 1;
                }
                snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=f%u\nFDPOLL=0", i);
                r = sd_pid_notify_with_fds(0, false, msg, &fd, 1);
                close(fd);
                if (r <= 0) {
                        fprintf(stderr, "storing fd %u: %s\n", i, r < 0 ? strerror(-r) : "no $NOTIFY_SOCKET");
                        return 1;
                }
                if (i % step == 0 || i == n) {
                        uint64_t t = now_ns(), cpu = pid1_cpu_ns();
                        unsigned k = i % step == 0 ? step : i % step;

                        printf("%8u %14.1f %18.1f\n", i, (double) (t - t_step) / 1000 / k,
                               (double) (cpu - cpu_step) / 1000 / k);
                        fflush(stdout);
                        t_step = t;
                        cpu_step = cpu;
                }
        }
        return 0;
}
