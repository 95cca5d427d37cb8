//! The gateway's accept loop: shared state and hyper connections (HTTP/1.1 with upgrades,
//! HTTP/2), handed to worker threads (`workers`) and served until the drain (crate::drain)
//! says stop.

pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::cluster::Clusters;
use crate::config::{Config, ConfigError, StartError};
use crate::drain::{Drain, Stopped};
use crate::identity::Authenticator;
use crate::session::Hooks;
use crate::telemetry::metrics::Metrics;
use workers::Workers;

/// Everything a request handler needs; one per process, shared by all connections.
pub struct Gateway {
    pub config: Config,
    pub auth: Authenticator,
    pub clusters: Clusters,
    /// The policy and session observers (audit, metrics).
    pub hooks: Hooks,
    pub drain: Drain,
    pub metrics: Metrics,
}

impl Gateway {
    /// A gateway with the default hooks (cluster RBAC only, sessions logged).
    pub fn new(config: Config, clusters: Clusters) -> Gateway {
        Gateway::with_hooks(config, clusters, Hooks::default())
    }

    pub fn with_hooks(config: Config, clusters: Clusters, hooks: Hooks) -> Gateway {
        let metrics = Metrics::with_audit(hooks.audit.as_ref().map(|a| a.dropped_counter()));
        Gateway {
            auth: Authenticator::new(&config),
            clusters,
            hooks,
            drain: Drain::new(config.drain_timeout),
            metrics,
            config,
        }
    }
}

/// Serves `listener` until the gateway's drain stops (every session gone after
/// [`Drain::begin`], or [`Drain::close_now`]); new connections are taken while draining so
/// that probes see `/readyz` 503. Connections are served on `PODTERM_WORKER_THREADS` worker
/// threads, which have all ended (their connections closed) when this returns.
pub async fn run(listener: TcpListener, gateway: Arc<Gateway>) -> Result<Stopped, StartError> {
    let mut workers = Workers::start(gateway.config.worker_thread_count(), &gateway)?;
    tracing::debug!(workers = workers.count(), "worker threads started");
    let how = accept_until_stopped(&listener, &gateway, &mut workers).await;
    drop(listener);
    workers.stop().await;
    Ok(how)
}

async fn accept_until_stopped(
    listener: &TcpListener,
    gateway: &Gateway,
    workers: &mut Workers,
) -> Stopped {
    let stopped = gateway.drain.stopped();
    tokio::pin!(stopped);
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
            how = &mut stopped => return how,
        };
        let _ = stream.set_nodelay(true);
        workers.dispatch(stream, peer);
    }
}

async fn serve_connection(gateway: Arc<Gateway>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let service = {
        let gateway = gateway.clone();
        service_fn(move |req| crate::routes::handle(gateway.clone(), req, peer))
    };
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let closing = gateway.drain.session_deadline();
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        () = closing => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// `podterm serve`: configuration from the environment, clusters from the kubeconfig, then
/// serve until drained (first SIGTERM/SIGINT) or forced (second).
pub async fn main() -> Result<(), StartError> {
    let config = Config::from_env()?;
    // The policy file and the audit file first: configuration errors before any connection.
    let hooks = Hooks::from_config(&config)?;
    let clusters = Clusters::load(&config).await.map_err(ConfigError::from)?;
    let listener = bind(config.listen).await?;
    let listen = listener
        .local_addr()
        .map_err(|e| StartError::Fatal(e.to_string()))?;
    let gateway = Arc::new(Gateway::with_hooks(config, clusters, hooks));
    // Signals are handled from here on, so "serving" means a SIGTERM drains.
    tokio::spawn(signal_handler(&gateway)?);
    tracing::info!(
        %listen,
        clusters = ?gateway.clusters.names(),
        auth = ?gateway.config.auth,
        "podterm serving"
    );
    serve(listener, gateway).await
}

/// Serves until SIGTERM/SIGINT drain the gateway (a second signal forces it).
pub async fn serve_until_signalled(
    listener: TcpListener,
    gateway: Arc<Gateway>,
) -> Result<(), StartError> {
    match signal_handler(&gateway) {
        Ok(signals) => {
            tokio::spawn(signals);
        }
        Err(e) => tracing::error!(error = %e, "signals will not drain the gateway"),
    }
    serve(listener, gateway).await
}

/// [`run`], then the audit trail flushed: how `serve` and `dev` both end.
async fn serve(listener: TcpListener, gateway: Arc<Gateway>) -> Result<(), StartError> {
    let how = run(listener, gateway.clone()).await?;
    tracing::info!(?how, "stopped");
    if let Some(audit) = &gateway.hooks.audit {
        audit.sync().await;
    }
    Ok(())
}

/// Installs the SIGTERM/SIGINT handlers now; the future acts on them (crate::drain).
fn signal_handler(
    gateway: &Gateway,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, StartError> {
    crate::drain::on_signals(gateway.drain.clone())
        .map_err(|e| StartError::Fatal(format!("cannot install signal handlers: {e}")))
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
