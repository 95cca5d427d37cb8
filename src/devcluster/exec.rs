//! `pods/exec`: the WebSocket upgrade (v5/v4) and the session it starts, run by a builtin
//! or a process under the exec core ([`super::stream`]).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use hyper::{Request, Response};
use tracing::Instrument;

use super::Shared;
use super::manifest::{Builtin, Container, Pod};
use super::refusal::{Body, Refusal, refuse};
use super::stream::{ExecOptions, MAX_CLIENT_FRAME_BYTES, Out, Outcome, Reader, Target};
use super::{builtin, process};
use crate::protocol;

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
    Ok(Response::from_parts(
        parts,
        super::refusal::full(bytes::Bytes::new()),
    ))
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
        Some(Builtin::HostileTar) => {
            builtin::hostile_tar(&mut reader, &out, &options, shutdown).await
        }
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
