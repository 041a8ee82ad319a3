//! loadgen: drives a cardswitch with acquirer traffic and reports what came back.
//!
//! - [`engine`]: links to the switch, open-loop schedule or closed-loop window, every request
//!   accounted for (answered by code, or unanswered after a drain timeout);
//! - [`schedule`]: the open-loop schedule and latency accounting (coordinated omission
//!   corrected), clock-free and unit-tested with synthetic times;
//! - [`mix`], [`catalog`], [`txn`]: what is sent: the transaction mix, cards/merchants/
//!   terminals from the switch's own configuration files, request building and the pool of
//!   approvals that voids, refunds and reversals act on;
//! - [`pacer`]: sub-millisecond send instants for the open loop (tokio's timer has 1 ms slots);
//! - [`report`]: text, JSON and an SVG latency plot;
//! - [`demo`]: the switch and simulated issuers in-process on the bundled configuration and a
//!   short run through them (the first command of the README).

pub mod catalog;
pub mod demo;
pub mod engine;
pub mod mix;
pub mod pacer;
pub mod report;
pub mod schedule;
pub mod txn;

use std::time::Duration;

/// Parses `30s`, `2m`, `500ms`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((t, "s"), |i| t.split_at(i));
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration such as 30s, 2m or 500ms"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !(0.0..=7.0 * 86_400.0).contains(&secs) {
        return Err(format!("{text:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
