#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The shared library exports exactly the functions the public header declares,
# each with the version node the version script lists it under
# (LIBBUFBROKER_1, LIBBUFBROKER_1.1, ...), and nothing else (no sd-bus, no
# helpers). Usage: check-exports.sh NM LIBRARY HEADER VERSION-SCRIPT
set -eu
nm=$1 lib=$2 header=$3 script=$4

exported=$("$nm" -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWi]$/ { print $3 }' | sort)
# "name@@NODE" for every name the version script exports, from the script.
expected=$(awk '
        /^[A-Z][A-Z0-9_.]* *\{/ { node = $1; global = 0; next }
        /^global:/ { global = 1; next }
        /^local:/ || /^}/ { global = 0; next }
        global && /^[[:space:]]*bb_[a-z0-9_]+;/ { gsub(/[[:space:];]/, ""); print $0 "@@" node }
' "$script" | sort)
nodes=$(awk '/^[A-Z][A-Z0-9_.]* *\{/ { print $1 }' "$script")
fail=0

for sym in $exported; do
        case $sym in
        bb_*@@LIBBUFBROKER_*)
                echo "$expected" | grep -qxF "$sym" || { echo "exported under another node than the script's: $sym"; fail=1; } ;;
        *)
                # the version nodes themselves are absolute symbols
                echo "$nodes" | grep -qxF "${sym%%@@*}" || { echo "unexpected export: $sym"; fail=1; } ;;
        esac
done
for sym in $expected; do
        echo "$exported" | grep -qxF "$sym" || { echo "in the version script but not exported: $sym"; fail=1; }
done

declared=$(grep -oE '\bbb_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u)
for name in $declared; do
        echo "$expected" | grep -q "^$name@@" || { echo "declared but not exported: $name"; fail=1; }
done
for sym in $expected; do
        name=${sym%%@@*}
        echo "$declared" | grep -qxF "$name" || { echo "exported but not declared: $name"; fail=1; }
done

[ $fail -eq 0 ] && echo "$(echo "$declared" | wc -l) bb_* symbols exported, each in its node ($(echo $nodes)), nothing else"
exit $fail
