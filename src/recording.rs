//! Session recordings: one asciicast v2 file per session, written by a task as the session runs.
//!
//! File `PODTERM_RECORD_DIR/<session id>.cast` (created 0600, never overwritten): a header line
//! `{"version":2,"width":W,"height":H,"timestamp":T,"env":{"TERM":"xterm-256color"},"title":…}`
//! then one event per line: `[t, "o", data]` for output (stdout and stderr), `[t, "r", "WxH"]`
//! for resizes, and `[t, "i", data]` for input only with `PODTERM_RECORD_INPUT=true`; `t` is
//! seconds since the session started. The header waits for the first event so that a resize
//! sent right after connecting becomes the header's size.
//!
//! Event data is a JSON string, so bytes are decoded as UTF-8 per stream, carrying an incomplete
//! sequence at the end of a chunk over to that stream's next chunk; invalid bytes become U+FFFD.
//! The writer buffers and flushes whenever its queue runs empty, so a crash loses at most the
//! last buffer. The queue is bounded: a slow disk slows the session (backpressure), it never
//! grows memory. A write error ends the recording with a `recording.failed` audit line and the
//! session goes on — unless `PODTERM_RECORD_REQUIRED=true`, where the error ends the session.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use crate::audit::{AuditLog, Time};
use crate::events::SessionInfo;
use crate::protocol::{TERM, TerminalSize};

/// Events the recording queue holds before the session waits for the disk.
pub const RECORDING_QUEUE_EVENTS: usize = 64;
/// Size of a recording's write buffer, in bytes.
const RECORDING_BUFFER_BYTES: usize = 32 * 1024;
/// Size assumed when no resize arrives before the first output, in cells.
pub const DEFAULT_SIZE: TerminalSize = TerminalSize {
    width: 80,
    height: 24,
};

/// Recording settings (`PODTERM_RECORD_*`).
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    /// `PODTERM_RECORD_DIR`: where recordings go.
    pub dir: PathBuf,
    /// `PODTERM_RECORD_INPUT`: also record what the client typed (default false).
    pub input: bool,
    /// `PODTERM_RECORD_REQUIRED`: a recording failure ends the session (default false).
    pub required: bool,
    /// `PODTERM_RECORD_MAX_BYTES`: the most the file may hold; at the cap the recording ends
    /// with a note in the cast and a `recording.truncated` audit line (and, when required,
    /// the session ends).
    pub max_bytes: u64,
}

/// Room kept under the cap for the note that ends a truncated recording, in bytes.
const TRUNCATION_NOTE_BYTES: u64 = 128;

/// Why a recording could not go on, named for the step that failed; only returned when
/// recording is required.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot create the recording {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The first write error, as text: every tap of the session reports the same one.
    #[error("cannot write the recording: {0}")]
    Write(String),
}

