//! `pods/exec`: the WebSocket upgrade (v5/v4) and the session it starts; the request's options
//! are in [`options`], the socket and the session driver in [`session`].

mod options;
mod session;

pub use options::ExecOptions;
pub(crate) use session::{Out, Reader, Sink, drive};

use std::sync::Arc;
use std::time::Duration;

use fastwebsockets::WebSocketError;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use hyper::{Request, Response};
use tracing::Instrument;

use super::Shared;
use super::api::{Body, Refusal, refuse};
use super::manifest::{Builtin, Container, Pod};
use super::messages::MessageError;
use super::{builtin, process};
use crate::protocol::{self, Status};

/// Largest client frame accepted, in bytes (kubectl sends stdin in chunks of a few KiB).
pub const MAX_CLIENT_FRAME_BYTES: usize = 4 << 20;
/// How long to wait for the client's Close after sending ours.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Where a session runs: for logs and for the process's working directory.
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    pub container: Container,
}

/// Answers the upgrade (101 with the chosen subprotocol) and starts the session in the
/// background. Anything else than a WebSocket upgrade offering v5 or v4 is a 400.
pub(crate) fn upgrade(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    pod: &Pod,
    container: Container,
    options: ExecOptions,
) -> Result<Response<Body>, Refusal> {
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return Err(refuse(
            400,
            "Upgrade request required: the dev cluster supports exec over WebSocket only",
        ));
    }
    let offered = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let Some(subprotocol) = protocol::negotiate(offered) else {
        return Err(refuse(
            400,
            format!(
                "unable to upgrade: none of the offered subprotocols is supported; use {}",
                protocol::SUBPROTOCOLS.join(" or ")
            ),
        ));
    };
    let (response, upgraded) = fastwebsockets::upgrade::upgrade(&mut req)
        .map_err(|e| refuse(400, format!("bad WebSocket upgrade: {e}")))?;
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(subprotocol),
    );
    let target = Target {
        namespace: pod.namespace.clone(),
        pod: pod.name.clone(),
        container,
    };
    let span = tracing::info_span!(
        "exec",
        namespace = %target.namespace,
        pod = %target.pod,
        container = %target.container.name,
        tty = options.tty,
        protocol = subprotocol,
    );
    tokio::spawn(
        async move {
            match upgraded.await {
                Ok(ws) => run(ws, subprotocol == protocol::V5, shared, target, options).await,
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        }
        .instrument(span),
    );
    Ok(Response::from_parts(parts, Full::default()))
}

type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

async fn run(
    mut ws: fastwebsockets::WebSocket<Upgraded>,
    v5: bool,
    shared: Arc<Shared>,
    target: Target,
    options: ExecOptions,
) {
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    ws.set_max_message_size(MAX_CLIENT_FRAME_BYTES);
    let (read, write) = ws.split(tokio::io::split);
    let mut reader = Reader::new(read, v5);
    let out = Out::new(write);
    let shutdown = shared.shutdown.clone();
    let outcome = match target.container.builtin {
        Some(Builtin::Echo) => builtin::echo(&mut reader, &out, &options, shutdown).await,
        Some(Builtin::Flood) => builtin::flood(&mut reader, &out, &options, shutdown).await,
        None => {
            process::run(
                &mut reader,
                &out,
                &options,
                &target,
                &shared.workdir,
                shutdown,
            )
            .await
        }
    };
    match &outcome {
        Outcome::Exited(code) => tracing::info!(exit_code = code, "exec ended"),
        Outcome::Failed(status) => tracing::info!(error = %status.message, "exec failed"),
        Outcome::ClientLeft => tracing::info!("exec ended: the client left"),
        Outcome::ShuttingDown => tracing::info!("exec ended: shutting down"),
        Outcome::Broken(e) => tracing::info!(error = %e, "exec ended"),
    }
    drop(shared);
}

/// How a session ended.
#[derive(Debug)]
pub enum Outcome {
    /// The command exited with this code; the status was sent and the socket closed (1000).
    Exited(i32),
    /// The container could not run the command; the failure was sent on channel 3.
    Failed(Box<Status>),
    /// The client closed or dropped the connection first.
    ClientLeft,
    /// The dev cluster is shutting down (1001).
    ShuttingDown,
    /// A protocol or I/O error ended it (1008 or 1011).
    Broken(SessionError),
}

/// Why a session broke.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("reading from the client: {0}")]
    ReadClient(WebSocketError),
    #[error("writing to the client: {0}")]
    WriteClient(WebSocketError),
    #[error("bad message from the client: {0}")]
    BadMessage(#[from] MessageError),
    #[error("process I/O: {0}")]
    ProcessIo(std::io::Error),
}

impl SessionError {
    /// The close frame this error earns, if the socket can still take one.
    fn close_code(&self) -> Option<u16> {
        match self {
            SessionError::ReadClient(_) | SessionError::WriteClient(_) => None,
            SessionError::BadMessage(_) => Some(1008),
            SessionError::ProcessIo(_) => Some(1011),
        }
    }
}
