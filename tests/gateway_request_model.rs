//! One truth per request (issue 16: H1, H2, M1, M3, M5): what podterm's policy judged and
//! audited is what the dev cluster — which reads exec queries as kube-apiserver does — ran;
//! queries that could be read two ways are refused before anything reaches the cluster; and
//! every exec attempt leaves its pair of audit lines.

#[path = "support/governed.rs"]
mod governed;
#[path = "support/gateway.rs"]
mod support;

use std::time::Duration;

use governed::{Governed, who};
use podterm::identity::Identity;
use podterm::policy::Policy;
use support::{exec, exec_path, get, read_to_end};

const V5: &str = "v5.channel.k8s.io";
const LIMIT: Duration = Duration::from_secs(30);

/// What should become of a raw exec query.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    /// Refused with this code before the exec reached the cluster.
    Refused(u16),
    /// Ran.
    Ran,
}

/// Raw queries as an attacker or an odd client writes them, sent as `(user, groups)`.
const CORPUS: &[(&str, &str, &str, Fate)] = &[
    // H1: every spelling kube-apiserver reads as a tty is a tty for the policy too.
    (
        "sam",
        "support",
        "container=app&command=cat&command=/proc/1/status&stdout=true&tty=t",
        Fate::Refused(403),
    ),
    (
        "sam",
        "support",
        "container=app&command=cat&command=/proc/1/status&stdout=true&tty=yes",
        Fate::Refused(403),
    ),
    (
        "sam",
        "support",
        "container=app&command=cat&command=/proc/1/status&stdout=true&tty=",
        Fate::Refused(403),
    ),
    (
        "sam",
        "support",
        "container=app&command=cat&command=/proc/1/status&stdout=true&tty=on",
        Fate::Refused(403),
    ),
    (
        "sam",
        "support",
        "container=app&command=cat&command=/proc/1/status&stdout=true&tty=true&tty=false",
        Fate::Refused(400),
    ),
    (
        "sam",
        "support",
        "container=app&command=cat&command=/proc/1/status&stdout=true&tty=false&tty=true",
        Fate::Refused(400),
    ),
    // H2: a repeated container.
    (
        "sam",
        "support",
        "container=root&container=app&command=cat&command=/proc/1/status&stdout=true",
        Fate::Refused(400),
    ),
    (
        "sam",
        "support",
        "container=&container=app&command=cat&command=/proc/1/status&stdout=true",
        Fate::Refused(400),
    ),
    // M1: pairs kube-apiserver drops, and argv that is not UTF-8.
    (
        "sam",
        "support",
        "container=app&command=printf&command=%25s|&command=a;b&command=-e&stdout=true",
        Fate::Refused(400),
    ),
    (
        "sam",
        "support",
        "container=app&command=printf&command=%25s|&command=%zz&stdout=true",
        Fate::Refused(400),
    ),
    (
        "sam",
        "support",
        "container=app&command=printf&command=%25s|&command=%FF&stdout=true",
        Fate::Refused(400),
    ),
    (
        "sam",
        "support",
        "container=app&command=printf&command=%25s|&command=x&stdout=true&junk=%4",
        Fate::Refused(400),
    ),
    (
        "sam",
        "support",
        "container=app;&command=printf&command=%25s|&stdout=true",
        Fate::Refused(400),
    ),
    // What runs is what was judged.
    (
        "sam",
        "support",
        "container=app&command=printf&command=%25s|&command=a%3Bb&command=-e&stdout=true",
        Fate::Ran,
    ),
    (
        "sam",
        "support",
        "container=app&command=cat&command=/proc/1/status&stdout=1&tty=FALSE&junk=x",
        Fate::Ran,
    ),
    (
        "sam",
        "support",
        "container=app&command=printf&command=%25s%7C&command=%C3%A9+x&stdout=yes&stdin=0",
        Fate::Ran,
    ),
    (
        "sam",
        "support",
        "con%74ainer=app&command=printf&command=%25s|&stdout=true",
        Fate::Ran,
    ),
    (
        "sam",
        "support",
        "container=app&command=printf&command=%25s|&command=x&stdout=true&tty=0",
        Fate::Ran,
    ),
    (
        "sam",
        "support",
        "container=app&command=printf&command=%25s|&command=x&stdout=true&tty=f",
        Fate::Refused(403),
    ),
    (
        "dana",
        "devs",
        "container=app&command=printf&command=%25s|&command=t&stdout=true&tty=t",
        Fate::Ran,
    ),
    (
        "dana",
        "devs",
        "container=nonroot&command=id&command=-u&stdout=&stderr=",
        Fate::Ran,
    ),
    (
        "dana",
        "devs",
        "container=app&command=printf&command=ok&stdout=true&&&",
        Fate::Ran,
    ),
    // The cluster's own refusals come after admission and run nothing.
    ("dana", "devs", "command=id&stdout=true", Fate::Refused(400)),
    (
        "dana",
        "devs",
        "container=nope&command=id&stdout=true",
        Fate::Refused(400),
    ),
    (
        "dana",
        "devs",
        "container=app&command=id",
        Fate::Refused(400),
    ),
];

