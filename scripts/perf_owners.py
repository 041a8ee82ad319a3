#!/usr/bin/env python3
"""Split the switch's CPU a transaction by owner: which step of the request path each
profile sample belongs to (docs/performance.md, "The switch's transaction ... by owner").

    PERF_RECORD="-F 499 --call-graph dwarf,16384" scripts/perf-e2e.sh prof --rate max \\
        --window 64 --connections 64 --duration 10s
    scripts/perf_owners.py /tmp/cardswitch-perf/out/prof.perf.data 7.4

The second argument is the run's switch CPU a transaction (perf-e2e.sh's `switch_cpu/tx`),
used to turn shares into microseconds. Each sample goes to the innermost frame of its
stack that matches one of OWNERS (so `memmove` or `malloc` count to the step that called
them, a system call to its kernel row); samples of the journal writer outside system calls
and of the day tables' prefault thread go to those threads. Needs DWARF call graphs: with
frame pointers only, inlined steps fold into their callers.
"""
import collections
import re
import subprocess
import sys

# (owner, pattern over a frame's symbol); the first pattern a frame matches names it.
OWNERS = [
    ("day tables: duplicate keys and originals index", r"switch::daytable|switch::originals"),
    ("kernel: sendto (loopback TCP, waking the peer)", r"__x64_sys_sendto"),
    ("kernel: recvfrom", r"__x64_sys_recvfrom"),
    ("kernel: epoll_wait, futex, sleeps", r"__x64_sys_(epoll_wait|futex|clock_nanosleep|sched_yield)"),
    ("kernel: journal fdatasync, pwrite", r"__x64_sys_(fdatasync|pwrite64|write)\b"),
    ("kernel: page faults", r"exc_page_fault"),
    ("kernel: interrupts, other", r"^(asm_|irq|__sysvec|sysvec)"),
    ("decode (request and answer)", r"iso8583::message::Packet::decode|Message::decode"),
    ("rewrite and encode (forward, answer)", r"Rewrite::finish|MessageBuilder::build"),
    ("journal append on the links (encode, queue)", r"switch::actors::append|postcard"),
    ("journal writer, user", r"journal::file::Writer"),
    ("rules: registry, limits, BIN", r"registry_and_limits|BinTable::lookup|limits::"),
    ("request record (journal fields)", r"request_record"),
    ("frame writers (copy into the write buffer)", r"actix::io::FramedWrite|WriterFut"),
    ("acquirer link: on_financial's own work", r"AcquirerLink::on_financial|AcquirerLink::on_payload|on_reversal"),
    ("issuer link: on_forward's own work", r"on_forward"),
    ("issuer link: on_response's own work", r"IssuerLink::on_response"),
    ("acquirer link: answers out (outbox)", r"write_outbox|Outbox"),
    ("frame reader (tokio-util codec)", r"FramedRead|FrameCodec"),
    ("actix and tokio, with handlers inlined in them", r"actix|tokio"),
]


def owner(comm, frames, patterns):
    if comm.startswith("day-tables"):
        return "day tables: prefault thread (reserve)"
    if comm.startswith("journal-wr") and not any("__x64_sys" in f for f in frames):
        return "journal writer, user"
    for frame in frames:
        for name, pattern in patterns:
            if pattern.search(frame):
                return name
    return f"other ({comm})"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: scripts/perf_owners.py PERF_DATA SWITCH_US_PER_TX")
    data, us = sys.argv[1], float(sys.argv[2])
    out = subprocess.run(
        ["perf", "script", "-i", data, "-F", "comm,ip,sym"],
        capture_output=True, text=True, check=True,
    ).stdout
    patterns = [(n, re.compile(p)) for n, p in OWNERS]
    counts = collections.Counter()
    total = 0
    for block in out.split("\n\n"):
        lines = [l.strip() for l in block.strip().split("\n") if l.strip()]
        if len(lines) < 2:
            continue
        total += 1
        comm = lines[0].split()[0]
        frames = [re.sub(r"^[0-9a-f]+ ", "", f) for f in lines[1:]]
        counts[owner(comm, frames, patterns)] += 1
    if total == 0:
        sys.exit(f"perf_owners: no samples with call graphs in {data}")
    print("| owner | share | us a transaction |")
    print("|---|---|---|")
    for name, n in counts.most_common():
        print(f"| {name} | {100 * n / total:.1f} % | {us * n / total:.2f} |")
    print(f"\n{total} samples")


if __name__ == "__main__":
    main()
