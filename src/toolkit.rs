//! What users do next to a shell, through the same identity, policy and audit as exec:
//! pod logs (`pods/log`), debug containers (`pods/ephemeralcontainers`) and files
//! ([`files`]: tar over exec with an argv podterm builds).
//!
//! Each request is parsed once into a typed value (crate::protocol::log_query, [`DebugPatch`],
//! [`files::FileRequest`]); the policy judges it, the audit line records it and the request
//! sent to the cluster is made from it, never from the client's bytes.

pub mod files;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde::Deserialize;
use serde_json::json;

use crate::cluster::{Cluster, UpstreamError};
use crate::events::Action;
use crate::gateway::Gateway;
use crate::identity::Identity;
use crate::policy::Denial;
use crate::protocol::log_query::{LogQuery, LogQueryError};
use crate::protocol::tar::TarError;

/// Largest debug-container patch read from a client, in bytes.
pub const MAX_PATCH_BYTES: usize = 64 * 1024;

/// Why a toolkit request was refused or failed; routes classify it into a `Status`.
#[derive(Debug, thiserror::Error)]
pub enum ToolkitError {
    #[error("cluster \"{0}\" not found")]
    UnknownCluster(String),
    #[error(transparent)]
    Policy(#[from] Denial),
    #[error(transparent)]
    LogQuery(#[from] LogQueryError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the file is larger than this podterm's limit of {0} bytes (PODTERM_FILE_MAX_BYTES)")]
    TooLarge(u64),
    #[error("an upload needs a Content-Length: the tar header podterm writes carries the size")]
    LengthRequired,
    #[error(
        "the container has no `tar`, which podterm copies files with: {0}; add tar to the image, or copy through a debug container that shares the pod's processes"
    )]
    NoTar(String),
    #[error("the container sent a tar stream podterm refuses: {0}")]
    Tar(#[from] TarError),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl ToolkitError {
    /// The HTTP code and metric label.
    pub fn code(&self) -> (u16, &'static str) {
        match self {
            ToolkitError::UnknownCluster(_) => (404, "unknown_cluster"),
            ToolkitError::Policy(_) => (403, "policy"),
            ToolkitError::LogQuery(_) | ToolkitError::BadRequest(_) => (400, "bad_request"),
            ToolkitError::NotFound(_) => (404, "not_found"),
            ToolkitError::Conflict(_) => (409, "conflict"),
            ToolkitError::TooLarge(_) => (413, "too_large"),
            ToolkitError::LengthRequired => (411, "length_required"),
            ToolkitError::NoTar(_) => (422, "no_tar"),
            ToolkitError::Tar(_) => (502, "bad_tar"),
            ToolkitError::Failed(_) => (502, "failed"),
            ToolkitError::Upstream(_) => (502, "cluster"),
        }
    }
}

/// Who asks, where: the caller (proxy secret, trusted headers, `Origin`) and the cluster.
pub struct Place {
    pub identity: Identity,
    pub cluster: Arc<Cluster>,
    pub namespace: String,
    pub pod: String,
    pub peer: SocketAddr,
}

impl Place {
    /// `identity` (already authenticated by the route) at `cluster/namespace/pod`.
    pub fn of(
        gateway: &Gateway,
        identity: Identity,
        peer: SocketAddr,
        (cluster, namespace, pod): (&str, &str, &str),
    ) -> Result<Place, ToolkitError> {
        let cluster = gateway
            .clusters
            .get(cluster)
            .cloned()
            .ok_or_else(|| ToolkitError::UnknownCluster(cluster.into()))?;
        Ok(Place {
            identity,
            cluster,
            namespace: namespace.into(),
            pod: pod.into(),
            peer,
        })
    }

    /// A new audit record of `event` here.
    pub fn action(&self, event: &'static str) -> Action {
        Action::new(
            event,
            &self.identity,
            self.peer,
            (self.cluster.name(), &self.namespace, &self.pod),
        )
    }

