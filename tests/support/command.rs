//! Test support: child commands (run to their end within 60 s) and the real kubectl binaries.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// kubectl versions the suite drives (`kubectl.1.NN` beside the `kubectl` on PATH).
pub const KUBECTL_VERSIONS: [&str; 2] = ["1.30", "1.33"];

/// The path of `kubectl.<version>`, beside the real kubectl on PATH.
pub fn kubectl_bin(version: &str) -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH");
    let kubectl = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl on PATH");
    let real = std::fs::canonicalize(&kubectl).expect("resolve kubectl");
    let bin = real.parent().unwrap().join(format!("kubectl.{version}"));
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

/// Runs `cmd` with `stdin`, within 60 s.
pub async fn run(mut cmd: tokio::process::Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        tokio::spawn(async move {
            let _ = pipe.write_all(&input).await;
        });
    }
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("command finished within 60 s")
        .expect("command ran")
}

/// `bytes` as text (lossy UTF-8).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
