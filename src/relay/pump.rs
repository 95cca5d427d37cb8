//! The relay's moving parts: one reader per socket, one writer per socket, the watchdog.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use fastwebsockets::OpCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::frames::{FrameReader, FrameWriter, Outgoing, ReadError};
use super::handoff::{Batch, Handoff};
use super::{CloseReason, Leg, MAX_STATUS_BYTES, MISSED_PINGS, RelayConfig, Shared};
use crate::protocol::{self, Ended, FrameError, flow};
use crate::recording::RecordingTap;

/// Reads one frame (podterm answers pings and closes itself, through the writer). A close
/// frame or a failed read marks `leg` as read to its end.
pub(super) async fn read<S: AsyncRead + Unpin>(
    rx: &mut FrameReader<S>,
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

/// What becomes of one data frame from the client.
enum Verdict {
    Forward(Outgoing),
    /// Not forwarded (a piece of a message being reassembled, a 0x0 resize).
    Hold,
    /// A flow-control ack: output processed so far (kept by podterm).
    Ack(u64),
    End(CloseReason),
}

impl ClientMessage {
    /// Checks a binary, text or continuation frame against the message in progress.
    fn take(&mut self, out: Outgoing, config: &RelayConfig) -> Verdict {
        match out.opcode {
            OpCode::Continuation => self.continued(out, config.v5),
            _ => self.started(out, config),
        }
    }

    fn started(&mut self, out: Outgoing, config: &RelayConfig) -> Verdict {
        let v5 = config.v5;
        if !matches!(self, ClientMessage::None) {
            return Verdict::End(protocol_error("a new message inside a fragmented one"));
        }
        match out.payload.first() {
            Some(&flow::ACK) if config.flow => match (out.fin, flow::parse_ack(&out.payload)) {
                (true, Some(count)) => Verdict::Ack(count),
                _ => Verdict::End(protocol_error("a malformed flow-control ack")),
            },
            Some(&protocol::STDIN) => {
                if !out.fin {
                    *self = ClientMessage::Stdin;
                }
                Verdict::Forward(out)
            }
            Some(&protocol::RESIZE | &protocol::CLOSE) if !out.fin => {
                *self = ClientMessage::Small(out.payload);
                Verdict::Hold
            }
            _ => checked(out, v5),
        }
    }

    fn continued(&mut self, out: Outgoing, v5: bool) -> Verdict {
        match self {
            ClientMessage::None => Verdict::End(protocol_error("continuation without a message")),
            ClientMessage::Stdin => {
                if out.fin {
                    *self = ClientMessage::None;
                }
                Verdict::Forward(out)
            }
            ClientMessage::Small(buf) => {
                buf.extend_from_slice(&out.payload);
                if buf.len() > protocol::MAX_RESIZE_BYTES + 1 {
                    return Verdict::End(protocol_error("control message too large"));
                }
                if !out.fin {
                    return Verdict::Hold;
                }
                let whole = std::mem::take(buf);
                *self = ClientMessage::None;
                checked(Outgoing::new(true, OpCode::Binary, whole), v5)
            }
        }
    }
}

/// A whole resize or close message (or a frame of an unexpected channel), checked.
fn checked(out: Outgoing, v5: bool) -> Verdict {
    match protocol::check_client_frame(&out.payload, v5) {
        Ok(_) => Verdict::Forward(out),
        Err(e) if unknown_size(&e) => Verdict::Hold,
        Err(e) => Verdict::End(frame_error(e)),
    }
}

/// Client → cluster: only stdin, checked resizes and (v5) close pass; anything else ends the
/// session with 1008, a frame over the limit with 1009.
pub(super) async fn from_client<S: AsyncRead + Unpin>(
    rx: &mut FrameReader<S>,
    to_upstream: &Handoff,
    to_client: &Handoff,
    shared: &Shared,
    config: &RelayConfig,
) -> CloseReason {
    let mut message = ClientMessage::None;
    let mut tap = config.recording.clone();
    let mut copy = config.copy.as_ref().and_then(|c| c.tap(false));
    loop {
        let out = match read(rx, &shared.client).await {
            Ok(out) => out,
            Err(e) => return client_read_error(e),
        };
        let heard = shared.heard(&shared.client);
        let out = match out.opcode {
            OpCode::Close => return CloseReason::ClientClosed(close_code(&out.payload)),
            OpCode::Ping => {
                to_client.pong(out.payload);
                continue;
            }
            OpCode::Pong => continue,
            // Python's client sends str stdin as text frames; the API server takes both.
            _ => match message.take(out, config) {
                Verdict::Forward(out) => out,
                Verdict::Hold => continue,
                Verdict::Ack(count) => match shared.flow.as_ref().map(|f| f.acked(count)) {
                    Some(Ok(())) => {
                        if let Some(kept) = &shared.kept {
                            kept.acked(count);
                        }
                        continue;
                    }
                    _ => return protocol_error("a flow-control ack for more than was sent"),
                },
                Verdict::End(why) => return why,
            },
        };
        if let Some(copy) = &mut copy
            && let Some(data) = stdin_of(&out)
            && let Err(why) = copy.feed(data)
        {
            return CloseReason::Refused(why);
        }
        if let Some(tap) = &mut tap {
            // Boxed: a session that is not recorded keeps no room for recording in its future.
            if let Err(e) = Box::pin(record_client_frame(tap, &out)).await {
                return CloseReason::Recording(e.to_string());
            }
        }
        if let Some(kept) = &shared.kept {
            kept.received(&out);
        }
        let n = out.payload.len() as u64;
        shared.bytes.from_client.fetch_add(n, Ordering::Relaxed);
        config.bytes.client_to_cluster.inc_by(n);
        shared.data(heard);
        if to_upstream.send(out, &shared.client).await.is_err() {
            return CloseReason::Upstream("stopped writing".into());
        }
    }
}

/// The stdin bytes of a client frame about to be forwarded (continuations only occur inside
/// stdin messages).
fn stdin_of(out: &Outgoing) -> Option<&[u8]> {
    if out.opcode == OpCode::Continuation {
        return Some(&out.payload);
    }
    match out.payload.split_first() {
        Some((&protocol::STDIN, data)) => Some(data),
        _ => None,
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

/// The cluster's message in progress: its channel (for the recording of continuations) and,
/// on channel 3, its text while it stays within `MAX_STATUS_BYTES`.
#[derive(Default)]
struct UpstreamMessage {
    in_message: bool,
    channel: Option<u8>,
    status: Option<BytesMut>,
}

impl UpstreamMessage {
    /// Follows a binary, text or continuation frame; a finished channel-3 message that parses
    /// becomes the session's `Status`. Returns the frame's channel (`None` for an empty
    /// message) and data.
    fn track<'a>(
        &mut self,
        out: &'a Outgoing,
        shared: &Shared,
    ) -> Result<(Option<u8>, &'a [u8]), CloseReason> {
        let data = if out.opcode == OpCode::Continuation {
            if !self.in_message {
                return Err(CloseReason::Upstream(
                    "continuation without a message".into(),
                ));
            }
            if let Some(buf) = &mut self.status {
                buf.extend_from_slice(&out.payload);
            }
            if out.fin {
                if let Some(json) = self.status.take() {
                    read_status(&json, shared);
                }
            } else if self
                .status
                .as_ref()
                .is_some_and(|b| b.len() > MAX_STATUS_BYTES)
            {
                self.status = None;
            }
            &out.payload[..]
        } else {
            self.channel = out.payload.first().copied();
            let data = out.payload.get(1..).unwrap_or_default();
            // A status in one frame (as the API server sends it) is read where it lies.
            self.status = None;
            if self.channel == Some(protocol::ERROR) {
                if out.fin {
                    read_status(data, shared);
                } else if data.len() <= MAX_STATUS_BYTES {
                    self.status = Some(BytesMut::from(data));
                }
            }
            data
        };
        self.in_message = !out.fin;
        Ok((self.channel, data))
    }
}

/// A whole channel-3 message: what it says of the command, when it is a `Status` within
/// [`MAX_STATUS_BYTES`].
fn read_status(json: &[u8], shared: &Shared) {
    if json.len() > MAX_STATUS_BYTES {
        return;
    }
    if let (Some(ended), Ok(mut seen)) = (Ended::read(json), shared.ended.lock()) {
        *seen = Some(ended);
    }
}

/// Cluster → client: everything passes; channel 3 is also read for the exit status.
pub(super) async fn from_upstream<S: AsyncRead + Unpin>(
    rx: &mut FrameReader<S>,
    to_client: &Handoff,
    to_upstream: &Handoff,
    shared: &Shared,
    config: &RelayConfig,
) -> CloseReason {
    let mut message = UpstreamMessage::default();
    let mut tap = config.recording.clone();
    let mut copy = config.copy.as_ref().and_then(|c| c.tap(true));
    loop {
        if let Some(flow) = &shared.flow {
            flow.room(&shared.upstream).await;
        }
        let out = match read(rx, &shared.upstream).await {
            Ok(out) => out,
            Err(ReadError::TooLarge) => {
                return CloseReason::Upstream("sent a frame over the limit".into());
            }
            Err(e) => return CloseReason::Upstream(format!("connection lost ({e})")),
        };
        let heard = shared.heard(&shared.upstream);
        match out.opcode {
            OpCode::Close => return upstream_closed(&out.payload),
            OpCode::Ping => {
                to_upstream.pong(out.payload);
                continue;
            }
            OpCode::Pong => continue,
            _ => {}
        }
        let (channel, data) = match message.track(&out, shared) {
            Ok(tracked) => tracked,
            Err(why) => return why,
        };
        if let (Some(copy), Some(protocol::STDOUT)) = (&mut copy, channel)
            && let Err(why) = copy.feed(data)
        {
            return CloseReason::Refused(why);
        }
        if let Some(stream @ (protocol::STDOUT | protocol::STDERR)) = channel {
            if let Some(flow) = &shared.flow {
                flow.sent(data.len());
            }
            if let Some(tap) = &mut tap {
                if let Err(e) = Box::pin(tap.output(stream, data)).await {
                    return CloseReason::Recording(e.to_string());
                }
            }
        }
        let n = out.payload.len() as u64;
        shared.bytes.to_client.fetch_add(n, Ordering::Relaxed);
        config.bytes.cluster_to_client.inc_by(n);
        shared.data(heard);
        if let Some(kept) = &shared.kept {
            // A session that outlives its connection keeps output until it is acknowledged
            // (bounded by the flow control above), for whichever connection is attached.
            kept.push(channel, out);
            continue;
        }
        if to_client.send(out, &shared.upstream).await.is_err() {
            return CloseReason::ClientGone("stopped reading".into());
        }
    }
}

/// The cluster's close frame: a normal close is the command's end.
fn upstream_closed(payload: &[u8]) -> CloseReason {
    match close_code(payload) {
        1000 | 1005 => CloseReason::Exited,
        code => CloseReason::Upstream(format!("closed with {code}")),
    }
}

/// Writes what the handoff brings, pings and pongs first; ends (returning the socket's writer)
/// once the handoff is closed and empty. Flushes whenever nothing is waiting.
pub(super) async fn writer<W: AsyncWrite + Unpin>(
    mut tx: FrameWriter<W>,
    handoff: &Handoff,
) -> std::io::Result<FrameWriter<W>> {
    while let Some(batch) = handoff.next().await {
        match batch {
            Batch::Empty => {}
            Batch::One(out) => tx.write(out).await?,
            Batch::Many(mut frames) => tx.write_frames(frames.as_mut_slice()).await?,
        }
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
///
/// A socket that carried frames both ways since the last tick is not pinged: it is alive, and
/// neither it nor anything between (a load balancer's idle timer, nginx's
/// `proxy_read_timeout`, which counts one direction) is idle. This is gRPC's keepalive rule
/// (a ping only after a period without activity, grpc/proposal A8-client-side-keepalive.md)
/// held to both directions. A busy session then sends no pings at all; a socket whose traffic
/// goes one way only, or none, is pinged every tick as before, so the silence limit
/// (`MISSED_PINGS` intervals) still finds a dead peer.
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
    // When the last tick was, in `Shared::now_ms`'s milliseconds.
    let mut last_tick_ms = 0;
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
            for (leg, handoff) in [(&shared.client, to_client), (&shared.upstream, to_upstream)] {
                let both_ways = handoff.take_traffic() & shared.heard_since(leg, last_tick_ms);
                if !both_ways {
                    handoff.ping();
                }
            }
            last_tick_ms = shared.now_ms();
            // A late tick delays the next one rather than firing a burst.
            next_ping += config.ping_interval;
            if next_ping <= now {
                next_ping = now + config.ping_interval;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(flow: bool) -> RelayConfig {
        RelayConfig {
            flow,
            ..RelayConfig::for_tests()
        }
    }

    fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Outgoing {
        Outgoing::new(fin, opcode, BytesMut::from(payload))
    }

    fn forwarded(v: Verdict) -> Vec<u8> {
        match v {
            Verdict::Forward(out) => out.payload.to_vec(),
            Verdict::Hold => panic!("held"),
            Verdict::Ack(n) => panic!("an ack of {n}"),
            Verdict::End(why) => panic!("ended: {why:?}"),
        }
    }

    #[test]
    fn a_resize_in_pieces_is_held_then_checked_whole() {
        let mut m = ClientMessage::None;
        let resize = b"\x04{\"Width\":80,\"Height\":24}";
        let (a, b) = resize.split_at(9);
        assert!(matches!(
            m.take(frame(false, OpCode::Binary, a), &config(false)),
            Verdict::Hold
        ));
        assert_eq!(
            forwarded(m.take(frame(true, OpCode::Continuation, b), &config(false))),
            resize
        );
        assert!(matches!(m, ClientMessage::None));
        // A 0x0 resize is dropped, a bad one ends the session.
        assert!(matches!(
            m.take(
                frame(true, OpCode::Binary, b"\x04{\"Width\":0,\"Height\":0}"),
                &config(false)
            ),
            Verdict::Hold
        ));
        assert!(matches!(
            m.take(frame(true, OpCode::Binary, b"\x04{"), &config(false)),
            Verdict::End(CloseReason::Protocol(_))
        ));
    }

    #[test]
    fn acks_are_taken_only_with_flow_control_and_only_whole() {
        let ack = flow::ack_frame(42);
        let mut m = ClientMessage::None;
        assert!(matches!(
            m.take(frame(true, OpCode::Binary, &ack), &config(true)),
            Verdict::Ack(42)
        ));
        assert!(matches!(
            m.take(frame(true, OpCode::Binary, &ack), &config(false)),
            Verdict::End(CloseReason::Protocol(_))
        ));
        assert!(matches!(
            m.take(frame(true, OpCode::Binary, &ack[..5]), &config(true)),
            Verdict::End(CloseReason::Protocol(_))
        ));
        assert!(matches!(
            m.take(frame(false, OpCode::Binary, &ack), &config(true)),
            Verdict::End(CloseReason::Protocol(_))
        ));
    }

    #[test]
    fn stdin_continues_and_nothing_interleaves() {
        let mut m = ClientMessage::None;
        assert_eq!(
            forwarded(m.take(frame(false, OpCode::Binary, b"\0ab"), &config(false))),
            b"\0ab"
        );
        assert!(matches!(
            m.take(frame(true, OpCode::Binary, b"\0x"), &config(false)),
            Verdict::End(CloseReason::Protocol(_))
        ));
        let mut m = ClientMessage::Stdin;
        assert_eq!(
            forwarded(m.take(frame(true, OpCode::Continuation, b"cd"), &config(false))),
            b"cd"
        );
        assert!(matches!(
            m.take(frame(true, OpCode::Continuation, b"ef"), &config(false)),
            Verdict::End(CloseReason::Protocol(_))
        ));
        let mut m = ClientMessage::None;
        assert!(matches!(
            m.take(frame(true, OpCode::Binary, b"\x01out"), &config(false)),
            Verdict::End(CloseReason::Protocol(_))
        ));
    }

    #[test]
    fn a_status_in_one_frame_is_read_and_the_last_one_counts() {
        let shared = Shared::new(&config(false));
        let mut m = UpstreamMessage::default();
        let mut frame3 = vec![protocol::ERROR];
        frame3.extend_from_slice(&protocol::Status::exit(5).to_json());
        let out = frame(true, OpCode::Binary, &frame3);
        assert_eq!(
            m.track(&out, &shared).unwrap(),
            (Some(protocol::ERROR), &frame3[1..])
        );
        let failed = [
            &[protocol::ERROR][..],
            br#"{"status":"Failure","message":"gone"}"#,
        ]
        .concat();
        let out = frame(true, OpCode::Binary, &failed);
        m.track(&out, &shared).unwrap();
        let summary = shared.summary(CloseReason::Exited);
        assert_eq!(summary.exit_code, None);
        assert_eq!(summary.status_message.as_deref(), Some("gone"));
    }

    #[test]
    fn a_status_over_the_limit_is_passed_on_but_not_read() {
        let json = format!(
            r#"{{"status":"Success","message":"{}"}}"#,
            "x".repeat(MAX_STATUS_BYTES)
        );
        let (a, b) = json.as_bytes().split_at(10);
        for pieces in [vec![json.as_bytes()], vec![a, b]] {
            let shared = Shared::new(&config(false));
            let mut m = UpstreamMessage::default();
            for (i, piece) in pieces.iter().enumerate() {
                let fin = i + 1 == pieces.len();
                let out = if i == 0 {
                    let mut first = vec![protocol::ERROR];
                    first.extend_from_slice(piece);
                    frame(fin, OpCode::Binary, &first)
                } else {
                    frame(fin, OpCode::Continuation, piece)
                };
                assert_eq!(
                    m.track(&out, &shared).unwrap(),
                    (Some(protocol::ERROR), *piece)
                );
            }
            let summary = shared.summary(CloseReason::Exited);
            assert_eq!((summary.exit_code, summary.status_message), (None, None));
        }
    }

    #[test]
    fn a_status_in_pieces_is_read_whole_and_other_channels_pass() {
        let shared = Shared::new(&config(false));
        let mut m = UpstreamMessage::default();
        let json = br#"{"metadata":{},"status":"Success"}"#;
        let (a, b) = json.split_at(10);
        let mut first = vec![protocol::ERROR];
        first.extend_from_slice(a);
        let out = frame(false, OpCode::Binary, &first);
        assert_eq!(m.track(&out, &shared).unwrap(), (Some(protocol::ERROR), a));
        let out = frame(true, OpCode::Continuation, b);
        assert_eq!(m.track(&out, &shared).unwrap(), (Some(protocol::ERROR), b));
        assert_eq!(shared.summary(CloseReason::Exited).exit_code, Some(0));
        let out = frame(false, OpCode::Binary, b"\x02err");
        assert_eq!(
            m.track(&out, &shared).unwrap(),
            (Some(protocol::STDERR), &b"err"[..])
        );
        let out = frame(true, OpCode::Continuation, b"more");
        assert_eq!(
            m.track(&out, &shared).unwrap(),
            (Some(protocol::STDERR), &b"more"[..])
        );
        let out = frame(true, OpCode::Continuation, b"stray");
        assert!(m.track(&out, &shared).is_err());
    }
}
