//! Journal tests: this file is declared `#[cfg(test)] mod tests;` in `mod.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::unbounded;
use proptest::prelude::*;

use super::format::{HEADER_LEN, RECORD_OVERHEAD};
use super::*;

fn opts() -> JournalOptions {
    JournalOptions::default()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn payload(i: usize) -> Bytes {
    Bytes::from(format!("record-{i}").repeat(1 + i % 5))
}

/// Appends record `i` with a completion that reports its result on the returned channel.
fn append_watched(
    j: &dyn Journal,
    i: usize,
) -> crossbeam_channel::Receiver<Result<(), JournalError>> {
    let (tx, rx) = unbounded();
    j.append(
        (i % 7) as u8,
        Payload::copy_from_slice(&payload(i)),
        Some(Box::new(move |r| tx.send(r).unwrap())),
    );
    rx
}

/// Appends `n` records with a completion each and waits for all of them.
fn append_and_wait(j: &dyn Journal, n: usize, first: usize) {
    let done: Vec<_> = (first..first + n).map(|i| append_watched(j, i)).collect();
    for rx in done {
        rx.recv().unwrap().unwrap();
    }
}

/// Appends record 0 with a completion that holds the writer until the returned gate is
/// sent to, and returns once the writer is inside it: what is appended meanwhile queues.
fn hold_writer(j: &dyn Journal) -> crossbeam_channel::Sender<()> {
    let (held_tx, held_rx) = crossbeam_channel::bounded::<()>(0);
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    j.append(
        0,
        payload(0).into(),
        Some(Box::new(move |_| {
            held_tx.send(()).unwrap();
            gate_rx.recv().unwrap();
        })),
    );
    held_rx.recv().unwrap();
    gate_tx
}

/// The journal in `dir` replays exactly records `0..n`, in order.
fn assert_replays(dir: &Path, n: usize) {
    let replay = read_all(dir).unwrap();
    assert_eq!(replay.records.len(), n);
    check_records(&replay.records, 0);
}

/// A journal in `dir` that writes without syncing (`Durability::Buffered`).
fn buffered_journal(dir: &Path) -> FileJournal {
    let buffered = JournalOptions {
        durability: Durability::Buffered,
        ..opts()
    };
    FileJournal::open(dir, buffered).unwrap().0
}

/// Appends `payload` as a kind-1 record and waits until it is written.
fn append_one(j: &dyn Journal, payload: Bytes) {
    let (tx, rx) = unbounded();
    j.append(
        1,
        payload.into(),
        Some(Box::new(move |r| tx.send(r).unwrap())),
    );
    rx.recv().unwrap().unwrap();
}

/// A journal in `dir` whose queue holds `capacity` records and whose appends wait up to
/// `enqueue_timeout` for room.
fn small_queue(dir: &Path, capacity: usize, enqueue_timeout: std::time::Duration) -> FileJournal {
    let options = JournalOptions {
        queue_capacity: capacity,
        enqueue_timeout,
        ..opts()
    };
    FileJournal::open(dir, options).unwrap().0
}

fn check_records(records: &[Record], first: usize) {
    for (k, r) in records.iter().enumerate() {
        let i = first + k;
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.kind, (i % 7) as u8);
        assert_eq!(r.payload, payload(i));
    }
}

#[test]
fn concurrent_appends_round_trip() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let (j, replay) = FileJournal::open(dir.path(), opts()).unwrap();
    assert!(replay.records.is_empty());
    assert_eq!(replay.summary.next_seq, 1);
    let j = Arc::new(j);
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = unbounded();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (j, calls, tx) = (Arc::clone(&j), Arc::clone(&calls), tx.clone());
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let (calls, tx) = (Arc::clone(&calls), tx.clone());
                    let body = Bytes::from(format!("{t}:{i}"));
                    j.append(
                        t as u8,
                        Payload::copy_from_slice(&body),
                        Some(Box::new(move |r| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tx.send(r).unwrap();
                        })),
                    );
                }
            });
        }
    });
    drop(tx);
    j.close().unwrap();
    let results: Vec<_> = rx.iter().collect();
    assert_eq!(results.len(), THREADS * PER_THREAD);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(calls.load(Ordering::SeqCst), THREADS * PER_THREAD);
    assert_eq!(j.stats().records, (THREADS * PER_THREAD) as u64);
    drop(j);

    let (j, replay) = FileJournal::open(dir.path(), opts()).unwrap();
    assert_eq!(replay.summary.records, (THREADS * PER_THREAD) as u64);
    assert_eq!(replay.summary.torn_records, 0);
    assert_eq!(replay.summary.next_seq, (THREADS * PER_THREAD) as u64 + 1);
    let mut next = [0usize; THREADS];
    for (k, r) in replay.records.iter().enumerate() {
        assert_eq!(r.seq, k as u64 + 1);
        let t = r.kind as usize;
        // Each thread's records keep the order it appended them in.
        assert_eq!(r.payload, Bytes::from(format!("{t}:{}", next[t])));
        next[t] += 1;
    }
    assert_eq!(next, [PER_THREAD; THREADS]);
    drop(j);
}

