//! One exec session, start to end: the request's target, the policy hook, the cluster's exec
//! stream, the client's upgrade, the relay, and the observers (audit, metrics) it reports to.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fastwebsockets::WebSocket;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use tracing::Instrument as _;

use crate::audit::ExecRecord;
use crate::audit::recording::{Recording, RecordingError};
use crate::cluster::{Cluster, UpstreamError};
use crate::identity::Identity;
use crate::policy::limits::LimitError;
use crate::policy::{Decision, Denial, Mode, Policy};
use crate::protocol::{self, Status};
use crate::relay::{self, CloseReason, RelayConfig, Summary};
use crate::server::Gateway;

mod admission;
mod hooks;

use admission::act_as;
pub use admission::{ROOT_CHECK_TIMEOUT, admit};
pub use hooks::Hooks;

/// What a client asked to run, from the exec request's path and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    /// `None` when the client named no container (fine for one-container pods).
    pub container: Option<String>,
    /// The command, one element per argument; the default shell when the client sent none.
    pub argv: Vec<String>,
    /// Whether the client sent no `command` and gets [`protocol::default_shell`].
    pub default_shell: bool,
    pub tty: bool,
    pub stdin: bool,
}

impl ExecTarget {
    /// Reads `container`, `command`, `tty` and `stdin` from the exec query.
    pub fn from_query(cluster: &str, namespace: &str, pod: &str, query: &str) -> ExecTarget {
        let mut target = ExecTarget {
            cluster: cluster.into(),
            namespace: namespace.into(),
            pod: pod.into(),
            container: None,
            argv: Vec::new(),
            default_shell: false,
            tty: false,
            stdin: false,
        };
        let truthy = |v: &str| matches!(v, "true" | "1" | "True" | "TRUE");
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "container" if !value.is_empty() => target.container = Some(value.into_owned()),
                "command" => target.argv.push(value.into_owned()),
                "tty" => target.tty = truthy(&value),
                "stdin" => target.stdin = truthy(&value),
                _ => {}
            }
        }
        if target.argv.is_empty() {
            target.argv = protocol::default_shell();
            target.default_shell = true;
        }
        target
    }

    /// The exec path and query for the cluster: the client's query, plus the default shell's
    /// `command`s when it sent none.
    pub fn upstream_path(&self, query: &str) -> String {
        let mut query = query.to_string();
        if self.default_shell {
            let mut extra = form_urlencoded::Serializer::new(String::new());
            for arg in &self.argv {
                extra.append_pair("command", arg);
            }
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&extra.finish());
        }
        format!(
            "/api/v1/namespaces/{}/pods/{}/exec?{query}",
            self.namespace, self.pod
        )
    }
}

impl ExecTarget {
    /// The argv the policy judges: empty for the default shell.
    pub fn requested_argv(&self) -> &[String] {
        if self.default_shell { &[] } else { &self.argv }
    }

    /// The policy's decision on this exec for `identity`.
    pub fn decide(&self, policy: &Policy, identity: &Identity) -> Result<Decision, Denial> {
        policy.decide(
            identity,
            &self.cluster,
            &self.namespace,
            self.requested_argv(),
            self.tty,
        )
    }
}

/// Everything known about a session, for observers.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Random, 16 hex digits.
    pub id: String,
    pub identity: Identity,
    pub target: ExecTarget,
    /// The policy's mode; `None` when refused before a rule matched.
    pub mode: Option<Mode>,
    /// The policy rule that matched; `None` without a policy file or a matching rule.
    pub rule: Option<String>,
    pub peer: SocketAddr,
    /// The subprotocol in use; `None` before the cluster accepted.
    pub protocol: Option<&'static str>,
    pub started: SystemTime,
    /// The session's recording file, if it is recorded.
    pub recording: Option<PathBuf>,
}

/// Hears about every session: the audit trail and metrics plug in here.
pub trait SessionObserver: Send + Sync + 'static {
    /// The relay started.
    fn started(&self, _session: &SessionInfo) {}
    /// The policy or the cluster refused the session with HTTP `code`.
    fn denied(&self, _session: &SessionInfo, _code: u16, _reason: &str) {}
    /// The session ended.
    fn ended(&self, _session: &SessionInfo, _summary: &Summary) {}
}

