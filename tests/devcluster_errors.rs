//! The dev cluster's refusals, as the real API server gives them: `Status` JSON bodies with the
//! right HTTP code for 401, 403, 404, 405 and the exec request's 400s.

#[path = "support/devcluster.rs"]
mod support;
#[path = "support/wsclient.rs"]
mod wsclient;

use support::Dev;
use wsclient::{Client, exec_path};

#[tokio::test]
async fn bad_or_missing_token_is_401() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    for auth in ["", "Bearer wrong", "Basic YWRtaW46YWRtaW4=", "Bearer"] {
        let s = client
            .status(
                "GET",
                "/api/v1/namespaces/default/pods",
                &[("Authorization", auth)],
            )
            .await;
        assert_eq!(
            (s.code, s.reason.as_str(), s.message.as_str()),
            (401, "Unauthorized", "Unauthorized"),
            "{auth:?}"
        );
    }
    // Exec is checked before any upgrade.
    let s = client
        .status(
            "GET",
            &exec_path("echo-0", "command=x&stdin=true"),
            &[("Authorization", "Bearer no")],
        )
        .await;
    assert_eq!(s.code, 401);
    // Version and health need no token, as on a real API server with anonymous discovery.
    let (code, body) = client
        .send("GET", "/version", &[("Authorization", "Bearer no")])
        .await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["major"], "1");
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn discovery_answers_like_an_api_server() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let json = |b: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&b).unwrap();
    let (code, body) = client.get("/api").await;
    assert_eq!(code, 200);
    assert_eq!(json(body)["versions"][0], "v1");
    let (_, body) = client.get("/apis").await;
    assert_eq!(json(body)["kind"], "APIGroupList");
    let (_, body) = client.get("/api/v1").await;
    let list = json(body);
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "namespaces",
            "pods",
            "pods/exec",
            "pods/attach",
            "pods/log",
            "pods/ephemeralcontainers"
        ]
    );
    let (_, body) = client.get("/api/v1/namespaces/team-a/pods").await;
    let pods = json(body);
    assert_eq!(pods["kind"], "PodList");
    assert_eq!(pods["items"].as_array().unwrap().len(), 1);
    assert_eq!(pods["items"][0]["metadata"]["name"], "api-0");
    let (_, body) = client.get("/api/v1/namespaces/default/pods/web-0").await;
    let pod = json(body);
    assert_eq!(pod["spec"]["containers"][0]["name"], "app");
    assert_eq!(pod["status"]["containerStatuses"][1]["name"], "sidecar");
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn unknown_things_are_404_and_wrong_methods_405() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let s = client
        .status("GET", "/api/v1/namespaces/default/pods/nope", &[])
        .await;
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert_eq!(s.message, "pods \"nope\" not found");
    assert_eq!(s.details.as_ref().unwrap().name, "nope");
    let s = client.status("GET", "/api/v1/namespaces/nope", &[]).await;
    assert_eq!(s.message, "namespaces \"nope\" not found");
    let s = client
        .status(
            "GET",
            "/api/v1/namespaces/default/pods/nope/exec?command=ls&stdout=1",
            &[],
        )
        .await;
    assert_eq!(s.message, "pods \"nope\" not found");
    let s = client.status("GET", "/apis/apps/v1/deployments", &[]).await;
    assert_eq!(s.code, 404);
    assert_eq!(
        s.message,
        "the server could not find the requested resource"
    );
    let s = client
        .status("GET", "/api/v1/pods?labelSelector=app%20in%20(web)", &[])
        .await;
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));
    // Pods are watched (kubectl debug's informer); namespaces are not.
    let s = client
        .status("GET", "/api/v1/namespaces?watch=true", &[])
        .await;
    assert_eq!(s.code, 405);
    let (code, body) = client
        .get("/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1")
        .await;
    assert_eq!((code, body.len()), (200, 0), "no change within the second");
    let (code, body) = client
        .get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb&watch=false")
        .await;
    assert_eq!(code, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let s = client
        .status("DELETE", "/api/v1/namespaces/default/pods/tools", &[])
        .await;
    assert_eq!((s.code, s.reason.as_str()), (405, "MethodNotAllowed"));
    let s = client
        .status("POST", "/api/v1/namespaces/default/pods", &[])
        .await;
    assert_eq!(s.code, 405);
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn exec_parameters_are_checked_before_the_upgrade() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let bad = |path: String| {
        let client = client.clone();
        async move {
            // As a WebSocket upgrade (kubectl 1.30+) …
            match client.exec_ws(&path, "v5.channel.k8s.io", &[]).await {
                Err(fastwebsockets::WebSocketError::InvalidStatusCode(400)) => {}
                Err(e) => panic!("{path}: {e}"),
                Ok(_) => panic!("{path}: upgraded"),
            }
            // … and as a plain request, to read the Status body.
            let s = client.status("GET", &path, &[]).await;
            assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{path}");
            s.message
        }
    };
    assert_eq!(
        bad(exec_path("web-0", "command=ls&stdout=true")).await,
        "a container name must be specified for pod web-0, choose one of: [app sidecar]"
    );
    assert_eq!(
        bad(exec_path("web-0", "container=nope&command=ls&stdout=true")).await,
        "container nope is not valid for pod web-0"
    );
    assert_eq!(
        bad(exec_path("tools", "stdout=true")).await,
        "you must specify at least one command for the container"
    );
    assert_eq!(
        bad(exec_path("tools", "command=ls")).await,
        "you must specify at least 1 of stdin, stdout, stderr"
    );
    // kube-apiserver drops a pair with a raw `;` (Go's url.ParseQuery): no command is left.
    assert_eq!(
        bad(exec_path("tools", "command=ls;x&stdout=true")).await,
        "you must specify at least one command for the container"
    );
    // … and a pair with a bad escape.
    assert_eq!(
        bad(exec_path("tools", "command=%zz&stdout=true")).await,
        "you must specify at least one command for the container"
    );
}

