//! `Outbox`: the answers waiting to be written on one acquirer link.
//!
//! Answers are released by the journal writer thread once their outcome is durable, a
//! batch at a time. Sending each one as an actor message cost an envelope, a channel push
//! and a wake-up of the link's thread per answer. Instead the writer pushes them onto the
//! link's outbox and wakes the link only when the outbox goes from empty to non-empty; the
//! link then writes everything queued in one go (one `write` for the batch).

use crate::state::Shared;
use actix::prelude::*;
use bytes::Bytes;
use std::sync::{Arc, Mutex, MutexGuard};

/// Answers queued on one link beyond which it counts as unable to take more (the same
/// bound its mailbox had): an approval that cannot be queued is reversed.
pub const OUTBOX_CAP: usize = 65_536;

/// Tells the link that its outbox has answers to write.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Why an answer could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeliverable {
    /// The link has closed.
    Closed,
    /// The link is not keeping up: `OUTBOX_CAP` answers already wait.
    Full,
}

#[derive(Default)]
struct Queue {
    frames: Vec<Bytes>,
    /// A `Flush` is on its way (or being handled): no other is needed.
    scheduled: bool,
    closed: bool,
}

pub struct Outbox {
    queue: Mutex<Queue>,
    /// The link (a `Recipient`, so tests can stand in for it).
    link: Recipient<Flush>,
    /// The switch state, for whoever must deal with an answer that could not be queued.
    pub shared: Arc<Shared>,
}

impl Outbox {
    #[must_use]
    pub fn new(link: Recipient<Flush>, shared: Arc<Shared>) -> Self {
        Self {
            queue: Mutex::default(),
            link,
            shared,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue holds plain frames: a panic elsewhere cannot leave it half-updated.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queue an answer for the link. The link is woken only if nothing was queued yet.
    pub fn push(&self, frame: Bytes) -> Result<(), (Undeliverable, Bytes)> {
        let wake = {
            let mut q = self.lock();
            if q.closed {
                return Err((Undeliverable::Closed, frame));
            }
            if q.frames.len() >= OUTBOX_CAP {
                return Err((Undeliverable::Full, frame));
            }
            q.frames.push(frame);
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
    pub fn take(&self, spare: &mut Vec<Bytes>) {
        let mut q = self.lock();
        q.scheduled = false;
        std::mem::swap(&mut q.frames, spare);
    }

    /// The link has stopped: later answers are refused (and an approval among them is
    /// reversed by its sender). Returns how many queued answers were never written.
    pub fn close(&self) -> usize {
        let mut q = self.lock();
        q.closed = true;
        std::mem::take(&mut q.frames).len()
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
                o.take(&mut frames);
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
        for _ in 0..OUTBOX_CAP {
            outbox.push(Bytes::from_static(b"a")).unwrap();
        }
        let (why, back) = outbox.push(Bytes::from_static(b"b")).unwrap_err();
        assert_eq!((why, &back[..]), (Undeliverable::Full, &b"b"[..]));
        assert_eq!(outbox.close(), OUTBOX_CAP);
        let (why, _) = outbox.push(Bytes::from_static(b"c")).unwrap_err();
        assert_eq!(why, Undeliverable::Closed);
    }
}
