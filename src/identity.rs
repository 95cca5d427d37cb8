//! Who is asking: the identity the API gateway vouched for (trusted headers, proxy secret) and
//! whether a browser's page may open a session here (`Origin`).

use hyper::HeaderMap;
use hyper::header::{HOST, ORIGIN};
use subtle::ConstantTimeEq;

use crate::config::{AuthMode, Config, Secret};

/// The header in which the API gateway proves it is the API gateway.
pub const PROXY_SECRET_HEADER: &str = "x-podterm-proxy-secret";
/// The user every caller is under `PODTERM_AUTH=none`.
pub const LOCAL_DEV_USER: &str = "dev";

/// The authenticated caller a session runs as (through Kubernetes impersonation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name, e.g. `alice@example.com`.
    pub user: String,
    /// Group names, in the order the gateway sent them.
    pub groups: Vec<String>,
}

impl Identity {
    /// The fixed local user of `PODTERM_AUTH=none`.
    pub fn local_dev() -> Identity {
        Identity {
            user: LOCAL_DEV_USER.into(),
            groups: Vec::new(),
        }
    }
}

/// Why a request was refused before it reached a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "missing or wrong proxy secret: this replica only serves requests from the API gateway"
    )]
    ProxySecret,
    #[error("no user: the {0} header is missing or empty")]
    NoUser(String),
    #[error("origin {0} may not open sessions here")]
    Origin(String),
}

impl IdentityError {
    /// A fixed label for the refusal metric.
    pub fn label(&self) -> &'static str {
        match self {
            IdentityError::ProxySecret => "proxy_secret",
            IdentityError::NoUser(_) => "no_user",
            IdentityError::Origin(_) => "origin",
        }
    }

    /// The HTTP status for this refusal.
    pub fn http_code(&self) -> u16 {
        match self {
            IdentityError::ProxySecret | IdentityError::NoUser(_) => 401,
            IdentityError::Origin(_) => 403,
        }
    }
}

/// Turns request headers into an [`Identity`] as the configuration says.
#[derive(Debug, Clone)]
pub struct Authenticator {
    mode: AuthMode,
    user_header: String,
    groups_header: String,
    proxy_secret: Option<Secret>,
    allowed_origins: Vec<String>,
}

impl Authenticator {
    pub fn new(config: &Config) -> Authenticator {
        Authenticator {
            mode: config.auth,
            user_header: config.user_header.to_ascii_lowercase(),
            groups_header: config.groups_header.to_ascii_lowercase(),
            proxy_secret: config.proxy_secret.clone(),
            allowed_origins: config.allowed_origins.clone(),
        }
    }

    /// Whether sessions act as the caller (impersonation) rather than as podterm itself
    /// (`PODTERM_AUTH=none`: the local dev user may do whatever the kubeconfig may).
    pub fn impersonates(&self) -> bool {
        self.mode == AuthMode::Headers
    }

