//! Tar streams podterm reads from a container and writes into one — pure code, no I/O.
//!
//! [`TarReader`] is a push parser for what `tar cf -` in a container sends (ustar, with GNU
//! long names `L`/`K` and PAX `x`/`g` records, as GNU tar and busybox write them). It checks
//! every entry before a byte of it is passed on, because the container is not trusted: kubectl
//! cp's CVEs (CVE-2018-1002100, CVE-2019-1002101, CVE-2019-11246, CVE-2019-11249,
//! CVE-2019-11251) all came from believing this stream. An entry is refused when
//! - its name is absolute, has a `..` segment, a NUL or control byte, or lies outside the one
//!   top-level name that was asked for;
//! - it is a device, a FIFO or any type other than a file, a directory, a symbolic link or a
//!   hard link;
//! - it is a symbolic link whose target is absolute or leaves the top-level name, or a hard
//!   link to anything but an earlier entry;
//! - its header's checksum is wrong, its size field does not parse, or the archive ends inside
//!   an entry.
//!
//! [`file_header`] writes the one header of an upload: podterm builds the archive a
//! container's `tar xf -` reads, so no name in it ever comes from elsewhere unchecked.

use std::collections::HashSet;

/// Tar's block size.
pub const BLOCK: usize = 512;
/// Largest GNU long name or PAX record accepted, in bytes.
pub const MAX_EXTENSION_BYTES: usize = 64 * 1024;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
}

/// One checked entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the directory the archive was made in (`-C DIR`), no `..`, no `/` first.
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    /// A link's target, as it was written.
    pub link: Option<String>,
}

