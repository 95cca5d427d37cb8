//! Process-backed containers leave nothing behind: when the client goes away mid-exec (or the
//! dev cluster shuts down) the whole process group is killed and reaped within a second — no
//! zombies (a zombie keeps its /proc entry, so "gone from /proc" means reaped too).

#[path = "support/devcluster.rs"]
mod support;
#[path = "support/wsclient.rs"]
mod wsclient;

use std::time::{Duration, Instant};

use fastwebsockets::Frame;
use support::Dev;
use wsclient::{Client, Ws, exec_path};

/// Reads stdout up to the first line, which holds `count` whitespace-separated pids.
async fn read_pids(ws: &mut Ws, count: usize) -> Vec<u32> {
    let mut text = String::new();
    loop {
        // Output may follow the first line in the same frame.
        if let Some(end) = text.find('\n') {
            let pids: Vec<u32> = text[..end]
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            assert_eq!(pids.len(), count, "{:?}", &text[..end]);
            return pids;
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.read_frame())
            .await
            .expect("first line within 10 s")
            .expect("frame");
        assert_eq!(
            frame.payload[0],
            1,
            "{:?}",
            String::from_utf8_lossy(&frame.payload)
        );
        text.push_str(&String::from_utf8_lossy(&frame.payload[1..]));
    }
}

/// Waits (at most `limit`) until none of `pids` exists any more, zombies included.
async fn assert_gone_within(pids: &[u32], limit: Duration) {
    let start = Instant::now();
    loop {
        let alive: Vec<&u32> = pids
            .iter()
            .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
            .collect();
        if alive.is_empty() {
            return;
        }
        if start.elapsed() > limit {
            let states: Vec<String> = alive
                .iter()
                .map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default())
                .collect();
            panic!("still there after {limit:?}: {states:?}");
        }
        // Observing another process's exit has no event to wait on here; poll briefly.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const SLEEPERS: &str =
    "command=sh&command=-c&command=sleep%201000%20%26%20echo%20%24%24%20%24!%3B%20sleep%201000";

#[tokio::test]
async fn a_vanished_client_leaves_no_process_behind() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    for tty in ["false", "true"] {
        let mut ws = client
            .exec(&exec_path(
                "tools",
                &format!("{SLEEPERS}&stdin=true&stdout=true&tty={tty}"),
            ))
            .await;
        wsclient::send(&mut ws, 4, br#"{"Width":80,"Height":24}"#).await;
        // The shell and its background sleep (same process group).
        let pids = read_pids(&mut ws, 2).await;
        for p in &pids {
            assert!(std::path::Path::new(&format!("/proc/{p}")).exists());
        }
        drop(ws); // the TCP connection goes away without a Close frame
        assert_gone_within(&pids, Duration::from_secs(1)).await;
    }
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn a_client_close_frame_ends_the_process() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let mut ws = client
        .exec(&exec_path("tools", &format!("{SLEEPERS}&stdout=true")))
        .await;
    let pids = read_pids(&mut ws, 2).await;
    ws.write_frame(Frame::close(1000, b"")).await.unwrap();
    assert_gone_within(&pids, Duration::from_secs(1)).await;
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_sessions_and_their_processes() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let mut ws = client
        .exec(&exec_path("tools", &format!("{SLEEPERS}&stdout=true")))
        .await;
    let pids = read_pids(&mut ws, 2).await;
    let mut echo = client
        .exec(&exec_path("echo-0", "command=cat&stdin=true&stdout=true"))
        .await;
    let workdir_parent = std::fs::read_link(format!("/proc/{}/cwd", pids[0])).unwrap();
    let started = Instant::now();
    let shutdown = tokio::spawn(dev.cluster.shutdown());
    let t = wsclient::read_all(&mut ws).await;
    assert_eq!(t.close_code, Some(1001));
    let t = wsclient::read_all(&mut echo).await;
    assert_eq!(t.close_code, Some(1001));
    shutdown.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_gone_within(&pids, Duration::from_secs(1)).await;
    assert!(
        !workdir_parent.exists(),
        "the per-start directory is removed"
    );
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_a_client_that_reads_nothing() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let mut ws = client
        .exec(&exec_path(
            "tools",
            "command=sh&command=-c&command=echo%20%24%24%3B%20exec%20cat%20/dev/zero&stdout=true",
        ))
        .await;
    let pids = read_pids(&mut ws, 1).await;
    // From here on the client reads nothing: the output pump blocks on its full socket.
    let started = Instant::now();
    dev.cluster.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_gone_within(&pids, Duration::from_secs(1)).await;
    drop(ws);
}
