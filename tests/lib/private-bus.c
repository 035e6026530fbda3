/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A private bus for tests and benchmarks (see private-bus.h). Start-up facts:
 *
 * dbus-daemon: a generated system-like config, --nofork --print-address=FD;
 * the address is read from a pipe, which also tells us it is listening.
 *
 * dbus-broker: dbus-broker-launch --scope system takes its listening socket
 * only by socket activation (fd 3, LISTEN_FDS=1, LISTEN_PID=its own pid: set
 * in the forked child before exec) and exits at once unless it can connect to
 * /run/systemd/journal/socket. So the caller unshares its mount namespace,
 * makes / a recursive slave (nothing leaks to the host), mounts a tmpfs on
 * /run/systemd and binds a datagram socket there that a child drains. The
 * launcher also connects to the bus it serves through sd_bus_open_system(),
 * so DBUS_SYSTEM_BUS_ADDRESS points at our socket.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "private-bus.h"

/* Print "private-bus: MESSAGE" to stderr and return r (a negative errno). */
static _printf_(2, 3) int fail(int r, const char *fmt, ...) {
        va_list ap;

        fputs("private-bus: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return r;
}

static int neg_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* ------------------------------------------------------------- processes -- */

uint64_t pbus_now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

void pbus_msleep(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int pbus_status_of(int wstatus) {
        if (WIFEXITED(wstatus))
                return WEXITSTATUS(wstatus);
        if (WIFSIGNALED(wstatus))
                return 128 + WTERMSIG(wstatus);
        return -1;
}

static int pidfd_open_(pid_t pid) {
        return (int) syscall(SYS_pidfd_open, pid, 0);
}

int pbus_wait_child(pid_t pid, int timeout_ms) {
        int wstatus, pfd;

        pfd = pidfd_open_(pid);
        if (pfd >= 0) {
                struct pollfd p = { .fd = pfd, .events = POLLIN };
                int r;

                do
                        r = poll(&p, 1, timeout_ms);
                while (r < 0 && errno == EINTR);
                close(pfd);
                if (r == 0) {
                        kill(pid, SIGKILL);
                        while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
                                ;
                        return -1;
                }
        }
        while (waitpid(pid, &wstatus, 0) < 0) {
                if (errno != EINTR)
                        return -1;
        }
        return pbus_status_of(wstatus);
}

void pbus_child_die_with_parent(pid_t parent) {
        static const int sigs[] = { SIGTERM, SIGINT, SIGALRM, SIGHUP, SIGPIPE, SIGCHLD };

        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                signal(sigs[i], SIG_DFL);
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(127);
}

static void close_fds(int from, int keep) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                int fd = atoi(de->d_name);

                if (de->d_name[0] != '.' && fd >= from && fd != keep && fd != dirfd(d))
                        close(fd);
        }
        closedir(d);
}

void pbus_close_fds_except_from(int from) {
        close_fds(from, -1);
}

void pbus_close_fds_except(int keep) {
        close_fds(3, keep);
}

pid_t pbus_first_child_of(pid_t pid) {
        char path[64], buf[64] = "";
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int) pid, (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        if (!fgets(buf, sizeof(buf), f))
                buf[0] = 0;
        fclose(f);
        return buf[0] ? (pid_t) atoi(buf) : -1;
}

void pbus_rm_rf_dir(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                char p[600];

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                if (unlink(p) < 0 && errno == EISDIR)
                        pbus_rm_rf_dir(p);
        }
        closedir(d);
        (void) rmdir(dir);
}

/* ------------------------------------------------------------------ bus -- */

