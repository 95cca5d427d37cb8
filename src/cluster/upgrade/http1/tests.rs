//! The upgrade exchange against a scripted peer on an in-memory pipe.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

use super::*;

/// RFC 6455 §1.3's example key.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const MAX_BODY: usize = 1024;

const OFFERED: [&str; 2] = ["v4.channel.k8s.io", "v5.channel.k8s.io"];

/// The request head the exchange sends.
fn request() -> Vec<u8> {
    let mut head = RequestHead::get("", "/api/v1/namespaces/d/pods/p/exec?command=sh").unwrap();
    head.known("host", b"cluster:6443");
    head.known("connection", b"Upgrade");
    head.known("upgrade", b"websocket");
    head.known("sec-websocket-version", b"13");
    head.known("sec-websocket-key", KEY.as_bytes());
    head.list("sec-websocket-protocol", &OFFERED);
    head.field("impersonate-group", b"a").unwrap();
    head.field("impersonate-group", b"b").unwrap();
    head.finish()
}

/// What the answer to [`request`] must carry.
fn expected() -> Expected<'static> {
    static ACCEPT: std::sync::LazyLock<[u8; ACCEPT_LEN]> =
        std::sync::LazyLock::new(|| crate::protocol::accept_for(KEY.as_bytes()));
    Expected {
        accept: &ACCEPT,
        protocols: &OFFERED,
    }
}

fn switched(extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n{extra}\r\n"
    )
}

