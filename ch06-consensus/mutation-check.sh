#!/bin/bash
# mutation-check.sh [SEEDS] - build the simulation once per broken rule
# (-DPLOG_RAFT_MUTATE=n, see internal/raft/core.h) and run the seeds of check-long
# until one fails. Every mutant must be caught; prints how many seeds each needed.
set -u
seeds=${1:-100000}
names=("" "commit counts replicas of a previous-term entry (§5.4.2)"
       "votes granted without the up-to-date check (§5.4.1)"
       "vote answered before it is persisted (Figure 2)"
       "entries applied before they commit (§5.3)"
       "ReadIndex reads released without a quorum round (§6.4)"
       "leader counts entries it has not persisted (thesis §10.2.1)")
status=0
for n in 1 2 3 4 5 6; do
    dir=build/mutant$n
    if ! make -s BUILD=$dir CFLAGS="-O2 -g -DPLOG_RAFT_MUTATE=$n" $dir/test/internal/raft/raft_sim_test >/dev/null; then
        echo "mutant $n: build failed"; status=1; continue
    fi
    start=$(date +%s%N)
    out=$(SEEDS=$seeds $dir/test/internal/raft/raft_sim_test 2>&1 | grep '^raft sim: seed .* failed' | head -1)
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    if [ -z "$out" ]; then
        echo "mutant $n (${names[$n]}): NOT caught in $seeds seeds"; status=1
    else
        found=$(echo "$out" | sed -E 's/.*failed after ([0-9]+) seeds.*/\1/')
        why=$(echo "$out" | sed -E 's/.*\): t=[0-9]+: //')
        printf 'mutant %d (%s): caught after %s seeds (%d ms): %s\n' "$n" "${names[$n]}" "$found" "$ms" "$why"
    fi
done
exit $status
