//! The direct exec: a connection whose first request is an exec or attach WebSocket upgrade,
//! whole in the connection's first read, is answered here without hyper, and the session then
//! runs on the connection's own socket, in the connection's own task.
//!
//! That is what a new session is, nearly always: kubectl and the page open a connection for
//! each exec and send the upgrade at once. Through hyper's server the request went through
//! hyper-util's HTTP/1-or-2 detection (a read-ahead wrapper in front of the connection for its
//! whole life), hyper's dispatcher, the upgrade's channel between the connection's task and
//! the route, and a boxed `dyn` connection behind every read and write of the session, whose
//! relay then ran in a task of its own: the largest part of what a session cost in user space
//! beside nginx (loadtest/README.md, "eighth stop"). Here the head is parsed with `httparse`
//! (as hyper does), read where it lies (its target and its lines, `crate::fields`; copying it
//! into an `http::Request` cost more than the parse), routed by the same code
//! (`routes::direct_exec`: the same checks, refusals, audit and metrics), and the answer's
//! head written in one write.
//!
//! Anything else goes to hyper with every byte read put back in front of the connection: a
//! head that did not come whole in the first read, any other request, HTTP/2's preface,
//! HTTP/1.0, a request with a body, more than [`MAX_HEADERS`] headers, anything hyper would
//! parse differently or refuse. After a refusal answered here, the connection goes on under
//! hyper as any keep-alive connection does, unless the client asked to close it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use http_body_util::BodyExt as _;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::io::AsyncWriteExt as _;

use crate::fields::{self, Fields};
use crate::gateway::Gateway;
use crate::routes::{self, Body, ExecPath};
use crate::tcp::{self, ClientIo};

/// The most headers a request answered here may have (hyper's own limit is 100; an exec
/// request from kubectl or a browser behind a gateway has about 15).
pub const MAX_HEADERS: usize = 64;

/// The most bytes of a refusal's body written here (they are `Status` JSON, or the cluster's
/// own refusal, which the cluster's upgrade read up to 64 KiB).
const MAX_REFUSAL_BODY: usize = 1024 * 1024;

/// A request head read whole from the connection's first bytes, to be answered here: an exec
/// or attach WebSocket upgrade, its lines borrowed from the read.
#[derive(Debug)]
pub struct Head<'a> {
    /// The target's path (origin form, as `Uri` reads it), for the tests to compare; the
    /// routes take `exec`.
    #[cfg(test)]
    pub path: &'a str,
    /// The path, read as an exec or attach path.
    pub exec: ExecPath<'a>,
    /// The target's query, after its `?`.
    pub query: Option<&'a str>,
    /// The header lines, in order.
    pub lines: Vec<httparse::Header<'a>>,
    /// The head's length in bytes, CRLF CRLF included.
    pub len: usize,
    /// The client asked for the connection to close after this request (`Connection: close`).
    pub close: bool,
}

impl<'a> Head<'a> {
    /// The head's header fields, by name.
    pub fn fields(&self) -> Fields<'_> {
        Fields::Lines(&self.lines)
    }
}

/// `read` (a connection's first bytes) as an exec or attach WebSocket upgrade to answer
/// here, or `None` when hyper should serve the connection. What is answered here is read as
/// hyper reads it (httparse, and what `Uri`, `HeaderName` and `HeaderValue` take: held to
/// hyper's own server by the tests), without copying it into hyper's types: the routes read
/// the lines where they lie (`crate::fields`).
pub fn parse(read: &[u8]) -> Option<Head<'_>> {
    // Slots left uninitialised: httparse writes those it fills, where 64 empty headers were
    // written first for every request.
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(read, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        // Not whole yet, too many headers, not HTTP/1 (HTTP/2's preface among them).
        _ => return None,
    };
    if parsed.method != Some("GET") || parsed.version != Some(1) {
        return None;
    }
    let (path, query) = fields::origin_form(parsed.path?)?;
    let exec = ExecPath::of(path)?;
    // What `Fields::is_upgrade` asks, read in the same pass (it would read the lines twice
    // more): `Connection` lists `upgrade`, `Upgrade` lists `websocket`.
    let (mut close, mut connection_upgrade, mut websocket) = (false, false, false);
    for line in parsed.headers.iter() {
        let name = line.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            // A body: not an upgrade as browsers and kubectl send one; hyper's to judge.
            return None;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            close |= fields::has_token(line.value, "close");
            connection_upgrade |= fields::has_token(line.value, "upgrade");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            websocket |= fields::has_token(line.value, "websocket");
        }
    }
    if !(connection_upgrade && websocket) {
        return None;
    }
    let head = Head {
        #[cfg(test)]
        path,
        exec,
        query,
        lines: parsed.headers.to_vec(),
        len,
        close,
    };
    debug_assert!(head.fields().is_upgrade());
    Some(head)
}

