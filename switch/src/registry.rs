//! Merchant and terminal registry (SPEC.md section 9 rule 3): which merchants each acquirer
//! has registered, their MCC and status, the terminals of each merchant, and which transaction
//! categories each may perform.
//!
//! This module owns the transaction categories ([`TxnCategory`], shared with `limits.rs`), the
//! rule's answer ([`Decline`], also used by the limits rule), the merchant and terminal CSV
//! formats and their loader, and the immutable [`Registry`] snapshot with its allocation-free
//! check. It is sans-I/O apart from [`Registry::load`] reading two files; publishing snapshots
//! through `arc-swap` and calling [`Registry::check`] is the connection layer's job
//! (ARCHITECTURE.md principles 1 and 3).
//!
//! Load errors name the file, the line, the column and the reason ([`RegistryError`]); the
//! limit settings file (`limits.rs`) is read with the same CSV helper and error type.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use iso8583::ResponseCode;

use crate::config::InstitutionId;
use crate::core::TxnKind;

// ---------------------------------------------------------------------------------------------
// Categories
// ---------------------------------------------------------------------------------------------

/// What a transaction does, for permissions (rule 3) and limits (rule 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnCategory {
    /// Purchase, preauthorisation completion.
    Purchase,
    /// Cash withdrawal (agent banking).
    Cash,
    /// Online refund.
    Refund,
    /// Installment purchase (F25 = 64).
    Installment,
    /// Preauthorisation and its void.
    Preauth,
    /// Balance inquiry.
    Balance,
}

impl TxnCategory {
    /// Every category, in the order of the CSV documentation.
    pub const ALL: [TxnCategory; 6] = [
        TxnCategory::Purchase,
        TxnCategory::Cash,
        TxnCategory::Refund,
        TxnCategory::Installment,
        TxnCategory::Preauth,
        TxnCategory::Balance,
    ];

    /// The category of a request of `kind`, or `None` when the kind alone does not tell:
    ///
    /// - a completion is the purchase the preauthorisation was for, so it is checked and
    ///   counted as [`TxnCategory::Purchase`];
    /// - a preauthorisation void is [`TxnCategory::Preauth`];
    /// - a void (purchase or installment) and a reversal take the category of their original
    ///   (`TxnCategory::of(original_kind)`): voiding an installment is permitted wherever the
    ///   installment was, and releases the installment's limit usage;
    /// - network management and unknown requests have none.
    #[must_use]
    pub fn of(kind: TxnKind) -> Option<TxnCategory> {
        match kind {
            TxnKind::Purchase | TxnKind::PreauthCompletion => Some(TxnCategory::Purchase),
            TxnKind::InstallmentPurchase => Some(TxnCategory::Installment),
            TxnKind::Refund => Some(TxnCategory::Refund),
            TxnKind::BalanceInquiry => Some(TxnCategory::Balance),
            TxnKind::CashWithdrawal => Some(TxnCategory::Cash),
            TxnKind::Preauth | TxnKind::PreauthVoid => Some(TxnCategory::Preauth),
            TxnKind::Void | TxnKind::Reversal | TxnKind::NetworkManagement | TxnKind::Unknown => {
                None
            }
        }
    }

    /// The lowercase name used in the CSV files and in logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TxnCategory::Purchase => "purchase",
            TxnCategory::Cash => "cash",
            TxnCategory::Refund => "refund",
            TxnCategory::Installment => "installment",
            TxnCategory::Preauth => "preauth",
            TxnCategory::Balance => "balance",
        }
    }

    /// Parses a category name (ASCII case-insensitive).
    #[must_use]
    pub fn parse(s: &str) -> Option<TxnCategory> {
        TxnCategory::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for TxnCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of categories (one bit each).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CategorySet(u8);

impl CategorySet {
    /// No category.
    pub const NONE: CategorySet = CategorySet(0);
    /// Every category.
    pub const ALL: CategorySet = CategorySet(0b11_1111);

    /// Whether `category` is in the set.
    #[must_use]
    pub fn contains(self, category: TxnCategory) -> bool {
        self.0 & category.bit() != 0
    }

    /// The set with `category` added.
    #[must_use]
    pub fn with(self, category: TxnCategory) -> CategorySet {
        CategorySet(self.0 | category.bit())
    }

    /// The members, in [`TxnCategory::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = TxnCategory> {
        TxnCategory::ALL
            .into_iter()
            .filter(move |&c| self.contains(c))
    }

    /// Parses the CSV form: `*` (every category) or names separated by `|`, e.g.
    /// `purchase|refund`. Empty and repeated names are errors: both usually hide a typo.
    pub fn parse(s: &str) -> Result<CategorySet, String> {
        if s == "*" {
            return Ok(CategorySet::ALL);
        }
        let mut set = CategorySet::NONE;
        for name in s.split('|').map(str::trim) {
            let c = TxnCategory::parse(name).ok_or_else(|| {
                format!(
                    "unknown category {name:?}; expected `*` or names separated by `|` from {}",
                    TxnCategory::ALL.map(TxnCategory::as_str).join(", ")
                )
            })?;
            if set.contains(c) {
                return Err(format!("category {name:?} listed twice"));
            }
            set = set.with(c);
        }
        Ok(set)
    }
}

