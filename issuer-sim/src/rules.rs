//! Approve/decline rules and behaviour knobs as data (loadable from TOML, the simulator's
//! "behaviour file"), evaluated per request without allocation.

use crate::knobs::Latency;
pub use crate::plans::{InstallmentPlans, MerchantRate, StandardRate};
use iso8583::ResponseCode;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// How the simulated issuer decides and behaves. Evaluated in this order for
/// `0100`/`0200`/`0220`: `silent_pans`, `drop_rate`, `pan_codes` (first match),
/// `decline_amounts` (first match), then the card account (when the simulator keeps
/// accounts, [`crate::accounts`]) and the installment plans, then `default_code`.
/// Reversals and network management are not subject to these rules (see
/// [`crate::Behaviour`]).
///
/// The knobs (`latency`, `late_rate`, `disconnect_after`, `disconnect_rate`,
/// `other_link_rate`) shape how answers are delivered; see [`crate::knobs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Answer when no other rule applies (`00`).
    #[serde(with = "code_serde")]
    pub default_code: ResponseCode,
    /// `(PAN or PAN suffix, code)`: a request whose F2 ends with `pan` gets `code`.
    pub pan_codes: Vec<PanRule>,
    /// `(exact F4 amount in minor units, code)`, e.g. `5100 -> 51`.
    pub decline_amounts: Vec<AmountRule>,
    /// PANs (or suffixes) whose requests are never answered (counted as unanswered).
    pub silent_pans: Vec<String>,
    /// Fraction (0.0 to 1.0) of requests never answered, at random.
    pub drop_rate: f64,
    /// Fixed latency added before answering a `0100`/`0200`/`0220`.
    #[serde(rename = "delay_ms", with = "millis_serde")]
    pub delay: Duration,
    /// Random latency added on top of `delay` (fixed, uniform, lognormal or Pareto).
    pub latency: Latency,
    /// Fraction (0.0 to 1.0) of answers sent late: after `late_delay` instead of at once
    /// (beyond the switch's issuer timeout, so the switch reverses a late approval).
    pub late_rate: f64,
    #[serde(rename = "late_delay_ms", with = "millis_serde")]
    pub late_delay: Duration,
    /// Cut a link (without sign-off) when it receives its Nth request; that request is not
    /// answered. 0 = never. Dialled links are redialled (see [`crate::Behaviour`]).
    pub disconnect_after: u64,
    /// Fraction (0.0 to 1.0) of requests that make the simulator cut their link instead of
    /// answering.
    pub disconnect_rate: f64,
    /// Fraction (0.0 to 1.0) of answers sent on another signed-on link than the request's
    /// (SPEC.md section 2: a response may arrive on any link of the institution).
    pub other_link_rate: f64,
    /// Available balance returned in F54 for an approved balance inquiry (minor units) when
    /// the simulator keeps no card accounts.
    pub balance: i64,
    /// The installment plans: periods offered and their standard rates, amount bounds,
    /// merchant whitelist, personalised merchant rates (SPEC.md section 11).
    pub installments: InstallmentPlans,
}

/// A PAN (or PAN suffix) rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanRule {
    /// Full PAN or a suffix of it (digits).
    pub pan: String,
    #[serde(with = "code_serde")]
    pub code: ResponseCode,
}

/// An exact-amount rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountRule {
    /// F4 in minor units.
    pub amount: i64,
    #[serde(with = "code_serde")]
    pub code: ResponseCode,
}

/// What the rules say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Answer with this F39.
    Answer(ResponseCode),
    /// Never answer (by design: silent PAN or dropped).
    Silent,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            default_code: ResponseCode::APPROVED,
            pan_codes: Vec::new(),
            decline_amounts: Vec::new(),
            silent_pans: Vec::new(),
            drop_rate: 0.0,
            delay: Duration::ZERO,
            latency: Latency::None,
            late_rate: 0.0,
            late_delay: Duration::from_secs(30),
            disconnect_after: 0,
            disconnect_rate: 0.0,
            other_link_rate: 0.0,
            balance: 100_000_000,
            installments: InstallmentPlans::default(),
        }
    }
}

fn pan_matches(pan: &[u8], rule: &str) -> bool {
    !rule.is_empty() && pan.ends_with(rule.as_bytes())
}

