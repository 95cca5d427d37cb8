//! The exec request's query (`container`, `command`, `stdin`, `stdout`, `stderr`, `tty`), parsed
//! and checked against the pod as the API server does, with its 400 messages.

use crate::devcluster::manifest::Pod;
use crate::devcluster::refusal::{Refusal, refuse};
use crate::protocol::exec_query::PodExecOptions;

/// The query of an exec request, checked against the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    /// Reads the query exactly as kube-apiserver does (crate::protocol::exec_query: Go's
    /// `url.ParseQuery`, then apimachinery's conversion — dropped pairs, first value of a
    /// singleton, any boolean but `0`/`false` true), then checks it against the pod with the
    /// API server's 400 messages (`streamLocation` in pkg/registry/core/pod/strategy.go). The
    /// one difference: argv that is not UTF-8 is refused, since the dev cluster runs Rust
    /// strings.
    pub fn from_query(query: &str, pod: &Pod) -> Result<ExecOptions, Refusal> {
        ExecOptions::read(query, pod, false)
    }

    /// An attach request's options (`PodAttachOptions`: the exec's without `command`); the
    /// command is the container's own process (its `command`, default `sh`).
    pub fn for_attach(query: &str, pod: &Pod) -> Result<ExecOptions, Refusal> {
        ExecOptions::read(query, pod, true)
    }

    fn read(query: &str, pod: &Pod, attach: bool) -> Result<ExecOptions, Refusal> {
        let mut read = PodExecOptions::read(query);
        if attach {
            read.command.clear();
        }
        let text = |bytes: Vec<u8>| {
            String::from_utf8(bytes).map_err(|e| {
                refuse(
                    400,
                    format!(
                        "the dev cluster runs UTF-8 argv only: {:?}",
                        String::from_utf8_lossy(e.as_bytes())
                    ),
                )
            })
        };
        let mut options = ExecOptions {
            container: text(read.container)?,
            command: read
                .command
                .into_iter()
                .map(text)
                .collect::<Result<_, _>>()?,
            stdin: read.stdin,
            stdout: read.stdout,
            stderr: read.stderr,
            tty: read.tty,
        };
        if options.container.is_empty() {
            match pod.containers.as_slice() {
                [only] => options.container.clone_from(&only.name),
                _ => {
                    return Err(refuse(
                        400,
                        format!(
                            "a container name must be specified for pod {}, choose one of: [{}]",
                            pod.name,
                            pod.container_names().join(" ")
                        ),
                    ));
                }
            }
        } else if pod.container(&options.container).is_none() {
            return Err(refuse(
                400,
                format!(
                    "container {} is not valid for pod {}",
                    options.container, pod.name
                ),
            ));
        }
        if !options.stdin && !options.stdout && !options.stderr {
            return Err(refuse(
                400,
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        if attach {
            let container = pod.container(&options.container).expect("checked above");
            options.command = container
                .command
                .clone()
                .unwrap_or_else(|| vec!["sh".into()]);
        }
        if options.command.is_empty() {
            return Err(refuse(
                400,
                "you must specify at least one command for the container",
            ));
        }
        if options.tty && options.stderr {
            // With a terminal, stderr is the terminal (as the kubelet does).
            options.stderr = false;
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devcluster::manifest::Manifest;

    fn pod(name: &str) -> Pod {
        let m = Manifest::builtin();
        m.pods.iter().find(|p| p.name == name).unwrap().clone()
    }

    #[test]
    fn options_parse_like_the_api_server() {
        let o = ExecOptions::from_query(
            "container=app&command=sh&command=-c&command=echo%20hi+there&stdin=true&stdout=1&stderr=True&tty=false",
            &pod("web-0"),
        )
        .unwrap();
        assert_eq!(o.container, "app");
        assert_eq!(o.command, ["sh", "-c", "echo hi there"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let o = ExecOptions::from_query("command=ls&stdout=true", &pod("tools")).unwrap();
        assert_eq!(o.container, "shell");
        let o =
            ExecOptions::from_query("command=ls&stdout=true&stderr=true&tty=true", &pod("tools"))
                .unwrap();
        assert!(o.tty && !o.stderr);
    }

    #[test]
    fn options_errors() {
        let err = |q: &str, p: &str| *ExecOptions::from_query(q, &pod(p)).unwrap_err().0;
        let e = err("command=ls&stdout=true", "web-0");
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "a container name must be specified for pod web-0, choose one of: [app sidecar]"
        );
        let e = err("container=x&command=ls&stdout=true", "web-0");
        assert_eq!(e.message, "container x is not valid for pod web-0");
        let e = err("command=ls", "tools");
        assert_eq!(
            e.message,
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        let e = err("stdout=true", "tools");
        assert_eq!(
            e.message,
            "you must specify at least one command for the container"
        );
        let e = err("command=%e2%28&stdout=true", "tools");
        assert_eq!(e.code, 400);
    }

    #[test]
    fn options_read_like_kube_apiserver() {
        // L5: what the API server runs, not a friendlier reading.
        let o = |q: &str, p: &str| ExecOptions::from_query(q, &pod(p)).unwrap();
        assert!(o("command=ls&stdout=yes&tty=t", "tools").tty);
        assert!(o("command=ls&stdout=&tty=true&tty=false", "tools").tty);
        assert_eq!(
            o(
                "container=sidecar&container=app&command=id&stdout=1",
                "web-0"
            )
            .container,
            "sidecar"
        );
        assert_eq!(
            o(
                "command=echo&command=a;b&command=-e&command=%zz&stdout=1",
                "tools"
            )
            .command,
            ["echo", "-e"]
        );
    }
}