/// What the parser found, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// An entry's header, checked; its data follows.
    Entry(&'a Entry),
    /// Data of the last entry.
    Data(&'a [u8]),
}

/// Why a tar stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarError {
    #[error("tar entry {0:?} has an absolute name")]
    Absolute(String),
    #[error("tar entry {0:?} has a `..` segment")]
    DotDot(String),
    #[error("tar entry {0:?} has a control character in its name")]
    Control(String),
    #[error("tar entry has an empty name")]
    Empty,
    #[error("tar entry {name:?} is outside {top:?}, which was asked for")]
    Outside { name: String, top: String },
    #[error("tar entry {name:?} is a {what}, which podterm does not copy")]
    Type { name: String, what: &'static str },
    #[error("tar entry {name:?} links to {link:?}, outside {top:?}")]
    LinkEscape {
        name: String,
        link: String,
        top: String,
    },
    #[error("tar entry {name:?} is a hard link to {link:?}, which is not an earlier entry")]
    HardLink { name: String, link: String },
    #[error("tar header {0} has a bad checksum: this is not a tar stream")]
    Checksum(u64),
    #[error("tar header {0} has a size that does not parse")]
    Size(u64),
    #[error("a tar extension record is larger than {MAX_EXTENSION_BYTES} bytes")]
    Extension,
    #[error("the tar stream ended inside an entry")]
    Truncated,
    #[error("the tar stream is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Refused(String),
}

#[derive(Debug)]
enum State {
    /// Collecting a 512-byte header.
    Header,
    /// Passing `left` data bytes of the current entry, then `pad` padding bytes.
    Data { left: u64, pad: u64 },
    /// Collecting an extension's data (`kind`: `L`, `K`, `x`, `g`), then padding.
    Extension { kind: u8, left: u64, pad: u64 },
    /// Skipping padding only.
    Pad { left: u64 },
    /// Two zero blocks were seen (or one, then the stream may end).
    End,
}

/// The push parser (see the module doc).
#[derive(Debug)]
pub struct TarReader {
    top: String,
    state: State,
    block: Vec<u8>,
    ext: Vec<u8>,
    long_name: Option<String>,
    long_link: Option<String>,
    pax_path: Option<String>,
    pax_link: Option<String>,
    pax_size: Option<u64>,
    entry: Option<Entry>,
    seen: HashSet<String>,
    headers: u64,
    zero_blocks: u8,
    /// Bytes of the stream so far.
    pub bytes: u64,
    limit: u64,
    /// Entries checked so far.
    pub entries: u64,
}

impl TarReader {
    /// A parser for an archive whose entries may have any clean relative name (an archive a
    /// caller sends to be unpacked in a directory), at most `limit` bytes long.
    pub fn anywhere(limit: u64) -> TarReader {
        TarReader::new("", limit)
    }

    /// A parser for an archive whose entries must all be `top` or under `top/` (any clean
    /// relative name when `top` is empty), at most `limit` bytes long.
    pub fn new(top: &str, limit: u64) -> TarReader {
        TarReader {
            top: top.trim_end_matches('/').to_string(),
            state: State::Header,
            block: Vec::with_capacity(BLOCK),
            ext: Vec::new(),
            long_name: None,
            long_link: None,
            pax_path: None,
            pax_link: None,
            pax_size: None,
            entry: None,
            seen: HashSet::new(),
            headers: 0,
            zero_blocks: 0,
            bytes: 0,
            limit,
            entries: 0,
        }
    }

    /// Feeds `data`; `on` hears each checked entry and its data, in order. After an error the
    /// parser must not be used again.
    pub fn push(
        &mut self,
        mut data: &[u8],
        on: &mut dyn FnMut(Event<'_>) -> Result<(), TarError>,
    ) -> Result<(), TarError> {
        self.bytes += data.len() as u64;
        if self.bytes > self.limit {
            return Err(TarError::TooLarge(self.limit));
        }
        while !data.is_empty() {
            match &mut self.state {
                State::End => return Ok(()),
                State::Header => {
                    let want = BLOCK - self.block.len();
                    let take = want.min(data.len());
                    self.block.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.block.len() == BLOCK {
                        let block = std::mem::take(&mut self.block);
                        self.header(&block, on)?;
                        self.block = block;
                        self.block.clear();
                    }
                }
                State::Data { left, pad } => {
                    let take = (*left).min(data.len() as u64) as usize;
                    *left -= take as u64;
                    let (left, pad) = (*left, *pad);
                    if take > 0 {
                        on(Event::Data(&data[..take]))?;
                        data = &data[take..];
                    }
                    if left == 0 {
                        self.state = State::Pad { left: pad };
                    }
                }
                State::Extension { kind, left, pad } => {
                    let take = (*left).min(data.len() as u64) as usize;
                    self.ext.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    *left -= take as u64;
                    if *left == 0 {
                        let (kind, pad) = (*kind, *pad);
                        self.extension(kind)?;
                        self.state = State::Pad { left: pad };
                    }
                }
                State::Pad { left } => {
                    let take = (*left).min(data.len() as u64);
                    *left -= take;
                    data = &data[take as usize..];
                    if *left == 0 {
                        self.state = State::Header;
                    }
                }
            }
            if matches!(self.state, State::Pad { left: 0 }) {
                self.state = State::Header;
            }
        }
        Ok(())
    }

    /// The stream ended: fine at an entry boundary (GNU tar always ends with zero blocks;
    /// a stream cut inside an entry is refused).
    pub fn finish(&self) -> Result<(), TarError> {
        match self.state {
            State::End => Ok(()),
            State::Header if self.block.is_empty() && self.entries > 0 => Ok(()),
            _ => Err(TarError::Truncated),
        }
    }

    fn header(
        &mut self,
        block: &[u8],
        on: &mut dyn FnMut(Event<'_>) -> Result<(), TarError>,
    ) -> Result<(), TarError> {
        self.headers += 1;
        if block.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            if self.zero_blocks == 2 {
                self.state = State::End;
            }
            return Ok(());
        }
        if self.zero_blocks > 0 {
            // One zero block then a header: not an end marker GNU tar writes.
            return Err(TarError::Checksum(self.headers));
        }
        if !checksum_ok(block) {
            return Err(TarError::Checksum(self.headers));
        }
        let size = parse_number(&block[124..136]).ok_or(TarError::Size(self.headers))?;
        let kind = block[156];
        let pad = padding(size);
        if matches!(kind, b'L' | b'K' | b'x' | b'g') {
            if size > MAX_EXTENSION_BYTES as u64 {
                return Err(TarError::Extension);
            }
            self.ext.clear();
            self.state = if size == 0 {
                self.extension(kind)?;
                State::Header
            } else {
                State::Extension {
                    kind,
                    left: size,
                    pad,
                }
            };
            return Ok(());
        }
        let ustar = &block[257..262] == b"ustar";
        let mut name = cstr(&block[0..100]);
        if ustar {
            let prefix = cstr(&block[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let name = self
            .pax_path
            .take()
            .or_else(|| self.long_name.take())
            .unwrap_or(name);
        let link = self
            .pax_link
            .take()
            .or_else(|| self.long_link.take())
            .unwrap_or_else(|| cstr(&block[157..257]));
        let size = self.pax_size.take().unwrap_or(size);
        let mode = parse_number(&block[100..108]).unwrap_or(0o644) as u32;
        let kind = match kind {
            b'0' | 0 | b'7' => Kind::File,
            b'5' => Kind::Dir,
            b'2' => Kind::Symlink,
            b'1' => Kind::Hardlink,
            other => {
                let what = match other {
                    b'3' => "character device",
                    b'4' => "block device",
                    b'6' => "FIFO",
                    _ => "special file",
                };
                return Err(TarError::Type {
                    name: name.clone(),
                    what,
                });
            }
        };
        let name = self.check_name(&name)?;
        let entry = Entry {
            link: matches!(kind, Kind::Symlink | Kind::Hardlink).then(|| link.clone()),
            size: if kind == Kind::File { size } else { 0 },
            name,
            kind,
            mode: mode & 0o7777,
        };
        match kind {
            Kind::Symlink => self.check_symlink(&entry.name, &link)?,
            Kind::Hardlink => {
                let target = self.check_name(&link).map_err(|_| TarError::HardLink {
                    name: entry.name.clone(),
                    link: link.clone(),
                })?;
                if !self.seen.contains(&target) {
                    return Err(TarError::HardLink {
                        name: entry.name.clone(),
                        link,
                    });
                }
            }
            _ => {}
        }
        self.seen.insert(entry.name.clone());
        self.entries += 1;
        on(Event::Entry(&entry))?;
        let data = entry.size;
        self.entry = Some(entry);
        self.state = if data == 0 {
            State::Pad {
                left: padding(data),
            }
        } else {
            State::Data {
                left: data,
                pad: padding(data),
            }
        };
        Ok(())
    }

    fn extension(&mut self, kind: u8) -> Result<(), TarError> {
        let data = std::mem::take(&mut self.ext);
        match kind {
            b'L' => self.long_name = Some(cstr(&data)),
            b'K' => self.long_link = Some(cstr(&data)),
            b'x' => {
                for (key, value) in pax_records(&data).ok_or(TarError::Extension)? {
                    match key.as_str() {
                        "path" => self.pax_path = Some(value),
                        "linkpath" => self.pax_link = Some(value),
                        "size" => {
                            self.pax_size =
                                Some(value.parse().map_err(|_| TarError::Size(self.headers))?);
                        }
                        _ => {}
                    }
                }
            }
            _ => {} // `g`: global records name no entry.
        }
        Ok(())
    }

    /// `name` lexically clean, relative, under `top`.
    fn check_name(&self, name: &str) -> Result<String, TarError> {
        if name.is_empty() {
            return Err(TarError::Empty);
        }
        if name.chars().any(char::is_control) {
            return Err(TarError::Control(name.into()));
        }
        if name.starts_with('/') {
            return Err(TarError::Absolute(name.into()));
        }
        let mut clean = Vec::new();
        for segment in name.split('/') {
            match segment {
                "" | "." => {}
                ".." => return Err(TarError::DotDot(name.into())),
                s => clean.push(s),
            }
        }
        let clean = clean.join("/");
        if clean.is_empty() && self.top.is_empty() {
            return Err(TarError::Empty);
        }
        if !self.within(&clean) {
            return Err(TarError::Outside {
                name: name.into(),
                top: self.top.clone(),
            });
        }
        Ok(clean)
    }

    /// A symbolic link at `name` to `link` must resolve, lexically, inside `top`.
    fn check_symlink(&self, name: &str, link: &str) -> Result<(), TarError> {
        let escape = || TarError::LinkEscape {
            name: name.into(),
            link: link.into(),
            top: self.top.clone(),
        };
        if link.is_empty() || link.starts_with('/') || link.chars().any(char::is_control) {
            return Err(escape());
        }
        let mut path: Vec<&str> = name.split('/').collect();
        path.pop();
        for segment in link.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    path.pop().ok_or_else(escape)?;
                }
                s => path.push(s),
            }
        }
        if self.within(&path.join("/")) {
            Ok(())
        } else {
            Err(escape())
        }
    }

    /// Whether a clean relative path is `top` or under it (anything, with no top).
    fn within(&self, path: &str) -> bool {
        self.top.is_empty()
            || path == self.top
            || path
                .strip_prefix(self.top.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// An octal field (NUL/space padded), or GNU's base-256 form (high bit set).
fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    if !text.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

fn checksum_ok(block: &[u8]) -> bool {
    let Some(stored) = parse_number(&block[148..156]) else {
        return false;
    };
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    sum == stored
}

/// PAX records: `LEN KEY=VALUE\n`, LEN counting the whole record.
fn pax_records(mut data: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return None;
        }
        let record = std::str::from_utf8(&data[space + 1..len - 1]).ok()?;
        let (key, value) = record.split_once('=')?;
        out.push((key.to_string(), value.to_string()));
        data = &data[len..];
    }
    Some(out)
}

/// The ustar header of one regular file `name` (a plain name, no `/`) of `size` bytes, for an
/// archive podterm writes. `None` when the name does not fit ustar's 100 bytes.
pub fn file_header(name: &str, size: u64, mode: u32, mtime: u64) -> Option<[u8; BLOCK]> {
    if name.is_empty() || name.len() > 99 || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], n: u64| {
        let text = format!("{:0width$o}", n, width = field.len() - 1);
        field[..text.len()].copy_from_slice(text.as_bytes());
    };
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    if size >= 0o77_777_777_777 {
        // GNU base-256 for sizes of 8 GiB and more.
        h[124] = 0x80;
        for (i, b) in size.to_be_bytes().iter().enumerate() {
            h[128 + i] = *b;
        }
    } else {
        octal(&mut h[124..136], size);
    }
    octal(&mut h[136..148], mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    Some(h)
}

/// The sha256 the audit lines give of a transfer (a file, an archive), fed as it passes
/// and written as hex.
pub struct Sha256(ring::digest::Context);

impl Sha256 {
    pub fn start() -> Sha256 {
        Sha256(ring::digest::Context::new(&ring::digest::SHA256))
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// The digest of everything given, as lower-case hex.
    pub fn finish(self) -> String {
        self.0
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A ustar header with any name, type byte and link target, unchecked: for the dev cluster's
/// hostile container and for tests of the reader. `None` when a field does not fit.
pub fn raw_header(name: &str, kind: u8, link: &str, size: u64) -> Option<[u8; BLOCK]> {
    if name.len() > 100 || link.len() > 100 {
        return None;
    }
    let mut h = file_header("x", size, 0o644, 0)?;
    h[..100].fill(0);
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Some(h)
}

/// The padding after `size` bytes of file data, then the two zero blocks that end an archive.
pub fn trailer(size: u64) -> Vec<u8> {
    vec![0u8; padding(size) as usize + 2 * BLOCK]
}

#[cfg(test)]
mod tests;
