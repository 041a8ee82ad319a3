//! `AcquirerLink`: one actor per acquirer TCP link. Reads frames, decodes, checks, routes by
//! BIN and sends the request straight to an issuer link actor (one hop). Answers come back
//! through the link's [`Outbox`] and are written in arrival order, a batch per write.

use super::issuer::Forward;
use super::outbox::{Answer, Flush, Outbox, Undeliverable};
use super::route::{QueueReversal, ReversalSource};
use super::{journal, journal_then, Deliver};
use crate::config::Config;
use crate::core::{installment_check, missing_mandatory, switch_response, TxnKey, TxnKind};
use crate::daytable::Hint;
use crate::limits::Reservation;
use crate::originals::{is_original_kind, Begin, Begun, RelatedRules};
use crate::records::{InstallmentTerms, OutcomeRecord, RequestRecord, Responder, SwitchRecord};
use crate::registry::{Decline, MerchantId, TerminalId, TxnCategory};
use crate::state::Shared;
use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use iso8583::{Frame, FrameCodec, FramingError, InstId, Message, Packet, RejectCode, ResponseCode};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

pub struct AcquirerLink {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Bound from the source ID of the first message (SPEC.md section 1).
    institution: Option<InstId>,
    /// Branch IDs of the bound institution also accepted as header source.
    signed_on: bool,
    writer: FramedWrite<Frame, OwnedWriteHalf, FrameCodec>,
    last_recv: i64,
    last_send: i64,
    /// Key in `Shared::acquirer_links` once bound.
    link_id: u64,
    /// Where answers are queued, shared by every forwarded request.
    outbox: Option<Arc<Outbox>>,
    /// The outbox's previous vector, kept empty with its capacity (swapped on each flush).
    spare: Vec<Answer>,
    /// Shutdown asked the link to write out what it holds and close ([`Drain`]).
    draining: bool,
    /// This link's stripe of [`crate::latency::SWITCH_ANSWER_WAIT`].
    latency_stripe: usize,
}

impl AcquirerLink {
    pub fn start(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) -> Addr<Self> {
        let max = shared.config.load().switch.max_frame_bytes;
        let now = shared.clock.now_millis();
        AcquirerLink::create(move |ctx| {
            let (r, w) = stream.into_split();
            ctx.add_stream(FramedRead::new(r, FrameCodec::new(max)));
            metrics::gauge!("switch_acquirer_links").increment(1.0);
            AcquirerLink {
                shared,
                peer,
                institution: None,
                signed_on: false,
                writer: FramedWrite::new(w, FrameCodec::new(max), ctx),
                last_recv: now,
                last_send: now,
                link_id: 0,
                outbox: None,
                spare: Vec::new(),
                draining: false,
                latency_stripe: crate::latency::SWITCH_ANSWER_WAIT.stripe(),
            }
        })
    }

    fn outbox(&mut self, ctx: &Context<Self>) -> Arc<Outbox> {
        let shared = &self.shared;
        self.outbox
            .get_or_insert_with(|| Arc::new(Outbox::new(ctx.address().recipient(), shared.clone())))
            .clone()
    }

    fn send(&mut self, payload: bytes::Bytes) {
        self.last_send = self.shared.clock.now_millis();
        self.writer.write(Frame::Message(payload));
    }

    /// Answer a request with a switch decision, journalled before it is sent.
    fn decline(
        &mut self,
        msg: &Message,
        code: ResponseCode,
        reason: Option<&str>,
        ctx: &mut Context<Self>,
        record: Option<RequestRecord>,
    ) {
        // A declined request keeps the date it was accepted under (its record's).
        let (date, f15) = match &record {
            Some(r) => (r.settlement_date, crate::state::f15_of(r.settlement_date)),
            None => self.shared.settlement_now(),
        };
        let response = switch_response(msg, self.shared.switch_id, code, &f15, reason).build();
        metrics::counter!("switch_transactions_total", "mti" => msg.mti().to_string(), "code" => code.to_string(), "issuer" => "switch").increment(1);
        let Ok(bytes) = response else {
            tracing::error!(mti = %msg.mti(), "could not build a response to a request");
            return;
        };
        let Some(record) = record else {
            self.send(bytes);
            return;
        };
        let now = self.shared.clock.now_millis();
        let outcome = OutcomeRecord {
            key: record.key,
            settlement_date: date,
            code: code.0,
            auth_code: None,
            responder: Responder::Switch,
            answered_ms: now,
            reversal_reason: None,
            installment_fee: None,
        };
        let outbox = self.outbox(ctx);
        let log = &*self.shared.journal;
        journal(log, &SwitchRecord::Request(record));
        // A switch decision is never an approval to reverse: a closed link just does not
        // get it.
        journal_then(log, &SwitchRecord::Outcome(outcome), move || {
            outbox.push(bytes, now);
        });
    }

