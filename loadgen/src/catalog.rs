//! What loadgen's requests are made of, read from the switch's own configuration files: card
//! numbers under the BIN table's prefixes (Luhn-valid, checked against the table so nested
//! carve-outs route where loadgen thinks), merchant/terminal pairs registered together for
//! the acquirer, and how much of each pair's daily limits loadgen lets itself use.
//!
//! Limits: pairs whose limits (`limits.csv`) cap the daily amount or count get a budget of half
//! that cap for the run (the switch's counters live for the whole settlement day, so a second
//! run the same day still has room); once a budget is spent those requests go to unlimited
//! pairs. When a category has no pair at all the requests still go out and the switch's
//! `61`/`65` show in the report.

use crate::mix::Kind;
use iso8583::InstId;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::Mutex;
use switch::config::Config;
use switch::limits::{Limit, LimitSettings};
use switch::registry::{Status, TxnCategory};

/// A card number: up to 19 digits, kept inline (Copy, no allocation per request).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pan {
    digits: [u8; 19],
    len: u8,
}

impl Pan {
    #[must_use]
    pub fn new(digits: &[u8]) -> Option<Pan> {
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut d = [b'0'; 19];
        d.get_mut(..digits.len())?.copy_from_slice(digits);
        Some(Pan {
            digits: d,
            len: u8::try_from(digits.len()).ok()?,
        })
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.digits.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl std::fmt::Debug for Pan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", iso8583::render::mask_pan(self.as_bytes()))
    }
}

/// The Luhn check digit for `body` (the PAN without its last digit).
#[must_use]
pub fn luhn_check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &c)| {
            let d = u32::from(c.wrapping_sub(b'0') % 10);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    b'0' + u8::try_from((10 - sum % 10) % 10).unwrap_or(0)
}

/// Whether `pan` passes the Luhn check.
#[must_use]
pub fn luhn_valid(pan: &[u8]) -> bool {
    match pan.split_last() {
        Some((&last, body)) => luhn_check_digit(body) == last,
        None => false,
    }
}

/// A 16-digit Luhn-valid PAN under `prefix`.
fn pan_under(prefix: &str, rng: &mut impl Rng) -> Option<Pan> {
    let mut body: Vec<u8> = prefix.bytes().collect();
    while body.len() < 15 {
        body.push(b'0' + rng.gen_range(0..10u8));
    }
    let check = luhn_check_digit(&body);
    body.push(check);
    Pan::new(&body)
}

/// Where a transaction happens: a registered merchant/terminal pair.
#[derive(Debug, Clone)]
pub struct Place {
    /// F42, 15 bytes space-padded.
    pub merchant: [u8; 15],
    /// F41, 8 bytes space-padded.
    pub terminal: [u8; 8],
    /// F18.
    pub mcc: [u8; 4],
    /// Categories both the merchant and the terminal permit.
    pub permits_refund: bool,
}

/// A pair usable for one category, with its budget if its limits cap the day.
#[derive(Debug, Clone)]
struct Slot {
    place: u32,
    single_max: Option<i64>,
    /// Indexes into `Catalog::budgets`: the terminal's and the merchant's, when capped.
    budgets: [Option<usize>; 2],
}

/// Daily amount/count loadgen may still use on a terminal or merchant counter.
#[derive(Debug, Clone, Copy)]
struct Budget {
    amount: Option<i64>,
    count: Option<u64>,
}

/// Everything requests are built from. Shared by every connection (read-only but for the
/// budgets of bounded pairs, behind one mutex that unlimited pairs never touch).
#[derive(Debug)]
pub struct Catalog {
    pub acquirer: InstId,
    pub switch_id: InstId,
    /// PANs routed to an allowed issuer.
    cards: Vec<Pan>,
    /// PANs of installment-enabled ranges of installment-enabled allowed issuers.
    installment_cards: Vec<Pan>,
    /// PANs no BIN row routes.
    unroutable: Vec<Pan>,
    places: Vec<Place>,
    /// Usable pairs per category, bounded ones first.
    slots: HashMap<TxnCategory, Vec<Slot>>,
    budgets: Mutex<Vec<Budget>>,
    /// Issuers traffic goes to (after `--issuers`).
    pub issuers: Vec<InstId>,
    /// Categories no registered pair permits (requests still go out: expect 58/03/97).
    pub uncovered: Vec<TxnCategory>,
}

