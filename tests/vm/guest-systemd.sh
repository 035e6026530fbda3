#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bufbrokerd as a real systemd service (vm suite, systemd mode; issue 4).
# One boot: installs the build into the guest's overlay root with
# `meson install`, creates the service user with systemd-sysusers, reloads
# systemd and the bus, then checks, in this order (each step relies on the
# state the previous ones left):
#   install layout, systemd-analyze verify, exposure <= 2.0, the sandbox
#   (sandbox-probe as the unit's ExecStart: every system call the posix,
#   sysv and file kinds need; /dev/shm and SysV IPC the host's), bus
#   activation by an unprivileged call (timed), systemctl status, the bus
#   policy (name ownership, no fds), huge pages and prefault, each kind
#   (memfd, posix, sysv, file) as an unprivileged caller and posix, sysv and
#   file buffers across a SIGKILL and Restart=on-failure, a restart that
#   keeps buffers/holds/tokens, a lost
#   bus connection (the daemon exits with a failure; systemd restarts it and
#   nothing is lost), the watchdog restarting a SIGSTOPped daemon, idle exit
#   and re-activation.
# Measured numbers go into the "ok" lines; artifacts (meson install's output,
# the full `systemd-analyze security` table) into $BB_VM_OUT. Afterwards the
# installation stays (the overlay root dies with the VM), the test drop-ins
# go and the service is stopped, so later guest tests start from a clean
# state. Helpers: systemd-probe, sandbox-probe (built from their .c files).
. "$(dirname "$0")/guest-lib.sh"
[ "${BB_VM_MODE:-}" = systemd ] || skip_all "needs systemd as PID 1"

BUILD=${BB_BUILD_DIR:?}
OUT=${BB_VM_OUT:?}
PROBE=$BUILD/tests/vm/systemd-probe
SANDBOX_PROBE=$BUILD/tests/vm/sandbox-probe
UNIT=bufbrokerd.service
BUS_NAME=org.bufbroker.Broker1
OBJ=/org/bufbroker/Broker1
DROPIN=/run/systemd/system/$UNIT.d
MAX_EXPOSURE=2.0
W=$(mktemp -d /tmp/bb-systemd.XXXXXX)
chmod 0777 "$W"         # the unprivileged clients write their ids here

# Later guest tests of this boot get the installation, but not the test
# drop-ins nor a running service.
bg_pids=()
cleanup() {
        local p
        for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
        rm -rf "$W" "$DROPIN"
        systemctl stop "$UNIT" 2>/dev/null
        systemctl daemon-reload
        umount /var/lib/bufbroker 2>/dev/null
}
trap cleanup EXIT

# A failed step that later steps cannot do without: report and stop.
bail() {
        not_ok "$*"
        echo "# bailing out: the remaining steps need this one"
        journalctl -b -u "$UNIT" --no-pager -n 40 2>&1 | sed 's/^/# journal: /'
        exit 1
}

comment() { sed 's/^/# /'; }
T0=$(date +%s)
section() { echo "# --- $* (t+$(($(date +%s) - T0)) s)"; }
now_ms() { date +%s%3N; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
as_uid() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups -- "$@"; }
main_pid() { systemctl show -P MainPID "$UNIT"; }
# The buffer ids the broker lists to root (it sees all), as "1 2 3".
list_ids() { "$CTL" list --no-legend | awk '{ print $1 }' | sort -n | tr '\n' ' ' | sed 's/ $//'; }
# The listing without the CREATED column's time of day split: whole rows.
list_rows() { "$CTL" list --no-legend; }
listed() { local id ids; ids=" $(list_ids) "; for id in "$@"; do [[ $ids == *" $id "* ]] || return 1; done; return 0; }
gone() { local id ids; ids=" $(list_ids) "; for id in "$@"; do [[ $ids == *" $id "* ]] && return 1; done; return 0; }

# wait_until TIMEOUT_S CMD...: poll every 0.2 s; 0 when CMD succeeded in time
wait_until() {
        local deadline=$(($(date +%s) + $1))
        shift
        until "$@" >/dev/null 2>&1; do
                [ "$(date +%s)" -lt $deadline ] || return 1
                sleep 0.2
        done
}
is_state() { [ "$(systemctl is-active "$UNIT")" = "$1" ]; }

