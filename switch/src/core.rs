//! Sans-I/O decisions on one message: what kind of transaction it is, its matching key, the
//! mandatory-field check (SPEC.md section 5), and how switch-generated answers look. No
//! actors, no sockets: unit-tested with plain messages.

use iso8583::subfields::inst_number;
use iso8583::{Header, InstId, Message, MessageBuilder, Mti, ResponseCode};

/// The transactions of SPEC.md section 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TxnKind {
    Purchase,
    InstallmentPurchase,
    Void,
    Refund,
    BalanceInquiry,
    CashWithdrawal,
    Preauth,
    PreauthVoid,
    PreauthCompletion,
    Reversal,
    NetworkManagement,
    /// A request the switch does not know how to handle.
    Unknown,
}

impl TxnKind {
    /// Classify by MTI, F3 digits 1-2 and F25.
    #[must_use]
    pub fn of(msg: &Message) -> TxnKind {
        let mti = msg.mti().request();
        let pc = msg.processing_code().map(|p| [p[0], p[1]]);
        let cond = msg.pos_condition();
        match (mti.0, pc.as_ref().map(|p| &p[..]), cond) {
            (m, _, _) if m == *b"0800" || m == *b"0820" => TxnKind::NetworkManagement,
            (m, _, _) if m == Mti::REVERSAL_ADVICE.0 || m == *b"0400" => TxnKind::Reversal,
            (m, Some(b"20"), _) if m == Mti::FINANCIAL_ADVICE.0 => TxnKind::Refund,
            (m, Some(b"03"), _) if m == Mti::AUTH_REQUEST.0 => TxnKind::Preauth,
            (m, Some(b"20"), _) if m == Mti::AUTH_REQUEST.0 => TxnKind::PreauthVoid,
            (m, Some(b"00"), Some(6)) if m == Mti::FINANCIAL_REQUEST.0 => {
                TxnKind::PreauthCompletion
            }
            (m, Some(b"00"), Some(64)) if m == Mti::FINANCIAL_REQUEST.0 => {
                TxnKind::InstallmentPurchase
            }
            (m, Some(b"00"), _) if m == Mti::FINANCIAL_REQUEST.0 => TxnKind::Purchase,
            (m, Some(b"20"), _) if m == Mti::FINANCIAL_REQUEST.0 => TxnKind::Void,
            (m, Some(b"30"), _) if m == Mti::FINANCIAL_REQUEST.0 => TxnKind::BalanceInquiry,
            (m, Some(b"01"), _) if m == Mti::FINANCIAL_REQUEST.0 => TxnKind::CashWithdrawal,
            _ => TxnKind::Unknown,
        }
    }

    /// Financial requests get a switch-generated reversal when the outcome is uncertain
    /// (SPEC.md section 8). Balance inquiries are never reversed.
    #[must_use]
    pub fn is_reversible(self) -> bool {
        !matches!(
            self,
            TxnKind::BalanceInquiry
                | TxnKind::NetworkManagement
                | TxnKind::Reversal
                | TxnKind::Unknown
        )
    }

    /// Related transactions name their original in F90.
    #[must_use]
    pub fn needs_original(self) -> bool {
        matches!(
            self,
            TxnKind::Void
                | TxnKind::Refund
                | TxnKind::PreauthVoid
                | TxnKind::PreauthCompletion
                | TxnKind::Reversal
        )
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            TxnKind::Purchase => "purchase",
            TxnKind::InstallmentPurchase => "installment",
            TxnKind::Void => "void",
            TxnKind::Refund => "refund",
            TxnKind::BalanceInquiry => "balance",
            TxnKind::CashWithdrawal => "cash",
            TxnKind::Preauth => "preauth",
            TxnKind::PreauthVoid => "preauth_void",
            TxnKind::PreauthCompletion => "completion",
            TxnKind::Reversal => "reversal",
            TxnKind::NetworkManagement => "network",
            TxnKind::Unknown => "unknown",
        }
    }
}

/// The transaction key of SPEC.md section 7: F7 + F11 + F32 + F33.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TxnKey {
    /// F7 `MMDDhhmmss` as a number.
    pub transmission: u64,
    pub stan: u32,
    pub acquirer: u64,
    pub forwarding: u64,
}

impl TxnKey {
    /// The key of a message, if it carries all four fields.
    #[must_use]
    pub fn of(msg: &Message) -> Option<TxnKey> {
        Some(TxnKey {
            transmission: msg.numeric(7)?,
            stan: msg.stan()?,
            acquirer: inst_number(&msg.acquirer_id()?),
            forwarding: inst_number(&msg.forwarding_id()?),
        })
    }

