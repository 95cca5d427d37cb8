//! The sessions this replica holds, and how replicas reach each other's: resume proofs, the
//! session list, watchers, ending a session, and signed replica-to-replica requests.
//!
//! Replicas find each other through Kubernetes, not a store or a membership protocol of
//! podterm's own: a session's resume proof carries the peer address of the replica that holds
//! it (its pod IP, from the downward API), signed; the session list asks every address that
//! `PODTERM_PEERS` resolves to (the chart's headless Service names every ready replica). Both
//! are signed with `PODTERM_RESUME_SECRET` (HMAC-SHA256), so a proof cannot be forged or used
//! by another user, and a peer request is refused unless another replica made it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hyper::HeaderMap;
use ring::hmac;
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::Config;
use crate::events::SessionInfo;
use crate::identity::Identity;
use crate::relay::{Attach, Attachments, Kept, SessionBytes};

/// A client's connection once it is a WebSocket (podterm is the WebSocket server).
pub use crate::tcp::ClientIo;

/// The header a replica signs its requests to another with: `UNIX_SECONDS.SIGNATURE`.
pub const PEER_SIGNATURE: &str = "podterm-peer-signature";
/// The caller a peer request acts for, as the first replica authenticated them.
pub const PEER_USER: &str = "podterm-peer-user";
/// The caller's groups (a JSON list).
pub const PEER_GROUPS: &str = "podterm-peer-groups";
/// How far a peer request's time may be from this replica's clock.
pub const PEER_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Why a resume proof or a peer request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("the resume proof is malformed")]
    Malformed,
    #[error("the resume proof is not valid for this session and user")]
    Invalid,
    #[error("the request is not signed by a podterm replica")]
    NotAPeer,
    #[error("the peer request's time is too far from this replica's clock")]
    Stale,
}

/// This replica's sessions and its way to the others.
pub struct Fleet {
    key: hmac::Key,
    /// Whether the key is shared by every replica (`PODTERM_RESUME_SECRET`).
    pub shared_key: bool,
    /// How long a dropped page session waits (zero: resume is off).
    pub grace: Duration,
    /// This replica's peer address as the others reach it ("" without one).
    pub replica: String,
    peers: Vec<String>,
    sessions: Mutex<HashSet<ById>>,
}

/// A live session in the fleet's set, found by its id: the id is read from the session
/// itself, where a map's key was a copy of it (an allocation a session).
struct ById(Arc<Live>);

impl std::borrow::Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.info.id
    }
}

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As the `str` it is borrowed as, so that the set is searched by `&str`.
        self.0.info.id.as_str().hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &ById) -> bool {
        self.0.info.id == other.0.info.id
    }
}

impl Eq for ById {}

/// One live session on this replica.
pub struct Live {
    pub info: Arc<SessionInfo>,
    /// The plain subprotocol of its exec (v5 or v4).
    pub protocol: &'static str,
    /// The kept output, when the session outlives its connection (page sessions).
    pub kept: Option<Arc<Kept>>,
    attach: Option<Arc<Attachments<ClientIo>>>,
    pub bytes: Arc<SessionBytes>,
    watchers: Mutex<Vec<String>>,
    attached: AtomicBool,
    ended_by: Arc<std::sync::OnceLock<String>>,
    end: Notify,
}

/// One entry of the session list (`GET /api/sessions`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Entry {
    pub id: String,
    pub user: String,
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
    pub command: Vec<String>,
    pub tty: bool,
    pub start: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The peer address of the replica that holds it ("" for a single replica).
    pub replica: String,
    pub attached: bool,
    /// Whether it can be resumed and watched (a page session).
    pub resumable: bool,
    pub watchers: Vec<String>,
}

impl Live {
    /// Whether a connection is attached now.
    pub fn is_attached(&self) -> bool {
        self.attached.load(Ordering::Relaxed)
    }

