//! The exec upgrade's own way to the cluster: a fresh TCP (and TLS) connection per session with
//! HTTP/1.1 straight on it, under kube's auth and extra-header layers but not its client stack.
//!
//! An exec connection is upgraded and never goes back to a pool, so kube's client stack (a
//! tower `Buffer`, retry and trace layers, pool bookkeeping, boxed socket timers) gives it
//! nothing but cost. TLS is rustls' with kube's configuration, through `tls.rs`. Reads keep
//! using kube's client.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::{Request, Response, Uri};
use kube::client::{Body, ConfigExt as _};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder};

use super::tls::TlsStream;
use crate::tcp;

mod http1;

use http1::Answer;
pub use http1::{Malformed, Refusal};

/// A receive buffer size for the exec's connection, asked for in the request's extensions: a
/// session whose client takes output slowly (the page, under flow control) keeps less of the
/// cluster's output in the kernel while it waits, so that Ctrl+C shows its effect at once.
#[derive(Debug, Clone, Copy)]
pub struct ReceiveBuffer(pub u32);

/// Sends one upgrade request on a connection of its own; a 101 hands the connection back.
/// (The answer is the body of a `Response` only because kube's auth layer wants one.)
pub type UpgradeService = BoxCloneSyncService<Request<Body>, Response<Upgrade>, BoxError>;

/// The cluster's answer to an upgrade.
#[derive(Debug)]
pub enum Upgrade {
    /// 101, the WebSocket handshake right: the connection now carries the exec stream.
    Switched {
        io: UpstreamIo,
        /// The subprotocol the cluster picked, when it named one.
        protocol: Option<HeaderValue>,
    },
    /// Anything else; the connection is closed.
    Refused(Refusal),
}

/// The connection of an exec stream the cluster accepted: TCP, or TLS over it. Bytes read
/// with the answer's head wait in the stream's own read-ahead buffer.
pub enum UpstreamIo {
    Plain(tcp::Stream),
    /// Boxed: an idle plain session keeps no room for it.
    Tls(Box<TlsStream<tcp::Stream>>),
}

impl std::fmt::Debug for UpstreamIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpstreamIo::Plain(_) => "UpstreamIo::Plain",
            UpstreamIo::Tls(_) => "UpstreamIo::Tls",
        })
    }
}

// The TLS variant through `Box`'s own `AsyncRead` and `AsyncWrite`.
tcp::either_stream!(UpstreamIo { Plain, Tls });

/// The upgrade service for `config`'s cluster.
pub fn service(config: &kube::Config) -> Result<UpgradeService, String> {
    if let Some(proxy) = &config.proxy_url {
        return Err(format!(
            "proxy-url {proxy} is not supported: podterm connects to the API server directly"
        ));
    }
    let connector = Arc::new(Connector::new(config)?);
    let auth = config.auth_layer().map_err(|e| e.to_string())?;
    let headers = config.extra_headers_layer().map_err(|e| e.to_string())?;
    let service = ServiceBuilder::new()
        .option_layer(auth)
        .layer(headers)
        .service_fn(move |req| {
            let connector = Arc::clone(&connector);
            async move { connector.send(req).await.map(Response::new) }
        });
    Ok(BoxCloneSyncService::new(service))
}

/// Where and how to connect: the cluster URL's host and port, TLS as kube would set it up.
struct Connector {
    host: String,
    port: u16,
    /// The `Host` header: the cluster URL's authority.
    authority: HeaderValue,
    /// The cluster URL's path, which every request's path goes under (no trailing slash).
    base_path: String,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// Bounds connecting, the TLS handshake and the wait for the answer's head.
    timeout: Option<Duration>,
}

