//! Test support for the gateway: the gateway in-process or as the real binary, in front of the
//! dev cluster; a raw exec WebSocket client; kubectl and the Python client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use http_body_util::{BodyExt as _, Empty};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use podterm::cluster::Clusters;
use podterm::config::Config;
use podterm::devcluster::{DevCluster, DevClusterConfig};
use podterm::gateway::Gateway;
use podterm::protocol::Status;
use podterm::server;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[path = "command.rs"]
mod command;
#[allow(unused_imports)] // not every test binary uses each
pub use command::{KUBECTL_VERSIONS, kubectl_bin, run, text};

pub type Socket = WebSocket<TokioIo<Upgraded>>;

/// The gateway in this process, in front of an in-process dev cluster.
pub struct Stack {
    pub cluster: DevCluster,
    pub gateway: Arc<Gateway>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// Starts both; `vars` are `PODTERM_*` settings for the gateway.
    pub async fn start(vars: &[(&str, &str)]) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = DevCluster::start(DevClusterConfig::ephemeral(
            dir.path().join("dev.kubeconfig"),
        ))
        .await
        .expect("dev cluster starts");
        let (gateway, addr) = start_gateway(&cluster.kubeconfig, vars).await;
        Stack {
            cluster,
            gateway,
            addr,
            dir,
        }
    }
}

/// The gateway on 127.0.0.1:0 in this process, serving the kubeconfig's contexts.
pub async fn start_gateway(kubeconfig: &Path, vars: &[(&str, &str)]) -> (Arc<Gateway>, SocketAddr) {
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let config = Config::from_vars(vars).expect("gateway config");
    let clusters = Clusters::from_kubeconfig_file(kubeconfig, &[])
        .await
        .expect("clusters from the kubeconfig");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let gateway = Arc::new(Gateway::new(config, clusters));
    tokio::spawn(server::run(listener, gateway.clone()));
    (gateway, addr)
}

/// An answer to a request that was not upgraded.
#[derive(Debug)]
pub struct Refusal {
    pub code: u16,
    pub body: Bytes,
}

impl Refusal {
    pub fn status(&self) -> Status {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not a Status ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// `GET path` on the gateway with `headers`; the code and body.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Refusal {
    let res = fetch(addr, path, headers).await;
    Refusal {
        code: res.status().as_u16(),
        body: res.into_body(),
    }
}

/// `GET path` on the gateway with `headers`; the whole answer, its body read.
pub async fn fetch(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> hyper::Response<Bytes> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .expect("response");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    hyper::Response::from_parts(parts, body)
}

/// Opens an exec WebSocket on the gateway offering `protocols`; the socket and the
/// subprotocol answered, or the refusal.
pub async fn exec(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
    protocols: &str,
) -> Result<(Socket, String), Refusal> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http handshake");
    tokio::spawn(conn.with_upgrades());
    let mut req = hyper::Request::get(path_and_query)
        .header("host", addr.to_string())
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header(
            "sec-websocket-key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("sec-websocket-protocol", protocols);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut res = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .expect("response");
    if res.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        let code = res.status().as_u16();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        return Err(Refusal { code, body });
    }
    let protocol = res
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let upgraded = hyper::upgrade::on(&mut res).await.expect("upgrade");
    let mut ws = WebSocket::after_handshake(TokioIo::new(upgraded), Role::Client);
    ws.set_auto_close(false);
    Ok((ws, protocol))
}

/// Exec path on the gateway for cluster `dev`.
pub fn exec_path(namespace: &str, pod: &str, query: &str) -> String {
    format!("/clusters/dev/api/v1/namespaces/{namespace}/pods/{pod}/exec?{query}")
}

/// What an exec session produced, read until the close frame.
#[derive(Debug, Default)]
pub struct Ended {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Option<Status>,
    pub close_code: Option<u16>,
    pub close_reason: String,
}

impl Ended {
    pub fn exit_code(&self) -> Option<i32> {
        self.status.as_ref().and_then(Status::exit_code)
    }
}

