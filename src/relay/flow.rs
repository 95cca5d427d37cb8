//! The relay's side of the page's flow control (crate::protocol::flow): output sent to the
//! client is counted, the client's acks are taken, and the cluster's reader waits while too
//! much is unacknowledged.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

use super::Leg;
use crate::protocol::flow::{HIGH_WATER, LOW_WATER};

/// Output bytes sent and acknowledged in one session that negotiated flow control.
#[derive(Default)]
pub(super) struct Flow {
    sent: AtomicU64,
    acked: AtomicU64,
    /// Woken by each ack; one waiter (the cluster's reader), so a permit is never lost.
    acks: Notify,
}

/// An ack for more output than was sent.
#[derive(Debug)]
pub(super) struct AckTooFar;

impl Flow {
    /// `n` stdout/stderr bytes are on their way to the client.
    pub(super) fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The client has processed `total` bytes so far (cumulative; an older ack changes
    /// nothing).
    pub(super) fn acked(&self, total: u64) -> Result<(), AckTooFar> {
        if total > self.sent.load(Ordering::Relaxed) {
            return Err(AckTooFar);
        }
        self.acked.fetch_max(total, Ordering::Relaxed);
        self.acks.notify_one();
        Ok(())
    }

    fn unacked(&self) -> u64 {
        self.sent
            .load(Ordering::Relaxed)
            .saturating_sub(self.acked.load(Ordering::Relaxed))
    }

    /// Returns at once while at most [`HIGH_WATER`] bytes are unacknowledged; otherwise waits
    /// until they are down to [`LOW_WATER`], with `leg` marked as not being read (the watchdog
    /// does not take the pause for a silent peer).
    pub(super) async fn room(&self, leg: &Leg) {
        if self.unacked() <= HIGH_WATER {
            return;
        }
        leg.blocked.store(true, Ordering::Relaxed);
        while self.unacked() > LOW_WATER {
            self.acks.notified().await;
        }
        leg.blocked.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::task::{Context, Waker};

    fn poll(room: std::pin::Pin<&mut impl std::future::Future<Output = ()>>) -> bool {
        room.poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }

    #[test]
    fn reading_pauses_above_the_high_mark_and_resumes_at_the_low_one() {
        let (flow, leg) = (Flow::default(), Leg::default());
        flow.sent(HIGH_WATER as usize);
        assert!(poll(pin!(flow.room(&leg))), "at the high mark: go on");
        flow.sent(1);
        let mut paused = pin!(flow.room(&leg));
        assert!(!poll(paused.as_mut()), "above it: wait");
        assert!(leg.blocked.load(Ordering::Relaxed));
        flow.acked(HIGH_WATER - LOW_WATER).unwrap();
        assert!(
            !poll(paused.as_mut()),
            "one byte over the low mark: still wait"
        );
        flow.acked(HIGH_WATER - LOW_WATER + 1).unwrap();
        assert!(poll(paused.as_mut()), "at the low mark: read again");
        assert!(!leg.blocked.load(Ordering::Relaxed));
        flow.acked(5).unwrap();
        assert_eq!(flow.unacked(), LOW_WATER, "an older ack changes nothing");
        assert!(flow.acked(HIGH_WATER + 2).is_err(), "more than was sent");
    }
}
