//! `IssuerLink`: one actor per issuer TCP link. Owns the in-flight table of the requests it
//! sent (no shared lock), matches responses by the rewritten F11, times requests out with
//! the injected clock, and sends echoes and keep-alives on an idle link.

use super::outbox::{Answer, Flush, Inbox, Outbox, Reversible};
use super::route::{IssuerRouteActor, QueueReversal, ReversalSource};
use super::{journal, journal_then, journal_with, Deliver};
use crate::core::{installment_approval_ok, switch_response, TxnKey, TxnKind};
use crate::daytable::Hint;
use crate::records::{OutcomeRecord, RequestRecord, Responder, SwitchRecord};
use crate::state::{f15_of, IssuerRoute, LinkHandle, Shared, ROUTE_SLOT};
use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use iso8583::subfields::reason;
use iso8583::{
    Frame, FrameCodec, FramingError, Header, Message, MessageBuilder, Mti, Packet, RejectCode,
    ResponseCode,
};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

/// A request from an acquirer link to forward on this link (queued on its inbox).
pub struct Forward {
    /// Boxed: a `Message` is ~620 bytes (its field spans), and the request moves from the
    /// acquirer link through the inbox into the pending table.
    pub request: Box<Message>,
    /// The acquirer link's outbox, where the answer goes once its outcome is durable.
    pub reply_to: Arc<Outbox>,
    pub key: TxnKey,
    pub kind: TxnKind,
    pub record: RequestRecord,
    pub received_ms: i64,
    /// Limit usage held until the transaction ends; released unless it ends approved.
    pub reservation: Option<crate::limits::Reservation>,
    /// For a related request: the F11 its original got at the issuer (F90 names it so).
    pub original_issuer_stan: Option<u32>,
    /// Where the request was entered in the originals index (looked up again when it ends).
    pub original_at: Option<Hint>,
}

impl Forward {
    /// The request will not reach the issuer: give back its limit hold and end it (not
    /// approved) in the originals index.
    pub fn release(&self, shared: &Shared, now_ms: i64) {
        if let Some(r) = &self.reservation {
            shared.limits.release(r);
        }
        shared.originals.finish(
            &self.key,
            self.kind,
            self.record.original,
            self.record.amount,
            false,
            now_ms,
            &shared.limits,
        );
    }
}

/// An issuer response that arrived on a sibling link but belongs to this link's table.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SiblingResponse(pub Message);

/// One request waiting for the issuer (keyed by the F11 the switch sent it).
struct Pending {
    reply_to: Arc<Outbox>,
    /// The acquirer's request: its header fields 6-9 and F11 are restored in the answer
    /// (SPEC.md section 3) and it is the template of a reversal.
    request: Box<Message>,
    key: TxnKey,
    kind: TxnKind,
    deadline: i64,
    received_ms: i64,
    settlement_date: u32,
    reservation: Option<crate::limits::Reservation>,
    /// F90 of a related transaction and F4: the originals index is updated at the end.
    original: Option<TxnKey>,
    amount: i64,
    /// [`Forward::original_at`].
    original_at: Option<Hint>,
}

pub struct IssuerLink {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Bound on the first message (connect-in) or known when dialled.
    route: Option<Arc<IssuerRoute>>,
    slot: Option<u8>,
    signed_on: bool,
    writer: FramedWrite<Frame, OwnedWriteHalf, FrameCodec>,
    pending: HashMap<u32, Pending, crate::FastHash>,
    /// Deadlines in send order (constant timeout per issuer keeps this sorted). Entries
    /// whose request is no longer pending are dropped from the front as answers come in
    /// ([`IssuerLink::trim_deadlines`]), so this is about as long as what is in flight.
    deadlines: VecDeque<(i64, u32)>,
    counter: u32,
    in_flight: Arc<AtomicUsize>,
    echo_deadline: Option<(i64, u32)>,
    /// Own address, published to the route on sign-on.
    self_addr: Option<Addr<IssuerLink>>,
    /// Requests queued for this link by acquirer links, taken in batches on `Flush`.
    inbox: Arc<Inbox<Forward>>,
    /// The inbox's previous vector, kept empty with its capacity.
    spare: Vec<Forward>,
    /// Dropped when the actor stops: a dialler waits on it before reconnecting.
    on_stop: Option<tokio::sync::oneshot::Sender<()>>,
    last_recv: i64,
    last_send: i64,
    /// Metric handles of the hot path, registered once per label set (no label strings
    /// built per transaction).
    metrics: LinkMetrics,
}

/// Cached metric handles of one issuer link.
struct LinkMetrics {
    /// `switch_transactions_total` by (request MTI, response code).
    txns: HashMap<([u8; 4], [u8; 2]), metrics::Counter, crate::FastHash>,
    /// This link's stripe of [`crate::latency::SWITCH_LATENCY`].
    latency_stripe: usize,
    in_flight: Option<metrics::Gauge>,
}

impl Default for LinkMetrics {
    fn default() -> Self {
        LinkMetrics {
            txns: HashMap::default(),
            latency_stripe: crate::latency::SWITCH_LATENCY.stripe(),
            in_flight: None,
        }
    }
}

impl LinkMetrics {
    fn txn(&mut self, issuer: &str, mti: iso8583::Mti, code: ResponseCode) -> &metrics::Counter {
        self.txns.entry((mti.0, code.0)).or_insert_with(|| {
            metrics::counter!("switch_transactions_total", "mti" => mti.to_string(), "code" => code.to_string(), "issuer" => issuer.to_owned())
        })
    }

    fn latency_ms(&self, ms: i64) {
        crate::latency::SWITCH_LATENCY.record_ms(self.latency_stripe, ms);
    }

    fn in_flight(&mut self, issuer: &str, slot: u8) -> &metrics::Gauge {
        self.in_flight.get_or_insert_with(|| {
            metrics::gauge!("switch_link_in_flight", "issuer" => issuer.to_owned(), "slot" => slot.to_string())
        })
    }
}

impl IssuerLink {
    /// Start an actor for a link the issuer opened to us.
    pub fn start(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) -> Addr<Self> {
        Self::start_bound(shared, stream, peer, None)
    }

