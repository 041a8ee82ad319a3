//! [`FileJournal`]: the embedded journal — appends go into a shared queue that one writer
//! thread takes whole and group-commits into segment files.
//!
//! Why one thread and group commit: an fsync costs the same for one record as for a thousand,
//! so under load the writer takes everything queued (up to the batch caps), writes it with one
//! `write_all`, syncs once, then runs the batch's completions. Latency stays at about one fsync
//! while throughput scales with batch size; callers never block on disk I/O.
//!
//! With a commit interval ([`JournalOptions::commit_interval`]) the writer syncs at most once
//! per interval: a record that arrives less than an interval after the last commit began
//! waits for the interval's end, and everything queued by then goes in one batch (up to the
//! caps). The writer sleeps through the interval: appends do not wake it one at a time, which
//! they did while it waited on the queue (a futex wake and a context switch per record). A
//! record after a quiet interval goes at once, and so do a flush and a shutdown unless the
//! writer is already sleeping (they then wait for that interval's end). Back to back, each small
//! batch paid a whole `fdatasync` (tens of microseconds of CPU and a disk flush on a VM).
//!
//! Why a queue of bytes under a mutex, not a channel of messages: an append copies its
//! payload's own bytes onto the end of one buffer, and the writer swaps the whole buffer out
//! at once. A channel of fixed-size messages moved every record's full inline payload (288
//! bytes, whatever its length) into a slot and out again on the writer's core, where those
//! lines arrived cold: 5 % of the switch's samples at saturation (session 19).

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::format::{self, HEADER_LEN, MAX_PAYLOAD_LEN};
use super::{
    Completion, Durability, Journal, JournalError, JournalOptions, Payload, Record, Replay,
    ReplaySummary,
};

/// Reads a whole journal directory without modifying it (tools, clearing, tests). A torn tail is
/// reported in the summary and ignored, as in [`FileJournal::open`], but not cut off.
pub fn read_all(dir: impl AsRef<Path>) -> Result<Replay, JournalError> {
    let mut records = Vec::new();
    let summary = read_with(dir, |r| records.push(r))?;
    Ok(Replay { records, summary })
}

/// Streaming form of [`read_all`]: `visit` gets each record in sequence order.
pub fn read_with(
    dir: impl AsRef<Path>,
    mut visit: impl FnMut(Record),
) -> Result<ReplaySummary, JournalError> {
    let listing = format::list_dir(dir.as_ref())?;
    Ok(format::scan_segments(&listing.segments, &mut visit)?.summary)
}

/// Counters for tests and diagnostics (the same numbers also go to `metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Records written successfully.
    pub records: u64,
    /// Batches written successfully.
    pub batches: u64,
    pub fsyncs: u64,
    pub bytes: u64,
    /// Batches that failed (write, fsync, roll or repair error).
    pub write_errors: u64,
    /// Fsyncs that took at least `JournalOptions::slow_sync`.
    pub slow_fsyncs: u64,
    /// Bytes of synced records whose pages the page cache was told to drop.
    pub dropped_bytes: u64,
}

#[derive(Default)]
struct StatCells {
    records: AtomicU64,
    batches: AtomicU64,
    fsyncs: AtomicU64,
    bytes: AtomicU64,
    write_errors: AtomicU64,
    slow_fsyncs: AtomicU64,
    dropped_bytes: AtomicU64,
}

/// Holds a completion and guarantees it runs exactly once: if it is dropped unprocessed (the
/// writer stopped with its record still queued), it reports `Closed`.
struct Done(Option<Completion>);

impl Done {
    fn complete(mut self, result: Result<(), JournalError>) {
        if let Some(f) = self.0.take() {
            // A panicking callback must not take the writer (and every later append) down.
            if catch_unwind(AssertUnwindSafe(|| f(result))).is_err() {
                tracing::error!("journal completion panicked");
            }
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            let _ = catch_unwind(AssertUnwindSafe(|| f(Err(JournalError::Closed))));
        }
    }
}

/// A flush or close waiting for the batch it lands in.
struct Waiter {
    reply: Sender<Result<(), JournalError>>,
}

/// What the appenders hand the writer, taken by it whole ([`Queued::take`]).
struct Queue {
    state: Mutex<Queued>,
    /// The writer waits here while there is nothing to do.
    work: Condvar,
    /// Appenders wait here while the queue is full.
    room: Condvar,
}

