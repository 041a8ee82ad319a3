//! State shared by the connection actors: configuration snapshot, clock, journal, the
//! per-issuer link sets and the day's transaction keys. Reads on the hot path are lock-free
//! (arc-swap snapshots, dashmap shards, atomics).

use crate::actors::issuer::IssuerLink;
use crate::actors::route::IssuerRouteActor;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::journal::Journal;
use actix::Addr;
use arc_swap::ArcSwap;
use chrono::TimeZone;
use dashmap::DashMap;
use iso8583::InstId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Link slots per issuer. The switch rewrites F11 towards an issuer as
/// `counter * 10 + slot`, so a response arriving on any link of the institution names the
/// link that holds its pending entry (SPEC.md section 7 [choice]). Slot 9 is the issuer
/// route's own (switch-generated advices and echoes of the route).
pub const LINK_SLOTS: u8 = 9;
pub const ROUTE_SLOT: u8 = 9;

/// One signed-on issuer link as seen by acquirer links choosing where to forward.
#[derive(Clone)]
pub struct LinkHandle {
    pub slot: u8,
    pub addr: Addr<IssuerLink>,
    /// Requests sent on this link and not yet answered or timed out.
    pub in_flight: Arc<AtomicUsize>,
    /// Where requests for this link are queued.
    pub inbox: Arc<crate::actors::outbox::Inbox<crate::actors::issuer::Forward>>,
    /// The worker arbiter the link runs on ([`current_worker`] when it signed on).
    pub worker: u16,
}

/// No worker: a thread that is not one of the switch's worker arbiters (tests, the system
/// thread).
pub const NO_WORKER: u16 = u16::MAX;

thread_local! {
    static WORKER: std::cell::Cell<u16> = const { std::cell::Cell::new(NO_WORKER) };
}

/// Mark the calling thread as worker arbiter `index` (done once, when the worker starts).
pub fn set_current_worker(index: u16) {
    WORKER.with(|w| w.set(index));
}

/// The worker arbiter this thread is, or [`NO_WORKER`].
#[must_use]
pub fn current_worker() -> u16 {
    WORKER.with(std::cell::Cell::get)
}

/// The link [`IssuerRoute::pick_near`] takes for a worker's `n`th pick: at the round-robin
/// turn `start = n / STICKY_PICKS` (so [`STICKY_PICKS`] consecutive picks share a turn), the
/// first with room going round worker `near`'s own links from the `start`-th of them, else
/// the first with room going round all links from `start`. Each ring is its own round robin,
/// so the caller's links share its requests evenly whatever order the links signed on in.
fn choose_link<T>(
    links: &[T],
    n: usize,
    near: u16,
    worker: impl Fn(&T) -> u16,
    has_room: impl Fn(&T) -> bool,
) -> Option<&T> {
    let start = n / STICKY_PICKS;
    let mine = || links.iter().filter(|l| worker(l) == near);
    let m = if near == NO_WORKER { 0 } else { mine().count() };
    let same = (m > 0)
        .then(|| mine().cycle().skip(start % m).take(m).find(|l| has_room(l)))
        .flatten();
    let n = links.len();
    same.or_else(|| {
        (0..n)
            .filter_map(|i| links.get((start + i) % n))
            .find(|l| has_room(l))
    })
}

/// Round-robin cursors an [`IssuerRoute`] keeps (workers beyond share them).
const CURSORS: usize = 8;

/// Consecutive picks on one worker that go to the same link (while it has room). The
/// requests a worker handles in one turn then mostly land in one link's inbox and leave in
/// one write, instead of alternating between its links and costing each link a `sendto` (and
/// the issuer a read and a write) every turn. At 50,000/s over 16 links, two sets of 4
/// alternating pairs: switch -4 / -5 % CPU a transaction, issuer-sim -8 / -10 %, p99 -37 /
/// -28 %, the switch's `sendto` calls -26 %; at saturation within the noise (session 21).
const STICKY_PICKS: usize = 32;

/// A round-robin cursor alone on its cache line (two, for the adjacent-line prefetcher).
#[derive(Default)]
#[repr(align(128))]
struct Cursor(AtomicUsize);

