//! Batched hand-offs between link actors: [`Inbox`], a queue one actor drains in one go,
//! and [`Outbox`], the answers waiting to be written on one acquirer link.
//!
//! Sending each request or answer as its own actor message cost an envelope allocation
//! (freed on another thread), a channel push and a wake-up of the receiving link per
//! transaction. An inbox takes the item under a short lock and wakes its link only when it
//! goes from empty to non-empty; the link then handles everything queued at once, and
//! writes it in one go. Answers are released by the journal writer a batch at a time, and
//! requests arrive from many acquirer links, so batches form under load by themselves.

use crate::state::Shared;
use actix::prelude::*;
use bytes::Bytes;
use std::sync::{Arc, Mutex, MutexGuard};

/// Items queued on one link beyond which it counts as unable to take more (the bound its
/// mailbox had): a request is then declined `91`, an approval that cannot be queued is
/// reversed.
pub const QUEUE_CAP: usize = 65_536;

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
    /// steady state allocates nothing. Called by the link on `Flush`.
    pub fn take(&self, spare: &mut Vec<T>) {
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

/// The answers waiting to be written on one acquirer link.
pub struct Outbox {
    pub frames: Inbox<Bytes>,
    /// The switch state, for whoever must deal with an answer that could not be queued.
    pub shared: Arc<Shared>,
}

impl Outbox {
    #[must_use]
    pub fn new(link: Recipient<Flush>, shared: Arc<Shared>) -> Self {
        Self {
            frames: Inbox::new(link),
            shared,
        }
    }

    /// Queue an answer; see [`Inbox::push`].
    pub fn push(&self, frame: Bytes) -> Result<(), (Undeliverable, Bytes)> {
        self.frames.push(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for an acquirer link: counts flushes, records what it takes.
    #[derive(Default)]
    struct Link {
        outbox: Option<Arc<Outbox>>,
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
            let mut frames = Vec::new();
            if let Some(o) = &self.outbox {
                o.frames.take(&mut frames);
            }
            self.written.extend(frames);
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
    struct Attach(Arc<Outbox>);

    impl Handler<Attach> for Link {
        type Result = ();
        fn handle(&mut self, m: Attach, _: &mut Context<Self>) {
            self.outbox = Some(m.0);
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
        let outbox = Arc::new(Outbox::new(link.clone().recipient(), shared()));
        link.send(Attach(outbox.clone())).await.unwrap();
        // The link's thread is busy with this task until the await: all five are queued
        // before it can flush.
        for i in 0..5u8 {
            outbox.push(Bytes::from(vec![i])).unwrap();
        }
        let (flushes, written) = link.send(Report).await.unwrap();
        assert_eq!(flushes, 1);
        assert_eq!(
            written,
            (0..5u8).map(|i| Bytes::from(vec![i])).collect::<Vec<_>>()
        );
        // Once flushed, the next answer wakes it again.
        outbox.push(Bytes::from_static(b"x")).unwrap();
        let (flushes, written) = link.send(Report).await.unwrap();
        assert_eq!(flushes, 2);
        assert_eq!(written.len(), 6);
    }

    #[actix::test]
    async fn a_closed_or_full_outbox_hands_the_answer_back() {
        let link = Link::default().start();
        let outbox = Outbox::new(link.recipient(), shared());
        for _ in 0..QUEUE_CAP {
            outbox.push(Bytes::from_static(b"a")).unwrap();
        }
        let (why, back) = outbox.push(Bytes::from_static(b"b")).unwrap_err();
        assert_eq!((why, &back[..]), (Undeliverable::Full, &b"b"[..]));
        assert_eq!(outbox.frames.close().len(), QUEUE_CAP);
        let (why, _) = outbox.push(Bytes::from_static(b"c")).unwrap_err();
        assert_eq!(why, Undeliverable::Closed);
    }
}
