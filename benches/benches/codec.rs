//! Codec benchmarks: decode, encode (`MessageBuilder::build`) and forward (decode, new
//! header, new F11, added F15, encode) for a 0200 purchase, an installment 0200 and an 0820
//! echo, and issuer-sim's answer to the first two. Targets (issue 2): decode and encode under 500 ns, forward under 800 ns.
//!
//! `cargo bench -p benches --bench codec -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use benches::{echo, forward_header, installment, payload, purchase};
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use iso8583::{Message, MessageBuilder};

fn samples() -> [(&'static str, MessageBuilder); 3] {
    [
        ("purchase_0200", purchase()),
        ("installment_0200", installment()),
        ("echo_0820", echo()),
    ]
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, builder) in samples() {
        let raw = payload(&builder);
        // A Bytes clone is a reference count increment, as for a frame from the codec.
        group.bench_function(name, |b| {
            b.iter(|| Message::decode(black_box(raw.clone())).unwrap())
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, builder) in samples() {
        group.bench_function(name, |b| b.iter(|| black_box(&builder).build().unwrap()));
    }
    group.finish();
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    let header = forward_header();
    for (name, builder) in samples() {
        let raw = payload(&builder);
        group.bench_function(name, |b| {
            b.iter(|| {
                let m = Message::decode(black_box(raw.clone())).unwrap();
                let out: Bytes = m
                    .rewrite()
                    .header(header)
                    .set(11, b"000777")
                    .set(15, b"1121")
                    .finish()
                    .unwrap();
                out
            });
        });
    }
    group.finish();
}

/// What issuer-sim does per request: decode it, then make its approval (the request's
/// fields echoed, F39 and F38 added). `NAME` is how issuer-sim makes it, by rewriting the
/// request (`issuer_sim::answer::Reply`); `NAME_builder` builds the same bytes field by
/// field with `MessageBuilder::response_to`, as it did before.
fn answer(c: &mut Criterion) {
    let mut group = c.benchmark_group("answer");
    for (name, builder) in samples().into_iter().take(2) {
        let raw = payload(&builder);
        let reply = issuer_sim::answer::Reply {
            echo: issuer_sim::answer::ECHO_FIELDS,
            code: iso8583::ResponseCode::APPROVED,
            auth_code: Some(*b"123456"),
            balance: None,
            installment: None,
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let m = Message::decode(black_box(raw.clone())).unwrap();
                reply.build(&m).unwrap()
            });
        });
        group.bench_function(format!("{name}_builder"), |b| {
            b.iter(|| {
                let m = Message::decode(black_box(raw.clone())).unwrap();
                let mut a = MessageBuilder::response_to(
                    &m,
                    issuer_sim::answer::ECHO_FIELDS,
                    iso8583::ResponseCode::APPROVED,
                );
                a.set(38, b"123456");
                a.build().unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(codec, decode, encode, forward, answer);
criterion_main!(codec);
