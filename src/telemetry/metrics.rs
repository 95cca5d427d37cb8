//! Prometheus metrics: the gateway's session, relay and refusal figures, served at `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `podterm_sessions_active` | gauge | `cluster` |
//! | `podterm_sessions_total` | counter | `cluster`, `outcome` |
//! | `podterm_session_duration_seconds` | histogram | |
//! | `podterm_relay_bytes_total` | counter | `direction` (`client_to_cluster`, `cluster_to_client`) |
//! | `podterm_upstream_connect_seconds` | histogram | |
//! | `podterm_denied_total` | counter | `reason` |
//! | `podterm_audit_dropped_total` | counter | (only with an audit trail: lines not written) |
//! | `process_*` | gauges, counter | read from `/proc` at each scrape ([`super::process`]) |

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::process::ProcessCollector;

/// `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Session length buckets, in seconds: 1 s to about 12 h.
const SESSION_SECONDS_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0,
];
/// Upstream connect buckets, in seconds: 5 ms to 10 s.
const CONNECT_SECONDS_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Outcome label of a session that ended without [`SessionMetrics::finish`] (its task was
/// dropped, e.g. on a forced exit).
pub const OUTCOME_ABORTED: &str = "aborted";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    cluster: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// The gateway's metrics; cheap to clone (one shared registry).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    sessions_active: Family<ClusterLabels, Gauge>,
    sessions_total: Family<OutcomeLabels, Counter>,
    session_duration: Histogram,
    relay_bytes: RelayBytes,
    upstream_connect: Histogram,
    denied: Family<ReasonLabels, Counter>,
    /// Each cluster's session figures, as sessions first came to it.
    clusters: RwLock<Vec<Arc<ClusterSessions>>>,
}

/// One cluster's session figures, looked up in their families once and kept: a session is
/// counted in and out through them without its label sets made and hashed (two SipHash
/// lookups and a copy of the cluster's name were about 1 % of a session's instructions).
struct ClusterSessions {
    cluster: String,
    /// Its `podterm_sessions_active`.
    active: Gauge,
    /// Its `podterm_sessions_total`, by outcome, in the order sessions first ended so.
    ended: Mutex<Vec<(&'static str, Counter)>>,
}

impl ClusterSessions {
    /// Counts a session that ended with `outcome`.
    fn ended(&self, outcome: &'static str, family: &Family<OutcomeLabels, Counter>) {
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = ended.iter().find(|(o, _)| *o == outcome) {
            counter.inc();
            return;
        }
        let counter = family.get_or_create_owned(&OutcomeLabels {
            cluster: self.cluster.clone(),
            outcome,
        });
        counter.inc();
        ended.push((outcome, counter));
    }
}

/// Payload byte counters a relay adds to as frames pass (one atomic add per frame).
#[derive(Clone, Debug, Default)]
pub struct RelayBytes {
    /// Bytes from the client to the cluster (stdin, resize, close channel).
    pub client_to_cluster: Counter,
    /// Bytes from the cluster to the client (stdout, stderr, status).
    pub cluster_to_client: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every podterm metric and the process figures.
    pub fn new() -> Metrics {
        Metrics::with_audit(None)
    }

    /// As [`Metrics::new`], plus the audit trail's count of lines it could not write.
    pub fn with_audit(audit_dropped: Option<Counter>) -> Metrics {
        let mut registry = Registry::default();
        if let Some(dropped) = audit_dropped {
            registry.register(
                "podterm_audit_dropped",
                "Audit lines that could not be written to the trail (sent to the error log)",
                dropped,
            );
        }
        let sessions_active = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "podterm_sessions_active",
            "Exec sessions open now",
            sessions_active.clone(),
        );
        let sessions_total = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "podterm_sessions",
            "Exec sessions ended, by how they ended",
            sessions_total.clone(),
        );
        let session_duration = Histogram::new(SESSION_SECONDS_BUCKETS);
        registry.register_with_unit(
            "podterm_session_duration",
            "Length of ended exec sessions",
            Unit::Seconds,
            session_duration.clone(),
        );
        let by_direction = Family::<DirectionLabels, Counter>::default();
        // The family hands out the two counters once; relays keep clones of them.
        let counter = |direction| by_direction.get_or_create_owned(&DirectionLabels { direction });
        let relay_bytes = RelayBytes {
            client_to_cluster: counter("client_to_cluster"),
            cluster_to_client: counter("cluster_to_client"),
        };
        registry.register_with_unit(
            "podterm_relay",
            "Payload bytes relayed between clients and clusters",
            Unit::Bytes,
            by_direction,
        );
        let upstream_connect = Histogram::new(CONNECT_SECONDS_BUCKETS);
        registry.register_with_unit(
            "podterm_upstream_connect",
            "Time to open the exec stream to the API server",
            Unit::Seconds,
            upstream_connect.clone(),
        );
        let denied = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "podterm_denied",
            "Requests refused before a session started, by reason",
            denied.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector::new()));
        Metrics(Arc::new(Inner {
            registry,
            sessions_active,
            sessions_total,
            session_duration,
            relay_bytes,
            upstream_connect,
            denied,
            clusters: RwLock::default(),
        }))
    }

    /// `cluster`'s session figures, made the first time a session comes to it.
    fn cluster(&self, cluster: &str) -> Arc<ClusterSessions> {
        let known = |clusters: &[Arc<ClusterSessions>]| {
            clusters.iter().find(|c| c.cluster == cluster).cloned()
        };
        let clusters = &self.0.clusters;
        if let Some(found) = known(&clusters.read().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        let mut clusters = clusters.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = known(&clusters) {
            return found;
        }
        let labels = ClusterLabels {
            cluster: cluster.to_string(),
        };
        let sessions = Arc::new(ClusterSessions {
            active: self.0.sessions_active.get_or_create_owned(&labels),
            cluster: labels.cluster,
            ended: Mutex::default(),
        });
        clusters.push(sessions.clone());
        sessions
    }

    /// Counts a session as open on `cluster` until the returned value is finished or dropped.
    pub fn session_started(&self, cluster: &str) -> SessionMetrics {
        let cluster = self.cluster(cluster);
        cluster.active.inc();
        SessionMetrics {
            metrics: self.clone(),
            cluster,
            start: Instant::now(),
            outcome: None,
        }
    }

    /// The byte counters to hand to a relay.
    pub fn relay_bytes(&self) -> RelayBytes {
        self.0.relay_bytes.clone()
    }

    /// Records how long opening the exec stream to the API server took.
    pub fn upstream_connected(&self, elapsed: Duration) {
        self.0.upstream_connect.observe(elapsed.as_secs_f64());
    }

    /// Counts a request refused before its session started (`unauthenticated`, `origin`,
    /// `policy`, `forbidden`, `limit`, `draining`, ...).
    pub fn denied(&self, reason: &str) {
        self.0
            .denied
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.0.registry);
        text
    }
}

