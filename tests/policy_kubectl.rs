//! The policy through real kubectl (1.30 and 1.33, `--server …/clusters/dev`): allowed
//! commands run with their arguments untouched, refused ones show the rule's message and fail,
//! deny_root both ways. Identity: `PODTERM_AUTH=none` (the local user `dev`, rule "local").

#[path = "support/governed.rs"]
mod governed;
#[path = "support/gateway.rs"]
mod support;

use std::process::Output;

use governed::{Front, Governed, NONROOT_UID};
use support::{KUBECTL_VERSIONS, kubectl_bin, run, text};

async fn kubectl(front: &Front, home: &std::path::Path, version: &str, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(kubectl_bin(version));
    cmd.args(["--server", &front.server()])
        .args(args)
        .env("HOME", home)
        .env("KUBECACHEDIR", home.join("cache"))
        .env_remove("KUBECONFIG");
    run(cmd, None).await
}

#[tokio::test]
async fn kubectl_exec_under_the_policy() {
    let dev = Governed::start().await;
    let mut front = dev.gateway("kubectl", &[("PODTERM_AUTH", "none")]).await;
    let home = tempfile::tempdir().unwrap();
    let corpus = ["; id", "$(id)", "`id`", "a && b", "x\ny", "*", "'q'", ""];
    for version in KUBECTL_VERSIONS {
        // Allowed: the corpus comes back literally, one argument each.
        let mut args = vec!["exec", "app-0", "-c", "nonroot", "--", "printf", "%s|"];
        args.extend(corpus);
        let out = kubectl(&front, home.path(), version, &args).await;
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        let expected: String = corpus.iter().map(|a| format!("{a}|")).collect();
        assert_eq!(text(&out.stdout), expected, "{version}");
        front.next_end().await;

        // Refused: a shell, with the rule's message.
        let out = kubectl(
            &front,
            home.path(),
            version,
            &[
                "exec",
                "app-0",
                "-c",
                "nonroot",
                "--",
                "sh",
                "-c",
                "id; printf pwned",
            ],
        )
        .await;
        assert!(!out.status.success(), "{version}");
        assert!(!text(&out.stdout).contains("pwned"));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(r#"restricted by rule \"local\": command [sh -c \"id; printf pwned\"] is not in the allow list"#)
                || stderr.contains(r#"restricted by rule "local": command [sh -c "id; printf pwned"] is not in the allow list"#),
            "{version}: {stderr}"
        );

        // deny_root: the non-root container runs the command; the root one is refused.
        let out = kubectl(
            &front,
            home.path(),
            version,
            &["exec", "app-0", "-c", "nonroot", "--", "id", "-u"],
        )
        .await;
        assert!(
            out.status.success(),
            "{version}: {} {:?}",
            text(&out.stderr),
            front.audit_lines().await
        );
        assert_eq!(text(&out.stdout), format!("{NONROOT_UID}\n"));
        front.next_end().await;
        let out = kubectl(
            &front,
            home.path(),
            version,
            &["exec", "app-0", "-c", "root", "--", "id", "-u"],
        )
        .await;
        assert!(!out.status.success(), "{version}");
        assert!(out.stdout.is_empty());
        assert!(
            text(&out.stderr).contains("the container runs as root (uid 0)"),
            "{version}: {}",
            text(&out.stderr)
        );
    }
}
