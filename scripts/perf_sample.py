"""Each second of a scripts/perf-e2e.sh run: RSS of the three processes (NAME.rss.tsv) and
their CPU ticks so far with the machine's steal and idle ticks (NAME.cpu.tsv), in one
process that reads /proc and spawns nothing. (The shell loop it replaces forked ~18 times a
second, pgrep and awk among them: ~3 % of a core and wake-ups on a machine being measured.)

    python3 perf_sample.py RSS_TSV CPU_TSV SWITCH_PID ISSUER_PID LOADGEN_BIN

Rows: `second, switch, issuer-sim, loadgen` (RSS in kB, 0 for a process not running) and
`second, switch, issuer-sim, loadgen, steal, idle` (ticks). loadgen is found by its command
line (`LOADGEN_BIN run ...`) once it has started. Ends when the switch does."""
import os
import sys
import time


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def ticks(pid):
    stat = read(f"/proc/{pid}/stat")
    # The command name (field 2) may hold spaces: count fields after its closing ')'.
    rest = stat[stat.rfind(b")") + 2:].split()
    try:
        return int(rest[11]) + int(rest[12])  # utime, stime (fields 14, 15)
    except (IndexError, ValueError):
        return 0


def rss_kb(pid):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith(b"VmRSS:"):
            return int(line.split()[1])
    return 0


def steal_idle():
    for line in read("/proc/stat").splitlines():
        if line.startswith(b"cpu "):
            f = line.split()
            return int(f[8]), int(f[4])
    return 0, 0


def find(binary):
    want = binary.encode() + b"\0run\0"
    for entry in os.listdir("/proc"):
        if entry.isdigit() and read(f"/proc/{entry}/cmdline").startswith(want):
            return int(entry)
    return 0


def main():
    rss_path, cpu_path, sw, issuer, loadgen_bin = sys.argv[1:6]
    sw, issuer = int(sw), int(issuer)
    loadgen = 0
    second = 0
    start = time.monotonic()
    with open(rss_path, "a") as rss_out, open(cpu_path, "a") as cpu_out:
        while os.path.exists(f"/proc/{sw}"):
            if not loadgen or not os.path.exists(f"/proc/{loadgen}"):
                loadgen = find(loadgen_bin)
            pids = (sw, issuer, loadgen)
            rss_out.write("\t".join(map(str, (second, *(rss_kb(p) if p else 0 for p in pids)))) + "\n")
            steal, idle = steal_idle()
            cpu_out.write("\t".join(map(str, (second, *(ticks(p) if p else 0 for p in pids), steal, idle))) + "\n")
            rss_out.flush()
            cpu_out.flush()
            second += 1
            time.sleep(max(0.0, start + second - time.monotonic()))


if __name__ == "__main__":
    main()
