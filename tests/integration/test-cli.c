/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerctl against the real daemon: every command's happy path, checked
 * against the daemon's own view over sd-bus, and its error exit codes (2 for
 * usage errors found before any bus traffic, 1 for failures), as root and
 * as uid 65534.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define EXIT_USAGE 2

/* ---- a strict little JSON reader, enough to check `list --json` ---------- */

typedef struct Json {
        const char *p;
        bool ok;
} Json;

static void json_ws(Json *j) {
        while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
                j->p++;
}

/* Parse a string; decoded into out (may be NULL) of size n. */
static void json_string(Json *j, char *out, size_t n) {
        size_t k = 0;

        if (*j->p != '"') {
                j->ok = false;
                return;
        }
        j->p++;
        while (j->ok && *j->p != '"') {
                unsigned c = (unsigned char) *j->p;

                if (c < 0x20 || c == 0) {
                        j->ok = false;
                        return;
                }
                if (c == '\\') {
                        j->p++;
                        switch (*j->p) {
                        case '"': case '\\': case '/':
                                c = (unsigned char) *j->p;
                                break;
                        case 'b': c = '\b'; break;
                        case 'f': c = '\f'; break;
                        case 'n': c = '\n'; break;
                        case 'r': c = '\r'; break;
                        case 't': c = '\t'; break;
                        case 'u': {
                                unsigned v = 0;

                                for (int i = 1; i <= 4; i++) {
                                        if (!isxdigit((unsigned char) j->p[i])) {
                                                j->ok = false;
                                                return;
                                        }
                                        v = v * 16 + (unsigned) (isdigit((unsigned char) j->p[i]) ?
                                                j->p[i] - '0' : (tolower((unsigned char) j->p[i]) - 'a' + 10));
                                }
                                j->p += 5;
                                /* BMP code point to UTF-8 (no surrogate pairs here) */
                                if (v >= 0x800 && out && k + 3 < n) {
                                        out[k++] = (char) (0xe0 | (v >> 12));
                                        out[k++] = (char) (0x80 | ((v >> 6) & 0x3f));
                                        out[k++] = (char) (0x80 | (v & 0x3f));
                                } else if (v >= 0x80 && out && k + 2 < n) {
                                        out[k++] = (char) (0xc0 | (v >> 6));
                                        out[k++] = (char) (0x80 | (v & 0x3f));
                                } else if (v < 0x80 && out && k + 1 < n)
                                        out[k++] = (char) v;
                                continue;
                        }
                        default:
                                j->ok = false;
                                return;
                        }
                }
                if (out && k + 1 < n)
                        out[k++] = (char) c;
                j->p++;
        }
        if (out && n > 0)
                out[k] = 0;
        if (*j->p != '"')
                j->ok = false;
        else
                j->p++;
}

static void json_value(Json *j, int depth);

static void json_number(Json *j) {
        const char *start = j->p;

        if (*j->p == '-')
                j->p++;
        if (!isdigit((unsigned char) *j->p)) {
                j->ok = false;
                return;
        }
        if (*j->p == '0' && isdigit((unsigned char) j->p[1])) {
                j->ok = false;          /* no leading zeros */
                return;
        }
        while (isdigit((unsigned char) *j->p))
                j->p++;
        if (*j->p == '.' || *j->p == 'e' || *j->p == 'E') {
                (void) strtod(start, (char **) &j->p);
        }
}

static void json_value(Json *j, int depth) {
        json_ws(j);
        if (depth > 16) {
                j->ok = false;
                return;
        }
        switch (*j->p) {
        case '{':
                j->p++;
                json_ws(j);
                if (*j->p == '}') {
                        j->p++;
                        return;
                }
                for (;;) {
                        json_ws(j);
                        json_string(j, NULL, 0);
                        json_ws(j);
                        if (!j->ok || *j->p != ':') {
                                j->ok = false;
                                return;
                        }
                        j->p++;
                        json_value(j, depth + 1);
                        json_ws(j);
                        if (!j->ok)
                                return;
                        if (*j->p == ',') {
                                j->p++;
                                continue;
                        }
                        if (*j->p == '}') {
                                j->p++;
                                return;
                        }
                        j->ok = false;
                        return;
                }
        case '[':
                j->p++;
                json_ws(j);
                if (*j->p == ']') {
                        j->p++;
                        return;
                }
                for (;;) {
                        json_value(j, depth + 1);
                        json_ws(j);
                        if (!j->ok)
                                return;
                        if (*j->p == ',') {
                                j->p++;
                                continue;
                        }
                        if (*j->p == ']') {
                                j->p++;
                                return;
                        }
                        j->ok = false;
                        return;
                }
        case '"':
                json_string(j, NULL, 0);
                return;
        case 't':
                if (strncmp(j->p, "true", 4) == 0) {
                        j->p += 4;
                        return;
                }
                break;
        case 'f':
                if (strncmp(j->p, "false", 5) == 0) {
                        j->p += 5;
                        return;
                }
                break;
        case 'n':
                if (strncmp(j->p, "null", 4) == 0) {
                        j->p += 4;
                        return;
                }
                break;
        default:
                json_number(j);
                return;
        }
        j->ok = false;
}

