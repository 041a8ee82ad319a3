"""Reading the summary lines of scripts/perf-e2e.sh (its first line per run), for the
scripts that collect several runs (perf-pairs.sh, perf-targets.sh). The one place that
knows the line's format besides perf-e2e.sh itself."""
import re

# key: (label, pattern of the number in the summary line)
FIELDS = {
    "tps": ("tx/s", r"([0-9,]+) tx/s"),
    "p50": ("p50 ms", r"p50=([0-9.]+)ms"),
    "p99": ("p99 ms", r"p99=([0-9.]+)ms"),
    "p999": ("p99.9 ms", r"p99\.9=([0-9.]+)ms"),
    "sw": ("switch us/tx", r"switch_cpu/tx=([0-9.]+)us"),
    "is": ("issuer-sim us/tx", r"issuer_cpu/tx=([0-9.]+)us"),
    "lg": ("loadgen us/tx", r"loadgen_cpu/tx=([0-9.]+)us"),
    "lost": ("unanswered", r"unanswered=([0-9]+)"),
}


def parse(text):
    """The figures of one summary line, by FIELDS key (those found)."""
    got = {}
    for key, (_, pattern) in FIELDS.items():
        m = re.search(pattern, text)
        if m:
            got[key] = float(m.group(1).replace(",", ""))
    return got


def grouped(path):
    """Lines of `GROUP SUMMARY-LINE` (as the collecting scripts write them) by group, in
    order."""
    groups = {}
    for line in open(path):
        group, text = line.split(" ", 1)
        groups.setdefault(group, []).append(parse(text))
    return groups
