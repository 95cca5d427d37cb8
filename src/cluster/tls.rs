//! TLS for the exec upgrade's connection, on rustls' unbuffered API, holding no buffer while the
//! connection is idle.
//!
//! rustls' buffered `ClientConnection` (what tokio-rustls wraps) keeps a zeroed 4 KiB read
//! buffer for the connection's whole life, a quarter of the memory budget of an idle session.
//! Here ciphertext is read onto the stack and its records processed there; only the start of a
//! record that has not all arrived is kept on the heap, until the rest comes. Records waiting
//! for the socket are kept only until it takes them. Like the relay's frame reader
//! (`relay/frames.rs`), an idle connection holds no buffer at all.
//!
//! Plaintext goes straight into the caller's buffer; only what did not fit waits in `plain`.
//! A vectored write of small parts (a frame's header and payload) becomes one record.

#[cfg(any(test, feature = "test-util"))]
pub mod fuzzing;

use std::future::Future as _;
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, BytesMut};
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// Room reserved for one read of ciphertext: four full records (16 KiB of plaintext each)
/// with their headers and tags. One record per read took a syscall per 16 KiB of a bulk
/// stream (a 1 GiB download through the files API went from 0.89 to 0.92–1.0 of kubectl cp
/// with four, loadtest/README.md); the room is on the stack, held only during the read.
const READ_BYTES: usize = 4 * (16 * 1024 + 512);
/// Largest plaintext taken by one write: four full records.
const MAX_WRITE_BYTES: usize = 64 * 1024;
/// Vectored writes up to this size are joined (on the stack) into one record.
const JOIN_BYTES: usize = 1024;
/// Room for a record's header, content type, explicit nonce and tag (TLS 1.2 AES-GCM: 29).
const RECORD_OVERHEAD: usize = 32;
/// Largest plaintext in one record.
const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// A client TLS connection over `IO`.
pub struct TlsStream<IO> {
    io: IO,
    records: Records,
    /// Plaintext decrypted but not yet read (it did not fit the reader's buffer).
    plain: BytesMut,
    /// How much of `records.outgoing` is written to `io`.
    sent: usize,
    /// The peer sent close_notify: reads give EOF.
    read_closed: bool,
    /// close_notify is queued: nothing more may be written.
    write_closed: bool,
    /// `outgoing` holds the handshake's last flight (TLS 1.3: the client's Finished), kept for
    /// the first write so that both go out in one packet.
    flight_held: bool,
    /// A read found the flight held and gave a write in the same turn the chance to take it.
    read_waited: bool,
}

/// The connection's record layer and the ciphertext on either side of it.
struct Records {
    layer: Layer,
    /// Ciphertext read but not yet processed; no allocation while empty.
    incoming: BytesMut,
    /// Records not yet written to `io`; no allocation while empty.
    outgoing: Vec<u8>,
}

/// Who protects the records.
enum Layer {
    /// rustls: the handshake, and the whole connection where it cannot leave rustls.
    Rustls {
        /// Boxed: inline it made the stream 1,128 bytes, just over an allocator class
        /// (1,024), so each connection took 1,280; apart they take 1,024 and 160.
        conn: Box<UnbufferedClientConnection>,
        /// The traffic secrets the handshake logged (`traffic::prepare`).
        secrets: Option<Box<traffic::Secrets>>,
    },
    /// TLS 1.3 after the first application data sent (`traffic.rs`).
    Traffic(Box<traffic::Traffic>),
    /// Moving from one to the other failed.
    Failed,
}

/// What one round of processing came to.
enum Step {
    /// Every whole record is processed; more ciphertext is needed.
    NeedInput,
    /// Plaintext went to the sink.
    Plaintext,
    /// The peer closed its side.
    PeerClosed,
    /// The requested write or close_notify is queued in `outgoing`.
    Queued,
}

/// What a round of processing is asked to queue once the connection can send.
#[derive(Clone, Copy)]
enum Queue<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

