#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Clearing (SPEC.md section 12): a constructed day checked byte for byte against golden
//! files, determinism, properties over random days, and a journal with a torn tail.
//!
//! Regenerate the golden files with `UPDATE_GOLDEN=1 cargo test -p switch --test clearing`
//! (then review the diff: the values were checked by hand once, see `golden_day`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use switch::bins::{parse_csv, BinTable};
use switch::clearing::layout::{field_range, COMN_LEN, COM_LEN};
use switch::clearing::{
    clear_day, write_output, ClearingContext, ClearingOutput, FeeSchedule, InstitutionInfo,
};
use switch::config::RulesSettings;
use switch::core::{TxnKey, TxnKind};
use switch::records::{
    fixed, AdviceRecord, InstallmentTerms, OutcomeRecord, RequestRecord, Responder, SwitchRecord,
};

const D: u32 = 20261121;
const ACQ: &str = "01030000";
const ACQ2: &str = "01040000";
const ISS: &str = "03010000";
const ISS2: &str = "03020000";

const DEBIT: &str = "6222021234567890";
const CREDIT: &str = "6258001111111111";
const ISS2_DEBIT: &str = "6217001234567890";
const NO_BIN: &str = "9999991234567890";

const BINS: &str = "\
prefix,issuer,card_type,installment
622202,03010000,debit,N
625800,03010000,credit,Y
621700,03020000,debit,N
";

const FEES: &str = "\
group,mcc,card_type,rate,cap,issuer_share,switch_share,acquirer_share
grocery,5411,*,0.0038,,0.7,0.1,0.2
general debit,*,debit,0.0055,2000,0.7,0.1,0.2
general credit,*,credit,0.006,,0.7,0.1,0.2
";

struct Fixture {
    bins: BinTable,
    fees: FeeSchedule,
}

impl Fixture {
    fn new() -> Fixture {
        let file = Path::new("bins.csv");
        let rows = parse_csv(BINS.as_bytes(), file).unwrap();
        Fixture {
            bins: BinTable::from_rows(&rows, file).unwrap(),
            fees: FeeSchedule::parse(FEES.as_bytes(), Path::new("fees.csv")).unwrap(),
        }
    }

    fn ctx(&self) -> ClearingContext<'_> {
        let inst = |id: &str, name: &str, acquirer: bool, issuer: bool| InstitutionInfo {
            id: id.into(),
            name: name.into(),
            acquirer,
            issuer,
            branch_ids: vec![],
        };
        ClearingContext {
            switch_id: "00010000".into(),
            institutions: vec![
                inst(ACQ, "Demo Acquirer Bank", true, false),
                inst(ACQ2, "Second Acquirer Bank", true, false),
                inst(ISS, "Demo Issuer Bank", false, true),
                inst(ISS2, "Demo Second Issuer Bank", false, true),
            ],
            bins: &self.bins,
            fees: &self.fees,
            rules: RulesSettings::default(),
        }
    }
}

/// Epoch milliseconds of `date` at `secs` past midnight UTC.
fn ms(date: u32, secs: i64) -> i64 {
    let d = chrono::NaiveDate::from_ymd_opt((date / 10_000) as i32, date / 100 % 100, date % 100)
        .unwrap();
    d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis() + secs * 1000
}

fn key_for(date: u32, stan: u32, acquirer: &str) -> TxnKey {
    let acq: u64 = acquirer.parse().unwrap();
    TxnKey {
        // F7 MMDDhhmmss: 10:00:00 + STAN seconds.
        transmission: u64::from(date % 10_000) * 1_000_000 + 100_000 + u64::from(stan),
        stan,
        acquirer: acq,
        forwarding: acq,
    }
}

/// A journal being built: requests, answers, advices in journal order.
struct Day {
    records: Vec<SwitchRecord>,
    reqs: HashMap<u32, RequestRecord>,
}

impl Day {
    fn new() -> Day {
        Day {
            records: Vec::new(),
            reqs: HashMap::new(),
        }
    }

