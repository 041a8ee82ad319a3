//! The connection layer: actix actors that own TCP links and in-flight state and call into
//! the sans-I/O core (`core`, `bins`, `records`). Nothing outside this module knows actix.

pub mod acquirer;
pub mod issuer;
pub mod route;

use crate::journal::Journal;
use crate::records::SwitchRecord;
use bytes::Bytes;

/// A frame payload to write on a link.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Bytes);

/// Append a record; run `then` once it is durable (or immediately with the error logged:
/// answering is preferred over silence, the error is counted).
pub fn journal_then(
    journal: &dyn Journal,
    record: &SwitchRecord,
    then: Option<Box<dyn FnOnce() + Send>>,
) {
    match record.encode() {
        Ok(payload) => journal.append(
            record.kind(),
            payload,
            then.map(|f| -> crate::journal::Completion {
                Box::new(move |res| {
                    if let Err(e) = res {
                        tracing::error!(error = %e, "journal write failed; answering anyway");
                        metrics::counter!("switch_journal_failures_total").increment(1);
                    }
                    f();
                })
            }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "journal record could not be encoded");
            metrics::counter!("switch_journal_failures_total").increment(1);
            if let Some(f) = then {
                f();
            }
        }
    }
}
