//! SPEC.md section 12 end to end: a day of purchases, a void, a partial refund and a reversal
//! driven through the switch to issuer-sim (a bank with card accounts), then the cut-over,
//! the automatic clearing of the closed day, and the issuer's own account movements
//! reconciled with the issuer file (ICOM) line by line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use iso8583::{Message, Mti};
use issuer_sim::{AccountBook, IssuerSim, IssuerSimConfig, Rules};
use std::time::Duration;

const OPEN: i64 = 10_000_000;

/// Send and return (request as sent, answer).
async fn exchange(acq: &mut Peer, b: iso8583::MessageBuilder) -> (Message, Message) {
    let m = b.build().unwrap();
    let sent = Message::decode(m.clone()).unwrap();
    acq.send(m).await;
    (sent, acq.recv().await)
}

async fn purchase(acq: &mut Peer, amount: u64) -> (Message, Message) {
    let b = acq.purchase(PAN, amount);
    exchange(acq, b).await
}

fn code(m: &Message) -> String {
    m.response_code().unwrap().as_str().to_owned()
}

/// Fixed-width field of an ICOM line (offsets of docs/clearing.md).
fn col(line: &str, at: usize, len: usize) -> &str {
    &line[at..at + len]
}

#[tokio::test]
async fn a_day_through_the_switch_clears_and_the_issuer_file_reconciles_with_its_accounts() {
    let sw = TestSwitch::start();
    let shared = sw.h().shared.clone();
    let sim = IssuerSim::start(
        IssuerSimConfig::new(sw.h().issuer_addr, ISS)
            .with_links(1)
            .with_rules(Rules::default())
            .with_accounts(AccountBook::open(OPEN)),
    )
    .await
    .unwrap();
    wait_until(|| {
        shared
            .route(&iso8583::InstId::new(ISS).unwrap())
            .unwrap()
            .is_signed_on()
    })
    .await;
    let mut acq = sw.acquirer().await;
    let date = shared.day.date();

    let (_, a) = purchase(&mut acq, 10_000).await;
    assert_eq!(code(&a), "00");
    let (voided, a) = purchase(&mut acq, 20_000).await;
    assert_eq!(code(&a), "00");
    let b = void(&mut acq, &voided, 20_000);
    assert_eq!(code(&exchange(&mut acq, b).await.1), "00");
    let (refunded, a) = purchase(&mut acq, 5_000).await;
    assert_eq!(code(&a), "00");
    let b = refund(&mut acq, &refunded, 2_000);
    assert_eq!(code(&exchange(&mut acq, b).await.1), "00");
    let (reversed, a) = purchase(&mut acq, 3_000).await;
    assert_eq!(code(&a), "00");
    let b = reversal(&mut acq, &reversed, 3_000);
    let (_, a) = exchange(&mut acq, b).await;
    assert_eq!((a.mti(), code(&a).as_str()), (Mti(*b"0430"), "00"));
    let (_, a) = purchase(&mut acq, 1).await;
    assert_eq!(code(&a), "00", "a tiny purchase");

    // The reversal reaches the bank as a store-and-forward advice: wait for its 0430.
    let admin = sw.h().admin_addr;
    no_advice_pending(admin, "the reversal advice was never answered").await;

    // Cut-over: the closed day is cleared automatically at its end.
    assert!(switch::actors::cutover::start_now(&shared).is_some());
    assert_eq!(acq.recv().await.network_code(), Some(201));
    sw.clock.advance(Duration::from_secs(31));
    let dir = sw.dir.path().join("clearing").join(date.to_string());
    wait_until(|| dir.join("summary.json").exists()).await;

    let yymmdd = date % 1_000_000;
    let icom =
        std::fs::read_to_string(dir.join(ISS).join(format!("IND{yymmdd:06}01ICOM"))).unwrap();
    let acom =
        std::fs::read_to_string(dir.join(ACQ).join(format!("IND{yymmdd:06}01ACOM"))).unwrap();
    assert!(icom.ends_with("\r\n") && acom.ends_with("\r\n"));
    assert_eq!(
        icom.lines().count(),
        acom.lines().count(),
        "one record each side"
    );

    // Money the issuer's file says the card moved: purchases debit, voids, refunds and
    // reversals credit.
    let mut debited = 0i64;
    let mut mtis = Vec::new();
    for line in icom.split("\r\n").filter(|l| !l.is_empty()) {
        let pan = col(line, 42, 19).trim_start_matches('0');
        assert_eq!(pan, PAN.trim_start_matches('0'));
        let amount: i64 = col(line, 62, 12).parse().unwrap();
        let (mti, f3) = (col(line, 101, 4), col(line, 106, 6));
        mtis.push(format!("{mti}/{}", &f3[..2]));
        debited += match (mti, &f3[..2]) {
            ("0200", "00") => amount,
            ("0200", "20") | ("0220", _) | ("0420", _) => -amount,
            other => panic!("unexpected record {other:?}"),
        };
    }
    mtis.sort();
    assert_eq!(
        mtis,
        ["0200/00", "0200/00", "0200/00", "0200/00", "0200/00", "0200/20", "0220/20", "0420/00"],
        "every approved transaction once, with its void, refund and reversal"
    );
    let ledger = sim.ledger().unwrap();
    let moved = OPEN - ledger.available(PAN).unwrap();
    assert_eq!(moved, 10_000 + 3_000 + 1, "the bank's own books");
    assert_eq!(
        debited, moved,
        "the issuer file reconciles with the bank's accounts"
    );
    sim.shutdown().await;
}
