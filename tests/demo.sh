#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job in one command: build bufbroker, start a private bus with
# bufbrokerd on it, and walk a buffer through its life with bufbrokerctl:
# create -> write -> share read-only -> open and read in a second process
# (as another uid when run as root) -> release. Everything it starts is
# stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/install-deps.sh build
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

ctl=$PWD/build/client/bufbrokerctl
daemon=$PWD/build/daemon/bufbrokerd
run=$(mktemp -d /tmp/bufbroker-demo.XXXXXX)
chmod 0755 "$run"
pids=()
cleanup() {
        # Newest first: the daemon before its bus. A daemon that loses its
        # bus exits 1 (so systemd restarts it), and under set -e a failed
        # wait fails the demo: stopping the bus first did exactly that.
        for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
                kill "${pids[i]}" 2>/dev/null; wait "${pids[i]}" 2>/dev/null
        done
        rm -rf "$run"
}
trap cleanup EXIT

# A private session-style bus: nothing on the machine is touched.
cat > "$run/bus.conf" <<CONF
<busconfig>
  <type>session</type>
  <listen>unix:path=$run/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
CONF
dbus-daemon --config-file="$run/bus.conf" --nofork --nopidfile --nosyslog &
pids+=($!)
export DBUS_SESSION_BUS_ADDRESS="unix:path=$run/bus"
for _ in $(seq 100); do [ -S "$run/bus" ] && break; sleep 0.05; done

"$daemon" --user &
pids+=($!)
for _ in $(seq 100); do "$ctl" --user status >/dev/null 2>&1 && break; sleep 0.05; done

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
ctl() { step "bufbrokerctl $*"; "$ctl" --user "$@"; }

ctl status
step "bufbrokerctl create --size 64K --name demo --persistent"
id=$("$ctl" --user create --size 64K --name demo --persistent)
echo "$id"
step "echo 'hello from bufbroker' | bufbrokerctl write $id"
echo "hello from bufbroker" | "$ctl" --user write "$id"
step "bufbrokerctl share $id --read-only"
token=$("$ctl" --user share "$id" --read-only)
echo "$token"
ctl list

# The second process: another uid when we can switch to one.
as_other=()
if [ "$(id -u)" -eq 0 ]; then
        as_other=(setpriv --reuid=65534 --regid=65534 --clear-groups)
        # A checkout in a private home directory is out of nobody's reach.
        if ! "${as_other[@]}" "$ctl" --version >/dev/null 2>&1; then
                echo "(uid 65534 cannot run $ctl from here: the second process runs as $(id -un))"
                as_other=()
        fi
fi
step "${as_other[*]} bufbrokerctl cat $token | head -c 21"
"${as_other[@]}" "$ctl" --user cat "$token" | head -c 21; echo
step "echo overwrite | ${as_other[*]} bufbrokerctl write $token   # must fail: read-only"
if echo overwrite | "${as_other[@]}" "$ctl" --user write "$token"; then
        echo "demo: writing through a read-only token succeeded" >&2; exit 1
fi
ctl release "$id"
ctl list
ctl status
echo; echo "demo: ok"
