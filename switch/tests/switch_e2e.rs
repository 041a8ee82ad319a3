//! End-to-end behaviour of the switch over real loopback sockets (SPEC.md sections 2, 3,
//! 6, 7, 8, 9 rule 2). Timeouts are driven by the injected manual clock, never by sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use iso8583::subfields::OriginalData;
use iso8583::{Frame, Message, Mti, Packet};
use std::time::Duration;

#[tokio::test]
async fn approval_end_to_end_rewrites_and_restores_keys() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let req = acq.purchase(PAN, 1234).build().unwrap();
    acq.send(req.clone()).await;

    let fwd = iss.recv().await;
    assert_eq!(fwd.mti(), Mti::FINANCIAL_REQUEST);
    assert_eq!(fwd.header().dest.as_str(), ISS);
    assert_eq!(fwd.header().source.as_str(), SWITCH);
    assert_eq!(
        fwd.header().user_info,
        0,
        "the switch writes its own header towards the issuer"
    );
    assert_eq!(fwd.field(100), Some(&b"03010000"[..]));
    assert!(fwd.has(15), "F15 settlement date set by the switch");
    assert_eq!(fwd.amount(), Some(1234));
    assert_eq!(fwd.pan(), Some(PAN.as_bytes()));
    iss.answer(&fwd, "00").await;

    let resp = acq.recv().await;
    assert_eq!(resp.mti(), Mti::FINANCIAL_RESPONSE);
    assert_eq!(resp.response_code().unwrap().as_str(), "00");
    assert_eq!(resp.stan(), Some(1), "acquirer's STAN restored");
    assert_eq!(resp.header().dest.as_str(), ACQ);
    assert_eq!(resp.header().source.as_str(), SWITCH);
    assert_eq!(
        resp.header().user_info,
        0x5A,
        "header fields 6-9 of the acquirer's request echoed"
    );
    assert_eq!(resp.field(38), Some(&b"A1B2C3"[..]));
    assert!(resp.has(15));
}

#[tokio::test]
async fn pipelined_requests_match_by_key_even_answered_out_of_order() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    for amount in [100u64, 200, 300] {
        let m = acq.purchase(PAN, amount).build().unwrap();
        acq.send(m).await;
    }
    let mut fwds = [iss.recv().await, iss.recv().await, iss.recv().await];
    fwds.reverse();
    for (f, code) in fwds.iter().zip(["51", "00", "05"]) {
        iss.answer(f, code).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let r = acq.recv().await;
        got.push((
            r.stan().unwrap(),
            r.amount().unwrap(),
            r.response_code().unwrap().as_str().to_owned(),
        ));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            (1, 100, "05".into()),
            (2, 200, "00".into()),
            (3, 300, "51".into())
        ]
    );
}

#[tokio::test]
async fn unknown_bin_is_declined_15() {
    let sw = TestSwitch::start();
    let _iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase("9999990000000001", 100).build().unwrap();
    acq.send(m).await;
    let r = acq.recv().await;
    assert_eq!(r.response_code().unwrap().as_str(), "15");
    assert_eq!(r.header().user_info, 0x5A);
}

#[tokio::test]
async fn issuer_not_signed_on_or_dropped_is_declined_91() {
    let sw = TestSwitch::start();
    let mut acq = sw.acquirer().await;
    // Connected but not signed on.
    let _unsigned = Peer::connect(sw.h().issuer_addr, ISS).await;
    let m = acq.purchase(PAN, 100).build().unwrap();
    acq.send(m).await;
    let r = acq.recv().await;
    assert_eq!(r.response_code().unwrap().as_str(), "91");
    assert_eq!(r.field_str(44), Some("ISSUER NOT SIGNED ON"));

    // Signed on, then dropped.
    let iss = sw.issuer().await;
    drop(iss);
    // The drop is noticed asynchronously; the next answers are 91 once it is. Wait on the
    // health endpoint's view instead of sleeping.
    wait_until(|| !sw.h().shared.routes.values().any(|r| r.is_signed_on())).await;
    let m = acq.purchase(PAN, 100).build().unwrap();
    acq.send(m).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "91");
}

