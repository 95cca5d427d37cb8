//! Micro-benchmarks of the relay's frame path over in-memory pipes, each beside the same traffic without the relay.
//!
//! `cargo bench --bench relay` (release profile, one-thread runtime, so the figures are the
//! CPU cost of one session's frames): keystroke round trips (`[0, b]` in, `[1, b]` back) and
//! bulk stdout in 64 KiB frames over `tokio::io::duplex`; then the resident memory of idle
//! sessions over loopback TCP, each count in a fresh process (mimalloc, as in podterm).

use std::time::{Duration, Instant};

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use podterm::relay::{RelayConfig, relay};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bytes each in-memory pipe buffers (one socket's kernel buffer, roughly).
const PIPE_BYTES: usize = 64 * 1024;
/// Keystroke round trips per measurement.
const KEYSTROKES: u32 = 50_000;
/// Bulk stdout frame payload, in bytes (the dev cluster's flood frame).
const BULK_FRAME_BYTES: usize = 64 * 1024;
/// Bulk bytes per measurement.
const BULK_BYTES: usize = 512 << 20;
/// Idle sessions per memory measurement (four loopback sockets each through the relay).
const IDLE_SESSIONS: usize = 2000;

fn config() -> RelayConfig {
    RelayConfig {
        v5: true,
        ping_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(600),
        max_duration: Duration::from_secs(600),
        max_client_frame_bytes: 256 * 1024,
        max_upstream_frame_bytes: 4 << 20,
        bytes: Default::default(),
        recording: None,
        flow: flow(),
        session_bytes: Default::default(),
        ended_by: Default::default(),
        copy: None,
    }
}

/// `BENCH_FLOW=1`: sessions under podterm's flow control (crate::protocol::flow), the bulk
/// client acking every 64 KiB as the page does.
fn flow() -> bool {
    std::env::var_os("BENCH_FLOW").is_some_and(|v| v == "1")
}

/// A client socket and a cluster socket, joined through the relay or directly.
fn pair(through_relay: bool) -> (WebSocket<DuplexStream>, WebSocket<DuplexStream>) {
    if !through_relay {
        let (client, cluster) = tokio::io::duplex(PIPE_BYTES);
        return (
            WebSocket::after_handshake(client, Role::Client),
            WebSocket::after_handshake(cluster, Role::Server),
        );
    }
    let (client, gateway_client) = tokio::io::duplex(PIPE_BYTES);
    let (gateway_cluster, cluster) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(async move {
        relay(
            gateway_client,
            gateway_cluster,
            &config(),
            std::future::pending(),
        )
        .await;
    });
    (
        WebSocket::after_handshake(client, Role::Client),
        WebSocket::after_handshake(cluster, Role::Server),
    )
}

async fn next_binary<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> Vec<u8> {
    loop {
        let frame = ws.read_frame().await.expect("a frame");
        match frame.opcode {
            OpCode::Binary => return frame.payload.to_vec(),
            OpCode::Ping | OpCode::Pong => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Mean time of one keystroke round trip.
async fn keystrokes(through_relay: bool) -> Duration {
    let (mut client, mut cluster) = pair(through_relay);
    let echo = tokio::spawn(async move {
        for _ in 0..KEYSTROKES {
            let mut frame = next_binary(&mut cluster).await;
            frame[0] = 1;
            let out = Frame::binary(Payload::Owned(frame));
            cluster.write_frame(out).await.expect("echo");
        }
    });
    let started = Instant::now();
    for i in 0..KEYSTROKES {
        let byte = b'a' + (i % 26) as u8;
        let frame = Frame::binary(Payload::Owned(vec![0, byte]));
        client.write_frame(frame).await.expect("keystroke");
        assert_eq!(next_binary(&mut client).await, [1, byte]);
    }
    let took = started.elapsed();
    echo.await.expect("echo task");
    took / KEYSTROKES
}

/// Throughput of stdout in `BULK_FRAME_BYTES` frames, in MiB/s.
async fn bulk(through_relay: bool) -> f64 {
    let (mut client, mut cluster) = pair(through_relay);
    let mut frame = vec![b'x'; BULK_FRAME_BYTES + 1];
    frame[0] = 1;
    let flood = tokio::spawn(async move {
        for _ in 0..BULK_BYTES / BULK_FRAME_BYTES {
            let out = Frame::binary(Payload::Borrowed(&frame));
            cluster.write_frame(out).await.expect("stdout");
        }
    });
    let started = Instant::now();
    let mut received = 0;
    let mut acked = 0;
    while received < BULK_BYTES {
        received += next_binary(&mut client).await.len() - 1;
        if through_relay && flow() && received - acked >= 64 * 1024 {
            acked = received;
            let ack = podterm::protocol::flow::ack_frame(acked as u64);
            client
                .write_frame(Frame::binary(Payload::Owned(ack.to_vec())))
                .await
                .expect("ack");
        }
    }
    let took = started.elapsed();
    flood.await.expect("flood task");
    received as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

/// Resident bytes of this process.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Opens `IDLE_SESSIONS` sessions over loopback TCP (client ↔ [relay ↔] cluster echo), types
/// one keystroke in each, and returns the resident bytes they added, per session.
async fn idle_memory(through_relay: bool) -> usize {
    let cluster_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let cluster_addr = cluster_listener.local_addr().expect("address");
    let gateway_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway_addr = gateway_listener.local_addr().expect("address");
    let connect = |addr| async move {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
    };
    let before = rss_bytes();
    let mut clients = Vec::with_capacity(IDLE_SESSIONS);
    for _ in 0..IDLE_SESSIONS {
        let client_addr = if through_relay {
            gateway_addr
        } else {
            cluster_addr
        };
        let client = connect(client_addr).await;
        if through_relay {
            let (accepted, _) = gateway_listener.accept().await.expect("accept");
            let upstream = connect(cluster_addr).await;
            tokio::spawn(async move {
                relay(accepted, upstream, &config(), std::future::pending()).await;
            });
        }
        let (cluster, _) = cluster_listener.accept().await.expect("accept");
        tokio::spawn(async move {
            let mut cluster = WebSocket::after_handshake(cluster, Role::Server);
            loop {
                let mut frame = next_binary(&mut cluster).await;
                frame[0] = 1;
                let echo = Frame::binary(Payload::Owned(frame));
                cluster.write_frame(echo).await.expect("echo");
            }
        });
        let mut client = WebSocket::after_handshake(client, Role::Client);
        let keystroke = Frame::binary(Payload::Owned(vec![0, b'k']));
        client.write_frame(keystroke).await.expect("keystroke");
        assert_eq!(next_binary(&mut client).await, [1, b'k']);
        clients.push(client);
    }
    (rss_bytes() - before) / IDLE_SESSIONS
}

fn main() {
    // `relay --idle-memory direct|relay`: one memory measurement, in a process of its own.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--idle-memory") {
        let through_relay = args.get(i + 1).is_some_and(|m| m == "relay");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        println!("{}", runtime.block_on(idle_memory(through_relay)));
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Warm-up: allocator, page faults, branch predictors.
        keystrokes(true).await;
        let direct = keystrokes(false).await;
        let relayed = keystrokes(true).await;
        println!(
            "keystroke round trip: direct {:>7.2} µs, through the relay {:>7.2} µs (+{:.2} µs)",
            direct.as_secs_f64() * 1e6,
            relayed.as_secs_f64() * 1e6,
            (relayed.as_secs_f64() - direct.as_secs_f64()) * 1e6,
        );
        let direct = bulk(false).await;
        let relayed = bulk(true).await;
        println!(
            "bulk stdout, 64 KiB frames: direct {direct:>7.0} MiB/s, through the relay \
             {relayed:>7.0} MiB/s ({:.0} %)",
            100.0 * relayed / direct
        );
    });
    let measure = |mode: &str| -> f64 {
        let exe = std::env::current_exe().expect("own path");
        let out = std::process::Command::new(exe)
            .args(["--idle-memory", mode])
            .output()
            .expect("memory run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("bytes");
        bytes / 1024.0
    };
    let future_bytes = {
        let (client, _) = tokio::io::duplex(1);
        let (upstream, _) = tokio::io::duplex(1);
        let config = config();
        std::mem::size_of_val(&relay(client, upstream, &config, std::future::pending()))
    };
    println!("relay future (one session's state, over duplex pipes): {future_bytes} bytes");
    let (direct, relayed) = (measure("direct"), measure("relay"));
    println!(
        "idle session, resident memory ({IDLE_SESSIONS} sessions, loopback TCP): direct \
         {direct:.1} KiB, through the relay {relayed:.1} KiB (relay adds {:.1} KiB)",
        relayed - direct
    );
}
