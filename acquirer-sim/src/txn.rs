//! Request builders for every transaction of SPEC.md section 5, with the mandatory fields
//! filled from [`TxnParams`] (2, 3, 4, 7, 11, 12, 13, 18, 22, 25, 32, 33, 37, 41, 42, 49,
//! 60; 90 for related transactions, F60.1 reason for reversals).

use iso8583::subfields::{InstallmentRequest, OriginalData};
use iso8583::{mask_pan, Header, InstId, Message, MessageBuilder, Mti};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// The bundled demo acquirer.
pub const DEFAULT_ACQUIRER: &str = "01030000";
/// Default switch institution ID.
pub const DEFAULT_SWITCH_ID: &str = "00010000";
/// A demo PAN routed to the bundled demo issuer (`03010000`).
pub const DEFAULT_PAN: &str = "6222020000000123";
pub const DEFAULT_TERMINAL: &str = "TERM0001";
pub const DEFAULT_MERCHANT: &str = "MERCHANT0000001";
pub const DEFAULT_MCC: &str = "5411";
pub const DEFAULT_CURRENCY: &str = "156";
/// F22: magnetic stripe read, PIN entry capable.
pub const DEFAULT_ENTRY_MODE: &str = "021";
/// F60: reason 0000, stripe read, POS terminal (60.2.5 = 03).
pub const DEFAULT_F60: &str = "000002000300000";

/// A transaction could not be built from its parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("{what} {value:?} is not an institution ID (1 to 11 digits)")]
    BadInstitution { what: &'static str, value: String },
    #[error("amount {0} is negative")]
    NegativeAmount(i64),
    #[error("the PIN must be 4 to 12 digits and the PAN 13 to 19 digits for a PIN block")]
    BadPin,
}

/// ISO 9564 format 0 PIN block for `pin` and `pan`, in clear (joint-testing simulators hold
/// no keys).
pub fn pin_block(pin: &str, pan: &str) -> Result<[u8; 8], TxnError> {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(4..=12).contains(&pin.len()) || !digits(pin) || pan.len() < 13 || !digits(pan) {
        return Err(TxnError::BadPin);
    }
    let mut nibbles = Vec::with_capacity(16);
    nibbles.push(0u8);
    nibbles.push(u8::try_from(pin.len()).map_err(|_| TxnError::BadPin)?);
    nibbles.extend(pin.bytes().map(|d| d - b'0'));
    nibbles.resize(16, 0x0F);
    let pan_digits: Vec<u8> = pan.bytes().map(|d| d - b'0').collect();
    let body = pan_digits
        .get(pan_digits.len() - 13..pan_digits.len() - 1)
        .ok_or(TxnError::BadPin)?;
    let mut pan_nibbles = vec![0u8; 4];
    pan_nibbles.extend_from_slice(body);
    let mut out = [0u8; 8];
    for (i, slot) in out.iter_mut().enumerate() {
        let n = |v: &[u8], k: usize| v.get(k).copied().unwrap_or(0);
        let pin_byte = (n(&nibbles, 2 * i) << 4) | n(&nibbles, 2 * i + 1);
        let pan_byte = (n(&pan_nibbles, 2 * i) << 4) | n(&pan_nibbles, 2 * i + 1);
        *slot = pin_byte ^ pan_byte;
    }
    Ok(out)
}

/// What a transaction is about. `Debug` masks the PAN.
#[derive(Clone, PartialEq, Eq)]
pub struct TxnParams {
    /// F32 and header source.
    pub acquirer: String,
    /// F33 (forwarding institution); usually the acquirer itself.
    pub forwarding: String,
    /// Header destination.
    pub switch_id: String,
    /// F2.
    pub pan: String,
    /// F4, minor units of `currency`.
    pub amount: i64,
    /// F41 (ans8, space-filled).
    pub terminal: String,
    /// F42 (ans15, space-filled).
    pub merchant: String,
    /// F18.
    pub mcc: String,
    /// F49.
    pub currency: String,
    /// F22.
    pub entry_mode: String,
    /// F11.
    pub stan: u32,
    /// F7 `MMDDhhmmss`; F13 and F12 are taken from it.
    pub transmission: [u8; 10],
    /// Test PIN: sent in F52 as an ISO 9564 format 0 block (clear: test keys only).
    pub pin: Option<String>,
    /// CVN2: sent in F61 as `CV` + 3 digits (the issuer simulator's convention).
    pub cvn2: Option<String>,
    /// Expiry `YYMM`: F14.
    pub expiry: Option<String>,
}

