#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build bufbroker and run the whole test suite: the unit, api and integration
# suites in a plain -Werror build, again under AddressSanitizer/UBSan, and
# the unit and integration suites with valgrind around the tests and the
# daemon; then the vm suite (real kernel: vivid, systemd) once. Ends with
# one "N passed, N failed" line summing every suite's counts.
# Run as root: the integration tests start dbus-broker in a private mount
# namespace and run clients as uid 65534.
#   tests/run.sh [--quick]      --quick: the plain build only
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = --quick ] && quick=1

tests/install-deps.sh test || exit 1

summary_file=$(mktemp)
trap 'rm -f "$summary_file"' EXIT
failed_steps=()

# run_suites NAME BUILDDIR [meson test args...]
run_suites() {
        local name=$1 dir=$2; shift 2
        echo "=== $name ==="
        if ! meson test -C "$dir" --print-errorlogs "$@"; then
                failed_steps+=("$name")
        fi
        # check prints "NN%: Checks: N, Failures: F, Errors: E" per test
        # binary; the vm suite a plain "N passed, N failed".
        local log
        log=$(ls -t "$dir"/meson-logs/testlog*.txt | head -n 1)
        grep -hoE '[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+|^[0-9]+ passed, [0-9]+ failed' \
                "$log" | tee -a "$summary_file"
}

setup() {
        local dir=$1; shift
        if [ ! -d "$dir" ]; then
                meson setup "$dir" "$@" >/dev/null || { echo "meson setup $dir failed" >&2; exit 1; }
        fi
        ninja -C "$dir" >/dev/null || { ninja -C "$dir"; echo "build in $dir failed" >&2; exit 1; }
}

setup build
run_suites "plain build" build --suite unit --suite api --suite integration --suite man
run_suites "vm (QEMU: vivid, systemd)" build --suite vm

if [ $quick = 0 ]; then
        setup build-sanitize -Db_sanitize=address,undefined -Db_lundef=false
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                run_suites "AddressSanitizer + UBSan" build-sanitize --suite unit --suite api --suite integration

        vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no"
        BUFBROKER_TEST_DAEMON_WRAPPER="$vg" \
                run_suites "valgrind" build --suite unit --suite integration --wrapper "$vg" \
                --timeout-multiplier 4
fi

awk -F'[:,] *' '/Checks/ { passed += $3 - $5 - $7; failed += $5 + $7 }
        / passed, / { split($0, w, " "); passed += w[1]; failed += w[3] }
        END { printf "%d passed, %d failed\n", passed, failed }' "$summary_file" > "$summary_file.total"
if [ ${#failed_steps[@]} -gt 0 ]; then
        echo "FAILED: ${failed_steps[*]}"
        cat "$summary_file.total"; rm -f "$summary_file.total"
        exit 1
fi
cat "$summary_file.total"; rm -f "$summary_file.total"