    /// A request with the usual fields for its kind; `original` is the STAN of an earlier
    /// request (whose key, terminal and card it takes).
    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        date: u32,
        stan: u32,
        kind: TxnKind,
        amount: i64,
        pan: &str,
        mcc: u16,
        original: Option<u32>,
        acquirer: &str,
        issuer: &str,
    ) -> TxnKey {
        let orig = original.map(|s| self.reqs[&s].clone());
        let (mti, pc, cond): (&[u8; 4], &[u8; 6], u8) = match kind {
            TxnKind::Purchase => (b"0200", b"000000", 0),
            TxnKind::InstallmentPurchase => (b"0200", b"000000", 64),
            TxnKind::CashWithdrawal => (b"0200", b"010000", 0),
            TxnKind::Void => (
                b"0200",
                b"200000",
                orig.as_ref().map_or(0, |o| o.pos_condition),
            ),
            TxnKind::Refund => (b"0220", b"200000", 0),
            TxnKind::BalanceInquiry => (b"0200", b"300000", 0),
            TxnKind::Preauth => (b"0100", b"030000", 6),
            TxnKind::PreauthCompletion => (b"0200", b"000000", 6),
            TxnKind::Reversal => {
                let o = orig.as_ref().unwrap();
                (b"0420", &o.processing_code, o.pos_condition)
            }
            _ => (b"0200", b"000000", 0),
        };
        let key = key_for(date, stan, acquirer);
        let r = RequestRecord {
            key,
            kind,
            mti: *mti,
            processing_code: *pc,
            pos_condition: cond,
            amount,
            pan: fixed(pan),
            terminal: fixed("TERM0001"),
            merchant: fixed("MERCHANT0000001"),
            mcc,
            rrn: fixed(&format!("{:06}{stan:06}", date % 1_000_000)),
            currency: fixed("156"),
            link_institution: fixed(acquirer),
            issuer: Some(fixed(issuer)),
            issuer_stan: Some(stan + 500_000),
            settlement_date: date,
            received_ms: ms(date, 36_000 + i64::from(stan)),
            original: orig.map(|o| o.key),
            pos_entry: 51,
            card_seq: 1,
            f60: fixed("000005100300000"),
            installment: (kind == TxnKind::InstallmentPurchase).then_some(InstallmentTerms {
                periods: 6,
                fee_mode: 0,
                fee_rate: 4_320,
                subsidy_rate: 1_000,
            }),
        };
        self.reqs.insert(stan, r.clone());
        self.records.push(SwitchRecord::Request(r));
        key
    }

    fn answer(&mut self, stan: u32, code: &[u8; 2]) {
        let r = &self.reqs[&stan];
        self.records.push(SwitchRecord::Outcome(OutcomeRecord {
            key: r.key,
            settlement_date: r.settlement_date,
            code: *code,
            auth_code: (code == b"00").then(|| switch::records::fixed(&format!("A{stan:05}"))),
            responder: Responder::Issuer,
            answered_ms: r.received_ms + 300,
            reversal_reason: None,
            installment_fee: None,
        }));
    }

    fn undeliverable(&mut self, stan: u32) {
        let r = &self.reqs[&stan];
        self.records.push(SwitchRecord::Advice(AdviceRecord {
            issuer: r.issuer.unwrap().to_string(),
            advice_stan: 900_000 + stan,
            reason: *b"4363",
            original: Some(r.key),
            payload: vec![],
            queued_ms: r.received_ms + 400,
        }));
    }

    fn terms(&mut self, stan: u32, periods: u8, subsidy_rate: u32) {
        let t = InstallmentTerms {
            periods,
            fee_mode: 0,
            fee_rate: 4_320,
            subsidy_rate,
        };
        self.reqs.get_mut(&stan).unwrap().installment = Some(t);
        for rec in self.records.iter_mut().rev() {
            if let SwitchRecord::Request(r) = rec {
                if r.key.stan == stan {
                    r.installment = Some(t);
                    break;
                }
            }
        }
    }
}

