//! A request's header fields, read by name: hyper's `HeaderMap` for a request hyper served, or
//! the head's own lines for a request the server read itself (`server::direct`).
//!
//! A request the server answers itself was copied into a `HeaderMap` only to be read back by
//! name ten times: an allocation of entries and one of indices, each name classified and
//! hashed, each value's bytes counted shared, and every lookup hashed again. About 15 lines
//! are looked up among instead (a name is compared only where its length matches), and the
//! values stay where the connection's read put them. Both read the same: a line's value is
//! its bytes as `httparse` gives them (as `HeaderValue` holds them), and names compare
//! without regard to case (as `HeaderName`s do).

use hyper::HeaderMap;
use hyper::header::{GetAll, HeaderName, HeaderValue};

/// A request's header fields.
#[derive(Debug, Clone, Copy)]
pub enum Fields<'a> {
    /// A request hyper served.
    Map(&'a HeaderMap),
    /// The lines of a head read by the server itself, in order.
    Lines(&'a [httparse::Header<'a>]),
}

impl<'a> From<&'a HeaderMap> for Fields<'a> {
    fn from(map: &'a HeaderMap) -> Fields<'a> {
        Fields::Map(map)
    }
}

impl<'a> Fields<'a> {
    /// The values of every field named `name`, in order.
    pub fn all<'n>(self, name: &'n HeaderName) -> Values<'a, 'n> {
        match self {
            Fields::Map(map) => Values::Map(map.get_all(name).into_iter()),
            Fields::Lines(lines) => Values::Lines {
                lines: lines.iter(),
                name: name.as_str().as_bytes(),
            },
        }
    }

    /// The first field named `name`'s value.
    pub fn get(self, name: &HeaderName) -> Option<&'a [u8]> {
        self.all(name).next()
    }

    /// Whether a field named `name` lists `token` among its comma-separated values, in any
    /// case: fastwebsockets' `header_contains_value`, which its `is_upgrade_request` asks of
    /// `Connection` and `Upgrade`.
    pub fn lists(self, name: &HeaderName, token: &str) -> bool {
        self.all(name).any(|value| has_token(value, token))
    }

    /// Whether the request asks for a WebSocket upgrade: fastwebsockets' `is_upgrade_request`.
    pub fn is_upgrade(self) -> bool {
        self.lists(&hyper::header::CONNECTION, "Upgrade")
            && self.lists(&hyper::header::UPGRADE, "websocket")
    }
}

/// Whether the comma-separated field value `value` lists `token`, in any case, blanks around
/// it aside.
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A field value as text, as `HeaderValue::to_str` takes it: visible ASCII, space and tab.
pub fn text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).expect("ASCII"))
}

/// A byte `http`'s `Uri` parser takes in a path as it is (its `build_path_map`), ASCII only:
/// podterm's own targets are percent-encoded and hold nothing else.
pub fn path_byte(b: u8) -> bool {
    PATH_BYTES[usize::from(b)]
}

/// A byte `http`'s `Uri` parser takes in a query as it is (its `build_query_map`), ASCII only.
pub fn query_byte(b: u8) -> bool {
    QUERY_BYTES[usize::from(b)]
}

/// The table of a `const fn(u8) -> bool` over every byte, made at compile time.
macro_rules! byte_table {
    ($takes:ident) => {{
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            table[b] = $takes(b as u8);
            b += 1;
        }
        table
    }};
}

/// [`path_byte`] and [`query_byte`] as tables, as `http`'s own maps: one load a byte, where the
/// ranges were several comparisons (every exec's target is checked twice, the client's and
/// the one sent upstream).
static PATH_BYTES: [bool; 256] = byte_table!(in_path);
static QUERY_BYTES: [bool; 256] = byte_table!(in_query);

const fn in_path(b: u8) -> bool {
    matches!(b, 0x21 | 0x22 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7E)
}

const fn in_query(b: u8) -> bool {
    matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E)
}

/// A byte `HeaderValue::from_bytes` takes: visible ASCII, space, tab and obs-text.
pub fn field_byte(b: u8) -> bool {
    (b >= 0x20 && b != 0x7f) || b == b'\t'
}