    fn reject(&mut self, raw: &[u8], code: RejectCode, why: &str) {
        let peer = self.peer.to_string();
        if let Some(r) = super::reject_for(raw, code, &why, &peer, self.shared.switch_id) {
            self.send(r);
        }
    }

    fn on_payload(&mut self, raw: bytes::Bytes, ctx: &mut Context<Self>) {
        let msg = match Packet::decode(raw.clone()) {
            Ok(Packet::Message(m)) => m,
            Ok(Packet::Reject { header, .. }) => {
                metrics::counter!("switch_bad_responses_total", "reason" => "reject_from_acquirer")
                    .increment(1);
                tracing::warn!(peer = %self.peer, reject = %header.reject, "acquirer sent a reject; dropped");
                return;
            }
            Err(e) => {
                let peer = self.peer.to_string();
                if let Some(reject) =
                    super::reject_for(&raw, e.reject_code(), &e, &peer, self.shared.switch_id)
                {
                    self.send(reject);
                }
                return;
            }
        };
        let cfg = self.shared.config.load();
        // Bind the link to the institution of the first message's source ID; afterwards
        // every source ID must belong to that institution (primary or branch ID).
        let source = msg.header().source;
        let inst = cfg.institution(source.as_str()).filter(|i| i.is_acquirer());
        let inst_id = inst.map(|i| i.id);
        let (inst, inst_id) = match (self.institution, inst, inst_id) {
            (Some(bound), Some(inst), Some(id)) if bound == id => (inst, id),
            (Some(_), _, _) => {
                self.reject(
                    &raw,
                    RejectCode::new(0, 5, 5),
                    "source ID differs from the link's institution",
                );
                return;
            }
            (None, Some(inst), Some(id)) if inst.allows_addr(self.peer.ip()) => {
                tracing::info!(peer = %self.peer, institution = %id, "acquirer link bound");
                self.institution = Some(id);
                self.link_id = self.shared.next_link_id.fetch_add(1, Ordering::Relaxed) + 1;
                self.shared
                    .acquirer_links
                    .insert(self.link_id, (id, ctx.address()));
                (inst, id)
            }
            (None, _, _) => {
                metrics::counter!("switch_links_refused_total", "reason" => "unknown_source")
                    .increment(1);
                tracing::warn!(peer = %self.peer, source = %source, "first message not from an acquirer configured for this address; closing link");
                ctx.stop();
                return;
            }
        };
        if msg.mti().is_response() {
            // Answers to our echoes or unexpected responses: nothing to do.
            return;
        }
        let require_sign_on = inst.acquirer.as_ref().is_some_and(|a| a.require_sign_on);
        let kind = TxnKind::of(&msg);
        if kind == TxnKind::Unknown {
            self.reject(&raw, RejectCode::UNPARSEABLE, "unknown transaction type");
            return;
        }
        if kind == TxnKind::NetworkManagement {
            let code = match msg.network_code() {
                Some(1) => {
                    self.signed_on = true;
                    ResponseCode::APPROVED
                }
                Some(2) => {
                    self.signed_on = false;
                    ResponseCode::APPROVED
                }
                Some(301 | 201 | 202) => ResponseCode::APPROVED,
                _ => ResponseCode::FORMAT_ERROR,
            };
            self.decline(&msg, code, None, ctx, None);
            return;
        }
        // One configuration snapshot for the whole request: each `load` is an atomic
        // exchange on a slot of arc-swap's, and a request used to take four.
        self.on_financial(msg, kind, inst_id, require_sign_on, &cfg, ctx);
    }

