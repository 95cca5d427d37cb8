//! Real kubectl (1.30 and 1.33) against the in-process dev cluster and its written kubeconfig.

#[path = "support/devcluster.rs"]
mod support;

use support::{Dev, KUBECTL_VERSIONS, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pods_all_namespaces_lists_every_pod() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        let out = dev.kubectl(v, &["get", "pods", "-A"], None).await;
        assert!(out.status.success(), "{v}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        for (ns, pod, ready) in [
            ("default", "web-0", "2/2"),
            ("default", "tools", "1/1"),
            ("team-a", "api-0", "1/1"),
            ("default", "echo-0", "1/1"),
            ("default", "flood-0", "1/1"),
        ] {
            let line = stdout
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(pod))
                .unwrap_or_else(|| panic!("{v}: no {pod} in\n{stdout}"));
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(&cols[..4], &[ns, pod, ready, "Running"], "{v}: {line}");
        }
        let out = dev
            .kubectl(v, &["get", "pods", "-A", "-l", "app=web"], None)
            .await;
        let names: Vec<String> = support::text(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect();
        assert_eq!(names, ["web-0"], "{v}: {}", text(&out.stderr));
        let out = dev.kubectl(v, &["get", "namespaces"], None).await;
        assert!(
            text(&out.stdout).contains("team-a"),
            "{v}: {}",
            text(&out.stderr)
        );
        let out = dev
            .kubectl(v, &["get", "pod", "web-0", "-o", "json"], None)
            .await;
        let pod: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(pod["status"]["phase"], "Running");
    }
    dev.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_keeps_stdout_and_stderr_apart_and_returns_the_exit_code() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        let out = dev
            .kubectl(
                v,
                &[
                    "exec",
                    "tools",
                    "--",
                    "sh",
                    "-c",
                    "echo to-out; echo to-err >&2; exit 7",
                ],
                None,
            )
            .await;
        assert_eq!(out.status.code(), Some(7), "{v}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "to-out\n", "{v}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("to-err\n"), "{v}: {stderr}");
        assert!(!text(&out.stdout).contains("to-err"), "{v}");
        let ok = dev.kubectl(v, &["exec", "tools", "--", "true"], None).await;
        assert_eq!(ok.status.code(), Some(0), "{v}: {}", text(&ok.stderr));
    }
    dev.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stdin_round_trips_one_mib_intact() {
    let dev = Dev::start().await;
    let input: Vec<u8> = (0..1 << 20).map(|_| rand::random::<u8>()).collect();
    for v in KUBECTL_VERSIONS {
        for pod in ["tools", "echo-0"] {
            let out = dev
                .kubectl(v, &["exec", "-i", pod, "--", "cat"], Some(&input))
                .await;
            assert!(out.status.success(), "{v} {pod}: {}", text(&out.stderr));
            assert_eq!(out.stdout.len(), input.len(), "{v} {pod}");
            assert!(out.stdout == input, "{v} {pod}: bytes differ");
        }
    }
    dev.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_container_flag_reaches_the_sidecar() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        let out = dev
            .kubectl(v, &["exec", "web-0", "-c", "sidecar", "--", "pwd"], None)
            .await;
        assert!(out.status.success(), "{v}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout)
                .trim_end()
                .ends_with("/default/web-0/sidecar"),
            "{v}: {}",
            text(&out.stdout)
        );
        let out = dev
            .kubectl(v, &["exec", "web-0", "-c", "app", "--", "pwd"], None)
            .await;
        assert!(
            text(&out.stdout).trim_end().ends_with("/default/web-0/app"),
            "{v}"
        );
    }
    dev.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tty_exec_reports_the_client_terminal_size() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        let kubectl = support::kubectl_bin(v);
        let command = format!(
            "stty rows 33 cols 101; {} --kubeconfig {} exec -it tools -- stty size",
            kubectl.display(),
            dev.kubeconfig().display()
        );
        let out = dev.in_terminal(&command).await;
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("33 101"),
            "{v}: {stdout:?} {}",
            text(&out.stderr)
        );
    }
    dev.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pods_and_containers_give_kubectls_usual_errors() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        let out = dev.kubectl(v, &["exec", "nope", "--", "ls"], None).await;
        assert_eq!(out.status.code(), Some(1), "{v}");
        assert!(
            text(&out.stderr).contains("Error from server (NotFound): pods \"nope\" not found"),
            "{v}: {}",
            text(&out.stderr)
        );
        let out = dev
            .kubectl(v, &["exec", "web-0", "-c", "nope", "--", "ls"], None)
            .await;
        assert_eq!(out.status.code(), Some(1), "{v}");
        assert!(
            text(&out.stderr).contains("container nope is not valid for pod web-0"),
            "{v}: {}",
            text(&out.stderr)
        );
        let out = dev.kubectl(v, &["get", "pod", "nope"], None).await;
        assert!(text(&out.stderr).contains("pods \"nope\" not found"), "{v}");
        let out = dev
            .kubectl(v, &["-n", "nope", "get", "pod", "tools"], None)
            .await;
        assert!(
            text(&out.stderr).contains("namespaces \"nope\" not found"),
            "{v}"
        );
    }
    dev.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_is_allowed_and_forbidden_as_the_rules_say() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        let as_dev = ["--as", "alice", "--as-group", "devs", "--as-group", "ops"];
        let run = |extra: &'static [&'static str]| {
            let mut args: Vec<&str> = as_dev.to_vec();
            args.extend_from_slice(extra);
            args
        };
        let out = dev
            .kubectl(v, &run(&["exec", "tools", "--", "echo", "hi"]), None)
            .await;
        assert!(out.status.success(), "{v}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hi\n");
        let out = dev.kubectl(v, &run(&["get", "pods"]), None).await;
        assert!(
            text(&out.stdout).contains("web-0"),
            "{v}: {}",
            text(&out.stderr)
        );
        let out = dev
            .kubectl(
                v,
                &run(&["-n", "team-a", "exec", "api-0", "--", "true"]),
                None,
            )
            .await;
        assert_eq!(out.status.code(), Some(1), "{v}");
        assert!(
            text(&out.stderr).contains(
                "pods \"api-0\" is forbidden: User \"alice\" cannot get resource \"pods\" in API group \"\" in the namespace \"team-a\""
            ),
            "{v}: {}",
            text(&out.stderr)
        );
        let out = dev.kubectl(v, &run(&["get", "pods", "-A"]), None).await;
        assert!(
            text(&out.stderr)
                .contains("cannot list resource \"pods\" in API group \"\" at the cluster scope"),
            "{v}: {}",
            text(&out.stderr)
        );
        let bob = [
            "--as",
            "bob",
            "--as-group",
            "team-a",
            "-n",
            "team-a",
            "exec",
            "api-0",
            "--",
            "echo",
            "ok",
        ];
        let out = dev.kubectl(v, &bob, None).await;
        assert!(out.status.success(), "{v}: {}", text(&out.stderr));
        let out = dev
            .kubectl(v, &["--as", "eve", "exec", "tools", "--", "true"], None)
            .await;
        assert!(
            text(&out.stderr).contains("User \"eve\" cannot get resource"),
            "{v}"
        );
        let out = dev
            .kubectl(v, &["--token", "wrong", "get", "pods"], None)
            .await;
        assert!(
            text(&out.stderr).contains("Unauthorized"),
            "{v}: {}",
            text(&out.stderr)
        );
    }
    dev.cluster.shutdown().await;
}
