//! Files in and out of a container, with no shell anywhere: podterm execs the container's own
//! `tar` with an argv it builds (`tar cf - -C DIR -- NAME` to read, `tar xmf - -C DIR` to
//! write), reads every entry of what comes back through [`TarReader`] before a byte of it
//! reaches the caller, and writes the archive an upload is unpacked from itself
//! ([`tar::file_header`]), under a temporary name that is renamed (`mv -f -- TMP PATH`) only
//! once the whole file arrived, so a cancelled upload leaves nothing half-written.
//!
//! `GET /api/files/{cluster}/{namespace}/{pod}?container=C&path=/abs/path`: a file comes back
//! as itself (`Content-Length` from its tar header, so the browser shows progress); a
//! directory as a checked tar archive (`NAME.tar`). A symbolic link is refused: following it
//! would let a path glob reach a file it does not name.
//! `PUT` with the file as the body (and a `Content-Length`) writes it at `path`.
//! Both are judged by the rule's `files.read`/`files.write` globs and leave one audit line
//! (`file.read`, `file.write`) with the path, bytes, sha256 and outcome.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use fastwebsockets::{FragmentCollector, Frame, OpCode, Payload};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use serde_json::json;

use super::{Place, ToolkitError, report};
use crate::events::Action;
use crate::gateway::Gateway;
use crate::policy::toolkit::{Direction, normalize_path, split_path};
use crate::protocol::exec_query::{ExecQuery, MAX_QUERY_PAIRS, Unclear, Values, exec_path};
use crate::protocol::tar::{self, Event, Kind, Sha256, TarReader};
use crate::protocol::{self, Status};

/// An exec podterm runs itself, as a WebSocket client.
type Exec = FragmentCollector<crate::cluster::UpstreamIo>;

/// Largest stderr kept from a tar that failed, in bytes.
const MAX_STDERR: usize = 4096;
/// A directory's archive is checked this far before the answer starts, so that a small
/// archive with a refused entry gets a clear refusal rather than a cut download.
const HOLD_BYTES: usize = 1 << 20;
/// Stdin frame of an upload, in bytes: kubectl's size; with 64 KiB frames each filled the
/// container's 64 KiB pipe whole and the upload went in fits and starts (loadtest/README.md).
const UPLOAD_FRAME: usize = 32 * 1024;
/// How long an upload waits for the container's tar to end once stdin is closed.
const UPLOAD_END_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// Body chunks read ahead of the upload's writes.
const UPLOAD_AHEAD: usize = 8;

/// A file request, parsed once: where, in which container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRequest {
    pub container: Option<String>,
    /// Absolute and normalized (crate::policy::toolkit::normalize_path).
    pub path: String,
    pub dir: String,
    pub name: String,
}

impl FileRequest {
    /// Reads `container` and `path` (each at most once) from the query.
    pub fn parse(query: &str) -> Result<FileRequest, ToolkitError> {
        let values = Values::parse_strict(query, &["path", "container"]).map_err(|e| {
            ToolkitError::BadRequest(match e {
                Unclear::Dropped(d) => format!("the query has a pair that cannot be read: {d:?}"),
                Unclear::TooManyPairs => {
                    format!("the query has more than {MAX_QUERY_PAIRS} parameters")
                }
                Unclear::Repeated(key) => format!("`{key}` is given more than once"),
            })
        })?;
        let one = |key: &str| {
            values
                .text(key)
                .map_err(|_| ToolkitError::BadRequest(format!("`{key}` is not UTF-8")))
        };
        let path = one("path")?.ok_or_else(|| {
            ToolkitError::BadRequest("name the file with `path` (an absolute path)".into())
        })?;
        let path = normalize_path(&path).map_err(|e| ToolkitError::BadRequest(e.to_string()))?;
        let (dir, name) = split_path(&path)
            .ok_or_else(|| ToolkitError::BadRequest("`/` itself cannot be copied".into()))?;
        Ok(FileRequest {
            container: one("container")?.filter(|c| !c.is_empty()),
            dir: dir.to_string(),
            name: name.to_string(),
            path,
        })
    }

    /// The exec path of `argv` in this request's container.
    fn exec(&self, place: &Place, argv: Vec<String>, stdin: bool) -> String {
        let query = ExecQuery {
            container: self.container.clone(),
            command: argv,
            stdin,
            stdout: true,
            stderr: true,
            tty: false,
        };
        exec_path(&place.namespace, &place.pod, &query)
    }
}

