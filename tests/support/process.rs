//! Waiting for another process's end on an event, not a poll: a pidfd becomes readable when
//! the process exits (pidfd_open(2), Linux 5.3).

use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

/// A bound that only a hang reaches; the proof is the event, not the time.
const HANG: Duration = Duration::from_secs(30);

/// Resolves when process `pid` has exited (it may still be a zombie).
pub async fn exited(pid: u32) {
    let pid = Pid::from_raw(pid as i32).expect("a positive pid");
    let fd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        // Already exited and reaped.
        Err(rustix::io::Errno::SRCH) => return,
        Err(e) => panic!("pidfd_open({pid:?}): {e}"),
    };
    // poll(2) on its own thread: tokio's AsyncFd takes a raw fd only through `unsafe`.
    let ready = tokio::task::spawn_blocking(move || {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let timeout = Timespec::try_from(HANG).expect("a timespec");
        loop {
            match poll(&mut fds, Some(&timeout)) {
                Err(rustix::io::Errno::INTR) => continue,
                result => return result.expect("poll on a pidfd"),
            }
        }
    })
    .await
    .expect("the poll thread");
    assert_eq!(ready, 1, "process {pid:?} never exited");
}

/// Resolves when every one of `pids` has exited and been reaped (gone from /proc: a zombie
/// keeps its entry). The parent reaps on SIGCHLD right after the exit, so the last step
/// waits for that in small steps, bounded only against a hang.
pub async fn reaped(pids: &[u32]) {
    for &pid in pids {
        exited(pid).await;
        let path = format!("/proc/{pid}");
        let gone = async {
            while std::path::Path::new(&path).exists() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        if tokio::time::timeout(HANG, gone).await.is_err() {
            let stat = std::fs::read_to_string(format!("{path}/stat")).unwrap_or_default();
            panic!("process {pid} exited and was never reaped: {stat}");
        }
    }
}
