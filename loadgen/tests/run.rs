#![allow(clippy::unwrap_used, clippy::expect_used)]
//! loadgen against an in-process switch (bundled configuration, ports 0, temporary journal)
//! and one simulated issuer, over real loopback TCP.

use iso8583::{Message, Mti};
use issuer_sim::{IssuerSim, IssuerSimConfig, Rules};
use loadgen::catalog::Catalog;
use loadgen::engine::{self, LoadSpec, Rate, Report};
use loadgen::mix::{Kind, Mix};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switch::config::Config;

const ISSUER: &str = "03010000";

/// Messages the issuer received, by (MTI, F3 digits 1-2, F60.1 reason).
type Seen = Arc<Mutex<BTreeMap<(String, String, String), u64>>>;

struct Rig {
    switch: Option<switch::server::SwitchHandle>,
    sim: Option<IssuerSim>,
    catalog: Arc<Catalog>,
    seen: Seen,
    /// Bumped after every message the issuer receives.
    arrivals: tokio::sync::watch::Receiver<u64>,
    _dir: tempfile::TempDir,
}

fn bundled() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/switch.toml")
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(bundled()).unwrap();
    let lo = SocketAddr::from(([127, 0, 0, 1], 0));
    config.listeners.acquirer = lo;
    config.listeners.issuer = lo;
    config.listeners.admin = lo;
    config.journal.dir = dir.path().join("journal");
    config.journal.durability = switch::journal::Durability::Buffered;
    config.clearing.output_dir = dir.path().join("clearing");
    let catalog =
        Catalog::from_config(&config, "01030000", "00010000", &[ISSUER.to_owned()]).unwrap();
    assert_eq!(
        catalog.issuers.len(),
        1,
        "only the connected issuer's cards"
    );
    let handle = tokio::task::spawn_blocking(move || {
        // The switch's clock stands at noon local time: a run near 23:00 must not meet the
        // cut-over (new requests are 90 while it lasts).
        switch::server::start(
            config,
            switch::server::StartOptions {
                clock: Arc::new(switch::clock::ManualClock::today_at(12, 0, 0)),
                tick_ms: 5,
            },
        )
    })
    .await
    .unwrap()
    .unwrap();
    let sim = IssuerSim::start(
        IssuerSimConfig::new(handle.issuer_addr, ISSUER)
            .with_links(2)
            .with_rules(Rules::default()),
    )
    .await
    .unwrap();
    let seen: Seen = Arc::new(Mutex::new(BTreeMap::new()));
    let mut tap = sim.subscribe();
    let counts = Arc::clone(&seen);
    let (arrived, arrivals) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        while let Ok(msg) = tap.recv().await {
            let msg: Message = msg;
            let pc = msg
                .processing_code()
                .map(|p| String::from_utf8_lossy(&p[..2]).into_owned())
                .unwrap_or_default();
            let reason = msg
                .f60()
                .and_then(|f| {
                    f.reason_code()
                        .map(|r| String::from_utf8_lossy(r).into_owned())
                })
                .unwrap_or_default();
            *counts
                .lock()
                .unwrap()
                .entry((msg.mti().to_string(), pc, reason))
                .or_insert(0) += 1;
            arrived.send_modify(|n| *n += 1);
        }
    });
    Rig {
        switch: Some(handle),
        sim: Some(sim),
        catalog: Arc::new(catalog),
        seen,
        arrivals,
        _dir: dir,
    }
}

impl Rig {
    fn target(&self) -> SocketAddr {
        self.switch.as_ref().unwrap().acquirer_addr
    }

    fn seen(&self, mti: Mti, pc: &str, reason: Option<&str>) -> u64 {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|((m, p, r), _)| *m == mti.to_string() && p == pc && reason.unwrap_or(r) == r)
            .map(|(_, n)| *n)
            .sum()
    }

    async fn stop(mut self) {
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
        if let Some(h) = self.switch.take() {
            tokio::task::spawn_blocking(move || h.shutdown())
                .await
                .unwrap()
                .unwrap();
        }
    }
}

fn approved(r: &Report, kind: Kind) -> u64 {
    r.by_kind_code
        .get(&(kind, "00".to_owned()))
        .copied()
        .unwrap_or(0)
}