    /// The policy's grant here.
    pub fn grant<'a>(&self, gateway: &'a Gateway) -> Result<crate::policy::Grant<'a>, Denial> {
        gateway
            .hooks
            .policy
            .grant(&self.identity, self.cluster.name(), &self.namespace)
    }
}

/// Reports `action` with the outcome of `result`, and passes `result` on.
pub fn report<T>(
    gateway: &Gateway,
    mut action: Action,
    result: Result<T, ToolkitError>,
) -> Result<T, ToolkitError> {
    if let Err(e) = &result {
        action.outcome = match e {
            ToolkitError::Policy(_) => "denied",
            // Set where the caller's leaving was seen (an upload cut off midway).
            _ if action.outcome == "cancelled" => "cancelled",
            _ => "failed",
        };
        action.reason = Some(match e {
            ToolkitError::Upstream(u) => u.reason(),
            other => other.to_string(),
        });
    }
    gateway.action(&action);
    result
}

/// `GET …/pods/{pod}/log`: the query parsed as the API server reads it, judged by the policy
/// (`logs`), audited, and sent as the caller in podterm's own encoding; the cluster's answer
/// (a stream while following) passes back as it comes.
pub async fn logs(
    gateway: &Gateway,
    req: &Request<Incoming>,
    place: Place,
) -> Result<Response<kube::client::Body>, ToolkitError> {
    let mut action = place.action("logs.read");
    let result = async {
        let query = LogQuery::parse(req.uri().query().unwrap_or(""))?;
        action.container.clone_from(&query.container);
        action.detail = serde_json::to_value(&query).unwrap_or_default();
        let grant = place.grant(gateway)?;
        action.rule = grant.rule.map(str::to_string);
        grant.judge_logs()?;
        let path = query.path(&place.namespace, &place.pod);
        Ok(place
            .cluster
            .get(&path, req.headers(), gateway.act_as(&place.identity))
            .await?)
    }
    .await;
    report(gateway, action, result)
}

/// The part of a `kubectl debug` patch podterm reads: the ephemeral containers to exist.
#[derive(Debug, Deserialize)]
struct PatchFile {
    spec: Option<PatchSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchSpec {
    #[serde(default)]
    ephemeral_containers: Vec<DebugContainer>,
}

/// One debug container as podterm admits it: these fields and nothing else reach the cluster
/// (no security context, no volume mounts, no environment), so a patch cannot ask for
/// privileges the policy never saw.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DebugContainer {
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_container_name: Option<String>,
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub tty: bool,
}

/// A debug request, parsed once: the containers the patch names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugPatch {
    pub containers: Vec<DebugContainer>,
}

impl DebugPatch {
    /// Reads a strategic merge patch or a JSON merge patch of `spec.ephemeralContainers`.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<DebugPatch, ToolkitError> {
        if !matches!(
            content_type,
            "application/strategic-merge-patch+json" | "application/merge-patch+json"
        ) {
            return Err(ToolkitError::BadRequest(format!(
                "podterm takes a strategic merge patch or a JSON merge patch of spec.ephemeralContainers, not {content_type:?}"
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ToolkitError::BadRequest(format!("the patch is not JSON: {e}")))?;
        let only_spec = value
            .as_object()
            .is_some_and(|o| o.keys().all(|k| k == "spec"))
            && value["spec"].as_object().is_some_and(|o| {
                // kubectl adds the list's order when the pod has ephemeral containers already.
                o.keys().all(|k| {
                    k == "ephemeralContainers" || k == "$setElementOrder/ephemeralContainers"
                })
            });
        if !only_spec {
            return Err(ToolkitError::BadRequest(
                "a debug patch may change spec.ephemeralContainers only".into(),
            ));
        }
        let file: PatchFile = serde_json::from_value(value)
            .map_err(|e| ToolkitError::BadRequest(format!("the patch does not parse: {e}")))?;
        let containers = file
            .spec
            .map(|s| s.ephemeral_containers)
            .unwrap_or_default();
        if containers.is_empty() {
            return Err(ToolkitError::BadRequest(
                "the patch names no ephemeral container".into(),
            ));
        }
        Ok(DebugPatch { containers })
    }

    /// The strategic merge patch podterm sends: only the admitted fields.
    pub fn encode(&self) -> Vec<u8> {
        let containers: Vec<serde_json::Value> = self
            .containers
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                v["terminationMessagePolicy"] = json!("File");
                v["resources"] = json!({});
                v
            })
            .collect();
        serde_json::to_vec(&json!({"spec": {"ephemeralContainers": containers}}))
            .unwrap_or_default()
    }
}

