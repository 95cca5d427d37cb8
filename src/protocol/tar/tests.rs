//! The tar reader against GNU tar's own archives and hand-made hostile ones.

use super::*;

fn raw(name: &str, kind: u8, link: &str, size: u64) -> [u8; BLOCK] {
    raw_header(name, kind, link, size).unwrap()
}

fn archive(entries: &[([u8; BLOCK], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, data) in entries {
        out.extend_from_slice(h);
        out.extend_from_slice(data);
        out.extend(std::iter::repeat_n(0, padding(data.len() as u64) as usize));
    }
    out.extend_from_slice(&[0; 2 * BLOCK]);
    out
}

/// Parses `bytes` in chunks of `chunk`: the entries and the data, or the first error.
fn read(top: &str, bytes: &[u8], chunk: usize) -> Result<(Vec<Entry>, Vec<u8>), TarError> {
    let mut reader = TarReader::new(top, u64::MAX);
    let mut entries = Vec::new();
    let mut data = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        reader.push(piece, &mut |e| {
            match e {
                Event::Entry(e) => entries.push(e.clone()),
                Event::Data(d) => data.extend_from_slice(d),
            }
            Ok(())
        })?;
    }
    reader.finish()?;
    Ok((entries, data))
}

#[test]
fn gnu_tars_own_archives_pass() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("top");
    std::fs::create_dir_all(top.join("sub")).unwrap();
    std::fs::write(top.join("a.txt"), b"hello").unwrap();
    let long = "n".repeat(150);
    std::fs::write(top.join("sub").join(&long), vec![7u8; 3000]).unwrap();
    std::os::unix::fs::symlink("a.txt", top.join("link")).unwrap();
    std::os::unix::fs::symlink("../a.txt", top.join("sub/up")).unwrap();
    for format in ["gnu", "pax", "ustar"] {
        let out = std::process::Command::new("tar")
            .args(["--format", format, "-cf", "-", "-C"])
            .arg(dir.path())
            .arg("top")
            .output()
            .unwrap();
        if format == "ustar" && !out.status.success() {
            continue; // a 150-byte name does not fit ustar
        }
        assert!(out.status.success(), "{format}");
        for chunk in [1, 7, 512, 100_000] {
            let (entries, data) = read("top", &out.stdout, chunk).unwrap();
            let names: HashSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            assert!(names.contains("top/a.txt"), "{format}: {names:?}");
            assert!(
                names.contains(format!("top/sub/{long}").as_str()),
                "{format}"
            );
            assert_eq!(data.len(), 5 + 3000, "{format}");
            let link = entries.iter().find(|e| e.name == "top/link").unwrap();
            assert_eq!(
                (link.kind, link.link.as_deref()),
                (Kind::Symlink, Some("a.txt"))
            );
        }
    }
}

