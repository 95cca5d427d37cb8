//! Backpressure end to end: a client that does not read while `flood-0` writes 1 GiB leaves
//! the gateway's resident memory within 32 MiB of where it started, and the session still
//! ends cleanly (all bytes, exit 0, close 1000). The gateway is the real binary
//! (`podterm serve`), so its memory is measured alone, from /proc.

#[path = "support/gateway.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fastwebsockets::OpCode;
use podterm::devcluster::{DevCluster, DevClusterConfig};
use support::{Stream, exec, exec_path, read_to_end, spawn_podterm};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// How long the client reads nothing while the flood pushes.
const STALL: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_does_not_grow_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DevCluster::start(DevClusterConfig::ephemeral(
        dir.path().join("dev.kubeconfig"),
    ))
    .await
    .expect("dev cluster");
    let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_string();
    let (gateway, addr) = spawn_podterm(
        &["serve"],
        &[
            ("PODTERM_LISTEN", "127.0.0.1:0"),
            ("PODTERM_KUBECONFIG", &kubeconfig),
            ("PODTERM_AUTH", "none"),
            ("PODTERM_LOG_FORMAT", "json"),
        ],
        |line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (v["message"] == "podterm serving")
                .then(|| v["listen"].as_str().unwrap().parse().unwrap())
        },
        Stream::Stderr,
    )
    .await;
    let protocols = "v5.channel.k8s.io";

    // Warm up: one small session, so that one-time allocations are behind us.
    let (mut ws, _) = exec(
        addr,
        &exec_path("default", "flood-0", "command=65536&stdout=true"),
        &[],
        protocols,
    )
    .await
    .expect("warm-up exec");
    assert_eq!(
        read_to_end(&mut ws, Duration::from_secs(10))
            .await
            .stdout
            .len(),
        65536
    );

    let pid = gateway.pid();
    let start_rss = support::rss_bytes(pid);
    let peak = Arc::new(AtomicU64::new(start_rss));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(support::rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let query = format!("command={GIB}&stdout=true&stderr=true");
    let (mut ws, _) = exec(
        addr,
        &exec_path("default", "flood-0", &query),
        &[],
        protocols,
    )
    .await
    .expect("flood exec");
    tokio::time::sleep(STALL).await;
    let stalled_peak = peak.load(Ordering::Relaxed);

    // Now read it all.
    let began = Instant::now();
    let mut stdout = 0u64;
    let mut status = None;
    let close = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let frame = ws.read_frame().await.expect("frame");
            match frame.opcode {
                OpCode::Binary if frame.payload.first() == Some(&1) => {
                    stdout += frame.payload.len() as u64 - 1;
                }
                OpCode::Binary if frame.payload.first() == Some(&3) => {
                    status =
                        serde_json::from_slice::<podterm::protocol::Status>(&frame.payload[1..])
                            .ok();
                }
                OpCode::Close => return u16::from_be_bytes([frame.payload[0], frame.payload[1]]),
                _ => {}
            }
        }
    })
    .await
    .expect("the flood ends within 300 s");
    let read_time = began.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);

    eprintln!(
        "gateway RSS: start {} MiB, peak while stalled {} MiB, peak overall {} MiB; 1 GiB read in {:?}",
        start_rss / MIB,
        stalled_peak / MIB,
        peak / MIB,
        read_time
    );
    assert_eq!(stdout, GIB);
    assert_eq!(status.and_then(|s| s.exit_code()), Some(0));
    assert_eq!(close, 1000);
    assert!(
        peak < start_rss + 32 * MIB,
        "gateway RSS grew from {} MiB to {} MiB",
        start_rss / MIB,
        peak / MIB
    );
    drop(gateway);
    cluster.shutdown().await;
}
