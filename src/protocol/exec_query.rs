//! The exec request's query, read as kube-apiserver reads it, and the strict reading podterm
//! admits.
//!
//! kube-apiserver reads `…/pods/{pod}/exec?…` in two steps, both copied here:
//! 1. Go's `url.ParseQuery` (net/url, `parseQuery`): pairs split on `&`; a pair holding a raw
//!    `;` or a bad `%` escape is dropped (the error is ignored by the API server); `+` is a
//!    space; values are bytes, not necessarily UTF-8.
//! 2. apimachinery's `url.Values` → `PodExecOptions` conversion
//!    (k8s.io/apimachinery/pkg/runtime/conversion.go, used by the generated
//!    `Convert_url_Values_To_v1_PodExecOptions`): a singleton (`container`, `stdin`, …) takes
//!    the **first** value (`Convert_Slice_string_To_string`); a boolean is false only when
//!    absent or when its first value is `0` or `false` in any case, and true for anything else,
//!    the empty string included (`Convert_Slice_string_To_bool`); `command` takes every value.
//!
//! [`PodExecOptions::read`] is that reading, lenient as the API server is (the dev cluster
//! uses it). [`ExecQuery::parse`] is podterm's: the same value, or a refusal wherever the
//! client's bytes could be read in two ways — a dropped pair, a repeated singleton, a value
//! that is not UTF-8. podterm never forwards the client's query: it sends
//! [`ExecQuery::encode`], which every reader reads the same way.

use std::borrow::Cow;

/// More pairs than this are refused (Go's own default cap, `urlmaxqueryparams`, is 10,000).
pub const MAX_QUERY_PAIRS: usize = 1_000;

/// The singletons of `PodExecOptions`, whose repetition podterm refuses.
pub const SINGLETONS: [&str; 5] = ["container", "stdin", "stdout", "stderr", "tty"];

/// A pair Go's `url.ParseQuery` drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// The pair holds a raw `;` (Go 1.17+ no longer splits on it).
    Semicolon(String),
    /// The pair holds a `%` not followed by two hex digits.
    BadEscape(String),
}

/// A key and its value, decoded.
pub type Pair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// A query as Go's `url.ParseQuery` reads it: the kept pairs in order (decoded bytes,
/// borrowed from the query where nothing was escaped) and the dropped ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values<'a> {
    pub pairs: Vec<Pair<'a>>,
    pub dropped: Vec<Dropped>,
}

/// Go's `url.ParseQuery`, pair by pair in the query's order: each kept pair (decoded bytes,
/// borrowed from the query where nothing was escaped) or the pair Go drops.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    query: &'a str,
    /// Where the next pair starts; past the end when none is left.
    start: usize,
}

