//! Installment fee arithmetic, issuer side (SPEC.md section 11). Exact integer math in
//! minor units; rates are fractions x 10^5.

use iso8583::subfields::{FeeMode, InstallmentRequest, InstallmentResponse};
use iso8583::ResponseCode;

/// Denominator of a rate carried as a fraction x 10^5.
pub const RATE_SCALE: i128 = 100_000;

/// Why an installment cannot be quoted; each maps to a response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    /// Merchant subsidy rate above the full fee rate: `23`.
    #[error("merchant subsidy rate exceeds the installment fee rate")]
    NegativeRate,
    /// Amount missing, not positive, or smaller than the number of periods: `13`.
    #[error("amount cannot be split into the periods")]
    BadAmount,
    /// Zero periods: `30`.
    #[error("zero periods")]
    ZeroPeriods,
}

impl FeeError {
    #[must_use]
    pub fn code(self) -> ResponseCode {
        match self {
            FeeError::NegativeRate => ResponseCode::FEE_RATE_MISMATCH,
            FeeError::BadAmount => ResponseCode::INVALID_AMOUNT,
            FeeError::ZeroPeriods => ResponseCode::FORMAT_ERROR,
        }
    }
}

/// Everything the issuer computes for one installment purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Cardholder rate = fee rate - subsidy rate, fraction x 10^5.
    pub cardholder_rate: u32,
    /// Total cardholder fee F (minor units).
    pub cardholder_fee: i64,
    /// Principal of every period but the first: floor(P / n).
    pub period_principal: i64,
    /// First period principal (takes the remainder).
    pub first_principal: i64,
    /// Fee of every period but the first (mode 0: floor(F / n); mode 1: 0).
    pub period_fee: i64,
    /// First period fee.
    pub first_fee: i64,
    /// First installment amount = first principal + first fee.
    pub first_amount: i64,
    /// Merchant subsidy fee = round_half_up(P x subsidy rate) (cleared acquirer -> issuer).
    pub subsidy_fee: i64,
    /// Subsidy rate as carried in F57 (fraction x 10^4, rounded half up from x 10^5).
    pub subsidy_rate_f57: u32,
}

