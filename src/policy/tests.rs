//! Unit tests for the policy file and decisions (the module is `policy::tests`).

use super::*;

const EXAMPLE: &str = r#"
rules:
  - groups: [devs]
    clusters: ["*"]
    namespaces: [default, "team-*"]
    mode: shell
  - name: support
    groups: [support]
    namespaces: ["*"]
    mode: restricted
    allow:
      - [jstack, "*"]
      - [jmap, "-histo", "*"]
      - [cat, "/proc/*/status"]
      - [echo, "*"]
    deny_root: true
  - users: ["root-*@example.com"]
    clusters: [prod]
    mode: shell
    deny_root: true
"#;

fn policy() -> Policy {
    Policy::parse(EXAMPLE).unwrap()
}
fn who(user: &str, groups: &[&str]) -> Identity {
    Identity {
        user: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}
fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
fn support() -> Identity {
    who("sam", &["support"])
}

#[test]
fn no_file_means_everyone_gets_a_shell() {
    let open = Policy::load(None).unwrap();
    assert!(open.is_open());
    let d = open
        .decide(&who("anyone", &[]), "c", "kube-system", &[], true)
        .unwrap();
    assert_eq!(
        d,
        Decision {
            mode: Mode::Shell,
            rule: None,
            deny_root: false
        }
    );
}

#[test]
fn first_matching_rule_wins() {
    let p = policy();
    let dev = who("dana", &["support", "devs"]);
    let d = p.decide(&dev, "dev", "default", &[], true).unwrap();
    assert_eq!((d.mode, d.rule.as_deref()), (Mode::Shell, Some("rule 1")));
    // Outside the devs' namespaces the support rule applies to the same person.
    let d = p
        .decide(&dev, "dev", "payments", &argv(&["jstack", "1"]), false)
        .unwrap();
    assert_eq!(
        d,
        Decision {
            mode: Mode::Restricted,
            rule: Some("support".into()),
            deny_root: true
        }
    );
    assert!(p.decide(&dev, "dev", "payments", &[], true).is_err());
}

#[test]
fn selectors_are_globs() {
    let p = policy();
    let d = p
        .decide(&who("dana", &["devs"]), "x", "team-blue", &[], true)
        .unwrap();
    assert_eq!(d.rule.as_deref(), Some("rule 1"));
    assert!(
        p.decide(&who("dana", &["devs"]), "x", "teams", &[], true)
            .is_err()
    );
    let d = p
        .decide(&who("root-ops@example.com", &[]), "prod", "x", &[], true)
        .unwrap();
    assert_eq!((d.rule.as_deref(), d.deny_root), (Some("rule 3"), true));
    assert!(
        p.decide(&who("root-ops@example.com", &[]), "staging", "x", &[], true)
            .is_err()
    );
}

#[test]
fn no_matching_rule_is_refused_with_a_clear_message() {
    let e = policy()
        .decide(&who("eve", &["interns", "x"]), "dev", "default", &[], true)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"no policy rule lets user "eve" (groups: interns, x) exec in cluster "dev", namespace "default""#
    );
    assert_eq!(e.status().code, 403);
    assert_eq!(e.status().reason, "Forbidden");
    let e = policy()
        .decide(&who("eve", &[]), "dev", "default", &[], true)
        .unwrap_err();
    assert!(e.to_string().contains("(groups: none)"), "{e}");
}

#[test]
fn a_rule_without_users_or_groups_applies_to_everyone() {
    let p = Policy::parse("rules:\n  - namespaces: [public]\n    mode: shell\n").unwrap();
    assert!(p.decide(&who("x", &[]), "c", "public", &[], true).is_ok());
    assert!(p.decide(&who("x", &[]), "c", "private", &[], true).is_err());
}

