//! Certification suites as data (`config/suites/*.toml`): a list of cases, each the
//! transaction(s) to send and what the answer must be. Cases run in file order; a related
//! case (void, refund, completion, preauthorisation void, reversal, duplicate) names an
//! earlier case as its `original`.
//!
//! PANs are written literally or symbolically (`@name`), resolved per issuer from the
//! suite's `[issuers.<id>.pans]` table, so one suite certifies any issuer host that has test
//! cards for the named roles.
//!
//! ```toml
//! name = "installment"
//! [issuers.03010000.pans]
//! eligible = "6258000000000018"
//!
//! [[case]]
//! name = "six-periods-standard-rate"
//! kind = "installment"
//! pan = "@eligible"
//! amount = 600000
//! periods = 6
//! fee_rate = 4320
//! subsidy_rate = 1000
//! expect = { code = "00", present = [38, 57], f57 = { first_amount = 103320, cardholder_fee = 19920 } }
//! ```

use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// A suite file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Test cards per issuer institution ID, by role name.
    #[serde(default)]
    pub issuers: BTreeMap<String, IssuerCards>,
    #[serde(rename = "case")]
    pub cases: Vec<Case>,
}

/// The test cards of one issuer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerCards {
    /// Role name -> PAN.
    pub pans: BTreeMap<String, String>,
}

/// What a case sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseKind {
    Purchase,
    Installment,
    Balance,
    Cash,
    Preauth,
    PreauthVoid,
    Completion,
    Void,
    Refund,
    Reversal,
    SignOn,
    SignOff,
    Echo,
    /// The exact bytes of the `original` case's (first) request again.
    Duplicate,
}

impl CaseKind {
    /// Needs an `original`.
    #[must_use]
    pub fn is_related(self) -> bool {
        matches!(
            self,
            CaseKind::PreauthVoid
                | CaseKind::Completion
                | CaseKind::Void
                | CaseKind::Refund
                | CaseKind::Reversal
                | CaseKind::Duplicate
        )
    }

    #[must_use]
    pub fn is_network(self) -> bool {
        matches!(self, CaseKind::SignOn | CaseKind::SignOff | CaseKind::Echo)
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            CaseKind::Purchase => "purchase",
            CaseKind::Installment => "installment",
            CaseKind::Balance => "balance",
            CaseKind::Cash => "cash",
            CaseKind::Preauth => "preauth",
            CaseKind::PreauthVoid => "preauth-void",
            CaseKind::Completion => "completion",
            CaseKind::Void => "void",
            CaseKind::Refund => "refund",
            CaseKind::Reversal => "reversal",
            CaseKind::SignOn => "sign-on",
            CaseKind::SignOff => "sign-off",
            CaseKind::Echo => "echo",
            CaseKind::Duplicate => "duplicate",
        }
    }
}

/// Replace a field's encoded value with other bytes of the same length after encoding
/// (a body the codec would refuse to build: the switch must reject it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corrupt {
    pub field: u8,
    pub with: String,
}

/// One case.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique within the suite; related cases refer to it.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: CaseKind,
    /// PAN or `@role`. Default: the original's PAN for related cases, else `@default`.
    pub pan: Option<String>,
    /// Minor units. Default: the original's amount for related cases, else 1000.
    pub amount: Option<i64>,
    pub merchant: Option<String>,
    pub terminal: Option<String>,
    pub mcc: Option<String>,
    pub currency: Option<String>,
    /// Installment: periods, rates (fraction x 10^5), fee mode (0 spread, 1 first period),
    /// project code.
    pub periods: Option<u8>,
    pub fee_rate: Option<u32>,
    pub subsidy_rate: Option<u32>,
    pub fee_mode: Option<u8>,
    pub project_code: Option<String>,
    pub pin: Option<String>,
    pub cvn2: Option<String>,
    pub expiry: Option<String>,
    /// The earlier case a related case refers to (every message it sent).
    pub original: Option<String>,
    /// Reversal F60.1 reason (default `4351`).
    pub reason: Option<String>,
    /// Send this many (each with a fresh STAN); each answer must meet `expect`.
    pub repeat: Option<u32>,
    /// Fields to leave out (missing mandatory field cases).
    #[serde(default)]
    pub remove: Vec<u8>,
    pub corrupt: Option<Corrupt>,
    #[serde(default)]
    pub expect: Expect,
}

/// Expected F57 `IP` values (each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct F57Expect {
    pub first_amount: Option<i64>,
    pub currency: Option<u16>,
    pub cardholder_fee: Option<i64>,
    /// Fraction x 10^4.
    pub subsidy_rate: Option<u32>,
}

/// What the answer must be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// F39.
    pub code: Option<String>,
    /// A header reject instead of an answer: the reject code, or a prefix of it (`1004`),
    /// or `any`.
    pub reject: Option<String>,
    /// Fields that must be present.
    #[serde(default)]
    pub present: Vec<u8>,
    /// Fields that must be absent.
    #[serde(default)]
    pub absent: Vec<u8>,
    /// Field number -> exact value (trailing spaces ignored), e.g. `{ 44 = "TERM DAILY LIMIT" }`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    pub f57: Option<F57Expect>,
    /// Balance change: F54 of this answer minus F54 of the `balance_from` case's answer.
    pub balance_from: Option<String>,
    pub balance_delta: Option<i64>,
    /// The same F39 (and F38, if any) as this earlier case's answer.
    pub same_as: Option<String>,
}

