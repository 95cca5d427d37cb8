//! Differential test of podterm's exec-query reading against a reference model of what
//! kube-apiserver does, written here independently from Go's source: net/url's `parseQuery`
//! and `unescape` (encodeQueryComponent mode), then apimachinery's
//! `Convert_Slice_string_To_string` / `Convert_Slice_string_To_bool` as used by the generated
//! `Convert_url_Values_To_v1_PodExecOptions`. For every generated query: when podterm
//! accepts it, podterm's value is the model's, and the query podterm sends upstream reads in
//! the model as that same value; when podterm refuses it, the query has one of the features
//! on which two readers can disagree. Cases come from proptest (seeded, replayable: failures
//! print the case and persist nothing).

use std::collections::HashMap;

use podterm::protocol::exec_query::ExecQuery;
use proptest::prelude::*;

/// Go's `url.ParseQuery`: a map of key → values, and whether any pair was dropped.
fn go_parse_query(query: &str) -> (HashMap<Vec<u8>, Vec<Vec<u8>>>, bool) {
    let mut m: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    let mut err = false;
    let mut rest = query;
    while !rest.is_empty() {
        let (key, tail) = match rest.find('&') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = tail;
        if key.contains(';') {
            err = true;
            continue;
        }
        if key.is_empty() {
            continue;
        }
        let (k, v) = match key.find('=') {
            Some(i) => (&key[..i], &key[i + 1..]),
            None => (key, ""),
        };
        let (Some(k), Some(v)) = (go_unescape(k), go_unescape(v)) else {
            err = true;
            continue;
        };
        m.entry(k).or_default().push(v);
    }
    (m, err)
}

/// Go's `unescape(s, encodeQueryComponent)`.
fn go_unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let ishex = |c: u8| c.is_ascii_hexdigit();
    let unhex = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !ishex(b[i + 1]) || !ishex(b[i + 2]) {
                return None;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(unhex(b[i + 1]) << 4 | unhex(b[i + 2]));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// apimachinery's conversion into PodExecOptions.
#[derive(Debug, PartialEq)]
struct Model {
    container: Vec<u8>,
    command: Vec<Vec<u8>>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

fn convert(m: &HashMap<Vec<u8>, Vec<Vec<u8>>>) -> Model {
    let get = |k: &str| m.get(k.as_bytes()).filter(|v| !v.is_empty());
    let flag = |k: &str| {
        get(k).is_some_and(|v| {
            let first = String::from_utf8_lossy(&v[0]).to_string();
            !(first == "0" || first.eq_ignore_ascii_case("false"))
        })
    };
    Model {
        container: get("container").map(|v| v[0].clone()).unwrap_or_default(),
        command: get("command").cloned().unwrap_or_default(),
        stdin: flag("stdin"),
        stdout: flag("stdout"),
        stderr: flag("stderr"),
        tty: flag("tty"),
    }
}

fn model_of(q: &ExecQuery) -> Model {
    Model {
        container: q.container.clone().unwrap_or_default().into_bytes(),
        command: q.command.iter().map(|a| a.clone().into_bytes()).collect(),
        stdin: q.stdin,
        stdout: q.stdout,
        stderr: q.stderr,
        tty: q.tty,
    }
}

/// Pieces exec queries are made of, the troublesome ones included.
fn piece() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "container",
        "command",
        "stdin",
        "stdout",
        "stderr",
        "tty",
        "con%74ainer",
        "tt%79",
        "Container",
        "x",
        "",
        "command;",
        "%zz",
        "tty+",
    ]);
    let value = prop::sample::select(vec![
        "", "true", "false", "FALSE", "0", "1", "t", "yes", "on", "off", "app", "sidecar", "a;b",
        "%zz", "%4", "%FF", "%C3%A9", "a+b", "%2B", "-e", "%25s|", "=", "a=b", "%00",
    ]);
    (key, value, any::<bool>()).prop_map(|(k, v, with_eq)| {
        if with_eq {
            format!("{k}={v}")
        } else {
            k.to_string()
        }
    })
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..8).prop_map(|pieces| pieces.join("&"))
}

/// Whether `query` has a feature on which readers can disagree (what podterm refuses).
fn ambiguous(query: &str, m: &HashMap<Vec<u8>, Vec<Vec<u8>>>, dropped: bool) -> bool {
    let repeated = ["container", "stdin", "stdout", "stderr", "tty"]
        .iter()
        .any(|k| m.get(k.as_bytes()).is_some_and(|v| v.len() > 1));
    let not_utf8 = ["container", "command"].iter().any(|k| {
        m.get(k.as_bytes())
            .is_some_and(|v| v.iter().any(|x| std::str::from_utf8(x).is_err()))
    });
    dropped || repeated || not_utf8 || query.split('&').count() > 1000
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn podterm_reads_what_kube_apiserver_reads(q in query()) {
        let (m, dropped) = go_parse_query(&q);
        match ExecQuery::parse(&q) {
            Ok(parsed) => {
                prop_assert!(!ambiguous(&q, &m, dropped), "accepted an ambiguous query: {q}");
                prop_assert_eq!(model_of(&parsed), convert(&m), "{}", q);
                // What podterm sends upstream reads, in the model, as the same value.
                let (upstream, dropped) = go_parse_query(&parsed.encode());
                prop_assert!(!dropped);
                prop_assert_eq!(convert(&upstream), model_of(&parsed));
            }
            Err(e) => prop_assert!(ambiguous(&q, &m, dropped), "refused {q}: {e}"),
        }
    }

    #[test]
    fn any_value_survives_the_upstream_encoding(
        container in proptest::option::of("[^\u{0}]{0,12}"),
        command in prop::collection::vec(any::<String>(), 0..6),
        flags in any::<[bool; 4]>(),
    ) {
        let q = ExecQuery {
            container: container.filter(|c| !c.is_empty()),
            command,
            stdin: flags[0],
            stdout: flags[1],
            stderr: flags[2],
            tty: flags[3],
        };
        let (m, dropped) = go_parse_query(&q.encode());
        prop_assert!(!dropped);
        prop_assert_eq!(convert(&m), model_of(&q));
        prop_assert_eq!(ExecQuery::parse(&q.encode()).unwrap(), q);
    }
}
