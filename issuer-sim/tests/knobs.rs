//! Behaviour knobs over real loopback TCP against a test that plays the switch: links cut
//! after N requests and redialled, answers on another link, late answers (paused clock: no
//! wall-clock timing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::{SinkExt, StreamExt};
use iso8583::{Frame, FrameCodec, Header, InstId, Message, MessageBuilder, Mti, ResponseCode};
use issuer_sim::{Backoff, Behaviour, IssuerSim, IssuerSimConfig, Rules};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const ISSUER: &str = "03010000";
const SWITCH: &str = "00010000";
/// Guards against hanging when a test fails; generous because the late-answer test runs on
/// a paused clock that jumps ahead.
const GUARD: Duration = Duration::from_secs(3600);

type Link = Framed<TcpStream, FrameCodec>;

async fn next_msg(link: &mut Link) -> Message {
    loop {
        let frame = tokio::time::timeout(GUARD, link.next())
            .await
            .expect("a frame in time")
            .expect("link open")
            .expect("framing ok");
        if let Frame::Message(raw) = frame {
            return Message::decode(raw).unwrap();
        }
    }
}

async fn closed(link: &mut Link) -> bool {
    loop {
        match tokio::time::timeout(GUARD, link.next())
            .await
            .expect("closed in time")
        {
            None | Some(Err(_)) => return true,
            Some(Ok(Frame::KeepAlive)) => {}
            Some(Ok(Frame::Message(_))) => return false,
        }
    }
}

async fn send(link: &mut Link, b: &MessageBuilder) {
    link.send(Frame::Message(b.build().unwrap())).await.unwrap();
}

async fn accept_signed_on(listener: &TcpListener) -> Link {
    let (stream, _) = listener.accept().await.unwrap();
    let mut link = Framed::new(stream, FrameCodec::default());
    let msg = next_msg(&mut link).await;
    assert_eq!(msg.network_code(), Some(1));
    send(
        &mut link,
        &MessageBuilder::response_to(&msg, &[7, 11, 33, 70], ResponseCode::APPROVED),
    )
    .await;
    link
}

fn purchase(stan: u32) -> MessageBuilder {
    let mut b = MessageBuilder::new(
        Mti::FINANCIAL_REQUEST,
        Header::new(InstId::new(ISSUER).unwrap(), InstId::new(SWITCH).unwrap()),
    );
    b.set(2, "6222020000000123")
        .set(3, "000000")
        .set_numeric(4, 1000)
        .set(7, "1121093000")
        .set_numeric(11, u64::from(stan))
        .set(25, "00")
        .set(32, "01030000")
        .set(33, "01030000")
        .set(49, "156");
    b
}

fn quick_redial() -> Behaviour {
    Behaviour {
        reconnect: Some(Backoff {
            min: Duration::from_millis(1),
            max: Duration::from_millis(20),
        }),
        ..Behaviour::default()
    }
}

/// Start the sim dialling `listener` with `links` links, answering their sign-ons.
async fn started(
    listener: &TcpListener,
    links: usize,
    rules: Rules,
    behaviour: Behaviour,
) -> (IssuerSim, Vec<Link>) {
    let config = IssuerSimConfig::new(listener.local_addr().unwrap(), ISSUER)
        .with_links(links)
        .with_rules(rules)
        .with_behaviour(behaviour);
    let start = tokio::spawn(IssuerSim::start(config));
    let mut accepted = Vec::new();
    for _ in 0..links {
        accepted.push(accept_signed_on(listener).await);
    }
    (start.await.unwrap().unwrap(), accepted)
}

