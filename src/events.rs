//! What a session tells the rest of podterm: the session's record ([`SessionInfo`]), how it
//! ended ([`Summary`], [`CloseReason`]) and the [`SessionObserver`] trait that the audit
//! trail, the metrics and tests implement. Plain data: no I/O, no hyper, no kube.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::identity::Identity;
use crate::policy::Mode;
use crate::protocol::{self, exec_query::ExecTarget};

/// One exec attempt from the moment it reaches podterm; what is known grows as it is checked
/// (the caller, then the parsed request, then the policy's rule), and it is built once: the
/// audit lines, the recording's header and the metrics all read this value.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Random, 16 hex digits; also the recording's file name.
    pub id: String,
    pub peer: SocketAddr,
    pub started: SystemTime,
    /// As the client named them in the path (the cluster may be unknown, the names bad).
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    /// `None` until the caller is known.
    pub identity: Option<Identity>,
    /// `None` until the request is parsed.
    pub target: Option<ExecTarget>,
    /// The policy's mode and rule; `None` without a matching rule.
    pub mode: Option<Mode>,
    pub rule: Option<String>,
    /// The session's recording file, if it is recorded.
    pub recording: Option<PathBuf>,
    /// A `kubectl cp` exec: what its tar stream is checked against in the relay. Boxed: few
    /// sessions copy, and every session's record holds this field (448 → 392 bytes, a
    /// smaller allocator class).
    pub copy: Option<Box<crate::policy::toolkit::CopyCheck>>,
}

/// An id of 64 bits as 16 lowercase hex digits, as `format!("{:016x}")` writes it, without
/// `fmt`'s machinery (every session and action takes one).
fn hex_id(bits: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..16)
        .rev()
        .map(|nibble| char::from(HEX[(bits >> (nibble * 4)) as usize & 0xf]))
        .collect()
}

impl SessionInfo {
    /// A new attempt with a fresh id, for the path's `cluster`, `namespace` and `pod`.
    pub fn new(peer: SocketAddr, cluster: &str, namespace: &str, pod: &str) -> SessionInfo {
        SessionInfo {
            id: hex_id(rand::random()),
            peer,
            started: SystemTime::now(),
            cluster: cluster.into(),
            namespace: namespace.into(),
            pod: pod.into(),
            identity: None,
            target: None,
            mode: None,
            rule: None,
            recording: None,
            copy: None,
        }
    }

    /// The caller and the parsed request, once both are known (routes check both before a
    /// session is prepared).
    pub fn caller_and_target(&self) -> Option<(&Identity, &ExecTarget)> {
        Some((self.identity.as_ref()?, self.target.as_ref()?))
    }

    pub fn user(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.user.as_str())
    }

    pub fn container(&self) -> Option<&str> {
        self.target.as_ref()?.request.container.as_deref()
    }

    /// The argv run: the default shell's when the client named none.
    pub fn argv(&self) -> Option<&[String]> {
        self.target.as_ref().map(|t| t.request.command.as_slice())
    }

    pub fn tty(&self) -> Option<bool> {
        self.target.as_ref().map(|t| t.request.tty)
    }
}

/// A refused exec, as the edge (crate::routes) classified it.
#[derive(Debug, Clone)]
pub struct Refused<'a> {
    pub code: u16,
    /// A fixed label for the refusal metric.
    pub label: &'static str,
    pub reason: &'a str,
}

/// Hears about every exec attempt: the audit trail and metrics plug in here. Each attempt is
/// reported once: `denied`, or `started` and then `ended`.
pub trait SessionObserver: Send + Sync + 'static {
    /// The exec was sent to the cluster.
    fn started(&self, _session: &SessionInfo) {}
    /// podterm, its policy or the cluster refused the exec; nothing ran.
    fn denied(&self, _attempt: &SessionInfo, _refused: &Refused<'_>) {}
    /// The session ended.
    fn ended(&self, _session: &SessionInfo, _summary: &Summary) {}
    /// Something happened to a live session (`detail`: what, in a few words).
    fn event(&self, _session: &SessionInfo, _event: SessionEvent, _detail: &str) {}
    /// An action beside a session (logs, files, debug containers) was allowed and done, or
    /// refused.
    fn action(&self, _action: &Action) {}
}