impl fmt::Debug for TxnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnParams")
            .field("acquirer", &self.acquirer)
            .field("forwarding", &self.forwarding)
            .field("switch_id", &self.switch_id)
            .field("pan", &mask_pan(self.pan.as_bytes()))
            .field("amount", &self.amount)
            .field("terminal", &self.terminal)
            .field("merchant", &self.merchant)
            .field("mcc", &self.mcc)
            .field("currency", &self.currency)
            .field("entry_mode", &self.entry_mode)
            .field("stan", &self.stan)
            .field("transmission", &String::from_utf8_lossy(&self.transmission))
            .field("pin", &self.pin.as_ref().map(|_| "****"))
            .field("cvn2", &self.cvn2.as_ref().map(|_| "***"))
            .field("expiry", &self.expiry.as_ref().map(|_| "****"))
            .finish()
    }
}

impl TxnParams {
    /// Parameters with the bundled defaults: acquirer `01030000` (also F33), switch
    /// `00010000`, terminal `TERM0001`, merchant `MERCHANT0000001`, MCC `5411`, currency
    /// `156`, entry mode `021`.
    #[must_use]
    pub fn new(pan: &str, amount: i64, stan: u32, transmission: [u8; 10]) -> Self {
        Self {
            acquirer: DEFAULT_ACQUIRER.to_owned(),
            forwarding: DEFAULT_ACQUIRER.to_owned(),
            switch_id: DEFAULT_SWITCH_ID.to_owned(),
            pan: pan.to_owned(),
            amount,
            terminal: DEFAULT_TERMINAL.to_owned(),
            merchant: DEFAULT_MERCHANT.to_owned(),
            mcc: DEFAULT_MCC.to_owned(),
            currency: DEFAULT_CURRENCY.to_owned(),
            entry_mode: DEFAULT_ENTRY_MODE.to_owned(),
            stan,
            transmission,
            pin: None,
            cvn2: None,
            expiry: None,
        }
    }

    /// Send this test PIN in F52.
    #[must_use]
    pub fn with_pin(mut self, pin: &str) -> Self {
        self.pin = Some(pin.to_owned());
        self
    }

    /// Send this CVN2 in F61.
    #[must_use]
    pub fn with_cvn2(mut self, cvn2: &str) -> Self {
        self.cvn2 = Some(cvn2.to_owned());
        self
    }

    /// Send this expiry (`YYMM`) in F14.
    #[must_use]
    pub fn with_expiry(mut self, yymm: &str) -> Self {
        self.expiry = Some(yymm.to_owned());
        self
    }

    /// Defaults with the next STAN of `stans` and the current time as F7.
    #[must_use]
    pub fn from_source(stans: &StanSource, pan: &str, amount: i64) -> Self {
        Self::new(pan, amount, stans.next_stan(), StanSource::now())
    }

    /// Set the acquirer (F32, header source) and forwarding institution (F33) to `id`.
    #[must_use]
    pub fn with_acquirer(mut self, id: &str) -> Self {
        self.acquirer = id.to_owned();
        self.forwarding = id.to_owned();
        self
    }

    #[must_use]
    pub fn with_switch_id(mut self, id: &str) -> Self {
        self.switch_id = id.to_owned();
        self
    }

    #[must_use]
    pub fn with_amount(mut self, amount: i64) -> Self {
        self.amount = amount;
        self
    }

    /// The same parameters with a fresh STAN and F7: for the next message of a sequence
    /// (a void after its purchase).
    #[must_use]
    pub fn renewed(&self, stans: &StanSource) -> Self {
        Self {
            stan: stans.next_stan(),
            transmission: StanSource::now(),
            ..self.clone()
        }
    }
}

/// Unique STANs (1 to 999999, wrapping) and the current F7.
#[derive(Debug)]
pub struct StanSource {
    next: AtomicU32,
}

impl Default for StanSource {
    fn default() -> Self {
        Self::new(1)
    }
}

impl StanSource {
    /// STANs from `start` (taken modulo 999999, 0 becomes 1).
    #[must_use]
    pub fn new(start: u32) -> Self {
        Self {
            next: AtomicU32::new(start.saturating_sub(1) % 999_999),
        }
    }

