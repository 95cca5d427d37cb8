//! The policy through a WebSocket client: restricted mode (allow list, no tty, no default
//! shell), the injection corpus reaching the container as literal arguments, deny_root both
//! ways, session limits (429/503), the plain exec GET and `/api/whoami`.

#[path = "support/governed.rs"]
mod governed;
#[path = "support/gateway.rs"]
mod support;

use std::time::Duration;

use governed::{Governed, NONROOT_UID, query, refusal, who};
use support::{Ended, binary, exec, exec_path, get, read_to_end, text};

const V5: &str = "v5.channel.k8s.io";
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `argv` in default/app-0/`container` as `user` in `groups`, without stdin or tty.
async fn run(
    addr: std::net::SocketAddr,
    groups: &str,
    container: &str,
    argv: &[&str],
) -> Result<Ended, support::Refusal> {
    let q = query(container, argv, "stdout=true&stderr=true");
    let (mut ws, _) = exec(
        addr,
        &exec_path("default", "app-0", &q),
        &who("sam", groups),
        V5,
    )
    .await?;
    Ok(read_to_end(&mut ws, LIMIT).await)
}

#[tokio::test]
async fn restricted_mode_allows_only_the_allow_list() {
    let dev = Governed::start().await;
    let front = dev.gateway("restricted", &[]).await;
    let ok = run(front.addr, "support", "app", &["printf", "%s|", "a b", "c"])
        .await
        .unwrap();
    assert_eq!(text(&ok.stdout), "a b|c|");
    assert_eq!(ok.exit_code(), Some(0));

    let refused = run(front.addr, "support", "app", &["sh", "-c", "id"])
        .await
        .unwrap_err();
    assert_eq!(refused.code, 403);
    let status = refused.status();
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        r#"restricted by rule "support": command [sh -c id] is not in the allow list"#
    );
    // The default shell (no command) is refused, tty or not.
    for extra in ["stdin=true&stdout=true&tty=true", "stdin=true&stdout=true"] {
        let path = exec_path("default", "app-0", &format!("container=app&{extra}"));
        let refused = refusal(exec(front.addr, &path, &who("sam", "support"), V5).await);
        assert_eq!(refused.code, 403);
        assert!(
            refused
                .status()
                .message
                .starts_with(r#"restricted by rule "support": "#)
        );
    }
    // An allowed command with a tty is refused: restricted mode never has a terminal.
    let q = query("app", &["printf", "%s|", "x"], "stdout=true&tty=true");
    let refused = refusal(
        exec(
            front.addr,
            &exec_path("default", "app-0", &q),
            &who("sam", "support"),
            V5,
        )
        .await,
    );
    assert!(
        refused.status().message.contains("(tty) is not allowed"),
        "{:?}",
        refused.status()
    );
    // A path pattern does not let traversal through.
    let refused = run(
        front.addr,
        "support",
        "app",
        &["cat", "/proc/1/root/etc/status"],
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code, 403);
}

#[tokio::test]
async fn shell_mode_and_no_matching_rule() {
    let dev = Governed::start().await;
    let front = dev.gateway("shell", &[]).await;
    // devs: any command, default shell and tty included, in `default` only.
    let ended = run(
        front.addr,
        "devs",
        "app",
        &["sh", "-c", "echo shell; exit 3"],
    )
    .await
    .unwrap();
    assert_eq!(text(&ended.stdout), "shell\n");
    assert_eq!(ended.exit_code(), Some(3));
    let path = exec_path(
        "default",
        "app-0",
        "container=app&stdin=true&stdout=true&tty=true",
    );
    let (mut ws, _) = exec(front.addr, &path, &who("dana", "devs"), V5)
        .await
        .unwrap();
    ws.write_frame(binary(b"\0exit 7\r")).await.unwrap();
    assert_eq!(read_to_end(&mut ws, LIMIT).await.exit_code(), Some(7));
    // Elsewhere no rule matches them: refused, and the message says who, where.
    let q = query("app", &["id"], "stdout=true");
    let refused = refusal(
        exec(
            front.addr,
            &exec_path("prod", "api-0", &q),
            &who("dana", "devs"),
            V5,
        )
        .await,
    );
    assert_eq!(refused.code, 403);
    assert_eq!(
        refused.status().message,
        r#"no policy rule lets user "dana" (groups: devs) exec in cluster "dev", namespace "prod""#
    );
    let refused = run(front.addr, "nobody", "app", &["id"]).await.unwrap_err();
    assert!(
        refused
            .status()
            .message
            .starts_with("no policy rule lets user \"sam\"")
    );
}

