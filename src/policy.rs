//! What an identity may run where: the policy file (`PODTERM_POLICY_FILE`) and its decisions.
//!
//! ```yaml
//! rules:                         # first rule matching identity, cluster and namespace wins
//!   - name: devs                 # optional; default "rule N" (1-based)
//!     groups: [devs]             # and/or users: [...]; neither = everyone
//!     clusters: ["*"]            # name globs; omitted = any
//!     namespaces: [default]      # name globs; omitted = any
//!     mode: shell                # shell | restricted | none (required; none: no exec)
//!   - groups: [support]
//!     mode: restricted           # only argv matching `allow`; no tty, no default shell
//!     allow:
//!       - [jstack, "[0-9]*"]     # see `policy::argv`; `podterm policy check` flags unsafe ones
//!       - [cat, "/proc/*/status"]
//!     deny_root: true            # refuse containers whose user is uid 0 (see `policy::root`)
//!   - name: oncall
//!     groups: [sre]
//!     mode: shell
//!     observe: true              # may list, watch (read-only) and end anyone's sessions in
//!                                # the rule's clusters and namespaces (default false)
//! ```
//!
//! Beside exec a rule grants files, logs, debug containers and attach: see [`toolkit`].
//!
//! No file: everyone gets `shell` and the cluster's RBAC alone decides. A file with no rule
//! matching the request: refused. The file is read once, at start-up; a bad file is a
//! [`ConfigError`] (exit 64) naming the file and the problem.

pub mod argv;
pub mod check;
pub mod glob;
pub mod limits;
pub mod root;
pub mod toolkit;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::identity::Identity;
use crate::protocol::Status;
use argv::{ArgvPattern, ArgvProblem, check_restricted_argv, display_argv};
use glob::{Flavor, Glob};
use toolkit::{DebugFile, Direction, FileRules, FilesFile};

/// What kind of exec a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Any command, the default shell and a tty included.
    Shell,
    /// Only commands matching the rule's allow list; no tty; no default shell.
    Restricted,
    /// No exec and no attach: only what the rule's `logs` and `files` grant.
    None,
}

impl Mode {
    /// Its name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shell => "shell",
            Mode::Restricted => "restricted",
            Mode::None => "none",
        }
    }
}

/// The loaded policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `None`: no policy file, everyone gets `shell`.
    rules: Option<Vec<Rule>>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    name: String,
    users: Option<Vec<Glob>>,
    groups: Option<Vec<Glob>>,
    clusters: Vec<Glob>,
    namespaces: Vec<Glob>,
    mode: Mode,
    allow: Vec<ArgvPattern>,
    deny_root: bool,
    observe: bool,
    logs: bool,
    files: FileRules,
    debug_images: Vec<Glob>,
}

/// What the matching rule grants in a cluster and namespace (see [`Policy::grant`]).
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    pub mode: Mode,
    /// The rule's name; `None` when there is no policy file.
    pub rule: Option<&'a str>,
    pub deny_root: bool,
    /// Restricted mode's allow list (empty in shell mode).
    pub allow: &'a [ArgvPattern],
    /// Whether the caller may list, watch and end other users' sessions here.
    pub observe: bool,
    /// Whether the caller may read pod logs here.
    pub logs: bool,
    /// Which paths may be read and written (crate::policy::toolkit).
    pub files: &'a FileRules,
    /// Images a debug container may use (empty: none).
    pub debug_images: &'a [Glob],
}

/// An exec the policy lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub mode: Mode,
    /// The matching rule's name; `None` when there is no policy file.
    pub rule: Option<String>,
    /// The container's user must be checked not to be root before the exec (see [`root`]).
    pub deny_root: bool,
}

