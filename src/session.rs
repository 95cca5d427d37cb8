//! One exec session, start to end: the request's target, the policy hook, the cluster's exec
//! stream, the client's upgrade, the relay, and the observers (audit, metrics) it reports to.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

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
use crate::protocol::exec_query::{ExecQuery, QueryError};
use crate::protocol::{self};
use crate::relay::{self, CloseReason, RelayConfig, Summary};
use crate::server::Gateway;
use crate::telemetry::metrics::SessionMetrics;

mod admission;
mod hooks;

pub use admission::{ROOT_CHECK_TIMEOUT, act_as, admit};
pub use hooks::Hooks;

/// One exec request, parsed once: where, what and how, exactly as kube-apiserver will read
/// the query podterm sends for it ([`ExecTarget::upstream_path`]). The policy, `deny_root`,
/// the audit, the recording and the metrics all read this value, never the client's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    /// What to run and how; `request.command` is the default shell when the client sent no
    /// `command`, and `request.container` is `None` when it named none (fine for
    /// one-container pods).
    pub request: ExecQuery,
    /// Whether the client sent no `command` and gets [`protocol::default_shell`].
    pub default_shell: bool,
}

impl ExecTarget {
    /// Parses the exec query strictly ([`ExecQuery::parse`]): the API server's reading, or a
    /// refusal where it could be read two ways.
    pub fn parse(
        cluster: &str,
        namespace: &str,
        pod: &str,
        query: &str,
    ) -> Result<ExecTarget, QueryError> {
        let mut request = ExecQuery::parse(query)?;
        let default_shell = request.command.is_empty();
        if default_shell {
            request.command = protocol::default_shell();
        }
        Ok(ExecTarget {
            cluster: cluster.into(),
            namespace: namespace.into(),
            pod: pod.into(),
            request,
            default_shell,
        })
    }

    /// The exec path and query for the cluster, made from this value alone.
    pub fn upstream_path(&self) -> String {
        exec_path(&self.namespace, &self.pod, &self.request)
    }

    /// The argv the policy judges: empty for the default shell.
    pub fn requested_argv(&self) -> &[String] {
        if self.default_shell {
            &[]
        } else {
            &self.request.command
        }
    }

    /// The policy's decision on this exec for `identity`.
    pub fn decide(&self, policy: &Policy, identity: &Identity) -> Result<Decision, Denial> {
        policy.decide(
            identity,
            &self.cluster,
            &self.namespace,
            self.requested_argv(),
            self.request.tty,
        )
    }
}

/// `/api/v1/namespaces/{namespace}/pods/{pod}/exec?{query}`.
pub fn exec_path(namespace: &str, pod: &str, query: &ExecQuery) -> String {
    format!(
        "/api/v1/namespaces/{namespace}/pods/{pod}/exec?{}",
        query.encode()
    )
}

/// Everything known about a session that runs, for observers.
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

/// An exec attempt from the moment it reaches podterm; what is known grows as it is checked
/// (the caller, then the parsed request, then the policy's rule). Every attempt ends in
/// exactly one report to the observers: refused, or started and ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: String,
    pub peer: SocketAddr,
    pub started: SystemTime,
    /// As the client named them in the path (the cluster may be unknown, the names bad).
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub identity: Option<Identity>,
    pub target: Option<ExecTarget>,
    pub mode: Option<Mode>,
    pub rule: Option<String>,
    pub recording: Option<PathBuf>,
}

impl Attempt {
    pub fn new(peer: SocketAddr, cluster: &str, namespace: &str, pod: &str) -> Attempt {
        Attempt {
            id: session_id(),
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
        }
    }

