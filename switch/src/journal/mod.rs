//! The durable journal: the switch's storage engine for "durable before answered"
//! (ARCHITECTURE.md principle 6).
//!
//! Every request and every outcome is appended here before the acquirer gets an answer; on
//! restart the journal is read back to rebuild duplicate detection, matching state, counters and
//! pending advices. This module owns only *storage*: records are `(kind, opaque bytes)`; the
//! switch defines and serialises its own record types elsewhere.
//!
//! - [`Journal`] is the small interface the rest of the switch codes against, so a distributed
//!   backend (a SQL store, a log service) can replace the embedded one later.
//! - [`FileJournal`] is the embedded default: one writer thread fed by a bounded queue (the
//!   records' bytes under a mutex, taken whole at each commit), group commit (one `write` and
//!   at most one `fsync` per batch), segment files with
//!   per-record CRCs, and replay that ignores a torn last record but never misreads one.
//! - [`MemoryJournal`] keeps records in memory for unit tests of other modules.
//!
//! The on-disk format is described in `format.rs`. Payloads hold card data, so nothing here
//! ever logs, formats or debug-prints payload bytes (see [`Record`]'s `Debug`).

mod file;
mod format;
mod memory;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use file::{read_all, read_with, FileJournal, JournalStats};
pub use format::MAX_PAYLOAD_LEN;
pub use memory::MemoryJournal;

/// Called once per appended record, on the writer thread for [`FileJournal`], when the record is
/// durable per the [`Durability`] mode, or with the error that prevented it. Keep it short (e.g.
/// send an actor message): every completion of a batch runs before the next batch is written.
pub type Completion = Box<dyn FnOnce(Result<(), JournalError>) + Send + 'static>;

/// Payload bytes a record carries inside itself. A request record of the switch is at
/// most 284 bytes encoded (every field full; ~170 typically), an outcome far less. The
/// journal's queue copies only a payload's own bytes, whatever this size.
pub const INLINE_PAYLOAD: usize = 288;

/// A record's payload as handed to [`Journal::append`]. Up to [`INLINE_PAYLOAD`] bytes live
/// inside the value, so the common record costs no allocation on the appending thread and
/// no free on the writer thread (a free from another thread takes the allocator's slow
/// path); a larger payload is a shared [`Bytes`].
#[derive(Clone)]
pub struct Payload(Repr);

// The inline variant's size is the point: no allocation for the common payload.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Repr {
    Inline {
        len: u16,
        bytes: [u8; INLINE_PAYLOAD],
    },
    Shared(Bytes),
}

impl Payload {
    /// The first `len` bytes of `bytes`, or `None` if `len` is more than they hold.
    #[must_use]
    pub(crate) fn inline(bytes: [u8; INLINE_PAYLOAD], len: usize) -> Option<Self> {
        let len = u16::try_from(len)
            .ok()
            .filter(|&l| usize::from(l) <= INLINE_PAYLOAD)?;
        Some(Self(Repr::Inline { len, bytes }))
    }

    /// A copy of `data`: inline when it fits.
    #[must_use]
    pub fn copy_from_slice(data: &[u8]) -> Self {
        let mut bytes = [0u8; INLINE_PAYLOAD];
        if let Some(dst) = bytes.get_mut(..data.len()) {
            dst.copy_from_slice(data);
            if let Some(inline) = Self::inline(bytes, data.len()) {
                return inline;
            }
        }
        Self(Repr::Shared(Bytes::copy_from_slice(data)))
    }

    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Shared(b) => b,
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes live inside the value (no allocation).
    #[must_use]
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Repr::Shared(b) => b,
        }
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Self(Repr::Shared(b))
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Self(Repr::Shared(Bytes::from(v)))
    }
}

/// Shows the length only: payloads contain card data.
impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("len", &self.len())
            .field("inline", &self.is_inline())
            .finish()
    }
}

/// The journal interface. The embedded [`FileJournal`] and a future distributed backend are two
/// implementations of it.
pub trait Journal: Send + Sync + 'static {
    /// Queues a record without waiting for disk I/O. `on_durable` is called exactly once: with
    /// `Ok` once the record is durable, or with the error (write failure, journal closed, queue
    /// backlogged, payload too large). Records from one thread keep their order.
    fn append(&self, kind: u8, payload: Payload, on_durable: Option<Completion>);

    /// Blocks until everything appended before the call is on disk (fsynced even in
    /// [`Durability::Buffered`] mode). Returns an error if the journal is closed, or if any
    /// batch failed since the previous flush returned (so records appended without a
    /// completion cannot be lost silently). Meant for shutdown and tests, not the hot path.
    fn flush_blocking(&self) -> Result<(), JournalError>;

    /// Records appended and not yet taken by the writer (sampled for `/metrics`: a queue
    /// that fills means the disk is not keeping up, and appends will soon wait).
    fn queued(&self) -> usize {
        0
    }
}

/// When a record counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `fsync` (`File::sync_data`) once per batch before completions run: survives power loss.
    #[default]
    Fsync,
    /// Written to the OS page cache only: survives a process crash, not a power loss. Segments
    /// are still fsynced when rolled and on flush/close.
    Buffered,
}

