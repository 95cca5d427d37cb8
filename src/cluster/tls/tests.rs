//! The unbuffered TLS stream against tokio-rustls servers (TLS 1.3 and 1.2).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::version::{TLS12, TLS13};
use rustls::{HandshakeKind, ProtocolVersion, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream as ServerStream;

use super::*;

struct Pki {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    /// The server's certificate, for clients made here.
    cert: CertificateDer<'static>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed `localhost` certificate; the server speaks only `version`.
fn pki(version: &'static SupportedProtocolVersion) -> Pki {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    Pki {
        server: Arc::new(server),
        client: Arc::new(client_config(provider(), &der)),
        cert: der,
    }
}

/// A client trusting `cert`, with `provider`, set up as podterm's (`prepare`).
fn client_config(
    provider: Arc<rustls::crypto::CryptoProvider>,
    cert: &CertificateDer<'static>,
) -> rustls::ClientConfig {
    let mut config = unprepared_client_config(provider, cert);
    prepare(&mut config);
    config
}

/// A client trusting `cert`, with `provider`, as rustls makes it.
fn unprepared_client_config(
    provider: Arc<rustls::crypto::CryptoProvider>,
    cert: &CertificateDer<'static>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The client's first data (a request, as the exec's), read whole by the server.
async fn request(client: &mut TlsStream<TcpStream>, server: &mut ServerStream<TcpStream>) {
    client.write_all(b"GET").await.unwrap();
    client.flush().await.unwrap();
    let mut got = [0u8; 3];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"GET");
}

/// A TCP pair: the client's stream and the server's TLS accept (to be awaited beside connect).
async fn pair(
    pki: &Pki,
) -> (
    TcpStream,
    tokio::task::JoinHandle<std::io::Result<ServerStream<TcpStream>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&pki.server));
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        acceptor.accept(socket).await
    });
    (client, server)
}

async fn connected(pki: &Pki) -> (TlsStream<TcpStream>, ServerStream<TcpStream>) {
    let (tcp, server) = pair(pki).await;
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = connect(Arc::clone(&pki.client), name, tcp).await.unwrap();
    // The client's last flight waits for a write, a read or a flush; the server for it.
    let (flushed, server) = tokio::join!(client.flush(), server);
    flushed.unwrap();
    (client, server.unwrap().unwrap())
}

/// One byte from the server, read by the client (session tickets sent before it come in too).
async fn byte_from_server(client: &mut TlsStream<TcpStream>, server: &mut ServerStream<TcpStream>) {
    server.write_all(b"x").await.unwrap();
    server.flush().await.unwrap();
    client.read_exact(&mut [0u8]).await.unwrap();
}

/// The next connection with `pki`'s client resumes a session (a ticket was kept).
async fn assert_next_connection_resumes(pki: &Pki) {
    let (next, _server) = connected(pki).await;
    assert_eq!(
        next.records.rustls().unwrap().handshake_kind(),
        Some(HandshakeKind::Resumed)
    );
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Whether the stream holds no buffer of its own (what an idle session keeps).
fn holds_nothing(stream: &TlsStream<TcpStream>) -> bool {
    stream.records.incoming.capacity() == 0
        && stream.records.outgoing.capacity() == 0
        && stream.plain.capacity() == 0
}

async fn round_trips_both_ways(version: &'static SupportedProtocolVersion, wire: ProtocolVersion) {
    let pki = pki(version);
    let (mut client, mut server) = connected(&pki).await;
    assert_eq!(
        client.records.rustls().unwrap().protocol_version(),
        Some(wire)
    );

    // A frame's header and payload in one vectored write: one record.
    let header = [0x82u8, 5];
    let parts = [io::IoSlice::new(&header), io::IoSlice::new(b"hello")];
    assert_eq!(client.write_vectored(&parts).await.unwrap(), 7);
    client.flush().await.unwrap();
    let mut got = [0u8; 7];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"\x82\x05hello");
    // TLS 1.3 leaves rustls once its first data is sealed; TLS 1.2 stays.
    assert_eq!(
        client.records.traffic().is_some(),
        wire == ProtocolVersion::TLSv1_3
    );

    // Bulk from the server, read through a small buffer (the rest waits in `plain`).
    let bulk = pattern(1024 * 1024 + 17);
    let sent = bulk.clone();
    let writer = tokio::spawn(async move {
        server.write_all(&sent).await.unwrap();
        server.flush().await.unwrap();
        server
    });
    let mut received = Vec::new();
    let mut chunk = [0u8; 1000];
    while received.len() < bulk.len() {
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "EOF after {} bytes", received.len());
        received.extend_from_slice(&chunk[..n]);
    }
    assert!(received == bulk, "the bulk stream came back changed");
    let mut server = writer.await.unwrap();

    // Bulk from the client.
    let upload = pattern(300 * 1024);
    let reader = tokio::spawn(async move {
        let mut got = vec![0u8; 300 * 1024];
        server.read_exact(&mut got).await.unwrap();
        (server, got)
    });
    // A large frame's header and payload in one vectored write: records per part.
    let (head, body) = upload.split_at(10);
    let mut remaining = upload.len();
    let mut parts = [io::IoSlice::new(head), io::IoSlice::new(body)];
    let mut parts = &mut parts[..];
    while remaining > 0 {
        let n = client.write_vectored(parts).await.unwrap();
        assert!(n > 0);
        remaining -= n;
        io::IoSlice::advance_slices(&mut parts, n);
    }
    client.flush().await.unwrap();
    let (mut server, got) = reader.await.unwrap();
    assert!(got == upload, "the upload arrived changed");

    // Idle: a read that would block leaves no buffer behind.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), client.read(&mut chunk))
            .await
            .is_err()
    );
    assert!(holds_nothing(&client), "an idle stream keeps buffers");

    // close_notify from the server is a clean EOF; ours reaches the server as one.
    server.shutdown().await.unwrap();
    assert_eq!(client.read(&mut chunk).await.unwrap(), 0);
    client.shutdown().await.unwrap();
    assert_eq!(server.read(&mut chunk).await.unwrap(), 0);
}

