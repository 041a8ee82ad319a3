//! Framing (SPEC.md section 2): 4 ASCII decimal digits giving the number of bytes that
//! follow, then that many bytes. `0000` is a keep-alive probe.
//!
//! A bad length prefix cannot be resynchronised, so it is an error that ends the link; the
//! decoder says so and the connection layer closes and counts.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Default maximum frame body (configurable).
pub const DEFAULT_MAX_FRAME: usize = 2048;

/// One item read from a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `0000`: idle probe; discarded, never answered.
    KeepAlive,
    /// A frame payload: header and body.
    Message(Bytes),
}

/// Why a stream cannot be read any further.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// The 4 bytes of the length prefix were not all ASCII digits. Shown as hex: they are
    /// not a field value.
    #[error("length prefix is not 4 ASCII digits (bytes {})", hex::encode_upper(.0))]
    BadPrefix([u8; 4]),
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Length-prefix codec for tokio-util `Framed` streams.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    /// Largest accepted body; larger frames are a framing error.
    max_len: usize,
}

impl FrameCodec {
    #[must_use]
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len: max_len.min(9999),
        }
    }

    #[must_use]
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

/// Parse a 4-byte length prefix. Only `0`-`9` are digits: no sign, no space.
#[must_use]
pub fn parse_prefix(prefix: [u8; 4]) -> Option<usize> {
    prefix.iter().try_fold(0usize, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + usize::from(b - b'0'))
    })
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        let Some(prefix) = src.get(..4).and_then(|p| <[u8; 4]>::try_from(p).ok()) else {
            return Ok(None);
        };
        let len = parse_prefix(prefix).ok_or(FramingError::BadPrefix(prefix))?;
        if len > self.max_len {
            return Err(FramingError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        if len == 0 {
            src.advance(4);
            return Ok(Some(Frame::KeepAlive));
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(Frame::Message(src.split_to(len).freeze())))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FramingError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), FramingError> {
        match item {
            Frame::KeepAlive => {
                dst.put_slice(b"0000");
                Ok(())
            }
            Frame::Message(body) => self.encode(body, dst),
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FramingError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FramingError> {
        write_frame(&body, self.max_len, dst)
    }
}

/// The 4 ASCII digits for a length up to 9999.
#[must_use]
pub fn length_prefix(len: usize) -> [u8; 4] {
    let len = len % 10_000;
    [
        b'0' + (len / 1000) as u8,
        b'0' + (len / 100 % 10) as u8,
        b'0' + (len / 10 % 10) as u8,
        b'0' + (len % 10) as u8,
    ]
}

/// Append `body` with its length prefix to `dst`.
pub fn write_frame(body: &[u8], max_len: usize, dst: &mut BytesMut) -> Result<(), FramingError> {
    let len = body.len();
    if len > max_len.min(9999) {
        return Err(FramingError::TooLarge { len, max: max_len });
    }
    dst.reserve(4 + len);
    dst.put_slice(&length_prefix(len));
    dst.put_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], max: usize) -> (Vec<Frame>, Option<String>) {
        let mut codec = FrameCodec::new(max);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }

    #[test]
    fn frames_and_keepalives() {
        let (frames, err) = decode_all(b"0003abc00000002hi0001", 2048);
        assert_eq!(err, None);
        assert_eq!(
            frames,
            vec![
                Frame::Message(Bytes::from_static(b"abc")),
                Frame::KeepAlive,
                Frame::Message(Bytes::from_static(b"hi")),
            ]
        );
    }

    #[test]
    fn strict_prefix_digits() {
        for bad in [&b"+123"[..], b" 123", b"-001", b"12a4", b"\x000012"] {
            let (frames, err) = decode_all(bad, 2048);
            assert!(frames.is_empty());
            assert!(err.unwrap().contains("not 4 ASCII digits"), "{bad:?}");
        }
    }

    #[test]
    fn oversize_is_an_error() {
        let (_, err) = decode_all(b"2049", 2048);
        assert!(err.unwrap().contains("exceeds"));
        let (frames, err) = decode_all(b"0005abcde", 5);
        assert_eq!((frames.len(), err), (1, None));
    }

    #[test]
    fn encode_writes_prefix() {
        let mut codec = FrameCodec::default();
        let mut dst = BytesMut::new();
        codec
            .encode(Bytes::from_static(b"hello"), &mut dst)
            .unwrap();
        codec.encode(Frame::KeepAlive, &mut dst).unwrap();
        assert_eq!(&dst[..], b"0005hello0000");
        assert!(codec
            .encode(Bytes::from(vec![0u8; 3000]), &mut dst)
            .is_err());
    }
}
