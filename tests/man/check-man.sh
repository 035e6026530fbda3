#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Checks of the man pages, one group per meson test:
#   render   every page renders with xsltproc --nonet with an empty stderr, is
#            valid DocBook 4.5, and the built page formats with groff -ww
#            without a warning
#   api      org.bufbroker.Broker1(5) has an entry for every method, property
#            and signal of the contract XML and of change notification
#            (ObjectManager, PropertiesChanged), every annotation the XML
#            uses, every error name, option key and BufferReleased reason of
#            bufbroker-protocol.h, and the
#            generated introspection listings
#   library  libbufbroker(3) documents every function, macro and type of
#            bufbroker.h, and its example program compiles
#   cli      every option of 'bufbrokerd --help' is in bufbrokerd(8), every
#            command and option of 'bufbrokerctl --help' in bufbrokerctl(1),
#            and the pages document no option the programs lack
#   codegen  gdbus-codegen turns the contract into a GLib binding with a
#            GUnixFDList in and out for every method that passes fds, C names
#            cut as the member names read (create_v4l2), and DocBook that
#            documents every interface, method, signal, property and argument
# Every list is extracted from the files themselves, never written down here.
# Prints "ok - ..." or "FAIL - ..." per check and ends with "N passed, N failed".
#
# Environment (set by tests/man/meson.build): MAN_SRCDIR, MAN_BUILDDIR,
# TESTS_MAN_DIR, PROTOCOL_XML, PROTOCOL_H, BUFBROKER_H, BUFBROKERD,
# BUFBROKERCTL, XSLTPROC, XMLLINT, GROFF, CC, GDBUS_CODEGEN. Point MAN_SRCDIR at a modified
# copy of man/ to see a check fail.
set -uo pipefail

mode=${1:?usage: check-man.sh render|api|library|cli|codegen}

passed=0
failed=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-man.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }

