//! Configuration: loading, validating and exposing `switch.toml` and the files it references
//! (today the BIN table; later merchants, terminals, fee schedules).
//!
//! This module owns the configuration file format, the [`ConfigError`] type and the typed,
//! immutable [`Config`] snapshot the daemon reads. It performs no network I/O and starts
//! nothing: it reads files once at load and returns plain data, so a reload can build a new
//! snapshot and swap it in (ARCHITECTURE.md principle 3) or keep the old one and report why.
//! It does not own the BIN lookup structure (`bins.rs`) nor anything that acts on the values
//! (listeners, journal, logging setup live elsewhere).
//!
//! Every error names the file, the key (`institution[2].timeout_ms`,
//! `line 14 column prefix` for CSV files) and the reason, because the operator fixing a
//! rejected configuration at cut-over time should not have to guess. Unknown keys are errors
//! (`deny_unknown_fields`): a misspelt optional key would otherwise silently keep its default.
//!
//! Relative file names inside `switch.toml` are resolved against the directory of
//! `switch.toml` itself, so the switch behaves the same whatever its working directory.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use serde::Deserialize;

use crate::bins::{self, BinTable};

// ---------------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------------

/// An institution ID (SPEC.md section 1): the codec's type, so IDs from configuration and
/// from message headers compare without conversion.
pub use iso8583::InstId as InstitutionId;

// ---------------------------------------------------------------------------------------------
// Error
// ---------------------------------------------------------------------------------------------

/// Why a configuration was rejected: the file, the key inside it and the reason.
///
/// `key` is a TOML path such as `institution[2].timeout_ms`, or for CSV files a location such
/// as `line 14 column prefix`. Display: `<file>: <key>: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {key}: {reason}", file.display())]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Where in the file.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    fn new(file: &Path, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Typed configuration
// ---------------------------------------------------------------------------------------------

/// Journal durability (ARCHITECTURE principle 6): the journal's own type, configured here.
pub use crate::journal::Durability;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[switch]`: the switch itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchSettings {
    /// The switch's own institution ID (destination of requests, source of what it sends).
    pub id: InstitutionId,
    /// Maximum frame body in bytes (SPEC 2); larger frames close the link.
    pub max_frame_bytes: usize,
    /// Send a `0000` keep-alive after this long without sending anything.
    pub keepalive_send: Duration,
    /// Close a link that has received nothing for this long.
    pub idle_timeout: Duration,
    /// Local time of the settlement-day cut-over (SPEC 12).
    pub settlement_cutover: NaiveTime,
    /// How long a cut-over lasts, from `0820/201` (start) to `0820/202` (end).
    pub cutover_duration: Duration,
    /// Transactions a business day is expected to hold: the day's tables are sized for it
    /// at start (their indexes: ~9 bytes an entry each). 0: grow as needed, incrementally
    /// (the default, since tests start many switches in one process).
    pub expected_daily_transactions: usize,
    /// Entries each of the day's tables (request keys and originals, reversal answers)
    /// keeps in memory; beyond it a table writes its entries to run files under
    /// `<journal dir>/daytables` (a cache of the journal). 0: everything stays in memory.
    pub day_tables_memory: usize,
    /// Set aside at start, resident, the memory the day's tables take over a day of
    /// `expected_daily_transactions` (their arenas up to `day_tables_memory`, the filters
    /// of what goes to disk): memory is then flat through such a day, and a machine short
    /// of it fails at start rather than at the day's peak.
    pub reserve_day_tables: bool,
    /// Actor threads as configured; 0 means one per core (see [`SwitchSettings::arbiter_count`]).
    pub arbiters: usize,
}

impl SwitchSettings {
    /// Number of actor threads to start: `arbiters`, or the number of cores when it is 0.
    pub fn arbiter_count(&self) -> usize {
        if self.arbiters > 0 {
            self.arbiters
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

/// `[listeners]`: where the switch accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// Acquirers dial here.
    pub acquirer: SocketAddr,
    /// Issuers that connect in dial here.
    pub issuer: SocketAddr,
    /// HTTP admin endpoint (`/metrics`, `/healthz`).
    pub admin: SocketAddr,
    /// Maximum simultaneous institution connections (both listeners together).
    pub max_connections: usize,
}

/// `[journal]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSettings {
    /// Journal directory, resolved against the config file's directory.
    pub dir: PathBuf,
    /// Whether a batch is fsynced before it is answered.
    pub durability: Durability,
    /// Bytes the journal zero-fills ahead of its data (0: off; see
    /// `JournalOptions::zero_fill_ahead`).
    pub zero_fill_ahead: u64,
    /// At most one fsync per this long (zero: back to back; see
    /// `JournalOptions::commit_interval`).
    pub commit_interval: Duration,
    /// The interval after a batch of `busy_batch_records` or more (see
    /// `JournalOptions::busy_commit_interval`; zero: always `commit_interval`).
    pub busy_commit_interval: Duration,
    pub busy_batch_records: usize,
    /// Fsyncs this slow are counted and logged (`None`: not reported; see
    /// `JournalOptions::slow_sync`).
    pub slow_sync: Option<Duration>,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingSettings {
    /// Output format.
    pub format: LogFormat,
    /// `tracing_subscriber::EnvFilter` directive (validated at load); `RUST_LOG` overrides.
    pub level: String,
}

/// `[routing]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingSettings {
    /// BIN table file (resolved), or `None` when not configured (every lookup misses: `15`).
    pub bin_table: Option<PathBuf>,
}

/// `[registry]`: the acquirers' merchants and terminals (SPEC 9 rule 3) and their limits
/// (rule 4). Without merchant and terminal files the registry rules are off; without a
/// limits file there are no limits.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// Merchants and terminals, when configured.
    pub registry: Option<std::sync::Arc<crate::registry::Registry>>,
    /// Limit settings (empty: no limits).
    pub limits: std::sync::Arc<crate::limits::LimitSettings>,
}

/// `[rules]`: windows of related transactions (SPEC.md sections 7 and 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulesSettings {
    /// Refunds of an ordinary purchase are accepted this many days after its approval.
    pub refund_window_days: u32,
    /// An installment purchase refunded within this many days returns the merchant subsidy
    /// fee in proportion (SPEC 11: 30).
    pub installment_subsidy_return_days: u32,
    /// Installment refunds after this many days are refused `22` (SPEC 11: 180).
    pub installment_refund_days: u32,
}

impl Default for RulesSettings {
    fn default() -> Self {
        Self {
            refund_window_days: 30,
            installment_subsidy_return_days: 30,
            installment_refund_days: 180,
        }
    }
}

/// `[clearing]`: where clearing files go and the fee schedule they are priced with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingSettings {
    /// Output directory (resolved against the config file's directory).
    pub output_dir: PathBuf,
    /// Fee schedule file (resolved), `None`: no interchange fees.
    pub fees: Option<PathBuf>,
    /// Run clearing automatically when a cut-over ends.
    pub after_cutover: bool,
}

