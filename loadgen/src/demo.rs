//! `loadgen demo`: the switch on the bundled configuration, a simulated issuer, a burst of
//! traffic, and a summary. Everything runs in this process over real loopback TCP.

use crate::traffic::{self, LoadSpec, DECLINED_AMOUNT};
use anyhow::Context as _;
use iso8583::ResponseCode;
use issuer_sim::{IssuerSim, IssuerSimConfig, Rules};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Demo parameters.
pub struct DemoSpec {
    pub config: PathBuf,
    pub connections: usize,
    pub requests: u64,
    pub window: usize,
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

pub async fn run(spec: DemoSpec) -> anyhow::Result<traffic::Report> {
    let config = switch::config::Config::load(&spec.config)?;
    let acquirer = config
        .acquirers()
        .next()
        .map(|i| i.id.to_string())
        .context("the configuration has no acquirer")?;
    let issuers: Vec<String> = config.issuers().map(|i| i.id.to_string()).collect();
    let switch_id = config.switch.id.to_string();
    let journal_dir = config.journal.dir.clone();
    println!("cardswitch demo: configuration {}", spec.config.display());
    let handle = tokio::task::spawn_blocking(move || {
        switch::server::start(config, switch::server::StartOptions::default())
    })
    .await??;
    println!(
        "switch {switch_id}: acquirers on {}, issuers on {}, metrics on http://{}/metrics",
        handle.acquirer_addr, handle.issuer_addr, handle.admin_addr
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
    traffic::seed_stan();
    let total = spec.requests * spec.connections as u64;
    println!(
        "sending {total} transactions from acquirer {acquirer} over {} links (window {})",
        spec.connections, spec.window
    );
    let load = LoadSpec {
        target: handle.acquirer_addr,
        acquirer,
        switch_id,
        connections: spec.connections,
        requests_per_connection: spec.requests,
        window: spec.window,
        answer_timeout: Duration::from_secs(30),
    };
    let report = traffic::run(load, |n| {
        print!("\r  answered {n:>8} / {total}");
        let _ = std::io::stdout().flush();
    })
    .await?;
    println!("\r  answered {:>8} / {total}", report.answered);
    println!();
    traffic::print_report(&report);
    for sim in sims {
        let institution = sim.institution().to_owned();
        let s = sim.shutdown().await;
        println!(
            "issuer-sim {institution}: {} requests, {} approved, {} declined (signed off)",
            s.requests, s.approved, s.declined
        );
    }
    tokio::task::spawn_blocking(move || handle.shutdown()).await??;
    println!(
        "switch stopped gracefully; journal in {}",
        journal_dir.display()
    );
    Ok(report)
}