    /// Start at a random STAN (separate processes rarely collide within one second).
    #[must_use]
    pub fn random() -> Self {
        Self::new(rand::random::<u32>() % 999_999 + 1)
    }

    /// The next STAN.
    pub fn next_stan(&self) -> u32 {
        let n = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some((n + 1) % 999_999)
            })
            .unwrap_or_default();
        n + 1
    }

    /// The next STAN with the current F7.
    pub fn next(&self) -> (u32, [u8; 10]) {
        (self.next_stan(), Self::now())
    }

    /// The current local time as F7 `MMDDhhmmss`.
    #[must_use]
    pub fn now() -> [u8; 10] {
        let text = chrono::Local::now().format("%m%d%H%M%S").to_string();
        text.as_bytes().try_into().unwrap_or(*b"0101000000")
    }
}

/// What a related transaction (void, refund, completion, reversal) needs to know about its
/// original: the F90 key, and F3/F25/F38 to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    pub data: OriginalData,
    /// Original F3 (its account digits 3-6 are reused).
    pub processing_code: [u8; 6],
    /// Original F25.
    pub pos_condition: [u8; 2],
    /// Original F38 (the issuer's authorisation code), if known.
    pub auth_code: Option<[u8; 6]>,
}

impl Original {
    /// From F90 data alone: F3 `000000`, F25 `00`, no auth code.
    #[must_use]
    pub fn new(data: OriginalData) -> Self {
        Self {
            data,
            processing_code: *b"000000",
            pos_condition: *b"00",
            auth_code: None,
        }
    }

    #[must_use]
    pub fn with_pos_condition(mut self, f25: [u8; 2]) -> Self {
        self.pos_condition = f25;
        self
    }

    #[must_use]
    pub fn with_auth_code(mut self, code: [u8; 6]) -> Self {
        self.auth_code = Some(code);
        self
    }

    /// From the original request or its response (which echoes 3, 7, 11, 25, 32, 33 and
    /// carries 38). `None` if F7, F11, F32 or F33 is missing.
    #[must_use]
    pub fn from_message(msg: &Message) -> Option<Self> {
        Self::from_fields(msg.mti(), |n| msg.field(n))
    }

    /// From the builder of the original request.
    #[must_use]
    pub fn from_builder(b: &MessageBuilder) -> Option<Self> {
        Self::from_fields(b.mti(), |n| b.get(n))
    }

    fn from_fields<'a>(mti: Mti, get: impl Fn(u8) -> Option<&'a [u8]>) -> Option<Self> {
        let stan = std::str::from_utf8(get(11)?).ok()?.parse().ok()?;
        let transmission = get(7)?.try_into().ok()?;
        let acquirer = InstId::from_digits(get(32)?)?;
        let forwarding = InstId::from_digits(get(33)?)?;
        Some(Self {
            data: OriginalData::new(mti.request(), stan, transmission, &acquirer, &forwarding),
            processing_code: get(3).and_then(|v| v.try_into().ok()).unwrap_or(*b"000000"),
            pos_condition: get(25).and_then(|v| v.try_into().ok()).unwrap_or(*b"00"),
            auth_code: get(38).and_then(|v| v.try_into().ok()),
        })
    }

    /// `prefix` + the original's account digits (F3 positions 3-6).
    fn processing_with(&self, prefix: &[u8; 2]) -> [u8; 6] {
        let mut out = self.processing_code;
        out[0] = prefix[0];
        out[1] = prefix[1];
        out
    }
}

fn inst(what: &'static str, value: &str) -> Result<InstId, TxnError> {
    InstId::new(value).ok_or_else(|| TxnError::BadInstitution {
        what,
        value: value.to_owned(),
    })
}

/// The header of a message from the acquirer to the switch.
pub fn header(p: &TxnParams) -> Result<Header, TxnError> {
    Ok(Header::new(
        inst("switch ID", &p.switch_id)?,
        inst("acquirer", &p.acquirer)?,
    ))
}

fn six_digits(n: u32) -> String {
    format!("{:06}", n % 1_000_000)
}