impl fmt::Debug for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------------

/// A fixed-length `ans` identifier (F41 terminal ID, F42 merchant ID), stored as the field
/// carries it: left-aligned, space-padded to `N` bytes. Inline and `Copy`, so it serves as a
/// hash key without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FixedId<const N: usize>([u8; N]);

/// Merchant ID (F42, ans15).
pub type MerchantId = FixedId<15>;
/// Terminal ID (F41, ans8).
pub type TerminalId = FixedId<8>;

impl<const N: usize> FixedId<N> {
    /// The ID of a field value: 1 to `N` printable ASCII characters (trailing spaces are
    /// padding). `None` otherwise; on the request path that simply finds nothing.
    #[must_use]
    pub fn from_field(b: &[u8]) -> Option<FixedId<N>> {
        let end = b.iter().rposition(|&c| c != b' ')? + 1;
        let text = b.get(..end)?;
        if text.len() > N || !text.iter().all(|c| (b' '..=b'~').contains(c)) {
            return None;
        }
        let mut id = [b' '; N];
        id.get_mut(..end)?.copy_from_slice(text);
        Some(FixedId(id))
    }

    /// Parses the CSV form; the error is a human-readable reason.
    pub fn parse(s: &str) -> Result<FixedId<N>, String> {
        if s.starts_with(' ') {
            return Err(format!("ID {s:?} must not start with a space"));
        }
        FixedId::from_field(s.as_bytes())
            .ok_or_else(|| format!("ID {s:?} must be 1 to {N} printable ASCII characters"))
    }

    /// The field form (space-padded to `N` bytes).
    #[must_use]
    pub fn as_field(&self) -> &[u8; N] {
        &self.0
    }

