//! Unit tests for audit lines and the writer task.

use super::*;
use crate::identity::Identity;
use crate::protocol::exec_query::ExecTarget;

fn exec() -> SessionInfo {
    let mut s = SessionInfo::new("127.0.0.1:5555".parse().unwrap(), "dev", "default", "web-1");
    s.identity = Some(Identity {
        user: "alice@example.com".into(),
        groups: vec!["devs".into(), "support".into()],
    });
    s.target = Some(
        ExecTarget::parse(
            "dev",
            "default",
            "web-1",
            "container=app&command=jstack&command=1",
        )
        .unwrap(),
    );
    s.mode = Some(Mode::Restricted);
    s.rule = Some("support".into());
    s
}

/// Every field of the table in the module doc, and nothing else.
const FIELDS: [&str; 23] = [
    "subresource",
    "event",
    "time",
    "session",
    "user",
    "groups",
    "cluster",
    "namespace",
    "pod",
    "container",
    "argv",
    "tty",
    "mode",
    "rule",
    "peer",
    "start",
    "end",
    "bytes_in",
    "bytes_out",
    "exit_code",
    "close_reason",
    "reason",
    "recording",
];

async fn lines_of(emit: impl FnOnce(&AuditLog)) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (log, task) = AuditSink::open(Some(&path)).unwrap().spawn();
    emit(&log);
    drop(log);
    task.await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// A line's bytes as the text they must be: UTF-8.
fn utf8(line: Vec<u8>) -> String {
    String::from_utf8(line).expect("an audit line is UTF-8")
}

fn keys(line: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn every_line_has_every_field() {
    let e = exec();
    let lines = lines_of(|log| {
        log.session_start(&e);
        log.session_end(
            &e,
            &SessionEnd {
                bytes_in: 12,
                bytes_out: 3456,
                exit_code: Some(0),
                close_reason: "exit".into(),
            },
        );
        log.recording_failed(&e, "disk full");
    })
    .await;
    let mut expected = FIELDS.to_vec();
    expected.sort_unstable();
    for line in &lines {
        assert_eq!(keys(line), expected, "{line}");
        assert_eq!(line["session"], e.id.as_str());
    }
    let [start, end, failed] = &lines[..] else {
        panic!("{lines:?}")
    };
    assert_eq!(start["event"], "session.start");
    assert_eq!(start["user"], "alice@example.com");
    assert_eq!(start["groups"], serde_json::json!(["devs", "support"]));
    assert_eq!(start["argv"], serde_json::json!(["jstack", "1"]));
    assert_eq!(start["mode"], "restricted");
    assert_eq!(start["rule"], "support");
    assert_eq!(start["peer"], "127.0.0.1:5555");
    assert_eq!(start["container"], "app");
    assert_eq!(start["tty"], false);
    assert!(start["end"].is_null() && start["exit_code"].is_null());
    assert_eq!(end["event"], "session.end");
    assert_eq!(end["bytes_in"], 12);
    assert_eq!(end["bytes_out"], 3456);
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["close_reason"], "exit");
    assert_eq!(failed["event"], "recording.failed");
    assert_eq!(failed["reason"], "disk full");
    for field in ["time", "start"] {
        let t: jiff::Timestamp = start[field].as_str().unwrap().parse().expect("RFC 3339");
        assert!(start[field].as_str().unwrap().ends_with('Z'));
        assert!(t.as_second() > 1_700_000_000);
    }
    let started: jiff::Timestamp = end["start"].as_str().unwrap().parse().unwrap();
    let ended: jiff::Timestamp = end["end"].as_str().unwrap().parse().unwrap();
    assert!(started <= ended);
}

#[tokio::test]
async fn a_refused_exec_leaves_denied_then_end() {
    let mut e = exec();
    e.mode = None;
    e.rule = None;
    let reason = "no policy rule lets user \"alice@example.com\" exec here";
    let lines = lines_of(|log| log.exec_denied(&e, reason)).await;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event"], "session.denied");
    assert_eq!(lines[0]["reason"], reason);
    assert_eq!(lines[1]["event"], "session.end");
    assert_eq!(lines[1]["close_reason"], CLOSE_REASON_DENIED);
    assert_eq!(lines[1]["bytes_in"], 0);
    assert!(lines[1]["exit_code"].is_null());
    assert!(lines[1]["mode"].is_null());
    assert_eq!(lines[0]["session"], lines[1]["session"]);
}

