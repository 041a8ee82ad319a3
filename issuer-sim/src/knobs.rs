//! Behaviour knobs of the simulated bank host: how long an answer takes (a latency
//! distribution), answers that come too late, links that drop, answers on another link.
//! [`plan_delivery`] is a pure function of the [`Rules`] and a random source, so every knob
//! is testable without a clock; the network side (`sim.rs`) carries the plan out.

use crate::Rules;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest latency a distribution may produce (long tails are cut here).
pub const MAX_LATENCY: Duration = Duration::from_secs(600);

/// Random latency added to each answer of a `0100`/`0200`/`0220`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum Latency {
    /// No random part (the fixed `delay_ms` still applies).
    #[default]
    None,
    /// Uniform between `min_ms` and `max_ms`.
    Uniform { min_ms: f64, max_ms: f64 },
    /// Lognormal with this median and shape `sigma` (a long tail: p99 = median x
    /// e^(2.33 sigma)).
    LogNormal { median_ms: f64, sigma: f64 },
    /// Pareto with minimum `scale_ms` and tail index `shape` (heavier tail the smaller the
    /// shape; `shape` <= 1 has no mean).
    Pareto { scale_ms: f64, shape: f64 },
}

impl Latency {
    pub fn validate(&self) -> anyhow::Result<()> {
        let ok = match *self {
            Latency::None => true,
            Latency::Uniform { min_ms, max_ms } => min_ms >= 0.0 && max_ms >= min_ms,
            Latency::LogNormal { median_ms, sigma } => median_ms > 0.0 && sigma >= 0.0,
            Latency::Pareto { scale_ms, shape } => scale_ms > 0.0 && shape > 0.0,
        };
        if ok && self.is_finite() {
            Ok(())
        } else {
            anyhow::bail!("latency {self:?}: parameters out of range (non-negative, min <= max, median/scale and shape positive)")
        }
    }

    fn is_finite(&self) -> bool {
        match *self {
            Latency::None => true,
            Latency::Uniform {
                min_ms: a,
                max_ms: b,
            }
            | Latency::LogNormal {
                median_ms: a,
                sigma: b,
            }
            | Latency::Pareto {
                scale_ms: a,
                shape: b,
            } => a.is_finite() && b.is_finite(),
        }
    }

    /// Draw one latency (at most [`MAX_LATENCY`]).
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        let ms = match *self {
            Latency::None => return Duration::ZERO,
            Latency::Uniform { min_ms, max_ms } => {
                if max_ms > min_ms {
                    rng.gen_range(min_ms..max_ms)
                } else {
                    min_ms
                }
            }
            Latency::LogNormal { median_ms, sigma } => median_ms * (sigma * normal(rng)).exp(),
            Latency::Pareto { scale_ms, shape } => {
                // Inverse transform: scale / U^(1/shape), U in (0, 1].
                let u: f64 = 1.0 - rng.gen::<f64>();
                scale_ms / u.powf(1.0 / shape)
            }
        };
        let max = MAX_LATENCY.as_secs_f64() * 1000.0;
        Duration::from_secs_f64(ms.clamp(0.0, max) / 1000.0)
    }
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// What to do with the answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Cut the request's link instead of answering (no sign-off).
    pub disconnect: bool,
    /// Wait this long before sending the answer.
    pub delay: Duration,
    /// The delay is the late-answer delay (counted as late).
    pub late: bool,
    /// Send the answer on another signed-on link, if there is one.
    pub other_link: bool,
}

fn roll(rng: &mut impl Rng, rate: f64) -> bool {
    rate > 0.0 && (rate >= 1.0 || rng.gen::<f64>() < rate)
}

