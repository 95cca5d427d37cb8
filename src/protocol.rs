//! The Kubernetes exec channel protocol: constants, frame checks, `Status`, resize — pure code.
//!
//! | byte | name   | direction        | payload                                              |
//! |------|--------|------------------|------------------------------------------------------|
//! | 0    | stdin  | client → cluster | raw bytes                                            |
//! | 1    | stdout | cluster → client | raw bytes                                            |
//! | 2    | stderr | cluster → client | raw bytes                                            |
//! | 3    | error  | cluster → client | one `Status` JSON; exit code in `details.causes`     |
//! | 4    | resize | client → cluster | `{"Width":W,"Height":H}`                             |
//! | 255  | close  | client → cluster | v5 only: `[255, 0]` = stdin EOF                      |
//!
//! Every frame is a binary WebSocket message `[channel][payload]`; a frame with an empty
//! payload is a "ready" frame and is ignored. Subprotocols are offered and accepted in the
//! order of [`SUBPROTOCOLS`].

pub mod exec_query;
pub mod flow;
pub mod log_query;
pub mod resume;
pub mod tar;
pub mod time;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Subprotocol that adds the close channel (255); preferred.
pub const V5: &str = "v5.channel.k8s.io";
/// Subprotocol with channels 0–4 and a JSON error channel.
pub const V4: &str = "v4.channel.k8s.io";
/// Supported subprotocols, most preferred first.
pub const SUBPROTOCOLS: [&str; 2] = [V5, V4];

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// Largest terminal dimension accepted in a resize, in cells.
pub const MAX_TERMINAL_CELLS: u16 = 10_000;
/// Largest resize payload accepted, in bytes (the JSON is ~30 bytes).
pub const MAX_RESIZE_BYTES: usize = 256;

/// `TERM` for interactive sessions.
pub const TERM: &str = "xterm-256color";

/// The argv run when an exec names no command: bash if present, else sh, with a sane `TERM`.
pub fn default_shell() -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        "TERM=xterm-256color; export TERM; command -v bash >/dev/null 2>&1 && exec bash || exec sh"
            .into(),
    ]
}

/// A channel of the exec protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Stdin,
    Stdout,
    Stderr,
    Error,
    Resize,
    Close,
}

impl Channel {
    pub fn from_byte(b: u8) -> Option<Channel> {
        Some(match b {
            STDIN => Channel::Stdin,
            STDOUT => Channel::Stdout,
            STDERR => Channel::Stderr,
            ERROR => Channel::Error,
            RESIZE => Channel::Resize,
            CLOSE => Channel::Close,
            _ => return None,
        })
    }

