//! The Helm chart's `config` values against the real `Config`: the chart's defaults are
//! podterm's own, and both the default and the all-on values files give variables podterm
//! accepts (a chart value that podterm would refuse with exit 64 fails here, not in a rollout).

use std::collections::BTreeMap;
use std::path::Path;

use podterm::config::{AuthMode, Config};
use podterm::policy::Policy;
use serde_json::Value;

/// `config.<key>` in values.yaml → the variable chart/podterm/templates/deployment.yaml sets.
const SETTINGS: [(&str, &str); 19] = [
    ("auth", "PODTERM_AUTH"),
    ("userHeader", "PODTERM_USER_HEADER"),
    ("groupsHeader", "PODTERM_GROUPS_HEADER"),
    ("allowedOrigins", "PODTERM_ALLOWED_ORIGINS"),
    ("contexts", "PODTERM_CONTEXTS"),
    ("pingInterval", "PODTERM_PING_INTERVAL"),
    ("idleTimeout", "PODTERM_IDLE_TIMEOUT"),
    ("maxSessionDuration", "PODTERM_MAX_SESSION_DURATION"),
    ("maxFrameBytes", "PODTERM_MAX_FRAME_BYTES"),
    ("maxSessionsPerUser", "PODTERM_MAX_SESSIONS_PER_USER"),
    ("maxSessions", "PODTERM_MAX_SESSIONS"),
    ("fileMaxBytes", "PODTERM_FILE_MAX_BYTES"),
    ("drainTimeout", "PODTERM_DRAIN_TIMEOUT"),
    ("workerThreads", "PODTERM_WORKER_THREADS"),
    ("headerReadTimeout", "PODTERM_HEADER_READ_TIMEOUT"),
    ("connectionIdleTimeout", "PODTERM_CONNECTION_IDLE_TIMEOUT"),
    ("maxConnections", "PODTERM_MAX_CONNECTIONS"),
    ("log", "PODTERM_LOG"),
    ("logFormat", "PODTERM_LOG_FORMAT"),
];

fn chart_file(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("chart/podterm")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read the values file");
    serde_saphyr::from_str(&text).expect("values are YAML")
}

/// The `PODTERM_*` variables the chart sets from `config` (empty and null values unset).
fn env_from(config: &Value) -> BTreeMap<String, String> {
    SETTINGS
        .iter()
        .filter_map(|(key, var)| {
            let value = match &config[*key] {
                Value::Null => return None,
                Value::String(s) if s.is_empty() => return None,
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("config.{key} is not a scalar: {other:?}"),
            };
            Some((var.to_string(), value))
        })
        .collect()
}

#[test]
fn the_table_matches_the_template() {
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("chart/podterm/templates/deployment.yaml"),
    )
    .unwrap();
    for (key, var) in SETTINGS {
        let line = format!("(list \"{var}\" $c.{key})");
        assert!(template.contains(&line), "deployment.yaml lacks {line}");
    }
}

#[test]
fn chart_defaults_are_podterm_defaults() {
    let values = chart_file("values.yaml");
    let env = env_from(&values["config"]);
    let chart = Config::from_vars(env.clone()).expect("podterm accepts the chart's defaults");
    let default = Config::default();
    assert_eq!(chart.auth, AuthMode::Headers);
    assert_eq!(chart.user_header, default.user_header);
    assert_eq!(chart.groups_header, default.groups_header);
    assert_eq!(chart.ping_interval, default.ping_interval);
    assert_eq!(chart.idle_timeout, default.idle_timeout);
    assert_eq!(chart.max_session_duration, default.max_session_duration);
    assert_eq!(chart.header_read_timeout, default.header_read_timeout);
    assert_eq!(
        chart.connection_idle_timeout,
        default.connection_idle_timeout
    );
    assert_eq!(chart.max_connections, default.max_connections);
    assert_eq!(chart.max_frame_bytes, default.max_frame_bytes);
    assert_eq!(chart.drain_timeout, default.drain_timeout);
    assert_eq!(env["PODTERM_LOG"], podterm::telemetry::DEFAULT_LOG_FILTER);
    assert!(chart.allowed_origins.is_empty() && chart.contexts.is_empty());
}

#[test]
fn all_on_values_are_accepted() {
    let mut config = chart_file("values.yaml")["config"].clone();
    let overrides = chart_file("ci/all-on-values.yaml")["config"].clone();
    for (key, value) in overrides.as_object().expect("a mapping") {
        config[key.as_str()] = value.clone();
    }
    let env = env_from(&config);
    let parsed = Config::from_vars(env).expect("podterm accepts the all-on values");
    assert_eq!(parsed.contexts, ["prod", "staging"]);
    assert_eq!(parsed.allowed_origins, ["https://term.example.com"]);
    assert_eq!(parsed.max_frame_bytes, 1 << 20);
    assert_eq!(parsed.drain_timeout, std::time::Duration::from_secs(90));
}

#[test]
fn the_example_policy_parses() {
    let values = chart_file("ci/all-on-values.yaml");
    let content = values["policy"]["content"]
        .as_str()
        .expect("policy.content");
    let policy = Policy::parse(content).expect("the chart's example policy is valid");
    assert!(!policy.is_open());
}
