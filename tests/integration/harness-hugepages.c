/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration-test harness, the huge page pool (see harness-hugepages.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static char saved_nr[32];               /* "" until read */

static void huge_pages_put_back(void) {
        int fd;

        if (!saved_nr[0])
                return;
        fd = open(NR_HUGEPAGES, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
                (void) !write(fd, saved_nr, strlen(saved_nr));
                close(fd);
        }
}

static void put_back_and_die(int sig) {
        huge_pages_put_back();
        signal(sig, SIG_DFL);
        raise(sig);
}

int64_t meminfo_value(const char *key) {
        char line[256];
        size_t len = strlen(key);
        int64_t v = -1;
        FILE *f = fopen("/proc/meminfo", "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, len) == 0 && line[len] == ':') {
                        v = strtoll(line + len + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

void assert_meminfo_becomes(const char *key, int64_t want) {
        int64_t v = -1;

        for (int waited = 0; waited < scaled_ms(3000); waited += 20) {
                v = meminfo_value(key);
                if (v == want)
                        return;
                msleep(20);
        }
        ck_abort_msg("%s is %" PRId64 ", want %" PRId64, key, v, want);
}

void huge_pages_set(unsigned n) {
        char s[16];
        int fd = open(NR_HUGEPAGES, O_WRONLY | O_CLOEXEC);

        ck_assert_msg(fd >= 0, "open %s: %s", NR_HUGEPAGES, strerror(errno));
        snprintf(s, sizeof(s), "%u", n);
        ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t) strlen(s));
        close(fd);
        ck_assert_msg(meminfo_value("HugePages_Total") == n,
                      "the kernel gave %" PRId64 " huge pages of the %u asked (memory fragmented?)",
                      meminfo_value("HugePages_Total"), n);
}

uint64_t huge_pages_prepare(char *reason, size_t reason_size) {
        int64_t kb = meminfo_value("Hugepagesize");
        int fd, mfd;
        ssize_t n;

        if (geteuid() != 0) {
                snprintf(reason, reason_size, "not root");
                return 0;
        }
        fd = open(NR_HUGEPAGES, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || kb <= 0) {
                snprintf(reason, reason_size, "this kernel has no huge pages (%s, Hugepagesize in /proc/meminfo)",
                         NR_HUGEPAGES);
                if (fd >= 0)
                        close(fd);
                return 0;
        }
        n = read(fd, saved_nr, sizeof(saved_nr) - 1);
        close(fd);
        if (n <= 0) {
                saved_nr[0] = 0;
                snprintf(reason, reason_size, "cannot read %s", NR_HUGEPAGES);
                return 0;
        }
        saved_nr[n] = 0;
        mfd = memfd_create("probe", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
        if (mfd < 0) {
                snprintf(reason, reason_size, "memfd_create(MFD_HUGETLB|MFD_ALLOW_SEALING): %s", strerror(errno));
                saved_nr[0] = 0;
                return 0;
        }
        close(mfd);
        /* Writable? (Written back as it was.) */
        fd = open(NR_HUGEPAGES, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, saved_nr, strlen(saved_nr)) < 0) {
                snprintf(reason, reason_size, "cannot write %s: %s", NR_HUGEPAGES, strerror(errno));
                if (fd >= 0)
                        close(fd);
                saved_nr[0] = 0;
                return 0;
        }
        close(fd);
        atexit(huge_pages_put_back);
        signal(SIGTERM, put_back_and_die);
        signal(SIGINT, put_back_and_die);
        return (uint64_t) kb * 1024;
}

void huge_pages_restore(void) {
        huge_pages_put_back();
}
