#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build bufbroker and run the whole test suite: the unit, api, integration,
# hostile, examples, man and runner suites in a plain -Werror build, the unit, api,
# integration and hostile suites again under AddressSanitizer/UBSan, and the
# unit and integration suites with valgrind around the tests and the daemon; the
# fuzzer of the bus layer for 60 s (clang, libFuzzer, ASan + UBSan; its
# corpus also replays in every unit round); then the vm suite (real kernel:
# vivid, systemd) once. Ends with one line per step, one "N skipped" line
# naming every test that did not run, and one "N passed, N failed" line.
#
# A test that did not run is never a pass: every build dir is configured for
# the suites run in it (a missing tool is a configure error, not a suite that
# quietly is not there), every step is counted from its own meson log, and a
# skipped test (exit 77) counts as skipped. With CI=true a skipped test, or a
# step that ran no test at all, fails the run.
#
# Run as root: the integration tests start dbus-broker in a private mount
# namespace and run clients as uid 65534.
#   tests/run.sh [--quick]      --quick: the plain build only (the sanitizer,
#                               valgrind and fuzzer steps are listed as skipped)
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
case "${1:-}" in
"") ;;
--quick) quick=1 ;;
*) echo "usage: tests/run.sh [--quick]" >&2; exit 2 ;;
esac
strict=0
case "${CI:-}" in true|1) strict=1 ;; esac

tests/install-deps.sh test || exit 1

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
failed_steps=()

. tests/runner/runner.sh

# build: the plain -Werror build. It runs the man suite (-Dman=enabled), the
# vm suite (-Dvm-tests=enabled: no QEMU is a configure error) and the V4L2
# tests in the VM (-Dv4l2=enabled); valgrind reuses it.
setup build -Dtests=true -Dwerror=true -Db_sanitize=none -Db_lundef=true \
        -Dman=enabled -Dv4l2=enabled -Dvm-tests=enabled
run_step "plain build" build run-plain --suite unit --suite api --suite integration --suite hostile \
        --suite examples --suite man --suite runner
run_step "vm (QEMU: vivid, systemd)" build run-vm --suite vm

if [ $quick = 0 ]; then
        setup build-sanitize -Dtests=true -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                run_step "AddressSanitizer + UBSan" build-sanitize run-sanitize \
                --suite unit --suite api --suite integration --suite hostile

        # --vgdb=no: otherwise every valgrind makes /tmp/vgdb-pipe-*-<pid>-by-???-on-???,
        # left behind when a test SIGKILLs it; a daemon run as another user whose pid
        # matches such a leftover cannot create its own and exits at start.
        vg="valgrind --quiet --vgdb=no --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no"
        BUFBROKER_TEST_DAEMON_WRAPPER="$vg" \
                run_step "valgrind" build run-valgrind --suite unit --suite integration --wrapper "$vg" \
                --timeout-multiplier 4

        # build-fuzz: clang with libFuzzer, ASan + UBSan (-Dfuzz=enabled). Its
        # suite 'fuzz' is tests/fuzz/run-fuzzer: 60 s on a scratch copy of the
        # corpus (the tree is not touched); a crash fails the step, and the
        # input is saved under build-fuzz/fuzz-artifacts/.
        CC=clang setup build-fuzz -Dtests=true -Dwerror=true -Dfuzz=enabled \
                -Db_sanitize=address,undefined -Db_lundef=false
        run_step "libFuzzer (60 s)" build-fuzz run-fuzz --suite fuzz
else
        skip_step "AddressSanitizer + UBSan" --quick
        skip_step "valgrind" --quick
        skip_step "libFuzzer (60 s)" --quick
fi

summarize || exit 1
