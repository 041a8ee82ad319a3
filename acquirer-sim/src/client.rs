//! One pipelined acquirer link: requests go out in call order, answers are matched back by
//! transaction key (SPEC.md section 7), never by order.

use crate::txn::{StanSource, TxnParams};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use iso8583::{
    DecodeError, EncodeError, Frame, FrameCodec, Header, InstId, Message, MessageBuilder, Mti,
    Packet, RejectCode, ResponseCode,
};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

/// How many unsolicited frames are kept for [`AcquirerClient::recv_timeout`].
const UNSOLICITED_CAPACITY: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a request got no normal answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The switch answered with a reject (SPEC.md 3.2) wrapping this request.
    #[error("rejected by the switch with reject code {code}")]
    Rejected { code: RejectCode, header: Header },
    /// The link closed before the answer arrived (or was already closed).
    #[error("the link is closed")]
    Closed,
    /// No answer within the given time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The builder does not encode.
    #[error("cannot encode the message: {0}")]
    Encode(#[from] EncodeError),
    /// The message lacks F7 or F11, so its answer could not be matched.
    #[error("the message has no transaction key (F7 and F11 are required)")]
    NoKey,
}

/// The transaction key an answer is matched by: F7 + F11 + F32 + F33 (SPEC.md section 7),
/// plus the message class (so an `0430` never answers the `0200` with the same key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxnKey {
    /// MTI class digit: 1 authorisation, 2 financial, 4 reversal, 8 network.
    pub class: u8,
    pub transmission: [u8; 10],
    pub stan: [u8; 6],
    pub acquirer: Option<InstId>,
    pub forwarding: Option<InstId>,
}

impl TxnKey {
    /// The key of a decoded message (request or response). `None` without F7/F11.
    #[must_use]
    pub fn of(msg: &Message) -> Option<Self> {
        Self::from_fields(msg.mti(), |n| msg.field(n))
    }

    /// The key of a message being built.
    #[must_use]
    pub fn of_builder(b: &MessageBuilder) -> Option<Self> {
        Self::from_fields(b.mti(), |n| b.get(n))
    }

    fn from_fields<'a>(mti: Mti, get: impl Fn(u8) -> Option<&'a [u8]>) -> Option<Self> {
        Some(Self {
            class: mti.0[1],
            transmission: get(7)?.try_into().ok()?,
            stan: get(11)?.try_into().ok()?,
            acquirer: get(32).and_then(InstId::from_digits),
            forwarding: get(33).and_then(InstId::from_digits),
        })
    }
}

/// A frame received from the switch. (Unboxed like [`Packet`]: received frames are moved
/// once, not stored in bulk.)
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Received {
    Message(Message),
    /// A reject (SPEC.md 3.2): the reject header and the original header + body.
    Reject {
        header: Header,
        original: Bytes,
    },
    /// A frame that does not decode.
    Undecodable {
        raw: Bytes,
        error: DecodeError,
    },
}

impl Received {
    /// The message, if this is one.
    #[must_use]
    pub fn message(&self) -> Option<&Message> {
        match self {
            Received::Message(m) => Some(m),
            _ => None,
        }
    }

    /// The reject code, if this is a reject.
    #[must_use]
    pub fn reject_code(&self) -> Option<RejectCode> {
        match self {
            Received::Reject { header, .. } => Some(header.reject),
            _ => None,
        }
    }

    /// F39 of a message.
    #[must_use]
    pub fn response_code(&self) -> Option<ResponseCode> {
        self.message().and_then(Message::response_code)
    }
}

/// Masked: never shows raw bytes (they may hold a PAN).
impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Received::Message(m) => f.debug_tuple("Message").field(m).finish(),
            Received::Reject { header, original } => f
                .debug_struct("Reject")
                .field("code", &header.reject.as_str())
                .field("original_len", &original.len())
                .finish(),
            Received::Undecodable { raw, error } => f
                .debug_struct("Undecodable")
                .field("len", &raw.len())
                .field("error", error)
                .finish(),
        }
    }
}

