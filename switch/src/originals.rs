//! SPEC.md section 7: originals of related transactions (void, refund, preauthorisation void
//! and completion, reversal) and the checks and state changes they make. Sans-I/O: the
//! acquirer link looks an original up by the key its F90 names, calls [`check`], forwards,
//! and calls [`Original::apply`] with the outcome. Not yet wired into the acquirer path.

use crate::core::{TxnKey, TxnKind};
use dashmap::DashMap;
use iso8583::ResponseCode;

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
}

/// What the index keeps of an original: what the checks compare against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub kind: TxnKind,
    pub amount: i64,
    /// F2 of the original (compared for `14`; never logged).
    pub pan: Box<str>,
    /// F41 of the original (compared for `97`).
    pub terminal: [u8; 8],
    pub state: OriginalState,
    /// Sum of approved refunds so far (minor units).
    pub refunded: i64,
    /// When the original was approved (refund window).
    pub approved_ms: i64,
    /// Settlement date `YYYYMMDD` (voids only within the same day, SPEC 5).
    pub settlement_date: u32,
    /// For a related transaction kept as an original (a void): the key of its own original,
    /// restored to approved when this one is reversed.
    pub refers_to: Option<TxnKey>,
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

/// Limits of the checks that are configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelatedRules {
    /// Refunds are accepted this long after the original's approval (`22` after).
    pub refund_window_ms: i64,
}

impl Default for RelatedRules {
    fn default() -> Self {
        Self {
            refund_window_ms: 30 * 24 * 3_600_000,
        }
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
    match (orig.state, req.kind) {
        // An early reversal is answered at once and applied when the issuer answers.
        (OriginalState::Pending, TxnKind::Reversal) => {}
        (OriginalState::Pending | OriginalState::NotApproved, _) => {
            return Err(ResponseCode::INVALID_RELATED)
        }
        // A void is reversed through the void's own record (its F90 names the void), which
        // is Approved; the voided original itself takes no further related transaction.
        (OriginalState::Reversed | OriginalState::Voided, _) => {
            return Err(ResponseCode::ILLEGAL_RELATED)
        }
        _ => {}
    }
    if req.kind == TxnKind::Refund
        && (orig.refunded + req.amount > orig.amount
            || req.now_ms - orig.approved_ms > rules.refund_window_ms)
    {
        return Err(ResponseCode::ILLEGAL_RELATED);
    }
    if matches!(req.kind, TxnKind::Void | TxnKind::PreauthVoid)
        && req.settlement_date != orig.settlement_date
    {
        return Err(ResponseCode::ILLEGAL_RELATED);
    }
    if req.pan.is_some_and(|p| p != orig.pan.as_bytes()) {
        return Err(ResponseCode::INVALID_CARD);
    }
    if req.terminal.is_some_and(|t| t != orig.terminal) {
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
            TxnKind::Refund => self.refunded += amount,
            TxnKind::Reversal => self.state = OriginalState::Reversed,
            _ => {}
        }
    }

    /// The original a reversal of this record (a void) restores to approved.
    #[must_use]
    pub fn restores(&self) -> Option<TxnKey> {
        self.refers_to.filter(|_| self.kind == TxnKind::Void)
    }
}

/// Originals by transaction key. Shared by the acquirer links; one shard lock per entry.
#[derive(Debug, Default)]
pub struct OriginalIndex {
    map: DashMap<TxnKey, Original>,
}

impl OriginalIndex {
    pub fn insert(&self, key: TxnKey, original: Original) {
        self.map.insert(key, original);
    }

    /// Run `f` on the original of `key` (with the entry locked, so check-then-apply is atomic).
    pub fn with<R>(&self, key: &TxnKey, f: impl FnOnce(Option<&mut Original>) -> R) -> R {
        match self.map.get_mut(key) {
            Some(mut e) => f(Some(e.value_mut())),
            None => f(None),
        }
    }

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
        Original {
            kind,
            amount: 1_000,
            pan: PAN.into(),
            terminal: *b"TERM0001",
            state,
            refunded: 0,
            approved_ms: 0,
            settlement_date: 20261121,
            refers_to: None,
        }
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
        void.refers_to = Some(key);
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