/// What became of a connection's first request.
pub enum First {
    /// Answered 101 here: the session, to run on the connection once the connection's count
    /// was given back (an upgraded connection counts as a session, not a connection). Boxed:
    /// held unboxed where the connection's task awaits it, it kept its 330 bytes in the
    /// task beside the relay it became, for the session's whole life.
    Session(Box<Session>),
    /// The connection ended (closed, failed, timed out, or answered and closed).
    Ended,
    /// hyper serves the connection from here, with every byte not answered put back;
    /// `answered`: after a refusal answered here.
    Hyper { stream: tcp::Stream, answered: bool },
}

/// An accepted session and the connection its 101 went out on.
pub struct Session {
    accepted: crate::session::Accepted,
    client: Result<ClientIo, String>,
}

impl Session {
    /// Relays the session until it ends, then reports it.
    pub fn run(self: Box<Self>) -> impl Future<Output = ()> + Send {
        let Session { accepted, client } = *self;
        accepted.run(client)
    }
}

/// Reads the connection's first bytes and answers them here if they are a whole exec or
/// attach upgrade ([`parse`]). The read waits at most until `read_by` (the header-read
/// timeout from the connection's start) or the gateway closes.
pub async fn first(
    gateway: &Arc<Gateway>,
    mut stream: tcp::Stream,
    peer: SocketAddr,
    read_by: tokio::time::Instant,
) -> First {
    let mut buf = BytesMut::with_capacity(tcp::FIRST_READ_BYTES);
    // The read first: a request already there is read before the other two are polled, so
    // that they register nothing (as serve_connection's idle wait).
    let read = tokio::select! {
        biased;
        read = stream.read_first(&mut buf) => read,
        () = gateway.drain.session_deadline() => return First::Ended,
        () = tokio::time::sleep_until(read_by) => return First::Ended,
    };
    match read {
        Ok(0) => return First::Ended,
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
            return First::Ended;
        }
    }
    let Some(head) = parse(&buf) else {
        stream.read_ahead(&buf);
        return First::Hyper {
            stream,
            answered: false,
        };
    };
    // Bytes behind the head (a client that did not wait for the 101) stay for the session.
    stream.read_ahead(&buf[head.len..]);
    let mut accepted = None;
    // Boxed: the admission and the cluster's upgrade are a large future, and the session runs
    // in this task after them (its size is the largest of the two).
    let res = Box::pin(routes::direct_exec(
        gateway,
        head.exec,
        head.query,
        head.fields(),
        peer,
        &mut accepted,
    ))
    .await;
    match accepted {
        Some(accepted) => {
            debug_assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
            let head = accepted.head();
            let client = match stream.write_all(&head).await {
                Ok(()) => Ok(ClientIo::Direct(stream)),
                Err(e) => Err(format!("writing the 101: {e}")),
            };
            First::Session(Box::new(Session { accepted, client }))
        }
        None => {
            if answer(&mut stream, res, head.close, peer).await.is_err() || head.close {
                return First::Ended;
            }
            First::Hyper {
                stream,
                answered: true,
            }
        }
    }
}

/// Writes a response that is not an upgrade, whole, with its length (and `connection: close`
/// when the connection closes after it).
async fn answer(
    stream: &mut tcp::Stream,
    res: Response<Body>,
    close: bool,
    peer: SocketAddr,
) -> Result<(), ()> {
    let (parts, mut body) = res.into_parts();
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => frame.into_data().unwrap_or_default(),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "a refusal's body could not be read");
                return Err(());
            }
        };
        if bytes.len() + data.len() > MAX_REFUSAL_BODY {
            tracing::debug!(%peer, "a refusal's body is too long to write");
            return Err(());
        }
        bytes.extend_from_slice(&data);
    }
    let body = bytes.freeze();
    let mut res = Response::from_parts(parts, ());
    if close {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let mut out = response_head(&res, Some(body.len()));
    out.extend_from_slice(&body);
    stream.write_all(&out).await.map_err(|e| {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    })
}

/// The response's head as hyper writes it: the status line, the headers as they are, and
/// for a response with a body its `content-length` and `date` (RFC 9110 §6.6.1: an origin
/// server with a clock sends `Date` in every 2xx to 4xx answer).
pub fn response_head<B>(res: &Response<B>, body_len: Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let status = res.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in res.headers() {
        if body_len.is_some()
            && (name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING)
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(len) = body_len {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        if !res.headers().contains_key(header::DATE) {
            out.extend_from_slice(b"date: ");
            out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests;
