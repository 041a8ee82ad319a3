//! BIN routing table (SPEC.md section 9 rule 2): longest-prefix match of a PAN's leading
//! digits against configured BIN prefixes of 6 to 12 digits, giving the issuer institution,
//! the card type and whether the card range is open for installments.
//!
//! This module owns the table's data structure, its CSV loader and its lookup. It is sans-I/O
//! apart from [`BinTable::load_csv`] / [`read_csv`] (reading one file at load time); it knows
//! nothing about actors, sockets or the rest of the configuration. Checking that each row's
//! issuer is a configured issuer institution is done by `config.rs`, which owns the
//! institutions; that is why parsing ([`read_csv`]) and building ([`BinTable::from_rows`]) are
//! separate steps.
//!
//! Design (ARCHITECTURE.md principle 3): every prefix `p` of length `L` covers the interval
//! `[p * 10^(12-L), (p+1) * 10^(12-L) - 1]` of 12-digit leading numbers. Prefix intervals are
//! laminar (two of them are either disjoint or nested), so at build time they are flattened
//! into sorted, disjoint segments, each pointing at the most specific prefix covering it. A
//! lookup converts the PAN's first 12 digits to a `u64` and does one binary search: no
//! allocation, no hashing, no string comparison on the hot path.
//!
//! A PAN shorter than 12 digits (6..=11) must only match prefixes not longer than itself. Each
//! prefix therefore records its parent (the longest shorter prefix containing it); the lookup
//! walks at most six parent links up from the most specific segment owner.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::config::InstitutionId;

/// Shortest BIN prefix accepted (SPEC 9 rule 2).
pub const MIN_PREFIX_LEN: usize = 6;
/// Longest BIN prefix accepted; also the number of leading PAN digits the lookup uses.
pub const MAX_PREFIX_LEN: usize = 12;

/// `10^i` for `i` in `0..=12`, to scale prefixes and short PANs onto the 12-digit line.
const POW10: [u64; MAX_PREFIX_LEN + 1] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
];

/// Sentinel "no parent" index in [`PrefixEntry::parent`].
const NO_PARENT: u32 = u32::MAX;

/// Card type of a BIN range, as listed in the BIN table (`debit`, `credit`, `prepaid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardType {
    /// Debit card.
    Debit,
    /// Credit card (quasi-credit included).
    Credit,
    /// Prepaid card.
    Prepaid,
}

impl CardType {
    /// The lowercase name used in the CSV file and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CardType::Debit => "debit",
            CardType::Credit => "credit",
            CardType::Prepaid => "prepaid",
        }
    }

    /// Parses `debit`, `credit` or `prepaid` (ASCII case-insensitive).
    pub fn parse(s: &str) -> Option<CardType> {
        [CardType::Debit, CardType::Credit, CardType::Prepaid]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for CardType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a BIN lookup yields: where to route and what the card range allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BinRoute {
    /// Issuer institution the request is routed to.
    pub issuer: InstitutionId,
    /// Card type of the range (fee schedules and clearing use it).
    pub card_type: CardType,
    /// Card range open for installments (SPEC 9 rule 5; the issuer must be enabled too).
    pub installment: bool,
}

/// A validated BIN prefix: 6 to 12 ASCII digits, kept as number + length so that leading
/// zeros survive (`000123` and `0000123` are different prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BinPrefix {
    value: u64,
    len: u8,
}

impl BinPrefix {
    /// Parses a prefix; the error is a human-readable reason.
    pub fn parse(s: &str) -> Result<BinPrefix, String> {
        if !(MIN_PREFIX_LEN..=MAX_PREFIX_LEN).contains(&s.len()) {
            return Err(format!(
                "BIN prefix {s:?} has {} characters; must be {MIN_PREFIX_LEN} to \
                 {MAX_PREFIX_LEN} digits",
                s.chars().count()
            ));
        }
        let mut value: u64 = 0;
        for b in s.bytes() {
            if !b.is_ascii_digit() {
                return Err(format!("BIN prefix {s:?} must contain only digits 0-9"));
            }
            value = value * 10 + u64::from(b - b'0');
        }
        // Length checked above to be at most 12, so it fits in a u8.
        let len = s.len() as u8;
        Ok(BinPrefix { value, len })
    }

