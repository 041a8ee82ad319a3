//! From journal records to cleared lines: what each transaction became (SPEC.md sections 5,
//! 7, 8, 11 and 12) and what each cleared line carries.
//!
//! The whole journal is read (originals of refunds may be days old), transactions are taken
//! in journal order of their request records, and the state machine of SPEC 7 is replayed:
//! approved -> voided | reversed | (partially) refunded, a reversal of a void restores the
//! void's original. The switch's own `originals` module implements the same machine for the
//! live path; this one differs only in knowing every final answer up front (so an early
//! reversal reverses its original if that ends approved, whatever the journal order).
//!
//! **What a line carries.** Each cleared transaction has a *base* charge (merchant fee split
//! and installment subsidy; for a refund, the proportional return) and is *effective* unless
//! voided or reversed. A line carries its base if its transaction is still effective at the
//! end of its own settlement day, else zero: a purchase voided or reversed the same day and
//! its void/reversal record both carry zeros (SPEC 12). A void or reversal on a *later* day
//! cannot change a file already produced, so its line carries the change it made (the
//! negated base, or the restored base for a reversal of a void). Refund lines carry their
//! returns. Over any run of days the lines of a transaction and its related records sum to
//! what remains effective.

use std::collections::HashMap;

use super::fees::{subsidy_fee, FeeSplit};
use super::{ClearingContext, ClearingError};
use crate::core::{TxnKey, TxnKind};
use crate::records::{OutcomeRecord, RequestRecord, SwitchRecord};
use iso8583::subfields::reason;

/// Milliseconds per day (refund windows are counted in days from the original's approval).
const DAY_MS: i64 = 86_400_000;

/// Charges a line carries, signed from the acquirer's side: positive = the acquirer pays
/// (a purchase), negative = it gets them back (refund, cross-day cancellation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charges {
    /// Merchant fee and its split (the issuer's and the switch's shares are interbank).
    pub fee: FeeSplit,
    /// Installment merchant subsidy fee, paid by the acquirer to the issuer.
    pub subsidy: i64,
}

impl Charges {
    fn scaled(self, sign: i64) -> Charges {
        match sign {
            0 => Charges::default(),
            s if s > 0 => self,
            _ => Charges {
                fee: -self.fee,
                subsidy: -self.subsidy,
            },
        }
    }

    fn add(self, o: Charges) -> Charges {
        Charges {
            fee: self.fee + o.fee,
            subsidy: self.subsidy + o.subsidy,
        }
    }
}

/// Why an approved related transaction produced no line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unmatched {
    /// F90 names no transaction in the journal.
    OriginalNotFound,
    /// The original was declined, is still pending, or was reversed by the switch.
    OriginalNotApproved,
    /// The original is of a kind that is not cleared (preauthorisation, balance inquiry...).
    OriginalNotCleared,
    /// The original was already voided or reversed.
    AlreadyCancelled,
    /// The original is not something this transaction can act on (void of a refund...).
    WrongOriginalKind,
    /// No issuer could be determined (neither routed nor inherited from the original).
    NoIssuer,
}

impl Unmatched {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Unmatched::OriginalNotFound => "original not in journal",
            Unmatched::OriginalNotApproved => "original not approved",
            Unmatched::OriginalNotCleared => "original kind not cleared",
            Unmatched::AlreadyCancelled => "original already voided/reversed",
            Unmatched::WrongOriginalKind => "original of the wrong kind",
            Unmatched::NoIssuer => "no issuer",
        }
    }
}

/// What a request became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A kind never cleared: balance inquiry, preauthorisation and its void, network, unknown.
    NotClearedKind,
    /// No final answer in the journal (in flight at cut-over or at a crash).
    Pending,
    /// Answered with a code other than `00`.
    Declined,
    /// Approved by the issuer but reversed by the switch (approval undeliverable, 4363; or
    /// any switch-generated reversal recorded with the outcome).
    SwitchReversed,
    /// An approved related transaction with nothing to act on.
    Unmatched(Unmatched),
    /// Appears in the clearing files.
    Cleared,
}

