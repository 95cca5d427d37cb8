//! Glob patterns for policy files: literal, per-string matching (no shell, no filesystem).
//!
//! | syntax   | in a name (user, group, cluster, namespace) | in a command argument             |
//! |----------|---------------------------------------------|-----------------------------------|
//! | `*`      | any run of characters                       | any run of characters except `/`  |
//! | `**`     | same as `*`                                 | any run of characters, `/` too    |
//! | `?`      | one character                               | one character except `/`          |
//! | `[a-z]`  | one character in the set (`[!…]` negates)  | same, never `/`                   |
//! | `\x`     | the character `x` literally                 | same                              |
//!
//! In arguments the wildcards follow the shell's pathname rules (`fnmatch` with `FNM_PATHNAME`
//! and `FNM_PERIOD`): besides not crossing `/`, `*`, `?` and `[…]` never match a `.` that starts
//! the argument or follows a `/`, so `/proc/*/status` matches `/proc/42/status` but neither
//! `/proc/1/root/etc/status` nor `/proc/../status`. Only `**` matches those, by the
//! administrator's explicit choice. Matching is a dynamic programme over (pattern, text): time
//! O(len(pattern) × len(text)), no backtracking blow-up on hostile input.

/// Which matching rules apply (see the table in the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Names: wildcards match any character.
    Name,
    /// Command arguments: wildcards respect `/` and leading dots like the shell's pathname globs.
    Argument,
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
    flavor: Flavor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    Star,
    DoubleStar,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Why a pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("pattern `{0}` has an unclosed `[`")]
    UnclosedClass(String),
    #[error("pattern `{0}` ends with a lone `\\`")]
    TrailingEscape(String),
}

impl Glob {
    /// Compiles `pattern` for the given flavor.
    pub fn new(pattern: &str, flavor: Flavor) -> Result<Glob, GlobError> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '\\' => Token::Literal(
                    chars
                        .next()
                        .ok_or_else(|| GlobError::TrailingEscape(pattern.into()))?,
                ),
                '?' => Token::AnyChar,
                '*' if chars.peek() == Some(&'*') => {
                    while chars.peek() == Some(&'*') {
                        chars.next();
                    }
                    match flavor {
                        Flavor::Name => Token::Star,
                        Flavor::Argument => Token::DoubleStar,
                    }
                }
                '*' => Token::Star,
                '[' => parse_class(&mut chars, pattern)?,
                other => Token::Literal(other),
            };
            tokens.push(token);
        }
        Ok(Glob {
            source: pattern.to_string(),
            tokens,
            flavor,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern has no wildcard (it matches exactly one string).
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Literal(_)))
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let n = text.len();
        // next[j]: tokens[i+1..] match text[j..]; cur[j]: tokens[i..] match text[j..].
        let mut next = vec![false; n + 1];
        next[n] = true;
        let mut cur = vec![false; n + 1];
        for token in self.tokens.iter().rev() {
            cur[n] = matches!(token, Token::Star | Token::DoubleStar) && next[n];
            for j in (0..n).rev() {
                let c = text[j];
                let wild_ok = self.wildcard_may_match(&text, j);
                cur[j] = match token {
                    Token::Literal(l) => *l == c && next[j + 1],
                    Token::AnyChar => wild_ok && next[j + 1],
                    Token::Class { negated, ranges } => {
                        wild_ok
                            && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                            && next[j + 1]
                    }
                    Token::Star => next[j] || (wild_ok && cur[j + 1]),
                    Token::DoubleStar => next[j] || cur[j + 1],
                };
            }
            std::mem::swap(&mut cur, &mut next);
        }
        next[0]
    }

    /// Whether a single-character wildcard (`*`, `?`, `[…]`) may consume `text[j]`.
    fn wildcard_may_match(&self, text: &[char], j: usize) -> bool {
        match self.flavor {
            Flavor::Name => true,
            Flavor::Argument => {
                let c = text[j];
                c != '/' && !(c == '.' && (j == 0 || text[j - 1] == '/'))
            }
        }
    }
}