/// One queued record: its payload is `bytes[previous record's end..end]`.
struct QueuedRecord {
    kind: u8,
    end: usize,
    done: Done,
}

#[derive(Default)]
struct Queued {
    /// The records' payloads in append order, one after the other.
    bytes: Vec<u8>,
    records: Vec<QueuedRecord>,
    /// Flushes (and a close) waiting for everything appended before them.
    waiters: Vec<Waiter>,
    /// A close was asked for: the writer commits what is queued and stops.
    shutdown: bool,
    /// The writer has stopped: appends and flushes fail `Closed`.
    closed: bool,
    /// The writer waits on `work`: the next append or flush wakes it (only that one, so
    /// appends do not make a system call each).
    writer_idle: bool,
    /// Appenders waiting on `room`.
    waiting_for_room: usize,
}

impl Queued {
    fn push(&mut self, kind: u8, payload: &[u8], done: Done) {
        self.bytes.extend_from_slice(payload);
        self.records.push(QueuedRecord {
            kind,
            end: self.bytes.len(),
            done,
        });
    }

    /// Whether the writer waits on `work`, cleared: the caller then wakes it (with the
    /// lock released).
    fn wake_writer(&mut self) -> bool {
        std::mem::take(&mut self.writer_idle)
    }

    /// Moves everything queued into `into` (whose vectors are empty), keeping both sets of
    /// allocations.
    fn take(&mut self, into: &mut Taken) {
        std::mem::swap(&mut self.bytes, &mut into.bytes);
        std::mem::swap(&mut self.records, &mut into.records);
        std::mem::swap(&mut self.waiters, &mut into.waiters);
    }
}

/// What the writer took off the queue: records, their completions, flushes.
#[derive(Default)]
struct Taken {
    bytes: Vec<u8>,
    records: Vec<QueuedRecord>,
    waiters: Vec<Waiter>,
}

impl Queue {
    fn new() -> Self {
        Queue {
            state: Mutex::new(Queued::default()),
            work: Condvar::new(),
            room: Condvar::new(),
        }
    }

    /// Completions and flushes run outside this lock, so nothing that holds it can panic
    /// half-way; a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, Queued> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks the queue closed when the writer thread ends, however it ends (also by a panic):
/// what is still queued then reports `Closed`, and appenders waiting for room stop waiting.
struct CloseOnExit(Arc<Queue>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        let mut left = Taken::default();
        {
            let mut q = self.0.lock();
            q.closed = true;
            q.take(&mut left);
        }
        self.0.room.notify_all();
        // Dropped outside the lock: each `Done` runs its completion with `Closed`, and each
        // waiter's reply channel closes.
        drop(left);
    }
}

/// The embedded file journal. See the module docs for the format and behaviour.
///
/// Dropping it (or calling [`close`](Self::close)) writes and fsyncs everything queued, then
/// joins the writer thread.
pub struct FileJournal {
    queue: Arc<Queue>,
    /// Records the queue holds at most ([`JournalOptions::queue_capacity`]).
    capacity: usize,
    writer: Mutex<Option<JoinHandle<()>>>,
    writer_id: ThreadId,
    stats: Arc<StatCells>,
    enqueue_timeout: Duration,
    dir: PathBuf,
    #[cfg(test)]
    faults: Arc<Faults>,
}

/// Tells the writer that a commit interval is over: a channel that fires at the deadline given
/// (`crossbeam_channel::at`; tests end intervals by hand instead).
pub(crate) type IntervalTimer = Box<dyn FnMut(Instant) -> Receiver<Instant> + Send>;

/// Test hooks: failures injected into the writer's file writes.
#[cfg(test)]
#[derive(Default)]
struct Faults {
    /// The next this many batch writes write half their bytes, then fail.
    writes: AtomicU64,
    /// Every zero-fill write writes half its zeros, then fails.
    zero_fills: std::sync::atomic::AtomicBool,
}

impl FileJournal {
    /// Opens (creating if needed) the journal in `dir`, replays it into memory, cuts off a torn
    /// tail so new records follow the last good one, and starts the writer thread.
    pub fn open(
        dir: impl AsRef<Path>,
        options: JournalOptions,
    ) -> Result<(Self, Replay), JournalError> {
        let mut records = Vec::new();
        let (journal, summary) = Self::open_with(dir, options, |r| records.push(r))?;
        Ok((journal, Replay { records, summary }))
    }

