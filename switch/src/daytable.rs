//! The tables that hold one entry per transaction of the settlement day (duplicate keys,
//! originals of related transactions). They grow by hundreds of thousands of entries a
//! minute under load, so two things matter that do not for other maps:
//!
//! - **No growth stalls.** A `HashMap` of large entries that doubles allocates and fills a
//!   new table of twice the size at once: the kernel zero-fills hundreds of megabytes of
//!   fresh pages in one go (`clear_page_erms` was 58 % of the switch's samples in the worst
//!   second of a 50k/s run, p50 157 ms). Here entries live in an append-only arena of
//!   256-entry chunks (new memory is taken a little at a time) and the hash index
//!   holds 8 bytes per entry and doubles incrementally (a few entries moved per insert), so
//!   no insert pays for a whole shard's growth: the 64 shards fill evenly and would
//!   otherwise all double within the same fraction of a second.
//! - **Compact keys.** The four numbers of a [`TxnKey`] (F7 10 digits, F11 6 digits, F32 and
//!   F33 11 digits each) fit 34 + 20 + 37 + 37 = 128 bits: a [`PackedKey`] is 16 bytes
//!   instead of the 32 of `TxnKey`, aligned to 4 so small values do not pad it.
//!
//! Shards are picked by a hash of the key, each behind a short [`Mutex`] (no shard is held
//! across anything but the closure a caller passes). Keys come from acquirers, so the hash
//! has a per-process random seed. Entries are removed only by [`DayTable::retain`] (cut-over
//! end), which rebuilds each shard.

use crate::core::TxnKey;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A [`TxnKey`] in 16 bytes. Keys of valid messages always fit (each part is bounded by its
/// field's digits); a part beyond its width is cut to it (no panic on a hand-made key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackedKey([u32; 4]);

const TRANSMISSION_BITS: u32 = 34;
const STAN_BITS: u32 = 20;
const INST_BITS: u32 = 37;

fn low(v: u64, bits: u32) -> u64 {
    v & ((1u64 << bits) - 1)
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
/// memory of new entries is touched (page-faulted) a little at a time, in order.
const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;

/// One shard: entries live in an append-only arena of fixed-size chunks; the hash index
/// holds only `(32 bits of the hash, arena position)`, 8 bytes per entry, and grows
/// incrementally ([`griddle`] moves a few entries per insert while it doubles, and the stored
/// hash is all a move needs: the arena is never read, and never moves).
struct Shard<V> {
    index: griddle::HashMap<Slot, (), StoredHashBuilder>,
    arena: Vec<Vec<(PackedKey, V)>>,
    len: usize,
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

impl<V> Shard<V> {
    fn with_capacity(n: usize) -> Self {
        Self {
            index: griddle::HashMap::with_capacity_and_hasher(n, StoredHashBuilder::default()),
            arena: Vec::new(),
            len: 0,
        }
    }

    fn find(&self, key: &PackedKey, h: u32) -> Option<u32> {
        let arena = &self.arena;
        self.index
            .raw_entry()
            .from_hash(spread(h), |s| {
                s.h == h && entry(arena, s.pos).is_some_and(|(k, _)| k == key)
            })
            .map(|(s, ())| s.pos)
    }

    fn get_mut(&mut self, key: &PackedKey, h: u32) -> Option<&mut V> {
        let pos = self.find(key, h)? as usize;
        self.arena
            .get_mut(pos >> CHUNK_BITS)?
            .get_mut(pos & (CHUNK - 1))
            .map(|(_, v)| v)
    }

    fn insert(&mut self, key: PackedKey, h: u32, value: V) -> Option<V> {
        if let Some(old) = self.get_mut(&key, h) {
            return Some(std::mem::replace(old, value));
        }
        if self.arena.last().is_none_or(|c| c.len() == CHUNK) {
            self.arena.push(Vec::with_capacity(CHUNK));
        }
        // Shards hold far fewer than 2^32 entries (the whole day table would need 64 times
        // that, ~100 bytes each); past it an entry is not kept rather than mis-indexed.
        let (Ok(pos), Some(chunk)) = (u32::try_from(self.len), self.arena.last_mut()) else {
            return None;
        };
        chunk.push((key, value));
        self.len += 1;
        self.index.insert(Slot { h, pos }, ());
        None
    }

    /// Rebuild without the entries `keep` refuses (cut-over: rare, so a full rebuild).
    fn retain(&mut self, hasher: &crate::FastHash, mut keep: impl FnMut(&mut V) -> bool) {
        let old = std::mem::take(&mut self.arena);
        *self = Shard::with_capacity(0);
        for (k, mut v) in old.into_iter().flatten() {
            if keep(&mut v) {
                let h = hash32(hasher, &k);
                self.insert(k, h, v);
            }
        }
    }
}

fn entry<V>(arena: &[Vec<(PackedKey, V)>], pos: u32) -> Option<&(PackedKey, V)> {
    let pos = pos as usize;
    arena.get(pos >> CHUNK_BITS)?.get(pos & (CHUNK - 1))
}

/// The 32 stored hash bits, spread over the 64 the index uses: its bucket position comes
/// from the low bits, its 7-bit tag from the top ones.
fn spread(h: u32) -> u64 {
    (u64::from(h) << 32) | u64::from(h)
}

fn hash32(hasher: &crate::FastHash, key: &PackedKey) -> u32 {
    hasher.hash_one(key) as u32
}

/// A sharded map from transaction key to `V` that never stalls to grow.
pub struct DayTable<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    hasher: crate::FastHash,
}

/// Enough shards that two arbiters and the journal replay rarely meet on one, few enough
/// that an empty table costs nothing. A power of two, at most 64 (six hash bits).
const SHARDS: usize = 64;

impl<V> Default for DayTable<V> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<V> std::fmt::Debug for DayTable<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayTable")
            .field("len", &self.len())
            .finish()
    }
}

