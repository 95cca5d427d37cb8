//! Beside the shell, through podterm as the caller: pod logs, attach and debug containers with
//! real kubectl (1.30 and 1.33), files in and out (the page's API and kubectl cp), and the
//! policy's and the audit trail's part in each, against a dev cluster with a logger, a
//! rotating logger, a distroless pod and a container whose tar is hostile.

#[path = "support/gateway.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use http_body_util::{BodyExt as _, Full};
use podterm::cluster::Clusters;
use podterm::config::Config;
use podterm::devcluster::{DevCluster, DevClusterConfig};
use podterm::gateway::{Gateway, Hooks};
use podterm::server;
use support::{kubectl_bin, run, text};

/// Every kubectl the issue names: each must take every subresource through podterm unmodified.
const KUBECTL_VERSIONS: [&str; 4] = ["1.30", "1.31", "1.32", "1.33"];
const N: usize = KUBECTL_VERSIONS.len();
use tokio::net::TcpListener;

const MANIFEST: &str = r#"
namespaces: [default]
pods:
  - namespace: default
    name: tools
    containers:
      - name: shell
  - namespace: default
    name: logger-0
    containers:
      - name: app
        logs: {every: 100ms, restarted: true}
  - namespace: default
    name: rotating-0
    containers:
      - name: app
        logs: {every: 20ms, rotate: 25}
  - namespace: default
    name: echo-0
    containers:
      - name: echo
        builtin: echo
  - namespace: default
    name: distroless-0
    containers:
      - name: app
        distroless: true
  - namespace: default
    name: hostile-0
    containers:
      - name: app
        builtin: hostile-tar
rules:
  - groups: [devs, support, viewers]
    resources: [pods, pods/exec, pods/attach, pods/log, pods/ephemeralcontainers, namespaces]
    verbs: [get, list, watch, create, patch]
"#;

/// The policy, with `DIR` standing for the test's directory of files.
const POLICY: &str = r#"
rules:
  - name: devs
    groups: [devs]
    mode: shell
    debug:
      images: ["busybox:*"]
  - name: support
    groups: [support]
    mode: restricted
    allow:
      - [id, "-u"]
    files:
      read: ["DIR/*.hprof"]
  - name: viewers
    groups: [viewers]
    mode: none
    logs: true
"#;

/// Tells the test that a session ended or an action was reported (their audit lines, a kubectl
/// cp's file line included, are written by then).
struct Ends(tokio::sync::mpsc::UnboundedSender<()>);

impl podterm::events::SessionObserver for Ends {
    fn ended(&self, _: &podterm::events::SessionInfo, _: &podterm::relay::Summary) {
        let _ = self.0.send(());
    }

    fn action(&self, _: &podterm::events::Action) {
        let _ = self.0.send(());
    }
}

struct World {
    ends: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<()>>,
    ends_tx: tokio::sync::mpsc::UnboundedSender<()>,
    _cluster: DevCluster,
    dir: tempfile::TempDir,
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    audit: std::path::PathBuf,
}

