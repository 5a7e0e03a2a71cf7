#!/bin/sh
# deps.sh - install the Debian packages the project needs, only those that are missing.
# Usage: deps.sh [PACKAGE...]   (with no arguments: the project's default list)
# A no-op (one dpkg-query) when everything is present. Runs apt-get as root, else via sudo.
set -eu

default="libprotobuf-c-dev protobuf-c-compiler libnng-dev libcmocka-dev libssl-dev \
libcjson-dev libisal-dev libyaml-dev pkg-config nng-utils protobuf-compiler openssl curl \
clang libclang-rt-14-dev"
[ $# -gt 0 ] || set -- $default

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
