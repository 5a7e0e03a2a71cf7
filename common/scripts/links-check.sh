#!/usr/bin/env bash
# links-check.sh [ROOT] - every Markdown link in the repository must resolve inside it.
#
# For each Markdown file (those git tracks or would track; outside a git checkout,
# every *.md but those under build/ and data/), outside fenced code blocks:
#   - an inline link [text](target) whose target is not a URL (scheme:) must name
#     a file or directory that exists, relative to the Markdown file (or to ROOT
#     when it starts with /), and must not leave ROOT;
#   - a target's #anchor into a Markdown file must exist there, as a heading
#     (GitHub's slug: lower case, punctuation dropped, spaces to -) or an
#     <a id="..."> / <a name="..."> tag; a bare #anchor refers to the file itself;
#   - link text that is one backquoted repository path containing a / (as in
#     [`common/mk/common.mk`](...)) must exist too, relative to the Markdown file
#     or to ROOT.
# Prints one line per broken link (file:line: what) and exits 1 if there is any.
set -euo pipefail

root=$(cd "${1:-.}" && pwd)
cd "$root"

md_files() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -co --exclude-standard -- '*.md' | while IFS= read -r f; do
            [ -f "$f" ] && printf '%s\n' "$f"; done
    else
        find . \( -name build -o -name data -o -name .git \) -prune -o -type f -name '*.md' -print |
            sed 's|^\./||'
    fi | LC_ALL=C sort -u
}

# links FILE: "line<TAB>text<TAB>target" for each inline link outside code fences.
links() {
    awk '
        /^[[:space:]]*(```|~~~)/ { fence = !fence; next }
        fence { next }
        {
            s = $0
            while (match(s, /\[[^]]*\]\([^)]*\)/)) {
                m = substr(s, RSTART, RLENGTH)
                s = substr(s, RSTART + RLENGTH)
                i = index(m, "](")
                text = substr(m, 2, i - 2)
                target = substr(m, i + 2, length(m) - i - 2)
                print NR "\t" text "\t" target
            }
        }' "$1"
}

# anchors FILE: every anchor the Markdown file defines, one per line.
anchors() {
    awk '
        /^[[:space:]]*(```|~~~)/ { fence = !fence; next }
        fence { next }
        /^#+[[:space:]]/ { h = $0; sub(/^#+[[:space:]]+/, "", h); sub(/[[:space:]]+#*[[:space:]]*$/, "", h); print "H\t" h }
        {
            s = $0
            while (match(s, /<a (id|name)="[^"]*"/)) {
                a = substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
                sub(/^<a (id|name)="/, "", a); sub(/"$/, "", a); print "A\t" a
            }
        }' "$1" | while IFS=$'\t' read -r kind a; do
        if [ "$kind" = H ]; then
            printf '%s\n' "$a" | LC_ALL=C tr 'A-Z' 'a-z' | LC_ALL=C sed 's/[^a-z0-9 _-]//g; s/ /-/g'
        else
            printf '%s\n' "$a"
        fi
    done
}

inside_root() { # inside_root PATH: PATH (relative to the current directory) stays under ROOT
    local p
    p=$(realpath -m -- "$1")
    [ "$p" = "$root" ] || [ "${p#"$root"/}" != "$p" ]
}

status=0
broken() { echo "links-check: $1" >&2; status=1; }

while IFS= read -r md; do
    dir=$(dirname "$md")
    while IFS=$'\t' read -r line text target; do
        # [text](<target> "title"): drop the angle brackets and the title.
        target=${target#<}; target=${target%%>*}
        target=${target%% \"*}; target=${target%% \'*}
        case $target in
            '' | [a-zA-Z]*:*) ;; # a URL (http:, https:, mailto:)
            *)
                path=${target%%#*}
                anchor=""
                [ "$path" = "$target" ] || anchor=${target#*#}
                path=${path%%\?*}
                if [ -z "$path" ]; then
                    file=$md
                elif [ "${path#/}" != "$path" ]; then
                    file=${path#/}
                elif [ "$dir" = . ]; then
                    file=$path
                else
                    file=$dir/$path
                fi
                if [ ! -e "$file" ]; then
                    broken "$md:$line: link to $target: no such file in the repository"
                elif ! inside_root "$file"; then
                    broken "$md:$line: link to $target leaves the repository"
                elif [ -n "$anchor" ] && [ "${file%.md}" != "$file" ] && [ -f "$file" ] &&
                    ! grep -qxF -- "$anchor" <<<"$(anchors "$file")"; then
                    broken "$md:$line: link to $target: no anchor #$anchor in $file"
                fi
                ;;
        esac
        # [`some/path`](...): the backquoted path must exist as well.
        case $text in
            \`*/*\`)
                p=${text#\`}; p=${p%\`}
                case $p in
                    *[[:space:]\`*?]* | [a-zA-Z]*://*) ;;
                    *)
                        p=${p%%#*}
                        if { [ -e "$dir/$p" ] && inside_root "$dir/$p"; } ||
                            { [ -e "${p#/}" ] && inside_root "${p#/}"; }; then :; else
                            broken "$md:$line: link text \`$p\` names no path in the repository"
                        fi
                        ;;
                esac
                ;;
        esac
    done < <(links "$md")
done < <(md_files)

[ $status -ne 0 ] || echo "links-check: ok ($(md_files | wc -l) Markdown files, every link resolves)"
exit $status
