//! cardswitch: the switch daemon as a library, so integration tests and benches can start it
//! in-process. The binary in `main.rs` only parses arguments and calls into here.
//!
//! Sans-I/O core: [`core`] (classification, keys, mandatory fields, switch answers),
//! [`bins`] (routing), [`records`] (journal records), [`config`]. Connection layer (actix):
//! [`actors`]. Process: [`server`] (start, replay, shutdown), [`admin`] (HTTP), [`journal`].

pub mod actors;
pub mod admin;
pub mod bins;
pub mod clearing;
pub mod clock;
pub mod config;
pub mod core;
pub mod cutover;
pub mod datafile;
pub mod daytable;
pub mod journal;
pub mod latency;
pub mod limits;
pub mod logging;
pub mod originals;
pub mod records;
pub mod registry;
pub mod server;
pub mod state;
pub mod tools;

/// Hasher of the per-transaction maps (day keys, originals, pending requests): foldhash,
/// seeded at random per process (keys come from acquirers), much cheaper than SipHash.
pub type FastHash = foldhash::fast::RandomState;