    /// Like [`open`](Self::open) but streams records to `visit` instead of collecting them.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: JournalOptions,
        visit: impl FnMut(Record),
    ) -> Result<(Self, ReplaySummary), JournalError> {
        Self::open_timed(dir, options, visit, Box::new(crossbeam_channel::at))
    }

    /// [`open_with`](Self::open_with) with the commit interval's timer given.
    pub(crate) fn open_timed(
        dir: impl AsRef<Path>,
        options: JournalOptions,
        mut visit: impl FnMut(Record),
        interval_timer: IntervalTimer,
    ) -> Result<(Self, ReplaySummary), JournalError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| JournalError::io("create directory", &dir, e))?;
        let listing = format::list_dir(&dir)?;
        for tmp in &listing.stale_tmp {
            fs::remove_file(tmp).map_err(|e| JournalError::io("remove", tmp, e))?;
        }
        let scan = format::scan_segments(&listing.segments, &mut visit)?;
        let summary = scan.summary;

        let segment = match scan.last {
            Some(last) => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(&last.path)
                    .map_err(|e| JournalError::io("open", &last.path, e))?;
                let zeroed = if last.zero_tail {
                    last.file_len
                } else {
                    last.good_len
                };
                if last.file_len > last.good_len && !last.zero_tail {
                    // Cut the torn tail now: appending after it would bury garbage mid-file.
                    file.set_len(last.good_len)
                        .and_then(|()| file.sync_data())
                        .map_err(|e| JournalError::io("truncate torn tail", &last.path, e))?;
                    tracing::info!(
                        segment = %last.path.display(),
                        good_len = last.good_len,
                        "journal: torn tail cut off"
                    );
                }
                file.seek(SeekFrom::Start(last.good_len))
                    .map_err(|e| JournalError::io("seek", &last.path, e))?;
                Segment {
                    index: last.index,
                    path: last.path,
                    file,
                    len: last.good_len,
                    zeroed,
                    records: last.records,
                    dropped: 0,
                }
            }
            None => {
                let segment = create_segment(&dir, 1, summary.next_seq)?;
                sync_dir(&dir)?;
                segment
            }
        };

        let stats = Arc::new(StatCells::default());
        #[cfg(test)]
        let faults = Arc::new(Faults::default());
        let queue = Arc::new(Queue::new());
        let writer = Writer {
            dir: dir.clone(),
            durability: options.durability,
            segment_size: options.segment_size,
            max_batch_records: options.max_batch_records.max(1),
            max_batch_bytes: options.max_batch_bytes.max(1),
            zero_fill_ahead: options.zero_fill_ahead,
            // Only syncs are worth holding records back for.
            commit_interval: match options.durability {
                Durability::Fsync => options.commit_interval,
                Durability::Buffered => Duration::ZERO,
            },
            busy_commit_interval: match options.durability {
                Durability::Fsync => options.busy_commit_interval.max(options.commit_interval),
                Durability::Buffered => Duration::ZERO,
            },
            busy_batch_records: options.busy_batch_records.max(1),
            interval_timer,
            slow_syncs: options.slow_sync.map(SlowSyncs::new),
            seg: segment,
            next_seq: summary.next_seq,
            dirty: false,
            dir_unsynced: false,
            unsynced: false,
            buf: Vec::new(),
            stats: Arc::clone(&stats),
            failed_since_flush: None,
            #[cfg(test)]
            faults: Arc::clone(&faults),
        };
        let for_writer = Arc::clone(&queue);
        let handle = thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(&CloseOnExit(for_writer)))
            .map_err(|e| JournalError::io("spawn writer thread for", &dir, e))?;
        let journal = Self {
            queue,
            capacity: options.queue_capacity.max(1),
            writer_id: handle.thread().id(),
            writer: Mutex::new(Some(handle)),
            stats,
            enqueue_timeout: options.enqueue_timeout,
            dir,
            #[cfg(test)]
            faults,
        };
        Ok((journal, summary))
    }

    /// Test hook: the next `n` batch writes write half their bytes and then fail.
    #[cfg(test)]
    pub(crate) fn inject_write_faults(&self, n: u64) {
        self.faults.writes.store(n, Ordering::SeqCst);
    }

    /// Test hook: zero-fill writes write half their zeros and then fail, from now on.
    #[cfg(test)]
    pub(crate) fn inject_zero_fill_faults(&self) {
        self.faults.zero_fills.store(true, Ordering::SeqCst);
    }

    /// Test hook: appenders waiting for room in a full queue.
    #[cfg(test)]
    pub(crate) fn appenders_waiting(&self) -> usize {
        self.queue.lock().waiting_for_room
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> JournalStats {
        let s = &self.stats;
        JournalStats {
            records: s.records.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            slow_fsyncs: s.slow_fsyncs.load(Ordering::Relaxed),
            dropped_bytes: s.dropped_bytes.load(Ordering::Relaxed),
        }
    }

    /// Writes and fsyncs everything queued, stops the writer and joins it. Appends after this
    /// fail with [`JournalError::Closed`]. Idempotent; also run by `Drop`.
    pub fn close(&self) -> Result<(), JournalError> {
        if thread::current().id() == self.writer_id {
            return Err(JournalError::WouldDeadlock);
        }
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(handle) = handle else {
            return Ok(());
        };
        let result = self.request(true);
        if handle.join().is_err() {
            tracing::error!("journal writer thread panicked");
            return Err(JournalError::Closed);
        }
        result
    }

    /// Queues a flush (or, with `shutdown`, a close) and waits for the writer's answer.
    fn request(&self, shutdown: bool) -> Result<(), JournalError> {
        let (reply, answer) = bounded(1);
        let wake = {
            let mut q = self.queue.lock();
            if q.closed {
                return Err(JournalError::Closed);
            }
            q.waiters.push(Waiter { reply });
            q.shutdown |= shutdown;
            q.wake_writer()
        };
        if wake {
            self.queue.work.notify_one();
        }
        answer.recv().unwrap_or(Err(JournalError::Closed))
    }

    fn reject(done: Done, error: JournalError) {
        metrics::counter!("journal_appends_rejected_total").increment(1);
        done.complete(Err(error));
    }

    /// Waits up to `enqueue_timeout` for room in a full queue. `Err` says why there is none.
    fn wait_for_room<'a>(
        &'a self,
        mut q: MutexGuard<'a, Queued>,
    ) -> Result<MutexGuard<'a, Queued>, (MutexGuard<'a, Queued>, JournalError)> {
        // A timeout too long to add to the clock waits for room however long it takes.
        let deadline = Instant::now().checked_add(self.enqueue_timeout);
        q.waiting_for_room += 1;
        while !q.closed && q.records.len() >= self.capacity {
            let room = &self.queue.room;
            q = match deadline {
                None => room.wait(q).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    room.wait_timeout(q, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        q.waiting_for_room -= 1;
        if q.closed {
            Err((q, JournalError::Closed))
        } else if q.records.len() >= self.capacity {
            Err((q, JournalError::Backlogged(self.enqueue_timeout)))
        } else {
            Ok(q)
        }
    }
}

impl Journal for FileJournal {
    fn append(&self, kind: u8, payload: Payload, on_durable: Option<Completion>) {
        let done = Done(on_durable);
        if payload.len() > MAX_PAYLOAD_LEN {
            metrics::counter!("journal_appends_rejected_total").increment(1);
            done.complete(Err(JournalError::TooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            }));
            return;
        }
        let mut q = self.queue.lock();
        if q.closed {
            drop(q);
            return Self::reject(done, JournalError::Closed);
        }
        // The common case reads no clock: only a full queue waits.
        if q.records.len() >= self.capacity {
            q = match self.wait_for_room(q) {
                Ok(q) => q,
                Err((q, error)) => {
                    // The completion runs without the lock (it may append again).
                    drop(q);
                    return Self::reject(done, error);
                }
            };
        }
        q.push(kind, payload.as_slice(), done);
        let wake = q.wake_writer();
        drop(q);
        if wake {
            self.queue.work.notify_one();
        }
    }

    fn queued(&self) -> usize {
        self.queue.lock().records.len()
    }

    fn flush_blocking(&self) -> Result<(), JournalError> {
        if thread::current().id() == self.writer_id {
            return Err(JournalError::WouldDeadlock);
        }
        self.request(false)
    }
}

impl Drop for FileJournal {
    fn drop(&mut self) {
        if thread::current().id() == self.writer_id {
            // Last handle dropped inside a completion. Joining would deadlock; the writer
            // still commits everything queued, syncs and exits once this completion returns.
            self.queue.lock().shutdown = true;
            return;
        }
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "journal close on drop failed");
        }
    }
}