/// The argv that reads `name` in `dir` as a tar stream on stdout.
pub fn read_argv(dir: &str, name: &str) -> Vec<String> {
    ["tar", "cf", "-", "-C", dir, "--", name]
        .map(String::from)
        .to_vec()
}

/// The argv that unpacks a tar stream from stdin into `dir`.
pub fn write_argv(dir: &str) -> Vec<String> {
    ["tar", "xmf", "-", "-C", dir].map(String::from).to_vec()
}

/// The response body of a download: each poll reads the container's stream on (no task, no
/// channel: the connection's own task drives the copy, and a slow client stops podterm
/// reading the container). An `Err` aborts the response.
pub struct DownloadBody {
    held: std::collections::VecDeque<Bytes>,
    download: Option<Box<Download>>,
    next: Option<Pin<Box<dyn std::future::Future<Output = Pulled> + Send>>>,
}

type Pulled = (Box<Download>, Result<Option<Bytes>, ToolkitError>);

impl hyper::body::Body for DownloadBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if let Some(chunk) = self.held.pop_front() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))));
        }
        if self.next.is_none() {
            let Some(mut download) = self.download.take() else {
                return Poll::Ready(None);
            };
            self.next = Some(Box::pin(async move {
                let pulled = download.pull().await;
                (download, pulled)
            }));
        }
        let (download, pulled) = ready!(self.next.as_mut().expect("set above").as_mut().poll(cx));
        self.next = None;
        match pulled {
            Ok(Some(chunk)) => {
                self.download = Some(download);
                Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
            }
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(Box::new(std::io::Error::other(e.to_string()))))),
        }
    }
}

/// A download in progress: the container's tar stream, checked entry by entry, and its
/// audit line, written once when it ends (or, dropped before its end, as cancelled).
struct Download {
    gateway: Arc<Gateway>,
    action: Option<Action>,
    request: FileRequest,
    socket: Exec,
    reader: TarReader,
    hasher: Option<Sha256>,
    ended: Ended,
    /// The first entry, once read: a file (its data is what is sent) or a directory (the
    /// archive is).
    first: Option<tar::Entry>,
    sent: u64,
    queue: std::collections::VecDeque<Bytes>,
    done: bool,
}

