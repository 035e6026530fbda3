#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vm suite (plain mode): bufbroker's V4L2 dma-buf buffers against the real
# vivid driver. One boot runs it all:
#
#   - a private dbus-daemon with a system-bus-like config (everyone may
#     connect, 16 fds per message) that includes the project's real policy
#     file, and the real bufbrokerd from the build dir on it;
#   - vivid reloaded in four configurations, n_devs=2 each (instance A:
#     /dev/video0..3, instance B: /dev/video4..7): single-planar with the
#     vmalloc and the dma-contig allocator, multi-planar with both;
#   - guest-v4l2 (a C program, built in BUILD/tests/vm) runs the cases of each
#     configuration through libbufbroker and raw sd-bus (device access for
#     uid 65534, vivid's error injection, running the daemon out of fds,
#     a disconnect under held buffers among them); this script runs the
#     CLI and busctl cases, and restarts the daemon with small quotas.
#
# vivid is left as the boot loaded it. Daemon logs go to $BB_VM_OUT.
# (functions run through trap and check look unreachable to shellcheck)
# shellcheck disable=SC2317
# shellcheck source=guest-lib.sh
. "$(dirname "$0")/guest-lib.sh"

[ "${BB_VM_MODE:-}" = plain ] || skip_all "runs in plain mode only"
B=${BB_BUILD_DIR:?} S=${BB_SOURCE_DIR:?} OUT=${BB_VM_OUT:-/tmp}
daemon=$B/daemon/bufbrokerd ctl=$B/client/bufbrokerctl prog=$B/tests/vm/guest-v4l2
policy=$S/systemd/org.bufbroker.Broker1.conf
grep -q '^#define HAVE_V4L2 1' "$B/config.h" 2>/dev/null || skip_all "bufbroker was built without V4L2 support"
for f in "$daemon" "$ctl" "$prog"; do
        [ -x "$f" ] || { not_ok "build output $f is missing"; finish; }
done
for c in dbus-daemon busctl modprobe; do
        command -v $c >/dev/null || { not_ok "$c is not installed"; finish; }
done

T=$(mktemp -d /run/bb-v4l2.XXXXXX) || exit 1
# uid 65534 connects to the bus socket in here (the device-access cases)
chmod 0755 "$T"
bus_pid="" daemon_pid=""

