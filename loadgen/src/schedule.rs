//! Open-loop scheduling and latency accounting, free of clocks and sockets: times are plain
//! nanoseconds from the start of the run, so tests drive them with synthetic values.
//!
//! Coordinated omission: a closed-loop generator (or an open-loop one that measures from the
//! moment it actually sends) stops sending while the system under test stalls, so the stall
//! hides in a handful of slow samples. Here every request has an *intended* send instant fixed
//! in advance by the rate; when the sender falls behind, requests go out late and their
//! latency counts from the intended instant, lag included.

use hdrhistogram::Histogram;

/// When each request of one connection is due: request `i` at `offset + i * interval`, for
/// `count` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub offset_ns: u64,
    pub interval_ns: u64,
    pub count: u64,
}

impl Schedule {
    /// `connections` links sharing `rate` requests/s for `duration_ns`, this being link
    /// `index`: links are staggered evenly inside one interval.
    #[must_use]
    pub fn for_connection(rate: f64, duration_ns: u64, connections: usize, index: usize) -> Self {
        let connections = connections.max(1) as f64;
        let per_link = (rate / connections).max(1e-9);
        let interval_ns = ((1e9 / per_link).round() as u64).max(1);
        let offset_ns = (interval_ns as f64 * index as f64 / connections) as u64;
        let count = if duration_ns > offset_ns {
            (duration_ns - offset_ns).div_ceil(interval_ns)
        } else {
            0
        };
        Schedule {
            offset_ns,
            interval_ns,
            count,
        }
    }

    /// Intended send instant of request `i`.
    #[must_use]
    pub fn intended(&self, i: u64) -> u64 {
        self.offset_ns
            .saturating_add(i.saturating_mul(self.interval_ns))
    }

    /// How many requests are due by `now` (all with index below the result), at most `count`.
    #[must_use]
    pub fn due_by(&self, now_ns: u64) -> u64 {
        if now_ns < self.offset_ns {
            return 0;
        }
        ((now_ns - self.offset_ns) / self.interval_ns + 1).min(self.count)
    }
}

/// Latency in microseconds from the intended send instant to the answer (at least 1).
#[must_use]
pub fn latency_us(intended_ns: u64, answered_ns: u64) -> u64 {
    (answered_ns.saturating_sub(intended_ns) / 1_000).max(1)
}

/// Highest latency recorded (60 s): anything slower is clamped, and counted as such.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds (1 us to 60 s, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// A small histogram for one second of the timeline (2 significant digits).
pub fn second_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// What one connection measured: latency from intended send instants and how late the
/// sender was (lag). The per-second figures are kept once for all links ([`Timeline`]).
#[derive(Debug, Clone)]
pub struct Accounting {
    pub latency: Histogram<u64>,
    /// Actual send minus intended send, us: the generator's own lateness.
    pub send_lag: Histogram<u64>,
}

