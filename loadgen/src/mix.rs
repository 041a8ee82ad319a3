//! The transaction mix: which kinds of request loadgen sends, by weight. Given on the command
//! line (`--mix purchase=70,void=5,...`) or in a TOML file (`--mix-file`, one `kind = weight`
//! per line, optionally under a `[mix]` table).

use std::fmt;
use std::path::Path;

/// What one request is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 0200 purchase on an approvable card.
    Purchase,
    /// 0200 purchase, F25 64, F48 `IP`, on an installment-enabled card range and issuer.
    Installment,
    /// 0200 balance inquiry (F3 30).
    Balance,
    /// 0200 void (F3 20) of one of loadgen's own earlier approvals, full amount, F90.
    Void,
    /// 0220 online refund of part of one of loadgen's own earlier approvals, F90.
    Refund,
    /// 0420 terminal reversal (reason 4351) of one of loadgen's own earlier approvals.
    Reversal,
    /// 0200 purchase of [`DECLINED_AMOUNT`](crate::txn::DECLINED_AMOUNT): the demo issuer
    /// declines it `51` (an issuer-sim started with `--decline-amount 5100=51`).
    Decline,
    /// 0200 purchase on a PAN no BIN row routes: the switch answers `15`.
    Unroutable,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Purchase,
        Kind::Installment,
        Kind::Balance,
        Kind::Void,
        Kind::Refund,
        Kind::Reversal,
        Kind::Decline,
        Kind::Unroutable,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Purchase => "purchase",
            Kind::Installment => "installment",
            Kind::Balance => "balance",
            Kind::Void => "void",
            Kind::Refund => "refund",
            Kind::Reversal => "reversal",
            Kind::Decline => "decline",
            Kind::Unroutable => "unroutable",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s.trim())
    }

    /// Void, refund and reversal act on an earlier approval of this run.
    #[must_use]
    pub fn needs_original(self) -> bool {
        matches!(self, Kind::Void | Kind::Refund | Kind::Reversal)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Weighted kinds; [`Mix::pick`] maps a uniform random number to a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// (kind, cumulative weight), in [`Kind::ALL`] order, zero weights left out.
    cumulative: Vec<(Kind, u32)>,
    total: u32,
}

/// The default of `loadgen run`.
pub const DEFAULT_MIX: &str = "purchase=70,installment=10,balance=5,void=5,refund=5,reversal=5";

/// A bad `--mix` or mix file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MixError {
    #[error("mix entry {0:?}: expected KIND=WEIGHT")]
    Syntax(String),
    #[error("mix: unknown transaction kind {0:?} (known: purchase, installment, balance, void, refund, reversal, decline, unroutable)")]
    UnknownKind(String),
    #[error("mix: weight of {kind} is {weight:?}, not a whole number 0 to 1000000")]
    BadWeight { kind: Kind, weight: String },
    #[error("mix: {0} is given twice")]
    Repeated(Kind),
    #[error("mix: every weight is zero")]
    Empty,
    #[error("mix file {file}: {reason}")]
    File { file: String, reason: String },
}

impl Mix {
    /// From (kind, weight) pairs.
    pub fn from_weights(weights: &[(Kind, u32)]) -> Result<Mix, MixError> {
        let mut seen = Vec::new();
        for &(k, _) in weights {
            if seen.contains(&k) {
                return Err(MixError::Repeated(k));
            }
            seen.push(k);
        }
        let mut cumulative = Vec::new();
        let mut total: u32 = 0;
        for k in Kind::ALL {
            let w = weights
                .iter()
                .find(|(kind, _)| *kind == k)
                .map_or(0, |(_, w)| *w);
            if w > 0 {
                total = total.saturating_add(w);
                cumulative.push((k, total));
            }
        }
        if total == 0 {
            return Err(MixError::Empty);
        }
        Ok(Mix { cumulative, total })
    }

