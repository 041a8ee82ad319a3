//! The zero-copy message view, its decoder, and the cheap forwarding rewrite.
//!
//! [`Message::decode`] validates a whole frame payload once (SPEC.md 3.1 strictness) and
//! keeps only offsets into the shared [`Bytes`]: no allocation, no copying. Accessors slice
//! the buffer. [`Message::rewrite`] re-emits the message with a new header and a few changed
//! fields by copying the untouched fields' encoded bytes as they are.

use crate::dict::{Charset, Dictionary, FieldSpec, LengthKind, CUPS};
use crate::error::{DecodeError, EncodeError, ErrorKind, Location};
use crate::header::{Header, InstId, HEADER_LEN};
use crate::mti::{Mti, ResponseCode};
use crate::subfields::{
    Balance, InstallmentRequest, InstallmentResponse, OriginalData, SubfieldError, F60,
};
use bytes::Bytes;

/// The bitmap as one `u128`: bit for field `n` is `1 << (128 - n)`, so the big-endian bytes
/// of the value are the wire bitmap (primary then secondary).
pub(crate) type Bitmap = u128;

#[inline]
pub(crate) const fn bit(n: u8) -> Bitmap {
    1u128 << (128 - n as u32)
}

/// The field numbers of a bitmap's set bits, ascending. Works on the two 64-bit halves:
/// 128-bit shifts in the per-field loops of decode and encode cost more than the fields.
#[derive(Clone, Copy)]
pub(crate) struct FieldBits {
    hi: u64,
    lo: u64,
}

impl FieldBits {
    #[inline]
    pub(crate) const fn new(bitmap: Bitmap) -> Self {
        // Truncation is the point: the high and the low 64 bits.
        Self {
            hi: (bitmap >> 64) as u64,
            lo: bitmap as u64,
        }
    }
}

impl Iterator for FieldBits {
    type Item = u8;

    #[inline]
    fn next(&mut self) -> Option<u8> {
        const TOP: u64 = 1 << 63;
        // leading_zeros() < 64 when the half is non-zero, so the casts cannot truncate.
        if self.hi != 0 {
            let lz = self.hi.leading_zeros();
            self.hi &= !(TOP >> lz);
            Some(lz as u8 + 1)
        } else if self.lo != 0 {
            let lz = self.lo.leading_zeros();
            self.lo &= !(TOP >> lz);
            Some(lz as u8 + 65)
        } else {
            None
        }
    }
}

/// Where one field's value lies in the payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    /// Offset of the value (after any length prefix) from the start of the payload.
    off: u16,
    len: u16,
}

/// A decoded message: header, MTI and field offsets over the original bytes.
#[derive(Clone)]
pub struct Message {
    /// The whole frame payload (header + body), shared, never copied.
    raw: Bytes,
    header: Header,
    mti: Mti,
    /// Which fields are present (bit 1 = secondary bitmap present).
    bitmap: Bitmap,
    /// Value spans indexed by field number; only meaningful where `bitmap` has the bit.
    spans: [Span; 129],
    /// The layout the message was decoded with (for rendering and rewriting).
    dict: &'static Dictionary,
}

/// A frame payload as received: a message, or a reject wrapping one (SPEC.md 3.2).
// Boxing the message would cost an allocation per decode; a Packet is matched at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Packet {
    Message(Message),
    /// A reject: the reject header and the original header + body it refers to.
    Reject {
        header: Header,
        original: Bytes,
    },
}

impl Packet {
    /// Decode a frame payload with the CUPS dictionary.
    pub fn decode(raw: Bytes) -> Result<Packet, DecodeError> {
        let header = Header::parse(&raw)?;
        if header.reject != crate::error::RejectCode::NONE {
            return Ok(Packet::Reject {
                header,
                original: raw.slice(HEADER_LEN..),
            });
        }
        Message::decode_parts(raw, header, &CUPS).map(Packet::Message)
    }
}

