//! The `pods/log` query (`PodLogOptions`), read as kube-apiserver reads it, and the strict
//! reading podterm admits and re-encodes.
//!
//! The API server reads it like the exec query (crate::protocol::exec_query: Go's
//! `url.ParseQuery`, then apimachinery's conversion, first value of each key): booleans as
//! `Convert_Slice_string_To_bool`, integers as `Convert_Slice_string_To_int64`
//! (`strconv.ParseInt(s, 10, 64)`, an error is a 400), `sinceTime` as
//! `Convert_Slice_string_To_v1_Time` (`time.Parse(time.RFC3339, …)`). Then
//! `ValidatePodLogOptions` (pkg/apis/core/validation): `tailLines` ≥ 0, `limitBytes` ≥ 1,
//! `sinceSeconds` ≥ 1, and at most one of `sinceSeconds` and `sinceTime`.
//!
//! podterm refuses what the exec query refuses (dropped pairs, a repeated key, text that is
//! not UTF-8) and `insecureSkipTLSVerifyBackend=true`: podterm never asks the API server to
//! skip verifying the kubelet.

use super::exec_query::{Dropped, MAX_QUERY_PAIRS, Unclear, Values};

/// The keys of `PodLogOptions`; each may be given once.
pub const LOG_KEYS: [&str; 10] = [
    "container",
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "tailLines",
    "limitBytes",
    "insecureSkipTLSVerifyBackend",
    "stream",
];

