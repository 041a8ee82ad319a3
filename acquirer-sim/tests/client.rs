//! The client against a test that plays the switch over real TCP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use acquirer_sim::{txn, AcquirerClient, ClientError, Original};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use iso8583::{
    build_reject, Frame, FrameCodec, Header, InstId, Message, MessageBuilder, Mti, RejectCode,
    ResponseCode,
};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const ACQ: &str = "01030000";
const SWITCH: &str = "00010000";
const PAN: &str = "6222020000000123";
const WAIT: Duration = Duration::from_secs(10);

type Link = Framed<TcpStream, FrameCodec>;

async fn pair() -> (AcquirerClient, Link) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(
        AcquirerClient::connect(addr, ACQ, SWITCH),
        listener.accept()
    );
    (
        client.unwrap(),
        Framed::new(accepted.unwrap().0, FrameCodec::default()),
    )
}

async fn next_raw(link: &mut Link) -> Bytes {
    loop {
        match tokio::time::timeout(WAIT, link.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Frame::Message(raw) => return raw,
            Frame::KeepAlive => {}
        }
    }
}

async fn answer(link: &mut Link, req: &Message, code: ResponseCode) {
    let resp =
        MessageBuilder::response_to(req, &[2, 3, 4, 7, 11, 25, 32, 33, 37, 41, 42, 49], code);
    link.send(Frame::Message(resp.build().unwrap()))
        .await
        .unwrap();
}

