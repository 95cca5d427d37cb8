//! Exec details through podterm: no `command` runs the default shell (bash else sh, with
//! TERM=xterm-256color); the subprotocol answered is the one the cluster picked; resizes and
//! stdin EOF (v5 close channel) reach the command.

#[path = "support/gateway.rs"]
mod support;

use std::time::Duration;

use support::{Stack, binary, exec, exec_path, read_to_end};

async fn stack() -> Stack {
    Stack::start(&[("PODTERM_LISTEN", "127.0.0.1:0"), ("PODTERM_AUTH", "none")]).await
}

#[tokio::test]
async fn no_command_runs_the_default_shell() {
    let s = stack().await;
    let (mut ws, protocol) = exec(
        s.addr,
        &exec_path("default", "tools", "stdin=true&stdout=true&stderr=true"),
        &[],
        "v5.channel.k8s.io, v4.channel.k8s.io",
    )
    .await
    .expect("exec without command");
    assert_eq!(protocol, "v5.channel.k8s.io");
    ws.write_frame(binary(b"\0echo term=$TERM; exit 5\n"))
        .await
        .unwrap();
    let ended = read_to_end(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(
        String::from_utf8_lossy(&ended.stdout),
        "term=xterm-256color\n"
    );
    assert_eq!(ended.exit_code(), Some(5));
    assert_eq!(ended.close_code, Some(1000));
}

#[tokio::test]
async fn stdin_eof_and_resize_reach_the_command() {
    let s = stack().await;
    // v5: [255, 0] closes stdin, so `cat` ends.
    let (mut ws, _) = exec(
        s.addr,
        &exec_path("default", "tools", "command=cat&stdin=true&stdout=true"),
        &[],
        "v5.channel.k8s.io",
    )
    .await
    .expect("exec");
    ws.write_frame(binary(b"\0to the end\n")).await.unwrap();
    ws.write_frame(binary(&[255, 0])).await.unwrap();
    let ended = read_to_end(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(ended.stdout, b"to the end\n");
    assert_eq!((ended.exit_code(), ended.close_code), (Some(0), Some(1000)));

    // A resize reaches a tty command.
    let (mut ws, _) = exec(
        s.addr,
        &exec_path(
            "default",
            "tools",
            "command=sh&command=-c&command=read%20x%3B%20stty%20size&stdin=true&stdout=true&tty=true",
        ),
        &[],
        "v5.channel.k8s.io",
    )
    .await
    .expect("tty exec");
    ws.write_frame(binary(b"\x04{\"Width\":123,\"Height\":45}"))
        .await
        .unwrap();
    ws.write_frame(binary(b"\0go\r")).await.unwrap();
    let ended = read_to_end(&mut ws, Duration::from_secs(10)).await;
    let out = String::from_utf8_lossy(&ended.stdout);
    assert!(out.contains("45 123"), "{out:?}");
}