impl<V> DayTable<V> {
    /// A table whose indexes have room for `capacity` entries before they first grow.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::with_capacity(per_shard)))
                .collect(),
            hasher: crate::FastHash::default(),
        }
    }

    fn lock(m: &Mutex<Shard<V>>) -> MutexGuard<'_, Shard<V>> {
        // A panic while a shard was held leaves it consistent (an entry is pushed to the
        // arena before it is indexed, and a rebuild swaps in a whole new shard): keep
        // serving rather than take the switch down.
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key's shard (top six bits of its 64-bit hash) and the 32 bits the shard indexes.
    fn shard(&self, key: &PackedKey) -> (MutexGuard<'_, Shard<V>>, u32) {
        let h = self.hasher.hash_one(key);
        let i = (h >> 58) as usize & (SHARDS - 1);
        (Self::lock(&self.shards[i]), h as u32)
    }

    /// Insert or replace; returns the previous value.
    pub fn insert(&self, key: &TxnKey, value: V) -> Option<V> {
        let k = PackedKey::from(key);
        let (mut shard, h) = self.shard(&k);
        shard.insert(k, h, value)
    }

    /// Run `f` on the entry of `key` with its shard locked (check-then-change is atomic).
    /// Never call back into the same table from `f`.
    pub fn with<R>(&self, key: &TxnKey, f: impl FnOnce(Option<&mut V>) -> R) -> R {
        let k = PackedKey::from(key);
        let (mut shard, h) = self.shard(&k);
        f(shard.get_mut(&k, h))
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
    pub fn retain(&self, mut keep: impl FnMut(&mut V) -> bool) {
        for s in &*self.shards {
            Self::lock(s).retain(&self.hasher, &mut keep);
        }
    }

    /// Visit every entry (shard by shard; entries inserted meanwhile may be missed).
    pub fn for_each(&self, mut visit: impl FnMut(TxnKey, &V)) {
        for s in &*self.shards {
            for (k, v) in Self::lock(s).arena.iter().flatten() {
                visit(TxnKey::from(*k), v);
            }
        }
    }

    pub fn clear(&self) {
        for s in &*self.shards {
            *Self::lock(s) = Shard::with_capacity(0);
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::lock(s).len).sum()
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
}
