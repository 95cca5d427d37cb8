//! The handoff toward one socket's writer: a batch of data frames, plus a due ping and pong.
//!
//! A reader hands over frames while the batch has room ([`BATCH_FRAMES`], [`BATCH_BYTES`]);
//! the writer takes them all and writes them in one vectored write. Under a flood that is one
//! write (and one push through TCP) for several frames, where each write costs the kernel about
//! as much as the bytes it carries (loadtest/README.md, "Issue 21, fifth stop").
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

/// Most data frames handed over at once.
pub(super) const BATCH_FRAMES: usize = 4;
/// Most payload bytes in a batch of more than one frame (a frame alone may be larger).
const BATCH_BYTES: usize = 320 * 1024;

/// Data frames on their way to a writer together, in order: one inline (a keystroke's frame
/// costs no allocation), more on the heap (one allocation for up to [`BATCH_FRAMES`] frames
/// of a flood, and no room for them in an idle session's state).
#[derive(Default)]
pub(super) enum Batch {
    #[default]
    Empty,
    One(Outgoing),
    Many(Box<Frames>),
}

/// Two to [`BATCH_FRAMES`] frames.
pub(super) struct Frames {
    /// The first `len` are there.
    frames: [Option<Outgoing>; BATCH_FRAMES],
    len: usize,
    bytes: usize,
}

impl Frames {
    /// The frames, in order.
    pub(super) fn as_mut_slice(&mut self) -> &mut [Option<Outgoing>] {
        &mut self.frames[..self.len]
    }
}

impl Batch {
    /// Adds `out` if there is room, else gives it back.
    fn push(&mut self, out: Outgoing) -> Result<(), Outgoing> {
        let added = out.payload.len();
        match std::mem::take(self) {
            Batch::Empty => *self = Batch::One(out),
            Batch::One(first) if first.payload.len() + added > BATCH_BYTES => {
                *self = Batch::One(first);
                return Err(out);
            }
            Batch::One(first) => {
                let bytes = first.payload.len() + added;
                let mut frames: [Option<Outgoing>; BATCH_FRAMES] = Default::default();
                frames[0] = Some(first);
                frames[1] = Some(out);
                *self = Batch::Many(Box::new(Frames {
                    frames,
                    len: 2,
                    bytes,
                }));
            }
            Batch::Many(mut many) => {
                let room = many.len < BATCH_FRAMES && many.bytes + added <= BATCH_BYTES;
                let pushed = if room {
                    many.frames[many.len] = Some(out);
                    many.len += 1;
                    many.bytes += added;
                    Ok(())
                } else {
                    Err(out)
                };
                *self = Batch::Many(many);
                return pushed;
            }
        }
        Ok(())
    }

    pub(super) fn is_empty(&self) -> bool {
        matches!(self, Batch::Empty)
    }
}

/// Data frames wait in [`Handoff::frames`].
const FRAME: u8 = 1;
/// A pong waits in [`Handoff::pong`].
const PONG: u8 = 2;
/// A ping is due.
const PING: u8 = 4;

/// What the readers and the watchdog hand to one socket's writer.
#[derive(Default)]
pub(super) struct Handoff {
    /// The data frames waiting for the writer; their reader waits while the batch is full.
    frames: Mutex<Batch>,
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
    /// Wakes the reader: the batch was taken.
    to_reader: Notify,
    /// A frame (data or pong) was handed over since the watchdog last looked
    /// ([`Handoff::take_traffic`]): the socket carries traffic our way to it.
    traffic: AtomicBool,
}

