/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The live daemon's introspection matches protocol/org.bufbroker.Broker1.xml
 * member by member: every method with its arguments (name, type, direction,
 * in order), every signal, every property with type, access and
 * EmitsChangedSignal, every other annotation on a member or argument, and
 * nothing more, for the manager object and for a buffer object. Annotations
 * named org.gtk.* are left out on both sides: they tell gdbus-codegen how to
 * generate C (GUnixFDList parameters, C names), the daemon need not carry
 * them. Also what `busctl introspect` shows, as root and as nobody.
 */
#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* A normalized member description per line: "IFACE method NAME in:s:name,..." */
typedef struct Lines {
        char **v;
        size_t n;
} Lines;

static void lines_add(Lines *l, char *s) {
        l->v = realloc(l->v, (l->n + 1) * sizeof(char *));
        ck_assert_ptr_nonnull(l->v);
        l->v[l->n++] = s;
}

static void lines_free(Lines *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        *l = (Lines) { 0 };
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *prop(xmlNode *n, const char *name) {
        xmlChar *v = xmlGetProp(n, (const xmlChar *) name);
        char *s = strdup(v ? (const char *) v : "");

        xmlFree(v);
        return s;
}

static bool is(xmlNode *n, const char *name) {
        return n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, (const xmlChar *) name) == 0;
}

/* For code generators only (org.gtk.GDBus.C.UnixFD, .C.Name, ...). */
static bool is_codegen_annotation(xmlNode *a) {
        char *name = prop(a, "name");
        bool r = strncmp(name, "org.gtk.", 8) == 0;

        free(name);
        return r;
}

/* Append " @name=value" for each annotation child of n but those named
 * except (may be NULL) and the code generators'. */
static void describe_annotations(xmlNode *n, const char *except, FILE *f) {
        for (xmlNode *a = n->children; a; a = a->next) {
                char *name, *value;

                if (!is(a, "annotation") || is_codegen_annotation(a))
                        continue;
                name = prop(a, "name");
                value = prop(a, "value");
                if (!except || strcmp(name, except) != 0)
                        fprintf(f, " @%s=%s", name, value);
                free(name);
                free(value);
        }
}

/* Append "dir:type:name" and its annotations for each <arg>. */
static void describe_args(xmlNode *member, bool is_signal, FILE *f) {
        for (xmlNode *a = member->children; a; a = a->next) {
                char *type, *name, *dir;

                if (!is(a, "arg"))
                        continue;
                type = prop(a, "type");
                name = prop(a, "name");
                dir = prop(a, "direction");
                if (!*dir) {
                        free(dir);
                        dir = strdup(is_signal ? "out" : "in");
                }
                fprintf(f, " %s:%s:%s", dir, type, name);
                describe_annotations(a, NULL, f);
                free(type);
                free(name);
                free(dir);
        }
}

static char *emits_changed(xmlNode *p) {
        for (xmlNode *a = p->children; a; a = a->next) {
                char *name, *value;

                if (!is(a, "annotation"))
                        continue;
                name = prop(a, "name");
                if (strcmp(name, "org.freedesktop.DBus.Property.EmitsChangedSignal") == 0) {
                        free(name);
                        value = prop(a, "value");
                        return value;
                }
                free(name);
        }
        return strdup("true");  /* the D-Bus default */
}

/* Describe the interfaces of xml whose name starts with "org.bufbroker.";
 * other interfaces (org.freedesktop.DBus.*) are listed in *others. */
