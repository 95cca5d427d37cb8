//! The dev cluster's manifest: namespaces, pods and their containers, RBAC rules (YAML).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::Deserialize;

/// The built-in manifest, used unless `PODTERM_DEV_CLUSTER_MANIFEST` names another.
pub const DEFAULT_MANIFEST: &str = include_str!("default-manifest.yaml");

/// Image shown for process-backed containers that name none.
pub const DEFAULT_IMAGE: &str = "podterm.dev/process:latest";
/// Image shown for in-process containers that name none.
pub const BUILTIN_IMAGE: &str = "podterm.dev/builtin:latest";

/// Everything the dev cluster serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub pods: Vec<Pod>,
    /// Who may do what when impersonated; anything not allowed is forbidden.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub containers: Vec<Container>,
    /// Shown as completed; they cannot be exec'd into or attached to.
    #[serde(default, rename = "initContainers")]
    pub init_containers: Vec<Container>,
    /// Added at run time through `pods/ephemeralcontainers` (never from the manifest).
    #[serde(skip)]
    pub ephemeral_containers: Vec<Container>,
}

/// Which list of its pod a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Regular,
    Init,
    Ephemeral,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    /// Shown in the pod's JSON only.
    #[serde(default)]
    pub image: Option<String>,
    /// An in-process container instead of a local process.
    #[serde(default)]
    pub builtin: Option<Builtin>,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    /// The container's own process, which `pods/attach` joins (default: `sh`). The dev
    /// cluster starts it for each attach rather than keeping one running.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// No binaries at all (a distroless image): every exec fails as the runtime's would.
    #[serde(default)]
    pub distroless: bool,
    /// What the container logs (`pods/log`); none: an empty log.
    #[serde(default)]
    pub logs: Option<LogSpec>,
    /// An ephemeral container's `targetContainerName`.
    #[serde(skip)]
    pub target_container: Option<String>,
}

/// What a container logs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// One line per this long (`200ms`, `1s`).
    #[serde(deserialize_with = "duration")]
    pub every: Duration,
    /// Lines per log file; the file rotates after that many.
    #[serde(default)]
    pub rotate: Option<u64>,
    /// The container restarted once: `previous=true` reads the earlier instance.
    #[serde(default)]
    pub restarted: bool,
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    let every = humantime::parse_duration(&text).map_err(serde::de::Error::custom)?;
    if every < Duration::from_millis(1) {
        return Err(serde::de::Error::custom("`every` must be at least 1ms"));
    }
    Ok(every)
}

/// In-process containers: cheap enough for thousands of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Builtin {
    /// Copies stdin to stdout; exits 0 at stdin EOF.
    Echo,
    /// Its command is a byte count N: writes N bytes to stdout and exits 0.
    Flood,
    /// A compromised container: `tar cf - -C DIR -- NAME` answers a hostile archive (NAME
    /// picks the attack: `dotdot`, `absolute`, `symlink`, `hardlink`, `device`, `outside`;
    /// anything else gets a clean one-file archive). For testing what podterm refuses.
    HostileTar,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityContext {
    #[serde(default)]
    pub run_as_user: Option<u32>,
    #[serde(default)]
    pub run_as_group: Option<u32>,
}

/// One RBAC grant: subjects (users or groups) × namespaces × resources × verbs. `*` matches
/// anything; no `namespaces` means cluster-wide (all namespaces and cluster-scoped resources).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a valid manifest: {0}")]
    Parse(#[from] serde_saphyr::Error),
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

impl Manifest {
    /// The built-in manifest.
    pub fn builtin() -> Manifest {
        Manifest::parse(DEFAULT_MANIFEST).expect("the built-in manifest is valid")
    }

    /// Reads and checks a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Manifest::parse(&text)
    }

    /// Parses and checks manifest text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = serde_saphyr::from_str(text)?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |m: String| Err(ManifestError::Invalid(m));
        let mut namespaces = HashSet::new();
        for ns in &self.namespaces {
            if !is_dns_label(ns) {
                return invalid(format!("namespace {ns:?} is not a DNS label"));
            }
            if !namespaces.insert(ns.as_str()) {
                return invalid(format!("namespace {ns:?} listed twice"));
            }
        }
        let mut pods = HashSet::new();
        for pod in &self.pods {
            let id = format!("{}/{}", pod.namespace, pod.name);
            if !namespaces.contains(pod.namespace.as_str()) {
                return invalid(format!(
                    "pod {id}: namespace {:?} is not listed",
                    pod.namespace
                ));
            }
            if !is_dns_subdomain(&pod.name) {
                return invalid(format!("pod {id}: name is not a DNS subdomain"));
            }
            if !pods.insert(id.clone()) {
                return invalid(format!("pod {id} listed twice"));
            }
            if pod.containers.is_empty() {
                return invalid(format!("pod {id} has no containers"));
            }
            let mut names = HashSet::new();
            for c in pod.containers.iter().chain(&pod.init_containers) {
                if !is_dns_label(&c.name) {
                    return invalid(format!(
                        "pod {id}: container {:?} is not a DNS label",
                        c.name
                    ));
                }
                if !names.insert(c.name.as_str()) {
                    return invalid(format!("pod {id}: container {:?} listed twice", c.name));
                }
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.users.is_empty() && rule.groups.is_empty() {
                return invalid(format!("rule {i} names no users or groups"));
            }
        }
        Ok(())
    }

    /// The pod `namespace/name`, if listed.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
    }
}

