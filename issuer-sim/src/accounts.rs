//! Card accounts of the simulated bank: status, expiry, PIN, CVN2, balance or credit line,
//! card type and installment eligibility per PAN, loaded from a CSV file
//! (`config/issuer-sim/accounts.csv`), with a template row `*` for PANs not in the file.
//!
//! [`Ledger`] holds the live state: the available balance moves with purchases, cash,
//! preauthorisations and completions (debit), voids, refunds and reversals (credit back),
//! exactly once per transaction: every message is logged on its card under its key
//! (MTI class, F7, F11, F32, F33) and a message seen again is answered as the first time
//! without moving money; a reversal undoes its original only if the original still stands.
//!
//! State is one [`DashMap`] entry per card (a sharded map: no global lock); everything a
//! message touches lives under that one entry.

use crate::plans::InstallmentPlans;
use dashmap::DashMap;
use iso8583::subfields::{InstallmentResponse, OriginalData};
use iso8583::{mask_pan, Message, Mti, ResponseCode};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Transactions remembered per card (older ones are forgotten: their duplicates and
/// related transactions are then answered as unknown).
pub const LOG_CAPACITY: usize = 512;
/// Cards created from the `*` template that get their own tracked balance; PANs beyond
/// this are answered from the template without state (load tests send millions of PANs).
pub const DEFAULT_MAX_GENERATED: usize = 100_000;

/// A problem in the accounts file. Never carries a full PAN.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file} line {line}: {reason}")]
    Row {
        file: String,
        line: u64,
        reason: String,
    },
}

/// Card type (as in `config/bins.csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardType {
    Debit,
    Credit,
    Prepaid,
}

/// One card as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountSpec {
    /// The PAN (digits); `*` for the template.
    pub pan: String,
    /// `None`: active. Otherwise the code every debit and inquiry gets (`21` inactive, `41`
    /// lost, `43` stolen, `04` pick up, `34` fraud, `62` restricted, `01` refer, `38` PIN
    /// locked, or any code written as two characters).
    pub status: Option<ResponseCode>,
    /// Expiry `YYMM`; `None` never expires. Expired (against the clock) or different from
    /// F14: `54`.
    pub expiry: Option<u16>,
    /// The test PIN (ISO 9564 format 0 block in F52, not encrypted: the simulator holds no
    /// keys). `None`: no PIN check.
    pub pin: Option<String>,
    /// The CVN2 (`CV` + 3 digits in F61, the simulator's convention). `None`: no check.
    pub cvn2: Option<[u8; 3]>,
    /// Available balance (debit, prepaid) or open credit line (credit), minor units.
    pub balance: i64,
    pub card_type: CardType,
    /// Cardholder eligible for installments (else `57`).
    pub installment: bool,
    /// Wrong PINs in a row that lock the card: the last one gets `75`, requests on a locked
    /// card `38`.
    pub pin_tries: u8,
}

/// Masked: never shows the PAN, PIN or CVN2.
impl std::fmt::Debug for AccountSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSpec")
            .field("pan", &mask_pan(self.pan.as_bytes()))
            .field("status", &self.status)
            .field("balance", &self.balance)
            .field("card_type", &self.card_type)
            .field("installment", &self.installment)
            .finish_non_exhaustive()
    }
}

impl AccountSpec {
    /// An active card with this balance, no expiry, PIN or CVN2, eligible for installments.
    #[must_use]
    pub fn new(pan: &str, balance: i64) -> Self {
        Self {
            pan: pan.to_owned(),
            status: None,
            expiry: None,
            pin: None,
            cvn2: None,
            balance,
            card_type: CardType::Debit,
            installment: true,
            pin_tries: 3,
        }
    }

    #[must_use]
    pub fn with_status(mut self, code: ResponseCode) -> Self {
        self.status = (!code.is_approved()).then_some(code);
        self
    }

    #[must_use]
    pub fn with_expiry(mut self, yymm: u16) -> Self {
        self.expiry = Some(yymm);
        self
    }

    #[must_use]
    pub fn with_pin(mut self, pin: &str, tries: u8) -> Self {
        self.pin = Some(pin.to_owned());
        self.pin_tries = tries.max(1);
        self
    }

    #[must_use]
    pub fn with_cvn2(mut self, cvn2: [u8; 3]) -> Self {
        self.cvn2 = Some(cvn2);
        self
    }

    #[must_use]
    pub fn with_installment(mut self, eligible: bool) -> Self {
        self.installment = eligible;
        self
    }
}

