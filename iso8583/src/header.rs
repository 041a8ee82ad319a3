//! The 46-byte CUPS message header (SPEC.md section 3) and reject headers (section 3.2).

use crate::error::{DecodeError, ErrorKind, Location, RejectCode};
use std::fmt;

/// Length of the header in bytes.
pub const HEADER_LEN: usize = 46;
/// Flag and version byte for production traffic.
pub const FLAG_PRODUCTION: u8 = 0x02;
/// Flag and version byte for test traffic (high bit set).
pub const FLAG_TEST: u8 = 0x82;

/// An institution ID as carried in the header: up to 11 digits, left-aligned, space padded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstId {
    bytes: [u8; 11],
    len: u8,
}

impl InstId {
    /// An ID from its digits (1 to 11 ASCII digits). `None` otherwise.
    #[must_use]
    pub fn new(id: &str) -> Option<Self> {
        Self::from_digits(id.as_bytes())
    }

    /// An ID from digit bytes, also accepting the zero-filled right-aligned form of F90.
    #[must_use]
    pub fn from_digits(digits: &[u8]) -> Option<Self> {
        if digits.is_empty() || digits.len() > 11 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut bytes = [b' '; 11];
        bytes.get_mut(..digits.len())?.copy_from_slice(digits);
        Some(Self {
            bytes,
            len: u8::try_from(digits.len()).ok()?,
        })
    }

    /// Parse the 11-byte header form: digits then spaces.
    fn from_header(raw: &[u8]) -> Option<Self> {
        let raw: &[u8; 11] = raw.try_into().ok()?;
        let len = raw.iter().position(|&b| b == b' ').unwrap_or(11);
        let (digits, pad) = raw.split_at(len);
        if digits.is_empty()
            || !digits.iter().all(u8::is_ascii_digit)
            || pad.iter().any(|&b| b != b' ')
        {
            return None;
        }
        Some(Self {
            bytes: *raw,
            len: u8::try_from(len).ok()?,
        })
    }

    /// The digits, without padding.
    #[must_use]
    pub fn as_str(&self) -> &str {
        let digits = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(digits).unwrap_or_default()
    }

    /// The digits as bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The 11-byte padded header form.
    #[must_use]
    pub fn padded(&self) -> &[u8; 11] {
        &self.bytes
    }
}

impl InstId {
    /// Maximum number of digits (the header's ID fields are 11 bytes).
    pub const MAX_LEN: usize = 11;

    /// Parse an ID; the error is a reason for people (configuration errors quote it).
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::new(s).ok_or_else(|| {
            if s.is_empty() || s.len() > Self::MAX_LEN {
                format!(
                    "institution ID {s:?} has {} characters; must be 1 to {} digits",
                    s.chars().count(),
                    Self::MAX_LEN
                )
            } else {
                format!("institution ID {s:?} must contain only digits 0-9")
            }
        })
    }

    /// An ID from exactly its digits (alias of [`InstId::from_digits`]).
    #[must_use]
    pub fn from_bytes(digits: &[u8]) -> Option<Self> {
        Self::from_digits(digits)
    }

    /// An ID from a header field or any space-padded form (trailing spaces ignored).
    #[must_use]
    pub fn from_header_field(raw: &[u8]) -> Option<Self> {
        let end = raw.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
        Self::from_digits(raw.get(..end)?)
    }

    /// The 11-byte header form (left-aligned, space padded).
    #[must_use]
    pub fn to_header_field(&self) -> [u8; 11] {
        self.bytes
    }
}

impl std::str::FromStr for InstId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl PartialEq<str> for InstId {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for InstId {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Display for InstId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for InstId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstId({})", self.as_str())
    }
}

/// A parsed header. Fields 6 to 9 are opaque to the switch and echoed in responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Field 2: 0x02 production, 0x82 test.
    pub flag: u8,
    /// Field 3: header + body length. Recomputed when a message is encoded.
    pub total_len: u16,
    /// Field 4.
    pub dest: InstId,
    /// Field 5.
    pub source: InstId,
    /// Field 6: zero from institutions; echoed.
    pub reserved: [u8; 3],
    /// Field 7: zero from institutions; echoed.
    pub batch: u8,
    /// Field 8: `00000000` from institutions; echoed.
    pub txn_info: [u8; 8],
    /// Field 9: private to the sender; echoed unchanged in the response.
    pub user_info: u8,
    /// Field 10: `00000` unless this header is a reject.
    pub reject: RejectCode,
}