/// Why the policy refuses an exec; each becomes a 403 `Status` carrying this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error(
        "no policy rule lets user {user:?} (groups: {groups}) exec in cluster {cluster:?}, namespace {namespace:?}"
    )]
    NoRule {
        user: String,
        groups: String,
        cluster: String,
        namespace: String,
    },
    #[error(
        "restricted by rule {rule:?}: an interactive terminal (tty) is not allowed; run the command without a tty"
    )]
    Tty { rule: String },
    #[error(
        "restricted by rule {rule:?}: the default shell is not allowed; run one of the allowed commands"
    )]
    DefaultShell { rule: String },
    #[error("restricted by rule {rule:?}: command {argv} is not in the allow list")]
    NotAllowed { rule: String, argv: String },
    #[error("restricted by rule {rule:?}: {problem}")]
    BadArgv { rule: String, problem: ArgvProblem },
    #[error("denied by rule {rule:?}: the container runs as root (uid 0)")]
    Root { rule: String },
    #[error(
        "denied by rule {rule:?}: cannot check that the container does not run as root: {detail}"
    )]
    RootCheck { rule: String, detail: String },
    #[error("rule {rule:?} grants no exec here (mode: none)")]
    NoExec { rule: String },
    #[error("rule {rule:?} does not allow attaching to a container: attach needs `mode: shell`")]
    Attach { rule: String },
    #[error("rule {rule:?} does not allow reading pod logs here (`logs: true` would)")]
    Logs { rule: String },
    #[error(
        "rule {rule:?} does not allow {} {path:?} (files.{}: {globs})",
        direction_word(*.direction),
        direction.as_str()
    )]
    File {
        rule: String,
        direction: Direction,
        path: String,
        globs: String,
    },
    #[error(
        "rule {rule:?} does not allow debug containers: they need `mode: shell` and `debug.images`"
    )]
    Debug { rule: String },
    #[error("rule {rule:?} does not allow debug image {image:?} (debug.images: {allowed})")]
    DebugImage {
        rule: String,
        image: String,
        allowed: String,
    },
}

fn direction_word(direction: Direction) -> &'static str {
    match direction {
        Direction::Read => "reading",
        Direction::Write => "writing",
    }
}

impl Denial {
    /// The HTTP status code for every denial.
    pub const CODE: u16 = 403;

    /// The `Status` answered before the upgrade.
    pub fn status(&self) -> Status {
        Status::failure(Self::CODE, self.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// `rules:` with nothing after it reads as no rules (and is refused as such).
    rules: Option<Vec<RuleFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Option<String>,
    users: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    clusters: Option<Vec<String>>,
    namespaces: Option<Vec<String>>,
    mode: Mode,
    #[serde(default)]
    allow: Vec<Vec<String>>,
    #[serde(default)]
    deny_root: bool,
    #[serde(default)]
    observe: bool,
    logs: Option<bool>,
    files: Option<FilesFile>,
    debug: Option<DebugFile>,
}

/// The grant without a policy file: a shell, and everything beside it.
static OPEN_FILES: std::sync::LazyLock<FileRules> = std::sync::LazyLock::new(FileRules::anything);
/// Without a policy file any image: the cluster's RBAC alone decides.
static OPEN_IMAGES: std::sync::LazyLock<Vec<Glob>> =
    std::sync::LazyLock::new(|| vec![Glob::new("*", Flavor::Name).expect("valid glob")]);

impl Policy {
    /// No policy file: everyone gets `shell`.
    pub fn open() -> Policy {
        Policy { rules: None }
    }

    /// Reads `PODTERM_POLICY_FILE` when set (`None`: [`Policy::open`]).
    pub fn load(path: Option<&Path>) -> Result<Policy, ConfigError> {
        let Some(path) = path else {
            return Ok(Policy::open());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "PODTERM_POLICY_FILE {}: cannot read it: {e}",
                path.display()
            ))
        })?;
        Policy::parse(&text).map_err(|problem| {
            ConfigError(format!("PODTERM_POLICY_FILE {}: {problem}", path.display()))
        })
    }

    /// Parses and validates policy YAML; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let file: PolicyFile =
            serde_saphyr::from_str(text).map_err(|e| e.without_snippet().to_string())?;
        let rules = file.rules.unwrap_or_default();
        if rules.is_empty() {
            return Err("`rules` is empty: every exec would be refused; \
                 remove the file to let everyone have a shell"
                .into());
        }
        let rules = rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                let default_name = format!("rule {}", i + 1);
                let label = match &rule.name {
                    Some(name) => format!("rules[{i}] ({name:?})"),
                    None => format!("rules[{i}]"),
                };
                compile_rule(rule, default_name).map_err(|e| format!("{label}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { rules: Some(rules) })
    }

    /// Whether a policy file is in force.
    #[cfg(any(test, feature = "test-util"))]
    pub fn is_open(&self) -> bool {
        self.rules.is_none()
    }

    /// What `identity` may do in `cluster`/`namespace`: the first matching rule.
    pub fn grant<'a>(
        &'a self,
        identity: &Identity,
        cluster: &str,
        namespace: &str,
    ) -> Result<Grant<'a>, Denial> {
        let Some(rules) = &self.rules else {
            return Ok(Grant {
                mode: Mode::Shell,
                rule: None,
                deny_root: false,
                allow: &[],
                observe: false,
                logs: true,
                files: &OPEN_FILES,
                debug_images: &OPEN_IMAGES,
            });
        };
        rules
            .iter()
            .find(|rule| rule.applies(identity, cluster, namespace))
            .map(|rule| Grant {
                mode: rule.mode,
                rule: Some(&rule.name),
                deny_root: rule.deny_root,
                allow: &rule.allow,
                observe: rule.observe,
                logs: rule.logs,
                files: &rule.files,
                debug_images: &rule.debug_images,
            })
            .ok_or_else(|| Denial::NoRule {
                user: identity.user.clone(),
                groups: if identity.groups.is_empty() {
                    "none".into()
                } else {
                    identity.groups.join(", ")
                },
                cluster: cluster.into(),
                namespace: namespace.into(),
            })
    }

    #[cfg(any(test, feature = "test-util"))]
    /// Decides an exec of `argv` (empty: the default shell) with or without a tty.
    pub fn decide(
        &self,
        identity: &Identity,
        cluster: &str,
        namespace: &str,
        argv: &[String],
        tty: bool,
    ) -> Result<Decision, Denial> {
        self.grant(identity, cluster, namespace)?.judge(argv, tty)
    }
}

