//! The simulator against a test that plays the switch over real TCP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::{SinkExt, StreamExt};
use iso8583::subfields::{FeeMode, InstallmentRequest};
use iso8583::{Frame, FrameCodec, Header, InstId, Message, MessageBuilder, Mti, ResponseCode};
use issuer_sim::{Behaviour, IssuerSim, IssuerSimConfig, Rules};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const ISSUER: &str = "03010000";
const SWITCH: &str = "00010000";
const PAN: &str = "6222020000000123";

type Link = Framed<TcpStream, FrameCodec>;

async fn next_msg(link: &mut Link) -> Message {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), link.next())
            .await
            .expect("a frame within 10 s")
            .expect("link open")
            .expect("framing ok");
        if let Frame::Message(raw) = frame {
            return Message::decode(raw).unwrap();
        }
    }
}

async fn send(link: &mut Link, b: &MessageBuilder) {
    link.send(Frame::Message(b.build().unwrap())).await.unwrap();
}

/// Read the sim's `0820` with this F70 and answer it `0830 00`.
async fn answer_network(link: &mut Link, code: u16) -> Message {
    let msg = next_msg(link).await;
    assert_eq!(msg.mti(), Mti::NETWORK_REQUEST);
    assert_eq!(msg.network_code(), Some(code));
    assert_eq!(msg.header().source.as_str(), ISSUER);
    assert_eq!(msg.header().dest.as_str(), SWITCH);
    assert_eq!(msg.field(33), Some(ISSUER.as_bytes()));
    assert!(msg.has(7) && msg.has(11));
    let resp = MessageBuilder::response_to(&msg, &[7, 11, 33, 70], ResponseCode::APPROVED);
    send(link, &resp).await;
    msg
}

/// Listen, start the sim against it, accept its link and answer the sign-on.
async fn started(
    config: impl FnOnce(std::net::SocketAddr) -> IssuerSimConfig,
) -> (IssuerSim, Link) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = config(listener.local_addr().unwrap());
    let start = tokio::spawn(IssuerSim::start(config));
    let (stream, _) = listener.accept().await.unwrap();
    let mut link = Framed::new(stream, FrameCodec::default());
    answer_network(&mut link, 1).await;
    let sim = start.await.unwrap().unwrap();
    assert_eq!(sim.signed_on_links(), 1);
    (sim, link)
}

/// A request as the switch forwards it to the issuer.
fn forwarded(mti: Mti, stan: u32, amount: u64) -> MessageBuilder {
    let mut h = Header::new(InstId::new(ISSUER).unwrap(), InstId::new(SWITCH).unwrap());
    h.user_info = 7;
    h.txn_info = *b"12345678";
    h.batch = 3;
    let mut b = MessageBuilder::new(mti, h);
    b.set(2, PAN)
        .set(3, "000000")
        .set_numeric(4, amount)
        .set(7, "1121093000")
        .set_numeric(11, u64::from(stan))
        .set(12, "093000")
        .set(13, "1121")
        .set(15, "1121")
        .set(18, "5411")
        .set(22, "021")
        .set(25, "00")
        .set(32, "01030000")
        .set(33, "01030000")
        .set(37, "093000000123")
        .set(41, "TERM0001")
        .set(42, "MERCHANT0000001")
        .set(49, "156")
        .set(60, "000002000300000")
        .set(100, ISSUER);
    b
}

async fn shutdown_answering_sign_off(sim: IssuerSim, mut link: Link) -> issuer_sim::Stats {
    let stop = tokio::spawn(sim.shutdown());
    answer_network(&mut link, 2).await;
    let stats = stop.await.unwrap();
    // The sim closes the link after signing off.
    let rest = tokio::time::timeout(Duration::from_secs(10), link.next())
        .await
        .unwrap();
    assert!(rest.is_none() || rest.unwrap().is_err());
    stats
}