struct Segment {
    index: u64,
    path: PathBuf,
    file: File,
    /// Length of the valid (successfully written) part.
    len: u64,
    /// Length of the file: `len` plus the zeros written ahead of the data, if any.
    zeroed: u64,
    records: u64,
    /// Bytes from the start whose pages the page cache was told to drop ([`Writer::drop_behind`]).
    dropped: u64,
}

/// Creates segment `index` atomically: header written and synced under a temporary name, then
/// renamed. The caller then syncs the directory so the new name itself is durable.
fn create_segment(dir: &Path, index: u64, base_seq: u64) -> Result<Segment, JournalError> {
    let path = format::segment_path(dir, index);
    let tmp = format::tmp_path(dir, index);
    match path.try_exists() {
        Ok(false) => {}
        Ok(true) => {
            let e = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "segment exists");
            return Err(JournalError::io("create segment", &path, e));
        }
        Err(e) => return Err(JournalError::io("create segment", &path, e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| JournalError::io("create", &tmp, e))?;
    file.write_all(&format::encode_header(base_seq))
        .and_then(|()| file.sync_data())
        .map_err(|e| JournalError::io("write header", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| JournalError::io("rename", &tmp, e))?;
    Ok(Segment {
        index,
        path,
        file,
        len: HEADER_LEN as u64,
        zeroed: HEADER_LEN as u64,
        records: 0,
        dropped: 0,
    })
}

/// Writes `len` zero bytes at `offset` without moving the file's cursor.
#[cfg(unix)]
fn write_zeros(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    static BLOCK: [u8; 64 << 10] = [0; 64 << 10];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(BLOCK.len() as u64);
        file.write_all_at(&BLOCK[..n as usize], offset + done)?;
        done += n;
    }
    Ok(())
}

#[cfg(not(unix))]
fn write_zeros(_file: &File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "zero-filling ahead needs positioned writes",
    ))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io("sync directory", dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), JournalError> {
    Ok(())
}