    /// `purchase=70,void=5,...`
    pub fn parse(text: &str) -> Result<Mix, MixError> {
        let mut weights = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (k, w) = entry
                .split_once('=')
                .ok_or_else(|| MixError::Syntax(entry.to_owned()))?;
            let kind = Kind::parse(k).ok_or_else(|| MixError::UnknownKind(k.trim().to_owned()))?;
            let weight = w
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| MixError::BadWeight {
                    kind,
                    weight: w.trim().to_owned(),
                })?;
            weights.push((kind, weight));
        }
        Mix::from_weights(&weights)
    }

    /// TOML text: `purchase = 70` lines, at top level or under `[mix]`.
    pub fn from_toml(text: &str, file: &str) -> Result<Mix, MixError> {
        let bad = |reason: String| MixError::File {
            file: file.to_owned(),
            reason,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let table = match table.get("mix") {
            Some(toml::Value::Table(t)) if table.len() == 1 => t.clone(),
            Some(_) => return Err(bad("[mix] must be the only table".to_owned())),
            None => table,
        };
        let mut weights = Vec::new();
        for (k, v) in &table {
            let kind = Kind::parse(k).ok_or_else(|| MixError::UnknownKind(k.clone()))?;
            let weight = v
                .as_integer()
                .and_then(|w| u32::try_from(w).ok())
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| MixError::BadWeight {
                    kind,
                    weight: v.to_string(),
                })?;
            weights.push((kind, weight));
        }
        Mix::from_weights(&weights)
    }

    pub fn load(path: &Path) -> Result<Mix, MixError> {
        let text = std::fs::read_to_string(path).map_err(|e| MixError::File {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Mix::from_toml(&text, &path.display().to_string())
    }

    /// The kind for a uniform random `r` (any u32).
    #[must_use]
    pub fn pick(&self, r: u32) -> Kind {
        let x = r % self.total;
        self.cumulative
            .iter()
            .find(|(_, c)| x < *c)
            .or(self.cumulative.last())
            .map_or(Kind::Purchase, |(k, _)| *k)
    }

    /// The weight of `kind` (0 if absent).
    #[must_use]
    pub fn weight(&self, kind: Kind) -> u32 {
        let mut prev = 0;
        for &(k, c) in &self.cumulative {
            if k == kind {
                return c - prev;
            }
            prev = c;
        }
        0
    }

    /// Whether any kind needs loadgen's own earlier approvals.
    #[must_use]
    pub fn has_related(&self) -> bool {
        self.cumulative.iter().any(|(k, _)| k.needs_original())
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for k in Kind::ALL {
            let w = self.weight(k);
            if w > 0 {
                if !first {
                    f.write_str(",")?;
                }
                write!(f, "{k}={w}")?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_picks_by_weight() {
        let mix = Mix::parse("purchase=70, void=5,refund=5,reversal=20").unwrap();
        assert_eq!(mix.weight(Kind::Purchase), 70);
        assert_eq!(mix.weight(Kind::Reversal), 20);
        assert_eq!(mix.weight(Kind::Balance), 0);
        let mut counts = std::collections::BTreeMap::new();
        for r in 0..100u32 {
            *counts.entry(mix.pick(r)).or_insert(0) += 1;
        }
        assert_eq!(counts[&Kind::Purchase], 70);
        assert_eq!(counts[&Kind::Void], 5);
        assert_eq!(counts[&Kind::Refund], 5);
        assert_eq!(counts[&Kind::Reversal], 20);
        assert_eq!(mix.to_string(), "purchase=70,void=5,refund=5,reversal=20");
        assert!(mix.has_related());
    }

    #[test]
    fn rejects_bad_mixes() {
        assert_eq!(
            Mix::parse("purchase"),
            Err(MixError::Syntax("purchase".into()))
        );
        assert_eq!(
            Mix::parse("cheque=1"),
            Err(MixError::UnknownKind("cheque".into()))
        );
        assert!(matches!(
            Mix::parse("void=x"),
            Err(MixError::BadWeight { .. })
        ));
        assert_eq!(
            Mix::parse("void=1,void=2"),
            Err(MixError::Repeated(Kind::Void))
        );
        assert_eq!(Mix::parse("void=0"), Err(MixError::Empty));
    }

    #[test]
    fn reads_toml_with_or_without_table() {
        let a = Mix::from_toml("purchase = 9\nbalance = 1\n", "a.toml").unwrap();
        let b = Mix::from_toml("[mix]\npurchase = 9\nbalance = 1\n", "b.toml").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, Mix::parse("balance=1,purchase=9").unwrap());
        assert!(Mix::from_toml("purchase = -1", "c.toml").is_err());
        assert!(Mix::from_toml("purchase = ", "d.toml").is_err());
    }
}
