/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerctl against the real daemon: every command's happy path, checked
 * against the daemon's own view over sd-bus, and its error exit codes (2 for
 * usage errors found before any bus traffic, 1 for failures), as root and
 * as uid 65534; help per command, --json=MODE (parsed by Python's json
 * module), --no-legend, "--", and owners' user names; create --kind (memfd
 * through Create, the usage errors, a kind the broker refuses). The posix,
 * sysv and file kinds through the CLI are in test-kinds-client.c.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define EXIT_USAGE 2

/* ---- helpers ------------------------------------------------------------- */

static uint64_t ctl_create(uid_t uid, const char *size, const char *name, bool persistent) {
        _cleanup_run_result_ RunResult r = { 0 };
        uint64_t id;
        char *end;

        if (persistent)
                ctl(&r, uid, NULL, "create", "--size", size, "--name", name, "--persistent");
        else
                ctl(&r, uid, NULL, "create", "--size", size, "--name", name);
        ck_assert_run_status(&r, 0);
        errno = 0;
        id = strtoull(r.out, &end, 10);
        ck_assert_msg(errno == 0 && id > 0 && *end == '\n' && end[1] == 0,
                      "create printed '%s', want an id and a newline", r.out);
        return id;
}

static char *ctl_share(uid_t uid, uint64_t id, const char *const *opts) {
        _cleanup_run_result_ RunResult r = { 0 };
        const char *args[16] = { "share" };
        char ids[32];
        size_t n = 1;
        char *token;

        snprintf(ids, sizeof(ids), "%" PRIu64, id);
        args[n++] = ids;
        for (; opts && *opts; opts++)
                args[n++] = *opts;
        args[n] = NULL;
        run_ctl(&r, uid, NULL, args);
        ck_assert_run_status(&r, 0);
        ck_assert_msg(r.out_len == BB_TOKEN_LEN + 1 && r.out[BB_TOKEN_LEN] == '\n',
                      "share printed '%s'", r.out);
        for (size_t i = 0; i < BB_TOKEN_LEN; i++)
                ck_assert_msg(isxdigit((unsigned char) r.out[i]) && !isupper((unsigned char) r.out[i]),
                              "token '%s' is not lower-case hex", r.out);
        token = strndup(r.out, BB_TOKEN_LEN);
        return token;
}

static char *ids(uint64_t id) {
        static char buf[4][32];
        static int k;

        k = (k + 1) % 4;
        snprintf(buf[k], sizeof(buf[k]), "%" PRIu64, id);
        return buf[k];
}

static void assert_err_mentions(const RunResult *r, const char *needle, const char *context) {
        ck_assert_msg(r->err && strstr(r->err, needle), "%s: stderr does not mention '%s': %s",
                      context, needle, r->err ? r->err : "");
}

/* ---- JSON, checked by a real parser ----------------------------------------- */

/* Python's json module parses doc and renders it again: for "pretty" the
 * document must be exactly json.dumps(indent=2), for "short" exactly the
 * compact rendering on one line, for "lines-short" every line a compact
 * document; then the Python expression expr must hold for d (the parsed
 * document, or the list of them). */
static const char py_json_check[] =
        "import json, sys\n"
        "doc = sys.stdin.buffer.read().decode('utf-8')\n"
        "mode, expr = sys.argv[1], sys.argv[2]\n"
        "def render(v, m):\n"
        "    if m == 'pretty':\n"
        "        return json.dumps(v, indent=2, ensure_ascii=False) + '\\n'\n"
        "    return json.dumps(v, separators=(',', ':'), ensure_ascii=False) + '\\n'\n"
        "if mode == 'lines-short':\n"
        "    lines = doc.splitlines(keepends=True)\n"
        "    d = [json.loads(l) for l in lines]\n"
        "    want = ''.join(render(v, 'short') for v in d)\n"
        "else:\n"
        "    d = json.loads(doc)\n"
        "    want = render(d, mode)\n"
        "if doc != want:\n"
        "    sys.exit('not %s JSON:\\n%r\\nwant:\\n%r' % (mode, doc, want))\n"
        "if not eval(expr, {'d': d}):\n"
        "    sys.exit('does not hold: %s\\nfor: %r' % (expr, d))\n";

static _printf_(3, 4) void assert_json(const char *doc, const char *mode, const char *fmt, ...) {
        _cleanup_run_result_ RunResult r = { 0 };
        _cleanup_free_ char *expr = NULL;
        va_list ap;

        va_start(ap, fmt);
        ck_assert(vasprintf(&expr, fmt, ap) > 0);
        va_end(ap);
        ck_assert(run_argv(&r, AS_ROOT, doc, strlen(doc), NULL,
                           (const char *[]) { "/usr/bin/python3", "-c", py_json_check, mode, expr,
                                              NULL }) == 0);
        ck_assert_msg(r.status == 0, "JSON check (%s) failed: %s", mode, r.err ?: "");
}

/* Run bufbrokerctl ARGS... as root with --json=MODE in front (before the
 * command: options go anywhere), expect success. */
static void ctl_json(RunResult *r, uid_t uid, const char *mode, const char *const *args) {
        const char *argv[16];
        char opt[32];
        size_t n = 0;

        snprintf(opt, sizeof(opt), "--json=%s", mode);
        argv[n++] = opt;
        for (; *args; args++) {
                ck_assert(n < ELEMENTSOF(argv) - 1);
                argv[n++] = *args;
        }
        argv[n] = NULL;
        run_ctl(r, uid, NULL, argv);
        ck_assert_run_status(r, 0);
}

static const char *nobody_name(void) {
        struct passwd *pw = getpwuid(NOBODY_UID);

        ck_assert_msg(pw, "uid %u has no passwd entry", (unsigned) NOBODY_UID);
        return pw->pw_name;
}

/* ---- status, create, info ------------------------------------------------- */

START_TEST(test_status) {
        _cleanup_run_result_ RunResult r = { 0 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *version = NULL, *line;
        _cleanup_created_ Created cr = { .fd = -1 };

        create_memfd(NULL, "status", 4096, false, 0, &cr);
        ck_assert(sd_bus_get_property_string(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH,
                                             BB_MANAGER_INTERFACE, "Version", &error, &version) >= 0);
        ctl(&r, NOBODY_UID, NULL, "status");
        ck_assert_run_status(&r, 0);
        ck_assert(asprintf(&line, "Version: %s\n", version) > 0);
        ck_assert_msg(strstr(r.out, line), "status lacks '%s':\n%s", line, r.out);
        /* Stats as the daemon has them: one buffer of 4096 bytes */
        ck_assert_msg(strstr(r.out, "buffers") && strstr(r.out, "tokens") &&
                              strstr(r.out, BB_LIMIT_MAX_BUFFERS_PER_UID),
                      "status output:\n%s", r.out);
        {
                const char *b = strstr(r.out, " buffers ");
                unsigned long n = 99;

                ck_assert_msg(b && sscanf(b, " buffers %lu", &n) == 1 && n == 1,
                              "status does not show 1 buffer:\n%s", r.out);
        }
        free(line);
        free(version);
}
END_TEST

START_TEST(test_create_sizes) {
        static const struct {
                const char *arg;
                uint64_t bytes;
        } sizes[] = {
                { "4096", 4096 },
                { "1", 4096 },
                { "64K", 64 * 1024 },
                { "1M", 1024 * 1024 },
                { "1G", UINT64_C(1) << 30 },
        };

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                _cleanup_run_result_ RunResult rel = { 0 };
                sd_bus_error error = SD_BUS_ERROR_NULL;
                uint64_t id, size = 0;
                int persistent = 0;
                char *path, *name = NULL;

                id = ctl_create(AS_ROOT, sizes[i].arg, "sized", true);
                path = buffer_path(id);
                ck_assert(sd_bus_get_property_trivial(test_bus(), BB_BUS_NAME, path,
                                                      BB_BUFFER_INTERFACE, "Size", &error, 't',
                                                      &size) >= 0);
                ck_assert_msg(size == sizes[i].bytes, "--size %s made %" PRIu64 " bytes",
                              sizes[i].arg, size);
                ck_assert(sd_bus_get_property_trivial(test_bus(), BB_BUS_NAME, path,
                                                      BB_BUFFER_INTERFACE, "Persistent", &error,
                                                      'b', &persistent) >= 0);
                ck_assert(persistent);
                ck_assert(sd_bus_get_property_string(test_bus(), BB_BUS_NAME, path,
                                                     BB_BUFFER_INTERFACE, "Name", &error,
                                                     &name) >= 0);
                ck_assert_str_eq(name, "sized");
                ctl(&rel, AS_ROOT, NULL, "release", ids(id));
                ck_assert_run_status(&rel, 0);
                ck_assert(!list_has(NULL, id));
                free(name);
                free(path);
        }
}
END_TEST

