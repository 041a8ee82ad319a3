//! Per-terminal and per-merchant limits (SPEC.md section 9 rule 4): single amount and daily
//! amount (`61`), daily count (`65`), per transaction category, with the F44 reason text.
//!
//! This module owns two things:
//! - [`LimitSettings`]: the immutable settings snapshot loaded from `limits.csv` (published
//!   through `arc-swap` with the other tables and swapped on reload);
//! - [`LimitCounters`]: the mutable daily usage, shared by every connection and never
//!   swapped (a reload changes the limits, not today's usage). Lock-free per counter
//!   (ARCHITECTURE.md principle 4): each counter is two `AtomicU64` words, one for the amount
//!   and one for the count, each packing its business day with its value, updated by
//!   compare-exchange loops that check the limit, so concurrent reservations never overshoot.
//!
//! The connection layer reserves on forward ([`LimitCounters::reserve`]), releases on
//! decline, `98`, reversal and void ([`LimitCounters::release`]) and rebuilds the day's usage
//! from the journal at start ([`LimitCounters::rebuild`]). Voids and reversals do not reserve:
//! they release their original's reservation.

use std::cmp::Ordering as Cmp;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use iso8583::ResponseCode;

use crate::registry::{
    read_file, CategorySet, CsvTable, Decline, MerchantId, RegistryError, TerminalId, TxnCategory,
};

/// Limits files are read with the registry's CSV reader and report errors the same way.
pub type LimitsError = RegistryError;

/// Bits of a counter word holding the value; the rest hold the business day.
const VALUE_BITS: u32 = 44;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
/// Largest day ordinal (20 bits: years up to 2818).
const DAY_MAX: u64 = (1 << (64 - VALUE_BITS)) - 1;

/// Largest configurable limit and largest daily total a counter holds (2^44 - 1 minor units,
/// about 1.7e13: far above any daily turnover). Totals saturate there.
pub const MAX_VALUE: i64 = VALUE_MASK as i64;

impl Decline {
    pub const TERM_SINGLE_LIMIT: Decline =
        Decline::new(ResponseCode::AMOUNT_LIMIT, "TERM SINGLE LIMIT");
    pub const MERCH_SINGLE_LIMIT: Decline =
        Decline::new(ResponseCode::AMOUNT_LIMIT, "MERCH SINGLE LIMIT");
    pub const TERM_DAILY_LIMIT: Decline =
        Decline::new(ResponseCode::AMOUNT_LIMIT, "TERM DAILY LIMIT");
    pub const MERCH_DAILY_LIMIT: Decline =
        Decline::new(ResponseCode::AMOUNT_LIMIT, "MERCH DAILY LIMIT");
    pub const TERM_DAILY_COUNT: Decline =
        Decline::new(ResponseCode::COUNT_LIMIT, "TERM DAILY COUNT");
    pub const MERCH_DAILY_COUNT: Decline =
        Decline::new(ResponseCode::COUNT_LIMIT, "MERCH DAILY COUNT");
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// The limits of one scope and category; `None` = unlimited. Amounts in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limit {
    pub single_max: Option<i64>,
    pub daily_amount_max: Option<i64>,
    pub daily_count_max: Option<u64>,
}

/// Whom a settings row applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LimitScope {
    Terminal,
    Merchant,
}

/// A settings row's target; `None` stands for the CSV's `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SettingKey {
    scope: LimitScope,
    merchant: Option<MerchantId>,
    terminal: Option<TerminalId>,
    category: TxnCategory,
}

/// Limit settings: an immutable snapshot of `limits.csv`. The most specific row applies, as a
/// whole (its empty fields mean unlimited, not "inherit"): for a terminal (merchant, terminal),
/// then (merchant, `*`), then (`*`, `*`); for a merchant the merchant, then `*`. No row: no
/// limit. The default value has no rows.
#[derive(Debug, Clone, Default)]
pub struct LimitSettings {
    limits: HashMap<SettingKey, Limit, crate::FastHash>,
}

const COLUMNS: [&str; 7] = [
    "scope",
    "merchant_id",
    "terminal_id",
    "categories",
    "single_max",
    "daily_amount_max",
    "daily_count_max",
];

impl LimitSettings {
    /// Reads and validates a limits file (format in `config/README.md`).
    pub fn load(path: &Path) -> Result<LimitSettings, LimitsError> {
        LimitSettings::from_csv(&read_file(path)?, path)
    }

