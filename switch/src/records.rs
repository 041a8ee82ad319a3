//! Journal record types of the switch (the storage engine in `journal/` treats them as
//! opaque bytes). Encoded with postcard: compact and fast. Records carry what matching,
//! duplicate detection, clearing and restart recovery need, and never PIN blocks or tracks.

use crate::core::{TxnKey, TxnKind};
use crate::journal::{Payload, INLINE_PAYLOAD};
use serde::{Deserialize, Serialize};

pub use arrayvec::ArrayString;

/// `s` in a fixed-capacity string, cut at the last whole character that fits. The text
/// fields of a [`RequestRecord`] are bounded by their ISO 8583 field lengths (F2 19, F41 8,
/// F42 15, F37 12, F49 3, IDs 11, F60 100), so they need no allocation per request; they
/// serialise exactly like `String`, so journals read the same either way.
#[must_use]
pub fn fixed<const N: usize>(s: &str) -> ArrayString<N> {
    // Field values fit (one copy); only a longer text is cut, a character at a time.
    ArrayString::from(s).unwrap_or_else(|_| {
        let mut out = ArrayString::new();
        for c in s.chars() {
            if out.try_push(c).is_err() {
                break;
            }
        }
        out
    })
}

pub const KIND_REQUEST: u8 = 1;
pub const KIND_OUTCOME: u8 = 2;
pub const KIND_ADVICE: u8 = 3;
pub const KIND_ADVICE_DONE: u8 = 4;

/// A request accepted from an acquirer (written before it is forwarded or declined).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub key: TxnKey,
    pub kind: TxnKind,
    pub mti: [u8; 4],
    pub processing_code: [u8; 6],
    pub pos_condition: u8,
    /// F4 in minor units (0 when absent).
    pub amount: i64,
    /// Full PAN: clearing files need it. Never logged.
    pub pan: ArrayString<19>,
    pub terminal: ArrayString<8>,
    pub merchant: ArrayString<15>,
    pub mcc: u16,
    pub rrn: ArrayString<12>,
    pub currency: ArrayString<3>,
    /// Institution the acquirer link is bound to.
    pub link_institution: ArrayString<11>,
    /// Issuer the request was routed to, if any.
    pub issuer: Option<ArrayString<11>>,
    /// F11 as sent to the issuer (the switch rewrites it per issuer link).
    pub issuer_stan: Option<u32>,
    /// Settlement date `YYYYMMDD`.
    pub settlement_date: u32,
    pub received_ms: i64,
    /// F90 of a related transaction.
    pub original: Option<TxnKey>,
    /// F22 POS entry mode (n3), 0 when absent.
    pub pos_entry: u16,
    /// F23 card sequence number, 0 when absent.
    pub card_seq: u16,
    /// F60 as received (reason code, terminal capabilities, terminal type, ECI; no card
    /// data). Clearing reads 60.2.2, 60.2.3, 60.2.5 and 60.2.8 from it.
    pub f60: ArrayString<100>,
    /// F48 `IP` terms of an installment purchase.
    pub installment: Option<InstallmentTerms>,
}

/// What clearing needs of an installment request (F48 `IP`, SPEC.md section 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallmentTerms {
    pub periods: u8,
    /// `0` fee spread, `1` fee with the first period.
    pub fee_mode: u8,
    /// Full installment fee rate, fraction x 10^5.
    pub fee_rate: u32,
    /// Merchant subsidy fee rate, fraction x 10^5.
    pub subsidy_rate: u32,
}

/// Who decided the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Responder {
    Issuer,
    Switch,
}

/// The final answer given to the acquirer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub key: TxnKey,
    pub settlement_date: u32,
    pub code: [u8; 2],
    /// F38 (6 characters; fixed capacity like the request's text fields: no allocation).
    pub auth_code: Option<ArrayString<6>>,
    pub responder: Responder,
    pub answered_ms: i64,
    /// A reversal the switch generated for this transaction (F60.1 reason).
    pub reversal_reason: Option<[u8; 4]>,
    /// Cardholder installment fee from an approved F57 `IP` (minor units).
    pub installment_fee: Option<i64>,
}

/// A switch-generated or forwarded 0420 advice queued for store-and-forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdviceRecord {
    pub issuer: String,
    /// F11 of the advice as sent to the issuer (matches its 0430).
    pub advice_stan: u32,
    pub reason: [u8; 4],
    /// Key of the original transaction (acquirer's).
    pub original: Option<TxnKey>,
    /// The advice frame payload as sent (PAN included, no PIN/track data).
    pub payload: Vec<u8>,
    pub queued_ms: i64,
}

/// An advice answered with 0430 (or given up after its retries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdviceDoneRecord {
    pub issuer: String,
    pub advice_stan: u32,
    pub answered: bool,
}

/// Any record, decoded. Requests are the large variant; records are decoded one at a time,
/// so the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchRecord {
    Request(RequestRecord),
    Outcome(OutcomeRecord),
    Advice(AdviceRecord),
    AdviceDone(AdviceDoneRecord),
}

