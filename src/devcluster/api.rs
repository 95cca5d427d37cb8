//! The dev cluster's routes: discovery, namespaces, pods, exec; the one place where errors
//! become `Status` responses, and the one log line per request.

use crate::devcluster::Executed;
use crate::protocol::exec_query::Values;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::Shared;
use super::auth::{Action, Caller, authenticate};
use super::exec;
use super::objects::{Objects, wants_table};
use super::refusal::{
    Body, Refusal, bytes_response, not_found, refuse, status_response, streamed_response,
};
use super::selector::Selector;
use super::stream::ExecOptions;
use crate::protocol::Status;

/// The version `/version` reports.
pub const GIT_VERSION: &str = "v1.33.0-podterm-dev";

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Version,
    Health,
    Api,
    ApiV1,
    Apis,
    Namespaces,
    Namespace(&'a str),
    AllPods,
    Pods(&'a str),
    Pod(&'a str, &'a str),
    Exec(&'a str, &'a str),
    Attach(&'a str, &'a str),
    Log(&'a str, &'a str),
    Ephemeral(&'a str, &'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    Some(match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez"] => Route::Health,
        ["api"] => Route::Api,
        ["api", "v1"] => Route::ApiV1,
        ["apis"] => Route::Apis,
        ["api", "v1", "namespaces"] => Route::Namespaces,
        ["api", "v1", "namespaces", ns] => Route::Namespace(ns),
        ["api", "v1", "pods"] => Route::AllPods,
        ["api", "v1", "namespaces", ns, "pods"] => Route::Pods(ns),
        ["api", "v1", "namespaces", ns, "pods", pod] => Route::Pod(ns, pod),
        ["api", "v1", "namespaces", ns, "pods", pod, "exec"] => Route::Exec(ns, pod),
        ["api", "v1", "namespaces", ns, "pods", pod, "attach"] => Route::Attach(ns, pod),
        ["api", "v1", "namespaces", ns, "pods", pod, "log"] => Route::Log(ns, pod),
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "pods",
            pod,
            "ephemeralcontainers",
        ] => Route::Ephemeral(ns, pod),
        _ => return None,
    })
}

/// Serves one request and logs it (method, path, user, status).
pub(crate) async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut user = String::new();
    let response = match serve(req, &shared, &mut user).await {
        Ok(response) => response,
        Err(Refusal(status)) => status_response(&status),
    };
    tracing::info!(
        %method,
        %path,
        user = %if user.is_empty() { "-" } else { &user },
        status = response.status().as_u16(),
        %peer,
        "dev cluster request"
    );
    response
}

async fn serve(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    user: &mut String,
) -> Result<Response<Body>, Refusal> {
    let path = req.uri().path().to_owned();
    let Some(route) = route(&path) else {
        authenticate(req.headers(), &shared.token)?;
        return Err(not_found_path().into());
    };
    let allowed: &[Method] = match route {
        Route::Exec(..) | Route::Attach(..) => &[Method::GET, Method::POST],
        Route::Ephemeral(..) => &[Method::GET, Method::PATCH],
        _ => &[Method::GET],
    };
    match route {
        Route::Version => return Ok(json_response(StatusCode::OK, &version())),
        Route::Health => return Ok(text_response(StatusCode::OK, "ok")),
        _ => {}
    }
    let caller = authenticate(req.headers(), &shared.token)?;
    user.clone_from(&caller.user);
    if !allowed.contains(req.method()) {
        return Err(refuse(
            405,
            "the server does not allow this method on the requested resource",
        ));
    }
    match route {
        Route::Exec(ns, name) => exec_route(req, shared, &caller, ns, name, false),
        Route::Attach(ns, name) => exec_route(req, shared, &caller, ns, name, true),
        Route::Log(ns, name) => {
            let rules = &shared.objects.manifest.rules;
            caller.check(rules, action("get", "pods/log", Some(name), Some(ns)))?;
            let pod = shared
                .objects
                .pod_now(ns, name)
                .ok_or_else(|| not_found("pods", name))?;
            super::logs::serve(
                req.uri().query().unwrap_or(""),
                &pod,
                shared.objects.created,
                shared.shutdown.clone(),
            )
        }
        Route::Ephemeral(ns, name) => super::ephemeral::serve(req, shared, &caller, ns, name).await,
        Route::AllPods | Route::Pods(_)
            if Values::parse(req.uri().query().unwrap_or("")).flag("watch") =>
        {
            let namespace = match route {
                Route::Pods(ns) => Some(ns),
                _ => None,
            };
            watch_pods(shared, &caller, namespace, req.uri().query())
        }
        route => {
            let table = wants_table(
                req.headers()
                    .get(hyper::header::ACCEPT)
                    .and_then(|v| v.to_str().ok()),
            );
            let read = Read {
                query: req.uri().query(),
                objects: &shared.objects,
                caller: &caller,
                table,
            };
            let value = match route {
                Route::Namespaces | Route::Namespace(_) => read.namespaces(&route)?,
                Route::AllPods | Route::Pods(_) | Route::Pod(..) => read.pods(&route)?,
                other => discovery(&other, &shared.objects),
            };
            Ok(json_response(StatusCode::OK, &value))
        }
    }
}