    fn on_financial(
        &mut self,
        msg: Message,
        kind: TxnKind,
        link_inst: InstId,
        require_sign_on: bool,
        cfg: &Config,
        ctx: &mut Context<Self>,
    ) {
        // Set from the clock when this frame was read.
        let now = self.last_recv;
        if let Some(n) = missing_mandatory(&msg, kind) {
            tracing::info!(mti = %msg.mti(), field = n, "mandatory field missing");
            let reason = format!("F{n} MISSING");
            self.decline(&msg, ResponseCode::FORMAT_ERROR, Some(&reason), ctx, None);
            return;
        }
        // Mandatory check guarantees the key fields.
        let Some(key) = TxnKey::of(&msg) else {
            self.decline(&msg, ResponseCode::FORMAT_ERROR, None, ctx, None);
            return;
        };
        // SPEC 12: during a cut-over, reversals belong to the closing day, voids to the new
        // one (a void of the closed day is then 22), anything else cannot be dated (90).
        let dating = self.shared.day.dating(kind);
        let date = match dating {
            crate::cutover::Dating::Date(d) => d,
            crate::cutover::Dating::CannotDate => self.shared.day.date(),
        };
        let mut record = request_record(&msg, key, kind, link_inst, date, now);
        if dating == crate::cutover::Dating::CannotDate {
            metrics::counter!("switch_cutover_declines_total").increment(1);
            self.decline(
                &msg,
                ResponseCode::CUTOVER_IN_PROGRESS,
                Some("CUT-OVER IN PROGRESS"),
                ctx,
                Some(record),
            );
            return;
        }
        if require_sign_on && !self.signed_on {
            self.decline(&msg, ResponseCode::NOT_SIGNED_ON, None, ctx, Some(record));
            return;
        }
        if kind == TxnKind::Reversal {
            if let Some(code) = self.shared.originals.reversal_answer(&key) {
                // SPEC 7: a duplicate reversal gets the first answer again, and nothing
                // goes to the issuer a second time.
                metrics::counter!("switch_duplicate_reversals_total").increment(1);
                self.decline(&msg, code, None, ctx, None);
                return;
            }
        }
        let Ok(entered_at) = self.shared.originals.enter_key(&key, kind, date) else {
            metrics::counter!("switch_duplicates_total").increment(1);
            // The original's record stays authoritative: answer 94 without journalling a
            // second request under the same key.
            self.decline(&msg, ResponseCode::DUPLICATE, None, ctx, None);
            return;
        };
        if self.shared.draining.load(Ordering::Relaxed) {
            self.decline(
                &msg,
                ResponseCode::ISSUER_INOPERATIVE,
                None,
                ctx,
                Some(record),
            );
            return;
        }
        if kind == TxnKind::Reversal {
            self.on_reversal(msg, key, record, cfg, ctx);
            return;
        }
        let Some(bin) = msg.pan().and_then(|pan| cfg.bins.lookup(pan)).copied() else {
            let code = if msg.pan().is_none() {
                ResponseCode::ORIGINAL_NOT_FOUND
            } else {
                ResponseCode::NO_SUCH_ISSUER
            };
            self.decline(&msg, code, None, ctx, Some(record));
            return;
        };
        let issuer = Some(bin.issuer);
        record.issuer = issuer.map(|i| crate::records::fixed(i.as_str()));
        // Borrowed, not cloned: the route's reference count is a line both link threads
        // would write for every request.
        let Some(route) = issuer.and_then(|i| self.shared.route(&i)) else {
            self.decline(&msg, ResponseCode::NO_SUCH_ISSUER, None, ctx, Some(record));
            return;
        };
        let Some(link) = route.pick() else {
            // SPEC 8 "cannot forward": 91 either way. The reason tells the operator which:
            // no link signed on (the issuer is down), or every link at its in-flight cap
            // (the issuer, or the switch, is not keeping up).
            let (reason, text, folded, why) = if route.is_signed_on() {
                let why = "every signed-on link is at max_in_flight (the issuer, or the switch's journal, is not keeping up)";
                ("at_cap", "ISSUER BUSY", &route.shed_at_cap, why)
            } else {
                let why = "no link of the issuer is signed on";
                ("no_link", "ISSUER NOT SIGNED ON", &route.shed_no_link, why)
            };
            metrics::counter!("switch_sheds_total", "issuer" => route.id.to_string(), "reason" => reason).increment(1);
            if let Some(shed) = folded.note(self.shared.clock.now_millis()) {
                tracing::warn!(issuer = %route.id, reason, shed, "requests answered 91: {why}");
            }
            self.decline(
                &msg,
                ResponseCode::ISSUER_INOPERATIVE,
                Some(text),
                ctx,
                Some(record),
            );
            return;
        };
        let route_id = route.id;
        if kind == TxnKind::InstallmentPurchase {
            let issuer_enabled = cfg
                .institution_by_id(&route_id)
                .and_then(|i| i.issuer.as_ref())
                .is_some_and(|s| s.installment);
            if let Err((code, reason)) = installment_check(&msg, bin.installment, issuer_enabled) {
                self.decline(&msg, code, Some(reason), ctx, Some(record));
                return;
            }
        }
        let reservation = match self.registry_and_limits(
            cfg,
            &msg,
            kind,
            link_inst,
            record.settlement_date,
        ) {
            Ok(r) => r,
            Err(decline) => {
                metrics::counter!("switch_rule_declines_total", "code" => decline.code.to_string(), "reason" => decline.reason).increment(1);
                self.decline(&msg, decline.code, Some(decline.reason), ctx, Some(record));
                return;
            }
        };
        let admitted = self.admit_related(cfg, &msg, entered_at, &record, bin.issuer, reservation);
        let (original_issuer_stan, original_at) = match admitted {
            Ok(admitted) => admitted,
            Err(code) => {
                if let Some(r) = &reservation {
                    self.shared.limits.release(r);
                }
                metrics::counter!("switch_related_declines_total", "code" => code.to_string())
                    .increment(1);
                self.decline(&msg, code, None, ctx, Some(record));
                return;
            }
        };
        self.shared.forwarded(&link.in_flight);
        let forward = Forward {
            request: Box::new(msg),
            reply_to: self.outbox(ctx),
            key,
            kind,
            record,
            received_ms: now,
            reservation,
            original_issuer_stan,
            original_at,
        };
        // A shutdown that began after the check above may not wait for this request
        // (`Shared::forwarded`): it is declined as while draining.
        let refused = if self.shared.draining.load(Ordering::SeqCst) {
            Some((None, forward))
        } else {
            link.inbox
                .push(forward)
                .err()
                .map(|(why, f)| (Some(why), f))
        };
        let Some((why, forward)) = refused else {
            return;
        };
        if let Some(why) = why {
            let reason = match why {
                Undeliverable::Full => "mailbox_full",
                Undeliverable::Closed => "link_closed",
            };
            metrics::counter!("switch_sheds_total", "issuer" => route_id.to_string(), "reason" => reason).increment(1);
        }
        forward.release(&self.shared, now);
        self.decline(
            &forward.request,
            ResponseCode::ISSUER_INOPERATIVE,
            why.map(|_| "ISSUER BUSY"),
            ctx,
            Some(forward.record),
        );
        self.shared.answered(&link.in_flight);
    }
}

