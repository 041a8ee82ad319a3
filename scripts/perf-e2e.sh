#!/usr/bin/env bash
# End-to-end benchmark: switch, issuer-sim and loadgen as three release processes on this
# machine, bundled configuration (rules and fsync journal on), fresh journal each run.
#
#   scripts/perf-e2e.sh NAME [loadgen run args...]
#   scripts/perf-e2e.sh open50k --rate 50000 --connections 16 --duration 30s
#   scripts/perf-e2e.sh closed  --rate max --window 64 --connections 16 --duration 20s
#
# Environment: PERF_DIR (default /tmp/cardswitch-perf), PORT_BASE (15000), ISSUER_LINKS (4), DURABILITY (fsync),
# BIN_FROM=DIR (binaries from DIR, implies NO_BUILD), NO_BUILD=1 to skip `cargo build --release`, KEEP_JOURNAL=1, PERF_RECORD="-F 999" (perf record args), PERF_ALL=1 (profile the simulators too), SWITCH_EXTRA ("key = value; section.key = value; ..." set in [switch] or [section]),
# SETTLE_S (4: seconds of quiet disk to wait for before the run; 0 = do not wait), WARMUP_S (0: seconds of the same load before the measured run), ISSUER_THREADS (1) and LOADGEN_THREADS ("" = one per core): the simulators' runtime threads; SIM_THREADS sets both.
# SIM_NICE=N (issuer-sim and loadgen at nice N), SWITCH_HOOK="command" (run once the switch is up, with SW = its PID).
# Production-like memory (flat over a run): SWITCH_EXTRA="expected_daily_transactions = 20000000; reserve_day_tables = true".
# Prints a summary line (and one on where the time went, with the machine's steal and idle time) and leaves in $PERF_DIR/out/NAME.*: loadgen's JSON report, an SVG
# plot, the switch's /metrics at the end, RSS sampled every second (rss.tsv: second, then KiB of switch, issuer-sim, loadgen),
# and CPU ticks every second (cpu.tsv, see below).
# CPU per transaction = growth of utime+stime (/proc/PID/stat) over the run / answered.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NAME=${1:?usage: scripts/perf-e2e.sh NAME [loadgen args...]}
shift
PERF_DIR=${PERF_DIR:-/tmp/cardswitch-perf}
ISSUER_LINKS=${ISSUER_LINKS:-4}
# The switch takes at most 9 links per issuer (F11's last digit is the link's slot; one
# slot is the route's own): more would be refused and the run would wait for them.
if ! [[ "$ISSUER_LINKS" =~ ^[1-9]$ ]]; then
    echo "perf-e2e: ISSUER_LINKS must be 1 to 9 (got $ISSUER_LINKS)" >&2
    exit 2
fi
DURABILITY=${DURABILITY:-fsync}
OUT=$PERF_DIR/out
# PORT_BASE (default 15000): acquirer listener +1, issuer listener +2, admin +80.
PORT_BASE=${PORT_BASE:-15000}
ACQ=127.0.0.1:$((PORT_BASE + 1))
ISS=127.0.0.1:$((PORT_BASE + 2))
ADMIN=127.0.0.1:$((PORT_BASE + 80))
# A profiled run keeps its own copy of the binaries (perf resolves symbols from the files
# it saw run, and the next run would overwrite a shared copy); others share one.
BIN=$PERF_DIR/bin
[[ -n "${PERF_RECORD:-}" ]] && BIN=$OUT/$NAME.bin
mkdir -p "$OUT" "$BIN"
rm -f "$OUT/$NAME.rss.tsv" "$OUT/$NAME.cpu.tsv"

if [[ "${NO_BUILD:-}" != 1 && -z "${BIN_FROM:-}" ]]; then
    cargo build --release -q -p switch -p issuer-sim -p loadgen
fi
# BIN_FROM=DIR: take the three binaries from DIR instead (A/B runs against a saved build).
for b in switch issuer-sim loadgen; do cp -f "${BIN_FROM:-target/release}/$b" "$BIN/$b"; done

# The bundled config on fixed ports with the journal under PERF_DIR.
rm -rf "$PERF_DIR/config" "$PERF_DIR/journal" "$PERF_DIR/clearing"
sync
# SETTLE_S (default 4; 0 = skip): first wait until the disk has gone that long with no
# fdatasync over 20 ms (at most 60 s). With ext4's `discard`, the previous run's deleted
# journal (a closed loop's is gigabytes) makes fsyncs take 80-170 ms for ~5 s per GB
# deleted, and one such fsync holds every answer behind it (scripts/disk_settle.py).
SETTLED="not waited"
if [[ "${SETTLE_S:-4}" != 0 ]]; then
    if s=$(python3 scripts/disk_settle.py "$PERF_DIR" "${SETTLE_S:-4}" 60); then
        SETTLED="after ${s% *} s (slowest fdatasync ${s#* } ms)"
    else
        SETTLED="not within ${s% *} s (slowest fdatasync ${s#* } ms)"
        echo "perf-e2e: the disk did not settle within 60 s; measuring anyway" >&2
    fi
