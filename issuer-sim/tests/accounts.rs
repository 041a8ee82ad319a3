//! Card accounts: every decline a card's configuration produces, and balances that move
//! exactly once per transaction however often advices are resent. Messages are built as the
//! switch forwards them and answered by `answer_with` (no sockets: the ledger is the unit).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use iso8583::subfields::{FeeMode, InstallmentRequest, OriginalData};
use iso8583::{Header, InstId, Message, MessageBuilder, Mti, ResponseCode};
use issuer_sim::accounts::{pin_from_block, AccountBook, AccountSpec, Ledger};
use issuer_sim::answer::{answer_with, Outcome};
use issuer_sim::{Behaviour, InstallmentPlans, Rules};
use std::path::Path;

const ISSUER: &str = "03010000";
const SWITCH: &str = "00010000";
const ACQ: &str = "01030000";
const PAN: &str = "6222020000000016";

/// A request as the switch forwards it (F11 rewritten, F7/F32/F33 the acquirer's).
fn request(
    mti: Mti,
    f3: &str,
    f25: &str,
    pan: &str,
    amount: i64,
    stan: u32,
    f7: &str,
) -> MessageBuilder {
    let mut b = MessageBuilder::new(
        mti,
        Header::new(InstId::new(ISSUER).unwrap(), InstId::new(SWITCH).unwrap()),
    );
    b.set(2, pan)
        .set(3, f3)
        .set(7, f7)
        .set_numeric(11, u64::from(stan))
        .set(18, "5411")
        .set(22, "021")
        .set(25, f25)
        .set(32, ACQ)
        .set(33, ACQ)
        .set(37, "093000000123")
        .set(41, "TERM0001")
        .set(42, "MERCHANT0000001")
        .set(49, "156")
        .set(60, "000002000300000");
    if amount > 0 {
        b.set_numeric(4, u64::try_from(amount).unwrap());
    }
    b
}

fn purchase(pan: &str, amount: i64, stan: u32) -> MessageBuilder {
    request(
        Mti::FINANCIAL_REQUEST,
        "000000",
        "00",
        pan,
        amount,
        stan,
        "1121093000",
    )
}

/// F90 naming `orig` with `stan` (the F11 the issuer saw, or the acquirer's).
fn f90(orig: &MessageBuilder, stan: u32) -> [u8; 42] {
    let acq = InstId::new(ACQ).unwrap();
    OriginalData::new(
        orig.mti(),
        stan,
        orig.get(7).unwrap().try_into().unwrap(),
        &acq,
        &acq,
    )
    .encode()
}

fn reversal(orig: &MessageBuilder, orig_stan: u32, stan: u32, f7: &str) -> MessageBuilder {
    let f3 = std::str::from_utf8(orig.get(3).unwrap())
        .unwrap()
        .to_owned();
    let f25 = std::str::from_utf8(orig.get(25).unwrap())
        .unwrap()
        .to_owned();
    let amount = orig
        .get(4)
        .map_or(0, |a| std::str::from_utf8(a).unwrap().parse().unwrap());
    let pan = std::str::from_utf8(orig.get(2).unwrap())
        .unwrap()
        .to_owned();
    let mut b = request(Mti::REVERSAL_ADVICE, &f3, &f25, &pan, amount, stan, f7);
    b.set(90, f90(orig, orig_stan)).set(60, "436102000300000");
    b
}

struct Bank {
    rules: Rules,
    ledger: Ledger,
    auth: u32,
}

impl Bank {
    fn new(book: &AccountBook) -> Self {
        Self {
            rules: Rules::default(),
            ledger: Ledger::new(book).with_today(2603),
            auth: 0,
        }
    }

