use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::cluster::Clusters;
use crate::config::Config;

fn gateway() -> Arc<Gateway> {
    Arc::new(Gateway::new(Config::default(), Clusters::default()))
}

/// Opens a connection to `listener`, accepts it and hands it to `workers`.
async fn connect(listener: &TcpListener, workers: &mut Workers) -> TcpStream {
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    workers.dispatch(server, peer);
    client
}

/// Asks `/healthz` over a kept-alive connection; the worker must answer.
async fn healthz(client: &mut TcpStream) {
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

/// Waits (bounded) until the workers' open-connection counts are `want`.
async fn counts_become(workers: &Workers, want: &[usize]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while workers.open_connections() != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "counts {:?}, want {want:?}",
            workers.open_connections()
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn connections_go_to_the_worker_with_the_fewest_open() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut workers = Workers::start(2, &gateway()).unwrap();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connect(&listener, &mut workers).await);
    }
    // Ties rotate: connections 0 and 2 on worker 0, 1 and 3 on worker 1.
    assert_eq!(workers.open_connections(), [2, 2]);
    for client in &mut clients {
        healthz(client).await;
    }
    let (c3, _c2, c1, _c0) = (
        clients.pop().unwrap(),
        clients.pop().unwrap(),
        clients.pop().unwrap(),
        clients.pop().unwrap(),
    );
    drop((c1, c3));
    counts_become(&workers, &[2, 0]).await;
    // Worker 1 is the less busy one now, whichever the rotation would pick.
    let mut more = vec![
        connect(&listener, &mut workers).await,
        connect(&listener, &mut workers).await,
    ];
    assert_eq!(workers.open_connections(), [2, 2]);
    for client in &mut more {
        healthz(client).await;
    }
    workers.stop().await;
}

#[tokio::test]
async fn stop_closes_open_connections_and_ends_every_thread() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut workers = Workers::start(3, &gateway()).unwrap();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = connect(&listener, &mut workers).await;
        healthz(&mut client).await;
        clients.push(client);
    }
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
    let workers = Workers::start(0, &gateway()).unwrap();
    assert_eq!(workers.count(), 1);
    workers.stop().await;
}

#[tokio::test]
async fn a_worker_that_is_gone_is_skipped_and_forgotten() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut workers = Workers::start(2, &gateway()).unwrap();
    // Worker 0's thread as if it had died: its receiver is gone.
    let (dead, _) = mpsc::unbounded_channel();
    workers.lanes[0].tx = dead;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&listener, &mut workers).await);
    }
    assert_eq!(workers.count(), 1);
    assert_eq!(workers.open_connections(), [3]);
    for client in &mut clients {
        healthz(client).await;
    }
    workers.stop().await;
}
