//! The issuer's installment plans (SPEC.md section 11): which numbers of periods it offers
//! at which standard fee rate, the amount bounds, the merchant whitelist and the rates agreed
//! with particular merchants. [`InstallmentPlans::quote`] turns an F48 `IP` request into a
//! [`Quote`] or the decline the installment acquiring guide names for it.
//!
//! Cardholder eligibility is a property of the card account (see [`crate::accounts`]); the
//! caller passes it in.

use crate::fees::{quote, FeeError, Quote};
use iso8583::subfields::InstallmentRequest;
use iso8583::ResponseCode;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Standard installment fee rate for a number of periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardRate {
    pub periods: u8,
    /// Full fee rate for this number of periods, fraction x 10^5 (`4320` = 4.320 %).
    pub rate: u32,
}

/// A rate agreed with one merchant for one number of periods (replaces the standard rate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantRate {
    /// F42, trailing spaces ignored.
    pub merchant: String,
    pub periods: u8,
    /// Fraction x 10^5.
    pub rate: u32,
}

/// A project (plan/goods code, F48 `IP` position 2) the issuer agreed with some merchants
/// only: the code from any other merchant is `03`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The project code (trailing spaces ignored).
    pub code: String,
    /// F42 of the merchants that may sell it.
    pub merchants: Vec<String>,
}

/// The installment offer of one issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstallmentPlans {
    /// Periods offered and their standard rates. Periods not listed: `57`.
    pub rates: Vec<StandardRate>,
    /// Smallest principal (minor units) accepted; below: `61`.
    pub min_amount: i64,
    /// Largest principal (minor units) accepted; above: `61`. 0 = no maximum.
    pub max_amount: i64,
    /// Merchants (F42) allowed to sell installments; empty = every merchant. Others: `03`.
    pub merchants: Vec<String>,
    /// Personalised rates per merchant and number of periods.
    pub merchant_rates: Vec<MerchantRate>,
    /// Project codes restricted to some merchants. Codes not listed (and blank ones) are
    /// the general plan.
    pub projects: Vec<Project>,
}

impl Default for InstallmentPlans {
    /// 3, 6, 9, 12, 18 and 24 periods at the demo standard rates, no bounds, any merchant.
    fn default() -> Self {
        Self {
            rates: [
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
            min_amount: 0,
            max_amount: 0,
            merchants: Vec::new(),
            merchant_rates: Vec::new(),
            projects: Vec::new(),
        }
    }
}

/// Why an installment is declined: the code and a short reason for logs and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanDecline {
    pub code: ResponseCode,
    pub reason: &'static str,
}

fn decline(code: ResponseCode, reason: &'static str) -> PlanDecline {
    PlanDecline { code, reason }
}

fn trim_merchant(m: &[u8]) -> &[u8] {
    let end = m.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    m.get(..end).unwrap_or_default()
}