/// The golden day. Expected values, checked by hand (fees: grocery 0.38 %, debit 0.55 %
/// capped at 2000, credit 0.6 %; split 70/10/20):
/// - 10 purchase 100000 debit 5411: fee 380 = issuer 266 + switch 38 + acquirer 76.
/// - 11/12 purchase 250000 voided the same day: both lines carry zero fees.
/// - 13/14 installment 120000 (subsidy 2 %: 2400) reversed the same day: zeros on both.
/// - 15/16/17 purchase 88800 debit 5812 voided, void reversed: the purchase carries its fee
///   round(488.4) = 488 = 342 + 49 + 97; the void and its reversal carry zeros.
/// - 18 refund 200000 of installment 1 (600000, credit, fee 3600 = 2520 + 360 + 720,
///   subsidy 1 % = 6000) 20 days after approval: returns a third: fee 1200 = 840 + 120 +
///   240, subsidy 2000 (C on the acquirer's record, D on the issuer's).
/// - 19 refund 100000 of installment 2 (300000, subsidy 0.5 % = 1500, fee 1800 = 1260 + 180
///   + 360) 81 days after approval: fee 600 = 420 + 60 + 120 back, no subsidy.
/// - 20/21 refunds 30000 + 70000 of purchase 10: 114 = 80 + 11 + 23, then the rest
///   266 = 186 + 27 + 53 (cumulative rounding: the whole fee comes back exactly).
/// - 22 declined (absent), 23 its reversal (no effect, reported), 24 pending (reported).
/// - 25 preauth (absent), 26 completion 78000 credit 5411: 296.4 -> 296 = 207 + 30 + 59,
///   dual-message flag 1.
/// - 27 balance inquiry (absent). 28/29 purchase reversed early (before its answer): zeros.
/// - 30 approved, reversed by the switch (4363): absent, reported.
/// - 31 reversal today of yesterday's purchase 3 (50000 grocery, fee 190 = 133 + 19 + 38):
///   the reversal carries the fee back (acquirer: receivable 133, switching C 19).
/// - 32 second acquirer, second issuer debit 12345: 67.8975 -> 68 = 48 (47.6) + 7 (6.8) + 13.
/// - 33 second acquirer, unknown BIN, MCC 5999: no fee rule (unpriced, fee zero).
fn golden_day() -> Vec<SwitchRecord> {
    use TxnKind::*;
    let mut d = Day::new();
    // Earlier days: two installment purchases and yesterday's purchase.
    d.request(
        20261101,
        1,
        InstallmentPurchase,
        600_000,
        CREDIT,
        5311,
        None,
        ACQ,
        ISS,
    );
    d.answer(1, b"00");
    d.request(
        20260901,
        2,
        InstallmentPurchase,
        300_000,
        CREDIT,
        5311,
        None,
        ACQ,
        ISS,
    );
    d.terms(2, 12, 500);
    d.answer(2, b"00");
    d.request(20261120, 3, Purchase, 50_000, DEBIT, 5411, None, ACQ, ISS);
    d.answer(3, b"00");
    // The day.
    d.request(D, 10, Purchase, 100_000, DEBIT, 5411, None, ACQ, ISS);
    d.answer(10, b"00");
    d.request(D, 11, Purchase, 250_000, CREDIT, 5812, None, ACQ, ISS);
    d.answer(11, b"00");
    d.request(D, 12, Void, 250_000, CREDIT, 5812, Some(11), ACQ, ISS);
    d.answer(12, b"00");
    d.request(
        D,
        13,
        InstallmentPurchase,
        120_000,
        CREDIT,
        5311,
        None,
        ACQ,
        ISS,
    );
    d.terms(13, 3, 2_000);
    d.answer(13, b"00");
    d.request(D, 14, Reversal, 120_000, CREDIT, 5311, Some(13), ACQ, ISS);
    d.answer(14, b"00");
    d.request(D, 15, Purchase, 88_800, DEBIT, 5812, None, ACQ, ISS);
    d.answer(15, b"00");
    d.request(D, 16, Void, 88_800, DEBIT, 5812, Some(15), ACQ, ISS);
    d.answer(16, b"00");
    d.request(D, 17, Reversal, 88_800, DEBIT, 5812, Some(16), ACQ, ISS);
    d.answer(17, b"00");
    d.request(D, 18, Refund, 200_000, CREDIT, 5311, Some(1), ACQ, ISS);
    d.answer(18, b"00");
    d.request(D, 19, Refund, 100_000, CREDIT, 5311, Some(2), ACQ, ISS);
    d.answer(19, b"00");
    d.request(D, 20, Refund, 30_000, DEBIT, 5411, Some(10), ACQ, ISS);
    d.answer(20, b"00");
    d.request(D, 21, Refund, 70_000, DEBIT, 5411, Some(10), ACQ, ISS);
    d.answer(21, b"00");
    d.request(D, 22, Purchase, 5_000, DEBIT, 5411, None, ACQ, ISS);
    d.answer(22, b"51");
    d.request(D, 23, Reversal, 5_000, DEBIT, 5411, Some(22), ACQ, ISS);
    d.answer(23, b"00");
    d.request(D, 24, Purchase, 7_000, DEBIT, 5411, None, ACQ, ISS);
    d.request(D, 25, Preauth, 80_000, CREDIT, 5411, None, ACQ, ISS);
    d.answer(25, b"00");
    d.request(
        D,
        26,
        PreauthCompletion,
        78_000,
        CREDIT,
        5411,
        Some(25),
        ACQ,
        ISS,
    );
    d.answer(26, b"00");
    d.request(D, 27, BalanceInquiry, 0, DEBIT, 5411, None, ACQ, ISS);
    d.answer(27, b"00");
    d.request(D, 28, Purchase, 40_000, DEBIT, 5411, None, ACQ, ISS);
    d.request(D, 29, Reversal, 40_000, DEBIT, 5411, Some(28), ACQ, ISS);
    d.answer(29, b"00");
    d.answer(28, b"00");
    d.request(D, 30, Purchase, 60_000, DEBIT, 5411, None, ACQ, ISS);
    d.answer(30, b"00");
    d.undeliverable(30);
    d.request(D, 31, Reversal, 50_000, DEBIT, 5411, Some(3), ACQ, ISS);
    d.answer(31, b"00");
    d.request(D, 32, Purchase, 12_345, ISS2_DEBIT, 5999, None, ACQ2, ISS2);
    d.answer(32, b"00");
    d.request(D, 33, Purchase, 20_000, NO_BIN, 5999, None, ACQ2, ISS2);
    d.answer(33, b"00");
    d.records
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/clearing")
}

/// All files under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn field(line: &[u8], index: usize) -> &str {
    std::str::from_utf8(&line[field_range(index).unwrap()]).unwrap()
}

/// Lines of a flow file (without CRLF), checking CRLF and the record width.
fn lines_of(contents: &[u8], width: usize) -> Vec<&[u8]> {
    if contents.is_empty() {
        return vec![];
    }
    assert!(contents.ends_with(b"\r\n"));
    let body = &contents[..contents.len() - 1];
    body.split(|&b| b == b'\n')
        .map(|l| {
            let l = l.strip_suffix(b"\r").expect("CRLF line ends");
            assert_eq!(l.len(), width);
            l
        })
        .collect()
}