#[tokio::test]
async fn what_ran_is_what_was_judged_and_audited() {
    let dev = Governed::start().await;
    let mut front = dev.gateway("model", &[]).await;
    let policy = Policy::parse(governed::POLICY).unwrap();
    for &(user, groups, query, fate) in CORPUS {
        let before = dev.cluster.executed().len();
        let path = exec_path("default", "app-0", query);
        let result = exec(front.addr, &path, &who(user, groups), V5).await;
        let got = match result {
            Ok((mut ws, _)) => {
                read_to_end(&mut ws, LIMIT).await;
                front.next_end().await;
                Fate::Ran
            }
            Err(refusal) => Fate::Refused(refusal.code),
        };
        assert_eq!(got, fate, "{query}");
        let executed = dev.cluster.executed();
        let lines = front.audit_lines().await;
        let last = lines.last().expect("an audit line");
        let session = last["session"].as_str().unwrap();
        let pair: Vec<_> = lines.iter().filter(|l| l["session"] == session).collect();
        assert_eq!(pair.len(), 2, "{query}: {pair:?}");
        if fate != Fate::Ran {
            assert_eq!(executed.len(), before, "{query}: nothing ran");
            assert_eq!(pair[0]["event"], "session.denied", "{query}");
            continue;
        }
        assert_eq!(executed.len(), before + 1, "{query}: one exec ran");
        let ran = executed.last().unwrap();
        let start = pair[0];
        assert_eq!(start["event"], "session.start", "{query}");
        assert_eq!(ran.user, user);
        assert_eq!(start["user"], user);
        assert_eq!(
            start["container"],
            ran.options.container.as_str(),
            "{query}"
        );
        let argv: Vec<String> = serde_json::from_value(start["argv"].clone()).unwrap();
        assert_eq!(argv, ran.options.command, "{query}");
        assert_eq!(start["tty"], ran.options.tty, "{query}");
        let identity = Identity {
            user: user.into(),
            groups: groups.split(',').map(String::from).collect(),
        };
        policy
            .decide(
                &identity,
                "dev",
                "default",
                &ran.options.command,
                ran.options.tty,
            )
            .unwrap_or_else(|d| panic!("{query}: what ran breaks the rule: {d}"));
    }
}

#[tokio::test]
async fn nothing_reaches_the_cluster_before_the_upgrade_is_valid() {
    // M3: no Sec-WebSocket-Key, a wrong version, or a recording that cannot be created.
    let dev = Governed::start().await;
    let records = tempfile::tempdir().unwrap();
    let front = dev
        .gateway(
            "order",
            &[
                ("PODTERM_RECORD_DIR", records.path().to_str().unwrap()),
                ("PODTERM_RECORD_REQUIRED", "true"),
            ],
        )
        .await;
    let path = exec_path("default", "app-0", "container=app&command=id&stdout=true");
    let upgrade = [
        ("x-forwarded-user", "dana"),
        ("x-forwarded-groups", "devs"),
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-protocol", V5),
    ];
    let no_key = get(
        front.addr,
        &path,
        &[&upgrade[..], &[("sec-websocket-version", "13")]].concat(),
    )
    .await;
    assert_eq!(no_key.code, 400);
    let old = [
        &upgrade[..],
        &[
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    ]
    .concat();
    assert_eq!(get(front.addr, &path, &old).await.code, 400);
    std::fs::remove_dir(records.path()).unwrap();
    let refused = exec(front.addr, &path, &who("dana", "devs"), V5).await;
    assert_eq!(refused.err().map(|r| r.code), Some(500));
    assert!(dev.cluster.executed().is_empty(), "nothing ran");
    let lines = front.audit_lines().await;
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "session.denied",
            "session.end",
            "session.denied",
            "session.end",
            "recording.failed",
            "session.denied",
            "session.end"
        ]
    );
}

