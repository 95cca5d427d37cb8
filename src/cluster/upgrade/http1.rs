//! The exec upgrade's one HTTP/1.1 exchange, written and read here rather than by hyper's
//! client.
//!
//! hyper's client spends, per session, a connection task of its own (spawned, polled and torn
//! down), a request and an upgrade handed between that task and the caller through channels,
//! and the upgraded socket behind a boxed trait object with a rewind buffer in front of every
//! read. An exec upgrade needs none of it: one request head goes out in one write, one answer
//! head comes back, and the socket is the caller's from then on. Under plain churn hyper's
//! client was a tenth of podterm's user-space time (loadtest/README.md, seventh stop).
//!
//! What the answer must be follows RFC 6455 §4.1 as kubectl's WebSocket client (gorilla's
//! `Dialer`) applies it: 101, `Upgrade: websocket`, `Connection: upgrade` among its tokens and
//! the `Sec-WebSocket-Accept` that the key gives; anything else than 101 is a refusal whose
//! code and (bounded) body go back to the caller, as hyper gave them.

use std::io;

use bytes::{Buf as _, Bytes, BytesMut};
use hyper::StatusCode;
use hyper::header::HeaderValue;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::fields::{field_byte, has_token, path_byte, query_byte};
use crate::protocol::ACCEPT_LEN;

/// Largest answer head taken, in bytes (hyper's client allows about 400 KiB; an API server's
/// answer head is a few hundred bytes).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in an answer head.
const MAX_HEADERS: usize = 64;
/// The first read of the answer asks for this much; a longer head grows the buffer.
const FIRST_READ_BYTES: usize = 2 * 1024;

/// An answer that breaks HTTP's or WebSocket's rules: the cluster was reached but the exec
/// cannot go on (502, where a cluster not reached is 503).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// What the cluster answered.
#[derive(Debug)]
pub enum Answer {
    /// 101 with the WebSocket handshake right: the connection carries the exec stream now.
    Switched {
        /// The subprotocol the cluster picked, one of those offered.
        protocol: &'static str,
        /// Bytes that came behind the head in its last read: the stream's first, which the
        /// caller hands back to the stream to be read before anything else.
        ahead: BytesMut,
    },
    /// Anything else.
    Refused(Refusal),
}

/// An answer other than 101.
#[derive(Debug)]
pub struct Refusal {
    pub code: StatusCode,
    pub content_type: Option<HeaderValue>,
    /// The body, when it was whole and at most the exchange's `max_body` bytes; empty
    /// otherwise.
    pub body: Bytes,
}

/// A GET's head, written field by field into the one buffer that goes out in one write.
///
/// The exec upgrade is made from the typed request: its target and fields are written here as
/// they are, with the checks `http`'s parsers would make (a target `Uri` takes, field values
/// `HeaderValue` takes), and nothing is parsed back out of text or hashed into a map on the
/// way. Field names are podterm's own or kube's (`HeaderName`s), written in lowercase.
#[derive(Debug)]
pub struct RequestHead(Vec<u8>);

/// A request target or field value that cannot go into a head.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsendable;

