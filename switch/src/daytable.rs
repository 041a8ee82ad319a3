//! The tables that hold one entry per transaction of the settlement day (each request's
//! key for duplicates, which is also its original for related transactions). They grow by hundreds of thousands of entries a
//! minute under load, so two things matter that do not for other maps:
//!
//! - **No growth stalls.** A `HashMap` of large entries that doubles allocates and fills a
//!   new table of twice the size at once: the kernel zero-fills hundreds of megabytes of
//!   fresh pages in one go (`clear_page_erms` was 58 % of the switch's samples in the worst
//!   second of a 50k/s run, p50 157 ms). Here entries live in an append-only arena of
//!   256-entry chunks (new memory is taken a little at a time) and the hash index
//!   holds 8 bytes per entry: sized for the bound at start in a table with a memory bound
//!   (`Buckets`, one cache line a probe), doubling incrementally in an in-memory one (a
//!   few entries moved per insert), so no insert pays for a whole shard's growth: the 64
//!   shards fill evenly and would otherwise all double within the same fraction of a
//!   second.
//! - **Compact keys.** The four numbers of a [`TxnKey`] (F7 10 digits, F11 6 digits, F32 and
//!   F33 11 digits each) fit 34 + 20 + 37 + 37 = 128 bits: a [`PackedKey`] is 16 bytes
//!   instead of the 32 of `TxnKey`, aligned to 4 so small values do not pad it.
//!
//! Shards are picked by a hash of the key, each behind a short [`Mutex`] (no shard is held
//! across anything but the closure a caller passes). Keys come from acquirers, so the hash
//! has a per-process random seed. Entries are removed only by [`DayTable::retain`] (cut-over
//! end), which rebuilds each shard: its runs on disk are compacted into a new run file
//! without the shard's lock, then swapped in under it.

use crate::core::TxnKey;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A [`TxnKey`] in 16 bytes. Keys of valid messages always fit (each part is bounded by its
/// field's digits); a part beyond its width is cut to it (no panic on a hand-made key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackedKey([u32; 4]);

const TRANSMISSION_BITS: u32 = 34;
const STAN_BITS: u32 = 20;
const INST_BITS: u32 = 37;

fn low(v: u64, bits: u32) -> u64 {
    v & ((1u64 << bits) - 1)
}

impl PackedKey {
    /// The 16 bytes of a run file record (little-endian words).
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (chunk, w) in out.chunks_exact_mut(4).zip(self.0) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// The key's F7 (bits 0-33).
    #[must_use]
    pub fn transmission(&self) -> u64 {
        u64::from(self.0[0]) | (u64::from(self.0[1] & 0b11) << 32)
    }

    #[must_use]
    pub fn from_bytes(b: [u8; 16]) -> Self {
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        PackedKey([w(0), w(4), w(8), w(12)])
    }
}

impl From<&TxnKey> for PackedKey {
    fn from(k: &TxnKey) -> Self {
        let t = low(k.transmission, TRANSMISSION_BITS);
        let s = low(u64::from(k.stan), STAN_BITS);
        let a = low(k.acquirer, INST_BITS);
        let f = low(k.forwarding, INST_BITS);
        // bits 0-33 F7, 34-53 F11, 54-90 F32, 91-127 F33
        let v = u128::from(t)
            | (u128::from(s) << TRANSMISSION_BITS)
            | (u128::from(a) << (TRANSMISSION_BITS + STAN_BITS))
            | (u128::from(f) << (TRANSMISSION_BITS + STAN_BITS + INST_BITS));
        PackedKey([
            v as u32,
            (v >> 32) as u32,
            (v >> 64) as u32,
            (v >> 96) as u32,
        ])
    }
}

impl From<PackedKey> for TxnKey {
    fn from(p: PackedKey) -> Self {
        let [w0, w1, w2, w3] = p.0.map(u128::from);
        let v = w0 | (w1 << 32) | (w2 << 64) | (w3 << 96);
        let part = |shift: u32, bits: u32| low((v >> shift) as u64, bits);
        TxnKey {
            transmission: part(0, TRANSMISSION_BITS),
            stan: part(TRANSMISSION_BITS, STAN_BITS) as u32,
            acquirer: part(TRANSMISSION_BITS + STAN_BITS, INST_BITS),
            forwarding: part(TRANSMISSION_BITS + STAN_BITS + INST_BITS, INST_BITS),
        }
    }
}

/// Entries per arena chunk: a chunk is allocated when the previous one is full, so the
/// memory of new entries is taken a little at a time.
const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;

/// A value the table can write to a run file and read back, in exactly `SIZE` bytes.
pub trait Spill: Sized {
    const SIZE: usize;
    /// Append exactly `SIZE` bytes.
    fn put(&self, out: &mut Vec<u8>);
    /// Read a value from `SIZE` bytes; `None` if they are not a valid value.
    fn take(bytes: &[u8]) -> Option<Self>;
}

impl Spill for u32 {
    const SIZE: usize = 4;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn take(bytes: &[u8]) -> Option<Self> {
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }
}

impl Spill for iso8583::ResponseCode {
    const SIZE: usize = 2;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn take(bytes: &[u8]) -> Option<Self> {
        Some(iso8583::ResponseCode(bytes.try_into().ok()?))
    }
}

/// Where the day's tables keep what does not fit their memory bound.
#[derive(Debug, Clone)]
pub struct SpillTo {
    /// Directory of the run files (`NAME-SS.run`, one per table and shard). A table's files
    /// are removed when it is created: runs are a cache of the journal, rebuilt by the
    /// replay at start, so they are never fsynced.
    pub dir: std::path::PathBuf,
    /// Entries a table keeps in memory (over all shards) before a shard writes some out.
    pub memory_entries: usize,
}

impl SpillTo {
    /// The capacity to open a day's table with when `expected` entries a day are expected
    /// (0: not known): at least what its memory holds at most (a shard keeps 0.5 to 1.5
    /// times its share of the bound), with room for the index's own turnover (see
    /// [`DayTable::spilling`]). Indexes sized so from the start never grow during the day:
    /// each growth moves a shard's entries while its links wait, and every shard of a
    /// table reaches the same size at about the same moment.
    #[must_use]
    pub fn capacity_for(&self, expected: usize) -> usize {
        expected.max(self.memory_entries.saturating_mul(2))
    }

    /// Remove the run files of table `name` (the directory may not exist yet).
    pub fn remove_runs(&self, name: &str) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let prefix = format!("{name}-");
        for e in entries {
            let e = e?;
            let file = e.file_name();
            let file = file.to_string_lossy();
            if file.starts_with(&prefix) && file.ends_with(".run") {
                std::fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }
}

/// One shard: entries live in an append-only arena of fixed-size chunks; the hash index
/// holds only `(32 bits of the hash, arena position)`, 8 bytes per entry, and grows
/// incrementally ([`griddle`] moves a few entries per insert while it doubles, and the stored
/// hash is all a move needs: the arena is never read, and never moves).
///
/// With a memory bound, a shard whose arena reaches its share writes the arena out as a
/// sorted run and starts again empty ([`Cold`]); lookups that miss in memory consult the
/// runs, and an entry found there is copied back into memory (where later changes go: the
/// newest copy wins).
struct Shard<V> {
    index: Index,
    arena: Arena<V>,
    /// Arena size above which this shard spills its oldest chunks (`usize::MAX`: never).
    spill_at: usize,
    cold: Cold,
}

/// A shard's hash index: where each key's entry is in the arena.
enum Index {
    /// An in-memory table's: it grows with the day, a few entries moved per insert.
    Growing(griddle::HashMap<Slot, (), StoredHashBuilder>),
    /// A table with a memory bound's: sized for the bound at start.
    Bounded(Buckets),
}

impl Index {
    fn find(&self, h: u32, base: u32, eq: impl Fn(u32) -> bool) -> Option<u32> {
        match self {
            Index::Growing(index) => index
                .raw_entry()
                .from_hash(spread(h), |s| s.h == h && eq(s.pos))
                .map(|(s, ())| s.pos),
            Index::Bounded(index) => index.find(h, base, eq),
        }
    }

    /// File `pos` under `h` (not in the index yet).
    fn insert(&mut self, h: u32, pos: u32, base: u32) {
        match self {
            Index::Growing(index) => {
                index.insert(Slot { h, pos }, ());
            }
            Index::Bounded(index) => index.insert(h, pos, base),
        }
    }

    fn clear(&mut self) {
        match self {
            Index::Growing(index) => index.clear(),
            Index::Bounded(index) => index.clear(),
        }
    }

    /// Entries it takes before it grows (or, bounded, before it is rebuilt).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        match self {
            Index::Growing(index) => index.capacity(),
            Index::Bounded(index) => index.limit,
        }
    }
}

/// Slots of a [`Buckets`] bucket: 8 of 8 bytes, one cache line.
const BUCKET_SLOTS: usize = 8;

/// The index of a shard with a memory bound: buckets of eight slots, each bucket one cache
/// line, a key's probe going from its own bucket to the next until a free slot. A new key
/// (the common lookup: every request's) then reads one line where griddle's index reads its
/// control bytes and then a slot on another line, and files the key in the same line.
///
/// A slot is a word: the key's 32-bit hash above its arena position plus one (zero: free).
/// Entries a spill drops from the arena are not removed one by one: their slots are stale
/// (a position under the arena's base), lookups pass over them like over any slot that is
/// not free, and an insert takes the first one it meets. Slots only turn free again when
/// the whole index is rebuilt from its live slots, once live and stale ones fill seven
/// eighths of it: a pass over the shard's index every few spills. So no slot on a key's
/// probe before it is ever free, and a lookup may stop at the first free slot.
struct Buckets {
    /// `BUCKET_SLOTS` words a bucket from `start` (the first word on a cache line's start).
    words: Vec<u64>,
    start: usize,
    /// Buckets minus one (a power of two minus one).
    mask: usize,
    /// Slots not free (live or stale).
    used: usize,
    /// `used` at which the index is rebuilt: seven eighths of its slots.
    limit: usize,
    /// The live slots while it is rebuilt (kept: no allocation per rebuild).
    scratch: Vec<u64>,
}

impl Buckets {
    /// An index for `entries` live entries below its rebuild limit. Its words are zeroed
    /// by the allocator: resident only once written (or once reserved).
    fn with_capacity(entries: usize) -> Self {
        let slots = entries.max(1).saturating_mul(8).div_ceil(7);
        let buckets = slots.div_ceil(BUCKET_SLOTS).next_power_of_two();
        let (words, start) = Self::words(buckets);
        Self {
            words,
            start,
            mask: buckets - 1,
            used: 0,
            limit: buckets * BUCKET_SLOTS / 8 * 7,
            scratch: Vec::new(),
        }
    }

    /// Zeroed words for `buckets` buckets, one bucket more to start on a cache line.
    fn words(buckets: usize) -> (Vec<u64>, usize) {
        let words = vec![0u64; (buckets + 1) * BUCKET_SLOTS];
        let misaligned = words.as_ptr() as usize % 64;
        (words, (64 - misaligned) % 64 / 8)
    }

    fn word(h: u32, pos: u32) -> Option<u64> {
        Some(u64::from(h) << 32 | u64::from(pos.checked_add(1)?))
    }

    /// The arena position in slot word `w`; `None`: the slot is free.
    fn pos_of(w: u64) -> Option<u32> {
        (w as u32).checked_sub(1)
    }

    /// `h`'s probe: its own bucket, then the next ones round to it, each as the index of
    /// its first word in `words` and its slots.
    fn probe(&self, h: u32) -> impl Iterator<Item = (usize, &[u64])> {
        let home = h as usize;
        (0..=self.mask).map(move |i| {
            let first = self.start + (home.wrapping_add(i) & self.mask) * BUCKET_SLOTS;
            (
                first,
                self.words
                    .get(first..first + BUCKET_SLOTS)
                    .unwrap_or_default(),
            )
        })
    }

