//! podterm's resume extension of the exec protocol, for the web page: flow control
//! (crate::protocol::flow) plus a session that outlives its connection.
//!
//! A client that offers [`RESUME_V5`] (or [`RESUME_V4`]) before the flow and plain
//! subprotocols gets it back when resume is on (`PODTERM_RESUME_GRACE` > 0) and the cluster
//! accepts v5 (or v4). Everything of the flow variant holds; in addition podterm sends the
//! client control messages on one more channel:
//!
//! | byte | name    | direction        | payload                                          |
//! |------|---------|------------------|--------------------------------------------------|
//! | 253  | control | podterm → client | JSON [`Control`]: the session, its resume proof, the stdin bytes received, who watches |
//!
//! The first frame of every attachment is a control message. While the client's connection
//! is gone without a close (no close frame, or 1001 "going away", as a browser's reload
//! sends), the cluster's exec stays open for the grace period; output goes on into the
//! session's buffer until more than [`flow::HIGH_WATER`] bytes are unacknowledged, then the
//! process waits. The client comes back with `GET /api/sessions/{id}/resume?proof=P&output=N`
//! (N: stdout+stderr bytes it has processed, as in its acks): podterm answers with a control
//! message whose `input` says how many stdin bytes it has received (the client sends what it
//! had sent beyond that again, so each key arrives once), then every output byte after N.
//!
//! [`flow::HIGH_WATER`]: super::flow::HIGH_WATER

use serde::Serialize;

/// The resume subprotocol over `v5.channel.k8s.io`.
pub const RESUME_V5: &str = "v5.resume.podterm.dev";
/// The resume subprotocol over `v4.channel.k8s.io`.
pub const RESUME_V4: &str = "v4.resume.podterm.dev";
/// The control channel, podterm → client only.
pub const CONTROL: u8 = 253;
/// Stdin bytes podterm receives between two control messages that acknowledge them, at most:
/// what a client must keep to send again after a drop.
pub const INPUT_ACK_EVERY: u64 = 16 * 1024;

/// The resume variant of the plain subprotocol `base` (v5 or v4).
pub fn resume_variant(base: &str) -> Option<&'static str> {
    match base {
        super::V5 => Some(RESUME_V5),
        super::V4 => Some(RESUME_V4),
        _ => None,
    }
}

/// A control message: the session's state as the client needs it, whole each time (a later
/// one supersedes an earlier one).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Control<'a> {
    /// The session's id (for `/api/sessions/{id}/…`).
    pub session: &'a str,
    /// The proof to come back with; `None` for a watcher.
    pub proof: Option<&'a str>,
    /// Seconds a dropped connection may take to come back.
    pub grace: u64,
    /// Stdin payload bytes (channel 0, channel bytes excluded) podterm has received so far.
    pub input: u64,
    /// Output bytes read from the cluster so far: a client that resumed from a smaller offset
    /// is replaying up to here (and drops its terminal's automatic answers meanwhile).
    pub output: u64,
    /// Who watches the session now (read-only).
    pub watchers: &'a [String],
    /// The replica that holds the session.
    pub replica: &'a str,
    /// Whether this connection only watches (its input is ignored).
    pub watching: bool,
}

impl Control<'_> {
    /// The frame: the control channel byte, then the JSON.
    pub fn frame(&self) -> Vec<u8> {
        let mut frame = vec![CONTROL];
        serde_json::to_writer(&mut frame, self).expect("a control message serializes");
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_pair_with_their_base_and_control_frames_are_json() {
        assert_eq!(resume_variant(super::super::V5), Some(RESUME_V5));
        assert_eq!(resume_variant(super::super::V4), Some(RESUME_V4));
        assert_eq!(resume_variant("x"), None);
        let watchers = vec!["bob".to_string()];
        let frame = Control {
            session: "s1",
            proof: Some("p"),
            grace: 300,
            input: 7,
            output: 9,
            watchers: &watchers,
            replica: "10.0.0.1:8081",
            watching: false,
        }
        .frame();
        assert_eq!(frame[0], CONTROL);
        let v: serde_json::Value = serde_json::from_slice(&frame[1..]).unwrap();
        assert_eq!(v["input"], 7);
        assert_eq!(v["watchers"][0], "bob");
    }
}