/// An origin-form request target (`/path?query`) as `http`'s `Uri` reads it, its path and its
/// query, where every byte is one `Uri` takes as it is; `None` for anything else (another
/// form, a fragment, a byte `Uri` refuses or takes only as UTF-8), for hyper to judge.
pub fn origin_form(target: &str) -> Option<(&str, Option<&str>)> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let taken = path.starts_with('/')
        && path.bytes().all(path_byte)
        && query.is_none_or(|q| q.bytes().all(query_byte));
    taken.then_some((path, query))
}

/// The values of the fields of one name.
#[derive(Debug)]
pub enum Values<'a, 'n> {
    Map(<GetAll<'a, HeaderValue> as IntoIterator>::IntoIter),
    Lines {
        lines: std::slice::Iter<'a, httparse::Header<'a>>,
        /// The name, in lowercase (as `HeaderName::as_str` gives it).
        name: &'n [u8],
    },
}

impl<'a> Iterator for Values<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Values::Map(values) => values.next().map(HeaderValue::as_bytes),
            Values::Lines { lines, name } => lines.find_map(|line| {
                let ours = line.name.as_bytes();
                (ours.len() == name.len() && ours.eq_ignore_ascii_case(name)).then_some(line.value)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The head's lines, as httparse reads them.
    fn parsed(head: &[u8], f: impl FnOnce(Fields<'_>)) {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut slots);
        assert!(req.parse(head).unwrap().is_complete());
        f(Fields::Lines(req.headers));
    }

    fn map(lines: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    fn head(lines: &[(&str, &[u8])]) -> Vec<u8> {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for (name, value) in lines {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    /// Every lookup of a head's lines answers as the same head's `HeaderMap` does.
    fn same_answers(lines: &[(&str, &[u8])], names: &[HeaderName]) {
        let map = map(lines);
        let ours = head(lines);
        parsed(&ours, |fields| {
            for name in names {
                let theirs: Vec<&[u8]> = Fields::Map(&map).all(name).collect();
                let got: Vec<&[u8]> = fields.all(name).collect();
                assert_eq!(got, theirs, "{name}");
                assert_eq!(fields.get(name), theirs.first().copied());
            }
            let req = {
                let mut req = hyper::Request::new(());
                *req.headers_mut() = map.clone();
                req
            };
            assert_eq!(
                fields.is_upgrade(),
                fastwebsockets::upgrade::is_upgrade_request(&req),
                "{lines:?}"
            );
            assert_eq!(Fields::Map(&map).is_upgrade(), fields.is_upgrade());
        });
    }

    #[test]
    fn lines_answer_as_the_header_map() {
        let names = [
            hyper::header::HOST,
            hyper::header::CONNECTION,
            hyper::header::UPGRADE,
            hyper::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderName::from_static("x-forwarded-groups"),
        ];
        same_answers(
            &[
                ("Host", b"podterm:8080"),
                ("Connection", b"keep-alive, Upgrade"),
                ("upgrade", b"WebSocket"),
                ("X-Forwarded-Groups", b"a, b"),
                ("sec-websocket-protocol", b"v5.channel.k8s.io"),
                ("x-forwarded-groups", b"c"),
                ("X-FORWARDED-GROUP", b"not this one"),
            ],
            &names,
        );
        same_answers(&[("Connection", b"upgrade"), ("Upgrade", b"h2c")], &names);
        same_answers(&[("Upgrade", b"websocket")], &names);
        same_answers(&[], &names);
    }

    proptest! {
        /// Any lines with names among a few (in any case) and any values: the same values, the
        /// same upgrade.
        #[test]
        fn any_lines_answer_as_the_header_map(
            lines in prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "connection", "Connection", "UPGRADE", "upgrade", "x-user", "X-User",
                        "x-users", "host",
                    ]),
                    "[ -~]{0,3}(upgrade|Upgrade|websocket|WebSocket|,| )*[ -~]{0,3}",
                ),
                0..8,
            )
        ) {
            let lines: Vec<(&str, Vec<u8>)> = lines
                .into_iter()
                // httparse and hyper both take a value without its surrounding blanks.
                .map(|(n, v)| (n, v.trim_matches([' ', '\t']).as_bytes().to_vec()))
                .collect();
            let lines: Vec<(&str, &[u8])> = lines.iter().map(|(n, v)| (*n, v.as_slice())).collect();
            same_answers(
                &lines,
                &[
                    hyper::header::CONNECTION,
                    hyper::header::UPGRADE,
                    hyper::header::HOST,
                    HeaderName::from_static("x-user"),
                ],
            );
        }
    }

    proptest! {
        /// A target read here is read as `Uri` reads it: the same path and the same query.
        #[test]
        fn an_origin_form_target_is_read_as_uri_reads_it(
            target in "[/?#%a-z0-9=&{}|^\\[\\] \"'<>`.~*:@!$(),;+_-]{0,24}",
        ) {
            if let Some((path, query)) = origin_form(&target) {
                let uri: hyper::Uri = target.parse().expect("Uri takes what is taken here");
                prop_assert_eq!(uri.path(), path);
                prop_assert_eq!(uri.query(), query);
                prop_assert!(uri.authority().is_none());
            }
        }
    }

    /// Every byte the tables take, `Uri` takes as it is, in a path and in a query; none
    /// outside ASCII.
    #[test]
    fn the_byte_tables_take_what_uri_takes_as_it_is() {
        for b in 0..=255u8 {
            assert_eq!(path_byte(b), in_path(b), "{b:#x}");
            assert_eq!(query_byte(b), in_query(b), "{b:#x}");
            if !b.is_ascii() {
                assert!(!path_byte(b) && !query_byte(b), "{b:#x}");
                continue;
            }
            let c = char::from(b);
            if path_byte(b) {
                let uri: hyper::Uri = format!("/a{c}z").parse().expect("a path byte");
                assert_eq!(uri.path(), format!("/a{c}z"), "{b:#x}");
            }
            if query_byte(b) {
                let uri: hyper::Uri = format!("/p?a{c}z").parse().expect("a query byte");
                assert_eq!(uri.query(), Some(format!("a{c}z").as_str()), "{b:#x}");
            }
        }
    }

    #[test]
    fn origin_form_takes_paths_and_queries_only() {
        let exec = "/clusters/dev/api/v1/namespaces/d/pods/p/exec";
        assert_eq!(origin_form(exec), Some((exec, None)));
        let with = format!("{exec}?command=sh&tty=true");
        assert_eq!(
            origin_form(&with),
            Some((exec, Some("command=sh&tty=true")))
        );
        assert_eq!(origin_form("/p?"), Some(("/p", Some(""))));
        assert_eq!(origin_form("/p?a?b"), Some(("/p", Some("a?b"))));
        for other in [
            "http://h/p",
            "*",
            "p",
            "/p#f",
            "/p?q#f",
            "/\u{e9}",
            "/p q",
            "",
        ] {
            assert_eq!(origin_form(other), None, "{other}");
        }
    }

    #[test]
    fn text_is_header_values_to_str() {
        for b in 0..=255u8 {
            let value = [b'a', b, b'z'];
            let Ok(theirs) = HeaderValue::from_bytes(&value) else {
                continue;
            };
            assert_eq!(text(&value), theirs.to_str().ok(), "{b:#x}");
        }
        assert_eq!(text(b""), Some(""));
    }

    /// The name and value httparse reads from a head whose one header line is `line`, if it
    /// reads the head whole.
    fn one_line(line: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        head.extend_from_slice(line);
        head.extend_from_slice(b"\r\n\r\n");
        let mut slots = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut slots);
        let Ok(httparse::Status::Complete(_)) = req.parse(&head) else {
            return None;
        };
        let read = &req.headers[0];
        Some((read.name.as_bytes().to_vec(), read.value.to_vec()))
    }

    /// A name or value httparse reads from a head is one `HeaderName` and `HeaderValue` take,
    /// so a head read here holds nothing that hyper's reading of it would refuse.
    #[test]
    fn what_httparse_reads_http_takes() {
        for b in 0..=255u8 {
            if let Some((name, _)) = one_line(&[b'x', b, b':', b' ', b'v']) {
                assert!(HeaderName::from_bytes(&name).is_ok(), "name byte {b:#x}");
            }
            if let Some((_, value)) = one_line(&[b'x', b':', b' ', b'v', b, b'v']) {
                assert!(HeaderValue::from_bytes(&value).is_ok(), "value byte {b:#x}");
            }
        }
    }
}