/// The status column: a name or a two-character response code.
pub fn parse_status(text: &str) -> Option<Option<ResponseCode>> {
    let code = match text.trim().to_ascii_lowercase().as_str() {
        "" | "active" => return Some(None),
        "inactive" | "not_activated" => ResponseCode::NOT_ACTIVATED,
        "lost" => ResponseCode::LOST_CARD,
        "stolen" => ResponseCode::STOLEN_CARD,
        "pickup" | "pick_up" => ResponseCode::PICK_UP,
        "fraud" => ResponseCode::SUSPECTED_FRAUD,
        "restricted" => ResponseCode::RESTRICTED_CARD,
        "refer" => ResponseCode::REFER_TO_ISSUER,
        "pin_locked" => ResponseCode::PIN_TRIES_EXCEEDED,
        "pin_exceeded" => ResponseCode::PIN_TRIES_EXCEEDED_75,
        "closed" | "no_account" => ResponseCode::INVALID_CARD,
        "do_not_honour" => ResponseCode::DO_NOT_HONOUR,
        other => ResponseCode::parse(other.to_ascii_uppercase().as_bytes())?,
    };
    Some((!code.is_approved()).then_some(code))
}

/// The configured accounts: the file's cards and the template for the others.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountBook {
    pub accounts: Vec<AccountSpec>,
    /// For PANs not in the file (the `*` row). `None`: unknown PANs get `14`.
    pub template: Option<AccountSpec>,
    /// Template cards that get a tracked balance (see [`DEFAULT_MAX_GENERATED`]).
    pub max_generated: usize,
}

fn yes(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" | "1" => Some(true),
        "" | "n" | "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

impl AccountBook {
    /// Every PAN unknown, approved from a template with `balance` (what a bank host with
    /// no test data would do in a joint test).
    #[must_use]
    pub fn open(balance: i64) -> Self {
        Self {
            accounts: Vec::new(),
            template: Some(AccountSpec::new("*", balance)),
            max_generated: DEFAULT_MAX_GENERATED,
        }
    }

    #[must_use]
    pub fn with_account(mut self, spec: AccountSpec) -> Self {
        self.accounts.push(spec);
        self
    }

    /// Replace the template (`None`: unknown PANs get `14`).
    #[must_use]
    pub fn with_template(mut self, template: Option<AccountSpec>) -> Self {
        self.template = template;
        self
    }

    /// Load `pan,status,expiry,pin,cvn2,balance,card_type,installment,pin_tries` rows
    /// (header line required, `#` comments).
    pub fn load(path: &Path) -> Result<Self, AccountsError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccountsError::Io {
            file: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse the CSV text of an accounts file; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, AccountsError> {
        let mut reader = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(text.as_bytes());
        let mut book = AccountBook {
            max_generated: DEFAULT_MAX_GENERATED,
            ..AccountBook::default()
        };
        let mut seen = std::collections::HashSet::new();
        for row in reader.records() {
            let bad = |line: u64, reason: String| AccountsError::Row {
                file: file.to_owned(),
                line,
                reason,
            };
            let row = row.map_err(|e| {
                let line = e.position().map_or(0, csv::Position::line);
                // The csv error text never includes field values.
                bad(line, e.kind_text())
            })?;
            let line = row.position().map_or(0, csv::Position::line);
            let get = |i: usize| row.get(i).unwrap_or_default();
            if row.len() != 9 {
                return Err(bad(
                    line,
                    format!("expected 9 columns, found {}", row.len()),
                ));
            }
            let pan = get(0);
            let template = pan == "*";
            if !template
                && (pan.len() < 12 || pan.len() > 19 || !pan.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(bad(line, "pan must be 12 to 19 digits or *".to_owned()));
            }
            if !seen.insert(pan.to_owned()) {
                return Err(bad(
                    line,
                    format!("{} listed twice", mask_pan(pan.as_bytes())),
                ));
            }
            let status = parse_status(get(1)).ok_or_else(|| {
                bad(
                    line,
                    format!("status {:?}: not a known status or code", get(1)),
                )
            })?;
            let expiry = match get(2) {
                "" => None,
                e if e.len() == 4 && e.bytes().all(|b| b.is_ascii_digit()) => {
                    let month = e.get(2..).and_then(|m| m.parse::<u16>().ok()).unwrap_or(0);
                    if !(1..=12).contains(&month) {
                        return Err(bad(line, "expiry must be YYMM".to_owned()));
                    }
                    e.parse().ok()
                }
                _ => return Err(bad(line, "expiry must be YYMM".to_owned())),
            };
            let pin = match get(3) {
                "" => None,
                p if (4..=12).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                    Some(p.to_owned())
                }
                _ => return Err(bad(line, "pin must be 4 to 12 digits".to_owned())),
            };
            let cvn2 = match get(4) {
                "" => None,
                c => Some(
                    c.as_bytes()
                        .try_into()
                        .ok()
                        .filter(|c: &[u8; 3]| c.iter().all(u8::is_ascii_digit))
                        .ok_or_else(|| bad(line, "cvn2 must be 3 digits".to_owned()))?,
                ),
            };
            let balance: i64 = get(5).parse().ok().filter(|b| *b >= 0).ok_or_else(|| {
                bad(
                    line,
                    "balance must be a non-negative integer (minor units)".to_owned(),
                )
            })?;
            let card_type = match get(6).to_ascii_lowercase().as_str() {
                "" | "debit" => CardType::Debit,
                "credit" => CardType::Credit,
                "prepaid" => CardType::Prepaid,
                other => {
                    return Err(bad(
                        line,
                        format!("card_type {other:?}: debit, credit or prepaid"),
                    ))
                }
            };
            let installment =
                yes(get(7)).ok_or_else(|| bad(line, "installment must be Y or N".to_owned()))?;
            let pin_tries = match get(8) {
                "" => 3,
                t => t
                    .parse::<u8>()
                    .ok()
                    .filter(|t| *t >= 1)
                    .ok_or_else(|| bad(line, "pin_tries must be 1 to 255".to_owned()))?,
            };
            let spec = AccountSpec {
                pan: pan.to_owned(),
                status,
                expiry,
                pin,
                cvn2,
                balance,
                card_type,
                installment,
                pin_tries,
            };
            if template {
                book.template = Some(spec);
            } else {
                book.accounts.push(spec);
            }
        }
        Ok(book)
    }
}

trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for csv::Error {
    fn kind_text(&self) -> String {
        match self.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => {
                format!("expected {expected_len} columns, found {len}")
            }
            csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_owned(),
            _ => "unreadable CSV row".to_owned(),
        }
    }
}

