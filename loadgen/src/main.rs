//! The `loadgen` binary: argument parsing and output only; the work is in the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use loadgen::catalog::Catalog;
use loadgen::engine::{self, LoadSpec, Rate};
use loadgen::mix::{Mix, DEFAULT_MIX};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
    /// Start the switch and simulated issuers in-process on the bundled configuration (ports
    /// 0, temporary journal), run a closed-loop and an open-loop burst, print the summaries.
    Demo {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Acquirer links.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Closed-loop phase: transactions in all.
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
        /// Closed-loop phase: requests in flight per link.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Open-loop phase: transactions per second (0: skip the phase).
        #[arg(long, default_value_t = 10_000.0)]
        rate: f64,
        /// Open-loop phase: how long.
        #[arg(long, default_value = "3s", value_parser = loadgen::parse_duration)]
        duration: Duration,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
    },
    /// Load a running switch: open loop at `--rate` per second (latency from each request's
    /// intended send time), or closed loop with `--rate max` and `--window` in flight per link.
    Run(Box<RunArgs>),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The switch's acquirer listener.
    #[arg(long)]
    target: std::net::SocketAddr,
    /// Requests per second over all links, or `max` (closed loop).
    #[arg(long, default_value = "10000")]
    rate: String,
    /// Sending phase.
    #[arg(long, default_value = "30s", value_parser = loadgen::parse_duration)]
    duration: Duration,
    /// Stop after this many requests (closed loop; default: run for --duration).
    #[arg(long)]
    requests: Option<u64>,
    /// Acquirer links.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// In flight per link with `--rate max`.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Acquirer institution (header source, F32, F33).
    #[arg(long, default_value = "01030000")]
    acquirer: String,
    /// The switch's institution ID (header destination).
    #[arg(long, default_value = "00010000")]
    switch_id: String,
    /// The switch configuration whose BIN table, merchants, terminals and limits the requests
    /// are drawn from (default: the bundled config/switch.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Only use cards of these issuers (comma-separated IDs; default: every issuer).
    #[arg(long, value_delimiter = ',')]
    issuers: Vec<String>,
    /// Transaction mix: KIND=WEIGHT,... (purchase, installment, balance, void, refund,
    /// reversal, decline, unroutable).
    #[arg(long, default_value = DEFAULT_MIX, conflicts_with = "mix_file")]
    mix: String,
    /// Transaction mix from a TOML file (`purchase = 70` lines).
    #[arg(long)]
    mix_file: Option<PathBuf>,
    /// After sending, wait this long for outstanding answers (then they count unanswered).
    #[arg(long, default_value = "10s", value_parser = loadgen::parse_duration)]
    drain_timeout: Duration,
    /// Open loop: send instants from a pacing thread that wakes the senders at most every
    /// this many microseconds (sends due within one tick go together). 0 (default): tokio's
    /// timer, whose 1 ms slots make each send up to a millisecond late, and that lateness is
    /// in every latency. A tick of 200-500 halves the median send lag at 50,000/s but costs
    /// loadgen a third more CPU a request (docs/performance.md).
    #[arg(long, default_value_t = 0)]
    pacing_us: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write a latency-over-time plot (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Before the runtime and its threads' heaps: see the function for why.
    if let Err(e) = issuer_sim::process::disable_transparent_huge_pages() {
        tracing::warn!(error = %e, "transparent huge pages stay on");
    }
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
                rate,
                duration,
                quiet,
            } => {
                let spec = loadgen::demo::DemoSpec {
                    config: config.unwrap_or_else(loadgen::demo::default_config),
                    connections,
                    requests,
                    window,
                    open_rate: (rate > 0.0).then_some(rate),
                    open_duration: duration,
                    quiet,
                };
                let outcome = loadgen::demo::run(spec).await?;
                let open_clean = match &outcome.open {
                    Some(r) => engine::clean(r),
                    None => true,
                };
                Ok(engine::clean(&outcome.closed) && open_clean)
            }
            Command::Run(args) => run(*args).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen: some requests were never answered or links failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let rate = if args.rate.eq_ignore_ascii_case("max") {
        Rate::Max {
            window: args.window.max(1),
        }
    } else {
        let r: f64 = args
            .rate
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && *r > 0.0)
            .with_context(|| format!("--rate {:?}: a positive number or max", args.rate))?;
        Rate::Fixed(r)
    };
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    let mix = match &args.mix_file {
        Some(path) => Mix::load(path)?,
        None => Mix::parse(&args.mix)?,
    };
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(loadgen::demo::default_config);
    let config = switch::config::Config::load(&config_path)
        .with_context(|| format!("loading {}", config_path.display()))?;
    let catalog = Catalog::from_config(&config, &args.acquirer, &args.switch_id, &args.issuers)?;
    if !catalog.uncovered.is_empty() {
        let names: Vec<&str> = catalog.uncovered.iter().map(|c| c.as_str()).collect();
        eprintln!(
            "loadgen: no registered merchant/terminal of {} permits {}: those requests will be declined",
            args.acquirer,
            names.join(", ")
        );
    }
    engine::seed_stan();
    let spec = LoadSpec {
        target: args.target,
        connections: args.connections,
        rate,
        duration: args.duration,
        max_requests: args.requests,
        mix,
        drain_timeout: args.drain_timeout,
        pool_per_link: 1024,
        pacer_tick: (args.pacing_us > 0).then(|| Duration::from_micros(args.pacing_us)),
    };
    let progress = !args.quiet && engine::stderr_is_tty();
    let mut line = engine::progress_line();
    let report = engine::run(spec, Arc::new(catalog), |live, secs| {
        if progress {
            line(live, secs);
        }
    })
    .await;
    if progress {
        eprintln!();
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&loadgen::report::json(&report))?
        );
    } else {
        print!("{}", loadgen::report::text(&report));
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, loadgen::report::svg(&report))
            .with_context(|| format!("writing {}", path.display()))?;
        if !args.json {
            println!("plot: {}", path.display());
        }
    }
    Ok(engine::clean(&report))
}