    fn start_bound(
        shared: Arc<Shared>,
        stream: TcpStream,
        peer: SocketAddr,
        bound: Option<BindDialled>,
    ) -> Addr<Self> {
        let max = shared.config.load().switch.max_frame_bytes;
        let now = shared.clock.now_millis();
        IssuerLink::create(move |ctx| {
            let (r, w) = stream.into_split();
            ctx.add_stream(FramedRead::new(r, FrameCodec::new(max)));
            metrics::gauge!("switch_issuer_links").increment(1.0);
            let (route, slot, on_stop) = match bound {
                Some(b) => (Some(b.route), Some(b.slot), Some(b.on_stop)),
                None => (None, None, None),
            };
            IssuerLink {
                shared,
                peer,
                route,
                slot,
                signed_on: false,
                writer: FramedWrite::new(w, FrameCodec::new(max), ctx),
                pending: HashMap::with_capacity_and_hasher(1024, crate::FastHash::default()),
                deadlines: VecDeque::with_capacity(1024),
                counter: 0,
                in_flight: Arc::new(AtomicUsize::new(0)),
                echo_deadline: None,
                self_addr: None,
                inbox: Arc::new(Inbox::new(ctx.address().recipient())),
                spare: Vec::new(),
                on_stop,
                last_recv: now,
                last_send: now,
                metrics: LinkMetrics::default(),
            }
        })
    }

    /// Start an actor for a link the switch dialled for `route` (bound from the start; the
    /// issuer still signs on before traffic flows). `on_stop` fires when the link ends.
    pub fn start_dialled(
        shared: Arc<Shared>,
        stream: TcpStream,
        peer: SocketAddr,
        route: Arc<IssuerRoute>,
        on_stop: tokio::sync::oneshot::Sender<()>,
    ) -> Option<Addr<Self>> {
        let slot = route.take_slot()?;
        tracing::info!(%peer, issuer = %route.id, slot, "dialled issuer link up");
        Some(Self::start_bound(
            shared,
            stream,
            peer,
            Some(BindDialled {
                route,
                slot,
                on_stop,
            }),
        ))
    }

    fn send(&mut self, payload: bytes::Bytes) {
        self.last_send = self.shared.clock.now_millis();
        self.writer.write(Frame::Message(payload));
    }

    fn issuer_label(&self) -> String {
        self.route
            .as_ref()
            .map_or_else(|| "unbound".to_owned(), |r| r.id.to_string())
    }

    /// Next F11 for this link: `counter * 10 + slot`, skipping any still pending.
    fn next_stan(&mut self) -> u32 {
        let slot = u32::from(self.slot.unwrap_or(0));
        loop {
            self.counter = (self.counter + 1) % 100_000;
            let stan = self.counter * 10 + slot;
            if !self.pending.contains_key(&stan) {
                return stan;
            }
        }
    }

    /// Borrowed, not cloned: an `Addr` clone and drop are two contended atomic updates
    /// each (1 % of the switch's samples when an answer did it).
    fn route_actor(&self) -> Option<&Addr<IssuerRouteActor>> {
        self.route.as_ref().and_then(|r| r.actor.get())
    }

    /// A request that never reached the issuer: what it held is released and the acquirer
    /// gets `code` from the switch (nothing to reverse).
    fn answer_unsent(&mut self, fwd: Forward, code: ResponseCode) {
        let now = self.shared.clock.now_millis();
        fwd.release(&self.shared, now);
        let f15 = f15_of(fwd.record.settlement_date);
        let resp = switch_response(&fwd.request, self.shared.switch_id, code, &f15, None).build();
        if let Ok(b) = resp {
            fwd.reply_to.push(b, now);
        }
        self.answered();
    }

    /// A request of this link's is answered: see [`Shared::answered`] for when.
    fn answered(&self) {
        self.shared.answered(&self.in_flight);
    }

    /// Sends `fwd` to the issuer; `now` is when its batch was taken from the inbox.
    fn on_forward(&mut self, fwd: Forward, now: i64) {
        // Copied out, not cloned: the route's reference count is a line every link of the
        // issuer (on both cores) would write twice a transaction.
        let Some((route_id, timeout_ms)) = self.route.as_deref().map(|r| (r.id, r.timeout_ms))
        else {
            self.answer_unsent(fwd, ResponseCode::ISSUER_INOPERATIVE);
            return;
        };
        let stan = self.next_stan();
        let stan_digits = digits6(stan);
        let f15 = f15_of(fwd.record.settlement_date);
        let mut header = Header::new(route_id, self.shared.switch_id);
        header.flag = fwd.request.header().flag;
        // A related request names its original as the issuer knows it: the F11 the switch
        // gave the original on its way there (as `pass_on_reversal` does for reversals).
        let f90 = fwd
            .original_issuer_stan
            .and_then(|stan| crate::core::f90_for_issuer(&fwd.request, stan));
        let mut rewrite = fwd
            .request
            .rewrite()
            .header(header)
            .set(11, &stan_digits)
            .set(15, &f15)
            .set(100, route_id.as_bytes());
        if let Some(f90) = &f90 {
            rewrite = rewrite.set(90, f90);
        }
        let forwarded = rewrite.finish();
        let forwarded = match forwarded {
            Ok(bytes) => bytes,
            Err(_) => {
                tracing::error!(issuer = %route_id, "could not re-encode a request for the issuer");
                self.answer_unsent(fwd, ResponseCode::SYSTEM_MALFUNCTION);
                return;
            }
        };
        let mut record = fwd.record;
        record.issuer_stan = Some(stan);
        let settlement_date = record.settlement_date;
        let (original, amount) = (record.original, record.amount);
        // The originals index learns `stan` when the request ends (`finish_at`).
        journal(&*self.shared.journal, &SwitchRecord::Request(record));
        let deadline = now + timeout_ms;
        self.last_send = now;
        self.writer.write(Frame::Message(forwarded));
        self.pending.insert(
            stan,
            Pending {
                reply_to: fwd.reply_to,
                request: fwd.request,
                key: fwd.key,
                kind: fwd.kind,
                deadline,
                received_ms: fwd.received_ms,
                settlement_date,
                reservation: fwd.reservation,
                original,
                amount,
                original_at: fwd.original_at,
            },
        );
        self.deadlines.push_back((deadline, stan));
    }

