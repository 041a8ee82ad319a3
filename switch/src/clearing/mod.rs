//! Clearing (SPEC.md section 12): from the journal to the per-institution flow files
//! `IND{YYMMDD}01ACOM` / `ICOM` / `ICOMN`, interchange fees, installment subsidies and net
//! positions, for one settlement date.
//!
//! Sans-I/O core: [`clear_day`] takes decoded journal records and returns file contents and
//! the report; it owns the semantics (which transactions clear, what each line carries; see
//! `ledger`), the fee arithmetic (`fees`), the record layout (`layout`) and the reports
//! (`report`). [`run`] is the thin I/O shell: read the journal and the fee schedule, call
//! [`clear_day`], write the files (temp file + rename). It never touches the live switch's
//! state and never writes to the journal.
//!
//! Clearing the same date twice from the same journal gives byte-identical files: lines are
//! ordered by receipt time, then journal order, and nothing depends on the clock.

pub mod fees;
pub mod layout;
pub mod ledger;
pub mod report;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::bins::BinTable;
use crate::config::{Config, RulesSettings};
use crate::core::{TxnKey, TxnKind};
use crate::datafile::DataFileError;
use crate::journal::{JournalError, Replay};
use crate::records::SwitchRecord;

pub use fees::{FeeRule, FeeSchedule, FeeSplit};
pub use layout::{file_name, Side};
pub use ledger::{Charges, Disposition, Unmatched};
pub use report::{InstitutionReport, JournalFindings, Report, RoleTotals, TxnRef};

use ledger::Ledger;

