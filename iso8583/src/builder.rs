//! Building messages field by field (switch-generated answers, simulators, `switch encode`).

use crate::dict::{Charset, Dictionary, LengthKind, CUPS};
use crate::error::EncodeError;
use crate::header::Header;
use crate::message::{
    bit, check_value, encode_error, encode_with, push_value, Bitmap, FieldBits, Message,
};
use crate::mti::{Mti, ResponseCode};
use bytes::Bytes;

/// Collects field values, then validates and encodes them in one pass.
#[derive(Clone)]
pub struct MessageBuilder {
    header: Header,
    mti: Mti,
    /// All values, back to back; `spans` index into it. One growing buffer instead of one
    /// allocation per field.
    arena: Vec<u8>,
    spans: [(u32, u32); 129],
    present: Bitmap,
    /// Fields whose value was copied from a decoded message of the same dictionary: the
    /// decoder already checked them, so `build` does not check them again (an answer
    /// echoes most of its request).
    checked: Bitmap,
    dict: &'static Dictionary,
}

impl MessageBuilder {
    #[must_use]
    pub fn new(mti: Mti, header: Header) -> Self {
        Self {
            header,
            mti,
            arena: Vec::with_capacity(256),
            spans: [(0, 0); 129],
            present: 0,
            checked: 0,
            dict: &CUPS,
        }
    }

    /// Start over with no fields, keeping the value buffer's capacity: a sender that
    /// builds one message after another reuses one builder instead of allocating one each.
    pub fn reset(&mut self, mti: Mti, header: Header) -> &mut Self {
        self.header = header;
        self.mti = mti;
        self.arena.clear();
        // `spans` need no clearing: a span is read only for a present field, and setting
        // a field writes its span.
        self.present = 0;
        self.checked = 0;
        self.dict = &CUPS;
        self
    }

    /// A builder holding every field of `msg`, its header and MTI.
    #[must_use]
    pub fn from_message(msg: &Message) -> Self {
        let mut b = Self::new(msg.mti(), *msg.header());
        b.dict = msg.dictionary();
        for (n, v) in msg.fields() {
            b.set_checked(n, v);
        }
        b
    }

    /// The answer to `request`: response MTI, swapped header, the given fields copied from
    /// the request, and F39.
    #[must_use]
    pub fn response_to(request: &Message, echo: &[u8], code: ResponseCode) -> Self {
        let mut b = Self::new(request.mti().response(), request.header().response());
        b.dict = request.dictionary();
        for &n in echo {
            if let Some(v) = request.field(n) {
                b.set_checked(n, v);
            }
        }
        b.set(39, code.0);
        b
    }

    pub fn set_header(&mut self, header: Header) -> &mut Self {
        self.header = header;
        self
    }

    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn header_mut(&mut self) -> &mut Header {
        &mut self.header
    }

    pub fn set_mti(&mut self, mti: Mti) -> &mut Self {
        self.mti = mti;
        self
    }

    #[must_use]
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// A value of a message decoded with this builder's dictionary (already checked).
    fn set_checked(&mut self, n: u8, value: &[u8]) {
        self.set(n, value);
        if (2..=128).contains(&n) {
            self.checked |= bit(n);
        }
    }

    /// Set field `n` to exactly these bytes (validated by [`build`](Self::build)).
    pub fn set(&mut self, n: u8, value: impl AsRef<[u8]>) -> &mut Self {
        let value = value.as_ref();
        let start = u32::try_from(self.arena.len()).unwrap_or(u32::MAX);
        self.arena.extend_from_slice(value);
        if let Some(slot) = self.spans.get_mut(usize::from(n)) {
            *slot = (start, u32::try_from(value.len()).unwrap_or(u32::MAX));
            if (1..=128).contains(&n) {
                self.present |= bit(n);
                self.checked &= !bit(n);
            }
        }
        self
    }

    /// Set a numeric field: zero-filled to the width of a fixed field, minimal digits for
    /// a variable one.
    pub fn set_numeric(&mut self, n: u8, value: u64) -> &mut Self {
        let digits = value.to_string();
        match self.dict.spec(n).map(|s| s.length) {
            Some(LengthKind::Fixed(w)) if digits.len() < usize::from(w) => {
                let padded = format!("{value:0>width$}", width = usize::from(w));
                self.set(n, padded)
            }
            _ => self.set(n, digits),
        }
    }

    /// Set a text field: space-filled to the width of a fixed `an`/`ans` field (left-aligned),
    /// zero-filled on the left for a fixed `n` field, as is for a variable one.
    pub fn set_text(&mut self, n: u8, value: &str) -> &mut Self {
        match self.dict.spec(n).map(|s| (s.length, s.charset)) {
            Some((LengthKind::Fixed(w), Charset::Numeric)) if value.len() < usize::from(w) => {
                let padded = format!("{value:0>width$}", width = usize::from(w));
                self.set(n, padded)
            }
            Some((LengthKind::Fixed(w), Charset::Alnum | Charset::Text))
                if value.len() < usize::from(w) =>
            {
                let padded = format!("{value:<width$}", width = usize::from(w));
                self.set(n, padded)
            }
            _ => self.set(n, value),
        }
    }

    /// Remove field `n`.
    pub fn remove(&mut self, n: u8) -> &mut Self {
        if (1..=128).contains(&n) {
            self.present &= !bit(n);
        }
        self
    }

    /// The current value of field `n`.
    #[must_use]
    pub fn get(&self, n: u8) -> Option<&[u8]> {
        if !(2..=128).contains(&n) || self.present & bit(n) == 0 {
            return None;
        }
        let (start, len) = *self.spans.get(usize::from(n))?;
        self.arena
            .get(start as usize..start as usize + len as usize)
    }

    /// The stored value of field `n`, present or not (empty if never set).
    #[inline]
    fn value(&self, n: u8) -> &[u8] {
        let (start, len) = self.spans.get(usize::from(n)).copied().unwrap_or_default();
        self.arena
            .get(start as usize..start as usize + len as usize)
            .unwrap_or_default()
    }

    /// Validate every field and encode the frame payload (header + body).
    pub fn build(&self) -> Result<Bytes, EncodeError> {
        if !self.mti.0.iter().all(u8::is_ascii_digit) {
            return Err(EncodeError::BadMti);
        }
        let mut fields_len = 0;
        for n in FieldBits::new(self.present) {
            let spec = self
                .dict
                .spec(n)
                .filter(|_| n != 65 && n != 1)
                .ok_or(EncodeError::UndefinedField(n))?;
            let value = self.value(n);
            if self.checked & bit(n) == 0 {
                check_value(spec, value)
                    .map_err(|(kind, at)| encode_error(spec, value.len(), kind, at))?;
            }
            fields_len += spec.length.prefix_digits() + value.len();
        }
        encode_with(&self.header, self.mti, self.present, fields_len, |out| {
            for n in FieldBits::new(self.present & !bit(1)) {
                if let Some(spec) = self.dict.spec(n) {
                    push_value(out, spec, self.value(n));
                }
            }
        })
    }
}
