//! The exec core every container kind runs under: the request's options ([`ExecOptions`]),
//! where it runs ([`Target`]), the socket's reader (frames → inputs) and shared writer, where
//! inputs go ([`Sink`]), [`drive`], and how a session ends ([`Outcome`]).

mod options;

pub use options::ExecOptions;

use std::time::Duration;

use bytes::BytesMut;
use fastwebsockets::{Frame, Payload, WebSocketError, WebSocketRead, WebSocketWrite};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Mutex, watch};

use super::manifest::Container;
use super::messages::{Assembler, Input, MessageError};
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

    /// Sends a Close frame, giving up after [`CLOSE_WAIT`]: a client that reads nothing (its
    /// socket full, or an output pump holding the writer while blocked on it) must not keep
    /// the session, and its process, alive.
    pub(crate) async fn close(&self, code: u16, reason: &str) -> Result<(), SessionError> {
        let send = async {
            let mut ws = self.ws.lock().await;
            if ws.is_closed() {
                return Ok(());
            }
            ws.write_frame(Frame::close(code, reason.as_bytes()))
                .await
                .map_err(SessionError::WriteClient)?;
            ws.flush().await.map_err(SessionError::WriteClient)
        };
        tokio::time::timeout(CLOSE_WAIT, send)
            .await
            .unwrap_or(Ok(()))
    }
}

/// Where a session's client inputs go.
pub(crate) enum Sink {
    /// `echo`: stdin goes back as stdout (when `stdout`; else it is dropped, as `flood` has
    /// it); stdin EOF drops `eof`.
    Echo {
        stdout: bool,
        eof: Option<tokio::sync::oneshot::Sender<()>>,
    },
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
        () = crate::devcluster::stopped(&mut shutdown) => {
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
        let reason = protocol::truncate_utf8(&reason, protocol::MAX_CLOSE_REASON_BYTES);
        let _ = out.close(code, reason).await;
    }
    Outcome::Broken(e)
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
    pub(crate) fn close_code(&self) -> Option<u16> {
        match self {
            SessionError::ReadClient(_) | SessionError::WriteClient(_) => None,
            SessionError::BadMessage(_) => Some(1008),
            SessionError::ProcessIo(_) => Some(1011),
        }
    }
}
