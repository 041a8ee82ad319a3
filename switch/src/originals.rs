//! SPEC.md section 7: originals of related transactions (void, refund, preauthorisation void
//! and completion, reversal), the checks they pass and the state changes they make. Sans-I/O:
//! the acquirer link calls [`OriginalIndex::begin`] before it forwards (or answers a
//! reversal), the issuer link calls [`OriginalIndex::finish`] with the outcome; journal
//! replay at start calls the same two functions, so a restart rebuilds the same state.
//!
//! The same table holds the key of every request of the day, for duplicate detection
//! (SPEC 7, [`OriginalIndex::enter_key`]): a request's key is entered as it arrives and
//! becomes its original if it is forwarded, so a transaction's key is looked up in one
//! table of the day's size, not two.

use crate::core::{TxnKey, TxnKind};
use crate::daytable::{DayTable, Hint, PackedKey};
use crate::limits::{LimitCounters, Reservation};
use iso8583::{InstId, ResponseCode};

/// Where an original stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginalState {
    /// Forwarded, no answer yet (an early reversal is accepted, SPEC 8).
    Pending,
    Approved,
    /// Declined or timed out: nothing to void, refund or complete.
    NotApproved,
    Voided,
    Reversed,
    /// A preauthorisation completed (it takes no further void or completion).
    Completed,
    /// Only the key of a request of `settlement_date` is known (duplicate detection): it
    /// was not forwarded (yet), so it is no original; every lookup of originals skips it.
    Seen,
}

/// A PAN kept inline (up to 19 digits, SPEC 4), two digits a byte: no heap allocation per
/// original, and 11 bytes of the entry instead of 20. Never printed (no `Display`; `Debug`
/// masks it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PanDigits {
    len: u8,
    /// Digit `i` in the high nibble of byte `i / 2` when `i` is even, else the low one;
    /// [`NOT_A_DIGIT`] for a byte that was not `0`-`9` (F2 is numeric, so only input that
    /// did not come from a decoded message has one, and it then matches nothing).
    nibbles: [u8; 10],
}

/// The nibble a PAN byte that is not a digit is kept as.
const NOT_A_DIGIT: u8 = 0xF;

impl PanDigits {
    /// Digits kept.
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn nibble(&self, i: usize) -> u8 {
        let b = self.nibbles.get(i / 2).copied().unwrap_or(NOT_A_DIGIT);
        if i & 1 == 0 {
            b >> 4
        } else {
            b & 0xF
        }
    }

    /// Whether `pan` is this PAN: the same digits, all of them digits.
    #[must_use]
    pub fn matches(&self, pan: &[u8]) -> bool {
        pan.len() == self.len()
            && pan.iter().enumerate().all(|(i, &b)| {
                let n = self.nibble(i);
                b.is_ascii_digit() && n != NOT_A_DIGIT && n == b - b'0'
            })
    }

    /// The PAN as ASCII (`?` for a byte that was not a digit): its first `len()` bytes.
    #[must_use]
    pub fn ascii(&self) -> [u8; 19] {
        let mut out = [b'?'; 19];
        for (i, d) in out.iter_mut().enumerate().take(self.len()) {
            let n = self.nibble(i);
            if n != NOT_A_DIGIT {
                *d = b'0' + n;
            }
        }
        out
    }
}

impl From<&[u8]> for PanDigits {
    /// Longer input is cut at 19 bytes (it can then never match a real F2).
    fn from(pan: &[u8]) -> Self {
        let mut nibbles = [NOT_A_DIGIT << 4 | NOT_A_DIGIT; 10];
        let n = pan.len().min(19);
        for (i, &b) in pan.iter().take(n).enumerate() {
            let d = if b.is_ascii_digit() {
                b - b'0'
            } else {
                NOT_A_DIGIT
            };
            if let Some(byte) = nibbles.get_mut(i / 2) {
                *byte = if i & 1 == 0 {
                    (*byte & 0x0F) | d << 4
                } else {
                    (*byte & 0xF0) | d
                };
            }
        }
        Self {
            len: n as u8,
            nibbles,
        }
    }
}

impl From<&str> for PanDigits {
    fn from(pan: &str) -> Self {
        Self::from(pan.as_bytes())
    }
}

impl std::fmt::Debug for PanDigits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ascii = self.ascii();
        let pan = ascii.get(..self.len()).unwrap_or_default();
        write!(f, "{}", iso8583::render::mask_pan(pan))
    }
}

/// What an original's limit usage names besides what the original itself holds (its
/// terminal, amount and settlement day are the reservation's: both come from the same
/// request): 16 bytes instead of a whole [`Reservation`]'s 40.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    merchant: crate::registry::MerchantId,
    category: crate::registry::TxnCategory,
}

/// [`Original`] flags.
const REFERS_TO: u8 = 1;
const RELATED_PENDING: u8 = 1 << 1;
const REVERSE_WHEN_ANSWERED: u8 = 1 << 2;
/// The flags byte of an original on disk: its own flags and these two.
const ON_DISK_ISSUER: u8 = 1 << 3;
const ON_DISK_HELD: u8 = 1 << 4;

/// What the index keeps of an original: what the checks compare against. With its key it
/// is 128 bytes (two cache lines) in the day's tables, which hold millions: the optional
/// parts are kept behind flags and accessors rather than as `Option`s of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub kind: TxnKind,
    pub amount: i64,
    /// F2 of the original (compared for `14`; never logged).
    pub pan: PanDigits,
    /// F41 of the original (compared for `97`).
    pub terminal: [u8; 8],
    pub state: OriginalState,
    /// Sum of approved refunds so far (minor units).
    pub refunded: i64,
    /// When the original was approved (refund window).
    pub approved_ms: i64,
    /// Settlement date `YYYYMMDD` (voids only within the same day, SPEC 5).
    pub settlement_date: u32,
    /// Issuer the original was forwarded to and the F11 it got there (reversal advices
    /// name the original as the issuer knows it).
    pub issuer: Option<InstId>,
    pub issuer_stan: u32,
    /// Refunds forwarded and not answered yet (counted against the refundable total).
    pub refund_held: i64,
    /// [`Original::refers_to`] (zero without `REFERS_TO`).
    refers: PackedKey,
    /// [`Original::reverse_when_answered`] (zero without `REVERSE_WHEN_ANSWERED`).
    reverse_reason: [u8; 4],
    /// [`Original::reservation`] without what the original holds already.
    held: Option<Held>,
    flags: u8,
}

const _: () = assert!(std::mem::size_of::<(PackedKey, Original)>() <= 128);

impl Original {
    /// For a related transaction kept as an original (a void, refund or completion): the
    /// key of its own original, whose state its reversal undoes.
    #[must_use]
    pub fn refers_to(&self) -> Option<TxnKey> {
        (self.flags & REFERS_TO != 0).then(|| TxnKey::from(self.refers))
    }

