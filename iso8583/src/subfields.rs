//! Structured sub-field access: F48/F57 usage `IP` (SPEC.md section 11), F60 positional
//! subfields (4.1), F90 original data elements and F54 balance records.

use crate::header::InstId;
use crate::mti::Mti;

/// A sub-field could not be read. Names the field and the position inside its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason} at value position {position}")]
pub struct SubfieldError {
    pub field: u8,
    /// Byte position inside the field value (0-based).
    pub position: usize,
    pub reason: &'static str,
}

fn err(field: u8, position: usize, reason: &'static str) -> SubfieldError {
    SubfieldError {
        field,
        position,
        reason,
    }
}

/// Read `len` ASCII digits at `pos` of `raw` as a number.
fn digits(field: u8, raw: &[u8], pos: usize, len: usize) -> Result<u64, SubfieldError> {
    let s = raw
        .get(pos..pos + len)
        .ok_or(err(field, pos, "too short"))?;
    s.iter().enumerate().try_fold(0u64, |acc, (i, &b)| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + u64::from(b - b'0'))
        } else {
            Err(err(field, pos + i, "not a digit"))
        }
    })
}

/// `value` as `width` zero-filled digits, in place (no formatting buffer: F90 is built
/// for every related request). A value wider than its slot is cut to the rightmost
/// digits; callers bound values.
fn write_digits(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for d in out.get_mut(start..).unwrap_or_default().iter_mut().rev() {
        *d = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// How the installment fee is charged (F48 IP position 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FeeMode {
    /// `0`: fee spread over the periods.
    Spread,
    /// `1`: whole fee charged with the first period.
    FirstPeriod,
}

/// The installment request carried in F48 usage `IP` (62 bytes after the tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallmentRequest {
    /// Number of installments (n2).
    pub periods: u8,
    /// Plan/goods code agreed between issuer and merchant (ans30, spaces if none).
    pub project_code: [u8; 30],
    pub fee_mode: FeeMode,
    /// Full fee rate for this number of periods, fraction x 10^5 (`4320` = 4.320 %);
    /// zero = the issuer's standard rate.
    pub fee_rate: u32,
    /// Merchant subsidy rate, fraction x 10^5; zero = none.
    pub subsidy_rate: u32,
}

/// Length of F48 `IP`: tag + 62.
pub const F48_IP_LEN: usize = 64;
/// Length of F57 `IP`: tag + 83.
pub const F57_IP_LEN: usize = 85;

impl InstallmentRequest {
    /// Parse an F48 value. Must be exactly `IP` + 62 bytes.
    pub fn parse(raw: &[u8]) -> Result<Self, SubfieldError> {
        if raw.get(..2) != Some(b"IP") {
            return Err(err(48, 0, "usage tag is not IP"));
        }
        if raw.len() != F48_IP_LEN {
            return Err(err(
                48,
                raw.len().min(F48_IP_LEN),
                "IP usage must be 62 bytes after the tag",
            ));
        }
        let periods = digits(48, raw, 2, 2)?;
        if periods == 0 {
            return Err(err(48, 2, "zero periods"));
        }
        let project_code: [u8; 30] =
            raw.get(4..34)
                .and_then(|s| s.try_into().ok())
                .ok_or(err(48, 4, "too short"))?;
        if project_code.iter().any(|&b| b < 0x20 || b == 0x7F) {
            return Err(err(48, 4, "illegal character in project code"));
        }
        let fee_mode = match raw.get(35) {
            Some(b'0') => FeeMode::Spread,
            Some(b'1') => FeeMode::FirstPeriod,
            _ => return Err(err(48, 35, "fee payment mode must be 0 or 1")),
        };
        let fee_rate = digits(48, raw, 36, 6)?;
        let subsidy_rate = digits(48, raw, 42, 6)?;
        Ok(Self {
            periods: u8::try_from(periods).map_err(|_| err(48, 2, "periods"))?,
            project_code,
            fee_mode,
            fee_rate: u32::try_from(fee_rate).map_err(|_| err(48, 36, "rate"))?,
            subsidy_rate: u32::try_from(subsidy_rate).map_err(|_| err(48, 42, "rate"))?,
        })
    }