START_TEST(test_create_transient_and_ttl) {
        _cleanup_run_result_ RunResult r = { 0 }, r2 = { 0 };
        uint64_t id;

        released_watch();
        /* without --persistent the buffer dies with bufbrokerctl (and it says so) */
        ctl(&r, AS_ROOT, NULL, "create", "--size", "4K");
        ck_assert_run_status(&r, 0);
        id = strtoull(r.out, NULL, 10);
        ck_assert_msg(released_wait(id, 5000), "transient buffer %" PRIu64 " not released", id);
        assert_err_mentions(&r, "persistent", "create without --persistent");

        /* --ttl ends a persistent one (1s: it must still be there when we look) */
        ctl(&r2, AS_ROOT, NULL, "create", "--size", "4K", "--persistent", "--ttl", "1s");
        ck_assert_run_status(&r2, 0);
        id = strtoull(r2.out, NULL, 10);
        ck_assert(list_has(NULL, id));
        ck_assert_msg(released_wait(id, 5000), "--ttl 1s buffer %" PRIu64 " not expired", id);
}
END_TEST

START_TEST(test_usage_errors) {
        static const char *const bad_sizes[] = { "", "abc", "-1", "0", "1X", "1.5M", "64 K",
                                                 "18446744073709551616", "99999999999T", "0x10" };
        static const char *const bad_ttls[] = { "", "abc", "-5s", "0", "10 parsecs" };
        Snapshot base;

        stats_read(&base);
        for (size_t i = 0; i < ELEMENTSOF(bad_sizes); i++) {
                _cleanup_run_result_ RunResult r = { 0 };

                ctl(&r, AS_ROOT, NULL, "create", "--size", bad_sizes[i], "--persistent");
                ck_assert_msg(r.status == EXIT_USAGE, "create --size '%s': exit %d, want %d",
                              bad_sizes[i], r.status, EXIT_USAGE);
                if (*bad_sizes[i])
                        assert_err_mentions(&r, bad_sizes[i], "bad --size");
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_ttls); i++) {
                _cleanup_run_result_ RunResult r = { 0 };

                ctl(&r, AS_ROOT, NULL, "create", "--size", "4K", "--persistent", "--ttl",
                    bad_ttls[i]);
                ck_assert_msg(r.status == EXIT_USAGE, "create --ttl '%s': exit %d, want %d",
                              bad_ttls[i], r.status, EXIT_USAGE);
        }
        {
                static const char *const cmds[][4] = {
                        { "frobnicate", NULL },
                        { "create", NULL },                     /* --size required */
                        { "info", NULL },                       /* id required */
                        { "info", "abc", NULL },
                        { "info", "1", "2", NULL },
                        { "release", "-1", NULL },
                        { "share", "0123456789abcdef0123456789abcdef", NULL },  /* a token, not an id */
                        { "cat", NULL },
                        { "cat", "not-a-token", NULL },
                        { "write", "ABCDEF", NULL },
                        { "list", "--size", "4K", NULL },       /* option of another command */
                        { "exec", "--", "true", NULL },         /* neither --size nor --open */
                        { "exec", "--size", "4K", NULL },       /* no command */
                        { "exec", "--open", "xyz", NULL },
                };

                for (size_t i = 0; i < ELEMENTSOF(cmds); i++) {
                        _cleanup_run_result_ RunResult r = { 0 };

                        run_ctl(&r, AS_ROOT, NULL, cmds[i]);
                        ck_assert_msg(r.status == EXIT_USAGE, "bufbrokerctl %s %s: exit %d, want %d",
                                      cmds[i][0], cmds[i][1] ?: "", r.status, EXIT_USAGE);
                        ck_assert_msg(r.err && *r.err, "bufbrokerctl %s: no message", cmds[i][0]);
                }
        }
        {
                _cleanup_run_result_ RunResult r = { 0 };
                const char *argv[] = { harness_env("BUFBROKERCTL"), NULL };

                ck_assert(run_argv(&r, AS_ROOT, NULL, 0, NULL, argv) == 0);
                ck_assert_int_eq(r.status, EXIT_USAGE);
        }
        {
                _cleanup_run_result_ RunResult r = { 0 };
                const char *argv[] = { harness_env("BUFBROKERCTL"), "--version", NULL };

                ck_assert(run_argv(&r, AS_ROOT, NULL, 0, NULL, argv) == 0);
                ck_assert_run_status(&r, 0);
                ck_assert(strstr(r.out, "bufbrokerctl"));
        }
        {
                /* no broker at that address: a failure, not a usage error */
                _cleanup_run_result_ RunResult r = { 0 };
                const char *argv[] = { harness_env("BUFBROKERCTL"),
                                       "--address=unix:path=/nonexistent/bus", "status", NULL };

                ck_assert(run_argv(&r, AS_ROOT, NULL, 0, NULL, argv) == 0);
                ck_assert_int_eq(r.status, 1);
                assert_err_mentions(&r, "/nonexistent/bus", "unreachable address");
        }
        assert_back_to(&base, "after usage errors");
}
END_TEST

START_TEST(test_info_and_unknown_ids) {
        _cleanup_run_result_ RunResult r = { 0 };
        uint64_t id = ctl_create(AS_ROOT, "8K", "informed", true);
        char want[128];
        static const char *const verbs[] = { "info", "share", "release", "freeze", "cat",
                                             "write" };

        ctl(&r, AS_ROOT, NULL, "info", ids(id));
        ck_assert_run_status(&r, 0);
        snprintf(want, sizeof(want), "Id:         %" PRIu64 "\n", id);
        ck_assert_msg(strstr(r.out, want), "info:\n%s", r.out);
        ck_assert_msg(strstr(r.out, "Name:       informed\n"), "info:\n%s", r.out);
        ck_assert_msg(strstr(r.out, "Size:       8192"), "info:\n%s", r.out);
        ck_assert_msg(strstr(r.out, "OwnerUid:   0\nOwnerUser:  root\n"), "info:\n%s", r.out);
        ck_assert_msg(strstr(r.out, "Persistent: yes\n"), "info:\n%s", r.out);
        ck_assert_msg(strstr(r.out, "Frozen:     no\n"), "info:\n%s", r.out);
        ck_assert_msg(strstr(r.out, "Kind:       memfd\n"), "info:\n%s", r.out);
        /* from the Planes property: no OpenFds */
        ck_assert_msg(strstr(r.out, "Planes:     1\n  plane 0:  length 8192, stride 0, offset 0\n"), "info:\n%s",
                      r.out);
        /* the object path works as an id too */
        {
                _cleanup_run_result_ RunResult r2 = { 0 };
                char *path = buffer_path(id);

                ctl(&r2, AS_ROOT, NULL, "info", path);
                ck_assert_run_status(&r2, 0);
                ck_assert(strstr(r2.out, want));
                free(path);
        }
        /* unknown ids: exit 1, naming the id */
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                _cleanup_run_result_ RunResult e = { 0 };

                ctl(&e, AS_ROOT, "", verbs[i], "999");
                ck_assert_msg(e.status == 1, "%s 999: exit %d, want 1", verbs[i], e.status);
                assert_err_mentions(&e, "999", verbs[i]);
        }
        /* another uid: not its buffer */
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                _cleanup_run_result_ RunResult e = { 0 };

                ctl(&e, NOBODY_UID, "", verbs[i], ids(id));
                ck_assert_msg(e.status == 1, "%s %" PRIu64 " as nobody: exit %d, want 1", verbs[i],
                              id, e.status);
                assert_err_mentions(&e, ids(id), verbs[i]);
        }
        ck_assert(list_has(NULL, id));
}
END_TEST

