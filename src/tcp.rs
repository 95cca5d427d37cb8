//! TCP streams as podterm's two sides use them: the write side ends when the stream closes,
//! a connection from a client is read whole at once, the first time, and the relay reads and
//! writes a stream at once without a lock.
//!
//! **No shutdown.** Everywhere podterm ends the write side of a TCP stream it drops the stream
//! at once: hyper after a last response (`Connection: close`, a drain), the relay after both
//! closing handshakes (`relay::run`), a resumed or watching connection after its close frame.
//! `close()` sends the same FIN as `shutdown(SHUT_WR)` when nothing is left unread (and a RST
//! either way when something is), so the shutdown was one syscall, and one more trip through
//! the TCP stack, per socket for nothing: two per session. nginx closes its proxied sockets
//! the same way. A TLS stream over this one still sends its close_notify in its own shutdown.
//!
//! **One first read.** The server reads a client's first bytes itself ([`Stream::read_first`])
//! to answer an exec upgrade without hyper (`crate::server`'s direct exec), and puts back what
//! it leaves to hyper ([`Stream::read_ahead`]). On the internal listener, which hyper serves
//! from the start, hyper-util's automatic HTTP/1-or-2 server reads the first 24 bytes on their
//! own, to compare them with HTTP/2's preface: there the first read takes
//! [`FIRST_READ_BYTES`] whatever is asked, on the stack, and keeps what the reader did not take
//! (on the heap, until taken), so that a request in one segment is one `recvfrom`.
//!
//! **Split without a lock.** The relay's reader and writer of a socket run in one task.
//! tokio's generic `io::split` puts a stream behind an `Arc` and a mutex taken at every read
//! and write; a plain stream is split here through shared references to its socket
//! ([`Stream::split`], [`Halves`]), as tokio's `TcpStream::split` does. Only TLS and hyper's
//! upgraded connections, whose reads and writes share one state, still take the lock.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_util::either::Either;

/// The least the first read of a client's connection asks for: a whole request head as
/// browsers and kubectl send them (hyper reads on when one is longer).
pub const FIRST_READ_BYTES: usize = 4 * 1024;

/// A TCP stream whose `poll_shutdown` does nothing (the FIN goes out when it is dropped).
#[derive(Debug)]
pub struct Stream {
    io: TcpStream,
    ahead: Ahead,
}

/// What a [`Stream`]'s reads take before its socket's own reads, kept with the stream and
/// borrowed by its [`ReadPart`].
#[derive(Debug, Default)]
struct Ahead {
    /// The first read is still to come and reads [`FIRST_READ_BYTES`] at least.
    first: bool,
    /// Bytes of the first read that the reader did not take yet (boxed: the stream sits in
    /// every upstream TLS stream, whose size is just at an allocator class).
    unread: Option<Box<BytesMut>>,
}

/// Moves as much of `kept` as fits into `buf`; once `kept` is empty its allocation goes too.
/// Bytes read ahead and held for a reader, here and in the cluster's TLS stream's plaintext.
pub(crate) fn drain_into(kept: &mut BytesMut, buf: &mut ReadBuf<'_>) {
    let n = kept.len().min(buf.remaining());
    buf.put_slice(&kept.split_to(n));
    if kept.is_empty() {
        *kept = BytesMut::new();
    }
}

/// `front` followed by `kept`: bytes a reader puts back ahead of what was already held for it.
/// Here and in the cluster's TLS stream's plaintext.
pub(crate) fn put_back(front: &[u8], kept: &[u8]) -> BytesMut {
    let mut joined = BytesMut::with_capacity(front.len() + kept.len());
    joined.extend_from_slice(front);
    joined.extend_from_slice(kept);
    joined
}

impl Stream {
    /// A connection podterm made (to the cluster).
    pub fn connected(io: TcpStream) -> Stream {
        Stream {
            io,
            ahead: Ahead::default(),
        }
    }

    /// A connection a client made: its first read is [`FIRST_READ_BYTES`] at least.
    pub fn accepted(io: TcpStream) -> Stream {
        Stream {
            io,
            ahead: Ahead {
                first: true,
                unread: None,
            },
        }
    }

    /// Puts `bytes`, read from this stream by a reader that wanted less (the cluster's answer
    /// head and what came behind it), back in front of what is still to be read.
    pub(crate) fn read_ahead(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let kept = self.ahead.unread.take().unwrap_or_default();
        self.ahead.unread = Some(Box::new(put_back(bytes, &kept)));
    }

    /// The first read of a client's connection, behind what `buf` holds, before anything else read it: the
    /// server looks at a request head itself there ([`crate::server`]) and puts back
    /// ([`Stream::read_ahead`]) what it does not answer. The number of bytes read (0 at the
    /// end of the stream).
    pub async fn read_first(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        use tokio::io::AsyncReadExt as _;
        self.ahead.first = false;
        // tokio's own read, as in poll_first; into `buf`'s spare room.
        self.io.read_buf(buf).await
    }