#[tokio::test]
async fn answers_purchase_installment_decline_echo_reversal() {
    let rules = Rules::default().with_decline_amount(5100, ResponseCode::INSUFFICIENT_FUNDS);
    let (sim, mut link) =
        started(|addr| IssuerSimConfig::new(addr, ISSUER).with_rules(rules)).await;

    // A keep-alive is ignored, never answered: the next frame is the purchase's answer.
    link.send(Frame::KeepAlive).await.unwrap();
    let purchase = forwarded(Mti::FINANCIAL_REQUEST, 1, 1000);
    send(&mut link, &purchase).await;
    let resp = next_msg(&mut link).await;
    assert_eq!(resp.mti(), Mti::FINANCIAL_RESPONSE);
    assert_eq!(resp.response_code(), Some(ResponseCode::APPROVED));
    assert_eq!(resp.field(38).map(<[u8]>::len), Some(6));
    for n in [
        2, 3, 4, 7, 11, 12, 13, 15, 18, 25, 32, 33, 37, 41, 42, 49, 60, 100,
    ] {
        assert_eq!(resp.field(n), purchase.get(n), "field {n} echoed");
    }
    assert!(!resp.has(22), "F22 is not echoed");
    let h = resp.header();
    assert_eq!((h.dest.as_str(), h.source.as_str()), (SWITCH, ISSUER));
    assert_eq!((h.user_info, h.txn_info, h.batch), (7, *b"12345678", 3));

    // Installment: P = 6000.00 over 6, rate 4.320 %, subsidy 1.000 % -> cardholder 3.320 %.
    let ip = InstallmentRequest {
        periods: 6,
        project_code: InstallmentRequest::project_code_from("PHONE2026"),
        fee_mode: FeeMode::Spread,
        fee_rate: 4_320,
        subsidy_rate: 1_000,
    };
    let mut inst = forwarded(Mti::FINANCIAL_REQUEST, 2, 600_000);
    inst.set(25, "64").set(48, ip.encode());
    send(&mut link, &inst).await;
    let resp = next_msg(&mut link).await;
    assert_eq!(resp.response_code(), Some(ResponseCode::APPROVED));
    assert_eq!(resp.field(11), Some(&b"000002"[..]));
    let f57 = resp.installment_response().unwrap().unwrap();
    assert_eq!(f57.cardholder_fee, 19_920);
    assert_eq!(f57.first_amount, 100_000 + 3_320);
    assert_eq!(f57.currency, 156);
    assert_eq!(f57.subsidy_rate, 100, "1.000 % as a fraction x 10^4");

    // Amount rule: 51.
    send(&mut link, &forwarded(Mti::FINANCIAL_REQUEST, 3, 5100)).await;
    let resp = next_msg(&mut link).await;
    assert_eq!(resp.response_code(), Some(ResponseCode::INSUFFICIENT_FUNDS));
    assert!(!resp.has(38), "no auth code on a decline");

    // Echo test from the switch.
    let mut echo = MessageBuilder::new(
        Mti::NETWORK_REQUEST,
        Header::new(InstId::new(ISSUER).unwrap(), InstId::new(SWITCH).unwrap()),
    );
    echo.set(7, "1121093001")
        .set(11, "000004")
        .set(33, SWITCH)
        .set(70, "301");
    send(&mut link, &echo).await;
    let resp = next_msg(&mut link).await;
    assert_eq!(resp.mti(), Mti::NETWORK_RESPONSE);
    assert_eq!(resp.response_code(), Some(ResponseCode::APPROVED));
    assert_eq!(resp.field(11), Some(&b"000004"[..]));
    assert_eq!(resp.network_code(), Some(301));

    // Reversal advice (switch-generated, reason 4361).
    let mut rev = forwarded(Mti::REVERSAL_ADVICE, 5, 1000);
    rev.set(60, "436102000300000")
        .set(90, "020000000111210930000000103000000001030000");
    send(&mut link, &rev).await;
    let resp = next_msg(&mut link).await;
    assert_eq!(resp.mti(), Mti::REVERSAL_ADVICE_RESPONSE);
    assert_eq!(resp.response_code(), Some(ResponseCode::APPROVED));
    assert_eq!(resp.field(11), Some(&b"000005"[..]));

    // Balance inquiry: F54 with the available balance in F49's currency.
    let mut bal = forwarded(Mti::FINANCIAL_REQUEST, 6, 0);
    bal.set(3, "301000").remove(4);
    send(&mut link, &bal).await;
    let resp = next_msg(&mut link).await;
    let balances = resp.balances().unwrap().unwrap();
    assert_eq!(balances.len(), 1);
    assert_eq!(
        (
            &balances[0].account_type,
            &balances[0].amount_type,
            &balances[0].currency
        ),
        (b"10", b"02", b"156")
    );
    assert_eq!(balances[0].amount, Rules::default().balance);

    let stats = shutdown_answering_sign_off(sim, link).await;
    assert_eq!(
        (
            stats.requests,
            stats.approved,
            stats.declined,
            stats.echoes,
            stats.reversals,
            stats.unanswered
        ),
        (4, 3, 1, 1, 1, 0)
    );
    assert_eq!(stats.signed_on_links, 0);
}

