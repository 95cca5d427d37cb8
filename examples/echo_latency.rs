//! Echo latency: types single keystrokes into `echo-0` straight to the dev cluster and through
//! podterm, in the same run, and prints the round-trip medians and p99s (what podterm adds).
//!
//! Run: `cargo run --release --example echo_latency [KEYSTROKES]` (default 5000 each way).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use podterm::cluster::{ActAs, Cluster, Clusters, install_crypto_provider};
use podterm::config::Config;
use podterm::devcluster::{DevCluster, DevClusterConfig};
use podterm::gateway::Gateway;
use podterm::protocol;
use podterm::server;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

const WARM_UP: usize = 500;
const EXEC: &str = "/api/v1/namespaces/default/pods/echo-0/exec?command=cat&stdin=true&stdout=true";

#[tokio::main]
async fn main() {
    install_crypto_provider();
    let keystrokes: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("KEYSTROKES is a number"))
        .unwrap_or(5000);
    let dir = tempfile::tempdir().unwrap();
    let dev = DevCluster::start(DevClusterConfig::ephemeral(
        dir.path().join("dev.kubeconfig"),
    ))
    .await
    .expect("dev cluster");

    // Straight: kube's client (TLS, bearer token) to the dev cluster.
    let clusters = Clusters::from_kubeconfig_file(&dev.kubeconfig, &[])
        .await
        .unwrap();
    let cluster: Arc<Cluster> = clusters.get("dev").unwrap().clone();
    let mut straight = cluster
        .exec(EXEC, &[protocol::V5], ActAs::Podterm)
        .await
        .expect("straight exec")
        .socket();

    // Through podterm: the gateway on loopback in front of the same cluster.
    let config = Config::from_vars([
        ("PODTERM_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        ("PODTERM_AUTH".to_string(), "none".to_string()),
    ])
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gateway = Arc::new(Gateway::new(config, clusters));
    tokio::spawn(server::run(listener, gateway));
    let mut through = podterm_exec(addr).await;

    for ws in [&mut straight as &mut dyn Typist, &mut through] {
        ws.measure(WARM_UP).await;
    }
    // Alternate blocks so that both see the same machine conditions.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let block = 250;
    while a.len() < keystrokes {
        a.extend(straight.measure(block).await);
        b.extend(through.measure(block).await);
    }
    let (sa, sb) = (stats(&mut a), stats(&mut b));
    println!(
        "echo round trip, {} single keystrokes each, {} warm-up",
        a.len(),
        WARM_UP
    );
    println!(
        "straight to the dev cluster: median {:>7.1} µs   p99 {:>7.1} µs",
        sa.0, sa.1
    );
    println!(
        "through podterm:             median {:>7.1} µs   p99 {:>7.1} µs",
        sb.0, sb.1
    );
    println!(
        "podterm adds:                median {:>7.1} µs   p99 {:>7.1} µs",
        sb.0 - sa.0,
        sb.1 - sa.1
    );
}

/// Median and p99, in microseconds.
fn stats(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

trait Typist {
    /// Types `n` keystrokes, one at a time, each waiting for its echo; the round trips.
    fn measure(
        &mut self,
        n: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Duration>> + '_>>;
}

impl<S: AsyncRead + AsyncWrite + Unpin> Typist for WebSocket<S> {
    fn measure(
        &mut self,
        n: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Duration>> + '_>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let key = b'a' + (i % 26) as u8;
                let sent = Instant::now();
                self.write_frame(Frame::binary(Payload::Owned(vec![protocol::STDIN, key])))
                    .await
                    .expect("write");
                loop {
                    let frame = self.read_frame().await.expect("read");
                    if frame.opcode == OpCode::Binary && frame.payload.len() > 1 {
                        assert_eq!(&frame.payload[..], &[protocol::STDOUT, key]);
                        break;
                    }
                }
                out.push(sent.elapsed());
            }
            out
        })
    }
}

async fn podterm_exec(addr: std::net::SocketAddr) -> WebSocket<TokioIo<hyper::upgrade::Upgraded>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let req = hyper::Request::get(format!("/clusters/dev{EXEC}"))
        .header("host", addr.to_string())
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header(
            "sec-websocket-key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("sec-websocket-protocol", protocol::V5)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let mut res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 101, "podterm exec");
    let upgraded = hyper::upgrade::on(&mut res).await.unwrap();
    WebSocket::after_handshake(TokioIo::new(upgraded), Role::Client)
}
