//! One exec session, start to end: the request's target, the policy hook, the cluster's exec
//! stream, the client's upgrade, the relay, and the observers (audit, metrics) it reports to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use tracing::Instrument as _;

use crate::cluster::{ActAs, Cluster, UpstreamError};
use crate::identity::Identity;
use crate::protocol;
use crate::relay::{self, RelayConfig, Summary};
use crate::server::Gateway;

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

/// What the policy allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The mode the session runs in, for the audit trail (e.g. `shell`, `restricted`).
    pub mode: String,
}

/// Why the policy refused (a `Status` 403 with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denial {
    pub message: String,
}

/// The policy hook, asked before anything reaches the cluster.
pub trait Policy: Send + Sync + 'static {
    fn decide(&self, identity: &Identity, target: &ExecTarget) -> Result<Admission, Denial>;
}

/// The default policy: the cluster's RBAC alone decides.
pub struct AllowAll;

impl Policy for AllowAll {
    fn decide(&self, _: &Identity, target: &ExecTarget) -> Result<Admission, Denial> {
        Ok(Admission {
            mode: if target.tty { "shell" } else { "command" }.into(),
        })
    }
}

/// Everything known about a session, for observers.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Random, 16 hex digits.
    pub id: String,
    pub identity: Identity,
    pub target: ExecTarget,
    /// The policy's mode; empty when denied.
    pub mode: String,
    pub peer: SocketAddr,
    /// The subprotocol in use; `None` before the cluster accepted.
    pub protocol: Option<&'static str>,
    pub started: SystemTime,
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

/// Logs sessions as tracing events (the session's span carries who and where).
pub struct LogObserver;

impl SessionObserver for LogObserver {
    fn started(&self, s: &SessionInfo) {
        tracing::info!(protocol = s.protocol, tty = s.target.tty, "session started");
    }
    fn denied(&self, _: &SessionInfo, code: u16, reason: &str) {
        tracing::info!(code, reason, "session denied");
    }
    fn ended(&self, _: &SessionInfo, sum: &Summary) {
        tracing::info!(
            exit_code = sum.exit_code,
            close = %sum.close.text(),
            bytes_from_client = sum.bytes_from_client,
            bytes_to_client = sum.bytes_to_client,
            duration_ms = sum.duration.as_millis() as u64,
            "session ended"
        );
    }
}

/// The policy and observers the gateway consults.
#[derive(Clone)]
pub struct Hooks {
    pub policy: Arc<dyn Policy>,
    pub observers: Vec<Arc<dyn SessionObserver>>,
}

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            policy: Arc::new(AllowAll),
            observers: vec![Arc::new(LogObserver)],
        }
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
            ExecError::Denied(_) => 403,
            ExecError::Upstream(e) => e.http_code(),
        }
    }

    /// A fixed label for the refusal metric.
    pub fn label(&self) -> &'static str {
        match self {
            ExecError::NoSubprotocol => "no_subprotocol",
            ExecError::Upgrade(_) => "bad_upgrade",
            ExecError::Denied(_) => "policy",
            ExecError::Upstream(UpstreamError::Refused { code, .. }) if code.as_u16() == 403 => {
                "cluster_forbidden"
            }
            ExecError::Upstream(UpstreamError::Refused { .. }) => "cluster_refused",
            ExecError::Upstream(_) => "cluster_unreachable",
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
        mode: String::new(),
        peer,
        protocol: None,
        started: SystemTime::now(),
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
        let admission = gateway.hooks.policy.decide(&info.identity, &info.target)?;
        info.mode = admission.mode;
        let query = req.uri().query().unwrap_or("");
        let act_as = if gateway.auth.impersonates() {
            ActAs::User(&info.identity)
        } else {
            ActAs::Podterm
        };
        let path = info.target.upstream_path(query);
        let connecting = std::time::Instant::now();
        let upstream = cluster.exec(&path, &protocols, act_as).await?;
        gateway.metrics.upstream_connected(connecting.elapsed());
        let (mut response, client_upgrade) = fastwebsockets::upgrade::upgrade(&mut req)?;
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(upstream.protocol),
        );
        Ok((response, client_upgrade, upstream))
    }
    .instrument(span.clone())
    .await;

    let (response, client_upgrade, upstream) = match result {
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
    let relay_config = RelayConfig::new(
        &gateway.config,
        upstream.protocol == protocol::V5,
        gateway.metrics.relay_bytes(),
    );
    let live = gateway.drain.session();
    let counted = gateway.metrics.session_started(&info.target.cluster);
    tokio::spawn(
        async move {
            let _live = live;
            let client = match client_upgrade.await {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!(error = %e, "client upgrade failed; closing the exec");
                    return;
                }
            };
            for o in &gateway.hooks.observers {
                o.started(&info);
            }
            let summary = relay::relay(
                client,
                upstream.socket,
                &relay_config,
                gateway.drain.session_deadline(),
            )
            .await;
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