    /// Number of digits (6..=12).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false (a prefix has at least 6 digits); present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inclusive interval of 12-digit leading numbers covered by this prefix.
    fn range(&self) -> (u64, u64) {
        let scale = POW10.get(MAX_PREFIX_LEN - self.len()).copied().unwrap_or(1);
        let start = self.value * scale;
        (start, start + (scale - 1))
    }

    /// Whether `pan` starts with this prefix (plain digit comparison; used by tests and
    /// diagnostics, not by the lookup).
    pub fn is_prefix_of(&self, pan: &[u8]) -> bool {
        let text = self.to_string();
        pan.starts_with(text.as_bytes())
    }
}

impl fmt::Display for BinPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.value, width = self.len())
    }
}

/// One parsed row of the BIN table file, with the line it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinRow {
    /// 1-based line number in the source file (0 for rows not read from a file).
    pub line: u64,
    /// The BIN prefix.
    pub prefix: BinPrefix,
    /// Where PANs under this prefix go.
    pub route: BinRoute,
}

/// A BIN table load error: which file, where in it (column `prefix`, `issuer`, `card_type`
/// or `installment`), and why.
pub type BinError = crate::datafile::DataFileError;

/// Per-prefix data kept for the lookup: the route and the parent chain for short PANs.
#[derive(Debug, Clone, Copy)]
struct PrefixEntry {
    /// Prefix length in digits.
    len: u8,
    /// Index of the longest shorter prefix containing this one, or [`NO_PARENT`].
    parent: u32,
    /// Index into [`BinTable::routes`].
    route: u32,
}

/// The BIN routing table: an immutable snapshot built once, then shared (behind `Arc` /
/// `arc-swap`) by every connection. Cheap lookups, no interior mutability.
#[derive(Clone, Default)]
pub struct BinTable {
    /// Segment starts, strictly increasing; binary-searched on every lookup. Kept apart from
    /// `ends`/`owners` so the search touches one dense array.
    starts: Vec<u64>,
    /// Segment ends (inclusive); `ends[i] < starts[i + 1]`.
    ends: Vec<u64>,
    /// Most specific prefix (index into `prefixes`) covering each segment.
    owners: Vec<u32>,
    /// One entry per configured prefix.
    prefixes: Vec<PrefixEntry>,
    /// Distinct routes; many prefixes share one (same issuer, card type, flag).
    routes: Vec<BinRoute>,
}

impl fmt::Debug for BinTable {
    // Summarise: a derived Debug would print every segment of a 100,000-row table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinTable")
            .field("prefixes", &self.prefixes.len())
            .field("segments", &self.starts.len())
            .field("routes", &self.routes.len())
            .finish()
    }
}

impl BinTable {
    /// An empty table: every lookup misses (SPEC: response code `15`).
    pub fn empty() -> BinTable {
        BinTable::default()
    }

    /// Reads and builds a table from a CSV file in one step (no issuer validation; the
    /// configuration loader uses [`read_csv`] + [`BinTable::from_rows`] to validate in
    /// between).
    pub fn load_csv(path: &Path) -> Result<BinTable, BinError> {
        let rows = read_csv(path)?;
        BinTable::from_rows(&rows, path)
    }

    /// Builds the table from parsed rows. `file` only labels errors. Fails on a prefix listed
    /// twice (even with the same route: a duplicate usually hides an editing mistake).
    pub fn from_rows(rows: &[BinRow], file: &Path) -> Result<BinTable, BinError> {
        let too_many = || BinError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            reason: format!("too many rows ({}); at most {}", rows.len(), u32::MAX - 1),
        };
        if rows.len() >= NO_PARENT as usize {
            return Err(too_many());
        }

