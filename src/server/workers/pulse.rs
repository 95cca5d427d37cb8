//! A worker's pulse: a timer due every second while connections keep arriving.
//!
//! tokio writes its event loop's eventfd whenever a timer is set earlier than the loop's next
//! wake-up, from the loop's own thread too (tokio 1.54, `runtime/time/mod.rs`, `reregister`:
//! `when < next_wake` → `unpark`): a write, and one more `epoll_wait` that returns at once.
//! Every session sets such a timer as it ends (the wait for the peer's close frame,
//! `relay/closing.rs`, [`crate::relay::CLOSE_GRACE`]): under churn that was about 1.2 of a
//! session's 35 syscalls. With the pulse due within a [`BEAT`], every timer of a beat or more
//! is later than the loop's next wake-up and is set without waking it; the pulse itself
//! costs one timer a second.
//!
//! The pulse stops [`QUIET_BEATS`] beats after the last new connection, so a worker with no
//! new connections (idle, or holding sessions that last) is not woken for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The pulse's period: at most the shortest per-session timer it keeps from waking the loop.
pub(super) const BEAT: Duration = Duration::from_secs(1);
/// Beats with no new connection after which the pulse stops until the next one.
pub(super) const QUIET_BEATS: u32 = 2;

const _: () = assert!(BEAT.as_millis() <= crate::relay::CLOSE_GRACE.as_millis());

/// One worker's pulse; [`Pulse::run`] on the worker's loop, [`Pulse::arrived`] per connection.
#[derive(Default)]
pub(super) struct Pulse {
    /// A connection arrived since the pulse last looked.
    arrived: AtomicBool,
    /// The pulse is beating (no need to wake it).
    beating: AtomicBool,
    wake: Notify,
    /// Beats so far (tests).
    #[cfg(test)]
    pub(super) beats: std::sync::atomic::AtomicUsize,
}

impl Pulse {
    /// A connection arrived on this worker: the pulse beats (again) if it stopped.
    pub(super) fn arrived(&self) {
        self.arrived.store(true, Ordering::Relaxed);
        if !self.beating.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Beats while connections arrive, for as long as the worker runs.
    pub(super) async fn run(&self) {
        let timer = tokio::time::sleep(BEAT);
        tokio::pin!(timer);
        loop {
            self.beating.store(false, Ordering::Relaxed);
            // Looked at after `beating` is down: an arrival that saw it up is not missed.
            if !self.arrived.swap(false, Ordering::Relaxed) {
                self.wake.notified().await;
                self.arrived.store(false, Ordering::Relaxed);
            }
            self.beating.store(true, Ordering::Relaxed);
            let mut quiet = 0;
            while quiet < QUIET_BEATS {
                timer.as_mut().reset(Instant::now() + BEAT);
                timer.as_mut().await;
                #[cfg(test)]
                self.beats.fetch_add(1, Ordering::Relaxed);
                quiet = if self.arrived.swap(false, Ordering::Relaxed) {
                    0
                } else {
                    quiet + 1
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn beats(pulse: &Pulse) -> usize {
        pulse.beats.load(Ordering::Relaxed)
    }

    /// Lets the pulse task run until it waits again (paused time moves only when all wait).
    async fn settle() {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn beats_while_connections_arrive_and_stops_after_quiet_beats() {
        let pulse = Arc::new(Pulse::default());
        tokio::spawn({
            let pulse = pulse.clone();
            async move { pulse.run().await }
        });
        settle().await;
        // No connection yet: no beat, however long.
        tokio::time::sleep(BEAT * 10).await;
        assert_eq!(beats(&pulse), 0, "an idle worker's pulse does not beat");

        // Connections arrive through five beats: it beats throughout.
        for _ in 0..5 {
            pulse.arrived();
            tokio::time::sleep(BEAT).await;
            settle().await;
        }
        let busy = beats(&pulse);
        assert!((4..=5).contains(&busy), "beat {busy} times in 5 busy beats");

        // Then none: it stops within QUIET_BEATS beats and stays stopped.
        tokio::time::sleep(BEAT * 20).await;
        let stopped = beats(&pulse);
        assert!(
            stopped <= busy + QUIET_BEATS as usize + 1,
            "{stopped} beats after {busy}: it did not stop"
        );
        tokio::time::sleep(BEAT * 20).await;
        assert_eq!(beats(&pulse), stopped, "a stopped pulse stays stopped");

        // A new connection starts it again.
        pulse.arrived();
        tokio::time::sleep(BEAT * 3).await;
        settle().await;
        assert!(beats(&pulse) > stopped, "an arrival restarts the pulse");
    }
}