/// Settings that exist only for institutions with the `acquirer` role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquirerSettings {
    /// Requests before an 0820/001 sign-on on the link are answered `C1` (SPEC 6).
    pub require_sign_on: bool,
}

/// Settings that exist only for institutions with the `issuer` role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSettings {
    /// Issuer response timeout (SPEC 8); the acquirer then gets `98`.
    pub timeout: Duration,
    /// In-flight requests allowed per issuer link; above it requests get `91`.
    pub max_in_flight: usize,
    /// Send 0820/301 on a link idle this long; `None` = echo disabled.
    pub echo_interval: Option<Duration>,
    /// An echo unanswered this long marks the link down.
    pub echo_timeout: Duration,
    /// `host:port` addresses the switch dials (one link each); empty = the issuer connects in.
    pub connect: Vec<String>,
    /// First reconnect delay after a dialled link drops.
    pub reconnect_min: Duration,
    /// Cap of the exponential reconnect backoff.
    pub reconnect_max: Duration,
    /// Issuer enabled for installments (SPEC 9 rule 5).
    pub installment: bool,
    /// Store-and-forward: an unanswered 0420 advice is resent after this long (SPEC 8).
    pub advice_retry: Duration,
    /// Store-and-forward: sends before an advice is reported for manual handling.
    pub advice_max_attempts: u32,
}

/// One `[[institution]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    /// Primary institution ID (what BIN rows and clearing files use).
    pub id: InstitutionId,
    /// Display name.
    pub name: String,
    /// Additional source IDs accepted on this institution's links (SPEC 1).
    pub branch_ids: Vec<InstitutionId>,
    /// Peer IPs allowed to connect for this institution; empty = any.
    pub allowed_addrs: Vec<IpAddr>,
    /// Present iff the institution has the `acquirer` role.
    pub acquirer: Option<AcquirerSettings>,
    /// Present iff the institution has the `issuer` role.
    pub issuer: Option<IssuerSettings>,
}

impl Institution {
    /// Has the `acquirer` role (may connect to the acquirer listener and send requests).
    pub fn is_acquirer(&self) -> bool {
        self.acquirer.is_some()
    }

    /// Has the `issuer` role (may be routed to, may connect to the issuer listener).
    pub fn is_issuer(&self) -> bool {
        self.issuer.is_some()
    }

    /// Whether `id` is this institution's ID or one of its branch IDs (the header source-ID
    /// check of SPEC 1).
    pub fn owns_id(&self, id: &InstitutionId) -> bool {
        self.id == *id || self.branch_ids.contains(id)
    }

    /// Whether a peer at `ip` may connect for this institution.
    pub fn allows_addr(&self, ip: IpAddr) -> bool {
        self.allowed_addrs.is_empty() || self.allowed_addrs.contains(&ip)
    }
}

/// The validated configuration: an immutable snapshot (share it behind `Arc`/`arc-swap`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The `switch.toml` this was loaded from (as given; used for reloads and messages).
    pub path: PathBuf,
    /// `[switch]`.
    pub switch: SwitchSettings,
    /// `[listeners]`.
    pub listeners: Listeners,
    /// `[journal]`.
    pub journal: JournalSettings,
    /// `[logging]`.
    pub logging: LoggingSettings,
    /// `[routing]`.
    pub routing: RoutingSettings,
    /// `[[institution]]`, in file order.
    pub institutions: Vec<Institution>,
    /// BIN routing table loaded from `routing.bin_table` (empty if none).
    pub bins: BinTable,
    /// `[registry]`: merchants, terminals, limits.
    pub registry: RegistrySettings,
    /// `[rules]`.
    pub rules: RulesSettings,
    /// `[clearing]`.
    pub clearing: ClearingSettings,
    /// Primary and branch IDs -> index into `institutions`.
    by_id: HashMap<InstitutionId, usize, crate::FastHash>,
}