/// Why clearing could not be done. (A transaction that does not clear is not an error: it is
/// reported.)
#[derive(Debug, thiserror::Error)]
pub enum ClearingError {
    #[error("invalid settlement date {0}: expected a calendar date YYYYMMDD")]
    BadDate(u32),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("fee schedule: {0}")]
    Fees(#[from] DataFileError),
    /// A value that does not fit its clearing record field (the value is not shown: it may
    /// be card data).
    #[error("transaction {key}: field {field} does not fit the clearing record: {reason}")]
    Field {
        field: &'static str,
        key: String,
        reason: String,
    },
    #[error("transaction {key}: arithmetic overflow computing the {what}")]
    Overflow { what: &'static str, key: String },
    /// The books do not balance: a bug, never written out.
    #[error("net positions sum to {0}, not zero; no files written")]
    Unbalanced(i128),
    #[error("clearing output {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ClearingError {
    pub(crate) fn overflow(what: &'static str, key: &TxnKey) -> ClearingError {
        ClearingError::Overflow {
            what,
            key: fmt_key(key),
        }
    }

    fn io(op: &'static str, path: &Path, source: std::io::Error) -> ClearingError {
        ClearingError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A transaction key as reports and errors show it: `F7/STAN/F32/F33` (F32/F33 as numbers).
#[must_use]
pub fn fmt_key(key: &TxnKey) -> String {
    format!(
        "{:010}/{:06}/{}/{}",
        key.transmission, key.stan, key.acquirer, key.forwarding
    )
}

/// An institution as clearing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstitutionInfo {
    /// Primary ID: names its directory and files.
    pub id: String,
    pub name: String,
    pub acquirer: bool,
    pub issuer: bool,
    /// Branch IDs its links may use (mapped to `id`).
    pub branch_ids: Vec<String>,
}

/// Everything besides the journal that clearing depends on.
#[derive(Debug, Clone)]
pub struct ClearingContext<'a> {
    /// The switch's own institution ID (it receives the switching fees).
    pub switch_id: String,
    /// Configured institutions: every acquirer gets an ACOM file and every issuer an ICOM
    /// and an ICOMN file for each date, empty if it had no traffic.
    pub institutions: Vec<InstitutionInfo>,
    /// Card type of a PAN for the fee schedule.
    pub bins: &'a BinTable,
    pub fees: &'a FeeSchedule,
    /// Installment subsidy return window.
    pub rules: RulesSettings,
}

impl<'a> ClearingContext<'a> {
    /// The context of a loaded configuration with the fee schedule read from its
    /// `[clearing] fees` file.
    #[must_use]
    pub fn from_config(cfg: &'a Config, fees: &'a FeeSchedule) -> ClearingContext<'a> {
        ClearingContext {
            switch_id: cfg.switch.id.to_string(),
            institutions: cfg
                .institutions
                .iter()
                .map(|i| InstitutionInfo {
                    id: i.id.to_string(),
                    name: i.name.clone(),
                    acquirer: i.is_acquirer(),
                    issuer: i.is_issuer(),
                    branch_ids: i.branch_ids.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            bins: &cfg.bins,
            fees,
            rules: cfg.rules,
        }
    }

    /// The primary ID of `id` (itself if it is not a configured branch ID).
    fn primary(&self, id: &str) -> String {
        self.institutions
            .iter()
            .find(|i| i.id == id || i.branch_ids.iter().any(|b| b == id))
            .map_or_else(|| id.to_string(), |i| i.id.clone())
    }

    /// The digits of an institution ID a key carries as a number (F32/F33 lose leading
    /// zeros there): the hint if it matches, else a configured ID, else the plain number.
    fn id_text(&self, number: u64, hint: &str) -> String {
        let as_number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        if as_number(hint) == Some(number) {
            return hint.to_string();
        }
        self.institutions
            .iter()
            .flat_map(|i| std::iter::once(&i.id).chain(&i.branch_ids))
            .find(|id| as_number(id) == Some(number))
            .cloned()
            .unwrap_or_else(|| number.to_string())
    }
}

/// A full PAN, for the clearing files only: `Debug` masks it.
#[derive(Clone, PartialEq, Eq)]
pub struct FullPan(String);

impl FullPan {
    /// The full PAN (for writing a clearing record; never log it).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for FullPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", iso8583::render::mask_pan(self.0.as_bytes()))
    }
}

/// One cleared transaction: a line in its acquirer's ACOM and its issuer's ICOM and ICOMN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearedLine {
    pub key: TxnKey,
    pub kind: TxnKind,
    pub settlement_date: u32,
    pub received_ms: i64,
    /// Position in the journal (tie-break of the file order after the receipt time).
    pub seq: usize,
    /// Acquirer institution (primary ID): whose ACOM file the line is in.
    pub acquirer: String,
    /// Issuer institution: whose ICOM/ICOMN files; also the receiving institution.
    pub issuer: String,
    /// F32 and F33 digits.
    pub f32: String,
    pub f33: String,
    pub pan: FullPan,
    pub amount: i64,
    /// Refunds: the original's amount; otherwise zero.
    pub partial_amount: i64,
    /// +1: the acquirer receives the amount from the issuer (purchase, reversal of a void);
    /// -1: it pays it back (void, refund, reversal of a purchase).
    pub direction: i64,
    pub mti: [u8; 4],
    pub processing_code: [u8; 6],
    pub mcc: u16,
    pub terminal: String,
    pub merchant: String,
    pub rrn: String,
    pub pos_condition: u8,
    pub auth_code: String,
    pub response_code: [u8; 2],
    pub pos_entry: u16,
    pub card_seq: u16,
    /// F90 key of a related transaction.
    pub original: Option<TxnKey>,
    /// 60.2.2, 60.2.3 (one character or a space), 60.2.5 (two digits), 60.2.8 ECI.
    pub read_capability: String,
    pub chip_condition: String,
    pub terminal_type: String,
    pub eci: String,
    /// F49 = 156 (region flag 0); otherwise 1.
    pub domestic: bool,
    /// Preauthorisation completion (its authorisation was a dual-message 0100).
    pub dual_message: bool,
    /// Installment periods (installment purchase and its related lines), else 0.
    pub periods: u8,
    /// What the line carries (fees, subsidy), signed from the acquirer's side.
    pub charges: Charges,
    /// `other info`: the transaction type.
    pub kind_label: &'static str,
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub institution: String,
    pub name: String,
    pub contents: Vec<u8>,
}

