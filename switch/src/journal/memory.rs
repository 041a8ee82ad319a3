//! [`MemoryJournal`]: an in-memory [`Journal`] for unit tests of modules that journal.

use std::io;
use std::sync::Mutex;

use super::{Completion, Journal, JournalError, Payload, Record};

/// Keeps records in a `Vec`. Completions run immediately, on the caller's thread, inside
/// `append` (so callers must not hold a lock the completion needs). Can be told to fail
/// appends, to test how callers handle journal errors.
#[derive(Default)]
pub struct MemoryJournal {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    records: Vec<Record>,
    fail: bool,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything appended so far, in order (payloads are cheap `Bytes` clones).
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// While set, appends are not stored and completions get an I/O error.
    pub fn set_failing(&self, fail: bool) {
        self.lock().fail = fail;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Journal for MemoryJournal {
    fn append(&self, kind: u8, payload: Payload, on_durable: Option<Completion>) {
        let result = {
            let mut inner = self.lock();
            if inner.fail {
                Err(JournalError::io(
                    "write",
                    "<memory>",
                    io::Error::other("injected failure"),
                ))
            } else {
                let seq = inner.records.len() as u64 + 1;
                inner.records.push(Record {
                    seq,
                    kind,
                    payload: payload.into_bytes(),
                });
                Ok(())
            }
        };
        // Outside the lock, so a completion may append again.
        if let Some(done) = on_durable {
            done(result);
        }
    }

    fn flush_blocking(&self) -> Result<(), JournalError> {
        Ok(())
    }
}
