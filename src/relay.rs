//! The relay: the pump between the client's exec socket and the cluster's; knows nothing of
//! hyper or kube, so it is tested over `tokio::io::duplex`.
//!
//! One session is six futures in one task: a reader and a writer per socket, a watchdog
//! (pings, idle timeout, maximum duration) and the shutdown signal. Each reader reads one
//! socket and hands frames, one at a time, to the other socket's writer, so a side that cannot
//! take more stops the reader of the other side (backpressure end to end). Pongs and pings
//! wait beside that frame and the writer serves them first. Frames keep their channel
//! byte and payload; only the mask is renewed toward the cluster. At the end each socket gets
//! its close frame and is read until the peer's own (the closing handshake), then shut down.

mod closing;
mod copy;
mod detach;
mod flow;
mod frames;
#[cfg(any(test, feature = "test-util"))]
pub mod fuzzing;
mod handoff;
mod kept;
mod pump;
mod signals;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use fastwebsockets::Role;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

pub use self::copy::{CopyOutcome, CopyRelay};
pub use self::detach::{Attach, AttachEvents, Attachments, Detachable, relay_detachable};
use self::frames::{FrameReader, FrameWriter};
use self::handoff::{Handoff, PolledAfter};
pub use self::kept::{Kept, watch};
pub use crate::events::{CloseReason, Summary};
use crate::protocol::Ended;
use crate::recording::RecordingTap;
use crate::tcp::Halves;
use crate::telemetry::metrics::RelayBytes;

/// How long the closing handshake may take once a session has ended abnormally.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Largest channel-3 `Status` read for the exit code, in bytes (it is forwarded whole anyway).
pub const MAX_STATUS_BYTES: usize = 64 * 1024;
/// A socket that sent nothing (not even a pong) for this many ping intervals, while podterm
/// was reading it, is gone.
pub const MISSED_PINGS: u32 = 3;
/// Smallest frame limit for the cluster leg, in bytes (API servers send up to 32 KiB).
pub const MIN_UPSTREAM_FRAME_BYTES: usize = 4 << 20;

/// Limits and timers of one session.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Whether `v5.channel.k8s.io` was negotiated (channel 255 allowed).
    pub v5: bool,
    /// How often both sockets are pinged.
    pub ping_interval: Duration,
    /// No data either way for this long ends the session.
    pub idle_timeout: Duration,
    /// The longest a session may last.
    pub max_duration: Duration,
    /// Largest frame payload a client may send, in bytes, channel byte included (else 1009).
    pub max_client_frame_bytes: usize,
    /// Largest frame payload accepted from the cluster, in bytes.
    pub max_upstream_frame_bytes: usize,
    /// Process-wide byte counters (metrics), added to as frames pass.
    pub bytes: RelayBytes,
    /// The session's recording, fed output, resizes and (if configured) input as they pass.
    pub recording: Option<RecordingTap>,
    /// Whether the client negotiated podterm's flow control (crate::protocol::flow).
    pub flow: bool,
    /// The session's own byte counts, readable while it runs (the fleet's session list).
    pub session_bytes: Arc<SessionBytes>,
    /// Who ended the session, when `shutdown` resolved because someone did (else the gateway
    /// is shutting down).
    pub ended_by: Arc<std::sync::OnceLock<String>>,
    /// A `kubectl cp` session: its tar stream is checked entry by entry (relay::copy). Boxed
    /// (216 → 152 bytes for every session's configuration, a smaller allocator class).
    pub copy: Option<Box<CopyRelay>>,
}

/// Frame payload bytes one session relayed so far, each way.
#[derive(Debug, Default)]
pub struct SessionBytes {
    pub from_client: AtomicU64,
    pub to_client: AtomicU64,
}

impl RelayConfig {
    /// Why `shutdown` resolved: someone ended the session, or the gateway is shutting down.
    fn shutdown_reason(&self) -> CloseReason {
        self.ended_by
            .get()
            .map_or(CloseReason::Shutdown, |by| CloseReason::Ended(by.clone()))
    }

