//! Process-backed containers: the command runs as a local process in the container's working
//! directory, under a PTY (tty) or with pipes (stdout and stderr apart). Its whole process group
//! is killed and the process reaped when the session ends, however it ends.
//!
//! `securityContext.runAsUser`/`runAsGroup`: when the dev cluster runs as root, the process
//! really runs as that uid/gid (its working directory is chowned to it). Otherwise it runs in a
//! user namespace (`unshare --user --map-user=U --map-group=G`) that maps the dev cluster's own
//! uid/gid to the wanted ones, so `id -u` inside shows the configured user (root included)
//! while the kernel still treats it as the dev cluster's user.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use fastwebsockets::Payload;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{Mutex, mpsc, watch};

use super::messages::Input;
use super::stream::{ExecOptions, Out, Outcome, Reader, SessionError, Sink, Target, drive};
use crate::protocol::{self, Status, TerminalSize};

/// How long a tty session waits for the client's first resize before starting the process,
/// so that programs see the real terminal size from the start (kubectl sends it at once).
pub const FIRST_RESIZE_WAIT: Duration = Duration::from_millis(500);
/// Inputs held while waiting for that first resize.
const MAX_EARLY_INPUTS: usize = 16;
/// Bytes read from the process per output frame.
pub const OUTPUT_CHUNK_BYTES: usize = 32 * 1024;
/// Client inputs queued toward the process before the socket stops being read.
const INPUT_QUEUE: usize = 4;
/// The terminal's end-of-file character (^D), written on stdin EOF under a PTY.
const VEOF: u8 = 0x04;
/// `PATH` when the dev cluster has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Creates the per-start directory that holds every container's working directory. It is
/// traversable by all (0711) so that a `runAsUser` process can reach its own directory.
pub fn prepare_base_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o711))
}

/// The working directory of a container: `<base>/<namespace>/<pod>/<container>`. An
/// ephemeral container with a `targetContainerName` shares its target's (as it shares the
/// target's processes and, through them, its files).
pub fn container_dir(base: &Path, target: &Target) -> PathBuf {
    let container = &target.container;
    base.join(&target.namespace).join(&target.pod).join(
        container
            .target_container
            .as_deref()
            .unwrap_or(&container.name),
    )
}

/// Runs `options.command` in the container and relays it until it exits or the client leaves.
pub(crate) async fn run<R, W>(
    reader: &mut Reader<R>,
    out: &Out<W>,
    options: &ExecOptions,
    target: &Target,
    base: &Path,
    shutdown: watch::Receiver<bool>,
) -> Outcome
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    let slot: Mutex<Option<(i32, Child)>> = Mutex::new(None);
    let produce = async {
        // Inputs that came before the first resize (kubectl may send typed-ahead stdin
        // first), applied once the process runs.
        let mut early = Vec::new();
        let mut size = None;
        if options.tty {
            let deadline = tokio::time::Instant::now() + FIRST_RESIZE_WAIT;
            while early.len() < MAX_EARLY_INPUTS {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Input::Resize(s))) => {
                        size = Some(s);
                        break;
                    }
                    Ok(Some(other)) => early.push(other),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let spawned = match spawn(options, target, base, size) {
            Ok(spawned) => spawned,
            Err(e) => {
                return Ok(Status::failure(
                    500,
                    format!(
                        "failed to exec in container: starting container process caused: exec: {:?}: {e}",
                        options.command[0]
                    ),
                ));
            }
        };
        *slot.lock().await = Some((spawned.pid, spawned.child));
        // The outputs outlive the pumps until the process is reaped: closing a PTY's master
        // while the process still runs (it may close its stdio before it exits) would hang
        // the terminal up and kill it with SIGHUP.
        let (mut stdout, mut stderr) = (spawned.stdout, spawned.stderr);
        let feed = feed(&mut rx, early, spawned.input);
        let outputs = async {
            let (stdout, stderr, status) = tokio::join!(
                pump(out, stdout.as_deref_mut(), protocol::STDOUT, options.stdout),
                pump(out, stderr.as_deref_mut(), protocol::STDERR, options.stderr),
                async {
                    let mut guard = slot.lock().await;
                    let (pid, child) = guard.as_mut().expect("stored above");
                    let status = child.wait().await;
                    // Background processes it left behind go too, so the outputs reach EOF.
                    kill_group(*pid);
                    status
                }
            );
            stdout?;
            stderr?;
            let status = status.map_err(SessionError::ProcessIo)?;
            Ok(Status::exit(exit_code(status)))
        };
        tokio::pin!(feed, outputs);
        tokio::select! {
            biased;
            status = &mut outputs => status,
            () = &mut feed => outputs.await,
        }
    };
    let outcome = drive(reader, out, Sink::Queue(tx), produce, shutdown).await;
    if let Some((pid, mut child)) = slot.lock().await.take() {
        kill_group(pid);
        // Reap it now: a zombie would outlive the session.
        let _ = child.wait().await;
        reap_group(pid).await;
    }
    outcome
}

