//! What a rule grants beside exec: files (`files.read`, `files.write`: path globs), pod logs
//! (`logs`), debug containers (`debug.images`: image globs) and attach.
//!
//! ```yaml
//! rules:
//!   - groups: [support]
//!     mode: restricted
//!     allow: [[jmap, "-dump:format=b,file=/tmp/heap.hprof", "[0-9]*"]]
//!     files:
//!       read: ["/tmp/*.hprof"]     # download these (and only these)
//!     logs: true                   # read pods/log here (default: true only in shell mode)
//!   - groups: [viewers]
//!     mode: none                   # no exec, no attach: only what logs/files grant
//!     logs: true
//!   - groups: [sre]
//!     mode: shell                  # files default to read and write anywhere ("/**")
//!     debug:
//!       images: ["busybox:1.36", "ghcr.io/acme/debug:*"]
//! ```
//!
//! Paths are judged after [`normalize_path`]: absolute, no `.` or `..` segments, no empty
//! segment. The globs are argument globs (`policy::glob`): `*` stops at `/` and at a leading
//! dot, `**` crosses both. Attach and debug containers hand out an interactive terminal, so
//! they need `mode: shell`; a debug image must match `debug.images` (no list: no debug).

use serde::Deserialize;

use super::glob::{Flavor, Glob};

/// Which way a file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the container to the caller (download, `kubectl cp pod:… .`).
    Read,
    /// From the caller into the container (upload, `kubectl cp . pod:…`).
    Write,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }
}

/// A rule's file globs for each direction.
#[derive(Debug, Clone, Default)]
pub struct FileRules {
    pub read: Vec<Glob>,
    pub write: Vec<Glob>,
}

impl FileRules {
    /// Anything, both ways (shell mode's default: the shell could copy it anyway).
    pub fn anything() -> FileRules {
        let all = vec![Glob::new("/**", Flavor::Argument).expect("valid glob")];
        FileRules {
            read: all.clone(),
            write: all,
        }
    }

    /// The globs for `direction`.
    pub fn globs(&self, direction: Direction) -> &[Glob] {
        match direction {
            Direction::Read => &self.read,
            Direction::Write => &self.write,
        }
    }

    /// Whether the normalized absolute `path` may go `direction`.
    pub fn permits(&self, direction: Direction, path: &str) -> bool {
        self.globs(direction).iter().any(|g| g.matches(path))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilesFile {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DebugFile {
    images: Vec<String>,
}

pub(super) fn compile_files(files: FilesFile) -> Result<FileRules, String> {
    let compile = |field: &str, list: &[String]| -> Result<Vec<Glob>, String> {
        list.iter()
            .map(|p| {
                if !p.starts_with('/') {
                    return Err(format!(
                        "files.{field}: `{p}` is not an absolute path glob (start it with `/`)"
                    ));
                }
                Glob::new(p, Flavor::Argument).map_err(|e| format!("files.{field}: {e}"))
            })
            .collect()
    };
    if files.read.is_empty() && files.write.is_empty() {
        return Err("`files` needs `read` or `write` globs".into());
    }
    Ok(FileRules {
        read: compile("read", &files.read)?,
        write: compile("write", &files.write)?,
    })
}

pub(super) fn compile_debug(debug: DebugFile) -> Result<Vec<Glob>, String> {
    if debug.images.is_empty() {
        return Err("`debug.images` is empty: list the images debug containers may use".into());
    }
    debug
        .images
        .iter()
        .map(|p| Glob::new(p, Flavor::Name).map_err(|e| format!("debug.images: {e}")))
        .collect()
}

/// Why a path cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("path {0:?} is not absolute: give the full path in the container")]
    Relative(String),
    #[error("path {0:?} has a `..` segment")]
    DotDot(String),
    #[error("path {0:?} has a NUL byte or a control character")]
    Control(String),
    #[error("path {0:?} is longer than {MAX_PATH_BYTES} bytes")]
    TooLong(String),
}

/// Longest path judged, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// `path` as the policy judges it: absolute, `.` and empty segments removed, no `..` (refused
/// rather than resolved: the container's symlinks decide what `..` means, not podterm).
pub fn normalize_path(path: &str) -> Result<String, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(path.chars().take(64).collect()));
    }
    if path.chars().any(char::is_control) {
        return Err(PathError::Control(path.into()));
    }
    if !path.starts_with('/') {
        return Err(PathError::Relative(path.into()));
    }
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(PathError::DotDot(path.into())),
            s => {
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The directory and last segment of a normalized path (`/` has no last segment).
pub fn split_path(normalized: &str) -> Option<(&str, &str)> {
    let (dir, name) = normalized.rsplit_once('/')?;
    if name.is_empty() {
        return None;
    }
    Some((if dir.is_empty() { "/" } else { dir }, name))
}

/// What a `kubectl cp` exec copies, read from the argv kubectl builds (`k8s.io/kubectl/pkg/cmd/
/// cp/cp.go`): `tar cf - PATH` (from the container), `tar [--no-same-permissions
/// --no-same-owner] -xmf - [-C DIR]` (into it) and `test -d PATH` (its probe of the
/// destination). Only absolute paths are judged (a relative one depends on the container's
/// working directory); its retry form (`sh -c "tar cf - PATH | tail -c+N"`) is a shell and is
/// judged as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// `tar cf - PATH`: PATH (normalized) goes to the caller.
    Read { path: String },
    /// `tar -xmf - -C DIR`: the caller's archive is unpacked in DIR (normalized).
    Write { dir: String },
    /// `test -d PATH`: kubectl asks whether the destination is a directory.
    Probe { path: String },
}