    fn send(&mut self, b: &MessageBuilder) -> Message {
        self.auth += 1;
        let req = Message::decode(b.build().unwrap()).unwrap();
        let auth = format!("{:06}", self.auth);
        let a = answer_with(
            &req,
            &self.rules,
            &Behaviour::default(),
            Some(&self.ledger),
            auth.as_bytes().try_into().unwrap(),
            0.5,
        );
        assert_ne!(a.outcome, Outcome::Unanswered);
        Message::decode(a.response.unwrap().build(&req).unwrap()).unwrap()
    }

    fn code(&mut self, b: &MessageBuilder) -> String {
        self.send(b).response_code().unwrap().as_str().to_owned()
    }

    fn balance(&mut self, pan: &str) -> i64 {
        let mut b = request(
            Mti::FINANCIAL_REQUEST,
            "300000",
            "00",
            pan,
            0,
            999_999,
            "1121235959",
        );
        b.remove(4);
        let resp = self.send(&b);
        assert_eq!(resp.response_code(), Some(ResponseCode::APPROVED));
        let balances = resp.balances().unwrap().unwrap();
        assert_eq!(self.ledger.available(pan), Some(balances[0].amount));
        balances[0].amount
    }
}

fn bundled() -> AccountBook {
    AccountBook::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/issuer-sim/accounts.csv"),
    )
    .unwrap()
}

/// ISO 9564 format 0 PIN block, clear.
fn pin_block(pin: &str, pan: &str) -> [u8; 8] {
    let mut pin_field = [0xFFu8; 8];
    let mut nibbles = vec![0u8, u8::try_from(pin.len()).unwrap()];
    nibbles.extend(pin.bytes().map(|d| d - b'0'));
    while nibbles.len() < 16 {
        nibbles.push(0xF);
    }
    for (i, pair) in nibbles.chunks(2).enumerate() {
        pin_field[i] = (pair[0] << 4) | pair[1];
    }
    let digits: Vec<u8> = pan.bytes().map(|d| d - b'0').collect();
    let body = &digits[digits.len() - 13..digits.len() - 1];
    let mut pan_field = [0u8; 8];
    for (i, pair) in body.chunks(2).enumerate() {
        pan_field[2 + i] = (pair[0] << 4) | pair[1];
    }
    let mut out = [0u8; 8];
    for i in 0..8 {
        out[i] = pin_field[i] ^ pan_field[i];
    }
    out
}

#[test]
fn pin_blocks_round_trip() {
    assert_eq!(
        pin_from_block(&pin_block("123456", PAN), PAN.as_bytes()).as_deref(),
        Some("123456")
    );
    assert_eq!(
        pin_from_block(&pin_block("1234", PAN), b"6222020000000024"),
        None,
        "wrong PAN field"
    );
    assert_eq!(pin_from_block(&[0; 8], PAN.as_bytes()), None);
}

#[test]
fn every_card_status_in_the_bundled_file_declines_with_its_code() {
    let mut bank = Bank::new(&bundled());
    let cases = [
        ("6222020000000024", "51"),
        ("6222020000000032", "21"),
        ("6222020000000040", "41"),
        ("6222020000000057", "43"),
        ("6222020000000065", "04"),
        ("6222020000000073", "34"),
        ("6222020000000081", "62"),
        ("6222020000000099", "01"),
        ("6222020000000107", "54"),
        ("6222020000000115", "38"),
        ("6222020000000131", "75"),
        ("6222020000000149", "14"),
        ("6222020000000123", "00"),
        // Not in the file: the template approves.
        ("6222020999999990", "00"),
    ];
    for (i, (pan, want)) in cases.iter().enumerate() {
        let stan = 100 + u32::try_from(i).unwrap();
        assert_eq!(bank.code(&purchase(pan, 50_000, stan)), *want, "{pan}");
    }
    // Without a template, unknown cards are 14.
    let mut strict = Bank::new(&bundled().with_template(None));
    assert_eq!(strict.code(&purchase("6222020999999990", 100, 1)), "14");
}