/// Both ways a segment grows: appending (`zero_fill_ahead = 0`) and overwriting zeros.
const ZERO_FILL: [u64; 2] = [0, 1 << 20];

/// A write that stopped at `from`: appended, the file ends there; zero-filled, zeros remain.
fn tear(data: &mut Vec<u8>, from: usize, end: usize, zero_fill: u64) {
    if zero_fill == 0 {
        data.truncate(from);
    } else {
        data[from..end].fill(0);
    }
}

#[test]
fn torn_tail_truncated_is_ignored_and_repaired() {
    for zero_fill in ZERO_FILL {
        torn_tail_case(zero_fill, |data, end| tear(data, end - 3, end, zero_fill));
    }
}

#[test]
fn torn_tail_checksum_mismatch_is_ignored_and_repaired() {
    for zero_fill in ZERO_FILL {
        torn_tail_case(zero_fill, |data, end| data[end - 4 - 1] ^= 0x40);
    }
}

#[test]
fn torn_tail_partial_header_is_ignored() {
    // Only a few bytes of the last record's length field made it to disk.
    for zero_fill in ZERO_FILL {
        torn_tail_case(zero_fill, |data, end| {
            let last_len = RECORD_OVERHEAD + payload(9).len();
            tear(data, end - last_len + 2, end, zero_fill);
        });
    }
}

/// Ten records, then `damage(file bytes, end of the records)` to the last segment.
fn torn_tail_case(zero_fill: u64, damage: impl Fn(&mut Vec<u8>, usize)) {
    let opts = || JournalOptions {
        zero_fill_ahead: zero_fill,
        ..opts()
    };
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    append_and_wait(&j, 10, 0);
    drop(j);
    let end = read_all(dir.path()).unwrap().summary.bytes as usize;
    let segs = segments(dir.path());
    let last = segs.last().unwrap();
    let mut data = fs::read(last).unwrap();
    assert_eq!(
        data.len() > end,
        zero_fill > 0,
        "zeros follow the records when zero-filling"
    );
    damage(&mut data, end);
    fs::write(last, data).unwrap();

    // Read-only replay reports the tear but does not repair.
    let ro = read_all(dir.path()).unwrap();
    assert_eq!(ro.records.len(), 9);
    assert_eq!(ro.summary.torn_records, 1);

    let (j, replay) = FileJournal::open(dir.path(), opts()).unwrap();
    assert_eq!(replay.records.len(), 9);
    check_records(&replay.records, 0);
    assert_eq!(replay.summary.torn_records, 1);
    assert!(replay.summary.torn_bytes > 0);
    assert_eq!(replay.summary.next_seq, 10);
    // Record 9 (seq 10) was torn; appending it again gives it seq 10 again.
    append_and_wait(&j, 2, 9);
    drop(j);

    let replay = read_all(dir.path()).unwrap();
    assert_eq!(replay.summary.torn_records, 0);
    assert_eq!(replay.records.len(), 11);
    check_records(&replay.records, 0);
}

#[test]
fn a_zero_filled_tail_is_the_clean_end_and_is_kept_and_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || JournalOptions {
        zero_fill_ahead: 4096,
        ..opts()
    };
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    append_and_wait(&j, 5, 0);
    drop(j);
    let seg = segments(dir.path()).pop().unwrap();
    let file_len = fs::metadata(&seg).unwrap().len();
    let replay = read_all(dir.path()).unwrap();
    assert_eq!(replay.records.len(), 5);
    assert_eq!(
        replay.summary.torn_records, 0,
        "zeros past the data are no tear"
    );
    let data_end = replay.summary.bytes;
    assert!(file_len >= data_end + 2048, "{file_len} vs {data_end}");

    // Reopening keeps the zeros; new records overwrite them instead of growing the file.
    let (j, replay) = FileJournal::open(dir.path(), opts()).unwrap();
    assert_eq!(replay.summary.torn_records, 0);
    assert_eq!(fs::metadata(&seg).unwrap().len(), file_len);
    append_and_wait(&j, 3, 5);
    assert_eq!(fs::metadata(&seg).unwrap().len(), file_len);
    drop(j);
    let replay = read_all(dir.path()).unwrap();
    assert_eq!(replay.records.len(), 8);
    check_records(&replay.records, 0);
    assert!(replay.summary.bytes > data_end);
}

/// Small segments zero-filled 1 KiB ahead: a roll every few dozen records.
fn rolling_zero_filled() -> JournalOptions {
    JournalOptions {
        segment_size: 4096,
        zero_fill_ahead: 1024,
        ..opts()
    }
}

/// Records `0..n`, each its own batch, so the writer zero-fills between them.
fn append_one_by_one(j: &FileJournal, n: usize) {
    for i in 0..n {
        append_and_wait(j, 1, i);
    }
}

