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

fn run(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = switch::config::Config::load(path)?;
    switch::logging::init(&config.logging);
    let handle = switch::server::start(config, switch::server::StartOptions::default())?;
    handle.join()?;
    Ok(ExitCode::SUCCESS)
}
