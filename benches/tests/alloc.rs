//! Allocation counts of the hot paths, measured with a counting global allocator: decoding
//! a message allocates nothing (it keeps offsets into the shared frame buffer), splitting
//! frames off a read buffer allocates nothing, and a forwarding rewrite allocates exactly
//! once (its output buffer, sized exactly).
//!
//! One test function on purpose: the counter is process-wide, and the test harness runs
//! test functions on parallel threads. Each count is the least of several runs, so a stray
//! allocation by another thread of the harness cannot make a clean path look dirty, while
//! a path that allocates does so in every run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use benches::{echo, forward_header, installment, payload, purchase};
use bytes::{Bytes, BytesMut};
use iso8583::{Frame, FrameCodec, Message, Packet};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::hint::black_box;
use tokio_util::codec::Decoder;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const RUNS: usize = 5;

/// Allocations (and reallocations) made by `f` on what `setup` prepared (setup not
/// counted), the least over a few runs.
fn allocations<T>(mut setup: impl FnMut() -> T, mut f: impl FnMut(T)) -> usize {
    (0..RUNS)
        .map(|_| {
            let input = setup();
            let region = Region::new(GLOBAL);
            f(input);
            let stats = region.change();
            stats.allocations + stats.reallocations
        })
        .min()
        .unwrap()
}

/// A read buffer holding `count` frames of `payload`, already promoted to shared storage
/// (the first split off a buffer allocates its shared header once; one frame is taken).
fn read_buffer(payload: &Bytes, count: usize) -> (FrameCodec, BytesMut) {
    let mut wire = Vec::new();
    for _ in 0..=count {
        wire.extend_from_slice(format!("{:04}", payload.len()).as_bytes());
        wire.extend_from_slice(payload);
    }
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(&wire[..]);
    let first = codec.decode(&mut buf).unwrap();
    assert!(matches!(first, Some(Frame::Message(_))));
    (codec, buf)
}

#[test]
fn codec_hot_paths_allocate_as_documented() {
    let samples = [
        ("0200 purchase", purchase()),
        ("0200 installment", installment()),
        ("0820 echo", echo()),
    ];
    for (name, builder) in samples {
        let raw = payload(&builder);
        // Promote the buffer to shared once (a frame split off a read buffer already is), so
        // the clones below are reference count increments.
        drop(raw.clone());

        let n = allocations(
            || (),
            |()| {
                for _ in 0..100 {
                    let m = Message::decode(black_box(raw.clone())).unwrap();
                    black_box((m.amount(), m.pan(), m.stan(), m.acquirer_id()));
                }
            },
        );
        assert_eq!(n, 0, "{name}: Message::decode allocated");

        let n = allocations(
            || (),
            |()| {
                black_box(Packet::decode(black_box(raw.clone())).unwrap());
            },
        );
        assert_eq!(n, 0, "{name}: Packet::decode allocated");

        let n = allocations(
            || read_buffer(&raw, 32),
            |(mut codec, mut buf)| {
                let mut frames = 0;
                while let Ok(Some(Frame::Message(payload))) = codec.decode(&mut buf) {
                    let m = Message::decode(payload).unwrap();
                    black_box(m.stan());
                    frames += 1;
                }
                assert_eq!(frames, 32);
            },
        );
        assert_eq!(
            n, 0,
            "{name}: framing + decoding from a read buffer allocated"
        );

        let m = Message::decode(raw.clone()).unwrap();
        let header = forward_header();
        let n = allocations(
            || (),
            |()| {
                let out = m
                    .rewrite()
                    .header(header)
                    .set(11, b"000777")
                    .set(15, b"1121")
                    .finish()
                    .unwrap();
                black_box(out);
            },
        );
        assert_eq!(
            n, 1,
            "{name}: a forwarding rewrite allocates more than its output buffer"
        );
    }
}
