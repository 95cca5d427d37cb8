//! The dev cluster's API objects as JSON: v1 Pod, Namespace, their lists and `Table`s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use super::manifest::{Container, Manifest, Pod};

/// The resource version of lists and of pods without ephemeral containers (the manifest's
/// objects never change; a pod's version counts the ephemeral containers added to it).
const RESOURCE_VERSION: &str = "1";

/// The ephemeral containers added to each pod (`namespace/name`), oldest first.
pub type Ephemeral = Mutex<HashMap<(String, String), Vec<Container>>>;

/// What is known about the objects beyond the manifest: when they were "created", and the
/// ephemeral containers added since.
pub struct Objects {
    pub manifest: Manifest,
    pub created: SystemTime,
    /// Distinguishes the uids of one start from the next.
    pub instance: u64,
    pub node_ip: String,
    pub ephemeral: Ephemeral,
    /// Each pod (`namespace`, `name`) that changed (an ephemeral container added), for
    /// watches.
    pub changes: tokio::sync::broadcast::Sender<(String, String)>,
}

impl Objects {
    /// The pod `namespace/name` as it is now: the manifest's, with its ephemeral containers.
    pub fn pod_now(&self, namespace: &str, name: &str) -> Option<Cow<'_, Pod>> {
        let pod = self.manifest.pod(namespace, name)?;
        let added = self.ephemeral.lock().unwrap_or_else(|e| e.into_inner());
        match added.get(&(namespace.to_string(), name.to_string())) {
            Some(list) if !list.is_empty() => {
                let mut pod = pod.clone();
                pod.ephemeral_containers.clone_from(list);
                Some(Cow::Owned(pod))
            }
            _ => Some(Cow::Borrowed(pod)),
        }
    }

    /// Every pod as it is now.
    pub fn pods_now(&self) -> Vec<Cow<'_, Pod>> {
        self.manifest
            .pods
            .iter()
            .filter_map(|p| self.pod_now(&p.namespace, &p.name))
            .collect()
    }

    fn timestamp(&self) -> String {
        rfc3339(self.created)
    }

    fn uid(&self, kind: &str, namespace: &str, name: &str) -> String {
        // Stable within one start, different across starts, uuid-shaped.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.instance;
        for b in kind.bytes().chain(namespace.bytes()).chain(name.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        let lo = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            h >> 32,
            (h >> 16) & 0xffff,
            h & 0xfff,
            lo >> 52,
            lo & 0xffff_ffff_ffff
        )
    }

    /// A v1 Pod as the API server returns it.
    pub fn pod(&self, pod: &Pod) -> Value {
        let ts = self.timestamp();
        let spec = |c: &Container| {
            let mut v = json!({
                "name": c.name,
                "image": c.image(),
                "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "resources": {},
                "stdin": true,
                "tty": true,
            });
            if let Some(sc) = &c.security_context {
                let mut ctx = serde_json::Map::new();
                if let Some(u) = sc.run_as_user {
                    ctx.insert("runAsUser".into(), u.into());
                    ctx.insert("runAsNonRoot".into(), (u != 0).into());
                }
                if let Some(g) = sc.run_as_group {
                    ctx.insert("runAsGroup".into(), g.into());
                }
                v["securityContext"] = Value::Object(ctx);
            }
            if let Some(command) = &c.command {
                v["command"] = json!(command);
            }
            if let Some(target) = &c.target_container {
                v["targetContainerName"] = json!(target);
            }
            v
        };
        let containers: Vec<Value> = pod.containers.iter().map(spec).collect();
        let status = |c: &Container, state: Value| {
            let restarted = c.logs.as_ref().is_some_and(|l| l.restarted);
            json!({
                "name": c.name,
                "image": c.image(),
                "imageID": "",
                "containerID": format!("podterm://{}", self.uid("container", &pod.name, &c.name)),
                "ready": state.get("running").is_some(),
                "started": state.get("running").is_some(),
                "restartCount": u32::from(restarted),
                "state": state,
                "lastState": if restarted {
                    json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ts, "finishedAt": ts}})
                } else {
                    json!({})
                },
            })
        };
        let running = json!({"running": {"startedAt": ts}});
        let statuses: Vec<Value> = pod
            .containers
            .iter()
            .map(|c| status(c, running.clone()))
            .collect();
        let completed = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": ts, "finishedAt": ts}});
        let init_statuses: Vec<Value> = pod
            .init_containers
            .iter()
            .map(|c| status(c, completed.clone()))
            .collect();
        let ephemeral_statuses: Vec<Value> = pod
            .ephemeral_containers
            .iter()
            .map(|c| {
                let mut v = status(c, running.clone());
                // Ephemeral container statuses carry no ready/started.
                if let Some(o) = v.as_object_mut() {
                    o.remove("ready");
                    o.remove("started");
                }
                v
            })
            .collect();
        let version = if pod.ephemeral_containers.is_empty() {
            RESOURCE_VERSION.to_string()
        } else {
            (1 + pod.ephemeral_containers.len()).to_string()
        };
        let ready = |status| json!({"type": status, "status": "True", "lastProbeTime": null, "lastTransitionTime": ts});
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": pod.name,
                "namespace": pod.namespace,
                "uid": self.uid("Pod", &pod.namespace, &pod.name),
                "resourceVersion": version,
                "creationTimestamp": ts,
                "labels": pod.labels,
                "annotations": shell_annotation(pod),
            },
            "spec": {
                "containers": containers,
                "initContainers": pod.init_containers.iter().map(spec).collect::<Vec<_>>(),
                "ephemeralContainers": pod.ephemeral_containers.iter().map(spec).collect::<Vec<_>>(),
                "restartPolicy": "Always",
                // Defaulted to {} by the API server; kubectl debug reads into it.
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "nodeName": "podterm-dev",
                "schedulerName": "default-scheduler",
                "enableServiceLinks": true,
            },
            "status": {
                "phase": "Running",
                "conditions": [ready("Initialized"), ready("Ready"), ready("ContainersReady"), ready("PodScheduled")],
                "hostIP": self.node_ip,
                "podIP": self.node_ip,
                "podIPs": [{"ip": self.node_ip}],
                "startTime": ts,
                "containerStatuses": statuses,
                "initContainerStatuses": init_statuses,
                "ephemeralContainerStatuses": ephemeral_statuses,
                "qosClass": "BestEffort",
            },
        })
    }

    /// A v1 PodList of `pods`.
    pub fn pod_list<'a>(&self, pods: impl Iterator<Item = &'a Pod>) -> Value {
        let items: Vec<Value> = pods.map(|p| self.pod(p)).collect();
        json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": RESOURCE_VERSION},
            "items": items,
        })
    }

    /// A v1 Namespace.
    pub fn namespace(&self, name: &str) -> Value {
        json!({
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": self.uid("Namespace", "", name),
                "resourceVersion": RESOURCE_VERSION,
                "creationTimestamp": self.timestamp(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        })
    }

    pub fn namespace_list(&self, names: &[&str]) -> Value {
        let items: Vec<Value> = names.iter().map(|n| self.namespace(n)).collect();
        json!({
            "kind": "NamespaceList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": RESOURCE_VERSION},
            "items": items,
        })
    }

    /// A `meta.k8s.io/v1` Table of pods, as `kubectl get pods` asks for.
    pub fn pod_table<'a>(&self, pods: impl Iterator<Item = &'a Pod>) -> Value {
        let age = self.age();
        let rows: Vec<Value> = pods
            .map(|p| {
                let n = p.containers.len();
                json!({
                    "cells": [p.name, format!("{n}/{n}"), "Running", 0, age],
                    "object": partial_metadata(&self.pod(p)),
                })
            })
            .collect();
        table(
            &[
                ("Name", "string", "name"),
                ("Ready", "string", ""),
                ("Status", "string", ""),
                ("Restarts", "integer", ""),
                ("Age", "string", ""),
            ],
            rows,
        )
    }

    /// A `meta.k8s.io/v1` Table of namespaces.
    pub fn namespace_table(&self, names: &[&str]) -> Value {
        let age = self.age();
        let rows: Vec<Value> = names
            .iter()
            .map(|n| {
                json!({
                    "cells": [n, "Active", age],
                    "object": partial_metadata(&self.namespace(n)),
                })
            })
            .collect();
        table(
            &[
                ("Name", "string", "name"),
                ("Status", "string", ""),
                ("Age", "string", ""),
            ],
            rows,
        )
    }

    fn age(&self) -> String {
        human_duration(self.created.elapsed().unwrap_or_default())
    }
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"],
    })
}