    /// The stream as a read side and a write side used at once (the relay's reader and
    /// writer, polled by one task), with no lock between them: a TCP socket is read and
    /// written through shared references (tokio's `TcpStream::split`). tokio's generic
    /// `io::split` puts the stream behind an `Arc` and a mutex taken at every read and write.
    pub fn split(&mut self) -> (ReadPart<'_>, WritePart<'_>) {
        let (read, write) = self.io.split();
        (
            ReadPart {
                io: read,
                ahead: &mut self.ahead,
            },
            WritePart { io: write },
        )
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.ahead.poll_read(&mut this.io, cx, buf)
    }
}

impl Ahead {
    /// [`Stream`]'s read, over its socket `io` or the read half of it: what was kept first,
    /// then the first read whole, then the socket's own reads. Inlined into both reads, as the
    /// free function it was: left to the compiler, a plain churn session ran about 150
    /// instructions more.
    #[inline]
    fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(kept) = &mut self.unread {
            drain_into(kept, buf);
            if kept.is_empty() {
                self.unread = None;
            }
            return Poll::Ready(Ok(()));
        }
        if self.first && buf.remaining() < FIRST_READ_BYTES {
            return self.poll_first(io, cx, buf);
        }
        self.first = false;
        Pin::new(io).poll_read(cx, buf)
    }

    /// The first read: as much as is there, up to [`FIRST_READ_BYTES`]; what does not fit
    /// `buf` is kept.
    fn poll_first<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut room = [0u8; FIRST_READ_BYTES];
        let mut read = ReadBuf::new(&mut room);
        // tokio's own read: a short one clears the socket's readiness, so that the next read
        // waits for the next event instead of trying the socket for an EAGAIN.
        ready!(Pin::new(io).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.first = false;
        let given = n.min(buf.remaining());
        buf.put_slice(&room[..given]);
        if given < n {
            self.unread = Some(Box::new(BytesMut::from(&room[given..n])));
        }
        Poll::Ready(Ok(()))
    }
}

/// The read side of a [`Stream`] borrowed by [`Stream::split`]: the same reads as the
/// stream's, through a shared reference to the socket.
#[derive(Debug)]
pub struct ReadPart<'a> {
    io: tokio::net::tcp::ReadHalf<'a>,
    ahead: &'a mut Ahead,
}

/// The write side of a [`Stream`] borrowed by [`Stream::split`]; its shutdown does nothing,
/// as the stream's.
#[derive(Debug)]
pub struct WritePart<'a> {
    io: tokio::net::tcp::WriteHalf<'a>,
}

impl AsyncRead for ReadPart<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.ahead.poll_read(&mut this.io, cx, buf)
    }
}

/// `AsyncWrite` for a type whose field `io` writes to the socket: every write goes to `io`,
/// and the shutdown does nothing (the FIN goes out when the socket is closed). [`Stream`] and
/// its [`WritePart`].
macro_rules! write_without_shutdown {
    ($ty:ty) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().io).poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
    };
}