/// Check one value against its spec: length then character class. Returns the error kind
/// and the offset within the value of the first bad byte.
pub(crate) fn check_value(spec: &FieldSpec, value: &[u8]) -> Result<(), (ErrorKind, usize)> {
    let max = usize::from(spec.length.max());
    match spec.length {
        LengthKind::Fixed(_) if value.len() != max => return Err((ErrorKind::BadLength, 0)),
        LengthKind::LlVar(_) | LengthKind::LllVar(_) if value.len() > max => {
            return Err((ErrorKind::TooLong, 0))
        }
        _ => {}
    }
    // Fast path: one branch-free pass over the value (it vectorises); the position of the
    // first bad byte is only looked for when there is one.
    let clean = match spec.charset {
        Charset::Binary => true,
        Charset::Numeric => all_digits(value),
        Charset::Track => all_bytes(value, |b| is_digit(b) | (b == b'=') | (b == b'D')),
        Charset::Alnum => all_bytes(value, |b| {
            is_digit(b) | ((b | 0x20).wrapping_sub(b'a') < 26) | (b == b' ')
        }),
        Charset::Text => all_bytes(value, |b| (b >= 0x20) & (b != 0x7F)),
        Charset::SignedNumeric => {
            matches!(value.first(), Some(b'C' | b'D'))
                && all_bytes(value.get(1..).unwrap_or_default(), is_digit)
        }
    };
    if clean {
        return Ok(());
    }
    let bad = match spec.charset {
        Charset::Binary => None,
        Charset::Numeric => value.iter().position(|b| !b.is_ascii_digit()),
        Charset::Track => value
            .iter()
            .position(|&b| !(b.is_ascii_digit() || b == b'=' || b == b'D')),
        Charset::Alnum => value
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b' ')),
        Charset::Text => value.iter().position(|&b| b < 0x20 || b == 0x7F),
        Charset::SignedNumeric => match value.split_first() {
            Some((b'C' | b'D', digits)) => digits
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map(|p| p + 1),
            _ => Some(0),
        },
    };
    match bad {
        Some(pos) => Err((ErrorKind::IllegalContent, pos)),
        None => Ok(()),
    }
}

#[inline(always)]
fn is_digit(b: u8) -> bool {
    b.wrapping_sub(b'0') < 10
}

/// Whether every byte is an ASCII digit. Most fields are numeric and short (2-19 digits),
/// where a byte loop costs more than the check: up to 16 bytes are tested as two
/// overlapping words (overlap does not matter to "all digits"), longer values in the
/// vectorised loop.
#[inline(always)]
fn all_digits(value: &[u8]) -> bool {
    let n = value.len();
    if n > 16 {
        return all_bytes(value, is_digit);
    }
    if n >= 8 {
        let word = |at: usize| {
            value
                .get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
        };
        return digits_swar(word(0)) & digits_swar(word(n - 8));
    }
    if n >= 4 {
        // Four bytes, the upper four set to digits.
        let word = |at: usize| {
            value
                .get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, |b| {
                    u64::from(u32::from_le_bytes(b)) | 0x3030_3030_0000_0000
                })
        };
        return digits_swar(word(0)) & digits_swar(word(n - 4));
    }
    all_bytes(value, is_digit)
}

/// Whether all eight bytes of `x` are `0`-`9`: each has high nibble 3, and adding 6 to it
/// keeps it so (low nibble at most 9). With every high nibble 3 no byte carries into the
/// next; if one is not, the first test already fails.
#[inline(always)]
fn digits_swar(x: u64) -> bool {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    (x & HIGH == THREES) & (x.wrapping_add(SIXES) & HIGH == THREES)
}

/// Whether every byte passes `ok`, without early exit (so the loop vectorises).
#[inline(always)]
fn all_bytes(value: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    value.iter().fold(true, |acc, &b| acc & ok(b))
}

