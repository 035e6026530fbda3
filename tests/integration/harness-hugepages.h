/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration-test harness, the huge page pool (harness-hugepages.c): tests
 * reserve huge pages themselves (/proc/sys/vm/nr_hugepages) and the old
 * value is put back on every way out of the test program: at exit, on
 * SIGTERM and SIGINT (meson's timeout), and by huge_pages_restore().
 * Include harness.h.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* In main(), before the suite runs: saves the pool's size and arranges for
 * it to be put back. The kernel's huge page size, or 0 when this kernel or
 * machine cannot (not root, no hugetlbfs, no sealing of it, the pool not
 * writable), with the reason in @reason. */
uint64_t huge_pages_prepare(char *reason, size_t reason_size);
/* Put the saved size back (also at exit). */
void huge_pages_restore(void);
/* Size the pool to @n pages; asserts that the kernel gave them. */
void huge_pages_set(unsigned n);

/* A "Key: value" of /proc/meminfo (kB values in kB); -1 if absent. */
int64_t meminfo_value(const char *key);
/* Poll (up to 3 s) until @key is @want: pages come back when the last
 * description of a file goes, which may be a moment after BufferReleased
 * (the fd store's copy, a reply being closed). */
void assert_meminfo_becomes(const char *key, int64_t want);