/// Shell metacharacters, quotes, newlines, globs and long arguments arrive in the container as
/// exactly the arguments sent: `printf '%s|'` prints each one followed by `|`, so any shell
/// expansion, splitting or globbing on the way would show. NUL bytes and over-long arguments
/// are refused before anything reaches the cluster.
#[tokio::test]
async fn the_injection_corpus_never_reaches_a_shell() {
    let dev = Governed::start().await;
    let front = dev.gateway("injection", &[]).await;
    let long = "x".repeat(4000);
    let corpus = [
        "; id",
        "a && id",
        "a || id",
        "| id",
        "$(id)",
        "`id`",
        "${HOME}",
        "$HOME",
        "line1\nid",
        "a\r\nb",
        "'quoted'",
        "\"double\"",
        "> /tmp/podterm-pwned",
        "< /etc/passwd",
        "*",
        "/*",
        "?",
        "[a-z]*",
        "~",
        "&",
        "-v",
        "--",
        " spaces  around ",
        "",
        "tab\there",
        "ünïcødé €",
        &long,
    ];
    let mut argv = vec!["printf", "%s|"];
    argv.extend(corpus.iter().copied());
    let ended = run(front.addr, "support", "app", &argv).await.unwrap();
    let expected: String = corpus.iter().map(|a| format!("{a}|")).collect();
    assert_eq!(text(&ended.stdout), expected);
    assert_eq!(ended.exit_code(), Some(0));
    assert!(!std::path::Path::new("/tmp/podterm-pwned").exists());

    // Each payload as the program itself, or behind a shell, is refused.
    for payload in ["; id", "$(id)", "`id`", "id\nid", "printf %s| x; id"] {
        let refused = run(front.addr, "support", "app", &[payload])
            .await
            .unwrap_err();
        assert_eq!(refused.code, 403, "{payload:?}");
        let refused = run(front.addr, "support", "app", &["sh", "-c", payload])
            .await
            .unwrap_err();
        assert_eq!(refused.code, 403, "{payload:?}");
    }
    // NUL bytes would be cut by execve: refused.
    let refused = run(front.addr, "support", "app", &["printf", "%s|", "ok\0; id"])
        .await
        .unwrap_err();
    assert_eq!(
        refused.status().message,
        r#"restricted by rule "support": argument 2 contains a NUL byte"#
    );
    // Over-long arguments are refused with a short message.
    let huge = "$(id)".repeat(2000);
    let refused = run(front.addr, "support", "app", &["printf", "%s|", &huge])
        .await
        .unwrap_err();
    assert_eq!(refused.code, 403);
    assert!(refused.status().message.contains("bytes long"));
    assert!(refused.body.len() < 1000);
}

#[tokio::test]
async fn deny_root_both_ways() {
    let dev = Governed::start().await;
    let front = dev.gateway("deny-root", &[]).await;
    let ended = run(front.addr, "auditors", "nonroot", &["id", "-u"])
        .await
        .unwrap();
    assert_eq!(text(&ended.stdout), format!("{NONROOT_UID}\n"));
    assert_eq!(ended.exit_code(), Some(0));
    let refused = run(front.addr, "auditors", "root", &["id", "-u"])
        .await
        .unwrap_err();
    assert_eq!(refused.code, 403);
    assert_eq!(
        refused.status().message,
        r#"denied by rule "auditors": the container runs as root (uid 0)"#
    );
}

