#!/usr/bin/env bash
# A/B comparison of two builds under the same machine conditions: both stacks (switch,
# issuer-sim, loadgen) run at the same time, each at the same fixed open-loop rate, on
# their own ports and directories. On this shared 2-core VM the speed of the machine
# drifts by 20-30 % between runs a minute apart, so sequential runs cannot show a 10 %
# change; concurrent runs see the same drift. Compare switch_cpu/tx (the other two
# processes are the same build in both, which checks that the halves were treated alike).
#
#   scripts/perf-ab.sh DIR_A DIR_B [ROUNDS] [loadgen run args...]
#   scripts/perf-ab.sh /tmp/base-bin target/release 3 --rate 15000 --connections 16 --duration 20s
#
# DIR_A and DIR_B hold switch, issuer-sim and loadgen binaries. Rounds alternate which
# build gets the first ports. Prints both summary lines (and their where-the-time-went lines) per round. EXTRA_A / EXTRA_B:
# SWITCH_EXTRA for each side (compare two settings of one build: same DIR twice).
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: scripts/perf-ab.sh DIR_A DIR_B [ROUNDS] [loadgen args...]}
B=${2:?usage: scripts/perf-ab.sh DIR_A DIR_B [ROUNDS] [loadgen args...]}
ROUNDS=${3:-3}
shift $(($# < 3 ? $# : 3))
[[ $# -gt 0 ]] || set -- --rate 15000 --connections 16 --duration 20s
for r in $(seq "$ROUNDS"); do
    if ((r % 2)); then
        first=$A second=$B fa=a fb=b ea=${EXTRA_A:-} eb=${EXTRA_B:-}
    else
        first=$B second=$A fa=b fb=a ea=${EXTRA_B:-} eb=${EXTRA_A:-}
    fi
    SWITCH_EXTRA=$ea BIN_FROM=$first PERF_DIR=/tmp/cardswitch-ab-1 PORT_BASE=16000 \
        scripts/perf-e2e.sh "$fa-$r" "$@" >/tmp/cardswitch-ab-1.line 2>&1 &
    p1=$!
    SWITCH_EXTRA=$eb BIN_FROM=$second PERF_DIR=/tmp/cardswitch-ab-2 PORT_BASE=17000 \
        scripts/perf-e2e.sh "$fb-$r" "$@" >/tmp/cardswitch-ab-2.line 2>&1 &
    p2=$!
    wait "$p1" "$p2" || true
    tail -2 /tmp/cardswitch-ab-1.line
    tail -2 /tmp/cardswitch-ab-2.line
done