#[tokio::test]
async fn sign_off_stops_traffic() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    assert_eq!(iss.network(2).await.response_code().unwrap().as_str(), "00");
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 100).build().unwrap();
    acq.send(m).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "91");
}

#[tokio::test]
async fn balance_inquiry_timeout_is_98_and_never_reversed() {
    // SPEC 5: a balance inquiry is never reversed, not even after a timeout or a late
    // approval.
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let mut b = acq.purchase(PAN, 0);
    b.set(3, "300000").remove(4);
    acq.send(b.build().unwrap()).await;
    let fwd = iss.recv().await;
    assert_eq!(fwd.processing_code(), Some(*b"300000"));

    sw.clock.advance(Duration::from_millis(20_001));
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "98");
    iss.answer(&fwd, "00").await;

    // The next thing the issuer receives is the next purchase, not a 0420.
    let m = acq.purchase(PAN, 7).build().unwrap();
    acq.send(m).await;
    let next = iss.recv().await;
    assert_eq!(
        (next.mti(), next.amount()),
        (Mti::FINANCIAL_REQUEST, Some(7)),
        "no reversal of the balance inquiry"
    );
}

/// `rev` is the switch's 0420 reversal advice of `forwarded` (the request as the issuer
/// received it), with F60.1 `reason`, naming it in F90 by the F11 the issuer saw.
fn assert_reverses(rev: &Message, reason: &[u8; 4], forwarded: &Message) {
    assert_eq!(rev.mti(), Mti::REVERSAL_ADVICE);
    assert_eq!(rev.f60().unwrap().reason_code(), Some(&reason[..]));
    assert_eq!(
        OriginalData::parse(rev.field(90).unwrap()).unwrap().stan,
        forwarded.stan().unwrap(),
        "F90 names the original as the issuer saw it"
    );
}

#[tokio::test]
async fn timeout_answers_98_and_reverses_4361_then_late_approval_reverses_4360() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 5000).build().unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;

    sw.clock.advance(Duration::from_millis(20_001));
    let r = acq.recv().await;
    assert_eq!(r.response_code().unwrap().as_str(), "98");
    assert_eq!(r.stan(), Some(1));

    let rev = iss.recv().await;
    // F90 names the original as the issuer saw it.
    assert_reverses(&rev, b"4361", &fwd);
    let od = OriginalData::parse(rev.field(90).unwrap()).unwrap();
    assert_eq!(od.mti, Mti::FINANCIAL_REQUEST);
    assert_eq!(rev.amount(), Some(5000));
    iss.answer(&rev, "00").await;

    // The issuer approves late: the switch reverses that too.
    iss.answer(&fwd, "00").await;
    let late = iss.recv().await;
    assert_reverses(&late, b"4360", &fwd);
}

/// SPEC 8 with answers arriving around a silent request: the answered ones leave the
/// link's deadline queue as they come back, and the one the issuer never answers still
/// times out (98 and a 4361 reversal), whether it was sent before or after them.
#[tokio::test]
async fn a_request_left_unanswered_among_answered_ones_still_times_out() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    for amount in [100, 200, 300] {
        let m = acq.purchase(PAN, amount).build().unwrap();
        acq.send(m).await;
    }
    let (a, b, c) = (iss.recv().await, iss.recv().await, iss.recv().await);
    // The first and the last are answered; the middle one never is.
    iss.answer(&a, "00").await;
    iss.answer(&c, "00").await;
    let mut approved: Vec<_> = vec![acq.recv().await.amount(), acq.recv().await.amount()];
    approved.sort();
    assert_eq!(approved, [Some(100), Some(300)]);

    sw.clock.advance(Duration::from_millis(20_001));
    let timed_out = acq.recv().await;
    assert_eq!(
        (
            timed_out.amount(),
            timed_out.response_code().unwrap().as_str()
        ),
        (Some(200), "98")
    );
    assert_reverses(&iss.recv().await, b"4361", &b);
}

