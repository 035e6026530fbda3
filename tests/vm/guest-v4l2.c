/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * guest-v4l2: the vm suite's V4L2 cases, run inside the VM by guest-v4l2.sh.
 *
 * The driver script owns the processes: a private system-like dbus-daemon
 * (max_message_unix_fds 16, the project's real policy file), the real
 * bufbrokerd on it, and vivid, reloaded in the configuration a phase needs.
 * This program owns the cases. It talks to the broker through libbufbroker
 * (the client under test) and through raw sd-bus calls where a case needs
 * the exact D-Bus error name or an argument no library call can produce, and
 * to the devices with plain V4L2 ioctls: a second vivid instance imports the
 * broker's dma-bufs, and our own V4L2 file handle on the exporting device
 * maps its MMAP buffers, an independent view of the memory behind them.
 *
 *   guest-v4l2 sp ALLOC    vivid n_devs=2, single-planar; ALLOC = vmalloc|dma-contig
 *   guest-v4l2 mp ALLOC    vivid n_devs=2 multiplanar=2,2
 *   guest-v4l2 quota       a daemon started with --max-buffers-per-uid=4
 *                          --max-bytes-per-uid=2097152 --max-buffer-size=716800
 *                          (vivid single-planar)
 *   guest-v4l2 disconnect  vivid's "Disconnect" while clients hold buffers (vivid
 *                          reconnects when the last file of the device is closed)
 *
 * "sp vmalloc" also runs the device-access cases (uid 65534 with and without
 * group video, an ACL entry, paths it must learn nothing about) and vivid's
 * REQBUFS error injection; "mp vmalloc" runs out of fds in the daemon in the
 * middle of exporting a multi-planar set.
 *
 * The cases live one file per phase (guest-v4l2.h lists them); the table
 * below says which run in which mode, in order.
 *
 * Devices: instance A is /dev/video0 (capture) with /dev/video1 (output) and
 * /dev/v4l-touch0; instance B is /dev/video4 (capture). Output: TAP-style
 * "ok - " / "not ok - " lines and "# " diagnostics; exit 0 when all passed.
 */
#include "guest-v4l2.h"

/* ================================================================= main === */

/* The allocator's exp_name that "sp"/"mp" expect of the dma-bufs. */
static const char *exp_name;

static const Expect sp_yuyv = { V4L2_PIX_FMT_YUYV, "capture", 1, { W * 2 }, { W * H * 2 } };
static const Expect mp_nm12 = { V4L2_PIX_FMT_NV12M, "capture-mplane", 2, { W, W }, { W * H, W * H / 2 } };
static const Expect mp_ym12 = { V4L2_PIX_FMT_YUV420M, "capture-mplane", 3, { W, W / 2, W / 2 },
                                { W * H, W * H / 4, W * H / 4 } };
/* vivid's multi-planar YUYV has a 128-byte header in plane 0 (data_offset,
 * reported per frame by DQBUF) */
static const Expect mp_yuyv = { V4L2_PIX_FMT_YUYV, "capture-mplane", 1, { W * 2 }, { W * H * 2 + 128 } };

static void sp_set_yuyv(void) { case_set(&sp_yuyv, 4, exp_name); }
static void sp_import_yuyv(void) { case_import(V4L2_PIX_FMT_YUYV, 1, 4); }
static void mp_set_nm12(void) { case_set(&mp_nm12, 3, exp_name); }
static void mp_set_ym12(void) { case_set(&mp_ym12, 3, exp_name); }
static void mp_set_yuyv(void) { case_set(&mp_yuyv, 2, exp_name); }
static void mp_import_nm12(void) { case_import(V4L2_PIX_FMT_NV12M, 2, 3); }
static void mp_import_ym12(void) { case_import(V4L2_PIX_FMT_YUV420M, 3, 3); }
static void mp_import_yuyv(void) { case_import(V4L2_PIX_FMT_YUYV, 1, 3); }

static void mp_refuse_abcd(void) {
        static const KV abcd[] = { KS(BB_FMT_FOURCC, "ABCD"), KEND };

        expect_refusal("a fourcc the multi-planar driver does not take (ABCD)", DEV_A, 2, abcd, NULL,
                       "org.freedesktop.DBus.Error.InvalidArgs", "ABCD", DEV_A);
}

