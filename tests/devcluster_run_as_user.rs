//! `securityContext.runAsUser`/`runAsGroup` in the manifest: the container's processes run as
//! that user (when the dev cluster runs as root; otherwise the exec fails with a status that
//! says why), and the pod's JSON shows the security context.

#[path = "support/wsclient.rs"]
mod wsclient;

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

    let root = rustix::process::geteuid().is_root();
    let own_uid = rustix::process::geteuid().as_raw();
    let path = |container: &str, tty: bool| {
        format!(
            "/api/v1/namespaces/default/pods/locked/exec?container={container}&command=sh&command=-c\
             &command=id%20-u;%20id%20-g;%20touch%20here%20%26%26%20echo%20writable&stdout=true&stderr=true&tty={tty}"
        )
    };
    for tty in [false, true] {
        let mut ws = client.exec(&path("app", tty)).await;
        send(&mut ws, 4, br#"{"Width":80,"Height":24}"#).await;
        let t = read_all(&mut ws).await;
        if root {
            let out = t.stdout_text();
            let lines: Vec<&str> = out.lines().map(str::trim).collect();
            assert_eq!(
                lines,
                ["1000", "2000", "writable"],
                "tty={tty}: {:?}",
                t.stderr
            );
            assert_eq!(t.exit_code(), Some(0));
        } else {
            let status = t.status.expect("a status");
            assert_eq!(status.code, 500);
            assert!(status.message.contains("root"), "{}", status.message);
        }
    }
    // Without runAsUser (or with the dev cluster's own uid) it runs as the dev cluster's user.
    let mut ws = client.exec(&path("plain", false)).await;
    let t = read_all(&mut ws).await;
    assert_eq!(
        t.stdout_text().lines().next(),
        Some(own_uid.to_string().as_str())
    );
    let mut ws = client.exec(&path("as-root", false)).await;
    let t = read_all(&mut ws).await;
    if root {
        assert_eq!(t.stdout_text().lines().next(), Some("0"));
    } else {
        assert_eq!(t.status.unwrap().code, 500);
    }
    cluster.shutdown().await;
}