#[test]
fn expiry_cvn2_and_pin_checks() {
    let mut bank = Bank::new(&bundled());
    let pan_cvn = "6222020000000164";
    let mut p = purchase(pan_cvn, 100, 1);
    p.set(61, "CV456");
    assert_eq!(bank.code(&p), "00");
    p.set(11, "000002").set(61, "CV999");
    assert_eq!(bank.code(&p), "59");
    p.set(11, "000003").set(61, "CV456").set(14, "3011");
    assert_eq!(bank.code(&p), "54", "F14 differs from the card");
    p.set(11, "000004").set(14, "3012");
    assert_eq!(bank.code(&p), "00");

    // PIN 1234, 3 tries: two wrong (55), a right one resets, three wrong lock (75), then 38.
    let pan_pin = "6222020000000156";
    let mut stan = 10;
    let mut with_pin = |bank: &mut Bank, pin: &str| {
        stan += 1;
        let mut b = purchase(pan_pin, 100, stan);
        b.set(52, pin_block(pin, pan_pin));
        bank.code(&b)
    };
    let got: Vec<String> = ["0000", "0000", "1234", "9999", "9999", "9999", "1234"]
        .iter()
        .map(|pin| with_pin(&mut bank, pin))
        .collect();
    assert_eq!(got, ["55", "55", "00", "55", "55", "75", "38"]);
    let mut garbage = purchase(pan_pin, 100, 99);
    garbage.set(52, [0u8; 8]);
    assert_eq!(
        Bank::new(&bundled()).code(&garbage),
        "99",
        "not a PIN block"
    );
}

