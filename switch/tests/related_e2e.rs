//! SPEC.md section 7 and 8 through the running switch: voids, refunds and acquirer
//! reversals find their original through F90; the switch answers 12/13/14/22/25/64/97 itself,
//! answers reversals at once and passes them on to the issuer, handles early and duplicate
//! reversals, and rebuilds the originals from the journal after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use iso8583::{Message, MessageBuilder, Mti};

/// Send a request, return the answer code.
async fn code(acq: &mut Peer, m: &Message) -> String {
    acq.send(m.raw().clone()).await;
    acq.recv()
        .await
        .response_code()
        .unwrap()
        .as_str()
        .to_owned()
}

/// The related request goes to the issuer, which answers `issuer_code`; returns the forward
/// and the acquirer's answer code.
async fn via_issuer(
    acq: &mut Peer,
    iss: &mut Peer,
    b: MessageBuilder,
    issuer_code: &str,
) -> (Message, String) {
    let m = b.build().unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;
    iss.answer(&fwd, issuer_code).await;
    let code = acq
        .recv()
        .await
        .response_code()
        .unwrap()
        .as_str()
        .to_owned();
    (fwd, code)
}

/// Nothing reached the issuer in between: the next thing it sees is a fresh purchase.
async fn issuer_saw_nothing(acq: &mut Peer, iss: &mut Peer) {
    let probe = acq.purchase(PAN, 7).build().unwrap();
    acq.send(probe).await;
    let next = iss.recv().await;
    assert_eq!(next.mti(), Mti::FINANCIAL_REQUEST);
    assert_eq!(
        next.amount(),
        Some(7),
        "issuer received something else first"
    );
    iss.answer(&next, "00").await;
    acq.recv().await;
}

#[tokio::test]
async fn void_then_second_void_and_refund_of_the_voided_are_22() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let (orig, orig_fwd, _) = approved_purchase(&mut acq, &mut iss, PAN, 1_000).await;

    let (fwd, c) = {
        let b = void(&mut acq, &orig, 1_000);
        via_issuer(&mut acq, &mut iss, b, "00")
    }
    .await;
    assert_eq!(c, "00");
    assert_eq!(fwd.processing_code().unwrap(), *b"200000");
    let od = fwd.original_data().unwrap().unwrap();
    assert_ne!(orig.stan(), orig_fwd.stan(), "the switch rewrote F11");
    assert_eq!(
        od.stan,
        orig_fwd.stan().unwrap(),
        "F90 names the original by the F11 the issuer saw"
    );

    let again = void(&mut acq, &orig, 1_000).build().unwrap();
    assert_eq!(code(&mut acq, &Message::decode(again).unwrap()).await, "22");
    let r = refund(&mut acq, &orig, 100).build().unwrap();
    assert_eq!(code(&mut acq, &Message::decode(r).unwrap()).await, "22");
    issuer_saw_nothing(&mut acq, &mut iss).await;
}

#[tokio::test]
async fn related_checks_answer_25_12_14_97_64_13_without_the_issuer() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let (orig, _, _) = approved_purchase(&mut acq, &mut iss, PAN, 1_000).await;

    // A declined purchase cannot be voided.
    let declined = acq.purchase(PAN, 500).build().unwrap();
    let declined_msg = Message::decode(declined.clone()).unwrap();
    acq.send(declined).await;
    let fwd = iss.recv().await;
    iss.answer(&fwd, "51").await;
    acq.recv().await;

    let unknown = Message::decode(orig.rewrite().set(11, b"999999").finish().unwrap()).unwrap();

    let cases: Vec<(&str, MessageBuilder)> = vec![
        ("25", void(&mut acq, &unknown, 1_000)),
        ("12", void(&mut acq, &declined_msg, 500)),
        ("14", {
            let mut b = void(&mut acq, &orig, 1_000);
            b.set(2, "6222029999999999999");
            b
        }),
        ("97", {
            let mut b = void(&mut acq, &orig, 1_000);
            b.set(41, "TERM0002");
            b
        }),
        ("64", void(&mut acq, &orig, 999)),
        ("13", refund(&mut acq, &orig, 0)),
        ("22", refund(&mut acq, &orig, 1_001)),
        ("25", reversal(&mut acq, &unknown, 1_000)),
    ];
    for (want, b) in cases {
        let m = Message::decode(b.build().unwrap()).unwrap();
        assert_eq!(code(&mut acq, &m).await, want, "{:?}", m.processing_code());
    }
    issuer_saw_nothing(&mut acq, &mut iss).await;
}

