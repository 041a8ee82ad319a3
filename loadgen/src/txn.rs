//! Building loadgen's requests (SPEC.md section 5) and keeping the approvals that voids,
//! refunds and reversals act on.

use crate::catalog::{Catalog, Pan};
use crate::mix::Kind;
use bytes::Bytes;
use iso8583::subfields::{FeeMode, InstallmentRequest, OriginalData};
use iso8583::{Header, MessageBuilder, Mti};
use rand::Rng;
use std::collections::VecDeque;
use switch::registry::TxnCategory;

/// Amount the demo issuer declines with `51` (`Kind::Decline`).
pub const DECLINED_AMOUNT: i64 = 5100;
/// Installment purchases: an amount and terms the bundled issuer-sim accepts.
pub const INSTALLMENT_AMOUNT: i64 = 600_000;

/// F60 of every request: reason 0000, chip, POS terminal.
const F60: &[u8; 15] = b"000005000300000";
/// F60 of a terminal reversal (60.1 = 4351).
const F60_REVERSAL: &[u8; 15] = b"435105000300000";

/// Transmission time fields, recomputed once per second (formatting a clock is far costlier
/// than building the rest of a message).
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    /// F7 `MMDDhhmmss` (UTC).
    pub f7: [u8; 10],
    /// F12 `hhmmss` (local).
    pub f12: [u8; 6],
    /// F13 `MMDD` (local).
    pub f13: [u8; 4],
    second: i64,
}

impl Stamp {
    #[must_use]
    pub fn now() -> Stamp {
        let utc = chrono::Utc::now();
        Stamp::at(utc)
    }

    fn at(utc: chrono::DateTime<chrono::Utc>) -> Stamp {
        let local = utc.with_timezone(&chrono::Local);
        let mut s = Stamp {
            f7: [b'0'; 10],
            f12: [b'0'; 6],
            f13: [b'0'; 4],
            second: utc.timestamp(),
        };
        copy(&mut s.f7, utc.format("%m%d%H%M%S").to_string().as_bytes());
        copy(&mut s.f12, local.format("%H%M%S").to_string().as_bytes());
        copy(&mut s.f13, local.format("%m%d").to_string().as_bytes());
        s
    }

    /// Refresh if the second changed.
    pub fn refresh(&mut self) {
        let utc = chrono::Utc::now();
        if utc.timestamp() != self.second {
            *self = Stamp::at(utc);
        }
    }

    /// F7 as the number the switch keys on.
    #[must_use]
    pub fn f7_number(&self) -> u64 {
        digits_value(&self.f7)
    }
}

