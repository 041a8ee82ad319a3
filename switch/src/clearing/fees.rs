//! The interchange fee schedule and the money arithmetic of clearing (SPEC.md sections 11
//! and 12): merchant fee, its split between issuer, switch and acquirer, the installment
//! merchant subsidy fee, and the proportional return of both on refunds.
//!
//! Every rounding is written next to its computation. Rates are exact decimals
//! (`rust_decimal`); amounts are `i64` minor units; proportions use `i128` integer
//! arithmetic so that no intermediate quotient is ever approximated.

use std::path::Path;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::bins::CardType;
use crate::datafile::DataFileError;
use crate::registry::CsvTable;

/// Columns of the fee schedule file, in the canonical order.
const COLUMNS: [&str; 8] = [
    "group",
    "mcc",
    "card_type",
    "rate",
    "cap",
    "issuer_share",
    "switch_share",
    "acquirer_share",
];
const C_GROUP: usize = 0;
const C_MCC: usize = 1;
const C_CARD: usize = 2;
const C_RATE: usize = 3;
const C_CAP: usize = 4;
const C_ISSUER: usize = 5;
const C_SWITCH: usize = 6;
const C_ACQUIRER: usize = 7;

/// One row of the fee schedule: which transactions it prices and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeRule {
    /// Name of the MCC group (shown in reports; not used for matching).
    pub group: String,
    /// 1-based line in the schedule file (0 when built in code), for reports.
    pub line: u64,
    /// MCC range, inclusive.
    pub mcc_from: u16,
    pub mcc_to: u16,
    /// Card type the row applies to; `None` = every card type (`*`), including cards whose
    /// BIN is no longer in the table.
    pub card_type: Option<CardType>,
    /// Merchant discount rate as a fraction (`0.0055` = 0.55 %).
    pub rate: Decimal,
    /// Largest merchant fee per transaction (minor units); `None` = uncapped.
    pub cap: Option<i64>,
    /// Shares of the merchant fee; exactly 1 together.
    pub issuer_share: Decimal,
    pub switch_share: Decimal,
    pub acquirer_share: Decimal,
}

/// The fee schedule: rows tried in file order, the first match prices the transaction.
/// First-match (rather than "most specific") keeps the file readable top to bottom: put the
/// specific rows first and a catch-all `*,*` row last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeSchedule {
    pub rules: Vec<FeeRule>,
}

/// A merchant fee and its split. Signed: positive = paid by the acquirer (the direction of a
/// purchase), negative = returned to it (refund). Components always satisfy
/// `merchant_fee == issuer_fee + switch_fee + acquirer_fee`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FeeSplit {
    /// Merchant fee (what the acquirer charges its merchant).
    pub merchant_fee: i64,
    /// Interchange: the issuer's share, paid by the acquirer to the issuer.
    pub issuer_fee: i64,
    /// The switch's share, paid by the acquirer to the switch.
    pub switch_fee: i64,
    /// What the acquirer keeps.
    pub acquirer_fee: i64,
}

impl FeeSchedule {
    /// No rows: every transaction is unpriced (fee zero).
    #[must_use]
    pub fn empty() -> FeeSchedule {
        FeeSchedule::default()
    }

    /// Reads and validates a fee schedule file.
    pub fn load(path: &Path) -> Result<FeeSchedule, DataFileError> {
        let data = crate::registry::read_file(path)?;
        FeeSchedule::parse(&data, path)
    }