    fn find(&self, h: u32, base: u32, eq: impl Fn(u32) -> bool) -> Option<u32> {
        for (_, slots) in self.probe(h) {
            for &w in slots {
                let pos = Self::pos_of(w)?;
                if (w >> 32) as u32 == h && pos >= base && eq(pos) {
                    return Some(pos);
                }
            }
        }
        None
    }

    /// The first slot on `h`'s probe that is free or stale, as an index into `words`.
    fn place(&self, h: u32, base: u32) -> Option<usize> {
        self.probe(h).find_map(|(first, slots)| {
            slots
                .iter()
                .position(|&w| Self::pos_of(w).is_none_or(|pos| pos < base))
                .map(|k| first + k)
        })
    }

    fn insert(&mut self, h: u32, pos: u32, base: u32) {
        let Some(word) = Self::word(h, pos) else {
            return;
        };
        if self.used >= self.limit {
            self.rebuild(base);
        }
        let Some(i) = self.place(h, base) else {
            return;
        };
        if let Some(w) = self.words.get_mut(i) {
            if Self::pos_of(*w).is_none() {
                self.used += 1;
            }
            *w = word;
        }
    }

    /// Keep only the live slots (positions from `base`), every other slot free; twice the
    /// buckets if the live ones alone leave less than a sixteenth of the limit (the arena
    /// past what the index was sized for: a day past its estimate), so rebuilds stay rare.
    fn rebuild(&mut self, base: u32) {
        let mut live = std::mem::take(&mut self.scratch);
        live.clear();
        live.extend(
            self.words
                .iter()
                .copied()
                .filter(|&w| Self::pos_of(w).is_some_and(|pos| pos >= base)),
        );
        if live.len() + self.limit / 16 >= self.limit {
            *self = Self::with_capacity(self.limit.saturating_mul(2));
        } else {
            self.words.fill(0);
            self.used = 0;
        }
        for &w in &live {
            if let Some(i) = self.place((w >> 32) as u32, base) {
                if let Some(slot) = self.words.get_mut(i) {
                    *slot = w;
                    self.used += 1;
                }
            }
        }
        self.scratch = live;
    }

    fn clear(&mut self) {
        if self.used > 0 {
            self.words.fill(0);
            self.used = 0;
        }
    }

    /// Make the index resident, and set aside (resident too) the room a rebuild takes for
    /// `live` live slots at most. Returns the bytes.
    fn reserve(&mut self, live: usize) -> usize {
        touch(&mut self.words);
        if self.scratch.capacity() < live {
            let mut scratch = vec![0; live];
            touch(&mut scratch);
            scratch.clear();
            self.scratch = scratch;
        }
        (self.words.len() + self.scratch.capacity()) * 8
    }
}

/// An index entry: the hash it is filed under and where its entry is in the arena.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot {
    h: u32,
    pos: u32,
}

impl std::hash::Hash for Slot {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u32(self.h);
    }
}

/// Hashes a [`Slot`] to its stored hash (already a seeded hash of the key).
#[derive(Default)]
struct StoredHash(u64);

