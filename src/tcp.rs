//! TCP streams as podterm's two sides use them: the write side ends when the stream closes,
//! and a connection from a client is read whole at once, the first time.
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

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The least the first read of a client's connection asks for: a whole request head as
/// browsers and kubectl send them (hyper reads on when one is longer).
pub const FIRST_READ_BYTES: usize = 4 * 1024;

/// A TCP stream whose `poll_shutdown` does nothing (the FIN goes out when it is dropped).
#[derive(Debug)]
pub struct Stream {
    io: TcpStream,
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
            first: false,
            unread: None,
        }
    }

    /// A connection a client made: its first read is [`FIRST_READ_BYTES`] at least.
    pub fn accepted(io: TcpStream) -> Stream {
        Stream {
            io,
            first: true,
            unread: None,
        }
    }

    /// Puts `bytes`, read from this stream by a reader that wanted less (the cluster's answer
    /// head and what came behind it), back in front of what is still to be read.
    pub(crate) fn read_ahead(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let kept = self.unread.take().unwrap_or_default();
        self.unread = Some(Box::new(put_back(bytes, &kept)));
    }

    /// The first read of a client's connection, behind what `buf` holds, before anything else read it: the
    /// server looks at a request head itself there ([`crate::server`]) and puts back
    /// ([`Stream::read_ahead`]) what it does not answer. The number of bytes read (0 at the
    /// end of the stream).
    pub async fn read_first(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        use tokio::io::AsyncReadExt as _;
        self.first = false;
        // tokio's own read, as in poll_first; into `buf`'s spare room.
        self.io.read_buf(buf).await
    }

    /// The first read: as much as is there, up to [`FIRST_READ_BYTES`]; what does not fit
    /// `buf` is kept.
    fn poll_first(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut room = [0u8; FIRST_READ_BYTES];
        let mut read = ReadBuf::new(&mut room);
        // tokio's own read: a short one clears the socket's readiness, so that the next read
        // waits for the next event instead of trying the socket for an EAGAIN.
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
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

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(unread) = &mut this.unread {
            drain_into(unread, buf);
            if unread.is_empty() {
                this.unread = None;
            }
            return Poll::Ready(Ok(()));
        }
        if this.first && buf.remaining() < FIRST_READ_BYTES {
            return this.poll_first(cx, buf);
        }
        this.first = false;
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
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

/// A client's connection once it is a WebSocket (podterm is the server): the connection's own
/// stream where the server answered the upgrade itself (`crate::server`'s direct exec), or
/// hyper's upgraded connection where hyper served the request (resume, watch, an exec that
/// was not the connection's first request).
#[derive(Debug)]
pub enum ClientIo {
    Direct(Stream),
    Upgraded(hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>),
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
        let kept = server.unread.as_ref().map_or(0, |u| u.len());
        assert_eq!(kept, 376, "the rest of the head came with the first read");
        // Small reads take from what is kept, then a large one; then the socket again.
        let mut next = [0u8; 100];
        server.read_exact(&mut next).await.unwrap();
        assert_eq!(&next[..], &head[24..124]);
        let mut rest = vec![0u8; 276];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest[..], &head[124..]);
        assert!(server.unread.is_none(), "nothing is held once all is taken");
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
}