/// One action beside a session, from the moment it was asked for: reading a pod's logs,
/// copying a file, adding a debug container. Built once from the parsed request; the audit
/// line is written from it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Action {
    /// `logs.read`, `file.read`, `file.write`, `debug.create`.
    pub event: &'static str,
    /// Random, 16 hex digits.
    pub action: String,
    pub user: String,
    pub groups: Vec<String>,
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
    pub peer: SocketAddr,
    /// Written by the audit trail as its other times are (`audit::Time`).
    #[serde(skip)]
    pub start: SystemTime,
    pub rule: Option<String>,
    /// `ok`, `denied`, `failed`, `cancelled`.
    pub outcome: &'static str,
    /// Why it was denied or failed.
    pub reason: Option<String>,
    /// What was asked and done: the log options; the path, bytes and sha256; the image.
    pub detail: serde_json::Value,
}

impl Action {
    /// A new action by `identity` on `cluster/namespace/pod`, not yet decided.
    pub fn new(
        event: &'static str,
        identity: &Identity,
        peer: SocketAddr,
        (cluster, namespace, pod): (&str, &str, &str),
    ) -> Action {
        Action {
            event,
            action: hex_id(rand::random()),
            user: identity.user.clone(),
            groups: identity.groups.clone(),
            cluster: cluster.into(),
            namespace: namespace.into(),
            pod: pod.into(),
            container: None,
            peer,
            start: SystemTime::now(),
            rule: None,
            outcome: "ok",
            reason: None,
            detail: serde_json::Value::Null,
        }
    }
}

/// What may happen to a live session between its start and its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// Its connection dropped; it waits for the page to come back.
    Detached,
    /// A connection came back to it.
    Resumed,
    /// Someone started watching it, read-only.
    Watched,
    /// A watcher left.
    Unwatched,
    /// Someone ended it.
    Killed,
}

impl SessionEvent {
    /// The audit trail's `event` name.
    pub fn name(self) -> &'static str {
        match self {
            SessionEvent::Detached => "session.detach",
            SessionEvent::Resumed => "session.resume",
            SessionEvent::Watched => "session.watch",
            SessionEvent::Unwatched => "session.unwatch",
            SessionEvent::Killed => "session.kill",
        }
    }
}

/// Logs sessions as tracing events: refusals and events at info, with the session's id and
/// (refusals) who and where; each session's start and end at debug, where the session's span
/// (enabled at debug) carries who and where (the audit trail has a line for both).
pub struct LogObserver;

impl SessionObserver for LogObserver {
    fn started(&self, s: &SessionInfo) {
        tracing::debug!(tty = s.tty(), "session started");
    }
    fn denied(&self, a: &SessionInfo, refused: &Refused<'_>) {
        tracing::info!(
            session = %a.id,
            user = a.user(),
            cluster = %a.cluster,
            namespace = %a.namespace,
            pod = %a.pod,
            code = refused.code,
            reason = refused.reason,
            "session denied"
        );
    }
    fn event(&self, s: &SessionInfo, event: SessionEvent, detail: &str) {
        tracing::info!(session = %s.id, event = event.name(), detail, "session event");
    }
    fn ended(&self, _: &SessionInfo, sum: &Summary) {
        tracing::debug!(
            exit_code = sum.exit_code,
            close = %sum.close.text(),
            bytes_from_client = sum.bytes_from_client,
            bytes_to_client = sum.bytes_to_client,
            duration_ms = sum.duration.as_millis() as u64,
            "session ended"
        );
    }
}

/// Why a session ended; decides the close code each socket gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The cluster closed the stream normally: the command ended (exit status on channel 3).
    Exited,
    /// The client closed the session with this close code.
    ClientClosed(u16),
    /// The client's connection broke or it stopped answering pings.
    ClientGone(String),
    /// The client broke the exec protocol (a forbidden channel, a bad resize, text frames).
    Protocol(String),
    /// The client sent a frame over the limit.
    FrameTooLarge,
    /// The cluster side failed: connection lost, abnormal close, no pongs.
    Upstream(String),
    /// No data either way for the idle timeout.
    Idle,
    /// The session reached its maximum duration.
    MaxDuration,
    /// The gateway is shutting down.
    Shutdown,
    /// The session's recording failed and `PODTERM_RECORD_REQUIRED` is on.
    Recording(String),
    /// An authorized user ended it (`DELETE /api/sessions/{id}`).
    Ended(String),
    /// A `kubectl cp` stream carried an entry podterm refuses (crate::protocol::tar).
    Refused(String),
}

