//! The final report: for people (text), for tools (JSON), and a latency-over-time plot
//! (hand-written SVG: p50/p99/max per second and throughput).

use crate::engine::{Rate, Report};
use crate::schedule::SecondStats;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write as _;

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Latency summary of a histogram in milliseconds.
fn percentiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!(null);
    }
    json!({
        "p50": ms(h.value_at_quantile(0.5)),
        "p90": ms(h.value_at_quantile(0.9)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99_9": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": h.mean() / 1000.0,
    })
}

fn rate_label(rate: Rate) -> String {
    match rate {
        Rate::Fixed(r) => format!("open loop, {r:.0} tx/s"),
        Rate::Max { window } => format!("closed loop, {window} in flight per link"),
    }
}

/// The report as JSON (the same figures as [`text`]).
#[must_use]
pub fn json(r: &Report) -> Value {
    let per_second: Vec<Value> = r
        .timeline
        .iter()
        .enumerate()
        .map(|(s, t)| {
            json!({
                "second": s,
                "answered": t.answered,
                "p50_ms": t.p50_us as f64 / 1000.0,
                "p99_ms": t.p99_us as f64 / 1000.0,
                "max_ms": t.max_us as f64 / 1000.0,
            })
        })
        .collect();
    let by_kind: serde_json::Map<String, Value> = r
        .sent_by_kind
        .iter()
        .map(|(k, sent)| {
            let codes: serde_json::Map<String, Value> = r
                .by_kind_code
                .iter()
                .filter(|((kind, _), _)| kind == k)
                .map(|((_, code), n)| (code.clone(), json!(n)))
                .collect();
            (
                k.name().to_owned(),
                json!({
                    "sent": sent,
                    "codes": codes,
                    "unanswered": r.unanswered_by_kind.get(k).copied().unwrap_or(0),
                }),
            )
        })
        .collect();
    json!({
        "target": r.target.to_string(),
        "connections": r.connections,
        "mode": match r.rate { Rate::Fixed(_) => "open", Rate::Max { .. } => "closed" },
        "rate": match r.rate { Rate::Fixed(x) => json!(x), Rate::Max { .. } => json!("max") },
        "window": match r.rate { Rate::Max { window } => json!(window), Rate::Fixed(_) => json!(null) },
        "mix": r.mix,
        "sent": r.sent,
        "answered": r.answered,
        "unanswered": r.unanswered,
        "rejected": r.rejected,
        "unmatched": r.unmatched,
        "by_code": r.by_code,
        "by_kind": by_kind,
        "send_seconds": r.send_elapsed.as_secs_f64(),
        "elapsed_seconds": r.elapsed.as_secs_f64(),
        "send_rate": r.send_rate(),
        "throughput": r.throughput(),
        "latency_ms": percentiles(&r.accounting.latency),
        "send_lag_ms": percentiles(&r.accounting.send_lag),
        "per_second": per_second,
        "errors": r.errors,
    })
}

/// The report for people.
#[must_use]
pub fn text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "target {}  {} links  {}  mix {}",
        r.target,
        r.connections,
        rate_label(r.rate),
        r.mix
    );
    let _ = writeln!(
        o,
        "sent {}  answered {}  unanswered {}  in {:.2} s (sending {:.2} s): {:.0} answered/s, {:.0} sent/s",
        r.sent,
        r.answered,
        r.unanswered,
        r.elapsed.as_secs_f64(),
        r.send_elapsed.as_secs_f64(),
        r.throughput(),
        r.send_rate()
    );
    let _ = writeln!(o, "by transaction (sent: answered by code, unanswered):");
    for (k, sent) in &r.sent_by_kind {
        let codes: Vec<String> = r
            .by_kind_code
            .iter()
            .filter(|((kind, _), _)| kind == k)
            .map(|((_, code), n)| format!("{code} x{n}"))
            .collect();
        let un = r.unanswered_by_kind.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "  {:<12} {sent:>9}: {}{}",
            k.name(),
            codes.join(", "),
            if un > 0 {
                format!(", unanswered x{un}")
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(o, "by response code:");
    for (code, n) in &r.by_code {
        let meaning = iso8583::ResponseCode::parse(code.as_bytes())
            .and_then(iso8583::ResponseCode::meaning)
            .unwrap_or("");
        let _ = writeln!(o, "  {code:<11} {meaning:<45} {n:>9}");
    }
    if r.by_code.contains_key("61") || r.by_code.contains_key("65") {
        let _ = writeln!(
            o,
            "  note: 61/65 are the switch's limits (limits.csv); its counters last the whole settlement day, across runs"
        );
    }
    if r.unmatched > 0 {
        let _ = writeln!(
            o,
            "responses matching no request: {} (not counted as answers)",
            r.unmatched
        );
    }
    let h = &r.accounting.latency;
    if !h.is_empty() {
        let _ = writeln!(
            o,
            "latency ms{}: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            if matches!(r.rate, Rate::Fixed(_)) {
                " (from intended send)"
            } else {
                ""
            },
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.9)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max())
        );
    }
    let lag = &r.accounting.send_lag;
    if matches!(r.rate, Rate::Fixed(_)) && !lag.is_empty() {
        let _ = writeln!(
            o,
            "sender lag ms (loadgen's own lateness, included above): p50 {:.2}  p99 {:.2}  max {:.2}",
            ms(lag.value_at_quantile(0.5)),
            ms(lag.value_at_quantile(0.99)),
            ms(lag.max())
        );
    }
    for e in r.errors.iter().take(10) {
        let _ = writeln!(o, "error: {e}");
    }
    if r.errors.len() > 10 {
        let _ = writeln!(o, "... and {} more errors", r.errors.len() - 10);
    }
    o
}

