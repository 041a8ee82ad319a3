//! Decode arbitrary frame payloads. Whatever the input: no panic. Whatever decodes: it
//! renders (masked and revealed), rewrites, rebuilds, and the rewrite decodes to the same
//! fields.
//!
//! Each input is tried twice: as is, and with the header's total length (bytes 3 to 6)
//! set to the input's length, so that mutations reach the body instead of stopping at the
//! header's length check.
#![no_main]

use bytes::Bytes;
use iso8583::render::{describe_text, to_json};
use iso8583::{Message, MessageBuilder, Packet};
use libfuzzer_sys::fuzz_target;

fn check(raw: Bytes) {
    let as_message = Message::decode(raw.clone());
    let Ok(packet) = Packet::decode(raw) else {
        assert!(
            as_message.is_err(),
            "Message::decode accepted what Packet::decode refused"
        );
        return;
    };
    let _ = to_json(&packet, false).to_string();
    let _ = to_json(&packet, true).to_string();
    let _ = describe_text(&packet, false);
    let _ = describe_text(&packet, true);
    if let Packet::Message(m) = &packet {
        assert!(
            as_message.is_ok(),
            "Packet::decode accepted what Message::decode refused"
        );
        let _ = format!("{m:?}\n{m}");
        let _ = (
            m.amount(),
            m.stan(),
            m.acquirer_id(),
            m.forwarding_id(),
            m.response_code(),
        );
        let _ = (
            m.original_data(),
            m.installment_request(),
            m.installment_response(),
            m.balances(),
        );
        let rewritten = m.rewrite().finish().expect("a decoded message rewrites");
        let again = Message::decode(rewritten).expect("a rewritten message decodes");
        assert!(again.fields().eq(m.fields()), "the rewrite changed a field");
        assert_eq!(again.mti(), m.mti());
        let rebuilt = MessageBuilder::from_message(m)
            .build()
            .expect("a decoded message rebuilds");
        let again = Message::decode(rebuilt).expect("a rebuilt message decodes");
        assert!(again.fields().eq(m.fields()), "the rebuild changed a field");
    }
}

fuzz_target!(|data: &[u8]| {
    check(Bytes::copy_from_slice(data));
    if data.len() >= 6 && data.len() <= 9999 {
        let mut fixed = data.to_vec();
        let len = format!("{:04}", data.len());
        fixed[2..6].copy_from_slice(len.as_bytes());
        check(Bytes::from(fixed));
    }
});
