//! The checks of a `kubectl cp` session's tar stream (crate::policy::toolkit::CopyCheck): the
//! container's archive on stdout for a read, the caller's on stdin for a write. Every entry is
//! read (crate::protocol::tar) before the frame that carries it is forwarded, so a refused
//! entry never reaches the other side: the session ends with 1008 instead. What passed is
//! counted and hashed for the audit line.

use std::sync::{Arc, Mutex};

use crate::policy::toolkit::{Copy, CopyCheck, normalize_path};
use crate::protocol::tar::{Event, Sha256, TarError, TarReader};

/// What a checked copy moved, read by the session when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOutcome {
    /// Tar stream bytes that passed.
    pub bytes: u64,
    /// sha256 of those bytes, hex (empty until the stream ended).
    pub sha256: String,
    /// Entries that passed.
    pub entries: u64,
    /// Why the stream was cut, if it was.
    pub refused: Option<String>,
    /// Whether the whole archive passed (it ended where an archive ends).
    pub complete: bool,
}

/// A session's copy check and where its outcome goes.
#[derive(Debug, Clone)]
pub struct CopyRelay {
    pub check: CopyCheck,
    pub outcome: Arc<Mutex<CopyOutcome>>,
}

impl CopyRelay {
    pub fn new(check: CopyCheck) -> CopyRelay {
        CopyRelay {
            check,
            outcome: Arc::default(),
        }
    }

    /// The tap for the cluster's stdout (a read), or for the client's stdin (a write).
    pub(super) fn tap(&self, upstream: bool) -> Option<Box<CopyTap>> {
        let reader = match (&self.check.copy, upstream) {
            (Copy::Read { path }, true) => {
                TarReader::new(path.trim_start_matches('/'), self.check.limit)
            }
            (Copy::Write { .. }, false) => TarReader::anywhere(self.check.limit),
            _ => return None,
        };
        Some(Box::new(CopyTap {
            reader,
            relay: self.clone(),
            hasher: Sha256::start(),
        }))
    }
}

/// One direction's check, fed the stream as it passes.
pub(super) struct CopyTap {
    reader: TarReader,
    relay: CopyRelay,
    hasher: Sha256,
}

impl CopyTap {
    /// Checks `data` (the next bytes of the stream); an error ends the session.
    pub(super) fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        let check = &self.relay.check;
        let result = self.reader.push(data, &mut |event| {
            let (Copy::Write { dir }, Event::Entry(entry)) = (&check.copy, event) else {
                return Ok(());
            };
            let path = normalize_path(&format!("{dir}/{}", entry.name))
                .map_err(|e| TarError::Refused(e.to_string()))?;
            if check.write.iter().any(|g| g.matches(&path)) {
                Ok(())
            } else {
                Err(TarError::Refused(format!(
                    "the policy does not allow writing {path:?}"
                )))
            }
        });
        match result {
            Ok(()) => {
                self.hasher.update(data);
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                self.outcome().refused = Some(why.clone());
                Err(why)
            }
        }
    }

    fn outcome(&self) -> std::sync::MutexGuard<'_, CopyOutcome> {
        self.relay
            .outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for CopyTap {
    fn drop(&mut self) {
        let sha256 = std::mem::replace(&mut self.hasher, Sha256::start()).finish();
        let (bytes, entries) = (self.reader.bytes, self.reader.entries);
        let complete = self.reader.finish().is_ok();
        let mut outcome = self.outcome();
        outcome.bytes = bytes;
        outcome.entries = entries;
        outcome.complete = complete;
        outcome.sha256 = sha256;
    }
}
