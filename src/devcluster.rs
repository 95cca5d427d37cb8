//! The embedded dev cluster: a small Kubernetes API server that real kubectl can exec into.
//!
//! ```text
//! TcpListener ─ tls ─ hyper ─ api (authn, impersonation, RBAC, discovery, pods) ─ exec ─┬─ process (PTY or pipes)
//!                                                                                        └─ builtin (echo, flood)
//! ```
//!
//! - [`config`]: `PODTERM_DEV_*` configuration.
//! - [`manifest`]: namespaces, pods, containers and RBAC rules (YAML; a built-in default).
//! - [`tls`]: the CA and server certificate made at start-up.
//! - [`auth`]: bearer token, impersonation headers, RBAC checks and 403 messages.
//! - [`objects`]: v1 Pod/Namespace JSON, lists and tables.
//! - [`api`]: routes, one place where errors become `Status` responses.
//! - [`messages`]: client frames (fragments included) → exec inputs.
//! - [`exec`]: the `pods/exec` WebSocket session (v5/v4), container-agnostic.
//! - [`selector`]: label selectors of list requests.
//! - [`process`]: process-backed containers; [`builtin`]: in-process ones.
//! - [`kubeconfig`]: the kubeconfig file it writes.

mod api;
mod auth;
mod builtin;
mod config;
mod ephemeral;
mod exec;
mod kubeconfig;
mod logs;
mod manifest;
pub mod messages;
mod objects;
mod process;
mod refusal;
mod selector;
mod stream;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{ConfigError, StartError};
pub use config::{DEFAULT_KUBECONFIG, DEFAULT_LISTEN, DevClusterConfig};
use manifest::Manifest;
use objects::Objects;

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Unsent bytes a connection's socket keeps at most (`TCP_NOTSENT_LOWAT`); what is in flight
/// is not limited by it. Without it the kernel let a flooding exec queue 3–4 MB (`ss -tn`)
/// behind a client that reads slowly (podterm under the page's flow control), all of which
/// the page still had to draw after a Ctrl+C: 0.9–1.3 s to the prompt on a VM whose Chromium
/// draws `yes` at 2.4 MiB/s, 0.43–0.47 s with 512 KiB (128 KiB: 0.3 s, but the page's `cat`
/// 24 % slower). A Go API server sets no such limit: on a real cluster its socket buffer
/// stays in the way (loadtest/README.md, "Flow control").
const NOTSENT_LOWAT: u32 = 512 * 1024;

/// Pause after a failed accept (out of descriptors, say) before accepting again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// How long `shutdown` waits for connections and sessions to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// State shared by the accept loop, connections and sessions. When the last clone is dropped,
/// `_done` is dropped too, which tells `shutdown` that everything has ended.
pub(crate) struct Shared {
    pub(crate) objects: Objects,
    pub(crate) token: String,
    /// Per-start directory holding each process-backed container's working directory.
    pub(crate) workdir: PathBuf,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The execs it ran, newest last (at most [`EXEC_JOURNAL_ENTRIES`]).
    pub(crate) journal: Journal,
    _done: mpsc::Sender<()>,
}

/// Execs the dev cluster remembers, for [`DevCluster::executed`].
pub const EXEC_JOURNAL_ENTRIES: usize = 1024;

/// What the dev cluster ran for one exec: the user it ran as and the options it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    pub user: String,
    pub groups: Vec<String>,
    pub namespace: String,
    pub pod: String,
    pub options: stream::ExecOptions,
}

/// The bounded record of execs run, shared by the sessions and the [`DevCluster`] handle.
#[derive(Debug, Clone, Default)]
pub(crate) struct Journal(Arc<std::sync::Mutex<std::collections::VecDeque<Executed>>>);

impl Journal {
    pub(crate) fn push(&self, executed: Executed) {
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == EXEC_JOURNAL_ENTRIES {
            entries.pop_front();
        }
        entries.push_back(executed);
    }

    fn entries(&self) -> Vec<Executed> {
        let entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().cloned().collect()
    }
}

/// A running dev cluster.
pub struct DevCluster {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT` (or `http://…` without TLS).
    pub url: String,
    /// The kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    /// The bearer token in that kubeconfig.
    pub token: String,
    /// The CA certificate (PEM) clients must trust, when serving TLS.
    pub ca_pem: Option<String>,
    stop: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
    accept: JoinHandle<()>,
    workdir: PathBuf,
    journal: Journal,
}