    /// Builds settings from CSV text; `file` only labels errors.
    pub fn from_csv(data: &[u8], file: &Path) -> Result<LimitSettings, LimitsError> {
        let mut limits: HashMap<_, _, crate::FastHash> = HashMap::default();
        let mut lines: HashMap<SettingKey, u64> = HashMap::new();
        let mut csv = CsvTable::open(data, file, COLUMNS)?;
        while csv.next()? {
            let scope = csv.parse(0, |s| match s.to_ascii_lowercase().as_str() {
                "terminal" => Ok(LimitScope::Terminal),
                "merchant" => Ok(LimitScope::Merchant),
                _ => Err(format!("scope {s:?} must be terminal or merchant")),
            })?;
            let merchant = csv.parse(1, |s| wildcard(s, MerchantId::parse))?;
            let terminal = csv.parse(2, |s| match scope {
                LimitScope::Merchant if s.is_empty() => Ok(None),
                LimitScope::Merchant => Err("must be empty for scope merchant".to_string()),
                LimitScope::Terminal if s.is_empty() => {
                    Err("empty value: a terminal ID or * for scope terminal".to_string())
                }
                // A terminal ID is only unique within its merchant.
                LimitScope::Terminal if merchant.is_none() && s != "*" => {
                    Err("must be * when merchant_id is *".to_string())
                }
                LimitScope::Terminal => wildcard(s, TerminalId::parse),
            })?;
            let categories = csv.parse(3, CategorySet::parse)?;
            let limit = Limit {
                single_max: csv.parse(4, amount)?,
                daily_amount_max: csv.parse(5, amount)?,
                daily_count_max: csv.parse(6, amount)?.map(i64::unsigned_abs),
            };
            for category in categories.iter() {
                let key = SettingKey {
                    scope,
                    merchant,
                    terminal,
                    category,
                };
                if let Some(first) = lines.insert(key, csv.line()) {
                    return Err(csv.error(
                        3,
                        format!("limits for {category} in this scope already set at line {first}"),
                    ));
                }
                limits.insert(key, limit);
            }
        }
        Ok(LimitSettings { limits })
    }

    fn get(
        &self,
        scope: LimitScope,
        merchant: Option<&MerchantId>,
        terminal: Option<&TerminalId>,
        category: TxnCategory,
    ) -> Option<&Limit> {
        self.limits.get(&SettingKey {
            scope,
            merchant: merchant.copied(),
            terminal: terminal.copied(),
            category,
        })
    }

    /// The limits of `terminal` of `merchant` for `category`, if any.
    #[must_use]
    pub fn terminal_limit(
        &self,
        terminal: &TerminalId,
        merchant: &MerchantId,
        category: TxnCategory,
    ) -> Option<&Limit> {
        if self.limits.is_empty() {
            return None;
        }
        let t = LimitScope::Terminal;
        self.get(t, Some(merchant), Some(terminal), category)
            .or_else(|| self.get(t, Some(merchant), None, category))
            .or_else(|| self.get(t, None, None, category))
    }

    /// The limits of `merchant` for `category`, if any.
    #[must_use]
    pub fn merchant_limit(&self, merchant: &MerchantId, category: TxnCategory) -> Option<&Limit> {
        if self.limits.is_empty() {
            return None;
        }
        let m = LimitScope::Merchant;
        self.get(m, Some(merchant), None, category)
            .or_else(|| self.get(m, None, None, category))
    }

    /// Number of (scope, target, category) entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.limits.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }
}

/// `*` as `None`, anything else parsed.
fn wildcard<T>(s: &str, parse: fn(&str) -> Result<T, String>) -> Result<Option<T>, String> {
    if s == "*" {
        Ok(None)
    } else {
        parse(s).map(Some)
    }
}

/// An optional limit value: empty = unlimited, else 0 to [`MAX_VALUE`].
fn amount(s: &str) -> Result<Option<i64>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<i64>() {
        Ok(v) if (0..=MAX_VALUE).contains(&v) => Ok(Some(v)),
        _ => Err(format!(
            "{s:?} must be empty (unlimited) or a whole number from 0 to {MAX_VALUE} \
             (amounts in minor units)"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

/// Which usage a counter tracks: a terminal of a merchant, or a merchant, for one category.
/// Merchant IDs are taken as unique across acquirers (the CUPS merchant code embeds the
/// acquirer's institution code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterKey {
    pub merchant: MerchantId,
    /// `None` for the merchant's own counter.
    pub terminal: Option<TerminalId>,
    pub category: TxnCategory,
}

impl CounterKey {
    #[must_use]
    pub fn terminal(terminal: &TerminalId, merchant: &MerchantId, category: TxnCategory) -> Self {
        CounterKey {
            merchant: *merchant,
            terminal: Some(*terminal),
            category,
        }
    }

    #[must_use]
    pub fn merchant(merchant: &MerchantId, category: TxnCategory) -> Self {
        CounterKey {
            merchant: *merchant,
            terminal: None,
            category,
        }
    }
}

/// One business day's usage of a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub amount: i64,
    pub count: u64,
}

/// Usage held by one forwarded request on its terminal's and its merchant's counters. Plain
/// data, so the connection layer can keep it with the in-flight request and recreate it from
/// a journalled original (void or reversal after a restart). Release it exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reservation {
    pub terminal: TerminalId,
    pub merchant: MerchantId,
    pub category: TxnCategory,
    /// Minor units, clamped to `0..=MAX_VALUE`.
    pub amount: i64,
    /// Business (settlement) day, `YYYYMMDD`.
    pub day: u32,
}

