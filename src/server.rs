//! The gateway's accept loop: connections are accepted here, handed to worker threads
//! (`workers`), served by hyper (HTTP/1.1 with upgrades, HTTP/2) and routed
//! (crate::routes) until the gateway's drain (crate::drain) says stop.

pub(crate) mod direct;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::config::StartError;
use crate::drain::Stopped;
use crate::gateway::Gateway;
use workers::Workers;

/// Serves `listener` until the gateway's drain stops (every session gone after
/// [`Drain::begin`], or [`Drain::close_now`]); new connections are taken while draining so
/// that probes see `/readyz` 503. Connections are served on `PODTERM_WORKER_THREADS` worker
/// threads, which have all ended (their connections closed) when this returns.
pub async fn run(listener: TcpListener, gateway: Arc<Gateway>) -> Result<Stopped, StartError> {
    run_with_peers(listener, None, gateway).await
}

/// [`run`], and also `peers`: the internal listener other replicas reach this one on
/// (`PODTERM_PEER_LISTEN`), whose connections are routed to `/peer/…` only.
pub async fn run_with_peers(
    listener: TcpListener,
    peers: Option<TcpListener>,
    gateway: Arc<Gateway>,
) -> Result<Stopped, StartError> {
    for listener in std::iter::once(&listener).chain(&peers) {
        if let Err(e) = workers::deepen(listener) {
            tracing::warn!(error = %e, "cannot set the listener's accept queue");
        }
    }
    let mut workers = Workers::start(gateway.config.worker_thread_count(), &gateway)?;
    tracing::debug!(workers = workers.count(), "worker threads started");
    // Each worker accepts on a socket of its own, so that no thread wakes another per
    // connection; where the listener cannot be shared, this thread accepts and hands over.
    let listener = match workers.listen(listener) {
        Ok(()) => None,
        Err((listener, e)) => {
            tracing::warn!(error = %e, "the listener cannot be shared by the workers: one thread accepts for all");
            Some(listener)
        }
    };
    let listeners = Listeners {
        main: listener.as_ref(),
        peers: peers.as_ref(),
    };
    let open = workers.open_counter();
    let how = accept_loop(listeners, &gateway, &open, |stream, peer| {
        workers.dispatch(stream, peer);
    })
    .await;
    drop(listener);
    workers.stop().await;
    Ok(how)
}

/// The listeners one accept loop takes connections from.
#[derive(Clone, Copy)]
struct Listeners<'a> {
    main: Option<&'a TcpListener>,
    peers: Option<&'a TcpListener>,
}

impl Listeners<'_> {
    /// The next connection on either listener (never, with neither).
    async fn accept(&self) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
        match (self.main, self.peers) {
            (Some(main), Some(peers)) => tokio::select! {
                accepted = main.accept() => accepted,
                accepted = peers.accept() => accepted,
            },
            (Some(one), None) | (None, Some(one)) => one.accept().await,
            (None, None) => std::future::pending().await,
        }
    }
}

/// Accepts until the gateway's drain stops: a connection over `PODTERM_MAX_CONNECTIONS` (with
/// `open` connections and the open sessions counted) is refused, any other goes to `take`.
/// The control thread runs one (the internal listener, or every connection where the
/// listener could not be shared) and so does each worker, on its own socket.
async fn accept_loop(
    listeners: Listeners<'_>,
    gateway: &Gateway,
    open: &AtomicUsize,
    mut take: impl FnMut(tokio::net::TcpStream, SocketAddr),
) -> Stopped {
    let stopped = gateway.drain.stopped();
    tokio::pin!(stopped);
    let cap = gateway.config.max_connection_count();
    let mut failures = AcceptFailures::default();
    let mut nodelay = NoDelay::on(listeners);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listeners.accept() => match accepted {
                Ok(accepted) => {
                    failures.recovered();
                    accepted
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving what is open, and
                    // wait before trying again instead of spinning on the same error.
                    let pause = failures.failed(&e);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        how = &mut stopped => return how,
                    }
                }
            },
            how = &mut stopped => return how,
        };
        if open.load(Ordering::Relaxed) + gateway.drain.open_sessions() >= cap {
            refuse_connection(&stream, gateway);
            continue;
        }
        nodelay.apply(&stream);
        take(stream, peer);
    }
}

/// The answer to a connection over `PODTERM_MAX_CONNECTIONS`: written without waiting (it fits
/// the socket's send buffer), then the connection is closed.
fn refuse_connection(stream: &tokio::net::TcpStream, gateway: &Gateway) {
    gateway.metrics.denied("max_connections");
    let body = crate::protocol::Status::failure(
        503,
        "this replica serves as many connections as it may (PODTERM_MAX_CONNECTIONS); try again later",
    )
    .to_json();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n",
        body.len()
    );
    let _ = stream.try_write(&[head.as_bytes(), &body].concat());
}