# busctl CreateMemfd as uid 65534; prints the buffer id, or fails
create_by_busctl() {
        local name=$1 persistent=$2 out
        out=$(as_nobody busctl --timeout=90 call "$BUS_NAME" "$OBJ" "$BUS_NAME" CreateMemfd 'sta{sv}' \
                "$name" 4096 1 persistent b "$persistent" 2>&1) || { echo "$out" | comment >&2; return 1; }
        # oht "/org/bufbroker/Broker1/buffer/7" 4 4096
        [[ $out =~ ^oht\ \"$OBJ/buffer/([0-9]+)\"\ [0-9]+\ 4096$ ]] || { echo "# reply: $out" >&2; return 1; }
        echo "${BASH_REMATCH[1]}"
}

# ------------------------------------------------------------- install ---
section install
if ! meson install -C "$BUILD" --no-rebuild >"$OUT/systemd-install.log" 2>&1; then
        tail -20 "$OUT/systemd-install.log" | comment
        bail "meson install into the guest root"
fi
mapfile -t installed < <(grep -v '^#' "$BUILD/meson-logs/install-log.txt")
find_installed() {
        local f
        for f in "${installed[@]}"; do
                [[ $f =~ $1 ]] && { echo "$f"; return 0; }
        done
        return 1
}
SYSTEM_UNIT=$(find_installed '/systemd/system/bufbrokerd\.service$')
USER_UNIT=$(find_installed '/systemd/user/bufbrokerd\.service$')
SYSUSERS=$(find_installed '/sysusers\.d/bufbroker\.conf$')
POLICY=$(find_installed '/dbus-1/system\.d/org\.bufbroker\.Broker1\.conf$')
SYSTEM_ACT=$(find_installed '/dbus-1/system-services/org\.bufbroker\.Broker1\.service$')
SESSION_ACT=$(find_installed '/dbus-1/services/org\.bufbroker\.Broker1\.service$')
DAEMON=$(find_installed '/bufbrokerd$')
CTL=$(find_installed '/bin/bufbrokerctl$')
LIB=$(find_installed '/libbufbroker\.so\.[0-9]+$')
for v in SYSTEM_UNIT USER_UNIT SYSUSERS POLICY SYSTEM_ACT SESSION_ACT DAEMON CTL LIB; do
        printf '# installed %-12s %s\n' "$v" "${!v:-MISSING}"
done
for v in SYSTEM_UNIT USER_UNIT SYSUSERS POLICY SYSTEM_ACT SESSION_ACT DAEMON CTL LIB; do
        [ -n "${!v}" ] || bail "meson install installs units, activation files, policy, sysusers file, daemon and CLI"
done
ok "meson install put units, activation files, policy, sysusers file, daemon and CLI in place (${#installed[@]} files)"
check "the installed policy is the project's policy file" cmp "$POLICY" "$BB_SOURCE_DIR/systemd/org.bufbroker.Broker1.conf"
check "the system activation file hands activation to $UNIT" grep -qx "SystemdService=$UNIT" "$SYSTEM_ACT"
check "the installed unit runs the installed daemon ($DAEMON)" grep -qx "ExecStart=$DAEMON --system .*" "$SYSTEM_UNIT"
check "the session activation file runs the installed daemon" grep -qx "Exec=$DAEMON --user .*" "$SESSION_ACT"
# The installed CLI with the installed library: through LD_LIBRARY_PATH,
# because ldconfig rescans every library over 9p (15-20 s under TCG).
export LD_LIBRARY_PATH=${LIB%/*}
check "the installed bufbrokerctl runs with the installed libbufbroker" \
        sh -c "ldd '$CTL' | grep -q ' => ${LIB%.so.*}.so' && '$CTL' --version"

section sysusers and reloads
systemd-sysusers "$SYSUSERS" 2>&1 | comment
check "systemd-sysusers created the service user 'bufbroker'" getent passwd bufbroker
check "user bufbroker is in group video ($(id -nG bufbroker 2>/dev/null))" \
        sh -c 'id -nG bufbroker | tr " " "\n" | grep -qx video'

systemctl daemon-reload || bail "systemctl daemon-reload"
busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig ||
        bail "the bus reloads its configuration"
echo "# system bus: $(systemctl show -P Id dbus.service) $(systemctl show -P ExecStart dbus.service | grep -o 'path=[^ ;]*' | head -1)"
fragment=$(systemctl show -P FragmentPath "$UNIT")
check "systemd loads the installed unit (FragmentPath $fragment)" \
        test "$(readlink -f "$fragment")" = "$(readlink -f "$SYSTEM_UNIT")"
check "the bus lists $BUS_NAME as activatable" \
        sh -c "busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ListActivatableNames | grep -q '\"$BUS_NAME\"'"

# ------------------------------------------------------ analyze verify ---
section systemd-analyze
# The Documentation= man pages are looked up too when the build installed
# them (once: the user unit names a subset of the system unit's pages, and
# each lookup costs seconds under TCG).
man_opt=--man=yes man_note="man pages found"
find_installed '/man8/bufbrokerd\.8$' >/dev/null || { man_opt=--man=no man_note="man pages not built"; }
for u in "$SYSTEM_UNIT" "$USER_UNIT"; do
        mode=() env=()
        if [ "$u" = "$USER_UNIT" ]; then
                mkdir -p "$W/runtime" && chmod 0700 "$W/runtime"
                mode=(--user) env=(env XDG_RUNTIME_DIR="$W/runtime")
                [ $man_opt = --man=no ] || man_opt=--man=no man_note="man pages checked above"
        fi
        err=$("${env[@]}" systemd-analyze "${mode[@]}" verify "$man_opt" "$u" 2>&1 >/dev/null)
        rc=$?
        [ -z "$err" ] || echo "$err" | comment
        if [ $rc = 0 ] && [ -z "$err" ]; then
                ok "systemd-analyze ${mode[*]:+${mode[*]} }verify $u: clean ($man_note)"
        else
                not_ok "systemd-analyze ${mode[*]:+${mode[*]} }verify $u (exit $rc, stderr above)"
        fi
done

# -------------------------------------------------------------- exposure ---
sec=$(systemd-analyze security --offline=true "$SYSTEM_UNIT" 2>&1)
echo "$sec" >"$OUT/systemd-security.txt"
score=$(echo "$sec" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -n "$score" ] && awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
        ok "systemd-analyze security --offline=true: exposure $score (limit $MAX_EXPOSURE)"
else
        echo "$sec" | grep '✗' | comment
        not_ok "systemd-analyze security --offline=true: exposure '${score:-unparsed}' above $MAX_EXPOSURE"
fi

# ------------------------------------------------ the sandbox and IPC ---
section sandbox and IPC
# Clients attach the daemon's posix and sysv objects by name and id: those
# must live in the host's /dev/shm and IPC namespace, and survive restarts
# (see the unit's comments for what PrivateIPC= and RemoveIPC= would do).
check "the unit has no PrivateIPC= (sysv segments in the host's IPC namespace)" \
        test "$(systemctl show -P PrivateIPC "$UNIT")" = no
check "the unit has no RemoveIPC= (systemd would remove posix names and sysv segments at every restart)" \
        test "$(systemctl show -P RemoveIPC "$UNIT")" = no
# File buffers are O_TMPFILE files in the state directory. The guest's root
# is an overlayfs, which refuses O_TMPFILE (EOPNOTSUPP) on Debian's 6.1
# kernel: a tmpfs of its own (ext4, xfs, btrfs, tmpfs take it), also a
# known size for the space checks of the file kind.
STATE=/var/lib/bufbroker
if ! mkdir -p "$STATE" || ! mount -t tmpfs -o mode=0700,size=64m bb-state "$STATE"; then
        not_ok "mount a tmpfs on $STATE for file buffers"
fi
# The probe, as the unit's ExecStart (a drop-in): the very User=, filter
# and namespaces of the service make one object of each kind as the daemon
# does; then other users try them from outside. It runs from the daemon's
# directory: the build dir may be under /tmp, which PrivateTmp= hides.
SANDBOX_EXEC=${DAEMON%/*}/bufbroker-vm-sandbox-probe
install -m 0755 "$SANDBOX_PROBE" "$SANDBOX_EXEC"
mkdir -p "$DROPIN"
printf '[Service]\nType=exec\nWatchdogSec=0\nStateDirectory=bufbroker\nExecStart=\nExecStart=%s sandbox 65534\nStandardOutput=truncate:%s\n' \
        "$SANDBOX_EXEC" "$W/sandbox.out" >"$DROPIN/50-vm-test-sandbox.conf"
systemctl daemon-reload
if systemctl start "$UNIT" && wait_until 30 grep -q '^ready$' "$W/sandbox.out"; then
        grep '^fail ' "$W/sandbox.out" | comment
        check "the service user makes each kind's object in the unit's sandbox ($(grep -c '^ok ' "$W/sandbox.out") system calls, every one allowed)" \
                grep -qx 'failures 0' "$W/sandbox.out"
        inside=$(awk '$1 == "devshm" { print $2, $3 }' "$W/sandbox.out")
        outside=$("$SANDBOX_PROBE" stat-devshm | awk '{ print $2, $3 }')
        check "the service's /dev/shm is the host's, writable ($inside; host: $outside)" \
                test "$inside" = "$outside" -a "${inside#* }" = rw
        name=$(awk '$1 == "shm-name" { print $2 }' "$W/sandbox.out")
        sid=$(awk '$1 == "shmid" { print $2 }' "$W/sandbox.out")
        check "its posix object $name is in the host's /dev/shm, for uid 65534 by its ACL" \
                sh -c "as() { setpriv --reuid=\$1 --regid=\$1 --clear-groups -- head -c 22 /dev/shm$name; };
                       test \"\$(as 65534)\" = 'posix from the service'"
        check "uid 65533 cannot open it (mode 0600, no ACL entry)" \
                sh -c "! setpriv --reuid=65533 --regid=65533 --clear-groups -- head -c 1 /dev/shm$name"
        check "its SysV segment $sid is in the host's IPC namespace, uid 65534 attaches it" \
                sh -c "setpriv --reuid=65534 --regid=65534 --clear-groups -- $PROBE dump sysv $sid | head -c 21 | grep -qx 'sysv from the service'"
        check "uid 65533 cannot attach it" \
                sh -c "! setpriv --reuid=65533 --regid=65533 --clear-groups -- $PROBE dump sysv $sid >/dev/null"
else
        comment <"$W/sandbox.out"
        not_ok "the sandbox probe runs as the unit's ExecStart"
fi
systemctl stop "$UNIT"
rm -f "$DROPIN/50-vm-test-sandbox.conf" "$SANDBOX_EXEC"
systemctl daemon-reload

# ----------------------------------------------------------- activation ---
section activation
systemctl stop "$UNIT" 2>/dev/null
check "bufbrokerd is not running before the first call" is_state inactive
t0=$(now_ms)
A=$(create_by_busctl activation true)
t1=$(now_ms)
if [ -n "$A" ]; then
        create_by_busctl baseline false >/dev/null
        t2=$(now_ms)
        ok "uid 65534's busctl CreateMemfd(persistent) activated bufbrokerd and got buffer $A:" \
           "activation to first reply $((t1 - t0)) ms (the same call to the running daemon: $((t2 - t1)) ms)"
else
        bail "uid 65534's busctl CreateMemfd activates bufbrokerd and gets a buffer"
fi
wait_until 10 sh -c "systemctl show -P StatusText $UNIT | grep -q buffers"
status=$(systemctl status --no-pager "$UNIT" 2>&1)
echo "$status" | head -8 | comment
check "systemctl status: active (running)" grep -q 'Active: active (running)' <<<"$status"
check "systemctl status: the daemon's STATUS line ($(systemctl show -P StatusText "$UNIT"))" \
        grep -Eq 'Status: "[0-9]+ buffers .*clients' <<<"$status"
pid=$(main_pid)
check "the daemon runs as user bufbroker ($(ps -o user= -p "$pid" 2>/dev/null))" \
        test "$(ps -o user= -p "$pid" 2>/dev/null)" = bufbroker
video_gid=$(getent group video | cut -d: -f3)
check "the daemon has the supplementary group video ($video_gid)" \
        sh -c "grep '^Groups:' /proc/$pid/status | tr -s ' \t' '\n' | grep -qx '$video_gid'"

# --------------------------------------------------------------- policy ---
section bus policy
out=$(as_nobody "$PROBE" request-name "$BUS_NAME" 2>&1)
echo "# uid 65534 RequestName: $out"
check "uid 65534 cannot own $BUS_NAME (AccessDenied)" \
        grep -q '^error org\.freedesktop\.DBus\.Error\.AccessDenied' <<<"$out"
out=$(setpriv --reuid=bufbroker --regid=bufbroker --clear-groups -- "$PROBE" request-name "$BUS_NAME" 2>&1)
echo "# user bufbroker RequestName: $out"
check "the service user may own it (control: EXISTS, not AccessDenied)" test "$out" = "reply 3"
check "$BUS_NAME still has its owner" busctl status "$BUS_NAME" --no-pager
out=$(as_nobody "$PROBE" call --fd "$BUS_NAME" "$OBJ" "$BUS_NAME" ListBuffers 2>&1)
echo "# uid 65534 ListBuffers with an fd: $out"
check "uid 65534 cannot send the daemon an fd (AccessDenied)" \
        grep -q '^error org\.freedesktop\.DBus\.Error\.AccessDenied' <<<"$out"
out=$("$PROBE" call --fd "$BUS_NAME" "$OBJ" "$BUS_NAME" ListBuffers 2>&1)
echo "# root ListBuffers with an fd: $out"
check "root cannot send the daemon an fd either (AccessDenied)" \
        grep -q '^error org\.freedesktop\.DBus\.Error\.AccessDenied' <<<"$out"
out=$(as_nobody "$PROBE" call "$BUS_NAME" "$OBJ" "$BUS_NAME" ListBuffers 2>&1)
echo "# uid 65534 ListBuffers without an fd: $out"
check "the same call without the fd is answered (control)" grep -q '^reply a' <<<"$out"

# ------------------------------------------------ huge pages, prefault ---
section huge pages and prefault
# The guest's own pool: the host's is not touched.
if [ -w /proc/sys/vm/nr_hugepages ] && grep -q '^Hugepagesize:' /proc/meminfo; then
        huge=$(($(awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo) * 1024))
        echo 1 >/proc/sys/vm/nr_hugepages
        HB=$(as_nobody "$CTL" create --size 1 --hugetlb --prefault --persistent 2>/dev/null)
        if [ -n "$HB" ]; then
                info=$(as_nobody "$CTL" info "$HB" 2>&1)
                echo "$info" | comment
                check "uid 65534 got a buffer of huge pages from the hardened service: PageSize $huge" \
                        grep -qx "PageSize:   $huge" <<<"$info"
                check "its size is one huge page" grep -q "^Size:       $huge " <<<"$info"
                check "and it is prefaulted" grep -qx 'Prefaulted: yes' <<<"$info"
                check "its huge page is taken from the pool (HugePages_Free 0)" \
                        grep -Eq '^HugePages_Free: +0$' /proc/meminfo
                out=$(as_nobody "$CTL" create --size 1 --hugetlb --persistent 2>&1) && HB2=$out
                echo "# with the pool empty: $out"
                check "with the pool empty: refused, naming the huge pages" grep -q 'huge pages' <<<"$out"
                [ -z "${HB2:-}" ] || as_nobody "$CTL" release "$HB2"
                check "uid 65534 releases it" as_nobody "$CTL" release "$HB"
                check "the huge page goes back to the pool" \
                        wait_until 10 grep -Eq '^HugePages_Free: +1$' /proc/meminfo
        else
                not_ok "uid 65534 creates a buffer of huge pages (bufbrokerctl create --hugetlb --prefault)"
        fi
        echo 0 >/proc/sys/vm/nr_hugepages
else
        skip "buffers of huge pages" "the guest kernel has no huge pages"
fi
PB=$(as_nobody "$CTL" create --size 1M --prefault --persistent 2>/dev/null)
if [ -n "$PB" ]; then
        info=$(as_nobody "$CTL" info "$PB" 2>&1)
        check "uid 65534 got a prefaulted memfd (Prefaulted: yes)" grep -qx 'Prefaulted: yes' <<<"$info"
        check "of the system's page size" grep -qx "PageSize:   $(getconf PAGESIZE)" <<<"$info"
        check "uid 65534 releases it" as_nobody "$CTL" release "$PB"
else
        not_ok "uid 65534 creates a prefaulted memfd (bufbrokerctl create --prefault)"
fi

# ---------------------------------------------------- the kinds of buffers ---
section kinds
# Each kind from the hardened, bus-activated service as uid 65534: Create
# by busctl, contents written by one process and read by another through
# the native handle (posix name, sysv id) and through a descriptor
# (Buffer1.OpenFds), another uid refused, Release, the kernel object gone.
KIND_SIZE=$((4 * 1024 * 1024))
# busctl Create as uid 65534, prefaulted (the file kind's space shows at
# once); prints "ID HANDLE" (HANDLE: shm name, shmid, or -)
create_kind() {
        local out id handle=-
        out=$(as_nobody busctl --timeout=90 call "$BUS_NAME" "$OBJ" "$BUS_NAME" Create 'ssta{sv}' \
                "$1" "vm-kind-$1-$$" "$KIND_SIZE" 2 persistent b true prefault b true 2>&1) ||
                { echo "$out" >"$W/create.err"; return 1; }
        [[ $out =~ ^oaha\{sv\}\ \"$OBJ/buffer/([0-9]+)\" ]] || { echo "reply: $out" >"$W/create.err"; return 1; }
        id=${BASH_REMATCH[1]}
        [[ $out =~ \"shm-name\"\ s\ \"([^\"]+)\" ]] && handle=${BASH_REMATCH[1]}
        [[ $out =~ \"shmid\"\ i\ ([0-9]+) ]] && handle=${BASH_REMATCH[1]}
        echo "$id $handle"
}
release_kind() {
        as_nobody busctl call "$BUS_NAME" "$OBJ/buffer/$1" org.bufbroker.Buffer1 Release
}
# dump_matches USER HOW HANDLE SEED: USER's process reads the buffer
# through HOW (posix, sysv, fd) and finds the pattern of SEED
dump_matches() {
        local got want
        got=$(as_uid "$1" "$PROBE" dump "$2" "$3" | head -c "$KIND_SIZE" | sha256sum) || return 1
        want=$("$PROBE" pattern "$KIND_SIZE" "$4" | sha256sum)
        [ "$got" = "$want" ]
}
# Descriptors of the file DEV:INO ($1) in the daemon and in PID 1's fd
# store (by inode: a link's text depends on the daemon's mount namespace)
fds_of() {
        stat -L -c '%d:%i' /proc/"$(main_pid)"/fd/* /proc/1/fd/* 2>/dev/null | grep -c -x "$1"
}
segment_exists() { awk -v id="$1" 'NR > 1 && $2 == id { f = 1 } END { exit !f }' /proc/sysvipc/shm; }
segment_field() { awk -v id="$1" -v col="$2" 'NR > 1 && $2 == id { print $col }' /proc/sysvipc/shm; }
state_used() { df --output=used -B1 "$STATE" | tail -1 | tr -d ' '; }
KINDS_AVAILABLE=yes
if ! busctl introspect "$BUS_NAME" "$OBJ" "$BUS_NAME" 2>/dev/null | grep -q '^\.Create '; then
        KINDS_AVAILABLE=no
        skip "the kinds of buffers" "this daemon has no Create method (the kinds are not built in)"
fi
for kind in memfd posix sysv file; do
        [ $KINDS_AVAILABLE = yes ] || break
        used_before=$(state_used)
        if ! read -r id handle < <(create_kind $kind); then
                comment <"$W/create.err"
                not_ok "uid 65534 creates a $kind buffer with busctl Create ($(head -c 200 "$W/create.err"))"
                continue
        fi
        seed="$kind buffer $id"
        inode=""
        [ $kind = sysv ] || inode=$(as_nobody "$PROBE" inode "$id") || not_ok "$kind $id: OpenFds for its inode"
        case $kind in
        memfd)
                ok "uid 65534 created memfd buffer $id with busctl Create" ;;
        posix)
                check "uid 65534 created posix buffer $id with busctl Create: $handle, the daemon's, nothing for others, an ACL entry for uid 65534 only" \
                        sh -c "stat -c '%U %A' /dev/shm$handle | grep -q '^bufbroker .......---$' &&
                               getfacl -cn /dev/shm$handle | grep -q '^user:65534:rw-' &&
                               ! getfacl -cn /dev/shm$handle | grep '^user:[0-9]' | grep -qv '^user:65534:'" ;;
        sysv)
                check "uid 65534 created sysv buffer $id with busctl Create: shmid $handle, uid 65534, made by bufbroker, mode 600" \
                        test "$(segment_field "$handle" 8) $(segment_field "$handle" 10) $(segment_field "$handle" 3)" = \
                             "65534 $(id -u bufbroker) 600" ;;
        file)
                check "uid 65534 created file buffer $id with busctl Create: $((KIND_SIZE >> 20)) MiB more in use in $STATE (prefault)" \
                        test $(($(state_used) - used_before)) -ge $KIND_SIZE ;;
        esac
        alloc=$(busctl get-property "$BUS_NAME" "$OBJ/buffer/$id" org.bufbroker.Buffer1 AllocatedBytes | cut -d' ' -f2)
        check "$kind $id: AllocatedBytes $alloc, all of it (prefault; sysv: resident, though ProcSubset=pid hides /proc/sysvipc)" \
                test "${alloc:-0}" -ge $KIND_SIZE
        case $kind in
        posix|sysv)
                check "$kind $id: written through its native handle by one process of uid 65534" \
                        as_nobody "$PROBE" fill $kind "$handle" "$KIND_SIZE" "$seed"
                check "$kind $id: read back by another through the native handle: contents match" \
                        dump_matches 65534 $kind "$handle" "$seed"
                check "$kind $id: uid 65533 cannot attach it by its handle" \
                        sh -c "! setpriv --reuid=65533 --regid=65533 --clear-groups -- $PROBE dump $kind '$handle' >/dev/null" ;;
        *)
                check "$kind $id: written through a descriptor (OpenFds) by one process of uid 65534" \
                        as_nobody "$PROBE" fill fd "$id" "$KIND_SIZE" "$seed" ;;
        esac
        if [ $kind = sysv ]; then
                as_nobody "$PROBE" dump fd "$id" >/dev/null 2>&1
                check "sysv $id: OpenFds gives no descriptor (a segment has none)" test $? = 3
        else
                check "$kind $id: read back by another process through a descriptor (OpenFds): contents match" \
                        dump_matches 65534 fd "$id" "$seed"
        fi
        check "$kind $id: uid 65533 gets no descriptor of it" \
                sh -c "! setpriv --reuid=65533 --regid=65533 --clear-groups -- $PROBE dump fd $id >/dev/null"
        # (the control for "no descriptor of it" below: the pattern finds it)
        [ -z "$inode" ] || check "$kind $id: while it lives, the daemon and the fd store have $(fds_of "$inode") descriptors of it" \
                test "$(fds_of "$inode")" -gt 0
        check "$kind $id: uid 65534 releases it" release_kind "$id"
        check "$kind $id: it is no longer listed" wait_until 10 gone "$id"
        case $kind in
        posix) check "posix $id: $handle is unlinked from /dev/shm" wait_until 10 test ! -e "/dev/shm$handle" ;;
        sysv) check "sysv $id: segment $handle is removed" wait_until 10 sh -c "! awk -v id=$handle 'NR > 1 && \$2 == id { f = 1 } END { exit !f }' /proc/sysvipc/shm" ;;
        file) check "file $id: its space in $STATE is freed ($(state_used) bytes in use, $used_before before)" \
                wait_until 10 sh -c "test \$(df --output=used -B1 $STATE | tail -1) -le $used_before" ;;
        esac
        [ -z "$inode" ] || check "$kind $id: neither the daemon nor PID 1's fd store has a descriptor of it" \
                wait_until 10 sh -c "! stat -L -c '%d:%i' /proc/$(main_pid)/fd/* /proc/1/fd/* 2>/dev/null | grep -qx '$inode'"
done

# ------------------------------------------- the kinds across a restart ---
section kinds across a restart
# The daemon killed (SIGKILL), Restart=on-failure with the fd store: posix,
# sysv and file buffers come back with their handles and contents; their
# Release afterwards removes the objects.
if [ $KINDS_AVAILABLE = yes ]; then
        declare -A rid rhandle
        for kind in posix sysv file; do
                if read -r rid[$kind] rhandle[$kind] < <(create_kind $kind); then
                        how=fd handle=${rid[$kind]}
                        [ $kind = file ] || how=$kind handle=${rhandle[$kind]}
                        as_nobody "$PROBE" fill $how "$handle" "$KIND_SIZE" "kept $kind ${rid[$kind]}" ||
                                not_ok "fill the $kind buffer ${rid[$kind]} before the restart"
                else
                        comment <"$W/create.err"
                        not_ok "create a $kind buffer to keep across the restart"
                        unset "rid[$kind]"
                fi
        done
        used_kept=$(state_used)
        pid_before=$(main_pid)
        restarts_before=$(systemctl show -P NRestarts "$UNIT")
        kill -9 "$pid_before"
        restarted() { p=$(main_pid); [ "$p" != 0 ] && [ "$p" != "$pid_before" ] && is_state active; }
        check "the SIGKILLed daemon is restarted by Restart=on-failure (pid $pid_before -> a new one)" \
                wait_until 60 restarted
        check "NRestarts went up by one ($restarts_before -> $(systemctl show -P NRestarts "$UNIT"))" \
                test "$(systemctl show -P NRestarts "$UNIT")" = $((restarts_before + 1))
        journalctl -b -u "$UNIT" -o cat --no-pager | grep 'restored' | tail -1 | comment
        for kind in posix sysv file; do
                [ -n "${rid[$kind]:-}" ] || continue
                id=${rid[$kind]} handle=${rhandle[$kind]} seed="kept $kind ${rid[$kind]}"
                check "$kind buffer $id is listed after the restart" listed "$id"
                case $kind in
                posix)
                        check "posix $id: ShmName still $handle" \
                                test "$(busctl get-property "$BUS_NAME" "$OBJ/buffer/$id" org.bufbroker.Buffer1 ShmName)" = "s \"$handle\""
                        check "posix $id: contents by name match" dump_matches 65534 posix "$handle" "$seed"
                        check "posix $id: contents by descriptor match" dump_matches 65534 fd "$id" "$seed" ;;
                sysv)
                        check "sysv $id: ShmId still $handle" \
                                test "$(busctl get-property "$BUS_NAME" "$OBJ/buffer/$id" org.bufbroker.Buffer1 ShmId)" = "i $handle"
                        check "sysv $id: contents by shmat match" dump_matches 65534 sysv "$handle" "$seed" ;;
                file)
                        check "file $id: its space is still in use in $STATE" \
                                sh -c "test \$(df --output=used -B1 $STATE | tail -1) -ge $KIND_SIZE"
                        check "file $id: contents by descriptor match" dump_matches 65534 fd "$id" "$seed" ;;
                esac
                check "$kind $id: uid 65534 releases it after the restart" release_kind "$id"
                check "$kind $id: gone from the listing" wait_until 10 gone "$id"
                case $kind in
                posix) check "posix $id: $handle is unlinked" wait_until 10 test ! -e "/dev/shm$handle" ;;
                sysv) check "sysv $id: segment $handle is removed" wait_until 10 sh -c "! awk -v id=$handle 'NR > 1 && \$2 == id { f = 1 } END { exit !f }' /proc/sysvipc/shm" ;;
                file) check "file $id: its space is freed (no descriptor left in the daemon nor the fd store)" \
                        wait_until 10 sh -c "test \$(df --output=used -B1 $STATE | tail -1) -le $((used_kept - KIND_SIZE))" ;;
                esac
        done
fi

# -------------------------------------------- restart, keeping buffers ---
section restart
# A persistent buffer with known contents and a token, owned by uid 65534.
P=$(as_nobody "$CTL" create --size 8192 --name kept-across-restart --persistent) || bail "create a persistent buffer"
for i in $(seq 1 100); do printf 'bufbroker line %03d survives restarts\n' "$i"; done >"$W/content"
as_nobody "$CTL" write "$P" <"$W/content" || bail "write the persistent buffer"
want=$({ cat "$W/content"; head -c $((8192 - $(stat -c %s "$W/content"))) /dev/zero; } | sha256sum | cut -d' ' -f1)
T=$(as_nobody "$CTL" share "$P") || bail "share the persistent buffer"
check "buffer $P holds the known contents before the restart" \
        test "$(as_nobody "$CTL" cat "$P" | sha256sum | cut -d' ' -f1)" = "$want"

# Two running clients holding (non-persistent) buffers: a library program,
# and bufbrokerctl exec running a command.
# (setpriv, not the as_nobody function: $! must be the client itself, not a
# subshell running it)
setpriv --reuid=65534 --regid=65534 --clear-groups -- "$PROBE" hold 2 >"$W/hold.out" 2>&1 &
hold_pid=$!
bg_pids+=("$hold_pid")
# shellcheck disable=SC2016 # $BUFBROKER_ID and $$ are the command's
setpriv --reuid=65534 --regid=65534 --clear-groups -- "$CTL" exec --size 4096 --name exec-held -- \
        sh -c 'echo "$BUFBROKER_ID $$" >'"$W"'/exec.id.tmp && mv '"$W"'/exec.id.tmp '"$W"'/exec.id && exec sleep 600' &
exec_pid=$!
bg_pids+=("$exec_pid")
wait_until 60 grep -q '^ready$' "$W/hold.out" || { comment <"$W/hold.out"; bail "the library client holds 2 buffers"; }
wait_until 60 test -s "$W/exec.id" || bail "bufbrokerctl exec holds a buffer"
H=$(awk '$1 == "held" { print $2 }' "$W/hold.out" | tr '\n' ' ' | sed 's/ $//')
read -r E exec_cmd_pid <"$W/exec.id"
bg_pids+=("$exec_cmd_pid")
echo "# persistent $P (token ${T:0:8}...), activation buffer $A, library client holds $H, exec client holds $E"

ids_before=$(list_ids)
rows_before=$(list_rows)
n_before=$(wc -w <<<"$ids_before")
echo "# buffers before the restart ($n_before):"
"$CTL" list | comment
pid_before=$(main_pid)
t0=$(now_ms)
systemctl restart "$UNIT" || bail "systemctl restart $UNIT"
t1=$(now_ms)
pid_after=$(main_pid)
ids_after=$(list_ids)
rows_after=$(list_rows)
n_after=$(wc -w <<<"$ids_after")
echo "# buffers after the restart ($n_after):"
"$CTL" list | comment
journalctl -b -u "$UNIT" -o cat --no-pager | grep 'restored' | tail -1 | comment
check "systemctl restart started a new daemon (pid $pid_before -> $pid_after, $((t1 - t0)) ms)" \
        test "$pid_after" != "$pid_before" -a "$pid_after" != 0
if [ -n "$ids_before" ] && [ "$ids_before" = "$ids_after" ]; then
        ok "restart kept every buffer: $n_before before ($ids_before), $n_after after ($ids_after)"
else
        not_ok "restart kept every buffer: $n_before before ($ids_before), $n_after after ($ids_after)"
fi
check "the listing (owner, size, holders, persistence, name) is unchanged" test "$rows_before" = "$rows_after"
check "the persistent buffer's contents are intact (sha256 ${want:0:12}...)" \
        test "$(as_nobody "$CTL" cat "$P" | sha256sum | cut -d' ' -f1)" = "$want"
check "the token made before the restart still opens it (as uid 65533)" \
        test "$(as_uid 65533 "$CTL" cat "$T" | sha256sum | cut -d' ' -f1)" = "$want"
check "an unknown token does not (control)" \
        sh -c "! setpriv --reuid=65533 --regid=65533 --clear-groups -- $CTL cat 0123456789abcdef0123456789abcdef >/dev/null 2>&1"

kill -USR1 "$hold_pid"
wait "$hold_pid"
rc=$?
grep -v '^held\|^ready' "$W/hold.out" | comment
check "the library client's Release of its buffers ($H) works after the restart" \
        test $rc = 0 -a "$(grep -c '^released ' "$W/hold.out")" = 2
# shellcheck disable=SC2086
check "its released buffers are gone" gone $H
if gone "$E"; then
        not_ok "the exec client's hold survived the restart: buffer $E is not listed while the client runs"
else
        kill "$exec_cmd_pid"
        wait "$exec_pid"
        check "the exec client's hold was re-tracked: its buffer $E goes when the client exits" wait_until 20 gone "$E"
fi

# ------------------------------------------------------- off the bus ---
section off the bus
# The bus connection is lost (here: gdb shuts down the daemon's socket to
# dbus-daemon, the bus itself stays up): the daemon must exit with a failure
# rather than run on without its name, systemd restarts it, and the fd
# store brings back another user's persistent buffer (contents, token) and
# the buffer a still-connected library client holds.
# The daemon's end of its bus connection: its only socket besides stdout and
# stderr (the journal). (ss cannot tell from here: with PrivateNetwork= its
# sockets live in another network namespace.)
bus_fd_of() {
        local fd found=()
        for fd in /proc/"$1"/fd/*; do
                [ "${fd##*/}" -gt 2 ] || continue
                [[ $(readlink "$fd") == socket:* ]] && found+=("${fd##*/}")
        done
        [ ${#found[@]} = 1 ] && echo "${found[0]}"
}
K=$(as_nobody "$CTL" create --size 4096 --name kept-off-the-bus --persistent) || bail "create a persistent buffer"
printf 'this outlives the bus connection\n' | as_nobody "$CTL" write "$K" || bail "write buffer $K"
kwant=$(as_nobody "$CTL" cat "$K" | sha256sum | cut -d' ' -f1)
KT=$(as_nobody "$CTL" share "$K" --read-only) || bail "share buffer $K"
setpriv --reuid=65534 --regid=65534 --clear-groups -- "$PROBE" hold 1 >"$W/hold2.out" 2>&1 &
hold2_pid=$!
bg_pids+=("$hold2_pid")
wait_until 60 grep -q '^ready$' "$W/hold2.out" || { comment <"$W/hold2.out"; bail "a library client holds a buffer"; }
KH=$(awk '$1 == "held" { print $2 }' "$W/hold2.out")
pid_before=$(main_pid)
restarts_before=$(systemctl show -P NRestarts "$UNIT")
since=$(date +%s)
busfd=$(bus_fd_of "$pid_before")
echo "# daemon pid $pid_before, its bus connection is fd ${busfd:-?}; uid 65534 keeps $K (token ${KT:0:8}...), its client holds $KH"
if [ -z "$busfd" ]; then
        ls -l /proc/"$pid_before"/fd | comment
        not_ok "find the daemon's connection to the system bus"
else
        gdb -p "$pid_before" -batch -ex "call (int) shutdown($busfd, 2)" >"$W/gdb.out" 2>&1
        restarted() { p=$(main_pid); [ "$p" != 0 ] && [ "$p" != "$pid_before" ] && is_state active; }
        if wait_until 30 restarted; then
                ok "knocked off the bus, the daemon exited and systemd restarted it (pid $pid_before -> $(main_pid))"
        else
                comment <"$W/gdb.out"
                not_ok "knocked off the bus, the daemon exits and systemd restarts it (still $(systemctl is-active "$UNIT"), pid $(main_pid))"
        fi
        check "NRestarts went up by one ($restarts_before -> $(systemctl show -P NRestarts "$UNIT"))" \
                test "$(systemctl show -P NRestarts "$UNIT")" = $((restarts_before + 1))
        check "the journal says it lost the bus connection and exited with a failure" \
                sh -c "journalctl -u $UNIT --since @$since -o cat --no-pager | grep -q 'lost the bus connection'"
        check "uid 65534's persistent buffer $K is back with its contents" \
                test "$(as_nobody "$CTL" cat "$K" | sha256sum | cut -d' ' -f1)" = "$kwant"
        check "its read-only token still opens it (as uid 65533)" \
                test "$(as_uid 65533 "$CTL" cat "$KT" | sha256sum | cut -d' ' -f1)" = "$kwant"
        check "the buffer $KH the still-connected client holds is back" listed "$KH"
fi
kill -USR1 "$hold2_pid"
wait "$hold2_pid"
check "the client's Release works after the restart" grep -q "^released $KH\$" "$W/hold2.out"
check "its buffer is gone then" gone "$KH"
as_nobody "$CTL" release "$K" || not_ok "release buffer $K"

# ------------------------------------------- V4L2 buffers across a restart ---
section v4l2 restart
# The device fd that owns the queue goes into the fd store too (FDPOLL=0):
# the buffers, their contents and the device's busy state survive.
if [ ! -c /dev/video0 ]; then
        not_ok "vivid's /dev/video0 is there for the V4L2 restart case"
elif ! V=$("$CTL" create --v4l2 /dev/video0 --format 640x480:YUYV --count 2 --persistent 2>"$W/v4l2.err"); then
        not_ok "create 2 persistent V4L2 buffers on /dev/video0: $(cat "$W/v4l2.err")"
else
        read -r -d '' V1 V2 <<<"$V"
        head -c 614400 /dev/urandom >"$W/frame"
        vwant=$(sha256sum <"$W/frame" | cut -d' ' -f1)
        "$CTL" write "$V1" <"$W/frame" || not_ok "write a frame into V4L2 buffer $V1"
        systemctl restart "$UNIT" || bail "systemctl restart $UNIT (V4L2)"
        journalctl -b -u "$UNIT" -o cat --no-pager | grep 'restored' | tail -1 | comment
        check "restart kept the V4L2 buffers $V1 $V2" listed "$V1" "$V2"
        check "buffer $V1 is still kind v4l2, 640x480:YUYV" \
                sh -c "$CTL info $V1 | grep -q v4l2 && $CTL info $V1 | grep -q '640x480:YUYV'"
        check "the frame written before the restart reads back (sha256 ${vwant:0:12}...)" \
                test "$("$CTL" cat "$V1" | sha256sum | cut -d' ' -f1)" = "$vwant"
        check "the restored queue keeps /dev/video0 busy" \
                sh -c "! $CTL create --v4l2 /dev/video0 --count 1 >/dev/null 2>&1"
        "$CTL" release "$V1" && "$CTL" release "$V2" || not_ok "release the V4L2 buffers"
        check "after the release the device is free again (the store let go of it)" \
                wait_until 10 sh -c "$CTL create --v4l2 /dev/video0 --count 1 >/dev/null 2>&1"
fi

# -------------------------------------------------------------- watchdog ---
section watchdog
# The watchdog and the idle time of the unit (30 s, 60 s) are too long for a
# test: drop-ins shorten them. (systemd follows the watchdog's SIGABRT with a
# SIGCONT, so a SIGSTOPped daemon dies at once.)
mkdir -p "$DROPIN"
printf '[Service]\nWatchdogSec=3s\n' >"$DROPIN/50-vm-test-watchdog.conf"
printf '[Service]\nExecStart=\nExecStart=%s --system --exit-idle-time=2s --fdstore-max=65536 --remove-stale-objects\n' "$DAEMON" >"$DROPIN/50-vm-test-idle.conf"
systemctl daemon-reload
ids_before=$(list_ids)
systemctl restart "$UNIT" || bail "restart with the test drop-ins"
check "the drop-ins apply (WatchdogUSec=$(systemctl show -P WatchdogUSec "$UNIT"))" \
        sh -c "systemctl show -P WatchdogUSec $UNIT | grep -qx 3s && systemctl show -P ExecStart $UNIT | grep -q 'exit-idle-time=2s'"
check "a second restart kept the buffers ($(list_ids))" test "$(list_ids)" = "$ids_before" -a -n "$ids_before"
pid_before=$(main_pid)
restarts_before=$(systemctl show -P NRestarts "$UNIT")
since=$(date +%s)
kill -STOP "$pid_before"
t0=$(now_ms)
restarted() { p=$(main_pid); [ "$p" != 0 ] && [ "$p" != "$pid_before" ] && is_state active; }
if wait_until 60 restarted; then
        t1=$(now_ms)
        ok "the watchdog caught the SIGSTOPped daemon: systemd restarted it in $((t1 - t0)) ms (pid $pid_before -> $(main_pid))"
else
        systemctl status --no-pager "$UNIT" 2>&1 | comment
        kill -CONT "$pid_before" 2>/dev/null
        not_ok "systemd restarts the SIGSTOPped daemon within 60 s"
fi
check "NRestarts went up by one ($restarts_before -> $(systemctl show -P NRestarts "$UNIT"))" \
        test "$(systemctl show -P NRestarts "$UNIT")" = $((restarts_before + 1))
check "the journal names the watchdog as the cause" \
        sh -c "journalctl -u $UNIT --since @$since -o cat --no-pager | grep -q 'Watchdog timeout'"
ids_after=$(list_ids)
check "the buffers survived the watchdog restart: before ($ids_before), after ($ids_after)" \
        test -n "$ids_before" -a "$ids_before" = "$ids_after"
check "the persistent buffer's contents too" \
        test "$(as_nobody "$CTL" cat "$P" | sha256sum | cut -d' ' -f1)" = "$want"

# ------------------------------------------------ idle exit, re-activation ---
section idle exit
check "releasing the persistent buffers $P and $A (their owner, uid 65534)" \
        sh -c "setpriv --reuid=65534 --regid=65534 --clear-groups -- $CTL release $P &&
               setpriv --reuid=65534 --regid=65534 --clear-groups -- $CTL release $A"
t0=$(now_ms)
idle=no
if wait_until 60 is_state inactive; then
        t1=$(now_ms)
        result=$(systemctl show -P Result "$UNIT")
        if [ "$result" = success ]; then
                idle=yes
                ok "bufbrokerd exited when idle (--exit-idle-time=2s): inactive $((t1 - t0)) ms after the last release, Result=$result"
                # Without RemoveIPC= it is the daemon's own work: a stop
                # with no buffers leaves no kernel object behind.
                svc_uid=$(id -u bufbroker)
                left=$(find /dev/shm -maxdepth 1 -user bufbroker -printf '%f ' 2>/dev/null)
                left+=$(awk -v u="$svc_uid" 'NR > 1 && ($8 == u || $10 == u) { printf "segment %s ", $2 }' /proc/sysvipc/shm)
                check "it left no posix object in /dev/shm and no SysV segment of its user (${left:-none})" test -z "$left"
        else
                not_ok "bufbrokerd exits cleanly when idle (Result=$result)"
        fi
else
        "$CTL" status 2>&1 | comment
        not_ok "bufbrokerd exits when idle (still $(systemctl is-active "$UNIT") after 60 s)"
fi
if [ $idle = yes ]; then
        t0=$(now_ms)
        R=$(create_by_busctl reactivated true)
        t1=$(now_ms)
        if [ -n "$R" ] && is_state active; then
                ok "the next call activated it again: buffer $R, $((t1 - t0)) ms to the reply (pid $(main_pid))"
                as_nobody "$CTL" release "$R"
        else
                not_ok "the next call activates bufbrokerd again (buffer '${R:-none}', $(systemctl is-active "$UNIT"))"
        fi
else
        not_ok "re-activation after idle exit: not tested, the daemon never went idle"
fi

# ------------------------------------------------- a stop with buffers ---
section stop with buffers
# systemctl stop drops the fd store: the buffers are gone, and the posix
# names and SysV segments the daemon kept for a restart are nobody's. The
# next start removes them (--remove-stale-objects), and only them.
if [ $KINDS_AVAILABLE = yes ]; then
        read -r sp_id sp_name < <(create_kind posix) || not_ok "create a posix buffer to leave at a stop"
        read -r ss_id ss_shmid < <(create_kind sysv) || not_ok "create a sysv buffer to leave at a stop"
        # Not the daemon's: same prefix, another owner; stays.
        foreign=/dev/shm/bufbroker-0123456789abcdef0123456789abcdef
        install -m 0600 /dev/null "$foreign"
        systemctl stop "$UNIT"
        check "the stop left $sp_name and segment $ss_shmid (kept for a restart that did not come)" \
                sh -c "test -e /dev/shm$sp_name && awk -v id=$ss_shmid 'NR > 1 && \$2 == id { f = 1 } END { exit !f }' /proc/sysvipc/shm"
        t_start=$(date '+%Y-%m-%d %H:%M:%S')
        systemctl start "$UNIT"
        check "the next start removed $sp_name" wait_until 10 test ! -e "/dev/shm$sp_name"
        check "the next start removed segment $ss_shmid" \
                wait_until 10 sh -c "! awk -v id=$ss_shmid 'NR > 1 && \$2 == id { f = 1 } END { exit !f }' /proc/sysvipc/shm"
        check "and said so in its log" \
                sh -c "journalctl -u $UNIT --since '$t_start' -o cat --no-pager | grep -q 'removed SysV segment $ss_shmid, left by an earlier run' &&
                       journalctl -u $UNIT --since '$t_start' -o cat --no-pager | grep -q 'removed $sp_name, left by an earlier run'"
        check "a name of the same form that is not the daemon's stays ($foreign, root's)" test -e "$foreign"
        rm -f "$foreign"
        systemctl stop "$UNIT"
fi

finish
