//! Process-backed containers leave nothing behind: when the client goes away mid-exec (or the
//! dev cluster shuts down) the whole process group is killed and reaped — no zombies (a
//! zombie keeps its /proc entry, so "gone from /proc" means reaped too). The processes' ends
//! are awaited on pidfds, not timed.

#[path = "support/process.rs"]
mod process;
#[path = "support/devcluster.rs"]
mod support;
#[path = "support/wsclient.rs"]
mod wsclient;

use std::time::Duration;

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
        process::reaped(&pids).await;
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
    process::reaped(&pids).await;
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
    let shutdown = tokio::spawn(dev.cluster.shutdown());
    let t = wsclient::read_all(&mut ws).await;
    assert_eq!(t.close_code, Some(1001));
    let t = wsclient::read_all(&mut echo).await;
    assert_eq!(t.close_code, Some(1001));
    shutdown.await.unwrap();
    process::reaped(&pids).await;
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
    // Without the fix this waits forever on the blocked pump; the bound only catches that.
    tokio::time::timeout(Duration::from_secs(60), dev.cluster.shutdown())
        .await
        .expect("shutdown ends though the client reads nothing");
    process::reaped(&pids).await;
    drop(ws);
}