int pbus_write_config(const char *path, const char *socket_path, const char *policy_conf,
                      const char *default_extra, const char *extra) {
        FILE *f = fopen(path, "we");

        if (!f)
                return fail(neg_errno(), "fopen(%s): %s", path, strerror(errno));
        /* Like Debian's /usr/share/dbus-1/system.conf: everyone may connect,
         * nobody may own names or call methods unless a policy file says so,
         * system-bus limits (16 fds per message). */
        if (fprintf(f,
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                "<busconfig>\n"
                "  <type>system</type>\n"
                "  <auth>EXTERNAL</auth>\n"
                "  <listen>unix:path=%s</listen>\n"
                "  <policy context=\"default\">\n"
                "    <allow user=\"*\"/>\n"
                "    <deny own=\"*\"/>\n"
                "    <deny send_type=\"method_call\"/>\n"
                "    <allow send_type=\"signal\"/>\n"
                "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
                "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
                "    <allow receive_type=\"method_call\"/>\n"
                "    <allow receive_type=\"method_return\"/>\n"
                "    <allow receive_type=\"error\"/>\n"
                "    <allow receive_type=\"signal\"/>\n"
                "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"/>\n"
                "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"
                "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Properties\"/>\n"
                "%s"
                "  </policy>\n"
                "%s"
                "  <limit name=\"max_incoming_unix_fds\">64</limit>\n"
                "  <limit name=\"max_outgoing_unix_fds\">64</limit>\n"
                "  <limit name=\"max_message_unix_fds\">16</limit>\n"
                "  <limit name=\"max_connections_per_user\">256</limit>\n"
                "  <limit name=\"max_replies_per_connection\">128</limit>\n"
                "  <include>%s</include>\n"
                "</busconfig>\n",
                socket_path, default_extra ? default_extra : "", extra ? extra : "",
                policy_conf) < 0) {
                int r = neg_errno();

                fclose(f);
                return fail(r, "writing %s: %s", path, strerror(-r));
        }
        if (fclose(f) != 0)
                return fail(neg_errno(), "writing %s: %s", path, strerror(errno));
        return 0;
}

int pbus_start_dbus_daemon(const char *config, const char *socket_path, pid_t *ret_pid) {
        pid_t parent = getpid(), pid;
        int pipefd[2];
        char buf[512];
        size_t n = 0;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return fail(neg_errno(), "pipe2: %s", strerror(errno));
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                int r = neg_errno();

                close(pipefd[0]);
                close(pipefd[1]);
                return fail(r, "fork: %s", strerror(-r));
        }
        if (pid == 0) {
                char cfg[600];

                pbus_child_die_with_parent(parent);
                if (dup2(pipefd[1], 3) < 0)
                        _exit(126);
                pbus_close_fds_except(3);
                snprintf(cfg, sizeof(cfg), "--config-file=%s", config);
                (void) setsid();
                execlp("dbus-daemon", "dbus-daemon", cfg, "--nofork", "--print-address=3",
                       "--nopidfile", "--nosyslog", (char *) NULL);
                _exit(127);
        }
        *ret_pid = pid;
        close(pipefd[1]);
        /* The address line arrives once the daemon listens. */
        while (n < sizeof(buf) - 1) {
                struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
                ssize_t k;

                if (poll(&p, 1, 10000) <= 0) {
                        close(pipefd[0]);
                        return fail(-ETIMEDOUT, "dbus-daemon did not print its address within 10 s");
                }
                k = read(pipefd[0], buf + n, sizeof(buf) - 1 - n);
                if (k <= 0) {
                        close(pipefd[0]);
                        return fail(-ECHILD, "dbus-daemon exited before printing its address");
                }
                n += (size_t) k;
                buf[n] = 0;
                if (strchr(buf, '\n'))
                        break;
        }
        close(pipefd[0]);
        if (!strstr(buf, socket_path))
                return fail(-EADDRNOTAVAIL, "dbus-daemon address %s is not on %s", buf, socket_path);
        return 0;
}