#[test]
fn zero_filled_segments_are_cut_to_their_records_when_rolled() {
    let dir = tempfile::tempdir().unwrap();
    let opts = rolling_zero_filled;
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    append_one_by_one(&j, 300);
    drop(j);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{} segments", segs.len());
    // Every segment but the last ends with its last record: replay would call zeros in an
    // earlier segment corruption.
    let replay = read_all(dir.path()).unwrap();
    assert_eq!(replay.records.len(), 300);
    check_records(&replay.records, 0);
    assert_eq!(replay.summary.torn_records, 0);
    let on_disk: u64 = segs.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    let last = fs::metadata(segs.last().unwrap()).unwrap().len();
    assert!(
        on_disk - last < replay.summary.bytes,
        "only the last segment has zeros past its records"
    );
    let (j, replay) = FileJournal::open(dir.path(), opts()).unwrap();
    assert_eq!(replay.records.len(), 300);
    append_and_wait(&j, 1, 300);
    drop(j);

    // Zeros past the segment size (filled under a larger one): the roll cuts them too.
    let (j, _) = FileJournal::open(
        dir.path(),
        JournalOptions {
            segment_size: 1 << 20,
            zero_fill_ahead: 64 << 10,
            ..opts()
        },
    )
    .unwrap();
    append_and_wait(&j, 1, 301);
    drop(j);
    let before = segments(dir.path()).len();
    let small = JournalOptions {
        segment_size: 64,
        ..opts()
    };
    let (j, _) = FileJournal::open(dir.path(), small).unwrap();
    append_and_wait(&j, 1, 302);
    assert_eq!(segments(dir.path()).len(), before + 1, "rolled");
    drop(j);
    assert_replays(dir.path(), 303);
}

#[test]
/// A zero-fill is only an optimisation: writes of it that fail halfway (a disk filling up)
/// lose no record, stop no batch and leave every segment readable.
fn zero_fill_writes_failing_halfway_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), rolling_zero_filled()).unwrap();
    // Every zero-fill writes half its zeros, then fails (a disk filling up).
    j.inject_zero_fill_faults();
    append_one_by_one(&j, 300);
    drop(j);
    assert!(segments(dir.path()).len() >= 3);
    let replay = read_all(dir.path()).unwrap();
    assert_eq!(replay.records.len(), 300);
    check_records(&replay.records, 0);
    assert_eq!(replay.summary.torn_records, 0);
}

#[test]
fn segments_roll_and_sequence_continues_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let small = JournalOptions {
        segment_size: 1, // every batch after the first starts a new segment
        ..opts()
    };
    let (j, _) = FileJournal::open(dir.path(), small.clone()).unwrap();
    for i in 0..5 {
        append_and_wait(&j, 1, i);
    }
    drop(j);
    assert_eq!(segments(dir.path()).len(), 5);

    let (j, replay) = FileJournal::open(dir.path(), small.clone()).unwrap();
    assert_eq!(replay.summary.segments, 5);
    assert_eq!(replay.summary.next_seq, 6);
    check_records(&replay.records, 0);
    for i in 5..8 {
        append_and_wait(&j, 1, i);
    }
    drop(j);
    assert_eq!(segments(dir.path()).len(), 8);

    let replay = read_all(dir.path()).unwrap();
    assert_eq!(replay.records.len(), 8);
    check_records(&replay.records, 0);

    // A larger limit groups several records per segment.
    let dir = tempfile::tempdir().unwrap();
    let medium = JournalOptions {
        segment_size: (HEADER_LEN + 3 * (RECORD_OVERHEAD + 40)) as u64,
        ..opts()
    };
    let (j, _) = FileJournal::open(dir.path(), medium).unwrap();
    for i in 0..20 {
        append_and_wait(&j, 1, i);
    }
    drop(j);
    let n = segments(dir.path()).len();
    assert!(n > 2 && n < 20, "{n} segments");
    check_records(&read_all(dir.path()).unwrap().records, 0);
}

#[test]
fn corruption_in_a_non_last_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let small = JournalOptions {
        segment_size: 1,
        ..opts()
    };
    let (j, _) = FileJournal::open(dir.path(), small.clone()).unwrap();
    for i in 0..3 {
        append_and_wait(&j, 1, i);
    }
    drop(j);
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 3);
    let mut data = fs::read(&segs[1]).unwrap();
    data[HEADER_LEN + RECORD_OVERHEAD - 4] ^= 1; // first payload byte
    fs::write(&segs[1], &data).unwrap();

    let err = FileJournal::open(dir.path(), small).err().unwrap();
    assert!(
        matches!(&err, JournalError::Corrupt { path, offset, .. }
            if *path == segs[1] && *offset == HEADER_LEN as u64),
        "{err}"
    );
    assert!(matches!(
        read_all(dir.path()),
        Err(JournalError::Corrupt { .. })
    ));
}

