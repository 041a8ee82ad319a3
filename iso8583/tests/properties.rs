//! Property tests of the codec (proptest, 256 cases each):
//! - (a) any valid message built from the dictionary decodes to the same header, MTI and
//!   fields, and re-encodes byte for byte (builder, rewrite, JSON with `--reveal`);
//! - (b) decoding arbitrary bytes, arbitrary bodies behind a valid header, and valid messages
//!   with random mutations never panics; whatever decodes re-encodes byte for byte;
//! - (c) a stream of frames and keep-alives cut at arbitrary points decodes to the same frames;
//! - (d) `Debug`, `Display`, `describe_text` and `to_json` never show a full PAN, track data,
//!   a PIN block or CVN2 data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use iso8583::dict::{Charset, FieldSpec, LengthKind, Sensitivity};
use iso8583::render::{describe_text, from_json, to_json};
use iso8583::{
    Frame, FrameCodec, Header, InstId, Message, MessageBuilder, Mti, Packet, ResponseCode,
    HEADER_LEN,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use tokio_util::codec::{Decoder, Encoder};

const MTIS: [Mti; 10] = [
    Mti::AUTH_REQUEST,
    Mti::AUTH_RESPONSE,
    Mti::FINANCIAL_REQUEST,
    Mti::FINANCIAL_RESPONSE,
    Mti::FINANCIAL_ADVICE,
    Mti::FINANCIAL_ADVICE_RESPONSE,
    Mti::REVERSAL_ADVICE,
    Mti::REVERSAL_ADVICE_RESPONSE,
    Mti::NETWORK_REQUEST,
    Mti::NETWORK_RESPONSE,
];

/// Fields whose values the masking property plants itself.
const PLANTED: [u8; 6] = [2, 35, 36, 45, 52, 61];

/// Present fields and their values, ascending.
type Fields = Vec<(u8, Vec<u8>)>;
/// A field that may or may not be chosen.
type MaybeField = BoxedStrategy<Option<(u8, Vec<u8>)>>;

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// One byte of a character class (SPEC.md 3.1).
fn class_byte(charset: Charset) -> BoxedStrategy<u8> {
    match charset {
        Charset::Numeric | Charset::SignedNumeric => (b'0'..=b'9').boxed(),
        Charset::Track => select(b"0123456789=D".to_vec()).boxed(),
        Charset::Alnum => {
            select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ".to_vec())
                .boxed()
        }
        // Printable ASCII and the high half (GBK text); no control characters.
        Charset::Text => prop_oneof![3 => 0x20u8..=0x7E, 1 => 0x80u8..=0xFF].boxed(),
        Charset::Binary => any::<u8>().boxed(),
    }
}

/// A valid value for a field: length per its spec, bytes from its character class.
fn value(spec: &FieldSpec) -> BoxedStrategy<Vec<u8>> {
    let (min, max) = match spec.length {
        LengthKind::Fixed(n) => (usize::from(n), usize::from(n)),
        LengthKind::LlVar(n) | LengthKind::LllVar(n) => (0, usize::from(n)),
    };
    if spec.charset == Charset::SignedNumeric {
        // `C` or `D` then digits; at least the sign.
        let digits = min.max(1) - 1..=max - 1;
        return (select(vec![b'C', b'D']), vec(b'0'..=b'9', digits))
            .prop_map(|(sign, digits)| {
                let mut v = vec![sign];
                v.extend(digits);
                v
            })
            .boxed();
    }
    vec(class_byte(spec.charset), min..=max).boxed()
}

fn inst_id() -> impl Strategy<Value = InstId> {
    "[0-9]{1,11}".prop_map(|s| InstId::new(&s).unwrap())
}

/// Any header an institution could send: both flags, any echo bytes. Field 8 (transaction
/// info) is ASCII per SPEC.md 3; the codec carries whatever it gets, but JSON shows it as text.
fn header() -> impl Strategy<Value = Header> {
    (
        inst_id(),
        inst_id(),
        any::<bool>(),
        any::<[u8; 3]>(),
        any::<u8>(),
        "[ -~]{8}",
        any::<u8>(),
    )
        .prop_map(
            |(dest, source, test, reserved, batch, txn_info, user_info)| {
                let mut h = Header::new(dest, source);
                h.flag = if test { 0x82 } else { 0x02 };
                h.reserved = reserved;
                h.batch = batch;
                h.txn_info = txn_info.as_bytes().try_into().unwrap();
                h.user_info = user_info;
                h
            },
        )
}

/// A random subset of the dictionary's fields (each present with probability `p`), with
/// valid values, in ascending field order. `skip` fields are never chosen.
fn fields(p: f64, skip: &'static [u8]) -> impl Strategy<Value = Fields> {
    let per_field: Vec<MaybeField> = iso8583::CUPS
        .iter()
        .filter(|spec| !skip.contains(&spec.number))
        .map(|spec| {
            let n = spec.number;
            prop::option::weighted(p, value(spec).prop_map(move |v| (n, v))).boxed()
        })
        .collect();
    per_field.prop_map(|v| v.into_iter().flatten().collect())
}

fn message() -> impl Strategy<Value = (Mti, Header, Fields)> {
    (select(MTIS.to_vec()), header(), fields(0.3, &[]))
}

fn build(mti: Mti, header: Header, fields: &Fields) -> Bytes {
    let mut b = MessageBuilder::new(mti, header);
    for (n, v) in fields {
        b.set(*n, v);
    }
    b.build().unwrap()
}

/// A change to a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Flip(Index, u8),
    Insert(Index, u8),
    Remove(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        2 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match m {
        Mutation::Replace(i, b) => bytes[i.index(len)] = *b,
        Mutation::Flip(i, bit) => bytes[i.index(len)] ^= 1 << bit,
        Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
        Mutation::Remove(i) => {
            bytes.remove(i.index(len));
        }
    }
}

/// Header length field (H3) set to the payload's length, so the body gets decoded.
fn fix_len(bytes: &mut [u8]) {
    if bytes.len() >= 6 {
        let len = format!("{:04}", bytes.len() % 10_000);
        bytes[2..6].copy_from_slice(len.as_bytes());
    }
}

/// Decode `raw` every way there is and use the result every way there is. Whatever decodes
/// as a message re-encodes byte for byte.
fn exercise(raw: Bytes) -> Result<(), TestCaseError> {
    let as_message = Message::decode(raw.clone());
    match Packet::decode(raw.clone()) {
        Ok(packet) => {
            let _ = describe_text(&packet, false);
            let _ = describe_text(&packet, true);
            let _ = to_json(&packet, false).to_string();
            let _ = to_json(&packet, true).to_string();
            if let Packet::Message(m) = &packet {
                let _ = format!("{m:?} {m}");
                let _ = (
                    m.amount(),
                    m.stan(),
                    m.acquirer_id(),
                    m.f60().map(|f| f.reason_code()),
                );
                let _ = (
                    m.original_data(),
                    m.installment_request(),
                    m.installment_response(),
                    m.balances(),
                );
                prop_assert!(as_message.is_ok());
                // Bit 1 with an all-zero secondary bitmap is accepted but not canonical: the
                // encoder leaves an empty secondary bitmap out.
                let empty_secondary = raw[HEADER_LEN + 4] & 0x80 != 0
                    && raw.get(HEADER_LEN + 12..HEADER_LEN + 20) == Some(&[0u8; 8][..]);
                let rebuilt = MessageBuilder::from_message(m).build();
                let rewritten = m.rewrite().finish();
                prop_assert!(rebuilt.is_ok() && rewritten.is_ok());
                if !empty_secondary {
                    prop_assert_eq!(rebuilt.unwrap(), raw.clone());
                    prop_assert_eq!(rewritten.unwrap(), raw);
                }
            } else {
                prop_assert!(as_message.is_err());
            }
        }
        Err(e) => {
            prop_assert!(as_message.is_err());
            let code = e.reject_code();
            prop_assert!(code.0.iter().all(u8::is_ascii_digit));
            let offset = format!("offset {}", e.offset);
            prop_assert!(e.to_string().contains(&offset));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (a) encode -> decode is the identity
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn built_messages_decode_to_what_was_built((mti, header, fields) in message()) {
        let raw = build(mti, header, &fields);
        let m = Message::decode(raw.clone()).unwrap();
        prop_assert_eq!(m.mti(), mti);
        prop_assert_eq!(*m.header(), Header { total_len: u16::try_from(raw.len()).unwrap(), ..header });
        let got: Fields = m.fields().map(|(n, v)| (n, v.to_vec())).collect();
        prop_assert_eq!(&got, &fields);
        for (n, v) in &fields {
            prop_assert!(m.has(*n));
            prop_assert_eq!(m.field_bytes(*n).unwrap(), Bytes::copy_from_slice(v));
        }
        // The secondary bitmap is there exactly when a field above 64 is.
        prop_assert_eq!(raw[HEADER_LEN + 4] & 0x80 != 0, fields.iter().any(|(n, _)| *n > 64));
        // Re-encoding: builder, empty rewrite, and the JSON of `describe --json --reveal`.
        prop_assert_eq!(MessageBuilder::from_message(&m).build().unwrap(), raw.clone());
        prop_assert_eq!(m.rewrite().finish().unwrap(), raw.clone());
        let json = to_json(&Packet::Message(m.clone()), true);
        prop_assert_eq!(Bytes::from(from_json(&json).unwrap()), raw.clone());
        prop_assert!(matches!(Packet::decode(raw), Ok(Packet::Message(_))));
    }

    /// A builder reused with `reset` (as loadgen does per link) builds what a new one
    /// builds, whatever the message before it held.
    #[test]
    fn a_reset_builder_builds_what_a_new_one_builds(
        (mti1, header1, before) in message(),
        (mti2, header2, fields) in message(),
    ) {
        let mut b = MessageBuilder::new(mti1, header1);
        for (n, v) in &before {
            b.set(*n, v);
        }
        let first = b.build().unwrap();
        prop_assert_eq!(first, build(mti1, header1, &before));
        b.reset(mti2, header2);
        for (n, v) in &fields {
            b.set(*n, v);
        }
        prop_assert_eq!(b.build().unwrap(), build(mti2, header2, &fields));
        for n in 2..=128u8 {
            prop_assert_eq!(b.get(n).is_some(), fields.iter().any(|(f, _)| *f == n));
        }
    }

    /// An answer made by rewriting its request (`keep_only` the echoed fields, then the
    /// answer's own) is byte for byte the one `MessageBuilder::response_to` builds field by
    /// field, whichever fields are echoed and whatever the request holds.
    #[test]
    fn an_answer_rewritten_from_its_request_is_the_one_built_from_it(
        (mti, header, fields) in message(),
        echo in vec(select(iso8583::CUPS.iter().map(|s| s.number).collect::<Vec<_>>()), 0..24),
        auth in proptest::option::of("[A-Z0-9]{6}"),
    ) {
        let m = Message::decode(build(mti, header, &fields)).unwrap();
        let code = ResponseCode::APPROVED;
        let mut b = MessageBuilder::response_to(&m, &echo, code);
        let mut rewrite = m
            .rewrite()
            .header(m.header().response())
            .mti(m.mti().response())
            .keep_only(&echo)
            .set(39, &code.0);
        if let Some(a) = &auth {
            b.set(38, a);
            rewrite = rewrite.set(38, a.as_bytes());
        }
        prop_assert_eq!(rewrite.finish().unwrap(), b.build().unwrap());
    }

    /// `drop_secret` leaves out exactly the fields the dictionary marks secret, and
    /// composes with `keep_only`: what is left is in the list and not secret.
    #[test]
    fn a_rewrite_without_secrets_keeps_every_other_field(
        (mti, header, fields) in message(),
        keep in vec(select(iso8583::CUPS.iter().map(|s| s.number).collect::<Vec<_>>()), 0..40),
    ) {
        let m = Message::decode(build(mti, header, &fields)).unwrap();
        let secret = |n: u8| {
            iso8583::CUPS.spec(n).is_some_and(|s| s.sensitivity == Sensitivity::Secret)
        };
        let all = Message::decode(m.rewrite().drop_secret().finish().unwrap()).unwrap();
        let some = Message::decode(m.rewrite().keep_only(&keep).drop_secret().finish().unwrap()).unwrap();
        for n in iso8583::CUPS.iter().map(|s| s.number) {
            let clear = if secret(n) { None } else { m.field(n) };
            prop_assert_eq!(all.field(n), clear, "F{}", n);
            let kept = if keep.contains(&n) { clear } else { None };
            prop_assert_eq!(some.field(n), kept, "F{} kept", n);
        }
    }

    #[test]
    fn rewrite_with_changes_decodes_to_the_changes(
        (mti, header, fields) in message(),
        stan in "[0-9]{6}",
        settlement in "[0-9]{4}",
        receiver in "[0-9]{1,11}",
        remove in select(iso8583::CUPS.iter().map(|s| s.number).collect::<Vec<_>>()),
    ) {
        let raw = build(mti, header, &fields);
        let m = Message::decode(raw).unwrap();
        let new_header = header.response();
        let out = m
            .rewrite()
            .header(new_header)
            .set(11, stan.as_bytes())
            .set(15, settlement.as_bytes())
            .set(100, receiver.as_bytes())
            .remove(remove)
            .finish()
            .unwrap();
        let r = Message::decode(out).unwrap();
        prop_assert_eq!((r.header().dest, r.header().source), (new_header.dest, new_header.source));
        for n in iso8583::CUPS.iter().map(|s| s.number) {
            let expected: Option<&[u8]> = match n {
                _ if n == remove => None,
                11 => Some(stan.as_bytes()),
                15 => Some(settlement.as_bytes()),
                100 => Some(receiver.as_bytes()),
                _ => m.field(n),
            };
            prop_assert_eq!(r.field(n), expected, "F{}", n);
        }
    }
}

// ---------------------------------------------------------------------------------------
// (b) decoding never panics
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..700)) {
        exercise(Bytes::from(bytes))?;
    }

    #[test]
    fn arbitrary_body_behind_a_valid_header_never_panics(
        header in header(),
        mti in select(MTIS.to_vec()),
        bitmap in any::<[u8; 16]>(),
        rest in vec(any::<u8>(), 0..500),
    ) {
        let mut raw = Vec::new();
        header.write_to(0, &mut raw);
        raw.extend_from_slice(&mti.0);
        raw.extend_from_slice(&bitmap);
        raw.extend_from_slice(&rest);
        fix_len(&mut raw);
        exercise(Bytes::from(raw))?;
    }

    #[test]
    fn mutated_messages_never_panic(
        (mti, header, fields) in message(),
        mutations in vec(mutation(), 1..6),
        fix in any::<bool>(),
        wrap_in_reject in any::<bool>(),
    ) {
        let mut raw = build(mti, header, &fields).to_vec();
        for m in &mutations {
            apply(&mut raw, m);
        }
        if fix {
            fix_len(&mut raw);
        }
        if wrap_in_reject {
            let code = iso8583::RejectCode(*b"10045");
            if let Some(reject) = iso8583::build_reject(&raw, code, header.dest) {
                exercise(Bytes::from(reject))?;
            }
        }
        exercise(Bytes::from(raw))?;
    }
}