/* ---- share, write, cat ------------------------------------------------------- */

START_TEST(test_write_cat_share) {
        uint64_t id = ctl_create(AS_ROOT, "4K", "wc", true);
        char *rw, *ro, *once, *bound;

        {
                _cleanup_run_result_ RunResult w = { 0 }, c = { 0 };

                ctl(&w, AS_ROOT, "hello, buffer", "write", ids(id));
                ck_assert_run_status(&w, 0);
                ctl(&c, AS_ROOT, NULL, "cat", ids(id));
                ck_assert_run_status(&c, 0);
                ck_assert_uint_eq(c.out_len, 4096);     /* the whole buffer */
                ck_assert(memcmp(c.out, "hello, buffer", 13) == 0);
                for (size_t i = 13; i < c.out_len; i++)
                        ck_assert_msg(c.out[i] == 0, "byte %zu is %d", i, c.out[i]);
        }

        rw = ctl_share(AS_ROOT, id, NULL);
        ro = ctl_share(AS_ROOT, id, (const char *[]) { "--read-only", NULL });
        once = ctl_share(AS_ROOT, id, (const char *[]) { "--single-use", "--read-only", NULL });
        bound = ctl_share(AS_ROOT, id, (const char *[]) { "--uid", "nobody", "--ttl", "1min", NULL });

        /* nobody writes through the read-write token, root reads the result */
        {
                _cleanup_run_result_ RunResult w = { 0 }, c = { 0 };

                ctl(&w, NOBODY_UID, "from nobody", "write", rw);
                ck_assert_run_status(&w, 0);
                ctl(&c, AS_ROOT, NULL, "cat", ids(id));
                ck_assert(memcmp(c.out, "from nobody", 11) == 0);
        }
        /* read-only token: cat works, write fails with exit 1 and says why */
        {
                _cleanup_run_result_ RunResult w = { 0 }, c = { 0 }, c2 = { 0 };

                ctl(&c, NOBODY_UID, NULL, "cat", ro);
                ck_assert_run_status(&c, 0);
                ck_assert(memcmp(c.out, "from nobody", 11) == 0);
                ctl(&w, NOBODY_UID, "overwrite", "write", ro);
                ck_assert_run_status(&w, 1);
                assert_err_mentions(&w, "read-only", "write through a read-only token");
                ctl(&c2, AS_ROOT, NULL, "cat", ids(id));
                ck_assert(memcmp(c2.out, "from nobody", 11) == 0);
        }
        /* single-use: once */
        {
                _cleanup_run_result_ RunResult c = { 0 }, c2 = { 0 };

                ctl(&c, NOBODY_UID, NULL, "cat", once);
                ck_assert_run_status(&c, 0);
                ctl(&c2, NOBODY_UID, NULL, "cat", once);
                ck_assert_run_status(&c2, 1);
        }
        /* bound to nobody: root is refused, nobody is not */
        {
                _cleanup_run_result_ RunResult c = { 0 }, c2 = { 0 };

                ctl(&c, AS_ROOT, NULL, "cat", bound);
                ck_assert_run_status(&c, 1);
                ctl(&c2, NOBODY_UID, NULL, "cat", bound);
                ck_assert_run_status(&c2, 0);
        }
        /* input larger than the buffer: refused, buffer unchanged */
        {
                _cleanup_run_result_ RunResult w = { 0 }, c = { 0 };
                char *big = malloc(4098);

                memset(big, 'B', 4097);
                big[4097] = 0;
                ctl(&w, AS_ROOT, big, "write", ids(id));
                ck_assert_run_status(&w, 1);
                ctl(&c, AS_ROOT, NULL, "cat", ids(id));
                ck_assert(memcmp(c.out, "from nobody", 11) == 0);
                free(big);
        }
        /* frozen: write fails, cat still works */
        {
                _cleanup_run_result_ RunResult f = { 0 }, f2 = { 0 }, w = { 0 }, c = { 0 },
                                               i = { 0 };

                ctl(&f, AS_ROOT, NULL, "freeze", ids(id));
                ck_assert_run_status(&f, 0);
                ctl(&i, AS_ROOT, NULL, "info", ids(id));
                ck_assert(strstr(i.out, "Frozen:     yes\n"));
                ctl(&f2, AS_ROOT, NULL, "freeze", ids(id));
                ck_assert_run_status(&f2, 1);
                assert_err_mentions(&f2, "frozen", "second freeze");
                ctl(&w, NOBODY_UID, "late", "write", rw);
                ck_assert_run_status(&w, 1);
                ctl(&c, NOBODY_UID, NULL, "cat", rw);
                ck_assert_run_status(&c, 0);
                ck_assert(memcmp(c.out, "from nobody", 11) == 0);
        }
        free(rw);
        free(ro);
        free(once);
        free(bound);
}
END_TEST

/* ---- exec -------------------------------------------------------------------- */

START_TEST(test_exec) {
        released_watch();
        /* a new buffer: the command gets its fd in BUFBROKER_FD and can write it */
        {
                _cleanup_run_result_ RunResult r = { 0 };

                ctl(&r, AS_ROOT, NULL, "exec", "--size", "4K", "--", "sh", "-c",
                    "test \"$BUFBROKER_FD\" -ge 3 && printf exec-was-here >&\"$BUFBROKER_FD\" && "
                    "head -c 13 /proc/self/fd/\"$BUFBROKER_FD\" && echo \" $BUFBROKER_ID\"");
                ck_assert_run_status(&r, 0);
                ck_assert_msg(strncmp(r.out, "exec-was-here ", 14) == 0, "exec printed '%s'", r.out);
                /* the buffer lived as long as the command, then was released */
                ck_assert_msg(released_wait(strtoull(r.out + 14, NULL, 10), 5000),
                              "exec's buffer was not released after the command");
        }
        /* the command's exit status is bufbrokerctl's */
        {
                _cleanup_run_result_ RunResult r = { 0 };

                ctl(&r, AS_ROOT, NULL, "exec", "--size", "4K", "--", "sh", "-c", "exit 7");
                ck_assert_run_status(&r, 7);
        }
        /* --open TOKEN, as another uid, read-only: reading works, writing fails */
        {
                _cleanup_run_result_ RunResult w = { 0 }, r = { 0 }, r2 = { 0 };
                uint64_t id = ctl_create(AS_ROOT, "4K", "exec-open", true);
                char *ro;

                ctl(&w, AS_ROOT, "shared-data", "write", ids(id));
                ck_assert_run_status(&w, 0);
                ro = ctl_share(AS_ROOT, id, (const char *[]) { "--read-only", NULL });
                ctl(&r, NOBODY_UID, NULL, "exec", "--open", ro, "--", "sh", "-c",
                    "head -c 11 <&\"$BUFBROKER_FD\"");
                ck_assert_run_status(&r, 0);
                ck_assert_str_eq(r.out, "shared-data");
                ctl(&r2, NOBODY_UID, NULL, "exec", "--open", ro, "--", "sh", "-c",
                    "printf x >&\"$BUFBROKER_FD\"");
                ck_assert_msg(r2.status != 0, "a write through a read-only exec fd succeeded");
                free(ro);
        }
        /* a command that cannot be run: 127 */
        {
                _cleanup_run_result_ RunResult r = { 0 };

                ctl(&r, AS_ROOT, NULL, "exec", "--size", "4K", "--", "/nonexistent/command");
                ck_assert_run_status(&r, 127);
        }
}
END_TEST

