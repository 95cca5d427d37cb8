//! Graceful drain: the first SIGTERM/SIGINT stops new sessions and readiness, open sessions run
//! until the drain timeout and are then closed (1001); a second signal closes everything now.
//!
//! ```text
//! Serving ──signal──▶ Draining { deadline = now + PODTERM_DRAIN_TIMEOUT } ──signal──▶ Closing
//!   /readyz 200          /readyz 503, new sessions 503,                     sessions closed now,
//!                        open sessions go on until the deadline             the process exits
//! ```
//!
//! [`Drain`] is shared by the accept loop, the routes (readiness, refusing new sessions) and
//! every session (its [`SessionGuard`] and [`Drain::session_deadline`]). Nothing polls: state
//! changes go through `tokio::sync::watch`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Taking new sessions.
    Serving,
    /// Refusing new sessions; open sessions go on until `deadline`.
    Draining { deadline: Instant },
    /// Closing every session now (a second signal).
    Closing,
}

/// How the gateway stopped, once [`Drain::stopped`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every session ended during the drain: exit 0.
    Drained,
    /// A second signal: exit at once.
    Forced,
}

/// The drain state, cheap to clone.
#[derive(Clone, Debug)]
pub struct Drain(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    timeout: Duration,
    phase: watch::Sender<Phase>,
    sessions: watch::Sender<usize>,
    /// Callers of [`Drain::no_sessions`] waiting now: the count reaching zero wakes them
    /// while serving too.
    zero_waiters: AtomicUsize,
}

impl Drain {
    /// A gateway that is serving; a drain lets open sessions run for `timeout`.
    pub fn new(timeout: Duration) -> Drain {
        Drain(Arc::new(Inner {
            timeout,
            phase: watch::Sender::new(Phase::Serving),
            sessions: watch::Sender::new(0),
            zero_waiters: AtomicUsize::new(0),
        }))
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.0.phase.borrow()
    }

    /// Whether new sessions are refused and readiness is 503.
    pub fn is_draining(&self) -> bool {
        self.phase() != Phase::Serving
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        *self.0.sessions.borrow()
    }

    /// Resolves when no session is open (the count reaching zero wakes it).
    #[cfg(any(test, feature = "test-util"))]
    pub async fn no_sessions(&self) {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.0.zero_waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.0.zero_waiters);
        let mut sessions = self.0.sessions.subscribe();
        let _ = sessions.wait_for(|n| *n == 0).await;
    }

    /// Starts the drain (the first signal); later calls change nothing. Returns whether this
    /// call started it.
    pub fn begin(&self) -> bool {
        let deadline = Instant::now() + self.0.timeout;
        self.0.phase.send_if_modified(|phase| {
            if *phase == Phase::Serving {
                *phase = Phase::Draining { deadline };
                true
            } else {
                false
            }
        })
    }

    /// Closes every session now (the second signal).
    pub fn close_now(&self) {
        self.0.phase.send_replace(Phase::Closing);
    }

    /// Counts one open session until the guard is dropped.
    ///
    /// Only the count reaching zero during a drain wakes [`Drain::stopped`]: it waits on
    /// another thread, and waking it per session would cost two cross-thread wake-ups for
    /// nothing.
    pub fn session(&self) -> SessionGuard {
        self.0.sessions.send_if_modified(|n| {
            *n += 1;
            false
        });
        SessionGuard(self.clone())
    }

    /// Resolves when a session must close: the drain deadline passed, or [`Drain::close_now`].
    /// Hand it to the relay as its shutdown signal. Never resolves while serving.
    pub fn session_deadline(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut phase = self.0.phase.subscribe();
        async move {
            loop {
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Closing => return,
                    Phase::Draining { deadline } => {
                        // Boxed: only a draining session holds a timer; every session holds
                        // this future, idle, for its whole life.
                        let sleep = Box::pin(tokio::time::sleep_until(deadline));
                        tokio::select! {
                            () = sleep => return,
                            changed = phase.changed() => if changed.is_err() { return },
                        }
                    }
                    Phase::Serving => {
                        if phase.changed().await.is_err() {
                            // The gateway is gone; nothing will ever ask this session to stop.
                            std::future::pending::<()>().await;
                        }
                    }
                }
            }
        }
    }

    /// Resolves once draining and the last session is gone ([`Stopped::Drained`]), or at
    /// once on [`Drain::close_now`] ([`Stopped::Forced`]).
    pub async fn stopped(&self) -> Stopped {
        let mut phase = self.0.phase.subscribe();
        let mut sessions = self.0.sessions.subscribe();
        loop {
            let now = *phase.borrow_and_update();
            let open = *sessions.borrow_and_update();
            match now {
                Phase::Closing => return Stopped::Forced,
                Phase::Draining { .. } if open == 0 => return Stopped::Drained,
                _ => {}
            }
            // Both senders live in `self`, so neither channel closes while this runs.
            tokio::select! {
                _ = phase.changed() => {}
                _ = sessions.changed() => {}
            }
        }
    }
}