/// The result of clearing one date.
#[derive(Debug, Clone)]
pub struct ClearingOutput {
    pub date: u32,
    /// Lines in file order.
    pub lines: Vec<ClearedLine>,
    /// Flow files in institution order (ACOM, then ICOM, ICOMN).
    pub files: Vec<OutputFile>,
    pub report: Report,
}

fn valid_date(date: u32) -> bool {
    chrono::NaiveDate::from_ymd_opt(
        i32::try_from(date / 10_000).unwrap_or(0),
        date / 100 % 100,
        date % 100,
    )
    .is_some()
        && (1000_0101..=9999_1231).contains(&date)
}

fn label(kind: TxnKind) -> &'static str {
    match kind {
        TxnKind::Purchase => "PURCHASE",
        TxnKind::InstallmentPurchase => "INSTALLMENT",
        TxnKind::CashWithdrawal => "CASH",
        TxnKind::PreauthCompletion => "COMPLETION",
        TxnKind::Void => "VOID",
        TxnKind::Refund => "REFUND",
        TxnKind::Reversal => "REVERSAL",
        _ => "OTHER",
    }
}

/// Clears settlement date `date` (`YYYYMMDD`) from the whole journal's records in journal
/// order. Pure: no I/O, no clock.
pub fn clear_day(
    records: &[SwitchRecord],
    date: u32,
    ctx: &ClearingContext<'_>,
) -> Result<ClearingOutput, ClearingError> {
    if !valid_date(date) {
        return Err(ClearingError::BadDate(date));
    }
    let ledger = Ledger::build(records, ctx)?;
    let mut report = Report {
        date,
        switch_id: ctx.switch_id.clone(),
        ..Report::default()
    };
    report.duplicate_requests = ledger.duplicate_requests;
    report.orphan_outcomes = ledger.orphan_outcomes;

    let mut lines = Vec::new();
    for (seq, t) in ledger.txns.iter().enumerate() {
        let req = t.req;
        if req.settlement_date != date {
            continue;
        }
        report.requests += 1;
        let acquirer = if req.link_institution.is_empty() {
            ctx.id_text(req.key.acquirer, "")
        } else {
            ctx.primary(&req.link_institution)
        };
        let txn_ref = || TxnRef {
            key: fmt_key(&req.key),
            kind: req.kind.label(),
            amount: req.amount,
            acquirer: acquirer.clone(),
            issuer: t.issuer.clone().unwrap_or_default(),
        };
        match t.disposition {
            Disposition::NotClearedKind => {
                *report
                    .not_cleared_kinds
                    .entry(req.kind.label())
                    .or_default() += 1;
                continue;
            }
            Disposition::Pending => {
                report.pending.push(txn_ref());
                continue;
            }
            Disposition::Declined => {
                report.declined += 1;
                continue;
            }
            Disposition::SwitchReversed => {
                report.switch_reversed.push(txn_ref());
                continue;
            }
            Disposition::Unmatched(u) => {
                report.unmatched.push((txn_ref(), u.label()));
                continue;
            }
            Disposition::Cleared => {}
        }
        if let Some(note) = t.note {
            report.remarks.push((txn_ref(), note));
        }
        if t.priced == Some(false) {
            report.unpriced += 1;
        }
        lines.push(line_of(&ledger, t, seq, acquirer, ctx));
    }
    lines.sort_by_key(|l| (l.received_ms, l.seq));
    report.cleared = lines.len() as u64;

    // Every configured institution gets its files; so does one seen only in the journal.
    let mut who: BTreeMap<String, (String, bool, bool)> = BTreeMap::new();
    for i in &ctx.institutions {
        let e = who
            .entry(i.id.clone())
            .or_insert((i.name.clone(), false, false));
        e.1 |= i.acquirer;
        e.2 |= i.issuer;
    }
    for l in &lines {
        who.entry(l.acquirer.clone())
            .or_insert(("(not configured)".into(), false, false))
            .1 = true;
        who.entry(l.issuer.clone())
            .or_insert(("(not configured)".into(), false, false))
            .2 = true;
    }
    let mut files = Vec::new();
    for (id, (_, acq, iss)) in &who {
        let mut push = |name: String, contents: Vec<u8>| {
            report.files.push(format!("{id}/{name}"));
            files.push(OutputFile {
                institution: id.clone(),
                name,
                contents,
            });
        };
        if *acq {
            let mine = lines.iter().filter(|l| l.acquirer == *id);
            let body = layout::file(mine, |l| layout::com_record(l, Side::Acquirer))?;
            push(file_name(date, "ACOM"), body);
        }
        if *iss {
            let body = layout::file(lines.iter().filter(|l| l.issuer == *id), |l| {
                layout::com_record(l, Side::Issuer)
            })?;
            push(file_name(date, "ICOM"), body);
            let body = layout::file(
                lines.iter().filter(|l| l.issuer == *id),
                layout::comn_record,
            )?;
            push(file_name(date, "ICOMN"), body);
        }
    }
    let institutions: Vec<(String, String, bool, bool)> = who
        .into_iter()
        .map(|(id, (name, a, i))| (id, name, a, i))
        .collect();
    report.positions(&lines, &institutions);
    // The books must balance exactly: every amount and fee a line moves is paid by one
    // party and received by another.
    let sum = report.net_sum();
    if sum != 0 {
        return Err(ClearingError::Unbalanced(sum));
    }
    Ok(ClearingOutput {
        date,
        lines,
        files,
        report,
    })
}

