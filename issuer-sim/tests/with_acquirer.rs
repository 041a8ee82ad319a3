//! The two simulators back to back (the issuer listening, the acquirer client dialling it):
//! both libraries over real TCP, many requests in flight on one link.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use acquirer_sim::{txn, AcquirerClient};
use iso8583::ResponseCode;
use issuer_sim::{AccountBook, IssuerSim, IssuerSimConfig, Rules};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_pipelined_on_one_link() {
    let rules = Rules::default().with_decline_amount(5100, ResponseCode::INSUFFICIENT_FUNDS);
    let sim = IssuerSim::start(
        IssuerSimConfig::listening("127.0.0.1:0".parse().unwrap(), "03010000")
            .with_rules(rules)
            // Card accounts on: every approval moves the one card's balance.
            .with_accounts(AccountBook::open(1_000_000_000_000)),
    )
    .await
    .unwrap();
    // The client answers the simulator's sign-on 0820 by itself.
    let client = AcquirerClient::connect(sim.local_addr().unwrap(), "01030000", "00010000")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), sim.wait_signed_on(1))
        .await
        .unwrap();

    const N: i64 = 5_000;
    let started = Instant::now();
    let futs: Vec<_> = (0..N)
        .map(|i| {
            let amount = if i % 10 == 0 { 5100 } else { 1000 + i };
            client.send(txn::purchase(&client.params("6222020000000123", amount)).unwrap())
        })
        .collect();
    let answers = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(futs))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let declined = answers
        .iter()
        .filter(|a| a.as_ref().unwrap().response_code() == Some(ResponseCode::INSUFFICIENT_FUNDS))
        .count();
    assert_eq!(declined, (N / 10) as usize);
    for a in &answers {
        let a = a.as_ref().unwrap();
        let expect = if a.amount() == Some(5100) {
            ResponseCode::INSUFFICIENT_FUNDS
        } else {
            ResponseCode::APPROVED
        };
        assert_eq!(a.response_code(), Some(expect));
    }
    eprintln!(
        "{N} round trips in {elapsed:?} ({:.0}/s, debug build)",
        N as f64 / elapsed.as_secs_f64()
    );
    let stats = sim.stats();
    assert_eq!(
        (stats.requests, stats.approved, stats.declined),
        (N as u64, (N - N / 10) as u64, (N / 10) as u64)
    );
    assert_eq!(client.stats().unmatched, 0);
    let debited: i64 = (0..N).filter(|i| i % 10 != 0).map(|i| 1000 + i).sum();
    assert_eq!(
        sim.ledger().unwrap().available("6222020000000123"),
        Some(1_000_000_000_000 - debited)
    );
    client.close().await;
}
