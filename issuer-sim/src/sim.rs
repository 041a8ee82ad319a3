//! The network side: links to the switch, sign-on/sign-off, one reader and one writer task
//! per link, redialling dropped links (dial mode), and carrying out the behaviour knobs'
//! delivery plans (delays, late answers, cut links, answers on another link).

use crate::accounts::Ledger;
use crate::answer::{answer_with, Outcome};
use crate::knobs::plan_delivery;
use crate::{IssuerSimConfig, Rules, Stats};
use anyhow::{anyhow, bail, Context};
use arc_swap::ArcSwap;
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use iso8583::{mask_pan, Frame, FrameCodec, Header, InstId, Message, MessageBuilder, Mti, Packet};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Outgoing queue depth per link.
const OUT_QUEUE: usize = 4096;
/// Most immediate answers handed to a link's writer at once (see `read_loop`).
const ANSWER_BATCH: usize = 256;
/// Capacity of the [`IssuerSim::subscribe`] tap.
const TAP_CAPACITY: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The current local time as F7 `MMDDhhmmss`.
#[must_use]
pub(crate) fn now_mmddhhmmss() -> [u8; 10] {
    let text = chrono::Local::now().format("%m%d%H%M%S").to_string();
    text.as_bytes().try_into().unwrap_or(*b"0101000000")
}

fn six_digits(n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    let mut v = n;
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    approved: AtomicU64,
    declined: AtomicU64,
    echoes: AtomicU64,
    reversals: AtomicU64,
    unanswered: AtomicU64,
    decode_errors: AtomicU64,
    late: AtomicU64,
    other_link: AtomicU64,
    disconnects: AtomicU64,
    reconnects: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

enum Out {
    Frame(Frame),
    /// Answers to requests that arrived together, written in this order.
    Batch(Vec<Bytes>),
    /// Flush, shut the write side down and end the writer.
    Close,
}

struct Link {
    id: usize,
    peer: SocketAddr,
    out: mpsc::Sender<Out>,
    /// Network requests this side sent (sign-on, sign-off), by F11.
    pending: Mutex<HashMap<[u8; 6], oneshot::Sender<Message>>>,
    signed_on: AtomicBool,
    /// Financial requests received on this link (the `disconnect_after` knob counts them).
    requests: AtomicU64,
    /// Set when the link has ended (read loop over or aborted): the redialler waits on it.
    ended: watch::Sender<bool>,
    reader: Mutex<Option<JoinHandle<()>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Link {
    async fn wait_ended(&self) {
        let mut rx = self.ended.subscribe();
        let _ = rx.wait_for(|ended| *ended).await;
    }

    /// Route an `0830` (or other response) to the network request waiting for it.
    fn complete(&self, msg: Message) {
        let mut pending = lock(&self.pending);
        let waiter = match msg.field(11).and_then(|v| <[u8; 6]>::try_from(v).ok()) {
            Some(stan) => pending.remove(&stan),
            None if pending.len() == 1 => pending.drain().next().map(|(_, tx)| tx),
            None => None,
        };
        drop(pending);
        match waiter {
            Some(tx) => {
                let _ = tx.send(msg);
            }
            None => {
                tracing::debug!(link = self.id, mti = %msg.mti(), "response to nothing pending; dropped")
            }
        }
    }

    fn abort(&self) {
        if let Some(r) = lock(&self.reader).take() {
            r.abort();
        }
        if let Some(w) = lock(&self.writer).take() {
            w.abort();
        }
    }

    /// Flush what is queued, close the write side, stop reading.
    async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.out.send(Out::Close)).await;
        let writer = lock(&self.writer).take();
        if let Some(mut w) = writer {
            if tokio::time::timeout(Duration::from_secs(1), &mut w)
                .await
                .is_err()
            {
                w.abort();
            }
        }
        if let Some(r) = lock(&self.reader).take() {
            r.abort();
        }
    }
}

