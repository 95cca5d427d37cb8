use super::*;
use bytes::Bytes;
use hyper::header::HeaderName;
use hyper::{HeaderMap, Method, Request, Uri, Version};

const EXEC: &str = "/clusters/dev/api/v1/namespaces/default/pods/web-1/exec?container=main&command=sh&stdin=true&stdout=true&tty=true";

/// An exec upgrade as kubectl 1.33 sends one (gorilla's dialer), with `extra` header lines.
fn kubectl_head(target: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: kubectl/v1.33.0 (linux/amd64) kubernetes/abcdef\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n{extra}\r\n"
    )
    .into_bytes()
}

fn parsed(bytes: &[u8]) -> Option<Head<'_>> {
    parse(bytes)
}

/// The head's lines in a `HeaderMap`, as hyper keeps them (values of one name together).
fn map(head: &Head<'_>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in &head.lines {
        map.append(
            HeaderName::from_bytes(line.name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(line.value).unwrap(),
        );
    }
    map
}

#[test]
fn an_exec_upgrade_is_read_into_the_request_hyper_would_have_made() {
    let bytes = kubectl_head(
        EXEC,
        "X-Remote-User: alice\r\nX-Remote-Group: dev\r\nX-Remote-Group: ops\r\n",
    );
    let head = parsed(&bytes).expect("answered here");
    assert_eq!(head.len, bytes.len());
    assert!(!head.close);
    assert_eq!(
        head.path,
        "/clusters/dev/api/v1/namespaces/default/pods/web-1/exec"
    );
    assert_eq!(
        head.query,
        Some("container=main&command=sh&stdin=true&stdout=true&tty=true")
    );
    assert_eq!(head.lines.len(), 11);
    let h = head.fields();
    assert_eq!(h.get(&header::HOST), Some(&b"127.0.0.1:8080"[..]));
    // Repeated headers stay separate values, in order, as hyper keeps them.
    let protocols: Vec<_> = h.all(&header::SEC_WEBSOCKET_PROTOCOL).collect();
    assert_eq!(protocols, [b"v5.channel.k8s.io", b"v4.channel.k8s.io"]);
    let groups: Vec<_> = h.all(&HeaderName::from_static("x-remote-group")).collect();
    assert_eq!(groups, [b"dev", b"ops"]);
    let mut req = hyper::Request::new(());
    *req.headers_mut() = map(&head);
    assert!(fastwebsockets::upgrade::is_upgrade_request(&req));
    // And attach, and a browser's way of asking (several Connection tokens).
    let attach = EXEC.replace("/exec?", "/attach?");
    assert!(parsed(&kubectl_head(&attach, "")).is_some());
    let firefox = kubectl_head(EXEC, "")
        .replace_all("Connection: Upgrade", "Connection: keep-alive, Upgrade");
    assert!(parsed(&firefox).is_some());
}

trait ReplaceAll {
    fn replace_all(&self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceAll for Vec<u8> {
    fn replace_all(&self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self.clone())
            .unwrap()
            .replace(from, to)
            .into_bytes()
    }
}

#[test]
fn bytes_behind_the_head_are_not_part_of_it() {
    let mut bytes = kubectl_head(EXEC, "");
    let len = bytes.len();
    bytes.extend_from_slice(&[0x82, 0x81, 1, 2, 3, 4, 5]);
    assert_eq!(parsed(&bytes).expect("answered here").len, len);
}

#[test]
fn connection_close_is_noticed() {
    let bytes =
        kubectl_head(EXEC, "").replace_all("Connection: Upgrade", "Connection: Upgrade, Close");
    assert!(parsed(&bytes).expect("answered here").close);
}

#[test]
fn everything_else_is_left_to_hyper() {
    let whole = kubectl_head(EXEC, "");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a head not whole in the first read",
            whole[..whole.len() - 2].to_vec(),
        ),
        ("a head cut in its request line", whole[..10].to_vec()),
        ("nothing", Vec::new()),
        ("POST", whole.replace_all("GET ", "POST ")),
        ("HEAD", whole.replace_all("GET ", "HEAD ")),
        (
            "HTTP/1.0",
            whole.replace_all("HTTP/1.1\r\n", "HTTP/1.0\r\n"),
        ),
        (
            "HTTP/2's preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04\0\0\0\0\0".to_vec(),
        ),
        (
            "no upgrade (SPDY's plain request)",
            whole.replace_all("Upgrade: websocket\r\n", ""),
        ),
        (
            "another upgrade",
            whole.replace_all("Upgrade: websocket", "Upgrade: SPDY/3.1"),
        ),
        (
            "no Connection: upgrade",
            whole.replace_all("Connection: Upgrade\r\n", ""),
        ),
        ("a body", kubectl_head(EXEC, "Content-Length: 0\r\n")),
        (
            "a chunked body",
            kubectl_head(EXEC, "Transfer-Encoding: chunked\r\n"),
        ),
        ("a log", kubectl_head(&EXEC.replace("/exec?", "/log?"), "")),
        ("a resume", kubectl_head("/api/sessions/abc/resume", "")),
        ("the page", kubectl_head("/", "")),
        (
            "a longer path",
            kubectl_head(&EXEC.replace("/exec?", "/exec/more?"), ""),
        ),
        (
            "an absolute target",
            kubectl_head(&format!("http://127.0.0.1:8080{EXEC}"), ""),
        ),
        (
            "a malformed header",
            kubectl_head(EXEC, "No colon here\r\n"),
        ),
        (
            "a fragment",
            kubectl_head(&EXEC.replace("?container", "#x?container"), ""),
        ),
        (
            "a byte Uri takes only as UTF-8",
            kubectl_head(&EXEC.replace("web-1", "w\u{e9}b-1"), ""),
        ),
        (
            "a control byte in a value",
            kubectl_head(EXEC, "X-Remote-User: al\x01ice\r\n"),
        ),
    ];
    for (what, bytes) in cases {
        assert!(parsed(&bytes).is_none(), "{what} was answered here");
    }
}