/// `/api`, `/apis`, `/api/v1`: what any authenticated caller may read.
fn discovery(route: &Route<'_>, objects: &Objects) -> Value {
    match route {
        Route::Api => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": objects.node_ip}],
        }),
        Route::Apis => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        _ => resource_list(),
    }
}

/// A read of namespaces or pods: who asks, how (`table`: kubectl's `Table` form) and with
/// which query (`labelSelector`).
struct Read<'a> {
    query: Option<&'a str>,
    objects: &'a Objects,
    caller: &'a Caller,
    table: bool,
}

impl Read<'_> {
    /// `GET` of the namespace list or one namespace, as the caller's RBAC allows.
    fn namespaces(&self, route: &Route<'_>) -> Result<Value, Refusal> {
        let (query, objects, caller, table) = (self.query, self.objects, self.caller, self.table);
        let rules = &objects.manifest.rules;
        if let Route::Namespace(ns) = *route {
            caller.check(rules, action("get", "namespaces", Some(ns), None))?;
            if !objects.manifest.has_namespace(ns) {
                return Err(not_found("namespaces", ns).into());
            }
            return Ok(if table {
                objects.namespace_table(&[ns])
            } else {
                objects.namespace(ns)
            });
        }
        caller.check(rules, action("list", "namespaces", None, None))?;
        let selector = list_query(query)?;
        let names: Vec<&str> = objects
            .manifest
            .namespaces
            .iter()
            .map(String::as_str)
            .filter(|n| selector.matches(&namespace_labels(n)))
            .collect();
        Ok(if table {
            objects.namespace_table(&names)
        } else {
            objects.namespace_list(&names)
        })
    }

    /// `GET` of pods in all namespaces, in one, or one pod, as the caller's RBAC allows.
    fn pods(&self, route: &Route<'_>) -> Result<Value, Refusal> {
        let (query, objects, caller, table) = (self.query, self.objects, self.caller, self.table);
        let rules = &objects.manifest.rules;
        if let Route::Pod(ns, name) = *route {
            caller.check(rules, action("get", "pods", Some(name), Some(ns)))?;
            let pod = objects
                .pod_now(ns, name)
                .ok_or_else(|| not_found("pods", name))?;
            return Ok(if table {
                objects.pod_table(std::iter::once(&*pod))
            } else {
                objects.pod(&pod)
            });
        }
        let namespace = match *route {
            Route::Pods(ns) => Some(ns),
            _ => None,
        };
        caller.check(rules, action("list", "pods", None, namespace))?;
        let selector = list_query(query)?;
        let fields = field_selector(query)?;
        let all = objects.pods_now();
        let pods = all.iter().map(|p| &**p).filter(|p| {
            namespace.is_none_or(|ns| p.namespace == ns)
                && selector.matches(&p.labels)
                && fields.matches(&pod_fields(p))
        });
        Ok(if table {
            objects.pod_table(pods)
        } else {
            objects.pod_list(pods)
        })
    }
}

