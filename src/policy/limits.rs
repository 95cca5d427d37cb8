//! Session limits per replica: `PODTERM_MAX_SESSIONS` (503) and `PODTERM_MAX_SESSIONS_PER_USER`
//! (429), held by RAII guards for the life of a session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::protocol::Status;

/// Counts live sessions in total and per user; cheap to clone (shared counters).
#[derive(Debug, Clone, Default)]
pub struct SessionLimits {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    max_total: Option<usize>,
    max_per_user: Option<usize>,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Counted only under a per-user limit.
    per_user: HashMap<String, usize>,
}

/// One more session in `total`, unless the replica's limit is reached.
fn take_one(total: &mut usize, max_total: Option<usize>) -> Result<(), LimitError> {
    if let Some(limit) = max_total.filter(|&limit| *total >= limit) {
        return Err(LimitError::Total { limit });
    }
    *total += 1;
    Ok(())
}

/// Why a session may not start now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "user {user:?} already has {limit} sessions open on this replica (PODTERM_MAX_SESSIONS_PER_USER)"
    )]
    PerUser { user: String, limit: usize },
    #[error("this replica already serves {limit} sessions (PODTERM_MAX_SESSIONS); try again later")]
    Total { limit: usize },
}

impl LimitError {
    /// 429 for the per-user limit, 503 for the replica's limit.
    pub fn status(&self) -> Status {
        match self {
            LimitError::PerUser { .. } => Status::failure(429, self.to_string()),
            LimitError::Total { .. } => Status::failure(503, self.to_string()),
        }
    }
}

/// Holds one session's place; dropping it frees the place.
#[derive(Debug)]
pub struct SessionGuard {
    inner: Arc<Inner>,
    /// The user, where users are counted (a per-user limit is set).
    user: Option<String>,
}

impl SessionLimits {
    /// `None` means unlimited.
    pub fn new(max_total: Option<usize>, max_per_user: Option<usize>) -> SessionLimits {
        SessionLimits {
            inner: Arc::new(Inner {
                max_total,
                max_per_user,
                counts: Mutex::default(),
            }),
        }
    }

    /// Takes a place for a session of `user`, or says which limit is reached.
    pub fn acquire(&self, user: &str) -> Result<SessionGuard, LimitError> {
        let mut counts = self.lock();
        let counts = &mut *counts;
        let Some(max_per_user) = self.inner.max_per_user else {
            // No per-user limit: users are not counted (no lookup, no copy of the name).
            take_one(&mut counts.total, self.inner.max_total)?;
            return Ok(SessionGuard {
                inner: self.inner.clone(),
                user: None,
            });
        };
        // One lookup; the user's name is copied into the map only for their first session.
        let mine = counts.per_user.get_mut(user);
        let open = mine.as_deref().copied().unwrap_or(0);
        if open >= max_per_user {
            return Err(LimitError::PerUser {
                user: user.into(),
                limit: max_per_user,
            });
        }
        take_one(&mut counts.total, self.inner.max_total)?;
        match mine {
            Some(mine) => *mine += 1,
            None => {
                counts.per_user.insert(user.to_string(), 1);
            }
        }
        Ok(SessionGuard {
            inner: self.inner.clone(),
            user: Some(user.to_string()),
        })
    }

    /// Live sessions in total.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Live sessions of `user`.
    #[cfg(test)]
    pub fn of_user(&self, user: &str) -> usize {
        self.lock().per_user.get(user).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        lock(&self.inner)
    }
}

// The counters stay consistent even if a holder panicked: every update is a single step.
fn lock(inner: &Inner) -> std::sync::MutexGuard<'_, Counts> {
    inner
        .counts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut counts = lock(&self.inner);
        counts.total -= 1;
        let Some(user) = &self.user else {
            return;
        };
        if let Some(n) = counts.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                counts.per_user.remove(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_by_default() {
        let limits = SessionLimits::new(None, None);
        let guards: Vec<_> = (0..1000).map(|_| limits.acquire("a").unwrap()).collect();
        assert_eq!(limits.total(), 1000);
        // Without a per-user limit users are not counted.
        assert_eq!(limits.of_user("a"), 0);
        drop(guards);
        assert_eq!(limits.total(), 0);
    }

    #[test]
    fn the_total_limit_holds_without_a_per_user_limit() {
        let limits = SessionLimits::new(Some(2), None);
        let a = limits.acquire("a").unwrap();
        let _b = limits.acquire("a").unwrap();
        assert_eq!(
            limits.acquire("b").unwrap_err(),
            LimitError::Total { limit: 2 }
        );
        drop(a);
        let _c = limits.acquire("b").unwrap();
        assert_eq!(limits.total(), 2);
    }

    #[test]
    fn per_user_limit_is_429_and_frees_on_drop() {
        let limits = SessionLimits::new(None, Some(2));
        let a1 = limits.acquire("alice").unwrap();
        let _a2 = limits.acquire("alice").unwrap();
        let e = limits.acquire("alice").unwrap_err();
        assert_eq!(
            e,
            LimitError::PerUser {
                user: "alice".into(),
                limit: 2
            }
        );
        assert_eq!(e.status().code, 429);
        assert_eq!(e.status().reason, "TooManyRequests");
        let _b = limits.acquire("bob").unwrap();
        drop(a1);
        assert_eq!(limits.of_user("alice"), 1);
        let _a3 = limits.acquire("alice").unwrap();
        assert_eq!(limits.total(), 3);
    }

    #[test]
    fn total_limit_is_503() {
        let limits = SessionLimits::new(Some(2), Some(5));
        let _a = limits.acquire("a").unwrap();
        let b = limits.acquire("b").unwrap();
        let e = limits.acquire("c").unwrap_err();
        assert_eq!(e, LimitError::Total { limit: 2 });
        assert_eq!(e.status().code, 503);
        drop(b);
        assert!(limits.acquire("c").is_ok());
    }

    #[test]
    fn refused_attempts_take_no_place() {
        let limits = SessionLimits::new(Some(1), Some(1));
        let _a = limits.acquire("a").unwrap();
        for _ in 0..10 {
            assert!(limits.acquire("a").is_err());
            assert!(limits.acquire("b").is_err());
        }
        assert_eq!(limits.total(), 1);
        assert_eq!(limits.of_user("a"), 1);
        assert_eq!(limits.of_user("b"), 0);
    }

    #[test]
    fn concurrent_acquires_never_exceed_the_limit() {
        let limits = SessionLimits::new(Some(8), None);
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let limits = limits.clone();
                let peak = peak.clone();
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        if let Ok(guard) = limits.acquire(&format!("u{}", t % 4)) {
                            peak.fetch_max(limits.total(), std::sync::atomic::Ordering::SeqCst);
                            drop(guard);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 8);
        assert_eq!(limits.total(), 0);
    }
}