# check DESCRIPTION COMMAND...: pass when the command succeeds; its output is
# shown on failure.
check() {
        local what=$1 out
        shift
        if out=$("$@" 2>&1); then
                pass "$what"
        else
                fail "$what"
                [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
        fi
}

# quiet COMMAND...: succeed when the command succeeds and writes nothing to
# stderr (stdout is discarded); print that stderr otherwise.
quiet() {
        local err rc
        err=$("$@" 2>&1 >/dev/null)
        rc=$?
        [ -n "$err" ] && printf '%s\n' "$err"
        [ "$rc" -eq 0 ] && [ -z "$err" ]
}

need_tool() {
        local var=$1 pkg=$2
        if [ -z "${!var:-}" ] || ! [ -x "${!var}" ]; then
                fail "$var is available (install $pkg)"
                return 1
        fi
}

pages=(bufbrokerd.8 bufbrokerctl.1 libbufbroker.3 org.bufbroker.Broker1.5)

# The "ELEMENT TEXT" lines of a page's terms (and "prototype NAME" lines).
terms() {       # terms PAGE.xml [SECTION]
        "$XSLTPROC" --nonet --stringparam section "${2:-}" "$TESTS_MAN_DIR/terms.xsl" "$MAN_SRCDIR/$1"
}

# C source without its comments and preprocessor lines, on one line.
strip_comments() {
        grep -v '^[[:space:]]*#' "$1" | tr '\n' ' ' | sed 's|/\*[^*]*\*\+\([^/*][^*]*\*\+\)*/| |g'
}

# ------------------------------------------------------------------ render ---
render() {
        local page name xml

        need_tool XSLTPROC xsltproc || return
        need_tool XMLLINT libxml2-utils || return
        need_tool GROFF groff-base || return

        for page in "${pages[@]}"; do
                name=${page%.*}
                xml=$MAN_SRCDIR/$name.xml
                mkdir -p "$tmp/$name"
                check "$page: xsltproc --nonet renders $name.xml without a message" \
                        quiet "$XSLTPROC" --nonet --xinclude --path "$MAN_BUILDDIR" \
                                --stringparam bufbroker.version test \
                                -o "$tmp/$name/$page" "$MAN_SRCDIR/custom-man.xsl" "$xml"
                check "$page: rendering wrote $page" test -s "$tmp/$name/$page"
                check "$page: $name.xml is valid DocBook XML 4.5" \
                        quiet "$XMLLINT" --nonet --noout --xinclude --postvalid --path "$MAN_BUILDDIR" "$xml"
                check "$page: the built page formats with groff -ww without a warning" \
                        quiet "$GROFF" -t -man -Tutf8 -ww -z "$MAN_BUILDDIR/$page"
                check "$page: the built page has a NAME section" \
                        grep -q '^\.SH "NAME"' "$MAN_BUILDDIR/$page"
        done
}

# --------------------------------------------------------------------- api ---
api() {
        local page=org.bufbroker.Broker1.xml kind iface name t n what
        local documented contract rendered listing

        need_tool XSLTPROC xsltproc || return

        documented=$(terms "$page") || { fail "terms of $page can be read"; return; }
        contract=$("$XSLTPROC" --nonet --novalid "$TESTS_MAN_DIR/contract-members.xsl" "$PROTOCOL_XML") ||
                { fail "members of $PROTOCOL_XML can be read"; return; }
        [ -n "$contract" ] || { fail "$PROTOCOL_XML has members"; return; }

        # Methods and signals are <function>, properties <varname> in a term.
        while read -r kind iface name; do
                case $kind in
                method) t="function $name()" ;;
                signal) t="function $name" ;;
                property) t="varname $name" ;;
                esac
                if grep -qxF "$t" <<<"$documented"; then
                        pass "$page documents $kind $iface.$name"
                else
                        fail "$page documents $kind $iface.$name (no term <${t%% *}>${t#* }</${t%% *}>)"
                fi
        done <<<"$contract"

        # Error names: the protocol's own, and the standard ones it names.
        for name in $(grep -o '"org\.bufbroker\.Error\.[A-Za-z]*"' "$PROTOCOL_H" | tr -d '"' | sort -u) \
                    $(grep -o 'org\.freedesktop\.DBus\.Error\.[A-Za-z]*' "$PROTOCOL_H" | sort -u); do
                if grep -qxF "constant $name" <<<"$documented"; then
                        pass "$page documents error $name"
                else
                        fail "$page documents error $name (no term <constant>$name</constant>)"
                fi
        done

        # Annotations (org.gtk.GDBus.C.UnixFD, ...): what each means to a
        # binding.
        n=0
        for name in $(grep -o '<annotation name="[^"]*"' "$PROTOCOL_XML" | cut -d'"' -f2 | sort -u); do
                n=$((n + 1))
                if grep -qxF "literal $name" <<<"$documented"; then
                        pass "$page documents annotation $name"
                else
                        fail "$page documents annotation $name (no term <literal>$name</literal>)"
                fi
        done
        [ "$n" -gt 0 ] || fail "annotations found in $PROTOCOL_XML"

        # The standard members the manager object serves for change
        # notification (not in the contract XML: sd-bus provides them).
        for t in "function GetManagedObjects()" "function InterfacesAdded" "function InterfacesRemoved" \
                 "function PropertiesChanged"; do
                if grep -qxF "$t" <<<"$documented"; then
                        pass "$page documents ${t#* }"
                else
                        fail "$page documents ${t#* } (no term <function>${t#* }</function>)"
                fi
        done

        # Option, info, format, limit and stats keys, and BufferReleased's reasons.
        n=0
        for name in $(sed -n 's/^#define BB_\(OPT\|INFO\|FMT\|LIMIT\|STAT\|REASON\)_[A-Z0-9_]*[[:space:]]*"\([^"]*\)".*/\2/p' "$PROTOCOL_H" | sort -u); do
                n=$((n + 1))
                if grep -qxF "literal $name" <<<"$documented"; then
                        pass "$page documents key \"$name\""
                else
                        fail "$page documents key \"$name\" (no term <literal>$name</literal>)"
                fi
        done
        [ "$n" -gt 0 ] || fail "option keys found in $PROTOCOL_H"

        # The generated listings made it into the built page: every member
        # name appears in its formatted text.
        if [ -z "${GROFF:-}" ] || ! [ -x "$GROFF" ]; then
                fail "GROFF is available (install groff-base)"
                return
        fi
        rendered=$("$GROFF" -t -man -Tascii -P-c -rLL=200n "$MAN_BUILDDIR/org.bufbroker.Broker1.5" 2>/dev/null)
        for iface in $(cut -d' ' -f2 <<<"$contract" | sort -u); do
                what="org.bufbroker.Broker1.5 shows the introspection listing of $iface"
                # From "interface IFACE {" to its "};".
                listing=$(awk -v start="interface $iface {" \
                        'index($0, start) { on = 1 } on { print } on && /^ *};/ { exit }' <<<"$rendered")
                if [ -z "$listing" ]; then
                        fail "$what (no 'interface $iface {')"
                        continue
                fi
                t=""
                while read -r kind _ name; do
                        grep -qE "(^|[^A-Za-z0-9])$name(\(| = )" <<<"$listing" || t="$t $name"
                done < <(grep " $iface " <<<"$contract")
                if [ -z "$t" ]; then pass "$what"; else fail "$what (missing:$t)"; fi
        done
}

