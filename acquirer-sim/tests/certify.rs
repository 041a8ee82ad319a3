//! Every bundled certification suite through the real switch (in-process, bundled
//! configuration on loopback port 0) against issuer-sim with its bundled accounts and plans.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use acquirer_sim::certify::{self, CertifyOptions, Report};
use acquirer_sim::suite::Suite;
use issuer_sim::{AccountBook, InstallmentPlans, IssuerSim, IssuerSimConfig, Rules};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ISSUER: &str = "03010000";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bundled switch configuration with port-0 listeners and a scratch journal.
fn switch_config(dir: &Path) -> switch::config::Config {
    let mut config = switch::config::Config::load(repo().join("config/switch.toml")).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    config.listeners.acquirer = any;
    config.listeners.issuer = any;
    config.listeners.admin = any;
    config.journal.dir = dir.join("journal");
    config.journal.durability = switch::config::Durability::Buffered;
    config.clearing.output_dir = dir.join("clearing");
    config
}

/// The bundled issuer-sim: behaviour, plans and accounts from config/issuer-sim.
fn bundled_rules() -> Rules {
    let dir = repo().join("config/issuer-sim");
    Rules::load(&dir.join("behaviour.toml"))
        .unwrap()
        .with_plans(InstallmentPlans::load(&dir.join("plans.toml")).unwrap())
}

fn bundled_accounts() -> AccountBook {
    AccountBook::load(&repo().join("config/issuer-sim/accounts.csv")).unwrap()
}

/// Start the switch and an issuer-sim with `rules`, run each suite in turn, stop.
async fn run_suites(suites: &[&str], rules: Rules) -> Vec<Report> {
    let dir = tempfile::tempdir().unwrap();
    let config = switch_config(dir.path());
    let handle = tokio::task::spawn_blocking(move || {
        // The switch's clock stands at noon local time: a run near 23:00 must not meet the
        // cut-over (it would answer 90 while it lasts).
        switch::server::start(
            config,
            switch::server::StartOptions {
                clock: std::sync::Arc::new(switch::clock::ManualClock::today_at(12, 0, 0)),
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
            .with_rules(rules)
            .with_accounts(bundled_accounts()),
    )
    .await
    .unwrap();
    let opts = CertifyOptions {
        switch: handle.acquirer_addr,
        switch_id: "00010000".to_owned(),
        acquirer: "01030000".to_owned(),
        issuer: ISSUER.to_owned(),
        timeout: Duration::from_secs(10),
    };
    let mut reports = Vec::new();
    for name in suites {
        let suite =
            Suite::load(&repo().join("config/suites").join(format!("{name}.toml"))).unwrap();
        reports.push(certify::run(&suite, &opts).await.unwrap());
    }
    sim.shutdown().await;
    tokio::task::spawn_blocking(move || handle.shutdown())
        .await
        .unwrap()
        .unwrap();
    reports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bundled_suite_passes_against_issuer_sim() {
    let suites = [
        "basic",
        "installment",
        "limits",
        "malformed",
        "cards",
        "related",
    ];
    // Each suite twice on the same switch and issuer: a suite can run again (balances,
    // PIN counts and daily limits are left as they were found).
    let doubled: Vec<&str> = suites.iter().chain(suites.iter()).copied().collect();
    let reports = run_suites(&doubled, bundled_rules()).await;
    let mut failed = Vec::new();
    for r in &reports {
        eprintln!("{}", r.summary());
        if !r.passed() {
            failed.push(r.suite.clone());
        }
    }
    assert!(failed.is_empty(), "suites failed: {failed:?}");
    // Every case ran and the reports render.
    let basic = &reports[0];
    assert!(basic.results.len() >= 15);
    assert!(basic.junit_xml().contains("failures=\"0\""));
    assert!(basic.markdown().contains("**PASSED**"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misconfigured_issuer_fails_the_installment_cases_with_reasons() {
    // The bank configured 4.500 % for 6 periods instead of the agreed 4.320 %.
    let mut rules = bundled_rules();
    for r in &mut rules.installments.rates {
        if r.periods == 6 {
            r.rate = 4_500;
        }
    }
    let reports = run_suites(&["installment"], rules).await;
    let report = &reports[0];
    eprintln!("{}", report.summary());
    assert!(!report.passed());
    let case = |name: &str| report.results.iter().find(|r| r.name == name).unwrap();

    // F48 carries 4.320 %: the issuer says 23.
    let sent_rate = case("six-periods-with-subsidy");
    assert!(!sent_rate.passed());
    let reasons = sent_rate.reasons().join("\n");
    assert!(
        reasons.contains(
            "expected F39 00 (Approved), got 23 (Installment fee rate not the one agreed)"
        ),
        "{reasons}"
    );
    assert!(
        reasons.contains("expected F57 in the answer, it is missing"),
        "{reasons}"
    );
    assert!(
        reasons.contains("[STAN ") && reasons.contains(", F7 "),
        "{reasons}"
    );
    // Zero rate in F48: approved at the wrong rate; the F57 values give it away.
    let project = case("project-code-at-its-merchant");
    let reasons = project.reasons().join("\n");
    assert!(
        reasons.contains("F57 IP cardholder fee: expected 25920, got 27000"),
        "{reasons}"
    );
    assert!(
        reasons.contains("F57 IP first installment amount: expected 104320, got 104500"),
        "{reasons}"
    );
    // Its void follows the original that was declined.
    assert!(!case("void-of-installment").passed());
    // Plans the bank did not change still pass, and so do the declines.
    for name in [
        "three-periods-standard-rate-fee-first",
        "twelve-periods-merchant-rate",
        "periods-not-offered",
        "card-range-not-open",
    ] {
        assert!(case(name).passed(), "{name}: {:?}", case(name).reasons());
    }
    let dir = tempfile::tempdir().unwrap();
    let (xml, md) = report.write(dir.path()).unwrap();
    let xml = std::fs::read_to_string(xml).unwrap();
    assert!(
        xml.contains("<failure message=\"expected F39 00 (Approved), got 23"),
        "{xml}"
    );
    let md = std::fs::read_to_string(md).unwrap();
    assert!(
        md.contains("**FAILED**") && md.contains("### six-periods-with-subsidy"),
        "{md}"
    );
}
