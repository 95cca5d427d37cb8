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

use crate::cluster::{ActAs, Cluster, UpstreamError};
use crate::identity::{Identity, IdentityError};
use crate::protocol::Status;
use crate::server::Gateway;
use crate::session::{self, ExecError, ExecTarget};

/// Every response body the gateway sends.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no answer from a cluster; mapped to a `Status` here and nowhere else.
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
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl RouteError {
    fn into_response(self) -> Response<Body> {
        let status = match self {
            RouteError::Identity(e) => Status::failure(e.http_code(), e.to_string()),
            RouteError::NotFound => Status::failure(404, self.to_string()),
            RouteError::UnknownCluster(ref name) => {
                Status::failure(404, self.to_string()).with_details("clusters", name)
            }
            RouteError::MethodNotAllowed => Status::failure(405, self.to_string()),
            RouteError::Draining => Status::failure(503, self.to_string()),
            RouteError::BadRequest(why) => Status::failure(400, why),
            RouteError::Upstream(e) => return upstream_error(e),
            RouteError::Exec(ExecError::Upstream(e)) => return upstream_error(e),
            RouteError::Exec(e) => e.status(),
        };
        status_response(&status)
    }
}

/// A cluster's refusal passes as it came when it is a `Status`; anything else becomes one.
fn upstream_error(e: UpstreamError) -> Response<Body> {
    let code = e.http_code();
    if let UpstreamError::Refused {
        code: http,
        content_type,
        body,
    } = &e
    {
        if serde_json::from_slice::<Status>(body).is_ok() {
            let mut res = Response::new(full(body.clone()));
            *res.status_mut() = *http;
            let ct = content_type.clone();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                ct.unwrap_or(HeaderValue::from_static("application/json")),
            );
            return res;
        }
    }
    status_response(&Status::failure(code, e.reason()))
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
) -> Result<Response<Body>, Infallible> {
    Ok(route(gateway, req, peer)
        .await
        .unwrap_or_else(RouteError::into_response))
}

async fn route(
    gateway: Arc<Gateway>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, RouteError> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => Ok(text(StatusCode::OK, "ok\n")),
        ["readyz"] if gateway.drain.is_draining() => {
            Ok(text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"))
        }
        ["readyz"] => Ok(text(StatusCode::OK, "ok\n")),
        ["metrics"] => {
            only_get(&req)?;
            let mut res = Response::new(full(gateway.metrics.encode()));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::telemetry::metrics::CONTENT_TYPE),
            );
            Ok(res)
        }
        ["api", "whoami"] => {
            only_get(&req)?;
            let identity = caller(&gateway, &req)?;
            whoami(&gateway, &identity, req.uri().query().unwrap_or(""))
        }
        ["api", "clusters"] => {
            only_get(&req)?;
            caller(&gateway, &req)?;
            Ok(json(&serde_json::json!(gateway.clusters.names())))
        }
        ["clusters", name, rest @ ..] => {
            let identity = caller(&gateway, &req)?;
            let cluster = gateway
                .clusters
                .get(name)
                .cloned()
                .ok_or_else(|| RouteError::UnknownCluster(name.to_string()))?;
            if !rest.iter().all(|s| is_name(s)) {
                return Err(RouteError::NotFound);
            }
            let api_path = format!("/{}", rest.join("/"));
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
                    only_get(&req)?;
                    read(&gateway, &cluster, &req, &api_path, &identity).await
                }
                ["api", "v1", "namespaces", namespace, "pods", pod, "exec"] => {
                    if req.method() != Method::GET && req.method() != Method::POST {
                        return Err(RouteError::MethodNotAllowed);
                    }
                    if gateway.drain.is_draining() {
                        gateway.metrics.denied("draining");
                        return Err(RouteError::Draining);
                    }
                    let target = ExecTarget::from_query(
                        cluster.name(),
                        namespace,
                        pod,
                        req.uri().query().unwrap_or(""),
                    );
                    exec(gateway.clone(), req, cluster, identity, target, peer).await
                }
                _ => Err(RouteError::NotFound),
            }
        }
        _ => page(&req, &path),
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
            "denied": null,
        }),
        Err(denial) => serde_json::json!({
            "user": identity.user,
            "groups": identity.groups,
            "mode": null,
            "rule": null,
            "deny_root": false,
            "allow": [],
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
    let fresh = asset.is_fresh(
        req.headers()
            .get(header::IF_NONE_MATCH)
            .map(HeaderValue::as_bytes),
    );
    let mut res = if fresh {
        let mut res = Response::new(full(Bytes::new()));
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let mut res = Response::new(full(Bytes::from_static(asset.bytes)));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        res
    };
    let headers = res.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(asset.cache_control),
    );
    Ok(res)
}

/// The caller: proxy secret, trusted headers, and (for browsers) the `Origin` check.
fn caller(gateway: &Gateway, req: &Request<Incoming>) -> Result<Identity, RouteError> {
    let checked = gateway
        .auth
        .authenticate(req.headers())
        .and_then(|identity| gateway.auth.check_origin(req.headers()).map(|()| identity));
    checked.map_err(|e| {
        gateway.metrics.denied(e.label());
        RouteError::Identity(e)
    })
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

fn act_as<'a>(gateway: &Gateway, identity: &'a Identity) -> ActAs<'a> {
    if gateway.auth.impersonates() {
        ActAs::User(identity)
    } else {
        ActAs::Podterm
    }
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
        .get(&path_and_query, req.headers(), act_as(gateway, identity))
        .await?;
    Ok(res.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
}

/// An exec: a WebSocket session; without an upgrade (e.g. kubectl's SPDY fallback) the
/// cluster is asked the same, plainly, so its answer (403, 400 "Upgrade request required")
/// reaches the client after the same policy check.
async fn exec(
    gateway: Arc<Gateway>,
    req: Request<Incoming>,
    cluster: Arc<Cluster>,
    identity: Identity,
    target: ExecTarget,
    peer: SocketAddr,
) -> Result<Response<Body>, RouteError> {
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        let place = session::admit(
            &gateway,
            &cluster,
            &identity,
            &target,
            &crate::protocol::SUBPROTOCOLS,
        )
        .await?;
        drop(place);
        let path = target.upstream_path(req.uri().query().unwrap_or(""));
        let res = cluster
            .plain_exec(req.method().clone(), &path, act_as(&gateway, &identity))
            .await?;
        return Ok(res.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()));
    }
    let res = session::exec(gateway, req, cluster, identity, target, peer).await?;
    Ok(res.map(|body| body.map_err(|e| match e {}).boxed_unsync()))
}
