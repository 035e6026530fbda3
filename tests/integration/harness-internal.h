/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Between the harness's own files, not for tests. */
#pragma once

#include <sys/types.h>

/* In a forked child: drop to uid (its gid alike, no supplementary groups);
 * nothing for 0. Returns 0 or -errno. */
int harness_become_uid(uid_t uid);