/// A session's recording: the writer task and a [`RecordingTap`] for each side of the relay.
#[derive(Debug)]
pub struct Recording {
    tap: RecordingTap,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// What the relay holds to feed a recording; clones feed the same file.
#[derive(Debug, Clone)]
pub struct RecordingTap {
    tx: Option<mpsc::Sender<Event>>,
    started: Instant,
    input: bool,
    required: bool,
    error: Arc<OnceLock<String>>,
}

#[derive(Debug)]
struct Event {
    at: Duration,
    kind: EventKind,
}

#[derive(Debug)]
enum EventKind {
    Output { stream: u8, data: Bytes },
    Input(Bytes),
    Resize(TerminalSize),
}

impl Recording {
    /// Creates `<dir>/<session>.cast` and starts its writer. A creation failure is reported to
    /// the audit trail; it is an error only when recording is required (else `Ok(None)`).
    pub fn create(
        config: &RecordingConfig,
        exec: &Arc<SessionInfo>,
        audit: &AuditLog,
    ) -> Result<Option<Recording>, RecordingError> {
        let path = Recording::path_for(&config.dir, &exec.id);
        match create_file(&path) {
            Ok(file) => Ok(Some(Recording::to_writer(
                tokio::fs::File::from_std(file),
                config,
                exec,
                audit,
            ))),
            Err(e) => {
                let error = RecordingError::Create { path, source: e };
                audit.recording_failed(exec, &error.to_string());
                if config.required {
                    Err(error)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// The file a session's recording goes to.
    pub fn path_for(dir: &Path, session: &str) -> PathBuf {
        dir.join(format!("{session}.cast"))
    }

    /// A recording written to `out` (tests, or any sink).
    pub fn to_writer<W>(
        out: W,
        config: &RecordingConfig,
        exec: &Arc<SessionInfo>,
        audit: &AuditLog,
    ) -> Recording
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(RECORDING_QUEUE_EVENTS);
        let error = Arc::new(OnceLock::new());
        let header = Header {
            version: 2,
            width: DEFAULT_SIZE.width,
            height: DEFAULT_SIZE.height,
            timestamp: Time::from(exec.started).unix_seconds(),
            env: HeaderEnv { term: TERM },
            title: format!(
                "podterm {} {}/{}/{}",
                exec.user().unwrap_or_default(),
                exec.cluster,
                exec.namespace,
                exec.pod
            ),
        };
        let writer = Writer {
            out: BufWriter::with_capacity(RECORDING_BUFFER_BYTES, out),
            room: config.max_bytes.saturating_sub(TRUNCATION_NOTE_BYTES),
            truncated: false,
            header: Some(header),
            carries: Default::default(),
            line: Vec::new(),
            last: Duration::ZERO,
        };
        let task = tokio::spawn(writer.run(rx, error.clone(), audit.clone(), exec.clone()));
        Recording {
            tap: RecordingTap {
                tx: Some(tx),
                started: Instant::now(),
                input: config.input,
                required: config.required,
                error,
            },
            task: Some(task),
        }
    }

    /// Stops the writer and removes the file at `path`, which it has not written yet (the
    /// header waits for the first event): the session never started.
    pub fn discard(mut self, path: &Path) {
        self.tap.tx = None;
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an unused recording");
        }
    }

    /// A tap for one side of the relay.
    pub fn tap(&self) -> RecordingTap {
        self.tap.clone()
    }

    /// Output on `stream` (1 stdout, 2 stderr).
    #[cfg(test)]
    pub async fn output(&mut self, stream: u8, data: &[u8]) -> Result<(), RecordingError> {
        self.tap.output(stream, data).await
    }

    /// Input typed by the client; recorded only when configured.
    #[cfg(test)]
    pub async fn input(&mut self, data: &[u8]) -> Result<(), RecordingError> {
        self.tap.input(data).await
    }

    /// The terminal was resized.
    #[cfg(test)]
    pub async fn resize(&mut self, size: TerminalSize) -> Result<(), RecordingError> {
        self.tap.resize(size).await
    }

    /// Ends the recording once every tap is dropped: the writer flushes and stops. Returns the
    /// first write error when recording is required.
    pub async fn finish(mut self) -> Result<(), RecordingError> {
        self.tap.tx = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.tap.verdict()
    }
}

impl RecordingTap {
    /// Output on `stream` (1 stdout, 2 stderr).
    pub async fn output(&mut self, stream: u8, data: &[u8]) -> Result<(), RecordingError> {
        if data.is_empty() {
            return Ok(());
        }
        let data = Bytes::copy_from_slice(data);
        self.send(EventKind::Output { stream, data }).await
    }

    /// Input typed by the client; recorded only when configured.
    pub async fn input(&mut self, data: &[u8]) -> Result<(), RecordingError> {
        if !self.input || data.is_empty() {
            return Ok(());
        }
        self.send(EventKind::Input(Bytes::copy_from_slice(data)))
            .await
    }

    /// The terminal was resized.
    pub async fn resize(&mut self, size: TerminalSize) -> Result<(), RecordingError> {
        self.send(EventKind::Resize(size)).await
    }

    async fn send(&mut self, kind: EventKind) -> Result<(), RecordingError> {
        let Some(tx) = &self.tx else {
            return self.verdict();
        };
        let event = Event {
            at: self.started.elapsed(),
            kind,
        };
        if tx.send(event).await.is_err() {
            // The writer stopped on an error (already audited): stop recording.
            self.tx = None;
            return self.verdict();
        }
        Ok(())
    }

    fn verdict(&self) -> Result<(), RecordingError> {
        match self.error.get() {
            Some(e) if self.required => Err(RecordingError::Write(e.clone())),
            _ => Ok(()),
        }
    }
}

fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[derive(Serialize)]
struct Header {
    version: u8,
    width: u16,
    height: u16,
    timestamp: i64,
    env: HeaderEnv,
    title: String,
}

#[derive(Serialize)]
struct HeaderEnv {
    #[serde(rename = "TERM")]
    term: &'static str,
}

struct Writer<W> {
    out: BufWriter<W>,
    /// Bytes the file may still take before the cap (the note excluded).
    room: u64,
    /// The cap was reached: the recording ended with a note.
    truncated: bool,
    /// Written before the first event; `None` once written.
    header: Option<Header>,
    /// Incomplete UTF-8 carried per stream: stdout, stderr, input.
    carries: [Utf8Carry; 3],
    line: Vec<u8>,
    /// The latest event time written: taps on both sides of the relay race by microseconds,
    /// and asciicast times must not go backwards.
    last: Duration,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Event>,
        error: Arc<OnceLock<String>>,
        audit: AuditLog,
        exec: Arc<SessionInfo>,
    ) {
        let result = async {
            while let Some(first) = rx.recv().await {
                self.event(first).await?;
                while let Ok(more) = rx.try_recv() {
                    self.event(more).await?;
                }
                self.out.flush().await?;
            }
            self.finish().await
        }
        .await;
        if let Err(e) = result {
            let message = e.to_string();
            if self.truncated {
                audit.recording_truncated(&exec, &message);
                tracing::info!(session = %exec.id, "recording truncated at its cap");
                let _ = error.set(message);
                return;
            }
            audit.recording_failed(&exec, &format!("cannot write the recording: {message}"));
            tracing::warn!(session = %exec.id, error = %message, "recording stopped");
            let _ = error.set(message);
        }
    }

    async fn event(&mut self, event: Event) -> std::io::Result<()> {
        if let Some(mut header) = self.header.take() {
            if let EventKind::Resize(size) = event.kind {
                header.width = size.width;
                header.height = size.height;
                return self.write_json(&header).await;
            }
            self.write_json(&header).await?;
        }
        self.last = self.last.max(event.at);
        let t = (self.last.as_secs_f64() * 1e6).round() / 1e6;
        match event.kind {
            EventKind::Output { stream, data } => {
                let carry = if stream == crate::protocol::STDERR {
                    1
                } else {
                    0
                };
                let text = self.carries[carry].decode(&data);
                if !text.is_empty() {
                    self.write_json(&(t, "o", text)).await?;
                }
            }
            EventKind::Input(data) => {
                let text = self.carries[2].decode(&data);
                if !text.is_empty() {
                    self.write_json(&(t, "i", text)).await?;
                }
            }
            EventKind::Resize(size) => {
                let dims = format!("{}x{}", size.width, size.height);
                self.write_json(&(t, "r", dims)).await?;
            }
        }
        Ok(())
    }

    /// Writes what the carries still hold (as U+FFFD) and flushes.
    async fn finish(&mut self) -> std::io::Result<()> {
        let t = (self.last.as_secs_f64() * 1e6).round() / 1e6;
        for (i, kind) in [(0, "o"), (1, "o"), (2, "i")] {
            let rest = self.carries[i].finish();
            if !rest.is_empty() {
                if let Some(header) = self.header.take() {
                    self.write_json(&header).await?;
                }
                self.write_json(&(t, kind, rest)).await?;
            }
        }
        self.out.flush().await
    }

    async fn write_json<T: Serialize>(&mut self, value: &T) -> std::io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, value).expect("recording events serialize");
        self.line.push(b'\n');
        let len = self.line.len() as u64;
        if len > self.room {
            return self.truncate().await;
        }
        self.room -= len;
        self.out.write_all(&self.line).await
    }

