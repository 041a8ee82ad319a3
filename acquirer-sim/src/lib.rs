//! A simulated acquirer for cardswitch: a pipelined client link ([`AcquirerClient`]),
//! request builders for every transaction of SPEC.md section 5 ([`txn`]), and certification
//! suites as data ([`suite`]) run through the switch against an issuer host ([`certify`]).
//!
//! ```no_run
//! # async fn demo(addr: std::net::SocketAddr) -> anyhow::Result<()> {
//! use acquirer_sim::{txn, AcquirerClient};
//! let client = AcquirerClient::connect(addr, "01030000", "00010000").await?;
//! let p = client.params("6222020000000123", 1000);
//! let answer = client.send(txn::purchase(&p)?).await?;
//! println!("F39 {:?}", answer.response_code());
//! # Ok(()) }
//! ```

pub mod certify;
pub mod client;
pub mod suite;
pub mod txn;

pub use client::{AcquirerClient, ClientError, ClientStats, Received, TxnKey};
pub use txn::{Original, StanSource, TxnError, TxnParams};
