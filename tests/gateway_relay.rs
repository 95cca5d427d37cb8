//! The relay over `tokio::io::duplex` pipes with tiny buffers: channels, close codes,
//! backpressure, timers, fragments — no hyper, no kube.

#[path = "support/relay.rs"]
mod support;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use podterm::protocol::{self, Status};
use podterm::relay::{CloseReason, RelayConfig, Summary, relay};
use tokio::io::DuplexStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Pipe buffer size in bytes: small, so that every frame crosses in pieces.
const PIPE_BYTES: usize = 64;

fn config() -> RelayConfig {
    support::relay_config()
}

/// The client's socket, the cluster's socket, the relay task and its shutdown trigger.
struct Session {
    client: WebSocket<DuplexStream>,
    cluster: WebSocket<DuplexStream>,
    relay: JoinHandle<Summary>,
    shutdown: Option<oneshot::Sender<()>>,
}

fn start(config: RelayConfig) -> Session {
    let (client_end, gateway_client_end) = tokio::io::duplex(PIPE_BYTES);
    let (gateway_cluster_end, cluster_end) = tokio::io::duplex(PIPE_BYTES);
    let (shutdown, stop) = oneshot::channel::<()>();
    let relay = tokio::spawn(async move {
        relay(gateway_client_end, gateway_cluster_end, &config, async {
            let _ = stop.await;
        })
        .await
    });
    let mut client = WebSocket::after_handshake(client_end, Role::Client);
    client.set_auto_close(false);
    let mut cluster = WebSocket::after_handshake(cluster_end, Role::Server);
    cluster.set_auto_close(false);
    Session {
        client,
        cluster,
        relay,
        shutdown: Some(shutdown),
    }
}

fn binary(bytes: &[u8]) -> Frame<'static> {
    Frame::binary(Payload::Owned(bytes.to_vec()))
}