impl Download {
    /// The next chunk for the caller (`None` at the end, the audit line written), or why the
    /// download failed (the audit line written too).
    async fn pull(&mut self) -> Result<Option<Bytes>, ToolkitError> {
        match self.fill().await {
            Ok(Some(chunk)) => {
                self.sent += chunk.len() as u64;
                if let Some(h) = &mut self.hasher {
                    h.update(&chunk);
                }
                // A file's last byte: the caller may stop asking (its length is known), so
                // the rest of the stream is read now, for its checks, its exit status and the
                // audit line, before the last chunk goes.
                let whole = self.first.as_ref().is_some_and(|f| f.kind == Kind::File)
                    && self.first.as_ref().map(|f| f.size) == Some(self.sent);
                if whole {
                    let rest = match self.fill().await {
                        Ok(Some(_)) => Err(ToolkitError::Failed(
                            "the stream has more data than the file's size".into(),
                        )),
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = rest {
                        self.finish(Some(&e));
                        return Err(e);
                    }
                    self.finish(None);
                }
                Ok(Some(chunk))
            }
            Ok(None) => {
                self.finish(None);
                Ok(None)
            }
            Err(e) => {
                self.finish(Some(&e));
                Err(e)
            }
        }
    }

    /// Reads frames until a chunk is ready to go, or the stream ended well.
    async fn fill(&mut self) -> Result<Option<Bytes>, ToolkitError> {
        loop {
            if let Some(chunk) = self.queue.pop_front() {
                return Ok(Some(chunk));
            }
            if self.done {
                return Ok(None);
            }
            let Some((channel, chunk)) = next_frame(&mut self.socket).await? else {
                self.done = true;
                if !self.ended.success() {
                    return Err(self.ended.error(&format!("reading {}", self.request.path)));
                }
                self.reader.finish()?;
                if self.first.is_none() {
                    return Err(ToolkitError::Failed("no file came back".into()));
                }
                continue;
            };
            if !self.ended.note(channel, &chunk) {
                continue;
            }
            let base = chunk.as_ptr() as usize;
            let (first, queue, path) = (&mut self.first, &mut self.queue, &self.request.path);
            self.reader.push(&chunk, &mut |event| {
                match event {
                    Event::Entry(entry) if first.as_ref().is_some_and(|f| f.kind == Kind::File) => {
                        return Err(tar::TarError::Refused(format!(
                            "{path} is a file, yet the stream has another entry: {:?}",
                            entry.name
                        )));
                    }
                    Event::Entry(entry) if first.is_none() => {
                        if entry.kind == Kind::Symlink {
                            return Err(tar::TarError::Refused(format!(
                                "{path} is a symbolic link to {:?}: download the file it points to",
                                entry.link.as_deref().unwrap_or_default()
                            )));
                        }
                        *first = Some(entry.clone());
                    }
                    Event::Data(data) if first.as_ref().is_some_and(|f| f.kind == Kind::File) => {
                        let offset = data.as_ptr() as usize - base;
                        queue.push_back(chunk.slice(offset..offset + data.len()));
                    }
                    _ => {}
                }
                Ok(())
            })?;
            if self.first.as_ref().is_some_and(|f| f.kind != Kind::File) {
                self.queue.push_back(chunk);
            }
        }
    }

    /// Writes the audit line once: ok, or the error (a refused entry is `denied`).
    fn finish(&mut self, error: Option<&ToolkitError>) {
        let Some(mut action) = self.action.take() else {
            return;
        };
        let sha256 = self.hasher.take().map(Sha256::finish).unwrap_or_default();
        action.detail = json!({
            "path": self.request.path,
            "direction": "read",
            "kind": match &self.first {
                Some(f) if f.kind == Kind::File => "file",
                Some(_) => "dir",
                None => "none",
            },
            "bytes": self.sent,
            "sha256": sha256,
            "entries": self.reader.entries,
        });
        if let Some(e) = error {
            action.outcome = if matches!(e, ToolkitError::Tar(_)) {
                "denied"
            } else {
                "failed"
            };
            action.reason = Some(e.to_string());
        }
        self.gateway.action(&action);
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(action) = &mut self.action {
            action.outcome = "cancelled";
            action.reason = Some("the caller stopped the download".into());
        }
        self.finish(None);
    }
}

/// How an exec podterm ran ended.
#[derive(Debug, Default)]
struct Ended {
    status: Option<Status>,
    stderr: Vec<u8>,
}

impl Ended {
    fn success(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.status == "Success")
    }

    /// What went wrong, in the container's words.
    fn error(&self, what: &str) -> ToolkitError {
        let stderr = String::from_utf8_lossy(&self.stderr).trim().to_string();
        let message = self
            .status
            .as_ref()
            .map(|s| s.message.clone())
            .unwrap_or_default();
        if message.contains("executable file not found")
            || message.contains("no such file or directory") && message.contains("\"tar\"")
            || stderr.contains("tar: not found")
            || stderr.contains("tar: command not found")
        {
            return ToolkitError::NoTar(message);
        }
        if stderr.contains("No such file or directory") || stderr.contains("Cannot stat") {
            return ToolkitError::NotFound(format!("{what}: {stderr}"));
        }
        if stderr.contains("Permission denied") {
            return ToolkitError::Conflict(format!("{what}: {stderr}"));
        }
        let detail = if stderr.is_empty() { message } else { stderr };
        ToolkitError::Failed(format!("{what} failed in the container: {detail}"))
    }
}

/// The next data frame of an exec as (channel, payload without the channel byte); `None` at
/// the close.
async fn next_frame(socket: &mut Exec) -> Result<Option<(u8, Bytes)>, ToolkitError> {
    loop {
        let frame = socket.read_frame().await.map_err(broke)?;
        match frame.opcode {
            OpCode::Close => return Ok(None),
            OpCode::Binary | OpCode::Text => {}
            _ => continue,
        }
        let payload = payload_bytes(frame.payload);
        if let Some(&channel) = payload.first() {
            return Ok(Some((channel, payload.slice(1..))));
        }
    }
}

impl Ended {
    /// Keeps stderr (bounded) and the status; true for stdout, which the caller handles.
    fn note(&mut self, channel: u8, data: &[u8]) -> bool {
        match channel {
            protocol::STDOUT => return true,
            protocol::STDERR => {
                let room = MAX_STDERR.saturating_sub(self.stderr.len());
                self.stderr.extend_from_slice(&data[..data.len().min(room)]);
            }
            protocol::ERROR => self.status = serde_json::from_slice(data).ok(),
            _ => {}
        }
        false
    }
}