impl Grant<'_> {
    /// Judges an exec of `argv` (empty: the default shell) under this grant.
    pub fn judge(&self, argv: &[String], tty: bool) -> Result<Decision, Denial> {
        let rule = self.rule.unwrap_or_default();
        if self.mode == Mode::None {
            return Err(Denial::NoExec { rule: rule.into() });
        }
        if self.mode == Mode::Restricted {
            if tty {
                return Err(Denial::Tty { rule: rule.into() });
            }
            if argv.is_empty() {
                return Err(Denial::DefaultShell { rule: rule.into() });
            }
            check_restricted_argv(argv).map_err(|problem| Denial::BadArgv {
                rule: rule.into(),
                problem,
            })?;
            if !self.allow.iter().any(|pattern| pattern.matches(argv)) {
                return Err(Denial::NotAllowed {
                    rule: rule.into(),
                    argv: display_argv(argv),
                });
            }
        }
        Ok(Decision {
            mode: self.mode,
            rule: self.rule.map(str::to_string),
            deny_root: self.deny_root,
        })
    }
}

impl Grant<'_> {
    /// Judges one parsed exec or attach request.
    pub fn judge_target(
        &self,
        target: &crate::protocol::exec_query::ExecTarget,
    ) -> Result<Decision, Denial> {
        use crate::protocol::exec_query::Subresource;
        match target.subresource {
            Subresource::Exec => self.judge(target.requested_argv(), target.request.tty),
            Subresource::Attach => self.judge_attach(),
        }
    }

    fn rule_name(&self) -> String {
        self.rule.unwrap_or_default().to_string()
    }

    /// The decision this grant makes for what it allows.
    pub fn decision(&self) -> Decision {
        Decision {
            mode: self.mode,
            rule: self.rule.map(str::to_string),
            deny_root: self.deny_root,
        }
    }

    /// Judges attaching to a container's main process: an interactive terminal, so shell only.
    pub fn judge_attach(&self) -> Result<Decision, Denial> {
        match self.mode {
            Mode::Shell => Ok(self.decision()),
            Mode::None => Err(Denial::NoExec {
                rule: self.rule_name(),
            }),
            Mode::Restricted => Err(Denial::Attach {
                rule: self.rule_name(),
            }),
        }
    }

    /// Judges a `kubectl cp` exec ([`toolkit::Copy`]): `None` when `argv` is not one. In
    /// restricted and none modes the rule's file globs are what allows it; in shell mode it
    /// runs as any command would, and its stream is checked all the same.
    pub fn judge_copy(
        &self,
        argv: &[String],
        tty: bool,
        limit: u64,
    ) -> Option<Result<toolkit::CopyCheck, Denial>> {
        let copy = toolkit::Copy::of(argv)?;
        if tty {
            return None;
        }
        let (direction, path) = copy.judged();
        let checked = self
            .judge_file(direction, path)
            .map(|_| toolkit::CopyCheck {
                write: self.files.write.clone(),
                copy: copy.clone(),
                limit,
            });
        Some(checked)
    }

    /// Judges reading pod logs.
    pub fn judge_logs(&self) -> Result<(), Denial> {
        if self.logs {
            Ok(())
        } else {
            Err(Denial::Logs {
                rule: self.rule_name(),
            })
        }
    }

    /// Judges a file going `direction` at the normalized absolute `path`.
    pub fn judge_file(&self, direction: Direction, path: &str) -> Result<Decision, Denial> {
        if self.files.permits(direction, path) {
            return Ok(self.decision());
        }
        Err(Denial::File {
            rule: self.rule_name(),
            direction,
            path: path.into(),
            globs: match self.files.globs(direction) {
                [] => "none".into(),
                globs => written(globs),
            },
        })
    }

    /// Judges a debug container of `image`.
    pub fn judge_debug(&self, image: &str) -> Result<Decision, Denial> {
        if self.mode != Mode::Shell || self.debug_images.is_empty() {
            return Err(Denial::Debug {
                rule: self.rule_name(),
            });
        }
        if self.debug_images.iter().any(|g| g.matches(image)) {
            return Ok(self.decision());
        }
        Err(Denial::DebugImage {
            rule: self.rule_name(),
            image: image.into(),
            allowed: written(self.debug_images),
        })
    }
}