/// The next data frame (binary), or the close code, skipping pings; a close frame is answered
/// (when the socket is still open) as a real peer does.
async fn next(ws: &mut WebSocket<DuplexStream>) -> Result<Vec<u8>, u16> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.read_frame())
            .await
            .expect("a frame within 10 s")
            .map_err(|e| panic!("read failed: {e}"))
            .unwrap();
        match frame.opcode {
            OpCode::Binary => return Ok(frame.payload.to_vec()),
            OpCode::Close => {
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                let _ = ws.write_frame(Frame::close(code, b"")).await;
                return Err(code);
            }
            OpCode::Ping | OpCode::Pong => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn summary(s: Session) -> Summary {
    tokio::time::timeout(Duration::from_secs(10), s.relay)
        .await
        .expect("relay ends within 10 s")
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn frames_pass_with_their_channel_and_the_exit_status_closes_with_1000() {
    let mut s = start(config());
    s.client.write_frame(binary(b"\0echo hi\n")).await.unwrap();
    assert_eq!(next(&mut s.cluster).await, Ok(b"\0echo hi\n".to_vec()));
    s.client
        .write_frame(binary(b"\x04{\"Width\":80,\"Height\":24}"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut s.cluster).await,
        Ok(b"\x04{\"Width\":80,\"Height\":24}".to_vec())
    );
    s.client.write_frame(binary(&[255, 0])).await.unwrap();
    assert_eq!(next(&mut s.cluster).await, Ok(vec![255, 0]));

    s.cluster.write_frame(binary(b"\x01hi\r\n")).await.unwrap();
    s.cluster.write_frame(binary(b"\x02oops")).await.unwrap();
    let status = Status::exit(3).to_error_frame();
    s.cluster.write_frame(binary(&status)).await.unwrap();
    s.cluster
        .write_frame(Frame::close(1000, b""))
        .await
        .unwrap();

    assert_eq!(next(&mut s.client).await, Ok(b"\x01hi\r\n".to_vec()));
    assert_eq!(next(&mut s.client).await, Ok(b"\x02oops".to_vec()));
    assert_eq!(next(&mut s.client).await, Ok(status.clone()));
    assert_eq!(next(&mut s.client).await, Err(1000));
    assert_eq!(next(&mut s.cluster).await, Err(1000));
    let sum = summary(s).await;
    assert_eq!(sum.close, CloseReason::Exited);
    assert_eq!(sum.exit_code, Some(3));
    assert_eq!(sum.bytes_from_client, 9 + 25 + 2);
    assert_eq!(sum.bytes_to_client, 5 + 5 + status.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn a_client_may_not_send_output_channels() {
    for bad in [
        &b"\x01stdout"[..],
        b"\x03{}",
        b"\x09x",
        b"",
        b"\x04{\"Width\":10001,\"Height\":1}",
        b"\x04not json",
    ] {
        let mut s = start(config());
        s.client.write_frame(binary(bad)).await.unwrap();
        assert_eq!(next(&mut s.client).await, Err(1008), "{bad:?}");
        assert_eq!(next(&mut s.cluster).await, Err(1000), "{bad:?}");
        assert!(matches!(summary(s).await.close, CloseReason::Protocol(_)));
    }
}

/// Regression: kubectl under `script` (no terminal size) sends a 0x0 resize; it must not end
/// the session (the kubelet ignores it), so the relay drops it.
#[tokio::test(start_paused = true)]
async fn zero_sized_resizes_are_dropped_not_fatal() {
    let mut s = start(config());
    s.client
        .write_frame(binary(b"\x04{\"Width\":0,\"Height\":0}"))
        .await
        .unwrap();
    s.client.write_frame(binary(b"\0after")).await.unwrap();
    assert_eq!(next(&mut s.cluster).await, Ok(b"\0after".to_vec()));
}

#[tokio::test(start_paused = true)]
async fn close_channel_needs_v5() {
    let mut s = start(RelayConfig {
        v5: false,
        ..config()
    });
    s.client.write_frame(binary(&[255, 0])).await.unwrap();
    assert_eq!(next(&mut s.client).await, Err(1008));
}

/// Regression: Python's `kubernetes` client sends `str` stdin as text frames, which the API
/// server accepts; the relay passes them (channels checked as for binary frames).
#[tokio::test(start_paused = true)]
async fn text_frames_pass_as_text_and_are_checked_the_same() {
    let mut s = start(config());
    s.client
        .write_frame(Frame::text(Payload::Owned(b"\0ping\n".to_vec())))
        .await
        .unwrap();
    let frame = s.cluster.read_frame().await.unwrap();
    assert_eq!(
        (frame.opcode, &frame.payload[..]),
        (OpCode::Text, &b"\0ping\n"[..])
    );
    s.client
        .write_frame(Frame::text(Payload::Owned(b"\x01out".to_vec())))
        .await
        .unwrap();
    assert_eq!(next(&mut s.client).await, Err(1008));
}

#[tokio::test(start_paused = true)]
async fn a_frame_over_the_limit_closes_with_1009() {
    let mut s = start(config());
    let mut big = vec![b'x'; 4097];
    big[0] = protocol::STDIN;
    // The relay refuses the frame on its header and hangs up: the write may fail midway.
    let _ = s.client.write_frame(binary(&big)).await;
    assert_eq!(next(&mut s.client).await, Err(1009));
    assert_eq!(summary(s).await.close, CloseReason::FrameTooLarge);
}

#[tokio::test(start_paused = true)]
async fn a_frame_at_the_limit_passes() {
    let mut s = start(config());
    let mut big = vec![b'x'; 4096];
    big[0] = protocol::STDIN;
    s.client.write_frame(binary(&big)).await.unwrap();
    assert_eq!(next(&mut s.cluster).await, Ok(big));
}

#[tokio::test(start_paused = true)]
async fn fragmented_messages_pass_and_resizes_are_reassembled() {
    let mut s = start(config());
    let frag =
        |fin, opcode, bytes: &[u8]| Frame::new(fin, opcode, None, Payload::Owned(bytes.to_vec()));
    s.client
        .write_frame(frag(false, OpCode::Binary, b"\0ab"))
        .await
        .unwrap();
    s.client
        .write_frame(frag(true, OpCode::Continuation, b"cd"))
        .await
        .unwrap();
    s.client
        .write_frame(frag(false, OpCode::Binary, b"\x04{\"Width\":"))
        .await
        .unwrap();
    s.client
        .write_frame(frag(true, OpCode::Continuation, b"9,\"Height\":7}"))
        .await
        .unwrap();
    // Fragments pass as fragments (no reassembly of stdin).
    let first = s.cluster.read_frame().await.unwrap();
    assert_eq!(
        (first.fin, first.opcode, &first.payload[..]),
        (false, OpCode::Binary, &b"\0ab"[..])
    );
    let second = s.cluster.read_frame().await.unwrap();
    assert_eq!(
        (second.fin, second.opcode, &second.payload[..]),
        (true, OpCode::Continuation, &b"cd"[..])
    );
    assert_eq!(
        next(&mut s.cluster).await,
        Ok(b"\x04{\"Width\":9,\"Height\":7}".to_vec())
    );
    s.client
        .write_frame(frag(true, OpCode::Continuation, b"x"))
        .await
        .unwrap();
    assert_eq!(next(&mut s.client).await, Err(1008));
}

#[tokio::test(start_paused = true)]
async fn client_close_is_echoed_and_ends_the_exec() {
    let mut s = start(config());
    s.client
        .write_frame(Frame::close(1000, b"bye"))
        .await
        .unwrap();
    assert_eq!(next(&mut s.client).await, Err(1000));
    assert_eq!(next(&mut s.cluster).await, Err(1000));
    assert_eq!(summary(s).await.close, CloseReason::ClientClosed(1000));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_vanishes_ends_the_upstream_at_once() {
    let mut s = start(config());
    s.client.write_frame(binary(b"\0x")).await.unwrap();
    assert_eq!(next(&mut s.cluster).await, Ok(b"\0x".to_vec()));
    drop(s.client);
    assert_eq!(next(&mut s.cluster).await, Err(1001));
    let sum = tokio::time::timeout(Duration::from_secs(5), s.relay)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(sum.close, CloseReason::ClientGone(_)),
        "{:?}",
        sum.close
    );
}

#[tokio::test(start_paused = true)]
async fn an_upstream_that_dies_gives_the_client_1011() {
    let mut s = start(config());
    s.cluster.write_frame(binary(b"\x01partial")).await.unwrap();
    drop(s.cluster);
    assert_eq!(next(&mut s.client).await, Ok(b"\x01partial".to_vec()));
    assert_eq!(next(&mut s.client).await, Err(1011));
    let sum = tokio::time::timeout(Duration::from_secs(5), s.relay)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(sum.close, CloseReason::Upstream(_)),
        "{:?}",
        sum.close
    );
}

#[tokio::test(start_paused = true)]
async fn an_abnormal_upstream_close_gives_the_client_1011() {
    let mut s = start(config());
    s.cluster
        .write_frame(Frame::close(1011, b"kubelet gone"))
        .await
        .unwrap();
    assert_eq!(next(&mut s.client).await, Err(1011));
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_both_sides_with_1001() {
    let mut s = start(config());
    s.shutdown.take().unwrap().send(()).unwrap();
    assert_eq!(next(&mut s.client).await, Err(1001));
    assert_eq!(next(&mut s.cluster).await, Err(1001));
    assert_eq!(summary(s).await.close, CloseReason::Shutdown);
}

/// A shutdown while a closing handshake waits for the client's answer ends the wait at once,
/// not after `CLOSE_GRACE` (time is paused: the runtime would jump to the grace's end).
#[tokio::test(start_paused = true)]
async fn a_shutdown_during_the_closing_handshake_cuts_it_short() {
    let mut s = start(config());
    let status = Status::exit(0).to_error_frame();
    s.cluster.write_frame(binary(&status)).await.unwrap();
    s.cluster
        .write_frame(Frame::close(1000, b""))
        .await
        .unwrap();
    assert_eq!(next(&mut s.cluster).await, Err(1000));
    assert_eq!(next_opcode(&mut s.client).await, OpCode::Binary);
    // The relay's close, not answered: the client leg's handshake waits.
    assert_eq!(next_opcode(&mut s.client).await, OpCode::Close);
    let asked = tokio::time::Instant::now();
    s.shutdown.take().unwrap().send(()).unwrap();
    let sum = s.relay.await.unwrap();
    assert_eq!(sum.close, CloseReason::Exited);
    assert!(
        asked.elapsed() < podterm::relay::CLOSE_GRACE,
        "the handshake ran on for {:?} after the shutdown",
        asked.elapsed()
    );
}

/// The opcode of the next frame as it came, answering nothing.
async fn next_opcode(ws: &mut WebSocket<DuplexStream>) -> OpCode {
    ws.read_frame().await.unwrap().opcode
}

#[tokio::test(start_paused = true)]
async fn both_legs_are_pinged_and_idle_sessions_end() {
    let s = start(RelayConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(550),
        ..config()
    });
    // Both peers answer pings until the idle timeout closes the session.
    async fn count_pings(mut ws: WebSocket<DuplexStream>) -> (usize, u16) {
        ws.set_auto_pong(false);
        let mut pings = 0;
        loop {
            let f = ws.read_frame().await.unwrap();
            match f.opcode {
                OpCode::Ping => {
                    pings += 1;
                    ws.write_frame(Frame::pong(f.payload)).await.unwrap();
                }
                OpCode::Close => return (pings, u16::from_be_bytes([f.payload[0], f.payload[1]])),
                _ => {}
            }
        }
    }
    let client = tokio::spawn(count_pings(s.client));
    let (pings, code) = count_pings(s.cluster).await;
    assert_eq!(code, 1000);
    assert!(pings >= 3, "cluster got {pings} pings");
    let (client_pings, client_code) = client.await.unwrap();
    assert!(client_pings >= 3, "client got {client_pings} pings");
    assert_eq!(client_code, 1008);
    assert_eq!(s.relay.await.unwrap().close, CloseReason::Idle);
}

#[tokio::test(start_paused = true)]
async fn sessions_end_at_the_maximum_duration_even_when_busy() {
    let mut s = start(RelayConfig {
        max_duration: Duration::from_millis(300),
        ..config()
    });
    let code = loop {
        s.client.write_frame(binary(b"\0k")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        match tokio::time::timeout(Duration::from_millis(1), s.client.read_frame()).await {
            Ok(Ok(f)) if f.opcode == OpCode::Close => {
                break u16::from_be_bytes([f.payload[0], f.payload[1]]);
            }
            _ => {}
        }
    };
    assert_eq!(code, 1008);
    drop(s.cluster);
    assert_eq!(s.relay.await.unwrap().close, CloseReason::MaxDuration);
}

/// The cluster's side of the keepalive tests: answers pings and counts them into `pings`;
/// echoes stdin as stdout when `echo`, else only reads it. Ends at the close frame.
async fn cluster_peer(mut ws: WebSocket<DuplexStream>, echo: bool, pings: Arc<AtomicUsize>) {
    ws.set_auto_pong(false);
    loop {
        let f = ws.read_frame().await.unwrap();
        match f.opcode {
            OpCode::Ping => {
                pings.fetch_add(1, Ordering::Relaxed);
                ws.write_frame(Frame::pong(f.payload)).await.unwrap();
            }
            OpCode::Binary if echo => {
                let mut out = f.payload.to_vec();
                out[0] = protocol::STDOUT;
                ws.write_frame(binary(&out)).await.unwrap();
            }
            OpCode::Close => {
                let _ = ws.write_frame(Frame::close(1000, b"")).await;
                return;
            }
            _ => {}
        }
    }
}

/// The client types a keystroke every 20 ms for `ms`, answering pings and counting them;
/// waits for each echo when `echo`.
async fn type_for(ws: &mut WebSocket<DuplexStream>, ms: u64, echo: bool) -> usize {
    ws.set_auto_pong(false);
    let mut pings = 0;
    let end = tokio::time::Instant::now() + Duration::from_millis(ms);
    while tokio::time::Instant::now() < end {
        ws.write_frame(binary(b"\0k")).await.unwrap();
        let until = tokio::time::Instant::now() + Duration::from_millis(20);
        let mut echoed = !echo;
        loop {
            let read = if echoed {
                match tokio::time::timeout_at(until, ws.read_frame()).await {
                    Ok(read) => read,
                    Err(_) => break,
                }
            } else {
                ws.read_frame().await
            };
            let f = read.unwrap();
            match f.opcode {
                OpCode::Ping => {
                    pings += 1;
                    ws.write_frame(Frame::pong(f.payload)).await.unwrap();
                }
                OpCode::Binary => {
                    assert_eq!(&f.payload[..], b"\x01k");
                    echoed = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    pings
}

/// A session pinged every 100 ms, its cluster side played by [`cluster_peer`].
struct Pinged {
    client: WebSocket<DuplexStream>,
    shutdown: oneshot::Sender<()>,
    relay: JoinHandle<Summary>,
    cluster: JoinHandle<()>,
    cluster_pings: Arc<AtomicUsize>,
}

impl Pinged {
    /// `echo`: the cluster echoes stdin as stdout, else it only reads it.
    fn start(echo: bool) -> Pinged {
        let s = start(RelayConfig {
            ping_interval: Duration::from_millis(100),
            ..config()
        });
        let cluster_pings = Arc::new(AtomicUsize::new(0));
        let cluster = tokio::spawn(cluster_peer(s.cluster, echo, cluster_pings.clone()));
        Pinged {
            client: s.client,
            shutdown: s.shutdown.expect("not shut down yet"),
            relay: s.relay,
            cluster,
            cluster_pings,
        }
    }

    fn cluster_pings(&self) -> usize {
        self.cluster_pings.load(Ordering::Relaxed)
    }

    /// Shuts the session down (the client gets 1001, the cluster's side ends at its close).
    async fn shut_down(mut self) -> Summary {
        self.shutdown.send(()).unwrap();
        assert_eq!(next(&mut self.client).await, Err(1001));
        self.cluster.await.unwrap();
        self.relay.await.unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_busy_both_ways_is_not_pinged_until_it_goes_quiet() {
    let mut s = Pinged::start(true);
    // Ten ticks with a keystroke and its echo every 20 ms: no pings either way.
    let client_pings = type_for(&mut s.client, 1000, true).await;
    assert_eq!(client_pings, 0, "the client was pinged while busy");
    assert_eq!(s.cluster_pings(), 0, "the cluster was pinged while busy");
    // Quiet for 300 ms: both are pinged again.
    let mut quiet_pings = 0;
    let quiet = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(f) = tokio::time::timeout_at(quiet, s.client.read_frame()).await {
        let f = f.unwrap();
        assert_eq!(f.opcode, OpCode::Ping);
        quiet_pings += 1;
        s.client.write_frame(Frame::pong(f.payload)).await.unwrap();
    }
    assert!(quiet_pings >= 2, "the quiet client got {quiet_pings} pings");
    assert!(s.cluster_pings() >= 2);
    assert_eq!(s.shut_down().await.close, CloseReason::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn traffic_one_way_keeps_the_pings_for_the_quiet_direction() {
    // The cluster reads stdin and sends nothing back but pongs.
    let mut s = Pinged::start(false);
    let client_pings = type_for(&mut s.client, 1000, false).await;
    // Nothing went to the client: every tick pings it (a proxy before podterm that times out
    // reads from podterm must see something).
    assert!(client_pings >= 8, "the client got {client_pings} pings");
    // The cluster is written to but heard only in pongs: pinged at least every other tick.
    let cluster_pings = s.cluster_pings();
    assert!(cluster_pings >= 4, "the cluster got {cluster_pings} pings");
    assert_eq!(s.shut_down().await.close, CloseReason::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn a_silent_cluster_is_dropped_with_1011() {
    let mut s = start(RelayConfig {
        ping_interval: Duration::from_millis(100),
        ..config()
    });
    // The cluster socket is never read: no pongs come back.
    let _cluster = s.cluster;
    assert_eq!(next(&mut s.client).await, Err(1011));
}

/// With tiny pipes, a client that does not read holds the cluster's writes to a few frames.
#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_stops_the_relay_reading_the_cluster() {
    let mut s = start(config());
    const FRAME: usize = 1024;
    const FRAMES: usize = 2000;
    let (written_tx, mut written_rx) = tokio::sync::watch::channel(0usize);
    let mut cluster = s.cluster;
    let flood = tokio::spawn(async move {
        let mut payload = vec![b'y'; FRAME];
        payload[0] = protocol::STDOUT;
        for i in 0..FRAMES {
            cluster.write_frame(binary(&payload)).await.unwrap();
            let _ = written_tx.send(i + 1);
        }
        cluster
            .write_frame(binary(&Status::exit(0).to_error_frame()))
            .await
            .unwrap();
        cluster.write_frame(Frame::close(1000, b"")).await.unwrap();
        cluster
    });
    // Let the flood run into the wall, then check how far it got. Time is paused: it moves
    // only when every task waits, so the timeout firing proves the flood is blocked.
    loop {
        let before = *written_rx.borrow_and_update();
        if tokio::time::timeout(Duration::from_millis(200), written_rx.changed())
            .await
            .is_err()
        {
            assert!(
                before < 64,
                "the cluster wrote {before} frames with nobody reading"
            );
            break;
        }
    }
    // Reading resumes: everything arrives, in order, then the exit status and 1000.
    let mut got = 0;
    loop {
        match next(&mut s.client).await {
            Ok(f) if f[0] == protocol::STDOUT => {
                assert_eq!(f.len(), FRAME);
                got += 1;
            }
            Ok(f) => assert_eq!(f[0], protocol::ERROR),
            Err(code) => {
                assert_eq!(code, 1000);
                break;
            }
        }
    }
    assert_eq!(got, FRAMES);
    let _cluster = flood.await.unwrap();
    let sum = tokio::time::timeout(Duration::from_secs(10), s.relay)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sum.exit_code, Some(0));
    assert_eq!(
        sum.bytes_to_client as usize,
        FRAMES * FRAME + Status::exit(0).to_error_frame().len()
    );
}

/// With tiny pipes, a cluster that does not read stdin holds the client's writes.
#[tokio::test(start_paused = true)]
async fn a_cluster_that_does_not_read_stops_the_relay_reading_the_client() {
    let s = start(config());
    let mut client = s.client;
    let (written_tx, mut written_rx) = tokio::sync::watch::channel(0usize);
    let _typing = tokio::spawn(async move {
        for i in 0..10_000usize {
            client.write_frame(binary(&[0; 512])).await.unwrap();
            let _ = written_tx.send(i + 1);
        }
    });
    // Paused time: the timeout fires only once every task waits (the typing is blocked).
    loop {
        let before = *written_rx.borrow_and_update();
        if tokio::time::timeout(Duration::from_millis(200), written_rx.changed())
            .await
            .is_err()
        {
            assert!(
                before < 64,
                "the client wrote {before} frames with nobody reading"
            );
            break;
        }
    }
    let _cluster = s.cluster;
}