    fn on_payload(&mut self, raw: bytes::Bytes, ctx: &mut Context<Self>) {
        let msg = match Packet::decode(raw.clone()) {
            Ok(Packet::Message(m)) => m,
            Ok(Packet::Reject { header, original }) => {
                metrics::counter!("switch_issuer_rejects_total", "issuer" => self.issuer_label())
                    .increment(1);
                tracing::warn!(issuer = %self.issuer_label(), reject = %header.reject, "issuer rejected a message");
                // The issuer did not process it: answer the acquirer 96, no reversal.
                if let Ok(Packet::Message(orig)) = Packet::decode(original) {
                    if let Some(stan) = orig.stan() {
                        if let Some(p) = self.pending.remove(&stan) {
                            self.answer_from_switch(
                                stan,
                                p,
                                ResponseCode::SYSTEM_MALFUNCTION,
                                None,
                            );
                        }
                    }
                }
                return;
            }
            Err(e) => {
                let link = self.issuer_label();
                if let Some(reject) =
                    super::reject_for(&raw, e.reject_code(), &e, &link, self.shared.switch_id)
                {
                    self.send(reject);
                }
                return;
            }
        };
        if self.route.is_none() && !self.bind(&msg, ctx) {
            return;
        }
        let Some(route_id) = self.route.as_deref().map(|r| r.id) else {
            return;
        };
        if msg.header().source != route_id {
            // Responses are never rejected: `reject_for` counts and drops them.
            let link = self.issuer_label();
            let why = "source ID differs from the link's institution";
            if let Some(r) = super::reject_for(
                &raw,
                RejectCode::new(0, 5, 5),
                &why,
                &link,
                self.shared.switch_id,
            ) {
                self.send(r);
            }
            return;
        }
        if msg.mti().is_request() {
            if let Some(route) = self.route.clone() {
                self.on_issuer_request(&msg, &route);
            }
            return;
        }
        let Some(stan) = msg.stan() else {
            metrics::counter!("switch_bad_responses_total", "reason" => "no_stan").increment(1);
            return;
        };
        let slot = (stan % 10) as u8;
        if msg.mti() == Mti::NETWORK_RESPONSE && self.echo_deadline.is_some_and(|(_, s)| s == stan)
        {
            self.echo_deadline = None;
            return;
        }
        if slot == ROUTE_SLOT {
            if let Some(actor) = self.route_actor() {
                actor.do_send(super::route::AdviceAnswered { stan });
            }
        } else if Some(slot) == self.slot {
            self.on_response(msg, self.last_recv);
        } else if let Some(sibling) = self.route.as_ref().and_then(|r| r.link_in_slot(slot)) {
            sibling.addr.do_send(SiblingResponse(msg));
        } else {
            self.on_response(msg, self.last_recv);
        }
    }

    /// Bind a connect-in link to the issuer named by the first message's source ID.
    fn bind(&mut self, msg: &Message, ctx: &mut Context<Self>) -> bool {
        let source = msg.header().source;
        let cfg = self.shared.config.load();
        let inst = cfg
            .institution(source.as_str())
            .filter(|i| i.is_issuer() && i.allows_addr(self.peer.ip()));
        let route = inst
            .map(|i| i.id)
            .and_then(|id| self.shared.route(&id))
            .cloned();
        let Some(route) = route else {
            metrics::counter!("switch_links_refused_total", "reason" => "unknown_source")
                .increment(1);
            tracing::warn!(peer = %self.peer, source = %source, "issuer link from an unconfigured institution or address; closing");
            ctx.stop();
            return false;
        };
        let Some(slot) = route.take_slot() else {
            metrics::counter!("switch_links_refused_total", "reason" => "too_many_links")
                .increment(1);
            tracing::warn!(peer = %self.peer, issuer = %route.id, "issuer has too many links; closing");
            ctx.stop();
            return false;
        };
        tracing::info!(peer = %self.peer, issuer = %route.id, slot, "issuer link bound");
        self.slot = Some(slot);
        self.route = Some(route);
        true
    }

    fn on_issuer_request(&mut self, msg: &Message, route: &Arc<IssuerRoute>) {
        let (_, f15) = self.shared.settlement_now();
        let code = if msg.mti().class() == 8 {
            match msg.network_code() {
                Some(1) => {
                    if let (Some(slot), Some(addr)) = (self.slot, self.self_addr.clone()) {
                        self.signed_on = true;
                        route.sign_on(LinkHandle {
                            slot,
                            addr,
                            in_flight: self.in_flight.clone(),
                            inbox: self.inbox.clone(),
                            worker: crate::state::current_worker(),
                        });
                        tracing::info!(issuer = %route.id, slot, "issuer link signed on");
                    }
                    ResponseCode::APPROVED
                }
                Some(2) => {
                    if let Some(slot) = self.slot {
                        self.signed_on = false;
                        route.sign_off(slot);
                        tracing::info!(issuer = %route.id, slot, "issuer link signed off");
                    }
                    ResponseCode::APPROVED
                }
                Some(301 | 201 | 202) => ResponseCode::APPROVED,
                _ => ResponseCode::FORMAT_ERROR,
            }
        } else {
            // Issuers do not originate financial traffic through this interface.
            ResponseCode::NOT_SUPPORTED
        };
        if let Ok(b) = switch_response(msg, self.shared.switch_id, code, &f15, None).build() {
            self.send(b);
        }
    }