/// Every request is accounted for: answered (by code) or unanswered, per kind and in all.
fn assert_accounted(r: &Report) {
    let sent_by_kind: u64 = r.sent_by_kind.values().sum();
    assert_eq!(sent_by_kind, r.sent);
    assert_eq!(r.sent, r.answered + r.unanswered, "{r:?}");
    let by_code: u64 = r.by_code.values().sum();
    assert_eq!(by_code, r.answered);
    let by_kind_code: u64 = r.by_kind_code.values().sum();
    assert_eq!(by_kind_code, r.answered);
    for (kind, sent) in &r.sent_by_kind {
        let answered: u64 = r
            .by_kind_code
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|(_, n)| n)
            .sum();
        let unanswered = r.unanswered_by_kind.get(kind).copied().unwrap_or(0);
        assert_eq!(answered + unanswered, *sent, "{kind}");
    }
    assert_eq!(r.accounting.latency.len(), r.answered);
    let timeline: u64 = r.timeline.iter().map(|s| s.answered).sum();
    assert_eq!(timeline, r.answered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_mix_reaches_the_issuer_and_every_request_is_accounted_for() {
    let mut rig = rig().await;
    engine::seed_stan();
    let spec = LoadSpec {
        target: rig.target(),
        connections: 2,
        rate: Rate::Max { window: 8 },
        duration: Duration::from_secs(120),
        max_requests: Some(800),
        mix: Mix::parse("purchase=40,installment=5,balance=5,void=15,refund=15,reversal=20")
            .unwrap(),
        drain_timeout: Duration::from_secs(30),
        pacer_tick: None,
        pool_per_link: 64,
    };
    let r = engine::run(spec, Arc::clone(&rig.catalog), |_, _| {}).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.sent, 800);
    assert_accounted(&r);
    assert_eq!(r.unanswered, 0);
    for kind in [Kind::Void, Kind::Refund, Kind::Reversal] {
        assert!(
            r.sent_by_kind.get(&kind).copied().unwrap_or(0) > 0,
            "no {kind} was sent: {:?}",
            r.sent_by_kind
        );
    }
    // What the issuer received: the related transactions, built from loadgen's own approvals.
    let voids = approved(&r, Kind::Void);
    let refunds = approved(&r, Kind::Refund);
    assert!(voids > 0 && refunds > 0, "{:?}", r.by_kind_code);
    // Reversals are advices: the switch may answer them before the issuer sees them, so
    // wait (bounded) until every one has arrived.
    let reversals = r.sent_by_kind[&Kind::Reversal];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let done = rig.seen(Mti::FINANCIAL_REQUEST, "20", None) >= voids
            && rig.seen(Mti::FINANCIAL_ADVICE, "20", None) >= refunds
            && rig.seen(Mti::REVERSAL_ADVICE, "00", Some("4351")) >= approved(&r, Kind::Reversal);
        if done {
            break;
        }
        // Wait for the next arrival at the issuer, or give up at the deadline (the asserts
        // below then say what is missing).
        if !matches!(
            tokio::time::timeout_at(deadline, rig.arrivals.changed()).await,
            Ok(Ok(()))
        ) {
            break;
        }
    }
    assert_eq!(rig.seen(Mti::FINANCIAL_REQUEST, "20", None), voids);
    assert_eq!(rig.seen(Mti::FINANCIAL_ADVICE, "20", None), refunds);
    let issuer_reversals = rig.seen(Mti::REVERSAL_ADVICE, "00", Some("4351"));
    assert!(
        issuer_reversals >= 1 && issuer_reversals <= reversals,
        "issuer saw {issuer_reversals} terminal reversals of {reversals} sent"
    );
    // Purchases and installments reached the issuer too (none unroutable in this mix).
    assert!(rig.seen(Mti::FINANCIAL_REQUEST, "00", None) > 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_run_from_the_command_line_prints_json_and_writes_a_plot() {
    let rig = rig().await;
    let out = tempfile::tempdir().unwrap();
    let plot = out.path().join("latency.svg");
    let target = rig.target().to_string();
    let config = bundled();
    let plot_arg = plot.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args([
                "run",
                "--target",
                &target,
                "--rate",
                "1500",
                "--duration",
                "1s",
            ])
            .args([
                "--connections",
                "3",
                "--issuers",
                ISSUER,
                "--json",
                "--quiet",
            ])
            .args(["--mix", "purchase=80,balance=10,void=5,reversal=5"])
            .arg("--config")
            .arg(&config)
            .arg("--plot")
            .arg(&plot_arg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert_eq!(v["mode"], "open");
    assert_eq!(v["connections"], 3);
    // 1500/s for 1 s.
    assert_eq!(n("sent"), 1500);
    assert_eq!(n("sent"), n("answered") + n("unanswered"));
    let codes: u64 = v["by_code"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(codes, n("answered"));
    let kinds: u64 = v["by_kind"]
        .as_object()
        .unwrap()
        .values()
        .map(|k| k["sent"].as_u64().unwrap())
        .sum();
    assert_eq!(kinds, n("sent"));
    assert!(v["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let per_second: u64 = v["per_second"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["answered"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second, n("answered"));
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    assert!(svg.starts_with("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<polyline").count(),
        4,
        "p50, p99, max, throughput"
    );
    rig.stop().await;
}

/// A run of purchases for 250 ms against an issuer that never answers (the switch's 20 s
/// timeout is longer than loadgen's 300 ms drain): every request ends unanswered.
async fn against_a_silent_issuer(
    connections: usize,
    rate: Rate,
    pacer_tick: Option<Duration>,
) -> engine::Report {
    let rig = rig().await;
    rig.sim
        .as_ref()
        .unwrap()
        .set_rules(Rules::default().with_drop_rate(1.0));
    let spec = LoadSpec {
        target: rig.target(),
        connections,
        rate,
        duration: Duration::from_millis(250),
        max_requests: None,
        mix: Mix::parse("purchase=1").unwrap(),
        drain_timeout: Duration::from_millis(300),
        pacer_tick,
        pool_per_link: 16,
    };
    let r = engine::run(spec, Arc::clone(&rig.catalog), |_, _| {}).await;
    rig.stop().await;
    assert_accounted(&r);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_are_counted_when_the_issuer_stays_silent() {
    let r = against_a_silent_issuer(2, Rate::Fixed(200.0), Some(Duration::from_micros(200))).await;
    assert_eq!(r.sent, 50);
    assert_eq!(r.answered, 0);
    assert_eq!(r.unanswered, 50);
    assert_eq!(r.unanswered_by_kind[&Kind::Purchase], 50);
    assert!(!engine::clean(&r));
}

/// A closed loop fills its whole window, even one wider than a link's turn of 64 requests:
/// with an issuer that never answers, exactly the window goes out and nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_fills_a_window_wider_than_one_turn() {
    let r = against_a_silent_issuer(1, Rate::Max { window: 200 }, None).await;
    assert_eq!(r.sent, 200, "the window, in turns of 64, 64, 64 and 8");
    assert_eq!(r.unanswered, 200);
}

#[test]
fn the_example_mix_file_is_the_default_mix() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mix-example.toml");
    assert_eq!(
        Mix::load(&path).unwrap(),
        Mix::parse(loadgen::mix::DEFAULT_MIX).unwrap()
    );
}