impl Connector {
    fn new(config: &kube::Config) -> Result<Connector, String> {
        let url = &config.cluster_url;
        let https = match url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => {
                return Err(format!(
                    "cluster URL {url}: scheme {other:?} is not http(s)"
                ));
            }
        };
        let authority = url
            .authority()
            .ok_or_else(|| format!("cluster URL {url} has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = if https {
            let name = config
                .tls_server_name
                .clone()
                .unwrap_or_else(|| host.clone());
            let name = ServerName::try_from(name)
                .map_err(|e| format!("cluster URL {url}: TLS server name: {e}"))?;
            let mut tls = config.rustls_client_config().map_err(|e| e.to_string())?;
            tls.resumption = rustls::client::Resumption::store(Arc::new(super::tls::Tickets::new(
                super::tls::TICKETS,
            )));
            super::tls::prepare(&mut tls);
            Some((Arc::new(tls), name))
        } else {
            None
        };
        Ok(Connector {
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            host,
            authority: HeaderValue::from_str(authority.as_str())
                .map_err(|e| format!("cluster URL {url}: {e}"))?,
            base_path: url.path().trim_end_matches('/').to_string(),
            tls,
            timeout: config.connect_timeout,
        })
    }

    async fn send(&self, mut req: Request<Body>) -> Result<Upgrade, BoxError> {
        // Under the cluster URL's path, when it has one (only the path and query are sent:
        // without one, the request's own are already what goes out).
        if !self.base_path.is_empty() {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            *req.uri_mut() = Uri::try_from(format!("{}{path}", self.base_path))?;
        }
        req.headers_mut()
            .insert(hyper::header::HOST, self.authority.clone());
        if !hyper::body::Body::is_end_stream(req.body()) {
            return Err("an exec upgrade carries no body".into());
        }
        // The whole exchange, a refusal's body included, is bounded.
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, self.exchange(req))
                .await
                .map_err(|_| format!("no answer within {limit:?}"))?,
            None => self.exchange(req).await,
        }
    }

    async fn exchange(&self, req: Request<Body>) -> Result<Upgrade, BoxError> {
        let (host, port) = (self.host.as_str(), self.port);
        // The body (empty) stays behind: it is not `Sync`, and the future must be.
        let (req, _) = req.into_parts();
        let receive_buffer = req.extensions.get::<ReceiveBuffer>().copied();
        let tcp = connect_tcp(host, port, receive_buffer)
            .await
            .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
        tcp.set_nodelay(true)?;
        let mut tcp = tcp::Stream::connected(tcp);
        let (answer, io) = match &self.tls {
            Some((tls, name)) => {
                let mut tls = Box::new(
                    super::tls::connect(Arc::clone(tls), name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS with {host}:{port}: {e}"))?,
                );
                let answer = http1::exchange(tls.as_mut(), &req, super::MAX_REFUSAL_BYTES)
                    .await
                    .map_err(exchange_error)?;
                if let Answer::Switched { ahead, .. } = &answer {
                    tls.read_ahead(ahead);
                }
                (answer, UpstreamIo::Tls(tls))
            }
            None => {
                let answer = http1::exchange(&mut tcp, &req, super::MAX_REFUSAL_BYTES)
                    .await
                    .map_err(exchange_error)?;
                if let Answer::Switched { ahead, .. } = &answer {
                    tcp.read_ahead(ahead);
                }
                (answer, UpstreamIo::Plain(tcp))
            }
        };
        Ok(match answer {
            Answer::Switched { protocol, .. } => Upgrade::Switched { io, protocol },
            // The connection closes here.
            Answer::Refused(refusal) => Upgrade::Refused(refusal),
        })
    }
}

/// An exchange's error as the service gives it: a [`Malformed`] answer as itself (a 502),
/// anything else as the I/O error it is (a 503).
fn exchange_error(e: io::Error) -> BoxError {
    if e.get_ref().is_some_and(|inner| inner.is::<Malformed>()) {
        return e.into_inner().expect("an error with an inner one");
    }
    Box::new(e)
}

/// A TCP connection to `host:port` (each address in turn), with the receive buffer set before
/// the handshake when one is asked for (the window it offers follows from it).
async fn connect_tcp(
    host: &str,
    port: u16,
    receive_buffer: Option<ReceiveBuffer>,
) -> std::io::Result<TcpStream> {
    let Some(ReceiveBuffer(size)) = receive_buffer else {
        return TcpStream::connect((host, port)).await;
    };
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(size)?;
        match socket.connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
}
