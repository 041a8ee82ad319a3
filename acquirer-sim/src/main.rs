//! `acquirer-sim`: send one transaction of any kind to the switch and print the answer
//! (PAN masked), or run a certification suite against an issuer host.
//!
//! Exit status of `send`: 0 when an answer arrived (whatever its F39), 1 when the request
//! could not be built or sent, was rejected, or got no answer within `--timeout-ms`.
//! Exit status of `certify`: 0 when every case passed, 1 when one failed, 2 when the suite
//! could not be run.

use acquirer_sim::certify::{self, CertifyOptions};
use acquirer_sim::suite::Suite;
use acquirer_sim::txn::{self, Original, TxnParams};
use acquirer_sim::AcquirerClient;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use iso8583::render::describe_text;
use iso8583::subfields::{FeeMode, InstallmentRequest, OriginalData};
use iso8583::{InstId, Message, MessageBuilder, Mti, Packet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Simulated acquirer for cardswitch.
#[derive(Debug, Parser)]
#[command(name = "acquirer-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    json_logs: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send one transaction and print the answer.
    Send(Box<SendArgs>),
    /// Run a certification suite through the switch against an issuer host; print a
    /// summary, write JUnit XML and a Markdown report.
    Certify(CertifyArgs),
}

#[derive(Debug, Args)]
struct CertifyArgs {
    /// The suite file (e.g. config/suites/installment.toml).
    #[arg(long)]
    suite: PathBuf,
    /// The issuer under test (its test cards are taken from the suite).
    #[arg(long)]
    issuer: String,
    /// The switch's acquirer listener.
    #[arg(long, default_value = "127.0.0.1:5001")]
    switch: SocketAddr,
    /// Acquirer institution ID.
    #[arg(long, default_value = txn::DEFAULT_ACQUIRER)]
    acquirer: String,
    /// The switch's institution ID.
    #[arg(long, default_value = txn::DEFAULT_SWITCH_ID)]
    switch_id: String,
    /// Where the JUnit XML and Markdown reports go.
    #[arg(long, default_value = "certify-report")]
    report_dir: PathBuf,
    /// Give up on an answer after this long.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Purchase,
    Installment,
    Balance,
    Cash,
    Preauth,
    PreauthVoid,
    Completion,
    Void,
    Refund,
    Reversal,
    Echo,
    SignOn,
    SignOff,
}

