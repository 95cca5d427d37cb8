//! WebSocket frames as the relay reads and writes them, with no buffer while a socket is idle.
//!
//! fastwebsockets' reader keeps an 8 KiB buffer per socket for the socket's whole life, i.e.
//! 16 KiB per idle session. This reader holds bytes only while a frame is being read, so an
//! idle socket costs one empty `BytesMut`. Between small frames a read goes to the stack first
//! and its bytes are copied to a buffer of their own size: a read that would block costs no
//! allocation, and a keystroke's frame costs one (`tests/relay_frame_costs.rs`). Within a
//! frame, or after a large one, the read reserves room in the buffer and reads into it; when
//! it would block with nothing buffered the room is given back. A complete frame's payload is
//! taken from the buffer (the whole buffer when it holds just that frame) without a copy. All
//! state lives in the reader and a frame is taken from the buffer only when it is returned,
//! so `read_frame` is cancel safe (unlike fastwebsockets').
//!
//! The checks are RFC 6455's (§5.2, §5.5): reserved bits clear, known opcodes, control frames
//! whole and at most 125 bytes, 64-bit lengths below 2^63, frames from a client masked and
//! frames from a server not, text frames valid UTF-8; a payload over the limit is refused from
//! its header, before any of it is read.
//!
//! The writer encodes a frame's header on the stack, masks the payload in place (client role,
//! a fresh key per frame) and writes header and payload in one vectored write; it keeps no
//! buffer either.

use std::future::poll_fn;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use fastwebsockets::{OpCode, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::handoff::BATCH_FRAMES;
use crate::protocol;

/// Room reserved for a read when no frame is partly read (fastwebsockets' buffer size).
pub(super) const READ_BYTES: usize = 8 * 1024;
/// Most room reserved for a read on the strength of the last frame's size.
const MAX_READ_HINT_BYTES: usize = 256 * 1024 + MAX_HEADER_BYTES;
/// Most room reserved for a read of several large frames (a writer's batch of 64 KiB frames).
const MAX_READ_BATCH_BYTES: usize = BATCH_FRAMES * (64 * 1024 + MAX_HEADER_BYTES);
/// Longest frame header: 2 bytes, a 64-bit length, a mask key.
const MAX_HEADER_BYTES: usize = 14;
/// Largest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL_BYTES: usize = 125;

/// A frame on its way to a socket, owned and unmasked: the writer of a client-role socket
/// masks it with a fresh key, a server-role writer sends it as is.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) fin: bool,
    pub(super) opcode: OpCode,
    pub(super) payload: BytesMut,
}

impl Outgoing {
    pub(super) fn new(fin: bool, opcode: OpCode, payload: BytesMut) -> Outgoing {
        Outgoing {
            fin,
            opcode,
            payload,
        }
    }

    pub(super) fn pong(payload: BytesMut) -> Outgoing {
        Outgoing::new(true, OpCode::Pong, payload)
    }

    pub(super) fn ping() -> Outgoing {
        Outgoing::new(true, OpCode::Ping, BytesMut::new())
    }

    /// A close frame with `code` and as much of `reason` as fits (whole characters).
    pub(super) fn close(code: u16, reason: &str) -> Outgoing {
        let reason = protocol::truncate_utf8(reason, protocol::MAX_CLOSE_REASON_BYTES);
        let mut payload = BytesMut::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        Outgoing::new(true, OpCode::Close, payload)
    }
}

/// Writes frames to one socket (or one half of it) in the given role.
pub(super) struct FrameWriter<W> {
    io: W,
    role: Role,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(super) fn new(io: W, role: Role) -> Self {
        FrameWriter { io, role }
    }

    /// Writes one frame (not flushed).
    pub(super) async fn write(&mut self, mut out: Outgoing) -> io::Result<()> {
        let mut header = [0u8; MAX_HEADER_BYTES];
        let len = encode(self.role, &mut header, &mut out);
        let mut frame = Buf::chain(&header[..len], &out.payload[..]);
        self.io.write_all_buf(&mut frame).await
    }

