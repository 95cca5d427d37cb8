//! podterm's flow-control extension of the exec protocol, for the web page.
//!
//! A client that offers [`FLOW_V5`] (or [`FLOW_V4`]) before the plain subprotocols gets it back
//! when the cluster accepts v5 (or v4): everything is then the plain protocol, plus one frame
//! the client sends and podterm keeps to itself:
//!
//! | byte | name | direction        | payload                                                  |
//! |------|------|------------------|----------------------------------------------------------|
//! | 254  | ack  | client → podterm | 8 bytes, big-endian: stdout+stderr bytes processed so far |
//!
//! The count is cumulative (the payload bytes of channels 1 and 2, channel bytes excluded),
//! so acks may be dropped or merged. While more than [`HIGH_WATER`] bytes sent to the client
//! are unacknowledged, podterm stops reading the cluster's stream; it reads again once they
//! are down to [`LOW_WATER`]. Backpressure then reaches the process through the API server.
//! Nothing of it goes upstream: the cluster sees plain v5/v4, kubectl and other clients that
//! do not offer it see no change.

/// The flow-control subprotocol over `v5.channel.k8s.io`.
pub const FLOW_V5: &str = "v5.flow.podterm.dev";
/// The flow-control subprotocol over `v4.channel.k8s.io`.
pub const FLOW_V4: &str = "v4.flow.podterm.dev";
/// The ack channel, client → podterm only.
pub const ACK: u8 = 254;
/// An ack frame's length: the channel byte and a u64.
pub const ACK_FRAME_BYTES: usize = 9;
/// Unacknowledged output above which podterm stops reading the cluster (ttyd pauses at about
/// 1 MB pending, VS Code at 100,000 characters).
pub const HIGH_WATER: u64 = 1 << 20;
/// Unacknowledged output at or below which podterm reads the cluster again: high enough that
/// xterm.js never runs dry while the pipeline refills (lower marks cost the page's bulk
/// throughput; loadtest/README.md, "Flow control").
pub const LOW_WATER: u64 = 512 << 10;

/// The receive buffer of the cluster connection of a session under flow control, in bytes:
/// while podterm waits for acks, what the cluster already sent waits in it, and all of it is
/// shown before the effect of a Ctrl+C.
pub const UPSTREAM_RECEIVE_BUFFER: u32 = 256 << 10;

/// The flow variant of the plain subprotocol `base` (v5 or v4).
pub fn flow_variant(base: &str) -> Option<&'static str> {
    match base {
        super::V5 => Some(FLOW_V5),
        super::V4 => Some(FLOW_V4),
        _ => None,
    }
}

/// The count of an ack frame (channel byte included); `None` if it is not one.
pub fn parse_ack(frame: &[u8]) -> Option<u64> {
    match frame {
        [ACK, count @ ..] => Some(u64::from_be_bytes(count.try_into().ok()?)),
        _ => None,
    }
}

/// An ack frame for `count` bytes processed.
pub fn ack_frame(count: u64) -> [u8; ACK_FRAME_BYTES] {
    let mut frame = [ACK; ACK_FRAME_BYTES];
    frame[1..].copy_from_slice(&count.to_be_bytes());
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_round_trip_and_only_acks_parse() {
        for n in [0, 1, HIGH_WATER, u64::MAX] {
            assert_eq!(parse_ack(&ack_frame(n)), Some(n));
        }
        assert_eq!(parse_ack(&[ACK, 0, 0]), None);
        assert_eq!(parse_ack(&[ACK; 10]), None);
        assert_eq!(parse_ack(&[0, 0, 0, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(parse_ack(&[]), None);
    }

    #[test]
    fn variants_pair_with_their_base() {
        assert_eq!(flow_variant(super::super::V5), Some(FLOW_V5));
        assert_eq!(flow_variant(super::super::V4), Some(FLOW_V4));
        assert_eq!(flow_variant(FLOW_V5), None);
        const { assert!(LOW_WATER < HIGH_WATER) };
    }
}
