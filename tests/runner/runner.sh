# SPDX-License-Identifier: LGPL-2.1-or-later
# The steps of tests/run.sh, sourced by it and by tests/runner/test-runner.sh.
# The caller sets: results (a scratch dir for the counts), failed_steps=()
# and strict (1: any skipped test fails the run, as under CI=true).
runner_dir=$(dirname "${BASH_SOURCE[0]}")
source_root=$(cd "$runner_dir/../.." && pwd)

# configure DIR -DNAME=VALUE...: configure DIR with these options. A dir that
# exists is reconfigured, not reused as it is: demo.sh, a hand-made setup or
# an older run may have configured it with other options, or before a tool
# was installed, and a feature left at "auto" then drops its suite without a
# word. Options not named keep their old value, so each caller names every
# option its steps depend on. meson setup --reconfigure alone would not do:
# it ignores base options such as b_sanitize (meson issue 11732), which meson
# configure does set; and the result is checked. Returns 1 on failure.
configure() {
        local dir=$1; shift
        local log=$results/setup.log

        if [ -f "$dir/meson-private/coredata.dat" ]; then
                echo "=== meson configure $dir $*; meson setup --reconfigure $dir $* ==="
                meson configure "$dir" "$@" >"$log" 2>&1 &&
                        meson setup --reconfigure "$dir" "$source_root" "$@" >>"$log" 2>&1
        else
                echo "=== meson setup $dir $* ==="
                meson setup "$dir" "$source_root" "$@" >"$log" 2>&1
        fi || { cat "$log" >&2; echo "run.sh: configuring $dir failed" >&2; return 1; }
        options_are "$dir" "$@"
}

# options_are DIR -DNAME=VALUE...: DIR is configured with these values.
options_are() {
        local dir=$1; shift
        meson introspect "$dir" --buildoptions | python3 -c '
import json, sys
have = {o["name"]: o["value"] for o in json.load(sys.stdin)}
for arg in sys.argv[1:]:
    name, want = arg[2:].split("=", 1)
    v = have.get(name)
    v = str(v).lower() if isinstance(v, bool) else ",".join(v) if isinstance(v, list) else str(v)
    if v != want:
        sys.exit(f"run.sh: {name} is {v} after configuring, not {want}")
' "$@"
}

# setup DIR -DNAME=VALUE...: configure DIR and build it; exits on failure.
setup() {
        local dir=$1
        configure "$@" || exit 1
        ninja -C "$dir" >/dev/null || { ninja -C "$dir"; echo "run.sh: build in $dir failed" >&2; exit 1; }
}

# count_step NAME JSONLOG MESONRC: see count-step.py.
count_step() {
        python3 "$runner_dir/count-step.py" "$@" "$results"
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

# summarize: a line per step, the skipped tests, "N passed, N failed".
# Returns 1 when a test failed, a step failed, or (strict) a test was skipped.
summarize() {
        local passed failed skipped rc=0 bar list skips
        touch "$results/steps" "$results/skipped"
        read -r passed failed skipped < <(awk -F'\t' '{ p += $2; f += $3; s += $4 } END { print p + 0, f + 0, s + 0 }' \
                "$results/steps")
        echo
        if [ "$skipped" -gt 0 ]; then
                bar='########################################################################'
                echo "$bar"
                echo "## $skipped SKIPPED: these did not run, and are not counted as passed:"
                sed 's/^/##   /' "$results/skipped"
                echo "$bar"
                if [ "$strict" = 1 ]; then
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
        return $rc
}
