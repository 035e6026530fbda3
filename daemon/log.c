/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* Is stderr the stream $JOURNAL_STREAM ("DEV:INODE") names? Not merely set:
 * a child that inherited the variable may have had stderr redirected. */
static bool stderr_is_journal(void) {
        static int cached = -1;
        unsigned long long dev, ino;
        const char *e;
        struct stat st;

        if (cached >= 0)
                return cached;
        e = getenv("JOURNAL_STREAM");
        cached = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
                 (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
        return cached;
}

_printf_(3, 0) static void log_line(int priority, const char *suffix, const char *format, va_list ap) {
        char text[2048];

        /* One write per line, so that lines of concurrent writers never mix. */
        (void) vsnprintf(text, sizeof(text), format, ap);
        if (stderr_is_journal())
                fprintf(stderr, "<%d>%s%s\n", LOG_PRI(priority), text, suffix);
        else
                fprintf(stderr, "bufbrokerd: %s%s\n", text, suffix);
}

void log_full(int priority, const char *format, ...) {
        int saved_errno = errno;
        va_list ap;

        va_start(ap, format);
        log_line(priority, "", format, ap);
        va_end(ap);
        errno = saved_errno;
}

int log_full_errno(int priority, int r, const char *format, ...) {
        int saved_errno = errno;
        char suffix[256];
        va_list ap;

        snprintf(suffix, sizeof(suffix), ": %s", strerror(r < 0 ? -r : r));
        va_start(ap, format);
        log_line(priority, suffix, format, ap);
        va_end(ap);
        errno = saved_errno;
        return r < 0 ? r : -r;
}