/// One second of the run (by answer time) over every link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondStats {
    pub answered: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl SecondStats {
    fn of(h: &Histogram<u32>) -> SecondStats {
        if h.is_empty() {
            return SecondStats::default();
        }
        SecondStats {
            answered: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// Seconds a second stays open to answers after a newer one has begun: links record at
/// the moment they read an answer, so no answer is that late (one that is still counts,
/// into its second's answers and maximum).
const OPEN_SECONDS: usize = 3;

/// The per-second timeline of answers, shared by the links of a run. The last few seconds
/// are histograms; older ones are reduced to their figures, so the timeline costs ~32
/// bytes a second of run whatever the number of links (a histogram per link and second
/// was ~13 KB: a 64-link soak grew by ~3 GB an hour).
#[derive(Debug, Default)]
pub struct Timeline {
    inner: std::sync::Mutex<TimelineInner>,
}

#[derive(Debug, Default)]
struct TimelineInner {
    /// Seconds `0..done.len()`.
    done: Vec<SecondStats>,
    /// Seconds from `done.len()` on.
    open: std::collections::VecDeque<Histogram<u32>>,
}

impl Timeline {
    fn lock(&self) -> std::sync::MutexGuard<'_, TimelineInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An answer of `latency_us` read at `answered_ns` from the start of the run (seconds
    /// past a day are not kept).
    pub fn record(&self, answered_ns: u64, latency_us: u64) {
        let Ok(second) = usize::try_from(answered_ns / 1_000_000_000) else {
            return;
        };
        if second >= 86_400 {
            return;
        }
        let mut t = self.lock();
        let base = t.done.len();
        if let Some(late) = t.done.get_mut(second) {
            late.answered += 1;
            late.max_us = late.max_us.max(latency_us);
            return;
        }
        let i = second - base;
        while t.open.len() <= i {
            t.open.push_back(second_histogram());
        }
        if let Some(h) = t.open.get_mut(i) {
            let _ = h.record(latency_us.clamp(1, MAX_LATENCY_US));
        }
        while t.open.len() > OPEN_SECONDS {
            if let Some(h) = t.open.pop_front() {
                t.done.push(SecondStats::of(&h));
            }
        }
    }

    /// Every second so far, open ones included.
    #[must_use]
    pub fn seconds(&self) -> Vec<SecondStats> {
        let t = self.lock();
        t.done
            .iter()
            .copied()
            .chain(t.open.iter().map(SecondStats::of))
            .collect()
    }
}

impl Default for Accounting {
    fn default() -> Self {
        Self::new()
    }
}

impl Accounting {
    #[must_use]
    pub fn new() -> Accounting {
        Accounting {
            latency: histogram(),
            send_lag: histogram(),
        }
    }

    /// A request intended at `intended_ns` went out at `sent_ns`.
    pub fn sent(&mut self, intended_ns: u64, sent_ns: u64) {
        let lag = sent_ns.saturating_sub(intended_ns) / 1_000;
        let _ = self.send_lag.record(lag.clamp(1, MAX_LATENCY_US));
    }

    /// Its answer arrived at `answered_ns`. Returns the latency recorded (us).
    pub fn answered(&mut self, intended_ns: u64, answered_ns: u64) -> u64 {
        let us = latency_us(intended_ns, answered_ns).min(MAX_LATENCY_US);
        let _ = self.latency.record(us);
        us
    }

    /// Fold another connection's figures into these.
    pub fn merge(&mut self, other: &Accounting) {
        let _ = self.latency.add(&other.latency);
        let _ = self.send_lag.add(&other.send_lag);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn schedule_spreads_links_over_one_interval() {
        // 1000/s over 4 links for 1 s: 250 each, 4 ms apart, offsets 0, 1, 2, 3 ms.
        let s: Vec<_> = (0..4)
            .map(|i| Schedule::for_connection(1000.0, 1_000 * MS, 4, i))
            .collect();
        for (i, s) in s.iter().enumerate() {
            assert_eq!(s.interval_ns, 4 * MS);
            assert_eq!(s.offset_ns, i as u64 * MS);
            assert_eq!(s.count, 250);
        }
        let total: u64 = s.iter().map(|s| s.count).sum();
        assert_eq!(total, 1000);
        let s0 = s[0];
        assert_eq!(s0.due_by(0), 1);
        assert_eq!(s0.due_by(4 * MS - 1), 1);
        assert_eq!(s0.due_by(4 * MS), 2);
        assert_eq!(s0.due_by(10_000 * MS), 250, "never more than count");
        assert_eq!(s[3].due_by(2 * MS), 0, "nothing before the offset");
        assert_eq!(s0.intended(249), 996 * MS);
    }

    /// Drive a sender through a schedule with a synthetic clock: the sender stalls for
    /// 100 ms at t = 10 ms; the server answers each request 100 us after it is sent.
    #[test]
    fn a_stalled_sender_is_charged_for_its_lag() {
        let schedule = Schedule {
            offset_ns: 0,
            interval_ns: MS,
            count: 200,
        };
        let service = 100_000; // 100 us
        let mut acc = Accounting::new();
        let mut from_send = histogram(); // what a naive generator would report
        let mut next = 0u64;
        let mut now = 0u64;
        let mut latencies = Vec::new();
        while next < schedule.count {
            // The sender wakes at `now` and sends everything due.
            let due = schedule.due_by(now);
            while next < due {
                let intended = schedule.intended(next);
                acc.sent(intended, now);
                latencies.push(acc.answered(intended, now + service));
                from_send.record(latency_us(now, now + service)).unwrap();
                next += 1;
            }
            // Normally it wakes at the next intended instant; at 10 ms it stalls 100 ms.
            now = if now == 10 * MS {
                110 * MS
            } else {
                schedule.intended(next)
            };
        }
        assert_eq!(latencies.len(), 200);
        assert_eq!(acc.latency.len(), 200);
        // Requests 0..=10 went out on time: 100 us each.
        assert!(latencies[..=10].iter().all(|&l| l == 100));
        // Request 11 was due at 11 ms and went out at 110 ms: 99.1 ms late.
        assert_eq!(latencies[11], 99_100);
        // Request 110 was due at 110 ms: on time again, as are the rest.
        assert_eq!(latencies[109], 1_100);
        assert!(latencies[110..].iter().all(|&l| l == 100));
        // The stall shows in the percentiles, not only in one sample: 99 of 200 delayed.
        let delayed = latencies.iter().filter(|&&l| l > 100).count();
        assert_eq!(delayed, 99);
        assert!(acc.latency.value_at_quantile(0.6) > 10_000);
        assert_eq!(acc.latency.max(), acc.latency.highest_equivalent(99_100));
        // Lag is the sender's lateness: 0 on time (recorded as the 1 us floor), 99 ms worst.
        assert_eq!(acc.send_lag.len(), 200);
        assert_eq!(acc.send_lag.max(), acc.send_lag.highest_equivalent(99_000));
        // Measured from the actual send, the stall disappears: the bug this avoids.
        assert_eq!(from_send.max(), from_send.highest_equivalent(100));
    }

    #[test]
    fn accountings_merge() {
        let mut a = Accounting::new();
        a.answered(0, 500 * MS);
        a.answered(900 * MS, 2_100 * MS);
        let mut b = Accounting::new();
        b.answered(3_000 * MS, 3_002 * MS);
        b.sent(0, 5 * MS);
        a.merge(&b);
        assert_eq!(a.latency.len(), 3);
        assert_eq!(a.latency.max(), a.latency.highest_equivalent(1_200_000));
        assert_eq!(a.send_lag.len(), 1);
    }

    #[test]
    fn the_timeline_buckets_by_answer_second_over_links_and_keeps_figures_not_histograms() {
        let t = Timeline::default();
        // Two links' answers, in the order they are read.
        t.record(100 * MS, 500);
        t.record(900 * MS, 1_500);
        t.record(2_100 * MS, 1_200_000);
        t.record(3_002 * MS, 2);
        let s = t.seconds();
        let answered: Vec<u64> = s.iter().map(|s| s.answered).collect();
        assert_eq!(answered, vec![2, 0, 1, 1]);
        let h = second_histogram();
        assert_eq!(s[0].max_us, h.highest_equivalent(1_500));
        assert_eq!(s[0].p50_us, h.highest_equivalent(500));
        assert_eq!(s[2].p99_us, h.highest_equivalent(1_200_000));
        // An hour of answers: only the last few seconds stay histograms.
        for sec in 4..3_600u64 {
            for i in 0..10 {
                t.record(sec * 1_000 * MS + i, 100 + i);
            }
        }
        assert_eq!(t.lock().open.len(), OPEN_SECONDS);
        let s = t.seconds();
        assert_eq!(s.len(), 3_600);
        assert!(
            s[4..].iter().all(|s| s.answered == 10),
            "every second counted"
        );
        assert_eq!(s[1_000].max_us, h.highest_equivalent(109));
        // An answer for a second already reduced still counts (answers and maximum).
        t.record(5 * 1_000 * MS, 7_000);
        let s = t.seconds();
        assert_eq!((s[5].answered, s[5].max_us), (11, 7_000));
        // Past a day nothing is kept (and nothing breaks).
        t.record(u64::MAX, 1);
        assert_eq!(t.seconds().len(), 3_600);
    }
}
