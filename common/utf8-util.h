/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Quoting a caller's string in a message. What callers send over D-Bus is
 * valid UTF-8 (the bus checks), but "%.64s" cuts at a byte, and D-Bus refuses
 * to send a string that is not valid UTF-8: an error reply quoting half a
 * character is never sent, and the caller waits for it until its timeout.
 */
#pragma once

#include <string.h>

/* The length of the longest prefix of @s of at most @max bytes that ends
 * between characters: for printf("%.*s", (int) utf8_prefix_len(s, max), s).
 * @s is valid UTF-8. */
static inline size_t utf8_prefix_len(const char *s, size_t max) {
        size_t n = strnlen(s, max);

        /* Cut inside a character: go back to its first byte, and leave it out. */
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                n--;
        return n;
}
