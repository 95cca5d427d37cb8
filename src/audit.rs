//! The audit trail: one JSON line per session event, written off the hot path by one thread.
//!
//! Every exec that reaches podterm leaves exactly two lines: `session.start` then
//! `session.end` when it ran, `session.denied` then `session.end` when it was refused (the end
//! line of a refused exec has `close_reason: "denied"`, zero bytes and no exit code), so a
//! reader can always pair lines by `session`. A recording that fails adds `recording.failed`.
//! Between the two, a page session that outlives its connection adds `session.detach` (the
//! connection dropped; `reason` says how) and `session.resume` (`reason`: the offset it
//! resumed from and the replica it came through); `session.watch` / `session.unwatch` name the
//! watcher in `reason`, `session.kill` who ended it. The end line still comes once, at the end.
//! (A plain, non-upgrade exec request runs nothing — the cluster answers it 400 — and leaves
//! no line: it is how kubectl reads a refusal after falling back from WebSocket to SPDY, and
//! auditing it would count one refused kubectl exec twice.)
//! Every line carries every field (`null` when not known):
//!
//! | field | meaning |
//! |---|---|
//! | `event` | `session.start`, `session.denied`, `session.end`, `session.detach`, `session.resume`, `session.watch`, `session.unwatch`, `session.kill`, `recording.failed`, `recording.truncated` |
//! | `time` | when the line was written, RFC 3339 UTC |
//! | `session` | the session id (also the recording's file name) |
//! | `user`, `groups` | the identity the exec runs as (impersonated) |
//! | `cluster`, `namespace`, `pod`, `container` | where |
//! | `argv`, `tty` | the command run (the default shell's argv when the client named none; `[]` for attach) |
//! | `subresource` | `exec` or `attach` |
//! | `mode`, `rule` | the policy decision (`null` without a matching rule or policy file) |
//! | `peer` | the client's socket address |
//! | `start`, `end` | when the exec arrived and ended, RFC 3339 UTC (`end` only on `session.end`) |
//! | `bytes_in`, `bytes_out` | frame payload bytes client → container and container → client |
//! | `exit_code`, `close_reason` | how it ended (`session.end`) |
//! | `reason` | why it was refused (`session.denied`), or the error (`recording.failed`) |
//! | `recording` | the recording file, if any |
//!
//! Actions beside a session have lines of their own (`logs.read`, `file.read`, `file.write`,
//! `debug.create`; [`crate::events::Action`]): `time`, `event`, `action` (its id), `user`,
//! `groups`, `cluster`, `namespace`, `pod`, `container`, `peer`, `start`, `rule`, `outcome`
//! (`ok`, `denied`, `failed`, `cancelled`), `reason` and `detail` (the log options; a file's
//! `path`, `bytes`, `sha256`, `entries`; a debug container's `name`, `image`, `target`).
//!
//! Nothing else goes in: no header, no token, no secret. The writer thread is fed by a bounded
//! queue so no session ever waits on the disk; when the queue is full the line goes to the
//! error log instead, is counted ([`AuditLog::dropped`]), and the trail itself gets an
//! `audit.dropped` line with the count as soon as it can be written — nothing is lost silently.

mod json;
mod observer;

use json::key;

pub use observer::AuditObserver;

use prometheus_client::metrics::counter::Counter;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use std::io::{BufWriter, Write};
use std::sync::mpsc;

use serde::Serialize;

use crate::config::ConfigError;
use crate::events::{Action, SessionEvent, SessionInfo};
use crate::policy::Mode;
use crate::protocol::exec_query::Subresource;

/// Lines the audit queue holds before new ones are diverted to the error log.
pub const AUDIT_QUEUE_LINES: usize = 4096;
/// Size of the audit writer's buffer, in bytes; it is flushed whenever the queue runs empty.
const AUDIT_BUFFER_BYTES: usize = 64 * 1024;
/// After writing a batch the writer waits this long before it takes the next, so that lines
/// gather into one write and their senders wake nobody on another thread (a sender wakes the
/// writer only when it found the queue empty and went to sleep on it).
pub const AUDIT_LINGER: Duration = Duration::from_millis(10);

/// A point in time, written as RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(jiff::Timestamp);

impl Time {
    pub fn now() -> Time {
        Time(jiff::Timestamp::now())
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.as_second()
    }
}

/// Seconds from the Unix epoch to 10000-01-01T00:00:00Z: the end of RFC 3339's four-digit years.
const YEAR_10000: i64 = 253_402_300_800;