#[tokio::test]
async fn partial_refunds_up_to_the_original_and_within_the_window() {
    let mut extras = Extras::days("");
    extras.switch.push_str("\n[rules]\nrefund_window_days = 1");
    let sw = TestSwitch::start_extras(tempfile::tempdir().unwrap(), extras);
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let (orig, _, _) = approved_purchase(&mut acq, &mut iss, PAN, 1_000).await;

    let (fwd, c) = {
        let b = refund(&mut acq, &orig, 400);
        via_issuer(&mut acq, &mut iss, b, "00")
    }
    .await;
    assert_eq!((fwd.mti(), c.as_str()), (Mti::FINANCIAL_ADVICE, "00"));
    // A refund the issuer declines does not count.
    let (_, c) = {
        let b = refund(&mut acq, &orig, 600);
        via_issuer(&mut acq, &mut iss, b, "05")
    }
    .await;
    assert_eq!(c, "05");
    let (_, c) = {
        let b = refund(&mut acq, &orig, 600);
        via_issuer(&mut acq, &mut iss, b, "00")
    }
    .await;
    assert_eq!(c, "00");
    let over = refund(&mut acq, &orig, 1).build().unwrap();
    assert_eq!(code(&mut acq, &Message::decode(over).unwrap()).await, "22");

    // Another purchase, refunded after the (here 1-day) window.
    let (orig2, _, _) = approved_purchase(&mut acq, &mut iss, PAN, 1_000).await;
    sw.pass_days(2, &mut [&mut acq, &mut iss]).await;
    let late = refund(&mut acq, &orig2, 100).build().unwrap();
    assert_eq!(code(&mut acq, &Message::decode(late).unwrap()).await, "22");
    issuer_saw_nothing(&mut acq, &mut iss).await;
}

#[tokio::test]
async fn acquirer_reversal_is_answered_at_once_passed_on_and_idempotent() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let (orig, orig_fwd, _) = approved_purchase(&mut acq, &mut iss, PAN, 1_000).await;

    let rev = reversal(&mut acq, &orig, 1_000).build().unwrap();
    acq.send(rev.clone()).await;
    let answer = acq.recv().await;
    assert_eq!(answer.mti(), Mti(*b"0430"));
    assert_eq!(answer.response_code().unwrap().as_str(), "00");

    // The issuer gets the 0420 naming the original by the F11 it saw.
    let advice = iss.recv().await;
    assert_eq!(advice.mti(), Mti::REVERSAL_ADVICE);
    let od = advice.original_data().unwrap().unwrap();
    assert_eq!(od.stan, orig_fwd.stan().unwrap());
    assert_eq!(&advice.f60().unwrap().reason_code().unwrap(), b"4351");
    iss.answer(&advice, "00").await;

    // The same reversal again: same answer, nothing more to the issuer.
    acq.send(rev).await;
    let again = acq.recv().await;
    assert_eq!(again.response_code().unwrap().as_str(), "00");
    // The reversed original cannot be voided.
    let v = void(&mut acq, &orig, 1_000).build().unwrap();
    assert_eq!(code(&mut acq, &Message::decode(v).unwrap()).await, "22");
    issuer_saw_nothing(&mut acq, &mut iss).await;
}

/// SPEC 13: the journal never holds PIN blocks or track data. An acquirer's 0420 that
/// carries them (track 2, PIN block, expiry: fields the dictionary marks secret) is held
/// for store-and-forward and passed on without them; everything else goes as sent.
#[tokio::test]
async fn a_passed_on_reversal_holds_no_track_pin_or_expiry() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let (orig, _, _) = approved_purchase(&mut acq, &mut iss, PAN, 1_000).await;
    let track2 = format!("{PAN}=30122011234567890");
    let pin = *b"\x8f\x11\x22\x33\x44\x55\x66\x77";
    let mut rev = reversal(&mut acq, &orig, 1_000);
    rev.set(14, "3012").set(35, track2.as_bytes()).set(52, pin);
    acq.send(rev.build().unwrap()).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "00");

    let advice = iss.recv().await;
    assert_eq!(advice.mti(), Mti::REVERSAL_ADVICE);
    for n in [14, 35, 52] {
        assert!(!advice.has(n), "F{n} passed on");
    }
    assert_eq!(advice.pan(), Some(PAN.as_bytes()));
    assert_eq!(advice.amount(), Some(1_000));
    iss.answer(&advice, "00").await;

    let handle = sw.handle.as_ref().unwrap();
    handle.shared.journal.flush_blocking().unwrap();
    let journal = switch::journal::read_all(sw.dir.path().join("journal")).unwrap();
    let bytes: Vec<u8> = journal
        .records
        .iter()
        .flat_map(|r| r.payload.to_vec())
        .collect();
    let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!holds(track2.as_bytes()), "track 2 in the journal");
    assert!(!holds(&pin), "PIN block in the journal");
}