    /// Parses fee schedule CSV text; `file` only labels errors.
    ///
    /// Header `group,mcc,card_type,rate,cap,issuer_share,switch_share,acquirer_share` (any
    /// order), then one row per rule: a group name; `mcc` = one MCC `5411`, a range
    /// `5000-5999` or `*`; `card_type` = `debit`, `credit`, `prepaid` or `*`; `rate` = a
    /// decimal fraction in [0, 1]; `cap` = minor units or empty for none; the three shares =
    /// decimal fractions in [0, 1] summing to exactly 1. `#` lines are comments.
    pub fn parse(data: &[u8], file: &Path) -> Result<FeeSchedule, DataFileError> {
        let mut t = CsvTable::open(data, file, COLUMNS)?;
        let mut rules = Vec::new();
        while t.next()? {
            let group = t.parse(C_GROUP, |s| {
                if s.is_empty() {
                    Err("empty group name".to_string())
                } else {
                    Ok(s.to_string())
                }
            })?;
            let (mcc_from, mcc_to) = t.parse(C_MCC, parse_mcc_range)?;
            let card_type = t.parse(C_CARD, |s| {
                if s == "*" {
                    Ok(None)
                } else {
                    CardType::parse(s).map(Some).ok_or_else(|| {
                        format!("unknown card type {s:?}: expected debit, credit, prepaid or *")
                    })
                }
            })?;
            let rate = t.parse(C_RATE, parse_fraction)?;
            let cap = t.parse(C_CAP, |s| {
                if s.is_empty() {
                    return Ok(None);
                }
                match s.parse::<i64>() {
                    Ok(v) if v >= 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(v)),
                    _ => Err(format!(
                        "invalid cap {s:?}: expected minor units (digits) or empty for none"
                    )),
                }
            })?;
            let issuer_share = t.parse(C_ISSUER, parse_fraction)?;
            let switch_share = t.parse(C_SWITCH, parse_fraction)?;
            let acquirer_share = t.parse(C_ACQUIRER, parse_fraction)?;
            let sum = issuer_share + switch_share + acquirer_share;
            if sum != Decimal::ONE {
                return Err(t.error(
                    C_ACQUIRER,
                    format!(
                        "shares sum to {sum} ({issuer_share} + {switch_share} + \
                         {acquirer_share}); they must sum to exactly 1"
                    ),
                ));
            }
            rules.push(FeeRule {
                group,
                line: t.line(),
                mcc_from,
                mcc_to,
                card_type,
                rate,
                cap,
                issuer_share,
                switch_share,
                acquirer_share,
            });
        }
        Ok(FeeSchedule { rules })
    }

    /// The first rule matching `mcc` and `card_type`.
    #[must_use]
    pub fn rule_for(&self, mcc: u16, card_type: Option<CardType>) -> Option<&FeeRule> {
        self.rules.iter().find(|r| {
            (r.mcc_from..=r.mcc_to).contains(&mcc)
                && (r.card_type.is_none() || r.card_type == card_type)
        })
    }
}

fn parse_mcc_range(s: &str) -> Result<(u16, u16), String> {
    if s == "*" {
        return Ok((0, 9999));
    }
    let one = |p: &str| -> Result<u16, String> {
        let p = p.trim();
        if p.len() == 4 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse::<u16>().map_err(|e| e.to_string())
        } else {
            Err(format!(
                "invalid MCC {p:?}: expected 4 digits, a range 5000-5999 or *"
            ))
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (lo, hi) = (one(a)?, one(b)?);
            if lo > hi {
                Err(format!("MCC range {s:?} is empty (start after end)"))
            } else {
                Ok((lo, hi))
            }
        }
        None => one(s).map(|m| (m, m)),
    }
}

/// A decimal fraction in [0, 1], written as a plain decimal (`0.7`, `1`, `0.0055`).
fn parse_fraction(s: &str) -> Result<Decimal, String> {
    let plain = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1;
    let value = if plain {
        Decimal::from_str_exact(s).ok()
    } else {
        None
    };
    match value {
        Some(v) if v <= Decimal::ONE => Ok(v.normalize()),
        Some(_) => Err(format!(
            "{s} is above 1: expected a fraction such as 0.0055"
        )),
        None => Err(format!(
            "invalid decimal {s:?}: expected a fraction between 0 and 1 such as 0.0055"
        )),
    }
}

/// `round_half_up(x)` to whole minor units, for `x >= 0` (where rounding half away from zero
/// is rounding half up). `None` if the result does not fit an `i64`.
fn round_half_up(x: Decimal) -> Option<i64> {
    x.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
}

impl FeeRule {
    /// The merchant fee of a cleared transaction of `amount` and its split. `None` only on
    /// arithmetic overflow (amounts far beyond any n12 field).
    #[must_use]
    pub fn price(&self, amount: i64) -> Option<FeeSplit> {
        let amount = amount.max(0);
        // Merchant fee = round_half_up(amount x rate) in minor units, then capped.
        let fee = round_half_up(Decimal::from(amount).checked_mul(self.rate)?)?;
        let fee = self.cap.map_or(fee, |cap| fee.min(cap));
        split(fee, self.issuer_share, self.switch_share)
    }
}

/// Splits merchant fee `fee` (>= 0): issuer = round_half_up(fee x issuer share), switch =
/// round_half_up(fee x switch share) but at most what the issuer left, acquirer = the
/// remainder, so the three parts sum to `fee` exactly and none is negative (two halves
/// rounded up could otherwise exceed the fee by one unit).
#[must_use]
pub fn split(fee: i64, issuer_share: Decimal, switch_share: Decimal) -> Option<FeeSplit> {
    let issuer_fee = round_half_up(Decimal::from(fee).checked_mul(issuer_share)?)?.min(fee);
    let switch_fee =
        round_half_up(Decimal::from(fee).checked_mul(switch_share)?)?.min(fee - issuer_fee);
    Some(FeeSplit {
        merchant_fee: fee,
        issuer_fee,
        switch_fee,
        acquirer_fee: fee - issuer_fee - switch_fee,
    })
}

