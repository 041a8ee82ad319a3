//! Settlement day and cut-over (SPEC.md section 12). The business date requests are dated
//! with is state, not a clock reading: it moves at the configured local time, or when an
//! operator triggers a cut-over (`switch cutover`, `POST /cutover`). A cut-over has a start
//! (`0820/201`, the closing date closes: new requests `90`, voids of it `22`, reversals of it
//! still accepted) and an end (`0820/202` after `cutover_duration`: the new date opens,
//! unanswered advices of the closed day go to manual handling, clearing runs).

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

/// The switch's business date and cut-over phase. Lock-free reads on the hot path.
#[derive(Debug)]
pub struct Day {
    /// Settlement date `YYYYMMDD` new requests get.
    date: AtomicU32,
    /// Date being closed while a cut-over is in progress; 0 otherwise.
    closing: AtomicU32,
    /// When the cut-over in progress started (ms).
    started_ms: AtomicI64,
}

/// What the cut-over timer should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Nothing,
    /// Start a cut-over: `closing` closes, `new` is the date from now on.
    Start {
        closing: u32,
        new: u32,
    },
    /// End the cut-over in progress.
    End {
        closing: u32,
        new: u32,
    },
}

/// How a request is dated while a cut-over may be in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dating {
    /// Date it with this settlement date.
    Date(u32),
    /// Cut-over in progress and the request cannot be dated: `90`.
    CannotDate,
}

impl Day {
    #[must_use]
    pub fn new(date: u32) -> Day {
        Day {
            date: AtomicU32::new(date),
            closing: AtomicU32::new(0),
            started_ms: AtomicI64::new(0),
        }
    }

    /// The date new requests get.
    #[must_use]
    pub fn date(&self) -> u32 {
        self.date.load(Ordering::Acquire)
    }

    /// The date being closed, while a cut-over is in progress.
    #[must_use]
    pub fn closing(&self) -> Option<u32> {
        Some(self.closing.load(Ordering::Acquire)).filter(|&d| d != 0)
    }

    /// SPEC 12 dating during a cut-over: reversals belong to the closing day (accepted until
    /// the end), voids to the new one (so a void of the closed day is `22`), anything else
    /// cannot be dated (`90`). Outside a cut-over: today's date.
    #[must_use]
    pub fn dating(&self, kind: crate::core::TxnKind) -> Dating {
        use crate::core::TxnKind;
        match (self.closing(), kind) {
            (None, _) => Dating::Date(self.date()),
            (Some(closing), TxnKind::Reversal) => Dating::Date(closing),
            (Some(_), TxnKind::Void | TxnKind::PreauthVoid) => Dating::Date(self.date()),
            (Some(_), _) => Dating::CannotDate,
        }
    }

    /// Decide the timer's step: start when the clock's date (`derived`) passed the current
    /// one, end when the cut-over has lasted `duration_ms`.
    #[must_use]
    pub fn step(&self, derived: u32, now_ms: i64, duration_ms: i64) -> Step {
        match self.closing() {
            Some(closing) if now_ms - self.started_ms.load(Ordering::Acquire) >= duration_ms => {
                Step::End {
                    closing,
                    new: self.date(),
                }
            }
            Some(_) => Step::Nothing,
            None if derived > self.date() => Step::Start {
                closing: self.date(),
                new: derived,
            },
            None => Step::Nothing,
        }
    }

    /// Start a cut-over to `new` (no-op if one is in progress). Returns the closing date.
    pub fn start(&self, new: u32, now_ms: i64) -> Option<u32> {
        let closing = self.date();
        if new <= closing
            || self
                .closing
                .compare_exchange(0, closing, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return None;
        }
        self.started_ms.store(now_ms, Ordering::Release);
        self.date.store(new, Ordering::Release);
        Some(closing)
    }

    /// End the cut-over in progress; returns the date that closed.
    pub fn end(&self) -> Option<u32> {
        Some(self.closing.swap(0, Ordering::AcqRel)).filter(|&d| d != 0)
    }

    /// When the cut-over in progress started.
    #[must_use]
    pub fn started_ms(&self) -> i64 {
        self.started_ms.load(Ordering::Acquire)
    }
}

/// The settlement date the clock gives at `now_ms`: the local date, or the next day from
/// the configured cut-over time on.
#[must_use]
pub fn clock_date(cutover: chrono::NaiveTime, now_ms: i64) -> u32 {
    use chrono::{Datelike, TimeZone};
    let local = chrono::Local
        .timestamp_millis_opt(now_ms)
        .single()
        .map(|t| t.naive_local())
        .unwrap_or_default();
    let d = if local.time() >= cutover {
        local.date().succ_opt().unwrap_or(local.date())
    } else {
        local.date()
    };
    u32::try_from(d.year()).unwrap_or(0) * 10_000 + d.month() * 100 + d.day()
}

/// The day after `yyyymmdd` (calendar-aware).
#[must_use]
pub fn next_date(yyyymmdd: u32) -> u32 {
    let d = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(yyyymmdd / 10_000).unwrap_or(1970),
        yyyymmdd / 100 % 100,
        yyyymmdd % 100,
    )
    .and_then(|d| d.succ_opt());
    d.map_or(yyyymmdd + 1, |d| {
        use chrono::Datelike;
        u32::try_from(d.year()).unwrap_or(0) * 10_000 + d.month() * 100 + d.day()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::TxnKind;

    #[test]
    fn a_cut_over_starts_dates_and_ends() {
        let day = Day::new(20261121);
        assert_eq!(day.step(20261121, 0, 30_000), Step::Nothing);
        assert_eq!(day.dating(TxnKind::Purchase), Dating::Date(20261121));
        assert_eq!(
            day.step(20261122, 1_000, 30_000),
            Step::Start {
                closing: 20261121,
                new: 20261122
            }
        );
        assert_eq!(day.start(20261122, 1_000), Some(20261121));
        assert_eq!(day.start(20261123, 1_000), None, "one at a time");
        assert_eq!(day.dating(TxnKind::Purchase), Dating::CannotDate);
        assert_eq!(day.dating(TxnKind::Refund), Dating::CannotDate);
        assert_eq!(day.dating(TxnKind::Reversal), Dating::Date(20261121));
        assert_eq!(day.dating(TxnKind::Void), Dating::Date(20261122));
        assert_eq!(day.step(20261122, 30_999, 30_000), Step::Nothing);
        assert_eq!(
            day.step(20261122, 31_000, 30_000),
            Step::End {
                closing: 20261121,
                new: 20261122
            }
        );
        assert_eq!(day.end(), Some(20261121));
        assert_eq!(day.end(), None);
        assert_eq!(day.dating(TxnKind::Purchase), Dating::Date(20261122));
        assert_eq!(day.date(), 20261122);
    }

    #[test]
    fn next_date_rolls_months_and_years() {
        assert_eq!(next_date(20261121), 20261122);
        assert_eq!(next_date(20261130), 20261201);
        assert_eq!(next_date(20261231), 20270101);
        assert_eq!(next_date(20280228), 20280229);
    }
}