fn file<'a>(out: &'a ClearingOutput, inst: &str, suffix: &str) -> &'a [u8] {
    let name = format!("IND26112101{suffix}");
    &out.files
        .iter()
        .find(|f| f.institution == inst && f.name == name)
        .unwrap_or_else(|| panic!("{inst}/{name} missing"))
        .contents
}

#[test]
fn golden_day_matches_the_golden_files() {
    let fx = Fixture::new();
    let out = clear_day(&golden_day(), D, &fx.ctx()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    write_output(&out, &tmp.path().join("20261121")).unwrap();
    let produced = tree(tmp.path());
    let golden = golden_dir();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        for (rel, bytes) in &produced {
            let p = golden.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }
    let expected = tree(&golden);
    assert_eq!(
        produced.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "set of files (UPDATE_GOLDEN=1 regenerates)"
    );
    for (rel, bytes) in &produced {
        assert!(
            expected[rel] == *bytes,
            "{rel} differs from the golden file (UPDATE_GOLDEN=1 regenerates)"
        );
    }
}

/// The golden day's key values, independent of the golden files.
#[test]
fn golden_day_values() {
    let fx = Fixture::new();
    let out = clear_day(&golden_day(), D, &fx.ctx()).unwrap();
    let acom = lines_of(file(&out, ACQ, "ACOM"), COM_LEN);
    let icom = lines_of(file(&out, ISS, "ICOM"), COM_LEN);
    let icomn = lines_of(file(&out, ISS, "ICOMN"), COMN_LEN);
    let stans = |lines: &[&[u8]]| -> Vec<u32> {
        lines.iter().map(|l| field(l, 2).parse().unwrap()).collect()
    };
    let cleared = vec![
        10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 26, 28, 29, 31,
    ];
    assert_eq!(stans(&acom), cleared);
    assert_eq!(stans(&icom), cleared);
    assert_eq!(stans(&icomn), cleared);
    let by_stan = |lines: &[&[u8]], stan: u32| -> Vec<String> {
        let l = lines
            .iter()
            .find(|l| field(l, 2).parse::<u32>().unwrap() == stan)
            .unwrap();
        (0..37)
            .filter_map(|i| {
                field_range(i)
                    .filter(|r| r.end <= l.len())
                    .map(|_| field(l, i).to_string())
            })
            .collect()
    };
    // Field indexes: 20 fee receivable, 21 fee payable, 22 switching fee, 32 installment fee.
    let fees = |lines: &[&[u8]], stan: u32| {
        let f = by_stan(lines, stan);
        (f[20].clone(), f[21].clone(), f[22].clone(), f[32].clone())
    };
    let zero = " 00000000000".to_string();
    let n = |v: u64| format!("{v:012}");
    let c = |v: u64| format!("C{v:011}");
    let dd = |v: u64| format!("D{v:011}");
    assert_eq!(fees(&acom, 10), (n(0), n(266), dd(38), zero.clone()));
    assert_eq!(fees(&icom, 10), (n(266), n(0), zero.clone(), zero.clone()));
    for stan in [11, 12, 13, 14, 16, 17, 28, 29] {
        assert_eq!(
            fees(&acom, stan),
            (n(0), n(0), zero.clone(), zero.clone()),
            "{stan}"
        );
        assert_eq!(
            fees(&icom, stan),
            (n(0), n(0), zero.clone(), zero.clone()),
            "{stan}"
        );
    }
    assert_eq!(fees(&acom, 15), (n(0), n(342), dd(49), zero.clone()));
    assert_eq!(fees(&acom, 18), (n(840), n(0), c(120), c(2_000)));
    assert_eq!(fees(&icom, 18), (n(0), n(840), zero.clone(), dd(2_000)));
    assert_eq!(fees(&acom, 19), (n(420), n(0), c(60), zero.clone()));
    assert_eq!(fees(&acom, 20), (n(80), n(0), c(11), zero.clone()));
    assert_eq!(fees(&acom, 21), (n(186), n(0), c(27), zero.clone()));
    assert_eq!(fees(&acom, 26), (n(0), n(207), dd(30), zero.clone()));
    assert_eq!(fees(&acom, 31), (n(133), n(0), c(19), zero.clone()));
    // Refund of installment 1: partial amount = the original's, periods in ICOMN.
    let r18 = by_stan(&icomn, 18);
    assert_eq!(r18[6], n(600_000));
    assert_eq!(r18[35], "06");
    assert_eq!(r18[17], "000001", "original STAN");
    assert_eq!(by_stan(&acom, 26)[23], "1", "completion: dual message");
    assert_eq!(by_stan(&acom, 10)[4], "0006222021234567890");
    assert_eq!(by_stan(&acom, 10)[0], "01030000   ");
    assert_eq!(by_stan(&acom, 10)[33].trim_end(), "PURCHASE");

    let second = lines_of(file(&out, ACQ2, "ACOM"), COM_LEN);
    assert_eq!(stans(&second), vec![32, 33]);
    assert_eq!(fees(&second, 32), (n(0), n(48), dd(7), zero.clone()));
    assert_eq!(fees(&second, 33), (n(0), n(0), zero.clone(), zero.clone()));

    let r = &out.report;
    assert_eq!(r.net_sum(), 0);
    assert_eq!(r.declined, 1);
    assert_eq!(r.unpriced, 1);
    assert_eq!(r.pending.len(), 1);
    assert_eq!(r.pending[0].key, "1121100024/000024/1030000/1030000");
    assert_eq!(r.switch_reversed.len(), 1);
    assert_eq!(r.unmatched.len(), 1);
    assert_eq!(r.not_cleared_kinds.get("preauth"), Some(&1));
    assert_eq!(r.not_cleared_kinds.get("balance"), Some(&1));
    // The switch earns the switching fees of the day's lines.
    let switch = r.institutions.iter().find(|i| i.id == "00010000").unwrap();
    assert_eq!(switch.net, 38 + 49 - 120 - 60 - 11 - 27 + 30 - 19 + 7);
    // No full PAN anywhere in the reports.
    let text = r.text() + &r.json().to_string();
    for pan in [DEBIT, CREDIT, ISS2_DEBIT, NO_BIN] {
        assert!(!text.contains(pan));
    }
}

#[test]
fn clearing_twice_is_byte_identical() {
    let fx = Fixture::new();
    let records = golden_day();
    let a = clear_day(&records, D, &fx.ctx()).unwrap();
    let b = clear_day(&records, D, &fx.ctx()).unwrap();
    assert_eq!(a.files, b.files);
    let (ta, tb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_output(&a, ta.path()).unwrap();
    write_output(&b, tb.path()).unwrap();
    // A second run over an existing output directory replaces the files with equal ones.
    write_output(&b, tb.path()).unwrap();
    assert_eq!(tree(ta.path()), tree(tb.path()));
    assert!(!tree(ta.path()).keys().any(|k| k.ends_with(".tmp")));
}

#[test]
fn earlier_day_is_cleared_on_its_own() {
    // Yesterday's purchase 3 appears in yesterday's files with its fee, untouched by
    // today's reversal (a file already produced cannot change).
    let fx = Fixture::new();
    let out = clear_day(&golden_day(), 20261120, &fx.ctx()).unwrap();
    let name = "IND26112001ACOM";
    let acom = &out
        .files
        .iter()
        .find(|f| f.institution == ACQ && f.name == name)
        .unwrap()
        .contents;
    let lines = lines_of(acom, COM_LEN);
    assert_eq!(lines.len(), 1);
    assert_eq!(field(lines[0], 21), "000000000133");
    assert_eq!(out.report.net_sum(), 0);
}

#[test]
fn bad_dates_are_refused() {
    let fx = Fixture::new();
    for date in [0, 20261131, 2026112, 202611210] {
        assert!(clear_day(&[], date, &fx.ctx()).is_err(), "{date}");
    }
    let out = clear_day(&[], D, &fx.ctx()).unwrap();
    assert!(out.files.iter().all(|f| f.contents.is_empty()));
    assert_eq!(
        out.files.len(),
        2 + 2 * 2,
        "every configured institution gets its files"
    );
}

#[test]
fn bundled_fee_schedule_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/fees.csv");
    let s = FeeSchedule::load(&path).unwrap();
    assert!(s.rules.len() >= 3);
    assert!(s.rule_for(1234, None).is_some(), "a catch-all row");
    let cfg = switch::config::Config::load(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/switch.toml"),
    )
    .unwrap();
    assert_eq!(cfg.clearing.fees.as_deref().map(Path::exists), Some(true));
}

#[test]
fn fee_schedule_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fees.csv");
    std::fs::write(
        &path,
        "# header follows\ngroup,mcc,card_type,rate,cap,issuer_share,switch_share,acquirer_share\n\
         ok,*,*,0.005,,0.7,0.1,0.2\nbad,*,*,0.005,,0.7,0.2,0.2\n",
    )
    .unwrap();
    let e = FeeSchedule::load(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: line 4 column acquirer_share: shares sum to 1.1 (0.7 + 0.2 + 0.2); they must \
             sum to exactly 1",
            path.display()
        )
    );
    let missing = FeeSchedule::load(&dir.path().join("nope.csv"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.csv: cannot open"), "{missing}");
}

/// A journal on disk whose last record is torn: clearing runs, reports it, and the
/// transaction whose answer was lost shows as pending.
#[test]
fn torn_journal_tail_is_reported() {
    use switch::journal::{FileJournal, Journal, JournalOptions};
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    let mut day = Day::new();
    day.request(D, 1, TxnKind::Purchase, 10_000, DEBIT, 5411, None, ACQ, ISS);
    day.answer(1, b"00");
    day.request(D, 2, TxnKind::Purchase, 20_000, DEBIT, 5411, None, ACQ, ISS);
    day.answer(2, b"00");
    {
        // Appended without zeros ahead, so cutting the file's end tears the last record.
        let options = JournalOptions {
            zero_fill_ahead: 0,
            ..JournalOptions::default()
        };
        let (j, _) = FileJournal::open(&journal_dir, options).unwrap();
        for r in &day.records {
            j.append(r.kind(), r.encode().unwrap(), None);
        }
        j.flush_blocking().unwrap();
        j.close().unwrap();
    }
    let segment = std::fs::read_dir(&journal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    std::fs::write(dir.path().join("bins.csv"), BINS).unwrap();
    std::fs::write(dir.path().join("fees.csv"), FEES).unwrap();
    let toml = format!(
        r#"
[switch]
id = "00010000"
[journal]
dir = "journal"
[routing]
bin_table = "bins.csv"
[clearing]
output_dir = "out"
fees = "fees.csv"
[[institution]]
id = "{ACQ}"
name = "Demo Acquirer Bank"
roles = ["acquirer"]
[[institution]]
id = "{ISS}"
name = "Demo Issuer Bank"
roles = ["issuer"]
[[institution]]
id = "{ISS2}"
name = "Demo Second Issuer Bank"
roles = ["issuer"]
"#
    );
    let cfg_path = dir.path().join("switch.toml");
    std::fs::write(&cfg_path, toml).unwrap();
    let cfg = switch::config::Config::load(&cfg_path).unwrap();
    let summary = switch::clearing::run(&cfg, D, None).unwrap();
    let r = &summary.report;
    let j = r.journal.as_ref().unwrap();
    assert_eq!(j.torn_records, 1);
    assert!(j.torn_bytes > 0);
    assert_eq!(j.records, 3);
    assert_eq!(r.cleared, 1);
    assert_eq!(r.pending.len(), 1);
    assert_eq!(r.pending[0].key, "1121100002/000002/1030000/1030000");
    let text = std::fs::read_to_string(summary.dir.join("summary.txt")).unwrap();
    assert!(text.contains("torn tail: 1 record(s)"), "{text}");
    assert!(text.contains("WARNING: the journal ends in a torn record"));
    assert_eq!(summary.dir, dir.path().join("out/20261121"));
    let acom = std::fs::read(summary.dir.join(ACQ).join("IND26112101ACOM")).unwrap();
    assert_eq!(lines_of(&acom, COM_LEN).len(), 1);
    // The journal itself is not modified by clearing (read-only).
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), len - 3);
}

