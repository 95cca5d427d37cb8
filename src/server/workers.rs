//! Worker threads: each runs an event loop of its own (a current-thread tokio runtime) and
//! accepts on a listening socket of its own, and a connection and its session (both sockets,
//! the relay, the timers) stay on the thread that accepted it to the end.
//!
//! Thread per core, as Envoy and nginx do: a relay does almost nothing per wake-up, and work
//! stealing costs more than that work (figures: loadtest/README.md, "Design figures").
//!
//! The sockets are one group under `SO_REUSEPORT` ([`Workers::listen`]): the kernel spreads
//! new connections over them by their addresses' hash, as nginx's `reuseport` and Envoy do.
//! Handing each connection from one accepting thread to the least busy worker cost a
//! cross-thread wake-up, an epoll deregistration and registration and a context switch per
//! connection (loadtest/README.md, "With the nginx leg"). Connections on the internal
//! listener, and every connection where the listener cannot be shared, still come from the
//! control thread ([`Workers::dispatch`]) to the worker with the fewest open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::{Gateway, Listeners, accept_loop, serve_connection};
use crate::config::StartError;
use pulse::Pulse;

mod pulse;

/// How long a stopping worker waits for blocking work (recording writes) after its
/// connections were closed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// What the control thread hands a worker.
enum Handed {
    /// A connection the control thread accepted, counted on this worker.
    Connection(std::net::TcpStream, SocketAddr, Counted),
    /// The worker's own listening socket, to accept on until the gateway stops.
    Listener(std::net::TcpListener),
}

/// The worker threads, owned by the control thread.
pub struct Workers {
    lanes: Vec<Lane>,
    /// Where the search for the least busy worker starts next, so that ties rotate.
    next: usize,
    threads: Vec<JoinHandle<()>>,
    /// Connections open on all workers.
    open: Arc<AtomicUsize>,
}

struct Lane {
    tx: mpsc::UnboundedSender<Handed>,
    /// Connections open on this worker (counted from hand-over or accept to close).
    open: Open,
}