    /// Encode as the F48 value (`IP` + 62 bytes).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(F48_IP_LEN);
        out.extend_from_slice(b"IP");
        write_digits(&mut out, u64::from(self.periods), 2);
        out.extend_from_slice(&self.project_code);
        out.push(b' ');
        out.push(match self.fee_mode {
            FeeMode::Spread => b'0',
            FeeMode::FirstPeriod => b'1',
        });
        write_digits(&mut out, u64::from(self.fee_rate), 6);
        write_digits(&mut out, u64::from(self.subsidy_rate), 6);
        out.extend_from_slice(&[b' '; 16]);
        out
    }

    /// The project code without trailing spaces (lossy for non-UTF-8 bytes).
    #[must_use]
    pub fn project_code_str(&self) -> String {
        String::from_utf8_lossy(&self.project_code)
            .trim_end()
            .to_owned()
    }

    /// A project code from text, space-filled (cut at 30 bytes).
    #[must_use]
    pub fn project_code_from(text: &str) -> [u8; 30] {
        let mut code = [b' '; 30];
        for (slot, b) in code.iter_mut().zip(text.bytes()) {
            *slot = b;
        }
        code
    }
}

/// The approved installment answer carried in F57 usage `IP` (83 bytes after the tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallmentResponse {
    /// First installment amount, minor units.
    pub first_amount: i64,
    /// Repayment currency (n3).
    pub currency: u16,
    /// Cardholder installment fee, total, minor units.
    pub cardholder_fee: i64,
    /// Issuer-merchant discount (subsidy) rate, fraction x 10^4.
    pub subsidy_rate: u32,
}

impl InstallmentResponse {
    /// Parse an F57 value. Must be exactly `IP` + 83 bytes.
    pub fn parse(raw: &[u8]) -> Result<Self, SubfieldError> {
        if raw.get(..2) != Some(b"IP") {
            return Err(err(57, 0, "usage tag is not IP"));
        }
        if raw.len() != F57_IP_LEN {
            return Err(err(
                57,
                raw.len().min(F57_IP_LEN),
                "IP usage must be 83 bytes after the tag",
            ));
        }
        let first_amount = digits(57, raw, 2, 12)?;
        let currency = digits(57, raw, 14, 3)?;
        let cardholder_fee = digits(57, raw, 17, 12)?;
        let subsidy_rate = digits(57, raw, 29, 6)?;
        Ok(Self {
            first_amount: i64::try_from(first_amount).map_err(|_| err(57, 2, "amount"))?,
            currency: u16::try_from(currency).map_err(|_| err(57, 14, "currency"))?,
            cardholder_fee: i64::try_from(cardholder_fee).map_err(|_| err(57, 17, "fee"))?,
            subsidy_rate: u32::try_from(subsidy_rate).map_err(|_| err(57, 29, "rate"))?,
        })
    }

    /// Encode as the F57 value (`IP` + 83 bytes). Negative amounts encode as zero.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(F57_IP_LEN);
        out.extend_from_slice(b"IP");
        write_digits(&mut out, u64::try_from(self.first_amount).unwrap_or(0), 12);
        write_digits(&mut out, u64::from(self.currency), 3);
        write_digits(
            &mut out,
            u64::try_from(self.cardholder_fee).unwrap_or(0),
            12,
        );
        write_digits(&mut out, u64::from(self.subsidy_rate), 6);
        out.extend_from_slice(&[b' '; 50]);
        out
    }
}

/// F60 positional subfields (SPEC.md 4.1). Trailing subfields may be omitted, so every
/// accessor returns `None` when the value is too short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct F60<'a>(pub &'a [u8]);

/// Reversal reasons carried in F60.1.
pub mod reason {
    pub const TERMINAL_REVERSAL: [u8; 4] = *b"4351";
    pub const ACQUIRER_LATE_RESPONSE: [u8; 4] = *b"4353";
    pub const ACQUIRER_TIMEOUT: [u8; 4] = *b"4354";
    pub const SWITCH_LATE_APPROVAL: [u8; 4] = *b"4360";
    pub const ISSUER_TIMEOUT: [u8; 4] = *b"4361";
    pub const BAD_MAC: [u8; 4] = *b"4362";
    pub const UNDELIVERABLE: [u8; 4] = *b"4363";
}

impl<'a> F60<'a> {
    fn at(&self, start: usize, len: usize) -> Option<&'a [u8]> {
        self.0.get(start..start + len)
    }

    /// 60.1 message reason code (positions 1-4).
    #[must_use]
    pub fn reason_code(&self) -> Option<&'a [u8]> {
        self.at(0, 4)
    }
    /// 60.2.1 account owner type (position 5).
    #[must_use]
    pub fn account_owner_type(&self) -> Option<u8> {
        self.0.get(4).copied()
    }
    /// 60.2.2 terminal read capability (position 6).
    #[must_use]
    pub fn read_capability(&self) -> Option<u8> {
        self.0.get(5).copied()
    }
    /// 60.2.3 chip condition (position 7).
    #[must_use]
    pub fn chip_condition(&self) -> Option<u8> {
        self.0.get(6).copied()
    }
    /// 60.2.5 terminal type (positions 9-10).
    #[must_use]
    pub fn terminal_type(&self) -> Option<&'a [u8]> {
        self.at(8, 2)
    }
    /// 60.2.8 ECI (positions 13-14).
    #[must_use]
    pub fn eci(&self) -> Option<&'a [u8]> {
        self.at(12, 2)
    }
    /// 60.2.9 interaction mode (position 15).
    #[must_use]
    pub fn interaction_mode(&self) -> Option<u8> {
        self.0.get(14).copied()
    }
    /// 60.3 (positions 16-30).
    #[must_use]
    pub fn part3(&self) -> Option<&'a [u8]> {
        self.0.get(15..)
    }

    /// This F60 with 60.1 replaced by `reason` (padding a shorter value with `0`s for the
    /// reason code only).
    #[must_use]
    pub fn with_reason(&self, reason: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len().max(4));
        out.extend_from_slice(&reason);
        out.extend_from_slice(self.0.get(4..).unwrap_or_default());
        out
    }
}