    pub fn set_attached(&self, attached: bool) {
        self.attached.store(attached, Ordering::Relaxed);
    }

    /// Who watches now.
    pub fn watchers(&self) -> Vec<String> {
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `user` starts watching; the owner's status line is told.
    pub fn watch_started(&self, user: &str) {
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(user.to_string());
        if let Some(kept) = &self.kept {
            kept.control_changed();
        }
    }

    /// `user` stopped watching.
    pub fn watch_ended(&self, user: &str) {
        {
            let mut w = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = w.iter().position(|u| u == user) {
                w.remove(i);
            }
        }
        if let Some(kept) = &self.kept {
            kept.control_changed();
        }
    }

    /// Hands a resuming connection to the session; `Err` gives it back if the session has
    /// ended.
    pub fn resume(&self, attach: Attach<ClientIo>) -> Result<(), Attach<ClientIo>> {
        match &self.attach {
            Some(slot) => slot.offer(attach),
            None => Err(attach),
        }
    }

    /// Ends the session (an authorized request by `by`).
    pub fn end(&self, by: &str) {
        let _ = self.ended_by.set(by.to_string());
        self.end.notify_one();
    }

    /// Resolves once someone ended the session.
    pub async fn ended(&self) {
        self.end.notified().await;
    }

    /// The session's list entry.
    pub fn entry(&self, replica: &str) -> Entry {
        let info = &self.info;
        let user = info.user().unwrap_or_default().to_string();
        let command = info.argv().unwrap_or_default().to_vec();
        let tty = info.tty().unwrap_or_default();
        let container = info.container().map(str::to_string);
        Entry {
            id: info.id.clone(),
            user,
            cluster: info.cluster.clone(),
            namespace: info.namespace.clone(),
            pod: info.pod.clone(),
            container,
            command,
            tty,
            start: jiff::Timestamp::try_from(info.started)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            bytes_in: self.bytes.from_client.load(Ordering::Relaxed),
            bytes_out: self.bytes.to_client.load(Ordering::Relaxed),
            replica: replica.to_string(),
            attached: self.is_attached(),
            resumable: self.kept.is_some(),
            watchers: self.watchers(),
        }
    }
}

/// What [`Fleet`] signs for `parts`: each, then a NUL byte. Only a proof's replica can hold
/// a NUL (it is decoded from base64); every other part comes from a header or a checked path,
/// which cannot, so no other list of parts signs the same bytes.
fn signed_message(parts: &[&str]) -> Vec<u8> {
    let mut msg = Vec::new();
    for p in parts {
        msg.extend_from_slice(p.as_bytes());
        msg.push(0);
    }
    msg
}

impl Fleet {
    pub fn new(config: &Config) -> Fleet {
        let (secret, shared_key) = match &config.resume_secret {
            Some(s) => (s.expose().to_vec(), true),
            None => (rand::random::<[u8; 32]>().to_vec(), false),
        };
        Fleet {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            shared_key,
            grace: config.resume_grace,
            replica: config.advertise.clone().unwrap_or_default(),
            peers: config.peers.clone(),
            sessions: Mutex::default(),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashSet<ById>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a session; with `kept`, it outlives its connection and the slot gets the
    /// connections that resume it.
    pub fn register(
        &self,
        info: Arc<SessionInfo>,
        protocol: &'static str,
        bytes: Arc<SessionBytes>,
        ended_by: Arc<std::sync::OnceLock<String>>,
        kept: Option<Arc<Kept>>,
    ) -> (Arc<Live>, Option<Arc<Attachments<ClientIo>>>) {
        let attach = kept.as_ref().map(|_| Arc::new(Attachments::default()));
        let rx = attach.clone();
        let live = Arc::new(Live {
            info,
            protocol,
            kept,
            attach,
            bytes,
            watchers: Mutex::default(),
            attached: AtomicBool::new(true),
            ended_by,
            end: Notify::new(),
        });
        self.sessions().replace(ById(live.clone()));
        (live, rx)
    }

    /// The session ended: it leaves the list.
    pub fn remove(&self, id: &str) {
        self.sessions().remove(id);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Live>> {
        self.sessions().get(id).map(|live| live.0.clone())
    }

    /// This replica's live sessions.
    pub fn local(&self) -> Vec<Arc<Live>> {
        self.sessions().iter().map(|live| live.0.clone()).collect()
    }

    fn sign(&self, parts: &[&str]) -> String {
        B64.encode(hmac::sign(&self.key, &signed_message(parts)).as_ref())
    }

    fn check(&self, parts: &[&str], signature: &str) -> bool {
        B64.decode(signature)
            .is_ok_and(|tag| hmac::verify(&self.key, &signed_message(parts), &tag).is_ok())
    }

    /// The proof that lets `user` (and only them) resume session `id`: `REPLICA.SIGNATURE`,
    /// the replica base64url-encoded.
    pub fn proof(&self, id: &str, user: &str) -> String {
        let replica = B64.encode(self.replica.as_bytes());
        let sig = self.sign(&["resume", id, &self.replica, user]);
        format!("{replica}.{sig}")
    }

    /// Checks `proof` for session `id` and the caller `user`; returns the replica that holds
    /// the session.
    pub fn verify_proof(&self, proof: &str, id: &str, user: &str) -> Result<String, ProofError> {
        let (replica, sig) = proof.split_once('.').ok_or(ProofError::Malformed)?;
        let replica = B64
            .decode(replica)
            .ok()
            .and_then(|r| String::from_utf8(r).ok())
            .ok_or(ProofError::Malformed)?;
        if self.check(&["resume", id, &replica, user], sig) {
            Ok(replica)
        } else {
            Err(ProofError::Invalid)
        }
    }

    /// Whether `replica` is this one.
    pub fn is_self(&self, replica: &str) -> bool {
        replica.is_empty() || replica == self.replica
    }

    /// The headers that sign a request `method path` to another replica for `identity`.
    pub fn peer_headers(&self, method: &str, path: &str, identity: &Identity) -> HeaderMap {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let groups = serde_json::to_string(&identity.groups).unwrap_or_default();
        let sig = self.sign(&["peer", method, path, &identity.user, &groups, &now]);
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (PEER_SIGNATURE, format!("{now}.{sig}")),
            (PEER_USER, identity.user.clone()),
            (PEER_GROUPS, groups),
        ] {
            if let Ok(v) = value.parse() {
                headers.insert(name, v);
            }
        }
        headers
    }

    /// The caller a peer request acts for, once its signature checks out.
    pub fn verify_peer(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Identity, ProofError> {
        let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(signed), Some(user), Some(groups)) =
            (get(PEER_SIGNATURE), get(PEER_USER), get(PEER_GROUPS))
        else {
            return Err(ProofError::NotAPeer);
        };
        let (time, sig) = signed.split_once('.').ok_or(ProofError::NotAPeer)?;
        if !self.check(&["peer", method, path, user, groups, time], sig) {
            return Err(ProofError::NotAPeer);
        }
        let time: u64 = time.parse().map_err(|_| ProofError::NotAPeer)?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if now.abs_diff(time) > PEER_CLOCK_SKEW.as_secs() {
            return Err(ProofError::Stale);
        }
        let groups: Vec<String> = serde_json::from_str(groups).map_err(|_| ProofError::NotAPeer)?;
        Ok(Identity {
            user: user.to_string(),
            groups,
        })
    }

    /// Every other replica's peer address, resolved now (a headless Service's name gives
    /// every ready replica); names that do not resolve are left out.
    pub async fn peer_addresses(&self) -> Vec<String> {
        let mut out = Vec::new();
        for peer in &self.peers {
            let Some((host, port)) = peer.rsplit_once(':') else {
                continue;
            };
            match tokio::net::lookup_host(peer.as_str()).await {
                Ok(addrs) => {
                    for a in addrs {
                        let addr = if host.parse::<std::net::IpAddr>().is_ok() {
                            peer.clone()
                        } else {
                            format!("{}:{port}", a.ip())
                        };
                        if !self.is_self(&addr) && !out.contains(&addr) {
                            out.push(addr);
                        }
                    }
                }
                Err(e) => tracing::warn!(peer, error = %e, "cannot resolve a peer"),
            }
        }
        out
    }

    /// Whether `replica` is one of the peers (a request may be sent there).
    pub async fn is_peer(&self, replica: &str) -> bool {
        self.peer_addresses().await.iter().any(|p| p == replica)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(secret: &str, replica: &str) -> Fleet {
        let config = Config {
            resume_secret: Some(crate::config::Secret::new(secret)),
            advertise: Some(replica.into()),
            ..Config::default()
        };
        Fleet::new(&config)
    }

    #[test]
    fn a_proof_is_for_one_session_one_user_and_one_key() {
        let a = fleet("0123456789abcdef0123456789abcdef", "10.0.0.1:8081");
        let proof = a.proof("s1", "alice");
        assert_eq!(
            a.verify_proof(&proof, "s1", "alice").unwrap(),
            "10.0.0.1:8081"
        );
        assert_eq!(
            a.verify_proof(&proof, "s1", "bob"),
            Err(ProofError::Invalid)
        );
        assert_eq!(
            a.verify_proof(&proof, "s2", "alice"),
            Err(ProofError::Invalid)
        );
        let other = fleet("fedcba9876543210fedcba9876543210", "10.0.0.1:8081");
        assert_eq!(
            other.verify_proof(&proof, "s1", "alice"),
            Err(ProofError::Invalid)
        );
        // Another replica with the same secret checks it and learns the owner.
        let b = fleet("0123456789abcdef0123456789abcdef", "10.0.0.2:8081");
        assert_eq!(
            b.verify_proof(&proof, "s1", "alice").unwrap(),
            "10.0.0.1:8081"
        );
        // The owner's address cannot be swapped for another.
        let (_, sig) = proof.split_once('.').unwrap();
        let forged = format!("{}.{sig}", B64.encode("10.9.9.9:8081"));
        assert_eq!(
            b.verify_proof(&forged, "s1", "alice"),
            Err(ProofError::Invalid)
        );
        assert_eq!(
            b.verify_proof("nodot", "s1", "alice"),
            Err(ProofError::Malformed)
        );
    }

    #[test]
    fn peer_requests_are_signed_for_their_method_path_and_caller() {
        let a = fleet("0123456789abcdef0123456789abcdef", "a:1");
        let b = fleet("0123456789abcdef0123456789abcdef", "b:1");
        let alice = Identity {
            user: "alice".into(),
            groups: vec!["devs".into()],
        };
        let headers = a.peer_headers("GET", "/peer/sessions", &alice);
        assert_eq!(
            b.verify_peer("GET", "/peer/sessions", &headers).unwrap(),
            alice
        );
        assert_eq!(
            b.verify_peer("DELETE", "/peer/sessions", &headers),
            Err(ProofError::NotAPeer)
        );
        let mut forged = headers.clone();
        forged.insert(PEER_USER, "root".parse().unwrap());
        assert_eq!(
            b.verify_peer("GET", "/peer/sessions", &forged),
            Err(ProofError::NotAPeer)
        );
        let outsider = fleet("ffffffffffffffffffffffffffffffff", "c:1");
        let headers = outsider.peer_headers("GET", "/peer/sessions", &alice);
        assert_eq!(
            b.verify_peer("GET", "/peer/sessions", &headers),
            Err(ProofError::NotAPeer)
        );
        assert_eq!(
            b.verify_peer("GET", "/peer/sessions", &HeaderMap::new()),
            Err(ProofError::NotAPeer)
        );
    }
}