    /// An issuer's answer, received at `now` (the clock is read once per frame).
    fn on_response(&mut self, msg: Message, now: i64) {
        let Some(stan) = msg.stan() else { return };
        let code = msg.response_code();
        let Some(p) = self.pending.remove(&stan) else {
            // Late: the switch already answered 98. A late approval is reversed.
            metrics::counter!("switch_late_responses_total", "issuer" => self.issuer_label())
                .increment(1);
            let financial = matches!(
                msg.mti().request(),
                Mti::FINANCIAL_REQUEST | Mti::AUTH_REQUEST
            ) && msg.processing_code().is_some_and(|p| &p[..2] != b"30");
            if code.is_some_and(ResponseCode::is_approved) && financial {
                tracing::info!(issuer = %self.issuer_label(), stan, "late approval; reversing (4360)");
                if let Some(actor) = self.route_actor() {
                    actor.do_send(QueueReversal {
                        source: ReversalSource::Generated(msg),
                        original_stan: stan,
                        reason: reason::SWITCH_LATE_APPROVAL,
                        original: None,
                    });
                }
            }
            return;
        };
        self.trim_deadlines();
        if p.kind == TxnKind::InstallmentPurchase
            && code.is_some_and(ResponseCode::is_approved)
            && !installment_approval_ok(&msg)
        {
            // SPEC 11 [choice]: an approval without a valid F57 IP is treated as not received.
            metrics::counter!("switch_bad_responses_total", "reason" => "installment_f57")
                .increment(1);
            tracing::warn!(issuer = %self.issuer_label(), stan, "installment approval without a valid F57 IP; answering 96 and reversing");
            self.answer_from_switch(
                stan,
                p,
                ResponseCode::SYSTEM_MALFUNCTION,
                Some(reason::ISSUER_TIMEOUT),
            );
            return;
        }
        let f15 = f15_of(p.settlement_date);
        let mut header = p.request.header().response();
        header.source = self.shared.switch_id;
        let acq_stan = p.request.field(11).unwrap_or_default();
        let Ok(answer) = msg
            .rewrite()
            .header(header)
            .set(11, acq_stan)
            .set(15, &f15)
            .finish()
        else {
            metrics::counter!("switch_bad_responses_total", "reason" => "re_encode").increment(1);
            self.answer_from_switch(
                stan,
                p,
                ResponseCode::SYSTEM_MALFUNCTION,
                Some(reason::ISSUER_TIMEOUT),
            );
            return;
        };
        let code = code.unwrap_or(ResponseCode::SYSTEM_MALFUNCTION);
        if let (false, Some(r)) = (code.is_approved(), &p.reservation) {
            self.shared.limits.release(r);
        }
        let finished = self.shared.originals.finish_at(
            &p.key,
            p.original_at,
            Some(stan),
            p.kind,
            p.original,
            p.amount,
            code.is_approved(),
            now,
            &self.shared.limits,
        );
        if let (Some(reason), Some(actor)) = (finished.reverse, self.route_actor()) {
            // SPEC 8: the acquirer reversed it while it was pending; now that the issuer
            // approved it, reverse it there.
            tracing::info!(issuer = %self.issuer_label(), stan, "approval of an early-reversed transaction; reversing");
            actor.do_send(QueueReversal {
                source: ReversalSource::Generated((*p.request).clone()),
                original_stan: stan,
                reason,
                original: Some(p.key),
            });
        }
        self.metrics.latency_ms(now - p.received_ms);
        let label = self.route.as_ref().map(|r| r.id);
        let label = label.as_ref().map_or("unbound", iso8583::InstId::as_str);
        self.metrics.txn(label, p.request.mti(), code).increment(1);
        let outcome = OutcomeRecord {
            key: p.key,
            settlement_date: p.settlement_date,
            code: code.0,
            auth_code: msg.field_str(38).map(crate::records::fixed),
            responder: Responder::Issuer,
            answered_ms: now,
            reversal_reason: None,
            installment_fee: msg
                .field(57)
                .and_then(|v| iso8583::subfields::InstallmentResponse::parse(v).ok())
                .map(|ip| ip.cardholder_fee),
        };
        let answer = Answer {
            frame: answer,
            ready_ms: now,
            reversible: (code.is_approved() && p.kind.is_reversible()).then(|| Reversible {
                issuer: self.route.as_ref().map(|r| r.id),
                template: p.request.raw().clone(),
                key: p.key,
                stan,
            }),
        };
        let reply_to = p.reply_to;
        journal_with(
            &*self.shared.journal,
            &SwitchRecord::Outcome(outcome),
            move |durable| {
                if durable {
                    reply_to.deliver(answer);
                } else {
                    reply_to.deliver_not_durable(answer, f15);
                }
            },
        );
        self.answered();
    }

    /// The switch answers the acquirer itself (timeout, link loss); optionally reverses.
    fn answer_from_switch(
        &mut self,
        issuer_stan: u32,
        p: Pending,
        code: ResponseCode,
        reversal: Option<[u8; 4]>,
    ) {
        // The switch never approves: whatever was reserved is released.
        if let Some(r) = &p.reservation {
            self.shared.limits.release(r);
        }
        self.shared.originals.finish(
            &p.key,
            p.kind,
            p.original,
            p.amount,
            false,
            self.shared.clock.now_millis(),
            &self.shared.limits,
        );
        let f15 = f15_of(p.settlement_date);
        let reversal = reversal.filter(|_| p.kind.is_reversible());
        let label = self.route.as_ref().map(|r| r.id);
        let label = label.as_ref().map_or("unbound", iso8583::InstId::as_str);
        self.metrics.txn(label, p.request.mti(), code).increment(1);
        let b = switch_response(&p.request, self.shared.switch_id, code, &f15, None);
        let now = self.shared.clock.now_millis();
        let outcome = OutcomeRecord {
            key: p.key,
            settlement_date: p.settlement_date,
            code: code.0,
            auth_code: None,
            responder: Responder::Switch,
            answered_ms: now,
            reversal_reason: reversal,
            installment_fee: None,
        };
        if let (Some(reason), Some(actor)) = (reversal, self.route_actor()) {
            actor.do_send(QueueReversal {
                source: ReversalSource::Generated(*p.request),
                original_stan: issuer_stan,
                reason,
                original: Some(p.key),
            });
        }
        let reply_to = p.reply_to;
        match b.build() {
            Ok(bytes) => journal_then(
                &*self.shared.journal,
                &SwitchRecord::Outcome(outcome),
                // The switch never approves: nothing to reverse if the link is gone.
                move || reply_to.push(bytes, now),
            ),
            Err(e) => tracing::error!(error = %e, "could not build a switch answer"),
        }
        self.answered();
    }