/// `round_half_up(amount x rate)` in minor units, rate a fraction x 10^5. Amounts are not
/// negative here; the intermediate product is i128 so no amount overflows.
#[must_use]
pub fn apply_rate(amount: i64, rate: u32) -> i64 {
    let product = i128::from(amount) * i128::from(rate);
    let rounded = (product + RATE_SCALE / 2).div_euclid(RATE_SCALE);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// Compute the installment for principal `amount` over `periods` with the full `fee_rate`
/// and merchant `subsidy_rate` (both x 10^5).
pub fn quote(
    amount: i64,
    periods: u8,
    fee_rate: u32,
    subsidy_rate: u32,
    mode: FeeMode,
) -> Result<Quote, FeeError> {
    if periods == 0 {
        return Err(FeeError::ZeroPeriods);
    }
    let n = i64::from(periods);
    if amount < n {
        return Err(FeeError::BadAmount);
    }
    let cardholder_rate = fee_rate
        .checked_sub(subsidy_rate)
        .ok_or(FeeError::NegativeRate)?;
    let fee = apply_rate(amount, cardholder_rate);
    let period_principal = amount / n;
    let first_principal = amount - period_principal * (n - 1);
    let (period_fee, first_fee) = match mode {
        FeeMode::Spread => {
            let per = fee / n;
            (per, fee - per * (n - 1))
        }
        FeeMode::FirstPeriod => (0, fee),
    };
    Ok(Quote {
        cardholder_rate,
        cardholder_fee: fee,
        period_principal,
        first_principal,
        period_fee,
        first_fee,
        first_amount: first_principal + first_fee,
        subsidy_fee: apply_rate(amount, subsidy_rate),
        subsidy_rate_f57: (subsidy_rate + 5) / 10,
    })
}

impl Quote {
    /// The F57 `IP` answer for this quote in `currency` (ISO numeric).
    #[must_use]
    pub fn response(&self, currency: u16) -> InstallmentResponse {
        InstallmentResponse {
            first_amount: self.first_amount,
            currency,
            cardholder_fee: self.cardholder_fee,
            subsidy_rate: self.subsidy_rate_f57,
        }
    }
}

/// Quote an F48 `IP` request for `amount`, using `standard_rate` when the request carries a
/// zero fee rate. `Err` carries the decline code.
pub fn quote_request(
    amount: i64,
    req: &InstallmentRequest,
    standard_rate: impl FnOnce(u8) -> Option<u32>,
) -> Result<Quote, ResponseCode> {
    let fee_rate = if req.fee_rate == 0 {
        standard_rate(req.periods).ok_or(ResponseCode::NOT_PERMITTED_CARDHOLDER)?
    } else {
        req.fee_rate
    };
    quote(
        amount,
        req.periods,
        fee_rate,
        req.subsidy_rate,
        req.fee_mode,
    )
    .map_err(FeeError::code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_example_6000_over_6() {
        let q = quote(600_000, 6, 4_320, 1_000, FeeMode::Spread).unwrap();
        assert_eq!(q.cardholder_rate, 3_320);
        assert_eq!(q.cardholder_fee, 19_920);
        assert_eq!((q.period_principal, q.first_principal), (100_000, 100_000));
        assert_eq!((q.period_fee, q.first_fee), (3_320, 3_320));
        assert_eq!(q.first_amount, 103_320);
        assert_eq!(q.subsidy_fee, 6_000);
        assert_eq!(q.subsidy_rate_f57, 100);
    }

    #[test]
    fn remainders_go_to_the_first_period() {
        // P = 1000.01, 3 periods, 2.16 %: F = round(100001 * 0.0216) = 2160.0216 -> 2160.
        let q = quote(100_001, 3, 2_160, 0, FeeMode::Spread).unwrap();
        assert_eq!(q.cardholder_fee, 2_160);
        assert_eq!((q.period_principal, q.first_principal), (33_333, 33_335));
        assert_eq!((q.period_fee, q.first_fee), (720, 720));
        // Fee 7 over 3 periods: 2, 2, first 3.
        let q = quote(1_000, 3, 700, 0, FeeMode::Spread).unwrap();
        assert_eq!((q.cardholder_fee, q.period_fee, q.first_fee), (7, 2, 3));
        assert_eq!(q.first_amount, 334 + 3);
        let q = quote(1_000, 3, 700, 0, FeeMode::FirstPeriod).unwrap();
        assert_eq!((q.period_fee, q.first_fee, q.first_amount), (0, 7, 341));
    }

    #[test]
    fn half_up_rounding_is_exact() {
        // 150 * 1/3 % ... choose values landing exactly on .5: 50 * 0.01 = 0.5 -> 1.
        assert_eq!(apply_rate(50, 1_000), 1);
        assert_eq!(apply_rate(49, 1_000), 0);
        assert_eq!(apply_rate(150, 1_000), 2);
        assert_eq!(apply_rate(0, 99_999), 0);
        assert_eq!(apply_rate(i64::MAX, 100_000), i64::MAX);
    }

    #[test]
    fn declines() {
        assert_eq!(
            quote(1_000, 6, 1_000, 2_000, FeeMode::Spread),
            Err(FeeError::NegativeRate)
        );
        assert_eq!(
            quote(5, 6, 1_000, 0, FeeMode::Spread),
            Err(FeeError::BadAmount)
        );
        assert_eq!(
            FeeError::NegativeRate.code(),
            ResponseCode::FEE_RATE_MISMATCH
        );
        let req = InstallmentRequest {
            periods: 5,
            project_code: [b' '; 30],
            fee_mode: FeeMode::Spread,
            fee_rate: 0,
            subsidy_rate: 0,
        };
        assert_eq!(
            quote_request(600_000, &req, |_| None),
            Err(ResponseCode::NOT_PERMITTED_CARDHOLDER)
        );
        assert_eq!(
            quote_request(600_000, &req, |_| Some(1_000))
                .unwrap()
                .cardholder_fee,
            6_000
        );
    }
}