#[tokio::test]
async fn early_reversal_is_applied_when_the_issuer_approves() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 1_000).build().unwrap();
    let orig = Message::decode(m.clone()).unwrap();
    acq.send(m).await;
    let orig_fwd = iss.recv().await;

    // The terminal gives up and reverses while the issuer still holds the purchase.
    let rev = reversal(&mut acq, &orig, 1_000).build().unwrap();
    acq.send(rev).await;
    let answer = acq.recv().await;
    assert_eq!(answer.mti(), Mti(*b"0430"));
    assert_eq!(answer.response_code().unwrap().as_str(), "00");

    // Now the issuer approves: the switch reverses it there.
    iss.answer(&orig_fwd, "00").await;
    let advice = iss.recv().await;
    assert_eq!(advice.mti(), Mti::REVERSAL_ADVICE);
    assert_eq!(
        advice.original_data().unwrap().unwrap().stan,
        orig_fwd.stan().unwrap()
    );
    assert_eq!(&advice.f60().unwrap().reason_code().unwrap(), b"4351");
    // The late approval still reaches the acquirer (it has reversed it already).
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "00");
    iss.answer(&advice, "00").await;
    let v = void(&mut acq, &orig, 1_000).build().unwrap();
    assert_eq!(code(&mut acq, &Message::decode(v).unwrap()).await, "22");
}

#[tokio::test]
async fn reversal_of_a_void_restores_the_original_and_all_survives_a_restart() {
    let mut sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let (orig, _, _) = approved_purchase(&mut acq, &mut iss, PAN, 1_000).await;
    let vb = void(&mut acq, &orig, 1_000);
    let void_msg = Message::decode(vb.build().unwrap()).unwrap();
    let (_, c) = via_issuer(&mut acq, &mut iss, vb, "00").await;
    assert_eq!(c, "00");

    // Reverse the void: the purchase stands again.
    let rev = reversal(&mut acq, &void_msg, 1_000);
    let rev = rev.build().unwrap();
    acq.send(rev.clone()).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "00");
    let advice = iss.recv().await;
    assert_eq!(advice.mti(), Mti::REVERSAL_ADVICE);
    iss.answer(&advice, "00").await;
    drop((acq, iss));

    // After a restart the index is rebuilt: the duplicate reversal gets its answer, the
    // purchase can be refunded but not refunded beyond its amount.
    sw.restart();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    for _ in 0..10 {
        acq.next_stan();
    }
    acq.send(rev).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "00");
    let (_, c) = {
        let b = refund(&mut acq, &orig, 1_000);
        via_issuer(&mut acq, &mut iss, b, "00")
    }
    .await;
    assert_eq!(c, "00", "the restored purchase is refundable");
    let over = refund(&mut acq, &orig, 1).build().unwrap();
    assert_eq!(code(&mut acq, &Message::decode(over).unwrap()).await, "22");
    issuer_saw_nothing(&mut acq, &mut iss).await;
}

#[tokio::test]
async fn a_void_gives_back_the_daily_limit_usage() {
    let dir = tempfile::tempdir().unwrap();
    write_registry(
        dir.path(),
        "purchase|refund",
        "terminal,MERCHANT0000001,TERM0001,purchase,,10000,",
    );
    let sw = TestSwitch::start_in(dir, "", "");
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let (orig, _, _) = approved_purchase(&mut acq, &mut iss, PAN, 9_000).await;
    let over = acq.purchase(PAN, 2_000).build().unwrap();
    assert_eq!(code(&mut acq, &Message::decode(over).unwrap()).await, "61");
    let (_, c) = {
        let b = void(&mut acq, &orig, 9_000);
        via_issuer(&mut acq, &mut iss, b, "00")
    }
    .await;
    assert_eq!(c, "00");
    approved_purchase(&mut acq, &mut iss, PAN, 2_000).await;
}
