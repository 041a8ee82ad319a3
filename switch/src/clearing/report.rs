//! Clearing summary reports: per institution (counts, amounts, fees receivable/payable,
//! switching fees, installment subsidy, net) and overall (what was not cleared and why, the
//! journal's condition), as text and JSON. No PAN appears in any report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::layout::{side_charges, Side};
use super::ClearedLine;

/// One transaction named in a report (key fields only: no card data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRef {
    /// `F7/STAN/F32/F33`.
    pub key: String,
    pub kind: &'static str,
    pub amount: i64,
    pub acquirer: String,
    pub issuer: String,
}

/// What the journal read looked like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalFindings {
    pub segments: usize,
    pub records: u64,
    /// 1 if the last segment ended in a torn record (ignored), else 0.
    pub torn_records: u64,
    pub torn_bytes: u64,
    /// Records of kinds this version does not know (written by a newer version), skipped.
    pub unknown_kinds: u64,
    /// Records of known kinds that do not decode (an incompatible version), skipped.
    pub undecodable: u64,
    /// Sequence numbers of the first few of them.
    pub undecodable_seqs: Vec<u64>,
}

/// Totals of one institution in one role, in minor units. Signed values: positive =
/// received by the institution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleTotals {
    pub lines: u64,
    /// Transaction amounts received (acquirer: purchases; issuer: refunds, voids...).
    pub amount_in: i128,
    /// Transaction amounts paid.
    pub amount_out: i128,
    pub fees_receivable: i128,
    pub fees_payable: i128,
    /// Switching fees, signed (acquirers pay them).
    pub switching_fees: i128,
    /// Installment subsidy fees, signed (acquirer pays, issuer receives).
    pub subsidy: i128,
    /// Acquirer only, informational: merchant fees charged to its merchants (signed,
    /// positive = charged), of which it keeps `acquirer_share`.
    pub merchant_fees: i128,
    pub acquirer_share: i128,
    pub net: i128,
}

impl RoleTotals {
    fn add(&mut self, line: &ClearedLine, side: Side) {
        let (receivable, payable, switching, subsidy) = side_charges(&line.charges, side);
        let amount = i128::from(line.amount)
            * i128::from(match side {
                Side::Acquirer => line.direction,
                Side::Issuer => -line.direction,
            });
        self.lines += 1;
        if amount >= 0 {
            self.amount_in += amount;
        } else {
            self.amount_out -= amount;
        }
        self.fees_receivable += i128::from(receivable);
        self.fees_payable += i128::from(payable);
        self.switching_fees += i128::from(switching);
        self.subsidy += i128::from(subsidy);
        if side == Side::Acquirer {
            self.merchant_fees += i128::from(line.charges.fee.merchant_fee);
            self.acquirer_share += i128::from(line.charges.fee.acquirer_fee);
        }
        self.net += amount + i128::from(receivable) - i128::from(payable)
            + i128::from(switching)
            + i128::from(subsidy);
    }

    fn json(&self) -> Value {
        json!({
            "lines": self.lines,
            "amount_in": self.amount_in.to_string(),
            "amount_out": self.amount_out.to_string(),
            "fees_receivable": self.fees_receivable.to_string(),
            "fees_payable": self.fees_payable.to_string(),
            "switching_fees": self.switching_fees.to_string(),
            "subsidy": self.subsidy.to_string(),
            "merchant_fees": self.merchant_fees.to_string(),
            "acquirer_share": self.acquirer_share.to_string(),
            "net": self.net.to_string(),
        })
    }
}

/// One institution's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstitutionReport {
    pub id: String,
    pub name: String,
    pub acquirer: Option<RoleTotals>,
    pub issuer: Option<RoleTotals>,
    /// The switch itself: switching fees received.
    pub switch: Option<i128>,
    pub net: i128,
}