/// F90 original data elements: identify the original of a void, refund, completion or
/// reversal. Institution IDs are right-aligned, zero-filled to 11 digits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginalData {
    pub mti: Mti,
    pub stan: u32,
    /// Original F7, `MMDDhhmmss`.
    pub transmission: [u8; 10],
    /// Original F32 as a number (the zero-filled form loses leading zeros).
    pub acquirer: u64,
    /// Original F33 as a number.
    pub forwarding: u64,
}

impl OriginalData {
    pub fn parse(raw: &[u8]) -> Result<Self, SubfieldError> {
        if raw.len() != 42 {
            return Err(err(90, raw.len().min(42), "must be 42 digits"));
        }
        let mti = raw
            .get(..4)
            .and_then(Mti::parse)
            .ok_or(err(90, 0, "original MTI"))?;
        let stan = digits(90, raw, 4, 6)?;
        let transmission: [u8; 10] =
            raw.get(10..20)
                .and_then(|s| s.try_into().ok())
                .ok_or(err(90, 10, "too short"))?;
        digits(90, raw, 10, 10)?;
        Ok(Self {
            mti,
            stan: u32::try_from(stan).map_err(|_| err(90, 4, "stan"))?,
            transmission,
            acquirer: digits(90, raw, 20, 11)?,
            forwarding: digits(90, raw, 31, 11)?,
        })
    }

    /// The F90 of a message that refers to an original with these key fields.
    #[must_use]
    pub fn new(
        mti: Mti,
        stan: u32,
        transmission: [u8; 10],
        acquirer: &InstId,
        forwarding: &InstId,
    ) -> Self {
        Self {
            mti,
            stan,
            transmission,
            acquirer: inst_number(acquirer),
            forwarding: inst_number(forwarding),
        }
    }

    #[must_use]
    pub fn encode(&self) -> [u8; 42] {
        let mut out = Vec::with_capacity(42);
        out.extend_from_slice(&self.mti.0);
        write_digits(&mut out, u64::from(self.stan), 6);
        out.extend_from_slice(&self.transmission);
        write_digits(&mut out, self.acquirer, 11);
        write_digits(&mut out, self.forwarding, 11);
        out.try_into().unwrap_or([b'0'; 42])
    }
}

/// An institution ID as a number, the form F90 compares by.
#[must_use]
pub fn inst_number(id: &InstId) -> u64 {
    id.as_bytes().iter().fold(0u64, |acc, &b| {
        acc * 10 + u64::from(b.wrapping_sub(b'0') % 10)
    })
}

/// One F54 balance record (20 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub account_type: [u8; 2],
    pub amount_type: [u8; 2],
    pub currency: [u8; 3],
    /// Signed minor units: `C` positive, `D` negative.
    pub amount: i64,
}