impl World {
    /// A gateway for kubectl: the local user `dev` under `policy`, auditing to the same file.
    async fn local(&self, name: &str, policy: &str) -> SocketAddr {
        let file = self.dir.path().join(format!("{name}.policy.yaml"));
        std::fs::write(&file, policy).unwrap();
        let vars = [
            ("PODTERM_LISTEN", "127.0.0.1:0".to_string()),
            ("PODTERM_AUTH", "none".to_string()),
            ("PODTERM_POLICY_FILE", file.display().to_string()),
        ];
        let config =
            Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.clone()))).unwrap();
        let clusters = Clusters::from_kubeconfig_file(&self._cluster.kubeconfig, &[])
            .await
            .unwrap();
        let mut hooks = Hooks::from_config(&config).unwrap();
        // One trail for every gateway of the test: the first gateway's writer.
        hooks.audit = self.gateway.hooks.audit.clone();
        hooks
            .observers
            .push(Arc::new(podterm::audit::AuditObserver::new(
                self.gateway.hooks.audit.clone().unwrap(),
            )));
        hooks.observers.push(Arc::new(Ends(self.ends_tx.clone())));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = Arc::new(Gateway::with_hooks(config, clusters, hooks));
        tokio::spawn(server::run(listener, gateway));
        addr
    }

    async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("manifest.yaml");
        std::fs::write(&manifest, MANIFEST).unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir(&files).unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, POLICY.replace("DIR", files.to_str().unwrap())).unwrap();
        let mut config = DevClusterConfig::ephemeral(dir.path().join("dev.kubeconfig"));
        config.manifest = Some(manifest);
        let cluster = DevCluster::start(config).await.expect("dev cluster");
        let audit = dir.path().join("audit.jsonl");
        let vars = [
            ("PODTERM_LISTEN", "127.0.0.1:0".to_string()),
            ("PODTERM_POLICY_FILE", policy.display().to_string()),
            ("PODTERM_AUDIT_FILE", audit.display().to_string()),
            ("PODTERM_FILE_MAX_BYTES", "1000000".to_string()),
        ];
        let config =
            Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.clone()))).unwrap();
        let clusters = Clusters::from_kubeconfig_file(&cluster.kubeconfig, &[])
            .await
            .unwrap();
        let mut hooks = Hooks::from_config(&config).unwrap();
        let (ends_tx, ends) = tokio::sync::mpsc::unbounded_channel();
        hooks.observers.push(Arc::new(Ends(ends_tx.clone())));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = Arc::new(Gateway::with_hooks(config, clusters, hooks));
        tokio::spawn(server::run(listener, gateway.clone()));
        World {
            ends: tokio::sync::Mutex::new(ends),
            ends_tx,
            _cluster: cluster,
            dir,
            gateway,
            addr,
            audit,
        }
    }

    fn files(&self) -> std::path::PathBuf {
        self.dir.path().join("files")
    }

    /// kubectl through the gateway at `proxy` (`--server …/clusters/dev`, no kubeconfig).
    async fn kubectl(&self, proxy: SocketAddr, version: &str, args: &[&str]) -> Output {
        let home = self.dir.path().join(format!("home-{version}"));
        let mut cmd = tokio::process::Command::new(kubectl_bin(version));
        cmd.args(["--server", &format!("http://{proxy}/clusters/dev")])
            .args(args)
            .env("HOME", &home)
            .env("KUBECACHEDIR", home.join("cache"))
            .env_remove("KUBECONFIG");
        run(cmd, None).await
    }

    /// The audit lines once `done` holds for them, waiting for sessions to end in between
    /// (kubectl exits before podterm has reported the session it ran).
    async fn audit_when(
        &self,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        loop {
            let lines = self.audit().await;
            if done(&lines) {
                return lines;
            }
            tokio::time::timeout(std::time::Duration::from_secs(30), async {
                self.ends.lock().await.recv().await
            })
            .await
            .expect("a session ended within 30 s");
        }
    }

    async fn audit(&self) -> Vec<serde_json::Value> {
        self.gateway.hooks.audit.as_ref().unwrap().sync().await;
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `method path` with `body` as `user` in `groups`: status and body.
    async fn http(
        &self,
        method: &str,
        path: &str,
        (user, groups): (&str, &str),
        body: Option<Vec<u8>>,
    ) -> (u16, Vec<u8>) {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("x-forwarded-user", user)
            .header("x-forwarded-groups", groups);
        if let Some(b) = &body {
            req = req.header("content-length", b.len());
        }
        let req = req
            .body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let res = send
            .send_request(req)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let code = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec());
        (
            code,
            body.unwrap_or_else(|e| format!("BODY ERROR: {e}").into_bytes()),
        )
    }
}

/// Policies for gateways whose one user is the local `dev` (`PODTERM_AUTH=none`, as kubectl
/// sends no identity headers of its own): a developer and a viewer.
const LOCAL_DEV: &str = r#"
rules:
  - name: devs
    users: [dev]
    mode: shell
    debug:
      images: ["busybox:*"]
"#;
/// kubectl cp under a restricted rule: the heap dump may be read, files written into `in/`.
const LOCAL_SUPPORT: &str = r#"
rules:
  - name: support
    users: [dev]
    mode: restricted
    allow:
      - [id, "-u"]
    files:
      read: ["DIR/*.hprof"]
      write: ["DIR/in", "DIR/in/*"]
"#;
const LOCAL_VIEWER: &str = r#"
rules:
  - name: viewers
    users: [dev]
    mode: none
    logs: true
"#;

fn events<'a>(lines: &'a [serde_json::Value], event: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

