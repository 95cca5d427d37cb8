//! `pods/exec`: the request's options, the WebSocket upgrade (v5/v4) and the session driver
//! that every container kind runs under (inputs in, output out, exit status, close handshake).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fastwebsockets::{Frame, Payload, WebSocketError, WebSocketRead, WebSocketWrite};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Mutex, watch};
use tracing::Instrument;

use super::Shared;
use super::api::{Body, Refusal, refuse};
use super::manifest::{Builtin, Container, Pod};
use super::messages::{Assembler, Input, MessageError};
use super::{builtin, process};
use crate::protocol::{self, Status};

/// Largest client frame accepted, in bytes (kubectl sends stdin in chunks of a few KiB).
pub const MAX_CLIENT_FRAME_BYTES: usize = 4 << 20;
/// How long to wait for the client's Close after sending ours.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The query of an exec request, checked against the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    /// Parses `container=&command=…&stdin=&stdout=&stderr=&tty=` as the API server does,
    /// refusing what it refuses (400) with its messages.
    pub fn from_query(query: &str, pod: &Pod) -> Result<ExecOptions, Refusal> {
        let mut options = ExecOptions {
            container: String::new(),
            command: Vec::new(),
            stdin: false,
            stdout: false,
            stderr: false,
            tty: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key)?;
            let value = percent_decode(value)?;
            let flag = |v: &str| {
                parse_go_bool(v).ok_or_else(|| {
                    refuse(
                        400,
                        format!("strconv.ParseBool: parsing {v:?}: invalid syntax"),
                    )
                })
            };
            match key.as_str() {
                "container" => options.container = value,
                "command" => options.command.push(value),
                "stdin" | "input" => options.stdin = flag(&value)?,
                "stdout" | "output" => options.stdout = flag(&value)?,
                "stderr" => options.stderr = flag(&value)?,
                "tty" => options.tty = flag(&value)?,
                _ => {}
            }
        }
        if options.container.is_empty() {
            match pod.containers.as_slice() {
                [only] => options.container.clone_from(&only.name),
                _ => {
                    return Err(refuse(
                        400,
                        format!(
                            "a container name must be specified for pod {}, choose one of: [{}]",
                            pod.name,
                            pod.container_names().join(" ")
                        ),
                    ));
                }
            }
        } else if pod.container(&options.container).is_none() {
            return Err(refuse(
                400,
                format!(
                    "container {} is not valid for pod {}",
                    options.container, pod.name
                ),
            ));
        }
        if !options.stdin && !options.stdout && !options.stderr {
            return Err(refuse(
                400,
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        if options.command.is_empty() {
            return Err(refuse(
                400,
                "you must specify at least one command for the container",
            ));
        }
        if options.tty && options.stderr {
            // With a terminal, stderr is the terminal (as the kubelet does).
            options.stderr = false;
        }
        Ok(options)
    }
}

/// Go's `strconv.ParseBool`, which the API server uses for query flags.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`%XX`, `+` for space).
fn percent_decode(text: &str) -> Result<String, Refusal> {
    let bad = || refuse(400, format!("invalid URL escape in {text:?}"));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

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

/// The read half of the client's socket with its message state.
pub(crate) struct Reader<R> {
    ws: WebSocketRead<R>,
    assembler: Assembler,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub(crate) fn new(ws: WebSocketRead<R>, v5: bool) -> Self {
        Reader {
            ws,
            assembler: Assembler::new(v5),
        }
    }

    /// The next input. Not cancel-safe: keep polling the same future (see [`drive`]).
    pub(crate) async fn next<W: AsyncWrite + Unpin>(
        &mut self,
        out: &Out<W>,
    ) -> Result<Input, SessionError> {
        let frame = self
            .ws
            .read_frame(&mut |frame| out.obligated(frame))
            .await
            .map_err(SessionError::ReadClient)?;
        let (opcode, fin) = (frame.opcode, frame.fin);
        let payload = match frame.payload {
            Payload::Bytes(bytes) => bytes,
            other => BytesMut::from(&other[..]),
        };
        Ok(self.assembler.push(opcode, fin, payload)?)
    }
}

/// The write half of the client's socket, shared by the output pumps and the reader's
/// obligatory replies (pong, close).
pub(crate) struct Out<W> {
    ws: Mutex<WebSocketWrite<W>>,
}

impl<W: AsyncWrite + Unpin> Out<W> {
    pub(crate) fn new(ws: WebSocketWrite<W>) -> Self {
        Out { ws: Mutex::new(ws) }
    }

    /// Sends one binary frame (`[channel][payload]`) and flushes it.
    pub(crate) async fn send(&self, frame: Payload<'_>) -> Result<(), SessionError> {
        let mut ws = self.ws.lock().await;
        ws.write_frame(Frame::binary(frame))
            .await
            .map_err(SessionError::WriteClient)?;
        ws.flush().await.map_err(SessionError::WriteClient)
    }

    async fn obligated(&self, frame: Frame<'_>) -> Result<(), WebSocketError> {
        let mut ws = self.ws.lock().await;
        if ws.is_closed() {
            return Ok(());
        }
        ws.write_frame(frame).await?;
        ws.flush().await
    }

    pub(crate) async fn close(&self, code: u16, reason: &str) -> Result<(), SessionError> {
        let mut ws = self.ws.lock().await;
        if ws.is_closed() {
            return Ok(());
        }
        ws.write_frame(Frame::close(code, reason.as_bytes()))
            .await
            .map_err(SessionError::WriteClient)?;
        ws.flush().await.map_err(SessionError::WriteClient)
    }
}

/// Where a session's client inputs go.
pub(crate) enum Sink {
    /// `echo`: stdin goes back as stdout (when `stdout`); stdin EOF drops `eof`.
    Echo {
        stdout: bool,
        eof: Option<tokio::sync::oneshot::Sender<()>>,
    },
    /// Inputs are read (for pings and Close) and dropped.
    Discard,
    /// Inputs are queued for the process's feeder; a full queue stops the reading.
    Queue(tokio::sync::mpsc::Sender<Input>),
}

impl Sink {
    async fn take<W: AsyncWrite + Unpin>(
        &mut self,
        input: Input,
        out: &Out<W>,
    ) -> Result<(), SessionError> {
        match (self, input) {
            (Sink::Echo { stdout: true, .. }, Input::Stdin(mut frame)) => {
                // The stdin frame's own buffer goes back out: no copy.
                frame[0] = protocol::STDOUT;
                out.send(Payload::Bytes(frame)).await
            }
            (Sink::Echo { eof, .. }, Input::StdinEof) => {
                eof.take();
                Ok(())
            }
            (Sink::Queue(queue), input) => {
                // The feeder drains the queue for the whole session; a closed queue means
                // the session is ending anyway.
                let _ = queue.send(input).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Runs a session: feeds client inputs to `sink` while `produce` runs the container's
/// output side to its exit status. Then sends the status on channel 3, closes with 1000 and
/// waits (bounded) for the client's Close. Ends early when the client leaves, on a protocol
/// error (1008) or on shutdown (1001).
pub(crate) async fn drive<R, W>(
    reader: &mut Reader<R>,
    out: &Out<W>,
    mut sink: Sink,
    produce: impl Future<Output = Result<Status, SessionError>>,
    mut shutdown: watch::Receiver<bool>,
) -> Outcome
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let reading = async {
        loop {
            match reader.next(out).await? {
                Input::Closed => return Ok::<(), SessionError>(()),
                input => sink.take(input, out).await?,
            }
        }
    };
    tokio::pin!(reading, produce);
    let outcome = tokio::select! {
        ended = &mut reading => return match ended {
            Ok(()) => Outcome::ClientLeft,
            Err(e) => broken(out, e).await,
        },
        status = &mut produce => match status {
            Ok(status) => {
                if let Err(e) = out.send(Payload::Owned(status.to_error_frame())).await {
                    return Outcome::Broken(e);
                }
                match status.exit_code() {
                    Some(code) => Outcome::Exited(code),
                    None => Outcome::Failed(Box::new(status)),
                }
            }
            Err(e) => return broken(out, e).await,
        },
        () = super::stopped(&mut shutdown) => {
            let _ = out.close(1001, "the dev cluster is shutting down").await;
            Outcome::ShuttingDown
        }
    };
    if matches!(outcome, Outcome::Exited(_) | Outcome::Failed(_)) {
        let _ = out.close(1000, "").await;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, &mut reading).await;
    outcome
}

async fn broken<W: AsyncWrite + Unpin>(out: &Out<W>, e: SessionError) -> Outcome {
    if let Some(code) = e.close_code() {
        let reason = e.to_string();
        // A close reason must fit a control frame (125 bytes, 2 of them for the code).
        let reason = truncate_utf8(&reason, 123);
        let _ = out.close(code, reason).await;
    }
    Outcome::Broken(e)
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devcluster::manifest::Manifest;

    fn pod(name: &str) -> Pod {
        let m = Manifest::builtin();
        m.pods.iter().find(|p| p.name == name).unwrap().clone()
    }

    #[test]
    fn options_parse_like_the_api_server() {
        let o = ExecOptions::from_query(
            "container=app&command=sh&command=-c&command=echo%20hi+there&stdin=true&stdout=1&stderr=True&tty=false",
            &pod("web-0"),
        )
        .unwrap();
        assert_eq!(o.container, "app");
        assert_eq!(o.command, ["sh", "-c", "echo hi there"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let o = ExecOptions::from_query("command=ls&stdout=true", &pod("tools")).unwrap();
        assert_eq!(o.container, "shell");
        let o =
            ExecOptions::from_query("command=ls&stdout=true&stderr=true&tty=true", &pod("tools"))
                .unwrap();
        assert!(o.tty && !o.stderr);
    }

    #[test]
    fn options_errors() {
        let err = |q: &str, p: &str| *ExecOptions::from_query(q, &pod(p)).unwrap_err().0;
        let e = err("command=ls&stdout=true", "web-0");
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "a container name must be specified for pod web-0, choose one of: [app sidecar]"
        );
        let e = err("container=x&command=ls&stdout=true", "web-0");
        assert_eq!(e.message, "container x is not valid for pod web-0");
        let e = err("command=ls", "tools");
        assert_eq!(
            e.message,
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        let e = err("stdout=true", "tools");
        assert_eq!(
            e.message,
            "you must specify at least one command for the container"
        );
        let e = err("command=ls&stdout=yes", "tools");
        assert_eq!(e.code, 400);
        let e = err("command=%zz&stdout=true", "tools");
        assert_eq!(e.code, 400);
        let e = err("command=%e2%28&stdout=true", "tools");
        assert_eq!(e.code, 400);
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        assert_eq!(truncate_utf8("abc", 2), "ab");
        assert_eq!(truncate_utf8("é", 1), "");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
