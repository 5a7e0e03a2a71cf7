#!/usr/bin/env bash
# chapters_test.sh - tests of chapters-check.sh and chapter-sync.sh on fixture
# chapters in a temporary directory. Prints one line per test and a summary
# "N passed, N failed"; exits 1 if any failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
check="$here/chapters-check.sh"
sync="$here/chapter-sync.sh"
passed=0
failed=0
tmp=$(mktemp -d /tmp/plog-chapters-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "[       OK ] $1"; passed=$((passed + 1)); }
bad() { echo "[  FAILED  ] $1: $2"; failed=$((failed + 1)); }

# makefile DIR: a chapter Makefile answering every required target, some of them
# from an included file as common.mk provides them.
makefile() {
    mkdir -p "$1/../mk"
    printf 'all test bench deps deps-test clean:\n\t@true\n' >"$1/../mk/common.mk"
    printf 'include ../mk/common.mk\nrun: all\n\t@true\nfuzz:\n\t@echo none\ncheck-long: test\n' >"$1/Makefile"
}

# fixture DIR: ch01-a with two files, ch02-b changing one, adding one, removing one.
fixture() {
    local d=$1
    mkdir -p "$d/ch01-a/src" "$d/ch02-b/src" "$d/ch02-b/build"
    makefile "$d/ch01-a"; makefile "$d/ch02-b"
    printf 'int a;\n' >"$d/ch01-a/src/a.c"
    printf 'int b;\n' >"$d/ch01-a/src/b.c"
    printf 'int gone;\n' >"$d/ch01-a/src/gone.c"
    printf '# ch01\n\n## Changes from the previous chapter\nnone (first chapter)\n' >"$d/ch01-a/README.md"
    printf 'int a;\n' >"$d/ch02-b/src/a.c"
    printf 'int b = 2;\n' >"$d/ch02-b/src/b.c"
    printf 'int c;\n' >"$d/ch02-b/src/c.c"
    printf 'junk\n' >"$d/ch02-b/build/out.o"
    cat >"$d/ch02-b/README.md" <<'MD'
# ch02

## Changes from the previous chapter
- `README.md` — this chapter's text
- `src/b.c` — b gets a value
- `src/c.c` — new
- `src/gone.c` — (removed) no longer needed

## Next
- `src/a.c` — not in the changes section, must not count
MD
}

t=check_passes_when_readme_lists_exactly_the_diff
d="$tmp/$t"; fixture "$d"
if out=$("$check" "$d" 2>&1); then ok $t; else bad $t "$out"; fi

t=check_fails_naming_an_unlisted_change
d="$tmp/$t"; fixture "$d"
printf 'int a = 1;\n' >"$d/ch02-b/src/a.c"
if out=$("$check" "$d" 2>&1); then bad $t "passed"
elif grep -q 'src/a.c differs from ch01-a but is not listed' <<<"$out"; then ok $t
else bad $t "$out"; fi

t=check_fails_naming_a_listed_file_that_did_not_change
d="$tmp/$t"; fixture "$d"
printf 'int b;\n' >"$d/ch02-b/src/b.c"
if out=$("$check" "$d" 2>&1); then bad $t "passed"
elif grep -q 'src/b.c is listed in README.md but does not differ' <<<"$out"; then ok $t
else bad $t "$out"; fi

t=check_fails_on_an_unlisted_removal
d="$tmp/$t"; fixture "$d"
sed -i '/gone.c/d' "$d/ch02-b/README.md"
if out=$("$check" "$d" 2>&1); then bad $t "passed"
elif grep -q 'src/gone.c differs' <<<"$out"; then ok $t
else bad $t "$out"; fi

t=check_fails_without_a_changes_section
d="$tmp/$t"; fixture "$d"
printf '# ch02\n' >"$d/ch02-b/README.md"
if out=$("$check" "$d" 2>&1); then bad $t "passed"
elif grep -q "no '## Changes from the previous chapter' section" <<<"$out"; then ok $t
else bad $t "$out"; fi

t=check_ignores_build_output
d="$tmp/$t"; fixture "$d"
printf 'other\n' >"$d/ch02-b/build/out.o"
mkdir -p "$d/ch02-b/data" && printf 'x' >"$d/ch02-b/data/00.store"
if out=$("$check" "$d" 2>&1); then ok $t; else bad $t "$out"; fi

