//! The cut-over timer (SPEC.md section 12): starts a cut-over when the clock passes the
//! configured time (or an operator asks), announces `0820/201` and `0820/202` to every
//! signed-on issuer link and bound acquirer link, and at the end hands unanswered advices of
//! the closed day to manual handling and runs clearing.

use super::route::CloseDay;
use super::Deliver;
use crate::cutover::Step;
use crate::state::{f15_of, Shared};
use actix::prelude::*;
use iso8583::{Header, InstId, MessageBuilder, Mti};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const NM_CUTOVER_START: u16 = 201;
pub const NM_CUTOVER_END: u16 = 202;

/// STANs of announcements to acquirers.
static ACQ_STAN: AtomicU32 = AtomicU32::new(0);

pub struct CutoverTimer {
    shared: Arc<Shared>,
}

impl CutoverTimer {
    #[must_use]
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Actor for CutoverTimer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(
            Duration::from_millis(self.shared.tick_ms.max(1)),
            |act, _| tick(&act.shared),
        );
    }
}

/// One timer step: start or end a cut-over when due.
pub fn tick(shared: &Arc<Shared>) {
    let now = shared.clock.now_millis();
    let derived = shared.clock_date(now);
    let duration =
        i64::try_from(shared.config.load().switch.cutover_duration.as_millis()).unwrap_or(i64::MAX);
    match shared.day.step(derived, now, duration) {
        Step::Nothing => {}
        Step::Start { new, .. } => {
            start(shared, new);
        }
        Step::End { .. } => end(shared),
    }
}

/// Start a cut-over to `new` now (timer or operator). Returns the closing date, or `None`
/// if one is already in progress.
pub fn start(shared: &Arc<Shared>, new: u32) -> Option<u32> {
    let now = shared.clock.now_millis();
    let closing = shared.day.start(new, now)?;
    tracing::info!(closing, new, "cut-over started");
    metrics::counter!("switch_cutovers_total", "phase" => "start").increment(1);
    metrics::gauge!("switch_settlement_date").set(f64::from(new));
    announce(shared, NM_CUTOVER_START, closing);
    Some(closing)
}

/// Operator-triggered cut-over (`switch cutover`, `POST /cutover`): the next business date.
pub fn start_now(shared: &Arc<Shared>) -> Option<u32> {
    let new = crate::cutover::next_date(shared.day.date());
    start(shared, new)
}

/// End the cut-over in progress: announce the new date, give up unanswered advices of the
/// closed day (reported for manual handling), run clearing of the closed date.
pub fn end(shared: &Arc<Shared>) {
    let started = shared.day.started_ms();
    let Some(closed) = shared.day.end() else {
        return;
    };
    let new = shared.day.date();
    tracing::info!(closed, new, "cut-over ended");
    metrics::counter!("switch_cutovers_total", "phase" => "end").increment(1);
    announce(shared, NM_CUTOVER_END, new);
    // Originals past every refund window can no longer be referred to, and duplicate
    // detection is per settlement day: keys of the closed day are done with.
    let rules = crate::originals::RelatedRules::from(&shared.config.load().rules);
    let dropped = shared
        .originals
        .end_day(&rules, shared.clock.now_millis(), closed);
    tracing::info!(
        dropped,
        day_keys = shared.originals.len(),
        "originals past their refund window and the closed day's keys forgotten"
    );
    shared.originals.forget_reversal_answers();
    for route in shared.routes.values() {
        if let Some(actor) = route.actor.get() {
            actor.do_send(CloseDay {
                closed,
                queued_before_ms: started,
            });
        }
    }
    let cfg = shared.config.load_full();
    if cfg.clearing.after_cutover {
        let journal = shared.journal.clone();
        std::thread::spawn(move || {
            // Everything of the closed day must be on disk before clearing reads it.
            if let Err(e) = journal.flush_blocking() {
                tracing::error!(error = %e, "journal flush before clearing failed; clearing not run");
                return;
            }
            crate::server::clear_after_cutover(&cfg, closed);
        });
    }
}

fn announcement(
    shared: &Shared,
    dest: InstId,
    code: u16,
    date: u32,
    stan: u32,
) -> Option<bytes::Bytes> {
    let mut b = MessageBuilder::new(Mti::NETWORK_REQUEST, Header::new(dest, shared.switch_id));
    b.set(7, shared.transmission_now())
        .set_numeric(11, u64::from(stan % 1_000_000))
        .set(15, f15_of(date))
        .set(33, shared.switch_id.as_bytes())
        .set_numeric(70, u64::from(code));
    b.build().ok()
}

fn announce(shared: &Shared, code: u16, date: u32) {
    let mut sent = 0usize;
    for route in shared.routes.values() {
        for link in route.links.load().iter() {
            let stan = route.next_route_stan();
            if let Some(m) = announcement(shared, route.id, code, date, stan) {
                link.addr.do_send(Deliver(m));
                sent += 1;
            }
        }
    }
    for entry in &shared.acquirer_links {
        let (inst, addr) = entry.value();
        let stan = ACQ_STAN.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(m) = announcement(shared, *inst, code, date, stan) {
            addr.do_send(Deliver(m));
            sent += 1;
        }
    }
    tracing::info!(code, date, links = sent, "cut-over announced");
}