/// Logs sessions as tracing events (the session's span carries who and where): refusals at
/// info, each session's start and end at debug. The audit trail, always on in `serve` and
/// `dev` (stdout or `PODTERM_AUDIT_FILE`), already has a line for both; logged at info as well
/// they doubled what each session wrote and cost about an eighth of podterm's CPU per session
/// when sessions are short (`loadtest/README.md`, churn).
pub struct LogObserver;

impl SessionObserver for LogObserver {
    fn started(&self, s: &SessionInfo) {
        tracing::debug!(protocol = s.protocol, tty = s.target.tty, "session started");
    }
    fn denied(&self, _: &SessionInfo, code: u16, reason: &str) {
        tracing::info!(code, reason, "session denied");
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

/// Why an exec request got no session.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "offer a subprotocol podterm speaks: {} or {}",
        protocol::V5,
        protocol::V4
    )]
    NoSubprotocol,
    #[error("{0}")]
    Denied(#[from] Denial),
    #[error("{0}")]
    Limit(#[from] LimitError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("WebSocket upgrade failed: {0}")]
    Upgrade(#[from] fastwebsockets::WebSocketError),
}

impl ExecError {
    /// The HTTP code the client gets.
    pub fn http_code(&self) -> u16 {
        match self {
            ExecError::NoSubprotocol | ExecError::Upgrade(_) => 400,
            ExecError::Denied(_) => Denial::CODE,
            ExecError::Limit(e) => e.status().code,
            ExecError::Recording(_) => 500,
            ExecError::Upstream(e) => e.http_code(),
        }
    }

    /// A fixed label for the refusal metric.
    pub fn label(&self) -> &'static str {
        match self {
            ExecError::NoSubprotocol => "no_subprotocol",
            ExecError::Upgrade(_) => "bad_upgrade",
            ExecError::Denied(_) => "policy",
            ExecError::Limit(LimitError::PerUser { .. }) => "limit_per_user",
            ExecError::Limit(LimitError::Total { .. }) => "limit_total",
            ExecError::Recording(_) => "recording",
            ExecError::Upstream(UpstreamError::Refused { code, .. }) if code.as_u16() == 403 => {
                "cluster_forbidden"
            }
            ExecError::Upstream(UpstreamError::Refused { .. }) => "cluster_refused",
            ExecError::Upstream(_) => "cluster_unreachable",
        }
    }

    /// The `Status` answered before the upgrade, unless the cluster's own answer passes.
    pub fn status(&self) -> Status {
        match self {
            ExecError::Denied(d) => d.status(),
            ExecError::Limit(e) => e.status(),
            other => Status::failure(other.http_code(), other.to_string()),
        }
    }

    /// A one-line reason, for observers.
    pub fn reason(&self) -> String {
        match self {
            ExecError::Upstream(e) => e.reason(),
            other => other.to_string(),
        }
    }
}

fn session_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The subprotocols the client offered that podterm speaks, in podterm's order (v5, v4).
fn offered_protocols(req: &Request<hyper::body::Incoming>) -> Vec<&'static str> {
    let offered: Vec<&str> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    protocol::SUBPROTOCOLS
        .into_iter()
        .filter(|p| offered.contains(p))
        .collect()
}