# ----------------------------------------------------------------- library ---
library() {
        local page=libbufbroker.xml header name documented src functions others

        need_tool XSLTPROC xsltproc || return

        documented=$(terms "$page") || { fail "terms of $page can be read"; return; }
        header=$(strip_comments "$BUFBROKER_H")
        functions=$(grep -o 'bb_[a-z0-9_]*[[:space:]]*(' <<<"$header" | tr -d ' (' | sort -u)
        [ -n "$functions" ] || { fail "functions found in $BUFBROKER_H"; return; }

        for name in $functions; do
                if grep -qxF "function $name()" <<<"$documented" && grep -qxF "prototype $name" <<<"$documented"; then
                        pass "$page documents $name() (synopsis and description)"
                else
                        fail "$page documents $name() (needs a funcprototype and a term <function>$name()</function>)"
                fi
        done

        # The synopsis says what the header says, up to white space.
        for name in $functions; do
                local decl sig
                decl=$(tr ';' '\n' <<<"$header" | grep -E "(^|[^a-z0-9_])$name[[:space:]]*\(" | tr -d ' \t')
                sig=$(sed -n "s/^signature $name //p" <<<"$documented" | tr -d ' \t')
                if [ -n "$decl" ] && [ "$decl" = "$sig" ]; then
                        pass "$page: the prototype of $name() is the header's"
                else
                        fail "$page: the prototype of $name() is the header's (header: '$decl', page: '$sig')"
                fi
        done

        # Types (bb_* that are no function) and macros (BB_*, not the guard).
        others=$(grep -o '\bbb_[a-z0-9_]*\b' <<<"$header" | sort -u | grep -vxF "$functions")
        for name in $others $(sed -n 's/^#define \(BB_[A-Z0-9_]*\).*/\1/p' "$BUFBROKER_H" | sort -u); do
                if grep -qw "$name" "$MAN_SRCDIR/$page"; then
                        pass "$page mentions $name"
                else
                        fail "$page mentions $name"
                fi
        done

        src=$tmp/example.c
        if "$XSLTPROC" --nonet "$TESTS_MAN_DIR/example.xsl" "$MAN_SRCDIR/$page" >"$src" && [ -s "$src" ]; then
                check "$page: the example program compiles against bufbroker.h (-std=c99 -Wall -Wextra -Werror -pedantic)" \
                        "$CC" -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only \
                                -I"$(dirname "$BUFBROKER_H")" "$src"
        else
                fail "$page has an example program (<example id=\"example-program\">)"
        fi
}

