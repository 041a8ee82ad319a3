//! On-disk format and the replay scanner.
//!
//! A journal is a directory of segment files `journal-NNNNNN.log` (index from 1, zero-padded to
//! six digits, more digits if ever needed). Each segment is:
//!
//! ```text
//! header (24 bytes): magic "CSWJRNL\0" | u32 LE version (1) | u64 LE base_seq | u32 LE crc32
//!                    (crc over the first 20 bytes; base_seq = seq of the segment's first record)
//! record*:           u32 LE payload length | u8 kind | u64 LE seq | payload | u32 LE crc32
//!                    (crc over length, kind, seq and payload)
//! ```
//!
//! Sequence numbers start at 1 and increase by exactly one per record across segments, so any
//! gap or reordering is detectable. Segments are created under a `.tmp` name, header written and
//! fsynced, then renamed, so a segment that exists always has a complete header.
//!
//! Damage is classified by position. Only the last segment can legitimately end mid-write (a
//! crash during the last, unacknowledged batch), so a bad record there — truncated, failing its
//! checksum, or with an impossible length — ends replay as a *torn tail*: everything from it to
//! the end of the file is ignored, never interpreted. The same damage in any earlier segment, a
//! bad header, a sequence gap, or a valid record with the wrong sequence number is
//! [`JournalError::Corrupt`]: those segments were fsynced before the next one was created, so
//! acknowledged records would be lost by skipping.
//!
//! The writer zero-fills the last segment ahead of its data (`zero_fill_ahead`), so it may end
//! in zero bytes: an all-zero tail is the clean end of its data, not a tear. A zero region
//! never decodes as a record (its checksum cannot match). Segments are cut back to their data
//! before the next one is created, so only the last can have such a tail.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, Bytes};

use super::{JournalError, Record, ReplaySummary};

pub(crate) const MAGIC: [u8; 8] = *b"CSWJRNL\0";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 24;
/// length + kind + seq.
pub(crate) const RECORD_HEAD_LEN: usize = 4 + 1 + 8;
/// Framing bytes per record: head plus the trailing crc.
pub(crate) const RECORD_OVERHEAD: usize = RECORD_HEAD_LEN + 4;
/// Largest payload accepted. Far above any switch record; it bounds what a garbage length field
/// can make replay consider.
pub const MAX_PAYLOAD_LEN: usize = 16 << 20;

const PREFIX: &str = "journal-";
const SUFFIX: &str = ".log";
pub(crate) const TMP_SUFFIX: &str = ".log.tmp";

pub(crate) fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{index:06}{SUFFIX}"))
}

pub(crate) fn tmp_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{index:06}{TMP_SUFFIX}"))
}

fn parse_index(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) struct DirListing {
    /// Segments sorted by index.
    pub segments: Vec<(u64, PathBuf)>,
    /// Leftovers of a segment creation interrupted before its rename.
    pub stale_tmp: Vec<PathBuf>,
}

pub(crate) fn list_dir(dir: &Path) -> Result<DirListing, JournalError> {
    let mut segments = Vec::new();
    let mut stale_tmp = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| JournalError::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(index) = parse_index(name, SUFFIX) {
            segments.push((index, entry.path()));
        } else if parse_index(name, TMP_SUFFIX).is_some() {
            stale_tmp.push(entry.path());
        }
    }
    segments.sort_unstable_by_key(|(index, _)| *index);
    Ok(DirListing {
        segments,
        stale_tmp,
    })
}

pub(crate) fn encode_header(base_seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let mut w = &mut h[..];
    w.put_slice(&MAGIC);
    w.put_u32_le(VERSION);
    w.put_u64_le(base_seq);
    let crc = crc32fast::hash(&h[..HEADER_LEN - 4]);
    h[HEADER_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Returns the segment's base sequence number.
pub(crate) fn decode_header(data: &[u8]) -> Result<u64, &'static str> {
    if data.len() < HEADER_LEN {
        return Err("segment shorter than its header");
    }
    let mut r = &data[..HEADER_LEN];
    if r[..MAGIC.len()] != MAGIC {
        return Err("bad segment magic");
    }
    r.advance(MAGIC.len());
    let version = r.get_u32_le();
    let base_seq = r.get_u64_le();
    let crc = r.get_u32_le();
    if crc != crc32fast::hash(&data[..HEADER_LEN - 4]) {
        return Err("segment header checksum mismatch");
    }
    if version != VERSION {
        return Err("unsupported segment version");
    }
    Ok(base_seq)
}

/// Appends one framed record to `buf`. The caller has checked `payload.len() <= MAX_PAYLOAD_LEN`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, kind: u8, seq: u64, payload: &[u8]) {
    let start = buf.len();
    buf.reserve(RECORD_OVERHEAD + payload.len());
    buf.put_u32_le(payload.len() as u32);
    buf.put_u8(kind);
    buf.put_u64_le(seq);
    buf.put_slice(payload);
    let crc = crc32fast::hash(&buf[start..]);
    buf.put_u32_le(crc);
}

