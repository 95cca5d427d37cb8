//! Who is asking: the identity the API gateway vouched for (trusted headers, proxy secret).

/// The authenticated caller a session runs as (through Kubernetes impersonation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name, e.g. `alice@example.com`.
    pub user: String,
    /// Group names, in the order the gateway sent them.
    pub groups: Vec<String>,
}
