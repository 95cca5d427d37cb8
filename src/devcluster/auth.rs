//! Who is calling the dev cluster (bearer token, impersonation) and what they may do (RBAC).

use hyper::HeaderMap;

use super::manifest::Rule;
use super::refusal::{Refusal, refuse};
use crate::protocol::Status;

/// The user the kubeconfig's token authenticates as; it may do everything, impersonation
/// included.
pub const ADMIN_USER: &str = "podterm-dev-admin";
/// Groups of [`ADMIN_USER`].
pub const ADMIN_GROUPS: [&str; 2] = ["system:masters", "system:authenticated"];

/// The identity a request runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub groups: Vec<String>,
    /// True for the token's own identity (not impersonating): every check passes.
    pub admin: bool,
}

/// Checks the bearer token and applies `Impersonate-User` / `Impersonate-Group` (one header
/// per group, as kubectl sends them).
pub fn authenticate(headers: &HeaderMap, token: &str) -> Result<Caller, Refusal> {
    let presented = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => {}
        _ => return Err(refuse(401, "Unauthorized")),
    }
    let user = headers
        .get("impersonate-user")
        .map(|v| v.to_str().map(str::to_owned));
    let groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .map(|v| v.to_str().map(str::to_owned))
        .collect::<Result<_, _>>()
        .map_err(|_| refuse(400, "Impersonate-Group is not valid text"))?;
    match user {
        None if groups.is_empty() => Ok(Caller {
            user: ADMIN_USER.into(),
            groups: ADMIN_GROUPS.iter().map(|g| g.to_string()).collect(),
            admin: true,
        }),
        None => Err(refuse(
            400,
            format!("requested {groups:?} without impersonating a user"),
        )),
        Some(Err(_)) => Err(refuse(400, "Impersonate-User is not valid text")),
        Some(Ok(user)) if user.is_empty() => Err(refuse(400, "Impersonate-User must not be empty")),
        Some(Ok(user)) => {
            let mut groups = groups;
            if user != "system:anonymous" && !groups.iter().any(|g| g == "system:authenticated") {
                groups.push("system:authenticated".into());
            }
            Ok(Caller {
                user,
                groups,
                admin: false,
            })
        }
    }
}

/// What a request wants to do, in RBAC terms.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub verb: &'a str,
    /// `pods`, `pods/exec`, `namespaces`.
    pub resource: &'a str,
    /// The object's name, for the message of a refusal.
    pub name: Option<&'a str>,
    /// `None`: cluster scope.
    pub namespace: Option<&'a str>,
}

impl Caller {
    /// Whether the rules let this caller do `action`.
    pub fn may(&self, rules: &[Rule], action: Action<'_>) -> bool {
        self.admin
            || rules.iter().any(|r| {
                r.allows(
                    &self.user,
                    &self.groups,
                    action.verb,
                    action.resource,
                    action.namespace,
                )
            })
    }

    /// Checks `action`, giving the API server's 403 `Status` when it is not allowed.
    pub fn check(&self, rules: &[Rule], action: Action<'_>) -> Result<(), Refusal> {
        if self.may(rules, action) {
            Ok(())
        } else {
            Err(forbidden(&self.user, action).into())
        }
    }
}

/// The API server's refusal: `pods "x" is forbidden: User "alice" cannot create resource
/// "pods/exec" in API group "" in the namespace "team-a"`.
pub fn forbidden(user: &str, action: Action<'_>) -> Status {
    let kind = action.resource.split('/').next().unwrap_or(action.resource);
    let subject = match action.name {
        Some(name) => format!("{kind} \"{name}\""),
        None => kind.to_string(),
    };
    let scope = match action.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    Status::failure(
        403,
        format!(
            "{subject} is forbidden: User \"{user}\" cannot {} resource \"{}\" in API group \"\" {scope}",
            action.verb, action.resource
        ),
    )
    .with_details(kind, action.name.unwrap_or(""))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devcluster::manifest::Manifest;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn token_is_required() {
        assert_eq!(authenticate(&headers(&[]), "t").unwrap_err().0.code, 401);
        let bad = headers(&[("authorization", "Bearer nope")]);
        assert_eq!(authenticate(&bad, "t").unwrap_err().0.code, 401);
        let basic = headers(&[("authorization", "Basic dA==")]);
        assert_eq!(authenticate(&basic, "t").unwrap_err().0.code, 401);
        let ok = authenticate(&headers(&[("authorization", "Bearer t")]), "t").unwrap();
        assert!(ok.admin);
        assert_eq!(ok.user, ADMIN_USER);
    }

    #[test]
    fn impersonation_takes_repeated_group_headers() {
        let h = headers(&[
            ("authorization", "Bearer t"),
            ("impersonate-user", "alice"),
            ("impersonate-group", "devs"),
            ("impersonate-group", "ops"),
        ]);
        let caller = authenticate(&h, "t").unwrap();
        assert!(!caller.admin);
        assert_eq!(caller.user, "alice");
        assert_eq!(caller.groups, ["devs", "ops", "system:authenticated"]);
        let groups_only = headers(&[("authorization", "Bearer t"), ("impersonate-group", "x")]);
        assert_eq!(authenticate(&groups_only, "t").unwrap_err().0.code, 400);
    }

    #[test]
    fn forbidden_message_matches_the_api_server() {
        let s = forbidden(
            "alice",
            Action {
                verb: "create",
                resource: "pods/exec",
                name: Some("api-0"),
                namespace: Some("team-a"),
            },
        );
        assert_eq!(s.code, 403);
        assert_eq!(s.reason, "Forbidden");
        assert_eq!(
            s.message,
            "pods \"api-0\" is forbidden: User \"alice\" cannot create resource \"pods/exec\" \
             in API group \"\" in the namespace \"team-a\""
        );
        let s = forbidden(
            "bob",
            Action {
                verb: "list",
                resource: "pods",
                name: None,
                namespace: None,
            },
        );
        assert_eq!(
            s.message,
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" \
             at the cluster scope"
        );
    }

    #[test]
    fn rules_decide_for_impersonated_callers() {
        let rules = Manifest::builtin().rules;
        let alice = Caller {
            user: "alice".into(),
            groups: vec!["devs".into()],
            admin: false,
        };
        let exec = |ns| Action {
            verb: "create",
            resource: "pods/exec",
            name: Some("p"),
            namespace: Some(ns),
        };
        assert!(alice.check(&rules, exec("default")).is_ok());
        assert_eq!(alice.check(&rules, exec("team-a")).unwrap_err().0.code, 403);
        let admin = Caller {
            admin: true,
            ..alice
        };
        assert!(admin.check(&rules, exec("team-a")).is_ok());
    }
}