impl<'a> Pairs<'a> {
    pub fn new(query: &'a str) -> Pairs<'a> {
        Pairs { query, start: 0 }
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<Pair<'a>, Dropped>;

    fn next(&mut self) -> Option<Self::Item> {
        let query = self.query;
        let bytes = query.as_bytes();
        // One pass over the query: each pair's end, its first `=`, and whether it holds a `;`
        // or anything to unescape, on either side of the `=`. Splitting on `&`, then on `=`,
        // looking for `;`, then for `%` and `+` in the key and again in the value read every
        // byte five times (held to that reading by a test).
        while self.start <= bytes.len() {
            let (from, mut end, mut eq, mut semicolon) = (self.start, self.start, None, false);
            let mut escaped = [false; 2];
            while let Some(&b) = bytes.get(end) {
                match b {
                    b'&' => break,
                    b';' => semicolon = true,
                    b'=' if eq.is_none() => eq = Some(end),
                    b'%' | b'+' => escaped[usize::from(eq.is_some())] = true,
                    _ => {}
                }
                end += 1;
            }
            // `&`, `=` and the end are character boundaries: every split is one.
            let pair = &query[from..end];
            self.start = end + 1;
            if semicolon {
                return Some(Err(Dropped::Semicolon(pair.to_string())));
            }
            if pair.is_empty() {
                continue;
            }
            let (key, value) = match eq {
                Some(at) => (&query[from..at], &query[at + 1..end]),
                None => (pair, ""),
            };
            let read = |text: &'a str, escaped: bool| {
                if escaped {
                    query_unescape(text)
                } else {
                    Some(Cow::Borrowed(text.as_bytes()))
                }
            };
            return Some(match (read(key, escaped[0]), read(value, escaped[1])) {
                (Some(key), Some(value)) => Ok((key, value)),
                _ => Err(Dropped::BadEscape(pair.to_string())),
            });
        }
        None
    }
}

impl<'a> Values<'a> {
    /// Go's `url.ParseQuery(query)`, errors kept as [`Dropped`] entries.
    pub fn parse(query: &'a str) -> Values<'a> {
        // Room for every pair up front (one more than the `&`s, bounded): grown from empty, a
        // query of ten pairs took three allocations and two copies.
        let pairs = if query.is_empty() {
            0
        } else {
            query.bytes().filter(|&b| b == b'&').count() + 1
        };
        let mut values = Values {
            pairs: Vec::with_capacity(pairs.min(MAX_QUERY_PAIRS + 1)),
            dropped: Vec::new(),
        };
        for pair in Pairs::new(query) {
            match pair {
                Ok(pair) => values.pairs.push(pair),
                Err(dropped) => values.dropped.push(dropped),
            }
        }
        values
    }

    /// Every value of `key`, in order.
    pub fn all<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s [u8]> {
        self.pairs
            .iter()
            .filter(move |(k, _)| **k == *key.as_bytes())
            .map(|(_, v)| &**v)
    }

    /// The first value of `key` (`Convert_Slice_string_To_string`).
    pub fn first<'s>(&'s self, key: &'s str) -> Option<&'s [u8]> {
        self.all(key).next()
    }

    /// `key` as apimachinery's `Convert_Slice_string_To_bool` reads it.
    pub fn flag(&self, key: &str) -> bool {
        self.first(key).is_some_and(go_flag)
    }

    /// `query` as Go reads it, or why another reader could read it otherwise: a pair Go
    /// drops, more than [`MAX_QUERY_PAIRS`] pairs, or one of `once` given twice. The strict
    /// reading podterm's exec, log and file queries share.
    pub fn parse_strict(query: &'a str, once: &[&'static str]) -> Result<Values<'a>, Unclear> {
        let values = Values::parse(query);
        if let Some(dropped) = values.dropped.first() {
            return Err(Unclear::Dropped(dropped.clone()));
        }
        if values.pairs.len() > MAX_QUERY_PAIRS {
            return Err(Unclear::TooManyPairs);
        }
        if let Some(key) = once.iter().find(|key| values.all(key).nth(1).is_some()) {
            return Err(Unclear::Repeated(key));
        }
        Ok(values)
    }

    /// The first value of `key` as text; `Err` when it is not UTF-8.
    pub fn text(&self, key: &str) -> Result<Option<String>, std::string::FromUtf8Error> {
        self.first(key)
            .map(|v| String::from_utf8(v.to_vec()))
            .transpose()
    }
}

/// Why [`Values::parse_strict`] refuses a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unclear {
    Dropped(Dropped),
    TooManyPairs,
    Repeated(&'static str),
}

/// apimachinery's boolean: false only for `0` and `false` (any case).
pub fn go_flag(value: &[u8]) -> bool {
    !(value == b"0" || value.eq_ignore_ascii_case(b"false"))
}