/// Globs as the policy file wrote them, for a refusal's message: `a, b`.
fn written(globs: &[Glob]) -> String {
    globs
        .iter()
        .map(Glob::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Rule {
    fn applies(&self, identity: &Identity, cluster: &str, namespace: &str) -> bool {
        let any = |globs: &[Glob], name: &str| globs.iter().any(|g| g.matches(name));
        let who = match (&self.users, &self.groups) {
            (None, None) => true,
            (users, groups) => {
                users.as_deref().is_some_and(|u| any(u, &identity.user))
                    || groups
                        .as_deref()
                        .is_some_and(|g| identity.groups.iter().any(|name| any(g, name)))
            }
        };
        who && any(&self.clusters, cluster) && any(&self.namespaces, namespace)
    }
}

fn compile_rule(rule: RuleFile, default_name: String) -> Result<Rule, String> {
    let names = |field: &str, list: Option<Vec<String>>| -> Result<Option<Vec<Glob>>, String> {
        let Some(list) = list else { return Ok(None) };
        if list.is_empty() {
            return Err(format!("`{field}` is empty and would match nothing"));
        }
        list.iter()
            .map(|p| Glob::new(p, Flavor::Name).map_err(|e| format!("{field}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    let any = || vec![Glob::new("*", Flavor::Name).expect("`*` is a valid glob")];
    let name = match rule.name {
        Some(name) if name.trim().is_empty() => return Err("`name` is empty".into()),
        Some(name) => name,
        None => default_name,
    };
    let allow = rule
        .allow
        .iter()
        .enumerate()
        .map(|(i, entry)| ArgvPattern::new(entry).map_err(|e| format!("allow[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    match rule.mode {
        Mode::Shell if !allow.is_empty() => {
            return Err("`allow` applies only to `mode: restricted`".into());
        }
        Mode::Restricted if allow.is_empty() => {
            return Err("`mode: restricted` needs a non-empty `allow` list".into());
        }
        Mode::None if !allow.is_empty() => {
            return Err("`allow` applies only to `mode: restricted`".into());
        }
        _ => {}
    }
    let debug_images = match rule.debug {
        None => Vec::new(),
        Some(_) if rule.mode != Mode::Shell => {
            return Err(
                "`debug` needs `mode: shell`: a debug container is an interactive terminal".into(),
            );
        }
        Some(debug) => toolkit::compile_debug(debug)?,
    };
    let files = match rule.files {
        Some(files) => toolkit::compile_files(files)?,
        None if rule.mode == Mode::Shell => FileRules::anything(),
        None => FileRules::default(),
    };
    Ok(Rule {
        name,
        users: names("users", rule.users)?,
        groups: names("groups", rule.groups)?,
        clusters: names("clusters", rule.clusters)?.unwrap_or_else(any),
        namespaces: names("namespaces", rule.namespaces)?.unwrap_or_else(any),
        mode: rule.mode,
        allow,
        deny_root: rule.deny_root,
        observe: rule.observe,
        logs: rule.logs.unwrap_or(rule.mode == Mode::Shell),
        files,
        debug_images,
    })
}

#[cfg(test)]
mod tests;