/// `PodLogOptions` as podterm admits it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_seconds: Option<i64>,
    /// RFC 3339, as given (checked to parse).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_time: Option<String>,
    pub timestamps: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_lines: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<i64>,
    /// `All`, `Stdout` or `Stderr` (1.32+); `None`: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// Why a log query is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogQueryError {
    #[error("the log query has a pair kube-apiserver drops: {0:?}")]
    Dropped(String),
    #[error("the log query gives `{0}` more than once; give it once")]
    Repeated(&'static str),
    #[error("the log query's `{0}` is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("the log query has more than {MAX_QUERY_PAIRS} parameters")]
    TooManyPairs,
    #[error("the log query's `{key}` must be an integer, not {value:?}")]
    NotInteger { key: &'static str, value: String },
    #[error("the log query's `sinceTime` must be an RFC 3339 time, not {0:?}")]
    BadTime(String),
    #[error("the log query's `{key}` must be at least {min}")]
    TooSmall { key: &'static str, min: i64 },
    #[error("at most one of `sinceTime` or `sinceSeconds` may be specified")]
    BothSince,
    #[error("the log query's `stream` must be All, Stdout or Stderr, not {0:?}")]
    BadStream(String),
    #[error("podterm does not ask the API server to skip verifying the kubelet's certificate")]
    InsecureBackend,
}

impl LogQuery {
    /// Parses a `pods/log` query strictly.
    pub fn parse(query: &str) -> Result<LogQuery, LogQueryError> {
        let values = Values::parse_strict(query, &LOG_KEYS).map_err(|e| match e {
            Unclear::Dropped(Dropped::Semicolon(pair) | Dropped::BadEscape(pair)) => {
                LogQueryError::Dropped(pair)
            }
            Unclear::TooManyPairs => LogQueryError::TooManyPairs,
            Unclear::Repeated(key) => LogQueryError::Repeated(key),
        })?;
        let text = |key: &'static str| values.text(key).map_err(|_| LogQueryError::NotUtf8(key));
        let integer = |key: &'static str, min: i64| -> Result<Option<i64>, LogQueryError> {
            let Some(value) = text(key)? else {
                return Ok(None);
            };
            let n = parse_go_int(&value).ok_or(LogQueryError::NotInteger { key, value })?;
            if n < min {
                return Err(LogQueryError::TooSmall { key, min });
            }
            Ok(Some(n))
        };
        if values.flag("insecureSkipTLSVerifyBackend") {
            return Err(LogQueryError::InsecureBackend);
        }
        let since_time = text("sinceTime")?;
        if let Some(t) = &since_time
            && t.parse::<jiff::Timestamp>().is_err()
        {
            return Err(LogQueryError::BadTime(t.clone()));
        }
        let stream = text("stream")?;
        if let Some(s) = &stream
            && !matches!(s.as_str(), "All" | "Stdout" | "Stderr")
        {
            return Err(LogQueryError::BadStream(s.clone()));
        }
        let query = LogQuery {
            container: text("container")?.filter(|c| !c.is_empty()),
            follow: values.flag("follow"),
            previous: values.flag("previous"),
            since_seconds: integer("sinceSeconds", 1)?,
            since_time,
            timestamps: values.flag("timestamps"),
            tail_lines: integer("tailLines", 0)?,
            limit_bytes: integer("limitBytes", 1)?,
            stream,
        };
        if query.since_seconds.is_some() && query.since_time.is_some() {
            return Err(LogQueryError::BothSince);
        }
        Ok(query)
    }

    /// The query podterm sends upstream, made from this value alone.
    pub fn encode(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(c) = &self.container {
            q.append_pair("container", c);
        }
        for (key, on) in [
            ("follow", self.follow),
            ("previous", self.previous),
            ("timestamps", self.timestamps),
        ] {
            if on {
                q.append_pair(key, "true");
            }
        }
        for (key, n) in [
            ("sinceSeconds", self.since_seconds),
            ("tailLines", self.tail_lines),
            ("limitBytes", self.limit_bytes),
        ] {
            if let Some(n) = n {
                q.append_pair(key, &n.to_string());
            }
        }
        if let Some(t) = &self.since_time {
            q.append_pair("sinceTime", t);
        }
        if let Some(s) = &self.stream {
            q.append_pair("stream", s);
        }
        q.finish()
    }

    /// `/api/v1/namespaces/{namespace}/pods/{pod}/log?{query}`.
    pub fn path(&self, namespace: &str, pod: &str) -> String {
        let query = self.encode();
        if query.is_empty() {
            format!("/api/v1/namespaces/{namespace}/pods/{pod}/log")
        } else {
            format!("/api/v1/namespaces/{namespace}/pods/{pod}/log?{query}")
        }
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`: an optional sign, then decimal digits, nothing else.
pub fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reencodes() {
        let q = LogQuery::parse(
            "container=app&follow=t&tailLines=10&timestamps=1&sinceSeconds=%2B5&junk=x",
        )
        .unwrap();
        assert_eq!(q.container.as_deref(), Some("app"));
        assert!(q.follow && q.timestamps && !q.previous);
        assert_eq!((q.tail_lines, q.since_seconds), (Some(10), Some(5)));
        assert_eq!(
            q.path("ns", "p"),
            "/api/v1/namespaces/ns/pods/p/log?container=app&follow=true&timestamps=true&sinceSeconds=5&tailLines=10"
        );
        assert_eq!(LogQuery::parse(&q.encode()).unwrap(), q);
        assert_eq!(
            LogQuery::default().path("ns", "p"),
            "/api/v1/namespaces/ns/pods/p/log"
        );
    }

    #[test]
    fn refuses_what_could_be_read_twice_or_is_invalid() {
        let err = |q| LogQuery::parse(q).unwrap_err();
        assert_eq!(err("follow=1&follow=0"), LogQueryError::Repeated("follow"));
        assert!(matches!(err("tailLines=1;x"), LogQueryError::Dropped(_)));
        assert!(matches!(
            err("tailLines=ten"),
            LogQueryError::NotInteger { .. }
        ));
        assert!(matches!(
            err("tailLines= 1"),
            LogQueryError::NotInteger { .. }
        ));
        assert_eq!(
            err("tailLines=-1"),
            LogQueryError::TooSmall {
                key: "tailLines",
                min: 0
            }
        );
        assert!(matches!(
            err("limitBytes=0"),
            LogQueryError::TooSmall { .. }
        ));
        assert!(matches!(
            err("sinceTime=yesterday"),
            LogQueryError::BadTime(_)
        ));
        assert_eq!(
            err("sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z"),
            LogQueryError::BothSince
        );
        assert_eq!(
            err("insecureSkipTLSVerifyBackend=true"),
            LogQueryError::InsecureBackend
        );
        assert!(matches!(err("stream=both"), LogQueryError::BadStream(_)));
        assert!(LogQuery::parse("insecureSkipTLSVerifyBackend=false").is_ok());
        assert!(LogQuery::parse("sinceTime=2026-01-01T00:00:00.5Z").is_ok());
    }
}