#[test]
fn restricted_refuses_tty_and_the_default_shell() {
    let p = policy();
    let e = p
        .decide(&support(), "dev", "default", &argv(&["jstack", "1"]), true)
        .unwrap_err();
    assert_eq!(
        e,
        Denial::Tty {
            rule: "support".into()
        }
    );
    assert!(
        e.to_string()
            .starts_with(r#"restricted by rule "support": "#)
    );
    let e = p
        .decide(&support(), "dev", "default", &[], false)
        .unwrap_err();
    assert_eq!(
        e,
        Denial::DefaultShell {
            rule: "support".into()
        }
    );
    // The default shell spelled out is just a command that is not on the list.
    let e = p
        .decide(
            &support(),
            "dev",
            "default",
            &crate::protocol::default_shell(),
            false,
        )
        .unwrap_err();
    assert!(matches!(e, Denial::NotAllowed { .. }), "{e}");
}

#[test]
fn restricted_allows_only_listed_argv() {
    let p = policy();
    let ok = |a: &[&str]| p.decide(&support(), "dev", "ns", &argv(a), false).is_ok();
    assert!(ok(&["jstack"]));
    assert!(ok(&["jstack", "-l", "1"]));
    assert!(ok(&["jmap", "-histo", "1"]));
    assert!(ok(&["cat", "/proc/1/status"]));
    assert!(!ok(&["jmap", "-dump:format=b,file=/tmp/x", "1"]));
    assert!(!ok(&["cat", "/etc/shadow"]));
    assert!(!ok(&["cat", "/proc/1/status", "/etc/shadow"]));
    assert!(
        !ok(&["/usr/bin/jstack", "1"]),
        "the program is matched literally"
    );
    assert!(!ok(&["bash"]));
    let e = p
        .decide(
            &support(),
            "dev",
            "ns",
            &argv(&["sh", "-c", "jstack 1; cat /etc/shadow"]),
            false,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"restricted by rule "support": command [sh -c "jstack 1; cat /etc/shadow"] is not in the allow list"#
    );
}

/// Shell metacharacters, globbing, newlines, long arguments and NUL bytes. Whatever the
/// decision, nothing is ever given to a shell: a refused argv is not run at all, an allowed one
/// runs as exactly those strings (shown here by executing it with execvp, as the container's
/// runtime does, and seeing every metacharacter come back literally).
#[test]
fn injection_corpus() {
    let p = policy();
    let decide = |a: &[String]| p.decide(&support(), "dev", "prod", a, false);
    let payloads = [
        "1; cat /etc/shadow",
        "1 && id",
        "1 || id",
        "1 | id",
        "$(id)",
        "`id`",
        "${IFS}id",
        "1\nid",
        "1\r\nid",
        "'; id; '",
        "\"; id; \"",
        "1 > /tmp/pwned",
        "< /etc/shadow",
        "*",
        "/proc/*/status",
        "?",
        "[a-z]*",
        "~root",
        "&",
        "-h; id",
    ];
    for payload in payloads {
        // Metacharacters as the whole command: never allowed (the program is literal).
        assert!(decide(&argv(&[payload])).is_err(), "{payload:?}");
        assert!(
            decide(&argv(&["sh", "-c", payload])).is_err(),
            "{payload:?}"
        );
        assert!(
            decide(&argv(&["bash", "-c", payload])).is_err(),
            "{payload:?}"
        );
        assert!(
            decide(&argv(&["env", "sh", "-c", payload])).is_err(),
            "{payload:?}"
        );
        // Glued to an allowed command in one string: not a program name on the list.
        assert!(
            decide(&argv(&[&format!("jstack {payload}")])).is_err(),
            "{payload:?}"
        );
        // As an argument of an allowed command: allowed, and it stays one literal argument.
        let allowed = argv(&["echo", payload]);
        assert!(decide(&allowed).is_ok(), "{payload:?}");
        let out = std::process::Command::new(&allowed[0])
            .args(&allowed[1..])
            .output()
            .expect("echo runs");
        assert_eq!(
            out.stdout,
            format!("{payload}\n").into_bytes(),
            "{payload:?}"
        );
    }
    // Path patterns do not let metacharacters or traversal through.
    for arg in [
        "/proc/1/status; cat /etc/shadow",
        "/proc/1/status\n/etc/shadow",
        "/proc/../etc/status",
        "/proc/1/root/etc/status",
        "/proc/1/status /etc/shadow",
    ] {
        let expect_ok = !arg.contains('/') || arg.matches('/').count() == 3 && !arg.contains("..");
        assert_eq!(decide(&argv(&["cat", arg])).is_ok(), expect_ok, "{arg:?}");
    }
    // NUL bytes would cut the argument at execve: refused before matching.
    let e = decide(&argv(&["echo", "safe\0; id"])).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"restricted by rule "support": argument 1 contains a NUL byte"#
    );
    assert!(decide(&argv(&["jstack\0sh"])).is_err());
    // Very long arguments and argument floods are refused with a bounded message.
    let long = "$(id)".repeat(100_000);
    let e = decide(&argv(&["echo", &long])).unwrap_err();
    assert!(e.to_string().contains("bytes long"), "{e}");
    let e = decide(&argv(&["jstack", &long])).unwrap_err();
    assert!(e.to_string().len() < 300);
    let flood: Vec<String> = std::iter::once("echo".to_string())
        .chain(std::iter::repeat_n("x".to_string(), 10_000))
        .collect();
    assert!(decide(&flood).is_err());
    // Right at the limit it is just an argument.
    let at_limit = "a".repeat(argv::MAX_RESTRICTED_ARG_BYTES);
    assert!(decide(&argv(&["echo", &at_limit])).is_ok());
}