fi
export SETTLED
cp -r config "$PERF_DIR/config"
CFG=$PERF_DIR/config/switch.toml
sed -i \
    -e 's|^acquirer = .*|acquirer = "'"$ACQ"'"|' \
    -e 's|^issuer = .*|issuer = "'"$ISS"'"|' \
    -e 's|^admin = .*|admin = "'"$ADMIN"'"|' \
    -e "s|^dir = .*|dir = \"$PERF_DIR/journal\"|" \
    -e "s|^durability = .*|durability = \"$DURABILITY\"|" \
    -e 's|^level = .*|level = "warn"|' \
    -e "s|^output_dir = .*|output_dir = \"$PERF_DIR/clearing\"|" \
    "$CFG"
# SWITCH_EXTRA="key = value; journal.key2 = value2": set keys of [switch], or of the section
# named before the dot (replaced or added).
IFS=';' read -ra extra <<<"${SWITCH_EXTRA:-}"
for kv in "${extra[@]}"; do
    kv=$(echo "$kv" | sed 's/^ *//; s/ *$//')
    [[ -z "$kv" ]] && continue
    key=${kv%% *}
    section=switch
    if [[ "$key" == *.* ]]; then
        section=${key%%.*}
        key=${key#*.}
        kv="$key ${kv#* }"
    fi
    if sed -n "/^\[$section\]/,/^\[/p" "$CFG" | grep -q "^$key = "; then
        sed -i "/^\[$section\]/,/^\[/ s|^$key = .*|$kv|" "$CFG"
    else
        sed -i "/^\[$section\]/a $kv" "$CFG"
    fi
done

pids=()
# The journal and day-table runs of a long run are gigabytes: they are removed when the run
# ends (KEEP_JOURNAL=1 keeps them), so that freeing them (discards on this disk) does not
# slow the next run's fsyncs.
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ "${KEEP_JOURNAL:-}" != 1 ]]; then rm -rf "$PERF_DIR/journal"; sync; fi
}
trap cleanup EXIT

# A switch still on these ports (an earlier run still stopping, or another one) would
# answer for this one, and every figure would be another process's.
for _ in $(seq 100); do
    curl -sf "$ADMIN"/healthz >/dev/null 2>&1 || break
    sleep 0.1
done
if curl -sf "$ADMIN"/healthz >/dev/null 2>&1; then
    echo "perf-e2e: a switch already answers on $ADMIN; stop it (or set PORT_BASE)" >&2
    exit 1
fi
"$BIN/switch" run --config "$CFG" 2>"$OUT/$NAME.switch.log" &
SW=$!
pids+=("$SW")
for _ in $(seq 100); do
    curl -sf "$ADMIN"/healthz >/dev/null 2>&1 && break
    kill -0 "$SW" 2>/dev/null || break
    sleep 0.1
done
if ! kill -0 "$SW" 2>/dev/null; then
    echo "perf-e2e: the switch exited at start; see $OUT/$NAME.switch.log" >&2
    exit 1
fi
# SWITCH_HOOK="shell command": run once the switch is up, with SW set to its PID (e.g. to
# change a thread's scheduling: see docs/performance-log.md, session 8).
if [[ -n "${SWITCH_HOOK:-}" ]]; then
    SW=$SW bash -c "$SWITCH_HOOK" || { echo "perf-e2e: SWITCH_HOOK failed" >&2; exit 1; }
fi
# The simulators size their runtime from TOKIO_WORKER_THREADS (tokio's own variable):
# issuer-sim on ISSUER_THREADS (default 1), loadgen on LOADGEN_THREADS (default "": one per
# core). SIM_THREADS sets both. Measured in session 13 (50,000/s, 3 pairs): loadgen on two
# threads instead of one, p99 23.9 -> 7.8 ms and p99.9 86.6 -> 13.2 ms (one thread both
# sends and reads for every link, and waits whenever it waits for a core); issuer-sim on
# two, p99 7.6 -> 11.8 ms and 27 % more CPU a transaction.
ISSUER_THREADS=${ISSUER_THREADS-${SIM_THREADS-1}}
LOADGEN_THREADS=${LOADGEN_THREADS-${SIM_THREADS-}}
iss_env=(env)
lg_env=(env)
[[ -n "$ISSUER_THREADS" ]] && iss_env=(env TOKIO_WORKER_THREADS="$ISSUER_THREADS")
[[ -n "$LOADGEN_THREADS" ]] && lg_env=(env TOKIO_WORKER_THREADS="$LOADGEN_THREADS")
# SIM_NICE=N: run issuer-sim and loadgen at nice N (the switch stays at 0).
if [[ -n "${SIM_NICE:-}" ]]; then
    iss_env=(nice -n "$SIM_NICE" "${iss_env[@]}")
    lg_env=(nice -n "$SIM_NICE" "${lg_env[@]}")
