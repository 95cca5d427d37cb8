//! What one relayed frame costs the session's task, counted exactly (never timed): its polls
//! and its heap allocations, over loopback TCP (in-memory pipes would allocate as they buffer),
//! each socket split without a lock as a session's plain sockets are (`tcp::Halves`).
//!
//! - **One poll a frame.** What a reader hands over is written in the same poll; a second poll
//!   (the task waking itself for its own writer) would double the scheduling work of every
//!   keystroke and echo.
//! - **One allocation a keystroke frame:** the buffer of the frame's size that its read (to
//!   the stack first) is copied to, which the payload then owns on its way to the other
//!   socket. A read that finds the socket empty allocates nothing, and nothing else on the
//!   path does: no channel, no boxed frame, no shared-buffer header.
//!
//! Allocations are counted by this binary's global allocator (`stats_alloc`) over the polls of
//! the session's task only. The count is the whole process's, so this binary holds this one
//! test, run on its main thread with no test harness (`harness = false` in Cargo.toml): no
//! other thread exists to allocate during such a poll. (With a second test beside it, that
//! test's end now and then fell inside a counted poll: 2.01 allocations a round, about one run
//! in twelve. With libtest alone, its main thread records the test it started in a map after
//! the test's thread began, and on a loaded machine that fell inside a counted poll: 2.02 a
//! round, 11 runs in 30 beside six busy processes. The flood's writes are counted in
//! `relay_flood_writes.rs`.)

#[path = "support/relay.rs"]
mod support;

use std::alloc::System;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use fastwebsockets::{Frame, Payload, Role, WebSocket};
use podterm::relay::relay_halves;
use podterm::tcp::{Halves, Stream};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::net::TcpStream;

const ROUNDS: usize = 200;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations_so_far() -> usize {
    let stats = GLOBAL.stats();
    stats.allocations + stats.reallocations
}

/// The polls of the session's task, and the allocations (and reallocations) made during them.
#[derive(Default)]
struct Costs {
    polls: AtomicUsize,
    allocations: AtomicUsize,
}

impl Costs {
    fn now(&self) -> (usize, usize) {
        (
            self.polls.load(Ordering::Relaxed),
            self.allocations.load(Ordering::Relaxed),
        )
    }
}

/// Counts what the future it wraps costs in each poll.
struct Counted<F> {
    costs: Arc<Costs>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = allocations_so_far();
        let polled = self.inner.as_mut().poll(cx);
        let allocated = allocations_so_far() - before;
        self.costs.polls.fetch_add(1, Ordering::Relaxed);
        self.costs
            .allocations
            .fetch_add(allocated, Ordering::Relaxed);
        polled
    }
}

/// One keystroke to the cluster and its echo back, each in one frame.
async fn round(client: &mut WebSocket<TcpStream>, cluster: &mut WebSocket<TcpStream>) {
    client
        .write_frame(Frame::binary(Payload::Owned(b"\0k".to_vec())))
        .await
        .unwrap();
    assert_eq!(support::binary_data(cluster).await, b"\0k");
    cluster
        .write_frame(Frame::binary(Payload::Owned(b"\x01k".to_vec())))
        .await
        .unwrap();
    assert_eq!(support::binary_data(client).await, b"\x01k");
}

/// The one test; the process's only thread runs it (see the module doc).
fn main() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(a_keystroke_frame_costs_one_poll_and_one_allocation());
    println!("test a_keystroke_frame_costs_one_poll_and_one_allocation ... ok");
}

async fn a_keystroke_frame_costs_one_poll_and_one_allocation() {
    let (client_end, relay_client) = support::loopback_pair().await;
    let (relay_cluster, cluster_end) = support::loopback_pair().await;
    let config = Arc::new(support::relay_config());
    let costs = Arc::new(Costs::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let session = tokio::spawn(Counted {
        costs: costs.clone(),
        inner: Box::pin(async move {
            // Plain TCP both ways, split without a lock, as a session's sockets are.
            let tcp = |io| Halves::<TcpStream>::Tcp(Stream::connected(io));
            relay_halves(tcp(relay_client), tcp(relay_cluster), &config, async {
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
    let (polls, allocations) = costs.now();
    for _ in 0..ROUNDS {
        round(&mut client, &mut cluster).await;
    }
    let per_round = |now: usize, before: usize| (now - before) as f64 / ROUNDS as f64;
    let (polls, allocations) = (
        per_round(costs.now().0, polls),
        per_round(costs.now().1, allocations),
    );
    // Two frames a round, one each way: two polls. A task that woke itself for its writers
    // would take four.
    assert!(
        polls <= 2.05,
        "{polls:.2} polls of the session's task per round (two frames)"
    );
    assert!(
        allocations <= 2.0,
        "{allocations:.2} allocations by the relay per round (two frames)"
    );
    // The count sees the relay's allocations: a frame too large for the stack read is
    // read into a buffer of the heap.
    let before = costs.now().1;
    let mut large = vec![1u8; 20_000];
    large[0] = 1;
    cluster
        .write_frame(Frame::binary(Payload::Owned(large.clone())))
        .await
        .unwrap();
    assert_eq!(support::binary_data(&mut client).await, large);
    assert!(costs.now().1 > before, "a large frame allocates");
    let _ = stop.send(());
    drop((client, cluster));
    let _ = session.await;
}