/// Reads an exec to its end, keeping stderr and the status; stdout is dropped.
async fn drain(socket: &mut Exec, ended: &mut Ended) -> Result<(), ToolkitError> {
    while let Some((channel, data)) = next_frame(socket).await? {
        ended.note(channel, &data);
    }
    Ok(())
}

fn payload_bytes(payload: Payload<'_>) -> Bytes {
    match payload {
        Payload::Bytes(b) => b.freeze(),
        Payload::Owned(v) => Bytes::from(v),
        other => Bytes::copy_from_slice(&other),
    }
}

/// Opens `path` (an exec) as the caller, offering `protocols`.
async fn open(
    gateway: &Gateway,
    place: &Place,
    path: &str,
    protocols: &[&'static str],
) -> Result<Exec, ToolkitError> {
    let stream = place
        .cluster
        .exec(path, protocols, gateway.act_as(&place.identity))
        .await?;
    let mut socket = stream.socket();
    socket.set_auto_close(true);
    socket.set_auto_pong(true);
    Ok(FragmentCollector::new(socket))
}

fn judge(
    gateway: &Gateway,
    place: &Place,
    action: &mut Action,
    request: &FileRequest,
    direction: Direction,
) -> Result<(), ToolkitError> {
    action.container.clone_from(&request.container);
    action.detail = json!({"path": request.path, "direction": direction});
    let grant = place.grant(gateway)?;
    action.rule = grant.rule.map(str::to_string);
    grant.judge_file(direction, &request.path)?;
    Ok(())
}

/// `GET /api/files/…`: a file or directory from the container (see the module doc). The
/// answer starts once the first entry is read (a file) or HOLD_BYTES of the archive were
/// checked (a directory), so a small archive with a refused entry is a clear refusal.
pub async fn download(
    gateway: &Arc<Gateway>,
    req: &Request<Incoming>,
    place: Place,
) -> Result<Response<DownloadBody>, ToolkitError> {
    let mut action = place.action("file.read");
    let prepared = async {
        let request = FileRequest::parse(req.uri().query().unwrap_or(""))?;
        judge(gateway, &place, &mut action, &request, Direction::Read)?;
        let path = request.exec(&place, read_argv(&request.dir, &request.name), false);
        let socket = open(gateway, &place, &path, &protocol::SUBPROTOCOLS).await?;
        Ok((request, socket))
    }
    .await;
    let (request, socket) = match prepared {
        Ok(ok) => ok,
        Err(e) => return report(gateway, action, Err(e)),
    };
    let limit = gateway.config.file_max_bytes.saturating_add(64 * 1024);
    let mut download = Box::new(Download {
        gateway: gateway.clone(),
        action: Some(action),
        reader: TarReader::new(&request.name, limit),
        request: request.clone(),
        socket,
        hasher: Some(Sha256::start()),
        ended: Ended::default(),
        first: None,
        sent: 0,
        queue: std::collections::VecDeque::new(),
        done: false,
    });
    let mut held = std::collections::VecDeque::new();
    let mut held_bytes = 0;
    loop {
        let ready = match &download.first {
            Some(f) if f.kind == Kind::File => true,
            Some(_) => held_bytes >= HOLD_BYTES || download.done,
            None => false,
        };
        if ready {
            break;
        }
        match download.pull().await? {
            Some(chunk) => {
                held_bytes += chunk.len();
                held.push_back(chunk);
            }
            None => break,
        }
    }
    let first = download.first.clone().expect("read before the answer");
    // A file over the limit is refused from its header, before a byte goes.
    let max = gateway.config.file_max_bytes;
    if first.kind == Kind::File && first.size > max {
        let e = ToolkitError::TooLarge(max);
        download.finish(Some(&e));
        return Err(e);
    }
    let done = download.done && download.queue.is_empty();
    let mut res = Response::new(DownloadBody {
        held,
        download: (!done).then_some(download),
        next: None,
    });
    let headers = res.headers_mut();
    let (file_name, content_type) = match first.kind {
        Kind::File => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(first.size));
            (request.name.clone(), "application/octet-stream")
        }
        _ => (format!("{}.tar", request.name), "application/x-tar"),
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&content_disposition(&file_name))
            .unwrap_or(HeaderValue::from_static("attachment")),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266), the plain name made ASCII.
