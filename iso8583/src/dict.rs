//! The field dictionary as data (SPEC.md section 4).
//!
//! A field spec is one character class x one length kind x one sensitivity; a handful of
//! orthogonal pieces cover the whole CUPS layout. The codec reads these specs when it decodes,
//! encodes and renders messages, so adding a second network's layout is adding a second
//! [`Dictionary`], not new code.

/// Which bytes a field may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `n`: ASCII digits only.
    Numeric,
    /// `z`: track data: digits, `=` and `D` as separators.
    Track,
    /// `an`: ASCII letters, digits and spaces.
    Alnum,
    /// `ans`: any printable byte. Bytes >= 0x80 are allowed because CUPS carries GBK text in
    /// F43 and the private fields; control characters are not.
    Text,
    /// `b`: opaque binary (PIN block, MAC, ICC data).
    Binary,
    /// `x+n`: `C` or `D` followed by digits.
    SignedNumeric,
}

/// How the length of a field is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthKind {
    /// Always exactly this many bytes.
    Fixed(u16),
    /// Two ASCII digits of length, then at most this many bytes.
    LlVar(u16),
    /// Three ASCII digits of length, then at most this many bytes.
    LllVar(u16),
}

impl LengthKind {
    /// The largest number of value bytes the field may hold.
    #[must_use]
    pub const fn max(self) -> u16 {
        match self {
            LengthKind::Fixed(n) | LengthKind::LlVar(n) | LengthKind::LllVar(n) => n,
        }
    }

    /// Digits of the length prefix (0 for fixed fields).
    #[must_use]
    pub const fn prefix_digits(self) -> usize {
        match self {
            LengthKind::Fixed(_) => 0,
            LengthKind::LlVar(_) => 2,
            LengthKind::LllVar(_) => 3,
        }
    }
}

/// How a field may be shown to people (logs, `describe`, debug output). SPEC.md section 13.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    /// Shown as is.
    Clear,
    /// A primary account number: first 6 + last 4 digits.
    Pan,
    /// Never shown (tracks, PIN block, CVN2, expiry, keys): rendered as a length only.
    Secret,
}

/// One field of the dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Field number, 2 to 128.
    pub number: u8,
    /// Human name, for `describe` and error messages.
    pub name: &'static str,
    pub charset: Charset,
    pub length: LengthKind,
    pub sensitivity: Sensitivity,
}

/// A message layout: which fields exist and how each is encoded.
#[derive(Debug)]
pub struct Dictionary {
    /// Name of the layout, e.g. "CUPS institution interface".
    pub name: &'static str,
    /// Indexed by field number; `None` = the field is not defined (a set bit is an error).
    fields: [Option<FieldSpec>; 129],
}

impl Dictionary {
    /// The spec of field `number`, if the layout defines it.
    #[must_use]
    pub fn spec(&self, number: u8) -> Option<&FieldSpec> {
        self.fields
            .get(usize::from(number))
            .and_then(Option::as_ref)
    }

    /// Every defined field in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = &FieldSpec> {
        self.fields.iter().filter_map(Option::as_ref)
    }
}

const fn f(
    number: u8,
    name: &'static str,
    charset: Charset,
    length: LengthKind,
    sensitivity: Sensitivity,
) -> FieldSpec {
    FieldSpec {
        number,
        name,
        charset,
        length,
        sensitivity,
    }
}

use Charset::{Alnum, Binary, Numeric, SignedNumeric, Text, Track};
use LengthKind::{Fixed, LlVar, LllVar};
use Sensitivity::{Clear, Pan, Secret};

