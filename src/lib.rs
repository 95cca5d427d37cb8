//! podterm: a web terminal into Kubernetes pods — a stateless WebSocket gateway that relays
//! each session between the browser's socket and the API server's `pods/exec` stream, as the
//! authenticated user.
//!
//! ```text
//! browser / kubectl ──WS──▶ server ─ routes ─ identity ─ policy ──▶ relay ◀── cluster ──WS──▶ kube-apiserver
//!                                                          │
//!                                                        audit
//! ```
//!
//! - [`protocol`]: the exec channel protocol (pure: frames, resize, `Status`).
//! - [`config`]: configuration from `PODTERM_*` variables; bad values exit 64.
//! - [`server`]: the accept loop, the worker threads that serve connections (one event loop
//!   each, [`server::workers`]) and the shared state ([`server::Gateway`]).
//! - [`routes`]: path → handler; the one place errors become `Status` responses.
//! - [`identity`]: trusted headers, proxy secret and `Origin` → [`identity::Identity`].
//! - [`session`]: one exec session: policy hook, cluster connect, upgrade, relay, observers.
//! - [`cluster`]: the kube side: clusters from kubeconfig, impersonated reads, exec upgrade.
//! - [`relay`]: the pump between the two sockets; knows nothing of hyper or kube.
//! - [`drain`]: graceful drain on SIGTERM.
//! - [`telemetry`]: logging and metrics.
//! - [`web`]: the web terminal page, embedded in the binary at build time.
//! - [`dev`]: `podterm dev`, the dev cluster plus the gateway on loopback.
//! - [`policy`]: what an identity may run where (policy file, restricted mode, deny_root, limits).
//! - [`audit`]: the audit trail (JSON lines) and session recordings (asciicast v2).
//! - [`devcluster`]: the embedded Kubernetes API used by `podterm dev`, tests and load tests.

pub mod audit;
pub mod cluster;
pub mod config;
pub mod dev;
pub mod devcluster;
pub mod drain;
pub mod identity;
pub mod policy;
pub mod protocol;
pub mod relay;
pub mod routes;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod web;