#[derive(Debug, Args)]
struct SendArgs {
    /// Transaction kind.
    #[arg(value_enum)]
    kind: Kind,
    /// The switch's acquirer listener.
    #[arg(long, default_value = "127.0.0.1:5001")]
    switch: SocketAddr,
    /// Acquirer institution ID (header source, F32, F33).
    #[arg(long, default_value = txn::DEFAULT_ACQUIRER)]
    acquirer: String,
    /// The switch's institution ID (header destination).
    #[arg(long, default_value = txn::DEFAULT_SWITCH_ID)]
    switch_id: String,
    /// Card number (F2).
    #[arg(long, default_value = txn::DEFAULT_PAN)]
    pan: String,
    /// Amount in minor units (F4).
    #[arg(long, default_value_t = 1000)]
    amount: i64,
    /// Terminal ID (F41).
    #[arg(long, default_value = txn::DEFAULT_TERMINAL)]
    terminal: String,
    /// Merchant ID (F42).
    #[arg(long, default_value = txn::DEFAULT_MERCHANT)]
    merchant: String,
    /// Merchant category code (F18).
    #[arg(long, default_value = txn::DEFAULT_MCC)]
    mcc: String,
    /// Currency (F49).
    #[arg(long, default_value = txn::DEFAULT_CURRENCY)]
    currency: String,
    /// STAN (F11); default: random.
    #[arg(long)]
    stan: Option<u32>,
    /// Give up after this long without an answer.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Installment: number of periods.
    #[arg(long, default_value_t = 6)]
    periods: u8,
    /// Installment: full fee rate, fraction x 10^5 (0 = issuer's standard rate).
    #[arg(long, default_value_t = 0)]
    fee_rate: u32,
    /// Installment: merchant subsidy rate, fraction x 10^5.
    #[arg(long, default_value_t = 0)]
    subsidy_rate: u32,
    /// Installment: fee payment mode, 0 spread over periods, 1 with the first period.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    fee_mode: u8,
    /// Installment: project code.
    #[arg(long, default_value = "")]
    project_code: String,
    /// Related transactions: the original's STAN.
    #[arg(long)]
    orig_stan: Option<u32>,
    /// Related transactions: the original's F7 (MMDDhhmmss).
    #[arg(long)]
    orig_time: Option<String>,
    /// Related transactions: the original's MTI (default 0100 for preauth-void and
    /// completion, 0200 otherwise).
    #[arg(long)]
    orig_mti: Option<String>,
    /// Related transactions: the original's F32/F33 (default: --acquirer).
    #[arg(long)]
    orig_acquirer: Option<String>,
    /// Related transactions: the original's F3 (default 000000; 030000 for preauth).
    #[arg(long)]
    orig_processing_code: Option<String>,
    /// Related transactions: the original's F25 (default 00; 06 for preauth).
    #[arg(long)]
    orig_pos_condition: Option<String>,
    /// Related transactions: the original's authorisation code (F38).
    #[arg(long)]
    auth_code: Option<String>,
    /// Reversal: F60.1 reason code.
    #[arg(long, default_value = "4351")]
    reason: String,
    /// Test PIN, sent in F52 as an ISO 9564 format 0 block (clear).
    #[arg(long)]
    pin: Option<String>,
    /// CVN2, sent in F61 as `CV` + 3 digits.
    #[arg(long)]
    cvn2: Option<String>,
    /// Card expiry YYMM (F14).
    #[arg(long)]
    expiry: Option<String>,
    /// Print the answer as JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn fixed<const N: usize>(what: &str, text: &str) -> anyhow::Result<[u8; N]> {
    text.as_bytes()
        .try_into()
        .ok()
        .filter(|v: &[u8; N]| v.iter().all(u8::is_ascii_alphanumeric))
        .with_context(|| format!("{what} {text:?} must be {N} characters"))
}

fn original(a: &SendArgs) -> anyhow::Result<Original> {
    let preauth_family = matches!(a.kind, Kind::PreauthVoid | Kind::Completion);
    let stan = a
        .orig_stan
        .context("--orig-stan is required for a related transaction")?;
    let time = a
        .orig_time
        .as_deref()
        .context("--orig-time MMDDhhmmss is required for a related transaction")?;
    let transmission: [u8; 10] = fixed("--orig-time", time)?;
    let mti = match &a.orig_mti {
        Some(m) => {
            Mti::parse(m.as_bytes()).with_context(|| format!("--orig-mti {m:?} is not 4 digits"))?
        }
        None if preauth_family => Mti::AUTH_REQUEST,
        None => Mti::FINANCIAL_REQUEST,
    };
    let acq_text = a.orig_acquirer.as_deref().unwrap_or(&a.acquirer);
    let acq = InstId::new(acq_text)
        .with_context(|| format!("--orig-acquirer {acq_text:?} is not 1 to 11 digits"))?;
    let mut orig = Original::new(OriginalData::new(mti, stan, transmission, &acq, &acq));
    let default_f3 = if preauth_family { "030000" } else { "000000" };
    orig.processing_code = fixed(
        "--orig-processing-code",
        a.orig_processing_code.as_deref().unwrap_or(default_f3),
    )?;
    let default_f25 = if preauth_family { "06" } else { "00" };
    orig.pos_condition = fixed(
        "--orig-pos-condition",
        a.orig_pos_condition.as_deref().unwrap_or(default_f25),
    )?;
    if let Some(code) = &a.auth_code {
        orig.auth_code = Some(fixed("--auth-code", code)?);
    }
    Ok(orig)
}