    /// Writes frames (up to [`BATCH_FRAMES`]; a `None` is skipped) in one vectored write, as
    /// far as the socket takes it (not flushed).
    pub(super) async fn write_frames(&mut self, frames: &mut [Option<Outgoing>]) -> io::Result<()> {
        let n = frames.len().min(BATCH_FRAMES);
        let mut buf = Frames::new(&mut frames[..n], self.role);
        self.io.write_all_buf(&mut buf).await
    }

    /// Writes one whole binary message, `channel` then `data`, from borrowed bytes (server
    /// role: nothing to mask, so output kept for a resume is written without a copy).
    pub(super) async fn write_message(&mut self, channel: u8, data: &[u8]) -> io::Result<()> {
        debug_assert!(self.role == Role::Server, "only a server writes unmasked");
        let mut header = [0u8; MAX_HEADER_BYTES];
        let len = encode_header(&mut header, true, OpCode::Binary, 1 + data.len(), None);
        let channel = [channel];
        let mut frame = Buf::chain(Buf::chain(&header[..len], &channel[..]), data);
        self.io.write_all_buf(&mut frame).await
    }

    pub(super) async fn flush(&mut self) -> io::Result<()> {
        self.io.flush().await
    }
}

/// Frames' headers and payloads as one [`Buf`]: the writer hands them to the socket in one
/// vectored write. The headers are encoded (and the payloads masked) when it is made.
struct Frames<'a> {
    headers: [[u8; MAX_HEADER_BYTES]; BATCH_FRAMES],
    header_lens: [u8; BATCH_FRAMES],
    frames: &'a [Option<Outgoing>],
    /// The part being written: header `part / 2`, or payload `part / 2` when odd.
    part: usize,
    /// Bytes of that part already written.
    offset: usize,
    remaining: usize,
}

impl<'a> Frames<'a> {
    /// At most [`BATCH_FRAMES`] frames.
    fn new(frames: &'a mut [Option<Outgoing>], role: Role) -> Self {
        let mut headers = [[0u8; MAX_HEADER_BYTES]; BATCH_FRAMES];
        let mut header_lens = [0u8; BATCH_FRAMES];
        let mut remaining = 0;
        for (i, out) in frames.iter_mut().enumerate() {
            let Some(out) = out else { continue };
            let len = encode(role, &mut headers[i], out);
            header_lens[i] = len as u8;
            remaining += len + out.payload.len();
        }
        let mut buf = Frames {
            headers,
            header_lens,
            frames,
            part: 0,
            offset: 0,
            remaining,
        };
        buf.skip_written();
        buf
    }

    fn part(&self, i: usize) -> &[u8] {
        match self.frames.get(i / 2) {
            Some(Some(_)) if i % 2 == 0 => &self.headers[i / 2][..self.header_lens[i / 2] as usize],
            Some(Some(out)) => &out.payload,
            _ => &[],
        }
    }

    /// Moves past parts written whole (and empty ones), so that `chunk` is never empty while
    /// bytes remain.
    fn skip_written(&mut self) {
        while self.part < 2 * self.frames.len() && self.offset == self.part(self.part).len() {
            self.part += 1;
            self.offset = 0;
        }
    }
}

impl Buf for Frames<'_> {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        &self.part(self.part)[self.offset..]
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advanced past the end");
        self.remaining -= cnt;
        while cnt > 0 {
            let step = cnt.min(self.part(self.part).len() - self.offset);
            self.offset += step;
            cnt -= step;
            self.skip_written();
        }
    }

    fn chunks_vectored<'b>(&'b self, dst: &mut [io::IoSlice<'b>]) -> usize {
        let mut n = 0;
        let mut offset = self.offset;
        for i in self.part..2 * self.frames.len() {
            if n == dst.len() {
                break;
            }
            let part = &self.part(i)[offset..];
            offset = 0;
            if !part.is_empty() {
                dst[n] = io::IoSlice::new(part);
                n += 1;
            }
        }
        n
    }
}

/// Encodes `out`'s header into `header` and masks its payload in the client role (a fresh key
/// per frame); returns the header's length.
fn encode(role: Role, header: &mut [u8; MAX_HEADER_BYTES], out: &mut Outgoing) -> usize {
    let mask = (role == Role::Client).then(rand::random::<[u8; 4]>);
    if let Some(mask) = mask {
        // Masking and unmasking are the same XOR.
        fastwebsockets::unmask(&mut out.payload, mask);
    }
    encode_header(header, out.fin, out.opcode, out.payload.len(), mask)
}