    /// The settings relay-level tests share: v5, timers far beyond a test's length, a 4 KiB
    /// client frame limit, no recording, no flow control.
    #[cfg(any(test, feature = "test-util"))]
    pub fn for_tests() -> RelayConfig {
        RelayConfig {
            v5: true,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_duration: Duration::from_secs(60),
            max_client_frame_bytes: 4096,
            max_upstream_frame_bytes: 1 << 20,
            bytes: Default::default(),
            recording: None,
            copy: None,
            flow: false,
            session_bytes: Arc::default(),
            ended_by: Arc::default(),
        }
    }

    /// Limits from the gateway's configuration.
    pub fn new(config: &crate::config::Config, v5: bool, bytes: RelayBytes) -> RelayConfig {
        RelayConfig {
            v5,
            ping_interval: config.ping_interval,
            idle_timeout: config.idle_timeout,
            max_duration: config.max_session_duration,
            max_client_frame_bytes: config.max_frame_bytes,
            max_upstream_frame_bytes: config.max_frame_bytes.max(MIN_UPSTREAM_FRAME_BYTES),
            bytes,
            recording: None,
            copy: None,
            flow: false,
            session_bytes: Arc::default(),
            ended_by: Arc::default(),
        }
    }
}

/// State the session's futures share (one task, so atomics only for `Send`).
struct Shared {
    start: Instant,
    /// Milliseconds since `start` of the last data frame either way.
    last_data_ms: AtomicU64,
    client: Leg,
    upstream: Leg,
    bytes: Arc<SessionBytes>,
    /// What the cluster's channel-3 status said, once it sent one.
    ended: Mutex<Option<Ended>>,
    /// Output sent and acknowledged, when the client speaks flow control.
    flow: Option<Box<flow::Flow>>,
    /// The output kept for whichever connection is attached, in a session that outlives its
    /// connection (crate::protocol::resume).
    kept: Option<Arc<Kept>>,
}

/// Liveness of one socket's reader.
#[derive(Default)]
struct Leg {
    /// Milliseconds since `start` of the last frame read from this socket.
    heard_ms: AtomicU64,
    /// Whether the reader waits for the other side's writer to take its frame (not reading).
    blocked: AtomicBool,
    /// Whether the peer's close frame was read, or reading failed: nothing more to read.
    ended: AtomicBool,
}

impl Shared {
    fn new(config: &RelayConfig) -> Shared {
        Shared {
            flow: config.flow.then(Box::default),
            start: Instant::now(),
            last_data_ms: AtomicU64::new(0),
            client: Leg::default(),
            upstream: Leg::default(),
            bytes: config.session_bytes.clone(),
            ended: Mutex::new(None),
            kept: None,
        }
    }

