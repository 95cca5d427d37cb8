//! Who is asking: the identity the API gateway vouched for (trusted headers, proxy secret) and
//! whether a browser's page may open a session here (`Origin`).

use hyper::header::HeaderName;
use hyper::header::{HOST, ORIGIN};
use subtle::ConstantTimeEq;

use crate::config::{AuthMode, Config, Secret};
use crate::fields::{self, Fields};

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

/// Why a request was refused before it reached a cluster (its status: crate::routes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "missing or wrong proxy secret: this replica only serves requests from the API gateway"
    )]
    ProxySecret,
    #[error("no user: the {0} header is missing or empty")]
    NoUser(String),
    #[error("the {0} header is given more than once: the API gateway must send exactly one")]
    RepeatedUser(String),
    #[error("the {0} header is not valid UTF-8")]
    BadUser(String),
    #[error("a {0} header line is not valid UTF-8 or holds a control character")]
    BadGroups(String),
    #[error("origin {0} may not open sessions here")]
    Origin(String),
    #[error(
        "host {0:?} is not served: with PODTERM_AUTH=none podterm answers only loopback names (localhost, 127.0.0.1, [::1])"
    )]
    Host(String),
}

/// Turns request headers into an [`Identity`] as the configuration says.
#[derive(Debug, Clone)]
pub struct Authenticator {
    mode: AuthMode,
    proxy_secret: Option<Secret>,
    allowed_origins: Vec<String>,
    /// The headers read here, parsed once: the user's, the groups', the proxy secret's, in
    /// that order. Requests are read by them.
    names: [HeaderName; 3],
}

impl Authenticator {
    pub fn new(config: &Config) -> Authenticator {
        let name = |header: &str| {
            HeaderName::from_bytes(header.as_bytes())
                .expect("the configuration's header names are checked when it is read")
        };
        Authenticator {
            mode: config.auth,
            proxy_secret: config.proxy_secret.clone(),
            allowed_origins: config.allowed_origins.clone(),
            names: [
                name(&config.user_header),
                name(&config.groups_header),
                HeaderName::from_static(PROXY_SECRET_HEADER),
            ],
        }
    }

    fn user_header(&self) -> &HeaderName {
        &self.names[0]
    }

    fn groups_header(&self) -> &HeaderName {
        &self.names[1]
    }

    fn secret_header(&self) -> &HeaderName {
        &self.names[2]
    }

    /// Whether sessions act as the caller (impersonation) rather than as podterm itself
    /// (`PODTERM_AUTH=none`: the local dev user may do whatever the kubeconfig may).
    pub fn impersonates(&self) -> bool {
        self.mode == AuthMode::Headers
    }

    /// The proxy secret, when one is configured (constant time).
    pub fn check_secret<'h>(&self, fields: impl Into<Fields<'h>>) -> Result<(), IdentityError> {
        if let Some(secret) = &self.proxy_secret {
            let sent = fields.into().get(self.secret_header()).unwrap_or_default();
            if !bool::from(sent.ct_eq(secret.expose())) {
                return Err(IdentityError::ProxySecret);
            }
        }
        Ok(())
    }

    /// The caller's identity: proxy secret first, then the trusted headers, read exactly as
    /// the gateway sent them: one user header (a second one is refused, not resolved), names
    /// and groups in UTF-8, and a groups line that cannot be read refuses the request rather
    /// than being dropped (a dropped group could skip a restrictive first policy rule).
    pub fn authenticate<'h>(
        &self,
        fields: impl Into<Fields<'h>>,
    ) -> Result<Identity, IdentityError> {
        self.identify(fields.into())
    }

    fn identify(&self, fields: Fields<'_>) -> Result<Identity, IdentityError> {
        self.check_secret(fields)?;
        if self.mode == AuthMode::None {
            return Ok(Identity::local_dev());
        }
        let mut users = fields.all(self.user_header());
        let (user, second) = (users.next(), users.next());
        if second.is_some() {
            return Err(IdentityError::RepeatedUser(self.user_header().to_string()));
        }
        let user = user
            .map(|v| {
                header_text(v).ok_or_else(|| IdentityError::BadUser(self.user_header().to_string()))
            })
            .transpose()?
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| IdentityError::NoUser(self.user_header().to_string()))?;
        let mut groups = Vec::new();
        for line in fields.all(self.groups_header()) {
            let line = header_text(line)
                .ok_or_else(|| IdentityError::BadGroups(self.groups_header().to_string()))?;
            groups.extend(
                line.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(String::from),
            );
        }
        Ok(Identity {
            user: user.to_string(),
            groups,
        })
    }

    /// With `PODTERM_AUTH=none` (`podterm dev`), only loopback host names are answered, so a
    /// web page cannot reach the developer's podterm through DNS rebinding.
    /// `authority` is the request target's, when the target is in absolute form.
    pub fn check_host<'h>(
        &self,
        authority: Option<&str>,
        fields: impl Into<Fields<'h>>,
    ) -> Result<(), IdentityError> {
        if self.mode != AuthMode::None {
            return Ok(());
        }
        let fields = fields.into();
        if fields.all(&HOST).nth(1).is_some() {
            return Err(IdentityError::Host("(more than one Host header)".into()));
        }
        let host = authority
            .map(str::to_string)
            .or_else(|| {
                fields
                    .get(&HOST)
                    .map(|h| String::from_utf8_lossy(h).into_owned())
            })
            .unwrap_or_default();
        if is_loopback_authority(&host) {
            Ok(())
        } else {
            Err(IdentityError::Host(host))
        }
    }

    /// The `Origin` check for browser requests: requests without `Origin` (kubectl, scripts)
    /// pass; else the origin must be listed, or, with no list, be the request's own host.
    pub fn check_origin<'h>(&self, fields: impl Into<Fields<'h>>) -> Result<(), IdentityError> {
        let fields = fields.into();
        let Some(origin) = fields.get(&ORIGIN) else {
            return Ok(());
        };
        let origin_text = fields::text(origin).unwrap_or("?");
        let normalized = origin_text.trim_end_matches('/').to_ascii_lowercase();
        let allowed = if self.allowed_origins.is_empty() {
            let host = fields
                .get(&HOST)
                .and_then(fields::text)
                .map(str::to_ascii_lowercase);
            let origin_host = normalized.split_once("://").map(|(_, h)| h);
            host.is_some() && origin_host == host.as_deref()
        } else {
            self.allowed_origins.contains(&normalized)
        };
        // `podterm dev` also refuses any non-loopback origin, allow list or not.
        let loopback = self.mode != AuthMode::None
            || normalized
                .split_once("://")
                .is_some_and(|(_, authority)| is_loopback_authority(authority));
        if allowed && loopback {
            Ok(())
        } else {
            Err(IdentityError::Origin(origin_text.to_string()))
        }
    }
}

