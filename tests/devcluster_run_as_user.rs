//! `securityContext.runAsUser`/`runAsGroup` in the manifest: inside the container `id -u` and
//! `id -g` show the configured user and group and the working directory is writable — for real
//! when the dev cluster runs as root, through a user namespace when it does not (checked by
//! running the binary as `nobody` when this test runs as root); the pod's JSON shows them.

#[path = "support/wsclient.rs"]
mod wsclient;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use podterm::devcluster::{DevCluster, DevClusterConfig};
use wsclient::{Client, read_all, send};

const MANIFEST: &str = "\
namespaces: [default]
pods:
  - namespace: default
    name: locked
    containers:
      - name: app
        securityContext: {runAsUser: 1000, runAsGroup: 2000}
      - name: as-root
        securityContext: {runAsUser: 0}
      - name: plain
";

/// Runs `id -u; id -g; touch` in each container (with and without a tty) and checks the ids.
async fn check_ids(client: &Client, own_uid: u32) {
    let path = |container: &str, tty: bool| {
        format!(
            "/api/v1/namespaces/default/pods/locked/exec?container={container}&command=sh&command=-c\
             &command=id%20-u%3B%20id%20-g%3B%20touch%20here%20%26%26%20echo%20writable&stdout=true&stderr=true&tty={tty}"
        )
    };
    for tty in [false, true] {
        let mut ws = client.exec(&path("app", tty)).await;
        send(&mut ws, 4, br#"{"Width":80,"Height":24}"#).await;
        let t = read_all(&mut ws).await;
        let out = t.stdout_text();
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(lines, ["1000", "2000", "writable"], "tty={tty}: {t:?}");
        assert_eq!(t.exit_code(), Some(0));
    }
    let mut ws = client.exec(&path("as-root", false)).await;
    let t = read_all(&mut ws).await;
    assert_eq!(t.stdout_text().lines().next(), Some("0"), "{t:?}");
    // Without runAsUser it runs as the dev cluster's own user.
    let mut ws = client.exec(&path("plain", false)).await;
    let t = read_all(&mut ws).await;
    assert_eq!(
        t.stdout_text().lines().next(),
        Some(own_uid.to_string().as_str()),
        "{t:?}"
    );
}

#[tokio::test]
async fn processes_run_as_the_configured_user() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let mut config = DevClusterConfig::ephemeral(dir.path().join("k"));
    config.manifest = Some(manifest);
    let cluster = DevCluster::start(config).await.unwrap();
    let client = Client::new(&cluster);

    let (_, body) = client.get("/api/v1/namespaces/default/pods/locked").await;
    let pod: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["securityContext"]["runAsUser"],
        1000
    );
    assert_eq!(
        pod["spec"]["containers"][0]["securityContext"]["runAsGroup"],
        2000
    );
    assert_eq!(
        pod["spec"]["containers"][1]["securityContext"]["runAsUser"],
        0
    );

    check_ids(&client, rustix::process::geteuid().as_raw()).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_root_the_user_comes_from_a_user_namespace() {
    const NOBODY: u32 = 65534;
    if !rustix::process::geteuid().is_root() {
        // Then the test above already ran the non-root path.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    std::fs::write(dir.path().join("m.yaml"), MANIFEST).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_podterm"))
        .arg("dev-cluster")
        .current_dir(dir.path())
        .env("PODTERM_DEV_CLUSTER_LISTEN", "127.0.0.1:0")
        .env("PODTERM_DEV_CLUSTER_MANIFEST", "m.yaml")
        .env("PODTERM_LOG", "warn")
        .env("HOME", dir.path())
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let kubeconfig = loop {
        let line = lines.next().expect("a line").unwrap();
        if let Some(path) = line.strip_prefix("kubeconfig: ") {
            break dir.path().join(path);
        }
    };
    let client = Client::from_kubeconfig(&kubeconfig);
    check_ids(&client, NOBODY).await;
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
