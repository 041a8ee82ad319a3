//! Golden vectors: hand-checked frame payloads (header + body, without the 4-digit frame
//! length prefix) for the messages of SPEC.md sections 3, 4, 5 and 11, decoded and re-encoded
//! byte for byte; the decode error table of SPEC.md 3.1/3.2; and the forwarding rewrite.
//!
//! How the vectors were made and checked: each was built once with `MessageBuilder`, then
//! cut into the segments below (one string per header field, MTI, bitmap and data field) and
//! checked against SPEC.md by hand:
//! - header (section 3): `2E` (46), flag `02`, total length = 46 + body as 4 ASCII digits,
//!   destination and source IDs left-aligned and space-padded to 11, reserved `000000`,
//!   batch `00`, transaction info `"00000000"`, user info `00`, reject code `"00000"`;
//! - bitmaps: bit n is bit (8 - (n-1) % 8) of byte (n-1) / 8, most significant first; bit 1
//!   (0x80 of the first byte) announces the secondary bitmap. Worked example for the 0200
//!   purchase, fields 2 3 4 7 | 11 12 13 | 18 22 | 25 32 | 33 35 37 | 41 42 43 | 49 52 | 60:
//!   `72 38 44 81 A8 E0 90 10`;
//! - fields (section 4): fixed `n` zero-filled, fixed `an`/`ans` space-filled, LLVAR with 2
//!   ASCII length digits, LLLVAR with 3, binary F52 as 8 raw bytes;
//! - subfields: F48 `IP` + 62 and F57 `IP` + 83 (section 11), F54 20-byte records, F60.1 at
//!   positions 1-4 (4.1), F90 = MTI n4 + STAN n6 + F7 n10 + F32 n11 + F33 n11, right-aligned.
//!
//! The comments show each segment as ASCII where it is printable. The vectors are frozen:
//! a codec change that alters any byte is a wire-format change and must be argued in SPEC.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use iso8583::subfields::{
    reason, Balance, FeeMode, InstallmentRequest, InstallmentResponse, OriginalData,
};
use iso8583::{
    build_reject, mask_pan, DecodeError, EncodeError, ErrorKind, Header, InstId, Location, Message,
    MessageBuilder, Mti, Packet, ResponseCode,
};

/// 0200 purchase (F3 000000, F25 00) from acquirer 01030000 to the switch 00010000, with track 2
/// (F35) and a PIN block (F52). 289 bytes of payload: 46 header + 4 MTI + 8 bitmap + 231 fields.
const PURCHASE_0200: &str = concat!(
    "2E",                                   // H1 header length 46 (binary 0x2E)
    "02",                                   // H2 flag 0x02 production
    "30323839",                             // H3 total length "0289"
    "3030303130303030202020",               // H4 dest "00010000   "
    "3031303330303030202020",               // H5 source "01030000   "
    "000000",                               // H6 reserved
    "00",                                   // H7 batch
    "3030303030303030",                     // H8 txn info "00000000"
    "00",                                   // H9 user info
    "3030303030",                           // H10 reject code "00000"
    "30323030",                             // MTI "0200"
    "72384481A8E09010",                     // bitmap, primary
    "313636323232303230303030303030313233", // F2 LLVAR "16" + "6222020000000123"
    "303030303030",                         // F3 fixed 6 "000000"
    "303030303030303132333435",             // F4 fixed 12 "000000012345"
    "31313231303933303030",                 // F7 fixed 10 "1121093000"
    "303030313233",                         // F11 fixed 6 "000123"
    "303933303030",                         // F12 fixed 6 "093000"
    "31313231",                             // F13 fixed 4 "1121"
    "35343131",                             // F18 fixed 4 "5411"
    "303531",                               // F22 fixed 3 "051"
    "3030",                                 // F25 fixed 2 "00"
    "30383031303330303030",                 // F32 LLVAR "08" + "01030000"
    "30383031303330303030",                 // F33 LLVAR "08" + "01030000"
    // F35 LLVAR "34" + "6222020000000123=25122011234567890"
    "3334363232323032303030303030303132333D3235313232303131323334353637383930",
    "313132313039333030303031",       // F37 fixed 12 "112109300001"
    "5445524D30303031",               // F41 fixed 8 "TERM0001"
    "313233343536373839303132333435", // F42 fixed 15 "123456789012345"
    // F43 fixed 40 "CARDSWITCH TEST SHOP            SHANGHAI"
    "4341524453574954434820544553542053484F502020202020202020202020205348414E47484149",
    "313536",                               // F49 fixed 3 "156"
    "1122334455667788",                     // F52 fixed 8
    "303135303030303035303030333030303030", // F60 LLLVAR "015" + "000005000300000"
);

/// 0200 installment purchase: F25 64 and F48 usage `IP` (6 periods, project PHONE2026, fee
/// spread, rate 4.320 %, merchant subsidy 1.000 %), no track or PIN. 312 bytes.
const INSTALLMENT_0200: &str = concat!(
    "2E", // H1 header length 46 (binary 0x2E)
    "02", // H2 flag 0x02 production
    "30333132", // H3 total length "0312"
    "3030303130303030202020", // H4 dest "00010000   "
    "3031303330303030202020", // H5 source "01030000   "
    "000000", // H6 reserved
    "00", // H7 batch
    "3030303030303030", // H8 txn info "00000000"
    "00", // H9 user info
    "3030303030", // H10 reject code "00000"
    "30323030", // MTI "0200"
    "7238448188E18010", // bitmap, primary
    "313636323232303230303030303030313233", // F2 LLVAR "16" + "6222020000000123"
    "303030303030", // F3 fixed 6 "000000"
    "303030303030363030303030", // F4 fixed 12 "000000600000"
    "31313231303933303030", // F7 fixed 10 "1121093000"
    "303030313234", // F11 fixed 6 "000124"
    "303933303030", // F12 fixed 6 "093000"
    "31313231", // F13 fixed 4 "1121"
    "35343131", // F18 fixed 4 "5411"
    "303531", // F22 fixed 3 "051"
    "3634", // F25 fixed 2 "64"
    "30383031303330303030", // F32 LLVAR "08" + "01030000"
    "30383031303330303030", // F33 LLVAR "08" + "01030000"
    "313132313039333030303032", // F37 fixed 12 "112109300002"
    "5445524D30303031", // F41 fixed 8 "TERM0001"
    "313233343536373839303132333435", // F42 fixed 15 "123456789012345"
    // F43 fixed 40 "CARDSWITCH TEST SHOP            SHANGHAI"
    "4341524453574954434820544553542053484F502020202020202020202020205348414E47484149",
    // F48 LLLVAR "064" + "IP06PHONE2026                      0004320001000                "
    "3036344950303650484F4E4532303236202020202020202020202020202020202020202020203030303433323030303130303020202020202020202020202020202020",
    "313536", // F49 fixed 3 "156"
    "303135303030303035303030333030303030", // F60 LLLVAR "015" + "000005000300000"
);

