//! The `loadgen` binary: argument parsing only.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Drive a cardswitch with acquirer traffic and report"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the switch and a simulated issuer on the bundled configuration, send a burst of
    /// traffic and print a summary.
    Demo {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Acquirer links.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Requests per link.
        #[arg(long, default_value_t = 5000)]
        requests: u64,
        /// Requests in flight per link.
        #[arg(long, default_value_t = 64)]
        window: usize,
    },
    /// Closed-loop load against a running switch (pipelined, `--window` in flight per link).
    Run {
        #[arg(long)]
        target: std::net::SocketAddr,
        #[arg(long, default_value = "01030000")]
        acquirer: String,
        #[arg(long, default_value = "00010000")]
        switch_id: String,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 10000)]
        requests: u64,
        #[arg(long, default_value_t = 64)]
        window: usize,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo {
                config,
                connections,
                requests,
                window,
            } => {
                let spec = loadgen::demo::DemoSpec {
                    config: config.unwrap_or_else(loadgen::demo::default_config),
                    connections,
                    requests,
                    window,
                };
                loadgen::demo::run(spec).await
            }
            Command::Run {
                target,
                acquirer,
                switch_id,
                connections,
                requests,
                window,
            } => {
                loadgen::traffic::seed_stan();
                let spec = loadgen::traffic::LoadSpec {
                    target,
                    acquirer,
                    switch_id,
                    connections,
                    requests_per_connection: requests,
                    window,
                    answer_timeout: std::time::Duration::from_secs(30),
                };
                let report = loadgen::traffic::run(spec, |_| {}).await?;
                loadgen::traffic::print_report(&report);
                Ok(report)
            }
        }
    });
    match result {
        Ok(report) if report.unanswered == 0 => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!(
                "loadgen: {} requests were never answered",
                report.unanswered
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