#[test]
fn missing_middle_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let small = JournalOptions {
        segment_size: 1,
        ..opts()
    };
    let (j, _) = FileJournal::open(dir.path(), small).unwrap();
    for i in 0..3 {
        append_and_wait(&j, 1, i);
    }
    drop(j);
    fs::remove_file(&segments(dir.path())[1]).unwrap();
    assert!(matches!(
        read_all(dir.path()),
        Err(JournalError::Corrupt { .. })
    ));
}

#[test]
fn group_commit_batches_concurrent_appends() {
    const N: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    // Hold the writer inside the first record's completion until everything else is queued,
    // which makes the batching deterministic without sleeping.
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let (done_tx, done_rx) = unbounded();
    let first_done = done_tx.clone();
    j.append(
        0,
        payload(0).into(),
        Some(Box::new(move |r| {
            gate_rx.recv().unwrap();
            first_done.send(r).unwrap();
        })),
    );
    let j = Arc::new(j);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (j, done_tx) = (Arc::clone(&j), done_tx.clone());
            s.spawn(move || {
                for i in 0..N / 4 {
                    let done_tx = done_tx.clone();
                    j.append(
                        1,
                        Payload::copy_from_slice(format!("{t}:{i}").as_bytes()),
                        Some(Box::new(move |r| done_tx.send(r).unwrap())),
                    );
                }
            });
        }
    });
    gate_tx.send(()).unwrap();
    for _ in 0..=N {
        done_rx.recv().unwrap().unwrap();
    }
    let stats = j.stats();
    assert_eq!(stats.records, N as u64 + 1);
    // One batch for the first record, then at most ceil(2000 / 4096) for the rest.
    assert!(stats.batches <= 2, "{stats:?}");
    assert_eq!(stats.fsyncs, stats.batches);
    assert_eq!(stats.write_errors, 0);
}

#[test]
fn failed_batch_is_reported_cut_off_and_writer_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    append_and_wait(&j, 3, 0);
    j.inject_write_faults(1);
    let (tx, rx) = unbounded();
    j.append(
        9,
        Bytes::from_static(b"lost").into(),
        Some(Box::new(move |r| tx.send(r).unwrap())),
    );
    match rx.recv().unwrap() {
        Err(JournalError::Io { path, .. }) => assert_eq!(path, segments(dir.path())[0]),
        other => panic!("{other:?}"),
    }
    // The next flush reports the failure once; later ones are clean again.
    assert!(matches!(j.flush_blocking(), Err(JournalError::Io { .. })));
    j.flush_blocking().unwrap();
    // The half-written batch was cut off and its seq reused: no gap, no garbage.
    append_and_wait(&j, 2, 3);
    let stats = j.stats();
    assert_eq!((stats.records, stats.write_errors), (5, 1));
    drop(j);
    let replay = read_all(dir.path()).unwrap();
    assert_eq!(replay.summary.torn_records, 0);
    assert_eq!(replay.records.len(), 5);
    check_records(&replay.records, 0);
}

#[test]
fn batches_respect_caps() {
    let dir = tempfile::tempdir().unwrap();
    let capped = JournalOptions {
        max_batch_records: 10,
        ..opts()
    };
    let (j, _) = FileJournal::open(dir.path(), capped).unwrap();
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    j.append(
        0,
        payload(0).into(),
        Some(Box::new(move |_| gate_rx.recv().unwrap())),
    );
    for i in 1..=100 {
        j.append(1, payload(i).into(), None);
    }
    gate_tx.send(()).unwrap();
    j.flush_blocking().unwrap();
    let stats = j.stats();
    assert_eq!(stats.records, 101);
    assert_eq!(stats.batches, 11);
}

/// The byte cap counts encoded records (payload plus framing): a batch closes at the record
/// that reaches it, and every record still lands once, numbered in order.
#[test]
fn batches_close_at_the_byte_cap() {
    const N: usize = 30;
    let record = RECORD_OVERHEAD + 8;
    let dir = tempfile::tempdir().unwrap();
    let capped = JournalOptions {
        // Three 8-byte records reach it; two do not.
        max_batch_bytes: 3 * record,
        ..opts()
    };
    let (j, _) = FileJournal::open(dir.path(), capped).unwrap();
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    j.append(
        0,
        Bytes::from_static(b"gate-000").into(),
        Some(Box::new(move |_| gate_rx.recv().unwrap())),
    );
    for i in 1..=N {
        j.append(1, Bytes::from(format!("rec-{i:04}")).into(), None);
    }
    gate_tx.send(()).unwrap();
    j.flush_blocking().unwrap();
    let stats = j.stats();
    assert_eq!(stats.records, N as u64 + 1);
    // The gate record alone, then N records three to a batch.
    assert_eq!(stats.batches, 1 + N as u64 / 3, "{stats:?}");
    assert_eq!(stats.bytes, ((N + 1) * record) as u64);
    drop(j);
    let replay = read_all(dir.path()).unwrap();
    let seqs: Vec<u64> = replay.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=N as u64 + 1).collect::<Vec<_>>());
    for (i, r) in replay.records.iter().enumerate().skip(1) {
        assert_eq!(&r.payload[..], format!("rec-{i:04}").as_bytes());
    }
}

