//! Showing messages to people: masking (SPEC.md section 13), `Debug`/`Display`, and the
//! JSON shape of `switch describe --json` / `switch encode`.
//!
//! Masking is decided here, from the dictionary's sensitivity flags, so no caller has to
//! remember which fields are card data.

use crate::dict::{Charset, Dictionary, FieldSpec, Sensitivity, CUPS};
use crate::error::EncodeError;
use crate::header::{Header, InstId, FLAG_PRODUCTION};
use crate::message::{Message, Packet};
use crate::mti::Mti;
use crate::MessageBuilder;
use serde_json::{json, Map, Value};
use std::fmt;

/// A PAN shown as first 6 + last 4 digits, the middle as `*`. PANs of 10 digits or fewer
/// are shown as `*` only (there would be nothing left to hide).
#[derive(Clone, Copy)]
pub struct MaskedPan {
    buf: [u8; 19],
    len: u8,
}

/// Mask a PAN (any bytes; only its length and the kept digits are shown).
#[must_use]
pub fn mask_pan(pan: &[u8]) -> MaskedPan {
    let mut buf = [b'*'; 19];
    let len = pan.len().min(19);
    if len > 10 {
        for (i, slot) in buf.iter_mut().enumerate().take(len) {
            if i < 6 || i >= len - 4 {
                *slot = pan
                    .get(i)
                    .copied()
                    .filter(u8::is_ascii_digit)
                    .unwrap_or(b'?');
            }
        }
    }
    MaskedPan {
        buf,
        len: u8::try_from(len).unwrap_or(19),
    }
}

impl MaskedPan {
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.buf.get(..usize::from(self.len)).unwrap_or_default()).unwrap_or("")
    }
}

impl fmt::Display for MaskedPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MaskedPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field value as text for people. `reveal` shows everything (explicit opt-in tools only).
#[must_use]
pub fn render_value(spec: &FieldSpec, value: &[u8], reveal: bool) -> String {
    match (spec.sensitivity, reveal) {
        (Sensitivity::Pan, false) => mask_pan(value).to_string(),
        (Sensitivity::Secret, false) => "*".repeat(if spec.charset == Charset::Binary {
            value.len() * 2
        } else {
            value.len()
        }),
        _ if spec.charset == Charset::Binary => hex::encode_upper(value),
        _ => String::from_utf8_lossy(value).into_owned(),
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        m.entry(&"mti", &self.mti().as_str());
        m.entry(&"source", &self.header().source.as_str());
        m.entry(&"dest", &self.header().dest.as_str());
        for (n, v) in self.fields() {
            if let Some(spec) = self.dictionary().spec(n) {
                m.entry(&n, &render_value(spec, v, false));
            }
        }
        m.finish()
    }
}

/// Multi-line description: header line, MTI, one line per field with number and name.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_header_line(f, self.header())?;
        writeln!(f, "MTI {}", self.mti())?;
        for (n, v) in self.fields() {
            if let Some(spec) = self.dictionary().spec(n) {
                writeln!(
                    f,
                    "  F{n:<3} {:<40} {}",
                    spec.name,
                    render_value(spec, v, false)
                )?;
            }
        }
        Ok(())
    }
}

pub(crate) fn write_header_line(f: &mut impl fmt::Write, h: &Header) -> fmt::Result {
    writeln!(
        f,
        "header flag={:02X} length={} dest={} source={} reserved={} batch={} txn_info={} user_info={} reject={}",
        h.flag,
        h.total_len,
        h.dest,
        h.source,
        hex::encode_upper(h.reserved),
        h.batch,
        String::from_utf8_lossy(&h.txn_info),
        h.user_info,
        h.reject
    )
}