fi
"${iss_env[@]}" "$BIN/issuer-sim" --switch "$ISS" --institution 03010000 \
    --links "$ISSUER_LINKS" --no-accounts --stats-interval-s 0 2>"$OUT/$NAME.issuer.log" &
IS=$!
pids+=("$IS")
for _ in $(seq 100); do
    n=$(curl -sf "$ADMIN"/metrics | awk '/^switch_issuer_links_signed_on\{issuer="03010000"\}/ {print $2}')
    [[ "${n:-0}" -ge "$ISSUER_LINKS" ]] && break
    sleep 0.1
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
# WARMUP_S=N: first run the same load for N seconds (its report in NAME.warmup.json), then the
# measured run on the same switch and issuer-sim, with a fresh loadgen. CPU a transaction and
# every figure come from the measured run only. A switch started a second ago has a cold heap:
# in the first 300 ms of load, 11 % of its actor threads' samples were first-touch page faults
# (write buffers, the journal's queue, inboxes, frames), and its first second's p99 was 25-57 ms
# against 10-14 ms when warm (docs/performance-log.md, session 21). The switch's /metrics at
# the end (the second summary line) count the warm-up's transactions too.
if [[ "${WARMUP_S:-0}" != 0 ]]; then
    warm_args=()
    skip=0
    for a in "$@"; do
        if [[ $skip == 1 ]]; then skip=0; continue; fi
        case "$a" in
            --duration) skip=1 ;;
            --duration=*) ;;
            *) warm_args+=("$a") ;;
        esac
    done
    "${lg_env[@]}" "$BIN/loadgen" run --target "$ACQ" --config "$CFG" --issuers 03010000 \
        --quiet --json "${warm_args[@]}" --duration "${WARMUP_S}s" >"$OUT/$NAME.warmup.json"
fi
sw0=$(cpu "$SW"); is0=$(cpu "$IS")
# Each second: RSS (rss.tsv) and CPU ticks so far (cpu.tsv: second, utime+stime of the
# switch, issuer-sim and loadgen, then the machine's steal and idle ticks from /proc/stat),
# to tell a slow second with less CPU to go round from one where each transaction cost more.
# One Python process reads /proc and spawns nothing (scripts/perf_sample.py).
# loadgen's PID once it runs, for PERF_ALL (empty before; `|| true`: pgrep's miss would end
# the script under `set -e` with pipefail).
loadgen_pid() { pgrep -f "^$BIN/loadgen run" | head -1 || true; }
python3 scripts/perf_sample.py "$OUT/$NAME.rss.tsv" "$OUT/$NAME.cpu.tsv" "$SW" "$IS" "$BIN/loadgen" &
RSSP=$!
pids+=("$RSSP")
# Load starts once the sampler has written its first row: Python's start-up is ~75 ms of CPU,
# and in the load's first 150 ms it held a core the switch's threads then waited 6-8 ms for
# (`perf sched timehist`, session 21).
for _ in $(seq 250); do
    [[ -s "$OUT/$NAME.cpu.tsv" ]] && break
    sleep 0.02
done

"${lg_env[@]}" /usr/bin/time -o "$OUT/$NAME.loadgen.time" -f "%U %S" "$BIN/loadgen" run --target "$ACQ" --config "$CFG" --issuers 03010000 \
    --quiet --json --plot "$OUT/$NAME.svg" "$@" >"$OUT/$NAME.json" &
LG=$!
# PERF_RECORD="perf record args": profile the switch for the whole load (perf.data in OUT);
# PERF_ALL=1 profiles the simulators as well (`perf report --sort comm,dso` tells them apart).
if [[ -n "${PERF_RECORD:-}" ]]; then
    PERF_PIDS=$SW
    if [[ "${PERF_ALL:-}" == 1 ]]; then
        # $LG is /usr/bin/time; loadgen is its child.
        for _ in $(seq 100); do
            lgp=$(loadgen_pid)
            [[ -n "$lgp" ]] && break
            sleep 0.05
        done
        PERF_PIDS="$SW,$IS${lgp:+,$lgp}"
    fi
    # shellcheck disable=SC2086
    perf record $PERF_RECORD -o "$OUT/$NAME.perf.data" -p "$PERF_PIDS" 2>"$OUT/$NAME.perf.log" &
    PR=$!