/// The fields every financial/authorisation request carries.
fn base(p: &TxnParams, mti: Mti, f3: &[u8; 6], f25: &[u8; 2]) -> Result<MessageBuilder, TxnError> {
    let amount = u64::try_from(p.amount).map_err(|_| TxnError::NegativeAmount(p.amount))?;
    inst("forwarding institution", &p.forwarding)?;
    let mut b = MessageBuilder::new(mti, header(p)?);
    let t = &p.transmission;
    let stan = six_digits(p.stan);
    let mut rrn = Vec::with_capacity(12);
    rrn.extend_from_slice(t.get(4..10).unwrap_or(b"000000"));
    rrn.extend_from_slice(stan.as_bytes());
    if !p.pan.is_empty() {
        b.set(2, &p.pan);
    }
    b.set(3, f3)
        .set_numeric(4, amount)
        .set(7, t)
        .set(11, &stan)
        .set(12, t.get(4..10).unwrap_or(b"000000"))
        .set(13, t.get(..4).unwrap_or(b"0101"))
        .set_text(18, &p.mcc)
        .set(22, &p.entry_mode)
        .set(25, f25)
        .set(32, &p.acquirer)
        .set(33, &p.forwarding)
        .set(37, rrn)
        .set_text(41, &p.terminal)
        .set_text(42, &p.merchant)
        .set(49, &p.currency)
        .set(60, DEFAULT_F60);
    if let Some(pin) = &p.pin {
        b.set(52, pin_block(pin, &p.pan)?);
    }
    if let Some(cvn2) = &p.cvn2 {
        b.set(61, format!("CV{cvn2}"));
    }
    if let Some(expiry) = &p.expiry {
        b.set(14, expiry);
    }
    Ok(b)
}

/// Fields of a related transaction: F90, and F38 when the original's code is known.
fn related(mut b: MessageBuilder, original: &Original) -> MessageBuilder {
    b.set(90, original.data.encode());
    if let Some(code) = original.auth_code {
        b.set(38, code);
    }
    b
}

/// Purchase: `0200`, F3 `000000`, F25 `00`.
pub fn purchase(p: &TxnParams) -> Result<MessageBuilder, TxnError> {
    base(p, Mti::FINANCIAL_REQUEST, b"000000", b"00")
}

/// Installment purchase: `0200`, F3 `000000`, F25 `64`, F48 `IP`.
pub fn installment_purchase(
    p: &TxnParams,
    ip: &InstallmentRequest,
) -> Result<MessageBuilder, TxnError> {
    let mut b = base(p, Mti::FINANCIAL_REQUEST, b"000000", b"64")?;
    b.set(48, ip.encode());
    Ok(b)
}

/// Balance inquiry: `0200`, F3 `300000`, F25 `00`, no F4.
pub fn balance_inquiry(p: &TxnParams) -> Result<MessageBuilder, TxnError> {
    let mut b = base(p, Mti::FINANCIAL_REQUEST, b"300000", b"00")?;
    b.remove(4);
    Ok(b)
}

/// Cash withdrawal (agent banking): `0200`, F3 `010000`, F25 `00`.
pub fn cash_withdrawal(p: &TxnParams) -> Result<MessageBuilder, TxnError> {
    base(p, Mti::FINANCIAL_REQUEST, b"010000", b"00")
}

/// Preauthorisation: `0100`, F3 `030000`, F25 `06`.
pub fn preauth(p: &TxnParams) -> Result<MessageBuilder, TxnError> {
    base(p, Mti::AUTH_REQUEST, b"030000", b"06")
}

/// Preauthorisation void: `0100`, F3 `20x000`, F25 `06`, F90 (and F38 if known).
pub fn preauth_void(p: &TxnParams, original: &Original) -> Result<MessageBuilder, TxnError> {
    let b = base(
        p,
        Mti::AUTH_REQUEST,
        &original.processing_with(b"20"),
        b"06",
    )?;
    Ok(related(b, original))
}

/// Preauthorisation completion: `0200`, F3 `00x000`, F25 `06`, F38 = the preauth's code,
/// F90.
pub fn preauth_completion(p: &TxnParams, original: &Original) -> Result<MessageBuilder, TxnError> {
    let b = base(
        p,
        Mti::FINANCIAL_REQUEST,
        &original.processing_with(b"00"),
        b"06",
    )?;
    Ok(related(b, original))
}

/// Void of a purchase or installment purchase: `0200`, F3 `20x000`, F25 as the original,
/// F90 (and F38 if known). `p.amount` must be the original's full amount.
pub fn void(p: &TxnParams, original: &Original) -> Result<MessageBuilder, TxnError> {
    let b = base(
        p,
        Mti::FINANCIAL_REQUEST,
        &original.processing_with(b"20"),
        &original.pos_condition,
    )?;
    Ok(related(b, original))
}