#[tokio::test]
async fn session_limits() {
    let dev = Governed::start().await;
    let mut front = dev
        .gateway(
            "limits",
            &[
                ("PODTERM_MAX_SESSIONS_PER_USER", "1"),
                ("PODTERM_MAX_SESSIONS", "2"),
            ],
        )
        .await;
    let addr = front.addr;
    let hold = |user: &'static str| async move {
        let path = exec_path(
            "default",
            "app-0",
            "container=app&command=cat&stdin=true&stdout=true",
        );
        exec(addr, &path, &who(user, "devs"), V5).await
    };
    let (mut first, _) = hold("ann").await.unwrap();
    let refused = refusal(hold("ann").await);
    assert_eq!(refused.code, 429);
    assert_eq!(refused.status().reason, "TooManyRequests");
    assert!(
        refused
            .status()
            .message
            .contains("PODTERM_MAX_SESSIONS_PER_USER")
    );
    let (mut second, _) = hold("bob").await.unwrap();
    let refused = refusal(hold("cyd").await);
    assert_eq!(refused.code, 503);
    assert!(refused.status().message.contains("PODTERM_MAX_SESSIONS"));
    // Closing a session frees its place.
    first.write_frame(binary(&[255, 0])).await.unwrap();
    read_to_end(&mut first, LIMIT).await;
    front.next_end().await;
    let (mut again, _) = hold("ann").await.unwrap();
    for ws in [&mut second, &mut again] {
        ws.write_frame(binary(&[255, 0])).await.unwrap();
        assert_eq!(read_to_end(ws, LIMIT).await.exit_code(), Some(0));
    }
}

#[tokio::test]
async fn plain_exec_get_answers_the_policy_decision() {
    let dev = Governed::start().await;
    let front = dev.gateway("plain", &[]).await;
    let q = query("app", &["sh", "-c", "id"], "stdout=true");
    let refused = get(
        front.addr,
        &exec_path("default", "app-0", &q),
        &who("sam", "support"),
    )
    .await;
    assert_eq!(refused.code, 403);
    assert!(
        refused
            .status()
            .message
            .contains(r#"restricted by rule "support""#)
    );
    // Allowed: passed on to the cluster, which wants an upgrade (as the real API server does).
    let q = query("app", &["printf", "%s|", "x"], "stdout=true");
    let passed = get(
        front.addr,
        &exec_path("default", "app-0", &q),
        &who("sam", "support"),
    )
    .await;
    assert_eq!(passed.code, 400, "{}", text(&passed.body));
}

#[tokio::test]
async fn whoami_tells_the_page_what_it_may_do() {
    let dev = Governed::start().await;
    let front = dev.gateway("whoami", &[]).await;
    let res = get(
        front.addr,
        "/api/whoami?cluster=dev&namespace=prod",
        &who("sam", "support,other"),
    )
    .await;
    assert_eq!(res.code, 200);
    let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "user": "sam",
            "groups": ["support", "other"],
            "mode": "restricted",
            "rule": "support",
            "deny_root": false,
            "allow": [["printf", "%s|", "*"], ["cat", "/proc/*/status"]],
            "logs": false,
            "files": {"read": [], "write": []},
            "debug_images": [],
            "file_max_bytes": 4u64 << 30,
            "denied": null,
        })
    );
    let res = get(
        front.addr,
        "/api/whoami?cluster=dev&namespace=default",
        &who("dana", "devs"),
    )
    .await;
    let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(
        (body["mode"].as_str(), body["rule"].as_str()),
        (Some("shell"), Some("devs"))
    );
    let res = get(
        front.addr,
        "/api/whoami?cluster=dev&namespace=prod",
        &who("dana", "devs"),
    )
    .await;
    let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert!(body["mode"].is_null());
    assert!(
        body["denied"]
            .as_str()
            .unwrap()
            .starts_with("no policy rule")
    );
    let res = get(
        front.addr,
        "/api/whoami?cluster=nope&namespace=x",
        &who("dana", "devs"),
    )
    .await;
    assert_eq!(res.code, 404);
    let res = get(front.addr, "/api/whoami", &who("dana", "devs")).await;
    assert_eq!(res.code, 400);
    let res = get(front.addr, "/api/whoami?cluster=dev&namespace=x", &[]).await;
    assert_eq!(res.code, 401);
}
