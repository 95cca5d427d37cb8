"""Python `kubernetes` client against the dev cluster, as the usual write-ups use it.

Usage: devcluster_exec.py KUBECONFIG. Prints one JSON object of results for the Rust test.
"""
import json
import sys

from kubernetes import client, config
from kubernetes.stream import stream

config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()
results = {}

pods = api.list_pod_for_all_namespaces()
results["pods"] = sorted(f"{p.metadata.namespace}/{p.metadata.name}" for p in pods.items)

# One-shot, output preloaded (the most common form).
results["preloaded"] = stream(
    api.connect_get_namespaced_pod_exec, "tools", "default",
    command=["sh", "-c", "echo hello from python"],
    stderr=True, stdin=False, stdout=True, tty=False,
)

# Streaming, without a tty: stdout and stderr apart, the exit code.
resp = stream(
    api.connect_get_namespaced_pod_exec, "tools", "default",
    command=["sh", "-c", "echo out; echo err >&2; exit 3"],
    stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False,
)
resp.run_forever(timeout=10)
results["plain"] = {
    "stdout": resp.read_stdout(),
    "stderr": resp.read_stderr(),
    "returncode": resp.returncode,
}
resp.close()

# Interactive with a tty: write stdin, read the echo and output, then exit.
resp = stream(
    api.connect_get_namespaced_pod_exec, "tools", "default",
    command=["sh"],
    stderr=True, stdin=True, stdout=True, tty=True, _preload_content=False,
)
resp.write_stdin("echo tty-$((6*7)); exit 5\n")
chunks = []
while resp.is_open():
    resp.update(timeout=5)
    if resp.peek_stdout():
        chunks.append(resp.read_stdout())
# The chunks as read, for the test's message when something goes missing.
results["tty"] = {"stdout": "".join(chunks), "chunks": chunks, "returncode": resp.returncode}
resp.close()

# stdin without a tty, on the in-process echo container.
resp = stream(
    api.connect_get_namespaced_pod_exec, "echo-0", "default",
    command=["cat"],
    stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False,
)
resp.write_stdin("ping-pong\n")
echoed = ""
while "ping-pong" not in echoed and resp.is_open():
    resp.update(timeout=5)
    if resp.peek_stdout():
        echoed += resp.read_stdout()
results["echo"] = echoed
resp.close()

print(json.dumps(results))