    pub fn set_refers_to(&mut self, key: Option<TxnKey>) {
        self.refers = key.as_ref().map_or(PackedKey::default(), PackedKey::from);
        self.set_flag(REFERS_TO, key.is_some());
    }

    /// A void or completion forwarded and not answered yet (a second one is `22`).
    #[must_use]
    pub fn related_pending(&self) -> bool {
        self.flags & RELATED_PENDING != 0
    }

    pub fn set_related_pending(&mut self, pending: bool) {
        self.set_flag(RELATED_PENDING, pending);
    }

    /// An early reversal arrived while pending: its F60.1 reason. If the original ends
    /// approved, the switch reverses it at the issuer with this reason.
    #[must_use]
    pub fn reverse_when_answered(&self) -> Option<[u8; 4]> {
        (self.flags & REVERSE_WHEN_ANSWERED != 0).then_some(self.reverse_reason)
    }

    pub fn set_reverse_when_answered(&mut self, reason: Option<[u8; 4]>) {
        self.reverse_reason = reason.unwrap_or_default();
        self.set_flag(REVERSE_WHEN_ANSWERED, reason.is_some());
    }

    /// Limit usage the original holds while it stands (released by a void or reversal):
    /// its terminal, amount and settlement day with the merchant and category it was
    /// reserved under.
    #[must_use]
    pub fn reservation(&self) -> Option<Reservation> {
        let held = self.held?;
        Some(Reservation {
            terminal: crate::registry::TerminalId::from_field(&self.terminal)?,
            merchant: held.merchant,
            category: held.category,
            amount: self.amount.clamp(0, crate::limits::MAX_VALUE),
            day: self.settlement_date,
        })
    }

    /// Keep `r` as this original's limit usage. `r` is what the original's own request
    /// reserved, so its terminal, amount (clamped as limits clamp it) and day are the
    /// original's: only its merchant and category are stored.
    pub fn set_reservation(&mut self, r: Option<Reservation>) {
        let clamp = |a: i64| a.clamp(0, crate::limits::MAX_VALUE);
        debug_assert!(r.is_none_or(|r| {
            crate::registry::TerminalId::from_field(&self.terminal) == Some(r.terminal)
                && clamp(r.amount) == clamp(self.amount)
                && r.day == self.settlement_date
        }));
        self.held = r.map(|r| Held {
            merchant: r.merchant,
            category: r.category,
        });
    }

    /// The limit usage, taken: the original holds none afterwards.
    pub fn take_reservation(&mut self) -> Option<Reservation> {
        let r = self.reservation();
        self.held = None;
        r
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

impl Original {
    /// A freshly forwarded original, pending at the issuer.
    #[must_use]
    pub fn pending(
        kind: TxnKind,
        amount: i64,
        pan: &[u8],
        terminal: &[u8],
        settlement_date: u32,
    ) -> Original {
        let mut t = [b' '; 8];
        for (d, s) in t.iter_mut().zip(terminal) {
            *d = *s;
        }
        Original {
            kind,
            amount,
            pan: PanDigits::from(pan),
            terminal: t,
            state: OriginalState::Pending,
            refunded: 0,
            approved_ms: 0,
            settlement_date,
            issuer: None,
            issuer_stan: 0,
            refund_held: 0,
            refers: PackedKey::default(),
            reverse_reason: [0; 4],
            held: None,
            flags: 0,
        }
    }

    /// The entry of a request's key before it is forwarded (duplicate detection only).
    #[must_use]
    pub fn seen(kind: TxnKind, settlement_date: u32) -> Original {
        let mut o = Original::pending(kind, 0, &[], &[], settlement_date);
        o.state = OriginalState::Seen;
        o
    }
}

const KINDS: [TxnKind; 12] = [
    TxnKind::Purchase,
    TxnKind::InstallmentPurchase,
    TxnKind::Void,
    TxnKind::Refund,
    TxnKind::BalanceInquiry,
    TxnKind::CashWithdrawal,
    TxnKind::Preauth,
    TxnKind::PreauthVoid,
    TxnKind::PreauthCompletion,
    TxnKind::Reversal,
    TxnKind::NetworkManagement,
    TxnKind::Unknown,
];

const STATES: [OriginalState; 7] = [
    OriginalState::Pending,
    OriginalState::Approved,
    OriginalState::NotApproved,
    OriginalState::Voided,
    OriginalState::Reversed,
    OriginalState::Completed,
    OriginalState::Seen,
];

/// Reads fixed-size parts off the front of a slice.
struct Take<'a>(&'a [u8]);

impl Take<'_> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes::<1>().map(|[b]| b)
    }
    fn i64(&mut self) -> Option<i64> {
        self.bytes().map(i64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes().map(u32::from_le_bytes)
    }
}

/// An original on disk (the day's tables spill past their memory bound, `daytable.rs`):
/// 119 bytes, fixed layout. The run files hold the PAN like the journal does (clearing
/// needs it there), so they live in the journal's directory.
impl crate::daytable::Spill for Original {
    const SIZE: usize = 119;

    fn put(&self, out: &mut Vec<u8>) {
        let index = |k: TxnKind| KINDS.iter().position(|x| *x == k).unwrap_or(11) as u8;
        let state = STATES.iter().position(|x| *x == self.state).unwrap_or(0) as u8;
        let on_disk = |on: bool, flag: u8| if on { flag } else { 0 };
        let flags = self.flags
            | on_disk(self.issuer.is_some(), ON_DISK_ISSUER)
            | on_disk(self.held.is_some(), ON_DISK_HELD);
        out.extend_from_slice(&[index(self.kind), state, flags]);
        for v in [
            self.amount,
            self.refunded,
            self.approved_ms,
            self.refund_held,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.settlement_date.to_le_bytes());
        out.extend_from_slice(&self.issuer_stan.to_le_bytes());
        out.push(self.pan.len);
        out.extend_from_slice(&self.pan.ascii());
        out.extend_from_slice(&self.terminal);
        out.extend_from_slice(&self.refers.to_bytes());
        let mut issuer = [0u8; 12];
        if let Some(id) = &self.issuer {
            let b = id.as_bytes();
            issuer[0] = b.len() as u8;
            for (d, s) in issuer[1..].iter_mut().zip(b) {
                *d = *s;
            }
        }
        out.extend_from_slice(&issuer);
        match &self.held {
            Some(h) => {
                out.extend_from_slice(h.merchant.as_field());
                let c = crate::registry::TxnCategory::ALL
                    .iter()
                    .position(|c| *c == h.category)
                    .unwrap_or(0);
                out.push(c as u8);
            }
            None => out.extend_from_slice(&[0u8; 16]),
        }
        out.extend_from_slice(&self.reverse_reason);
    }

