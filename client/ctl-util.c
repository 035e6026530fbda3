/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerctl's bus-free helpers; see ctl-util.h. Size and duration syntax
 * live in common/parse-util.c (the daemon's options use them too); this file
 * adds what the CLI asks beyond the syntax: positive values, ids vs tokens.
 */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bufbroker.h>

#include "bufbroker-protocol.h"
#include "ctl-util.h"
#include "parse-util.h"

bool token_is_valid(const char *s) {
        size_t i;

        if (!s)
                return false;
        for (i = 0; s[i]; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return i == BB_TOKEN_LEN;
}

int parse_buffer_id(const char *s, uint64_t *ret) {
        /* a path, or the id alone, by the protocol's one rule */
        if (s && s[0] == '/')
                return bb_buffer_path_to_id(s, ret);
        return bb_buffer_id_parse(s, ret);
}

int parse_buffer_ref(const char *s, uint64_t *ret_id, const char **ret_token) {
        int r;

        if (token_is_valid(s)) {
                *ret_token = s;
                return BUFFER_REF_TOKEN;
        }
        r = parse_buffer_id(s, ret_id);
        if (r < 0)
                return r;
        return BUFFER_REF_ID;
}

int parse_size_arg(const char *s, uint64_t *ret) {
        uint64_t v;
        int r;

        r = parse_size(s, &v);
        if (r < 0)
                return r;
        if (v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_ttl_arg(const char *s, uint64_t *ret_usec) {
        uint64_t v;
        int r;

        r = parse_duration_usec(s, &v);
        if (r < 0)
                return r;
        /* 0 would mean "no TTL" on the bus: that is spelled by leaving --ttl out. */
        if (v == 0)
                return -EINVAL;
        *ret_usec = v;
        return 0;
}

int parse_uid_arg(const char *s, uid_t *ret) {
        struct passwd *pw;
        uint64_t v;
        int r;

        if (!s || !*s)
                return -EINVAL;
        r = parse_uint64(s, &v);
        if (r == -ERANGE)
                return r;
        if (r == 0) {
                if (v >= (uid_t) -1)
                        return -ERANGE;
                *ret = (uid_t) v;
                return 0;
        }
        errno = 0;
        pw = getpwnam(s);
        if (!pw)
                return errno > 0 ? -errno : -ESRCH;
        *ret = pw->pw_uid;
        return 0;
}

int parse_count_arg(const char *s, unsigned *ret) {
        uint64_t v;
        int r;

        r = parse_uint64(s, &v);
        if (r < 0)
                return r;
        if (v == 0)
                return -EINVAL;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

/* A positive decimal uint32 made of the n characters at s. */
static int parse_dimension(const char *s, size_t n, uint32_t *ret) {
        char digits[24];
        uint64_t v;
        int r;

        if (n == 0)
                return -EINVAL;
        if (n >= sizeof(digits)) {
                /* Too long for a uint32 whatever it is; say which. */
                for (size_t i = 0; i < n; i++)
                        if (s[i] < '0' || s[i] > '9')
                                return -EINVAL;
                return -ERANGE;
        }
        memcpy(digits, s, n);
        digits[n] = 0;
        r = parse_uint64(digits, &v);
        if (r < 0)
                return r;
        if (v == 0)
                return -EINVAL;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int parse_v4l2_format(const char *s, uint32_t *ret_width, uint32_t *ret_height, uint32_t *ret_fourcc) {
        uint32_t width = 0, height = 0, fourcc = 0;
        const char *colon, *x;
        size_t size_len;
        int r;

        if (!s || !*s)
                return -EINVAL;

        colon = strchr(s, ':');
        size_len = colon ? (size_t) (colon - s) : strlen(s);
        if (colon) {
                r = bb_fourcc_from_string(colon + 1, &fourcc);
                if (r < 0)
                        return r;
        }
        if (size_len > 0) {
                x = memchr(s, 'x', size_len);
                if (!x)
                        x = memchr(s, 'X', size_len);
                if (!x)
                        return -EINVAL;
                r = parse_dimension(s, (size_t) (x - s), &width);
                if (r < 0)
                        return r;
                r = parse_dimension(x + 1, size_len - (size_t) (x - s) - 1, &height);
                if (r < 0)
                        return r;
        } else if (!colon)
                return -EINVAL;

        *ret_width = width;
        *ret_height = height;
        *ret_fourcc = fourcc;
        return 0;
}

bool v4l2_type_is_valid(const char *s) {
        return bb_v4l2_type_from_name(s) != 0;
}

const char *format_size(char buf[static FORMAT_SIZE_MAX], uint64_t size) {
        static const char units[] = "KMGTPE";
        int i;

        for (i = (int) sizeof(units) - 2; i >= 0; i--) {
                unsigned shift = 10 * (unsigned) (i + 1);

                if (size >= (UINT64_C(1) << shift) && size % (UINT64_C(1) << shift) == 0) {
                        snprintf(buf, FORMAT_SIZE_MAX, "%" PRIu64 "%c", size >> shift, units[i]);
                        return buf;
                }
        }
        snprintf(buf, FORMAT_SIZE_MAX, "%" PRIu64, size);
        return buf;
}

const char *format_timestamp(char buf[static FORMAT_TIMESTAMP_MAX], uint64_t usec) {
        struct tm tm;
        time_t t;

        if (usec == 0) {
                snprintf(buf, FORMAT_TIMESTAMP_MAX, "-");
                return buf;
        }
        t = (time_t) (usec / 1000000);
        if (!localtime_r(&t, &tm) || strftime(buf, FORMAT_TIMESTAMP_MAX, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(buf, FORMAT_TIMESTAMP_MAX, "@%" PRIu64, usec / 1000000);
        return buf;
}

void json_print_string(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++) {
                unsigned char ch = (unsigned char) *s;

                switch (ch) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                case '\b':
                        fputs("\\b", f);
                        break;
                case '\f':
                        fputs("\\f", f);
                        break;
                default:
                        /* D-Bus strings are valid UTF-8 already; only the
                         * control characters need escaping. */
                        if (ch < 0x20 || ch == 0x7f)
                                fprintf(f, "\\u%04x", ch);
                        else
                                fputc(ch, f);
                }
        }
        fputc('"', f);
}

const char *uid_to_user_name(uid_t uid) {
        struct passwd *pw = getpwuid(uid);

        return pw && pw->pw_name && *pw->pw_name ? pw->pw_name : NULL;
}

const char *format_user_name(char buf[static FORMAT_USER_MAX], uid_t uid, const char *name) {
        if (name && *name)
                snprintf(buf, FORMAT_USER_MAX, "%s", name);
        else
                snprintf(buf, FORMAT_USER_MAX, "%u", (unsigned) uid);
        return buf;
}

const char *format_user(char buf[static FORMAT_USER_MAX], uid_t uid) {
        return format_user_name(buf, uid, uid_to_user_name(uid));
}

int table_new(Table *t, size_t n_columns, const char *const *header) {
        int r;

        *t = (Table) { .n_columns = n_columns };
        for (size_t i = 0; i < n_columns; i++) {
                r = table_add(t, header[i]);
                if (r < 0) {
                        table_done(t);
                        return r;
                }
        }
        return 0;
}

int table_add(Table *t, const char *cell) {
        char **cells, *copy;

        copy = strdup(cell ? cell : "");
        if (!copy)
                return -ENOMEM;
        cells = realloc(t->cells, (t->n_cells + 1) * sizeof(char *));
        if (!cells) {
                free(copy);
                return -ENOMEM;
        }
        cells[t->n_cells++] = copy;
        t->cells = cells;
        return 0;
}

/* Display width: UTF-8 continuation bytes take no column. */
static size_t text_width(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80)
                        n++;
        return n;
}

void table_print(const Table *t, FILE *f, bool with_header) {
        size_t first = with_header ? 0 : t->n_columns;
        size_t widths[t->n_columns > 0 ? t->n_columns : 1];

        if (t->n_columns == 0)
                return;
        memset(widths, 0, sizeof(widths));
        for (size_t i = first; i < t->n_cells; i++) {
                size_t w = text_width(t->cells[i]);

                if (w > widths[i % t->n_columns])
                        widths[i % t->n_columns] = w;
        }
        /* Padding is written only before a cell with text: no line ends
         * in spaces, even when its last cells are empty. */
        for (size_t i = first, pad = 0; i < t->n_cells; i++) {
                size_t col = i % t->n_columns;
                bool last = col == t->n_columns - 1 || i == t->n_cells - 1;

                if (*t->cells[i]) {
                        fprintf(f, "%*s%s", (int) pad, "", t->cells[i]);
                        pad = 0;
                }
                if (last) {
                        fputc('\n', f);
                        pad = 0;
                } else
                        pad += widths[col] - text_width(t->cells[i]) + 1;
        }
}

void table_done(Table *t) {
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        *t = (Table) {};
}
