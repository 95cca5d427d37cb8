//! podterm: a web terminal into Kubernetes pods — a stateless WebSocket gateway that relays
//! each session between the browser's socket and the API server's `pods/exec` stream, as the
//! authenticated user.
//!
//! Imports point down only (ARCHITECTURE.md has the map):
//!
//! ```text
//! serve, dev ─▶ server ─▶ routes ─▶ session ─▶ gateway ─▶ relay ─▶ recording ─▶ audit ─▶ events
//!                                                       └▶ cluster, policy, drain, telemetry
//! events ─▶ policy ─▶ identity ─▶ fields, protocol, config, tcp   devcluster ─▶ protocol, config, drain
//! ```
//!
//! - The browser side: [`server`] (accept loop, worker threads), `routes` (paths and the one
//!   refusal classification), [`identity`] (trusted headers, `Origin`), `web` (the page).
//! - One session: `session` (handshake, admission, recording, connect, run), [`gateway`]
//!   (the shared state), [`events`] (what a session reports, to whom).
//! - The relay: [`relay`], the pump between the two sockets; knows nothing of hyper or kube.
//! - The cluster side: [`cluster`] (kubeconfig, impersonated reads, the exec upgrade, TLS).
//! - Rules and records: [`policy`], [`audit`], [`recording`], [`telemetry`], `drain`.
//! - Pure: [`protocol`] (channels, `Status`, the exec query), [`config`], [`fields`] (a
//!   request's header fields by name, from hyper's map or the head's lines); [`tcp`], the TCP
//!   streams of both sides.
//! - [`devcluster`]: the embedded Kubernetes API used by `podterm dev`, tests and load tests.

pub mod audit;
pub mod cluster;
pub mod config;
pub mod dev;
pub mod devcluster;
mod drain;
pub mod events;
pub mod fields;
pub mod fleet;
pub mod gateway;
pub mod identity;
pub mod policy;
pub mod protocol;
pub mod recording;
pub mod relay;
mod routes;
pub mod serve;
pub mod server;
mod session;
pub mod tcp;
pub mod telemetry;
#[cfg(any(test, feature = "test-util"))]
mod testing;
pub mod toolkit;
mod web;
