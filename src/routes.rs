//! Path → handler, and the one place errors become HTTP responses (Kubernetes `Status` JSON).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::cluster::{Cluster, UpstreamError};
use crate::events::{Refused, SessionInfo};
use crate::fields::Fields;
use crate::gateway::Gateway;
use crate::identity::{Identity, IdentityError};
use crate::policy::limits::LimitError;
use crate::protocol::exec_query::{ExecTarget, QueryError, Subresource};
use crate::protocol::{SUBPROTOCOLS, Status};
use crate::session::live::LiveError;
use crate::session::{self, AttemptGuard, ClientSide, ExecError};
use crate::toolkit::{self, Place, ToolkitError};

/// Every response body the gateway sends.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no answer from a cluster.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("the server could not find the requested resource")]
    NotFound,
    #[error("cluster \"{0}\" not found")]
    UnknownCluster(String),
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("podterm is draining: open a new session on another replica")]
    Draining,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(
        "podterm runs exec over WebSocket only ({}, {}): kubectl 1.29 and older speak only SPDY; use kubectl 1.30 or newer, or the page",
        crate::protocol::V5,
        crate::protocol::V4
    )]
    WebSocketOnly,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error(transparent)]
    Toolkit(#[from] ToolkitError),
}

/// A refusal, classified once: the `Status` the client gets (or the cluster's own answer,
/// passed as it came), the label of the refusal metric and the reason in the audit line.
pub struct Refusal {
    pub status: Status,
    pub label: &'static str,
    passthrough: Option<Response<Body>>,
}

impl Refusal {
    fn new(code: u16, label: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status: Status::failure(code, message),
            label,
            passthrough: None,
        }
    }

    fn into_response(self) -> Response<Body> {
        self.passthrough
            .unwrap_or_else(|| status_response(&self.status))
    }
}

/// Every refusal's status, metric label and audit reason, in one place (linkerd's rescue).
pub fn classify(e: RouteError) -> Refusal {
    let message = e.to_string();
    match e {
        RouteError::Identity(e) => {
            let (code, label) = match e {
                IdentityError::ProxySecret => (401, "proxy_secret"),
                IdentityError::NoUser(_) => (401, "no_user"),
                IdentityError::RepeatedUser(_) => (400, "bad_identity"),
                IdentityError::BadGroups(_) => (400, "bad_identity"),
                IdentityError::BadUser(_) => (400, "bad_identity"),
                IdentityError::Origin(_) => (403, "origin"),
                IdentityError::Host(_) => (403, "host"),
            };
            Refusal::new(code, label, message)
        }
        RouteError::NotFound => Refusal::new(404, "not_found", message),
        RouteError::UnknownCluster(name) => Refusal {
            status: Status::failure(404, message).with_details("clusters", &name),
            label: "unknown_cluster",
            passthrough: None,
        },
        RouteError::MethodNotAllowed => Refusal::new(405, "method", message),
        RouteError::Draining => Refusal::new(503, "draining", message),
        RouteError::BadRequest(_) => Refusal::new(400, "bad_request", message),
        RouteError::Query(_) => Refusal::new(400, "bad_query", message),
        RouteError::WebSocketOnly => Refusal::new(400, "websocket_only", message),
        RouteError::Upstream(e) | RouteError::Exec(ExecError::Connect(e)) => upstream_refusal(e),
        RouteError::Live(LiveError::Peer(status)) => Refusal {
            label: "peer_refused",
            status: *status,
            passthrough: None,
        },
        RouteError::Live(e) => {
            let (code, label) = e.code();
            Refusal::new(code, label, message)
        }
        RouteError::Toolkit(ToolkitError::Upstream(e)) => upstream_refusal(e),
        RouteError::Toolkit(e) => {
            let (code, label) = e.code();
            Refusal::new(code, label, message)
        }
        RouteError::Exec(e) => {
            let (code, label) = match &e {
                ExecError::NoSubprotocol => (400, "no_subprotocol"),
                ExecError::Handshake(_) => (400, "bad_upgrade"),
                ExecError::Policy(_) => (403, "policy"),
                ExecError::Limits(LimitError::PerUser { .. }) => (429, "limit_per_user"),
                ExecError::Limits(LimitError::Total { .. }) => (503, "limit_total"),
                ExecError::Recording(_) => (500, "recording"),
                ExecError::Connect(_) => unreachable!("matched above"),
            };
            Refusal::new(code, label, message)
        }
    }
}

