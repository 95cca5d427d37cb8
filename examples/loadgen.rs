//! A second load driver for `loadtest/` beside k6: exec sessions timed to the microsecond.
//!
//! `loadtest/run` runs it with `DRIVER=loadgen`; it reads the same variables as the k6 scripts:
//! `MODE` (hold | churn | bulk), `TARGET`, `EXEC_BASE` (ws:// or wss:// pods URL), `HEADERS`
//! (JSON object), `CA_FILE` (PEM roots for wss), `SESSIONS`, `RAMP`, `DURATION` (seconds),
//! `BYTES` (bulk, per session), `RATE` (churn: sessions a second in all, 0 for as fast as the
//! loops go) and `SUMMARY_OUT` (the JSON summary's path). Exit status 99 when
//! a session failed, as k6's thresholds do.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior, sleep_until, timeout};

const SUBPROTOCOL: &str = "v5.channel.k8s.io";
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;
/// Keystroke interval of a held session, unless `KEYSTROKE_MS` says otherwise (one session
/// typing every millisecond or two is how one session's added echo latency is measured).
fn keystroke() -> Duration {
    static EVERY: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *EVERY.get_or_init(|| Duration::from_millis(env_u64("KEYSTROKE_MS", 1000).max(1)))
}
/// How long one step (connect, an echo, the exit) may take before the session counts as stuck.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

type Socket = WebSocket<TokioIo<Upgraded>>;

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("upgrade: {0}")]
    Upgrade(fastwebsockets::WebSocketError),
    #[error("subprotocol {0:?}")]
    Subprotocol(Option<String>),
    #[error("socket: {0}")]
    Socket(#[from] fastwebsockets::WebSocketError),
    #[error("stuck")]
    Stuck,
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Where sessions go and how they authenticate.
struct Target {
    authority: String,
    base_path: String,
    tls: Option<tokio_rustls::TlsConnector>,
    headers: Vec<(String, String)>,
}

impl Target {
    fn from_env() -> Target {
        let base = env("EXEC_BASE", "");
        let (tls, rest) = match base.split_once("://") {
            Some(("wss", rest)) => (true, rest),
            Some(("ws", rest)) => (false, rest),
            _ => fatal(&format!(
                "EXEC_BASE must be a ws:// or wss:// URL, got {base:?}"
            )),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let headers: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&env("HEADERS", "{}"))
                .unwrap_or_else(|e| fatal(&format!("HEADERS: {e}")));
        Target {
            authority: authority.to_string(),
            base_path: path.to_string(),
            tls: tls.then(tls_connector),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect(),
        }
    }

    /// Opens an exec session of `pod` running `argv`.
    async fn open(&self, pod: &str, argv: &[&str], stdin: bool) -> Result<Socket, SessionError> {
        let mut path = format!("{}/{pod}/exec?", self.base_path);
        for arg in argv {
            path.push_str(&format!("command={arg}&"));
        }
        path.push_str(&format!("stdin={stdin}&stdout=true&stderr=true&tty=false"));
        let mut request = hyper::Request::get(path)
            .header("Host", &self.authority)
            .header("Upgrade", "websocket")
            .header("Connection", "upgrade")
            .header(
                "Sec-WebSocket-Key",
                fastwebsockets::handshake::generate_key(),
            )
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Protocol", SUBPROTOCOL);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| SessionError::Protocol(e.to_string()))?;
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(SessionError::Connect)?;
        tcp.set_nodelay(true).map_err(SessionError::Connect)?;
        let (ws, response) = match &self.tls {
            Some(connector) => {
                let host = self.authority.rsplit_once(':').map_or("", |(h, _)| h);
                let name = ServerName::try_from(host.to_string())
                    .unwrap_or_else(|e| fatal(&format!("server name {host}: {e}")));
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(SessionError::Tls)?;
                fastwebsockets::handshake::client(&Spawn, request, tls).await
            }
            None => fastwebsockets::handshake::client(&Spawn, request, tcp).await,
        }
        .map_err(SessionError::Upgrade)?;
        let protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok());
        if protocol != Some(SUBPROTOCOL) {
            return Err(SessionError::Subprotocol(protocol.map(str::to_string)));
        }
        Ok(ws)
    }
}

struct Spawn;

