//! Allow-list entries for restricted mode: one glob per argument, matched literally against
//! the argv that is executed as is (never joined, never given to a shell).
//!
//! An entry `[jmap, "-histo", "*"]` reads: the program `jmap` (always literal), then an
//! argument matching `-histo`, then — because the *last* item is exactly `"*"` — zero or more
//! further arguments of any content. So `[jstack, "*"]` matches `jstack` alone as well as
//! `jstack -l 42`; to require an argument write `[jstack, "?*", "*"]`. Any other item, a `"*"`
//! that is not last included, matches exactly one argument with the argument glob rules of
//! [`super::glob`] (`*` never crosses `/` nor matches a leading `.`; `**` matches anything).

use super::glob::{Flavor, Glob, GlobError};

/// Most arguments a restricted exec may have (the program included).
pub const MAX_RESTRICTED_ARGS: usize = 64;
/// Longest single argument a restricted exec may have, in bytes.
pub const MAX_RESTRICTED_ARG_BYTES: usize = 4096;
/// Longest argv rendering in a message, in characters.
const MAX_DISPLAY_CHARS: usize = 200;

/// One compiled allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgvPattern {
    written: Vec<String>,
    items: Vec<Glob>,
    rest: bool,
}

/// Why an allow-list entry is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("an allow entry is empty; it must name at least the program")]
    Empty,
    #[error("the program `{0}` must be written literally (no wildcards)")]
    WildProgram(String),
    #[error(transparent)]
    Glob(#[from] GlobError),
}

impl ArgvPattern {
    /// Compiles an entry as written in the policy file.
    pub fn new(written: &[String]) -> Result<ArgvPattern, PatternError> {
        let (program, _) = written.split_first().ok_or(PatternError::Empty)?;
        let rest = written.len() > 1 && written.last().is_some_and(|last| last == "*");
        let fixed = if rest {
            &written[..written.len() - 1]
        } else {
            written
        };
        let items = fixed
            .iter()
            .map(|item| Glob::new(item, Flavor::Argument))
            .collect::<Result<Vec<_>, _>>()?;
        if !items[0].is_literal() {
            return Err(PatternError::WildProgram(program.clone()));
        }
        Ok(ArgvPattern {
            written: written.to_vec(),
            items,
            rest,
        })
    }

    /// The entry as written in the policy file.
    pub fn written(&self) -> &[String] {
        &self.written
    }

    /// Whether `argv` (program first) matches this entry.
    pub fn matches(&self, argv: &[String]) -> bool {
        let count_ok = if self.rest {
            argv.len() >= self.items.len()
        } else {
            argv.len() == self.items.len()
        };
        count_ok
            && self
                .items
                .iter()
                .zip(argv)
                .all(|(glob, arg)| glob.matches(arg))
    }
}

/// What makes an argv unfit for restricted mode before any pattern is tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgvProblem {
    /// execve takes C strings: a NUL would cut the argument, so what runs would differ from
    /// what was checked.
    #[error("argument {index} contains a NUL byte")]
    NulByte { index: usize },
    #[error("argument {index} is {len} bytes long, more than {MAX_RESTRICTED_ARG_BYTES}")]
    TooLong { index: usize, len: usize },
    #[error("{count} arguments, more than {MAX_RESTRICTED_ARGS}")]
    TooMany { count: usize },
}

/// Checks the limits restricted mode puts on any argv (arguments counted from 0 = program).
pub fn check_restricted_argv(argv: &[String]) -> Result<(), ArgvProblem> {
    if argv.len() > MAX_RESTRICTED_ARGS {
        return Err(ArgvProblem::TooMany { count: argv.len() });
    }
    for (index, arg) in argv.iter().enumerate() {
        if arg.contains('\0') {
            return Err(ArgvProblem::NulByte { index });
        }
        if arg.len() > MAX_RESTRICTED_ARG_BYTES {
            return Err(ArgvProblem::TooLong {
                index,
                len: arg.len(),
            });
        }
    }
    Ok(())
}