impl Rules {
    /// Approve everything (the default).
    #[must_use]
    pub fn approve_all() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn with_default_code(mut self, code: ResponseCode) -> Self {
        self.default_code = code;
        self
    }

    /// Requests whose PAN ends with `pan_or_suffix` get `code`.
    #[must_use]
    pub fn with_pan_code(mut self, pan_or_suffix: &str, code: ResponseCode) -> Self {
        self.pan_codes.push(PanRule {
            pan: pan_or_suffix.to_owned(),
            code,
        });
        self
    }

    /// Requests for exactly `amount` (minor units) get `code`.
    #[must_use]
    pub fn with_decline_amount(mut self, amount: i64, code: ResponseCode) -> Self {
        self.decline_amounts.push(AmountRule { amount, code });
        self
    }

    /// Requests whose PAN ends with `pan_or_suffix` are never answered.
    #[must_use]
    pub fn with_silent_pan(mut self, pan_or_suffix: &str) -> Self {
        self.silent_pans.push(pan_or_suffix.to_owned());
        self
    }

    #[must_use]
    pub fn with_drop_rate(mut self, rate: f64) -> Self {
        self.drop_rate = rate;
        self
    }

    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    #[must_use]
    pub fn with_balance(mut self, balance: i64) -> Self {
        self.balance = balance;
        self
    }

    /// Random latency on top of the fixed delay.
    #[must_use]
    pub fn with_latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// Answer a fraction `rate` of requests only after `delay`.
    #[must_use]
    pub fn with_late_answers(mut self, rate: f64, delay: Duration) -> Self {
        self.late_rate = rate;
        self.late_delay = delay;
        self
    }

    /// Cut a link when it receives its `n`th request (0 = never).
    #[must_use]
    pub fn with_disconnect_after(mut self, n: u64) -> Self {
        self.disconnect_after = n;
        self
    }

    /// Cut the link instead of answering a fraction `rate` of requests.
    #[must_use]
    pub fn with_disconnect_rate(mut self, rate: f64) -> Self {
        self.disconnect_rate = rate;
        self
    }

    /// Answer a fraction `rate` of requests on another link than the request's.
    #[must_use]
    pub fn with_other_link_rate(mut self, rate: f64) -> Self {
        self.other_link_rate = rate;
        self
    }

    /// Replace the installment plans.
    #[must_use]
    pub fn with_plans(mut self, plans: InstallmentPlans) -> Self {
        self.installments = plans;
        self
    }

    /// Parse rules from TOML text (every key optional, unknown keys are errors).
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let rules: Rules = toml::from_str(text)?;
        rules.validate()?;
        Ok(rules)
    }

    /// Load rules from a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Check value ranges.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, rate) in [
            ("drop_rate", self.drop_rate),
            ("late_rate", self.late_rate),
            ("disconnect_rate", self.disconnect_rate),
            ("other_link_rate", self.other_link_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                anyhow::bail!("{name} must be between 0.0 and 1.0, got {rate}");
            }
        }
        self.latency.validate()?;
        self.installments.validate()?;
        if let Some(r) = self
            .pan_codes
            .iter()
            .find(|r| r.pan.is_empty() || !r.pan.bytes().all(|b| b.is_ascii_digit()))
        {
            anyhow::bail!(
                "pan_codes: {:?} is not a PAN or PAN suffix (digits)",
                iso8583::mask_pan(r.pan.as_bytes())
            );
        }
        if self
            .silent_pans
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            anyhow::bail!("silent_pans: every entry must be a PAN or PAN suffix (digits)");
        }
        if self.balance < 0 {
            anyhow::bail!("balance must not be negative");
        }
        Ok(())
    }

    /// The standard fee rate for `periods`, if that plan is offered.
    #[must_use]
    pub fn standard_rate(&self, periods: u8) -> Option<u32> {
        self.installments.standard_rate(periods)
    }

    /// Decide for a request with this PAN and amount. `roll` is a uniform random number in
    /// `[0, 1)`, compared with `drop_rate`.
    #[must_use]
    pub fn decide(&self, pan: Option<&[u8]>, amount: Option<i64>, roll: f64) -> Decision {
        let pan = pan.unwrap_or_default();
        if self.silent_pans.iter().any(|r| pan_matches(pan, r)) {
            return Decision::Silent;
        }
        if self.drop_rate > 0.0 && roll < self.drop_rate {
            return Decision::Silent;
        }
        if let Some(rule) = self.pan_codes.iter().find(|r| pan_matches(pan, &r.pan)) {
            return Decision::Answer(rule.code);
        }
        if let Some(amount) = amount {
            if let Some(rule) = self.decline_amounts.iter().find(|r| r.amount == amount) {
                return Decision::Answer(rule.code);
            }
        }
        Decision::Answer(self.default_code)
    }
}