    fn take(bytes: &[u8]) -> Option<Self> {
        let mut t = Take(bytes);
        let kind = *KINDS.get(usize::from(t.u8()?))?;
        let state = *STATES.get(usize::from(t.u8()?))?;
        let flags = t.u8()?;
        let (amount, refunded, approved_ms, refund_held) = (t.i64()?, t.i64()?, t.i64()?, t.i64()?);
        let (settlement_date, issuer_stan) = (t.u32()?, t.u32()?);
        let pan_len = usize::from(t.u8()?);
        let digits = t.bytes::<19>()?;
        let terminal = t.bytes::<8>()?;
        let key = t.bytes::<16>()?;
        let issuer = t.bytes::<12>()?;
        let merchant = t.bytes::<15>()?;
        let category = t.u8()?;
        let reverse = t.bytes::<4>()?;
        let held = if flags & ON_DISK_HELD != 0 {
            Some(Held {
                merchant: crate::registry::MerchantId::from_field(&merchant)?,
                category: *crate::registry::TxnCategory::ALL.get(usize::from(category))?,
            })
        } else {
            None
        };
        let issuer = if flags & ON_DISK_ISSUER != 0 {
            let n = usize::from(issuer[0]);
            Some(InstId::from_digits(issuer.get(1..=n)?)?)
        } else {
            None
        };
        Some(Original {
            kind,
            amount,
            pan: PanDigits::from(digits.get(..pan_len.min(19))?),
            terminal,
            state,
            refunded,
            approved_ms,
            settlement_date,
            issuer,
            issuer_stan,
            refund_held,
            refers: PackedKey::from_bytes(key),
            reverse_reason: reverse,
            held,
            flags: flags & (REFERS_TO | RELATED_PENDING | REVERSE_WHEN_ANSWERED),
        })
    }
}

/// A related request, as far as the checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelatedRequest<'a> {
    pub kind: TxnKind,
    pub amount: i64,
    /// F2 if present (a reversal may identify the original by F90 only).
    pub pan: Option<&'a [u8]>,
    pub terminal: Option<&'a [u8]>,
    pub settlement_date: u32,
    pub now_ms: i64,
}

/// Limits of the checks that are configuration (`[rules]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelatedRules {
    /// Refunds of an ordinary purchase are accepted this long after its approval.
    pub refund_window_ms: i64,
    /// Refunds of an installment purchase are accepted this long (SPEC 11: 180 days).
    pub installment_refund_ms: i64,
}

const DAY_MS: i64 = 24 * 3_600_000;

impl Default for RelatedRules {
    fn default() -> Self {
        Self::from(&crate::config::RulesSettings::default())
    }
}

impl From<&crate::config::RulesSettings> for RelatedRules {
    fn from(r: &crate::config::RulesSettings) -> Self {
        Self {
            refund_window_ms: i64::from(r.refund_window_days) * DAY_MS,
            installment_refund_ms: i64::from(r.installment_refund_days) * DAY_MS,
        }
    }
}

/// Kinds whose requests become originals other transactions can refer to.
#[must_use]
pub fn is_original_kind(kind: TxnKind) -> bool {
    matches!(
        kind,
        TxnKind::Purchase
            | TxnKind::InstallmentPurchase
            | TxnKind::CashWithdrawal
            | TxnKind::Preauth
            | TxnKind::PreauthCompletion
            | TxnKind::Void
            | TxnKind::PreauthVoid
            | TxnKind::Refund
    )
}

/// Which originals a related kind may refer to.
fn refers_to_ok(related: TxnKind, original: TxnKind) -> bool {
    use TxnKind::*;
    match related {
        Void => matches!(original, Purchase | InstallmentPurchase | CashWithdrawal),
        Refund => matches!(original, Purchase | InstallmentPurchase | PreauthCompletion),
        PreauthVoid | PreauthCompletion => original == Preauth,
        Reversal => is_original_kind(original),
        _ => false,
    }
}

/// The SPEC.md section 7 cross-checks, in the order the codes are listed there: amount zero
/// `13`, original not found `25`, not approved `12`, already voided/reversed, refund total
/// exceeded or outside its window, void of another day `22`, PAN `14`, terminal `97`,
/// amount `64`.
pub fn check(
    original: Option<&Original>,
    req: &RelatedRequest<'_>,
    rules: &RelatedRules,
) -> Result<(), ResponseCode> {
    let full_amount = matches!(
        req.kind,
        TxnKind::Void | TxnKind::PreauthVoid | TxnKind::Reversal
    );
    if req.amount == 0 && req.kind != TxnKind::Reversal {
        return Err(ResponseCode::INVALID_AMOUNT);
    }
    let orig = original.ok_or(ResponseCode::ORIGINAL_NOT_FOUND)?;
    if !refers_to_ok(req.kind, orig.kind) {
        // F90 names a transaction of a kind this one cannot relate to (e.g. a void of a
        // refund): as good as not found.
        return Err(ResponseCode::ORIGINAL_NOT_FOUND);
    }
    match (orig.state, req.kind) {
        // An early reversal is answered at once and applied when the issuer answers.
        (OriginalState::Pending, TxnKind::Reversal) => {
            if orig.reverse_when_answered().is_some() {
                return Err(ResponseCode::ILLEGAL_RELATED);
            }
        }
        (OriginalState::Pending | OriginalState::NotApproved, _) => {
            return Err(ResponseCode::INVALID_RELATED)
        }
        // A void is reversed through the void's own record (its F90 names the void), which
        // is Approved; the voided original itself takes no further related transaction.
        (OriginalState::Reversed | OriginalState::Voided | OriginalState::Completed, _) => {
            return Err(ResponseCode::ILLEGAL_RELATED)
        }
        // A key that was only seen (a request not forwarded) is no original.
        (OriginalState::Seen, _) => return Err(ResponseCode::ORIGINAL_NOT_FOUND),
        (OriginalState::Approved, _) => {}
    }
    if orig.related_pending() && req.kind != TxnKind::Reversal {
        return Err(ResponseCode::ILLEGAL_RELATED);
    }
    // Money already (being) refunded cannot also come back by a void or reversal.
    if matches!(req.kind, TxnKind::Void | TxnKind::Reversal) && orig.refunded + orig.refund_held > 0
    {
        return Err(ResponseCode::ILLEGAL_RELATED);
    }
    if req.kind == TxnKind::Refund {
        let window = if orig.kind == TxnKind::InstallmentPurchase {
            rules.installment_refund_ms
        } else {
            rules.refund_window_ms
        };
        if orig.refunded + orig.refund_held + req.amount > orig.amount
            || req.now_ms - orig.approved_ms > window
        {
            return Err(ResponseCode::ILLEGAL_RELATED);
        }
    }
    // Voids within the original's settlement day; reversals until its cut-over ends (a
    // reversal during the cut-over is dated with the closing day, SPEC 12).
    if matches!(
        req.kind,
        TxnKind::Void | TxnKind::PreauthVoid | TxnKind::Reversal
    ) && req.settlement_date != orig.settlement_date
    {
        return Err(ResponseCode::ILLEGAL_RELATED);
    }
    if req.pan.is_some_and(|p| !orig.pan.matches(p)) {
        return Err(ResponseCode::INVALID_CARD);
    }
    if req
        .terminal
        .is_some_and(|t| t.trim_ascii_end() != orig.terminal.trim_ascii_end())
    {
        return Err(ResponseCode::TERMINAL_MISMATCH);
    }
    if full_amount && req.amount != orig.amount {
        return Err(ResponseCode::AMOUNT_MISMATCH);
    }
    Ok(())
}

