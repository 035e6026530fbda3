#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The shared library exports exactly the functions the public header declares,
# all of them versioned LIBBUFBROKER_1, and nothing else (no sd-bus, no
# helpers). Usage: check-exports.sh NM LIBRARY HEADER
set -eu
nm=$1 lib=$2 header=$3

exported=$("$nm" -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWi]$/ { print $3 }' | sort)
fail=0

for sym in $exported; do
        case $sym in
        bb_*@@LIBBUFBROKER_1) ;;
        *) echo "unexpected export: $sym"; fail=1 ;;
        esac
done

declared=$(grep -oE '\bbb_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u)
for sym in $declared; do
        echo "$exported" | grep -qx "$sym@@LIBBUFBROKER_1" || { echo "declared but not exported: $sym"; fail=1; }
done
for sym in $exported; do
        name=${sym%%@@*}
        [ "$name" = LIBBUFBROKER_1 ] && continue
        echo "$declared" | grep -qx "$name" || { echo "exported but not declared: $name"; fail=1; }
done

[ $fail -eq 0 ] && echo "$(echo "$declared" | wc -l) bb_* symbols exported as LIBBUFBROKER_1, nothing else"
exit $fail