/// Builds the line of cleared transaction `i` (fields a related record lacks come from its
/// original).
fn line_of(
    ledger: &Ledger<'_>,
    t: &ledger::Txn<'_>,
    i: usize,
    acquirer: String,
    ctx: &ClearingContext<'_>,
) -> ClearedLine {
    let txns = &ledger.txns;
    let req = t.req;
    // This transaction, then its original, the original's original...
    let chain =
        || std::iter::successors(Some(t), |x| x.target.and_then(|o| txns.get(o))).map(|x| x.req);
    let text = |f: fn(&crate::records::RequestRecord) -> &str| -> String {
        chain()
            .map(f)
            .find(|s| !s.is_empty())
            .unwrap_or_default()
            .to_string()
    };
    let root = t.root.and_then(|o| txns.get(o));
    let f60 = text(|r| &r.f60);
    let f60 = iso8583::subfields::F60(f60.as_bytes());
    let one = |b: Option<u8>| {
        b.filter(|c| (b' '..=b'~').contains(c))
            .map_or_else(|| " ".to_string(), |c| char::from(c).to_string())
    };
    let terminal_type = f60
        .terminal_type()
        .filter(|v| v.iter().all(u8::is_ascii_digit))
        .map_or_else(
            || "00".to_string(),
            |v| String::from_utf8_lossy(v).into_owned(),
        );
    let eci = f60
        .eci()
        .filter(|v| v.iter().all(|c| (b' '..=b'~').contains(c)))
        .map_or_else(String::new, |v| String::from_utf8_lossy(v).into_owned());
    let mcc = chain().map(|r| r.mcc).find(|&m| m != 0).unwrap_or(0);
    let installment = chain().find_map(|r| r.installment);
    let currency = text(|r| &r.currency);
    ClearedLine {
        key: req.key,
        kind: req.kind,
        settlement_date: req.settlement_date,
        received_ms: req.received_ms,
        seq: i,
        f32: ctx.id_text(req.key.acquirer, &req.link_institution),
        f33: ctx.id_text(req.key.forwarding, &req.link_institution),
        acquirer,
        issuer: t.issuer.clone().unwrap_or_default(),
        pan: FullPan(text(|r| &r.pan)),
        amount: req.amount,
        partial_amount: match (req.kind, root) {
            (TxnKind::Refund, Some(o)) => o.req.amount,
            _ => 0,
        },
        direction: t.direction,
        mti: req.mti,
        processing_code: req.processing_code,
        mcc,
        terminal: text(|r| &r.terminal),
        merchant: text(|r| &r.merchant),
        rrn: req.rrn.to_string(),
        pos_condition: req.pos_condition,
        auth_code: t
            .outcome
            .and_then(|o| o.auth_code)
            .map(|a| a.to_string())
            .unwrap_or_default(),
        response_code: t.outcome.map_or(*b"00", |o| o.code),
        pos_entry: req.pos_entry,
        card_seq: req.card_seq,
        original: req.original,
        read_capability: one(f60.read_capability()),
        chip_condition: one(f60.chip_condition()),
        terminal_type,
        eci,
        domestic: currency.is_empty() || currency == "156",
        dual_message: chain().any(|r| r.kind == TxnKind::PreauthCompletion),
        periods: installment.map_or(0, |t| t.periods),
        charges: t.carried,
        kind_label: label(req.kind),
    }
}

