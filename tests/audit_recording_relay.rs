//! The relay feeds a session's recording (over `tokio::io::duplex`, no hyper, no kube): output
//! in fragments split inside a UTF-8 sequence, stdout and stderr, resizes, stdin in fragments;
//! and a required recording that fails ends the session with 1011.

#[path = "support/relay.rs"]
mod support;
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use podterm::recording::{Recording, RecordingConfig};
use std::sync::Arc;

use podterm::audit::AuditLog;
use podterm::events::SessionInfo;
use podterm::identity::Identity;
use podterm::protocol::Status;
use podterm::protocol::exec_query::ExecTarget;
use podterm::relay::{CloseReason, RelayConfig, relay};
use tokio::io::{AsyncReadExt, DuplexStream};

fn exec() -> Arc<SessionInfo> {
    let mut s = SessionInfo::new("127.0.0.1:5555".parse().unwrap(), "dev", "default", "app-0");
    s.identity = Some(Identity {
        user: "dana".into(),
        groups: vec!["devs".into()],
    });
    s.target = Some(
        ExecTarget::parse(
            "dev",
            "default",
            "app-0",
            "container=app&command=sh&tty=true",
        )
        .unwrap(),
    );
    Arc::new(s)
}

fn relay_config(recording: &Recording) -> RelayConfig {
    RelayConfig {
        recording: Some(recording.tap()),
        ..support::relay_config()
    }
}

/// The client's and the cluster's sockets around a relay task.
fn start(
    config: RelayConfig,
) -> (
    WebSocket<DuplexStream>,
    WebSocket<DuplexStream>,
    tokio::task::JoinHandle<podterm::relay::Summary>,
) {
    let (client_end, relay_client_end) = tokio::io::duplex(64);
    let (relay_cluster_end, cluster_end) = tokio::io::duplex(64);
    let task = tokio::spawn(async move {
        relay(
            relay_client_end,
            relay_cluster_end,
            &config,
            std::future::pending(),
        )
        .await
    });
    let mut client = WebSocket::after_handshake(client_end, Role::Client);
    client.set_auto_close(false);
    let mut cluster = WebSocket::after_handshake(cluster_end, Role::Server);
    cluster.set_auto_close(false);
    (client, cluster, task)
}

fn frame(fin: bool, opcode: OpCode, bytes: &[u8]) -> Frame<'static> {
    Frame::new(fin, opcode, None, Payload::Owned(bytes.to_vec()))
}

/// Reads until a close frame; the close code.
async fn close_code(ws: &mut WebSocket<DuplexStream>) -> u16 {
    loop {
        let f = tokio::time::timeout(Duration::from_secs(10), ws.read_frame())
            .await
            .expect("a frame within 10 s")
            .expect("a frame");
        if f.opcode == OpCode::Close {
            return u16::from_be_bytes([f.payload[0], f.payload[1]]);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_relay_feeds_output_resizes_and_input() {
    let (audit, _writer) = AuditLog::to_writer(std::io::sink(), 16);
    let (file, mut cast) = tokio::io::duplex(1 << 16);
    let config = RecordingConfig {
        dir: "/unused".into(),
        input: true,
        required: false,
        max_bytes: podterm::config::DEFAULT_RECORD_MAX_BYTES,
    };
    let recording = Recording::to_writer(file, &config, &exec(), &audit);
    let (mut client, mut cluster, task) = start(relay_config(&recording));

    client
        .write_frame(frame(
            true,
            OpCode::Binary,
            b"\x04{\"Width\":90,\"Height\":20}",
        ))
        .await
        .unwrap();
    client
        .write_frame(frame(false, OpCode::Binary, b"\0ec"))
        .await
        .unwrap();
    client
        .write_frame(frame(true, OpCode::Continuation, b"ho\r"))
        .await
        .unwrap();
    let euro = "€".as_bytes();
    let mut first = vec![1, b'h'];
    first.extend_from_slice(&euro[..2]);
    let mut second = euro[2..].to_vec();
    second.extend_from_slice(b"llo\r\n");
    cluster
        .write_frame(frame(false, OpCode::Binary, &first))
        .await
        .unwrap();
    cluster
        .write_frame(frame(true, OpCode::Continuation, &second))
        .await
        .unwrap();
    cluster
        .write_frame(frame(true, OpCode::Binary, b"\x02err"))
        .await
        .unwrap();
    cluster
        .write_frame(frame(
            true,
            OpCode::Binary,
            &Status::exit(0).to_error_frame(),
        ))
        .await
        .unwrap();
    // Read what reached the cluster before it closes (the resize and the stdin message).
    for _ in 0..3 {
        cluster.read_frame().await.unwrap();
    }
    cluster.write_frame(Frame::close(1000, b"")).await.unwrap();
    assert_eq!(close_code(&mut client).await, 1000);
    let summary = task.await.unwrap();
    assert_eq!(summary.close, CloseReason::Exited);
    drop(summary);
    recording.finish().await.unwrap();

    let mut text = String::new();
    cast.read_to_string(&mut text).await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (lines[0]["width"].as_u64(), lines[0]["height"].as_u64()),
        (Some(90), Some(20))
    );
    let events: Vec<(String, String)> = lines[1..]
        .iter()
        .map(|e| (e[1].as_str().unwrap().into(), e[2].as_str().unwrap().into()))
        .collect();
    let output: String = events
        .iter()
        .filter(|(k, _)| k == "o")
        .map(|(_, d)| d.as_str())
        .collect();
    let input: String = events
        .iter()
        .filter(|(k, _)| k == "i")
        .map(|(_, d)| d.as_str())
        .collect();
    assert_eq!(output, "h€llo\r\nerr", "{text}");
    assert_eq!(input, "echo\r", "{text}");
    assert!(!output.contains('\u{FFFD}'));
}

#[tokio::test(start_paused = true)]
async fn a_required_recording_that_fails_ends_the_session_with_1011() {
    let (audit, _writer) = AuditLog::to_writer(std::io::sink(), 16);
    let full = tokio::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .await
        .unwrap();
    let config = RecordingConfig {
        dir: "/unused".into(),
        input: false,
        required: true,
        max_bytes: podterm::config::DEFAULT_RECORD_MAX_BYTES,
    };
    let recording = Recording::to_writer(full, &config, &exec(), &audit);
    let (mut client, mut cluster, task) = start(relay_config(&recording));
    let mut code = None;
    for _ in 0..1000 {
        if cluster
            .write_frame(frame(true, OpCode::Binary, b"\x01output\r\n"))
            .await
            .is_err()
        {
            break;
        }
        let f = tokio::time::timeout(Duration::from_secs(10), client.read_frame())
            .await
            .expect("a frame within 10 s")
            .unwrap();
        if f.opcode == OpCode::Close {
            code = Some(u16::from_be_bytes([f.payload[0], f.payload[1]]));
            assert!(String::from_utf8_lossy(&f.payload[2..]).starts_with("recording failed"));
            break;
        }
    }
    assert_eq!(code, Some(1011));
    let summary = task.await.unwrap();
    assert!(
        matches!(summary.close, CloseReason::Recording(_)),
        "{:?}",
        summary.close
    );
}
