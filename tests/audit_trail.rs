//! The audit trail through the gateway: every exec that reaches podterm leaves exactly one
//! `session.start` or `session.denied` line and one `session.end` line, each a JSON object with
//! every field; refusals by the policy, by deny_root and by the cluster included; no secret.

#[path = "support/governed.rs"]
mod governed;
#[path = "support/gateway.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use governed::{Governed, query, refusal};
use support::{exec, exec_path, read_to_end};

const V5: &str = "v5.channel.k8s.io";
const SECRET: &str = "proxy-s3cret-value";
const TOKEN: &str = "Bearer client-t0ken-value";

const FIELDS: [&str; 23] = [
    "argv",
    "bytes_in",
    "bytes_out",
    "close_reason",
    "cluster",
    "container",
    "end",
    "event",
    "exit_code",
    "groups",
    "mode",
    "namespace",
    "peer",
    "pod",
    "reason",
    "recording",
    "rule",
    "session",
    "start",
    "subresource",
    "time",
    "tty",
    "user",
];

#[tokio::test]
async fn one_pair_of_lines_per_exec_allowed_or_refused() {
    let dev = Governed::start().await;
    let mut front = dev
        .gateway("trail", &[("PODTERM_PROXY_SECRET", SECRET)])
        .await;
    let headers = |user: &'static str, groups: &'static str| {
        [
            ("x-forwarded-user", user),
            ("x-forwarded-groups", groups),
            ("x-podterm-proxy-secret", SECRET),
            ("authorization", TOKEN),
        ]
    };
    let open = |ns: &str, pod: &str, q: String, h: [(&'static str, &'static str); 4]| {
        let path = exec_path(ns, pod, &q);
        async move { exec(front.addr, &path, &h, V5).await }
    };
    let limit = Duration::from_secs(30);

    // 1. Allowed, exit 0.
    let q = query("app", &["printf", "%s|", "a;b"], "stdout=true");
    let (mut ws, _) = open("default", "app-0", q, headers("sam", "support"))
        .await
        .unwrap();
    assert_eq!(read_to_end(&mut ws, limit).await.exit_code(), Some(0));
    // 2. Allowed, exit 3, with stdin.
    let q = query(
        "app",
        &["sh", "-c", "cat >/dev/null; exit 3"],
        "stdin=true&stdout=true",
    );
    let (mut ws, _) = open("default", "app-0", q, headers("dana", "devs,x"))
        .await
        .unwrap();
    ws.write_frame(support::binary(b"\0twelve bytes"))
        .await
        .unwrap();
    ws.write_frame(support::binary(&[255, 0])).await.unwrap();
    assert_eq!(read_to_end(&mut ws, limit).await.exit_code(), Some(3));
    // 3. Refused by the policy.
    let q = query("app", &["sh", "-c", "id"], "stdout=true");
    let refused = refusal(open("default", "app-0", q, headers("sam", "support")).await);
    assert_eq!(refused.code, 403);
    // 4. Refused by the cluster: no such pod.
    let q = query("app", &["id"], "stdout=true");
    let refused = refusal(open("default", "ghost-0", q, headers("dana", "devs")).await);
    assert_eq!(refused.code, 404);
    // 5. Refused by deny_root.
    let q = query("root", &["id", "-u"], "stdout=true");
    let refused = refusal(open("default", "app-0", q, headers("al", "auditors")).await);
    assert_eq!(refused.code, 403);
    front.next_end().await;
    front.next_end().await;

    let lines = front.audit_lines().await;
    let metrics = support::get(
        front.addr,
        "/metrics",
        &[("x-podterm-proxy-secret", SECRET)],
    )
    .await;
    assert!(
        support::text(&metrics.body).contains("\npodterm_audit_dropped_total 0\n"),
        "{}",
        support::text(&metrics.body)
    );
    let raw = std::fs::read_to_string(&front.audit).unwrap();
    assert!(
        !raw.contains(SECRET) && !raw.contains("t0ken"),
        "a secret in the trail: {raw}"
    );
    for line in &lines {
        let mut keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, FIELDS, "{line}");
    }
    let mut sessions: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for line in &lines {
        sessions
            .entry(line["session"].as_str().unwrap().into())
            .or_default()
            .push(line);
    }
    assert_eq!(sessions.len(), 5, "{lines:#?}");
    let mut by_argv = BTreeMap::new();
    for (id, pair) in &sessions {
        let events: Vec<&str> = pair.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert!(
            events == ["session.start", "session.end"]
                || events == ["session.denied", "session.end"],
            "{id}: {events:?}"
        );
        let end = pair[1];
        for field in [
            "user",
            "groups",
            "cluster",
            "namespace",
            "pod",
            "container",
            "argv",
            "tty",
            "start",
            "peer",
        ] {
            assert_eq!(pair[0][field], end[field], "{field}");
        }
        assert!(end["end"].is_string() && end["time"].is_string());
        assert!(end["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        by_argv.insert(end["argv"].to_string(), pair.clone());
    }

    let printf = &by_argv[r#"["printf","%s|","a;b"]"#];
    assert_eq!(printf[0]["event"], "session.start");
    assert_eq!(printf[0]["user"], "sam");
    assert_eq!(printf[0]["groups"], serde_json::json!(["support"]));
    assert_eq!(printf[0]["mode"], "restricted");
    assert_eq!(printf[0]["rule"], "support");
    assert_eq!(printf[0]["cluster"], "dev");
    assert_eq!(printf[0]["container"], "app");
    assert_eq!(printf[0]["tty"], false);
    assert_eq!(printf[1]["exit_code"], 0);
    assert_eq!(printf[1]["close_reason"], "exited");
    assert!(
        printf[1]["bytes_out"].as_u64().unwrap() >= 4,
        "{}",
        printf[1]
    );

    let shell = &by_argv[r#"["sh","-c","cat >/dev/null; exit 3"]"#];
    assert_eq!(shell[0]["mode"], "shell");
    assert_eq!(shell[0]["groups"], serde_json::json!(["devs", "x"]));
    assert_eq!(shell[1]["exit_code"], 3);
    assert!(shell[1]["bytes_in"].as_u64().unwrap() >= 12, "{}", shell[1]);

    let refused = &by_argv[r#"["sh","-c","id"]"#];
    assert_eq!(refused[0]["event"], "session.denied");
    assert_eq!(
        refused[0]["reason"],
        r#"403: restricted by rule "support": command [sh -c id] is not in the allow list"#
    );
    assert_eq!(refused[1]["close_reason"], "denied");
    assert!(refused[1]["exit_code"].is_null());
    assert_eq!(refused[1]["bytes_out"], 0);

    let ghost = by_argv.values().find(|p| p[0]["pod"] == "ghost-0").unwrap();
    assert_eq!(ghost[0]["event"], "session.denied");
    assert!(
        ghost[0]["reason"].as_str().unwrap().starts_with("404"),
        "{}",
        ghost[0]
    );

    let root = &by_argv[r#"["id","-u"]"#];
    assert_eq!(root[0]["event"], "session.denied");
    assert!(root[0]["reason"].as_str().unwrap().contains("runs as root"));
    assert_eq!(root[0]["rule"], "auditors");
    assert_eq!(root[0]["container"], "root");
}

/// The real binary, `podterm dev` with a policy file and no `PODTERM_AUDIT_FILE`: the lines
/// go to stdout, after the start-up lines.
#[tokio::test]
async fn audit_lines_go_to_stdout_by_default() {
    use tokio::io::AsyncBufReadExt;
    let dev = Governed::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_podterm"))
        .arg("dev")
        .current_dir(dir.path())
        .env("PODTERM_LISTEN", "127.0.0.1:0")
        .env("PODTERM_POLICY_FILE", dev.policy_file())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let limit = Duration::from_secs(30);
    let addr = tokio::time::timeout(limit, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("podterm dev is running");
            if let Some(rest) = line.strip_prefix("podterm dev: open http://") {
                return rest
                    .trim_end_matches('/')
                    .parse::<std::net::SocketAddr>()
                    .unwrap();
            }
        }
    })
    .await
    .unwrap();
    let q = query("app", &["sh", "-c", "id"], "stdout=true");
    let refused = refusal(exec(addr, &exec_path("default", "web-0", &q), &[], V5).await);
    assert_eq!(refused.code, 403);
    let audit: Vec<serde_json::Value> = tokio::time::timeout(limit, async {
        let mut audit = Vec::new();
        while audit.len() < 2 {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("podterm dev is running");
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                audit.push(value);
            }
        }
        audit
    })
    .await
    .unwrap();
    assert_eq!(audit[0]["event"], "session.denied");
    assert_eq!(audit[0]["user"], "dev");
    assert_eq!(audit[0]["rule"], "local");
    assert_eq!(audit[1]["event"], "session.end");
    assert_eq!(audit[0]["session"], audit[1]["session"]);
    let _ = child.kill().await;
}
