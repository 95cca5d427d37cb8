//! The properties the exec connection's TLS client keeps against a hostile or broken server
//! stream, as plain functions for the fuzz target (fuzz/) and the seeded runs of the normal
//! suite (tests/protocol_fuzz.rs). Built with the `test-util` feature.

use std::collections::VecDeque;
use std::io::{self, Read as _, Write as _};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

use crate::testing::block_on;

/// What the client sends once the handshake is done.
const REQUEST: &[u8] = b"GET /exec HTTP/1.1\r\n\r\n";
/// What the honest server sends once the handshake is done (with a key update in the middle),
/// then close_notify.
const MESSAGE: &[u8] = b"{\"kind\":\"Status\"} and some output that spans a record or two";

/// `data` as the server's side of a connection:
/// - first byte even: the rest is the whole server stream, raw bytes (a hostile server). The
///   handshake must fail with an error, never panic or wait forever.
/// - first byte odd: a real TLS server answers, and its stream is cut short and/or has one
///   byte flipped where `data` says. What the client reads is always a prefix of what the
///   server sent; an untouched stream reads whole, and a clean end means every byte came.
pub fn server_stream(data: &[u8]) {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    if how & 1 == 0 {
        let io = Wire::hostile(rest, how >> 1);
        assert!(
            block_on(super::connect(client_config(), name(), io)).is_err(),
            "a handshake completed against bytes that were no server"
        );
        return;
    }
    let word = |i: usize| usize::from(u16::from_be_bytes([get(rest, i), get(rest, i + 1)]));
    let damage = Damage {
        cut_at: word(0),
        flip_at: word(2),
        flip: get(rest, 4),
    };
    let mut io = Wire::honest(damage, how >> 1);
    let outcome = block_on(async {
        let mut tls = super::connect(client_config(), name(), &mut io).await?;
        // A request first, as the exec's: after it, TLS 1.3 traffic is `traffic.rs`'s.
        tls.write_all(REQUEST).await?;
        let mut plain = Vec::new();
        let end = tls.read_to_end(&mut plain).await.map(|_| ());
        Ok::<_, io::Error>((plain, end))
    });
    let untouched = !io.damaged;
    match outcome {
        Ok((plain, end)) => {
            assert!(MESSAGE.starts_with(&plain), "bytes the server never sent");
            if end.is_ok() {
                assert_eq!(plain, MESSAGE, "a clean end before every byte came");
            }
            assert!(
                end.is_ok() || !untouched,
                "an untouched stream failed: {end:?}"
            );
        }
        Err(e) => assert!(!untouched, "an untouched handshake failed: {e}"),
    }
}

fn get(data: &[u8], i: usize) -> u8 {
    data.get(i).copied().unwrap_or(0)
}

/// Where the honest server's stream is damaged (offsets in bytes from its start).
struct Damage {
    cut_at: usize,
    flip_at: usize,
    /// XORed into the byte at `flip_at`; 0 flips nothing.
    flip: u8,
}

/// The client's socket: what the client writes goes to the server (if any), what it reads
/// comes from the server's output (damaged) or the hostile bytes, in reads of varying size.
struct Wire {
    server: Option<rustls::ServerConnection>,
    damage: Damage,
    /// Bytes of the server's stream handed on so far.
    offset: usize,
    damaged: bool,
    /// Server output not yet read by the client.
    pending: VecDeque<u8>,
    sent_message: bool,
    seed: u8,
    reads: usize,
}

impl Wire {
    fn hostile(stream: &[u8], seed: u8) -> Wire {
        Wire {
            server: None,
            damage: Damage {
                cut_at: usize::MAX,
                flip_at: usize::MAX,
                flip: 0,
            },
            offset: 0,
            damaged: false,
            pending: stream.iter().copied().collect(),
            sent_message: false,
            seed,
            reads: 0,
        }
    }

    fn honest(damage: Damage, seed: u8) -> Wire {
        let server = rustls::ServerConnection::new(server_config()).expect("a server connection");
        Wire {
            server: Some(server),
            damage,
            offset: 0,
            damaged: false,
            pending: VecDeque::new(),
            sent_message: false,
            seed,
            reads: 0,
        }
    }

    /// Takes what the server has to send, damaged as asked.
    fn drain_server(&mut self) {
        let Some(server) = &mut self.server else {
            return;
        };
        if !server.is_handshaking() && !self.sent_message {
            self.sent_message = true;
            // A key update in the middle: the client must follow it (and answer it).
            let (head, tail) = MESSAGE.split_at(MESSAGE.len() / 2);
            let _ = server.writer().write_all(head);
            let _ = server.refresh_traffic_keys();
            let _ = server.writer().write_all(tail);
            server.send_close_notify();
        }
        let mut out = Vec::new();
        while server.wants_write() {
            if server.write_tls(&mut out).is_err() {
                break;
            }
        }
        for mut b in out {
            if self.offset >= self.damage.cut_at {
                self.damaged = true;
                break;
            }
            if self.offset == self.damage.flip_at && self.damage.flip != 0 {
                b ^= self.damage.flip;
                self.damaged = true;
            }
            self.offset += 1;
            self.pending.push_back(b);
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reads += 1;
        if self.reads % 3 == 2 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.drain_server();
        let size = 1 + (usize::from(self.seed) * 31 + self.reads * 17) % 700;
        let n = size.min(buf.remaining()).min(self.pending.len());
        let bytes: Vec<u8> = self.pending.drain(..n).collect();
        buf.put_slice(&bytes);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(server) = &mut self.server {
            let mut rest = data;
            while !rest.is_empty() {
                match server.read_tls(&mut rest) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if server.process_new_packets().is_err() {
                            break;
                        }
                    }
                }
            }
            // The server reads nothing the client sends; drop any plaintext it got.
            let mut sink = [0u8; 256];
            while matches!(server.reader().read(&mut sink), Ok(n) if n > 0) {}
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct Pki {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a cert");
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .expect("a server config");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).expect("a root");
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        // TLS 1.3 traffic after the first plaintext is podterm's own record layer's.
        super::prepare(&mut client);
        Pki {
            server: Arc::new(server),
            client: Arc::new(client),
        }
    })
}

fn server_config() -> Arc<rustls::ServerConfig> {
    pki().server.clone()
}

fn client_config() -> Arc<rustls::ClientConfig> {
    pki().client.clone()
}

fn name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a name")
}