impl Workers {
    /// Starts `count` worker threads (at least one) serving `gateway`.
    pub fn start(count: usize, gateway: &Arc<Gateway>) -> Result<Workers, StartError> {
        let count = count.max(1);
        let mut workers = Workers {
            lanes: Vec::with_capacity(count),
            next: 0,
            threads: Vec::with_capacity(count),
            open: Arc::new(AtomicUsize::new(0)),
        };
        for index in 0..count {
            let fail =
                |e: std::io::Error| StartError::Fatal(format!("cannot start worker {index}: {e}"));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(fail)?;
            let (tx, rx) = mpsc::unbounded_channel();
            let open = Open {
                worker: Arc::new(AtomicUsize::new(0)),
                all: workers.open.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("podterm-worker-{index}"))
                .spawn({
                    let (gateway, open) = (gateway.clone(), open.clone());
                    move || serve(runtime, rx, gateway, open)
                })
                .map_err(fail)?;
            workers.lanes.push(Lane { tx, open });
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// How many worker threads there are.
    pub fn count(&self) -> usize {
        self.lanes.len()
    }

    /// Connections open on each worker now.
    #[cfg(test)]
    fn open_connections(&self) -> Vec<usize> {
        self.lanes
            .iter()
            .map(|l| l.open.worker.load(Ordering::Relaxed))
            .collect()
    }

    /// Connections open on all workers (upgraded sessions are not among them).
    pub fn open_counter(&self) -> Arc<AtomicUsize> {
        self.open.clone()
    }

    /// Gives every worker a listening socket of its own on `listener`'s address: `listener`
    /// itself joins an `SO_REUSEPORT` group (set after it was bound, so that binding it still
    /// failed if the port was taken, and a second podterm on the same port still fails), and
    /// one more socket is bound into the group per further worker. When that cannot be done
    /// the listener comes back, with the reason, for the control thread to accept on.
    ///
    /// Only sockets with `SO_REUSEPORT` of the same user can join the group (Linux checks the
    /// effective uid), as with nginx's `reuseport`.
    pub fn listen(&mut self, listener: TcpListener) -> Result<(), (TcpListener, std::io::Error)> {
        let shared = (|| {
            let addr = listener.local_addr()?;
            rustix::net::sockopt::set_socket_reuseport(&listener, true)?;
            let more = (1..self.lanes.len())
                .map(|_| joined(addr))
                .collect::<std::io::Result<Vec<_>>>()?;
            Ok(more)
        })();
        let more = match shared {
            Ok(more) => more,
            Err(e) => return Err((listener, e)),
        };
        // The first socket off this thread's event loop; should that fail, it closes and the
        // group's other sockets take its share.
        let first = listener
            .into_std()
            .inspect_err(|e| tracing::error!(error = %e, "cannot hand the listener to a worker"))
            .ok();
        for (index, (lane, socket)) in self
            .lanes
            .iter()
            .zip(first.into_iter().chain(more))
            .enumerate()
        {
            if lane.tx.send(Handed::Listener(socket)).is_err() {
                tracing::error!(worker = index, "a worker thread is gone");
            }
        }
        Ok(())
    }

    /// Hands `stream` to the worker with the fewest open connections.
    pub fn dispatch(&mut self, stream: TcpStream, peer: SocketAddr) {
        // Off this thread's event loop, onto the worker's (registered there on arrival).
        let mut stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot hand the connection to a worker");
                return;
            }
        };
        while !self.lanes.is_empty() {
            let n = self.lanes.len();
            let start = self.next % n;
            self.next = (start + 1) % n;
            let index = (0..n)
                .map(|k| (start + k) % n)
                .min_by_key(|&i| self.lanes[i].open.worker.load(Ordering::Relaxed))
                .expect("at least one worker");
            let lane = &self.lanes[index];
            let handed = Handed::Connection(stream, peer, lane.open.count());
            match lane.tx.send(handed) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    // Its thread ended (it panicked): serve on the others from now on. The
                    // connection's count on it ends here.
                    tracing::error!(worker = index, "a worker thread is gone");
                    self.lanes.swap_remove(index);
                    let Handed::Connection(back, _, _) = back else {
                        unreachable!("a connection was sent")
                    };
                    stream = back;
                }
            }
        }
        tracing::error!(%peer, "no worker thread left; connection dropped");
    }

    /// Stops the workers: no more connections, those still open are closed, and every
    /// thread has ended when this returns.
    pub async fn stop(self) {
        drop(self.lanes);
        for thread in self.threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// One more listening socket on `addr`, in the `SO_REUSEPORT` group of the socket bound there.
fn joined(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

/// The accept queue of each listening socket (`listen(2)`'s backlog; the kernel caps it at
/// `net.core.somaxconn`, 4096 by default). tokio's `TcpListener::bind` listens with 128, as
/// std does (mio 1.2), so the socket podterm was given is set to this too ([`deepen`]).
pub(super) const LISTEN_BACKLOG: u32 = 1024;

/// Sets `listener`'s accept queue to [`LISTEN_BACKLOG`] (`listen(2)` again on a listening
/// socket changes only its backlog).
///
/// A `SO_REUSEPORT` group spreads new connections over its sockets by their addresses' hash,
/// whether a socket's queue has room or not. With the first socket at 128 and the others at
/// 1024, a burst of connections while the workers could not accept (at the open-file limit;
/// a flood) overflowed the first one's queue: the kernel then drops the client's handshake
/// ACK, the client believes itself connected, and its request or its close is dropped with it
/// until the handshake is retried, seconds later (`nstat`'s `TcpExtListenOverflows`;
/// `tests/gateway_connections.rs`, the file-limit test, found it).
pub(super) fn deepen(listener: &TcpListener) -> std::io::Result<()> {
    rustix::net::listen(listener, LISTEN_BACKLOG as i32)?;
    Ok(())
}

/// A worker's count of open connections and the count over all workers.
#[derive(Clone)]
struct Open {
    worker: Arc<AtomicUsize>,
    all: Arc<AtomicUsize>,
}

impl Open {
    /// One more open connection on this worker, until the guard is dropped.
    fn count(&self) -> Counted {
        self.worker.fetch_add(1, Ordering::Relaxed);
        self.all.fetch_add(1, Ordering::Relaxed);
        Counted(self.clone())
    }
}

/// One worker thread: serves the connections it is handed and those it accepts on its own
/// listening socket, until the control thread drops its sender; then closes what is open.
fn serve(
    runtime: Runtime,
    mut rx: mpsc::UnboundedReceiver<Handed>,
    gateway: Arc<Gateway>,
    open: Open,
) {
    let pulse = Arc::new(Pulse::default());
    runtime.block_on(async {
        tokio::spawn({
            let pulse = pulse.clone();
            async move { pulse.run().await }
        });
        while let Some(handed) = rx.recv().await {
            match handed {
                // Counted by the control thread when it chose this worker.
                Handed::Connection(stream, peer, counted) => match TcpStream::from_std(stream) {
                    Ok(stream) => spawn(&gateway, &pulse, stream, peer, counted),
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "worker cannot take the connection");
                    }
                },
                Handed::Listener(listener) => match TcpListener::from_std(listener) {
                    Ok(listener) => {
                        let (gateway, open, pulse) = (gateway.clone(), open.clone(), pulse.clone());
                        tokio::spawn(async move {
                            let listeners = Listeners {
                                main: Some(&listener),
                                peers: None,
                            };
                            accept_loop(listeners, &gateway, &open.all, |stream, peer| {
                                spawn(&gateway, &pulse, stream, peer, open.count());
                            })
                            .await;
                        });
                    }
                    Err(e) => tracing::error!(error = %e, "worker cannot take its listener"),
                },
            }
        }
    });
    // Tasks still running (connections, sessions being forced closed, the accept loop) are
    // dropped here, which closes their sockets.
    runtime.shutdown_timeout(STOP_GRACE);
}

/// Serves `stream` on this worker.
fn spawn(
    gateway: &Arc<Gateway>,
    pulse: &Pulse,
    stream: TcpStream,
    peer: SocketAddr,
    counted: Counted,
) {
    pulse.arrived();
    let gateway = gateway.clone();
    // Boxed: the connection's future is about 3 KiB (a direct session runs in it), and tokio
    // moves an unboxed future by value on its way into the task's cell and writes the cell's
    // whole stage again when the task ends: several 3 KiB copies a connection, against one
    // allocation of the same size (loadtest/README.md, "eleventh stop").
    tokio::spawn(Box::pin(async move {
        let session = serve_connection(gateway, stream, peer).await;
        // An upgraded connection counts as a session from here (drain::Drain::open_sessions).
        drop(counted);
        if let Some(session) = session {
            session.run().await;
        }
    }));
}

/// One open connection on a worker, until dropped.
struct Counted(Open);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.worker.fetch_sub(1, Ordering::Relaxed);
        self.0.all.fetch_sub(1, Ordering::Relaxed);
        #[cfg(test)]
        tests::CLOSED.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
