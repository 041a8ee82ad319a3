//! Decode and encode errors. They name the field and the byte offset, never the value: field
//! values may be card data (SPEC.md section 13).

use std::fmt;

/// Where in a message a decode error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A field of the 46-byte header (1 to 10, SPEC.md section 3).
    Header(u8),
    /// The message type indicator.
    Mti,
    /// The primary or secondary bitmap.
    Bitmap,
    /// A data field (2 to 128).
    Field(u8),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Header(n) => write!(f, "header field {n}"),
            Location::Mti => f.write_str("MTI"),
            Location::Bitmap => f.write_str("bitmap"),
            Location::Field(n) => write!(f, "field {n}"),
        }
    }
}

/// What was wrong. The variants follow the `E` digit of the reject code (SPEC.md 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Truncated data, a length that does not add up, trailing bytes (E = 1).
    BadLength,
    /// A bit set for a field the dictionary does not define, or bit 65 (E = 2).
    FieldNotAllowed,
    /// A length prefix that is not digits (E = 3).
    BadLengthPrefix,
    /// A variable field longer than its maximum (E = 4).
    TooLong,
    /// Wrong character class, bad sign, bad header constant (E = 5).
    IllegalContent,
    /// A mandatory field is missing (E = 6).
    MandatoryMissing,
    /// Message type not known or the message cannot be parsed at all (`09990`).
    Unparseable,
}

impl ErrorKind {
    fn digit(self) -> u8 {
        match self {
            ErrorKind::BadLength => 1,
            ErrorKind::FieldNotAllowed => 2,
            ErrorKind::BadLengthPrefix => 3,
            ErrorKind::TooLong => 4,
            ErrorKind::IllegalContent => 5,
            ErrorKind::MandatoryMissing => 6,
            ErrorKind::Unparseable => 0,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ErrorKind::BadLength => "bad length",
            ErrorKind::FieldNotAllowed => "field not allowed",
            ErrorKind::BadLengthPrefix => "bad length prefix",
            ErrorKind::TooLong => "too long",
            ErrorKind::IllegalContent => "illegal content",
            ErrorKind::MandatoryMissing => "mandatory field missing",
            ErrorKind::Unparseable => "unparseable message",
        }
    }
}

/// A message could not be decoded. Carries no field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} at {location}, offset {offset}", kind.describe())]
pub struct DecodeError {
    pub kind: ErrorKind,
    pub location: Location,
    /// Byte offset from the start of the frame payload (the first header byte).
    pub offset: usize,
}

impl DecodeError {
    pub(crate) fn new(kind: ErrorKind, location: Location, offset: usize) -> Self {
        Self {
            kind,
            location,
            offset,
        }
    }

    /// The 5-character reject code of SPEC.md 3.2 for this error (`DFFFE`, or `09990`).
    #[must_use]
    pub fn reject_code(&self) -> RejectCode {
        let (d, fff) = match (self.kind, self.location) {
            (ErrorKind::Unparseable, _) | (_, Location::Mti | Location::Bitmap) => {
                return RejectCode::UNPARSEABLE
            }
            (_, Location::Header(n)) => (0u8, n),
            (_, Location::Field(n)) => (1u8, n),
        };
        RejectCode::new(d, fff, self.kind.digit())
    }
}

/// A 5-digit reject code: `D` header/body, `FFF` field number, `E` error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RejectCode(pub [u8; 5]);

impl RejectCode {
    /// `09990`: unknown transaction type or unparseable.
    pub const UNPARSEABLE: RejectCode = RejectCode(*b"09990");
    /// `00000`: no reject.
    pub const NONE: RejectCode = RejectCode(*b"00000");

    /// Build `DFFFE` from its parts.
    #[must_use]
    pub fn new(d: u8, field: u8, e: u8) -> Self {
        let field = field % 200; // FFF is at most 128; keep 3 digits whatever happens.
        RejectCode([
            b'0' + d % 10,
            b'0' + field / 100,
            b'0' + (field / 10) % 10,
            b'0' + field % 10,
            b'0' + e % 10,
        ])
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        // Always ASCII digits by construction or by validation in `Header::parse`.
        std::str::from_utf8(&self.0).unwrap_or("?????")
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("field {0} is not defined in the dictionary")]
    UndefinedField(u8),
    #[error("field {field}: length {len} is not allowed (expected {expected})")]
    BadLength {
        field: u8,
        len: usize,
        expected: String,
    },
    #[error("field {field}: illegal content at value offset {offset}")]
    IllegalContent { field: u8, offset: usize },
    #[error("MTI must be 4 ASCII digits")]
    BadMti,
    #[error("message of {0} bytes does not fit the 4-digit length")]
    TooLarge(usize),
    #[error("header: {0}")]
    Header(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_codes_follow_spec_3_2() {
        let cases = [
            (ErrorKind::IllegalContent, Location::Field(4), "10045"),
            (ErrorKind::BadLength, Location::Header(3), "00031"),
            (ErrorKind::TooLong, Location::Field(2), "10024"),
            (ErrorKind::BadLengthPrefix, Location::Field(48), "10483"),
            (ErrorKind::FieldNotAllowed, Location::Field(128), "11282"),
            (ErrorKind::MandatoryMissing, Location::Field(90), "10906"),
            (ErrorKind::Unparseable, Location::Field(3), "09990"),
            (ErrorKind::BadLength, Location::Mti, "09990"),
            (ErrorKind::BadLength, Location::Bitmap, "09990"),
        ];
        for (kind, loc, code) in cases {
            assert_eq!(DecodeError::new(kind, loc, 0).reject_code().as_str(), code);
        }
    }

    #[test]
    fn display_names_field_and_offset_only() {
        let e = DecodeError::new(ErrorKind::IllegalContent, Location::Field(2), 71);
        assert_eq!(e.to_string(), "illegal content at field 2, offset 71");
    }
}