/* ---- list --json ------------------------------------------------------------- */

START_TEST(test_list_json) {
        /* Python sees the name as this literal: JSON escapes decoded, UTF-8 kept */
        static const char *const odd_name = "quote\" back\\slash /slash \xc3\xbcnicode";
        static const char *const odd_name_py = "'quote\" back\\\\slash /slash \\u00fcnicode'";
        uint64_t plain = ctl_create(AS_ROOT, "4K", "plain", true);
        uint64_t odd = ctl_create(AS_ROOT, "4K", odd_name, true);
        uint64_t theirs = ctl_create(NOBODY_UID, "4K", "nobodys", true);
        _cleanup_run_result_ RunResult r = { 0 }, rn = { 0 }, empty = { 0 }, table = { 0 };

        /* --json alone: pretty */
        ctl(&r, AS_ROOT, NULL, "list", "--json");
        ck_assert_run_status(&r, 0);
        assert_json(r.out, "pretty",
                    "{b['id']: (b['name'], b['owner_uid']) for b in d if b['id'] in (%" PRIu64 ", %" PRIu64
                    ", %" PRIu64 ")} == {%" PRIu64 ": ('plain', 0), %" PRIu64 ": (%s, 0), %" PRIu64
                    ": ('nobodys', %u)}",
                    plain, odd, theirs, plain, odd, odd_name_py, theirs, (unsigned) NOBODY_UID);

        /* nobody sees only its own */
        ctl(&rn, NOBODY_UID, NULL, "list", "--json");
        ck_assert_run_status(&rn, 0);
        assert_json(rn.out, "pretty", "[b['id'] for b in d] == [%" PRIu64 "]", theirs);

        /* the table names them too */
        ctl(&table, AS_ROOT, NULL, "list");
        ck_assert_run_status(&table, 0);
        ck_assert(strstr(table.out, "plain") && strstr(table.out, "nobodys") && strstr(table.out, odd_name));

        /* and an empty list is valid JSON as well */
        {
                _cleanup_run_result_ RunResult a = { 0 }, b = { 0 }, c = { 0 };

                ctl(&a, AS_ROOT, NULL, "release", ids(plain));
                ctl(&b, AS_ROOT, NULL, "release", ids(odd));
                ctl(&c, AS_ROOT, NULL, "release", ids(theirs));
                ck_assert_run_status(&a, 0);
                ck_assert_run_status(&b, 0);
                ck_assert_run_status(&c, 0);
        }
        ctl(&empty, AS_ROOT, NULL, "list", "--json");
        ck_assert_run_status(&empty, 0);
        assert_json(empty.out, "pretty", "d == []");
}
END_TEST

START_TEST(test_json_status_list_info) {
        static const char *const modes[] = { "pretty", "short" };
        uint64_t mine = ctl_create(AS_ROOT, "8K", "json-mine", true);
        uint64_t theirs = ctl_create(NOBODY_UID, "4K", "json-theirs", true);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *version = NULL;
        _cleanup_free_ char *nobody = strdup(nobody_name());

        ck_assert(sd_bus_get_property_string(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                             "Version", &error, &version) >= 0);
        for (size_t m = 0; m < ELEMENTSOF(modes); m++) {
                _cleanup_run_result_ RunResult st = { 0 }, ls = { 0 }, lsn = { 0 }, inf = { 0 };

                ctl_json(&st, NOBODY_UID, modes[m], (const char *[]) { "status", NULL });
                assert_json(st.out, modes[m],
                            "d['version'] == '%s' and d['stats']['buffers'] == 2 and d['stats']['bytes'] == 12288 "
                            "and d['limits']['%s'] > 0 and all(type(v) is int for v in d['limits'].values())",
                            version, BB_LIMIT_MAX_BUFFERS_PER_UID);

                ctl_json(&ls, AS_ROOT, modes[m], (const char *[]) { "list", NULL });
                assert_json(ls.out, modes[m],
                            "[(b['name'], b['owner_uid'], b['owner_user'], b['size'], b['kind'], b['persistent'], "
                            "b['frozen'], b['holders'], b['planes'], b['format'], b['path']) "
                            "for b in d if b['id'] == %" PRIu64 "] == "
                            "[('json-mine', 0, 'root', 8192, 'memfd', True, False, 0, "
                            "[{'length': 8192, 'stride': 0, 'offset': 0}], None, "
                            "'" BB_BUFFER_PATH_PREFIX "/%" PRIu64 "')] and "
                            "[(b['owner_uid'], b['owner_user']) for b in d if b['id'] == %" PRIu64 "] == "
                            "[(%u, '%s')] and all(type(b['created_usec']) is int for b in d)",
                            mine, mine, theirs, (unsigned) NOBODY_UID, nobody);

                /* nobody sees its own buffer only */
                ctl_json(&lsn, NOBODY_UID, modes[m], (const char *[]) { "list", NULL });
                assert_json(lsn.out, modes[m], "[b['id'] for b in d] == [%" PRIu64 "]", theirs);

                ctl_json(&inf, AS_ROOT, modes[m], (const char *[]) { "info", ids(mine), NULL });
                assert_json(inf.out, modes[m],
                            "d['id'] == %" PRIu64 " and d['name'] == 'json-mine' and d['owner_user'] == 'root' "
                            "and d['owner_uid'] == 0 and d['size'] == 8192 and d['holders'] == 0 and "
                            "d['planes'] == [{'length': 8192, 'stride': 0, 'offset': 0}] and d['format'] is None "
                            "and d['created_usec'] > 0", mine);
        }
        /* --json alone is pretty; --json=off is the text */
        {
                _cleanup_run_result_ RunResult bare = { 0 }, off = { 0 };

                ctl(&bare, AS_ROOT, NULL, "info", ids(mine), "--json");
                ck_assert_run_status(&bare, 0);
                assert_json(bare.out, "pretty", "d['id'] == %" PRIu64, mine);
                ctl(&off, AS_ROOT, NULL, "info", ids(mine), "--json=off");
                ck_assert_run_status(&off, 0);
                ck_assert_msg(strstr(off.out, "Name:       json-mine\n") && strstr(off.out, "OwnerUid:   0\nOwnerUser:  root\n"),
                              "info --json=off:\n%s", off.out);
        }
        /* an empty list is an empty array, in both modes */
        {
                _cleanup_run_result_ RunResult a = { 0 }, ep = { 0 }, es = { 0 };

                ctl(&a, AS_ROOT, NULL, "release", ids(mine), ids(theirs));
                ck_assert_run_status(&a, 0);
                ctl_json(&ep, NOBODY_UID, "pretty", (const char *[]) { "list", NULL });
                ck_assert_str_eq(ep.out, "[]\n");
                ctl_json(&es, NOBODY_UID, "short", (const char *[]) { "list", NULL });
                ck_assert_str_eq(es.out, "[]\n");
        }
}
END_TEST

