//! In-process containers: `echo` (stdin back as stdout) and `flood` (N bytes of stdout). No
//! process, thread or buffer of their own per session, so thousands of sessions stay cheap.

use fastwebsockets::Payload;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch};

use super::stream::{ExecOptions, Out, Outcome, Reader, Sink, drive};
use crate::protocol::{self, Status};

/// Bytes of stdout per flood frame.
pub const FLOOD_CHUNK_BYTES: usize = 64 * 1024;

/// One flood frame: the stdout channel byte, then lines of 63 printable bytes and a newline.
static FLOOD_FRAME: [u8; FLOOD_CHUNK_BYTES + 1] = flood_frame();

const fn flood_frame() -> [u8; FLOOD_CHUNK_BYTES + 1] {
    let mut frame = [0u8; FLOOD_CHUNK_BYTES + 1];
    frame[0] = protocol::STDOUT;
    let mut i = 0;
    while i < FLOOD_CHUNK_BYTES {
        frame[i + 1] = if i % 64 == 63 {
            b'\n'
        } else {
            b'!' + (i % 64) as u8
        };
        i += 1;
    }
    frame
}

/// `echo`: each stdin frame goes back as a stdout frame (the same buffer, channel byte
/// rewritten); exit 0 at stdin EOF, or at once without stdin. Backpressure is the socket's:
/// while the client does not read, its stdin is not read either.
pub(crate) async fn echo<R, W>(
    reader: &mut Reader<R>,
    out: &Out<W>,
    options: &ExecOptions,
    shutdown: watch::Receiver<bool>,
) -> Outcome
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (eof, eof_rx) = oneshot::channel::<()>();
    let sink = Sink::Echo {
        stdout: options.stdout,
        // Without stdin, stdin is at EOF from the start.
        eof: options.stdin.then_some(eof),
    };
    let produce = async move {
        let _ = eof_rx.await;
        Ok(Status::exit(0))
    };
    drive(reader, out, sink, produce, shutdown).await
}

/// `flood N`: writes N bytes to stdout in [`FLOOD_CHUNK_BYTES`] frames (one static buffer, no
/// copies), each written only when the socket took the previous one; exits 0. A command that
/// is not one byte count exits 2 with a message on stderr. With stdin it first reads stdin to
/// EOF, discarding it (`cat >/dev/null; head -c N`): a client that must not get output before
/// it is ready (k6's experimental WebSocket drops messages that arrive before its `open`
/// event, see loadtest/bulk.js) starts the flood with stdin EOF.
pub(crate) async fn flood<R, W>(
    reader: &mut Reader<R>,
    out: &Out<W>,
    options: &ExecOptions,
    shutdown: watch::Receiver<bool>,
) -> Outcome
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let count = match options.command.as_slice() {
        [n] => n.trim().parse::<u64>().ok(),
        _ => None,
    };
    let (eof, eof_rx) = oneshot::channel::<()>();
    let sink = Sink::Echo {
        stdout: false,
        // Without stdin, stdin is at EOF from the start.
        eof: options.stdin.then_some(eof),
    };
    let produce = async {
        let _ = eof_rx.await;
        let Some(mut left) = count else {
            if options.stderr || options.tty {
                let channel = if options.tty {
                    protocol::STDOUT
                } else {
                    protocol::STDERR
                };
                let mut frame = vec![channel];
                frame.extend_from_slice(
                    format!("flood: usage: flood BYTES (got {:?})\n", options.command).as_bytes(),
                );
                out.send(Payload::Owned(frame)).await?;
            }
            return Ok(Status::exit(2));
        };
        while left > 0 {
            let n = left.min(FLOOD_CHUNK_BYTES as u64) as usize;
            if options.stdout {
                out.send(Payload::Borrowed(&FLOOD_FRAME[..n + 1])).await?;
            }
            left -= n as u64;
        }
        Ok(Status::exit(0))
    };
    drive(reader, out, sink, produce, shutdown).await
}

/// `hostile-tar`: answers `tar cf - … NAME` with the attack NAME names (see
/// [`super::manifest::Builtin::HostileTar`]), then exits 0; any other command exits 127.
pub(crate) async fn hostile_tar<R, W>(
    reader: &mut Reader<R>,
    out: &Out<W>,
    options: &ExecOptions,
    shutdown: watch::Receiver<bool>,
) -> Outcome
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let sink = Sink::Echo {
        stdout: false,
        eof: None,
    };
    let produce = async {
        let argv = &options.command;
        if argv.first().map(String::as_str) != Some("tar") || !argv.iter().any(|a| a == "cf") {
            return Ok(Status::exit(127));
        }
        // podterm's form names the entry after `-C DIR --`; kubectl cp's (`tar cf - PATH`)
        // makes entries of PATH without its leading `/`, as GNU tar does.
        let last = argv.last().cloned().unwrap_or_default();
        let top = if argv.iter().any(|a| a == "-C") {
            last
        } else {
            last.trim_start_matches('/').to_string()
        };
        let mut frame = vec![protocol::STDOUT];
        frame.extend(hostile_archive(&top));
        out.send(Payload::Owned(frame)).await?;
        Ok(Status::exit(0))
    };
    drive(reader, out, sink, produce, shutdown).await
}

/// The archive for `top` (see [`hostile_tar`]): the attack its last segment names, with
/// entries under `top`.
pub fn hostile_archive(top: &str) -> Vec<u8> {
    use crate::protocol::tar::{BLOCK, raw_header, trailer};
    let entry = |out: &mut Vec<u8>, path: &str, kind: u8, link: &str, data: &[u8]| {
        out.extend_from_slice(&raw_header(path, kind, link, data.len() as u64).expect("short"));
        out.extend_from_slice(data);
        out.extend(std::iter::repeat_n(
            0u8,
            (BLOCK - data.len() % BLOCK) % BLOCK,
        ));
    };
    let mut out = Vec::new();
    let pwned = b"pwned\n";
    let under = |rest: &str| format!("{top}/{rest}");
    match top.rsplit('/').next().unwrap_or(top) {
        "dotdot" => {
            entry(&mut out, top, b'5', "", b"");
            entry(&mut out, &under("../../../../tmp/pwned"), b'0', "", pwned);
        }
        "absolute" => entry(&mut out, "/etc/cron.d/pwned", b'0', "", pwned),
        "symlink" => {
            entry(&mut out, top, b'5', "", b"");
            let up = "../".repeat(top.split('/').count() + 3);
            entry(
                &mut out,
                &under("passwd"),
                b'2',
                &format!("{up}etc/passwd"),
                b"",
            );
        }
        "hardlink" => {
            entry(&mut out, top, b'5', "", b"");
            entry(&mut out, &under("shadow"), b'1', "etc/shadow", b"");
        }
        "device" => {
            entry(&mut out, top, b'5', "", b"");
            entry(&mut out, &under("mem"), b'3', "", b"");
        }
        "outside" => entry(&mut out, "elsewhere", b'0', "", pwned),
        _ => entry(&mut out, top, b'0', "", b"clean\n"),
    }
    out.extend(trailer(0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_frame_is_stdout_lines() {
        assert_eq!(FLOOD_FRAME[0], protocol::STDOUT);
        assert_eq!(FLOOD_FRAME[64], b'\n');
        assert!(FLOOD_FRAME[1..64].iter().all(|b| b.is_ascii_graphic()));
        assert_eq!(FLOOD_FRAME.len(), FLOOD_CHUNK_BYTES + 1);
    }
}