    /// What the session came to, once it ended with `close`.
    fn summary(&self, close: CloseReason) -> Summary {
        let ended = self.ended.lock().ok().and_then(|mut s| s.take());
        let (exit_code, status_message) = match ended {
            Some(Ended::Exited(code)) => (Some(code), None),
            Some(Ended::Failed(message)) => (None, Some(message)),
            None => (None, None),
        };
        Summary {
            bytes_from_client: self.bytes.from_client.load(Ordering::Relaxed),
            bytes_to_client: self.bytes.to_client.load(Ordering::Relaxed),
            exit_code,
            status_message,
            close,
            duration: self.start.elapsed(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
    /// A data frame was read at `ms`, what [`Shared::heard`] gave for it: one reading of the
    /// clock a frame, not two.
    fn data(&self, ms: u64) {
        self.last_data_ms.store(ms, Ordering::Relaxed);
    }
    /// A frame was read from `leg`: now, in milliseconds since `start`.
    fn heard(&self, leg: &Leg) -> u64 {
        let ms = self.now_ms();
        leg.heard_ms.store(ms, Ordering::Relaxed);
        ms
    }
    /// Whether a frame was read from `leg` after `ms` (milliseconds since `start`).
    fn heard_since(&self, leg: &Leg, ms: u64) -> bool {
        leg.heard_ms.load(Ordering::Relaxed) > ms
    }
    /// Whether `leg` has been silent past `limit` while it was being read.
    fn silent(&self, leg: &Leg, limit: Duration) -> bool {
        !leg.blocked.load(Ordering::Relaxed)
            && self
                .now_ms()
                .saturating_sub(leg.heard_ms.load(Ordering::Relaxed))
                > limit.as_millis() as u64
    }
}

/// Relays one exec session until it ends, then closes both sockets with the right codes.
///
/// `client` is the caller's upgraded connection (podterm is the WebSocket server), `upstream`
/// the cluster's (podterm is the client); both come straight from the handshake, nothing read
/// from them yet. `shutdown` resolving ends the session with 1001. Both are read and written
/// through tokio's `io::split`; [`relay_halves`] takes plain TCP streams without it.
pub fn relay<'a, C, U, S>(
    client: C,
    upstream: U,
    config: &'a RelayConfig,
    shutdown: S,
) -> impl Future<Output = Summary> + 'a
where
    C: AsyncRead + AsyncWrite + Unpin + 'a,
    U: AsyncRead + AsyncWrite + Unpin + 'a,
    S: Future<Output = ()> + 'a,
{
    relay_halves(
        Halves::locked(client),
        Halves::locked(upstream),
        config,
        shutdown,
    )
}

/// [`relay`] over connections already made [`Halves`]: a session's plain TCP sockets are read
/// and written with no lock between the two sides.
///
/// `shutdown` is pinned once, on the heap, rather than copied into the future twice. podterm
/// keeps each write side itself, to shut it down once the closing handshake is over.
pub fn relay_halves<'a, C, U, S>(
    mut client: Halves<C>,
    mut upstream: Halves<U>,
    config: &'a RelayConfig,
    shutdown: S,
) -> impl Future<Output = Summary> + 'a
where
    C: AsyncRead + AsyncWrite + Unpin + 'a,
    U: AsyncRead + AsyncWrite + Unpin + 'a,
    S: Future<Output = ()> + 'a,
{
    let shutdown = Box::pin(shutdown);
    async move { run(&mut client, &mut upstream, config, shutdown).await }
}

/// The session. Its connections come by reference and are split here: an `async fn` keeps
/// its arguments for its whole life, and the sides are kept once, where they are used.
async fn run<C, U, S>(
    client: &mut Halves<C>,
    upstream: &mut Halves<U>,
    config: &RelayConfig,
    mut shutdown: Pin<Box<S>>,
) -> Summary
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    S: Future<Output = ()>,
{
    let (client_read, mut client_write) = client.sides();
    let (upstream_read, mut upstream_write) = upstream.sides();
    let shared = Shared::new(config);
    let (close, aborted) = {
        let mut client_rx =
            FrameReader::new(client_read, Role::Server, config.max_client_frame_bytes);
        let mut upstream_rx =
            FrameReader::new(upstream_read, Role::Client, config.max_upstream_frame_bytes);
        let to_client = Handoff::default();
        let to_upstream = Handoff::default();
        let client_writer = pump::writer(
            FrameWriter::new(&mut client_write, Role::Server),
            &to_client,
        );
        let upstream_writer = pump::writer(
            FrameWriter::new(&mut upstream_write, Role::Client),
            &to_upstream,
        );
        tokio::pin!(client_writer, upstream_writer);
        let mut written = Written::default();
        // The watchdog and the shutdown only when they woke the task (`signals.rs`), in the
        // main loop and, for the shutdown, in the closing after it.
        let mut signals = signals::Due::new();
        // The shutdown was due and not polled since (at first: never polled).
        let mut shutdown_owed = true;

        let close = {
            let from_client =
                pump::from_client(&mut client_rx, &to_upstream, &to_client, &shared, config);
            let from_upstream =
                pump::from_upstream(&mut upstream_rx, &to_client, &to_upstream, &shared, config);
            let watchdog = pump::watchdog(&shared, config, &to_client, &to_upstream);
            tokio::pin!(from_client, from_upstream, watchdog);
            // Readers first: a writer only ends on its own after its reader ended, and what
            // the readers and the watchdog hand over is written in the same poll, with no
            // wake-up (handoff::PolledAfter). Written out rather than `select!`, whose state
            // would be one more copy in every session's task.
            std::future::poll_fn(|cx| {
                let _polling = PolledAfter::set([&to_client, &to_upstream]);
                signals.task(cx);
                if let Poll::Ready(close) = from_client.as_mut().poll(cx) {
                    return Poll::Ready(close);
                }
                if let Poll::Ready(close) = from_upstream.as_mut().poll(cx) {
                    return Poll::Ready(close);
                }
                if let Some(mut due) = signals.due() {
                    shutdown_owed = true;
                    if let Poll::Ready(close) = watchdog.as_mut().poll(&mut due) {
                        return Poll::Ready(close);
                    }
                    shutdown_owed = false;
                    if shutdown.as_mut().poll(&mut due).is_ready() {
                        return Poll::Ready(config.shutdown_reason());
                    }
                }
                if let Poll::Ready(w) = client_writer.as_mut().poll(cx) {
                    return Poll::Ready(written.client(w));
                }
                if let Poll::Ready(w) = upstream_writer.as_mut().poll(cx) {
                    return Poll::Ready(written.upstream(w));
                }
                Poll::Pending
            })
            .await
        };
        to_client.close();
        to_upstream.close();
        // Boxed when the session ends: inline, both legs' closings (1.2 KB) would be the
        // largest state of every session's task, idle ones included.
        let mut finish = Box::pin(async {
            let (client_leg, upstream_leg) =
                closing::legs(&close, written, [&to_client, &to_upstream], &shared, config);
            tokio::join!(
                client_leg.finish(client_writer, &mut client_rx),
                upstream_leg.finish(upstream_writer, &mut upstream_rx),
            );
        });
        // A shutdown meanwhile cuts the handshakes short, unless the session ended by one.
        // It is polled under the signals' waker as in the main loop: when the signals woke
        // the task, or once if the main loop did not poll it since they last did (a reader
        // or the watchdog ended the loop first).
        let by_shutdown = close.by_shutdown();
        let aborted = std::future::poll_fn(|cx| {
            signals.task(cx);
            if finish.as_mut().poll(cx).is_ready() {
                return Poll::Ready(false);
            }
            let due = signals.due().is_some();
            if !by_shutdown && (due || shutdown_owed) {
                shutdown_owed = false;
                if shutdown.as_mut().poll(&mut signals.context()).is_ready() {
                    return Poll::Ready(true);
                }
            }
            Poll::Pending
        })
        .await;
        drop(finish);
        (close, aborted)
    };
    // Both closing handshakes are over: end both streams in order (FIN, TLS close_notify).
    if !aborted {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            tokio::join!(client_write.shutdown(), upstream_write.shutdown())
        })
        .await;
    }
    shared.summary(close)
}

/// A writer that ended before the readers did (its socket failed), kept for the closing.
struct Written<CW, UW> {
    client: Option<std::io::Result<CW>>,
    upstream: Option<std::io::Result<UW>>,
}

impl<CW, UW> Default for Written<CW, UW> {
    fn default() -> Self {
        Written {
            client: None,
            upstream: None,
        }
    }
}

impl<CW, UW> Written<CW, UW> {
    fn client(&mut self, written: std::io::Result<CW>) -> CloseReason {
        let why = written
            .as_ref()
            .err()
            .map_or("closed".into(), |e| e.to_string());
        self.client = Some(written);
        CloseReason::ClientGone(why)
    }

    fn upstream(&mut self, written: std::io::Result<UW>) -> CloseReason {
        let why = written
            .as_ref()
            .err()
            .map_or("closed".into(), |e| e.to_string());
        self.upstream = Some(written);
        CloseReason::Upstream(format!("cannot write: {why}"))
    }
}
