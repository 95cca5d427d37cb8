//! The closing handshake of one socket: queued output, the close frame, the peer's close.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::frames::{FrameReader, FrameWriter, Outgoing};
use super::handoff::Handoff;
use super::pump::read;
use super::{CLOSE_GRACE, CloseReason, Leg, RelayConfig, Shared, Written};

/// Both sockets' closings for a session that ended with `close`. The readers and the watchdog
/// are gone and the handoffs closed: each writer sends what is left, then the close frame. A
/// session that exited normally lets a slow client take the rest of its output (up to the
/// idle timeout); any other end is quick. Then each socket whose close frame has not come yet
/// is read until it does (RFC 6455 §7.1.1), so that closing it resets nothing.
pub(super) fn legs<'a, CW, UW>(
    close: &CloseReason,
    written: Written<FrameWriter<CW>, FrameWriter<UW>>,
    [to_client, to_upstream]: [&'a Handoff; 2],
    shared: &'a Shared,
    config: &RelayConfig,
) -> (Closing<'a, CW>, Closing<'a, UW>) {
    let grace = match close {
        CloseReason::Exited | CloseReason::ClientClosed(_) => config.idle_timeout,
        _ => CLOSE_GRACE,
    };
    let text = close.text();
    (
        Closing {
            written: written.client,
            close: Outgoing::close(close.client_code(), &text),
            handoff: to_client,
            leg: &shared.client,
            grace,
        },
        Closing {
            written: written.upstream,
            close: Outgoing::close(close.upstream_code(), &text),
            handoff: to_upstream,
            leg: &shared.upstream,
            grace,
        },
    )
}

/// The end of one socket's session: its writer's result if it already ended, the close frame
/// it gets, its writer's (closed) handoff, its reader's liveness and how long its queued
/// output may take.
pub(super) struct Closing<'a, W> {
    pub(super) written: Option<std::io::Result<FrameWriter<W>>>,
    pub(super) close: Outgoing,
    pub(super) handoff: &'a Handoff,
    pub(super) leg: &'a Leg,
    pub(super) grace: Duration,
}

impl<W: AsyncWrite + Unpin> Closing<'_, W> {
    /// Lets the writer send what is queued, sends the close frame, then reads the socket until
    /// the peer's close frame (at most `CLOSE_GRACE`) unless it already came or reading failed.
    pub(super) async fn finish<F, R>(self, writer: Pin<&mut F>, rx: &mut FrameReader<R>)
    where
        F: Future<Output = std::io::Result<FrameWriter<W>>>,
        R: AsyncRead + Unpin,
    {
        let Closing {
            written,
            close,
            handoff,
            leg,
            grace,
        } = self;
        let sent = tokio::time::timeout(grace, async {
            let (written, close) = match written {
                Some(written) => (written, Some(close)),
                // The writer still runs: the close frame goes out in its last batch, in one
                // write with the output left (a command's status and the close in one
                // segment), unless that batch is full.
                None => {
                    let close = handoff.push_last(close).err();
                    (writer.await, close)
                }
            };
            match (written, close) {
                (Ok(mut tx), Some(close)) => {
                    tx.write(close).await.is_ok() && tx.flush().await.is_ok()
                }
                (Ok(_), None) => true,
                (Err(_), _) => false,
            }
        })
        .await;
        if sent == Ok(true) {
            let _ = tokio::time::timeout(CLOSE_GRACE, await_close(rx, leg)).await;
        }
    }
}

/// After podterm sent its close frame: reads (and drops) what the peer still sends until its
/// close frame arrives or reading fails, so that the socket is closed with nothing unread.
async fn await_close<S: AsyncRead + Unpin>(rx: &mut FrameReader<S>, leg: &Leg) {
    while !leg.ended.load(Ordering::Relaxed) {
        let _ = read(rx, leg).await;
    }
}