/// The overall report of one settlement date.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub date: u32,
    pub switch_id: String,
    /// Request records dated this settlement date.
    pub requests: u64,
    /// Lines cleared (each in one acquirer file and one issuer file).
    pub cleared: u64,
    pub declined: u64,
    /// Kinds that are never cleared, by kind.
    pub not_cleared_kinds: BTreeMap<&'static str, u64>,
    /// No final answer in the journal (in flight at cut-over or a crash).
    pub pending: Vec<TxnRef>,
    /// Approved, then reversed by the switch (4363); not cleared.
    pub switch_reversed: Vec<TxnRef>,
    /// Approved related transactions with nothing to act on; not cleared.
    pub unmatched: Vec<(TxnRef, &'static str)>,
    /// Cleared with a remark (e.g. a refund whose original is not in the journal).
    pub remarks: Vec<(TxnRef, &'static str)>,
    /// Cleared originals no fee rule matched (fee zero).
    pub unpriced: u64,
    pub institutions: Vec<InstitutionReport>,
    /// Request records repeating a key + settlement date (the first one is used).
    pub duplicate_requests: u64,
    /// Outcome records naming no request.
    pub orphan_outcomes: u64,
    /// The journal's condition, when clearing read it (`None` when records were given).
    pub journal: Option<JournalFindings>,
    /// Files produced, relative to the date's directory (`<institution>/<name>`).
    pub files: Vec<String>,
}

impl Report {
    /// Builds the per-institution positions from the date's lines. `institutions`:
    /// (id, name, is acquirer, is issuer) of everyone who gets files.
    pub(crate) fn positions(
        &mut self,
        lines: &[ClearedLine],
        institutions: &[(String, String, bool, bool)],
    ) {
        let mut out = Vec::new();
        let mut switch_fees = 0i128;
        for (id, name, acq, iss) in institutions {
            let mut r = InstitutionReport {
                id: id.clone(),
                name: name.clone(),
                acquirer: acq.then(RoleTotals::default),
                issuer: iss.then(RoleTotals::default),
                switch: None,
                net: 0,
            };
            for line in lines {
                if let (Some(t), true) = (r.acquirer.as_mut(), line.acquirer == *id) {
                    t.add(line, Side::Acquirer);
                }
                if let (Some(t), true) = (r.issuer.as_mut(), line.issuer == *id) {
                    t.add(line, Side::Issuer);
                }
            }
            r.net = r.acquirer.map_or(0, |t| t.net) + r.issuer.map_or(0, |t| t.net);
            out.push(r);
        }
        for line in lines {
            switch_fees += i128::from(line.charges.fee.switch_fee);
        }
        out.push(InstitutionReport {
            id: self.switch_id.clone(),
            name: "switch".into(),
            acquirer: None,
            issuer: None,
            switch: Some(switch_fees),
            net: switch_fees,
        });
        self.institutions = out;
    }

    /// Sum of all net positions (zero when the books balance).
    #[must_use]
    pub fn net_sum(&self) -> i128 {
        self.institutions.iter().map(|i| i.net).sum()
    }

    /// The overall report as text.
    #[must_use]
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cardswitch clearing report: settlement date {}, batch 01, switch {}",
            self.date, self.switch_id
        );
        let _ = writeln!(
            s,
            "amounts in minor units; signed values + = received by the institution"
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "requests dated {}: {}", self.date, self.requests);
        let _ = writeln!(s, "  cleared lines          {}", self.cleared);
        let _ = writeln!(s, "  declined               {}", self.declined);
        let _ = writeln!(s, "  pending (no answer)    {}", self.pending.len());
        let _ = writeln!(s, "  reversed by the switch {}", self.switch_reversed.len());
        let _ = writeln!(s, "  related, no effect     {}", self.unmatched.len());
        let kinds: Vec<String> = self
            .not_cleared_kinds
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "  kinds not cleared      {}",
            if kinds.is_empty() {
                "0".to_string()
            } else {
                kinds.join(", ")
            }
        );
        let _ = writeln!(s, "  unpriced (no fee rule) {}", self.unpriced);
        let _ = writeln!(s);
        s.push_str(&positions_table(&self.institutions));
        let _ = writeln!(s, "sum of net positions: {}", self.net_sum());
        let lists: [(&str, Vec<(&TxnRef, &str)>); 4] = [
            (
                "pending at cut-over (no final answer in the journal; not cleared)",
                self.pending.iter().map(|t| (t, "")).collect(),
            ),
            (
                "approved but reversed by the switch (4363; not cleared)",
                self.switch_reversed.iter().map(|t| (t, "")).collect(),
            ),
            (
                "approved related transactions with no effect (not cleared)",
                self.unmatched.iter().map(|(t, r)| (t, *r)).collect(),
            ),
            (
                "cleared with remarks",
                self.remarks.iter().map(|(t, r)| (t, *r)).collect(),
            ),
        ];
        for (title, list) in lists {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(s);
            let _ = writeln!(s, "{title}: {}", list.len());
            for (t, why) in list {
                let _ = write!(
                    s,
                    "  {} {:<11} amount {:>12} acquirer {} issuer {}",
                    t.key,
                    t.kind,
                    t.amount,
                    t.acquirer,
                    if t.issuer.is_empty() { "-" } else { &t.issuer }
                );
                if !why.is_empty() {
                    let _ = write!(s, ": {why}");
                }
                let _ = writeln!(s);
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "duplicate requests {}; outcomes without request {}",
            self.duplicate_requests, self.orphan_outcomes
        );
        if let Some(j) = &self.journal {
            let _ = writeln!(
                s,
                "journal: {} records in {} segments; torn tail: {} record(s), {} byte(s) \
                 ignored; unknown record kinds {}",
                j.records, j.segments, j.torn_records, j.torn_bytes, j.unknown_kinds
            );
            if j.undecodable > 0 {
                let _ = writeln!(
                    s,
                    "WARNING: {} journal record(s) could not be decoded (written by an \
                     incompatible version) and were skipped; first sequence numbers: {:?}",
                    j.undecodable, j.undecodable_seqs
                );
            }
            if j.torn_records > 0 {
                let _ = writeln!(
                    s,
                    "WARNING: the journal ends in a torn record; a transaction whose last \
                     record was lost shows as pending or is missing from this clearing"
                );
            }
        }
        if !self.files.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "files:");
            for f in &self.files {
                let _ = writeln!(s, "  {f}");
            }
        }
        s
    }

    /// One institution's summary as text (`None` if it is not in the report).
    #[must_use]
    pub fn institution_text(&self, id: &str) -> Option<String> {
        let inst = self.institutions.iter().find(|i| i.id == id)?;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cardswitch clearing summary: settlement date {}, batch 01, institution {} ({})",
            self.date, inst.id, inst.name
        );
        let _ = writeln!(
            s,
            "amounts in minor units; signed values + = received by the institution"
        );
        let _ = writeln!(s);
        s.push_str(&positions_table(std::slice::from_ref(inst)));
        if let Some(a) = inst.acquirer {
            let _ = writeln!(
                s,
                "merchant fees charged (informational): {}, of which kept as acquirer share: {}",
                a.merchant_fees, a.acquirer_share
            );
        }
        let mine = |t: &TxnRef| t.acquirer == id || t.issuer == id;
        let pending: Vec<&TxnRef> = self.pending.iter().filter(|t| mine(t)).collect();
        if !pending.is_empty() {
            let _ = writeln!(s, "pending at cut-over (not cleared): {}", pending.len());
            for t in pending {
                let _ = writeln!(s, "  {} {} amount {}", t.key, t.kind, t.amount);
            }
        }
        Some(s)
    }

    /// The overall report as JSON.
    #[must_use]
    pub fn json(&self) -> Value {
        let refs = |v: &[TxnRef]| -> Vec<Value> { v.iter().map(txn_json).collect() };
        let with_reason = |v: &[(TxnRef, &'static str)]| -> Vec<Value> {
            v.iter()
                .map(|(t, r)| {
                    let mut j = txn_json(t);
                    if let Some(o) = j.as_object_mut() {
                        o.insert("reason".into(), json!(r));
                    }
                    j
                })
                .collect()
        };
        json!({
            "settlement_date": self.date,
            "batch": "01",
            "switch": self.switch_id,
            "requests": self.requests,
            "cleared_lines": self.cleared,
            "declined": self.declined,
            "not_cleared_kinds": self.not_cleared_kinds,
            "unpriced": self.unpriced,
            "pending": refs(&self.pending),
            "switch_reversed": refs(&self.switch_reversed),
            "unmatched": with_reason(&self.unmatched),
            "remarks": with_reason(&self.remarks),
            "institutions": self.institutions.iter().map(|i| json!({
                "id": i.id,
                "name": i.name,
                "acquirer": i.acquirer.map(|t| t.json()),
                "issuer": i.issuer.map(|t| t.json()),
                "switching_fees_received": i.switch.map(|v| v.to_string()),
                "net": i.net.to_string(),
            })).collect::<Vec<_>>(),
            "net_sum": self.net_sum().to_string(),
            "duplicate_requests": self.duplicate_requests,
            "orphan_outcomes": self.orphan_outcomes,
            "journal": self.journal.as_ref().map(|j| json!({
                "segments": j.segments,
                "records": j.records,
                "torn_records": j.torn_records,
                "torn_bytes": j.torn_bytes,
                "unknown_kinds": j.unknown_kinds,
                "undecodable": j.undecodable,
                "undecodable_seqs": j.undecodable_seqs,
            })),
            "files": self.files,
        })
    }
}

