#!/bin/sh
# deps.sh - install the Debian packages the project needs, only those that are missing.
# Usage: deps.sh [SET|PACKAGE...]   (with no arguments: the run set)
#   run   what building and running the programs needs (make deps, make run)
#   test  what the tests add: cmocka, nngcat, protoc, curl, clang-format (make deps-test,
#         make test: fmt-check)
#   fuzz  clang and its libFuzzer runtime (make fuzz, make check-long)
# Any other word is taken as a package name. A no-op (one dpkg-query) when everything
# is present. Runs apt-get as root, else via sudo, and prints what it installs.
set -eu

run="gcc libc6-dev pkg-config libprotobuf-c-dev protobuf-c-compiler libnng-dev libssl-dev \
libcjson-dev libisal-dev libyaml-dev openssl"
test="libcmocka-dev nng-utils protobuf-compiler curl clang-format"
fuzz="clang libclang-rt-14-dev"

[ $# -gt 0 ] || set -- run
pkgs=""
for w in "$@"; do
    case $w in
        run) pkgs="$pkgs $run" ;;
        test) pkgs="$pkgs $test" ;;
        fuzz) pkgs="$pkgs $fuzz" ;;
        *) pkgs="$pkgs $w" ;;
    esac
done
# shellcheck disable=SC2086
set -- $pkgs

missing=""
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || true)
for p in "$@"; do
    echo "$installed" | grep -qx "$p installed" || missing="$missing $p"
done
[ -n "$missing" ] || exit 0

echo "deps: installing:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "deps: missing packages:$missing; run as root or install sudo" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing >&2
echo "deps: done" >&2
