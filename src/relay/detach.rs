//! A session that outlives its connection (crate::protocol::resume): the cluster's socket,
//! its reader and writer and the watchdog live as long as the session; the client's
//! connection is an attachment that may drop and be replaced by the next one. Output goes
//! through the session's [`Kept`] output (acknowledged bytes are freed; the flow control
//! bounds the rest), so a new attachment starts at the offset its client had processed.
//!
//! An attachment ends the session when its client closes normally (any close code but 1001,
//! which browsers send on reload) or breaks the protocol; a drop (no close frame, a failed
//! read or write, silence past the missed pings, 1001) detaches it: the session waits for the
//! next attachment for the grace period, output still kept up to the flow control's bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fastwebsockets::Role;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::closing::Closing;
use super::frames::{FrameReader, FrameWriter, Outgoing};
use super::handoff::Handoff;
use super::kept::{Cursor, Kept, Step, step};
use super::{CLOSE_GRACE, CloseReason, RelayConfig, Shared, Summary, pump};

/// A connection that resumes a session: `io` is upgraded (podterm is the WebSocket server),
/// `output` the stdout+stderr bytes its client had processed.
pub struct Attach<C> {
    pub io: C,
    pub output: u64,
}

/// Where the connections that resume a session are handed to it, one at a time: a newer one
/// replaces one not taken yet (its client has given up on it). A slot, not a channel: tokio's
/// mpsc allocates a block of 32 slots for every session, which held ~2 KiB per idle session.
pub struct Attachments<C> {
    next: Mutex<Option<Attach<C>>>,
    ready: Notify,
    closed: AtomicBool,
}

impl<C> Default for Attachments<C> {
    fn default() -> Self {
        Attachments {
            next: Mutex::new(None),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }
}

impl<C> Attachments<C> {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Attach<C>>> {
        self.next.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a connection to the session; `Err` gives it back once the session has ended.
    pub fn offer(&self, attach: Attach<C>) -> Result<(), Attach<C>> {
        let mut next = self.slot();
        if self.closed.load(Ordering::Relaxed) {
            return Err(attach);
        }
        *next = Some(attach);
        drop(next);
        self.ready.notify_one();
        Ok(())
    }

    /// The next connection (cancel-safe: a connection stays in the slot until taken).
    async fn take(&self) -> Attach<C> {
        loop {
            let ready = self.ready.notified();
            if let Some(attach) = self.slot().take() {
                return attach;
            }
            ready.await;
        }
    }

    /// The session ended: nothing more is taken, and a connection still waiting goes.
    fn close(&self) {
        let mut next = self.slot();
        self.closed.store(true, Ordering::Relaxed);
        next.take();
    }
}

/// Closes a session's attachments when its relay ends, however it ends.
struct Closed<'a, C>(&'a Attachments<C>);

impl<C> Drop for Closed<'_, C> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// What the session tells the rest of podterm about its attachments.
pub trait AttachEvents: Send + Sync {
    /// The control frame (crate::protocol::resume) for the owner's connection, with `input`
    /// stdin bytes received so far and `output` bytes read from the cluster so far.
    fn control(&self, input: u64, output: u64) -> Vec<u8>;
    /// The connection dropped; the session waits for the next one.
    fn detached(&self, why: &str);
    /// A connection resumed the session.
    fn resumed(&self, output: u64);
}

/// How an attachment ended.
enum AttachEnd {
    /// The client closed with this code.
    Closed(u16),
    /// The connection dropped.
    Gone(String),
    /// podterm's close frame went out (the session ended for it).
    Ended,
    /// The client broke the protocol (or a recording failed): the session ends so.
    Failed(CloseReason),
}

/// The borrowed state every attachment of one session works with.
struct Parts<'a> {
    shared: &'a Shared,
    config: &'a RelayConfig,
    to_upstream: &'a Handoff,
    to_client: &'a Handoff,
    kept: &'a Kept,
    events: &'a dyn AttachEvents,
}

/// What a session that outlives its connection has beside its sockets: its kept output, the
/// connections that come back to it, who hears about them, and how long a drop is waited for
/// (zero: the drop ends the session).
pub struct Detachable<'a, C> {
    pub kept: Arc<Kept>,
    pub attachments: Arc<Attachments<C>>,
    pub events: &'a dyn AttachEvents,
    pub grace: Duration,
}

