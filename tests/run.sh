#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build bufbroker and run the whole test suite: the unit, api, integration,
# hostile and man suites in a plain -Werror build, the unit, api, integration
# and hostile suites again under AddressSanitizer/UBSan, and the unit and
# integration suites with valgrind around the tests and the daemon; the
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

# setup DIR -DNAME=VALUE...: configure DIR with these options and build it.
# A dir that exists is reconfigured, not reused as it is: demo.sh, a
# hand-made setup or an older run may have configured it with other options,
# or before a tool was installed, and a feature left at "auto" then drops its
# suite without a word. Options not named keep their old value, so each
# caller names every option its steps depend on. meson setup --reconfigure
# alone would not do: it ignores base options such as b_sanitize (meson
# issue 11732), which meson configure does set; and the result is checked.
setup() {
        local dir=$1; shift
        local log=$results/setup.log

        if [ -f "$dir/meson-private/coredata.dat" ]; then
                echo "=== meson configure $dir $*; meson setup --reconfigure $dir $* ==="
                meson configure "$dir" "$@" >"$log" 2>&1 &&
                        meson setup --reconfigure "$dir" "$@" >>"$log" 2>&1
        else
                echo "=== meson setup $dir $* ==="
                meson setup "$dir" "$@" >"$log" 2>&1
        fi || { cat "$log" >&2; echo "run.sh: configuring $dir failed" >&2; exit 1; }
        meson introspect "$dir" --buildoptions | python3 -c '
import json, sys
have = {o["name"]: o["value"] for o in json.load(sys.stdin)}
for arg in sys.argv[1:]:
    name, want = arg[2:].split("=", 1)
    v = have.get(name)
    v = str(v).lower() if isinstance(v, bool) else ",".join(v) if isinstance(v, list) else str(v)
    if v != want:
        sys.exit(f"run.sh: {name} is {v} after configuring, not {want}")
' "$@" || exit 1
        ninja -C "$dir" >/dev/null || { ninja -C "$dir"; echo "run.sh: build in $dir failed" >&2; exit 1; }
}

# count_step NAME JSONLOG MESONRC: count one step from its own meson log and
# append to $results: "steps" gets NAME<TAB>passed<TAB>failed<TAB>skipped,
# "skipped" one line per test that did not run. Prints the output of each
# skipped test, so that the reason is on screen.
count_step() {
        python3 - "$@" "$results" <<'EOF'
import json, re, sys

step, log, mesonrc, results = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
# check prints "NN%: Checks: N, Failures: F, Errors: E" per test binary; the
# man checks and the vm suite print a plain "N passed, N failed". The last
# such line is the test's own count: the vm suite streams its guest tests'
# output before its total.
count_re = re.compile(r'^(?:\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)|(\d+) passed, (\d+) failed)$', re.M)
# run-vm-suite: one line per guest program and mode; its skips (TAP "ok - X #
# SKIP why", or "# skipped: why" for a whole program) are not in the total.
vm_prog_re = re.compile(r'^vm-suite: \[(\w+)\] (\S+): exit \S+, \d+ passed, \d+ failed, (\d+) skipped$', re.M)
vm_head_re = re.compile(r'^=== vm-suite \[(\w+)\] (\S+) ===$')
vm_skip_re = re.compile(r'^(ok .*#\s*SKIP.*|# skipped: .*)$', re.I)

try:
    with open(log) as f:
        tests = [json.loads(line) for line in f if line.strip()]
except FileNotFoundError:
    tests = []     # meson found nothing to run ("No suitable tests defined")

passed = failed = skipped = 0
skips, fails = [], []
for t in tests:
    name = t['name'].split(':', 1)[-1]          # "bufbroker:unit / X" -> "unit / X"
    out = t.get('stdout') or ''
    if t['result'] == 'SKIP':
        # exit 77: it did not run, whatever counts it printed before.
        skipped += 1
        skips.append(f'{step}: {name}')
        print(f'run.sh: SKIPPED ({step}): {name}:')
        text = (out + (t.get('stderr') or '')).strip().splitlines()
        for line in text[-6:]:
            print(f'        | {line}')
        continue
    p = f = 0
    counts = count_re.findall(out)
    if counts:
        c = counts[-1]
        if c[0]:
            p, f = int(c[0]) - int(c[1]) - int(c[2]), int(c[1]) + int(c[2])
        else:
            p, f = int(c[3]), int(c[4])
    elif t['result'] in ('OK', 'EXPECTEDFAIL'):
        # A program that prints no count (the C89 header test, the exports
        # check) is one check: it passed as a whole.
        p = 1
    if t['result'] not in ('OK', 'EXPECTEDFAIL') and f == 0:
        # Failed, crashed, timed out or valgrind found an error after every
        # check passed: the program itself is the failure.
        f = 1
    if f:
        fails.append(f'{name} ({t["result"]})')
    mode_prog, reasons = None, {}
    for line in out.splitlines():
        m = vm_head_re.match(line)
        if m:
            mode_prog = m.groups()
        elif mode_prog and vm_skip_re.match(line):
            reasons.setdefault(mode_prog, []).append(line)
    for mode, prog, n in vm_prog_re.findall(out):
        if int(n):
            skipped += int(n)
            why = '; '.join(reasons.get((mode, prog), [])) or f'{n} case(s)'
            skips.append(f'{step}: {name}: [{mode}] {prog}: {why}')
    passed += p
    failed += f

ran = sum(1 for t in tests if t['result'] != 'SKIP')
if not tests:
    skipped += 1
    skips.append(f'{step}: no test at all (meson test found none to run)')
if mesonrc != 0 and failed == 0:
    failed = 1      # meson test itself failed (e.g. the build): not a pass
    fails.append(f'meson test exited {mesonrc}')

line = f'{step}: {passed} passed, {failed} failed, {skipped} skipped ({ran} of {len(tests)} tests ran)'
print(line)
with open(f'{results}/steps', 'a') as fh:
    fh.write(f'{step}\t{passed}\t{failed}\t{skipped}\t{line}\n')
with open(f'{results}/skipped', 'a') as fh:
    fh.writelines(s + '\n' for s in skips)
for x in fails:
    print(f'run.sh: FAILED ({step}): {x}')
EOF
}