cleanup() {
        [ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null
        [ -n "$bus_pid" ] && kill -TERM "$bus_pid" 2>/dev/null
        wait 2>/dev/null
        # vivid as the boot had it, for the guest tests after this one
        local BB_VIVID=""
        # shellcheck disable=SC1091  # vm-init's config, in the guest only
        [ -r /run/bbvm/config ] && BB_VIVID=$(. /run/bbvm/config && echo "${BB_VIVID:-}")
        # shellcheck disable=SC2086  # module options are split on purpose
        [ "$BB_VIVID" = no ] || { modprobe -r vivid && modprobe vivid $BB_VIVID; } >/dev/null 2>&1
        rm -rf "$T"
}
trap cleanup EXIT

# ------------------------------------------------------------- the bus ---
cat >"$T/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=$T/bus</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
  </policy>
  <limit name="max_incoming_unix_fds">64</limit>
  <limit name="max_outgoing_unix_fds">64</limit>
  <limit name="max_message_unix_fds">16</limit>
  <include>$policy</include>
</busconfig>
EOF
dbus-daemon --config-file="$T/bus.conf" --nofork --nopidfile --nosyslog --print-address=3 \
        3>"$T/address" 2>"$OUT/v4l2-dbus-daemon.log" &
bus_pid=$!
for _ in $(seq 300); do [ -s "$T/address" ] && break; sleep 0.1; done
A=$(head -n1 "$T/address")
check "private dbus-daemon (system-like, max_message_unix_fds 16, project policy) is up" test -n "$A"
[ -n "$A" ] || finish
export DBUS_SYSTEM_BUS_ADDRESS=$A
bctl() { busctl --address="$A" "$@"; }

name_owned() {
        [[ $(bctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s \
                org.bufbroker.Broker1 2>/dev/null) == "b true" ]]
}

start_daemon() {
        echo "=== bufbrokerd $* ===" >>"$OUT/v4l2-bufbrokerd.log"
        "$daemon" --system "$@" 2>>"$OUT/v4l2-bufbrokerd.log" &
        daemon_pid=$!
        for _ in $(seq 600); do
                name_owned && return 0
                kill -0 "$daemon_pid" 2>/dev/null || break
                sleep 0.1
        done
        return 1
}

stop_daemon() {
        kill -TERM "$daemon_pid"
        wait "$daemon_pid"
        local rc=$?
        daemon_pid=""
        return $rc
}

# vivid with OPTS, both instances' capture nodes present
load_vivid() {
        modprobe -r vivid || return 1
        modprobe vivid "$@" || return 1
        for _ in $(seq 100); do
                [ -c /dev/video0 ] && [ -c /dev/video4 ] && return 0
                sleep 0.1
        done
        return 1
}

# phase NAME VIVID-OPTS... : reload vivid (bufbrokerd keeps running: it must
# hold nothing on the device between sets, or modprobe -r fails)
phase() {
        local name=$1
        shift
        echo "# ---- $name: vivid $* (at ${SECONDS} s) ----"
        check "$name: modprobe -r vivid && modprobe vivid $* (bufbrokerd running, holding no device)" load_vivid "$@"
}

# ------------------------------------------------------------- the CLI ---
# Process creation costs 0.3-1 s under TCG on a busy host: the CLI and busctl
# cases match their outputs with bash itself, without grep/sed/sh -c.
nl=$'\n'

# result NAME STATUS [DIAGNOSTIC...]: one case, passed if STATUS is 0
result() {
        local name=$1 rc=$2 line
        shift 2
        if [ "$rc" = 0 ]; then
                ok "$name"
        else
                not_ok "$name"
                while IFS= read -r line; do echo "# $line"; done <<<"$*"
        fi
}

count_daemon_fds() {
        local f=(/proc/"$daemon_pid"/fd/*)
        nfds=${#f[@]}
}

cli_cases() {
        local ids id n list info out rc bad re p i base_fds nfds paths=() rest
        count_daemon_fds
        base_fds=$nfds

        ids=$("$ctl" create --v4l2 /dev/video0 --format 640x480:YUYV --count 4 --persistent 2>"$T/err")
        rc=$?
        # shellcheck disable=SC2206  # one id per word
        ids=($ids)
        bad=0
        [ $rc = 0 ] && [ ${#ids[@]} = 4 ] || bad=1
        for i in "${ids[@]}"; do [[ $i =~ ^[0-9]+$ ]] || bad=1; done
        result "bufbrokerctl create --v4l2 /dev/video0 --format 640x480:YUYV --count 4 --persistent prints 4 ids" \
                $bad "exit $rc, ids: ${ids[*]}" "stderr: $(<"$T/err")"
        id=${ids[0]:-0}

        list=$("$ctl" list 2>&1)
        bad=0
        for i in "${ids[@]}"; do
                # ID KIND SIZE UID USER HOLDERS PERSISTENT ...
                re="(^|$nl)$i +v4l2 +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +yes "
                [[ $list =~ $re ]] || bad=1
        done
        result "bufbrokerctl list shows the 4 buffers as kind v4l2, persistent" $bad "$list"

        info=$("$ctl" info "$id" 2>&1)
        bad=0
        for re in "(^|$nl)Kind: +v4l2($nl|\$)" "(^|$nl)Format: +640x480:YUYV($nl|\$)" \
                  "(^|$nl)Type: +capture($nl|\$)" "(^|$nl)Planes: +1($nl|\$)" \
                  "plane 0: +length 614400, stride 1280, offset 0"; do
                [[ $info =~ $re ]] || bad=1
        done
        result "bufbrokerctl info $id shows kind v4l2, format 640x480:YUYV, type capture, 1 plane of 614400 bytes, stride 1280" \
                $bad "$info"

        n=$("$ctl" cat "$id" | wc -c)
        result "bufbrokerctl cat $id | wc -c = 614400, the sizeimage (got $n)" "$([ "$n" = 614400 ]; echo $?)"

        out=$("$ctl" create --v4l2 /dev/video0 --count 2 2>&1)
        rc=$?
        [ $rc != 0 ] && [[ ${out,,} == *busy* ]]
        result "bufbrokerctl create --v4l2 on the busy /dev/video0 fails (exit $rc), saying busy" $? "$out"

        out=$("$ctl" create --v4l2 /dev/v4l-touch0 --format :RGB3 --count 2 2>&1)
        rc=$?
        [ $rc != 0 ] && [[ $out == *emulated* ]]
        result "bufbrokerctl create --v4l2 /dev/v4l-touch0 --format :RGB3 fails (exit $rc), saying emulated" $? "$out"

        for i in "${ids[@]}"; do "$ctl" release "$i" || echo "# release $i failed"; done
        list=$("$ctl" list 2>&1)
        re="(^|$nl)[0-9]+ +v4l2 "
        ! [[ $list =~ $re ]]
        result "after bufbrokerctl release of each: list shows no v4l2 buffer" $? "$list"

        # busctl, a client that knows nothing of bufbroker
        out=$(bctl call org.bufbroker.Broker1 /org/bufbroker/Broker1 org.bufbroker.Broker1 CreateV4L2 \
                'sua{sv}a{sv}' /dev/video0 2 3 width u 640 height u 480 fourcc s YUYV 1 persistent b true 2>&1)
        [[ $out == "aoa{sv} 2 "* && $out == *'"fourcc" s "YUYV"'* && $out == *'"sizeimage" au 1 614400'* ]]
        result "busctl CreateV4L2 (persistent) returns 2 paths and the driver's format: YUYV, sizeimage 614400" $? "$out"
        rest=$out
        while [[ $rest =~ \"(/org/bufbroker/Broker1/buffer/[0-9]+)\" ]]; do
                paths+=("${BASH_REMATCH[1]}")
                rest=${rest#*"${BASH_REMATCH[0]}"}
        done
        p=${paths[0]:-/org/bufbroker/Broker1/buffer/0}
        out=$(bctl get-property org.bufbroker.Broker1 "$p" org.bufbroker.Buffer1 Kind 2>&1)
        result "busctl get-property $p Kind is \"v4l2\"" "$([ "$out" = 's "v4l2"' ]; echo $?)" "$out"
        out=$(bctl call org.bufbroker.Broker1 "$p" org.bufbroker.Buffer1 OpenFds 'a{sv}' 0 2>&1)
        [[ $out == "aha{sv} 1 "* && $out == *'"kind" s "v4l2"'* && $out == *'"planes" a(tuu) 1 614400 1280 0'* ]]
        result "busctl OpenFds on $p gives 1 fd and info: kind v4l2, planes (614400, 1280, 0)" $? "$out"
        bad=0
        for p in "${paths[@]}"; do
                bctl call org.bufbroker.Broker1 "$p" org.bufbroker.Buffer1 Release || bad=1
        done
        result "busctl Release of both" $bad

        # a set that is not persistent dies with its only holder, busctl
        out=$(bctl call org.bufbroker.Broker1 /org/bufbroker/Broker1 org.bufbroker.Broker1 CreateV4L2 \
                'sua{sv}a{sv}' /dev/video0 2 0 0 2>&1)
        [[ $out == "aoa{sv} 2 "* ]]
        result "busctl CreateV4L2 without options creates 2 buffers on the device's current format" $? "$out"
        for i in $(seq 30); do
                out=$(bctl get-property org.bufbroker.Broker1 /org/bufbroker/Broker1 org.bufbroker.Broker1 Stats 2>&1)
                [[ $out == *'"buffers" t 0 '* ]] && break
                sleep 0.2
        done
        [[ $out == *'"buffers" t 0 '* ]]
        result "... and they are gone once busctl, their only holder, exited (Stats buffers 0)" $? "$out"

        out=$(bctl call org.bufbroker.Broker1 /org/bufbroker/Broker1 org.bufbroker.Broker1 CreateV4L2 \
                'sua{sv}a{sv}' /etc/shadow 2 0 0 2>&1)
        rc=$?
        [ $rc != 0 ] && [[ $out == *"'/etc/shadow'"* ]]
        result "busctl CreateV4L2 /etc/shadow fails (exit $rc) naming the path" $? "$out"

        for i in $(seq 30); do
                count_daemon_fds
                [ "$nfds" = "$base_fds" ] && break
                sleep 0.2
        done
        result "after the CLI and busctl cases the daemon's fd count is back at $base_fds (got $nfds)" \
                "$([ "$nfds" = "$base_fds" ]; echo $?)" "$(ls -l /proc/"$daemon_pid"/fd)"
}

# run_prog ARGS...: the C cases; its "not ok" lines count by themselves,
# a crash or a usage error is one more failure
run_prog() {
        "$prog" "$@"
        local rc=$?
        case $rc in
        0) ;;
        1) bb_failed=1 ;;
        *) not_ok "guest-v4l2 $* ended with status $rc (crashed or could not run)" ;;
        esac
}

# ---------------------------------------------------------------- run ---
SECONDS=0
# (start/stop_daemon change this shell's state: not through check's subshell)
if start_daemon; then ok "bufbrokerd starts on the private bus"; else not_ok "bufbrokerd starts on the private bus"; finish; fi

phase "single-planar, vmalloc" n_devs=2 multiplanar=1,1 allocators=0,0 && {
        run_prog sp vmalloc
        cli_cases
        # last in this phase: vivid's instance A is back only if every file
        # of it was closed
        run_prog disconnect
}
phase "single-planar, dma-contig" n_devs=2 multiplanar=1,1 allocators=1,1 && run_prog sp dma-contig
phase "multi-planar, vmalloc" n_devs=2 multiplanar=2,2 allocators=0,0 && run_prog mp vmalloc
phase "multi-planar, dma-contig" n_devs=2 multiplanar=2,2 allocators=1,1 && run_prog mp dma-contig

stop_daemon
check "bufbrokerd exits 0 on SIGTERM" test $? = 0

phase "quotas, single-planar" n_devs=2 && {
        limits=(--max-buffers-per-uid=4 --max-bytes-per-uid=2097152 --max-buffer-size=716800)
        if start_daemon "${limits[@]}"; then
                ok "bufbrokerd ${limits[*]} starts"
                run_prog quota
                stop_daemon
                check "bufbrokerd (quotas) exits 0 on SIGTERM" test $? = 0
        else
                not_ok "bufbrokerd ${limits[*]} starts"
        fi
}
echo "# guest-v4l2.sh: ${SECONDS} s in the guest"
finish