/// Maps `YYYYMMDD` to a small ordinal that orders like the dates (31 slots per month, 12 per
/// year: no calendar needed), so that it fits the 20 day bits of a counter word. Out-of-range
/// parts are clamped: never a panic on a bad day.
fn day_ordinal(yyyymmdd: u32) -> u64 {
    let (y, m, d) = (yyyymmdd / 10_000, yyyymmdd / 100 % 100, yyyymmdd % 100);
    let ordinal =
        u64::from(y) * 372 + u64::from(m.clamp(1, 12) - 1) * 31 + u64::from(d.clamp(1, 31) - 1);
    ordinal.min(DAY_MAX)
}

fn pack(day: u64, value: u64) -> u64 {
    (day << VALUE_BITS) | value
}

fn unpack(word: u64) -> (u64, u64) {
    (word >> VALUE_BITS, word & VALUE_MASK)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Added {
    Done,
    /// The word is already on a later day: the request's day is closed, nothing was counted.
    Stale,
    Exceeded,
}

// Each word carries its own day, so a word is consistent on its own and no ordering with
// other memory is needed: read-modify-writes of one atomic are totally ordered even with
// `Relaxed`. (An amount and a count update are two steps; see `Counter::reserve`.)

/// Adds `n` to the word's value for `day` unless that would exceed `max`. A word still on an
/// earlier day counts as zero: the reset happens lazily, inside the same compare-exchange.
fn add(word: &AtomicU64, day: u64, n: u64, max: Option<u64>) -> Added {
    let mut outcome = Added::Done;
    let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
        let (d, v) = unpack(w);
        let base = match d.cmp(&day) {
            Cmp::Less => 0,
            Cmp::Equal => v,
            Cmp::Greater => {
                outcome = Added::Stale;
                return None;
            }
        };
        let total = base.saturating_add(n);
        if max.is_some_and(|max| total > max) {
            outcome = Added::Exceeded;
            return None;
        }
        outcome = Added::Done;
        Some(pack(day, total.min(VALUE_MASK)))
    });
    outcome
}

/// Takes `n` back from the word, only if it is still on `day` (else it was reset since).
fn sub(word: &AtomicU64, day: u64, n: u64) {
    let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
        let (d, v) = unpack(w);
        (d == day).then(|| pack(d, v.saturating_sub(n)))
    });
}

fn value(word: &AtomicU64, day: u64) -> u64 {
    let (d, v) = unpack(word.load(Ordering::Relaxed));
    if d == day {
        v
    } else {
        0
    }
}

#[derive(Debug, Default)]
struct Counter {
    amount: AtomicU64,
    count: AtomicU64,
}

impl Counter {
    /// Reserves `amount` and one count for `day` within `limit`. The two words are updated
    /// one after the other: if the count is refused, the amount is taken back. Neither word
    /// ever exceeds its limit; a concurrent request may see the amount briefly held and be
    /// declined, which errs on the safe side.
    fn reserve(
        &self,
        day: u64,
        amount: u64,
        limit: Option<&Limit>,
        amount_decline: Decline,
        count_decline: Decline,
    ) -> Result<(), Decline> {
        let amount_max = limit
            .and_then(|l| l.daily_amount_max)
            .map(i64::unsigned_abs);
        let count_max = limit.and_then(|l| l.daily_count_max);
        if add(&self.amount, day, amount, amount_max) == Added::Exceeded {
            return Err(amount_decline);
        }
        if add(&self.count, day, 1, count_max) == Added::Exceeded {
            sub(&self.amount, day, amount);
            return Err(count_decline);
        }
        Ok(())
    }

    fn release(&self, day: u64, amount: u64) {
        sub(&self.amount, day, amount);
        sub(&self.count, day, 1);
    }
}

/// The daily usage of every terminal and merchant per category. One instance lives for the
/// whole process (not per settings snapshot). Counters are created on first use and kept:
/// their number is bounded by the registry's terminals and merchants times the categories,
/// and removing one could race with a reservation holding it.
#[derive(Debug, Default)]
pub struct LimitCounters {
    /// Updated under the shard's read lock ([`LimitCounters::with_counter`]): a few atomic
    /// updates, never a reference count per request.
    counters: DashMap<CounterKey, Counter, crate::FastHash>,
}

impl LimitCounters {
    #[must_use]
    pub fn new() -> LimitCounters {
        LimitCounters::default()
    }

    /// Runs `f` on `key`'s counter (created on first use) under the map's shard read lock.
    /// Never call it from inside `f` (a second read lock on a shard could wait
    /// behind a writer that waits for the first).
    fn with_counter<R>(&self, key: CounterKey, f: impl FnOnce(&Counter) -> R) -> R {
        if let Some(c) = self.counters.get(&key) {
            return f(&c);
        }
        let c = self.counters.entry(key).or_default().downgrade();
        f(&c)
    }