struct Shared {
    institution: InstId,
    switch_id: InstId,
    rules: ArcSwap<Rules>,
    behaviour: crate::Behaviour,
    counters: Counters,
    stan: AtomicU32,
    auth: AtomicU32,
    tap: broadcast::Sender<Message>,
    links: Mutex<Vec<Arc<Link>>>,
    next_link: AtomicUsize,
    signed_on: watch::Sender<usize>,
    /// Card accounts (`None`: stateless answers from the rules).
    ledger: Option<Ledger>,
    /// Bumped by `disconnect_all` and `shutdown`: rediallers of an older generation stop.
    generation: AtomicU64,
    /// Round-robin cursor for answers sent on another link.
    other_cursor: AtomicUsize,
}

/// Marks a link ended and forgets it when its read loop ends or is aborted.
struct EndGuard {
    shared: Arc<Shared>,
    link: Arc<Link>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.shared.drop_link(&self.link);
        self.link.ended.send_replace(true);
    }
}

impl Shared {
    fn next_stan(&self) -> u32 {
        self.stan.fetch_add(1, Ordering::Relaxed) % 999_999 + 1
    }

    fn next_auth_code(&self) -> [u8; 6] {
        six_digits(self.auth.fetch_add(1, Ordering::Relaxed) % 1_000_000)
    }

    fn count(&self, mti: Mti, outcome: Outcome) {
        let c = &self.counters;
        match mti.class() {
            1 | 2 => inc(&c.requests),
            4 => inc(&c.reversals),
            _ => {}
        }
        match outcome {
            Outcome::Approved => inc(&c.approved),
            Outcome::Declined(_) => inc(&c.declined),
            Outcome::Network => inc(&c.echoes),
            Outcome::Unanswered => inc(&c.unanswered),
            Outcome::Reversal | Outcome::Ignored => {}
        }
    }

    fn mark_signed_on(&self, link: &Link, on: bool) {
        if link.signed_on.swap(on, Ordering::AcqRel) != on {
            self.signed_on
                .send_modify(|n| *n = if on { *n + 1 } else { n.saturating_sub(1) });
        }
    }

    /// Forget a link that ended (or was cut).
    fn drop_link(&self, link: &Link) {
        lock(&self.links).retain(|l| l.id != link.id);
        self.mark_signed_on(link, false);
        lock(&link.pending).clear();
    }

    fn take_links(&self) -> Vec<Arc<Link>> {
        std::mem::take(&mut *lock(&self.links))
    }

    /// A signed-on link other than `not` (round robin), for the `other_link_rate` knob.
    fn other_link(&self, not: usize) -> Option<Arc<Link>> {
        let links = lock(&self.links);
        let candidates: Vec<&Arc<Link>> = links
            .iter()
            .filter(|l| l.id != not && l.signed_on.load(Ordering::Acquire))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let at = self.other_cursor.fetch_add(1, Ordering::Relaxed) % candidates.len();
        candidates.get(at).map(|l| Arc::clone(l))
    }

    fn open_link(self: &Arc<Self>, stream: TcpStream) -> Arc<Link> {
        let _ = stream.set_nodelay(true);
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (read, write) = stream.into_split();
        let codec = FrameCodec::new(self.behaviour.max_frame);
        let (tx, rx) = mpsc::channel(OUT_QUEUE);
        let link = Arc::new(Link {
            id: self.next_link.fetch_add(1, Ordering::Relaxed),
            peer,
            out: tx,
            pending: Mutex::new(HashMap::new()),
            signed_on: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            ended: watch::channel(false).0,
            reader: Mutex::new(None),
            writer: Mutex::new(None),
        });
        lock(&self.links).push(Arc::clone(&link));
        let writer = tokio::spawn(write_loop(
            FramedWrite::new(write, codec),
            rx,
            self.behaviour.keepalive,
        ));
        let reader = tokio::spawn(read_loop(
            Arc::clone(self),
            Arc::clone(&link),
            FramedRead::new(read, codec),
        ));
        *lock(&link.writer) = Some(writer);
        *lock(&link.reader) = Some(reader);
        tracing::info!(link = link.id, peer = %peer, institution = %self.institution, "link open");
        link
    }