#[tokio::test]
async fn kubectl_logs_attach_and_debug_through_podterm() {
    let world = World::start().await;
    let dev = world.local("dev", LOCAL_DEV).await;
    let viewer = world.local("viewer", LOCAL_VIEWER).await;
    for version in KUBECTL_VERSIONS {
        // Logs: tail, previous, follow that ends when the file rotates. The logger writes a
        // line each 100 ms from the cluster's start: ask until two are there.
        let mut lines = Vec::new();
        for _ in 0..100 {
            let out = world
                .kubectl(
                    dev,
                    version,
                    &["logs", "logger-0", "--tail=2", "--timestamps"],
                )
                .await;
            assert!(out.status.success(), "{version}: {}", text(&out.stderr));
            lines = text(&out.stdout).lines().map(String::from).collect();
            if lines.len() == 2 {
                break;
            }
        }
        assert_eq!(lines.len(), 2, "{version}: {lines:?}");
        assert!(
            lines[1].ends_with(" of app") && lines[1].contains('Z'),
            "{lines:?}"
        );
        let out = world
            .kubectl(dev, version, &["logs", "logger-0", "--previous"])
            .await;
        assert!(
            text(&out.stdout).starts_with("previous instance: line 0 of app\n"),
            "{version}"
        );
        let out = world
            .kubectl(dev, version, &["logs", "-f", "rotating-0"])
            .await;
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        let last = text(&out.stdout).lines().last().unwrap().to_string();
        let n: u64 = last.split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(
            n % 25,
            24,
            "the follow ends at the file's last line: {last}"
        );

        // A viewer (mode none, logs: true) reads logs but may not exec or attach.
        let out = world
            .kubectl(viewer, version, &["logs", "logger-0", "--tail=1"])
            .await;
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        let out = world
            .kubectl(viewer, version, &["exec", "tools", "--", "id"])
            .await;
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("grants no exec here"),
            "{}",
            text(&out.stderr)
        );

        // Attach joins the container's process, with the relay's usual end.
        let mut cmd = tokio::process::Command::new(kubectl_bin(version));
        cmd.args([
            "--server",
            &format!("http://{dev}/clusters/dev"),
            "attach",
            "-i",
            "echo-0",
        ])
        .env("HOME", world.dir.path())
        .env_remove("KUBECONFIG");
        let out = run(cmd, Some(b"attached hello\n")).await;
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("attached hello"), "{version}");

        // Debug: an allowed image becomes an ephemeral container kubectl attaches to.
        let mut cmd = tokio::process::Command::new(kubectl_bin(version));
        cmd.args([
            "--server",
            &format!("http://{dev}/clusters/dev"),
            "debug",
            "-i",
            "distroless-0",
            "--image=busybox:1.36",
            "--target=app",
        ])
        .env("HOME", world.dir.path())
        .env_remove("KUBECONFIG");
        let out = run(cmd, Some(b"echo debug-$((40+2))\nexit\n")).await;
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("debug-42"),
            "{version}: {}",
            text(&out.stdout)
        );
        let out = world
            .kubectl(
                dev,
                version,
                &["debug", "distroless-0", "--image=alpine:3", "--target=app"],
            )
            .await;
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("does not allow debug image \"alpine:3\""),
            "{}",
            text(&out.stderr)
        );
    }
    let pod = world
        .kubectl(
            dev,
            "1.33",
            &[
                "get",
                "pod",
                "distroless-0",
                "-o",
                "jsonpath={.spec.ephemeralContainers[*].image}",
            ],
        )
        .await;
    assert_eq!(text(&pod.stdout), ["busybox:1.36"; N].join(" "));
    let lines = world.audit().await;
    let logs = events(&lines, "logs.read");
    assert!(
        logs.iter()
            .any(|l| l["detail"]["previous"] == true && l["outcome"] == "ok")
    );
    assert!(
        logs.iter()
            .any(|l| l["user"] == "dev" && l["rule"] == "viewers")
    );
    let debug = events(&lines, "debug.create");
    assert_eq!(debug.iter().filter(|l| l["outcome"] == "ok").count(), N);
    let denied: Vec<_> = debug.iter().filter(|l| l["outcome"] == "denied").collect();
    assert_eq!(denied.len(), N);
    assert_eq!(denied[0]["detail"]["containers"][0]["image"], "alpine:3");
    let attach: Vec<_> = events(&lines, "session.start")
        .into_iter()
        .filter(|l| l["subresource"] == "attach")
        .collect();
    assert!(
        attach.len() >= 2 * N,
        "kubectl attach and debug both attach"
    );
}

