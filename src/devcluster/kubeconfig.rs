//! The kubeconfig the dev cluster writes: cluster, user and context all named `dev`.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use serde_json::json;

/// The name of the kubeconfig's cluster, user and context.
pub const NAME: &str = "dev";

/// The kubeconfig text: `server`, a bearer `token`, and the CA when serving TLS.
pub fn render(server: &str, token: &str, ca_pem: Option<&str>) -> String {
    let mut cluster = json!({ "server": server });
    if let Some(ca) = ca_pem {
        cluster["certificate-authority-data"] =
            base64::engine::general_purpose::STANDARD.encode(ca).into();
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": NAME, "cluster": cluster }],
        "users": [{ "name": NAME, "user": { "token": token } }],
        "contexts": [{ "name": NAME, "context": { "cluster": NAME, "user": NAME, "namespace": "default" } }],
        "current-context": NAME,
        "preferences": {},
    });
    serde_saphyr::to_string(&config).expect("serializing a kubeconfig cannot fail")
}

/// Writes the kubeconfig to `path` (mode 0600: it holds the token), creating parent
/// directories.
pub fn write(path: &Path, server: &str, token: &str, ca_pem: Option<&str>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(render(server, token, ca_pem).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cluster_user_and_context_named_dev() {
        let text = render("https://127.0.0.1:1234", "tok", Some("PEM"));
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["current-context"], "dev");
        assert_eq!(v["clusters"][0]["name"], "dev");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:1234"
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
        assert_eq!(v["users"][0]["name"], "dev");
        assert_eq!(v["users"][0]["user"]["token"], "tok");
        assert_eq!(v["contexts"][0]["context"]["cluster"], "dev");
        let plain = render("http://127.0.0.1:1", "t", None);
        assert!(!plain.contains("certificate-authority-data"));
    }
}
