//! The direct exec (`src/server/direct.rs`): a connection's first request, when it is an exec
//! upgrade whole in the first read, is answered without hyper; everything else still goes
//! through hyper, with every byte read put back. Both ways give the same answers.

#[path = "support/gateway.rs"]
mod support;

use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Role, WebSocket};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use support::{Stack, exec_path, get, read_to_end};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const WITHIN: Duration = Duration::from_secs(20);

async fn stack(vars: &[(&str, &str)]) -> Stack {
    let mut all = vec![("PODTERM_LISTEN", "127.0.0.1:0"), ("PODTERM_AUTH", "none")];
    all.extend_from_slice(vars);
    Stack::start(&all).await
}

/// An exec upgrade's head as a client writes it, with `extra` header lines.
fn upgrade_head(stack: &Stack, path: &str, protocol: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-protocol: {protocol}\r\n{extra}\r\n",
        stack.addr
    )
    .into_bytes()
}

/// A client's (masked) binary frame carrying `payload`.
fn masked(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [0x5a, 0xc3, 0x01, 0x7e];
    let mut frame = vec![0x82, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// Reads a response head (through CRLF CRLF) byte by byte, so that nothing behind it is taken.
async fn response_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WITHIN, stream.read(&mut byte))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n == 1, "closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// The body behind a head with `content-length`.
async fn body_of(stream: &mut TcpStream, head: &str) -> Vec<u8> {
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a content-length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    body
}

/// Sends `text` to `cat` on the WebSocket `io` carries (the 101 read), closes its stdin (v5)
/// and reads the session to its end.
async fn cat_back<S: AsyncRead + AsyncWrite + Unpin>(io: S, text: &[u8]) -> support::Ended {
    let mut ws = WebSocket::after_handshake(io, Role::Client);
    ws.set_auto_close(false);
    let mut stdin = vec![0];
    stdin.extend_from_slice(text);
    ws.write_frame(support::binary(&stdin)).await.unwrap();
    ws.write_frame(support::binary(&[255, 0])).await.unwrap();
    read_to_end(&mut ws, WITHIN).await
}

/// A client that did not wait for the 101: its first frames came in the same segment as its
/// head, and reach the command all the same.
#[tokio::test]
async fn frames_that_came_with_the_head_reach_the_command() {
    let s = stack(&[]).await;
    let path = exec_path("default", "tools", "command=cat&stdin=true&stdout=true");
    let mut bytes = upgrade_head(&s, &path, "v5.channel.k8s.io", "");
    bytes.extend(masked(b"\0came with the head\n"));
    bytes.extend(masked(&[255, 0]));
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let head = response_head(&mut stream).await;
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("sec-websocket-protocol: v5.channel.k8s.io\r\n"),
        "{head}"
    );
    // RFC 6455's own example key and its answer.
    assert!(
        head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    let mut ws = WebSocket::after_handshake(stream, Role::Client);
    ws.set_auto_close(false);
    let ended = read_to_end(&mut ws, WITHIN).await;
    assert_eq!(ended.stdout, b"came with the head\n");
    assert_eq!((ended.exit_code(), ended.close_code), (Some(0), Some(1000)));
}

/// An exec that is not the connection's first request is served by hyper, and works the
/// same: the session's client side is then hyper's upgraded connection.
#[tokio::test]
async fn an_exec_after_another_request_on_the_connection_is_served_by_hyper() {
    let s = stack(&[]).await;
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let healthz = hyper::Request::get("/healthz")
        .header("host", s.addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(healthz).await.unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    let path = exec_path("default", "tools", "command=cat&stdin=true&stdout=true");
    let exec = hyper::Request::get(path)
        .header("host", s.addr.to_string())
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "v5.channel.k8s.io")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let mut res = sender.send_request(exec).await.unwrap();
    assert_eq!(res.status(), 101);
    let upgraded = hyper::upgrade::on(&mut res).await.unwrap();
    let ended = cat_back(TokioIo::new(upgraded), b"second request\n").await;
    assert_eq!(ended.stdout, b"second request\n");
    assert_eq!((ended.exit_code(), ended.close_code), (Some(0), Some(1000)));
}

/// A head in two writes: answered whichever way the first read found it (whole: here; in
/// part: by hyper, which reads the rest).
#[tokio::test]
async fn a_head_in_two_writes_is_answered() {
    let s = stack(&[]).await;
    let path = exec_path("default", "tools", "command=cat&stdin=true&stdout=true");
    let bytes = upgrade_head(&s, &path, "v5.channel.k8s.io", "");
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(&bytes[..20]).await.unwrap();
    tokio::task::yield_now().await;
    stream.write_all(&bytes[20..]).await.unwrap();
    let head = response_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(cat_back(stream, b"in two\n").await.stdout, b"in two\n");
}

/// A refusal answered directly is a whole response with its length, and the connection
/// stays open for the next request, as hyper keeps it.
#[tokio::test]
async fn a_refused_exec_keeps_the_connection_for_the_next_request() {
    let s = stack(&[]).await;
    let path = exec_path("default", "tools", "command=cat&stdin=true");
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(&upgrade_head(&s, &path, "chat", ""))
        .await
        .unwrap();
    let head = response_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert!(
        head.contains("content-type: application/json\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\ndate: "), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let body = body_of(&mut stream, &head).await;
    let status: podterm::protocol::Status = serde_json::from_slice(&body).unwrap();
    assert_eq!(status.code, 400);
    assert!(status.message.contains("subprotocol"), "{}", status.message);
    let healthz = format!(
        "GET /healthz HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        s.addr
    );
    stream.write_all(healthz.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WITHIN, stream.read_to_end(&mut rest))
        .await
        .expect("answered and closed")
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
    assert!(rest.ends_with("ok\n"), "{rest}");
}

/// A client that asked to close gets `connection: close` with its refusal, then the close.
#[tokio::test]
async fn a_refusal_to_a_client_that_asked_to_close_closes() {
    let s = stack(&[]).await;
    let path = "/clusters/nope/api/v1/namespaces/default/pods/tools/exec?command=cat&stdin=true";
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let head = String::from_utf8(upgrade_head(&s, path, "v5.channel.k8s.io", ""))
        .unwrap()
        .replace("connection: Upgrade", "connection: Upgrade, close");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(WITHIN, stream.read_to_end(&mut all))
        .await
        .expect("answered and closed")
        .unwrap();
    let all = String::from_utf8_lossy(&all);
    assert!(all.starts_with("HTTP/1.1 404 Not Found\r\n"), "{all}");
    assert!(all.contains("\r\nconnection: close\r\n"), "{all}");
    assert!(all.contains("\"code\":404"), "{all}");
}

/// A session started directly counts as a session, not also as a connection: with room for
/// two, a session and a kept-alive connection both fit.
#[tokio::test]
async fn a_direct_session_is_not_also_counted_as_a_connection() {
    let s = stack(&[("PODTERM_MAX_CONNECTIONS", "2")]).await;
    let path = exec_path("default", "tools", "command=cat&stdin=true&stdout=true");
    let mut session = TcpStream::connect(s.addr).await.unwrap();
    session
        .write_all(&upgrade_head(&s, &path, "v5.channel.k8s.io", ""))
        .await
        .unwrap();
    let head = response_head(&mut session).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    // The connection's count is given back just after its 101 went out: a few tries.
    let mut served = false;
    for _ in 0..50 {
        if get(s.addr, "/healthz", &[]).await.code == 200 {
            served = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(served, "a connection beside one session was refused");
}
