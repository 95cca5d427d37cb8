//! The exec WebSocket protocol end to end against the dev cluster, with a raw client: every
//! channel, stdin EOF, exit statuses, the close handshake, resize, ping, and refused frames.

#[path = "support/devcluster.rs"]
mod support;
#[path = "support/wsclient.rs"]
mod wsclient;

use fastwebsockets::{Frame, OpCode, Payload};
use support::Dev;
use wsclient::{Client, exec_path, read_all, send};

#[tokio::test]
async fn echo_copies_stdin_to_stdout_and_exits_0_at_stdin_eof() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    for tty in ["false", "true"] {
        let mut ws = client
            .exec(&exec_path(
                "echo-0",
                &format!("command=cat&stdin=true&stdout=true&tty={tty}"),
            ))
            .await;
        send(&mut ws, 0, b"hello ").await;
        send(&mut ws, 0, b"").await; // a "ready" frame: ignored
        send(&mut ws, 4, br#"{"Width":80,"Height":24}"#).await;
        // A terminal of unknown size sends 0x0: skipped, as the kubelet does, not fatal.
        send(&mut ws, 4, br#"{"Width":0,"Height":0}"#).await;
        send(&mut ws, 0, b"world").await;
        send(&mut ws, 255, &[0]).await;
        let t = read_all(&mut ws).await;
        assert_eq!(t.stdout, b"hello world", "tty={tty}");
        assert_eq!(t.exit_code(), Some(0));
        assert_eq!(t.status.as_ref().unwrap().status, "Success");
        assert_eq!(t.close_code, Some(1000));
        assert_eq!(t.channels.last(), Some(&3), "the status comes last");
    }
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn echo_without_stdin_exits_at_once_and_honours_stdout_false() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let mut ws = client
        .exec(&exec_path("echo-0", "command=cat&stdout=true"))
        .await;
    let t = read_all(&mut ws).await;
    assert_eq!((t.exit_code(), t.close_code), (Some(0), Some(1000)));
    let mut ws = client
        .exec(&exec_path("echo-0", "command=cat&stdin=true&stderr=true"))
        .await;
    send(&mut ws, 0, b"not echoed").await;
    send(&mut ws, 255, &[0]).await;
    let t = read_all(&mut ws).await;
    assert!(t.stdout.is_empty());
    assert_eq!(t.exit_code(), Some(0));
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn fragmented_stdin_messages_are_stdin() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let mut ws = client
        .exec(&exec_path("echo-0", "command=cat&stdin=true&stdout=true"))
        .await;
    let frame =
        |fin, opcode, data: &[u8]| Frame::new(fin, opcode, None, Payload::Owned(data.to_vec()));
    ws.write_frame(frame(false, OpCode::Binary, b"\0abc"))
        .await
        .unwrap();
    ws.write_frame(frame(false, OpCode::Continuation, b"def"))
        .await
        .unwrap();
    ws.write_frame(frame(true, OpCode::Continuation, b"g"))
        .await
        .unwrap();
    send(&mut ws, 255, &[0]).await;
    let t = read_all(&mut ws).await;
    assert_eq!(t.stdout, b"abcdefg");
    assert_eq!(t.exit_code(), Some(0));
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn flood_writes_exactly_n_bytes_then_exits_0() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    for n in [0usize, 1, 65_536, 1_000_003] {
        let mut ws = client
            .exec(&exec_path("flood-0", &format!("command={n}&stdout=true")))
            .await;
        let t = read_all(&mut ws).await;
        assert_eq!(t.stdout.len(), n);
        assert_eq!((t.exit_code(), t.close_code), (Some(0), Some(1000)));
    }
    let mut ws = client
        .exec(&exec_path(
            "flood-0",
            "command=lots&stdout=true&stderr=true",
        ))
        .await;
    let t = read_all(&mut ws).await;
    assert_eq!(t.exit_code(), Some(2));
    assert!(String::from_utf8_lossy(&t.stderr).contains("usage"));
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn flood_with_stdin_writes_nothing_before_stdin_eof() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let mut ws = client
        .exec(&exec_path(
            "flood-0",
            "command=200000&stdin=true&stdout=true",
        ))
        .await;
    // Stdin before EOF is dropped, and the first thing back is the pong to a ping sent after
    // it: no stdout was written yet (without stdin, the flood starts at the upgrade).
    send(&mut ws, 0, b"ignored").await;
    ws.set_auto_pong(false);
    ws.write_frame(Frame::new(
        true,
        OpCode::Ping,
        None,
        Payload::Owned(b"ready?".to_vec()),
    ))
    .await
    .unwrap();
    let first = ws.read_frame().await.unwrap();
    assert_eq!(first.opcode, OpCode::Pong, "output came before stdin EOF");
    assert_eq!(&first.payload[..], b"ready?");
    send(&mut ws, 255, &[0]).await;
    let t = read_all(&mut ws).await;
    assert_eq!(t.stdout.len(), 200_000);
    assert_eq!((t.exit_code(), t.close_code), (Some(0), Some(1000)));
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn process_keeps_stdout_and_stderr_apart_and_reports_the_exit_code() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let script = "command=sh&command=-c&command=echo%20out%3B%20echo%20err%20%3E%262%3B%20exit%203";
    let mut ws = client
        .exec(&exec_path(
            "tools",
            &format!("{script}&stdout=true&stderr=true"),
        ))
        .await;
    let t = read_all(&mut ws).await;
    assert_eq!(t.stdout, b"out\n");
    assert_eq!(t.stderr, b"err\n");
    let status = t.status.as_ref().unwrap();
    assert_eq!(
        (status.status.as_str(), status.reason.as_str()),
        ("Failure", "NonZeroExitCode")
    );
    assert_eq!(t.exit_code(), Some(3));
    assert_eq!(t.close_code, Some(1000));
    // stdout=false: only stderr comes back.
    let mut ws = client
        .exec(&exec_path("tools", &format!("{script}&stderr=true")))
        .await;
    let t = read_all(&mut ws).await;
    assert!(t.stdout.is_empty());
    assert_eq!(t.stderr, b"err\n");
    // stderr=false.
    let mut ws = client
        .exec(&exec_path("tools", &format!("{script}&stdout=true")))
        .await;
    let t = read_all(&mut ws).await;
    assert_eq!(
        (t.stdout.as_slice(), t.stderr.as_slice()),
        (&b"out\n"[..], &b""[..])
    );
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn process_stdin_eof_closes_its_stdin() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let mut ws = client
        .exec(&exec_path(
            "tools",
            "command=sh&command=-c&command=wc%20-c%3B%20echo%20done&stdin=true&stdout=true",
        ))
        .await;
    send(&mut ws, 0, &[b'x'; 5000]).await;
    send(&mut ws, 255, &[0]).await;
    let t = read_all(&mut ws).await;
    assert_eq!(
        t.stdout_text().split_whitespace().collect::<Vec<_>>(),
        ["5000", "done"]
    );
    assert_eq!(t.exit_code(), Some(0));
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn tty_follows_resizes() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    // Reads a line per size check so the resize lands between the two `stty size`.
    let mut ws = client
        .exec(&exec_path(
            "tools",
            "command=sh&command=-c&command=stty%20size%3B%20read%20x%3B%20stty%20size&stdin=true&stdout=true&tty=true",
        ))
        .await;
    send(&mut ws, 4, br#"{"Width":101,"Height":33}"#).await;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("33 101") {
        let frame = ws.read_frame().await.unwrap();
        assert_eq!(frame.payload[0], 1, "tty output is stdout");
        seen.extend_from_slice(&frame.payload[1..]);
    }
    send(&mut ws, 4, br#"{"Width":132,"Height":43}"#).await;
    send(&mut ws, 0, b"\n").await;
    let t = read_all(&mut ws).await;
    assert!(t.stdout_text().contains("43 132"), "{:?}", t.stdout_text());
    assert!(t.stderr.is_empty());
    assert_eq!(t.exit_code(), Some(0));
    dev.cluster.shutdown().await;
}

/// Regression: the PTY master was closed as soon as its read hit EIO; `cat` closes its stdio
/// before it exits, so the hangup could reach it first and kill it with SIGHUP (exit 129, about
/// 1% of runs under load). The master now stays open until the process is reaped.
#[tokio::test]
async fn tty_stdin_eof_ends_a_reading_program() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let mut ws = client
        .exec(&exec_path(
            "tools",
            "command=cat&stdin=true&stdout=true&tty=true",
        ))
        .await;
    send(&mut ws, 4, br#"{"Width":80,"Height":24}"#).await;
    send(&mut ws, 0, b"typed\n").await;
    send(&mut ws, 255, &[0]).await;
    let t = read_all(&mut ws).await;
    assert!(t.stdout_text().contains("typed"), "{t:?}");
    assert_eq!(t.exit_code(), Some(0), "{:?} {t:?}", t.stdout_text());
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn v4_has_no_close_channel() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let (mut ws, chosen) = client
        .exec_ws(
            &exec_path("echo-0", "command=cat&stdin=true&stdout=true"),
            "v4.channel.k8s.io",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(chosen, "v4.channel.k8s.io");
    send(&mut ws, 0, b"v4").await;
    send(&mut ws, 255, &[0]).await;
    let t = read_all(&mut ws).await;
    assert_eq!(t.stdout, b"v4");
    assert_eq!(t.close_code, Some(1008));
    assert!(t.close_reason.contains("v5"), "{}", t.close_reason);
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn refused_client_frames_close_with_1008() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    for (frame, reason) in [
        (&[1u8, b'x'][..], "channel 1"),
        (&[3u8, b'{'][..], "channel 3"),
        (&[9u8][..], "unknown channel"),
        (&[&[4u8][..], &[b' '; 300]].concat()[..], "resize"),
        (&[255u8, 0, 0][..], "close"),
    ] {
        let mut ws = client
            .exec(&exec_path("echo-0", "command=cat&stdin=true&stdout=true"))
            .await;
        ws.write_frame(Frame::binary(Payload::Owned(frame.to_vec())))
            .await
            .unwrap();
        let t = read_all(&mut ws).await;
        assert_eq!(t.close_code, Some(1008), "{frame:?}");
        assert!(
            t.close_reason.contains(reason),
            "{frame:?}: {}",
            t.close_reason
        );
    }
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn pings_are_answered_and_the_client_may_close_first() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let mut ws = client
        .exec(&exec_path("echo-0", "command=cat&stdin=true&stdout=true"))
        .await;
    ws.set_auto_pong(false);
    ws.write_frame(Frame::new(
        true,
        OpCode::Ping,
        None,
        Payload::Owned(b"p1".to_vec()),
    ))
    .await
    .unwrap();
    let pong = ws.read_frame().await.unwrap();
    assert_eq!((pong.opcode, &pong.payload[..]), (OpCode::Pong, &b"p1"[..]));
    ws.write_frame(Frame::close(1000, b"bye")).await.unwrap();
    let reply = ws.read_frame().await.unwrap();
    assert_eq!(reply.opcode, OpCode::Close, "the close is answered");
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn a_missing_program_is_a_failure_status() {
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    let mut ws = client
        .exec(&exec_path(
            "tools",
            "command=no-such-program-here&stdout=true",
        ))
        .await;
    let t = read_all(&mut ws).await;
    let status = t.status.expect("a status");
    assert_eq!((status.status.as_str(), status.code), ("Failure", 500));
    assert!(
        status.message.contains("no-such-program-here"),
        "{}",
        status.message
    );
    assert_eq!(t.close_code, Some(1000));
    dev.cluster.shutdown().await;
}

#[tokio::test]
async fn processes_inherit_no_descriptors_but_their_stdio() {
    // Descriptors this test process inherited without close-on-exec (from cargo or the shell)
    // pass to every child; anything else beyond 0-2 would be the dev cluster's leak.
    let inherited: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|fd| fd.parse::<i32>().unwrap() > 2)
        .filter(|fd| {
            let flags =
                std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
            let flags = flags
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .unwrap_or("0")
                .trim()
                .to_string();
            // O_CLOEXEC is 0o2000000.
            u32::from_str_radix(&flags, 8).is_ok_and(|f| f & 0o2_000_000 == 0)
        })
        .collect();
    let dev = Dev::start().await;
    let client = Client::new(&dev.cluster);
    for tty in ["false", "true"] {
        let mut ws = client
            .exec(&exec_path(
                "tools",
                &format!("command=ls&command=/proc/self/fd&stdout=true&tty={tty}"),
            ))
            .await;
        send(&mut ws, 4, br#"{"Width":80,"Height":24}"#).await;
        let t = read_all(&mut ws).await;
        let fds: Vec<&str> = std::str::from_utf8(&t.stdout)
            .unwrap()
            .split_whitespace()
            .collect();
        // 0-2 and the directory `ls` itself opened (the lowest free number, 3).
        let extra: Vec<&&str> = fds
            .iter()
            .filter(|fd| !["0", "1", "2", "3"].contains(fd) && !inherited.iter().any(|i| i == *fd))
            .collect();
        assert!(
            extra.is_empty(),
            "tty={tty}: leaked {extra:?} (all: {fds:?}, inherited: {inherited:?})"
        );
        assert!(fds.starts_with(&["0", "1"]), "{fds:?}");
    }
    dev.cluster.shutdown().await;
}
