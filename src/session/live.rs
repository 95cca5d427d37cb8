//! Live sessions across the fleet (crate::fleet): resume a page session, watch one read-only,
//! list them, end one — here when this replica holds the session, else relayed to the replica
//! that does (named in the resume proof, or one of `PODTERM_PEERS`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::WebSocket;
use fastwebsockets::upgrade::UpgradeFut;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::events::SessionEvent;
use crate::fleet::{Entry, Live, ProofError};
use crate::gateway::Gateway;
use crate::identity::Identity;
use crate::protocol::{Status, resume};
use crate::relay::{self, Attach};

/// How long reaching another replica may take.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request about a live session got no answer.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "session {0} is not running any more (it ended, or its resume grace ran out): open a new session"
    )]
    Gone(String),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(
        "the replica that held this session ({0}) cannot be reached (it stopped or was drained): the session is lost, open a new one"
    )]
    OwnerGone(String),
    #[error("{0} is not a podterm replica of this fleet")]
    UnknownReplica(String),
    #[error(
        "you may not {0} session {1}: it is another user's, and no policy rule lets you observe it"
    )]
    NotYours(&'static str, String),
    #[error("the policy no longer lets you use this session: {0}")]
    Policy(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("bad WebSocket upgrade: {0}")]
    Handshake(#[source] fastwebsockets::WebSocketError),
    /// Another replica answered with this status.
    #[error("{}", .0.message)]
    Peer(Box<Status>),
}

impl LiveError {
    /// The HTTP code and the refusal's metric label.
    pub fn code(&self) -> (u16, &'static str) {
        match self {
            LiveError::Gone(_) => (404, "session_gone"),
            LiveError::Proof(ProofError::Malformed) => (400, "bad_proof"),
            LiveError::Proof(ProofError::Invalid) => (403, "bad_proof"),
            LiveError::Proof(_) => (403, "not_a_peer"),
            LiveError::OwnerGone(_) => (502, "owner_gone"),
            LiveError::UnknownReplica(_) => (400, "unknown_replica"),
            LiveError::NotYours(..) => (403, "not_yours"),
            LiveError::Policy(_) => (403, "policy"),
            LiveError::BadRequest(_) => (400, "bad_request"),
            LiveError::Handshake(_) => (400, "bad_upgrade"),
            LiveError::Peer(s) => (s.code, "peer_refused"),
        }
    }
}

type Answer = Result<Response<Empty<Bytes>>, LiveError>;

/// The query's value of `key`, if present.
fn query_value(req: &Request<Incoming>, key: &str) -> Option<String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The replica `?replica=` names when a request about a session must go there: `None` when it
/// is this one (or the request came from a peer), an error when it is no replica of the fleet.
async fn elsewhere(
    gateway: &Gateway,
    req: &Request<Incoming>,
    via_peer: bool,
) -> Result<Option<String>, LiveError> {
    let replica = query_value(req, "replica").unwrap_or_default();
    if via_peer || gateway.fleet.is_self(&replica) {
        return Ok(None);
    }
    if !gateway.fleet.is_peer(&replica).await {
        return Err(LiveError::UnknownReplica(replica));
    }
    Ok(Some(replica))
}

/// Whether `identity` may see, watch and end `live`: their own, or a rule lets them observe.
fn may_observe(gateway: &Gateway, identity: &Identity, live: &Live) -> bool {
    live.info.user() == Some(identity.user.as_str())
        || gateway
            .hooks
            .policy
            .grant(identity, &live.info.cluster, &live.info.namespace)
            .is_ok_and(|g| g.observe)
}

/// The session's target is checked against the policy again, as the caller now.
fn policy_still_allows(
    gateway: &Gateway,
    identity: &Identity,
    live: &Live,
) -> Result<(), LiveError> {
    let Some((_, target)) = live.info.caller_and_target() else {
        return Err(LiveError::Gone(live.info.id.clone()));
    };
    let policy = &gateway.hooks.policy;
    policy
        .grant(identity, &live.info.cluster, &live.info.namespace)
        .and_then(|grant| grant.judge_target(target))
        .map(|_| ())
        .map_err(|d| LiveError::Policy(d.to_string()))
}

/// The resume subprotocol the client offered for `base` (the session's own).
fn offered_resume(req: &Request<Incoming>, base: &str) -> Result<&'static str, LiveError> {
    let wanted = resume::resume_variant(base).unwrap_or(resume::RESUME_V5);
    let offered = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == wanted);
    if offered {
        Ok(wanted)
    } else {
        Err(LiveError::BadRequest(format!(
            "offer the subprotocol {wanted} to resume or watch this session"
        )))
    }
}