impl std::hash::Hasher for StoredHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u32` is ever called (by `Slot`); anything else still hashes.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u32(&mut self, h: u32) {
        self.0 = spread(h);
    }
}

type StoredHashBuilder = std::hash::BuildHasherDefault<StoredHash>;

/// Where an entry was put in its shard's memory. A transaction's original is looked up
/// again when its answer comes back, a few milliseconds later and still in memory: the
/// hint saves that lookup's two cache misses in the hash index (its control bytes and
/// slot) on a table of millions of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint(u32);

/// Records of one run are sorted by key; every `BLOCK`-th key stays in memory, so a lookup
/// reads one block of at most `BLOCK` records.
const BLOCK: usize = 64;

/// What a shard has written out: runs appended to one file, oldest first.
#[derive(Default)]
struct Cold {
    /// The run file in use: `base` with the generation in its name once a cut-over has
    /// compacted the runs (`NAME-SS.run`, then `NAME-SS.1.run`, ...).
    path: std::path::PathBuf,
    base: std::path::PathBuf,
    generation: u32,
    file: Option<std::fs::File>,
    end: u64,
    runs: Vec<Run>,
    /// Bloom filters over every key in the runs; a new one (twice as large) when the last
    /// is full, so a key absent from disk costs one probe per filter (a handful a day) and
    /// no read.
    blooms: Vec<Bloom>,
    records: usize,
    /// Records made stale by a newer copy (read back into memory, or written out again).
    stale: usize,
    /// Keys whose copy in run 0 (the runs a cut-over compacted) is superseded: a newer copy
    /// was in memory or in a newer run when the compaction was swapped in, and may since
    /// have been dropped. Lookups skip run 0 for them.
    tomb: std::collections::HashSet<PackedKey, crate::FastHash>,
    /// Keys this shard expects over the day (`expected_daily_transactions` / shards): the
    /// first filter is sized for them, so a day within the estimate never grows its
    /// filters (each growth doubles, and the last filter is up to half empty).
    bloom_hint: usize,
    /// Keys of the run a spill writes (see [`run_keys`]).
    run_keys: usize,
    /// Filters and block keys for runs of `run_keys` keys, reserved at start or left by
    /// runs a cut-over folded away: a spill takes them before it allocates.
    spare_blooms: Vec<Vec<u64>>,
    spare_firsts: Vec<Vec<PackedKey>>,
    /// [`Cold::reserve`] ran: filters that replace the shard's are made resident too.
    reserved: bool,
}

struct Run {
    offset: u64,
    count: usize,
    /// Key of record 0, BLOCK, 2 BLOCK, ...
    firsts: Vec<PackedKey>,
    /// The largest F7 among the run's keys. A run holds the oldest entries of its shard, so
    /// a new request's key (its F7 the acquirer's clock now) is newer than every run and
    /// is known absent without a filter probe: a cache miss in a filter of tens of
    /// megabytes, 2.6 % of the switch's samples at saturation (session 16).
    newest: u64,
    /// This run's keys alone: after the shard's filters pass a key (a duplicate, a related
    /// transaction's original, or a 1-2 % false positive), only runs whose own filter
    /// passes it are read.
    bloom: Bloom,
}

/// A blocked Bloom filter: four bits in one 64-bit word per key (one cache line touched per
/// probe), ~10 bits per key: about 2 % false positives when full.
struct Bloom {
    words: Vec<u64>,
    capacity: usize,
    count: usize,
}

impl Bloom {
    /// Words of a filter for `n` keys.
    fn words_for(n: usize) -> usize {
        (n.max(64) * 10).div_ceil(64)
    }

    fn with_capacity(n: usize) -> Self {
        Self {
            words: vec![0; Self::words_for(n)],
            capacity: n.max(64),
            count: 0,
        }
    }

    /// A filter for `n` keys in `words` (a spare of [`Bloom::words_for`] `n`), emptied.
    fn reuse(mut words: Vec<u64>, n: usize) -> Self {
        words.fill(0);
        Self {
            words,
            capacity: n.max(64),
            count: 0,
        }
    }

    fn probe(&self, h: u64) -> (usize, u64) {
        let g = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Multiply-shift maps the top 32 bits onto any length (no power of two needed).
        let word = (((g >> 32) * self.words.len() as u64) >> 32) as usize;
        let mask = (1u64 << (g & 63))
            | (1u64 << ((g >> 6) & 63))
            | (1u64 << ((g >> 12) & 63))
            | (1u64 << ((g >> 18) & 63));
        (word, mask)
    }

    fn insert(&mut self, h: u64) {
        let (w, m) = self.probe(h);
        if let Some(word) = self.words.get_mut(w) {
            *word |= m;
        }
        self.count += 1;
    }

    fn may_contain(&self, h: u64) -> bool {
        let (w, m) = self.probe(h);
        self.words.get(w).is_some_and(|word| word & m == m)
    }
}

fn key_of(b: &[u8]) -> Option<PackedKey> {
    Some(PackedKey::from_bytes(*b.first_chunk::<16>()?))
}

fn disk_error(what: &str, path: &std::path::Path, e: &std::io::Error) {
    metrics::counter!("switch_day_table_errors_total").increment(1);
    tracing::error!(path = %path.display(), error = %e, "day table {what} failed");
}

/// Read the records of `runs` (oldest first, as `(offset, count)`) into `out` with their
/// age (`first_age` for the newest run, counting up), leaving out run 0's `hidden` keys.
fn read_runs<V: Spill>(
    file: &std::fs::File,
    runs: &[(u64, usize)],
    hidden: Option<&std::collections::HashSet<PackedKey, crate::FastHash>>,
    out: &mut Vec<(PackedKey, usize, V)>,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let rec = 16 + V::SIZE;
    for (age, (i, &(offset, count))) in (1..).zip(runs.iter().enumerate().rev()) {
        let mut buf = vec![0; count * rec];
        file.read_exact_at(&mut buf, offset)?;
        for r in buf.chunks_exact(rec) {
            if let (Some(k), Some(v)) = (key_of(r), r.get(16..).and_then(V::take)) {
                if i == 0 && hidden.is_some_and(|h| h.contains(&k)) {
                    continue;
                }
                out.push((k, age, v));
            }
        }
    }
    Ok(())
}

/// The newest copy of each key (lowest age), sorted by key.
fn newest<V>(mut all: Vec<(PackedKey, usize, V)>) -> Vec<(PackedKey, V)> {
    all.sort_unstable_by_key(|(k, age, _)| (*k, *age));
    all.dedup_by_key(|(k, _, _)| *k);
    all.into_iter().map(|(k, _, v)| (k, v)).collect()
}

/// The runs of a shard as a cut-over found them (read without the shard's lock).
struct Snapshot {
    /// The run file (another handle: spills go on appending to it meanwhile, after these).
    file: std::fs::File,
    path: std::path::PathBuf,
    runs: Vec<(u64, usize)>,
    tomb: std::collections::HashSet<PackedKey, crate::FastHash>,
    generation: u32,
    new_path: std::path::PathBuf,
    /// The shard's [`Cold::bloom_hint`], and whether its memory was reserved: the compacted
    /// run's filter becomes the shard's, so it is sized (and made resident) the same way.
    bloom_hint: usize,
    reserved: bool,
}

/// The snapshot's runs compacted into one run (what `keep` accepts, newest copies only)
/// at the start of a new run file.
struct Compacted {
    file: std::fs::File,
    path: std::path::PathBuf,
    generation: u32,
    /// Runs of the snapshot: those after them were spilled during the compaction.
    snapshot_runs: usize,
    run: Option<Run>,
    bloom: Option<Bloom>,
    end: u64,
    /// The run's keys, sorted.
    keys: Vec<PackedKey>,
}

/// A new, empty run file (a cache of the journal: rebuilt at every start).
fn create_run_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// The middle step of [`DayTable::retain`], without the lock: read the snapshot's runs,
/// keep what `keep` accepts, write it to the new run file.
fn compact<V: Spill>(
    snap: Snapshot,
    keep: &mut impl FnMut(&mut V) -> bool,
    hasher: &crate::FastHash,
) -> std::io::Result<Compacted> {
    use std::os::unix::fs::FileExt;
    let mut all: Vec<(PackedKey, usize, V)> = Vec::new();
    read_runs(&snap.file, &snap.runs, Some(&snap.tomb), &mut all)?;
    let kept: Vec<(u64, PackedKey, V)> = newest(all)
        .into_iter()
        .filter_map(|(k, mut v)| keep(&mut v).then(|| (hasher.hash_one(k), k, v)))
        .collect();
    let file = create_run_file(&snap.new_path)?;
    let (run, bloom, end) = if kept.is_empty() {
        (None, None, 0)
    } else {
        // The shard's filter from now on: room for the new day's keys as well.
        let mut bloom = Bloom::with_capacity((kept.len() * 2).max(snap.bloom_hint));
        if snap.reserved {
            touch(&mut bloom.words);
        }
        let n = kept.len();
        let (buf, run) = build_run(
            kept.iter().map(|(h, k, v)| (*h, k, v)),
            0,
            Some(&mut bloom),
            Bloom::with_capacity(n),
            Vec::with_capacity(n.div_ceil(BLOCK)),
        );
        file.write_all_at(&buf, 0)?;
        (Some(run), Some(bloom), buf.len() as u64)
    };
    Ok(Compacted {
        file,
        path: snap.new_path,
        generation: snap.generation,
        snapshot_runs: snap.runs.len(),
        run,
        bloom,
        end,
        keys: kept.into_iter().map(|(_, k, _)| k).collect(),
    })
}

/// Encode sorted `entries` as a run at `offset`; their keys also go into `shard_bloom`.
/// The run's own filter and block keys are built in `own` and `firsts` (emptied first).
fn build_run<'a, V: Spill + 'a>(
    entries: impl ExactSizeIterator<Item = (u64, &'a PackedKey, &'a V)> + Clone,
    offset: u64,
    mut shard_bloom: Option<&mut Bloom>,
    mut own: Bloom,
    mut firsts: Vec<PackedKey>,
) -> (Vec<u8>, Run) {
    let n = entries.len();
    let mut buf = Vec::with_capacity(n * (16 + V::SIZE));
    firsts.clear();
    let mut newest = 0;
    for (i, (h, k, v)) in entries.enumerate() {
        newest = newest.max(k.transmission());
        buf.extend_from_slice(&k.to_bytes());
        v.put(&mut buf);
        if let Some(b) = shard_bloom.as_deref_mut() {
            b.insert(h);
        }
        own.insert(h);
        if i % BLOCK == 0 {
            firsts.push(*k);
        }
    }
    let run = Run {
        offset,
        count: n,
        firsts,
        newest,
        bloom: own,
    };
    (buf, run)
}

impl<V: Spill + Clone> Shard<V> {
    fn new(n: usize, spill_at: usize, path: std::path::PathBuf) -> Self {
        let index = if spill_at == usize::MAX {
            Index::Growing(griddle::HashMap::with_capacity_and_hasher(
                n,
                StoredHashBuilder::default(),
            ))
        } else {
            Index::Bounded(Buckets::with_capacity(n))
        };
        Self {
            index,
            arena: Arena::default(),
            spill_at,
            cold: Cold {
                base: path.clone(),
                path,
                run_keys: run_keys(spill_at),
                ..Cold::default()
            },
        }
    }

    fn find_hot(&self, key: &PackedKey, h: u32) -> Option<u32> {
        let arena = &self.arena;
        self.index.find(h, arena.base, |pos| {
            arena.get(pos).is_some_and(|(k, _)| k == key)
        })
    }

    fn hot_mut(&mut self, pos: u32) -> Option<&mut V> {
        self.arena.get_mut(pos).map(|(_, v)| v)
    }

    /// Where the entry of `key` is in memory, read back from a run and copied into memory
    /// first if it is on disk.
    fn locate(&mut self, key: &PackedKey, h: u64) -> Option<u32> {
        match self.find_hot(key, h as u32) {
            Some(pos) => Some(pos),
            None => {
                let v = self.find_cold(key, h)?;
                self.cold.stale += 1;
                self.push_hot(*key, h as u32, v)
            }
        }
    }

    /// The entry of `key`: at `hint` if it is still there and still `key`'s (a key has one
    /// copy in memory at most, so a matching key is the entry), else looked up in memory,
    /// or read back from a run and copied into memory.
    fn get_mut(&mut self, key: &PackedKey, h: u64, hint: Option<Hint>) -> Option<&mut V> {
        let pos = match self.at_hint(key, hint) {
            Some(pos) => pos,
            None => self.locate(key, h)?,
        };
        self.hot_mut(pos)
    }

    /// `hint`'s place if it still holds `key`'s entry.
    fn at_hint(&self, key: &PackedKey, hint: Option<Hint>) -> Option<u32> {
        let Hint(pos) = hint?;
        self.arena
            .get(pos)
            .is_some_and(|(k, _)| k == key)
            .then_some(pos)
    }

    fn push_hot(&mut self, key: PackedKey, h: u32, value: V) -> Option<u32> {
        let pos = self.arena.push((key, value))?;
        self.index.insert(h, pos, self.arena.base);
        Some(pos)
    }

    /// Forget the in-memory part (its entries were moved elsewhere or dropped).
    fn reset_hot(&mut self) {
        self.arena.clear();
        // Keeps its room (sized for the shard's bound at start).
        self.index.clear();
    }

    /// Entries the arena of a spilling shard holds at most: a spill takes it from just over
    /// `spill_at` down by up to SPILL_CHUNKS, so its bound and two chunks.
    fn arena_room(&self) -> usize {
        self.spill_at.saturating_add(2 * CHUNK)
    }

    /// Chunks the arena may hold in all (what [`Shard::reserve`] sets aside for a day past
    /// the bound), unbounded for an in-memory table.
    fn chunk_limit(&self) -> usize {
        if self.spill_at == usize::MAX {
            usize::MAX
        } else {
            self.arena_room().div_ceil(CHUNK)
        }
    }

    /// Set aside, touched, the memory this shard takes over a day of `keys` keys: its
    /// arena up to the bound and, past it, what its keys on disk take. Returns the bytes.
    fn reserve(&mut self, keys: usize) -> usize {
        if self.spill_at == usize::MAX {
            return 0;
        }
        // A day of fewer keys than the bound never fills the arena.
        let arena = self
            .arena
            .reserve(self.arena_room().min(keys.saturating_add(2 * CHUNK)));
        // The index was allocated at its size, but its pages are resident only once
        // written (as entries land on them, or here).
        let live = self.arena_room();
        let index = match &mut self.index {
            Index::Bounded(index) => index.reserve(live),
            Index::Growing(_) => 0,
        };
        arena + index + self.cold.reserve(keys)
    }

    /// Insert or replace; returns the previous value and where the entry is in memory.
    fn insert(
        &mut self,
        key: PackedKey,
        h: u64,
        value: V,
        hasher: &crate::FastHash,
    ) -> (Option<V>, Option<Hint>) {
        self.insert_unless(key, h, value, |_| false, hasher)
            .unwrap_or_else(|at| (None, at))
    }

    /// [`insert`](Self::insert), unless `key` has an entry for which `keep` holds: that
    /// entry then stays as it is, and `Err` says where it is in memory.
    fn insert_unless(
        &mut self,
        key: PackedKey,
        h: u64,
        value: V,
        keep: impl FnOnce(&V) -> bool,
        hasher: &crate::FastHash,
    ) -> Result<(Option<V>, Option<Hint>), Option<Hint>> {
        let (old, pos) = match self.locate(&key, h) {
            Some(pos) => match self.hot_mut(pos) {
                Some(v) if keep(v) => return Err(Some(Hint(pos))),
                Some(v) => (Some(std::mem::replace(v, value)), Some(pos)),
                None => (None, Some(pos)),
            },
            None => (None, self.push_hot(key, h as u32, value)),
        };
        if self.arena.len() > self.spill_at {
            self.spill(hasher);
        }
        Ok((old, pos.map(Hint)))
    }

    /// Write the oldest chunks (up to `SPILL_CHUNKS`, all but the one being filled; all of
    /// them when the bound is under a chunk) out as one sorted run and drop them from
    /// memory: each spill is small (a few hundred KB, about a millisecond), however large
    /// the bound. On an I/O error the entries stay in memory (logged, counted) and the next
    /// attempt waits for twice as many.
    fn spill(&mut self, hasher: &crate::FastHash) {
        let chunks = if self.spill_at < CHUNK {
            self.arena.chunks.len()
        } else {
            SPILL_CHUNKS.min(self.arena.chunks.len().saturating_sub(1))
        };
        if chunks == 0 {
            return;
        }
        // Each key hashed for the run's filters. The index keeps the dropped entries'
        // slots: they are stale once the arena's base passes them (see `Buckets`; only a
        // table with a memory bound spills).
        let mut order: Vec<(u64, &(PackedKey, V))> = self
            .arena
            .chunks
            .iter()
            .take(chunks)
            .flatten()
            .map(|e| (hasher.hash_one(e.0), e))
            .collect();
        order.sort_unstable_by_key(|(_, (k, _))| *k);
        if let Err(e) = self
            .cold
            .write_run(order.iter().map(|&(h, (k, v))| (h, k, v)))
        {
            disk_error("spill", &self.cold.path, &e);
            self.spill_at = self.spill_at.max(1).saturating_mul(2);
            return;
        }
        for _ in 0..chunks {
            self.arena.drop_front();
        }
    }

    fn find_cold(&self, key: &PackedKey, h: u64) -> Option<V> {
        let t = key.transmission();
        if self.cold.runs.iter().all(|r| t > r.newest)
            || !self.cold.blooms.iter().any(|b| b.may_contain(h))
        {
            return None;
        }
        let rec = 16 + V::SIZE;
        let mut buf = Vec::new();
        for (i, run) in self.cold.runs.iter().enumerate().rev() {
            if t > run.newest
                || !run.bloom.may_contain(h)
                || (i == 0 && self.cold.tomb.contains(key))
            {
                continue;
            }
            let block = match run.firsts.binary_search(key) {
                Ok(i) => i,
                Err(0) => continue,
                Err(i) => i - 1,
            };
            let start = block * BLOCK;
            let n = BLOCK.min(run.count.saturating_sub(start));
            buf.resize(n * rec, 0);
            let at = run.offset + (start * rec) as u64;
            if let Err(e) = self.cold.read(&mut buf, at) {
                disk_error("read", &self.cold.path, &e);
                return None;
            }
            let found = buf
                .chunks_exact(rec)
                .find(|r| key_of(r).as_ref() == Some(key))
                .and_then(|r| V::take(r.get(16..)?));
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Every entry once (the newest copy of a key), sorted by key; `None` if a run could not
    /// be read back. The shard is left as it is (its share of the table is read at once).
    fn collect_all(&self) -> Option<Vec<(PackedKey, V)>> {
        let mut all: Vec<(PackedKey, usize, V)> = Vec::new();
        if let Some(file) = &self.cold.file {
            let runs: Vec<(u64, usize)> =
                self.cold.runs.iter().map(|r| (r.offset, r.count)).collect();
            if let Err(e) = read_runs(file, &runs, Some(&self.cold.tomb), &mut all) {
                disk_error("read", &self.cold.path, &e);
                return None;
            }
        } else if !self.cold.runs.is_empty() {
            disk_error(
                "read",
                &self.cold.path,
                &std::io::Error::other("run file not open"),
            );
            return None;
        }
        for (k, v) in self.arena.iter() {
            all.push((*k, 0, v.clone()));
        }
        Some(newest(all))
    }

    /// The first step of [`DayTable::retain`], with the shard locked: what is on disk now.
    /// `None` when nothing is (the whole retain then happens in [`Self::finish_retain`]).
    fn snapshot(&self) -> Option<Snapshot> {
        let file = self.cold.file.as_ref()?;
        if self.cold.runs.is_empty() {
            return None;
        }
        let file = match file.try_clone() {
            Ok(f) => f,
            Err(e) => {
                disk_error("reopen", &self.cold.path, &e);
                return None;
            }
        };
        let generation = self.cold.generation + 1;
        Some(Snapshot {
            file,
            path: self.cold.path.clone(),
            runs: self.cold.runs.iter().map(|r| (r.offset, r.count)).collect(),
            tomb: self.cold.tomb.clone(),
            generation,
            new_path: self.cold.base.with_extension(format!("{generation}.run")),
            bloom_hint: self.cold.bloom_hint,
            reserved: self.cold.reserved,
        })
    }

    /// The last step of [`DayTable::retain`], with the shard locked again: the compacted
    /// runs replace those of the snapshot; memory and the runs spilled since (a few) go
    /// through `keep` as before; keys of the compacted run that have a newer copy are
    /// hidden in it (the newer copy decides, even once it is dropped). Returns the old run
    /// file, to be removed once the lock is released.
    fn finish_retain(
        &mut self,
        compacted: Option<Compacted>,
        hasher: &crate::FastHash,
        keep: &mut impl FnMut(&mut V) -> bool,
    ) -> Option<std::path::PathBuf> {
        let newer_from = compacted.as_ref().map_or(0, |c| c.snapshot_runs);
        // Memory and the runs after the snapshot, newest copy of each key.
        let mut recent: Vec<(PackedKey, usize, V)> = Vec::new();
        if let Some(file) = &self.cold.file {
            let runs: Vec<(u64, usize)> = self
                .cold
                .runs
                .iter()
                .skip(newer_from)
                .map(|r| (r.offset, r.count))
                .collect();
            // Run 0 is among them only without a compaction (its hidden keys then apply).
            // The hidden keys belong to the first run, which is compacted unless nothing was.
            let tomb = (newer_from == 0).then_some(&self.cold.tomb);
            if let Err(e) = read_runs(file, &runs, tomb, &mut recent) {
                // Nothing is dropped that could not be read: the shard stays as it was.
                disk_error("read", &self.cold.path, &e);
                return compacted.map(|c| c.path);
            }
        }
        for (k, v) in self.arena.iter() {
            recent.push((*k, 0, v.clone()));
        }
        let recent = newest(recent);
        let old = match compacted {
            Some(c) => {
                let mut tomb = std::collections::HashSet::with_hasher(crate::FastHash::default());
                for (k, _) in &recent {
                    if c.keys.binary_search(k).is_ok() {
                        tomb.insert(*k);
                    }
                }
                let old = std::mem::replace(&mut self.cold.path, c.path);
                self.cold.file = Some(c.file);
                self.cold.generation = c.generation;
                self.cold.end = c.end;
                self.cold.records = c.run.as_ref().map_or(0, |r| r.count);
                for run in std::mem::replace(&mut self.cold.runs, c.run.into_iter().collect()) {
                    self.cold.recycle(run);
                }
                match c.bloom {
                    Some(b) => self.cold.blooms = vec![b],
                    None => self.cold.empty_filters(),
                }
                self.cold.stale = tomb.len();
                self.cold.tomb = tomb;
                Some(old)
            }
            None => {
                self.cold.reset();
                None
            }
        };
        self.reset_hot();
        let kept: Vec<(u64, PackedKey, V)> = recent
            .into_iter()
            .filter_map(|(k, mut v)| keep(&mut v).then(|| (hasher.hash_one(k), k, v)))
            .collect();
        if kept.len() > self.spill_at {
            match self.cold.write_run(kept.iter().map(|(h, k, v)| (*h, k, v))) {
                Ok(()) => return old,
                Err(e) => disk_error("spill", &self.cold.path, &e),
            }
        }
        for (h, k, v) in kept {
            self.push_hot(k, h as u32, v);
        }
        old
    }

    fn for_each(&self, visit: &mut impl FnMut(TxnKey, &V)) {
        for (k, v) in self.collect_all().unwrap_or_default() {
            visit(TxnKey::from(k), &v);
        }
    }
}

impl Cold {
    fn file(&mut self) -> std::io::Result<&std::fs::File> {
        if self.file.is_none() {
            self.file = Some(create_run_file(&self.path)?);
        }
        self.file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("run file not open"))
    }

    /// Append `entries` (sorted by key, each with its hash) as a run, and file their keys in
    /// the shard's filters and the run's own.
    fn write_run<'a, V: Spill + 'a>(
        &mut self,
        entries: impl ExactSizeIterator<Item = (u64, &'a PackedKey, &'a V)> + Clone,
    ) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let n = entries.len();
        let need_new = self.blooms.last().is_none_or(|b| b.count + n > b.capacity);
        if need_new {
            let cap = self
                .blooms
                .last()
                .map_or((n * 4).max(self.bloom_hint), |b| b.capacity * 2)
                .max(n);
            self.blooms.push(Bloom::with_capacity(cap));
        }
        let end = self.end;
        // Encoded first, filed in the shard's filter only once written.
        let (own, firsts) = self.run_buffers(n);
        let (buf, run) = build_run(entries.clone(), end, None, own, firsts);
        if let Err(e) = self.file().and_then(|f| f.write_all_at(&buf, end)) {
            self.recycle(run);
            return Err(e);
        }
        if let Some(bloom) = self.blooms.last_mut() {
            for (h, _, _) in entries {
                bloom.insert(h);
            }
        }
        self.runs.push(run);
        self.end += buf.len() as u64;
        self.records += n;
        Ok(())
    }

    /// Runs exist only after a write opened the file.
    fn read(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("run file not open"))?
            .read_exact_at(buf, at)
    }

    /// A filter and block keys for a run of `n` keys: spares for a spill's run (new ones
    /// if there are none left, sized so they can be spares later), new ones for a larger
    /// run (a cut-over's).
    fn run_buffers(&mut self, n: usize) -> (Bloom, Vec<PackedKey>) {
        if n > self.run_keys {
            return (
                Bloom::with_capacity(n),
                Vec::with_capacity(n.div_ceil(BLOCK)),
            );
        }
        let bloom = match self.spare_blooms.pop() {
            Some(words) => Bloom::reuse(words, self.run_keys),
            None => Bloom::with_capacity(self.run_keys),
        };
        let firsts = self
            .spare_firsts
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.run_keys.div_ceil(BLOCK)));
        (bloom, firsts)
    }

    /// Keep the filter and block keys of a spill's run for the next spill.
    /// Keeps only buffers of a spill's run's size: a cut-over's run has its own sizes.
    fn recycle(&mut self, run: Run) {
        if run.count <= self.run_keys {
            if run.bloom.words.len() == Bloom::words_for(self.run_keys) {
                self.spare_blooms.push(run.bloom.words);
            }
            if run.firsts.capacity() >= self.run_keys.div_ceil(BLOCK) {
                self.spare_firsts.push(run.firsts);
            }
        }
    }

    /// Set aside, touched, what `keys` keys on disk take in memory: the shard's filter and
    /// the filters and block keys of their runs. Returns the bytes set aside.
    fn reserve(&mut self, keys: usize) -> usize {
        let mut bytes = 0;
        self.reserved = true;
        if self.blooms.is_empty() && keys > 0 {
            let mut b = Bloom::with_capacity(keys);
            touch(&mut b.words);
            bytes += b.words.len() * 8;
            self.blooms.push(b);
        }
        let runs = keys.div_ceil(self.run_keys.max(1));
        self.runs.reserve(runs);
        let blocks = self.run_keys.div_ceil(BLOCK);
        for _ in self.spare_blooms.len()..runs {
            let mut words = vec![0; Bloom::words_for(self.run_keys)];
            touch(&mut words);
            bytes += words.len() * 8;
            self.spare_blooms.push(words);
        }
        for _ in self.spare_firsts.len()..runs {
            // Filled, then emptied: written like the filters (~1 KB each, but one a run).
            let mut firsts = vec![PackedKey([0; 4]); blocks];
            firsts.clear();
            bytes += blocks * 16;
            self.spare_firsts.push(firsts);
        }
        bytes
    }

    /// No key on disk any more: the first filter is kept, emptied (it is the one a reserve
    /// sized for the day), the others dropped.
    fn empty_filters(&mut self) {
        self.blooms.truncate(1);
        if let Some(b) = self.blooms.first_mut() {
            b.words.fill(0);
            b.count = 0;
        }
    }

    fn reset(&mut self) {
        for run in std::mem::take(&mut self.runs) {
            self.recycle(run);
        }
        self.empty_filters();
        self.tomb.clear();
        self.records = 0;
        self.stale = 0;
        self.end = 0;
        if let Some(f) = &self.file {
            if let Err(e) = f.set_len(0) {
                disk_error("truncate", &self.path, &e);
            }
        }
    }
}

/// Chunks spilled at a time once a shard is at its bound (16 x 256 entries).
const SPILL_CHUNKS: usize = 16;
/// Keys of the run a spill writes at bound `spill_at`: the whole arena under a chunk, else
/// its oldest full chunks (up to `SPILL_CHUNKS`, all but the one being filled).
fn run_keys(spill_at: usize) -> usize {
    if spill_at == usize::MAX {
        0
    } else if spill_at < CHUNK {
        spill_at + 1
    } else {
        CHUNK * SPILL_CHUNKS.min((spill_at + 1).div_ceil(CHUNK) - 1)
    }
}

/// Write to every page of `words`: a large zeroed allocation is mapped lazily, and is
/// only resident (and counted) once written.
fn touch(words: &mut [u64]) {
    for w in words.iter_mut().step_by(4096 / 8) {
        *w = std::hint::black_box(0);
    }
}

/// The in-memory entries of a shard: fixed-size chunks, oldest first. Positions grow with
/// every entry and are never reused; spilling drops whole chunks from the front.
struct Arena<V> {
    chunks: std::collections::VecDeque<Vec<(PackedKey, V)>>,
    /// Empty chunks, reserved or left by a spill: a new chunk is taken from here first, so
    /// a shard at its bound allocates nothing (and frees nothing to another thread's heap).
    spare: Vec<Vec<(PackedKey, V)>>,
    /// Position of the first entry of the first chunk.
    base: u32,
    /// Position the next entry gets.
    next: u32,
}

impl<V> Default for Arena<V> {
    fn default() -> Self {
        Self {
            chunks: std::collections::VecDeque::new(),
            spare: Vec::new(),
            base: 0,
            next: 0,
        }
    }
}

impl<V> Arena<V> {
    fn slot(&self, pos: u32) -> Option<(usize, usize)> {
        let i = pos.checked_sub(self.base)? as usize;
        Some((i >> CHUNK_BITS, i & (CHUNK - 1)))
    }

    fn get(&self, pos: u32) -> Option<&(PackedKey, V)> {
        let (c, i) = self.slot(pos)?;
        self.chunks.get(c)?.get(i)
    }

    fn get_mut(&mut self, pos: u32) -> Option<&mut (PackedKey, V)> {
        let (c, i) = self.slot(pos)?;
        self.chunks.get_mut(c)?.get_mut(i)
    }

    /// Entries held.
    fn len(&self) -> usize {
        (self.next - self.base) as usize
    }

    /// Append; `None` once positions would pass 2^32 (4 billion entries through one
    /// shard: never in a settlement day; the entry is then not kept rather than mis-indexed).
    fn push(&mut self, e: (PackedKey, V)) -> Option<u32> {
        let pos = self.next;
        let next = pos.checked_add(1)?;
        if self.chunks.back().is_none_or(|c| c.len() == CHUNK) {
            let chunk = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(CHUNK));
            self.chunks.push_back(chunk);
        }
        self.chunks.back_mut()?.push(e);
        self.next = next;
        Some(pos)
    }

    /// Drop the oldest chunk's entries, keeping the chunk for reuse. Only the last chunk
    /// can be partly filled, so the next one (if any) starts right after it.
    fn drop_front(&mut self) {
        if let Some(mut c) = self.chunks.pop_front() {
            self.base += c.len() as u32;
            c.clear();
            self.spare.push(c);
        }
    }

    /// Drop every entry, keeping the chunks for reuse; positions start again from 0.
    fn clear(&mut self) {
        while !self.chunks.is_empty() {
            self.drop_front();
        }
        self.base = 0;
        self.next = 0;
    }

    /// Set aside empty chunks, touched, until `entries` fit the arena without allocating.
    /// Returns the bytes set aside.
    fn reserve(&mut self, entries: usize) -> usize {
        let mut bytes = 0;
        for _ in self.chunks.len() + self.spare.len()..entries.div_ceil(CHUNK) {
            self.spare.push(Self::touched_chunk());
            bytes += Self::CHUNK_BYTES;
        }
        bytes
    }

    const CHUNK_BYTES: usize = CHUNK * std::mem::size_of::<(PackedKey, V)>();

    /// An empty chunk whose memory has been written once (one byte a page), so it is
    /// resident: whoever fills it later takes no page faults.
    fn touched_chunk() -> Vec<(PackedKey, V)> {
        let stride = (4096 / std::mem::size_of::<(PackedKey, V)>()).max(1);
        let mut c: Vec<(PackedKey, V)> = Vec::with_capacity(CHUNK);
        for slot in c.spare_capacity_mut().iter_mut().step_by(stride) {
            *slot = std::mem::MaybeUninit::zeroed();
        }
        c
    }

    /// Spare chunks to add so that `ahead` are ready, without the arena passing `limit`
    /// chunks in all.
    fn spares_wanted(&self, ahead: usize, limit: usize) -> usize {
        let held = self.chunks.len() + self.spare.len();
        ahead
            .saturating_sub(self.spare.len())
            .min(limit.saturating_sub(held))
    }

    fn iter(&self) -> impl Iterator<Item = &(PackedKey, V)> {
        self.chunks.iter().flatten()
    }
}

/// The 32 stored hash bits, spread over the 64 the index uses: its bucket position comes
/// from the low bits, its 7-bit tag from the top ones.
fn spread(h: u32) -> u64 {
    (u64::from(h) << 32) | u64::from(h)
}

/// A sharded map from transaction key to `V` that never stalls to grow and, with a memory
/// bound, keeps what exceeds it on disk.
pub struct DayTable<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    hasher: crate::FastHash,
}

/// Enough shards that two arbiters and the journal replay rarely meet on one, few enough
/// that an empty table costs nothing. A power of two, at most 64 (six hash bits).
const SHARDS: usize = 64;

impl<V: Spill + Clone> Default for DayTable<V> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<V: Spill + Clone> std::fmt::Debug for DayTable<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayTable")
            .field("len", &self.len())
            .finish()
    }
}

impl<V: Spill + Clone> DayTable<V> {
    /// A table in memory only, whose indexes have room for `capacity` entries before they
    /// first grow.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(per_shard, usize::MAX, Default::default())))
                .collect(),
            hasher: crate::FastHash::default(),
        }
    }

    /// A table that keeps about `spill.memory_entries` entries in memory and the rest in
    /// run files under `spill.dir` (created; this table's old run files removed). Shards
    /// spill at staggered sizes (their share of the bound, times 0.5 to 1.5), so they do
    /// not all write at the same moment.
    pub fn spilling(capacity: usize, spill: &SpillTo, name: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(&spill.dir)?;
        spill.remove_runs(name)?;
        // A bound under one entry per shard writes every entry out at once (tests).
        let share = spill.memory_entries / SHARDS;
        let per_shard = capacity.div_ceil(SHARDS);
        Ok(Self {
            shards: (0..SHARDS)
                .map(|i| {
                    // Half to one and a half times the share: the shards average the
                    // bound and never all reach it at the same moment.
                    let at = share / 2 + share * i / SHARDS;
                    let path = spill.dir.join(format!("{name}-{i:02}.run"));
                    // Spills leave tombstones in the index; when they fill it, griddle
                    // moves it to a new one with room for 1.25 times its live entries. An
                    // index with that room for the shard's share never needs more.
                    let room = at + at / 4 + 2;
                    let mut shard = Shard::new(per_shard.min(room), at, path);
                    // A quarter more than the share: keys do not spread exactly evenly.
                    shard.cold.bloom_hint = per_shard + per_shard / 4;
                    Mutex::new(shard)
                })
                .collect(),
            hasher: crate::FastHash::default(),
        })
    }

    fn lock(m: &Mutex<Shard<V>>) -> MutexGuard<'_, Shard<V>> {
        // A panic while a shard was held leaves it consistent (an entry is pushed to the
        // arena before it is indexed, and a rebuild swaps in a whole new shard): keep
        // serving rather than take the switch down.
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key's shard (top six bits of its 64-bit hash) and the hash.
    fn shard(&self, key: &PackedKey) -> (MutexGuard<'_, Shard<V>>, u64) {
        let h = self.hasher.hash_one(key);
        let i = (h >> 58) as usize & (SHARDS - 1);
        (Self::lock(&self.shards[i]), h)
    }

    /// Insert or replace; returns the previous value.
    pub fn insert(&self, key: &TxnKey, value: V) -> Option<V> {
        self.insert_hinted(key, value).0
    }

    /// [`insert`](Self::insert), also returning where the entry went in memory: a later
    /// [`with_hinted`](Self::with_hinted) of the same key goes straight to it while it is
    /// still there.
    pub fn insert_hinted(&self, key: &TxnKey, value: V) -> (Option<V>, Option<Hint>) {
        let k = PackedKey::from(key);
        let (mut shard, h) = self.shard(&k);
        shard.insert(k, h, value, &self.hasher)
    }

    /// [`insert_hinted`](Self::insert_hinted), trying `hint` first: an entry still there
    /// under `key` is replaced in place, without looking the key up.
    pub fn insert_at(
        &self,
        key: &TxnKey,
        hint: Option<Hint>,
        value: V,
    ) -> (Option<V>, Option<Hint>) {
        let k = PackedKey::from(key);
        let (mut shard, h) = self.shard(&k);
        if let Some(v) = shard.at_hint(&k, hint).and_then(|pos| shard.hot_mut(pos)) {
            return (Some(std::mem::replace(v, value)), hint);
        }
        shard.insert(k, h, value, &self.hasher)
    }

    /// [`insert_hinted`](Self::insert_hinted), unless `key` has an entry for which `keep`
    /// holds (checked and inserted under one lock): that entry then stays as it is, and
    /// `Err` says where it is in memory.
    pub fn insert_unless(
        &self,
        key: &TxnKey,
        value: V,
        keep: impl FnOnce(&V) -> bool,
    ) -> Result<(Option<V>, Option<Hint>), Option<Hint>> {
        let k = PackedKey::from(key);
        let (mut shard, h) = self.shard(&k);
        shard.insert_unless(k, h, value, keep, &self.hasher)
    }

    /// Run `f` on the entry of `key` with its shard locked (check-then-change is atomic).
    /// Never call back into the same table from `f`.
    pub fn with<R>(&self, key: &TxnKey, f: impl FnOnce(Option<&mut V>) -> R) -> R {
        self.with_hinted(key, None, f)
    }

    /// [`with`](Self::with), trying `hint` first. A hint that no longer holds (the entry
    /// was spilled, the shard rebuilt) costs only the check: the key is then looked up.
    pub fn with_hinted<R>(
        &self,
        key: &TxnKey,
        hint: Option<Hint>,
        f: impl FnOnce(Option<&mut V>) -> R,
    ) -> R {
        let k = PackedKey::from(key);
        let (mut shard, h) = self.shard(&k);
        f(shard.get_mut(&k, h, hint))
    }

    /// A copy of the value of `key`.
    #[must_use]
    pub fn get(&self, key: &TxnKey) -> Option<V>
    where
        V: Copy,
    {
        self.with(key, |v| v.copied())
    }

    /// Keep the entries for which `keep` says so (shard by shard; each shard is rebuilt).
    ///
    /// A shard's runs on disk are read back and compacted without its lock (a cut-over on a
    /// busy day has gigabytes of them); the lock is held to take a snapshot of them and,
    /// at the end, to filter memory and the few runs spilled meanwhile and swap the
    /// compacted run in.
    pub fn retain(&self, mut keep: impl FnMut(&mut V) -> bool) {
        for s in &*self.shards {
            let snapshot = Self::lock(s).snapshot();
            let compacted = match snapshot {
                None => None,
                Some(snap) => {
                    let path = snap.path.clone();
                    match compact(snap, &mut keep, &self.hasher) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            // Nothing is dropped that could not be read: the shard stays
                            // as it was.
                            disk_error("compaction", &path, &e);
                            continue;
                        }
                    }
                }
            };
            let old = Self::lock(s).finish_retain(compacted, &self.hasher, &mut keep);
            if let Some(old) = old {
                if let Err(e) = std::fs::remove_file(&old) {
                    disk_error("remove", &old, &e);
                }
            }
        }
    }

    /// Visit every entry once (shard by shard; entries inserted meanwhile may be missed).
    /// Entries on disk are read back a shard at a time: meant for start-up and tools, not
    /// the hot path.
    pub fn for_each(&self, mut visit: impl FnMut(TxnKey, &V)) {
        for s in &*self.shards {
            Self::lock(s).for_each(&mut visit);
        }
    }

    pub fn clear(&self) {
        for s in &*self.shards {
            let mut s = Self::lock(s);
            s.cold.reset();
            s.reset_hot();
        }
    }

    /// Entries, in memory or on disk.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = Self::lock(s);
                (s.arena.len() + s.cold.records).saturating_sub(s.cold.stale)
            })
            .sum()
    }

    /// Empty chunks ready in the shards' arenas (reserved, prefaulted or left by spills).
    #[must_use]
    pub fn ready_chunks(&self) -> usize {
        self.shards
            .iter()
            .map(|s| Self::lock(s).arena.spare.len())
            .sum()
    }

    /// Keep `ahead` empty, resident chunks ready in every shard's arena (within a spilling
    /// shard's bound), made outside the shard's lock. Called from a background thread while
    /// the day's tables grow: the page faults of their fresh memory then happen there, not
    /// on a link's thread in the middle of a request (at 50,000/s they stalled the links
    /// for tens of milliseconds at a time). Returns the bytes added.
    pub fn prefault(&self, ahead: usize) -> usize {
        let mut bytes = 0;
        for shard in &self.shards {
            let (want, limit) = {
                let s = Self::lock(shard);
                let limit = s.chunk_limit();
                (s.arena.spares_wanted(ahead, limit), limit)
            };
            if want == 0 {
                continue;
            }
            let mut fresh: Vec<_> = (0..want).map(|_| Arena::<V>::touched_chunk()).collect();
            let mut s = Self::lock(shard);
            // The shard moved on meanwhile: keep only what it still wants.
            fresh.truncate(s.arena.spares_wanted(ahead, limit));
            bytes += fresh.len() * Arena::<V>::CHUNK_BYTES;
            s.arena.spare.append(&mut fresh);
        }
        bytes
    }

    /// Set aside now, written so it is resident, the memory the table takes over a day
    /// within the capacity it was opened with: each shard's arena up to its bound, and the
    /// filters and block keys of its entries on disk. Within that day the table then
    /// allocates nothing more, and the process's memory stays flat. Only for a spilling
    /// table (an in-memory one grows with its day); returns the bytes set aside.
    pub fn reserve(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let mut s = Self::lock(s);
                let keys = s.cold.bloom_hint;
                s.reserve(keys)
            })
            .sum()
    }

    /// Entries held in memory.
    #[must_use]
    pub fn in_memory(&self) -> usize {
        self.shards.iter().map(|s| Self::lock(s).arena.len()).sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(t: u64, s: u32, a: u64, f: u64) -> TxnKey {
        TxnKey {
            transmission: t,
            stan: s,
            acquirer: a,
            forwarding: f,
        }
    }

    #[test]
    fn a_bounded_index_finds_what_it_holds_past_collisions_stale_slots_and_rebuilds() {
        // 4 buckets of 8: limit 28.
        let mut b = Buckets::with_capacity(20);
        assert_eq!((b.mask + 1, b.limit), (4, 28));
        assert_eq!(
            b.words.get(b.start..).map(|w| w.as_ptr() as usize % 64),
            Some(0)
        );
        let all = |b: &Buckets, base: u32, hs: &[(u32, u32)]| {
            for &(h, pos) in hs {
                let want = (pos >= base).then_some(pos);
                assert_eq!(b.find(h, base, |p| p == pos), want, "h {h} pos {pos}");
            }
        };
        // Twenty keys of one hash fill its bucket and run on into the next ones, the last
        // bucket's probe wrapping round to the first.
        let same: Vec<(u32, u32)> = (0..20).map(|pos| (3, pos)).collect();
        for &(h, pos) in &same {
            b.insert(h, pos, 0);
        }
        all(&b, 0, &same);
        assert_eq!(b.find(3, 0, |p| p == 99), None);
        assert_eq!(b.find(7, 0, |_| true), None);
        // The arena's base passes the first twelve: stale, not found, and taken again.
        all(&b, 12, &same);
        let more: Vec<(u32, u32)> = (20..28).map(|pos| (pos, pos)).collect();
        for &(h, pos) in &more {
            b.insert(h, pos, 12);
        }
        all(&b, 12, &same);
        all(&b, 12, &more);
        // Filling up to the limit rebuilds from the live slots only, without growing.
        let used_before = b.used;
        let later: Vec<(u32, u32)> = (28..40).map(|pos| (pos * 7, pos)).collect();
        for &(h, pos) in &later {
            b.insert(h, pos, 12);
        }
        assert!(b.used <= b.limit && b.used >= used_before.min(b.limit) - 12);
        // 24 slots were taken (4 of `more` reused stale ones); the rebuild dropped the other
        // stale ones, so all 28 taken now are the live entries.
        assert_eq!(used_before, 24);
        let live = |b: &Buckets, base: u32| {
            let live = |w: u64| Buckets::pos_of(w).is_some_and(|pos| pos >= base);
            b.words.iter().filter(|&&w| live(w)).count()
        };
        assert_eq!((b.used, live(&b, 12)), (28, 28));
        assert_eq!(b.mask + 1, 4);
        all(&b, 12, &same);
        all(&b, 12, &more);
        all(&b, 12, &later);
        // Live keys past the limit grow it (a day past its estimate), and all stay found.
        let many: Vec<(u32, u32)> = (40..80u32)
            .map(|pos| (pos.wrapping_mul(0x9E37_79B9), pos))
            .collect();
        for &(h, pos) in &many {
            b.insert(h, pos, 12);
        }
        assert!(b.mask + 1 > 4);
        for set in [&same, &more, &later, &many] {
            all(&b, 12, set);
        }
        b.clear();
        assert_eq!(b.find(3, 0, |_| true), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// A spilling table, its bounded indexes turning over many times, against a map:
        /// every insert returns the value it replaced, every key reads back its last value.
        #[test]
        fn a_spilling_table_reads_back_what_a_map_would(
            ops in proptest::collection::vec((0u32..600, any::<u32>()), 1..3_000),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let to = SpillTo {
                dir: dir.path().join("model"),
                memory_entries: 64 * 8,
            };
            let t = DayTable::spilling(to.capacity_for(0), &to, "model").unwrap();
            let mut model = std::collections::HashMap::new();
            for (k, v) in ops {
                let k = key(u64::from(k), k, 7, 8);
                prop_assert_eq!(t.insert(&k, v), model.insert(k, v));
            }
            prop_assert_eq!(t.len(), model.len());
            for k in 0..600u32 {
                let k = key(u64::from(k), k, 7, 8);
                prop_assert_eq!(t.get(&k), model.get(&k).copied());
            }
        }

        /// One shard spilling its oldest chunks while newer ones stay (so stale slots lie
        /// on live keys' probes), against a map.
        #[test]
        fn a_shard_spilling_part_of_its_arena_reads_back_what_a_map_would(
            ops in proptest::collection::vec((0u32..3_000, any::<u32>()), 1..6_000),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let hasher = crate::FastHash::default();
            let mut shard: Shard<u32> = Shard::new(800, 600, dir.path().join("shard.run"));
            let mut model = std::collections::HashMap::new();
            for (k, v) in ops {
                let k = PackedKey::from(&key(u64::from(k), k, 7, 8));
                let h = hasher.hash_one(k);
                prop_assert_eq!(shard.insert(k, h, v, &hasher).0, model.insert(k, v));
            }
            for k in 0..3_000u32 {
                let k = PackedKey::from(&key(u64::from(k), k, 7, 8));
                let h = hasher.hash_one(k);
                prop_assert_eq!(shard.get_mut(&k, h, None).copied(), model.get(&k).copied());
            }
        }
    }

    proptest! {
        /// Every key a valid message can carry survives packing unchanged.
        #[test]
        fn keys_of_valid_fields_round_trip(
            t in 0u64..=9_999_999_999,
            s in 0u32..=999_999,
            a in 0u64..=99_999_999_999,
            f in 0u64..=99_999_999_999,
        ) {
            let k = key(t, s, a, f);
            prop_assert_eq!(TxnKey::from(PackedKey::from(&k)), k);
        }
    }

    #[test]
    fn extreme_keys_round_trip_and_stay_distinct() {
        let max = key(9_999_999_999, 999_999, 99_999_999_999, 99_999_999_999);
        let keys = [
            key(0, 0, 0, 0),
            max,
            key(1, 0, 0, 0),
            key(0, 1, 0, 0),
            key(0, 0, 1, 0),
            key(0, 0, 0, 1),
        ];
        let packed: std::collections::HashSet<_> = keys.iter().map(PackedKey::from).collect();
        assert_eq!(packed.len(), keys.len());
        for k in keys {
            assert_eq!(TxnKey::from(PackedKey::from(&k)), k);
        }
        assert_eq!(std::mem::size_of::<PackedKey>(), 16);
        assert_eq!(std::mem::size_of::<(PackedKey, u32)>(), 20);
    }

    #[test]
    fn out_of_range_parts_are_cut_not_a_panic() {
        let k = key(u64::MAX, u32::MAX, u64::MAX, u64::MAX);
        let back = TxnKey::from(PackedKey::from(&k));
        assert_eq!(back.transmission, (1 << 34) - 1);
        assert_eq!(back.stan, (1 << 20) - 1);
    }

    #[test]
    fn insert_with_retain_for_each_len() {
        let t: DayTable<u32> = DayTable::default();
        for i in 0..10_000u32 {
            assert_eq!(t.insert(&key(u64::from(i), i % 1000, 1, 2), i), None);
        }
        assert_eq!(t.len(), 10_000);
        assert_eq!(t.insert(&key(5, 5, 1, 2), 99), Some(5));
        assert_eq!(t.get(&key(5, 5, 1, 2)), Some(99));
        assert_eq!(t.get(&key(5, 6, 1, 2)), None);
        t.with(&key(7, 7, 1, 2), |v| *v.unwrap() += 1);
        assert_eq!(t.get(&key(7, 7, 1, 2)), Some(8));
        t.retain(|v| *v % 2 == 0);
        // the 5 000 even values, plus 7 that became 8
        assert_eq!(t.len(), 5_001);
        let mut sum = 0u64;
        t.for_each(|k, v| {
            assert_eq!(u64::from(*v) % 2, 0);
            assert_eq!(k.acquirer, 1);
            sum += 1;
        });
        assert_eq!(sum, 5_001);
        t.clear();
        assert!(t.is_empty());
    }

    #[test]
    fn concurrent_inserts_are_all_kept() {
        let t: std::sync::Arc<DayTable<u32>> = std::sync::Arc::default();
        let threads: Vec<_> = (0..4u64)
            .map(|n| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u32 {
                        t.insert(&key(n, i, 1, 2), i);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(t.len(), 80_000);
        assert_eq!(t.get(&key(3, 19_999, 1, 2)), Some(19_999));
    }

    #[test]
    fn a_hint_reaches_its_own_entry_and_a_stale_one_falls_back_to_the_key() {
        let t: DayTable<u32> = DayTable::default();
        // Inserted against key order, so that a rebuild in key order moves them.
        let mut hints: Vec<_> = (0..2_000u32)
            .rev()
            .map(|i| t.insert_hinted(&key(u64::from(i), i, 1, 2), i))
            .map(|(old, hint)| {
                assert_eq!(old, None);
                hint.expect("an entry in memory has a place")
            })
            .collect();
        hints.reverse();
        // A fresh hint changes the entry the key names.
        t.with_hinted(&key(5, 5, 1, 2), Some(hints[5]), |v| *v.unwrap() += 1_000);
        assert_eq!(t.get(&key(5, 5, 1, 2)), Some(1_005));
        // A retain rebuilds every shard in key order: most old places now hold another
        // key. Each key must still reach its own value, never its old place's new tenant.
        t.retain(|_| true);
        let mut moved = 0;
        for (i, hint) in (0..2_000u32).zip(&hints) {
            let k = key(u64::from(i), i, 1, 2);
            let want = if i == 5 { 1_005 } else { i };
            let got = t.with_hinted(&k, Some(*hint), |v| v.copied());
            assert_eq!(got, Some(want), "key {i}");
            let now = t.insert_hinted(&k, want).1;
            moved += usize::from(now != Some(*hint));
        }
        assert!(moved > 1_000, "the retain moved {moved} of 2,000 entries");
        // insert_at replaces at a hint that holds, and looks a stale one's key up: one
        // entry per key either way, never the place's other tenant overwritten.
        let (k7, k8) = (key(7, 7, 1, 2), key(8, 8, 1, 2));
        let at7 = t.insert_hinted(&k7, 7).1;
        assert_eq!(t.insert_at(&k7, at7, 70), (Some(7), at7));
        let at8 = t.insert_hinted(&k8, 8).1;
        assert_eq!(
            t.insert_at(&k7, at8, 700).0,
            Some(70),
            "stale: found by key"
        );
        assert_eq!((t.get(&k7), t.get(&k8)), (Some(700), Some(8)));
        assert_eq!(t.insert_at(&key(1, 0, 1, 2), at8, 1).0, None);
        assert_eq!((t.get(&key(1, 0, 1, 2)), t.get(&k8)), (Some(1), Some(8)));
        assert_eq!(t.len(), 2_001);
        // A key that is absent stays absent whatever the hint.
        assert_eq!(
            t.with_hinted(&key(9, 0, 1, 2), Some(hints[9]), |v| v.copied()),
            None
        );
    }

    #[test]
    fn a_hint_to_an_entry_since_spilled_reads_it_back_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let t = spilling(dir.path(), 64);
        let (_, hint) = t.insert_hinted(&key(1, 1, 7, 8), 11);
        for i in 2..3_000u32 {
            t.insert(&key(u64::from(i), i, 7, 8), i);
        }
        t.with_hinted(&key(1, 1, 7, 8), hint, |v| *v.unwrap() += 100);
        assert_eq!(t.get(&key(1, 1, 7, 8)), Some(111));
        assert_eq!(t.len(), 2_999);
    }

    #[test]
    fn a_table_sized_for_its_memory_bound_never_grows_its_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let capacities = |t: &DayTable<u32>| -> Vec<usize> {
            t.shards
                .iter()
                .map(|s| DayTable::lock(s).index.capacity())
                .collect()
        };
        let fill = |t: &DayTable<u32>| {
            for i in 0..40_000u32 {
                t.insert(&key(u64::from(i), i, 1, 2), i);
            }
        };
        // 100 entries a shard on average: 50 to 150 in memory, the rest spilled.
        let to = SpillTo {
            dir: dir.path().join("sized"),
            memory_entries: 6_400,
        };
        let sized = DayTable::spilling(to.capacity_for(0), &to, "test").unwrap();
        let before = capacities(&sized);
        fill(&sized);
        assert!(
            sized.in_memory() < 10_000,
            "{} in memory",
            sized.in_memory()
        );
        // Spills' tombstones take room (and a full index is moved to a new one of its
        // size or smaller): the room left may be less, never more.
        for (i, (after, before)) in capacities(&sized).iter().zip(&before).enumerate() {
            assert!(
                after <= before,
                "shard {i}'s index grew: {before} -> {after}"
            );
        }
        // Unsized, the same load grows them.
        let to = SpillTo {
            dir: dir.path().join("unsized"),
            ..to
        };
        let unsized_ = DayTable::spilling(0, &to, "test").unwrap();
        let before = capacities(&unsized_);
        fill(&unsized_);
        let grew = capacities(&unsized_)
            .iter()
            .zip(&before)
            .filter(|(a, b)| a > b)
            .count();
        assert!(grew > 32, "{grew} of 64 unsized indexes grew");
        assert_eq!(unsized_.len(), sized.len());
    }

    /// Where every buffer of a table's shards is (arena chunks, filters, block keys, spares
    /// included), tagged by kind.
    fn buffers(t: &DayTable<u32>) -> std::collections::HashSet<(char, usize)> {
        let mut all = std::collections::HashSet::new();
        for s in &*t.shards {
            let s = DayTable::lock(s);
            let chunks = s.arena.chunks.iter().chain(&s.arena.spare);
            all.extend(chunks.map(|c| ('c', c.as_ptr() as usize)));
            all.extend(
                s.cold
                    .blooms
                    .iter()
                    .map(|b| ('s', b.words.as_ptr() as usize)),
            );
            let blooms = s.cold.runs.iter().map(|r| r.bloom.words.as_ptr() as usize);
            all.extend(
                blooms
                    .chain(s.cold.spare_blooms.iter().map(|b| b.as_ptr() as usize))
                    .map(|p| ('b', p)),
            );
            if let Index::Bounded(index) = &s.index {
                all.insert(('i', index.words.as_ptr() as usize));
                all.insert(('x', index.scratch.as_ptr() as usize));
            }
            let firsts = s.cold.runs.iter().map(|r| r.firsts.as_ptr() as usize);
            all.extend(
                firsts
                    .chain(s.cold.spare_firsts.iter().map(|f| f.as_ptr() as usize))
                    .map(|p| ('f', p)),
            );
        }
        all
    }

    fn chunk_ptrs(t: &DayTable<u32>) -> std::collections::HashSet<usize> {
        buffers(t)
            .into_iter()
            .filter_map(|(kind, p)| (kind == 'c').then_some(p))
            .collect()
    }

    /// The chunks `prefault` sets aside are the ones the next inserts fill: the links'
    /// threads then write to memory that is already resident and allocate nothing. A round
    /// with nothing to do adds nothing; a spilling shard is never taken past its bound.
    #[test]
    fn prefaulted_chunks_are_the_ones_the_next_inserts_fill() {
        let t: DayTable<u32> = DayTable::with_capacity(0);
        let per_chunk = Arena::<u32>::CHUNK_BYTES;
        assert_eq!(t.prefault(2), SHARDS * 2 * per_chunk);
        assert_eq!(t.prefault(2), 0, "already two ahead");
        let ready = chunk_ptrs(&t);
        assert_eq!(ready.len(), SHARDS * 2);
        // About one chunk's worth a shard (keys spread by hash; none gets near two).
        let n = (SHARDS * CHUNK) as u32;
        for i in 0..n {
            t.insert(&key(u64::from(i), i, 7, 7), i);
        }
        let used = chunk_ptrs(&t);
        assert!(
            used.is_subset(&ready),
            "an insert allocated a chunk of its own"
        );
        for i in (0..n).step_by(97) {
            assert_eq!(t.get(&key(u64::from(i), i, 7, 7)), Some(i));
        }
        // Topped up again: every shard has two ready.
        assert!(t.prefault(2) > 0);
        for s in &*t.shards {
            assert!(DayTable::lock(s).arena.spare.len() >= 2);
        }

        // Bounds of 50-150 entries a shard: at most the chunks a reserve would set aside.
        let dir = tempfile::tempdir().unwrap();
        let bounded = spilling(dir.path(), 6_400);
        bounded.prefault(100);
        for s in &*bounded.shards {
            let s = DayTable::lock(s);
            let held = s.arena.chunks.len() + s.arena.spare.len();
            assert!(held <= s.chunk_limit() && held >= 1, "{held} chunks");
        }
        assert_eq!(bounded.prefault(100), 0);
    }

    #[test]
    fn a_reserved_table_allocates_nothing_more_within_its_day() {
        let dir = tempfile::tempdir().unwrap();
        // Bounds of 50-150 entries a shard (a spill writes the whole arena) and of 512-1520
        // (a spill writes its oldest chunks).
        for (memory_entries, per_shard) in [(6_400, 1_000u32), (65_536, 3_000)] {
            let to = SpillTo {
                dir: dir.path().join(memory_entries.to_string()),
                memory_entries,
            };
            let day = 64 * per_shard;
            let t = DayTable::spilling(to.capacity_for(day as usize), &to, "test").unwrap();
            let rooms = |t: &DayTable<u32>| -> Vec<usize> {
                let shards = t.shards.iter();
                shards.map(|s| DayTable::lock(s).index.capacity()).collect()
            };
            let room = rooms(&t);
            assert!(t.reserve() > 0);
            // Filling the index once to make it resident did not grow it.
            assert_eq!(rooms(&t), room, "{memory_entries}");
            assert_eq!(t.len(), 0);
            let reserved = buffers(&t);
            for round in 0..2u32 {
                for i in 0..day {
                    t.insert(&key(u64::from(i), i, 1, u64::from(round)), i);
                }
                assert_eq!(t.len(), day as usize, "{memory_entries}: round {round}");
                let spilled = t.len() - t.in_memory();
                assert!(
                    spilled > day as usize / 2,
                    "{memory_entries}: {spilled} spilled"
                );
                let new: Vec<_> = buffers(&t).difference(&reserved).copied().collect();
                assert!(
                    new.is_empty(),
                    "{memory_entries}: round {round}: allocated past the reserve: {} chunks, \
                     {} shard filters, {} run filters, {} block key lists, {} indexes, \
                     {} rebuild lists",
                    new.iter().filter(|(k, _)| *k == 'c').count(),
                    new.iter().filter(|(k, _)| *k == 's').count(),
                    new.iter().filter(|(k, _)| *k == 'b').count(),
                    new.iter().filter(|(k, _)| *k == 'f').count(),
                    new.iter().filter(|(k, _)| *k == 'i').count(),
                    new.iter().filter(|(k, _)| *k == 'x').count(),
                );
                // A new day starts from the same memory.
                t.clear();
            }
        }
    }

    #[test]
    fn a_reserved_table_keeps_its_size_over_a_cut_over() {
        let dir = tempfile::tempdir().unwrap();
        let to = SpillTo {
            dir: dir.path().to_path_buf(),
            memory_entries: 65_536,
        };
        let day = 64 * 3_000u32;
        let t = DayTable::spilling(to.capacity_for(day as usize), &to, "test").unwrap();
        t.reserve();
        let reserved = buffers(&t);
        let fill = |round: u64| {
            for i in 0..day {
                t.insert(&key(u64::from(i), i, 1, round), i);
            }
        };
        fill(0);
        // Each cut-over keeps 1 % of the closed day (as the originals table keeps those
        // inside a refund window), then a day as large as the first follows.
        for day_no in 1..=2u64 {
            t.retain(|v| *v % 100 == 0);
            fill(day_no);
            let new: Vec<_> = buffers(&t).difference(&reserved).copied().collect();
            let count = |kind: char| new.iter().filter(|(k, _)| *k == kind).count();
            // New: each shard's filter (sized like the reserved one, which it replaced)
            // and the compacted run's own filter and block keys. Nothing for the day.
            assert_eq!(
                count('c'),
                0,
                "day {day_no}: chunks allocated past the reserve"
            );
            for kind in ['s', 'b', 'f'] {
                assert!(
                    count(kind) <= SHARDS,
                    "day {day_no}: {} new {kind}",
                    count(kind)
                );
            }
            for s in &*t.shards {
                let s = DayTable::lock(s);
                assert_eq!(s.cold.blooms.len(), 1, "day {day_no} added a shard filter");
                assert!(s.cold.blooms[0].capacity >= s.cold.bloom_hint);
            }
        }
        // Two days' 1 % kept, and the last day.
        assert_eq!(t.len(), day as usize + 2 * (day as usize).div_ceil(100));
    }

    fn spilling(dir: &std::path::Path, memory_entries: usize) -> DayTable<u32> {
        let to = SpillTo {
            dir: dir.to_path_buf(),
            memory_entries,
        };
        DayTable::spilling(0, &to, "test").unwrap()
    }

    #[test]
    fn a_spilling_table_keeps_every_entry_and_finds_duplicates_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        // 64 entries in memory over 64 shards: each shard spills every one or two inserts.
        let t = spilling(dir.path(), 64);
        for i in 0..5_000u32 {
            assert_eq!(t.insert(&key(u64::from(i), i % 999, 7, 8), i), None, "{i}");
        }
        assert!(t.in_memory() < 200, "in memory: {}", t.in_memory());
        assert_eq!(t.len(), 5_000);
        // Every key is still there, with its value, read back from its run.
        for i in (0..5_000u32).step_by(7) {
            assert_eq!(t.get(&key(u64::from(i), i % 999, 7, 8)), Some(i), "{i}");
        }
        assert_eq!(t.get(&key(9_999_999, 1, 7, 8)), None);
        // A duplicate of a key long on disk is seen as one.
        assert_eq!(t.insert(&key(3, 3, 7, 8), 42), Some(3));
        assert_eq!(t.get(&key(3, 3, 7, 8)), Some(42));
        assert_eq!(t.len(), 5_000, "a rewritten entry is still one entry");
        // A change to an entry on disk sticks through later spills (newest copy wins).
        t.with(&key(10, 10, 7, 8), |v| *v.unwrap() += 1_000);
        for i in 5_000..6_000u32 {
            t.insert(&key(u64::from(i), i % 999, 7, 8), i);
        }
        assert_eq!(t.get(&key(10, 10, 7, 8)), Some(1_010));
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 64, "one run file per shard");
    }

    #[test]
    fn insert_unless_keeps_a_matching_entry_in_memory_or_on_disk_and_replaces_others() {
        let dir = tempfile::tempdir().unwrap();
        let t = spilling(dir.path(), 64);
        let even = |v: &u32| v.is_multiple_of(2);
        assert_eq!(
            t.insert_unless(&key(1, 1, 7, 8), 10, even).map(|r| r.0),
            Ok(None)
        );
        // A new key goes in whatever `keep` says; a kept entry stays and says where it is.
        let kept = t.insert_unless(&key(1, 1, 7, 8), 11, even);
        assert!(matches!(kept, Err(Some(_))), "{kept:?}");
        assert_eq!(t.get(&key(1, 1, 7, 8)), Some(10));
        assert_eq!(t.insert(&key(2, 2, 7, 8), 21), None);
        assert_eq!(
            t.insert_unless(&key(2, 2, 7, 8), 22, even).map(|r| r.0),
            Ok(Some(21)),
            "an entry `keep` rejects is replaced"
        );
        assert_eq!(t.get(&key(2, 2, 7, 8)), Some(22));
        // Push both keys out to their runs: the check reads them back from disk.
        for i in 100..5_000u32 {
            t.insert(&key(u64::from(i), i % 999, 7, 8), i);
        }
        assert!(t.in_memory() < 200, "in memory: {}", t.in_memory());
        assert!(t.insert_unless(&key(1, 1, 7, 8), 12, even).is_err());
        assert!(t.insert_unless(&key(2, 2, 7, 8), 24, even).is_err());
        assert_eq!(t.get(&key(1, 1, 7, 8)), Some(10));
        assert_eq!(t.get(&key(2, 2, 7, 8)), Some(22));
        assert_eq!(t.len(), 4_902);
    }

    #[test]
    fn keys_on_disk_are_found_whatever_their_f7_and_newer_keys_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let t = spilling(dir.path(), 64);
        // F7 out of order, as skewed acquirer clocks send it: a run's newest F7 is its
        // largest, not its last; 9,000,000,000 needs the two high bits of the packed F7.
        let skewed = [9_000_000_000u64, 1_231_235_959, 4_294_967_296, 500];
        for (i, &f7) in skewed.iter().enumerate() {
            t.insert(&key(f7, 1, 7, 8), i as u32);
        }
        for i in 0..5_000u32 {
            t.insert(&key(1_000 + u64::from(i), i % 999, 7, 8), 100 + i);
        }
        assert!(t.in_memory() < 200, "in memory: {}", t.in_memory());
        for (i, &f7) in skewed.iter().enumerate() {
            assert_eq!(t.get(&key(f7, 1, 7, 8)), Some(i as u32), "F7 {f7}");
            assert_eq!(t.insert(&key(f7, 1, 7, 8), 0), Some(i as u32), "F7 {f7}");
        }
        // 9,000,000,000 is the largest F7 of whatever run holds it: it checks the boundary
        // (a key equal to its run's newest is on disk, `t > newest` must not skip the run).
        // The first ordered key, long on disk, is found too; keys past every F7 on disk are
        // absent.
        assert_eq!(t.get(&key(1_000, 0, 7, 8)), Some(100));
        assert_eq!(t.get(&key(9_000_000_001, 1, 7, 8)), None);
        assert_eq!(t.get(&key(1_000 + 5_000, 1, 7, 8)), None);
        assert_eq!(t.len(), 4 + 5_000);
    }

    #[test]
    fn retain_and_for_each_see_each_key_once_with_its_newest_value() {
        let dir = tempfile::tempdir().unwrap();
        let t = spilling(dir.path(), 64);
        for i in 0..3_000u32 {
            t.insert(&key(u64::from(i), 0, 1, 2), i);
        }
        // Rewritten after it went to disk: two copies exist, one value counts.
        t.insert(&key(1, 0, 1, 2), 2_000_001);
        t.retain(|v| *v % 2 == 1);
        let mut seen = std::collections::HashMap::new();
        t.for_each(|k, v| {
            assert!(
                seen.insert(k.transmission, *v).is_none(),
                "{k:?} visited twice"
            );
        });
        assert_eq!(seen.len(), 1_500);
        assert_eq!(seen.get(&1), Some(&2_000_001));
        assert_eq!(seen.get(&2), None);
        assert_eq!(t.len(), 1_500);
        assert_eq!(t.get(&key(2_999, 0, 1, 2)), Some(2_999));
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.get(&key(2_999, 0, 1, 2)), None);
    }

    #[test]
    fn an_expected_volume_sizes_the_filters_once() {
        let dir = tempfile::tempdir().unwrap();
        let to = SpillTo {
            dir: dir.path().to_path_buf(),
            memory_entries: 64,
        };
        let expected = 64 * 500;
        let sized: DayTable<u32> = DayTable::spilling(expected, &to, "sized").unwrap();
        let grown: DayTable<u32> = DayTable::spilling(0, &to, "grown").unwrap();
        for i in 0..expected as u32 {
            sized.insert(&key(u64::from(i), 0, 1, 2), i);
            grown.insert(&key(u64::from(i), 0, 1, 2), i);
        }
        let filters = |t: &DayTable<u32>| -> (usize, usize) {
            t.shards.iter().fold((0, 0), |(n, cap), s| {
                let s = DayTable::lock(s);
                (
                    n.max(s.cold.blooms.len()),
                    cap + s.cold.blooms.iter().map(|b| b.capacity).sum::<usize>(),
                )
            })
        };
        let (sized_n, sized_cap) = filters(&sized);
        let (grown_n, grown_cap) = filters(&grown);
        assert_eq!(
            sized_n, 1,
            "one filter per shard when the day stays within the estimate"
        );
        assert!(grown_n > 1);
        assert!(sized_cap < grown_cap, "{sized_cap} vs {grown_cap}");
        assert_eq!(sized.get(&key(77, 0, 1, 2)), Some(77));
        assert_eq!(sized.len(), expected);
    }

    /// A cut-over's retain reads and compacts a shard's runs without its lock: lookups,
    /// changes and spills go on meanwhile. What they did must win over the compacted runs,
    /// including a change that `keep` then drops (its older copy on disk must not return).
    #[test]
    fn changes_made_while_a_retain_compacts_win_over_the_compacted_runs() {
        let dir = tempfile::tempdir().unwrap();
        let hasher = crate::FastHash::default();
        let mut shard: Shard<u32> = Shard::new(0, 10, dir.path().join("test-00.run"));
        let pk = |i: u32| PackedKey::from(&key(u64::from(i), 0, 1, 2));
        let put = |shard: &mut Shard<u32>, i: u32, v: u32| {
            let k = pk(i);
            shard.insert(k, hasher.hash_one(k), v, &hasher);
        };
        let get = |shard: &mut Shard<u32>, i: u32| {
            let k = pk(i);
            shard.get_mut(&k, hasher.hash_one(k), None).copied()
        };
        for i in 0..1_000 {
            put(&mut shard, i, i);
        }
        assert!(shard.cold.runs.len() > 50 && shard.arena.len() <= 11);
        let mut keep = |v: &mut u32| *v % 2 == 1;
        let snapshot = shard.snapshot().expect("runs on disk");
        // Meanwhile, on the link threads:
        put(&mut shard, 5, 1_000_005); // kept on disk and in memory: the newer value
        put(&mut shard, 7, 8); // kept on disk, dropped in memory: gone
        put(&mut shard, 4, 9); // dropped on disk, kept in memory
        for i in 2_000..2_040 {
            put(&mut shard, i, i); // new keys, some spilled after the snapshot
        }
        put(&mut shard, 11, 12); // changed, then spilled to a newer run before the end
        for i in 3_000..3_020 {
            put(&mut shard, i, 2);
        }
        let compacted = compact(snapshot, &mut keep, &hasher).unwrap();
        let old = shard
            .finish_retain(Some(compacted), &hasher, &mut keep)
            .unwrap();
        std::fs::remove_file(&old).unwrap();
        assert_eq!(shard.cold.path, dir.path().join("test-00.1.run"));

        let expect = |i: u32| match i {
            5 => Some(1_000_005),
            4 => Some(9),
            7 | 11 => None,
            3_000.. => None,
            i => (i % 2 == 1).then_some(i),
        };
        let all: Vec<u32> = (0..1_000).chain(2_000..2_040).chain(3_000..3_020).collect();
        let live = all.iter().filter(|&&i| expect(i).is_some()).count();
        assert_eq!(
            (shard.arena.len() + shard.cold.records).saturating_sub(shard.cold.stale),
            live
        );
        let listed: Vec<(PackedKey, u32)> = shard.collect_all().unwrap();
        assert_eq!(listed.len(), live, "each key once");
        for i in all.clone() {
            assert_eq!(get(&mut shard, i), expect(i), "key {i}");
        }
        // A second cut-over starts from the compacted runs and their hidden keys.
        let mut keep = |v: &mut u32| !v.is_multiple_of(3);
        let snapshot = shard.snapshot().expect("runs on disk");
        let compacted = compact(snapshot, &mut keep, &hasher).unwrap();
        let old = shard
            .finish_retain(Some(compacted), &hasher, &mut keep)
            .unwrap();
        std::fs::remove_file(old).unwrap();
        for i in all {
            let want = expect(i).filter(|v| !v.is_multiple_of(3));
            assert_eq!(get(&mut shard, i), want, "key {i} after the second retain");
        }
    }

    #[test]
    fn a_new_table_removes_its_old_runs_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("other-00.run"), b"x").unwrap();
        {
            let t = spilling(dir.path(), 64);
            for i in 0..1_000u32 {
                t.insert(&key(u64::from(i), 0, 1, 2), i);
            }
        }
        let t = spilling(dir.path(), 64);
        assert!(t.is_empty());
        assert_eq!(t.get(&key(5, 0, 1, 2)), None);
        assert!(dir.path().join("other-00.run").exists());
        // A table's runs can go without opening it (a table earlier versions kept).
        for i in 0..1_000u32 {
            t.insert(&key(u64::from(i), 0, 1, 2), i);
        }
        let runs = |name: &str| {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    let e = e.as_ref().unwrap().file_name();
                    e.to_string_lossy().starts_with(name)
                })
                .count()
        };
        assert!(runs("test-") > 0);
        let to = SpillTo {
            dir: dir.path().to_path_buf(),
            memory_entries: 64,
        };
        to.remove_runs("other").unwrap();
        assert_eq!(runs("other-"), 0);
        assert!(runs("test-") > 0);
        let missing = SpillTo {
            dir: dir.path().join("not-yet"),
            memory_entries: 64,
        };
        missing.remove_runs("keys").unwrap();
    }

    #[test]
    fn values_round_trip_through_their_spill_bytes() {
        let mut b = Vec::new();
        7u32.put(&mut b);
        iso8583::ResponseCode(*b"94").put(&mut b);
        assert_eq!(b.len(), u32::SIZE + iso8583::ResponseCode::SIZE);
        assert_eq!(u32::take(&b[..4]), Some(7));
        assert_eq!(
            iso8583::ResponseCode::take(&b[4..]),
            Some(iso8583::ResponseCode(*b"94"))
        );
        assert_eq!(u32::take(&b[..3]), None);
        let k = key(9_999_999_999, 999_999, 1, 99_999_999_999);
        let p = PackedKey::from(&k);
        assert_eq!(PackedKey::from_bytes(p.to_bytes()), p);
    }

    #[test]
    fn a_full_bloom_filter_has_few_false_positives() {
        let hasher = crate::FastHash::default();
        let mut b = Bloom::with_capacity(100_000);
        for i in 0..100_000u64 {
            b.insert(hasher.hash_one(PackedKey::from(&key(i, 1, 2, 3))));
        }
        for i in (0..100_000u64).step_by(97) {
            assert!(b.may_contain(hasher.hash_one(PackedKey::from(&key(i, 1, 2, 3)))));
        }
        let fp = (0..100_000u64)
            .filter(|i| b.may_contain(hasher.hash_one(PackedKey::from(&key(*i, 9, 2, 3)))))
            .count();
        eprintln!("false positives: {fp} of 100000");
        assert!(fp < 4_000, "{fp} false positives of 100,000");
    }

    #[test]
    fn a_large_bound_spills_the_oldest_chunks_a_few_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        // 500 to 1,500 entries per shard before the oldest chunks go out.
        let t = spilling(dir.path(), 64_000);
        for i in 0..300_000u32 {
            assert_eq!(t.insert(&key(u64::from(i), i % 1_000, 1, 2), i), None);
        }
        let mem = t.in_memory();
        // Each shard keeps at most its bound (500 to 1,500) plus the chunk being filled.
        assert!(
            (1..=64 * (1_500 + CHUNK)).contains(&mem),
            "in memory: {mem}"
        );
        assert_eq!(t.len(), 300_000);
        for i in (0..300_000u32).step_by(101) {
            assert_eq!(t.get(&key(u64::from(i), i % 1_000, 1, 2)), Some(i), "{i}");
        }
        assert_eq!(
            t.insert(&key(7, 7, 1, 2), 1),
            Some(7),
            "a duplicate of an early key"
        );
        assert_eq!(t.len(), 300_000);
        let mut n = 0;
        t.for_each(|_, _| n += 1);
        assert_eq!(n, 300_000);
        t.retain(|v| *v < 1_000);
        assert_eq!(t.len(), 1_000);
        assert_eq!(t.get(&key(7, 7, 1, 2)), Some(1));
        assert_eq!(t.get(&key(5_000, 0, 1, 2)), None);
    }
}
