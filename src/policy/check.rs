//! `podterm policy check FILE`: validates a policy file and warns about allow entries that
//! hand out a shell or code execution.
//!
//! An allow entry is judged by what it lets a user choose: each program below has argument
//! shapes that run other code (after GTFOBins, <https://gtfobins.github.io/>, the "Shell" and
//! "Command" functions, and each tool's manual), and an entry is flagged when it matches one
//! of them, alone or next to another argument. Pagers and editors are flagged whatever their
//! arguments: with a terminal they run shell commands from inside (`!sh`).

use super::{Policy, Rule};

/// What lets a program run code: the argument shapes that do it, or an escape from inside.
enum Risk {
    /// Runs commands from inside (`!cmd`, `:!cmd`) when it has a terminal.
    Inside,
    /// These argument lists make it run code.
    Arguments(&'static [&'static [&'static str]]),
}

const RUN_ANOTHER: Risk = Risk::Arguments(&[&["sh"], &["1", "sh"], &["-n", "1", "sh"]]);
const JVM_FLAG: Risk = Risk::Arguments(&[&["-J-javaagent:agent.jar"], &["-J-XX:OnError=sh"]]);
const INTERPRETER: Risk = Risk::Arguments(&[&["-c", "x"], &["-e", "x"], &["x"]]);

/// Programs that can hand out a shell or run code, with why; matched on the program's base
/// name (`/usr/bin/less` is `less`).
const RISKY: &[(&[&str], Risk, &str)] = &[
    (
        &[
            "less", "more", "most", "pg", "man", "vi", "vim", "view", "nvim", "nano", "pico",
            "emacs", "ed", "ex", "mc", "top", "htop",
        ],
        Risk::Inside,
        "runs shell commands from inside (`!sh`) whenever it has a terminal",
    ),
    (
        &["find"],
        Risk::Arguments(&[
            &["-exec", "sh", ";"],
            &["-execdir", "sh", ";"],
            &["-ok", "sh", ";"],
            &["-fprintf", "f", "x"],
        ]),
        "runs commands with -exec/-execdir/-ok and writes files with -fprint*",
    ),
    (
        &["awk", "gawk", "mawk", "nawk", "busybox"],
        Risk::Arguments(&[&["BEGIN{system(\"sh\")}"], &["-f", "x"]]),
        "runs shell commands from its program text (system(), |getline)",
    ),
    (
        &["sed"],
        Risk::Arguments(&[&["1e sh", "x"], &["-e", "1e sh", "x"], &["-f", "x"]]),
        "runs shell commands with GNU sed's `e` command",
    ),
    (
        &[
            "env", "nice", "timeout", "nohup", "xargs", "stdbuf", "setsid", "taskset", "ionice",
            "chroot", "sudo", "su", "doas", "flock", "script", "watch", "time", "strace", "ltrace",
            "unbuffer", "chrt", "runuser", "unshare", "nsenter", "kubectl",
        ],
        RUN_ANOTHER,
        "runs the command given in its arguments",
    ),
    (
        &[
            "jstack", "jmap", "jcmd", "jinfo", "jstat", "jps", "jhsdb", "jconsole", "jdb",
        ],
        JVM_FLAG,
        "passes -J<flag> to its JVM, which can load and run code (-J-javaagent, -J-XX:OnError)",
    ),
    (
        &["java"],
        Risk::Arguments(&[&["-jar", "x"], &["-javaagent:x"], &["x"]]),
        "runs the class, jar or agent it is given",
    ),
    (
        &[
            "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "python",
            "python2", "python3", "perl", "ruby", "irb", "node", "nodejs", "deno", "php", "lua",
            "tclsh", "wish", "Rscript", "pwsh", "gdb", "expect",
        ],
        INTERPRETER,
        "runs the code or script it is given",
    ),
    (
        &["tar"],
        Risk::Arguments(&[
            &["--to-command=sh", "-xf", "x"],
            &["-xf", "x", "--to-command=sh"],
            &["--checkpoint=1", "--checkpoint-action=exec=sh"],
        ]),
        "runs commands with --to-command and --checkpoint-action=exec",
    ),
    (
        &[
            "rsync", "scp", "ssh", "git", "tcpdump", "zip", "openssl", "curl", "wget",
        ],
        Risk::Arguments(&[
            &["-e", "sh"],
            &["-o", "ProxyCommand=sh", "x"],
            &["-c", "core.pager=sh", "log"],
            &["-z", "sh", "-w", "x"],
            &["-TT", "sh", "x"],
            &["-o", "/x", "x"],
            &["-O", "/x", "x"],
        ]),
        "runs commands or writes files through its options (-e, ProxyCommand, core.pager, -z, -o)",
    ),
];

/// One allow entry that hands out more than it seems to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `rules[i] ("name")`.
    pub rule: String,
    /// The entry as written.
    pub entry: Vec<String>,
    pub why: &'static str,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: allow {:?}: `{}` {}; allow only literal arguments, or narrow the globs so that no user-chosen argument can start with `-` (e.g. [jstack, \"[0-9]*\"])",
            self.rule, self.entry, self.entry[0], self.why
        )
    }
}

