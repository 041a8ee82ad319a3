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

    /// Moves the wakers of the sleepers due at `now` into `due` (empty), unless the last
    /// wake-up was within a tick: what falls due meanwhile goes together at the next look.
    /// If it took any, `now` is the last wake-up.
    fn take_due(&mut self, now: Instant, due: &mut Vec<Waker>) {
        if self.look_for(now) > now {
            return;
        }
        self.sleepers.retain(|(at, w)| {
            if *at <= now {
                due.push(w.clone());
                false
            } else {
                true
            }
        });
        if !due.is_empty() {
            self.last_wake = Some(now);
        }
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
        queue.take_due(Instant::now(), &mut due);
        if !due.is_empty() {
            // Woken outside the lock; the next turn plans the wait (and sees the sleepers
            // that re-registered meanwhile).
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

    /// A waker that logs its sleeper's id when woken.
    struct Logged(u64, Arc<Mutex<Vec<u64>>>);

    impl std::task::Wake for Logged {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    /// Each look (at an instant given here, not read from the clock) wakes exactly the
    /// sleepers due by then, so they wake in the order of their instants whatever order they
    /// came in; within a tick of a wake-up nothing is woken, and what fell due meanwhile goes
    /// together at the next look.
    #[test]
    fn each_look_wakes_what_is_due_and_a_tick_groups_what_falls_due_within_it() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let base = Instant::now();
        // `t(n)`: n tenths of a millisecond after `base`.
        let t = |tenths: u64| base + Duration::from_micros(tenths * 100);
        let mut q = Queue {
            tick: Duration::from_millis(1),
            ..Queue::default()
        };
        for (id, at) in [
            (3, t(150)),
            (1, t(50)),
            (2, t(100)),
            (4, t(200)),
            (5, t(205)),
        ] {
            q.sleepers
                .push((at, Waker::from(Arc::new(Logged(id, Arc::clone(&log))))));
        }
        let mut due = Vec::new();
        let mut look = |q: &mut Queue, at: Instant| {
            q.take_due(at, &mut due);
            let took = !due.is_empty();
            for w in due.drain(..) {
                w.wake();
            }
            (took, std::mem::take(&mut *log.lock().unwrap()))
        };
        assert_eq!(look(&mut q, t(40)), (false, vec![]), "nothing due yet");
        assert_eq!(look(&mut q, t(60)), (true, vec![1]));
        assert_eq!(look(&mut q, t(120)), (true, vec![2]));
        assert_eq!(look(&mut q, t(160)), (true, vec![3]));
        assert_eq!(look(&mut q, t(201)), (true, vec![4]));
        // 5 falls due 0.4 ms after the wake-up at 20.1 ms: it waits for the tick to pass.
        assert_eq!(look(&mut q, t(206)), (false, vec![]), "within a tick");
        assert_eq!(q.look_for(t(205)), t(211), "the next look is a tick on");
        assert_eq!(look(&mut q, t(211)), (true, vec![5]));
        assert!(q.sleepers.is_empty());
    }

    /// On the pacing thread and the real clock: every sleeper wakes, none before its instant.
    #[tokio::test]
    async fn sleepers_on_the_thread_wake_at_or_after_their_instants() {
        let pacer = Pacer::start(Duration::from_micros(50)).unwrap();
        let start = Instant::now();
        let tasks: Vec<_> = [3u64, 1, 2]
            .into_iter()
            .map(|i| {
                let h = pacer.handle();
                tokio::spawn(async move {
                    let at = start + Duration::from_millis(5 * i);
                    h.sleep_until(at).await;
                    assert!(Instant::now() >= at, "woken before its instant");
                })
            })
            .collect();
        let all = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .expect("a sleeper was never woken");
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
