//! podterm's flow control in the relay, over `tokio::io::duplex` with paused time: with no
//! acks the relay stops reading the cluster at the high mark; acks let it go on; acks are never
//! forwarded and do not count as client bytes; a client without flow control sees no change.

#[path = "support/relay.rs"]
mod support;
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use podterm::protocol::flow::{HIGH_WATER, ack_frame};
use podterm::protocol::{self, Status};
use podterm::relay::{CloseReason, RelayConfig, Summary, relay};
use tokio::io::DuplexStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const FRAME: usize = 16 * 1024;

fn binary(bytes: &[u8]) -> Frame<'static> {
    Frame::binary(Payload::Owned(bytes.to_vec()))
}

struct Session {
    client: WebSocket<DuplexStream>,
    /// Frames of stdout the cluster has written so far.
    written: watch::Receiver<usize>,
    relay: JoinHandle<Summary>,
}

/// A relay with flow control on (or not), and a cluster that writes `frames` stdout frames of
/// `FRAME` bytes, then exit 0 and a close.
fn flooded(flow: bool, frames: usize) -> Session {
    let config = RelayConfig {
        flow,
        ..support::relay_config()
    };
    let (client_end, relay_client) = tokio::io::duplex(64 * 1024);
    let (relay_cluster, cluster_end) = tokio::io::duplex(64 * 1024);
    let relay = tokio::spawn(async move {
        relay(relay_client, relay_cluster, &config, std::future::pending()).await
    });
    let (tx, written) = watch::channel(0);
    tokio::spawn(async move {
        let mut cluster = WebSocket::after_handshake(cluster_end, Role::Server);
        let mut payload = vec![b'y'; FRAME + 1];
        payload[0] = protocol::STDOUT;
        for i in 0..frames {
            cluster.write_frame(binary(&payload)).await.unwrap();
            let _ = tx.send(i + 1);
        }
        let status = Status::exit(0).to_error_frame();
        cluster.write_frame(binary(&status)).await.unwrap();
        cluster.write_frame(Frame::close(1000, b"")).await.unwrap();
        // Keep the socket until the relay's close reply.
        let _ = cluster.read_frame().await;
    });
    let mut client = WebSocket::after_handshake(client_end, Role::Client);
    client.set_auto_close(false);
    Session {
        client,
        written,
        relay,
    }
}

/// Reads stdout until `want` bytes came; the bytes read.
async fn read_stdout(client: &mut WebSocket<DuplexStream>, want: usize) -> usize {
    let mut got = 0;
    while got < want {
        let f = client.read_frame().await.unwrap();
        if f.opcode == OpCode::Binary && f.payload[0] == protocol::STDOUT {
            got += f.payload.len() - 1;
        }
    }
    got
}

/// Waits until the cluster's writer makes no progress: time is paused and moves only when
/// every task waits, so a timeout firing means the flood is blocked.
async fn stalled(written: &mut watch::Receiver<usize>) -> usize {
    loop {
        let before = *written.borrow_and_update();
        if tokio::time::timeout(Duration::from_secs(1), written.changed())
            .await
            .is_err()
        {
            return before;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn without_acks_the_relay_stops_reading_the_cluster_at_the_high_mark() {
    let frames = 4 * (HIGH_WATER as usize) / FRAME;
    let mut s = flooded(true, frames);
    // The client reads everything it is sent, and acks nothing.
    let reader = tokio::spawn(async move {
        let mut got = 0;
        loop {
            let f = s.client.read_frame().await.unwrap();
            if f.opcode == OpCode::Binary {
                got += f.payload.len() - 1;
            }
            if got > 3 * HIGH_WATER as usize {
                panic!("{got} bytes came without an ack");
            }
        }
    });
    let written = stalled(&mut s.written).await;
    // What the cluster got out: the window, one frame read past it, and what the pipes hold.
    let pipes = 2 * 64 * 1024 / FRAME + 2;
    assert!(
        written * FRAME <= HIGH_WATER as usize + (pipes + 1) * FRAME,
        "the cluster wrote {written} frames of {FRAME} bytes with nothing acknowledged"
    );
    assert!(written < frames);
    reader.abort();
}

#[tokio::test(start_paused = true)]
async fn acks_keep_the_flood_going_and_stay_with_podterm() {
    let frames = 3 * (HIGH_WATER as usize) / FRAME;
    let mut s = flooded(true, frames);
    let mut got = 0u64;
    let mut acked = 0u64;
    let status = loop {
        let f = s.client.read_frame().await.unwrap();
        match (f.opcode, f.payload.first()) {
            (OpCode::Binary, Some(&protocol::STDOUT)) => got += f.payload.len() as u64 - 1,
            (OpCode::Binary, Some(&protocol::ERROR)) => break f.payload.to_vec(),
            _ => {}
        }
        // Ack in steps, as the page does once xterm has processed output.
        if got - acked >= 64 * 1024 {
            acked = got;
            s.client
                .write_frame(binary(&ack_frame(acked)))
                .await
                .unwrap();
        }
    };
    assert_eq!(got, (frames * FRAME) as u64);
    assert_eq!(status[1..], Status::exit(0).to_json()[..]);
    let close = s.client.read_frame().await.unwrap();
    assert_eq!(close.opcode, OpCode::Close);
    s.client.write_frame(Frame::close(1000, b"")).await.unwrap();
    let sum = s.relay.await.unwrap();
    assert_eq!(sum.close, CloseReason::Exited);
    assert_eq!(sum.bytes_from_client, 0, "acks are not client bytes");
    assert_eq!(
        sum.bytes_to_client,
        (frames * (FRAME + 1) + status.len()) as u64
    );
}

#[tokio::test(start_paused = true)]
async fn an_ack_beyond_what_was_sent_ends_the_session_with_1008() {
    // A flood that is still going when the ack arrives.
    let mut s = flooded(true, 3 * (HIGH_WATER as usize) / FRAME);
    assert_eq!(read_stdout(&mut s.client, FRAME).await, FRAME);
    s.client
        .write_frame(binary(&ack_frame(8 * HIGH_WATER)))
        .await
        .unwrap();
    let code = loop {
        let f = s.client.read_frame().await.unwrap();
        if f.opcode == OpCode::Close {
            break u16::from_be_bytes([f.payload[0], f.payload[1]]);
        }
    };
    assert_eq!(code, 1008);
}

#[tokio::test(start_paused = true)]
async fn without_flow_control_an_ack_is_an_unknown_channel_and_floods_are_not_held() {
    let frames = 3 * (HIGH_WATER as usize) / FRAME;
    let mut s = flooded(false, frames);
    // Never acked, everything comes: a plain client is not held to any window.
    assert_eq!(
        read_stdout(&mut s.client, frames * FRAME).await,
        frames * FRAME
    );
    let mut s = flooded(false, 1);
    s.client.write_frame(binary(&ack_frame(0))).await.unwrap();
    let code = loop {
        let f = s.client.read_frame().await.unwrap();
        if f.opcode == OpCode::Close {
            break u16::from_be_bytes([f.payload[0], f.payload[1]]);
        }
    };
    assert_eq!(code, 1008);
}
