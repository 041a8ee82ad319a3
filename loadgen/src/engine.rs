//! The traffic engine: N acquirer links to the switch, each sending on an open-loop schedule
//! (fixed rate, latency from the intended send instant) or closed loop (`window` in flight),
//! each request accounted for: answered (by response code or header reject) or unanswered
//! when the drain timeout at the end expires.
//!
//! Per link: a sender task (schedule, build, write) and a receiver task (read, match by
//! F11 + F7, record) sharing the link's pending table behind a mutex held for one insert or
//! remove.

use crate::catalog::Catalog;
use crate::mix::{Kind, Mix};
use crate::pacer::{Pacer, PacerHandle};
use crate::schedule::{Accounting, Schedule, SecondStats, Timeline};
use crate::txn::{self, match_key, OriginalPool, Sent, Stamp};
use futures::{SinkExt, StreamExt};
use iso8583::{Frame, FrameCodec, Message, Packet, RejectCode, ResponseCode};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Open loop: this many requests per second over all links.
    Fixed(f64),
    /// Closed loop: as fast as answers come back, `window` in flight per link.
    Max { window: usize },
}

/// Load parameters.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: SocketAddr,
    pub connections: usize,
    pub rate: Rate,
    /// Sending phase.
    pub duration: Duration,
    /// Stop after this many requests in all (closed loop; `None`: run for `duration`).
    pub max_requests: Option<u64>,
    pub mix: Mix,
    /// After the sending phase, wait this long for outstanding answers; what is still
    /// outstanding then is unanswered.
    pub drain_timeout: Duration,
    /// Approvals kept per link for voids, refunds and reversals.
    pub pool_per_link: usize,
    /// Open loop: send instants from a [`Pacer`] thread that wakes senders at most this
    /// often (`None`: tokio's timer, whose 1 ms slots make each send up to 1 ms late).
    pub pacer_tick: Option<Duration>,
}

/// Live counters, read by the progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub errors: AtomicU64,
}

/// What one link saw.
#[derive(Debug, Default)]
struct LinkResult {
    sent_by_kind: BTreeMap<Kind, u64>,
    answered: u64,
    rejected: u64,
    by_code: BTreeMap<String, u64>,
    by_kind_code: BTreeMap<(Kind, String), u64>,
    unanswered_by_kind: BTreeMap<Kind, u64>,
    unmatched: u64,
    errors: Vec<String>,
}

/// The outcome of a run: every request sent is answered or unanswered.
#[derive(Debug)]
pub struct Report {
    pub target: SocketAddr,
    pub connections: usize,
    pub rate: Rate,
    pub mix: String,
    pub sent: u64,
    pub answered: u64,
    pub unanswered: u64,
    /// Answered with a header reject (SPEC 3.2) instead of a response.
    pub rejected: u64,
    /// Responses that matched no outstanding request (not counted as answers).
    pub unmatched: u64,
    pub sent_by_kind: BTreeMap<Kind, u64>,
    pub by_code: BTreeMap<String, u64>,
    pub by_kind_code: BTreeMap<(Kind, String), u64>,
    pub unanswered_by_kind: BTreeMap<Kind, u64>,
    /// Sending phase (first intended send to the last send).
    pub send_elapsed: Duration,
    /// Whole run, drain included.
    pub elapsed: Duration,
    pub accounting: Accounting,
    /// Answers by second of the run, over every link.
    pub timeline: Vec<SecondStats>,
    pub errors: Vec<String>,
}

impl Report {
    /// Answers per second over the run up to the last answer... approximated by the sending
    /// phase when everything was answered during it.
    #[must_use]
    pub fn throughput(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Requests per second actually sent during the sending phase.
    #[must_use]
    pub fn send_rate(&self) -> f64 {
        self.sent as f64 / self.send_elapsed.as_secs_f64().max(1e-9)
    }
}

/// Unique STANs across every link of this process (with F7 per second: unique keys).
static STAN: AtomicU32 = AtomicU32::new(0);

/// Requests a link builds and writes in one go at most: a long burst (an open loop catching
/// up after a stall) goes out in writes of this many, not held back until all are built.
const TURN: u64 = 64;

/// `n` consecutive STANs taken from the counter in one step.
fn reserve_stans(n: u64) -> impl Iterator<Item = u32> {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    stans_from(STAN.fetch_add(n, Ordering::Relaxed), n)
}

/// The STANs (1..=999,999, wrapping) of counter values `first..first + n`.
fn stans_from(first: u32, n: u32) -> impl Iterator<Item = u32> {
    (0..n).map(move |i| first.wrapping_add(i) % 999_999 + 1)
}

/// Up to `wanted` requests from the run's budget (what is left if less).
fn take_budget(budget: &AtomicU64, wanted: u64) -> u64 {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
            (b > 0).then(|| b - b.min(wanted))
        })
        .map_or(0, |left| left.min(wanted))
}