#[tokio::test]
async fn pipelined_answers_out_of_order_are_matched_by_key() {
    let (client, mut link) = pair().await;
    let params: Vec<_> = (0..4).map(|i| client.params(PAN, 1000 + i)).collect();
    // All four are written before any answer exists.
    let futs: Vec<_> = params
        .iter()
        .map(|p| client.send(txn::purchase(p).unwrap()))
        .collect();
    let mut reqs = Vec::new();
    for _ in 0..4 {
        reqs.push(Message::decode(next_raw(&mut link).await).unwrap());
    }
    assert_eq!(client.in_flight(), 4);
    let got: Vec<_> = reqs.iter().map(Message::amount).collect();
    assert_eq!(
        got,
        vec![Some(1000), Some(1001), Some(1002), Some(1003)],
        "written in call order"
    );
    assert_eq!(reqs[0].header().source.as_str(), ACQ);
    assert_eq!(reqs[0].header().dest.as_str(), SWITCH);

    // An answer nobody waits for: counted, handed to recv_timeout.
    let mut stray = MessageBuilder::response_to(&reqs[0], &[7, 32, 33], ResponseCode::APPROVED);
    stray.set(11, "999999");
    link.send(Frame::Message(stray.build().unwrap()))
        .await
        .unwrap();
    // Answer in reverse order, each with a code of its own.
    let codes = [
        ResponseCode::APPROVED,
        ResponseCode::INSUFFICIENT_FUNDS,
        ResponseCode::EXPIRED_CARD,
        ResponseCode::LOST_CARD,
    ];
    for (req, code) in reqs.iter().zip(codes).rev() {
        answer(&mut link, req, code).await;
    }
    let answers = futures::future::join_all(futs).await;
    for (i, a) in answers.into_iter().enumerate() {
        let a = a.unwrap();
        assert_eq!(a.amount(), Some(1000 + i as i64));
        assert_eq!(a.response_code(), Some(codes[i]));
    }
    let stray = client.recv_timeout(WAIT).await.unwrap();
    assert_eq!(stray.message().unwrap().stan(), Some(999_999));
    let stats = client.stats();
    assert_eq!((stats.sent, stats.matched, stats.unmatched), (4, 4, 1));
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test]
async fn a_reject_resolves_the_request_it_wraps() {
    let (client, mut link) = pair().await;
    let p1 = client.params(PAN, 100);
    let p2 = client.params(PAN, 200);
    let f1 = client.send(txn::purchase(&p1).unwrap());
    let f2 = client.send(txn::purchase(&p2).unwrap());
    let r1 = next_raw(&mut link).await;
    let r2 = next_raw(&mut link).await;
    // Reject the second, answer the first.
    let code = RejectCode::new(1, 4, 5);
    let reject = build_reject(&r2, code, InstId::new(SWITCH).unwrap()).unwrap();
    link.send(Frame::Message(Bytes::from(reject)))
        .await
        .unwrap();
    answer(
        &mut link,
        &Message::decode(r1).unwrap(),
        ResponseCode::APPROVED,
    )
    .await;
    let (a1, a2) = tokio::join!(f1, f2);
    assert_eq!(a1.unwrap().response_code(), Some(ResponseCode::APPROVED));
    match a2.unwrap_err() {
        ClientError::Rejected { code: got, header } => {
            assert_eq!(got, code);
            assert_eq!(header.dest.as_str(), ACQ);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn send_raw_gets_the_reject_of_a_malformed_message() {
    let (client, mut link) = pair().await;
    // A valid header with a garbage body.
    let mut payload = Vec::new();
    Header::new(InstId::new(SWITCH).unwrap(), InstId::new(ACQ).unwrap())
        .write_to(46 + 6, &mut payload);
    payload.extend_from_slice(b"0200xx");
    let payload = Bytes::from(payload);
    let fut = client.send_raw(payload.clone());
    let got = next_raw(&mut link).await;
    assert_eq!(got, payload);
    let reject = build_reject(&got, RejectCode::UNPARSEABLE, InstId::new(SWITCH).unwrap()).unwrap();
    link.send(Frame::Message(Bytes::from(reject)))
        .await
        .unwrap();
    let received = fut.await.unwrap();
    assert_eq!(received.reject_code(), Some(RejectCode::UNPARSEABLE));
    assert!(!format!("{received:?}").contains("0200xx"));

    // A decodable message sent raw is matched by key like any other.
    let p = client.params(PAN, 300);
    let raw = txn::purchase(&p).unwrap().build().unwrap();
    let fut = client.send_raw(raw);
    let req = Message::decode(next_raw(&mut link).await).unwrap();
    answer(&mut link, &req, ResponseCode::APPROVED).await;
    assert_eq!(
        fut.await.unwrap().response_code(),
        Some(ResponseCode::APPROVED)
    );
}

#[tokio::test]
async fn related_transactions_from_an_answer_and_echoes_from_the_switch() {
    let (client, mut link) = pair().await;
    let p = client.params(PAN, 5000);
    let fut = client.send(txn::purchase(&p).unwrap());
    let req = Message::decode(next_raw(&mut link).await).unwrap();
    let mut resp =
        MessageBuilder::response_to(&req, &[2, 3, 4, 7, 11, 25, 32, 33], ResponseCode::APPROVED);
    resp.set(38, "AB1234");
    link.send(Frame::Message(resp.build().unwrap()))
        .await
        .unwrap();
    let approved = fut.await.unwrap();

    // The switch probes the acquirer: keep-alive ignored, echo answered automatically.
    link.send(Frame::KeepAlive).await.unwrap();
    let mut echo = MessageBuilder::new(
        Mti::NETWORK_REQUEST,
        Header::new(InstId::new(ACQ).unwrap(), InstId::new(SWITCH).unwrap()),
    );
    echo.set(7, "1121093000").set(11, "000777").set(70, "301");
    link.send(Frame::Message(echo.build().unwrap()))
        .await
        .unwrap();
    let echo_answer = Message::decode(next_raw(&mut link).await).unwrap();
    assert_eq!(
        (echo_answer.mti(), echo_answer.stan()),
        (Mti::NETWORK_RESPONSE, Some(777))
    );
    assert_eq!(echo_answer.header().dest.as_str(), SWITCH);

    let orig = Original::from_message(&approved).unwrap();
    assert_eq!(orig.data.mti, Mti::FINANCIAL_REQUEST);
    assert_eq!(orig.auth_code, Some(*b"AB1234"));
    let void_params = p.renewed(client.stans());
    let fut = client.send(txn::void(&void_params, &orig).unwrap());
    let void = Message::decode(next_raw(&mut link).await).unwrap();
    assert_eq!(void.original_data().unwrap().unwrap().stan, p.stan);
    assert_eq!(void.field(38), Some(&b"AB1234"[..]));
    answer(&mut link, &void, ResponseCode::APPROVED).await;
    assert_eq!(fut.await.unwrap().stan(), Some(void_params.stan));
    assert_eq!(client.stats().keepalives, 1);
    assert_eq!(client.stats().echoes_answered, 1);
}

#[tokio::test]
async fn closing_fails_what_is_pending_and_timeouts_are_reported() {
    let (client, mut link) = pair().await;
    let p = client.params(PAN, 1);
    let err = client
        .send_timeout(txn::purchase(&p).unwrap(), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::Timeout(Duration::from_millis(50)));
    let _ = next_raw(&mut link).await;
    assert_eq!(client.in_flight(), 0, "a timed-out request is forgotten");

    let fut = client.send(txn::purchase(&client.params(PAN, 2)).unwrap());
    let raw_fut = client.send_raw(Bytes::from_static(b"junk"));
    let _ = next_raw(&mut link).await;
    drop(link);
    assert_eq!(fut.await.unwrap_err(), ClientError::Closed);
    assert_eq!(raw_fut.await.unwrap_err(), ClientError::Closed);
    tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert!(client.is_closed());
    assert_eq!(
        client
            .send(txn::echo(&client.params(PAN, 0)).unwrap())
            .await
            .unwrap_err(),
        ClientError::Closed
    );
    assert!(matches!(
        client.recv_timeout(WAIT).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn unframed_bytes_reach_the_socket_as_they_are() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(
        AcquirerClient::connect(addr, ACQ, SWITCH),
        listener.accept()
    );
    let client = client.unwrap();
    let mut sock = accepted.unwrap().0;
    client.send_keepalive().unwrap();
    client.write_unframed(Bytes::from_static(b"+12x")).unwrap();
    let mut buf = [0u8; 8];
    tokio::io::AsyncReadExt::read_exact(&mut sock, &mut buf)
        .await
        .unwrap();
    assert_eq!(&buf, b"0000+12x");
    drop(sock);
    tokio::time::timeout(WAIT, client.closed()).await.unwrap();
}