impl DevCluster {
    /// Binds, writes the kubeconfig and serves in background tasks; returns once it accepts
    /// connections.
    pub async fn start(config: DevClusterConfig) -> Result<DevCluster, StartError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        process::adopt_orphans();
        let manifest = match &config.manifest {
            None => Manifest::builtin(),
            Some(path) => Manifest::load(path)
                .map_err(|e| ConfigError(format!("PODTERM_DEV_CLUSTER_MANIFEST: {e}")))?,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen.to_string(),
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen.to_string(),
            source,
        })?;
        let host_ip = if addr.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            addr.ip()
        };
        let host = SocketAddr::new(host_ip, addr.port());
        let tls = if config.tls {
            Some(
                tls::DevTls::generate(host_ip)
                    .map_err(|e| StartError::Fatal(format!("dev cluster TLS: {e}")))?,
            )
        } else {
            None
        };
        let url = format!("{}://{host}", if tls.is_some() { "https" } else { "http" });
        let token = random_hex(32);
        let temp = std::env::temp_dir();
        remove_stale_workdirs(&temp);
        let workdir = temp.join(format!(
            "{WORKDIR_PREFIX}{}-{}",
            std::process::id(),
            random_hex(4)
        ));
        process::prepare_base_dir(&workdir)
            .map_err(|e| StartError::Fatal(format!("cannot create {}: {e}", workdir.display())))?;
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        kubeconfig::write(&config.kubeconfig, &url, &token, ca_pem.as_deref()).map_err(|e| {
            StartError::Fatal(format!(
                "cannot write the kubeconfig {}: {e}",
                config.kubeconfig.display()
            ))
        })?;

        let (stop, shutdown) = watch::channel(false);
        let (done_tx, done) = mpsc::channel(1);
        let journal = Journal::default();
        let shared = Arc::new(Shared {
            objects: Objects {
                manifest,
                created: SystemTime::now(),
                instance: rand::random(),
                node_ip: host_ip.to_string(),
                ephemeral: objects::Ephemeral::default(),
                changes: tokio::sync::broadcast::channel(64).0,
            },
            token: token.clone(),
            workdir: workdir.clone(),
            shutdown: shutdown.clone(),
            journal: journal.clone(),
            _done: done_tx,
        });
        let accept = tokio::spawn(accept_loop(
            listener,
            tls.map(|t| t.acceptor),
            shared,
            shutdown,
        ));
        tracing::info!(%url, kubeconfig = %config.kubeconfig.display(), "dev cluster listening");
        Ok(DevCluster {
            addr,
            url,
            kubeconfig: config.kubeconfig,
            token,
            ca_pem,
            stop,
            done,
            accept,
            workdir,
            journal,
        })
    }

    /// The execs it ran (started a command for), oldest first: the user each ran as and the
    /// options it read from the query, as kube-apiserver would have read them.
    pub fn executed(&self) -> Vec<Executed> {
        self.journal.entries()
    }

    /// The kubeconfig it wrote, rendered again from what it holds (the file may have been
    /// written over since by another dev cluster started with the same path).
    pub fn kubeconfig_text(&self) -> String {
        kubeconfig::render(&self.url, &self.token, self.ca_pem.as_deref())
    }

    /// Stops accepting, ends every session (killing its processes) and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.accept).await;
        if tokio::time::timeout(SHUTDOWN_GRACE, self.done.recv())
            .await
            .is_err()
        {
            tracing::warn!("dev cluster sessions did not end within the grace period");
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
        tracing::info!(url = %self.url, "dev cluster stopped");
    }
}

impl Drop for DevCluster {
    /// Dropped without [`DevCluster::shutdown`] (a failing test, say): stop serving and end
    /// the sessions anyway, without waiting, and remove the working directory.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

/// Working directories are `<temp>/podterm-dev-cluster-<pid>-<random>`.
const WORKDIR_PREFIX: &str = "podterm-dev-cluster-";

/// Removes the working directories in `temp` left by dev clusters whose process is gone
/// (killed, so it could not clean up). A directory whose process still runs is kept, whatever
/// that process now is.
fn remove_stale_workdirs(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WORKDIR_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = stopped(&mut shutdown) => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: keep serving the connections we have, and back off
                    // rather than spin until a descriptor frees up.
                    tracing::warn!(error = %e, "dev cluster accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT);
        tokio::spawn(connection(stream, peer, tls.clone(), shared.clone()));
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    match tls {
        None => serve_http(TokioIo::new(stream), peer, shared).await,
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_http(TokioIo::new(stream), peer, shared).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_http<I>(io: I, peer: SocketAddr, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut shutdown = shared.shutdown.clone();
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(api::handle(req, peer, shared).await) }
        })
    };
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        () = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

/// `podterm dev-cluster`: serve until SIGTERM or SIGINT.
pub async fn main() -> Result<(), StartError> {
    let config = DevClusterConfig::from_env()?;
    // The handlers go in before the cluster serves or says where: a SIGTERM sent as soon as
    // it answers (as a supervisor or a test may) must stop it cleanly, not kill it.
    let mut signals = crate::drain::Signals::install()
        .map_err(|e| StartError::Fatal(format!("cannot handle SIGTERM and SIGINT: {e}")))?;
    let cluster = DevCluster::start(config).await?;
    println!("dev cluster: {}", cluster.url);
    println!("kubeconfig: {}", cluster.kubeconfig.display());
    println!(
        "try: kubectl --kubeconfig {} get pods -A",
        cluster.kubeconfig.display()
    );
    let signal = signals.next().await;
    tracing::info!("{signal}: shutting down");
    cluster.shutdown().await;
    Ok(())
}

/// Resolves once shutdown has been asked for (at once if it already has).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: drop it here, not in the caller's select.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_workdirs_of_gone_processes_are_removed_and_live_ones_kept() {
        let temp = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let stale = temp.path().join(format!("{WORKDIR_PREFIX}{gone}-0a1b2c3d"));
        let live = temp
            .path()
            .join(format!("{WORKDIR_PREFIX}{}-0a1b2c3d", std::process::id()));
        let other = temp.path().join("podterm-dev-cluster-notapid-x");
        for dir in [&stale, &live, &other] {
            std::fs::create_dir_all(dir.join("default/echo-0")).unwrap();
        }
        remove_stale_workdirs(temp.path());
        assert!(
            !stale.exists(),
            "the gone process's directory is still there"
        );
        assert!(live.exists(), "a running process's directory was removed");
        assert!(
            other.exists(),
            "a directory not named after a process was removed"
        );
    }

    #[tokio::test]
    async fn a_dropped_dev_cluster_leaves_no_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let config = DevClusterConfig::ephemeral(dir.path().join("kubeconfig"));
        let cluster = DevCluster::start(config).await.unwrap();
        let workdir = cluster.workdir.clone();
        assert!(workdir.is_dir());
        drop(cluster);
        assert!(!workdir.exists(), "{} was left behind", workdir.display());
    }
}