impl AcquirerLink {
    /// SPEC.md section 7 for a request about to be forwarded: a related transaction is
    /// checked against its original and holds it; an original is entered as pending.
    /// Returns the F11 a related request's original got at the issuer, and where the
    /// request itself was entered as an original (for its answer's lookup). `entered_at`
    /// is where the request's key was entered (it becomes the original there).
    fn admit_related(
        &self,
        cfg: &Config,
        msg: &Message,
        entered_at: Option<Hint>,
        record: &RequestRecord,
        issuer: InstId,
        reservation: Option<Reservation>,
    ) -> Result<(Option<u32>, Option<Hint>), ResponseCode> {
        let kind = record.kind;
        if !(is_original_kind(kind) || kind.needs_original()) {
            return Ok((None, None));
        }
        let rules = RelatedRules::from(&cfg.rules);
        let begin = Begin {
            kind,
            amount: record.amount,
            pan: msg.pan(),
            terminal: msg.field(41),
            settlement_date: record.settlement_date,
            now_ms: record.received_ms,
            original: record.original,
            issuer: Some(issuer),
            reservation,
            reason: [b'0'; 4],
            entered_at,
        };
        self.shared
            .originals
            .begin_hinted(record.key, &begin, &rules, &self.shared.limits)
            .map(|(begun, at)| match begun {
                Begun::Forward {
                    original_issuer_stan,
                } => (original_issuer_stan, at),
                Begun::Reversed { .. } | Begun::EarlyReversal => (None, at),
            })
    }