/// Slow fsyncs, folded into at most one log line a second ([`crate::logging::Folded`]): a
/// bad minute of the disk is a few dozen lines, not thousands. Adds what the line reports
/// beyond the count: the slowest fsync it stands for.
struct SlowSyncs {
    threshold: Duration,
    lines: crate::logging::Folded,
    /// The clock `lines` counts milliseconds on.
    origin: Instant,
    /// The slowest fsync since the last line.
    slowest: Duration,
}

/// What a slow-fsync log line reports besides the fsync itself.
#[derive(Debug, PartialEq, Eq)]
struct SlowLine {
    /// Slow fsyncs folded into this line since the last one.
    more: u64,
    slowest: Duration,
}

impl SlowSyncs {
    fn new(threshold: Duration) -> Self {
        SlowSyncs {
            threshold,
            lines: crate::logging::Folded::new(),
            origin: Instant::now(),
            slowest: Duration::ZERO,
        }
    }

    /// A slow fsync of `took`, finished at `now`: a line to log, or folded into the next.
    fn note(&mut self, took: Duration, now: Instant) -> Option<SlowLine> {
        self.slowest = self.slowest.max(took);
        let ms = i64::try_from(now.saturating_duration_since(self.origin).as_millis())
            .unwrap_or(i64::MAX);
        let n = self.lines.note(ms)?;
        Some(SlowLine {
            more: n.saturating_sub(1),
            slowest: std::mem::take(&mut self.slowest),
        })
    }
}

/// Synced journal is dropped from the page cache once this much of it has gathered
/// ([`Writer::drop_behind`]): at 50,000 transactions a second that is a system call every
/// ~20 commits, not one a commit.
const DROP_BEHIND_EVERY: u64 = 256 << 10;

struct Writer {
    dir: PathBuf,
    durability: Durability,
    segment_size: u64,
    max_batch_records: usize,
    max_batch_bytes: usize,
    zero_fill_ahead: u64,
    /// At most one commit per this long (zero: commit whenever something is queued).
    commit_interval: Duration,
    /// The interval after a batch of at least `busy_batch_records` records
    /// ([`JournalOptions::busy_commit_interval`]).
    busy_commit_interval: Duration,
    busy_batch_records: usize,
    interval_timer: IntervalTimer,
    /// Reports fsyncs over `JournalOptions::slow_sync`.
    slow_syncs: Option<SlowSyncs>,
    seg: Segment,
    next_seq: u64,
    /// A write or sync failed: the file may hold junk past `seg.len` until repaired.
    dirty: bool,
    /// A segment was created but syncing the directory failed; retried before the next write
    /// (records must not go into a file whose name might not survive a crash).
    dir_unsynced: bool,
    /// Bytes written since the last sync (Buffered mode).
    unsynced: bool,
    /// Reused encode buffer: one allocation for the life of the writer.
    buf: Vec<u8>,
    stats: Arc<StatCells>,
    /// The latest batch failure since a flush was last answered. A flush reports it: records
    /// appended without a completion have no other way to learn they were lost.
    failed_since_flush: Option<JournalError>,
    #[cfg(test)]
    faults: Arc<Faults>,
}

