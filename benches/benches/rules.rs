//! Benchmarks of the switch's hot-path tables: BIN lookup over 100,000 ranges and limit
//! counter reservations, alone and contended by two threads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::path::Path;
use switch::bins::{parse_csv, BinTable};
use switch::limits::{LimitCounters, LimitSettings};
use switch::registry::{MerchantId, TerminalId, TxnCategory};

/// 100,000 distinct prefixes of 6 to 12 digits, many nested (xorshift, deterministic).
fn big_table() -> (BinTable, Vec<Vec<u8>>) {
    let mut text = String::from("prefix,issuer,card_type,installment\n");
    let mut seen = std::collections::HashSet::new();
    let mut pans = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while seen.len() < 100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 6 + (x % 7) as usize;
        let digits = format!("62{:014}", (x >> 8) % 100_000_000_000_000);
        let prefix = &digits[..len];
        if seen.insert(prefix.to_owned()) {
            text.push_str(&format!("{prefix},03010000,debit,N\n"));
            if pans.len() < 4096 {
                pans.push(digits.into_bytes());
            }
        }
    }
    let rows = parse_csv(text.as_bytes(), Path::new("bench.csv")).unwrap();
    (
        BinTable::from_rows(&rows, Path::new("bench.csv")).unwrap(),
        pans,
    )
}

fn bin_lookup(c: &mut Criterion) {
    let (table, pans) = big_table();
    let mut i = 0usize;
    c.bench_function("bin_lookup_100k_ranges", |b| {
        b.iter(|| {
            i = (i + 1) % pans.len();
            black_box(table.lookup(black_box(&pans[i])))
        });
    });
}

fn limits(c: &mut Criterion) {
    let settings = LimitSettings::from_csv(
        b"scope,merchant_id,terminal_id,categories,single_max,daily_amount_max,daily_count_max\n\
          terminal,*,*,purchase,5000000,,\nmerchant,*,,purchase,,,\n",
        Path::new("limits.csv"),
    )
    .unwrap();
    let counters = LimitCounters::new();
    let t = TerminalId::from_field(b"TERM0001").unwrap();
    let m = MerchantId::from_field(b"MERCHANT0000001").unwrap();
    c.bench_function("limits_reserve_release", |b| {
        b.iter(|| {
            let r = counters
                .reserve(&settings, &t, &m, TxnCategory::Purchase, 1_000, 20261121)
                .unwrap();
            counters.release(black_box(&r));
        });
    });
    // Same counters hammered by a second thread meanwhile: contention on one terminal.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(r) =
                    counters.reserve(&settings, &t, &m, TxnCategory::Purchase, 1_000, 20261121)
                {
                    counters.release(&r);
                }
            }
        });
        c.bench_function("limits_reserve_release_contended", |b| {
            b.iter(|| {
                let r = counters
                    .reserve(&settings, &t, &m, TxnCategory::Purchase, 1_000, 20261121)
                    .unwrap();
                counters.release(black_box(&r));
            });
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

criterion_group!(benches, bin_lookup, limits);
criterion_main!(benches);