#[test]
fn balances_move_exactly_once_with_resent_and_duplicated_advices() {
    let book = AccountBook::default().with_account(AccountSpec::new(PAN, 100_000));
    let mut bank = Bank::new(&book);
    assert_eq!(bank.balance(PAN), 100_000);

    // Purchase 300.00, forwarded with issuer STAN 11.
    let p = purchase(PAN, 30_000, 11);
    let first = bank.send(&p);
    assert_eq!(first.response_code(), Some(ResponseCode::APPROVED));
    assert_eq!(bank.balance(PAN), 70_000);
    // The same request again (a retransmission): the first answer, nothing moves.
    let again = bank.send(&p);
    assert_eq!(
        (again.response_code(), again.field(38)),
        (first.response_code(), first.field(38))
    );
    assert_eq!(bank.balance(PAN), 70_000);

    // Reversal advice (switch-generated, F90 = the issuer's STAN), resent three times.
    let rev = reversal(&p, 11, 500, "1121093100");
    for _ in 0..3 {
        assert_eq!(bank.code(&rev), "00");
    }
    assert_eq!(bank.balance(PAN), 100_000);
    // A second advice for the same original (the acquirer's own 0420, with the acquirer's
    // STAN in F90): acknowledged, nothing moves.
    assert_eq!(bank.code(&reversal(&p, 42, 501, "1121093101")), "00");
    assert_eq!(bank.balance(PAN), 100_000);

    // Cash 200.00, refund 50.00 twice (resent 0220), reversal of the refund.
    let cash = request(
        Mti::FINANCIAL_REQUEST,
        "010000",
        "00",
        PAN,
        20_000,
        21,
        "1121093200",
    );
    assert_eq!(bank.code(&cash), "00");
    let mut refund = request(
        Mti::FINANCIAL_ADVICE,
        "200000",
        "00",
        PAN,
        5_000,
        22,
        "1121093201",
    );
    refund.set(90, f90(&cash, 777)); // the acquirer's STAN: found by F7, F32, F33
    assert_eq!(bank.code(&refund), "00");
    assert_eq!(bank.code(&refund), "00");
    assert_eq!(bank.balance(PAN), 85_000);
    let rev_refund = reversal(&refund, 22, 502, "1121093202");
    assert_eq!(bank.code(&rev_refund), "00");
    assert_eq!(bank.code(&rev_refund), "00");
    assert_eq!(bank.balance(PAN), 80_000);

    // Void of the cash is not a purchase void: 25. A purchase and its void, then the
    // void's reversal puts the purchase back.
    let p2 = purchase(PAN, 10_000, 31);
    assert_eq!(bank.code(&p2), "00");
    let mut void = request(
        Mti::FINANCIAL_REQUEST,
        "200000",
        "00",
        PAN,
        10_000,
        32,
        "1121093000",
    );
    void.set(90, f90(&p2, 31));
    assert_eq!(bank.code(&void), "00");
    assert_eq!(bank.balance(PAN), 80_000);
    assert_eq!(bank.code(&void), "00", "resent void replayed");
    let mut void_again = void.clone();
    void_again.set(11, "000033");
    assert_eq!(
        bank.code(&void_again),
        "22",
        "a second void of a voided purchase"
    );
    assert_eq!(bank.code(&reversal(&void, 32, 503, "1121093300")), "00");
    assert_eq!(bank.balance(PAN), 70_000);

    // Preauth 400.00 holds, completion 350.00 takes 350, its reversal holds 400 again,
    // the preauth's void releases it.
    let pre = request(
        Mti::AUTH_REQUEST,
        "030000",
        "06",
        PAN,
        40_000,
        41,
        "1121093400",
    );
    let pre_answer = bank.send(&pre);
    assert_eq!(pre_answer.response_code(), Some(ResponseCode::APPROVED));
    assert_eq!(bank.balance(PAN), 30_000);
    let mut comp = request(
        Mti::FINANCIAL_REQUEST,
        "000000",
        "06",
        PAN,
        35_000,
        42,
        "1121093401",
    );
    comp.set(90, f90(&pre, 41))
        .set(38, pre_answer.field(38).unwrap());
    assert_eq!(bank.code(&comp), "00");
    assert_eq!(bank.balance(PAN), 35_000);
    assert_eq!(bank.code(&reversal(&comp, 42, 504, "1121093402")), "00");
    assert_eq!(bank.balance(PAN), 30_000);
    let mut pvoid = request(
        Mti::AUTH_REQUEST,
        "200000",
        "06",
        PAN,
        40_000,
        43,
        "1121093403",
    );
    pvoid.set(90, f90(&pre, 41));
    assert_eq!(bank.code(&pvoid), "00");
    assert_eq!(bank.balance(PAN), 70_000);

    // Insufficient funds; refunds beyond the original; unknown originals.
    assert_eq!(bank.code(&purchase(PAN, 70_001, 51)), "51");
    let mut too_much = request(
        Mti::FINANCIAL_ADVICE,
        "200000",
        "00",
        PAN,
        20_001,
        52,
        "1121093500",
    );
    too_much.set(90, f90(&cash, 21));
    assert_eq!(bank.code(&too_much), "22");
    let mut orphan = request(
        Mti::FINANCIAL_REQUEST,
        "200000",
        "00",
        PAN,
        100,
        53,
        "1121093501",
    );
    orphan.set(90, {
        let acq = InstId::new(ACQ).unwrap();
        OriginalData::new(Mti::FINANCIAL_REQUEST, 1, *b"0101000000", &acq, &acq).encode()
    });
    assert_eq!(bank.code(&orphan), "25");
    // A reversal of something never seen: acknowledged, nothing moves.
    let never = request(
        Mti::FINANCIAL_REQUEST,
        "000000",
        "00",
        PAN,
        100,
        1,
        "0101000000",
    );
    assert_eq!(bank.code(&reversal(&never, 1, 505, "1121093600")), "00");
    assert_eq!(bank.balance(PAN), 70_000);
}