START_TEST(test_json_create_share) {
        _cleanup_run_result_ RunResult one = { 0 }, many = { 0 }, sh = { 0 }, cat = { 0 }, rel = { 0 };
        uint64_t id, a, b;
        char token[BB_TOKEN_LEN + 1];
        const char *t;

        ctl_json(&one, AS_ROOT, "short", (const char *[]) { "create", "--size", "4K", "--name", "js-one",
                                                             "--persistent", NULL });
        assert_json(one.out, "short",
                    "len(d) == 1 and d[0]['name'] == 'js-one' and d[0]['size'] == 4096 and d[0]['persistent'] "
                    "and d[0]['owner_user'] == 'root' and d[0]['kind'] == 'memfd' and len(d[0]['planes']) == 1");
        t = strstr(one.out, "\"id\":");
        ck_assert(t && sscanf(t, "\"id\":%" SCNu64, &id) == 1);
        ck_assert(list_has(NULL, id));

        ctl_json(&many, AS_ROOT, "pretty", (const char *[]) { "create", "--size", "4K", "--count", "2",
                                                              "--persistent", NULL });
        assert_json(many.out, "pretty", "len(d) == 2 and d[0]['id'] != d[1]['id'] and "
                                        "all(b['size'] == 4096 and b['persistent'] for b in d)");
        t = strstr(many.out, "\"id\": ");
        ck_assert(t && sscanf(t, "\"id\": %" SCNu64, &a) == 1);
        t = strstr(t + 1, "\"id\": ");
        ck_assert(t && sscanf(t, "\"id\": %" SCNu64, &b) == 1);
        ck_assert(list_has(NULL, a) && list_has(NULL, b));

        /* share: the token, and it works */
        ctl_json(&sh, AS_ROOT, "short", (const char *[]) { "share", ids(id), "--read-only", NULL });
        assert_json(sh.out, "short",
                    "sorted(d) == ['id', 'path', 'token'] and d['id'] == %" PRIu64 " and "
                    "d['path'] == '" BB_BUFFER_PATH_PREFIX "/%" PRIu64 "' and len(d['token']) == %d and "
                    "all(c in '0123456789abcdef' for c in d['token'])", id, id, BB_TOKEN_LEN);
        t = strstr(sh.out, "\"token\":\"");
        ck_assert(t);
        memcpy(token, t + 9, BB_TOKEN_LEN);
        token[BB_TOKEN_LEN] = 0;
        ctl(&cat, NOBODY_UID, NULL, "cat", token);
        ck_assert_run_status(&cat, 0);
        ck_assert_uint_eq(cat.out_len, 4096);

        ctl(&rel, AS_ROOT, NULL, "release", ids(id), ids(a), ids(b));
        ck_assert_run_status(&rel, 0);
}
END_TEST

START_TEST(test_json_monitor) {
        char addr[200], want[64];
        BgProc mon;
        uint64_t id;
        _cleanup_run_result_ RunResult rel = { 0 };
        _cleanup_free_ char *docs = NULL;
        size_t n = 0;

        snprintf(addr, sizeof(addr), "--address=%s", H->address);
        /* signals go only to those who may see the buffer: root's monitor */
        ck_assert(bg_spawn(&mon, AS_ROOT, NULL,
                           (const char *[]) { harness_env("BUFBROKERCTL"), addr, "monitor", "--json=short",
                                              NULL }) == 0);
        ck_assert_msg(bg_wait_output(&mon, "Monitoring", scaled_ms(10000)), "monitor did not start: %s",
                      mon.out ?: "");
        id = ctl_create(AS_ROOT, "4K", "watched-json", true);
        ctl(&rel, AS_ROOT, NULL, "release", ids(id));
        ck_assert_run_status(&rel, 0);
        snprintf(want, sizeof(want), "\"id\":%" PRIu64 ",\"reason\":\"released\"}\n", id);
        ck_assert_msg(bg_wait_output(&mon, want, scaled_ms(5000)), "monitor printed:\n%s", mon.out ?: "");
        ck_assert_int_eq(bg_stop(&mon), 0);

        /* stdout and stderr share the pipe: the documents are the lines
         * that start with '{' (the "Monitoring ..." note is on stderr) */
        docs = calloc(1, mon.out_len + 1);
        ck_assert_ptr_nonnull(docs);
        for (const char *p = mon.out; p && *p;) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t) (nl - p) + 1 : strlen(p);

                if (*p == '{') {
                        memcpy(docs + n, p, len);
                        n += len;
                }
                p += len;
        }
        assert_json(docs, "lines-short",
                    "d[-1] == {'signal': 'BufferReleased', 'path': '" BB_BUFFER_PATH_PREFIX "/%" PRIu64 "', "
                    "'id': %" PRIu64 ", 'reason': 'released'}", id, id);
        free(mon.out);
}
END_TEST

START_TEST(test_json_refused) {
        static const char *const data_verbs[][3] = {
                { "status", NULL },
                { "list", NULL },
                { "info", "1", NULL },
                { "share", "1", NULL },
                { "create", "--size", "4K" },
                { "monitor", NULL },
        };
        static const char *const bad_modes[] = { "--json=bogus", "--json=", "--json=PRETTY", "--json=pretty,short" };
        Snapshot base;

        stats_read(&base);
        for (size_t i = 0; i < ELEMENTSOF(data_verbs); i++)
                for (size_t k = 0; k < ELEMENTSOF(bad_modes); k++) {
                        _cleanup_run_result_ RunResult r = { 0 };
                        const char *args[6] = { 0 };
                        size_t n = 0;

                        for (size_t j = 0; j < 3 && data_verbs[i][j]; j++)
                                args[n++] = data_verbs[i][j];
                        args[n++] = bad_modes[k];
                        run_ctl(&r, AS_ROOT, NULL, args);
                        ck_assert_msg(r.status == EXIT_USAGE, "%s %s: exit %d, want %d", data_verbs[i][0],
                                      bad_modes[k], r.status, EXIT_USAGE);
                        assert_err_mentions(&r, "--json", bad_modes[k]);
                        ck_assert_msg(r.out_len == 0, "%s %s printed '%s'", data_verbs[i][0], bad_modes[k], r.out);
                }
        /* --json=help lists the modes */
        {
                _cleanup_run_result_ RunResult r = { 0 };

                ctl(&r, AS_ROOT, NULL, "--json=help");
                ck_assert_run_status(&r, 0);
                ck_assert_str_eq(r.out, "pretty\nshort\noff\n");
        }
        /* commands that print no data take no --json, nor --no-legend */
        {
                static const char *const quiet[][3] = {
                        { "release", "1", "--json" },
                        { "freeze", "1", "--json=short" },
                        { "cat", "1", "--no-legend" },
                        { "write", "1", "--json=pretty" },
                };

                for (size_t i = 0; i < ELEMENTSOF(quiet); i++) {
                        _cleanup_run_result_ RunResult r = { 0 };

                        ctl(&r, AS_ROOT, NULL, quiet[i][0], quiet[i][1], quiet[i][2]);
                        ck_assert_msg(r.status == EXIT_USAGE, "%s %s: exit %d", quiet[i][0], quiet[i][2], r.status);
                        assert_err_mentions(&r, "does not apply", quiet[i][0]);
                }
        }
        assert_back_to(&base, "after refused --json");
}
END_TEST

/* ---- the table: legend, user names -------------------------------------------- */

/* The line of out whose first column is id, or NULL. */
static char *table_row(const char *out, uint64_t id) {
        char prefix[32];
        size_t len = (size_t) snprintf(prefix, sizeof(prefix), "%" PRIu64 " ", id);

        for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (strncmp(p, prefix, len) == 0)
                        return strndup(p, strchrnul(p, '\n') - p);
        return NULL;
}

/* Does the row's n-th whitespace-separated field (from 0) equal want? */
static bool row_field_is(const char *row, unsigned n, const char *want) {
        const char *p = row;

        for (unsigned i = 0;; i++) {
                size_t len;

                p += strspn(p, " ");
                len = strcspn(p, " ");
                if (len == 0)
                        return false;
                if (i == n)
                        return len == strlen(want) && strncmp(p, want, len) == 0;
                p += len;
        }
}

static size_t count_lines(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                n += *s == '\n';
        return n;
}