impl Copy {
    /// The copy `argv` makes, if it is one of kubectl cp's.
    pub fn of(argv: &[String]) -> Option<Copy> {
        // Every session asks; nearly none is a copy, and those need no list of their words.
        if !matches!(argv.first().map(String::as_str), Some("tar" | "test")) {
            return None;
        }
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let absolute = |p: &str| normalize_path(p).ok();
        match args.as_slice() {
            ["tar", "cf", "-", path] => Some(Copy::Read {
                path: absolute(path)?,
            }),
            ["test", "-d", path] => Some(Copy::Probe {
                path: absolute(path)?,
            }),
            ["tar", rest @ ..] => {
                let rest = match rest {
                    ["--no-same-permissions", "--no-same-owner", rest @ ..] => rest,
                    rest => rest,
                };
                match rest {
                    ["-xmf", "-", "-C", dir] => Some(Copy::Write {
                        dir: absolute(dir)?,
                    }),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The direction and the path the policy's file globs judge.
    pub fn judged(&self) -> (Direction, &str) {
        match self {
            Copy::Read { path } => (Direction::Read, path),
            Copy::Write { dir } => (Direction::Write, dir),
            Copy::Probe { path } => (Direction::Write, path),
        }
    }
}

/// The checks a `kubectl cp` session's tar stream goes through in the relay: every entry of
/// what the container sends (a read), or of what the caller sends (a write), with each
/// written path judged by the rule's write globs.
#[derive(Debug, Clone)]
pub struct CopyCheck {
    pub copy: Copy,
    /// For a write: the globs every unpacked path must match.
    pub write: Vec<Glob>,
    /// The most bytes the stream may carry.
    pub limit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_cp_argv_is_recognized() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Copy::of(&argv(&["tar", "cf", "-", "/tmp//heap.hprof"])),
            Some(Copy::Read {
                path: "/tmp/heap.hprof".into()
            })
        );
        assert_eq!(
            Copy::of(&argv(&["tar", "-xmf", "-", "-C", "/tmp/in"])),
            Some(Copy::Write {
                dir: "/tmp/in".into()
            })
        );
        assert_eq!(
            Copy::of(&argv(&[
                "tar",
                "--no-same-permissions",
                "--no-same-owner",
                "-xmf",
                "-",
                "-C",
                "/d"
            ])),
            Some(Copy::Write { dir: "/d".into() })
        );
        assert_eq!(
            Copy::of(&argv(&["test", "-d", "/tmp/x"])),
            Some(Copy::Probe {
                path: "/tmp/x".into()
            })
        );
        for other in [
            &["tar", "cf", "-", "relative"][..],
            &["tar", "cf", "-", "/a/../etc"],
            &["tar", "cf", "-", "/a", "/b"],
            &["tar", "-xmf", "-"],
            &["sh", "-c", "tar cf - /tmp/x | tail -c+10"],
            &["tar", "xf", "-", "--to-command=sh"],
        ] {
            assert_eq!(Copy::of(&argv(other)), None, "{other:?}");
        }
    }

    #[test]
    fn paths_are_normalized_or_refused() {
        assert_eq!(normalize_path("/tmp//a/./b").unwrap(), "/tmp/a/b");
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert_eq!(normalize_path("/tmp/").unwrap(), "/tmp");
        assert!(matches!(
            normalize_path("/tmp/../etc"),
            Err(PathError::DotDot(_))
        ));
        assert!(matches!(
            normalize_path("tmp/x"),
            Err(PathError::Relative(_))
        ));
        assert!(matches!(
            normalize_path("/tmp/a\nb"),
            Err(PathError::Control(_))
        ));
        assert!(matches!(normalize_path(""), Err(PathError::Empty)));
        assert_eq!(split_path("/tmp/a"), Some(("/tmp", "a")));
        assert_eq!(split_path("/a"), Some(("/", "a")));
        assert_eq!(split_path("/"), None);
    }

    #[test]
    fn file_globs_follow_pathname_rules() {
        let rules = compile_files(FilesFile {
            read: vec!["/tmp/*.hprof".into()],
            write: vec![],
        })
        .unwrap();
        assert!(rules.permits(Direction::Read, "/tmp/heap.hprof"));
        assert!(!rules.permits(Direction::Read, "/tmp/a/heap.hprof"));
        assert!(!rules.permits(Direction::Read, "/tmp/.cache/heap.hprof"));
        assert!(!rules.permits(Direction::Write, "/tmp/heap.hprof"));
        assert!(FileRules::anything().permits(Direction::Write, "/etc/.x/y"));
        assert!(
            compile_files(FilesFile {
                read: vec!["tmp/*".into()],
                write: vec![]
            })
            .unwrap_err()
            .contains("not an absolute")
        );
    }
}
