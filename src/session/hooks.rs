//! The gateway's hooks into each session: policy, limits, audit trail, recordings, observers.

use std::sync::Arc;

use super::{LogObserver, SessionObserver};
use crate::audit::recording::RecordingConfig;
use crate::audit::{AuditLog, AuditSink, observer::AuditObserver};
use crate::config::{Config, ConfigError};
use crate::policy::Policy;
use crate::policy::limits::SessionLimits;

/// The policy, limits, audit trail, recording and observers the gateway consults.
#[derive(Clone)]
pub struct Hooks {
    /// `PODTERM_POLICY_FILE`; default: everyone gets `shell`.
    pub policy: Arc<Policy>,
    /// `PODTERM_MAX_SESSIONS`, `PODTERM_MAX_SESSIONS_PER_USER`; default: unlimited.
    pub limits: SessionLimits,
    /// The audit trail (also among `observers`), for recording failures and the final sync.
    pub audit: Option<AuditLog>,
    /// `PODTERM_RECORD_*`; default: no recordings.
    pub recording: Option<RecordingConfig>,
    pub observers: Vec<Arc<dyn SessionObserver>>,
}

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            policy: Arc::new(Policy::open()),
            limits: SessionLimits::default(),
            audit: None,
            recording: None,
            observers: vec![Arc::new(LogObserver)],
        }
    }
}

impl Hooks {
    /// The hooks `serve` and `dev` run with: policy file, limits, audit trail (stdout or
    /// `PODTERM_AUDIT_FILE`) and recordings, from `config`. Needs a Tokio runtime (the audit
    /// writer task). A bad policy file or an unusable audit file is a [`ConfigError`].
    pub fn from_config(config: &Config) -> Result<Hooks, ConfigError> {
        let policy = Policy::load(config.policy_file.as_deref())?;
        let (audit, _writer) = AuditSink::open(config.audit_file.as_deref())?.spawn();
        let mut hooks = Hooks {
            policy: Arc::new(policy),
            limits: SessionLimits::new(config.max_sessions, config.max_sessions_per_user),
            audit: Some(audit.clone()),
            recording: config.record_dir.clone().map(|dir| RecordingConfig {
                dir,
                input: config.record_input,
                required: config.record_required,
                max_bytes: config.record_max_bytes,
            }),
            ..Hooks::default()
        };
        hooks.observers.push(Arc::new(AuditObserver::new(audit)));
        Ok(hooks)
    }
}