    /// Drop the deadlines at the front whose request is no longer pending (answered, or
    /// answered by the switch). Answers come back about in send order, so the queue stays
    /// about as long as what is in flight. Before, every request stayed queued for the
    /// whole timeout: 20 s of a busy link is ~400,000 entries, a queue that grew by
    /// copying itself and was read again, cold, only when each deadline passed. A request
    /// that is never answered holds the front until its deadline (`expire`).
    fn trim_deadlines(&mut self) {
        while let Some(&(deadline, stan)) = self.deadlines.front() {
            if self.awaits(deadline, stan) {
                break;
            }
            self.deadlines.pop_front();
        }
    }

    /// Whether the deadline entry `(deadline, stan)` is still its request's: the request is
    /// pending, and not a later one that reused the F11.
    fn awaits(&self, deadline: i64, stan: u32) -> bool {
        self.pending
            .get(&stan)
            .is_some_and(|p| p.deadline == deadline)
    }

    fn expire(&mut self, now: i64) {
        while let Some(&(deadline, stan)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if self.awaits(deadline, stan) {
                if let Some(p) = self.pending.remove(&stan) {
                    metrics::counter!("switch_timeouts_total", "issuer" => self.issuer_label())
                        .increment(1);
                    tracing::info!(issuer = %self.issuer_label(), stan, "issuer timeout; answering 98");
                    self.answer_from_switch(
                        stan,
                        p,
                        ResponseCode::ISSUER_TIMEOUT,
                        Some(reason::ISSUER_TIMEOUT),
                    );
                }
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = self.shared.clock.now_millis();
        self.expire(now);
        // The in-flight gauge is sampled here, not set per request.
        if let Some(route) = &self.route {
            let pending = self.pending.len() as f64;
            self.metrics
                .in_flight(route.id.as_str(), self.slot.unwrap_or(0))
                .set(pending);
        }
        let cfg = self.shared.config.load();
        let idle = super::idle_action(now, self.last_recv, self.last_send, &cfg.switch);
        let echo = self
            .route
            .as_ref()
            .and_then(|r| cfg.institution_by_id(&r.id))
            .and_then(|i| i.issuer.as_ref())
            .map(|s| (s.echo_interval, s.echo_timeout));
        drop(cfg);
        if idle == super::IdleAction::Close {
            tracing::info!(peer = %self.peer, issuer = %self.issuer_label(), "issuer link idle too long; closing");
            metrics::counter!("switch_links_closed_total", "reason" => "idle").increment(1);
            ctx.stop();
            return;
        }
        if let Some((deadline, _)) = self.echo_deadline {
            if now >= deadline {
                tracing::warn!(peer = %self.peer, issuer = %self.issuer_label(), "echo not answered; marking link down");
                metrics::counter!("switch_links_closed_total", "reason" => "echo_timeout")
                    .increment(1);
                ctx.stop();
                return;
            }
        }
        if let (true, Some((Some(interval), timeout))) = (self.signed_on, echo) {
            let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
            if self.echo_deadline.is_none() && now - self.last_send >= interval {
                self.send_echo(now + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX));
                return;
            }
        }
        if idle == super::IdleAction::KeepAlive {
            self.last_send = now;
            self.writer.write(Frame::KeepAlive);
        }
    }

    fn send_echo(&mut self, deadline: i64) {
        let Some(route) = self.route.clone() else {
            return;
        };
        let stan = self.next_stan();
        let mut b = MessageBuilder::new(
            Mti::NETWORK_REQUEST,
            Header::new(route.id, self.shared.switch_id),
        );
        b.set(7, self.shared.transmission_now())
            .set(11, digits6(stan))
            .set(33, self.shared.switch_id.as_bytes())
            .set(70, b"301");
        if let Ok(bytes) = b.build() {
            self.echo_deadline = Some((deadline, stan));
            self.send(bytes);
        }
    }
}

fn digits6(n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    let mut v = n % 1_000_000;
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out
}

impl Actor for IssuerLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
        self.self_addr = Some(ctx.address());
        ctx.run_interval(
            Duration::from_millis(self.shared.tick_ms.max(1)),
            |act, ctx| act.tick(ctx),
        );
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        metrics::gauge!("switch_issuer_links").decrement(1.0);
        drop(self.on_stop.take());
        if let (Some(route), Some(slot)) = (self.route.clone(), self.slot) {
            route.release_slot(slot);
            tracing::info!(issuer = %route.id, slot, pending = self.pending.len(), "issuer link closed");
        }
        // Nothing is left unanswered: requests queued and never sent are declined (the
        // issuer never saw them), what this link was waiting for times out now.
        for fwd in self.inbox.close() {
            self.answer_unsent(fwd, ResponseCode::ISSUER_INOPERATIVE);
        }
        for (stan, p) in std::mem::take(&mut self.pending) {
            {
                self.answer_from_switch(
                    stan,
                    p,
                    ResponseCode::ISSUER_TIMEOUT,
                    Some(reason::ISSUER_TIMEOUT),
                );
            }
        }
    }
}

impl WriteHandler<FramingError> for IssuerLink {}