    /// An acquirer 0420 reversal (SPEC.md sections 7 and 8): checked against its original,
    /// answered 0430 at once, and sent on to the original's issuer as a store-and-forward
    /// advice (an early reversal is sent when the original's approval arrives).
    fn on_reversal(
        &mut self,
        msg: Message,
        key: TxnKey,
        record: RequestRecord,
        cfg: &Config,
        ctx: &mut Context<Self>,
    ) {
        let reason = msg
            .f60()
            .and_then(|f| f.reason_code())
            .and_then(|r| <[u8; 4]>::try_from(r).ok())
            .unwrap_or(iso8583::subfields::reason::TERMINAL_REVERSAL);
        let rules = RelatedRules::from(&cfg.rules);
        let begin = Begin {
            kind: TxnKind::Reversal,
            amount: record.amount,
            pan: msg.pan(),
            terminal: msg.field(41),
            settlement_date: record.settlement_date,
            now_ms: record.received_ms,
            original: record.original,
            issuer: None,
            reservation: None,
            reason,
            entered_at: None,
        };
        let code = match self
            .shared
            .originals
            .begin(key, &begin, &rules, &self.shared.limits)
        {
            Ok(Begun::Reversed {
                issuer,
                original_issuer_stan,
            }) => {
                let actor = issuer
                    .and_then(|i| self.shared.route(&i))
                    .and_then(|r| r.actor.get());
                match actor {
                    Some(actor) => actor.do_send(QueueReversal {
                        source: ReversalSource::Acquirer(msg.clone()),
                        original_stan: original_issuer_stan,
                        reason,
                        original: record.original,
                    }),
                    None => {
                        tracing::warn!(issuer = ?issuer.map(|i| i.to_string()), "reversal applied but its issuer route is unknown; no advice sent");
                    }
                }
                ResponseCode::APPROVED
            }
            Ok(Begun::EarlyReversal | Begun::Forward { .. }) => ResponseCode::APPROVED,
            Err(code) => {
                metrics::counter!("switch_related_declines_total", "code" => code.to_string())
                    .increment(1);
                code
            }
        };
        self.shared.originals.answer_reversal(key, code);
        self.decline(&msg, code, None, ctx, Some(record));
    }

    /// SPEC.md section 9 rules 3 and 4: the merchant/terminal registry, then the limits,
    /// which reserve the amount (released if the transaction does not end approved).
    /// Related transactions (void, reversal) carry no category of their own: they are
    /// checked against their original.
    fn registry_and_limits(
        &self,
        cfg: &Config,
        msg: &Message,
        kind: TxnKind,
        acquirer: InstId,
        day: u32,
    ) -> Result<Option<Reservation>, Decline> {
        let Some(category) = TxnCategory::of(kind) else {
            return Ok(None);
        };
        let merchant = msg.field(42).unwrap_or_default();
        let terminal = msg.field(41).unwrap_or_default();
        if let Some(registry) = &cfg.registry.registry {
            registry.check(
                acquirer.as_str(),
                merchant,
                terminal,
                msg.field(18).unwrap_or_default(),
                category,
            )?;
        }
        if cfg.registry.limits.is_empty() {
            return Ok(None);
        }
        let (Some(t), Some(m)) = (
            TerminalId::from_field(terminal),
            MerchantId::from_field(merchant),
        ) else {
            return Ok(None);
        };
        let amount = msg.amount().unwrap_or(0);
        self.shared
            .limits
            .reserve(&cfg.registry.limits, &t, &m, category, amount, day)
            .map(Some)
    }
}

fn text<const N: usize>(msg: &Message, n: u8) -> crate::records::ArrayString<N> {
    // The plain text first: the lossy conversion's chunk iterator showed in the profile,
    // and only a value that is not UTF-8 needs it.
    match msg.field_str(n) {
        Some(s) => crate::records::fixed(s.trim_end()),
        None => msg
            .field(n)
            .map(|v| crate::records::fixed(String::from_utf8_lossy(v).trim_end()))
            .unwrap_or_default(),
    }
}

