//! `podterm serve`: configuration from the environment, clusters from the kubeconfig, then
//! the gateway served until SIGTERM/SIGINT drain it.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::cluster::Clusters;
use crate::config::{Config, ConfigError, StartError};
use crate::gateway::{Gateway, Hooks};
use crate::server::{bind, run};

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
    until_stopped(listener, gateway).await
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
    until_stopped(listener, gateway).await
}

/// [`run`], then the audit trail flushed: how `serve` and `dev` both end.
async fn until_stopped(listener: TcpListener, gateway: Arc<Gateway>) -> Result<(), StartError> {
    let how = run(listener, gateway.clone()).await?;
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
