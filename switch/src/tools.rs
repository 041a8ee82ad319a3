//! Engineer tools: `switch describe` and `switch encode`.
//!
//! `describe` reads frames as they are on the wire (4-digit length, 46-byte header, body),
//! raw or as hex text, and prints each message with the PAN masked (SPEC.md section 13)
//! unless `--reveal`. `encode` is the reverse: JSON lines of the shape `describe --json`
//! prints, values in full, in; wire frames out. The cores, [`describe_stream`] and
//! [`encode_stream`], work on in-memory buffers so they can be tested without a terminal.

use bytes::BytesMut;
use iso8583::frame::{length_prefix, DEFAULT_MAX_FRAME};
use iso8583::render::{describe_text, from_json, to_json};
use iso8583::{Frame, FrameCodec, Packet};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::codec::Decoder;

/// `switch describe [--hex] [--json] [--reveal] [--max-frame N] [FILE]`
#[derive(clap::Args, Debug, Clone)]
pub struct DescribeArgs {
    /// The input is hex text (whitespace ignored) instead of raw bytes.
    #[arg(long)]
    pub hex: bool,
    /// Print one JSON object per line (the shape `switch encode` reads).
    #[arg(long)]
    pub json: bool,
    /// Show the PAN, tracks, PIN block and other secrets in full. Never paste such output
    /// into a ticket or a log.
    #[arg(long)]
    pub reveal: bool,
    /// Largest frame body accepted, in bytes (a larger length prefix is a framing error).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FRAME)]
    pub max_frame: usize,
    /// Input file (`-` or none: standard input).
    pub file: Option<PathBuf>,
}

/// `switch encode [--hex] [FILE]`
#[derive(clap::Args, Debug, Clone)]
pub struct EncodeArgs {
    /// Write each frame as a line of upper-case hex instead of raw bytes (readable by
    /// `switch describe --hex`).
    #[arg(long)]
    pub hex: bool,
    /// Input file of JSON lines (`-` or none: standard input).
    pub file: Option<PathBuf>,
}

/// What `describe` prints and how it reads its input.
#[derive(Debug, Clone, Copy)]
pub struct DescribeOptions {
    pub hex: bool,
    pub json: bool,
    pub reveal: bool,
    pub max_frame: usize,
}

impl Default for DescribeOptions {
    fn default() -> Self {
        Self {
            hex: false,
            json: false,
            reveal: false,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl From<&DescribeArgs> for DescribeOptions {
    fn from(args: &DescribeArgs) -> Self {
        Self {
            hex: args.hex,
            json: args.json,
            reveal: args.reveal,
            max_frame: args.max_frame,
        }
    }
}

/// `switch describe`: exit 0 if every frame decoded, 1 otherwise.
pub fn describe(args: &DescribeArgs) -> anyhow::Result<ExitCode> {
    let input = read_input(args.file.as_deref())?;
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut err = stderr.lock();
    let result = describe_stream(&input, &DescribeOptions::from(args), &mut out, &mut err)
        .and_then(|clean| {
            out.flush()?;
            Ok(clean)
        });
    exit_code(result)
}

/// `switch encode`: exit 0 if every line encoded, 1 otherwise.
pub fn encode(args: &EncodeArgs) -> anyhow::Result<ExitCode> {
    let input = read_input(args.file.as_deref())?;
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut err = stderr.lock();
    let result = encode_stream(&input, args.hex, &mut out, &mut err).and_then(|clean| {
        out.flush()?;
        Ok(clean)
    });
    exit_code(result)
}

fn exit_code(result: io::Result<bool>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::FAILURE),
        // `switch describe capture | head`: the reader went away; nothing left to say.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::anyhow!("writing output: {e}")),
    }
}

fn read_input(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let mut input = Vec::new();
    match file {
        None => {
            io::stdin().lock().read_to_end(&mut input)?;
        }
        Some(p) if p.as_os_str() == "-" => {
            io::stdin().lock().read_to_end(&mut input)?;
        }
        Some(p) => {
            input = std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        }
    }
    Ok(input)
}

/// Hex text that is not hex. Positions are 1-based line and column of the input text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// A character that is neither a hex digit nor whitespace.
    BadChar {
        line: usize,
        column: usize,
        found: char,
    },
    /// An odd number of hex digits: the last byte is missing a digit.
    OddDigits { count: usize },
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::BadChar {
                line,
                column,
                found,
            } => {
                write!(
                    f,
                    "hex input: line {line}, column {column}: {found:?} is not a hex digit"
                )
            }
            HexError::OddDigits { count } => {
                write!(
                    f,
                    "hex input: odd number of hex digits ({count}): the last byte is incomplete"
                )
            }
        }
    }
}