/// Runs the exec WebSocket request `req`: policy, the cluster's exec stream as the caller,
/// then answers 101 with the subprotocol the cluster picked and relays in a task of its own.
pub async fn exec(
    gateway: Arc<Gateway>,
    mut req: Request<hyper::body::Incoming>,
    cluster: Arc<Cluster>,
    identity: Identity,
    target: ExecTarget,
    peer: SocketAddr,
) -> Result<Response<http_body_util::Empty<bytes::Bytes>>, ExecError> {
    let mut info = SessionInfo {
        id: session_id(),
        identity,
        target,
        mode: None,
        rule: None,
        peer,
        protocol: None,
        started: SystemTime::now(),
        recording: None,
    };
    let span = tracing::info_span!(
        "session",
        id = %info.id,
        user = %info.identity.user,
        cluster = %info.target.cluster,
        namespace = %info.target.namespace,
        pod = %info.target.pod,
        container = info.target.container.as_deref().unwrap_or(""),
    );
    let result = async {
        let protocols = offered_protocols(&req);
        if protocols.is_empty() {
            return Err(ExecError::NoSubprotocol);
        }
        let hooks = &gateway.hooks;
        if let Ok(grant) =
            hooks
                .policy
                .grant(&info.identity, &info.target.cluster, &info.target.namespace)
        {
            info.mode = Some(grant.mode);
            info.rule = grant.rule.map(str::to_string);
        }
        let place = admit(&gateway, &cluster, &info.identity, &info.target, &protocols).await?;
        let query = req.uri().query().unwrap_or("");
        let act_as = act_as(&gateway, &info.identity);
        let path = info.target.upstream_path(query);
        let connecting = std::time::Instant::now();
        let upstream = cluster.exec(&path, &protocols, act_as).await?;
        gateway.metrics.upstream_connected(connecting.elapsed());
        let recording = match (&hooks.recording, &hooks.audit) {
            (Some(config), Some(audit)) => {
                let exec = ExecRecord::from_session(&info);
                let recording = Recording::create(config, &exec, audit)?;
                if recording.is_some() {
                    info.recording = Some(Recording::path_for(&config.dir, &exec));
                }
                recording
            }
            _ => None,
        };
        let (mut response, client_upgrade) = fastwebsockets::upgrade::upgrade(&mut req)?;
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(upstream.protocol),
        );
        Ok((response, client_upgrade, upstream, place, recording))
    }
    .instrument(span.clone())
    .await;

    let (response, client_upgrade, upstream, place, recording) = match result {
        Ok(parts) => parts,
        Err(e) => {
            let _enter = span.enter();
            let (code, reason) = (e.http_code(), e.reason());
            gateway.metrics.denied(e.label());
            for o in &gateway.hooks.observers {
                o.denied(&info, code, &reason);
            }
            return Err(e);
        }
    };
    info.protocol = Some(upstream.protocol);
    let mut relay_config = RelayConfig::new(
        &gateway.config,
        upstream.protocol == protocol::V5,
        gateway.metrics.relay_bytes(),
    );
    relay_config.recording = recording.as_ref().map(Recording::tap);
    let live = gateway.drain.session();
    let counted = gateway.metrics.session_started(&info.target.cluster);
    tokio::spawn(
        async move {
            let _live = live;
            let _place = place;
            for o in &gateway.hooks.observers {
                o.started(&info);
            }
            // Only the connection is kept: the WebSocket wrapper (and its read buffer) goes now.
            let client = client_upgrade.await.map(WebSocket::into_inner);
            let summary = match client {
                Ok(client) => {
                    relay::relay(
                        client,
                        upstream.io,
                        &relay_config,
                        gateway.drain.session_deadline(),
                    )
                    .await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "client upgrade failed; closing the exec");
                    Summary {
                        bytes_from_client: 0,
                        bytes_to_client: 0,
                        exit_code: None,
                        status_message: None,
                        close: CloseReason::ClientGone(format!("upgrade failed: {e}")),
                        duration: Duration::ZERO,
                    }
                }
            };
            drop(relay_config);
            if let Some(recording) = recording {
                // Failures were audited as they happened; the session is over either way.
                let _ = recording.finish().await;
            }
            counted.finish(summary.close.label());
            for o in &gateway.hooks.observers {
                o.ended(&info, &summary);
            }
        }
        .instrument(span),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_queries() {
        let t = ExecTarget::from_query(
            "dev",
            "default",
            "web-0",
            "container=app&command=ls&command=-l&command=%2Ftmp&stdin=true&tty=1",
        );
        assert_eq!(t.container.as_deref(), Some("app"));
        assert_eq!(t.argv, ["ls", "-l", "/tmp"]);
        assert!(t.tty && t.stdin && !t.default_shell);
        assert_eq!(
            t.upstream_path("container=app&command=ls"),
            "/api/v1/namespaces/default/pods/web-0/exec?container=app&command=ls"
        );
    }

    #[test]
    fn no_command_means_the_default_shell() {
        let t = ExecTarget::from_query("dev", "ns", "p", "stdin=true&tty=true");
        assert!(t.default_shell && t.container.is_none());
        assert_eq!(t.argv, protocol::default_shell());
        let path = t.upstream_path("stdin=true&tty=true");
        let query = path.split_once('?').unwrap().1;
        let commands: Vec<String> = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(commands, protocol::default_shell());
    }
}
