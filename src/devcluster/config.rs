//! The dev cluster's configuration from `PODTERM_DEV_*` variables; bad values name the variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::ConfigError;

/// Default listen address of `podterm dev-cluster`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6443";
/// Default kubeconfig path (relative to the working directory).
pub const DEFAULT_KUBECONFIG: &str = "podterm-dev.kubeconfig";

/// Configuration of the dev cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevClusterConfig {
    /// Address to listen on (`PODTERM_DEV_CLUSTER_LISTEN`, default `127.0.0.1:6443`; port 0
    /// picks a free port).
    pub listen: SocketAddr,
    /// Kubeconfig file written at start-up (`PODTERM_DEV_KUBECONFIG`, default
    /// `podterm-dev.kubeconfig`).
    pub kubeconfig: PathBuf,
    /// YAML manifest replacing the built-in pods (`PODTERM_DEV_CLUSTER_MANIFEST`).
    pub manifest: Option<PathBuf>,
    /// Serve HTTPS with a CA made at start-up (`PODTERM_DEV_CLUSTER_TLS`, default true).
    pub tls: bool,
}

#[derive(Deserialize)]
struct Env {
    dev_cluster_listen: Option<String>,
    dev_kubeconfig: Option<PathBuf>,
    dev_cluster_manifest: Option<PathBuf>,
    dev_cluster_tls: Option<String>,
}

impl DevClusterConfig {
    /// Reads the `PODTERM_DEV_*` variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the `PODTERM_DEV_*` variables from `vars` (name, value) pairs.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Env = envy::prefixed("PODTERM_").from_iter(vars)?;
        let listen = match env.dev_cluster_listen.as_deref() {
            None => DEFAULT_LISTEN.parse().expect("valid default"),
            Some(text) => text.trim().parse().map_err(|_| {
                ConfigError(format!(
                    "PODTERM_DEV_CLUSTER_LISTEN: `{text}` is not an address such as 127.0.0.1:6443"
                ))
            })?,
        };
        let tls = match env.dev_cluster_tls.as_deref().map(str::trim) {
            None | Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => {
                return Err(ConfigError(format!(
                    "PODTERM_DEV_CLUSTER_TLS: `{other}` is not true or false"
                )));
            }
        };
        let kubeconfig = env
            .dev_kubeconfig
            .unwrap_or_else(|| PathBuf::from(DEFAULT_KUBECONFIG));
        if kubeconfig.as_os_str().is_empty() {
            return Err(ConfigError(
                "PODTERM_DEV_KUBECONFIG must not be empty".into(),
            ));
        }
        let manifest = env
            .dev_cluster_manifest
            .filter(|p| !p.as_os_str().is_empty());
        Ok(DevClusterConfig {
            listen,
            kubeconfig,
            manifest,
            tls,
        })
    }

    /// 127.0.0.1 on a free port, TLS, the built-in manifest: for tests and `podterm dev`.
    pub fn ephemeral(kubeconfig: PathBuf) -> Self {
        DevClusterConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig,
            manifest: None,
            tls: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn config_defaults() {
        let c = DevClusterConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:6443".parse().unwrap());
        assert_eq!(c.kubeconfig, PathBuf::from("podterm-dev.kubeconfig"));
        assert_eq!(c.manifest, None);
        assert!(c.tls);
    }

    #[test]
    fn config_values() {
        let c = DevClusterConfig::from_vars(vars(&[
            ("PODTERM_DEV_CLUSTER_LISTEN", "127.0.0.1:0"),
            ("PODTERM_DEV_KUBECONFIG", "/tmp/k"),
            ("PODTERM_DEV_CLUSTER_MANIFEST", "/tmp/m.yaml"),
            ("PODTERM_DEV_CLUSTER_TLS", "false"),
            ("PODTERM_OTHER", "ignored"),
        ]))
        .unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.kubeconfig, PathBuf::from("/tmp/k"));
        assert_eq!(c.manifest, Some(PathBuf::from("/tmp/m.yaml")));
        assert!(!c.tls);
    }

    #[test]
    fn bad_config_names_the_variable() {
        for (name, value) in [
            ("PODTERM_DEV_CLUSTER_LISTEN", "localhost"),
            ("PODTERM_DEV_CLUSTER_TLS", "maybe"),
            ("PODTERM_DEV_KUBECONFIG", ""),
        ] {
            let e = DevClusterConfig::from_vars(vars(&[(name, value)])).unwrap_err();
            assert!(e.0.contains(name), "{e}");
        }
    }
}