/// 0210 approval of the installment purchase, switch to acquirer: F15 settlement date, F38,
/// F39 00, F54 one balance record (10 02 156 C 12345.67), F57 usage `IP` (first installment
/// 1000.72, currency 156, fee 25.92, subsidy rate 1.00 %). 321 bytes.
const RESPONSE_0210: &str = concat!(
    "2E", // H1 header length 46 (binary 0x2E)
    "02", // H2 flag 0x02 production
    "30333231", // H3 total length "0321"
    "3031303330303030202020", // H4 dest "01030000   "
    "3030303130303030202020", // H5 source "00010000   "
    "000000", // H6 reserved
    "00", // H7 batch
    "3030303030303030", // H8 txn info "00000000"
    "00", // H9 user info
    "3030303030", // H10 reject code "00000"
    "30323130", // MTI "0210"
    "723A00818EC08490", // bitmap, primary
    "313636323232303230303030303030313233", // F2 LLVAR "16" + "6222020000000123"
    "303030303030", // F3 fixed 6 "000000"
    "303030303030363030303030", // F4 fixed 12 "000000600000"
    "31313231303933303030", // F7 fixed 10 "1121093000"
    "303030313234", // F11 fixed 6 "000124"
    "303933303030", // F12 fixed 6 "093000"
    "31313231", // F13 fixed 4 "1121"
    "31313231", // F15 fixed 4 "1121"
    "3634", // F25 fixed 2 "64"
    "30383031303330303030", // F32 LLVAR "08" + "01030000"
    "30383031303330303030", // F33 LLVAR "08" + "01030000"
    "313132313039333030303032", // F37 fixed 12 "112109300002"
    "413132333435", // F38 fixed 6 "A12345"
    "3030", // F39 fixed 2 "00"
    "5445524D30303031", // F41 fixed 8 "TERM0001"
    "313233343536373839303132333435", // F42 fixed 15 "123456789012345"
    "313536", // F49 fixed 3 "156"
    // F54 LLLVAR "020" + "1002156C000001234567"
    "3032303130303231353643303030303031323334353637",
    // F57 LLLVAR "085" + "IP000000100072156000000002592000100                                                  "
    "30383549503030303030303130303037323135363030303030303030323539323030303130302020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020",
    "303135303030303035303030333030303030", // F60 LLLVAR "015" + "000005000300000"
);

/// 0420 reversal advice, switch to issuer 01020000, for the purchase above (F90 = 0200, STAN
/// 000123, F7 1121093000, F32/F33 01030000 right-aligned to 11), F60.1 reason 4361 (issuer
/// timeout at the switch), F100 receiving institution. Secondary bitmap for F90 and F100. 259 bytes.
const REVERSAL_0420: &str = concat!(
    "2E",                                   // H1 header length 46 (binary 0x2E)
    "02",                                   // H2 flag 0x02 production
    "30323539",                             // H3 total length "0259"
    "3031303230303030202020",               // H4 dest "01020000   "
    "3030303130303030202020",               // H5 source "00010000   "
    "000000",                               // H6 reserved
    "00",                                   // H7 batch
    "3030303030303030",                     // H8 txn info "00000000"
    "00",                                   // H9 user info
    "3030303030",                           // H10 reject code "00000"
    "30343230",                             // MTI "0420"
    "F222448188C080100000004010000000",     // bitmap, primary + secondary
    "313636323232303230303030303030313233", // F2 LLVAR "16" + "6222020000000123"
    "303030303030",                         // F3 fixed 6 "000000"
    "303030303030303132333435",             // F4 fixed 12 "000000012345"
    "31313231303933303235",                 // F7 fixed 10 "1121093025"
    "303030373737",                         // F11 fixed 6 "000777"
    "31313231",                             // F15 fixed 4 "1121"
    "35343131",                             // F18 fixed 4 "5411"
    "303531",                               // F22 fixed 3 "051"
    "3030",                                 // F25 fixed 2 "00"
    "30383031303330303030",                 // F32 LLVAR "08" + "01030000"
    "30383030303130303030",                 // F33 LLVAR "08" + "00010000"
    "313132313039333030303031",             // F37 fixed 12 "112109300001"
    "5445524D30303031",                     // F41 fixed 8 "TERM0001"
    "313233343536373839303132333435",       // F42 fixed 15 "123456789012345"
    "313536",                               // F49 fixed 3 "156"
    "303135343336313035303030333030303030", // F60 LLLVAR "015" + "436105000300000"
    // F90 fixed 42 "020000012311210930000000103000000001030000"
    "303230303030303132333131323130393330303030303030313033303030303030303031303330303030",
    "30383031303230303030", // F100 LLVAR "08" + "01020000"
);

