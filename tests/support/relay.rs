//! What the relay-level tests share: the relay settings (`RelayConfig::for_tests`), loopback
//! pairs and frame reading. Not every test binary that includes this uses all of it.

use fastwebsockets::{OpCode, WebSocket};
use podterm::relay::RelayConfig;
use tokio::net::{TcpListener, TcpStream};

pub fn relay_config() -> RelayConfig {
    RelayConfig::for_tests()
}

/// Both ends of a loopback TCP connection.
#[allow(dead_code)]
pub async fn loopback_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (connected, accepted) = tokio::join!(
        TcpStream::connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    let (connected, accepted) = (connected.unwrap(), accepted.unwrap().0);
    connected.set_nodelay(true).unwrap();
    accepted.set_nodelay(true).unwrap();
    (connected, accepted)
}

/// The payload of the next frame, which must be a binary one.
#[allow(dead_code)]
pub async fn binary_data(ws: &mut WebSocket<TcpStream>) -> Vec<u8> {
    let frame = ws.read_frame().await.expect("a frame");
    assert_eq!(frame.opcode, OpCode::Binary);
    frame.payload.to_vec()
}