/// A refund whose original could not be found or was not refundable: cleared (the issuer
/// approved it, money moves) without any fee or subsidy return.
pub const NOTE_REFUND_WITHOUT_ORIGINAL: &str = "refund without a refundable original";

/// One transaction of the journal and what it became.
pub(crate) struct Txn<'r> {
    pub req: &'r RequestRecord,
    pub outcome: Option<&'r OutcomeRecord>,
    /// A 4363 advice names it (approval undeliverable: the switch reversed it).
    pub switch_reversed: bool,
    /// Index of the transaction its F90 names (the latest earlier one with that key).
    pub target: Option<usize>,
    pub disposition: Disposition,
    /// Still in force (not voided/reversed).
    pub effective: bool,
    /// Charges while effective.
    pub base: Charges,
    /// Status changes made by related transactions: (line index, its date, new status).
    changes: Vec<(usize, u32, bool)>,
    /// As an original: approved refunds so far, those inside the subsidy window, and what
    /// they returned (positive amounts).
    refunded: i64,
    refunded_in_window: i64,
    returned: Charges,
    /// The void that voided it (a reversal of that void restores it).
    voided_by: Option<usize>,
    /// The original a refund/void/reversal chain leads to, for inherited fields.
    pub root: Option<usize>,
    /// +1 the acquirer receives the amount from the issuer, -1 it pays it back.
    pub direction: i64,
    /// Issuer institution (routed, or inherited from the original).
    pub issuer: Option<String>,
    /// Originals: whether a fee rule priced it (`None` for other kinds).
    pub priced: Option<bool>,
    /// Refunds: inside the installment subsidy return window.
    in_window: bool,
    pub note: Option<&'static str>,
    /// What its line carries (filled by [`Ledger::settle`]).
    pub carried: Charges,
}

/// All transactions of a journal with their final state.
pub(crate) struct Ledger<'r> {
    pub txns: Vec<Txn<'r>>,
    /// Request records with a key + date already seen (ignored; the first is authoritative).
    pub duplicate_requests: u64,
    /// Outcomes naming no request.
    pub orphan_outcomes: u64,
}

fn is_original_kind(kind: TxnKind) -> bool {
    matches!(
        kind,
        TxnKind::Purchase
            | TxnKind::InstallmentPurchase
            | TxnKind::CashWithdrawal
            | TxnKind::PreauthCompletion
    )
}

fn is_cleared_kind(kind: TxnKind) -> bool {
    is_original_kind(kind) || matches!(kind, TxnKind::Void | TxnKind::Refund | TxnKind::Reversal)
}

