//! Faults: a client that vanishes ends the exec at once (the dev cluster's process is reaped
//! within a second); a dev cluster killed mid-session gives the client 1011; a stdin frame
//! over `PODTERM_MAX_FRAME_BYTES` closes the session with 1009.

#[path = "support/process.rs"]
mod process;
#[path = "support/gateway.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use fastwebsockets::OpCode;
use support::{
    Socket, Stack, Stream, binary, exec, exec_path, read_to_end, spawn_podterm, start_gateway,
};

const PROTOCOLS: &str = "v5.channel.k8s.io, v4.channel.k8s.io";

fn no_auth() -> [(&'static str, &'static str); 2] {
    [("PODTERM_LISTEN", "127.0.0.1:0"), ("PODTERM_AUTH", "none")]
}

/// Reads stdout until it holds a full line.
async fn first_line(ws: &mut Socket) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !out.contains(&b'\n') {
            let frame = ws.read_frame().await.expect("frame");
            if frame.opcode == OpCode::Binary && frame.payload.first() == Some(&1) {
                out.extend_from_slice(&frame.payload[1..]);
            }
        }
    })
    .await
    .expect("a line within 10 s");
    String::from_utf8(out).unwrap().trim().to_string()
}

/// Whether `pid` still exists (a zombie counts: it has not been reaped).
fn exists(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn a_client_that_vanishes_ends_the_exec_and_the_process_is_reaped() {
    let s = Stack::start(&no_auth()).await;
    let query = "command=sh&command=-c&command=echo%20%24%24%3B%20exec%20sleep%203600&stdin=true&stdout=true";
    let (mut ws, _) = exec(
        s.addr,
        &exec_path("default", "tools", query),
        &[],
        PROTOCOLS,
    )
    .await
    .expect("exec");
    let pid: u32 = first_line(&mut ws).await.parse().expect("the shell's pid");
    assert!(exists(pid), "sleep {pid} runs");
    assert_eq!(s.gateway.drain.open_sessions(), 1);

    // The client goes away without a close frame.
    drop(ws);
    process::reaped(&[pid]).await;
    // And the gateway's session ended with it.
    tokio::time::timeout(Duration::from_secs(30), s.gateway.drain.no_sessions())
        .await
        .expect("the session ended");
}

#[tokio::test]
async fn a_dev_cluster_killed_mid_session_gives_the_client_1011() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("dev.kubeconfig");
    let (mut cluster, ()) = spawn_podterm(
        &["dev-cluster"],
        &[
            ("PODTERM_DEV_CLUSTER_LISTEN", "127.0.0.1:0"),
            ("PODTERM_DEV_KUBECONFIG", kubeconfig.to_str().unwrap()),
        ],
        |line| line.starts_with("kubeconfig: ").then_some(()),
        Stream::Stdout,
    )
    .await;
    let (_gateway, addr) = start_gateway(&kubeconfig, &no_auth()).await;
    let (mut ws, _) = exec(
        addr,
        &exec_path("default", "echo-0", "command=cat&stdin=true&stdout=true"),
        &[],
        PROTOCOLS,
    )
    .await
    .expect("exec");
    ws.write_frame(binary(b"\0alive\n")).await.unwrap();
    assert_eq!(first_line(&mut ws).await, "alive");

    cluster.kill().await;
    let ended = read_to_end(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(ended.close_code, Some(1011), "{ended:?}");
    assert!(
        ended.close_reason.starts_with("cluster"),
        "{:?}",
        ended.close_reason
    );
}

#[tokio::test]
async fn a_stdin_frame_over_the_limit_closes_with_1009() {
    let s = Stack::start(&no_auth()).await;
    let (mut ws, _) = exec(
        s.addr,
        &exec_path("default", "echo-0", "command=cat&stdin=true&stdout=true"),
        &[],
        PROTOCOLS,
    )
    .await
    .expect("exec");
    ws.write_frame(binary(b"\0small\n")).await.unwrap();
    assert_eq!(first_line(&mut ws).await, "small");

    let mut big = vec![b'x'; 1 << 20];
    big[0] = podterm::protocol::STDIN;
    // podterm refuses the frame on its header and hangs up: the write may fail midway.
    let _ = ws.write_frame(binary(&big)).await;
    let ended = read_to_end(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(ended.close_code, Some(1009), "{ended:?}");

    // A frame at the limit passes.
    let (mut ws, _) = exec(
        s.addr,
        &exec_path("default", "echo-0", "command=cat&stdin=true&stdout=true"),
        &[],
        PROTOCOLS,
    )
    .await
    .expect("exec");
    let mut at_limit = vec![b'y'; podterm::config::DEFAULT_MAX_FRAME_BYTES];
    at_limit[0] = podterm::protocol::STDIN;
    *at_limit.last_mut().unwrap() = b'\n';
    ws.write_frame(binary(&at_limit)).await.unwrap();
    assert_eq!(first_line(&mut ws).await.len(), at_limit.len() - 2);
}