/// Opens TLS to `name` over `io` with `config`.
///
/// The handshake's last flight (TLS 1.3: the client's Finished) is held until the first
/// write, flush or read, and goes out with the first write's data in one packet.
pub async fn connect<IO>(
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    io: IO,
) -> io::Result<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let conn = Box::new(UnbufferedClientConnection::new(config, name).map_err(tls_error)?);
    let mut stream = TlsStream {
        io,
        records: Records {
            layer: Layer::Rustls {
                conn,
                secrets: None,
            },
            incoming: BytesMut::new(),
            outgoing: Vec::new(),
        },
        plain: BytesMut::new(),
        sent: 0,
        read_closed: false,
        write_closed: false,
        flight_held: false,
        read_waited: false,
    };
    std::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
    Ok(stream)
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_send(cx))?;
            let plain = &mut self.plain;
            match self
                .records
                .process(&mut |p| plain.extend_from_slice(p), Queue::Nothing)?
            {
                Step::Plaintext | Step::Queued => {}
                Step::PeerClosed => return Poll::Ready(Err(closed_in_handshake())),
                Step::NeedInput => {
                    if !self.records.handshaking() {
                        // Our last flight waits for the first write (the request), to go out
                        // in one packet with it: one send here and one wake-up and read at
                        // the server fewer per connection.
                        self.flight_held = !self.records.outgoing.is_empty();
                        return Poll::Ready(Ok(()));
                    }
                    // What the handshake queued (a hello) goes out first.
                    ready!(self.poll_send(cx))?;
                    if ready!(self.poll_fill(cx))? == 0 {
                        return Poll::Ready(Err(closed_in_handshake()));
                    }
                }
            }
        }
    }

    /// Reads more ciphertext into `incoming` (the handshake, the rest of a record that came in
    /// parts); gives back the buffer if the read would block with nothing buffered. Ready(0)
    /// is EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let incoming = &mut self.records.incoming;
        incoming.reserve(READ_BYTES);
        let read = pin!(self.io.read_buf(incoming)).poll(cx);
        if read.is_pending() && incoming.is_empty() {
            *incoming = BytesMut::new();
        }
        read
    }

    /// Writes `outgoing` to the socket; gives back its buffer once it is all written.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outgoing = &mut self.records.outgoing;
        while self.sent < outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &outgoing[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        *outgoing = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Queues `what` into `outgoing`, keeping for the reader any plaintext processed first;
    /// false if the connection cannot send yet.
    fn queue(&mut self, what: Queue<'_>) -> io::Result<bool> {
        loop {
            let plain = &mut self.plain;
            match self
                .records
                .process(&mut |p| plain.extend_from_slice(p), what)?
            {
                Step::Queued => return Ok(true),
                Step::PeerClosed => self.read_closed = true,
                Step::Plaintext => {}
                Step::NeedInput => return Ok(false),
            }
        }
    }

    /// Encrypts the parts of `bufs` (each queued whole, up to `MAX_WRITE_BYTES` in all) once
    /// earlier records are written, and tries to send them; gives how many bytes it took.
    fn poll_queue(&mut self, cx: &mut Context<'_>, bufs: &[&[u8]]) -> Poll<io::Result<usize>> {
        if !std::mem::take(&mut self.flight_held) {
            ready!(self.poll_send(cx))?;
        }
        if self.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let mut taken = 0;
        for part in bufs {
            let part = &part[..part.len().min(MAX_WRITE_BYTES - taken)];
            if part.is_empty() {
                continue;
            }
            if !self.queue(Queue::Data(part))? {
                return Poll::Ready(Err(io::Error::other("TLS: cannot send")));
            }
            taken += part.len();
        }
        // Accepted; what the socket does not take now goes before the next write or on flush.
        if let Poll::Ready(Err(e)) = self.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }
}

impl Records {
    /// Processes the whole records in `incoming` until plaintext came (given to `sink`), the
    /// peer closed, `send` is queued, or more input is needed.
    fn process(&mut self, sink: &mut dyn FnMut(&[u8]), send: Queue<'_>) -> io::Result<Step> {
        let (step, used) = process(
            &mut self.layer,
            &mut self.outgoing,
            &mut self.incoming,
            sink,
            send,
        )?;
        self.incoming.advance(used);
        if self.incoming.is_empty() {
            self.incoming = BytesMut::new();
        }
        Ok(step)
    }

    fn handshaking(&self) -> bool {
        matches!(&self.layer, Layer::Rustls { conn, .. } if conn.is_handshaking())
    }

    /// rustls' connection, while it has one.
    #[cfg(test)]
    fn rustls(&self) -> Option<&UnbufferedClientConnection> {
        match &self.layer {
            Layer::Rustls { conn, .. } => Some(conn),
            _ => None,
        }
    }