static void mp_refuse_sp_type(void) {
        static const KV sp[] = { KS(BB_FMT_TYPE, "capture"), KEND };

        expect_refusal("type capture on a multi-planar-only node", DEV_A, 2, sp, NULL,
                       BB_ERROR_DEVICE_NOT_SUPPORTED, DEV_A, "capture");
}

typedef struct Case {
        const char *mode;               /* argv[1] */
        bool vmalloc_only;              /* only with the vmalloc allocator */
        const char *name;
        void (*run)(void);
} Case;

/* Which cases run in which mode, in this order. */
static const Case cases[] = {
        { "sp", false, "set YUYV x4", sp_set_yuyv },
        { "sp", false, "import YUYV", sp_import_yuyv },
        { "sp", true, "sharing and orphans", case_sharing_and_orphans },
        { "sp", true, "options and nodes", case_options_and_nodes },
        { "sp", true, "refusals", case_refusals },
        { "sp", true, "lifetime", case_lifetime },
        { "sp", true, "device access", case_access },
        { "sp", true, "REQBUFS error injection", case_reqbufs_injection },
        { "mp", false, "set NM12 x3", mp_set_nm12 },
        { "mp", false, "set YM12 x3", mp_set_ym12 },
        { "mp", false, "set YUYV x2", mp_set_yuyv },
        { "mp", false, "import NM12", mp_import_nm12 },
        { "mp", false, "import YM12", mp_import_ym12 },
        { "mp", false, "import YUYV", mp_import_yuyv },
        { "mp", false, "many planes", case_many_planes },
        { "mp", true, "out of fds", case_emfile },
        { "mp", false, "refuse ABCD", mp_refuse_abcd },
        { "mp", false, "refuse type capture", mp_refuse_sp_type },
        { "disconnect", false, "disconnect", case_disconnect },
        { "quota", false, "quotas", case_quota },
};

static bool mode_known(const char *mode) {
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                if (strcmp(cases[i].mode, mode) == 0)
                        return true;
        return false;
}

int main(int argc, char *argv[]) {
        const char *mode = argc > 1 ? argv[1] : "", *alloc = argc > 2 ? argv[2] : "vmalloc";
        bool vmalloc = strcmp(alloc, "vmalloc") == 0;
        char ph[64];
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        if (!mode_known(mode)) {
                fprintf(stderr, "usage: %s sp|mp vmalloc|dma-contig, or %s quota|disconnect\n", argv[0], argv[0]);
                return 2;
        }
        exp_name = strcmp(alloc, "dma-contig") == 0 ? "videobuf2_dma_contig" : "videobuf2_vmalloc";
        snprintf(ph, sizeof(ph), "%s/%s", mode, strcmp(mode, "quota") == 0 ? "limits" :
                 strcmp(mode, "disconnect") == 0 ? "vivid" : alloc);
        phase = ph;

        r = sd_bus_open_system(&bus);
        if (r < 0 || daemon_lookup() < 0) {
                check(false, "connect to the private bus (%s) and find bufbrokerd: %s",
                      getenv("DBUS_SYSTEM_BUS_ADDRESS") ?: "(unset)", strerror(-r));
                return 1;
        }
        diag("bufbrokerd is pid %d (%s)", (int) daemon_pid, daemon_owner);
        if (!warm_up(DEV_A))
                return 1;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t t0;

                if (strcmp(cases[i].mode, mode) != 0 || (cases[i].vmalloc_only && !vmalloc))
                        continue;
                /* TCG is slow: keep an eye on how long each case takes */
                t0 = now_ms();
                cases[i].run();
                diag("(%s took %" PRIu64 " ms)", cases[i].name, now_ms() - t0);
        }

        check(daemon_alive(), "bufbrokerd (pid %d) is alive and owns %s after the %s cases", (int) daemon_pid,
              BB_BUS_NAME, ph);
        diag("%s: %u passed, %u failed", ph, n_passed, n_failed);
        sd_bus_flush_close_unref(bus);
        return n_failed > 0 ? 1 : 0;
}