    /// The key an F90 names.
    #[must_use]
    pub fn of_original(od: &iso8583::subfields::OriginalData) -> TxnKey {
        let transmission = od
            .transmission
            .iter()
            .fold(0u64, |a, &b| a * 10 + u64::from(b.wrapping_sub(b'0') % 10));
        TxnKey {
            transmission,
            stan: od.stan,
            acquirer: od.acquirer,
            forwarding: od.forwarding,
        }
    }
}

/// Mandatory fields for requests from an acquirer (SPEC.md section 5). Returns the first
/// missing field.
#[must_use]
pub fn missing_mandatory(msg: &Message, kind: TxnKind) -> Option<u8> {
    const COMMON: [u8; 14] = [3, 7, 11, 18, 22, 25, 32, 33, 37, 41, 42, 49, 60, 4];
    if kind == TxnKind::NetworkManagement {
        return [7, 11, 70].into_iter().find(|&n| !msg.has(n));
    }
    for n in COMMON {
        if n == 4 && kind == TxnKind::BalanceInquiry {
            continue;
        }
        if !msg.has(n) {
            return Some(n);
        }
    }
    if kind.needs_original() {
        if !msg.has(90) {
            return Some(90);
        }
    } else if !msg.has(2) {
        return Some(2);
    }
    None
}

/// Fields echoed from a request into a switch-generated response. Never the sensitive ones
/// (tracks, PIN block, expiry, CVN2).
pub const RESPONSE_ECHO: &[u8] = &[
    2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 15, 16, 18, 19, 23, 25, 28, 32, 33, 37, 41, 42, 44, 48,
    49, 50, 51, 60, 70, 90, 100, 102, 103, 121, 122, 123,
];

/// A response from the switch itself to `request` (decline or network management answer):
/// response MTI, source = switch, dest = the requester, header fields 6-9 echoed.
#[must_use]
pub fn switch_response(
    request: &Message,
    switch_id: InstId,
    code: ResponseCode,
    settlement_mmdd: &[u8; 4],
    reason: Option<&str>,
) -> MessageBuilder {
    let mut b = MessageBuilder::response_to(request, RESPONSE_ECHO, code);
    let mut h: Header = request.header().response();
    h.source = switch_id;
    b.set_header(h);
    if request.mti().class() != 8 {
        b.set(15, settlement_mmdd);
    }
    if let Some(text) = reason {
        b.set(
            44,
            text.as_bytes()
                .get(..25.min(text.len()))
                .unwrap_or_default(),
        );
    }
    b
}

/// Build a 0420 reversal advice for the transaction `template` describes (the acquirer's
/// request, or the issuer's late response). F90 names the original as the issuer knows it:
/// `original_stan` (the F11 the switch sent it) with the template's F7, F32, F33; F60.1
/// carries `reason`.
#[allow(clippy::too_many_arguments)]
pub fn build_reversal(
    template: &Message,
    original_stan: u32,
    reason: [u8; 4],
    switch_id: InstId,
    issuer: InstId,
    stan: u32,
    transmission: &[u8; 10],
    settlement_mmdd: &[u8; 4],
) -> Result<bytes::Bytes, iso8583::EncodeError> {
    use iso8583::subfields::{OriginalData, F60};
    let mut b = MessageBuilder::new(Mti::REVERSAL_ADVICE, Header::new(issuer, switch_id));
    for n in [2u8, 3, 4, 18, 22, 25, 32, 33, 37, 41, 42, 49] {
        if let Some(v) = template.field(n) {
            b.set(n, v);
        }
    }
    b.set(100, issuer.as_bytes());
    b.set(7, transmission);
    b.set_numeric(11, u64::from(stan % 1_000_000));
    b.set(15, settlement_mmdd);
    b.set(
        60,
        template.f60().unwrap_or(F60(b"0000")).with_reason(reason),
    );
    if let (Some(f7), Some(acq), Some(fwd)) = (
        template.transmission_time(),
        template.acquirer_id(),
        template.forwarding_id(),
    ) {
        b.set(
            90,
            OriginalData::new(template.mti().request(), original_stan, f7, &acq, &fwd).encode(),
        );
    }
    b.build()
}

/// The F90 of a related request as the issuer must see it: the original named by the F11
/// the switch gave it there (`original_issuer_stan`), the rest as the acquirer sent it.
/// `None` when the request has no well-formed F90.
#[must_use]
pub fn f90_for_issuer(request: &Message, original_issuer_stan: u32) -> Option<[u8; 42]> {
    let od = request.original_data()?.ok()?;
    Some(
        iso8583::subfields::OriginalData {
            stan: original_issuer_stan,
            ..od
        }
        .encode(),
    )
}

