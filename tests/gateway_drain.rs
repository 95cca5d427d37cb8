//! Graceful drain of the real `podterm serve` binary: with a session open, SIGTERM turns
//! `/readyz` to 503 and refuses new sessions with a 503 `Status`, the open session keeps working
//! until `PODTERM_DRAIN_TIMEOUT`, then closes 1001, and the process exits 0. A second signal
//! exits at once.

mod support {
    pub mod client;
    pub mod devcluster;
}

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use rustix::process::{Pid, Signal, kill_process};
use support::client::{self, DEV_USER, exec_path, metric, step};
use support::devcluster::Dev;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

/// `podterm serve` in front of the dev cluster, its JSON log lines read from stderr.
struct Serve {
    child: Child,
    log: Lines<BufReader<ChildStderr>>,
    addr: SocketAddr,
    _dev: Dev,
}

impl Serve {
    async fn start(drain_timeout: &str) -> Serve {
        let dev = Dev::start().await;
        let mut child = Command::new(env!("CARGO_BIN_EXE_podterm"))
            .arg("serve")
            .env_clear()
            .env("HOME", dev.dir.path())
            .env("PODTERM_LISTEN", "127.0.0.1:0")
            .env("PODTERM_KUBECONFIG", dev.kubeconfig())
            .env("PODTERM_DRAIN_TIMEOUT", drain_timeout)
            .env("PODTERM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn podterm serve");
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        let serving = step("podterm serving", wait_for(&mut log, "podterm serving")).await;
        let addr = serving["listen"]
            .as_str()
            .expect("the serving line names its address")
            .parse()
            .expect("an address");
        Serve {
            child,
            log,
            addr,
            _dev: dev,
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.child.id().expect("running") as i32).expect("pid");
        kill_process(pid, signal).expect("kill");
    }

    /// Waits for the exit, reading (and so draining) the log meanwhile.
    async fn exit(mut self) -> ExitStatus {
        while let Ok(Some(_)) = self.log.next_line().await {}
        self.child.wait().await.expect("wait")
    }
}

/// Reads log lines until one whose message starts with `message`; that line, parsed.
async fn wait_for(log: &mut Lines<BufReader<ChildStderr>>, message: &str) -> serde_json::Value {
    loop {
        let line = log
            .next_line()
            .await
            .expect("read the log")
            .unwrap_or_else(|| panic!("podterm exited before logging `{message}`"));
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(message))
        {
            return event;
        }
    }
}

fn echo_path() -> String {
    exec_path(
        "dev",
        "default",
        "echo-0",
        "container=echo&stdin=true&stdout=true",
    )
}

#[tokio::test]
async fn sigterm_drains_then_closes_1001_and_exits_0() {
    let drain_timeout = Duration::from_secs(3);
    let mut serve = Serve::start("3s").await;
    let addr = serve.addr;
    assert_eq!(client::get(addr, "/readyz", &[]).await.0, StatusCode::OK);
    let mut session = step("exec", client::exec(addr, &echo_path(), &DEV_USER))
        .await
        .expect("exec session");
    session.send(0, b"before\n").await;
    session.expect_stdout(b"before\n").await;

    let signalled = Instant::now();
    serve.signal(Signal::TERM);
    let draining = step("draining", wait_for(&mut serve.log, "draining")).await;
    assert_eq!(draining["signal"], "SIGTERM");
    assert_eq!(draining["open_sessions"], 1);

    // Not ready any more, and no new sessions: a 503 `Status` kubectl can decode.
    let (status, body) = client::get(addr, "/readyz", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(client::get(addr, "/healthz", &[]).await.0, StatusCode::OK);
    let refused = client::exec(addr, &echo_path(), &DEV_USER)
        .await
        .err()
        .expect("a new session is refused while draining");
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    let status: serde_json::Value = serde_json::from_str(&refused.body).expect("Status JSON");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 503);
    assert!(
        status["message"].as_str().unwrap().contains("draining"),
        "{status}"
    );
    assert_eq!(
        metric(addr, r#"podterm_denied_total{reason="draining"}"#).await,
        1.0
    );

    // The open session goes on working during the drain.
    session.send(0, b"during\n").await;
    session.expect_stdout(b"during\n").await;
    assert!(
        signalled.elapsed() < drain_timeout,
        "the checks above took the whole drain timeout; the test proves nothing"
    );
    session.send(0, b"still\n").await;
    session.expect_stdout(b"still\n").await;

    // At the drain timeout: close 1001 with a reason the page can show.
    let (code, reason) = session.until_close().await;
    let closed_after = signalled.elapsed();
    assert_eq!(code, 1001);
    assert_eq!(reason, "podterm is shutting down");
    assert!(
        closed_after >= drain_timeout,
        "closed {closed_after:?} after SIGTERM, before the {drain_timeout:?} drain timeout"
    );

    // The last session is gone: exit 0.
    let status = step("exit", serve.exit()).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn no_sessions_means_sigterm_exits_0_at_once() {
    let serve = Serve::start("5m").await;
    let signalled = Instant::now();
    serve.signal(Signal::TERM);
    let status = step("exit", serve.exit()).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let mut serve = Serve::start("5m").await;
    let mut session = step("exec", client::exec(serve.addr, &echo_path(), &DEV_USER))
        .await
        .expect("exec session");
    session.send(0, b"hi\n").await;
    session.expect_stdout(b"hi\n").await;

    let signalled = Instant::now();
    serve.signal(Signal::TERM);
    step("draining", wait_for(&mut serve.log, "draining")).await;
    serve.signal(Signal::INT);
    let status = step("exit", serve.exit()).await;
    assert!(
        status.code().is_some(),
        "exited by itself, not killed: {status}"
    );
    // Well before the five-minute drain timeout.
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "{:?}",
        signalled.elapsed()
    );
}