fn ascii_number(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 19 {
        return None;
    }
    raw.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

impl Message {
    /// Decode a frame payload (header + body) with the CUPS dictionary. A reject header is
    /// an error here (use [`Packet::decode`] to accept both).
    pub fn decode(raw: Bytes) -> Result<Message, DecodeError> {
        Self::decode_with(raw, &CUPS)
    }

    /// Decode with another dictionary.
    pub fn decode_with(raw: Bytes, dict: &'static Dictionary) -> Result<Message, DecodeError> {
        let header = Header::parse(&raw)?;
        if header.reject != crate::error::RejectCode::NONE {
            return Err(DecodeError::new(
                ErrorKind::IllegalContent,
                Location::Header(10),
                41,
            ));
        }
        Self::decode_parts(raw, header, dict)
    }

    fn decode_parts(
        raw: Bytes,
        header: Header,
        dict: &'static Dictionary,
    ) -> Result<Message, DecodeError> {
        let unparseable = |loc, off| DecodeError::new(ErrorKind::Unparseable, loc, off);
        let buf: &[u8] = &raw;
        let mti = buf
            .get(HEADER_LEN..HEADER_LEN + 4)
            .and_then(Mti::parse)
            .filter(|m| m.is_known())
            .ok_or_else(|| unparseable(Location::Mti, HEADER_LEN))?;
        let mut pos = HEADER_LEN + 4;
        let primary: [u8; 8] = buf
            .get(pos..pos + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| unparseable(Location::Bitmap, pos))?;
        pos += 8;
        let mut bitmap = Bitmap::from(u64::from_be_bytes(primary)) << 64;
        if bitmap & bit(1) != 0 {
            let secondary: [u8; 8] = buf
                .get(pos..pos + 8)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| unparseable(Location::Bitmap, pos))?;
            pos += 8;
            bitmap |= Bitmap::from(u64::from_be_bytes(secondary));
        }
        let mut spans = [Span::default(); 129];
        let mut last = 0u8;
        for n in FieldBits::new(bitmap & !bit(1)) {
            let err = |kind, off| DecodeError::new(kind, Location::Field(n), off);
            let spec = match dict.spec(n) {
                Some(spec) if n != 65 => spec,
                _ => return Err(err(ErrorKind::FieldNotAllowed, pos)),
            };
            let field_start = pos;
            let len = match spec.length {
                LengthKind::Fixed(len) => usize::from(len),
                var => {
                    let digits = var.prefix_digits();
                    let prefix = buf
                        .get(pos..pos + digits)
                        .ok_or_else(|| err(ErrorKind::BadLength, pos))?;
                    let len = prefix
                        .iter()
                        .try_fold(0usize, |acc, &b| {
                            b.is_ascii_digit().then(|| acc * 10 + usize::from(b - b'0'))
                        })
                        .ok_or_else(|| err(ErrorKind::BadLengthPrefix, pos))?;
                    if len > usize::from(var.max()) {
                        return Err(err(ErrorKind::TooLong, pos));
                    }
                    pos += digits;
                    len
                }
            };
            let value = buf
                .get(pos..pos + len)
                .ok_or_else(|| err(ErrorKind::BadLength, field_start))?;
            check_value(spec, value).map_err(|(kind, at)| err(kind, pos + at))?;
            if let Some(span) = spans.get_mut(usize::from(n)) {
                // Offsets fit u16: a payload is at most 9999 bytes (4-digit length).
                *span = Span {
                    off: u16::try_from(pos).map_err(|_| err(ErrorKind::BadLength, pos))?,
                    len: u16::try_from(len).map_err(|_| err(ErrorKind::BadLength, pos))?,
                };
            }
            pos += len;
            last = n;
        }
        if pos != buf.len() {
            let loc = if last == 0 {
                Location::Bitmap
            } else {
                Location::Field(last)
            };
            return Err(DecodeError::new(ErrorKind::BadLength, loc, pos));
        }
        Ok(Message {
            raw,
            header,
            mti,
            bitmap,
            spans,
            dict,
        })
    }

    /// The whole frame payload (header + body).
    #[must_use]
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    #[must_use]
    pub fn mti(&self) -> Mti {
        self.mti
    }

    #[must_use]
    pub fn dictionary(&self) -> &'static Dictionary {
        self.dict
    }

    /// Whether field `n` is present.
    #[must_use]
    pub fn has(&self, n: u8) -> bool {
        (2..=128).contains(&n) && n != 65 && self.bitmap & bit(n) != 0
    }

    /// The value bytes of field `n` (without length prefix).
    #[must_use]
    pub fn field(&self, n: u8) -> Option<&[u8]> {
        if !self.has(n) {
            return None;
        }
        let span = self.spans.get(usize::from(n))?;
        self.raw
            .get(usize::from(span.off)..usize::from(span.off) + usize::from(span.len))
    }

    /// The value of field `n` as a shared slice of the message buffer (no copy).
    #[must_use]
    pub fn field_bytes(&self, n: u8) -> Option<Bytes> {
        let span = self.spans.get(usize::from(n)).filter(|_| self.has(n))?;
        Some(
            self.raw
                .slice(usize::from(span.off)..usize::from(span.off) + usize::from(span.len)),
        )
    }

    /// The value of field `n` as text (`None` if absent or not UTF-8, e.g. GBK in F43).
    #[must_use]
    pub fn field_str(&self, n: u8) -> Option<&str> {
        std::str::from_utf8(self.field(n)?).ok()
    }

    /// A numeric field as an integer (`n` fields up to 19 digits).
    #[must_use]
    pub fn numeric(&self, n: u8) -> Option<u64> {
        ascii_number(self.field(n)?)
    }

    /// Present field numbers in ascending order.
    pub fn field_numbers(&self) -> impl Iterator<Item = u8> + '_ {
        (2u8..=128).filter(move |&n| self.has(n))
    }

    /// Present fields with their values, ascending.
    pub fn fields(&self) -> impl Iterator<Item = (u8, &[u8])> + '_ {
        self.field_numbers()
            .filter_map(move |n| Some((n, self.field(n)?)))
    }

    /// F2, the primary account number (digits). Sensitive: render with [`crate::mask_pan`].
    #[must_use]
    pub fn pan(&self) -> Option<&[u8]> {
        self.field(2)
    }

    /// F3 processing code.
    #[must_use]
    pub fn processing_code(&self) -> Option<[u8; 6]> {
        self.field(3)?.try_into().ok()
    }

    /// F4 transaction amount in minor units.
    #[must_use]
    pub fn amount(&self) -> Option<i64> {
        i64::try_from(self.numeric(4)?).ok()
    }

    /// F7 transmission date and time, `MMDDhhmmss`.
    #[must_use]
    pub fn transmission_time(&self) -> Option<[u8; 10]> {
        self.field(7)?.try_into().ok()
    }

    /// F11 system trace audit number.
    #[must_use]
    pub fn stan(&self) -> Option<u32> {
        u32::try_from(self.numeric(11)?).ok()
    }

    /// F25 POS condition code.
    #[must_use]
    pub fn pos_condition(&self) -> Option<u8> {
        u8::try_from(self.numeric(25)?).ok()
    }

    /// F32 acquiring institution ID.
    #[must_use]
    pub fn acquirer_id(&self) -> Option<InstId> {
        InstId::from_digits(self.field(32)?)
    }

    /// F33 forwarding institution ID.
    #[must_use]
    pub fn forwarding_id(&self) -> Option<InstId> {
        InstId::from_digits(self.field(33)?)
    }

    /// F39 response code.
    #[must_use]
    pub fn response_code(&self) -> Option<ResponseCode> {
        ResponseCode::parse(self.field(39)?)
    }

    /// F70 network management information code.
    #[must_use]
    pub fn network_code(&self) -> Option<u16> {
        u16::try_from(self.numeric(70)?).ok()
    }

    /// F60 positional subfields.
    #[must_use]
    pub fn f60(&self) -> Option<F60<'_>> {
        self.field(60).map(F60)
    }

    /// F90 original data elements.
    pub fn original_data(&self) -> Option<Result<OriginalData, SubfieldError>> {
        self.field(90).map(OriginalData::parse)
    }

    /// F48 usage `IP`: the installment request. `None` if F48 is absent.
    pub fn installment_request(&self) -> Option<Result<InstallmentRequest, SubfieldError>> {
        self.field(48).map(InstallmentRequest::parse)
    }

    /// F57 usage `IP`: the installment answer. `None` if F57 is absent.
    pub fn installment_response(&self) -> Option<Result<InstallmentResponse, SubfieldError>> {
        self.field(57).map(InstallmentResponse::parse)
    }

    /// F54 balance records.
    pub fn balances(&self) -> Option<Result<Vec<Balance>, SubfieldError>> {
        self.field(54).map(Balance::parse_all)
    }

    /// Start a rewrite of this message: same fields, new header (and MTI, and a few field
    /// changes). Untouched fields are copied as encoded bytes.
    #[must_use]
    pub fn rewrite(&self) -> Rewrite<'_> {
        Rewrite {
            msg: self,
            header: self.header,
            mti: self.mti,
            ops: [None; MAX_REWRITE_OPS],
            keep: Bitmap::MAX,
            overflow: false,
        }
    }
}

