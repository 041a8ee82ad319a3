//! The connection layer: actix actors that own TCP links and in-flight state and call into
//! the sans-I/O core (`core`, `bins`, `records`). Nothing outside this module knows actix.

pub mod acquirer;
pub mod cutover;
pub mod issuer;
pub mod outbox;
pub mod route;

use crate::journal::{Completion, Journal};
use crate::records::SwitchRecord;
use bytes::Bytes;

/// A frame payload to write on a link.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Bytes);

/// Append a record nobody waits for (a forwarded request, an advice).
pub fn journal(journal: &dyn Journal, record: &SwitchRecord) {
    append(journal, record, None);
}

/// Append a record; run `then` once it is durable (or immediately with the error logged:
/// answering is preferred over silence, the error is counted). One allocation: the
/// closure is boxed once, together with the error handling.
pub fn journal_then(
    journal: &dyn Journal,
    record: &SwitchRecord,
    then: impl FnOnce() + Send + 'static,
) {
    journal_with(journal, record, move |_| then());
}

/// Append a record; run `then(true)` once it is durable, or `then(false)` if it could not
/// be written (the error logged and counted here), so the caller can answer accordingly.
pub fn journal_with(
    journal: &dyn Journal,
    record: &SwitchRecord,
    then: impl FnOnce(bool) + Send + 'static,
) {
    append(
        journal,
        record,
        Some(Box::new(move |res| {
            if let Err(e) = &res {
                tracing::error!(error = %e, "journal write failed");
                metrics::counter!("switch_journal_failures_total").increment(1);
            }
            then(res.is_ok());
        })),
    );
}

fn append(journal: &dyn Journal, record: &SwitchRecord, done: Option<Completion>) {
    match record.encode() {
        Ok(payload) => journal.append(record.kind(), payload, done),
        Err(e) => {
            tracing::error!(error = %e, "journal record could not be encoded");
            metrics::counter!("switch_journal_failures_total").increment(1);
            if let Some(done) = done {
                // Already counted and logged above.
                done(Ok(()));
            }
        }
    }
}

/// SPEC.md 3.2: the answer to a frame that could not be decoded. A request or advice whose
/// header was readable gets a reject (counted by code); anything else, responses included,
/// is counted and dropped. Logs name the error (field and offset), never a value.
pub fn reject_for(
    raw: &[u8],
    code: iso8583::RejectCode,
    why: &dyn std::fmt::Display,
    link: &str,
    switch_id: iso8583::InstId,
) -> Option<Bytes> {
    // The MTI's function digit: odd = response (never rejected).
    let is_response = raw
        .get(iso8583::HEADER_LEN + 2)
        .is_some_and(|d| d.wrapping_sub(b'0') % 2 == 1);
    if raw.len() < iso8583::HEADER_LEN || is_response {
        metrics::counter!("switch_bad_responses_total", "reason" => "undecodable").increment(1);
        tracing::warn!(link, error = %why, "undecodable message dropped");
        return None;
    }
    metrics::counter!("switch_rejects_total", "code" => code.to_string()).increment(1);
    tracing::warn!(link, reject = %code, error = %why, "message rejected");
    iso8583::build_reject(raw, code, switch_id).map(Bytes::from)
}

/// What an idle link should do now (SPEC.md section 2 keep-alive rules).
#[derive(Debug, PartialEq, Eq)]
pub enum IdleAction {
    /// Nothing received for the idle timeout: close the link.
    Close,
    /// Nothing sent for the keep-alive interval: send `0000`.
    KeepAlive,
    Nothing,
}

#[must_use]
pub fn idle_action(
    now: i64,
    last_recv: i64,
    last_send: i64,
    settings: &crate::config::SwitchSettings,
) -> IdleAction {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if now - last_recv >= ms(settings.idle_timeout) {
        IdleAction::Close
    } else if now - last_send >= ms(settings.keepalive_send) {
        IdleAction::KeepAlive
    } else {
        IdleAction::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_actions_follow_spec_section_2() {
        let cfg =
            crate::config::Config::from_toml_str("", std::path::Path::new("switch.toml")).unwrap();
        let s = &cfg.switch; // defaults: keep-alive after 120 s, close after 180 s
        let cases = [
            (0, 0, 0, IdleAction::Nothing),
            (119_999, 0, 0, IdleAction::Nothing),
            (120_000, 0, 0, IdleAction::KeepAlive),
            (150_000, 149_000, 0, IdleAction::KeepAlive),
            (150_000, 0, 149_000, IdleAction::Nothing),
            (180_000, 0, 179_000, IdleAction::Close),
        ];
        for (now, recv, send, want) in cases {
            assert_eq!(
                idle_action(now, recv, send, s),
                want,
                "now {now} recv {recv} send {send}"
            );
        }
    }

    #[test]
    fn undecodable_requests_are_rejected_and_responses_dropped() {
        let id = iso8583::InstId::new("00010000").unwrap();
        let mut h = Vec::new();
        iso8583::Header::new(id, iso8583::InstId::new("01030000").unwrap()).write_to(54, &mut h);
        let request = [h.clone(), b"0200XXXX".to_vec()].concat();
        let response = [h, b"0210XXXX".to_vec()].concat();
        let code = iso8583::RejectCode::UNPARSEABLE;
        let reject = reject_for(&request, code, &"bad", "test", id).unwrap();
        assert_eq!(&reject[41..46], b"09990");
        assert_eq!(&reject[46..], &request[..]);
        assert!(reject_for(&response, code, &"bad", "test", id).is_none());
        assert!(reject_for(b"short", code, &"bad", "test", id).is_none());
    }
}
