//! Helpers for the fuzzing properties (`relay::fuzzing`, `cluster::tls_fuzzing`), built with
//! the `test-util` feature only.

use std::task::{Context, Poll, Waker};

/// Polls `f` to the end on this thread. The test streams wake at once, so "not ready" is
/// simply polled again; a future that never gets anywhere panics instead of hanging.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("a future made no progress on input that always has an answer")
}
