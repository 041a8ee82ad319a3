//! The switch's in-process request pipeline, step by step and end to end, for a 0200 purchase
//! on the bundled configuration (config/bins.csv, merchants.csv, terminals.csv, limits.csv):
//!
//! 1. decode the acquirer's frame (`Message::decode`);
//! 2. classify: `TxnKind::of`, `TxnKey::of`, `missing_mandatory`;
//! 3. BIN lookup on the bundled table;
//! 4. registry check (rule 3) and limits reserve + release (rule 4);
//! 5. forward rewrite: issuer header, F11, F15, F100 (as `IssuerLink::on_forward`);
//! 6. the issuer's 0210 decoded and rewritten back: acquirer header, F11, F15
//!    (as `IssuerLink::on_response`).
//!
//! Plus the per-transaction extras the actors do around these steps (clock conversion,
//! metric label strings, the duplicate-key map), measured apart so a profile can be read
//! against them.
//!
//! `cargo bench -p benches --bench pipeline -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use benches::{payload, purchase};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use iso8583::{Header, InstId, Message, MessageBuilder, ResponseCode};
use std::path::{Path, PathBuf};
use switch::bins::BinTable;
use switch::core::{missing_mandatory, TxnKey, TxnKind};
use switch::limits::{LimitCounters, LimitSettings};
use switch::registry::{MerchantId, Registry, TerminalId, TxnCategory};

fn config_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(name)
}

struct Tables {
    bins: BinTable,
    registry: Registry,
    limits: LimitSettings,
    counters: LimitCounters,
    switch_id: InstId,
}

fn tables() -> Tables {
    Tables {
        bins: BinTable::load_csv(&config_file("bins.csv")).unwrap(),
        registry: Registry::load(&config_file("merchants.csv"), &config_file("terminals.csv"))
            .unwrap(),
        limits: LimitSettings::load(&config_file("limits.csv")).unwrap(),
        counters: LimitCounters::new(),
        switch_id: InstId::new(benches::SWITCH).unwrap(),
    }
}

const DAY: u32 = 20261122;
const F15: [u8; 4] = *b"1122";

/// A purchase of 10.00 entered as a pending original (the tables' benches fill with it).
fn pending_purchase() -> switch::originals::Original {
    switch::originals::Original::pending(
        switch::core::TxnKind::Purchase,
        1_000,
        b"6222020000000001",
        b"TERM0001",
        DAY,
    )
}

fn stan6(n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    let mut v = n % 1_000_000;
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out
}

/// Steps 2-4 on a decoded request: the issuer, or the decline code.
fn rules(t: &Tables, msg: &Message) -> Result<InstId, ResponseCode> {
    let kind = TxnKind::of(msg);
    if missing_mandatory(msg, kind).is_some() {
        return Err(ResponseCode::FORMAT_ERROR);
    }
    let _key = TxnKey::of(msg).ok_or(ResponseCode::FORMAT_ERROR)?;
    let route = msg
        .pan()
        .and_then(|p| t.bins.lookup(p))
        .ok_or(ResponseCode::NO_SUCH_ISSUER)?;
    let category = TxnCategory::of(kind).ok_or(ResponseCode::FORMAT_ERROR)?;
    let merchant = msg.field(42).unwrap_or_default();
    let terminal = msg.field(41).unwrap_or_default();
    t.registry
        .check(
            benches::ACQUIRER,
            merchant,
            terminal,
            msg.field(18).unwrap_or_default(),
            category,
        )
        .map_err(|d| d.code)?;
    let (tid, mid) = (
        TerminalId::from_field(terminal).ok_or(ResponseCode::FORMAT_ERROR)?,
        MerchantId::from_field(merchant).ok_or(ResponseCode::FORMAT_ERROR)?,
    );
    let r = t
        .counters
        .reserve(
            &t.limits,
            &tid,
            &mid,
            category,
            msg.amount().unwrap_or(0),
            DAY,
        )
        .map_err(|d| d.code)?;
    // An approval keeps the reservation; released here so the counters do not run up.
    t.counters.release(&r);
    Ok(route.issuer)
}

fn forward(t: &Tables, msg: &Message, issuer: InstId, stan: u32) -> bytes::Bytes {
    let mut header = Header::new(issuer, t.switch_id);
    header.flag = msg.header().flag;
    msg.rewrite()
        .header(header)
        .set(11, &stan6(stan))
        .set(15, &F15)
        .set(100, issuer.as_bytes())
        .finish()
        .unwrap()
}

fn answer_back(t: &Tables, request: &Message, issuer_answer: bytes::Bytes) -> bytes::Bytes {
    let resp = Message::decode(issuer_answer).unwrap();
    let mut header = request.header().response();
    header.source = t.switch_id;
    resp.rewrite()
        .header(header)
        .set(11, request.field(11).unwrap_or_default())
        .set(15, &F15)
        .finish()
        .unwrap()
}