START_TEST(test_list_legend_and_users) {
        uint64_t mine = ctl_create(AS_ROOT, "4K", "legend-mine", true);
        uint64_t theirs = ctl_create(NOBODY_UID, "4K", "legend-theirs", true);
        _cleanup_run_result_ RunResult full = { 0 }, bare = { 0 }, one = { 0 };
        _cleanup_free_ char *row_mine = NULL, *row_theirs = NULL, *nobody = strdup(nobody_name());

        ctl(&full, AS_ROOT, NULL, "list");
        ck_assert_run_status(&full, 0);
        ck_assert_msg(strncmp(full.out, "ID ", 3) == 0 && strstr(full.out, " UID ") && strstr(full.out, " USER ") &&
                              strstr(full.out, " NAME\n"),
                      "no header:\n%s", full.out);
        ck_assert_msg(strstr(full.out, "\n\n2 buffers listed.\n") &&
                              strcmp(full.out + full.out_len - strlen("2 buffers listed.\n"), "2 buffers listed.\n") == 0,
                      "no footer:\n%s", full.out);
        ck_assert_uint_eq(count_lines(full.out), 1 + 2 + 2);

        /* owners: UID, then USER */
        row_mine = table_row(full.out, mine);
        row_theirs = table_row(full.out, theirs);
        ck_assert_msg(row_mine && row_field_is(row_mine, 3, "0") && row_field_is(row_mine, 4, "root"),
                      "root's row: %s", row_mine ?: full.out);
        ck_assert_msg(row_theirs && row_field_is(row_theirs, 3, "65534") && row_field_is(row_theirs, 4, nobody),
                      "nobody's row: %s (want 65534 %s)", row_theirs ?: full.out, nobody);
        /* the header names the fields the rows have */
        ck_assert(row_field_is(full.out, 3, "UID") && row_field_is(full.out, 4, "USER"));
        ck_assert(strstr(row_mine, "legend-mine") && strstr(row_theirs, "legend-theirs"));

        /* --no-legend: the rows alone, the same rows */
        ctl(&bare, AS_ROOT, NULL, "--no-legend", "list");
        ck_assert_run_status(&bare, 0);
        ck_assert_uint_eq(count_lines(bare.out), 2);
        ck_assert_msg(!strstr(bare.out, "ID ") && !strstr(bare.out, "listed"), "--no-legend:\n%s", bare.out);
        {
                _cleanup_free_ char *a = table_row(bare.out, mine), *b = table_row(bare.out, theirs);

                ck_assert_msg(a && b && row_field_is(a, 4, "root") && row_field_is(b, 4, nobody), "--no-legend:\n%s",
                              bare.out);
        }
        /* one buffer: singular; none: "0 buffers listed." and with --no-legend nothing at all */
        ctl(&one, NOBODY_UID, NULL, "list");
        ck_assert_run_status(&one, 0);
        ck_assert_msg(strstr(one.out, "\n1 buffer listed.\n"), "%s", one.out);
        {
                _cleanup_run_result_ RunResult rel = { 0 }, none = { 0 }, none_bare = { 0 };

                ctl(&rel, AS_ROOT, NULL, "release", ids(mine), ids(theirs));
                ck_assert_run_status(&rel, 0);
                ctl(&none, AS_ROOT, NULL, "list");
                ck_assert_run_status(&none, 0);
                ck_assert_msg(strstr(none.out, "\n0 buffers listed.\n"), "%s", none.out);
                ctl(&none_bare, AS_ROOT, NULL, "list", "--no-legend");
                ck_assert_run_status(&none_bare, 0);
                ck_assert_uint_eq(none_bare.out_len, 0);
        }
}
END_TEST

/* A uid without a passwd entry shows as its number. dbus-broker lets such
 * a uid connect; dbus-daemon refuses it (it looks the uid up), so there
 * this case checks that refusal and format_user() is covered by
 * tests/api ("bufbrokerctl argument helpers", test_format_user). */
START_TEST(test_list_unnamed_uid) {
        _cleanup_run_result_ RunResult c = { 0 }, table = { 0 }, json = { 0 }, rel = { 0 };
        _cleanup_free_ char *row = NULL;
        char uid_s[16];
        uid_t uid = 4242;
        uint64_t id;

        while (getpwuid(uid))
                uid++;
        snprintf(uid_s, sizeof(uid_s), "%u", (unsigned) uid);

        ctl(&c, uid, NULL, "create", "--size", "4K", "--name", "unnamed-owner", "--persistent");
        if (H->kind == BUS_DBUS_DAEMON) {
                ck_assert_msg(c.status == 1, "dbus-daemon let uid %s connect: exit %d", uid_s, c.status);
                assert_err_mentions(&c, "cannot connect", "a uid without a passwd entry on dbus-daemon");
                return;
        }
        ck_assert_run_status(&c, 0);
        id = strtoull(c.out, NULL, 10);

        ctl(&table, AS_ROOT, NULL, "list");
        ck_assert_run_status(&table, 0);
        row = table_row(table.out, id);
        ck_assert_msg(row && row_field_is(row, 3, uid_s) && row_field_is(row, 4, uid_s), "row: %s",
                      row ?: table.out);
        ctl(&json, AS_ROOT, NULL, "list", "--json=short");
        ck_assert_run_status(&json, 0);
        assert_json(json.out, "short",
                    "[(b['owner_uid'], b['owner_user']) for b in d if b['id'] == %" PRIu64 "] == [(%s, None)]", id,
                    uid_s);
        ctl(&rel, AS_ROOT, NULL, "release", ids(id));
        ck_assert_run_status(&rel, 0);
}
END_TEST

/* ---- help, unknown options, "--" ------------------------------------------------ */

START_TEST(test_verb_help) {
        static const char *const verbs[] = { "status", "list", "create", "info", "share", "release", "freeze",
                                             "cat", "write", "exec", "monitor", "help" };
        _cleanup_run_result_ RunResult global = { 0 };

        ctl(&global, AS_ROOT, NULL, "--help");
        ck_assert_run_status(&global, 0);
        ck_assert(strstr(global.out, "\nCommands:\n"));

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                /* VERB --help, VERB -h, --help VERB, help VERB: all the same text */
                const char *const forms[][3] = {
                        { verbs[i], "--help", NULL },
                        { verbs[i], "-h", NULL },
                        { "--help", verbs[i], NULL },
                        { "help", verbs[i], NULL },
                };
                _cleanup_free_ char *first = NULL, *usage = NULL;

                ck_assert(asprintf(&usage, "bufbrokerctl [OPTIONS...] %s", verbs[i]) > 0);
                for (size_t f = 0; f < ELEMENTSOF(forms); f++) {
                        _cleanup_run_result_ RunResult r = { 0 };

                        run_ctl(&r, AS_ROOT, NULL, forms[f]);
                        ck_assert_msg(r.status == 0, "%s %s: exit %d", forms[f][0], forms[f][1], r.status);
                        ck_assert_msg(strncmp(r.out, usage, strlen(usage)) == 0, "%s %s does not start with '%s':\n%.300s",
                                      forms[f][0], forms[f][1], usage, r.out);
                        ck_assert_msg(!strstr(r.out, "Commands:"), "%s %s prints the global help", forms[f][0],
                                      forms[f][1]);
                        ck_assert_msg(!r.err || !*r.err, "%s %s: stderr %s", forms[f][0],
                                      forms[f][1], r.err);
                        if (!first)
                                first = strdup(r.out);
                        else
                                ck_assert_str_eq(r.out, first);
                }
        }
        /* a verb's help lists its options and no others */
        {
                _cleanup_run_result_ RunResult share = { 0 }, rel = { 0 };

                ctl(&share, AS_ROOT, NULL, "share", "--help");
                ck_assert(strstr(share.out, "--single-use") && strstr(share.out, "--uid UID") &&
                          strstr(share.out, "--json=MODE") && !strstr(share.out, "--v4l2") &&
                          !strstr(share.out, "--size"));
                ctl(&rel, AS_ROOT, NULL, "release", "--help");
                ck_assert(!strstr(rel.out, "--json") && !strstr(rel.out, "--ttl"));
        }
        /* help of nothing known */
        {
                _cleanup_run_result_ RunResult a = { 0 }, b = { 0 }, c = { 0 };

                ctl(&a, AS_ROOT, NULL, "help", "frobnicate");
                ck_assert_run_status(&a, EXIT_USAGE);
                assert_err_mentions(&a, "frobnicate", "help frobnicate");
                ctl(&b, AS_ROOT, NULL, "frobnicate", "--help");
                ck_assert_run_status(&b, EXIT_USAGE);
                assert_err_mentions(&b, "unknown command 'frobnicate'", "frobnicate --help");
                ctl(&c, AS_ROOT, NULL, "help");
                ck_assert_run_status(&c, 0);
                ck_assert_str_eq(c.out, global.out);
        }
}
END_TEST

