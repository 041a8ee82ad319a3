//! `loadgen demo`: the switch on the bundled configuration (listeners on port 0, journal in a
//! temporary directory), one simulated issuer per configured issuer, then two runs through
//! them: closed loop (as fast as it goes) and open loop at a fixed rate. Everything runs in
//! this process over real loopback TCP.

use crate::catalog::Catalog;
use crate::engine::{self, LoadSpec, Rate, Report};
use crate::mix::Mix;
use crate::report;
use crate::txn::DECLINED_AMOUNT;
use anyhow::Context as _;
use iso8583::ResponseCode;
use issuer_sim::{IssuerSim, IssuerSimConfig, Rules};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The demo's mix: every kind, including the issuer's decline and an unroutable BIN.
pub const DEMO_MIX: &str =
    "purchase=65,installment=8,balance=5,void=5,refund=5,reversal=5,decline=5,unroutable=2";

/// Demo parameters.
pub struct DemoSpec {
    pub config: PathBuf,
    pub connections: usize,
    /// Closed-loop phase: requests in all and window per link.
    pub requests: u64,
    pub window: usize,
    /// Open-loop phase: rate and duration (`None`: skipped).
    pub open_rate: Option<f64>,
    pub open_duration: Duration,
    pub quiet: bool,
}

/// Find the bundled configuration from the working directory or the source tree.
#[must_use]
pub fn default_config() -> PathBuf {
    let here = Path::new("config/switch.toml");
    if here.exists() {
        return here.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/switch.toml")
}

/// The demo's two reports (closed loop, then open loop if run).
pub struct DemoOutcome {
    pub closed: Report,
    pub open: Option<Report>,
}

pub async fn run(spec: DemoSpec) -> anyhow::Result<DemoOutcome> {
    let mut config = switch::config::Config::load(&spec.config)?;
    let journal = tempfile::Builder::new()
        .prefix("cardswitch-demo-journal")
        .tempdir()
        .context("creating a temporary journal directory")?;
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    config.listeners.acquirer = loopback(0);
    config.listeners.issuer = loopback(0);
    config.listeners.admin = loopback(0);
    config.journal.dir = journal.path().join("journal");
    config.clearing.output_dir = journal.path().join("clearing");
    let acquirer = config
        .acquirers()
        .next()
        .map(|i| i.id.to_string())
        .context("the configuration has no acquirer")?;
    let issuers: Vec<String> = config.issuers().map(|i| i.id.to_string()).collect();
    let switch_id = config.switch.id.to_string();
    let catalog = Arc::new(Catalog::from_config(&config, &acquirer, &switch_id, &[])?);
    println!("cardswitch demo: configuration {}", spec.config.display());
    let handle = tokio::task::spawn_blocking(move || {
        switch::server::start(config, switch::server::StartOptions::default())
    })
    .await??;
    println!(
        "switch {switch_id}: acquirers on {}, issuers on {}, metrics on http://{}/metrics, journal (fsync) in {}",
        handle.acquirer_addr,
        handle.issuer_addr,
        handle.admin_addr,
        journal.path().display()
    );
    let rules =
        Rules::default().with_decline_amount(DECLINED_AMOUNT, ResponseCode::INSUFFICIENT_FUNDS);
    let mut sims = Vec::new();
    for issuer in &issuers {
        let sim = IssuerSim::start(
            IssuerSimConfig::new(handle.issuer_addr, issuer)
                .with_switch_id(&switch_id)
                .with_links(2)
                .with_rules(rules.clone()),
        )
        .await?;
        println!("issuer-sim {issuer}: 2 links signed on");
        sims.push(sim);
    }
    engine::seed_stan();
    let mix = Mix::parse(DEMO_MIX)?;
    let base = LoadSpec {
        target: handle.acquirer_addr,
        connections: spec.connections,
        rate: Rate::Max {
            window: spec.window,
        },
        duration: Duration::from_secs(600),
        max_requests: Some(spec.requests),
        mix,
        drain_timeout: Duration::from_secs(30),
        pool_per_link: 1024,
        pacer_tick: None,
    };
    let progress = !spec.quiet && engine::stderr_is_tty();
    let tick = |progress: bool| {
        let mut line = engine::progress_line();
        move |live: &engine::Live, secs: u64| {
            if progress {
                line(live, secs);
            }
        }
    };
    println!(
        "\n1. closed loop: {} transactions over {} links, {} in flight per link",
        spec.requests, spec.connections, spec.window
    );
    let closed = engine::run(base.clone(), Arc::clone(&catalog), tick(progress)).await;
    if progress {
        eprintln!();
    }
    print!("{}", report::text(&closed));
    let open = match spec.open_rate {
        Some(rate) => {
            println!(
                "\n2. open loop: {rate:.0} transactions/s for {:.0} s over {} links (latency from each request's intended send time)",
                spec.open_duration.as_secs_f64(),
                spec.connections
            );
            let open_spec = LoadSpec {
                rate: Rate::Fixed(rate),
                duration: spec.open_duration,
                max_requests: None,
                ..base
            };
            let r = engine::run(open_spec, Arc::clone(&catalog), tick(progress)).await;
            if progress {
                eprintln!();
            }
            print!("{}", report::text(&r));
            Some(r)
        }
        None => None,
    };
    println!();
    for sim in sims {
        let institution = sim.institution().to_owned();
        let s = sim.shutdown().await;
        println!(
            "issuer-sim {institution}: {} requests, {} approved, {} declined, {} reversals (signed off)",
            s.requests, s.approved, s.declined, s.reversals
        );
    }
    tokio::task::spawn_blocking(move || handle.shutdown()).await??;
    println!("switch stopped gracefully; temporary journal removed");
    drop(journal);
    Ok(DemoOutcome { closed, open })
}