impl InstallmentPlans {
    /// Parse plans from TOML text (every key optional, unknown keys are errors).
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let plans: InstallmentPlans = toml::from_str(text)?;
        plans.validate()?;
        Ok(plans)
    }

    /// Load plans from a TOML file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.min_amount < 0 || self.max_amount < 0 {
            anyhow::bail!("min_amount and max_amount must not be negative");
        }
        if self.max_amount > 0 && self.max_amount < self.min_amount {
            anyhow::bail!("max_amount must be 0 (none) or at least min_amount");
        }
        if let Some(r) = self
            .rates
            .iter()
            .find(|r| r.periods == 0 || r.rate > 100_000)
        {
            anyhow::bail!(
                "rates: periods {} rate {}: periods must be 1 to 99 and the rate at most 100000 (100 %)",
                r.periods,
                r.rate
            );
        }
        if let Some(r) = self
            .merchant_rates
            .iter()
            .find(|r| r.periods == 0 || r.rate > 100_000 || r.merchant.trim().is_empty())
        {
            anyhow::bail!(
                "merchant_rates: {:?} periods {}: needs a merchant, periods 1 to 99 and a rate at most 100000",
                r.merchant,
                r.periods
            );
        }
        Ok(())
    }

    /// The standard rate for `periods`, if that number of periods is offered.
    #[must_use]
    pub fn standard_rate(&self, periods: u8) -> Option<u32> {
        self.rates
            .iter()
            .find(|r| r.periods == periods)
            .map(|r| r.rate)
    }

    /// The rate agreed for `merchant` (F42) and `periods`: a personalised rate, else the
    /// standard one.
    #[must_use]
    pub fn agreed_rate(&self, merchant: &[u8], periods: u8) -> Option<u32> {
        let merchant = trim_merchant(merchant);
        self.merchant_rates
            .iter()
            .find(|r| r.periods == periods && r.merchant.trim().as_bytes() == merchant)
            .map(|r| r.rate)
            .or_else(|| self.standard_rate(periods))
    }

    fn merchant_allowed(&self, merchant: &[u8], project: &[u8]) -> bool {
        let merchant = trim_merchant(merchant);
        let listed = |list: &[String]| list.iter().any(|m| m.trim().as_bytes() == merchant);
        if !self.merchants.is_empty() && !listed(&self.merchants) {
            return false;
        }
        let project = trim_merchant(project);
        if project.is_empty() {
            return true;
        }
        self.projects
            .iter()
            .find(|p| p.code.trim().as_bytes() == project)
            .is_none_or(|p| listed(&p.merchants))
    }

    /// Decide an installment purchase of principal `amount` at `merchant` (F42) for a
    /// cardholder who is (or is not) `eligible`. Checks in the order of the installment
    /// acquiring guide: cardholder `57`, merchant whitelist `03`, periods offered `57`,
    /// amount bounds `61`, fee rate `23`; then the fee arithmetic. The merchant whitelist is
    /// the global `merchants` list and, for a project code listed in `projects`, that
    /// project's merchants.
    pub fn quote(
        &self,
        amount: i64,
        merchant: &[u8],
        ip: &InstallmentRequest,
        eligible: bool,
    ) -> Result<Quote, PlanDecline> {
        if !eligible {
            return Err(decline(
                ResponseCode::NOT_PERMITTED_CARDHOLDER,
                "cardholder not eligible for installments",
            ));
        }
        if !self.merchant_allowed(merchant, &ip.project_code) {
            return Err(decline(
                ResponseCode::INVALID_MERCHANT,
                "merchant not in the installment whitelist",
            ));
        }
        let Some(agreed) = self.agreed_rate(merchant, ip.periods) else {
            return Err(decline(
                ResponseCode::NOT_PERMITTED_CARDHOLDER,
                "number of periods not offered",
            ));
        };
        if amount < self.min_amount {
            return Err(decline(
                ResponseCode::AMOUNT_LIMIT,
                "amount below the plan minimum",
            ));
        }
        if self.max_amount > 0 && amount > self.max_amount {
            return Err(decline(
                ResponseCode::AMOUNT_LIMIT,
                "amount above the plan maximum",
            ));
        }
        if ip.fee_rate != 0 && ip.fee_rate != agreed {
            return Err(decline(
                ResponseCode::FEE_RATE_MISMATCH,
                "fee rate differs from the agreed rate",
            ));
        }
        quote(amount, ip.periods, agreed, ip.subsidy_rate, ip.fee_mode).map_err(|e| match e {
            FeeError::NegativeRate => decline(
                ResponseCode::FEE_RATE_MISMATCH,
                "merchant subsidy rate above the fee rate",
            ),
            FeeError::BadAmount => decline(
                ResponseCode::INVALID_AMOUNT,
                "amount cannot be split into the periods",
            ),
            FeeError::ZeroPeriods => decline(ResponseCode::FORMAT_ERROR, "zero periods"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iso8583::subfields::FeeMode;

    fn plans() -> InstallmentPlans {
        InstallmentPlans::from_toml(
            r#"
            min_amount = 60000
            max_amount = 3000000
            merchants = ["MERCHANT0000001", "123456789012345"]
            rates = [{ periods = 3, rate = 2160 }, { periods = 6, rate = 4320 }, { periods = 12, rate = 7200 }]
            merchant_rates = [{ merchant = "123456789012345", periods = 12, rate = 6000 }]
            projects = [{ code = "PHONE2026", merchants = ["MERCHANT0000001"] }]
            "#,
        )
        .unwrap()
    }

    fn ip(periods: u8, fee_rate: u32, subsidy_rate: u32) -> InstallmentRequest {
        InstallmentRequest {
            periods,
            project_code: [b' '; 30],
            fee_mode: FeeMode::Spread,
            fee_rate,
            subsidy_rate,
        }
    }

    #[test]
    fn every_decline_and_its_code() {
        let p = plans();
        let m1 = b"MERCHANT0000001";
        let code = |amount, merchant: &[u8], req: InstallmentRequest, eligible| {
            p.quote(amount, merchant, &req, eligible)
                .map_err(|d| d.code)
        };
        let mut phone = ip(6, 0, 0);
        phone.project_code = InstallmentRequest::project_code_from("PHONE2026");
        let cases: [(i64, &[u8], InstallmentRequest, bool, ResponseCode); 9] = [
            (
                600_000,
                b"123456789012345",
                phone,
                true,
                ResponseCode::INVALID_MERCHANT,
            ),
            (
                600_000,
                m1,
                ip(6, 0, 0),
                false,
                ResponseCode::NOT_PERMITTED_CARDHOLDER,
            ),
            (
                600_000,
                b"MERCHANT0000003",
                ip(6, 0, 0),
                true,
                ResponseCode::INVALID_MERCHANT,
            ),
            (
                600_000,
                m1,
                ip(5, 0, 0),
                true,
                ResponseCode::NOT_PERMITTED_CARDHOLDER,
            ),
            (59_999, m1, ip(6, 0, 0), true, ResponseCode::AMOUNT_LIMIT),
            (3_000_001, m1, ip(6, 0, 0), true, ResponseCode::AMOUNT_LIMIT),
            (
                600_000,
                m1,
                ip(6, 4_500, 0),
                true,
                ResponseCode::FEE_RATE_MISMATCH,
            ),
            (
                600_000,
                m1,
                ip(6, 4_320, 5_000),
                true,
                ResponseCode::FEE_RATE_MISMATCH,
            ),
            // The bench merchant agreed 6.000 % for 12 periods: the standard 7.200 % is wrong.
            (
                600_000,
                b"123456789012345",
                ip(12, 7_200, 0),
                true,
                ResponseCode::FEE_RATE_MISMATCH,
            ),
        ];
        for (amount, merchant, req, eligible, want) in cases {
            assert_eq!(
                code(amount, merchant, req.clone(), eligible),
                Err(want),
                "{amount} {:?} {req:?}",
                String::from_utf8_lossy(merchant)
            );
        }
    }

    #[test]
    fn approvals_use_the_agreed_rate() {
        let p = plans();
        let q = p
            .quote(600_000, b"MERCHANT0000001", &ip(6, 4_320, 1_000), true)
            .unwrap();
        assert_eq!((q.cardholder_fee, q.first_amount), (19_920, 103_320));
        // Zero rate in F48 = the agreed rate, personalised for the bench merchant.
        let q = p
            .quote(600_000, b"123456789012345", &ip(12, 0, 0), true)
            .unwrap();
        assert_eq!(q.cardholder_fee, 36_000);
        let q = p
            .quote(600_000, b"123456789012345", &ip(12, 6_000, 0), true)
            .unwrap();
        assert_eq!(q.cardholder_fee, 36_000);
        // Bounds are inclusive; a space-padded F42 matches.
        assert!(p
            .quote(60_000, b"MERCHANT0000001", &ip(3, 0, 0), true)
            .is_ok());
        assert!(p
            .quote(3_000_000, b"123456789012345", &ip(3, 0, 0), true)
            .is_ok());
        assert!(InstallmentPlans::default()
            .quote(1, b"ANY", &ip(3, 0, 0), true)
            .is_err());
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(InstallmentPlans::from_toml("min_amount = -1").is_err());
        assert!(InstallmentPlans::from_toml("min_amount = 10\nmax_amount = 5").is_err());
        assert!(InstallmentPlans::from_toml("rates = [{ periods = 0, rate = 1 }]").is_err());
        assert!(InstallmentPlans::from_toml("colour = 1").is_err());
    }
}