/// 0820 sign-on (F70 001) from issuer 01020000. F70 needs the secondary bitmap. 95 bytes.
const SIGN_ON_0820: &str = concat!(
    "2E",                               // H1 header length 46 (binary 0x2E)
    "02",                               // H2 flag 0x02 production
    "30303935",                         // H3 total length "0095"
    "3030303130303030202020",           // H4 dest "00010000   "
    "3031303230303030202020",           // H5 source "01020000   "
    "000000",                           // H6 reserved
    "00",                               // H7 batch
    "3030303030303030",                 // H8 txn info "00000000"
    "00",                               // H9 user info
    "3030303030",                       // H10 reject code "00000"
    "30383230",                         // MTI "0820"
    "82200000800000000400000000000000", // bitmap, primary + secondary
    "31313231303830303030",             // F7 fixed 10 "1121080000"
    "303030303031",                     // F11 fixed 6 "000001"
    "30383031303230303030",             // F33 LLVAR "08" + "01020000"
    "303031",                           // F70 fixed 3 "001"
);

/// 0830 answer to the sign-on: header swapped, F7/F11/F33/F70 echoed, F39 00. 97 bytes.
const SIGN_ON_0830: &str = concat!(
    "2E",                               // H1 header length 46 (binary 0x2E)
    "02",                               // H2 flag 0x02 production
    "30303937",                         // H3 total length "0097"
    "3031303230303030202020",           // H4 dest "01020000   "
    "3030303130303030202020",           // H5 source "00010000   "
    "000000",                           // H6 reserved
    "00",                               // H7 batch
    "3030303030303030",                 // H8 txn info "00000000"
    "00",                               // H9 user info
    "3030303030",                       // H10 reject code "00000"
    "30383330",                         // MTI "0830"
    "82200000820000000400000000000000", // bitmap, primary + secondary
    "31313231303830303030",             // F7 fixed 10 "1121080000"
    "303030303031",                     // F11 fixed 6 "000001"
    "30383031303230303030",             // F33 LLVAR "08" + "01020000"
    "3030",                             // F39 fixed 2 "00"
    "303031",                           // F70 fixed 3 "001"
);

/// Reject (SPEC.md 3.2) of a bad 0200: the purchase above with F4 corrupted (`X` at payload
/// offset 87), answered with a new header carrying reject code 10045 (body error, field 004,
/// illegal content), swapped IDs and echoed fields 6 to 9, followed by the original header and
/// body unchanged. 46 + 289 = 335 bytes.
const REJECT_10045: &str = concat!(
    "2E",                     // H1 header length 46 (binary 0x2E)
    "02",                     // H2 flag 0x02 production
    "30333335",               // H3 total length "0335"
    "3031303330303030202020", // H4 dest "01030000   "
    "3030303130303030202020", // H5 source "00010000   "
    "000000",                 // H6 reserved
    "00",                     // H7 batch
    "3030303030303030",       // H8 txn info "00000000"
    "00",                     // H9 user info
    "3130303435",             // H10 reject code "10045"
    // ---- the original frame payload, unchanged:
    "2E",                                   // H1 header length 46 (binary 0x2E)
    "02",                                   // H2 flag 0x02 production
    "30323839",                             // H3 total length "0289"
    "3030303130303030202020",               // H4 dest "00010000   "
    "3031303330303030202020",               // H5 source "01030000   "
    "000000",                               // H6 reserved
    "00",                                   // H7 batch
    "3030303030303030",                     // H8 txn info "00000000"
    "00",                                   // H9 user info
    "3030303030",                           // H10 reject code "00000"
    "30323030",                             // MTI "0200"
    "72384481A8E09010",                     // bitmap, primary
    "313636323232303230303030303030313233", // F2 LLVAR "16" + "6222020000000123"
    "303030303030",                         // F3 fixed 6 "000000"
    "303030303058303132333435",             // F4 fixed 12 "00000X012345"
    "31313231303933303030",                 // F7 fixed 10 "1121093000"
    "303030313233",                         // F11 fixed 6 "000123"
    "303933303030",                         // F12 fixed 6 "093000"
    "31313231",                             // F13 fixed 4 "1121"
    "35343131",                             // F18 fixed 4 "5411"
    "303531",                               // F22 fixed 3 "051"
    "3030",                                 // F25 fixed 2 "00"
    "30383031303330303030",                 // F32 LLVAR "08" + "01030000"
    "30383031303330303030",                 // F33 LLVAR "08" + "01030000"
    // F35 LLVAR "34" + "6222020000000123=25122011234567890"
    "3334363232323032303030303030303132333D3235313232303131323334353637383930",
    "313132313039333030303031",       // F37 fixed 12 "112109300001"
    "5445524D30303031",               // F41 fixed 8 "TERM0001"
    "313233343536373839303132333435", // F42 fixed 15 "123456789012345"
    // F43 fixed 40 "CARDSWITCH TEST SHOP            SHANGHAI"
    "4341524453574954434820544553542053484F502020202020202020202020205348414E47484149",
    "313536",                               // F49 fixed 3 "156"
    "1122334455667788",                     // F52 fixed 8
    "303135303030303035303030333030303030", // F60 LLLVAR "015" + "000005000300000"
);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn raw(hex_str: &str) -> Bytes {
    Bytes::from(hex::decode(hex_str).expect("golden vectors are valid hex"))
}

fn decode(hex_str: &str) -> Message {
    Message::decode(raw(hex_str)).expect("golden vector decodes")
}

fn id(s: &str) -> InstId {
    InstId::new(s).unwrap()
}

/// The vector re-encodes byte for byte through the builder and through an empty rewrite.
fn assert_reencodes(m: &Message, expected: &Bytes) {
    let built = MessageBuilder::from_message(m).build().unwrap();
    assert_eq!(
        hex::encode_upper(&built),
        hex::encode_upper(expected),
        "MessageBuilder::from_message"
    );
    let rewritten = m.rewrite().finish().unwrap();
    assert_eq!(
        hex::encode_upper(&rewritten),
        hex::encode_upper(expected),
        "Message::rewrite"
    );
}

/// Header total length (H3) set to the payload's real length, so that a body test is not
/// caught by the header check first.
fn fix_len(mut payload: Vec<u8>) -> Vec<u8> {
    let len = format!("{:04}", payload.len());
    payload[2..6].copy_from_slice(len.as_bytes());
    payload
}

// ---------------------------------------------------------------------------------------
// Golden vectors: decode, accessors, re-encode
// ---------------------------------------------------------------------------------------