/// Go's `url.QueryUnescape`: `%XX` and `+`; `None` for a `%` without two hex digits (Go
/// refuses those, where `percent_encoding` would pass them through). The text itself when it
/// has neither (nearly every key and value: `command`, `stdin`, `true`, `sh`); otherwise one
/// pass and one allocation, walking the text as Go's `unescape` does.
fn query_unescape(text: &str) -> Option<Cow<'_, [u8]>> {
    let hex = |digit: Option<&u8>| char::from(*digit?).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'%' => {
                out.push(hex(bytes.get(i + 1))? << 4 | hex(bytes.get(i + 2))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(Cow::Owned(out))
}

/// `PodExecOptions` exactly as kube-apiserver reads it from a query (bytes where Go has
/// strings, since Go's strings need not be UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodExecOptions {
    pub container: Vec<u8>,
    pub command: Vec<Vec<u8>>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl PodExecOptions {
    /// The API server's reading of `query`: what it would run.
    pub fn read(query: &str) -> PodExecOptions {
        PodExecOptions::from_values(&Values::parse(query))
    }

    /// apimachinery's conversion of parsed values.
    pub fn from_values(values: &Values) -> PodExecOptions {
        PodExecOptions {
            container: values.first("container").unwrap_or_default().to_vec(),
            command: values.all("command").map(<[u8]>::to_vec).collect(),
            stdin: values.flag("stdin"),
            stdout: values.flag("stdout"),
            stderr: values.flag("stderr"),
            tty: values.flag("tty"),
        }
    }
}

/// Why podterm refuses an exec query (400): kube-apiserver could read it differently than a
/// simpler reader would, so podterm's policy and audit could judge something else than what
/// runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(
        "the exec query has a raw `;` in {0:?}, which kube-apiserver drops: separate parameters with `&` and escape `;` as %3B"
    )]
    Semicolon(String),
    #[error("the exec query has an invalid URL escape in {0:?}, which kube-apiserver drops")]
    BadEscape(String),
    #[error("the exec query gives `{0}` more than once; give it once")]
    Repeated(&'static str),
    #[error("the exec query's `{0}` is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("the exec query has more than {MAX_QUERY_PAIRS} parameters")]
    TooManyPairs,
    #[error("attach runs no command (it joins the container's own process): leave out `command`")]
    AttachCommand,
}

/// podterm's reading of an exec query: what kube-apiserver reads, with nothing left to
/// interpretation. `container` is `None` when absent or empty (the API server then picks the
/// pod's only container).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecQuery {
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecQuery {
    /// Parses `query` strictly: the API server's reading, or a [`QueryError`] where a pair
    /// would be dropped, a singleton is repeated, or a value is not UTF-8.
    ///
    /// One pass over the pairs ([`Pairs`]), each key matched once: the same value and the
    /// same refusal as [`Values::parse_strict`] with [`SINGLETONS`] then
    /// [`PodExecOptions::from_values`] (held to that reading by a test), without their list
    /// of pairs and the eleven scans of it.
    pub fn parse(query: &str) -> Result<ExecQuery, QueryError> {
        let (mut kept, mut container, mut command_utf8) = (0, None, true);
        // How often each of SINGLETONS came (up to 2; its index below), and the first values
        // of the four flags, which follow `container` in SINGLETONS.
        let mut given = [0u8; SINGLETONS.len()];
        let mut flags = [None; 4];
        let mut command = Vec::new();
        for pair in Pairs::new(query) {
            // The first pair Go drops is the refusal, whatever else the query holds.
            let (key, value) = pair.map_err(|dropped| match dropped {
                Dropped::Semicolon(pair) => QueryError::Semicolon(pair),
                Dropped::BadEscape(pair) => QueryError::BadEscape(pair),
            })?;
            kept += 1;
            if kept > MAX_QUERY_PAIRS {
                // Refused at the end (unless a dropped pair comes): nothing more to keep.
                continue;
            }
            let singleton = match &*key {
                b"command" => {
                    match String::from_utf8(value.into_owned()) {
                        Ok(arg) => command.push(arg),
                        Err(_) => command_utf8 = false,
                    }
                    continue;
                }
                b"container" => 0,
                b"stdin" => 1,
                b"stdout" => 2,
                b"stderr" => 3,
                b"tty" => 4,
                _ => continue,
            };
            given[singleton] = given[singleton].saturating_add(1);
            match singleton {
                0 => {
                    container.get_or_insert(value);
                }
                flag => {
                    flags[flag - 1].get_or_insert_with(|| go_flag(&value));
                }
            }
        }
        if kept > MAX_QUERY_PAIRS {
            return Err(QueryError::TooManyPairs);
        }
        if let Some(at) = given.iter().position(|&n| n > 1) {
            return Err(QueryError::Repeated(SINGLETONS[at]));
        }
        let container = match container {
            Some(bytes) => Some(
                String::from_utf8(bytes.into_owned())
                    .map_err(|_| QueryError::NotUtf8("container"))?,
            ),
            None => None,
        };
        if !command_utf8 {
            return Err(QueryError::NotUtf8("command"));
        }
        let [stdin, stdout, stderr, tty] = flags.map(|flag| flag.unwrap_or(false));
        Ok(ExecQuery {
            container: container.filter(|c| !c.is_empty()),
            command,
            stdin,
            stdout,
            stderr,
            tty,
        })
    }

    /// The query podterm sends upstream: canonical, so every reader reads the same value
    /// (`container`, each `command`, then the flags that are true, as `true`).
    pub fn encode(&self) -> String {
        let mut query = String::new();
        self.encode_into(&mut query);
        query
    }

    /// [`ExecQuery::encode`]'s text, appended to `out`: what `form_urlencoded`'s serializer
    /// writes for the same pairs (a test holds the two together), without its chunked
    /// iterator, which copied each value in pieces (a tenth of the upstream path's cost).
    fn encode_into(&self, out: &mut String) {
        let mut first = true;
        let mut key = |out: &mut String, key: &str| {
            if !std::mem::take(&mut first) {
                out.push('&');
            }
            out.push_str(key);
        };
        if let Some(container) = &self.container {
            key(out, "container=");
            form_encode(out, container);
        }
        for arg in &self.command {
            key(out, "command=");
            form_encode(out, arg);
        }
        for (name, on) in [
            ("stdin=true", self.stdin),
            ("stdout=true", self.stdout),
            ("stderr=true", self.stderr),
            ("tty=true", self.tty),
        ] {
            if on {
                key(out, name);
            }
        }
    }
}

