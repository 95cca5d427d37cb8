//! The handoff toward one socket's writer: one data frame at a time, plus a due ping and pong.
//!
//! It replaces a pair of bounded channels per socket (tokio's allocate a 32-slot block each,
//! whatever their capacity): everything lives inside the session's task, nothing on the heap.
//!
//! The writer looks at the handoff each time it is polled, so it needs a wake-up only when it
//! would not be polled anyway. In the relay's main loop the readers and the watchdog come
//! before the writers in every poll of the session's task ([`PolledAfter`]): what they hand
//! over there is written in that same poll, with no wake-up of the task by itself and no
//! second poll of the whole session for each frame.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::sync::Notify;

use super::Leg;
use super::frames::Outgoing;

/// A data frame waits in [`Handoff::frame`].
const FRAME: u8 = 1;
/// A pong waits in [`Handoff::pong`].
const PONG: u8 = 2;
/// A ping is due.
const PING: u8 = 4;

/// What the readers and the watchdog hand to one socket's writer.
#[derive(Default)]
pub(super) struct Handoff {
    /// The data frame waiting for the writer; its reader waits while it is taken.
    frame: Mutex<Option<Outgoing>>,
    /// The payload of the last ping to answer (an older unanswered one is superseded).
    pong: Mutex<Option<BytesMut>>,
    /// What is due, [`FRAME`], [`PONG`] and [`PING`]: one load tells a writer that looks
    /// whether to look further (the bits change under the slot's lock, with the slot).
    due: AtomicU8,
    /// Whether the session ended: the writer sends what is left and returns.
    closed: AtomicBool,
    /// Whether the writer is polled later in the poll that is running now, after whoever hands
    /// it something ([`PolledAfter`]): then it needs no wake-up.
    polled_after: AtomicBool,
    /// The writer's task, while it waits for something to write (or to be woken).
    writer: Mutex<Option<Waker>>,
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
                    self.due.fetch_or(FRAME, Ordering::AcqRel);
                    drop(frame);
                    leg.blocked.store(false, Ordering::Relaxed);
                    self.wake_writer();
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
        let mut pong = self.pong.lock().unwrap_or_else(|e| e.into_inner());
        *pong = Some(payload);
        self.due.fetch_or(PONG, Ordering::AcqRel);
        drop(pong);
        self.wake_writer();
    }

    /// Asks the writer to send a ping (never waits).
    pub(super) fn ping(&self) {
        self.due.fetch_or(PING, Ordering::AcqRel);
        self.wake_writer();
    }

    /// Ends the session's traffic: the writer sends what is left, then returns.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake_registered();
        self.to_reader.notify_one();
    }

    /// Whether the session's traffic ended ([`Handoff::close`]).
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Opens a closed handoff again, with nothing due: for the next connection of a session
    /// that outlives its connections (crate::relay::detach).
    pub(super) fn reopen(&self) {
        let mut pong = self.pong.lock().unwrap_or_else(|e| e.into_inner());
        *pong = None;
        self.due.fetch_and(!(PONG | PING), Ordering::AcqRel);
        drop(pong);
        self.closed.store(false, Ordering::Release);
    }

    /// A due pong or ping, if any (a writer that takes its data from elsewhere).
    pub(super) fn take_ping_pong(&self) -> Option<Outgoing> {
        let due = self.due.load(Ordering::Acquire);
        if due & PONG != 0
            && let Some(payload) = self.take_pong()
        {
            return Some(Outgoing::pong(payload));
        }
        (due & PING != 0 && self.due.fetch_and(!PING, Ordering::AcqRel) & PING != 0)
            .then(Outgoing::ping)
    }

    fn take_pong(&self) -> Option<BytesMut> {
        let mut pong = self.pong.lock().unwrap_or_else(|e| e.into_inner());
        self.due.fetch_and(!PONG, Ordering::AcqRel);
        pong.take()
    }

    /// Waits until something is due or the handoff closed.
    pub(super) async fn woken(&self) {
        let due = || self.is_closed() || self.due.load(Ordering::Acquire) & (PING | PONG) != 0;
        std::future::poll_fn(|cx| self.poll_look(cx, || due().then_some(()))).await;
    }

    /// `look`'s answer, or, when it has none, the writer's waker kept and one more look: what
    /// is handed over while registering is not lost.
    fn poll_look<T>(&self, cx: &Context<'_>, look: impl Fn() -> Option<T>) -> Poll<T> {
        if let Some(found) = look() {
            return Poll::Ready(found);
        }
        self.register(cx);
        look().map_or(Poll::Pending, Poll::Ready)
    }

    /// Lets the writer know something is due, unless it is polled after this anyway.
    fn wake_writer(&self) {
        if !self.polled_after.load(Ordering::Relaxed) {
            self.wake_registered();
        }
    }

    /// Wakes the writer's task if its waker is kept (it registers again when it next waits).
    fn wake_registered(&self) {
        let waker = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Keeps the waiting writer's waker (a clone only when it changed).
    fn register(&self, cx: &Context<'_>) {
        let mut slot = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
    }

    /// The next thing to write, pongs and pings first.
    fn take(&self) -> Option<Outgoing> {
        if self.due.load(Ordering::Acquire) == 0 {
            return None;
        }
        if let Some(out) = self.take_ping_pong() {
            return Some(out);
        }
        let mut frame = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        self.due.fetch_and(!FRAME, Ordering::AcqRel);
        let out = frame.take();
        drop(frame);
        if out.is_some() {
            self.to_reader.notify_one();
        }
        out
    }

    /// Waits for the next thing to write; `None` once closed and all is written.
    pub(super) async fn next(&self) -> Option<Outgoing> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&self, cx: &Context<'_>) -> Poll<Option<Outgoing>> {
        self.poll_look(cx, || match self.take() {
            Some(out) => Some(Some(out)),
            None => self.is_closed().then_some(None),
        })
    }

    /// Whether something is waiting to be written.
    pub(super) fn is_empty(&self) -> bool {
        self.due.load(Ordering::Acquire) == 0
    }
}

/// Marks two handoffs' writers as polled after whoever hands them something, for one poll of
/// the session's main loop (until dropped): handing over wakes nobody then.
///
/// Only for a loop that polls its readers and watchdog before its writers, which every poll
/// of it does until one of them ends it. A loop that ends early leaves what was handed over
/// to the closing, which polls the writers anyway.
pub(super) struct PolledAfter<'a>([&'a Handoff; 2]);

impl<'a> PolledAfter<'a> {
    pub(super) fn set(handoffs: [&'a Handoff; 2]) -> PolledAfter<'a> {
        for handoff in handoffs {
            handoff.polled_after.store(true, Ordering::Relaxed);
        }
        PolledAfter(handoffs)
    }
}

impl Drop for PolledAfter<'_> {
    fn drop(&mut self) {
        for handoff in self.0 {
            handoff.polled_after.store(false, Ordering::Relaxed);
        }
    }
}
