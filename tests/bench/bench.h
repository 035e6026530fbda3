/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the benchmark's source files share: bench-broker.c (the buses, the
 * interleaved rows, the report), bench-peers.c (the yardsticks D and B) and
 * bench-scale.c (the measurements that are not interleaved rows: bulk data,
 * live buffers, the fd store, RSS, concurrent clients).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "macro.h"
#include "private-bus.h"

#define BUFFER_SIZE 4096u

/* D: the minimal sd-bus service, on the same bus as bufbrokerd. */
#define BENCH_D_NAME      "org.bufbroker.BenchPeer1"
#define BENCH_D_PATH      "/org/bufbroker/BenchPeer1"
#define BENCH_D_INTERFACE "org.bufbroker.BenchPeer1"

/* ---- bench-broker.c ---- */
uint64_t now_ns(void);
_printf_(1, 2) _Noreturn void fail(const char *fmt, ...);
const char *env_required(const char *name);
unsigned env_unsigned(const char *name, unsigned def, unsigned min, unsigned max);
int cmp_u64(const void *a, const void *b);
double percentile_u64(const uint64_t *v, unsigned n, double q);    /* of sorted v */
double median_double(const double *v, unsigned n);                  /* n <= 64 */
/* Start bufbrokerd on a bus whose connection is bus; waits until it owns its
 * name. extra: more options (NULL-terminated, may be NULL). */
pid_t bench_spawn_bufbrokerd(sd_bus *bus, const char *address, const char *what, const char *const *extra,
                             const PbusSpawn *opts);

/* ---- bench-peers.c ---- */
/* memfd_create + ftruncate + seal SHRINK|GROW, as bufbrokerd makes them. */
int bench_memfd_new(uint64_t size);
void bench_probe_memfd_flags(void);
/* Map fd's first page, touch it, unmap: what every row's client does. */
int bench_map_touch(int fd);
/* The sum of the 8-byte words of p[0..n): how both bulk readers read. */
uint64_t bench_sum_words(const void *p, size_t n);

/* D: a forked child serving BENCH_D_NAME on address (returns once the name
 * is owned). Methods: Create(t size) -> h, a fresh sealed memfd;
 * Sink(ay) -> t, the sum of its 8-byte words (it reads them all). */
pid_t bench_d_start(const char *address, sd_bus *bus);
/* Config snippet (in the default policy) that lets D own its name and be called. */
extern const char bench_d_policy[];
int bench_d_create_cycle(sd_bus *bus, sd_bus_error *error);

/* B: a forked child serving a SOCK_SEQPACKET socket: one request byte in,
 * one sealed memfd out by SCM_RIGHTS. *ret_fd: the client's end. */
pid_t bench_b_start(int *ret_fd);
int bench_b_cycle(int fd);

/* ---- bench-scale.c ---- */
typedef struct ScaleBus {
        const char *name;
        const char *address;
        sd_bus *bus;            /* raw connection (D calls) */
} ScaleBus;

/* 1/4/16 clients (processes), create->release loops, ms per level; on the
 * running daemons. */
void bench_concurrency(const ScaleBus *buses, unsigned n_buses, unsigned ms);
/* mib MiB through a bufbrokerd buffer vs as 'ay' to D's Sink. */
void bench_bulk(const ScaleBus *buses, unsigned n_buses, unsigned mib);
/* Live-buffer levels up to max_level, without and with the fd store, and
 * RSS: starts its own bufbrokerd on the bus (none may be running there);
 * dir: where the fake notify socket goes. Returns false if a daemon did not
 * exit cleanly. */
bool bench_live_buffers(const ScaleBus *b, const char *dir, unsigned max_level, unsigned fdstore_build_sec);
/* The lines these print for the summary at the end. */
void bench_scale_print_summary(void);