#[test]
fn grant_exposes_the_allow_list() {
    let p = policy();
    let g = p.grant(&support(), "dev", "x").unwrap();
    assert_eq!(g.mode, Mode::Restricted);
    assert_eq!(g.rule, Some("support"));
    let written: Vec<&[String]> = g.allow.iter().map(|a| a.written()).collect();
    assert_eq!(written[0], argv(&["jstack", "*"]));
    assert_eq!(written.len(), 4);
    let open = Policy::open();
    let g = open.grant(&support(), "dev", "x").unwrap();
    assert_eq!((g.mode, g.rule, g.allow.len()), (Mode::Shell, None, 0));
    assert_eq!(
        serde_json::to_string(&Mode::Restricted).unwrap(),
        "\"restricted\""
    );
}

fn problem(yaml: &str) -> String {
    Policy::parse(yaml).unwrap_err()
}

#[test]
fn bad_files_say_what_is_wrong() {
    let e = problem("rules: []\n");
    assert!(e.contains("`rules` is empty"), "{e}");
    let e = problem("rules:\n");
    assert!(e.contains("rules"), "{e}");
    let e = problem("");
    assert!(!e.is_empty());
    let e = problem("rule:\n  - mode: shell\n");
    assert!(e.contains("unknown field `rule`"), "{e}");
    let e = problem("rules:\n  - mode: shell\n    alow: [[x]]\n");
    assert!(e.contains("unknown field `alow`"), "{e}");
    assert!(e.contains("line 3"), "the parser says where: {e}");
    let e = problem("rules:\n  - mode: root\n");
    assert!(e.contains("unknown variant `root`"), "{e}");
    let e = problem("rules:\n  - groups: [a]\n");
    assert!(e.contains("missing field `mode`"), "{e}");
    let e = problem("rules:\n  - mode: restricted\n");
    assert!(
        e.contains("rules[0]: `mode: restricted` needs a non-empty `allow`"),
        "{e}"
    );
    let e = problem("rules:\n  - mode: shell\n  - name: s\n    mode: shell\n    allow: [[ls]]\n");
    assert!(
        e.contains(r#"rules[1] ("s"): `allow` applies only to `mode: restricted`"#),
        "{e}"
    );
    let e = problem("rules:\n  - mode: restricted\n    allow: [[]]\n");
    assert!(e.contains("allow[0]: an allow entry is empty"), "{e}");
    let e = problem("rules:\n  - mode: restricted\n    allow: [[\"*\"]]\n");
    assert!(e.contains("must be written literally"), "{e}");
    let e = problem("rules:\n  - mode: restricted\n    allow: [[cat, \"[x\"]]\n");
    assert!(e.contains("unclosed `[`"), "{e}");
    let e = problem("rules:\n  - mode: shell\n    users: []\n");
    assert!(e.contains("`users` is empty"), "{e}");
    let e = problem("rules:\n  - mode: shell\n    namespaces: [\"[\"]\n");
    assert!(e.contains("namespaces: pattern"), "{e}");
    let e = problem("rules:\n  - mode: shell\n    deny_root: maybe\n");
    assert!(e.contains("invalid boolean at line 3"), "{e}");
    // Plain YAML scalars are read as their text: `1` is the argument "1".
    let p =
        Policy::parse("rules:\n  - mode: restricted\n    allow: [[jmap, -histo, 1]]\n").unwrap();
    let g = p.grant(&support(), "c", "n").unwrap();
    assert_eq!(g.allow[0].written(), argv(&["jmap", "-histo", "1"]));
    let e = problem("rules:\n  - mode: restricted\n    allow: [[jmap, {a: b}]]\n");
    assert!(e.contains("line 3, column 20"), "{e}");
    let e = problem("rules:\n  - mode: shell\n    name: \" \"\n");
    assert!(e.contains("`name` is empty"), "{e}");
}

#[test]
fn loading_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let e = Policy::load(Some(&path)).unwrap_err();
    assert!(e.0.starts_with("PODTERM_POLICY_FILE "), "{e}");
    assert!(e.0.contains("policy.yaml: cannot read it"), "{e}");
    std::fs::write(&path, "rules:\n  - mode: shel\n").unwrap();
    let e = Policy::load(Some(&path)).unwrap_err();
    assert!(
        e.0.contains("policy.yaml: unknown variant `shel`") && e.0.contains("at line 2, column 11"),
        "{e}"
    );
    std::fs::write(&path, EXAMPLE).unwrap();
    assert!(!Policy::load(Some(&path)).unwrap().is_open());
}

const TOOLKIT: &str = r#"
rules:
  - name: support
    groups: [support]
    mode: restricted
    allow:
      - [jmap, "-dump:format=b,file=/tmp/heap.hprof", "[0-9]*"]
    files:
      read: ["/tmp/*.hprof"]
    logs: true
  - name: viewers
    groups: [viewers]
    mode: none
    logs: true
  - name: sre
    groups: [sre]
    mode: shell
    debug:
      images: ["busybox:1.36", "ghcr.io/acme/debug:*"]
  - name: devs
    groups: [devs]
    mode: shell