/// Renders an argv for a message: `[jmap -histo 1]`; arguments that are not plain words are
/// quoted with control characters escaped (`"a;b"`, `"x\ny"`), and long renderings are cut.
pub fn display_argv(argv: &[String]) -> String {
    let mut out = String::from("[");
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
        if plain {
            out.push_str(arg);
        } else {
            out.push('"');
            out.extend(arg.chars().flat_map(char::escape_debug));
            out.push('"');
        }
        if out.chars().count() > MAX_DISPLAY_CHARS {
            break;
        }
    }
    if out.chars().count() > MAX_DISPLAY_CHARS {
        out = out.chars().take(MAX_DISPLAY_CHARS).collect();
        out.push_str(" ...");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(items: &[&str]) -> ArgvPattern {
        ArgvPattern::new(&strings(items)).unwrap()
    }
    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }
    fn matches(p: &[&str], argv: &[&str]) -> bool {
        pattern(p).matches(&strings(argv))
    }

    #[test]
    fn trailing_star_stands_for_zero_or_more_arguments() {
        assert!(matches(&["jstack", "*"], &["jstack"]));
        assert!(matches(&["jstack", "*"], &["jstack", "42"]));
        assert!(matches(&["jstack", "*"], &["jstack", "-l", "42"]));
        assert!(matches(&["jstack", "*"], &["jstack", "/a/b", ".x", ""]));
        assert!(!matches(&["jstack", "*"], &["jstackx"]));
        assert!(!matches(&["jstack", "*"], &["jmap"]));
        assert!(matches(&["jmap", "-histo", "*"], &["jmap", "-histo"]));
        assert!(matches(&["jmap", "-histo", "*"], &["jmap", "-histo", "1"]));
        assert!(!matches(
            &["jmap", "-histo", "*"],
            &["jmap", "-dump:file=/x", "1"]
        ));
        assert!(!matches(&["jmap", "-histo", "*"], &["jmap"]));
    }

    #[test]
    fn requiring_an_argument() {
        assert!(!matches(&["jstack", "?*", "*"], &["jstack"]));
        assert!(matches(&["jstack", "?*", "*"], &["jstack", "42"]));
        assert!(matches(&["jstack", "?*", "*"], &["jstack", "-l", "42"]));
    }

    #[test]
    fn other_items_match_exactly_one_argument() {
        let p = ["cat", "/proc/*/status"];
        assert!(matches(&p, &["cat", "/proc/1/status"]));
        assert!(!matches(&p, &["cat"]));
        assert!(!matches(&p, &["cat", "/proc/1/status", "/etc/shadow"]));
        assert!(!matches(&p, &["cat", "/proc/1/root/etc/status"]));
        assert!(!matches(&p, &["cat", "/proc/../status"]));
        // A `*` that is not last is one argument with argument-glob rules.
        let p = ["grep", "*", "/var/log/app.log"];
        assert!(matches(&p, &["grep", "ERROR", "/var/log/app.log"]));
        assert!(!matches(&p, &["grep", "/etc", "/var/log/app.log"]));
        assert!(!matches(&p, &["grep", "/var/log/app.log"]));
        // The program alone.
        assert!(matches(&["date"], &["date"]));
        assert!(!matches(&["date"], &["date", "-s", "1999-01-01"]));
    }

    #[test]
    fn bad_entries() {
        assert_eq!(ArgvPattern::new(&[]), Err(PatternError::Empty));
        assert_eq!(
            ArgvPattern::new(&strings(&["*"])),
            Err(PatternError::WildProgram("*".into()))
        );
        assert_eq!(
            ArgvPattern::new(&strings(&["j*", "x"])),
            Err(PatternError::WildProgram("j*".into()))
        );
        assert!(matches!(
            ArgvPattern::new(&strings(&["cat", "[x"])),
            Err(PatternError::Glob(_))
        ));
        assert!(
            ArgvPattern::new(&strings(&["\\*"])).is_ok(),
            "an escaped star is literal"
        );
    }

    #[test]
    fn restricted_limits() {
        assert_eq!(check_restricted_argv(&strings(&["jstack", "1"])), Ok(()));
        assert_eq!(
            check_restricted_argv(&strings(&["cat", "/proc/1/status\0/etc/shadow"])),
            Err(ArgvProblem::NulByte { index: 1 })
        );
        let long = "a".repeat(MAX_RESTRICTED_ARG_BYTES + 1);
        assert_eq!(
            check_restricted_argv(&["jstack".into(), long]),
            Err(ArgvProblem::TooLong {
                index: 1,
                len: MAX_RESTRICTED_ARG_BYTES + 1
            })
        );
        let many = vec!["x".to_string(); MAX_RESTRICTED_ARGS + 1];
        assert_eq!(
            check_restricted_argv(&many),
            Err(ArgvProblem::TooMany {
                count: MAX_RESTRICTED_ARGS + 1
            })
        );
    }

    #[test]
    fn display() {
        assert_eq!(
            display_argv(&strings(&["jmap", "-histo", "1"])),
            "[jmap -histo 1]"
        );
        assert_eq!(
            display_argv(&strings(&["sh", "-c", "id; rm -rf /"])),
            r#"[sh -c "id; rm -rf /"]"#
        );
        assert_eq!(display_argv(&strings(&["a\nb", ""])), r#"["a\nb" ""]"#);
        assert_eq!(display_argv(&strings(&["x\0y"])), r#"["x\0y"]"#);
        let long = display_argv(&["cat".into(), "a".repeat(10_000)]);
        assert!(
            long.ends_with(" ...]") && long.chars().count() < 210,
            "{long}"
        );
    }
}
