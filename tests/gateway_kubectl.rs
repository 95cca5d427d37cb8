//! Real kubectl (1.30 and 1.33) through `podterm dev` (`--server …/clusters/dev`) gives the
//! same results as straight to its dev cluster: exec with and without a tty, exit codes,
//! 1 MiB of stdin, `-c`, missing pods.

#[path = "support/gateway.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::{KUBECTL_VERSIONS, kubectl_bin, podterm_dev, run, text};

/// One `podterm dev` and the two ways to reach its cluster.
struct Dev {
    _child: support::Child,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Dev {
    async fn start() -> Dev {
        let (child, addr, kubeconfig) = podterm_dev(&[]).await;
        Dev {
            _child: child,
            addr,
            kubeconfig,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn server(&self) -> String {
        format!("http://{}/clusters/dev", self.addr)
    }

    /// The arguments that point kubectl through podterm, or straight at the dev cluster.
    fn target(&self, through_podterm: bool) -> Vec<String> {
        if through_podterm {
            vec!["--server".into(), self.server()]
        } else {
            vec!["--kubeconfig".into(), self.kubeconfig.display().to_string()]
        }
    }

    async fn kubectl(
        &self,
        version: &str,
        through_podterm: bool,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Output {
        let mut cmd = tokio::process::Command::new(kubectl_bin(version));
        cmd.args(self.target(through_podterm)).args(args);
        env(&mut cmd, self.home.path());
        run(cmd, stdin).await
    }

    /// Both ways, for comparison: (through podterm, straight).
    async fn both(&self, version: &str, args: &[&str], stdin: Option<&[u8]>) -> (Output, Output) {
        let via = self.kubectl(version, true, args, stdin).await;
        let direct = self.kubectl(version, false, args, stdin).await;
        (via, direct)
    }

    /// kubectl under `script` (a terminal of 100x40), both ways.
    async fn both_in_terminal(&self, version: &str, args: &str) -> (Output, Output) {
        let mut outs = Vec::new();
        for through in [true, false] {
            let command = format!(
                "stty cols 100 rows 40; {} {} {args}",
                kubectl_bin(version).display(),
                self.target(through).join(" ")
            );
            let mut cmd = tokio::process::Command::new("script");
            cmd.args(["-qec", &command, "/dev/null"]);
            env(&mut cmd, self.home.path());
            outs.push(run(cmd, None).await);
        }
        let direct = outs.pop().unwrap();
        (outs.pop().unwrap(), direct)
    }
}

fn env(cmd: &mut tokio::process::Command, home: &Path) {
    // No kubeconfig of the machine's: through podterm, kubectl needs none.
    cmd.env("HOME", home)
        .env("KUBECACHEDIR", home.join("cache"))
        .env("KUBECONFIG", home.join("none"));
}

/// `pwd` through podterm succeeded and printed a path ending in `suffix`.
fn prints_a_path_ending(version: &str, via: &Output, suffix: &str) {
    assert!(
        via.status.success() && text(&via.stdout).trim_end().ends_with(suffix),
        "kubectl {version} through podterm: {:?}, stdout {:?}, stderr {:?}",
        via.status.code(),
        text(&via.stdout),
        text(&via.stderr)
    );
}

fn same(version: &str, what: &str, via: &Output, direct: &Output) {
    assert_eq!(
        (via.status.code(), text(&via.stdout), text(&via.stderr)),
        (
            direct.status.code(),
            text(&direct.stdout),
            text(&direct.stderr)
        ),
        "kubectl {version} {what}: through podterm (left) vs straight (right)"
    );
}

#[tokio::test]
async fn exec_without_a_tty_keeps_streams_apart_and_returns_exit_codes() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        for code in [0, 3, 255] {
            let script = format!("echo out; echo err >&2; exit {code}");
            let (via, direct) = dev
                .both(v, &["exec", "tools", "--", "sh", "-c", &script], None)
                .await;
            assert_eq!(via.status.code(), Some(code), "{}", text(&via.stderr));
            assert_eq!(text(&via.stdout), "out\n");
            assert!(
                text(&via.stderr).starts_with("err\n"),
                "{}",
                text(&via.stderr)
            );
            same(v, "exec exit code", &via, &direct);
        }
        let (via, direct) = dev
            .both(v, &["exec", "tools", "--", "ls", "/nonexistent"], None)
            .await;
        assert_ne!(via.status.code(), Some(0));
        same(v, "exec failing command", &via, &direct);
    }
}

#[tokio::test]
async fn exec_with_a_tty_sees_the_terminal() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        let (via, direct) = dev
            .both_in_terminal(v, "exec -it tools -- sh -c 'stty size; tty; exit 4'")
            .await;
        let out = text(&via.stdout);
        assert!(out.contains("40 100"), "kubectl {v}: {out:?}");
        assert!(out.contains("/dev/pts/"), "kubectl {v}: {out:?}");
        assert_eq!(via.status.code(), Some(4), "kubectl {v}: {out:?}");
        // `script` echoes a NUL (^@) for its own stdin's end at a moment of its choosing.
        // The pts number is whatever the kernel hands out next, so only its presence counts.
        let clean = |o: &Output| {
            (
                o.status.code(),
                without_pts_number(&text(&o.stdout).replace("^@", "")),
            )
        };
        assert_eq!(clean(&via), clean(&direct), "kubectl {v} exec -it");
    }
}

