//! The exec upgrade's own connection, against a bare TCP server that records what it is sent.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::*;

const PATH: &str = "/api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true";
const V5: &str = "v5.channel.k8s.io";

/// A plain-HTTP cluster at `url` (its path included) with a bearer token and one extra header.
fn cluster(url: &str, connect_timeout: Option<Duration>) -> Cluster {
    let mut config = kube::Config::new(url.parse().unwrap());
    config.auth_info = serde_json::from_value(serde_json::json!({ "token": "s3cret" })).unwrap();
    config.headers = vec![(
        HeaderName::from_static("x-extra"),
        HeaderValue::from_static("yes"),
    )];
    config.connect_timeout = connect_timeout;
    Cluster::from_config("test", config).unwrap()
}

/// Reads one request head from `socket`.
async fn read_head(socket: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        assert_eq!(
            socket.read(&mut byte).await.unwrap(),
            1,
            "EOF inside the head"
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// `Sec-WebSocket-Accept` for the key in `head`, computed here as RFC 6455 §4.2.2 says.
fn accept_for(head: &str) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    let key = header(head, "sec-websocket-key")[0];
    let digest = sha1::Sha1::digest(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// A cluster that takes one connection, reads one request head and writes `answer`, its
/// `{accept}` replaced with the key's accept; the task gives back the head and the socket.
async fn answering(answer: Vec<u8>) -> (SocketAddr, JoinHandle<(String, TcpStream)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let head = read_head(&mut socket).await;
        let answer = String::from_utf8(answer)
            .unwrap()
            .replace("{accept}", &accept_for(&head));
        socket.write_all(answer.as_bytes()).await.unwrap();
        (head, socket)
    });
    (addr, server)
}

/// Keeps the server's side of the connection open, reading it to its end: the task ends once
/// podterm closes the connection.
fn held_until_closed(server: JoinHandle<(String, TcpStream)>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (_, mut socket) = server.await.unwrap();
        let mut rest = Vec::new();
        socket.read_to_end(&mut rest).await.unwrap();
    })
}

/// Fails unless podterm closed the connection `held` keeps (within 10 s).
async fn assert_closed(held: JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the connection was left open")
        .unwrap();
}

#[tokio::test]
async fn the_upgrade_goes_under_the_base_path_with_auth_host_and_impersonation() {
    let (addr, server) = answering(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\
          Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\nhello"
            .to_vec(),
    )
    .await;
    let identity = Identity {
        user: "alice".into(),
        groups: vec!["devs".into(), "ops".into()],
    };
    let cluster = cluster(&format!("http://{addr}/prefix/"), None);
    let stream = cluster
        .exec(PATH, &["v4.channel.k8s.io", V5], ActAs::User(&identity))
        .await
        .unwrap();
    assert_eq!(stream.protocol, V5);
    let mut io = stream.io;
    let mut hello = [0u8; 5];
    tokio::io::AsyncReadExt::read_exact(&mut io, &mut hello)
        .await
        .unwrap();
    assert_eq!(&hello, b"hello", "bytes after the 101 belong to the stream");
    tokio::io::AsyncWriteExt::write_all(&mut io, b"ping")
        .await
        .unwrap();
    let (head, mut socket) = server.await.unwrap();
    let mut echo = [0u8; 4];
    socket.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
    let request_line = head.lines().next().unwrap();
    assert_eq!(request_line, format!("GET /prefix{PATH} HTTP/1.1"));
    assert_eq!(header(&head, "host"), [addr.to_string()]);
    assert_eq!(header(&head, "authorization"), ["Bearer s3cret"]);
    assert_eq!(header(&head, "x-extra"), ["yes"]);
    assert_eq!(header(&head, "impersonate-user"), ["alice"]);
    assert_eq!(header(&head, "impersonate-group"), ["devs", "ops"]);
    assert_eq!(header(&head, "upgrade"), ["websocket"]);
    assert_eq!(
        header(&head, "sec-websocket-protocol"),
        ["v4.channel.k8s.io, v5.channel.k8s.io"]
    );
}

#[tokio::test]
async fn a_refusal_comes_back_with_the_clusters_code_and_message() {
    let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"p\" is forbidden","reason":"Forbidden","code":403}"#;
    let answer = format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (addr, _server) = answering(answer.into_bytes()).await;
    let cluster = cluster(&format!("http://{addr}"), None);
    let Err(e) = cluster.exec(PATH, &[V5], ActAs::Podterm).await else {
        panic!("a 403 was taken for an upgrade");
    };
    assert!(matches!(&e, UpstreamError::Refused { code, .. } if code.as_u16() == 403));
    assert_eq!(e.reason(), r#"pods "p" is forbidden"#);
}