    /// Ends the recording at its cap: a last output event says so (asciinema shows it), the
    /// file is flushed, and the error stops the writer.
    async fn truncate(&mut self) -> std::io::Result<()> {
        self.truncated = true;
        if let Some(header) = self.header.take() {
            self.line.clear();
            serde_json::to_writer(&mut self.line, &header).expect("headers serialize");
            self.line.push(b'\n');
            self.out.write_all(&self.line).await?;
        }
        let t = (self.last.as_secs_f64() * 1e6).round() / 1e6;
        self.line.clear();
        let note = "\r\n[podterm: recording truncated at PODTERM_RECORD_MAX_BYTES]\r\n";
        serde_json::to_writer(&mut self.line, &(t, "o", note)).expect("events serialize");
        self.line.push(b'\n');
        self.out.write_all(&self.line).await?;
        self.out.flush().await?;
        Err(std::io::Error::other(
            "the recording reached its size cap (PODTERM_RECORD_MAX_BYTES)",
        ))
    }
}

/// Decodes a byte stream chunk by chunk, holding back an incomplete UTF-8 sequence at the end
/// of a chunk until the next one completes it.
#[derive(Debug, Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// The text of `chunk` (after what was carried), up to any incomplete sequence at its end.
    pub fn decode(&mut self, chunk: &[u8]) -> String {
        let joined;
        let bytes: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(chunk);
            joined = std::mem::take(&mut self.pending);
            &joined
        };
        let mut text = String::with_capacity(bytes.len());
        let mut chunks = bytes.utf8_chunks().peekable();
        while let Some(part) = chunks.next() {
            text.push_str(part.valid());
            let bad = part.invalid();
            if bad.is_empty() {
                continue;
            }
            // An incomplete sequence at the very end (at most 3 bytes) waits for the next chunk.
            let incomplete = std::str::from_utf8(bad).is_err_and(|e| e.error_len().is_none());
            if chunks.peek().is_none() && incomplete {
                self.pending = bad.to_vec();
            } else {
                text.push(char::REPLACEMENT_CHARACTER);
            }
        }
        text
    }

    /// What is still held back, as replacement characters (the stream ended mid-sequence).
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

#[cfg(test)]
mod tests;