// ---------------------------------------------------------------------------------------
// Through the running switch
// ---------------------------------------------------------------------------------------

/// A related request (void, refund, reversal) for `orig` from the same terminal.
fn related_to(
    acq: &mut common::Peer,
    mti: iso8583::Mti,
    amount: u64,
    orig: &iso8583::Message,
) -> iso8583::Message {
    let stan = acq.next_stan();
    let mut b = iso8583::MessageBuilder::new(mti, acq.header());
    for n in [2u8, 18, 22, 25, 32, 33, 41, 42, 49, 60] {
        if let Some(v) = orig.field(n) {
            b.set(n, v);
        }
    }
    let od = iso8583::subfields::OriginalData::new(
        orig.mti(),
        orig.stan().unwrap(),
        orig.transmission_time().unwrap(),
        &orig.acquirer_id().unwrap(),
        &orig.forwarding_id().unwrap(),
    );
    let pc = if mti == iso8583::Mti::REVERSAL_ADVICE {
        "000000"
    } else {
        "200000"
    };
    b.set(3, pc)
        .set_numeric(4, amount)
        .set(7, "1121093500")
        .set_numeric(11, u64::from(stan))
        .set_text(37, &format!("{stan:012}"))
        .set(90, od.encode());
    if mti == iso8583::Mti::REVERSAL_ADVICE {
        b.set(60, "435105000300000");
    }
    iso8583::Message::decode(b.build().unwrap()).unwrap()
}