    pub fn byte(self) -> u8 {
        match self {
            Channel::Stdin => STDIN,
            Channel::Stdout => STDOUT,
            Channel::Stderr => STDERR,
            Channel::Error => ERROR,
            Channel::Resize => RESIZE,
            Channel::Close => CLOSE,
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty frame: no channel byte")]
    Empty,
    #[error("unknown channel {0}")]
    UnknownChannel(u8),
    #[error("channel {0} may not be sent by the client")]
    ForbiddenChannel(u8),
    #[error("channel 255 requires the v5 protocol")]
    CloseNeedsV5,
    #[error("bad close frame: expected [255, stream]")]
    BadClose,
    #[error("bad resize: {0}")]
    BadResize(#[from] ResizeError),
}

/// Splits a frame into its channel and payload.
pub fn split_frame(frame: &[u8]) -> Result<(Channel, &[u8]), FrameError> {
    let (&first, payload) = frame.split_first().ok_or(FrameError::Empty)?;
    let channel = Channel::from_byte(first).ok_or(FrameError::UnknownChannel(first))?;
    Ok((channel, payload))
}

/// What a client-to-cluster frame asks for, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Bytes for stdin (may be empty: a "ready" frame).
    Stdin(&'a [u8]),
    /// The terminal's new size.
    Resize(TerminalSize),
    /// v5: the client closed the given stream (0 = stdin EOF).
    CloseStream(u8),
}

/// Checks a frame sent by a client (browser, kubectl) toward the cluster: only stdin, resize
/// (valid, bounded JSON) and, under v5, close may pass.
pub fn check_client_frame(frame: &[u8], v5: bool) -> Result<ClientFrame<'_>, FrameError> {
    let (channel, payload) = split_frame(frame)?;
    match channel {
        Channel::Stdin => Ok(ClientFrame::Stdin(payload)),
        Channel::Resize => Ok(ClientFrame::Resize(parse_resize(payload)?)),
        Channel::Close if !v5 => Err(FrameError::CloseNeedsV5),
        Channel::Close => match payload {
            [stream] => Ok(ClientFrame::CloseStream(*stream)),
            _ => Err(FrameError::BadClose),
        },
        other => Err(FrameError::ForbiddenChannel(other.byte())),
    }
}

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Why a resize payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResizeError {
    #[error("payload of {0} bytes exceeds {MAX_RESIZE_BYTES}")]
    TooLarge(usize),
    #[error("not a {{\"Width\":W,\"Height\":H}} object")]
    Malformed,
    #[error("size {0}x{1} out of range 1..={MAX_TERMINAL_CELLS}")]
    OutOfRange(u32, u32),
}

/// Parses and bounds-checks a channel-4 payload.
pub fn parse_resize(payload: &[u8]) -> Result<TerminalSize, ResizeError> {
    if payload.len() > MAX_RESIZE_BYTES {
        return Err(ResizeError::TooLarge(payload.len()));
    }
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "Width")]
        width: u32,
        #[serde(rename = "Height")]
        height: u32,
    }
    let raw: Raw = serde_json::from_slice(payload).map_err(|_| ResizeError::Malformed)?;
    let ok = |v: u32| (1..=u32::from(MAX_TERMINAL_CELLS)).contains(&v);
    if !ok(raw.width) || !ok(raw.height) {
        return Err(ResizeError::OutOfRange(raw.width, raw.height));
    }
    Ok(TerminalSize {
        width: raw.width as u16,
        height: raw.height as u16,
    })
}

/// Encodes a resize frame (channel byte included).
#[cfg(any(test, feature = "test-util"))]
pub fn resize_frame(size: TerminalSize) -> Vec<u8> {
    let mut out = vec![RESIZE];
    serde_json::to_writer(&mut out, &size).expect("serializing a size cannot fail");
    out
}

/// A Kubernetes `meta/v1` `Status`, as the API server sends it in bodies and on channel 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default = "status_kind")]
    pub kind: String,
    #[serde(default = "status_api_version")]
    pub api_version: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: u16,
}

fn status_kind() -> String {
    "Status".into()
}
fn status_api_version() -> String {
    "v1".into()
}
fn is_zero(v: &u16) -> bool {
    *v == 0
}

/// [`Status::exit_code`] from a status's `status`, `reason` and causes (reason, message).
fn exit_code_of<'a>(
    status: &str,
    reason: &str,
    mut causes: impl Iterator<Item = (&'a str, &'a str)>,
) -> Option<i32> {
    if status == "Success" {
        return Some(0);
    }
    if reason != "NonZeroExitCode" {
        return None;
    }
    causes
        .find(|(reason, _)| *reason == "ExitCode")
        .and_then(|(_, message)| message.parse().ok())
}

/// What a session keeps of the `Status` the cluster sends on channel 3 as its command ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The command's exit code ([`Status::exit_code`]).
    Exited(i32),
    /// Any other status (the command could not start, …): its message.
    Failed(String),
}

impl Ended {
    /// `json` read exactly as `serde_json::from_slice::<Status>` reads it (the same fields
    /// and types, the same refusals: `None` where that fails), without building the
    /// `Status`: text borrowed where it has no escapes, no default text built, no box. Every
    /// session that runs a command to its end reads one of these.
    pub fn read(json: &[u8]) -> Option<Ended> {
        // The success as kubelet writes it (`metav1.Status{Status: "Success"}`, no kind or
        // version on channel 3) and as a Status with its kind and version is written:
        // nearly every session's, and a third of the cost of reading it.
        if json == br#"{"metadata":{},"status":"Success"}"#
            || json == br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}"#
        {
            return Some(Ended::Exited(0));
        }
        let view: StatusView<'_> = serde_json::from_slice(json).ok()?;
        let causes = view.details.iter().flat_map(|d| &d.causes);
        Some(
            match exit_code_of(
                &view.status,
                &view.reason,
                causes.map(|c| (&*c.reason, &*c.message)),
            ) {
                Some(code) => Ended::Exited(code),
                None => Ended::Failed(view.message.into_owned()),
            },
        )
    }
}

