/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-v4l2, phase 7: who may open the device (see guest-v4l2.h). */
#include <grp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "guest-v4l2.h"

/* ---- 7: who may open the device (CreateV4L2 only for callers with access) ------ */

#define NOBODY ((uid_t) 65534)

typedef struct AsResult {
        int r;                          /* bb_buffer_create_v4l2()'s */
        char name[128], message[512];
        unsigned n_buffers, n_dmabufs;  /* on success: buffers, and plane fds that are dma-bufs */
} AsResult;

/* CreateV4L2 (2 x YUYV through the library, so OpenFds too) on each of
 * @devs, as uid 65534 with exactly the groups @groups (the first is the
 * primary one), in a child that connects to the bus after setgroups(): the
 * bus reports those groups to the daemon. The set is released again. */
static int as_nobody(const gid_t *groups, size_t n_groups, const char *const *devs, size_t n_devs, AsResult *res) {
        AsResult *shared;
        pid_t pid;
        int rc;

        shared = mmap(NULL, n_devs * sizeof(AsResult), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (shared == MAP_FAILED)
                return -errno;
        memset(shared, 0, n_devs * sizeof(AsResult));
        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                bb_client *c = NULL;

                if (setgroups(n_groups, groups) < 0 || setresgid(groups[0], groups[0], groups[0]) < 0 ||
                    setresuid(NOBODY, NOBODY, NOBODY) < 0)
                        _exit(2);
                if (bb_client_new(&c) < 0)
                        _exit(3);
                for (size_t i = 0; i < n_devs; i++) {
                        bb_buffer **l = NULL;
                        size_t n = 0;

                        shared[i].r = bb_buffer_create_v4l2(c, devs[i], 2, W, H, V4L2_PIX_FMT_YUYV, NULL, 0, 0, &l, &n);
                        if (shared[i].r < 0) {
                                snprintf(shared[i].name, sizeof(shared[i].name), "%s", bb_client_error_name(c) ?: "");
                                snprintf(shared[i].message, sizeof(shared[i].message), "%s",
                                         bb_client_error_message(c) ?: "");
                                continue;
                        }
                        shared[i].n_buffers = (unsigned) n;
                        for (size_t k = 0; k < n; k++) {
                                DmaBuf d;

                                dmabuf_info(bb_buffer_plane_fd(l[k], 0), &d);
                                shared[i].n_dmabufs += d.is_dmabuf;
                        }
                        release_list(l, n);
                        bb_buffer_list_free(l, n);
                }
                bb_client_unref(c);
                _exit(0);
        }
        rc = pbus_wait_child(pid, 60000);
        memcpy(res, shared, n_devs * sizeof(AsResult));
        munmap(shared, n_devs * sizeof(AsResult));
        return rc;
}

/* Run a program, stdout and stderr to ours; its exit status. */
static int run(const char *const *argv) {
        pid_t pid;

        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                dup2(STDOUT_FILENO, STDERR_FILENO);
                execvp(argv[0], (char *const *) argv);
                _exit(127);
        }
        return pbus_wait_child(pid, 30000);
}

static bool granted(const AsResult *a, Why *w, const char *what) {
        if (a->r < 0) {
                why(w, "%s: %s (%s: %s)", what, strerror(-a->r), a->name, a->message);
                return false;
        }
        if (a->n_buffers != 2 || a->n_dmabufs != 2) {
                why(w, "%s: %u buffers, %u dma-bufs", what, a->n_buffers, a->n_dmabufs);
                return false;
        }
        return true;
}

static bool denied(const AsResult *a, const char *path, Why *w, const char *what) {
        if (a->r >= 0) {
                why(w, "%s: allowed (%u buffers)", what, a->n_buffers);
                return false;
        }
        if (a->r != -EACCES || strcmp(a->name, BB_ERROR_ACCESS_DENIED) != 0) {
                why(w, "%s: %s %s: %s, not %s", what, strerror(-a->r), a->name, a->message, BB_ERROR_ACCESS_DENIED);
                return false;
        }
        if (!strstr(a->message, path) || !strstr(a->message, "65534")) {
                why(w, "%s: the message does not name the path and uid 65534: %s", what, a->message);
                return false;
        }
        return true;
}

/* @message with @path replaced by "PATH": what is left must be the same for
 * every path uid 65534 cannot open. */
static void message_shape(const char *message, const char *path, char *buf, size_t size) {
        const char *p = strstr(message, path);

        if (p)
                snprintf(buf, size, "%.*sPATH%s", (int) (p - message), message, p + strlen(path));
        else
                snprintf(buf, size, "%s", message);
}