/// Relays a session that outlives its connection until it ends: `first` is the client's
/// connection, `upstream` the cluster's; later connections come through `attachments`.
/// `config.flow` must be on (the kept output is bounded by it).
pub async fn relay_detachable<C, U, S>(
    first: C,
    upstream: U,
    config: &RelayConfig,
    detachable: Detachable<'_, C>,
    shutdown: S,
) -> Summary
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    U: AsyncRead + AsyncWrite + Unpin + Send,
    S: Future<Output = ()>,
{
    debug_assert!(config.flow, "kept output is bounded by flow control");
    let Detachable {
        kept,
        attachments,
        events,
        grace,
    } = detachable;
    let _closed = Closed(&attachments);
    let mut shared = Shared::new(config);
    shared.kept = Some(kept.clone());
    let shared = shared;
    let mut shutdown = Box::pin(shutdown);
    let (upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let mut upstream_rx =
        FrameReader::new(upstream_read, Role::Client, config.max_upstream_frame_bytes);
    let to_upstream = Handoff::default();
    let to_client = Handoff::default();
    let parts = Parts {
        shared: &shared,
        config,
        to_upstream: &to_upstream,
        to_client: &to_client,
        kept: &kept,
        events,
    };
    let (close, aborted) = {
        let upstream_writer = pump::writer(
            FrameWriter::new(&mut upstream_write, Role::Client),
            &to_upstream,
        );
        tokio::pin!(upstream_writer);
        let (close, written, attached) = {
            let from_upstream =
                pump::from_upstream(&mut upstream_rx, &to_client, &to_upstream, &shared, config);
            tokio::pin!(from_upstream);
            let mut session = Session {
                parts: &parts,
                attached: Some(attachment(first, Cursor::at(0), &parts)),
                watchdog: Box::pin(pump::watchdog(&shared, config, &to_client, &to_upstream)),
                upstream_over: None,
                grace,
                detached_until: None,
            };
            kept.control_changed();
            let mut written = None;
            let close = loop {
                let until = session.detached_until.unwrap_or_else(far_future);
                tokio::select! {
                    biased;
                    close = &mut from_upstream, if session.upstream_over.is_none() => {
                        if let Some(close) = session.upstream_ended(close) {
                            break close;
                        }
                    }
                    end = attached(&mut session.attached) => {
                        session.attached = None;
                        if let Some(close) = session.attachment_ended(end) {
                            break close;
                        }
                    }
                    attach = attachments.take() => session.attach(attach),
                    close = &mut session.watchdog => {
                        if let Some(close) = session.watchdog_fired(close) {
                            break close;
                        }
                    }
                    () = tokio::time::sleep_until(until), if session.detached_until.is_some() => {
                        break CloseReason::ClientGone(format!(
                            "did not come back within the resume grace ({}s)",
                            grace.as_secs()
                        ));
                    }
                    () = &mut shutdown => break config.shutdown_reason(),
                    w = &mut upstream_writer => {
                        let why = w.as_ref().err().map_or("closed".into(), |e| e.to_string());
                        written = Some(w);
                        break CloseReason::Upstream(format!("cannot write: {why}"));
                    }
                }
            };
            (close, written, session.attached)
        };
        to_upstream.close();
        // The attached connection gets the end (after the rest of the output and the status
        // when the command exited), the cluster its close frame.
        kept.end(
            close.client_code(),
            close.text().into_owned(),
            close == CloseReason::Exited,
        );
        let grace = match close {
            CloseReason::Exited => config.idle_timeout,
            _ => CLOSE_GRACE,
        };
        let finish = async {
            let client = async {
                if let Some(a) = attached {
                    let _ = tokio::time::timeout(grace + CLOSE_GRACE, a).await;
                }
            };
            let upstream = Closing {
                written,
                close: Outgoing::close(close.upstream_code(), &close.text()),
                handoff: &to_upstream,
                leg: &shared.upstream,
                grace,
            }
            .finish(upstream_writer, &mut upstream_rx);
            tokio::join!(client, upstream);
        };
        // A shutdown meanwhile cuts the handshakes short, unless the session ended by one.
        let by_shutdown = close.by_shutdown();
        let aborted = tokio::select! {
            () = finish => false,
            () = &mut shutdown, if !by_shutdown => true,
        };
        (close, aborted)
    };
    if !aborted {
        let _ = tokio::time::timeout(CLOSE_GRACE, upstream_write.shutdown()).await;
    }
    shared.summary(close)
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

/// The attached connection's end; never resolves while none is attached.
async fn attached<F: Future + Unpin>(attached: &mut Option<F>) -> F::Output {
    match attached {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

type Watchdog<'a> = Pin<Box<dyn Future<Output = CloseReason> + Send + 'a>>;

/// The session's state between its connections.
struct Session<'p, 'a> {
    parts: &'p Parts<'a>,
    attached: Option<Attached<'p>>,
    watchdog: Watchdog<'p>,
    /// How the cluster's stream ended, while the rest of the output waits for a client.
    upstream_over: Option<CloseReason>,
    grace: Duration,
    /// While detached: when the session ends unless a connection comes back.
    detached_until: Option<Instant>,
}

impl<'p, 'a> Session<'p, 'a> {
    /// The cluster's stream ended with `close`: the session ends now unless a detached client
    /// still has output (or the exit status) to come back for.
    fn upstream_ended(&mut self, close: CloseReason) -> Option<CloseReason> {
        let drain = close == CloseReason::Exited;
        self.parts
            .kept
            .end(close.client_code(), close.text().into_owned(), drain);
        // Detached (nothing attached means detached): only an exit leaves output and a status
        // worth coming back for.
        if self.attached.is_none() && !drain {
            return Some(close);
        }
        self.upstream_over = Some(close);
        None
    }

    fn attachment_ended(&mut self, end: AttachEnd) -> Option<CloseReason> {
        match end {
            AttachEnd::Ended => Some(self.upstream_over.take().unwrap_or(CloseReason::Exited)),
            AttachEnd::Closed(code) if code != 1001 => Some(CloseReason::ClientClosed(code)),
            AttachEnd::Closed(_) => self.detach("the client went away (1001)".into()),
            AttachEnd::Gone(why) => self.detach(why),
            AttachEnd::Failed(close) => Some(close),
        }
    }

    fn watchdog_fired(&mut self, close: CloseReason) -> Option<CloseReason> {
        let CloseReason::ClientGone(why) = close else {
            return Some(close);
        };
        let parts = self.parts;
        self.watchdog = Box::pin(pump::watchdog(
            parts.shared,
            parts.config,
            parts.to_client,
            parts.to_upstream,
        ));
        self.attached = None;
        self.detach(why)
    }

    /// The connection dropped: wait for the next one, unless resume is off or the cluster's
    /// stream failed (a connection that came back would get only the close: that end sends
    /// no output and no status first).
    fn detach(&mut self, why: String) -> Option<CloseReason> {
        let parts = self.parts;
        if self.grace.is_zero() {
            return Some(CloseReason::ClientGone(why));
        }
        if self
            .upstream_over
            .as_ref()
            .is_some_and(|over| over != &CloseReason::Exited)
        {
            return self.upstream_over.take();
        }
        parts.shared.client.blocked.store(true, Ordering::Relaxed);
        parts.events.detached(&why);
        self.detached_until = Some(Instant::now() + self.grace);
        None
    }

    /// A connection comes back: it replaces any attached one and starts where its client was.
    fn attach<C: AsyncRead + AsyncWrite + Unpin + Send + 'p>(&mut self, attach: Attach<C>) {
        let parts = self.parts;
        let output = attach.output.min(parts.kept.output());
        if let Some(flow) = &parts.shared.flow {
            let _ = flow.acked(output);
        }
        parts.kept.acked(output);
        let leg = &parts.shared.client;
        parts.shared.heard(leg);
        leg.blocked.store(false, Ordering::Relaxed);
        leg.ended.store(false, Ordering::Relaxed);
        parts.to_client.reopen();
        parts.kept.control_changed();
        self.attached = Some(attachment(attach.io, Cursor::at(output), parts));
        self.detached_until = None;
        parts.events.resumed(output);
    }
}

type Attached<'p> = Pin<Box<dyn Future<Output = AttachEnd> + Send + 'p>>;

/// One connection's part of the session: its reader (stdin, resizes and acks to the cluster's
/// writer) and its writer (the kept output from `cursor`, control messages, pings, pongs).
fn attachment<'p, C>(io: C, cursor: Cursor, parts: &'p Parts<'_>) -> Attached<'p>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'p,
{
    Box::pin(run_attachment(io, cursor, parts))
}

async fn run_attachment<C>(io: C, cursor: Cursor, parts: &Parts<'_>) -> AttachEnd
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (read, mut write) = tokio::io::split(io);
    let mut rx = FrameReader::new(read, Role::Server, parts.config.max_client_frame_bytes);
    let (end, clean) = {
        let writer = owner_writer(FrameWriter::new(&mut write, Role::Server), parts, cursor);
        let reader = pump::from_client(
            &mut rx,
            parts.to_upstream,
            parts.to_client,
            parts.shared,
            parts.config,
        );
        tokio::pin!(writer, reader);
        tokio::select! {
            close = &mut reader => {
                parts.to_client.close();
                let (end, reply) = match close {
                    CloseReason::ClientClosed(code) => (AttachEnd::Closed(code), Some((code, String::new()))),
                    CloseReason::ClientGone(why) => (AttachEnd::Gone(why), None),
                    other => {
                        let reply = (other.client_code(), other.text().into_owned());
                        (AttachEnd::Failed(other), Some(reply))
                    }
                };
                let mut clean = false;
                if let Some((code, reason)) = reply {
                    clean = tokio::time::timeout(CLOSE_GRACE, async {
                        match writer.await {
                            Ok((mut tx, false)) => {
                                tx.write(Outgoing::close(code, &reason)).await.is_ok()
                                    && tx.flush().await.is_ok()
                            }
                            Ok((_, true)) => true,
                            Err(_) => false,
                        }
                    })
                    .await
                    .unwrap_or(false);
                }
                (end, clean)
            }
            written = &mut writer => match written {
                Ok(_) => {
                    // podterm's close went out: read until the client's own.
                    let _ = tokio::time::timeout(CLOSE_GRACE, &mut reader).await;
                    (AttachEnd::Ended, true)
                }
                Err(e) => (AttachEnd::Gone(format!("cannot write: {e}")), false),
            },
        }
    };
    if clean {
        let _ = tokio::time::timeout(CLOSE_GRACE, write.shutdown()).await;
    }
    end
}

/// Writes to the attached connection: pings and pongs first, then a due control message, then
/// the kept output from `cursor`; at the session's end its close frame. Returns the writer and
/// whether the close frame went out; stops without it once the handoff is closed.
async fn owner_writer<W: AsyncWrite + Unpin>(
    mut tx: FrameWriter<W>,
    parts: &Parts<'_>,
    mut cursor: Cursor,
) -> std::io::Result<(FrameWriter<W>, bool)> {
    let (pings, kept) = (parts.to_client, parts.kept);
    loop {
        if pings.is_closed() {
            tx.flush().await?;
            return Ok((tx, false));
        }
        if let Some(out) = pings.take_ping_pong() {
            tx.write(out).await?;
            continue;
        }
        if kept.take_control() {
            let frame = parts.events.control(kept.input(), kept.output());
            tx.write_message(frame[0], &frame[1..]).await?;
            continue;
        }
        match step(&mut tx, kept, &mut cursor).await? {
            Step::Wrote => continue,
            Step::Closed => return Ok((tx, true)),
            Step::Idle => {}
        }
        tx.flush().await?;
        tokio::select! {
            () = pings.woken() => {}
            () = kept.owner_woken() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach(output: u64) -> Attach<()> {
        Attach { io: (), output }
    }

    #[tokio::test]
    async fn a_newer_connection_replaces_one_not_taken_and_an_ended_session_takes_none() {
        let slot = Attachments::default();
        assert!(slot.offer(attach(1)).is_ok());
        assert!(slot.offer(attach(2)).is_ok());
        assert_eq!(slot.take().await.output, 2, "the newer one");
        // Taking waits for the next one (no stale wake-up hands out nothing).
        let waiting = tokio::time::timeout(Duration::from_millis(20), slot.take()).await;
        assert!(waiting.is_err(), "nothing waits to be taken");
        assert!(slot.offer(attach(3)).is_ok());
        assert_eq!(slot.take().await.output, 3);
        {
            let _closed = Closed(&slot);
            assert!(slot.offer(attach(4)).is_ok());
        }
        let refused = slot.offer(attach(5)).expect_err("the session ended");
        assert_eq!(refused.output, 5);
        assert!(slot.slot().is_none(), "the one left waiting was dropped");
    }
}
