//! Starting and stopping the daemon: journal replay, listeners, the admin endpoint and
//! graceful shutdown. `switch run` and the integration tests both go through [`start`].

use crate::actors::acquirer::AcquirerLink;
use crate::actors::issuer::IssuerLink;
use crate::actors::route::{IssuerRouteActor, Requeue};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::journal::{FileJournal, JournalOptions};
use crate::records::SwitchRecord;
use crate::state::{IssuerRoute, Shared};
use actix::Actor;
use anyhow::Context as _;
use arc_swap::ArcSwap;
use dashmap::DashMap;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How the daemon is started beyond its configuration (tests inject a clock).
pub struct StartOptions {
    pub clock: SharedClock,
    /// Real-time period of the link timers (timeouts, echoes, keep-alives).
    pub tick_ms: u64,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            tick_ms: 50,
        }
    }
}

/// A running switch.
pub struct SwitchHandle {
    pub acquirer_addr: SocketAddr,
    pub issuer_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl SwitchHandle {
    /// Graceful shutdown: stop accepting, answer or time out everything in flight, flush the
    /// journal, stop the actors. Blocks until done.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join()
    }

    /// Wait until the switch stops by itself (signal).
    pub fn join(mut self) -> anyhow::Result<()> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => anyhow::bail!("switch thread panicked"),
            None => Ok(()),
        }
    }
}

fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let buckets = [
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            20.0, 30.0,
        ];
        let builder = PrometheusBuilder::new();
        let builder = builder
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Histogram samples queue in the recorder until they are folded into buckets: by a
        // scrape, or by upkeep. Without a scraper they would pile up (8 bytes a sample, about
        // one sample a transaction: 240 MB over 10 minutes at 50,000/s), so fold them every
        // few seconds whether or not anyone scrapes.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "metrics upkeep thread not started; histograms fold only when scraped");
        }
        // Another recorder may already be installed (several switches in one test process):
        // then this handle renders nothing, which is acceptable there.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Replay the journal: today's keys for duplicate detection, advices still unanswered.
/// An advice from the journal still waiting for its 0430: payload, reason, when queued.
type ReplayedAdvice = (bytes::Bytes, [u8; 4], i64);

/// The admission a journalled request had (replay repeats what the links did).
fn begin_of(
    req: &crate::records::RequestRecord,
    reservation: Option<crate::limits::Reservation>,
) -> crate::originals::Begin<'_> {
    crate::originals::Begin {
        kind: req.kind,
        amount: req.amount,
        pan: (!req.pan.is_empty()).then_some(req.pan.as_bytes()),
        terminal: (!req.terminal.is_empty()).then_some(req.terminal.as_bytes()),
        settlement_date: req.settlement_date,
        now_ms: req.received_ms,
        original: req.original,
        issuer: req.issuer.as_deref().and_then(iso8583::InstId::new),
        reservation,
        reason: [b'0'; 4],
        entered_at: None,
    }
}