#[tokio::test]
async fn unanswered_reversal_advice_is_resent_until_answered() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 700).build().unwrap();
    acq.send(m).await;
    let _fwd = iss.recv().await;
    sw.clock.advance(Duration::from_millis(20_001));
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "98");
    let first = iss.recv().await;
    sw.clock.advance(Duration::from_millis(
        switch::actors::route::ADVICE_RETRY_MS as u64,
    ));
    let again = iss.recv().await;
    assert_eq!(
        again.raw(),
        first.raw(),
        "store-and-forward resends the same advice"
    );
    iss.answer(&again, "00").await;
    // Answered: no third send even after another interval; an echo-free keep-alive is all.
    sw.clock.advance(Duration::from_millis(
        switch::actors::route::ADVICE_RETRY_MS as u64,
    ));
    let m = acq.purchase(PAN, 1).build().unwrap();
    acq.send(m).await;
    let next = iss.recv().await;
    assert_eq!(
        next.mti(),
        Mti::FINANCIAL_REQUEST,
        "no resend of an answered advice"
    );
}

#[tokio::test]
async fn approval_for_a_vanished_acquirer_is_reversed_4363() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 999).build().unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;
    drop(acq);
    // Let the switch notice the closed acquirer link before the approval arrives.
    wait_until(|| metrics_text(&sw).contains("switch_acquirer_links 0")).await;
    iss.answer(&fwd, "00").await;
    let rev = iss.recv().await;
    assert_eq!(rev.mti(), Mti::REVERSAL_ADVICE);
    assert_eq!(rev.f60().unwrap().reason_code(), Some(&b"4363"[..]));
}

fn metrics_text(_sw: &TestSwitch) -> String {
    switch::server::render_metrics()
}

#[tokio::test]
async fn duplicate_key_is_declined_94_and_survives_restart() {
    let mut sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 100).build().unwrap();
    acq.send(m.clone()).await;
    let fwd = iss.recv().await;
    iss.answer(&fwd, "00").await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "00");
    acq.send(m.clone()).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "94");
    drop((iss, acq));

    sw.restart();
    let _iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    acq.send(m).await;
    assert_eq!(
        acq.recv().await.response_code().unwrap().as_str(),
        "94",
        "journal replay restores the day's keys"
    );
}

#[tokio::test]
async fn malformed_request_gets_a_reject_with_the_original_appended() {
    let sw = TestSwitch::start();
    let mut acq = sw.acquirer().await;
    let good = acq.purchase(PAN, 100).build().unwrap();
    // Corrupt F4 (an n12 field) with a letter: body error, field 4, illegal content.
    let msg = Message::decode(good.clone()).unwrap();
    let f4 = msg.field(4).unwrap().as_ptr() as usize - good.as_ptr() as usize;
    let mut bad = good.to_vec();
    bad[f4 + 3] = b'X';
    acq.send(bytes::Bytes::from(bad.clone())).await;
    match acq.recv_packet().await {
        Packet::Reject { header, original } => {
            assert_eq!(header.reject.as_str(), "10045");
            assert_eq!(header.dest.as_str(), ACQ);
            assert_eq!(&original[..], &bad[..]);
        }
        Packet::Message(m) => panic!("expected a reject, got {}", m.mti()),
    }
    // Missing mandatory field: a normal answer with 30.
    let mut b = acq.purchase(PAN, 100);
    b.remove(18);
    acq.send(b.build().unwrap()).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "30");
    // A framing error closes the link.
    acq.send_frame(Frame::KeepAlive).await;
    use tokio::io::AsyncWriteExt;
    acq.framed.get_mut().write_all(b"12a4").await.unwrap();
    assert!(acq.closed().await);
}

#[tokio::test]
async fn keepalives_are_ignored_and_sent_when_idle_and_idle_links_close() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    acq.send_frame(Frame::KeepAlive).await;
    assert_eq!(
        through_issuer(&mut acq, &mut iss, 1, "00").await,
        "00",
        "the keep-alive was not answered"
    );

    sw.clock.advance(Duration::from_secs(121));
    assert_eq!(acq.next_frame().await, Frame::KeepAlive);
    sw.clock.advance(Duration::from_secs(60));
    assert!(
        acq.closed().await,
        "nothing received for 180 s closes the link"
    );
}