/// `GET`/`PATCH …/pods/{pod}/ephemeralcontainers`: reads pass as the caller; a patch is parsed
/// ([`DebugPatch`]), each container's image judged (`debug.images`, shell only), audited
/// (`debug.create`) and sent re-encoded as the caller.
pub async fn ephemeral(
    gateway: &Gateway,
    req: Request<Incoming>,
    place: Place,
) -> Result<Response<kube::client::Body>, ToolkitError> {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/ephemeralcontainers",
        place.namespace, place.pod
    );
    let act_as = gateway.act_as(&place.identity);
    if req.method() == Method::GET {
        return Ok(place.cluster.get(&path, req.headers(), act_as).await?);
    }
    if req.method() != Method::PATCH {
        return Err(ToolkitError::BadRequest(
            "ephemeral containers are read with GET and added with PATCH".into(),
        ));
    }
    let mut action = place.action("debug.create");
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let body = http_body_util::Limited::new(req.into_body(), MAX_PATCH_BYTES)
        .collect()
        .await
        .map(|b| b.to_bytes());
    let result = async {
        let body = body.map_err(|e| ToolkitError::BadRequest(format!("the patch: {e}")))?;
        let patch = DebugPatch::parse(&content_type, &body)?;
        action.detail = json!({"containers": &patch.containers});
        action.container = patch.containers.first().map(|c| c.name.clone());
        let grant = place.grant(gateway)?;
        action.rule = grant.rule.map(str::to_string);
        for c in &patch.containers {
            grant.judge_debug(&c.image)?;
        }
        let res = place
            .cluster
            .request(
                Method::PATCH,
                &path,
                Some("application/strategic-merge-patch+json"),
                Bytes::from(patch.encode()),
                act_as,
            )
            .await?;
        if !res.status().is_success() {
            action.outcome = "failed";
            action.reason = Some(format!("the cluster answered {}", res.status()));
        }
        Ok(res)
    }
    .await;
    report(gateway, action, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_debug_patches_are_read_and_reencoded() {
        let kubectl = br#"{"spec":{"ephemeralContainers":[{"image":"busybox:1.36","name":"debugger-k6tkw","resources":{},"stdin":true,"targetContainerName":"app","terminationMessagePolicy":"File","tty":true}]}}"#;
        let p = DebugPatch::parse("application/strategic-merge-patch+json", kubectl).unwrap();
        assert_eq!(p.containers[0].image, "busybox:1.36");
        assert_eq!(
            p.containers[0].target_container_name.as_deref(),
            Some("app")
        );
        let again =
            DebugPatch::parse("application/strategic-merge-patch+json", &p.encode()).unwrap();
        assert_eq!(again, p);
        // Privileges the policy never saw are not passed on.
        let privileged = br#"{"spec":{"ephemeralContainers":[{"image":"busybox","name":"d","securityContext":{"privileged":true}}]}}"#;
        let p = DebugPatch::parse("application/merge-patch+json", privileged).unwrap();
        assert!(
            !String::from_utf8(p.encode())
                .unwrap()
                .contains("privileged")
        );
        for bad in [
            &br#"{"spec":{"containers":[]}}"#[..],
            br#"{"metadata":{"labels":{"a":"b"}},"spec":{"ephemeralContainers":[{"name":"d","image":"x"}]}}"#,
            br#"{"spec":{"ephemeralContainers":[]}}"#,
            b"not json",
        ] {
            assert!(
                DebugPatch::parse("application/strategic-merge-patch+json", bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(DebugPatch::parse("application/json-patch+json", kubectl).is_err());
    }
}