impl Original {
    /// The state change an approved related transaction makes (SPEC.md section 7).
    pub fn apply(&mut self, related: TxnKind, amount: i64) {
        match related {
            TxnKind::Void | TxnKind::PreauthVoid => self.state = OriginalState::Voided,
            TxnKind::PreauthCompletion => self.state = OriginalState::Completed,
            TxnKind::Refund => self.refunded += amount,
            TxnKind::Reversal => self.state = OriginalState::Reversed,
            _ => {}
        }
    }

    /// Undo what this related transaction did to its original (this one is being reversed).
    fn undo_on(&self, parent: &mut Original) {
        match self.kind {
            TxnKind::Void | TxnKind::PreauthVoid | TxnKind::PreauthCompletion => {
                parent.state = OriginalState::Approved;
            }
            TxnKind::Refund => parent.refunded = (parent.refunded - self.amount).max(0),
            _ => {}
        }
    }

    /// The original a reversal of this record (a void) restores to approved.
    #[must_use]
    pub fn restores(&self) -> Option<TxnKey> {
        self.refers_to().filter(|_| self.kind == TxnKind::Void)
    }
}

/// A request about to be forwarded (or an acquirer reversal about to be answered).
#[derive(Debug, Clone, Copy)]
pub struct Begin<'a> {
    pub kind: TxnKind,
    pub amount: i64,
    pub pan: Option<&'a [u8]>,
    pub terminal: Option<&'a [u8]>,
    pub settlement_date: u32,
    pub now_ms: i64,
    /// F90 of a related transaction.
    pub original: Option<TxnKey>,
    pub issuer: Option<InstId>,
    pub reservation: Option<Reservation>,
    /// F60.1 of a reversal (kept for an early reversal's advice to the issuer).
    pub reason: [u8; 4],
    /// Where [`OriginalIndex::enter_key`] put the request's key (its entry becomes the
    /// original there).
    pub entered_at: Option<Hint>,
}

/// [`OriginalIndex::enter_key`]: a request with this key was entered for its day already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate;

/// What [`OriginalIndex::begin`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// Forward it to the issuer (an original, or a related transaction that passed; then
    /// with the F11 its original got at the issuer, which the forwarded F90 must name).
    Forward { original_issuer_stan: Option<u32> },
    /// A reversal of an approved original: answer `00` now and send the issuer this advice
    /// about the original (its issuer and F11 there).
    Reversed {
        issuer: Option<InstId>,
        original_issuer_stan: u32,
    },
    /// A reversal while the original is pending: answer `00` now; the original is reversed
    /// when the issuer answers it.
    EarlyReversal,
}

/// What a finished transaction asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Finished {
    /// It was approved after an early reversal: reverse it at the issuer with this reason.
    pub reverse: Option<[u8; 4]>,
}

/// Originals by transaction key, and the keys of the day's other requests. Shared by the
/// acquirer links; one shard lock per entry.
#[derive(Debug, Default)]
pub struct OriginalIndex {
    /// Originals, and [`OriginalState::Seen`] entries for the keys of the day's requests
    /// that are not (or not yet) originals.
    map: DayTable<Original>,
    /// The answer given to each acquirer reversal, for idempotent duplicates (SPEC 7).
    reversal_answers: DayTable<ResponseCode>,
}

impl OriginalIndex {
    /// An index with room for `capacity` originals before its tables first grow (growing a
    /// large table rehashes a whole shard at once: a latency spike).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            map: DayTable::with_capacity(capacity),
            reversal_answers: DayTable::default(),
        }
    }

    /// An index that keeps a bounded number of originals in memory and the rest on disk
    /// (see [`DayTable::spilling`]).
    pub fn spilling(capacity: usize, spill: &crate::daytable::SpillTo) -> std::io::Result<Self> {
        Ok(Self {
            map: DayTable::spilling(capacity, spill, "originals")?,
            // Reversals are a few percent of the traffic.
            reversal_answers: DayTable::spilling(capacity / 16, spill, "reversals")?,
        })
    }
}

impl OriginalIndex {
    /// [`DayTable::ready_chunks`] of the originals' table.
    #[must_use]
    pub fn ready_chunks(&self) -> usize {
        self.map.ready_chunks()
    }

    /// [`DayTable::prefault`] for both of its tables.
    pub fn prefault(&self, ahead: usize) -> usize {
        self.map.prefault(ahead) + self.reversal_answers.prefault(ahead)
    }

    /// [`DayTable::reserve`] for both of its tables.
    pub fn reserve(&self) -> usize {
        self.map.reserve() + self.reversal_answers.reserve()
    }

    pub fn insert(&self, key: TxnKey, original: Original) {
        self.map.insert(&key, original);
    }

    /// Enter the key of a request of settlement day `date` as it arrives (SPEC 7):
    /// [`Duplicate`] if a request with this key was entered for `date` already (the first
    /// one's entry stays as it is). A key of another day is replaced (duplicates are per
    /// day). If the request is forwarded, [`begin`](Self::begin) makes the entry its
    /// original: give it the returned place as [`Begin::entered_at`] and it goes straight
    /// there.
    pub fn enter_key(
        &self,
        key: &TxnKey,
        kind: TxnKind,
        date: u32,
    ) -> Result<Option<Hint>, Duplicate> {
        self.map
            .insert_unless(key, Original::seen(kind, date), |o| {
                o.settlement_date == date
            })
            .map(|(_, at)| at)
            .map_err(|_| Duplicate)
    }

    /// Run `f` on the original of `key` (with the entry locked, so check-then-apply is atomic).
    pub fn with<R>(&self, key: &TxnKey, f: impl FnOnce(Option<&mut Original>) -> R) -> R {
        self.map
            .with(key, |o| f(o.filter(|o| o.state != OriginalState::Seen)))
    }

    /// The answer a reversal with this key already got, if any (a duplicate is answered the
    /// same, and nothing is sent to the issuer again).
    #[must_use]
    pub fn reversal_answer(&self, key: &TxnKey) -> Option<ResponseCode> {
        self.reversal_answers.get(key)
    }