fn content_disposition(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

/// `PUT /api/files/…`: writes the body at `path` (see the module doc); answers 201 with the
/// path, size and sha256.
pub async fn upload(
    gateway: &Arc<Gateway>,
    req: Request<Incoming>,
    place: Place,
) -> Result<Response<http_body_util::Full<Bytes>>, ToolkitError> {
    let mut action = place.action("file.write");
    let request = FileRequest::parse(req.uri().query().unwrap_or(""));
    let result = match request {
        Ok(request) => upload_checked(gateway, req, &place, &mut action, &request).await,
        Err(e) => Err(e),
    };
    let done = report(gateway, action, result)?;
    let mut res = Response::new(http_body_util::Full::new(Bytes::from(
        serde_json::to_vec(&done).unwrap_or_default(),
    )));
    *res.status_mut() = hyper::StatusCode::CREATED;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

async fn upload_checked(
    gateway: &Gateway,
    req: Request<Incoming>,
    place: &Place,
    action: &mut Action,
    request: &FileRequest,
) -> Result<serde_json::Value, ToolkitError> {
    judge(gateway, place, action, request, Direction::Write)?;
    let size: u64 = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or(ToolkitError::LengthRequired)?;
    if size > gateway.config.file_max_bytes {
        return Err(ToolkitError::TooLarge(gateway.config.file_max_bytes));
    }
    let temp = format!(".podterm-upload-{}", action.action);
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if request.name.len() > 99 {
        return Err(ToolkitError::BadRequest(
            "the file name is longer than 99 bytes".into(),
        ));
    }
    let header = tar::file_header(&temp, size, 0o644, mtime).expect("a plain short name");
    let path = request.exec(place, write_argv(&request.dir), true);
    // Stdin must be closed for tar to finish: the close channel is v5's.
    let mut socket = open(gateway, place, &path, &[protocol::V5]).await?;
    let mut hasher = Sha256::start();
    let written = write_upload(&mut socket, req.into_body(), &header, size, &mut hasher).await;
    if written.is_err() {
        // The caller went away or sent too much: end the container's stdin so that its tar
        // stops (and is done writing) before the temporary file is removed.
        let _ = close_stdin(&mut socket).await;
    }
    let mut ended = Ended::default();
    let drained = match tokio::time::timeout(UPLOAD_END_WAIT, drain(&mut socket, &mut ended)).await
    {
        Ok(drained) => drained,
        Err(_) => Err(ToolkitError::Failed(format!(
            "the container's tar did not end within {UPLOAD_END_WAIT:?}"
        ))),
    };
    let temp_path = format!("{}/{temp}", request.dir.trim_end_matches('/'));
    let outcome = match (written, drained) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) if !ended.success() => {
            Err(ended.error(&format!("writing {}", request.path)))
        }
        (Ok(()), Ok(())) => Ok(()),
    };
    if let Err(e) = outcome {
        // Nothing half-written stays: the temporary file goes (best effort).
        let rm = ["rm", "-f", "--", &temp_path].map(String::from).to_vec();
        let _ = run(gateway, place, request, rm).await;
        if matches!(e, ToolkitError::Failed(ref m) if m.starts_with("the upload stopped")) {
            action.outcome = "cancelled";
        }
        return Err(e);
    }
    let mv = ["mv", "-f", "--", &temp_path, &request.path]
        .map(String::from)
        .to_vec();
    let moved = run(gateway, place, request, mv).await?;
    if !moved.success() {
        return Err(moved.error(&format!("moving the upload to {}", request.path)));
    }
    let sha256 = hasher.finish();
    let detail = json!({
        "path": request.path,
        "direction": "write",
        "bytes": size,
        "sha256": sha256,
    });
    action.detail = detail.clone();
    Ok(detail)
}

