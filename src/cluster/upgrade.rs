//! The exec upgrade's own way to the cluster: a fresh TCP (and TLS) connection per session with
//! HTTP/1.1 straight on it, under kube's auth and extra-header layers but not its client stack.
//!
//! An exec connection is upgraded and never goes back to a pool, so kube's client stack (a
//! tower `Buffer`, retry and trace layers, pool bookkeeping, boxed socket timers) gives it
//! nothing but cost. TLS is rustls' with kube's configuration, through `tls.rs`. Reads keep
//! using kube's client.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use kube::client::{Body, ConfigExt as _};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder};

/// A receive buffer size for the exec's connection, asked for in the request's extensions: a
/// session whose client takes output slowly (the page, under flow control) keeps less of the
/// cluster's output in the kernel while it waits, so that Ctrl+C shows its effect at once.
#[derive(Debug, Clone, Copy)]
pub struct ReceiveBuffer(pub u32);

/// Sends one request on a connection of its own; the answer's upgrade is left to the caller.
pub type UpgradeService = BoxCloneSyncService<Request<Body>, Response<Incoming>, BoxError>;

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
            async move { connector.send(req).await }
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

    async fn send(&self, mut req: Request<Body>) -> Result<Response<Incoming>, BoxError> {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = Uri::try_from(format!("{}{path}", self.base_path))?;
        req.headers_mut()
            .insert(header::HOST, self.authority.clone());
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, self.exchange(req))
                .await
                .map_err(|_| format!("no answer within {limit:?}"))?,
            None => self.exchange(req).await,
        }
    }

    async fn exchange(&self, req: Request<Body>) -> Result<Response<Incoming>, BoxError> {
        let (host, port) = (self.host.as_str(), self.port);
        let receive_buffer = req.extensions().get::<ReceiveBuffer>().copied();
        let tcp = connect_tcp(host, port, receive_buffer)
            .await
            .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
        tcp.set_nodelay(true)?;
        let tcp = crate::tcp::Stream::connected(tcp);
        match &self.tls {
            Some((tls, name)) => {
                let tls = super::tls::connect(Arc::clone(tls), name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
                exchange(tls, req).await
            }
            None => exchange(tcp, req).await,
        }
    }
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

/// One HTTP/1.1 request on `io`. The connection's task ends once the upgrade takes the socket,
/// or once a refusal's body is read or dropped.
async fn exchange<S>(io: S, req: Request<Body>) -> Result<Response<Incoming>, BoxError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn.with_upgrades());
    Ok(sender.send_request(req).await?)
}
