//! The traffic engine: N acquirer links, each keeping up to `window` requests in flight
//! (closed loop), every request accounted for: answered (by response code) or unanswered.

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use iso8583::subfields::{FeeMode, InstallmentRequest};
use iso8583::{Frame, FrameCodec, Header, InstId, Message, MessageBuilder, Mti, Packet};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// What one request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnType {
    Purchase,
    PurchaseDeclined,
    Installment,
    Balance,
    UnknownBin,
}

impl TxnType {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            TxnType::Purchase => "purchase",
            TxnType::PurchaseDeclined => "purchase (issuer declines)",
            TxnType::Installment => "installment purchase",
            TxnType::Balance => "balance inquiry",
            TxnType::UnknownBin => "purchase, unroutable BIN",
        }
    }

    /// The demo mix: mostly approvable purchases, some of every other kind.
    #[must_use]
    pub fn demo_mix(i: u64) -> TxnType {
        match i % 20 {
            0 => TxnType::PurchaseDeclined,
            1 => TxnType::Installment,
            2 => TxnType::Balance,
            3 => TxnType::UnknownBin,
            _ => TxnType::Purchase,
        }
    }
}

/// Amount the demo issuer declines with `51`.
pub const DECLINED_AMOUNT: i64 = 5100;

/// Load parameters.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: SocketAddr,
    pub acquirer: String,
    pub switch_id: String,
    pub connections: usize,
    pub requests_per_connection: u64,
    pub window: usize,
    /// How long to wait for an answer before counting it unanswered.
    pub answer_timeout: Duration,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Report {
    pub sent: u64,
    pub answered: u64,
    pub unanswered: u64,
    pub rejected: u64,
    pub elapsed: Duration,
    pub by_code: BTreeMap<String, u64>,
    pub by_type: BTreeMap<TxnType, u64>,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
}

