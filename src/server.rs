//! The gateway's accept loop: shared state, hyper connections (HTTP/1.1 with upgrades,
//! HTTP/2), and the drain that ends every session with 1001 on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::Clusters;
use crate::config::{Config, ConfigError, StartError};
use crate::identity::Authenticator;
use crate::session::Hooks;

/// How long shutdown waits for sessions to close after telling them to (1001).
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Everything a request handler needs; one per process, shared by all connections.
pub struct Gateway {
    pub config: Config,
    pub auth: Authenticator,
    pub clusters: Clusters,
    /// The policy and session observers (audit, metrics).
    pub hooks: Hooks,
    pub drain: Drain,
}

impl Gateway {
    /// A gateway with the default hooks (cluster RBAC only, sessions logged).
    pub fn new(config: Config, clusters: Clusters) -> Gateway {
        Gateway::with_hooks(config, clusters, Hooks::default())
    }

    pub fn with_hooks(config: Config, clusters: Clusters, hooks: Hooks) -> Gateway {
        Gateway {
            auth: Authenticator::new(&config),
            config,
            clusters,
            hooks,
            drain: Drain::new(),
        }
    }
}

/// Shutdown coordination: a draining flag sessions watch, and a count of live sessions.
#[derive(Clone)]
pub struct Drain {
    draining: watch::Sender<bool>,
    live: watch::Sender<usize>,
}

impl Default for Drain {
    fn default() -> Drain {
        Drain::new()
    }
}

impl Drain {
    pub fn new() -> Drain {
        Drain {
            draining: watch::Sender::new(false),
            live: watch::Sender::new(0),
        }
    }

    /// Starts draining: every session closes with 1001, `/readyz` says 503.
    pub fn start(&self) {
        self.draining.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once draining has started.
    pub fn signaled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.draining.subscribe();
        async move {
            let _ = rx.wait_for(|draining| *draining).await;
        }
    }

    /// Counts a live session until the guard is dropped.
    pub fn session(&self) -> SessionGuard {
        self.live.send_modify(|n| *n += 1);
        SessionGuard {
            live: self.live.clone(),
        }
    }

    /// Sessions running now.
    pub fn live(&self) -> usize {
        *self.live.borrow()
    }

    /// Resolves when no session is running.
    pub async fn idle(&self) {
        let mut rx = self.live.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// A live session; dropping it counts the session as ended.
pub struct SessionGuard {
    live: watch::Sender<usize>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.live.send_modify(|n| *n -= 1);
    }
}

/// Serves `listener` until `shutdown` resolves, then drains: stops accepting, closes every
/// session with 1001 and waits for them (at most [`DRAIN_GRACE`]).
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving what is open.
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(gateway.clone(), stream, peer));
    }
    drop(listener);
    tracing::info!(sessions = gateway.drain.live(), "draining");
    gateway.drain.start();
    let _ = tokio::time::timeout(DRAIN_GRACE, gateway.drain.idle()).await;
    Ok(())
}

async fn serve_connection(gateway: Arc<Gateway>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let service = {
        let gateway = gateway.clone();
        service_fn(move |req| crate::routes::handle(gateway.clone(), req, peer))
    };
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let draining = gateway.drain.signaled();
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        () = draining => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// `podterm serve`: configuration from the environment, clusters from the kubeconfig, then
/// serve until SIGTERM or Ctrl-C.
pub async fn main() -> Result<(), StartError> {
    let config = Config::from_env()?;
    let clusters = Clusters::load(&config).await.map_err(ConfigError::from)?;
    let listener = bind(config.listen).await?;
    tracing::info!(
        listen = %listener.local_addr().map_err(|e| StartError::Fatal(e.to_string()))?,
        clusters = ?clusters.names(),
        auth = ?config.auth,
        "podterm serving"
    );
    run(
        listener,
        Arc::new(Gateway::new(config, clusters)),
        shutdown_signal(),
    )
    .await
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

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