#[tokio::test]
async fn idle_issuer_link_gets_echo_and_is_dropped_when_unanswered() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    sw.clock.advance(Duration::from_secs(61));
    let echo = iss.recv().await;
    assert_eq!(echo.mti(), Mti::NETWORK_REQUEST);
    assert_eq!(echo.network_code(), Some(301));
    iss.answer(&echo, "00").await;
    sw.clock.advance(Duration::from_secs(61));
    let _echo2 = iss.recv().await;
    sw.clock.advance(Duration::from_secs(11));
    assert!(iss.closed().await, "unanswered echo marks the link down");
}

#[tokio::test]
async fn unknown_institution_link_is_closed_and_source_mismatch_rejected() {
    let sw = TestSwitch::start();
    let mut stranger = Peer::connect(sw.h().acquirer_addr, "09990000").await;
    let m = stranger.purchase(PAN, 1).build().unwrap();
    stranger.send(m).await;
    assert!(stranger.closed().await);

    let mut acq = sw.acquirer().await;
    assert_eq!(
        acq.network(301).await.response_code().unwrap().as_str(),
        "00"
    );
    // Same link, now claiming another configured institution (an issuer): rejected.
    acq.id = iso8583::InstId::new(ISS).unwrap();
    let m = acq.purchase(PAN, 1).build().unwrap();
    acq.send(m).await;
    match acq.recv_packet().await {
        Packet::Reject { header, .. } => assert_eq!(header.reject.as_str(), "00055"),
        Packet::Message(m) => panic!("expected reject, got {}", m.mti()),
    }
}

#[tokio::test]
async fn require_sign_on_declines_c1_until_signed_on() {
    let sw = TestSwitch::start_with("require_sign_on = true");
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 1).build().unwrap();
    acq.send(m).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "C1");
    assert_eq!(acq.network(1).await.response_code().unwrap().as_str(), "00");
    assert_eq!(through_issuer(&mut acq, &mut iss, 1, "00").await, "00");
}

#[tokio::test]
async fn graceful_shutdown_answers_everything_in_flight() {
    shutdown_answers_what_is_in_flight(TestSwitch::start()).await;
}

/// The answer's record is still held in the journal's commit interval when nothing is in
/// flight any more: it becomes durable only with shutdown's flush, whose completion puts
/// it in the acquirer link's outbox just before the links are drained and closed. So
/// shutdown must flush first and drain after (with the buffered journal of the test above,
/// the record is committed at once and either order passes).
#[tokio::test]
async fn graceful_shutdown_writes_answers_made_durable_by_its_flush() {
    let extras = Extras {
        journal: "durability = \"fsync\"\ncommit_interval_us = 100000".into(),
        ..Extras::new("", "")
    };
    shutdown_answers_what_is_in_flight(TestSwitch::start_extras(
        tempfile::tempdir().unwrap(),
        extras,
    ))
    .await;
}

async fn shutdown_answers_what_is_in_flight(mut sw: TestSwitch) {
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 42).build().unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;
    let handle = sw.handle.take().unwrap();
    let shared = handle.shared.clone();
    let stopper = std::thread::spawn(move || handle.shutdown());
    wait_until(|| shared.draining.load(std::sync::atomic::Ordering::SeqCst)).await;
    // New requests while draining are declined at once.
    let m2 = acq.purchase(PAN, 43).build().unwrap();
    acq.send(m2).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "91");
    // The in-flight one is still answered by its issuer.
    iss.answer(&fwd, "00").await;
    let r = acq.recv().await;
    assert_eq!(
        (r.amount(), r.response_code().unwrap().as_str()),
        (Some(42), "00")
    );
    stopper.join().unwrap().unwrap();
    let replay = switch::journal::read_all(sw.dir.path().join("journal")).unwrap();
    assert!(
        replay.records.len() >= 4,
        "requests and outcomes journalled and flushed"
    );
}

