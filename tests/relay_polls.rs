//! How often the session's task is polled per relayed frame: once per frame and direction.
//! What a reader hands over is written in the same poll; a second poll (the task waking itself
//! for its own writer) would double the scheduling work of every keystroke and echo.
//!
//! Counting polls, not timing them: the figure is exact on any machine.

#[path = "support/relay.rs"]
mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use podterm::relay::relay;
use tokio::io::DuplexStream;

/// Large enough for every frame to cross in one write.
const PIPE_BYTES: usize = 64 * 1024;
const ROUNDS: usize = 200;

/// Counts the polls of the future it wraps.
struct Counted<F> {
    polls: Arc<AtomicUsize>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

fn stdin(bytes: &[u8]) -> Frame<'static> {
    let mut payload = vec![0u8];
    payload.extend_from_slice(bytes);
    Frame::binary(Payload::Owned(payload))
}

async fn data(ws: &mut WebSocket<DuplexStream>) -> Vec<u8> {
    let frame = ws.read_frame().await.expect("a frame");
    assert_eq!(frame.opcode, OpCode::Binary);
    frame.payload.to_vec()
}

/// One keystroke to the cluster and its echo back, each in one frame.
async fn round(client: &mut WebSocket<DuplexStream>, cluster: &mut WebSocket<DuplexStream>) {
    client.write_frame(stdin(b"k")).await.unwrap();
    let typed = data(cluster).await;
    assert_eq!(typed, b"\0k");
    cluster
        .write_frame(Frame::binary(Payload::Owned(b"\x01k".to_vec())))
        .await
        .unwrap();
    assert_eq!(data(client).await, b"\x01k");
}

#[tokio::test(flavor = "current_thread")]
async fn each_frame_costs_one_poll_of_the_session_task() {
    let (client_end, relay_client) = tokio::io::duplex(PIPE_BYTES);
    let (relay_cluster, cluster_end) = tokio::io::duplex(PIPE_BYTES);
    let polls = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let session = tokio::spawn(Counted {
        polls: polls.clone(),
        inner: Box::pin(async move {
            let config = support::relay_config();
            relay(relay_client, relay_cluster, &config, async {
                let _ = stopped.await;
            })
            .await
        }),
    });
    let mut client = WebSocket::after_handshake(client_end, Role::Client);
    let mut cluster = WebSocket::after_handshake(cluster_end, Role::Server);
    for _ in 0..5 {
        round(&mut client, &mut cluster).await;
    }
    let before = polls.load(Ordering::Relaxed);
    for _ in 0..ROUNDS {
        round(&mut client, &mut cluster).await;
    }
    let per_round = (polls.load(Ordering::Relaxed) - before) as f64 / ROUNDS as f64;
    // Two frames a round, one each way: two polls. A task that woke itself for its writers
    // would take four.
    assert!(
        per_round <= 2.05,
        "{per_round:.2} polls of the session's task per round (two frames)"
    );
    let _ = stop.send(());
    drop((client, cluster));
    let _ = session.await;
}
