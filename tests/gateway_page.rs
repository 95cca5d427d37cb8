//! The page's files through the gateway: brotli or gzip as the browser accepts them (made at
//! build time), the same bytes as plain, `Vary: accept-encoding`, and an `ETag` per coding
//! that revalidates to 304.

#[path = "support/gateway.rs"]
mod support;

use std::io::Read as _;

use hyper::StatusCode;
use support::Stack;

struct Got {
    code: StatusCode,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

async fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    let (parts, body) = support::fetch(addr, path, headers).await.into_parts();
    Got {
        code: parts.status,
        headers: parts.headers,
        body: body.to_vec(),
    }
}

fn header<'a>(got: &'a Got, name: &str) -> Option<&'a str> {
    got.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn page_files_come_compressed_as_accepted_and_revalidate_per_coding() {
    let s = Stack::start(&[("PODTERM_LISTEN", "127.0.0.1:0"), ("PODTERM_AUTH", "none")]).await;
    for path in ["/", "/assets/app.js", "/assets/style.css"] {
        let plain = get(s.addr, path, &[]).await;
        assert_eq!(plain.code, StatusCode::OK, "{path}");
        assert_eq!(header(&plain, "content-encoding"), None);
        assert_eq!(header(&plain, "vary"), Some("accept-encoding"));

        let br = get(
            s.addr,
            path,
            &[("accept-encoding", "gzip, deflate, br, zstd")],
        )
        .await;
        assert_eq!(header(&br, "content-encoding"), Some("br"), "{path}");
        assert!(br.body.len() < plain.body.len());
        let mut unpacked = Vec::new();
        brotli::Decompressor::new(&br.body[..], 4096)
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, plain.body, "{path}");

        let gz = get(s.addr, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(header(&gz, "content-encoding"), Some("gzip"));
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&gz.body[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, plain.body);

        // Each coding is its own representation: its own ETag, each revalidating to 304.
        let tags = [&plain, &br, &gz].map(|g| header(g, "etag").unwrap().to_string());
        assert!(tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2]);
        let again = get(
            s.addr,
            path,
            &[("accept-encoding", "br"), ("if-none-match", &tags[1])],
        )
        .await;
        assert_eq!(again.code, StatusCode::NOT_MODIFIED);
        assert!(again.body.is_empty());
        let stale = get(
            s.addr,
            path,
            &[("accept-encoding", "gzip"), ("if-none-match", &tags[1])],
        )
        .await;
        assert_eq!(
            stale.code,
            StatusCode::OK,
            "the brotli tag is not the gzip form's"
        );
    }
}
