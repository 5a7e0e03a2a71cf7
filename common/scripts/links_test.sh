#!/usr/bin/env bash
# links_test.sh - tests of links-check.sh on fixture repositories in a temporary
# directory. Prints one line per test and a summary "N passed, N failed"; exits 1
# if any failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
check="$here/links-check.sh"
passed=0
failed=0
tmp=$(mktemp -d /tmp/plog-links-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "[       OK ] $1"; passed=$((passed + 1)); }
bad() { echo "[  FAILED  ] $1: $2"; failed=$((failed + 1)); }

# fixture DIR: a README linking to a doc, a chapter file, anchors and URLs, all valid.
fixture() {
    local d=$1
    mkdir -p "$d/docs" "$d/ch01-a/src"
    printf 'int a;\n' >"$d/ch01-a/src/a.c"
    cat >"$d/docs/NOTES.md" <<'MD'
# Notes

## Building it
<a id="pitfall-2"></a>
### 2. A pitfall
Back to the [top](../README.md) and [the building section](#building-it).
MD
    cat >"$d/README.md" <<'MD'
# Fixture

See [the notes](docs/NOTES.md), [pitfall 2](docs/NOTES.md#pitfall-2),
[building](docs/NOTES.md#building-it), [`ch01-a/src/a.c`](ch01-a/src/a.c),
[the chapter](ch01-a/) and [from the root](/docs/NOTES.md "title").
A URL is not checked: [nng](https://nng.nanomsg.org/missing.md), [mail](mailto:x@y.z).
[`docs/NOTES.md, pitfall 2`](docs/NOTES.md) is text, not a path.
```sh
echo "[not a link](nowhere.md)"
```
MD
}

expect_fail() { # expect_fail NAME PATTERN: the check fails and prints PATTERN
    local t=$1 pat=$2 out
    if out=$("$check" "$d" 2>&1); then bad "$t" "passed"
    elif grep -qF -- "$pat" <<<"$out"; then ok "$t"
    else bad "$t" "$out"; fi
}

t=links_pass_when_every_link_resolves
d="$tmp/$t"; fixture "$d"
if out=$("$check" "$d" 2>&1); then ok $t; else bad $t "$out"; fi

t=links_fail_on_a_relative_link_to_a_missing_file
d="$tmp/$t"; fixture "$d"
printf '\nRead [the design](../beside-the-repo/design.md).\n' >>"$d/README.md"
expect_fail $t 'README.md:12: link to ../beside-the-repo/design.md: no such file'

t=links_fail_on_a_link_that_leaves_the_repository
d="$tmp/$t"; fixture "$d"
mkdir -p "$tmp/outside" && printf 'x\n' >"$tmp/outside/x.md"
printf '\n[outside](../outside/x.md)\n' >>"$d/README.md"
expect_fail $t 'leaves the repository'

t=links_fail_on_a_missing_file_in_a_subdirectory
d="$tmp/$t"; fixture "$d"
printf '\n[gone](../ch01-a/src/gone.c)\n' >>"$d/docs/NOTES.md"
expect_fail $t 'docs/NOTES.md:8: link to ../ch01-a/src/gone.c'

t=links_fail_on_a_missing_anchor
d="$tmp/$t"; fixture "$d"
printf '\n[pitfall 9](docs/NOTES.md#pitfall-9)\n' >>"$d/README.md"
expect_fail $t 'README.md:12: link to docs/NOTES.md#pitfall-9: no anchor #pitfall-9 in docs/NOTES.md'

t=links_fail_on_a_missing_anchor_in_the_same_file
d="$tmp/$t"; fixture "$d"
printf '\n[here](#nothing-here)\n' >>"$d/README.md"
expect_fail $t 'no anchor #nothing-here'

t=links_fail_on_a_backquoted_path_that_does_not_exist
d="$tmp/$t"; fixture "$d"
printf '\n[`ch01-a/src/b.c`](ch01-a/src/a.c)\n' >>"$d/README.md"
expect_fail $t 'link text `ch01-a/src/b.c` names no path'

t=links_ignore_code_fences_urls_and_build_output
d="$tmp/$t"; fixture "$d"
mkdir -p "$d/ch01-a/build" && printf '[x](missing.md)\n' >"$d/ch01-a/build/out.md"
if out=$("$check" "$d" 2>&1); then ok $t; else bad $t "$out"; fi

t=links_in_git_ignore_untracked_ignored_files
d="$tmp/$t"; fixture "$d"
git -C "$d" init -q && printf 'build/\n' >"$d/.gitignore"
mkdir -p "$d/build" && printf '[x](missing.md)\n' >"$d/build/x.md"
if out=$("$check" "$d" 2>&1); then ok $t; else bad $t "$out"; fi

echo "links-check tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
