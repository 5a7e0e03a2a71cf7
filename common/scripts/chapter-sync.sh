#!/usr/bin/env bash
# chapter-sync.sh FILE - carry a changed file forward into later chapters.
#
# FILE is chNN-name/path. Every later chapter whose copy of path still equals
# FILE's last committed version (git HEAD) gets the new FILE; a later chapter with
# its own version of the file is left alone and named, so a fix to inherited code
# reaches every chapter that inherited it, and nothing else.
set -euo pipefail

file=${1:-}
if [ -z "$file" ] || [ ! -f "$file" ]; then
    echo "usage: chapter-sync.sh chNN-name/path (an existing file)" >&2
    exit 2
fi
top=$(git rev-parse --show-toplevel)
file=$(realpath --relative-to="$top" "$file")
cd "$top"
chapter=${file%%/*}
rel=${file#*/}
case "$chapter" in
ch[0-9][0-9]-*) ;;
*)
    echo "chapter-sync: $file is not inside a chapter directory" >&2
    exit 2
    ;;
esac

old=$(mktemp)
trap 'rm -f "$old"' EXIT
if ! git show "HEAD:$file" >"$old" 2>/dev/null; then
    echo "chapter-sync: $file is new (not in HEAD): no later copy can hold its old version" >&2
    exit 0
fi

synced=0
for dir in ch[0-9][0-9]-*/; do
    later=${dir%/}
    [[ "$later" > "$chapter" ]] || continue
    target="$later/$rel"
    if [ ! -f "$target" ]; then
        echo "chapter-sync: $target: absent, skipped"
    elif cmp -s "$target" "$file"; then
        echo "chapter-sync: $target: already up to date"
    elif cmp -s "$target" "$old"; then
        cp "$file" "$target"
        echo "chapter-sync: $target: updated"
        synced=$((synced + 1))
    else
        echo "chapter-sync: $target: has its own version, left alone"
    fi
done
echo "chapter-sync: $synced file(s) updated from $file"