impl CloseReason {
    /// The close code the client gets.
    pub fn client_code(&self) -> u16 {
        match self {
            CloseReason::Exited => 1000,
            CloseReason::ClientClosed(code) if sendable(*code) => *code,
            CloseReason::ClientClosed(_) => 1000,
            CloseReason::ClientGone(_) | CloseReason::Shutdown => 1001,
            CloseReason::Protocol(_)
            | CloseReason::Idle
            | CloseReason::MaxDuration
            | CloseReason::Ended(_)
            | CloseReason::Refused(_) => 1008,
            CloseReason::FrameTooLarge => 1009,
            CloseReason::Upstream(_) | CloseReason::Recording(_) => 1011,
        }
    }

    /// The close code the cluster gets.
    pub fn upstream_code(&self) -> u16 {
        match self {
            CloseReason::Shutdown | CloseReason::ClientGone(_) => 1001,
            _ => 1000,
        }
    }

    /// Whether the session's shutdown signal ended it: the gateway's drain, or someone ending
    /// it (a second shutdown then has nothing to cut short).
    pub fn by_shutdown(&self) -> bool {
        matches!(self, CloseReason::Shutdown | CloseReason::Ended(_))
    }

    /// A fixed label for metrics (`outcome`).
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Exited => "exited",
            CloseReason::ClientClosed(_) => "client_closed",
            CloseReason::ClientGone(_) => "client_gone",
            CloseReason::Protocol(_) => "protocol_error",
            CloseReason::FrameTooLarge => "frame_too_large",
            CloseReason::Upstream(_) => "cluster_failed",
            CloseReason::Idle => "idle_timeout",
            CloseReason::MaxDuration => "max_duration",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Recording(_) => "recording_failed",
            CloseReason::Ended(_) => "ended",
            CloseReason::Refused(_) => "refused",
        }
    }

    /// A short reason for close frames and the audit trail, at most 120 bytes; the fixed
    /// ones are not copied.
    pub fn text(&self) -> Cow<'static, str> {
        let text: Cow<'static, str> = match self {
            CloseReason::Exited => "exited".into(),
            CloseReason::ClientClosed(code) => format!("client closed ({code})").into(),
            CloseReason::ClientGone(why) => format!("client gone: {why}").into(),
            CloseReason::Protocol(why) => format!("protocol: {why}").into(),
            CloseReason::FrameTooLarge => "frame too large".into(),
            CloseReason::Upstream(why) => format!("cluster: {why}").into(),
            CloseReason::Idle => "idle timeout".into(),
            CloseReason::MaxDuration => "maximum session duration".into(),
            CloseReason::Shutdown => "podterm is shutting down".into(),
            CloseReason::Recording(why) => format!("recording failed: {why}").into(),
            CloseReason::Ended(by) => format!("ended by {by}").into(),
            CloseReason::Refused(why) => format!("refused: {why}").into(),
        };
        match text {
            Cow::Borrowed(text) => Cow::Borrowed(protocol::truncate_utf8(text, 120)),
            Cow::Owned(mut text) => {
                text.truncate(protocol::truncate_utf8(&text, 120).len());
                Cow::Owned(text)
            }
        }
    }
}

/// Whether a close code may be sent on the wire (RFC 6455 §7.4).
fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What happened in a session, for the audit trail and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Payload bytes relayed from the client to the cluster.
    pub bytes_from_client: u64,
    /// Payload bytes relayed from the cluster to the client.
    pub bytes_to_client: u64,
    /// The command's exit code, when the cluster reported one on channel 3.
    pub exit_code: Option<i32>,
    /// A channel-3 `Status` that was not an exit status (e.g. the command could not start).
    pub status_message: Option<String>,
    /// Why the session ended.
    pub close: CloseReason,
    /// How long the session lasted.
    pub duration: Duration,
}

impl Summary {
    /// A session that ended before any frame was relayed.
    pub fn unstarted(close: CloseReason) -> Summary {
        Summary {
            bytes_from_client: 0,
            bytes_to_client: 0,
            exit_code: None,
            status_message: None,
            close,
            duration: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::hex_id;

    proptest! {
        #[test]
        fn ids_are_written_as_fmt_writes_them(bits in any::<u64>()) {
            prop_assert_eq!(hex_id(bits), format!("{bits:016x}"));
        }
    }

    #[test]
    fn ids_at_their_edges_are_written_as_fmt_writes_them() {
        for bits in [0, 1, 0xf, 0x10, u64::MAX >> 4, u64::MAX] {
            assert_eq!(hex_id(bits), format!("{bits:016x}"));
        }
    }
}