#[tokio::test]
async fn tls13_round_trips_both_ways() {
    round_trips_both_ways(&TLS13, ProtocolVersion::TLSv1_3).await;
}

#[tokio::test]
async fn tls12_round_trips_both_ways() {
    round_trips_both_ways(&TLS12, ProtocolVersion::TLSv1_2).await;
}

#[tokio::test]
async fn a_second_connection_resumes_the_session() {
    let pki = pki(&TLS13);
    let (mut first, mut server) = connected(&pki).await;
    // The session ticket comes after the handshake; reading the echo takes it in.
    assert_eq!(
        first.records.rustls().unwrap().handshake_kind(),
        Some(HandshakeKind::Full)
    );
    byte_from_server(&mut first, &mut server).await;
    assert_next_connection_resumes(&pki).await;
}

#[tokio::test]
async fn a_key_update_from_the_server_is_answered_and_traffic_goes_on() {
    let pki = pki(&TLS13);
    let (mut client, mut server) = connected(&pki).await;
    for round in 0..3u8 {
        server.get_mut().1.refresh_traffic_keys().unwrap();
        server.write_all(&[round]).await.unwrap();
        server.flush().await.unwrap();
        let mut byte = [0u8];
        client.read_exact(&mut byte).await.unwrap();
        assert_eq!(byte[0], round);
        client.write_all(&[round + 100]).await.unwrap();
        client.flush().await.unwrap();
        server.read_exact(&mut byte).await.unwrap();
        assert_eq!(byte[0], round + 100);
    }
}

#[tokio::test]
async fn tickets_that_come_after_the_request_are_kept() {
    let pki = pki(&TLS13);
    let (mut first, mut server) = connected(&pki).await;
    // The request moves the connection off rustls; the server's tickets come after it (the
    // server sends them once it has the client's Finished, which goes out with the request).
    request(&mut first, &mut server).await;
    assert!(first.records.traffic().is_some());
    byte_from_server(&mut first, &mut server).await;
    // The answer came: what kept the tickets is gone.
    assert!(!first.records.traffic().unwrap().keeps_tickets());
    assert_next_connection_resumes(&pki).await;
}

#[tokio::test]
async fn a_key_at_its_limit_is_updated_before_it_seals_more() {
    let pki = pki(&TLS13);
    let (mut client, mut server) = connected(&pki).await;
    client.write_all(b"a").await.unwrap();
    client.records.traffic().unwrap().near_limit();
    for byte in [b'b', b'c', b'd'] {
        client.write_all(&[byte]).await.unwrap();
    }
    client.flush().await.unwrap();
    let mut got = [0u8; 4];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"abcd");
    // 'b' took the old key's last record but one, the key update its last; 'c' and 'd' went
    // under the new key.
    assert_eq!(client.records.traffic().unwrap().tx_seq(), 2);
    // And the server's answer still opens.
    server.write_all(b"e").await.unwrap();
    server.flush().await.unwrap();
    let mut byte = [0u8];
    client.read_exact(&mut byte).await.unwrap();
    assert_eq!(&byte, b"e");
}

