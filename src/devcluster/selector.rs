//! Label selectors of list requests (`kubectl get pods -l app=web`): equality and existence
//! terms, as the API server reads them; set-based terms (`in`, `notin`) are refused.

use std::collections::BTreeMap;

/// A parsed `labelSelector`: every term must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(Vec<Term>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Missing(String),
}

impl Selector {
    /// Parses `a=b,c!=d,e,!f` (`==` works as `=`).
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let term = if let Some((k, v)) = term.split_once("!=") {
                Term::NotEquals(key(k)?, value(v)?)
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Term::Equals(key(k)?, value(v)?)
            } else if let Some(k) = term.strip_prefix('!') {
                Term::Missing(key(k)?)
            } else if term.contains(' ') || term.contains('(') {
                return Err(format!(
                    "unable to parse requirement {term:?}: set-based selectors are not supported by the dev cluster"
                ));
            } else {
                Term::Exists(key(term)?)
            };
            terms.push(term);
        }
        Ok(Selector(terms))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|term| match term {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::NotEquals(k, v) => labels.get(k) != Some(v),
            Term::Exists(k) => labels.contains_key(k),
            Term::Missing(k) => !labels.contains_key(k),
        })
    }
}

fn key(k: &str) -> Result<String, String> {
    let k = k.trim();
    let ok = !k.is_empty()
        && k.len() <= 253
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!("invalid label key {k:?}"))
    }
}

fn value(v: &str) -> Result<String, String> {
    let v = v.trim();
    let ok = v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!("invalid label value {v:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn terms() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let yes = |s: &str| Selector::parse(s).unwrap().matches(&web);
        assert!(yes(""));
        assert!(yes("app=web"));
        assert!(yes("app==web,tier"));
        assert!(yes("app!=api"));
        assert!(yes("!missing"));
        assert!(!yes("app=api"));
        assert!(!yes("app=web,tier=back"));
        assert!(!yes("!app"));
        assert!(!yes("other"));
    }

    #[test]
    fn refused() {
        assert!(Selector::parse("app in (web,api)").is_err());
        assert!(Selector::parse("=x").is_err());
        assert!(Selector::parse("a=b c").is_err());
    }
}
