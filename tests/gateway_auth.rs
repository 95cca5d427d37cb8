//! `PODTERM_AUTH=headers` in front of the dev cluster: the caller's identity reaches the
//! cluster through impersonation (its RBAC decides), and podterm refuses callers without a
//! user, with a wrong proxy secret, from a foreign page, and ignores client impersonation.

#[path = "support/gateway.rs"]
mod support;

use std::time::Duration;

use support::{Stack, binary, exec, exec_path, get, read_to_end};

const SECRET: &str = "s3cret-proxy";
const PROTOCOLS: &str = "v5.channel.k8s.io, v4.channel.k8s.io";

async fn stack() -> Stack {
    Stack::start(&[
        ("PODTERM_LISTEN", "127.0.0.1:0"),
        ("PODTERM_PROXY_SECRET", SECRET),
    ])
    .await
}

/// Headers the API gateway would send for `user` in `groups`.
fn as_user<'a>(user: &'a str, groups: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("x-forwarded-user", user),
        ("x-forwarded-groups", groups),
        ("x-podterm-proxy-secret", SECRET),
    ]
}

fn echo_query(word: &str) -> String {
    format!("command=echo&command={word}&stdout=true&stderr=true")
}

#[tokio::test]
async fn devs_may_exec_in_default_and_get_403_in_team_a() {
    let s = stack().await;
    let alice = as_user("alice", "devs");
    let (mut ws, protocol) = exec(
        s.addr,
        &exec_path("default", "tools", &echo_query("hi")),
        &alice,
        PROTOCOLS,
    )
    .await
    .expect("devs may exec in default");
    assert_eq!(protocol, "v5.channel.k8s.io");
    let ended = read_to_end(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(ended.stdout, b"hi\n");
    assert_eq!(ended.exit_code(), Some(0));
    assert_eq!(ended.close_code, Some(1000));

    let refused = exec(
        s.addr,
        &exec_path("team-a", "api-0", &echo_query("hi")),
        &alice,
        PROTOCOLS,
    )
    .await
    .err()
    .expect("devs may not exec in team-a");
    assert_eq!(refused.code, 403);
    let status = refused.status();
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    // The cluster's own message, naming the impersonated user.
    assert!(status.message.contains("\"alice\""), "{}", status.message);

    // Reads go as the caller too.
    assert_eq!(
        get(
            s.addr,
            "/clusters/dev/api/v1/namespaces/default/pods",
            &alice
        )
        .await
        .code,
        200
    );
    let read = get(
        s.addr,
        "/clusters/dev/api/v1/namespaces/team-a/pods",
        &alice,
    )
    .await;
    assert_eq!(read.code, 403);
    assert!(read.status().message.contains("\"alice\""));
}

#[tokio::test]
async fn every_group_is_its_own_impersonation_header() {
    let s = stack().await;
    // Two groups in one header value, and groups over two header lines: both reach the
    // cluster as separate groups (a single joined header would be one group "devs,team-a").
    let joined = as_user("bob", "devs,team-a");
    let mut split = as_user("bob", "devs");
    split.push(("x-forwarded-groups", "team-a"));
    for headers in [joined, split] {
        for (ns, pod) in [("default", "tools"), ("team-a", "api-0")] {
            let (mut ws, _) = exec(
                s.addr,
                &exec_path(ns, pod, &echo_query(ns)),
                &headers,
                PROTOCOLS,
            )
            .await
            .unwrap_or_else(|r| panic!("{ns}: {} {}", r.code, String::from_utf8_lossy(&r.body)));
            let ended = read_to_end(&mut ws, Duration::from_secs(10)).await;
            assert_eq!(ended.stdout, format!("{ns}\n").as_bytes());
        }
    }
}

#[tokio::test]
async fn no_user_is_401() {
    let s = stack().await;
    let headers = [
        ("x-podterm-proxy-secret", SECRET),
        ("x-forwarded-groups", "devs"),
    ];
    let refused = exec(
        s.addr,
        &exec_path("default", "tools", &echo_query("hi")),
        &headers,
        PROTOCOLS,
    )
    .await
    .err()
    .expect("no user");
    assert_eq!(refused.code, 401);
    assert_eq!(refused.status().reason, "Unauthorized");
    assert_eq!(
        get(s.addr, "/clusters/dev/api/v1/namespaces", &headers)
            .await
            .code,
        401
    );
    assert_eq!(get(s.addr, "/api/clusters", &headers).await.code, 401);
}

#[tokio::test]
async fn a_wrong_or_missing_proxy_secret_is_401() {
    let s = stack().await;
    for secret in [
        None,
        Some("wrong"),
        Some("s3cret-prox"),
        Some("s3cret-proxyy"),
    ] {
        let mut headers = vec![
            ("x-forwarded-user", "alice"),
            ("x-forwarded-groups", "devs"),
        ];
        if let Some(secret) = secret {
            headers.push(("x-podterm-proxy-secret", secret));
        }
        let refused = exec(
            s.addr,
            &exec_path("default", "tools", &echo_query("hi")),
            &headers,
            PROTOCOLS,
        )
        .await
        .err()
        .expect("wrong secret");
        assert_eq!(refused.code, 401, "{secret:?}");
        assert!(!String::from_utf8_lossy(&refused.body).contains(SECRET));
    }
}

#[tokio::test]
async fn a_foreign_origin_is_403_and_the_own_origin_passes() {
    let s = stack().await;
    let path = exec_path("default", "tools", &echo_query("hi"));
    let mut foreign = as_user("alice", "devs");
    foreign.push(("origin", "https://evil.example"));
    let refused = exec(s.addr, &path, &foreign, PROTOCOLS)
        .await
        .err()
        .expect("foreign origin");
    assert_eq!(refused.code, 403);
    assert_eq!(refused.status().reason, "Forbidden");

    let own = format!("http://{}", s.addr);
    let mut same = as_user("alice", "devs");
    same.push(("origin", &own));
    let (mut ws, _) = exec(s.addr, &path, &same, PROTOCOLS)
        .await
        .expect("own origin");
    assert_eq!(
        read_to_end(&mut ws, Duration::from_secs(10)).await.stdout,
        b"hi\n"
    );
}

#[tokio::test]
async fn a_clients_own_impersonation_and_authorization_headers_are_ignored() {
    let s = stack().await;
    let token = format!("Bearer {}", s.cluster.token);
    let mut headers = as_user("alice", "devs");
    headers.extend([
        ("impersonate-user", "admin"),
        ("impersonate-group", "team-a"),
        ("impersonate-group", "system:masters"),
        ("authorization", token.as_str()),
    ]);
    let refused = exec(
        s.addr,
        &exec_path("team-a", "api-0", &echo_query("hi")),
        &headers,
        PROTOCOLS,
    )
    .await
    .err()
    .expect("still alice of devs");
    assert_eq!(refused.code, 403);
    assert!(refused.status().message.contains("\"alice\""));
    let read = get(
        s.addr,
        "/clusters/dev/api/v1/namespaces/team-a/pods",
        &headers,
    )
    .await;
    assert_eq!(read.code, 403);
}

#[tokio::test]
async fn the_surface_is_the_kubernetes_subset_and_nothing_else() {
    let s = stack().await;
    let alice = as_user("alice", "devs");
    let clusters = get(s.addr, "/api/clusters", &alice).await;
    assert_eq!(clusters.code, 200);
    assert_eq!(
        serde_json::from_slice::<Vec<String>>(&clusters.body).unwrap(),
        ["dev"]
    );
    for path in [
        "/clusters/dev/version",
        "/clusters/dev/api",
        "/clusters/dev/api/v1",
        "/clusters/dev/apis",
    ] {
        assert_eq!(get(s.addr, path, &alice).await.code, 200, "{path}");
    }
    let pod = get(
        s.addr,
        "/clusters/dev/api/v1/namespaces/default/pods/web-0",
        &alice,
    )
    .await;
    assert_eq!(pod.code, 200);
    let missing = get(
        s.addr,
        "/clusters/dev/api/v1/namespaces/default/pods/nope",
        &alice,
    )
    .await;
    assert_eq!(
        (missing.code, missing.status().reason.as_str()),
        (404, "NotFound")
    );
    for path in [
        "/clusters/dev/api/v1/secrets",
        "/clusters/dev/api/v1/namespaces/default/secrets",
        "/clusters/dev/api/v1/namespaces/default/pods/web-0/status",
        "/clusters/dev/api/v1/namespaces/../pods",
        "/clusters/nope/api",
        "/nothing",
    ] {
        let r = get(s.addr, path, &alice).await;
        assert_eq!(
            (r.code, r.status().kind.as_str()),
            (404, "Status"),
            "{path}"
        );
    }
    // A subprotocol podterm does not speak is refused before anything reaches the cluster.
    let refused = exec(
        s.addr,
        &exec_path("default", "tools", &echo_query("hi")),
        &alice,
        "channel.k8s.io",
    )
    .await
    .err()
    .expect("no v4/v5");
    assert_eq!(refused.code, 400);
    // A container that does not exist: the cluster's 400/404, passed through.
    let refused = exec(
        s.addr,
        &exec_path("default", "web-0", "command=true&stdout=true"),
        &alice,
        PROTOCOLS,
    )
    .await
    .err()
    .expect("a multi-container pod needs a container");
    assert_eq!(refused.code, 400);
    assert_eq!(refused.status().code, 400);
    // v4 is answered when only v4 is offered, and stdin reaches the command.
    let (mut ws, protocol) = exec(
        s.addr,
        &exec_path("default", "echo-0", "command=cat&stdin=true&stdout=true"),
        &alice,
        "v4.channel.k8s.io",
    )
    .await
    .expect("v4");
    assert_eq!(protocol, "v4.channel.k8s.io");
    ws.write_frame(binary(b"\0ping\n")).await.unwrap();
    let echoed = loop {
        let frame = ws.read_frame().await.unwrap();
        if frame.opcode == fastwebsockets::OpCode::Binary && !frame.payload[1..].is_empty() {
            break frame.payload.to_vec();
        }
    };
    assert_eq!(echoed, b"\x01ping\n");
    ws.write_frame(fastwebsockets::Frame::close(1000, b""))
        .await
        .unwrap();
    let ended = read_to_end(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(ended.close_code, Some(1000));
}
