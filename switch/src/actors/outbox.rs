//! Batched hand-offs between link actors: [`Inbox`], a queue one actor drains in one go,
//! and [`Outbox`], the answers waiting to be written on one acquirer link.
//!
//! Sending each request or answer as its own actor message cost an envelope allocation
//! (freed on another thread), a channel push and a wake-up of the receiving link per
//! transaction. An inbox takes the item under a short lock and wakes its link only when it
//! goes from empty to non-empty; the link then handles everything queued at once, and
//! writes it in one go. Answers are released by the journal writer a batch at a time, and
//! requests arrive from many acquirer links, so batches form under load by themselves.

use super::route::{QueueReversal, ReversalSource};
use crate::core::TxnKey;
use crate::state::Shared;
use actix::prelude::*;
use bytes::Bytes;
use iso8583::subfields::reason;
use iso8583::{InstId, Message};
use std::sync::{Arc, Mutex, MutexGuard};

/// Items queued on one link beyond which it counts as unable to take more (the bound its
/// mailbox had): a request is then declined `91`, an approval that cannot be queued is
/// reversed.
pub const QUEUE_CAP: usize = 65_536;

/// Capacity a drained vector keeps for the next batch.
const SPARE_KEPT: usize = 1_024;

/// Tells a link that its inbox has items to handle.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Why an item could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeliverable {
    /// The link has closed.
    Closed,
    /// The link is not keeping up: `QUEUE_CAP` items already wait.
    Full,
}

struct Queue<T> {
    items: Vec<T>,
    /// A `Flush` is on its way (or being handled): no other is needed.
    scheduled: bool,
    closed: bool,
}

/// Items for one link actor, handled by it in batches.
pub struct Inbox<T> {
    queue: Mutex<Queue<T>>,
    /// The link (a `Recipient`, so tests can stand in for it).
    link: Recipient<Flush>,
}

