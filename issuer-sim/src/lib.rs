//! A simulated issuer host for cardswitch (SPEC.md sections 5, 6, 10, 11): a bank to
//! joint-test against.
//!
//! [`IssuerSim::start`] dials the switch's issuer listener (or listens for the switch to dial
//! in, [`IssuerSimConfig::listen`]), signs on every link with `0820/001`, redials links that
//! drop (with backoff), signs off with `0820/002` on [`IssuerSim::shutdown`], and answers:
//! `0100`/`0200`/`0220` per [`Rules`] and, when configured, per card account
//! ([`accounts`]: status, expiry, PIN, CVN2, balances that move exactly once per
//! transaction), installment purchases per the issuer's [`plans`] with the fees of [`fees`];
//! reversals `0430 00` (undoing their original once); echoes `0830 00`. The behaviour
//! [`knobs`] add latency, late answers, dropped links and answers on another link. Answers
//! are built by the function [`answer::answer_with`].
//!
//! The switch's integration tests start it in-process on `127.0.0.1` and talk real TCP:
//!
//! ```no_run
//! # async fn demo(addr: std::net::SocketAddr) -> anyhow::Result<()> {
//! use issuer_sim::{IssuerSim, IssuerSimConfig, Rules};
//! use iso8583::ResponseCode;
//! let rules = Rules::default().with_decline_amount(5100, ResponseCode::INSUFFICIENT_FUNDS);
//! let sim = IssuerSim::start(IssuerSimConfig::new(addr, "03010000").with_rules(rules)).await?;
//! // ... traffic through the switch ...
//! let stats = sim.shutdown().await; // signs off every link
//! assert_eq!(stats.unanswered, 0);
//! # Ok(()) }
//! ```

pub mod accounts;
pub mod answer;
pub mod fees;
pub mod knobs;
pub mod plans;
pub mod process;
pub mod rules;
mod sim;

pub use accounts::{AccountBook, AccountSpec, CardType, Ledger};
pub use knobs::Latency;
pub use plans::InstallmentPlans;
pub use rules::{AmountRule, Decision, PanRule, Rules, StandardRate};
pub use sim::IssuerSim;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Default switch institution ID.
pub const DEFAULT_SWITCH_ID: &str = "00010000";
/// The bundled demo issuer.
pub const DEFAULT_INSTITUTION: &str = "03010000";

/// Protocol behaviour of the simulated issuer (as opposed to its approve/decline [`Rules`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Sign on each link with `0820/001` when it opens (default true). When false, links
    /// stay signed off until [`IssuerSim::sign_on`].
    pub sign_on: bool,
    /// Answer `0820/301` echo tests from the switch (default true).
    pub answer_echoes: bool,
    /// Answer `0400`/`0420` reversals (default true).
    pub answer_reversals: bool,
    /// How long to wait for the `0830` to a sign-on or sign-off (default 10 s).
    pub sign_on_timeout: Duration,
    /// Send a `0000` keep-alive after this long without sending (default 120 s; `None`: never).
    pub keepalive: Option<Duration>,
    /// Largest frame body accepted (default 2048).
    pub max_frame: usize,
    /// Redial a dialled link that dropped (the switch restarted, a knob cut it), with
    /// exponential backoff (default 100 ms doubling to 5 s; `None`: never).
    pub reconnect: Option<Backoff>,
}

/// Exponential backoff between redials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            sign_on: true,
            answer_echoes: true,
            answer_reversals: true,
            sign_on_timeout: Duration::from_secs(10),
            keepalive: Some(Duration::from_secs(120)),
            max_frame: iso8583::frame::DEFAULT_MAX_FRAME,
            reconnect: Some(Backoff {
                min: Duration::from_millis(100),
                max: Duration::from_secs(5),
            }),
        }
    }
}

/// How to run a simulated issuer.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerSimConfig {
    /// The switch's issuer listener (dialled unless `listen` is set).
    pub switch_addr: SocketAddr,
    /// Listen here for the switch to dial in (`connect = host:port` in the switch config)
    /// instead of dialling `switch_addr`. Port 0 picks a free port: see
    /// [`IssuerSim::local_addr`].
    pub listen: Option<SocketAddr>,
    /// Own institution ID: header source ID and F33 of sign-on (e.g. `03010000`).
    pub institution: String,
    /// The switch's ID: header destination of messages the simulator originates.
    pub switch_id: String,
    /// Number of links dialled (dial mode).
    pub links: usize,
    pub rules: Rules,
    pub behaviour: Behaviour,
    /// Card accounts (`None`: no accounts, every card approved per the rules with
    /// `rules.balance`).
    pub accounts: Option<AccountBook>,
}

impl Default for IssuerSimConfig {
    fn default() -> Self {
        Self {
            switch_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 5002)),
            listen: None,
            institution: DEFAULT_INSTITUTION.to_owned(),
            switch_id: DEFAULT_SWITCH_ID.to_owned(),
            links: 1,
            rules: Rules::default(),
            behaviour: Behaviour::default(),
            accounts: None,
        }
    }
}

impl IssuerSimConfig {
    /// Dial `switch_addr` as `institution`, one link, default switch ID, rules and behaviour.
    #[must_use]
    pub fn new(switch_addr: SocketAddr, institution: &str) -> Self {
        Self {
            switch_addr,
            institution: institution.to_owned(),
            ..Self::default()
        }
    }

    /// Listen on `addr` for the switch to dial in, as `institution`.
    #[must_use]
    pub fn listening(addr: SocketAddr, institution: &str) -> Self {
        Self {
            listen: Some(addr),
            institution: institution.to_owned(),
            ..Self::default()
        }
    }

    #[must_use]
    pub fn with_links(mut self, links: usize) -> Self {
        self.links = links;
        self
    }

    #[must_use]
    pub fn with_switch_id(mut self, switch_id: &str) -> Self {
        self.switch_id = switch_id.to_owned();
        self
    }

    #[must_use]
    pub fn with_rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    #[must_use]
    pub fn with_behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = behaviour;
        self
    }

    /// Keep card accounts (balances move with the traffic).
    #[must_use]
    pub fn with_accounts(mut self, accounts: AccountBook) -> Self {
        self.accounts = Some(accounts);
        self
    }
}

/// A snapshot of the simulator's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `0100`/`0200`/`0220` received.
    pub requests: u64,
    /// Of those, answered `00`.
    pub approved: u64,
    /// Of those, answered with another code.
    pub declined: u64,
    /// `0820` from the switch answered (echo tests and others).
    pub echoes: u64,
    /// Reversals (`0400`/`0420`) received.
    pub reversals: u64,
    /// Requests, reversals or echoes not answered on purpose (rules/behaviour).
    pub unanswered: u64,
    /// Frames that could not be decoded (or rejects received).
    pub decode_errors: u64,
    /// Answers sent late on purpose (`late_rate`).
    pub late: u64,
    /// Answers sent on another link than the request's (`other_link_rate`).
    pub other_link: u64,
    /// Links cut on purpose (`disconnect_after`, `disconnect_rate`).
    pub disconnects: u64,
    /// Dropped links redialled and signed on again.
    pub reconnects: u64,
    /// Links signed on right now.
    pub signed_on_links: usize,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests={} approved={} declined={} echoes={} reversals={} unanswered={} decode_errors={} late={} other_link={} disconnects={} reconnects={} signed_on_links={}",
            self.requests,
            self.approved,
            self.declined,
            self.echoes,
            self.reversals,
            self.unanswered,
            self.decode_errors,
            self.late,
            self.other_link,
            self.disconnects,
            self.reconnects,
            self.signed_on_links
        )
    }
}