/// [`Status`] with the same fields, types and defaults, borrowing its text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Read for their types, as `Status` reads them; never used.
struct StatusView<'a> {
    #[serde(default, borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    api_version: Cow<'a, str>,
    /// As `Status`'s own (`IgnoredAny` would take numbers and escapes a `Value` refuses);
    /// empty, it allocates nothing.
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Cow<'a, str>,
    #[serde(default, borrow)]
    reason: Cow<'a, str>,
    #[serde(default, borrow)]
    details: Option<DetailsView<'a>>,
    #[serde(default)]
    code: u16,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // As StatusView.
struct DetailsView<'a> {
    #[serde(default, borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    group: Cow<'a, str>,
    #[serde(default, borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    causes: Vec<CauseView<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // As StatusView.
struct CauseView<'a> {
    #[serde(default, borrow)]
    reason: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Cow<'a, str>,
    #[serde(default, borrow)]
    field: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// Longest close reason a close frame can carry: a control frame's 125 bytes less the code.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// `text` split at each `sep`, an ASCII byte: the pieces `text.split(char::from(sep))`
/// gives, found a byte at a time. For the short pieces of a path or a query, `str::split`'s
/// `memchr` costs more to set up for each piece than the scan itself.
pub fn split_ascii(text: &str, sep: u8) -> impl Iterator<Item = &str> {
    debug_assert!(sep.is_ascii());
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let piece = rest?;
        match split_once_ascii(piece, sep) {
            Some((first, after)) => {
                rest = Some(after);
                Some(first)
            }
            None => {
                rest = None;
                Some(piece)
            }
        }
    })
}

/// `text` split at its first `sep`, an ASCII byte, as `str::split_once` would.
pub fn split_once_ascii(text: &str, sep: u8) -> Option<(&str, &str)> {
    debug_assert!(sep.is_ascii());
    let at = text.bytes().position(|b| b == sep)?;
    // An ASCII byte's index is a character boundary, on both sides.
    Some((&text[..at], &text[at + 1..]))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The reason the API server gives for a standard HTTP error code.
pub fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "AlreadyExists",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

impl Status {
    /// A `Failure` status with the standard reason for `code`.
    /// A `Success` status with `message` (code 200).
    pub fn success(message: impl Into<String>) -> Status {
        Status {
            status: "Success".into(),
            reason: String::new(),
            code: 200,
            ..Status::failure(200, message)
        }
    }

    pub fn failure(code: u16, message: impl Into<String>) -> Status {
        Status {
            kind: status_kind(),
            api_version: status_api_version(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason_for_code(code).into(),
            code,
            ..Status::default()
        }
    }

    /// Adds `details` naming the object the error is about (as `NotFound` and `Forbidden` do).
    pub fn with_details(mut self, kind: &str, name: &str) -> Status {
        self.details = Some(StatusDetails {
            name: name.into(),
            kind: kind.into(),
            ..StatusDetails::default()
        });
        self
    }

    /// The status sent on channel 3 when the command ended with `exit_code`.
    pub fn exit(exit_code: i32) -> Status {
        if exit_code == 0 {
            return Status {
                kind: status_kind(),
                api_version: status_api_version(),
                status: "Success".into(),
                ..Status::default()
            };
        }
        Status {
            kind: status_kind(),
            api_version: status_api_version(),
            status: "Failure".into(),
            message: format!("command terminated with non-zero exit code: exit status {exit_code}"),
            reason: "NonZeroExitCode".into(),
            details: Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: "ExitCode".into(),
                    message: exit_code.to_string(),
                    ..StatusCause::default()
                }],
                ..StatusDetails::default()
            }),
            ..Status::default()
        }
    }

    /// The exit code this status reports: 0 for `Success`, the `ExitCode` cause for
    /// `NonZeroExitCode`, `None` for any other failure.
    pub fn exit_code(&self) -> Option<i32> {
        exit_code_of(
            &self.status,
            &self.reason,
            self.details
                .iter()
                .flat_map(|d| &d.causes)
                .map(|c| (&*c.reason, &*c.message)),
        )
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializing a Status cannot fail")
    }

    /// Channel-3 frame carrying this status.
    pub fn to_error_frame(&self) -> Vec<u8> {
        let mut out = vec![ERROR];
        serde_json::to_writer(&mut out, self).expect("serializing a Status cannot fail");
        out
    }
}