/// The installment merchant subsidy fee of SPEC.md section 11: round_half_up(P x subsidy
/// rate), the rate a fraction x 10^5 (the F48 `IP` form). Same result as the issuer
/// simulator's integer arithmetic (`issuer-sim/src/fees.rs`), here in exact decimals.
#[must_use]
pub fn subsidy_fee(principal: i64, subsidy_rate: u32) -> Option<i64> {
    let rate = Decimal::new(i64::from(subsidy_rate), 5);
    // round_half_up(P x rate) in minor units (P >= 0).
    round_half_up(Decimal::from(principal.max(0)).checked_mul(rate)?)
}

/// `round_half_up(value x part / whole)` for `value, part >= 0`, `whole > 0`, in exact
/// integer arithmetic: floor((2 x value x part + whole) / (2 x whole)). Used for the
/// cumulative proportional returns of refunds.
#[must_use]
pub fn proportion(value: i64, part: i64, whole: i64) -> i64 {
    if whole <= 0 || value <= 0 || part <= 0 {
        return 0;
    }
    let part = part.min(whole);
    let (v, p, w) = (i128::from(value), i128::from(part), i128::from(whole));
    // Half up: (2vp + w) div (2w), all terms positive so integer division floors.
    let q = (2 * v * p + w) / (2 * w);
    i64::try_from(q).unwrap_or(i64::MAX)
}

impl FeeSplit {
    /// The part of this (original's) split that the first `cumulative` of `whole` refunded
    /// corresponds to, each component rounded half up on the cumulative amount (so a full
    /// refund returns exactly the original split however it was cut into partial refunds),
    /// the switch share bounded so the acquirer's remainder never goes negative.
    #[must_use]
    pub fn cumulative_part(&self, cumulative: i64, whole: i64) -> FeeSplit {
        let merchant_fee = proportion(self.merchant_fee, cumulative, whole);
        let issuer_fee = proportion(self.issuer_fee, cumulative, whole).min(merchant_fee);
        let switch_fee =
            proportion(self.switch_fee, cumulative, whole).min(merchant_fee - issuer_fee);
        FeeSplit {
            merchant_fee,
            issuer_fee,
            switch_fee,
            acquirer_fee: merchant_fee - issuer_fee - switch_fee,
        }
    }
}

impl std::ops::Sub for FeeSplit {
    type Output = FeeSplit;
    fn sub(self, o: FeeSplit) -> FeeSplit {
        FeeSplit {
            merchant_fee: self.merchant_fee - o.merchant_fee,
            issuer_fee: self.issuer_fee - o.issuer_fee,
            switch_fee: self.switch_fee - o.switch_fee,
            acquirer_fee: self.acquirer_fee - o.acquirer_fee,
        }
    }
}

impl std::ops::Add for FeeSplit {
    type Output = FeeSplit;
    fn add(self, o: FeeSplit) -> FeeSplit {
        FeeSplit {
            merchant_fee: self.merchant_fee + o.merchant_fee,
            issuer_fee: self.issuer_fee + o.issuer_fee,
            switch_fee: self.switch_fee + o.switch_fee,
            acquirer_fee: self.acquirer_fee + o.acquirer_fee,
        }
    }
}