#[test]
fn more_headers_than_the_limit_are_left_to_hyper() {
    let under: String = (0..MAX_HEADERS - 12)
        .map(|i| format!("X-N{i}: {i}\r\n"))
        .collect();
    assert!(parsed(&kubectl_head(EXEC, &under)).is_some());
    let over: String = (0..MAX_HEADERS)
        .map(|i| format!("X-N{i}: {i}\r\n"))
        .collect();
    assert!(parsed(&kubectl_head(EXEC, &over)).is_none());
}

#[test]
fn header_values_are_the_read_bytes() {
    let bytes = kubectl_head(EXEC, "X-Remote-User: alice\r\n");
    let head = parse(&bytes).unwrap();
    let user = head
        .fields()
        .get(&HeaderName::from_static("x-remote-user"))
        .unwrap();
    assert_eq!(user, b"alice");
    let range = bytes.as_ptr_range();
    assert!(range.contains(&user.as_ptr()), "the value was copied");
}

#[test]
fn header_names_are_read_in_any_case() {
    let bytes = kubectl_head(
        EXEC,
        "x-CALLER: alice\r\nX-Caller-Groups: dev\r\nX-Other: 1\r\n",
    );
    let head = parse(&bytes).unwrap();
    let h = head.fields();
    assert_eq!(
        h.get(&HeaderName::from_static("x-caller")),
        Some(&b"alice"[..])
    );
    assert_eq!(
        h.get(&HeaderName::from_static("x-caller-groups")),
        Some(&b"dev"[..])
    );
    assert_eq!(h.get(&HeaderName::from_static("x-other")), Some(&b"1"[..]));
    assert_eq!(h.get(&HeaderName::from_static("x-call")), None);
}

fn text(head: &[u8]) -> &str {
    std::str::from_utf8(head).unwrap()
}

#[test]
fn a_101_head_is_the_status_line_and_the_headers() {
    let res = Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        .header("sec-websocket-protocol", "v5.channel.k8s.io")
        .body(())
        .unwrap();
    assert_eq!(
        text(&response_head(&res, None)),
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nsec-websocket-protocol: v5.channel.k8s.io\r\n\r\n"
    );
}

#[test]
fn a_refusal_head_has_its_length_and_a_date() {
    let res = Response::builder()
        .status(403)
        .header("content-type", "application/json")
        .header("content-length", "999")
        .body(())
        .unwrap();
    let head = response_head(&res, Some(17));
    let head = text(&head);
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: 17\r\ndate: "), "{head}");
    assert!(head.ends_with(" GMT\r\n\r\n"), "{head}");
    assert_eq!(head.matches("content-length").count(), 1, "{head}");
    let date = head.split("date: ").nth(1).unwrap().trim_end();
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    // A status without a reason phrase still makes a valid status line.
    let odd = Response::builder().status(499).body(()).unwrap();
    assert!(text(&response_head(&odd, Some(0))).starts_with("HTTP/1.1 499 \r\n"));
}

/// What the head writer writes, hyper's client reads back as the same response.
#[test]
fn hyper_reads_the_heads_back() {
    let res = Response::builder()
        .status(400)
        .header("content-type", "application/json")
        .header("x-two", "a")
        .header("x-two", "b")
        .body(())
        .unwrap();
    let mut bytes = response_head(&res, Some(2));
    bytes.extend_from_slice(b"{}");
    let mut slots = [httparse::EMPTY_HEADER; 16];
    let mut back = httparse::Response::new(&mut slots);
    let len = match back.parse(&bytes).unwrap() {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => panic!("partial"),
    };
    assert_eq!(back.code, Some(400));
    assert_eq!(&bytes[len..], b"{}");
    let twos: Vec<_> = back
        .headers
        .iter()
        .filter(|h| h.name == "x-two")
        .map(|h| h.value)
        .collect();
    assert_eq!(twos, [b"a", b"b"]);
}

