/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerd's log: one line per message on stderr, with its syslog
 * priority. When stderr is the journal's stream (systemd sets
 * $JOURNAL_STREAM to its device and inode), each line starts with "<N>",
 * which journald takes as the priority, so `journalctl -p err -u bufbrokerd`
 * shows the errors; elsewhere lines start with "bufbrokerd: ".
 */
#pragma once

#include <syslog.h>

#include "macro.h"

void log_full(int priority, const char *format, ...) _printf_(2, 3);
/* Appends ": <strerror(-r)>"; returns r (negative errno) for `return log_…_errno(r, …)`. */
int log_full_errno(int priority, int r, const char *format, ...) _printf_(3, 4);

#define log_error(...)          log_full(LOG_ERR, __VA_ARGS__)
#define log_warning(...)        log_full(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)         log_full(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)           log_full(LOG_INFO, __VA_ARGS__)
#define log_error_errno(r, ...)   log_full_errno(LOG_ERR, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_WARNING, (r), __VA_ARGS__)
