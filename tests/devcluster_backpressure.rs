//! Backpressure: a client that stops reading stops the producer. A process writing flat out
//! gets blocked (its written-bytes count stalls) and the in-process flood stops; neither
//! grows the dev cluster's memory. The client then reads on and gets every byte.

#[path = "support/devcluster.rs"]
mod support;
#[path = "support/wsclient.rs"]
mod wsclient;

use std::time::Duration;

use support::Dev;
use wsclient::{Client, exec_path};

/// How long the client does not read: long enough for an unbounded producer to write GBs.
const STALL: Duration = Duration::from_millis(1500);
/// Output that may sit in bounded buffers (pipe, read buffer, TLS, loopback socket buffers).
const IN_FLIGHT_LIMIT: u64 = 48 << 20;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

fn written_by(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_stops_a_process() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    // Prints its pid, then writes zeros forever.
    let mut ws = client
        .exec(&exec_path(
            "tools",
            "command=sh&command=-c&command=echo%20%24%24%3B%20exec%20cat%20/dev/zero&stdout=true",
        ))
        .await;
    let first = ws.read_frame().await.unwrap();
    let text = String::from_utf8_lossy(&first.payload[1..]).to_string();
    let pid: u32 = text.split_whitespace().next().unwrap().parse().unwrap();
    let rss_before = rss_bytes();
    tokio::time::sleep(STALL).await;
    let written = written_by(pid);
    assert!(
        written < IN_FLIGHT_LIMIT,
        "the process wrote {written} bytes to a client that reads nothing"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        written_by(pid) - written < 1 << 20,
        "it keeps writing: not blocked"
    );
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(grown < IN_FLIGHT_LIMIT, "memory grew by {grown} bytes");
    // Reading resumes the flow.
    let mut got = 0usize;
    while got < 8 << 20 {
        got += ws.read_frame().await.unwrap().payload.len() - 1;
    }
    drop(ws);
    dev.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_stops_the_flood() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let total: u64 = 4 << 30;
    let mut ws = client
        .exec(&exec_path(
            "flood-0",
            &format!("command={total}&stdout=true"),
        ))
        .await;
    let rss_before = rss_bytes();
    tokio::time::sleep(STALL).await;
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(grown < IN_FLIGHT_LIMIT, "memory grew by {grown} bytes");
    // The flood is still in its first megabytes: it waited for the reader.
    let mut got = 0u64;
    while got < 16 << 20 {
        let frame = ws.read_frame().await.unwrap();
        assert_eq!(frame.payload[0], 1, "no exit status yet");
        got += frame.payload.len() as u64 - 1;
    }
    drop(ws);
    dev.cluster.shutdown().await;
}