impl RequestHead {
    /// `GET {base}{target} HTTP/1.1`: `target` is an origin-form path and query, under the
    /// cluster URL's path `base` (empty, or a path without a trailing slash).
    pub fn get(base: &str, target: &str) -> Result<RequestHead, Unsendable> {
        if !target.starts_with('/') || !(base.is_empty() || base.starts_with('/')) {
            return Err(Unsendable);
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if !base.bytes().chain(path.bytes()).all(path_byte) || !query.bytes().all(query_byte) {
            return Err(Unsendable);
        }
        let (base, target) = (base.as_bytes(), target.as_bytes());
        let mut out = Vec::with_capacity(HEAD_CAPACITY.max(base.len() + target.len() + 256));
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(base);
        out.extend_from_slice(target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        Ok(RequestHead(out))
    }

    /// `name: value`, `value` checked as `HeaderValue::from_bytes` checks it.
    pub fn field(&mut self, name: &str, value: &[u8]) -> Result<(), Unsendable> {
        if !value.iter().copied().all(field_byte) {
            return Err(Unsendable);
        }
        self.known(name, value);
        Ok(())
    }

    /// `name: value`, for a value already known to be one (a `HeaderValue`'s, or text of
    /// podterm's own that is).
    pub fn known(&mut self, name: &str, value: &[u8]) {
        debug_assert!(value.iter().copied().all(field_byte));
        let out = &mut self.0;
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }

    /// `name: first, second, …`: a list of tokens (the subprotocols offered).
    pub fn list(&mut self, name: &str, values: &[&'static str]) {
        let out = &mut self.0;
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, value) in values.iter().enumerate() {
            debug_assert!(value.bytes().all(field_byte));
            out.extend_from_slice(if i == 0 { b" " } else { b", " });
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The head, ended by its empty line.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(b"\r\n");
        self.0
    }
}

/// Room for an exec upgrade's head: about 600 bytes with a token and a few groups.
const HEAD_CAPACITY: usize = 1024;

/// What the answer to an upgrade must carry: the `Sec-WebSocket-Accept` of the key sent and
/// one of the subprotocols offered.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub accept: &'a [u8; ACCEPT_LEN],
    pub protocols: &'a [&'static str],
}

/// Sends the upgrade request `head` (a GET with no body, [`RequestHead`]) on `io` and reads
/// the answer, a 101 held to `expected`; a refusal's body is read when it is at most
/// `max_body` bytes.
pub async fn exchange<S>(
    io: &mut S,
    head: &[u8],
    expected: Expected<'_>,
    max_body: usize,
) -> Result<Answer, io::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(head).await?;
    io.flush().await?;
    let mut buf = BytesMut::with_capacity(FIRST_READ_BYTES);
    loop {
        let head = read_head(io, &mut buf, expected).await?;
        let code = head.code;
        if code == StatusCode::SWITCHING_PROTOCOLS {
            let protocol = head.check_websocket().map_err(io::Error::other)?;
            return Ok(Answer::Switched {
                protocol,
                ahead: buf,
            });
        }
        if code.is_informational() {
            // 100 Continue and the like come before the answer (RFC 9110 §15.2).
            continue;
        }
        let body = read_body(io, &mut buf, &head, max_body)
            .await
            .unwrap_or_default();
        return Ok(Answer::Refused(Refusal {
            code,
            content_type: head.content_type,
            body,
        }));
    }
}

/// The subprotocol an answer named.
#[derive(Debug, Default)]
enum Picked {
    #[default]
    None,
    /// One of those offered.
    Offered(&'static str),
    /// Another, as text where it is visible ASCII (for the error).
    Other(Option<String>),
}

/// What the exchange needs of an answer head.
#[derive(Debug, Default)]
struct Head {
    code: StatusCode,
    /// `Upgrade` names websocket.
    upgrade_websocket: bool,
    /// `Connection` has the upgrade token.
    connection_upgrade: bool,
    /// `Sec-WebSocket-Accept` came; whether it was the key's.
    accept: Option<bool>,
    protocol: Picked,
    /// `Sec-WebSocket-Extensions` came: none was offered.
    extensions: bool,
    content_type: Option<HeaderValue>,
    content_length: Option<u64>,
    /// `Transfer-Encoding` ends in chunked.
    chunked: bool,
    /// A header field was malformed for the body's framing (two lengths that differ).
    bad_framing: bool,
}

impl Head {
    /// The subprotocol of a 101 whose WebSocket handshake is right.
    fn check_websocket(self) -> Result<&'static str, Malformed> {
        if !self.upgrade_websocket {
            return Err(Malformed(
                "the cluster's 101 has no `Upgrade: websocket`".into(),
            ));
        }
        if !self.connection_upgrade {
            return Err(Malformed(
                "the cluster's 101 has no `Connection: upgrade`".into(),
            ));
        }
        if self.accept != Some(true) {
            return Err(Malformed(
                "the cluster's Sec-WebSocket-Accept does not match the key sent".into(),
            ));
        }
        if self.extensions {
            return Err(Malformed(
                "the cluster's 101 names WebSocket extensions, and none was offered".into(),
            ));
        }
        let picked = match self.protocol {
            Picked::Offered(protocol) => return Ok(protocol),
            Picked::None => None,
            Picked::Other(text) => text,
        };
        Err(Malformed(format!(
            "the cluster answered subprotocol {:?}, not one offered",
            picked.as_deref()
        )))
    }
}

