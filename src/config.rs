//! Configuration: the gateway's `Config` from `PODTERM_*` variables, and the errors shared by
//! every command's config; bad configuration exits 64.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

mod errors;

pub use errors::{ConfigError, EXIT_CONFIG, StartError, duration, parse_duration, read_prefixed};

/// `PODTERM_LISTEN` default for `podterm serve`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// `PODTERM_USER_HEADER` default.
pub const DEFAULT_USER_HEADER: &str = "X-Forwarded-User";
/// `PODTERM_GROUPS_HEADER` default.
pub const DEFAULT_GROUPS_HEADER: &str = "X-Forwarded-Groups";
/// `PODTERM_PING_INTERVAL` default: below common load-balancer idle timeouts (60 s).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// `PODTERM_IDLE_TIMEOUT` default: a session with no data either way for this long ends.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
fn default_file_max_bytes() -> u64 {
    4 << 30
}

/// `PODTERM_MAX_SESSION_DURATION` default.
pub const DEFAULT_MAX_SESSION_DURATION: Duration = Duration::from_secs(12 * 3600);
/// `PODTERM_MAX_FRAME_BYTES` default, in bytes (channel byte included).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 256 * 1024;
/// `PODTERM_DRAIN_TIMEOUT` default: how long open sessions go on after SIGTERM.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Smallest accepted `PODTERM_MAX_FRAME_BYTES`: a resize frame must fit.
pub const MIN_MAX_FRAME_BYTES: usize = 512;
/// `PODTERM_HEADER_READ_TIMEOUT` default: a connection must send a request's headers within
/// this long of starting it.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `PODTERM_CONNECTION_IDLE_TIMEOUT` default: a connection that has not upgraded and has no
/// request in flight is closed after this long.
pub const DEFAULT_CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Open files kept back from `PODTERM_MAX_CONNECTIONS`'s default for everything else (the
/// listener, kubeconfig reads, the audit and recording files, cluster reads), at most.
pub const RESERVED_FILES: u64 = 200;
/// `PODTERM_RECORD_MAX_BYTES` default: the most one session's recording may take on disk.
pub const DEFAULT_RECORD_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// `PODTERM_RESUME_GRACE` default: how long a dropped page session waits to be resumed.
pub const DEFAULT_RESUME_GRACE: Duration = Duration::from_secs(5 * 60);
/// Shortest `PODTERM_RESUME_SECRET` accepted, in bytes.
pub const MIN_RESUME_SECRET_BYTES: usize = 32;
/// Most `PODTERM_WORKER_THREADS` accepted.
pub const MAX_WORKER_THREADS: usize = 1024;

