/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerctl's JSON output, as systemd's tools spell it: --json=pretty
 * (indented two spaces, "key": value, one element per line), --json=short
 * (one line per document, no whitespace) or --json=off (text). A writer
 * streams to a FILE and does the commas and indentation, so that a command
 * says only what it prints. Bus-free, so tests/api tests it alone.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum JsonMode {
        JSON_OFF,
        JSON_SHORT,
        JSON_PRETTY,
} JsonMode;

/* "off", "short" or "pretty"; -EINVAL for anything else. */
int json_mode_from_string(const char *s, JsonMode *ret);

#define JSON_DEPTH_MAX 32

typedef struct JsonWriter {
        FILE *f;
        bool pretty;
        unsigned depth;
        bool after_key;                 /* a key was written, its value is next */
        bool nonempty[JSON_DEPTH_MAX];  /* the container at that depth has an element */
} JsonWriter;

/* mode must not be JSON_OFF. */
void json_writer_init(JsonWriter *w, FILE *f, JsonMode mode);

void json_object_begin(JsonWriter *w);
void json_object_end(JsonWriter *w);
void json_array_begin(JsonWriter *w);
void json_array_end(JsonWriter *w);
/* An object member's key; its value comes next. */
void json_key(JsonWriter *w, const char *key);

/* Values; a NULL string is null. */
void json_string(JsonWriter *w, const char *s);
void json_uint(JsonWriter *w, uint64_t v);
void json_bool(JsonWriter *w, bool v);
void json_null(JsonWriter *w);

/* Members: key and value in one call. */
void json_field_string(JsonWriter *w, const char *key, const char *s);
void json_field_uint(JsonWriter *w, const char *key, uint64_t v);
void json_field_bool(JsonWriter *w, const char *key, bool v);
void json_field_null(JsonWriter *w, const char *key);

/* After the top-level value: the newline that ends a document. Flushes,
 * so that a stream of documents (monitor) reaches a pipe one by one. */
void json_document_end(JsonWriter *w);
