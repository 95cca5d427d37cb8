//! Writes, counted exactly (never timed): large frames that arrive together are read several
//! to a read and written several to a (vectored) write, so the client's socket takes fewer
//! writes than frames; a command's status and the close frame after it go out in one write.

#[path = "support/relay.rs"]
mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use fastwebsockets::OpCode;
use fastwebsockets::{Frame, Payload, Role, WebSocket};
use podterm::relay::relay;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// A socket whose writes that moved bytes are counted.
struct CountedWrites {
    io: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl CountedWrites {
    fn counted(&self, polled: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncRead for CountedWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.counted(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.counted(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_large_frames_takes_fewer_writes_than_frames() {
    const FRAMES: usize = 64;
    let (client_end, relay_client) = support::loopback_pair().await;
    let (relay_cluster, cluster_end) = support::loopback_pair().await;
    let config = Arc::new(support::relay_config());
    let writes = Arc::new(AtomicUsize::new(0));
    let relay_client = CountedWrites {
        io: relay_client,
        writes: writes.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let session = tokio::spawn(async move {
        relay(relay_client, relay_cluster, &config, async {
            let _ = stopped.await;
        })
        .await
    });
    let mut client = WebSocket::after_handshake(client_end, Role::Client);
    let mut cluster = WebSocket::after_handshake(cluster_end, Role::Server);
    // 64 KiB of stdout a frame, as the kubelet sends a flood.
    let frame = |i: usize| {
        let mut payload = vec![i as u8; 64 * 1024 + 1];
        payload[0] = 1;
        payload
    };
    let flood = tokio::spawn(async move {
        for i in 0..FRAMES {
            cluster
                .write_frame(Frame::binary(Payload::Owned(frame(i))))
                .await
                .unwrap();
        }
        cluster
    });
    for i in 0..FRAMES {
        assert_eq!(
            support::binary_data(&mut client).await,
            frame(i),
            "frame {i}"
        );
    }
    let writes = writes.load(Ordering::Relaxed);
    // One write a frame without batching; up to four frames a write with it.
    assert!(
        writes * 2 <= FRAMES,
        "{writes} writes to the client for {FRAMES} large frames"
    );
    let _ = stop.send(());
    drop((client, flood.await.unwrap()));
    let _ = session.await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_commands_status_and_the_close_frame_go_to_the_client_in_one_write() {
    let (client_end, relay_client) = support::loopback_pair().await;
    let (relay_cluster, mut cluster_end) = support::loopback_pair().await;
    let config = Arc::new(support::relay_config());
    let writes = Arc::new(AtomicUsize::new(0));
    let relay_client = CountedWrites {
        io: relay_client,
        writes: writes.clone(),
    };
    let session = tokio::spawn(async move {
        relay(relay_client, relay_cluster, &config, std::future::pending()).await
    });
    // The kubelet's end of a command, as the API server passes it on: the channel-3 status
    // and the close frame, in one segment.
    let status = br#"{"metadata":{},"status":"Success"}"#;
    let mut end = vec![0x82, 1 + status.len() as u8, 3];
    end.extend_from_slice(status);
    end.extend_from_slice(&[0x88, 2, 0x03, 0xe8]);
    cluster_end.write_all(&end).await.unwrap();
    let mut client = WebSocket::after_handshake(client_end, Role::Client);
    let frame = client.read_frame().await.unwrap();
    assert_eq!(frame.opcode, OpCode::Binary);
    assert_eq!(&frame.payload[..], &end[2..2 + 1 + status.len()]);
    let frame = client.read_frame().await.unwrap();
    assert_eq!(frame.opcode, OpCode::Close);
    assert_eq!(&frame.payload[..2], &1000u16.to_be_bytes());
    // fastwebsockets answered the close; the cluster's end gets podterm's close frame, then
    // the connection's end.
    let summary = session.await.unwrap();
    assert_eq!(summary.exit_code, Some(0));
    let mut rest = Vec::new();
    cluster_end.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest[0], 0x88, "podterm's close frame to the cluster");
    assert_eq!(
        writes.load(Ordering::Relaxed),
        1,
        "the status and the close frame in one write to the client"
    );
    drop(client);
}