/// Shared, lock-free view of one issuer institution.
pub struct IssuerRoute {
    pub id: InstId,
    pub timeout_ms: i64,
    pub max_in_flight: usize,
    /// Signed-on links; replaced as a whole on sign-on/off (rare). Each handle is behind an
    /// `Arc`: picking one per request is then one counter increment (cloning an actix
    /// `Addr` allocates).
    pub links: ArcSwap<Vec<Arc<LinkHandle>>>,
    /// Round-robin cursors, one per worker (by index, modulo [`CURSORS`]), each on its own
    /// cache line: one shared cursor was a line both cores wrote for every request.
    rr: [Cursor; CURSORS],
    /// Slots taken by bound links (bit per slot). Only touched on connect/disconnect.
    slots: Mutex<u16>,
    /// The route actor (store-and-forward of advices).
    pub actor: std::sync::OnceLock<Addr<IssuerRouteActor>>,
    /// STAN counter for route-generated messages.
    pub advice_counter: AtomicU32,
    /// Requests shed because every signed-on link was at its cap, and because none was
    /// signed on: logged at most a line a second each.
    pub shed_at_cap: crate::logging::Folded,
    pub shed_no_link: crate::logging::Folded,
}

impl IssuerRoute {
    #[must_use]
    pub fn new(id: InstId, timeout_ms: i64, max_in_flight: usize) -> Self {
        Self {
            id,
            timeout_ms,
            max_in_flight,
            links: ArcSwap::from_pointee(Vec::new()),
            rr: std::array::from_fn(|_| Cursor::default()),
            slots: Mutex::new(0),
            actor: std::sync::OnceLock::new(),
            advice_counter: AtomicU32::new(0),
            shed_at_cap: crate::logging::Folded::new(),
            shed_no_link: crate::logging::Folded::new(),
        }
    }

    /// Pick a signed-on link with room, round-robin, preferring links on the calling
    /// thread's worker (see [`IssuerRoute::pick_near`]). `None`: no link or all at their cap.
    #[must_use]
    pub fn pick(&self) -> Option<Arc<LinkHandle>> {
        self.pick_near(current_worker())
    }

    /// Pick a signed-on link with room, round-robin among those on worker `near` first, then
    /// among all, in runs of [`STICKY_PICKS`] picks a link. A request handed to a link on the
    /// same worker thread is written by that thread when it next runs: no cross-core
    /// wake-up, and its buffers are freed where they were allocated. `None`: no link or all
    /// at their cap.
    #[must_use]
    pub fn pick_near(&self, near: u16) -> Option<Arc<LinkHandle>> {
        let links = self.links.load();
        let cursor = &self.rr[usize::from(near) % CURSORS];
        let n = cursor.0.fetch_add(1, Ordering::Relaxed);
        choose_link(
            &links,
            n,
            near,
            |l| l.worker,
            |l| l.in_flight.load(Ordering::Relaxed) < self.max_in_flight,
        )
        .cloned()
    }

    /// The signed-on link in `slot`.
    #[must_use]
    pub fn link_in_slot(&self, slot: u8) -> Option<Arc<LinkHandle>> {
        self.links.load().iter().find(|l| l.slot == slot).cloned()
    }

    #[must_use]
    pub fn is_signed_on(&self) -> bool {
        !self.links.load().is_empty()
    }

    pub fn take_slot(&self) -> Option<u8> {
        let mut slots = self.slots.lock().ok()?;
        let slot = (0..LINK_SLOTS).find(|s| *slots & (1 << s) == 0)?;
        *slots |= 1 << slot;
        Some(slot)
    }

    pub fn release_slot(&self, slot: u8) {
        if let Ok(mut slots) = self.slots.lock() {
            *slots &= !(1 << slot);
        }
        self.sign_off(slot);
    }

    pub fn sign_on(&self, handle: LinkHandle) {
        self.links.rcu(|links| {
            let mut v: Vec<Arc<LinkHandle>> = links
                .iter()
                .filter(|l| l.slot != handle.slot)
                .cloned()
                .collect();
            v.push(Arc::new(handle.clone()));
            v
        });
        metrics::gauge!("switch_issuer_links_signed_on", "issuer" => self.id.to_string())
            .set(self.links.load().len() as f64);
    }

    pub fn sign_off(&self, slot: u8) {
        self.links.rcu(|links| {
            links
                .iter()
                .filter(|l| l.slot != slot)
                .cloned()
                .collect::<Vec<_>>()
        });
        metrics::gauge!("switch_issuer_links_signed_on", "issuer" => self.id.to_string())
            .set(self.links.load().len() as f64);
    }

    /// Next STAN for a route-generated message (slot 9).
    pub fn next_route_stan(&self) -> u32 {
        let c = self.advice_counter.fetch_add(1, Ordering::Relaxed) % 100_000;
        c * 10 + u32::from(ROUTE_SLOT)
    }
}

