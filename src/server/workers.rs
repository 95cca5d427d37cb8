//! Worker threads: each runs an event loop of its own (a current-thread tokio runtime); the
//! accept loop hands every connection to the worker with the fewest open, and the connection
//! and its session (both sockets, the relay, the timers) stay on that thread to the end.
//!
//! Thread per core, as Envoy and nginx do: a relay does almost nothing per wake-up, and work
//! stealing costs more than that work (figures: loadtest/README.md, "Design figures").

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::{Gateway, serve_connection};
use crate::config::StartError;

/// How long a stopping worker waits for blocking work (recording writes) after its
/// connections were closed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A connection the accept loop took, on its way to a worker.
type Accepted = (std::net::TcpStream, SocketAddr);

/// The worker threads, owned by the accept loop.
pub struct Workers {
    lanes: Vec<Lane>,
    /// Where the search for the least busy worker starts next, so that ties rotate.
    next: usize,
    threads: Vec<JoinHandle<()>>,
}

struct Lane {
    tx: mpsc::UnboundedSender<Accepted>,
    /// Connections open on this worker (counted from hand-over to close).
    open: Arc<AtomicUsize>,
}

impl Workers {
    /// Starts `count` worker threads (at least one) serving `gateway`.
    pub fn start(count: usize, gateway: &Arc<Gateway>) -> Result<Workers, StartError> {
        let count = count.max(1);
        let mut workers = Workers {
            lanes: Vec::with_capacity(count),
            next: 0,
            threads: Vec::with_capacity(count),
        };
        for index in 0..count {
            let fail =
                |e: std::io::Error| StartError::Fatal(format!("cannot start worker {index}: {e}"));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(fail)?;
            let (tx, rx) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
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
            .map(|l| l.open.load(Ordering::Relaxed))
            .collect()
    }

    /// Connections open on all workers now (upgraded sessions are not among them).
    pub fn open(&self) -> usize {
        self.lanes
            .iter()
            .map(|l| l.open.load(Ordering::Relaxed))
            .sum()
    }

    /// Hands `stream` to the worker with the fewest open connections.
    pub fn dispatch(&mut self, stream: TcpStream, peer: SocketAddr) {
        // Off this thread's event loop, onto the worker's (registered there on arrival).
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot hand the connection to a worker");
                return;
            }
        };
        let mut accepted = (stream, peer);
        while !self.lanes.is_empty() {
            let n = self.lanes.len();
            let start = self.next % n;
            self.next = (start + 1) % n;
            let index = (0..n)
                .map(|k| (start + k) % n)
                .min_by_key(|&i| self.lanes[i].open.load(Ordering::Relaxed))
                .expect("at least one worker");
            let lane = &self.lanes[index];
            lane.open.fetch_add(1, Ordering::Relaxed);
            match lane.tx.send(accepted) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    // Its thread ended (it panicked): serve on the others from now on.
                    tracing::error!(worker = index, "a worker thread is gone");
                    self.lanes.swap_remove(index);
                    accepted = back;
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

/// One worker thread: serves the connections it is handed until the accept loop drops its
/// sender, then closes what is still open.
fn serve(
    runtime: Runtime,
    mut rx: mpsc::UnboundedReceiver<Accepted>,
    gateway: Arc<Gateway>,
    open: Arc<AtomicUsize>,
) {
    runtime.block_on(async {
        while let Some((stream, peer)) = rx.recv().await {
            let counted = Counted(open.clone());
            match TcpStream::from_std(stream) {
                Ok(stream) => {
                    let gateway = gateway.clone();
                    tokio::spawn(async move {
                        let _counted = counted;
                        serve_connection(gateway, stream, peer).await;
                    });
                }
                Err(e) => tracing::warn!(%peer, error = %e, "worker cannot take the connection"),
            }
        }
    });
    // Tasks still running (connections, sessions being forced closed) are dropped here, which
    // closes their sockets.
    runtime.shutdown_timeout(STOP_GRACE);
}

/// One open connection on a worker, until dropped.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        #[cfg(test)]
        tests::CLOSED.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
