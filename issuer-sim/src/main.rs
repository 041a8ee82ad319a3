//! `issuer-sim`: a simulated issuer host. Dials the switch's issuer listener (or listens for
//! the switch to dial in), signs on, answers until Ctrl-C, then signs off and prints a
//! one-line summary. Card accounts, installment plans and behaviour come from the bundled
//! files in `config/issuer-sim/` unless other files are given.

use anyhow::Context;
use clap::Parser;
use iso8583::ResponseCode;
use issuer_sim::{AccountBook, Behaviour, InstallmentPlans, IssuerSim, IssuerSimConfig, Rules};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Simulated issuer for cardswitch.
#[derive(Debug, Parser)]
#[command(name = "issuer-sim", version, about)]
struct Cli {
    /// The switch's issuer listener to dial.
    #[arg(long, default_value = "127.0.0.1:5002")]
    switch: SocketAddr,
    /// Listen here for the switch to dial in instead of dialling `--switch`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Own institution ID (header source, F33).
    #[arg(long, default_value = issuer_sim::DEFAULT_INSTITUTION)]
    institution: String,
    /// The switch's institution ID (header destination).
    #[arg(long, default_value = issuer_sim::DEFAULT_SWITCH_ID)]
    switch_id: String,
    /// Number of links to dial.
    #[arg(long, default_value_t = 2)]
    links: usize,
    /// Behaviour file (TOML: default_code, pan_codes, decline_amounts, silent_pans,
    /// drop_rate, delay_ms, latency, late_rate, late_delay_ms, disconnect_after,
    /// disconnect_rate, other_link_rate, balance, [installments]). Default: the bundled
    /// config/issuer-sim/behaviour.toml. Flags below override it.
    #[arg(long, visible_alias = "rules")]
    behaviour: Option<PathBuf>,
    /// Card accounts (CSV: pan,status,expiry,pin,cvn2,balance,card_type,installment,
    /// pin_tries; a `*` row is the template for other PANs). Default: the bundled
    /// config/issuer-sim/accounts.csv.
    #[arg(long)]
    accounts: Option<PathBuf>,
    /// Keep no card accounts: approve per the rules alone, balances never move.
    #[arg(long, conflicts_with = "accounts")]
    no_accounts: bool,
    /// Installment plans (TOML: rates, min_amount, max_amount, merchants,
    /// merchant_rates); replaces the behaviour file's [installments]. Default: the bundled
    /// config/issuer-sim/plans.toml.
    #[arg(long)]
    plans: Option<PathBuf>,
    /// Fixed latency before each answer, in milliseconds.
    #[arg(long)]
    delay_ms: Option<u64>,
    /// Fraction of requests never answered (0.0 to 1.0).
    #[arg(long)]
    drop_rate: Option<f64>,
    /// Response code when no rule applies.
    #[arg(long)]
    default_code: Option<String>,
    /// Decline an exact amount: `AMOUNT=CODE`, e.g. `5100=51` (repeatable).
    #[arg(long = "decline-amount", value_name = "AMOUNT=CODE")]
    decline_amounts: Vec<String>,
    /// Do not sign on (links stay signed off).
    #[arg(long)]
    no_sign_on: bool,
    /// Print the counters every N seconds (0 = only on exit).
    #[arg(long, default_value_t = 10)]
    stats_interval_s: u64,
    /// Log as JSON lines.
    #[arg(long)]
    json_logs: bool,
}

fn parse_code(text: &str) -> anyhow::Result<ResponseCode> {
    ResponseCode::parse(text.as_bytes())
        .with_context(|| format!("{text:?} is not a 2-character response code"))
}

/// A bundled file: `config/issuer-sim/NAME` under the working directory or the source tree.
fn bundled(name: &str) -> Option<PathBuf> {
    let here = Path::new("config/issuer-sim").join(name);
    if here.exists() {
        return Some(here);
    }
    let tree = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/issuer-sim")
        .join(name);
    tree.exists().then_some(tree)
}

/// The file given, else the bundled one (if found).
fn file_or_bundled(given: Option<&PathBuf>, name: &str) -> Option<PathBuf> {
    given.cloned().or_else(|| bundled(name))
}

fn build_rules(cli: &Cli) -> anyhow::Result<Rules> {
    let mut rules = match file_or_bundled(cli.behaviour.as_ref(), "behaviour.toml") {
        Some(path) => {
            tracing::info!(file = %path.display(), "behaviour");
            Rules::load(&path)?
        }
        None => Rules::default(),
    };
    if let Some(path) = file_or_bundled(cli.plans.as_ref(), "plans.toml") {
        tracing::info!(file = %path.display(), "installment plans");
        rules.installments = InstallmentPlans::load(&path)?;
    }
    if let Some(ms) = cli.delay_ms {
        rules.delay = Duration::from_millis(ms);
    }
    if let Some(rate) = cli.drop_rate {
        rules.drop_rate = rate;
    }
    if let Some(code) = &cli.default_code {
        rules.default_code = parse_code(code)?;
    }
    for spec in &cli.decline_amounts {
        let (amount, code) = spec
            .split_once('=')
            .with_context(|| format!("--decline-amount {spec:?}: expected AMOUNT=CODE"))?;
        let amount: i64 = amount
            .parse()
            .with_context(|| format!("--decline-amount {spec:?}: bad amount"))?;
        rules = rules.with_decline_amount(amount, parse_code(code)?);
    }
    rules.validate()?;
    Ok(rules)
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.json_logs);
    if let Err(e) = issuer_sim::process::disable_transparent_huge_pages() {
        tracing::warn!(error = %e, "transparent huge pages stay on");
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("issuer-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn build_accounts(cli: &Cli) -> anyhow::Result<Option<AccountBook>> {
    if cli.no_accounts {
        return Ok(None);
    }
    match file_or_bundled(cli.accounts.as_ref(), "accounts.csv") {
        Some(path) => {
            let book = AccountBook::load(&path)?;
            tracing::info!(
                file = %path.display(),
                cards = book.accounts.len(),
                other_pans = if book.template.is_some() { "template" } else { "declined 14" },
                "card accounts"
            );
            Ok(Some(book))
        }
        None => {
            tracing::warn!("no accounts file found; running without card accounts");
            Ok(None)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let rules = build_rules(&cli)?;
    let accounts = build_accounts(&cli)?;
    let config = IssuerSimConfig {
        switch_addr: cli.switch,
        listen: cli.listen,
        institution: cli.institution.clone(),
        switch_id: cli.switch_id.clone(),
        links: cli.links,
        rules,
        behaviour: Behaviour {
            sign_on: !cli.no_sign_on,
            ..Behaviour::default()
        },
        accounts,
    };
    let sim = IssuerSim::start(config).await?;
    match sim.local_addr() {
        Some(addr) => {
            tracing::info!(%addr, institution = %cli.institution, "waiting for the switch to dial in; Ctrl-C to stop")
        }
        None => {
            tracing::info!(switch = %cli.switch, links = cli.links, institution = %cli.institution, "signed on; Ctrl-C to stop")
        }
    }
    let mut ticker = (cli.stats_interval_s > 0)
        .then(|| tokio::time::interval(Duration::from_secs(cli.stats_interval_s)));
    let mut last = sim.stats();
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                r.context("waiting for Ctrl-C")?;
                break;
            }
            () = async {
                match ticker.as_mut() {
                    Some(t) => { t.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                let now = sim.stats();
                if now != last {
                    tracing::info!(stats = %now, "progress");
                    last = now;
                }
            }
        }
    }
    let stats = sim.shutdown().await;
    println!("issuer-sim: {stats}");
    Ok(())
}