"#;

#[test]
fn toolkit_keys_decide_logs_files_debug_and_attach() {
    use toolkit::Direction::{Read, Write};
    let p = Policy::parse(TOOLKIT).unwrap();
    let grant = |g: &str| p.grant(&who("x", &[g]), "c", "ns").unwrap();
    // Support: the seed's jmap case, files only where the rule says, logs, no attach.
    let support = grant("support");
    assert!(support.judge_logs().is_ok());
    assert!(support.judge_file(Read, "/tmp/heap.hprof").is_ok());
    let e = support.judge_file(Read, "/etc/shadow").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"rule "support" does not allow reading "/etc/shadow" (files.read: /tmp/*.hprof)"#
    );
    let e = support.judge_file(Write, "/tmp/x.hprof").unwrap_err();
    assert!(e.to_string().contains("(files.write: none)"), "{e}");
    assert!(matches!(support.judge_attach(), Err(Denial::Attach { .. })));
    assert!(matches!(
        support.judge_debug("busybox:1.36"),
        Err(Denial::Debug { .. })
    ));
    // Viewers: logs without exec.
    let viewers = grant("viewers");
    assert!(viewers.judge_logs().is_ok());
    assert!(matches!(
        viewers.judge(&argv(&["id"]), false),
        Err(Denial::NoExec { .. })
    ));
    assert!(matches!(viewers.judge_attach(), Err(Denial::NoExec { .. })));
    assert!(viewers.judge_file(Read, "/tmp/a").is_err());
    // SRE: debug images by glob; shell's files default to anything.
    let sre = grant("sre");
    assert!(sre.judge_debug("ghcr.io/acme/debug:v2").is_ok());
    let e = sre.judge_debug("alpine:3").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"rule "sre" does not allow debug image "alpine:3" (debug.images: busybox:1.36, ghcr.io/acme/debug:*)"#
    );
    assert!(sre.judge_file(Write, "/etc/x").is_ok());
    assert!(sre.judge_attach().is_ok());
    // A shell rule without `debug` has no debug images.
    assert!(matches!(
        grant("devs").judge_debug("busybox:1.36"),
        Err(Denial::Debug { .. })
    ));
    // No policy file: the cluster's RBAC decides everything.
    let open = Policy::open();
    let g = open.grant(&who("x", &[]), "c", "ns").unwrap();
    assert!(g.judge_debug("anything:latest").is_ok() && g.judge_logs().is_ok());
}

#[test]
fn kubectl_cp_is_judged_by_the_file_globs() {
    let p = Policy::parse(TOOLKIT).unwrap();
    let support = p.grant(&who("x", &["support"]), "c", "ns").unwrap();
    let copy = |a: &[&str]| support.judge_copy(&argv(a), false, 1 << 20);
    assert!(matches!(
        copy(&["tar", "cf", "-", "/tmp/heap.hprof"]),
        Some(Ok(_))
    ));
    assert!(matches!(
        copy(&["tar", "cf", "-", "/etc/shadow"]),
        Some(Err(Denial::File { .. }))
    ));
    assert!(copy(&["cat", "/tmp/heap.hprof"]).is_none());
    assert!(
        support
            .judge_copy(&argv(&["tar", "cf", "-", "/tmp/heap.hprof"]), true, 1)
            .is_none(),
        "with a tty it is not kubectl cp"
    );
}

#[test]
fn toolkit_keys_are_checked_when_the_file_is_read() {
    for (text, needle) in [
        (
            "rules:\n  - mode: restricted\n    allow: [[id]]\n    debug: {images: [busybox]}\n",
            "`debug` needs `mode: shell`",
        ),
        (
            "rules:\n  - mode: shell\n    debug: {images: []}\n",
            "`debug.images` is empty",
        ),
        (
            "rules:\n  - mode: shell\n    files: {read: [tmp/x]}\n",
            "not an absolute path glob",
        ),
        (
            "rules:\n  - mode: shell\n    files: {}\n",
            "needs `read` or `write`",
        ),
        (
            "rules:\n  - mode: none\n    allow: [[id]]\n",
            "`allow` applies only to `mode: restricted`",
        ),
        (
            "rules:\n  - mode: shell\n    logs: sometimes\n",
            "invalid boolean at line 3",
        ),
        (
            "rules:\n  - mode: shell\n    files: {read: [\"/a\"], exec: []}\n",
            "unknown field",
        ),
    ] {
        let err = Policy::parse(text).unwrap_err();
        assert!(err.contains(needle), "{text}: {err}");
    }
}
