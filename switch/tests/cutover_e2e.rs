//! SPEC.md section 12 through the running switch, on the test clock: the cut-over at the
//! configured local time (and on demand), its announcements, `90` while it runs, voids of the
//! closed day `22`, reversals of it accepted until the end, advices not resent past it, and
//! daily limits starting afresh on the new business day.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use iso8583::{Message, MessageBuilder, Mti};
use std::time::Duration;

async fn answer_of(acq: &mut Peer, b: MessageBuilder) -> Message {
    acq.send(b.build().unwrap()).await;
    acq.recv().await
}

fn mmdd(yyyymmdd: u32) -> String {
    format!("{:04}", yyyymmdd % 10_000)
}

#[tokio::test]
async fn cutover_at_23_00_dates_declines_90_voids_22_and_takes_reversals_until_its_end() {
    let sw = TestSwitch::start_at(local_ms(22, 59, 50));
    let shared = sw.h().shared.clone();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let closing = shared.day.date();
    let (p1, _, a1) = approved_purchase(&mut acq, &mut iss, PAN, 1_000).await;
    assert_eq!(a1.field_str(15), Some(mmdd(closing).as_str()));
    let (p2, _, _) = approved_purchase(&mut acq, &mut iss, PAN, 2_000).await;

    // 23:00: the cut-over starts and is announced with the closing date.
    sw.clock.advance(Duration::from_secs(11));
    wait_until(|| shared.day.closing().is_some()).await;
    let new = shared.day.date();
    assert!(new > closing);
    for p in [&mut iss, &mut acq] {
        let m = p.recv().await;
        assert_eq!(
            (m.mti(), m.network_code()),
            (Mti::NETWORK_REQUEST, Some(201))
        );
        assert_eq!(m.field_str(15), Some(mmdd(closing).as_str()));
    }

    // Meanwhile: new requests cannot be dated, a void of the closed day is 22, a reversal of
    // it is accepted and passed on.
    let b = acq.purchase(PAN, 500);
    let r = answer_of(&mut acq, b).await;
    assert_eq!(r.response_code().unwrap().as_str(), "90");
    let b = void(&mut acq, &p1, 1_000);
    assert_eq!(
        answer_of(&mut acq, b)
            .await
            .response_code()
            .unwrap()
            .as_str(),
        "22"
    );
    let b = reversal(&mut acq, &p2, 2_000);
    let r = answer_of(&mut acq, b).await;
    assert_eq!(
        (r.mti(), r.response_code().unwrap().as_str()),
        (Mti(*b"0430"), "00")
    );
    assert_eq!(
        r.field_str(15),
        Some(mmdd(closing).as_str()),
        "dated with the closing day"
    );
    let advice = iss.recv().await;
    assert_eq!(advice.mti(), Mti::REVERSAL_ADVICE);
    iss.answer(&advice, "00").await;
    // Taken before the clock reaches its retry (30 s on), or it would be sent again.
    no_advice_pending(sw.h().admin_addr, "after its 0430").await;

    // The end is announced with the new date; traffic flows under it.
    sw.clock.advance(Duration::from_secs(30));
    wait_until(|| shared.day.closing().is_none()).await;
    for p in [&mut iss, &mut acq] {
        let m = p.recv().await;
        assert_eq!(m.network_code(), Some(202));
        assert_eq!(m.field_str(15), Some(mmdd(new).as_str()));
    }
    let m = acq.purchase(PAN, 700).build().unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;
    assert_eq!(fwd.field_str(15), Some(mmdd(new).as_str()));
    iss.answer(&fwd, "00").await;
    assert_eq!(acq.recv().await.field_str(15), Some(mmdd(new).as_str()));

    // After the end, a reversal of the closed day is refused.
    let b = reversal(&mut acq, &p1, 1_000);
    assert_eq!(
        answer_of(&mut acq, b)
            .await
            .response_code()
            .unwrap()
            .as_str(),
        "22"
    );
}

