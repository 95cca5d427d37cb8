//! The relay settings the relay-level tests share (`RelayConfig::for_tests`).

use podterm::relay::RelayConfig;

pub fn relay_config() -> RelayConfig {
    RelayConfig::for_tests()
}