/// Online refund: `0220`, F3 `20x000`, F25 `00`, F90. Partial amounts allowed.
pub fn refund(p: &TxnParams, original: &Original) -> Result<MessageBuilder, TxnError> {
    let mut b = base(
        p,
        Mti::FINANCIAL_ADVICE,
        &original.processing_with(b"20"),
        b"00",
    )?;
    b.set(90, original.data.encode());
    Ok(b)
}

/// Reversal advice: `0420`, F3 and F25 as the original, F90, F60.1 = `reason` (e.g.
/// [`iso8583::subfields::reason::TERMINAL_REVERSAL`]). `p.amount` is the original amount.
pub fn reversal(
    p: &TxnParams,
    original: &Original,
    reason: [u8; 4],
) -> Result<MessageBuilder, TxnError> {
    let b = base(
        p,
        Mti::REVERSAL_ADVICE,
        &original.processing_code,
        &original.pos_condition,
    )?;
    let mut b = related(b, original);
    b.set(
        60,
        iso8583::subfields::F60(DEFAULT_F60.as_bytes()).with_reason(reason),
    );
    Ok(b)
}

/// Network management `0820` with this F70 (F7, F11, F33 = the acquirer).
pub fn network(p: &TxnParams, code: u16) -> Result<MessageBuilder, TxnError> {
    let mut b = MessageBuilder::new(Mti::NETWORK_REQUEST, header(p)?);
    b.set(7, p.transmission)
        .set(11, six_digits(p.stan))
        .set(33, &p.acquirer)
        .set_numeric(70, u64::from(code));
    Ok(b)
}

/// Sign-on `0820/001`.
pub fn sign_on(p: &TxnParams) -> Result<MessageBuilder, TxnError> {
    network(p, 1)
}

/// Sign-off `0820/002`.
pub fn sign_off(p: &TxnParams) -> Result<MessageBuilder, TxnError> {
    network(p, 2)
}