#[test]
fn hostile_entries_are_refused() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (archive(&[(raw("../evil", b'0', "", 1), b"x")]), "`..`"),
        (
            archive(&[(raw("top/../../evil", b'0', "", 1), b"x")]),
            "`..`",
        ),
        (
            archive(&[(raw("/etc/passwd", b'0', "", 1), b"x")]),
            "absolute",
        ),
        (
            archive(&[(raw("other/file", b'0', "", 1), b"x")]),
            "outside",
        ),
        (
            archive(&[(raw("top/link", b'2', "/etc/shadow", 0), b"")]),
            "links to",
        ),
        (
            archive(&[(raw("top/link", b'2', "../../etc", 0), b"")]),
            "links to",
        ),
        (
            archive(&[(raw("top/a/link", b'2', "../../x", 0), b"")]),
            "links to",
        ),
        (
            archive(&[(raw("top/hard", b'1', "etc/passwd", 0), b"")]),
            "hard link",
        ),
        (
            archive(&[(raw("top/hard", b'1', "top/later", 0), b"")]),
            "hard link",
        ),
        (
            archive(&[(raw("top/dev", b'3', "", 0), b"")]),
            "character device",
        ),
        (
            archive(&[(raw("top/blk", b'4', "", 0), b"")]),
            "block device",
        ),
        (archive(&[(raw("top/fifo", b'6', "", 0), b"")]), "FIFO"),
        (archive(&[(raw("top/a\nb", b'0', "", 0), b"")]), "control"),
    ];
    for (bytes, needle) in cases {
        let err = read("top", &bytes, 512).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // A PAX path overrides a harmless header name.
    let record = "23 path=../../etc/cron\n";
    let mut pax = raw("top/pax", b'x', "", record.len() as u64);
    pax[..100].fill(0);
    let bytes = archive(&[
        (pax, record.as_bytes()),
        (raw("top/harmless", b'0', "", 1), b"x"),
    ]);
    // Fix the PAX header's checksum after editing its name.
    let mut bytes = bytes;
    bytes[148..156].copy_from_slice(b"        ");
    let sum: u64 = bytes[..BLOCK].iter().map(|&b| u64::from(b)).sum();
    bytes[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let err = read("top", &bytes, 512).unwrap_err().to_string();
    assert!(err.contains("`..`"), "{err}");
    // A GNU long name does too.
    let long = "top/../../../root/.ssh/authorized_keys";
    let bytes = archive(&[
        (
            raw("././@LongLink", b'L', "", long.len() as u64),
            long.as_bytes(),
        ),
        (raw("top/x", b'0', "", 1), b"x"),
    ]);
    let err = read("top", &bytes, 3).unwrap_err().to_string();
    assert!(err.contains("`..`"), "{err}");
    // Links that stay inside pass.
    let ok = archive(&[
        (raw("top/a", b'0', "", 1), b"x"),
        (raw("top/d/l", b'2', "../a", 0), b""),
        (raw("top/h", b'1', "top/a", 0), b""),
    ]);
    assert_eq!(read("top", &ok, 512).unwrap().0.len(), 3);
}

#[test]
fn broken_streams_are_refused() {
    let mut bad = archive(&[(raw("top", b'0', "", 1), b"x")]);
    bad[0] = b'u';
    assert!(matches!(read("top", &bad, 512), Err(TarError::Checksum(1))));
    let good = archive(&[(raw("top", b'0', "", 600), &[1; 600])]);
    assert!(matches!(
        read("top", &good[..700], 512),
        Err(TarError::Truncated)
    ));
    assert!(matches!(read("top", b"", 512), Err(TarError::Truncated)));
    assert!(matches!(
        read("top", &[0x41; 2000], 512),
        Err(TarError::Checksum(1))
    ));
    let mut limited = TarReader::new("top", 1000);
    assert!(matches!(
        limited.push(&good, &mut |_| Ok(())),
        Err(TarError::TooLarge(1000))
    ));
}

#[test]
fn the_upload_header_is_read_by_gnu_tar() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"uploaded \xff bytes";
    let mut bytes = file_header("up.bin", data.len() as u64, 0o640, 1_700_000_000)
        .unwrap()
        .to_vec();
    bytes.extend_from_slice(data);
    bytes.extend(trailer(data.len() as u64));
    let (entries, got) = read("up.bin", &bytes, 512).unwrap();
    assert_eq!(entries[0].mode, 0o640);
    assert_eq!(got, data);
    let mut tar = std::process::Command::new("tar")
        .args(["xf", "-", "-C"])
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    tar.stdin.take().unwrap().write_all(&bytes).unwrap();
    assert!(tar.wait().unwrap().success());
    assert_eq!(std::fs::read(dir.path().join("up.bin")).unwrap(), data);
    for bad in ["", ".", "..", "a/b", &"x".repeat(100)] {
        assert!(file_header(bad, 0, 0o644, 0).is_none(), "{bad:?}");
    }
}

#[test]
fn anywhere_takes_clean_names_and_keeps_links_inside() {
    let ok = archive(&[
        (raw("a", b'5', "", 0), b""),
        (raw("a/b.txt", b'0', "", 1), b"x"),
        (raw("c.txt", b'0', "", 1), b"y"),
        (raw("a/l", b'2', "../c.txt", 0), b""),
    ]);
    let mut reader = TarReader::anywhere(u64::MAX);
    reader.push(&ok, &mut |_| Ok(())).unwrap();
    reader.finish().unwrap();
    for (bad, needle) in [
        (archive(&[(raw("../x", b'0', "", 1), b"x")]), "`..`"),
        (archive(&[(raw("/x", b'0', "", 1), b"x")]), "absolute"),
        (archive(&[(raw("l", b'2', "../x", 0), b"")]), "links to"),
        (archive(&[(raw("./", b'5', "", 0), b"")]), "empty"),
    ] {
        let mut reader = TarReader::anywhere(u64::MAX);
        let err = reader.push(&bad, &mut |_| Ok(())).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