impl Config {
    /// Reads, parses and validates `path` and the files it references.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, "(file)", format!("cannot read: {e}")))?;
        Config::from_toml_str(&text, path)
    }

    /// Parses and validates configuration text as if it had been read from `path`: `path`
    /// labels errors and its directory anchors relative file names. For tests and tools.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let key = e.span().map(|s| line_column(text, s.start)).map_or_else(
                || "(syntax)".to_string(),
                |(l, c)| format!("line {l} column {c}"),
            );
            ConfigError::new(
                path,
                key,
                format!("TOML syntax error: {}", e.message().trim()),
            )
        })?;
        let raw = RawConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| serde_error(path, "", &e))?;
        build(raw, path, base)
    }

    /// The institution owning `id` as a primary or branch ID. Trailing spaces are ignored, so
    /// a header field (`"01030000   "`) can be passed as is.
    pub fn institution(&self, id: &str) -> Option<&Institution> {
        let id = InstitutionId::from_header_field(id.as_bytes())?;
        self.institution_by_id(&id)
    }

    /// Like [`Config::institution`], for an already parsed ID.
    pub fn institution_by_id(&self, id: &InstitutionId) -> Option<&Institution> {
        self.institutions.get(*self.by_id.get(id)?)
    }

    /// Institutions with the acquirer role.
    pub fn acquirers(&self) -> impl Iterator<Item = &Institution> {
        self.institutions.iter().filter(|i| i.is_acquirer())
    }

    /// Institutions with the issuer role.
    pub fn issuers(&self) -> impl Iterator<Item = &Institution> {
        self.institutions.iter().filter(|i| i.is_issuer())
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (serde) shape of switch.toml. Defaults here are the documented defaults; keep them in
// step with config/switch.toml's comments.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    switch: RawSwitch,
    #[serde(default)]
    listeners: RawListeners,
    #[serde(default)]
    journal: RawJournal,
    #[serde(default)]
    logging: RawLogging,
    #[serde(default)]
    routing: RawRouting,
    #[serde(default)]
    registry: RawRegistry,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    clearing: RawClearing,
    /// Kept as raw values and deserialized one by one, so errors can name the index
    /// (`institution[2].timeout_ms`); toml's own errors do not carry array positions.
    #[serde(default)]
    institution: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSwitch {
    id: String,
    max_frame_bytes: u64,
    keepalive_send_secs: u64,
    idle_timeout_secs: u64,
    settlement_cutover: String,
    cutover_duration_secs: u64,
    expected_daily_transactions: u64,
    day_tables_memory: u64,
    reserve_day_tables: bool,
    arbiters: u64,
}

impl Default for RawSwitch {
    fn default() -> Self {
        RawSwitch {
            id: "00010000".into(),
            max_frame_bytes: 2048,
            keepalive_send_secs: 120,
            idle_timeout_secs: 180,
            settlement_cutover: "23:00".into(),
            cutover_duration_secs: 30,
            expected_daily_transactions: 0,
            day_tables_memory: 2_000_000,
            reserve_day_tables: false,
            arbiters: 0,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawListeners {
    acquirer: String,
    issuer: String,
    admin: String,
    max_connections: u64,
}

impl Default for RawListeners {
    fn default() -> Self {
        RawListeners {
            acquirer: "127.0.0.1:5001".into(),
            issuer: "127.0.0.1:5002".into(),
            admin: "127.0.0.1:5080".into(),
            max_connections: 1024,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRules {
    refund_window_days: u64,
    installment_subsidy_return_days: u64,
    installment_refund_days: u64,
}

impl Default for RawRules {
    fn default() -> Self {
        let d = RulesSettings::default();
        RawRules {
            refund_window_days: d.refund_window_days.into(),
            installment_subsidy_return_days: d.installment_subsidy_return_days.into(),
            installment_refund_days: d.installment_refund_days.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawClearing {
    output_dir: String,
    fees: Option<String>,
    after_cutover: bool,
}

impl Default for RawClearing {
    fn default() -> Self {
        RawClearing {
            output_dir: "clearing".into(),
            fees: None,
            after_cutover: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawJournal {
    dir: String,
    durability: Durability,
    zero_fill_kib: u64,
    commit_interval_us: u64,
    busy_commit_interval_us: u64,
    busy_batch_records: u64,
    slow_fsync_ms: u64,
}

impl Default for RawJournal {
    fn default() -> Self {
        RawJournal {
            dir: "journal".into(),
            durability: Durability::Fsync,
            zero_fill_kib: 1024,
            commit_interval_us: 1000,
            busy_commit_interval_us: 2000,
            busy_batch_records: 512,
            slow_fsync_ms: 100,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLogging {
    format: LogFormat,
    level: String,
}

impl Default for RawLogging {
    fn default() -> Self {
        RawLogging {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRouting {
    bin_table: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRegistry {
    merchants: Option<String>,
    terminals: Option<String>,
    limits: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Role {
    Acquirer,
    Issuer,
}

/// Role-specific keys are `Option` so that setting one on an institution without that role
/// can be reported instead of silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstitution {
    id: String,
    name: String,
    roles: Vec<Role>,
    #[serde(default)]
    branch_ids: Vec<String>,
    #[serde(default)]
    allowed_addrs: Vec<String>,
    // acquirer
    require_sign_on: Option<bool>,
    // issuer
    timeout_ms: Option<u64>,
    max_in_flight: Option<u64>,
    echo_interval_secs: Option<u64>,
    echo_timeout_secs: Option<u64>,
    connect: Option<Vec<String>>,
    reconnect_min_ms: Option<u64>,
    reconnect_max_ms: Option<u64>,
    installment: Option<bool>,
    advice_retry_secs: Option<u64>,
    advice_max_attempts: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Smallest useful frame: 46-byte header + MTI (4) + primary bitmap (8), SPEC 3.
const MIN_FRAME_BYTES: u64 = 58;
/// The length prefix is 4 decimal digits (SPEC 2).
const MAX_FRAME_BYTES: u64 = 9999;

fn build(raw: RawConfig, path: &Path, base: &Path) -> Result<Config, ConfigError> {
    let err = |key: &str, reason: String| ConfigError::new(path, key, reason);

    // [switch]
    let s = raw.switch;
    let switch_id = InstitutionId::parse(&s.id).map_err(|r| err("switch.id", r))?;
    let max_frame_bytes = in_range(s.max_frame_bytes, MIN_FRAME_BYTES, MAX_FRAME_BYTES)
        .map_err(|r| {
            err(
                "switch.max_frame_bytes",
                format!("{r} (header + MTI + bitmap need {MIN_FRAME_BYTES}; the length prefix has 4 digits)"),
            )
        })?;
    let keepalive_send =
        secs(s.keepalive_send_secs, 3_600).map_err(|r| err("switch.keepalive_send_secs", r))?;
    let idle_timeout =
        secs(s.idle_timeout_secs, 604_800).map_err(|r| err("switch.idle_timeout_secs", r))?;
    // With the same settings on both ends, a peer would otherwise close our quiet link
    // before our keep-alive reaches it (SPEC 2 defaults: 120 s send, 180 s idle).
    if keepalive_send >= idle_timeout {
        return Err(err(
            "switch.keepalive_send_secs",
            format!(
                "must be less than switch.idle_timeout_secs ({}), so idle links are kept alive",
                s.idle_timeout_secs
            ),
        ));
    }
    let settlement_cutover =
        parse_hhmm(&s.settlement_cutover).map_err(|r| err("switch.settlement_cutover", r))?;
    let expected_daily_transactions = in_range(s.expected_daily_transactions, 0, 1_000_000_000)
        .map_err(|r| err("switch.expected_daily_transactions", r))?;
    let day_tables_memory = in_range(s.day_tables_memory, 0, 1_000_000_000)
        .map_err(|r| err("switch.day_tables_memory", r))?;
    if s.reserve_day_tables && (expected_daily_transactions == 0 || day_tables_memory == 0) {
        return Err(err(
            "switch.reserve_day_tables",
            "needs switch.expected_daily_transactions (the day to reserve for) and \
             switch.day_tables_memory (the bound past which entries go to disk) above 0"
                .into(),
        ));
    }
    let cutover_duration =
        secs(s.cutover_duration_secs, 3_600).map_err(|r| err("switch.cutover_duration_secs", r))?;
    let arbiters = in_range(s.arbiters, 0, 1024).map_err(|r| err("switch.arbiters", r))?;

    // [listeners]
    let l = raw.listeners;
    let acquirer = socket_addr(&l.acquirer).map_err(|r| err("listeners.acquirer", r))?;
    let issuer = socket_addr(&l.issuer).map_err(|r| err("listeners.issuer", r))?;
    let admin = socket_addr(&l.admin).map_err(|r| err("listeners.admin", r))?;
    let named = [
        ("listeners.acquirer", acquirer),
        ("listeners.issuer", issuer),
        ("listeners.admin", admin),
    ];
    for (i, (key, addr)) in named.iter().enumerate() {
        for (other_key, other) in named.iter().take(i) {
            if binds_clash(addr, other) {
                return Err(err(
                    key,
                    format!("{addr} clashes with {other_key} ({other}): they cannot both bind"),
                ));
            }
        }
    }
    let max_connections = in_range(l.max_connections, 1, 1_000_000)
        .map_err(|r| err("listeners.max_connections", r))?;

    // [journal]
    if raw.journal.dir.trim().is_empty() {
        return Err(err("journal.dir", "must not be empty".into()));
    }
    let zero_fill_kib = in_range(raw.journal.zero_fill_kib, 0, 1 << 20)
        .map_err(|r| err("journal.zero_fill_kib", r))?;
    let commit_interval_us = in_range(raw.journal.commit_interval_us, 0, 100_000)
        .map_err(|r| err("journal.commit_interval_us", r))?;
    // Below commit_interval_us (as with a long interval and this default) it has no effect.
    let busy_commit_interval_us = in_range(raw.journal.busy_commit_interval_us, 0, 100_000)
        .map_err(|r| err("journal.busy_commit_interval_us", r))?;
    // The writer's batches hold at most 4,096 records.
    let busy_batch_records = in_range(raw.journal.busy_batch_records, 1, 4096)
        .map_err(|r| err("journal.busy_batch_records", r))?;
    let slow_fsync_ms = in_range(raw.journal.slow_fsync_ms, 0, 600_000)
        .map_err(|r| err("journal.slow_fsync_ms", r))?;
    let journal = JournalSettings {
        dir: base.join(&raw.journal.dir),
        durability: raw.journal.durability,
        zero_fill_ahead: zero_fill_kib as u64 * 1024,
        commit_interval: Duration::from_micros(commit_interval_us as u64),
        busy_commit_interval: Duration::from_micros(busy_commit_interval_us as u64),
        busy_batch_records,
        slow_sync: (slow_fsync_ms > 0).then(|| Duration::from_millis(slow_fsync_ms as u64)),
    };

    // [logging]
    let level = raw.logging.level.trim().to_string();
    if level.is_empty() {
        return Err(err(
            "logging.level",
            "must not be empty (e.g. \"info\")".into(),
        ));
    }
    tracing_subscriber::EnvFilter::try_new(&level).map_err(|e| {
        err(
            "logging.level",
            format!("invalid filter directive {level:?}: {e}"),
        )
    })?;
    let logging = LoggingSettings {
        format: raw.logging.format,
        level,
    };

    // [[institution]]
    let mut institutions = Vec::with_capacity(raw.institution.len());
    // Every ID in use -> the key that declared it, for duplicate messages.
    let mut declared: HashMap<InstitutionId, String> = HashMap::new();
    declared.insert(switch_id, "switch.id".into());
    let mut by_id: HashMap<_, _, crate::FastHash> = HashMap::default();
    for (i, value) in raw.institution.into_iter().enumerate() {
        let prefix = format!("institution[{i}]");
        let ri = RawInstitution::deserialize(value).map_err(|e| serde_error(path, &prefix, &e))?;
        let inst = institution(ri, &prefix, path)?;
        let ids = std::iter::once((inst.id, format!("{prefix}.id"))).chain(
            inst.branch_ids
                .iter()
                .enumerate()
                .map(|(b, id)| (*id, format!("{prefix}.branch_ids[{b}]"))),
        );
        for (id, key) in ids {
            if let Some(first) = declared.get(&id) {
                return Err(err(
                    &key,
                    format!("institution ID {id} is already used by {first}; IDs must be unique"),
                ));
            }
            declared.insert(id, key);
            by_id.insert(id, i);
        }
        institutions.push(inst);
    }

    // [routing] and the BIN table it names.
    let bin_table = match raw.routing.bin_table {
        Some(name) if name.trim().is_empty() => {
            return Err(err(
                "routing.bin_table",
                "must not be empty; omit the key for no BIN table".into(),
            ))
        }
        Some(name) => Some(base.join(name)),
        None => None,
    };
    let bins = match &bin_table {
        Some(file) => load_bins(file, path, &institutions, &by_id)?,
        None => BinTable::empty(),
    };

    let registry = load_registry(raw.registry, path, base)?;

    // [rules]
    let days = |v: u64, key: &str| {
        u32::try_from(in_range(v, 1, 3650).map_err(|r| err(key, r))?)
            .map_err(|_| err(key, "out of range".into()))
    };
    let rules = RulesSettings {
        refund_window_days: days(raw.rules.refund_window_days, "rules.refund_window_days")?,
        installment_subsidy_return_days: days(
            raw.rules.installment_subsidy_return_days,
            "rules.installment_subsidy_return_days",
        )?,
        installment_refund_days: days(
            raw.rules.installment_refund_days,
            "rules.installment_refund_days",
        )?,
    };
    if rules.installment_subsidy_return_days > rules.installment_refund_days {
        return Err(err(
            "rules.installment_subsidy_return_days",
            format!(
                "must not exceed rules.installment_refund_days ({})",
                rules.installment_refund_days
            ),
        ));
    }

    // [clearing]
    if raw.clearing.output_dir.trim().is_empty() {
        return Err(err("clearing.output_dir", "must not be empty".into()));
    }
    let fees = match raw.clearing.fees {
        Some(name) if name.trim().is_empty() => {
            return Err(err(
                "clearing.fees",
                "must not be empty; omit the key for no fee schedule".into(),
            ))
        }
        Some(name) => {
            let file = base.join(name);
            if !file.is_file() {
                return Err(err(
                    "clearing.fees",
                    format!("{}: no such file", file.display()),
                ));
            }
            Some(file)
        }
        None => None,
    };
    let clearing = ClearingSettings {
        output_dir: base.join(raw.clearing.output_dir),
        fees,
        after_cutover: raw.clearing.after_cutover,
    };

    Ok(Config {
        path: path.to_path_buf(),
        switch: SwitchSettings {
            id: switch_id,
            max_frame_bytes,
            keepalive_send,
            idle_timeout,
            settlement_cutover,
            cutover_duration,
            expected_daily_transactions,
            day_tables_memory,
            reserve_day_tables: s.reserve_day_tables,
            arbiters,
        },
        listeners: Listeners {
            acquirer,
            issuer,
            admin,
            max_connections,
        },
        journal,
        logging,
        routing: RoutingSettings { bin_table },
        institutions,
        bins,
        registry,
        rules,
        clearing,
        by_id,
    })
}

/// `[registry]`: whole-file problems point at the key naming the file; problems inside a
/// file point at its line and column.
fn load_registry(
    raw: RawRegistry,
    path: &Path,
    base: &Path,
) -> Result<RegistrySettings, ConfigError> {
    let from = |key: &'static str| {
        move |e: crate::registry::RegistryError| {
            if e.line.is_none() && e.column.is_none() {
                ConfigError::new(path, key, format!("{}: {}", e.file.display(), e.reason))
            } else {
                ConfigError::new(&e.file, e.location(), e.reason)
            }
        }
    };
    let registry = match (raw.merchants, raw.terminals) {
        (Some(m), Some(t)) => Some(std::sync::Arc::new(
            crate::registry::Registry::load(&base.join(m), &base.join(t))
                .map_err(from("registry.merchants"))?,
        )),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::new(
                path,
                "registry.terminals",
                "must be set together with registry.merchants",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                path,
                "registry.merchants",
                "must be set together with registry.terminals",
            ))
        }
    };
    let limits = match raw.limits {
        Some(l) => {
            crate::limits::LimitSettings::load(&base.join(l)).map_err(from("registry.limits"))?
        }
        None => crate::limits::LimitSettings::default(),
    };
    Ok(RegistrySettings {
        registry,
        limits: std::sync::Arc::new(limits),
    })
}

fn institution(ri: RawInstitution, prefix: &str, path: &Path) -> Result<Institution, ConfigError> {
    let err = |key: &str, reason: String| ConfigError::new(path, format!("{prefix}.{key}"), reason);

    let id = InstitutionId::parse(&ri.id).map_err(|r| err("id", r))?;
    let name = ri.name.trim().to_string();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(err("name", "must be a non-empty single-line name".into()));
    }
    if ri.roles.is_empty() {
        return Err(err(
            "roles",
            "must list at least one of \"acquirer\", \"issuer\"".into(),
        ));
    }
    let is_acquirer = ri.roles.contains(&Role::Acquirer);
    let is_issuer = ri.roles.contains(&Role::Issuer);
    if ri.roles.len() != usize::from(is_acquirer) + usize::from(is_issuer) {
        return Err(err("roles", "lists a role twice".into()));
    }

    let branch_ids = ri
        .branch_ids
        .iter()
        .enumerate()
        .map(|(b, s)| InstitutionId::parse(s).map_err(|r| err(&format!("branch_ids[{b}]"), r)))
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_addrs = ri
        .allowed_addrs
        .iter()
        .enumerate()
        .map(|(a, s)| {
            s.trim().parse::<IpAddr>().map_err(|_| {
                err(
                    &format!("allowed_addrs[{a}]"),
                    format!("{s:?} is not an IP address"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    // A role-specific key on an institution without the role is almost certainly a mistake
    // (wrong block, or a role forgotten); ignoring it would hide that.
    let not_role = |key: &str, role: &str| {
        err(
            key,
            format!(
                "applies only to institutions with role \"{role}\"; add the role or remove the key"
            ),
        )
    };
    if !is_acquirer && ri.require_sign_on.is_some() {
        return Err(not_role("require_sign_on", "acquirer"));
    }
    let acquirer = is_acquirer.then(|| AcquirerSettings {
        require_sign_on: ri.require_sign_on.unwrap_or(false),
    });

    let issuer = if is_issuer {
        let timeout =
            millis(ri.timeout_ms.unwrap_or(20_000), 600_000).map_err(|r| err("timeout_ms", r))?;
        let max_in_flight = in_range(ri.max_in_flight.unwrap_or(4096), 1, 1_000_000)
            .map_err(|r| err("max_in_flight", r))?;
        let echo_secs = ri.echo_interval_secs.unwrap_or(60);
        let echo_interval = if echo_secs == 0 {
            None
        } else {
            Some(secs(echo_secs, 3_600).map_err(|r| err("echo_interval_secs", r))?)
        };
        let echo_timeout = secs(ri.echo_timeout_secs.unwrap_or(10), 600)
            .map_err(|r| err("echo_timeout_secs", r))?;
        // One echo at a time: the next is due only after the previous had its chance.
        if echo_interval.is_some_and(|iv| echo_timeout > iv) {
            return Err(err(
                "echo_timeout_secs",
                format!("must not exceed echo_interval_secs ({echo_secs})"),
            ));
        }
        let connect = ri.connect.unwrap_or_default();
        for (c, target) in connect.iter().enumerate() {
            check_host_port(target).map_err(|r| err(&format!("connect[{c}]"), r))?;
        }
        let reconnect_min = millis(ri.reconnect_min_ms.unwrap_or(100), 600_000)
            .map_err(|r| err("reconnect_min_ms", r))?;
        let reconnect_max = millis(ri.reconnect_max_ms.unwrap_or(30_000), 3_600_000)
            .map_err(|r| err("reconnect_max_ms", r))?;
        if reconnect_max < reconnect_min {
            return Err(err(
                "reconnect_max_ms",
                format!(
                    "must be at least reconnect_min_ms ({} ms)",
                    reconnect_min.as_millis()
                ),
            ));
        }
        Some(IssuerSettings {
            timeout,
            max_in_flight,
            echo_interval,
            echo_timeout,
            connect,
            reconnect_min,
            reconnect_max,
            installment: ri.installment.unwrap_or(false),
            advice_retry: secs(ri.advice_retry_secs.unwrap_or(30), 86_400)
                .map_err(|r| err("advice_retry_secs", r))?,
            advice_max_attempts: u32::try_from(
                in_range(ri.advice_max_attempts.unwrap_or(10), 1, 1_000)
                    .map_err(|r| err("advice_max_attempts", r))?,
            )
            .unwrap_or(10),
        })
    } else {
        let issuer_keys = [
            ("timeout_ms", ri.timeout_ms.is_some()),
            ("max_in_flight", ri.max_in_flight.is_some()),
            ("echo_interval_secs", ri.echo_interval_secs.is_some()),
            ("echo_timeout_secs", ri.echo_timeout_secs.is_some()),
            ("connect", ri.connect.is_some()),
            ("reconnect_min_ms", ri.reconnect_min_ms.is_some()),
            ("reconnect_max_ms", ri.reconnect_max_ms.is_some()),
            ("installment", ri.installment.is_some()),
            ("advice_retry_secs", ri.advice_retry_secs.is_some()),
            ("advice_max_attempts", ri.advice_max_attempts.is_some()),
        ];
        if let Some((key, _)) = issuer_keys.iter().find(|(_, set)| *set) {
            return Err(not_role(key, "issuer"));
        }
        None
    };

    Ok(Institution {
        id,
        name,
        branch_ids,
        allowed_addrs,
        acquirer,
        issuer,
    })
}

/// Reads the BIN table and checks every row's issuer against the institutions, so routing can
/// never produce an issuer the switch knows nothing about.
fn load_bins(
    file: &Path,
    config_path: &Path,
    institutions: &[Institution],
    by_id: &HashMap<InstitutionId, usize, crate::FastHash>,
) -> Result<BinTable, ConfigError> {
    let from_bin_error = |e: bins::BinError| {
        if e.line.is_none() && e.column.is_none() {
            // Whole-file problem (missing, unreadable): the fix is in switch.toml's key or on
            // disk, so point at the key that names the file.
            ConfigError::new(
                config_path,
                "routing.bin_table",
                format!("BIN table {}: {}", e.file.display(), e.reason),
            )
        } else {
            ConfigError::new(&e.file, e.location(), e.reason)
        }
    };
    let rows = bins::read_csv(file).map_err(from_bin_error)?;
    for row in &rows {
        let issuer = row.route.issuer;
        let reason = match by_id.get(&issuer).and_then(|&i| institutions.get(i)) {
            None => Some(format!(
                "issuer {issuer} is not an institution in {}",
                config_path.display()
            )),
            Some(inst) if inst.id != issuer => Some(format!(
                "issuer {issuer} is a branch ID of institution {}; route to its primary ID",
                inst.id
            )),
            Some(inst) if !inst.is_issuer() => Some(format!(
                "institution {issuer} ({}) does not have role \"issuer\"",
                inst.name
            )),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            return Err(ConfigError::new(
                file,
                format!("line {} column issuer", row.line),
                reason,
            ));
        }
    }
    BinTable::from_rows(&rows, file).map_err(from_bin_error)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Converts a serde/toml error into a [`ConfigError`] with the full key path. toml reports the
/// keys it descended through after the message (`in \`a.b\``) and, for unknown or missing
/// fields, names the field in the message; `prefix` adds what toml cannot know (array index).
fn serde_error(path: &Path, prefix: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim();
    let rendered = e.to_string();
    let inner = rendered.lines().rev().find_map(|l| {
        l.trim()
            .strip_prefix("in `")
            .and_then(|k| k.strip_suffix('`'))
    });
    let field = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    let key = [Some(prefix), inner, field]
        .into_iter()
        .flatten()
        .filter(|k| !k.is_empty())
        .collect::<Vec<_>>()
        .join(".");
    let key = if key.is_empty() {
        "(top level)".to_string()
    } else {
        key
    };
    ConfigError::new(path, key, message)
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn in_range(v: u64, min: u64, max: u64) -> Result<usize, String> {
    if v < min || v > max {
        return Err(format!("must be between {min} and {max}, got {v}"));
    }
    usize::try_from(v).map_err(|_| format!("{v} is too large"))
}

/// A positive duration in seconds, with an upper bound that catches unit mix-ups
/// (milliseconds typed into a seconds key).
fn secs(v: u64, max: u64) -> Result<Duration, String> {
    if v == 0 {
        return Err("must be greater than 0".into());
    }
    if v > max {
        return Err(format!("must be at most {max} seconds, got {v}"));
    }
    Ok(Duration::from_secs(v))
}

/// A positive duration in milliseconds, bounded like [`secs`].
fn millis(v: u64, max: u64) -> Result<Duration, String> {
    if v == 0 {
        return Err("must be greater than 0".into());
    }
    if v > max {
        return Err(format!("must be at most {max} ms, got {v}"));
    }
    Ok(Duration::from_millis(v))
}

fn parse_hhmm(s: &str) -> Result<NaiveTime, String> {
    let well_formed = s.len() == 5 && s.as_bytes().get(2) == Some(&b':');
    match NaiveTime::parse_from_str(s, "%H:%M") {
        Ok(t) if well_formed => Ok(t),
        _ => Err(format!("{s:?} is not a local time HH:MM (00:00 to 23:59)")),
    }
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse::<SocketAddr>().map_err(|_| {
        format!("{s:?} is not an IP:port address (e.g. \"127.0.0.1:5001\", \"[::1]:5001\")")
    })
}

/// Two listener addresses that would fail to bind together. Port 0 (ephemeral, used by tests)
/// never clashes; an unspecified IP (0.0.0.0 / ::) clashes with any IP on the same port.
fn binds_clash(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Checks the form of a `host:port` dial target (resolved by DNS only when dialled, so a
/// name that does not resolve yet is not a configuration error).
fn check_host_port(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{s:?} is not host:port ({why})"));
    let Some((host, port)) = s.rsplit_once(':') else {
        return bad("missing :port");
    };
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return bad("port must be 1 to 65535"),
        Ok(_) => {}
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match v6.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => bad("bad IPv6 address in brackets"),
        };
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(valid_label) {
        return bad("host must be a DNS name or IP address; IPv6 goes in brackets");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/switch.toml")
    }

    #[test]
    fn bundled_config_loads() {
        let cfg = Config::load(bundled_path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.switch.id, "00010000");
        assert_eq!(cfg.switch.max_frame_bytes, 2048);
        assert_eq!(cfg.switch.keepalive_send, Duration::from_secs(120));
        assert_eq!(cfg.switch.idle_timeout, Duration::from_secs(180));
        assert_eq!(
            cfg.switch.settlement_cutover,
            NaiveTime::from_hms_opt(23, 0, 0).unwrap()
        );
        assert!(cfg.switch.arbiter_count() >= 1);
        assert_eq!(cfg.listeners.acquirer, "127.0.0.1:5001".parse().unwrap());
        assert_eq!(cfg.listeners.issuer, "127.0.0.1:5002".parse().unwrap());
        assert_eq!(cfg.listeners.admin, "127.0.0.1:5080".parse().unwrap());
        assert_eq!(cfg.journal.durability, Durability::Fsync);
        assert_eq!(cfg.journal.zero_fill_ahead, 1 << 20);
        assert_eq!(cfg.journal.commit_interval, Duration::from_millis(1));
        assert_eq!(cfg.journal.busy_commit_interval, Duration::from_millis(2));
        assert_eq!(cfg.journal.busy_batch_records, 512);
        assert_eq!(cfg.journal.slow_sync, Some(Duration::from_millis(100)));
        assert!(cfg.journal.dir.ends_with("../data/journal"));
        assert!(cfg
            .journal
            .dir
            .starts_with(bundled_path().parent().unwrap()));

        let acq = cfg.institution("01030000").unwrap();
        assert!(acq.is_acquirer() && !acq.is_issuer());
        let iss = cfg.institution("03010000   ").unwrap();
        assert!(iss.is_issuer());
        let settings = iss.issuer.as_ref().unwrap();
        assert!(settings.installment);
        assert!(settings.connect.is_empty());
        assert_eq!(settings.timeout, Duration::from_secs(20));
        let iss2 = cfg.institution("03020000").unwrap();
        assert!(!iss2.issuer.as_ref().unwrap().installment);
        assert_eq!(cfg.acquirers().count(), 1);
        assert_eq!(cfg.issuers().count(), 2);
        assert!(cfg.institution("99999999").is_none());
        assert!(cfg.institution("0103000X").is_none());

        // Routing through the bundled BIN table, including the nested prefixes.
        assert!(cfg.bins.len() >= 15);
        let r = cfg.bins.lookup(b"6222020000000001").unwrap();
        assert_eq!(r.issuer, "03010000");
        let r = cfg.bins.lookup(b"6222021012345678").unwrap();
        assert_eq!(r.issuer, "03020000");
        let r = cfg.bins.lookup(b"6258005512345678").unwrap();
        assert_eq!(r.card_type, bins::CardType::Credit);
        assert!(r.installment);
        // The nested 8-digit corporate range under 625800 is not open for installments.
        assert!(!cfg.bins.lookup(b"6258001234567890").unwrap().installment);
        assert!(cfg.bins.lookup(b"4111111111111111").is_none());
        for inst in &cfg.institutions {
            assert_eq!(
                cfg.institution(inst.id.as_str()).map(|i| i.id),
                Some(inst.id)
            );
        }
        for route in cfg.bins.routes() {
            assert!(cfg.institution_by_id(&route.issuer).unwrap().is_issuer());
        }
    }

    const GOOD: &str = r#"
[switch]
id = "00010000"

[listeners]
acquirer = "127.0.0.1:0"
issuer = "127.0.0.1:0"
admin = "127.0.0.1:0"

[routing]
bin_table = "bins.csv"

[[institution]]
id = "01030000"
name = "Acq"
roles = ["acquirer"]
branch_ids = ["01031000"]

[[institution]]
id = "03010000"
name = "Iss"
roles = ["issuer"]
timeout_ms = 20000
"#;

    const GOOD_BINS: &str = "prefix,issuer,card_type,installment\n622202,03010000,debit,N\n";

    /// Writes `toml` and `bins` into a fresh directory and loads it.
    fn load(toml: &str, bins: Option<&str>) -> (tempfile::TempDir, Result<Config, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("switch.toml"), toml).unwrap();
        if let Some(b) = bins {
            std::fs::write(dir.path().join("bins.csv"), b).unwrap();
        }
        let r = Config::load(dir.path().join("switch.toml"));
        (dir, r)
    }

    #[test]
    fn slow_fsync_reporting_is_off_at_zero_and_a_threshold_otherwise() {
        for (value, want) in [(0, None), (250, Some(Duration::from_millis(250)))] {
            let toml = format!("{GOOD}\n[journal]\nslow_fsync_ms = {value}\n");
            let (_dir, cfg) = load(&toml, Some(GOOD_BINS));
            assert_eq!(
                cfg.unwrap().journal.slow_sync,
                want,
                "slow_fsync_ms = {value}"
            );
        }
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let (_dir, cfg) = load(GOOD, Some(GOOD_BINS));
        let cfg = cfg.unwrap();
        assert_eq!(cfg.institution("01031000").unwrap().id, "01030000");
        assert!(cfg
            .institution("01030000")
            .unwrap()
            .owns_id(&InstitutionId::parse("01031000").unwrap()));
        let iss = cfg.institution("03010000").unwrap().issuer.clone().unwrap();
        assert_eq!(iss.max_in_flight, 4096);
        assert_eq!(iss.echo_interval, Some(Duration::from_secs(60)));
        assert_eq!(iss.reconnect_max, Duration::from_millis(30_000));
        assert!(!iss.installment);
        assert!(
            !cfg.institution("01030000")
                .unwrap()
                .acquirer
                .as_ref()
                .unwrap()
                .require_sign_on
        );
        assert_eq!(cfg.logging.format, LogFormat::Text);
    }

    #[test]
    fn empty_file_is_an_empty_switch() {
        let (_dir, cfg) = load("", None);
        let cfg = cfg.unwrap();
        assert!(cfg.institutions.is_empty());
        assert!(cfg.bins.is_empty());
        assert_eq!(cfg.switch.id, "00010000");
    }

    #[test]
    fn broken_configs_name_file_key_and_reason() {
        // (description, switch.toml edit, bins.csv, expected file name, key, reason fragment)
        type Case<'a> = (&'a str, String, Option<&'a str>, &'a str, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (
                "unknown key",
                GOOD.replace("timeout_ms = 20000", "timeout_msec = 20000"),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[1].timeout_msec",
                "unknown field `timeout_msec`",
            ),
            (
                "unknown key in a section",
                GOOD.replace("[switch]", "[switch]\nkeepalive_secs = 5"),
                Some(GOOD_BINS),
                "switch.toml",
                "switch.keepalive_secs",
                "unknown field",
            ),
            (
                "a reserve without the day to reserve for",
                GOOD.replace("[switch]", "[switch]\nreserve_day_tables = true"),
                Some(GOOD_BINS),
                "switch.toml",
                "switch.reserve_day_tables",
                "needs switch.expected_daily_transactions",
            ),
            (
                "a reserve of a day kept in memory",
                GOOD.replace(
                    "[switch]",
                    "[switch]\nreserve_day_tables = true\nexpected_daily_transactions = 100\nday_tables_memory = 0",
                ),
                Some(GOOD_BINS),
                "switch.toml",
                "switch.reserve_day_tables",
                "switch.day_tables_memory",
            ),
            (
                "unknown section",
                format!("{GOOD}\n[swich]\nid = \"1\"\n"),
                Some(GOOD_BINS),
                "switch.toml",
                "swich",
                "unknown field `swich`",
            ),
            (
                "bad ID",
                GOOD.replace("\"01030000\"", "\"0103000A\""),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[0].id",
                "only digits",
            ),
            (
                "ID too long",
                GOOD.replace("\"01030000\"", "\"010300000000\""),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[0].id",
                "1 to 11 digits",
            ),
            (
                "duplicate ID",
                GOOD.replace("\"03010000\"", "\"01030000\""),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[1].id",
                "already used by institution[0].id",
            ),
            (
                "branch ID duplicates an institution",
                GOOD.replace("[\"01031000\"]", "[\"03010000\"]"),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[1].id",
                "already used by institution[0].branch_ids[0]",
            ),
            (
                "institution uses the switch ID",
                GOOD.replace("\"01030000\"", "\"00010000\""),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[0].id",
                "already used by switch.id",
            ),
            (
                "wrong type",
                GOOD.replace("timeout_ms = 20000", "timeout_ms = \"20s\""),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[1].timeout_ms",
                "invalid type",
            ),
            (
                "unknown role",
                GOOD.replace("[\"acquirer\"]", "[\"acquier\"]"),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[0].roles",
                "unknown variant `acquier`",
            ),
            (
                "missing required key",
                GOOD.replace("name = \"Acq\"", ""),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[0].name",
                "missing field `name`",
            ),
            (
                "issuer key on an acquirer",
                GOOD.replace("branch_ids = [\"01031000\"]", "timeout_ms = 5"),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[0].timeout_ms",
                "only to institutions with role \"issuer\"",
            ),
            (
                "BIN issuer unknown",
                GOOD.to_string(),
                Some("prefix,issuer,card_type,installment\n622202,03010000,debit,N\n622203,09990000,debit,N\n"),
                "bins.csv",
                "line 3 column issuer",
                "issuer 09990000 is not an institution",
            ),
            (
                "BIN issuer is an acquirer",
                GOOD.to_string(),
                Some("prefix,issuer,card_type,installment\n622203,01030000,debit,N\n"),
                "bins.csv",
                "line 2 column issuer",
                "does not have role \"issuer\"",
            ),
            (
                "BIN prefix too short",
                GOOD.to_string(),
                Some("prefix,issuer,card_type,installment\n62220,03010000,debit,N\n"),
                "bins.csv",
                "line 2 column prefix",
                "must be 6 to 12 digits",
            ),
            (
                "BIN prefix too long",
                GOOD.to_string(),
                Some("prefix,issuer,card_type,installment\n622202,03010000,debit,N\n\n6222021234567,03010000,debit,N\n"),
                "bins.csv",
                "line 4 column prefix",
                "must be 6 to 12 digits",
            ),
            (
                "BIN prefix non-digit",
                GOOD.to_string(),
                Some("prefix,issuer,card_type,installment\n62220X,03010000,debit,N\n"),
                "bins.csv",
                "line 2 column prefix",
                "only digits",
            ),
            (
                "BIN prefix duplicate",
                GOOD.to_string(),
                Some("prefix,issuer,card_type,installment\n622202,03010000,debit,N\n622202,03010000,credit,N\n"),
                "bins.csv",
                "line 3 column prefix",
                "duplicate BIN prefix 622202 (already listed at line 2)",
            ),
            (
                "bad address",
                GOOD.replace("acquirer = \"127.0.0.1:0\"", "acquirer = \"127.0.0.1\""),
                Some(GOOD_BINS),
                "switch.toml",
                "listeners.acquirer",
                "not an IP:port address",
            ),
            (
                "listeners clash",
                GOOD.replace("issuer = \"127.0.0.1:0\"", "issuer = \"0.0.0.0:5001\"")
                    .replace("acquirer = \"127.0.0.1:0\"", "acquirer = \"127.0.0.1:5001\""),
                Some(GOOD_BINS),
                "switch.toml",
                "listeners.issuer",
                "cannot both bind",
            ),
            (
                "bad connect target",
                GOOD.replace("timeout_ms = 20000", "connect = [\"issuer.example:5002\", \"bad host:x\"]"),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[1].connect[1]",
                "is not host:port",
            ),
            (
                "bad allowed address",
                GOOD.replace("branch_ids = [\"01031000\"]", "allowed_addrs = [\"10.0.0.300\"]"),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[0].allowed_addrs[0]",
                "not an IP address",
            ),
            (
                "zero timeout",
                GOOD.replace("timeout_ms = 20000", "timeout_ms = 0"),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[1].timeout_ms",
                "must be greater than 0",
            ),
            (
                "zero idle timeout",
                GOOD.replace("[switch]", "[switch]\nidle_timeout_secs = 0"),
                Some(GOOD_BINS),
                "switch.toml",
                "switch.idle_timeout_secs",
                "must be greater than 0",
            ),
            (
                "keepalive not below idle timeout",
                GOOD.replace("[switch]", "[switch]\nkeepalive_send_secs = 200"),
                Some(GOOD_BINS),
                "switch.toml",
                "switch.keepalive_send_secs",
                "less than switch.idle_timeout_secs",
            ),
            (
                "reconnect backoff inverted",
                GOOD.replace("timeout_ms = 20000", "reconnect_min_ms = 500\nreconnect_max_ms = 100"),
                Some(GOOD_BINS),
                "switch.toml",
                "institution[1].reconnect_max_ms",
                "at least reconnect_min_ms",
            ),
            (
                "bad cut-over time",
                GOOD.replace("[switch]", "[switch]\nsettlement_cutover = \"24:00\""),
                Some(GOOD_BINS),
                "switch.toml",
                "switch.settlement_cutover",
                "not a local time HH:MM",
            ),
            (
                "bad durability",
                format!("{GOOD}\n[journal]\ndurability = \"fsnyc\"\n"),
                Some(GOOD_BINS),
                "switch.toml",
                "journal.durability",
                "unknown variant `fsnyc`",
            ),
            (
                "zero fill out of range",
                format!("{GOOD}\n[journal]\nzero_fill_kib = 2000000\n"),
                Some(GOOD_BINS),
                "switch.toml",
                "journal.zero_fill_kib",
                "between 0 and 1048576",
            ),
            (
                "commit interval out of range",
                format!("{GOOD}\n[journal]\ncommit_interval_us = 250000\n"),
                Some(GOOD_BINS),
                "switch.toml",
                "journal.commit_interval_us",
                "between 0 and 100000",
            ),
            (
                "busy commit interval out of range",
                format!("{GOOD}\n[journal]\nbusy_commit_interval_us = 200000\n"),
                Some(GOOD_BINS),
                "switch.toml",
                "journal.busy_commit_interval_us",
                "between 0 and 100000",
            ),
            (
                "busy batch size out of range",
                format!("{GOOD}\n[journal]\nbusy_batch_records = 0\n"),
                Some(GOOD_BINS),
                "switch.toml",
                "journal.busy_batch_records",
                "between 1 and 4096",
            ),
            (
                "slow fsync threshold out of range",
                format!("{GOOD}\n[journal]\nslow_fsync_ms = 700000\n"),
                Some(GOOD_BINS),
                "switch.toml",
                "journal.slow_fsync_ms",
                "between 0 and 600000",
            ),
            (
                "frame size out of range",
                GOOD.replace("[switch]", "[switch]\nmax_frame_bytes = 10000"),
                Some(GOOD_BINS),
                "switch.toml",
                "switch.max_frame_bytes",
                "between 58 and 9999",
            ),
            (
                "missing bins file",
                GOOD.to_string(),
                None,
                "switch.toml",
                "routing.bin_table",
                "cannot open",
            ),
            (
                "TOML syntax error",
                GOOD.replace("name = \"Acq\"", "name = \"Acq"),
                Some(GOOD_BINS),
                "switch.toml",
                "line 15 column",
                "TOML syntax error",
            ),
        ];
        for (what, toml, bins, file, key, reason) in &cases {
            let (dir, result) = load(toml, *bins);
            let e = match result {
                Ok(_) => panic!("{what}: loaded but should fail"),
                Err(e) => e,
            };
            let msg = e.to_string();
            assert_eq!(e.file, dir.path().join(file), "{what}: {msg}");
            assert!(
                msg.contains(&dir.path().join(file).display().to_string()),
                "{what}: {msg}"
            );
            assert!(
                e.key.starts_with(key),
                "{what}: key {:?}, want {key:?}; {msg}",
                e.key
            );
            assert!(msg.contains(key), "{what}: {msg}");
            assert!(msg.contains(reason), "{what}: want {reason:?} in {msg}");
        }
    }

    #[test]
    fn missing_config_file_is_reported() {
        let e = Config::load("/nonexistent/switch.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/switch.toml: (file): cannot read"),
            "{e}"
        );
    }

    #[test]
    fn institution_id_forms() {
        let id = InstitutionId::parse("01030000").unwrap();
        assert_eq!(id.as_str(), "01030000");
        assert_eq!(&id.to_header_field(), b"01030000   ");
        assert_eq!(InstitutionId::from_header_field(b"01030000   "), Some(id));
        assert_eq!(InstitutionId::from_header_field(b"           "), None);
        assert_eq!(InstitutionId::from_header_field(b"0103 000   "), None);
        assert!(InstitutionId::parse("").is_err());
        assert!(InstitutionId::parse("123456789012").is_err());
        assert!(InstitutionId::parse("12345678901").is_ok());
        assert_ne!(
            InstitutionId::parse("1").unwrap(),
            InstitutionId::parse("01").unwrap()
        );
        assert!(InstitutionId::parse("01").unwrap() < InstitutionId::parse("1").unwrap());
        assert_eq!(format!("{id:?}"), "InstId(01030000)");
    }

    #[test]
    fn host_port_forms() {
        for ok in [
            "issuer.bank.example:5002",
            "10.1.2.3:5002",
            "[::1]:5002",
            "localhost:1",
        ] {
            assert!(check_host_port(ok).is_ok(), "{ok}");
        }
        for bad in [
            "issuer",
            "issuer:",
            "issuer:0",
            "issuer:70000",
            ":5002",
            "::1:5002",
            "a b:1",
            "-x:1",
        ] {
            assert!(check_host_port(bad).is_err(), "{bad}");
        }
    }
}