write_without_shutdown!(Stream);
write_without_shutdown!(WritePart<'_>);

/// A client's connection once it is a WebSocket (podterm is the server): the connection's own
/// stream where the server answered the upgrade itself (`crate::server`'s direct exec), or
/// hyper's upgraded connection where hyper served the request (resume, watch, an exec that
/// was not the connection's first request).
#[derive(Debug)]
pub enum ClientIo {
    Direct(Stream),
    Upgraded(hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>),
}

/// A connection as one task reads and writes it at once (the relay's reader and writer): a
/// plain TCP stream split without a lock ([`Stream::split`]), any other stream (TLS, hyper's
/// upgraded connection, the tests' pipes) through tokio's `io::split`, which takes a mutex at
/// every read and write.
pub enum Halves<T> {
    Tcp(Stream),
    Locked(ReadHalf<T>, WriteHalf<T>),
}

/// The read side of [`Halves`].
pub type ReadSide<'a, T> = Either<ReadPart<'a>, &'a mut ReadHalf<T>>;
/// The write side of [`Halves`].
pub type WriteSide<'a, T> = Either<WritePart<'a>, &'a mut WriteHalf<T>>;

impl<T: AsyncRead + AsyncWrite> Halves<T> {
    /// `io` through tokio's split.
    pub fn locked(io: T) -> Halves<T> {
        let (read, write) = tokio::io::split(io);
        Halves::Locked(read, write)
    }

    /// The read side and the write side, borrowed.
    pub fn sides(&mut self) -> (ReadSide<'_, T>, WriteSide<'_, T>) {
        match self {
            Halves::Tcp(stream) => {
                let (read, write) = stream.split();
                (Either::Left(read), Either::Left(write))
            }
            Halves::Locked(read, write) => (Either::Right(read), Either::Right(write)),
        }
    }
}

impl ClientIo {
    /// The connection as the relay uses it: the connection's own TCP stream split without a
    /// lock; hyper's upgraded connection through tokio's split.
    pub fn halves(self) -> Halves<ClientIo> {
        match self {
            ClientIo::Direct(stream) => Halves::Tcp(stream),
            upgraded @ ClientIo::Upgraded(_) => Halves::locked(upgraded),
        }
    }
}

/// `AsyncRead` and `AsyncWrite` for an enum of two streams (`Type { A, B }`, each variant
/// holding an `Unpin` stream): every call goes to the variant's stream. [`ClientIo`] here,
/// and the cluster's `UpstreamIo`.
macro_rules! either_stream {
    ($ty:ident { $a:ident, $b:ident }) => {
        impl ::tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $ty::$a(io) => {
                        ::tokio::io::AsyncRead::poll_read(::std::pin::Pin::new(io), cx, buf)
                    }
                    $ty::$b(io) => {
                        ::tokio::io::AsyncRead::poll_read(::std::pin::Pin::new(io), cx, buf)
                    }
                }
            }
        }

        impl ::tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                match self.get_mut() {
                    $ty::$a(io) => {
                        ::tokio::io::AsyncWrite::poll_write(::std::pin::Pin::new(io), cx, buf)
                    }
                    $ty::$b(io) => {
                        ::tokio::io::AsyncWrite::poll_write(::std::pin::Pin::new(io), cx, buf)
                    }
                }
            }

            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                match self.get_mut() {
                    $ty::$a(io) => ::tokio::io::AsyncWrite::poll_write_vectored(
                        ::std::pin::Pin::new(io),
                        cx,
                        bufs,
                    ),
                    $ty::$b(io) => ::tokio::io::AsyncWrite::poll_write_vectored(
                        ::std::pin::Pin::new(io),
                        cx,
                        bufs,
                    ),
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    $ty::$a(io) => ::tokio::io::AsyncWrite::is_write_vectored(io),
                    $ty::$b(io) => ::tokio::io::AsyncWrite::is_write_vectored(io),
                }
            }

            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $ty::$a(io) => {
                        ::tokio::io::AsyncWrite::poll_flush(::std::pin::Pin::new(io), cx)
                    }
                    $ty::$b(io) => {
                        ::tokio::io::AsyncWrite::poll_flush(::std::pin::Pin::new(io), cx)
                    }
                }
            }

            fn poll_shutdown(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                match self.get_mut() {
                    $ty::$a(io) => {
                        ::tokio::io::AsyncWrite::poll_shutdown(::std::pin::Pin::new(io), cx)
                    }
                    $ty::$b(io) => {
                        ::tokio::io::AsyncWrite::poll_shutdown(::std::pin::Pin::new(io), cx)
                    }
                }
            }
        }
    };
}
pub(crate) use either_stream;