int pbus_setup_journal_namespace(pid_t *ret_pid) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX,
                                  .sun_path = "/run/systemd/journal/socket" };
        pid_t parent = getpid(), pid;
        int fd;

        if (unshare(CLONE_NEWNS) < 0)
                return fail(neg_errno(), "unshare(CLONE_NEWNS): %s", strerror(errno));
        /* valgrind wants a type string even where the kernel ignores it */
        if (mount("none", "/", "none", MS_REC | MS_SLAVE, NULL) < 0)
                return fail(neg_errno(), "making / a recursive slave: %s", strerror(errno));
        (void) mkdir("/run/systemd", 0755);
        if (mount("tmpfs", "/run/systemd", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
                return fail(neg_errno(), "tmpfs on /run/systemd: %s", strerror(errno));
        if (mkdir("/run/systemd/journal", 0755) < 0)
                return fail(neg_errno(), "mkdir /run/systemd/journal: %s", strerror(errno));
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return fail(neg_errno(), "journal socket: %s", strerror(errno));
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = neg_errno();

                close(fd);
                return fail(r, "bind journal socket: %s", strerror(-r));
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                int r = neg_errno();

                close(fd);
                return fail(r, "fork: %s", strerror(-r));
        }
        if (pid == 0) {
                static char buf[256 * 1024];

                pbus_child_die_with_parent(parent);
                for (;;)
                        if (recv(fd, buf, sizeof(buf), 0) < 0 && errno != EINTR)
                                _exit(0);
        }
        close(fd);
        *ret_pid = pid;
        return 0;
}

int pbus_start_dbus_broker(const char *config, const char *socket_path, const char *address,
                           pid_t *ret_pid) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        pid_t parent = getpid(), pid;
        char envaddr[400];
        int fd, r;

        /* Socket activation only: one listening socket on fd 3. */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return fail(neg_errno(), "socket: %s", strerror(errno));
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", socket_path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || chmod(socket_path, 0666) < 0 ||
            listen(fd, SOMAXCONN) < 0) {
                r = neg_errno();
                close(fd);
                return fail(r, "listening on %s: %s", socket_path, strerror(-r));
        }
        snprintf(envaddr, sizeof(envaddr), "DBUS_SYSTEM_BUS_ADDRESS=%s", address);

        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                r = neg_errno();
                close(fd);
                return fail(r, "fork: %s", strerror(-r));
        }
        if (pid == 0) {
                char cfg[600], pidstr[64];

                pbus_child_die_with_parent(parent);
                if (fd == 3) {
                        if (fcntl(3, F_SETFD, 0) < 0)
                                _exit(126);
                } else if (dup2(fd, 3) < 0)
                        _exit(126);
                pbus_close_fds_except(3);
                snprintf(pidstr, sizeof(pidstr), "LISTEN_PID=%d", (int) getpid());
                putenv(pidstr);
                putenv((char *) "LISTEN_FDS=1");
                putenv((char *) "LISTEN_FDNAMES=dbus.socket");
                unsetenv("NOTIFY_SOCKET");
                /* the launcher connects back to the bus it serves */
                putenv(envaddr);
                /* On SIGTERM the launcher signals its whole process group:
                 * give it its own, so that is not the caller's. */
                (void) setsid();
                snprintf(cfg, sizeof(cfg), "--config-file=%s", config);
                execlp("dbus-broker-launch", "dbus-broker-launch", "--scope", "system", cfg,
                       (char *) NULL);
                _exit(127);
        }
        close(fd);
        *ret_pid = pid;
        return 0;
}