/// A running switch keeps its day tables' next chunks ready (made resident off the links'
/// threads), and tops them up as transactions fill them.
#[tokio::test]
async fn a_running_switch_keeps_its_day_tables_ahead_of_their_inserts() {
    // 1,000 entries a shard in memory (the test default writes every entry out at once).
    let extras = Extras {
        switch: "day_tables_memory = 64000".into(),
        ..Extras::new("", "")
    };
    let sw = TestSwitch::start_extras(tempfile::tempdir().unwrap(), extras);
    let shared = sw.h().shared.clone();
    // 64 shards, two chunks each.
    wait_until(|| shared.originals.ready_chunks() >= 128).await;
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    for amount in 1..=3 {
        assert_eq!(through_issuer(&mut acq, &mut iss, amount, "00").await, "00");
    }
    // The purchases' first entries took a ready chunk in their shards; the background
    // rounds put one back.
    wait_until(|| shared.originals.ready_chunks() >= 128).await;
    assert_eq!(shared.originals.len(), 3);
}

#[tokio::test]
async fn a_switch_with_its_day_tables_reserved_answers_and_reports_the_reserve() {
    // Reserved for 100,000 a day with 6,400 entries a table in memory.
    let extras = Extras {
        switch: "reserve_day_tables = true\nexpected_daily_transactions = 100000\nday_tables_memory = 6400".into(),
        ..Extras::new("", "")
    };
    let mut sw = TestSwitch::start_extras(tempfile::tempdir().unwrap(), extras);
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let (first, _, _) = approved_purchase(&mut acq, &mut iss, PAN, 1).await;
    let first = first.raw().clone();
    for amount in 2..=3 {
        assert_eq!(through_issuer(&mut acq, &mut iss, amount, "00").await, "00");
    }
    // SPEC 7's duplicate check works on the reserved tables, before and after a restart
    // (the replay fills tables reserved again at start).
    acq.send(first.clone()).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "94");
    let metrics = http(sw.h().admin_addr, "GET", "/metrics").await;
    let reserved = metrics
        .lines()
        .find_map(|l| l.strip_prefix("switch_day_tables_reserved_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    // Arenas for 6,400 entries in each of the two tables, filters for 100,000 keys.
    assert!(
        reserved.is_some_and(|b| b > 1e6),
        "{reserved:?} in {metrics}"
    );
    drop((iss, acq));
    sw.restart();
    let _iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    acq.send(first).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "94");
}