#[tokio::test]
async fn files_in_and_out_under_the_policy() {
    let world = World::start().await;
    let files = world.files();
    std::fs::write(files.join("heap.hprof"), vec![0xAB; 300_000]).unwrap();
    std::fs::write(files.join("secret.txt"), b"secret").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", files.join("link.hprof")).unwrap();
    let url = |pod: &str, path: &Path| {
        format!(
            "/api/files/dev/default/{pod}?path={}",
            percent_encoding::utf8_percent_encode(
                path.to_str().unwrap(),
                percent_encoding::NON_ALPHANUMERIC
            )
        )
    };
    let dana = ("dana", "devs");
    let sam = ("sam", "support");

    // The seed's jmap case: support may download the heap dump and nothing else.
    let (code, body) = world
        .http("GET", &url("tools", &files.join("heap.hprof")), sam, None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(body, vec![0xAB; 300_000]);
    let (code, body) = world
        .http("GET", &url("tools", &files.join("secret.txt")), sam, None)
        .await;
    assert_eq!(code, 403, "{}", text(&body));
    assert!(
        text(&body).contains("does not allow reading"),
        "{}",
        text(&body)
    );
    let (code, _) = world
        .http(
            "PUT",
            &url("tools", &files.join("x.hprof")),
            sam,
            Some(b"x".to_vec()),
        )
        .await;
    assert_eq!(code, 403);
    // A symbolic link is not followed, even when its own name matches the glob.
    let (code, body) = world
        .http("GET", &url("tools", &files.join("link.hprof")), sam, None)
        .await;
    assert_eq!(code, 502, "{}", text(&body));
    assert!(text(&body).contains("links to"), "{}", text(&body));

    // Devs: upload, read back, a directory as a tar, clear refusals.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let target = files.join("up load.bin");
    let (code, body) = world
        .http("PUT", &url("tools", &target), dana, Some(data.clone()))
        .await;
    assert_eq!(code, 201, "{}", text(&body));
    assert_eq!(std::fs::read(&target).unwrap(), data);
    let (code, back) = world.http("GET", &url("tools", &target), dana, None).await;
    assert_eq!((code, back == data), (200, true));
    // A directory holding a link that leaves it is refused (checked before the answer).
    let (code, body) = world.http("GET", &url("tools", &files), dana, None).await;
    assert_eq!(code, 502, "{}", text(&body));
    assert!(text(&body).contains("link.hprof"), "{}", text(&body));
    std::fs::remove_file(files.join("link.hprof")).unwrap();
    let (code, tar) = world.http("GET", &url("tools", &files), dana, None).await;
    assert_eq!(code, 200);
    let listing = std::process::Command::new("tar")
        .args(["tf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(&tar)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        text(&listing.stdout).contains("files/up load.bin"),
        "{} {} {}",
        text(&listing.stdout),
        text(&listing.stderr),
        tar.len()
    );
    let (code, body) = world
        .http("GET", &url("tools", &files.join("nope")), dana, None)
        .await;
    assert_eq!(code, 404, "{}", text(&body));
    let (code, body) = world
        .http(
            "GET",
            &url("distroless-0", &files.join("heap.hprof")),
            dana,
            None,
        )
        .await;
    assert_eq!(code, 422);
    assert!(text(&body).contains("has no `tar`"), "{}", text(&body));
    let (code, _) = world
        .http(
            "GET",
            "/api/files/dev/default/tools?path=/tmp/../etc/shadow",
            dana,
            None,
        )
        .await;
    assert_eq!(code, 400);
    // Too large: refused from the head alone, before a byte of the body is read.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(world.addr).await.unwrap();
        let head = format!(
            "PUT {} HTTP/1.1\r\nhost: {}\r\nx-forwarded-user: dana\r\nx-forwarded-groups: devs\r\ncontent-length: 1000001\r\n\r\n",
            url("tools", &files.join("big")),
            world.addr
        );
        raw.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 12];
        raw.read_exact(&mut answer).await.unwrap();
        assert_eq!(text(&answer), "HTTP/1.1 413");
    }

    // A file over the limit is refused from its tar header.
    std::fs::write(files.join("huge.bin"), vec![1u8; 1_000_001]).unwrap();
    let (code, body) = world
        .http("GET", &url("tools", &files.join("huge.bin")), dana, None)
        .await;
    assert_eq!(code, 413, "{}", text(&body));
    std::fs::remove_file(files.join("huge.bin")).unwrap();

    // An upload cut off midway leaves nothing behind, and its line says so.
    {
        use tokio::io::AsyncWriteExt;
        let mut raw = tokio::net::TcpStream::connect(world.addr).await.unwrap();
        let head = format!(
            "PUT {} HTTP/1.1\r\nhost: {}\r\nx-forwarded-user: dana\r\nx-forwarded-groups: devs\r\ncontent-length: 200000\r\n\r\n",
            url("tools", &files.join("cut.bin")),
            world.addr
        );
        raw.write_all(head.as_bytes()).await.unwrap();
        raw.write_all(&[5u8; 100_000]).await.unwrap();
        drop(raw);
        let cut = |l: &serde_json::Value| {
            l["event"] == "file.write"
                && l["detail"]["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("cut.bin"))
        };
        let lines = world.audit_when(|lines| lines.iter().any(cut)).await;
        let line = lines.iter().find(|l| cut(l)).unwrap();
        assert_eq!(line["outcome"], "cancelled", "{line}");
        assert!(!files.join("cut.bin").exists());
    }

    // A hostile container's archives are refused before a byte reaches the caller.
    for attack in [
        "dotdot", "absolute", "symlink", "hardlink", "device", "outside",
    ] {
        let (code, body) = world
            .http("GET", &url("hostile-0", &files.join(attack)), dana, None)
            .await;
        assert_eq!(code, 502, "{attack}: {}", text(&body));
        assert!(
            text(&body).contains("tar stream podterm refuses"),
            "{attack}: {}",
            text(&body)
        );
        assert!(
            !text(&body).contains("pwned\\n"),
            "{attack}: no data, only the refusal"
        );
    }
    let (code, body) = world
        .http("GET", &url("hostile-0", &files.join("clean")), dana, None)
        .await;
    assert_eq!((code, text(&body).as_str()), (200, "clean\n"));

    let lines = world.audit().await;
    let reads = events(&lines, "file.read");
    let heap = reads
        .iter()
        .find(|l| l["user"] == "sam" && l["outcome"] == "ok")
        .unwrap();
    assert_eq!(heap["detail"]["bytes"], 300_000);
    let expected: String = ring_sha256(&vec![0xAB; 300_000]);
    assert_eq!(heap["detail"]["sha256"], expected);
    assert_eq!(
        reads.iter().filter(|l| l["outcome"] == "denied").count(),
        1 + 1 + 1 + 6,
        "the secret, the link, the directory with the link and six attacks"
    );
    let writes = events(&lines, "file.write");
    let up = writes.iter().find(|l| l["outcome"] == "ok").unwrap();
    assert_eq!(up["detail"]["sha256"], ring_sha256(&data));
    // Nothing half-written is left behind.
    assert!(std::fs::read_dir(&files).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".podterm-upload")
    }));
}