/// `pods/exec`, or `pods/attach` (`attach`: the container's own process, see
/// [`ExecOptions::for_attach`]).
fn exec_route(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    caller: &Caller,
    ns: &str,
    name: &str,
    attach: bool,
) -> Result<Response<Body>, Refusal> {
    let rules = &shared.objects.manifest.rules;
    let resource = if attach { "pods/attach" } else { "pods/exec" };
    // Exec and attach need both verbs (the API server checks both since 1.35).
    for verb in ["create", "get"] {
        caller.check(rules, action(verb, resource, Some(name), Some(ns)))?;
    }
    let pod = shared
        .objects
        .pod_now(ns, name)
        .ok_or_else(|| not_found("pods", name))?;
    let query = req.uri().query().unwrap_or("");
    let options = if attach {
        ExecOptions::for_attach(query, &pod)?
    } else {
        ExecOptions::from_query(query, &pod)?
    };
    let (container, kind) = pod
        .find(&options.container)
        .expect("from_query checked the container");
    if kind == super::manifest::ContainerKind::Init {
        // The kubelet's answer for a container that is not running.
        return Err(refuse(
            400,
            format!(
                "container {} is an init container of pod {} and has completed: it is not running",
                container.name, pod.name
            ),
        ));
    }
    let container = container.clone();
    let pod = &*pod;
    let executed = Executed {
        user: caller.user.clone(),
        groups: caller.groups.clone(),
        namespace: pod.namespace.clone(),
        pod: pod.name.clone(),
        options: options.clone(),
    };
    let res = exec::upgrade(req, shared.clone(), pod, container, options)?;
    shared.journal.push(executed);
    Ok(res)
}

/// A watch of pods (`?watch=true`, as client-go's informers ask after their list): a
/// `MODIFIED` event for each pod that changes (an ephemeral container added) and matches the
/// namespace and selectors, until `timeoutSeconds` (default 30 min), the client leaves or the
/// dev cluster stops. Nothing is replayed: the list before it was current.
fn watch_pods(
    shared: &Arc<Shared>,
    caller: &Caller,
    namespace: Option<&str>,
    query: Option<&str>,
) -> Result<Response<Body>, Refusal> {
    let rules = &shared.objects.manifest.rules;
    caller.check(rules, action("watch", "pods", None, namespace))?;
    let values = Values::parse(query.unwrap_or(""));
    let labels = selector(&values, "labelSelector")?;
    let fields = selector(&values, "fieldSelector")?;
    let timeout = values
        .first("timeoutSeconds")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .map_or(
            std::time::Duration::from_secs(1800),
            std::time::Duration::from_secs,
        );
    let mut changes = shared.objects.changes.subscribe();
    let mut shutdown = shared.shutdown.clone();
    let namespace = namespace.map(str::to_string);
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let shared = shared.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let (ns, name) = tokio::select! {
                changed = changes.recv() => match changed {
                    Ok(changed) => changed,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
                () = &mut deadline => return,
                () = tx.closed() => return,
                _ = shutdown.changed() => return,
            };
            let Some(pod) = shared.objects.pod_now(&ns, &name) else {
                continue;
            };
            let wanted = namespace.as_deref().is_none_or(|n| n == pod.namespace)
                && labels.matches(&pod.labels)
                && fields.matches(&pod_fields(&pod));
            if !wanted {
                continue;
            }
            let event = json!({"type": "MODIFIED", "object": shared.objects.pod(&pod)});
            let mut line = serde_json::to_vec(&event).expect("JSON");
            line.push(b'\n');
            if tx.send(bytes::Bytes::from(line)).await.is_err() {
                return;
            }
        }
    });
    Ok(streamed_response("application/json", rx))
}

/// The query of a list request, read as the API server reads it: its label selector;
/// `watch` is refused (405) where it is not served (pods serve it: [`watch_pods`]).
fn list_query(query: Option<&str>) -> Result<Selector, Refusal> {
    let values = Values::parse(query.unwrap_or(""));
    if values.flag("watch") {
        return Err(refuse(405, "watch is not supported by the dev cluster"));
    }
    selector(&values, "labelSelector")
}

/// A list's `fieldSelector` (`metadata.name=x`, `metadata.namespace=y`, as kubectl debug
/// watches one pod), read with the label selector's syntax.
fn field_selector(query: Option<&str>) -> Result<Selector, Refusal> {
    selector(&Values::parse(query.unwrap_or("")), "fieldSelector")
}