    /// Rule 4 for one request on `day` (business day, `YYYYMMDD`): checks, in order, the
    /// terminal's and the merchant's single amount limit (`61`), then reserves on the
    /// terminal's counter (daily amount `61`, daily count `65`) and on the merchant's (same);
    /// if the merchant refuses, the terminal's reservation is taken back. `amount` is in minor
    /// units (0 for a balance inquiry: it only counts). A request dated before a counter's
    /// current day (cut-over race) is only checked against the single limits.
    pub fn reserve(
        &self,
        settings: &LimitSettings,
        terminal: &TerminalId,
        merchant: &MerchantId,
        category: TxnCategory,
        amount: i64,
        day: u32,
    ) -> Result<Reservation, Decline> {
        let amount = amount.clamp(0, MAX_VALUE);
        let term_limit = settings.terminal_limit(terminal, merchant, category);
        let merch_limit = settings.merchant_limit(merchant, category);
        let over_single =
            |l: Option<&Limit>| l.and_then(|l| l.single_max).is_some_and(|max| amount > max);
        if over_single(term_limit) {
            return Err(Decline::TERM_SINGLE_LIMIT);
        }
        if over_single(merch_limit) {
            return Err(Decline::MERCH_SINGLE_LIMIT);
        }

        let (d, n) = (day_ordinal(day), amount.unsigned_abs());
        let term = CounterKey::terminal(terminal, merchant, category);
        self.with_counter(term, |c| {
            c.reserve(
                d,
                n,
                term_limit,
                Decline::TERM_DAILY_LIMIT,
                Decline::TERM_DAILY_COUNT,
            )
        })?;
        let merch = self.with_counter(CounterKey::merchant(merchant, category), |c| {
            c.reserve(
                d,
                n,
                merch_limit,
                Decline::MERCH_DAILY_LIMIT,
                Decline::MERCH_DAILY_COUNT,
            )
        });
        if let Err(decline) = merch {
            self.with_counter(term, |c| c.release(d, n));
            return Err(decline);
        }
        Ok(Reservation {
            terminal: *terminal,
            merchant: *merchant,
            category,
            amount,
            day,
        })
    }

    /// Gives a reservation's usage back (decline, `98`, reversal, void). Does nothing on a
    /// counter that has moved to a later day since: that day's usage was reset anyway.
    pub fn release(&self, reservation: &Reservation) {
        let (d, n) = (
            day_ordinal(reservation.day),
            reservation.amount.clamp(0, MAX_VALUE).unsigned_abs(),
        );
        for key in keys(reservation) {
            if let Some(c) = self.counters.get(&key) {
                c.release(d, n);
            }
        }
    }

    /// Adds usage without checking limits: at start, the journal's approved transactions of
    /// the current business day, so a restart never resets a merchant's daily usage. Records
    /// of an earlier day than a counter's are ignored; a later day resets it.
    pub fn rebuild(&self, records: impl IntoIterator<Item = Reservation>) {
        for r in records {
            let (d, n) = (
                day_ordinal(r.day),
                r.amount.clamp(0, MAX_VALUE).unsigned_abs(),
            );
            for key in keys(&r) {
                self.with_counter(key, |c| {
                    add(&c.amount, d, n, None);
                    add(&c.count, d, 1, None);
                });
            }
        }
    }

    /// A counter's usage on `day` (zero if it holds another day's).
    #[must_use]
    pub fn usage(&self, key: &CounterKey, day: u32) -> Usage {
        let d = day_ordinal(day);
        self.counters
            .get(key)
            .map_or_else(Usage::default, |c| Usage {
                amount: i64::try_from(value(&c.amount, d)).unwrap_or(MAX_VALUE),
                count: value(&c.count, d),
            })
    }

    /// Number of counters (metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }
}