pub fn binary(bytes: &[u8]) -> Frame<'static> {
    Frame::binary(Payload::Owned(bytes.to_vec()))
}

/// Reads frames until the close frame (or the connection ends), within `limit`.
pub async fn read_to_end<S>(ws: &mut WebSocket<S>, limit: Duration) -> Ended
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut ended = Ended::default();
    let result = tokio::time::timeout(limit, async {
        loop {
            let frame = match ws.read_frame().await {
                Ok(f) => f,
                Err(_) => return,
            };
            match frame.opcode {
                OpCode::Binary => match frame.payload.first() {
                    Some(1) => ended.stdout.extend_from_slice(&frame.payload[1..]),
                    Some(2) => ended.stderr.extend_from_slice(&frame.payload[1..]),
                    Some(3) => ended.status = serde_json::from_slice(&frame.payload[1..]).ok(),
                    _ => {}
                },
                OpCode::Close => {
                    if frame.payload.len() >= 2 {
                        ended.close_code =
                            Some(u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                        ended.close_reason =
                            String::from_utf8_lossy(&frame.payload[2..]).into_owned();
                    }
                    return;
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "the session did not end within {limit:?}: {ended:?}"
    );
    ended
}

/// The real `podterm` binary as a child process; SIGTERM and wait on drop.
pub struct Child {
    pub child: tokio::process::Child,
    pub dir: tempfile::TempDir,
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Resident memory of the process, in bytes (VmRSS).
    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(self.pid())
    }

    /// Sends SIGKILL and waits.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            let _ = std::process::Command::new("sh")
                // Up to 5 s for a clean exit; kill_on_drop's SIGKILL follows.
                .args([
                    "-c",
                    &format!("for _ in $(seq 100); do kill -0 {pid} 2>/dev/null || exit; sleep 0.05; done"),
                ])
                .status();
        }
    }
}

/// Resident memory of `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Starts `podterm ARGS` with `env`, in a temp dir, and reads stdout until `ready` returns
/// `Some` for a line (within 30 s).
pub async fn spawn_podterm<T>(
    args: &[&str],
    env: &[(&str, &str)],
    mut ready: impl FnMut(&str) -> Option<T>,
    stream: Stream,
) -> (Child, T) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_podterm"));
    cmd.args(args)
        .current_dir(dir.path())
        .env("PODTERM_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn podterm");
    let out: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match stream {
        Stream::Stdout => Box::new(child.stdout.take().unwrap()),
        Stream::Stderr => Box::new(child.stderr.take().unwrap()),
    };
    let mut lines = BufReader::new(out).lines();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read output") {
            if let Some(found) = ready(&line) {
                return found;
            }
        }
        panic!("podterm {args:?} exited before it was ready");
    })
    .await
    .expect("podterm ready within 30 s");
    // Keep draining the stream so that the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (Child { child, dir }, found)
}

/// Which output of a child announces readiness.
pub enum Stream {
    Stdout,
    Stderr,
}

/// `podterm dev` on 127.0.0.1:0: the child, the gateway's address and the dev cluster's
/// kubeconfig.
pub async fn podterm_dev(env: &[(&str, &str)]) -> (Child, SocketAddr, PathBuf) {
    let mut env = env.to_vec();
    env.push(("PODTERM_LISTEN", "127.0.0.1:0"));
    let mut addr = None;
    let (child, kubeconfig) = spawn_podterm(
        &["dev"],
        &env,
        |line| {
            if let Some(rest) = line.strip_prefix("podterm dev: open http://") {
                addr = Some(rest.trim_end_matches('/').parse::<SocketAddr>().unwrap());
            }
            line.strip_prefix("dev cluster kubeconfig: ")
                .map(PathBuf::from)
        },
        Stream::Stdout,
    )
    .await;
    let kubeconfig = child.dir.path().join(kubeconfig);
    (child, addr.expect("address line first"), kubeconfig)
}
