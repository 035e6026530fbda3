/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Strict parsers for the numbers people type: sizes ("64K", "1M") and
 * durations ("500ms", "10s"). Shared by bufbrokerd's options and bufbrokerctl.
 */
#pragma once

#include <stdint.h>

/* "4096", "64K", "1M", "1G", "2T", also "64k", "64KiB", "64KB": powers of
 * 1024. Rejects empty strings, signs, garbage and overflow with -EINVAL or
 * -ERANGE. 0 is accepted; callers that need a positive size check that. */
int parse_size(const char *s, uint64_t *ret);

/* "250ms", "10s", "5min", "1h", "2d", "100us"; a bare number is seconds.
 * Returns microseconds; -EINVAL/-ERANGE as above. */
int parse_duration_usec(const char *s, uint64_t *ret);

/* A plain decimal uint64 with no sign, no spaces, no suffix. */
int parse_uint64(const char *s, uint64_t *ret);