#[tokio::test]
async fn an_unreachable_cluster_is_503_naming_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cluster = cluster(&format!("http://{addr}"), None);
    let Err(e) = cluster.exec(PATH, &[V5], ActAs::Podterm).await else {
        panic!("connected to a closed port");
    };
    assert!(matches!(e, UpstreamError::Send { .. }), "{e}");
    let reason = e.reason();
    assert!(reason.contains(&format!("connect to {addr}")), "{reason}");
}

#[tokio::test]
async fn a_cluster_that_never_answers_is_given_up_on_after_the_connect_timeout() {
    let (addr, server) = answering(Vec::new()).await;
    // Never answers.
    let held = held_until_closed(server);
    let cluster = cluster(&format!("http://{addr}"), Some(Duration::from_millis(200)));
    let Err(e) = cluster.exec(PATH, &[V5], ActAs::Podterm).await else {
        panic!("an upgrade without an answer");
    };
    assert!(matches!(e, UpstreamError::Send { .. }), "{e}");
    assert!(e.reason().contains("no answer within"), "{}", e.reason());
    assert_closed(held).await;
}

#[tokio::test]
async fn a_101_that_breaks_the_handshake_is_502_and_says_why() {
    let cases = [
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: bm90IHRoZSBhY2NlcHQ=\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n",
            "Sec-WebSocket-Accept does not match",
        ),
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v1.channel.k8s.io\r\n\r\n",
            "subprotocol Some(\"v1.channel.k8s.io\"), not one offered",
        ),
    ];
    for (answer, why) in cases {
        let (addr, _server) = answering(answer.as_bytes().to_vec()).await;
        let cluster = cluster(&format!("http://{addr}"), None);
        let Err(e) = cluster.exec(PATH, &[V5], ActAs::Podterm).await else {
            panic!("a bad 101 was taken: {answer}");
        };
        assert!(matches!(e, UpstreamError::Handshake { .. }), "{e}");
        assert!(e.reason().contains(why), "{}", e.reason());
    }
}

#[tokio::test]
async fn a_refusal_whose_body_never_ends_is_given_up_on_after_the_connect_timeout() {
    let (addr, server) =
        answering(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\n{\"kind\":".to_vec())
            .await;
    let held = held_until_closed(server);
    let cluster = cluster(&format!("http://{addr}"), Some(Duration::from_millis(200)));
    let Err(e) = cluster.exec(PATH, &[V5], ActAs::Podterm).await else {
        panic!("an upgrade out of a refusal");
    };
    assert!(e.reason().contains("no answer within"), "{}", e.reason());
    assert_closed(held).await;
}

#[test]
fn a_cluster_url_that_is_not_http_is_refused() {
    let config = kube::Config::new("ftp://example.com".parse().unwrap());
    let Err(e) = Cluster::from_config("test", config) else {
        panic!("an ftp cluster was accepted");
    };
    assert!(e.contains("not http(s)"), "{e}");
}

#[test]
fn a_cluster_behind_a_proxy_is_refused_with_a_clear_reason() {
    let mut config = kube::Config::new("https://10.0.0.1:6443".parse().unwrap());
    config.proxy_url = Some("http://proxy.example.com:3128".parse().unwrap());
    let Err(e) = Cluster::from_config("proxied", config) else {
        panic!("a proxy-url was accepted");
    };
    assert!(
        e.contains("proxy-url http://proxy.example.com:3128/ is not supported"),
        "{e}"
    );
}

#[tokio::test]
async fn a_token_file_is_read_for_the_upgrade_as_kube_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "from-the-file").unwrap();
    let (addr, server) =
        answering(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
    let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    config.auth_info =
        serde_json::from_value(serde_json::json!({ "tokenFile": token_file })).unwrap();
    let cluster = Cluster::from_config("test", config).unwrap();
    let Err(e) = cluster.exec(PATH, &[V5], ActAs::Podterm).await else {
        panic!("a 403 was taken for an upgrade");
    };
    assert!(
        matches!(&e, UpstreamError::Refused { code, .. } if code.as_u16() == 403),
        "{}",
        e.reason()
    );
    let (head, _) = server.await.unwrap();
    assert_eq!(header(&head, "authorization"), ["Bearer from-the-file"]);
}

#[test]
fn the_provider_offers_aes_128_gcm_first_and_drops_no_suite() {
    use rustls::CipherSuite::*;
    let ours: Vec<_> = crypto_provider()
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    assert_eq!(
        ours[..3],
        [
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256
        ]
    );
    let mut ring: Vec<_> = rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    let mut sorted = ours.clone();
    sorted.sort_by_key(|s| u16::from(*s));
    ring.sort_by_key(|s| u16::from(*s));
    assert_eq!(sorted, ring);
}
