#!/usr/bin/env python3
"""Wait until the journal's disk is quiet: appends of 16 KiB, each followed by fdatasync,
every 5 ms, until QUIET seconds pass with no fdatasync over SLOW_MS (or LIMIT seconds).

    scripts/disk_settle.py DIR [QUIET_S] [LIMIT_S]

Why: on this machine's ext4, mounted with `discard`, deleting a file makes later commits
wait for the freed blocks' discards. After a 2 GB delete (a closed-loop run's journal and
day-table runs), a journal's fdatasync took 80-170 ms in pairs every ~2.2 s for 9-11 s
(docs/performance-log.md, session 21): one such fsync at 50,000/s holds ~8,000 answers, the
p99 of a 15 s run. perf-e2e.sh deletes each run's journal when it ends, so the next run
waits here first. Prints the seconds waited and the slowest fdatasync seen (ms).
"""
import os
import sys
import time

SLOW_MS = 20
CHUNK = 16 * 1024
# The probe file is cut back to empty at this size, so that it frees (and discards) little.
WRAP = 1 << 20


def main() -> int:
    d = sys.argv[1]
    quiet = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    path = os.path.join(d, "disk-settle.probe")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    buf = b"\0" * CHUNK
    start = time.monotonic()
    last_slow = start
    worst = 0.0
    off = 0
    try:
        while True:
            now = time.monotonic()
            if now - last_slow >= quiet or now - start >= limit:
                break
            if off >= WRAP:
                os.ftruncate(fd, 0)
                off = 0
            os.pwrite(fd, buf, off)
            off += CHUNK
            t = time.monotonic()
            os.fdatasync(fd)
            took = time.monotonic() - t
            if took * 1000 > SLOW_MS:
                last_slow = time.monotonic()
            worst = max(worst, took)
            time.sleep(0.005)
    finally:
        os.close(fd)
        os.unlink(path)
    waited = time.monotonic() - start
    print(f"{waited:.1f} {worst * 1000:.0f}")
    return 0 if waited < limit else 1


if __name__ == "__main__":
    sys.exit(main())