/// The allow entries of `policy` that can hand out a shell or run code.
pub fn warnings(policy: &Policy) -> Vec<Warning> {
    let Some(rules) = &policy.rules else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for entry in &rule.allow {
            if let Some(why) = risk(entry) {
                found.push(Warning {
                    rule: label(i, rule),
                    entry: entry.written().to_vec(),
                    why,
                });
            }
        }
    }
    found
}

fn is_literal(item: &str) -> bool {
    !item.contains(['*', '?', '[', '\\'])
}

fn label(i: usize, rule: &Rule) -> String {
    format!("rules[{i}] ({:?})", rule.name)
}

fn risk(entry: &super::ArgvPattern) -> Option<&'static str> {
    let program = entry.written().first()?;
    let base = program.rsplit('/').next().unwrap_or(program);
    let (_, risk, why) = RISKY.iter().find(|(names, _, _)| names.contains(&base))?;
    let hit = match risk {
        Risk::Inside => true,
        Risk::Arguments(shapes) => {
            // The shape after each prefix of the entry's own items (wildcards as "1"), alone
            // or followed by one more argument.
            let written = entry.written();
            let prefixes: Vec<Vec<&str>> = (1..=written.len())
                .map(|k| {
                    written[1..k]
                        .iter()
                        .map(|item| if is_literal(item) { item.as_str() } else { "1" })
                        .collect()
                })
                .collect();
            shapes.iter().any(|shape| {
                prefixes.iter().any(|prefix| {
                    [&[][..], &["1"][..]].iter().any(|after| {
                        let argv: Vec<String> = std::iter::once(program.as_str())
                            .chain(prefix.iter().copied())
                            .chain(shape.iter().copied())
                            .chain(after.iter().copied())
                            .map(String::from)
                            .collect();
                        entry.matches(&argv)
                    })
                })
            })
        }
    };
    hit.then_some(*why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(entry: &str) -> bool {
        let yaml = format!("rules: [{{groups: [s], mode: restricted, allow: [{entry}]}}]");
        !warnings(&Policy::parse(&yaml).unwrap()).is_empty()
    }

    #[test]
    fn entries_that_hand_out_code_are_flagged() {
        // L4: the README's old example, and "*" after the usual suspects.
        for entry in [
            "[jstack, \"*\"]",
            "[jmap, \"-histo\", \"*\"]",
            "[less, \"/proc/*/status\"]",
            "[find, \"*\"]",
            "[awk, \"*\"]",
            "[env, \"*\"]",
            "[xargs, \"*\"]",
            "[nice, \"*\"]",
            "[timeout, \"*\"]",
            "[python3, \"*\"]",
            "[perl, \"*\"]",
            "[vi, \"/etc/hosts\"]",
            "[/usr/bin/less, x]",
            "[tar, \"*\"]",
        ] {
            assert!(flagged(entry), "{entry}");
        }
    }

    #[test]
    fn narrow_entries_pass() {
        for entry in [
            "[jstack, \"[0-9]*\"]",
            "[jstack, \"-l\", \"[0-9]*\"]",
            "[cat, \"/proc/*/status\"]",
            "[find, \"/var/log\", \"-name\", \"*.log\"]",
            "[ls, \"*\"]",
            "[python3, \"/app/healthcheck.py\"]",
            "[timeout, \"5\", \"cat\", \"/proc/1/status\"]",
        ] {
            assert!(!flagged(entry), "{entry}");
        }
    }
}
