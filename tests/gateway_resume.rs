//! Sessions that outlive their connection (podterm::protocol::resume), through the gateway
//! against the dev cluster: a dropped page session comes back with everything written
//! meanwhile, once, and its keys arrive once; only its user with the proof a replica issued may
//! resume it; a normal close ends it; the grace ends it; another replica relays a resume, a
//! watch, the list and an end to the replica that holds the session.

#[path = "support/gateway.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use fastwebsockets::{Frame, OpCode};
use podterm::cluster::Clusters;
use podterm::config::Config;
use podterm::gateway::Gateway;
use podterm::protocol::flow::ack_frame;
use podterm::protocol::resume::{CONTROL, RESUME_V5};
use podterm::protocol::{V5, flow::FLOW_V5};
use podterm::server;
use support::{Socket, Stack, binary, exec, exec_path, get};
use tokio::net::TcpListener;

const ALICE: (&str, &str) = ("x-forwarded-user", "alice");
const DEVS: (&str, &str) = ("x-forwarded-groups", "devs");
const BOB: (&str, &str) = ("x-forwarded-user", "bob");
const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn offer() -> String {
    format!("{RESUME_V5}, {FLOW_V5}, {V5}")
}

/// A shell that reads a line, prints it, prints 1..=n while nobody may be attached, then reads
/// another line and prints it.
fn script_path(n: u32) -> String {
    script(n, "")
}

/// [`script_path`], then `tail` (more shell).
fn script(n: u32, tail: &str) -> String {
    let script = format!(
        "read a; echo A=$a; sleep 0.5; i=1; while [ $i -le {n} ]; do echo $i; i=$((i+1)); done; read b; echo B=$b{tail}"
    );
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("container", "app")
        .append_pair("command", "sh")
        .append_pair("command", "-c")
        .append_pair("command", &script)
        .append_pair("stdin", "true")
        .append_pair("stdout", "true")
        .finish();
    exec_path("default", "web-0", &q)
}

/// What the session's connection reads: output, control messages, the exit and the close.
#[derive(Default)]
struct Reader {
    output: Vec<u8>,
    control: Option<serde_json::Value>,
    exit: Option<Vec<u8>>,
    close: Option<u16>,
}