    /// The ID without its padding.
    #[must_use]
    pub fn as_str(&self) -> &str {
        let end = self.0.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
        // Only printable ASCII is ever stored, so this cannot fail.
        self.0
            .get(..end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl<const N: usize> fmt::Display for FixedId<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for FixedId<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Merchant category code (F18, n4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mcc(u16);

impl Mcc {
    /// The MCC of a field value: exactly four ASCII digits.
    #[must_use]
    pub fn from_field(b: &[u8]) -> Option<Mcc> {
        if b.len() != 4 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(Mcc(b.iter().fold(0, |n, &d| n * 10 + u16::from(d - b'0'))))
    }

    /// Parses the CSV form; the error is a human-readable reason.
    pub fn parse(s: &str) -> Result<Mcc, String> {
        Mcc::from_field(s.as_bytes()).ok_or_else(|| format!("MCC {s:?} must be 4 digits"))
    }
}

impl fmt::Display for Mcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

impl fmt::Debug for Mcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mcc({self})")
    }
}

/// Whether a merchant or terminal may transact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Active,
    Suspended,
}

impl Status {
    /// Parses `active` or `suspended` (ASCII case-insensitive).
    pub fn parse(s: &str) -> Result<Status, String> {
        if s.eq_ignore_ascii_case("active") {
            Ok(Status::Active)
        } else if s.eq_ignore_ascii_case("suspended") {
            Ok(Status::Suspended)
        } else {
            Err(format!("status {s:?} must be active or suspended"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decline
// ---------------------------------------------------------------------------------------------

/// A rule's "no": the response code and the short F44 reason text (at most 25 characters).
/// Declines are values, not errors; the caller answers the acquirer with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decline {
    pub code: ResponseCode,
    pub reason: &'static str,
}

impl Decline {
    pub const MERCHANT_UNKNOWN: Decline =
        Decline::new(ResponseCode::INVALID_MERCHANT, "MERCHANT UNKNOWN");
    pub const MERCHANT_SUSPENDED: Decline =
        Decline::new(ResponseCode::INVALID_MERCHANT, "MERCHANT SUSPENDED");
    pub const MCC_NOT_PERMITTED: Decline =
        Decline::new(ResponseCode::INVALID_MERCHANT, "MCC NOT PERMITTED");
    pub const TERMINAL_UNKNOWN: Decline =
        Decline::new(ResponseCode::TERMINAL_MISMATCH, "TERMINAL NOT REGISTERED");
    pub const TERMINAL_SUSPENDED: Decline =
        Decline::new(ResponseCode::TERMINAL_MISMATCH, "TERMINAL SUSPENDED");
    pub const MERCHANT_CATEGORY: Decline = Decline::new(
        ResponseCode::NOT_PERMITTED_TERMINAL,
        "MERCH TXN NOT PERMITTED",
    );
    pub const TERMINAL_CATEGORY: Decline = Decline::new(
        ResponseCode::NOT_PERMITTED_TERMINAL,
        "TERM TXN NOT PERMITTED",
    );

    #[must_use]
    pub const fn new(code: ResponseCode, reason: &'static str) -> Decline {
        Decline { code, reason }
    }
}

impl fmt::Display for Decline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

/// A registered merchant (one row of `merchants.csv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    /// The acquirer that registered the merchant (F32 of its requests).
    pub acquirer: InstitutionId,
    pub id: MerchantId,
    pub name: Box<str>,
    /// The merchant's own MCC; always permitted.
    pub mcc: Mcc,
    pub status: Status,
    pub categories: CategorySet,
    /// MCCs permitted in F18 besides [`Merchant::mcc`] (usually none).
    pub extra_mccs: Box<[Mcc]>,
}

impl Merchant {
    /// Whether F18 may carry `mcc` for this merchant.
    #[must_use]
    pub fn permits_mcc(&self, mcc: Mcc) -> bool {
        mcc == self.mcc || self.extra_mccs.contains(&mcc)
    }
}

/// A registered terminal (one row of `terminals.csv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub acquirer: InstitutionId,
    pub merchant: MerchantId,
    pub id: TerminalId,
    pub status: Status,
    pub categories: CategorySet,
}

/// The merchants and terminals of every acquirer: an immutable snapshot, built once per
/// (re)load and shared behind `Arc`/`arc-swap`. Lookups hash fixed-size keys built on the
/// stack: no allocation on the request path.
#[derive(Default)]
pub struct Registry {
    merchants: Vec<Merchant>,
    terminals: Vec<Terminal>,
    merchant_index: HashMap<(InstitutionId, MerchantId), u32, crate::FastHash>,
    /// Keyed by the merchant's index: terminal IDs are only unique within a merchant.
    terminal_index: HashMap<(u32, TerminalId), u32, crate::FastHash>,
}

impl fmt::Debug for Registry {
    // Summarise: a derived Debug would print every row of a 50,000-row registry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("merchants", &self.merchants.len())
            .field("terminals", &self.terminals.len())
            .finish()
    }
}

const MERCHANT_COLUMNS: [&str; 7] = [
    "acquirer",
    "merchant_id",
    "name",
    "mcc",
    "status",
    "categories",
    "extra_mccs",
];
const TERMINAL_COLUMNS: [&str; 5] = [
    "acquirer",
    "merchant_id",
    "terminal_id",
    "status",
    "categories",
];

impl Registry {
    /// Reads and validates both files (formats in `config/README.md`).
    pub fn load(merchants_csv: &Path, terminals_csv: &Path) -> Result<Registry, RegistryError> {
        let merchants = read_file(merchants_csv)?;
        let terminals = read_file(terminals_csv)?;
        Registry::from_csv(&merchants, merchants_csv, &terminals, terminals_csv)
    }

    /// Builds a registry from CSV text; the paths only label errors.
    pub fn from_csv(
        merchants_data: &[u8],
        merchants_file: &Path,
        terminals_data: &[u8],
        terminals_file: &Path,
    ) -> Result<Registry, RegistryError> {
        let mut reg = Registry::default();
        // Line of each merchant, to point at the first listing of a duplicate. Load-time only.
        let mut merchant_lines: Vec<u64> = Vec::new();

        let mut csv = CsvTable::open(merchants_data, merchants_file, MERCHANT_COLUMNS)?;
        while csv.next()? {
            let acquirer = csv.parse(0, InstitutionId::parse)?;
            let id = csv.parse(1, MerchantId::parse)?;
            let name = csv.parse(2, |s| {
                if s.is_empty() {
                    Err("empty value".to_string())
                } else {
                    Ok(Box::<str>::from(s))
                }
            })?;
            let mcc = csv.parse(3, Mcc::parse)?;
            let status = csv.parse(4, Status::parse)?;
            let categories = csv.parse(5, CategorySet::parse)?;
            let extra_mccs = csv.parse(6, |s| {
                if s.is_empty() {
                    return Ok(Box::default());
                }
                s.split('|').map(|m| Mcc::parse(m.trim())).collect()
            })?;
            let index = u32::try_from(reg.merchants.len())
                .map_err(|_| csv.error(1, "too many merchants"))?;
            if let Some(&first) = reg.merchant_index.get(&(acquirer, id)) {
                let first_line = merchant_lines.get(first as usize).copied().unwrap_or(0);
                return Err(csv.error(
                    1,
                    format!(
                        "merchant {id} of acquirer {acquirer} already listed at line {first_line}"
                    ),
                ));
            }
            reg.merchant_index.insert((acquirer, id), index);
            merchant_lines.push(csv.line());
            reg.merchants.push(Merchant {
                acquirer,
                id,
                name,
                mcc,
                status,
                categories,
                extra_mccs,
            });
        }

        let mut terminal_lines: Vec<u64> = Vec::new();
        let mut csv = CsvTable::open(terminals_data, terminals_file, TERMINAL_COLUMNS)?;
        while csv.next()? {
            let acquirer = csv.parse(0, InstitutionId::parse)?;
            let merchant = csv.parse(1, MerchantId::parse)?;
            let id = csv.parse(2, TerminalId::parse)?;
            let status = csv.parse(3, Status::parse)?;
            let categories = csv.parse(4, CategorySet::parse)?;
            let &merchant_index =
                reg.merchant_index
                    .get(&(acquirer, merchant))
                    .ok_or_else(|| {
                        csv.error(
                            1,
                            format!(
                                "merchant {merchant} of acquirer {acquirer} is not in {}",
                                merchants_file.display()
                            ),
                        )
                    })?;
            let index = u32::try_from(reg.terminals.len())
                .map_err(|_| csv.error(2, "too many terminals"))?;
            if let Some(&first) = reg.terminal_index.get(&(merchant_index, id)) {
                let first_line = terminal_lines.get(first as usize).copied().unwrap_or(0);
                return Err(csv.error(
                    2,
                    format!(
                        "terminal {id} of merchant {merchant} already listed at line {first_line}"
                    ),
                ));
            }
            reg.terminal_index.insert((merchant_index, id), index);
            terminal_lines.push(csv.line());
            reg.terminals.push(Terminal {
                acquirer,
                merchant,
                id,
                status,
                categories,
            });
        }
        Ok(reg)
    }