impl hyper::rt::Executor<Pin<Box<dyn Future<Output = ()> + Send>>> for Spawn {
    fn execute(&self, fut: Pin<Box<dyn Future<Output = ()> + Send>>) {
        tokio::spawn(fut);
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = env("CA_FILE", "");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&path)
        .unwrap_or_else(|e| fatal(&format!("CA_FILE {path:?}: {e}")))
    {
        let cert = cert.unwrap_or_else(|e| fatal(&format!("CA_FILE {path:?}: {e}")));
        roots
            .add(cert)
            .unwrap_or_else(|e| fatal(&format!("CA_FILE {path:?}: {e}")));
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn send(ws: &mut Socket, frame: Vec<u8>) -> Result<(), SessionError> {
    ws.write_frame(Frame::binary(Payload::Owned(frame))).await?;
    Ok(())
}

/// Reads the next data frame: (channel, payload); a close frame is an error.
async fn next_frame(ws: &mut Socket) -> Result<(u8, Vec<u8>), SessionError> {
    loop {
        let frame = timeout(STEP_TIMEOUT, ws.read_frame())
            .await
            .map_err(|_| SessionError::Stuck)??;
        match frame.opcode {
            OpCode::Binary if frame.payload.is_empty() => continue,
            OpCode::Binary => {
                let payload = frame.payload.to_vec();
                return Ok((payload[0], payload[1..].to_vec()));
            }
            OpCode::Close => return Err(SessionError::Protocol("closed early".into())),
            _ => continue,
        }
    }
}

/// After stdin EOF (or for a command without stdin): reads to the exit status and the close;
/// false when the connection broke after the exit status, before the closing handshake ended.
async fn finish(ws: &mut Socket, mut on_stdout: impl FnMut(&[u8])) -> Result<bool, SessionError> {
    loop {
        let (channel, payload) = next_frame(ws).await?;
        match channel {
            STDOUT => on_stdout(&payload),
            ERROR => {
                let status: serde_json::Value = serde_json::from_slice(&payload)
                    .map_err(|e| SessionError::Protocol(format!("status: {e}")))?;
                if status["status"] != "Success" {
                    return Err(SessionError::Protocol(format!("exit: {status}")));
                }
                break;
            }
            other => return Err(SessionError::Protocol(format!("channel {other}"))),
        }
    }
    // The exit status came: the session is complete. Its close frame is answered when the
    // socket still takes it; a peer that drops the connection right after its close frame
    // (before our reply) is not counted against the session.
    ws.set_auto_close(false);
    loop {
        let frame = match timeout(STEP_TIMEOUT, ws.read_frame()).await {
            Err(_) => return Err(SessionError::Stuck),
            Ok(Err(_)) => return Ok(false),
            Ok(Ok(frame)) => frame,
        };
        if frame.opcode == OpCode::Close {
            let reply = Frame::close_raw(frame.payload.to_vec().into());
            return Ok(ws.write_frame(reply).await.is_ok());
        }
    }
}

/// Everything the sessions record.
#[derive(Default)]
struct Stats {
    ok: u64,
    errors: u64,
    /// Sessions whose connection broke after the exit status, during the closing handshake.
    after_close: u64,
    in_window: u64,
    bytes: u64,
    trends: std::collections::BTreeMap<&'static str, Vec<f64>>,
    trace: Vec<(Instant, Duration)>,
}

impl Stats {
    fn add(&mut self, trend: &'static str, value: Duration) {
        let ms = value.as_secs_f64() * 1000.0;
        self.trends.entry(trend).or_default().push(ms);
    }

    fn fail(&mut self, error: &SessionError) {
        self.errors += 1;
        if self.errors <= 20 {
            eprintln!("{} session failed: {error}", env("TARGET", "direct"));
        }
    }

    /// The summary in k6's `handleSummary` shape, so `loadtest/run` reads either driver.
    fn summary(mut self) -> serde_json::Value {
        let mut metrics = serde_json::Map::new();
        for (name, count) in [
            ("sessions_ok", self.ok),
            ("session_errors", self.errors),
            ("sessions_in_window", self.in_window),
            ("errors_after_close", self.after_close),
            ("bulk_bytes", self.bytes),
        ] {
            metrics.insert(name.into(), serde_json::json!({"values": {"count": count}}));
        }
        for (name, values) in &mut self.trends {
            values.sort_by(f64::total_cmp);
            let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
            metrics.insert(
                (*name).into(),
                serde_json::json!({"values": {
                    "min": values[0], "med": at(0.5), "p(90)": at(0.9), "p(99)": at(0.99),
                    "max": values[values.len() - 1], "count": values.len(),
                    "avg": values.iter().sum::<f64>() / values.len() as f64,
                }}),
            );
        }
        serde_json::json!({ "metrics": metrics })
    }
}

type Shared = Arc<Mutex<Stats>>;

fn record(stats: &Shared, f: impl FnOnce(&mut Stats)) {
    f(&mut stats.lock().unwrap_or_else(|e| e.into_inner()));
}

/// When a held session opens and types: at `open_at`, then a keystroke a second at `phase`
/// into each second after the start, until `hold_end`.
#[derive(Clone, Copy)]
struct Schedule {
    open_at: Instant,
    phase: Instant,
    ramp_end: Instant,
    hold_end: Instant,
    /// Keep each keystroke's time and echo for ECHO_TRACE.
    trace: bool,
}

/// hold: open, type a keystroke a second until the hold ends, then exit (`Schedule`).
async fn hold(target: Arc<Target>, stats: Shared, plan: Schedule) -> Result<(), SessionError> {
    let Schedule {
        open_at,
        phase,
        ramp_end,
        hold_end,
        trace: tracing,
    } = plan;
    sleep_until(open_at).await;
    let mut ws = timeout(STEP_TIMEOUT, target.open("echo-0", &["cat"], true))
        .await
        .map_err(|_| SessionError::Stuck)??;
    let mut ticks = tokio::time::interval_at(next_tick(phase, Instant::now()), keystroke());
    // A late tick leaves the next one where it was, as a user's next keystroke does not wait
    // for a slow echo. `Delay` moved every late session's keystrokes later for good, and the
    // late ones piled up at the same instant: after a minute at 9,000 sessions, about 50 a
    // millisecond typed at one moment of each second (against 9), and nobody in the 10 ms
    // before it.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut echo, mut echo_ramp) = (Vec::new(), Vec::new());
    let mut trace = Vec::new();
    for n in 0u32.. {
        ticks.tick().await;
        if Instant::now() >= hold_end {
            break;
        }
        let byte = b'a' + (n % 26) as u8;
        let sent = Instant::now();
        send(&mut ws, vec![STDIN, byte]).await?;
        match next_frame(&mut ws).await? {
            (STDOUT, payload) if payload == [byte] => {}
            (channel, payload) => {
                return Err(SessionError::Protocol(format!(
                    "expected the echo of {byte}, got channel {channel}: {payload:?}"
                )));
            }
        }
        let took = sent.elapsed();
        if tracing {
            trace.push((sent, took));
        }
        if sent >= ramp_end {
            &mut echo
        } else {
            &mut echo_ramp
        }
        .push(took);
    }
    send(&mut ws, vec![CLOSE, STDIN]).await?;
    let clean = finish(&mut ws, |_| {}).await?;
    record(&stats, |s| {
        s.after_close += u64::from(!clean);
        echo.iter().for_each(|d| s.add("echo_ms", *d));
        echo_ramp.iter().for_each(|d| s.add("echo_ramp_ms", *d));
        s.trace.extend(trace);
    });
    Ok(())
}

/// The first keystroke time at or after `now` in the series `phase + n * keystroke()`.
fn next_tick(phase: Instant, now: Instant) -> Instant {
    let late = now.saturating_duration_since(phase);
    let ticks = late.as_nanos().div_ceil(keystroke().as_nanos());
    phase + keystroke() * u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// When one churn loop's sessions start, at a fixed rate (`RATE`): the next at `next`, then
/// one every `every`. A late session starts at once and does not move the next.
struct Slots {
    next: Instant,
    every: Duration,
}

/// churn: sessions one after another until `deadline`, each typing one byte and exiting; with
/// `slots`, each at its slot rather than as soon as the last one ended.
async fn churn(target: Arc<Target>, stats: Shared, deadline: Instant, mut slots: Option<Slots>) {
    while Instant::now() < deadline {
        if let Some(slots) = &mut slots {
            sleep_until(slots.next).await;
            slots.next += slots.every;
            if Instant::now() >= deadline {
                break;
            }
        }
        let started = Instant::now();
        let session = async {
            let mut ws = target.open("echo-0", &["cat"], true).await?;
            let handshake = started.elapsed();
            send(&mut ws, vec![STDIN, b'x']).await?;
            if next_frame(&mut ws).await? != (STDOUT, vec![b'x']) {
                return Err(SessionError::Protocol("wrong echo".into()));
            }
            let setup = started.elapsed();
            send(&mut ws, vec![CLOSE, STDIN]).await?;
            let clean = finish(&mut ws, |_| {}).await?;
            Ok((handshake, setup, clean))
        };
        match timeout(STEP_TIMEOUT, session).await {
            Ok(Ok((handshake, setup, clean))) => record(&stats, |s| {
                s.ok += 1;
                s.after_close += u64::from(!clean);
                s.in_window += u64::from(Instant::now() <= deadline);
                s.add("handshake_ms", handshake);
                s.add("setup_ms", setup);
                s.add("session_ms", started.elapsed());
            }),
            Ok(Err(e)) => return record(&stats, |s| s.fail(&e)),
            Err(_) => return record(&stats, |s| s.fail(&SessionError::Stuck)),
        }
    }
}

/// bulk: one flood-0 session streaming `bytes` bytes, from `t0`.
async fn bulk(
    target: Arc<Target>,
    stats: Shared,
    t0: Instant,
    bytes: u64,
) -> Result<(), SessionError> {
    sleep_until(t0).await;
    let started = Instant::now();
    let count = bytes.to_string();
    let mut ws = target.open("flood-0", &[&count], false).await?;
    let mut received = 0u64;
    let clean = finish(&mut ws, |payload| received += payload.len() as u64).await?;
    if received != bytes {
        return Err(SessionError::Protocol(format!(
            "received {received} of {bytes} bytes"
        )));
    }
    record(&stats, |s| {
        s.after_close += u64::from(!clean);
        s.bytes += received;
        s.add("stream_ms", started.elapsed());
        s.add("wall_ms", t0.elapsed());
    });
    Ok(())
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| fatal(&format!("{name}={v:?} is not a number"))),
        Err(_) => default,
    }
}

fn fatal(message: &str) -> ! {
    eprintln!("loadgen: {message}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mode = env("MODE", "hold");
    let sessions = env_u64("SESSIONS", 200);
    let duration = Duration::from_secs(env_u64("DURATION", 10));
    let target = Arc::new(Target::from_env());
    let stats: Shared = Arc::default();
    let t0 = Instant::now() + Duration::from_millis(200);
    // ECHO_TRACE=PREFIX: every keystroke of a hold as a line "µs since t0, echo µs" in
    // PREFIX.<target>, to see when in the run the slow echoes came.
    let trace_prefix = std::env::var("ECHO_TRACE").ok();
    let mut tasks = tokio::task::JoinSet::new();
    match mode.as_str() {
        "hold" => {
            let ramp = Duration::from_secs(env_u64("RAMP", 10));
            let (ramp_end, hold_end) = (t0 + ramp, t0 + ramp + duration);
            for i in 0..sessions {
                let share = i as f64 / sessions as f64;
                let open_at = t0 + ramp.mul_f64(share);
                // Each session types at its own offset into the second, spread evenly, as
                // independent users do. Typing from the moment each opened would bunch them:
                // the default ramp opens 300 a second, so sessions i and i + 300 opened a
                // whole second apart and would type at the same instant, 30 at once at 9,000.
                let plan = Schedule {
                    open_at,
                    phase: t0 + keystroke().mul_f64(share),
                    ramp_end,
                    hold_end,
                    trace: trace_prefix.is_some(),
                };
                let (target, stats) = (target.clone(), stats.clone());
                tasks.spawn(async move {
                    let result = hold(target, stats.clone(), plan).await;
                    record(&stats, |s| match result {
                        Ok(()) => s.ok += 1,
                        Err(e) => s.fail(&e),
                    });
                });
            }
        }
        "churn" => {
            // RATE: sessions a second in all, loop i starting its sessions at i / RATE s,
            // then every SESSIONS / RATE s (0: each as soon as the last one ended).
            let rate = env_u64("RATE", 0);
            for i in 0..sessions {
                let slots = (rate > 0).then(|| Slots {
                    next: t0 + Duration::from_secs_f64(i as f64 / rate as f64),
                    every: Duration::from_secs_f64(sessions as f64 / rate as f64),
                });
                tasks.spawn(churn(target.clone(), stats.clone(), t0 + duration, slots));
            }
        }
        "bulk" => {
            let bytes = env_u64("BYTES", 256 << 20);
            for _ in 0..sessions {
                let (target, stats) = (target.clone(), stats.clone());
                tasks.spawn(async move {
                    let result = bulk(target, stats.clone(), t0, bytes).await;
                    record(&stats, |s| match result {
                        Ok(()) => s.ok += 1,
                        Err(e) => s.fail(&e),
                    });
                });
            }
        }
        other => fatal(&format!("MODE must be hold, churn or bulk, got {other:?}")),
    }
    while tasks.join_next().await.is_some() {}
    let stats = Arc::into_inner(stats)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .unwrap_or_default();
    let failed = stats.errors > 0 || stats.ok == 0 || (mode != "churn" && stats.ok < sessions);
    if let Some(prefix) = trace_prefix {
        let path = format!("{prefix}.{}", env("TARGET", "direct"));
        let lines: String = stats
            .trace
            .iter()
            .map(|(at, took)| {
                format!(
                    "{} {}\n",
                    at.duration_since(t0).as_micros(),
                    took.as_micros()
                )
            })
            .collect();
        if let Err(e) = std::fs::write(&path, lines) {
            fatal(&format!("cannot write {path}: {e}"));
        }
    }
    let summary = stats.summary();
    let out = env("SUMMARY_OUT", "summary.json");
    if let Err(e) = std::fs::write(&out, summary.to_string()) {
        fatal(&format!("cannot write {out}: {e}"));
    }
    std::process::exit(if failed { 99 } else { 0 });
}