/// The request record the switch journals for an acquirer's `msg` (before it is routed:
/// `issuer` and `issuer_stan` are filled in later).
pub fn request_record(
    msg: &Message,
    key: TxnKey,
    kind: TxnKind,
    link_inst: InstId,
    date: u32,
    now: i64,
) -> RequestRecord {
    RequestRecord {
        key,
        kind,
        mti: msg.mti().0,
        processing_code: msg.processing_code().unwrap_or(*b"000000"),
        pos_condition: msg.pos_condition().unwrap_or(0),
        amount: msg.amount().unwrap_or(0),
        pan: text(msg, 2),
        terminal: text(msg, 41),
        merchant: text(msg, 42),
        mcc: msg
            .numeric(18)
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0),
        rrn: text(msg, 37),
        currency: text(msg, 49),
        link_institution: crate::records::fixed(link_inst.as_str()),
        issuer: None,
        issuer_stan: None,
        settlement_date: date,
        received_ms: now,
        original: msg
            .original_data()
            .and_then(Result::ok)
            .map(|od| TxnKey::of_original(&od)),
        pos_entry: msg
            .numeric(22)
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0),
        card_seq: msg
            .numeric(23)
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0),
        f60: text(msg, 60),
        installment: (kind == TxnKind::InstallmentPurchase)
            .then(|| msg.field(48))
            .flatten()
            .and_then(|v| iso8583::subfields::InstallmentRequest::parse(v).ok())
            .map(|ip| InstallmentTerms {
                periods: ip.periods,
                fee_mode: match ip.fee_mode {
                    iso8583::subfields::FeeMode::Spread => 0,
                    iso8583::subfields::FeeMode::FirstPeriod => 1,
                },
                fee_rate: ip.fee_rate,
                subsidy_rate: ip.subsidy_rate,
            }),
    }
}