    /// Forget the answers of the closed day's reversals (duplicates are per day; a late
    /// duplicate then meets its original's check instead).
    pub fn forget_reversal_answers(&self) {
        self.reversal_answers.clear();
    }

    /// Record the answer given to a reversal.
    pub fn answer_reversal(&self, key: TxnKey, code: ResponseCode) {
        self.reversal_answers.insert(&key, code);
    }

    /// Admit a request: a related transaction is checked against its original (SPEC 7) and
    /// holds it (refund amount, pending void/completion) until [`OriginalIndex::finish`];
    /// a reversal is applied at once (an early one is remembered); a request that can be
    /// an original is entered as pending. The original's limit usage is released by a
    /// reversal here, by a void in `finish`.
    pub fn begin(
        &self,
        key: TxnKey,
        req: &Begin<'_>,
        rules: &RelatedRules,
        limits: &LimitCounters,
    ) -> Result<Begun, ResponseCode> {
        self.begin_hinted(key, req, rules, limits).map(|(b, _)| b)
    }

    /// [`begin`](Self::begin), also returning where a pending original was put, for its
    /// [`finish_at`](Self::finish_at).
    pub fn begin_hinted(
        &self,
        key: TxnKey,
        req: &Begin<'_>,
        rules: &RelatedRules,
        limits: &LimitCounters,
    ) -> Result<(Begun, Option<Hint>), ResponseCode> {
        let mut begun = Begun::Forward {
            original_issuer_stan: None,
        };
        let mut undo: Option<(TxnKey, Original)> = None;
        if let Some(orig_key) = req.original {
            let related = RelatedRequest {
                kind: req.kind,
                amount: req.amount,
                pan: req.pan,
                terminal: req.terminal,
                settlement_date: req.settlement_date,
                now_ms: req.now_ms,
            };
            begun = self.with(&orig_key, |o| {
                check(o.as_deref(), &related, rules)?;
                let Some(o) = o else {
                    return Err(ResponseCode::ORIGINAL_NOT_FOUND);
                };
                Ok(match req.kind {
                    TxnKind::Reversal if o.state == OriginalState::Pending => {
                        o.set_reverse_when_answered(Some(req.reason));
                        Begun::EarlyReversal
                    }
                    TxnKind::Reversal => {
                        o.apply(TxnKind::Reversal, 0);
                        if let Some(r) = o.take_reservation() {
                            limits.release(&r);
                        }
                        if let Some(parent) = o.refers_to() {
                            undo = Some((parent, o.clone()));
                        }
                        Begun::Reversed {
                            issuer: o.issuer,
                            original_issuer_stan: o.issuer_stan,
                        }
                    }
                    TxnKind::Refund => {
                        o.refund_held += req.amount;
                        Begun::Forward {
                            original_issuer_stan: Some(o.issuer_stan),
                        }
                    }
                    _ => {
                        o.set_related_pending(true);
                        Begun::Forward {
                            original_issuer_stan: Some(o.issuer_stan),
                        }
                    }
                })
            })?;
        } else if req.kind.needs_original() {
            return Err(ResponseCode::ORIGINAL_NOT_FOUND);
        }
        // Reversing a void/refund/completion gives its original back what it took (the
        // entries are locked one at a time, never two at once).
        if let Some((parent, related)) = undo {
            self.with(&parent, |p| {
                if let Some(p) = p {
                    related.undo_on(p);
                    if related.kind == TxnKind::Void {
                        if let Some(r) = p.reservation() {
                            limits.rebuild(std::iter::once(r));
                        }
                    }
                }
            });
        }
        if is_original_kind(req.kind) {
            let mut o = Original::pending(
                req.kind,
                req.amount,
                req.pan.unwrap_or_default(),
                req.terminal.unwrap_or_default(),
                req.settlement_date,
            );
            o.set_refers_to(req.original);
            o.issuer = req.issuer;
            o.set_reservation(req.reservation);
            return Ok((begun, self.map.insert_at(&key, req.entered_at, o).1));
        }
        Ok((begun, None))
    }

    /// The F11 the original got at its issuer (set when it is forwarded).
    pub fn forwarded(&self, key: &TxnKey, issuer_stan: u32) {
        self.with(key, |o| {
            if let Some(o) = o {
                o.issuer_stan = issuer_stan;
            }
        });
    }