impl std::error::Error for HexError {}

/// Parse hex text: pairs of hex digits (either case), any ASCII whitespace anywhere
/// (including between the two digits of a byte).
pub fn parse_hex_text(text: &[u8]) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    let mut count = 0usize;
    let (mut line, mut column) = (1usize, 0usize);
    for &b in text {
        column += 1;
        if b == b'\n' {
            line += 1;
            column = 0;
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => {
                return Err(HexError::BadChar {
                    line,
                    column,
                    found: char::from(b),
                })
            }
        };
        count += 1;
        match high.take() {
            None => high = Some(digit),
            Some(h) => out.push(h << 4 | digit),
        }
    }
    if high.is_some() {
        return Err(HexError::OddDigits { count });
    }
    Ok(out)
}

/// Describe every frame of `input` on `out`; errors on `err`. Returns `Ok(true)` when every
/// frame decoded, `Ok(false)` when something was bad (the input, a frame, the framing).
/// A frame whose message does not decode is reported and skipped; a framing error (a bad
/// length prefix, an oversize frame, input ending inside a frame) ends the stream, as it
/// ends a link. `Err` only for a failed write.
pub fn describe_stream(
    input: &[u8],
    opts: &DescribeOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<bool> {
    let bytes = if opts.hex {
        match parse_hex_text(input) {
            Ok(bytes) => bytes,
            Err(e) => {
                writeln!(err, "{e}")?;
                return Ok(false);
            }
        }
    } else {
        input.to_vec()
    };
    let mut codec = FrameCodec::new(opts.max_frame);
    let mut buf = BytesMut::from(&bytes[..]);
    let mut clean = true;
    let mut number = 0usize;
    loop {
        let offset = bytes.len() - buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(Frame::KeepAlive)) => {
                number += 1;
                if opts.json {
                    writeln!(out, "{{\"keep_alive\":true}}")?;
                } else {
                    writeln!(out, "keep-alive")?;
                }
            }
            Ok(Some(Frame::Message(payload))) => {
                number += 1;
                let len = payload.len();
                match Packet::decode(payload) {
                    Ok(packet) if opts.json => {
                        writeln!(out, "{}", ordered_json(&to_json(&packet, opts.reveal)))?;
                    }
                    Ok(packet) => {
                        writeln!(out, "frame {number}: {len} bytes at input offset {offset}")?;
                        write!(out, "{}", describe_text(&packet, opts.reveal))?;
                    }
                    Err(e) => {
                        clean = false;
                        writeln!(err, "frame {number}: {e} (reject code {})", e.reject_code())?;
                    }
                }
            }
            Ok(None) => {
                if !buf.is_empty() {
                    clean = false;
                    writeln!(
                        err,
                        "frame {}: input ends inside a frame ({} bytes left at input offset {offset})",
                        number + 1,
                        buf.len()
                    )?;
                }
                return Ok(clean);
            }
            Err(e) => {
                writeln!(
                    err,
                    "frame {}: framing error at input offset {offset}: {e}; the stream cannot be resynchronised",
                    number + 1
                )?;
                return Ok(false);
            }
        }
    }
}

/// Where a key goes in `describe --json` output: header before MTI before fields, header
/// fields in wire order, field numbers in numeric order (a JSON map would sort "11" before
/// "2").
fn key_rank(key: &str) -> (u8, u32, &str) {
    const ORDER: [&str; 15] = [
        "header",
        "dest",
        "source",
        "flag",
        "reject",
        "length",
        "reserved",
        "batch",
        "txn_info",
        "user_info",
        "mti",
        "fields",
        "original",
        "original_error",
        "original_hex",
    ];
    if let Ok(n) = key.parse::<u32>() {
        return (0, n, "");
    }
    match ORDER.iter().position(|k| *k == key) {
        Some(i) => (1, u32::try_from(i).unwrap_or(u32::MAX), ""),
        None => (2, 0, key),
    }
}

/// Compact JSON text with the keys in the order of [`key_rank`].
fn ordered_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_ordered(value, &mut out);
    out
}

fn write_ordered(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| key_rank(a.0).cmp(&key_rank(b.0)));
            out.push('{');
            for (i, (key, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_ordered(v, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_ordered(v, out);
            }
            out.push(']');
        }
        leaf => out.push_str(&leaf.to_string()),
    }
}