/// Counters of one client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Frames written (messages, raw, keep-alives).
    pub sent: u64,
    /// Answers (or rejects) delivered to a waiting request.
    pub matched: u64,
    /// Responses whose key matched nothing pending (counted, kept for `recv_timeout`).
    pub unmatched: u64,
    /// Answers that arrived after the caller stopped waiting.
    pub late: u64,
    /// Frames that do not decode.
    pub undecodable: u64,
    /// `0000` keep-alives received.
    pub keepalives: u64,
    /// `0820` from the switch answered automatically.
    pub echoes_answered: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    matched: AtomicU64,
    unmatched: AtomicU64,
    late: AtomicU64,
    undecodable: AtomicU64,
    keepalives: AtomicU64,
    echoes_answered: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

type Reply = Result<Received, ClientError>;

struct Pending {
    /// The payload sent, to recognise it inside a reject.
    raw: Bytes,
    tx: oneshot::Sender<Reply>,
}

enum Out {
    Frame(Frame),
    /// Bytes written to the socket as they are, no length prefix.
    Unframed(Bytes),
    Close,
}

struct Inner {
    pending: Mutex<HashMap<TxnKey, VecDeque<Pending>>>,
    /// `send_raw` calls waiting for whatever comes next that is not matched by key.
    raw_waiters: Mutex<VecDeque<oneshot::Sender<Reply>>>,
    unsolicited_tx: mpsc::Sender<Received>,
    unsolicited_rx: tokio::sync::Mutex<mpsc::Receiver<Received>>,
    /// Set under the `pending` lock, so nothing is registered after the drain.
    is_closed: AtomicBool,
    closed: watch::Sender<bool>,
    out: mpsc::UnboundedSender<Out>,
    counters: Counters,
}

impl Inner {
    fn enqueue(&self, out: Out) -> Result<(), ClientError> {
        self.out.send(out).map_err(|_| ClientError::Closed)?;
        inc(&self.counters.sent);
        Ok(())
    }