/// Encoded straight into the payload's inline buffer: no allocation for a record that
/// fits (requests and outcomes), and nothing for the journal writer to free on its thread.
/// A larger record (an advice carrying a long frame) takes the growing-`Vec` way.
fn encode_one<T: Serialize>(record: &T) -> Result<Payload, postcard::Error> {
    let mut inline = [0u8; INLINE_PAYLOAD];
    let into = InlineFlavor {
        buf: &mut inline,
        len: 0,
    };
    match postcard::serialize_with_flavor(record, into) {
        Ok(len) => {
            if let Some(payload) = Payload::inline(inline, len) {
                return Ok(payload);
            }
        }
        Err(postcard::Error::SerializeBufferFull) => {}
        Err(e) => return Err(e),
    }
    postcard::to_extend(record, Vec::new()).map(Payload::from)
}

/// postcard's output into a fixed buffer, the same bytes as `postcard::to_slice` writes.
/// A record is some 30 pieces of 1 to 20 bytes (varints, short strings): `to_slice` hands
/// each to `memcpy`, whose call and size dispatch cost more than the copy. Here a piece of
/// up to 16 bytes is copied with fixed-size moves the compiler inlines.
struct InlineFlavor<'a> {
    buf: &'a mut [u8; INLINE_PAYLOAD],
    len: usize,
}

impl postcard::ser_flavors::Flavor for InlineFlavor<'_> {
    type Output = usize;

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        let slot = self
            .buf
            .get_mut(self.len)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        *slot = data;
        self.len += 1;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.len + data.len();
        let dst = self
            .buf
            .get_mut(self.len..end)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        copy_short(dst, data);
        self.len = end;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

