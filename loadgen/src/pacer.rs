//! Sub-millisecond send instants for the open loop.
//!
//! tokio's timer has 1 ms slots and parks its driver with a millisecond epoll timeout, so a
//! send due at `t` goes out at up to `t + 1 ms` (more on a busy machine). The open loop
//! counts latency from the intended instant, so that lag is in every figure it reports:
//! it measures the tool, not the switch. A [`Pacer`] is one thread that wakes each sleeping
//! sender once its instant has come, on the kernel's high-resolution timers, no more often
//! than every `tick` (senders that fall due within one tick are woken together, and each
//! sends everything due by then in one write).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Queue {
    /// Sleepers: when each is due and how to wake it. A handful (one per link), so a scan
    /// per tick is cheaper than any ordered structure.
    sleepers: Vec<(Instant, Waker)>,
    /// When the thread will look next (`None`: parked until a sleeper arrives).
    next_look: Option<Instant>,
    /// When it last woke sleepers, and so the earliest it wakes them again is a tick later.
    last_wake: Option<Instant>,
    tick: Duration,
    stop: bool,
}

impl Queue {
    /// The earliest the thread may wake a sleeper due at `at`.
    fn look_for(&self, at: Instant) -> Instant {
        self.last_wake.map_or(at, |last| at.max(last + self.tick))
    }
}

struct Shared {
    queue: Mutex<Queue>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The pacing thread; dropping it stops the thread and ends every sleep (handles do not keep
/// it running).
pub struct Pacer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a sender holds to sleep on the pacer.
#[derive(Clone)]
pub struct PacerHandle {
    shared: Arc<Shared>,
}

impl Pacer {
    /// Start the thread. `tick` bounds how often it wakes senders (at least 10 us).
    pub fn start(tick: Duration) -> std::io::Result<Pacer> {
        let tick = tick.max(Duration::from_micros(10));
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                tick,
                ..Queue::default()
            }),
            cond: Condvar::new(),
        });
        let run = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("loadgen-pacer".into())
            .spawn(move || pace(&run))?;
        Ok(Pacer {
            shared,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> PacerHandle {
        PacerHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.cond.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pace(shared: &Shared) {
    let mut due: Vec<Waker> = Vec::new();
    let mut queue = shared.lock();
    loop {
        if queue.stop {
            // Wake everyone: their sleeps end now rather than never.
            for (_, w) in queue.sleepers.drain(..) {
                w.wake();
            }
            return;
        }
        let now = Instant::now();
        // Not within a tick of the last wake-up: what falls due meanwhile goes together.
        if queue.look_for(now) <= now {
            queue.sleepers.retain(|(at, w)| {
                if *at <= now {
                    due.push(w.clone());
                    false
                } else {
                    true
                }
            });
        }
        if !due.is_empty() {
            // Woken outside the lock; the next turn plans the wait (and sees the sleepers
            // that re-registered meanwhile).
            queue.last_wake = Some(now);
            drop(queue);
            for w in due.drain(..) {
                w.wake();
            }
            queue = shared.lock();
            continue;
        }
        let earliest = queue.sleepers.iter().map(|(at, _)| *at).min();
        queue.next_look = earliest.map(|at| queue.look_for(at));
        queue = match queue.next_look {
            None => shared
                .cond
                .wait(queue)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                shared
                    .cond
                    .wait_timeout(queue, wait)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
        };
    }
}

impl PacerHandle {
    /// A future that completes at `at` (at once if it has passed).
    pub fn sleep_until(&self, at: Instant) -> Sleep<'_> {
        Sleep { pacer: self, at }
    }
}

/// See [`PacerHandle::sleep_until`].
pub struct Sleep<'a> {
    pacer: &'a PacerHandle,
    at: Instant,
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        let shared = &self.pacer.shared;
        let mut queue = shared.lock();
        if queue.stop {
            return Poll::Ready(());
        }
        match queue
            .sleepers
            .iter_mut()
            .find(|(_, w)| w.will_wake(cx.waker()))
        {
            Some(entry) => entry.0 = self.at,
            None => queue.sleepers.push((self.at, cx.waker().clone())),
        }
        // The thread sleeps past this instant (or is parked): make it look again.
        let look = queue.look_for(self.at);
        if queue.next_look.is_none_or(|planned| look < planned) {
            queue.next_look = Some(look);
            shared.cond.notify_one();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleepers_wake_in_the_order_of_their_instants() {
        let pacer = Pacer::start(Duration::from_micros(50)).unwrap();
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = [3u64, 1, 2]
            .into_iter()
            .map(|i| {
                let h = pacer.handle();
                let order = Arc::clone(&order);
                tokio::spawn(async move {
                    let at = start + Duration::from_millis(5 * i);
                    h.sleep_until(at).await;
                    assert!(Instant::now() >= at, "woken before its instant");
                    order.lock().unwrap().push(i);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_past_instant_is_ready_at_once_and_a_stopped_pacer_ends_every_sleep() {
        let pacer = Pacer::start(Duration::from_micros(50)).unwrap();
        let h = pacer.handle();
        h.sleep_until(Instant::now()).await;
        let far = Instant::now() + Duration::from_secs(3600);
        let sleeper = tokio::spawn({
            let h = pacer.handle();
            async move { h.sleep_until(far).await }
        });
        // Wait until the sleeper is registered, then stop the pacer.
        while pacer.shared.lock().sleepers.is_empty() {
            tokio::task::yield_now().await;
        }
        drop(pacer);
        sleeper.await.unwrap();
        assert!(Instant::now() < far);
    }
}