#[tokio::test]
async fn rules_change_at_runtime_and_the_tap_sees_requests() {
    let (sim, mut link) = started(|addr| IssuerSimConfig::new(addr, ISSUER)).await;
    let mut tap = sim.subscribe();
    sim.set_rules(
        Rules::default()
            .with_silent_pan("0123")
            .with_pan_code("0999", ResponseCode::LOST_CARD),
    );

    send(&mut link, &forwarded(Mti::FINANCIAL_REQUEST, 10, 1000)).await; // silent
    let mut lost = forwarded(Mti::FINANCIAL_REQUEST, 11, 1000);
    lost.set(2, "6222020000000999");
    send(&mut link, &lost).await;
    let resp = next_msg(&mut link).await;
    assert_eq!(
        resp.field(11),
        Some(&b"000011"[..]),
        "the silent request got nothing"
    );
    assert_eq!(resp.response_code(), Some(ResponseCode::LOST_CARD));

    assert_eq!(tap.recv().await.unwrap().stan(), Some(10));
    assert_eq!(tap.recv().await.unwrap().stan(), Some(11));
    let stats = sim.stats();
    assert_eq!(
        (stats.requests, stats.unanswered, stats.declined),
        (2, 1, 1)
    );

    // Everything dropped.
    sim.set_rules(Rules::default().with_drop_rate(1.0));
    send(&mut link, &forwarded(Mti::FINANCIAL_REQUEST, 12, 1000)).await;
    // Reversals are still answered.
    send(&mut link, &forwarded(Mti::REVERSAL_ADVICE, 13, 1000)).await;
    let resp = next_msg(&mut link).await;
    assert_eq!(
        (resp.mti(), resp.stan()),
        (Mti::REVERSAL_ADVICE_RESPONSE, Some(13))
    );
    assert_eq!(sim.stats().unanswered, 2);

    // An issuer crash: the link drops without sign-off.
    sim.disconnect_all();
    let rest = tokio::time::timeout(Duration::from_secs(10), link.next())
        .await
        .unwrap();
    assert!(rest.is_none() || rest.unwrap().is_err());
    assert_eq!((sim.signed_on_links(), sim.link_count()), (0, 0));
}

#[tokio::test]
async fn delayed_answers_arrive_after_immediate_ones() {
    let rules = Rules::default().with_delay(Duration::from_millis(300));
    let (sim, mut link) =
        started(|addr| IssuerSimConfig::new(addr, ISSUER).with_rules(rules)).await;
    send(&mut link, &forwarded(Mti::FINANCIAL_REQUEST, 20, 1000)).await;
    let mut echo = MessageBuilder::new(
        Mti::NETWORK_REQUEST,
        Header::new(InstId::new(ISSUER).unwrap(), InstId::new(SWITCH).unwrap()),
    );
    echo.set(7, "1121093001")
        .set(11, "000021")
        .set(33, SWITCH)
        .set(70, "301");
    send(&mut link, &echo).await;
    // Echoes are answered at once, the delayed purchase after.
    assert_eq!(next_msg(&mut link).await.stan(), Some(21));
    assert_eq!(next_msg(&mut link).await.stan(), Some(20));
    shutdown_answering_sign_off(sim, link).await;
}

#[tokio::test]
async fn listen_mode_signs_on_each_link_the_switch_dials() {
    let sim = IssuerSim::start(IssuerSimConfig::listening(
        "127.0.0.1:0".parse().unwrap(),
        ISSUER,
    ))
    .await
    .unwrap();
    let addr = sim.local_addr().unwrap();
    let mut links = Vec::new();
    for _ in 0..2 {
        let mut link = Framed::new(
            TcpStream::connect(addr).await.unwrap(),
            FrameCodec::default(),
        );
        answer_network(&mut link, 1).await;
        links.push(link);
    }
    tokio::time::timeout(Duration::from_secs(10), sim.wait_signed_on(2))
        .await
        .unwrap();
    send(&mut links[1], &forwarded(Mti::FINANCIAL_REQUEST, 30, 1000)).await;
    assert_eq!(
        next_msg(&mut links[1]).await.response_code(),
        Some(ResponseCode::APPROVED)
    );
    let stop = tokio::spawn(sim.shutdown());
    for link in &mut links {
        answer_network(link, 2).await;
    }
    assert_eq!(stop.await.unwrap().requests, 1);
}

#[tokio::test]
async fn without_sign_on_the_link_stays_signed_off_until_asked() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let behaviour = Behaviour {
        sign_on: false,
        ..Behaviour::default()
    };
    let config =
        IssuerSimConfig::new(listener.local_addr().unwrap(), ISSUER).with_behaviour(behaviour);
    let sim = IssuerSim::start(config).await.unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let mut link = Framed::new(stream, FrameCodec::default());
    assert_eq!((sim.link_count(), sim.signed_on_links()), (1, 0));
    let (signed, _) = tokio::join!(sim.sign_on(), answer_network(&mut link, 1));
    signed.unwrap();
    assert_eq!(sim.signed_on_links(), 1);
    // A refused sign-off is an error the caller sees.
    let refuse = async {
        let msg = next_msg(&mut link).await;
        assert_eq!(msg.network_code(), Some(2));
        send(
            &mut link,
            &MessageBuilder::response_to(&msg, &[7, 11, 33, 70], ResponseCode::SYSTEM_MALFUNCTION),
        )
        .await;
    };
    let (off, ()) = tokio::join!(sim.sign_off(), refuse);
    assert!(off.unwrap_err().to_string().contains("answered 96"));
}

#[tokio::test]
async fn start_fails_cleanly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert!(IssuerSim::start(IssuerSimConfig::new(addr, ISSUER))
        .await
        .is_err());
    assert!(IssuerSim::start(IssuerSimConfig::new(addr, "ABC"))
        .await
        .is_err());
}