/// A PAN as a map key without allocating: its length and its digits as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PanKey(u8, u64);

impl PanKey {
    fn of(pan: &[u8]) -> Option<Self> {
        if pan.is_empty() || pan.len() > 19 {
            return None;
        }
        let mut n: u64 = 0;
        for &b in pan {
            if !b.is_ascii_digit() {
                return None;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        }
        Some(Self(u8::try_from(pan.len()).ok()?, n))
    }
}

/// The key a message is logged under: MTI class + F7 + F11 + F32 + F33 (as received).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MsgKey {
    class: u8,
    transmission: [u8; 10],
    stan: u32,
    acquirer: u64,
    forwarding: u64,
}

fn digits_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

impl MsgKey {
    fn of(msg: &Message) -> Option<Self> {
        Some(Self {
            class: msg.mti().class(),
            transmission: msg.transmission_time()?,
            stan: msg.stan()?,
            acquirer: msg.field(32).and_then(digits_u64).unwrap_or(0),
            forwarding: msg.field(33).and_then(digits_u64).unwrap_or(0),
        })
    }
}

/// What a message is, from MTI, F3 digits 1-2 and F25.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnType {
    Purchase,
    Installment,
    Cash,
    Balance,
    Preauth,
    PreauthVoid,
    Completion,
    Void,
    Refund,
    Reversal,
    /// Anything else: approved without effect.
    Other,
}

impl TxnType {
    #[must_use]
    pub fn of(msg: &Message) -> Self {
        let f3 = msg.processing_code().unwrap_or(*b"000000");
        let kind = [f3[0], f3[1]];
        match (msg.mti(), &kind, msg.pos_condition()) {
            (m, _, _) if m.class() == 4 => TxnType::Reversal,
            (Mti::AUTH_REQUEST, b"03", _) => TxnType::Preauth,
            (Mti::AUTH_REQUEST, b"20", _) => TxnType::PreauthVoid,
            (Mti::FINANCIAL_REQUEST, b"00", Some(6)) => TxnType::Completion,
            (Mti::FINANCIAL_REQUEST, b"00", Some(64)) => TxnType::Installment,
            (Mti::FINANCIAL_REQUEST, b"00", _) => TxnType::Purchase,
            (Mti::FINANCIAL_REQUEST, b"01", _) => TxnType::Cash,
            (Mti::FINANCIAL_REQUEST, b"30", _) => TxnType::Balance,
            (Mti::FINANCIAL_REQUEST, b"20", _) => TxnType::Void,
            (Mti::FINANCIAL_ADVICE, b"20", _) => TxnType::Refund,
            _ => TxnType::Other,
        }
    }