fn keys(r: &Reservation) -> [CounterKey; 2] {
    [
        CounterKey::terminal(&r.terminal, &r.merchant, r.category),
        CounterKey::merchant(&r.merchant, r.category),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use TxnCategory::{Cash, Purchase, Refund};

    const HEADER: &str =
        "scope,merchant_id,terminal_id,categories,single_max,daily_amount_max,daily_count_max\n";
    const DAY: u32 = 20_261_121;

    fn settings(rows: &str) -> LimitSettings {
        LimitSettings::from_csv(
            format!("{HEADER}{rows}").as_bytes(),
            Path::new("limits.csv"),
        )
        .unwrap()
    }

    fn m(s: &str) -> MerchantId {
        MerchantId::parse(s).unwrap()
    }

    fn t(s: &str) -> TerminalId {
        TerminalId::parse(s).unwrap()
    }

    fn table_settings() -> LimitSettings {
        settings(
            "terminal,*,*,purchase,10000,50000,\n\
             terminal,M1,T1,purchase,,30000,3\n\
             terminal,M1,*,cash,1000,,\n\
             merchant,*,,purchase,20000,,\n\
             merchant,M1,,purchase,,60000,6\n\
             merchant,M1,,refund,500,,\n",
        )
    }

    #[test]
    fn decline_table() {
        // (prior reservations: terminal, merchant, amount, times), request, expected.
        type Prior = (&'static str, &'static str, i64, usize);
        type Request = (&'static str, &'static str, TxnCategory, i64);
        #[rustfmt::skip]
        let cases: &[(&[Prior], Request, Result<(), Decline>)] = &[
            (&[], ("T9", "M2", Purchase, 10_000), Ok(())),
            (&[], ("T9", "M2", Purchase, 10_001), Err(Decline::TERM_SINGLE_LIMIT)),
            (&[], ("T1", "M1", Cash, 1_001), Err(Decline::TERM_SINGLE_LIMIT)),
            (&[], ("T1", "M1", Refund, 501), Err(Decline::MERCH_SINGLE_LIMIT)),
            (&[("T1", "M1", 20_000, 1)], ("T1", "M1", Purchase, 10_000), Ok(())),
            (&[("T1", "M1", 20_000, 1)], ("T1", "M1", Purchase, 10_001), Err(Decline::TERM_DAILY_LIMIT)),
            (&[("T1", "M1", 100, 3)], ("T1", "M1", Purchase, 100), Err(Decline::TERM_DAILY_COUNT)),
            (&[("T2", "M1", 10_000, 4), ("T3", "M1", 10_000, 1)], ("T1", "M1", Purchase, 10_001), Err(Decline::MERCH_DAILY_LIMIT)),
            (&[("T2", "M1", 100, 6)], ("T1", "M1", Purchase, 100), Err(Decline::MERCH_DAILY_COUNT)),
            // No row for the category at all: unlimited.
            (&[], ("T1", "M3", Refund, 1_000_000_000), Ok(())),
        ];
        let s = table_settings();
        for (priors, (term, merch, cat, amount), want) in cases {
            let c = LimitCounters::new();
            for &(pt, pm, pa, times) in *priors {
                for _ in 0..times {
                    c.reserve(&s, &t(pt), &m(pm), Purchase, pa, DAY).unwrap();
                }
            }
            let before = c.usage(&CounterKey::terminal(&t(term), &m(merch), *cat), DAY);
            let got = c.reserve(&s, &t(term), &m(merch), *cat, *amount, DAY);
            assert_eq!(
                got.map(|_| ()),
                *want,
                "{priors:?} {term} {merch} {cat} {amount}"
            );
            if want.is_err() {
                // A decline leaves nothing held, on the terminal either.
                assert_eq!(
                    c.usage(&CounterKey::terminal(&t(term), &m(merch), *cat), DAY),
                    before
                );
            }
        }
        for d in [Decline::TERM_SINGLE_LIMIT, Decline::MERCH_DAILY_LIMIT] {
            assert_eq!(d.code.as_str(), "61");
        }
        for d in [Decline::TERM_DAILY_COUNT, Decline::MERCH_DAILY_COUNT] {
            assert_eq!(d.code.as_str(), "65");
        }
    }

    #[test]
    fn settings_precedence_and_errors() {
        let s = table_settings();
        let single = |l: Option<&Limit>| l.map(|l| l.single_max);
        assert_eq!(
            single(s.terminal_limit(&t("T1"), &m("M1"), Purchase)),
            Some(None)
        );
        assert_eq!(
            single(s.terminal_limit(&t("T2"), &m("M1"), Purchase)),
            Some(Some(10_000))
        );
        assert_eq!(
            single(s.terminal_limit(&t("T2"), &m("M1"), Cash)),
            Some(Some(1_000))
        );
        assert_eq!(single(s.terminal_limit(&t("T2"), &m("M2"), Cash)), None);
        assert_eq!(single(s.merchant_limit(&m("M1"), Purchase)), Some(None));
        assert_eq!(
            single(s.merchant_limit(&m("M2"), Purchase)),
            Some(Some(20_000))
        );

        #[rustfmt::skip]
        let cases: &[(&str, u64, &str, &str)] = &[
            ("shop,*,,purchase,,,\n", 2, "scope", "terminal or merchant"),
            ("merchant,*,T1,purchase,,,\n", 2, "terminal_id", "empty for scope merchant"),
            ("terminal,*,,purchase,,,\n", 2, "terminal_id", "empty value"),
            ("terminal,*,T1,purchase,,,\n", 2, "terminal_id", "must be *"),
            ("terminal,M1,TERMINAL1,purchase,,,\n", 2, "terminal_id", "1 to 8"),
            ("terminal,*,*,purchase|atm,,,\n", 2, "categories", "unknown category"),
            ("terminal,*,*,purchase,-1,,\n", 2, "single_max", "whole number"),
            ("terminal,*,*,purchase,,1.50,\n", 2, "daily_amount_max", "whole number"),
            ("terminal,*,*,purchase,,,99999999999999999\n", 2, "daily_count_max", "whole number"),
            ("terminal,*,*,purchase,,,\n# dup\nterminal,*,*,cash|purchase,,,\n", 4, "categories", "already set at line 2"),
        ];
        for (rows, line, column, reason) in cases {
            let e = LimitSettings::from_csv(
                format!("{HEADER}{rows}").as_bytes(),
                Path::new("limits.csv"),
            )
            .unwrap_err();
            assert_eq!((e.line, e.column), (Some(*line), Some(*column)), "{e}");
            assert!(e.reason.contains(reason), "{e}");
        }
        // Different scopes or targets do not clash.
        settings("terminal,*,*,purchase,,,\nterminal,M1,*,purchase,,,\nmerchant,*,,purchase,,,\n");
    }

    #[test]
    fn new_day_resets_lazily_and_old_day_passes_unreserved() {
        let s = settings("terminal,*,*,purchase,,1000,2\n");
        let c = LimitCounters::new();
        let key = CounterKey::terminal(&t("T1"), &m("M1"), Purchase);
        c.reserve(&s, &t("T1"), &m("M1"), Purchase, 600, DAY)
            .unwrap();
        assert_eq!(
            c.reserve(&s, &t("T1"), &m("M1"), Purchase, 600, DAY),
            Err(Decline::TERM_DAILY_LIMIT)
        );
        let next = DAY + 1;
        c.reserve(&s, &t("T1"), &m("M1"), Purchase, 1000, next)
            .unwrap();
        assert_eq!(
            c.usage(&key, next),
            Usage {
                amount: 1000,
                count: 1
            }
        );
        assert_eq!(c.usage(&key, DAY), Usage::default());
        // Month and year boundaries order correctly too.
        for (a, b) in [(20_261_130, 20_261_201), (20_261_231, 20_270_101)] {
            assert!(day_ordinal(a) < day_ordinal(b));
        }
        // A request still dated the closed day is not counted against the new day.
        let late = c
            .reserve(&s, &t("T1"), &m("M1"), Purchase, 900, DAY)
            .unwrap();
        assert_eq!(
            c.usage(&key, next),
            Usage {
                amount: 1000,
                count: 1
            }
        );
        c.release(&late);
        assert_eq!(
            c.usage(&key, next),
            Usage {
                amount: 1000,
                count: 1
            }
        );
    }

    #[test]
    fn release_gives_back_and_ignores_other_days() {
        let s = settings("terminal,*,*,purchase,,1000,\nmerchant,*,,purchase,,,1\n");
        let c = LimitCounters::new();
        let r = c
            .reserve(&s, &t("T1"), &m("M1"), Purchase, 1000, DAY)
            .unwrap();
        assert_eq!(
            c.reserve(&s, &t("T2"), &m("M1"), Purchase, 1, DAY),
            Err(Decline::MERCH_DAILY_COUNT)
        );
        c.release(&r);
        let mkey = CounterKey::merchant(&m("M1"), Purchase);
        assert_eq!(c.usage(&mkey, DAY), Usage::default());
        let r2 = c
            .reserve(&s, &t("T1"), &m("M1"), Purchase, 1000, DAY)
            .unwrap();
        // Next day: the old reservation's release must not touch the new day's usage.
        c.reserve(&s, &t("T1"), &m("M1"), Purchase, 400, DAY + 1)
            .unwrap();
        c.release(&r2);
        let tkey = CounterKey::terminal(&t("T1"), &m("M1"), Purchase);
        for key in [tkey, mkey] {
            assert_eq!(
                c.usage(&key, DAY + 1),
                Usage {
                    amount: 400,
                    count: 1
                }
            );
        }
        let c2 = LimitCounters::new();
        c2.release(&r2); // releasing on counters never used is a no-op
        assert!(c2.is_empty());
    }

    #[test]
    fn rebuild_restores_usage() {
        let s = settings("terminal,*,*,purchase,,1000,\n");
        let c = LimitCounters::new();
        let rec = |amount, day| Reservation {
            terminal: t("T1"),
            merchant: m("M1"),
            category: Purchase,
            amount,
            day,
        };
        c.rebuild([
            rec(300, DAY - 1),
            rec(400, DAY),
            rec(500, DAY),
            rec(900, DAY - 1),
        ]);
        let key = CounterKey::terminal(&t("T1"), &m("M1"), Purchase);
        assert_eq!(
            c.usage(&key, DAY),
            Usage {
                amount: 900,
                count: 2
            }
        );
        assert_eq!(
            c.usage(&CounterKey::merchant(&m("M1"), Purchase), DAY)
                .amount,
            900
        );
        assert_eq!(
            c.reserve(&s, &t("T1"), &m("M1"), Purchase, 101, DAY),
            Err(Decline::TERM_DAILY_LIMIT)
        );
        c.reserve(&s, &t("T1"), &m("M1"), Purchase, 100, DAY)
            .unwrap();
    }

    #[test]
    fn bundled_limits_load() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/limits.csv");
        let s = LimitSettings::load(&path).unwrap();
        let cash = s
            .terminal_limit(&t("ATM00001"), &m("AGENT0000000001"), Cash)
            .unwrap();
        assert!(cash.single_max.is_some() && cash.daily_count_max.is_some());
        // The demo terminal carries load tests: no daily caps on purchases.
        let demo = s
            .terminal_limit(&t("TERM0001"), &m("MERCHANT0000001"), Purchase)
            .unwrap();
        assert_eq!(demo.daily_amount_max, None);
    }

    /// 8 threads race for one terminal's daily amount: exactly limit / amount reservations
    /// succeed (what any sequential order allows), and an observer never sees more.
    #[test]
    fn concurrent_reservations_never_overshoot() {
        const LIMIT: i64 = 1_000_000;
        const AMOUNT: i64 = 100;
        const PER_THREAD: usize = 5_000;
        let s = settings(&format!("terminal,*,*,purchase,,{LIMIT},\n"));
        let c = LimitCounters::new();
        let key = CounterKey::terminal(&t("T1"), &m("M1"), Purchase);
        let done = std::sync::atomic::AtomicBool::new(false);
        let ok = std::thread::scope(|scope| {
            let observer = scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    assert!(c.usage(&key, DAY).amount <= LIMIT);
                }
            });
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..PER_THREAD)
                            .filter(|_| {
                                c.reserve(&s, &t("T1"), &m("M1"), Purchase, AMOUNT, DAY)
                                    .is_ok()
                            })
                            .count()
                    })
                })
                .collect();
            let ok: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
            done.store(true, Ordering::Relaxed);
            observer.join().unwrap();
            ok
        });
        assert_eq!(ok as i64, LIMIT / AMOUNT);
        assert_eq!(
            c.usage(&key, DAY),
            Usage {
                amount: LIMIT,
                count: (LIMIT / AMOUNT) as u64
            }
        );
        assert_eq!(
            c.usage(&CounterKey::merchant(&m("M1"), Purchase), DAY)
                .amount,
            LIMIT
        );
    }

    /// Merchant limits refuse while terminals accept (rollback path) and releases interleave:
    /// no counter ever exceeds its limit, and at the end every counter equals what the
    /// surviving reservations hold.
    #[test]
    fn concurrent_rollback_and_release_stay_consistent() {
        let s = settings(
            "terminal,*,*,purchase,,100000,\n\
             merchant,*,,purchase,,500000,3000\n",
        );
        let c = LimitCounters::new();
        let terminals: Vec<TerminalId> = (0..4).map(|i| t(&format!("T{i}"))).collect();
        let done = std::sync::atomic::AtomicBool::new(false);
        let kept: Vec<Reservation> = std::thread::scope(|scope| {
            let observer = scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let u = c.usage(&CounterKey::merchant(&m("M1"), Purchase), DAY);
                    assert!(u.amount <= 500_000 && u.count <= 3000, "{u:?}");
                    for term in &terminals {
                        let u = c.usage(&CounterKey::terminal(term, &m("M1"), Purchase), DAY);
                        assert!(u.amount <= 100_000, "{u:?}");
                    }
                }
            });
            let workers: Vec<_> = (0..8u64)
                .map(|i| {
                    let (c, s, term) = (&c, &s, terminals[(i % 4) as usize]);
                    scope.spawn(move || {
                        let mut kept = Vec::new();
                        let mut x = i + 1;
                        for n in 0..20_000u64 {
                            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                            let amount = 1 + (x >> 33) % 300;
                            if let Ok(r) =
                                c.reserve(s, &term, &m("M1"), Purchase, amount as i64, DAY)
                            {
                                if n % 5 == 0 {
                                    c.release(&r);
                                } else {
                                    kept.push(r);
                                }
                            }
                        }
                        kept
                    })
                })
                .collect();
            let kept = workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect();
            done.store(true, Ordering::Relaxed);
            observer.join().unwrap();
            kept
        });
        let merchant = c.usage(&CounterKey::merchant(&m("M1"), Purchase), DAY);
        let held: i64 = kept.iter().map(|r| r.amount).sum();
        assert_eq!(
            merchant,
            Usage {
                amount: held,
                count: kept.len() as u64
            }
        );
        let terminal_sum: i64 = terminals
            .iter()
            .map(|term| {
                c.usage(&CounterKey::terminal(term, &m("M1"), Purchase), DAY)
                    .amount
            })
            .sum();
        assert_eq!(terminal_sum, held);
    }

    /// The specification as a plain sequential model: per counter (day, amount, count); a
    /// reservation is all or nothing over the terminal's and the merchant's counter; a
    /// counter on an earlier day counts as empty; a release only touches its own day.
    #[derive(Default)]
    struct Model {
        counters: HashMap<CounterKey, (u32, u64, u64)>,
    }

    impl Model {
        fn today(&self, key: &CounterKey, day: u32) -> (u64, u64) {
            match self.counters.get(key) {
                Some(&(d, a, c)) if d == day => (a, c),
                _ => (0, 0),
            }
        }

        fn reserve(
            &mut self,
            s: &LimitSettings,
            term: &TerminalId,
            merch: &MerchantId,
            cat: TxnCategory,
            amount: i64,
            day: u32,
        ) -> Result<(), Decline> {
            let tl = s
                .terminal_limit(term, merch, cat)
                .copied()
                .unwrap_or_default();
            let ml = s.merchant_limit(merch, cat).copied().unwrap_or_default();
            if tl.single_max.is_some_and(|x| amount > x) {
                return Err(Decline::TERM_SINGLE_LIMIT);
            }
            if ml.single_max.is_some_and(|x| amount > x) {
                return Err(Decline::MERCH_SINGLE_LIMIT);
            }
            let n = amount as u64;
            let scopes = [
                (
                    CounterKey::terminal(term, merch, cat),
                    tl,
                    Decline::TERM_DAILY_LIMIT,
                    Decline::TERM_DAILY_COUNT,
                ),
                (
                    CounterKey::merchant(merch, cat),
                    ml,
                    Decline::MERCH_DAILY_LIMIT,
                    Decline::MERCH_DAILY_COUNT,
                ),
            ];
            let mut updates = Vec::new();
            for (key, limit, amount_decline, count_decline) in scopes {
                let (a, c) = self.today(&key, day);
                if limit.daily_amount_max.is_some_and(|x| a + n > x as u64) {
                    return Err(amount_decline);
                }
                if limit.daily_count_max.is_some_and(|x| c + 1 > x) {
                    return Err(count_decline);
                }
                updates.push((key, (day, a + n, c + 1)));
            }
            self.counters.extend(updates);
            Ok(())
        }

        fn release(&mut self, r: &Reservation) {
            for key in keys(r) {
                if let Some((d, a, c)) = self.counters.get_mut(&key) {
                    if *d == r.day {
                        *a = a.saturating_sub(r.amount as u64);
                        *c = c.saturating_sub(1);
                    }
                }
            }
        }

        fn usage(&self, key: &CounterKey, day: u32) -> Usage {
            let (amount, count) = self.today(key, day);
            Usage {
                amount: amount as i64,
                count,
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Reserve {
            term: usize,
            merch: usize,
            cash: bool,
            amount: i64,
            next_day: bool,
        },
        Release(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..2usize, 0..2usize, any::<bool>(), 0..400i64, proptest::bool::weighted(0.1))
                .prop_map(|(term, merch, cash, amount, next_day)| Op::Reserve { term, merch, cash, amount, next_day }),
            2 => any::<usize>().prop_map(Op::Release),
        ]
    }

    proptest! {
        /// Random reservations (the business day moving forward now and then) and releases
        /// (also of earlier days' reservations) agree with the model, decision by decision
        /// and usage by usage. Going back in days is covered by the unit tests above.
        #[test]
        fn matches_sequential_model(ops in proptest::collection::vec(op(), 1..150)) {
            let s = settings(
                "terminal,*,*,purchase,300,1000,6\n\
                 terminal,M1,T1,purchase,,700,\n\
                 terminal,*,*,cash,,,4\n\
                 merchant,*,,purchase,,1500,8\n\
                 merchant,M2,,cash,250,600,3\n",
            );
            let (terms, merchs) = ([t("T1"), t("T2")], [m("M1"), m("M2")]);
            let mut all_keys = Vec::new();
            for cat in [Cash, Purchase] {
                for merch in &merchs {
                    all_keys.push(CounterKey::merchant(merch, cat));
                    for term in &terms {
                        all_keys.push(CounterKey::terminal(term, merch, cat));
                    }
                }
            }
            let c = LimitCounters::new();
            let mut model = Model::default();
            let mut live: Vec<Reservation> = Vec::new();
            // Real calendar days from late November: month and year boundaries get crossed.
            let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
            let yyyymmdd = |k: u64| {
                use chrono::Datelike;
                let d = start + chrono::Days::new(k);
                d.year() as u32 * 10_000 + d.month() * 100 + d.day()
            };
            let (mut k, mut day) = (0, DAY);
            for op in &ops {
                match *op {
                    Op::Reserve { term, merch, cash, amount, next_day } => {
                        if next_day {
                            k += 1;
                            day = yyyymmdd(k);
                        }
                        let cat = if cash { Cash } else { Purchase };
                        let got = c.reserve(&s, &terms[term], &merchs[merch], cat, amount, day);
                        let want = model.reserve(&s, &terms[term], &merchs[merch], cat, amount, day);
                        prop_assert_eq!(got.map(|_| ()), want, "{:?}", op);
                        if let Ok(r) = got {
                            live.push(r);
                        }
                    }
                    Op::Release(i) if !live.is_empty() => {
                        let r = live.swap_remove(i % live.len());
                        c.release(&r);
                        model.release(&r);
                    }
                    Op::Release(_) => {}
                }
                for key in &all_keys {
                    prop_assert_eq!(c.usage(key, day), model.usage(key, day), "{:?} after {:?}", key, op);
                }
            }
        }
    }
}
