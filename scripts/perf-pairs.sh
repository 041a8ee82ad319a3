#!/usr/bin/env bash
# (scripts/perf-ab.sh runs both builds at once at a fixed rate instead: see its header.)
# A/B comparison of two builds end to end: runs scripts/perf-e2e.sh alternately with the
# binaries of DIR_A and DIR_B (A B, B A, A B, ...: every other pair swapped, since whichever
# ran first won by ~12 % in session 17), PAIRS pairs, the same loadgen arguments, and prints
# every run's summary then the median of each figure per build. Alternating matters on this
# machine: its speed swings by 10-15 % between minutes, more than most changes, and a swing
# then hits both builds alike. Keep PAIRS even so each build goes first equally often.
#
#   scripts/perf-pairs.sh DIR_A DIR_B [loadgen run args...]
#   PAIRS=4 scripts/perf-pairs.sh /tmp/base target/release --rate max --window 64 --connections 64 --duration 20s
#
# DIR_A and DIR_B each hold switch, issuer-sim and loadgen (copy them out of target/release
# after each build). Environment as for perf-e2e.sh (SWITCH_EXTRA, SIM_THREADS, ...), plus
# PAIRS (default 4) and AB_NAME (run name prefix, default "pair"). EXTRA_A / EXTRA_B are added
# to SWITCH_EXTRA for that side only, to compare settings of one build:
#   EXTRA_A="journal.commit_interval_us = 0" PAIRS=4 scripts/perf-pairs.sh /tmp/new /tmp/new --rate max ...
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: scripts/perf-pairs.sh DIR_A DIR_B [loadgen args...]}
B=${2:?usage: scripts/perf-pairs.sh DIR_A DIR_B [loadgen args...]}
shift 2
PAIRS=${PAIRS:-4}
AB_NAME=${AB_NAME:-pair}
for d in "$A" "$B"; do
    for b in switch issuer-sim loadgen; do
        [[ -x "$d/$b" ]] || { echo "perf-pairs: $d/$b is missing" >&2; exit 1; }
    done
done
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for i in $(seq "$PAIRS"); do
    # Odd pairs run A first, even pairs B first: on this machine whichever side runs first
    # can win by ~12 % for an hour (session 17), more than most changes.
    order="A B"
    (( i % 2 == 0 )) && order="B A"
    for side in $order; do
        dir=$A
        side_extra=${EXTRA_A:-}
        [[ $side == B ]] && dir=$B && side_extra=${EXTRA_B:-}
        extra="${SWITCH_EXTRA:-}${SWITCH_EXTRA:+${side_extra:+; }}$side_extra"
        line=$(SWITCH_EXTRA=$extra BIN_FROM=$dir scripts/perf-e2e.sh "$AB_NAME-$side$i" "$@" | head -1)
        echo "$line"
        echo "$side $line" >>"$lines"
    done
done
python3 - "$lines" "$A" "$B" <<'EOF'
import statistics, sys
sys.path.insert(0, "scripts")
from perf_summary import FIELDS, grouped
path, a, b = sys.argv[1:]
runs = grouped(path)
runs.setdefault("A", []); runs.setdefault("B", [])
print(f"median of {len(runs['A'])} runs each: A = {a}, B = {b}")
print(f"{'':18} {'A':>12} {'B':>12} {'B/A':>8}")
for key, (label, _) in FIELDS.items():
    va = [r[key] for r in runs["A"] if key in r]
    vb = [r[key] for r in runs["B"] if key in r]
    if not va or not vb:
        continue
    ma, mb = statistics.median(va), statistics.median(vb)
    ratio = f"{mb / ma:.3f}" if ma else "-"
    print(f"{label:18} {ma:12,.1f} {mb:12,.1f} {ratio:>8}")
EOF
