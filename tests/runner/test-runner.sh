#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tests/run.sh must never report success for tests that did not run (issue
# 7, item 11). This drives its steps (tests/runner/runner.sh) the way the
# README's order did on a fresh machine: demo.sh configured build/ before
# QEMU was there, so the vm suite was not defined; run.sh reused the dir;
# meson said "No suitable tests defined"; and the summary, which read the
# newest test log, counted the plain build's results a second time.
#   test-runner.sh SOURCEDIR
set -uo pipefail
src=${1:?usage: test-runner.sh SOURCEDIR}
. "$src/tests/runner/runner.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() {       # check WHAT COMMAND...: one case
        if "${@:2}"; then
                passed=$((passed + 1)); echo "ok - $1"
        else
                failed=$((failed + 1)); echo "not ok - $1"
        fi
}
fresh() {       # a new scratch results dir, as run.sh starts with
        results=$(mktemp -d "$tmp/results.XXXX")
        failed_steps=()
        strict=${1:-0}
}
step_line() {   # the counts of step NAME: "passed failed skipped"
        awk -F'\t' -v n="$1" '$1 == n { print $2, $3, $4 }' "$results/steps"
}
is() {          # is GOT WANT
        [ "$1" = "$2" ] || { echo "#   got '$1', want '$2'"; return 1; }
}

# A meson JSON test log (one object per line), as meson test --logbase writes.
log_line() {    # log_line NAME RESULT STDOUT
        python3 -c 'import json, sys; print(json.dumps({"name": "bufbroker:" + sys.argv[1], "result": sys.argv[2], "stdout": sys.argv[3]}))' "$@"
}

# --- counting one step's own log ---
fresh
log=$tmp/counts.json
{
        log_line "unit / A" OK $'100%: Checks: 5, Failures: 0, Errors: 0'
        # exit 77 (a precondition failed): skipped, whatever it printed
        log_line "unit / B" SKIP $'100%: Checks: 3, Failures: 0, Errors: 0'
        log_line "api / C89" OK ""                     # no count: 1 check
        # valgrind found an error after every check passed
        log_line "unit / C" FAIL $'100%: Checks: 4, Failures: 0, Errors: 0'
        log_line "unit / D" TIMEOUT ""
        log_line "vm / guests" OK $'=== vm-suite [plain] guest-v4l2 ===\nok 1 - a\nok 2 - b # SKIP no vivid\nvm-suite: [plain] guest-v4l2: exit 0, 10 passed, 0 failed, 1 skipped\n10 passed, 0 failed'
} >"$log"
count_step counts "$log" 1 >"$tmp/out" 2>&1
check "checks, skips (exit 77), uncounted passes, failing programs and guest skips are counted as such" \
        is "$(step_line counts)" "20 2 2"
check "a skipped test is named with its reason" grep -q "counts: unit / B" "$results/skipped"
check "a skipped guest case is named with its reason" grep -q "SKIP no vivid" "$results/skipped"

fresh
log_line "unit / A" OK $'100%: Checks: 5, Failures: 0, Errors: 0' >"$tmp/ok.json"
count_step "meson failed" "$tmp/ok.json" 1 >/dev/null
check "meson test exiting non-zero is a failure even when every count passed" \
        is "$(step_line "meson failed")" "5 1 0"

# --- the fresh-machine scenario, with real meson ---
fresh 1
b=$tmp/build
# demo.sh's configure on a machine without QEMU: the vm suite is not defined.
meson setup "$b" "$src" -Dvm-tests=disabled >"$tmp/setup.log" 2>&1 ||
        { cat "$tmp/setup.log"; echo "Bail out! meson setup failed"; exit 1; }
# A newer log of another run in the same dir, as the plain step leaves one.
mkdir -p "$b/meson-logs"
for i in $(seq 500); do log_line "unit / T$i" OK ""; done >"$b/meson-logs/testlog.json"
cp "$b/meson-logs/testlog.json" "$b/meson-logs/run-plain.json"
# and a stale log of this very step from an earlier run
log_line "vm / old" OK $'321 passed, 0 failed' >"$b/meson-logs/run-vm.json"

run_step "vm" "$b" run-vm --no-rebuild --suite vm >"$tmp/out" 2>&1
check "a step whose suite is not defined counts as skipped, not as another step's or an old run's passes" \
        is "$(step_line vm)" "0 0 1"
check "it is named: no test at all" grep -q "vm: no test at all" "$results/skipped"

summarize >"$tmp/summary" 2>&1
check "with CI=true a skipped step fails the run" is "$?" 1
check "the summary says what did not run" grep -q "^1 skipped: vm: no test at all" "$tmp/summary"
check "the summary total does not count the stale logs" grep -q "^0 passed, 0 failed$" "$tmp/summary"

fresh 0
summarize_rc=0
skip_step "valgrind" --quick
summarize >"$tmp/summary" 2>&1 || summarize_rc=$?
check "without CI=true skips are listed loudly but do not fail the run" is "$summarize_rc" 0
check "a step left out by --quick is listed as skipped" grep -q "valgrind: the whole step (--quick)" "$tmp/summary"

# run.sh configures the dir it reuses: the feature comes back on, and the
# suite with it (or configuring fails, when QEMU is missing).
configure "$b" -Dvm-tests=enabled >"$tmp/out" 2>&1
check "an existing build dir is reconfigured with the options its steps need" is "$?" 0
ninja -C "$b" build.ninja >/dev/null 2>&1      # regenerate only, build nothing
vm_tests=$(meson introspect --tests "$b" | python3 -c \
        'import json, sys; print(sum(t["suite"][0].endswith(":vm") for t in json.load(sys.stdin)))')
check "after reconfiguring, the vm suite is defined again" is "$vm_tests" 1
# Every suite the build defines is run by a step of run.sh (a new suite,
# such as examples, that no step names would never run in CI).
defined=$(meson introspect --tests "$b" | python3 -c \
        'import json, sys; print("\n".join(sorted({s.split(":")[-1] for t in json.load(sys.stdin) for s in t["suite"]})))')
run=$(grep -oE -- '--suite [a-z0-9-]+' "$src/tests/run.sh" | cut -d' ' -f2 | sort -u)
check "every suite the build defines is run by a step of tests/run.sh" \
        is "$(comm -23 <(echo "$defined") <(echo "$run") | tr '\n' ' ')" ""
options_are "$b" -Dvm-tests=disabled 2>"$tmp/out"
check "an option with another value than asked for is found" is "$?:$(cat "$tmp/out")" \
        "1:run.sh: vm-tests is enabled after configuring, not disabled"
configure "$b" -Dno-such-option=1 >"$tmp/out" 2>&1
check "an option meson does not take fails configuring" is "$?" 1

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