/// Every fsync at or over the threshold is counted; none is without a threshold.
#[test]
fn slow_fsyncs_are_counted_against_the_threshold() {
    for (threshold, all_slow) in [(Some(Duration::ZERO), true), (None, false)] {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions {
            slow_sync: threshold,
            ..opts()
        };
        let (j, _) = FileJournal::open(dir.path(), options).unwrap();
        for i in 0..3 {
            append_and_wait(&j, 1, i);
        }
        let stats = j.stats();
        assert!(stats.fsyncs >= 3, "{stats:?}");
        let want = if all_slow { stats.fsyncs } else { 0 };
        assert_eq!(stats.slow_fsyncs, want, "threshold {threshold:?}");
    }
}

/// What waits for the writer is reported, and nothing once it has caught up.
#[test]
fn the_queue_depth_counts_what_the_writer_has_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    assert_eq!(j.queued(), 0);
    let gate_tx = hold_writer(&j);
    for i in 1..=100 {
        j.append((i % 7) as u8, payload(i).into(), None);
    }
    assert_eq!(j.queued(), 100);
    gate_tx.send(()).unwrap();
    j.flush_blocking().unwrap();
    assert_eq!(j.queued(), 0);
    assert_eq!(j.stats().records, 101);
}

#[test]
fn buffered_mode_flush_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let j = buffered_journal(dir.path());
    for i in 0..50 {
        j.append((i % 7) as u8, payload(i).into(), None);
    }
    j.flush_blocking().unwrap();
    assert_eq!(j.stats().records, 50);
    let fsyncs = j.stats().fsyncs;
    assert!(fsyncs >= 1 && fsyncs < j.stats().batches + 1);
    for i in 50..60 {
        j.append((i % 7) as u8, payload(i).into(), None);
    }
    drop(j); // close writes and syncs what is still queued
    check_records(&read_all(dir.path()).unwrap().records, 0);
    assert_eq!(read_all(dir.path()).unwrap().records.len(), 60);
}

#[test]
fn append_after_close_reports_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    j.close().unwrap();
    j.close().unwrap();
    let (tx, rx) = unbounded();
    j.append(
        1,
        payload(1).into(),
        Some(Box::new(move |r| tx.send(r).unwrap())),
    );
    assert!(matches!(rx.recv().unwrap(), Err(JournalError::Closed)));
    assert!(matches!(j.flush_blocking(), Err(JournalError::Closed)));
}

#[test]
fn oversized_payload_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    let (tx, rx) = unbounded();
    let big = Bytes::from(vec![0u8; MAX_PAYLOAD_LEN + 1]);
    j.append(1, big.into(), Some(Box::new(move |r| tx.send(r).unwrap())));
    assert!(matches!(
        rx.recv().unwrap(),
        Err(JournalError::TooLarge { .. })
    ));
}

#[test]
fn flush_from_completion_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    let j = Arc::new(j);
    let (tx, rx) = unbounded();
    let inner = Arc::clone(&j);
    j.append(
        1,
        payload(1).into(),
        Some(Box::new(move |_| tx.send(inner.flush_blocking()).unwrap())),
    );
    assert!(matches!(
        rx.recv().unwrap(),
        Err(JournalError::WouldDeadlock)
    ));
}

#[test]
fn last_handle_dropped_in_completion_still_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    let j = Arc::new(j);
    let (tx, rx) = unbounded();
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let holder = Arc::clone(&j);
    j.append(
        0,
        payload(0).into(),
        Some(Box::new(move |_| {
            gate_rx.recv().unwrap();
            drop(holder); // the last handle, dropped on the writer thread
        })),
    );
    for i in 1..10 {
        let tx = tx.clone();
        j.append(
            (i % 7) as u8,
            Payload::copy_from_slice(&payload(i)),
            Some(Box::new(move |r| tx.send(r).unwrap())),
        );
    }
    drop(j);
    gate_tx.send(()).unwrap();
    for _ in 1..10 {
        rx.recv().unwrap().unwrap();
    }
    // All completions ran, so all records are written; the writer syncs as it exits.
    let replay = read_all(dir.path()).unwrap();
    assert_eq!(replay.records.len(), 10);
    check_records(&replay.records, 0);
}

#[test]
fn stale_tmp_segment_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    append_and_wait(&j, 3, 0);
    drop(j);
    let tmp = dir.path().join("journal-000002.log.tmp");
    fs::write(&tmp, b"partial").unwrap();
    let (j, replay) = FileJournal::open(dir.path(), opts()).unwrap();
    assert_eq!(replay.records.len(), 3);
    assert!(!tmp.exists());
    drop(j);
}

