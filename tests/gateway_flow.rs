//! podterm's flow-control subprotocol through the gateway, against the dev cluster: it is
//! answered only to clients that offer it, over whichever of v5/v4 the cluster picked; a
//! flood with acks arrives whole; the acks never reach the cluster (it would refuse channel
//! 254) and plain clients see no change.

#[path = "support/gateway.rs"]
mod support;

use std::time::Duration;

use fastwebsockets::OpCode;
use podterm::protocol::flow::{FLOW_V4, FLOW_V5, ack_frame};
use podterm::protocol::{V4, V5};
use support::{Stack, binary, exec, exec_path, read_to_end};

fn no_auth() -> [(&'static str, &'static str); 2] {
    [("PODTERM_LISTEN", "127.0.0.1:0"), ("PODTERM_AUTH", "none")]
}

#[tokio::test]
async fn the_flow_subprotocol_is_answered_only_to_clients_that_offer_it() {
    let s = Stack::start(&no_auth()).await;
    let path = exec_path("default", "echo-0", "command=cat&stdin=true&stdout=true");
    for (offer, answer) in [
        (format!("{FLOW_V5}, {FLOW_V4}, {V5}, {V4}"), FLOW_V5),
        (format!("{V5}, {V4}"), V5),
        (FLOW_V5.to_string(), FLOW_V5),
        (format!("{FLOW_V4}, {V4}"), FLOW_V4),
        (V4.to_string(), V4),
    ] {
        let (mut ws, protocol) = exec(s.addr, &path, &[], &offer).await.expect("exec");
        assert_eq!(protocol, answer, "offered {offer}");
        ws.write_frame(binary(b"\0hi")).await.unwrap();
        if answer == FLOW_V5 {
            ws.write_frame(binary(&[255, 0])).await.unwrap();
        }
        ws.write_frame(fastwebsockets::Frame::close(1000, b""))
            .await
            .unwrap();
        read_to_end(&mut ws, Duration::from_secs(10)).await;
    }
    let refused = exec(s.addr, &path, &[], "v6.flow.podterm.dev").await;
    assert_eq!(refused.err().map(|r| r.code), Some(400));
}

#[tokio::test]
async fn a_flood_with_acks_arrives_whole_and_the_acks_stay_with_podterm() {
    let s = Stack::start(&no_auth()).await;
    let total: u64 = 8 << 20;
    let path = exec_path(
        "default",
        "flood-0",
        &format!("command={total}&stdout=true"),
    );
    let (mut ws, protocol) = exec(s.addr, &path, &[], &format!("{FLOW_V5}, {V5}"))
        .await
        .expect("exec");
    assert_eq!(protocol, FLOW_V5);
    let mut got = 0u64;
    let mut acked = 0u64;
    let mut exit = None;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let f = ws.read_frame().await.expect("a frame");
            match (f.opcode, f.payload.first()) {
                (OpCode::Binary, Some(1)) => got += f.payload.len() as u64 - 1,
                (OpCode::Binary, Some(3)) => exit = Some(f.payload[1..].to_vec()),
                (OpCode::Close, _) => break,
                _ => {}
            }
            if got - acked >= 128 * 1024 {
                acked = got;
                ws.write_frame(binary(&ack_frame(acked))).await.unwrap();
            }
        }
    })
    .await
    .expect("the flood ends within 60 s");
    assert_eq!(got, total);
    let status: podterm::protocol::Status = serde_json::from_slice(&exit.expect("exit")).unwrap();
    assert_eq!(status.exit_code(), Some(0));
}