    /// The session this attempt becomes once the caller and the request are known.
    fn session(&self) -> Option<SessionInfo> {
        Some(SessionInfo {
            id: self.id.clone(),
            identity: self.identity.clone()?,
            target: self.target.clone()?,
            mode: self.mode,
            rule: self.rule.clone(),
            peer: self.peer,
            protocol: None,
            started: self.started,
            recording: self.recording.clone(),
        })
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

/// Hears about every exec attempt: the audit trail and metrics plug in here.
pub trait SessionObserver: Send + Sync + 'static {
    /// The relay started.
    fn started(&self, _session: &SessionInfo) {}
    /// podterm, its policy or the cluster refused the exec; nothing ran.
    fn denied(&self, _attempt: &Attempt, _refused: &Refused<'_>) {}
    /// The session ended.
    fn ended(&self, _session: &SessionInfo, _summary: &Summary) {}
}

/// Logs sessions as tracing events (the session's span carries who and where): refusals at
/// info, each session's start and end at debug. The audit trail, always on in `serve` and
/// `dev`, already has a line for both; logging them at info as well doubled what each session
/// wrote (loadtest/README.md, churn).
pub struct LogObserver;

impl SessionObserver for LogObserver {
    fn started(&self, s: &SessionInfo) {
        tracing::debug!(
            protocol = s.protocol,
            tty = s.target.request.tty,
            "session started"
        );
    }
    fn denied(&self, a: &Attempt, refused: &Refused<'_>) {
        tracing::info!(
            session = %a.id,
            user = a.identity.as_ref().map(|i| i.user.as_str()),
            cluster = %a.cluster,
            namespace = %a.namespace,
            pod = %a.pod,
            code = refused.code,
            reason = refused.reason,
            "session denied"
        );
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

/// Why an exec request got no session; classified into a `Status`, a metric label and an
/// audit line at the edge (crate::routes), nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "offer a subprotocol podterm speaks: {} or {}",
        protocol::V5,
        protocol::V4
    )]
    NoSubprotocol,
    #[error("bad WebSocket upgrade: {0}")]
    Upgrade(#[from] fastwebsockets::WebSocketError),
    #[error("{0}")]
    Denied(#[from] Denial),
    #[error("{0}")]
    Limit(#[from] LimitError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
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

/// Where an exec attempt is, for [`AttemptGuard`]: what its end must say if the client goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Being checked: nothing was sent to the cluster for the user's command.
    Checking,
    /// The exec was sent to the cluster: the command may be running.
    Connecting,
    /// Reported: refused, or handed to the relay task, which reports its start and end.
    Reported,
}

/// Owns an [`Attempt`] until it is reported, so that every attempt is reported once: if the
/// request's future is dropped (the client went away mid-admission), the guard reports it —
/// as refused while it was being checked, as started and ended once the exec was sent.
pub struct AttemptGuard {
    gateway: Arc<Gateway>,
    pub attempt: Attempt,
    phase: Phase,
    /// Plain (non-upgrade) exec requests are not reported: they run nothing, and kubectl's
    /// SPDY fallback after a refused upgrade would be counted twice.
    quiet: bool,
}

impl AttemptGuard {
    pub fn new(gateway: Arc<Gateway>, attempt: Attempt, quiet: bool) -> AttemptGuard {
        AttemptGuard {
            gateway,
            attempt,
            phase: Phase::Checking,
            quiet,
        }
    }

    /// The request was answered without a session (a plain exec request): nothing to report.
    pub fn answered(&mut self) {
        if self.phase == Phase::Checking {
            self.phase = Phase::Reported;
        }
    }

    /// Reports the refusal (once) to every observer and the metrics.
    pub fn refused(&mut self, refused: &Refused<'_>) {
        if self.phase == Phase::Reported {
            return;
        }
        self.phase = Phase::Reported;
        if self.quiet {
            return;
        }
        self.gateway.metrics.denied(refused.label);
        for o in &self.gateway.hooks.observers {
            o.denied(&self.attempt, refused);
        }
    }
}

/// Why the guard reports an attempt whose client left while it was being checked.
const CLIENT_LEFT: &str = "the client went away before the session started";

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        match self.phase {
            Phase::Reported => {}
            Phase::Checking => self.refused(&Refused {
                code: 499,
                label: "client_gone",
                reason: CLIENT_LEFT,
            }),
            Phase::Connecting => {
                self.phase = Phase::Reported;
                let Some(info) = self.attempt.session() else {
                    return;
                };
                let counted = report_start(&self.gateway, &info);
                let summary = Summary::unstarted(CloseReason::ClientGone(
                    "the client went away while podterm connected to the cluster".into(),
                ));
                report_end(&self.gateway, &info, counted, &summary);
            }
        }
    }
}

/// Runs the exec WebSocket request `req` for the attempt in `guard` (caller and request
/// known): the client's upgrade is checked, then admission (policy, limits, `deny_root`),
/// then the recording is created — and only then is the exec opened on the cluster as the
/// caller. Answers 101 with the subprotocol the cluster picked and relays in a task of its own.
pub async fn exec(
    guard: &mut AttemptGuard,
    mut req: Request<hyper::body::Incoming>,
    cluster: Arc<Cluster>,
) -> Result<Response<http_body_util::Empty<bytes::Bytes>>, ExecError> {
    let gateway = guard.gateway.clone();
    let (identity, target) = match (&guard.attempt.identity, &guard.attempt.target) {
        (Some(identity), Some(target)) => (identity.clone(), target.clone()),
        _ => unreachable!("routes parse the caller and the request first"),
    };
    let span = tracing::info_span!(
        "session",
        id = %guard.attempt.id,
        user = %identity.user,
        cluster = %target.cluster,
        namespace = %target.namespace,
        pod = %target.pod,
        container = target.request.container.as_deref().unwrap_or(""),
    );
    let protocols = offered_protocols(&req);
    if protocols.is_empty() {
        return Err(ExecError::NoSubprotocol);
    }
    // The client's handshake is checked before anything reaches the cluster.
    let (mut response, client_upgrade) = fastwebsockets::upgrade::upgrade(&mut req)?;
    let hooks = &gateway.hooks;
    if let Ok(grant) = hooks
        .policy
        .grant(&identity, &target.cluster, &target.namespace)
    {
        guard.attempt.mode = Some(grant.mode);
        guard.attempt.rule = grant.rule.map(str::to_string);
    }
    let place = admit(&gateway, &cluster, &identity, &target, &protocols)
        .instrument(span.clone())
        .await?;
    let recording = start_recording(&gateway, &mut guard.attempt)?;
    guard.phase = Phase::Connecting;
    let connecting = std::time::Instant::now();
    let upstream = match cluster
        .exec(
            &target.upstream_path(),
            &protocols,
            act_as(&gateway, &identity),
        )
        .instrument(span.clone())
        .await
    {
        Ok(upstream) => upstream,
        Err(e) => {
            guard.phase = Phase::Checking;
            if let (Some(recording), Some(path)) = (recording, &guard.attempt.recording) {
                recording.discard(path);
            }
            return Err(e.into());
        }
    };
    gateway.metrics.upstream_connected(connecting.elapsed());
    let mut info = guard
        .attempt
        .session()
        .expect("caller and request are known");
    guard.phase = Phase::Reported;
    info.protocol = Some(upstream.protocol);
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(upstream.protocol),
    );
    // Counted and reported before the 101 goes out: a client that reads the metrics or
    // starts a drain right after the upgrade sees this session.
    let live = gateway.drain.session();
    let counted = span.in_scope(|| report_start(&gateway, &info));
    let run = Run {
        gateway,
        info,
        upstream,
        recording,
        place,
        live,
        counted,
    };
    tokio::spawn(run.relay(client_upgrade).instrument(span));
    Ok(response)
}

/// Creates the session's recording, if recordings are on; an error only when required.
fn start_recording(
    gateway: &Gateway,
    attempt: &mut Attempt,
) -> Result<Option<Recording>, ExecError> {
    let (Some(config), Some(audit)) = (&gateway.hooks.recording, &gateway.hooks.audit) else {
        return Ok(None);
    };
    let exec = ExecRecord::from_attempt(attempt);
    let recording = Recording::create(config, &exec, audit)?;
    if recording.is_some() {
        attempt.recording = Some(Recording::path_for(&config.dir, &exec));
    }
    Ok(recording)
}

/// A session whose exec the cluster accepted: relayed until it ends, then reported.
struct Run {
    gateway: Arc<Gateway>,
    info: SessionInfo,
    upstream: crate::cluster::ExecStream,
    recording: Option<Recording>,
    place: crate::policy::limits::SessionGuard,
    live: crate::drain::SessionGuard,
    counted: SessionMetrics,
}

impl Run {
    async fn relay(self, client_upgrade: fastwebsockets::upgrade::UpgradeFut) {
        let Run {
            gateway,
            info,
            upstream,
            recording,
            place,
            live,
            counted,
        } = self;
        let _live = live;
        let _place = place;
        let mut relay_config = RelayConfig::new(
            &gateway.config,
            upstream.protocol == protocol::V5,
            gateway.metrics.relay_bytes(),
        );
        relay_config.recording = recording.as_ref().map(Recording::tap);
        // Only the connection is kept: the WebSocket wrapper (and its read buffer) goes now.
        let summary = match client_upgrade.await.map(WebSocket::into_inner) {
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
                Summary::unstarted(CloseReason::ClientGone(format!("upgrade failed: {e}")))
            }
        };
        drop(relay_config);
        if let Some(recording) = recording {
            // Failures were audited as they happened; the session is over either way.
            let _ = recording.finish().await;
        }
        report_end(&gateway, &info, counted, &summary);
    }
}