#[test]
fn record_debug_hides_payload() {
    let r = Record {
        seq: 1,
        kind: 2,
        payload: Bytes::from_static(b"4111111111111111"),
    };
    let shown = format!("{r:?}");
    assert!(!shown.contains("4111"), "{shown}");
}

#[test]
fn memory_journal_records_and_fails_on_demand() {
    let j = MemoryJournal::new();
    append_and_wait(&j, 5, 0);
    check_records(&j.records(), 0);
    j.set_failing(true);
    let (tx, rx) = unbounded();
    j.append(
        1,
        payload(9).into(),
        Some(Box::new(move |r| tx.send(r).unwrap())),
    );
    assert!(rx.recv().unwrap().is_err());
    assert_eq!(j.len(), 5);
    j.flush_blocking().unwrap();
}

#[test]
fn durability_serde_names() {
    #[derive(serde::Deserialize)]
    struct C {
        d: Durability,
    }
    let c: C = toml::from_str("d = \"buffered\"").unwrap();
    assert_eq!(c.d, Durability::Buffered);
    let c: C = toml::from_str("d = \"fsync\"").unwrap();
    assert_eq!(c.d, Durability::Fsync);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn arbitrary_payloads_round_trip(
        records in proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)),
            0..60,
        ),
        segment_size in 1u64..4096,
        flush_every in 1usize..20,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions {
            durability: Durability::Buffered,
            segment_size,
            ..opts()
        };
        let (j, _) = FileJournal::open(dir.path(), options).unwrap();
        for (i, (kind, body)) in records.iter().enumerate() {
            j.append(*kind, Bytes::from(body.clone()).into(), None);
            if i % flush_every == 0 {
                j.flush_blocking().unwrap();
            }
        }
        drop(j);
        let replay = read_all(dir.path()).unwrap();
        prop_assert_eq!(replay.summary.torn_records, 0);
        prop_assert_eq!(replay.records.len(), records.len());
        for (i, (r, (kind, body))) in replay.records.iter().zip(&records).enumerate() {
            prop_assert_eq!(r.seq, i as u64 + 1);
            prop_assert_eq!(r.kind, *kind);
            prop_assert_eq!(&r.payload[..], &body[..]);
        }
    }
}

#[test]
fn payloads_up_to_the_inline_size_live_inside_and_longer_ones_are_shared() {
    for (len, inline) in [
        (0, true),
        (INLINE_PAYLOAD, true),
        (INLINE_PAYLOAD + 1, false),
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let p = Payload::copy_from_slice(&data);
        assert_eq!(p.is_inline(), inline, "{len}");
        assert_eq!(p.as_slice(), &data[..], "{len}");
        assert_eq!(p.len(), len);
        assert_eq!(&p.into_bytes()[..], &data[..], "{len}");
    }
    // An inline payload never claims more bytes than it holds.
    assert!(Payload::inline([0; INLINE_PAYLOAD], INLINE_PAYLOAD + 1).is_none());
}

/// A journal with fsync durability and a commit interval that ends only when the test says:
/// `started` gets a message each time the writer starts waiting for an interval's end, and
/// `end` ends it.
struct HeldJournal {
    journal: FileJournal,
    started: crossbeam_channel::Receiver<()>,
    end: crossbeam_channel::Sender<std::time::Instant>,
}

fn held_journal(dir: &Path) -> HeldJournal {
    let (started_tx, started) = unbounded();
    let (end, end_rx) = unbounded();
    let timer: file::IntervalTimer = Box::new(move |_deadline| {
        started_tx.send(()).unwrap();
        end_rx.clone()
    });
    let options = JournalOptions {
        durability: Durability::Fsync,
        // Long enough that only the test ends an interval.
        commit_interval: std::time::Duration::from_secs(3600),
        ..opts()
    };
    let (journal, _) = FileJournal::open_timed(dir, options, |_| {}, timer).unwrap();
    HeldJournal {
        journal,
        started,
        end,
    }
}

const GUARD: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits (a guard only) for a record's completion from [`append_watched`]: it was committed.
fn committed(done: &crossbeam_channel::Receiver<Result<(), JournalError>>) {
    done.recv_timeout(GUARD).unwrap().unwrap();
}

#[test]
fn records_within_a_commit_interval_wait_for_its_end_and_share_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let h = held_journal(dir.path());
    // Nothing committed before: the first record goes at once.
    committed(&append_watched(&h.journal, 0));
    assert!(h.started.is_empty(), "the first commit did not wait");

    // The next one comes within the interval: the writer holds it.
    let second = append_watched(&h.journal, 1);
    h.started.recv_timeout(GUARD).unwrap();
    let third = append_watched(&h.journal, 2);
    assert!(second.is_empty(), "held until the interval ends");
    h.end.send(std::time::Instant::now()).unwrap();
    committed(&second);
    committed(&third);

    let stats = h.journal.stats();
    assert_eq!((stats.records, stats.batches, stats.fsyncs), (3, 2, 2));
    drop(h);
    let replay = read_all(dir.path()).unwrap();
    check_records(&replay.records, 0);
}

