//! The switch with both simulators in-process (issuer-sim as the bank, acquirer-sim as the
//! POS front-end), over real loopback TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use acquirer_sim::txn::{self, StanSource, TxnParams};
use acquirer_sim::AcquirerClient;
use common::*;
use iso8583::subfields::{FeeMode, InstallmentRequest};
use iso8583::ResponseCode;
use issuer_sim::{IssuerSim, IssuerSimConfig, Rules};

async fn setup(sw: &TestSwitch) -> (IssuerSim, AcquirerClient, StanSource) {
    let rules = Rules::default().with_decline_amount(5100, ResponseCode::INSUFFICIENT_FUNDS);
    let sim = IssuerSim::start(
        IssuerSimConfig::new(sw.h().issuer_addr, ISS)
            .with_links(2)
            .with_rules(rules),
    )
    .await
    .unwrap();
    let client = AcquirerClient::connect(sw.h().acquirer_addr, ACQ, SWITCH)
        .await
        .unwrap();
    (sim, client, StanSource::random())
}

fn params(stans: &StanSource, pan: &str, amount: i64) -> TxnParams {
    TxnParams::from_source(stans, pan, amount)
}

#[tokio::test]
async fn purchase_decline_balance_cash_and_installment_through_the_switch() {
    let sw = TestSwitch::start();
    let (sim, client, stans) = setup(&sw).await;

    let ok = client
        .send(txn::purchase(&params(&stans, PAN, 1000)).unwrap())
        .await
        .unwrap();
    assert_eq!(ok.response_code(), Some(ResponseCode::APPROVED));
    assert!(
        ok.field(38).is_some(),
        "approval carries the issuer's auth code"
    );

    let declined = client
        .send(txn::purchase(&params(&stans, PAN, 5100)).unwrap())
        .await
        .unwrap();
    assert_eq!(
        declined.response_code(),
        Some(ResponseCode::INSUFFICIENT_FUNDS)
    );

    let bal = client
        .send(txn::balance_inquiry(&params(&stans, PAN, 0)).unwrap())
        .await
        .unwrap();
    assert_eq!(bal.response_code(), Some(ResponseCode::APPROVED));
    assert_eq!(bal.balances().unwrap().unwrap().len(), 1);

    let ip = InstallmentRequest {
        periods: 6,
        project_code: InstallmentRequest::project_code_from(""),
        fee_mode: FeeMode::Spread,
        fee_rate: 4_320,
        subsidy_rate: 1_000,
    };
    let inst = client
        .send(txn::installment_purchase(&params(&stans, PAN, 600_000), &ip).unwrap())
        .await
        .unwrap();
    assert_eq!(inst.response_code(), Some(ResponseCode::APPROVED));
    let f57 = inst.installment_response().unwrap().unwrap();
    assert_eq!((f57.first_amount, f57.cardholder_fee), (103_320, 19_920));

    let cash = client
        .send(txn::cash_withdrawal(&params(&stans, PAN, 20_000)).unwrap())
        .await
        .unwrap();
    assert_eq!(cash.response_code(), Some(ResponseCode::APPROVED));
    assert_eq!(cash.processing_code().map(|p| [p[0], p[1]]), Some(*b"01"));

    let unroutable = client
        .send(txn::purchase(&params(&stans, "9999990000000001", 1)).unwrap())
        .await
        .unwrap();
    assert_eq!(
        unroutable.response_code(),
        Some(ResponseCode::NO_SUCH_ISSUER)
    );

    let stats = sim.shutdown().await;
    assert_eq!((stats.requests, stats.approved, stats.declined), (5, 4, 1));
}

#[tokio::test]
async fn hundreds_of_pipelined_requests_are_all_answered_once() {
    let sw = TestSwitch::start();
    let (sim, client, stans) = setup(&sw).await;
    let futures: Vec<_> = (0..500)
        .map(|i| client.send(txn::purchase(&params(&stans, PAN, 100 + i)).unwrap()))
        .collect();
    let answers = futures::future::join_all(futures).await;
    let mut amounts: Vec<i64> = answers
        .into_iter()
        .map(|a| {
            let m = a.unwrap();
            assert_eq!(m.response_code(), Some(ResponseCode::APPROVED));
            m.amount().unwrap()
        })
        .collect();
    amounts.sort_unstable();
    assert_eq!(amounts, (100..600).collect::<Vec<i64>>());
    assert_eq!(sim.shutdown().await.requests, 500);
}

#[tokio::test]
async fn issuer_sim_signing_off_turns_traffic_to_91() {
    let sw = TestSwitch::start();
    let (sim, client, stans) = setup(&sw).await;
    sim.sign_off().await.unwrap();
    let r = client
        .send(txn::purchase(&params(&stans, PAN, 1)).unwrap())
        .await
        .unwrap();
    assert_eq!(r.response_code(), Some(ResponseCode::ISSUER_INOPERATIVE));
    sim.sign_on().await.unwrap();
    let r = client
        .send(txn::purchase(&params(&stans, PAN, 1)).unwrap())
        .await
        .unwrap();
    assert_eq!(r.response_code(), Some(ResponseCode::APPROVED));
}

#[tokio::test]
async fn switch_dials_a_listening_issuer_and_redials_after_it_restarts() {
    let listener = IssuerSim::start(IssuerSimConfig::listening(
        "127.0.0.1:0".parse().unwrap(),
        ISS,
    ))
    .await
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let sw = TestSwitch::start_config(
        "",
        &format!("connect = [\"{addr}\"]\nreconnect_min_ms = 10\nreconnect_max_ms = 50"),
    );
    listener.wait_signed_on(1).await;
    let client = AcquirerClient::connect(sw.h().acquirer_addr, ACQ, SWITCH)
        .await
        .unwrap();
    let stans = StanSource::random();
    let r = client
        .send(txn::purchase(&params(&stans, PAN, 10)).unwrap())
        .await
        .unwrap();
    assert_eq!(r.response_code(), Some(ResponseCode::APPROVED));

    // The bank host restarts on the same address: the switch dials again.
    let _ = listener.shutdown().await;
    let again = IssuerSim::start(IssuerSimConfig::listening(addr, ISS))
        .await
        .unwrap();
    again.wait_signed_on(1).await;
    let route = sw
        .h()
        .shared
        .routes
        .values()
        .find(|r| r.id.as_str() == ISS)
        .unwrap()
        .clone();
    tokio::time::timeout(GUARD, async {
        while !route.is_signed_on() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap();
    let r = client
        .send(txn::purchase(&params(&stans, PAN, 11)).unwrap())
        .await
        .unwrap();
    assert_eq!(r.response_code(), Some(ResponseCode::APPROVED));
    assert!(again.stats().requests >= 1);
}