#[test]
fn golden_purchase_0200() {
    let bytes = raw(PURCHASE_0200);
    assert_eq!(bytes.len(), 289);
    let m = Message::decode(bytes.clone()).unwrap();
    let h = m.header();
    assert_eq!((h.flag, h.total_len, h.is_test()), (0x02, 289, false));
    assert_eq!(
        (h.dest.as_str(), h.source.as_str()),
        ("00010000", "01030000")
    );
    assert_eq!(
        (h.reserved, h.batch, &h.txn_info, h.user_info),
        ([0; 3], 0, b"00000000", 0)
    );
    assert_eq!(h.reject.as_str(), "00000");
    assert_eq!(m.mti(), Mti::FINANCIAL_REQUEST);
    assert_eq!(mask_pan(m.pan().unwrap()).as_str(), "622202******0123");
    assert_eq!(m.processing_code(), Some(*b"000000"));
    assert_eq!(m.amount(), Some(12_345));
    assert_eq!(m.transmission_time(), Some(*b"1121093000"));
    assert_eq!(m.stan(), Some(123));
    assert_eq!(m.pos_condition(), Some(0));
    assert_eq!(m.acquirer_id(), Some(id("01030000")));
    assert_eq!(m.forwarding_id(), Some(id("01030000")));
    assert_eq!(m.field_str(18), Some("5411"));
    assert_eq!(m.field_str(41), Some("TERM0001"));
    assert_eq!(m.field_str(42), Some("123456789012345"));
    assert_eq!(
        m.field_str(43),
        Some("CARDSWITCH TEST SHOP            SHANGHAI")
    );
    assert_eq!(
        m.field(52),
        Some(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88][..])
    );
    assert_eq!(m.field_str(35), Some("6222020000000123=25122011234567890"));
    let f60 = m.f60().unwrap();
    assert_eq!(f60.reason_code(), Some(&b"0000"[..]));
    assert_eq!(f60.read_capability(), Some(b'5'));
    assert_eq!(f60.terminal_type(), Some(&b"03"[..]));
    assert_eq!(
        m.field_numbers().collect::<Vec<_>>(),
        [2, 3, 4, 7, 11, 12, 13, 18, 22, 25, 32, 33, 35, 37, 41, 42, 43, 49, 52, 60]
    );
    assert!(m.installment_request().is_none() && m.original_data().is_none());
    assert_reencodes(&m, &bytes);
}

#[test]
fn golden_installment_0200() {
    let bytes = raw(INSTALLMENT_0200);
    let m = Message::decode(bytes.clone()).unwrap();
    assert_eq!(m.header().total_len, 312);
    assert_eq!(m.mti(), Mti::FINANCIAL_REQUEST);
    assert_eq!(m.pos_condition(), Some(64));
    assert_eq!(m.amount(), Some(600_000));
    assert_eq!(m.stan(), Some(124));
    assert!(!m.has(35) && !m.has(52));
    let ip = m.installment_request().unwrap().unwrap();
    assert_eq!(
        ip,
        InstallmentRequest {
            periods: 6,
            project_code: InstallmentRequest::project_code_from("PHONE2026"),
            fee_mode: FeeMode::Spread,
            fee_rate: 4320,
            subsidy_rate: 1000,
        }
    );
    assert_eq!(ip.project_code_str(), "PHONE2026");
    assert_eq!(ip.encode(), m.field(48).unwrap());
    assert_reencodes(&m, &bytes);
}

#[test]
fn golden_response_0210() {
    let bytes = raw(RESPONSE_0210);
    let m = Message::decode(bytes.clone()).unwrap();
    assert_eq!(m.mti(), Mti::FINANCIAL_RESPONSE);
    assert!(m.mti().is_response());
    assert_eq!(
        (m.header().dest.as_str(), m.header().source.as_str()),
        ("01030000", "00010000")
    );
    assert_eq!(m.response_code(), Some(ResponseCode::APPROVED));
    assert_eq!(m.field_str(38), Some("A12345"));
    assert_eq!(m.field_str(15), Some("1121"));
    assert_eq!(mask_pan(m.pan().unwrap()).as_str(), "622202******0123");
    let ip = m.installment_response().unwrap().unwrap();
    assert_eq!(
        ip,
        InstallmentResponse {
            first_amount: 100_072,
            currency: 156,
            cardholder_fee: 2_592,
            subsidy_rate: 100,
        }
    );
    let balances = m.balances().unwrap().unwrap();
    assert_eq!(
        balances,
        [Balance {
            account_type: *b"10",
            amount_type: *b"02",
            currency: *b"156",
            amount: 1_234_567,
        }]
    );
    assert_reencodes(&m, &bytes);
}

#[test]
fn golden_reversal_0420() {
    let bytes = raw(REVERSAL_0420);
    let m = Message::decode(bytes.clone()).unwrap();
    assert_eq!(m.mti(), Mti::REVERSAL_ADVICE);
    assert_eq!(
        (m.header().dest.as_str(), m.header().source.as_str()),
        ("01020000", "00010000")
    );
    // Secondary bitmap present: bit 1 set, F90 and F100 in the second 8 bytes.
    assert_eq!(
        &bytes[50..66],
        &hex::decode("F222448188C080100000004010000000").unwrap()[..]
    );
    assert_eq!(m.stan(), Some(777));
    assert_eq!(m.amount(), Some(12_345));
    assert_eq!(m.forwarding_id(), Some(id("00010000")));
    assert_eq!(
        m.f60().unwrap().reason_code(),
        Some(&reason::ISSUER_TIMEOUT[..])
    );
    assert_eq!(m.f60().unwrap().terminal_type(), Some(&b"03"[..]));
    let od = m.original_data().unwrap().unwrap();
    assert_eq!(od.mti, Mti::FINANCIAL_REQUEST);
    assert_eq!(od.stan, 123);
    assert_eq!(&od.transmission, b"1121093000");
    assert_eq!((od.acquirer, od.forwarding), (1_030_000, 1_030_000));
    assert_eq!(
        od,
        OriginalData::new(
            Mti::FINANCIAL_REQUEST,
            123,
            *b"1121093000",
            &id("01030000"),
            &id("01030000")
        )
    );
    assert_eq!(m.field_str(100), Some("01020000"));
    assert_reencodes(&m, &bytes);
}