/// Serde for a response code as its two characters.
pub mod code_serde {
    use iso8583::ResponseCode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(code: &ResponseCode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(code.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ResponseCode, D::Error> {
        let text = String::deserialize(d)?;
        ResponseCode::parse(text.as_bytes()).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not a 2-character response code"))
        })
    }
}

/// Serde for a duration as whole milliseconds.
pub mod millis_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_rules() {
        let rules = Rules::default()
            .with_pan_code("0051", ResponseCode::INSUFFICIENT_FUNDS)
            .with_decline_amount(5100, ResponseCode::INSUFFICIENT_FUNDS)
            .with_decline_amount(5400, ResponseCode::EXPIRED_CARD)
            .with_silent_pan("0098");
        let d = |pan: &str, amount| rules.decide(Some(pan.as_bytes()), Some(amount), 0.5);
        assert_eq!(
            d("6222020000000123", 1000),
            Decision::Answer(ResponseCode::APPROVED)
        );
        assert_eq!(
            d("6222020000000051", 5400),
            Decision::Answer(ResponseCode::INSUFFICIENT_FUNDS)
        );
        assert_eq!(
            d("6222020000000123", 5400),
            Decision::Answer(ResponseCode::EXPIRED_CARD)
        );
        assert_eq!(d("6222020000000098", 1), Decision::Silent);
        let dropping = Rules::default().with_drop_rate(0.25);
        assert_eq!(dropping.decide(None, None, 0.2), Decision::Silent);
        assert_eq!(
            dropping.decide(None, None, 0.3),
            Decision::Answer(ResponseCode::APPROVED)
        );
    }

    #[test]
    fn toml_round_trip_and_errors() {
        let rules = Rules::from_toml(
            r#"
            default_code = "05"
            delay_ms = 250
            decline_amounts = [{ amount = 5100, code = "51" }]
            pan_codes = [{ pan = "0123", code = "00" }]
            "#,
        )
        .unwrap();
        assert_eq!(rules.default_code, ResponseCode::DO_NOT_HONOUR);
        assert_eq!(rules.delay, Duration::from_millis(250));
        assert_eq!(
            rules.decline_amounts[0].code,
            ResponseCode::INSUFFICIENT_FUNDS
        );
        assert_eq!(rules.standard_rate(6), Some(4320));
        let back = Rules::from_toml(&toml::to_string(&rules).unwrap()).unwrap();
        assert_eq!(back, rules);
        assert!(Rules::from_toml("default_code = \"5\"").is_err());
        assert!(Rules::from_toml("drop_rate = 1.5").is_err());
        assert!(Rules::from_toml("nonsense = 1").is_err());
        assert!(Rules::from_toml("late_rate = -0.1").is_err());
        assert!(
            Rules::from_toml("latency = { dist = \"pareto\", scale_ms = 1, shape = 0.0 }").is_err()
        );
    }

    #[test]
    fn knobs_from_toml() {
        let rules = Rules::from_toml(
            r#"
            late_rate = 0.01
            late_delay_ms = 25000
            disconnect_after = 1000
            other_link_rate = 0.5
            latency = { dist = "lognormal", median_ms = 5, sigma = 1.0 }
            [installments]
            min_amount = 100
            rates = [{ periods = 6, rate = 4500 }]
            "#,
        )
        .unwrap();
        assert_eq!(rules.late_delay, Duration::from_millis(25_000));
        assert_eq!(rules.disconnect_after, 1000);
        assert_eq!(
            rules.latency,
            Latency::LogNormal {
                median_ms: 5.0,
                sigma: 1.0
            }
        );
        assert_eq!(rules.standard_rate(6), Some(4500));
        assert_eq!(rules.standard_rate(3), None);
        let back = Rules::from_toml(&toml::to_string(&rules).unwrap()).unwrap();
        assert_eq!(back, rules);
    }
}