        // Deduplicate routes: the per-prefix entry then costs 12 bytes regardless of the
        // route's size, and the route vector stays small enough to sit in cache.
        let mut routes: Vec<BinRoute> = Vec::new();
        let mut route_index: HashMap<BinRoute, u32> = HashMap::new();
        let mut prefixes: Vec<PrefixEntry> = Vec::with_capacity(rows.len());
        let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(rows.len());
        for row in rows {
            let route = match route_index.get(&row.route) {
                Some(&i) => i,
                None => {
                    let i = u32::try_from(routes.len()).map_err(|_| too_many())?;
                    routes.push(row.route);
                    route_index.insert(row.route, i);
                    i
                }
            };
            prefixes.push(PrefixEntry {
                len: row.prefix.len,
                parent: NO_PARENT,
                route,
            });
            ranges.push(row.prefix.range());
        }

        // Order prefixes by start, and containers before what they contain (a shorter prefix
        // with the same start is wider). Equal (start, len) means the same prefix twice.
        let mut order: Vec<u32> = (0..rows.len() as u32).collect();
        order.sort_unstable_by_key(|&i| {
            let i = i as usize;
            (
                ranges.get(i).map_or(0, |r| r.0),
                prefixes.get(i).map_or(0, |p| p.len),
            )
        });
        for pair in order.windows(2) {
            let (a, b) = match pair {
                [a, b] => (*a as usize, *b as usize),
                _ => continue,
            };
            if let (Some(ra), Some(rb)) = (rows.get(a), rows.get(b)) {
                if ra.prefix == rb.prefix {
                    let (first, second) = if ra.line <= rb.line {
                        (ra, rb)
                    } else {
                        (rb, ra)
                    };
                    return Err(BinError {
                        file: file.to_path_buf(),
                        line: Some(second.line),
                        column: Some("prefix"),
                        reason: format!(
                            "duplicate BIN prefix {} (already listed at line {})",
                            second.prefix, first.line
                        ),
                    });
                }
            }
        }

        let mut builder = SegmentBuilder::with_capacity(rows.len());
        // Stack of open prefixes, each nested in the one below it (laminar intervals).
        let mut stack: Vec<(u32, u64)> = Vec::new();
        for &idx in &order {
            let (start, end) = ranges.get(idx as usize).copied().unwrap_or((0, 0));
            // Close every open prefix that ends before this one starts.
            while let Some(&(top, top_end)) = stack.last() {
                if top_end >= start {
                    break;
                }
                builder.emit_until(top_end, top);
                stack.pop();
            }
            if let Some(&(top, _)) = stack.last() {
                // `top` contains this prefix: it owns the gap before it, and is its parent.
                if start > 0 {
                    builder.emit_until(start - 1, top);
                }
                if let Some(entry) = prefixes.get_mut(idx as usize) {
                    entry.parent = top;
                }
            }
            builder.cursor = start;
            stack.push((idx, end));
        }
        while let Some((top, top_end)) = stack.pop() {
            builder.emit_until(top_end, top);
        }

        Ok(BinTable {
            starts: builder.starts,
            ends: builder.ends,
            owners: builder.owners,
            prefixes,
            routes,
        })
    }

    /// Longest-prefix match of `pan` (ASCII digits). Returns `None` when the PAN has fewer
    /// than 6 digits, contains a non-digit, or no configured prefix matches. A PAN of 6..=11
    /// digits only matches prefixes no longer than itself. Allocation-free.
    pub fn lookup(&self, pan: &[u8]) -> Option<&BinRoute> {
        let pan_len = pan.len();
        if pan_len < MIN_PREFIX_LEN || !pan.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let take = pan_len.min(MAX_PREFIX_LEN);
        let mut key: u64 = 0;
        for &b in pan.iter().take(take) {
            key = key * 10 + u64::from(b - b'0');
        }
        key *= POW10.get(MAX_PREFIX_LEN - take).copied().unwrap_or(1);

        let seg = self.starts.partition_point(|&s| s <= key).checked_sub(1)?;
        if key > *self.ends.get(seg)? {
            return None;
        }
        let mut entry = self.prefixes.get(*self.owners.get(seg)? as usize)?;
        // Short PAN: the segment's owner may be longer than the PAN (its extra digits matched
        // the zero padding only). Walk up to the longest prefix that fits.
        while usize::from(entry.len) > pan_len {
            entry = self.prefixes.get(entry.parent as usize)?;
        }
        self.routes.get(entry.route as usize)
    }

    /// Number of configured prefixes.
    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// True when no prefix is configured.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// Number of disjoint segments the prefixes were flattened into (metrics, diagnostics).
    pub fn segment_count(&self) -> usize {
        self.starts.len()
    }

    /// The distinct routes present in the table.
    pub fn routes(&self) -> &[BinRoute] {
        &self.routes
    }
}