impl<T> Inbox<T> {
    #[must_use]
    pub fn new(link: Recipient<Flush>) -> Self {
        Self {
            queue: Mutex::new(Queue {
                items: Vec::new(),
                scheduled: false,
                closed: false,
            }),
            link,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // The queue holds plain items: a panic elsewhere cannot leave it half-updated.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queue an item for the link. The link is woken only if nothing was queued yet.
    pub fn push(&self, item: T) -> Result<(), (Undeliverable, T)> {
        let wake = {
            let mut q = self.lock();
            if q.closed {
                return Err((Undeliverable::Closed, item));
            }
            if q.items.len() >= QUEUE_CAP {
                return Err((Undeliverable::Full, item));
            }
            q.items.push(item);
            !std::mem::replace(&mut q.scheduled, true)
        };
        if wake {
            // `do_send` ignores the mailbox bound: at most one `Flush` is ever waiting.
            self.link.do_send(Flush);
        }
        Ok(())
    }

    /// Take everything queued, swapping in `spare` (an empty vector with capacity) so the
    /// steady state allocates nothing. Called by the link on `Flush`. A spare grown by a
    /// burst (up to `QUEUE_CAP` items) is shrunk first, so the burst's memory is not held
    /// for the rest of the link's life.
    pub fn take(&self, spare: &mut Vec<T>) {
        if spare.capacity() > SPARE_KEPT {
            spare.shrink_to(SPARE_KEPT);
        }
        let mut q = self.lock();
        q.scheduled = false;
        std::mem::swap(&mut q.items, spare);
    }

    /// The link has stopped: later items are refused. Returns the items never handled.
    pub fn close(&self) -> Vec<T> {
        let mut q = self.lock();
        q.closed = true;
        std::mem::take(&mut q.items)
    }
}

/// What it takes to reverse an approval that never reached the acquirer (SPEC 8, reason
/// 4363). Kept small: it rides with every approval until the approval is written.
pub struct Reversible {
    pub issuer: Option<InstId>,
    /// The acquirer's request as received (the reversal's template, decoded again only
    /// when it is needed).
    pub template: Bytes,
    pub key: TxnKey,
    /// F11 of the request at the issuer.
    pub stan: u32,
}

impl Reversible {
    /// Mark the original reversed and queue the 0420 advice to its issuer.
    pub fn reverse(self, shared: &Shared, why: Undeliverable) {
        metrics::counter!("switch_undeliverable_total").increment(1);
        tracing::warn!(why = ?why, "approval could not be delivered to the acquirer; reversing (4363)");
        let template = Message::decode(self.template.clone());
        self.reverse_for(shared, reason::UNDELIVERABLE, template);
    }

    /// Mark the original reversed by the switch (its limits given back) and queue a 0420
    /// advice with `reason` to its issuer; `template` is [`Self::template`] decoded.
    fn reverse_for(
        self,
        shared: &Shared,
        why: [u8; 4],
        template: Result<Message, iso8583::DecodeError>,
    ) {
        shared
            .originals
            .reversed_by_switch(&self.key, &shared.limits);
        let actor = self
            .issuer
            .and_then(|i| shared.route(&i))
            .and_then(|r| r.actor.get());
        match (actor, template) {
            (Some(actor), Ok(template)) => actor.do_send(QueueReversal {
                source: ReversalSource::Generated(template),
                original_stan: self.stan,
                reason: why,
                original: Some(self.key),
            }),
            (None, _) => {
                tracing::error!(
                    "the reversed approval's issuer route is unknown; no reversal sent"
                );
            }
            (_, Err(e)) => {
                tracing::error!(error = %e, "the reversed approval's request could not be decoded again; no reversal sent");
            }
        }
    }
}

/// One answer for the acquirer: the frame, and for an approval of a reversible
/// transaction what it takes to reverse it if the frame is never written.
pub struct Answer {
    pub frame: Bytes,
    /// When the answer was ready (switch clock, ms): `switch_answer_wait_seconds` counts
    /// from here to its write.
    pub ready_ms: i64,
    pub reversible: Option<Reversible>,
}

/// The answers waiting to be written on one acquirer link.
pub struct Outbox {
    pub answers: Inbox<Answer>,
    /// The switch state, for an approval that cannot be delivered.
    pub shared: Arc<Shared>,
}

impl Outbox {
    #[must_use]
    pub fn new(link: Recipient<Flush>, shared: Arc<Shared>) -> Self {
        Self {
            answers: Inbox::new(link),
            shared,
        }
    }

    /// Queue an answer that needs no reversal if lost (a switch decision, a decline),
    /// ready since `ready_ms` (switch clock).
    pub fn push(&self, frame: Bytes, ready_ms: i64) {
        self.deliver(Answer {
            frame,
            ready_ms,
            reversible: None,
        });
    }

    /// Queue an answer; an approval the link cannot take is reversed at once.
    pub fn deliver(&self, answer: Answer) {
        if let Err((why, answer)) = self.answers.push(answer) {
            if let Some(r) = answer.reversible {
                r.reverse(&self.shared, why);
            }
        }
    }

    /// Queue an answer whose outcome record could not be journalled. ARCHITECTURE 6 (durable
    /// before answered): an approval that moves money is not passed on. The acquirer gets
    /// `96` (with `f15`, the transaction's settlement date) and the issuer a 0420 reversal
    /// (4361: the switch treats the approval as not received, as for an installment
    /// approval it cannot accept, SPEC 11). Anything else (a decline, an inquiry) moves no
    /// money and is delivered as it is.
    pub fn deliver_not_durable(&self, answer: Answer, f15: [u8; 4]) {
        let Some(r) = answer.reversible else {
            self.deliver(answer);
            return;
        };
        metrics::counter!("switch_approvals_not_durable_total").increment(1);
        tracing::error!(
            "approval's outcome could not be journalled; answering 96 and reversing (4361)"
        );
        let template = Message::decode(r.template.clone());
        let declined = template
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|request| {
                crate::core::switch_response(
                    request,
                    self.shared.switch_id,
                    iso8583::ResponseCode::SYSTEM_MALFUNCTION,
                    &f15,
                    None,
                )
                .build()
                .map_err(|e| e.to_string())
            });
        r.reverse_for(&self.shared, reason::ISSUER_TIMEOUT, template);
        match declined {
            Ok(frame) => self.push(frame, answer.ready_ms),
            Err(e) => {
                tracing::error!(error = %e, "could not build the 96 for an approval that was not journalled; the acquirer's request goes unanswered");
            }
        }
    }

    /// The link has stopped: refuse later answers, and reverse the approvals among those
    /// queued and never written. Returns how many answers were never written.
    pub fn close(&self) -> usize {
        let unwritten = self.answers.close();
        let n = unwritten.len();
        for a in unwritten {
            if let Some(r) = a.reversible {
                r.reverse(&self.shared, Undeliverable::Closed);
            }
        }
        n
    }
}

/// For tests of what reaches an acquirer: an outbox whose link hands every frame it would
/// write to the returned receiver.
#[cfg(test)]
pub(crate) fn recording_outbox(
    shared: Arc<Shared>,
) -> (Arc<Outbox>, tokio::sync::mpsc::UnboundedReceiver<Bytes>) {
    struct Recorder {
        outbox: Arc<Outbox>,
        frames: tokio::sync::mpsc::UnboundedSender<Bytes>,
    }
    impl Actor for Recorder {
        type Context = Context<Self>;
    }
    impl Handler<Flush> for Recorder {
        type Result = ();
        fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
            let mut answers = Vec::new();
            self.outbox.answers.take(&mut answers);
            for a in answers {
                let _ = self.frames.send(a.frame);
            }
        }
    }
    let (frames, received) = tokio::sync::mpsc::unbounded_channel();
    let mut outbox = None;
    Recorder::create(|ctx| {
        let o = Arc::new(Outbox::new(ctx.address().recipient(), shared));
        outbox = Some(o.clone());
        Recorder { outbox: o, frames }
    });
    let outbox = outbox.unwrap_or_else(|| unreachable!("create runs its closure at once"));
    (outbox, received)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::originals::{Original, OriginalState};