    /// A forwarded request ended (issuer answer, switch decline after admission, timeout).
    /// Releases holds on its original and applies an approved related transaction. The
    /// limit usage of a transaction that did not end approved is released by the caller.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &self,
        key: &TxnKey,
        kind: TxnKind,
        original: Option<TxnKey>,
        amount: i64,
        approved: bool,
        now_ms: i64,
        limits: &LimitCounters,
    ) -> Finished {
        self.finish_at(
            key, None, None, kind, original, amount, approved, now_ms, limits,
        )
    }

    /// [`finish`](Self::finish) for a request the issuer answered (or timed out): also
    /// records the F11 it had at the issuer, in the same lookup (instead of a
    /// [`forwarded`](Self::forwarded) call when it was sent: only an original that ended
    /// approved is ever referred to by that F11). `at` is where [`begin_hinted`]
    /// (Self::begin_hinted) put the original.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_at(
        &self,
        key: &TxnKey,
        at: Option<Hint>,
        issuer_stan: Option<u32>,
        kind: TxnKind,
        original: Option<TxnKey>,
        amount: i64,
        approved: bool,
        now_ms: i64,
        limits: &LimitCounters,
    ) -> Finished {
        let mut out = Finished::default();
        let mut reversed_early = false;
        self.map.with_hinted(key, at, |o| {
            if let Some(o) = o {
                if o.state != OriginalState::Pending {
                    return;
                }
                if let Some(stan) = issuer_stan {
                    o.issuer_stan = stan;
                }
                o.state = if approved {
                    OriginalState::Approved
                } else {
                    OriginalState::NotApproved
                };
                o.approved_ms = now_ms;
                if !approved {
                    o.set_reservation(None);
                }
                if let (true, Some(reason)) = (approved, o.reverse_when_answered()) {
                    o.state = OriginalState::Reversed;
                    if let Some(r) = o.take_reservation() {
                        limits.release(&r);
                    }
                    out.reverse = Some(reason);
                    reversed_early = true;
                }
            }
        });
        let Some(orig_key) = original else {
            return out;
        };
        if kind == TxnKind::Reversal {
            return out;
        }
        self.with(&orig_key, |o| {
            let Some(o) = o else { return };
            match kind {
                TxnKind::Refund => o.refund_held = (o.refund_held - amount).max(0),
                _ => o.set_related_pending(false),
            }
            // A related transaction reversed before its answer leaves the original as is.
            if approved && !reversed_early {
                o.apply(kind, amount);
                if matches!(kind, TxnKind::Void | TxnKind::PreauthVoid) {
                    if let Some(r) = o.reservation() {
                        limits.release(&r);
                    }
                }
            }
        });
        out
    }

    /// The switch reversed an approved transaction itself (its approval could not be
    /// delivered, SPEC 8 reason 4363).
    pub fn reversed_by_switch(&self, key: &TxnKey, limits: &LimitCounters) {
        self.with(key, |o| {
            if let Some(o) = o {
                o.state = OriginalState::Reversed;
                if let Some(r) = o.take_reservation() {
                    limits.release(&r);
                }
            }
        });
    }

    /// Limit usage still held by the approved transactions of `day` (rebuilt at start).
    #[must_use]
    pub fn usage_of_day(&self, day: u32) -> Vec<Reservation> {
        let mut usage = Vec::new();
        self.map.for_each(|_, e| {
            if e.settlement_date == day
                && matches!(e.state, OriginalState::Approved | OriginalState::Completed)
            {
                usage.extend(e.reservation());
            }
        });
        usage
    }

    /// Forget originals that no related transaction can refer to any more: approved longer
    /// ago than the longest refund window of `rules`. Returns how many went.
    pub fn prune_past(&self, rules: &RelatedRules, now_ms: i64) -> usize {
        self.prune(Self::refund_cutoff(rules, now_ms), None)
    }

    /// The end of a cut-over: [`prune_past`](Self::prune_past), and forget the keys that
    /// [`enter_key`](Self::enter_key) entered for days up to `closed` and did not become
    /// originals (duplicate detection is per settlement day). One pass over the table: each
    /// pass compacts its runs on disk. Returns how many entries went.
    pub fn end_day(&self, rules: &RelatedRules, now_ms: i64, closed: u32) -> usize {
        self.prune(Self::refund_cutoff(rules, now_ms), Some(closed))
    }

    fn refund_cutoff(rules: &RelatedRules, now_ms: i64) -> i64 {
        now_ms - rules.refund_window_ms.max(rules.installment_refund_ms)
    }

    /// Forget originals approved before `before_ms`, and the request keys of days up to
    /// `keys_until` (none: keep every key). Returns how many entries went.
    fn prune(&self, before_ms: i64, keys_until: Option<u32>) -> usize {
        let n = self.map.len();
        self.map.retain(|o| match o.state {
            OriginalState::Seen => keys_until.is_none_or(|closed| o.settlement_date > closed),
            OriginalState::Pending => true,
            _ => o.approved_ms >= before_ms,
        });
        n - self.map.len()
    }

    /// Entries: originals, and the keys of the day's requests that are not originals.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAN: &str = "6222021234567890";

    fn orig(kind: TxnKind, state: OriginalState) -> Original {
        let mut o = Original::pending(kind, 1_000, PAN.as_bytes(), b"TERM0001", 20261121);
        o.state = state;
        o
    }

    fn req(kind: TxnKind, amount: i64) -> RelatedRequest<'static> {
        RelatedRequest {
            kind,
            amount,
            pan: Some(PAN.as_bytes()),
            terminal: Some(b"TERM0001"),
            settlement_date: 20261121,
            now_ms: 1_000,
        }
    }

    #[test]
    fn a_pan_kept_two_digits_a_byte_matches_only_its_own_digits() {
        for pan in ["6222021234567890", "6222021234567890123", "1", ""] {
            let kept = PanDigits::from(pan);
            assert!(kept.matches(pan.as_bytes()), "{pan}");
            assert_eq!(&kept.ascii()[..pan.len()], pan.as_bytes());
            assert_eq!(kept.len(), pan.len());
        }
        let kept = PanDigits::from(PAN);
        assert!(!kept.matches(b"6222021234567891"));
        assert!(!kept.matches(b"622202123456789"));
        assert!(!kept.matches(b"62220212345678900"));
        // A byte that is no digit matches nothing, not even itself.
        let odd = PanDigits::from("62220212345678:0");
        assert!(!odd.matches(b"62220212345678:0"));
        assert!(!odd.matches(b"6222021234567800"));
        assert_eq!(&odd.ascii()[..16], b"62220212345678?0");
        // Past 19 digits the PAN is cut, and then matches no real F2.
        let long = PanDigits::from("62220212345678901234");
        assert_eq!(long.len(), 19);
        assert!(!long.matches(b"62220212345678901234"));
        assert_eq!(
            format!("{kept:?}"),
            iso8583::render::mask_pan(PAN.as_bytes()).to_string()
        );
        assert!(!format!("{kept:?}").contains(PAN));
    }

    #[test]
    fn an_originals_reservation_is_its_own_terminal_amount_and_day_with_the_merchant() {
        let mut o = orig(TxnKind::Purchase, OriginalState::Pending);
        assert_eq!(o.reservation(), None);
        let r = Reservation {
            terminal: crate::registry::TerminalId::parse("TERM0001").unwrap(),
            merchant: crate::registry::MerchantId::parse("898100000000001").unwrap(),
            category: crate::registry::TxnCategory::Purchase,
            amount: 1_000,
            day: 20261121,
        };
        o.set_reservation(Some(r));
        assert_eq!(o.reservation(), Some(r));
        assert_eq!(o.take_reservation(), Some(r));
        assert_eq!(o.reservation(), None);
        // The optional parts are independent of each other.
        o.set_reverse_when_answered(Some(*b"4351"));
        o.set_related_pending(true);
        assert_eq!(o.refers_to(), None);
        o.set_reverse_when_answered(None);
        assert!(o.related_pending());
        assert_eq!(o.reverse_when_answered(), None);
        assert_eq!(o, {
            let mut p = orig(TxnKind::Purchase, OriginalState::Pending);
            p.set_related_pending(true);
            p
        });
    }

    #[test]
    fn originals_round_trip_through_their_spill_bytes() {
        use crate::daytable::Spill;
        let mut full = orig(TxnKind::InstallmentPurchase, OriginalState::Approved);
        full.refunded = 300;
        full.approved_ms = 1_764_000_000_123;
        full.set_refers_to(Some(TxnKey {
            transmission: 1_201_235_959,
            stan: 999_999,
            acquirer: 99_999_999_999,
            forwarding: 1_030_000,
        }));
        full.issuer = InstId::new("03010000");
        full.issuer_stan = 123_457;
        full.set_reservation(Some(Reservation {
            terminal: crate::registry::TerminalId::parse("TERM0001").unwrap(),
            merchant: crate::registry::MerchantId::parse("898100000000001").unwrap(),
            category: crate::registry::TxnCategory::Installment,
            amount: 1_000,
            day: 20261121,
        }));
        full.refund_held = 50;
        full.set_related_pending(true);
        full.set_reverse_when_answered(Some(*b"4351"));
        let bare = orig(TxnKind::Refund, OriginalState::Pending);
        for o in [
            full,
            bare,
            Original::seen(TxnKind::BalanceInquiry, 20261121),
        ] {
            let mut b = Vec::new();
            o.put(&mut b);
            assert_eq!(b.len(), Original::SIZE);
            assert_eq!(Original::take(&b), Some(o.clone()));
            assert_eq!(Original::take(&b[..Original::SIZE - 1]), None);
        }
        let mut bad = Vec::new();
        orig(TxnKind::Void, OriginalState::Voided).put(&mut bad);
        bad[0] = 200; // no such kind
        assert_eq!(Original::take(&bad), None);
    }

    #[test]
    fn every_code_of_section_7() {
        use OriginalState::*;
        use TxnKind::*;
        let rules = RelatedRules::default();
        let approved = orig(Purchase, Approved);
        let code = |o: Option<&Original>, r: RelatedRequest<'_>| {
            check(o, &r, &rules).err().map(|c| c.to_string())
        };
        assert_eq!(code(Some(&approved), req(Void, 1_000)), None);
        assert_eq!(code(Some(&approved), req(Refund, 400)), None);
        assert_eq!(code(Some(&approved), req(Reversal, 1_000)), None);
        assert_eq!(code(None, req(Void, 1_000)).as_deref(), Some("25"));
        // A key only seen (a request not forwarded) is no original, whatever its kind.
        for kind in [Purchase, BalanceInquiry] {
            for related in [Void, Refund, Reversal] {
                assert_eq!(
                    code(Some(&Original::seen(kind, 20261121)), req(related, 1_000)).as_deref(),
                    Some("25"),
                    "{related:?} of a seen {kind:?}"
                );
            }
        }
        assert_eq!(
            code(Some(&orig(Purchase, NotApproved)), req(Void, 1_000)).as_deref(),
            Some("12")
        );
        assert_eq!(
            code(Some(&orig(Purchase, Pending)), req(Void, 1_000)).as_deref(),
            Some("12")
        );
        assert_eq!(
            code(Some(&orig(Purchase, Pending)), req(Reversal, 1_000)),
            None,
            "early reversal"
        );
        assert_eq!(
            code(Some(&orig(Purchase, Voided)), req(Void, 1_000)).as_deref(),
            Some("22")
        );
        assert_eq!(
            code(Some(&orig(Purchase, Reversed)), req(Refund, 1)).as_deref(),
            Some("22")
        );
        assert_eq!(code(Some(&approved), req(Void, 0)).as_deref(), Some("13"));
        assert_eq!(code(Some(&approved), req(Void, 999)).as_deref(), Some("64"));
        let mut other_pan = req(Void, 1_000);
        other_pan.pan = Some(b"6222029999999999");
        assert_eq!(code(Some(&approved), other_pan).as_deref(), Some("14"));
        let mut other_term = req(Void, 1_000);
        other_term.terminal = Some(b"TERM0002");
        assert_eq!(code(Some(&approved), other_term).as_deref(), Some("97"));
        let mut next_day = req(Void, 1_000);
        next_day.settlement_date = 20261122;
        assert_eq!(
            code(Some(&approved), next_day).as_deref(),
            Some("22"),
            "void only the same day"
        );
        let mut late = req(Refund, 10);
        late.now_ms = rules.refund_window_ms + 1;
        assert_eq!(
            code(Some(&approved), late).as_deref(),
            Some("22"),
            "refund window"
        );
        let mut refunded = approved.clone();
        refunded.refunded = 700;
        assert_eq!(
            code(Some(&refunded), req(Refund, 300)),
            None,
            "up to the original amount"
        );
        assert_eq!(
            code(Some(&refunded), req(Refund, 301)).as_deref(),
            Some("22"),
            "refund total exceeded"
        );
        assert_eq!(
            code(Some(&refunded), req(Void, 1_000)).as_deref(),
            Some("22"),
            "void of a partly refunded original"
        );
        assert_eq!(
            code(Some(&refunded), req(Reversal, 1_000)).as_deref(),
            Some("22"),
            "reversal of a partly refunded original"
        );
        let mut no_pan = req(Reversal, 1_000);
        no_pan.pan = None;
        assert_eq!(code(Some(&approved), no_pan), None, "reversal by F90 only");
    }

    #[test]
    fn state_changes_and_reversal_of_a_void() {
        let index = OriginalIndex::default();
        let key = TxnKey {
            transmission: 1,
            stan: 2,
            acquirer: 3,
            forwarding: 3,
        };
        index.insert(key, orig(TxnKind::Purchase, OriginalState::Approved));
        index.with(&key, |o| o.unwrap().apply(TxnKind::Refund, 300));
        index.with(&key, |o| o.unwrap().apply(TxnKind::Refund, 200));
        assert_eq!(index.with(&key, |o| o.map(|o| o.refunded)), Some(500));
        index.with(&key, |o| o.unwrap().apply(TxnKind::Void, 1_000));
        assert_eq!(
            index.with(&key, |o| o.map(|o| o.state)),
            Some(OriginalState::Voided)
        );
        // The void's own record, reversed, restores its original.
        let mut void = orig(TxnKind::Void, OriginalState::Approved);
        void.set_refers_to(Some(key));
        assert_eq!(
            check(
                Some(&void),
                &req(TxnKind::Reversal, 1_000),
                &RelatedRules::default()
            ),
            Ok(())
        );
        assert_eq!(void.restores(), Some(key));
        index.with(&key, |o| {
            if let Some(o) = o {
                o.state = OriginalState::Approved;
            }
        });
        assert_eq!(
            index.with(&key, |o| o.map(|o| o.state)),
            Some(OriginalState::Approved)
        );
        assert_eq!(
            orig(TxnKind::Purchase, OriginalState::Approved).restores(),
            None
        );
        assert_eq!(index.len(), 1);
    }
}