    fn merchant_entry(&self, acquirer: &str, merchant: &[u8]) -> Option<(u32, &Merchant)> {
        let key = (
            InstitutionId::from_bytes(acquirer.as_bytes())?,
            MerchantId::from_field(merchant)?,
        );
        let &index = self.merchant_index.get(&key)?;
        Some((index, self.merchants.get(index as usize)?))
    }

    /// The merchant `merchant` (F42) of `acquirer` (F32).
    #[must_use]
    pub fn merchant(&self, acquirer: &str, merchant: &[u8]) -> Option<&Merchant> {
        self.merchant_entry(acquirer, merchant).map(|(_, m)| m)
    }

    /// The terminal `terminal` (F41) of that merchant.
    #[must_use]
    pub fn terminal(&self, acquirer: &str, merchant: &[u8], terminal: &[u8]) -> Option<&Terminal> {
        let (index, _) = self.merchant_entry(acquirer, merchant)?;
        self.terminal_of(index, terminal)
    }

    fn terminal_of(&self, merchant_index: u32, terminal: &[u8]) -> Option<&Terminal> {
        let key = (merchant_index, TerminalId::from_field(terminal)?);
        self.terminals.get(*self.terminal_index.get(&key)? as usize)
    }

    /// Rule 3 for one request, from its F32, F42, F41, F18 and category. Checks in order:
    /// merchant known and active (`03`), MCC permitted (`03`), terminal registered for the
    /// merchant and active (`97`), category permitted for the merchant, then the terminal
    /// (`58`). Allocation-free.
    pub fn check(
        &self,
        acquirer: &str,
        merchant: &[u8],
        terminal: &[u8],
        mcc: &[u8],
        category: TxnCategory,
    ) -> Result<(&Merchant, &Terminal), Decline> {
        let (index, m) = self
            .merchant_entry(acquirer, merchant)
            .ok_or(Decline::MERCHANT_UNKNOWN)?;
        if m.status == Status::Suspended {
            return Err(Decline::MERCHANT_SUSPENDED);
        }
        if !Mcc::from_field(mcc).is_some_and(|c| m.permits_mcc(c)) {
            return Err(Decline::MCC_NOT_PERMITTED);
        }
        let t = self
            .terminal_of(index, terminal)
            .ok_or(Decline::TERMINAL_UNKNOWN)?;
        if t.status == Status::Suspended {
            return Err(Decline::TERMINAL_SUSPENDED);
        }
        if !m.categories.contains(category) {
            return Err(Decline::MERCHANT_CATEGORY);
        }
        if !t.categories.contains(category) {
            return Err(Decline::TERMINAL_CATEGORY);
        }
        Ok((m, t))
    }

    /// All merchants, in file order.
    #[must_use]
    pub fn merchants(&self) -> &[Merchant] {
        &self.merchants
    }