impl Writer {
    fn run(mut self, exit: &CloseOnExit) {
        let queue = &*exit.0;
        let mut taken = Taken::default();
        // One batch's completions, moved over from `taken` as its records are encoded.
        let mut dones: Vec<Done> = Vec::new();
        // When the last commit began, and the interval the next one waits from there.
        let mut last_commit: Option<Instant> = None;
        let mut interval = self.commit_interval;
        loop {
            let appends_only = {
                let mut q = queue.lock();
                while q.records.is_empty() && q.waiters.is_empty() && !q.shutdown {
                    q.writer_idle = true;
                    q = queue.work.wait(q).unwrap_or_else(PoisonError::into_inner);
                }
                q.writer_idle = false;
                q.waiters.is_empty() && !q.shutdown
            };
            // Within the interval of the last commit, records gather until it ends: the
            // writer waits on the timer alone, so appends do not wake it one by one. A flush
            // or a close that is already queued does not wait.
            if appends_only {
                if let Some(deadline) = last_commit
                    .map(|t| t + interval)
                    .filter(|d| *d > Instant::now())
                {
                    let _ = (self.interval_timer)(deadline).recv();
                }
            }
            let shutdown = {
                let mut q = queue.lock();
                q.take(&mut taken);
                // Whatever comes after a close is refused, not queued for a writer that
                // has stopped.
                q.closed |= q.shutdown;
                if q.waiting_for_room > 0 {
                    queue.room.notify_all();
                }
                q.shutdown
            };
            last_commit = Some(Instant::now());
            interval = if taken.records.len() >= self.busy_batch_records {
                if self.busy_commit_interval > self.commit_interval {
                    metrics::counter!("journal_busy_commits_total").increment(1);
                }
                self.busy_commit_interval
            } else {
                self.commit_interval
            };
            // Records are encoded into `buf` batch by batch, each batch up to the caps; the
            // flushes are answered with the last one.
            self.buf.clear();
            let mut start = 0;
            for r in taken.records.drain(..) {
                let payload = taken.bytes.get(start..r.end).unwrap_or_default();
                start = r.end;
                let seq = self.next_seq + dones.len() as u64;
                format::encode_record(&mut self.buf, r.kind, seq, payload);
                dones.push(r.done);
                if dones.len() >= self.max_batch_records || self.buf.len() >= self.max_batch_bytes {
                    self.commit(&mut dones, &mut Vec::new());
                    self.buf.clear();
                }
            }
            taken.bytes.clear();
            if !dones.is_empty() || !taken.waiters.is_empty() {
                self.commit(&mut dones, &mut taken.waiters);
            }
            if shutdown {
                break;
            }
        }
        if self.unsynced {
            if let Err(e) = self.sync() {
                tracing::error!(error = %e, "journal final sync failed");
            }
        }
    }

    /// Writes the batch encoded in `buf` (`dones` holds one completion a record), then
    /// answers its completions and the waiting flushes.
    fn commit(&mut self, dones: &mut Vec<Done>, waiters: &mut Vec<Waiter>) {
        let records = dones.len();
        let result = self.write_batch(records, !waiters.is_empty());
        if let Err(e) = &result {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("journal_write_errors_total").increment(1);
            tracing::error!(error = %e, records, "journal batch failed");
            self.failed_since_flush = Some(e.clone());
        }
        for done in dones.drain(..) {
            done.complete(result.clone());
        }
        if result.is_ok() {
            // Both after the completions: off the answers' path. Any sync may have made
            // records durable, a flush's empty batch included (what buffered batches wrote);
            // `drop_behind` itself knows whether there is anything to drop.
            self.drop_behind(false);
            if records > 0 {
                self.zero_fill();
            }
        }
        if !waiters.is_empty() {
            let answer = match self.failed_since_flush.take() {
                Some(e) => Err(e),
                None => Ok(()),
            };
            for w in waiters.drain(..) {
                let _ = w.reply.send(answer.clone());
            }
        }
    }

