//! Telemetry: tracing set-up (JSON lines by default, level from `PODTERM_LOG`) and metrics.

pub mod metrics;
mod process;

pub use metrics::Metrics;
use tracing_subscriber::EnvFilter;

/// Default filter when `PODTERM_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Installs the global subscriber. `PODTERM_LOG` takes env-filter syntax;
/// `PODTERM_LOG_FORMAT=text` gives human-readable lines instead of JSON. Logs go to stderr so
/// that stdout stays free for audit lines. Calling it twice is harmless.
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("PODTERM_LOG")
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let text = std::env::var("PODTERM_LOG_FORMAT").is_ok_and(|f| f == "text");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if text {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    };
}