impl StreamHandler<Result<Frame, FramingError>> for IssuerLink {
    fn handle(&mut self, item: Result<Frame, FramingError>, ctx: &mut Self::Context) {
        self.last_recv = self.shared.clock.now_millis();
        match item {
            Ok(Frame::KeepAlive) => {}
            Ok(Frame::Message(raw)) => self.on_payload(raw, ctx),
            Err(e) => {
                metrics::counter!("switch_framing_errors_total", "side" => "issuer").increment(1);
                tracing::warn!(peer = %self.peer, error = %e, "framing error on issuer link; closing");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Flush> for IssuerLink {
    type Result = ();
    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) {
        let mut forwards = std::mem::take(&mut self.spare);
        self.inbox.take(&mut forwards);
        // One clock read for the batch: its requests are sent within microseconds.
        let now = self.shared.clock.now_millis();
        for fwd in forwards.drain(..) {
            self.on_forward(fwd, now);
        }
        self.spare = forwards;
    }
}

impl Handler<SiblingResponse> for IssuerLink {
    type Result = ();
    fn handle(&mut self, msg: SiblingResponse, _ctx: &mut Self::Context) {
        let now = self.shared.clock.now_millis();
        self.on_response(msg.0, now);
    }
}

/// The binding of a dialled link, known before its first frame.
struct BindDialled {
    route: Arc<IssuerRoute>,
    slot: u8,
    on_stop: tokio::sync::oneshot::Sender<()>,
}

impl Handler<Deliver> for IssuerLink {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _ctx: &mut Self::Context) {
        self.send(msg.0);
    }
}

/// Test hooks: the link's inbox and in-flight count, and a stop on demand.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "(Arc<Inbox<Forward>>, Arc<AtomicUsize>)")]
struct Internals;

#[cfg(test)]
impl Handler<Internals> for IssuerLink {
    type Result = MessageResult<Internals>;
    fn handle(&mut self, _: Internals, _: &mut Self::Context) -> Self::Result {
        MessageResult((self.inbox.clone(), self.in_flight.clone()))
    }
}

#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
struct StopNow;

#[cfg(test)]
impl Handler<StopNow> for IssuerLink {
    type Result = ();
    fn handle(&mut self, _: StopNow, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Test hook: how many deadlines the link keeps queued.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "usize")]
struct QueuedDeadlines;

#[cfg(test)]
impl Handler<QueuedDeadlines> for IssuerLink {
    type Result = usize;
    fn handle(&mut self, _: QueuedDeadlines, _: &mut Self::Context) -> usize {
        self.deadlines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::originals::{Original, OriginalState};
    use iso8583::{Header, InstId, MessageBuilder, Mti};
    use std::sync::atomic::Ordering;

    fn purchase() -> Message {
        purchase_numbered(1)
    }

    fn purchase_numbered(stan: u32) -> Message {
        let header = Header::new(
            InstId::new("01030000").unwrap(),
            InstId::new("00010000").unwrap(),
        );
        let mut b = MessageBuilder::new(Mti::FINANCIAL_REQUEST, header);
        b.set(2, "6222020000000123")
            .set(3, "000000")
            .set(4, "000000012345")
            .set(7, "1121093000")
            .set(11, format!("{stan:06}"))
            .set(25, "00")
            .set(32, "00010000")
            .set(33, "00010000")
            .set(41, "TERM0001")
            .set(42, "123456789012345")
            .set(49, "156");
        Message::decode(b.build().unwrap()).unwrap()
    }

    /// A dialled link over a real socket, with the issuer's end of it, the link's inbox
    /// and in-flight count, and its stop signal.
    struct TestLink {
        shared: Arc<Shared>,
        link: Addr<IssuerLink>,
        issuer_side: TcpStream,
        inbox: Arc<Inbox<Forward>>,
        in_flight: Arc<AtomicUsize>,
        stopped: tokio::sync::oneshot::Receiver<()>,
    }

    fn test_config() -> crate::config::Config {
        crate::config::Config::from_toml_str("", std::path::Path::new("switch.toml")).unwrap()
    }

    async fn dialled_link() -> TestLink {
        dialled_link_on(Arc::new(Shared::for_tests(test_config()))).await
    }

    async fn dialled_link_on(shared: Arc<Shared>) -> TestLink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer_side = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let id = InstId::new("01030000").unwrap();
        // The route the switch state knows, if the test gave it one (reversals go there).
        let route = shared
            .routes
            .get(&id)
            .cloned()
            .unwrap_or_else(|| Arc::new(IssuerRoute::new(id, 30_000, 100)));
        let (on_stop, stopped) = tokio::sync::oneshot::channel();
        let link = IssuerLink::start_dialled(shared.clone(), stream, peer, route, on_stop).unwrap();
        let (inbox, in_flight) = link.send(Internals).await.unwrap();
        TestLink {
            shared,
            link,
            issuer_side,
            inbox,
            in_flight,
            stopped,
        }
    }

    /// What an acquirer link hands over for `msg` (its original entered as pending, in
    /// flight counted on the link and the switch), answered into `outbox`.
    fn hand_over(
        shared: &Shared,
        in_flight: &AtomicUsize,
        msg: Message,
        outbox: Arc<Outbox>,
    ) -> Forward {
        let key = TxnKey::of(&msg).unwrap();
        let kind = TxnKind::of(&msg);
        let now = shared.clock.now_millis();
        let record = crate::actors::acquirer::request_record(
            &msg,
            key,
            kind,
            InstId::new("00010000").unwrap(),
            20261121,
            now,
        );
        shared.originals.insert(
            key,
            Original::pending(kind, 12_345, b"6222020000000123", b"TERM0001", 20261121),
        );
        // What the acquirer link counts when it hands a request over.
        shared.forwarded(in_flight);
        Forward {
            request: Box::new(msg),
            reply_to: outbox,
            key,
            kind,
            record,
            received_ms: now,
            reservation: None,
            original_issuer_stan: None,
            original_at: None,
        }
    }

    /// SPEC 8: a request queued for an issuer link that stops before sending it never
    /// reached the issuer, so the switch answers it `91` itself and gives back what it held.
    /// (Had the link sent it, the stop would answer it as timed out instead.)
    #[actix::test]
    async fn requests_queued_on_an_issuer_link_that_stops_are_declined_91_and_released() {
        let t = dialled_link().await;
        let shared = t.shared.clone();
        let (outbox, mut answers) = super::super::outbox::recording_outbox(shared.clone());
        let msg = purchase();
        let key = TxnKey::of(&msg).unwrap();
        let fwd = hand_over(&shared, &t.in_flight, msg, outbox);

        // Both on this thread, the link's: the stop is in its mailbox before the wake-up
        // the push sends, so the link stops with the request still queued.
        t.link.do_send(StopNow);
        let queued = t.inbox.push(fwd);
        assert!(queued.is_ok(), "the inbox was still open");

        // A guard only: the answer comes from the link's stop, not from a clock.
        let answer = tokio::time::timeout(Duration::from_secs(10), answers.recv())
            .await
            .expect("no answer for the queued request")
            .unwrap();
        let answer = Message::decode(answer).unwrap();
        assert_acquirer_answer(&answer, b"91", b"000001");
        t.stopped.await.unwrap_err(); // the link ended (its stop signal dropped)
        assert_eq!(t.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(shared.in_flight.load(Ordering::Relaxed), 0);
        let state = shared.originals.with(&key, |o| o.map(|o| o.state));
        assert_eq!(state, Some(OriginalState::NotApproved));
        // The issuer never saw it.
        let mut buf = [0u8; 64];
        let n = tokio::io::AsyncReadExt::read(&mut { t.issuer_side }, &mut buf)
            .await
            .unwrap();
        assert_eq!(
            n, 0,
            "nothing was written to the issuer before the link closed"
        );
    }

    /// Answered requests leave the link's deadline queue as their answers come in: it
    /// holds what is in flight, not every request of the last timeout. A request not yet
    /// answered holds the front (it is the next to time out) until it is answered.
    #[actix::test]
    async fn answered_requests_leave_the_deadline_queue() {
        use futures::SinkExt;
        use iso8583::{Frame, FrameCodec};
        const N: u32 = 40;
        let t = dialled_link().await;
        let (r, w) = t.issuer_side.into_split();
        let mut from_switch = FramedRead::new(r, FrameCodec::default());
        let mut to_switch = tokio_util::codec::FramedWrite::new(w, FrameCodec::default());
        let (link, inbox, in_flight) = (t.link, t.inbox, t.in_flight);
        let (outbox, mut answers) = super::super::outbox::recording_outbox(t.shared.clone());
        for n in 1..=N {
            let fwd = hand_over(&t.shared, &in_flight, purchase_numbered(n), outbox.clone());
            assert!(inbox.push(fwd).is_ok());
        }
        let mut forwarded = Vec::new();
        while forwarded.len() < N as usize {
            forwarded.push(forwarded_to_issuer(&mut from_switch).await);
        }
        assert_eq!(link.send(QueuedDeadlines).await.unwrap(), N as usize);
        let approve = |req: &Message| {
            MessageBuilder::response_to(
                req,
                &[2, 3, 4, 7, 11, 25, 32, 33, 41, 42, 49, 100],
                ResponseCode::APPROVED,
            )
            .build()
            .unwrap()
        };
        // All but the first: the first still pending holds the whole queue.
        for req in &forwarded[1..] {
            to_switch.feed(Frame::Message(approve(req))).await.unwrap();
        }
        SinkExt::<Frame>::flush(&mut to_switch).await.unwrap();
        for _ in 1..N {
            assert_eq!(answered(&mut answers).await.field(39), Some(&b"00"[..]));
        }
        assert_eq!(link.send(QueuedDeadlines).await.unwrap(), N as usize);
        // The first answered: everything behind it was answered already.
        to_switch
            .send(Frame::Message(approve(&forwarded[0])))
            .await
            .unwrap();
        let first = answered(&mut answers).await;
        assert_eq!(first.field(11), Some(&b"000001"[..]));
        assert_eq!(link.send(QueuedDeadlines).await.unwrap(), 0);
        assert_eq!(in_flight.load(Ordering::Relaxed), 0);
    }

    /// Guards only: every frame and answer in these tests follows from the test's sends.
    const GUARD: Duration = Duration::from_secs(10);

    /// The next request the link wrote to the issuer.
    async fn forwarded_to_issuer(
        from_switch: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, iso8583::FrameCodec>,
    ) -> Message {
        use futures::StreamExt;
        loop {
            let frame = tokio::time::timeout(GUARD, from_switch.next())
                .await
                .expect("a forwarded request within the guard time");
            if let iso8583::Frame::Message(raw) = frame.unwrap().unwrap() {
                return Message::decode(raw).unwrap();
            }
        }
    }

    /// The issuer's answer `code` to `forwarded` (the request as the switch sent it).
    fn issuer_answer(forwarded: &Message, code: ResponseCode) -> bytes::Bytes {
        MessageBuilder::response_to(
            forwarded,
            &[2, 3, 4, 7, 11, 25, 32, 33, 41, 42, 49, 100],
            code,
        )
        .build()
        .unwrap()
    }

    /// `answer` is the 0210 the acquirer gets: response code `code`, and its own F11 back
    /// (the switch rewrote F11 for the issuer link).
    fn assert_acquirer_answer(answer: &Message, code: &[u8; 2], acquirer_f11: &[u8; 6]) {
        assert_eq!(answer.mti(), Mti::FINANCIAL_RESPONSE);
        assert_eq!(answer.field(39), Some(&code[..]));
        assert_eq!(
            answer.field(11),
            Some(&acquirer_f11[..]),
            "the acquirer's own F11"
        );
    }

    /// The next answer the link gave the acquirer side.
    async fn answered(answers: &mut tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>) -> Message {
        let raw = tokio::time::timeout(GUARD, answers.recv())
            .await
            .expect("an answer within the guard time");
        Message::decode(raw.unwrap()).unwrap()
    }

    /// A journal that notes, at each append, how many requests the switch counts in flight.
    struct InFlightAtAppend {
        shared: std::sync::OnceLock<std::sync::Weak<Shared>>,
        seen: std::sync::Mutex<Vec<(u8, usize)>>,
    }

    impl crate::journal::Journal for InFlightAtAppend {
        fn append(
            &self,
            kind: u8,
            _payload: crate::journal::Payload,
            on_durable: Option<crate::journal::Completion>,
        ) {
            let n = self
                .shared
                .get()
                .and_then(std::sync::Weak::upgrade)
                .map_or(usize::MAX, |s| s.in_flight.load(Ordering::SeqCst));
            self.seen.lock().unwrap().push((kind, n));
            if let Some(done) = on_durable {
                done(Ok(()));
            }
        }

        fn flush_blocking(&self) -> Result<(), crate::journal::JournalError> {
            Ok(())
        }
    }

    /// Shutdown waits for nothing in flight, then flushes the journal and drains the links:
    /// an answer's record must be in the journal before its request stops counting, or the
    /// flush can run before it and the switch stop with the answer unwritten.
    #[actix::test]
    async fn an_answer_is_journalled_before_its_request_leaves_the_in_flight_count() {
        use futures::SinkExt;
        use iso8583::{Frame, FrameCodec};
        let watch = Arc::new(InFlightAtAppend {
            shared: std::sync::OnceLock::new(),
            seen: std::sync::Mutex::new(Vec::new()),
        });
        let mut shared = Shared::for_tests(test_config());
        shared.journal = watch.clone();
        let shared = Arc::new(shared);
        assert!(watch.shared.set(Arc::downgrade(&shared)).is_ok());
        let t = dialled_link_on(shared.clone()).await;
        let (r, w) = t.issuer_side.into_split();
        let mut from_switch = FramedRead::new(r, FrameCodec::default());
        let mut to_switch = tokio_util::codec::FramedWrite::new(w, FrameCodec::default());
        let (outbox, mut answers) = super::super::outbox::recording_outbox(shared.clone());
        let forward = |msg: Message| {
            let fwd = hand_over(&shared, &t.in_flight, msg, outbox.clone());
            assert!(t.inbox.push(fwd).is_ok());
        };

        // Answered by the issuer (`on_response`).
        forward(purchase());
        let forwarded = forwarded_to_issuer(&mut from_switch).await;
        let approval = issuer_answer(&forwarded, ResponseCode::APPROVED);
        to_switch.send(Frame::Message(approval)).await.unwrap();
        assert_eq!(answered(&mut answers).await.field(39), Some(&b"00"[..]));

        // Answered by the switch (`answer_from_switch`): the link stops with it pending.
        forward(purchase_numbered(2));
        forwarded_to_issuer(&mut from_switch).await;
        t.link.do_send(StopNow);
        assert_eq!(answered(&mut answers).await.field(39), Some(&b"98"[..]));

        let outcomes: Vec<usize> = watch
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(kind, _)| *kind == crate::records::KIND_OUTCOME)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(outcomes, [1, 1], "in flight when each outcome was appended");
        assert_eq!(shared.in_flight.load(Ordering::SeqCst), 0);
        assert_eq!(t.in_flight.load(Ordering::SeqCst), 0);
    }

    /// ARCHITECTURE 6, durable before answered: an approval whose outcome record cannot be
    /// journalled is not passed on. The acquirer gets 96, the original is reversed by the
    /// switch, and the issuer gets a 0420 for it (4361).
    #[actix::test]
    async fn an_approval_that_cannot_be_journalled_is_answered_96_and_reversed() {
        use futures::SinkExt;
        use iso8583::{Frame, FrameCodec};
        let journal = Arc::new(crate::journal::MemoryJournal::new());
        let id = InstId::new("01030000").unwrap();
        let route = Arc::new(IssuerRoute::new(id, 30_000, 100));
        let mut shared = Shared::for_tests(test_config());
        shared.journal = journal.clone();
        shared.routes.insert(id, route.clone());
        let shared = Arc::new(shared);
        let actor = IssuerRouteActor::new(shared.clone(), route.clone()).start();
        assert!(route.actor.set(actor).is_ok());
        let t = dialled_link_on(shared.clone()).await;
        let (r, w) = t.issuer_side.into_split();
        let mut from_switch = FramedRead::new(r, FrameCodec::default());
        let mut to_switch = tokio_util::codec::FramedWrite::new(w, FrameCodec::default());

        // The issuer signs on, so the route has a link to send the reversal on.
        let mut sign_on =
            MessageBuilder::new(Mti::NETWORK_REQUEST, Header::new(shared.switch_id, id));
        sign_on
            .set(7, "1121093000")
            .set(11, "000001")
            .set(33, id.as_bytes())
            .set_numeric(70, 1);
        to_switch
            .send(Frame::Message(sign_on.build().unwrap()))
            .await
            .unwrap();
        let signed = forwarded_to_issuer(&mut from_switch).await;
        assert_eq!(signed.mti(), Mti::NETWORK_RESPONSE);
        assert_eq!(signed.field(39), Some(&b"00"[..]));

        let (outbox, mut answers) = super::super::outbox::recording_outbox(shared.clone());
        let msg = purchase();
        let key = TxnKey::of(&msg).unwrap();
        assert!(t
            .inbox
            .push(hand_over(&shared, &t.in_flight, msg, outbox.clone()))
            .is_ok());
        let forwarded = forwarded_to_issuer(&mut from_switch).await;
        let issuer_stan = forwarded.field(11).unwrap().to_vec();
        journal.set_failing(true);
        let approval = issuer_answer(&forwarded, ResponseCode::APPROVED);
        to_switch.send(Frame::Message(approval)).await.unwrap();

        assert_acquirer_answer(&answered(&mut answers).await, b"96", b"000001");
        assert_eq!(
            shared.originals.with(&key, |o| o.map(|o| o.state)),
            Some(OriginalState::Reversed)
        );
        let advice = forwarded_to_issuer(&mut from_switch).await;
        assert_eq!(advice.mti(), Mti::REVERSAL_ADVICE);
        let f90 = advice.field(90).unwrap();
        assert_eq!(
            &f90[4..10],
            &issuer_stan[..],
            "F90 names the original as the issuer knows it"
        );
        assert!(advice
            .field(60)
            .unwrap()
            .starts_with(&reason::ISSUER_TIMEOUT));

        // A decline moves no money: with the journal still failing it reaches the acquirer
        // as the issuer gave it.
        assert!(t
            .inbox
            .push(hand_over(
                &shared,
                &t.in_flight,
                purchase_numbered(2),
                outbox
            ))
            .is_ok());
        let forwarded = forwarded_to_issuer(&mut from_switch).await;
        let decline = issuer_answer(&forwarded, ResponseCode::INSUFFICIENT_FUNDS);
        to_switch.send(Frame::Message(decline)).await.unwrap();
        assert_acquirer_answer(&answered(&mut answers).await, b"51", b"000002");
    }
}