#[tokio::test]
async fn the_file_is_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
    let (log, task) = AuditSink::open(Some(&path)).unwrap().spawn();
    log.session_start(&exec());
    drop(log);
    task.await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("{\"earlier\":true}\n{\"event\":\"session.start\""),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let fresh = dir.path().join("new.jsonl");
    drop(AuditSink::open(Some(&fresh)).unwrap());
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn an_unusable_file_is_a_config_error_naming_it() {
    let e = AuditSink::open(Some(Path::new("/nonexistent/dir/audit.jsonl")))
        .err()
        .unwrap();
    assert!(
        e.0.starts_with("PODTERM_AUDIT_FILE /nonexistent/dir/audit.jsonl: cannot open"),
        "{e}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_is_counted_and_reported_in_the_trail() {
    // The writer is held inside its first write while the queue fills: 2 lines fit the
    // queue, 8 do not.
    let disk = MemoryDisk::with_room(usize::MAX);
    let held = disk.hold();
    let (log, task) = AuditLog::to_writer(disk.clone(), 2);
    let e = exec();
    log.session_start(&e);
    held.entered();
    for _ in 0..10 {
        log.session_start(&e);
    }
    assert_eq!(log.dropped(), 8);
    held.release();
    let lines = audit_lines(log, task, disk).await;
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["event"], "session.start");
    assert_eq!(lines[1]["event"], "audit.dropped");
    assert_eq!(lines[1]["count"], 8);
    assert_eq!(lines[1]["total"], 8);
    assert!(lines[2..].iter().all(|l| l["event"] == "session.start"));
}

#[tokio::test]
async fn write_errors_are_counted_not_silent() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (log, task) = AuditLog::to_writer(full, 16);
    let e = exec();
    log.session_start(&e);
    log.exec_denied(&e, "x");
    let counter = log.dropped_counter();
    drop(log);
    task.await.unwrap();
    assert_eq!(counter.get(), 3);
}

/// A disk in memory for the audit and recording writers under test: keeps what reaches it and
/// counts the writes (the `BufWriter` in front passes each flushed batch as one), and fails
/// every write with ENOSPC once `room` bytes are taken (a disk that fills mid-session).
#[derive(Clone)]
pub(crate) struct MemoryDisk(std::sync::Arc<std::sync::Mutex<Disk>>);

struct Disk {
    room: usize,
    written: Vec<u8>,
    writes: usize,
    /// A held disk: writes wait inside until it is released ([`MemoryDisk::hold`]).
    held: Option<std::sync::Arc<Hold>>,
}

/// A hold on a [`MemoryDisk`]: the next write enters and waits until released.
pub(crate) struct Hold {
    state: std::sync::Mutex<(bool, bool)>,
    changed: std::sync::Condvar,
}

impl Hold {
    /// Waits until a write is inside the held disk.
    pub(crate) fn entered(&self) {
        let guard = self.state.lock().unwrap();
        drop(
            self.changed
                .wait_while(guard, |(entered, _)| !*entered)
                .unwrap(),
        );
    }

    /// Lets the waiting write (and every later one) through.
    pub(crate) fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

impl MemoryDisk {
    /// A disk that takes `room` bytes.
    pub(crate) fn with_room(room: usize) -> MemoryDisk {
        MemoryDisk(std::sync::Arc::new(std::sync::Mutex::new(Disk {
            room,
            written: Vec::new(),
            writes: 0,
            held: None,
        })))
    }

    /// Holds the disk: the next write waits inside until [`Hold::release`].
    pub(crate) fn hold(&self) -> std::sync::Arc<Hold> {
        let hold = std::sync::Arc::new(Hold {
            state: std::sync::Mutex::new((false, false)),
            changed: std::sync::Condvar::new(),
        });
        self.0.lock().unwrap().held = Some(hold.clone());
        hold
    }

