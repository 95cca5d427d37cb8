//! `PODTERM_WORKER_SLICE` on the real `podterm serve`: every worker thread runs with the time
//! slice it asked for (read back from /proc, as the kernel keeps it), the accept loop's
//! thread keeps the kernel's, and `0` leaves the workers alone.

mod support {
    pub mod devcluster;
}

use std::process::Stdio;
use std::time::Duration;

use support::devcluster::Dev;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Linux's version as (major, minor): custom slices came with 6.12.
fn kernel() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.trim().parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Each thread of `pid` as (name, `se.slice` in ns).
fn slices(pid: u32) -> Vec<(String, u64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let dir = task.expect("task").path();
        let (Ok(comm), Ok(sched)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("sched")),
        ) else {
            continue; // the thread ended meanwhile
        };
        let slice = sched
            .lines()
            .find_map(|l| l.strip_prefix("se.slice"))
            .and_then(|rest| rest.trim_start_matches([' ', ':']).trim().parse().ok())
            .expect("se.slice in /proc/PID/task/TID/sched");
        threads.push((comm.trim().to_string(), slice));
    }
    threads
}

/// Starts `podterm serve` with `PODTERM_WORKER_SLICE=slice` and 3 workers; once it serves,
/// waits (bounded) until all 3 worker threads report `want` ns, and returns every thread's.
async fn serve_with(slice: &str, want: u64) -> Vec<(String, u64)> {
    let dev = Dev::start().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_podterm"))
        .arg("serve")
        .env_clear()
        .env("HOME", dev.dir.path())
        .env("PODTERM_LISTEN", "127.0.0.1:0")
        .env("PODTERM_KUBECONFIG", dev.kubeconfig())
        .env("PODTERM_WORKER_THREADS", "3")
        .env("PODTERM_WORKER_SLICE", slice)
        .env("PODTERM_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn podterm serve");
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(line) = log.next_line().await.expect("read the log") {
        if line.contains("podterm serving") {
            break;
        }
    }
    let pid = child.id().expect("running");
    // The workers ask for their slice as they start, which may be just after the
    // "serving" line.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let threads = slices(pid);
        let set = threads
            .iter()
            .filter(|(name, slice)| name.starts_with("podterm-worker") && *slice == want)
            .count();
        if set == 3 || tokio::time::Instant::now() > deadline {
            return threads;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn workers(threads: &[(String, u64)]) -> Vec<u64> {
    threads
        .iter()
        .filter(|(name, _)| name.starts_with("podterm-worker"))
        .map(|(_, slice)| *slice)
        .collect()
}

/// The slice of a thread that never asked: the test's own.
fn default_slice() -> u64 {
    slices(std::process::id())
        .first()
        .map(|(_, slice)| *slice)
        .expect("a thread")
}

#[tokio::test]
async fn the_workers_run_with_the_slice_they_asked_for() {
    if kernel() < (6, 12) {
        // The kernel ignores the request; podterm says so and runs on (covered in the
        // library's slice tests).
        return;
    }
    let default = default_slice();
    assert_ne!(
        default, 250_000,
        "the kernel's default is not the test's value"
    );
    let threads = serve_with("250us", 250_000).await;
    assert_eq!(workers(&threads), [250_000; 3], "{threads:?}");
    let main = threads
        .iter()
        .find(|(name, _)| name == "podterm")
        .expect("the main thread");
    assert_eq!(main.1, default, "{threads:?}");
}

#[tokio::test]
async fn zero_leaves_the_kernels_default() {
    if kernel() < (6, 12) {
        return;
    }
    let default = default_slice();
    let threads = serve_with("0", default).await;
    assert_eq!(workers(&threads), [default; 3], "{threads:?}");
}
