//! Approve/decline rules as data (loadable from TOML), evaluated per request without
//! allocation.

use iso8583::ResponseCode;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// How the simulated issuer decides. Evaluated in this order for `0100`/`0200`/`0220`:
/// `silent_pans`, `drop_rate`, `pan_codes` (first match), `decline_amounts` (first match),
/// `default_code`. Reversals and network management are not subject to these rules (see
/// [`crate::Behaviour`]).
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
    /// Available balance returned in F54 for an approved balance inquiry (minor units).
    pub balance: i64,
    /// The issuer's standard installment fee rate per number of periods (fraction x 10^5),
    /// used when F48 `IP` carries a zero rate. A zero-rate request for periods not listed
    /// here is declined `57` (periods not offered).
    pub installment_rates: Vec<StandardRate>,
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

/// Standard installment fee rate for a number of periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardRate {
    pub periods: u8,
    /// Fraction x 10^5 (`4320` = 4.320 %).
    pub rate: u32,
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
            balance: 100_000_000,
            installment_rates: [
                (3, 2_160),
                (6, 4_320),
                (9, 6_120),
                (12, 7_200),
                (18, 10_800),
                (24, 13_200),
            ]
            .into_iter()
            .map(|(periods, rate)| StandardRate { periods, rate })
            .collect(),
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
        if !(0.0..=1.0).contains(&self.drop_rate) {
            anyhow::bail!(
                "drop_rate must be between 0.0 and 1.0, got {}",
                self.drop_rate
            );
        }
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
        self.installment_rates
            .iter()
            .find(|r| r.periods == periods)
            .map(|r| r.rate)
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
    }
}
