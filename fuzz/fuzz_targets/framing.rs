//! The frame codec over an arbitrary byte stream fed in arbitrary chunks. The first input
//! byte seeds the chunk sizes and the maximum frame size; the rest is the stream. Fed whole
//! or in chunks, the decoder must yield the same frames and the same error, and the frames
//! it yields must re-encode to exactly the bytes it consumed.
#![no_main]

use bytes::BytesMut;
use iso8583::{Frame, FrameCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

/// Frames decoded, the error that stopped the stream, and the bytes consumed.
fn run(
    stream: &[u8],
    max: usize,
    chunks: &mut dyn Iterator<Item = usize>,
) -> (Vec<Frame>, Option<String>, usize) {
    let mut codec = FrameCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    while fed < stream.len() {
        let n = chunks
            .next()
            .unwrap_or(stream.len())
            .clamp(1, stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e.to_string()), fed - buf.len()),
            }
        }
    }
    (frames, None, fed - buf.len())
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let max = 1 + usize::from(seed) * 40; // 1 to 10201; the codec caps it at 9999

    let whole = run(stream, max, &mut std::iter::once(stream.len()));
    // Chunk sizes from a small xorshift generator seeded by the first byte.
    let mut state = u32::from(seed) | 0x9E37_0000;
    let mut sizes = std::iter::from_fn(|| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        Some(1 + (state % 97) as usize)
    });
    let chunked = run(stream, max, &mut sizes);
    let bytewise = run(stream, max, &mut std::iter::repeat(1));
    assert_eq!(whole.0, chunked.0);
    assert_eq!(whole.1, chunked.1);
    assert_eq!(whole.0, bytewise.0);
    assert_eq!(whole.1, bytewise.1);

    // What was decoded re-encodes to what was consumed.
    let mut codec = FrameCodec::new(max);
    let mut out = BytesMut::new();
    for frame in whole.0 {
        codec
            .encode(frame, &mut out)
            .expect("a decoded frame re-encodes");
    }
    assert_eq!(&out[..], &stream[..whole.2]);
});
