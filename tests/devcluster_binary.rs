//! `podterm dev-cluster` as a process: configuration from PODTERM_DEV_* variables (a manifest
//! replacing the built-in pods, plain HTTP), one log line per request, clean exit on SIGTERM
//! (ending sessions and their processes), and exit 64 naming the variable on bad values.

#[path = "support/devcluster.rs"]
mod support;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const MANIFEST: &str = "\
namespaces: [lab]
pods:
  - namespace: lab
    name: box-0
    containers:
      - name: main
        image: example/box:1
rules: []
";

fn dev_cluster(dir: &std::path::Path, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podterm"));
    cmd.arg("dev-cluster")
        .current_dir(dir)
        .env("PODTERM_DEV_CLUSTER_LISTEN", "127.0.0.1:0")
        .env_remove("PODTERM_LOG_FORMAT")
        .env_remove("PODTERM_LOG")
        .env_remove("PODTERM_DEV_KUBECONFIG")
        .env_remove("PODTERM_DEV_CLUSTER_MANIFEST")
        .env_remove("PODTERM_DEV_CLUSTER_TLS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

/// Starts it and waits for the two lines that say where it is (printed once it serves).
async fn start(mut cmd: Command) -> (Child, String, String) {
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = String::new();
    let mut kubeconfig = String::new();
    while url.is_empty() || kubeconfig.is_empty() {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("started within 10 s")
            .unwrap()
            .expect("a line");
        if let Some(u) = line.strip_prefix("dev cluster: ") {
            url = u.to_string();
        } else if let Some(k) = line.strip_prefix("kubeconfig: ") {
            kubeconfig = k.to_string();
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url, kubeconfig)
}

async fn kubectl(dir: &std::path::Path, kubeconfig: &str, args: &[&str]) -> std::process::Output {
    Command::new(support::kubectl_bin("1.33"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HOME", dir)
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

fn sigterm(child: &Child) {
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_manifest_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.yaml"), MANIFEST).unwrap();
    let cmd = dev_cluster(dir.path(), &[("PODTERM_DEV_CLUSTER_MANIFEST", "lab.yaml")]);
    let (mut child, url, kubeconfig) = start(cmd).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    // The default kubeconfig path is relative to the working directory.
    assert_eq!(kubeconfig, "podterm-dev.kubeconfig");
    let kubeconfig = dir.path().join(kubeconfig).display().to_string();
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains(&format!("server: {url}")), "{text}");
    assert!(text.contains("certificate-authority-data:"));

    let out = kubectl(dir.path(), &kubeconfig, &["get", "pods", "-A"]).await;
    let stdout = support::text(&out.stdout);
    assert!(
        stdout.contains("lab") && stdout.contains("box-0"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("web-0"),
        "the manifest replaces the built-in pods: {stdout}"
    );

    // A long exec in flight when SIGTERM comes: the process goes with the dev cluster.
    let mut exec = Command::new(support::kubectl_bin("1.33"))
        .args([
            "--kubeconfig",
            &kubeconfig,
            "-n",
            "lab",
            "exec",
            "box-0",
            "--",
            "sh",
            "-c",
            "echo $$; exec sleep 1000",
        ])
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut exec_out = BufReader::new(exec.stdout.take().unwrap()).lines();
    let pid: u32 = exec_out
        .next_line()
        .await
        .unwrap()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exited within 10 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the session's process is gone"
    );
    let _ = tokio::time::timeout(Duration::from_secs(10), exec.wait()).await;

    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();
    // One JSON line per request: method, path, user, status.
    let request = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["path"] == "/api/v1/pods")
        .unwrap_or_else(|| panic!("no request log line in {stderr}"));
    assert_eq!(request["method"], "GET");
    assert_eq!(request["user"], "podterm-dev-admin");
    assert_eq!(request["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_plain_http_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("sub/plain.kubeconfig");
    let cmd = dev_cluster(
        dir.path(),
        &[
            ("PODTERM_DEV_CLUSTER_TLS", "false"),
            ("PODTERM_DEV_KUBECONFIG", kubeconfig.to_str().unwrap()),
        ],
    );
    let (mut child, url, written) = start(cmd).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(written, kubeconfig.display().to_string());
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(!text.contains("certificate-authority-data"), "{text}");
    // kubectl sends no bearer token over plain HTTP, so ask by hand.
    let config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let token = config["users"][0]["user"]["token"].as_str().unwrap();
    let addr = url.strip_prefix("http://").unwrap();
    let get = |auth: String| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /api/v1/namespaces/default/pods/tools HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
        );
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response)
            .await
            .unwrap();
        response
    };
    let response = get(format!("Authorization: Bearer {token}\r\n")).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"name\":\"tools\""), "{response}");
    let response = get(String::new()).await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    sigterm(&child);
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
}

#[tokio::test]
async fn bad_configuration_exits_64_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "namespaces: [a]\npods: [{namespace: b, name: p, containers: [{name: c}]}]\n",
    )
    .unwrap();
    for (name, value) in [
        ("PODTERM_DEV_CLUSTER_LISTEN", "not-an-address"),
        ("PODTERM_DEV_CLUSTER_TLS", "sometimes"),
        ("PODTERM_DEV_CLUSTER_MANIFEST", "missing.yaml"),
        ("PODTERM_DEV_CLUSTER_MANIFEST", "bad.yaml"),
    ] {
        let out = dev_cluster(dir.path(), &[(name, value)])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{name}={value}");
        let stderr = support::text(&out.stderr);
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

#[tokio::test]
async fn sigterm_the_moment_it_says_where_it_is_still_exits_0() {
    // The handlers must be in before it says where it is: a SIGTERM right after that (a
    // supervisor, a test) used to find none now and then and kill the process instead (exit
    // by signal).
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, _, _) = start(dev_cluster(dir.path(), &[])).await;
        sigterm(&child);
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("exited within 10 s")
            .unwrap();
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}