    /// Register `raw` under `key`, then write it.
    fn submit_keyed(
        &self,
        key: TxnKey,
        raw: Bytes,
    ) -> Result<oneshot::Receiver<Reply>, ClientError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if self.is_closed.load(Ordering::Acquire) {
                return Err(ClientError::Closed);
            }
            pending.entry(key).or_default().push_back(Pending {
                raw: raw.clone(),
                tx,
            });
        }
        self.enqueue(Out::Frame(Frame::Message(raw)))?;
        Ok(rx)
    }

    fn submit_raw_waiter(&self, out: Out) -> Result<oneshot::Receiver<Reply>, ClientError> {
        let (tx, rx) = oneshot::channel();
        {
            let _pending = lock(&self.pending);
            if self.is_closed.load(Ordering::Acquire) {
                return Err(ClientError::Closed);
            }
            lock(&self.raw_waiters).push_back(tx);
        }
        self.enqueue(out)?;
        Ok(rx)
    }

    /// Drop waiters whose caller gave up (after a timeout).
    fn prune(&self, key: &TxnKey) {
        let mut pending = lock(&self.pending);
        if let Some(q) = pending.get_mut(key) {
            q.retain(|p| !p.tx.is_closed());
            if q.is_empty() {
                pending.remove(key);
            }
        }
    }

    fn deliver(&self, tx: oneshot::Sender<Reply>, reply: Received) {
        if tx.send(Ok(reply)).is_ok() {
            inc(&self.counters.matched);
        } else {
            inc(&self.counters.late);
        }
    }

    /// Not matched by key: the next `send_raw` waiter, else the unsolicited queue.
    fn unsolicited(&self, item: Received) {
        let mut item = item;
        loop {
            let Some(tx) = lock(&self.raw_waiters).pop_front() else {
                break;
            };
            match tx.send(Ok(item)) {
                Ok(()) => return,
                Err(back) => match back {
                    Ok(again) => item = again,
                    Err(_) => return,
                },
            }
        }
        let _ = self.unsolicited_tx.try_send(item);
    }

    fn take_pending(&self, key: &TxnKey, raw: Option<&Bytes>) -> Option<Pending> {
        let mut pending = lock(&self.pending);
        let q = pending.get_mut(key)?;
        let at = raw
            .and_then(|r| q.iter().position(|p| p.raw == r))
            .unwrap_or(0);
        let p = q.remove(at);
        if q.is_empty() {
            pending.remove(key);
        }
        p
    }

    fn take_pending_by_raw(&self, raw: &Bytes) -> Option<Pending> {
        let mut pending = lock(&self.pending);
        let (key, at) = pending
            .iter()
            .find_map(|(k, q)| q.iter().position(|p| p.raw == raw).map(|at| (*k, at)))?;
        let q = pending.get_mut(&key)?;
        let p = q.remove(at);
        if q.is_empty() {
            pending.remove(&key);
        }
        p
    }

    fn on_message(&self, msg: Message) {
        let mti = msg.mti();
        if mti.is_request() {
            if mti == Mti::NETWORK_REQUEST {
                let resp =
                    MessageBuilder::response_to(&msg, &[7, 11, 32, 33, 70], ResponseCode::APPROVED);
                if let Ok(raw) = resp.build() {
                    if self.enqueue(Out::Frame(Frame::Message(raw))).is_ok() {
                        inc(&self.counters.echoes_answered);
                    }
                }
                return;
            }
            self.unsolicited(Received::Message(msg));
            return;
        }
        match TxnKey::of(&msg).and_then(|k| self.take_pending(&k, None)) {
            Some(p) => self.deliver(p.tx, Received::Message(msg)),
            None => {
                inc(&self.counters.unmatched);
                tracing::debug!(mti = %mti, stan = ?msg.stan(), "answer with an unknown key");
                let _ = self.unsolicited_tx.try_send(Received::Message(msg));
            }
        }
    }

    fn on_reject(&self, header: Header, original: Bytes) {
        let by_key = Message::decode(original.clone())
            .ok()
            .and_then(|m| TxnKey::of(&m))
            .and_then(|k| self.take_pending(&k, Some(&original)));
        let found = by_key.or_else(|| self.take_pending_by_raw(&original));
        let item = Received::Reject { header, original };
        match found {
            Some(p) => self.deliver(p.tx, item),
            None => self.unsolicited(item),
        }
    }

    fn on_frame(&self, raw: Bytes) {
        match Packet::decode(raw.clone()) {
            Ok(Packet::Message(m)) => self.on_message(m),
            Ok(Packet::Reject { header, original }) => self.on_reject(header, original),
            Err(error) => {
                inc(&self.counters.undecodable);
                self.unsolicited(Received::Undecodable { raw, error });
            }
        }
    }

    /// The link is gone: fail everything waiting, refuse new requests.
    fn shut(&self) {
        let drained: Vec<Pending> = {
            let mut pending = lock(&self.pending);
            self.is_closed.store(true, Ordering::Release);
            pending.drain().flat_map(|(_, q)| q).collect()
        };
        for p in drained {
            let _ = p.tx.send(Err(ClientError::Closed));
        }
        let waiters: Vec<_> = lock(&self.raw_waiters).drain(..).collect();
        for tx in waiters {
            let _ = tx.send(Err(ClientError::Closed));
        }
        self.closed.send_replace(true);
    }
}

async fn write_loop(
    mut sink: FramedWrite<OwnedWriteHalf, FrameCodec>,
    mut rx: mpsc::UnboundedReceiver<Out>,
    inner: Arc<Inner>,
) {
    'outer: while let Some(mut item) = rx.recv().await {
        loop {
            let ok = match item {
                Out::Frame(frame) => sink.feed(frame).await.is_ok(),
                Out::Unframed(bytes) => {
                    SinkExt::<Frame>::flush(&mut sink).await.is_ok()
                        && sink.get_mut().write_all(&bytes).await.is_ok()
                }
                Out::Close => {
                    let _ = SinkExt::<Frame>::close(&mut sink).await;
                    break 'outer;
                }
            };
            if !ok {
                break 'outer;
            }
            match rx.try_recv() {
                Ok(next) => item = next,
                Err(_) => break,
            }
        }
        if SinkExt::<Frame>::flush(&mut sink).await.is_err() {
            break;
        }
    }
    inner.shut();
}

