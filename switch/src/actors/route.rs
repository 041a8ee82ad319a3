//! `IssuerRouteActor`: one per issuer institution. Holds the store-and-forward queue of
//! 0420 advices the switch generates (SPEC.md section 8): journalled when queued, sent on
//! a signed-on link, resent at an interval until the issuer's 0430 arrives, bounded.

use super::{journal, Deliver};
use crate::core::{build_reversal, pass_on_reversal, TxnKey};
use crate::records::{AdviceDoneRecord, AdviceRecord, SwitchRecord};
use crate::state::{IssuerRoute, Shared};
use actix::prelude::*;
use iso8583::Message;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Resend interval of an unanswered advice when the issuer's `advice_retry_secs` is unset.
pub const ADVICE_RETRY_MS: i64 = 30_000;
/// Sends before an advice is reported for manual handling (`advice_max_attempts` default).
pub const ADVICE_MAX_ATTEMPTS: u32 = 10;

/// Queue a reversal of the transaction `template` describes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct QueueReversal {
    pub source: ReversalSource,
    /// F11 of the original as sent to the issuer (the switch rewrites it per link).
    pub original_stan: u32,
    pub reason: [u8; 4],
    pub original: Option<TxnKey>,
}

/// Where a reversal advice comes from.
pub enum ReversalSource {
    /// The switch reverses a transaction itself (timeout, late approval, undeliverable,
    /// early reversal): built from the acquirer's request (or the issuer's late answer).
    Generated(Message),
    /// An acquirer's own 0420, passed on with the issuer-side F11 of the original in F90.
    Acquirer(Message),
}

/// The issuer answered the advice with this F11.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AdviceAnswered {
    pub stan: u32,
}

struct Advice {
    payload: bytes::Bytes,
    attempts: u32,
    next_at: i64,
    reason: [u8; 4],
    queued_ms: i64,
}

/// One queued advice as the admin listing shows it (no card data).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdviceInfo {
    pub issuer: String,
    pub stan: u32,
    pub reason: String,
    pub attempts: u32,
    pub queued_ms: i64,
}

/// List the advices still waiting for their 0430.
#[derive(Message)]
#[rtype(result = "Vec<AdviceInfo>")]
pub struct ListAdvices;

impl Handler<ListAdvices> for IssuerRouteActor {
    type Result = MessageResult<ListAdvices>;

    fn handle(&mut self, _msg: ListAdvices, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.queue
                .iter()
                .map(|(stan, a)| AdviceInfo {
                    issuer: self.route.id.to_string(),
                    stan: *stan,
                    reason: String::from_utf8_lossy(&a.reason).into_owned(),
                    attempts: a.attempts,
                    queued_ms: a.queued_ms,
                })
                .collect(),
        )
    }
}

pub struct IssuerRouteActor {
    shared: Arc<Shared>,
    route: Arc<IssuerRoute>,
    queue: BTreeMap<u32, Advice>,
}

impl IssuerRouteActor {
    pub fn new(shared: Arc<Shared>, route: Arc<IssuerRoute>) -> Self {
        Self {
            shared,
            route,
            queue: BTreeMap::new(),
        }
    }

    fn pump(&mut self) {
        let now = self.shared.clock.now_millis();
        let (retry_ms, max_attempts) = self
            .shared
            .config
            .load()
            .institution_by_id(&self.route.id)
            .and_then(|i| i.issuer.as_ref())
            .map_or((ADVICE_RETRY_MS, ADVICE_MAX_ATTEMPTS), |s| {
                (
                    i64::try_from(s.advice_retry.as_millis()).unwrap_or(ADVICE_RETRY_MS),
                    s.advice_max_attempts,
                )
            });
        let mut given_up = Vec::new();
        for (stan, advice) in &mut self.queue {
            if advice.next_at > now {
                continue;
            }
            if advice.attempts >= max_attempts {
                given_up.push(*stan);
                continue;
            }
            let Some(link) = self.route.pick() else { break };
            link.addr.do_send(Deliver(advice.payload.clone()));
            advice.attempts += 1;
            advice.next_at = now + retry_ms;
            metrics::counter!("switch_advices_sent_total", "issuer" => self.route.id.to_string())
                .increment(1);
        }
        for stan in given_up {
            self.give_up(stan, "after its retries");
        }
        metrics::gauge!("switch_advices_pending", "issuer" => self.route.id.to_string())
            .set(self.queue.len() as f64);
    }

