//! The exec request's query (`container`, `command`, `stdin`, `stdout`, `stderr`, `tty`), parsed
//! and checked against the pod as the API server does, with its 400 messages.

use crate::devcluster::api::{Refusal, refuse};
use crate::devcluster::manifest::Pod;

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
    /// Parses `container=&command=…&stdin=&stdout=&stderr=&tty=` as the API server does,
    /// refusing what it refuses (400) with its messages.
    pub fn from_query(query: &str, pod: &Pod) -> Result<ExecOptions, Refusal> {
        let mut options = ExecOptions {
            container: String::new(),
            command: Vec::new(),
            stdin: false,
            stdout: false,
            stderr: false,
            tty: false,
        };
        for pair in query_pairs(query) {
            let (key, value) = pair?;
            let flag = |v: &str| {
                parse_go_bool(v).ok_or_else(|| {
                    refuse(
                        400,
                        format!("strconv.ParseBool: parsing {v:?}: invalid syntax"),
                    )
                })
            };
            match key.as_str() {
                "container" => options.container = value,
                "command" => options.command.push(value),
                "stdin" | "input" => options.stdin = flag(&value)?,
                "stdout" | "output" => options.stdout = flag(&value)?,
                "stderr" => options.stderr = flag(&value)?,
                "tty" => options.tty = flag(&value)?,
                _ => {}
            }
        }
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

/// Go's `strconv.ParseBool`, which the API server uses for query flags.
pub(crate) fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The decoded `key=value` pairs of a query string.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = Result<(String, String), Refusal>> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        Ok((percent_decode(key)?, percent_decode(value)?))
    })
}

/// Decodes `application/x-www-form-urlencoded` text (`%XX`, `+` for space).
fn percent_decode(text: &str) -> Result<String, Refusal> {
    let bad = || refuse(400, format!("invalid URL escape in {text:?}"));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
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
        let e = err("command=ls&stdout=yes", "tools");
        assert_eq!(e.code, 400);
        let e = err("command=%zz&stdout=true", "tools");
        assert_eq!(e.code, 400);
        let e = err("command=%e2%28&stdout=true", "tools");
        assert_eq!(e.code, 400);
    }
}