fn copy(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// The value of ASCII digits (non-digits count as 0).
#[must_use]
pub fn digits_value(d: &[u8]) -> u64 {
    d.iter()
        .fold(0u64, |a, &b| a * 10 + u64::from(b.wrapping_sub(b'0') % 10))
}

/// `v` as `N` zero-filled digits.
#[must_use]
pub fn fixed_digits<const N: usize>(mut v: u64) -> [u8; N] {
    let mut out = [b'0'; N];
    for o in out.iter_mut().rev() {
        *o = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out
}

/// Matching key of a request and its answer: F11 and F7 (F32/F33 are this link's own).
#[must_use]
pub fn match_key(stan: u32, f7: u64) -> u64 {
    u64::from(stan) * 10_000_000_000 + f7
}

/// An approval loadgen may void, refund or reverse.
#[derive(Debug, Clone, Copy)]
pub struct Original {
    pub kind: Kind,
    pub stan: u32,
    pub f7: [u8; 10],
    pub pan: Pan,
    pub amount: i64,
    pub place: u32,
    /// F25 of the original (00 or 64).
    pub pos_condition: [u8; 2],
}

/// Refunds give back half of the original.
fn refund_amount(o: &Original) -> i64 {
    (o.amount / 2).max(1)
}

/// What the request was, kept until its answer.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub kind: Kind,
    /// Intended send instant, ns from the start of the run.
    pub intended_ns: u64,
    /// Set for purchases and installments: joins the pool when approved.
    pub original: Option<Original>,
}

/// Approvals waiting to be voided/refunded/reversed: bounded, oldest dropped first. Each is
/// used once (a void after a refund would be a `22`, which is not what a mix asks for).
#[derive(Debug, Default)]
pub struct OriginalPool {
    items: VecDeque<Original>,
    capacity: usize,
}

impl OriginalPool {
    #[must_use]
    pub fn new(capacity: usize) -> OriginalPool {
        OriginalPool {
            items: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, o: Original) {
        if self.items.len() >= self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(o);
    }

    /// Take an original for `kind`. A refund needs a purchase whose pair permits refunds and
    /// has room under its refund limits (the first few candidates are tried).
    pub fn take(&mut self, kind: Kind, catalog: &Catalog) -> Option<Original> {
        let pos = match kind {
            Kind::Refund => self
                .items
                .iter()
                .enumerate()
                .filter(|(_, o)| o.kind == Kind::Purchase)
                .take(16)
                .find(|(_, o)| catalog.admit(TxnCategory::Refund, o.place, refund_amount(o)))
                .map(|(i, _)| i)?,
            _ => {
                if self.items.is_empty() {
                    return None;
                }
                0
            }
        };
        self.items.remove(pos)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Why a request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no card for {0} in the BIN table (for the selected issuers)")]
    NoCard(Kind),
    #[error("no registered merchant/terminal pair permits {0}")]
    NoPlace(Kind),
    #[error(transparent)]
    Encode(#[from] iso8583::EncodeError),
}

/// A built request: its bytes, its kind as sent (a void with no approval to act on goes out
/// as a purchase), its F11/F7 match key and what to remember until the answer.
pub struct Built {
    pub bytes: Bytes,
    pub kind: Kind,
    pub key: u64,
    pub original: Option<Original>,
}

/// Build the next request of `wanted` kind, in `b` (reset first: one builder serves a
/// link's every request).
#[allow(clippy::too_many_arguments)]
pub fn build(
    b: &mut MessageBuilder,
    wanted: Kind,
    catalog: &Catalog,
    pool: &mut OriginalPool,
    stamp: &Stamp,
    stan: u32,
    seq: u64,
    rng: &mut impl Rng,
) -> Result<Built, BuildError> {
    let related = if wanted.needs_original() {
        pool.take(wanted, catalog)
    } else {
        None
    };
    let kind = match (wanted.needs_original(), &related) {
        (true, None) => Kind::Purchase,
        _ => wanted,
    };
    let header = Header::new(catalog.switch_id, catalog.acquirer);
    let acq = catalog.acquirer.as_bytes();
    b.reset(Mti::FINANCIAL_REQUEST, header);
    b.set(7, stamp.f7)
        .set(11, fixed_digits::<6>(u64::from(stan)))
        .set(12, stamp.f12)
        .set(13, stamp.f13)
        .set(22, "051")
        .set(32, acq)
        .set(33, acq)
        .set(37, fixed_digits::<12>(seq % 1_000_000_000_000))
        .set(49, "156");
    let mut remember = None;
    if let Some(orig) = related {
        let place = catalog.place(orig.place).ok_or(BuildError::NoPlace(kind))?;
        let od = OriginalData::new(
            Mti::FINANCIAL_REQUEST,
            orig.stan,
            orig.f7,
            &catalog.acquirer,
            &catalog.acquirer,
        );
        let (mti, f3, amount, f25, f60) = match kind {
            Kind::Void => (
                Mti::FINANCIAL_REQUEST,
                b"200000",
                orig.amount,
                orig.pos_condition,
                F60,
            ),
            Kind::Refund => (
                Mti::FINANCIAL_ADVICE,
                b"200000",
                refund_amount(&orig),
                *b"00",
                F60,
            ),
            _ => (
                Mti::REVERSAL_ADVICE,
                b"000000",
                orig.amount,
                orig.pos_condition,
                F60_REVERSAL,
            ),
        };
        b.set_mti(mti)
            .set(2, orig.pan.as_bytes())
            .set(3, f3)
            .set(4, fixed_digits::<12>(u64::try_from(amount).unwrap_or(0)))
            .set(18, place.mcc)
            .set(25, f25)
            .set(41, place.terminal)
            .set(42, place.merchant)
            .set(60, f60)
            .set(90, od.encode());
    } else {
        let (category, amount) = match kind {
            Kind::Installment => (TxnCategory::Installment, INSTALLMENT_AMOUNT),
            Kind::Balance => (TxnCategory::Balance, 0),
            Kind::Decline => (TxnCategory::Purchase, DECLINED_AMOUNT),
            _ => (TxnCategory::Purchase, 1_000 + (seq % 5_000) as i64 * 3),
        };
        let pan = catalog.card(kind, rng).ok_or(BuildError::NoCard(kind))?;
        let place_index = catalog
            .pick_place(category, amount, rng)
            .ok_or(BuildError::NoPlace(kind))?;
        let place = catalog
            .place(place_index)
            .ok_or(BuildError::NoPlace(kind))?;
        let f25 = if kind == Kind::Installment {
            *b"64"
        } else {
            *b"00"
        };
        b.set(2, pan.as_bytes())
            .set(
                3,
                if kind == Kind::Balance {
                    b"300000"
                } else {
                    b"000000"
                },
            )
            .set(18, place.mcc)
            .set(25, f25)
            .set(41, place.terminal)
            .set(42, place.merchant)
            .set(60, F60);
        if kind != Kind::Balance {
            b.set(4, fixed_digits::<12>(u64::try_from(amount).unwrap_or(0)));
        }
        if kind == Kind::Installment {
            let ip = InstallmentRequest {
                periods: 6,
                project_code: InstallmentRequest::project_code_from("DEMO-PHONE"),
                fee_mode: FeeMode::Spread,
                fee_rate: 4_320,
                subsidy_rate: 1_000,
            };
            b.set(48, ip.encode());
        }
        if matches!(kind, Kind::Purchase | Kind::Installment) {
            remember = Some(Original {
                kind,
                stan,
                f7: stamp.f7,
                pan,
                amount,
                place: place_index,
                pos_condition: f25,
            });
        }
    }
    Ok(Built {
        bytes: b.build()?,
        kind,
        key: match_key(stan, stamp.f7_number()),
        original: remember,
    })
}