START_TEST(test_unknown_options) {
        static const struct {
                const char *args[4];
                const char *says;
                const char *hint;
        } cases[] = {
                { { "list", "--bogus" }, "unrecognized option '--bogus'", "'bufbrokerctl list --help'" },
                { { "--bogus", "status" }, "unrecognized option '--bogus'", "'bufbrokerctl status --help'" },
                { { "info", "1", "-x" }, "invalid option -- 'x'", "'bufbrokerctl info --help'" },
                { { "list", "--size", "4K" }, "list: option --size does not apply", "'bufbrokerctl list --help'" },
                { { "status", "--single-use" }, "status: option --single-use does not apply",
                  "'bufbrokerctl status --help'" },
                { { "share", "1", "--uid" }, "option '--uid' requires an argument", "'bufbrokerctl share --help'" },
                { { "--no-legend=yes", "list" }, "option '--no-legend=yes' does not take an argument",
                  "'bufbrokerctl list --help'" },
                { { "--bogus" }, "unrecognized option '--bogus'", "'bufbrokerctl --help'" },
        };
        Snapshot base;

        stats_read(&base);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_run_result_ RunResult r = { 0 };

                run_ctl(&r, AS_ROOT, NULL, cases[i].args);
                ck_assert_msg(r.status == EXIT_USAGE, "%s %s: exit %d, want %d", cases[i].args[0],
                              cases[i].args[1] ?: "", r.status, EXIT_USAGE);
                assert_err_mentions(&r, cases[i].says, cases[i].args[0]);
                assert_err_mentions(&r, cases[i].hint, cases[i].args[0]);
                ck_assert_uint_eq(r.out_len, 0);
        }
        assert_back_to(&base, "after unknown options");
}
END_TEST

START_TEST(test_double_dash) {
        uint64_t id = ctl_create(AS_ROOT, "4K", "dashed", true);
        Snapshot base;

        /* "-1" is read as an option; the message says how to pass it */
        {
                _cleanup_run_result_ RunResult r = { 0 };

                ctl(&r, AS_ROOT, NULL, "release", "-1");
                ck_assert_run_status(&r, EXIT_USAGE);
                assert_err_mentions(&r, "invalid option -- '1'", "release -1");
                assert_err_mentions(&r, "'--'", "release -1");
        }
        /* after "--" it is an argument, and not a buffer id */
        stats_read(&base);
        {
                static const char *const verbs[] = { "release", "info", "freeze", "share", "cat" };

                for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                        _cleanup_run_result_ RunResult r = { 0 };

                        ctl(&r, AS_ROOT, NULL, verbs[i], "--", "-1");
                        ck_assert_msg(r.status == EXIT_USAGE, "%s -- -1: exit %d", verbs[i], r.status);
                        assert_err_mentions(&r, "'-1' is ", verbs[i]);
                        assert_err_mentions(&r, "buffer id", verbs[i]);
                }
        }
        /* "--json" after "--" is an argument too, not the option */
        {
                _cleanup_run_result_ RunResult r = { 0 };

                ctl(&r, AS_ROOT, NULL, "info", "--", "--json");
                ck_assert_run_status(&r, EXIT_USAGE);
                assert_err_mentions(&r, "'--json' is not a buffer id", "info -- --json");
        }
        assert_back_to(&base, "after '--' errors");
        /* options before "--" still count; the id after it is used */
        {
                _cleanup_run_result_ RunResult i = { 0 }, r = { 0 };

                ctl(&i, AS_ROOT, NULL, "--json=short", "info", "--", ids(id));
                ck_assert_run_status(&i, 0);
                assert_json(i.out, "short", "d['name'] == 'dashed'");
                ctl(&r, AS_ROOT, NULL, "release", "--", ids(id));
                ck_assert_run_status(&r, 0);
                ck_assert(!list_has(NULL, id));
        }
}
END_TEST

/* ---- monitor ------------------------------------------------------------------- */

START_TEST(test_monitor) {
        char addr[200], want[200];
        BgProc mon;
        uint64_t id, hidden;
        _cleanup_run_result_ RunResult rel = { 0 };

        snprintf(addr, sizeof(addr), "--address=%s", H->address);
        ck_assert(bg_spawn(&mon, NOBODY_UID, NULL,
                           (const char *[]) { harness_env("BUFBROKERCTL"), addr, "monitor", NULL }) == 0);
        ck_assert_msg(bg_wait_output(&mon, "Monitoring", scaled_ms(10000)),
                      "monitor did not start: %s", mon.out ?: "");
        /* root's buffer first: nobody may not see it, and hears nothing of it */
        hidden = ctl_create(AS_ROOT, "4K", "hidden", true);
        ctl(&rel, AS_ROOT, NULL, "release", ids(hidden));
        ck_assert_run_status(&rel, 0);
        run_result_done(&rel);
        id = ctl_create(NOBODY_UID, "4K", "watched", true);
        ctl(&rel, NOBODY_UID, NULL, "release", ids(id));
        ck_assert_run_status(&rel, 0);
        snprintf(want, sizeof(want), "BufferReleased %s/%" PRIu64 " %" PRIu64 " " BB_REASON_RELEASED "\n",
                 BB_BUFFER_PATH_PREFIX, id, id);
        ck_assert_msg(bg_wait_output(&mon, want, scaled_ms(5000)), "monitor printed:\n%s",
                      mon.out ?: "");
        snprintf(want, sizeof(want), "%s/%" PRIu64 " ", BB_BUFFER_PATH_PREFIX, hidden);
        ck_assert_msg(!strstr(mon.out, want), "monitor of uid %u printed root's buffer:\n%s",
                      (unsigned) NOBODY_UID, mon.out);
        /* SIGTERM ends it cleanly */
        ck_assert_int_eq(bg_stop(&mon), 0);
        free(mon.out);
}
END_TEST

/* ---- create --kind --------------------------------------------------------- */

/* --kind memfd goes through Create: the same buffer as CreateMemfd makes,
 * and every command works on it; the handle columns say it has none. */
