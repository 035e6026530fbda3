/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerctl's JSON writer; see ctl-json.h. The pretty form is the one
 * Python's json.dumps(indent=2) writes, so that tests can compare the
 * output with a real parser's rendering of it byte for byte.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "ctl-json.h"
#include "ctl-util.h"

int json_mode_from_string(const char *s, JsonMode *ret) {
        static const struct {
                const char *name;
                JsonMode mode;
        } modes[] = {
                { "off", JSON_OFF },
                { "short", JSON_SHORT },
                { "pretty", JSON_PRETTY },
        };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
                if (strcmp(s, modes[i].name) == 0) {
                        *ret = modes[i].mode;
                        return 0;
                }
        return -EINVAL;
}

void json_writer_init(JsonWriter *w, FILE *f, JsonMode mode) {
        assert(mode != JSON_OFF);
        *w = (JsonWriter) { .f = f, .pretty = mode == JSON_PRETTY };
}

static void newline_indent(JsonWriter *w) {
        fputc('\n', w->f);
        for (unsigned i = 0; i < w->depth; i++)
                fputs("  ", w->f);
}

/* Before any value or key: the comma after the previous element and, when
 * pretty, the new line. Nothing between a key and its value. */
static void element_prefix(JsonWriter *w) {
        if (w->after_key) {
                w->after_key = false;
                return;
        }
        if (w->depth == 0)
                return;
        if (w->nonempty[w->depth])
                fputc(',', w->f);
        w->nonempty[w->depth] = true;
        if (w->pretty)
                newline_indent(w);
}

static void container_begin(JsonWriter *w, char open) {
        element_prefix(w);
        fputc(open, w->f);
        assert(w->depth + 1 < JSON_DEPTH_MAX);
        w->depth++;
        w->nonempty[w->depth] = false;
}

static void container_end(JsonWriter *w, char close) {
        bool had_elements;

        assert(w->depth > 0 && !w->after_key);
        had_elements = w->nonempty[w->depth];
        w->depth--;
        /* "[]" and "{}" stay on one line, as json.dumps() writes them. */
        if (w->pretty && had_elements)
                newline_indent(w);
        fputc(close, w->f);
}

void json_object_begin(JsonWriter *w) {
        container_begin(w, '{');
}

void json_object_end(JsonWriter *w) {
        container_end(w, '}');
}

void json_array_begin(JsonWriter *w) {
        container_begin(w, '[');
}

void json_array_end(JsonWriter *w) {
        container_end(w, ']');
}

void json_key(JsonWriter *w, const char *key) {
        element_prefix(w);
        json_print_string(w->f, key);
        fputs(w->pretty ? ": " : ":", w->f);
        w->after_key = true;
}

void json_string(JsonWriter *w, const char *s) {
        if (!s) {
                json_null(w);
                return;
        }
        element_prefix(w);
        json_print_string(w->f, s);
}

void json_uint(JsonWriter *w, uint64_t v) {
        element_prefix(w);
        fprintf(w->f, "%" PRIu64, v);
}

void json_bool(JsonWriter *w, bool v) {
        element_prefix(w);
        fputs(v ? "true" : "false", w->f);
}

void json_null(JsonWriter *w) {
        element_prefix(w);
        fputs("null", w->f);
}

void json_field_string(JsonWriter *w, const char *key, const char *s) {
        json_key(w, key);
        json_string(w, s);
}

void json_field_uint(JsonWriter *w, const char *key, uint64_t v) {
        json_key(w, key);
        json_uint(w, v);
}

void json_field_bool(JsonWriter *w, const char *key, bool v) {
        json_key(w, key);
        json_bool(w, v);
}

void json_field_null(JsonWriter *w, const char *key) {
        json_key(w, key);
        json_null(w);
}

void json_document_end(JsonWriter *w) {
        assert(w->depth == 0);
        fputc('\n', w->f);
        fflush(w->f);
}