/// Decodes a journal replay into records (journal order) and what was found on the way.
#[must_use]
pub fn decode_journal(replay: &Replay) -> (Vec<SwitchRecord>, JournalFindings) {
    let mut findings = JournalFindings {
        segments: replay.summary.segments,
        records: replay.summary.records,
        torn_records: replay.summary.torn_records,
        torn_bytes: replay.summary.torn_bytes,
        ..JournalFindings::default()
    };
    let mut out = Vec::with_capacity(replay.records.len());
    for r in &replay.records {
        match SwitchRecord::decode(r.kind, &r.payload) {
            Ok(Some(rec)) => out.push(rec),
            Ok(None) => findings.unknown_kinds += 1,
            // Written by an incompatible version: skipped like the switch's own replay does,
            // and reported (a transaction of the cleared date may be incomplete).
            Err(_) => {
                findings.undecodable += 1;
                if findings.undecodable_seqs.len() < 10 {
                    findings.undecodable_seqs.push(r.seq);
                }
            }
        }
    }
    (out, findings)
}

/// What [`run`] did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub date: u32,
    /// `<output dir>/<YYYYMMDD>`.
    pub dir: PathBuf,
    /// Every file written (flow files, then summaries).
    pub files: Vec<PathBuf>,
    pub report: Report,
}

/// Clears `date` from the configured journal and writes the files under
/// `<out or [clearing] output_dir>/<YYYYMMDD>/<institution>/`, plus `summary.txt` per
/// institution and `summary.txt` / `summary.json` for the date. Files are written to a
/// temporary name, synced and renamed, so a reader never sees half a file.
pub fn run(cfg: &Config, date: u32, out: Option<&Path>) -> Result<RunSummary, ClearingError> {
    if !valid_date(date) {
        return Err(ClearingError::BadDate(date));
    }
    let fees = match &cfg.clearing.fees {
        Some(path) => FeeSchedule::load(path)?,
        None => FeeSchedule::empty(),
    };
    let replay = crate::journal::read_all(&cfg.journal.dir)?;
    let (records, findings) = decode_journal(&replay);
    drop(replay);
    let ctx = ClearingContext::from_config(cfg, &fees);
    let mut output = clear_day(&records, date, &ctx)?;
    output.report.journal = Some(findings);
    let base = out.unwrap_or(&cfg.clearing.output_dir);
    let dir = base.join(date.to_string());
    let files = write_output(&output, &dir)?;
    tracing::info!(
        date,
        lines = output.report.cleared,
        pending = output.report.pending.len(),
        torn = output.report.journal.as_ref().map_or(0, |j| j.torn_records),
        dir = %dir.display(),
        "clearing written"
    );
    Ok(RunSummary {
        date,
        dir,
        files,
        report: output.report,
    })
}