    /// The record layer of podterm's own, once the connection moved to it.
    #[cfg(test)]
    fn traffic(&mut self) -> Option<&mut traffic::Traffic> {
        match &mut self.layer {
            Layer::Traffic(traffic) => Some(traffic),
            _ => None,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flight_before_read(cx))?;
        loop {
            if this.take_plain(buf) || this.read_closed {
                return Poll::Ready(Ok(()));
            }
            let step = ready!(this.poll_records(cx, buf))?;
            if !this.records.outgoing.is_empty() {
                // A reply rustls owes the peer (a key update); it also goes out before the
                // next write.
                if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                    return Poll::Ready(Err(e));
                }
            }
            match step {
                Step::Plaintext => return Poll::Ready(Ok(())),
                Step::PeerClosed => this.read_closed = true,
                Step::Queued => {}
                Step::NeedInput if this.records.incoming.is_empty() => {}
                Step::NeedInput => {
                    if ready!(this.poll_fill(cx))? == 0 {
                        return Poll::Ready(Err(cut_short()));
                    }
                }
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    /// The handshake's last flight, if still here, goes out before a read waits. hyper's client
    /// reads (to see the connection close) before it writes its request: once, give that write
    /// the chance to take the flight along; then send it, since the peer may wait for it.
    fn poll_flight_before_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.flight_held {
            if !std::mem::replace(&mut self.read_waited, true) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.poll_send(cx))?;
            self.flight_held = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Puts plaintext `bytes`, read by a reader that wanted less (the cluster's answer head and
    /// what came behind it), back in front of what is still to be read.
    pub(crate) fn read_ahead(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.plain = crate::tcp::put_back(bytes, &self.plain);
        }
    }

    /// Moves plaintext that waited into `buf`; whether there was any.
    fn take_plain(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.plain.is_empty() {
            return false;
        }
        crate::tcp::drain_into(&mut self.plain, buf);
        true
    }

    /// Processes the records at hand, or reads more and processes those; plaintext goes into
    /// `buf`, what does not fit into `plain`.
    fn poll_records(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<Step>> {
        let plain = &mut self.plain;
        let mut sink = |p: &[u8]| {
            let n = p.len().min(buf.remaining());
            buf.put_slice(&p[..n]);
            plain.extend_from_slice(&p[n..]);
        };
        let records = &mut self.records;
        if !records.incoming.is_empty() {
            return Poll::Ready(records.process(&mut sink, Queue::Nothing));
        }
        // Nothing partly read: read onto the stack and process the records there, so that
        // records that arrive whole (a keystroke's echo) allocate nothing; only the start of a
        // record that did not come whole is kept.
        let mut stack = [MaybeUninit::<u8>::uninit(); READ_BYTES];
        let mut read = ReadBuf::uninit(&mut stack);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        if read.filled().is_empty() {
            return Poll::Ready(Err(cut_short()));
        }
        let input = read.filled_mut();
        let (step, used) = process(
            &mut records.layer,
            &mut records.outgoing,
            input,
            &mut sink,
            Queue::Nothing,
        )?;
        records.incoming.extend_from_slice(&input[used..]);
        Poll::Ready(Ok(step))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_queue(cx, &[buf])
    }

    /// Small writes (a frame's header and payload) are joined into one record; larger ones
    /// become a record (or more) per part, sent together.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total > JOIN_BYTES {
            let mut parts: [&[u8]; 4] = [&[]; 4];
            for (part, buf) in parts.iter_mut().zip(bufs) {
                *part = buf;
            }
            return self.get_mut().poll_queue(cx, &parts);
        }
        let mut joined = [0u8; JOIN_BYTES];
        let mut len = 0;
        for b in bufs {
            joined[len..len + b.len()].copy_from_slice(b);
            len += b.len();
        }
        self.get_mut().poll_queue(cx, &[&joined[..len]])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        this.flight_held = false;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.flight_held = false;
        if !this.write_closed {
            ready!(this.poll_send(cx))?;
            this.queue(Queue::CloseNotify)?;
            this.write_closed = true;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Processes the whole records at the front of `input` until plaintext came (given to `sink`),
/// the peer closed, `send` is queued, or more input is needed; gives how many bytes of `input`
/// are done with. Records the layer owes the peer (handshake, alerts, key updates) are
/// appended to `outgoing`.
///
/// Once a TLS 1.3 connection has sent its first data, rustls gives way to `traffic.rs`.
fn process(
    layer: &mut Layer,
    outgoing: &mut Vec<u8>,
    input: &mut [u8],
    sink: &mut dyn FnMut(&[u8]),
    send: Queue<'_>,
) -> io::Result<(Step, usize)> {
    let (conn, secrets) = match layer {
        Layer::Rustls { conn, secrets } => (conn, secrets),
        Layer::Traffic(traffic) => {
            return match send {
                Queue::Nothing => traffic.open(input, outgoing, sink),
                Queue::Data(data) => traffic
                    .seal_data(data, outgoing)
                    .map(|()| (Step::Queued, 0)),
                Queue::CloseNotify => traffic.close_notify(outgoing).map(|()| (Step::Queued, 0)),
            };
        }
        Layer::Failed => return Err(io::Error::other("TLS: the connection failed before")),
    };
    let (step, used) = if conn.is_handshaking() {
        traffic::capture(secrets, || {
            process_rustls(conn, outgoing, input, sink, send)
        })?
    } else {
        process_rustls(conn, outgoing, input, sink, send)?
    };
    // Right after rustls sealed data nothing of its own waits to go out: not even the answer
    // to a key update the peer asked for, which it keeps unsent (and out of `wants_write`)
    // until the next record it seals.
    if matches!((send, &step), (Queue::Data(_), Step::Queued))
        && traffic::ready(conn, secrets.as_deref())
    {
        let Layer::Rustls { conn, secrets } = std::mem::replace(layer, Layer::Failed) else {
            unreachable!("the layer was rustls' a moment ago");
        };
        let secrets = secrets.expect("ready() saw the secrets");
        *layer = Layer::Traffic(Box::new(traffic::Traffic::new(*conn, *secrets)?));
    }
    Ok((step, used))
}

/// [`process`] while rustls protects the records.
fn process_rustls(
    conn: &mut UnbufferedClientConnection,
    outgoing: &mut Vec<u8>,
    input: &mut [u8],
    sink: &mut dyn FnMut(&[u8]),
    send: Queue<'_>,
) -> io::Result<(Step, usize)> {
    let mut used = 0;
    loop {
        let status = conn.process_tls_records(&mut input[used..]);
        let discard = status.discard;
        let step = match status.state.map_err(tls_error)? {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    sink(record.map_err(tls_error)?.payload);
                }
                Some(Step::Plaintext)
            }
            ConnectionState::EncodeTlsData(mut data) => {
                append(outgoing, 512, |out| {
                    data.encode(out).map_err(|e| match e {
                        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                            Some(required_size)
                        }
                        _ => None,
                    })
                })?;
                None
            }
            ConnectionState::TransmitTlsData(transmit) => {
                // Queued in order in `outgoing`; `poll_send` writes it before anything later.
                transmit.done();
                None
            }
            ConnectionState::PeerClosed | ConnectionState::Closed => Some(Step::PeerClosed),
            ConnectionState::BlockedHandshake => Some(Step::NeedInput),
            ConnectionState::WriteTraffic(mut traffic) => match send {
                Queue::Nothing => Some(Step::NeedInput),
                Queue::Data(data) => {
                    let guess =
                        data.len() + (data.len() / MAX_RECORD_PLAINTEXT + 1) * RECORD_OVERHEAD;
                    append(outgoing, guess, |out| {
                        traffic.encrypt(data, out).map_err(encrypt_needs)
                    })?;
                    Some(Step::Queued)
                }
                Queue::CloseNotify => {
                    append(outgoing, RECORD_OVERHEAD, |out| {
                        traffic.queue_close_notify(out).map_err(encrypt_needs)
                    })?;
                    Some(Step::Queued)
                }
            },
            _ => return Err(io::Error::other("TLS: unexpected connection state")),
        };
        used += discard;
        if let Some(step) = step {
            return Ok((step, used));
        }
    }
}

/// Appends what `write` puts into a slice to `out`: first `guess` bytes of room, then as much
/// as `write` says it needs (`Err(Some(n))`); `Err(None)` is a failure.
fn append(
    out: &mut Vec<u8>,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> io::Result<()> {
    let start = out.len();
    let mut room = guess;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Some(needed)) if needed > room => room = needed,
            Err(_) => {
                out.truncate(start);
                return Err(io::Error::other("TLS: cannot encode a record"));
            }
        }
    }
}

fn encrypt_needs(e: EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(required_size)
        }
        _ => None,
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// EOF without close_notify: the stream may have been cut short.
fn cut_short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "TLS: the peer closed the connection without close_notify",
    )
}

fn closed_in_handshake() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "TLS: the peer closed the connection during the handshake",
    )
}

mod tickets;
mod traffic;
pub use tickets::{TICKETS, Tickets};
pub use traffic::prepare;

#[cfg(test)]
mod tests;