    /// Takes `buf` as far as there is room; a full disk fails with ENOSPC.
    fn take(&self, buf: &[u8]) -> std::io::Result<usize> {
        let held = self.0.lock().unwrap().held.clone();
        if let Some(hold) = held {
            let mut state = hold.state.lock().unwrap();
            state.0 = true;
            hold.changed.notify_all();
            drop(
                hold.changed
                    .wait_while(state, |(_, released)| !*released)
                    .unwrap(),
            );
        }
        let mut disk = self.0.lock().unwrap();
        disk.writes += 1;
        if disk.room == 0 {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        let n = buf.len().min(disk.room);
        disk.room -= n;
        disk.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// What was written so far.
    pub(crate) fn written(&self) -> Vec<u8> {
        self.0.lock().unwrap().written.clone()
    }

    /// How many writes reached it.
    pub(crate) fn writes(&self) -> usize {
        self.0.lock().unwrap().writes
    }
}

impl tokio::io::AsyncWrite for MemoryDisk {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(self.take(buf))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl std::io::Write for MemoryDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.take(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn lines_sent_while_the_writer_lingers_go_out_together() {
    let out = MemoryDisk::with_room(usize::MAX);
    let held = out.hold();
    let (log, task) = AuditLog::to_writer(out.clone(), 1024);
    let e = exec();
    log.session_start(&e);
    // The writer took the first line and is writing it: the next lines queue meanwhile.
    held.entered();
    for _ in 0..100 {
        log.session_start(&e);
    }
    held.release();
    log.sync().await;
    // One write for the first line, one for the hundred that queued behind it: without the
    // queue's batching each would be a write (and a wake-up) of its own.
    assert_eq!(out.writes(), 2);
    drop(log);
    task.await.unwrap();
}

/// Every line `log` wrote to `disk`, once the log is dropped and its writer has ended.
pub(crate) async fn audit_lines(
    log: AuditLog,
    task: AuditWriter,
    disk: MemoryDisk,
) -> Vec<serde_json::Value> {
    drop(log);
    task.await.unwrap();
    String::from_utf8(disk.written())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Audit times are RFC 3339 UTC with exactly three fractional digits, as strftime's
/// `%Y-%m-%dT%H:%M:%S%.3fZ` wrote them, whole milliseconds and years before 1000 too.
#[test]
fn times_are_rfc3339_utc_with_milliseconds() {
    for (ts, want) in [
        (
            jiff::Timestamp::new(1_700_000_000, 123_456_789).unwrap(),
            "2023-11-14T22:13:20.123Z",
        ),
        (
            jiff::Timestamp::new(1_700_000_000, 0).unwrap(),
            "2023-11-14T22:13:20.000Z",
        ),
        (
            jiff::Timestamp::new(0, 999_999_999).unwrap(),
            "1970-01-01T00:00:00.999Z",
        ),
        (
            jiff::Timestamp::new(-2, 0).unwrap(),
            "1969-12-31T23:59:58.000Z",
        ),
        (
            // jiff's last: 9999-12-31T23:59:59.999999999 less a day's offsets.
            jiff::Timestamp::new(253_402_207_200, 999_999_999).unwrap(),
            "9999-12-30T22:00:00.999Z",
        ),
    ] {
        let time = super::Time(ts);
        assert_eq!(time.to_string(), want);
        assert_eq!(ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(), want);
        assert_eq!(serde_json::to_string(&time).unwrap(), format!("\"{want}\""));
    }
}

/// The hand-written printer gives jiff's text (the reference) for every day from 1970 to
/// 2300 and every 7th day on to 9999 (leap days, century and 400-year rules), across each
/// day's hours, and for the times before 1970 (jiff's printer itself) too.
#[test]
fn times_print_as_jiff_prints_them_on_every_day() {
    let day = 86_400i64;
    let last = 253_402_207_200i64 / day;
    let every_day = 121_000; // 2301-04-…
    for d in (-1000..every_day).chain((every_day..last).step_by(7)) {
        // A different second of the day and millisecond each day, edges included.
        let of_day = match d % 4 {
            0 => 0,
            1 => day - 1,
            _ => (d * 7919).rem_euclid(day),
        };
        let nanos = ((d * 104_729).rem_euclid(1_000_000_000)) as i32;
        let ts = jiff::Timestamp::new(d * day + of_day, nanos).unwrap();
        let want = ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        assert_eq!(super::Time(ts).to_string(), want, "{ts}");
    }
    // Just before 1970, where the fraction is below zero.
    let ts = jiff::Timestamp::new(0, -500_000_000).unwrap();
    assert_eq!(super::Time(ts).to_string(), "1969-12-31T23:59:59.500Z");
}

/// Times in the same second as the last one printed reuse its text for the date and time of
/// day: the milliseconds still change, and the next second, an earlier one and the second
/// before 1970 are worked out anew.
#[test]
fn times_in_one_second_print_as_jiff_prints_them() {
    for (secs, nanos) in [
        (1_700_000_000, 1_000_000),
        (1_700_000_000, 999_999_999),
        (1_700_000_000, 0),
        (1_700_000_001, 0),
        (1_700_000_001, 500_000_000),
        (1_700_000_000, 250_000_000),
        (0, 0),
        (0, -500_000_000),
        (0, 7_000_000),
    ] {
        let ts = jiff::Timestamp::new(secs, nanos).unwrap();
        let want = ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        assert_eq!(super::Time(ts).to_string(), want, "{ts}");
    }
}

mod hand_written {
    //! `Line::text` against serde's serialization of the same line, the reference.
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.@:-]{0,24}",
            "[\\u{0}-\\u{7f}\u{e9}\u{1F600}]{0,40}",
            any::<String>(),
        ]
    }

    fn time() -> impl Strategy<Value = Time> {
        // Any time jiff holds: before 1970 (written through `Display`) and after (by hand).
        let (min, max) = (
            jiff::Timestamp::MIN.as_second(),
            jiff::Timestamp::MAX.as_second(),
        );
        (min..=max, 0i32..1_000_000_000).prop_filter_map("a time jiff holds", |(secs, nanos)| {
            jiff::Timestamp::new(secs, nanos).ok().map(Time)
        })
    }

    fn peer() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            any::<std::net::SocketAddrV4>().prop_map(SocketAddr::V4),
            any::<std::net::SocketAddrV6>().prop_map(SocketAddr::V6),
        ]
    }

