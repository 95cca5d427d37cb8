//! The session's signals, the watchdog's timer and the shutdown, polled only when one of them
//! woke the session's task.
//!
//! The session's futures are polled in one pass at every wake-up of its task. The readers and
//! writers have work at most wake-ups; the watchdog and the shutdown nearly never: the one
//! waits for a timer a ping interval away, the other for a drain or the session's end.
//! Polled anyway, they cost about a third of an idle pass: the timer's entry looked at, and
//! two `Notify`s that each take their lock to look at their waiter again. They are polled
//! under a waker of their own, which marks them due before it wakes the task, and the pass
//! polls them only when they are due.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

/// The signals' waker, and whether they are due.
#[derive(Debug)]
pub(super) struct Signals {
    /// Woken since the pass last polled them (true at first: the first pass registers them).
    due: AtomicBool,
    /// The session's task, woken in turn.
    task: Mutex<Option<Waker>>,
}

impl Wake for Signals {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Marked first: the pass that the wake-up brings must see it.
        self.due.store(true, Ordering::SeqCst);
        if let Some(task) = &*self.task.lock().unwrap_or_else(|e| e.into_inner()) {
            task.wake_by_ref();
        }
    }
}

/// One session's signals, held by its pass.
pub(super) struct Due {
    signals: Arc<Signals>,
    waker: Waker,
    /// The task's waker as last given to `signals` (a task's waker does not change, so this
    /// is compared, not locked, at every pass).
    task: Option<Waker>,
}

impl Due {
    pub(super) fn new() -> Due {
        let signals = Arc::new(Signals {
            due: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        Due {
            waker: Waker::from(signals.clone()),
            signals,
            task: None,
        }
    }

    /// At the start of every pass, with the task's context: the task the signals wake.
    pub(super) fn task(&mut self, cx: &Context<'_>) {
        if !self.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            let task = cx.waker().clone();
            *self.signals.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.clone());
            self.task = Some(task);
        }
    }

    /// The context to poll the signals in, when they woke the task since they were last
    /// polled; `None` otherwise.
    pub(super) fn due(&self) -> Option<Context<'_>> {
        self.signals
            .due
            .swap(false, Ordering::SeqCst)
            .then(|| self.context())
    }

    /// The context to poll the signals in, due or not.
    pub(super) fn context(&self) -> Context<'_> {
        Context::from_waker(&self.waker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future as _;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn due_at_first_then_only_after_a_wake_which_wakes_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let cx = Context::from_waker(&task);
        let mut due = Due::new();
        due.task(&cx);
        let signal = due.due().expect("due at first").waker().clone();
        assert!(due.due().is_none(), "not due again without a wake");
        signal.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task was woken");
        assert!(due.due().is_some(), "due after the wake");
        assert!(due.due().is_none());
        // A waker kept (by a timer, a Notify) outlives nothing it needs.
        drop(due);
        signal.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_signal_polled_under_its_waker_wakes_the_pass() {
        let notify = Arc::new(tokio::sync::Notify::new());
        let mut due = Due::new();
        let mut waited = std::pin::pin!(notify.notified());
        let mut passes = 0;
        let mut fired = false;
        let pass = std::future::poll_fn(|cx| {
            passes += 1;
            due.task(cx);
            if let Some(mut scx) = due.due() {
                if waited.as_mut().poll(&mut scx).is_ready() {
                    fired = true;
                    return std::task::Poll::Ready(());
                }
            }
            if passes == 1 {
                notify.notify_waiters();
            }
            std::task::Poll::Pending
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), pass)
            .await
            .expect("the notification woke the pass");
        assert!(fired);
        assert_eq!(passes, 2);
    }
}