impl Time {
    /// The text `YYYY-MM-DDTHH:MM:SS.mmmZ`, written by hand for the times an audit line carries
    /// (1970 to 9999): two per session, where jiff's general printer through `fmt` was 1.4 %
    /// of the gateway's user time under churn. `None` before 1970 or from 10000 on.
    fn rfc3339(self) -> Option<[u8; 24]> {
        let secs = self.0.as_second();
        // Truncated, as jiff's printer truncates to its precision; below 0 just before 1970.
        let millis = self.0.subsec_millisecond();
        if !(0..YEAR_10000).contains(&secs) || millis < 0 {
            return None;
        }
        let mut text = LAST_SECOND.with(|last| {
            let (second, text) = last.get();
            if second == secs {
                return text;
            }
            let text = second_text(secs);
            last.set((secs, text));
            text
        });
        put_digits(&mut text[20..23], millis as u32);
        Some(text)
    }
}

thread_local! {
    /// The second this thread's last audit time fell in, and its text: the lines of one
    /// second (every line, under churn) write its date and time of day again rather than
    /// work them out from the seconds.
    static LAST_SECOND: std::cell::Cell<(i64, [u8; 24])> =
        const { std::cell::Cell::new((-1, [0; 24])) };
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` of `secs` from the Unix epoch (0 to [`YEAR_10000`]).
fn second_text(secs: i64) -> [u8; 24] {
    let (days, of_day) = (secs / 86_400, (secs % 86_400) as u32);
    let (year, month, day) = crate::protocol::time::civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], of_day / 3600);
    put_digits(&mut text[14..16], of_day / 60 % 60);
    put_digits(&mut text[17..19], of_day % 60);
    text
}

/// The last `digits.len()` decimal digits of `value`, zero-padded, into `digits`.
fn put_digits(digits: &mut [u8], mut value: u32) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl Time {
    /// As its `Serialize` writes it, into a hand-written line; `text` is its
    /// [`Time::rfc3339`], made once for a line that writes the same time twice.
    fn write(self, o: &mut json::Object, key: json::Key, text: Option<[u8; 24]>) {
        match text {
            // Digits and punctuation: nothing to escape.
            Some(text) => o.ascii(key, &text),
            None => o.display(key, self),
        }
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rfc3339() {
            Some(text) => f.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?),
            // jiff's own RFC 3339 printer, fixed at 3 digits: the same text as strftime's
            // "%Y-%m-%dT%H:%M:%S%.3fZ".
            None => write!(f, "{:.3}", self.0),
        }
    }
}

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.rfc3339() {
            Some(text) => {
                use serde::ser::Error as _;
                s.serialize_str(std::str::from_utf8(&text).map_err(S::Error::custom)?)
            }
            None => s.collect_str(self),
        }
    }
}

impl From<std::time::SystemTime> for Time {
    fn from(t: std::time::SystemTime) -> Time {
        jiff::Timestamp::try_from(t).map_or_else(|_| Time::now(), Time)
    }
}

/// The fields every line of a session shares, borrowed from its [`SessionInfo`].
#[cfg_attr(test, derive(Serialize))]
struct Fields<'a> {
    session: &'a str,
    /// `None` when the exec was refused before the caller was known.
    user: Option<&'a str>,
    groups: Option<&'a [String]>,
    cluster: &'a str,
    namespace: &'a str,
    pod: &'a str,
    container: Option<&'a str>,
    /// `None` when refused before the request was parsed.
    argv: Option<&'a [String]>,
    tty: Option<bool>,
    /// `exec` or `attach`; `None` when refused before the request was parsed.
    subresource: Option<Subresource>,
    mode: Option<Mode>,
    rule: Option<&'a str>,
    peer: SocketAddr,
    start: Time,
    recording: Option<&'a Path>,
}

impl<'a> Fields<'a> {
    fn of(s: &'a SessionInfo) -> Fields<'a> {
        Fields {
            session: &s.id,
            user: s.user(),
            groups: s.identity.as_ref().map(|i| i.groups.as_slice()),
            cluster: &s.cluster,
            namespace: &s.namespace,
            pod: &s.pod,
            container: s.container(),
            argv: s.argv(),
            tty: s.tty(),
            subresource: s.target.as_ref().map(|t| t.subresource),
            mode: s.mode,
            rule: s.rule.as_deref(),
            peer: s.peer,
            start: Time::from(s.started),
            recording: s.recording.as_deref(),
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionEnd {
    /// Frame payload bytes client → container (stdin, resizes).
    pub bytes_in: u64,
    /// Frame payload bytes container → client (stdout, stderr, the exit status).
    pub bytes_out: u64,
    /// From the `Status` on channel 3, when the command's exit was reported.
    pub exit_code: Option<i32>,
    /// Short reason: `exit`, `client closed`, `upstream closed`, `denied`, `idle timeout`, …
    pub close_reason: Cow<'static, str>,
}

/// The `close_reason` of the end line of a refused exec.
pub const CLOSE_REASON_DENIED: &str = "denied";

/// A session's line. Written by [`Line::text`]; serde's serialization is the reference it
/// is tested against.
#[cfg_attr(test, derive(Serialize))]
struct Line<'a> {
    event: &'static str,
    time: Time,
    #[cfg_attr(test, serde(flatten))]
    exec: Fields<'a>,
    end: Option<Time>,
    bytes_in: u64,
    bytes_out: u64,
    exit_code: Option<i32>,
    close_reason: Option<&'a str>,
    reason: Option<&'a str>,
}

impl<'a> Line<'a> {
    /// The line as JSON with its newline: the bytes `serde_json::to_writer` writes for it
    /// (its field order, `null` for what is not known), written by hand (`json.rs`).
    fn text(&self) -> Vec<u8> {
        let f = &self.exec;
        let mut o = json::Object::with_capacity(LINE_BYTES);
        o.str(key!("event"), self.event);
        let time = self.time.rfc3339();
        self.time.write(&mut o, key!("time"), time);
        o.str(key!("session"), f.session);
        o.opt_str(key!("user"), f.user);
        o.strs(key!("groups"), f.groups);
        o.str(key!("cluster"), f.cluster);
        o.str(key!("namespace"), f.namespace);
        o.str(key!("pod"), f.pod);
        o.opt_str(key!("container"), f.container);
        o.strs(key!("argv"), f.argv);
        o.opt_bool(key!("tty"), f.tty);
        o.opt_str(key!("subresource"), f.subresource.map(Subresource::as_str));
        o.opt_str(key!("mode"), f.mode.map(Mode::as_str));
        o.opt_str(key!("rule"), f.rule);
        o.addr(key!("peer"), f.peer);
        f.start.write(&mut o, key!("start"), f.start.rfc3339());
        match f.recording {
            // serde refuses a path that is not UTF-8 (and the line with it); its text with
            // U+FFFD for what is not keeps the line.
            Some(path) => o.str(key!("recording"), &path.to_string_lossy()),
            None => o.null(key!("recording")),
        }
        match self.end {
            // The end line's `end` is its `time`.
            Some(end) if end == self.time => end.write(&mut o, key!("end"), time),
            Some(end) => end.write(&mut o, key!("end"), end.rfc3339()),
            None => o.null(key!("end")),
        }
        o.u64(key!("bytes_in"), self.bytes_in);
        o.u64(key!("bytes_out"), self.bytes_out);
        o.opt_i32(key!("exit_code"), self.exit_code);
        o.opt_str(key!("close_reason"), self.close_reason);
        o.opt_str(key!("reason"), self.reason);
        o.line()
    }

    fn new(event: &'static str, exec: &'a SessionInfo) -> Line<'a> {
        Line {
            event,
            time: Time::now(),
            exec: Fields::of(exec),
            end: None,
            bytes_in: 0,
            bytes_out: 0,
            exit_code: None,
            close_reason: None,
            reason: None,
        }
    }
}

/// Where audit lines go, opened (and checked) at start-up.
pub enum AuditSink {
    Stdout(std::fs::File),
    File { path: PathBuf, file: std::fs::File },
}

impl AuditSink {
    /// `PODTERM_AUDIT_FILE` when set (opened for append, created 0600), else stdout.
    pub fn open(path: Option<&Path>) -> Result<AuditSink, ConfigError> {
        let Some(path) = path else {
            use std::os::fd::AsFd;
            let stdout = std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| ConfigError(format!("cannot use stdout for audit lines: {e}")))?;
            return Ok(AuditSink::Stdout(stdout.into()));
        };
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                ConfigError(format!(
                    "PODTERM_AUDIT_FILE {}: cannot open it for appending: {e}",
                    path.display()
                ))
            })?;
        Ok(AuditSink::File {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Starts the writer thread. It ends, flushed, once every [`AuditLog`] clone is dropped;
    /// await the [`AuditWriter`] at shutdown.
    pub fn spawn(self) -> (AuditLog, AuditWriter) {
        match self {
            AuditSink::Stdout(stdout) => AuditLog::to_writer(stdout, AUDIT_QUEUE_LINES),
            AuditSink::File { path, file } => {
                tracing::info!(path = %path.display(), "audit lines go to a file");
                AuditLog::to_writer(file, AUDIT_QUEUE_LINES)
            }
        }
    }
}

/// The audit writer thread; awaiting it resolves once the thread has written and flushed
/// everything and ended (`Err` only if it panicked).
#[derive(Debug)]
pub struct AuditWriter(tokio::sync::oneshot::Receiver<()>);

/// The writer thread panicked.
#[derive(Debug)]
pub struct WriterPanicked;

impl std::future::Future for AuditWriter {
    type Output = Result<(), WriterPanicked>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|ended| ended.map_err(|_| WriterPanicked))
    }
}

/// The sending side of the audit trail; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::SyncSender<Msg>,
    /// Lines that could not be written to the trail (also `podterm_audit_dropped_total`).
    dropped: Counter,
}

impl AuditLog {
    /// An audit log writing to `out` on a thread of its own, through a queue of `capacity`
    /// lines.
    ///
    /// A thread rather than a task: the file's writes block, and a task handed each batch to
    /// tokio's blocking pool and took the answer back on the control thread's event loop (two
    /// cross-thread wake-ups and some eight system calls a batch; loadtest/README.md).
    pub fn to_writer<W>(out: W, capacity: usize) -> (AuditLog, AuditWriter)
    where
        W: Write + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let dropped = Counter::default();
        let (ended, writer) = tokio::sync::oneshot::channel();
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("podterm-audit".into())
            .spawn(move || {
                write_lines(&rx, out, &counter);
                let _ = ended.send(());
            })
            .expect("cannot start the audit writer thread");
        (AuditLog { tx, dropped }, AuditWriter(writer))
    }

    /// Lines that could not be written to the trail (sent to the error log instead).
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// The counter behind [`AuditLog::dropped`], for metrics; it does not keep the writer open.
    pub fn dropped_counter(&self) -> Counter {
        self.dropped.clone()
    }

    /// `session.start`: the exec was allowed and is being connected.
    pub fn session_start(&self, exec: &SessionInfo) {
        self.send(&Line::new("session.start", exec));
    }

    /// `session.denied`: the exec was refused (policy, limits, …) with `reason`.
    pub fn session_denied(&self, exec: &SessionInfo, reason: &str) {
        self.send(&Line {
            reason: Some(reason),
            ..Line::new("session.denied", exec)
        });
    }

    /// `session.end`: the exec is over, whatever happened.
    pub fn session_end(&self, exec: &SessionInfo, end: &SessionEnd) {
        let line = Line::new("session.end", exec);
        self.send(&Line {
            end: Some(line.time),
            bytes_in: end.bytes_in,
            bytes_out: end.bytes_out,
            exit_code: end.exit_code,
            close_reason: Some(&end.close_reason),
            ..line
        });
    }

    /// Both lines of a refused exec, in order: `session.denied` then `session.end`.
    pub fn exec_denied(&self, exec: &SessionInfo, reason: &str) {
        self.session_denied(exec, reason);
        self.session_end(
            exec,
            &SessionEnd {
                close_reason: CLOSE_REASON_DENIED.into(),
                ..SessionEnd::default()
            },
        );
    }

    /// A line about a live session: `session.detach`, `session.resume`, `session.watch`,
    /// `session.unwatch` or `session.kill`, with what happened in `reason`.
    pub fn session_event(&self, exec: &SessionInfo, event: SessionEvent, reason: &str) {
        self.send(&Line {
            reason: Some(reason),
            ..Line::new(event.name(), exec)
        });
    }

    /// One line for an action beside a session (`logs.read`, `file.read`, `file.write`,
    /// `debug.create`): the [`Action`] as it is, with the time the line was written.
    pub fn action(&self, action: &Action) {
        #[derive(Serialize)]
        struct ActionLine<'a> {
            time: Time,
            start: Time,
            #[serde(flatten)]
            action: &'a Action,
        }
        self.send_text(line_text(&ActionLine {
            time: Time::now(),
            start: Time::from(action.start),
            action,
        }));
    }

    /// `recording.failed`: the session's recording stopped because of `error`.
    pub fn recording_failed(&self, exec: &SessionInfo, error: &str) {
        self.send(&Line {
            reason: Some(error),
            ..Line::new("recording.failed", exec)
        });
    }

    /// `recording.truncated`: the session's recording reached `PODTERM_RECORD_MAX_BYTES`.
    pub fn recording_truncated(&self, exec: &SessionInfo, reason: &str) {
        self.send(&Line {
            reason: Some(reason),
            ..Line::new("recording.truncated", exec)
        });
    }

    /// Waits until every line sent before is written and flushed (at shutdown).
    pub async fn sync(&self) {
        let (done, flushed) = tokio::sync::oneshot::channel();
        // Waits for room (on a thread of the blocking pool): a sync must not be dropped.
        let tx = self.tx.clone();
        let sent = tokio::task::spawn_blocking(move || tx.send(Msg::Sync(done)).is_ok()).await;
        if sent.unwrap_or(false) {
            let _ = flushed.await;
        }
    }

    fn send(&self, line: &Line<'_>) {
        self.send_text(line.text());
    }

    fn send_text(&self, text: Vec<u8>) {
        if let Err(e) = self.tx.try_send(Msg::Line(text)) {
            let total = self.dropped.inc() + 1;
            let (why, msg) = match e {
                mpsc::TrySendError::Full(m) => ("the audit queue is full", m),
                mpsc::TrySendError::Disconnected(m) => ("the audit writer has stopped", m),
            };
            let Msg::Line(text) = msg else {
                unreachable!("only lines are sent here")
            };
            tracing::error!(
                dropped_total = total,
                audit_line = String::from_utf8_lossy(&text).trim_end(),
                "{why}: audit line diverted to the error log"
            );
        }
    }
}

/// Room for an audit line as first allocated: a session's line is 500–700 bytes, and a
/// growing `String` reallocated (and copied) it seven times on the way from 8 bytes.
const LINE_BYTES: usize = 1024;

/// `value` as one JSON line, newline included, in one allocation when it fits [`LINE_BYTES`].
fn line_text<T: Serialize>(value: &T) -> Vec<u8> {
    let mut text = Vec::with_capacity(LINE_BYTES);
    serde_json::to_writer(&mut text, value).expect("audit lines always serialize");
    text.push(b'\n');
    text
}

enum Msg {
    /// A line's bytes, its newline included: JSON, so UTF-8 (the writer takes bytes, so they
    /// are not checked again on the way; a `str` of them is only made for the error log).
    Line(Vec<u8>),
    /// Answered once everything queued before it is written and flushed.
    Sync(tokio::sync::oneshot::Sender<()>),
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Line(line) => f
                .debug_tuple("Line")
                .field(&String::from_utf8_lossy(line))
                .finish(),
            Msg::Sync(_) => f.write_str("Sync"),
        }
    }
}

#[derive(Serialize)]
struct DroppedLine {
    event: &'static str,
    time: Time,
    count: u64,
    total: u64,
}

/// The writer thread: drains the queue into a buffer, flushes whenever the queue runs empty,
/// then lingers ([`AUDIT_LINGER`]). Ends, flushed, when every sender is gone.
fn write_lines<W: Write>(rx: &mpsc::Receiver<Msg>, out: W, dropped: &Counter) {
    let mut out = BufWriter::with_capacity(AUDIT_BUFFER_BYTES, out);
    // Lines already reported as dropped by an `audit.dropped` line.
    let mut reported = 0u64;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut syncs = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
            match msg {
                Msg::Line(line) => batch.push(line),
                Msg::Sync(done) => syncs.push(done),
            }
        }
        let total = dropped.get();
        let notice = (total > reported).then(|| {
            let line = DroppedLine {
                event: "audit.dropped",
                time: Time::now(),
                count: total - reported,
                total,
            };
            line_text(&line)
        });
        match write_batch(&mut out, notice.iter().chain(&batch)) {
            Ok(()) => reported = total,
            Err(e) => {
                // What reached the file is unknown: count every line of the batch as lost and
                // log each, so the gap is visible in the trail later and nothing vanishes.
                for line in &batch {
                    let total = dropped.inc() + 1;
                    tracing::error!(
                        dropped_total = total,
                        audit_line = String::from_utf8_lossy(line).trim_end(),
                        error = %e,
                        "cannot write the audit trail: audit line diverted to the error log"
                    );
                }
                // What the buffer still holds is among the lines just counted.
                let (inner, _unwritten) = out.into_parts();
                out = BufWriter::with_capacity(AUDIT_BUFFER_BYTES, inner);
            }
        }
        batch.clear();
        for done in syncs.drain(..) {
            let _ = done.send(());
        }
        std::thread::sleep(AUDIT_LINGER);
    }
    let _ = out.flush();
}

fn write_batch<'a, W: Write>(
    out: &mut BufWriter<W>,
    lines: impl Iterator<Item = &'a Vec<u8>>,
) -> std::io::Result<()> {
    for line in lines {
        out.write_all(line)?;
    }
    out.flush()
}

#[cfg(test)]
pub(crate) mod tests;