/// A suite file that does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{file}: {reason}")]
    Load { file: String, reason: String },
    #[error("suite {suite:?} case {case:?}: {reason}")]
    Case {
        suite: String,
        case: String,
        reason: String,
    },
}

impl Suite {
    pub fn load(path: &Path) -> Result<Self, SuiteError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SuiteError::Load {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &file)
    }

    pub fn parse(text: &str, file: &str) -> Result<Self, SuiteError> {
        let suite: Suite = toml::from_str(text).map_err(|e| SuiteError::Load {
            file: file.to_owned(),
            reason: e.to_string(),
        })?;
        suite.validate()?;
        Ok(suite)
    }

    fn case_error(&self, case: &Case, reason: impl Into<String>) -> SuiteError {
        SuiteError::Case {
            suite: self.name.clone(),
            case: case.name.clone(),
            reason: reason.into(),
        }
    }

    /// Names unique, originals and references name earlier cases, expectations coherent.
    pub fn validate(&self) -> Result<(), SuiteError> {
        let mut earlier = HashSet::new();
        for case in &self.cases {
            let known = |name: &Option<String>, what: &str| -> Result<(), SuiteError> {
                match name {
                    Some(n) if !earlier.contains(n.as_str()) => {
                        Err(self.case_error(case, format!("{what} {n:?} is not an earlier case")))
                    }
                    _ => Ok(()),
                }
            };
            if case.kind.is_related() && case.original.is_none() {
                return Err(
                    self.case_error(case, format!("a {} needs `original`", case.kind.name()))
                );
            }
            known(&case.original, "original")?;
            known(&case.expect.balance_from, "balance_from")?;
            known(&case.expect.same_as, "same_as")?;
            if case.expect.balance_from.is_some() != case.expect.balance_delta.is_some() {
                return Err(self.case_error(case, "balance_from and balance_delta go together"));
            }
            if case.expect.code.is_none()
                && case.expect.reject.is_none()
                && case.expect.same_as.is_none()
            {
                return Err(self.case_error(case, "expect needs code, reject or same_as"));
            }
            if let Some(k) = case
                .expect
                .fields
                .keys()
                .find(|k| k.parse::<u8>().map_or(true, |n| !(2..=128).contains(&n)))
            {
                return Err(
                    self.case_error(case, format!("expect.fields: {k:?} is not a field number"))
                );
            }
            if case.repeat == Some(0) {
                return Err(self.case_error(case, "repeat must be at least 1"));
            }
            if !earlier.insert(case.name.as_str()) {
                return Err(self.case_error(case, "duplicate case name"));
            }
        }
        Ok(())
    }

    /// Resolve a PAN (`@role` or digits) for `issuer`.
    pub fn resolve_pan(&self, case: &Case, pan: &str, issuer: &str) -> Result<String, SuiteError> {
        let Some(role) = pan.strip_prefix('@') else {
            return Ok(pan.to_owned());
        };
        let cards = self.issuers.get(issuer).ok_or_else(|| {
            let known: Vec<&str> = self.issuers.keys().map(String::as_str).collect();
            self.case_error(
                case,
                format!(
                    "the suite has no test cards for issuer {issuer} (it has: {})",
                    known.join(", ")
                ),
            )
        })?;
        cards.pans.get(role).cloned().ok_or_else(|| {
            self.case_error(
                case,
                format!("issuer {issuer} has no test card for role @{role}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
        name = "t"
        [issuers.03010000.pans]
        default = "6222020000000016"
        [[case]]
        name = "p"
        kind = "purchase"
        expect = { code = "00", present = [38] }
        [[case]]
        name = "v"
        kind = "void"
        original = "p"
        expect = { code = "00", fields = { 44 = "X" } }
    "#;

    #[test]
    fn parses_and_resolves() {
        let s = Suite::parse(SMALL, "t.toml").unwrap();
        assert_eq!(s.cases.len(), 2);
        assert_eq!(s.cases[1].kind, CaseKind::Void);
        assert_eq!(
            s.cases[1].expect.fields.get("44").map(String::as_str),
            Some("X")
        );
        let c = &s.cases[0];
        assert_eq!(
            s.resolve_pan(c, "@default", "03010000").unwrap(),
            "6222020000000016"
        );
        assert_eq!(s.resolve_pan(c, "6222", "x").unwrap(), "6222");
        let e = s
            .resolve_pan(c, "@default", "03020000")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no test cards for issuer 03020000"), "{e}");
        let e = s
            .resolve_pan(c, "@nope", "03010000")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no test card for role @nope"), "{e}");
    }

    #[test]
    fn incoherent_suites_are_refused() {
        for (bad, why) in [
            (
                SMALL.replace("original = \"p\"", "original = \"q\""),
                "not an earlier case",
            ),
            (SMALL.replace("original = \"p\"\n", ""), "needs `original`"),
            (
                SMALL.replace("name = \"v\"", "name = \"p\""),
                "duplicate case name",
            ),
            (
                SMALL.replace("kind = \"void\"", "kind = \"teleport\""),
                "unknown variant",
            ),
            (
                SMALL.replace("expect = { code = \"00\", present = [38] }", "expect = {}"),
                "expect needs",
            ),
        ] {
            let e = Suite::parse(&bad, "t.toml").unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
    }
}