# --------------------------------------------------------------------- cli ---
# The options of a --help text: every "--word", and "-h" when it is listed.
help_options() {
        local text
        text=$(cat)
        {
                grep -oE -- '--[a-z][a-z0-9-]*' <<<"$text"
                grep -qE -- '(^|[[:space:]])-h([[:space:],]|$)' <<<"$text" && echo -h
        } | sort -u
}

cli() {
        local help documented name commands

        need_tool XSLTPROC xsltproc || return

        # bufbrokerd
        help=$("$BUFBROKERD" --help) || { fail "bufbrokerd --help works"; return; }
        documented=$(terms bufbrokerd.xml Options | sed -n 's/^option \([^=]*\).*/\1/p' | sort -u)
        for name in $(help_options <<<"$help"); do
                if grep -qxF -- "$name" <<<"$documented"; then
                        pass "bufbrokerd.8 documents $name"
                else
                        fail "bufbrokerd.8 documents $name (no term <option>$name</option> under Options)"
                fi
        done
        for name in $documented; do
                check "bufbrokerd --help knows $name, which bufbrokerd.8 documents" \
                        grep -qxF -- "$name" <(help_options <<<"$help")
        done

        # bufbrokerctl: commands are the first word of the lines under
        # "Commands:", options every --word of the help.
        help=$("$BUFBROKERCTL" --help) || { fail "bufbrokerctl --help works"; return; }
        commands=$(sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z0-9-]*\)\( .*\)\?$/\1/p' <<<"$help")
        [ -n "$commands" ] || fail "bufbrokerctl --help lists commands"
        documented=$(terms bufbrokerctl.xml Commands | sed -n 's/^command //p' | sort -u)
        for name in $commands; do
                if grep -qxF -- "$name" <<<"$documented"; then
                        pass "bufbrokerctl.1 documents command $name"
                else
                        fail "bufbrokerctl.1 documents command $name (no term <command>$name</command> under Commands)"
                fi
        done
        for name in $documented; do
                check "bufbrokerctl --help knows command $name, which bufbrokerctl.1 documents" \
                        grep -qxF -- "$name" <<<"$commands"
        done

        documented=$(terms bufbrokerctl.xml Options | sed -n 's/^option \([^=]*\).*/\1/p' | sort -u)
        for name in $(help_options <<<"$help"); do
                if grep -qxF -- "$name" <<<"$documented"; then
                        pass "bufbrokerctl.1 documents $name"
                else
                        fail "bufbrokerctl.1 documents $name (no term <option>$name</option> under Options)"
                fi
        done
        for name in $documented; do
                check "bufbrokerctl --help knows $name, which bufbrokerctl.1 documents" \
                        grep -qxF -- "$name" <(help_options <<<"$help")
        done
}

# ----------------------------------------------------------------- codegen ---
# The C name gdbus-codegen should give a member: an underscore where a
# lower-case letter meets an upper-case one, or an acronym meets a word, never
# between a digit and a letter (CreateV4L2 -> create_v4l2, OwnerUid ->
# owner_uid).
c_name() {
        sed -E 's/([a-z])([A-Z])/\1_\2/g; s/([A-Z])([A-Z][a-z])/\1_\2/g' <<<"$1" | tr 'A-Z' 'a-z'
}