fn ring_sha256(data: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    text(&out.stdout).split(' ').next().unwrap().to_string()
}

#[tokio::test]
async fn kubectl_cp_both_ways_through_podterm() {
    let world = World::start().await;
    let dev = world.local("dev", LOCAL_DEV).await;
    let files = world.files();
    std::fs::write(files.join("in.txt"), b"from the container\n").unwrap();
    let local = world.dir.path().join("local");
    std::fs::create_dir(&local).unwrap();
    for version in KUBECTL_VERSIONS {
        let src = format!("tools:{}", files.join("in.txt").display());
        let dst = local.join(format!("got-{version}.txt"));
        let out = world
            .kubectl(dev, version, &["cp", &src, dst.to_str().unwrap()])
            .await;
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        assert_eq!(std::fs::read(&dst).unwrap(), b"from the container\n");
        let back = format!(
            "tools:{}",
            files.join(format!("back-{version}.txt")).display()
        );
        let out = world
            .kubectl(dev, version, &["cp", dst.to_str().unwrap(), &back])
            .await;
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        assert_eq!(
            std::fs::read(files.join(format!("back-{version}.txt"))).unwrap(),
            b"from the container\n"
        );
    }
}

#[tokio::test]
async fn kubectl_cp_is_judged_by_the_file_globs_and_its_stream_checked() {
    let world = World::start().await;
    let files = world.files();
    let policy = LOCAL_SUPPORT.replace("DIR", files.to_str().unwrap());
    let support = world.local("support", &policy).await;
    let dev = world.local("dev", LOCAL_DEV).await;
    std::fs::create_dir(files.join("in")).unwrap();
    std::fs::write(files.join("heap.hprof"), vec![3u8; 100_000]).unwrap();
    std::fs::write(files.join("secret.txt"), b"secret").unwrap();
    let local = world.dir.path().join("local");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(local.join("note.txt"), b"a note\n").unwrap();
    let at = |p: &str| format!("tools:{}", files.join(p).display());
    for version in KUBECTL_VERSIONS {
        // The seed's jmap case with kubectl: the dump comes out, nothing else does.
        let dst = local.join(format!("heap-{version}.hprof"));
        let out = world
            .kubectl(
                support,
                version,
                &["cp", &at("heap.hprof"), dst.to_str().unwrap()],
            )
            .await;
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        assert_eq!(std::fs::read(&dst).unwrap(), vec![3u8; 100_000]);
        let out = world
            .kubectl(
                support,
                version,
                &["cp", &at("secret.txt"), local.join("s").to_str().unwrap()],
            )
            .await;
        assert!(!out.status.success(), "{version}");
        assert!(
            text(&out.stderr).contains("does not allow reading"),
            "{}",
            text(&out.stderr)
        );
        assert!(!local.join("s").exists());
        // In: allowed into in/, refused elsewhere.
        let note = local.join("note.txt");
        let out = world
            .kubectl(
                support,
                version,
                &[
                    "cp",
                    note.to_str().unwrap(),
                    &at(&format!("in/note-{version}.txt")),
                ],
            )
            .await;
        assert!(out.status.success(), "{version}: {}", text(&out.stderr));
        assert_eq!(
            std::fs::read(files.join(format!("in/note-{version}.txt"))).unwrap(),
            b"a note\n"
        );
        let out = world
            .kubectl(
                support,
                version,
                &["cp", note.to_str().unwrap(), &at("elsewhere.txt")],
            )
            .await;
        assert!(!out.status.success(), "{version}");
        assert!(!files.join("elsewhere.txt").exists());
        // A hostile container's archive is cut where the bad entry comes, in any mode.
        let out = world
            .kubectl(
                dev,
                version,
                &[
                    "cp",
                    "hostile-0:/srv/dotdot",
                    local.join("d").to_str().unwrap(),
                ],
            )
            .await;
        assert!(!out.status.success(), "{version}: {}", text(&out.stdout));
    }
    assert!(
        !Path::new("/tmp/pwned").exists() || std::fs::read("/tmp/pwned").unwrap() != b"pwned\n"
    );
    let cp_lines = |lines: &[serde_json::Value]| {
        lines
            .iter()
            .filter(|l| l["detail"]["via"] == "kubectl cp")
            .count()
    };
    // Per version: a dump, a refused hostile read, a write.
    let lines = world.audit_when(|l| cp_lines(l) >= 3 * N).await;
    let reads = events(&lines, "file.read");
    let cp = |l: &serde_json::Value| l["detail"]["via"] == "kubectl cp";
    let ok: Vec<_> = reads
        .iter()
        .filter(|l| cp(l) && l["outcome"] == "ok")
        .collect();
    assert_eq!(ok.len(), N, "{ok:?}");
    assert_eq!(
        ok[0]["detail"]["path"],
        files.join("heap.hprof").to_str().unwrap()
    );
    assert_eq!(ok[0]["rule"], "support");
    let refused: Vec<_> = reads
        .iter()
        .filter(|l| cp(l) && l["outcome"] == "denied")
        .collect();
    assert_eq!(refused.len(), N, "the hostile reads");
    assert!(
        refused[0]["reason"].as_str().unwrap().contains("`..`"),
        "{}",
        refused[0]
    );
    let writes: Vec<_> = events(&lines, "file.write")
        .into_iter()
        .filter(|l| cp(l))
        .collect();
    assert_eq!(writes.iter().filter(|l| l["outcome"] == "ok").count(), N);
    let denied = events(&lines, "session.denied");
    assert!(denied.iter().any(|l| {
        l["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("does not allow writing")
    }));
}