/// F15 `MMDD` of a settlement date `YYYYMMDD`. A transaction keeps the date it was
/// accepted under on every message about it, even across a cut-over.
#[must_use]
pub fn f15_of(yyyymmdd: u32) -> [u8; 4] {
    let mmdd = yyyymmdd % 10_000;
    [
        b'0' + (mmdd / 1000) as u8,
        b'0' + (mmdd / 100 % 10) as u8,
        b'0' + (mmdd / 10 % 10) as u8,
        b'0' + (mmdd % 10) as u8,
    ]
}

/// Everything the actors share.
pub struct Shared {
    pub config: ArcSwap<Config>,
    pub switch_id: InstId,
    pub clock: SharedClock,
    pub journal: Arc<dyn Journal>,
    pub routes: HashMap<InstId, Arc<IssuerRoute>, crate::FastHash>,
    /// Transactions forwarded and not yet answered, over all links (graceful shutdown).
    pub in_flight: AtomicUsize,
    /// Set when shutdown begins: acquirer requests are then declined `91`.
    pub draining: AtomicBool,
    /// Daily limit usage per terminal and merchant (SPEC.md section 9 rule 4).
    pub limits: crate::limits::LimitCounters,
    /// Originals of related transactions, and the keys of the day's requests for
    /// duplicate detection (SPEC.md section 7).
    pub originals: crate::originals::OriginalIndex,
    /// Business date and cut-over phase (SPEC.md section 12).
    pub day: crate::cutover::Day,
    /// Bound acquirer links (cut-over announcements), by link number.
    pub acquirer_links: DashMap<u64, (InstId, Addr<crate::actors::acquirer::AcquirerLink>)>,
    pub next_link_id: std::sync::atomic::AtomicU64,
    /// How often links check their timers (ms of real time).
    pub tick_ms: u64,
}

