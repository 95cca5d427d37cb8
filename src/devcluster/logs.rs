//! `pods/log`: what a container logs, computed from the clock rather than stored.
//!
//! A container with `logs: {every: 200ms}` has logged line `i` (`line i of CONTAINER`) at
//! `created + (i + 1) × every`, so its log at any moment is known without a task or a buffer
//! per container. `rotate: N` puts N lines in each log file: a read sees only the current
//! file (as the kubelet reads only the current file), and a follow ends when the file rotates
//! (as kubelets before 1.21 ended it, and as a client must expect of any follow: the page
//! reopens it, kubectl stops). `restarted: true` gives the container one earlier instance,
//! whose log `previous=true` reads.
//!
//! The query is read as the API server reads it (crate::protocol::log_query) and filtered as
//! the kubelet does (`pkg/kubelet/kuberuntime/logs`): `sinceSeconds`/`sinceTime` drop earlier
//! lines, `tailLines` keeps the last N, `limitBytes` cuts the output, `timestamps` prefixes
//! each line with its RFC 3339 time and a space.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::manifest::{Container, ContainerKind, LogSpec, Pod};
use super::refusal::{Body, Refusal, bytes_response, refuse, streamed_response};
use crate::protocol::log_query::LogQuery;

/// Lines the earlier instance of a `restarted` container logged.
pub const PREVIOUS_LINES: u64 = 20;

/// One log line: its time and text (with its newline).
struct Line {
    time: SystemTime,
    text: String,
}

/// A container's log as of a moment.
struct Log<'a> {
    container: &'a Container,
    spec: Option<&'a LogSpec>,
    created: SystemTime,
}

impl Log<'_> {
    /// Lines logged by `now`.
    fn count(&self, now: SystemTime) -> u64 {
        let Some(spec) = self.spec else { return 0 };
        let elapsed = now.duration_since(self.created).unwrap_or_default();
        (elapsed.as_nanos() / spec.every.as_nanos()) as u64
    }

    fn line(&self, i: u64) -> Line {
        let every = self.spec.map_or(Duration::ZERO, |s| s.every);
        Line {
            time: self.created + every * (i as u32 + 1),
            text: format!("line {i} of {}\n", self.container.name),
        }
    }

    fn previous_line(&self, i: u64) -> Line {
        Line {
            time: self.created - Duration::from_secs(PREVIOUS_LINES - i),
            text: format!("previous instance: line {i} of {}\n", self.container.name),
        }
    }

    /// The first line of the log file that line `n` (the next to come) goes to.
    fn file_start(&self, n: u64) -> u64 {
        match self.spec.and_then(|s| s.rotate) {
            Some(rotate) if rotate > 0 => n / rotate * rotate,
            _ => 0,
        }
    }

    /// The first line of the next file after the one line `n` goes to (`None`: never rotates).
    fn next_rotation(&self, n: u64) -> Option<u64> {
        let rotate = self.spec.and_then(|s| s.rotate).filter(|r| *r > 0)?;
        Some((n / rotate + 1) * rotate)
    }
}

/// How a read is filtered and cut.
struct Filter {
    since: Option<SystemTime>,
    timestamps: bool,
    limit: Option<u64>,
    sent: u64,
}

impl Filter {
    /// `line` as sent (with its timestamp), or `None` when it is before `since`; the text is
    /// cut at the byte limit.
    fn render(&mut self, line: &Line) -> Option<Bytes> {
        if self.since.is_some_and(|since| line.time < since) {
            return None;
        }
        let mut text = String::new();
        if self.timestamps {
            let ts = jiff::Timestamp::try_from(line.time).ok()?;
            text.push_str(&ts.strftime("%Y-%m-%dT%H:%M:%S.%9fZ").to_string());
            text.push(' ');
        }
        text.push_str(&line.text);
        let mut bytes = Bytes::from(text);
        if let Some(limit) = self.limit {
            let room = limit.saturating_sub(self.sent) as usize;
            bytes.truncate(room);
        }
        self.sent += bytes.len() as u64;
        (!bytes.is_empty()).then_some(bytes)
    }

    fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.sent >= l)
    }
}

