//! The relay's moving parts: one reader per socket, one writer per socket, the watchdog.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use fastwebsockets::OpCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf};
use tokio::time::Instant;

use super::frames::{FrameReader, FrameWriter, Outgoing, ReadError};
use super::handoff::Handoff;
use super::{CloseReason, Leg, MAX_STATUS_BYTES, MISSED_PINGS, RelayConfig, Shared};
use crate::protocol::{self, FrameError, Status};
use crate::recording::RecordingTap;

/// The reader of one socket's half.
pub(super) type Reader<S> = FrameReader<ReadHalf<S>>;

/// Reads one frame (podterm answers pings and closes itself, through the writer). A close
/// frame or a failed read marks `leg` as read to its end.
pub(super) async fn read<S: AsyncRead>(
    rx: &mut Reader<S>,
    leg: &Leg,
) -> Result<Outgoing, ReadError> {
    let read = rx.read_frame().await;
    if read
        .as_ref()
        .map_or(true, |out| out.opcode == OpCode::Close)
    {
        leg.ended.store(true, Ordering::Relaxed);
    }
    read
}

fn close_code(payload: &[u8]) -> u16 {
    match payload {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 1000,
    }
}

/// The message a fragmented client frame belongs to.
enum ClientMessage {
    None,
    Stdin,
    /// A resize or close message arriving in pieces, reassembled (bounded) to be checked.
    Small(BytesMut),
}

/// Client → cluster: only stdin, checked resizes and (v5) close pass; anything else ends the
/// session with 1008, a frame over the limit with 1009.
pub(super) async fn from_client<S: AsyncRead>(
    rx: &mut Reader<S>,
    to_upstream: &Handoff,
    to_client: &Handoff,
    shared: &Shared,
    config: &RelayConfig,
) -> CloseReason {
    let v5 = config.v5;
    let mut message = ClientMessage::None;
    let mut tap = config.recording.clone();
    loop {
        let out = match read(rx, &shared.client).await {
            Ok(out) => out,
            Err(e) => return client_read_error(e),
        };
        shared.heard(&shared.client);
        let out = match out.opcode {
            OpCode::Close => return CloseReason::ClientClosed(close_code(&out.payload)),
            OpCode::Ping => {
                to_client.pong(out.payload);
                continue;
            }
            OpCode::Pong => continue,
            // Python's client sends str stdin as text frames; the API server takes both.
            OpCode::Binary | OpCode::Text => {
                if !matches!(message, ClientMessage::None) {
                    return protocol_error("a new message inside a fragmented one");
                }
                match out.payload.first() {
                    Some(&protocol::STDIN) => {
                        if !out.fin {
                            message = ClientMessage::Stdin;
                        }
                        out
                    }
                    Some(&protocol::RESIZE | &protocol::CLOSE) if !out.fin => {
                        message = ClientMessage::Small(out.payload);
                        continue;
                    }
                    _ => match protocol::check_client_frame(&out.payload, v5) {
                        Ok(_) => out,
                        Err(e) if unknown_size(&e) => continue,
                        Err(e) => return frame_error(e),
                    },
                }
            }
            OpCode::Continuation => match &mut message {
                ClientMessage::None => return protocol_error("continuation without a message"),
                ClientMessage::Stdin => {
                    if out.fin {
                        message = ClientMessage::None;
                    }
                    out
                }
                ClientMessage::Small(buf) => {
                    buf.extend_from_slice(&out.payload);
                    if buf.len() > protocol::MAX_RESIZE_BYTES + 1 {
                        return protocol_error("control message too large");
                    }
                    if !out.fin {
                        continue;
                    }
                    let whole = std::mem::take(buf);
                    message = ClientMessage::None;
                    match protocol::check_client_frame(&whole, v5) {
                        Ok(_) => {}
                        Err(e) if unknown_size(&e) => continue,
                        Err(e) => return frame_error(e),
                    }
                    Outgoing {
                        fin: true,
                        opcode: OpCode::Binary,
                        payload: whole,
                    }
                }
            },
        };
        if let Some(tap) = &mut tap {
            // Boxed: a session that is not recorded keeps no room for recording in its future.
            if let Err(e) = Box::pin(record_client_frame(tap, &out)).await {
                return CloseReason::Recording(e.to_string());
            }
        }
        let n = out.payload.len() as u64;
        shared.bytes_from_client.fetch_add(n, Ordering::Relaxed);
        config.bytes.client_to_cluster.inc_by(n);
        shared.data();
        if to_upstream.send(out, &shared.client).await.is_err() {
            return CloseReason::Upstream("stopped writing".into());
        }
    }
}

/// Feeds the recording with a client frame about to be forwarded: stdin (continuations only
/// occur inside stdin messages; resize and close messages arrive reassembled) and resizes.
async fn record_client_frame(
    tap: &mut RecordingTap,
    out: &Outgoing,
) -> Result<(), crate::recording::RecordingError> {
    if out.opcode == OpCode::Continuation {
        return tap.input(&out.payload).await;
    }
    match out.payload.split_first() {
        Some((&protocol::STDIN, data)) => tap.input(data).await,
        Some((&protocol::RESIZE, json)) => match protocol::parse_resize(json) {
            Ok(size) => tap.resize(size).await,
            Err(_) => Ok(()),
        },
        _ => Ok(()),
    }
}

/// kubectl sends a 0x0 resize when its terminal has no size (e.g. under `script`); the
/// kubelet ignores such resizes, so the relay drops them rather than ending the session.
fn unknown_size(e: &FrameError) -> bool {
    matches!(
        e,
        FrameError::BadResize(protocol::ResizeError::OutOfRange(w, h)) if *w == 0 || *h == 0
    )
}