    /// Send an `0820` with this F70 on `link` and wait for its `0830 00`.
    async fn network(&self, link: &Link, code: u16) -> anyhow::Result<()> {
        let stan = six_digits(self.next_stan());
        let mut b = MessageBuilder::new(
            Mti::NETWORK_REQUEST,
            Header::new(self.switch_id, self.institution),
        );
        b.set(7, now_mmddhhmmss())
            .set(11, stan)
            .set(33, self.institution.as_bytes())
            .set_numeric(70, u64::from(code));
        let raw = b.build()?;
        let (tx, rx) = oneshot::channel();
        lock(&link.pending).insert(stan, tx);
        link.out
            .send(Out::Frame(Frame::Message(raw)))
            .await
            .map_err(|_| anyhow!("link {} to {} is closed", link.id, link.peer))?;
        let wait = self.behaviour.sign_on_timeout;
        let resp = match tokio::time::timeout(wait, rx).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(_)) => bail!(
                "link {} closed before the 0830 to 0820/{code:03} arrived",
                link.id
            ),
            Err(_) => {
                lock(&link.pending).remove(&stan);
                bail!(
                    "no 0830 to 0820/{code:03} on link {} within {wait:?}",
                    link.id
                )
            }
        };
        match resp.response_code() {
            Some(rc) if rc.is_approved() => Ok(()),
            Some(rc) => bail!("0820/{code:03} on link {} answered {rc}", link.id),
            None => bail!("0830 to 0820/{code:03} on link {} has no F39", link.id),
        }
    }

    async fn sign_on(&self, link: &Link) -> anyhow::Result<()> {
        self.network(link, 1).await?;
        self.mark_signed_on(link, true);
        tracing::info!(link = link.id, institution = %self.institution, "signed on");
        Ok(())
    }

    async fn sign_off(&self, link: &Link) -> anyhow::Result<()> {
        self.mark_signed_on(link, false);
        self.network(link, 2).await?;
        tracing::info!(link = link.id, institution = %self.institution, "signed off");
        Ok(())
    }
}

async fn write_loop(
    mut sink: FramedWrite<OwnedWriteHalf, FrameCodec>,
    mut rx: mpsc::Receiver<Out>,
    keepalive: Option<Duration>,
) {
    loop {
        let first = match keepalive {
            Some(idle) => match tokio::time::timeout(idle, rx.recv()).await {
                Ok(item) => item,
                Err(_) => Some(Out::Frame(Frame::KeepAlive)),
            },
            None => rx.recv().await,
        };
        let Some(mut item) = first else { break };
        // Batch whatever is already queued into one flush.
        loop {
            match item {
                Out::Frame(frame) => {
                    if let Err(e) = sink.feed(frame).await {
                        tracing::warn!(error = %e, "write failed; closing link");
                        return;
                    }
                }
                Out::Batch(answers) => {
                    for raw in answers {
                        if let Err(e) = sink.feed(Frame::Message(raw)).await {
                            tracing::warn!(error = %e, "write failed; closing link");
                            return;
                        }
                    }
                }
                Out::Close => {
                    let _ = SinkExt::<Frame>::close(&mut sink).await;
                    return;
                }
            }
            match rx.try_recv() {
                Ok(next) => item = next,
                Err(_) => break,
            }
        }
        if let Err(e) = SinkExt::<Frame>::flush(&mut sink).await {
            tracing::warn!(error = %e, "write failed; closing link");
            return;
        }
    }
    let _ = SinkExt::<Frame>::close(&mut sink).await;
}

