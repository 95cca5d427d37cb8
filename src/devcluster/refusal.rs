//! How the dev cluster refuses a request: the API server's `Status`, sent with its HTTP code.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Response, StatusCode};

use crate::protocol::Status;

/// Every dev cluster response body: whole, or streamed (`pods/log?follow=true`).
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A request refused before any upgrade: the API server's `Status`, sent with its HTTP code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} ({})", .0.message, .0.code)]
pub struct Refusal(pub Box<Status>);

impl From<Status> for Refusal {
    fn from(status: Status) -> Self {
        Refusal(Box::new(status))
    }
}

/// A `Failure` refusal with the standard reason for `code`.
pub fn refuse(code: u16, message: impl Into<String>) -> Refusal {
    Status::failure(code, message).into()
}

/// `pods "x" not found`, as the API server says it.
pub fn not_found(resource: &str, name: &str) -> Status {
    Status::failure(404, format!("{resource} \"{name}\" not found")).with_details(resource, name)
}

/// A `Status` as an HTTP response with its code.
pub fn status_response(status: &Status) -> Response<Body> {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    bytes_response(code, "application/json", status.to_json())
}

pub(crate) fn bytes_response(
    code: StatusCode,
    content_type: &str,
    body: Vec<u8>,
) -> Response<Body> {
    response(code, content_type, full(body))
}

/// A 200 whose body comes chunk by chunk from `chunks` (a follow, a watch) and ends when
/// their sender is dropped.
pub(crate) fn streamed_response(
    content_type: &str,
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
) -> Response<Body> {
    response(StatusCode::OK, content_type, Streamed(chunks).boxed())
}

fn response(code: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header("Cache-Control", "no-cache, private")
        .body(body)
        .expect("a valid response")
}

/// A body fed chunk by chunk from a channel; it ends when the sender is dropped.
struct Streamed(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}