codegen() {
        local contract fd_methods header docs kind iface name prefix fn proto t

        need_tool XSLTPROC xsltproc || return
        need_tool GDBUS_CODEGEN libglib2.0-dev-bin || return

        contract=$("$XSLTPROC" --nonet --novalid "$TESTS_MAN_DIR/contract-members.xsl" "$PROTOCOL_XML") ||
                { fail "members of $PROTOCOL_XML can be read"; return; }
        fd_methods=$("$XSLTPROC" --nonet --novalid "$TESTS_MAN_DIR/contract-fds.xsl" "$PROTOCOL_XML") ||
                { fail "fd methods of $PROTOCOL_XML can be read"; return; }
        [ -n "$fd_methods" ] || { fail "$PROTOCOL_XML has methods that pass fds"; return; }

        # As tests/examples/glib-codegen/meson.build runs it.
        check "gdbus-codegen generates C and DocBook from $PROTOCOL_XML without a message" \
                quiet "$GDBUS_CODEGEN" --interface-prefix org.bufbroker. --c-namespace Bufbroker \
                        --generate-c-code "$tmp/bb-gen" --generate-docbook "$tmp/doc" "$PROTOCOL_XML"
        header=$tmp/bb-gen.h
        [ -s "$header" ] || { fail "gdbus-codegen wrote $header"; return; }

        # Every member has the C name its D-Bus name reads as.
        while read -r kind iface name; do
                prefix=bufbroker_$(c_name "${iface#org.bufbroker.}")
                case $kind in
                method) fn=${prefix}_call_$(c_name "$name")_sync ;;
                signal) fn=${prefix}_emit_$(c_name "$name") ;;
                property) fn=${prefix}_get_$(c_name "$name") ;;
                esac
                if grep -qE "(^|[^a-z0-9_])$fn \(" "$header"; then
                        pass "the GLib binding names $kind $iface.$name $fn()"
                else
                        fail "the GLib binding names $kind $iface.$name $fn() (org.gtk.GDBus.C.Name?; it has: $(grep -oE "${prefix}_[a-z]+_[a-z0-9_]*$(c_name "$name" | cut -c1-4)[a-z0-9_]*" "$header" | sort -u | tr '\n' ' '))"
                fi
        done <<<"$contract"

        # A method that passes fds takes and returns a GUnixFDList: without
        # org.gtk.GDBus.C.UnixFD the caller would get bare indexes.
        while read -r iface name; do
                fn=bufbroker_$(c_name "${iface#org.bufbroker.}")_call_$(c_name "$name")_sync
                proto=$(awk -v f="$fn (" 'index($0, f) { on = 1 } on { printf "%s ", $0 } on && /\);/ { exit }' "$header")
                if grep -qE 'GUnixFDList +\*fd_list' <<<"$proto" && grep -q 'GUnixFDList \*\*out_fd_list' <<<"$proto"; then
                        pass "$fn() takes and returns a GUnixFDList"
                else
                        fail "$fn() takes and returns a GUnixFDList (org.gtk.GDBus.C.UnixFD on $iface.$name?): $proto"
                fi
        done <<<"$fd_methods"

        # The DocBook documents every interface, member and argument.
        docs=$(for iface in $(cut -d' ' -f2 <<<"$contract" | sort -u); do
                        if [ -s "$tmp/doc-$iface.xml" ]; then
                                "$XSLTPROC" --nonet --novalid "$TESTS_MAN_DIR/codegen-docs.xsl" "$tmp/doc-$iface.xml"
                        else
                                echo "interface $iface missing"
                        fi
                done)
        for iface in $(cut -d' ' -f2 <<<"$contract" | sort -u); do
                check "gdbus-codegen's DocBook describes interface $iface (a short description and a text)" \
                        grep -qxF "interface $iface yes" <<<"$docs"
        done
        while read -r kind iface name; do
                check "gdbus-codegen's DocBook documents $kind $iface.$name" \
                        grep -qxF "$kind $iface $name yes" <<<"$docs"
        done <<<"$contract"
        t=$(grep '^arg .* no$' <<<"$docs" | cut -d' ' -f2- | sed 's/ no$//; s/ /./; s/ / argument /' | tr '\n' ',')
        if [ "$(grep -c '^arg .* yes$' <<<"$docs")" -eq 0 ]; then
                fail "gdbus-codegen's DocBook lists arguments"
        elif [ -n "$t" ]; then
                fail "gdbus-codegen's DocBook documents every argument (undocumented: ${t%,}; an @ARG line in the member's comment)"
        else
                pass "gdbus-codegen's DocBook documents every argument ($(grep -c '^arg ' <<<"$docs") of them)"
        fi
}

case $mode in
render|api|library|cli|codegen) "$mode" ;;
*) echo "check-man.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