# run_step NAME BUILDDIR LOGBASE [meson test args...]: one meson test run with
# a log of its own (meson-logs/LOGBASE.json), counted from that log only.
run_step() {
        local name=$1 dir=$2 logbase=$3 rc log logs=(); shift 3
        echo "=== $name ==="
        # A log from an earlier run is no result. With --wrapper W meson
        # names the log LOGBASE-W.json (basename of W's first word).
        rm -f "$dir/meson-logs/$logbase".* "$dir/meson-logs/$logbase"-*.*
        meson test -C "$dir" --logbase "$logbase" --print-errorlogs "$@"
        rc=$?
        [ $rc = 0 ] || failed_steps+=("$name")
        for log in "$dir/meson-logs/$logbase".json "$dir/meson-logs/$logbase"-*.json; do
                [ -f "$log" ] && logs+=("$log")
        done
        [ ${#logs[@]} -le 1 ] || { echo "run.sh: more than one log: ${logs[*]}" >&2; failed_steps+=("$name (logs)"); }
        count_step "$name" "${logs[0]:-$dir/meson-logs/$logbase.json}" "$rc" || failed_steps+=("$name (counting)")
}

# skip_step NAME WHY: a step that this run leaves out is listed as skipped
# too: the total is not that of the whole suite.
skip_step() {
        printf '%s\t0\t0\t1\t%s: not run (%s)\n' "$1" "$1" "$2" >>"$results/steps"
        printf '%s: the whole step (%s)\n' "$1" "$2" >>"$results/skipped"
}

# build: the plain -Werror build. It runs the man suite (-Dman=enabled), the
# vm suite (-Dvm-tests=enabled: no QEMU is a configure error) and the V4L2
# tests in the VM (-Dv4l2=enabled); valgrind reuses it.
setup build -Dtests=true -Dwerror=true -Db_sanitize=none -Db_lundef=true \
        -Dman=enabled -Dv4l2=enabled -Dvm-tests=enabled
run_step "plain build" build run-plain --suite unit --suite api --suite integration --suite hostile --suite man
run_step "vm (QEMU: vivid, systemd)" build run-vm --suite vm

if [ $quick = 0 ]; then
        setup build-sanitize -Dtests=true -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                run_step "AddressSanitizer + UBSan" build-sanitize run-sanitize \
                --suite unit --suite api --suite integration --suite hostile

        vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no"
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

touch "$results/steps" "$results/skipped"
read -r passed failed skipped < <(awk -F'\t' '{ p += $2; f += $3; s += $4 } END { print p + 0, f + 0, s + 0 }' \
        "$results/steps")
rc=0
echo
if [ "$skipped" -gt 0 ]; then
        bar='########################################################################'
        echo "$bar"
        echo "## $skipped SKIPPED: these did not run, and are not counted as passed:"
        sed 's/^/##   /' "$results/skipped"
        echo "$bar"
        if [ $strict = 1 ]; then
                echo "run.sh: CI=true: every test must run in CI; failing because $skipped did not" >&2
                rc=1
        fi
fi
if [ ${#failed_steps[@]} -gt 0 ]; then
        echo "FAILED: ${failed_steps[*]}"
        rc=1
fi
[ "$failed" -gt 0 ] && rc=1
cut -f5 "$results/steps"
mapfile -t skips <"$results/skipped"
if [ "$skipped" -gt 0 ]; then
        printf -v list '%s | ' "${skips[@]}"
        echo "$skipped skipped: ${list% | }"
else
        echo "0 skipped"
fi
echo "$passed passed, $failed failed"
exit $rc