/// An acquirer's 0420 reversal as sent on to the issuer (store-and-forward): new header,
/// F11 and F15, F100 = issuer, and F90 naming the original by the F11 the issuer saw
/// (`original_issuer_stan`); every other field as the acquirer sent it, except those the
/// dictionary marks secret (tracks, PIN block, expiry, CVN2, keys). A reversal needs none of
/// them, and the advice is journalled until answered (SPEC 13: the journal holds no PIN
/// block or track data).
pub fn pass_on_reversal(
    request: &Message,
    original_issuer_stan: u32,
    switch_id: InstId,
    issuer: InstId,
    stan: u32,
    settlement_mmdd: &[u8; 4],
) -> Result<bytes::Bytes, iso8583::EncodeError> {
    let mut header = Header::new(issuer, switch_id);
    header.flag = request.header().flag;
    let stan_digits = format!("{:06}", stan % 1_000_000);
    let f90 = f90_for_issuer(request, original_issuer_stan);
    let mut rewrite = request
        .rewrite()
        .header(header)
        .drop_secret()
        .set(11, stan_digits.as_bytes())
        .set(15, settlement_mmdd)
        .set(100, issuer.as_bytes());
    if let Some(f90) = &f90 {
        rewrite = rewrite.set(90, f90);
    }
    rewrite.finish()
}

/// SPEC.md section 9 rule 5 for an installment purchase (F25 = 64): F48 usage `IP` present
/// and well formed (`30`), the card range and the issuer open for installments (`40`).
/// Returns the decline with its F44 reason.
pub fn installment_check(
    msg: &Message,
    bin_enabled: bool,
    issuer_enabled: bool,
) -> Result<(), (ResponseCode, &'static str)> {
    match msg.installment_request() {
        Some(Ok(_)) => {}
        Some(Err(_)) => return Err((ResponseCode::FORMAT_ERROR, "F48 IP MALFORMED")),
        None => return Err((ResponseCode::FORMAT_ERROR, "F48 IP MISSING")),
    }
    if !bin_enabled {
        return Err((ResponseCode::NOT_SUPPORTED, "CARD NO INSTALLMENT"));
    }
    if !issuer_enabled {
        return Err((ResponseCode::NOT_SUPPORTED, "ISSUER NO INSTALLMENT"));
    }
    Ok(())
}