#[tokio::test]
async fn admin_endpoint_serves_health_and_metrics_without_card_data() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    assert_eq!(through_issuer(&mut acq, &mut iss, 100, "00").await, "00");

    let health = http(sw.h().admin_addr, "GET", "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.contains(r#""status":"ok""#)
            && health.contains(r#""issuer":"03010000","signed_on_links":1"#),
        "{health}"
    );
    // One purchase: one key of the day (its original; the day's table an operator watches).
    assert!(health.contains(r#""day_keys":1"#), "{health}");
    assert!(health.contains(r#""journal_queued":"#), "{health}");
    let metrics = http(sw.h().admin_addr, "GET", "/metrics").await;
    assert!(metrics.contains("switch_transactions_total{"), "{metrics}");
    assert!(
        metrics.contains("switch_day_keys ") && metrics.contains("journal_queued_records "),
        "{metrics}"
    );
    // The purchase's latency was counted (other tests of this process may add theirs),
    // and the count is the +Inf bucket of the same reading.
    let sample = |key: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    // Its issuer leg and its wait for the journal and the link's write, each counted.
    for name in ["switch_latency_seconds", "switch_answer_wait_seconds"] {
        let count = sample(&format!("{name}_count "));
        assert!(count.is_some_and(|n| n >= 1), "{name}: {metrics}");
        assert_eq!(
            sample(&format!("{name}_bucket{{le=\"+Inf\"}} ")),
            count,
            "{name}: {metrics}"
        );
        assert!(
            metrics.contains(&format!("# TYPE {name} histogram\n")),
            "{metrics}"
        );
    }
    assert!(
        !metrics.contains(PAN) && !metrics.contains("TERM0001"),
        "no card data or terminal labels"
    );
    assert!(http(sw.h().admin_addr, "GET", "/nope")
        .await
        .starts_with("HTTP/1.1 404"));
}

fn installment(acq: &mut Peer, pan: &str, with_ip: bool) -> iso8583::MessageBuilder {
    use iso8583::subfields::{FeeMode, InstallmentRequest};
    let mut b = acq.purchase(pan, 600_000);
    b.set(25, "64");
    if with_ip {
        let ip = InstallmentRequest {
            periods: 6,
            project_code: InstallmentRequest::project_code_from(""),
            fee_mode: FeeMode::Spread,
            fee_rate: 4_320,
            subsidy_rate: 1_000,
        };
        b.set(48, ip.encode());
    }
    b
}

#[tokio::test]
async fn installment_rules_30_40_and_approval_without_f57_is_96_plus_reversal() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;

    let b = installment(&mut acq, PAN, false);
    acq.send(b.build().unwrap()).await;
    assert_eq!(
        acq.recv().await.response_code().unwrap().as_str(),
        "30",
        "F48 IP missing"
    );
    let b = installment(&mut acq, PAN_NO_INSTALLMENT, true);
    acq.send(b.build().unwrap()).await;
    assert_eq!(
        acq.recv().await.response_code().unwrap().as_str(),
        "40",
        "card range not open"
    );

    let b = installment(&mut acq, PAN, true);
    acq.send(b.build().unwrap()).await;
    let fwd = iss.recv().await;
    assert_eq!(fwd.pos_condition(), Some(64));
    assert!(
        fwd.installment_request().unwrap().is_ok(),
        "F48 IP passed through"
    );
    iss.answer(&fwd, "00").await; // no F57
    let r = acq.recv().await;
    assert_eq!(r.response_code().unwrap().as_str(), "96");
    let rev = iss.recv().await;
    assert_eq!(rev.mti(), Mti::REVERSAL_ADVICE);
    assert_eq!(rev.f60().unwrap().reason_code(), Some(&b"4361"[..]));
    assert_eq!(
        rev.pos_condition(),
        Some(64),
        "installment reversal keeps F25 64"
    );
}

#[tokio::test]
async fn hot_reload_swaps_tables_under_traffic_and_keeps_the_old_snapshot_on_error() {
    let sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let new_pan = "9999990000000001";
    let m = acq.purchase(new_pan, 1).build().unwrap();
    acq.send(m).await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "15");

    // Traffic in flight across the swap: 50 before, 50 after, none lost.
    for _ in 0..50 {
        let m = acq.purchase(PAN, 7).build().unwrap();
        acq.send(m).await;
    }
    let bins = sw.dir.path().join("bins.csv");
    let mut text = std::fs::read_to_string(&bins).unwrap();
    text.push_str("999999,03010000,credit,N\n");
    std::fs::write(&bins, text).unwrap();
    let resp = http(sw.h().admin_addr, "POST", "/reload").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    for _ in 0..50 {
        let m = acq.purchase(new_pan, 8).build().unwrap();
        acq.send(m).await;
    }
    for _ in 0..100 {
        let fwd = iss.recv().await;
        iss.answer(&fwd, "00").await;
    }
    let mut by_amount = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let r = acq.recv().await;
        assert_eq!(r.response_code().unwrap().as_str(), "00");
        *by_amount.entry(r.amount().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(by_amount, [(7, 50), (8, 50)].into_iter().collect());

    // A broken table is refused with file, place and reason; the running one stays.
    std::fs::write(
        &bins,
        "prefix,issuer,card_type,installment\n12,03010000,debit,N\n",
    )
    .unwrap();
    let resp = http(sw.h().admin_addr, "POST", "/reload").await;
    assert!(resp.starts_with("HTTP/1.1 422"), "{resp}");
    assert!(
        resp.contains("bins.csv") && resp.contains("line 2 column prefix"),
        "{resp}"
    );
    let m = acq.purchase(new_pan, 9).build().unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;
    iss.answer(&fwd, "00").await;
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "00");
}

#[tokio::test]
async fn pending_advices_are_listed_and_resent_after_a_restart() {
    let mut sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 321).build().unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;
    sw.clock.advance(Duration::from_millis(20_001));
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "98");
    let first = iss.recv().await;
    let listed = pending_advices(sw.h().admin_addr).await;
    assert_eq!(listed["pending"], 1, "{listed}");
    assert_eq!(listed["advices"][0]["reason"], "4361");
    assert_eq!(listed["advices"][0]["attempts"], 1);
    assert!(
        !listed.to_string().contains(PAN),
        "no card data in the listing"
    );
    drop((iss, acq));

    // Not answered before a restart: the journal brings it back and it is sent again.
    sw.restart();
    let mut iss = sw.issuer().await;
    let again = iss.recv().await;
    assert_eq!(again.raw(), first.raw());
    assert_eq!(
        OriginalData::parse(again.field(90).unwrap()).unwrap().stan,
        fwd.stan().unwrap()
    );
    iss.answer(&again, "00").await;
    no_advice_pending(sw.h().admin_addr, "after its 0430").await;
}

