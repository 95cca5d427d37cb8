//! The output of a session that outlives its connection (crate::protocol::resume): every
//! stdout/stderr byte read from the cluster is kept, addressed by its offset, until the client
//! acknowledges it, so that a client that comes back after a drop gets exactly what it had not
//! processed. The flow control bounds it: the cluster is not read while more than
//! `HIGH_WATER` bytes are unacknowledged, so the kept output is at most that plus one frame.
//!
//! Watchers read the same output from where it is when they join; they acknowledge nothing
//! (a watcher that falls behind the owner's acknowledgements skips ahead).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use fastwebsockets::{OpCode, Role};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::frames::{FrameReader, FrameWriter, Outgoing};
use super::{CLOSE_GRACE, MAX_STATUS_BYTES};
use crate::protocol::{self, resume};

/// One frame's output, kept: its channel, its data (channel byte excluded) and where it starts.
struct Frame {
    start: u64,
    channel: u8,
    data: Bytes,
}

impl Frame {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

/// Frames shorter than this are copied when kept; longer ones keep the reader's buffer.
const COPY_BELOW: usize = super::frames::READ_BYTES / 2;

/// A frame's payload (from byte `skip`) as kept. A payload is a slice of the reader's buffer,
/// which a read reserves at 8 KiB at least: kept as is, a small frame pins its whole buffer,
/// and the reader takes a fresh one for the next read. A detached session whose client left 20
/// short lines unacknowledged held 184 KiB so; copied, small frames cost their length. Frames
/// of half a buffer or more keep it (at most twice their size), without a copy.
fn keepable(payload: BytesMut, skip: usize) -> Bytes {
    let data = &payload[skip.min(payload.len())..];
    if data.len() < COPY_BELOW {
        Bytes::copy_from_slice(data)
    } else {
        payload.freeze().slice(skip..)
    }
}

/// How the session ends for the attached connection.
#[derive(Debug, Clone)]
struct Ending {
    code: u16,
    reason: String,
    /// Whether the kept output and the status go out first (the command exited).
    drain: bool,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    /// Offset just past the last output kept.
    end: u64,
    /// The cluster's channel-3 message (its exit `Status`), sent after all output.
    status: Option<BytesMut>,
    ending: Option<Ending>,
}

/// What a connection writes next.
enum Next {
    Data { channel: u8, data: Bytes, end: u64 },
    Status(Bytes),
    Close(Outgoing),
    Nothing,
}

/// The kept output of one session and what its attached connection must be told.
pub struct Kept {
    state: Mutex<State>,
    /// Stdin payload bytes received from the client, cumulative.
    input: AtomicU64,
    /// A control message is due to the owner (stdin acknowledged, watchers changed).
    control_due: AtomicBool,
    /// Wakes the attached owner's writer (it also waits on its pings and pongs).
    owner: Notify,
    /// Wakes every watcher's writer: new output, or the end. (A Notify, not a watch
    /// channel: that one allocates its shared state, eight Notifys, for every session.)
    watchers: Notify,
    /// Watchers connected now: output wakes them only while there are any.
    watching: AtomicUsize,
}

impl Default for Kept {
    fn default() -> Kept {
        Kept {
            state: Mutex::default(),
            input: AtomicU64::new(0),
            control_due: AtomicBool::new(false),
            owner: Notify::new(),
            watchers: Notify::new(),
            watching: AtomicUsize::new(0),
        }
    }
}

impl Kept {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a frame read from the cluster (`channel`: the message's, for continuations).
    pub(super) fn push(&self, channel: Option<u8>, out: Outgoing) {
        let skip = usize::from(out.opcode != OpCode::Continuation);
        {
            let mut state = self.state();
            match channel {
                Some(channel @ (protocol::STDOUT | protocol::STDERR)) => {
                    let data = keepable(out.payload, skip);
                    if data.is_empty() {
                        return;
                    }
                    let start = state.end;
                    state.end += data.len() as u64;
                    state.frames.push_back(Frame {
                        start,
                        channel,
                        data,
                    });
                }
                Some(protocol::ERROR) => {
                    let status = state.status.get_or_insert_with(BytesMut::new);
                    if status.len() + out.payload.len() <= MAX_STATUS_BYTES {
                        status.extend_from_slice(&out.payload[skip..]);
                    }
                }
                _ => return,
            }
        }
        self.owner.notify_one();
        if self.watching.load(Ordering::Relaxed) > 0 {
            self.watchers.notify_waiters();
        }
    }

    /// The owner processed `total` output bytes: what is before goes.
    pub(super) fn acked(&self, total: u64) {
        let mut state = self.state();
        while state.frames.front().is_some_and(|f| f.end() <= total) {
            state.frames.pop_front();
        }
        if state.frames.is_empty() {
            state.frames = VecDeque::new();
        }
    }

    /// The client sent a frame on to the cluster: stdin bytes are counted, and acknowledged
    /// to it every [`resume::INPUT_ACK_EVERY`] bytes.
    pub(super) fn received(&self, out: &Outgoing) {
        let n = match (out.opcode, out.payload.first()) {
            (OpCode::Continuation, _) => out.payload.len(),
            (_, Some(&protocol::STDIN)) => out.payload.len() - 1,
            _ => return,
        } as u64;
        let before = self.input.fetch_add(n, Ordering::Relaxed);
        if (before + n) / resume::INPUT_ACK_EVERY != before / resume::INPUT_ACK_EVERY {
            self.control_changed();
        }
    }

    /// Stdin payload bytes received so far.
    pub fn input(&self) -> u64 {
        self.input.load(Ordering::Relaxed)
    }

    /// Output bytes read from the cluster so far.
    pub fn output(&self) -> u64 {
        self.state().end
    }

    /// The owner's connection gets a fresh control message (watchers joined or left).
    pub fn control_changed(&self) {
        self.control_due.store(true, Ordering::Relaxed);
        self.owner.notify_one();
    }

    /// The session ends for the attached connection with `code` and `reason`, after its
    /// output and status when `drain`.
    pub(super) fn end(&self, code: u16, reason: String, drain: bool) {
        self.state().ending.get_or_insert(Ending {
            code,
            reason,
            drain,
        });
        self.owner.notify_one();
        self.watchers.notify_waiters();
    }

    /// What a connection at output offset `pos` writes next (`status_sent`: it had the status).
    fn next(&self, pos: u64, status_sent: bool) -> Next {
        let state = self.state();
        let quick = state.ending.as_ref().filter(|e| !e.drain);
        if let Some(e) = quick {
            return Next::Close(Outgoing::close(e.code, &e.reason));
        }
        let at = state.frames.partition_point(|f| f.end() <= pos);
        if let Some(f) = state.frames.get(at) {
            let skip = pos.saturating_sub(f.start) as usize;
            return Next::Data {
                channel: f.channel,
                data: f.data.slice(skip..),
                end: f.end(),
            };
        }
        let Some(e) = &state.ending else {
            return Next::Nothing;
        };
        match &state.status {
            Some(s) if !status_sent => Next::Status(Bytes::copy_from_slice(s)),
            _ => Next::Close(Outgoing::close(e.code, &e.reason)),
        }
    }
}

/// Where a connection's writer stands in the kept output.
pub(super) struct Cursor {
    pub(super) pos: u64,
    status_sent: bool,
}

impl Cursor {
    pub(super) fn at(pos: u64) -> Cursor {
        Cursor {
            pos,
            status_sent: false,
        }
    }
}

/// What a writer did with one step.
pub(super) enum Step {
    Wrote,
    /// The close frame went out: the session ended for this connection.
    Closed,
    Idle,
}

/// Writes the next thing `kept` has for a connection at `cursor` (not flushed).
pub(super) async fn step<W: AsyncWrite + Unpin>(
    tx: &mut FrameWriter<W>,
    kept: &Kept,
    cursor: &mut Cursor,
) -> std::io::Result<Step> {
    match kept.next(cursor.pos, cursor.status_sent) {
        Next::Data { channel, data, end } => {
            tx.write_message(channel, &data).await?;
            cursor.pos = end;
            Ok(Step::Wrote)
        }
        Next::Status(status) => {
            tx.write_message(protocol::ERROR, &status).await?;
            cursor.status_sent = true;
            Ok(Step::Wrote)
        }
        Next::Close(close) => {
            tx.write(close).await?;
            tx.flush().await?;
            Ok(Step::Closed)
        }
        Next::Nothing => Ok(Step::Idle),
    }
}

impl Kept {
    /// Waits until the owner's writer has something to do (a permit is kept: no lost wake-up).
    pub(super) async fn owner_woken(&self) {
        self.owner.notified().await;
    }