fn digits_value(raw: &[u8]) -> Option<u32> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        raw.iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0')),
    )
}

impl Header {
    /// A header for a message from `source` to `dest` with every echo field zeroed.
    #[must_use]
    pub fn new(dest: InstId, source: InstId) -> Self {
        Self {
            flag: FLAG_PRODUCTION,
            total_len: 0,
            dest,
            source,
            reserved: [0; 3],
            batch: 0,
            txn_info: *b"00000000",
            user_info: 0,
            reject: RejectCode::NONE,
        }
    }

    /// Parse the first 46 bytes of `payload` (a frame payload: header then body). Checks the
    /// header's own constants and that the total length equals `payload.len()`.
    pub fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        let h =
            |n: u8, kind: ErrorKind, off: usize| DecodeError::new(kind, Location::Header(n), off);
        let raw: &[u8; HEADER_LEN] = payload
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| h(1, ErrorKind::BadLength, payload.len()))?;
        let [len_byte, flag, l0, l1, l2, l3, rest @ ..] = raw;
        if usize::from(*len_byte) != HEADER_LEN {
            return Err(h(1, ErrorKind::IllegalContent, 0));
        }
        if *flag & 0x7F != FLAG_PRODUCTION {
            return Err(h(2, ErrorKind::IllegalContent, 1));
        }
        let total = digits_value(&[*l0, *l1, *l2, *l3])
            .ok_or_else(|| h(3, ErrorKind::IllegalContent, 2))?;
        if total as usize != payload.len() {
            return Err(h(3, ErrorKind::BadLength, 2));
        }
        let (dest, rest) = rest.split_at(11);
        let (source, rest) = rest.split_at(11);
        let (reserved, rest) = rest.split_at(3);
        let (batch, rest) = rest.split_at(1);
        let (txn_info, rest) = rest.split_at(8);
        let (user_info, reject) = rest.split_at(1);
        let dest = InstId::from_header(dest).ok_or_else(|| h(4, ErrorKind::IllegalContent, 6))?;
        let source =
            InstId::from_header(source).ok_or_else(|| h(5, ErrorKind::IllegalContent, 17))?;
        let reject: [u8; 5] = reject
            .try_into()
            .map_err(|_| h(10, ErrorKind::BadLength, 41))?;
        if !reject.iter().all(u8::is_ascii_digit) {
            return Err(h(10, ErrorKind::IllegalContent, 41));
        }
        Ok(Self {
            flag: *flag,
            total_len: u16::try_from(total).map_err(|_| h(3, ErrorKind::BadLength, 2))?,
            dest,
            source,
            reserved: reserved
                .try_into()
                .map_err(|_| h(6, ErrorKind::BadLength, 28))?,
            batch: batch.first().copied().unwrap_or_default(),
            txn_info: txn_info
                .try_into()
                .map_err(|_| h(8, ErrorKind::BadLength, 32))?,
            user_info: user_info.first().copied().unwrap_or_default(),
            reject: RejectCode(reject),
        })
    }

    /// Write the header with `total_len` as its length field.
    pub fn write_to(&self, total_len: usize, out: &mut Vec<u8>) {
        out.push(HEADER_LEN as u8);
        out.push(self.flag);
        push_digits(out, total_len % 10_000, 4);
        out.extend_from_slice(self.dest.padded());
        out.extend_from_slice(self.source.padded());
        out.extend_from_slice(&self.reserved);
        out.push(self.batch);
        out.extend_from_slice(&self.txn_info);
        out.push(self.user_info);
        out.extend_from_slice(&self.reject.0);
    }

    /// The header a responder puts on its answer: destination and source swapped, fields 6
    /// to 9 echoed, no reject code.
    #[must_use]
    pub fn response(&self) -> Self {
        Self {
            dest: self.source,
            source: self.dest,
            reject: RejectCode::NONE,
            total_len: 0,
            ..*self
        }
    }

    /// Whether the test flag (high bit of field 2) is set.
    #[must_use]
    pub fn is_test(&self) -> bool {
        self.flag & 0x80 != 0
    }
}