#[test]
fn installment_declines_from_plans_and_accounts() {
    let plans = InstallmentPlans::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/issuer-sim/plans.toml"),
    )
    .unwrap();
    let mut bank = Bank::new(&bundled());
    bank.rules = Rules::default().with_plans(plans);
    let mut stan = 0;
    let mut inst = |bank: &mut Bank,
                    pan: &str,
                    amount: i64,
                    periods: u8,
                    rate: u32,
                    merchant: &str,
                    project: &str| {
        stan += 1;
        let ip = InstallmentRequest {
            periods,
            project_code: InstallmentRequest::project_code_from(project),
            fee_mode: FeeMode::Spread,
            fee_rate: rate,
            subsidy_rate: 0,
        };
        let mut b = request(
            Mti::FINANCIAL_REQUEST,
            "000000",
            "64",
            pan,
            amount,
            stan,
            "1121100000",
        );
        b.set(48, ip.encode()).set_text(42, merchant);
        bank.send(&b)
    };
    let ok = "6258000000000018";
    let m1 = "MERCHANT0000001";
    let cases = [
        (ok, 600_000, 6, 4_320, m1, "", "00"),
        (ok, 600_000, 6, 0, "123456789012345", "", "00"),
        (ok, 600_000, 12, 6_000, "123456789012345", "", "00"),
        (ok, 600_000, 12, 7_200, "123456789012345", "", "23"),
        (ok, 600_000, 6, 4_500, m1, "", "23"),
        (ok, 600_000, 5, 0, m1, "", "57"),
        ("6258000000000026", 600_000, 6, 0, m1, "", "57"),
        (ok, 59_999, 6, 0, m1, "", "61"),
        (ok, 3_000_001, 6, 0, m1, "", "61"),
        (ok, 600_000, 6, 0, "MERCHANT0000003", "PHONE2026", "03"),
        (ok, 600_000, 6, 0, m1, "PHONE2026", "00"),
        ("6258000000000034", 600_000, 6, 0, m1, "", "51"),
    ];
    for (pan, amount, periods, rate, merchant, project, want) in cases {
        let resp = inst(&mut bank, pan, amount, periods, rate, merchant, project);
        assert_eq!(
            resp.response_code().unwrap().as_str(),
            want,
            "{amount} x{periods} at {rate} from {merchant} {project}"
        );
        assert_eq!(resp.has(57), want == "00");
    }
    let resp = inst(&mut bank, ok, 600_000, 12, 0, "123456789012345", "");
    let f57 = resp.installment_response().unwrap().unwrap();
    // The personalised 6.000 %: fee 36000 spread over 12: 3000 a period.
    assert_eq!((f57.cardholder_fee, f57.first_amount), (36_000, 53_000));
}

#[test]
fn bad_accounts_files_name_the_line_not_the_pan() {
    let header = "pan,status,expiry,pin,cvn2,balance,card_type,installment,pin_tries\n";
    for (row, why) in [
        ("6222020000000016,active,,,,-1,debit,N,", "balance"),
        ("6222020000000016,sleepy,,,,1,debit,N,", "status"),
        ("6222020000000016,active,3013,,,1,debit,N,", "expiry"),
        ("6222020000000016,active,,12,,1,debit,N,", "pin"),
        ("6222020000000016,active,,,12a,1,debit,N,", "cvn2"),
        ("6222020000000016,active,,,,1,gold,N,", "card_type"),
        ("62220200000000AB,active,,,,1,debit,N,", "pan"),
        ("6222020000000016,active,,,,1,debit,N", "columns"),
    ] {
        let err = AccountBook::parse(&format!("{header}{row}\n"), "a.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.csv line 2") && err.contains(why), "{err}");
        assert!(!err.contains("6222020000000016"), "PAN leaked: {err}");
    }
    let twice = format!("{header}6222020000000016,,,,,1,,,\n6222020000000016,,,,,1,,,\n");
    let err = AccountBook::parse(&twice, "a.csv").unwrap_err().to_string();
    assert!(err.contains("622202******0016 listed twice"), "{err}");
}
