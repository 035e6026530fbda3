#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vm suite smoke test: proves the harness gives the guest tests what they
# rely on.  Both modes: vivid's capture node works and the results dir is
# shared read-write.  systemd mode: systemd is PID 1 and the system bus is up.
. "$(dirname "$0")/guest-lib.sh"

check "/dev/video0 is a character device" test -c /dev/video0
major=$(stat -c %t /dev/video0 2>/dev/null)
check "/dev/video0 has the video4linux major 81 (got 0x$major)" test "$((0x${major:-0}))" = 81
check "v4l2-ctl --all on /dev/video0" v4l2-ctl -d /dev/video0 --all
check "/dev/video0 is driven by vivid" \
        sh -c 'v4l2-ctl -d /dev/video0 --info | grep -q "Driver name *: vivid"'
check "BB_VM_OUT is shared read-write with the host" \
        sh -c 'echo "$BB_VM_MODE" >"$BB_VM_OUT/smoke-$BB_VM_MODE" && test -s "$BB_VM_OUT/smoke-$BB_VM_MODE"'
check "the build dir is the working directory" test "$PWD" = "$BB_BUILD_DIR"

if [ "$BB_VM_MODE" = systemd ]; then
        check "systemd is PID 1" test "$(cat /proc/1/comm)" = systemd
        state=$(systemctl is-system-running)
        check "system state is running or degraded (got '$state')" \
                test "$state" = running -o "$state" = degraded
        [ "$state" = running ] || systemctl --failed --no-pager | sed 's/^/# /'
        check "busctl list shows org.freedesktop.DBus on the system bus" \
                sh -c 'busctl list --no-pager | grep -q "^org\.freedesktop\.DBus "'
fi
finish