// ---------------------------------------------------------------------------------------
// (c) framing is independent of how the stream is cut
// ---------------------------------------------------------------------------------------

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        1 => Just(Frame::KeepAlive),
        4 => vec(any::<u8>(), 1..400).prop_map(|v| Frame::Message(Bytes::from(v))),
    ]
}

/// Feed `stream` to a decoder in pieces cut at `cuts`; return the frames and the first error.
fn decode_in_chunks(
    stream: &[u8],
    cuts: &[Index],
    max: usize,
) -> (Vec<Frame>, Option<String>, usize) {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    let mut codec = FrameCodec::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for pair in points.windows(2) {
        buf.extend_from_slice(&stream[pair[0]..pair[1]]);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string()), buf.len()),
            }
        }
    }
    (out, None, buf.len())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_survive_any_chunking(frames in vec(frame(), 0..24), cuts in vec(any::<Index>(), 0..40)) {
        let mut codec = FrameCodec::default();
        let mut stream = BytesMut::new();
        for f in &frames {
            codec.encode(f.clone(), &mut stream).unwrap();
        }
        let (got, err, left) = decode_in_chunks(&stream, &cuts, 2048);
        prop_assert_eq!(err, None);
        prop_assert_eq!(left, 0);
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn a_bad_prefix_stops_the_stream_wherever_it_is_cut(
        frames in vec(frame(), 0..10),
        bad in prop_oneof![Just(*b"+123"), Just(*b" 123"), Just(*b"-001"), Just(*b"12a4"), any::<[u8; 4]>()],
        cuts in vec(any::<Index>(), 0..20),
    ) {
        prop_assume!(!bad.iter().all(u8::is_ascii_digit));
        let mut codec = FrameCodec::default();
        let mut stream = BytesMut::new();
        for f in &frames {
            codec.encode(f.clone(), &mut stream).unwrap();
        }
        stream.extend_from_slice(&bad);
        stream.extend_from_slice(b"0000");
        let (got, err, _) = decode_in_chunks(&stream, &cuts, 2048);
        prop_assert_eq!(got, frames);
        prop_assert!(err.unwrap().contains("not 4 ASCII digits"));
    }

    #[test]
    fn oversize_frames_stop_the_stream(max in 1usize..3000, len in 1usize..4000, cuts in vec(any::<Index>(), 0..10)) {
        let mut stream = BytesMut::new();
        stream.extend_from_slice(format!("{len:04}").as_bytes());
        stream.extend_from_slice(&vec![b'x'; len]);
        let (got, err, _) = decode_in_chunks(&stream, &cuts, max);
        if len <= max {
            prop_assert_eq!((got.len(), err), (1, None));
        } else {
            prop_assert!(got.is_empty());
            prop_assert!(err.unwrap().contains("exceeds"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// (d) masking
// ---------------------------------------------------------------------------------------

/// Card data planted in a message: PAN, track 2 built from it, track 1 and track 3, a PIN
/// block, CVN2 data in F61.
#[derive(Debug, Clone)]
struct CardData {
    pan: String,
    track2: String,
    track1: String,
    track3: String,
    pin_block: [u8; 8],
    f61: String,
}

fn card_data() -> impl Strategy<Value = CardData> {
    (
        "[1-9][0-9]{12,18}",
        "[0-9]{12,17}",
        "[A-Z ]{2,26}",
        "[0-9]{20,60}",
        any::<[u8; 8]>(),
        "[0-9A-Z]{12,40}",
    )
        .prop_map(|(pan, tail, name, t3, pin_block, f61)| {
            let track2: String = format!("{pan}={tail}").chars().take(37).collect();
            let track1: String = format!("B{pan}^{name}^2512101").chars().take(79).collect();
            let track3 = format!("99{pan}={t3}").chars().take(104).collect();
            CardData {
                pan,
                track2,
                track1,
                track3,
                pin_block,
                f61,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rendering_never_shows_card_data(
        mti in select(MTIS.to_vec()),
        header in header(),
        others in fields(0.3, &PLANTED),
        card in card_data(),
    ) {
        let mut b = MessageBuilder::new(mti, header);
        for (n, v) in &others {
            b.set(*n, v);
        }
        b.set(2, &card.pan)
            .set(35, &card.track2)
            .set(36, &card.track3)
            .set(45, &card.track1)
            .set(52, card.pin_block)
            .set(61, &card.f61);
        let raw = b.build().unwrap();
        let m = Message::decode(raw).unwrap();

        let pin_hex = hex::encode_upper(card.pin_block);
        let secrets = [
            card.pan.clone(),
            card.track2.clone(),
            card.track1.clone(),
            card.track3.clone(),
            card.f61.clone(),
            pin_hex.clone(),
            pin_hex.to_lowercase(),
        ];
        // A clear field that happens to contain a secret would show it legitimately.
        let clear_text: String = m
            .fields()
            .filter(|(n, _)| m.dictionary().spec(*n).is_some_and(|s| s.sensitivity == Sensitivity::Clear))
            .map(|(_, v)| format!("{} {}|", String::from_utf8_lossy(v), hex::encode_upper(v)))
            .collect();
        prop_assume!(secrets.iter().all(|s| !clear_text.contains(s.as_str())));

        let packet = Packet::Message(m.clone());
        let renderings = [
            format!("{m:?}"),
            format!("{m}"),
            describe_text(&packet, false),
            to_json(&packet, false).to_string(),
        ];
        let masked = iso8583::mask_pan(card.pan.as_bytes()).to_string();
        for text in &renderings {
            for s in &secrets {
                prop_assert!(!text.contains(s.as_str()), "secret shown in {}", text);
            }
            prop_assert!(text.contains(&masked), "masked PAN missing from {}", text);
        }
        // With --reveal everything is there (the opt-in works).
        let revealed = describe_text(&packet, true);
        prop_assert!(revealed.contains(&card.pan) && revealed.contains(&card.track2) && revealed.contains(&pin_hex));
    }
}