fn build(a: &SendArgs, p: &TxnParams) -> anyhow::Result<MessageBuilder> {
    let b = match a.kind {
        Kind::Purchase => txn::purchase(p)?,
        Kind::Installment => {
            let ip = InstallmentRequest {
                periods: a.periods,
                project_code: InstallmentRequest::project_code_from(&a.project_code),
                fee_mode: if a.fee_mode == 1 {
                    FeeMode::FirstPeriod
                } else {
                    FeeMode::Spread
                },
                fee_rate: a.fee_rate,
                subsidy_rate: a.subsidy_rate,
            };
            txn::installment_purchase(p, &ip)?
        }
        Kind::Balance => txn::balance_inquiry(p)?,
        Kind::Cash => txn::cash_withdrawal(p)?,
        Kind::Preauth => txn::preauth(p)?,
        Kind::PreauthVoid => txn::preauth_void(p, &original(a)?)?,
        Kind::Completion => txn::preauth_completion(p, &original(a)?)?,
        Kind::Void => txn::void(p, &original(a)?)?,
        Kind::Refund => txn::refund(p, &original(a)?)?,
        Kind::Reversal => txn::reversal(p, &original(a)?, fixed("--reason", &a.reason)?)?,
        Kind::Echo => txn::echo(p)?,
        Kind::SignOn => txn::sign_on(p)?,
        Kind::SignOff => txn::sign_off(p)?,
    };
    Ok(b)
}

fn show(msg: &Message, json: bool) -> String {
    let packet = Packet::Message(msg.clone());
    if json {
        iso8583::render::to_json(&packet, false).to_string()
    } else {
        describe_text(&packet, false)
    }
}

async fn send(a: SendArgs) -> anyhow::Result<()> {
    let client = AcquirerClient::connect(a.switch, &a.acquirer, &a.switch_id).await?;
    let mut p = client.params(&a.pan, a.amount);
    if let Some(stan) = a.stan {
        p.stan = stan;
    }
    p.terminal.clone_from(&a.terminal);
    p.merchant.clone_from(&a.merchant);
    p.mcc.clone_from(&a.mcc);
    p.currency.clone_from(&a.currency);
    p.pin.clone_from(&a.pin);
    p.cvn2.clone_from(&a.cvn2);
    p.expiry.clone_from(&a.expiry);
    let request = build(&a, &p)?;
    let raw = request.build().context("the request does not encode")?;
    let sent = Message::decode(raw).context("the request does not decode")?;
    if !a.json {
        println!(
            "-> request (STAN {:06}, F7 {})",
            p.stan,
            String::from_utf8_lossy(&p.transmission)
        );
        print!("{}", show(&sent, false));
    }
    let timeout = Duration::from_millis(a.timeout_ms);
    let answer = match client.send_timeout(request, timeout).await {
        Ok(m) => m,
        Err(e) => bail!("{e}"),
    };
    if a.json {
        println!("{}", show(&answer, true));
    } else {
        println!("<- answer");
        print!("{}", show(&answer, false));
        if let Some(rc) = answer.response_code() {
            println!(
                "F39 {rc}: {}",
                rc.meaning().unwrap_or("(not a listed code)")
            );
        }
    }
    client.close().await;
    Ok(())
}

/// Run a suite; `Ok(passed)`.
async fn run_certify(a: CertifyArgs) -> anyhow::Result<bool> {
    let suite = Suite::load(&a.suite)?;
    let opts = CertifyOptions {
        switch: a.switch,
        switch_id: a.switch_id,
        acquirer: a.acquirer,
        issuer: a.issuer,
        timeout: Duration::from_millis(a.timeout_ms),
    };
    let report = certify::run(&suite, &opts).await?;
    print!("{}", report.summary());
    let (xml, md) = report
        .write(&a.report_dir)
        .with_context(|| format!("writing reports to {}", a.report_dir.display()))?;
    println!("reports: {} {}", xml.display(), md.display());
    Ok(report.passed())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
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
    let result = match cli.command {
        Command::Send(args) => send(*args).await,
        Command::Certify(args) => {
            return match run_certify(args).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("acquirer-sim: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acquirer-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
