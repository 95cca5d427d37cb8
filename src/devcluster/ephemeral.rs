//! `pods/ephemeralcontainers`: debug containers added to a running pod, as `kubectl debug`
//! adds them.
//!
//! `GET` returns the pod. `PATCH` takes a strategic merge patch (kubectl's) or a JSON merge
//! patch of `spec.ephemeralContainers`: containers it names that the pod does not have yet are
//! added; ones it has must come unchanged, since ephemeral containers cannot be changed or
//! removed (the API server's `ValidatePodEphemeralContainersUpdate`). The answer is the pod.
//! A new container runs at once as a process-backed container: its `command` and `args`, or
//! `sh` (the dev cluster pulls no image), under the target container's directory when it
//! names one with `targetContainerName`.

use std::sync::Arc;

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use super::Shared;
use super::auth::{Action, Caller};
use super::manifest::{Container, ContainerKind};
use super::refusal::{Body, Refusal, bytes_response, not_found, refuse};

/// Largest patch body read, in bytes.
pub const MAX_PATCH_BYTES: usize = 1 << 20;

#[derive(Deserialize)]
struct Patch {
    spec: Option<PatchSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchSpec {
    #[serde(default)]
    ephemeral_containers: Vec<EphemeralSpec>,
}

/// The fields of an ephemeral container the dev cluster reads; the rest is accepted as the
/// API server would (resources, termination message policy, security context …).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct EphemeralSpec {
    name: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    target_container_name: Option<String>,
}

pub(crate) async fn serve(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    caller: &Caller,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, Refusal> {
    let rules = &shared.objects.manifest.rules;
    let verb = if req.method() == Method::PATCH {
        "patch"
    } else {
        "get"
    };
    caller.check(
        rules,
        Action {
            verb,
            resource: "pods/ephemeralcontainers",
            name: Some(name),
            namespace: Some(ns),
        },
    )?;
    if shared.objects.pod_now(ns, name).is_none() {
        return Err(not_found("pods", name).into());
    }
    if req.method() == Method::PATCH {
        let content_type = req
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if !matches!(
            content_type.as_str(),
            "application/strategic-merge-patch+json" | "application/merge-patch+json"
        ) {
            return Err(refuse(
                415,
                format!(
                    "the dev cluster takes a strategic merge patch or a JSON merge patch of ephemeral containers, not {content_type:?}"
                ),
            ));
        }
        let body = http_body_util::Limited::new(req.into_body(), MAX_PATCH_BYTES)
            .collect()
            .await
            .map_err(|e| refuse(413, format!("the patch could not be read: {e}")))?
            .to_bytes();
        let patch: Patch = serde_json::from_slice(&body)
            .map_err(|e| refuse(400, format!("the patch is not valid JSON: {e}")))?;
        apply(shared, ns, name, patch)?;
    }
    let pod = shared
        .objects
        .pod_now(ns, name)
        .ok_or_else(|| not_found("pods", name))?;
    let body = serde_json::to_vec(&shared.objects.pod(&pod)).expect("JSON");
    Ok(bytes_response(StatusCode::OK, "application/json", body))
}

fn apply(shared: &Shared, ns: &str, name: &str, patch: Patch) -> Result<(), Refusal> {
    let wanted = patch
        .spec
        .map(|s| s.ephemeral_containers)
        .unwrap_or_default();
    let pod = shared
        .objects
        .pod_now(ns, name)
        .ok_or_else(|| not_found("pods", name))?
        .into_owned();
    let invalid = |message: String| {
        refuse(
            422,
            format!("Pod \"{name}\" is invalid: spec.ephemeralContainers: {message}"),
        )
    };
    let mut added = Vec::new();
    for spec in wanted {
        match pod.find(&spec.name) {
            Some((existing, ContainerKind::Ephemeral)) => {
                if existing.image() != spec.image {
                    return Err(invalid(format!(
                        "Forbidden: existing ephemeral containers \"{}\" may not be changed",
                        spec.name
                    )));
                }
            }
            Some(_) => {
                return Err(invalid(format!(
                    "Duplicate value: \"{}\": a container of that name exists",
                    spec.name
                )));
            }
            None => {
                if spec.image.is_empty() {
                    return Err(invalid(format!(
                        "Required value: container \"{}\" needs an image",
                        spec.name
                    )));
                }
                if let Some(target) = &spec.target_container_name
                    && !pod.containers.iter().any(|c| &c.name == target)
                {
                    return Err(invalid(format!(
                        "Not found: targetContainerName \"{target}\" is not a container of the pod"
                    )));
                }
                let yaml = format!("name: {:?}", spec.name);
                let mut container: Container = serde_saphyr::from_str(&yaml)
                    .map_err(|e| invalid(format!("Invalid value: {e}")))?;
                container.image = Some(spec.image.clone());
                let argv: Vec<String> = spec.command.iter().chain(&spec.args).cloned().collect();
                container.command = (!argv.is_empty()).then_some(argv);
                container.target_container = spec.target_container_name.clone();
                added.push(container);
            }
        }
    }
    if added.is_empty() {
        return Ok(());
    }
    let mut all = shared
        .objects
        .ephemeral
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let list = all.entry((ns.to_string(), name.to_string())).or_default();
    for c in added {
        if !list.iter().any(|e| e.name == c.name) {
            tracing::info!(namespace = ns, pod = name, container = %c.name, image = c.image(), "ephemeral container added");
            list.push(c);
        }
    }
    drop(all);
    // Watches hear of it (none listening is fine).
    let _ = shared
        .objects
        .changes
        .send((ns.to_string(), name.to_string()));
    Ok(())
}