fn parse_class(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    pattern: &str,
) -> Result<Token, GlobError> {
    let unclosed = || GlobError::UnclosedClass(pattern.into());
    let negated = matches!(chars.peek(), Some('!' | '^'));
    if negated {
        chars.next();
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = chars.next().ok_or_else(unclosed)?;
        let lo = match c {
            // A `]` right after `[` or `[!` is a literal member, as in the shell.
            ']' if !first => break,
            '\\' => chars.next().ok_or_else(unclosed)?,
            other => other,
        };
        first = false;
        let mut lookahead = chars.clone();
        if lookahead.next() == Some('-') && lookahead.peek().is_some_and(|&h| h != ']') {
            chars.next();
            let hi = match chars.next().ok_or_else(unclosed)? {
                '\\' => chars.next().ok_or_else(unclosed)?,
                other => other,
            };
            ranges.push((lo.min(hi), lo.max(hi)));
        } else {
            ranges.push((lo, lo));
        }
    }
    Ok(Token::Class { negated, ranges })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(p: &str, t: &str) -> bool {
        Glob::new(p, Flavor::Argument).unwrap().matches(t)
    }
    fn name(p: &str, t: &str) -> bool {
        Glob::new(p, Flavor::Name).unwrap().matches(t)
    }

    #[test]
    fn literals_match_exactly() {
        assert!(arg("jstack", "jstack"));
        assert!(!arg("jstack", "jstack "));
        assert!(!arg("jstack", "jstac"));
        assert!(!arg("jstack", ""));
        assert!(arg("", ""));
        assert!(!arg("", "x"));
        assert!(Glob::new("-histo", Flavor::Argument).unwrap().is_literal());
        assert!(!Glob::new("a*", Flavor::Argument).unwrap().is_literal());
    }

    #[test]
    fn star_and_question_mark() {
        assert!(arg("*", "1234"));
        assert!(arg("*", ""));
        assert!(arg("a*c", "abbbc"));
        assert!(arg("a*c", "ac"));
        assert!(!arg("a*c", "abd"));
        assert!(arg("?", "x"));
        assert!(!arg("?", ""));
        assert!(!arg("?", "xy"));
        assert!(arg("?", "é"), "a wildcard matches a character, not a byte");
        assert!(arg("*.log", "app.log"));
        assert!(arg("a*b*c*d", "aXbYcZd"));
    }

    #[test]
    fn argument_wildcards_do_not_cross_slashes() {
        assert!(arg("/proc/*/status", "/proc/42/status"));
        assert!(arg("/proc/*/status", "/proc/self/status"));
        assert!(!arg("/proc/*/status", "/proc/1/root/etc/status"));
        assert!(!arg("/proc/*/status", "/proc/1/root/etc/shadow/status"));
        assert!(!arg("/proc/?/status", "/proc///status"));
        assert!(!arg("/proc/[/]/status", "/proc///status"));
        assert!(!arg("*", "a/b"));
        assert!(arg("**", "a/b"));
        assert!(arg("/var/log/**", "/var/log/app/x.log"));
        assert!(
            arg("/var/log/***", "/var/log/app/x.log"),
            "runs of stars are one `**`"
        );
    }

    #[test]
    fn argument_wildcards_skip_leading_dots() {
        assert!(!arg("/proc/*/status", "/proc/../status"));
        assert!(!arg("/proc/*/status", "/proc/./status"));
        assert!(!arg("*", ".hidden"));
        assert!(!arg("?hidden", ".hidden"));
        assert!(!arg("[.]x", ".x"));
        assert!(arg(".*", ".hidden"));
        assert!(
            arg("*.*", "a.b"),
            "a dot inside a component is an ordinary character"
        );
        assert!(arg("/data/.*", "/data/.env"));
        assert!(!arg("/data/*", "/data/.env"));
        assert!(
            arg("**", "../../etc/shadow"),
            "`**` is the explicit way to allow anything"
        );
    }

    #[test]
    fn names_have_no_separator_rules() {
        assert!(name("*", "arn:aws:eks:eu-west-1:1:cluster/prod"));
        assert!(name("*", ".x"));
        assert!(name("team-*", "team-a"));
        assert!(!name("team-*", "teams"));
        assert!(name("*@example.com", "alice@example.com"));
        assert!(name("a**b", "a/x/b"));
    }

    #[test]
    fn classes() {
        assert!(arg("[abc]", "b"));
        assert!(!arg("[abc]", "d"));
        assert!(arg("[a-c]x", "bx"));
        assert!(arg("[!a-c]", "d"));
        assert!(!arg("[!a-c]", "b"));
        assert!(arg("[^a-c]", "d"));
        assert!(arg("[]]", "]"));
        assert!(arg("[!]]", "a"));
        assert!(arg("[a-]", "-"));
        assert!(arg("[0-9][0-9]*", "12345"));
        assert!(!arg("[0-9][0-9]*", "1a"));
        assert!(arg("[\\]]", "]"));
    }

    #[test]
    fn escapes_are_literal() {
        assert!(arg("\\*", "*"));
        assert!(!arg("\\*", "x"));
        assert!(arg("a\\?", "a?"));
        assert!(!arg("a\\?", "ab"));
        assert!(arg("\\[x]", "[x]"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert_eq!(
            Glob::new("[abc", Flavor::Argument),
            Err(GlobError::UnclosedClass("[abc".into()))
        );
        assert_eq!(
            Glob::new("abc\\", Flavor::Name),
            Err(GlobError::TrailingEscape("abc\\".into()))
        );
        assert!(Glob::new("[", Flavor::Name).is_err());
        assert!(Glob::new("[!", Flavor::Name).is_err());
    }

    #[test]
    fn hostile_input_is_matched_in_polynomial_time() {
        // The classic exponential case for backtracking matchers. `matches` fills one row per
        // token over the text (tokens × characters steps, no backtracking), so this ends; how
        // fast is a benchmark's business, not a unit test's.
        let pattern = "*a".repeat(30) + "b";
        let text = "a".repeat(5000);
        assert!(!arg(&pattern, &text));
        assert!(!name(&pattern, &text));
    }
}