#[tokio::test]
async fn advice_retries_follow_the_issuer_settings_and_stop_at_max_attempts() {
    let sw = TestSwitch::start_config("", "advice_retry_secs = 5\nadvice_max_attempts = 2");
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 55).build().unwrap();
    acq.send(m).await;
    let _fwd = iss.recv().await;
    sw.clock.advance(Duration::from_millis(20_001));
    assert_eq!(acq.recv().await.response_code().unwrap().as_str(), "98");
    let first = iss.recv().await;
    sw.clock.advance(Duration::from_secs(5));
    assert_eq!(iss.recv().await.raw(), first.raw(), "second and last send");
    sw.clock.advance(Duration::from_secs(5));
    // Given up: reported for manual handling, not sent a third time.
    no_advice_pending(sw.h().admin_addr, "not given up").await;
    let m = acq.purchase(PAN, 56).build().unwrap();
    acq.send(m).await;
    assert_eq!(
        iss.recv().await.mti(),
        Mti::FINANCIAL_REQUEST,
        "no third send"
    );
}

#[tokio::test]
async fn in_flight_cap_answers_91_at_once_without_a_reversal() {
    // SPEC 8 "cannot forward": the cap per link is hit, 91 at once, nothing sent to the issuer.
    let sw = TestSwitch::start_config("", "max_in_flight = 1");
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let first = acq.purchase(PAN, 1).build().unwrap();
    acq.send(first).await;
    let fwd = iss.recv().await;
    let second = acq.purchase(PAN, 2).build().unwrap();
    acq.send(second).await;
    let shed = acq.recv().await;
    assert_eq!(
        (shed.amount(), shed.response_code().unwrap().as_str()),
        (Some(2), "91")
    );
    // The link is signed on: the switch says busy, and counts it apart from "no link".
    assert_eq!(shed.field_str(44), Some("ISSUER BUSY"));
    assert!(
        metrics_text(&sw).contains(&format!(
            r#"switch_sheds_total{{issuer="{ISS}",reason="at_cap"}}"#
        )),
        "{}",
        metrics_text(&sw)
    );
    iss.answer(&fwd, "00").await;
    let ok = acq.recv().await;
    assert_eq!(
        (ok.amount(), ok.response_code().unwrap().as_str()),
        (Some(1), "00")
    );
    // The shed request never reached the issuer and is not reversed: the next thing the
    // issuer sees is the next request.
    assert_eq!(through_issuer(&mut acq, &mut iss, 3, "00").await, "00");
}

