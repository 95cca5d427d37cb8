//! Python's `kubernetes` client (`stream()`) execs through podterm: output, stderr, exit
//! codes and stdin.

#[path = "support/gateway.rs"]
mod support;

use std::path::PathBuf;

use support::{Stack, run, text};

const SCRIPT: &str = r#"
import sys
from kubernetes import client
from kubernetes.stream import stream

config = client.Configuration()
config.host = sys.argv[1]
api = client.CoreV1Api(client.ApiClient(config))

out = stream(api.connect_get_namespaced_pod_exec, "tools", "default",
             command=["sh", "-c", "echo hello; echo world"],
             stderr=True, stdin=False, stdout=True, tty=False)
print("preloaded:" + repr(out))

resp = stream(api.connect_get_namespaced_pod_exec, "web-0", "default", container="sidecar",
              command=["sh", "-c", "echo $PWD; echo bad >&2; exit 7"],
              stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
stdout, stderr = "", ""
while resp.is_open():
    resp.update(timeout=5)
    stdout += resp.read_stdout() if resp.peek_stdout() else ""
    stderr += resp.read_stderr() if resp.peek_stderr() else ""
print("stdout:" + repr(stdout))
print("stderr:" + repr(stderr))
print("returncode:" + str(resp.returncode))

resp = stream(api.connect_get_namespaced_pod_exec, "echo-0", "default", command=["cat"],
              stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
resp.write_stdin("ping\n")
echoed = ""
while resp.is_open() and "ping" not in echoed:
    resp.update(timeout=5)
    if resp.peek_stdout():
        echoed += resp.read_stdout()
resp.close()
print("echoed:" + repr(echoed))
"#;

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run scripts/install-test-deps",
        python.display()
    );
    python
}

#[tokio::test]
async fn python_stream_execs_through_podterm() {
    let s = Stack::start(&[("PODTERM_LISTEN", "127.0.0.1:0"), ("PODTERM_AUTH", "none")]).await;
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg(format!("http://{}/clusters/dev", s.addr));
    let out = run(cmd, None).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    let [preloaded, out_line, err_line, code, echoed] = lines[..] else {
        panic!("{stdout}\n{}", text(&out.stderr));
    };
    assert_eq!(preloaded, "preloaded:'hello\\nworld\\n'");
    assert!(
        out_line.ends_with("/default/web-0/sidecar\\n'"),
        "{out_line}"
    );
    assert_eq!(err_line, "stderr:'bad\\n'");
    assert_eq!(code, "returncode:7");
    assert_eq!(echoed, "echoed:'ping\\n'");
}