/// Catalog build errors.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("acquirer {0:?}: not 1 to 11 digits")]
    BadId(String),
    #[error("issuer {0} (--issuers) is not an issuer of the configuration")]
    UnknownIssuer(String),
    #[error("no BIN prefix of the configuration routes to the selected issuers")]
    NoCards,
    #[error("reading the BIN table: {0}")]
    Bins(String),
}

const CARDS_PER_POOL: usize = 4096;

fn padded<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [b' '; N];
    for (o, c) in out.iter_mut().zip(s) {
        *o = *c;
    }
    out
}

impl Catalog {
    /// From a loaded switch configuration. `issuers`: only route to these (empty: all).
    pub fn from_config(
        config: &Config,
        acquirer: &str,
        switch_id: &str,
        issuers: &[String],
    ) -> Result<Catalog, CatalogError> {
        let acq = InstId::new(acquirer).ok_or_else(|| CatalogError::BadId(acquirer.into()))?;
        let switch_id =
            InstId::new(switch_id).ok_or_else(|| CatalogError::BadId(switch_id.into()))?;
        let configured: Vec<InstId> = config.issuers().map(|i| i.id).collect();
        let mut allowed = Vec::new();
        for s in issuers {
            let id = InstId::new(s)
                .filter(|id| configured.contains(id))
                .ok_or_else(|| CatalogError::UnknownIssuer(s.clone()))?;
            allowed.push(id);
        }
        if allowed.is_empty() {
            allowed = configured;
        }
        let installment_issuer = |id: &InstId| {
            config
                .institution_by_id(id)
                .and_then(|i| i.issuer.as_ref())
                .is_some_and(|s| s.installment)
        };
        let rows = match &config.routing.bin_table {
            Some(path) => {
                switch::bins::read_csv(path).map_err(|e| CatalogError::Bins(e.to_string()))?
            }
            None => Vec::new(),
        };
        // Deterministic: the same configuration gives the same cards.
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x6c6f_6164_6765_6e00);
        let mut cards = Vec::new();
        let mut installment_cards = Vec::new();
        if !rows.is_empty() {
            for i in 0..CARDS_PER_POOL * 4 {
                let Some(row) = rows.get(i % rows.len()) else {
                    break;
                };
                let Some(pan) = pan_under(&row.prefix.to_string(), &mut rng) else {
                    continue;
                };
                // The longest prefix decides (a nested row may carve this PAN out).
                let Some(route) = config.bins.lookup(pan.as_bytes()) else {
                    continue;
                };
                if !allowed.contains(&route.issuer) {
                    continue;
                }
                if cards.len() < CARDS_PER_POOL {
                    cards.push(pan);
                }
                if route.installment
                    && installment_issuer(&route.issuer)
                    && installment_cards.len() < CARDS_PER_POOL
                {
                    installment_cards.push(pan);
                }
            }
        }
        if cards.is_empty() {
            return Err(CatalogError::NoCards);
        }
        let mut unroutable = Vec::new();
        for first in [b"999999", b"100000", b"000000"] {
            for _ in 0..64 {
                let prefix = String::from_utf8_lossy(first).into_owned();
                if let Some(pan) = pan_under(&prefix, &mut rng) {
                    if config.bins.lookup(pan.as_bytes()).is_none() {
                        unroutable.push(pan);
                    }
                }
            }
        }
        let (places, slots, budgets, uncovered) = places_of(config, &acq);
        Ok(Catalog {
            acquirer: acq,
            switch_id,
            cards,
            installment_cards,
            unroutable,
            places,
            slots,
            budgets: Mutex::new(budgets),
            issuers: allowed,
            uncovered,
        })
    }

    /// A card for `kind` (`None`: the configuration has none, e.g. no installment range).
    pub fn card(&self, kind: Kind, rng: &mut impl Rng) -> Option<Pan> {
        let pool = match kind {
            Kind::Installment => &self.installment_cards,
            Kind::Unroutable => &self.unroutable,
            _ => &self.cards,
        };
        if pool.is_empty() {
            return None;
        }
        pool.get(rng.gen_range(0..pool.len())).copied()
    }

    #[must_use]
    pub fn place(&self, index: u32) -> Option<&Place> {
        self.places.get(index as usize)
    }

    /// A pair for a new request of `category` and `amount` that stays under the limits
    /// (charging the pair's budget). `None` when the configuration registers no pair for it.
    pub fn pick_place(
        &self,
        category: TxnCategory,
        amount: i64,
        rng: &mut impl Rng,
    ) -> Option<u32> {
        let slots = self.slots.get(&category)?;
        if slots.is_empty() {
            return None;
        }
        let start = rng.gen_range(0..slots.len());
        let mut fallback = None;
        for i in 0..slots.len() {
            let Some(slot) = slots.get((start + i) % slots.len()) else {
                continue;
            };
            if slot.single_max.is_some_and(|m| amount > m) {
                continue;
            }
            if slot.budgets == [None, None] || self.charge(slot.budgets, amount) {
                return Some(slot.place);
            }
            fallback.get_or_insert(slot.place);
        }
        // Every bounded pair is spent and there is no unlimited one: send anyway (61/65).
        fallback.or_else(|| slots.first().map(|s| s.place))
    }

    /// Whether a related request of `category` (a refund) may go to the pair of its original
    /// without passing the limits; charges the pair's budget when it may.
    pub fn admit(&self, category: TxnCategory, place: u32, amount: i64) -> bool {
        let Some(slot) = self
            .slots
            .get(&category)
            .and_then(|slots| slots.iter().find(|s| s.place == place))
        else {
            return false; // the pair does not permit the category
        };
        if slot.single_max.is_some_and(|m| amount > m) {
            return false;
        }
        slot.budgets == [None, None] || self.charge(slot.budgets, amount)
    }

    /// Charge `amount` and one count to every budget of a pair, or to none.
    fn charge(&self, which: [Option<usize>; 2], amount: i64) -> bool {
        let Ok(mut budgets) = self.budgets.lock() else {
            return false;
        };
        let fits = which.iter().flatten().all(|&i| {
            budgets.get(i).is_some_and(|b| {
                let amount_left = b.amount.unwrap_or(i64::MAX);
                let count_left = b.count.unwrap_or(u64::MAX);
                amount_left >= amount && count_left > 0
            })
        });
        if !fits {
            return false;
        }
        for &i in which.iter().flatten() {
            if let Some(b) = budgets.get_mut(i) {
                if let Some(a) = b.amount.as_mut() {
                    *a -= amount;
                }
                if let Some(c) = b.count.as_mut() {
                    *c -= 1;
                }
            }
        }
        true
    }

    #[must_use]
    pub fn card_count(&self) -> (usize, usize) {
        (self.cards.len(), self.installment_cards.len())
    }

    #[must_use]
    pub fn place_count(&self) -> usize {
        self.places.len()
    }
}