#[tokio::test]
async fn one_mib_of_stdin_round_trips_intact() {
    let dev = Dev::start().await;
    let input: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    for v in KUBECTL_VERSIONS {
        for pod in ["tools", "echo-0"] {
            let (via, direct) = dev
                .both(v, &["exec", "-i", pod, "--", "cat"], Some(&input))
                .await;
            assert_eq!(
                via.status.code(),
                Some(0),
                "kubectl {v} {pod}: {}",
                text(&via.stderr)
            );
            assert!(
                via.stdout == input,
                "kubectl {v} {pod}: {} bytes back",
                via.stdout.len()
            );
            same(v, "exec -i cat", &via, &direct);
        }
    }
}

#[tokio::test]
async fn container_flag_and_default_container() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        let (via, direct) = dev
            .both(v, &["exec", "web-0", "-c", "sidecar", "--", "pwd"], None)
            .await;
        prints_a_path_ending(v, &via, "/sidecar");
        same(v, "exec -c sidecar", &via, &direct);
        let (via, direct) = dev.both(v, &["exec", "web-0", "--", "pwd"], None).await;
        prints_a_path_ending(v, &via, "/app");
        same(v, "exec (default container)", &via, &direct);
        let (via, direct) = dev
            .both(v, &["exec", "web-0", "-c", "nope", "--", "pwd"], None)
            .await;
        assert_ne!(via.status.code(), Some(0));
        same(v, "exec -c nope", &via, &direct);
    }
}

#[tokio::test]
async fn missing_pods_and_namespaces_give_the_same_errors() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        for args in [
            &["exec", "nope", "--", "ls"][..],
            &["get", "pod", "nope"],
            &["-n", "nope", "exec", "tools", "--", "ls"],
        ] {
            let (via, direct) = dev.both(v, args, None).await;
            assert_ne!(via.status.code(), Some(0));
            assert!(
                text(&via.stderr).contains("NotFound"),
                "{}",
                text(&via.stderr)
            );
            same(v, &args.join(" "), &via, &direct);
        }
    }
}

#[tokio::test]
async fn reads_pass_through() {
    let dev = Dev::start().await;
    for v in KUBECTL_VERSIONS {
        for args in [
            &["get", "pods", "-A"][..],
            &["get", "namespaces", "-o", "name"],
            &[
                "get",
                "pod",
                "web-0",
                "-o",
                "jsonpath={.spec.containers[*].name}",
            ],
        ] {
            let (via, direct) = dev.both(v, args, None).await;
            assert_eq!(via.status.code(), Some(0), "{}", text(&via.stderr));
            // Ages may tick over between the two calls; compare the rest.
            let strip = |o: &Output| {
                text(&o.stdout)
                    .lines()
                    .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(&via), strip(&direct), "kubectl {v} {args:?}");
        }
    }
}

/// `/dev/pts/12` → `/dev/pts/N`: other processes allocate terminals between the two runs.
fn without_pts_number(out: &str) -> String {
    let mut rest = out;
    let mut clean = String::with_capacity(out.len());
    while let Some(at) = rest.find("/dev/pts/") {
        let (head, tail) = rest.split_at(at + "/dev/pts/".len());
        clean.push_str(head);
        clean.push('N');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    clean.push_str(rest);
    clean
}