#[cfg(test)]
mod flow_tests {
    use super::*;

    fn key(stan: u32) -> TxnKey {
        TxnKey {
            transmission: 1_121_093_000,
            stan,
            acquirer: 1_030_000,
            forwarding: 1_030_000,
        }
    }

    fn begin(kind: TxnKind, amount: i64, original: Option<TxnKey>) -> Begin<'static> {
        Begin {
            kind,
            amount,
            pan: Some(b"6222021234567890"),
            terminal: Some(b"TERM0001"),
            settlement_date: 20261121,
            now_ms: 0,
            original,
            issuer: None,
            reservation: None,
            reason: *b"4351",
            entered_at: None,
        }
    }

    #[test]
    fn a_key_entered_twice_on_its_day_is_a_duplicate_and_only_originals_are_found() {
        let (index, limits, rules) = (
            OriginalIndex::default(),
            LimitCounters::new(),
            RelatedRules::default(),
        );
        let (p, inquiry) = (key(1), key(2));
        // The inquiry's key is new on `date`, then a duplicate for the rest of it.
        let new_then_duplicate = |date: u32| {
            assert!(index
                .enter_key(&inquiry, TxnKind::BalanceInquiry, date)
                .is_ok());
            assert_eq!(
                index.enter_key(&inquiry, TxnKind::BalanceInquiry, date),
                Err(Duplicate)
            );
        };
        let entered_at = index.enter_key(&p, TxnKind::Purchase, 20261121).unwrap();
        assert!(entered_at.is_some());
        new_then_duplicate(20261121);
        // A key only seen is no original: nothing refers to it, it is not finished.
        assert!(!index.with(&p, |o| o.is_some()));
        let void = begin(TxnKind::Void, 1_000, Some(inquiry));
        assert_eq!(
            index.begin(key(3), &void, &rules, &limits),
            Err(ResponseCode::ORIGINAL_NOT_FOUND)
        );
        index.finish(&inquiry, TxnKind::BalanceInquiry, None, 0, true, 0, &limits);
        assert!(!index.with(&inquiry, |o| o.is_some()));
        // Forwarded, the purchase's entry becomes its original, and stays a duplicate.
        let purchase = Begin {
            entered_at,
            ..begin(TxnKind::Purchase, 1_000, None)
        };
        let (_, at) = index.begin_hinted(p, &purchase, &rules, &limits).unwrap();
        assert_eq!(at, entered_at, "the original is where its key was entered");
        index.finish(&p, TxnKind::Purchase, None, 1_000, true, 0, &limits);
        assert_eq!(
            index.with(&p, |o| o.map(|o| o.state)),
            Some(OriginalState::Approved)
        );
        assert_eq!(
            index.enter_key(&p, TxnKind::Purchase, 20261121),
            Err(Duplicate)
        );
        assert_eq!(index.len(), 2, "a declined void enters nothing here");
        // The cut-over forgets the closed day's keys and keeps its originals; the next
        // day's request under a closed day's key is no duplicate.
        assert_eq!(
            index.prune(-1, None),
            0,
            "pruning originals leaves keys alone"
        );
        assert_eq!(index.end_day(&rules, 0, 20261121), 1, "the inquiry's key");
        assert_eq!(index.len(), 1);
        new_then_duplicate(20261122);
        assert!(index
            .enter_key(&inquiry, TxnKind::BalanceInquiry, 20261123)
            .is_ok());
    }

    #[test]
    fn refunds_in_flight_count_against_the_refundable_total() {
        let (index, limits, rules) = (
            OriginalIndex::default(),
            LimitCounters::new(),
            RelatedRules::default(),
        );
        let p = key(1);
        index
            .begin(p, &begin(TxnKind::Purchase, 1_000, None), &rules, &limits)
            .unwrap();
        index.forwarded(&p, 17);
        index.finish(&p, TxnKind::Purchase, None, 1_000, true, 0, &limits);
        let r = begin(TxnKind::Refund, 700, Some(p));
        assert_eq!(
            index.begin(key(2), &r, &rules, &limits),
            Ok(Begun::Forward {
                original_issuer_stan: Some(17)
            })
        );
        // 700 held, 400 more would exceed the original while the first is unanswered.
        let r2 = begin(TxnKind::Refund, 400, Some(p));
        assert_eq!(
            index.begin(key(3), &r2, &rules, &limits),
            Err(ResponseCode::ILLEGAL_RELATED)
        );
        // The first is declined: its hold goes, the second now fits.
        index.finish(&key(2), TxnKind::Refund, Some(p), 700, false, 0, &limits);
        assert_eq!(
            index.begin(key(4), &r2, &rules, &limits),
            Ok(Begun::Forward {
                original_issuer_stan: Some(17)
            })
        );
        index.finish(&key(4), TxnKind::Refund, Some(p), 400, true, 0, &limits);
        assert_eq!(
            index.with(&p, |o| o.map(|o| (o.refunded, o.refund_held))),
            Some((400, 0))
        );
    }

    #[test]
    fn early_reversal_of_a_declined_original_sends_nothing_and_of_an_approved_one_reverses() {
        let (index, limits, rules) = (
            OriginalIndex::default(),
            LimitCounters::new(),
            RelatedRules::default(),
        );
        for (stan, approved) in [(1, false), (2, true)] {
            let p = key(stan);
            index
                .begin(p, &begin(TxnKind::Purchase, 1_000, None), &rules, &limits)
                .unwrap();
            let rev = begin(TxnKind::Reversal, 1_000, Some(p));
            assert_eq!(
                index.begin(key(stan + 10), &rev, &rules, &limits),
                Ok(Begun::EarlyReversal)
            );
            // A second early reversal under another key: the first one holds.
            assert_eq!(
                index.begin(key(stan + 20), &rev, &rules, &limits),
                Err(ResponseCode::ILLEGAL_RELATED)
            );
            let f = index.finish(&p, TxnKind::Purchase, None, 1_000, approved, 5, &limits);
            assert_eq!(f.reverse, approved.then_some(*b"4351"));
            let want = if approved {
                OriginalState::Reversed
            } else {
                OriginalState::NotApproved
            };
            assert_eq!(index.with(&p, |o| o.map(|o| o.state)), Some(want));
        }
    }

    #[test]
    fn a_void_and_a_completion_hold_their_original_until_answered() {
        let (index, limits, rules) = (
            OriginalIndex::default(),
            LimitCounters::new(),
            RelatedRules::default(),
        );
        let pre = key(1);
        index
            .begin(pre, &begin(TxnKind::Preauth, 1_000, None), &rules, &limits)
            .unwrap();
        index.forwarded(&pre, 17);
        index.finish(&pre, TxnKind::Preauth, None, 1_000, true, 0, &limits);
        let c = begin(TxnKind::PreauthCompletion, 900, Some(pre));
        assert_eq!(
            index.begin(key(2), &c, &rules, &limits),
            Ok(Begun::Forward {
                original_issuer_stan: Some(17)
            })
        );
        let v = begin(TxnKind::PreauthVoid, 1_000, Some(pre));
        assert_eq!(
            index.begin(key(3), &v, &rules, &limits),
            Err(ResponseCode::ILLEGAL_RELATED),
            "completion in flight"
        );
        index.finish(
            &key(2),
            TxnKind::PreauthCompletion,
            Some(pre),
            900,
            true,
            0,
            &limits,
        );
        assert_eq!(
            index.with(&pre, |o| o.map(|o| o.state)),
            Some(OriginalState::Completed)
        );
        // A void of a purchase may not name a preauthorisation.
        let wrong = begin(TxnKind::Void, 1_000, Some(pre));
        assert_eq!(
            index.begin(key(4), &wrong, &rules, &limits),
            Err(ResponseCode::ORIGINAL_NOT_FOUND)
        );
    }
}
