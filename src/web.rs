//! The web terminal page, embedded at build time (see build.rs): path → bytes and headers.

/// One embedded file, with the headers to serve it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// `Content-Type`.
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    /// The same bytes gzipped and brotli-compressed at build time, where that saves a tenth.
    pub gzip: Option<&'static [u8]>,
    pub br: Option<&'static [u8]>,
    /// `ETag` (quoted): a hash of the bytes.
    pub etag: &'static str,
    /// `Cache-Control`: `immutable` for vendor files (their path carries the content hash),
    /// `no-cache` for the page and its own scripts (revalidated by `ETag`).
    pub cache_control: &'static str,
}

/// Whether a request's `If-None-Match` value names `etag`, so the answer is `304 Not
/// Modified` without a body.
pub fn matches_etag(if_none_match: Option<&[u8]>, etag: &str) -> bool {
    let Some(value) = if_none_match.and_then(|v| std::str::from_utf8(v).ok()) else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A content coding the page's assets come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Br,
}

impl Asset {
    /// The body to send for a request's `Accept-Encoding`: brotli, else gzip, where the client
    /// accepts it (a `q=0` refuses, RFC 9110 §12.5.3) and the asset has it.
    pub fn encoded(&self, accept_encoding: Option<&[u8]>) -> (Coding, &'static [u8]) {
        let accepted = |coding: &str| {
            let Some(value) = accept_encoding.and_then(|v| std::str::from_utf8(v).ok()) else {
                return false;
            };
            value.split(',').any(|item| {
                let mut parts = item.split(';').map(str::trim);
                let name = parts.next().unwrap_or_default();
                let q = parts
                    .find_map(|p| p.strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (name.eq_ignore_ascii_case(coding) || name == "*") && q > 0.0
            })
        };
        match (self.br, self.gzip) {
            (Some(br), _) if accepted("br") => (Coding::Br, br),
            (_, Some(gz)) if accepted("gzip") => (Coding::Gzip, gz),
            _ => (Coding::Identity, self.bytes),
        }
    }
}

impl Coding {
    /// The `Content-Encoding` value, if any.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Br => Some("br"),
        }
    }

    /// The `ETag` of an asset in this coding: a representation of its own (RFC 9110 §8.8.3).
    pub fn etag(self, etag: &str) -> String {
        match self.header() {
            Some(c) => format!("{}-{c}\"", etag.trim_end_matches('"')),
            None => etag.to_string(),
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The asset served at `path` (the request path without the query): `/` and `/index.html` are
/// the page, `/assets/…` its scripts, styles and the xterm.js files; anything else is `None`.
pub fn asset(path: &str) -> Option<Asset> {
    lookup(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_served_at_the_root_and_revalidated() {
        let index = asset("/").expect("the page is embedded");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert_eq!(index.cache_control, "no-cache");
        assert_eq!(asset("/index.html"), Some(index));
        let html = std::str::from_utf8(index.bytes).unwrap();
        assert!(html.contains("assets/app.js"));
    }

    #[test]
    fn every_file_the_page_names_is_embedded_and_vendor_files_are_immutable() {
        let html = std::str::from_utf8(asset("/").unwrap().bytes).unwrap();
        let mut vendor = 0;
        for piece in html.split('"') {
            let Some(rel) = piece.strip_prefix("./").or(Some(piece)) else {
                continue;
            };
            if !rel.starts_with("assets/") {
                continue;
            }
            let a = asset(&format!("/{rel}")).unwrap_or_else(|| panic!("{rel} is not embedded"));
            if rel.starts_with("assets/vendor/") {
                vendor += 1;
                assert!(a.cache_control.contains("immutable"), "{rel}");
                // The name carries the first 12 hex digits of the content hash.
                assert!(
                    rel.contains(&a.etag[1..13]),
                    "{rel} is not named by its hash"
                );
            }
        }
        assert_eq!(vendor, 6, "xterm.js, its css and four addons");
    }

    #[test]
    fn vendor_modules_are_javascript_without_source_map_links() {
        for path in PATHS.iter().filter(|p| p.ends_with(".mjs")) {
            let a = asset(path).unwrap();
            assert_eq!(a.content_type, "text/javascript; charset=utf-8");
            let text = std::str::from_utf8(a.bytes).unwrap();
            assert!(text.contains("export{"), "{path} is an ES module");
            assert!(!text.contains("sourceMappingURL"), "{path}");
        }
    }

    /// The page speaks the exec protocol itself: its constants must be the gateway's.
    #[test]
    fn page_channel_constants_match_the_protocol_module() {
        use crate::protocol;
        let js = include_str!("../web/page/exec.js");
        let constant = |name: &str| -> String {
            let decl = format!("export const {name} = ");
            let at = js
                .find(&decl)
                .unwrap_or_else(|| panic!("exec.js lacks {decl}"));
            let rest = &js[at + decl.len()..];
            rest[..rest.find(';').expect("a ; ends the declaration")]
                .trim_matches('\'')
                .to_owned()
        };
        for (name, value) in [
            ("STDIN", protocol::STDIN),
            ("STDOUT", protocol::STDOUT),
            ("STDERR", protocol::STDERR),
            ("ERROR", protocol::ERROR),
            ("RESIZE", protocol::RESIZE),
            ("CLOSE", protocol::CLOSE),
        ] {
            assert_eq!(constant(name), value.to_string(), "{name}");
        }
        assert_eq!(constant("SUBPROTOCOL_V5"), protocol::V5);
        assert_eq!(constant("SUBPROTOCOL_V4"), protocol::V4);
        assert_eq!(constant("SUBPROTOCOL_FLOW_V5"), protocol::flow::FLOW_V5);
        assert_eq!(constant("SUBPROTOCOL_FLOW_V4"), protocol::flow::FLOW_V4);
        assert_eq!(constant("ACK"), protocol::flow::ACK.to_string());
        assert_eq!(
            constant("SUBPROTOCOL_RESUME_V5"),
            protocol::resume::RESUME_V5
        );
        assert_eq!(
            constant("SUBPROTOCOL_RESUME_V4"),
            protocol::resume::RESUME_V4
        );
        assert_eq!(constant("CONTROL"), protocol::resume::CONTROL.to_string());
        // Offered in the gateway's order of preference: resume, then flow control, then plain.
        let order = "SUBPROTOCOL_RESUME_V5,\n  SUBPROTOCOL_RESUME_V4,\n  SUBPROTOCOL_FLOW_V5,\n  \
                     SUBPROTOCOL_FLOW_V4,\n  SUBPROTOCOL_V5,\n  SUBPROTOCOL_V4,";
        assert!(js.contains(order), "exec.js offers {order}");
        assert_eq!(protocol::SUBPROTOCOLS, [protocol::V5, protocol::V4]);
    }

    #[test]
    fn unknown_paths_are_none() {
        for path in [
            "",
            "/assets/",
            "/assets/nope.js",
            "/../Cargo.toml",
            "/api/clusters",
        ] {
            assert_eq!(asset(path), None, "{path}");
        }
    }

    #[test]
    fn etags_match_if_none_match() {
        let a = asset("/assets/app.js").unwrap();
        let fresh = |inm: &[u8]| matches_etag(Some(inm), a.etag);
        assert!(fresh(a.etag.as_bytes()));
        assert!(fresh(format!("\"x\", W/{}", a.etag).as_bytes()));
        assert!(fresh(b"*"));
        assert!(!fresh(b"\"other\""));
        assert!(!matches_etag(None, a.etag));
    }

    #[test]
    fn text_assets_come_precompressed_and_are_picked_by_accept_encoding() {
        use std::io::Read as _;
        let a = asset("/assets/vendor/xterm.mjs")
            .or_else(|| {
                PATHS
                    .iter()
                    .filter(|p| p.ends_with(".mjs"))
                    .find_map(|p| asset(p))
            })
            .unwrap();
        let (br, gz) = (a.br.expect("brotli"), a.gzip.expect("gzip"));
        assert!(br.len() < a.bytes.len() / 2 && gz.len() < a.bytes.len() / 2);
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, a.bytes);
        let mut unbr = Vec::new();
        brotli::Decompressor::new(br, 4096)
            .read_to_end(&mut unbr)
            .unwrap();
        assert_eq!(unbr, a.bytes);
        assert_eq!(a.encoded(Some(b"gzip, deflate, br, zstd")).0, Coding::Br);
        assert_eq!(a.encoded(Some(b"gzip")).0, Coding::Gzip);
        assert_eq!(a.encoded(Some(b"br;q=0, gzip;q=0.5")).0, Coding::Gzip);
        assert_eq!(a.encoded(Some(b"identity")).0, Coding::Identity);
        assert_eq!(a.encoded(Some(b"*")).0, Coding::Br);
        assert_eq!(a.encoded(None), (Coding::Identity, a.bytes));
        assert_eq!(Coding::Br.etag("\"abc\""), "\"abc-br\"");
    }
}
