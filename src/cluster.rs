//! The cluster side: clusters from kubeconfig contexts or the in-cluster config; impersonated
//! reads sent through kube's client (its auth, token refresh and TLS), and the exec upgrade on
//! a connection of its own under the same auth and TLS (`upgrade`).

mod tls;
/// The TLS client's properties on hostile server streams, for fuzzing (`test-util`).
#[cfg(any(test, feature = "test-util"))]
pub use tls::fuzzing as tls_fuzzing;
mod upgrade;
pub use upgrade::UpstreamIo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use fastwebsockets::{Role, WebSocket};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::BoxError;

use crate::config::{Config, ConfigError};
use crate::identity::Identity;
use crate::protocol;

/// The cluster name of the in-cluster config.
pub const IN_CLUSTER: &str = "in-cluster";
/// Largest refusal body read from the cluster before an exec upgrade, in bytes.
pub const MAX_REFUSAL_BYTES: usize = 64 * 1024;
const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Request headers a client sends that are passed on to the cluster on reads.
const PASSED_REQUEST_HEADERS: [HeaderName; 2] = [header::ACCEPT, header::USER_AGENT];
/// Response headers the cluster sends that are passed back to the client.
const PASSED_RESPONSE_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::CACHE_CONTROL];

/// The socket of an exec stream on the cluster side.
pub type UpstreamSocket = WebSocket<UpstreamIo>;

/// One Kubernetes API server podterm serves, under a name.
pub struct Cluster {
    name: String,
    client: kube::Client,
    /// Sends exec upgrades, each on a connection of its own.
    upgrades: upgrade::Upgrades,
}

/// The clusters this replica serves, by name.
#[derive(Clone, Default)]
pub struct Clusters {
    by_name: BTreeMap<String, Arc<Cluster>>,
}

/// Why the clusters could not be set up (bad configuration: exit 64).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("PODTERM_KUBECONFIG: cannot read {path}: {source}")]
    ReadKubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("the kubeconfig does not parse: {0}")]
    ParseKubeconfig(kube::config::KubeconfigError),
    #[error("PODTERM_KUBECONFIG: no kubeconfig found ($KUBECONFIG, ~/.kube/config): {0}")]
    NoKubeconfig(kube::config::KubeconfigError),
    #[error("PODTERM_CONTEXTS: context `{0}` is not in the kubeconfig")]
    UnknownContext(String),
    #[error("the kubeconfig has no contexts")]
    NoContexts,
    #[error("context `{context}`: {message}")]
    Context { context: String, message: String },
    #[error("in-cluster config: {0}")]
    InCluster(String),
}

impl From<ClusterError> for ConfigError {
    fn from(e: ClusterError) -> ConfigError {
        ConfigError(format!("bad configuration: {e}"))
    }
}

/// Why a request to a cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cluster {cluster} unreachable: {}", error_chain(source.as_ref()))]
    Send { cluster: String, source: BoxError },
    #[error("cluster refused the exec with {code}")]
    Refused {
        code: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    #[error("cluster {cluster}: exec handshake failed: {why}")]
    Handshake { cluster: String, why: String },
    #[error("`{0}` cannot be sent as an impersonation header")]
    BadIdentity(String),
}

impl UpstreamError {
    /// A one-line reason: the cluster's `Status` message for a refusal.
    pub fn reason(&self) -> String {
        match self {
            UpstreamError::Refused { body, .. } => {
                match serde_json::from_slice::<protocol::Status>(body) {
                    Ok(status) => status.message,
                    Err(_) => String::from_utf8_lossy(body).trim().to_string(),
                }
            }
            other => other.to_string(),
        }
    }
}

/// Who the cluster is asked to act as.
#[derive(Debug, Clone, Copy)]
pub enum ActAs<'a> {
    /// Impersonate this identity (`Impersonate-User`, one `Impersonate-Group` per group).
    User(&'a Identity),
    /// Act with the kubeconfig's own credentials (`podterm dev`'s local user only).
    Podterm,
}