/// Sends `m`; if the issuer gets a request, it answers `issuer_code`. Returns the
/// acquirer's answer code.
async fn exchange(
    acq: &mut common::Peer,
    iss: &mut common::Peer,
    m: &iso8583::Message,
    issuer_code: Option<&str>,
) -> String {
    acq.send(m.raw().clone()).await;
    if let Some(code) = issuer_code {
        let fwd = iss.recv().await;
        iss.answer(&fwd, code).await;
    }
    acq.recv()
        .await
        .response_code()
        .unwrap()
        .as_str()
        .to_owned()
}

/// The journal the running switch writes clears as expected: purchases, a void, a partial
/// refund, an acquirer reversal (answered by the switch, issuer inherited from the
/// original), a decline.
#[tokio::test]
async fn journal_of_the_running_switch_clears() {
    use iso8583::Mti;
    let mut ts = common::TestSwitch::start();
    let mut acq = ts.acquirer().await;
    let mut iss = ts.issuer().await;
    let purchase = |acq: &mut common::Peer, amount: u64| {
        iso8583::Message::decode(acq.purchase(common::PAN, amount).build().unwrap()).unwrap()
    };
    let p1 = purchase(&mut acq, 10_000);
    assert_eq!(exchange(&mut acq, &mut iss, &p1, Some("00")).await, "00");
    let p2 = purchase(&mut acq, 20_000);
    assert_eq!(exchange(&mut acq, &mut iss, &p2, Some("00")).await, "00");
    let v2 = related_to(&mut acq, Mti::FINANCIAL_REQUEST, 20_000, &p2);
    assert_eq!(exchange(&mut acq, &mut iss, &v2, Some("00")).await, "00");
    let r1 = related_to(&mut acq, Mti::FINANCIAL_ADVICE, 4_000, &p1);
    assert_eq!(exchange(&mut acq, &mut iss, &r1, Some("00")).await, "00");
    let p3 = purchase(&mut acq, 30_000);
    assert_eq!(exchange(&mut acq, &mut iss, &p3, Some("00")).await, "00");
    let rv3 = related_to(&mut acq, Mti::REVERSAL_ADVICE, 30_000, &p3);
    assert_eq!(exchange(&mut acq, &mut iss, &rv3, None).await, "00");
    // The switch passes the reversal on to the issuer as an advice.
    let advice = iss.recv().await;
    assert_eq!(advice.mti(), Mti::REVERSAL_ADVICE);
    iss.answer(&advice, "00").await;
    let d4 = purchase(&mut acq, 15_000);
    assert_eq!(exchange(&mut acq, &mut iss, &d4, Some("51")).await, "51");
    let shared = ts.h().shared.clone();
    let (date, _) = shared.settlement_now();
    drop(shared);
    ts.handle.take().unwrap().shutdown().unwrap();

    let cfg = switch::config::Config::load(ts.dir.path().join("switch.toml")).unwrap();
    let out = ts.dir.path().join("clearing-out");
    let summary = switch::clearing::run(&cfg, date, Some(&out)).unwrap();
    let r = &summary.report;
    assert_eq!(r.net_sum(), 0);
    assert_eq!(r.declined, 1, "{}", r.text());
    assert!(r.pending.is_empty(), "{}", r.text());
    assert_eq!(r.cleared, 6, "{}", r.text());
    let yymmdd = date % 1_000_000;
    let acom = std::fs::read(
        summary
            .dir
            .join(common::ACQ)
            .join(format!("IND{yymmdd:06}01ACOM")),
    )
    .unwrap();
    let icom = std::fs::read(
        summary
            .dir
            .join(common::ISS)
            .join(format!("IND{yymmdd:06}01ICOM")),
    )
    .unwrap();
    let kinds = |f: &[u8]| -> Vec<(u32, String)> {
        lines_of(f, COM_LEN)
            .iter()
            .map(|l| {
                (
                    field(l, 2).parse().unwrap(),
                    field(l, 33).trim_end().to_string(),
                )
            })
            .collect()
    };
    let expected: Vec<(u32, String)> = [
        (p1.stan().unwrap(), "PURCHASE"),
        (p2.stan().unwrap(), "PURCHASE"),
        (v2.stan().unwrap(), "VOID"),
        (r1.stan().unwrap(), "REFUND"),
        (p3.stan().unwrap(), "PURCHASE"),
        (rv3.stan().unwrap(), "REVERSAL"),
    ]
    .into_iter()
    .map(|(s, k)| (s, k.to_string()))
    .collect();
    assert_eq!(kinds(&acom), expected);
    assert_eq!(kinds(&icom), expected);
    // The reversal carries no issuer of its own in the journal: the line names the
    // original's, and the original's STAN.
    let rev = lines_of(&acom, COM_LEN)[5];
    assert_eq!(field(rev, 28).trim_end(), common::ISS);
    assert_eq!(field(rev, 17).parse::<u32>().unwrap(), p3.stan().unwrap());
}