/// `dst.copy_from_slice(src)` (the caller cuts `dst` to `src`'s length), with pieces of
/// up to 16 bytes copied as two overlapping fixed-size moves instead of a call to `memcpy`.
#[inline]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    fn two<const K: usize>(dst: &mut [u8], src: &[u8]) {
        let n = src.len();
        if let (Some(d), Some(s)) = (dst.get_mut(..K), src.get(..K)) {
            d.copy_from_slice(s);
        }
        if let (Some(d), Some(s)) = (dst.get_mut(n - K..), src.get(n - K..)) {
            d.copy_from_slice(s);
        }
    }
    match src.len() {
        0 => {}
        1 => {
            if let (Some(d), Some(s)) = (dst.first_mut(), src.first()) {
                *d = *s;
            }
        }
        2..=3 => two::<2>(dst, src),
        4..=7 => two::<4>(dst, src),
        8..=16 => two::<8>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

impl SwitchRecord {
    #[must_use]
    pub fn kind(&self) -> u8 {
        match self {
            SwitchRecord::Request(_) => KIND_REQUEST,
            SwitchRecord::Outcome(_) => KIND_OUTCOME,
            SwitchRecord::Advice(_) => KIND_ADVICE,
            SwitchRecord::AdviceDone(_) => KIND_ADVICE_DONE,
        }
    }

    /// Serialise the payload.
    pub fn encode(&self) -> Result<Payload, postcard::Error> {
        match self {
            SwitchRecord::Request(r) => encode_one(r),
            SwitchRecord::Outcome(r) => encode_one(r),
            SwitchRecord::Advice(r) => encode_one(r),
            SwitchRecord::AdviceDone(r) => encode_one(r),
        }
    }

    /// Decode a journal record; `None` for an unknown kind (a newer version's record).
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Option<SwitchRecord>, postcard::Error> {
        Ok(Some(match kind {
            KIND_REQUEST => SwitchRecord::Request(postcard::from_bytes(payload)?),
            KIND_OUTCOME => SwitchRecord::Outcome(postcard::from_bytes(payload)?),
            KIND_ADVICE => SwitchRecord::Advice(postcard::from_bytes(payload)?),
            KIND_ADVICE_DONE => SwitchRecord::AdviceDone(postcard::from_bytes(payload)?),
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_text_cuts_at_a_character_and_serialises_like_a_string() {
        assert_eq!(fixed::<3>("156").as_str(), "156");
        assert_eq!(fixed::<3>("15678").as_str(), "156");
        assert_eq!(fixed::<4>("ab\u{e9}\u{e9}").as_str(), "ab\u{e9}");
        assert_eq!(fixed::<8>("").as_str(), "");
        // Journals written with `String` fields read back unchanged, and the reverse.
        let s = "TERM0001".to_string();
        let a = postcard::to_allocvec(&s).unwrap();
        assert_eq!(a, postcard::to_allocvec(&fixed::<8>(&s)).unwrap());
        assert_eq!(
            postcard::from_bytes::<ArrayString<8>>(&a).unwrap().as_str(),
            s
        );
        // Text longer than a field can be is refused, not cut, when read back.
        let long = postcard::to_allocvec(&"123456789").unwrap();
        assert!(postcard::from_bytes::<ArrayString<8>>(&long).is_err());
    }

    /// The inline encoder writes what postcard's own does for every piece size it
    /// copies differently (1, 2-3, 4-7, 8-16 bytes) and on either side of each bound, and
    /// refuses what does not fit instead of cutting it.
    #[test]
    fn the_inline_encoder_writes_postcards_bytes_for_every_piece_size() {
        for n in 0..=40usize {
            let text: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let piece = (text.clone(), n as u64 * 1_000_003, vec![7u8; n]);
            let want = postcard::to_allocvec(&piece).unwrap();
            let got = encode_one(&piece).unwrap();
            assert!(got.is_inline(), "{n}");
            assert_eq!(got.as_slice(), &want[..], "piece of {n} bytes");
        }
        let mut small = [0u8; INLINE_PAYLOAD];
        let mut full = InlineFlavor {
            buf: &mut small,
            len: INLINE_PAYLOAD - 3,
        };
        use postcard::ser_flavors::Flavor;
        assert!(full.try_extend(b"abcd").is_err());
        assert_eq!(full.len, INLINE_PAYLOAD - 3, "nothing written on refusal");
        assert!(full.try_extend(b"abc").is_ok());
        assert!(full.try_push(b'x').is_err());
        assert_eq!(&small[INLINE_PAYLOAD - 3..], b"abc");
        // Larger than the buffer: the shared form, with the same bytes.
        let long = vec![1u8; INLINE_PAYLOAD + 10];
        let got = encode_one(&long).unwrap();
        assert!(!got.is_inline());
        assert_eq!(got.as_slice(), &postcard::to_allocvec(&long).unwrap()[..]);
    }

    /// Every request record fits the journal's inline payload, however full its fields:
    /// a request is the one record every transaction writes before it is forwarded.
    #[test]
    fn the_largest_request_record_is_journalled_inline() {
        let key = TxnKey {
            transmission: 1_231_235_959,
            stan: 999_999,
            acquirer: 99_999_999_999,
            forwarding: 99_999_999_999,
        };
        let inst = fixed::<11>("99999999999");
        let largest = RequestRecord {
            key,
            kind: TxnKind::InstallmentPurchase,
            mti: *b"0200",
            processing_code: *b"000000",
            pos_condition: 99,
            amount: 999_999_999_999,
            pan: fixed("9999999999999999999"),
            terminal: fixed("TERM0001"),
            merchant: fixed("123456789012345"),
            mcc: 9999,
            rrn: fixed("999999999999"),
            currency: fixed("156"),
            link_institution: inst,
            issuer: Some(inst),
            issuer_stan: Some(999_999),
            settlement_date: 20_261_231,
            received_ms: i64::MAX,
            original: Some(key),
            pos_entry: 999,
            card_seq: 999,
            f60: fixed(&"9".repeat(100)),
            installment: Some(InstallmentTerms {
                periods: 99,
                fee_mode: 1,
                fee_rate: u32::MAX,
                subsidy_rate: u32::MAX,
            }),
        };
        let payload = SwitchRecord::Request(largest.clone()).encode().unwrap();
        assert!(payload.is_inline(), "{} bytes", payload.len());
        assert_eq!(
            SwitchRecord::decode(KIND_REQUEST, payload.as_slice()).unwrap(),
            Some(SwitchRecord::Request(largest))
        );
    }

    #[test]
    fn records_round_trip() {
        let key = TxnKey {
            transmission: 1_121_093_000,
            stan: 1,
            acquirer: 1_030_000,
            forwarding: 1_030_000,
        };
        let recs = [
            SwitchRecord::Outcome(OutcomeRecord {
                key,
                settlement_date: 20261121,
                code: *b"00",
                auth_code: Some(fixed("123456")),
                responder: Responder::Issuer,
                answered_ms: 5,
                reversal_reason: None,
                installment_fee: Some(1234),
            }),
            SwitchRecord::AdviceDone(AdviceDoneRecord {
                issuer: "03010000".into(),
                advice_stan: 19,
                answered: true,
            }),
            // Larger than an inline payload: encoded through a growing Vec instead.
            SwitchRecord::Advice(AdviceRecord {
                issuer: "03010000".into(),
                advice_stan: 29,
                reason: *b"4361",
                original: Some(key),
                payload: vec![b'7'; 2_000],
                queued_ms: 9,
            }),
        ];
        for r in recs {
            let payload = r.encode().unwrap();
            // Requests and outcomes ride inside the journal's record; the long advice not.
            assert_eq!(
                payload.is_inline(),
                !matches!(r, SwitchRecord::Advice(_)),
                "{:?}",
                r.kind()
            );
            let bytes = payload.as_slice();
            // Byte for byte what postcard writes on its own (journals stay readable).
            let plain = match &r {
                SwitchRecord::Outcome(o) => postcard::to_allocvec(o),
                SwitchRecord::AdviceDone(o) => postcard::to_allocvec(o),
                SwitchRecord::Advice(o) => postcard::to_allocvec(o),
                SwitchRecord::Request(o) => postcard::to_allocvec(o),
            }
            .unwrap();
            assert_eq!(bytes, &plain[..]);
            assert_eq!(SwitchRecord::decode(r.kind(), bytes).unwrap(), Some(r));
        }
        assert_eq!(SwitchRecord::decode(99, b"").unwrap(), None);
        assert!(SwitchRecord::decode(KIND_REQUEST, b"\xff").is_err());
    }
}