async fn read_loop(mut stream: FramedRead<OwnedReadHalf, FrameCodec>, inner: Arc<Inner>) {
    while let Some(item) = stream.next().await {
        match item {
            Ok(Frame::KeepAlive) => inc(&inner.counters.keepalives),
            Ok(Frame::Message(raw)) => inner.on_frame(raw),
            Err(e) => {
                tracing::warn!(error = %e, "framing error from the switch; closing");
                break;
            }
        }
    }
    inner.shut();
}

/// One TCP link from an acquirer to the switch, pipelined: many requests in flight, answers
/// matched by key. Dropping it cuts the link.
pub struct AcquirerClient {
    inner: Arc<Inner>,
    acquirer: String,
    switch_id: String,
    stans: StanSource,
    local_addr: SocketAddr,
    reader: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
}

impl AcquirerClient {
    /// Dial the switch's acquirer listener as `acquirer_id`.
    pub async fn connect(
        addr: SocketAddr,
        acquirer_id: &str,
        switch_id: &str,
    ) -> anyhow::Result<AcquirerClient> {
        if InstId::new(acquirer_id).is_none() {
            anyhow::bail!("acquirer ID {acquirer_id:?} is not 1 to 11 digits");
        }
        if InstId::new(switch_id).is_none() {
            anyhow::bail!("switch ID {switch_id:?} is not 1 to 11 digits");
        }
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to the switch at {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let local_addr = stream.local_addr()?;
        let (read, write) = stream.into_split();
        let codec = FrameCodec::default();
        let (out, out_rx) = mpsc::unbounded_channel();
        let (unsolicited_tx, unsolicited_rx) = mpsc::channel(UNSOLICITED_CAPACITY);
        let inner = Arc::new(Inner {
            pending: Mutex::new(HashMap::new()),
            raw_waiters: Mutex::new(VecDeque::new()),
            unsolicited_tx,
            unsolicited_rx: tokio::sync::Mutex::new(unsolicited_rx),
            is_closed: AtomicBool::new(false),
            closed: watch::channel(false).0,
            out,
            counters: Counters::default(),
        });
        let writer = tokio::spawn(write_loop(
            FramedWrite::new(write, codec),
            out_rx,
            Arc::clone(&inner),
        ));
        let reader = tokio::spawn(read_loop(FramedRead::new(read, codec), Arc::clone(&inner)));
        Ok(AcquirerClient {
            inner,
            acquirer: acquirer_id.to_owned(),
            switch_id: switch_id.to_owned(),
            stans: StanSource::random(),
            local_addr,
            reader: Some(reader),
            writer: Some(writer),
        })
    }

    /// Write the request now (in call order) and resolve with its answer: the response with
    /// the same key, or `Err(Rejected)` if the switch rejected it, or `Err(Closed)`. Two
    /// requests with the same key are answered first come, first served.
    pub fn send(
        &self,
        msg: MessageBuilder,
    ) -> impl Future<Output = Result<Message, ClientError>> + Send + 'static {
        let submitted = msg
            .build()
            .map_err(ClientError::from)
            .and_then(|raw| Ok((TxnKey::of_builder(&msg).ok_or(ClientError::NoKey)?, raw)))
            .and_then(|(key, raw)| self.inner.submit_keyed(key, raw));
        async move {
            match submitted?.await {
                Ok(Ok(Received::Message(m))) => Ok(m),
                Ok(Ok(Received::Reject { header, .. })) => Err(ClientError::Rejected {
                    code: header.reject,
                    header,
                }),
                Ok(Ok(Received::Undecodable { .. })) | Ok(Err(_)) | Err(_) => {
                    Err(ClientError::Closed)
                }
            }
        }
    }