START_TEST(test_create_kind_memfd) {
        _cleanup_run_result_ RunResult cr = { 0 }, w = { 0 }, c = { 0 }, inf = { 0 }, ls = { 0 }, js = { 0 },
                                       ex = { 0 }, many = { 0 }, rel = { 0 };
        _cleanup_free_ char *row = NULL, *kind = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t id, size = 0;
        char *path;

        ctl(&cr, NOBODY_UID, NULL, "create", "--kind", "memfd", "--size", "5000", "--name", "kind-memfd",
            "--persistent");
        ck_assert_run_status(&cr, 0);
        id = strtoull(cr.out, NULL, 10);
        ck_assert_msg(id > 0, "create --kind memfd printed '%s'", cr.out);
        path = buffer_path(id);
        ck_assert(sd_bus_get_property_string(test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE, BB_PROP_KIND,
                                             &error, &kind) >= 0);
        ck_assert_str_eq(kind, BB_KIND_MEMFD);
        ck_assert(sd_bus_get_property_trivial(test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE, BB_PROP_SIZE,
                                              &error, 't', &size) >= 0);
        ck_assert_uint_eq(size, 8192);
        free(path);

        ctl(&w, NOBODY_UID, "memfd by kind", "write", ids(id));
        ck_assert_run_status(&w, 0);
        ctl(&c, NOBODY_UID, NULL, "cat", ids(id));
        ck_assert_run_status(&c, 0);
        ck_assert_uint_eq(c.out_len, 8192);
        ck_assert(memcmp(c.out, "memfd by kind", 13) == 0);

        /* info: no handle lines, the allocated bytes (one page written) */
        ctl(&inf, NOBODY_UID, NULL, "info", ids(id));
        ck_assert_run_status(&inf, 0);
        ck_assert_msg(strstr(inf.out, "Kind:       memfd\n") && !strstr(inf.out, "ShmName:") &&
                              !strstr(inf.out, "ShmId:") && strstr(inf.out, "Allocated:  "),
                      "info:\n%s", inf.out);
        /* list: HANDLE is "-", the column before NAME; the columns before it stay put */
        ctl(&ls, NOBODY_UID, NULL, "list");
        ck_assert_run_status(&ls, 0);
        ck_assert_msg(strstr(ls.out, " CREATED ") && strstr(ls.out, " HANDLE NAME\n"), "list:\n%s", ls.out);
        row = table_row(ls.out, id);
        ck_assert_msg(row && row_field_is(row, 1, "memfd") && row_field_is(row, 3, "65534") &&
                              row_field_is(row, 10, "-") && row_field_is(row, 11, "kind-memfd"),
                      "list row: %s", row ?: ls.out);
        /* JSON: the handle keys, null */
        ctl_json(&js, NOBODY_UID, "short", (const char *[]) { "info", ids(id), NULL });
        assert_json(js.out, "short",
                    "d['kind'] == 'memfd' and d['shm_name'] is None and d['shmid'] is None and "
                    "type(d['allocated_bytes']) is int and d['allocated_bytes'] >= 4096");

        /* exec: the fd and the kind; no shm name, no shmid */
        ctl(&ex, NOBODY_UID, NULL, "exec", "--kind", "memfd", "--size", "4K", "--", "sh", "-c",
            "echo \"$BUFBROKER_KIND ${BUFBROKER_FD:+fd} ${BUFBROKER_SHM_NAME-none} ${BUFBROKER_SHMID-none}\"");
        ck_assert_run_status(&ex, 0);
        ck_assert_str_eq(ex.out, "memfd fd none none\n");

        /* --count with --kind memfd: CreateMemfds, as without --kind */
        ctl(&many, NOBODY_UID, NULL, "create", "--kind", "memfd", "--size", "4K", "--count", "3");
        ck_assert_run_status(&many, 0);
        ck_assert_uint_eq(count_lines(many.out), 3);

        ctl(&rel, NOBODY_UID, NULL, "release", ids(id));
        ck_assert_run_status(&rel, 0);
        ck_assert(!list_has(NULL, id));
}
END_TEST

/* What --kind refuses before any bus traffic (exit 2, a message naming
 * the problem), and nothing is left behind. */
START_TEST(test_create_kind_usage_errors) {
        static const struct {
                const char *args[12];
                const char *needle;
        } cases[] = {
                { { "create", "--kind", "shm", "--size", "4K", NULL }, "'shm'" },
                { { "create", "--kind", "", "--size", "4K", NULL }, "--kind" },
                { { "create", "--kind", "MEMFD", "--size", "4K", NULL }, "'MEMFD'" },
                { { "create", "--kind", "v4l2", "--size", "4K", NULL }, "'v4l2'" },
                { { "create", "--kind", "posix", "--hugetlb", "--size", "4K", NULL }, "--kind posix" },
                { { "create", "--hugetlb", "--kind", "sysv", "--size", "2M", NULL }, "--kind sysv" },
                { { "create", "--kind", "file", "--hugetlb", "--size", "4K", "--persistent", NULL },
                  "--hugetlb" },
                { { "create", "--kind", "sysv", "--size", "4K", "--count", "2", NULL }, "--count 2" },
                { { "create", "--kind", "file", "--v4l2", "/dev/video0", "--count", "1", NULL }, "--kind" },
                { { "create", "--kind", "posix", NULL }, "--size" },
                { { "exec", "--kind", "posix", "--open", "0123456789abcdef0123456789abcdef", "--", "true", NULL },
                  "--kind" },
                { { "share", "1", "--kind", "posix", NULL }, "--kind" },
        };
        Snapshot base;

        stats_read(&base);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_run_result_ RunResult r = { 0 };

                run_ctl(&r, NOBODY_UID, NULL, cases[i].args);
                ck_assert_msg(r.status == EXIT_USAGE, "case %zu (%s %s %s): exit %d, want %d", i, cases[i].args[0],
                              cases[i].args[1], cases[i].args[2], r.status, EXIT_USAGE);
                assert_err_mentions(&r, cases[i].needle, cases[i].args[2]);
        }
        assert_back_to(&base, "after --kind usage errors");
}
END_TEST

/* A kind the broker does not make here (this daemon has no --file-dir, so
 * no file buffers; before the kind exists at all, the same error): exit 1,
 * the error's title and the broker's reason on one line, nothing left. */
START_TEST(test_create_kind_not_supported) {
        _cleanup_run_result_ RunResult r = { 0 }, j = { 0 };
        Snapshot base;
        const char *p;

        stats_read(&base);
        ctl(&r, NOBODY_UID, NULL, "create", "--kind", "file", "--size", "4K", "--persistent");
        ck_assert_run_status(&r, 1);
        ck_assert_uint_eq(r.out_len, 0);
        p = strstr(r.err, "bufbrokerctl: create --kind file: Not supported: ");
        ck_assert_msg(p, "stderr: %s", r.err);
        p += strlen("bufbrokerctl: create --kind file: Not supported: ");
        ck_assert_msg(*p && *p != '\n' && strchr(p, '\n') && strstr(r.err, "file"),
                      "no reason after the title: %s", r.err);
        /* --json changes nothing of that: no document on stdout */
        ctl(&j, NOBODY_UID, NULL, "--json=short", "create", "--kind", "file", "--size", "4K");
        ck_assert_run_status(&j, 1);
        ck_assert_uint_eq(j.out_len, 0);
        assert_err_mentions(&j, "Not supported", "create --kind file --json");
        assert_back_to(&base, "after a refused kind");
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_status);
        tcase_add_test(tc, test_create_sizes);
        tcase_add_test(tc, test_create_transient_and_ttl);
        tcase_add_test(tc, test_usage_errors);
        tcase_add_test(tc, test_info_and_unknown_ids);
        tcase_add_test(tc, test_write_cat_share);
        tcase_add_test(tc, test_exec);
        tcase_add_test(tc, test_list_json);
        tcase_add_test(tc, test_monitor);
        tcase_add_test(tc, test_json_status_list_info);
        tcase_add_test(tc, test_json_create_share);
        tcase_add_test(tc, test_json_monitor);
        tcase_add_test(tc, test_json_refused);
        tcase_add_test(tc, test_list_legend_and_users);
        tcase_add_test(tc, test_list_unnamed_uid);
        tcase_add_test(tc, test_verb_help);
        tcase_add_test(tc, test_unknown_options);
        tcase_add_test(tc, test_double_dash);
        tcase_add_test(tc, test_create_kind_memfd);
        tcase_add_test(tc, test_create_kind_usage_errors);
        tcase_add_test(tc, test_create_kind_not_supported);
}

int main(void) {
        Suite *s = suite_create("bufbrokerctl");

        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
