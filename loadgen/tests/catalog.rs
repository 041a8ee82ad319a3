#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The catalog drawn from the bundled configuration: cards route where loadgen thinks, and
//! merchant/terminal pairs stay under the bundled limits.

use loadgen::catalog::{luhn_valid, Catalog};
use loadgen::mix::Kind;
use rand::SeedableRng;
use std::collections::HashMap;
use switch::config::Config;
use switch::registry::TxnCategory;

fn bundled() -> Config {
    Config::load(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/switch.toml"))
        .unwrap()
}

#[test]
fn cards_are_luhn_valid_and_route_to_the_selected_issuers() {
    let config = bundled();
    let one = Catalog::from_config(&config, "01030000", "00010000", &["03020000".into()]).unwrap();
    let all = Catalog::from_config(&config, "01030000", "00010000", &[]).unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut issuers_seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let pan = all.card(Kind::Purchase, &mut rng).unwrap();
        assert!(luhn_valid(pan.as_bytes()));
        let route = config.bins.lookup(pan.as_bytes()).expect("routable");
        issuers_seen.insert(route.issuer.to_string());
        let pan = one.card(Kind::Purchase, &mut rng).unwrap();
        assert_eq!(
            config
                .bins
                .lookup(pan.as_bytes())
                .unwrap()
                .issuer
                .to_string(),
            "03020000"
        );
        let inst = all.card(Kind::Installment, &mut rng).unwrap();
        let route = config.bins.lookup(inst.as_bytes()).unwrap();
        assert!(route.installment, "{inst:?} is not on an installment range");
        assert_eq!(
            route.issuer.to_string(),
            "03010000",
            "the installment issuer"
        );
        let bad = all.card(Kind::Unroutable, &mut rng).unwrap();
        assert!(config.bins.lookup(bad.as_bytes()).is_none());
    }
    assert_eq!(issuers_seen.len(), 2, "both issuers' ranges are used");
    // The second issuer is not open for installments: no installment cards for it alone.
    assert!(one.card(Kind::Installment, &mut rng).is_none());
    assert!(Catalog::from_config(&config, "01030000", "00010000", &["09990000".into()]).is_err());
}

#[test]
fn bounded_pairs_are_used_only_up_to_half_their_daily_limit() {
    let config = bundled();
    let catalog = Catalog::from_config(&config, "01030000", "00010000", &[]).unwrap();
    assert!(catalog.uncovered.is_empty(), "{:?}", catalog.uncovered);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let mut picks: HashMap<(String, String), u64> = HashMap::new();
    for _ in 0..2_000 {
        let place = catalog
            .pick_place(TxnCategory::Purchase, 1_000_000, &mut rng)
            .unwrap();
        let p = catalog.place(place).unwrap();
        let key = (
            String::from_utf8_lossy(&p.merchant).trim().to_owned(),
            String::from_utf8_lossy(&p.terminal).trim().to_owned(),
        );
        *picks.entry(key).or_default() += 1;
    }
    let limits = &config.registry.limits;
    for ((m, t), n) in &picks {
        let tid = switch::registry::TerminalId::parse(t).unwrap();
        let mid = switch::registry::MerchantId::parse(m).unwrap();
        let tl = limits
            .terminal_limit(&tid, &mid, TxnCategory::Purchase)
            .copied()
            .unwrap_or_default();
        let ml = limits
            .merchant_limit(&mid, TxnCategory::Purchase)
            .copied()
            .unwrap_or_default();
        for cap in [tl.daily_amount_max, ml.daily_amount_max]
            .into_iter()
            .flatten()
        {
            assert!(
                i64::try_from(*n).unwrap() * 1_000_000 <= cap / 2,
                "{m}/{t}: {n} x 1,000,000 over half the daily cap {cap}"
            );
        }
    }
    // The unlimited pairs took the rest, and suspended ones were never used.
    assert!(picks.contains_key(&("MERCHANT0000001".into(), "TERM0001".into())));
    assert!(!picks.contains_key(&("MERCHANT0000001".into(), "TERM0003".into())));
    assert!(!picks.keys().any(|(m, _)| m == "MERCHANT0000004"));
    // Balance inquiries never go to a pair that does not permit them.
    for _ in 0..100 {
        let place = catalog
            .pick_place(TxnCategory::Balance, 0, &mut rng)
            .unwrap();
        let p = catalog.place(place).unwrap();
        assert_ne!(
            String::from_utf8_lossy(&p.merchant).trim(),
            "MERCHANT0000003"
        );
    }
}