#[tokio::test]
async fn a_configuration_not_prepared_stays_with_rustls() {
    let base = pki(&TLS13);
    let client = unprepared_client_config(provider(), &base.cert);
    let pki = Pki {
        client: Arc::new(client),
        ..base
    };
    let (mut client, mut server) = connected(&pki).await;
    request(&mut client, &mut server).await;
    assert!(client.records.rustls().is_some());
}

#[tokio::test]
async fn a_damaged_record_after_the_move_is_an_error() {
    let pki = pki(&TLS13);
    let (mut client, mut server) = connected(&pki).await;
    request(&mut client, &mut server).await;
    server.write_all(b"fine").await.unwrap();
    server.flush().await.unwrap();
    let mut got = [0u8; 4];
    client.read_exact(&mut got).await.unwrap();
    // A record that is no sealing of the server's, straight onto the wire.
    let (mut tcp, _) = server.into_inner();
    let mut record = vec![23, 3, 3, 0, 20];
    record.extend_from_slice(&[0x5a; 20]);
    tcp.write_all(&record).await.unwrap();
    let e = client.read(&mut got).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("bad_record_mac"), "{e}");
}

/// A key log that keeps the labels it is given.
#[derive(Debug, Default)]
struct Labels(std::sync::Mutex<Vec<String>>);

impl rustls::KeyLog for Labels {
    fn log(&self, label: &str, _: &[u8], _: &[u8]) {
        self.0.lock().unwrap().push(label.to_string());
    }
}

#[tokio::test]
async fn a_key_log_that_was_there_still_gets_every_line() {
    let base = pki(&TLS13);
    let mut client = unprepared_client_config(provider(), &base.cert);
    let labels = Arc::new(Labels::default());
    client.key_log = labels.clone();
    prepare(&mut client);
    let pki = Pki {
        client: Arc::new(client),
        ..base
    };
    let (mut client, mut server) = connected(&pki).await;
    request(&mut client, &mut server).await;
    assert!(client.records.traffic().is_some());
    let labels = labels.0.lock().unwrap();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EXPORTER_SECRET",
    ] {
        assert!(
            labels.iter().any(|l| l == label),
            "{label} not in {labels:?}"
        );
    }
}

#[tokio::test]
async fn a_connection_cut_without_close_notify_is_an_error_not_eof() {
    let pki = pki(&TLS13);
    let (mut client, server) = connected(&pki).await;
    drop(server.into_inner().0);
    let mut buf = [0u8; 16];
    let e = client.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_handshake() {
    let server_pki = pki(&TLS13);
    let other = pki(&TLS13);
    let (tcp, _server) = pair(&server_pki).await;
    let name = ServerName::try_from("localhost").unwrap();
    let Err(e) = connect(Arc::clone(&other.client), name, tcp).await else {
        panic!("a certificate from an unknown issuer was accepted");
    };
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("certificate"), "{e}");
}

#[tokio::test]
async fn a_server_that_hangs_up_during_the_handshake_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        // Reads the whole ClientHello record, then hangs up cleanly.
        let mut header = [0u8; 5];
        socket.read_exact(&mut header).await.unwrap();
        let mut hello = vec![0u8; u16::from_be_bytes([header[3], header[4]]).into()];
        socket.read_exact(&mut hello).await.unwrap();
    });
    let name = ServerName::try_from("localhost").unwrap();
    let Err(e) = connect(pki(&TLS13).client, name, tcp).await else {
        panic!("a handshake without a server");
    };
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}

/// Opens `n` connections at once (each takes its ticket before any handshake ends) after a
/// first one that brought 20 tickets; how many of the `n` resumed.
async fn resumed_of_a_burst(store: Option<Arc<tickets::Tickets>>, n: usize) -> usize {
    let base = pki(&TLS13);
    let mut server = (*base.server).clone();
    server.send_tls13_tickets = 20;
    let mut client = (*base.client).clone();
    if let Some(store) = store {
        client.resumption = rustls::client::Resumption::store(store);
    }
    let pki = Pki {
        server: Arc::new(server),
        client: Arc::new(client),
        cert: base.cert,
    };
    let (mut first, mut server) = connected(&pki).await;
    server.write_all(b"x").await.unwrap();
    server.flush().await.unwrap();
    first.read_exact(&mut [0u8]).await.unwrap();

    let mut pairs = Vec::new();
    for _ in 0..n {
        pairs.push(pair(&pki).await);
    }
    let name = ServerName::try_from("localhost").unwrap();
    let mut burst: Vec<_> = pairs
        .into_iter()
        .map(|(tcp, server)| {
            (
                Box::pin(connect(Arc::clone(&pki.client), name.clone(), tcp)),
                server,
            )
        })
        .collect();
    // One poll each: every connection takes its ticket and sends its hello before any
    // handshake can end.
    std::future::poll_fn(|cx| {
        for (client, _) in &mut burst {
            assert!(client.as_mut().poll(cx).is_pending());
        }
        Poll::Ready(())
    })
    .await;
    let mut resumed = 0;
    for (client, server) in burst {
        let mut client = client.await.unwrap();
        let (flushed, server) = tokio::join!(client.flush(), server);
        flushed.unwrap();
        server.unwrap().unwrap();
        if client.records.rustls().unwrap().handshake_kind() == Some(HandshakeKind::Resumed) {
            resumed += 1;
        }
    }
    resumed
}

