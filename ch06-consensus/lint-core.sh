#!/bin/sh
# lint-core.sh DIR - fail if the Raft core's sources (DIR/*.c, *.h, minus tests,
# benches and the test library) include an I/O, clock, thread, nng or OpenSSL
# header. The core takes time only as an event field and randomness from its seed.
dir=${1:-internal/raft}
bad=0
for f in "$dir"/*.c "$dir"/*.h; do
    case "$f" in *_test.c | *_bench.c | *_testlib.c | *_testlib.h | *_fuzz.c) continue ;; esac
    if grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](unistd|pthread|time|sys/|stdio|fcntl|signal|threads|nng|openssl|sched|poll|dirent|errno)' "$f"; then
        echo "lint-core: $f includes a header the pure core may not use" >&2
        bad=1
    fi
done
exit $bad