/// Plan the delivery of the answer to the `nth_on_link` request (1-based) a link received.
/// Draws random numbers only for the knobs that are on.
pub fn plan_delivery(rules: &Rules, nth_on_link: u64, rng: &mut impl Rng) -> Delivery {
    let disconnect = (rules.disconnect_after > 0 && nth_on_link == rules.disconnect_after)
        || roll(rng, rules.disconnect_rate);
    let late = roll(rng, rules.late_rate);
    let delay = if late {
        rules.late_delay
    } else {
        rules.delay + rules.latency.sample(rng)
    };
    Delivery {
        disconnect,
        delay,
        late,
        other_link: roll(rng, rules.other_link_rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p) as usize;
        v[i]
    }

    fn draws(l: Latency, n: usize) -> Vec<Duration> {
        let mut rng = SmallRng::seed_from_u64(7);
        (0..n).map(|_| l.sample(&mut rng)).collect()
    }

    #[test]
    fn distributions_have_their_shape() {
        let u = draws(
            Latency::Uniform {
                min_ms: 10.0,
                max_ms: 20.0,
            },
            10_000,
        );
        assert!(u
            .iter()
            .all(|d| *d >= Duration::from_millis(10) && *d < Duration::from_millis(20)));
        let median = percentile(u, 0.5).as_secs_f64() * 1000.0;
        assert!((14.0..16.0).contains(&median), "uniform median {median}");

        let ln = draws(
            Latency::LogNormal {
                median_ms: 10.0,
                sigma: 1.0,
            },
            20_000,
        );
        let p50 = percentile(ln.clone(), 0.5).as_secs_f64() * 1000.0;
        let p99 = percentile(ln, 0.99).as_secs_f64() * 1000.0;
        assert!((9.0..11.0).contains(&p50), "lognormal median {p50}");
        // e^2.326 = 10.2: the long tail.
        assert!((80.0..130.0).contains(&p99), "lognormal p99 {p99}");

        let pa = draws(
            Latency::Pareto {
                scale_ms: 5.0,
                shape: 2.0,
            },
            20_000,
        );
        assert!(pa.iter().all(|d| *d >= Duration::from_millis(5)));
        // Pareto quantile: scale / (1-p)^(1/shape): p50 = 7.07, p99 = 50.
        let p50 = percentile(pa.clone(), 0.5).as_secs_f64() * 1000.0;
        let p99 = percentile(pa, 0.99).as_secs_f64() * 1000.0;
        assert!((6.5..7.7).contains(&p50), "pareto median {p50}");
        assert!((40.0..62.0).contains(&p99), "pareto p99 {p99}");

        let heavy = draws(
            Latency::Pareto {
                scale_ms: 1_000.0,
                shape: 0.05,
            },
            1_000,
        );
        assert!(heavy.iter().all(|d| *d <= MAX_LATENCY));
        assert!(draws(Latency::None, 10).iter().all(Duration::is_zero));
    }

    #[test]
    fn delivery_plans_follow_the_knobs() {
        let mut rng = SmallRng::seed_from_u64(1);
        let plain = Rules::default().with_delay(Duration::from_millis(3));
        let d = plan_delivery(&plain, 1, &mut rng);
        assert_eq!(
            d,
            Delivery {
                disconnect: false,
                delay: Duration::from_millis(3),
                late: false,
                other_link: false
            }
        );

        let cut = Rules::default().with_disconnect_after(3);
        let cuts: Vec<bool> = (1..=5)
            .map(|n| plan_delivery(&cut, n, &mut rng).disconnect)
            .collect();
        assert_eq!(cuts, [false, false, true, false, false]);

        let late = Rules::default().with_late_answers(1.0, Duration::from_secs(40));
        let d = plan_delivery(&late, 1, &mut rng);
        assert!(d.late);
        assert_eq!(d.delay, Duration::from_secs(40));

        let half = Rules::default()
            .with_late_answers(0.5, Duration::from_secs(40))
            .with_other_link_rate(0.25)
            .with_disconnect_rate(0.1);
        let plans: Vec<Delivery> = (1..=10_000)
            .map(|n| plan_delivery(&half, n, &mut rng))
            .collect();
        let count = |f: fn(&Delivery) -> bool| plans.iter().filter(|d| f(d)).count();
        assert!((4_500..5_500).contains(&count(|d| d.late)));
        assert!((2_000..3_000).contains(&count(|d| d.other_link)));
        assert!((700..1_300).contains(&count(|d| d.disconnect)));
    }

    #[test]
    fn bad_parameters_are_refused() {
        for bad in [
            Latency::Uniform {
                min_ms: 5.0,
                max_ms: 1.0,
            },
            Latency::LogNormal {
                median_ms: 0.0,
                sigma: 1.0,
            },
            Latency::Pareto {
                scale_ms: 1.0,
                shape: f64::NAN,
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