/// The issuer's approval of a forwarded request, as issuer-sim builds it.
fn issuer_approval(forwarded: bytes::Bytes) -> bytes::Bytes {
    let fwd = Message::decode(forwarded).unwrap();
    let mut b =
        MessageBuilder::response_to(&fwd, switch::core::RESPONSE_ECHO, ResponseCode::APPROVED);
    b.set(38, "123456");
    b.build().unwrap()
}

fn steps(c: &mut Criterion) {
    let t = tables();
    let raw = payload(&purchase());
    let msg = Message::decode(raw.clone()).unwrap();
    let issuer = rules(&t, &msg).expect("the bench purchase passes every rule");
    let forwarded = forward(&t, &msg, issuer, 4711);
    let answer = issuer_approval(forwarded.clone());
    let mut g = c.benchmark_group("pipeline_step");
    g.bench_function("1_decode", |b| {
        b.iter(|| Message::decode(black_box(raw.clone())).unwrap())
    });
    g.bench_function("2_classify_key_mandatory", |b| {
        b.iter(|| {
            let kind = TxnKind::of(black_box(&msg));
            (kind, TxnKey::of(&msg), missing_mandatory(&msg, kind))
        })
    });
    g.bench_function("3_bin_lookup", |b| {
        b.iter(|| t.bins.lookup(black_box(msg.pan().unwrap())).copied())
    });
    g.bench_function("4a_registry_check", |b| {
        b.iter(|| {
            t.registry
                .check(
                    benches::ACQUIRER,
                    black_box(msg.field(42).unwrap()),
                    msg.field(41).unwrap(),
                    msg.field(18).unwrap(),
                    TxnCategory::Purchase,
                )
                .is_ok()
        })
    });
    let tid = TerminalId::from_field(msg.field(41).unwrap()).unwrap();
    let mid = MerchantId::from_field(msg.field(42).unwrap()).unwrap();
    g.bench_function("4b_limits_reserve_release", |b| {
        b.iter(|| {
            let r = t
                .counters
                .reserve(&t.limits, &tid, &mid, TxnCategory::Purchase, 12_345, DAY)
                .unwrap();
            t.counters.release(black_box(&r));
        })
    });
    let mut stan = 0u32;
    g.bench_function("5_forward_rewrite", |b| {
        b.iter(|| {
            stan = stan.wrapping_add(1);
            forward(&t, black_box(&msg), issuer, stan)
        })
    });
    g.bench_function("6_answer_decode_rewrite", |b| {
        b.iter(|| answer_back(&t, black_box(&msg), answer.clone()))
    });
    g.finish();

    c.bench_function("pipeline_total_0200_purchase", |b| {
        b.iter(|| {
            let msg = Message::decode(black_box(raw.clone())).unwrap();
            let issuer = rules(&t, &msg).unwrap();
            stan = stan.wrapping_add(1);
            black_box(forward(&t, &msg, issuer, stan));
            answer_back(&t, &msg, answer.clone())
        })
    });
}