/// One open session; dropping it lets [`Drain::stopped`] see the session gone.
#[derive(Debug)]
pub struct SessionGuard(Drain);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        // Only a drain waits for the count to reach zero (and tests, through `no_sessions`);
        // while serving, nobody is woken (the waiter is on the control thread: a wake-up there
        // whenever the count touched zero cost a cross-thread write and a context switch). The
        // phase is read under the count's lock, and [`Drain::stopped`] reads the count after
        // every phase change, so a drain that begins meanwhile still sees the zero.
        let inner = &self.0.0;
        inner.sessions.send_if_modified(|n| {
            *n -= 1;
            *n == 0
                && (*inner.phase.borrow() != Phase::Serving
                    || inner.zero_waiters.load(Ordering::SeqCst) > 0)
        });
    }
}

/// Turns SIGTERM and SIGINT into drain steps: the first begins the drain, the second closes
/// everything. The handlers are installed before this returns (so a signal that comes at any
/// later time is seen); the returned future acts on them and ends after the second signal.
pub fn on_signals(drain: Drain) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut signals = Signals::install()?;
    Ok(async move {
        let first = signals.next().await;
        drain.begin();
        tracing::info!(
            signal = first,
            open_sessions = drain.open_sessions(),
            drain_timeout_s = drain.0.timeout.as_secs_f64(),
            "draining: readiness 503, new sessions refused; a second signal exits at once"
        );
        let second = signals.next().await;
        tracing::warn!(
            signal = second,
            open_sessions = drain.open_sessions(),
            "second signal: closing every session now"
        );
        drain.close_now();
    })
}

/// SIGTERM and SIGINT, their handlers installed (from then on neither kills the process).
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next of them; its name.
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sessions_run_until_the_deadline_then_close() {
        let drain = Drain::new(Duration::from_secs(60));
        let guard = drain.session();
        let deadline = drain.session_deadline();
        tokio::pin!(deadline);
        let stopped = drain.stopped();
        tokio::pin!(stopped);

        // Serving: neither resolves, however long it runs.
        tokio::select! {
            biased;
            () = &mut deadline => panic!("deadline while serving"),
            _ = &mut stopped => panic!("stopped while serving"),
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
        assert!(!drain.is_draining());

        let began = Instant::now();
        assert!(drain.begin());
        assert!(!drain.begin(), "a second begin changes nothing");
        assert!(drain.is_draining());
        (&mut deadline).await;
        assert_eq!(began.elapsed(), Duration::from_secs(60));

        // The session is still open, so the gateway has not stopped.
        tokio::select! {
            biased;
            _ = &mut stopped => panic!("stopped with a session open"),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        drop(guard);
        assert_eq!(stopped.await, Stopped::Drained);
        assert_eq!(drain.open_sessions(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_last_session_ending_wakes_the_watcher() {
        let drain = Drain::new(Duration::from_secs(60));
        let watcher = drain.0.sessions.subscribe();
        let first = drain.session();
        let second = drain.session();
        assert_eq!(drain.open_sessions(), 2);
        assert!(
            !watcher.has_changed().unwrap(),
            "a session starting wakes nobody"
        );
        drop(first);
        assert_eq!(drain.open_sessions(), 1);
        assert!(
            !watcher.has_changed().unwrap(),
            "one of two ending wakes nobody"
        );

        drain.begin();
        let stopped = drain.stopped();
        tokio::pin!(stopped);
        tokio::select! {
            biased;
            _ = &mut stopped => panic!("stopped with a session open"),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        drop(second);
        assert!(
            watcher.has_changed().unwrap(),
            "the last one ending wakes the watcher"
        );
        assert_eq!(stopped.await, Stopped::Drained);
    }

    #[tokio::test(start_paused = true)]
    async fn while_serving_the_last_session_ending_wakes_nobody() {
        let drain = Drain::new(Duration::from_secs(60));
        let watcher = drain.0.sessions.subscribe();
        drop(drain.session());
        assert_eq!(drain.open_sessions(), 0);
        assert!(!watcher.has_changed().unwrap(), "serving: nobody woken");
        // A drain that begins afterwards still sees the zero.
        drain.begin();
        assert_eq!(drain.stopped().await, Stopped::Drained);
        // A test waiting for no sessions is woken while serving too.
        let other = Drain::new(Duration::from_secs(60));
        let guard = other.session();
        let waiting = other.no_sessions();
        tokio::pin!(waiting);
        tokio::select! {
            biased;
            () = &mut waiting => panic!("no sessions with one open"),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        drop(guard);
        waiting.await;
    }

    #[tokio::test(start_paused = true)]
    async fn no_sessions_stops_at_once() {
        let drain = Drain::new(Duration::from_secs(60));
        drain.begin();
        let began = Instant::now();
        assert_eq!(drain.stopped().await, Stopped::Drained);
        assert_eq!(began.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn close_now_cuts_the_drain_short() {
        let drain = Drain::new(Duration::from_secs(60));
        let _guard = drain.session();
        let deadline = tokio::spawn(drain.session_deadline());
        drain.begin();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!deadline.is_finished());
        let began = Instant::now();
        drain.close_now();
        deadline.await.unwrap();
        assert_eq!(began.elapsed(), Duration::ZERO);
        assert_eq!(drain.stopped().await, Stopped::Forced);
    }
}