fi
wait "$LG"
if [[ -n "${PERF_RECORD:-}" ]]; then kill -INT "$PR"; wait "$PR" || true; fi
sw1=$(cpu "$SW"); is1=$(cpu "$IS")
curl -sf "$ADMIN"/metrics >"$OUT/$NAME.metrics" || true

python3 - "$OUT/$NAME.json" "$OUT/$NAME.rss.tsv" "$TICK" "$((sw1 - sw0))" "$((is1 - is0))" "$NAME" "$OUT/$NAME.loadgen.time" "$OUT/$NAME.metrics" "$OUT/$NAME.cpu.tsv" <<'EOF'
import json, os, re, sys
report, rss, tick, sw, iss, name, lgtime, metrics, cputsv = sys.argv[1:]
try:
    lg = sum(float(x) for x in open(lgtime).read().split()[-2:])
except (OSError, ValueError):
    lg = 0.0
r = json.load(open(report))
tick, sw, iss = int(tick), int(sw), int(iss)
n = max(r["answered"], 1)
lat = r["latency_ms"] or {}
kib = [int(l.split()[1]) for l in open(rss) if len(l.split()) == 4]
print(f"{name}: {r['throughput']:,.0f} tx/s answered={r['answered']:,} unanswered={r['unanswered']} "
      f"p50={lat.get('p50')}ms p90={lat.get('p90')}ms p99={lat.get('p99')}ms p99.9={lat.get('p99_9')}ms max={lat.get('max')}ms "
      f"switch_cpu/tx={sw / tick / n * 1e6:.1f}us issuer_cpu/tx={iss / tick / n * 1e6:.1f}us loadgen_cpu/tx={lg / n * 1e6:.1f}us "
      f"switch_rss_MiB start={kib[0] // 1024 if kib else 0} max={max(kib) // 1024 if kib else 0} end={kib[-1] // 1024 if kib else 0} "
      f"codes={r['by_code']}")
# Where the time went, from the switch's own figures: its latency (request read -> issuer
# answer read; the bucket the 99th percentile falls in), the answers' wait (ready -> written
# to the acquirer: the journal's commit and the hand-over), loadgen's send lag, and the
# largest journal batch (a batch near the 4,096 cap means the writer waited for a core), and
# the fsyncs over 100 ms (every answer of such a stall waits it out: one 400 ms fsync at
# 50,000/s holds 20,000 answers, the p99 of a 15 s run).
try:
    text = open(metrics).read()
    def buckets_of(histogram):
        return [(float(le), int(float(c))) for le, c in
                re.findall(r'^' + histogram + r'_bucket\{le="([0-9.e+-]+)"\} (\S+)', text, re.M)]
    def p99_of(histogram):
        """The upper bound (ms) of the bucket the histogram's 99th percentile falls in."""
        buckets = buckets_of(histogram)
        total = buckets[-1][1] if buckets else 0
        le = next((le for le, c in buckets if total and c >= 0.99 * total), None)
        return le * 1000 if le is not None else '?'
    fsyncs = buckets_of("journal_fsync_seconds")
    slow = (fsyncs[-1][1] - next((c for le, c in fsyncs if le >= 0.1), fsyncs[-1][1])) if fsyncs else 0
    slowest = next((le for le, c in fsyncs if c == fsyncs[-1][1]), 0) if fsyncs and fsyncs[-1][1] else 0
    batch = re.search(r'^journal_batch_records\{quantile="1"\} (\S+)', text, re.M)
    lag = r.get("send_lag_ms") or {}
    # The machine while loadgen ran (cpu.tsv rows with loadgen's ticks): the hypervisor's
    # steal and the idle time, as shares of all CPUs. A slow run with the same shares as a
    # fast one cost more a transaction; one with more steal had less machine.
    rows = [[int(x) for x in l.split()] for l in open(cputsv) if len(l.split()) == 6]
    rows = [r for r in rows if r[3] > 0]
    machine = ""
    if len(rows) >= 2:
        span = (rows[-1][0] - rows[0][0]) * int(tick) * (os.cpu_count() or 1)
        steal, idle = rows[-1][4] - rows[0][4], rows[-1][5] - rows[0][5]
        machine = f", machine steal {100 * steal / span:.1f} % idle {100 * idle / span:.1f} %"
    print(f"{name}: switch p99 <= {p99_of('switch_latency_seconds')} ms (request -> issuer answer), "
          f"answer wait p99 <= {p99_of('switch_answer_wait_seconds')} ms (answer -> written: journal, hand-over), "
          f"loadgen send lag p99 {lag.get('p99')} ms, largest journal batch {batch.group(1) if batch else '?'} records, "
          f"fsyncs > 100 ms {slow} (slowest <= {slowest * 1000:g} ms){machine}, "
          f"disk settled {os.environ.get('SETTLED', '?')}")
except (OSError, ValueError, IndexError, ZeroDivisionError):
    pass
EOF