#[tokio::test]
async fn every_refusal_at_the_edge_is_audited() {
    // M5: refusals before admission leave their two lines too (user null when unknown).
    let dev = Governed::start().await;
    let front = dev
        .gateway(
            "edge",
            &[
                ("PODTERM_PROXY_SECRET", "s3cret"),
                ("PODTERM_ALLOWED_ORIGINS", "https://term.example.com"),
            ],
        )
        .await;
    let q = "container=app&command=id&stdout=true";
    let ok = [
        ("x-forwarded-user", "dana"),
        ("x-forwarded-groups", "devs"),
        ("x-podterm-proxy-secret", "s3cret"),
    ];
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            exec_path("default", "app-0", q),
            vec![ok[0], ok[1]],
            401,
            None,
        ),
        (
            exec_path("default", "app-0", q),
            vec![ok[1], ok[2]],
            401,
            None,
        ),
        (
            exec_path("default", "app-0", q),
            vec![ok[0], ok[1], ok[2], ("origin", "https://evil.example")],
            403,
            Some("dana"),
        ),
        (
            format!("/clusters/nope/api/v1/namespaces/default/pods/app-0/exec?{q}"),
            ok.to_vec(),
            404,
            Some("dana"),
        ),
        (
            exec_path("default", "app~0", q),
            ok.to_vec(),
            404,
            Some("dana"),
        ),
        (
            exec_path("default", "app-0", "command=%zz"),
            ok.to_vec(),
            400,
            Some("dana"),
        ),
    ];
    for (path, headers, code, user) in &cases {
        let refused = exec(front.addr, path, headers, V5).await;
        assert_eq!(refused.err().map(|r| r.code), Some(*code), "{path}");
        let lines = front.audit_lines().await;
        let pair = &lines[lines.len() - 2..];
        assert_eq!(pair[0]["event"], "session.denied", "{path}");
        assert_eq!(pair[1]["event"], "session.end", "{path}");
        assert_eq!(pair[0]["session"], pair[1]["session"]);
        assert_eq!(pair[0]["user"].as_str(), *user, "{path}");
        assert!(
            pair[0]["reason"]
                .as_str()
                .unwrap()
                .starts_with(&code.to_string()),
            "{path}: {}",
            pair[0]["reason"]
        );
    }
    assert!(dev.cluster.executed().is_empty());
    // 503 while draining (an open session keeps the gateway serving).
    let cat = exec_path(
        "default",
        "app-0",
        "container=app&command=cat&stdin=true&stdout=true",
    );
    let (_open, _) = exec(front.addr, &cat, &ok, V5).await.unwrap();
    front.gateway.drain.begin();
    let refused = exec(front.addr, &exec_path("default", "app-0", q), &ok, V5).await;
    assert_eq!(refused.err().map(|r| r.code), Some(503));
    let lines = front.audit_lines().await;
    let denied: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "session.denied")
        .collect();
    assert_eq!(denied.len(), cases.len() + 1);
    assert!(
        denied.last().unwrap()["reason"]
            .as_str()
            .unwrap()
            .starts_with("503")
    );
}

#[tokio::test]
async fn a_wrong_method_is_audited_and_plain_requests_are_not() {
    let dev = Governed::start().await;
    let front = dev.gateway("method", &[]).await;
    let path = exec_path("default", "app-0", "container=app&command=id&stdout=true");
    let mut stream = tokio::net::TcpStream::connect(front.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!(
        "PUT {path} HTTP/1.1\r\nhost: {}\r\nx-forwarded-user: dana\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        front.addr
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    // A plain GET (kubectl's SPDY fallback) runs nothing and is not audited; where the
    // cluster would only want an upgrade, podterm says which clients work.
    let plain = get(front.addr, &path, &who("dana", "devs")).await;
    assert_eq!(plain.code, 400);
    let message = plain.status().message;
    assert!(message.contains("kubectl 1.30"), "{message}");
    let lines = front.audit_lines().await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0]["reason"].as_str().unwrap(),
        "405: the server does not allow this method on the requested resource"
    );
}