    /// All terminals, in file order.
    #[must_use]
    pub fn terminals(&self) -> &[Terminal] {
        &self.terminals
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and CSV reading (shared with limits.rs)
// ---------------------------------------------------------------------------------------------

/// Why a registry or limits file was rejected (the shared data-file error).
pub type RegistryError = crate::datafile::DataFileError;

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path).map_err(|e| RegistryError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        reason: format!("cannot open: {e}"),
    })
}

/// Reads one CSV file of fixed columns: a header naming exactly `columns` (any order, ASCII
/// case-insensitive), then records of trimmed fields; `#` comment lines and blank lines are
/// skipped. Errors carry exact line numbers: the csv crate's own line counter skips comment
/// and blank lines, so lines are derived from byte offsets instead.
pub(crate) struct CsvTable<'a, const N: usize> {
    file: &'a Path,
    data: &'a [u8],
    rdr: csv::Reader<&'a [u8]>,
    columns: [&'static str; N],
    /// Position in the record of each column.
    pos: [usize; N],
    record: csv::StringRecord,
    /// Byte offset and line number the line count has reached (offsets only grow).
    offset: usize,
    line: u64,
}

impl<'a, const N: usize> CsvTable<'a, N> {
    pub(crate) fn open(
        data: &'a [u8],
        file: &'a Path,
        columns: [&'static str; N],
    ) -> Result<Self, RegistryError> {
        // Spreadsheets often save a UTF-8 byte order mark; it holds no newline, so line
        // numbers are unaffected by dropping it.
        let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
        let rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            // Field counts are checked here, to name the line and the expected columns.
            .flexible(true)
            .from_reader(data);
        let mut t = CsvTable {
            file,
            data,
            rdr,
            columns,
            pos: [usize::MAX; N],
            record: csv::StringRecord::new(),
            offset: 0,
            line: 1,
        };
        let expected = columns.join(",");
        if !t.read()? {
            return Err(t.error_at(
                None,
                None,
                format!("empty file: expected a header line `{expected}`"),
            ));
        }
        for (i, name) in t.record.iter().enumerate() {
            let c = columns.iter().position(|c| c.eq_ignore_ascii_case(name));
            match c.and_then(|c| t.pos.get_mut(c)) {
                Some(slot) if *slot == usize::MAX => *slot = i,
                Some(_) => {
                    return Err(t.error_at(
                        Some(t.line),
                        None,
                        format!("header lists column {name:?} twice"),
                    ))
                }
                None => {
                    return Err(t.error_at(
                        Some(t.line),
                        None,
                        format!("unknown column {name:?} in header; expected exactly `{expected}`"),
                    ))
                }
            }
        }
        if let Some((missing, _)) = columns.iter().zip(t.pos).find(|(_, p)| *p == usize::MAX) {
            return Err(t.error_at(
                Some(t.line),
                None,
                format!("header lacks column {missing:?}; expected `{expected}`"),
            ));
        }
        Ok(t)
    }

    /// Reads the next record, recording its line. `false` at the end of the file.
    fn read(&mut self) -> Result<bool, RegistryError> {
        match self.rdr.read_record(&mut self.record) {
            Ok(more) => {
                if more {
                    let start = self.record.position().map_or(0, csv::Position::byte);
                    self.seek_record(start);
                }
                Ok(more)
            }
            Err(e) => {
                let line = e.position().map(|p| {
                    self.seek_record(p.byte());
                    self.line
                });
                Err(self.error_at(line, None, format!("malformed CSV: {e}")))
            }
        }
    }

    /// Advances to the next data record; `false` at the end. Checks the field count.
    pub(crate) fn next(&mut self) -> Result<bool, RegistryError> {
        if !self.read()? {
            return Ok(false);
        }
        if self.record.len() != N {
            return Err(self.error_at(
                Some(self.line),
                None,
                format!(
                    "expected {N} fields ({}), found {}",
                    self.columns.join(","),
                    self.record.len()
                ),
            ));
        }
        Ok(true)
    }

    /// Moves the line count to the record whose read started at byte `start`. csv reports
    /// where it started reading, i.e. before the comment and blank lines it skipped, so those
    /// are skipped here too.
    fn seek_record(&mut self, start: u64) {
        let start = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        if start >= self.offset {
            let skipped = self.data.get(self.offset..start).unwrap_or_default();
            self.line += skipped.iter().filter(|&&b| b == b'\n').count() as u64;
            self.offset = start;
        }
        while let Some(rest) = self.data.get(self.offset..) {
            let skip = match rest {
                [b'\n', ..] => 1,
                [b'\r', b'\n', ..] => 2,
                [b'#', ..] => rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1),
                _ => break,
            };
            let ends_line = rest.get(skip - 1) == Some(&b'\n');
            self.offset += skip;
            if !ends_line {
                break;
            }
            self.line += 1;
        }
    }

    /// 1-based line of the current record.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The trimmed value of column `col` of the current record.
    pub(crate) fn get(&self, col: usize) -> &str {
        self.pos
            .get(col)
            .and_then(|&p| self.record.get(p))
            .unwrap_or_default()
    }