pub(crate) fn push_digits(out: &mut Vec<u8>, mut value: usize, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    if let Some(slot) = out.get_mut(start..) {
        for b in slot.iter_mut().rev() {
            *b = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
}

/// Build a reject (SPEC.md 3.2): a new header carrying `code`, followed by the original
/// header and body unchanged. `original` is the whole frame payload that could not be
/// parsed; it must be at least a header long ("its header was readable"). The reject goes
/// back to the original sender, from `from`.
#[must_use]
pub fn build_reject(original: &[u8], code: RejectCode, from: InstId) -> Option<Vec<u8>> {
    let orig_header = original.get(..HEADER_LEN)?;
    // Swap raw IDs so even a header whose ID fields failed to parse can be answered.
    let dest_raw = orig_header.get(17..28)?;
    let echo = orig_header.get(28..41)?;
    let total = HEADER_LEN + original.len();
    if total > 9999 {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    out.push(HEADER_LEN as u8);
    let flag = orig_header.get(1).copied().unwrap_or(FLAG_PRODUCTION);
    out.push(if flag & 0x7F == FLAG_PRODUCTION {
        flag
    } else {
        FLAG_PRODUCTION
    });
    push_digits(&mut out, total, 4);
    out.extend_from_slice(dest_raw);
    out.extend_from_slice(from.padded());
    out.extend_from_slice(echo);
    out.extend_from_slice(&code.0);
    out.extend_from_slice(original);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut h = Header::new(
            InstId::new("00010000").unwrap(),
            InstId::new("01030000").unwrap(),
        );
        h.user_info = 7;
        h.txn_info = *b"00000000";
        let mut out = Vec::new();
        h.write_to(HEADER_LEN, &mut out);
        out
    }

    #[test]
    fn header_round_trips_and_swaps() {
        let raw = sample();
        assert_eq!(raw.len(), HEADER_LEN);
        let h = Header::parse(&raw).unwrap();
        assert_eq!(h.dest.as_str(), "00010000");
        assert_eq!(h.source.as_str(), "01030000");
        assert_eq!(h.total_len, 46);
        let r = h.response();
        assert_eq!((r.dest, r.source, r.user_info), (h.source, h.dest, 7));
        let mut again = Vec::new();
        h.write_to(46, &mut again);
        assert_eq!(again, raw);
    }

    #[test]
    fn header_errors_name_the_field() {
        let cases: [(usize, u8, &str); 6] = [
            (0, 45, "00015"),
            (1, 0x05, "00025"),
            (3, b'x', "00035"),
            (6, b'A', "00045"),
            (17, b' ', "00055"),
            (41, b'a', "00105"),
        ];
        for (off, byte, code) in cases {
            let mut raw = sample();
            raw[off] = byte;
            let err = Header::parse(&raw).unwrap_err();
            assert_eq!(err.reject_code().as_str(), code, "offset {off}");
        }
        let mut raw = sample();
        raw.push(b'0');
        assert_eq!(
            Header::parse(&raw).unwrap_err().reject_code().as_str(),
            "00031"
        );
        assert_eq!(
            Header::parse(&raw[..20]).unwrap_err().kind,
            ErrorKind::BadLength
        );
    }

    #[test]
    fn reject_wraps_the_original() {
        let raw = sample();
        let rej = build_reject(
            &raw,
            RejectCode::UNPARSEABLE,
            InstId::new("00010000").unwrap(),
        )
        .unwrap();
        let h = Header::parse(&rej).unwrap();
        assert_eq!(h.reject.as_str(), "09990");
        assert_eq!(h.dest.as_str(), "01030000");
        assert_eq!(h.source.as_str(), "00010000");
        assert_eq!(h.user_info, 7);
        assert_eq!(&rej[HEADER_LEN..], &raw[..]);
    }

    #[test]
    fn inst_id_forms() {
        assert_eq!(InstId::new("01030000").unwrap().padded(), b"01030000   ");
        assert!(InstId::new("").is_none());
        assert!(InstId::new("123456789012").is_none());
        assert!(InstId::new("12a").is_none());
        assert_eq!(InstId::new("12345678901").unwrap().as_str(), "12345678901");
    }
}