/// Rebuild the day's state from the journal in `dir`, a record at a time (a busy day's
/// journal is gigabytes: it is streamed, never held in memory whole).
fn replay(
    shared: &Shared,
    dir: &std::path::Path,
    today: u32,
) -> Result<BTreeMap<(String, u32), ReplayedAdvice>, crate::journal::JournalError> {
    use crate::originals::RelatedRules;
    let mut advices = BTreeMap::new();
    // Requests by key until their outcome: the originals index is rebuilt by the same
    // begin/finish calls the links make, in journal order.
    let mut requests: HashMap<crate::core::TxnKey, crate::records::RequestRecord> = HashMap::new();
    let rules = RelatedRules::from(&shared.config.load().rules);
    let index = &shared.originals;
    let mut undecodable = 0u64;
    crate::journal::read_with(dir, |r| {
        match SwitchRecord::decode(r.kind, &r.payload) {
            Ok(Some(SwitchRecord::Request(req))) => {
                let entered_at = if req.settlement_date == today {
                    index
                        .enter_key(&req.key, req.kind, req.settlement_date)
                        .ok()
                        .flatten()
                } else {
                    None
                };
                // Forwarded requests were admitted: enter them as the links did.
                if let Some(stan) = req.issuer_stan {
                    let begin = crate::originals::Begin {
                        entered_at,
                        ..begin_of(&req, reservation_of(&req))
                    };
                    let _ = index.begin(req.key, &begin, &rules, &shared.limits);
                    index.forwarded(&req.key, stan);
                }
                requests.insert(req.key, req);
            }
            Ok(Some(SwitchRecord::Outcome(out))) => {
                let Some(req) = requests.remove(&out.key) else {
                    return;
                };
                let approved = out.code == *b"00";
                if req.kind == crate::core::TxnKind::Reversal {
                    if approved {
                        let _ = index.begin(req.key, &begin_of(&req, None), &rules, &shared.limits);
                    }
                    if req.settlement_date == today {
                        index.answer_reversal(req.key, iso8583::ResponseCode(out.code));
                    }
                } else if req.issuer_stan.is_some() {
                    index.finish(
                        &req.key,
                        req.kind,
                        req.original,
                        req.amount,
                        approved && out.reversal_reason.is_none(),
                        out.answered_ms,
                        &shared.limits,
                    );
                }
            }
            Ok(Some(SwitchRecord::Advice(a))) => {
                if let (Some(key), iso8583::subfields::reason::UNDELIVERABLE) =
                    (a.original, a.reason)
                {
                    index.reversed_by_switch(&key, &shared.limits);
                }
                advices.insert(
                    (a.issuer, a.advice_stan),
                    (bytes::Bytes::from(a.payload), a.reason, a.queued_ms),
                );
            }
            Ok(Some(SwitchRecord::AdviceDone(d))) => {
                advices.remove(&(d.issuer, d.advice_stan));
            }
            Ok(_) => {}
            Err(_) => undecodable += 1,
        }
    })?;
    // Daily limit usage: what today's approved transactions still hold.
    let usage = index.usage_of_day(today);
    if !usage.is_empty() {
        tracing::info!(
            transactions = usage.len(),
            "daily limit usage rebuilt from the journal"
        );
    }
    shared.limits.rebuild(usage);
    // Originals past every refund window can no longer be referred to.
    let pruned = index.prune_past(&rules, shared.clock.now_millis());
    tracing::info!(
        day_keys = index.len(),
        pruned,
        "day keys and originals rebuilt from the journal"
    );
    if undecodable > 0 {
        tracing::error!(
            undecodable,
            "journal records that could not be decoded were skipped"
        );
    }
    Ok(advices)
}