/// Describe a packet in the multi-line text form (`reveal` unmasks the PAN and secrets).
#[must_use]
pub fn describe_text(packet: &Packet, reveal: bool) -> String {
    let mut out = String::new();
    match packet {
        Packet::Message(m) if !reveal => out = m.to_string(),
        Packet::Message(m) => {
            let _ = write_header_line(&mut out, m.header());
            out.push_str(&format!("MTI {}\n", m.mti()));
            for (n, v) in m.fields() {
                if let Some(spec) = m.dictionary().spec(n) {
                    out.push_str(&format!(
                        "  F{n:<3} {:<40} {}\n",
                        spec.name,
                        render_value(spec, v, true)
                    ));
                }
            }
        }
        Packet::Reject { header, original } => {
            let _ = write_header_line(&mut out, header);
            out.push_str(&format!("REJECT {} of the message below\n", header.reject));
            match Packet::decode(original.clone()) {
                Ok(inner) => out.push_str(&describe_text(&inner, reveal)),
                Err(e) => out.push_str(&format!("  (original not decodable: {e})\n")),
            }
        }
    }
    out
}

fn header_json(h: &Header) -> Value {
    json!({
        "flag": h.flag,
        "length": h.total_len,
        "dest": h.dest.as_str(),
        "source": h.source.as_str(),
        "reserved": hex::encode_upper(h.reserved),
        "batch": h.batch,
        "txn_info": String::from_utf8_lossy(&h.txn_info),
        "user_info": h.user_info,
        "reject": h.reject.as_str(),
    })
}

fn field_json(spec: &FieldSpec, v: &[u8], reveal: bool) -> Value {
    if spec.charset != Charset::Binary
        && std::str::from_utf8(v).is_err()
        && (reveal || spec.sensitivity == Sensitivity::Clear)
    {
        // Text that is not UTF-8 (GBK merchant names): keep it exact as hex.
        return json!({ "hex": hex::encode_upper(v) });
    }
    Value::String(render_value(spec, v, reveal))
}

/// The JSON object of `switch describe --json` for one packet.
#[must_use]
pub fn to_json(packet: &Packet, reveal: bool) -> Value {
    match packet {
        Packet::Message(m) => {
            let mut fields = Map::new();
            for (n, v) in m.fields() {
                if let Some(spec) = m.dictionary().spec(n) {
                    fields.insert(n.to_string(), field_json(spec, v, reveal));
                }
            }
            json!({ "header": header_json(m.header()), "mti": m.mti().as_str(), "fields": fields })
        }
        Packet::Reject { header, original } => {
            let mut obj = Map::new();
            obj.insert("header".into(), header_json(header));
            match Packet::decode(original.clone()) {
                Ok(inner) => {
                    obj.insert("original".into(), to_json(&inner, reveal));
                }
                Err(e) => {
                    obj.insert("original_error".into(), Value::String(e.to_string()));
                }
            }
            if reveal {
                obj.insert(
                    "original_hex".into(),
                    Value::String(hex::encode_upper(original)),
                );
            }
            Value::Object(obj)
        }
    }
}

/// Why a JSON message could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> JsonError {
    JsonError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

fn header_from_json(h: Option<&Value>) -> Result<Header, JsonError> {
    let h = h
        .and_then(Value::as_object)
        .ok_or(JsonError::Missing("header"))?;
    let id = |key: &'static str| -> Result<InstId, JsonError> {
        let s = h
            .get(key)
            .and_then(Value::as_str)
            .ok_or(JsonError::Missing(key))?;
        InstId::new(s).ok_or_else(|| invalid(format!("header.{key}"), "must be 1 to 11 digits"))
    };
    let byte = |key: &'static str, default: u8| -> Result<u8, JsonError> {
        match h.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| invalid(format!("header.{key}"), "must be a number 0 to 255")),
        }
    };
    let mut header = Header::new(id("dest")?, id("source")?);
    header.flag = byte("flag", FLAG_PRODUCTION)?;
    header.batch = byte("batch", 0)?;
    header.user_info = byte("user_info", 0)?;
    if let Some(r) = h.get("reserved") {
        let raw = r
            .as_str()
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| invalid("header.reserved", "must be hex"))?;
        header.reserved = raw
            .try_into()
            .map_err(|_| invalid("header.reserved", "must be 3 bytes"))?;
    }
    if let Some(t) = h.get("txn_info") {
        let s = t
            .as_str()
            .ok_or_else(|| invalid("header.txn_info", "must be a string"))?;
        header.txn_info = s
            .as_bytes()
            .try_into()
            .map_err(|_| invalid("header.txn_info", "must be 8 characters"))?;
    }
    if let Some(r) = h.get("reject") {
        let s = r
            .as_str()
            .ok_or_else(|| invalid("header.reject", "must be a string"))?;
        let raw: [u8; 5] = s
            .as_bytes()
            .try_into()
            .map_err(|_| invalid("header.reject", "must be 5 digits"))?;
        if !raw.iter().all(u8::is_ascii_digit) {
            return Err(invalid("header.reject", "must be 5 digits"));
        }
        header.reject = crate::RejectCode(raw);
    }
    Ok(header)
}