    /// Stands in for a link: counts flushes, records what it takes.
    #[derive(Default)]
    struct Link {
        inbox: Option<Arc<Inbox<Bytes>>>,
        flushes: usize,
        written: Vec<Bytes>,
    }

    impl Actor for Link {
        type Context = Context<Self>;
    }

    impl Handler<Flush> for Link {
        type Result = ();
        fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
            self.flushes += 1;
            let mut items = Vec::new();
            if let Some(i) = &self.inbox {
                i.take(&mut items);
            }
            self.written.extend(items);
        }
    }

    #[derive(Message)]
    #[rtype(result = "(usize, Vec<Bytes>)")]
    struct Report;

    impl Handler<Report> for Link {
        type Result = MessageResult<Report>;
        fn handle(&mut self, _: Report, _: &mut Context<Self>) -> Self::Result {
            MessageResult((self.flushes, self.written.clone()))
        }
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Attach(Arc<Inbox<Bytes>>);

    impl Handler<Attach> for Link {
        type Result = ();
        fn handle(&mut self, m: Attach, _: &mut Context<Self>) {
            self.inbox = Some(m.0);
        }
    }

    fn shared() -> Arc<Shared> {
        let cfg =
            crate::config::Config::from_toml_str("", std::path::Path::new("switch.toml")).unwrap();
        Arc::new(Shared::for_tests(cfg))
    }

    #[actix::test]
    async fn a_batch_pushed_at_once_wakes_the_link_once_and_keeps_its_order() {
        let link = Link::default().start();
        let inbox = Arc::new(Inbox::new(link.clone().recipient()));
        link.send(Attach(inbox.clone())).await.unwrap();
        // The link's thread is busy with this task until the await: all five are queued
        // before it can flush.
        for i in 0..5u8 {
            inbox.push(Bytes::from(vec![i])).unwrap();
        }
        let (flushes, written) = link.send(Report).await.unwrap();
        assert_eq!(flushes, 1);
        assert_eq!(
            written,
            (0..5u8).map(|i| Bytes::from(vec![i])).collect::<Vec<_>>()
        );
        // Once flushed, the next item wakes it again.
        inbox.push(Bytes::from_static(b"x")).unwrap();
        let (flushes, written) = link.send(Report).await.unwrap();
        assert_eq!(flushes, 2);
        assert_eq!(written.len(), 6);
    }

    #[actix::test]
    async fn a_closed_or_full_inbox_hands_the_item_back() {
        let link = Link::default().start();
        let inbox = Inbox::new(link.recipient());
        for _ in 0..QUEUE_CAP {
            inbox.push(Bytes::from_static(b"a")).unwrap();
        }
        let (why, back) = inbox.push(Bytes::from_static(b"b")).unwrap_err();
        assert_eq!((why, &back[..]), (Undeliverable::Full, &b"b"[..]));
        assert_eq!(inbox.close().len(), QUEUE_CAP);
        let (why, _) = inbox.push(Bytes::from_static(b"c")).unwrap_err();
        assert_eq!(why, Undeliverable::Closed);
    }

    #[actix::test]
    async fn a_burst_does_not_keep_its_memory() {
        let link = Link::default().start();
        let inbox = Inbox::new(link.recipient());
        for _ in 0..5_000 {
            inbox.push(Bytes::new()).unwrap();
        }
        let mut spare = Vec::new();
        inbox.take(&mut spare);
        assert_eq!(spare.len(), 5_000);
        spare.clear();
        // The drained vector goes back to the queue shrunk.
        inbox.take(&mut spare);
        assert!(inbox.lock().items.capacity() <= SPARE_KEPT);
        assert!(spare.is_empty());
    }

    fn approved(shared: &Shared, stan: u32) -> TxnKey {
        let key = TxnKey {
            transmission: 1_201_120_000,
            stan,
            acquirer: 1_030_000,
            forwarding: 1_030_000,
        };
        let mut o = Original::pending(
            crate::core::TxnKind::Purchase,
            1_000,
            b"6222020000000001",
            b"TERM0001",
            20261201,
        );
        o.state = OriginalState::Approved;
        shared.originals.insert(key, o);
        key
    }

    fn state(shared: &Shared, key: &TxnKey) -> Option<OriginalState> {
        shared.originals.with(key, |o| o.map(|o| o.state))
    }

    #[actix::test]
    async fn approvals_a_closed_link_never_wrote_are_reversed() {
        let link = Link::default().start();
        let shared = shared();
        let outbox = Outbox::new(link.recipient(), shared.clone());
        let (queued, late) = (approved(&shared, 1), approved(&shared, 2));
        let reversible = |key| {
            Some(Reversible {
                issuer: None,
                template: Bytes::new(),
                key,
                stan: 11,
            })
        };
        outbox.deliver(Answer {
            frame: Bytes::from_static(b"approval"),
            ready_ms: 0,
            reversible: reversible(queued),
        });
        outbox.push(Bytes::from_static(b"decline"), 0);
        assert_eq!(state(&shared, &queued), Some(OriginalState::Approved));
        // The link stops before writing them: two answers lost, the approval reversed.
        assert_eq!(outbox.close(), 2);
        assert_eq!(state(&shared, &queued), Some(OriginalState::Reversed));
        // An approval arriving after the close is reversed at once.
        outbox.deliver(Answer {
            frame: Bytes::from_static(b"late approval"),
            ready_ms: 0,
            reversible: reversible(late),
        });
        assert_eq!(state(&shared, &late), Some(OriginalState::Reversed));
    }
}