async fn read_loop(
    shared: Arc<Shared>,
    link: Arc<Link>,
    mut stream: FramedRead<OwnedReadHalf, FrameCodec>,
) {
    let _guard = EndGuard {
        shared: Arc::clone(&shared),
        link: Arc::clone(&link),
    };
    let mut rng = SmallRng::from_entropy();
    // Immediate answers to the requests already read, handed to the writer in one go when
    // no further request is ready (or ANSWER_BATCH are waiting): one channel send and one
    // writer wake-up per burst instead of per request, in the order the requests came.
    let mut answers: Vec<Bytes> = Vec::new();
    loop {
        let item = match stream.next().now_or_never() {
            Some(item) if answers.len() < ANSWER_BATCH => item,
            ready => {
                if !answers.is_empty() {
                    // The next burst's vector is sized like this one: one allocation a
                    // burst, not a few as it grows.
                    let room = answers.len();
                    let batch = std::mem::replace(&mut answers, Vec::with_capacity(room));
                    if link.out.send(Out::Batch(batch)).await.is_err() {
                        break;
                    }
                }
                match ready {
                    Some(item) => item,
                    None => stream.next().await,
                }
            }
        };
        let Some(item) = item else { break };
        let raw = match item {
            Ok(Frame::KeepAlive) => continue,
            Ok(Frame::Message(raw)) => raw,
            Err(e) => {
                tracing::warn!(link = link.id, error = %e, "framing error; closing link");
                break;
            }
        };
        let msg = match Packet::decode(raw) {
            Ok(Packet::Message(m)) => m,
            Ok(Packet::Reject { header, .. }) => {
                inc(&shared.counters.decode_errors);
                tracing::warn!(link = link.id, reject = %header.reject, "the switch rejected a message");
                continue;
            }
            Err(e) => {
                inc(&shared.counters.decode_errors);
                tracing::warn!(link = link.id, error = %e, "undecodable message; dropped");
                continue;
            }
        };
        if msg.mti().is_response() {
            link.complete(msg);
            continue;
        }
        if shared.tap.receiver_count() > 0 {
            let _ = shared.tap.send(msg.clone());
        }
        let rules = shared.rules.load();
        let financial = matches!(msg.mti().class(), 1 | 2);
        let delivery = financial.then(|| {
            let nth = link.requests.fetch_add(1, Ordering::Relaxed) + 1;
            plan_delivery(&rules, nth, &mut rng)
        });
        if delivery.is_some_and(|d| d.disconnect) {
            inc(&shared.counters.requests);
            inc(&shared.counters.unanswered);
            inc(&shared.counters.disconnects);
            tracing::info!(link = link.id, "cutting the link (behaviour knob)");
            if let Some(w) = lock(&link.writer).take() {
                w.abort();
            }
            // Cut means cut: what was not written yet is lost with the link.
            answers.clear();
            break;
        }
        let roll = if rules.drop_rate > 0.0 {
            rng.gen::<f64>()
        } else {
            1.0
        };
        let a = answer_with(
            &msg,
            &rules,
            &shared.behaviour,
            shared.ledger.as_ref(),
            shared.next_auth_code(),
            roll,
        );
        shared.count(msg.mti(), a.outcome);
        let Some(resp) = a.response else {
            tracing::debug!(link = link.id, mti = %msg.mti(), stan = ?msg.stan(), "not answered (by design)");
            continue;
        };
        let bytes = match resp.build(&msg) {
            Ok(b) => b,
            Err(e) => {
                let pan = msg.pan().map(mask_pan);
                tracing::warn!(link = link.id, mti = %msg.mti(), pan = ?pan, error = %e, "cannot build the answer");
                continue;
            }
        };
        let mut delay = a.delay;
        let mut out = None;
        if let Some(d) = delivery {
            delay = d.delay;
            if d.late {
                inc(&shared.counters.late);
            }
            if d.other_link {
                out = shared.other_link(link.id).map(|l| {
                    inc(&shared.counters.other_link);
                    l.out.clone()
                });
            }
        }
        if delay.is_zero() && out.is_none() {
            answers.push(bytes);
        } else {
            let frame = Out::Frame(Frame::Message(bytes));
            let out = out.unwrap_or_else(|| link.out.clone());
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let _ = out.send(frame).await;
            });
        }
    }
    // Answers to requests read before the link ended still go out if the writer is up.
    if !answers.is_empty() {
        let _ = link.out.send(Out::Batch(answers)).await;
    }
    tracing::info!(link = link.id, peer = %link.peer, "link closed");
}

