//! Test support: an in-process dev cluster on 127.0.0.1:0 and the real kubectl binaries.
#![allow(dead_code)]

use std::path::Path;
use std::process::Output;

use podterm::devcluster::{DevCluster, DevClusterConfig};

#[path = "command.rs"]
mod command;
#[allow(unused_imports)] // not every test binary uses each
pub use command::{KUBECTL_VERSIONS, kubectl_bin, run, text};

/// A dev cluster with its own temporary directory (kubeconfig, kubectl's HOME and cache).
pub struct Dev {
    pub cluster: DevCluster,
    pub dir: tempfile::TempDir,
}

impl Dev {
    pub async fn start() -> Dev {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = DevClusterConfig::ephemeral(dir.path().join("dev.kubeconfig"));
        let cluster = DevCluster::start(config).await.expect("dev cluster starts");
        Dev { cluster, dir }
    }

    /// Runs `kubectl.<version>` with the written kubeconfig, feeding `stdin` (or none).
    pub async fn kubectl(&self, version: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = tokio::process::Command::new(kubectl_bin(version));
        cmd.arg("--kubeconfig")
            .arg(&self.cluster.kubeconfig)
            .args(args);
        self.env(&mut cmd);
        run(cmd, stdin).await
    }

    /// Runs `command` under `script` so that kubectl has a terminal.
    pub async fn in_terminal(&self, command: &str) -> Output {
        let mut cmd = tokio::process::Command::new("script");
        cmd.args(["-qec", command, "/dev/null"]);
        self.env(&mut cmd);
        run(cmd, None).await
    }

    fn env(&self, cmd: &mut tokio::process::Command) {
        // kubectl's discovery cache and config stay inside this test's directory.
        cmd.env("HOME", self.dir.path())
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env_remove("KUBECONFIG");
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.cluster.kubeconfig
    }
}
