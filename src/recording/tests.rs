//! Unit tests for recordings: format, UTF-8 carry, write errors.

use super::*;
use crate::audit::tests::{MemoryDisk, audit_lines};
use crate::audit::{AuditLog, AuditWriter, Time};

fn exec() -> Arc<SessionInfo> {
    let mut s = SessionInfo::new("127.0.0.1:5555".parse().unwrap(), "dev", "default", "web-1");
    s.identity = Some(crate::identity::Identity {
        user: "alice".into(),
        groups: vec![],
    });
    s.target = Some(
        crate::protocol::exec_query::ExecTarget::parse("dev", "default", "web-1", "tty=true")
            .unwrap(),
    );
    Arc::new(s)
}

fn config(dir: &Path, input: bool, required: bool) -> RecordingConfig {
    RecordingConfig {
        dir: dir.to_path_buf(),
        input,
        required,
        max_bytes: crate::config::DEFAULT_RECORD_MAX_BYTES,
    }
}

/// An audit log whose lines end up in the returned buffer once the log is dropped.
fn audit() -> (AuditLog, AuditWriter, MemoryDisk) {
    let disk = MemoryDisk::with_room(usize::MAX);
    let (log, task) = AuditLog::to_writer(disk.clone(), 64);
    (log, task, disk)
}

fn parse(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

#[tokio::test]
async fn writes_an_asciicast_v2_file() {
    let dir = tempfile::tempdir().unwrap();
    let (log, task, theirs) = audit();
    let e = exec();
    let mut rec = Recording::create(&config(dir.path(), false, false), &e, &log)
        .unwrap()
        .unwrap();
    rec.resize(TerminalSize {
        width: 120,
        height: 40,
    })
    .await
    .unwrap();
    rec.output(1, b"hello ").await.unwrap();
    rec.input(b"secret typed").await.unwrap();
    rec.output(2, b"\x1b[31mwarn\x1b[0m\r\n").await.unwrap();
    rec.resize(TerminalSize {
        width: 100,
        height: 30,
    })
    .await
    .unwrap();
    rec.output(1, b"").await.unwrap();
    rec.finish().await.unwrap();
    let path = dir.path().join(format!("{}.cast", e.id));
    let lines = parse(&std::fs::read_to_string(&path).unwrap());
    let header = &lines[0];
    assert_eq!(header["version"], 2);
    assert_eq!(
        (header["width"].clone(), header["height"].clone()),
        (120.into(), 40.into())
    );
    assert_eq!(header["env"]["TERM"], "xterm-256color");
    assert_eq!(header["timestamp"], Time::from(e.started).unix_seconds());
    let events: Vec<(&str, &str)> = lines[1..]
        .iter()
        .map(|l| (l[1].as_str().unwrap(), l[2].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("o", "hello "),
            ("o", "\x1b[31mwarn\x1b[0m\r\n"),
            ("r", "100x30")
        ],
        "input is not recorded by default"
    );
    let times: Vec<f64> = lines[1..].iter().map(|l| l[0].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]) && times[0] >= 0.0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(audit_lines(log, task, theirs).await.is_empty());
}

#[tokio::test]
async fn input_only_when_configured_and_default_size_without_resize() {
    let (log, task, theirs) = audit();
    let (ours, mut file) = tokio::io::duplex(1 << 16);
    let mut rec = Recording::to_writer(ours, &config(Path::new("/"), true, false), &exec(), &log);
    rec.output(1, b"$ ").await.unwrap();
    rec.input(b"ls\r").await.unwrap();
    rec.finish().await.unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut file, &mut text)
        .await
        .unwrap();
    let lines = parse(&text);
    assert_eq!(lines[0]["width"], DEFAULT_SIZE.width);
    assert_eq!(lines[0]["height"], DEFAULT_SIZE.height);
    assert_eq!(lines[1][1], "o");
    assert_eq!(lines[2][1], "i");
    assert_eq!(lines[2][2], "ls\r");
    drop(audit_lines(log, task, theirs).await);
}

#[test]
fn utf8_split_anywhere_is_carried() {
    let text = "aé€😀 z\u{10FFFF}";
    let bytes = text.as_bytes();
    for cut in 0..=bytes.len() {
        let mut carry = Utf8Carry::default();
        let mut out = carry.decode(&bytes[..cut]);
        out += &carry.decode(&bytes[cut..]);
        out += &carry.finish();
        assert_eq!(out, text, "cut at {cut}");
    }
    // One byte at a time.
    let mut carry = Utf8Carry::default();
    let out: String = bytes.iter().map(|b| carry.decode(&[*b])).collect();
    assert_eq!(out, text);
}

#[test]
fn invalid_utf8_becomes_replacement_characters() {
    let mut carry = Utf8Carry::default();
    assert_eq!(carry.decode(b"a\xffb"), "a\u{FFFD}b");
    assert_eq!(carry.decode(b"\xc3"), "");
    assert_eq!(
        carry.decode(b"("),
        "\u{FFFD}(",
        "a broken sequence is not carried forever"
    );
    assert_eq!(carry.decode(b"\xf0\x9f"), "");
    assert_eq!(carry.finish(), "\u{FFFD}");
    assert_eq!(carry.decode(b"ok"), "ok");
}