impl Handoff {
    /// Hands `out` to the writer, waiting while the batch is full; the wait marks `leg` as not
    /// being read so that the watchdog does not take backpressure for a dead peer. Fails once
    /// the handoff is closed.
    pub(super) async fn send(&self, mut out: Outgoing, leg: &Leg) -> Result<(), ()> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                leg.blocked.store(false, Ordering::Relaxed);
                return Err(());
            }
            {
                let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
                match frames.push(out) {
                    Ok(()) => {
                        self.due.fetch_or(FRAME, Ordering::AcqRel);
                        drop(frames);
                        self.traffic.store(true, Ordering::Relaxed);
                        leg.blocked.store(false, Ordering::Relaxed);
                        self.wake_writer();
                        return Ok(());
                    }
                    Err(back) => out = back,
                }
            }
            leg.blocked.store(true, Ordering::Relaxed);
            // A batch taken since the check above left a permit: no wake-up is lost.
            self.to_reader.notified().await;
        }
    }

    /// Asks the writer to answer a ping with `payload` (never waits).
    pub(super) fn pong(&self, payload: BytesMut) {
        let mut pong = self.pong.lock().unwrap_or_else(|e| e.into_inner());
        *pong = Some(payload);
        self.due.fetch_or(PONG, Ordering::AcqRel);
        drop(pong);
        self.traffic.store(true, Ordering::Relaxed);
        self.wake_writer();
    }

    /// Whether a data frame or a pong was handed over since the last call.
    pub(super) fn take_traffic(&self) -> bool {
        self.traffic.swap(false, Ordering::Relaxed)
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

    /// Queues `last` (the close frame) behind the data frames still waiting, after
    /// [`Handoff::close`]: the writer sends the session's last output and its close frame in
    /// one write, so the peer gets them in one segment. Gives `last` back when the batch has no
    /// room. No wake-up: the caller polls the writer next.
    pub(super) fn push_last(&self, last: Outgoing) -> Result<(), Outgoing> {
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        frames.push(last)?;
        self.due.fetch_or(FRAME, Ordering::AcqRel);
        Ok(())
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

    /// The next thing to write, pongs and pings first, then every data frame waiting.
    fn take(&self) -> Option<Batch> {
        if self.due.load(Ordering::Acquire) == 0 {
            return None;
        }
        if let Some(out) = self.take_ping_pong() {
            return Some(Batch::One(out));
        }
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        self.due.fetch_and(!FRAME, Ordering::AcqRel);
        let batch = std::mem::take(&mut *frames);
        drop(frames);
        if batch.is_empty() {
            return None;
        }
        self.to_reader.notify_one();
        Some(batch)
    }

    /// Waits for the next things to write; `None` once closed and all is written.
    pub(super) async fn next(&self) -> Option<Batch> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&self, cx: &Context<'_>) -> Poll<Option<Batch>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use fastwebsockets::OpCode;

    fn frame(len: usize) -> Outgoing {
        Outgoing::new(true, OpCode::Binary, BytesMut::zeroed(len))
    }

    fn lens(batch: &mut Batch) -> Vec<usize> {
        match batch {
            Batch::Empty => vec![],
            Batch::One(out) => vec![out.payload.len()],
            Batch::Many(many) => many
                .as_mut_slice()
                .iter()
                .map(|out| out.as_ref().unwrap().payload.len())
                .collect(),
        }
    }

    #[test]
    fn a_batch_takes_frames_in_order_up_to_its_bounds() {
        // Up to four frames.
        let mut batch = Batch::default();
        for len in 1..=BATCH_FRAMES {
            assert!(batch.push(frame(len)).is_ok());
        }
        assert_eq!(batch.push(frame(9)).unwrap_err().payload.len(), 9);
        assert_eq!(lens(&mut batch), [1, 2, 3, 4]);
        // A frame over the byte bound goes alone: first, or after the batch is taken.
        let mut batch = Batch::default();
        assert!(batch.push(frame(BATCH_BYTES + 1)).is_ok());
        assert!(batch.push(frame(1)).is_err());
        assert_eq!(lens(&mut batch), [BATCH_BYTES + 1]);
        let mut batch = Batch::default();
        let half = BATCH_BYTES / 2;
        assert!(batch.push(frame(half)).is_ok());
        assert!(batch.push(frame(half)).is_ok());
        assert!(batch.push(frame(1)).is_err());
        assert_eq!(lens(&mut batch), [half, half]);
    }

    #[tokio::test]
    async fn the_writer_takes_the_whole_batch_and_the_reader_waits_while_it_is_full() {
        let handoff = Handoff::default();
        let leg = Leg::default();
        for len in 1..=BATCH_FRAMES {
            handoff.send(frame(len), &leg).await.unwrap();
        }
        // Full: the fifth waits, marked as backpressure, until the writer takes the four.
        let fifth = handoff.send(frame(5), &leg);
        tokio::pin!(fifth);
        assert!(futures_poll_once(fifth.as_mut()).await.is_pending());
        assert!(leg.blocked.load(Ordering::Relaxed));
        let mut taken = handoff.next().await.unwrap();
        assert_eq!(lens(&mut taken), [1, 2, 3, 4]);
        fifth.await.unwrap();
        assert!(!leg.blocked.load(Ordering::Relaxed));
        assert_eq!(lens(&mut handoff.next().await.unwrap()), [5]);
        assert!(handoff.is_empty());
    }

    /// Polls `future` once.
    async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut future).poll(cx))).await
    }
}