fn txn_json(t: &TxnRef) -> Value {
    json!({
        "key": t.key,
        "kind": t.kind,
        "amount": t.amount,
        "acquirer": t.acquirer,
        "issuer": t.issuer,
    })
}

fn positions_table(institutions: &[InstitutionReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<11} {:<24} {:<8} {:>6} {:>14} {:>14} {:>10} {:>10} {:>10} {:>10} {:>15}",
        "institution",
        "name",
        "role",
        "lines",
        "amount in",
        "amount out",
        "fees recv",
        "fees pay",
        "switching",
        "subsidy",
        "net"
    );
    for i in institutions {
        let name: String = i.name.chars().take(24).collect();
        let mut row = |role: &str, t: &RoleTotals| {
            let _ = writeln!(
                s,
                "{:<11} {:<24} {:<8} {:>6} {:>14} {:>14} {:>10} {:>10} {:>10} {:>10} {:>15}",
                i.id,
                name,
                role,
                t.lines,
                t.amount_in,
                t.amount_out,
                t.fees_receivable,
                t.fees_payable,
                t.switching_fees,
                t.subsidy,
                t.net
            );
        };
        if let Some(t) = &i.acquirer {
            row("acquirer", t);
        }
        if let Some(t) = &i.issuer {
            row("issuer", t);
        }
        if let Some(fees) = i.switch {
            let t = RoleTotals {
                switching_fees: fees,
                net: fees,
                ..RoleTotals::default()
            };
            row("switch", &t);
        }
        if i.acquirer.is_some() && i.issuer.is_some() {
            let _ = writeln!(s, "{:<11} {:<24} {:<8} {:>116}", i.id, name, "net", i.net);
        }
    }
    s
}
