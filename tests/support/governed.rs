//! Test support for policy and audit: a dev cluster with a manifest of one's own, a gateway in
//! this process whose hooks come from its `PODTERM_*` variables (policy file, limits, audit
//! file, recordings), and a way to wait for sessions to end. Include beside support/gateway.rs.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use podterm::cluster::Clusters;
use podterm::config::Config;
use podterm::devcluster::{DevCluster, DevClusterConfig};
use podterm::events::{SessionInfo, SessionObserver};
use podterm::gateway::Gateway;
use podterm::gateway::Hooks;
use podterm::relay::Summary;
use podterm::server;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Pods for policy tests: `app-0` has a container running as the dev cluster's own user
/// (`app`), one as uid 1000 (`nonroot`) and one as uid 0 (`root`; without root privileges the
/// dev cluster shows these users through a user namespace).
pub const MANIFEST: &str = r#"
namespaces: [default, prod]
pods:
  - namespace: default
    name: app-0
    containers:
      - name: app
      - name: nonroot
        securityContext: {runAsUser: 1000}
      - name: root
        securityContext: {runAsUser: 0}
  - namespace: prod
    name: api-0
    containers:
      - name: app
rules:
  - groups: [devs, support, auditors]
    resources: [pods, pods/exec, namespaces]
    verbs: [get, list, create]
"#;

/// The uid the `nonroot` container runs as.
pub const NONROOT_UID: u32 = 1000;

/// The policy the tests run under.
pub const POLICY: &str = r#"
rules:
  - name: devs
    groups: [devs]
    namespaces: [default]
    mode: shell
  - name: support
    groups: [support]
    mode: restricted
    allow:
      - [printf, "%s|", "*"]
      - [cat, "/proc/*/status"]
  - name: auditors
    groups: [auditors]
    mode: restricted
    allow:
      - [id, "-u"]
    deny_root: true
  - name: local
    users: [dev]
    mode: restricted
    allow:
      - [printf, "%s|", "*"]
      - [id, "-u"]
    deny_root: true
"#;

/// A dev cluster, and the directory holding its kubeconfig, the policy and audit files.
pub struct Governed {
    pub cluster: DevCluster,
    pub dir: tempfile::TempDir,
}

impl Governed {
    pub async fn start() -> Governed {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest_file = dir.path().join("manifest.yaml");
        std::fs::write(&manifest_file, MANIFEST).unwrap();
        std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
        let mut config = DevClusterConfig::ephemeral(dir.path().join("dev.kubeconfig"));
        config.manifest = Some(manifest_file);
        let cluster = DevCluster::start(config).await.expect("dev cluster starts");
        Governed { cluster, dir }
    }

    pub fn policy_file(&self) -> PathBuf {
        self.dir.path().join("policy.yaml")
    }

    /// A gateway with the test policy, auditing to `<dir>/<name>.audit.jsonl`, plus `vars`.
    pub async fn gateway(&self, name: &str, vars: &[(&str, &str)]) -> Front {
        let audit = self.dir.path().join(format!("{name}.audit.jsonl"));
        let mut all: Vec<(String, String)> = vec![
            ("PODTERM_LISTEN".into(), "127.0.0.1:0".into()),
            (
                "PODTERM_POLICY_FILE".into(),
                self.policy_file().display().to_string(),
            ),
            ("PODTERM_AUDIT_FILE".into(), audit.display().to_string()),
        ];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_vars(all).expect("gateway config");
        let clusters = Clusters::from_kubeconfig_file(&self.cluster.kubeconfig, &[])
            .await
            .expect("clusters");
        let mut hooks = Hooks::from_config(&config).expect("hooks from the config");
        let (tx, ended) = mpsc::unbounded_channel();
        hooks.observers.push(Arc::new(Ends(tx)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = Arc::new(Gateway::with_hooks(config, clusters, hooks));
        tokio::spawn(server::run(listener, gateway.clone()));
        Front {
            gateway,
            addr,
            audit,
            ended,
        }
    }
}

/// A gateway under test.
pub struct Front {
    pub gateway: Arc<Gateway>,
    pub addr: SocketAddr,
    pub audit: PathBuf,
    ended: mpsc::UnboundedReceiver<(String, Summary)>,
}

impl Front {
    /// Waits for the next session to end (its observers all ran): its id and summary.
    pub async fn next_end(&mut self) -> (String, Summary) {
        tokio::time::timeout(Duration::from_secs(30), self.ended.recv())
            .await
            .expect("a session ended within 30 s")
            .expect("the gateway is running")
    }

    /// Every audit line written so far, parsed.
    pub async fn audit_lines(&self) -> Vec<serde_json::Value> {
        self.gateway
            .hooks
            .audit
            .as_ref()
            .expect("audited")
            .sync()
            .await;
        read_lines(&self.audit)
    }

    pub fn server(&self) -> String {
        format!("http://{}/clusters/dev", self.addr)
    }
}

pub fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

struct Ends(mpsc::UnboundedSender<(String, Summary)>);

impl SessionObserver for Ends {
    fn ended(&self, s: &SessionInfo, summary: &Summary) {
        let _ = self.0.send((s.id.clone(), summary.clone()));
    }
}

/// Trusted identity headers for `user` in `groups`.
pub fn who<'a>(user: &'a str, groups: &'a str) -> [(&'static str, &'a str); 2] {
    [("x-forwarded-user", user), ("x-forwarded-groups", groups)]
}

/// An exec query: `command` per argument, then `extra` (e.g. `stdout=true`).
pub fn query(container: &str, argv: &[&str], extra: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("container", container);
    for arg in argv {
        q.append_pair("command", arg);
    }
    let mut q = q.finish();
    if !extra.is_empty() {
        q.push('&');
        q.push_str(extra);
    }
    q
}

/// The refusal of an exec that was expected to be refused.
pub fn refusal<T>(result: Result<T, crate::support::Refusal>) -> crate::support::Refusal {
    match result {
        Ok(_) => panic!("the exec was not refused"),
        Err(refusal) => refusal,
    }
}
