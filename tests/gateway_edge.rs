//! The edge's smaller promises (issue 16: M2, L1, L4): `podterm dev` answers only loopback
//! hosts and origins (no DNS rebinding), `/metrics` needs the proxy secret, and
//! `podterm policy check` flags allow entries that hand out code execution.

#[path = "support/gateway.rs"]
mod support;

use support::{Stack, exec, get, podterm_dev};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn podterm_dev_answers_loopback_hosts_only() {
    let (_child, addr, _) = podterm_dev(&[]).await;
    let pods = "/clusters/dev/api/v1/namespaces/default/pods";
    assert_eq!(get(addr, pods, &[]).await.code, 200);
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req =
        format!("GET {pods} HTTP/1.1\r\nhost: attacker.example:8080\r\nconnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut rebound = String::new();
    conn.read_to_string(&mut rebound).await.unwrap();
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    assert!(rebound.contains("loopback"), "{rebound}");
    assert_eq!(
        get(addr, pods, &[("host", "attacker.example")]).await.code,
        403
    );
    // A page on another loopback port may not open a session either.
    let path = format!(
        "{}/exec?container=app&command=id&stdout=true",
        pods.replacen("pods", "pods/web-0", 1)
    );
    let cross = exec(
        addr,
        &path,
        &[("origin", "http://evil.example")],
        "v5.channel.k8s.io",
    )
    .await;
    assert_eq!(cross.err().map(|r| r.code), Some(403));
}

#[tokio::test]
async fn metrics_need_the_proxy_secret() {
    let stack = Stack::start(&[("PODTERM_PROXY_SECRET", "s3cret")]).await;
    assert_eq!(get(stack.addr, "/metrics", &[]).await.code, 401);
    let ok = get(
        stack.addr,
        "/metrics",
        &[("x-podterm-proxy-secret", "s3cret")],
    )
    .await;
    assert_eq!(ok.code, 200);
    assert_eq!(get(stack.addr, "/healthz", &[]).await.code, 200);
}

fn policy_check(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_podterm"))
        .args(["policy", "check", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn policy_check_flags_code_execution() {
    let (code, out) = policy_check(
        "rules: [{groups: [support], mode: restricted, allow: [[jstack, \"*\"], [cat, \"/proc/*/status\"]]}]",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("jstack") && out.contains("-J"), "{out}");
    assert!(!out.contains("\"cat\""), "{out}");
    let (code, out) = policy_check(
        "rules: [{groups: [support], mode: restricted, allow: [[jstack, \"[0-9]*\"]]}]",
    );
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = policy_check("rules: [{groups: [x], mode: sometimes}]");
    assert_eq!(code, Some(64), "{out}");
}