/// `value` as `application/x-www-form-urlencoded` writes it (the WHATWG URL standard's
/// byte serializer, as `form_urlencoded::byte_serialize`): ASCII letters, digits and `*-._`
/// as they are, a space as `+`, every other byte as `%XX` in upper-case hex. A value with
/// nothing to escape (nearly every one) is copied whole.
fn form_encode(out: &mut String, value: &str) {
    let kept = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_');
    let bytes = value.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if kept(b) {
            continue;
        }
        // A run of kept bytes is ASCII, so it starts and ends on a char's boundary (the
        // bytes after an escaped one may be the rest of its char, escaped in turn).
        if run < i {
            out.push_str(&value[run..i]);
        }
        if b == b' ' {
            out.push('+');
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        run = i + 1;
    }
    out.push_str(&value[run..]);
}

/// One exec request, parsed once: where, what and how, exactly as kube-apiserver will read
/// the query podterm sends for it ([`ExecTarget::upstream_path`]). The policy, `deny_root`,
/// the audit, the recording and the metrics all read this value, never the client's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    /// What to run and how; `request.command` is the default shell when the client sent no
    /// `command`, and `request.container` is `None` when it named none (fine for
    /// one-container pods).
    pub request: ExecQuery,
    /// Whether the client sent no `command` and gets [`super::default_shell`].
    pub default_shell: bool,
    /// `pods/exec` (run `request.command`) or `pods/attach` (join the container's process).
    pub subresource: Subresource,
}

/// Which streaming subresource of a pod a session opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Subresource {
    Exec,
    Attach,
}

impl Subresource {
    pub fn as_str(self) -> &'static str {
        match self {
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
        }
    }
}

impl ExecTarget {
    /// Parses the exec query strictly ([`ExecQuery::parse`]): the API server's reading, or a
    /// refusal where it could be read two ways.
    pub fn parse(
        cluster: &str,
        namespace: &str,
        pod: &str,
        query: &str,
    ) -> Result<ExecTarget, QueryError> {
        let mut request = ExecQuery::parse(query)?;
        let default_shell = request.command.is_empty();
        if default_shell {
            request.command = super::default_shell();
        }
        Ok(ExecTarget {
            cluster: cluster.into(),
            namespace: namespace.into(),
            pod: pod.into(),
            request,
            default_shell,
            subresource: Subresource::Exec,
        })
    }

