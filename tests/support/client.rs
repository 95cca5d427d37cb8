//! Test support: a plain HTTP/1.1 client and an exec WebSocket client (v5) for podterm on
//! 127.0.0.1, speaking the wire protocol byte for byte.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use http_body_util::{BodyExt as _, Empty};
use hyper::upgrade::Upgraded;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one step of a test may wait for podterm before the test fails.
pub const STEP: Duration = Duration::from_secs(20);

/// The trusted identity headers of a user in the dev cluster's `devs` group.
pub const DEV_USER: [(&str, &str); 2] = [
    ("X-Forwarded-User", "alice"),
    ("X-Forwarded-Groups", "devs"),
];

/// Runs `fut`, failing the test if it takes longer than [`STEP`].
pub async fn step<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP:?}"))
}

/// `GET path` with `headers`; the status and the whole body.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    let mut req = Request::get(path).header("Host", addr.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .expect("response");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The value of the sample `name` (labels included, as printed) in a `/metrics` text.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

/// Scrapes `/metrics` and reads one sample (0 when the series does not exist yet).
pub async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (status, text) = get(addr, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    sample(&text, name).unwrap_or(0.0)
}

/// The exec request path for `namespace/pod` with `query` (`container=…&command=…&stdin=true`).
pub fn exec_path(cluster: &str, namespace: &str, pod: &str, query: &str) -> String {
    format!("/clusters/{cluster}/api/v1/namespaces/{namespace}/pods/{pod}/exec?{query}")
}

/// An open exec session, client side.
pub struct Exec {
    pub ws: WebSocket<TokioIo<Upgraded>>,
    /// Payload bytes of every data frame received (channel byte included), for the metrics.
    pub received_bytes: u64,
}

/// Why an exec request got no session.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub body: String,
}

/// Opens an exec WebSocket (offering v5.channel.k8s.io) as `headers` say; on a refusal, its
/// HTTP status and body.
pub async fn exec(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Exec, Refused> {
    let mut req = Request::get(path)
        .header("Host", addr.to_string())
        .header("Upgrade", "websocket")
        .header("Connection", "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Protocol", "v5.channel.k8s.io");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    let stream = TcpStream::connect(addr).await.expect("connect");
    // A refusal has a body to read, which the WebSocket handshake would drop: send the
    // request by hand and upgrade only on 101.
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn.with_upgrades());
    let res = sender.send_request(req).await.expect("response");
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = res.status();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        return Err(Refused {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    let upgraded = hyper::upgrade::on(res).await.expect("upgrade");
    let mut ws = WebSocket::after_handshake(TokioIo::new(upgraded), fastwebsockets::Role::Client);
    ws.set_auto_close(false);
    Ok(Exec {
        ws,
        received_bytes: 0,
    })
}

/// What the client read next.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// A data frame: channel and payload.
    Data(u8, Vec<u8>),
    /// A close frame: code and reason.
    Close(u16, String),
}

impl Exec {
    /// Sends `bytes` on channel `channel`.
    pub async fn send(&mut self, channel: u8, bytes: &[u8]) {
        let mut payload = vec![channel];
        payload.extend_from_slice(bytes);
        self.ws
            .write_frame(Frame::binary(Payload::Owned(payload)))
            .await
            .expect("send");
    }

    /// The next data or close frame (pings are answered by fastwebsockets).
    pub async fn next(&mut self) -> Event {
        loop {
            let frame = step("read a frame", self.ws.read_frame())
                .await
                .expect("read a frame");
            match frame.opcode {
                OpCode::Binary => {
                    self.received_bytes += frame.payload.len() as u64;
                    let channel = frame.payload.first().copied().unwrap_or(255);
                    return Event::Data(channel, frame.payload.get(1..).unwrap_or(&[]).to_vec());
                }
                OpCode::Close => {
                    let payload = &frame.payload[..];
                    let code = if payload.len() >= 2 {
                        u16::from_be_bytes([payload[0], payload[1]])
                    } else {
                        1005
                    };
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[]));
                    return Event::Close(code, reason.into_owned());
                }
                _ => {}
            }
        }
    }

    /// Reads stdout until `expected` has arrived whole (frames may split it).
    pub async fn expect_stdout(&mut self, expected: &[u8]) {
        let mut got = Vec::new();
        while got.len() < expected.len() {
            match self.next().await {
                Event::Data(1, bytes) => got.extend_from_slice(&bytes),
                Event::Data(_, _) => {}
                other => panic!("waiting for {expected:?}, got {other:?} after {got:?}"),
            }
        }
        assert_eq!(got, expected);
    }

    /// Reads until the close frame; its code and reason.
    pub async fn until_close(&mut self) -> (u16, String) {
        loop {
            if let Event::Close(code, reason) = self.next().await {
                return (code, reason);
            }
        }
    }
}