/// Seed the STAN counter from the clock so consecutive runs do not reuse keys.
pub fn seed_stan() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    STAN.store(nanos % 900_000, Ordering::Relaxed);
}

type Pending = Arc<Mutex<HashMap<u64, Sent, switch::FastHash>>>;

/// How an answer ended, counted per link with a key that costs nothing to build; the
/// report's strings are made once per link at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answered {
    Code(Option<ResponseCode>),
    Reject(RejectCode),
}

impl Answered {
    fn label(&self) -> String {
        match self {
            Answered::Code(Some(c)) => c.to_string(),
            Answered::Code(None) => "??".to_owned(),
            Answered::Reject(r) => format!("reject {r}"),
        }
    }
}

/// Answers by kind and outcome: a handful of distinct keys per link, so a list searched
/// from the front (no hashing, no allocation per answer).
#[derive(Debug, Default)]
struct Tally(Vec<((Kind, Answered), u64)>);

impl Tally {
    fn add(&mut self, kind: Kind, answered: Answered) {
        match self
            .0
            .iter_mut()
            .find(|((k, a), _)| *k == kind && *a == answered)
        {
            Some((_, n)) => *n += 1,
            None => self.0.push(((kind, answered), 1)),
        }
    }

    fn into_result(self, result: &mut LinkResult) {
        for ((kind, answered), n) in self.0 {
            let label = answered.label();
            *result
                .by_kind_code
                .entry((kind, label.clone()))
                .or_default() += n;
            *result.by_code.entry(label).or_default() += n;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Link {
    spec: Arc<LoadSpec>,
    catalog: Arc<Catalog>,
    index: usize,
    start: Instant,
    live: Arc<Live>,
    /// Total requests left to send (closed loop with `max_requests`).
    budget: Arc<AtomicU64>,
    timeline: Arc<Timeline>,
    pacer: Option<PacerHandle>,
}

impl Link {
    fn ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    async fn run(self) -> (LinkResult, Accounting, u64) {
        let stream = match TcpStream::connect(self.spec.target).await {
            Ok(s) => s,
            Err(e) => {
                self.live.errors.fetch_add(1, Ordering::Relaxed);
                let result = LinkResult {
                    errors: vec![format!("link {}: connect: {e}", self.index)],
                    ..LinkResult::default()
                };
                return (result, Accounting::new(), 0);
            }
        };
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let reader = FramedRead::new(r, FrameCodec::default());
        let writer = FramedWrite::new(w, FrameCodec::default());
        // Sized for what the link has in flight (its window; the open loop starts there and
        // grows if it must). A table much larger than that spreads its few entries over
        // memory that is cold by the next lookup: 1,024 entries of 80 bytes on each of 64
        // links was ~10 MB, and its lookups were a tenth of loadgen's CPU.
        let in_flight = match self.spec.rate {
            Rate::Max { window } => window.max(1),
            Rate::Fixed(_) => 256,
        };
        let pending: Pending = Arc::new(Mutex::new(HashMap::with_capacity_and_hasher(
            in_flight,
            switch::FastHash::default(),
        )));
        // Approvals flow from the receiver to the sender's pool.
        let (approved_tx, approved_rx) = tokio::sync::mpsc::unbounded_channel();
        let (done_tx, done_rx) = watch::channel(false);
        let window = match self.spec.rate {
            Rate::Max { window } => Some(Arc::new(Semaphore::new(window.max(1)))),
            Rate::Fixed(_) => None,
        };
        let link = Arc::new(self);
        let sender = tokio::spawn(send_loop(
            Arc::clone(&link),
            writer,
            Arc::clone(&pending),
            approved_rx,
            window.clone(),
            done_tx,
        ));
        let (recv_result, recv_acc) = receive_loop(
            Arc::clone(&link),
            reader,
            Arc::clone(&pending),
            approved_tx,
            window,
            done_rx,
        )
        .await;
        let (sent_by_kind, send_acc, last_send_ns, send_error) = match sender.await {
            Ok(s) => s,
            Err(e) => (BTreeMap::new(), Accounting::new(), 0, Some(e.to_string())),
        };
        let mut result = recv_result;
        let mut acc = recv_acc;
        result.sent_by_kind = sent_by_kind;
        if let Some(e) = send_error {
            result
                .errors
                .push(format!("link {}: send: {e}", link.index));
        }
        // Whatever is still pending was never answered.
        for (_, s) in lock(&pending).drain() {
            *result.unanswered_by_kind.entry(s.kind).or_default() += 1;
        }
        let _ = acc.send_lag.add(&send_acc.send_lag);
        (result, acc, last_send_ns)
    }
}

type SendOutcome = (BTreeMap<Kind, u64>, Accounting, u64, Option<String>);

async fn send_loop(
    link: Arc<Link>,
    mut writer: FramedWrite<tokio::net::tcp::OwnedWriteHalf, FrameCodec>,
    pending: Pending,
    mut approved: tokio::sync::mpsc::UnboundedReceiver<txn::Original>,
    window: Option<Arc<Semaphore>>,
    done: watch::Sender<bool>,
) -> SendOutcome {
    let spec = &link.spec;
    let mut acc = Accounting::new();
    let mut sent_by_kind: BTreeMap<Kind, u64> = BTreeMap::new();
    let mut pool = OriginalPool::new(spec.pool_per_link);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed ^ link.index as u64);
    let mut stamp = Stamp::now();
    let mut builder = iso8583::MessageBuilder::new(
        iso8583::Mti::FINANCIAL_REQUEST,
        iso8583::Header::new(link.catalog.switch_id, link.catalog.acquirer),
    );
    let duration_ns = u64::try_from(spec.duration.as_nanos()).unwrap_or(u64::MAX);
    let schedule = match spec.rate {
        Rate::Fixed(rate) => Some(Schedule::for_connection(
            rate,
            duration_ns,
            spec.connections,
            link.index,
        )),
        Rate::Max { .. } => None,
    };
    let mut next: u64 = 0;
    let mut batch: Vec<(txn::Built, u64)> = Vec::new();
    let mut last_send_ns = 0;
    let mut error = None;
    // Closed loop: window slots taken and not yet used (a turn sends at most `TURN`; the
    // rest go in the next turns before another slot is waited for).
    let mut slots_to: u64 = 0;
    loop {
        // How many may go now (all requests below `due`).
        let now = link.ns();
        let due = match (&schedule, &window) {
            (Some(s), _) => {
                if next >= s.count {
                    break;
                }
                let due = s.due_by(now);
                if due <= next {
                    let wake = link.start + Duration::from_nanos(s.intended(next));
                    match &link.pacer {
                        Some(p) => p.sleep_until(wake).await,
                        None => tokio::time::sleep_until(wake.into()).await,
                    }
                    continue;
                }
                due
            }
            (None, Some(_)) if next < slots_to => slots_to,
            (None, Some(sem)) => {
                if now >= duration_ns {
                    break;
                }
                // Wait for a window slot (an answer), then take every free slot.
                let end = link.start + spec.duration;
                let Ok(Ok(permit)) = tokio::time::timeout_at(end.into(), sem.acquire()).await
                else {
                    break;
                };
                permit.forget();
                let mut n = 1;
                while let Ok(p) = sem.try_acquire() {
                    p.forget();
                    n += 1;
                }
                slots_to = next + n;
                slots_to
            }
            (None, None) => break,
        };
        while let Ok(o) = approved.try_recv() {
            pool.push(o);
        }
        stamp.refresh();
        // The turn's requests are built first, then entered in the pending table under one
        // lock and written: what the link shares with its receiver and the other links (the
        // table's lock, the STAN counter, the budget, the live counts) is touched once a turn,
        // not once a request. Nothing is on the socket before its entry is in the table.
        let wanted = (due - next).min(TURN);
        let granted = take_budget(&link.budget, wanted);
        // When the turn began: its send lag is counted to here, and in a closed loop its
        // latency from here (the turn's building, a few microseconds a request, included).
        let send_ns = link.ns();
        batch.clear();
        for stan in reserve_stans(granted) {
            let intended = schedule.map_or(send_ns, |s| s.intended(next));
            let kind = spec.mix.pick(rng.gen());
            let built = match txn::build(
                &mut builder,
                kind,
                &link.catalog,
                &mut pool,
                &stamp,
                stan,
                next,
                &mut rng,
            ) {
                Ok(b) => b,
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            };
            batch.push((built, intended));
            next += 1;
        }
        {
            let mut table = lock(&pending);
            for (built, intended) in &batch {
                table.insert(
                    built.key,
                    Sent {
                        kind: built.kind,
                        intended_ns: *intended,
                        original: built.original,
                    },
                );
            }
        }
        let mut fed = 0usize;
        for (built, intended) in &mut batch {
            // Taken, not cloned: a clone of a `Bytes` made from a `Vec` allocates.
            let bytes = std::mem::take(&mut built.bytes);
            if let Err(e) = writer.feed(Frame::Message(bytes)).await {
                error = Some(e.to_string());
                break;
            }
            acc.sent(*intended, send_ns);
            *sent_by_kind.entry(built.kind).or_default() += 1;
            fed += 1;
        }
        if fed < batch.len() {
            // Not sent: out of the table again, so they count neither sent nor unanswered.
            let mut table = lock(&pending);
            for (built, _) in &batch[fed..] {
                table.remove(&built.key);
            }
        }
        if fed > 0 {
            link.live.sent.fetch_add(fed as u64, Ordering::Relaxed);
            last_send_ns = send_ns;
        }
        if error.is_some() || granted < wanted {
            break;
        }
        if let Err(e) = SinkExt::<Frame>::flush(&mut writer).await {
            error = Some(e.to_string());
            break;
        }
    }
    let _ = SinkExt::<Frame>::flush(&mut writer).await;
    if error.is_some() {
        link.live.errors.fetch_add(1, Ordering::Relaxed);
    }
    let _ = done.send(true);
    // Keep the write half open until the receiver is done (closing it would end the link).
    done.closed().await;
    drop(writer);
    (sent_by_kind, acc, last_send_ns, error)
}

async fn receive_loop(
    link: Arc<Link>,
    mut reader: FramedRead<tokio::net::tcp::OwnedReadHalf, FrameCodec>,
    pending: Pending,
    approved: tokio::sync::mpsc::UnboundedSender<txn::Original>,
    window: Option<Arc<Semaphore>>,
    mut done: watch::Receiver<bool>,
) -> (LinkResult, Accounting) {
    let mut result = LinkResult::default();
    let mut tally = Tally::default();
    let mut acc = Accounting::new();
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        if drain_deadline.is_some() && lock(&pending).is_empty() {
            break;
        }
        let frame = tokio::select! {
            f = reader.next() => f,
            r = done.changed(), if drain_deadline.is_none() => {
                if r.is_err() || *done.borrow() {
                    drain_deadline = Some(tokio::time::Instant::now() + link.spec.drain_timeout);
                }
                continue;
            }
            () = sleep_until_opt(drain_deadline) => break,
        };
        let raw = match frame {
            Some(Ok(Frame::Message(raw))) => raw,
            Some(Ok(Frame::KeepAlive)) => continue,
            Some(Err(e)) => {
                link.live.errors.fetch_add(1, Ordering::Relaxed);
                result
                    .errors
                    .push(format!("link {}: read: {e}", link.index));
                break;
            }
            None => {
                if drain_deadline.is_none() || !lock(&pending).is_empty() {
                    link.live.errors.fetch_add(1, Ordering::Relaxed);
                    result
                        .errors
                        .push(format!("link {}: closed by the switch", link.index));
                }
                break;
            }
        };
        let now = link.ns();
        let (msg, reject) = match Packet::decode(raw) {
            Ok(Packet::Message(m)) => (Some(m), None),
            Ok(Packet::Reject { header, original }) => {
                (Message::decode(original).ok(), Some(header.reject))
            }
            Err(_) => (None, None),
        };
        let rejected = reject.is_some();
        let Some(msg) = msg else {
            result.unmatched += 1;
            continue;
        };
        if !rejected && msg.mti().is_request() {
            continue; // an echo from the switch: nothing loadgen needs to answer
        }
        let key = match (msg.stan(), msg.numeric(7)) {
            (Some(stan), Some(f7)) => match_key(stan, f7),
            _ => {
                result.unmatched += 1;
                continue;
            }
        };
        let Some(sent) = lock(&pending).remove(&key) else {
            result.unmatched += 1;
            continue;
        };
        if let Some(w) = &window {
            w.add_permits(1);
        }
        let us = acc.answered(sent.intended_ns, now);
        link.timeline.record(now, us);
        result.answered += 1;
        link.live.answered.fetch_add(1, Ordering::Relaxed);
        let answer = if let Some(r) = reject {
            result.rejected += 1;
            Answered::Reject(r)
        } else {
            Answered::Code(msg.response_code())
        };
        if answer == Answered::Code(Some(ResponseCode::APPROVED)) {
            if let Some(o) = sent.original {
                let _ = approved.send(o);
            }
        }
        tally.add(sent.kind, answer);
    }
    tally.into_result(&mut result);
    (result, acc)
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Run the load and collect the report. `on_tick` is called once a second with the live
/// counters and the seconds elapsed (for a progress line).
pub async fn run(
    spec: LoadSpec,
    catalog: Arc<Catalog>,
    mut on_tick: impl FnMut(&Live, u64),
) -> Report {
    let spec = Arc::new(spec);
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let budget = Arc::new(AtomicU64::new(spec.max_requests.unwrap_or(u64::MAX)));
    let timeline = Arc::new(Timeline::default());
    // Kept until every link is done (dropping it ends the thread).
    let pacer = match (spec.rate, spec.pacer_tick) {
        (Rate::Fixed(_), Some(tick)) => match Pacer::start(tick) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "no pacer thread: sends keep tokio's 1 ms timer");
                None
            }
        },
        _ => None,
    };
    let tasks: Vec<_> = (0..spec.connections)
        .map(|index| {
            let link = Link {
                spec: Arc::clone(&spec),
                catalog: Arc::clone(&catalog),
                index,
                start,
                live: Arc::clone(&live),
                budget: Arc::clone(&budget),
                timeline: Arc::clone(&timeline),
                pacer: pacer.as_ref().map(Pacer::handle),
            };
            tokio::spawn(link.run())
        })
        .collect();
    let all = futures::future::join_all(tasks);
    tokio::pin!(all);
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut seconds = 0;
    let results = loop {
        tokio::select! {
            r = &mut all => break r,
            _ = ticker.tick() => {
                seconds += 1;
                on_tick(&live, seconds);
            }
        }
    };
    let elapsed = start.elapsed();
    let mut report = Report {
        target: spec.target,
        connections: spec.connections,
        rate: spec.rate,
        mix: spec.mix.to_string(),
        sent: 0,
        answered: 0,
        unanswered: 0,
        rejected: 0,
        unmatched: 0,
        sent_by_kind: BTreeMap::new(),
        by_code: BTreeMap::new(),
        by_kind_code: BTreeMap::new(),
        unanswered_by_kind: BTreeMap::new(),
        send_elapsed: Duration::ZERO,
        elapsed,
        accounting: Accounting::new(),
        timeline: timeline.seconds(),
        errors: Vec::new(),
    };
    let mut last_send = 0u64;
    for r in results {
        let (r, acc, last) = match r {
            Ok(x) => x,
            Err(e) => {
                report.errors.push(format!("link task failed: {e}"));
                continue;
            }
        };
        last_send = last_send.max(last);
        for (k, v) in r.sent_by_kind {
            report.sent += v;
            *report.sent_by_kind.entry(k).or_default() += v;
        }
        report.answered += r.answered;
        report.rejected += r.rejected;
        report.unmatched += r.unmatched;
        for (k, v) in r.by_code {
            *report.by_code.entry(k).or_default() += v;
        }
        for (k, v) in r.by_kind_code {
            *report.by_kind_code.entry(k).or_default() += v;
        }
        for (k, v) in r.unanswered_by_kind {
            report.unanswered += v;
            *report.unanswered_by_kind.entry(k).or_default() += v;
        }
        report.errors.extend(r.errors);
        report.accounting.merge(&acc);
    }
    report.send_elapsed = Duration::from_nanos(last_send.max(1));
    report
}

