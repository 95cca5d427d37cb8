//! `podterm dev`: the embedded dev cluster on an ephemeral port plus the gateway on loopback,
//! every caller being the local dev user; prints the page's URL and the kubeconfig path.

use std::sync::Arc;

use crate::cluster::{Clusters, install_crypto_provider};
use crate::config::{Config, ConfigError, StartError};
use crate::devcluster::{DevCluster, DevClusterConfig};
use crate::gateway::{Gateway, Hooks};
use crate::serve::serve_until_signalled;
use crate::server::bind;

/// `PODTERM_LISTEN` default for `podterm dev`.
pub const DEV_LISTEN: &str = "127.0.0.1:8080";
/// The one cluster's name (the dev cluster's kubeconfig context).
pub const DEV_CLUSTER: &str = "dev";

/// The gateway's configuration for `dev`: as `serve`'s, but listening on [`DEV_LISTEN`] and
/// with `PODTERM_AUTH=none` unless the environment says otherwise.
pub fn dev_config(vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
    let mut vars: Vec<(String, String)> = vars.into_iter().collect();
    for (name, default) in [("PODTERM_LISTEN", DEV_LISTEN), ("PODTERM_AUTH", "none")] {
        if !vars.iter().any(|(k, _)| k == name) {
            vars.push((name.into(), default.into()));
        }
    }
    Config::from_vars(vars)
}

/// `podterm dev`.
pub async fn main() -> Result<(), StartError> {
    install_crypto_provider();
    let config = dev_config(std::env::vars())?;
    let hooks = Hooks::from_config(&config)?;
    let mut cluster_config = DevClusterConfig::from_env()?;
    if std::env::var_os("PODTERM_DEV_CLUSTER_LISTEN").is_none() {
        cluster_config.listen = "127.0.0.1:0".parse().expect("valid address");
    }
    let cluster = DevCluster::start(cluster_config).await?;
    let clusters = dev_clusters(&cluster).await?;
    let listener = bind(config.listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Fatal(e.to_string()))?;
    println!("podterm dev: open http://{addr}/");
    println!("dev cluster kubeconfig: {}", cluster.kubeconfig.display());
    println!(
        "kubectl through podterm: kubectl --server http://{addr}/clusters/{DEV_CLUSTER} get pods"
    );
    let gateway = Arc::new(Gateway::with_hooks(config, clusters, hooks));
    let served = serve_until_signalled(listener, gateway).await;
    cluster.shutdown().await;
    served
}

/// The gateway's one cluster: the dev cluster, from the kubeconfig it made, as kept in memory.
/// Read back from the file, it could be another `podterm dev`'s: two started in the same
/// directory (the page's test files run at once) write the same default path, and the gateway
/// then served the other one's cluster until that one stopped.
pub async fn dev_clusters(cluster: &DevCluster) -> Result<Clusters, ConfigError> {
    Clusters::from_kubeconfig_text(&cluster.kubeconfig_text(), &[DEV_CLUSTER.into()])
        .await
        .map_err(ConfigError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMode;

    #[tokio::test]
    async fn the_gateway_takes_its_own_dev_cluster_whatever_the_file_says_since() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("podterm-dev.kubeconfig");
        let ours = DevCluster::start(DevClusterConfig::ephemeral(path.clone()))
            .await
            .unwrap();
        // Another dev cluster started with the same path writes over the file.
        let theirs = DevCluster::start(DevClusterConfig::ephemeral(path.clone()))
            .await
            .unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains(&theirs.url)
        );
        let clusters = dev_clusters(&ours).await.unwrap();
        theirs.shutdown().await;
        // Ours still answers, through the gateway's cluster: it was never theirs.
        let dev = clusters.get(DEV_CLUSTER).expect("the dev cluster");
        let answer = dev
            .get(
                "/api/v1/namespaces/default/pods",
                &hyper::HeaderMap::new(),
                crate::cluster::ActAs::Podterm,
            )
            .await
            .expect("the dev cluster answers");
        assert_eq!(answer.status(), 200);
        ours.shutdown().await;
    }

    #[test]
    fn dev_defaults_to_loopback_and_no_auth() {
        let c = dev_config([]).unwrap();
        assert_eq!(c.listen, DEV_LISTEN.parse().unwrap());
        assert_eq!(c.auth, AuthMode::None);
        let c = dev_config([("PODTERM_AUTH".to_string(), "headers".to_string())]).unwrap();
        assert_eq!(c.auth, AuthMode::Headers);
    }
}