/// Makes this process the reaper of orphans from its sessions' process trees (a killed
/// shell's children are reparented here rather than to PID 1, which in a container may never
/// reap them), so that [`reap_group`] can collect them.
pub fn adopt_orphans() {
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        tracing::warn!(error = %e, "cannot become a child subreaper; orphaned processes may linger as zombies");
    }
}

/// Reaps what is left of the (killed) process group `pgid` once its leader has been reaped:
/// members that were reparented here. Blocks a pool thread until none is left; SIGKILL makes
/// that quick. Only this group's members are waited for, never another child of the process.
async fn reap_group(pgid: i32) {
    let Some(pgid) = rustix::process::Pid::from_raw(pgid) else {
        return;
    };
    let _ = tokio::task::spawn_blocking(move || {
        while let Ok(Some(_)) =
            rustix::process::waitpgid(pgid, rustix::process::WaitOptions::empty())
        {}
    })
    .await;
}

/// The shell-style exit code: the status, or 128 + the signal that killed it.
fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn kill_group(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// The process's input side.
enum ProcessInput {
    None,
    Pipe(ChildStdin),
    Pty(pty_process::OwnedWritePty),
}

struct Spawned {
    pid: i32,
    child: Child,
    input: ProcessInput,
    stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
}

fn spawn(
    options: &ExecOptions,
    target: &Target,
    base: &Path,
    size: Option<TerminalSize>,
) -> std::io::Result<Spawned> {
    if target.container.distroless {
        // A distroless image has no shell and no tools: the runtime finds nothing to run.
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "executable file not found in $PATH: unknown",
        ));
    }
    let dir = container_dir(base, target);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)?;
    let identity = RunAs::of(target);
    if let (true, Some(uid)) = (identity.root, identity.user) {
        std::os::unix::fs::chown(&dir, Some(uid), identity.group)?;
    }
    let argv = identity.argv(&options.command);
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(&dir)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
        )
        .env("HOME", &dir)
        .env("HOSTNAME", &target.pod)
        .kill_on_drop(true);
    if identity.root {
        if let Some(uid) = identity.user {
            cmd.uid(uid);
        }
        if let Some(gid) = identity.group {
            cmd.gid(gid);
        }
    }
    if options.tty {
        spawn_on_pty(cmd, size)
    } else {
        spawn_piped(cmd, options)
    }
}

/// Who the container's processes run as (`runAsUser`, `runAsGroup`).
struct RunAs {
    /// Whether the dev cluster runs as root and can set the ids itself.
    root: bool,
    user: Option<u32>,
    group: Option<u32>,
}

impl RunAs {
    fn of(target: &Target) -> RunAs {
        let user = target.container.run_as_user();
        RunAs {
            root: rustix::process::geteuid().is_root(),
            user,
            group: target.container.run_as_group().or(user),
        }
    }

    /// The argv to run. Not root, another user is only an appearance: a user namespace mapping
    /// our own uid/gid to the wanted ones (`unshare` execs the command in place, keeping its
    /// pid).
    fn argv(&self, argv: &[String]) -> Vec<String> {
        let own_uid = rustix::process::geteuid().as_raw();
        let own_gid = rustix::process::getegid().as_raw();
        match self.user {
            Some(uid)
                if !self.root && (uid != own_uid || self.group.is_some_and(|g| g != own_gid)) =>
            {
                [
                    "unshare".to_string(),
                    "--user".into(),
                    format!("--map-user={uid}"),
                    format!("--map-group={}", self.group.unwrap_or(own_gid)),
                    "--".into(),
                ]
                .into_iter()
                .chain(argv.iter().cloned())
                .collect()
            }
            _ => argv.to_vec(),
        }
    }
}