const CUPS_SPECS: &[FieldSpec] = &[
    f(2, "Primary account number", Numeric, LlVar(19), Pan),
    f(3, "Processing code", Numeric, Fixed(6), Clear),
    f(4, "Transaction amount", Numeric, Fixed(12), Clear),
    f(5, "Settlement amount", Numeric, Fixed(12), Clear),
    f(6, "Cardholder billing amount", Numeric, Fixed(12), Clear),
    f(7, "Transmission date and time", Numeric, Fixed(10), Clear),
    f(9, "Settlement conversion rate", Numeric, Fixed(8), Clear),
    f(10, "Billing conversion rate", Numeric, Fixed(8), Clear),
    f(11, "System trace audit number", Numeric, Fixed(6), Clear),
    f(12, "Local transaction time", Numeric, Fixed(6), Clear),
    f(13, "Local transaction date", Numeric, Fixed(4), Clear),
    f(14, "Expiry date", Numeric, Fixed(4), Secret),
    f(15, "Settlement date", Numeric, Fixed(4), Clear),
    f(16, "Conversion date", Numeric, Fixed(4), Clear),
    f(18, "Merchant type", Numeric, Fixed(4), Clear),
    f(
        19,
        "Acquiring institution country code",
        Numeric,
        Fixed(3),
        Clear,
    ),
    f(22, "POS entry mode", Numeric, Fixed(3), Clear),
    f(23, "Card sequence number", Numeric, Fixed(3), Clear),
    f(25, "POS condition code", Numeric, Fixed(2), Clear),
    f(26, "PIN capture code", Numeric, Fixed(2), Clear),
    f(28, "Transaction fee", SignedNumeric, Fixed(9), Clear),
    f(32, "Acquiring institution ID", Numeric, LlVar(11), Clear),
    f(33, "Forwarding institution ID", Numeric, LlVar(11), Clear),
    f(35, "Track 2 data", Track, LlVar(37), Secret),
    f(36, "Track 3 data", Track, LllVar(104), Secret),
    f(37, "Retrieval reference number", Alnum, Fixed(12), Clear),
    f(
        38,
        "Authorisation identification response",
        Alnum,
        Fixed(6),
        Clear,
    ),
    f(39, "Response code", Alnum, Fixed(2), Clear),
    f(41, "Card acceptor terminal ID", Text, Fixed(8), Clear),
    f(42, "Card acceptor ID", Text, Fixed(15), Clear),
    f(
        43,
        "Card acceptor name and location",
        Text,
        Fixed(40),
        Clear,
    ),
    f(44, "Additional response data", Text, LlVar(25), Clear),
    f(45, "Track 1 data", Text, LlVar(79), Secret),
    f(48, "Additional data, private", Text, LllVar(512), Clear),
    f(49, "Transaction currency code", Alnum, Fixed(3), Clear),
    f(50, "Settlement currency code", Alnum, Fixed(3), Clear),
    f(51, "Billing currency code", Alnum, Fixed(3), Clear),
    f(52, "PIN data", Binary, Fixed(8), Secret),
    f(
        53,
        "Security related control information",
        Numeric,
        Fixed(16),
        Clear,
    ),
    f(54, "Balance amounts", Text, LllVar(40), Clear),
    f(55, "ICC system related data", Binary, LllVar(255), Clear),
    f(57, "Additional data, issuer", Text, LllVar(100), Clear),
    f(59, "Detail inquiry", Text, LllVar(600), Clear),
    f(60, "Reserved, private", Text, LllVar(100), Clear),
    f(
        61,
        "Cardholder authentication information",
        Text,
        LllVar(200),
        Secret,
    ),
    f(62, "Switching data", Text, LllVar(200), Clear),
    f(63, "Financial network data", Text, LllVar(512), Clear),
    f(
        70,
        "Network management information code",
        Numeric,
        Fixed(3),
        Clear,
    ),
    f(90, "Original data elements", Numeric, Fixed(42), Clear),
    f(96, "Message security code", Binary, Fixed(8), Secret),
    f(100, "Receiving institution ID", Numeric, LlVar(11), Clear),
    f(102, "Account identification 1", Text, LlVar(28), Clear),
    f(103, "Account identification 2", Text, LlVar(28), Clear),
    f(121, "Switch reserved", Text, LllVar(100), Clear),
    f(122, "Acquirer reserved", Text, LllVar(100), Clear),
    f(123, "Issuer reserved", Text, LllVar(100), Clear),
    f(128, "Message authentication code", Binary, Fixed(8), Clear),
];

const fn build(name: &'static str, specs: &[FieldSpec]) -> Dictionary {
    let mut fields: [Option<FieldSpec>; 129] = [None; 129];
    let mut i = 0;
    while i < specs.len() {
        let s = specs[i];
        fields[s.number as usize] = Some(s);
        i += 1;
    }
    Dictionary { name, fields }
}

/// The CUPS institution interface layout of SPEC.md section 4.
pub static CUPS: Dictionary = build("CUPS institution interface", CUPS_SPECS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cups_defines_the_spec_fields_and_nothing_else() {
        let defined: Vec<u8> = CUPS.iter().map(|s| s.number).collect();
        assert_eq!(defined.len(), CUPS_SPECS.len());
        assert!(CUPS.spec(1).is_none() && CUPS.spec(65).is_none() && CUPS.spec(8).is_none());
        assert_eq!(CUPS.spec(90).map(|s| s.length), Some(LengthKind::Fixed(42)));
        assert_eq!(CUPS.spec(2).map(|s| s.sensitivity), Some(Sensitivity::Pan));
        for secret in [14u8, 35, 36, 45, 52, 61] {
            assert_eq!(
                CUPS.spec(secret).map(|s| s.sensitivity),
                Some(Sensitivity::Secret)
            );
        }
        assert!(CUPS.spec(200).is_none());
    }
}