/// One open session's share of the metrics: `podterm_sessions_active` counts it until this is
/// dropped; [`SessionMetrics::finish`] records how and after how long it ended.
pub struct SessionMetrics {
    metrics: Metrics,
    /// The cluster's figures, looked up once: the end counts the session out through them.
    cluster: Arc<ClusterSessions>,
    start: Instant,
    outcome: Option<&'static str>,
}

impl SessionMetrics {
    /// The session ended with `outcome` (a short snake_case word, e.g. `exited`, `idle`).
    pub fn finish(mut self, outcome: &'static str) {
        self.outcome = Some(outcome);
    }
}

impl Drop for SessionMetrics {
    fn drop(&mut self) {
        let inner = &self.metrics.0;
        let outcome = self.outcome.take().unwrap_or(OUTCOME_ABORTED);
        self.cluster.active.dec();
        self.cluster.ended(outcome, &inner.sessions_total);
        inner
            .session_duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `name` (with its labels, as printed), if present.
    pub(crate) fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.split(' ').next()?.parse().ok())
    }

    #[test]
    fn sessions_move_the_gauge_the_counter_and_the_histogram() {
        let metrics = Metrics::new();
        let a = metrics.session_started("prod");
        let b = metrics.session_started("prod");
        let c = metrics.session_started("dev");
        let text = metrics.encode();
        assert_eq!(
            sample(&text, r#"podterm_sessions_active{cluster="prod"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"podterm_sessions_active{cluster="dev"}"#),
            Some(1.0)
        );
        a.finish("exited");
        b.finish("idle");
        drop(c);
        // A cluster and an outcome seen before: counted through the figures kept for them.
        metrics.session_started("prod").finish("exited");
        let text = metrics.encode();
        assert_eq!(
            sample(&text, r#"podterm_sessions_active{cluster="prod"}"#),
            Some(0.0)
        );
        for (labels, n) in [
            (r#"{cluster="prod",outcome="exited"}"#, 2.0),
            (r#"{cluster="prod",outcome="idle"}"#, 1.0),
            (r#"{cluster="dev",outcome="aborted"}"#, 1.0),
        ] {
            let name = format!("podterm_sessions_total{labels}");
            assert_eq!(sample(&text, &name), Some(n), "{name} in\n{text}");
        }
        assert_eq!(
            sample(&text, "podterm_session_duration_seconds_count"),
            Some(4.0)
        );
    }

    #[test]
    fn relay_bytes_denials_and_connect_times() {
        let metrics = Metrics::new();
        let bytes = metrics.relay_bytes();
        bytes.client_to_cluster.inc_by(7);
        bytes.cluster_to_client.inc_by(4096);
        metrics.relay_bytes().cluster_to_client.inc_by(4);
        metrics.denied("origin");
        metrics.denied("origin");
        metrics.denied("draining");
        metrics.upstream_connected(Duration::from_millis(30));
        let text = metrics.encode();
        for (name, n) in [
            (
                r#"podterm_relay_bytes_total{direction="client_to_cluster"}"#,
                7.0,
            ),
            (
                r#"podterm_relay_bytes_total{direction="cluster_to_client"}"#,
                4100.0,
            ),
            (r#"podterm_denied_total{reason="origin"}"#, 2.0),
            (r#"podterm_denied_total{reason="draining"}"#, 1.0),
            ("podterm_upstream_connect_seconds_count", 1.0),
            (
                r#"podterm_upstream_connect_seconds_bucket{le="0.025"}"#,
                0.0,
            ),
            (r#"podterm_upstream_connect_seconds_bucket{le="0.05"}"#, 1.0),
        ] {
            assert_eq!(sample(&text, name), Some(n), "{name} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn process_figures_are_present() {
        let text = Metrics::new().encode();
        let rss = sample(&text, "process_resident_memory_bytes").expect("rss");
        assert!(rss > 1_000_000.0, "{rss}");
        let fds = sample(&text, "process_open_fds").expect("open fds");
        assert!(fds >= 3.0, "{fds}");
        assert!(sample(&text, "process_cpu_seconds_total").expect("cpu") >= 0.0);
        assert!(sample(&text, "process_max_fds").expect("max fds") >= fds);
        assert!(sample(&text, "process_start_time_seconds").expect("start") > 1.7e9);
        assert!(sample(&text, "process_threads").expect("threads") >= 1.0);
    }
}