/// The selector given as `key` (none: everything), or a 400.
fn selector(values: &Values, key: &str) -> Result<Selector, Refusal> {
    match values.first(key) {
        Some(text) => Selector::parse(&String::from_utf8_lossy(text)).map_err(|e| refuse(400, e)),
        None => Ok(Selector::default()),
    }
}

/// The fields a pod list may be selected by.
fn pod_fields(pod: &super::manifest::Pod) -> std::collections::BTreeMap<String, String> {
    [
        ("metadata.name".to_string(), pod.name.clone()),
        ("metadata.namespace".to_string(), pod.namespace.clone()),
        ("status.phase".to_string(), "Running".to_string()),
    ]
    .into()
}

/// The labels every namespace carries.
fn namespace_labels(name: &str) -> std::collections::BTreeMap<String, String> {
    [("kubernetes.io/metadata.name".to_string(), name.to_string())].into()
}

fn action<'a>(
    verb: &'a str,
    resource: &'a str,
    name: Option<&'a str>,
    namespace: Option<&'a str>,
) -> Action<'a> {
    Action {
        verb,
        resource,
        name,
        namespace,
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

fn resource_list() -> Value {
    let resource = |name: &str, kind: &str, namespaced: bool, verbs: &[&str], short: &[&str]| {
        let mut v = json!({
            "name": name,
            "singularName": if name.contains('/') { "" } else { name.trim_end_matches('s') },
            "namespaced": namespaced,
            "kind": kind,
            "verbs": verbs,
        });
        if !short.is_empty() {
            v["shortNames"] = json!(short);
        }
        v
    };
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            resource("namespaces", "Namespace", false, &["get", "list"], &["ns"]),
            resource("pods", "Pod", true, &["get", "list"], &["po"]),
            resource("pods/exec", "PodExecOptions", true, &["create", "get"], &[]),
            resource("pods/attach", "PodAttachOptions", true, &["create", "get"], &[]),
            resource("pods/log", "Pod", true, &["get"], &[]),
            resource("pods/ephemeralcontainers", "Pod", true, &["get", "patch", "update"], &[]),
        ],
    })
}

fn not_found_path() -> Status {
    let mut s = Status::failure(404, "the server could not find the requested resource");
    s.details = Some(Default::default());
    s
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("serializing JSON cannot fail");
    bytes_response(code, "application/json", body)
}

fn text_response(code: StatusCode, text: &'static str) -> Response<Body> {
    bytes_response(code, "text/plain; charset=utf-8", text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/version"), Some(Route::Version));
        assert_eq!(route("/api"), Some(Route::Api));
        assert_eq!(route("/api/v1/"), Some(Route::ApiV1));
        assert_eq!(route("/api/v1/pods"), Some(Route::AllPods));
        assert_eq!(route("/api/v1/namespaces"), Some(Route::Namespaces));
        assert_eq!(route("/api/v1/namespaces/a"), Some(Route::Namespace("a")));
        assert_eq!(route("/api/v1/namespaces/a/pods"), Some(Route::Pods("a")));
        assert_eq!(
            route("/api/v1/namespaces/a/pods/p"),
            Some(Route::Pod("a", "p"))
        );
        assert_eq!(
            route("/api/v1/namespaces/a/pods/p/exec"),
            Some(Route::Exec("a", "p"))
        );
        assert_eq!(
            route("/api/v1/namespaces/a/pods/p/log"),
            Some(Route::Log("a", "p"))
        );
        assert_eq!(
            route("/api/v1/namespaces/a/pods/p/attach"),
            Some(Route::Attach("a", "p"))
        );
        assert_eq!(route("/api/v1/namespaces/a/pods/p/status"), None);
        assert_eq!(route("/apis/apps/v1"), None);
        assert_eq!(route("/"), None);
    }

    #[test]
    fn not_found_shape() {
        let s = not_found("pods", "x");
        assert_eq!(s.code, 404);
        assert_eq!(s.message, "pods \"x\" not found");
        assert_eq!(s.details.unwrap().kind, "pods");
    }
}