/// A session started: counted in the metrics and told to every observer.
fn report_start(gateway: &Gateway, info: &SessionInfo) -> SessionMetrics {
    let counted = gateway.metrics.session_started(&info.target.cluster);
    for o in &gateway.hooks.observers {
        o.started(info);
    }
    counted
}

/// A session ended: its metrics closed with its outcome and every observer told.
fn report_end(gateway: &Gateway, info: &SessionInfo, counted: SessionMetrics, summary: &Summary) {
    counted.finish(summary.close.label());
    for o in &gateway.hooks.observers {
        o.ended(info, summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_queries() {
        let t = ExecTarget::parse(
            "dev",
            "default",
            "web-0",
            "container=app&command=ls&command=-l&command=%2Ftmp&stdin=true&tty=1",
        )
        .unwrap();
        assert_eq!(t.request.container.as_deref(), Some("app"));
        assert_eq!(t.request.command, ["ls", "-l", "/tmp"]);
        assert!(t.request.tty && t.request.stdin && !t.default_shell);
        assert_eq!(
            t.upstream_path(),
            "/api/v1/namespaces/default/pods/web-0/exec?container=app&command=ls&command=-l&command=%2Ftmp&stdin=true&tty=true"
        );
    }

    #[test]
    fn the_upstream_query_is_never_the_clients() {
        // H1: `tty=t` is a tty for kube-apiserver, so it is one for podterm, and it is sent
        // as `tty=true`; unknown parameters are not passed on.
        let t = ExecTarget::parse("dev", "ns", "p", "command=ls&tty=t&stdout=yes&junk=1").unwrap();
        assert!(t.request.tty && t.request.stdout);
        assert_eq!(
            t.upstream_path(),
            "/api/v1/namespaces/ns/pods/p/exec?command=ls&stdout=true&tty=true"
        );
        assert!(ExecTarget::parse("dev", "ns", "p", "tty=true&tty=false").is_err());
    }

    #[test]
    fn no_command_means_the_default_shell() {
        let t = ExecTarget::parse("dev", "ns", "p", "stdin=true&tty=true").unwrap();
        assert!(t.default_shell && t.request.container.is_none());
        assert_eq!(t.request.command, protocol::default_shell());
        let path = t.upstream_path();
        let query = path.split_once('?').unwrap().1;
        assert_eq!(
            ExecQuery::parse(query).unwrap().command,
            protocol::default_shell()
        );
    }
}