    /// Takes money from the account (and may be voided, refunded or reversed).
    fn is_debit(self) -> bool {
        matches!(
            self,
            TxnType::Purchase
                | TxnType::Installment
                | TxnType::Cash
                | TxnType::Preauth
                | TxnType::Completion
        )
    }
}

/// Where a logged transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnState {
    Approved,
    Declined,
    Voided,
    Reversed,
    Completed,
}

/// One logged message on a card.
#[derive(Debug, Clone)]
struct Txn {
    key: MsgKey,
    kind: TxnType,
    amount: i64,
    state: TxnState,
    /// Sum of approved refunds against it.
    refunded: i64,
    /// For a void, refund, completion, preauthorisation void or reversal: the key of the
    /// transaction it applied to.
    target: Option<MsgKey>,
    /// The answer given (replayed for a duplicate).
    code: ResponseCode,
    auth_code: Option<[u8; 6]>,
    installment: Option<InstallmentResponse>,
}

/// One card's live state.
#[derive(Debug)]
struct Account {
    spec_status: Option<ResponseCode>,
    expiry: Option<u16>,
    pin: Option<Box<str>>,
    cvn2: Option<[u8; 3]>,
    card_type: CardType,
    installment: bool,
    pin_tries: u8,
    available: i64,
    wrong_pins: u8,
    pin_locked: bool,
    log: VecDeque<Txn>,
}

impl Account {
    fn from_spec(spec: &AccountSpec) -> Self {
        Self {
            spec_status: spec.status,
            expiry: spec.expiry,
            pin: spec.pin.as_deref().map(Box::from),
            cvn2: spec.cvn2,
            card_type: spec.card_type,
            installment: spec.installment,
            pin_tries: spec.pin_tries,
            available: spec.balance,
            wrong_pins: 0,
            pin_locked: false,
            log: VecDeque::new(),
        }
    }

    fn find(&self, key: &MsgKey) -> Option<usize> {
        self.log.iter().rposition(|t| t.key == *key)
    }

    fn push(&mut self, txn: Txn) {
        if self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(txn);
    }

    /// The original named by F90 among the logged transactions `accept` allows: the exact
    /// key first; else (the switch rewrites F11 towards the issuer, and a related request
    /// may carry the acquirer's STAN) the transactions with the same F7, F32, F33 and MTI
    /// class, preferring one that still stands with the same amount, the most recent first.
    fn find_original(
        &self,
        od: &OriginalData,
        amount: Option<i64>,
        accept: impl Fn(&Txn) -> bool,
    ) -> Option<usize> {
        let class = od.mti.class();
        let same = |t: &Txn| {
            t.key.class == class
                && t.key.transmission == od.transmission
                && t.key.acquirer == od.acquirer
                && t.key.forwarding == od.forwarding
                && t.kind != TxnType::Reversal
                && accept(t)
        };
        if let Some(i) = self
            .log
            .iter()
            .rposition(|t| same(t) && t.key.stan == od.stan)
        {
            return Some(i);
        }
        let standing = |t: &Txn| t.state == TxnState::Approved;
        self.log
            .iter()
            .rposition(|t| same(t) && standing(t) && amount.is_none_or(|a| a == t.amount))
            .or_else(|| self.log.iter().rposition(|t| same(t) && standing(t)))
            .or_else(|| self.log.iter().rposition(same))
    }

    fn target_index(&self, key: Option<MsgKey>) -> Option<usize> {
        key.and_then(|k| self.find(&k))
    }
}

/// The ledger's answer to one `0100`/`0200`/`0220`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerAnswer {
    pub code: ResponseCode,
    /// F38 for an approval.
    pub auth_code: Option<[u8; 6]>,
    /// F54 available balance (balance inquiry).
    pub balance: Option<(CardType, i64)>,
    /// F57 `IP` (approved installment).
    pub installment: Option<InstallmentResponse>,
    /// Why (for logs and tests).
    pub reason: &'static str,
    /// A message already answered (same key): replayed, nothing moved.
    pub replayed: bool,
}

