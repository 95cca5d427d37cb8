//! `deny_root`: a separate, constant exec asks the container for its user before the user's own
//! exec runs.
//!
//! Why a preliminary exec rather than wrapping the user's argv in a guard shell
//! (`sh -c '… exec "$@"' guard ARGV…`): with a separate exec, the user's argv is executed
//! exactly as checked — it never passes through a shell, not even as positional parameters —
//! and the only shell podterm ever starts runs [`ROOT_CHECK_SCRIPT`], a constant with no user
//! input in it (the argv is [`root_check_argv`], always the same three strings; it runs as the
//! same impersonated user, without stdin or tty). A refusal is also a proper 403 `Status`
//! before the upgrade instead of text on stderr. The price is one more exec round trip. The uid
//! an exec runs as is fixed by the container (image `USER`, `securityContext.runAsUser`), not
//! by the exec, so it cannot change between the two execs unless the container itself is
//! replaced — which needs rights on the pod far beyond `pods/exec`.
//!
//! A container without `sh` (distroless) cannot be checked, so it is refused with a message
//! saying so.

use super::Denial;
use crate::protocol::Status;

/// The check: `id -u`, or, without `id`, the effective uid from `/proc/self/status` using shell
/// builtins only. Constant; never formatted with anything.
pub const ROOT_CHECK_SCRIPT: &str = "id -u 2>/dev/null && exit 0; \
while read -r key real effective rest; do \
if [ \"$key\" = Uid: ]; then echo \"$effective\"; exit 0; fi; \
done < /proc/self/status; exit 127";

/// Most stdout bytes the check may print (a uid and a newline); more is an unexpected answer.
pub const MAX_ROOT_CHECK_OUTPUT: usize = 32;

/// The argv of the check exec (no stdin, no tty).
pub fn root_check_argv() -> Vec<String> {
    vec!["sh".into(), "-c".into(), ROOT_CHECK_SCRIPT.into()]
}

/// The uid the check reported, or why the exec must be refused. `stdout` is what the check
/// printed (bounded by the caller to [`MAX_ROOT_CHECK_OUTPUT`] + 1 bytes), `status` the channel-3
/// `Status` it ended with, if any.
pub fn root_check_verdict(
    rule: &str,
    stdout: &[u8],
    status: Option<&Status>,
) -> Result<u32, Denial> {
    let fail = |detail: String| Denial::RootCheck {
        rule: rule.into(),
        detail,
    };
    let Some(status) = status else {
        return Err(fail("the check ended without an exit status".into()));
    };
    match status.exit_code() {
        Some(0) => {}
        Some(127) => {
            return Err(fail(
                "the container has `sh` but neither `id` nor /proc/self/status".into(),
            ));
        }
        Some(code) => return Err(fail(format!("the check exited with status {code}"))),
        None => {
            return Err(fail(format!(
                "deny_root needs `sh` in the container, and running it failed: {}",
                status.message
            )));
        }
    }
    let text = std::str::from_utf8(stdout)
        .ok()
        .filter(|_| stdout.len() <= MAX_ROOT_CHECK_OUTPUT)
        .map(str::trim)
        .unwrap_or_default();
    match text.parse::<u32>() {
        Ok(0) => Err(Denial::Root { rule: rule.into() }),
        Ok(uid) => Ok(uid),
        Err(_) => Err(fail(format!(
            "the check printed {:?}, not a uid",
            String::from_utf8_lossy(&stdout[..stdout.len().min(MAX_ROOT_CHECK_OUTPUT)])
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_is_constant() {
        assert_eq!(root_check_argv(), root_check_argv());
        assert_eq!(root_check_argv()[..2], ["sh".to_string(), "-c".to_string()]);
        assert_eq!(
            root_check_argv().len(),
            3,
            "nothing is ever appended to the check"
        );
    }

    #[test]
    fn verdicts() {
        let ok = Status::exit(0);
        assert_eq!(root_check_verdict("r", b"1000\n", Some(&ok)), Ok(1000));
        assert_eq!(
            root_check_verdict("r", b"0\n", Some(&ok)),
            Err(Denial::Root { rule: "r".into() })
        );
        let root = root_check_verdict("support", b"0\n", Some(&ok)).unwrap_err();
        assert_eq!(
            root.to_string(),
            "denied by rule \"support\": the container runs as root (uid 0)"
        );
        assert_eq!(root.status().code, 403);
        for bad in [&b""[..], b"abc", b"-1", b"0 0", &[b'1'; 40]] {
            assert!(
                matches!(
                    root_check_verdict("r", bad, Some(&ok)),
                    Err(Denial::RootCheck { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_failed_check_is_a_refusal_that_says_why() {
        let no_sh = Status::failure(500, "exec: \"sh\": executable file not found in $PATH");
        let e = root_check_verdict("r", b"", Some(&no_sh)).unwrap_err();
        assert!(e.to_string().contains("needs `sh`"), "{e}");
        assert!(e.to_string().contains("executable file not found"), "{e}");
        let e = root_check_verdict("r", b"", Some(&Status::exit(127))).unwrap_err();
        assert!(e.to_string().contains("neither `id`"), "{e}");
        let e = root_check_verdict("r", b"", Some(&Status::exit(2))).unwrap_err();
        assert!(e.to_string().contains("status 2"), "{e}");
        let e = root_check_verdict("r", b"1000", None).unwrap_err();
        assert!(e.to_string().contains("without an exit status"), "{e}");
    }

    #[test]
    fn the_script_reports_the_uid_here() {
        // Runs the constant check with the local sh: it prints this process's effective uid.
        let Ok(out) = std::process::Command::new("sh")
            .args(&root_check_argv()[1..])
            .output()
        else {
            return; // no sh on this machine: nothing to prove here
        };
        let me = std::process::Command::new("id").arg("-u").output().unwrap();
        assert_eq!(out.stdout, me.stdout);
        assert!(out.status.success());
        // And the fallback path without `id` (PATH emptied) reads /proc/self/status.
        let out = std::process::Command::new("/bin/sh")
            .args(&root_check_argv()[1..])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert_eq!(
            out.stdout,
            me.stdout,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