/// How many field changes one rewrite holds without allocating. Forwarding needs 3 to 5.
pub const MAX_REWRITE_OPS: usize = 8;

/// One field change: `(field, Some(value))` sets, `(field, None)` removes.
type RewriteOp<'a> = (u8, Option<&'a [u8]>);

/// A pending rewrite; see [`Message::rewrite`].
pub struct Rewrite<'a> {
    msg: &'a Message,
    header: Header,
    mti: Mti,
    /// `(field, Some(value))` sets, `(field, None)` removes.
    ops: [Option<RewriteOp<'a>>; MAX_REWRITE_OPS],
    /// The message's fields that are copied (all unless [`Rewrite::keep_only`]).
    keep: Bitmap,
    /// More than MAX_REWRITE_OPS changes were asked for: `finish` reports it.
    overflow: bool,
}

impl<'a> Rewrite<'a> {
    #[must_use]
    pub fn header(mut self, header: Header) -> Self {
        self.header = header;
        self
    }

    #[must_use]
    pub fn mti(mut self, mti: Mti) -> Self {
        self.mti = mti;
        self
    }

    fn op(mut self, n: u8, value: Option<&'a [u8]>) -> Self {
        if let Some(slot) = self.ops.iter_mut().find(|s| s.is_none_or(|(m, _)| m == n)) {
            *slot = Some((n, value));
        } else {
            self.overflow = true;
        }
        self
    }

