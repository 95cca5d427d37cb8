//! The audit trail as a session observer: the gateway's session events become audit lines.

use super::{AuditLog, ExecRecord, SessionEnd, Time};
use crate::relay::Summary;
use crate::session::{Attempt, Refused, SessionInfo, SessionObserver};

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

impl ExecRecord {
    /// The audit view of a session.
    pub fn from_session(s: &SessionInfo) -> ExecRecord {
        ExecRecord {
            session: s.id.clone().into(),
            user: Some(s.identity.user.clone()),
            groups: Some(s.identity.groups.clone()),
            cluster: s.target.cluster.clone(),
            namespace: s.target.namespace.clone(),
            pod: s.target.pod.clone(),
            container: s.target.request.container.clone(),
            argv: Some(s.target.request.command.clone()),
            tty: Some(s.target.request.tty),
            mode: s.mode,
            rule: s.rule.clone(),
            peer: Some(s.peer),
            start: Time::from(s.started),
            recording: s.recording.clone(),
        }
    }

    /// The audit view of an attempt: what was known when it was refused.
    pub fn from_attempt(a: &Attempt) -> ExecRecord {
        let target = a.target.as_ref();
        ExecRecord {
            session: a.id.clone().into(),
            user: a.identity.as_ref().map(|i| i.user.clone()),
            groups: a.identity.as_ref().map(|i| i.groups.clone()),
            cluster: a.cluster.clone(),
            namespace: a.namespace.clone(),
            pod: a.pod.clone(),
            container: target.and_then(|t| t.request.container.clone()),
            argv: target.map(|t| t.request.command.clone()),
            tty: target.map(|t| t.request.tty),
            mode: a.mode,
            rule: a.rule.clone(),
            peer: Some(a.peer),
            start: Time::from(a.started),
            recording: a.recording.clone(),
        }
    }
}

impl From<std::time::SystemTime> for Time {
    fn from(t: std::time::SystemTime) -> Time {
        jiff::Timestamp::try_from(t).map_or_else(|_| Time::now(), Time)
    }
}

impl SessionObserver for AuditObserver {
    fn started(&self, s: &SessionInfo) {
        self.log.session_start(&ExecRecord::from_session(s));
    }

    fn denied(&self, a: &Attempt, refused: &Refused<'_>) {
        let reason = format!("{}: {}", refused.code, refused.reason);
        self.log.exec_denied(&ExecRecord::from_attempt(a), &reason);
    }

    fn ended(&self, s: &SessionInfo, summary: &Summary) {
        let close_reason = match &summary.status_message {
            Some(status) => format!("{}; {status}", summary.close.text()),
            None => summary.close.text(),
        };
        self.log.session_end(
            &ExecRecord::from_session(s),
            &SessionEnd {
                bytes_in: summary.bytes_from_client,
                bytes_out: summary.bytes_to_client,
                exit_code: summary.exit_code,
                close_reason,
            },
        );
    }
}