/// SPEC.md section 11: an approved installment answer must carry F57 usage `IP` with a
/// subsidy rate within 0 to 100 % (x 10^4). Anything else is treated as no approval.
#[must_use]
pub fn installment_approval_ok(resp: &Message) -> bool {
    matches!(resp.installment_response(), Some(Ok(ip)) if ip.subsidy_rate <= 10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(mti: &[u8; 4], pc: &str, cond: &str, extra: &[(u8, &str)]) -> Message {
        let h = Header::new(
            InstId::new("00010000").unwrap(),
            InstId::new("01030000").unwrap(),
        );
        let mut b = MessageBuilder::new(Mti(*mti), h);
        b.set(3, pc).set(25, cond);
        for (n, v) in extra {
            b.set(*n, v);
        }
        Message::decode(b.build().unwrap()).unwrap()
    }

    /// A reversal carrying every secret field the dictionary has (seven: more than a
    /// rewrite's changes) is still passed on, without any of them. Removing them one change
    /// each overflowed the rewrite, and the advice was never built.
    #[test]
    fn a_passed_on_reversal_drops_every_secret_field_however_many() {
        let secret: &[(u8, &str)] = &[
            (14, "2612"),
            (35, "6222020000000123=2612101"),
            (36, "6222020000000123=2612101"),
            (45, "B6222020000000123^TEST^2612101"),
            (52, "\x01\x02\x03\x04\x05\x06\x07\x08"),
            (61, "123"),
            (96, "\x11\x12\x13\x14\x15\x16\x17\x18"),
        ];
        let mut fields: Vec<(u8, &str)> = vec![
            (2, "6222020000000123"),
            (4, "000000001000"),
            (7, "1121093000"),
            (11, "000001"),
            (32, "01030000"),
            (33, "01030000"),
            (90, "020000000711210930000001030000000001030000"),
        ];
        fields.extend_from_slice(secret);
        fields.sort_by_key(|f| f.0);
        let req = msg(b"0420", "000000", "00", &fields);
        for (n, _) in secret {
            assert!(req.has(*n), "the request carries F{n}");
        }
        let out = pass_on_reversal(
            &req,
            42,
            InstId::new("00010000").unwrap(),
            InstId::new("03010000").unwrap(),
            7,
            b"1121",
        )
        .expect("the advice is built");
        let adv = Message::decode(out).unwrap();
        for (n, _) in secret {
            assert!(!adv.has(*n), "F{n} passed on");
        }
        assert_eq!(adv.field(2), req.field(2));
        assert_eq!(adv.field(4), req.field(4));
        assert_eq!(adv.field(11), Some(&b"000007"[..]));
        assert_eq!(adv.field(100), Some(&b"03010000"[..]));
        assert!(adv.has(90));
    }

    #[test]
    fn classification_table() {
        let cases: &[(&[u8; 4], &str, &str, TxnKind)] = &[
            (b"0200", "000000", "00", TxnKind::Purchase),
            (b"0200", "000000", "64", TxnKind::InstallmentPurchase),
            (b"0200", "200000", "00", TxnKind::Void),
            (b"0200", "200000", "64", TxnKind::Void),
            (b"0220", "200000", "00", TxnKind::Refund),
            (b"0200", "300000", "00", TxnKind::BalanceInquiry),
            (b"0200", "010000", "00", TxnKind::CashWithdrawal),
            (b"0100", "030000", "06", TxnKind::Preauth),
            (b"0100", "200000", "06", TxnKind::PreauthVoid),
            (b"0200", "000000", "06", TxnKind::PreauthCompletion),
            (b"0420", "000000", "00", TxnKind::Reversal),
            (b"0200", "400000", "00", TxnKind::Unknown),
        ];
        for (mti, pc, cond, kind) in cases {
            assert_eq!(TxnKind::of(&msg(mti, pc, cond, &[])), *kind, "{pc} {cond}");
        }
    }

    #[test]
    fn mandatory_fields() {
        let full: Vec<(u8, &str)> = vec![
            (2, "6222020000000123"),
            (4, "000000001000"),
            (7, "1121093000"),
            (11, "000001"),
            (18, "5411"),
            (22, "051"),
            (32, "01030000"),
            (33, "01030000"),
            (37, "000000000001"),
            (41, "TERM0001"),
            (42, "MERCHANT0000001"),
            (49, "156"),
            (60, "0000"),
        ];
        let m = msg(b"0200", "000000", "00", &full);
        assert_eq!(missing_mandatory(&m, TxnKind::Purchase), None);
        assert_eq!(missing_mandatory(&m, TxnKind::Void), Some(90));
        let without_amount: Vec<_> = full.iter().copied().filter(|(n, _)| *n != 4).collect();
        let bal = msg(b"0200", "300000", "00", &without_amount);
        assert_eq!(missing_mandatory(&bal, TxnKind::BalanceInquiry), None);
        assert_eq!(missing_mandatory(&bal, TxnKind::Purchase), Some(4));
        let without_mcc: Vec<_> = full.iter().copied().filter(|(n, _)| *n != 18).collect();
        assert_eq!(
            missing_mandatory(
                &msg(b"0200", "000000", "00", &without_mcc),
                TxnKind::Purchase
            ),
            Some(18)
        );
        let key = TxnKey::of(&m).unwrap();
        assert_eq!(
            (key.transmission, key.stan, key.acquirer),
            (1_121_093_000, 1, 1_030_000)
        );
    }

    #[test]
    fn installment_rule_table() {
        use iso8583::subfields::{FeeMode, InstallmentRequest, InstallmentResponse};
        let ip = InstallmentRequest {
            periods: 6,
            project_code: InstallmentRequest::project_code_from(""),
            fee_mode: FeeMode::Spread,
            fee_rate: 4320,
            subsidy_rate: 0,
        }
        .encode();
        let ip = String::from_utf8(ip).unwrap();
        let good = msg(b"0200", "000000", "64", &[(48, &ip)]);
        let bad = msg(b"0200", "000000", "64", &[(48, "IP06")]);
        let missing = msg(b"0200", "000000", "64", &[]);
        let code = |r: Result<(), (ResponseCode, &str)>| r.err().map(|(c, _)| c.to_string());
        assert_eq!(code(installment_check(&good, true, true)), None);
        assert_eq!(
            code(installment_check(&bad, true, true)).as_deref(),
            Some("30")
        );
        assert_eq!(
            code(installment_check(&missing, true, true)).as_deref(),
            Some("30")
        );
        assert_eq!(
            code(installment_check(&good, false, true)).as_deref(),
            Some("40")
        );
        assert_eq!(
            code(installment_check(&good, true, false)).as_deref(),
            Some("40")
        );

        let f57 = |rate: u32| {
            let v = InstallmentResponse {
                first_amount: 1,
                currency: 156,
                cardholder_fee: 0,
                subsidy_rate: rate,
            }
            .encode();
            msg(
                b"0210",
                "000000",
                "64",
                &[(57, &String::from_utf8(v).unwrap())],
            )
        };
        assert!(installment_approval_ok(&f57(10_000)));
        assert!(!installment_approval_ok(&f57(10_001)));
        assert!(!installment_approval_ok(&missing));
    }
}