#[tokio::test]
async fn a_burst_of_connections_all_resume_from_the_ticket_store() {
    // rustls' own cache keeps 8 tickets per server; the rest of the burst would be full
    // handshakes (certificate checks here, a signature at the server).
    assert_eq!(resumed_of_a_burst(None, 16).await, 8);
    let store = Arc::new(tickets::Tickets::new(tickets::TICKETS));
    assert_eq!(resumed_of_a_burst(Some(store), 16).await, 16);
}

#[tokio::test]
async fn the_ticket_store_keeps_at_most_its_capacity() {
    let store = Arc::new(tickets::Tickets::new(5));
    // 20 tickets come in, 5 are kept: 5 of the burst resume, and each takes its own (the
    // burst reads nothing after its handshakes, so no new tickets come in).
    assert_eq!(resumed_of_a_burst(Some(Arc::clone(&store)), 8).await, 5);
    assert_eq!(format!("{store:?}"), "Tickets { held: 0, capacity: 5 }");
}

#[tokio::test]
async fn the_server_takes_the_clients_first_suite() {
    // podterm's provider offers AES-128-GCM first; the server (ring's order) goes along.
    let base = pki(&TLS13);
    let client = client_config(Arc::new(crate::cluster::crypto_provider()), &base.cert);
    let pki = Pki {
        client: Arc::new(client),
        ..base
    };
    let (client, _server) = connected(&pki).await;
    assert_eq!(
        client
            .records
            .rustls()
            .unwrap()
            .negotiated_cipher_suite()
            .map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
    );
}

/// A socket that counts the writes made to it.
struct CountingIo {
    io: TcpStream,
    writes: usize,
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writes += 1;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn the_finished_goes_out_with_the_first_write() {
    let pki = pki(&TLS13);
    let (tcp, server) = pair(&pki).await;
    let io = CountingIo { io: tcp, writes: 0 };
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = connect(Arc::clone(&pki.client), name, io).await.unwrap();
    assert_eq!(
        client.io.writes, 1,
        "only the hello is sent during the handshake"
    );
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(
        client.io.writes, 2,
        "the Finished and the request in one write"
    );
    let mut server = server.await.unwrap().unwrap();
    let mut got = [0u8; 18];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");
}

#[tokio::test]
async fn a_client_that_reads_first_still_sends_its_finished() {
    // The server speaks first, and its TLS accept waits for the client's Finished: a read
    // must send the held flight, or both sides wait for ever.
    let pki = pki(&TLS13);
    let (tcp, server) = pair(&pki).await;
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = connect(Arc::clone(&pki.client), name, tcp).await.unwrap();
    let speak = async {
        let mut server = server.await.unwrap().unwrap();
        server.write_all(b"hello").await.unwrap();
        server.flush().await.unwrap();
        server
    };
    let mut got = [0u8; 5];
    let read = client.read_exact(&mut got);
    let (read, _server) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(read, speak) })
            .await
            .expect("the read sent the Finished");
    read.unwrap();
    assert_eq!(&got, b"hello");
}

#[tokio::test]
async fn bytes_put_back_are_read_before_plaintext_that_waited() {
    let pki = pki(&TLS13);
    let (mut client, mut server) = connected(&pki).await;
    server.write_all(b"0123456789").await.unwrap();
    server.flush().await.unwrap();
    // A read of 4 leaves the rest of the record's plaintext waiting in the stream.
    let mut first = [0u8; 4];
    client.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"0123");
    client.read_ahead(b"head|");
    let mut rest = [0u8; 11];
    client.read_exact(&mut rest).await.unwrap();
    assert_eq!(&rest, b"head|456789");
}