impl Reader {
    /// Reads until `until` holds (acking output as it goes), within 20 s.
    async fn read_until(&mut self, ws: &mut Socket, base: u64, until: impl Fn(&Reader) -> bool) {
        tokio::time::timeout(Duration::from_secs(20), async {
            while !until(self) && self.close.is_none() {
                let f = ws.read_frame().await.expect("a frame");
                match (f.opcode, f.payload.first()) {
                    (OpCode::Binary, Some(1 | 2)) => {
                        self.output.extend_from_slice(&f.payload[1..]);
                        let n = base + self.output.len() as u64;
                        ws.write_frame(binary(&ack_frame(n))).await.unwrap();
                    }
                    (OpCode::Binary, Some(&CONTROL)) => {
                        self.control = Some(serde_json::from_slice(&f.payload[1..]).unwrap());
                    }
                    (OpCode::Binary, Some(3)) => self.exit = Some(f.payload[1..].to_vec()),
                    (OpCode::Close, _) => {
                        self.close = Some(u16::from_be_bytes([f.payload[0], f.payload[1]]))
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("the awaited output within 20 s");
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

fn control_of(r: &Reader) -> (String, String, u64) {
    let c = r.control.as_ref().expect("a control message");
    (
        c["session"].as_str().unwrap().to_string(),
        c["proof"].as_str().unwrap().to_string(),
        c["input"].as_u64().unwrap(),
    )
}

fn resume_path(id: &str, proof: &str, output: u64) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("proof", proof)
        .append_pair("output", &output.to_string())
        .finish();
    format!("/api/sessions/{id}/resume?{q}")
}

/// Drops the connection without a close frame, as a lost network does.
fn drop_hard(ws: Socket) {
    drop(ws.into_inner());
}

fn expected_numbers(n: u32) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

#[tokio::test]
async fn a_dropped_session_resumes_with_every_byte_once_and_every_key_once() {
    let s = Stack::start(&[("PODTERM_LISTEN", "127.0.0.1:0")]).await;
    let (mut ws, protocol) = exec(s.addr, &script_path(2000), &[ALICE, DEVS], &offer())
        .await
        .expect("exec");
    assert_eq!(protocol, RESUME_V5);
    let mut r = Reader::default();
    r.read_until(&mut ws, 0, |r| r.control.is_some()).await;
    let (id, proof, input) = control_of(&r);
    assert_eq!(input, 0);
    ws.write_frame(binary(b"\0x\n")).await.unwrap();
    r.read_until(&mut ws, 0, |r| r.text().contains("A=x\n"))
        .await;
    let processed = r.output.len() as u64;
    drop_hard(ws);
    // Nobody is attached while the shell prints 2000 lines; a resume that came too early
    // would simply be attached sooner, so wait until the session says it is detached.
    tokio::time::timeout(Duration::from_secs(10), async {
        while s.gateway.fleet.get(&id).is_some_and(|l| l.is_attached()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("detached");
    let (mut ws, protocol) = exec(
        s.addr,
        &resume_path(&id, &proof, processed),
        &[ALICE, DEVS],
        &offer(),
    )
    .await
    .expect("resume");
    assert_eq!(protocol, RESUME_V5);
    let mut again = Reader::default();
    again
        .read_until(&mut ws, processed, |r| r.control.is_some())
        .await;
    assert_eq!(control_of(&again).2, 2, "podterm had both stdin bytes");
    again
        .read_until(&mut ws, processed, |r| r.text().ends_with("2000\n"))
        .await;
    ws.write_frame(binary(b"\0y\n")).await.unwrap();
    again
        .read_until(&mut ws, processed, |r| r.close.is_some())
        .await;
    assert_eq!(again.text(), format!("{}B=y\n", expected_numbers(2000)));
    assert_eq!(again.close, Some(1000));
    let exit = String::from_utf8(again.exit.expect("the exit status")).unwrap();
    assert!(exit.contains("Success"), "{exit}");
    tokio::time::timeout(Duration::from_secs(10), s.gateway.drain.no_sessions())
        .await
        .expect("the session ended");
    assert!(s.gateway.fleet.get(&id).is_none());
}

#[tokio::test]
async fn only_its_user_with_a_valid_proof_may_resume_and_a_normal_close_ends_it() {
    let s = Stack::start(&[("PODTERM_LISTEN", "127.0.0.1:0")]).await;
    let (mut ws, _) = exec(s.addr, &script_path(3), &[ALICE, DEVS], &offer())
        .await
        .expect("exec");
    let mut r = Reader::default();
    r.read_until(&mut ws, 0, |r| r.control.is_some()).await;
    let (id, proof, _) = control_of(&r);
    drop_hard(ws);
    let refused = exec(s.addr, &resume_path(&id, &proof, 0), &[BOB, DEVS], &offer()).await;
    let refused = refused.err().expect("bob may not resume alice's session");
    assert_eq!(refused.code, 403);
    assert!(
        refused.status().message.contains("not valid"),
        "{}",
        refused.status().message
    );
    let forged = format!("{}x", proof);
    let refused = exec(
        s.addr,
        &resume_path(&id, &forged, 0),
        &[ALICE, DEVS],
        &offer(),
    )
    .await;
    assert_eq!(refused.err().map(|r| r.code), Some(403));
    let refused = exec(s.addr, &resume_path(&id, &proof, 0), &[ALICE, DEVS], V5).await;
    assert_eq!(
        refused.err().map(|r| r.code),
        Some(400),
        "resume needs its subprotocol"
    );
    // Alice comes back and closes normally: the session ends, and cannot be resumed.
    let (mut ws, _) = exec(
        s.addr,
        &resume_path(&id, &proof, 0),
        &[ALICE, DEVS],
        &offer(),
    )
    .await
    .expect("resume");
    let mut again = Reader::default();
    again.read_until(&mut ws, 0, |r| r.control.is_some()).await;
    ws.write_frame(Frame::close(1000, b"")).await.unwrap();
    again.read_until(&mut ws, 0, |r| r.close.is_some()).await;
    tokio::time::timeout(Duration::from_secs(10), s.gateway.drain.no_sessions())
        .await
        .expect("the session ends");
    let gone = exec(
        s.addr,
        &resume_path(&id, &proof, 0),
        &[ALICE, DEVS],
        &offer(),
    )
    .await;
    let gone = gone.err().expect("nothing to resume");
    assert_eq!(gone.code, 404);
    assert!(gone.status().message.contains("open a new session"));
}

#[tokio::test]
async fn the_grace_ends_a_session_nobody_came_back_to_and_zero_turns_resume_off() {
    let s = Stack::start(&[
        ("PODTERM_LISTEN", "127.0.0.1:0"),
        ("PODTERM_RESUME_GRACE", "1s"),
    ])
    .await;
    let (mut ws, _) = exec(s.addr, &script_path(3), &[ALICE, DEVS], &offer())
        .await
        .expect("exec");
    let mut r = Reader::default();
    r.read_until(&mut ws, 0, |r| r.control.is_some()).await;
    drop_hard(ws);
    tokio::time::timeout(Duration::from_secs(10), s.gateway.drain.no_sessions())
        .await
        .expect("the grace ends the session");

    let off = Stack::start(&[
        ("PODTERM_LISTEN", "127.0.0.1:0"),
        ("PODTERM_RESUME_GRACE", "0"),
    ])
    .await;
    let (ws, protocol) = exec(off.addr, &script_path(3), &[ALICE, DEVS], &offer())
        .await
        .expect("exec");
    assert_eq!(protocol, FLOW_V5, "resume off: the flow variant");
    drop_hard(ws);
    tokio::time::timeout(Duration::from_secs(10), off.gateway.drain.no_sessions())
        .await
        .expect("a drop ends the session at once");
}

/// A replica in this process with an internal listener, in front of `stack`'s dev cluster.
async fn replica(
    stack: &Stack,
    peers: &[String],
    peer: TcpListener,
) -> (Arc<Gateway>, std::net::SocketAddr) {
    let peer_addr = peer.local_addr().unwrap().to_string();
    let policy = stack.dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "rules:\n  - users: [carol]\n    mode: shell\n    observe: true\n  - mode: shell\n",
    )
    .unwrap();
    let vars = [
        ("PODTERM_LISTEN", "127.0.0.1:0".to_string()),
        ("PODTERM_RESUME_SECRET", SECRET.to_string()),
        ("PODTERM_PEER_LISTEN", peer_addr.clone()),
        ("PODTERM_ADVERTISE", peer_addr),
        ("PODTERM_PEERS", peers.join(",")),
        ("PODTERM_POLICY_FILE", policy.display().to_string()),
    ];
    let config =
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.clone()))).expect("config");
    let hooks = podterm::gateway::Hooks {
        policy: Arc::new(podterm::policy::Policy::load(Some(&policy)).unwrap()),
        ..Default::default()
    };
    let clusters = Clusters::from_kubeconfig_file(&stack.cluster.kubeconfig, &[])
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gateway = Arc::new(Gateway::with_hooks(config, clusters, hooks));
    tokio::spawn(server::run_with_peers(
        listener,
        Some(peer),
        gateway.clone(),
    ));
    (gateway, addr)
}

#[tokio::test]
async fn another_replica_relays_resume_watch_list_and_end_to_the_owner() {
    let stack = Stack::start(&[("PODTERM_LISTEN", "127.0.0.1:0")]).await;
    let (pa, pb) = (
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let peers = vec![
        pa.local_addr().unwrap().to_string(),
        pb.local_addr().unwrap().to_string(),
    ];
    let (a, a_addr) = replica(&stack, &peers, pa).await;
    let (_b, b_addr) = replica(&stack, &peers, pb).await;

    let (mut ws, _) = exec(a_addr, &script(500, "; read c"), &[ALICE, DEVS], &offer())
        .await
        .expect("exec on A");
    let mut r = Reader::default();
    r.read_until(&mut ws, 0, |r| r.control.is_some()).await;
    let (id, proof, _) = control_of(&r);
    ws.write_frame(binary(b"\0x\n")).await.unwrap();
    r.read_until(&mut ws, 0, |r| r.text().contains("A=x\n"))
        .await;
    let processed = r.output.len() as u64;
    drop_hard(ws);

    // The reconnect lands on B, which relays it to A.
    let (mut ws, protocol) = exec(
        b_addr,
        &resume_path(&id, &proof, processed),
        &[ALICE, DEVS],
        &offer(),
    )
    .await
    .expect("resume through B");
    assert_eq!(protocol, RESUME_V5);
    let mut again = Reader::default();
    again
        .read_until(&mut ws, processed, |r| r.text().ends_with("500\n"))
        .await;
    assert_eq!(again.text(), expected_numbers(500));

    // B lists A's session for carol (observe) and for alice, not for bob.
    let list = |who: (&'static str, &'static str)| async move {
        let res = get(b_addr, "/api/sessions", &[who, DEVS]).await;
        assert_eq!(res.code, 200);
        serde_json::from_slice::<serde_json::Value>(&res.body).unwrap()
    };
    let seen = list(("x-forwarded-user", "carol")).await;
    assert_eq!(seen["items"][0]["id"], id.as_str(), "{seen}");
    assert_eq!(seen["items"][0]["replica"], peers[0].as_str());
    assert_eq!(seen["items"][0]["attached"], true);
    assert_eq!(list(ALICE).await["items"].as_array().unwrap().len(), 1);
    assert_eq!(list(BOB).await["items"].as_array().unwrap().len(), 0);

    // Carol watches through B; alice's status line learns it.
    let watch = format!("/api/sessions/{id}/watch?replica={}", peers[0]);
    let refused = exec(b_addr, &watch, &[BOB, DEVS], &offer()).await;
    assert_eq!(
        refused.err().map(|r| r.code),
        Some(403),
        "bob may not watch"
    );
    let (mut watcher, _) = exec(
        b_addr,
        &watch,
        &[("x-forwarded-user", "carol"), DEVS],
        &offer(),
    )
    .await
    .expect("carol watches");
    let mut w = Reader::default();
    w.read_until(&mut watcher, 0, |r| r.control.is_some()).await;
    assert_eq!(w.control.as_ref().unwrap()["watching"], true);
    again
        .read_until(&mut ws, processed, |r| {
            r.control
                .as_ref()
                .is_some_and(|c| c["watchers"][0] == "carol")
        })
        .await;
    ws.write_frame(binary(b"\0y\n")).await.unwrap();
    w.read_until(&mut watcher, 0, |r| r.text().contains("B=y"))
        .await;

    // Carol ends it through B: alice's connection is closed, the session is gone.
    let end = format!("/api/sessions/{id}?replica={}", peers[0]);
    let (code, body) = delete(b_addr, &end, ("x-forwarded-user", "carol")).await;
    assert_eq!(code, 200, "{body}");
    again
        .read_until(&mut ws, processed, |r| r.close.is_some())
        .await;
    assert_eq!(again.close, Some(1008), "ended by carol");
    tokio::time::timeout(Duration::from_secs(10), a.drain.no_sessions())
        .await
        .expect("the session ends");

    // A request to a peer without the fleet's signature is refused.
    let res = get(peers[0].parse().unwrap(), "/peer/sessions", &[ALICE, DEVS]).await;
    assert_eq!(res.code, 403);
}

/// `DELETE path` as `who`: the code and body.
async fn delete(addr: std::net::SocketAddr, path: &str, who: (&str, &str)) -> (u16, String) {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::delete(path)
        .header("host", addr.to_string())
        .header(who.0, who.1)
        .header(DEVS.0, DEVS.1)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let code = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8_lossy(&body).into_owned())
}