    /// Writes `records` records already encoded in `buf` (numbered from `next_seq`).
    fn write_batch(&mut self, records: usize, force_sync: bool) -> Result<(), JournalError> {
        if self.dirty {
            self.repair()?;
        }
        if self.dir_unsynced {
            sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        if records == 0 {
            return if force_sync && self.unsynced {
                self.sync()
            } else {
                Ok(())
            };
        }
        if self.seg.len >= self.segment_size && self.seg.records > 0 {
            self.roll()?;
        }

        if let Err(e) = self.write_buf() {
            self.dirty = true;
            return Err(JournalError::io("write", &self.seg.path, e));
        }
        self.unsynced = true;
        if self.durability == Durability::Fsync || force_sync {
            if let Err(e) = self.sync() {
                // The batch is reported failed, so it must not reappear at replay: repair cuts
                // it off before the next write.
                self.dirty = true;
                return Err(e);
            }
        }

        let n = records as u64;
        let bytes = self.buf.len() as u64;
        self.seg.len += bytes;
        self.seg.records += n;
        self.next_seq += n;
        self.stats.records.fetch_add(n, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        metrics::histogram!("journal_batch_records").record(n as f64);
        metrics::counter!("journal_records_total").increment(n);
        metrics::counter!("journal_bytes_written_total").increment(bytes);
        Ok(())
    }

    /// Keeps at least half of `zero_fill_ahead` zero bytes past the data, up to the segment
    /// size, writing another `zero_fill_ahead` when it falls below. Run after a batch's
    /// completions, so the write is off the answer path; the zeros reach the disk with the next
    /// batch's sync. A failure only costs the saving: records then append as without it.
    fn zero_fill(&mut self) {
        let (chunk, len, zeroed) = (self.zero_fill_ahead, self.seg.len, self.seg.zeroed);
        if chunk == 0 || zeroed >= len + chunk / 2 {
            return;
        }
        let from = zeroed.max(len);
        let to = (from + chunk).min(self.segment_size);
        if to <= from {
            return;
        }
        if let Err(e) = self.write_zeros_at(from, to - from) {
            metrics::counter!("journal_zero_fill_errors_total").increment(1);
            tracing::warn!(segment = %self.seg.path.display(), error = %e, "journal: zero-filling ahead failed; records append");
        }
        // Even after a failure the file may now reach `to`. The cap at the segment size
        // already keeps zeros below where a roll happens; counting them anyway keeps the
        // roll's cut right if that ever changes.
        self.seg.zeroed = to;
    }

    fn write_zeros_at(&self, offset: u64, len: u64) -> std::io::Result<()> {
        // Test hook: write half the zeros, then fail, like a disk filling up.
        #[cfg(test)]
        if self.faults.zero_fills.load(Ordering::SeqCst) {
            write_zeros(&self.seg.file, offset, len / 2)?;
            return Err(std::io::Error::other("injected zero-fill fault"));
        }
        write_zeros(&self.seg.file, offset, len)
    }

    fn write_buf(&mut self) -> std::io::Result<()> {
        // Test hook: write half the batch, then fail, like a disk filling up mid-write.
        #[cfg(test)]
        if self
            .faults
            .writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.seg.file.write_all(&self.buf[..self.buf.len() / 2])?;
            return Err(std::io::Error::other("injected write fault"));
        }
        self.seg.file.write_all(&self.buf)
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        let start = Instant::now();
        self.seg
            .file
            .sync_data()
            .map_err(|e| JournalError::io("fsync", &self.seg.path, e))?;
        let took = start.elapsed();
        metrics::histogram!("journal_fsync_seconds").record(took.as_secs_f64());
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        if let Some(slow) = &mut self.slow_syncs {
            if took >= slow.threshold {
                self.stats.slow_fsyncs.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("journal_slow_fsyncs_total").increment(1);
                if let Some(line) = slow.note(took, Instant::now()) {
                    tracing::warn!(
                        segment = %self.seg.path.display(),
                        took_ms = took.as_millis() as u64,
                        threshold_ms = slow.threshold.as_millis() as u64,
                        more = line.more,
                        slowest_ms = line.slowest.as_millis() as u64,
                        "journal fsync slow: its batch's answers waited for the disk"
                    );
                }
            }
        }
        self.unsynced = false;
        Ok(())
    }

    /// The journal is written once and read again only at start: once its records are
    /// durable (synced: nothing unsynced is dropped), their pages leave the page cache
    /// (`POSIX_FADV_DONTNEED`, whole pages only, so the page the next batch appends to stays;
    /// at least [`DROP_BEHIND_EVERY`] at a time, so a slow trickle of commits does not make a
    /// system call each; a finished segment all of it). The kernel then reuses those pages for
    /// the next batches instead of taking fresh memory for every byte written: on this VM a
    /// fresh page costs a fault in the host too (writing the third gigabyte into the page
    /// cache took 2.9 s of CPU against 0.2 s for the first), and a sustained run writes
    /// ~80 MB of journal a second. It also keeps the journal from pushing everything else
    /// out of the cache. Advice only: a failure changes nothing but the saving.
    fn drop_behind(&mut self, finished_segment: bool) {
        const PAGE: u64 = 4096;
        if self.unsynced {
            return;
        }
        let upto = if finished_segment {
            self.seg.len.next_multiple_of(PAGE)
        } else {
            self.seg.len & !(PAGE - 1)
        };
        let Some(len) = std::num::NonZeroU64::new(upto.saturating_sub(self.seg.dropped)) else {
            return;
        };
        if !finished_segment && len.get() < DROP_BEHIND_EVERY {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Err(e) = rustix::fs::fadvise(
            &self.seg.file,
            self.seg.dropped,
            Some(len),
            rustix::fs::Advice::DontNeed,
        ) {
            metrics::counter!("journal_drop_behind_errors_total").increment(1);
            tracing::debug!(error = %e, "journal: dropping synced pages from the page cache failed");
        }
        #[cfg(not(target_os = "linux"))]
        let _ = len;
        let bytes = upto.min(self.seg.len).saturating_sub(self.seg.dropped);
        self.stats.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.seg.dropped = upto;
    }

    /// Cuts the segment back to its last good byte after a failed write/sync, so later batches
    /// never follow a partial one. Retried before every batch until it succeeds.
    fn repair(&mut self) -> Result<(), JournalError> {
        let len = self.seg.len;
        let file = &mut self.seg.file;
        file.set_len(len)
            .and_then(|()| file.seek(SeekFrom::Start(len)))
            .and_then(|_| file.sync_data())
            .map_err(|e| JournalError::io("repair after failed write", &self.seg.path, e))?;
        self.seg.zeroed = len;
        self.dirty = false;
        self.unsynced = false;
        Ok(())
    }

    fn roll(&mut self) -> Result<(), JournalError> {
        // Synced even in Buffered mode: replay treats damage in a non-last segment as fatal, so
        // a segment must be complete on disk before a later one exists.
        if self.unsynced {
            self.sync()?;
        }
        // Only the last segment may end in zeros (see `format`): cut them off first.
        if self.seg.zeroed > self.seg.len {
            let (file, len) = (&self.seg.file, self.seg.len);
            file.set_len(len)
                .and_then(|()| file.sync_data())
                .map_err(|e| JournalError::io("cut the zero-filled tail of", &self.seg.path, e))?;
            self.seg.zeroed = len;
        }
        self.drop_behind(true);
        self.seg = create_segment(&self.dir, self.seg.index + 1, self.next_seq)?;
        if let Err(e) = sync_dir(&self.dir) {
            self.dir_unsynced = true;
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod slow_sync_tests {
    use super::*;

    #[test]
    fn slow_fsyncs_make_at_most_a_line_a_second_and_the_next_line_counts_the_rest() {
        let ms = Duration::from_millis;
        let mut slow = SlowSyncs::new(ms(100));
        let t0 = slow.origin;
        let first = slow.note(ms(150), t0);
        assert_eq!(
            first,
            Some(SlowLine {
                more: 0,
                slowest: ms(150)
            })
        );
        // Within the second: folded.
        assert_eq!(slow.note(ms(900), t0 + ms(300)), None);
        assert_eq!(slow.note(ms(200), t0 + ms(999)), None);
        // A second on: a line, naming the two folded ones and the slowest of all three.
        assert_eq!(
            slow.note(ms(120), t0 + ms(1000)),
            Some(SlowLine {
                more: 2,
                slowest: ms(900)
            })
        );
        // The fold starts again.
        assert_eq!(
            slow.note(ms(110), t0 + ms(2500)),
            Some(SlowLine {
                more: 0,
                slowest: ms(110)
            })
        );
    }
}
