/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the broker core that mean something only where a
 * precondition holds: root (to switch uid), a kernel with MFD_NOEXEC_SEAL, a
 * core that takes unlimited limits. A check test can only pass or fail, so a
 * test that returned early when its precondition failed counted as a pass.
 * Here each such test is its own program run: main() checks the precondition
 * first and exits 77 (meson: SKIP) saying why when it does not hold, and only
 * then runs the one test under check.
 *   test-conditional NAME      (NAMEs: see conditionals[] in main)
 */
#include <grp.h>
#include <sys/wait.h>

#include "test-helpers.h"

#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

/* The largest limits there are: nothing but the code guards the arithmetic. */
static BrokerLimits limits_unlimited(void) {
        return (BrokerLimits) {
                .max_buffer_size = UINT64_MAX,
                .max_buffers_per_uid = UINT64_MAX,
                .max_bytes_per_uid = UINT64_MAX,
                .max_tokens_per_uid = UINT64_MAX,
                .max_buffers = UINT64_MAX,
                .max_bytes = UINT64_MAX,
                .max_tokens = UINT64_MAX,
                .max_fds = UINT64_MAX,
        };
}

/* ====================================================== preconditions === */

/* Each returns 0 when its test can run, 77 when it cannot here (and says why
 * in *why), anything else when the probe itself shows a bug (*why too). */

static int need_root(const char **why) {
        if (geteuid() == 0)
                return 0;
        *why = "not root: cannot switch to another uid";
        return 77;
}

static int need_noexec_seal(const char **why) {
        static char msg[128];
        int probe;

        probe = memfd_create("probe", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
        if (probe >= 0) {
                close(probe);
                return 0;
        }
        /* Kernels before 6.3 do not know the flag, and say so with EINVAL. */
        if (errno == EINVAL) {
                *why = "kernel without MFD_NOEXEC_SEAL (Linux < 6.3)";
                return 77;
        }
        snprintf(msg, sizeof(msg), "memfd_create(MFD_NOEXEC_SEAL): %s", strerror(errno));
        *why = msg;
        return 1;
}

/* The contract lets the core refuse absurd limits, as long as it says so
 * properly: -EINVAL and no broker. */
static int need_unlimited_broker(const char **why) {
        BrokerLimits l = limits_unlimited();
        Broker *nb = NULL;
        int r;

        r = broker_new(&nb, &l, NULL, NULL);
        if (r >= 0) {
                broker_free(nb);
                return 0;
        }
        if (r == -EINVAL && !nb) {
                *why = "broker_new() refuses limits of UINT64_MAX (-EINVAL), as the contract allows";
                return 77;
        }
        *why = nb ? "broker_new() failed but returned a broker" : "broker_new() failed with other than -EINVAL";
        return 1;
}

/* ============================================================== tests === */

/* A read-only share must stay read-only for its receiver: a process of another
 * uid that got the O_RDONLY fd must not get a writable one by reopening it
 * through /proc/self/fd (the memfd inode's mode decides). Needs root to switch
 * uid (need_root). */
START_TEST(test_read_only_token_not_reopenable_writable) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        Buffer *buf;
        int fd = -1, status;
        pid_t pid;

        buf = create_ok(":1.1", UID_A, "ro", page_size(), false, 0);
        o.read_only = true;
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        ck_assert_int_eq(open_token(":1.2", 65534, tok, T0, NULL, NULL, &fd), 0);

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char path[64];
                int rw;

                if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(2);
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                rw = open(path, O_RDWR | O_CLOEXEC);
                if (rw >= 0) {
                        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
                        _exit(p == MAP_FAILED ? 3 : 4);
                }
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_msg(WEXITSTATUS(status) == 0,
                      "uid 65534 reopened its read-only share O_RDWR through /proc/self/fd "
                      "(child status %d: 3 = opened, 4 = opened and mapped writable)",
                      WEXITSTATUS(status));
        close(fd);
}
END_TEST

/* With every limit at its maximum nothing guards the arithmetic but the code
 * itself: rounding and accounting must not wrap around. */
