//! The handoff toward one socket's writer: one data frame at a time, plus a due ping and pong.
//!
//! It replaces a pair of bounded channels per socket (tokio's allocate a 32-slot block each,
//! whatever their capacity): everything lives inside the session's task, nothing on the heap.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use tokio::sync::Notify;

use super::Leg;
use super::frames::Outgoing;

/// What the readers and the watchdog hand to one socket's writer.
#[derive(Default)]
pub(super) struct Handoff {
    /// The data frame waiting for the writer; its reader waits while it is taken.
    frame: Mutex<Option<Outgoing>>,
    /// The payload of the last ping to answer (an older unanswered one is superseded).
    pong: Mutex<Option<BytesMut>>,
    /// Whether a ping is due.
    ping: AtomicBool,
    /// Whether the session ended: the writer sends what is left and returns.
    closed: AtomicBool,
    /// Wakes the writer: something to write, or closed.
    to_writer: Notify,
    /// Wakes the reader: the frame was taken.
    to_reader: Notify,
}

impl Handoff {
    /// Hands `out` to the writer, waiting while the previous frame is still there; the wait
    /// marks `leg` as not being read so that the watchdog does not take backpressure for a dead
    /// peer. Fails once the handoff is closed.
    pub(super) async fn send(&self, out: Outgoing, leg: &Leg) -> Result<(), ()> {
        let mut out = Some(out);
        loop {
            if self.closed.load(Ordering::Acquire) {
                leg.blocked.store(false, Ordering::Relaxed);
                return Err(());
            }
            {
                let mut frame = self.frame.lock().unwrap_or_else(|e| e.into_inner());
                if frame.is_none() {
                    *frame = out.take();
                    drop(frame);
                    leg.blocked.store(false, Ordering::Relaxed);
                    self.to_writer.notify_one();
                    return Ok(());
                }
            }
            leg.blocked.store(true, Ordering::Relaxed);
            // A frame taken since the check above left a permit: no wake-up is lost.
            self.to_reader.notified().await;
        }
    }

    /// Asks the writer to answer a ping with `payload` (never waits).
    pub(super) fn pong(&self, payload: BytesMut) {
        *self.pong.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
        self.to_writer.notify_one();
    }

    /// Asks the writer to send a ping (never waits).
    pub(super) fn ping(&self) {
        self.ping.store(true, Ordering::Relaxed);
        self.to_writer.notify_one();
    }

    /// Ends the session's traffic: the writer sends what is left, then returns.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.to_writer.notify_one();
        self.to_reader.notify_one();
    }

    /// Whether the session's traffic ended ([`Handoff::close`]).
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Opens a closed handoff again, with nothing due: for the next connection of a session
    /// that outlives its connections (crate::relay::detach).
    pub(super) fn reopen(&self) {
        *self.pong.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.ping.store(false, Ordering::Relaxed);
        self.closed.store(false, Ordering::Release);
    }

    /// A due pong or ping, if any (a writer that takes its data from elsewhere).
    pub(super) fn take_ping_pong(&self) -> Option<Outgoing> {
        if let Some(payload) = self.pong.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Some(Outgoing::pong(payload));
        }
        self.ping
            .swap(false, Ordering::Relaxed)
            .then(Outgoing::ping)
    }

    /// Waits until something is due or the handoff closed (a permit is kept).
    pub(super) async fn woken(&self) {
        self.to_writer.notified().await;
    }

    /// The next thing to write, pongs and pings first.
    fn take(&self) -> Option<Outgoing> {
        if let Some(payload) = self.pong.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Some(Outgoing::pong(payload));
        }
        if self.ping.swap(false, Ordering::Relaxed) {
            return Some(Outgoing::ping());
        }
        let out = self.frame.lock().unwrap_or_else(|e| e.into_inner()).take();
        if out.is_some() {
            self.to_reader.notify_one();
        }
        out
    }

    /// Waits for the next thing to write; `None` once closed and all is written.
    pub(super) async fn next(&self) -> Option<Outgoing> {
        loop {
            if let Some(out) = self.take() {
                return Some(out);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            self.to_writer.notified().await;
        }
    }

    /// Whether something is waiting to be written.
    pub(super) fn is_empty(&self) -> bool {
        self.frame
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
            && self
                .pong
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
            && !self.ping.load(Ordering::Relaxed)
    }
}