/// Static: a name given as text is parsed, and one outside the standard set copied, each time.
const IMPERSONATE_USER: HeaderName = HeaderName::from_static("impersonate-user");
const IMPERSONATE_GROUP: HeaderName = HeaderName::from_static("impersonate-group");

impl ActAs<'_> {
    fn apply(self, headers: &mut hyper::HeaderMap) -> Result<(), UpstreamError> {
        let ActAs::User(identity) = self else {
            return Ok(());
        };
        for (name, v) in impersonation(identity) {
            let value = HeaderValue::from_bytes(v.as_bytes())
                .map_err(|_| UpstreamError::BadIdentity(v.into()))?;
            headers.append(name, value);
        }
        Ok(())
    }
}

/// The fields that ask the cluster to act as `identity`: `Impersonate-User`, then one
/// `Impersonate-Group` per group, for reads and for the exec upgrade alike. UTF-8 names pass
/// as they are (Go reads header bytes as a string); only bytes HTTP cannot carry (control
/// characters) are refused, by whoever writes the field.
fn impersonation(identity: &Identity) -> impl Iterator<Item = (HeaderName, &str)> {
    std::iter::once((IMPERSONATE_USER, identity.user.as_str())).chain(
        identity
            .groups
            .iter()
            .map(|group| (IMPERSONATE_GROUP, group.as_str())),
    )
}

/// An exec stream the cluster accepted.
pub struct ExecStream {
    /// The upgraded connection, nothing read from it yet.
    pub io: UpstreamIo,
    /// The subprotocol the cluster picked.
    pub protocol: &'static str,
}

impl ExecStream {
    /// The connection as a WebSocket client (fastwebsockets, with its own read buffer).
    pub fn socket(self) -> UpstreamSocket {
        WebSocket::after_handshake(self.io, Role::Client)
    }
}

