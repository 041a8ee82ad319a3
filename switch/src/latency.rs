//! The switch's per-transaction latency histograms: `switch_latency_seconds` (request
//! received to answer ready) and `switch_answer_wait_seconds` (answer ready to written).
//!
//! Fixed-bucket histograms of atomic counters, rendered in the Prometheus text format next
//! to the recorder's metrics. The `metrics` recorder queues every histogram sample in a
//! growing list of blocks until a scrape or its upkeep folds them into buckets: on this
//! path that was an allocation (zeroed) every few dozen transactions on the links' threads,
//! freed on another thread, and the fresh memory's page faults stalled a link's thread for
//! milliseconds (docs/performance.md, session 13). Here a sample is two relaxed additions.
//!
//! Links record into one of [`STRIPES`] cache-line-aligned stripes (a link keeps the one it
//! was given), so the two cores do not write the same line for every answer.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Upper bounds of the buckets, in microseconds (a sample falls in the first bucket whose
/// bound is at least the sample: Prometheus' `le`). 3 ms and 4 ms sit between 2 and 5 so
/// that a p99 near a 5 ms objective reads as 3, 4 or 5, not as "2 to 5".
const BOUNDS_US: [u64; 18] = [
    500, 1_000, 2_000, 3_000, 4_000, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 20_000_000, 30_000_000,
];
/// The same bounds as `le` labels, in seconds.
const LE: [&str; 18] = [
    "0.0005", "0.001", "0.002", "0.003", "0.004", "0.005", "0.01", "0.02", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10", "20", "30",
];
/// Buckets: one per bound, then the one past the last bound (`+Inf`).
const BUCKETS: usize = BOUNDS_US.len() + 1;

pub const STRIPES: usize = 8;

#[repr(align(64))]
struct Stripe {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Stripe {
    const fn new() -> Self {
        Stripe {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            sum_us: AtomicU64::new(0),
        }
    }
}

pub struct LatencyHistogram {
    name: &'static str,
    help: &'static str,
    stripes: [Stripe; STRIPES],
    next_stripe: AtomicUsize,
}

/// Request received to answer ready (the issuer's leg), recorded by the issuer links.
pub static SWITCH_LATENCY: LatencyHistogram =
    LatencyHistogram::new("switch_latency_seconds", "request received to answer ready");

/// Answer ready to written on the acquirer link: the journal's commit (durable before
/// answered) and the hand-over to the link's thread. Recorded by the acquirer links.
pub static SWITCH_ANSWER_WAIT: LatencyHistogram = LatencyHistogram::new(
    "switch_answer_wait_seconds",
    "answer ready to written to the acquirer (journal commit and hand-over)",
);

/// Both histograms in the Prometheus text format (for `server::render_metrics`).
pub fn render_all(out: &mut String) {
    SWITCH_LATENCY.render_into(out);
    SWITCH_ANSWER_WAIT.render_into(out);
}

impl LatencyHistogram {
    #[must_use]
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        LatencyHistogram {
            name,
            help,
            stripes: [const { Stripe::new() }; STRIPES],
            next_stripe: AtomicUsize::new(0),
        }
    }

    /// A stripe for a new recorder (round robin).
    pub fn stripe(&self) -> usize {
        self.next_stripe.fetch_add(1, Ordering::Relaxed) % STRIPES
    }

    /// Count a sample of `ms` milliseconds (a difference of the switch clock's readings;
    /// a negative one, the clock stepping back, counts as 0).
    pub fn record_ms(&self, stripe: usize, ms: i64) {
        self.record(stripe, u64::try_from(ms).unwrap_or(0).saturating_mul(1000));
    }

    /// Count one sample of `micros` in `stripe` (any number: it is taken modulo [`STRIPES`]).
    pub fn record(&self, stripe: usize, micros: u64) {
        let s = &self.stripes[stripe % STRIPES];
        let i = BOUNDS_US.partition_point(|&b| b < micros);
        if let Some(b) = s.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        s.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// Append the histogram in the Prometheus text format. The count is the `+Inf` bucket
    /// of the same reading, so the two always agree even while samples arrive.
    pub fn render_into(&self, out: &mut String) {
        let mut counts = [0u64; BUCKETS];
        let mut sum_us = 0u64;
        for s in &self.stripes {
            for (c, b) in counts.iter_mut().zip(&s.buckets) {
                *c += b.load(Ordering::Relaxed);
            }
            sum_us = sum_us.wrapping_add(s.sum_us.load(Ordering::Relaxed));
        }
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}", self.help);
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (c, le) in counts.iter().zip(LE.iter().copied().chain(["+Inf"])) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_sum {}.{:06}",
            sum_us / 1_000_000,
            sum_us % 1_000_000
        );
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(h: &LatencyHistogram) -> Vec<(String, String)> {
        let mut out = String::new();
        h.render_into(&mut out);
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn value(lines: &[(String, String)], key: &str) -> String {
        lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{key} missing"))
    }

    #[test]
    fn samples_fall_in_the_first_bucket_whose_bound_is_at_least_the_sample() {
        let h = LatencyHistogram::new("t_seconds", "test");
        // 0 and exactly 0.5 ms are in le=0.0005; 0.501 ms is not; 40 s is past every bound.
        for (stripe, us) in [
            (0, 0),
            (1, 500),
            (2, 501),
            (3, 2_000),
            (4, 3_500),
            (9, 40_000_000),
        ] {
            h.record(stripe, us);
        }
        let lines = rendered(&h);
        assert_eq!(value(&lines, "t_seconds_bucket{le=\"0.0005\"}"), "2");
        assert_eq!(value(&lines, "t_seconds_bucket{le=\"0.001\"}"), "3");
        assert_eq!(value(&lines, "t_seconds_bucket{le=\"0.002\"}"), "4");
        assert_eq!(value(&lines, "t_seconds_bucket{le=\"0.003\"}"), "4");
        assert_eq!(value(&lines, "t_seconds_bucket{le=\"0.004\"}"), "5");
        assert_eq!(value(&lines, "t_seconds_bucket{le=\"30\"}"), "5");
        assert_eq!(value(&lines, "t_seconds_bucket{le=\"+Inf\"}"), "6");
        assert_eq!(value(&lines, "t_seconds_count"), "6");
        assert_eq!(value(&lines, "t_seconds_sum"), "40.006501");
    }

    #[test]
    fn buckets_are_cumulative_and_ordered_like_the_recorders_own_histograms() {
        let h = LatencyHistogram::new("t_seconds", "test");
        let mut out = String::new();
        h.render_into(&mut out);
        assert!(out.starts_with("# HELP t_seconds test\n# TYPE t_seconds histogram\n"));
        let les: Vec<f64> = rendered(&h)
            .iter()
            .filter_map(|(k, _)| k.strip_prefix("t_seconds_bucket{le=\""))
            .filter_map(|k| k.strip_suffix("\"}"))
            .map(|le| {
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                }
            })
            .collect();
        assert_eq!(les.len(), BUCKETS);
        assert!(les.windows(2).all(|w| w[0] < w[1]), "{les:?}");
        for (le, us) in les.iter().zip(BOUNDS_US) {
            assert_eq!((le * 1e6).round() as u64, us);
        }
    }

    #[test]
    fn concurrent_recorders_lose_no_sample() {
        let h = std::sync::Arc::new(LatencyHistogram::new("t_seconds", "test"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = std::sync::Arc::clone(&h);
                std::thread::spawn(move || {
                    let stripe = h.stripe();
                    for i in 0..10_000u64 {
                        h.record(stripe, (i + t) % 3_000);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(value(&rendered(&h), "t_seconds_count"), "40000");
    }
}