#[tokio::test]
async fn streams_carry_separately() {
    let (log, task, theirs) = audit();
    let (ours, mut file) = tokio::io::duplex(1 << 16);
    let mut rec = Recording::to_writer(ours, &config(Path::new("/"), false, false), &exec(), &log);
    let euro = "€".as_bytes();
    rec.output(1, &euro[..1]).await.unwrap();
    rec.output(2, b"err").await.unwrap();
    rec.output(1, &euro[1..]).await.unwrap();
    rec.finish().await.unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut file, &mut text)
        .await
        .unwrap();
    let data: Vec<String> = parse(&text)[1..]
        .iter()
        .map(|l| l[2].as_str().unwrap().to_string())
        .collect();
    assert_eq!(data, ["err", "€"]);
    drop(audit_lines(log, task, theirs).await);
}

async fn dev_full() -> tokio::fs::File {
    tokio::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .await
        .unwrap()
}

#[tokio::test]
async fn a_full_disk_ends_the_recording_not_the_session() {
    let (log, task, theirs) = audit();
    let e = exec();
    let mut rec = Recording::to_writer(
        dev_full().await,
        &config(Path::new("/"), false, false),
        &e,
        &log,
    );
    for _ in 0..1000 {
        rec.output(1, b"output that goes nowhere\r\n")
            .await
            .unwrap();
    }
    rec.finish().await.unwrap();
    let lines = audit_lines(log, task, theirs).await;
    assert_eq!(
        lines.len(),
        1,
        "one audit line, not one per event: {lines:?}"
    );
    assert_eq!(lines[0]["event"], "recording.failed");
    assert_eq!(lines[0]["session"], e.id.as_str());
    assert!(
        lines[0]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot write the recording")
    );
}

#[tokio::test]
async fn a_full_disk_ends_the_session_when_recording_is_required() {
    let (log, task, theirs) = audit();
    let mut rec = Recording::to_writer(
        dev_full().await,
        &config(Path::new("/"), false, true),
        &exec(),
        &log,
    );
    let mut failed = None;
    for i in 0..10_000 {
        if let Err(e) = rec.output(1, b"output\r\n").await {
            failed = Some((i, e));
            break;
        }
    }
    let (_, e) = failed.expect("the write error reaches the session");
    assert!(matches!(e, RecordingError::Write(_)), "{e}");
    assert!(rec.output(1, b"more").await.is_err(), "and stays");
    assert!(rec.finish().await.is_err());
    assert_eq!(
        audit_lines(log, task, theirs).await[0]["event"],
        "recording.failed"
    );
}

#[tokio::test]
async fn what_was_flushed_before_the_disk_filled_stays_readable() {
    let (log, task, theirs) = audit();
    let disk = MemoryDisk::with_room(4096);
    let mut rec = Recording::to_writer(
        disk.clone(),
        &config(Path::new("/"), false, false),
        &exec(),
        &log,
    );
    rec.output(1, b"first\r\n").await.unwrap();
    // Let the writer flush the first event before the flood.
    tokio::task::yield_now().await;
    for _ in 0..2000 {
        rec.output(1, b"0123456789abcdef\r\n").await.unwrap();
    }
    rec.finish().await.unwrap();
    let text = String::from_utf8_lossy(&disk.written()).into_owned();
    let complete: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    assert!(complete.len() >= 2, "{text}");
    for line in &complete {
        serde_json::from_str::<serde_json::Value>(line).expect("complete lines are JSON");
    }
    assert_eq!(
        audit_lines(log, task, theirs).await[0]["event"],
        "recording.failed"
    );
}

#[tokio::test]
async fn creation_failures() {
    let (log, task, theirs) = audit();
    let e = exec();
    let missing = Path::new("/nonexistent/recordings");
    assert!(
        Recording::create(&config(missing, false, false), &e, &log)
            .unwrap()
            .is_none()
    );
    let err = Recording::create(&config(missing, false, true), &e, &log).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/recordings"), "{err}");
    // Never overwrites an existing file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(Recording::path_for(dir.path(), &e.id), "keep").unwrap();
    assert!(Recording::create(&config(dir.path(), false, true), &e, &log).is_err());
    assert_eq!(
        std::fs::read_to_string(Recording::path_for(dir.path(), &e.id)).unwrap(),
        "keep"
    );
    let lines = audit_lines(log, task, theirs).await;
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["event"] == "recording.failed"));
}

#[tokio::test]
async fn a_recording_stops_at_its_cap() {
    // L3: NUL output grows 6x as JSON ("\u0000"); the cap bounds the file whatever the bytes.
    for required in [false, true] {
        let (log, task, theirs) = audit();
        let disk = MemoryDisk::with_room(1 << 20);
        let config = RecordingConfig {
            max_bytes: 4096,
            ..config(Path::new("/"), false, required)
        };
        let mut rec = Recording::to_writer(disk.clone(), &config, &exec(), &log);
        let mut refused = false;
        for _ in 0..200 {
            if rec.output(1, &[0u8; 64]).await.is_err() {
                refused = true;
                break;
            }
        }
        assert_eq!(refused, required, "a required recording ends the session");
        assert_eq!(rec.finish().await.is_err(), required);
        let written = disk.written();
        assert!(written.len() <= 4096, "{} bytes", written.len());
        let text = String::from_utf8(written).unwrap();
        assert!(
            text.ends_with("recording truncated at PODTERM_RECORD_MAX_BYTES]\\r\\n\"]\n"),
            "{text}"
        );
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON");
        }
        let lines = audit_lines(log, task, theirs).await;
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["event"], "recording.truncated");
    }
}