    /// Parses an attach query (`PodAttachOptions`: `container`, `stdin`, `stdout`, `stderr`,
    /// `tty`) with the same strict reading; a `command` is refused rather than ignored.
    pub fn parse_attach(
        cluster: &str,
        namespace: &str,
        pod: &str,
        query: &str,
    ) -> Result<ExecTarget, QueryError> {
        let request = ExecQuery::parse(query)?;
        if !request.command.is_empty() {
            return Err(QueryError::AttachCommand);
        }
        Ok(ExecTarget {
            cluster: cluster.into(),
            namespace: namespace.into(),
            pod: pod.into(),
            request,
            default_shell: false,
            subresource: Subresource::Attach,
        })
    }

    /// The exec (or attach) path and query for the cluster, made from this value alone.
    pub fn upstream_path(&self) -> String {
        pod_path(
            &self.namespace,
            &self.pod,
            self.subresource.as_str(),
            &self.request,
        )
    }

    /// The argv the policy judges: empty for the default shell.
    pub fn requested_argv(&self) -> &[String] {
        if self.default_shell {
            &[]
        } else {
            &self.request.command
        }
    }
}

/// `/api/v1/namespaces/{namespace}/pods/{pod}/exec?{query}`.
pub fn exec_path(namespace: &str, pod: &str, query: &ExecQuery) -> String {
    pod_path(namespace, pod, Subresource::Exec.as_str(), query)
}

