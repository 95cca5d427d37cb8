//! The gateway's shared state: one per process, shared by every connection — configuration,
//! the authenticator, the clusters, the policy and limits, the audit trail and recordings, the
//! session observers, the drain and the metrics — and the one place a session is reported.

use std::sync::Arc;

use crate::audit::{AuditLog, AuditObserver, AuditSink};
use crate::cluster::{ActAs, Clusters};
use crate::config::{Config, ConfigError};
use crate::drain::Drain;
use crate::events::{LogObserver, Refused, SessionEvent, SessionInfo, SessionObserver, Summary};
use crate::fleet::Fleet;
use crate::identity::{Authenticator, Identity};
use crate::policy::Policy;
use crate::policy::limits::SessionLimits;
use crate::recording::RecordingConfig;
use crate::telemetry::metrics::{Metrics, SessionMetrics};

/// Everything a request handler needs.
pub struct Gateway {
    pub config: Config,
    pub auth: Authenticator,
    pub clusters: Clusters,
    /// The policy, limits, audit trail, recordings and session observers.
    pub hooks: Hooks,
    pub drain: Drain,
    pub metrics: Metrics,
    /// This replica's live sessions and the way to the other replicas'.
    pub fleet: Fleet,
}

/// The policy, limits, audit trail, recording and observers each session goes through.
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

impl Gateway {
    pub fn with_hooks(config: Config, clusters: Clusters, hooks: Hooks) -> Gateway {
        let metrics = Metrics::with_audit(hooks.audit.as_ref().map(|a| a.dropped_counter()));
        Gateway {
            auth: Authenticator::new(&config),
            clusters,
            hooks,
            drain: Drain::new(config.drain_timeout),
            metrics,
            fleet: Fleet::new(&config),
            config,
        }
    }

    /// A gateway with the default hooks (cluster RBAC only, sessions logged).
    #[cfg(any(test, feature = "test-util"))]
    pub fn new(config: Config, clusters: Clusters) -> Gateway {
        Gateway::with_hooks(config, clusters, Hooks::default())
    }

    /// Who the cluster is asked to act as for `identity`: the caller, impersonated, unless
    /// `PODTERM_AUTH=none` (the local dev user acts with the kubeconfig's own credentials).
    pub fn act_as<'a>(&self, identity: &'a Identity) -> ActAs<'a> {
        if self.auth.impersonates() {
            ActAs::User(identity)
        } else {
            ActAs::Podterm
        }
    }

    /// A session started: counted in the metrics and told to every observer.
    pub fn session_started(&self, info: &SessionInfo) -> SessionMetrics {
        let counted = self.metrics.session_started(&info.cluster);
        for o in &self.hooks.observers {
            o.started(info);
        }
        counted
    }

    /// A session ended: its metrics closed with its outcome and every observer told.
    pub fn session_ended(&self, info: &SessionInfo, counted: SessionMetrics, summary: &Summary) {
        counted.finish(summary.close.label());
        for o in &self.hooks.observers {
            o.ended(info, summary);
        }
    }

    /// An attempt was refused: counted and told to every observer.
    pub fn session_refused(&self, info: &SessionInfo, refused: &Refused<'_>) {
        self.metrics.denied(refused.label);
        for o in &self.hooks.observers {
            o.denied(info, refused);
        }
    }

    /// Something happened to a live session: told to every observer.
    pub fn session_event(&self, info: &SessionInfo, event: SessionEvent, detail: &str) {
        for o in &self.hooks.observers {
            o.event(info, event, detail);
        }
    }

    /// Reports an action beside a session (logs, files, debug containers) to every observer.
    pub fn action(&self, action: &crate::events::Action) {
        for o in &self.hooks.observers {
            o.action(action);
        }
    }

    /// The audit trail flushed, at the end of `serve` and `dev`.
    pub async fn sync_audit(&self) {
        if let Some(audit) = &self.hooks.audit {
            audit.sync().await;
        }
    }
}