impl Balance {
    /// Parse all records of an F54 value (a multiple of 20 bytes).
    pub fn parse_all(raw: &[u8]) -> Result<Vec<Balance>, SubfieldError> {
        if !raw.len().is_multiple_of(20) {
            return Err(err(54, raw.len(), "not a multiple of 20-byte records"));
        }
        raw.chunks_exact(20)
            .enumerate()
            .map(|(i, rec)| {
                let base = i * 20;
                let account_type: [u8; 2] = rec
                    .get(..2)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(err(54, base, "record"))?;
                let amount_type: [u8; 2] = rec
                    .get(2..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(err(54, base + 2, "record"))?;
                digits(54, rec, 0, 4).map_err(|e| err(54, base + e.position, e.reason))?;
                let currency: [u8; 3] = rec
                    .get(4..7)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(err(54, base + 4, "record"))?;
                let sign = match rec.get(7) {
                    Some(b'C') => 1,
                    Some(b'D') => -1,
                    _ => return Err(err(54, base + 7, "sign must be C or D")),
                };
                let amount =
                    digits(54, rec, 8, 12).map_err(|e| err(54, base + e.position, e.reason))?;
                Ok(Balance {
                    account_type,
                    amount_type,
                    currency,
                    amount: sign
                        * i64::try_from(amount).map_err(|_| err(54, base + 8, "amount"))?,
                })
            })
            .collect()
    }

    /// Encode records as an F54 value.
    #[must_use]
    pub fn encode_all(records: &[Balance]) -> Vec<u8> {
        let mut out = Vec::with_capacity(records.len() * 20);
        for r in records {
            out.extend_from_slice(&r.account_type);
            out.extend_from_slice(&r.amount_type);
            out.extend_from_slice(&r.currency);
            out.push(if r.amount < 0 { b'D' } else { b'C' });
            write_digits(&mut out, r.amount.unsigned_abs(), 12);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_zero_filled_and_cut_to_the_rightmost() {
        let mut out = b"x".to_vec();
        write_digits(&mut out, 42, 6);
        write_digits(&mut out, 1_234_567, 6);
        write_digits(&mut out, 0, 3);
        write_digits(&mut out, u64::MAX, 20);
        write_digits(&mut out, 7, 0);
        assert_eq!(out, b"x00004223456700018446744073709551615".to_vec());
    }

    #[test]
    fn installment_request_round_trip_and_errors() {
        let req = InstallmentRequest {
            periods: 6,
            project_code: InstallmentRequest::project_code_from("PHONE2026"),
            fee_mode: FeeMode::Spread,
            fee_rate: 4320,
            subsidy_rate: 1000,
        };
        let raw = req.encode();
        assert_eq!(raw.len(), F48_IP_LEN);
        assert_eq!(&raw[..4], b"IP06");
        assert_eq!(&raw[36..48], b"004320001000");
        assert_eq!(InstallmentRequest::parse(&raw).unwrap(), req);
        assert_eq!(req.project_code_str(), "PHONE2026");

        let mut bad = raw.clone();
        bad[35] = b'7';
        assert_eq!(InstallmentRequest::parse(&bad).unwrap_err().position, 35);
        assert_eq!(InstallmentRequest::parse(&raw[..63]).unwrap_err().field, 48);
        assert!(InstallmentRequest::parse(b"XX").is_err());
        let mut zero = raw.clone();
        zero[2..4].copy_from_slice(b"00");
        assert!(InstallmentRequest::parse(&zero).is_err());
    }

    #[test]
    fn installment_response_round_trip() {
        let r = InstallmentResponse {
            first_amount: 100_072,
            currency: 156,
            cardholder_fee: 2_592,
            subsidy_rate: 100,
        };
        let raw = r.encode();
        assert_eq!(raw.len(), F57_IP_LEN);
        assert_eq!(&raw[..17], b"IP000000100072156");
        assert_eq!(InstallmentResponse::parse(&raw).unwrap(), r);
        let mut bad = raw.clone();
        bad[20] = b'x';
        assert_eq!(InstallmentResponse::parse(&bad).unwrap_err().position, 20);
    }

    #[test]
    fn f60_positions() {
        let f = F60(b"000005000300000");
        assert_eq!(f.reason_code(), Some(&b"0000"[..]));
        assert_eq!(f.read_capability(), Some(b'5'));
        assert_eq!(f.terminal_type(), Some(&b"03"[..]));
        assert_eq!(f.interaction_mode(), Some(b'0'));
        assert_eq!(F60(b"0000").terminal_type(), None);
        assert_eq!(f.with_reason(*b"4361"), b"436105000300000".to_vec());
    }

    #[test]
    fn original_data_round_trip() {
        let acq = InstId::new("01030000").unwrap();
        let od = OriginalData::new(Mti::FINANCIAL_REQUEST, 123, *b"1121093000", &acq, &acq);
        let raw = od.encode();
        assert_eq!(&raw, b"020000012311210930000000103000000001030000");
        assert_eq!(OriginalData::parse(&raw).unwrap(), od);
        assert_eq!(od.acquirer, inst_number(&acq));
        assert!(OriginalData::parse(&raw[..41]).is_err());
    }

    #[test]
    fn balances_round_trip() {
        let recs = vec![
            Balance {
                account_type: *b"10",
                amount_type: *b"01",
                currency: *b"156",
                amount: 12_345,
            },
            Balance {
                account_type: *b"10",
                amount_type: *b"02",
                currency: *b"156",
                amount: -5,
            },
        ];
        let raw = Balance::encode_all(&recs);
        assert_eq!(&raw[..20], b"1001156C000000012345");
        assert_eq!(Balance::parse_all(&raw).unwrap(), recs);
        assert!(Balance::parse_all(&raw[..19]).is_err());
    }
}