/// A cluster's refusal passes as it came when it is a `Status`; anything else becomes one.
fn upstream_refusal(e: UpstreamError) -> Refusal {
    let (code, label) = match &e {
        UpstreamError::Refused { code, .. } if code.as_u16() == 403 => (403, "cluster_forbidden"),
        UpstreamError::Refused { code, .. } => (code.as_u16(), "cluster_refused"),
        UpstreamError::Send { .. } => (503, "cluster_unreachable"),
        UpstreamError::Handshake { .. } => (502, "cluster_unreachable"),
        UpstreamError::BadIdentity(_) => (400, "bad_identity"),
    };
    let status = Status::failure(code, e.reason());
    let passthrough = match e {
        UpstreamError::Refused {
            code,
            content_type,
            body,
        } if serde_json::from_slice::<Status>(&body).is_ok() => {
            let mut res = Response::new(full(body));
            *res.status_mut() = code;
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                content_type.unwrap_or(HeaderValue::from_static("application/json")),
            );
            Some(res)
        }
        _ => None,
    };
    Refusal {
        status,
        label,
        passthrough,
    }
}

fn status_response(status: &Status) -> Response<Body> {
    let mut res = Response::new(full(status.to_json()));
    *res.status_mut() =
        StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

fn json(value: &serde_json::Value) -> Response<Body> {
    let mut res = Response::new(full(serde_json::to_vec(value).unwrap_or_default()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn text(code: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = code;
    res
}

/// Answers one request.
pub async fn handle(
    gateway: Arc<Gateway>,
    req: Request<Incoming>,
    peer: SocketAddr,
    internal: bool,
) -> Result<Response<Body>, Infallible> {
    let routed = if internal {
        peer_route(&gateway, req).await
    } else {
        route(&gateway, req, peer).await
    };
    Ok(routed.unwrap_or_else(|e| refused(&gateway, e)))
}

/// The answer to a request a route refused.
fn refused(gateway: &Gateway, e: RouteError) -> Response<Body> {
    // Exec attempts count their own refusals (AttemptGuard); other routes count only who was
    // turned away.
    let identity = matches!(e, RouteError::Identity(_));
    let refusal = classify(e);
    if identity {
        gateway.metrics.denied(refusal.label);
    }
    refusal.into_response()
}

async fn route(
    gateway: &Arc<Gateway>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, RouteError> {
    gateway
        .auth
        .check_host(req.uri().authority().map(|a| a.as_str()), req.headers())?;
    if let Some(exec_path) = ExecPath::of(req.uri().path()) {
        let (attempt, subresource) = exec_path.attempt(peer);
        let mut req = req.map(drop);
        let upgrade = hyper::upgrade::on(&mut req);
        let fields = Fields::from(req.headers());
        let request = ExecRequest {
            method: req.method().clone(),
            query: req.uri().query().unwrap_or(""),
            fields,
            websocket: fields.is_upgrade(),
        };
        return Ok(exec(
            gateway,
            &request,
            attempt,
            subresource,
            ClientSide::Hyper(upgrade),
        )
        .await);
    }
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => Ok(text(StatusCode::OK, "ok\n")),
        ["readyz"] if gateway.drain.is_draining() => {
            Ok(text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"))
        }
        ["readyz"] => Ok(text(StatusCode::OK, "ok\n")),
        ["metrics"] => metrics(gateway, &req),
        ["api", "whoami"] => {
            only_get(&req)?;
            let identity = caller(gateway, &req)?;
            whoami(gateway, &identity, req.uri().query().unwrap_or(""))
        }
        ["api", "clusters"] => {
            only_get(&req)?;
            caller(gateway, &req)?;
            Ok(json(&serde_json::json!(gateway.clusters.names())))
        }
        ["api", "files", name, namespace, pod] => {
            let place = toolkit_place(gateway, &req, peer, (name, namespace, pod))?;
            match *req.method() {
                Method::GET => Ok(toolkit::files::download(gateway, &req, place)
                    .await?
                    .map(|b| b.boxed_unsync())),
                Method::PUT => Ok(toolkit::files::upload(gateway, req, place)
                    .await?
                    .map(|b| b.map_err(|e| match e {}).boxed_unsync())),
                _ => Err(RouteError::MethodNotAllowed),
            }
        }
        [
            "clusters",
            name,
            "api",
            "v1",
            "namespaces",
            namespace,
            "pods",
            pod,
            verb @ ("log" | "ephemeralcontainers"),
        ] => {
            let place = toolkit_place(gateway, &req, peer, (name, namespace, pod))?;
            let res = if *verb == "log" {
                only_get(&req)?;
                toolkit::logs(gateway, &req, place).await?
            } else {
                if !matches!(*req.method(), Method::GET | Method::PATCH) {
                    return Err(RouteError::MethodNotAllowed);
                }
                toolkit::ephemeral(gateway, req, place).await?
            };
            Ok(res.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
        }
        ["api", "sessions", rest @ ..] => {
            let identity = caller(gateway, &req)?;
            sessions(gateway, req, rest, &identity, false).await
        }
        ["clusters", name, rest @ ..] => cluster_read(gateway, &req, name, rest).await,
        _ => page(&req, &path),
    }
}

/// An exec or attach path, as the cluster's API names it under the cluster's name:
/// `/clusters/{cluster}/api/v1/namespaces/{namespace}/pods/{pod}/exec` (or `attach`).
#[derive(Debug, Clone, Copy)]
pub struct ExecPath<'a> {
    cluster: &'a str,
    namespace: &'a str,
    pod: &'a str,
    subresource: Subresource,
}

impl<'a> ExecPath<'a> {
    /// `path` as an exec or attach path, if it is one.
    pub fn of(path: &'a str) -> Option<ExecPath<'a>> {
        let mut segments = crate::protocol::split_ascii(path.trim_start_matches('/'), b'/');
        let mut next = || segments.next();
        let (Some("clusters"), Some(cluster), Some("api"), Some("v1"), Some("namespaces")) =
            (next(), next(), next(), next(), next())
        else {
            return None;
        };
        let (Some(namespace), Some("pods"), Some(pod), Some(verb), None) =
            (next(), next(), next(), next(), next())
        else {
            return None;
        };
        let subresource = match verb {
            "exec" => Subresource::Exec,
            "attach" => Subresource::Attach,
            _ => return None,
        };
        Some(ExecPath {
            cluster,
            namespace,
            pod,
            subresource,
        })
    }

    fn attempt(&self, peer: SocketAddr) -> (SessionInfo, Subresource) {
        let info = SessionInfo::new(peer, self.cluster, self.namespace, self.pod);
        (info, self.subresource)
    }
}

/// An exec request as the exec route reads it: from hyper's request, or from the lines of a
/// head the server read itself.
pub struct ExecRequest<'a> {
    pub method: Method,
    /// The target's query ("" without one).
    pub query: &'a str,
    pub fields: Fields<'a>,
    /// A WebSocket upgrade ([`Fields::is_upgrade`], which the server's direct exec already
    /// asked).
    pub websocket: bool,
}

/// An exec or attach WebSocket upgrade (a GET the caller found to be one) that the server
/// read and answers itself, without hyper (`crate::server`'s direct exec; the target's exec
/// path and query, header `fields`): the same checks, refusals and reports as through
/// [`handle`]. A session the cluster accepted is left in `accepted` for the connection's task
/// to run once it wrote the 101.
pub async fn direct_exec(
    gateway: &Arc<Gateway>,
    exec_path: ExecPath<'_>,
    query: Option<&str>,
    fields: Fields<'_>,
    peer: SocketAddr,
    accepted: &mut Option<session::Accepted>,
) -> Response<Body> {
    if let Err(e) = gateway.auth.check_host(None, fields) {
        return refused(gateway, e.into());
    }
    let (attempt, subresource) = exec_path.attempt(peer);
    let request = ExecRequest {
        method: Method::GET,
        query: query.unwrap_or(""),
        fields,
        websocket: true,
    };
    exec(
        gateway,
        &request,
        attempt,
        subresource,
        ClientSide::Direct(accepted),
    )
    .await
}

/// The internal listener (`PODTERM_PEER_LISTEN`): only `/healthz` and other replicas' signed
/// requests about this replica's sessions.
async fn peer_route(
    gateway: &Arc<Gateway>,
    req: Request<Incoming>,
) -> Result<Response<Body>, RouteError> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => Ok(text(StatusCode::OK, "ok\n")),
        ["peer", "sessions", rest @ ..] => {
            let signed = req.uri().path_and_query().map_or("", |p| p.as_str());
            let identity = gateway
                .fleet
                .verify_peer(req.method().as_str(), signed, req.headers())
                .map_err(|e| RouteError::Live(e.into()))?;
            sessions(gateway, req, rest, &identity, true).await
        }
        _ => Err(RouteError::NotFound),
    }
}

/// `/api/sessions/…` (and `/peer/sessions/…` from another replica, `via_peer`).
async fn sessions(
    gateway: &Arc<Gateway>,
    req: Request<Incoming>,
    rest: &[&str],
    identity: &Identity,
    via_peer: bool,
) -> Result<Response<Body>, RouteError> {
    use crate::session::live;
    let websocket = fastwebsockets::upgrade::is_upgrade_request(&req);
    let upgraded = |res: Response<http_body_util::Empty<Bytes>>| {
        res.map(|b| b.map_err(|e| match e {}).boxed_unsync())
    };
    match rest {
        [] if via_peer => {
            only_get(&req)?;
            Ok(json(&serde_json::json!(live::local_entries(
                gateway, identity
            ))))
        }
        [] => {
            only_get(&req)?;
            Ok(json(&live::list(gateway, identity).await))
        }
        [id] if is_name(id) && req.method() == Method::DELETE => {
            let status = live::end(gateway, &req, id, identity, via_peer).await?;
            Ok(status_response(&status))
        }
        [id] if is_name(id) => Err(RouteError::MethodNotAllowed),
        [id, "resume"] if is_name(id) => {
            only_get(&req)?;
            if !websocket {
                // The page asks this way why a resume failed: the session's state, as a Status.
                live::check_resume(gateway, &req, id, identity, via_peer).await?;
                return Err(RouteError::BadRequest("resume is a WebSocket request"));
            }
            let id = id.to_string();
            Ok(upgraded(
                live::resume(gateway, req, &id, identity, via_peer).await?,
            ))
        }
        [id, "watch"] if is_name(id) => {
            only_get(&req)?;
            if !websocket {
                return Err(RouteError::BadRequest("watch is a WebSocket request"));
            }
            let id = id.to_string();
            Ok(upgraded(
                live::watch(gateway, req, &id, identity, via_peer).await?,
            ))
        }
        _ => Err(RouteError::NotFound),
    }
}

/// `GET /metrics`, behind the proxy secret when one is set.
fn metrics(gateway: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, RouteError> {
    only_get(req)?;
    gateway.auth.check_secret(req.headers())?;
    let mut res = Response::new(full(gateway.metrics.encode()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::telemetry::metrics::CONTENT_TYPE),
    );
    Ok(res)
}

/// `GET /clusters/{name}/{rest}`: the reads kubectl and the page make, passed to the cluster
/// as the caller; any other path is a 404.
async fn cluster_read(
    gateway: &Gateway,
    req: &Request<Incoming>,
    name: &str,
    rest: &[&str],
) -> Result<Response<Body>, RouteError> {
    let identity = caller(gateway, req)?;
    let cluster = gateway
        .clusters
        .get(name)
        .cloned()
        .ok_or_else(|| RouteError::UnknownCluster(name.to_string()))?;
    if !rest.iter().all(|s| is_name(s)) {
        return Err(RouteError::NotFound);
    }
    match rest {
        ["version"]
        | ["api"]
        | ["api", "v1"]
        | ["apis"]
        | ["api", "v1", "namespaces"]
        | ["api", "v1", "namespaces", _]
        | ["api", "v1", "pods"]
        | ["api", "v1", "namespaces", _, "pods"]
        | ["api", "v1", "namespaces", _, "pods", _] => {
            only_get(req)?;
            let api_path = format!("/{}", rest.join("/"));
            read(gateway, &cluster, req, &api_path, &identity).await
        }
        _ => Err(RouteError::NotFound),
    }
}

/// `GET /api/whoami?cluster=C&namespace=N`: who the caller is and what the policy lets them
/// do there — `{"user","groups","mode","rule","deny_root","allow","denied"}`; `mode` and
/// `rule` are `null` (and `denied` says why) when no rule lets them exec there.
fn whoami(
    gateway: &Gateway,
    identity: &Identity,
    query: &str,
) -> Result<Response<Body>, RouteError> {
    let mut cluster = None;
    let mut namespace = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "cluster" => cluster = Some(value.into_owned()),
            "namespace" => namespace = Some(value.into_owned()),
            _ => {}
        }
    }
    let (Some(cluster), Some(namespace)) = (cluster, namespace) else {
        return Err(RouteError::BadRequest(
            "whoami needs the query parameters `cluster` and `namespace`",
        ));
    };
    if gateway.clusters.get(&cluster).is_none() {
        return Err(RouteError::UnknownCluster(cluster));
    }
    let grant = gateway.hooks.policy.grant(identity, &cluster, &namespace);
    let body = match grant {
        Ok(grant) => serde_json::json!({
            "user": identity.user,
            "groups": identity.groups,
            "mode": grant.mode,
            "rule": grant.rule,
            "deny_root": grant.deny_root,
            "allow": grant.allow.iter().map(|a| a.written()).collect::<Vec<_>>(),
            "logs": grant.logs,
            "files": {
                "read": grant.files.read.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                "write": grant.files.write.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
            },
            "debug_images": grant.debug_images.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
            "file_max_bytes": gateway.config.file_max_bytes,
            "denied": null,
        }),
        Err(denial) => serde_json::json!({
            "user": identity.user,
            "groups": identity.groups,
            "mode": null,
            "rule": null,
            "deny_root": false,
            "allow": [],
            "logs": false,
            "files": {"read": [], "write": []},
            "debug_images": [],
            "file_max_bytes": gateway.config.file_max_bytes,
            "denied": denial.to_string(),
        }),
    };
    Ok(json(&body))
}

/// The web page's files (`/`, `/assets/…`), with `ETag` revalidation.
fn page(req: &Request<Incoming>, path: &str) -> Result<Response<Body>, RouteError> {
    let asset = crate::web::asset(path).ok_or(RouteError::NotFound)?;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(RouteError::MethodNotAllowed);
    }
    let headers = req.headers();
    let (coding, body) = asset.encoded(
        headers
            .get(header::ACCEPT_ENCODING)
            .map(HeaderValue::as_bytes),
    );
    let etag = coding.etag(asset.etag);
    let fresh = crate::web::matches_etag(
        headers
            .get(header::IF_NONE_MATCH)
            .map(HeaderValue::as_bytes),
        &etag,
    );
    let mut res = if fresh {
        let mut res = Response::new(full(Bytes::new()));
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let mut res = Response::new(full(Bytes::from_static(body)));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if let Some(c) = coding.header() {
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(c));
        }
        res
    };
    let headers = res.headers_mut();
    if asset.gzip.is_some() || asset.br.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex and quotes"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(asset.cache_control),
    );
    Ok(res)
}