/// Accumulates disjoint segments in increasing order. `cursor` is the first number not yet
/// assigned to a segment.
struct SegmentBuilder {
    starts: Vec<u64>,
    ends: Vec<u64>,
    owners: Vec<u32>,
    cursor: u64,
}

impl SegmentBuilder {
    fn with_capacity(n: usize) -> SegmentBuilder {
        // A prefix contributes at most two segments (before and after its children).
        SegmentBuilder {
            starts: Vec::with_capacity(n * 2),
            ends: Vec::with_capacity(n * 2),
            owners: Vec::with_capacity(n * 2),
            cursor: 0,
        }
    }

    /// Assigns `[cursor, end]` to `owner` (if non-empty) and moves the cursor past `end`.
    fn emit_until(&mut self, end: u64, owner: u32) {
        if self.cursor <= end {
            self.starts.push(self.cursor);
            self.ends.push(end);
            self.owners.push(owner);
        }
        self.cursor = self.cursor.max(end.saturating_add(1));
    }
}

/// Column names of the CSV file, in the canonical order.
const COLUMNS: [&str; 4] = ["prefix", "issuer", "card_type", "installment"];

/// Reads a BIN table CSV file into rows (see [`parse_csv`] for the format).
pub fn read_csv(path: &Path) -> Result<Vec<BinRow>, BinError> {
    // Read whole: line numbers are derived from byte offsets (see `LineCounter`), and even
    // 100,000 rows are only a few megabytes.
    let data = std::fs::read(path).map_err(|e| BinError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        reason: format!("cannot open: {e}"),
    })?;
    parse_csv(&data, path)
}

/// Maps byte offsets to 1-based line numbers. The csv crate's own line counter does not count
/// comment and blank lines, so it would point operators at the wrong line; byte offsets are
/// exact. Offsets are queried in increasing order, so counting is incremental (linear overall).
struct LineCounter<'a> {
    data: &'a [u8],
    offset: usize,
    line: u64,
}

impl LineCounter<'_> {
    fn line_at(&mut self, offset: u64) -> u64 {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        if offset < self.offset {
            // Out-of-order query (not expected): recount from the start.
            self.offset = 0;
            self.line = 1;
        }
        let newlines = self
            .data
            .get(self.offset..offset)
            .map_or(0, |s| s.iter().filter(|&&b| b == b'\n').count());
        self.line += newlines as u64;
        self.offset = offset;
        self.line
    }

    /// Line of the record whose read started at `offset`. csv reports the position where it
    /// started reading, i.e. before the blank and `#` comment lines it skipped; skip them too.
    fn record_line(&mut self, offset: u64) -> u64 {
        self.line_at(offset);
        loop {
            let rest = self.data.get(self.offset..).unwrap_or_default();
            let skip = match rest.first() {
                Some(b'\n') => 1,
                Some(b'\r') if rest.get(1) == Some(&b'\n') => 2,
                Some(b'#') => rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1),
                _ => break,
            };
            let ends_line = rest.get(skip - 1) == Some(&b'\n');
            self.offset += skip;
            if ends_line {
                self.line += 1;
            } else {
                break;
            }
        }
        self.line
    }
}