    /// Parses column `col` of the current record; a failure names the line and the column.
    pub(crate) fn parse<T>(
        &self,
        col: usize,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, RegistryError> {
        f(self.get(col)).map_err(|reason| self.error(col, reason))
    }

    /// An error about column `col` of the current record.
    pub(crate) fn error(&self, col: usize, reason: impl Into<String>) -> RegistryError {
        self.error_at(
            Some(self.line),
            self.columns.get(col).copied(),
            reason.into(),
        )
    }

    fn error_at(
        &self,
        line: Option<u64>,
        column: Option<&'static str>,
        reason: String,
    ) -> RegistryError {
        RegistryError {
            file: self.file.to_path_buf(),
            line,
            column,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MERCHANTS: &str = "\
# demo
acquirer,merchant_id,name,mcc,status,categories,extra_mccs
01030000,MERCHANT0000001,Shop,5411,active,purchase|refund|installment|preauth|balance,
01030000,MERCHANT0000002,Closed,5999,suspended,*,

01030000,AGENT0000000001,Agent,6011,active,cash|balance,
01030000,MERCHANT0000003,Dept store,5311,active,purchase|installment,5411|5651
";
    const TERMINALS: &str = "\
acquirer,merchant_id,terminal_id,status,categories
01030000,MERCHANT0000001,TERM0001,active,*
01030000,MERCHANT0000001,TERM0002,suspended,*
01030000,MERCHANT0000001,TERM0003,active,purchase
01030000,MERCHANT0000002,TERM0001,active,*
01030000,AGENT0000000001,ATM00001,active,*
01030000,MERCHANT0000003,TERM0001,active,*
";

    fn registry(merchants: &str, terminals: &str) -> Result<Registry, RegistryError> {
        Registry::from_csv(
            merchants.as_bytes(),
            Path::new("merchants.csv"),
            terminals.as_bytes(),
            Path::new("terminals.csv"),
        )
    }

    #[test]
    fn check_table_every_code() {
        use TxnCategory::*;
        let reg = registry(MERCHANTS, TERMINALS).unwrap();
        let ok = |m: &str, t: &str| Ok::<_, Decline>((m.to_string(), t.to_string()));
        // (F32, F42, F41, F18, category, expected).
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            TxnCategory,
            Result<(String, String), Decline>,
        );
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("01030000", "MERCHANT0000001", "TERM0001", "5411", Purchase, ok("MERCHANT0000001", "TERM0001")),
            ("01030000", "MERCHANT0000001", "TERM0001", "5411", Installment, ok("MERCHANT0000001", "TERM0001")),
            ("01030000", "AGENT0000000001", "ATM00001", "6011", Cash, ok("AGENT0000000001", "ATM00001")),
            ("01030000", "MERCHANT0000003", "TERM0001", "5651", Purchase, ok("MERCHANT0000003", "TERM0001")),
            // 03: unknown merchant, other acquirer's merchant, malformed ID, suspended, MCC
            ("01030000", "MERCHANT0000009", "TERM0001", "5411", Purchase, Err(Decline::MERCHANT_UNKNOWN)),
            ("01040000", "MERCHANT0000001", "TERM0001", "5411", Purchase, Err(Decline::MERCHANT_UNKNOWN)),
            ("01030000", "MERCHANT00000010", "TERM0001", "5411", Purchase, Err(Decline::MERCHANT_UNKNOWN)),
            ("01030000", "MERCHANT0000002", "TERM0001", "5999", Purchase, Err(Decline::MERCHANT_SUSPENDED)),
            ("01030000", "MERCHANT0000001", "TERM0001", "5999", Purchase, Err(Decline::MCC_NOT_PERMITTED)),
            ("01030000", "MERCHANT0000001", "TERM0001", "54x1", Purchase, Err(Decline::MCC_NOT_PERMITTED)),
            ("01030000", "MERCHANT0000003", "TERM0001", "6011", Purchase, Err(Decline::MCC_NOT_PERMITTED)),
            // 97: terminal of another merchant, unknown, suspended
            ("01030000", "MERCHANT0000001", "ATM00001", "5411", Purchase, Err(Decline::TERMINAL_UNKNOWN)),
            ("01030000", "MERCHANT0000001", "TERM0009", "5411", Purchase, Err(Decline::TERMINAL_UNKNOWN)),
            ("01030000", "MERCHANT0000001", "TERM0002", "5411", Purchase, Err(Decline::TERMINAL_SUSPENDED)),
            // 58: cash at a shop, refund at a purchase-only terminal
            ("01030000", "MERCHANT0000001", "TERM0001", "5411", Cash, Err(Decline::MERCHANT_CATEGORY)),
            ("01030000", "MERCHANT0000001", "TERM0003", "5411", Refund, Err(Decline::TERMINAL_CATEGORY)),
        ];
        for (acq, m, t, mcc, cat, want) in cases {
            let got = reg
                .check(acq, m.as_bytes(), t.as_bytes(), mcc.as_bytes(), *cat)
                .map(|(m, t)| (m.id.to_string(), t.id.to_string()));
            assert_eq!(&got, want, "{acq} {m} {t} {mcc} {cat}");
        }
        let codes = |d: Decline| d.code.as_str().to_string();
        assert_eq!(codes(Decline::MCC_NOT_PERMITTED), "03");
        assert_eq!(codes(Decline::TERMINAL_UNKNOWN), "97");
        assert_eq!(codes(Decline::TERMINAL_CATEGORY), "58");
        for d in [Decline::MERCHANT_CATEGORY, Decline::TERMINAL_UNKNOWN] {
            assert!(d.reason.len() <= 25);
        }
    }

    #[test]
    fn padded_and_short_field_values() {
        let reg = registry(MERCHANTS, TERMINALS).unwrap();
        // Trailing padding in the request and in the stored form are the same thing.
        assert!(reg.merchant("01030000", b"MERCHANT0000001").is_some());
        let short = "01030000,SHOP1,Short,5411,active,*,\n";
        let reg = registry(
            &format!("{MERCHANTS}{short}"),
            &format!("{TERMINALS}01030000,SHOP1,T1,active,*\n"),
        )
        .unwrap();
        assert!(reg
            .terminal("01030000", b"SHOP1          ", b"T1      ")
            .is_some());
        assert!(reg.terminal("01030000", b"SHOP1", b"T1").is_some());
        assert_eq!(
            reg.merchant("01030000", b"SHOP1").unwrap().id.as_field(),
            b"SHOP1          "
        );
    }

    #[test]
    fn category_of_every_kind() {
        use TxnCategory::*;
        let cases = [
            (TxnKind::Purchase, Some(Purchase)),
            (TxnKind::InstallmentPurchase, Some(Installment)),
            (TxnKind::Void, None),
            (TxnKind::Refund, Some(Refund)),
            (TxnKind::BalanceInquiry, Some(Balance)),
            (TxnKind::CashWithdrawal, Some(Cash)),
            (TxnKind::Preauth, Some(Preauth)),
            (TxnKind::PreauthVoid, Some(Preauth)),
            (TxnKind::PreauthCompletion, Some(Purchase)),
            (TxnKind::Reversal, None),
            (TxnKind::NetworkManagement, None),
            (TxnKind::Unknown, None),
        ];
        for (kind, want) in cases {
            assert_eq!(TxnCategory::of(kind), want, "{kind:?}");
        }
        for c in TxnCategory::ALL {
            assert_eq!(TxnCategory::parse(&c.as_str().to_uppercase()), Some(c));
        }
        let set = CategorySet::parse("cash | balance").unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Cash, Balance]);
        assert_eq!(CategorySet::parse("*").unwrap(), CategorySet::ALL);
    }