/// Build a frame payload from the JSON shape of [`to_json`] (values in full).
pub fn from_json(value: &Value) -> Result<Vec<u8>, JsonError> {
    from_json_with(value, &CUPS)
}

fn from_json_with(value: &Value, dict: &'static Dictionary) -> Result<Vec<u8>, JsonError> {
    let header = header_from_json(value.get("header"))?;
    if header.reject != crate::RejectCode::NONE {
        let original = match (value.get("original_hex"), value.get("original")) {
            (Some(h), _) => h
                .as_str()
                .and_then(|s| hex::decode(s).ok())
                .ok_or_else(|| invalid("original_hex", "must be hex"))?,
            (None, Some(inner)) => from_json_with(inner, dict)?,
            (None, None) => return Err(JsonError::Missing("original or original_hex")),
        };
        let mut out = Vec::with_capacity(46 + original.len());
        header.write_to(46 + original.len(), &mut out);
        out.extend_from_slice(&original);
        return Ok(out);
    }
    let mti_str = value
        .get("mti")
        .and_then(Value::as_str)
        .ok_or(JsonError::Missing("mti"))?;
    let mti = Mti::parse(mti_str.as_bytes()).ok_or_else(|| invalid("mti", "must be 4 digits"))?;
    let mut b = MessageBuilder::new(mti, header);
    let fields = value
        .get("fields")
        .and_then(Value::as_object)
        .ok_or(JsonError::Missing("fields"))?;
    for (key, v) in fields {
        let n: u8 = key
            .parse()
            .map_err(|_| invalid(format!("fields.{key}"), "field number must be 2 to 128"))?;
        let spec = dict.spec(n).ok_or_else(|| {
            invalid(
                format!("fields.{key}"),
                "field not defined in the dictionary",
            )
        })?;
        let bytes = match v {
            Value::String(s) if spec.charset == Charset::Binary => hex::decode(s)
                .map_err(|_| invalid(format!("fields.{key}"), "binary field must be hex"))?,
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Object(o) => o
                .get("hex")
                .and_then(Value::as_str)
                .and_then(|s| hex::decode(s).ok())
                .ok_or_else(|| {
                    invalid(
                        format!("fields.{key}"),
                        "object form must be {\"hex\": \"...\"}",
                    )
                })?,
            Value::Number(num) => num.to_string().into_bytes(),
            _ => return Err(invalid(format!("fields.{key}"), "must be a string")),
        };
        b.set(n, bytes);
    }
    Ok(b.build()?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_masking() {
        assert_eq!(mask_pan(b"6222020000000123").as_str(), "622202******0123");
        assert_eq!(
            mask_pan(b"6222020000000000123").as_str(),
            "622202*********0123"
        );
        assert_eq!(mask_pan(b"12345678901").as_str(), "123456*8901");
        assert_eq!(mask_pan(b"1234567890").as_str(), "**********");
        assert_eq!(mask_pan(b"").as_str(), "");
    }
}