#[tokio::test]
async fn a_link_cut_after_n_requests_is_redialled_and_signed_on_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rules = Rules::default().with_disconnect_after(2);
    let (sim, mut links) = started(&listener, 1, rules, quick_redial()).await;
    let mut link = links.remove(0);

    send(&mut link, &purchase(1)).await;
    assert_eq!(next_msg(&mut link).await.stan(), Some(1));
    send(&mut link, &purchase(2)).await;
    assert!(
        closed(&mut link).await,
        "the second request cuts the link, unanswered"
    );

    // The simulator dials again and signs on; the count starts over on the new link.
    let mut again = accept_signed_on(&listener).await;
    tokio::time::timeout(Duration::from_secs(10), sim.wait_signed_on(1))
        .await
        .unwrap();
    send(&mut again, &purchase(3)).await;
    assert_eq!(
        next_msg(&mut again).await.response_code(),
        Some(ResponseCode::APPROVED)
    );
    let stats = sim.stats();
    assert_eq!((stats.disconnects, stats.unanswered), (1, 1));
    // `reconnects` is counted once the redial's sign-on completed, which the answered
    // purchase above follows.
    assert_eq!(stats.reconnects, 1);

    // An issuer crash is not redialled.
    sim.disconnect_all();
    assert!(closed(&mut again).await);
    let nothing = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(nothing.is_err(), "no redial after disconnect_all");
}

#[tokio::test]
async fn answers_can_come_back_on_the_other_link() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rules = Rules::default().with_other_link_rate(1.0);
    let (sim, mut links) = started(&listener, 2, rules, Behaviour::default()).await;
    tokio::time::timeout(Duration::from_secs(10), sim.wait_signed_on(2))
        .await
        .unwrap();
    send(&mut links[0], &purchase(7)).await;
    let resp = next_msg(&mut links[1]).await;
    assert_eq!(
        (resp.stan(), resp.response_code()),
        (Some(7), Some(ResponseCode::APPROVED))
    );
    send(&mut links[1], &purchase(8)).await;
    assert_eq!(next_msg(&mut links[0]).await.stan(), Some(8));
    assert_eq!(sim.stats().other_link, 2);

    // With one link left there is no other link: the answer comes on the request's own.
    drop(links.pop());
    tokio::time::timeout(Duration::from_secs(10), async {
        while sim.signed_on_links() != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    send(&mut links[0], &purchase(9)).await;
    assert_eq!(next_msg(&mut links[0]).await.stan(), Some(9));
}

#[tokio::test(start_paused = true)]
async fn late_answers_come_after_the_late_delay() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rules = Rules::default().with_late_answers(1.0, Duration::from_secs(60));
    let behaviour = Behaviour {
        keepalive: None,
        reconnect: None,
        ..Behaviour::default()
    };
    let (sim, mut links) = started(&listener, 1, rules, behaviour).await;
    let link = &mut links[0];
    let sent = tokio::time::Instant::now();
    send(link, &purchase(1)).await;
    // An echo sent after the purchase is answered first: the purchase waits.
    let mut echo = MessageBuilder::new(
        Mti::NETWORK_REQUEST,
        Header::new(InstId::new(ISSUER).unwrap(), InstId::new(SWITCH).unwrap()),
    );
    echo.set(7, "1121093001")
        .set(11, "000002")
        .set(33, SWITCH)
        .set(70, "301");
    send(link, &echo).await;
    assert_eq!(next_msg(link).await.network_code(), Some(301));
    let late = next_msg(link).await;
    assert_eq!(late.stan(), Some(1));
    assert!(
        sent.elapsed() >= Duration::from_secs(60),
        "answered after {:?}",
        sent.elapsed()
    );
    assert_eq!(sim.stats().late, 1);
}

/// Requests that arrive in one write are answered in one burst (the simulator hands them to
/// its writer together), every one of them, in the order they came, batches of more than
/// the simulator's 256 included.
#[tokio::test]
async fn a_burst_of_requests_is_answered_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (sim, mut links) = started(&listener, 1, Rules::default(), Behaviour::default()).await;
    let mut link = links.remove(0);
    const N: u32 = 1_000;
    for stan in 1..=N {
        link.feed(Frame::Message(purchase(stan).build().unwrap()))
            .await
            .unwrap();
    }
    SinkExt::<Frame>::flush(&mut link).await.unwrap();
    for stan in 1..=N {
        let answer = next_msg(&mut link).await;
        assert_eq!(answer.stan(), Some(stan), "answers out of order");
        assert_eq!(answer.response_code(), Some(ResponseCode::APPROVED));
    }
    assert_eq!(sim.stats().unanswered, 0);
}
