/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "parse-util.h"

int parse_uint64(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (; *s; s++) {
                if (!isdigit((unsigned char) *s))
                        return -EINVAL;
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret = v;
        return 0;
}

/* Split "123suffix" into its number and suffix. */
static int parse_number_suffix(const char *s, uint64_t *ret_number, const char **ret_suffix) {
        uint64_t v = 0;

        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        for (; isdigit((unsigned char) *s); s++) {
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret_number = v;
        *ret_suffix = s;
        return 0;
}

static int multiply(uint64_t v, uint64_t factor, uint64_t *ret) {
        if (factor != 0 && v > UINT64_MAX / factor)
                return -ERANGE;
        *ret = v * factor;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        static const struct {
                const char *suffix;
                unsigned shift;
        } table[] = {
                { "", 0 }, { "B", 0 },
                { "K", 10 }, { "KB", 10 }, { "KiB", 10 },
                { "M", 20 }, { "MB", 20 }, { "MiB", 20 },
                { "G", 30 }, { "GB", 30 }, { "GiB", 30 },
                { "T", 40 }, { "TB", 40 }, { "TiB", 40 },
        };
        const char *suffix;
        uint64_t v;
        int r;

        r = parse_number_suffix(s, &v, &suffix);
        if (r < 0)
                return r;

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
                /* Lower-case k/m/g/t are common enough to accept. */
                if (strcmp(suffix, table[i].suffix) == 0 ||
                    (suffix[0] && toupper((unsigned char) suffix[0]) == table[i].suffix[0] &&
                     strcmp(suffix + 1, table[i].suffix + 1) == 0))
                        return multiply(v, UINT64_C(1) << table[i].shift, ret);
        }
        return -EINVAL;
}

int parse_duration_usec(const char *s, uint64_t *ret) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } table[] = {
                { "", 1000000 }, { "s", 1000000 }, { "sec", 1000000 },
                { "us", 1 }, { "usec", 1 },
                { "ms", 1000 }, { "msec", 1000 },
                { "m", 60000000 }, { "min", 60000000 },
                { "h", UINT64_C(3600000000) },
                { "d", UINT64_C(86400000000) },
        };
        const char *suffix;
        uint64_t v;
        int r;

        r = parse_number_suffix(s, &v, &suffix);
        if (r < 0)
                return r;

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
                if (strcmp(suffix, table[i].suffix) == 0)
                        return multiply(v, table[i].usec, ret);
        return -EINVAL;
}
