#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install what building and testing bufbroker needs on Debian 12, but only
# what is missing (so a prepared machine needs no network).
#   tests/install-deps.sh [build|test|vm]     (default: test = everything)
# test: build + what tests/run.sh needs besides (valgrind; clang and
# libFuzzer for the fuzzer, tests/fuzz/) + vm.
# vm: build + what the vm suite needs (tests/vm/: QEMU, Debian's kernel with
# vivid, a static busybox for the initramfs; xz/readelf: PVH fast path;
# setfacl for the device-access cases; gdb and ss to knock the daemon off
# the bus in the systemd test).
set -euo pipefail

build_pkgs=(gcc meson ninja-build pkg-config libsystemd-dev libv4l-dev check
            dbus-daemon dbus-broker dbus-bin systemd xsltproc docbook-xsl docbook-xml libxml2-utils libxml2-dev
            libglib2.0-dev)
test_pkgs=(valgrind util-linux procps groff-base clang libclang-rt-14-dev)
vm_pkgs=(qemu-system-x86 linux-image-amd64 busybox-static cpio kmod v4l-utils xz-utils binutils acl gdb iproute2)

pkgs=("${build_pkgs[@]}")
[ "${1:-test}" = test ] && pkgs+=("${test_pkgs[@]}" "${vm_pkgs[@]}")
[ "${1:-test}" = vm ] && pkgs+=("${vm_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