impl Pod {
    /// A container of any kind (regular, init, ephemeral) by name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.find(name).map(|(c, _)| c)
    }

    /// A container of any kind by name, with its kind.
    pub fn find(&self, name: &str) -> Option<(&Container, ContainerKind)> {
        [
            (&self.containers, ContainerKind::Regular),
            (&self.init_containers, ContainerKind::Init),
            (&self.ephemeral_containers, ContainerKind::Ephemeral),
        ]
        .into_iter()
        .find_map(|(list, kind)| list.iter().find(|c| c.name == name).map(|c| (c, kind)))
    }

    pub fn container_names(&self) -> Vec<&str> {
        self.containers.iter().map(|c| c.name.as_str()).collect()
    }
}

impl Container {
    pub fn image(&self) -> &str {
        match (&self.image, self.builtin) {
            (Some(image), _) => image,
            (None, Some(_)) => BUILTIN_IMAGE,
            (None, None) => DEFAULT_IMAGE,
        }
    }

    pub fn run_as_user(&self) -> Option<u32> {
        self.security_context.as_ref()?.run_as_user
    }

    pub fn run_as_group(&self) -> Option<u32> {
        self.security_context.as_ref()?.run_as_group
    }
}

impl Rule {
    /// Whether this rule grants `verb` on `resource` in `namespace` (`None`: cluster scope).
    pub fn allows(
        &self,
        user: &str,
        groups: &[String],
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|v| v == "*" || v == want);
        let subject = any(&self.users, user) || groups.iter().any(|g| any(&self.groups, g));
        let scope = match (&self.namespaces, namespace) {
            (None, _) => true,
            (Some(list), Some(ns)) => any(list, ns),
            (Some(_), None) => false,
        };
        subject && scope && any(&self.resources, resource) && any(&self.verbs, verb)
    }
}

/// RFC 1123 label: lower-case alphanumerics and `-`, at most 63, alphanumeric at both ends.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_has_the_documented_pods() {
        let m = Manifest::builtin();
        assert_eq!(m.namespaces, ["default", "team-a"]);
        let web = m.pod("default", "web-0").unwrap();
        assert_eq!(web.container_names(), ["app", "sidecar"]);
        assert_eq!(
            m.pod("default", "tools").unwrap().container_names(),
            ["shell"]
        );
        assert_eq!(m.pod("team-a", "api-0").unwrap().container_names(), ["app"]);
        let echo = m.pod("default", "echo-0").unwrap();
        assert_eq!(echo.containers[0].builtin, Some(Builtin::Echo));
        let flood = m.pod("default", "flood-0").unwrap();
        assert_eq!(flood.containers[0].builtin, Some(Builtin::Flood));
        assert!(m.pod("team-a", "web-0").is_none());
    }

    #[test]
    fn builtin_rules() {
        let m = Manifest::builtin();
        let allowed = |user: &str, groups: &[&str], verb, resource, ns| {
            let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            m.rules
                .iter()
                .any(|r| r.allows(user, &groups, verb, resource, ns))
        };
        assert!(allowed(
            "alice",
            &["devs"],
            "create",
            "pods/exec",
            Some("default")
        ));
        assert!(allowed("alice", &["devs"], "list", "pods", Some("default")));
        assert!(allowed("alice", &["devs"], "list", "namespaces", None));
        assert!(!allowed(
            "alice",
            &["devs"],
            "create",
            "pods/exec",
            Some("team-a")
        ));
        assert!(!allowed("alice", &["devs"], "list", "pods", None));
        assert!(allowed(
            "bob",
            &["team-a"],
            "get",
            "pods/exec",
            Some("team-a")
        ));
        assert!(!allowed("bob", &["team-a"], "get", "pods", Some("default")));
        assert!(!allowed("eve", &[], "get", "pods", Some("default")));
        assert!(!allowed(
            "eve",
            &["devs"],
            "delete",
            "pods",
            Some("default")
        ));
    }

    #[test]
    fn security_context_and_builtins_parse() {
        let m = Manifest::parse(
            "namespaces: [x]\npods:\n- {namespace: x, name: p, containers: [{name: c, \
             securityContext: {runAsUser: 1000, runAsGroup: 100}}, {name: e, builtin: echo}]}\n",
        )
        .unwrap();
        let pod = m.pod("x", "p").unwrap();
        assert_eq!(pod.containers[0].run_as_user(), Some(1000));
        assert_eq!(pod.containers[0].run_as_group(), Some(100));
        assert_eq!(pod.containers[0].image(), DEFAULT_IMAGE);
        assert_eq!(pod.containers[1].image(), BUILTIN_IMAGE);
    }

    #[test]
    fn invalid_manifests_are_refused() {
        for (text, needle) in [
            (
                "namespaces: [x]\npods: [{namespace: y, name: p, containers: [{name: c}]}]",
                "not listed",
            ),
            (
                "namespaces: [x]\npods: [{namespace: x, name: p, containers: []}]",
                "no containers",
            ),
            (
                "namespaces: [x]\npods: [{namespace: x, name: p, containers: [{name: c}, {name: c}]}]",
                "twice",
            ),
            ("namespaces: [X]", "DNS label"),
            ("namespaces: [x, x]", "twice"),
            (
                "namespaces: [x]\nrules: [{resources: [pods], verbs: [get]}]",
                "no users or groups",
            ),
            ("namespaces: [x]\nbogus: 1", "unknown field"),
            (
                "namespaces: [x]\npods: [{namespace: x, name: p, containers: [{name: c, builtin: nope}]}]",
                "unknown variant",
            ),
        ] {
            let err = Manifest::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
