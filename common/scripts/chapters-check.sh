#!/usr/bin/env bash
# chapters-check.sh [ROOT] - each chapter's README must list exactly the files in
# which it differs from the chapter before it.
#
# For every chapter N > 1 (directories ROOT/chNN-*, in order), the files added,
# changed or removed relative to chapter N-1 must be exactly the paths listed in
# chapter N's README.md under the heading "## Changes from the previous chapter",
# as list items that start with the path in backquotes:
#     - `internal/log/store.c` — why it changed
# Files are those git tracks or would track (ignored files such as build/ do not
# count); outside a git checkout, every file but those under build/ and data/.
# Exits 1 naming each file that is listed but unchanged or changed but unlisted.
#
# Every chapter (the first included) must also answer every target the top-level
# README documents, listed in TARGETS below (docs/ARCHITECTURE.md, "Targets"): its
# Makefile, with what it includes, must give each a recipe or prerequisites. A
# target only named in .PHONY does not count (make would do nothing).
set -euo pipefail

TARGETS="all test bench fuzz check-long run deps deps-test clean"

root=${1:-.}
cd "$root"

list_files() { # list_files DIR: the chapter's files, relative to DIR, sorted
    if git -C "$1" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$1" && git ls-files -co --exclude-standard -- . | while IFS= read -r f; do
            [ -e "$f" ] && printf '%s\n' "$f"; done) | LC_ALL=C sort -u
    else
        (cd "$1" && find . \( -path ./build -o -path ./data \) -prune -o -type f -print |
            sed 's|^\./||' | LC_ALL=C sort)
    fi
}

listed_files() { # listed_files README: the paths listed under the changes heading
    awk '
        /^## / { in_section = ($0 ~ /^## Changes from the previous chapter[[:space:]]*$/); next }
        in_section && /^[-*][[:space:]]+`[^`]+`/ {
            s = $0; sub(/^[-*][[:space:]]+`/, "", s); sub(/`.*/, "", s); print s
        }' "$1" | LC_ALL=C sort -u
}

make_targets() { # make_targets DIR: the targets DIR's Makefile defines with a recipe or prerequisites
    make -C "$1" -pRrq -f Makefile .chapters-check-probe 2>/dev/null | awk '
        /^# Not a target/ { skip = 1; next }
        /^[^#\t .][^:=\t ]*:([^=]|$)/ {
            if (!skip) {
                name = $0; sub(/:.*/, "", name)
                deps = $0; sub(/^[^:]*:+/, "", deps); gsub(/[ \t]/, "", deps)
                cur = name; if (deps != "") has[name] = 1
            }
            skip = 0; next
        }
        /^\t/ { if (cur != "") has[cur] = 1; next }
        /^$/ { cur = "" }
        { skip = 0 }
        END { for (t in has) print t }' || true
}

shopt -s nullglob
chapters=(ch[0-9][0-9]-*/)
status=0
prev=""
for dir in "${chapters[@]}"; do
    cur=${dir%/}
    if [ ! -f "$cur/Makefile" ]; then
        echo "chapters-check: $cur: no Makefile" >&2
        status=1
    else
        defined=$(make_targets "$cur")
        missing=""
        for t in $TARGETS; do
            grep -qxF -- "$t" <<<"$defined" || missing="$missing $t"
        done
        if [ -n "$missing" ]; then
            echo "chapters-check: $cur: Makefile has no target:$missing (every chapter answers: $TARGETS)" >&2
            status=1
        fi
    fi
    if [ -z "$prev" ]; then
        prev=$cur
        continue
    fi
    readme="$cur/README.md"
    if [ ! -f "$readme" ]; then
        echo "chapters-check: $cur: no README.md" >&2
        status=1
        prev=$cur
        continue
    fi
    if ! grep -q '^## Changes from the previous chapter[[:space:]]*$' "$readme"; then
        echo "chapters-check: $cur: README.md has no '## Changes from the previous chapter' section" >&2
        status=1
        prev=$cur
        continue
    fi
    actual=$(comm -3 <(list_files "$prev") <(list_files "$cur") | sed 's/^\t//')
    both=$(comm -12 <(list_files "$prev") <(list_files "$cur"))
    while IFS= read -r f; do
        [ -n "$f" ] || continue
        cmp -s "$prev/$f" "$cur/$f" || actual+=$'\n'"$f"
    done <<<"$both"
    actual=$(printf '%s\n' "$actual" | sed '/^$/d' | LC_ALL=C sort -u)
    listed=$(listed_files "$readme")

    unlisted=$(comm -23 <(printf '%s\n' "$actual" | sed '/^$/d') <(printf '%s\n' "$listed" | sed '/^$/d'))
    unchanged=$(comm -13 <(printf '%s\n' "$actual" | sed '/^$/d') <(printf '%s\n' "$listed" | sed '/^$/d'))
    if [ -n "$unlisted" ] || [ -n "$unchanged" ]; then
        status=1
        while IFS= read -r f; do
            [ -n "$f" ] && echo "chapters-check: $cur: $f differs from $prev but is not listed in README.md" >&2
        done <<<"$unlisted"
        while IFS= read -r f; do
            [ -n "$f" ] && echo "chapters-check: $cur: $f is listed in README.md but does not differ from $prev" >&2
        done <<<"$unchanged"
    else
        echo "chapters-check: $cur: ok ($(printf '%s\n' "$actual" | sed '/^$/d' | wc -l) files differ from $prev, all listed)"
    fi
    prev=$cur
done
exit $status
