//! Admission: what is checked before a cluster's exec stream opens — the policy, the session
//! limits and `deny_root` (a constant check exec in the container).

use std::time::Duration;

use super::ExecError;
use crate::cluster::{ActAs, Cluster};
use crate::events::SessionInfo;
use crate::gateway::Gateway;
use crate::identity::Identity;
use crate::policy::Denial;
use crate::policy::limits::SessionGuard as LimitGuard;
use crate::policy::root::{MAX_ROOT_CHECK_OUTPUT, root_check_argv, root_check_verdict};
use crate::protocol::exec_query::{ExecQuery, ExecTarget, Subresource, exec_path};
use crate::protocol::{self, Status};

/// How long the `deny_root` check exec may take.
pub const ROOT_CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything checked before the cluster's exec stream opens — the policy, the session limits
/// and `deny_root` — in that order; the session's place under the limits on success. The
/// plain (non-upgrade) exec request goes through the same checks, so that a client falling
/// back from WebSocket (kubectl tries SPDY after any refused upgrade) gets the same answer.
pub async fn admit(
    gateway: &Gateway,
    cluster: &Cluster,
    info: &mut SessionInfo,
    protocols: &[&'static str],
) -> Result<LimitGuard, ExecError> {
    let hooks = &gateway.hooks;
    // One decision: the grant's mode and rule go in the record even when the argv is refused.
    let (identity, target) = caller_and_target(info);
    let grant = hooks
        .policy
        .grant(identity, &target.cluster, &target.namespace)?;
    let copy = match target.subresource {
        Subresource::Exec if !target.default_shell => grant.judge_copy(
            &target.request.command,
            target.request.tty,
            gateway.config.file_max_bytes,
        ),
        _ => None,
    };
    // A kubectl cp exec is judged by the rule's file globs: in restricted and none modes
    // they are what allows it, and in every mode its stream is checked in the relay.
    let (decision, copy) = match (grant.judge_target(target), copy) {
        (Ok(decision), None) => (Ok(decision), None),
        (Ok(decision), Some(Ok(check))) => (Ok(decision), Some(check)),
        (
            Err(Denial::NotAllowed { .. } | Denial::BadArgv { .. } | Denial::NoExec { .. }),
            Some(Ok(check)),
        ) => (Ok(grant.decision()), Some(check)),
        (_, Some(Err(denial))) | (Err(denial), _) => (Err(denial), None),
    };
    let (mode, rule) = (grant.mode, grant.rule.map(str::to_string));
    info.mode = Some(mode);
    info.rule = rule;
    info.copy = copy.map(Box::new);
    let decision = decision?;
    let (identity, target) = caller_and_target(info);
    let place = hooks.limits.acquire(&identity.user)?;
    if decision.deny_root {
        let rule = decision.rule.as_deref().unwrap_or_default();
        let act_as = gateway.act_as(identity);
        check_not_root(cluster, target, protocols, act_as, rule).await?;
    }
    Ok(place)
}

fn caller_and_target(info: &SessionInfo) -> (&Identity, &ExecTarget) {
    info.caller_and_target()
        .expect("routes parse the caller and the request first")
}

/// `deny_root`: runs the constant check exec in the target container (as the caller, no stdin,
/// no tty) and refuses the session if it reports uid 0 or cannot tell (see crate::policy::root).
async fn check_not_root(
    cluster: &Cluster,
    target: &ExecTarget,
    protocols: &[&'static str],
    act_as: ActAs<'_>,
    rule: &str,
) -> Result<(), ExecError> {
    let query = ExecQuery {
        container: target.request.container.clone(),
        command: root_check_argv(),
        stdout: true,
        stderr: true,
        ..ExecQuery::default()
    };
    let path = exec_path(&target.namespace, &target.pod, &query);
    let upstream = cluster.exec(&path, protocols, act_as).await?;
    let mut socket = fastwebsockets::FragmentCollector::new(upstream.socket());
    let mut stdout = Vec::new();
    let mut status = None;
    let read = async {
        while let Ok(frame) = socket.read_frame().await {
            match (frame.opcode, frame.payload.split_first()) {
                (fastwebsockets::OpCode::Close, _) => break,
                (_, Some((&protocol::STDOUT, data))) => {
                    let room = (MAX_ROOT_CHECK_OUTPUT + 1).saturating_sub(stdout.len());
                    stdout.extend_from_slice(&data[..data.len().min(room)]);
                }
                (_, Some((&protocol::ERROR, json))) => {
                    status = serde_json::from_slice::<Status>(json).ok();
                }
                _ => {}
            }
        }
    };
    if tokio::time::timeout(ROOT_CHECK_TIMEOUT, read)
        .await
        .is_err()
    {
        return Err(Denial::RootCheck {
            rule: rule.into(),
            detail: format!("the check did not finish within {ROOT_CHECK_TIMEOUT:?}"),
        }
        .into());
    }
    let uid = root_check_verdict(rule, &stdout, status.as_ref())?;
    tracing::debug!(uid, "deny_root: the container does not run as root");
    Ok(())
}