/// What hyper's own HTTP/1 server makes of `bytes` (the request it hands its service), or
/// `None` if it hands none (it refused the head).
fn hyper_reads(bytes: &[u8]) -> Option<hyper::http::request::Parts> {
    use tokio::io::AsyncWriteExt as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(req.into_parts().0);
            }
            async {
                Ok::<_, std::convert::Infallible>(Response::new(
                    http_body_util::Empty::<Bytes>::new(),
                ))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server), service)
            .with_upgrades();
        tokio::spawn(conn);
        client.write_all(bytes).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()
    })
}

/// The request as comparable values: method, target, version, and every header in order.
type Seen = (String, String, Version, Vec<(String, Vec<u8>)>);

fn seen(method: &Method, uri: &Uri, version: Version, headers: &hyper::HeaderMap) -> Seen {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    (method.to_string(), uri.to_string(), version, headers)
}

/// Both readings of `bytes`: ours must be hyper's, exactly.
fn same_as_hyper(bytes: &[u8]) {
    let ours = parsed(bytes).expect("answered here");
    let target = match ours.query {
        Some(query) => format!("{}?{query}", ours.path),
        None => ours.path.to_string(),
    };
    let ours = seen(
        &Method::GET,
        &target.parse().unwrap(),
        Version::HTTP_11,
        &map(&ours),
    );
    let theirs = hyper_reads(bytes).expect("hyper served it");
    let theirs = seen(&theirs.method, &theirs.uri, theirs.version, &theirs.headers);
    assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(bytes));
}

/// The heads browsers and kubectl send, and the liberties HTTP/1.1 allows in them (no space
/// after the colon, trailing whitespace, tabs, any case, obs-text, a percent-encoded path):
/// read here exactly as hyper's server reads them.
#[test]
fn heads_are_read_as_hyper_reads_them() {
    same_as_hyper(&kubectl_head(EXEC, ""));
    same_as_hyper(&kubectl_head(
        EXEC,
        "Origin: http://localhost:8080\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nCookie: a=b; c=d\r\nAccept-Language: en-US,en;q=0.9\r\n",
    ));
    same_as_hyper(&kubectl_head(
        EXEC,
        "x-no-space:value\r\nX-Trailing: value \t \r\nX-Tab:\tlead\r\nX-EMPTY:\r\nx-remote-user: al\u{e9}ice\r\n",
    ));
    same_as_hyper(&kubectl_head(
        "/clusters/dev/api/v1/namespaces/a%2Db/pods/web-1/exec?command=echo&command=a%20b%26c&command=%E2%9C%93&stdout=1",
        "",
    ));
    // Raw obs-text bytes in a value (not UTF-8).
    let mut bytes = kubectl_head(EXEC, "");
    let at = bytes.len() - 2;
    bytes.splice(at..at, b"X-Obs: \xe9t\xe9\r\n".iter().copied());
    same_as_hyper(&bytes);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any extra headers, with any value bytes HTTP allows and any whitespace around them,
    /// and any query: read here exactly as hyper's server reads them.
    #[test]
    fn any_exec_head_is_read_as_hyper_reads_it(
        extra in proptest::collection::vec(
            (
                "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}",
                "[ \t]{0,2}",
                proptest::collection::vec(
                    proptest::prop_oneof![0x21u8..=0x7e, proptest::strategy::Just(b' '), 0x80u8..=0xff],
                    0..40,
                ),
                "[ \t]{0,2}",
            ),
            0..20,
        ),
        query in "[A-Za-z0-9=&%._~-]{0,60}",
    ) {
        let target = format!("/clusters/dev/api/v1/namespaces/default/pods/web-1/exec?{query}");
        let mut lines = Vec::new();
        for (name, before, value, after) in &extra {
            let lower = name.to_ascii_lowercase();
            if ["content-length", "transfer-encoding", "connection", "upgrade", "host"]
                .contains(&lower.as_str())
                || lower.starts_with("sec-websocket")
            {
                continue;
            }
            lines.extend_from_slice(name.as_bytes());
            lines.push(b':');
            lines.extend_from_slice(before.as_bytes());
            lines.extend_from_slice(value);
            lines.extend_from_slice(after.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        let mut bytes = kubectl_head(&target, "");
        let at = bytes.len() - 2;
        bytes.splice(at..at, lines);
        same_as_hyper(&bytes);
    }
}