/// `GET /api/sessions/{id}/resume?proof=P&output=N` (WebSocket): the caller's own dropped
/// page session, continued from output offset N, here or on the replica that holds it.
pub async fn resume(
    gateway: &Arc<Gateway>,
    mut req: Request<Incoming>,
    id: &str,
    identity: &Identity,
    via_peer: bool,
) -> Answer {
    let output = match query_value(&req, "output").map(|o| o.parse::<u64>()) {
        Some(Ok(n)) => n,
        None => 0,
        Some(Err(_)) => {
            return Err(LiveError::BadRequest(
                "`output` must be a byte count".into(),
            ));
        }
    };
    let live = match resume_at(gateway, &req, id, identity, via_peer)? {
        ResumeAt::Peer { owner, path } => {
            return forward_upgrade(gateway, req, &owner, &path, identity).await;
        }
        ResumeAt::Here(live) => live,
    };
    let protocol = offered_resume(&req, live.protocol)?;
    let (response, upgrade) = upgrade(&mut req, Some(HeaderValue::from_static(protocol)))?;
    tokio::spawn(async move {
        match upgrade.await.map(WebSocket::into_inner) {
            Ok(io) => {
                let io = crate::fleet::ClientIo::Upgraded(io);
                if live.resume(Attach { io, output }).is_err() {
                    tracing::info!(session = %live.info.id, "a resume came as the session ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "a resume's upgrade failed"),
        }
    });
    Ok(response)
}

/// A resume asked without an upgrade (the page, learning why its resume failed): `Ok` while
/// the session can be resumed, else why not — asked of the replica that holds it.
pub async fn check_resume(
    gateway: &Gateway,
    req: &Request<Incoming>,
    id: &str,
    identity: &Identity,
    via_peer: bool,
) -> Result<(), LiveError> {
    let ResumeAt::Peer { owner, path } = resume_at(gateway, req, id, identity, via_peer)? else {
        return Ok(());
    };
    let (code, body) = peer_request(gateway, &owner, Method::GET, &path, identity).await?;
    match serde_json::from_slice::<Status>(&body) {
        Ok(s) if code != 400 => Err(LiveError::Peer(Box::new(s))),
        _ => Ok(()),
    }
}

/// Where a resume of session `id` goes.
enum ResumeAt {
    /// To the replica the proof names (a client's request that reached another replica).
    Peer { owner: String, path: String },
    /// The caller's own page session, here, which the policy still allows.
    Here(Arc<Live>),
}

/// Checks the resume proof of the request for session `id` and the caller, and finds where
/// the session is.
fn resume_at(
    gateway: &Gateway,
    req: &Request<Incoming>,
    id: &str,
    identity: &Identity,
    via_peer: bool,
) -> Result<ResumeAt, LiveError> {
    let proof = query_value(req, "proof").ok_or(ProofError::Malformed)?;
    let owner = gateway.fleet.verify_proof(&proof, id, &identity.user)?;
    if !gateway.fleet.is_self(&owner) && !via_peer {
        let path = format!(
            "/peer/sessions/{id}/resume?{}",
            req.uri().query().unwrap_or("")
        );
        return Ok(ResumeAt::Peer { owner, path });
    }
    let live = gateway
        .fleet
        .get(id)
        .filter(|l| l.kept.is_some() && l.info.user() == Some(identity.user.as_str()))
        .ok_or_else(|| LiveError::Gone(id.to_string()))?;
    policy_still_allows(gateway, identity, &live)?;
    Ok(ResumeAt::Here(live))
}

/// Answers the client's WebSocket upgrade with `protocol`; the upgrade completes once the
/// response went out.
fn upgrade(
    req: &mut Request<Incoming>,
    protocol: Option<HeaderValue>,
) -> Result<(Response<Empty<Bytes>>, UpgradeFut), LiveError> {
    let (mut response, upgrade) =
        fastwebsockets::upgrade::upgrade(req).map_err(LiveError::Handshake)?;
    if let Some(protocol) = protocol {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    Ok((response, upgrade))
}

/// `GET /api/sessions/{id}/watch?replica=R` (WebSocket): another session's output, read-only,
/// for its owner or a user a policy rule lets observe it.
pub async fn watch(
    gateway: &Arc<Gateway>,
    mut req: Request<Incoming>,
    id: &str,
    identity: &Identity,
    via_peer: bool,
) -> Answer {
    if let Some(replica) = elsewhere(gateway, &req, via_peer).await? {
        let path = format!("/peer/sessions/{id}/watch");
        return forward_upgrade(gateway, req, &replica, &path, identity).await;
    }
    let live = gateway
        .fleet
        .get(id)
        .ok_or_else(|| LiveError::Gone(id.to_string()))?;
    if !may_observe(gateway, identity, &live) {
        return Err(LiveError::NotYours("watch", id.to_string()));
    }
    let Some(kept) = live.kept.clone() else {
        return Err(LiveError::BadRequest(format!(
            "session {id} is not a page session (kubectl's cannot be watched)"
        )));
    };
    let protocol = offered_resume(&req, live.protocol)?;
    let (response, upgrade) = upgrade(&mut req, Some(HeaderValue::from_static(protocol)))?;
    let (gateway, watcher) = (gateway.clone(), identity.user.clone());
    tokio::spawn(async move {
        let Ok(io) = upgrade.await.map(WebSocket::into_inner) else {
            return;
        };
        live.watch_started(&watcher);
        gateway.session_event(
            &live.info,
            SessionEvent::Watched,
            &format!("watcher {watcher}"),
        );
        let first = resume::Control {
            session: &live.info.id,
            proof: None,
            grace: gateway.fleet.grace.as_secs(),
            input: 0,
            output: kept.output(),
            watchers: &live.watchers(),
            replica: &gateway.fleet.replica,
            watching: true,
        }
        .frame();
        tokio::select! {
            () = relay::watch(io, &kept, first) => {}
            () = gateway.drain.session_deadline() => {}
        }
        live.watch_ended(&watcher);
        gateway.session_event(
            &live.info,
            SessionEvent::Unwatched,
            &format!("watcher {watcher}"),
        );
    });
    Ok(response)
}

/// This replica's sessions that `identity` may see.
pub fn local_entries(gateway: &Gateway, identity: &Identity) -> Vec<Entry> {
    gateway
        .fleet
        .local()
        .iter()
        .filter(|l| may_observe(gateway, identity, l))
        .map(|l| l.entry(&gateway.fleet.replica))
        .collect()
}

/// `GET /api/sessions`: every replica's sessions that the caller may see, and the replicas
/// that did not answer.
pub async fn list(gateway: &Arc<Gateway>, identity: &Identity) -> serde_json::Value {
    let mut items = local_entries(gateway, identity);
    let mut unreachable = Vec::new();
    let asks: Vec<_> = gateway
        .fleet
        .peer_addresses()
        .await
        .into_iter()
        .map(|peer| {
            let (gateway, identity) = (gateway.clone(), identity.clone());
            let to = peer.clone();
            let ask = tokio::spawn(async move {
                peer_request(&gateway, &to, Method::GET, "/peer/sessions", &identity).await
            });
            (peer, ask)
        })
        .collect();
    for (peer, ask) in asks {
        match ask.await.ok().and_then(Result::ok) {
            Some((200, body)) => match serde_json::from_slice::<Vec<Entry>>(&body) {
                Ok(entries) => items.extend(entries),
                Err(_) => unreachable.push(peer),
            },
            _ => unreachable.push(peer),
        }
    }
    items.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
    serde_json::json!({ "items": items, "unreachable": unreachable })
}

/// `DELETE /api/sessions/{id}?replica=R`: ends a session (the caller's own, or one a rule
/// lets them observe), audited.
pub async fn end(
    gateway: &Arc<Gateway>,
    req: &Request<Incoming>,
    id: &str,
    identity: &Identity,
    via_peer: bool,
) -> Result<Status, LiveError> {
    if let Some(replica) = elsewhere(gateway, req, via_peer).await? {
        let path = format!("/peer/sessions/{id}");
        let (code, body) = peer_request(gateway, &replica, Method::DELETE, &path, identity).await?;
        let status: Status = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Status::failure(502, "the replica gave no answer"));
        return if code == 200 {
            Ok(status)
        } else {
            Err(LiveError::Peer(Box::new(status)))
        };
    }
    let live = gateway
        .fleet
        .get(id)
        .ok_or_else(|| LiveError::Gone(id.to_string()))?;
    if !may_observe(gateway, identity, &live) {
        return Err(LiveError::NotYours("end", id.to_string()));
    }
    gateway.session_event(
        &live.info,
        SessionEvent::Killed,
        &format!("ended by {}", identity.user),
    );
    live.end(&identity.user);
    Ok(Status::success(format!("session {id} ended")))
}

/// Opens an HTTP/1.1 connection to the peer address `peer`.
async fn peer_connection(
    peer: &str,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, LiveError> {
    let gone = || LiveError::OwnerGone(peer.to_string());
    let stream = tokio::time::timeout(PEER_TIMEOUT, tokio::net::TcpStream::connect(peer))
        .await
        .map_err(|_| gone())?
        .map_err(|_| gone())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| gone())?;
    tokio::spawn(conn.with_upgrades());
    Ok(sender)
}

fn peer_request_to(
    gateway: &Gateway,
    peer: &str,
    method: Method,
    path: &str,
    identity: &Identity,
) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.method_mut() = method.clone();
    *req.uri_mut() = path.parse().unwrap_or_default();
    let headers = req.headers_mut();
    headers.extend(gateway.fleet.peer_headers(method.as_str(), path, identity));
    if let Ok(host) = HeaderValue::from_str(peer) {
        headers.insert(header::HOST, host);
    }
    req
}

/// A plain request to another replica: its status code and body.
async fn peer_request(
    gateway: &Gateway,
    peer: &str,
    method: Method,
    path: &str,
    identity: &Identity,
) -> Result<(u16, Bytes), LiveError> {
    let ask = async {
        let mut sender = peer_connection(peer).await?;
        let req = peer_request_to(gateway, peer, method, path, identity);
        let res = sender
            .send_request(req)
            .await
            .map_err(|_| LiveError::OwnerGone(peer.to_string()))?;
        let code = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|_| LiveError::OwnerGone(peer.to_string()))?
            .to_bytes();
        Ok((code, body))
    };
    tokio::time::timeout(PEER_TIMEOUT, ask)
        .await
        .map_err(|_| LiveError::OwnerGone(peer.to_string()))?
}

/// Relays a WebSocket request to the replica `peer` that holds the session: the upgrade goes
/// there first (so its refusal reaches the client as it is), then the client's connection is
/// upgraded and the two are joined byte for byte (both speak the same frames; the client's
/// stay masked, as a server expects).
async fn forward_upgrade(
    gateway: &Gateway,
    mut req: Request<Incoming>,
    peer: &str,
    path: &str,
    identity: &Identity,
) -> Answer {
    let mut sender = peer_connection(peer).await?;
    let mut up = peer_request_to(gateway, peer, Method::GET, path, identity);
    let key = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        rand::random::<[u8; 16]>(),
    );
    let headers = up.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    if let Ok(key) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, key);
    }
    for offered in req.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        headers.append(header::SEC_WEBSOCKET_PROTOCOL, offered.clone());
    }
    let res = tokio::time::timeout(PEER_TIMEOUT, sender.send_request(up))
        .await
        .map_err(|_| LiveError::OwnerGone(peer.to_string()))?
        .map_err(|_| LiveError::OwnerGone(peer.to_string()))?;
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        let code = res.status().as_u16();
        let body = res.into_body().collect().await.map(|b| b.to_bytes());
        let status = body
            .ok()
            .and_then(|b| serde_json::from_slice::<Status>(&b).ok())
            .unwrap_or_else(|| Status::failure(code, "the replica that holds the session refused"));
        return Err(LiveError::Peer(Box::new(status)));
    }
    let protocol = res.headers().get(header::SEC_WEBSOCKET_PROTOCOL).cloned();
    let (response, client) = upgrade(&mut req, protocol)?;
    let owner = hyper::upgrade::on(res);
    tokio::spawn(async move {
        let (Ok(client), Ok(owner)) = (client.await.map(WebSocket::into_inner), owner.await) else {
            return;
        };
        let (mut client, mut owner) = (client, TokioIo::new(owner));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut owner).await;
    });
    Ok(response)
}