/// RFC 6455 §1.3.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The length of a `Sec-WebSocket-Accept` value: a SHA-1 digest in base64.
pub const ACCEPT_LEN: usize = 28;

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2): the server's answer to a client's
/// key, and what a client expects back for its own. On the stack: a client compares it where
/// the answer lies, and a server copies it into its header value.
pub fn accept_for(key: &[u8]) -> [u8; ACCEPT_LEN] {
    use base64::Engine as _;
    use sha1::Digest as _;
    let mut sha1 = sha1::Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID);
    let mut accept = [0u8; ACCEPT_LEN];
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(sha1.finalize(), &mut accept)
        .expect("20 bytes are 28 in base64");
    debug_assert_eq!(written, ACCEPT_LEN);
    accept
}

/// Picks the subprotocol to answer from a `Sec-WebSocket-Protocol` request header value
/// (comma-separated, possibly repeated headers joined), preferring v5.
pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    let offered: Vec<&str> = offered
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect();
    SUBPROTOCOLS.into_iter().find(|p| offered.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_utf8("abc", 2), "ab");
        assert_eq!(truncate_utf8("é", 1), "");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }

    #[test]
    fn channels_round_trip() {
        for b in [STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE] {
            assert_eq!(Channel::from_byte(b).unwrap().byte(), b);
        }
        for b in 5..255 {
            assert_eq!(Channel::from_byte(b), None);
        }
    }

    #[test]
    fn client_frames() {
        assert_eq!(
            check_client_frame(b"\0ls\n", true),
            Ok(ClientFrame::Stdin(b"ls\n"))
        );
        assert_eq!(check_client_frame(b"\0", true), Ok(ClientFrame::Stdin(b"")));
        assert_eq!(
            check_client_frame(b"\x04{\"Width\":80,\"Height\":24}", false),
            Ok(ClientFrame::Resize(TerminalSize {
                width: 80,
                height: 24
            }))
        );
        assert_eq!(
            check_client_frame(&[255, 0], true),
            Ok(ClientFrame::CloseStream(0))
        );
        assert_eq!(
            check_client_frame(&[255, 0], false),
            Err(FrameError::CloseNeedsV5)
        );
        assert_eq!(check_client_frame(&[255], true), Err(FrameError::BadClose));
        assert_eq!(
            check_client_frame(&[255, 0, 1], true),
            Err(FrameError::BadClose)
        );
        assert_eq!(check_client_frame(b"", true), Err(FrameError::Empty));
        for forbidden in [STDOUT, STDERR, ERROR] {
            assert_eq!(
                check_client_frame(&[forbidden, b'x'], true),
                Err(FrameError::ForbiddenChannel(forbidden))
            );
        }
        assert_eq!(
            check_client_frame(&[9, 1], true),
            Err(FrameError::UnknownChannel(9))
        );
    }

    #[test]
    fn resize_bounds() {
        assert!(matches!(parse_resize(b"{}"), Err(ResizeError::Malformed)));
        assert!(matches!(parse_resize(b"nope"), Err(ResizeError::Malformed)));
        assert!(matches!(
            parse_resize(b"{\"Width\":-1,\"Height\":2}"),
            Err(ResizeError::Malformed)
        ));
        assert!(matches!(
            parse_resize(b"{\"Width\":0,\"Height\":2}"),
            Err(ResizeError::OutOfRange(0, 2))
        ));
        assert!(matches!(
            parse_resize(b"{\"Width\":10001,\"Height\":2}"),
            Err(ResizeError::OutOfRange(10001, 2))
        ));
        assert!(matches!(
            parse_resize(&[b' '; 300]),
            Err(ResizeError::TooLarge(300))
        ));
        let size = TerminalSize {
            width: 132,
            height: 43,
        };
        let frame = resize_frame(size);
        assert_eq!(frame[0], RESIZE);
        assert_eq!(parse_resize(&frame[1..]), Ok(size));
    }

    #[test]
    fn exit_status_round_trip() {
        for code in [0, 1, 7, 255] {
            let frame = Status::exit(code).to_error_frame();
            let (ch, payload) = split_frame(&frame).unwrap();
            assert_eq!(ch, Channel::Error);
            let status: Status = serde_json::from_slice(payload).unwrap();
            assert_eq!(status.exit_code(), Some(code));
        }
        let other = Status::failure(500, "boom");
        assert_eq!(other.exit_code(), None);
    }

    /// What a session kept before [`Ended::read`]: the whole `Status`, then its exit code or
    /// its message.
    fn ended_by_status(json: &[u8]) -> Option<Ended> {
        let status: Status = serde_json::from_slice(json).ok()?;
        Some(match status.exit_code() {
            Some(code) => Ended::Exited(code),
            None => Ended::Failed(status.message),
        })
    }

    #[test]
    fn ended_reads_what_status_reads() {
        let docs: &[&str] = &[
            // The API server's own (kubelet's remotecommand `v4` error writer).
            r#"{"metadata":{},"status":"Success"}"#,
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 2","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"2"}]}}"#,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"exec: \"nope\": executable file not found in $PATH","reason":"InternalError","code":500}"#,
            // Escapes in the text read (borrowed text has none).
            r#"{"status":"Failure","message":"a\u00e9\n\t\"b\"","reason":"Non\u005aeroExitCode","details":{"causes":[{"reason":"Exit\u0043ode","message":"\u0037"}]}}"#,
            r#"{"status":"Succ\u0065ss"}"#,
            // Causes: the first ExitCode one counts; one that is not a number gives none.
            r#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"Other","message":"9"},{"reason":"ExitCode","message":"x"},{"reason":"ExitCode","message":"4"}]}}"#,
            r#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"-3"}]}}"#,
            r#"{"status":"Failure","reason":"NonZeroExitCode","details":null,"message":"m"}"#,
            r#"{"status":"Failure","reason":"NonZeroExitCode"}"#,
            // Unknown fields and metadata of every kind.
            r#"{"status":"Success","extra":[1,{"a":null}],"metadata":{"resourceVersion":"1","x":[1.5e3,true]}}"#,
            // What `Status` refuses, `Ended::read` refuses.
            r#"{"metadata":{}}"#,
            r#"{"status":null}"#,
            r#"{"status":"Success","kind":null}"#,
            r#"{"status":"Success","metadata":[]}"#,
            r#"{"status":"Success","metadata":{"n":1e999}}"#,
            r#"{"status":"Success","metadata":{"s":"\ud800"}}"#,
            r#"{"status":"Success","code":70000}"#,
            r#"{"status":"Success","code":-1}"#,
            r#"{"status":"Success","status":"Failure"}"#,
            r#"{"status":"Failure","details":{"causes":{}}}"#,
            r#"{"status":"Failure","details":{"causes":[{"field":1}]}}"#,
            r#"{"status":"Success"} trailing"#,
            r#"{"status":"Success""#,
            r#"[]"#,
            "",
            "\u{0}",
        ];
        let success = String::from_utf8(Status::exit(0).to_json()).unwrap();
        for doc in docs.iter().chain([&&*success]) {
            assert_eq!(
                Ended::read(doc.as_bytes()),
                ended_by_status(doc.as_bytes()),
                "{doc}"
            );
        }
        // The two read without serde are the two successes there are: kubelet's, and ours.
        assert_eq!(docs[0], r#"{"metadata":{},"status":"Success"}"#);
        assert_eq!(
            success,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}"#
        );
        // The cases above cover both answers and refusals.
        assert_eq!(Ended::read(docs[1].as_bytes()), Some(Ended::Exited(2)));
        assert!(
            matches!(Ended::read(docs[2].as_bytes()), Some(Ended::Failed(m)) if m.contains("nope"))
        );
        assert_eq!(Ended::read(docs[3].as_bytes()), Some(Ended::Exited(7)));
        assert_eq!(Ended::read(docs[10].as_bytes()), None);
    }

    proptest::proptest! {
        /// Statuses of every shape, whole and cut short, read the same both ways.
        #[test]
        fn ended_reads_generated_statuses_as_status_does(
            status in "(Success|Failure|[a-zA-Z\u{e9}\"\\\\]{0,8})",
            reason in "(NonZeroExitCode|ExitCode|[a-z\u{0}-\u{1f}\"]{0,6})",
            message in ".{0,12}",
            causes in proptest::collection::vec(("(ExitCode|[A-Za-z]{0,5})", "(-?[0-9]{1,11}|.{0,4})"), 0..4),
            code in 0u16..1000,
            cut in 0usize..400,
        ) {
            let mut status = Status {
                status,
                reason,
                message,
                code,
                ..Status::default()
            };
            if !causes.is_empty() {
                status.details = Some(StatusDetails {
                    causes: causes
                        .into_iter()
                        .map(|(reason, message)| StatusCause { reason, message, ..StatusCause::default() })
                        .collect(),
                    ..StatusDetails::default()
                });
            }
            let json = status.to_json();
            proptest::prop_assert_eq!(Ended::read(&json), ended_by_status(&json));
            let cut = &json[..cut.min(json.len())];
            proptest::prop_assert_eq!(Ended::read(cut), ended_by_status(cut));
        }
    }

    proptest::proptest! {
        #[test]
        fn ascii_splits_are_str_splits(
            text in "[a/&=;\u{e9}\u{1F600}]{0,24}",
            sep in proptest::sample::select(vec![b'/', b'&', b'=', b';', b'a']),
        ) {
            let expected: Vec<&str> = text.split(char::from(sep)).collect();
            proptest::prop_assert_eq!(split_ascii(&text, sep).collect::<Vec<_>>(), expected);
            proptest::prop_assert_eq!(split_once_ascii(&text, sep), text.split_once(char::from(sep)));
        }
    }

    #[test]
    fn exit_status_matches_api_server_shape() {
        let json: serde_json::Value = serde_json::from_slice(&Status::exit(3).to_json()).unwrap();
        assert_eq!(json["reason"], "NonZeroExitCode");
        assert_eq!(json["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(json["details"]["causes"][0]["message"], "3");
        let ok: serde_json::Value = serde_json::from_slice(&Status::exit(0).to_json()).unwrap();
        assert_eq!(ok["status"], "Success");
    }

    #[test]
    fn failure_statuses() {
        let s = Status::failure(404, "pods \"x\" not found").with_details("pods", "x");
        let json: serde_json::Value = serde_json::from_slice(&s.to_json()).unwrap();
        assert_eq!(json["kind"], "Status");
        assert_eq!(json["apiVersion"], "v1");
        assert_eq!(json["code"], 404);
        assert_eq!(json["reason"], "NotFound");
        assert_eq!(json["details"]["kind"], "pods");
    }

    #[test]
    fn negotiation_prefers_v5() {
        assert_eq!(
            negotiate(["v4.channel.k8s.io, v5.channel.k8s.io"]),
            Some(V5)
        );
        assert_eq!(negotiate(["v4.channel.k8s.io"]), Some(V4));
        assert_eq!(negotiate(["channel.k8s.io", "base64.channel.k8s.io"]), None);
        assert_eq!(
            negotiate(["v3.channel.k8s.io", "v5.channel.k8s.io"]),
            Some(V5)
        );
        assert_eq!(negotiate([]), None);
    }
}
