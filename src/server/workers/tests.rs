use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::cluster::Clusters;
use crate::config::Config;

/// A listener on port 0 and `count` workers serving a default gateway.
async fn started(count: usize) -> (TcpListener, Workers) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = Arc::new(Gateway::new(Config::default(), Clusters::default()));
    (listener, Workers::start(count, &gateway).unwrap())
}

/// Opens `n` connections to `listener`, accepting each and handing it to `workers`.
async fn connect(listener: &TcpListener, workers: &mut Workers, n: usize) -> Vec<TcpStream> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        workers.dispatch(server, peer);
        clients.push(client);
    }
    clients
}

/// Asks `/healthz` over each kept-alive connection; the workers must answer.
async fn healthz(clients: &mut [TcpStream]) {
    for client in clients {
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: podterm\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.ends_with(b"ok\n") {
            let n = client.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "connection closed: {}",
                String::from_utf8_lossy(&head)
            );
            head.extend_from_slice(&buf[..n]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
    }
}

/// Woken whenever a worker's connection closes (tests only).
pub(super) static CLOSED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Waits until the workers' open-connection counts are `want`, woken by each close; the
/// bound only catches a hang.
async fn counts_become(workers: &Workers, want: &[usize]) {
    let settled = async {
        loop {
            let closed = CLOSED.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if workers.open_connections() == want {
                return;
            }
            closed.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), settled)
        .await
        .is_err()
    {
        panic!("counts {:?}, want {want:?}", workers.open_connections());
    }
}

#[tokio::test]
async fn connections_go_to_the_worker_with_the_fewest_open() {
    let (listener, mut workers) = started(2).await;
    let mut clients = connect(&listener, &mut workers, 4).await;
    // Ties rotate: connections 0 and 2 on worker 0, 1 and 3 on worker 1.
    assert_eq!(workers.open_connections(), [2, 2]);
    healthz(&mut clients).await;
    let c3 = clients.remove(3);
    let c1 = clients.remove(1);
    drop((c1, c3));
    counts_become(&workers, &[2, 0]).await;
    // Worker 1 is the less busy one now, whichever the rotation would pick.
    let mut more = connect(&listener, &mut workers, 2).await;
    assert_eq!(workers.open_connections(), [2, 2]);
    healthz(&mut more).await;
    workers.stop().await;
}

#[tokio::test]
async fn stop_closes_open_connections_and_ends_every_thread() {
    let (listener, mut workers) = started(3).await;
    let mut clients = connect(&listener, &mut workers, 3).await;
    healthz(&mut clients).await;
    assert_eq!(workers.open_connections(), [1, 1, 1]);
    workers.stop().await;
    for mut client in clients {
        // The kept-alive connection is closed by the worker's end, not by the client.
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf))
            .await
            .expect("closed when the workers stop")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}

#[tokio::test]
async fn zero_workers_means_one() {
    let (_listener, workers) = started(0).await;
    assert_eq!(workers.count(), 1);
    workers.stop().await;
}

#[tokio::test]
async fn a_worker_that_is_gone_is_skipped_and_forgotten() {
    let (listener, mut workers) = started(2).await;
    // Worker 0's thread as if it had died: its receiver is gone.
    let (dead, _) = mpsc::unbounded_channel();
    workers.lanes[0].tx = dead;
    let mut clients = connect(&listener, &mut workers, 3).await;
    assert_eq!(workers.count(), 1);
    assert_eq!(workers.open_connections(), [3]);
    healthz(&mut clients).await;
    workers.stop().await;
}

#[tokio::test]
async fn each_worker_accepts_on_its_own_socket_and_the_port_stays_taken() {
    let (listener, mut workers) = started(2).await;
    let addr = listener.local_addr().unwrap();
    workers.listen(listener).map_err(|(_, e)| e).unwrap();
    let mut clients = Vec::new();
    for _ in 0..32 {
        clients.push(TcpStream::connect(addr).await.unwrap());
    }
    healthz(&mut clients).await;
    // The kernel spreads connections by their addresses' hash: both sockets take some (all
    // 32 on one would come once in 2^31 runs).
    let counts = workers.open_connections();
    assert_eq!(counts.iter().sum::<usize>(), 32, "{counts:?}");
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    assert_eq!(workers.open_counter().load(Ordering::Relaxed), 32);
    // A socket without SO_REUSEPORT (a second podterm) is still refused the port.
    let taken = TcpListener::bind(addr)
        .await
        .expect_err("the port is taken");
    assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
    drop(clients);
    counts_become(&workers, &[0, 0]).await;
    assert_eq!(workers.open_counter().load(Ordering::Relaxed), 0);
    workers.stop().await;
    // Every socket of the group closed with the workers: the port is free again.
    TcpListener::bind(addr)
        .await
        .expect("the port is free after stop");
}

/// tokio's `bind` listens with a queue of 128; [`deepen`] gives the socket the same queue as
/// the group's others. Connections to a socket nobody accepts from all complete their
/// handshake up to the queue's length: past 128 the kernel drops the client's SYN (or its
/// handshake ACK), and the client waits a second and more for its retry.
#[tokio::test]
async fn the_first_socket_gets_the_same_accept_queue_as_the_others() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    let n = (LISTEN_BACKLOG.min(somaxconn) as usize).min(300);
    if n <= 130 {
        eprintln!(
            "skipped: net.core.somaxconn is {somaxconn}, which caps every accept queue at tokio's 128 or less"
        );
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    deepen(&listener).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::new();
    // Within the queue no connect waits for a retry (the first retry is a second away); a
    // queue of 128 would hold the 130th connect for seconds, and then for good.
    let all = tokio::time::timeout(Duration::from_secs(30), async {
        for _ in 0..n {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
    })
    .await;
    assert!(all.is_ok(), "{} connects completed of {n}", clients.len());
    // And each is there to accept.
    for _ in 0..n {
        listener.accept().await.unwrap();
    }
}
