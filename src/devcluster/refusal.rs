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
    Response::builder()
        .status(code)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header("Cache-Control", "no-cache, private")
        .body(full(body))
        .expect("a valid response")
}
