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

/// What one connection measured: latency from intended send instants, how late the sender
/// was (lag), and a per-second timeline of answers.
#[derive(Debug, Clone)]
pub struct Accounting {
    pub latency: Histogram<u64>,
    /// Actual send minus intended send, us: the generator's own lateness.
    pub send_lag: Histogram<u64>,
    /// Per second of the run (by answer time): latencies of the answers in that second.
    pub timeline: Vec<Histogram<u32>>,
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
            timeline: Vec::new(),
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
        let second = usize::try_from(answered_ns / 1_000_000_000).unwrap_or(usize::MAX);
        if second < 86_400 {
            while self.timeline.len() <= second {
                self.timeline.push(second_histogram());
            }
            if let Some(h) = self.timeline.get_mut(second) {
                let _ = h.record(us);
            }
        }
        us
    }

    /// Fold another connection's figures into these.
    pub fn merge(&mut self, other: &Accounting) {
        let _ = self.latency.add(&other.latency);
        let _ = self.send_lag.add(&other.send_lag);
        while self.timeline.len() < other.timeline.len() {
            self.timeline.push(second_histogram());
        }
        for (mine, theirs) in self.timeline.iter_mut().zip(&other.timeline) {
            let _ = mine.add(theirs);
        }
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
        // Timeline: all answers fall in second 0.
        assert_eq!(acc.timeline.len(), 1);
        assert_eq!(acc.timeline[0].len(), 200);
    }

    #[test]
    fn timeline_buckets_by_answer_second_and_merges() {
        let mut a = Accounting::new();
        a.answered(0, 500 * MS);
        a.answered(900 * MS, 2_100 * MS);
        let mut b = Accounting::new();
        b.answered(3_000 * MS, 3_002 * MS);
        a.merge(&b);
        assert_eq!(a.timeline.len(), 4);
        let counts: Vec<u64> = a.timeline.iter().map(Histogram::len).collect();
        assert_eq!(counts, vec![1, 0, 1, 1]);
        assert_eq!(a.latency.len(), 3);
        assert_eq!(
            a.timeline[2].max(),
            a.timeline[2].highest_equivalent(1_200_000)
        );
    }
}
