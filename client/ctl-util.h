/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerctl's helpers that need no bus: telling an id from a token,
 * checking the numbers a user typed, formatting sizes, times and JSON
 * strings. Kept apart from the CLI so that tests/api can test them alone.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* What a command-line buffer reference turned out to be. */
typedef enum BufferRef {
        BUFFER_REF_ID = 1,
        BUFFER_REF_TOKEN = 2,
} BufferRef;

/* Exactly BB_TOKEN_LEN lower-case hex digits. */
bool token_is_valid(const char *s);

/* A buffer id: decimal, or a buffer object path "/org/bufbroker/Broker1/buffer/<id>",
 * by the protocol's one rule (no leading zero, not 0). -EINVAL otherwise. */
int parse_buffer_id(const char *s, uint64_t *ret);

/* "ID|TOKEN": a token (checked first: 32 hex digits are never an id) or an
 * id. Returns BUFFER_REF_TOKEN (and *ret_token = s) or BUFFER_REF_ID (and
 * *ret_id), or a negative errno. */
int parse_buffer_ref(const char *s, uint64_t *ret_id, const char **ret_token);

/* A positive size ("4096", "64K", "1M", "1G", "64KiB", ...): -EINVAL for
 * garbage and 0, -ERANGE on overflow. */
int parse_size_arg(const char *s, uint64_t *ret);

/* A positive duration ("500ms", "10s", "5min", "1h"; a bare number is
 * seconds) in microseconds: -EINVAL for garbage and 0, -ERANGE on overflow. */
int parse_ttl_arg(const char *s, uint64_t *ret_usec);

/* A uid as a number or a user name; (uid_t) -1 is refused. */
int parse_uid_arg(const char *s, uid_t *ret);

/* A buffer count: a decimal number 1..UINT32_MAX (the broker decides how
 * many buffers a device may have). -EINVAL for garbage and 0, -ERANGE above. */
int parse_count_arg(const char *s, unsigned *ret);

/* A V4L2 format "[WxH][:FOURCC]": "640x480:YUYV", "640x480" (keep the
 * device's pixel format: *ret_fourcc = 0), ":NV12" (keep its size: *ret_width
 * = *ret_height = 0). W and H are positive decimal numbers ('x' or 'X'
 * between them); FOURCC is 1 to 4 characters as bb_fourcc_from_string()
 * takes them. -EINVAL otherwise (-ERANGE for numbers beyond uint32), and the
 * outputs are left alone. */
int parse_v4l2_format(const char *s, uint32_t *ret_width, uint32_t *ret_height, uint32_t *ret_fourcc);

/* One of the V4L2 buffer types the broker knows: "capture", "output",
 * "capture-mplane", "output-mplane". */
bool v4l2_type_is_valid(const char *s);

#define FORMAT_SIZE_MAX 32
/* "64K", "1M", "3G" when the size is an exact multiple, else bytes. */
const char *format_size(char buf[static FORMAT_SIZE_MAX], uint64_t size);

#define FORMAT_TIMESTAMP_MAX 64
/* CLOCK_REALTIME microseconds as local "YYYY-MM-DD HH:MM:SS"; "-" for 0. */
const char *format_timestamp(char buf[static FORMAT_TIMESTAMP_MAX], uint64_t usec);

/* s as a JSON string literal, quotes included. */
void json_print_string(FILE *f, const char *s);

/* The user name of uid from the passwd database (getpwuid()), NULL when it
 * has none. Valid until the next call. */
const char *uid_to_user_name(uid_t uid);

/* A user name (LOGIN_NAME_MAX is 256 with glibc) or a uid in decimal. */
#define FORMAT_USER_MAX 257
/* The USER column: name, or the uid in decimal when name is NULL or empty
 * (as ls -l does for a uid without a name). A longer name is cut. */
const char *format_user_name(char buf[static FORMAT_USER_MAX], uid_t uid, const char *name);
/* The same with the name from the passwd database. */
const char *format_user(char buf[static FORMAT_USER_MAX], uid_t uid);

/* A text table as systemd's tools print theirs: columns as wide as their
 * widest cell, one space apart, the last column not padded. */
typedef struct Table {
        size_t n_columns;
        size_t n_cells;
        char **cells;                   /* row after row */
} Table;

/* A table whose first row is the header (n_columns names). */
int table_new(Table *t, size_t n_columns, const char *const *header);
/* Append one cell (copied); rows fill up left to right. */
int table_add(Table *t, const char *cell);
/* Print it; without the header row when with_header is false. */
void table_print(const Table *t, FILE *f, bool with_header);
void table_done(Table *t);
