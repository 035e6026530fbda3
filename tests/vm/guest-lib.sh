# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Helpers for shell guest tests of the vm suite (see run-vm-suite): source
# it, call check/ok/not_ok/skip, end with finish.  They print the TAP-style
# lines that run-vm-suite counts; diagnostics are "# " comment lines, so
# they can never be mistaken for a result.

bb_failed=0

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; bb_failed=1; }
skip() { echo "ok - $1 # SKIP ${2:-}"; }

# check NAME COMMAND [ARG...]: one case, passed if COMMAND exits 0.  The
# command's output is shown only when it fails (BB_VM_VERBOSE=1: always).
check() {
        local name=$1 out rc
        shift
        out=$("$@" 2>&1)
        rc=$?
        if [ -n "$out" ] && { [ $rc != 0 ] || [ "${BB_VM_VERBOSE:-0}" = 1 ]; }; then
                printf '%s\n' "$out" | sed 's/^/# /'
        fi
        if [ $rc = 0 ]; then ok "$name"; else not_ok "$name (exit $rc: $*)"; fi
}

# skip the whole program in this mode (counted as one skipped case)
skip_all() { echo "# skipped: $*"; exit 77; }

finish() { exit $bb_failed; }