impl Actor for AcquirerLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
        let tick = Duration::from_millis(self.shared.tick_ms.max(1));
        ctx.run_interval(tick, |act, ctx| {
            let now = act.shared.clock.now_millis();
            let action = super::idle_action(
                now,
                act.last_recv,
                act.last_send,
                &act.shared.config.load().switch,
            );
            match action {
                super::IdleAction::Close => {
                    metrics::counter!("switch_links_closed_total", "reason" => "idle").increment(1);
                    tracing::info!(peer = %act.peer, "acquirer link idle too long; closing");
                    ctx.stop();
                }
                super::IdleAction::KeepAlive => {
                    act.last_send = now;
                    act.writer.write(Frame::KeepAlive);
                }
                super::IdleAction::Nothing => {}
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.acquirer_links.remove(&self.link_id);
        // Approvals among the answers never written are reversed (4363).
        let unwritten = self.outbox.as_ref().map_or(0, |o| o.close());
        if unwritten > 0 {
            metrics::counter!("switch_answers_unwritten_total").increment(unwritten as u64);
            tracing::warn!(peer = %self.peer, unwritten, "acquirer link closed with answers not yet written");
        }
        metrics::gauge!("switch_acquirer_links").decrement(1.0);
        tracing::info!(peer = %self.peer, institution = ?self.institution.map(|i| i.to_string()), "acquirer link closed");
    }
}

impl WriteHandler<FramingError> for AcquirerLink {}

impl StreamHandler<Result<Frame, FramingError>> for AcquirerLink {
    fn handle(&mut self, item: Result<Frame, FramingError>, ctx: &mut Self::Context) {
        self.last_recv = self.shared.clock.now_millis();
        match item {
            Ok(Frame::KeepAlive) => {}
            Ok(Frame::Message(raw)) => self.on_payload(raw, ctx),
            Err(e) => {
                metrics::counter!("switch_framing_errors_total", "side" => "acquirer").increment(1);
                tracing::warn!(peer = %self.peer, error = %e, "framing error; closing link");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Deliver> for AcquirerLink {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _ctx: &mut Self::Context) {
        if !self.draining {
            self.send(msg.0);
        }
    }
}

impl AcquirerLink {
    /// Write every answer waiting in the outbox, in arrival order, as one batch.
    fn write_outbox(&mut self) {
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
        let mut answers = std::mem::take(&mut self.spare);
        outbox.answers.take(&mut answers);
        if !answers.is_empty() {
            self.last_send = self.shared.clock.now_millis();
        }
        let now = self.last_send;
        for answer in answers.drain(..) {
            crate::latency::SWITCH_ANSWER_WAIT
                .record_ms(self.latency_stripe, now - answer.ready_ms);
            self.writer.write(Frame::Message(answer.frame));
        }
        self.spare = answers;
    }
}

impl Handler<Flush> for AcquirerLink {
    type Result = ();

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) {
        if self.draining {
            // The writer is closing: what comes now stays in the outbox, and the link's
            // stop counts it (and reverses approvals, 4363).
            return;
        }
        self.write_outbox();
    }
}

/// Shutdown, once nothing is in flight and the journal is flushed: write out every answer
/// the link holds, then close it. The link stops when its writer has sent everything
/// (`WriteHandler::finished`), which takes it out of `Shared::acquirer_links`.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for AcquirerLink {
    type Result = ();

    fn handle(&mut self, _msg: Drain, _ctx: &mut Self::Context) {
        self.write_outbox();
        self.draining = true;
        self.writer.close();
    }
}

/// Test hook: the link's outbox (made if it has none yet).
#[cfg(test)]
#[derive(actix::Message)]
#[rtype(result = "Arc<Outbox>")]
struct TestOutbox;

#[cfg(test)]
impl Handler<TestOutbox> for AcquirerLink {
    type Result = MessageResult<TestOutbox>;
    fn handle(&mut self, _: TestOutbox, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.outbox(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use iso8583::{Header, MessageBuilder, Mti};

    /// The next message from the link, or `None` once it closed. The timeout is a guard
    /// only: every frame here comes from the link's own handlers.
    async fn next(
        peer: &mut tokio_util::codec::Framed<TcpStream, FrameCodec>,
    ) -> Option<bytes::Bytes> {
        let frame = tokio::time::timeout(Duration::from_secs(10), peer.next())
            .await
            .expect("neither a frame nor the close within the guard time");
        match frame {
            Some(Ok(Frame::Message(raw))) => Some(raw),
            None => None,
            other => panic!("unexpected frame {other:?}"),
        }
    }

    /// Shutdown's last step for a link: `Drain` writes what the outbox holds, then the link
    /// closes once its writer has sent everything and leaves `acquirer_links` (what
    /// shutdown waits for).
    #[actix::test]
    async fn a_drained_link_writes_what_its_outbox_holds_then_closes() {
        let cfg = crate::config::Config::from_toml_str(
            "[[institution]]\nid = \"01030000\"\nname = \"Acquirer\"\nroles = [\"acquirer\"]\n",
            std::path::Path::new("switch.toml"),
        )
        .unwrap();
        let shared = Arc::new(Shared::for_tests(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer_side = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let link = AcquirerLink::start(shared.clone(), stream, peer);
        let mut peer_side = tokio_util::codec::Framed::new(peer_side, FrameCodec::default());
        // A sign-on binds the link to its institution (and puts it in `acquirer_links`).
        let header = Header::new(
            InstId::new("00010000").unwrap(),
            InstId::new("01030000").unwrap(),
        );
        let mut b = MessageBuilder::new(Mti::NETWORK_REQUEST, header);
        b.set(7, "1121093000")
            .set(11, "000001")
            .set(33, "01030000")
            .set(70, "001");
        peer_side
            .send(Frame::Message(b.build().unwrap()))
            .await
            .unwrap();
        let signed_on = next(&mut peer_side).await.expect("a sign-on answer");
        assert_eq!(
            Message::decode(signed_on).unwrap().field(39),
            Some(&b"00"[..])
        );
        assert_eq!(shared.acquirer_links.len(), 1);

        let outbox = link.send(TestOutbox).await.unwrap();
        // On the link's thread: the drain is in its mailbox before the wake-up the push
        // sends, so the drain itself must write the answer.
        link.do_send(Drain);
        outbox.push(bytes::Bytes::from_static(b"answer one"), 0);
        assert_eq!(
            next(&mut peer_side).await.as_deref(),
            Some(&b"answer one"[..])
        );
        assert_eq!(next(&mut peer_side).await, None, "closed after the answer");
        // The socket closes when the stopped actor is dropped, after `stopped` ran.
        assert!(
            shared.acquirer_links.is_empty(),
            "the stopped link left the table"
        );
    }
}
