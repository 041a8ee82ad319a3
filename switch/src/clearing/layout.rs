//! The fixed-width flow file records of SPEC.md section 12 (`ACOM`, `ICOM`, `ICOMN`).
//!
//! Fields in SPEC order, one space between fields, CRLF after each record. Numerics are
//! right-aligned zero-filled, text left-aligned space-filled, institution IDs left-aligned
//! space-padded, signed amounts `C`/`D` + 11 digits (zero: a space + 11 zeros). A COM record
//! is 299 bytes, an ICOMN record 500 (before CRLF). A value that does not fit its field is an
//! error naming the field and the transaction key (never the value: it may be card data).

use super::ledger::Charges;
use super::{fmt_key, ClearedLine, ClearingError};

/// The COM record fields in order with their widths (SPEC 12); one space between fields.
pub const COM_FIELDS: [(&str, usize); 34] = [
    ("F32 acquiring institution", 11),
    ("F33 forwarding institution", 11),
    ("STAN", 6),
    ("F7 transmission date and time", 10),
    ("PAN", 19),
    ("amount", 12),
    ("partial amount", 12),
    ("cardholder fee", 12),
    ("MTI", 4),
    ("F3 processing code", 6),
    ("MCC", 4),
    ("terminal", 8),
    ("merchant", 15),
    ("RRN", 12),
    ("F25 POS condition", 2),
    ("auth code", 6),
    ("receiving institution", 11),
    ("original STAN", 6),
    ("F39 response code", 2),
    ("F22 POS entry mode", 3),
    ("fee receivable", 12),
    ("fee payable", 12),
    ("switching fee", 12),
    ("single/dual flag", 1),
    ("card sequence", 3),
    ("60.2.2 read capability", 1),
    ("60.2.3 chip condition", 1),
    ("original F7", 10),
    ("issuer", 11),
    ("region flag", 1),
    ("terminal type", 2),
    ("ECI", 2),
    ("installment additional fee", 12),
    ("other info", 14),
];

/// The fields ICOMN appends to the COM record.
pub const COMN_EXTRA_FIELDS: [(&str, usize); 3] = [
    ("transfer-in card", 19),
    ("installment periods", 2),
    ("reserved", 177),
];

/// Byte range of field `index` of [`COM_FIELDS`] followed by [`COMN_EXTRA_FIELDS`] in a
/// record (for readers and tests).
#[must_use]
pub fn field_range(index: usize) -> Option<std::ops::Range<usize>> {
    let widths = || COM_FIELDS.iter().chain(&COMN_EXTRA_FIELDS).map(|f| f.1);
    let width = widths().nth(index)?;
    let start: usize = widths().take(index).sum::<usize>() + index;
    Some(start..start + width)
}

/// Width of a COM record without CRLF.
pub const COM_LEN: usize = 299;
/// Width of an ICOMN record without CRLF.
pub const COMN_LEN: usize = 500;

/// Whose file a record is written for: amounts and fee directions are seen from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Acquirer,
    Issuer,
}

/// File names: `IND{YYMMDD}{NN}ACOM` etc., batch `NN` = 01.
#[must_use]
pub fn file_name(date: u32, suffix: &str) -> String {
    format!("IND{:06}01{suffix}", date % 1_000_000)
}

struct Record<'a> {
    buf: Vec<u8>,
    line: &'a ClearedLine,
}

impl Record<'_> {
    fn sep(&mut self) {
        if !self.buf.is_empty() {
            self.buf.push(b' ');
        }
    }

    fn too_long(&self, field: &'static str, width: usize) -> ClearingError {
        ClearingError::Field {
            field,
            key: fmt_key(&self.line.key),
            reason: format!("longer than {width} characters or not of its character class"),
        }
    }

    /// `n` field: digits, right-aligned, zero-filled.
    fn digits(
        &mut self,
        field: &'static str,
        value: &str,
        width: usize,
    ) -> Result<(), ClearingError> {
        if value.len() > width || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.too_long(field, width));
        }
        self.sep();
        self.buf
            .resize(self.buf.len() + (width - value.len()), b'0');
        self.buf.extend_from_slice(value.as_bytes());
        Ok(())
    }

    fn num(&mut self, field: &'static str, value: u64, width: usize) -> Result<(), ClearingError> {
        self.digits(field, &value.to_string(), width)
    }

    fn amount(
        &mut self,
        field: &'static str,
        value: i64,
        width: usize,
    ) -> Result<(), ClearingError> {
        let v = u64::try_from(value).map_err(|_| self.too_long(field, width))?;
        self.num(field, v, width)
    }

    /// `an`/`ans` field (and institution IDs): left-aligned, space-filled, printable ASCII.
    fn text(
        &mut self,
        field: &'static str,
        value: &str,
        width: usize,
    ) -> Result<(), ClearingError> {
        if value.len() > width || !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(self.too_long(field, width));
        }
        self.sep();
        self.buf.extend_from_slice(value.as_bytes());
        self.buf
            .resize(self.buf.len() + (width - value.len()), b' ');
        Ok(())
    }

    /// `x+n11`: `C` credit (the file's institution receives), `D` debit (it pays); zero is a
    /// space and 11 zeros. `value` is signed from the file's institution's side.
    fn signed(&mut self, field: &'static str, value: i64) -> Result<(), ClearingError> {
        let sign = match value {
            0 => b' ',
            v if v > 0 => b'C',
            _ => b'D',
        };
        let digits = value.unsigned_abs().to_string();
        if digits.len() > 11 {
            return Err(self.too_long(field, 12));
        }
        self.sep();
        self.buf.push(sign);
        self.buf.resize(self.buf.len() + (11 - digits.len()), b'0');
        self.buf.extend_from_slice(digits.as_bytes());
        Ok(())
    }
}

