//! The relay settings the relay-level tests share: v5, timers far beyond a test's length, a
//! 4 KiB client frame limit, no recording.

use std::time::Duration;

use podterm::relay::RelayConfig;

pub fn relay_config() -> RelayConfig {
    RelayConfig {
        v5: true,
        ping_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        max_duration: Duration::from_secs(60),
        max_client_frame_bytes: 4096,
        max_upstream_frame_bytes: 1 << 20,
        bytes: Default::default(),
        recording: None,
        flow: false,
    }
}
