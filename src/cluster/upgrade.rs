//! The exec upgrade's own way to the cluster: a fresh TCP (and TLS) connection per session with
//! HTTP/1.1 straight on it, under kube's credentials but not its client stack.
//!
//! An exec connection is upgraded and never goes back to a pool, so kube's client stack (a
//! tower `Buffer`, retry and trace layers, pool bookkeeping, boxed socket timers) gives it
//! nothing but cost. TLS is rustls' with kube's configuration, through `tls.rs`. Reads keep
//! using kube's client.
//!
//! The request head is written from the typed request ([`ExecUpgrade`]) straight into the
//! buffer that goes out: no `Request`, no `Uri` parsed back out of the target, no header map
//! hashed. kube's auth and extra-header layers (a bearer token, refreshed when due; the
//! kubeconfig's own headers) still decide what credentials go with it: they are asked for
//! them on an empty request, at most once a second ([`CREDENTIALS_REUSE`]), and their fields
//! are written behind podterm's.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response};
use kube::client::{Body, ConfigExt as _};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder, ServiceExt as _};

use super::tls::TlsStream;
use crate::identity::Identity;
use crate::protocol;
use crate::tcp;

mod http1;

use http1::{Answer, Expected, RequestHead};
pub use http1::{Malformed, Refusal};

/// kube's auth and extra-header layers over a service that gives back the fields they set:
/// the credentials to send with a request.
type Credentials = BoxCloneSyncService<Request<Body>, Response<HeaderMap>, BoxError>;

/// One exec upgrade, as the session's typed request gives it.
#[derive(Debug, Clone, Copy)]
pub struct ExecUpgrade<'a> {
    /// The exec's path and query, percent-encoded (`ExecTarget::upstream_path`).
    pub target: &'a str,
    /// The subprotocols offered, in order of preference.
    pub protocols: &'a [&'static str],
    /// The identity the cluster is asked to act as, or `None` for the kubeconfig's own.
    pub impersonate: Option<&'a Identity>,
    /// A receive buffer size for the connection: a session whose client takes output slowly
    /// (the page, under flow control) keeps less of the cluster's output in the kernel while
    /// it waits, so that Ctrl+C shows its effect at once.
    pub receive_buffer: Option<u32>,
}

/// Why an upgrade was not sent, or not answered.
#[derive(Debug)]
pub enum Failed {
    /// The target cannot be sent as a request target.
    Target,
    /// A name of the identity cannot be sent as an impersonation header.
    Identity(String),
    /// kube's layers gave no credentials, or the exchange failed (a [`Malformed`] answer
    /// among them).
    Send(BoxError),
}