/// Start the switch on its own threads. Returns once every listener is bound.
pub fn start(config: Config, options: StartOptions) -> anyhow::Result<SwitchHandle> {
    let _ = prometheus();
    let durability = config.journal.durability;
    // Opening checks every record and cuts a torn tail; the records themselves are read
    // again, streamed, once the shared state exists (`replay`).
    let (journal, summary) = FileJournal::open_with(
        &config.journal.dir,
        JournalOptions {
            durability,
            zero_fill_ahead: config.journal.zero_fill_ahead,
            commit_interval: config.journal.commit_interval,
            busy_commit_interval: config.journal.busy_commit_interval,
            busy_batch_records: config.journal.busy_batch_records,
            slow_sync: config.journal.slow_sync,
            ..JournalOptions::default()
        },
        |_| {},
    )
    .with_context(|| format!("opening journal {}", config.journal.dir.display()))?;
    if summary.torn_records > 0 {
        tracing::warn!(
            torn = summary.torn_records,
            "journal had a torn last record; ignored"
        );
    }
    tracing::info!(
        records = summary.records,
        segments = summary.segments,
        "journal opened"
    );
    let journal_dir = config.journal.dir.clone();
    let switch_id = config.switch.id;
    let mut routes: HashMap<_, _, crate::FastHash> = HashMap::default();
    for inst in config.issuers() {
        let (id, Some(settings)) = (inst.id, inst.issuer.as_ref()) else {
            continue;
        };
        let timeout = i64::try_from(settings.timeout.as_millis()).unwrap_or(i64::MAX);
        routes.insert(
            id,
            Arc::new(IssuerRoute::new(id, timeout, settings.max_in_flight)),
        );
    }
    let listeners = config.listeners.clone();
    let arbiters = config.switch.arbiter_count();
    let day_capacity = config.switch.expected_daily_transactions;
    // Past `day_tables_memory` entries the day's tables keep the rest next to the journal.
    let spill = (config.switch.day_tables_memory > 0).then(|| crate::daytable::SpillTo {
        dir: config.journal.dir.join("daytables"),
        memory_entries: config.switch.day_tables_memory,
    });
    let originals = match &spill {
        None => crate::originals::OriginalIndex::with_capacity(day_capacity),
        Some(to) => {
            // Earlier versions kept the day's keys in a table of their own ("keys"): its
            // runs are not rebuilt any more, so they go rather than take disk for nothing.
            to.remove_runs("keys")
                .and_then(|()| {
                    crate::originals::OriginalIndex::spilling(to.capacity_for(day_capacity), to)
                })
                .with_context(|| format!("opening the day tables in {}", to.dir.display()))?
        }
    };
    if config.switch.reserve_day_tables {
        let started = std::time::Instant::now();
        let bytes = originals.reserve();
        metrics::gauge!("switch_day_tables_reserved_bytes").set(bytes as f64);
        tracing::info!(
            mib = bytes >> 20,
            ms = started.elapsed().as_millis() as u64,
            expected_daily_transactions = day_capacity,
            "day tables' memory reserved"
        );
    }
    let first_date =
        crate::cutover::clock_date(config.switch.settlement_cutover, options.clock.now_millis());
    let shared = Arc::new(Shared {
        config: ArcSwap::from_pointee(config),
        switch_id,
        clock: options.clock,
        journal: Arc::new(journal),
        routes,
        in_flight: AtomicUsize::new(0),
        draining: AtomicBool::new(false),
        limits: crate::limits::LimitCounters::new(),
        originals,
        day: crate::cutover::Day::new(first_date),
        acquirer_links: DashMap::new(),
        next_link_id: std::sync::atomic::AtomicU64::new(0),
        tick_ms: options.tick_ms,
    });
    start_prefault(&shared);
    let (today, _) = shared.settlement_now();
    let advices = replay(&shared, &journal_dir, today)
        .with_context(|| format!("replaying journal {}", journal_dir.display()))?;

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread_shared = shared.clone();
    let thread = std::thread::Builder::new().name("switch-system".into()).spawn(move || -> anyhow::Result<()> {
        let system = actix::System::new();
        system.block_on(async move {
            let shared = thread_shared;
            let bound = async {
                let acq = TcpListener::bind(listeners.acquirer).await.with_context(|| format!("binding acquirer listener {}", listeners.acquirer))?;
                let iss = TcpListener::bind(listeners.issuer).await.with_context(|| format!("binding issuer listener {}", listeners.issuer))?;
                let admin = TcpListener::bind(listeners.admin).await.with_context(|| format!("binding admin listener {}", listeners.admin))?;
                anyhow::Ok((acq, iss, admin))
            }
            .await;
            let (acq, iss, admin) = match bound {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            let addrs = (acq.local_addr()?, iss.local_addr()?, admin.local_addr()?);
            let workers: Vec<actix::ArbiterHandle> = (0..arbiters.max(1)).map(|_| actix::Arbiter::new().handle()).collect();
            for (i, w) in workers.iter().enumerate() {
                let index = u16::try_from(i).unwrap_or(crate::state::NO_WORKER);
                w.spawn(async move { crate::state::set_current_worker(index) });
            }
            // Route actors run on the workers too, spread by issuer: the advices they send
            // and the answers they get then mostly stay on one thread (`pick` prefers the
            // route's own worker), and the system thread is not woken for every reversal.
            let mut routes: Vec<&Arc<IssuerRoute>> = shared.routes.values().collect();
            routes.sort_by_key(|r| r.id);
            for (i, route) in routes.into_iter().enumerate() {
                let actor = IssuerRouteActor::new(shared.clone(), route.clone());
                let addr = match workers.get(i % workers.len().max(1)) {
                    Some(worker) => IssuerRouteActor::start_in_arbiter(worker, move |_| actor),
                    None => actor.start(),
                };
                let _ = route.actor.set(addr.clone());
                for ((issuer, stan), (payload, reason, queued_ms)) in &advices {
                    if issuer == &route.id.to_string() {
                        addr.do_send(Requeue {
                            stan: *stan,
                            payload: payload.clone(),
                            reason: *reason,
                            queued_ms: *queued_ms,
                        });
                    }
                }
            }
            crate::actors::cutover::CutoverTimer::new(shared.clone()).start();
            let max_conn = listeners.max_connections;
            let mut dialled = 0usize;
            for inst in shared.config.load().issuers() {
                let (id, Some(settings)) = (inst.id, inst.issuer.as_ref()) else { continue };
                let Some(route) = shared.route(&id).cloned() else { continue };
                for target in &settings.connect {
                    let Some(worker) = workers.get(dialled % workers.len().max(1)) else { continue };
                    dialled += 1;
                    worker.spawn(dial_loop(shared.clone(), route.clone(), target.clone(), settings.reconnect_min, settings.reconnect_max));
                }
            }
            let acq_task = actix::spawn(accept_loop(acq, shared.clone(), workers.clone(), max_conn, Side::Acquirer));
            let iss_task = actix::spawn(accept_loop(iss, shared.clone(), workers.clone(), max_conn, Side::Issuer));
            let admin_task = actix::spawn(crate::admin::serve(admin, shared.clone()));
            let _ = ready_tx.send(Ok(addrs));
            tracing::info!(acquirer = %addrs.0, issuer = %addrs.1, admin = %addrs.2, "switch running");

            let signal = async {
                #[cfg(unix)]
                {
                    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        () = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {},
                    }
                }
                #[cfg(not(unix))]
                let _ = tokio::signal::ctrl_c().await;
            };
            #[cfg(unix)]
            let hangups = {
                let shared = shared.clone();
                actix::spawn(async move {
                    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading configuration");
                        let _ = reload(&shared);
                    }
                })
            };
            tokio::select! {
                _ = stop_rx => {},
                () = signal => tracing::info!("signal received"),
            }
            #[cfg(unix)]
            hangups.abort();
            tracing::info!(in_flight = shared.in_flight.load(Ordering::Relaxed), "shutting down: no new links, draining in-flight transactions");
            shared.draining.store(true, Ordering::SeqCst);
            acq_task.abort();
            iss_task.abort();
            // Everything in flight is answered by its issuer or times out (injected clock).
            while shared.in_flight.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(shared.tick_ms.max(1))).await;
            }
            let journal = shared.journal.clone();
            let flushed = tokio::task::spawn_blocking(move || journal.flush_blocking()).await;
            // The flush ran the last answers' completions: they wait in the links'
            // outboxes. Each bound acquirer link writes out what it holds and closes; stop
            // once all have, or after DRAIN_WRITES_MS (a peer that no longer reads).
            for link in shared.acquirer_links.iter() {
                link.value().1.do_send(crate::actors::acquirer::Drain);
            }
            let give_up = shared.clock.now_millis() + DRAIN_WRITES_MS;
            while !shared.acquirer_links.is_empty() && shared.clock.now_millis() < give_up {
                tokio::time::sleep(Duration::from_millis(shared.tick_ms.max(1))).await;
            }
            if !shared.acquirer_links.is_empty() {
                tracing::warn!(links = shared.acquirer_links.len(), "shutting down: acquirer links still writing; closing them");
            }
            admin_task.abort();
            for w in &workers {
                w.stop();
            }
            actix::System::current().stop();
            match flushed {
                Ok(Ok(())) => {
                    tracing::info!("journal flushed; stopped");
                    Ok(())
                }
                Ok(Err(e)) => Err(anyhow::anyhow!("journal flush failed: {e}")),
                Err(e) => Err(anyhow::anyhow!("journal flush task failed: {e}")),
            }
        })
    })?;
    let (acquirer_addr, issuer_addr, admin_addr) = ready_rx
        .recv()
        .context("switch thread ended before binding")??;
    Ok(SwitchHandle {
        acquirer_addr,
        issuer_addr,
        admin_addr,
        shared,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// How long shutdown waits (by the switch's clock) for the acquirer links to write out
/// their last answers before it closes them anyway.
const DRAIN_WRITES_MS: i64 = 5_000;

/// Chunks each shard of the day's tables keeps ready ahead of its inserts, and how often
/// the background thread tops them up. Two chunks are 512 entries a shard: at 100,000
/// transactions a second over 64 shards, ~330 ms of inserts, against a 50 ms round.
const PREFAULT_AHEAD: usize = 2;
const PREFAULT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// The day tables' fresh memory is made resident on this thread, ahead of need
/// ([`crate::daytable::DayTable::prefault`]). It ends when the switch starts draining (or
/// is gone): a stopping switch takes no new transactions to make room for, and the thread
/// then holds no handle on it (its journal is closed by whoever drops the switch last, as
/// before). With `reserve_day_tables` everything is resident from the start and the rounds
/// find nothing to do.
fn start_prefault(shared: &Arc<Shared>) {
    let weak = Arc::downgrade(shared);
    let spawned = std::thread::Builder::new()
        .name("day-tables-prefault".into())
        .spawn(move || loop {
            let Some(shared) = weak.upgrade() else { return };
            if shared.draining.load(Ordering::Relaxed) {
                return;
            }
            let bytes = shared.originals.prefault(PREFAULT_AHEAD);
            if bytes > 0 {
                metrics::counter!("switch_day_tables_prefaulted_bytes_total")
                    .increment(bytes as u64);
            }
            drop(shared);
            std::thread::sleep(PREFAULT_EVERY);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "day tables' prefault thread not started; links take the page faults of the tables' growth");
    }
}

#[derive(Clone, Copy)]
enum Side {
    Acquirer,
    Issuer,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    workers: Vec<actix::ArbiterHandle>,
    max_conn: usize,
    side: Side,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut next = 0usize;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= max_conn {
            metrics::counter!("switch_links_refused_total", "reason" => "max_connections")
                .increment(1);
            tracing::warn!(%peer, "connection limit reached; refusing");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let Ok(std_stream) = stream.into_std() else {
            continue;
        };
        let shared = shared.clone();
        let open = open.clone();
        open.fetch_add(1, Ordering::Relaxed);
        let Some(worker) = workers.get(next % workers.len().max(1)) else {
            continue;
        };
        next = next.wrapping_add(1);
        // Each link lives on one worker arbiter (one per core); the stream is re-registered
        // with that arbiter's reactor.
        worker.spawn(async move {
            match tokio::net::TcpStream::from_std(std_stream) {
                Ok(stream) => match side {
                    Side::Acquirer => {
                        AcquirerLink::start(shared, stream, peer);
                    }
                    Side::Issuer => {
                        IssuerLink::start(shared, stream, peer);
                    }
                },
                Err(e) => tracing::warn!(error = %e, "could not register connection"),
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The Prometheus text of all metrics of this process.
#[must_use]
pub fn render_metrics() -> String {
    let mut text = prometheus().render();
    crate::latency::render_all(&mut text);
    text
}

/// Keep one link to an issuer that listens (`connect = "host:port"`): dial, run the link
/// until it ends, then dial again with exponential backoff, until shutdown.
async fn dial_loop(
    shared: Arc<Shared>,
    route: Arc<IssuerRoute>,
    target: String,
    min: Duration,
    max: Duration,
) {
    let mut backoff = min;
    while !shared.draining.load(Ordering::Relaxed) {
        match tokio::net::TcpStream::connect(&target).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let (tx, rx) = tokio::sync::oneshot::channel();
                if IssuerLink::start_dialled(shared.clone(), stream, peer, route.clone(), tx)
                    .is_none()
                {
                    tracing::warn!(issuer = %route.id, %target, "no free link slot for a dialled link");
                } else {
                    backoff = min;
                    let _ = rx.await;
                    metrics::counter!("switch_issuer_reconnects_total", "issuer" => route.id.to_string()).increment(1);
                }
            }
            Err(e) => {
                tracing::warn!(issuer = %route.id, %target, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot reach issuer");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max);
    }
}

/// The limit usage an approved request holds (SPEC.md section 9 rule 4), from its record.
fn reservation_of(req: &crate::records::RequestRecord) -> Option<crate::limits::Reservation> {
    Some(crate::limits::Reservation {
        terminal: crate::registry::TerminalId::from_field(req.terminal.as_bytes())?,
        merchant: crate::registry::MerchantId::from_field(req.merchant.as_bytes())?,
        category: crate::registry::TxnCategory::of(req.kind)?,
        amount: req.amount,
        day: req.settlement_date,
    })
}

/// Clearing of a closed settlement date, run on its own thread when a cut-over ends
/// (`[clearing] after_cutover`).
pub fn clear_after_cutover(cfg: &Config, date: u32) {
    tracing::info!(date, "clearing the closed settlement date");
    match crate::clearing::run(cfg, date, None) {
        Ok(summary) => {
            metrics::counter!("switch_clearing_runs_total", "result" => "ok").increment(1);
            tracing::info!(
                date,
                dir = %summary.dir.display(),
                files = summary.files.len(),
                "clearing written"
            );
        }
        Err(e) => {
            metrics::counter!("switch_clearing_runs_total", "result" => "error").increment(1);
            tracing::error!(date, error = %e, "clearing failed; run `switch clear --date` by hand");
        }
    }
}

/// Hot reload (SIGHUP, `POST /reload`): load and validate every file again into a new
/// snapshot and swap it in atomically; on any error keep the running snapshot and say why.
/// In-flight transactions and limit counters are untouched. Listeners, the switch ID and the
/// set of issuer routes are fixed at start: a change to them is refused (restart instead).
pub fn reload(shared: &Shared) -> Result<(), String> {
    let current = shared.config.load();
    let result = Config::load(&current.path)
        .map_err(|e| e.to_string())
        .and_then(|new| {
            if new.switch.id != current.switch.id {
                return Err(format!(
                    "{}: switch.id: cannot change without a restart",
                    current.path.display()
                ));
            }
            if new.listeners != current.listeners {
                return Err(format!(
                    "{}: listeners: cannot change without a restart",
                    current.path.display()
                ));
            }
            if let Some(added) = new.issuers().find(|i| shared.route(&i.id).is_none()) {
                return Err(format!(
                    "{}: institution {}: a new issuer needs a restart",
                    current.path.display(),
                    added.id
                ));
            }
            Ok(new)
        });
    match result {
        Ok(new) => {
            let (bins, institutions) = (new.bins.len(), new.institutions.len());
            shared.config.store(Arc::new(new));
            metrics::counter!("switch_config_reloads_total", "result" => "ok").increment(1);
            tracing::info!(bins, institutions, "configuration reloaded");
            Ok(())
        }
        Err(e) => {
            metrics::counter!("switch_config_reloads_total", "result" => "rejected").increment(1);
            tracing::error!(error = %e, "configuration reload rejected; keeping the running configuration");
            Err(e)
        }
    }
}
