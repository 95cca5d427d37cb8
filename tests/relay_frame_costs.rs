//! What one relayed frame costs the session's task, counted exactly (never timed): its polls
//! and its heap allocations, over loopback TCP (in-memory pipes would allocate as they buffer).
//!
//! - **One poll a frame.** What a reader hands over is written in the same poll; a second poll
//!   (the task waking itself for its own writer) would double the scheduling work of every
//!   keystroke and echo.
//! - **One allocation a keystroke frame:** the buffer of the frame's size that its read (to
//!   the stack first) is copied to, which the payload then owns on its way to the other
//!   socket. A read that finds the socket empty allocates nothing, and nothing else on the
//!   path does: no channel, no boxed frame, no shared-buffer header.
//!
//! - **Fewer writes than frames in a flood.** Large frames that arrive together are read
//!   several to a read and written several to a (vectored) write.
//!
//! Allocations are counted by this binary's global allocator (`stats_alloc`) over the polls of
//! the session's task only. The runtime has one thread and this binary's tests run one at a
//! time (`ONE_AT_A_TIME`), so nothing else allocates during such a poll.

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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const ROUNDS: usize = 200;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The allocation count is the whole process's: the tests here run one at a time, so that one
/// test's allocations are never counted during another's polls.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// Both ends of a loopback TCP connection.
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
async fn a_keystroke_frame_costs_one_poll_and_one_allocation() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (client_end, relay_client) = pair().await;
    let (relay_cluster, cluster_end) = pair().await;
    let config = Arc::new(support::relay_config());
    let costs = Arc::new(Costs::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let session = tokio::spawn(Counted {
        costs: costs.clone(),
        inner: Box::pin(async move {
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
    assert_eq!(data(&mut client).await, large);
    assert!(costs.now().1 > before, "a large frame allocates");
    let _ = stop.send(());
    drop((client, cluster));
    let _ = session.await;
}

/// A socket whose writes that moved bytes are counted.
struct CountedWrites {
    io: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl CountedWrites {
    fn counted(&self, polled: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncRead for CountedWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.counted(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.counted(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_large_frames_takes_fewer_writes_than_frames() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const FRAMES: usize = 64;
    let (client_end, relay_client) = pair().await;
    let (relay_cluster, cluster_end) = pair().await;
    let config = Arc::new(support::relay_config());
    let writes = Arc::new(AtomicUsize::new(0));
    let relay_client = CountedWrites {
        io: relay_client,
        writes: writes.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let session = tokio::spawn(async move {
        relay(relay_client, relay_cluster, &config, async {
            let _ = stopped.await;
        })
        .await
    });
    let mut client = WebSocket::after_handshake(client_end, Role::Client);
    let mut cluster = WebSocket::after_handshake(cluster_end, Role::Server);
    // 64 KiB of stdout a frame, as the kubelet sends a flood.
    let frame = |i: usize| {
        let mut payload = vec![i as u8; 64 * 1024 + 1];
        payload[0] = 1;
        payload
    };
    let flood = tokio::spawn(async move {
        for i in 0..FRAMES {
            cluster
                .write_frame(Frame::binary(Payload::Owned(frame(i))))
                .await
                .unwrap();
        }
        cluster
    });
    for i in 0..FRAMES {
        assert_eq!(data(&mut client).await, frame(i), "frame {i}");
    }
    let writes = writes.load(Ordering::Relaxed);
    // One write a frame without batching; up to four frames a write with it.
    assert!(
        writes * 2 <= FRAMES,
        "{writes} writes to the client for {FRAMES} large frames"
    );
    let _ = stop.send(());
    drop((client, flood.await.unwrap()));
    let _ = session.await;
}