/// The command on a new PTY, sized before it starts. The child becomes a session leader (so
/// its pid is its process group) with the PTY as its controlling terminal.
fn spawn_on_pty(
    mut cmd: tokio::process::Command,
    size: Option<TerminalSize>,
) -> std::io::Result<Spawned> {
    cmd.env("TERM", "xterm");
    let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
    if let Some(size) = size {
        pty.resize(pty_size(size)).map_err(std::io::Error::other)?;
    }
    let child = pty_process::Command::from(cmd)
        .spawn(pts)
        .map_err(std::io::Error::other)?;
    let pid = child.id().map_or(0, |p| p as i32);
    let (read, write) = pty.into_split();
    Ok(Spawned {
        pid,
        child,
        input: ProcessInput::Pty(write),
        stdout: Some(Box::new(read)),
        stderr: None,
    })
}

/// The command with pipes for the streams asked for, in a process group of its own.
fn spawn_piped(
    mut cmd: tokio::process::Command,
    options: &ExecOptions,
) -> std::io::Result<Spawned> {
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    cmd.process_group(0)
        .stdin(piped(options.stdin))
        .stdout(piped(options.stdout))
        .stderr(piped(options.stderr));
    let mut child = cmd.spawn()?;
    let pid = child.id().map_or(0, |p| p as i32);
    let input = child
        .stdin
        .take()
        .map_or(ProcessInput::None, ProcessInput::Pipe);
    let boxed = |s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>;
    let stdout = child.stdout.take().map(boxed);
    let stderr = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
    Ok(Spawned {
        pid,
        child,
        input,
        stdout,
        stderr,
    })
}

fn pty_size(size: TerminalSize) -> pty_process::Size {
    pty_process::Size::new(size.height, size.width)
}

/// Applies client inputs to the process until the queue closes: stdin bytes (backpressure:
/// a process that does not read stops the queue, which stops reading the socket), resizes,
/// stdin EOF (close the pipe, or ^D on a PTY).
async fn feed(rx: &mut mpsc::Receiver<Input>, early: Vec<Input>, mut input: ProcessInput) {
    for event in early {
        apply(&mut input, event).await;
    }
    while let Some(next) = rx.recv().await {
        apply(&mut input, next).await;
    }
}

async fn apply(input: &mut ProcessInput, event: Input) {
    let result = match (&mut *input, event) {
        (ProcessInput::Pipe(stdin), Input::Stdin(bytes)) => stdin.write_all(&bytes[1..]).await,
        (ProcessInput::Pty(pty), Input::Stdin(bytes)) => pty.write_all(&bytes[1..]).await,
        (ProcessInput::Pty(pty), Input::Resize(size)) => {
            pty.resize(pty_size(size)).map_err(std::io::Error::other)
        }
        (ProcessInput::Pty(pty), Input::StdinEof) => {
            let r = pty.write_all(&[VEOF]).await;
            *input = ProcessInput::None;
            r
        }
        (ProcessInput::Pipe(_), Input::StdinEof) => {
            *input = ProcessInput::None;
            Ok(())
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        // The process closed its stdin (or exited): later input has nowhere to go.
        tracing::debug!(error = %e, "stdin closed");
        *input = ProcessInput::None;
    }
}

/// Copies one process output to the client as `[channel][bytes]` frames until EOF (a PTY
/// reports EIO once the process side is closed). Without `forward` the output is drained.
async fn pump<W: AsyncWrite + Unpin, S: AsyncRead + Unpin + ?Sized>(
    out: &Out<W>,
    source: Option<&mut S>,
    channel: u8,
    forward: bool,
) -> Result<(), SessionError> {
    let Some(source) = source else {
        return Ok(());
    };
    let mut frame = vec![0u8; OUTPUT_CHUNK_BYTES + 1];
    frame[0] = channel;
    loop {
        let n = match source.read(&mut frame[1..]).await {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                return Ok(());
            }
            Err(e) => return Err(SessionError::ProcessIo(e)),
        };
        if forward {
            out.send(Payload::Borrowed(&frame[..n + 1])).await?;
        }
    }
}