/// The cluster's answer to an upgrade.
#[derive(Debug)]
pub enum Upgrade {
    /// 101, the WebSocket handshake right: the connection now carries the exec stream.
    Switched {
        io: UpstreamIo,
        /// The subprotocol the cluster picked, one of those offered.
        protocol: &'static str,
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

impl UpstreamIo {
    /// The connection as the relay uses it: plain TCP split without a lock, TLS through
    /// tokio's split (its reads and writes share one session state).
    pub fn halves(self) -> tcp::Halves<UpstreamIo> {
        match self {
            UpstreamIo::Plain(stream) => tcp::Halves::Tcp(stream),
            tls @ UpstreamIo::Tls(_) => tcp::Halves::locked(tls),
        }
    }
}

/// How long the credentials kube's layers gave are sent again without asking the layers.
/// They hand a token out only while it has at least ten seconds to live (a refreshable token
/// is renewed a minute before it expires, a token file read again every minute), so one
/// second of reuse never sends a token they would no longer send. Under churn the layers
/// were about 1.5 % of a session's instructions (a boxed service cloned, a request and a
/// header map made, a boxed future).
const CREDENTIALS_REUSE: Duration = Duration::from_secs(1);

/// Sends exec upgrades to one cluster, each on a connection of its own.
pub struct Upgrades {
    credentials: Credentials,
    /// The fields the credentials gave last, and when they were asked for.
    recent: std::sync::Mutex<Option<(tokio::time::Instant, HeaderMap)>>,
    connector: Connector,
}

impl Upgrades {
    /// The upgrades of `config`'s cluster.
    pub fn new(config: &kube::Config) -> Result<Upgrades, String> {
        if let Some(proxy) = &config.proxy_url {
            return Err(format!(
                "proxy-url {proxy} is not supported: podterm connects to the API server directly"
            ));
        }
        let auth = config.auth_layer().map_err(|e| e.to_string())?;
        let headers = config.extra_headers_layer().map_err(|e| e.to_string())?;
        let credentials = ServiceBuilder::new()
            .option_layer(auth)
            .layer(headers)
            .service_fn(|req: Request<Body>| {
                std::future::ready(Ok::<_, BoxError>(Response::new(req.into_parts().0.headers)))
            });
        Ok(Upgrades {
            credentials: BoxCloneSyncService::new(credentials),
            recent: std::sync::Mutex::new(None),
            connector: Connector::new(config)?,
        })
    }

    /// Sends `exec` and reads the answer. Connecting, TLS and the exchange (a refusal's body
    /// included) are bounded by the cluster's connect timeout.
    pub async fn send(&self, exec: ExecUpgrade<'_>) -> Result<Upgrade, Failed> {
        let nonce: [u8; 16] = rand::random();
        let mut key = [0u8; 24];
        base64::Engine::encode_slice(&base64::engine::general_purpose::STANDARD, nonce, &mut key)
            .expect("16 bytes are 24 in base64");
        let head = self.head(exec, &key).await?;
        let expected = Expected {
            accept: &protocol::accept_for(&key),
            protocols: exec.protocols,
        };
        let exchange = self
            .connector
            .exchange(&head, expected, exec.receive_buffer);
        let answer = match self.connector.timeout {
            Some(limit) => match tokio::time::timeout(limit, exchange).await {
                Ok(answer) => answer,
                Err(_) => Err(format!("no answer within {limit:?}").into()),
            },
            None => exchange.await,
        };
        answer.map_err(Failed::Send)
    }

    /// The request head of `exec` with `key`: podterm's fields, then the credentials.
    async fn head(&self, exec: ExecUpgrade<'_>, key: &[u8; 24]) -> Result<Vec<u8>, Failed> {
        let connector = &self.connector;
        let mut head =
            RequestHead::get(&connector.base_path, exec.target).map_err(|_| Failed::Target)?;
        head.known("host", connector.authority.as_bytes());
        head.known("connection", b"Upgrade");
        head.known("upgrade", b"websocket");
        head.known("sec-websocket-version", b"13");
        head.known("sec-websocket-key", key);
        head.list("sec-websocket-protocol", exec.protocols);
        for (field, name) in exec.impersonate.into_iter().flat_map(super::impersonation) {
            head.field(field.as_str(), name.as_bytes())
                .map_err(|_| Failed::Identity(name.to_string()))?;
        }
        let now = tokio::time::Instant::now();
        if let Ok(recent) = self.recent.lock()
            && let Some((asked, credentials)) = &*recent
            && now.duration_since(*asked) < CREDENTIALS_REUSE
        {
            credentials_into(&mut head, credentials);
            return Ok(head.finish());
        }
        let credentials = self
            .credentials
            .clone()
            .oneshot(Request::new(Body::empty()))
            .await
            .map_err(Failed::Send)?
            .into_body();
        credentials_into(&mut head, &credentials);
        if let Ok(mut recent) = self.recent.lock() {
            *recent = Some((now, credentials));
        }
        Ok(head.finish())
    }
}

/// The fields kube's layers set, behind podterm's: the cluster URL's authority stays the one
/// `Host`.
fn credentials_into(head: &mut RequestHead, credentials: &HeaderMap) {
    for (name, value) in credentials {
        if name != header::HOST {
            head.known(name.as_str(), value.as_bytes());
        }
    }
}

/// Where and how to connect: the cluster URL's host and port, TLS as kube would set it up.
struct Connector {
    host: String,
    port: u16,
    /// The `Host` field: the cluster URL's authority.
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

    /// Connects and exchanges `head` for the cluster's answer.
    async fn exchange(
        &self,
        head: &[u8],
        expected: Expected<'_>,
        receive_buffer: Option<u32>,
    ) -> Result<Upgrade, BoxError> {
        let (host, port) = (self.host.as_str(), self.port);
        let tcp = connect_tcp(host, port, receive_buffer)
            .await
            .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
        tcp.set_nodelay(true)?;
        let mut tcp = tcp::Stream::connected(tcp);
        let max = super::MAX_REFUSAL_BYTES;
        let (answer, io) = match &self.tls {
            Some((tls, name)) => {
                let mut tls = Box::new(
                    super::tls::connect(Arc::clone(tls), name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS with {host}:{port}: {e}"))?,
                );
                let answer = http1::exchange(tls.as_mut(), head, expected, max)
                    .await
                    .map_err(exchange_error)?;
                if let Answer::Switched { ahead, .. } = &answer {
                    tls.read_ahead(ahead);
                }
                (answer, UpstreamIo::Tls(tls))
            }
            None => {
                let answer = http1::exchange(&mut tcp, head, expected, max)
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
    receive_buffer: Option<u32>,
) -> std::io::Result<TcpStream> {
    let Some(size) = receive_buffer else {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Upgrades whose credentials are a token numbered by how often they were asked for; the
    /// first ask fails where `fail_first`.
    fn counting(asked: Arc<AtomicUsize>, fail_first: bool) -> Upgrades {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let credentials = tower::service_fn(move |_: Request<Body>| {
            let n = asked.fetch_add(1, Ordering::SeqCst) + 1;
            let mut fields = HeaderMap::new();
            let token = HeaderValue::try_from(format!("Bearer {n}")).unwrap();
            fields.insert(header::AUTHORIZATION, token);
            std::future::ready(if fail_first && n == 1 {
                Err(BoxError::from("the token could not be refreshed"))
            } else {
                Ok(Response::new(fields))
            })
        });
        Upgrades {
            credentials: BoxCloneSyncService::new(credentials),
            recent: std::sync::Mutex::new(None),
            connector: Connector::new(&config).unwrap(),
        }
    }

    const EXEC: ExecUpgrade<'static> = ExecUpgrade {
        target: "/api/v1/namespaces/default/pods/p/exec?command=sh",
        protocols: &["v5.channel.k8s.io"],
        impersonate: None,
        receive_buffer: None,
    };

    /// The `authorization` fields of the head made for [`EXEC`].
    async fn authorization(upgrades: &Upgrades) -> Result<Vec<String>, Failed> {
        let head = upgrades.head(EXEC, &[b'k'; 24]).await?;
        Ok(String::from_utf8(head)
            .unwrap()
            .lines()
            .filter_map(|line| line.strip_prefix("authorization: "))
            .map(str::to_string)
            .collect())
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_are_sent_again_within_a_second_then_asked_for_anew() {
        let asked = Arc::new(AtomicUsize::new(0));
        let upgrades = counting(asked.clone(), false);
        assert_eq!(authorization(&upgrades).await.unwrap(), ["Bearer 1"]);
        tokio::time::advance(CREDENTIALS_REUSE - Duration::from_millis(1)).await;
        assert_eq!(authorization(&upgrades).await.unwrap(), ["Bearer 1"]);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(authorization(&upgrades).await.unwrap(), ["Bearer 2"]);
        assert_eq!(authorization(&upgrades).await.unwrap(), ["Bearer 2"]);
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_that_failed_are_asked_for_again_at_once() {
        let asked = Arc::new(AtomicUsize::new(0));
        let upgrades = counting(asked.clone(), true);
        assert!(matches!(
            authorization(&upgrades).await,
            Err(Failed::Send(e)) if e.to_string() == "the token could not be refreshed"
        ));
        assert_eq!(authorization(&upgrades).await.unwrap(), ["Bearer 2"]);
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }
}
