//! Test support: a raw HTTPS and exec WebSocket client for the dev cluster (TLS with its CA).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use podterm::devcluster::DevCluster;
use podterm::protocol::Status;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub type Ws = WebSocket<TokioIo<Upgraded>>;

/// Talks to one dev cluster as its kubeconfig's token (or as told).
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub token: String,
    connector: TlsConnector,
}

struct Spawner;
impl<F> hyper::rt::Executor<F> for Spawner
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

impl Client {
    pub fn new(cluster: &DevCluster) -> Client {
        let ca = cluster.ca_pem.as_ref().expect("the dev cluster serves TLS");
        Client::with(cluster.addr, &cluster.token, ca)
    }

    /// A client for the dev cluster a kubeconfig file describes (one started elsewhere).
    pub fn from_kubeconfig(path: &std::path::Path) -> Client {
        use base64::Engine;
        let config: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(path).expect("kubeconfig")).unwrap();
        let cluster = &config["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().unwrap();
        let addr = server.strip_prefix("https://").unwrap().parse().unwrap();
        let ca = base64::engine::general_purpose::STANDARD
            .decode(cluster["certificate-authority-data"].as_str().unwrap())
            .unwrap();
        let token = config["users"][0]["user"]["token"].as_str().unwrap();
        Client::with(addr, token, std::str::from_utf8(&ca).unwrap())
    }

    fn with(addr: SocketAddr, token: &str, ca: &str) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.as_bytes()).expect("CA PEM"))
            .expect("CA accepted");
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Client {
            addr,
            token: token.to_string(),
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    pub async fn tls(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let name = ServerName::try_from("127.0.0.1").unwrap();
        self.connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake")
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> hyper::http::request::Builder {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", format!("127.0.0.1:{}", self.addr.port()));
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            req = req.header("Authorization", format!("Bearer {}", self.token));
        }
        for (k, v) in headers {
            if !v.is_empty() {
                req = req.header(*k, *v);
            }
        }
        req
    }

    /// A plain request; returns the status code and body.
    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
        let io = TokioIo::new(self.tls().await);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("http1");
        tokio::spawn(conn);
        let req = self
            .request(method, path, headers)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.expect("response");
        let code = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (code, body.to_vec())
    }

    pub async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.send("GET", path, &[]).await
    }

    /// A plain request whose body must be a `Status`.
    pub async fn status(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Status {
        let (code, body) = self.send(method, path, headers).await;
        let status: Status = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{path}: not a Status ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        assert_eq!(status.code, code, "{path}: body code vs HTTP code");
        assert_eq!(status.kind, "Status");
        status
    }

    /// Opens an exec WebSocket offering `protocols`; returns the socket and the chosen one.
    pub async fn exec_ws(
        &self,
        path: &str,
        protocols: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Ws, String), fastwebsockets::WebSocketError> {
        let req = self
            .request("GET", path, headers)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header(
                "Sec-WebSocket-Key",
                fastwebsockets::handshake::generate_key(),
            )
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Protocol", protocols)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let (mut ws, resp) =
            fastwebsockets::handshake::client(&Spawner, req, self.tls().await).await?;
        ws.set_auto_close(true);
        ws.set_auto_pong(true);
        let chosen = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        Ok((ws, chosen))
    }

    /// Opens a v5 exec session.
    pub async fn exec(&self, path: &str) -> Ws {
        let (ws, chosen) = self
            .exec_ws(path, "v5.channel.k8s.io, v4.channel.k8s.io", &[])
            .await
            .expect("upgrade");
        assert_eq!(chosen, "v5.channel.k8s.io");
        ws
    }
}

/// `…/pods/{pod}/exec?{query}` in `default`.
pub fn exec_path(pod: &str, query: &str) -> String {
    format!("/api/v1/namespaces/default/pods/{pod}/exec?{query}")
}

/// Everything a session sent until it closed.
#[derive(Debug, Default)]
pub struct Transcript {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Option<Status>,
    pub close_code: Option<u16>,
    pub close_reason: String,
    /// Channel of every data frame, in order.
    pub channels: Vec<u8>,
}

impl Transcript {
    pub fn exit_code(&self) -> Option<i32> {
        self.status.as_ref().and_then(Status::exit_code)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Sends one binary frame `[channel][payload]`.
pub async fn send(ws: &mut Ws, channel: u8, payload: &[u8]) {
    let mut frame = vec![channel];
    frame.extend_from_slice(payload);
    ws.write_frame(Frame::binary(Payload::Owned(frame)))
        .await
        .expect("send");
}

/// Reads frames until the server closes (or the connection ends), collecting the transcript.
pub async fn read_all(ws: &mut Ws) -> Transcript {
    let mut t = Transcript::default();
    let deadline = std::time::Duration::from_secs(30);
    tokio::time::timeout(deadline, async {
        loop {
            let frame = match ws.read_frame().await {
                Ok(f) => f,
                Err(_) => return,
            };
            match frame.opcode {
                OpCode::Close => {
                    if frame.payload.len() >= 2 {
                        t.close_code =
                            Some(u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                        t.close_reason = String::from_utf8_lossy(&frame.payload[2..]).into_owned();
                    }
                    return;
                }
                OpCode::Binary | OpCode::Text => {
                    let (ch, data) = frame.payload.split_first().expect("channel byte");
                    t.channels.push(*ch);
                    match ch {
                        1 => t.stdout.extend_from_slice(data),
                        2 => t.stderr.extend_from_slice(data),
                        3 => {
                            t.status =
                                Some(serde_json::from_slice(data).expect("channel 3 is a Status"))
                        }
                        other => panic!("unexpected channel {other}"),
                    }
                }
                _ => {}
            }
        }
    })
    .await
    .expect("session ended within 30 s");
    t
}