/// How accepted connections get `TCP_NODELAY` (every write goes out at once: a keystroke's
/// echo must not wait for the peer's delayed ACK).
///
/// Linux copies a listening socket's `TCP_NODELAY` into every connection it accepts: the new
/// socket is a copy of the listener's (`sk_clone_lock`'s `sock_copy`, net/core/sock.c), and
/// `tcp_create_openreq_child` (net/ipv4/tcp_minisocks.c) leaves `nonagle` as copied. So the
/// option is set once on each listener, and the first connection accepted shows whether it
/// came through; only where it did not is it set on each connection, one `setsockopt` a
/// connection as before (nginx sets it on each of its two sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoDelay {
    /// Set on every listener; the first connection is still to show whether it came with it.
    Unknown,
    /// Connections come with it.
    Inherited,
    /// Set on each connection.
    Each,
}

impl NoDelay {
    /// Sets `TCP_NODELAY` on `listeners`; [`NoDelay::Each`] where that fails on one.
    fn on(listeners: Listeners<'_>) -> NoDelay {
        let all_set = [listeners.main, listeners.peers]
            .into_iter()
            .flatten()
            .all(|l| rustix::net::sockopt::set_tcp_nodelay(l, true).is_ok());
        if all_set {
            NoDelay::Unknown
        } else {
            NoDelay::Each
        }
    }

    /// Makes sure `stream`, just accepted, has `TCP_NODELAY`.
    fn apply(&mut self, stream: &tokio::net::TcpStream) {
        match *self {
            NoDelay::Inherited => {}
            NoDelay::Each => {
                let _ = stream.set_nodelay(true);
            }
            NoDelay::Unknown => {
                *self = if stream.nodelay().unwrap_or(false) {
                    NoDelay::Inherited
                } else {
                    let _ = stream.set_nodelay(true);
                    NoDelay::Each
                };
            }
        }
    }
}

/// First pause after a failed accept; it doubles with each failure in a row.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause between accepts that fail.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one accept-failure log line this often.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accept failures in a row: the pause before the next accept, and a log line at a bounded
/// rate that counts the failures it did not log.
#[derive(Default)]
struct AcceptFailures {
    in_a_row: u32,
    unlogged: u64,
    logged_at: Option<tokio::time::Instant>,
}

impl AcceptFailures {
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        let now = tokio::time::Instant::now();
        if self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= ACCEPT_LOG_INTERVAL)
        {
            tracing::warn!(error = %e, failures_not_logged = self.unlogged, "accept failed");
            self.logged_at = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        ACCEPT_BACKOFF_MIN
            .saturating_mul(1 << self.in_a_row.min(16).saturating_sub(1))
            .min(ACCEPT_BACKOFF_MAX)
    }

    fn recovered(&mut self) {
        self.in_a_row = 0;
    }
}

/// A connection's requests: how many are in flight and when the last one ended, for the
/// idle timeout of connections that are not sessions.
#[derive(Default)]
struct Activity {
    /// Requests started on this connection.
    started: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds since the connection started, when its last request ended.
    last_ms: AtomicU64,
    /// Told when a request ends.
    ended: tokio::sync::Notify,
}

