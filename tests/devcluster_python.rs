//! Python's `kubernetes` client (installed into .venv by scripts/install-test-deps):
//! `stream(connect_get_namespaced_pod_exec, …)` with and without a tty, as write-ups use it.

#[path = "support/devcluster.rs"]
mod support;

use std::path::PathBuf;

use support::{Dev, text};

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run scripts/install-test-deps",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_streams_exec_with_and_without_tty() {
    let dev = Dev::start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/devcluster_exec.py");
    let out = tokio::process::Command::new(python())
        .arg(script)
        .arg(dev.kubeconfig())
        .env("HOME", dev.dir.path())
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(
        r["pods"],
        serde_json::json!([
            "default/distroless-0",
            "default/echo-0",
            "default/flood-0",
            "default/logger-0",
            "default/rotating-0",
            "default/tools",
            "default/web-0",
            "team-a/api-0"
        ])
    );
    assert_eq!(r["preloaded"], "hello from python\n");
    assert_eq!(r["plain"]["stdout"], "out\n");
    assert_eq!(r["plain"]["stderr"], "err\n");
    assert_eq!(r["plain"]["returncode"], 3);
    // The whole result and Python's stderr on failure: a lost output is told apart from a
    // shell that never ran the line by the exit code.
    let tty = r["tty"]["stdout"].as_str().unwrap();
    assert!(
        tty.contains("tty-42") && r["tty"]["returncode"] == 5,
        "{}\n{}",
        r["tty"],
        text(&out.stderr)
    );
    assert!(r["echo"].as_str().unwrap().contains("ping-pong"));
    dev.cluster.shutdown().await;
}
