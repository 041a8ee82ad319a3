//! Log setup: `tracing` with text or JSON lines. Card data never reaches a log line because
//! messages are only ever rendered through the masking in `iso8583::render`.

use crate::config::{LogFormat, LoggingSettings};
use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `RUST_LOG` overrides the configured level.
pub fn init(settings: &LoggingSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Folds a burst of like events into at most one log line a second, for events that come
/// by the thousand when they come (requests shed while an issuer is saturated): the caller
/// logs only when [`Folded::note`] returns the count. Lock-free; shared by every thread that
/// may see the event.
#[derive(Debug)]
pub struct Folded {
    /// Milliseconds of the last line (`i64::MIN`: none yet).
    last_line_ms: std::sync::atomic::AtomicI64,
    /// Events since the last line, this one included once it is counted.
    since: std::sync::atomic::AtomicU64,
}

impl Default for Folded {
    fn default() -> Self {
        Self::new()
    }
}

impl Folded {
    /// At most one line per this many milliseconds.
    pub const EVERY_MS: i64 = 1000;

    #[must_use]
    pub fn new() -> Self {
        Folded {
            last_line_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            since: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// One event at `now_ms`: `Some(n)` when a line is due, `n` the events it stands for
    /// (this one and those folded since the last line); `None` when folded into the next.
    pub fn note(&self, now_ms: i64) -> Option<u64> {
        use std::sync::atomic::Ordering;
        self.since.fetch_add(1, Ordering::Relaxed);
        let last = self.last_line_ms.load(Ordering::Relaxed);
        let due = last == i64::MIN || now_ms.saturating_sub(last) >= Self::EVERY_MS;
        // One thread wins the line; the others' events stay counted for the next one.
        if due
            && self
                .last_line_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.since.swap(0, Ordering::Relaxed));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Folded;

    #[test]
    fn a_burst_is_one_line_a_second_counting_what_it_folded() {
        let f = Folded::new();
        assert_eq!(f.note(10_000), Some(1));
        for t in 10_001..10_500 {
            assert_eq!(f.note(t), None);
        }
        assert_eq!(f.note(10_999), None);
        // A second after the last line: it stands for the 500 folded and itself.
        assert_eq!(f.note(11_000), Some(501));
        assert_eq!(f.note(11_001), None);
        // Quiet for a while, then one event: a line at once, for two.
        assert_eq!(f.note(60_000), Some(2));
    }

    #[test]
    fn threads_racing_for_a_line_lose_no_event() {
        let f = std::sync::Arc::new(Folded::new());
        let lines: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|k| {
                    let f = &f;
                    s.spawn(move || {
                        (0..1000)
                            .filter_map(|i| f.note(i64::from(k * 1000 + i) * 10))
                            .sum::<u64>()
                    })
                })
                .collect();
            // A recorder thread's panic is the test's failure: pass it on as it was.
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .sum()
        });
        // What no line reported yet is still counted for the next, which is due long after.
        let next = f.note(i64::MAX / 2);
        assert_eq!(next.map(|pending| lines + pending), Some(4001));
    }
}