/* Is s one complete, valid JSON document? */
static bool json_valid(const char *s) {
        Json j = { .p = s, .ok = true };

        json_value(&j, 0);
        json_ws(&j);
        return j.ok && *j.p == 0;
}

/* In a `list --json` document (validated), find the object with "id": id and
 * copy its "name" and "owner_uid". */
static bool json_find_buffer(const char *s, uint64_t id, char *name, size_t n, unsigned *owner) {
        char needle[64];
        const char *o;

        snprintf(needle, sizeof(needle), "\"id\": %" PRIu64 ",", id);
        o = strstr(s, needle);
        if (!o) {
                snprintf(needle, sizeof(needle), "\"id\":%" PRIu64 ",", id);
                o = strstr(s, needle);
        }
        if (!o)
                return false;
        {
                const char *k = strstr(o, "\"name\":");
                Json j;

                if (!k)
                        return false;
                j = (Json) { .p = k + 7, .ok = true };
                json_ws(&j);
                json_string(&j, name, n);
                if (!j.ok)
                        return false;
        }
        {
                const char *k = strstr(o, "\"owner_uid\":");

                if (!k || sscanf(k + 12, " %u", owner) != 1)
                        return false;
        }
        return true;
}

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
        ck_assert_msg(strstr(r.out, "OwnerUid:   0\n"), "info:\n%s", r.out);
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
        static const char *const odd_name = "quote\" back\\slash /slash \xc3\xbcnicode";
        uint64_t plain = ctl_create(AS_ROOT, "4K", "plain", true);
        uint64_t odd = ctl_create(AS_ROOT, "4K", odd_name, true);
        uint64_t theirs = ctl_create(NOBODY_UID, "4K", "nobodys", true);
        _cleanup_run_result_ RunResult r = { 0 }, rn = { 0 }, empty = { 0 }, table = { 0 };
        char name[256];
        unsigned owner;

        ctl(&r, AS_ROOT, NULL, "list", "--json");
        ck_assert_run_status(&r, 0);
        ck_assert_msg(json_valid(r.out), "list --json is not valid JSON:\n%s", r.out);
        ck_assert_msg(json_find_buffer(r.out, plain, name, sizeof(name), &owner), "%s", r.out);
        ck_assert_str_eq(name, "plain");
        ck_assert_uint_eq(owner, 0);
        ck_assert_msg(json_find_buffer(r.out, odd, name, sizeof(name), &owner), "%s", r.out);
        ck_assert_str_eq(name, odd_name);
        ck_assert_msg(json_find_buffer(r.out, theirs, name, sizeof(name), &owner),
                      "root does not see nobody's buffer:\n%s", r.out);
        ck_assert_uint_eq(owner, NOBODY_UID);

        /* nobody sees only its own */
        ctl(&rn, NOBODY_UID, NULL, "list", "--json");
        ck_assert_run_status(&rn, 0);
        ck_assert(json_valid(rn.out));
        ck_assert(json_find_buffer(rn.out, theirs, name, sizeof(name), &owner));
        ck_assert_msg(!json_find_buffer(rn.out, plain, name, sizeof(name), &owner),
                      "nobody sees root's buffer:\n%s", rn.out);

        /* the table names them too */
        ctl(&table, AS_ROOT, NULL, "list");
        ck_assert_run_status(&table, 0);
        ck_assert(strstr(table.out, "plain") && strstr(table.out, "nobodys"));

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
        ck_assert_msg(json_valid(empty.out), "empty list --json: '%s'", empty.out);
        ck_assert_msg(strchr(empty.out, '{') == NULL, "empty list lists: %s", empty.out);
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
}

int main(void) {
        Suite *s = suite_create("bufbrokerctl");

        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