type PlaceTables = (
    Vec<Place>,
    HashMap<TxnCategory, Vec<Slot>>,
    Vec<Budget>,
    Vec<TxnCategory>,
);

/// Pairs registered together for `acquirer`, both active, per category both permit.
fn places_of(config: &Config, acquirer: &InstId) -> PlaceTables {
    let limits: &LimitSettings = &config.registry.limits;
    let mut places = Vec::new();
    let mut slots: HashMap<TxnCategory, Vec<Slot>> = HashMap::new();
    let mut budgets = Vec::new();
    // Merchant counters are shared by every terminal of the merchant: one budget each.
    let mut merchant_budgets: HashMap<([u8; 15], TxnCategory), usize> = HashMap::new();
    let categories = [
        TxnCategory::Purchase,
        TxnCategory::Installment,
        TxnCategory::Balance,
        TxnCategory::Refund,
    ];
    let Some(registry) = &config.registry.registry else {
        // No registry: any merchant/terminal goes; limits may still apply to this pair.
        places.push(Place {
            merchant: padded(b"MERCHANT0000001"),
            terminal: padded(b"TERM0001"),
            mcc: *b"5411",
            permits_refund: true,
        });
        for c in categories {
            slots.entry(c).or_default().push(Slot {
                place: 0,
                single_max: None,
                budgets: [None, None],
            });
        }
        return (places, slots, budgets, Vec::new());
    };
    for t in registry.terminals() {
        if t.acquirer != *acquirer || t.status != Status::Active {
            continue;
        }
        let Some(m) = registry.merchant(acquirer.as_str(), t.merchant.as_field()) else {
            continue;
        };
        if m.status != Status::Active {
            continue;
        }
        let both = |c: TxnCategory| t.categories.contains(c) && m.categories.contains(c);
        let index = u32::try_from(places.len()).unwrap_or(u32::MAX);
        places.push(Place {
            merchant: *t.merchant.as_field(),
            terminal: *t.id.as_field(),
            mcc: padded(m.mcc.to_string().as_bytes()),
            permits_refund: both(TxnCategory::Refund),
        });
        for c in categories {
            if !both(c) {
                continue;
            }
            let tl = limits
                .terminal_limit(&t.id, &t.merchant, c)
                .copied()
                .unwrap_or_default();
            let ml = limits
                .merchant_limit(&t.merchant, c)
                .copied()
                .unwrap_or_default();
            let single_max = match (tl.single_max, ml.single_max) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let bounded = |l: &Limit| l.daily_amount_max.is_some() || l.daily_count_max.is_some();
            // Half of each daily cap: room is left for other runs of the same settlement day.
            let half = |l: &Limit| Budget {
                amount: l.daily_amount_max.map(|a| a / 2),
                count: l.daily_count_max.map(|n| n / 2),
            };
            let terminal_budget = bounded(&tl).then(|| {
                budgets.push(half(&tl));
                budgets.len() - 1
            });
            // A merchant counter is shared by all its terminals: one budget per merchant.
            let merchant_budget = bounded(&ml).then(|| {
                *merchant_budgets
                    .entry((*t.merchant.as_field(), c))
                    .or_insert_with(|| {
                        budgets.push(half(&ml));
                        budgets.len() - 1
                    })
            });
            slots.entry(c).or_default().push(Slot {
                place: index,
                single_max,
                budgets: [terminal_budget, merchant_budget],
            });
        }
    }
    let uncovered = categories
        .into_iter()
        .filter(|c| slots.get(c).unwrap_or(&Vec::new()).is_empty())
        .collect();
    (places, slots, budgets, uncovered)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn luhn_digits() {
        // Known valid test numbers.
        assert!(luhn_valid(b"4111111111111111"));
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"79927398710"));
        assert_eq!(luhn_check_digit(b"7992739871"), b'3');
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        for _ in 0..100 {
            let pan = pan_under("621483", &mut rng).unwrap();
            assert!(luhn_valid(pan.as_bytes()));
            assert!(pan.as_bytes().starts_with(b"621483"));
            assert_eq!(pan.as_bytes().len(), 16);
        }
    }

    #[test]
    fn pan_debug_is_masked() {
        let pan = Pan::new(b"6214830000001234").unwrap();
        let shown = format!("{pan:?}");
        assert!(!shown.contains("6214830000001234"), "{shown}");
        assert!(shown.starts_with("621483") && shown.ends_with("1234"));
    }
}