#[tokio::test]
async fn exec_needs_a_websocket_with_a_known_subprotocol() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let path = exec_path("echo-0", "command=cat&stdin=true&stdout=true");
    // Not an upgrade (what an old SPDY kubectl's POST looks like without SPDY support).
    for method in ["GET", "POST"] {
        let s = client.status(method, &path, &[]).await;
        assert_eq!(s.code, 400, "{method}");
        assert!(
            s.message.contains("Upgrade request required"),
            "{}",
            s.message
        );
    }
    let s = client
        .status(
            "POST",
            &path,
            &[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")],
        )
        .await;
    assert_eq!(s.code, 400);
    match client
        .exec_ws(&path, "channel.k8s.io, base64.channel.k8s.io", &[])
        .await
    {
        Err(fastwebsockets::WebSocketError::InvalidStatusCode(400)) => {}
        other => panic!("expected 400, got {:?}", other.map(|(_, p)| p)),
    }
    let (_, chosen) = client
        .exec_ws(&path, "v4.channel.k8s.io", &[])
        .await
        .unwrap();
    assert_eq!(chosen, "v4.channel.k8s.io");
    let (_, chosen) = client
        .exec_ws(&path, "v4.channel.k8s.io, v5.channel.k8s.io", &[])
        .await
        .unwrap();
    assert_eq!(chosen, "v5.channel.k8s.io");
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn impersonated_callers_are_judged_by_the_rules() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let alice = [("Impersonate-User", "alice"), ("Impersonate-Group", "devs")];
    let s = client
        .status(
            "GET",
            "/api/v1/namespaces/team-a/pods/api-0/exec?command=ls&stdout=true",
            &alice,
        )
        .await;
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        "pods \"api-0\" is forbidden: User \"alice\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"team-a\""
    );
    assert_eq!(s.details.as_ref().unwrap().kind, "pods");
    let s = client
        .status("GET", "/api/v1/namespaces", &[("Impersonate-User", "eve")])
        .await;
    assert_eq!(
        s.message,
        "namespaces is forbidden: User \"eve\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    // Several Impersonate-Group headers are several groups: `team-a` is the one that counts.
    let bob = [
        ("Impersonate-User", "bob"),
        ("Impersonate-Group", "ops"),
        ("Impersonate-Group", "team-a"),
    ];
    let (code, _) = client
        .send("GET", "/api/v1/namespaces/team-a/pods/api-0", &bob)
        .await;
    assert_eq!(code, 200);
    let (code, _) = client
        .send("GET", "/api/v1/namespaces/default/pods/tools", &bob)
        .await;
    assert_eq!(code, 403);
    let (_, chosen) = client
        .exec_ws(
            "/api/v1/namespaces/team-a/pods/api-0/exec?command=true&stdout=true",
            "v5.channel.k8s.io",
            &bob,
        )
        .await
        .expect("bob may exec in team-a");
    assert_eq!(chosen, "v5.channel.k8s.io");
    // A comma-joined header is one group named "ops,team-a", which no rule names.
    let joined = [
        ("Impersonate-User", "bob"),
        ("Impersonate-Group", "ops,team-a"),
    ];
    let (code, _) = client
        .send("GET", "/api/v1/namespaces/team-a/pods/api-0", &joined)
        .await;
    assert_eq!(code, 403);
    let s = client
        .status(
            "GET",
            "/api/v1/namespaces/default/pods",
            &[("Impersonate-Group", "devs")],
        )
        .await;
    assert_eq!(s.code, 400);
    dev.cluster.shutdown().await;
}
