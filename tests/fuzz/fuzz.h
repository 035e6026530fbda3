/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The entry point libFuzzer calls, and that fuzz-replay.c calls for every
 * corpus file in builds without libFuzzer.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