    #[derive(Debug)]
    struct Owned {
        event: &'static str,
        time: Time,
        strings: [String; 4],
        user: Option<String>,
        groups: Option<Vec<String>>,
        container: Option<String>,
        argv: Option<Vec<String>>,
        tty: Option<bool>,
        subresource: Option<Subresource>,
        mode: Option<Mode>,
        rule: Option<String>,
        peer: SocketAddr,
        start: Time,
        recording: Option<PathBuf>,
        end: Option<Time>,
        bytes: (u64, u64),
        exit_code: Option<i32>,
        close_reason: Option<String>,
        reason: Option<String>,
    }

    fn owned() -> impl Strategy<Value = Owned> {
        let names = (
            prop::sample::select(vec!["session.start", "session.end", "session.denied"]),
            time(),
            [text(), text(), text(), text()],
            prop::option::of(text()),
            prop::option::of(prop::collection::vec(text(), 0..4)),
            prop::option::of(text()),
            prop::option::of(prop::collection::vec(text(), 0..4)),
            prop::option::of(any::<bool>()),
        );
        let rest = (
            prop::option::of(prop::sample::select(vec![
                Subresource::Exec,
                Subresource::Attach,
            ])),
            prop::option::of(prop::sample::select(vec![
                Mode::Shell,
                Mode::Restricted,
                Mode::None,
            ])),
            prop::option::of(text()),
            peer(),
            time(),
            prop::option::of(text().prop_map(PathBuf::from)),
            prop::option::of(time()),
            (any::<u64>(), any::<u64>()),
            prop::option::of(any::<i32>()),
            prop::option::of(text()),
            prop::option::of(text()),
            // An end line's `end` is its `time`, which the line writes once and copies.
            any::<bool>(),
        );
        (names, rest).prop_map(
            |(
                (event, time, strings, user, groups, container, argv, tty),
                (
                    subresource,
                    mode,
                    rule,
                    peer,
                    start,
                    recording,
                    end,
                    bytes,
                    exit_code,
                    close_reason,
                    reason,
                    end_at_time,
                ),
            )| Owned {
                event,
                time,
                strings,
                user,
                groups,
                container,
                argv,
                tty,
                subresource,
                mode,
                rule,
                peer,
                start,
                recording,
                end: if end_at_time { Some(time) } else { end },
                bytes,
                exit_code,
                close_reason,
                reason,
            },
        )
    }

    fn line(o: &Owned) -> Line<'_> {
        Line {
            event: o.event,
            time: o.time,
            exec: Fields {
                session: &o.strings[0],
                user: o.user.as_deref(),
                groups: o.groups.as_deref(),
                cluster: &o.strings[1],
                namespace: &o.strings[2],
                pod: &o.strings[3],
                container: o.container.as_deref(),
                argv: o.argv.as_deref(),
                tty: o.tty,
                subresource: o.subresource,
                mode: o.mode,
                rule: o.rule.as_deref(),
                peer: o.peer,
                start: o.start,
                recording: o.recording.as_deref(),
            },
            end: o.end,
            bytes_in: o.bytes.0,
            bytes_out: o.bytes.1,
            exit_code: o.exit_code,
            close_reason: o.close_reason.as_deref(),
            reason: o.reason.as_deref(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn lines_are_the_bytes_serde_writes(o in owned()) {
            let line = line(&o);
            prop_assert_eq!(utf8(line.text()), utf8(line_text(&line)));
        }
    }

    #[test]
    fn a_session_s_own_lines_are_the_bytes_serde_writes() {
        let exec = exec();
        let end = SessionEnd {
            bytes_in: 12,
            bytes_out: 3_000_000_000,
            exit_code: Some(-1),
            close_reason: "client closed: \"bye\"\n".into(),
        };
        for line in [
            Line::new("session.start", &exec),
            Line {
                end: Some(Time::now()),
                bytes_in: end.bytes_in,
                bytes_out: end.bytes_out,
                exit_code: end.exit_code,
                close_reason: Some(&end.close_reason),
                ..Line::new("session.end", &exec)
            },
        ] {
            assert_eq!(utf8(line.text()), utf8(line_text(&line)));
        }
    }
}
