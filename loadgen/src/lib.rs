//! loadgen: drives a switch with acquirer traffic and reports what came back.
//!
//! [`traffic`] is the engine (connections, pipelining window, latency histogram); [`demo`]
//! starts a switch and a simulated issuer in-process on the bundled configuration and runs a
//! short burst through them: the first command of the README.

pub mod demo;
pub mod traffic;