#[tokio::test]
async fn branch_ids_are_accepted_as_source_on_the_institutions_link() {
    let sw = TestSwitch::start_with(r#"branch_ids = ["01031100"]"#);
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    assert_eq!(
        acq.network(301).await.response_code().unwrap().as_str(),
        "00"
    );
    acq.id = iso8583::InstId::new("01031100").unwrap();
    let r = through_issuer(&mut acq, &mut iss, 5, "00").await;
    assert_eq!(r, "00", "a branch ID of the bound institution is its own");
}

#[tokio::test]
async fn links_from_addresses_not_allowed_for_the_institution_are_closed() {
    let sw = TestSwitch::start_with(r#"allowed_addrs = ["192.0.2.1"]"#);
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 1).build().unwrap();
    acq.send(m).await;
    assert!(acq.closed().await, "127.0.0.1 is not an allowed address");
}

#[tokio::test]
async fn a_transaction_keeps_its_settlement_date_across_the_cut_over() {
    use chrono::{Local, TimeZone};
    // 22:59:50 local: 10 s before the default 23:00 cut-over.
    let today = Local::now().date_naive();
    let before = Local
        .from_local_datetime(&today.and_hms_opt(22, 59, 50).unwrap())
        .earliest()
        .unwrap();
    let sw = TestSwitch::start_at(before.timestamp_millis());
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let m = acq.purchase(PAN, 1).build().unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;
    assert_eq!(
        fwd.field(15),
        Some(today.format("%m%d").to_string().as_bytes())
    );

    sw.clock.advance(Duration::from_secs(15)); // past 23:00: the cut-over starts
    let shared = sw.h().shared.clone();
    wait_until(|| shared.day.closing().is_some()).await;
    assert_eq!(iss.recv().await.network_code(), Some(201));
    iss.answer(&fwd, "00").await;
    let mut r = acq.recv().await;
    if r.network_code() == Some(201) {
        r = acq.recv().await;
    }
    assert_eq!(
        r.field(15),
        fwd.field(15),
        "in-flight work keeps its original date"
    );

    sw.clock.advance(Duration::from_secs(30)); // the cut-over ends
    wait_until(|| shared.day.closing().is_none()).await;
    assert_eq!(iss.recv().await.network_code(), Some(202));
    let m = acq.purchase(PAN, 2).build().unwrap();
    acq.send(m).await;
    let next = iss.recv().await;
    let tomorrow = today.succ_opt().unwrap().format("%m%d").to_string();
    assert_eq!(
        next.field(15),
        Some(tomorrow.as_bytes()),
        "requests after the cut-over"
    );
}

/// SPEC 7 across a restart for a request the switch answered itself: its key is replayed
/// from the journal as a key of the day (a duplicate), never as an original (a related
/// request naming it still gets `25`), and a forwarded original next to it is found.
#[tokio::test]
async fn a_declined_requests_key_survives_a_restart_as_a_duplicate_not_an_original() {
    let mut sw = TestSwitch::start();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    let code = |m: &Message| m.response_code().unwrap().as_str().to_owned();
    let (approved, _, _) = approved_purchase(&mut acq, &mut iss, PAN, 100).await;
    // A void of a purchase that was never sent: declined 25 by the switch, not forwarded.
    let never_sent = Message::decode(acq.purchase(PAN, 7).build().unwrap()).unwrap();
    let orphan = void(&mut acq, &never_sent, 7).build().unwrap();
    acq.send(orphan.clone()).await;
    assert_eq!(code(&acq.recv().await), "25");
    let orphan = Message::decode(orphan).unwrap();
    drop((iss, acq));

    sw.restart();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    acq.send(orphan.raw().clone()).await;
    assert_eq!(
        code(&acq.recv().await),
        "94",
        "the declined void's key was replayed"
    );
    // A void naming the declined void: its key is no original.
    let of_orphan = void(&mut acq, &orphan, 7).build().unwrap();
    acq.send(of_orphan).await;
    assert_eq!(code(&acq.recv().await), "25");
    // The purchase's original came back where its key was entered: it can be voided.
    let void_purchase = void(&mut acq, &approved, 100).build().unwrap();
    acq.send(void_purchase).await;
    let fwd = iss.recv().await;
    iss.answer(&fwd, "00").await;
    assert_eq!(code(&acq.recv().await), "00");
}