int pbus_connect(const char *address, sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

int pbus_wait_ready(const char *address, pid_t bus_pid, const char *what, sd_bus **ret) {
        uint64_t deadline = pbus_now_usec() + 10u * 1000000u;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        /* dbus-broker accepts as soon as the socket listens but answers only
         * once the launcher installed the listener; sd_bus_start waits for
         * Hello, so retry until it succeeds. */
        for (;;) {
                r = pbus_connect(address, &bus);
                if (r >= 0)
                        break;
                if (pbus_now_usec() >= deadline)
                        return fail(r, "cannot connect to %s on %s: %s", what, address, strerror(-r));
                if (waitpid(bus_pid, NULL, WNOHANG) != 0)
                        return fail(-ECHILD, "%s exited during start-up", what);
                pbus_msleep(10);
        }
        /* A round trip: the connect above succeeds on dbus-broker's socket
         * (which we made) before the broker even runs. */
        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetId", &error, NULL, "");
        if (r < 0) {
                fail(r, "%s does not answer GetId: %s", what,
                     error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                sd_bus_flush_close_unref(bus);
                return r;
        }
        sd_bus_error_free(&error);
        *ret = bus;
        return 0;
}

/* ------------------------------------------------------------ the daemon -- */

pid_t pbus_spawn_daemon(const char *address, const char *const *argv, const PbusSpawn *opts) {
        static const PbusSpawn defaults = { .uid = (uid_t) -1, .gid = (gid_t) -1 };
        pid_t parent = getpid(), pid;
        char envaddr[400];

        if (!opts)
                opts = &defaults;
        if (opts->n_listen_fds > 16)
                return fail(-E2BIG, "at most 16 fds may be handed over");
        snprintf(envaddr, sizeof(envaddr), "DBUS_SYSTEM_BUS_ADDRESS=%s", address);
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                int r = neg_errno();

                return fail(r, "fork: %s", strerror(-r));
        }
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC), moved[16];
                char buf[64];

                pbus_child_die_with_parent(parent);
                if (devnull < 0 || dup2(devnull, 0) < 0)
                        _exit(126);
                if (opts->log_path) {
                        int log = open(opts->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                        if (log < 0 || dup2(log, 2) < 0)
                                _exit(126);
                }
                /* The fds to hand over go to 3, 4, ... as systemd passes
                 * them; first out of the way of each other. */
                for (unsigned i = 0; i < opts->n_listen_fds; i++) {
                        moved[i] = fcntl(opts->listen_fds[i], F_DUPFD_CLOEXEC, 100);
                        if (moved[i] < 0)
                                _exit(126);
                }
                for (unsigned i = 0; i < opts->n_listen_fds; i++)
                        if (dup2(moved[i], 3 + (int) i) < 0)
                                _exit(126);
                pbus_close_fds_except_from(3 + (int) opts->n_listen_fds);
                (void) setsid();
                if (opts->uid != (uid_t) -1) {
                        if (setgroups(0, NULL) < 0 || setresgid(opts->gid, opts->gid, opts->gid) < 0 ||
                            setresuid(opts->uid, opts->uid, opts->uid) < 0) {
                                fprintf(stderr, "private-bus: cannot become uid %u: %s\n", (unsigned) opts->uid,
                                        strerror(errno));
                                _exit(126);
                        }
                        /* A change of credentials clears the parent-death signal. */
                        pbus_child_die_with_parent(parent);
                }
                putenv(envaddr);
                unsetenv("NOTIFY_SOCKET");
                unsetenv("LISTEN_FDS");
                unsetenv("LISTEN_PID");
                unsetenv("LISTEN_FDNAMES");
                if (opts->notify_socket)
                        setenv("NOTIFY_SOCKET", opts->notify_socket, 1);
                if (opts->preload) {
                        const char *asan = getenv("ASAN_OPTIONS");
                        char *o = NULL;

                        setenv("LD_PRELOAD", opts->preload, 1);
                        if (asprintf(&o, "%s%sverify_asan_link_order=0", asan ?: "", asan ? ":" : "") < 0)
                                _exit(126);
                        setenv("ASAN_OPTIONS", o, 1);
                }
                if (opts->n_listen_fds > 0) {
                        snprintf(buf, sizeof(buf), "%u", opts->n_listen_fds);
                        setenv("LISTEN_FDS", buf, 1);
                        snprintf(buf, sizeof(buf), "%d", (int) getpid());
                        setenv("LISTEN_PID", buf, 1);
                        if (opts->listen_fdnames)
                                setenv("LISTEN_FDNAMES", opts->listen_fdnames, 1);
                }
                execvp(argv[0], (char *const *) argv);
                fprintf(stderr, "private-bus: exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        return pid;
}