/// A latency-over-time plot: per second p50, p99 and max (ms, top panel) and answers per
/// second (bottom panel).
#[must_use]
pub fn svg(r: &Report) -> String {
    const W: f64 = 960.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP1: f64 = 40.0;
    const H1: f64 = 280.0;
    const TOP2: f64 = 380.0;
    const H2: f64 = 160.0;
    let t = &r.timeline;
    let n = t.len().max(1);
    let series = |f: &dyn Fn(&SecondStats) -> f64| -> Vec<f64> { t.iter().map(f).collect() };
    let p50 = series(&|s| s.p50_us as f64 / 1000.0);
    let p99 = series(&|s| s.p99_us as f64 / 1000.0);
    let max = series(&|s| s.max_us as f64 / 1000.0);
    let tput = series(&|s| s.answered as f64);
    let top_ms = nice_ceiling(max.iter().copied().fold(0.0, f64::max));
    let top_tput = nice_ceiling(tput.iter().copied().fold(0.0, f64::max));
    let plot_w = W - LEFT - RIGHT;
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n as f64;
    let line = |values: &[f64], top: f64, y0: f64, h: f64| -> String {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y0 + h - h * (v / top).min(1.0)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="580" viewBox="0 0 {W} 580" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "loadgen: {}, {} links, {} sent, {} answered, {} unanswered",
        rate_label(r.rate),
        r.connections,
        r.sent,
        r.answered,
        r.unanswered
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="14">{}</text>"#,
        escape(&title)
    );
    for (top, y0, h, label, scale) in [
        (top_ms, TOP1, H1, "latency ms", 1.0),
        (top_tput, TOP2, H2, "answered / s", 1.0),
    ] {
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{h}" fill="none" stroke="#888"/>"##
        );
        for k in 0..=4 {
            let v = top * f64::from(k) / 4.0 * scale;
            let y = y0 + h - h * f64::from(k) / 4.0;
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                fmt_axis(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{label}</text>"#,
            y0 + h / 2.0,
            y0 + h / 2.0
        );
    }
    let ticks = (n / 10).max(1);
    for i in (0..n).step_by(ticks) {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{i}</text>"#,
            x(i),
            TOP2 + H2 + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds into the run (answers by arrival second)</text>"#,
        LEFT + plot_w / 2.0,
        TOP2 + H2 + 34.0
    );
    for (values, colour, name, dx) in [
        (&max, "#d62728", "max", 0.0),
        (&p99, "#ff7f0e", "p99", 60.0),
        (&p50, "#1f77b4", "p50", 120.0),
    ] {
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            line(values, top_ms, TOP1, H1)
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{name}</text>"#,
            LEFT + plot_w - 170.0 + dx,
            TOP1 - 6.0
        );
    }
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#2ca02c" stroke-width="1.5" points="{}"/>"##,
        line(&tput, top_tput, TOP2, H2)
    );
    let _ = writeln!(s, "</svg>");
    s
}

fn fmt_axis(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// 1, 2 or 5 times a power of ten, at least `v` (and more than 0).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(11.0), 20.0);
        assert_eq!(nice_ceiling(48_000.0), 50_000.0);
    }
}