/// Parses BIN table CSV text. `file` only labels errors.
///
/// Format: a header naming the four columns `prefix,issuer,card_type,installment` (any order,
/// no others), then one row per prefix. Fields are trimmed; lines starting with `#` are
/// comments; blank lines are skipped. `installment` is `true`/`false` or `Y`/`N`
/// (case-insensitive).
pub fn parse_csv(data: &[u8], file: &Path) -> Result<Vec<BinRow>, BinError> {
    let err = |line: Option<u64>, column: Option<&'static str>, reason: String| BinError {
        file: file.to_path_buf(),
        line,
        column,
        reason,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        // Field counts are checked here, to name the line and the expected columns.
        .flexible(true)
        .from_reader(data);
    let mut lines = LineCounter {
        data,
        offset: 0,
        line: 1,
    };

    let csv_err = |e: csv::Error, lines: &mut LineCounter| {
        let line = e.position().map(|p| lines.record_line(p.byte()));
        err(line, None, format!("malformed CSV: {e}"))
    };

    // Map each canonical column to its position in the file's header.
    let headers = match rdr.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(csv_err(e, &mut lines)),
    };
    let header_line = lines.record_line(headers.position().map_or(0, |p| p.byte()));
    if headers.is_empty() {
        return Err(err(
            None,
            None,
            format!("empty file: expected a header line `{}`", COLUMNS.join(",")),
        ));
    }
    let mut pos = [usize::MAX; 4];
    for (i, h) in headers.iter().enumerate() {
        let name = String::from_utf8_lossy(h);
        match COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(&name)) {
            Some(c) if pos.get(c) == Some(&usize::MAX) => {
                if let Some(slot) = pos.get_mut(c) {
                    *slot = i;
                }
            }
            Some(_) => {
                return Err(err(
                    Some(header_line),
                    None,
                    format!("header lists column {name:?} twice"),
                ))
            }
            None => {
                return Err(err(
                    Some(header_line),
                    None,
                    format!(
                        "unknown column {name:?} in header; expected exactly `{}`",
                        COLUMNS.join(",")
                    ),
                ))
            }
        }
    }
    if let Some(missing) = COLUMNS
        .iter()
        .zip(pos.iter())
        .find(|(_, p)| **p == usize::MAX)
    {
        return Err(err(
            Some(header_line),
            None,
            format!(
                "header lacks column {:?}; expected `{}`",
                missing.0,
                COLUMNS.join(",")
            ),
        ));
    }
    let [p_prefix, p_issuer, p_type, p_inst] = pos;

    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_err(e, &mut lines)),
        }
        let line = lines.record_line(record.position().map_or(0, |p| p.byte()));
        if record.len() != COLUMNS.len() {
            return Err(err(
                Some(line),
                None,
                format!(
                    "expected {} fields ({}), found {}",
                    COLUMNS.len(),
                    COLUMNS.join(","),
                    record.len()
                ),
            ));
        }
        let field = |p: usize, col: &'static str| -> Result<&str, BinError> {
            let bytes = record.get(p).unwrap_or_default();
            let text = std::str::from_utf8(bytes)
                .map_err(|_| err(Some(line), Some(col), "not valid UTF-8".to_string()))?;
            if text.is_empty() {
                return Err(err(Some(line), Some(col), "empty value".to_string()));
            }
            Ok(text)
        };

        let prefix = BinPrefix::parse(field(p_prefix, "prefix")?)
            .map_err(|reason| err(Some(line), Some("prefix"), reason))?;
        let issuer_text = field(p_issuer, "issuer")?;
        let issuer = InstitutionId::parse(issuer_text).map_err(|reason| {
            err(
                Some(line),
                Some("issuer"),
                format!("issuer {issuer_text:?}: {reason}"),
            )
        })?;
        let type_text = field(p_type, "card_type")?;
        let card_type = CardType::parse(type_text).ok_or_else(|| {
            err(
                Some(line),
                Some("card_type"),
                format!("card type {type_text:?} must be debit, credit or prepaid"),
            )
        })?;
        let inst_text = field(p_inst, "installment")?;
        let installment = parse_flag(inst_text).ok_or_else(|| {
            err(
                Some(line),
                Some("installment"),
                format!("installment flag {inst_text:?} must be true, false, Y or N"),
            )
        })?;
        rows.push(BinRow {
            line,
            prefix,
            route: BinRoute {
                issuer,
                card_type,
                installment,
            },
        });
    }
    Ok(rows)
}