/// Tuning for [`FileJournal`]. The defaults suit the switch; tests shrink `segment_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    pub durability: Durability,
    /// A segment is closed and a new one started once it reaches this size. Rolling happens
    /// between batches, so a segment may exceed it by up to one batch.
    pub segment_size: u64,
    /// Capacity of the append queue. When full, `append` waits up to `enqueue_timeout` for room
    /// (the writer drains at disk speed, so this is normally microseconds), then fails the
    /// record with [`JournalError::Backlogged`] rather than stall the caller indefinitely.
    pub queue_capacity: usize,
    pub enqueue_timeout: Duration,
    /// Group-commit caps: a batch closes at this many records or bytes, whichever comes first.
    pub max_batch_records: usize,
    pub max_batch_bytes: usize,
    /// Zero-fill the segment this many bytes ahead of its data (0: off). Records then
    /// overwrite blocks the file already has, so a batch's `fdatasync` flushes data only;
    /// appending past the end makes every `fdatasync` also commit the file's new size to the
    /// filesystem journal (about half the cost of each sync on ext4). The zeros are written
    /// after a batch's completions have run and go to disk with the next batch's sync. Replay
    /// reads a zero-filled tail of the last segment as its clean end.
    pub zero_fill_ahead: u64,
    /// Fsync durability: at most one commit per this long. A record arriving sooner after
    /// the last commit began waits for the interval's end and goes in one batch with what
    /// is queued by then (zero: commit as soon as anything is queued). Bounds the extra
    /// latency of a record by the interval. A record after a quiet interval goes at once, and
    /// so do a flush and a shutdown unless the writer already sleeps through an interval.
    pub commit_interval: Duration,
    /// Fsync durability under load: after a batch of at least `busy_batch_records` records
    /// the next commit waits this long instead of `commit_interval` (the larger of the two
    /// counts). Fewer, larger batches cost less CPU a record (each fsync's wait, wake-up and
    /// completion interrupt are paid once a batch); they only happen when the records
    /// already come fast enough to fill a batch that size, where the wait is a small part
    /// of an answer's time. Zero (or anything under `commit_interval`): always
    /// `commit_interval`.
    pub busy_commit_interval: Duration,
    /// See `busy_commit_interval`.
    pub busy_batch_records: usize,
    /// An fsync that takes at least this long is counted (`journal_slow_fsyncs_total`) and
    /// logged, at most one line a second (`None`: not reported). Every answer of its batch
    /// waited for it.
    pub slow_sync: Option<Duration>,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            segment_size: 256 << 20,
            queue_capacity: 65_536,
            enqueue_timeout: Duration::from_secs(1),
            max_batch_records: 4096,
            max_batch_bytes: 1 << 20,
            zero_fill_ahead: 1 << 20,
            commit_interval: Duration::ZERO,
            busy_commit_interval: Duration::ZERO,
            busy_batch_records: 512,
            slow_sync: Some(Duration::from_millis(100)),
        }
    }
}

/// One journal record as read back by replay.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// Monotonic across segments and restarts, starting at 1, without gaps.
    pub seq: u64,
    pub kind: u8,
    pub payload: Bytes,
}

/// Shows the payload length only: payloads contain card data.
impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("seq", &self.seq)
            .field("kind", &self.kind)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub segments: usize,
    pub records: u64,
    /// Bytes of valid segment data (headers and records).
    pub bytes: u64,
    /// 1 if the last segment ended in a torn (truncated or checksum-failing) record, else 0.
    pub torn_records: u64,
    /// Bytes from the torn record to the end of the last segment, ignored by replay (and cut
    /// off by [`FileJournal::open`]).
    pub torn_bytes: u64,
    /// The sequence number the next appended record gets.
    pub next_seq: u64,
}

/// All records of a journal, in sequence order, plus the summary.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    pub records: Vec<Record>,
    pub summary: ReplaySummary,
}

/// Journal errors. `Clone` because one write failure is reported to every record of its batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    #[error("journal {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// Damage that is not a torn tail: replay refuses to guess past it.
    #[error("journal corrupt: {} at byte {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("journal record payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("journal queue stayed full for {0:?}; record not accepted")]
    Backlogged(Duration),
    #[error("journal is closed")]
    Closed,
    /// `flush_blocking`/`close` called from a completion, i.e. on the writer thread itself.
    #[error("journal flush requested from the journal writer thread (would deadlock)")]
    WouldDeadlock,
}

impl JournalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

/// Registers descriptions for the journal's metrics with the installed recorder.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_histogram!(
        "journal_batch_records",
        Unit::Count,
        "Records per group-commit batch"
    );
    describe_histogram!(
        "journal_fsync_seconds",
        Unit::Seconds,
        "Time spent in one journal fsync"
    );
    describe_counter!(
        "journal_bytes_written_total",
        Unit::Bytes,
        "Bytes written to journal segments"
    );
    describe_counter!("journal_records_total", "Records written to the journal");
    describe_counter!(
        "journal_write_errors_total",
        "Journal batches that failed to write or fsync"
    );
    describe_counter!(
        "journal_busy_commits_total",
        "Commits that waited busy_commit_interval_us after a batch of busy_batch_records or more"
    );
    describe_counter!(
        "journal_appends_rejected_total",
        "Appends refused before queueing (closed, backlogged, too large)"
    );
    describe_counter!(
        "journal_drop_behind_errors_total",
        "Synced journal pages the page cache could not be told to drop (advice only: nothing lost)"
    );
}