impl Report {
    #[must_use]
    pub fn throughput(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Unique STANs across all connections of this process (with F7 per second, unique keys).
static STAN: AtomicU32 = AtomicU32::new(0);

fn next_stan() -> u32 {
    STAN.fetch_add(1, Ordering::Relaxed) % 999_999 + 1
}

/// Seed the STAN counter from the clock so consecutive runs do not reuse keys.
pub fn seed_stan() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    STAN.store(nanos % 900_000, Ordering::Relaxed);
}

/// Build one request of the given type.
pub fn build_request(
    kind: TxnType,
    seq: u64,
    acquirer: InstId,
    switch_id: InstId,
    stan: u32,
) -> Result<bytes::Bytes, iso8583::EncodeError> {
    let now = chrono::Utc::now();
    let local = chrono::Local::now();
    let mut b = MessageBuilder::new(Mti::FINANCIAL_REQUEST, Header::new(switch_id, acquirer));
    // PANs spread over bundled BIN ranges of the demo issuer 03010000.
    let pan = match kind {
        TxnType::UnknownBin => format!("999999{:010}", seq % 10_000_000_000),
        TxnType::Installment => format!("625800{:010}", seq % 10_000_000_000),
        _ => format!("621483{:010}", seq % 10_000_000_000),
    };
    let amount = match kind {
        TxnType::PurchaseDeclined => DECLINED_AMOUNT,
        TxnType::Installment => 600_000,
        _ => 1_000 + i64::try_from(seq % 5_000).unwrap_or(0) * 3,
    };
    b.set(2, &pan)
        .set(
            3,
            if kind == TxnType::Balance {
                "300000"
            } else {
                "000000"
            },
        )
        .set(7, now.format("%m%d%H%M%S").to_string())
        .set_numeric(11, u64::from(stan))
        .set(12, local.format("%H%M%S").to_string())
        .set(13, local.format("%m%d").to_string())
        .set(18, "5411")
        .set(22, "051")
        .set(
            25,
            if kind == TxnType::Installment {
                "64"
            } else {
                "00"
            },
        )
        .set(32, acquirer.as_bytes())
        .set(33, acquirer.as_bytes())
        .set_text(37, &format!("{:012}", seq % 1_000_000_000_000))
        .set(41, "TERM0001")
        .set(42, "MERCHANT0000001")
        .set(49, "156")
        .set(60, "000005000300000");
    if kind != TxnType::Balance {
        b.set_numeric(4, u64::try_from(amount).unwrap_or(0));
    }
    if kind == TxnType::Installment {
        let ip = InstallmentRequest {
            periods: 6,
            project_code: InstallmentRequest::project_code_from("DEMO-PHONE"),
            fee_mode: FeeMode::Spread,
            fee_rate: 4_320,
            subsidy_rate: 1_000,
        };
        b.set(48, ip.encode());
    }
    b.build()
}

struct ConnResult {
    sent: u64,
    answered: u64,
    rejected: u64,
    by_code: BTreeMap<String, u64>,
    by_type: BTreeMap<TxnType, u64>,
    latency: Histogram<u64>,
}

async fn run_connection(
    spec: Arc<LoadSpec>,
    conn: usize,
    progress: Arc<AtomicU64>,
) -> anyhow::Result<ConnResult> {
    let acquirer = InstId::new(&spec.acquirer)
        .ok_or_else(|| anyhow::anyhow!("bad acquirer ID {}", spec.acquirer))?;
    let switch_id = InstId::new(&spec.switch_id)
        .ok_or_else(|| anyhow::anyhow!("bad switch ID {}", spec.switch_id))?;
    let stream = TcpStream::connect(spec.target).await?;
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, FrameCodec::default());
    let mut pending: HashMap<u32, (Instant, TxnType)> = HashMap::with_capacity(spec.window * 2);
    let mut res = ConnResult {
        sent: 0,
        answered: 0,
        rejected: 0,
        by_code: BTreeMap::new(),
        by_type: BTreeMap::new(),
        latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    let total = spec.requests_per_connection;
    while res.sent < total || !pending.is_empty() {
        while res.sent < total && pending.len() < spec.window {
            let seq = res.sent * spec.connections as u64 + conn as u64;
            let kind = TxnType::demo_mix(seq);
            let stan = next_stan();
            framed
                .feed(Frame::Message(build_request(
                    kind, seq, acquirer, switch_id, stan,
                )?))
                .await?;
            pending.insert(stan, (Instant::now(), kind));
            *res.by_type.entry(kind).or_default() += 1;
            res.sent += 1;
        }
        SinkExt::<Frame>::flush(&mut framed).await?;
        let frame = match tokio::time::timeout(spec.answer_timeout, framed.next()).await {
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) | Err(_) => break, // closed or nothing more: the rest is unanswered
        };
        let Frame::Message(raw) = frame else { continue };
        let (msg, rejected): (Option<Message>, bool) = match Packet::decode(raw) {
            Ok(Packet::Message(m)) => (Some(m), false),
            Ok(Packet::Reject { original, .. }) => (Message::decode(original).ok(), true),
            Err(_) => (None, false),
        };
        let Some(msg) = msg else { continue };
        if msg.mti().is_request() {
            continue;
        }
        let Some((sent_at, _)) = msg.stan().and_then(|s| pending.remove(&s)) else {
            continue;
        };
        let micros = u64::try_from(sent_at.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = res.latency.record(micros.min(60_000_000));
        res.answered += 1;
        progress.fetch_add(1, Ordering::Relaxed);
        if rejected {
            res.rejected += 1;
        } else {
            let code = msg
                .response_code()
                .map_or_else(|| "??".to_owned(), |c| c.to_string());
            *res.by_code.entry(code).or_default() += 1;
        }
    }
    Ok(res)
}

/// Run the load and collect the report. `on_progress` is called about every 200 ms with
/// the number answered so far.
pub async fn run(spec: LoadSpec, mut on_progress: impl FnMut(u64)) -> anyhow::Result<Report> {
    let spec = Arc::new(spec);
    let progress = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..spec.connections)
        .map(|c| tokio::spawn(run_connection(spec.clone(), c, progress.clone())))
        .collect();
    let all = futures::future::join_all(tasks);
    tokio::pin!(all);
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    let results = loop {
        tokio::select! {
            r = &mut all => break r,
            _ = ticker.tick() => on_progress(progress.load(Ordering::Relaxed)),
        }
    };
    let elapsed = started.elapsed();
    let mut report = Report {
        sent: 0,
        answered: 0,
        unanswered: 0,
        rejected: 0,
        elapsed,
        by_code: BTreeMap::new(),
        by_type: BTreeMap::new(),
        latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    for r in results {
        let r = r??;
        report.sent += r.sent;
        report.answered += r.answered;
        report.rejected += r.rejected;
        for (k, v) in r.by_code {
            *report.by_code.entry(k).or_default() += v;
        }
        for (k, v) in r.by_type {
            *report.by_type.entry(k).or_default() += v;
        }
        report.latency.add(&r.latency)?;
    }
    report.unanswered = report.sent - report.answered;
    Ok(report)
}

/// Print the report for people.
pub fn print_report(r: &Report) {
    println!(
        "sent {}  answered {}  unanswered {}  in {:.2} s  ({:.0} tx/s)",
        r.sent,
        r.answered,
        r.unanswered,
        r.elapsed.as_secs_f64(),
        r.throughput()
    );
    println!("by transaction:");
    for (k, v) in &r.by_type {
        println!("  {:<28} {v:>8}", k.label());
    }
    println!("by response code:");
    for (code, n) in &r.by_code {
        let meaning = iso8583::ResponseCode::parse(code.as_bytes())
            .and_then(iso8583::ResponseCode::meaning)
            .unwrap_or("");
        println!("  {code} {meaning:<45} {n:>8}");
    }
    if r.rejected > 0 {
        println!(
            "  rejects (header reject code)                     {:>8}",
            r.rejected
        );
    }
    let ms = |q: f64| r.latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        r.latency.max() as f64 / 1000.0
    );
}