impl Shared {
    /// A request is handed to an issuer link: counted in flight on the link (its cap) and
    /// in the switch (shutdown waits for zero). SeqCst, as shutdown's store of `draining`
    /// and its loads of the count: either shutdown sees the request and waits for its
    /// answer, or the caller's next load of `draining` sees the drain.
    pub fn forwarded(&self, link: &AtomicUsize) {
        link.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// The request counted by [`Shared::forwarded`] is no longer in flight. Call it once its
    /// answer is on its way (journalled, or queued on the acquirer link's outbox), never
    /// before: shutdown waits for zero and then flushes the journal and drains the links,
    /// so an answer handed over after the count reached zero could be missed. The release
    /// pairs with shutdown's load.
    pub fn answered(&self, link: &AtomicUsize) {
        link.fetch_sub(1, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Release);
    }

    /// A switch state with no routes, an in-memory journal and tables, for unit tests.
    #[cfg(test)]
    #[must_use]
    pub fn for_tests(config: Config) -> Self {
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        let first_date =
            crate::cutover::clock_date(config.switch.settlement_cutover, clock.now_millis());
        Shared {
            switch_id: config.switch.id,
            config: ArcSwap::from_pointee(config),
            clock,
            journal: Arc::new(crate::journal::MemoryJournal::new()),
            routes: HashMap::default(),
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            limits: crate::limits::LimitCounters::new(),
            originals: crate::originals::OriginalIndex::with_capacity(0),
            day: crate::cutover::Day::new(first_date),
            acquirer_links: DashMap::new(),
            next_link_id: std::sync::atomic::AtomicU64::new(0),
            tick_ms: 10,
        }
    }

    /// The settlement date the clock alone gives for `now_ms` (the cut-over timer compares
    /// it with the business date).
    #[must_use]
    pub fn clock_date(&self, now_ms: i64) -> u32 {
        crate::cutover::clock_date(self.config.load().switch.settlement_cutover, now_ms)
    }

    /// `YYYYMMDD` and F15 `MMDD` of the current business date (an atomic read).
    #[must_use]
    pub fn settlement_now(&self) -> (u32, [u8; 4]) {
        let d = self.day.date();
        (d, f15_of(d))
    }

    /// F7 `MMDDhhmmss` (UTC per ISO 8583 convention) for a switch-generated message.
    #[must_use]
    pub fn transmission_now(&self) -> [u8; 10] {
        let t = chrono::Utc
            .timestamp_millis_opt(self.clock.now_millis())
            .single()
            .unwrap_or_default();
        let s = t.format("%m%d%H%M%S").to_string();
        s.as_bytes().try_into().unwrap_or(*b"0101000000")
    }

    #[must_use]
    pub fn route(&self, issuer: &InstId) -> Option<&Arc<IssuerRoute>> {
        self.routes.get(issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::{choose_link, NO_WORKER, STICKY_PICKS};

    /// (name, worker, has room)
    const LINKS: [(char, u16, bool); 5] = [
        ('a', 0, true),
        ('b', 1, true),
        ('c', 0, false),
        ('d', 1, true),
        ('e', 0, true),
    ];

    /// The link of a worker's `n`th pick, as `IssuerRoute::pick_near` takes it.
    fn nth(n: usize, near: u16, links: &[(char, u16, bool)]) -> Option<char> {
        choose_link(links, n, near, |l| l.1, |l| l.2).map(|l| l.0)
    }

    /// The link at round-robin turn `start`: the first pick of that turn's run.
    fn pick(start: usize, near: u16, links: &[(char, u16, bool)]) -> Option<char> {
        nth(start * STICKY_PICKS, near, links)
    }

    #[test]
    fn a_workers_consecutive_picks_stay_on_one_link_for_a_run_then_move_on() {
        let links = [('a', 0, true), ('x', 1, true), ('b', 0, true)];
        let picks: Vec<_> = (0..3 * STICKY_PICKS).map(|n| nth(n, 0, &links)).collect();
        let runs: Vec<_> = picks.chunks(STICKY_PICKS).collect();
        assert_eq!(runs.len(), 3);
        for (run, want) in runs.iter().zip(['a', 'b', 'a']) {
            assert!(run.iter().all(|p| *p == Some(want)), "{run:?}");
        }
        // The other worker's picks go round its own link.
        assert!((0..STICKY_PICKS).all(|n| nth(n, 1, &links) == Some('x')));
        // A run whose link is full goes to the next with room, on the same worker first.
        let a_full = [('a', 0, false), ('x', 1, true), ('b', 0, true)];
        assert!((0..2 * STICKY_PICKS).all(|n| nth(n, 0, &a_full) == Some('b')));
    }

    #[test]
    fn a_link_on_the_callers_worker_is_preferred_round_robin() {
        let on_1: Vec<_> = (0..5).map(|s| pick(s, 1, &LINKS)).collect();
        assert_eq!(
            on_1,
            [Some('b'), Some('d'), Some('b'), Some('d'), Some('b')]
        );
        // Worker 0 has a, c and e; c is full, so its turn goes to the next, e.
        let on_0: Vec<_> = (0..6).map(|s| pick(s, 0, &LINKS)).collect();
        assert_eq!(
            on_0,
            [
                Some('a'),
                Some('e'),
                Some('e'),
                Some('a'),
                Some('e'),
                Some('e')
            ]
        );
    }

    #[test]
    fn a_workers_links_share_its_requests_evenly_in_any_sign_on_order() {
        // Links grouped by worker instead of alternating: each of worker 0's two links
        // still gets every other request.
        let grouped = [
            ('a', 0, true),
            ('b', 0, true),
            ('c', 1, true),
            ('d', 1, true),
        ];
        let mut count = std::collections::HashMap::new();
        for s in 0..1000 {
            *count.entry(pick(s, 0, &grouped)).or_insert(0) += 1;
        }
        assert_eq!(count.get(&Some('a')), Some(&500));
        assert_eq!(count.get(&Some('b')), Some(&500));
        assert_eq!(count.len(), 2, "{count:?}");
    }

    #[test]
    fn without_room_on_its_worker_any_link_with_room_is_taken() {
        let full_on_0 = [
            ('a', 0, false),
            ('b', 1, true),
            ('c', 0, false),
            ('d', 1, true),
        ];
        assert_eq!(pick(0, 0, &full_on_0), Some('b'));
        assert_eq!(pick(2, 0, &full_on_0), Some('d'));
        // A worker with no links at all, and a thread that is no worker: plain round robin.
        assert_eq!(pick(2, 7, &LINKS), Some('d'));
        let plain: Vec<_> = (0..5).map(|s| pick(s, NO_WORKER, &LINKS)).collect();
        assert_eq!(
            plain,
            [Some('a'), Some('b'), Some('d'), Some('d'), Some('e')]
        );
        let all_full = [('a', 0, false), ('b', 1, false)];
        assert_eq!(pick(0, 0, &all_full), None);
        assert_eq!(pick(0, 0, &[]), None);
    }
}