    /// Take an advice off the queue for manual handling: logged at error level, counted,
    /// journalled as done without an answer.
    fn give_up(&mut self, stan: u32, why: &str) {
        let Some(a) = self.queue.remove(&stan) else {
            return;
        };
        tracing::error!(
            issuer = %self.route.id,
            stan,
            reason = %String::from_utf8_lossy(&a.reason),
            attempts = a.attempts,
            "advice unanswered {why}; left for manual handling"
        );
        metrics::counter!("switch_advices_abandoned_total", "issuer" => self.route.id.to_string())
            .increment(1);
        let rec = SwitchRecord::AdviceDone(AdviceDoneRecord {
            issuer: self.route.id.to_string(),
            advice_stan: stan,
            answered: false,
        });
        journal(&*self.shared.journal, &rec);
    }
}

impl Actor for IssuerRouteActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(
            Duration::from_millis(self.shared.tick_ms.max(1)),
            |act, _| act.pump(),
        );
    }
}

impl Handler<QueueReversal> for IssuerRouteActor {
    type Result = ();

    fn handle(&mut self, msg: QueueReversal, _ctx: &mut Self::Context) {
        let stan = self.route.next_route_stan();
        let (_, f15) = self.shared.settlement_now();
        let f7 = self.shared.transmission_now();
        let built = match &msg.source {
            ReversalSource::Generated(template) => build_reversal(
                template,
                msg.original_stan,
                msg.reason,
                self.shared.switch_id,
                self.route.id,
                stan,
                &f7,
                &f15,
            ),
            ReversalSource::Acquirer(request) => pass_on_reversal(
                request,
                msg.original_stan,
                self.shared.switch_id,
                self.route.id,
                stan,
                &f15,
            ),
        };
        let payload = match built {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(issuer = %self.route.id, error = %e, "could not build a reversal advice");
                return;
            }
        };
        let rec = SwitchRecord::Advice(AdviceRecord {
            issuer: self.route.id.to_string(),
            advice_stan: stan,
            reason: msg.reason,
            original: msg.original,
            payload: payload.to_vec(),
            queued_ms: self.shared.clock.now_millis(),
        });
        journal(&*self.shared.journal, &rec);
        let queued_ms = self.shared.clock.now_millis();
        metrics::counter!("switch_reversals_generated_total", "issuer" => self.route.id.to_string(), "reason" => String::from_utf8_lossy(&msg.reason).into_owned()).increment(1);
        self.queue.insert(
            stan,
            Advice {
                payload,
                attempts: 0,
                next_at: 0,
                reason: msg.reason,
                queued_ms,
            },
        );
        self.pump();
    }
}

impl Handler<AdviceAnswered> for IssuerRouteActor {
    type Result = ();

    fn handle(&mut self, msg: AdviceAnswered, _ctx: &mut Self::Context) {
        if self.queue.remove(&msg.stan).is_some() {
            let rec = SwitchRecord::AdviceDone(AdviceDoneRecord {
                issuer: self.route.id.to_string(),
                advice_stan: msg.stan,
                answered: true,
            });
            journal(&*self.shared.journal, &rec);
        }
    }
}

/// A cut-over ended: advices queued before it started belong to the closed day and are
/// not resent past it (SPEC 8): they go to manual handling.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseDay {
    pub closed: u32,
    /// Advices queued up to this moment (the cut-over start) belong to the closed day.
    pub queued_before_ms: i64,
}

impl Handler<CloseDay> for IssuerRouteActor {
    type Result = ();

    fn handle(&mut self, msg: CloseDay, _ctx: &mut Self::Context) {
        let stale: Vec<u32> = self
            .queue
            .iter()
            .filter(|(_, a)| a.queued_ms <= msg.queued_before_ms)
            .map(|(stan, _)| *stan)
            .collect();
        for stan in stale {
            self.give_up(stan, &format!("at the cut-over closing {}", msg.closed));
        }
        metrics::gauge!("switch_advices_pending", "issuer" => self.route.id.to_string())
            .set(self.queue.len() as f64);
    }
}

/// An advice replayed from the journal at start, still unanswered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Requeue {
    pub stan: u32,
    pub payload: bytes::Bytes,
    pub reason: [u8; 4],
    pub queued_ms: i64,
}

impl Handler<Requeue> for IssuerRouteActor {
    type Result = ();

    fn handle(&mut self, msg: Requeue, _ctx: &mut Self::Context) {
        // Keep route-generated STANs clear of replayed ones.
        let counter = msg.stan / 10 + 1;
        self.route
            .advice_counter
            .fetch_max(counter, std::sync::atomic::Ordering::Relaxed);
        self.queue.insert(
            msg.stan,
            Advice {
                payload: msg.payload,
                attempts: 0,
                next_at: 0,
                reason: msg.reason,
                queued_ms: msg.queued_ms,
            },
        );
    }
}