    /// Takes the due control message, if one is.
    pub(super) fn take_control(&self) -> bool {
        self.control_due.swap(false, Ordering::Relaxed)
    }
}

/// Relays a session's output to a watcher's connection `io` (podterm is the WebSocket server)
/// from where it is now, read-only, until the session ends or the watcher leaves. `first` is
/// the control frame that tells the watcher what it watches.
pub async fn watch<C: AsyncRead + AsyncWrite + Unpin>(io: C, kept: &Kept, first: Vec<u8>) {
    kept.watching.fetch_add(1, Ordering::Relaxed);
    let _left = Left(&kept.watching);
    let (read, mut write) = tokio::io::split(io);
    let mut rx = FrameReader::new(read, Role::Server, protocol::MAX_RESIZE_BYTES + 1);
    {
        let mut cursor = Cursor::at(kept.output());
        let writing = async {
            let mut tx = FrameWriter::new(&mut write, Role::Server);
            tx.write_message(first[0], &first[1..]).await?;
            loop {
                // Listening before looking: output kept after the look wakes this one.
                let changed = kept.watchers.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                match step(&mut tx, kept, &mut cursor).await? {
                    Step::Wrote => continue,
                    Step::Closed => return Ok::<_, std::io::Error>(()),
                    Step::Idle => {}
                }
                tx.flush().await?;
                changed.await;
            }
        };
        // A watcher's input is read only for its close (and to notice that it left).
        let reading = async {
            loop {
                match rx.read_frame().await {
                    Ok(out) if out.opcode == OpCode::Close => return,
                    Ok(_) => continue,
                    Err(_) => return,
                }
            }
        };
        tokio::pin!(writing, reading);
        tokio::select! {
            _ = &mut writing => {
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut reading).await;
            }
            () = &mut reading => {}
        }
    }
    let _ = write.shutdown().await;
}

/// Counts a watcher out when its relay ends, however it ends.
struct Left<'a>(&'a AtomicUsize);

impl Drop for Left<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