/// Writes an output under `dir` (the date's directory): the flow files, each institution's
/// `summary.txt`, and the overall `summary.txt` and `summary.json`.
pub fn write_output(output: &ClearingOutput, dir: &Path) -> Result<Vec<PathBuf>, ClearingError> {
    let mut written = Vec::new();
    for f in &output.files {
        let path = dir.join(&f.institution).join(&f.name);
        write_atomic(&path, &f.contents)?;
        written.push(path);
    }
    for inst in &output.report.institutions {
        if let Some(text) = output.report.institution_text(&inst.id) {
            let path = dir.join(&inst.id).join("summary.txt");
            write_atomic(&path, text.as_bytes())?;
            written.push(path);
        }
    }
    let path = dir.join("summary.txt");
    write_atomic(&path, output.report.text().as_bytes())?;
    written.push(path);
    let path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(&output.report.json()).unwrap_or_default() + "\n";
    write_atomic(&path, json.as_bytes())?;
    written.push(path);
    Ok(written)
}

/// Temp file in the same directory, fsync, rename: a reader sees the old file or the new
/// one, never a partial one.
fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ClearingError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ClearingError::io("create directory", dir, e))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(|e| ClearingError::io("create", &tmp, e))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| ClearingError::io("write", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| ClearingError::io("rename", path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{OutcomeRecord, RequestRecord, Responder};

    const DAY1: u32 = 20261121;
    const DAY2: u32 = 20261122;

    fn schedule() -> FeeSchedule {
        // 1 % of everything, split 70/10/20: an amount of 1000 pays 10 = 7 + 1 + 2.
        FeeSchedule::parse(
            b"group,mcc,card_type,rate,cap,issuer_share,switch_share,acquirer_share\n\
              all,*,*,0.01,,0.7,0.1,0.2\n",
            Path::new("fees.csv"),
        )
        .unwrap()
    }

    fn ctx<'a>(bins: &'a BinTable, fees: &'a FeeSchedule) -> ClearingContext<'a> {
        ClearingContext {
            switch_id: "00010000".into(),
            institutions: vec![],
            bins,
            fees,
            rules: RulesSettings::default(),
        }
    }

    use crate::records::fixed;

    struct J(Vec<SwitchRecord>);

    impl J {
        /// Request `stan` on `date` of `kind` naming `original` (a STAN), answered `code`.
        fn txn(
            &mut self,
            date: u32,
            stan: u32,
            kind: TxnKind,
            amount: i64,
            original: Option<u32>,
            code: &[u8; 2],
        ) {
            let key = |s: u32| TxnKey {
                transmission: 1_121_000_000 + u64::from(s),
                stan: s,
                acquirer: 1_030_000,
                forwarding: 1_030_000,
            };
            self.0.push(SwitchRecord::Request(RequestRecord {
                key: key(stan),
                kind,
                mti: *b"0200",
                processing_code: *b"000000",
                pos_condition: 0,
                amount,
                pan: fixed("6222021234567890"),
                terminal: fixed("TERM0001"),
                merchant: fixed("MERCHANT0000001"),
                mcc: 5411,
                rrn: fixed("000000000001"),
                currency: fixed("156"),
                link_institution: fixed("01030000"),
                issuer: Some(fixed("03010000")),
                issuer_stan: None,
                settlement_date: date,
                received_ms: i64::from(stan) * 1000,
                original: original.map(key),
                pos_entry: 51,
                card_seq: 0,
                f60: fixed(""),
                installment: None,
            }));
            self.0.push(SwitchRecord::Outcome(OutcomeRecord {
                key: key(stan),
                settlement_date: date,
                code: *code,
                auth_code: None,
                responder: Responder::Issuer,
                answered_ms: i64::from(stan) * 1000 + 1,
                reversal_reason: None,
                installment_fee: None,
            }));
        }
    }

    /// (stan, switch fee carried, signed from the acquirer's side) of `date`'s lines.
    fn switch_fees(j: &J, date: u32) -> Vec<(u32, i64)> {
        let (bins, fees) = (BinTable::empty(), schedule());
        let out = clear_day(&j.0, date, &ctx(&bins, &fees)).unwrap();
        assert_eq!(out.report.net_sum(), 0);
        out.lines
            .iter()
            .map(|l| (l.key.stan, l.charges.fee.switch_fee))
            .collect()
    }

    #[test]
    fn reversed_refund_gives_its_amount_back_to_the_original() {
        use TxnKind::*;
        let mut j = J(vec![]);
        j.txn(DAY1, 1, Purchase, 1_000, None, b"00"); // fee 10 = 7 + 1 + 2
        j.txn(DAY1, 2, Refund, 500, Some(1), b"00"); // returns 5 = 4 (3.5) + 1 (0.5) + 0
        j.txn(DAY1, 3, Reversal, 500, Some(2), b"00"); // cancels the refund the same day
        j.txn(DAY2, 4, Refund, 1_000, Some(1), b"00"); // the whole amount is refundable again
        assert_eq!(switch_fees(&j, DAY1), vec![(1, 1), (2, 0), (3, 0)]);
        assert_eq!(switch_fees(&j, DAY2), vec![(4, -1)]);
    }

    #[test]
    fn cancellation_on_a_later_day_carries_the_change() {
        use TxnKind::*;
        let mut j = J(vec![]);
        j.txn(DAY1, 1, Purchase, 1_000, None, b"00");
        j.txn(DAY1, 2, Void, 1_000, Some(1), b"00");
        j.txn(DAY2, 3, Reversal, 1_000, Some(2), b"00"); // un-voids purchase 1
        j.txn(DAY1, 4, Purchase, 2_000, None, b"00");
        j.txn(DAY2, 5, Reversal, 2_000, Some(4), b"00");
        assert_eq!(switch_fees(&j, DAY1), vec![(1, 0), (2, 0), (4, 2)]);
        assert_eq!(switch_fees(&j, DAY2), vec![(3, 1), (5, -2)]);
        let (bins, fees) = (BinTable::empty(), schedule());
        let out = clear_day(&j.0, DAY2, &ctx(&bins, &fees)).unwrap();
        assert_eq!(
            out.lines.iter().map(|l| l.direction).collect::<Vec<_>>(),
            vec![1, -1],
            "a reversal of a void moves the amount like the purchase"
        );
    }

    #[test]
    fn odd_related_transactions_are_reported_not_cleared() {
        use TxnKind::*;
        let mut j = J(vec![]);
        j.txn(DAY1, 1, Purchase, 1_000, None, b"00");
        j.txn(DAY1, 2, Void, 1_000, Some(1), b"00");
        j.txn(DAY1, 3, Void, 1_000, Some(1), b"00"); // already voided
        j.txn(DAY1, 4, Reversal, 1_000, Some(99), b"00"); // original unknown
        j.txn(DAY1, 5, Refund, 300, Some(98), b"00"); // refund of an unknown original
        j.txn(DAY1, 6, Void, 300, Some(5), b"00"); // void of a refund
                                                   // A repeated request record (same key and date) is ignored, its outcome too.
        j.txn(DAY1, 1, Purchase, 1_000, None, b"05");
        let (bins, fees) = (BinTable::empty(), schedule());
        let out = clear_day(&j.0, DAY1, &ctx(&bins, &fees)).unwrap();
        let r = &out.report;
        let unmatched: Vec<(u32, &str)> = r
            .unmatched
            .iter()
            .map(|(t, why)| (t.key[11..17].parse().unwrap(), *why))
            .collect();
        assert_eq!(
            unmatched,
            vec![
                (3, Unmatched::AlreadyCancelled.label()),
                (4, Unmatched::OriginalNotFound.label()),
                (6, Unmatched::WrongOriginalKind.label()),
            ]
        );
        assert_eq!(r.remarks.len(), 1);
        assert_eq!(r.duplicate_requests, 1);
        assert_eq!(
            out.lines.iter().map(|l| l.key.stan).collect::<Vec<_>>(),
            vec![1, 2, 5]
        );
        assert_eq!(
            out.lines[2].charges,
            Charges::default(),
            "no return without original"
        );
    }

    #[test]
    fn full_pan_is_masked_in_debug_output() {
        let p = FullPan("6222021234567890".into());
        assert_eq!(format!("{p:?}"), "622202******7890");
        assert_eq!(p.expose(), "6222021234567890");
    }
}