// ---------------------------------------------------------------------------------------
// Properties over random days
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// kind 0 purchase, 1 installment, 2 cash, 3 completion, 4 balance inquiry;
    /// answer 0 approved, 1 declined, 2 pending, 3 approved then 4363.
    Original {
        kind: u8,
        amount: i64,
        answer: u8,
        today: bool,
        second_acquirer: bool,
        credit: bool,
    },
    /// kind 0 void, 1 refund, 2 reversal; `target` picks an earlier transaction;
    /// `part` the refunded fraction in percent.
    Related {
        kind: u8,
        target: usize,
        part: i64,
        answer: u8,
        today: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0u8..5,
            1i64..5_000_000,
            0u8..4,
            any::<bool>(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(kind, amount, answer, today, second_acquirer, credit)| {
                Op::Original {
                    kind,
                    amount,
                    answer,
                    today,
                    second_acquirer,
                    credit,
                }
            }),
        (0u8..3, any::<usize>(), 1i64..=100, 0u8..4, any::<bool>()).prop_map(
            |(kind, target, part, answer, today)| Op::Related {
                kind,
                target,
                part,
                answer,
                today,
            }
        ),
    ]
}

/// Builds the journal; returns it with the STANs of today's requests by what they should
/// become: must appear (approved originals and refunds), must not appear (declined,
/// pending, switch-reversed, not-cleared kinds), may appear (approved voids/reversals).
/// Ops from index `later_from` on are dated the day after `D`.
fn build(ops: &[Op], later_from: usize) -> (Vec<SwitchRecord>, Vec<u32>, Vec<u32>, Vec<u32>) {
    use TxnKind::*;
    let mut d = Day::new();
    let (mut must, mut never, mut may) = (vec![], vec![], vec![]);
    let mut stans: Vec<(u32, TxnKind, i64, bool, &str, &str)> = vec![];
    for (i, op) in ops.iter().enumerate() {
        let stan = i as u32 + 1;
        let (kind, amount, answer, today, orig, acq, iss, pan) = match *op {
            Op::Original {
                kind,
                amount,
                answer,
                today,
                second_acquirer,
                credit,
            } => {
                let kind = [
                    Purchase,
                    InstallmentPurchase,
                    CashWithdrawal,
                    PreauthCompletion,
                    BalanceInquiry,
                ][usize::from(kind)];
                let acq = if second_acquirer { ACQ2 } else { ACQ };
                let (iss, pan) = if credit {
                    (ISS, CREDIT)
                } else {
                    (ISS2, ISS2_DEBIT)
                };
                (kind, amount, answer, today, None, acq, iss, pan)
            }
            Op::Related {
                kind,
                target,
                part,
                answer,
                today,
            } => {
                if stans.is_empty() {
                    continue;
                }
                let (ostan, _, oamount, _, acq, iss) = stans[target % stans.len()];
                let kind = [Void, Refund, Reversal][usize::from(kind)];
                let amount = if kind == Refund {
                    (oamount * part / 100).max(1)
                } else {
                    oamount
                };
                let pan = if iss == ISS { CREDIT } else { ISS2_DEBIT };
                (kind, amount, answer, today, Some(ostan), acq, iss, pan)
            }
        };
        let date = match (i >= later_from, today) {
            (true, _) => 20261122,
            (false, true) => D,
            (false, false) => 20261120,
        };
        let today = date == D;
        d.request(date, stan, kind, amount, pan, 5411, orig, acq, iss);
        match answer {
            0 => d.answer(stan, b"00"),
            1 => d.answer(stan, b"05"),
            2 => {}
            _ => {
                d.answer(stan, b"00");
                d.undeliverable(stan);
            }
        }
        stans.push((stan, kind, amount, today, acq, iss));
        if !today {
            continue;
        }
        let cleared_kind = !matches!(kind, BalanceInquiry);
        match (answer, kind) {
            (0, Void | Reversal) => may.push(stan),
            (0, _) if cleared_kind => must.push(stan),
            _ => never.push(stan),
        }
    }
    (d.records, must, never, may)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_days_balance_and_clear_each_approved_once(ops in proptest::collection::vec(op(), 0..60)) {
        let fx = Fixture::new();
        let (records, must, never, may) = build(&ops, usize::MAX);
        let out = clear_day(&records, D, &fx.ctx()).unwrap();
        prop_assert_eq!(out.report.net_sum(), 0);
        let ids = |suffix: &str, width: usize| -> Vec<u32> {
            let mut v: Vec<u32> = out
                .files
                .iter()
                .filter(|f| f.name.ends_with(suffix) && (suffix != "ICOM" || !f.name.ends_with("ICOMN")))
                .flat_map(|f| lines_of(&f.contents, width).into_iter().map(|l| field(l, 2).parse::<u32>().unwrap()).collect::<Vec<_>>())
                .collect();
            v.sort_unstable();
            v
        };
        let acom = ids("ACOM", COM_LEN);
        let icom = ids("ICOM", COM_LEN);
        let icomn = ids("ICOMN", COMN_LEN);
        prop_assert_eq!(&acom, &icom);
        prop_assert_eq!(&acom, &icomn);
        let mut dedup = acom.clone();
        dedup.dedup();
        prop_assert_eq!(&dedup, &acom, "a line appears twice");
        for s in &must {
            prop_assert!(acom.binary_search(s).is_ok(), "approved {} missing", s);
        }
        for s in &never {
            prop_assert!(acom.binary_search(s).is_err(), "{} must not be cleared", s);
        }
        for s in &acom {
            prop_assert!(must.contains(s) || may.contains(s));
        }
        prop_assert_eq!(out.report.cleared as usize, acom.len());
        // Per-role totals agree with the lines.
        let acquirer_lines: u64 = out.report.institutions.iter().filter_map(|i| i.acquirer).map(|t| t.lines).sum();
        prop_assert_eq!(acquirer_lines as usize, acom.len());
    }

    /// A file already produced cannot change: records of the next day (including voids,
    /// refunds and reversals of today's transactions) leave today's files as they were.
    #[test]
    fn later_days_do_not_change_a_cleared_day(
        ops in proptest::collection::vec(op(), 0..50),
        split in 0usize..50,
    ) {
        let fx = Fixture::new();
        let split = split.min(ops.len());
        let (all, ..) = build(&ops, split);
        let (before, ..) = build(&ops[..split], split);
        prop_assert_eq!(&all[..before.len()], &before[..]);
        let a = clear_day(&before, D, &fx.ctx()).unwrap();
        let b = clear_day(&all, D, &fx.ctx()).unwrap();
        prop_assert_eq!(a.files, b.files);
        let next = clear_day(&all, 20261122, &fx.ctx()).unwrap();
        prop_assert_eq!(next.report.net_sum(), 0);
    }
}