static void describe(const char *xml, size_t len, const char *what, Lines *ret, Lines *others) {
        xmlDoc *doc;
        xmlNode *root;

        doc = xmlReadMemory(xml, (int) len, what, NULL, XML_PARSE_NONET | XML_PARSE_NOBLANKS);
        ck_assert_msg(doc, "%s is not well-formed XML", what);
        root = xmlDocGetRootElement(doc);
        ck_assert_msg(root && is(root, "node"), "%s: root element is not <node>", what);
        for (xmlNode *i = root->children; i; i = i->next) {
                char *iname;

                if (!is(i, "interface"))
                        continue;
                iname = prop(i, "name");
                if (strncmp(iname, "org.bufbroker.", 14) != 0) {
                        if (others)
                                lines_add(others, iname);
                        else
                                free(iname);
                        continue;
                }
                for (xmlNode *m = i->children; m; m = m->next) {
                        char *buf = NULL, *name;
                        size_t blen = 0;
                        FILE *f;

                        if (m->type != XML_ELEMENT_NODE)
                                continue;
                        if (is(m, "annotation") && is_codegen_annotation(m))
                                continue;
                        f = open_memstream(&buf, &blen);
                        ck_assert_ptr_nonnull(f);
                        name = prop(m, "name");
                        if (is(m, "method") || is(m, "signal")) {
                                fprintf(f, "%s %s %s", iname, (const char *) m->name, name);
                                describe_annotations(m, NULL, f);
                                describe_args(m, is(m, "signal"), f);
                        } else if (is(m, "property")) {
                                char *type = prop(m, "type"), *access = prop(m, "access");
                                char *emits = emits_changed(m);

                                fprintf(f, "%s property %s type=%s access=%s emits-changed=%s",
                                        iname, name, type, access, emits);
                                describe_annotations(
                                        m, "org.freedesktop.DBus.Property.EmitsChangedSignal", f);
                                free(type);
                                free(access);
                                free(emits);
                        } else
                                /* annotations on the interface itself */
                                fprintf(f, "%s %s %s", iname, (const char *) m->name, name);
                        free(name);
                        ck_assert(fclose(f) == 0);
                        lines_add(ret, buf);
                }
                free(iname);
        }
        xmlFreeDoc(doc);
        qsort(ret->v, ret->n, sizeof(char *), cmp_str);
}

static char *read_contract(size_t *ret_len) {
        const char *path = harness_env("PROTOCOL_XML");
        struct stat st;
        char *buf;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
        ck_assert(fstat(fd, &st) == 0);
        buf = malloc((size_t) st.st_size + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert(read(fd, buf, (size_t) st.st_size) == st.st_size);
        buf[st.st_size] = 0;
        close(fd);
        *ret_len = (size_t) st.st_size;
        return buf;
}

/* The contract's lines for one interface. */
static void contract_lines(const char *iface, Lines *ret) {
        Lines all = { 0 };
        size_t len, n = strlen(iface);
        char *xml = read_contract(&len);

        describe(xml, len, "protocol/org.bufbroker.Broker1.xml", &all, NULL);
        for (size_t i = 0; i < all.n; i++)
                if (strncmp(all.v[i], iface, n) == 0 && all.v[i][n] == ' ')
                        lines_add(ret, strdup(all.v[i]));
        ck_assert_msg(ret->n > 0, "the contract has no interface %s", iface);
        lines_free(&all);
        free(xml);
}

static char *introspect(const char *path) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *xml;
        char *s;
        int r;

        r = sd_bus_call_method(test_bus(), BB_BUS_NAME, path, "org.freedesktop.DBus.Introspectable",
                               "Introspect", &error, &reply, "");
        ck_assert_msg(r >= 0, "Introspect %s: %s", path, error.message);
        ck_assert(sd_bus_message_read(reply, "s", &xml) > 0);
        s = strdup(xml);
        sd_bus_message_unref(reply);
        return s;
}

/* Live lines must equal the contract's lines, and the object must carry no
 * bufbroker interface but `iface`. */
static void compare_object(const char *path, const char *iface) {
        Lines want = { 0 }, got = { 0 }, others = { 0 };
        char *xml = introspect(path);
        bool ok = true;
        size_t i = 0, j = 0;

        contract_lines(iface, &want);
        describe(xml, strlen(xml), path, &got, &others);

        /* merge-compare the two sorted lists, reporting every difference */
        while (i < want.n || j < got.n) {
                int c = i >= want.n ? 1 : j >= got.n ? -1 : strcmp(want.v[i], got.v[j]);

                if (c == 0) {
                        i++;
                        j++;
                } else if (c < 0) {
                        fprintf(stderr, "%s: missing from live introspection: %s\n", path,
                                want.v[i++]);
                        ok = false;
                } else {
                        fprintf(stderr, "%s: live introspection has, the contract lacks: %s\n",
                                path, got.v[j++]);
                        ok = false;
                }
        }
        if (!ok)
                fprintf(stderr, "---- live introspection of %s:\n%s\n", path, xml);
        ck_assert_msg(ok, "live introspection of %s differs from the contract for %s (see log)",
                      path, iface);

        /* the standard interfaces are there; no other interface is */
        for (size_t k = 0; k < others.n; k++)
                ck_assert_msg(strncmp(others.v[k], "org.freedesktop.DBus.", 21) == 0,
                              "%s carries unexpected interface %s", path, others.v[k]);
        lines_free(&want);
        lines_free(&got);
        lines_free(&others);
        free(xml);
}