impl LedgerAnswer {
    fn decline(code: ResponseCode, reason: &'static str) -> Self {
        Self {
            code,
            auth_code: None,
            balance: None,
            installment: None,
            reason,
            replayed: false,
        }
    }
}

/// What a reversal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReversalEffect {
    /// The original was undone (money moved back).
    Reversed,
    /// The original was already reversed, or this advice was seen before: nothing moved.
    AlreadyDone,
    /// The original stands no more (declined, voided, completed): nothing to undo.
    NothingToUndo,
    /// No such original on this card (or no such card): acknowledged, nothing moved.
    NotFound,
}

/// The live accounts.
#[derive(Debug)]
pub struct Ledger {
    accounts: DashMap<PanKey, Account>,
    template: Option<AccountSpec>,
    generated: AtomicUsize,
    max_generated: usize,
    /// `YYMM` the expiry check compares against; `None`: the local clock.
    today: Option<u16>,
}

fn today_yymm() -> u16 {
    chrono::Local::now()
        .format("%y%m")
        .to_string()
        .parse()
        .unwrap_or(0)
}

/// Extract the PIN from an ISO 9564 format 0 PIN block (clear: the simulator holds no keys).
#[must_use]
pub fn pin_from_block(block: &[u8], pan: &[u8]) -> Option<String> {
    let block: [u8; 8] = block.try_into().ok()?;
    let pan_field = pan_block(pan)?;
    let clear: Vec<u8> = block.iter().zip(pan_field).map(|(a, b)| a ^ b).collect();
    let nibble = |i: usize| {
        clear.get(i / 2).map(|b| {
            if i.is_multiple_of(2) {
                b >> 4
            } else {
                b & 0x0F
            }
        })
    };
    if nibble(0)? != 0 {
        return None;
    }
    let len = usize::from(nibble(1)?);
    if !(4..=12).contains(&len) {
        return None;
    }
    let mut pin = String::with_capacity(len);
    for i in 2..2 + len {
        let d = nibble(i)?;
        if d > 9 {
            return None;
        }
        pin.push(char::from(b'0' + d));
    }
    ((2 + len)..16)
        .all(|i| nibble(i) == Some(0x0F))
        .then_some(pin)
}

/// The PAN field of format 0: `0000` + the 12 rightmost PAN digits before the check digit.
fn pan_block(pan: &[u8]) -> Option<[u8; 8]> {
    if pan.len() < 13 || !pan.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let body = pan.get(pan.len() - 13..pan.len() - 1)?;
    let mut out = [0u8; 8];
    for (i, pair) in body.chunks(2).enumerate() {
        let hi = pair.first().map_or(0, |d| d - b'0');
        let lo = pair.get(1).map_or(0, |d| d - b'0');
        *out.get_mut(2 + i)? = (hi << 4) | lo;
    }
    Some(out)
}

/// CVN2 as the simulator reads it from F61: `CV` followed by 3 digits.
fn cvn2_of(f61: &[u8]) -> Option<[u8; 3]> {
    f61.windows(5).find_map(|w| {
        (w.starts_with(b"CV") && w.iter().skip(2).all(u8::is_ascii_digit))
            .then(|| [w[2], w[3], w[4]])
    })
}

fn merchant(msg: &Message) -> &[u8] {
    msg.field(42).unwrap_or_default()
}

impl Ledger {
    #[must_use]
    pub fn new(book: &AccountBook) -> Self {
        let accounts = DashMap::with_capacity(book.accounts.len());
        for spec in &book.accounts {
            if let Some(key) = PanKey::of(spec.pan.as_bytes()) {
                accounts.insert(key, Account::from_spec(spec));
            }
        }
        Self {
            accounts,
            template: book.template.clone(),
            generated: AtomicUsize::new(0),
            max_generated: book.max_generated,
            today: None,
        }
    }

    /// Compare expiries against this `YYMM` instead of the clock (tests).
    #[must_use]
    pub fn with_today(mut self, yymm: u16) -> Self {
        self.today = Some(yymm);
        self
    }

    /// The available balance of a card that has state (file or generated).
    #[must_use]
    pub fn available(&self, pan: &str) -> Option<i64> {
        let key = PanKey::of(pan.as_bytes())?;
        self.accounts.get(&key).map(|a| a.available)
    }

