//! The dev cluster leaks no descriptors: after sessions of every kind (process with and without
//! a PTY, echo, flood; ended by exit, by the client, by a protocol error) and a shutdown, the
//! process holds exactly the descriptors it held before it started. One test in this binary so
//! that nothing else opens descriptors meanwhile.

#[path = "support/devcluster.rs"]
mod support;
#[path = "support/wsclient.rs"]
mod wsclient;

use std::time::{Duration, Instant};

use support::Dev;
use wsclient::{Client, exec_path, read_all, send};

fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("{} -> {target}", e.file_name().to_string_lossy())
        })
        .collect();
    fds.sort();
    fds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_shutdown_leave_no_descriptor_behind() {
    let dir = tempfile::tempdir().unwrap();
    // Warm up what opens descriptors once per process (the runtime's signal pipe, etc.).
    let warm = Dev::start().await;
    let client = Client::new(&warm.cluster);
    let mut ws = client
        .exec(&exec_path("tools", "command=true&stdout=true"))
        .await;
    read_all(&mut ws).await;
    drop(ws);
    warm.cluster.shutdown().await;
    let baseline_count = open_fds().len();

    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    for round in 0..3 {
        for query in [
            "command=sh&command=-c&command=echo%20hi%3B%20echo%20err%20%3E%262&stdout=true&stderr=true",
            "command=sh&command=-c&command=stty%20size&stdout=true&tty=true",
            "command=cat&stdin=true&stdout=true",
        ] {
            let mut ws = client.exec(&exec_path("tools", query)).await;
            send(&mut ws, 4, br#"{"Width":80,"Height":24}"#).await;
            send(&mut ws, 0, b"x").await;
            send(&mut ws, 255, &[0]).await;
            let t = read_all(&mut ws).await;
            assert_eq!(t.exit_code(), Some(0), "round {round}: {query}");
        }
        // Client leaves mid-exec, with and without a PTY.
        for tty in ["false", "true"] {
            let mut ws = client
                .exec(&exec_path(
                    "tools",
                    &format!("command=sleep&command=1000&stdin=true&stdout=true&tty={tty}"),
                ))
                .await;
            send(&mut ws, 4, br#"{"Width":80,"Height":24}"#).await;
            drop(ws);
        }
        // A protocol error, echo and flood.
        let mut ws = client
            .exec(&exec_path("echo-0", "command=cat&stdin=true&stdout=true"))
            .await;
        send(&mut ws, 1, b"bad").await;
        assert_eq!(read_all(&mut ws).await.close_code, Some(1008));
        let mut ws = client
            .exec(&exec_path("flood-0", "command=100000&stdout=true"))
            .await;
        assert_eq!(read_all(&mut ws).await.stdout.len(), 100_000);
    }
    dev.cluster.shutdown().await;
    drop(dir);

    // Client-side connection tasks finish on their own schedule; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = open_fds();
        if now.len() <= baseline_count {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} descriptors before, now {}: {now:#?}",
            baseline_count,
            now.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