/// How callers are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// The API gateway in front vouches for the user in trusted headers (the default).
    Headers,
    /// No authentication: every caller is the fixed local dev user (`podterm dev`).
    None,
}

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret's bytes, for a constant-time comparison.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The gateway's configuration (`podterm serve`), read from `PODTERM_*` variables.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `PODTERM_LISTEN`: the address to serve on. Default [`DEFAULT_LISTEN`].
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `PODTERM_KUBECONFIG`: the kubeconfig file. Default: the in-cluster config inside a pod,
    /// else `$KUBECONFIG`, else `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// `PODTERM_CONTEXTS`: comma-separated kubeconfig contexts to expose, each as a cluster
    /// named after it. Default: all.
    #[serde(default)]
    pub contexts: Vec<String>,
    /// `PODTERM_AUTH`: `headers` (default) or `none` (every caller is the local dev user; only
    /// for `podterm dev`).
    #[serde(default = "default_auth")]
    pub auth: AuthMode,
    /// `PODTERM_USER_HEADER`: the trusted header naming the user. Default
    /// [`DEFAULT_USER_HEADER`].
    #[serde(default = "default_user_header")]
    pub user_header: String,
    /// `PODTERM_GROUPS_HEADER`: the trusted header listing groups, comma-separated. Default
    /// [`DEFAULT_GROUPS_HEADER`].
    #[serde(default = "default_groups_header")]
    pub groups_header: String,
    /// `PODTERM_PROXY_SECRET`: when set, every request must carry it in
    /// `X-Podterm-Proxy-Secret` (else 401). Default: unset. Never printed.
    #[serde(default)]
    pub proxy_secret: Option<Secret>,
    /// `PODTERM_ALLOWED_ORIGINS`: comma-separated origins (`https://host[:port]`) whose pages
    /// may open sessions. Default: only the request's own host.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// `PODTERM_PING_INTERVAL`: how often both legs of a session are pinged. Default
    /// [`DEFAULT_PING_INTERVAL`] (30s).
    #[serde(default = "default_ping_interval", deserialize_with = "duration")]
    pub ping_interval: Duration,
    /// `PODTERM_IDLE_TIMEOUT`: a session with no data either way for this long is closed.
    /// Default [`DEFAULT_IDLE_TIMEOUT`] (30m).
    #[serde(default = "default_idle_timeout", deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// `PODTERM_MAX_SESSION_DURATION`: the longest a session may last. Default
    /// [`DEFAULT_MAX_SESSION_DURATION`] (12h).
    #[serde(
        default = "default_max_session_duration",
        deserialize_with = "duration"
    )]
    pub max_session_duration: Duration,
    /// `PODTERM_MAX_FRAME_BYTES`: the largest frame a client may send, in bytes, channel byte
    /// included; a larger one closes the session with 1009. Default
    /// [`DEFAULT_MAX_FRAME_BYTES`] (256 KiB).
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// `PODTERM_DRAIN_TIMEOUT`: after SIGTERM, how long open sessions may go on before they
    /// are closed with 1001 (new sessions are refused at once). Default
    /// [`DEFAULT_DRAIN_TIMEOUT`] (5m).
    #[serde(default = "default_drain_timeout", deserialize_with = "duration")]
    pub drain_timeout: Duration,
    /// `PODTERM_POLICY_FILE`: the policy file (YAML, see crate::policy), read at start-up.
    /// Default: none, every user gets `shell` and the cluster's RBAC alone decides.
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
    /// `PODTERM_MAX_SESSIONS_PER_USER`: open sessions one user may hold on this replica; more
    /// get 429. Default: no limit.
    #[serde(default)]
    pub max_sessions_per_user: Option<usize>,
    /// `PODTERM_MAX_SESSIONS`: open sessions this replica holds at most; more get 503.
    /// Default: no limit.
    #[serde(default)]
    pub max_sessions: Option<usize>,
    /// `PODTERM_FILE_MAX_BYTES`: the largest file (or directory archive) one download or
    /// upload may move, in bytes. Default 4 GiB.
    #[serde(default = "default_file_max_bytes")]
    pub file_max_bytes: u64,
    /// `PODTERM_AUDIT_FILE`: append audit lines (JSON) to this file, created 0600. Default:
    /// stdout.
    #[serde(default)]
    pub audit_file: Option<PathBuf>,
    /// `PODTERM_RECORD_DIR`: record every session as `<dir>/<session id>.cast` (asciicast v2).
    /// Default: no recordings.
    #[serde(default)]
    pub record_dir: Option<PathBuf>,
    /// `PODTERM_RECORD_INPUT`: also record what users type (may capture secrets they type).
    /// Default false.
    #[serde(default)]
    pub record_input: bool,
    /// `PODTERM_RECORD_REQUIRED`: a recording that cannot be created or written ends (or
    /// refuses) the session. Default false: the recording stops, with an audit line.
    #[serde(default)]
    pub record_required: bool,
    /// `PODTERM_RECORD_MAX_BYTES`: the most one recording may take on disk, in bytes; at the
    /// cap the recording stops with a `recording.truncated` audit line (and with
    /// `PODTERM_RECORD_REQUIRED=true` the session ends). Default [`DEFAULT_RECORD_MAX_BYTES`]
    /// (100 MiB).
    #[serde(default = "default_record_max_bytes")]
    pub record_max_bytes: u64,
    /// `PODTERM_HEADER_READ_TIMEOUT`: how long a connection may take to send a request's
    /// headers. Default [`DEFAULT_HEADER_READ_TIMEOUT`] (10s).
    #[serde(default = "default_header_read_timeout", deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// `PODTERM_CONNECTION_IDLE_TIMEOUT`: a connection that is not a session and has no request
    /// in flight is closed after this long. Default [`DEFAULT_CONNECTION_IDLE_TIMEOUT`] (60s).
    #[serde(
        default = "default_connection_idle_timeout",
        deserialize_with = "duration"
    )]
    pub connection_idle_timeout: Duration,
    /// `PODTERM_MAX_CONNECTIONS`: open connections this replica serves at most, sessions
    /// included; a connection over the cap is answered 503 and closed. Default: what the
    /// process's open-file limit allows, two sockets per session, less a reserve
    /// ([`Config::max_connection_count`]).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// `PODTERM_WORKER_THREADS`: threads that serve connections and relay sessions, each with
    /// an event loop of its own (crate::server::workers). Default: one per CPU this process
    /// may use (its cgroup CPU quota counted), via [`Config::worker_thread_count`].
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// `PODTERM_RESUME_GRACE`: how long a page session whose connection dropped (without a
    /// normal close) keeps its process and output for the page to come back
    /// (crate::protocol::resume); `0` turns resume off. Default [`DEFAULT_RESUME_GRACE`] (5m).
    #[serde(default = "default_resume_grace", deserialize_with = "duration")]
    pub resume_grace: Duration,
    /// `PODTERM_RESUME_SECRET`: the key (at least 32 bytes) every replica signs resume proofs
    /// and replica-to-replica requests with; the same on every replica. Default: a random key
    /// per process (resume then works only on the replica that holds the session). Never
    /// printed.
    #[serde(default)]
    pub resume_secret: Option<Secret>,
    /// `PODTERM_PEER_LISTEN`: the internal address other replicas reach this one on (only
    /// `/peer/…`, signed with the resume secret). Default: none (a single replica).
    #[serde(default)]
    pub peer_listen: Option<SocketAddr>,
    /// `PODTERM_ADVERTISE`: `host:port` other replicas reach this one's peer address at (in
    /// a pod: `$(POD_IP):PORT` from the downward API). Default: `PODTERM_PEER_LISTEN` as
    /// bound (fine on one machine).
    #[serde(default)]
    pub advertise: Option<String>,
    /// `PODTERM_PEERS`: comma-separated `host:port` of every replica's peer address, each
    /// resolved at use (a headless Service's name resolves to every ready replica). Default:
    /// none.
    #[serde(default)]
    pub peers: Vec<String>,
}