/// Decodes the record at `off`. `Ok(None)` at a clean end of data; `Err(reason)` if the bytes at
/// `off` are not a whole, checksum-valid record.
fn decode_record(data: &Bytes, off: usize) -> Result<Option<(Record, usize)>, &'static str> {
    let rest = &data[off..];
    if rest.is_empty() {
        return Ok(None);
    }
    if rest.len() < RECORD_OVERHEAD {
        return Err("truncated record header");
    }
    let mut head = &rest[..RECORD_HEAD_LEN];
    let len = head.get_u32_le() as usize;
    let kind = head.get_u8();
    let seq = head.get_u64_le();
    if len > MAX_PAYLOAD_LEN {
        return Err("record length beyond limit");
    }
    let total = RECORD_OVERHEAD + len;
    if rest.len() < total {
        return Err("truncated record");
    }
    let body_end = RECORD_HEAD_LEN + len;
    let mut crc_bytes = &rest[body_end..total];
    if crc_bytes.get_u32_le() != crc32fast::hash(&rest[..body_end]) {
        return Err("record checksum mismatch");
    }
    let payload = data.slice(off + RECORD_HEAD_LEN..off + body_end);
    Ok(Some((Record { seq, kind, payload }, off + total)))
}

/// Where the last segment's valid data ends, for the writer to continue from.
pub(crate) struct LastSegment {
    pub index: u64,
    pub path: PathBuf,
    pub good_len: u64,
    pub file_len: u64,
    /// Everything from `good_len` to `file_len` is zero bytes (zero-filled ahead, unused).
    pub zero_tail: bool,
    pub records: u64,
}

pub(crate) struct Scan {
    pub summary: ReplaySummary,
    pub last: Option<LastSegment>,
}

fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> JournalError {
    JournalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.into(),
    }
}

/// Reads every segment in order, handing each valid record to `visit`. Does not modify files.
pub(crate) fn scan_segments(
    segments: &[(u64, PathBuf)],
    visit: &mut dyn FnMut(Record),
) -> Result<Scan, JournalError> {
    let mut summary = ReplaySummary {
        next_seq: 1,
        ..ReplaySummary::default()
    };
    let mut last = None;
    let mut prev_index: Option<u64> = None;
    for (i, (index, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        if let Some(prev) = prev_index {
            if *index != prev + 1 {
                return Err(corrupt(
                    path,
                    0,
                    format!("segment {} missing before this one", prev + 1),
                ));
            }
        }
        prev_index = Some(*index);

        // One read per segment into one buffer; payloads are zero-copy slices of it.
        let data = Bytes::from(fs::read(path).map_err(|e| JournalError::io("read", path, e))?);
        let base_seq = decode_header(&data).map_err(|reason| corrupt(path, 0, reason))?;
        if i > 0 && base_seq != summary.next_seq {
            return Err(corrupt(
                path,
                0,
                format!(
                    "segment starts at seq {base_seq}, previous segment ended before seq {}",
                    summary.next_seq
                ),
            ));
        }
        let mut seq = base_seq;
        let mut off = HEADER_LEN;
        let mut records = 0u64;
        let mut zero_tail = false;
        loop {
            match decode_record(&data, off) {
                Ok(None) => break,
                Ok(Some((record, next))) => {
                    if record.seq != seq {
                        return Err(corrupt(
                            path,
                            off,
                            format!("expected seq {seq}, found {}", record.seq),
                        ));
                    }
                    visit(record);
                    seq += 1;
                    records += 1;
                    off = next;
                }
                Err(_) if is_last && data.get(off..).is_some_and(|t| t.iter().all(|b| *b == 0)) => {
                    zero_tail = true;
                    break;
                }
                Err(reason) if is_last => {
                    let torn_bytes = data.len() - off;
                    tracing::warn!(
                        segment = %path.display(),
                        offset = off,
                        torn_bytes,
                        reason,
                        "journal: torn record at the end of the last segment ignored"
                    );
                    summary.torn_records = 1;
                    summary.torn_bytes = torn_bytes as u64;
                    break;
                }
                Err(reason) => return Err(corrupt(path, off, reason)),
            }
        }
        summary.segments += 1;
        summary.records += records;
        summary.bytes += off as u64;
        summary.next_seq = seq;
        if is_last {
            last = Some(LastSegment {
                index: *index,
                path: path.clone(),
                good_len: off as u64,
                file_len: data.len() as u64,
                zero_tail,
                records,
            });
        }
    }
    Ok(Scan { summary, last })
}
