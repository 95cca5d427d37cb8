//! The properties the relay's frame reader and writer keep on hostile bytes, as plain
//! functions for the fuzz targets (fuzz/) and the seeded runs of the normal suite
//! (tests/protocol_fuzz.rs). Built with the `test-util` feature.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use fastwebsockets::{OpCode, Role};
use tokio::io::{AsyncRead, ReadBuf};

use super::frames::{FrameReader, FrameWriter, Outgoing, ReadError};

use crate::testing::block_on;

/// Largest payload the readers under test take, small so that the limit is reached.
const MAX_PAYLOAD: usize = 1024;

/// `data` read as a socket's bytes: the first byte picks the role and how the stream is cut
/// into reads (some of which are "not ready yet"); the rest is the stream. Checks that:
/// - the frames and the final error are the same however the stream is cut;
/// - every frame keeps RFC 6455's rules (sizes, control frames whole, text valid UTF-8);
/// - a frame written again by the relay's writer (remasked toward the cluster, as is) and
///   read back is the same frame.
pub fn frames(data: &[u8]) {
    let Some((&how, stream)) = data.split_first() else {
        return;
    };
    let role = if how & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let whole = read_all(Fragments::whole(stream), role);
    let cut = read_all(Fragments::cut(stream, how >> 1), role);
    assert_eq!(whole.0, cut.0, "frames differ with the stream cut up");
    assert_eq!(whole.1, cut.1, "the end differs with the stream cut up");
    for frame in &whole.0 {
        check_frame(frame);
        assert_eq!(
            &round_trip(frame, role),
            frame,
            "a frame changed on the way"
        );
    }
}

/// A frame as compared: fin, opcode and payload.
type Seen = (bool, u8, Vec<u8>);

fn seen(out: &Outgoing) -> Seen {
    (out.fin, out.opcode as u8, out.payload.to_vec())
}

fn check_frame((fin, opcode, payload): &Seen) {
    assert!(payload.len() <= MAX_PAYLOAD, "a payload over the limit");
    let control = matches!(*opcode, 0x8..=0xA);
    if control {
        assert!(
            *fin && payload.len() <= 125,
            "a control frame cut or too long"
        );
    }
    if *opcode == OpCode::Text as u8 && *fin {
        assert!(
            std::str::from_utf8(payload).is_ok(),
            "a text frame not UTF-8"
        );
    }
}

/// Every frame `io` yields and how the stream ended.
fn read_all(io: Fragments, role: Role) -> (Vec<Seen>, String) {
    let mut reader = FrameReader::new(io, role, MAX_PAYLOAD);
    let mut frames = Vec::new();
    loop {
        match block_on(reader.read_frame()) {
            Ok(out) => frames.push(seen(&out)),
            Err(ReadError::Io(e)) => panic!("the test stream never fails: {e}"),
            Err(end) => return (frames, end.to_string()),
        }
    }
}

/// `frame`, read in `role`, written by the writer of the relay's other side and read back by
/// a reader in the same role as the original.
fn round_trip(frame: &Seen, role: Role) -> Seen {
    let (fin, opcode, payload) = frame;
    let opcode = OpCode::try_from(*opcode).expect("read frames have known opcodes");
    let out = Outgoing::new(*fin, opcode, BytesMut::from(&payload[..]));
    // A frame read from a client (server role) goes to the cluster masked (client role).
    let writer_role = match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let mut wire = Vec::new();
    block_on(FrameWriter::new(&mut wire, writer_role).write(out)).expect("writes to a Vec");
    let (mut back, end) = read_all(Fragments::whole(&wire), role);
    assert_eq!(end, ReadError::Eof.to_string());
    assert_eq!(back.len(), 1, "one frame written, one read");
    back.remove(0)
}

/// A stream in reads of given sizes; `None` is a read that is not ready yet.
struct Fragments {
    reads: VecDeque<Option<Vec<u8>>>,
}

impl Fragments {
    fn whole(stream: &[u8]) -> Fragments {
        Fragments {
            reads: VecDeque::from([Some(stream.to_vec())]),
        }
    }

    /// Reads of 1 to 64 bytes in a pattern picked by `seed`, every third one not ready first.
    fn cut(stream: &[u8], seed: u8) -> Fragments {
        let mut reads = VecDeque::new();
        let mut rest = stream;
        let mut i = 0usize;
        while !rest.is_empty() {
            let size = 1 + (usize::from(seed) * 7 + i * 13) % 64;
            let (read, after) = rest.split_at(size.min(rest.len()));
            if i % 3 == 1 {
                reads.push_back(None);
            }
            reads.push_back(Some(read.to_vec()));
            rest = after;
            i += 1;
        }
        Fragments { reads }
    }
}

impl AsyncRead for Fragments {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.reads.pop_front() {
            None => Poll::Ready(Ok(())),
            Some(None) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Some(mut read)) => {
                let n = read.len().min(buf.remaining());
                buf.put_slice(&read[..n]);
                if n < read.len() {
                    self.reads.push_front(Some(read.split_off(n)));
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}