/// `/api/v1/namespaces/{namespace}/pods/{pod}/{subresource}?{query}`, written into one
/// string sized for it (`format!` and a second string for the query were a fifth of the
/// path's cost).
fn pod_path(namespace: &str, pod: &str, subresource: &str, query: &ExecQuery) -> String {
    // Room for the fixed text and every pair with its key, less any escaping.
    let room = 96
        + namespace.len()
        + pod.len()
        + query.container.as_ref().map_or(0, String::len)
        + query.command.iter().map(|arg| arg.len() + 9).sum::<usize>();
    let mut path = String::with_capacity(room);
    for part in [
        "/api/v1/namespaces/",
        namespace,
        "/pods/",
        pod,
        "/",
        subresource,
        "?",
    ] {
        path.push_str(part);
    }
    query.encode_into(&mut path);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API server's reading of `q` (what [`ExecQuery::encode`] makes it run).
    fn as_options(q: &ExecQuery) -> PodExecOptions {
        PodExecOptions {
            container: q
                .container
                .as_deref()
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
            command: q.command.iter().map(|a| a.as_bytes().to_vec()).collect(),
            stdin: q.stdin,
            stdout: q.stdout,
            stderr: q.stderr,
            tty: q.tty,
        }
    }

    #[test]
    fn go_parse_query_drops_what_go_drops() {
        let v = Values::parse("a=1&b=x;y&&c=%zz&d=%4&e=%41+%42&=z&f");
        assert_eq!(
            v.pairs
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect::<Vec<_>>(),
            [
                (b"a".to_vec(), b"1".to_vec()),
                (b"e".to_vec(), b"A B".to_vec()),
                (b"".to_vec(), b"z".to_vec()),
                (b"f".to_vec(), b"".to_vec()),
            ]
        );
        assert_eq!(
            v.dropped,
            [
                Dropped::Semicolon("b=x;y".into()),
                Dropped::BadEscape("c=%zz".into()),
                Dropped::BadEscape("d=%4".into()),
            ]
        );
    }

    #[test]
    fn the_api_servers_reading() {
        // H1, H2, M1 of the security review: what kube-apiserver runs.
        for q in [
            "tty=t",
            "tty=yes",
            "tty=",
            "tty=on",
            "tty=true&tty=false",
            "tty=TRUE",
        ] {
            assert!(PodExecOptions::read(q).tty, "{q}");
        }
        for q in [
            "tty=0",
            "tty=false",
            "tty=FaLsE",
            "tty=false&tty=true",
            "x=1",
        ] {
            assert!(!PodExecOptions::read(q).tty, "{q}");
        }
        let o = PodExecOptions::read("container=sidecar&container=app");
        assert_eq!(o.container, b"sidecar");
        let o = PodExecOptions::read("command=echo&command=a;b&command=-e&command=%zz");
        assert_eq!(o.command, [b"echo".to_vec(), b"-e".to_vec()]);
        let o = PodExecOptions::read("command=%FF");
        assert_eq!(o.command, [vec![0xFF]]);
    }

    #[test]
    fn podterm_refuses_what_could_be_read_twice() {
        let err = |q| ExecQuery::parse(q).unwrap_err();
        assert_eq!(err("tty=true&tty=false"), QueryError::Repeated("tty"));
        assert_eq!(
            err("container=sidecar&container=app"),
            QueryError::Repeated("container")
        );
        assert_eq!(
            err("container=&container=app"),
            QueryError::Repeated("container")
        );
        assert!(matches!(
            err("command=echo&command=a;b"),
            QueryError::Semicolon(_)
        ));
        assert!(matches!(err("command=%zz"), QueryError::BadEscape(_)));
        assert!(matches!(
            err("junk=%zz&command=ls"),
            QueryError::BadEscape(_)
        ));
        assert_eq!(err("command=%FF"), QueryError::NotUtf8("command"));
        assert_eq!(err("container=%FF"), QueryError::NotUtf8("container"));
        let many = vec!["command=x"; MAX_QUERY_PAIRS + 1].join("&");
        assert_eq!(err(&many), QueryError::TooManyPairs);
        // A pair Go drops is the refusal even behind too many pairs; too many, even with a
        // repeat behind them.
        let dropped_last = format!("{many}&x=%zz");
        let repeat_last = format!("{many}&tty=1&tty=0");
        assert_eq!(err(&dropped_last), QueryError::BadEscape("x=%zz".into()));
        assert_eq!(err(&repeat_last), QueryError::TooManyPairs);
        for q in [
            &many,
            &dropped_last,
            &repeat_last,
            "tty=1&tty=0&container=%FF",
        ] {
            assert_eq!(ExecQuery::parse(q), listed_reading(q), "{q:.40}");
        }
    }

    #[test]
    fn podterm_reads_the_same_value() {
        let q = ExecQuery::parse(
            "container=app&command=ls&command=-l+%2Ftmp&stdin=1&tty=t&stdout=false",
        )
        .unwrap();
        assert_eq!(q.container.as_deref(), Some("app"));
        assert_eq!(q.command, ["ls", "-l /tmp"]);
        assert!(q.stdin && q.tty && !q.stdout && !q.stderr);
        assert_eq!(ExecQuery::parse("container=").unwrap().container, None);
        assert!(ExecQuery::parse("tty=").unwrap().tty);
        // Repeated commands are argv, not a conflict.
        assert_eq!(
            ExecQuery::parse("command=a&command=a").unwrap().command,
            ["a", "a"]
        );
    }

    #[test]
    fn the_encoding_reads_back_as_itself() {
        let q = ExecQuery {
            container: Some("a b&c".into()),
            command: vec![
                "echo".into(),
                "x;y".into(),
                "%zz".into(),
                "é+".into(),
                String::new(),
            ],
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        };
        let encoded = q.encode();
        assert_eq!(ExecQuery::parse(&encoded).unwrap(), q);
        assert_eq!(PodExecOptions::read(&encoded), as_options(&q));
    }

    #[test]
    fn targets_from_queries() {
        let t = ExecTarget::parse(
            "dev",
            "default",
            "web-0",
            "container=app&command=ls&command=-l&command=%2Ftmp&stdin=true&tty=1",
        )
        .unwrap();
        assert_eq!(t.request.container.as_deref(), Some("app"));
        assert_eq!(t.request.command, ["ls", "-l", "/tmp"]);
        assert!(t.request.tty && t.request.stdin && !t.default_shell);
        assert_eq!(
            t.upstream_path(),
            "/api/v1/namespaces/default/pods/web-0/exec?container=app&command=ls&command=-l&command=%2Ftmp&stdin=true&tty=true"
        );
    }

    #[test]
    fn the_upstream_query_is_never_the_clients() {
        // H1: `tty=t` is a tty for kube-apiserver, so it is one for podterm, and it is sent
        // as `tty=true`; unknown parameters are not passed on.
        let t = ExecTarget::parse("dev", "ns", "p", "command=ls&tty=t&stdout=yes&junk=1").unwrap();
        assert!(t.request.tty && t.request.stdout);
        assert_eq!(
            t.upstream_path(),
            "/api/v1/namespaces/ns/pods/p/exec?command=ls&stdout=true&tty=true"
        );
        assert!(ExecTarget::parse("dev", "ns", "p", "tty=true&tty=false").is_err());
    }

    #[test]
    fn attach_targets() {
        let t = ExecTarget::parse_attach("dev", "ns", "p", "container=dbg&stdin=1&tty=t").unwrap();
        assert_eq!(t.subresource, Subresource::Attach);
        assert!(t.request.command.is_empty() && !t.default_shell);
        assert_eq!(
            t.upstream_path(),
            "/api/v1/namespaces/ns/pods/p/attach?container=dbg&stdin=true&tty=true"
        );
        assert_eq!(
            ExecTarget::parse_attach("dev", "ns", "p", "command=sh").unwrap_err(),
            QueryError::AttachCommand
        );
        assert!(ExecTarget::parse_attach("dev", "ns", "p", "tty=1&tty=0").is_err());
    }

    #[test]
    fn no_command_means_the_default_shell() {
        let t = ExecTarget::parse("dev", "ns", "p", "stdin=true&tty=true").unwrap();
        assert!(t.default_shell && t.request.container.is_none());
        assert_eq!(t.request.command, super::super::default_shell());
        let path = t.upstream_path();
        let query = path.split_once('?').unwrap().1;
        assert_eq!(
            ExecQuery::parse(query).unwrap().command,
            super::super::default_shell()
        );
    }

    /// Go's `url.QueryUnescape` on the cases its own tests cover (net/url `unescapeTests`,
    /// query mode): `+` is a space, `%2B` a plus, bad or short escapes an error.
    #[test]
    fn unescape_reads_as_go_does() {
        for (text, want) in [
            ("", Some(&b""[..])),
            ("abc", Some(b"abc")),
            ("1%41", Some(b"1A")),
            ("1%41%42%43", Some(b"1ABC")),
            ("%4a", Some(b"J")),
            ("%6F", Some(b"o")),
            ("a+b", Some(b"a b")),
            ("a%20b", Some(b"a b")),
            ("%2B", Some(b"+")),
            ("%ff%00", Some(b"\xff\x00")),
            ("%", None),
            ("%a", None),
            ("%1", None),
            ("123%45%6", None),
            ("%zzzzz", None),
            ("%%41", None),
            ("a%+1", None),
        ] {
            assert_eq!(query_unescape(text).as_deref(), want, "{text:?}");
        }
        // Text with nothing to unescape is the query's own bytes, not a copy.
        for text in ["command", "", "a-b.c_d~é"] {
            assert!(matches!(query_unescape(text), Some(Cow::Borrowed(b)) if b == text.as_bytes()));
        }
        assert!(matches!(query_unescape("a+b"), Some(Cow::Owned(_))));
    }

    /// `url.ParseQuery` as it was read before the one pass: split on `&`, look for `;`, split
    /// at the first `=`, unescape each side.
    fn split_reading(query: &str) -> Values<'_> {
        let mut values = Values::default();
        for pair in crate::protocol::split_ascii(query, b'&') {
            if pair.as_bytes().contains(&b';') {
                values.dropped.push(Dropped::Semicolon(pair.to_string()));
                continue;
            }
            if pair.is_empty() {
                continue;
            }
            let (key, value) = crate::protocol::split_once_ascii(pair, b'=').unwrap_or((pair, ""));
            match (query_unescape(key), query_unescape(value)) {
                (Some(key), Some(value)) => values.pairs.push((key, value)),
                _ => values.dropped.push(Dropped::BadEscape(pair.to_string())),
            }
        }
        values
    }

    /// The strict reading as it was before the one pass: every pair listed
    /// ([`Values::parse_strict`]), then apimachinery's conversion of them.
    fn listed_reading(query: &str) -> Result<ExecQuery, QueryError> {
        let values = Values::parse_strict(query, &SINGLETONS).map_err(|e| match e {
            Unclear::Dropped(Dropped::Semicolon(pair)) => QueryError::Semicolon(pair),
            Unclear::Dropped(Dropped::BadEscape(pair)) => QueryError::BadEscape(pair),
            Unclear::TooManyPairs => QueryError::TooManyPairs,
            Unclear::Repeated(key) => QueryError::Repeated(key),
        })?;
        let options = PodExecOptions::from_values(&values);
        let utf8 =
            |bytes: Vec<u8>, key| String::from_utf8(bytes).map_err(|_| QueryError::NotUtf8(key));
        let container = utf8(options.container, "container")?;
        let command = options
            .command
            .into_iter()
            .map(|arg| utf8(arg, "command"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ExecQuery {
            container: (!container.is_empty()).then_some(container),
            command,
            stdin: options.stdin,
            stdout: options.stdout,
            stderr: options.stderr,
            tty: options.tty,
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// The one-pass unescape agrees with the two-pass reading it replaced (check every
        /// escape, `+` to space, then `percent_decode`) on any text of `%`, `+`, hex digits
        /// and other characters.
        #[test]
        fn unescape_matches_the_two_pass_reading(text in "[%+0-9a-fA-FgzG; =&é]{0,24}") {
            let escapes_ok = text.split('%').skip(1).all(|after| {
                let b = after.as_bytes();
                b.len() >= 2 && b[0].is_ascii_hexdigit() && b[1].is_ascii_hexdigit()
            });
            let reference = escapes_ok.then(|| {
                percent_encoding::percent_decode_str(&text.replace('+', " ")).collect::<Vec<u8>>()
            });
            proptest::prop_assert_eq!(query_unescape(&text).map(Cow::into_owned), reference);
        }

        /// The one-pass reading of a query is the split-by-split reading it replaced, pairs
        /// (borrowed where they were), drops and all.
        #[test]
        fn one_pass_parse_matches_the_split_reading(query in "[%+0-9a-fA-Fgz;=&é ]{0,32}") {
            let (ours, theirs) = (Values::parse(&query), split_reading(&query));
            let borrowed = |v: &Values<'_>| {
                v.pairs
                    .iter()
                    .map(|(k, v)| (matches!(k, Cow::Borrowed(_)), matches!(v, Cow::Borrowed(_))))
                    .collect::<Vec<_>>()
            };
            proptest::prop_assert_eq!(borrowed(&ours), borrowed(&theirs));
            proptest::prop_assert_eq!(ours, theirs);
        }

        /// The one-pass strict reading is the listed one it replaced: the same value, or the
        /// same refusal, for queries of the exec's keys (escaped too), others, repeats, raw
        /// `;`, bad escapes and bytes that are not UTF-8.
        #[test]
        fn one_pass_exec_query_matches_the_listed_reading(
            query in "((command|container|stdin|stdout|stderr|tty|x|c%6Fmmand|t+y)(=[a-z01;%EF+&]{0,4})?&?){0,7}"
        ) {
            proptest::prop_assert_eq!(ExecQuery::parse(&query), listed_reading(&query));
        }

        /// The query written by hand is `form_urlencoded`'s serializer's, byte for byte, for
        /// any container, command and flags (every byte class: kept, space, escaped, UTF-8).
        #[test]
        fn encode_matches_form_urlencoded(
            container in proptest::option::of("[a-zA-Z0-9*._~ +%&=/é\u{0}-\u{1f}\u{7f}-]{0,12}"),
            command in proptest::collection::vec(proptest::prelude::any::<String>(), 0..4),
            flags in proptest::prelude::any::<[bool; 4]>(),
        ) {
            let query = ExecQuery {
                container,
                command,
                stdin: flags[0],
                stdout: flags[1],
                stderr: flags[2],
                tty: flags[3],
            };
            let mut reference = form_urlencoded::Serializer::new(String::new());
            if let Some(container) = &query.container {
                reference.append_pair("container", container);
            }
            for arg in &query.command {
                reference.append_pair("command", arg);
            }
            for (key, on) in [("stdin", flags[0]), ("stdout", flags[1]), ("stderr", flags[2]), ("tty", flags[3])] {
                if on {
                    reference.append_pair(key, "true");
                }
            }
            proptest::prop_assert_eq!(query.encode(), reference.finish());
        }
    }
}