/* The fd is the lease: the buffer lives while *ret_fd is open (NULL: until
 * the test's process exits). */
static char *create_buffer(int *ret_fd) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        uint64_t size;
        char *p;
        int fd, r;

        r = sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                               "CreateMemfd", &error, &reply, "sta{sv}", "introspect",
                               (uint64_t) 4096, 0);
        ck_assert_msg(r >= 0, "CreateMemfd: %s: %s", error.name, error.message);
        ck_assert(sd_bus_message_read(reply, "oht", &path, &fd, &size) > 0);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        ck_assert_int_ge(fd, 0);
        if (ret_fd)
                *ret_fd = fd;
        p = strdup(path);
        sd_bus_message_unref(reply);
        return p;
}

START_TEST(test_manager_matches_contract) {
        compare_object(BB_MANAGER_PATH, BB_MANAGER_INTERFACE);
}
END_TEST

START_TEST(test_buffer_matches_contract) {
        char *path = create_buffer(NULL);

        compare_object(path, BB_BUFFER_INTERFACE);
        free(path);
}
END_TEST

/* The buffer subtree lists a live buffer as a child node, and stops listing
 * it once it is released. */
START_TEST(test_manager_lists_buffer_node) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int fd;
        char *path = create_buffer(&fd), *xml, *needle;
        const char *leaf = strrchr(path, '/') + 1;

        released_watch();
        ck_assert(asprintf(&needle, "<node name=\"%s\"", leaf) > 0);
        xml = introspect(BB_BUFFER_PATH_PREFIX);
        ck_assert_msg(strstr(xml, needle), "%s does not list child node %s:\n%s",
                      BB_BUFFER_PATH_PREFIX, leaf, xml);
        free(xml);

        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE,
                                         "Release", &error, NULL, "") >= 0,
                      "Release: %s", error.message);
        /* and once our fd, the lease, is closed */
        close(fd);
        ck_assert(released_wait(strtoull(leaf, NULL, 10), 5000));
        xml = introspect(BB_BUFFER_PATH_PREFIX);
        ck_assert_msg(!strstr(xml, needle), "%s still lists released buffer %s:\n%s",
                      BB_BUFFER_PATH_PREFIX, leaf, xml);
        free(xml);
        free(needle);
        free(path);
        sd_bus_error_free(&error);
}
END_TEST

/* `busctl introspect` shows every method with its in/out signatures, every
 * property and signal, for root and for nobody (the policy lets anyone
 * introspect). */