/// Keep one dialled link up: when it ends (the switch restarted, a knob cut it), dial
/// `addr` again with exponential backoff and sign on, until the simulator's generation
/// changes (`disconnect_all`, `shutdown`).
async fn redial(shared: Arc<Shared>, addr: SocketAddr, first: Arc<Link>, generation: u64) {
    let Some(backoff) = shared.behaviour.reconnect else {
        return;
    };
    let current = |s: &Shared| s.generation.load(Ordering::Acquire) == generation;
    let mut link = first;
    loop {
        link.wait_ended().await;
        let mut delay = backoff.min;
        loop {
            if !current(&shared) {
                return;
            }
            tokio::time::sleep(delay).await;
            if !current(&shared) {
                return;
            }
            delay = (delay * 2).min(backoff.max);
            let Ok(stream) = TcpStream::connect(addr).await else {
                tracing::debug!(%addr, "redial failed; backing off");
                continue;
            };
            let new = shared.open_link(stream);
            if shared.behaviour.sign_on {
                if let Err(e) = shared.sign_on(&new).await {
                    tracing::warn!(link = new.id, error = %e, "sign-on after redial failed");
                    new.abort();
                    shared.drop_link(&new);
                    continue;
                }
            }
            inc(&shared.counters.reconnects);
            tracing::info!(link = new.id, %addr, "redialled the switch");
            link = new;
            break;
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let link = shared.open_link(stream);
                if shared.behaviour.sign_on {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        if let Err(e) = shared.sign_on(&link).await {
                            tracing::warn!(link = link.id, error = %e, "sign-on failed; closing link");
                            link.abort();
                            shared.drop_link(&link);
                        }
                    });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Back off briefly so a persistent error (EMFILE) does not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A running simulated issuer. Dropping it cuts every link without signing off.
pub struct IssuerSim {
    shared: Arc<Shared>,
    config: IssuerSimConfig,
    acceptor: Option<JoinHandle<()>>,
    local_addr: Option<SocketAddr>,
}

impl IssuerSim {
    /// Start: dial `config.links` links to the switch and sign each on (unless
    /// `behaviour.sign_on` is false), or bind `config.listen` and serve the links the switch
    /// dials in (each signs on as it opens). Returns once every dialled link is signed on.
    pub async fn start(config: IssuerSimConfig) -> anyhow::Result<IssuerSim> {
        let institution = InstId::new(&config.institution)
            .ok_or_else(|| anyhow!("institution {:?} is not 1 to 11 digits", config.institution))?;
        let switch_id = InstId::new(&config.switch_id)
            .ok_or_else(|| anyhow!("switch ID {:?} is not 1 to 11 digits", config.switch_id))?;
        config.rules.validate()?;
        let ledger = config.accounts.as_ref().map(Ledger::new);
        let shared = Arc::new(Shared {
            institution,
            switch_id,
            rules: ArcSwap::from_pointee(config.rules.clone()),
            behaviour: config.behaviour.clone(),
            counters: Counters::default(),
            stan: AtomicU32::new(0),
            auth: AtomicU32::new(1),
            tap: broadcast::channel(TAP_CAPACITY).0,
            links: Mutex::new(Vec::new()),
            next_link: AtomicUsize::new(0),
            signed_on: watch::channel(0).0,
            ledger,
            generation: AtomicU64::new(0),
            other_cursor: AtomicUsize::new(0),
        });
        let mut sim = IssuerSim {
            shared,
            config,
            acceptor: None,
            local_addr: None,
        };
        if let Some(addr) = sim.config.listen {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let local = listener.local_addr()?;
            tracing::info!(addr = %local, institution = %institution, "listening for the switch");
            sim.local_addr = Some(local);
            sim.acceptor = Some(tokio::spawn(accept_loop(Arc::clone(&sim.shared), listener)));
        } else {
            if sim.config.links == 0 {
                bail!("links must be at least 1");
            }
            sim.connect_links(sim.config.links).await?;
        }
        Ok(sim)
    }

    /// Dial `n` more links to `config.switch_addr` and sign them on (per
    /// `behaviour.sign_on`).
    pub async fn connect_links(&self, n: usize) -> anyhow::Result<()> {
        self.connect_links_to(self.config.switch_addr, n).await
    }

    /// Dial `n` more links to `addr` (a restarted switch on a new port) and sign them on
    /// (per `behaviour.sign_on`). Counters carry on. Each link is redialled when it drops
    /// (per `behaviour.reconnect`).
    pub async fn connect_links_to(&self, addr: SocketAddr, n: usize) -> anyhow::Result<()> {
        let mut opened = Vec::with_capacity(n);
        for _ in 0..n {
            let stream = TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to the switch at {addr}"))?;
            opened.push(self.shared.open_link(stream));
        }
        if self.shared.behaviour.sign_on {
            futures::future::try_join_all(opened.iter().map(|l| self.shared.sign_on(l))).await?;
        }
        let generation = self.shared.generation.load(Ordering::Acquire);
        for link in opened {
            tokio::spawn(redial(Arc::clone(&self.shared), addr, link, generation));
        }
        Ok(())
    }

    /// Sign on every open link that is not signed on.
    pub async fn sign_on(&self) -> anyhow::Result<()> {
        let links: Vec<_> = lock(&self.shared.links)
            .iter()
            .filter(|l| !l.signed_on.load(Ordering::Acquire))
            .cloned()
            .collect();
        futures::future::try_join_all(links.iter().map(|l| self.shared.sign_on(l))).await?;
        Ok(())
    }

    /// Sign off every signed-on link (the links stay open).
    pub async fn sign_off(&self) -> anyhow::Result<()> {
        let links: Vec<_> = lock(&self.shared.links)
            .iter()
            .filter(|l| l.signed_on.load(Ordering::Acquire))
            .cloned()
            .collect();
        futures::future::try_join_all(links.iter().map(|l| self.shared.sign_off(l))).await?;
        Ok(())
    }

    /// Resolves once at least `n` links are signed on (wrap in a timeout).
    pub async fn wait_signed_on(&self, n: usize) {
        let mut rx = self.shared.signed_on.subscribe();
        let _ = rx.wait_for(|&count| count >= n).await;
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            requests: get(&c.requests),
            approved: get(&c.approved),
            declined: get(&c.declined),
            echoes: get(&c.echoes),
            reversals: get(&c.reversals),
            unanswered: get(&c.unanswered),
            decode_errors: get(&c.decode_errors),
            late: get(&c.late),
            other_link: get(&c.other_link),
            disconnects: get(&c.disconnects),
            reconnects: get(&c.reconnects),
            signed_on_links: *self.shared.signed_on.borrow(),
        }
    }

    /// The listening address (listen mode only).
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Own institution ID.
    #[must_use]
    pub fn institution(&self) -> &str {
        &self.config.institution
    }

    /// Links open right now.
    #[must_use]
    pub fn link_count(&self) -> usize {
        lock(&self.shared.links).len()
    }

    /// Links signed on right now.
    #[must_use]
    pub fn signed_on_links(&self) -> usize {
        *self.shared.signed_on.borrow()
    }

    /// The rules in force.
    #[must_use]
    pub fn rules(&self) -> Arc<Rules> {
        self.shared.rules.load_full()
    }

    /// Replace the rules; applies to the next message on every link.
    pub fn set_rules(&self, rules: Rules) {
        self.shared.rules.store(Arc::new(rules));
    }

    /// Every request, advice and `0820` the simulator receives from now on, before it is
    /// answered (for tests: "the issuer got an 0420 with reason 4361"). Lagging receivers
    /// lose the oldest messages.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.shared.tap.subscribe()
    }

    /// The card accounts, if the simulator keeps them.
    #[must_use]
    pub fn ledger(&self) -> Option<&Ledger> {
        self.shared.ledger.as_ref()
    }

    /// Cut every link at once, without signing off (an issuer host crash). Messages queued
    /// or delayed on those links are lost. Dropped links are not redialled (the host is
    /// down); [`connect_links`](Self::connect_links) brings it back.
    pub fn disconnect_all(&self) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        for link in self.shared.take_links() {
            link.abort();
            self.shared.drop_link(&link);
        }
    }

    /// Sign off every signed-on link, close all links, and return the final counters.
    /// Sign-off failures are logged, not returned.
    pub async fn shutdown(mut self) -> Stats {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(a) = self.acceptor.take() {
            a.abort();
        }
        let links = self.shared.take_links();
        let signed: Vec<_> = links
            .iter()
            .filter(|l| l.signed_on.load(Ordering::Acquire))
            .collect();
        let results =
            futures::future::join_all(signed.iter().map(|l| self.shared.sign_off(l))).await;
        for e in results.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %e, "sign-off failed");
        }
        for link in &links {
            link.close().await;
            self.shared.drop_link(link);
        }
        self.stats()
    }
}

impl Drop for IssuerSim {
    fn drop(&mut self) {
        if let Some(a) = self.acceptor.take() {
            a.abort();
        }
        self.disconnect_all();
    }
}