#[test]
fn after_a_busy_batch_the_next_commit_waits_the_busy_interval() {
    let dir = tempfile::tempdir().unwrap();
    // Each wait reports how far off its deadline was when it began.
    let (started_tx, started) = unbounded();
    let (end, end_rx) = unbounded::<std::time::Instant>();
    let timer: file::IntervalTimer = Box::new(move |deadline| {
        started_tx
            .send(deadline.saturating_duration_since(std::time::Instant::now()))
            .unwrap();
        end_rx.clone()
    });
    let hour = std::time::Duration::from_secs(3600);
    let options = JournalOptions {
        durability: Durability::Fsync,
        commit_interval: hour,
        busy_commit_interval: 3 * hour,
        busy_batch_records: 3,
        ..opts()
    };
    let (j, _) = FileJournal::open_timed(dir.path(), options, |_| {}, timer).unwrap();
    committed(&append_watched(&j, 0));
    // A batch of one: the next record waits the ordinary interval (an hour at most).
    let held: Vec<_> = (1..=3).map(|i| append_watched(&j, i)).collect();
    assert!(started.recv_timeout(GUARD).unwrap() <= hour);
    end.send(std::time::Instant::now()).unwrap();
    held.iter().for_each(committed);
    // Those three went in one batch: busy, so the next waits longer than an hour.
    let next = append_watched(&j, 4);
    assert!(started.recv_timeout(GUARD).unwrap() > 2 * hour);
    end.send(std::time::Instant::now()).unwrap();
    committed(&next);
    // A batch of one again: back to the ordinary interval.
    let last = append_watched(&j, 5);
    assert!(started.recv_timeout(GUARD).unwrap() <= hour);
    end.send(std::time::Instant::now()).unwrap();
    committed(&last);
    let stats = j.stats();
    assert_eq!((stats.records, stats.batches), (6, 4));
    drop(j);
    check_records(&read_all(dir.path()).unwrap().records, 0);
}

#[test]
fn a_flush_or_a_shutdown_does_not_wait_for_the_commit_interval() {
    let dir = tempfile::tempdir().unwrap();
    let h = held_journal(dir.path());
    committed(&append_watched(&h.journal, 0));
    // Both come within the interval of that commit; neither waits for its end (the test
    // never ends one here).
    let HeldJournal {
        journal, started, ..
    } = h;
    let (done_tx, done) = unbounded();
    std::thread::spawn(move || {
        journal.flush_blocking().unwrap();
        done_tx.send("flushed").unwrap();
        drop(journal);
        done_tx.send("closed").unwrap();
    });
    assert_eq!(done.recv_timeout(GUARD).unwrap(), "flushed");
    assert_eq!(done.recv_timeout(GUARD).unwrap(), "closed");
    assert!(started.is_empty(), "no interval was waited for");
    check_records(&read_all(dir.path()).unwrap().records, 0);
}

#[test]
fn buffered_journals_never_hold_records_back() {
    let dir = tempfile::tempdir().unwrap();
    let (timer_tx, timer_rx) = unbounded::<()>();
    // Ends at once if ever started, so a wrong wait fails the assertion below, not the run.
    let timer: file::IntervalTimer = Box::new(move |_| {
        timer_tx.send(()).unwrap();
        crossbeam_channel::after(std::time::Duration::ZERO)
    });
    let options = JournalOptions {
        durability: Durability::Buffered,
        commit_interval: std::time::Duration::from_secs(3600),
        ..opts()
    };
    let (j, _) = FileJournal::open_timed(dir.path(), options, |_| {}, timer).unwrap();
    for i in 0..3 {
        committed(&append_watched(&j, i));
    }
    assert!(timer_rx.is_empty(), "no interval without fsync");
}

/// The writer's own timer (`crossbeam_channel::at`, what `open` wires in) ends an interval:
/// a record held for it is committed without anything else arriving.
#[test]
fn the_real_timer_ends_a_commit_interval() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions {
        durability: Durability::Fsync,
        commit_interval: std::time::Duration::from_millis(20),
        ..opts()
    };
    let (j, _) = FileJournal::open(dir.path(), options).unwrap();
    committed(&append_watched(&j, 0));
    let Ok(held) = append_watched(&j, 1).recv_timeout(GUARD) else {
        // The writer still sleeps: dropping the journal would wait for it for ever.
        std::mem::forget(j);
        panic!("the record held for the interval was never committed");
    };
    held.unwrap();
    let stats = j.stats();
    assert_eq!((stats.records, stats.batches, stats.fsyncs), (2, 2, 2));
}