    /// The caller's identity: proxy secret first (constant time), then the trusted headers.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, IdentityError> {
        if let Some(secret) = &self.proxy_secret {
            let sent = headers
                .get(PROXY_SECRET_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !bool::from(sent.ct_eq(secret.expose())) {
                return Err(IdentityError::ProxySecret);
            }
        }
        if self.mode == AuthMode::None {
            return Ok(Identity::local_dev());
        }
        let user = headers
            .get(&self.user_header)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| IdentityError::NoUser(self.user_header.clone()))?;
        let groups = headers
            .get_all(&self.groups_header)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect();
        Ok(Identity {
            user: user.to_string(),
            groups,
        })
    }

    /// The `Origin` check for browser requests: requests without `Origin` (kubectl, scripts)
    /// pass; else the origin must be listed, or, with no list, be the request's own host.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), IdentityError> {
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(());
        };
        let origin_text = origin.to_str().unwrap_or("?");
        let normalized = origin_text.trim_end_matches('/').to_ascii_lowercase();
        let allowed = if self.allowed_origins.is_empty() {
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_ascii_lowercase);
            let origin_host = normalized.split_once("://").map(|(_, h)| h);
            host.is_some() && origin_host == host.as_deref()
        } else {
            self.allowed_origins.contains(&normalized)
        };
        if allowed {
            Ok(())
        } else {
            Err(IdentityError::Origin(origin_text.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn auth(pairs: &[(&str, &str)]) -> Authenticator {
        let vars = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Authenticator::new(&Config::from_vars(vars).unwrap())
    }

    #[test]
    fn trusted_headers() {
        let a = auth(&[]);
        let id = a
            .authenticate(&headers(&[
                ("x-forwarded-user", "alice"),
                ("x-forwarded-groups", "devs, ops"),
                ("x-forwarded-groups", "team-a"),
            ]))
            .unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.groups, ["devs", "ops", "team-a"]);
        assert!(a.impersonates());
        assert!(matches!(
            a.authenticate(&headers(&[("x-forwarded-groups", "devs")])),
            Err(IdentityError::NoUser(_))
        ));
        assert!(
            a.authenticate(&headers(&[("x-forwarded-user", " ")]))
                .is_err()
        );
    }

    #[test]
    fn custom_headers() {
        let a = auth(&[
            ("PODTERM_USER_HEADER", "X-User"),
            ("PODTERM_GROUPS_HEADER", "X-G"),
        ]);
        let id = a
            .authenticate(&headers(&[("x-user", "bob"), ("x-g", "a,b")]))
            .unwrap();
        assert_eq!((id.user.as_str(), id.groups.len()), ("bob", 2));
    }

    #[test]
    fn proxy_secret() {
        let a = auth(&[("PODTERM_PROXY_SECRET", "s3cret")]);
        let user = ("x-forwarded-user", "alice");
        assert_eq!(
            a.authenticate(&headers(&[user])),
            Err(IdentityError::ProxySecret)
        );
        assert_eq!(
            a.authenticate(&headers(&[user, (PROXY_SECRET_HEADER, "s3cre")])),
            Err(IdentityError::ProxySecret)
        );
        assert!(
            a.authenticate(&headers(&[user, (PROXY_SECRET_HEADER, "s3cret")]))
                .is_ok()
        );
        assert_eq!(IdentityError::ProxySecret.http_code(), 401);
    }

    #[test]
    fn auth_none_is_the_local_dev_user() {
        let a = auth(&[("PODTERM_AUTH", "none"), ("PODTERM_LISTEN", "127.0.0.1:0")]);
        assert_eq!(a.authenticate(&HeaderMap::new()), Ok(Identity::local_dev()));
        assert!(!a.impersonates());
    }

    #[test]
    fn origin_defaults_to_same_host() {
        let a = auth(&[]);
        assert!(a.check_origin(&headers(&[("host", "h:8080")])).is_ok());
        assert!(
            a.check_origin(&headers(&[("host", "h:8080"), ("origin", "http://h:8080")]))
                .is_ok()
        );
        let e = a
            .check_origin(&headers(&[
                ("host", "h:8080"),
                ("origin", "https://evil.example"),
            ]))
            .unwrap_err();
        assert_eq!(e.http_code(), 403);
        assert!(
            a.check_origin(&headers(&[("origin", "http://h:8080")]))
                .is_err()
        );
    }

    #[test]
    fn origin_allow_list() {
        let a = auth(&[("PODTERM_ALLOWED_ORIGINS", "https://term.example.com")]);
        let ok = headers(&[
            ("host", "podterm:8080"),
            ("origin", "https://TERM.example.com"),
        ]);
        assert!(a.check_origin(&ok).is_ok());
        let same_host = headers(&[("host", "podterm:8080"), ("origin", "http://podterm:8080")]);
        assert!(a.check_origin(&same_host).is_err());
    }
}
