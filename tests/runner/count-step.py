#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# count-step.py NAME JSONLOG MESONRC RESULTSDIR: count one step of
# tests/run.sh from that step's own meson log (meson test --logbase) and
# append to RESULTSDIR: "steps" gets NAME<TAB>passed<TAB>failed<TAB>skipped
# <TAB>summary line, "skipped" one line per test that did not run. Prints the
# output of each skipped test, so that the reason is on screen. A missing
# log is a step that ran no test: skipped, never a pass.
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
