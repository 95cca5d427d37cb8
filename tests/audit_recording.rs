//! Session recordings through the gateway: a tty session's asciicast file replays with
//! `asciinema cat` (PyPI asciinema 2.4.0, installed by scripts/install-test-deps) to exactly the
//! output the client saw; the first resize sets the header's size; input only when asked; a
//! required recording that cannot be created refuses the session.

#[path = "support/governed.rs"]
mod governed;
#[path = "support/gateway.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use governed::{Front, Governed, refusal, who};
use support::{binary, exec, exec_path, read_to_end};

const V5: &str = "v5.channel.k8s.io";

/// `asciinema` from PATH, else from the repository's .venv.
fn asciinema() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("asciinema"))
            .find(|p| p.is_file())
    });
    let bin = on_path
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/asciinema"));
    assert!(
        bin.is_file(),
        "asciinema missing: run scripts/install-test-deps"
    );
    bin
}

/// Runs a tty shell session that resizes, types, prints non-ASCII text and exits; returns
/// what the client saw and the recording's path from the audit trail.
async fn session(front: &mut Front) -> (Vec<u8>, PathBuf) {
    let path = exec_path(
        "default",
        "app-0",
        "container=app&stdin=true&stdout=true&tty=true",
    );
    let (mut ws, _) = exec(front.addr, &path, &who("dana", "devs"), V5)
        .await
        .unwrap();
    ws.write_frame(binary(
        br#"{"Width":100,"Height":30}"#
            .iter()
            .fold(vec![4], |mut v, b| {
                v.push(*b);
                v
            })
            .as_slice(),
    ))
    .await
    .unwrap();
    ws.write_frame(binary(
        "\0printf 'h\\303\\251llo w\\303\\266rld \\342\\202\\254 %s\\n' done; exit 0\r".as_bytes(),
    ))
    .await
    .unwrap();
    let ended = read_to_end(&mut ws, Duration::from_secs(30)).await;
    assert_eq!(ended.exit_code(), Some(0));
    assert!(String::from_utf8_lossy(&ended.stdout).contains("héllo wörld € done"));
    front.next_end().await;
    let lines = front.audit_lines().await;
    let start = lines
        .iter()
        .rev()
        .find(|l| l["event"] == "session.start")
        .unwrap();
    let cast = PathBuf::from(
        start["recording"]
            .as_str()
            .expect("the recording is in the trail"),
    );
    assert_eq!(
        cast.file_name().unwrap().to_str().unwrap(),
        format!("{}.cast", start["session"].as_str().unwrap())
    );
    (ended.stdout, cast)
}

fn events(cast: &Path) -> (serde_json::Value, Vec<serde_json::Value>) {
    let lines = governed::read_lines(cast);
    (lines[0].clone(), lines[1..].to_vec())
}

#[tokio::test]
async fn a_recording_replays_to_what_the_session_showed() {
    let dev = Governed::start().await;
    let dir = dev.dir.path().join("recordings");
    std::fs::create_dir(&dir).unwrap();
    let mut front = dev
        .gateway("rec", &[("PODTERM_RECORD_DIR", dir.to_str().unwrap())])
        .await;
    let (shown, cast) = session(&mut front).await;
    let (header, events) = events(&cast);
    assert_eq!(header["version"], 2);
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(100), Some(30))
    );
    assert_eq!(header["env"]["TERM"], "xterm-256color");
    assert!(
        events.iter().all(|e| e[1] == "o"),
        "no input recorded by default"
    );
    let out = std::process::Command::new(asciinema())
        .arg("cat")
        .arg(&cast)
        .output()
        .expect("asciinema runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&shown)
    );
}

#[tokio::test]
async fn input_is_recorded_only_when_asked() {
    let dev = Governed::start().await;
    let dir = dev.dir.path().join("recordings");
    std::fs::create_dir(&dir).unwrap();
    let mut front = dev
        .gateway(
            "rec-input",
            &[
                ("PODTERM_RECORD_DIR", dir.to_str().unwrap()),
                ("PODTERM_RECORD_INPUT", "true"),
            ],
        )
        .await;
    let (_, cast) = session(&mut front).await;
    let (_, events) = events(&cast);
    let typed: String = events
        .iter()
        .filter(|e| e[1] == "i")
        .map(|e| e[2].as_str().unwrap().to_string())
        .collect();
    assert!(typed.starts_with("printf 'h\\303\\251llo"), "{typed:?}");
    assert!(typed.ends_with("exit 0\r"));
    let times: Vec<f64> = events.iter().map(|e| e[0].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[tokio::test]
async fn a_required_recording_that_cannot_be_made_refuses_the_session() {
    let dev = Governed::start().await;
    let dir = dev.dir.path().join("recordings");
    std::fs::create_dir(&dir).unwrap();
    let front = dev
        .gateway(
            "rec-required",
            &[
                ("PODTERM_RECORD_DIR", dir.to_str().unwrap()),
                ("PODTERM_RECORD_REQUIRED", "true"),
            ],
        )
        .await;
    std::fs::remove_dir(&dir).unwrap();
    let q = governed::query("app", &["id"], "stdout=true");
    let refused = refusal(
        exec(
            front.addr,
            &exec_path("default", "app-0", &q),
            &who("dana", "devs"),
            V5,
        )
        .await,
    );
    assert_eq!(refused.code, 500);
    assert!(
        refused
            .status()
            .message
            .contains("cannot create the recording"),
        "{:?}",
        refused.status()
    );
    let events: Vec<String> = front
        .audit_lines()
        .await
        .iter()
        .map(|l| l["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        ["recording.failed", "session.denied", "session.end"]
    );
}
