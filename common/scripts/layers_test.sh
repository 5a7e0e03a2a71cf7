#!/usr/bin/env bash
# layers_test.sh - tests of layers-check.sh on a fixture chapter in a temporary
# directory. Prints one line per test and a summary "N passed, N failed"; exits 1
# if any failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
check="$here/layers-check.sh"
passed=0
failed=0
tmp=$(mktemp -d /tmp/plog-layers-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "[       OK ] $1"; passed=$((passed + 1)); }
bad() { echo "[  FAILED  ] $1: $2"; failed=$((failed + 1)); }

# fixture DIR: err <- rpc <- client, server; server tests use client; raft forbids I/O.
fixture() {
    local d=$1
    mkdir -p "$d"/internal/{err,rpc,client,server,raft} "$d/cmd/tool"
    printf 'int e;\n' >"$d/internal/err/err.h"
    printf '#include "internal/err/err.h"\n' >"$d/internal/rpc/wire.h"
    printf '#include "internal/rpc/wire.h"\n#include "internal/client/client.h"\n' >"$d/internal/client/client.c"
    printf 'int c;\n' >"$d/internal/client/client.h"
    printf '#include "internal/rpc/wire.h"\n#include "internal/server/server.h"\n' >"$d/internal/server/server.c"
    printf 'int s;\n' >"$d/internal/server/server.h"
    printf '#include "internal/client/client.h"\n' >"$d/internal/server/server_test.c"
    printf '#include <stdint.h>\n#include "internal/err/err.h"\n' >"$d/internal/raft/raft.c"
    printf '#include <unistd.h>\n' >"$d/internal/raft/raft_test.c"
    printf '#include "internal/client/client.h"\n' >"$d/cmd/tool/main.c"
    cat >"$d/README.md" <<'MD'
# fixture

## Dependencies between packages

```
err:
rpc: err
client: err rpc   # a comment
server: err rpc
server tests: client
raft: err
raft forbids: <unistd.h> <sys/socket.h>
cmd/tool: client
```

## Changes from the previous chapter
MD
}

run() { "$check" "$1" 2>&1; }

t=passes_when_includes_follow_the_table
d="$tmp/$t"; fixture "$d"
if out=$(run "$d") && grep -q 'ok (6 packages)' <<<"$out"; then ok $t; else bad $t "$out"; fi

t=fails_naming_an_include_the_table_does_not_allow
d="$tmp/$t"; fixture "$d"
printf '#include "internal/server/server.h"\n' >>"$d/internal/client/client.c"
if out=$(run "$d"); then bad $t "passed"
elif grep -q 'internal/client/client.c:3: includes internal/server/, not allowed for client' <<<"$out"; then ok $t
else bad $t "$out"; fi

t=test_only_dependencies_hold_only_in_test_files
d="$tmp/$t"; fixture "$d"
printf '#include "internal/client/client.h"\n' >"$d/internal/server/server_testlib.c"
out1=$(run "$d"); rc1=$?
printf '#include "internal/client/client.h"\n' >>"$d/internal/server/server.c"
out2=$(run "$d"); rc2=$?
if [ $rc1 -eq 0 ] && [ $rc2 -ne 0 ] && grep -q 'server.c:3: includes internal/client/' <<<"$out2"; then ok $t
else bad $t "$out1 / $out2"; fi

t=fails_on_a_cycle_in_the_table
d="$tmp/$t"; fixture "$d"
sed -i 's/^err:$/err: client/' "$d/README.md"
if out=$(run "$d"); then bad $t "passed"
elif grep -q 'the table has a cycle' <<<"$out"; then ok $t
else bad $t "$out"; fi

t=fails_on_a_package_missing_from_the_table
d="$tmp/$t"; fixture "$d"
mkdir -p "$d/internal/extra" && printf 'int x;\n' >"$d/internal/extra/x.c"
if out=$(run "$d"); then bad $t "passed"
elif grep -q 'package extra is not in the dependency table' <<<"$out"; then ok $t
else bad $t "$out"; fi

t=forbidden_system_include_fails_outside_tests_only
d="$tmp/$t"; fixture "$d"
out1=$(run "$d"); rc1=$?
printf '#include <sys/socket.h>\n' >>"$d/internal/raft/raft.c"
out2=$(run "$d"); rc2=$?
if [ $rc1 -eq 0 ] && [ $rc2 -ne 0 ] && grep -q 'raft.c:3: includes <sys/socket.h>, which raft forbids' <<<"$out2"; then ok $t
else bad $t "$out1 / $out2"; fi

t=programs_are_packages_too
d="$tmp/$t"; fixture "$d"
printf '#include "internal/server/server.h"\n' >>"$d/cmd/tool/main.c"
if out=$(run "$d"); then bad $t "passed"
elif grep -q 'cmd/tool/main.c:2: includes internal/server/, not allowed for cmd/tool' <<<"$out"; then ok $t
else bad $t "$out"; fi

t=names_follow_the_package_prefix_rule
d="$tmp/$t"; fixture "$d"
printf '#include "internal/err/err.h"\nint plog_rpc_wire_put(int x);\ntypedef struct plog_rpc_msg {\n    int a;\n} plog_rpc_msg;\ntypedef void (*plog_rpc_fn)(void *arg);\n' >"$d/internal/rpc/wire.h"
out1=$(run "$d"); rc1=$?
printf 'int plog_wire_put(int x);\ntypedef void (*plog_peer_fn)(void *arg);\n' >>"$d/internal/rpc/wire.h"
out2=$(run "$d"); rc2=$?
sed -i 's/^rpc: err$/rpc: err\nrpc exports: plog_wire_ plog_peer_fn/' "$d/README.md"
out3=$(run "$d"); rc3=$?
if [ $rc1 -eq 0 ] && [ $rc2 -ne 0 ] && [ $rc3 -eq 0 ] &&
    grep -q 'internal/rpc/wire.h:7: plog_wire_put is not named plog_rpc_' <<<"$out2" &&
    grep -q 'internal/rpc/wire.h:8: plog_peer_fn is not named plog_rpc_' <<<"$out2"; then ok $t
else bad $t "$out1 / $out2 / $out3"; fi

t=fails_without_a_table
d="$tmp/$t"; fixture "$d"
printf '# fixture\n' >"$d/README.md"
if out=$(run "$d"); then bad $t "passed"
elif grep -q "no '## Dependencies between packages' section" <<<"$out"; then ok $t
else bad $t "$out"; fi

echo "layers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
