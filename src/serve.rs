//! `podterm serve`: configuration from the environment, clusters from the kubeconfig, then
//! the gateway served until SIGTERM/SIGINT drain it.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::cluster::Clusters;
use crate::config::{Config, ConfigError, StartError};
use crate::gateway::{Gateway, Hooks};
use crate::server::{bind, run_with_peers};

/// `podterm serve`: configuration from the environment, clusters from the kubeconfig, then
/// serve until drained (first SIGTERM/SIGINT) or forced (second).
pub async fn main() -> Result<(), StartError> {
    let mut config = Config::from_env()?;
    // The policy file and the audit file first: configuration errors before any connection.
    let hooks = Hooks::from_config(&config)?;
    let clusters = Clusters::load(&config).await.map_err(ConfigError::from)?;
    let listener = bind(config.listen).await?;
    let listen = listener
        .local_addr()
        .map_err(|e| StartError::Fatal(e.to_string()))?;
    let peers = bind_peers(&mut config).await?;
    let gateway = Arc::new(Gateway::with_hooks(config, clusters, hooks));
    // Signals are handled from here on, so "serving" means a SIGTERM drains.
    tokio::spawn(signal_handler(&gateway)?);
    tracing::info!(
        %listen,
        peer_listen = ?gateway.config.peer_listen,
        replica = gateway.fleet.replica,
        clusters = ?gateway.clusters.names(),
        auth = ?gateway.config.auth,
        "podterm serving"
    );
    if !gateway.fleet.shared_key && !gateway.fleet.grace.is_zero() {
        tracing::info!("no PODTERM_RESUME_SECRET: sessions resume only on this replica");
    }
    until_stopped(listener, peers, gateway).await
}

/// Binds `PODTERM_PEER_LISTEN`, if set, and records the bound address (and, unless
/// `PODTERM_ADVERTISE` names one, the address other replicas reach this one at).
async fn bind_peers(config: &mut Config) -> Result<Option<TcpListener>, StartError> {
    let Some(addr) = config.peer_listen else {
        return Ok(None);
    };
    let listener = bind(addr).await?;
    let bound = listener
        .local_addr()
        .map_err(|e| StartError::Fatal(e.to_string()))?;
    config.peer_listen = Some(bound);
    config.advertise.get_or_insert_with(|| bound.to_string());
    Ok(Some(listener))
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
    until_stopped(listener, None, gateway).await
}

/// [`run_with_peers`], then the audit trail flushed: how `serve` and `dev` both end.
async fn until_stopped(
    listener: TcpListener,
    peers: Option<TcpListener>,
    gateway: Arc<Gateway>,
) -> Result<(), StartError> {
    let how = run_with_peers(listener, peers, gateway.clone()).await?;
    tracing::info!(?how, "stopped");
    gateway.sync_audit().await;
    Ok(())
}

/// Installs the SIGTERM/SIGINT handlers now; the future acts on them (crate::drain).
fn signal_handler(
    gateway: &Gateway,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, StartError> {
    crate::drain::on_signals(gateway.drain.clone())
        .map_err(|e| StartError::Fatal(format!("cannot install signal handlers: {e}")))
}