/// Writes the archive: the header, the body's bytes (exactly `size`), the trailer, then
/// stdin's end.
async fn write_upload(
    socket: &mut Exec,
    mut body: Incoming,
    header: &[u8; tar::BLOCK],
    size: u64,
    hasher: &mut Sha256,
) -> Result<(), ToolkitError> {
    // The body is read while the last chunk is being written (a few chunks apart, in this
    // task): in turn, each side waited for the other and the upload went in fits and starts.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(UPLOAD_AHEAD);
    let read = async move {
        let mut got: u64 = 0;
        while let Some(next) = body.frame().await {
            let next = next.map_err(|e| {
                ToolkitError::Failed(format!("the upload stopped before its end: {e}"))
            })?;
            let Ok(data) = next.into_data() else { continue };
            got += data.len() as u64;
            if got > size {
                return Err(ToolkitError::BadRequest(
                    "the body is longer than its Content-Length".into(),
                ));
            }
            hasher.update(&data);
            if tx.send(data).await.is_err() {
                break;
            }
        }
        if got != size {
            return Err(ToolkitError::Failed(format!(
                "the upload stopped before its end: {got} of {size} bytes came"
            )));
        }
        Ok(())
    };
    // Stdin goes in frames of UPLOAD_FRAME bytes whatever sizes the body comes in: each frame
    // costs a TLS record and a write on both sides, and the container's tar a pipe write.
    let mut frame = Vec::with_capacity(UPLOAD_FRAME + 1);
    let write = async {
        // Owned here: a write that fails drops it, and the reader stops at its next send.
        let mut rx = rx;
        frame.push(protocol::STDIN);
        frame.extend_from_slice(header);
        while let Some(data) = rx.recv().await {
            let mut rest = &data[..];
            while !rest.is_empty() {
                let room = UPLOAD_FRAME + 1 - frame.len();
                let (now, later) = rest.split_at(room.min(rest.len()));
                frame.extend_from_slice(now);
                rest = later;
                if frame.len() == UPLOAD_FRAME + 1 {
                    write_stdin(socket, &mut frame).await?;
                }
            }
        }
        Ok::<(), ToolkitError>(())
    };
    let (read, write) = tokio::join!(read, write);
    read?;
    write?;
    frame.extend_from_slice(&tar::trailer(size));
    write_stdin(socket, &mut frame).await?;
    close_stdin(socket).await
}

/// Writes `frame` (the stdin channel byte, then data) and leaves it holding the channel byte
/// alone, for the next one (the write masks it in place).
async fn write_stdin(socket: &mut Exec, frame: &mut Vec<u8>) -> Result<(), ToolkitError> {
    socket
        .write_frame(Frame::binary(Payload::BorrowedMut(frame)))
        .await
        .map_err(broke)?;
    frame.clear();
    frame.push(protocol::STDIN);
    Ok(())
}

/// Ends the container's stdin (v5's close channel).
async fn close_stdin(socket: &mut Exec) -> Result<(), ToolkitError> {
    socket
        .write_frame(Frame::binary(Payload::Borrowed(&[
            protocol::CLOSE,
            protocol::STDIN,
        ])))
        .await
        .map_err(broke)
}

fn broke(e: fastwebsockets::WebSocketError) -> ToolkitError {
    ToolkitError::Failed(format!("the exec stream broke: {e}"))
}

/// Runs `argv` (no stdin) in the request's container and waits for its end.
async fn run(
    gateway: &Gateway,
    place: &Place,
    request: &FileRequest,
    argv: Vec<String>,
) -> Result<Ended, ToolkitError> {
    let path = request.exec(place, argv, false);
    let mut socket = open(gateway, place, &path, &protocol::SUBPROTOCOLS).await?;
    let mut ended = Ended::default();
    drain(&mut socket, &mut ended).await?;
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_requests() {
        let r = FileRequest::parse("container=app&path=/tmp//x/./heap.hprof").unwrap();
        assert_eq!(
            (r.path.as_str(), r.dir.as_str(), r.name.as_str()),
            ("/tmp/x/heap.hprof", "/tmp/x", "heap.hprof")
        );
        assert_eq!(r.container.as_deref(), Some("app"));
        for bad in [
            "path=/tmp/../etc/shadow",
            "path=tmp/x",
            "path=/",
            "",
            "path=/a&path=/b",
            "path=/a;b",
        ] {
            assert!(FileRequest::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            read_argv("/tmp", "-rf"),
            ["tar", "cf", "-", "-C", "/tmp", "--", "-rf"]
        );
        assert_eq!(
            content_disposition("a \"b\".txt"),
            "attachment; filename=\"a__b_.txt\"; filename*=UTF-8''a%20%22b%22%2Etxt"
        );
    }
}