/// `true`/`false`/`Y`/`N`, ASCII case-insensitive.
fn parse_flag(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("y") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("n") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> InstitutionId {
        InstitutionId::parse(s).unwrap()
    }

    fn row(prefix: &str, issuer: &str, card_type: CardType, installment: bool) -> BinRow {
        BinRow {
            line: 0,
            prefix: BinPrefix::parse(prefix).unwrap(),
            route: BinRoute {
                issuer: id(issuer),
                card_type,
                installment,
            },
        }
    }

    fn table(rows: &[BinRow]) -> BinTable {
        BinTable::from_rows(rows, Path::new("test.csv")).unwrap()
    }

    /// The reference semantics: scan every prefix, keep the longest that the PAN starts with.
    fn naive<'a>(rows: &'a [BinRow], pan: &[u8]) -> Option<&'a BinRoute> {
        if pan.len() < MIN_PREFIX_LEN || !pan.iter().all(u8::is_ascii_digit) {
            return None;
        }
        rows.iter()
            .filter(|r| r.prefix.is_prefix_of(pan))
            .max_by_key(|r| r.prefix.len())
            .map(|r| &r.route)
    }

    #[test]
    fn lookup_cases() {
        use CardType::*;
        let rows = vec![
            row("622202", "01020000", Debit, false),
            row("62220210", "01020001", Credit, true),
            row("6222021099", "01020002", Prepaid, false),
            row("622202109912", "01020003", Debit, true),
            row("622203", "03010000", Credit, false), // adjacent to 622202
            row("621483", "03020000", Debit, false),
            row("000123", "00000001", Debit, false), // leading zeros
            row("999999999999", "00000002", Debit, false), // top of the number line
        ];
        let t = table(&rows);
        let cases: &[(&str, Option<&str>)] = &[
            // nested 6/8/10/12
            ("6222020000000000", Some("01020000")),
            ("6222021000000000", Some("01020001")),
            ("6222021098999999", Some("01020001")),
            ("6222021099000000", Some("01020002")),
            ("6222021099120000", Some("01020003")),
            ("6222021099130000", Some("01020002")),
            ("6222021100000000", Some("01020000")),
            ("6222029999999999", Some("01020000")),
            // adjacent ranges
            ("6222030000000000", Some("03010000")),
            ("6222039999999999999", Some("03010000")),
            ("6222040000000000", None),
            ("6222019999999999", None),
            // no match
            ("4111111111111111", None),
            ("6214830000000", Some("03020000")),
            ("0001230000000000", Some("00000001")),
            ("0001220000000000", None),
            ("9999999999999999", Some("00000002")),
            ("9999999999989999", None),
            // short PANs only match prefixes not longer than themselves
            ("622202", Some("01020000")),
            ("6222021", Some("01020000")),
            ("62220210", Some("01020001")),
            ("622202109", Some("01020001")),
            ("6222021099", Some("01020002")),
            ("62220210991", Some("01020002")),
            ("622202109912", Some("01020003")),
            ("62220", None),
            ("", None),
            // non-digits anywhere
            ("62220210991X0000", None),
            ("6222 021099120000", None),
            ("-622202109912000", None),
        ];
        for (pan, want) in cases {
            let got = t.lookup(pan.as_bytes()).map(|r| r.issuer.to_string());
            assert_eq!(got.as_deref(), *want, "pan {pan}");
            assert_eq!(
                t.lookup(pan.as_bytes()),
                naive(&rows, pan.as_bytes()),
                "naive disagrees on {pan}"
            );
        }
        let r = t.lookup(b"6222021000000000").unwrap();
        assert_eq!(r.card_type, Credit);
        assert!(r.installment);
        assert_eq!(t.len(), rows.len());
    }

    #[test]
    fn empty_table_misses() {
        let t = BinTable::empty();
        assert!(t.is_empty());
        assert_eq!(t.lookup(b"6222020000000000"), None);
    }

    #[test]
    fn duplicate_prefix_is_an_error() {
        let mut a = row("622202", "01020000", CardType::Debit, false);
        a.line = 3;
        let mut b = row("622202", "01020000", CardType::Debit, false);
        b.line = 9;
        let c = row("62220200", "01020000", CardType::Debit, false); // same start, not a dup
        let err = BinTable::from_rows(&[b, c, a], Path::new("bins.csv")).unwrap_err();
        assert_eq!(err.line, Some(9));
        assert_eq!(err.column, Some("prefix"));
        let msg = err.to_string();
        assert!(
            msg.contains("bins.csv: line 9 column prefix: duplicate"),
            "{msg}"
        );
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn prefix_parse_rules() {
        assert!(BinPrefix::parse("62220").is_err());
        assert!(BinPrefix::parse("6222021099123").is_err());
        assert!(BinPrefix::parse("62a202").is_err());
        assert!(BinPrefix::parse("+62202").is_err());
        assert_eq!(BinPrefix::parse("000123").unwrap().to_string(), "000123");
        assert_ne!(
            BinPrefix::parse("000123").unwrap(),
            BinPrefix::parse("0000123").unwrap()
        );
    }

    #[test]
    fn csv_parses_with_comments_and_any_column_order() {
        let text = "# BIN table\n\
                    issuer,prefix,installment,card_type\n\
                    01020000, 622202 ,Y,debit\n\
                    \n\
                    # nested\n\
                    01020001,62220210,false,Credit\n";
        let rows = parse_csv(text.as_bytes(), Path::new("bins.csv")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 3);
        assert_eq!(rows[0].prefix.to_string(), "622202");
        assert!(rows[0].route.installment);
        assert_eq!(rows[1].line, 6);
        assert_eq!(rows[1].route.card_type, CardType::Credit);
        assert!(!rows[1].route.installment);
    }

    #[test]
    fn csv_errors_name_file_line_column_reason() {
        let cases: &[(&str, &str)] = &[
            (
                "prefix,issuer,card_type,installment\n62220,01020000,debit,Y\n",
                "bins.csv: line 2 column prefix: BIN prefix \"62220\" has 5 characters",
            ),
            (
                "prefix,issuer,card_type,installment\n622202,01020000,debit,Y\n6222021099123,01020000,debit,Y\n",
                "bins.csv: line 3 column prefix: BIN prefix \"6222021099123\" has 13",
            ),
            (
                "prefix,issuer,card_type,installment\n62x202,01020000,debit,Y\n",
                "bins.csv: line 2 column prefix: BIN prefix \"62x202\" must contain only digits",
            ),
            (
                "prefix,issuer,card_type,installment\n622202,ABC,debit,Y\n",
                "bins.csv: line 2 column issuer: issuer \"ABC\"",
            ),
            (
                "prefix,issuer,card_type,installment\n622202,01020000,gold,Y\n",
                "bins.csv: line 2 column card_type: card type \"gold\" must be",
            ),
            (
                "prefix,issuer,card_type,installment\n622202,01020000,debit,maybe\n",
                "bins.csv: line 2 column installment: installment flag \"maybe\"",
            ),
            (
                "prefix,issuer,card_type,installment\n622202,01020000,debit\n",
                "bins.csv: line 2: expected 4 fields",
            ),
            (
                "prefix,issuer,card_type,instalment\n",
                "bins.csv: line 1: unknown column \"instalment\"",
            ),
            ("prefix,issuer,card_type\n", "bins.csv: line 1: header lacks column \"installment\""),
            ("", "bins.csv: empty file"),
            (
                "prefix,issuer,card_type,installment\n622202,,debit,Y\n",
                "bins.csv: line 2 column issuer: empty value",
            ),
        ];
        for (text, want) in cases {
            let err = parse_csv(text.as_bytes(), Path::new("bins.csv")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with(want), "got {msg:?}, want prefix {want:?}");
        }
    }

    #[test]
    fn csv_line_numbers_count_comments_blank_lines_and_crlf() {
        let text = "# header comment\r\n\r\nprefix,issuer,card_type,installment\r\n\
                    622202,01020000,debit,Y\r\n# comment\r\n\r\n\
                    622203,01020000,debit,Y\r\n622204,01020000,debit,X\r\n";
        let err = parse_csv(text.as_bytes(), Path::new("bins.csv")).unwrap_err();
        assert_eq!(err.line, Some(8), "{err}");
        assert_eq!(err.column, Some("installment"));
        let ok = text.replace("debit,X", "debit,N");
        let rows = parse_csv(ok.as_bytes(), Path::new("bins.csv")).unwrap();
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [4, 7, 8]);
    }

    #[test]
    fn missing_file_is_reported() {
        let err = read_csv(Path::new("/nonexistent/dir/bins.csv")).unwrap_err();
        assert!(err
            .to_string()
            .contains("/nonexistent/dir/bins.csv: cannot open"));
    }

    #[test]
    fn hundred_thousand_rows_build_quickly() {
        // Deterministic pseudo-random prefixes of lengths 6..=12, many of them nested.
        let mut text = String::from("prefix,issuer,card_type,installment\n");
        let mut seen = std::collections::HashSet::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while seen.len() < 100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 6 + (x % 7) as usize;
            let digits = format!("62{:010}", (x >> 8) % 10_000_000_000);
            let prefix = &digits[..len];
            if seen.insert(prefix.to_string()) {
                let issuer = 3_010_000 + (x >> 40) % 50;
                text.push_str(&format!("{prefix},0{issuer},debit,N\n"));
            }
        }
        // Build speed is measured by the criterion bench, not asserted here.
        let rows = parse_csv(text.as_bytes(), Path::new("big.csv")).unwrap();
        let t = BinTable::from_rows(&rows, Path::new("big.csv")).unwrap();
        assert_eq!(t.len(), 100_000);
        // The linear `naive` scan is too slow at this size; a hash of every prefix checked
        // from longest to shortest has the same semantics.
        let by_prefix: HashMap<String, &BinRoute> = rows
            .iter()
            .map(|r| (r.prefix.to_string(), &r.route))
            .collect();
        for r in rows.iter().step_by(7) {
            let mut pan = r.prefix.to_string().into_bytes();
            pan.resize(16, b'5');
            let want = (MIN_PREFIX_LEN..=MAX_PREFIX_LEN)
                .rev()
                .find_map(|l| by_prefix.get(std::str::from_utf8(&pan[..l]).unwrap()))
                .copied();
            assert_eq!(t.lookup(&pan), want);
        }
    }

    /// Random prefix sets drawn from a small alphabet so that nesting and adjacency are common.
    fn prefix_strategy() -> impl Strategy<Value = String> {
        (
            6usize..=12,
            proptest::collection::vec(prop_oneof![Just('0'), Just('1'), Just('9')], 12),
        )
            .prop_map(|(len, digits)| {
                let mut s = String::from("62");
                s.extend(digits.into_iter().take(len - 2));
                s
            })
    }

    fn pan_strategy(prefixes: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
        let n = prefixes.len();
        (
            0..n.max(1),
            proptest::collection::vec(
                prop_oneof![Just(b'0'), Just(b'1'), Just(b'9'), Just(b'5')],
                0..=19,
            ),
            0usize..=19,
            0u8..4,
        )
            .prop_map(move |(i, tail, cut, corrupt)| {
                let mut pan = prefixes.get(i).cloned().unwrap_or_default().into_bytes();
                pan.extend(tail);
                pan.truncate(cut.max(4));
                if !pan.is_empty() {
                    let at = cut % pan.len();
                    match corrupt {
                        0 => pan[at] = b'A', // non-digit: never matches
                        1 => pan[at] = b'5', // near miss: leaves the prefix's range
                        _ => {}
                    }
                }
                pan
            })
    }

    proptest! {
        #[test]
        fn matches_naive_longest_prefix(
            (prefixes, pans) in proptest::collection::hash_set(prefix_strategy(), 1..40)
                .prop_flat_map(|set| {
                    let prefixes: Vec<String> = set.into_iter().collect();
                    let pans = proptest::collection::vec(pan_strategy(prefixes.clone()), 1..60);
                    (Just(prefixes), pans)
                })
        ) {
            let rows: Vec<BinRow> = prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| BinRow {
                    line: i as u64 + 2,
                    prefix: BinPrefix::parse(p).unwrap(),
                    route: BinRoute {
                        issuer: InstitutionId::parse(&format!("{}", 1000 + i)).unwrap(),
                        card_type: CardType::Debit,
                        installment: i % 2 == 0,
                    },
                })
                .collect();
            let t = BinTable::from_rows(&rows, Path::new("prop.csv")).unwrap();
            for pan in &pans {
                prop_assert_eq!(t.lookup(pan), naive(&rows, pan), "pan {:?}", String::from_utf8_lossy(pan));
            }
        }
    }
}
