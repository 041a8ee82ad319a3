//! Time as the switch sees it. Everything that times out (issuer responses, echoes, idle
//! links) and everything dated (settlement date) asks a [`Clock`], so tests can move time
//! with a [`ManualClock`] instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

pub trait Clock: Send + Sync + 'static {
    fn now_millis(&self) -> Millis;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Straight from the system clock: the links read it several times a transaction, and
    /// going through `chrono::Utc::now()` would build a calendar date each time only to
    /// turn it back into a number.
    fn now_millis(&self) -> Millis {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(Millis::MAX),
            // A clock set before 1970.
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(Millis::MAX),
        }
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    #[must_use]
    pub fn new(start: Millis) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }

    /// Starts at the current wall time.
    #[must_use]
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now_millis())
    }

    /// Starts today at `h:m:s` local time (tests place themselves relative to the 23:00
    /// cut-over; noon keeps a test clear of it). An invalid time starts at the current time.
    #[must_use]
    pub fn today_at(h: u32, m: u32, s: u32) -> Self {
        use chrono::TimeZone;
        let at = chrono::Local::now()
            .date_naive()
            .and_hms_opt(h, m, s)
            .and_then(|t| chrono::Local.from_local_datetime(&t).earliest())
            .map_or_else(|| SystemClock.now_millis(), |t| t.timestamp_millis());
        Self::new(at)
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(
            i64::try_from(by.as_millis()).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// Shared handle used across actors.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The system clock reads the same milliseconds as chrono's wall clock (what the
    /// switch used before, and what dates its records).
    #[test]
    fn the_system_clock_reads_unix_milliseconds() {
        let before = chrono::Utc::now().timestamp_millis();
        let now = SystemClock.now_millis();
        let after = chrono::Utc::now().timestamp_millis();
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }
}