either_stream!(ClientIo { Direct, Upgraded });

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (connected.unwrap(), accepted.unwrap().0)
    }

    /// A request head that came in one segment is read in one go, though hyper-util asks for
    /// 24 bytes first: the rest waits in the stream, and every byte comes out once, in order.
    #[tokio::test]
    async fn the_first_read_takes_the_whole_head_and_keeps_the_rest() {
        let (mut client, accepted) = pair().await;
        let mut server = Stream::accepted(accepted);
        let head: Vec<u8> = (0..400u32).map(|i| b'a' + (i % 26) as u8).collect();
        client.write_all(&head).await.unwrap();
        let mut first = [0u8; 24];
        server.read_exact(&mut first).await.unwrap();
        assert_eq!(&first[..], &head[..24]);
        let kept = server.ahead.unread.as_ref().map_or(0, |u| u.len());
        assert_eq!(kept, 376, "the rest of the head came with the first read");
        // Small reads take from what is kept, then a large one; then the socket again.
        let mut next = [0u8; 100];
        server.read_exact(&mut next).await.unwrap();
        assert_eq!(&next[..], &head[24..124]);
        let mut rest = vec![0u8; 276];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest[..], &head[124..]);
        assert!(
            server.ahead.unread.is_none(),
            "nothing is held once all is taken"
        );
        client.write_all(b"more").await.unwrap();
        let mut more = [0u8; 4];
        server.read_exact(&mut more).await.unwrap();
        assert_eq!(&more, b"more");
    }

    /// Bytes put back come out before what the first read kept, and that before the socket.
    #[tokio::test]
    async fn bytes_put_back_are_read_before_bytes_kept_and_the_socket() {
        let (mut client, accepted) = pair().await;
        let mut server = Stream::accepted(accepted);
        client.write_all(b"kept").await.unwrap();
        let mut first = [0u8; 1];
        server.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"k");
        server.read_ahead(b"back|");
        client.write_all(b"|socket").await.unwrap();
        let mut rest = [0u8; 15];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"back|ept|socket");
    }

    /// A first read larger than the first-read room reads straight into the caller's buffer;
    /// more than that room in one segment comes out whole and in order either way.
    #[tokio::test]
    async fn large_first_reads_and_long_heads_come_out_whole() {
        for first_ask in [24, FIRST_READ_BYTES, 3 * FIRST_READ_BYTES] {
            let (mut client, accepted) = pair().await;
            let mut server = Stream::accepted(accepted);
            let sent: Vec<u8> = (0..3 * FIRST_READ_BYTES as u32)
                .map(|i| (i % 251) as u8)
                .collect();
            client.write_all(&sent).await.unwrap();
            drop(client);
            let mut got = vec![0u8; first_ask];
            let n = server.read(&mut got).await.unwrap();
            got.truncate(n);
            server.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, sent, "first read of {first_ask}");
        }
    }

    /// The peer reads everything written and then EOF once the stream is dropped after its
    /// (no-op) shutdown: the FIN came with the close, nothing was reset.
    #[tokio::test]
    async fn the_peer_sees_the_data_then_eof_at_close() {
        let (connected, mut peer) = pair().await;
        let mut ours = Stream::connected(connected);
        ours.write_all(b"last words").await.unwrap();
        ours.shutdown().await.unwrap();
        // Not yet closed: the peer's read would wait, so it is checked with a nonblocking try.
        let mut buf = [0u8; 64];
        peer.readable().await.unwrap();
        let n = peer.try_read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"last words");
        assert!(
            matches!(peer.try_read(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "no FIN before the close"
        );
        // The peer can still write to us until we close.
        peer.write_all(b"ok").await.unwrap();
        let mut two = [0u8; 2];
        ours.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"ok");
        drop(ours);
        let mut rest = Vec::new();
        assert_eq!(
            peer.read_to_end(&mut rest).await.unwrap(),
            0,
            "EOF at the close"
        );
    }

    /// The split sides read what the stream would: bytes put back, then what the first read
    /// kept, then the socket; and the write side writes while the read side waits, from one
    /// task, with no lock.
    #[tokio::test]
    async fn the_split_sides_read_and_write_as_the_stream() {
        let (mut client, accepted) = pair().await;
        let mut server = Stream::accepted(accepted);
        client.write_all(b"kept").await.unwrap();
        let mut first = [0u8; 1];
        server.read_exact(&mut first).await.unwrap();
        server.read_ahead(b"back|");
        let (mut read, mut write) = server.split();
        let mut got = [0u8; 8];
        read.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"back|ept");
        // A read waiting for the socket while the write side writes, in one task.
        let mut more = [0u8; 7];
        let echo = async {
            let mut two = [0u8; 2];
            client.read_exact(&mut two).await.unwrap();
            client.write_all(b"|socket").await.unwrap();
            two
        };
        let (reads, written, echoed) =
            tokio::join!(read.read_exact(&mut more), write.write_all(b"hi"), echo);
        reads.unwrap();
        written.unwrap();
        assert_eq!(&echoed, b"hi");
        assert_eq!(&more, b"|socket");
        // Its shutdown sends nothing: the FIN goes with the close, as the stream's.
        write.shutdown().await.unwrap();
        assert!(write.is_write_vectored());
        drop(server);
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
    }

    /// An accepted stream split before its first read still reads it whole, keeping the rest.
    #[tokio::test]
    async fn the_split_read_side_makes_the_first_read_whole() {
        let (mut client, accepted) = pair().await;
        let mut server = Stream::accepted(accepted);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let (mut read, _write) = server.split();
        let mut first = [0u8; 3];
        read.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"GET");
        assert_eq!(
            server.ahead.unread.as_deref().map(|b| &b[..]),
            Some(&b" / HTTP/1.1\r\n\r\n"[..])
        );
    }

    /// Both kinds of [`Halves`] give sides that carry bytes both ways.
    #[tokio::test]
    async fn halves_of_either_kind_carry_bytes_both_ways() {
        for locked in [false, true] {
            let (mut peer, ours) = pair().await;
            let mut halves = if locked {
                Halves::locked(ours)
            } else {
                Halves::Tcp(Stream::connected(ours))
            };
            let (mut read, mut write) = halves.sides();
            assert_eq!(matches!(read, Either::Right(_)), locked);
            write.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            peer.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
            peer.write_all(b"pong").await.unwrap();
            read.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"pong");
        }
    }
}