fn default_resume_grace() -> Duration {
    DEFAULT_RESUME_GRACE
}
fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default address")
}
fn default_auth() -> AuthMode {
    AuthMode::Headers
}
fn default_user_header() -> String {
    DEFAULT_USER_HEADER.into()
}
fn default_groups_header() -> String {
    DEFAULT_GROUPS_HEADER.into()
}
fn default_ping_interval() -> Duration {
    DEFAULT_PING_INTERVAL
}
fn default_idle_timeout() -> Duration {
    DEFAULT_IDLE_TIMEOUT
}
fn default_max_session_duration() -> Duration {
    DEFAULT_MAX_SESSION_DURATION
}
fn default_max_frame_bytes() -> usize {
    DEFAULT_MAX_FRAME_BYTES
}
fn default_drain_timeout() -> Duration {
    DEFAULT_DRAIN_TIMEOUT
}
fn default_record_max_bytes() -> u64 {
    DEFAULT_RECORD_MAX_BYTES
}
fn default_header_read_timeout() -> Duration {
    DEFAULT_HEADER_READ_TIMEOUT
}
fn default_connection_idle_timeout() -> Duration {
    DEFAULT_CONNECTION_IDLE_TIMEOUT
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: default_listen(),
            kubeconfig: None,
            contexts: Vec::new(),
            auth: default_auth(),
            user_header: default_user_header(),
            groups_header: default_groups_header(),
            proxy_secret: None,
            allowed_origins: Vec::new(),
            ping_interval: DEFAULT_PING_INTERVAL,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_session_duration: DEFAULT_MAX_SESSION_DURATION,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            policy_file: None,
            max_sessions_per_user: None,
            file_max_bytes: default_file_max_bytes(),
            max_sessions: None,
            audit_file: None,
            record_dir: None,
            record_input: false,
            record_required: false,
            record_max_bytes: DEFAULT_RECORD_MAX_BYTES,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            connection_idle_timeout: DEFAULT_CONNECTION_IDLE_TIMEOUT,
            max_connections: None,
            worker_threads: None,
            resume_grace: DEFAULT_RESUME_GRACE,
            resume_secret: None,
            peer_listen: None,
            advertise: None,
            peers: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `PODTERM_*` from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars())
    }

    /// Reads the configuration from `(name, value)` pairs (only `PODTERM_*` names count).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let config: Config = read_prefixed("PODTERM_", vars)?;
        config.validated()
    }

    fn validated(mut self) -> Result<Config, ConfigError> {
        self.contexts = clean_list(self.contexts);
        self.allowed_origins = clean_list(self.allowed_origins)
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        self.check_identity()?;
        self.check_timers()?;
        self.check_limits()?;
        self.check_recording()?;
        self.peers = clean_list(self.peers);
        self.check_fleet()?;
        Ok(self)
    }

    /// Origins, identity headers, the proxy secret, and `PODTERM_AUTH=none` on loopback only.
    fn check_identity(&self) -> Result<(), ConfigError> {
        if let Some(o) = self.allowed_origins.iter().find(|o| !o.contains("://")) {
            return bad(
                "PODTERM_ALLOWED_ORIGINS",
                &format!("has `{o}`, not an origin such as https://host:port"),
            );
        }
        for (var, header) in [
            ("PODTERM_USER_HEADER", &self.user_header),
            ("PODTERM_GROUPS_HEADER", &self.groups_header),
        ] {
            if hyper::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return bad(var, &format!("`{header}` is not a header name"));
            }
        }
        if self
            .proxy_secret
            .as_ref()
            .is_some_and(|s| s.expose().is_empty())
        {
            return bad("PODTERM_PROXY_SECRET", "is empty");
        }
        if self.auth == AuthMode::None && !self.listen.ip().is_loopback() {
            return bad(
                "PODTERM_AUTH",
                "is `none`, which serves only loopback addresses (PODTERM_LISTEN)",
            );
        }
        Ok(())
    }

    /// Every timer is more than zero.
    fn check_timers(&self) -> Result<(), ConfigError> {
        for (var, d) in [
            ("PODTERM_PING_INTERVAL", self.ping_interval),
            ("PODTERM_IDLE_TIMEOUT", self.idle_timeout),
            ("PODTERM_MAX_SESSION_DURATION", self.max_session_duration),
            ("PODTERM_HEADER_READ_TIMEOUT", self.header_read_timeout),
            (
                "PODTERM_CONNECTION_IDLE_TIMEOUT",
                self.connection_idle_timeout,
            ),
        ] {
            if d.is_zero() {
                return bad(var, "must be more than zero");
            }
        }
        Ok(())
    }

    /// Session and connection limits, worker threads and the frame limit.
    fn check_limits(&self) -> Result<(), ConfigError> {
        for (var, limit) in [
            ("PODTERM_MAX_SESSIONS_PER_USER", self.max_sessions_per_user),
            ("PODTERM_MAX_SESSIONS", self.max_sessions),
            ("PODTERM_MAX_CONNECTIONS", self.max_connections),
        ] {
            if limit == Some(0) {
                return bad(var, "must be at least 1 (unset it for no limit)");
            }
        }
        if self
            .worker_threads
            .is_some_and(|n| n == 0 || n > MAX_WORKER_THREADS)
        {
            return bad(
                "PODTERM_WORKER_THREADS",
                &format!("must be 1 to {MAX_WORKER_THREADS} (unset it for one per CPU)"),
            );
        }
        if self.max_frame_bytes < MIN_MAX_FRAME_BYTES {
            return bad(
                "PODTERM_MAX_FRAME_BYTES",
                &format!("must be at least {MIN_MAX_FRAME_BYTES}"),
            );
        }
        Ok(())
    }

    /// The resume secret's length; peers need it, and an address to serve them on.
    fn check_fleet(&self) -> Result<(), ConfigError> {
        if self
            .resume_secret
            .as_ref()
            .is_some_and(|s| s.expose().len() < MIN_RESUME_SECRET_BYTES)
        {
            return bad(
                "PODTERM_RESUME_SECRET",
                &format!("must be at least {MIN_RESUME_SECRET_BYTES} bytes"),
            );
        }
        if let Some(p) = self.peers.iter().find(|p| !is_host_port(p)) {
            return bad("PODTERM_PEERS", &format!("has `{p}`, not host:port"));
        }
        if let Some(a) = self.advertise.as_deref().filter(|a| !is_host_port(a)) {
            return bad("PODTERM_ADVERTISE", &format!("`{a}` is not host:port"));
        }
        let fleet = !self.peers.is_empty() || self.peer_listen.is_some();
        if fleet && self.resume_secret.is_none() {
            return bad(
                "PODTERM_PEERS and PODTERM_PEER_LISTEN",
                "need PODTERM_RESUME_SECRET (the same on every replica)",
            );
        }
        if !self.peers.is_empty() && self.peer_listen.is_none() {
            return bad("PODTERM_PEERS", "needs PODTERM_PEER_LISTEN");
        }
        if self.peer_listen.is_some_and(|p| p == self.listen) {
            return bad("PODTERM_PEER_LISTEN", "must differ from PODTERM_LISTEN");
        }
        Ok(())
    }

    /// The recording directory exists when recordings are asked for.
    fn check_recording(&self) -> Result<(), ConfigError> {
        if self.record_max_bytes < 1024 {
            return bad("PODTERM_RECORD_MAX_BYTES", "must be at least 1024");
        }
        match &self.record_dir {
            Some(dir) if !dir.is_dir() => bad(
                "PODTERM_RECORD_DIR",
                &format!("`{}` is not a directory", dir.display()),
            ),
            None if self.record_required || self.record_input => bad(
                "PODTERM_RECORD_REQUIRED and PODTERM_RECORD_INPUT",
                "need PODTERM_RECORD_DIR",
            ),
            _ => Ok(()),
        }
    }

    /// The connection cap: `PODTERM_MAX_CONNECTIONS`, else half of the open-file limit left
    /// after [`RESERVED_FILES`] (at most a quarter of it), since a session holds two sockets.
    pub fn max_connection_count(&self) -> usize {
        self.max_connections.unwrap_or_else(|| {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(1 << 20);
            let reserve = RESERVED_FILES.min(limit / 4);
            usize::try_from((limit - reserve) / 2)
                .unwrap_or(usize::MAX)
                .max(1)
        })
    }

    /// How many worker threads to run: `PODTERM_WORKER_THREADS`, else one per CPU this
    /// process may use.
    pub fn worker_thread_count(&self) -> usize {
        self.worker_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// Whether `s` is `host:port` with a port number and a non-empty host.
fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// A configuration error naming the variable at fault.
fn bad(var: &str, why: &str) -> Result<(), ConfigError> {
    Err(ConfigError(format!("bad configuration: {var} {why}")))
}

fn clean_list(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_audit_and_recording_variables() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let c = Config::from_vars(vars(&[
            ("PODTERM_POLICY_FILE", "/etc/podterm/policy.yaml"),
            ("PODTERM_MAX_SESSIONS_PER_USER", "16"),
            ("PODTERM_MAX_SESSIONS", "2000"),
            ("PODTERM_AUDIT_FILE", "/var/log/podterm/audit.jsonl"),
            ("PODTERM_RECORD_DIR", &d),
            ("PODTERM_RECORD_INPUT", "true"),
            ("PODTERM_RECORD_REQUIRED", "true"),
        ]))
        .unwrap();
        assert_eq!(
            c.policy_file,
            Some(PathBuf::from("/etc/podterm/policy.yaml"))
        );
        assert_eq!(
            (c.max_sessions_per_user, c.max_sessions),
            (Some(16), Some(2000))
        );
        assert_eq!(
            c.audit_file,
            Some(PathBuf::from("/var/log/podterm/audit.jsonl"))
        );
        assert_eq!(c.record_dir.as_deref(), Some(dir.path()));
        assert!(c.record_input && c.record_required);
        let c = Config::from_vars(vars(&[])).unwrap();
        assert!(c.policy_file.is_none() && c.max_sessions.is_none() && c.record_dir.is_none());
        let bad = |pairs: &[(&str, &str)]| Config::from_vars(vars(pairs)).unwrap_err().0;
        assert!(bad(&[("PODTERM_MAX_SESSIONS", "0")]).contains("PODTERM_MAX_SESSIONS must"));
        assert!(
            bad(&[("PODTERM_MAX_SESSIONS_PER_USER", "x")])
                .contains("PODTERM_MAX_SESSIONS_PER_USER")
        );
        assert!(bad(&[("PODTERM_RECORD_DIR", "/nonexistent")]).contains("not a directory"));
        assert!(bad(&[("PODTERM_RECORD_REQUIRED", "true")]).contains("need PODTERM_RECORD_DIR"));
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::from_vars(vars(&[("HOME", "/root")])).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.auth, AuthMode::Headers);
        assert_eq!(c.user_header, DEFAULT_USER_HEADER);
        assert_eq!(c.groups_header, DEFAULT_GROUPS_HEADER);
        assert!(c.proxy_secret.is_none() && c.contexts.is_empty() && c.kubeconfig.is_none());
        assert_eq!(c.ping_interval, DEFAULT_PING_INTERVAL);
        assert_eq!(c.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(c.max_session_duration, DEFAULT_MAX_SESSION_DURATION);
        assert_eq!(c.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES);
        assert_eq!(c.drain_timeout, DEFAULT_DRAIN_TIMEOUT);
    }

    #[test]
    fn every_variable_is_read() {
        let c = Config::from_vars(vars(&[
            ("PODTERM_LISTEN", "127.0.0.1:9000"),
            ("PODTERM_KUBECONFIG", "/tmp/kc"),
            ("PODTERM_CONTEXTS", "a, b,"),
            ("PODTERM_AUTH", "none"),
            ("PODTERM_USER_HEADER", "X-User"),
            ("PODTERM_GROUPS_HEADER", "X-Groups"),
            ("PODTERM_PROXY_SECRET", "hunter2"),
            (
                "PODTERM_ALLOWED_ORIGINS",
                "https://Example.com/,http://localhost:3000",
            ),
            ("PODTERM_PING_INTERVAL", "5s"),
            ("PODTERM_IDLE_TIMEOUT", "10m"),
            ("PODTERM_MAX_SESSION_DURATION", "1h"),
            ("PODTERM_MAX_FRAME_BYTES", "4096"),
            ("PODTERM_DRAIN_TIMEOUT", "90s"),
        ]))
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.kubeconfig, Some(PathBuf::from("/tmp/kc")));
        assert_eq!(c.contexts, ["a", "b"]);
        assert_eq!(c.auth, AuthMode::None);
        assert_eq!(c.user_header, "X-User");
        assert_eq!(c.groups_header, "X-Groups");
        assert_eq!(c.proxy_secret.as_ref().unwrap().expose(), b"hunter2");
        assert_eq!(
            c.allowed_origins,
            ["https://example.com", "http://localhost:3000"]
        );
        assert_eq!(c.ping_interval, Duration::from_secs(5));
        assert_eq!(c.idle_timeout, Duration::from_secs(600));
        assert_eq!(c.max_session_duration, Duration::from_secs(3600));
        assert_eq!(c.max_frame_bytes, 4096);
        assert_eq!(c.drain_timeout, Duration::from_secs(90));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("PODTERM_LISTEN", "nowhere"),
            ("PODTERM_AUTH", "oauth"),
            ("PODTERM_PING_INTERVAL", "often"),
            ("PODTERM_IDLE_TIMEOUT", "0s"),
            ("PODTERM_MAX_SESSION_DURATION", "5x"),
            ("PODTERM_DRAIN_TIMEOUT", "soon"),
            ("PODTERM_MAX_FRAME_BYTES", "lots"),
            ("PODTERM_MAX_FRAME_BYTES", "10"),
            ("PODTERM_ALLOWED_ORIGINS", "example.com"),
            ("PODTERM_USER_HEADER", "bad header"),
            ("PODTERM_PROXY_SECRET", ""),
            ("PODTERM_AUTH", "none"),
            ("PODTERM_WORKER_THREADS", "0"),
            ("PODTERM_WORKER_THREADS", "1025"),
            ("PODTERM_WORKER_THREADS", "many"),
        ] {
            let e = Config::from_vars(vars(&[(var, value)])).unwrap_err();
            assert!(e.0.contains(var), "{var}={value}: {e}");
        }
    }

    #[test]
    fn worker_threads_default_to_the_cpus_available() {
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(Config::default().worker_thread_count(), cpus);
        let c = Config::from_vars(vars(&[("PODTERM_WORKER_THREADS", "3")])).unwrap();
        assert_eq!(c.worker_thread_count(), 3);
    }

    #[test]
    fn secret_is_never_printed() {
        let c = Config::from_vars(vars(&[("PODTERM_PROXY_SECRET", "hunter2")])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