#[tokio::test]
async fn operator_cutover_on_demand_and_advices_are_not_resent_past_it() {
    let sw = TestSwitch::start_config("", "advice_retry_secs = 100");
    let shared = sw.h().shared.clone();
    let admin = sw.h().admin_addr;
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;

    // A timeout leaves a 4361 reversal advice the issuer never answers.
    let m = acq.purchase(PAN, 1_000).build().unwrap();
    acq.send(m).await;
    let _unanswered = iss.recv().await;
    sw.clock.advance(Duration::from_secs(21));
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "98");
    let advice = iss.recv().await;
    assert_eq!(advice.mti(), Mti::REVERSAL_ADVICE);
    assert!(http(admin, "GET", "/advices")
        .await
        .contains("\"pending\":1"));

    let closing = shared.day.date();
    let started = http(admin, "POST", "/cutover").await;
    assert!(started.starts_with("HTTP/1.1 200"), "{started}");
    assert!(
        started.contains(&format!("\"closing\":{closing}")),
        "{started}"
    );
    let again = http(admin, "POST", "/cutover").await;
    assert!(again.starts_with("HTTP/1.1 409"), "{again}");
    assert_eq!(iss.recv().await.network_code(), Some(201));
    assert_eq!(acq.recv().await.network_code(), Some(201));

    sw.clock.advance(Duration::from_secs(30));
    wait_until(|| shared.day.closing().is_none()).await;
    assert_eq!(iss.recv().await.network_code(), Some(202));
    // The closed day's advice went to manual handling instead of being resent.
    let listing = http(admin, "GET", "/advices").await;
    assert!(listing.contains("\"pending\":0"), "{listing}");
    assert_eq!(acq.recv().await.network_code(), Some(202));
    let m = acq.purchase(PAN, 5).build().unwrap();
    acq.send(m).await;
    let next = iss.recv().await;
    assert_eq!(next.mti(), Mti::FINANCIAL_REQUEST, "no advice resent");
}

#[tokio::test]
async fn daily_limits_start_afresh_on_the_new_business_day() {
    let dir = tempfile::tempdir().unwrap();
    write_registry(
        dir.path(),
        "purchase",
        "terminal,MERCHANT0000001,TERM0001,purchase,,10000,",
    );
    let sw = TestSwitch::start_extras(dir, Extras::days(""));
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    approved_purchase(&mut acq, &mut iss, PAN, 9_000).await;
    let b = acq.purchase(PAN, 2_000);
    assert_eq!(
        answer_of(&mut acq, b)
            .await
            .response_code()
            .unwrap()
            .as_str(),
        "61"
    );
    sw.pass_days(1, &mut [&mut acq, &mut iss]).await;
    approved_purchase(&mut acq, &mut iss, PAN, 9_000).await;
}

/// SPEC 7: a key is a duplicate for the rest of its settlement day, whether its request was
/// forwarded or declined by the switch itself; on the next business day the same key is new.
#[tokio::test]
async fn a_key_is_a_duplicate_for_its_settlement_day_only_forwarded_or_declined() {
    let sw = TestSwitch::start_extras(tempfile::tempdir().unwrap(), Extras::days(""));
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let (approved, _, _) = approved_purchase(&mut acq, &mut iss, PAN, 100).await;
    // A void naming a purchase that was never sent: the switch answers 25 itself.
    let never_sent = Message::decode(acq.purchase(PAN, 7).build().unwrap()).unwrap();
    let orphan = void(&mut acq, &never_sent, 7).build().unwrap();
    let code = |m: &Message| m.response_code().unwrap().as_str().to_owned();
    acq.send(orphan.clone()).await;
    assert_eq!(code(&acq.recv().await), "25");
    for again in [orphan.clone(), approved.raw().clone()] {
        acq.send(again).await;
        assert_eq!(code(&acq.recv().await), "94", "the same day");
    }

    sw.pass_days(1, &mut [&mut acq, &mut iss]).await;
    // The new day has seen neither key: the void is checked again, the purchase forwarded.
    acq.send(orphan.clone()).await;
    assert_eq!(code(&acq.recv().await), "25");
    acq.send(approved.raw().clone()).await;
    let fwd = iss.recv().await;
    assert_eq!(fwd.amount(), Some(100));
    iss.answer(&fwd, "00").await;
    assert_eq!(code(&acq.recv().await), "00");
    // ...and each is a duplicate again for the rest of this day.
    for again in [orphan, approved.raw().clone()] {
        acq.send(again).await;
        assert_eq!(code(&acq.recv().await), "94", "the new day");
    }
}