impl Activity {
    /// A request began on the connection.
    fn request_began(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request ended; the connection (which started at `started`) is idle from now.
    fn request_ended(&self, started: tokio::time::Instant) {
        let ms = started.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.ended.notify_one();
    }
}

/// Serves a connection to its end; a session whose upgrade was answered directly (the
/// connection's first request, `direct`) is handed back to run once the connection is no
/// longer counted as one.
async fn serve_connection(
    gateway: Arc<Gateway>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Option<Box<direct::Session>> {
    let started = tokio::time::Instant::now();
    // Only with an internal listener: one more syscall per connection otherwise spared.
    let internal = gateway.config.peer_listen.is_some_and(|p| {
        stream
            .local_addr()
            .is_ok_and(|local| local.port() == p.port())
    });
    let mut stream = crate::tcp::Stream::accepted(stream);
    let activity = Activity::default();
    if !internal {
        let read_by = started + gateway.config.header_read_timeout;
        match direct::first(&gateway, stream, peer, read_by).await {
            direct::First::Session(session) => return Some(session),
            direct::First::Ended => return None,
            direct::First::Hyper {
                stream: rest,
                answered,
            } => {
                if answered {
                    // A refusal answered directly: idle from its end, as after any request.
                    activity.request_began();
                    activity.request_ended(started);
                }
                stream = rest;
            }
        }
    }
    // Boxed: hyper's connection is a large future, and a direct session runs in this task.
    Box::pin(serve_hyper(
        gateway, stream, peer, internal, started, activity,
    ))
    .await;
    None
}

/// Serves a connection with hyper (HTTP/1.1 with upgrades, HTTP/2) until it ends.
async fn serve_hyper(
    gateway: Arc<Gateway>,
    stream: crate::tcp::Stream,
    peer: SocketAddr,
    internal: bool,
    started: tokio::time::Instant,
    activity: Activity,
) {
    let activity = Arc::new(activity);
    let service = {
        let (gateway, activity) = (gateway.clone(), activity.clone());
        service_fn(move |req| {
            let (gateway, activity) = (gateway.clone(), activity.clone());
            activity.request_began();
            async move {
                let res = crate::routes::handle(gateway, req, peer, internal).await;
                activity.request_ended(started);
                res
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(gateway.config.header_read_timeout);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let closing = gateway.drain.session_deadline();
    let idle = idle_for(&gateway.config, started, &activity);
    tokio::select! {
        // The connection first: a request already there is read before the idle wait is
        // first polled, so that it sets no timer (idle_for).
        biased;
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        () = closing => conn.as_mut().graceful_shutdown(),
        () = idle => {
            tracing::debug!(%peer, "closing an idle connection");
            conn.as_mut().graceful_shutdown();
        }
    }
    let _ = conn.await;
}

/// Resolves once the connection has sent no complete request within the header-read timeout
/// of its start (hyper's own timer only starts at the first byte), or has had no request in
/// flight for the idle timeout since (a connection that upgrades leaves [`serve_connection`]
/// first, so sessions never reach this).
///
/// No timer runs while a request is in flight: a connection that sends its request at once
/// and upgrades (every session) sets none. Each new timer earlier than the event loop's next
/// wake-up makes tokio write to the loop's eventfd and turn it once more, even from the loop's
/// own thread (loadtest/README.md, "Design figures").
async fn idle_for(
    config: &crate::config::Config,
    started: tokio::time::Instant,
    activity: &Activity,
) {
    if activity.started.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep_until(started + config.header_read_timeout).await;
        if activity.started.load(Ordering::Relaxed) == 0 {
            return;
        }
    }
    let timeout = config.connection_idle_timeout;
    loop {
        while activity.in_flight.load(Ordering::Relaxed) > 0 {
            activity.ended.notified().await;
        }
        let last = started + Duration::from_millis(activity.last_ms.load(Ordering::Relaxed));
        if last + timeout <= tokio::time::Instant::now() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(last + timeout) => {}
            // A request came and went meanwhile: time again from its end.
            () = activity.ended.notified() => {}
        }
    }
}

/// Binds `addr`, naming it in the error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to `listener`, accepted: (the accepted end, the connecting end).
    async fn accepted(listener: &TcpListener) -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let addr = listener.local_addr().unwrap();
        let (connected, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (accepted.unwrap().0, connected.unwrap())
    }

    fn listeners(main: &TcpListener) -> Listeners<'_> {
        Listeners {
            main: Some(main),
            peers: None,
        }
    }

    #[tokio::test]
    async fn accepted_connections_come_with_the_listeners_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut nodelay = NoDelay::on(listeners(&listener));
        assert_eq!(nodelay, NoDelay::Unknown);
        assert!(rustix::net::sockopt::tcp_nodelay(&listener).unwrap());
        for _ in 0..2 {
            let (stream, _peer) = accepted(&listener).await;
            nodelay.apply(&stream);
            // Linux copies it (the module's NoDelay says where); the test holds that too.
            assert_eq!(nodelay, NoDelay::Inherited);
            assert!(stream.nodelay().unwrap());
        }
    }

    #[tokio::test]
    async fn a_listener_without_nodelay_has_it_set_on_each_connection() {
        // A listener the option was not set on: the first connection shows that it did not
        // come through, and it and every later one get it set.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut nodelay = NoDelay::Unknown;
        for _ in 0..2 {
            let (stream, _peer) = accepted(&listener).await;
            assert!(!stream.nodelay().unwrap());
            nodelay.apply(&stream);
            assert_eq!(nodelay, NoDelay::Each);
            assert!(stream.nodelay().unwrap());
        }
    }

    #[tokio::test]
    async fn nodelay_is_set_on_both_listeners() {
        let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peers = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let both = Listeners {
            main: Some(&main),
            peers: Some(&peers),
        };
        let mut nodelay = NoDelay::on(both);
        let (stream, _peer) = accepted(&main).await;
        nodelay.apply(&stream);
        assert_eq!(nodelay, NoDelay::Inherited);
        // The state is the accept loop's, for both listeners: the other one's connections
        // come with it too.
        let (stream, _peer) = accepted(&peers).await;
        assert!(stream.nodelay().unwrap());
    }
}