/// Interchange and charges of `c` seen from `side`: (fee receivable, fee payable, switching
/// fee signed, installment additional fee signed); signed values positive = received.
#[must_use]
pub fn side_charges(c: &Charges, side: Side) -> (i64, i64, i64, i64) {
    let interchange = c.fee.issuer_fee;
    match side {
        // The acquirer pays the issuer's share and the switch's share, and the subsidy.
        Side::Acquirer => (
            (-interchange).max(0),
            interchange.max(0),
            -c.fee.switch_fee,
            -c.subsidy,
        ),
        Side::Issuer => (interchange.max(0), (-interchange).max(0), 0, c.subsidy),
    }
}

/// One COM record (ACOM or ICOM) without its CRLF.
pub fn com_record(line: &ClearedLine, side: Side) -> Result<Vec<u8>, ClearingError> {
    let mut r = Record {
        buf: Vec::with_capacity(COMN_LEN + 2),
        line,
    };
    let (receivable, payable, switching, installment) = side_charges(&line.charges, side);
    let orig = line.original;
    r.text("F32", &line.f32, 11)?;
    r.text("F33", &line.f33, 11)?;
    r.num("STAN", u64::from(line.key.stan), 6)?;
    r.num("F7", line.key.transmission, 10)?;
    r.digits("PAN", line.pan.expose(), 19)?;
    r.amount("amount", line.amount, 12)?;
    r.amount("partial amount", line.partial_amount, 12)?;
    // F28 is not journalled; the cardholder fee is always the zero value.
    r.signed("cardholder fee", 0)?;
    r.digits("MTI", &String::from_utf8_lossy(&line.mti), 4)?;
    r.digits("F3", &String::from_utf8_lossy(&line.processing_code), 6)?;
    r.num("MCC", u64::from(line.mcc), 4)?;
    r.text("terminal", &line.terminal, 8)?;
    r.text("merchant", &line.merchant, 15)?;
    r.text("RRN", &line.rrn, 12)?;
    r.num("F25", u64::from(line.pos_condition), 2)?;
    r.text("auth code", &line.auth_code, 6)?;
    r.text("receiving institution", &line.issuer, 11)?;
    r.num("original STAN", orig.map_or(0, |k| u64::from(k.stan)), 6)?;
    r.text("F39", &String::from_utf8_lossy(&line.response_code), 2)?;
    r.num("F22", u64::from(line.pos_entry), 3)?;
    r.amount("fee receivable", receivable, 12)?;
    r.amount("fee payable", payable, 12)?;
    r.signed("switching fee", switching)?;
    r.num("single/dual flag", u64::from(line.dual_message), 1)?;
    r.num("card sequence", u64::from(line.card_seq), 3)?;
    r.text("60.2.2", &line.read_capability, 1)?;
    r.text("60.2.3", &line.chip_condition, 1)?;
    r.num("original F7", orig.map_or(0, |k| k.transmission), 10)?;
    r.text("issuer", &line.issuer, 11)?;
    r.num("region flag", u64::from(!line.domestic), 1)?;
    r.digits("terminal type", &line.terminal_type, 2)?;
    r.text("ECI", &line.eci, 2)?;
    r.signed("installment additional fee", installment)?;
    r.text("other info", line.kind_label, 14)?;
    debug_assert_eq!(r.buf.len(), COM_LEN);
    Ok(r.buf)
}

/// One ICOMN record: the COM record, transfer-in card n19 (zeros: none), installment
/// periods n2, reserved ans177.
pub fn comn_record(line: &ClearedLine) -> Result<Vec<u8>, ClearingError> {
    let buf = com_record(line, Side::Issuer)?;
    let mut r = Record { buf, line };
    r.digits("transfer-in card", "", 19)?;
    r.num("installment periods", u64::from(line.periods), 2)?;
    r.text("reserved", "", 177)?;
    debug_assert_eq!(r.buf.len(), COMN_LEN);
    Ok(r.buf)
}

/// A whole file: each record followed by CRLF (an empty file when there are no lines).
pub fn file<'a>(
    lines: impl IntoIterator<Item = &'a ClearedLine>,
    record: impl Fn(&ClearedLine) -> Result<Vec<u8>, ClearingError>,
) -> Result<Vec<u8>, ClearingError> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(&record(line)?);
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_add_up() {
        let com: usize = COM_FIELDS.iter().map(|f| f.1).sum::<usize>() + COM_FIELDS.len() - 1;
        assert_eq!(com, COM_LEN);
        let extra: usize = COMN_EXTRA_FIELDS.iter().map(|f| f.1 + 1).sum();
        assert_eq!(COM_LEN + extra, COMN_LEN);
        assert_eq!(field_range(0), Some(0..11));
        assert_eq!(field_range(2), Some(24..30));
        assert_eq!(field_range(36), Some(COMN_LEN - 177..COMN_LEN));
        assert_eq!(field_range(37), None);
        assert_eq!(file_name(20261121, "ICOMN"), "IND26112101ICOMN");
    }
}