impl<'r> Ledger<'r> {
    /// Replays `records` (journal order) into transactions and their states.
    pub fn build(
        records: &'r [SwitchRecord],
        ctx: &ClearingContext<'_>,
    ) -> Result<Ledger<'r>, ClearingError> {
        let mut txns: Vec<Txn<'r>> = Vec::new();
        // (date, key) -> transaction; key -> transactions in journal order (F90 lookups).
        let mut by_id: HashMap<(u32, TxnKey), usize> = HashMap::new();
        let mut by_key: HashMap<TxnKey, Vec<usize>> = HashMap::new();
        let mut duplicate_requests = 0;
        let mut orphan_outcomes = 0;
        let latest_before = |by_key: &HashMap<TxnKey, Vec<usize>>, key: &TxnKey, end: usize| {
            by_key
                .get(key)
                .and_then(|v| v.iter().rev().find(|&&i| i < end).copied())
        };
        for rec in records {
            match rec {
                SwitchRecord::Request(r) => {
                    let id = (r.settlement_date, r.key);
                    if by_id.contains_key(&id) {
                        duplicate_requests += 1;
                        continue;
                    }
                    let i = txns.len();
                    by_id.insert(id, i);
                    let target = r
                        .original
                        .filter(|_| r.kind.needs_original())
                        .and_then(|k| latest_before(&by_key, &k, i));
                    by_key.entry(r.key).or_default().push(i);
                    txns.push(Txn {
                        req: r,
                        outcome: None,
                        switch_reversed: false,
                        target,
                        disposition: Disposition::Pending,
                        effective: false,
                        base: Charges::default(),
                        changes: Vec::new(),
                        refunded: 0,
                        refunded_in_window: 0,
                        returned: Charges::default(),
                        voided_by: None,
                        root: None,
                        direction: 1,
                        issuer: r.issuer.filter(|s| !s.is_empty()).map(|s| s.to_string()),
                        priced: None,
                        in_window: false,
                        note: None,
                        carried: Charges::default(),
                    });
                }
                SwitchRecord::Outcome(o) => {
                    match by_id
                        .get(&(o.settlement_date, o.key))
                        .and_then(|&i| txns.get_mut(i))
                    {
                        // The first answer is the final one; a second would be a bug upstream.
                        Some(t) if t.outcome.is_none() => t.outcome = Some(o),
                        Some(_) => {}
                        None => orphan_outcomes += 1,
                    }
                }
                SwitchRecord::Advice(a) if a.reason == reason::UNDELIVERABLE => {
                    let end = txns.len();
                    if let Some(t) = a
                        .original
                        .and_then(|k| latest_before(&by_key, &k, end))
                        .and_then(|i| txns.get_mut(i))
                    {
                        t.switch_reversed = true;
                    }
                }
                SwitchRecord::Advice(_) | SwitchRecord::AdviceDone(_) => {}
            }
        }
        let mut ledger = Ledger {
            txns,
            duplicate_requests,
            orphan_outcomes,
        };
        for i in 0..ledger.txns.len() {
            ledger.apply(i, ctx)?;
        }
        ledger.settle();
        Ok(ledger)
    }

    /// Decides transaction `i` (all earlier ones are decided) and applies its effect.
    fn apply(&mut self, i: usize, ctx: &ClearingContext<'_>) -> Result<(), ClearingError> {
        let Some(t) = self.txns.get(i) else {
            return Ok(());
        };
        let (req, outcome, target) = (t.req, t.outcome, t.target);
        let disposition = if !is_cleared_kind(req.kind) {
            Disposition::NotClearedKind
        } else {
            match outcome {
                None => Disposition::Pending,
                Some(o) if o.code != *b"00" => Disposition::Declined,
                Some(o) if o.reversal_reason.is_some() || t.switch_reversed => {
                    Disposition::SwitchReversed
                }
                Some(_) => Disposition::Cleared,
            }
        };
        if disposition != Disposition::Cleared {
            self.set(i, |t| t.disposition = disposition);
            return Ok(());
        }
        // Fields a related record may lack come from its original.
        let root = target.map(|o| self.txns.get(o).and_then(|t| t.root).unwrap_or(o));
        let issuer = self
            .txns
            .get(i)
            .and_then(|t| t.issuer.clone())
            .or_else(|| self.chain_issuer(target));
        let Some(issuer) = issuer else {
            // Nothing to clear against (before any state change is made).
            let u = Disposition::Unmatched(Unmatched::NoIssuer);
            self.set(i, |t| t.disposition = u);
            return Ok(());
        };
        let mut result = Applied {
            disposition: Disposition::Cleared,
            direction: 1,
            base: Charges::default(),
            priced: None,
            in_window: false,
            note: None,
            root,
        };
        match req.kind {
            k if is_original_kind(k) => {
                let (base, priced) = price_original(req, ctx)?;
                result.base = base;
                result.priced = Some(priced);
                result.root = None;
            }
            TxnKind::Refund => {
                result.direction = -1;
                match target.filter(|&o| self.refundable(o)) {
                    Some(o) => (result.base, result.in_window) = self.refund(o, req, ctx),
                    None => result.note = Some(NOTE_REFUND_WITHOUT_ORIGINAL),
                }
            }
            TxnKind::Void => {
                result.direction = -1;
                match self.check_target(target, is_original_kind) {
                    Ok(o) => {
                        self.change(o, i, req.settlement_date, false);
                        self.set(o, |t| t.voided_by = Some(i));
                    }
                    Err(u) => result.disposition = Disposition::Unmatched(u),
                }
            }
            TxnKind::Reversal => match self.check_target(target, |k| k != TxnKind::Reversal) {
                Ok(o) => {
                    let (kind, dir) = self
                        .txns
                        .get(o)
                        .map_or((TxnKind::Unknown, 1), |t| (t.req.kind, t.direction));
                    result.direction = -dir;
                    self.change(o, i, req.settlement_date, false);
                    match kind {
                        TxnKind::Void => {
                            // A reversal of a void un-voids the void's original.
                            let restored = self.txns.get(o).and_then(|v| v.root).filter(|&p| {
                                self.txns.get(p).is_some_and(|p| p.voided_by == Some(o))
                            });
                            if let Some(p) = restored {
                                self.change(p, i, req.settlement_date, true);
                                self.set(p, |t| t.voided_by = None);
                            }
                        }
                        TxnKind::Refund => self.unrefund(o),
                        _ => {}
                    }
                }
                Err(u) => result.disposition = Disposition::Unmatched(u),
            },
            _ => result.disposition = Disposition::NotClearedKind,
        }
        self.set(i, |t| {
            t.disposition = result.disposition;
            t.effective = result.disposition == Disposition::Cleared;
            t.direction = result.direction;
            t.base = result.base;
            t.priced = result.priced;
            t.in_window = result.in_window;
            t.note = result.note;
            t.root = result.root;
            t.issuer = Some(issuer);
        });
        Ok(())
    }

    fn set(&mut self, i: usize, f: impl FnOnce(&mut Txn<'r>)) {
        if let Some(t) = self.txns.get_mut(i) {
            f(t);
        }
    }

    /// Records that line `by` (dated `date`) set transaction `o` to `effective`.
    fn change(&mut self, o: usize, by: usize, date: u32, effective: bool) {
        self.set(o, |t| {
            t.effective = effective;
            t.changes.push((by, date, effective));
        });
    }

    fn chain_issuer(&self, mut at: Option<usize>) -> Option<String> {
        while let Some(t) = at.and_then(|i| self.txns.get(i)) {
            if let Some(s) = &t.issuer {
                return Some(s.clone());
            }
            at = t.target;
        }
        None
    }

    /// The target of a void or reversal, if it is cleared, in force and of a kind `ok`.
    fn check_target(
        &self,
        target: Option<usize>,
        ok: impl Fn(TxnKind) -> bool,
    ) -> Result<usize, Unmatched> {
        let o = target.ok_or(Unmatched::OriginalNotFound)?;
        let t = self.txns.get(o).ok_or(Unmatched::OriginalNotFound)?;
        match t.disposition {
            Disposition::Cleared => {}
            Disposition::NotClearedKind => return Err(Unmatched::OriginalNotCleared),
            Disposition::Unmatched(_) => return Err(Unmatched::WrongOriginalKind),
            _ => return Err(Unmatched::OriginalNotApproved),
        }
        if !ok(t.req.kind) {
            return Err(Unmatched::WrongOriginalKind);
        }
        if !t.effective {
            return Err(Unmatched::AlreadyCancelled);
        }
        Ok(o)
    }

    fn refundable(&self, o: usize) -> bool {
        self.txns.get(o).is_some_and(|t| {
            t.disposition == Disposition::Cleared && is_original_kind(t.req.kind) && t.effective
        })
    }

    /// A refund of original `o`: returns the original's fee, and its subsidy when inside the
    /// window, in proportion to the refunded amount. Proportions are taken on the cumulative
    /// refunded amount (each rounded half up) and this refund gets the difference, so a
    /// complete refund in any number of parts returns exactly the original's charges.
    fn refund(
        &mut self,
        o: usize,
        req: &RequestRecord,
        ctx: &ClearingContext<'_>,
    ) -> (Charges, bool) {
        let Some(orig) = self.txns.get_mut(o) else {
            return (Charges::default(), false);
        };
        let whole = orig.req.amount;
        let approved_ms = orig.outcome.map_or(orig.req.received_ms, |x| x.answered_ms);
        let window_ms = i64::from(ctx.rules.installment_subsidy_return_days).saturating_mul(DAY_MS);
        let in_window = req.received_ms.saturating_sub(approved_ms) <= window_ms;
        orig.refunded = orig.refunded.saturating_add(req.amount);
        if in_window {
            orig.refunded_in_window = orig.refunded_in_window.saturating_add(req.amount);
        }
        let now = Charges {
            fee: orig.base.fee.cumulative_part(orig.refunded, whole),
            subsidy: super::fees::proportion(orig.base.subsidy, orig.refunded_in_window, whole),
        };
        let this = Charges {
            fee: now.fee - orig.returned.fee,
            subsidy: now.subsidy - orig.returned.subsidy,
        };
        orig.returned = now;
        // Returned to the acquirer: the negative direction.
        (this.scaled(-1), in_window)
    }

    /// Refund `r` reversed: its amount and returns no longer count against its original.
    fn unrefund(&mut self, r: usize) {
        let Some((root, amount, base, in_window)) = self
            .txns
            .get(r)
            .map(|t| (t.root, t.req.amount, t.base, t.in_window))
        else {
            return;
        };
        let Some(orig) = root.and_then(|o| self.txns.get_mut(o)) else {
            return;
        };
        orig.refunded -= amount;
        if in_window {
            orig.refunded_in_window -= amount;
        }
        // `base` is the (negative) return; adding it takes it off what was returned.
        orig.returned = orig.returned.add(base);
    }

    /// Computes what each cleared line carries (see the module docs).
    fn settle(&mut self) {
        let mut carried: Vec<Charges> = vec![Charges::default(); self.txns.len()];
        for (i, t) in self.txns.iter().enumerate() {
            if t.disposition != Disposition::Cleared {
                continue;
            }
            let own_date = t.req.settlement_date;
            let mut changes = t.changes.clone();
            // Stable: within a date, journal order decides.
            changes.sort_by_key(|c| c.1);
            let mut eff = true;
            // Changes of its own day (or, oddly dated, before it) are absorbed into its line.
            if let Some(&(_, _, e)) = changes.iter().rev().find(|c| c.1 <= own_date) {
                eff = e;
            }
            if let Some(c) = carried.get_mut(i) {
                *c = c.add(t.base.scaled(i64::from(eff)));
            }
            let later: Vec<&(usize, u32, bool)> =
                changes.iter().filter(|c| c.1 > own_date).collect();
            let mut k = 0;
            while let Some(&&(_, date, _)) = later.get(k) {
                // The last change of that day holds the day's net change.
                let mut last = k;
                while later.get(last + 1).is_some_and(|c| c.1 == date) {
                    last += 1;
                }
                if let Some(&&(line, _, after)) = later.get(last) {
                    if after != eff {
                        let sign = if after { 1 } else { -1 };
                        if let Some(c) = carried.get_mut(line) {
                            *c = c.add(t.base.scaled(sign));
                        }
                        eff = after;
                    }
                }
                k = last + 1;
            }
        }
        for (t, c) in self.txns.iter_mut().zip(carried) {
            t.carried = c;
        }
    }
}

/// The outcome of deciding one transaction.
struct Applied {
    disposition: Disposition,
    direction: i64,
    base: Charges,
    priced: Option<bool>,
    in_window: bool,
    note: Option<&'static str>,
    root: Option<usize>,
}

/// Merchant fee (by MCC and the card type of the BIN) and installment subsidy of an
/// original transaction. `bool`: whether a fee rule matched.
fn price_original(
    req: &RequestRecord,
    ctx: &ClearingContext<'_>,
) -> Result<(Charges, bool), ClearingError> {
    let card_type = ctx.bins.lookup(req.pan.as_bytes()).map(|r| r.card_type);
    let rule = ctx.fees.rule_for(req.mcc, card_type);
    let fee = match rule {
        Some(r) => r
            .price(req.amount)
            .ok_or_else(|| ClearingError::overflow("merchant fee", &req.key))?,
        None => FeeSplit::default(),
    };
    let subsidy = match (req.kind, req.installment) {
        (TxnKind::InstallmentPurchase, Some(terms)) => subsidy_fee(req.amount, terms.subsidy_rate)
            .ok_or_else(|| ClearingError::overflow("installment subsidy", &req.key))?,
        _ => 0,
    };
    Ok((Charges { fee, subsidy }, rule.is_some()))
}