static void check_busctl_table(const RunResult *r, const char *iface) {
        Lines want = { 0 };

        contract_lines(iface, &want);
        for (size_t i = 0; i < want.n; i++) {
                char kind[32], name[64], *in = NULL, *out = NULL, *expect = NULL, *line;
                size_t inl = 0, outl = 0;
                FILE *fi = open_memstream(&in, &inl), *fo = open_memstream(&out, &outl);
                const char *p = want.v[i] + strlen(iface) + 1;
                int off = 0;

                ck_assert(sscanf(p, "%31s %63s%n", kind, name, &off) == 2);
                p += off;
                if (strcmp(kind, "property") == 0) {
                        char type[64];

                        ck_assert(sscanf(p, " type=%63s", type) == 1);
                        fprintf(fi, "%s", type);
                } else {
                        /* " in:s:name out:o:buffer ..." */
                        while (*p == ' ') {
                                char dir[8], type[64];
                                int k = 0;

                                if (p[1] == '@') {      /* an annotation: not in busctl's table */
                                        p += strcspn(p + 1, " ") + 1;
                                        continue;
                                }

                                ck_assert(sscanf(p, " %7[^:]:%63[^:]:%*[^ ]%n", dir, type, &k) == 2);
                                fprintf(strcmp(dir, "in") == 0 || strcmp(kind, "signal") == 0 ? fi : fo,
                                        "%s", type);
                                p += k;
                        }
                }
                fclose(fi);
                fclose(fo);
                /* busctl prints ".Name  kind  signature  result/value  flags" */
                ck_assert(asprintf(&expect, ".%s", name) > 0);
                line = strstr(r->out, expect);
                ck_assert_msg(line, "busctl introspect does not show %s:\n%s", expect, r->out);
                {
                        char *eol = strchr(line, '\n'), got_kind[32] = "", got_sig[128] = "",
                             got_res[128] = "";

                        if (eol)
                                *eol = 0;
                        ck_assert(sscanf(line, "%*s %31s %127s %127s", got_kind, got_sig,
                                         got_res) >= 2);
                        ck_assert_msg(strcmp(got_kind, kind) == 0, "busctl: %s is a %s, want %s",
                                      name, got_kind, kind);
                        ck_assert_msg(strcmp(got_sig, *in ? in : "-") == 0,
                                      "busctl: %s signature %s, want %s", name, got_sig,
                                      *in ? in : "-");
                        if (strcmp(kind, "method") == 0)
                                ck_assert_msg(strcmp(got_res, *out ? out : "-") == 0,
                                              "busctl: %s result %s, want %s", name, got_res,
                                              *out ? out : "-");
                        if (eol)
                                *eol = '\n';
                }
                free(expect);
                free(in);
                free(out);
        }
        lines_free(&want);
}

START_TEST(test_busctl_introspect) {
        _cleanup_run_result_ RunResult r1 = { 0 }, r2 = { 0 };
        char *path = create_buffer(NULL);

        busctl(&r1, AS_ROOT, "introspect", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE);
        ck_assert_run_status(&r1, 0);
        check_busctl_table(&r1, BB_MANAGER_INTERFACE);
        busctl(&r2, AS_ROOT, "introspect", BB_BUS_NAME, path, BB_BUFFER_INTERFACE);
        ck_assert_run_status(&r2, 0);
        check_busctl_table(&r2, BB_BUFFER_INTERFACE);
        free(path);
}
END_TEST

/* nobody introspects the manager and a buffer of its own (busctl reads the
 * properties too, which only the owner, root and holders may). */
START_TEST(test_busctl_introspect_nobody) {
        _cleanup_run_result_ RunResult r1 = { 0 }, r2 = { 0 }, r3 = { 0 }, r4 = { 0 };
        char path[256];

        busctl(&r1, NOBODY_UID, "introspect", BB_BUS_NAME, BB_MANAGER_PATH,
               BB_MANAGER_INTERFACE);
        ck_assert_run_status(&r1, 0);
        check_busctl_table(&r1, BB_MANAGER_INTERFACE);

        busctl(&r2, NOBODY_UID, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
               "CreateMemfd", "sta{sv}", "nobodys", "4096", "1", BB_OPT_PERSISTENT, "b", "true");
        ck_assert_run_status(&r2, 0);
        /* oht "/org/bufbroker/Broker1/buffer/N" 4 4096 */
        ck_assert_msg(sscanf(r2.out, "oht \"%255[^\"]\"", path) == 1,
                      "busctl call printed: %s", r2.out);
        busctl(&r3, NOBODY_UID, "introspect", BB_BUS_NAME, path, BB_BUFFER_INTERFACE);
        ck_assert_run_status(&r3, 0);
        check_busctl_table(&r3, BB_BUFFER_INTERFACE);
        busctl(&r4, NOBODY_UID, "call", BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release");
        ck_assert_run_status(&r4, 0);
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_manager_matches_contract);
        tcase_add_test(tc, test_buffer_matches_contract);
        tcase_add_test(tc, test_manager_lists_buffer_node);
        tcase_add_test(tc, test_busctl_introspect);
        tcase_add_test(tc, test_busctl_introspect_nobody);
}

int main(void) {
        Suite *s = suite_create("introspection");

        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
