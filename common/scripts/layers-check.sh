#!/usr/bin/env bash
# layers-check.sh [CHAPTER...] - the includes between a chapter's packages follow the
# dependency table in its README, and the table has no cycle.
#
# The table is the first fenced block under the README heading
# "## Dependencies between packages". One rule per line ('#' starts a comment):
#     server: err log rpc tls      internal/server may include internal/{err,log,rpc,tls}/...
#     server tests: client         its tests, benchmarks and test library also internal/client/...
#     raft forbids: <unistd.h> <nng/nng.h>   internal/raft includes none of these (not in tests)
#     log exports: plog_store plog_segment   names internal/log may declare beside plog_log_*
#     cmd/proglog: err log server  a program is a package too
#     err:                         a package that includes no other
# A package is internal/<name> (written <name>) or cmd/<name>; it may always include
# its own headers. Every package of the chapter must have a line. Test files are
# *_test.c, *_bench.c, *_fuzz.c and *_testlib.c: they follow "PKG:" plus "PKG tests:".
# Only `#include "internal/X/..."` lines count as dependencies.
#
# Names: every plog_ function, type or callback type that a header of internal/P
# declares (at the start of a line) is plog_P or starts with plog_P_, or starts with
# one of the prefixes of a "P exports:" line.
#
# Exits 1 naming each file and include that breaks the table, each package missing
# from it, a cycle in it, and each misnamed declaration.
set -euo pipefail

chapters=("$@")
[ ${#chapters[@]} -gt 0 ] || chapters=(.)

table() { # table README: the rule lines of the dependency table
    awk '
        /^## / { sect = ($0 ~ /^## Dependencies between packages[[:space:]]*$/); next }
        sect && /^```/ { if (inblock) exit; inblock = 1; next }
        sect && inblock { sub(/#.*/, ""); if ($0 ~ /[^[:space:]]/) print }
    ' "$1"
}

is_test() { case $1 in *_test.c | *_bench.c | *_fuzz.c | *_testlib.c) return 0 ;; esac; return 1; }

status=0
for ch in "${chapters[@]}"; do
    name=$(basename "$(cd "$ch" && pwd)")
    chstatus=0
    err() { echo "layers-check: $name: $*" >&2; status=1; chstatus=1; }
    readme="$ch/README.md"
    if [ ! -f "$readme" ] || ! grep -q '^## Dependencies between packages[[:space:]]*$' "$readme"; then
        err "README.md has no '## Dependencies between packages' section"
        continue
    fi
    declare -A allow=() tallow=() forbid=() known=() exports=()
    while IFS= read -r line; do
        key=${line%%:*}
        rest=${line#*:}
        if [ "$key" = "$line" ]; then
            err "table line without ':': $line"
            continue
        fi
        read -r -a words <<<"$key"
        pkg=${words[0]}
        case "${words[1]:-}" in
        "") known[$pkg]=1; allow[$pkg]=" $(echo $rest) " ;;
        tests) tallow[$pkg]=" $(echo $rest) " ;;
        forbids) forbid[$pkg]=" $(echo $rest) " ;;
        exports) exports[$pkg]=" $(echo $rest) " ;;
        *) err "table line with unknown kind '${words[1]}': $line" ;;
        esac
    done < <(table "$readme")

    # Each package of the chapter is in the table.
    pkgs=$(cd "$ch" && { ls -d internal/*/ 2>/dev/null | sed 's|^internal/||; s|/$||'; ls -d cmd/*/ 2>/dev/null | sed 's|/$||'; } | sort)
    for p in $pkgs; do
        [ -n "${known[$p]:-}" ] || err "package $p is not in the dependency table"
    done

    # Every include follows it.
    while IFS= read -r f; do
        [ -n "$f" ] || continue
        case $f in internal/*) pkg=${f#internal/}; pkg=${pkg%%/*} ;; cmd/*) pkg=cmd/${f#cmd/}; pkg=${pkg%/*} ;; esac
        [ -n "${known[$pkg]:-}" ] || continue
        ok=" $pkg ${allow[$pkg]} "
        is_test "$f" && ok+=" ${tallow[$pkg]:-} "
        while IFS=: read -r lno inc; do
            dep=${inc#*\"internal/}
            dep=${dep%%/*}
            case "$ok" in *" $dep "*) ;; *) err "$f:$lno: includes internal/$dep/, not allowed for $pkg (table: $pkg:${allow[$pkg]}${tallow[$pkg]:+| tests:${tallow[$pkg]}})" ;; esac
        done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"internal/' "$ch/$f" | sed 's/:[[:space:]]*#[[:space:]]*include[[:space:]]*/:/' || true)
        if [ -n "${forbid[$pkg]:-}" ] && ! is_test "$f"; then
            for h in ${forbid[$pkg]}; do
                hh=${h#<}; hh=${hh%>}
                while IFS=: read -r lno _; do
                    err "$f:$lno: includes <$hh>, which $pkg forbids"
                done < <(grep -n "^[[:space:]]*#[[:space:]]*include[[:space:]]*<$hh>" "$ch/$f" || true)
            done
        fi
    done < <(cd "$ch" && find internal cmd -name '*.[ch]' 2>/dev/null | sort)

    # Exported names carry their package's prefix.
    while IFS= read -r h; do
        [ -n "$h" ] || continue
        pkg=${h#internal/}
        pkg=${pkg%%/*}
        while IFS=: read -r lno decl; do
            for n in $(grep -oE 'plog_[a-z0-9_]+[[:space:]]*(\(|;|\))' <<<"$decl" | grep -oE 'plog_[a-z0-9_]+'); do
                case $n in "plog_$pkg" | "plog_${pkg}_"*) continue ;; esac
                okname=""
                for x in ${exports[$pkg]:-}; do
                    case $n in "$x"*) okname=1 ;; esac
                done
                [ -n "$okname" ] || err "$h:$lno: $n is not named plog_${pkg}_... (package $pkg)"
            done
        done < <(grep -nE '^[A-Za-z_][^;(]*[ *]plog_[a-z0-9_]+[[:space:]]*\(|^\}[[:space:]]*plog_[a-z0-9_]+;|^typedef [^;(]*[ *]plog_[a-z0-9_]+;|^typedef [^;]*\(\*plog_[a-z0-9_]+\)' "$ch/$h" |
            sed -E 's/\(\*(plog_[a-z0-9_]+)\)/ \1)/' || true)
    done < <(cd "$ch" && find internal -name '*.h' 2>/dev/null | sort)

    # The table has no cycle (so neither have the includes it allows).
    edges=""
    for p in "${!allow[@]}"; do
        for d in ${allow[$p]}; do
            [ "$d" = "$p" ] || edges+="$p $d"$'\n'
        done
    done
    if [ -n "$edges" ] && ! out=$(printf '%s' "$edges" | tsort 2>&1 >/dev/null); then
        err "the table has a cycle: $(printf '%s\n' "$out" | grep -v 'input contains a loop' | sed 's/^tsort: //' | tr '\n' ' ')"
    fi
    [ $chstatus -ne 0 ] || echo "layers-check: $name: ok (${#known[@]} packages)"
    unset allow tallow forbid known exports
done
exit $status