impl std::ops::Neg for FeeSplit {
    type Output = FeeSplit;
    fn neg(self) -> FeeSplit {
        FeeSplit::default() - self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn spec_example_fee_10_is_7_1_2() {
        let s = split(10, d("0.7"), d("0.1")).unwrap();
        assert_eq!(
            (s.merchant_fee, s.issuer_fee, s.switch_fee, s.acquirer_fee),
            (10, 7, 1, 2)
        );
    }

    #[test]
    fn split_never_exceeds_the_fee() {
        // 1 x 0.5 and 1 x 0.5 both round up: the switch gets what the issuer left.
        let s = split(1, d("0.5"), d("0.5")).unwrap();
        assert_eq!((s.issuer_fee, s.switch_fee, s.acquirer_fee), (1, 0, 0));
        for fee in 0..200 {
            let s = split(fee, d("0.333"), d("0.335")).unwrap();
            assert!(s.acquirer_fee >= 0 && s.switch_fee >= 0);
            assert_eq!(s.issuer_fee + s.switch_fee + s.acquirer_fee, fee);
        }
    }

    #[test]
    fn merchant_fee_rounds_half_up_and_caps() {
        let rule = FeeRule {
            group: "g".into(),
            line: 0,
            mcc_from: 0,
            mcc_to: 9999,
            card_type: None,
            rate: d("0.005"),
            cap: Some(2000),
            issuer_share: d("0.7"),
            switch_share: d("0.1"),
            acquirer_share: d("0.2"),
        };
        assert_eq!(rule.price(100).unwrap().merchant_fee, 1); // 0.5 -> 1
        assert_eq!(rule.price(99).unwrap().merchant_fee, 0); // 0.495 -> 0
        assert_eq!(rule.price(300).unwrap().merchant_fee, 2); // 1.5 -> 2
        assert_eq!(rule.price(2_000).unwrap().merchant_fee, 10);
        assert_eq!(rule.price(100_000_000).unwrap().merchant_fee, 2000); // capped
    }

    #[test]
    fn subsidy_matches_the_issuer_simulator() {
        // 6000.00 at 1.000 %: 60.00; half-way cases round up.
        assert_eq!(subsidy_fee(600_000, 1_000), Some(6_000));
        assert_eq!(subsidy_fee(50, 1_000), Some(1)); // 0.5 -> 1
        assert_eq!(subsidy_fee(49, 1_000), Some(0)); // 0.49 -> 0
        for (p, r) in [(123_457, 777), (1, 50_000), (999_999, 99_999), (0, 5)] {
            let int = (i128::from(p) * i128::from(r) + 50_000).div_euclid(100_000);
            assert_eq!(subsidy_fee(p, r).map(i128::from), Some(int));
        }
    }

    #[test]
    fn cumulative_parts_return_exactly_the_whole() {
        let whole = FeeSplit {
            merchant_fee: 10,
            issuer_fee: 7,
            switch_fee: 1,
            acquirer_fee: 2,
        };
        let amount = 1_000;
        let mut returned = FeeSplit::default();
        let mut cum = 0;
        for part in [333, 333, 334] {
            cum += part;
            let now = whole.cumulative_part(cum, amount);
            let this = now - returned;
            assert!(this.acquirer_fee >= 0);
            returned = now;
        }
        assert_eq!(returned, whole);
        assert_eq!(proportion(5, 1, 2), 3, "2.5 rounds up");
        assert_eq!(proportion(5, 3, 7), 2, "2.14 rounds down");
    }

    #[test]
    fn schedule_first_match_and_errors_name_line_and_column() {
        let file = PathBuf::from("fees.csv");
        let text = "\
# comment
group,mcc,card_type,rate,cap,issuer_share,switch_share,acquirer_share
grocery,5411,*,0.0038,,0.7,0.1,0.2

general,*,credit,0.006,2000,0.7,0.1,0.2
general,*,*,0.005,,0.7,0.1,0.2
";
        let s = FeeSchedule::parse(text.as_bytes(), &file).unwrap();
        assert_eq!(s.rules.len(), 3);
        assert_eq!(s.rules[1].line, 5);
        assert_eq!(
            s.rule_for(5411, Some(CardType::Credit)).unwrap().group,
            "grocery"
        );
        assert_eq!(s.rule_for(5812, Some(CardType::Credit)).unwrap().line, 5);
        assert_eq!(s.rule_for(5812, None).unwrap().line, 6);

        let bad = |row: &str| {
            let text = format!(
                "group,mcc,card_type,rate,cap,issuer_share,switch_share,acquirer_share\n{row}\n"
            );
            FeeSchedule::parse(text.as_bytes(), &file)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad("g,*,*,0.005,,0.7,0.1,0.3"),
            "fees.csv: line 2 column acquirer_share: shares sum to 1.1 (0.7 + 0.1 + 0.3); \
             they must sum to exactly 1"
        );
        assert!(bad("g,54x1,*,0.005,,0.7,0.1,0.2")
            .starts_with("fees.csv: line 2 column mcc: invalid MCC"));
        assert!(bad("g,5999-5000,*,0.005,,0.7,0.1,0.2")
            .starts_with("fees.csv: line 2 column mcc: MCC range"));
        assert!(bad("g,*,gold,0.005,,0.7,0.1,0.2")
            .starts_with("fees.csv: line 2 column card_type: unknown card type"));
        assert!(bad("g,*,*,1.5,,0.7,0.1,0.2")
            .starts_with("fees.csv: line 2 column rate: 1.5 is above 1"));
        assert!(bad("g,*,*,-0.1,,0.7,0.1,0.2")
            .starts_with("fees.csv: line 2 column rate: invalid decimal"));
        assert!(bad("g,*,*,0.005,-5,0.7,0.1,0.2")
            .starts_with("fees.csv: line 2 column cap: invalid cap"));
        assert!(bad(",*,*,0.005,,0.7,0.1,0.2").starts_with("fees.csv: line 2 column group: empty"));
        assert!(bad("g,*,*,0.005,,0.7,0.1").starts_with("fees.csv: line 2: expected 8 fields"));
        let no_header = FeeSchedule::parse(b"group,mcc\n", &file)
            .unwrap_err()
            .to_string();
        assert!(
            no_header.starts_with("fees.csv: line 1: header lacks column"),
            "{no_header}"
        );
    }
}