/// A full queue refuses an append once `enqueue_timeout` has passed (here at once) with
/// `Backlogged`, and takes appends again as soon as the writer has taken what was queued.
#[test]
fn a_full_queue_refuses_appends_backlogged_until_the_writer_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let j = small_queue(dir.path(), 2, std::time::Duration::ZERO);
    let gate_tx = hold_writer(&j);
    let queued: Vec<_> = (1..=2).map(|i| append_watched(&j, i)).collect();
    assert_eq!(j.queued(), 2);
    let refused = append_watched(&j, 3);
    assert!(matches!(
        refused.recv_timeout(GUARD).unwrap(),
        Err(JournalError::Backlogged(_))
    ));
    gate_tx.send(()).unwrap();
    queued.iter().for_each(committed);
    // Room again: the record refused before goes in now.
    committed(&append_watched(&j, 3));
    assert_eq!(j.stats().records, 4);
    drop(j);
    check_records(&read_all(dir.path()).unwrap().records, 0);
}

/// A writer that has stopped leaves nothing waiting: records queued behind a close report
/// `Closed` rather than hang, and so does a flush after it.
#[test]
fn what_is_queued_when_the_writer_stops_is_committed_or_reported_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = FileJournal::open(dir.path(), opts()).unwrap();
    let j = Arc::new(j);
    let gate_tx = hold_writer(&*j);
    let before = append_watched(&*j, 1);
    let closer = {
        let j = Arc::clone(&j);
        std::thread::spawn(move || j.close())
    };
    // Whether the close lands in record 1's batch or in the next, record 1 is committed
    // before the close returns.
    gate_tx.send(()).unwrap();
    committed(&before);
    closer.join().unwrap().unwrap();
    let after = append_watched(&*j, 2);
    assert!(matches!(
        after.recv_timeout(GUARD).unwrap(),
        Err(JournalError::Closed)
    ));
    assert!(matches!(j.flush_blocking(), Err(JournalError::Closed)));
    drop(j);
    assert_replays(dir.path(), 2);
}

/// Synced records leave the page cache: a finished segment all of it, the current one in
/// whole pages once 256 KiB have gathered; a buffered journal drops nothing unsynced.
#[test]
fn synced_pages_are_dropped_from_the_page_cache_and_unsynced_ones_are_not() {
    const PAGE: u64 = 4096;
    let record = |i: usize| Bytes::from(vec![i as u8; 3000]);
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions {
        durability: Durability::Fsync,
        segment_size: 64 << 10,
        ..opts()
    };
    let (j, _) = FileJournal::open(dir.path(), options).unwrap();
    for i in 0..50 {
        append_one(&j, record(i));
    }
    j.flush_blocking().unwrap();
    let stats = j.stats();
    drop(j);
    let lens: Vec<u64> = segments(dir.path())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect();
    assert!(lens.len() > 2, "the test needs rolls: {lens:?}");
    let written = stats.bytes + HEADER_LEN as u64 * lens.len() as u64;
    // Every finished segment went whole: what is left is in the last one only (under the
    // 256 KiB that make a drop: this segment is smaller).
    let last = lens.last().copied().unwrap_or_default();
    assert!(stats.dropped_bytes <= written, "{stats:?}");
    assert!(written - stats.dropped_bytes <= last, "{stats:?} {lens:?}");

    let dir = tempfile::tempdir().unwrap();
    let j = buffered_journal(dir.path());
    // Each written before the next (never synced: buffered), so the flush's own batch is
    // empty and its sync alone must lead to the drop.
    for i in 0..100 {
        append_one(&j, record(i));
    }
    assert_eq!(j.stats().dropped_bytes, 0, "nothing unsynced is dropped");
    // A flush syncs even a buffered journal: 300 KB synced, and dropped in whole pages.
    j.flush_blocking().unwrap();
    let after_flush = j.stats().dropped_bytes;
    assert!(after_flush >= 256 << 10, "{after_flush}");
    assert_eq!(after_flush % PAGE, 0);
    // Appends alone never sync it: another 300 KB, written, stays.
    for i in 0..100 {
        append_one(&j, record(i));
    }
    assert_eq!(
        j.stats().dropped_bytes,
        after_flush,
        "nothing unsynced is dropped"
    );
}

/// An `enqueue_timeout` too long to add to the clock waits for room as long as it takes
/// (and does not overflow): the append goes in once the writer has taken the queue.
#[test]
fn an_endless_enqueue_timeout_waits_for_room() {
    let dir = tempfile::tempdir().unwrap();
    let j = small_queue(dir.path(), 1, std::time::Duration::MAX);
    let j = Arc::new(j);
    let gate_tx = hold_writer(&*j);
    let queued = append_watched(&*j, 1);
    let waiting = {
        let j = Arc::clone(&j);
        std::thread::spawn(move || append_watched(&*j, 2).recv_timeout(GUARD))
    };
    // Until the appender waits for room (a guard only, in case it never does).
    let start = std::time::Instant::now();
    while j.appenders_waiting() == 0 {
        assert!(start.elapsed() < GUARD, "the append never waited for room");
        std::thread::yield_now();
    }
    gate_tx.send(()).unwrap();
    committed(&queued);
    waiting.join().unwrap().unwrap().unwrap();
    drop(j);
    assert_replays(dir.path(), 3);
}