/// Answers `GET …/pods/{pod}/log` for a pod the caller may read logs of.
pub(crate) fn serve(
    query: &str,
    pod: &Pod,
    created: SystemTime,
    shutdown: watch::Receiver<bool>,
) -> Result<hyper::Response<Body>, Refusal> {
    let options = LogQuery::parse(query).map_err(|e| refuse(400, e.to_string()))?;
    let name = match &options.container {
        Some(name) => name.clone(),
        None => match pod.containers.as_slice() {
            [only] => only.name.clone(),
            _ => {
                return Err(refuse(
                    400,
                    format!(
                        "a container name must be specified for pod {}, choose one of: [{}] or one of the init containers: [{}]",
                        pod.name,
                        pod.container_names().join(" "),
                        pod.init_containers
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                ));
            }
        },
    };
    let Some((container, kind)) = pod.find(&name) else {
        return Err(refuse(
            400,
            format!("container {name} is not valid for pod {}", pod.name),
        ));
    };
    let log = Log {
        container,
        spec: container.logs.as_ref(),
        created,
    };
    let now = SystemTime::now();
    let since = match (&options.since_time, options.since_seconds) {
        (Some(t), _) => t.parse::<jiff::Timestamp>().ok().map(SystemTime::from),
        (None, Some(s)) => now.checked_sub(Duration::from_secs(s as u64)),
        (None, None) => None,
    };
    let mut filter = Filter {
        since,
        timestamps: options.timestamps,
        limit: options.limit_bytes.map(|l| l as u64),
        sent: 0,
    };
    let tail = |first: u64, end: u64| match options.tail_lines {
        Some(t) => end.saturating_sub(t as u64).max(first),
        None => first,
    };
    let mut body = Vec::new();
    if options.previous {
        if !log.spec.is_some_and(|s| s.restarted) {
            return Err(refuse(
                400,
                format!(
                    "previous terminated container \"{name}\" in pod \"{}\" not found",
                    pod.name
                ),
            ));
        }
        for i in tail(0, PREVIOUS_LINES)..PREVIOUS_LINES {
            if let Some(b) = filter.render(&log.previous_line(i)) {
                body.extend_from_slice(&b);
            }
        }
        return Ok(text_response(body));
    }
    let n = if kind == ContainerKind::Init {
        0
    } else {
        log.count(now)
    };
    for i in tail(log.file_start(n), n)..n {
        if let Some(b) = filter.render(&log.line(i)) {
            body.extend_from_slice(&b);
        }
    }
    if !options.follow || filter.full() || kind == ContainerKind::Init || log.spec.is_none() {
        return Ok(text_response(body));
    }
    // Follow: the lines so far, then each new line at its time, until the file rotates, the
    // byte limit is reached, the client leaves or the dev cluster stops.
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let end = log.next_rotation(n);
    let spec = log.spec.cloned();
    let container = container.clone();
    let first = Bytes::from(body);
    tokio::spawn(async move {
        let log = Log {
            container: &container,
            spec: spec.as_ref(),
            created,
        };
        let mut shutdown = shutdown;
        if !first.is_empty() && tx.send(first).await.is_err() {
            return;
        }
        let mut i = n;
        while end.is_none_or(|end| i < end) && !filter.full() {
            let line = log.line(i);
            let wait = line
                .time
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = tx.closed() => return,
                _ = shutdown.changed() => return,
            }
            if let Some(b) = filter.render(&line)
                && tx.send(b).await.is_err()
            {
                return;
            }
            i += 1;
        }
    });
    Ok(streamed_response("text/plain", rx))
}

fn text_response(body: Vec<u8>) -> hyper::Response<Body> {
    bytes_response(hyper::StatusCode::OK, "text/plain", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(spec: LogSpec) -> Container {
        let mut c: Container = serde_saphyr::from_str("name: app").unwrap();
        c.logs = Some(spec);
        c
    }

    #[test]
    fn lines_follow_the_clock_and_files_rotate() {
        let c = container(LogSpec {
            every: Duration::from_millis(100),
            rotate: Some(10),
            restarted: false,
        });
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let log = Log {
            container: &c,
            spec: c.logs.as_ref(),
            created,
        };
        assert_eq!(log.count(created + Duration::from_millis(1_050)), 10);
        assert_eq!(log.file_start(10), 10);
        assert_eq!(log.file_start(9), 0);
        assert_eq!(log.next_rotation(10), Some(20));
        assert_eq!(log.line(3).text, "line 3 of app\n");
        assert_eq!(log.line(0).time, created + Duration::from_millis(100));
    }

    #[test]
    fn filter_since_timestamps_and_limit() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut f = Filter {
            since: Some(t),
            timestamps: true,
            limit: Some(40),
            sent: 0,
        };
        let before = Line {
            time: t - Duration::from_millis(1),
            text: "a\n".into(),
        };
        assert!(f.render(&before).is_none());
        let line = Line {
            time: t,
            text: "hello\n".into(),
        };
        let b = f.render(&line).unwrap();
        assert_eq!(&b[..], b"2023-11-14T22:13:20.000000000Z hello\n");
        let b = f.render(&line).unwrap();
        assert_eq!(b.len(), 3);
        assert!(f.full());
    }
}