/// Whether stderr is a terminal (the progress line is only drawn there).
#[must_use]
pub fn stderr_is_tty() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal()
}

/// A progress printer for [`run`]'s `on_tick`: rate over the last second, in flight,
/// answered, errors, on one rewritten stderr line.
pub fn progress_line() -> impl FnMut(&Live, u64) {
    let mut last_answered = 0u64;
    let mut last_sent = 0u64;
    move |live: &Live, secs: u64| {
        let sent = live.sent.load(Ordering::Relaxed);
        let answered = live.answered.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        eprint!(
            "\r[{secs:>4} s] sent {:>7}/s  answered {:>7}/s  in flight {:>6}  answered {:>10}  errors {errors}   ",
            sent - last_sent,
            answered - last_answered,
            sent.saturating_sub(answered),
            answered,
        );
        last_sent = sent;
        last_answered = answered;
    }
}

/// Was anything unanswered, failed or unmatched?
#[must_use]
pub fn clean(report: &Report) -> bool {
    report.unanswered == 0 && report.errors.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A turn takes what it wants from the budget, or what is left; an empty budget gives
    /// nothing (and stays empty).
    #[test]
    fn a_turn_takes_up_to_what_is_left_of_the_budget() {
        let budget = AtomicU64::new(100);
        assert_eq!(take_budget(&budget, 64), 64);
        assert_eq!(budget.load(Ordering::Relaxed), 36);
        assert_eq!(take_budget(&budget, 64), 36);
        assert_eq!(take_budget(&budget, 64), 0);
        assert_eq!(budget.load(Ordering::Relaxed), 0);
        let endless = AtomicU64::new(u64::MAX);
        assert_eq!(take_budget(&endless, 64), 64);
    }

    /// A turn's STANs are consecutive, 1 to 999,999, and wrap past the top (and past the
    /// counter's own end) without a zero.
    #[test]
    fn a_turns_stans_run_on_and_wrap_to_one() {
        assert_eq!(stans_from(0, 3).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            stans_from(999_996, 4).collect::<Vec<_>>(),
            [999_997, 999_998, 999_999, 1]
        );
        let across = stans_from(u32::MAX, 2).collect::<Vec<_>>();
        assert_eq!(across, [u32::MAX % 999_999 + 1, 1]);
        assert!(stans_from(u32::MAX - 5, 10).all(|s| (1..=999_999).contains(&s)));
    }

    #[test]
    fn a_tally_counts_by_kind_and_outcome_under_the_report_labels() {
        let mut t = Tally::default();
        t.add(Kind::Purchase, Answered::Code(Some(ResponseCode::APPROVED)));
        t.add(Kind::Purchase, Answered::Code(Some(ResponseCode::APPROVED)));
        t.add(Kind::Void, Answered::Code(Some(ResponseCode::APPROVED)));
        t.add(Kind::Purchase, Answered::Code(Some(ResponseCode(*b"51"))));
        t.add(Kind::Balance, Answered::Code(None));
        t.add(Kind::Purchase, Answered::Reject(RejectCode(*b"10045")));
        let mut r = LinkResult::default();
        r.by_code.insert("00".to_owned(), 10);
        t.into_result(&mut r);
        let by_code: Vec<_> = r.by_code.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            by_code,
            [("00", 13), ("51", 1), ("??", 1), ("reject 10045", 1)]
        );
        assert_eq!(
            r.by_kind_code.get(&(Kind::Purchase, "00".to_owned())),
            Some(&2)
        );
        assert_eq!(r.by_kind_code.get(&(Kind::Void, "00".to_owned())), Some(&1));
        assert_eq!(r.by_kind_code.len(), 5);
    }
}