/// A header value as text: UTF-8 without control characters (HTTP already forbids CR, LF, NUL).
fn header_text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|t| !t.chars().any(char::is_control))
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::HeaderMap;

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
        assert!(matches!(e, IdentityError::Origin(_)));
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

    #[test]
    fn identity_headers_are_refused_not_resolved() {
        let a = auth(&[]);
        // L2: two user headers, an unreadable groups line.
        assert!(matches!(
            a.authenticate(&headers(&[
                ("x-forwarded-user", "alice"),
                ("x-forwarded-user", "root")
            ])),
            Err(IdentityError::RepeatedUser(_))
        ));
        let mut h = headers(&[
            ("x-forwarded-user", "alice"),
            ("x-forwarded-groups", "support"),
        ]);
        h.append(
            "x-forwarded-groups",
            hyper::header::HeaderValue::from_bytes(b"ops,\xff").unwrap(),
        );
        assert!(matches!(
            a.authenticate(&h),
            Err(IdentityError::BadGroups(_))
        ));
        // UTF-8 names and groups pass as the gateway sent them.
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-user",
            hyper::header::HeaderValue::from_bytes("zoë".as_bytes()).unwrap(),
        );
        h.append(
            "x-forwarded-groups",
            hyper::header::HeaderValue::from_bytes("équipe, ops".as_bytes()).unwrap(),
        );
        let id = a.authenticate(&h).unwrap();
        assert_eq!(id.user, "zoë");
        assert_eq!(id.groups, ["équipe", "ops"]);
    }

    #[test]
    fn dev_answers_loopback_hosts_and_origins_only() {
        let a = auth(&[("PODTERM_AUTH", "none"), ("PODTERM_LISTEN", "127.0.0.1:0")]);
        let req = |host: &str| headers(&[("host", host)]);
        for ok in [
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "LOCALHOST",
            "127.0.0.2",
        ] {
            assert!(a.check_host(None, &req(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "attacker.example:8080",
            "localhost.attacker.example",
            "10.0.0.1",
            "",
        ] {
            assert!(
                matches!(a.check_host(None, &req(bad)), Err(IdentityError::Host(_))),
                "{bad}"
            );
        }
        let h = headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ]);
        assert!(a.check_origin(&h).is_ok());
        let h = headers(&[("host", "evil.example"), ("origin", "http://evil.example")]);
        assert!(a.check_origin(&h).is_err());
        // An absolute-form target's authority is the host; a second Host line is refused.
        assert!(
            a.check_host(Some("localhost:8080"), &req("evil.example"))
                .is_ok()
        );
        assert!(
            a.check_host(Some("evil.example"), &req("localhost"))
                .is_err()
        );
        let twice = headers(&[("host", "localhost"), ("host", "localhost")]);
        assert!(a.check_host(None, &twice).is_err());
        // Serve mode does not check the host.
        assert!(auth(&[]).check_host(None, &req("podterm.example")).is_ok());
    }
}