    /// Run `f` on the card's state: the file's account, a generated one from the template
    /// (tracked up to the cap), a throw-away one beyond it, or `None` without a template.
    fn with_account<R>(&self, pan: &[u8], f: impl FnOnce(&mut Account) -> R) -> Option<R> {
        let key = PanKey::of(pan)?;
        if let Some(mut acc) = self.accounts.get_mut(&key) {
            return Some(f(&mut acc));
        }
        let template = self.template.as_ref()?;
        if self.generated.load(Ordering::Relaxed) < self.max_generated {
            let mut created = false;
            let mut acc = self.accounts.entry(key).or_insert_with(|| {
                created = true;
                Account::from_spec(template)
            });
            if created {
                self.generated.fetch_add(1, Ordering::Relaxed);
            }
            return Some(f(&mut acc));
        }
        Some(f(&mut Account::from_spec(template)))
    }

    /// Card checks for a debit or an inquiry: status, expiry, CVN2, PIN.
    fn card_checks(&self, acc: &mut Account, msg: &Message) -> Result<(), LedgerAnswer> {
        if let Some(code) = acc.spec_status {
            return Err(LedgerAnswer::decline(code, "card status"));
        }
        if let Some(expiry) = acc.expiry {
            let today = self.today.unwrap_or_else(today_yymm);
            if expiry < today {
                return Err(LedgerAnswer::decline(
                    ResponseCode::EXPIRED_CARD,
                    "card expired",
                ));
            }
            let f14 = msg
                .field(14)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<u16>().ok());
            if f14.is_some_and(|f| f != expiry) {
                return Err(LedgerAnswer::decline(
                    ResponseCode::EXPIRED_CARD,
                    "F14 differs from the card's expiry",
                ));
            }
        }
        if let (Some(want), Some(f61)) = (acc.cvn2, msg.field(61)) {
            if cvn2_of(f61).is_some_and(|got| got != want) {
                return Err(LedgerAnswer::decline(
                    ResponseCode::CVN_FAILED,
                    "CVN2 does not match",
                ));
            }
        }
        if let (Some(block), Some(pan)) = (msg.field(52), msg.pan()) {
            if acc.pin_locked {
                return Err(LedgerAnswer::decline(
                    ResponseCode::PIN_TRIES_EXCEEDED,
                    "card locked after too many wrong PINs",
                ));
            }
            if let Some(want) = acc.pin.as_deref() {
                let Some(got) = pin_from_block(block, pan) else {
                    return Err(LedgerAnswer::decline(
                        ResponseCode::PIN_FORMAT_ERROR,
                        "F52 is not a format 0 PIN block",
                    ));
                };
                if got != want {
                    acc.wrong_pins = acc.wrong_pins.saturating_add(1);
                    if acc.wrong_pins >= acc.pin_tries {
                        acc.pin_locked = true;
                        return Err(LedgerAnswer::decline(
                            ResponseCode::PIN_TRIES_EXCEEDED_75,
                            "wrong PIN, tries exceeded: card locked",
                        ));
                    }
                    return Err(LedgerAnswer::decline(ResponseCode::WRONG_PIN, "wrong PIN"));
                }
                acc.wrong_pins = 0;
            }
        }
        Ok(())
    }

    /// Decide a `0100`/`0200`/`0220` the rules would approve, moving the balance if it is
    /// approved. `auth_code` becomes F38 of an approval.
    pub fn authorize(
        &self,
        msg: &Message,
        plans: &InstallmentPlans,
        auth_code: [u8; 6],
    ) -> LedgerAnswer {
        let Some(pan) = msg.pan() else {
            return LedgerAnswer::decline(ResponseCode::INVALID_CARD, "no PAN");
        };
        let key = MsgKey::of(msg);
        self.with_account(pan, |acc| {
            if let Some(i) = key.and_then(|k| acc.find(&k)) {
                if let Some(t) = acc.log.get(i) {
                    return LedgerAnswer {
                        code: t.code,
                        auth_code: t.auth_code,
                        balance: None,
                        installment: t.installment.clone(),
                        reason: "duplicate: first answer replayed",
                        replayed: true,
                    };
                }
            }
            let kind = TxnType::of(msg);
            let (answer, txn) = self.decide(acc, msg, kind, plans, auth_code);
            if let (Some(key), Some((amount, state, target))) = (key, txn) {
                acc.push(Txn {
                    key,
                    kind,
                    amount,
                    state,
                    refunded: 0,
                    target,
                    code: answer.code,
                    auth_code: answer.auth_code,
                    installment: answer.installment.clone(),
                });
            }
            answer
        })
        .unwrap_or_else(|| LedgerAnswer::decline(ResponseCode::INVALID_CARD, "no such card"))
    }

    /// The answer, and what to log: `(amount, state, target)` (`None`: not logged).
    #[allow(clippy::type_complexity)]
    fn decide(
        &self,
        acc: &mut Account,
        msg: &Message,
        kind: TxnType,
        plans: &InstallmentPlans,
        auth_code: [u8; 6],
    ) -> (LedgerAnswer, Option<(i64, TxnState, Option<MsgKey>)>) {
        let amount = msg.amount().unwrap_or(0);
        let approve = |reason| LedgerAnswer {
            code: ResponseCode::APPROVED,
            auth_code: Some(auth_code),
            balance: None,
            installment: None,
            reason,
            replayed: false,
        };
        let declined = |a: LedgerAnswer| {
            let log = Some((amount, TxnState::Declined, None));
            (a, log)
        };
        if kind.is_debit() || kind == TxnType::Balance {
            if let Err(d) = self.card_checks(acc, msg) {
                return declined(d);
            }
        }
        match kind {
            TxnType::Balance => {
                let mut a = approve("balance inquiry");
                a.balance = Some((acc.card_type, acc.available));
                (a, None)
            }
            TxnType::Purchase | TxnType::Cash | TxnType::Preauth | TxnType::Installment => {
                let mut a = approve("approved");
                if kind == TxnType::Installment {
                    let Some(Ok(ip)) = msg.installment_request() else {
                        return declined(LedgerAnswer::decline(
                            ResponseCode::FORMAT_ERROR,
                            "F48 IP missing or malformed",
                        ));
                    };
                    match plans.quote(amount, merchant(msg), &ip, acc.installment) {
                        Ok(q) => a.installment = Some(q.response(currency(msg))),
                        Err(d) => {
                            return declined(LedgerAnswer::decline(d.code, d.reason));
                        }
                    }
                }
                if amount <= 0 {
                    return declined(LedgerAnswer::decline(
                        ResponseCode::INVALID_AMOUNT,
                        "amount zero",
                    ));
                }
                if amount > acc.available {
                    return declined(LedgerAnswer::decline(
                        ResponseCode::INSUFFICIENT_FUNDS,
                        "insufficient funds",
                    ));
                }
                acc.available -= amount;
                (a, Some((amount, TxnState::Approved, None)))
            }
            TxnType::Completion | TxnType::PreauthVoid | TxnType::Void | TxnType::Refund => {
                self.related(acc, msg, kind, amount, approve("approved"))
            }
            TxnType::Reversal | TxnType::Other => (approve("approved, no account effect"), None),
        }
    }

    /// Void, refund, completion or preauthorisation void: find the original, check it,
    /// move the money.
    #[allow(clippy::type_complexity)]
    fn related(
        &self,
        acc: &mut Account,
        msg: &Message,
        kind: TxnType,
        amount: i64,
        approved: LedgerAnswer,
    ) -> (LedgerAnswer, Option<(i64, TxnState, Option<MsgKey>)>) {
        let declined = |code, reason| {
            (
                LedgerAnswer::decline(code, reason),
                Some((amount, TxnState::Declined, None)),
            )
        };
        let Some(Ok(od)) = msg.original_data() else {
            return declined(ResponseCode::FORMAT_ERROR, "F90 missing or malformed");
        };
        let wants = |t: &Txn| match kind {
            TxnType::Completion | TxnType::PreauthVoid => t.kind == TxnType::Preauth,
            TxnType::Void => matches!(t.kind, TxnType::Purchase | TxnType::Installment),
            _ => matches!(
                t.kind,
                TxnType::Purchase | TxnType::Installment | TxnType::Completion | TxnType::Cash
            ),
        };
        let hint = matches!(kind, TxnType::Void | TxnType::PreauthVoid).then_some(amount);
        let Some(i) = acc.find_original(&od, hint, wants) else {
            return declined(ResponseCode::ORIGINAL_NOT_FOUND, "original not found");
        };
        let Some(orig) = acc.log.get(i).cloned() else {
            return declined(ResponseCode::ORIGINAL_NOT_FOUND, "original not found");
        };
        match orig.state {
            TxnState::Approved => {}
            TxnState::Declined => {
                return declined(ResponseCode::INVALID_RELATED, "original not approved")
            }
            _ => {
                return declined(
                    ResponseCode::ILLEGAL_RELATED,
                    "original already voided, reversed or completed",
                )
            }
        }
        if amount <= 0 {
            return declined(ResponseCode::INVALID_AMOUNT, "amount zero");
        }
        let target = Some(orig.key);
        match kind {
            TxnType::Void | TxnType::PreauthVoid => {
                if amount != orig.amount {
                    return declined(
                        ResponseCode::INVALID_AMOUNT,
                        "void amount differs from the original",
                    );
                }
                acc.available += orig.amount;
                if let Some(o) = acc.log.get_mut(i) {
                    o.state = TxnState::Voided;
                }
            }
            TxnType::Refund => {
                if orig.refunded + amount > orig.amount {
                    return declined(
                        ResponseCode::ILLEGAL_RELATED,
                        "refunds exceed the original amount",
                    );
                }
                acc.available += amount;
                if let Some(o) = acc.log.get_mut(i) {
                    o.refunded += amount;
                }
            }
            _ => {
                // Completion: release the hold, take the completed amount.
                let free = acc.available + orig.amount;
                if amount > free {
                    return declined(ResponseCode::INSUFFICIENT_FUNDS, "insufficient funds");
                }
                acc.available = free - amount;
                if let Some(o) = acc.log.get_mut(i) {
                    o.state = TxnState::Completed;
                }
            }
        }
        (approved, Some((amount, TxnState::Approved, target)))
    }

    /// Apply a reversal (`0400`/`0420`): undo its original once. Always acknowledged.
    pub fn reverse(&self, msg: &Message) -> ReversalEffect {
        let Some(pan) = msg.pan() else {
            return ReversalEffect::NotFound;
        };
        let Some(key) = MsgKey::of(msg) else {
            return ReversalEffect::NotFound;
        };
        self.with_account(pan, |acc| {
            if acc.find(&key).is_some() {
                return ReversalEffect::AlreadyDone;
            }
            let (effect, target) = Self::undo(acc, msg);
            acc.push(Txn {
                key,
                kind: TxnType::Reversal,
                amount: msg.amount().unwrap_or(0),
                state: TxnState::Approved,
                refunded: 0,
                target,
                code: ResponseCode::APPROVED,
                auth_code: None,
                installment: None,
            });
            effect
        })
        .unwrap_or(ReversalEffect::NotFound)
    }

    fn undo(acc: &mut Account, msg: &Message) -> (ReversalEffect, Option<MsgKey>) {
        let Some(Ok(od)) = msg.original_data() else {
            return (ReversalEffect::NotFound, None);
        };
        // The reversal carries the original's F3: prefer an original of the same type.
        let f3 = msg.processing_code().map(|p| [p[0], p[1]]);
        let same_type = |t: &Txn| {
            let related = matches!(
                t.kind,
                TxnType::Void | TxnType::Refund | TxnType::PreauthVoid
            );
            f3.is_none_or(|p| (&p == b"20") == related)
        };
        let Some(i) = acc
            .find_original(&od, msg.amount(), |t| same_type(t))
            .or_else(|| acc.find_original(&od, msg.amount(), |_| true))
        else {
            return (ReversalEffect::NotFound, None);
        };
        let Some(orig) = acc.log.get(i).cloned() else {
            return (ReversalEffect::NotFound, None);
        };
        let target = Some(orig.key);
        match orig.state {
            TxnState::Reversed => return (ReversalEffect::AlreadyDone, target),
            TxnState::Approved => {}
            _ => return (ReversalEffect::NothingToUndo, target),
        }
        let parent = acc.target_index(orig.target);
        match orig.kind {
            TxnType::Void | TxnType::PreauthVoid => {
                // The original stands again.
                acc.available -= orig.amount;
                if let Some(p) = parent.and_then(|p| acc.log.get_mut(p)) {
                    p.state = TxnState::Approved;
                }
            }
            TxnType::Refund => {
                acc.available -= orig.amount;
                if let Some(p) = parent.and_then(|p| acc.log.get_mut(p)) {
                    p.refunded -= orig.amount;
                }
            }
            TxnType::Completion => {
                // Give the completed amount back, hold the preauthorisation again.
                acc.available += orig.amount;
                if let Some(p) = parent.and_then(|p| acc.log.get_mut(p)) {
                    p.state = TxnState::Approved;
                    let hold = p.amount;
                    acc.available -= hold;
                }
            }
            _ => acc.available += orig.amount - orig.refunded,
        }
        if let Some(o) = acc.log.get_mut(i) {
            o.state = TxnState::Reversed;
        }
        (ReversalEffect::Reversed, target)
    }
}

fn currency(msg: &Message) -> u16 {
    msg.field(49)
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok())
        .unwrap_or(156)
}