/// Reads one answer head into `buf` (reading more as needed) and takes it off the front;
/// what follows it stays in `buf`.
async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    expected: Expected<'_>,
) -> io::Result<Head> {
    loop {
        if !buf.is_empty() {
            if let Some((len, head)) = parse_head(buf, expected)? {
                // Moved past, not split off: no second owner of the buffer is made.
                buf.advance(len);
                return Ok(head);
            }
            if buf.len() >= MAX_HEAD_BYTES {
                return Err(io::Error::other(Malformed(format!(
                    "the cluster's answer head is over {MAX_HEAD_BYTES} bytes"
                ))));
            }
        }
        if buf.capacity() == buf.len() {
            buf.reserve(buf.len().max(FIRST_READ_BYTES));
        }
        if io.read_buf(buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the cluster closed the connection before answering",
            ));
        }
    }
}

/// The head at the start of `buf` and its length, or `None` while it is not whole; its
/// WebSocket fields are read against `expected`.
fn parse_head(buf: &[u8], expected: Expected<'_>) -> io::Result<Option<(usize, Head)>> {
    // Slots left uninitialised: httparse writes those it fills (as in the server's direct
    // parse).
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(io::Error::other(Malformed(format!(
                "the cluster's answer is not HTTP/1.1: {e}"
            ))));
        }
    };
    let code = parsed
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| {
            io::Error::other(Malformed("the cluster's answer has a bad status".into()))
        })?;
    let mut head = Head {
        code,
        ..Head::default()
    };
    for field in parsed.headers.iter() {
        let value = field.value;
        let name = field.name;
        if name.eq_ignore_ascii_case("upgrade") {
            head.upgrade_websocket |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            head.connection_upgrade |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            head.accept = Some(value.trim_ascii() == expected.accept);
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            let value = value.trim_ascii();
            head.protocol = match expected.protocols.iter().find(|p| p.as_bytes() == value) {
                Some(protocol) => Picked::Offered(protocol),
                None => Picked::Other(
                    HeaderValue::from_bytes(value)
                        .ok()
                        .and_then(|v| v.to_str().ok().map(str::to_string)),
                ),
            };
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            head.extensions |= !value.trim_ascii().is_empty();
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = HeaderValue::from_bytes(value).ok();
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = std::str::from_utf8(value.trim_ascii())
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            match (length, head.content_length) {
                (Some(new), Some(old)) if new != old => head.bad_framing = true,
                (Some(new), _) => head.content_length = Some(new),
                (None, _) => head.bad_framing = true,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding is what frames the body (RFC 9112 §6.3).
            head.chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    Ok(Some((len, head)))
}

/// A refusal's body after `head`, starting with what `buf` holds: `None` when it is over
/// `max` bytes or does not arrive whole.
async fn read_body<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    head: &Head,
    max: usize,
) -> Option<Bytes> {
    if head.code == StatusCode::NO_CONTENT || head.code == StatusCode::NOT_MODIFIED {
        return Some(Bytes::new());
    }
    if head.chunked {
        return read_chunked(io, buf, max).await;
    }
    if head.bad_framing {
        return None;
    }
    match head.content_length {
        Some(length) => {
            let length = usize::try_from(length).ok().filter(|&l| l <= max)?;
            while buf.len() < length {
                buf.reserve(length - buf.len());
                if io.read_buf(buf).await.ok()? == 0 {
                    return None;
                }
            }
            Some(buf.split_to(length).freeze())
        }
        // No length: the body runs to the connection's end (RFC 9112 §6.3, point 8).
        None => loop {
            if buf.len() > max {
                return None;
            }
            buf.reserve(FIRST_READ_BYTES);
            if io.read_buf(buf).await.ok()? == 0 {
                return Some(std::mem::take(buf).freeze());
            }
        },
    }
}

/// A chunked body (RFC 9112 §7.1), its chunks joined; trailers are not read.
async fn read_chunked<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Option<Bytes> {
    let mut body = BytesMut::new();
    loop {
        let (start, size) = loop {
            match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((start, size))) => break (start, size),
                Ok(httparse::Status::Partial) if buf.len() < 1024 => {}
                _ => return None,
            }
            buf.reserve(FIRST_READ_BYTES);
            if io.read_buf(buf).await.ok()? == 0 {
                return None;
            }
        };
        if size == 0 {
            return Some(body.freeze());
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| body.len() + s <= max)?;
        // The chunk's data and its CRLF.
        while buf.len() < start + size + 2 {
            buf.reserve(start + size + 2 - buf.len());
            if io.read_buf(buf).await.ok()? == 0 {
                return None;
            }
        }
        if &buf[start + size..start + size + 2] != b"\r\n" {
            return None;
        }
        body.extend_from_slice(&buf[start..start + size]);
        let _ = buf.split_to(start + size + 2);
    }
}

#[cfg(test)]
mod tests;
