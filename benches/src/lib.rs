//! Sample messages shared by the criterion benches (`benches/codec.rs`) and the allocation
//! test (`tests/alloc.rs`): a typical 0200 purchase, an installment 0200 and an 0820 echo,
//! as the acquirer sends them to the switch.

use bytes::Bytes;
use iso8583::subfields::{FeeMode, InstallmentRequest};
use iso8583::{Header, InstId, MessageBuilder, Mti};

/// The switch's institution ID.
pub const SWITCH: &str = "00010000";
/// The acquirer of the samples.
pub const ACQUIRER: &str = "01030000";
/// The issuer the samples are forwarded to.
pub const ISSUER: &str = "01020000";

fn id(s: &str) -> InstId {
    InstId::new(s).unwrap_or_else(|| unreachable!("constant institution IDs are digits"))
}

/// Header of a message from the acquirer to the switch.
#[must_use]
pub fn acquirer_header() -> Header {
    Header::new(id(SWITCH), id(ACQUIRER))
}

/// Header the switch writes when it forwards to the issuer.
#[must_use]
pub fn forward_header() -> Header {
    Header::new(id(ISSUER), id(SWITCH))
}

fn purchase_builder() -> MessageBuilder {
    let mut b = MessageBuilder::new(Mti::FINANCIAL_REQUEST, acquirer_header());
    b.set(2, "6222020000000123")
        .set(3, "000000")
        .set(4, "000000012345")
        .set(7, "1121093000")
        .set(11, "000123")
        .set(12, "093000")
        .set(13, "1121")
        .set(18, "5411")
        .set(22, "051")
        .set(25, "00")
        .set(32, "01030000")
        .set(33, "01030000")
        .set(35, "6222020000000123=25122011234567890")
        .set(37, "112109300001")
        .set(41, "TERM0001")
        .set(42, "123456789012345")
        .set(43, "CARDSWITCH TEST SHOP            SHANGHAI")
        .set(49, "156")
        .set(52, [0x11u8, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
        .set(60, "000005000300000");
    b
}

/// A typical chip purchase: 20 fields including track 2 and a PIN block (289 bytes).
#[must_use]
pub fn purchase() -> MessageBuilder {
    purchase_builder()
}

/// An installment purchase: F25 64 and F48 usage `IP`, no track or PIN (312 bytes).
#[must_use]
pub fn installment() -> MessageBuilder {
    let ip = InstallmentRequest {
        periods: 6,
        project_code: InstallmentRequest::project_code_from("PHONE2026"),
        fee_mode: FeeMode::Spread,
        fee_rate: 4320,
        subsidy_rate: 1000,
    };
    let mut b = purchase_builder();
    b.set(4, "000000600000")
        .set(11, "000124")
        .set(25, "64")
        .set(37, "112109300002")
        .set(48, ip.encode())
        .remove(35)
        .remove(52);
    b
}

/// An 0820 echo test (F70 301), which needs the secondary bitmap (95 bytes).
#[must_use]
pub fn echo() -> MessageBuilder {
    let mut b = MessageBuilder::new(Mti::NETWORK_REQUEST, acquirer_header());
    b.set(7, "1121093000")
        .set(11, "000001")
        .set(33, "01030000")
        .set(70, "301");
    b
}

/// The encoded frame payload of a sample.
#[must_use]
pub fn payload(builder: &MessageBuilder) -> Bytes {
    builder
        .build()
        .unwrap_or_else(|e| unreachable!("sample messages are valid: {e}"))
}
