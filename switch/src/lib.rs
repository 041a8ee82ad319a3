//! cardswitch: the switch daemon as a library, so integration tests and benches can start it
//! in-process. The binary in `main.rs` only parses arguments and calls into here.

pub mod bins;
pub mod config;
pub mod journal;
