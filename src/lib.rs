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
//! - [`telemetry`]: logging and metrics.
//! - [`web`]: the web terminal page, embedded in the binary at build time.
//! - [`devcluster`]: the embedded Kubernetes API used by `podterm dev`, tests and load tests.

pub mod config;
pub mod dev;
pub mod devcluster;
pub mod drain;
pub mod identity;
pub mod protocol;
pub mod server;
pub mod telemetry;
pub mod web;