/// Writes `out`'s header into `header`; returns its length.
fn encode_header(
    header: &mut [u8; MAX_HEADER_BYTES],
    fin: bool,
    opcode: OpCode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) -> usize {
    header[0] = if fin { 0x80 } else { 0 } | opcode as u8;
    let masked = if mask.is_some() { 0x80 } else { 0 };
    let mut len = match payload_len {
        0..=125 => {
            header[1] = masked | payload_len as u8;
            2
        }
        126..=0xffff => {
            header[1] = masked | 126;
            header[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        }
        _ => {
            header[1] = masked | 127;
            header[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        }
    };
    if let Some(mask) = mask {
        header[len..len + 4].copy_from_slice(&mask);
        len += 4;
    }
    len
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the connection without a close frame.
    #[error("unexpected EOF")]
    Eof,
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The frame's payload is over the limit.
    #[error("frame too large")]
    TooLarge,
    /// The peer broke the WebSocket framing rules.
    #[error("{0}")]
    Protocol(&'static str),
}

/// Reads frames from one socket (or one half of it) in the given role.
pub(super) struct FrameReader<R> {
    io: R,
    role: Role,
    max_payload: usize,
    /// Bytes read and not yet returned as frames; no allocation when empty and idle.
    buf: BytesMut,
    /// Length of the last frame returned (capped): room reserved for the next read, so that a
    /// stream of large frames reads each into one allocation without growing it.
    last_frame_len: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of frames whose payloads are at most `max_payload` bytes.
    pub(super) fn new(io: R, role: Role, max_payload: usize) -> Self {
        FrameReader {
            io,
            role,
            max_payload,
            buf: BytesMut::new(),
            last_frame_len: 0,
        }
    }

    /// The next frame, unmasked. Cancel safe.
    pub(super) async fn read_frame(&mut self) -> Result<Outgoing, ReadError> {
        poll_fn(|cx| self.poll_frame(cx)).await
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Outgoing, ReadError>> {
        loop {
            let missing = match parse(&mut self.buf, self.role, self.max_payload)? {
                Parsed::Frame(out, len) => {
                    self.last_frame_len = len.min(MAX_READ_HINT_BYTES);
                    if self.buf.is_empty() {
                        // Let go of the read's allocation; the payload keeps what it needs.
                        self.buf = BytesMut::new();
                    }
                    return Poll::Ready(Ok(out));
                }
                Parsed::Missing(missing) => missing,
            };
            if self.buf.is_empty() && self.last_frame_len < READ_BYTES {
                // Between small frames (typing, prompts) the read goes to the stack first: a
                // read that would block then costs no allocation, and a frame that comes gets
                // one of its own size rather than the reserve below.
                std::task::ready!(self.read_to_stack(cx))?;
                continue;
            }
            // Large frames are read several to a read, into one allocation: the buffer gets
            // room for the frame in progress and whole frames of the last one's size behind
            // it, up to a batch's worth, and each frame read whole is split off its front
            // without a copy. While the allocation has room for the rest of the frame in
            // progress, the read goes there, up to its end; only a frame that does not fit is
            // copied to the next allocation (bytes' `reserve` on a buffer shared with a
            // payload). Otherwise: one ordinary read's worth, or the batch's if larger.
            let spare = self.buf.capacity() - self.buf.len();
            let rest = if missing >= READ_BYTES {
                missing - MAX_HEADER_BYTES
            } else {
                missing
            };
            let (reserve, limit) = if spare >= rest {
                (0, spare)
            } else if missing >= READ_BYTES {
                let room = rest + self.frames_behind(rest);
                (room, room)
            } else {
                (
                    missing.max(READ_BYTES).max(self.frames_behind(0)),
                    usize::MAX,
                )
            };
            self.buf.reserve(reserve);
            let read = {
                let mut limited = bytes::BufMut::limit(&mut self.buf, limit);
                let read = pin!(self.io.read_buf(&mut limited));
                read.poll(cx)
            };
            match read {
                Poll::Pending => {
                    if self.buf.is_empty() {
                        self.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(ReadError::Eof)),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
            }
        }
    }

    /// Room for whole frames of the last frame's size after `rest` bytes, so that a read
    /// ends where a frame does: a batch's worth ([`BATCH_FRAMES`], [`MAX_READ_BATCH_BYTES`]).
    fn frames_behind(&self, rest: usize) -> usize {
        let frame = self.last_frame_len;
        if frame < READ_BYTES {
            return 0;
        }
        let whole = (MAX_READ_BATCH_BYTES.saturating_sub(rest) / frame).min(BATCH_FRAMES);
        whole * frame
    }

    /// One read into a buffer on the stack, its bytes then copied to `buf` (empty before).
    fn read_to_stack(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ReadError>> {
        // Not zeroed: filling 8 KiB for every read would cost more than the read.
        let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); READ_BYTES];
        let mut read = ReadBuf::uninit(&mut stack);
        match Pin::new(&mut self.io).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Err(ReadError::Eof)),
            Poll::Ready(Ok(())) => {
                self.buf.extend_from_slice(read.filled());
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// What the buffer holds.
enum Parsed {
    /// A whole frame, taken off the buffer, and its length on the wire.
    Frame(Outgoing, usize),
    /// This many more bytes are needed, at least, to finish the frame begun in the buffer.
    Missing(usize),
}

/// A frame's header, checked.
struct Header {
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
    payload_len: usize,
}

/// Takes one whole frame off the front of `buf`, or says how many bytes are missing.
fn parse(buf: &mut BytesMut, role: Role, max_payload: usize) -> Result<Parsed, ReadError> {
    let header = match parse_header(buf, role, max_payload)? {
        Ok(header) => header,
        Err(missing) => return Ok(Parsed::Missing(missing)),
    };
    let frame_len = header.len + header.payload_len;
    if buf.len() < frame_len {
        return Ok(Parsed::Missing(frame_len - buf.len() + MAX_HEADER_BYTES));
    }
    buf.advance(header.len);
    // The usual read holds exactly one frame: the payload takes the whole buffer. Splitting it
    // would make the buffer shared, one more allocation (and free) for every frame.
    let mut payload = if buf.len() == header.payload_len {
        std::mem::take(buf)
    } else {
        buf.split_to(header.payload_len)
    };
    if let Some(mask) = header.mask {
        fastwebsockets::unmask(&mut payload, mask);
    }
    if header.opcode == OpCode::Text && header.fin && std::str::from_utf8(&payload).is_err() {
        return Err(ReadError::Protocol("invalid UTF-8 in a text frame"));
    }
    Ok(Parsed::Frame(
        Outgoing::new(header.fin, header.opcode, payload),
        frame_len,
    ))
}

/// The header at the front of `buf` (RFC 6455 §5.2, §5.5), or how many bytes it still needs.
fn parse_header(
    buf: &[u8],
    role: Role,
    max_payload: usize,
) -> Result<Result<Header, usize>, ReadError> {
    if buf.len() < 2 {
        return Ok(Err(2 - buf.len()));
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    if b0 & 0x70 != 0 {
        return Err(ReadError::Protocol("reserved bits set"));
    }
    let opcode = OpCode::try_from(b0 & 0x0f).map_err(|_| ReadError::Protocol("unknown opcode"))?;
    let masked = b1 & 0x80 != 0;
    match role {
        Role::Server if !masked => return Err(ReadError::Protocol("unmasked frame from a client")),
        Role::Client if masked => return Err(ReadError::Protocol("masked frame from a server")),
        _ => {}
    }
    let length_bytes = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let len = 2 + length_bytes + if masked { 4 } else { 0 };
    if buf.len() < len {
        return Ok(Err(len - buf.len()));
    }
    let payload_len = match length_bytes {
        0 => u64::from(b1 & 0x7f),
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        _ => {
            let n = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
            if n >> 63 != 0 {
                return Err(ReadError::Protocol("64-bit length with its top bit set"));
            }
            n
        }
    };
    let control = matches!(opcode, OpCode::Close | OpCode::Ping | OpCode::Pong);
    if control && !fin {
        return Err(ReadError::Protocol("fragmented control frame"));
    }
    if control && payload_len > MAX_CONTROL_BYTES as u64 {
        return Err(ReadError::Protocol("control frame over 125 bytes"));
    }
    if payload_len > max_payload as u64 {
        return Err(ReadError::TooLarge);
    }
    let mask = masked.then(|| [buf[len - 4], buf[len - 3], buf[len - 2], buf[len - 1]]);
    Ok(Ok(Header {
        fin,
        opcode,
        mask,
        len,
        payload_len: payload_len as usize,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastwebsockets::{Frame, Payload, WebSocket};
    use tokio::io::AsyncWriteExt;

    fn reader(bytes: &[u8], role: Role, max: usize) -> FrameReader<&[u8]> {
        FrameReader::new(bytes, role, max)
    }

    async fn encode(frames: Vec<Frame<'static>>, role: Role) -> Vec<u8> {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut ws = WebSocket::after_handshake(a, role);
        ws.set_writev(false);
        for frame in frames {
            ws.write_frame(frame).await.unwrap();
        }
        drop(ws);
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.unwrap();
        out
    }

    fn binary(payload: &[u8]) -> Frame<'static> {
        Frame::binary(Payload::Owned(payload.to_vec()))
    }

    #[tokio::test]
    async fn reads_what_fastwebsockets_writes_in_both_roles() {
        let big = vec![7u8; 70_000];
        for (writer, reader_role) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
            let bytes = encode(
                vec![
                    binary(b"\x00a"),
                    binary(&big),
                    binary(&[1u8; 300]),
                    Frame::text(Payload::Owned("é".into())),
                    Frame::new(
                        false,
                        OpCode::Binary,
                        None,
                        Payload::Owned(b"\x00x".to_vec()),
                    ),
                    Frame::new(
                        true,
                        OpCode::Continuation,
                        None,
                        Payload::Owned(b"y".to_vec()),
                    ),
                    Frame::close(1000, b"bye"),
                ],
                writer,
            )
            .await;
            let mut rx = reader(&bytes, reader_role, 1 << 20);
            let mut seen = Vec::new();
            loop {
                let out = rx.read_frame().await.unwrap();
                let done = out.opcode == OpCode::Close;
                seen.push((out.fin, out.opcode, out.payload.to_vec()));
                if done {
                    break;
                }
            }
            assert_eq!(seen[0], (true, OpCode::Binary, b"\x00a".to_vec()));
            assert_eq!(seen[1].2, big);
            assert_eq!(seen[2].2, vec![1u8; 300]);
            assert_eq!(seen[3], (true, OpCode::Text, "é".as_bytes().to_vec()));
            assert_eq!(seen[4], (false, OpCode::Binary, b"\x00x".to_vec()));
            assert_eq!(seen[5], (true, OpCode::Continuation, b"y".to_vec()));
            assert_eq!(seen[6].2, b"\x03\xe8bye".to_vec());
            assert!(matches!(rx.read_frame().await, Err(ReadError::Eof)));
        }
    }

    #[tokio::test]
    async fn a_large_frame_is_read_to_its_end_and_no_further() {
        // Two large frames back to back, all of them readable at once: the first frame's rest
        // is read up to its end, so nothing of the second is left behind its payload (to be
        // copied by the next read's reserve).
        let first = vec![1u8; 100_000];
        let second = vec![2u8; 50_000];
        let bytes = encode(vec![binary(&first), binary(&second)], Role::Server).await;
        let mut rx = reader(&bytes, Role::Client, 1 << 20);
        let frame = rx.read_frame().await.unwrap();
        assert_eq!(frame.payload.len(), first.len());
        assert!(rx.buf.is_empty(), "{} bytes left behind", rx.buf.len());
        let frame = rx.read_frame().await.unwrap();
        assert_eq!(&frame.payload[..], &second[..]);
        assert!(matches!(rx.read_frame().await, Err(ReadError::Eof)));
    }

    /// Counts the reads that brought bytes.
    struct CountedReads<'a> {
        bytes: &'a [u8],
        reads: usize,
    }

    impl AsyncRead for CountedReads<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            let polled = Pin::new(&mut self.bytes).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.reads += 1;
            }
            polled
        }
    }

    #[tokio::test]
    async fn a_flood_of_large_frames_is_read_a_batch_at_a_time_without_copies() {
        // 64 KiB of stdout a frame, as the kubelet and the dev cluster's flood send it.
        let payloads: Vec<Vec<u8>> = (0..13u8).map(|i| vec![i; 64 * 1024 + 1]).collect();
        let bytes = encode(payloads.iter().map(|p| binary(p)).collect(), Role::Server).await;
        let mut rx = FrameReader::new(
            CountedReads {
                bytes: &bytes,
                reads: 0,
            },
            Role::Client,
            1 << 20,
        );
        let mut starts = Vec::new();
        for payload in &payloads {
            let frame = rx.read_frame().await.unwrap();
            assert_eq!(&frame.payload[..], &payload[..]);
            starts.push(frame.payload.as_ptr() as usize);
        }
        assert!(matches!(rx.read_frame().await, Err(ReadError::Eof)));
        // The first frame as a small one would be (8 KiB to the stack, then its rest); then
        // three reads of four frames each.
        assert_eq!(rx.io.reads, 2 + 3);
        // The four frames of a read lie one after the other in its allocation: split off, not
        // copied.
        for batch in starts[1..].chunks(4) {
            for pair in batch.windows(2) {
                assert_eq!(pair[1] - pair[0], 64 * 1024 + 1 + 10);
            }
        }
    }

    #[tokio::test]
    async fn bytes_arriving_one_at_a_time_make_the_same_frames() {
        let bytes = encode(
            vec![binary(b"\x00hello"), binary(&[9u8; 1000])],
            Role::Client,
        )
        .await;
        let (mut tx, rx) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            for b in bytes {
                tx.write_all(&[b]).await.unwrap();
            }
        });
        let mut rx = FrameReader::new(rx, Role::Server, 1 << 20);
        assert_eq!(&rx.read_frame().await.unwrap().payload[..], b"\x00hello");
        assert_eq!(
            &rx.read_frame().await.unwrap().payload[..],
            &[9u8; 1000][..]
        );
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer_and_survives_cancellation() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut rx = FrameReader::new(rx, Role::Client, 1024);
        // Nothing to read: the read is pending and gives its room back.
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), rx.read_frame());
        assert!(pending.await.is_err());
        assert_eq!(rx.buf.capacity(), 0);
        // Half a frame, then a cancelled read, then the rest: nothing is lost.
        tx.write_all(&[0x82, 3, 0]).await.unwrap();
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), rx.read_frame());
        assert!(pending.await.is_err());
        assert_eq!(&rx.buf[..], &[0x82, 3, 0]);
        tx.write_all(&[1, 2]).await.unwrap();
        assert_eq!(&rx.read_frame().await.unwrap().payload[..], &[0, 1, 2]);
        assert_eq!(rx.buf.capacity(), 0);
    }

    #[tokio::test]
    async fn breaking_the_framing_rules_is_an_error() {
        let cases: &[(&[u8], Role, &str)] = &[
            (&[0xc2, 0x80, 0, 0, 0, 0], Role::Server, "reserved bits set"),
            (&[0x83, 0x80, 0, 0, 0, 0], Role::Server, "unknown opcode"),
            (
                &[0x82, 0x01, 0],
                Role::Server,
                "unmasked frame from a client",
            ),
            (
                &[0x82, 0x81, 0, 0, 0, 0, 0],
                Role::Client,
                "masked frame from a server",
            ),
            (&[0x09, 0x00], Role::Client, "fragmented control frame"),
            (
                &[0x89, 126, 0, 126],
                Role::Client,
                "control frame over 125 bytes",
            ),
            (
                &[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0],
                Role::Client,
                "64-bit length",
            ),
            (&[0x81, 0x02, 0xc3, 0x28], Role::Client, "invalid UTF-8"),
        ];
        for (bytes, role, want) in cases {
            match reader(bytes, *role, 1 << 20).read_frame().await {
                Err(ReadError::Protocol(why)) => assert!(why.starts_with(want), "{why} vs {want}"),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_payload_over_the_limit_is_refused_from_its_header() {
        // 100 bytes announced, limit 99, none of the payload sent.
        let mut rx = reader(&[0x82, 100], Role::Client, 99);
        assert!(matches!(rx.read_frame().await, Err(ReadError::TooLarge)));
        let mut rx = reader(
            &[0x82, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            Role::Client,
            99,
        );
        assert!(matches!(rx.read_frame().await, Err(ReadError::TooLarge)));
        // Exactly at the limit passes.
        let mut bytes = vec![0x82, 99];
        bytes.extend([5u8; 99]);
        assert_eq!(
            reader(&bytes, Role::Client, 99)
                .read_frame()
                .await
                .unwrap()
                .payload
                .len(),
            99
        );
    }

    #[tokio::test]
    async fn what_the_writer_writes_fastwebsockets_reads_in_both_roles() {
        for (role, peer) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
            // A small pipe: the vectored writes of a batch go out in pieces, some ending
            // inside a header.
            let (a, b) = tokio::io::duplex(1000);
            let sizes = [0usize, 1, 125, 126, 65_535, 65_536, 200_000];
            let write = async move {
                let mut tx = FrameWriter::new(a, role);
                let mut frames: Vec<Option<Outgoing>> = sizes
                    .iter()
                    .map(|&n| {
                        let payload = BytesMut::from(&vec![n as u8; n][..]);
                        Some(Outgoing::new(n != 1, OpCode::Binary, payload))
                    })
                    .collect();
                frames.push(Some(Outgoing::ping()));
                // One frame alone, a batch of four, then three with a gap (a `None`).
                let (one, rest) = frames.split_at_mut(1);
                let (four, rest) = rest.split_at_mut(4);
                tx.write_frames(one).await.unwrap();
                tx.write_frames(four).await.unwrap();
                let mut three = [rest[0].take(), None, rest[1].take(), rest[2].take()];
                tx.write_frames(&mut three).await.unwrap();
                tx.write(Outgoing::close(1001, &"é".repeat(100)))
                    .await
                    .unwrap();
                tx.flush().await.unwrap();
                tx
            };
            let read = async move {
                let mut ws = WebSocket::after_handshake(b, peer);
                ws.set_auto_pong(false);
                ws.set_auto_close(false);
                for &n in &sizes {
                    let frame = ws.read_frame().await.unwrap();
                    assert_eq!((frame.fin, frame.opcode), (n != 1, OpCode::Binary));
                    assert_eq!(&frame.payload[..], &vec![n as u8; n][..], "{n} bytes");
                }
                assert_eq!(ws.read_frame().await.unwrap().opcode, OpCode::Ping);
                let close = ws.read_frame().await.unwrap();
                assert_eq!(close.opcode, OpCode::Close);
                assert_eq!(&close.payload[..2], &1001u16.to_be_bytes());
                // Cut to 125 bytes on a character boundary: 61 two-byte characters.
                assert_eq!(close.payload.len(), 2 + 122);
                assert!(std::str::from_utf8(&close.payload[2..]).is_ok());
            };
            let (_tx, ()) = tokio::join!(write, read);
        }
    }

    #[test]
    fn a_batch_as_one_buffer_gives_every_byte_once() {
        let frame = |payload: &[u8]| Some(Outgoing::new(true, OpCode::Binary, payload.into()));
        let mut frames = [frame(b""), None, frame(b"abc")];
        let mut buf = Frames::new(&mut frames, Role::Server);
        assert_eq!(buf.remaining(), 2 + 2 + 3);
        let vectored = |buf: &Frames<'_>| {
            let mut slices = [io::IoSlice::new(&[]); 8];
            let n = buf.chunks_vectored(&mut slices);
            slices[..n].iter().map(|s| s.to_vec()).collect::<Vec<_>>()
        };
        let empty = vec![0x82, 0];
        let abc = vec![0x82, 3];
        assert_eq!(
            vectored(&buf),
            [empty.clone(), abc.clone(), b"abc".to_vec()]
        );
        // Bytes taken one at a time, then across parts at once.
        buf.advance(1);
        assert_eq!(buf.chunk(), &[0]);
        buf.advance(2);
        assert_eq!(buf.chunk(), &[3]);
        assert_eq!(vectored(&buf), [vec![3], b"abc".to_vec()]);
        buf.advance(2);
        assert_eq!(buf.chunk(), b"bc");
        buf.advance(2);
        assert!(!buf.has_remaining());
        assert!(buf.chunk().is_empty());
        assert_eq!(vectored(&buf), Vec::<Vec<u8>>::new());
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_eof() {
        let mut rx = reader(&[0x82, 10, 1, 2], Role::Client, 1024);
        assert!(matches!(rx.read_frame().await, Err(ReadError::Eof)));
    }
}