void case_access(void) {
        static const char *const leaks[] = {
                "No such", "ermission", "irectory", "character", "shadow", "secret", "video4linux", "exist:",
                "81:", "busy",
        };
        const char *secret = "/root/secret-dir/video-like", *link_ok = "/dev/v4l/by-id/bb-test-cam",
                   *link_secret = "/dev/v4l/by-id/bb-test-secret";
        const char *const hidden[] = { DEV_A, secret, "/root/does-not-exist", "/etc/shadow", link_secret };
        const char *const one[] = { DEV_A }, *const via_link[] = { DEV_A, link_ok };
        AsResult res[ELEMENTSOF(hidden)], ok2[2];
        struct group *g = getgrnam("video");
        gid_t video = g ? g->gr_gid : 44;
        gid_t plain[] = { NOBODY }, in_video[] = { NOBODY, video };
        char first[512] = "", shape[512];
        struct stat st0;
        Why w = {};
        int r;

        /* /dev/videoN as udev makes it: root:video 0660, no ACL. Plain mode
         * has no udev (devtmpfs gives root:root 0600). */
        if (stat(DEV_A, &st0) < 0 || chown(DEV_A, 0, video) < 0 || chmod(DEV_A, 0660) < 0 ||
            (removexattr(DEV_A, "system.posix_acl_access") < 0 && errno != ENODATA)) {
                check(false, "access: make %s root:video 0660 without an ACL: %s", DEV_A, strerror(errno));
                return;
        }
        /* A node of the same device, world read-write, in a directory only
         * root may search; and by-id links as udev makes them. */
        if ((mkdir("/root/secret-dir", 0700) < 0 && errno != EEXIST) ||
            (mknod(secret, S_IFCHR | 0666, st0.st_rdev) < 0 && errno != EEXIST) || chmod(secret, 0666) < 0 ||
            (mkdir("/dev/v4l", 0755) < 0 && errno != EEXIST) || (mkdir("/dev/v4l/by-id", 0755) < 0 && errno != EEXIST) ||
            (symlink("../../video0", link_ok) < 0 && errno != EEXIST) ||
            (symlink(secret, link_secret) < 0 && errno != EEXIST))
                diag("access: setting up %s and the links: %s", secret, strerror(errno));

        /* uid 65534 without group video: the device and four paths it must
         * learn nothing about, one answer for all */
        r = as_nobody(plain, ELEMENTSOF(plain), hidden, ELEMENTSOF(hidden), res);
        if (r != 0)
                why(&w, "the uid 65534 client ended with %d", r);
        else
                for (size_t i = 0; i < ELEMENTSOF(hidden); i++) {
                        if (!denied(&res[i], hidden[i], &w, hidden[i]))
                                continue;
                        message_shape(res[i].message, hidden[i], shape, sizeof(shape));
                        for (size_t k = 0; k < ELEMENTSOF(leaks); k++)
                                if (strstr(shape, leaks[k]))
                                        why(&w, "%s: \"%s\" says \"%s\"", hidden[i], res[i].message, leaks[k]);
                        if (i == 0)
                                snprintf(first, sizeof(first), "%s", shape);
                        else if (strcmp(first, shape) != 0)
                                why(&w, "the refusals differ beyond the path: \"%s\" and \"%s\"", first, shape);
                }
        check_why(&w, "uid 65534 without group video: %s (root:video 0660), %s (0666 behind a 0700 dir), "
                  "/root/does-not-exist, /etc/shadow and a link into /root all give %s with one message "
                  "naming only the path and the uid: \"%s\"", DEV_A, secret, BB_ERROR_ACCESS_DENIED, first);
        w = (Why) {};
        back_to_base(5000, &w);
        check_why(&w, "after the refusals: Stats and daemon fds at baseline");

        /* with the supplementary group video: allowed, through the by-id
         * link as well */
        w = (Why) {};
        r = as_nobody(in_video, ELEMENTSOF(in_video), via_link, ELEMENTSOF(via_link), ok2);
        if (r != 0)
                why(&w, "the client ended with %d", r);
        else {
                granted(&ok2[0], &w, DEV_A);
                granted(&ok2[1], &w, link_ok);
        }
        back_to_base(5000, &w);
        check_why(&w, "uid 65534 with supplementary group video (%u, setgroups before connecting) gets buffers "
                  "(dma-bufs) on %s and on %s -> ../../video0; released, back at baseline",
                  (unsigned) video, DEV_A, link_ok);

        /* an ACL entry, as logind's uaccess makes it, written by setfacl */
        w = (Why) {};
        r = run((const char *const[]) { "setfacl", "-m", "u:65534:rw", DEV_A, NULL });
        if (r != 0)
                why(&w, "setfacl -m u:65534:rw %s: exit %d (is the acl package installed?)", DEV_A, r);
        else {
                r = as_nobody(plain, ELEMENTSOF(plain), one, 1, res);
                if (r != 0)
                        why(&w, "the client ended with %d", r);
                else
                        granted(&res[0], &w, "with the ACL entry");
                /* the mask limits named entries: r-- leaves no write */
                r = run((const char *const[]) { "setfacl", "-m", "m::r", DEV_A, NULL });
                if (r != 0)
                        why(&w, "setfacl -m m::r: exit %d", r);
                else if (as_nobody(plain, ELEMENTSOF(plain), one, 1, res) != 0)
                        why(&w, "the client ended with an error");
                else
                        denied(&res[0], DEV_A, &w, "with the ACL entry masked to r--");
        }
        back_to_base(5000, &w);
        check_why(&w, "uid 65534 with an ACL entry u:65534:rw on %s (setfacl) gets buffers; with the mask "
                  "set to r-- it gets %s", DEV_A, BB_ERROR_ACCESS_DENIED);

        /* root may open anything, root:video 0660 or not */
        w = (Why) {};
        can_create(DEV_A, &w, "as root");
        check_why(&w, "root gets buffers on %s", DEV_A);

        (void) removexattr(DEV_A, "system.posix_acl_access");
        (void) chown(DEV_A, st0.st_uid, st0.st_gid);
        (void) chmod(DEV_A, st0.st_mode & 07777);
        (void) unlink(link_ok);
        (void) unlink(link_secret);
        (void) unlink(secret);
        (void) rmdir("/root/secret-dir");
}