/// Echo test `0820/301`.
pub fn echo(p: &TxnParams) -> Result<MessageBuilder, TxnError> {
    network(p, 301)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iso8583::subfields::FeeMode;

    fn params() -> TxnParams {
        TxnParams::new(DEFAULT_PAN, 1000, 42, *b"1121093000")
    }

    fn decode(b: &MessageBuilder) -> Message {
        Message::decode(b.build().unwrap()).unwrap()
    }

    const MANDATORY: [u8; 17] = [
        2, 3, 4, 7, 11, 12, 13, 18, 22, 25, 32, 33, 37, 41, 42, 49, 60,
    ];

    #[test]
    fn purchase_has_the_mandatory_fields() {
        let m = decode(&purchase(&params()).unwrap());
        for n in MANDATORY {
            assert!(m.has(n), "F{n}");
        }
        assert_eq!(m.mti(), Mti::FINANCIAL_REQUEST);
        assert_eq!(m.header().dest.as_str(), DEFAULT_SWITCH_ID);
        assert_eq!(m.header().source.as_str(), DEFAULT_ACQUIRER);
        assert_eq!(m.field(11), Some(&b"000042"[..]));
        assert_eq!(m.field(12), Some(&b"093000"[..]));
        assert_eq!(m.field(13), Some(&b"1121"[..]));
        assert_eq!(m.field(37), Some(&b"093000000042"[..]));
        assert_eq!(m.field(41), Some(&b"TERM0001"[..]));
        assert_eq!(m.amount(), Some(1000));
        assert!(!format!("{:?}", params()).contains(DEFAULT_PAN));
    }

    #[test]
    fn every_kind_builds() {
        let p = params();
        let ip = InstallmentRequest {
            periods: 6,
            project_code: [b' '; 30],
            fee_mode: FeeMode::Spread,
            fee_rate: 4320,
            subsidy_rate: 1000,
        };
        let inst = decode(&installment_purchase(&p, &ip).unwrap());
        assert_eq!(
            (
                inst.pos_condition(),
                inst.installment_request().unwrap().unwrap()
            ),
            (Some(64), ip.clone())
        );
        let bal = decode(&balance_inquiry(&p).unwrap());
        assert!(!bal.has(4));
        assert_eq!(bal.processing_code(), Some(*b"300000"));
        assert_eq!(
            decode(&cash_withdrawal(&p).unwrap()).processing_code(),
            Some(*b"010000")
        );
        let pre = decode(&preauth(&p).unwrap());
        assert_eq!(
            (pre.mti(), pre.pos_condition()),
            (Mti::AUTH_REQUEST, Some(6))
        );

        let orig = Original::from_message(&pre)
            .unwrap()
            .with_auth_code(*b"123456");
        assert_eq!(orig.data.mti, Mti::AUTH_REQUEST);
        let pv = decode(&preauth_void(&p, &orig).unwrap());
        assert_eq!(
            (pv.processing_code(), pv.field(38)),
            (Some(*b"200000"), Some(&b"123456"[..]))
        );
        let comp = decode(&preauth_completion(&p, &orig).unwrap());
        assert_eq!(
            (comp.mti(), comp.processing_code(), comp.pos_condition()),
            (Mti::FINANCIAL_REQUEST, Some(*b"000000"), Some(6))
        );
        assert_eq!(comp.original_data().unwrap().unwrap(), orig.data);

        let purchase_orig =
            Original::from_builder(&installment_purchase(&p, &ip).unwrap()).unwrap();
        let v = decode(&void(&p, &purchase_orig).unwrap());
        assert_eq!(
            (v.processing_code(), v.pos_condition()),
            (Some(*b"200000"), Some(64))
        );
        assert_eq!(
            v.field(90),
            Some(&b"020000004211210930000000103000000001030000"[..])
        );
        let r = decode(&refund(&p.clone().with_amount(500), &purchase_orig).unwrap());
        assert_eq!(
            (r.mti(), r.pos_condition(), r.amount()),
            (Mti::FINANCIAL_ADVICE, Some(0), Some(500))
        );
        let rev = decode(
            &reversal(
                &p,
                &purchase_orig,
                iso8583::subfields::reason::TERMINAL_REVERSAL,
            )
            .unwrap(),
        );
        assert_eq!(rev.mti(), Mti::REVERSAL_ADVICE);
        assert_eq!(rev.f60().unwrap().reason_code(), Some(&b"4351"[..]));
        assert_eq!(
            (rev.processing_code(), rev.pos_condition()),
            (Some(*b"000000"), Some(64))
        );

        let so = decode(&sign_on(&p).unwrap());
        assert_eq!(
            (so.mti(), so.network_code(), so.field(33)),
            (Mti::NETWORK_REQUEST, Some(1), Some(&b"01030000"[..]))
        );
        assert_eq!(decode(&echo(&p).unwrap()).network_code(), Some(301));
        assert_eq!(decode(&sign_off(&p).unwrap()).network_code(), Some(2));
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(matches!(
            purchase(&params().with_acquirer("X1")),
            Err(TxnError::BadInstitution { .. })
        ));
        assert!(matches!(
            purchase(&params().with_amount(-1)),
            Err(TxnError::NegativeAmount(-1))
        ));
        // Field-level problems surface when the builder is built.
        let mut p = params();
        p.mcc = "54111".into();
        assert!(purchase(&p).unwrap().build().is_err());
    }

    #[test]
    fn pin_cvn2_expiry() {
        // ISO 9564-1 format 0 example: PIN 1234, PAN 4000001234562000 ->
        // PIN field 041234FFFFFFFFFF xor PAN field 0000000123456200.
        let block = pin_block("1234", "4000001234562000").unwrap();
        assert_eq!(block, [0x04, 0x12, 0x34, 0xFE, 0xDC, 0xBA, 0x9D, 0xFF]);
        assert!(pin_block("12", DEFAULT_PAN).is_err());
        let p = params()
            .with_pin("1234")
            .with_cvn2("123")
            .with_expiry("3012");
        let m = decode(&purchase(&p).unwrap());
        assert_eq!(m.field(52).map(<[u8]>::len), Some(8));
        assert_eq!(m.field(61), Some(&b"CV123"[..]));
        assert_eq!(m.field(14), Some(&b"3012"[..]));
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("1234") && !shown.contains("3012"),
            "{shown}"
        );
    }

    #[test]
    fn stans_are_unique_and_wrap() {
        let s = StanSource::new(999_998);
        assert_eq!(
            (s.next_stan(), s.next_stan(), s.next_stan()),
            (999_998, 999_999, 1)
        );
        let d = StanSource::default();
        assert_eq!(d.next_stan(), 1);
        assert_eq!(StanSource::now().len(), 10);
        assert!(StanSource::now().iter().all(u8::is_ascii_digit));
    }
}