    /// Set (add or replace) field `n`.
    #[must_use]
    pub fn set(self, n: u8, value: &'a [u8]) -> Self {
        self.op(n, Some(value))
    }

    /// Remove field `n` if present.
    #[must_use]
    pub fn remove(self, n: u8) -> Self {
        self.op(n, None)
    }

    /// Copy only the message's fields numbered in `fields`; the others are dropped (fields
    /// set by this rewrite are written whatever the list). This is how an answer echoes
    /// some of its request's fields: [`MessageBuilder::response_to`](crate::MessageBuilder::response_to)
    /// encodes the same bytes field by field, this copies runs of encoded fields.
    #[must_use]
    pub fn keep_only(mut self, fields: &[u8]) -> Self {
        self.keep &= fields
            .iter()
            .filter(|&&n| (2..=128).contains(&n))
            .fold(0, |mask, &n| mask | bit(n));
        self
    }

    /// Drop the fields the message's dictionary marks secret (tracks, PIN block, expiry,
    /// CVN2, keys), however many: a drop narrows what is copied and takes none of the
    /// [`MAX_REWRITE_OPS`] changes.
    #[must_use]
    pub fn drop_secret(mut self) -> Self {
        let dict = self.msg.dict;
        for n in FieldBits::new(self.msg.bitmap & !bit(1)) {
            if dict
                .spec(n)
                .is_some_and(|s| s.sensitivity == crate::dict::Sensitivity::Secret)
            {
                self.keep &= !bit(n);
            }
        }
        self
    }

    /// Encode the rewritten message (a frame payload). One allocation, sized exactly.
    /// Untouched fields are copied as encoded, consecutive ones in a single copy.
    pub fn finish(self) -> Result<Bytes, EncodeError> {
        if self.overflow {
            return Err(EncodeError::Header("too many field changes in one rewrite"));
        }
        let msg = self.msg;
        let dict = msg.dict;
        let all = msg.bitmap & !bit(1);
        let original = all & self.keep;
        let mut present = original;
        let mut touched: Bitmap = 0;
        // Start from the original fields' length and adjust for each change. `op` keeps one
        // slot per field, so each field is adjusted once.
        let body_start = HEADER_LEN + 4 + if msg.bitmap & bit(1) != 0 { 16 } else { 8 };
        let mut fields_len = msg.raw.len().saturating_sub(body_start);
        for n in FieldBits::new(all & !self.keep) {
            if let Some(spec) = dict.spec(n) {
                let (start, end) = msg.encoded_range(n, spec);
                fields_len = fields_len.saturating_sub(end - start);
            }
        }
        for (n, value) in self.ops.iter().flatten() {
            let n = *n;
            let spec = dict
                .spec(n)
                .filter(|_| (2..=128).contains(&n) && n != 65)
                .ok_or(EncodeError::UndefinedField(n))?;
            if original & bit(n) != 0 {
                let (start, end) = msg.encoded_range(n, spec);
                fields_len = fields_len.saturating_sub(end - start);
            }
            match value {
                Some(v) => {
                    check_value(spec, v)
                        .map_err(|(kind, at)| encode_error(spec, v.len(), kind, at))?;
                    fields_len += spec.length.prefix_digits() + v.len();
                    present |= bit(n);
                }
                None => present &= !bit(n),
            }
            touched |= bit(n);
        }
        let raw: &[u8] = &msg.raw;
        encode_with(&self.header, self.mti, present, fields_len, |out| {
            // Original bytes not yet copied: a run of consecutive untouched fields.
            let mut run = (0usize, 0usize);
            let flush = |out: &mut Vec<u8>, run: (usize, usize)| {
                out.extend_from_slice(raw.get(run.0..run.1).unwrap_or_default());
            };
            for n in FieldBits::new(present) {
                let Some(spec) = dict.spec(n) else { continue };
                if touched & bit(n) != 0 {
                    flush(out, run);
                    run = (0, 0);
                    let value = self
                        .ops
                        .iter()
                        .flatten()
                        .find(|(m, _)| *m == n)
                        .and_then(|(_, v)| *v);
                    push_value(out, spec, value.unwrap_or_default());
                } else {
                    let (start, end) = msg.encoded_range(n, spec);
                    if run.1 == start && run.1 != 0 {
                        run.1 = end;
                    } else {
                        flush(out, run);
                        run = (start, end);
                    }
                }
            }
            flush(out, run);
        })
    }
}

