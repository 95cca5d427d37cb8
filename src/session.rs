//! One exec session, start to end: the client's handshake, admission, the recording, the
//! cluster's exec stream, the relay task, and the reports to the observers (audit, metrics).
//!
//! Every attempt is owned by an [`AttemptGuard`] from the moment its path matched, so that it
//! is reported exactly once: refused, or started and then ended.

use std::sync::Arc;

use hyper::Response;
use hyper::header::{self, HeaderValue};
use tracing::Instrument as _;

use crate::cluster::{Cluster, ExecStream, UpstreamError};
use crate::events::{CloseReason, Refused, SessionEvent, SessionInfo, Summary};
use crate::fields::{self, Fields};
use crate::fleet::{ClientIo, Live};
use crate::gateway::Gateway;
use crate::policy::Denial;
use crate::policy::limits::{LimitError, SessionGuard as LimitGuard};
use crate::protocol::{self, flow, resume};
use crate::recording::{Recording, RecordingError};
use crate::relay::{self, AttachEvents, Kept, RelayConfig};
use crate::telemetry::metrics::SessionMetrics;

mod admission;
pub mod live;

pub use admission::admit;

/// Why an exec request got no session, named for the step that failed; classified into a
/// `Status`, a metric label and an audit line at the edge (crate::routes), nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "offer a subprotocol podterm speaks: {} or {} (or {}, {})",
        protocol::V5,
        protocol::V4,
        flow::FLOW_V5,
        flow::FLOW_V4
    )]
    NoSubprotocol,
    #[error("bad WebSocket upgrade: {0}")]
    Handshake(#[source] fastwebsockets::WebSocketError),
    #[error(transparent)]
    Policy(#[from] Denial),
    #[error(transparent)]
    Limits(#[from] LimitError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Connect(#[from] UpstreamError),
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

/// Owns an attempt's [`SessionInfo`] until it is reported. If the request's future is dropped
/// (the client went away mid-admission), the guard reports it: as refused while it was being
/// checked, as started and ended once the exec was sent.
pub struct AttemptGuard {
    gateway: Arc<Gateway>,
    /// Filled in as the attempt is checked; shared (not copied) once the recording starts.
    pub info: Arc<SessionInfo>,
    phase: Phase,
    /// Plain (non-upgrade) exec requests are not reported: they run nothing, and kubectl's
    /// SPDY fallback after a refused upgrade would be counted twice.
    quiet: bool,
}

impl AttemptGuard {
    pub fn new(gateway: Arc<Gateway>, info: SessionInfo, quiet: bool) -> AttemptGuard {
        AttemptGuard {
            gateway,
            info: Arc::new(info),
            phase: Phase::Checking,
            quiet,
        }
    }

    /// The attempt's record, to fill in while it is checked.
    pub fn info_mut(&mut self) -> &mut SessionInfo {
        Arc::make_mut(&mut self.info)
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
        if !self.quiet {
            self.gateway.session_refused(&self.info, refused);
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
                let counted = self.gateway.session_started(&self.info);
                let summary = Summary::unstarted(CloseReason::ClientGone(
                    "the client went away while podterm connected to the cluster".into(),
                ));
                self.gateway.session_ended(&self.info, counted, &summary);
            }
        }
    }
}

/// Runs the exec WebSocket request with header `fields` for the attempt in `guard` (caller
/// and request known): the client's handshake is checked, then admission (policy, limits,
/// `deny_root`), then the recording is created — and only then is the exec opened on the
/// cluster as the caller. Answers 101 with the subprotocol the cluster picked; the session
/// then runs where `side` says.
pub async fn exec(
    guard: &mut AttemptGuard,
    fields: Fields<'_>,
    cluster: Arc<Cluster>,
    side: ClientSide<'_>,
) -> Result<Response<http_body_util::Empty<bytes::Bytes>>, ExecError> {
    let gateway = guard.gateway.clone();
    let span = session_span(&guard.info);
    let offer = Offer::of(fields, !gateway.fleet.grace.is_zero());
    let protocols = &offer.upstream;
    if protocols.is_empty() {
        return Err(ExecError::NoSubprotocol);
    }
    // The client's handshake is checked before anything reaches the cluster.
    let accept = upgrade_accept(fields).map_err(ExecError::Handshake)?;
    let place = admit(&gateway, &cluster, guard.info_mut(), protocols)
        .instrument(span.clone())
        .await?;
    let mut recording = start_recording(&gateway, guard)?;
    let upstream = connect(guard, &cluster, &offer, &mut recording)
        .instrument(span.clone())
        .await?;
    guard.phase = Phase::Reported;
    let answer = offer.answer(upstream.protocol);
    let switching = Switching {
        accept,
        protocol: answer.protocol,
    };
    // Counted and reported before the 101 goes out: a client that reads the metrics or
    // starts a drain right after the upgrade sees this session.
    let run = Run {
        live: gateway.drain.session(),
        counted: span.in_scope(|| gateway.session_started(&guard.info)),
        info: guard.info.clone(),
        gateway,
        upstream,
        recording: recording.map(Box::new),
        place,
        answer,
    };
    match side {
        ClientSide::Hyper(client_upgrade) => {
            // Only the connection is kept: the WebSocket wrapper (and its read buffer) goes.
            let client = async move {
                client_upgrade
                    .await
                    .map(|io| ClientIo::Upgraded(hyper_util::rt::TokioIo::new(io)))
                    .map_err(|e| e.to_string())
            };
            tokio::spawn(run.relay(client).instrument(span));
            Ok(switching.response())
        }
        ClientSide::Direct(slot) => {
            // The caller writes the head from `switching` itself ([`Accepted::head`]); the
            // response only says that the upgrade was accepted.
            *slot = Some(Accepted {
                run,
                span,
                switching,
            });
            let mut response = Response::new(http_body_util::Empty::new());
            *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
            Ok(response)
        }
    }
}

/// The `Sec-WebSocket-Accept` for the client's upgrade with header `fields`, after
/// fastwebsockets' `upgrade::upgrade`'s checks (the same errors; a test holds the 101 made
/// from it to fastwebsockets' own).
fn upgrade_accept(
    fields: Fields<'_>,
) -> Result<[u8; protocol::ACCEPT_LEN], fastwebsockets::WebSocketError> {
    use fastwebsockets::WebSocketError;
    let key = fields
        .get(&header::SEC_WEBSOCKET_KEY)
        .ok_or(WebSocketError::MissingSecWebSocketKey)?;
    if fields.get(&header::SEC_WEBSOCKET_VERSION) != Some(b"13") {
        return Err(WebSocketError::InvalidSecWebsocketVersion);
    }
    Ok(protocol::accept_for(key))
}

/// The 101 a session's client gets: the accept of its key and the subprotocol it gets.
#[derive(Debug, Clone, Copy)]
struct Switching {
    accept: [u8; protocol::ACCEPT_LEN],
    protocol: &'static str,
}

impl Switching {
    /// As a response, for hyper to write: fastwebsockets' headers in its order (without its
    /// response builder, which parsed `Sec-WebSocket-Accept`'s name from text and copied its
    /// value), then the subprotocol.
    fn response(&self) -> Response<http_body_util::Empty<bytes::Bytes>> {
        let mut response = Response::new(http_body_util::Empty::new());
        *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.reserve(4);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_bytes(&self.accept).expect("base64 is a header value"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(self.protocol),
        );
        response
    }

    /// The same response's head, as the server writes it for a session it answers itself
    /// (`crate::server::direct::response_head` of [`Switching::response`]; a test holds the
    /// two together), without a header map between.
    fn head(&self) -> Vec<u8> {
        const START: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\n\
              upgrade: websocket\r\nsec-websocket-accept: ";
        const PROTOCOL: &[u8] = b"\r\nsec-websocket-protocol: ";
        const END: &[u8] = b"\r\n\r\n";
        // Sized whole: a guess of 160 bytes was grown (a second allocation) for every session.
        let len = START.len() + self.accept.len() + PROTOCOL.len() + self.protocol.len();
        let mut head = Vec::with_capacity(len + END.len());
        head.extend_from_slice(START);
        head.extend_from_slice(&self.accept);
        head.extend_from_slice(PROTOCOL);
        head.extend_from_slice(self.protocol.as_bytes());
        head.extend_from_slice(END);
        head
    }
}

/// Where an accepted session's client connection comes from, and where the session runs.
pub enum ClientSide<'a> {
    /// hyper served the request: the session gets a task of its own, which waits for hyper's
    /// upgrade (after hyper wrote the 101).
    Hyper(hyper::upgrade::OnUpgrade),
    /// The server answered the request itself (`crate::server`'s direct exec): the session is
    /// left here, and the connection's task writes the 101 and then runs it
    /// ([`Accepted::run`]) on the connection.
    Direct(&'a mut Option<Accepted>),
}

/// A session the cluster accepted, whose 101 has still to be written by the caller.
pub struct Accepted {
    run: Run,
    span: tracing::Span,
    switching: Switching,
}

impl Accepted {
    /// The head of the 101 to write to the client before the session runs.
    pub fn head(&self) -> Vec<u8> {
        self.switching.head()
    }

    /// Relays the session on `client` (the connection the 101 went out on, or why writing
    /// the 101 failed) until it ends, then reports it.
    pub fn run(self, client: Result<ClientIo, String>) -> impl Future<Output = ()> + Send {
        self.run
            .relay(std::future::ready(client))
            .instrument(self.span)
    }
}

/// The span every line of a session is logged in, at debug level: then the lines of hyper,
/// the relay and the session's own debug lines say whose session they come from.
///
/// At info (the default) it is disabled and costs nothing. Enabled, a span is about 580 bytes
/// for the session's whole life (the registry's slot, its extensions' map, the fields
/// formatted as JSON), 7 % of an idle session, and an enter and exit at each poll of its
/// task; so lines at info and above that concern a session carry its id themselves.
fn session_span(info: &SessionInfo) -> tracing::Span {
    tracing::debug_span!(
        "session",
        id = %info.id,
        user = info.user().unwrap_or_default(),
        cluster = %info.cluster,
        namespace = %info.namespace,
        pod = %info.pod,
        container = info.container().unwrap_or_default(),
    )
}

/// What the client offered: the subprotocols to offer the cluster (v5, v4, in podterm's
/// order) and whether it also speaks podterm's flow control over them.
struct Offer {
    upstream: Protocols,
    /// The flow variants (crate::protocol::flow) the client offered.
    flow: Protocols,
    /// The resume variants (crate::protocol::resume) the client offered, when resume is on.
    resume: Protocols,
}

/// Subprotocols, at most one for each of [`protocol::SUBPROTOCOLS`], in its order: a list
/// made per session without an allocation.
#[derive(Debug, Clone, Copy)]
struct Protocols {
    list: [&'static str; protocol::SUBPROTOCOLS.len()],
    len: usize,
}

impl FromIterator<&'static str> for Protocols {
    /// Every list is `SUBPROTOCOLS` filtered or mapped one to one, so it fits.
    fn from_iter<I: IntoIterator<Item = &'static str>>(iter: I) -> Protocols {
        let mut protocols = Protocols {
            list: [""; protocol::SUBPROTOCOLS.len()],
            len: 0,
        };
        for (slot, p) in protocols.list.iter_mut().zip(iter) {
            *slot = p;
            protocols.len += 1;
        }
        protocols
    }
}

impl std::ops::Deref for Protocols {
    type Target = [&'static str];

    fn deref(&self) -> &[&'static str] {
        &self.list[..self.len]
    }
}

/// What the client gets back: the subprotocol, and whether it brings flow control and resume.
#[derive(Debug, Clone, Copy)]
struct Answer {
    protocol: &'static str,
    flow: bool,
    resume: bool,
}

impl Offer {
    fn of(fields: Fields<'_>, resume_on: bool) -> Offer {
        // Every name podterm could answer (each protocol and its flow and resume variants),
        // and which of them the client offered: its `Sec-WebSocket-Protocol` lines read once,
        // as one list.
        let names = protocol::SUBPROTOCOLS
            .map(|p| [Some(p), flow::flow_variant(p), resume::resume_variant(p)]);
        let names = names.as_flattened();
        let mut named = [false; 3 * protocol::SUBPROTOCOLS.len()];
        for name in fields
            .all(&header::SEC_WEBSOCKET_PROTOCOL)
            .filter_map(fields::text)
            .flat_map(|v| v.split(','))
        {
            let name = Some(name.trim());
            for (ours, named) in names.iter().zip(&mut named) {
                *named |= *ours == name;
            }
        }
        let offered = |p: &str| {
            let p = Some(p);
            names
                .iter()
                .zip(&named)
                .any(|(ours, &named)| named && *ours == p)
        };
        let resume: Protocols = protocol::SUBPROTOCOLS
            .into_iter()
            .filter_map(resume::resume_variant)
            .filter(|r| resume_on && offered(r))
            .collect();
        // Resume includes flow control: offering it offers the flow variant too.
        let flow: Protocols = protocol::SUBPROTOCOLS
            .into_iter()
            .filter_map(|p| {
                let f = flow::flow_variant(p)?;
                let by_resume = resume::resume_variant(p).is_some_and(|r| resume.contains(&r));
                (offered(f) || by_resume).then_some(f)
            })
            .collect();
        let upstream = protocol::SUBPROTOCOLS
            .into_iter()
            .filter(|p| offered(p) || flow::flow_variant(p).is_some_and(|f| flow.contains(&f)))
            .collect();
        Offer {
            upstream,
            flow,
            resume,
        }
    }

    /// The subprotocol the client gets once the cluster picked `upstream`: the resume
    /// variant if offered, else the flow variant, else the plain one.
    fn answer(&self, upstream: &'static str) -> Answer {
        let plain = Answer {
            protocol: upstream,
            flow: false,
            resume: false,
        };
        if let Some(r) = resume::resume_variant(upstream).filter(|r| self.resume.contains(r)) {
            return Answer {
                protocol: r,
                flow: true,
                resume: true,
            };
        }
        match flow::flow_variant(upstream) {
            Some(f) if self.flow.contains(&f) => Answer {
                protocol: f,
                flow: true,
                ..plain
            },
            _ => plain,
        }
    }
}

/// Creates the session's recording, if recordings are on; an error only when required.
fn start_recording(
    gateway: &Gateway,
    guard: &mut AttemptGuard,
) -> Result<Option<Recording>, ExecError> {
    let (Some(config), Some(audit)) = (&gateway.hooks.recording, &gateway.hooks.audit) else {
        return Ok(None);
    };
    let path = Recording::path_for(&config.dir, &guard.info.id);
    guard.info_mut().recording = Some(path);
    let recording = Recording::create(config, &guard.info, audit)?;
    if recording.is_none() {
        guard.info_mut().recording = None;
    }
    Ok(recording)
}

/// Opens the exec on the cluster as the caller. From here on the command may run, so the
/// guard reports a client that leaves as a session that started and ended; if the cluster
/// refuses, the unused recording file is removed.
async fn connect(
    guard: &mut AttemptGuard,
    cluster: &Cluster,
    offer: &Offer,
    recording: &mut Option<Recording>,
) -> Result<ExecStream, ExecError> {
    let (gateway, info) = (guard.gateway.clone(), guard.info.clone());
    let (identity, target) = info
        .caller_and_target()
        .expect("routes parse the caller and the request first");
    guard.phase = Phase::Connecting;
    let connecting = tokio::time::Instant::now();
    let receive_buffer = (!offer.flow.is_empty()).then_some(flow::UPSTREAM_RECEIVE_BUFFER);
    match cluster
        .exec_with(
            &target.upstream_path(),
            &offer.upstream,
            gateway.act_as(identity),
            receive_buffer,
        )
        .await
    {
        Ok(upstream) => {
            gateway.metrics.upstream_connected(connecting.elapsed());
            tracing::debug!(protocol = upstream.protocol, "cluster accepted the exec");
            Ok(upstream)
        }
        Err(e) => {
            guard.phase = Phase::Checking;
            if let (Some(recording), Some(path)) = (recording.take(), &info.recording) {
                recording.discard(path);
            }
            Err(e.into())
        }
    }
}

/// A session whose exec the cluster accepted: relayed until it ends, then reported.
struct Run {
    gateway: Arc<Gateway>,
    info: Arc<SessionInfo>,
    upstream: ExecStream,
    /// Boxed: most sessions have none, and every session's task keeps room for this field.
    recording: Option<Box<Recording>>,
    place: LimitGuard,
    live: crate::drain::SessionGuard,
    counted: SessionMetrics,
    /// The subprotocol the client got: flow control, resume.
    answer: Answer,
}

impl Run {
    /// The session's task. `self` is taken apart before the task's body starts, and the body
    /// uses the parts where they were captured: an `async fn` keeps its arguments for its
    /// whole life beside the locals moved out of them, which held every field twice in each
    /// idle session (264 bytes).
    fn relay(
        self,
        client: impl Future<Output = Result<ClientIo, String>> + Send,
    ) -> impl Future<Output = ()> + Send {
        let Run {
            gateway,
            info,
            upstream,
            recording,
            place,
            live,
            counted,
            answer,
        } = self;
        async move {
            // Boxed, as the recording: the session's task (its largest state is the relay's)
            // then fits mimalloc's 3 KiB class instead of 3.5 KiB.
            let mut relay_config = Box::new(RelayConfig::new(
                &gateway.config,
                upstream.protocol == protocol::V5,
                gateway.metrics.relay_bytes(),
            ));
            relay_config.recording = recording.as_deref().map(Recording::tap);
            relay_config.flow = answer.flow;
            relay_config.copy = info
                .copy
                .as_deref()
                .map(|check| Box::new(relay::CopyRelay::new(check.clone())));
            let kept = answer.resume.then(Arc::<Kept>::default);
            let (session, attachments) = gateway.fleet.register(
                info.clone(),
                upstream.protocol,
                relay_config.session_bytes.clone(),
                relay_config.ended_by.clone(),
                kept.clone(),
            );
            let summary = match client.await {
                Ok(client) => {
                    // The deadline is made inside the block: captured, it would be stored
                    // twice for the session's life, once where select! moves it (176 bytes).
                    let drain = &gateway.drain;
                    let shutdown = async {
                        tokio::select! {
                            () = drain.session_deadline() => {}
                            _ = session.ended() => {}
                        }
                    };
                    match (kept, attachments) {
                        (Some(kept), Some(attachments)) => {
                            let link = Link {
                                gateway: gateway.clone(),
                                session: session.clone(),
                                proof: gateway
                                    .fleet
                                    .proof(&info.id, info.user().unwrap_or_default()),
                            };
                            let grace = gateway.fleet.grace;
                            let detachable = relay::Detachable {
                                kept,
                                attachments,
                                events: &link,
                                grace,
                            };
                            relay::relay_detachable(
                                client,
                                upstream.io,
                                &relay_config,
                                detachable,
                                shutdown,
                            )
                            .await
                        }
                        _ => {
                            relay::relay_halves(
                                client.halves(),
                                upstream.io.halves(),
                                &relay_config,
                                shutdown,
                            )
                            .await
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        session = %info.id,
                        error = %e,
                        "client upgrade failed; closing the exec"
                    );
                    Summary::unstarted(CloseReason::ClientGone(format!("upgrade failed: {e}")))
                }
            };
            gateway.fleet.remove(&info.id);
            // Taken only now: a copy kept beside the relay would have been stored for the
            // session's whole life.
            let copy = relay_config.copy.take();
            drop(relay_config);
            if let Some(copy) = copy {
                report_copy(&gateway, &info, &copy, &summary);
            }
            if let Some(recording) = recording {
                // Failures were audited as they happened; the session is over either way.
                let _ = recording.finish().await;
            }
            gateway.session_ended(&info, counted, &summary);
            drop((live, place));
        }
    }
}

/// The audit line of a `kubectl cp` session (`file.read`, `file.write`): what it copied,
/// from the checked stream, beside the session's own lines.
fn report_copy(gateway: &Gateway, info: &SessionInfo, copy: &relay::CopyRelay, summary: &Summary) {
    use crate::policy::toolkit::Copy;
    let Some(identity) = info.identity.as_ref() else {
        return;
    };
    let (event, key, path) = match &copy.check.copy {
        Copy::Read { path } => ("file.read", "path", path),
        Copy::Write { dir } => ("file.write", "dir", dir),
        Copy::Probe { .. } => return,
    };
    let outcome = copy
        .outcome
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut action = crate::events::Action::new(
        event,
        identity,
        info.peer,
        (&info.cluster, &info.namespace, &info.pod),
    );
    action.start = info.started;
    action.container = info.container().map(str::to_string);
    action.rule.clone_from(&info.rule);
    action.detail = serde_json::json!({
        key: path,
        "direction": if event == "file.read" { "read" } else { "write" },
        "via": "kubectl cp",
        "session": info.id,
        "bytes": outcome.bytes,
        "sha256": outcome.sha256,
        "entries": outcome.entries,
    });
    // A reader (kubectl) may close as soon as the archive ended, before the exit status came:
    // the whole archive having passed is what makes a read whole.
    match (&outcome.refused, outcome.complete, summary.exit_code) {
        (Some(why), _, _) => {
            action.outcome = "denied";
            action.reason = Some(why.clone());
        }
        (None, true, Some(0) | None) => {}
        (None, _, _) => {
            action.outcome = "failed";
            action.reason = Some(summary.close.text().into_owned());
        }
    }
    gateway.action(&action);
}

/// How a session that outlives its connection reports its attachments: control messages for
/// the page, audit lines, the session list's "attached".
struct Link {
    gateway: Arc<Gateway>,
    session: Arc<Live>,
    proof: String,
}

impl AttachEvents for Link {
    fn control(&self, input: u64, output: u64) -> Vec<u8> {
        let fleet = &self.gateway.fleet;
        resume::Control {
            session: &self.session.info.id,
            proof: Some(&self.proof),
            grace: fleet.grace.as_secs(),
            input,
            output,
            watchers: &self.session.watchers(),
            replica: &fleet.replica,
            watching: false,
        }
        .frame()
    }

    fn detached(&self, why: &str) {
        self.session.set_attached(false);
        self.gateway
            .session_event(&self.session.info, SessionEvent::Detached, why);
    }

    fn resumed(&self, output: u64) {
        self.session.set_attached(true);
        self.gateway.session_event(
            &self.session.info,
            SessionEvent::Resumed,
            &format!("resumed at output byte {output}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;
    use hyper::Request;

    fn with_level(level: Level, f: impl FnOnce()) {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(level)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
    }

    #[test]
    fn the_offer_reads_every_protocol_line_as_one_list_in_podterms_order() {
        use protocol::flow::{FLOW_V4, FLOW_V5};
        use protocol::resume::{RESUME_V4, RESUME_V5};
        use protocol::{V4, V5};
        let offer = |lines: &[&str], resume_on: bool| {
            let mut req = Request::get("/").body(()).unwrap();
            for line in lines {
                req.headers_mut().append(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_str(line).unwrap(),
                );
            }
            let offer = Offer::of(req.headers().into(), resume_on);
            (
                offer.upstream.to_vec(),
                offer.flow.to_vec(),
                offer.resume.to_vec(),
            )
        };
        let none: Vec<&str> = vec![];
        // kubectl: v5 and v4, in its order; podterm offers them in its own.
        let v4_v5 = format!("{V4}, {V5}");
        assert_eq!(
            offer(&[&v4_v5], true),
            (vec![V5, V4], none.clone(), none.clone())
        );
        // Lines are joined, names trimmed, unknown ones left out.
        let spaced = format!(" {V4} ,base64.channel.k8s.io");
        assert_eq!(
            offer(&[&spaced, V5], true),
            (vec![V5, V4], none.clone(), none.clone())
        );
        // A flow variant offers its base protocol to the cluster.
        assert_eq!(
            offer(&[FLOW_V4], true),
            (vec![V4], vec![FLOW_V4], none.clone())
        );
        // A resume variant brings its flow variant, and only when resume is on.
        assert_eq!(
            offer(&[RESUME_V5], true),
            (vec![V5], vec![FLOW_V5], vec![RESUME_V5])
        );
        assert_eq!(
            offer(&[RESUME_V5], false),
            (none.clone(), none.clone(), none.clone())
        );
        let page = format!("{RESUME_V5}, {RESUME_V4}, {FLOW_V5}, {FLOW_V4}, {V5}, {V4}");
        assert_eq!(
            offer(&[&page], true),
            (
                vec![V5, V4],
                vec![FLOW_V5, FLOW_V4],
                vec![RESUME_V5, RESUME_V4]
            )
        );
        // Nothing podterm speaks.
        assert_eq!(
            offer(&["x", "v3.channel.k8s.io"], true),
            (none.clone(), none.clone(), none)
        );
    }

    #[test]
    fn the_101_is_the_one_fastwebsockets_answers() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let cases: [&[(&str, &str)]; 6] = [
            &[("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")],
            &[("sec-websocket-key", "x"), ("sec-websocket-version", "13")],
            &[("Sec-WebSocket-Version", "13")],
            &[("Sec-WebSocket-Key", key)],
            &[("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "8")],
            &[("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", " 13")],
        ];
        let seen = |res: Result<Response<_>, fastwebsockets::WebSocketError>| match res {
            Ok(res) => Ok((
                res.status(),
                res.headers()
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
                    .collect::<Vec<_>>(),
            )),
            Err(e) => Err(format!("{e:?}")),
        };
        for headers in cases {
            let mut req = Request::get("/").body(()).unwrap();
            for (name, value) in headers {
                req.headers_mut().append(
                    header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_static(value),
                );
            }
            // Ours names the subprotocol after fastwebsockets' headers, which name none.
            let ours = seen(upgrade_accept(req.headers().into()).map(|accept| {
                let mut res = Switching {
                    accept,
                    protocol: protocol::V5,
                }
                .response();
                let named = res.headers_mut().remove(header::SEC_WEBSOCKET_PROTOCOL);
                assert_eq!(named.unwrap(), protocol::V5);
                res
            }));
            let theirs = seen(fastwebsockets::upgrade::upgrade(&mut req).map(|(res, _)| res));
            assert_eq!(ours, theirs, "{headers:?}");
        }
        // RFC 6455 §1.3's own example.
        let req = Request::get("/")
            .header("sec-websocket-key", key)
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        let accept = upgrade_accept(req.headers().into()).unwrap();
        assert_eq!(&accept, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn the_101_written_directly_is_the_one_hyper_gets() {
        for protocol in [
            protocol::V5,
            protocol::V4,
            protocol::flow::FLOW_V5,
            protocol::resume::RESUME_V4,
        ] {
            let switching = Switching {
                accept: *b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                protocol,
            };
            assert_eq!(
                String::from_utf8(switching.head()).unwrap(),
                String::from_utf8(crate::server::direct::response_head(
                    &switching.response(),
                    None
                ))
                .unwrap()
            );
        }
    }

    #[test]
    fn the_session_span_is_made_only_at_debug() {
        let info = SessionInfo::new("127.0.0.1:5555".parse().unwrap(), "dev", "default", "web-1");
        with_level(Level::INFO, || assert!(session_span(&info).is_disabled()));
        with_level(Level::DEBUG, || {
            let span = session_span(&info);
            assert!(!span.is_disabled());
            assert_eq!(span.metadata().map(|m| *m.level()), Some(Level::DEBUG));
            for field in ["id", "user", "cluster", "namespace", "pod", "container"] {
                assert!(span.field(field).is_some(), "no {field}");
            }
        });
    }
}