fn protocol_error(why: &str) -> CloseReason {
    CloseReason::Protocol(why.into())
}

fn frame_error(e: FrameError) -> CloseReason {
    CloseReason::Protocol(e.to_string())
}

fn client_read_error(e: ReadError) -> CloseReason {
    match e {
        ReadError::TooLarge => CloseReason::FrameTooLarge,
        ReadError::Eof | ReadError::Io(_) => CloseReason::ClientGone(e.to_string()),
        ReadError::Protocol(why) => protocol_error(why),
    }
}

/// Cluster → client: everything passes; channel 3 is also read for the exit status.
pub(super) async fn from_upstream<S: AsyncRead>(
    rx: &mut Reader<S>,
    to_client: &Handoff,
    to_upstream: &Handoff,
    shared: &Shared,
    config: &RelayConfig,
) -> CloseReason {
    // The channel-3 message being collected, while it stays within MAX_STATUS_BYTES.
    let mut status: Option<BytesMut> = None;
    let mut in_message = false;
    let mut tap = config.recording.clone();
    // The channel of the message being relayed, for the recording of its continuations.
    let mut channel = None;
    loop {
        let out = match read(rx, &shared.upstream).await {
            Ok(out) => out,
            Err(ReadError::TooLarge) => {
                return CloseReason::Upstream("sent a frame over the limit".into());
            }
            Err(e) => return CloseReason::Upstream(format!("connection lost ({e})")),
        };
        shared.heard(&shared.upstream);
        match out.opcode {
            OpCode::Close => {
                return match close_code(&out.payload) {
                    1000 | 1005 => CloseReason::Exited,
                    code => CloseReason::Upstream(format!("closed with {code}")),
                };
            }
            OpCode::Ping => {
                to_upstream.pong(out.payload);
                continue;
            }
            OpCode::Pong => continue,
            OpCode::Binary | OpCode::Text => {
                in_message = !out.fin;
                status = (out.payload.first() == Some(&protocol::ERROR))
                    .then(|| BytesMut::from(&out.payload[1..]));
            }
            OpCode::Continuation => {
                if !in_message {
                    return CloseReason::Upstream("continuation without a message".into());
                }
                in_message = !out.fin;
                if let Some(buf) = &mut status {
                    buf.extend_from_slice(&out.payload);
                }
            }
        }
        if status.as_ref().is_some_and(|b| b.len() > MAX_STATUS_BYTES) {
            status = None;
        }
        if out.fin {
            if let Some(json) = status.take() {
                if let Ok(parsed) = serde_json::from_slice::<Status>(&json) {
                    if let Ok(mut seen) = shared.status.lock() {
                        *seen = Some(Box::new(parsed));
                    }
                }
            }
        }
        if let Some(tap) = &mut tap {
            let data = if out.opcode == OpCode::Continuation {
                &out.payload[..]
            } else {
                channel = out.payload.first().copied();
                out.payload.get(1..).unwrap_or_default()
            };
            if let Some(stream @ (protocol::STDOUT | protocol::STDERR)) = channel {
                if let Err(e) = Box::pin(tap.output(stream, data)).await {
                    return CloseReason::Recording(e.to_string());
                }
            }
        }
        let n = out.payload.len() as u64;
        shared.bytes_to_client.fetch_add(n, Ordering::Relaxed);
        config.bytes.cluster_to_client.inc_by(n);
        shared.data();
        if to_client.send(out, &shared.upstream).await.is_err() {
            return CloseReason::ClientGone("stopped reading".into());
        }
    }
}

/// Writes what the handoff brings, pings and pongs first; ends (returning the socket's writer)
/// once the handoff is closed and empty. Flushes whenever nothing is waiting.
pub(super) async fn writer<W: AsyncWrite + Unpin>(
    mut tx: FrameWriter<W>,
    handoff: &Handoff,
) -> std::io::Result<FrameWriter<W>> {
    while let Some(out) = handoff.next().await {
        tx.write(out).await?;
        if handoff.is_empty() {
            tx.flush().await?;
        }
    }
    tx.flush().await?;
    Ok(tx)
}

/// Pings both sockets every `ping_interval`; ends the session when a socket stopped
/// answering, after the idle timeout, or at the maximum duration. One timer, set to whichever
/// of the three comes first (a session holds one timer entry, not three).
pub(super) async fn watchdog(
    shared: &Shared,
    config: &RelayConfig,
    to_client: &Handoff,
    to_upstream: &Handoff,
) -> CloseReason {
    let start = shared.start;
    let deadline = start + config.max_duration;
    let silence = config.ping_interval * MISSED_PINGS;
    let mut next_ping = start + config.ping_interval;
    let timer = tokio::time::sleep_until(next_ping.min(deadline));
    tokio::pin!(timer);
    loop {
        let last_data = shared.last_data_ms.load(Ordering::Relaxed);
        let idle_deadline = start + Duration::from_millis(last_data) + config.idle_timeout;
        timer
            .as_mut()
            .reset(deadline.min(idle_deadline).min(next_ping));
        timer.as_mut().await;
        let now = Instant::now();
        if now >= deadline {
            return CloseReason::MaxDuration;
        }
        if now >= idle_deadline && shared.last_data_ms.load(Ordering::Relaxed) == last_data {
            return CloseReason::Idle;
        }
        if now >= next_ping {
            if shared.silent(&shared.client, silence) {
                return CloseReason::ClientGone("stopped answering pings".into());
            }
            if shared.silent(&shared.upstream, silence) {
                return CloseReason::Upstream("stopped answering pings".into());
            }
            to_client.ping();
            to_upstream.ping();
            // A late tick delays the next one rather than firing a burst.
            next_ping += config.ping_interval;
            if next_ping <= now {
                next_ping = now + config.ping_interval;
            }
        }
    }
}
