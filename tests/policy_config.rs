//! The real binary with policy and audit settings: a bad policy file or an unusable audit file
//! stops `serve` with exit 64 and a message naming the file; deny_root in a container without
//! `sh` refuses the exec with a message saying so.

#[path = "support/governed.rs"]
mod governed;
#[path = "support/gateway.rs"]
mod support;

use governed::{POLICY, query, refusal};
use support::{exec, exec_path, run, text};

async fn serve(env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_podterm"));
    cmd.arg("serve")
        .env_clear()
        .env("PODTERM_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied());
    run(cmd, None).await
}

#[tokio::test]
async fn bad_policy_or_audit_files_exit_64_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let policy_var = policy.display().to_string();

    let out = serve(&[("PODTERM_POLICY_FILE", &policy_var)]).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains(&format!("PODTERM_POLICY_FILE {policy_var}: cannot read it")),
        "{}",
        text(&out.stderr)
    );

    for (yaml, problem) in [
        ("rules: []\n", "`rules` is empty"),
        (
            "rules:\n  - mode: shell\n    nmespaces: [a]\n",
            "unknown field `nmespaces`",
        ),
        ("rules:\n  - mode: sudo\n", "unknown variant `sudo`"),
        (
            "rules:\n  - name: s\n    mode: restricted\n",
            "rules[0] (\"s\"): `mode: restricted` needs a non-empty `allow` list",
        ),
    ] {
        std::fs::write(&policy, yaml).unwrap();
        let out = serve(&[("PODTERM_POLICY_FILE", &policy_var)]).await;
        assert_eq!(out.status.code(), Some(64), "{yaml}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("PODTERM_POLICY_FILE {policy_var}: ")),
            "{stderr}"
        );
        assert!(stderr.contains(problem), "{yaml}: {stderr}");
    }

    let out = serve(&[("PODTERM_AUDIT_FILE", "/nonexistent/dir/audit.jsonl")]).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("PODTERM_AUDIT_FILE /nonexistent/dir/audit.jsonl"));
    let out = serve(&[("PODTERM_RECORD_DIR", "/nonexistent/recordings")]).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("PODTERM_RECORD_DIR"));
}

/// `podterm dev` whose dev cluster finds no `sh` (PATH without one): the deny_root check cannot
/// run, so the exec is refused and says why.
#[tokio::test]
async fn deny_root_refuses_a_container_without_sh() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let empty = dir.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let (mut child, addr, _) = support::podterm_dev(&[
        ("PATH", empty.to_str().unwrap()),
        ("PODTERM_POLICY_FILE", policy.to_str().unwrap()),
    ])
    .await;
    let q = query("app", &["id", "-u"], "stdout=true");
    let refused = refusal(
        exec(
            addr,
            &exec_path("default", "web-0", &q),
            &[],
            "v5.channel.k8s.io",
        )
        .await,
    );
    assert_eq!(refused.code, 403);
    let message = refused.status().message;
    assert!(
        message.starts_with(r#"denied by rule "local": cannot check that the container does not run as root: deny_root needs `sh` in the container"#),
        "{message}"
    );
    assert!(message.contains("\"sh\""), "{message}");
    child.kill().await;
}