impl Cluster {
    /// The cluster `config` describes, under `name`.
    pub fn from_config(name: impl Into<String>, config: kube::Config) -> Result<Cluster, String> {
        let upgrades = upgrade::Upgrades::new(&config)?;
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        Ok(Cluster {
            name: name.into(),
            client,
            upgrades,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A GET passed to the cluster as `act_as`; its answer, errors included, comes back as is.
    pub async fn get(
        &self,
        path_and_query: &str,
        client_headers: &hyper::HeaderMap,
        act_as: ActAs<'_>,
    ) -> Result<Response<kube::client::Body>, UpstreamError> {
        let mut req = Request::get(path_and_query)
            .body(kube::client::Body::empty())
            .map_err(|e| self.handshake(e.to_string()))?;
        for name in PASSED_REQUEST_HEADERS {
            if let Some(v) = client_headers.get(&name) {
                req.headers_mut().insert(name, v.clone());
            }
        }
        self.send_as(req, act_as, &PASSED_RESPONSE_HEADERS).await
    }

    /// A request made by podterm (a patch it built, say) sent as `act_as`; the cluster's
    /// status, content type and body come back.
    pub async fn request(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        content_type: Option<&'static str>,
        body: Bytes,
        act_as: ActAs<'_>,
    ) -> Result<Response<kube::client::Body>, UpstreamError> {
        let mut req = Request::builder().method(method).uri(path_and_query);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        req = req.header(header::ACCEPT, "application/json");
        let req = req
            .body(kube::client::Body::from(body.to_vec()))
            .map_err(|e| self.handshake(e.to_string()))?;
        self.send_as(req, act_as, &PASSED_RESPONSE_HEADERS).await
    }

    /// An exec request without an upgrade, passed as is: the cluster's answer comes back.
    pub async fn plain_exec(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        act_as: ActAs<'_>,
    ) -> Result<Response<kube::client::Body>, UpstreamError> {
        let req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .body(kube::client::Body::empty())
            .map_err(|e| self.handshake(e.to_string()))?;
        self.send_as(req, act_as, &[header::CONTENT_TYPE]).await
    }

    /// Sends `req` as `act_as`; the cluster's status and body come back, with those of its
    /// response headers named in `passed`.
    async fn send_as(
        &self,
        mut req: Request<kube::client::Body>,
        act_as: ActAs<'_>,
        passed: &[HeaderName],
    ) -> Result<Response<kube::client::Body>, UpstreamError> {
        act_as.apply(req.headers_mut())?;
        let res = self.send(req).await?;
        let (parts, body) = res.into_parts();
        let mut out = Response::new(body);
        *out.status_mut() = parts.status;
        for name in passed {
            if let Some(v) = parts.headers.get(name) {
                out.headers_mut().insert(name.clone(), v.clone());
            }
        }
        Ok(out)
    }

    /// Opens `pods/exec` on the cluster as `act_as`, offering `protocols` in order.
    pub async fn exec(
        &self,
        path_and_query: &str,
        protocols: &[&'static str],
        act_as: ActAs<'_>,
    ) -> Result<ExecStream, UpstreamError> {
        self.exec_with(path_and_query, protocols, act_as, None)
            .await
    }

    /// [`Cluster::exec`] on a connection with a receive buffer of `receive_buffer` bytes, for
    /// a client that takes its output slowly (crate::protocol::flow).
    pub async fn exec_with(
        &self,
        path_and_query: &str,
        protocols: &[&'static str],
        act_as: ActAs<'_>,
        receive_buffer: Option<u32>,
    ) -> Result<ExecStream, UpstreamError> {
        let exec = upgrade::ExecUpgrade {
            target: path_and_query,
            protocols,
            impersonate: match act_as {
                ActAs::User(identity) => Some(identity),
                ActAs::Podterm => None,
            },
            receive_buffer,
        };
        match self.upgrades.send(exec).await {
            Ok(upgrade::Upgrade::Switched { io, protocol }) => Ok(ExecStream { io, protocol }),
            Ok(upgrade::Upgrade::Refused(upgrade::Refusal {
                code,
                content_type,
                body,
            })) => Err(UpstreamError::Refused {
                code,
                content_type,
                body,
            }),
            Err(upgrade::Failed::Target) => {
                Err(self.handshake(format!("`{path_and_query}` is not a request target")))
            }
            Err(upgrade::Failed::Identity(name)) => Err(UpstreamError::BadIdentity(name)),
            Err(upgrade::Failed::Send(source)) => {
                Err(match source.downcast::<upgrade::Malformed>() {
                    Ok(malformed) => self.handshake(malformed.0),
                    Err(source) => self.unreachable(source),
                })
            }
        }
    }

    /// Sends `req` to the cluster as it is.
    async fn send(
        &self,
        req: Request<kube::client::Body>,
    ) -> Result<Response<kube::client::Body>, UpstreamError> {
        self.client
            .send(req)
            .await
            .map_err(|e| self.unreachable(Box::new(e)))
    }

    fn unreachable(&self, source: BoxError) -> UpstreamError {
        UpstreamError::Send {
            cluster: self.name.clone(),
            source,
        }
    }

    fn handshake(&self, why: String) -> UpstreamError {
        UpstreamError::Handshake {
            cluster: self.name.clone(),
            why,
        }
    }
}

impl Clusters {
    /// The clusters `config` names: each exposed context of `PODTERM_KUBECONFIG`; else, in a
    /// pod, the in-cluster config; else the contexts of `$KUBECONFIG` or `~/.kube/config`.
    pub async fn load(config: &Config) -> Result<Clusters, ClusterError> {
        install_crypto_provider();
        if let Some(path) = &config.kubeconfig {
            return Clusters::from_kubeconfig_file(path, &config.contexts).await;
        }
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
            && Path::new(IN_CLUSTER_TOKEN).exists()
        {
            let kube_config =
                kube::Config::incluster().map_err(|e| ClusterError::InCluster(e.to_string()))?;
            let cluster =
                Cluster::from_config(IN_CLUSTER, kube_config).map_err(ClusterError::InCluster)?;
            return Ok(Clusters::single(cluster));
        }
        let kubeconfig = Kubeconfig::read().map_err(ClusterError::NoKubeconfig)?;
        Clusters::from_kubeconfig(kubeconfig, &config.contexts).await
    }

    /// Each context of the kubeconfig at `path` (or only those in `contexts`) as a cluster.
    pub async fn from_kubeconfig_file(
        path: &Path,
        contexts: &[String],
    ) -> Result<Clusters, ClusterError> {
        install_crypto_provider();
        let kubeconfig =
            Kubeconfig::read_from(path).map_err(|source| ClusterError::ReadKubeconfig {
                path: path.to_owned(),
                source,
            })?;
        Clusters::from_kubeconfig(kubeconfig, contexts).await
    }

    /// The clusters of a kubeconfig given as text (`podterm dev`: the dev cluster's own, from
    /// memory rather than from the file it wrote, which another `podterm dev` started in the
    /// same directory may have written over since).
    pub async fn from_kubeconfig_text(
        text: &str,
        contexts: &[String],
    ) -> Result<Clusters, ClusterError> {
        install_crypto_provider();
        let kubeconfig = Kubeconfig::from_yaml(text).map_err(ClusterError::ParseKubeconfig)?;
        Clusters::from_kubeconfig(kubeconfig, contexts).await
    }

    async fn from_kubeconfig(
        kubeconfig: Kubeconfig,
        contexts: &[String],
    ) -> Result<Clusters, ClusterError> {
        let available: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
        if let Some(missing) = contexts.iter().find(|c| !available.contains(c)) {
            return Err(ClusterError::UnknownContext(missing.clone()));
        }
        let names = if contexts.is_empty() {
            available
        } else {
            contexts.to_vec()
        };
        if names.is_empty() {
            return Err(ClusterError::NoContexts);
        }
        let mut clusters = Clusters::default();
        for name in names {
            let options = KubeConfigOptions {
                context: Some(name.clone()),
                ..KubeConfigOptions::default()
            };
            let failed = |message: String| ClusterError::Context {
                context: name.clone(),
                message,
            };
            let kube_config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
                .await
                .map_err(|e| failed(e.to_string()))?;
            clusters.insert(Cluster::from_config(name.clone(), kube_config).map_err(failed)?);
        }
        Ok(clusters)
    }

    /// Only `cluster`.
    pub fn single(cluster: Cluster) -> Clusters {
        let mut clusters = Clusters::default();
        clusters.insert(cluster);
        clusters
    }

    pub fn insert(&mut self, cluster: Cluster) {
        self.by_name.insert(cluster.name.clone(), Arc::new(cluster));
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.by_name.get(name)
    }

    /// Cluster names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}

/// `error` and each error under it, joined by ": ".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

/// kube's TLS needs one process-wide rustls provider (ring); installing twice is harmless.
pub fn install_crypto_provider() {
    let _ = crypto_provider().install_default();
}

/// ring, offering AES-128-GCM first (then AES-256-GCM, then ChaCha20), as browsers and Go do:
/// SHA-256 runs the TLS 1.3 key schedule in hardware where SHA-384 does not, and API servers
/// pick in the client's order.
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    use rustls::CipherSuite::*;
    let mut provider = rustls::crypto::ring::default_provider();
    let preference = |suite: rustls::CipherSuite| match suite {
        TLS13_AES_128_GCM_SHA256 => 0,
        TLS13_AES_256_GCM_SHA384 => 1,
        TLS13_CHACHA20_POLY1305_SHA256 => 2,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 | TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 4,
        _ => 5,
    };
    // A stable sort: ties keep ring's order.
    provider
        .cipher_suites
        .sort_by_key(|suite| preference(suite.suite()));
    provider
}

#[cfg(test)]
mod tests;