START_TEST(test_create_size_near_2_64_unlimited) {
        const uint64_t ps = page_size();
        BrokerLimits l;
        Buffer *small;
        int fds, r;

        broker_stop();
        l = limits_unlimited();
        memset(&rec, 0, sizeof(rec));
        r = broker_new(&b, &l, &rec_callbacks, &rec);
        ck_assert_int_eq(r, 0);        /* need_unlimited_broker() saw it take them */
        fds = count_fds();
        for (unsigned i = 0; i < ELEMENTSOF(huge_sizes); i++) {
                r = create_err(":1.1", UID_A, "huge", huge_sizes[i], false, 0);
                ck_assert_msg(r < 0, "size %" PRIu64 " accepted", huge_sizes[i]);
                assert_stats(0, 0, 0, 0);
        }
        assert_usage(UID_A, 0, 0, 0);
        ck_assert_ptr_null(broker_find_client(b, ":1.1"));
        ck_assert_int_eq(count_fds(), fds);

        /* Accounting: 1 page charged + 2^64 - 1 page would wrap to 0. */
        small = create_ok(":1.1", UID_A, "small", ps, false, 0);
        ck_assert_uint_eq(small->size, ps);
        ck_assert_int_eq(create_err(":1.1", UID_A, "wrap", UINT64_MAX - ps + 1, false, 0), -EDQUOT);
        assert_stats(1, ps, 1, 0);
        assert_usage(UID_A, 1, ps, 0);
        ck_assert_int_eq(count_fds(), fds + 1);
}
END_TEST

START_TEST(test_noexec_when_supported) {
        char tok[BB_TOKEN_LEN + 1];
        struct stat st;
        Buffer *buf;
        int fd = -1;

        buf = create_shared("noexec", page_size(), tok);
        open_ok(":1.2", UID_B, tok, T0, &fd);
        ck_assert_int_eq(seals(fd) & F_SEAL_EXEC, F_SEAL_EXEC);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_mode & 0111, 0);
        ck_assert_int_eq(fchmod(fd, 0755), -1);
        ck_assert_int_eq(errno, EPERM);
        close(fd);
        (void) buf;
}
END_TEST

int main(int argc, char *argv[]) {
        /* Not static: a START_TEST's name is a pointer variable, not a constant. */
        const struct {
                const char *name;
                int (*precondition)(const char **why);
                const TTest *test;
        } conditionals[] = {
                { "read-only-token-not-reopenable", need_root, test_read_only_token_not_reopenable_writable },
                { "size-near-2-64-unlimited", need_unlimited_broker, test_create_size_near_2_64_unlimited },
                { "noexec-seal", need_noexec_seal, test_noexec_when_supported },
        };
        const char *why = "";
        SRunner *sr;
        Suite *s;
        TCase *tc;
        int failed, r;

        for (unsigned i = 0; argc == 2 && i < ELEMENTSOF(conditionals); i++) {
                if (strcmp(argv[1], conditionals[i].name) != 0)
                        continue;

                r = conditionals[i].precondition(&why);
                if (r == 77) {
                        printf("SKIPPED: %s: %s\n", conditionals[i].name, why);
                        return 77;
                }
                if (r != 0) {
                        printf("FAILED: %s: precondition probe: %s\n", conditionals[i].name, why);
                        return EXIT_FAILURE;
                }

                s = suite_create(conditionals[i].name);
                tc = tcase_new(conditionals[i].name);
                tcase_add_test(tc, conditionals[i].test);
                suite_add_tcase(s, tc);
                sr = srunner_create(s);
                srunner_run_all(sr, CK_NORMAL);
                failed = srunner_ntests_failed(sr);
                srunner_free(sr);
                return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        }

        fprintf(stderr, "usage: %s NAME\nNAMEs:", argv[0]);
        for (unsigned i = 0; i < ELEMENTSOF(conditionals); i++)
                fprintf(stderr, " %s", conditionals[i].name);
        fputc('\n', stderr);
        return 2;
}
