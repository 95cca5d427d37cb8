//! The relay's closing handshake over real TCP: each peer gets the close frame and, even when
//! it replies late and is still typing, an orderly end of stream (FIN), never a reset.

#[path = "support/relay.rs"]
mod support;
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use podterm::protocol::Status;
use podterm::relay::{CloseReason, RelayConfig, Summary, relay};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long the slow peers wait before answering a close frame (under `CLOSE_GRACE`). Time is
/// paused and moves only when every task waits: the reply comes once the relay has done all it
/// does before it (loopback TCP delivers within the send, so nothing is in flight), and the
/// test's 10 s bounds are virtual too, so a loaded machine cannot trip them.
const SLOW_REPLY: Duration = Duration::from_millis(300);

fn config() -> RelayConfig {
    support::relay_config()
}

/// Both ends of a loopback TCP connection: (connecting end, accepted end).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (connected.unwrap(), accepted.unwrap().0)
}

/// The client's socket, the cluster's socket and the relay between them, all over TCP.
async fn start() -> (
    WebSocket<TcpStream>,
    WebSocket<TcpStream>,
    JoinHandle<Summary>,
) {
    let (client_end, gateway_client_end) = tcp_pair().await;
    let (gateway_cluster_end, cluster_end) = tcp_pair().await;
    let relay = tokio::spawn(async move {
        relay(
            gateway_client_end,
            gateway_cluster_end,
            &config(),
            std::future::pending(),
        )
        .await
    });
    let mut client = WebSocket::after_handshake(client_end, Role::Client);
    client.set_auto_close(false);
    client.set_auto_pong(false);
    let mut cluster = WebSocket::after_handshake(cluster_end, Role::Server);
    cluster.set_auto_close(false);
    cluster.set_auto_pong(false);
    (client, cluster, relay)
}

fn binary(bytes: &[u8]) -> Frame<'static> {
    Frame::binary(Payload::Owned(bytes.to_vec()))
}

/// The next frame's opcode and payload, within 10 s.
async fn next(ws: &mut WebSocket<TcpStream>) -> (OpCode, Vec<u8>) {
    let frame = tokio::time::timeout(Duration::from_secs(10), ws.read_frame())
        .await
        .expect("a frame within 10 s")
        .expect("a frame, not an error");
    (frame.opcode, frame.payload.to_vec())
}

/// Answers the close frame late, after one more data frame (a peer still typing), then reads
/// the rest of the stream: it must end in EOF, not in a reset.
async fn reply_late_and_read_to_eof(mut ws: WebSocket<TcpStream>, who: &str) {
    tokio::time::sleep(SLOW_REPLY).await;
    ws.write_frame(binary(b"\0still typing"))
        .await
        .unwrap_or_else(|e| panic!("{who}: writing after the close frame: {e}"));
    ws.write_frame(Frame::close(1000, b""))
        .await
        .unwrap_or_else(|e| panic!("{who}: replying close: {e}"));
    read_to_eof(ws, who).await;
}

/// Reads the rest of the stream: it must end in EOF with nothing more, not in a reset.
async fn read_to_eof(ws: WebSocket<TcpStream>, who: &str) {
    let mut stream = ws.into_inner();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .unwrap_or_else(|_| panic!("{who}: no end of stream within 10 s"));
    match read {
        Ok(_) => assert!(rest.is_empty(), "{who}: bytes after the close: {rest:?}"),
        Err(e) => panic!(
            "{who}: the connection ended with {e} ({:?}), not EOF",
            e.kind()
        ),
    }
}

async fn summary(relay: JoinHandle<Summary>) -> Summary {
    tokio::time::timeout(Duration::from_secs(10), relay)
        .await
        .expect("relay ends within 10 s")
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn after_the_exit_status_a_slow_client_gets_eof_not_a_reset() {
    let (mut client, mut cluster, relay) = start().await;
    let status = Status::exit(0).to_error_frame();
    cluster.write_frame(binary(b"\x01bye\r\n")).await.unwrap();
    cluster.write_frame(binary(&status)).await.unwrap();
    cluster.write_frame(Frame::close(1000, b"")).await.unwrap();

    assert_eq!(
        next(&mut client).await,
        (OpCode::Binary, b"\x01bye\r\n".to_vec())
    );
    assert_eq!(next(&mut client).await, (OpCode::Binary, status));
    let (opcode, payload) = next(&mut client).await;
    assert_eq!((opcode, &payload[..2]), (OpCode::Close, &[3, 232][..]));
    // The cluster closed first: it gets the relay's close reply; the end of its stream
    // follows once the client's closing handshake is over too.
    assert_eq!(next(&mut cluster).await.0, OpCode::Close);

    reply_late_and_read_to_eof(client, "client").await;
    read_to_eof(cluster, "cluster").await;
    assert_eq!(summary(relay).await.close, CloseReason::Exited);
}

#[tokio::test(start_paused = true)]
async fn after_the_client_closes_a_slow_cluster_gets_eof_not_a_reset() {
    let (mut client, mut cluster, relay) = start().await;
    client
        .write_frame(Frame::close(1000, b"bye"))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await.0, OpCode::Close);
    assert_eq!(next(&mut cluster).await.0, OpCode::Close);

    reply_late_and_read_to_eof(cluster, "cluster").await;
    read_to_eof(client, "client").await;
    assert_eq!(summary(relay).await.close, CloseReason::ClientClosed(1000));
}