    #[test]
    fn load_errors_name_file_line_column() {
        let m_head = "acquirer,merchant_id,name,mcc,status,categories,extra_mccs\n";
        let t_head = "acquirer,merchant_id,terminal_id,status,categories\n";
        let good_m = "01030000,M1,Shop,5411,active,*,\n";
        // (merchants.csv, terminals.csv, file, line, column, part of the reason).
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Option<u64>,
            Option<&'a str>,
            &'a str,
        );
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("", t_head, "merchants.csv", None, None, "empty file"),
            ("acquirer,merchant_id\n", t_head, "merchants.csv", Some(1), None, "lacks column \"name\""),
            (&format!("{m_head}# c\n\n01030000,M1,Shop,541,active,*,\n"), t_head, "merchants.csv", Some(4), Some("mcc"), "4 digits"),
            (&format!("{m_head}0103000A,M1,Shop,5411,active,*,\n"), t_head, "merchants.csv", Some(2), Some("acquirer"), "digits"),
            (&format!("{m_head}01030000,MERCHANT00000001,Shop,5411,active,*,\n"), t_head, "merchants.csv", Some(2), Some("merchant_id"), "1 to 15"),
            (&format!("{m_head}01030000,M1,,5411,active,*,\n"), t_head, "merchants.csv", Some(2), Some("name"), "empty"),
            (&format!("{m_head}01030000,M1,Shop,5411,closed,*,\n"), t_head, "merchants.csv", Some(2), Some("status"), "active or suspended"),
            (&format!("{m_head}01030000,M1,Shop,5411,active,purchase|atm,\n"), t_head, "merchants.csv", Some(2), Some("categories"), "unknown category"),
            (&format!("{m_head}01030000,M1,Shop,5411,active,,\n"), t_head, "merchants.csv", Some(2), Some("categories"), "unknown category"),
            (&format!("{m_head}01030000,M1,Shop,5411,active,*,5411|77\n"), t_head, "merchants.csv", Some(2), Some("extra_mccs"), "4 digits"),
            (&format!("{m_head}01030000,M1,Shop,5411,active,*\n"), t_head, "merchants.csv", Some(2), None, "expected 7 fields"),
            (&format!("{m_head}{good_m}\n{good_m}"), t_head, "merchants.csv", Some(4), Some("merchant_id"), "already listed at line 2"),
            (good_m_file(), &format!("{t_head}01030000,M2,T1,active,*\n"), "terminals.csv", Some(2), Some("merchant_id"), "not in merchants.csv"),
            (good_m_file(), &format!("{t_head}01040000,M1,T1,active,*\n"), "terminals.csv", Some(2), Some("merchant_id"), "not in merchants.csv"),
            (good_m_file(), &format!("{t_head}01030000,M1,TERMINAL1,active,*\n"), "terminals.csv", Some(2), Some("terminal_id"), "1 to 8"),
            (good_m_file(), &format!("{t_head}01030000,M1,T1,active,*\n#x\n01030000,M1,T1,active,*\n"), "terminals.csv", Some(4), Some("terminal_id"), "already listed at line 2"),
            (good_m_file(), "acquirer,merchant_id,terminal_id,status,categories,extra\n", "terminals.csv", Some(1), None, "unknown column \"extra\""),
        ];
        for (m, t, file, line, column, reason) in cases {
            let e = registry(m, t)
                .err()
                .unwrap_or_else(|| panic!("accepted {m:?} {t:?}"));
            assert_eq!(e.file, Path::new(file), "{e}");
            assert_eq!((e.line, e.column), (*line, *column), "{e}");
            assert!(e.reason.contains(reason), "{e}");
        }
        let e = registry(&format!("{m_head}01030000,M1,Shop,541,active,*,\n"), t_head).unwrap_err();
        assert_eq!(
            e.to_string(),
            "merchants.csv: line 2 column mcc: MCC \"541\" must be 4 digits"
        );
    }

    #[test]
    fn byte_order_mark_and_crlf_accepted() {
        let m = "\u{feff}acquirer,merchant_id,name,mcc,status,categories,extra_mccs\r\n\
                 # comment\r\n01030000,M1,Shop,5411,active,*,\r\n";
        let t =
            "acquirer,merchant_id,terminal_id,status,categories\r\n\r\n01030000,M1,T1,active,*\r\n";
        let reg = registry(m, t).unwrap();
        assert!(reg
            .check("01030000", b"M1", b"T1", b"5411", TxnCategory::Purchase)
            .is_ok());
        let t = format!("{t}01030000,M1,T1,active,*\r\n");
        assert_eq!(registry(m, &t).unwrap_err().line, Some(4));
    }

    fn good_m_file() -> &'static str {
        "acquirer,merchant_id,name,mcc,status,categories,extra_mccs\n01030000,M1,Shop,5411,active,*,\n"
    }

    #[test]
    fn loads_50000_rows() {
        use std::fmt::Write;
        let mut m = String::from("acquirer,merchant_id,name,mcc,status,categories,extra_mccs\n");
        let mut t = String::from("acquirer,merchant_id,terminal_id,status,categories\n");
        for i in 0..25_000 {
            writeln!(
                m,
                "01030000,M{i:014},\"Shop {i}, Ltd\",5411,active,purchase|refund,"
            )
            .unwrap();
            for j in 0..2 {
                writeln!(t, "01030000,M{i:014},T{j:07},active,*").unwrap();
            }
        }
        let reg = registry(&m, &t).unwrap();
        assert_eq!(
            (reg.merchants().len(), reg.terminals().len()),
            (25_000, 50_000)
        );
        let (merchant, terminal) = reg
            .check(
                "01030000",
                b"M00000000012345",
                b"T0000001",
                b"5411",
                TxnCategory::Refund,
            )
            .unwrap();
        assert_eq!(&*merchant.name, "Shop 12345, Ltd");
        assert_eq!(terminal.id.as_str(), "T0000001");
    }

    #[test]
    fn bundled_files_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let reg = Registry::load(&dir.join("merchants.csv"), &dir.join("terminals.csv")).unwrap();
        let check = |m: &str, t: &str, mcc: &str, c| {
            reg.check("01030000", m.as_bytes(), t.as_bytes(), mcc.as_bytes(), c)
                .map(|_| ())
        };
        assert_eq!(
            check("MERCHANT0000001", "TERM0001", "5411", TxnCategory::Purchase),
            Ok(())
        );
        assert_eq!(
            check("MERCHANT0000001", "TERM0001", "5411", TxnCategory::Cash),
            Err(Decline::MERCHANT_CATEGORY)
        );
        assert_eq!(
            check("AGENT0000000001", "ATM00001", "6011", TxnCategory::Cash),
            Ok(())
        );
        assert!(reg
            .merchants()
            .iter()
            .any(|m| m.status == Status::Suspended));
    }
}