t=check_fails_naming_a_target_a_chapter_does_not_answer
d="$tmp/$t"; fixture "$d"
for c in ch01-a ch02-b; do sed -i '/^check-long/d' "$d/$c/Makefile"; done
if out=$("$check" "$d" 2>&1); then bad $t "passed"
elif grep -q 'ch02-b: Makefile has no target: check-long' <<<"$out"; then ok $t
else bad $t "$out"; fi

t=check_fails_when_the_first_chapter_lacks_a_target
d="$tmp/$t"; fixture "$d"
sed -i 's/^fuzz:/fuzzing:/' "$d/ch01-a/Makefile"
if out=$("$check" "$d" 2>&1); then bad $t "passed"
elif grep -q 'ch01-a: Makefile has no target: fuzz' <<<"$out"; then ok $t
else bad $t "$out"; fi

t=check_does_not_count_a_target_only_declared_phony
d="$tmp/$t"; fixture "$d"
for c in ch01-a ch02-b; do
    sed -i '/^run/,+1d' "$d/$c/Makefile" && printf '.PHONY: run\n' >>"$d/$c/Makefile"
done
if out=$("$check" "$d" 2>&1); then bad $t "passed"
elif grep -q 'ch01-a: Makefile has no target: run' <<<"$out"; then ok $t
else bad $t "$out"; fi

t=check_fails_without_a_makefile
d="$tmp/$t"; fixture "$d"
rm "$d/ch01-a/Makefile" "$d/ch02-b/Makefile"
if out=$("$check" "$d" 2>&1); then bad $t "passed"
elif grep -q 'ch02-b: no Makefile' <<<"$out"; then ok $t
else bad $t "$out"; fi

# chapter-sync works on a git checkout: commit the fixture, then change ch01's file.
syncfixture() {
    local d=$1
    mkdir -p "$d"
    git -C "$d" init -q
    git -C "$d" config user.email t@example.invalid
    git -C "$d" config user.name test
    for c in ch01-a ch02-b ch03-c ch04-d; do
        mkdir -p "$d/$c/src"
        printf 'int v = 1;\n' >"$d/$c/src/v.c"
    done
    printf 'int v = 3; /* ch04 has its own */\n' >"$d/ch04-d/src/v.c"
    git -C "$d" add -A && git -C "$d" commit -qm fixture
    printf 'int v = 2; /* fixed */\n' >"$d/ch01-a/src/v.c"
}

t=sync_updates_later_copies_equal_to_the_old_version
d="$tmp/$t"; syncfixture "$d"
if out=$(cd "$d" && "$sync" ch01-a/src/v.c 2>&1) &&
    cmp -s "$d/ch01-a/src/v.c" "$d/ch02-b/src/v.c" && cmp -s "$d/ch01-a/src/v.c" "$d/ch03-c/src/v.c" &&
    grep -q 'own' "$d/ch04-d/src/v.c" && grep -q '2 file(s) updated' <<<"$out"; then ok $t
else bad $t "${out:-}"; fi

t=sync_leaves_a_chapter_with_its_own_version_alone_and_says_so
d="$tmp/$t"; syncfixture "$d"
out=$(cd "$d" && "$sync" ch01-a/src/v.c 2>&1)
if grep -q 'ch04-d/src/v.c: has its own version, left alone' <<<"$out" &&
    grep -q 'int v = 3' "$d/ch04-d/src/v.c"; then ok $t; else bad $t "$out"; fi

t=sync_rejects_a_missing_file
d="$tmp/$t"; syncfixture "$d"
if out=$(cd "$d" && "$sync" ch01-a/src/nope.c 2>&1); then bad $t "exit 0"
elif grep -q usage <<<"$out"; then ok $t; else bad $t "$out"; fi

t=sync_from_a_middle_chapter_only_touches_later_ones
d="$tmp/$t"; syncfixture "$d"
git -C "$d" checkout -q -- .
printf 'int v = 9;\n' >"$d/ch02-b/src/v.c"
out=$(cd "$d" && "$sync" ch02-b/src/v.c 2>&1)
if grep -q 'int v = 1;' "$d/ch01-a/src/v.c" && grep -q 'int v = 9;' "$d/ch03-c/src/v.c"; then ok $t
else bad $t "$out"; fi

echo "chapters: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