#[test]
fn golden_sign_on_0820_and_0830() {
    let req_bytes = raw(SIGN_ON_0820);
    let req = Message::decode(req_bytes.clone()).unwrap();
    assert_eq!(req.mti(), Mti::NETWORK_REQUEST);
    assert_eq!(req.network_code(), Some(1));
    assert_eq!(req.stan(), Some(1));
    assert_eq!(req.pan(), None);
    assert_eq!(req.amount(), None);
    assert_eq!(req.forwarding_id(), Some(id("01020000")));
    assert_reencodes(&req, &req_bytes);

    let resp_bytes = raw(SIGN_ON_0830);
    let resp = Message::decode(resp_bytes.clone()).unwrap();
    assert_eq!(resp.mti(), Mti::NETWORK_RESPONSE);
    assert_eq!(resp.response_code(), Some(ResponseCode::APPROVED));
    assert_eq!(resp.network_code(), Some(1));
    assert_eq!(
        *resp.header(),
        Header {
            total_len: 97,
            ..req.header().response()
        }
    );
    assert_reencodes(&resp, &resp_bytes);

    // The 0830 is exactly what a responder builds from the 0820.
    let answer = MessageBuilder::response_to(&req, &[7, 11, 33, 70], ResponseCode::APPROVED)
        .build()
        .unwrap();
    assert_eq!(answer, resp_bytes);
}

#[test]
fn golden_reject_10045() {
    let bytes = raw(REJECT_10045);
    assert_eq!(bytes.len(), 46 + 289);
    let Packet::Reject { header, original } = Packet::decode(bytes.clone()).unwrap() else {
        panic!("a reject header decodes as Packet::Reject");
    };
    assert_eq!(header.reject.as_str(), "10045");
    assert_eq!(
        (header.dest.as_str(), header.source.as_str()),
        ("01030000", "00010000")
    );
    assert_eq!(header.total_len, 335);
    // The original is the purchase with F4 corrupted ('X' at offset 87): it is why.
    let mut expected_original = hex::decode(PURCHASE_0200).unwrap();
    expected_original[87] = b'X';
    assert_eq!(&original[..], &expected_original[..]);
    let err = Message::decode(original.clone()).unwrap_err();
    assert_eq!(
        err,
        DecodeError {
            kind: ErrorKind::IllegalContent,
            location: Location::Field(4),
            offset: 87
        }
    );
    assert_eq!(err.reject_code().as_str(), "10045");
    // Re-encoded byte for byte by the reject builder.
    let rebuilt = build_reject(&original, err.reject_code(), id("00010000")).unwrap();
    assert_eq!(hex::encode_upper(&rebuilt), hex::encode_upper(&bytes));
    // A reject is not a message.
    assert_eq!(
        Message::decode(bytes).unwrap_err().reject_code().as_str(),
        "00105"
    );
}