/// Work the actors do per transaction besides the pipeline proper.
fn extras(c: &mut Criterion) {
    let raw = payload(&purchase());
    let msg = Message::decode(raw).unwrap();
    let key = TxnKey::of(&msg).unwrap();
    let mut g = c.benchmark_group("per_txn_extra");
    // `Shared::settlement_now`: a chrono local-time conversion per accepted request.
    g.bench_function("chrono_local_now", |b| b.iter(chrono::Local::now));
    // `metrics::counter!(..., "mti" => mti.to_string(), "code" => ..., "issuer" => ...)`:
    // three label Strings per answer (the macro's own lookup comes on top).
    g.bench_function("metric_label_strings", |b| {
        b.iter(|| {
            (
                black_box(msg.mti()).to_string(),
                ResponseCode::APPROVED.to_string(),
                InstId::new(benches::ISSUER).unwrap().to_string(),
            )
        })
    });
    // The day's duplicate-detection map: one insert per request. A million distinct keys,
    // then overwrites: the map stays at day-sized scale without growing through the whole
    // measurement. `DayTable` is what the switch uses (switch/src/daytable.rs); the DashMap
    // it replaced is kept here for comparison.
    let key_n = |n: u32| TxnKey { stan: n, ..key };
    let seen: switch::daytable::DayTable<u32> = switch::daytable::DayTable::default();
    let dash: dashmap::DashMap<TxnKey, u32> = dashmap::DashMap::new();
    let mut n = 0u32;
    g.bench_function("seen_key_insert", |b| {
        b.iter(|| {
            n = (n + 1) % 1_000_000;
            seen.insert(black_box(&key_n(n)), DAY)
        })
    });
    g.bench_function("seen_key_insert_dashmap", |b| {
        b.iter(|| {
            n = (n + 1) % 1_000_000;
            dash.insert(black_box(key_n(n)), DAY)
        })
    });
    // An answer's lookup of its original in a day-sized table (2M entries in memory, far
    // past the caches): by key, and at the place the insert returned (what the issuer
    // link does with `Forward::original_at`). Keys in a stride, so neighbours miss too.
    let big: switch::daytable::DayTable<switch::originals::Original> =
        switch::daytable::DayTable::default();
    let pending = pending_purchase();
    let hints: Vec<_> = (0..2_000_000u32)
        .map(|i| big.insert_hinted(&key_n(i), pending.clone()).1)
        .collect();
    let stride = |i: u64| (i * 7_919 % 2_000_000) as u32;
    let mut i = 0u64;
    g.bench_function("original_lookup_2m_by_key", |b| {
        b.iter(|| {
            i += 1;
            let n = stride(i);
            big.with(black_box(&key_n(n)), |o| o.map(|o| o.approved_ms += 1))
        })
    });
    g.bench_function("original_lookup_2m_by_hint", |b| {
        b.iter(|| {
            i += 1;
            let n = stride(i);
            let hint = hints.get(n as usize).copied().flatten();
            big.with_hinted(black_box(&key_n(n)), hint, |o| {
                o.map(|o| o.approved_ms += 1)
            })
        })
    });
    drop(hints);
    drop(big);
    // A table past its memory bound: 1M keys, 64k of them in memory, the rest in runs.
    // A fresh key's insert (duplicate check through the Bloom filters) and a lookup of a
    // key on disk (one block read; the entry is then copied to memory, so every lookup
    // takes a key not looked up before, and the table is refilled when they run out).
    let dir = tempfile::tempdir().unwrap();
    let filled = || {
        let t: switch::daytable::DayTable<u32> = switch::daytable::DayTable::spilling(
            0,
            &switch::daytable::SpillTo {
                dir: dir.path().to_path_buf(),
                memory_entries: 64_000,
            },
            "bench",
        )
        .unwrap();
        for i in 0..1_000_000u32 {
            t.insert(&key_n(i), DAY);
        }
        t
    };
    // The n-th key never inserted before (a later transmission time than any filled).
    let fresh = |n: u32| TxnKey {
        transmission: 2_000_000_000 + u64::from(n),
        ..key_n(n % 1_000_000)
    };
    let mut spilled = filled();
    let mut n = 0u32;
    g.bench_function("seen_key_insert_spilled", |b| {
        b.iter(|| {
            n += 1;
            spilled.insert(black_box(&fresh(n)), DAY)
        })
    });
    // The same, opened for a day of 2M keys (`expected_daily_transactions`) and reserved:
    // one filter a shard, sized once, instead of a handful that doubled.
    let sized_dir = tempfile::tempdir().unwrap();
    let sized = {
        let to = switch::daytable::SpillTo {
            dir: sized_dir.path().to_path_buf(),
            memory_entries: 64_000,
        };
        let t: switch::daytable::DayTable<u32> =
            switch::daytable::DayTable::spilling(to.capacity_for(2_000_000), &to, "sized").unwrap();
        t.reserve();
        for i in 0..1_000_000u32 {
            t.insert(&key_n(i), DAY);
        }
        t
    };
    let mut n = 0u32;
    g.bench_function("seen_key_insert_spilled_sized_reserved", |b| {
        b.iter(|| {
            n += 1;
            sized.insert(black_box(&fresh(n)), DAY)
        })
    });
    drop(sized);
    // Keys 0..900,000 were written out first (the last ~64k stay in memory).
    let mut next = 0u64;
    g.bench_function("seen_key_get_on_disk", |b| {
        b.iter_custom(|iters| {
            if next + iters > 900_000 {
                spilled = filled();
                next = 0;
            }
            let start = std::time::Instant::now();
            for i in next..next + iters {
                // A stride through the range: neighbouring lookups hit different blocks.
                let n = (i * 7_919 % 900_000) as u32;
                assert_eq!(spilled.get(black_box(&key_n(n))), Some(DAY));
            }
            next += iters;
            start.elapsed()
        })
    });
    // The cut-over's prune of a day table past its bound: 1M keys, 64k in memory, every
    // key of the closed day dropped (`seen.retain(|day| *day > closed)`). It reads every run
    // back and compacts it shard by shard; the shard's lock is held only to snapshot the
    // runs and to swap the compacted run in.
    g.sample_size(10);
    g.bench_function("day_table_cutover_1m_spilled", |b| {
        b.iter_batched(
            filled,
            |t| {
                t.retain(|day| *day > DAY);
                t.len()
            },
            criterion::BatchSize::PerIteration,
        )
    });
    // The cut-over's prune of the originals index past its bound: 1M approved originals
    // (`CUTOVER_BENCH_ORIGINALS` to change), 64k in memory, all inside the refund window,
    // so every run is read back and written again (the prune does not yet keep or drop
    // whole runs by age).
    let originals_n: u32 = std::env::var("CUTOVER_BENCH_ORIGINALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rules = switch::originals::RelatedRules::from(
        &switch::config::Config::from_toml_str("", std::path::Path::new("switch.toml"))
            .unwrap()
            .rules,
    );
    let now_ms = 1_764_547_200_000i64;
    let originals = || {
        let idx = switch::originals::OriginalIndex::spilling(
            0,
            &switch::daytable::SpillTo {
                dir: dir.path().to_path_buf(),
                memory_entries: 64_000,
            },
        )
        .unwrap();
        for i in 0..originals_n {
            let mut o = pending_purchase();
            o.state = switch::originals::OriginalState::Approved;
            o.approved_ms = now_ms;
            idx.insert(key_n(i), o);
        }
        idx
    };
    g.bench_function("originals_cutover_prune_1m_spilled", |b| {
        b.iter_batched(
            originals,
            |idx| idx.prune_past(&rules, now_ms),
            criterion::BatchSize::PerIteration,
        )
    });
    // What the prune costs the link threads: the longest one insert waits (on a shard's
    // lock) while the prune above runs on another thread. Reported as the time.
    g.bench_function("originals_cutover_longest_insert_wait", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let idx = originals();
                let stop = std::sync::atomic::AtomicBool::new(false);
                total += std::thread::scope(|scope| {
                    let worker = scope.spawn(|| {
                        let mut longest = std::time::Duration::ZERO;
                        let mut i = 0u32;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let o = pending_purchase();
                            let t = std::time::Instant::now();
                            idx.insert(key_n(2_000_000 + i % 1_000_000), o);
                            longest = longest.max(t.elapsed());
                            i += 1;
                        }
                        longest
                    });
                    idx.prune_past(&rules, now_ms);
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    worker.join().unwrap()
                });
            }
            total
        })
    });
    // A transaction's request record encoded and appended, back to back, with the writer
    // thread running (buffered mode). The queue fills, so this is the pace of the slower of
    // the two threads, the writer included, not the appender's cost alone. `inline` is
    // the switch's way (the payload inside the record); `shared` copies it into an
    // allocation first, which the writer thread then frees, as before session 8.
    {
        use switch::journal::{FileJournal, Journal, JournalOptions, Payload};
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions {
            durability: switch::journal::Durability::Buffered,
            ..JournalOptions::default()
        };
        let (journal, _) = FileJournal::open(dir.path(), options).unwrap();
        let record = switch::records::SwitchRecord::Request(typical_request());
        let kind = record.kind();
        assert!(record.encode().unwrap().is_inline());
        // The encoding alone (postcard into the inline payload), no queue.
        g.bench_function("record_encode_request", |b| {
            b.iter(|| black_box(&record).encode().unwrap());
        });
        g.bench_function("journal_append_request_inline", |b| {
            b.iter(|| journal.append(kind, record.encode().unwrap(), None));
        });
        g.bench_function("journal_append_request_shared", |b| {
            b.iter(|| {
                let p = record.encode().unwrap();
                let shared = bytes::Bytes::copy_from_slice(p.as_slice());
                journal.append(kind, Payload::from(shared), None);
            });
        });
        journal.flush_blocking().unwrap();
    }
    // Filling an empty table with 200,000 fresh keys: growth included (the stall-free
    // growth itself shows in loadgen's per-second maximum, not in a mean).
    g.sample_size(10);
    g.bench_function("day_table_fill_200k", |b| {
        b.iter(|| {
            let t: switch::daytable::DayTable<u32> = switch::daytable::DayTable::default();
            for i in 0..200_000u32 {
                let k = TxnKey {
                    transmission: u64::from(i),
                    ..key_n(i)
                };
                t.insert(&k, DAY);
            }
            t.len()
        })
    });
    g.finish();
}

/// The bench purchase's request record as the switch journals it once forwarded.
fn typical_request() -> switch::records::RequestRecord {
    let msg = Message::decode(payload(&purchase())).unwrap();
    let key = TxnKey::of(&msg).unwrap();
    let link = InstId::new("01030000").unwrap();
    let now = 1_795_000_000_000;
    let mut r =
        switch::actors::acquirer::request_record(&msg, key, TxnKind::Purchase, link, DAY, now);
    r.issuer = Some(switch::records::fixed("03010000"));
    r.issuer_stan = Some(123_451);
    r
}

criterion_group!(benches, steps, extras);
criterion_main!(benches);