    /// [`send`](Self::send) with a deadline: `Err(Timeout)` if nothing arrives in time (a
    /// later answer is then counted as late).
    pub fn send_timeout(
        &self,
        msg: MessageBuilder,
        timeout: Duration,
    ) -> impl Future<Output = Result<Message, ClientError>> + Send + 'static {
        let key = TxnKey::of_builder(&msg);
        let fut = self.send(msg);
        let inner = Arc::clone(&self.inner);
        async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => {
                    if let Some(k) = key {
                        inner.prune(&k);
                    }
                    Err(ClientError::Timeout(timeout))
                }
            }
        }
    }

    /// Write `payload` (header + body, the length prefix is added) as it is, malformed or
    /// not, and resolve with what comes back for it: if it decodes as a request, its answer
    /// or reject by key; otherwise the next frame not matched to another request (a
    /// reject, usually). `Err(Closed)` if the switch closes the link instead.
    pub fn send_raw(
        &self,
        payload: Bytes,
    ) -> impl Future<Output = Result<Received, ClientError>> + Send + 'static {
        let key = Message::decode(payload.clone())
            .ok()
            .filter(|m| m.mti().is_request())
            .and_then(|m| TxnKey::of(&m));
        let submitted = match key {
            Some(k) => self.inner.submit_keyed(k, payload),
            None => self
                .inner
                .submit_raw_waiter(Out::Frame(Frame::Message(payload))),
        };
        async move {
            match submitted?.await {
                Ok(r) => r,
                Err(_) => Err(ClientError::Closed),
            }
        }
    }

    /// Write bytes to the socket without a length prefix (framing-error tests). Whatever
    /// the switch sends next goes to [`recv_timeout`](Self::recv_timeout).
    pub fn write_unframed(&self, bytes: Bytes) -> Result<(), ClientError> {
        self.inner.enqueue(Out::Unframed(bytes))
    }

    /// Send a `0000` keep-alive.
    pub fn send_keepalive(&self) -> Result<(), ClientError> {
        self.inner.enqueue(Out::Frame(Frame::KeepAlive))
    }

    /// The next frame that was not an answer to a pending request (unknown-key responses,
    /// requests from the switch other than echoes, unmatched rejects, undecodable frames).
    /// `Err(Timeout)` if none arrives in time, `Err(Closed)` if the link closes first.
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<Received, ClientError> {
        let mut rx = self.inner.unsolicited_rx.lock().await;
        let mut closed = self.inner.closed.subscribe();
        let wait = async {
            tokio::select! {
                biased;
                item = rx.recv() => item.ok_or(ClientError::Closed),
                _ = closed.wait_for(|c| *c) => rx.try_recv().map_err(|_| ClientError::Closed),
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(ClientError::Timeout(timeout)))
    }

    /// Resolves when the link is closed (by the switch, an error, or [`close`](Self::close)).
    pub async fn closed(&self) {
        let mut rx = self.inner.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    #[must_use]
    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    /// Requests waiting for an answer.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.pending).values().map(VecDeque::len).sum()
    }

    #[must_use]
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClientStats {
            sent: get(&c.sent),
            matched: get(&c.matched),
            unmatched: get(&c.unmatched),
            late: get(&c.late),
            undecodable: get(&c.undecodable),
            keepalives: get(&c.keepalives),
            echoes_answered: get(&c.echoes_answered),
        }
    }

    /// The acquirer ID this client was connected as.
    #[must_use]
    pub fn acquirer(&self) -> &str {
        &self.acquirer
    }

    #[must_use]
    pub fn switch_id(&self) -> &str {
        &self.switch_id
    }

    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The client's STAN source (starts at a random STAN).
    #[must_use]
    pub fn stans(&self) -> &StanSource {
        &self.stans
    }

    /// Default [`TxnParams`] for this client: its acquirer and switch IDs, the next STAN,
    /// the current F7.
    #[must_use]
    pub fn params(&self, pan: &str, amount: i64) -> TxnParams {
        TxnParams::from_source(&self.stans, pan, amount)
            .with_acquirer(&self.acquirer)
            .with_switch_id(&self.switch_id)
    }

    /// Flush what is queued, close the link, fail whatever is still waiting.
    pub async fn close(mut self) {
        let _ = self.inner.out.send(Out::Close);
        if let Some(mut w) = self.writer.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut w)
                .await
                .is_err()
            {
                w.abort();
            }
        }
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        self.inner.shut();
    }
}

impl Drop for AcquirerClient {
    fn drop(&mut self) {
        for task in [self.reader.take(), self.writer.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        self.inner.shut();
    }
}