fn table(columns: &[(&str, &str, &str)], rows: Vec<Value>) -> Value {
    let defs: Vec<Value> = columns
        .iter()
        .map(|(name, ty, format)| {
            json!({"name": name, "type": ty, "format": format, "description": "", "priority": 0})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": RESOURCE_VERSION},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// Whether an `Accept` header asks for a `Table` (as `kubectl get` does).
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    })
}

/// Ages as kubectl shows them: `45s`, `12m`, `5h`, `3d`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `2024-05-01T12:00:00Z` (seconds precision, UTC), as Kubernetes timestamps are written.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = crate::protocol::time::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `podterm.dev/shell: none` on a pod whose containers are all builtins (no process, no
/// shell): the page does not preselect it. Platform teams may set it on distroless pods.
fn shell_annotation(pod: &Pod) -> Value {
    if !pod.containers.is_empty()
        && pod
            .containers
            .iter()
            .all(|c| c.builtin.is_some() || c.distroless)
    {
        json!({ SHELL_ANNOTATION: "none" })
    } else {
        json!({})
    }
}

/// The annotation that says a pod has no shell to open.
pub const SHELL_ANNOTATION: &str = "podterm.dev/shell";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn ages() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5s");
        assert_eq!(human_duration(Duration::from_secs(600)), "10m");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(human_duration(Duration::from_secs(5 * 86_400)), "5d");
    }

    #[test]
    fn table_negotiation() {
        assert!(wants_table(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        )));
        assert!(!wants_table(Some("application/json")));
        assert!(!wants_table(None));
    }

    #[test]
    fn pods_look_like_v1_pods() {
        let objects = Objects {
            manifest: Manifest::builtin(),
            created: SystemTime::now(),
            instance: 7,
            node_ip: "127.0.0.1".into(),
            ephemeral: Ephemeral::default(),
            changes: tokio::sync::broadcast::channel(16).0,
        };
        let web = objects.manifest.pod("default", "web-0").unwrap();
        let pod = objects.pod(web);
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(pod["metadata"]["namespace"], "default");
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(pod["spec"]["containers"][1]["name"], "sidecar");
        assert_eq!(pod["status"]["containerStatuses"][0]["ready"], true);
        let uid = pod["metadata"]["uid"].as_str().unwrap();
        assert_eq!(uid.len(), 36, "{uid}");
        assert_ne!(
            uid,
            objects.pod(objects.manifest.pod("default", "tools").unwrap())["metadata"]["uid"]
        );
    }
}
