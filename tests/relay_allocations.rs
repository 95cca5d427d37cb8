//! Heap allocations the relay makes per relayed frame, counted by this test binary's global
//! allocator (`stats_alloc`) over the polls of the session's task only.
//!
//! A keystroke frame costs one allocation: the room its read reserves (given back between
//! frames, so that an idle session holds no buffer), which the payload then owns on its way to
//! the other socket. Nothing else on the path allocates: no channel, no boxed frame, no
//! shared-buffer header.

#[path = "support/relay.rs"]
mod support;

use std::alloc::System;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use podterm::relay::relay;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::net::{TcpListener, TcpStream};

const ROUNDS: usize = 200;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (and reallocations) made while the session's task was being polled. The
/// runtime has one thread and nothing else runs during a poll, so the global count's growth
/// over a poll is the relay's own.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn allocations_so_far() -> usize {
    let stats = GLOBAL.stats();
    stats.allocations + stats.reallocations
}

/// Counts the allocations made while the future it wraps is polled.
struct Counted<F>(Pin<Box<F>>);

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = allocations_so_far();
        let polled = self.0.as_mut().poll(cx);
        ALLOCATIONS.fetch_add(allocations_so_far() - before, Ordering::Relaxed);
        polled
    }
}

async fn data(ws: &mut WebSocket<TcpStream>) -> Vec<u8> {
    let frame = ws.read_frame().await.expect("a frame");
    assert_eq!(frame.opcode, OpCode::Binary);
    frame.payload.to_vec()
}

/// One keystroke to the cluster and its echo back, each in one frame.
async fn round(client: &mut WebSocket<TcpStream>, cluster: &mut WebSocket<TcpStream>) {
    client
        .write_frame(Frame::binary(Payload::Owned(b"\0k".to_vec())))
        .await
        .unwrap();
    assert_eq!(data(cluster).await, b"\0k");
    cluster
        .write_frame(Frame::binary(Payload::Owned(b"\x01k".to_vec())))
        .await
        .unwrap();
    assert_eq!(data(client).await, b"\x01k");
}

/// Both ends of a loopback TCP connection (in-memory pipes would allocate as they buffer).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (connected, accepted) = tokio::join!(
        TcpStream::connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    let (connected, accepted) = (connected.unwrap(), accepted.unwrap().0);
    connected.set_nodelay(true).unwrap();
    accepted.set_nodelay(true).unwrap();
    (connected, accepted)
}

#[tokio::test(flavor = "current_thread")]
async fn a_keystroke_frame_costs_one_allocation() {
    let (client_end, relay_client) = pair().await;
    let (relay_cluster, cluster_end) = pair().await;
    let config = Arc::new(support::relay_config());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let session = tokio::spawn(Counted(Box::pin(async move {
        relay(relay_client, relay_cluster, &config, async {
            let _ = stopped.await;
        })
        .await
    })));
    let mut client = WebSocket::after_handshake(client_end, Role::Client);
    let mut cluster = WebSocket::after_handshake(cluster_end, Role::Server);
    for _ in 0..5 {
        round(&mut client, &mut cluster).await;
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..ROUNDS {
        round(&mut client, &mut cluster).await;
    }
    let per_round = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / ROUNDS as f64;
    assert!(
        per_round <= 2.0,
        "{per_round:.2} allocations by the relay per round (two frames)"
    );
    // The count sees the relay's allocations: a frame too large for the stack read is
    // read into a buffer of the heap.
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut large = vec![1u8; 20_000];
    large[0] = 1;
    cluster
        .write_frame(Frame::binary(Payload::Owned(large.clone())))
        .await
        .unwrap();
    assert_eq!(data(&mut client).await, large);
    assert!(
        ALLOCATIONS.load(Ordering::Relaxed) > before,
        "a large frame allocates"
    );
    let _ = stop.send(());
    drop((client, cluster));
    let _ = session.await;
}
