//! `/metrics`, `/healthz` and `/readyz` of a gateway on 127.0.0.1:0 in front of the dev cluster:
//! the session, relay and refusal figures move as a real exec session opens, relays and ends.

mod support {
    pub mod client;
    pub mod devcluster;
}

use std::sync::Arc;

use hyper::StatusCode;
use podterm::cluster::Clusters;
use podterm::config::Config;
use podterm::events::{SessionInfo, SessionObserver};
use podterm::gateway::Gateway;
use podterm::gateway::Hooks;
use podterm::policy::limits::SessionLimits;
use podterm::relay::Summary;
use podterm::server;
use support::client::{self, DEV_USER, exec_path, metric, step};
use support::devcluster::Dev;
use tokio::sync::mpsc;

/// Tells the test when a session has ended and every observer (metrics first) has run.
struct Ended(mpsc::UnboundedSender<String>);

impl SessionObserver for Ended {
    fn ended(&self, _: &SessionInfo, summary: &Summary) {
        let _ = self.0.send(summary.close.label().to_string());
    }
}

struct Running {
    addr: std::net::SocketAddr,
    ended: mpsc::UnboundedReceiver<String>,
    _dev: Dev,
}

async fn start() -> Running {
    start_with(Hooks::default()).await
}

async fn start_with(mut hooks: Hooks) -> Running {
    let dev = Dev::start().await;
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        kubeconfig: Some(dev.kubeconfig().to_path_buf()),
        ..Config::default()
    };
    let clusters = Clusters::load(&config).await.expect("clusters");
    let (tx, ended) = mpsc::unbounded_channel();
    hooks.observers.push(Arc::new(Ended(tx)));
    let listener = server::bind(config.listen).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let gateway = Arc::new(Gateway::with_hooks(config, clusters, hooks));
    tokio::spawn(server::run(listener, gateway));
    Running {
        addr,
        ended,
        _dev: dev,
    }
}

#[tokio::test]
async fn metrics_move_as_a_session_opens_relays_and_ends() {
    let mut gw = start().await;
    let addr = gw.addr;
    let active = r#"podterm_sessions_active{cluster="dev"}"#;
    let exited = r#"podterm_sessions_total{cluster="dev",outcome="exited"}"#;
    let to_cluster = r#"podterm_relay_bytes_total{direction="client_to_cluster"}"#;
    let to_client = r#"podterm_relay_bytes_total{direction="cluster_to_client"}"#;

    assert_eq!(client::get(addr, "/healthz", &[]).await.0, StatusCode::OK);
    assert_eq!(client::get(addr, "/readyz", &[]).await.0, StatusCode::OK);
    let (status, text) = client::get(addr, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    assert!(client::sample(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(client::sample(&text, "process_open_fds").unwrap() > 0.0);
    assert_eq!(client::sample(&text, active).unwrap_or(0.0), 0.0);
    assert_eq!(client::sample(&text, to_cluster), Some(0.0));
    assert_eq!(client::sample(&text, to_client), Some(0.0));

    // Open: the gauge counts it, the connect time is observed.
    let path = exec_path(
        "dev",
        "default",
        "echo-0",
        "container=echo&stdin=true&stdout=true",
    );
    let mut session = step("exec", client::exec(addr, &path, &DEV_USER))
        .await
        .expect("exec session");
    assert_eq!(metric(addr, active).await, 1.0);
    assert_eq!(
        metric(addr, "podterm_upstream_connect_seconds_count").await,
        1.0
    );

    // Relay: 7 bytes in (channel byte + "hello\n"), the echo out; counted as they pass.
    session.send(0, b"hello\n").await;
    session.expect_stdout(b"hello\n").await;
    assert_eq!(metric(addr, to_cluster).await, 7.0);
    let out = metric(addr, to_client).await;
    assert!(out >= 7.0, "cluster_to_client {out}");
    session.send(0, b"again\n").await;
    session.expect_stdout(b"again\n").await;
    assert_eq!(metric(addr, to_cluster).await, 14.0);
    assert_eq!(metric(addr, active).await, 1.0);

    // End: stdin EOF (v5 close channel), the echo container exits 0, close 1000.
    session.send(255, &[0]).await;
    let (code, reason) = session.until_close().await;
    assert_eq!((code, reason.as_str()), (1000, "exited"));
    assert_eq!(
        step("session end", gw.ended.recv()).await.unwrap(),
        "exited"
    );
    assert_eq!(metric(addr, active).await, 0.0);
    assert_eq!(metric(addr, exited).await, 1.0);
    assert_eq!(
        metric(addr, "podterm_session_duration_seconds_count").await,
        1.0
    );
    assert_eq!(metric(addr, to_cluster).await, 16.0, "plus [255, 0]");
    // Every byte the client received was counted, and nothing else.
    assert_eq!(metric(addr, to_client).await, session.received_bytes as f64);
}

#[tokio::test]
async fn refusals_are_counted_by_reason() {
    let gw = start().await;
    let addr = gw.addr;
    let path = exec_path("dev", "default", "echo-0", "container=echo&stdin=true");

    let refused = client::exec(addr, &path, &[]).await.err().expect("refused");
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert_eq!(
        metric(addr, r#"podterm_denied_total{reason="no_user"}"#).await,
        1.0
    );

    // Not in `devs`: the dev cluster's RBAC refuses the impersonated exec.
    let outsider = [
        ("X-Forwarded-User", "mallory"),
        ("X-Forwarded-Groups", "team-a"),
    ];
    let refused = client::exec(addr, &path, &outsider)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(
        metric(addr, r#"podterm_denied_total{reason="cluster_forbidden"}"#).await,
        1.0
    );
    // No session was counted for either.
    let (_, text) = client::get(addr, "/metrics", &[]).await;
    assert!(!text.contains("podterm_sessions_total{"), "{text}");
}

#[tokio::test]
async fn session_limits_are_counted_as_refusals() {
    let hooks = Hooks {
        limits: SessionLimits::new(None, Some(1)),
        ..Hooks::default()
    };
    let mut gw = start_with(hooks).await;
    let addr = gw.addr;
    let path = exec_path("dev", "default", "echo-0", "container=echo&stdin=true");
    let mut first = step("exec", client::exec(addr, &path, &DEV_USER))
        .await
        .expect("first session");
    let refused = client::exec(addr, &path, &DEV_USER)
        .await
        .err()
        .expect("a second session of the same user is refused");
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(
        metric(addr, r#"podterm_denied_total{reason="limit_per_user"}"#).await,
        1.0
    );
    assert_eq!(
        metric(addr, r#"podterm_sessions_active{cluster="dev"}"#).await,
        1.0
    );
    first.send(255, &[0]).await;
    assert_eq!(first.until_close().await.0, 1000);
    assert_eq!(
        step("session end", gw.ended.recv()).await.unwrap(),
        "exited"
    );
    assert_eq!(
        metric(addr, r#"podterm_sessions_active{cluster="dev"}"#).await,
        0.0
    );
}