/// The caller: proxy secret, trusted headers, and (for browsers) the `Origin` check.
/// The pod a toolkit route (files, logs, debug containers) names, for the caller: a namespace
/// or pod that is not a name is 404, then the caller is authenticated and the cluster found.
fn toolkit_place(
    gateway: &Gateway,
    req: &Request<Incoming>,
    peer: SocketAddr,
    (cluster, namespace, pod): (&str, &str, &str),
) -> Result<Place, RouteError> {
    if !is_name(namespace) || !is_name(pod) {
        return Err(RouteError::NotFound);
    }
    Ok(Place::of(
        gateway,
        caller(gateway, req)?,
        peer,
        (cluster, namespace, pod),
    )?)
}

fn caller(gateway: &Gateway, req: &Request<Incoming>) -> Result<Identity, RouteError> {
    let identity = gateway.auth.authenticate(req.headers())?;
    gateway.auth.check_origin(req.headers())?;
    Ok(identity)
}

fn only_get(req: &Request<Incoming>) -> Result<(), RouteError> {
    match *req.method() {
        Method::GET => Ok(()),
        _ => Err(RouteError::MethodNotAllowed),
    }
}

/// A path segment that can be a Kubernetes name or path word (no `..`, no escapes).
fn is_name(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// A read passed to the cluster as the caller; its answer streams back with the same code.
async fn read(
    gateway: &Gateway,
    cluster: &Cluster,
    req: &Request<Incoming>,
    api_path: &str,
    identity: &Identity,
) -> Result<Response<Body>, RouteError> {
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{api_path}?{q}"),
        None => api_path.to_string(),
    };
    let res = cluster
        .get(&path_and_query, req.headers(), gateway.act_as(identity))
        .await?;
    Ok(res.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
}

/// An exec attempt, reported exactly once whatever happens: every refusal is classified here
/// and reported with the attempt's audit lines (a plain, non-upgrade GET or POST runs nothing
/// and is not reported, see [`AttemptGuard`]).
async fn exec(
    gateway: &Arc<Gateway>,
    req: &ExecRequest<'_>,
    attempt: SessionInfo,
    subresource: Subresource,
    side: ClientSide<'_>,
) -> Response<Body> {
    let websocket = req.websocket;
    let plain = !websocket && matches!(req.method, Method::GET | Method::POST);
    let mut guard = AttemptGuard::new(gateway.clone(), attempt, plain);
    match exec_checked(gateway, &mut guard, req, websocket, subresource, side).await {
        Ok(res) => {
            guard.answered();
            res
        }
        Err(e) => {
            let refusal = classify(e);
            guard.refused(&Refused {
                code: refusal.status.code,
                label: refusal.label,
                reason: &refusal.status.message,
            });
            refusal.into_response()
        }
    }
}

/// The exec attempt's checks at the edge (method, drain, caller, cluster, names, query), then
/// the session, or for a plain request the same admission and the cluster's plain answer.
async fn exec_checked(
    gateway: &Arc<Gateway>,
    guard: &mut AttemptGuard,
    req: &ExecRequest<'_>,
    websocket: bool,
    subresource: Subresource,
    side: ClientSide<'_>,
) -> Result<Response<Body>, RouteError> {
    if req.method != Method::GET && req.method != Method::POST {
        return Err(RouteError::MethodNotAllowed);
    }
    if gateway.drain.is_draining() {
        return Err(RouteError::Draining);
    }
    let identity = gateway.auth.authenticate(req.fields)?;
    guard.info_mut().identity = Some(identity);
    gateway.auth.check_origin(req.fields)?;
    let info = &guard.info;
    let cluster = gateway
        .clusters
        .get(&info.cluster)
        .cloned()
        .ok_or_else(|| RouteError::UnknownCluster(info.cluster.clone()))?;
    if !is_name(&info.namespace) || !is_name(&info.pod) {
        return Err(RouteError::NotFound);
    }
    let parse = match subresource {
        Subresource::Exec => ExecTarget::parse,
        Subresource::Attach => ExecTarget::parse_attach,
    };
    let target = parse(cluster.name(), &info.namespace, &info.pod, req.query)?;
    guard.info_mut().target = Some(target);
    if !websocket {
        return plain_exec(gateway, &req.method, &cluster, guard.info_mut()).await;
    }
    let res = session::exec(guard, req.fields, cluster, side).await?;
    Ok(res.map(|body| body.map_err(|e| match e {}).boxed_unsync()))
}

/// Largest plain exec answer read back from the cluster, in bytes.
const MAX_PLAIN_ANSWER_BYTES: usize = 64 * 1024;

/// An exec without a WebSocket upgrade (kubectl's SPDY, alone before 1.30 or as the fallback
/// after a refused upgrade): the same admission, then the cluster is asked the same plainly so
/// that its refusal (403, 400) reaches the client. Where the cluster would only want an
/// upgrade, the answer says that podterm needs WebSocket exec.
async fn plain_exec(
    gateway: &Gateway,
    method: &Method,
    cluster: &Cluster,
    info: &mut SessionInfo,
) -> Result<Response<Body>, RouteError> {
    let place = session::admit(gateway, cluster, info, &SUBPROTOCOLS).await?;
    drop(place);
    let (identity, target) = info.caller_and_target().expect("admitted with both");
    let res = cluster
        .plain_exec(
            method.clone(),
            &target.upstream_path(),
            gateway.act_as(identity),
        )
        .await?;
    let (parts, body) = res.into_parts();
    let body = http_body_util::Limited::new(body, MAX_PLAIN_ANSWER_BYTES)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let wants_upgrade = parts.status == StatusCode::BAD_REQUEST
        && serde_json::from_slice::<Status>(&body)
            .is_ok_and(|s| s.message.contains("Upgrade request required"));
    if wants_upgrade {
        return Err(RouteError::WebSocketOnly);
    }
    let mut res = Response::from_parts(parts, full(body));
    res.headers_mut().remove(header::CONTENT_LENGTH);
    Ok(res)
}