impl Message {
    /// Where field `n` (present) lies in the payload, length prefix included.
    #[inline]
    fn encoded_range(&self, n: u8, spec: &FieldSpec) -> (usize, usize) {
        let span = self.spans.get(usize::from(n)).copied().unwrap_or_default();
        let start = usize::from(span.off).saturating_sub(spec.length.prefix_digits());
        (start, usize::from(span.off) + usize::from(span.len))
    }
}

pub(crate) fn encode_error(
    spec: &FieldSpec,
    len: usize,
    kind: ErrorKind,
    at: usize,
) -> EncodeError {
    match kind {
        ErrorKind::BadLength | ErrorKind::TooLong => EncodeError::BadLength {
            field: spec.number,
            len,
            expected: match spec.length {
                LengthKind::Fixed(n) => format!("exactly {n}"),
                other => format!("at most {}", other.max()),
            },
        },
        _ => EncodeError::IllegalContent {
            field: spec.number,
            offset: at,
        },
    }
}

/// Append a field value with its length prefix (if the field has one).
#[inline]
pub(crate) fn push_value(out: &mut Vec<u8>, spec: &FieldSpec, value: &[u8]) {
    let digits = spec.length.prefix_digits();
    if digits > 0 {
        crate::header::push_digits(out, value.len(), digits);
    }
    out.extend_from_slice(value);
}

/// Write header + MTI + bitmap, then let `write_fields` append the fields of `present`
/// (bit 1 is ignored and recomputed), which must add exactly `fields_len` bytes. Values must
/// already be validated.
pub(crate) fn encode_with(
    header: &Header,
    mti: Mti,
    present: Bitmap,
    fields_len: usize,
    write_fields: impl FnOnce(&mut Vec<u8>),
) -> Result<Bytes, EncodeError> {
    let present = present & !bit(1);
    let secondary = present & Bitmap::from(u64::MAX) != 0;
    let bitmap = if secondary { present | bit(1) } else { present };
    let total = HEADER_LEN + 4 + if secondary { 16 } else { 8 } + fields_len;
    if total > 9999 {
        return Err(EncodeError::TooLarge(total));
    }
    let mut out = Vec::with_capacity(total);
    header.write_to(total, &mut out);
    out.extend_from_slice(&mti.0);
    let bytes = bitmap.to_be_bytes();
    out.extend_from_slice(if secondary { &bytes[..] } else { &bytes[..8] });
    write_fields(&mut out);
    // A length that does not add up would also cost a second allocation in `Bytes::from`.
    debug_assert_eq!(
        out.len(),
        total,
        "encoded length differs from the computed one"
    );
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time digit check agrees with the byte loop for every length up to
    /// 40, every position of a non-digit and every byte value there.
    #[test]
    fn all_digits_agrees_with_the_byte_check_for_every_byte_at_every_place() {
        for len in 0..=40usize {
            let mut v = vec![b'7'; len];
            assert!(all_digits(&v), "len {len}");
            for at in 0..len {
                for b in 0..=255u8 {
                    v[at] = b;
                    assert_eq!(
                        all_digits(&v),
                        b.is_ascii_digit(),
                        "len {len} at {at} byte {b}"
                    );
                }
                v[at] = b'0' + (at % 10) as u8;
            }
        }
    }
}
