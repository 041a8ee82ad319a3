//! SPEC.md section 9 rules 3 and 4 through the running switch: merchant and terminal
//! registry (03 / 97 / 58) and daily limits (61 / 65), reserved on forward, released on
//! decline, rebuilt from the journal on restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn start_with_registry() -> TestSwitch {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("merchants.csv"),
        "acquirer,merchant_id,name,mcc,status,categories,extra_mccs\n\
         01030000,MERCHANT0000001,Shop,5411,active,purchase|balance,\n\
         01030000,MERCHANT0000009,Closed shop,5411,suspended,purchase,\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("terminals.csv"),
        "acquirer,merchant_id,terminal_id,status,categories\n\
         01030000,MERCHANT0000001,TERM0001,active,*\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("limits.csv"),
        "scope,merchant_id,terminal_id,categories,single_max,daily_amount_max,daily_count_max\n\
         terminal,MERCHANT0000001,TERM0001,purchase,10000,15000,3\n",
    )
    .unwrap();
    TestSwitch::start_in(dir, "", "")
}

async fn code_of(acq: &mut Peer, b: iso8583::MessageBuilder) -> (String, Option<String>) {
    acq.send(b.build().unwrap()).await;
    let r = acq.recv().await;
    (
        r.response_code().unwrap().as_str().to_owned(),
        r.field_str(44).map(str::to_owned),
    )
}

#[tokio::test]
async fn registry_declines_03_97_58_before_the_issuer_sees_anything() {
    let sw = start_with_registry();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;

    let mut b = acq.purchase(PAN, 100);
    b.set(42, "MERCHANT0000404");
    assert_eq!(code_of(&mut acq, b).await.0, "03", "unknown merchant");
    let mut b = acq.purchase(PAN, 100);
    b.set(42, "MERCHANT0000009");
    assert_eq!(code_of(&mut acq, b).await.0, "03", "suspended merchant");
    let mut b = acq.purchase(PAN, 100);
    b.set(18, "6011");
    assert_eq!(code_of(&mut acq, b).await.0, "03", "MCC not permitted");
    let mut b = acq.purchase(PAN, 100);
    b.set(41, "TERM9999");
    assert_eq!(
        code_of(&mut acq, b).await.0,
        "97",
        "terminal not registered"
    );
    let mut b = acq.purchase(PAN, 100);
    b.set(3, "010000");
    let (code, reason) = code_of(&mut acq, b).await;
    assert_eq!(code, "58", "cash at a shop terminal");
    assert!(reason.unwrap().contains("NOT PERMITTED"));

    // A permitted one reaches the issuer: the first thing the issuer receives.
    let m = acq.purchase(PAN, 100).build().unwrap();
    acq.send(m).await;
    let fwd = iss.recv().await;
    assert_eq!(fwd.amount(), Some(100));
}

#[tokio::test]
async fn limits_61_65_reserve_on_forward_release_on_decline_and_survive_restart() {
    let mut sw = start_with_registry();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;

    let (code, reason) = purchase_code(&mut acq, 10_001).await;
    assert_eq!(
        (code.as_str(), reason.as_deref()),
        ("61", Some("TERM SINGLE LIMIT"))
    );

    // 9,000 approved.
    assert_eq!(through_issuer(&mut acq, &mut iss, 9_000, "00").await, "00");

    // 6,001 more would pass 15,000 a day.
    let (code, reason) = purchase_code(&mut acq, 6_001).await;
    assert_eq!(
        (code.as_str(), reason.as_deref()),
        ("61", Some("TERM DAILY LIMIT"))
    );

    // 6,000 is reserved, the issuer declines it: released again.
    assert_eq!(through_issuer(&mut acq, &mut iss, 6_000, "51").await, "51");
    drop((iss, acq));

    // After a restart the day's approved 9,000 still counts (rebuilt from the journal).
    sw.restart();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    acq.next_stan();
    acq.next_stan();
    acq.next_stan();
    acq.next_stan();
    let (code, _) = purchase_code(&mut acq, 6_001).await;
    assert_eq!(code, "61", "usage rebuilt after restart");
    assert_eq!(through_issuer(&mut acq, &mut iss, 6_000, "00").await, "00");

    // Two approved today: the third is allowed by count but not amount; count limit is 3.
    let (code, reason) = purchase_code(&mut acq, 1).await;
    assert_eq!(
        (code.as_str(), reason.as_deref()),
        ("61", Some("TERM DAILY LIMIT"))
    );
}

async fn purchase_code(acq: &mut Peer, amount: u64) -> (String, Option<String>) {
    let b = acq.purchase(PAN, amount);
    code_of(acq, b).await
}

#[tokio::test]
async fn daily_count_limit_declines_65() {
    let sw = start_with_registry();
    let mut iss = sw.issuer().await;
    let mut acq = sw.acquirer().await;
    for _ in 0..3 {
        assert_eq!(through_issuer(&mut acq, &mut iss, 1, "00").await, "00");
    }
    let (code, reason) = purchase_code(&mut acq, 1).await;
    assert_eq!(
        (code.as_str(), reason.as_deref()),
        ("65", Some("TERM DAILY COUNT"))
    );
}