#[test]
fn golden_vectors_are_what_the_builder_makes() {
    // The construction the vectors were frozen from, kept so a reader can see the values.
    let (acq, sw, iss) = (id("01030000"), id("00010000"), id("01020000"));
    let mut b = MessageBuilder::new(Mti::FINANCIAL_REQUEST, Header::new(sw, acq));
    b.set(2, "6222020000000123")
        .set(3, "000000")
        .set_numeric(4, 12_345)
        .set(7, "1121093000")
        .set_numeric(11, 123)
        .set(12, "093000")
        .set(13, "1121")
        .set(18, "5411")
        .set(22, "051")
        .set(25, "00")
        .set(32, "01030000")
        .set(33, "01030000")
        .set(35, "6222020000000123=25122011234567890")
        .set(37, "112109300001")
        .set_text(41, "TERM0001")
        .set(42, "123456789012345")
        .set_text(43, "CARDSWITCH TEST SHOP            SHANGHAI")
        .set(49, "156")
        .set(52, [0x11u8, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
        .set(60, "000005000300000");
    assert_eq!(b.build().unwrap(), raw(PURCHASE_0200));

    let ip = InstallmentRequest {
        periods: 6,
        project_code: InstallmentRequest::project_code_from("PHONE2026"),
        fee_mode: FeeMode::Spread,
        fee_rate: 4320,
        subsidy_rate: 1000,
    };
    b.set(25, "64")
        .set(48, ip.encode())
        .set_numeric(11, 124)
        .set(37, "112109300002")
        .set_numeric(4, 600_000)
        .remove(35)
        .remove(52);
    assert_eq!(b.build().unwrap(), raw(INSTALLMENT_0200));

    let mut r = MessageBuilder::response_to(
        &decode(INSTALLMENT_0200),
        &[2, 3, 4, 7, 11, 12, 13, 25, 32, 33, 37, 41, 42, 49, 60],
        ResponseCode::APPROVED,
    );
    r.set(15, "1121").set(38, "A12345");
    r.set(
        54,
        Balance::encode_all(&[Balance {
            account_type: *b"10",
            amount_type: *b"02",
            currency: *b"156",
            amount: 1_234_567,
        }]),
    );
    r.set(
        57,
        InstallmentResponse {
            first_amount: 100_072,
            currency: 156,
            cardholder_fee: 2_592,
            subsidy_rate: 100,
        }
        .encode(),
    );
    assert_eq!(r.build().unwrap(), raw(RESPONSE_0210));

    let mut rv = MessageBuilder::new(Mti::REVERSAL_ADVICE, Header::new(iss, sw));
    rv.set(2, "6222020000000123")
        .set(3, "000000")
        .set(4, "000000012345")
        .set(7, "1121093025")
        .set(11, "000777")
        .set(15, "1121")
        .set(18, "5411")
        .set(22, "051")
        .set(25, "00")
        .set(32, "01030000")
        .set(33, "00010000")
        .set(37, "112109300001")
        .set(41, "TERM0001")
        .set(42, "123456789012345")
        .set(49, "156")
        .set(
            60,
            iso8583::subfields::F60(b"000005000300000").with_reason(reason::ISSUER_TIMEOUT),
        )
        .set(
            90,
            OriginalData::new(Mti::FINANCIAL_REQUEST, 123, *b"1121093000", &acq, &acq).encode(),
        )
        .set(100, "01020000");
    assert_eq!(rv.build().unwrap(), raw(REVERSAL_0420));

    let mut so = MessageBuilder::new(Mti::NETWORK_REQUEST, Header::new(sw, iss));
    so.set(7, "1121080000")
        .set(11, "000001")
        .set(33, "01020000")
        .set(70, "001");
    assert_eq!(so.build().unwrap(), raw(SIGN_ON_0820));
}

// ---------------------------------------------------------------------------------------
// Decode errors: every error names the field and the offset, and maps to its reject code.
// Offsets are from the first header byte. Layout of the purchase vector used below:
// header 0-45, MTI 46-49, bitmap 50-57, F2 58 (prefix) 60-75, F3 76-81, F4 82-93,
// F7 94-103, F11 104-109, F12 110-115, F13 116-119, F18 120-123, F22 124-126, F25 127-128,
// F32 129 (prefix) 131-138, F33 139 (prefix) 141-148, F35 149 (prefix) 151-184,
// F37 185-196, F41 197-204, F42 205-219, F43 220-259, F49 260-262, F52 263-270,
// F60 271 (prefix) 274-288.
// ---------------------------------------------------------------------------------------

/// A change to a golden vector and the error it must produce.
struct Case {
    what: &'static str,
    base: &'static str,
    mutate: fn(&mut Vec<u8>),
    /// Fix the header length after mutating (for body-length cases).
    fix: bool,
    kind: ErrorKind,
    location: Location,
    offset: usize,
    code: &'static str,
}

fn put(v: &mut [u8], at: usize, bytes: &[u8]) {
    v[at..at + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn decode_error_table() {
    use ErrorKind::*;
    use Location::{Bitmap, Field, Header as H, Mti as M};
    let p = PURCHASE_0200;
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // Wrong character class.
        Case { what: "letter in n12 F4", base: p, mutate: |v| v[87] = b'X', fix: false, kind: IllegalContent, location: Field(4), offset: 87, code: "10045" },
        Case { what: "space in n6 F3", base: p, mutate: |v| v[76] = b' ', fix: false, kind: IllegalContent, location: Field(3), offset: 76, code: "10035" },
        Case { what: "letter in the PAN", base: p, mutate: |v| v[63] = b'A', fix: false, kind: IllegalContent, location: Field(2), offset: 63, code: "10025" },
        Case { what: "letter in z F35", base: p, mutate: |v| v[160] = b'A', fix: false, kind: IllegalContent, location: Field(35), offset: 160, code: "10355" },
        Case { what: "dash in an F37", base: p, mutate: |v| v[190] = b'-', fix: false, kind: IllegalContent, location: Field(37), offset: 190, code: "10375" },
        Case { what: "control byte in ans F43", base: p, mutate: |v| v[225] = 0x07, fix: false, kind: IllegalContent, location: Field(43), offset: 225, code: "10435" },
        Case { what: "letter in n42 F90", base: REVERSAL_0420, mutate: |v| v[230] = b'Z', fix: false, kind: IllegalContent, location: Field(90), offset: 230, code: "10905" },
        // Length prefix that is not digits.
        Case { what: "LLVAR prefix of F2 not digits", base: p, mutate: |v| v[58] = b'A', fix: false, kind: BadLengthPrefix, location: Field(2), offset: 58, code: "10023" },
        Case { what: "LLVAR prefix with a space", base: p, mutate: |v| v[129] = b' ', fix: false, kind: BadLengthPrefix, location: Field(32), offset: 129, code: "10323" },
        Case { what: "LLLVAR prefix of F60 signed", base: p, mutate: |v| v[271] = b'+', fix: false, kind: BadLengthPrefix, location: Field(60), offset: 271, code: "10603" },
        // Variable field over its maximum.
        Case { what: "PAN of 20 digits", base: p, mutate: |v| put(v, 58, b"20"), fix: false, kind: TooLong, location: Field(2), offset: 58, code: "10024" },
        Case { what: "F32 of 12 digits", base: p, mutate: |v| put(v, 129, b"12"), fix: false, kind: TooLong, location: Field(32), offset: 129, code: "10324" },
        Case { what: "F60 of 101 bytes", base: p, mutate: |v| put(v, 271, b"101"), fix: false, kind: TooLong, location: Field(60), offset: 271, code: "10604" },
        // Truncated data (header length fixed so the body check is reached).
        Case { what: "cut inside F60", base: p, mutate: |v| v.truncate(280), fix: true, kind: BadLength, location: Field(60), offset: 271, code: "10601" },
        Case { what: "cut inside the F2 prefix", base: p, mutate: |v| v.truncate(59), fix: true, kind: BadLength, location: Field(2), offset: 58, code: "10021" },
        Case { what: "cut inside fixed F4", base: p, mutate: |v| v.truncate(90), fix: true, kind: BadLength, location: Field(4), offset: 82, code: "10041" },
        Case { what: "F60 prefix claims one byte more", base: p, mutate: |v| put(v, 271, b"016"), fix: false, kind: BadLength, location: Field(60), offset: 271, code: "10601" },
        Case { what: "cut inside the bitmap", base: p, mutate: |v| v.truncate(54), fix: true, kind: Unparseable, location: Bitmap, offset: 50, code: "09990" },
        Case { what: "cut inside the secondary bitmap", base: SIGN_ON_0820, mutate: |v| v.truncate(60), fix: true, kind: Unparseable, location: Bitmap, offset: 58, code: "09990" },
        // Trailing bytes after the last field.
        Case { what: "two bytes after F60", base: p, mutate: |v| v.extend_from_slice(b"00"), fix: true, kind: BadLength, location: Field(60), offset: 289, code: "10601" },
        Case { what: "bytes after an empty bitmap", base: p, mutate: |v| { put(v, 50, &[0; 8]); }, fix: false, kind: BadLength, location: Bitmap, offset: 58, code: "09990" },
        // Bits for fields the dictionary does not define.
        Case { what: "bit 8 (undefined) set", base: p, mutate: |v| v[50] |= 0x01, fix: false, kind: FieldNotAllowed, location: Field(8), offset: 104, code: "10082" },
        Case { what: "bit 64 (undefined) set", base: p, mutate: |v| v[57] |= 0x01, fix: false, kind: FieldNotAllowed, location: Field(64), offset: 289, code: "10642" },
        Case { what: "bit 65 set", base: SIGN_ON_0820, mutate: |v| v[58] |= 0x80, fix: false, kind: FieldNotAllowed, location: Field(65), offset: 92, code: "10652" },
        Case { what: "bit 127 (undefined) set", base: REVERSAL_0420, mutate: |v| v[65] |= 0x02, fix: false, kind: FieldNotAllowed, location: Field(127), offset: 259, code: "11272" },
        // Unknown or unparseable MTI.
        Case { what: "MTI 0500", base: p, mutate: |v| put(v, 46, b"0500"), fix: false, kind: Unparseable, location: M, offset: 46, code: "09990" },
        Case { what: "MTI 0201", base: p, mutate: |v| put(v, 46, b"0201"), fix: false, kind: Unparseable, location: M, offset: 46, code: "09990" },
        Case { what: "MTI not digits", base: p, mutate: |v| put(v, 46, b"02A0"), fix: false, kind: Unparseable, location: M, offset: 46, code: "09990" },
        Case { what: "body ends before the MTI", base: p, mutate: |v| v.truncate(48), fix: true, kind: Unparseable, location: M, offset: 46, code: "09990" },
        // Header errors (SPEC.md 3: D = 0, FFF = header field number).
        Case { what: "header length byte 45", base: p, mutate: |v| v[0] = 45, fix: false, kind: IllegalContent, location: H(1), offset: 0, code: "00015" },
        Case { what: "flag 0x05", base: p, mutate: |v| v[1] = 0x05, fix: false, kind: IllegalContent, location: H(2), offset: 1, code: "00025" },
        Case { what: "total length not digits", base: p, mutate: |v| v[3] = b'x', fix: false, kind: IllegalContent, location: H(3), offset: 2, code: "00035" },
        Case { what: "total length too small", base: p, mutate: |v| put(v, 2, b"0288"), fix: false, kind: BadLength, location: H(3), offset: 2, code: "00031" },
        Case { what: "total length too large", base: p, mutate: |v| put(v, 2, b"0290"), fix: false, kind: BadLength, location: H(3), offset: 2, code: "00031" },
        Case { what: "letter in the destination ID", base: p, mutate: |v| v[8] = b'A', fix: false, kind: IllegalContent, location: H(4), offset: 6, code: "00045" },
        Case { what: "digit after the destination padding", base: p, mutate: |v| v[16] = b'1', fix: false, kind: IllegalContent, location: H(4), offset: 6, code: "00045" },
        Case { what: "blank source ID", base: p, mutate: |v| put(v, 17, b"           "), fix: false, kind: IllegalContent, location: H(5), offset: 17, code: "00055" },
        Case { what: "reject code not digits", base: p, mutate: |v| v[43] = b'a', fix: false, kind: IllegalContent, location: H(10), offset: 41, code: "00105" },
        Case { what: "reject code set on a message", base: p, mutate: |v| put(v, 41, b"10045"), fix: false, kind: IllegalContent, location: H(10), offset: 41, code: "00105" },
        Case { what: "shorter than a header", base: p, mutate: |v| v.truncate(20), fix: false, kind: BadLength, location: H(1), offset: 20, code: "00011" },
        Case { what: "empty payload", base: p, mutate: Vec::clear, fix: false, kind: BadLength, location: H(1), offset: 0, code: "00011" },
    ];
    for c in &cases {
        let mut v = hex::decode(c.base).unwrap();
        (c.mutate)(&mut v);
        if c.fix {
            v = fix_len(v);
        }
        let err = Message::decode(Bytes::from(v)).expect_err(c.what);
        assert_eq!(
            (err.kind, err.location, err.offset),
            (c.kind, c.location, c.offset),
            "{}",
            c.what
        );
        assert_eq!(err.reject_code().as_str(), c.code, "{}", c.what);
        // The message names the place, never a value.
        let text = err.to_string();
        assert!(
            text.contains(&format!("offset {}", c.offset)),
            "{}: {text}",
            c.what
        );
    }
}

#[test]
fn decode_errors_never_show_values() {
    let mut v = hex::decode(PURCHASE_0200).unwrap();
    v[75] = b'X'; // last PAN digit
    let err = Message::decode(Bytes::from(v)).unwrap_err();
    assert_eq!(err.to_string(), "illegal content at field 2, offset 75");
    assert!(!format!("{err:?}").contains("622202"));
}

#[test]
fn packet_decode_accepts_messages_and_rejects() {
    assert!(matches!(
        Packet::decode(raw(PURCHASE_0200)),
        Ok(Packet::Message(_))
    ));
    assert!(matches!(
        Packet::decode(raw(REJECT_10045)),
        Ok(Packet::Reject { .. })
    ));
    // A reject whose own header is broken is a header error like any other.
    let mut v = hex::decode(REJECT_10045).unwrap();
    v[1] = 0x00;
    assert_eq!(
        Packet::decode(Bytes::from(v))
            .unwrap_err()
            .reject_code()
            .as_str(),
        "00025"
    );
}

// ---------------------------------------------------------------------------------------
// Rewrite (forwarding): new header, changed and added fields, removed fields.
// ---------------------------------------------------------------------------------------

#[test]
fn rewrite_forwards_with_new_header_stan_settlement_date_and_receiver() {
    let original = decode(PURCHASE_0200);
    let mut header = Header::new(id("01020000"), id("00010000"));
    header.user_info = 9;
    let out = original
        .rewrite()
        .header(header)
        .set(11, b"000777")
        .set(15, b"1121")
        .set(100, b"01020000")
        .finish()
        .unwrap();
    // 289 + F15 (4) + secondary bitmap (8) + F100 (2 + 8).
    assert_eq!(out.len(), 289 + 4 + 8 + 10);
    // The original had no secondary bitmap: bit 1 is now set (0x72 -> 0xF2), F15 joins the
    // second byte (0x38 -> 0x3A) and the secondary bitmap carries only F100 (byte 13, 0x10).
    assert_eq!(
        hex::encode_upper(&out[50..66]),
        "F23A4481A8E090100000000010000000"
    );
    let m = Message::decode(out.clone()).unwrap();
    assert_eq!(m.header().dest.as_str(), "01020000");
    assert_eq!(m.header().source.as_str(), "00010000");
    assert_eq!(m.header().user_info, 9);
    assert_eq!(usize::from(m.header().total_len), out.len());
    assert_eq!(m.mti(), Mti::FINANCIAL_REQUEST);
    assert_eq!(m.stan(), Some(777));
    assert_eq!(m.field_str(15), Some("1121"));
    assert_eq!(m.field_str(100), Some("01020000"));
    let mut expected: Vec<u8> = original.field_numbers().collect();
    expected.extend([15, 100]);
    expected.sort_unstable();
    assert_eq!(m.field_numbers().collect::<Vec<_>>(), expected);
    for n in original.field_numbers().filter(|&n| n != 11) {
        assert_eq!(m.field(n), original.field(n), "F{n} is copied unchanged");
    }
    // The same result through the builder.
    let mut b = MessageBuilder::from_message(&original);
    b.set_header(header)
        .set(11, "000777")
        .set(15, "1121")
        .set(100, "01020000");
    assert_eq!(b.build().unwrap(), out);
}

#[test]
fn a_copied_field_set_again_is_checked_again() {
    // Copied fields are not checked a second time at build (the decoder did): a value
    // set over one must be, and one set on a field the message did not have too.
    let original = decode(PURCHASE_0200);
    let mut b = MessageBuilder::from_message(&original);
    b.set(4, "00000000012A");
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("F4") || err.contains("field 4"), "{err}");
    let mut b = MessageBuilder::response_to(&original, &[2, 3, 4, 11], ResponseCode::APPROVED);
    b.set(11, "12345");
    assert!(b.build().is_err(), "a 5-digit F11 is refused");
    b.set(11, "123456");
    assert!(b.build().is_ok());
}

#[test]
fn rewrite_removes_fields() {
    let original = decode(PURCHASE_0200);
    let out = original.rewrite().remove(35).remove(52).finish().unwrap();
    assert_eq!(out.len(), 289 - (2 + 34) - 8);
    assert_eq!(&out[2..6], b"0245");
    // F35 gone from byte 5 (0xA8 -> 0x88), F52 from byte 7 (0x90 -> 0x80).
    assert_eq!(hex::encode_upper(&out[50..58]), "7238448188E08010");
    let m = Message::decode(out).unwrap();
    assert!(!m.has(35) && !m.has(52));
    assert_eq!(m.field_numbers().count(), 18);
    assert_eq!(m.amount(), Some(12_345));
}

#[test]
fn rewrite_drops_the_secondary_bitmap_when_it_empties() {
    let original = decode(REVERSAL_0420);
    let out = original.rewrite().remove(90).remove(100).finish().unwrap();
    assert_eq!(out.len(), 259 - 8 - 42 - 10);
    assert_eq!(hex::encode_upper(&out[50..58]), "7222448188C08010");
    let m = Message::decode(out).unwrap();
    assert!(!m.has(90) && !m.has(100) && !m.has(1));
    assert_eq!(m.f60().unwrap().reason_code(), Some(&b"4361"[..]));
}

#[test]
fn rewrite_changes_the_mti_and_replaces_variable_fields() {
    let request = decode(INSTALLMENT_0200);
    let out = request
        .rewrite()
        .header(request.header().response())
        .mti(Mti::FINANCIAL_RESPONSE)
        .set(39, b"51")
        .set(2, b"6222020000000000123")
        .remove(48)
        .finish()
        .unwrap();
    let m = Message::decode(out).unwrap();
    assert_eq!(m.mti(), Mti::FINANCIAL_RESPONSE);
    assert_eq!(m.response_code(), Some(ResponseCode::INSUFFICIENT_FUNDS));
    assert_eq!(m.pan(), Some(&b"6222020000000000123"[..]));
    assert_eq!(m.header().dest.as_str(), "01030000");
    assert!(!m.has(48));
    assert_eq!(m.field(60), request.field(60));
}

#[test]
fn rewrite_validates_what_it_sets() {
    let m = decode(PURCHASE_0200);
    assert!(matches!(
        m.rewrite().set(11, b"12345").finish(),
        Err(EncodeError::BadLength { field: 11, .. })
    ));
    assert!(matches!(
        m.rewrite().set(4, b"00000000001X").finish(),
        Err(EncodeError::IllegalContent {
            field: 4,
            offset: 11
        })
    ));
    assert!(matches!(
        m.rewrite().set(2, b"12345678901234567890").finish(),
        Err(EncodeError::BadLength { field: 2, .. })
    ));
    assert_eq!(
        m.rewrite().set(8, b"1").finish(),
        Err(EncodeError::UndefinedField(8))
    );
    assert_eq!(
        m.rewrite().set(65, b"1").finish(),
        Err(EncodeError::UndefinedField(65))
    );
    // Setting a field twice keeps the last value.
    let out = m
        .rewrite()
        .set(11, b"000001")
        .set(11, b"000002")
        .finish()
        .unwrap();
    assert_eq!(Message::decode(out).unwrap().stan(), Some(2));
    // More changes than a rewrite holds is an error, not a silent drop.
    let mut rw = m.rewrite();
    for n in [15u8, 16, 19, 23, 26, 38, 39, 44, 100] {
        rw = rw.remove(n);
    }
    assert!(matches!(rw.finish(), Err(EncodeError::Header(_))));
}
