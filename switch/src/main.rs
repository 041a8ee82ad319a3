//! The `switch` binary: argument parsing only; everything else lives in the library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switch",
    version,
    about = "cardswitch: a CUPS-style card-payment switch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch daemon until SIGTERM/SIGINT.
    Run {
        #[arg(long, default_value = "config/switch.toml")]
        config: PathBuf,
    },
    /// Decode wire frames (4-digit length, header, body) and print them, PAN masked.
    Describe(switch::tools::DescribeArgs),
    /// Encode JSON lines (the shape `describe --json` prints) into wire frames on stdout.
    Encode(switch::tools::EncodeArgs),
    /// Clear one settlement date from the journal: per-institution flow files (ACOM, ICOM,
    /// ICOMN), summaries, and the overall report printed here (SPEC.md section 12).
    Clear {
        #[arg(long, default_value = "config/switch.toml")]
        config: PathBuf,
        /// Settlement date to clear, YYYYMMDD.
        #[arg(long)]
        date: u32,
        /// Output directory (default: `[clearing] output_dir`); files go under <DIR>/<date>/.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Start a settlement-day cut-over now on the running switch (its admin endpoint,
    /// `POST /cutover`): for tests and operators.
    Cutover {
        #[arg(long, default_value = "config/switch.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and exit.
    CheckConfig {
        #[arg(long, default_value = "config/switch.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Describe(args) => switch::tools::describe(&args),
        Command::Encode(args) => switch::tools::encode(&args),
        Command::Clear { config, date, out } => clear(&config, date, out.as_deref()),
        Command::Cutover { config } => cutover(&config),
        Command::CheckConfig { config } => match switch::config::Config::load(&config) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} institutions, {} BIN ranges)",
                    config.display(),
                    cfg.institutions.len(),
                    cfg.bins.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(anyhow::anyhow!(e)),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn clear(
    path: &std::path::Path,
    date: u32,
    out: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let config = switch::config::Config::load(path)?;
    let summary = switch::clearing::run(&config, date, out)?;
    print!("{}", summary.report.text());
    println!("written under {}:", summary.dir.display());
    for f in &summary.files {
        println!("  {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `POST /cutover` to the admin listener of the switch this configuration describes.
fn cutover(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::io::{Read, Write};
    let config = switch::config::Config::load(path)?;
    let addr = config.listeners.admin;
    let mut s = std::net::TcpStream::connect(addr)
        .map_err(|e| anyhow::anyhow!("cannot reach the switch's admin endpoint {addr}: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        s,
        "POST /cutover HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let ok = head.starts_with("HTTP/1.1 200");
    println!("{}", body.trim());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = switch::config::Config::load(path)?;
    switch::logging::init(&config.logging);
    let handle = switch::server::start(config, switch::server::StartOptions::default())?;
    handle.join()?;
    Ok(ExitCode::SUCCESS)
}
