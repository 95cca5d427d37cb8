//! The audit trail as a session observer: the gateway's session events become audit lines.

use super::{AuditLog, SessionEnd};
use crate::events::{Action, Refused, SessionEvent, SessionInfo, SessionObserver, Summary};

/// Writes `session.start`, `session.denied` + `session.end`, and `session.end` lines.
#[derive(Debug, Clone)]
pub struct AuditObserver {
    log: AuditLog,
}

impl AuditObserver {
    pub fn new(log: AuditLog) -> AuditObserver {
        AuditObserver { log }
    }
}

impl SessionObserver for AuditObserver {
    fn started(&self, s: &SessionInfo) {
        self.log.session_start(s);
    }

    fn denied(&self, a: &SessionInfo, refused: &Refused<'_>) {
        let reason = format!("{}: {}", refused.code, refused.reason);
        self.log.exec_denied(a, &reason);
    }

    fn event(&self, s: &SessionInfo, event: SessionEvent, detail: &str) {
        self.log.session_event(s, event, detail);
    }

    fn action(&self, action: &Action) {
        self.log.action(action);
    }

    fn ended(&self, s: &SessionInfo, summary: &Summary) {
        let close_reason = match &summary.status_message {
            Some(status) => format!("{}; {status}", summary.close.text()).into(),
            None => summary.close.text(),
        };
        self.log.session_end(
            s,
            &SessionEnd {
                bytes_in: summary.bytes_from_client,
                bytes_out: summary.bytes_to_client,
                exit_code: summary.exit_code,
                close_reason,
            },
        );
    }
}