/// Runs the exchange against a peer that reads the request head and then writes `answer` in
/// pieces of `piece` bytes; gives the answer and the head the peer read.
async fn exchange_with(answer: &[u8], piece: usize) -> (io::Result<Answer>, String, DuplexStream) {
    let (mut ours, mut theirs) = tokio::io::duplex(256 * 1024);
    let answer = answer.to_vec();
    let peer = tokio::spawn(async move {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            theirs.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        for chunk in answer.chunks(piece.max(1)) {
            theirs.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
        (String::from_utf8(head).unwrap(), theirs)
    });
    let result = exchange(&mut ours, &request(), expected(), MAX_BODY).await;
    let (head, theirs) = peer.await.unwrap();
    drop(ours);
    (result, head, theirs)
}

fn malformed(result: io::Result<Answer>) -> String {
    let e = result.expect_err("a bad answer was taken");
    let inner = e.get_ref().expect("an error of ours");
    assert!(inner.is::<Malformed>(), "not Malformed: {e}");
    e.to_string()
}

fn refused(result: io::Result<Answer>) -> (StatusCode, Option<HeaderValue>, Bytes) {
    match result.unwrap() {
        Answer::Refused(Refusal {
            code,
            content_type,
            body,
        }) => (code, content_type, body),
        other => panic!("not a refusal: {other:?}"),
    }
}

#[test]
fn the_accept_is_rfc_6455s_example() {
    assert_eq!(
        &crate::protocol::accept_for(KEY.as_bytes()),
        b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[tokio::test]
async fn the_request_is_one_head_with_every_header_in_order() {
    let (result, head, _) = exchange_with(switched("").as_bytes(), usize::MAX).await;
    result.unwrap();
    assert_eq!(
        head,
        format!(
            "GET /api/v1/namespaces/d/pods/p/exec?command=sh HTTP/1.1\r\nhost: cluster:6443\r\n\
             connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
             sec-websocket-key: {KEY}\r\n\
             sec-websocket-protocol: v4.channel.k8s.io, v5.channel.k8s.io\r\n\
             impersonate-group: a\r\nimpersonate-group: b\r\n\r\n"
        )
    );
}

#[tokio::test]
async fn a_101_gives_the_protocol_and_keeps_the_bytes_behind_it() {
    for piece in [1, 7, usize::MAX] {
        let answer = format!("{}first bytes", switched(""));
        let (result, _, _) = exchange_with(answer.as_bytes(), piece).await;
        let Answer::Switched { protocol, ahead } = result.unwrap() else {
            panic!("not switched");
        };
        assert_eq!(protocol, "v5.channel.k8s.io");
        // Pieces of one byte: the head's last read ends at the head.
        let unread = ahead.to_vec();
        assert!(
            b"first bytes".starts_with(&unread),
            "{:?}",
            String::from_utf8_lossy(&unread)
        );
        if piece == usize::MAX {
            assert_eq!(unread, b"first bytes");
        }
    }
}

#[tokio::test]
async fn the_handshakes_tokens_are_read_as_lists_in_any_case() {
    let answer = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n\
                  connection: keep-alive, UPGRADE\r\n\
                  sec-websocket-accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\
                  SEC-WEBSOCKET-PROTOCOL:  v4.channel.k8s.io \r\n\r\n";
    let (result, _, _) = exchange_with(answer.as_bytes(), usize::MAX).await;
    let Answer::Switched { protocol, ahead } = result.unwrap() else {
        panic!("not switched");
    };
    assert_eq!(protocol, "v4.channel.k8s.io");
    assert!(ahead.is_empty());
}

#[tokio::test]
async fn a_101_that_breaks_the_websocket_handshake_is_malformed() {
    let cases = [
        (
            switched("").replace(
                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            "Sec-WebSocket-Accept does not match",
        ),
        (
            switched("").replace("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", ""),
            "Sec-WebSocket-Accept does not match",
        ),
        (
            switched("").replace("Upgrade: websocket\r\n", "Upgrade: h2c\r\n"),
            "no `Upgrade: websocket`",
        ),
        (
            switched("").replace("Connection: Upgrade\r\n", "Connection: close\r\n"),
            "no `Connection: upgrade`",
        ),
        (
            switched("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            "names WebSocket extensions",
        ),
        (
            switched("").replace("Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n", ""),
            "answered subprotocol None, not one offered",
        ),
        (
            switched("").replace("v5.channel.k8s.io", "base64.channel.k8s.io"),
            "answered subprotocol Some(\"base64.channel.k8s.io\"), not one offered",
        ),
        (
            // Two offered, named as one list: the cluster picks one.
            switched("").replace("v5.channel.k8s.io", "v4.channel.k8s.io, v5.channel.k8s.io"),
            "answered subprotocol Some(\"v4.channel.k8s.io, v5.channel.k8s.io\")",
        ),
    ];
    for (answer, why) in cases {
        let (result, _, _) = exchange_with(answer.as_bytes(), usize::MAX).await;
        let e = malformed(result);
        assert!(e.contains(why), "{e}, for {answer:?}");
    }
}

#[tokio::test]
async fn informational_answers_before_the_101_are_passed_over() {
    let answer = format!("HTTP/1.1 100 Continue\r\n\r\n{}", switched(""));
    let (result, _, _) = exchange_with(answer.as_bytes(), 5).await;
    assert!(matches!(result.unwrap(), Answer::Switched { .. }));
}

#[tokio::test]
async fn a_refusal_with_a_length_brings_its_body() {
    let body = r#"{"kind":"Status","code":403}"#;
    let answer = format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for piece in [3, usize::MAX] {
        let (result, _, _) = exchange_with(answer.as_bytes(), piece).await;
        let (code, content_type, got) = refused(result);
        assert_eq!(code, 403);
        assert_eq!(content_type.unwrap(), "application/json");
        assert_eq!(got, body.as_bytes());
    }
}

#[tokio::test]
async fn a_chunked_refusal_is_joined() {
    let answer = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
    for piece in [1, 4, usize::MAX] {
        let (result, _, _) = exchange_with(answer.as_bytes(), piece).await;
        let (code, _, body) = refused(result);
        assert_eq!(code, 404);
        assert_eq!(body, "hello, world");
    }
}

#[tokio::test]
async fn a_refusal_without_a_length_runs_to_the_connections_end() {
    let answer = b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\nbroken";
    let (mut ours, mut theirs) = tokio::io::duplex(4096);
    let peer = tokio::spawn(async move {
        let mut head = [0u8; 512];
        let _ = theirs.read(&mut head).await.unwrap();
        theirs.write_all(answer).await.unwrap();
        // The body ends when the connection does.
    });
    let result = exchange(&mut ours, &request(), expected(), MAX_BODY).await;
    peer.await.unwrap();
    let (code, _, body) = refused(result);
    assert_eq!(code, 500);
    assert_eq!(body, "broken");
}

#[tokio::test]
async fn a_refusals_body_over_the_limit_or_cut_short_is_left_empty() {
    let long = "x".repeat(MAX_BODY + 1);
    let cases = [
        format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\n\r\n{long}",
            long.len()
        ),
        format!(
            "HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{long}\r\n0\r\n\r\n",
            long.len()
        ),
        // Cut short: the peer ends the connection 5 bytes into 10.
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nshort".to_string(),
        // Two lengths that differ (RFC 9112 §6.3: unrecoverable).
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc".to_string(),
        // Chunk data not followed by CRLF.
        "HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"
            .to_string(),
    ];
    for answer in cases {
        let (mut ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let peer = tokio::spawn(async move {
            let mut head = [0u8; 512];
            let _ = theirs.read(&mut head).await.unwrap();
            theirs.write_all(answer.as_bytes()).await.unwrap();
        });
        let result = exchange(&mut ours, &request(), expected(), MAX_BODY).await;
        peer.await.unwrap();
        let (code, _, body) = refused(result);
        assert_eq!(code, 403);
        assert!(body.is_empty(), "{} bytes kept", body.len());
    }
}

#[tokio::test]
async fn an_answer_that_is_not_http_or_too_long_is_malformed() {
    let (result, _, _) = exchange_with(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", usize::MAX).await;
    assert!(malformed(result).contains("not HTTP/1.1"));
    let (result, _, _) = exchange_with(b"HTTP/1.1 000 Odd\r\n\r\n", usize::MAX).await;
    assert!(malformed(result).contains("bad status"));
    let long = format!(
        "HTTP/1.1 101 Switching Protocols\r\nX-Pad: {}\r\n",
        "p".repeat(MAX_HEAD_BYTES)
    );
    let (result, _, _) = exchange_with(long.as_bytes(), 4096).await;
    assert!(malformed(result).contains("over 65536 bytes"));
}

#[tokio::test]
async fn a_connection_that_ends_before_the_answer_is_an_io_error() {
    let (mut ours, mut theirs) = tokio::io::duplex(4096);
    let peer = tokio::spawn(async move {
        let mut head = [0u8; 512];
        let _ = theirs.read(&mut head).await.unwrap();
        theirs.write_all(b"HTTP/1.1 101 Swi").await.unwrap();
    });
    let e = exchange(&mut ours, &request(), expected(), MAX_BODY)
        .await
        .expect_err("half a head was taken");
    peer.await.unwrap();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    assert!(
        !e.get_ref().is_some_and(|inner| inner.is::<Malformed>()),
        "{e}"
    );
}

#[test]
fn a_target_or_value_that_http_would_refuse_is_not_written() {
    // What `Uri` takes in an origin-form target's path and its query, byte by byte, is what
    // `get` takes (ASCII; podterm sends nothing else).
    for b in 0..=255u8 {
        for target in [
            format!("/p{}", char::from(b)),
            format!("/p?q{}", char::from(b)),
        ] {
            let ours = RequestHead::get("", &target).is_ok();
            let http = hyper::Uri::try_from(target.as_str())
                .is_ok_and(|uri| uri.path_and_query().map(|p| p.as_str()) == Some(&target));
            assert_eq!(ours, http && b.is_ascii(), "{target:?}");
        }
        // The cluster URL's path: a path, without a query.
        let base = format!("/b{}", char::from(b));
        assert_eq!(
            RequestHead::get(&base, "/p").is_ok(),
            RequestHead::get("", &base).is_ok() && b != b'?',
            "base {base:?}"
        );
    }
    assert!(RequestHead::get("", "p").is_err());
    assert!(RequestHead::get("base", "/p").is_err());
    assert!(RequestHead::get("/base", "/p").is_ok());
    // What `HeaderValue::from_bytes` takes, byte by byte, is what `field` takes.
    for b in 0..=255u8 {
        let mut head = RequestHead::get("", "/").unwrap();
        let ours = head.field("x", &[b'a', b]).is_ok();
        assert_eq!(
            ours,
            HeaderValue::from_bytes(&[b'a', b]).is_ok(),
            "byte {b:#04x}"
        );
    }
    let mut head = RequestHead::get("", "/").unwrap();
    assert_eq!(
        head.field("impersonate-user", b"eve\r\nx-admin: yes"),
        Err(Unsendable)
    );
    assert_eq!(
        head.finish(),
        b"GET / HTTP/1.1\r\n\r\n",
        "a refused field is not written"
    );
}