/// Encode JSON lines (the shape of `describe --json`, values in full) into wire frames on
/// `out`: raw (`0289` + payload), or with `hex` one line of upper-case hex per frame.
/// `{"keep_alive":true}` encodes `0000`; blank lines and lines starting with `#` are
/// skipped. A bad line is reported on `err` with its line number and the key at fault and
/// produces no frame; returns `Ok(false)` if any line was bad.
pub fn encode_stream(
    input: &[u8],
    hex: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<bool> {
    let mut clean = true;
    for (index, line) in input.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        match encode_line(line) {
            Ok(frame) if hex => writeln!(out, "{}", ::hex::encode_upper(&frame))?,
            Ok(frame) => out.write_all(&frame)?,
            Err(e) => {
                clean = false;
                writeln!(err, "line {number}: {e}")?;
            }
        }
    }
    Ok(clean)
}

/// One JSON line to one frame, length prefix included.
fn encode_line(line: &[u8]) -> Result<Vec<u8>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    if let Some(keep_alive) = value.get("keep_alive") {
        return match keep_alive.as_bool() {
            Some(true) => Ok(b"0000".to_vec()),
            _ => Err("keep_alive: must be true".into()),
        };
    }
    let payload = from_json(&value).map_err(|e| e.to_string())?;
    if payload.len() > 9999 {
        return Err(format!(
            "the message is {} bytes; a frame holds at most 9999",
            payload.len()
        ));
    }
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&length_prefix(payload.len()));
    frame.extend_from_slice(&payload);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iso8583::{Header, InstId, MessageBuilder, Mti};

    const PAN: &str = "6222020000000123";

    fn purchase(stan: &str) -> Vec<u8> {
        let header = Header::new(
            InstId::new("00010000").unwrap(),
            InstId::new("01030000").unwrap(),
        );
        let mut b = MessageBuilder::new(Mti::FINANCIAL_REQUEST, header);
        b.set(2, PAN)
            .set(3, "000000")
            .set(4, "000000012345")
            .set(7, "1121093000")
            .set(11, stan)
            .set(25, "00")
            .set(32, "01030000")
            .set(33, "01030000")
            .set(35, "6222020000000123=2512201123456")
            .set(41, "TERM0001")
            .set(49, "156")
            .set(52, [0xAB; 8])
            .set(60, "000005000300000");
        b.build().unwrap().to_vec()
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = length_prefix(payload.len()).to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn run_describe(input: &[u8], opts: DescribeOptions) -> (bool, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let clean = describe_stream(input, &opts, &mut out, &mut err).unwrap();
        (
            clean,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn run_encode(input: &str, hex: bool) -> (bool, Vec<u8>, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let clean = encode_stream(input.as_bytes(), hex, &mut out, &mut err).unwrap();
        (clean, out, String::from_utf8(err).unwrap())
    }

    #[test]
    fn hex_text_ignores_whitespace_and_case() {
        assert_eq!(parse_hex_text(b"30 30\n3 0\t2e2E\r\n").unwrap(), b"000..");
        assert_eq!(parse_hex_text(b"").unwrap(), b"");
        assert_eq!(parse_hex_text(b"  \n ").unwrap(), b"");
    }

    #[test]
    fn hex_text_errors_say_where() {
        assert_eq!(
            parse_hex_text(b"3030\n30 3x"),
            Err(HexError::BadChar {
                line: 2,
                column: 5,
                found: 'x'
            })
        );
        assert_eq!(
            parse_hex_text(b"303"),
            Err(HexError::OddDigits { count: 3 })
        );
        let text = HexError::BadChar {
            line: 1,
            column: 3,
            found: 'g',
        }
        .to_string();
        assert!(text.contains("line 1, column 3"), "{text}");
    }

    #[test]
    fn describe_masks_and_prints_every_field() {
        let mut input = framed(&purchase("000001"));
        input.extend_from_slice(b"0000");
        let (clean, out, err) = run_describe(&input, DescribeOptions::default());
        assert!(clean, "{err}");
        assert!(err.is_empty());
        assert!(out.starts_with("frame 1: "), "{out}");
        assert!(out.contains("dest=00010000 source=01030000"), "{out}");
        assert!(out.contains("MTI 0200"));
        assert!(out.contains("622202******0123"));
        assert!(out.contains("Primary account number"));
        assert!(out.contains("F60"));
        assert!(!out.contains(PAN));
        assert!(!out.contains("2512201123456"), "track 2 hidden");
        assert!(!out.contains("ABABAB"), "PIN block hidden");
        assert_eq!(out.lines().last(), Some("keep-alive"));
    }

    #[test]
    fn describe_reveal_shows_everything() {
        let opts = DescribeOptions {
            reveal: true,
            ..DescribeOptions::default()
        };
        let (clean, out, _) = run_describe(&framed(&purchase("000001")), opts);
        assert!(clean);
        assert!(out.contains(PAN));
        assert!(out.contains("6222020000000123=2512201123456"));
        assert!(out.contains("ABABABABABABABAB"));
    }

    #[test]
    fn describe_json_is_one_object_per_line() {
        let mut input = framed(&purchase("000001"));
        input.extend_from_slice(b"0000");
        input.extend_from_slice(&framed(&purchase("000002")));
        let opts = DescribeOptions {
            json: true,
            ..DescribeOptions::default()
        };
        let (clean, out, _) = run_describe(&input, opts);
        assert!(clean);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["mti"], "0200");
        assert_eq!(lines[0]["header"]["dest"], "00010000");
        assert_eq!(lines[0]["header"]["reject"], "00000");
        assert_eq!(lines[0]["fields"]["2"], "622202******0123");
        assert_eq!(lines[0]["fields"]["11"], "000001");
        assert_eq!(lines[1]["keep_alive"], true);
        assert_eq!(lines[2]["fields"]["11"], "000002");
        // Header first, then MTI, then fields in numeric order.
        let first = out.lines().next().unwrap();
        assert!(
            first.starts_with(
                r#"{"header":{"dest":"00010000","source":"01030000","flag":2,"reject":"00000","#
            ),
            "{first}"
        );
        assert!(
            first.contains(r#""mti":"0200","fields":{"2":"622202******0123","3":"000000","4":"#),
            "{first}"
        );
    }

    #[test]
    fn describe_reports_a_bad_frame_and_goes_on() {
        let good = purchase("000001");
        let mut bad = good.clone();
        // F4 starts at 46 + 4 + 8 + (2 + 16) + 6 = 82.
        bad[87] = b'X';
        let mut input = framed(&good);
        input.extend_from_slice(b"0000");
        input.extend_from_slice(&framed(&bad));
        input.extend_from_slice(&framed(&good));
        let (clean, out, err) = run_describe(&input, DescribeOptions::default());
        assert!(!clean);
        assert_eq!(
            err.trim(),
            "frame 3: illegal content at field 4, offset 87 (reject code 10045)"
        );
        assert!(out.contains("frame 1: "));
        assert!(
            out.contains("frame 4: "),
            "decoding goes on after a bad frame: {out}"
        );
        assert!(!out.contains("frame 3"));
    }

    #[test]
    fn describe_stops_at_a_framing_error() {
        let mut input = framed(&purchase("000001"));
        input.extend_from_slice(b"+123");
        input.extend_from_slice(&framed(&purchase("000002")));
        let (clean, out, err) = run_describe(&input, DescribeOptions::default());
        assert!(!clean);
        assert!(out.contains("frame 1: ") && !out.contains("frame 2"));
        assert!(
            err.starts_with("frame 2: framing error at input offset"),
            "{err}"
        );
        assert!(err.contains("not 4 ASCII digits"), "{err}");
    }

    #[test]
    fn describe_reports_truncated_input_and_oversize_frames() {
        let frame = framed(&purchase("000001"));
        let (clean, _, err) = run_describe(&frame[..100], DescribeOptions::default());
        assert!(!clean);
        assert!(
            err.contains("frame 1: input ends inside a frame (100 bytes left"),
            "{err}"
        );

        let opts = DescribeOptions {
            max_frame: 100,
            ..DescribeOptions::default()
        };
        let (clean, _, err) = run_describe(&frame, opts);
        assert!(!clean);
        assert!(err.contains("exceeds the maximum of 100"), "{err}");
    }

    #[test]
    fn describe_hex_input() {
        let frame = framed(&purchase("000001"));
        let text: String = ::hex::encode_upper(&frame)
            .as_bytes()
            .chunks(32)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let opts = DescribeOptions {
            hex: true,
            ..DescribeOptions::default()
        };
        let (clean, out, _) = run_describe(text.as_bytes(), opts);
        assert!(clean);
        assert!(out.contains("622202******0123"));

        let (clean, out, err) = run_describe(b"0000 zz", opts);
        assert!(!clean && out.is_empty());
        assert!(err.contains("line 1, column 6"), "{err}");
    }

    #[test]
    fn describe_shows_a_reject_and_its_original() {
        let mut bad = purchase("000001");
        bad[87] = b'X';
        let reject = iso8583::build_reject(
            &bad,
            iso8583::RejectCode(*b"10045"),
            InstId::new("00010000").unwrap(),
        )
        .unwrap();
        let (clean, out, err) = run_describe(&framed(&reject), DescribeOptions::default());
        assert!(clean, "a reject is a valid packet: {err}");
        assert!(out.contains("REJECT 10045"), "{out}");
        assert!(out.contains("field 4, offset 87"), "{out}");
    }

    #[test]
    fn encode_then_describe_round_trips() {
        let payloads = [purchase("000001"), purchase("000002")];
        let mut wire = framed(&payloads[0]);
        wire.extend_from_slice(b"0000");
        wire.extend_from_slice(&framed(&payloads[1]));
        // describe --json --reveal gives the values in full ...
        let opts = DescribeOptions {
            json: true,
            reveal: true,
            ..DescribeOptions::default()
        };
        let (clean, json, _) = run_describe(&wire, opts);
        assert!(clean);
        // ... which encode turns back into the same bytes.
        let (clean, encoded, err) = run_encode(&json, false);
        assert!(clean, "{err}");
        assert_eq!(encoded, wire);
        // And as hex lines, readable by describe --hex.
        let (clean, hex_lines, _) = run_encode(&json, true);
        assert!(clean);
        assert_eq!(
            String::from_utf8(hex_lines.clone())
                .unwrap()
                .lines()
                .count(),
            3
        );
        let opts = DescribeOptions {
            hex: true,
            json: true,
            reveal: true,
            ..DescribeOptions::default()
        };
        let (clean, again, _) = run_describe(&hex_lines, opts);
        assert!(clean);
        assert_eq!(again, json);
    }

    #[test]
    fn encode_hand_written_line() {
        let line = r#"
# a sign-on, written by hand
{"header":{"dest":"00010000","source":"01020000"},"mti":"0820","fields":{"7":"1121080000","11":"000001","70":"001"}}
"#;
        let (clean, out, err) = run_encode(line, false);
        assert!(clean, "{err}");
        assert_eq!(&out[..4], b"0085");
        let m = iso8583::Message::decode(bytes::Bytes::from(out[4..].to_vec())).unwrap();
        assert_eq!(m.network_code(), Some(1));
        assert_eq!(m.header().source.as_str(), "01020000");
    }

    #[test]
    fn encode_errors_name_the_line_and_the_key() {
        let input = [
            r#"{"header":{"dest":"00010000","source":"01030000"},"mti":"0200","fields":{"4":"12x"}}"#,
            r#"{"header":{"dest":"00010000","source":"01030000"},"mti":"0200","fields":{"4":"00000000001X"}}"#,
            r#"{"header":{"dest":"00010000"},"mti":"0200","fields":{}}"#,
            r#"{"header":{"dest":"00010000","source":"01030000"},"mti":"0200","fields":{"8":"1"}}"#,
            r#"{"header":{"dest":"00010000","source":"01030000"},"mti":"02x0","fields":{}}"#,
            r#"{"header":{"dest":"00010000","source":"01030000"},"mti":"0200","fields":{"52":"zz"}}"#,
            "not json",
            r#"{"keep_alive":false}"#,
            r#"{"header":{"dest":"00010000","source":"01030000"},"mti":"0820","fields":{"70":"301"}}"#,
        ]
        .join("\n");
        let (clean, out, err) = run_encode(&input, false);
        assert!(!clean);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 8, "{err}");
        assert!(
            lines[0].starts_with("line 1: field 4: length 3"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("line 2: field 4: illegal content at value offset 11"),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], "line 3: source is missing");
        assert!(lines[3].starts_with("line 4: fields.8:"), "{}", lines[3]);
        assert!(lines[4].starts_with("line 5: mti:"), "{}", lines[4]);
        assert!(lines[5].starts_with("line 6: fields.52:"), "{}", lines[5]);
        assert!(lines[6].starts_with("line 7: not JSON"), "{}", lines[6]);
        assert_eq!(lines[7], "line 8: keep_alive: must be true");
        // The good line still produced its frame.
        assert_eq!(&out[..4], b"0069");
    }
}
