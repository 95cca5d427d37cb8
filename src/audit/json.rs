//! A session's audit line written as JSON by hand: the same bytes as `serde_json::to_writer`
//! of the line (tests hold the two to each other), without serde's per-field calls or its
//! escaping loop, which looks every byte of every key and value up in a table. Two lines a
//! session made that loop 6 % of the gateway's instructions under churn (loadtest/README.md,
//! "eleventh stop"). Here the keys are written as they are (they need no escaping) and the
//! values are scanned eight bytes at a time for the three kinds of byte JSON escapes.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// A key as an [`Object`] writes it, `,"name":`, made at compile time by [`key!`]: one copy
/// a key, where the comma, the quotes and the colon were four writes of their own.
#[derive(Clone, Copy)]
pub(super) struct Key(pub(super) &'static str);

/// The [`Key`] of `name` (which needs no escaping: checked when it is written).
macro_rules! key {
    ($name:literal) => {
        $crate::audit::json::Key(concat!(",\"", $name, "\":"))
    };
}
pub(super) use key;

/// An object being written into one line's buffer.
///
/// Every key goes in with its comma, the first one's too, and [`Object::line`] makes that
/// first comma the opening brace: each key is then a copy of a length known where it is
/// written, which the compiler makes a few moves, where the first key's comma left out made
/// every key a call to `memcpy` of a length known only at run time.
pub(super) struct Object {
    out: Vec<u8>,
}

impl Object {
    /// An object written into a buffer of `capacity` bytes.
    pub(super) fn with_capacity(capacity: usize) -> Object {
        Object {
            out: Vec::with_capacity(capacity),
        }
    }

    /// `,"key":`.
    #[inline]
    fn key(&mut self, Key(key): Key) -> &mut Vec<u8> {
        debug_assert!(
            key.starts_with(",\"")
                && key.ends_with("\":")
                && key.bytes().all(|b| ESCAPE[b as usize] == 0 || b == b'"')
        );
        self.out.extend_from_slice(key.as_bytes());
        &mut self.out
    }

    pub(super) fn str(&mut self, key: Key, value: &str) {
        string(self.key(key), value);
    }

    /// A string known to need no escaping (ASCII digits and punctuation), written as it is.
    pub(super) fn ascii(&mut self, key: Key, value: &[u8]) {
        debug_assert!(
            value
                .iter()
                .all(|&b| b.is_ascii() && ESCAPE[b as usize] == 0)
        );
        let out = self.key(key);
        out.push(b'"');
        out.extend_from_slice(value);
        out.push(b'"');
    }

    pub(super) fn opt_str(&mut self, key: Key, value: Option<&str>) {
        match value {
            Some(value) => self.str(key, value),
            None => self.null(key),
        }
    }

    /// An array of strings, or `null`.
    pub(super) fn strs(&mut self, key: Key, values: Option<&[String]>) {
        let Some(values) = values else {
            return self.null(key);
        };
        let out = self.key(key);
        out.push(b'[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, value);
        }
        out.push(b']');
    }

    pub(super) fn opt_bool(&mut self, key: Key, value: Option<bool>) {
        let text: &[u8] = match value {
            Some(true) => b"true",
            Some(false) => b"false",
            None => b"null",
        };
        self.key(key).extend_from_slice(text);
    }

    pub(super) fn u64(&mut self, key: Key, value: u64) {
        decimal(self.key(key), value);
    }

    pub(super) fn opt_i32(&mut self, key: Key, value: Option<i32>) {
        let Some(value) = value else {
            return self.null(key);
        };
        let out = self.key(key);
        if value < 0 {
            out.push(b'-');
        }
        decimal(out, u64::from(value.unsigned_abs()));
    }

    /// A socket address as its `Display` writes it (serde's way): IPv4 by hand, as every
    /// line has one and `fmt`'s address printer was a tenth of a line's cost; IPv6 through
    /// `Display`.
    pub(super) fn addr(&mut self, key: Key, addr: SocketAddr) {
        let SocketAddr::V4(v4) = addr else {
            return self.display(key, addr);
        };
        let out = self.key(key);
        out.push(b'"');
        for (i, octet) in v4.ip().octets().into_iter().enumerate() {
            if i > 0 {
                out.push(b'.');
            }
            decimal(out, u64::from(octet));
        }
        out.push(b':');
        decimal(out, u64::from(v4.port()));
        out.push(b'"');
    }

    /// A value's `Display` text as a string (serde's way for what it writes with
    /// `collect_str`).
    pub(super) fn display(&mut self, key: Key, value: impl std::fmt::Display) {
        let mut text = Text::default();
        if write!(text, "{value}").is_ok() && !text.spilled {
            let text = &text.bytes[..text.len];
            // Display text is UTF-8; a str again without a check the compiler cannot drop.
            string(self.key(key), std::str::from_utf8(text).unwrap_or_default());
        } else {
            self.str(key, &value.to_string());
        }
    }

    pub(super) fn null(&mut self, key: Key) {
        self.key(key).extend_from_slice(b"null");
    }

    /// The line: the object closed and a newline. Only `str`s went in, whole or as escapes
    /// and punctuation: UTF-8 throughout (the tests read every line they make as a `str`).
    pub(super) fn line(mut self) -> Vec<u8> {
        // The first key's comma opens the object (an object without keys is just the braces).
        match self.out.first_mut() {
            Some(comma) => *comma = b'{',
            None => self.out.push(b'{'),
        }
        self.out.extend_from_slice(b"}\n");
        self.out
    }
}

/// `value` in decimal digits, as serde_json (itoa) writes it.
///
/// Below 1,000 (an address's octets, a short session's counts) the digits go in as one copy of
/// a length known where it is written, a few moves: the general loop's copy of a length known
/// only at run time is a call to `memcpy`, most of what a small number cost.
fn decimal(out: &mut Vec<u8>, mut value: u64) {
    let digit = |d: u64| b'0' + (d % 10) as u8;
    match value {
        0..=9 => return out.push(digit(value)),
        10..=99 => return out.extend_from_slice(&[digit(value / 10), digit(value)]),
        100..=999 => {
            return out.extend_from_slice(&[digit(value / 100), digit(value / 10), digit(value)]);
        }
        _ => {}
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Up to 64 bytes of `Display` text on the stack (an address is at most 55); `spilled` when
/// it did not fit.
struct Text {
    bytes: [u8; 64],
    len: usize,
    spilled: bool,
}

impl Default for Text {
    fn default() -> Text {
        Text {
            bytes: [0; 64],
            len: 0,
            spilled: false,
        }
    }
}

impl std::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        match self.bytes.get_mut(self.len..self.len + s.len()) {
            Some(room) => {
                room.copy_from_slice(s.as_bytes());
                self.len += s.len();
                Ok(())
            }
            None => {
                self.spilled = true;
                Err(std::fmt::Error)
            }
        }
    }
}

/// `value` as a JSON string, escaped as serde_json escapes it: `"` and `\` with a backslash,
/// backspace, tab, newline, form feed and carriage return by their short escapes, every other
/// byte below 0x20 as `\u00XX` (lowercase hex), everything else as it is.
pub(super) fn string(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0;
    let mut i = 0;
    loop {
        // Eight bytes at a time while none of them needs an escape ...
        while let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if needs_escape(word) {
                break;
            }
            i += 8;
        }
        // ... then byte by byte to the one that does (within the next eight, if any).
        while let Some(&byte) = bytes.get(i) {
            if ESCAPE[byte as usize] != 0 {
                break;
            }
            i += 1;
        }
        let Some(&byte) = bytes.get(i) else {
            break;
        };
        out.extend_from_slice(&bytes[run..i]);
        escape(out, byte);
        i += 1;
        run = i;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Whether any byte of `word` is below 0x20, `"` or `\` (exact for whether, not for which:
/// the classic "has a zero byte" test, Hacker's Delight 6-1).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    // A byte below 0x20: subtracting 0x20 borrows into its high bit, which was clear.
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    below_space
        || has_zero(word ^ (ONES * u64::from(b'"')))
        || has_zero(word ^ (ONES * u64::from(b'\\')))
}

fn escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match ESCAPE[byte as usize] {
        QU => b'"',
        BS => b'\\',
        BB => b'b',
        TT => b't',
        NN => b'n',
        FF => b'f',
        RR => b'r',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

const BB: u8 = b'b';
const TT: u8 = b't';
const NN: u8 = b'n';
const FF: u8 = b'f';
const RR: u8 = b'r';
const QU: u8 = b'"';
const BS: u8 = b'\\';
const UU: u8 = b'u';
const __: u8 = 0;

/// Which bytes JSON escapes, and how: serde_json's own table (`ser.rs`, `ESCAPE`).
#[rustfmt::skip]
static ESCAPE: [u8; 256] = [
    //   1   2   3   4   5   6   7   8   9   A   B   C   D   E   F
    UU, UU, UU, UU, UU, UU, UU, UU, BB, TT, NN, UU, FF, RR, UU, UU, // 0
    UU, UU, UU, UU, UU, UU, UU, UU, UU, UU, UU, UU, UU, UU, UU, UU, // 1
    __, __, QU, __, __, __, __, __, __, __, __, __, __, __, __, __, // 2
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // 3
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // 4
    __, __, __, __, __, __, __, __, __, __, __, __, BS, __, __, __, // 5
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // 6
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // 7
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // 8
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // 9
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // A
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // B
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // C
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // D
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // E
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, // F
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(value: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_byte_escapes_as_serde_json_escapes_it() {
        for c in (0u32..0x100).filter_map(char::from_u32) {
            for text in [
                c.to_string(),
                format!("abcdefg{c}"),
                format!("abcdefgh{c}ijklmnop"),
                format!("{c}{c}abcdefghijklmnopq{c}"),
            ] {
                assert_eq!(
                    written(&text),
                    serde_json::to_string(&text).unwrap(),
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn the_word_test_finds_each_byte_that_needs_escaping_in_every_place() {
        for byte in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = byte;
                // Neighbours that borrow in the subtraction: high bytes and 0x20 itself.
                for fill in [b'a', 0x20, 0x21, 0x80, 0xff] {
                    let mut w = [fill; 8];
                    w[at] = byte;
                    let expected = w.iter().any(|&b| ESCAPE[b as usize] != 0);
                    assert_eq!(needs_escape(u64::from_le_bytes(w)), expected, "{w:?}");
                }
                let expected = ESCAPE[byte as usize] != 0;
                assert_eq!(needs_escape(u64::from_le_bytes(word)), expected);
            }
        }
    }

    fn object(write: impl FnOnce(&mut Object)) -> String {
        let mut o = Object::with_capacity(0);
        write(&mut o);
        String::from_utf8(o.line()).expect("a line is UTF-8")
    }

    #[test]
    fn numbers_and_addresses_at_their_edges_are_written_as_serde_json_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            65_535,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let expected = format!("{}\n", serde_json::json!({ "n": n }));
            assert_eq!(object(|o| o.u64(key!("n"), n)), expected);
        }
        for n in [
            None,
            Some(0),
            Some(-1),
            Some(1),
            Some(i32::MIN),
            Some(i32::MAX),
        ] {
            let expected = format!("{}\n", serde_json::json!({ "n": n }));
            assert_eq!(object(|o| o.opt_i32(key!("n"), n)), expected);
        }
        for addr in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.0.12.7:443",
            "[::1]:8080",
            "[fe80::1%7]:22",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let expected = format!("{}\n", serde_json::json!({ "a": addr }));
            assert_eq!(object(|o| o.addr(key!("a"), addr)), expected);
        }
    }

    #[test]
    fn every_number_below_ten_thousand_is_written_as_itoa_writes_it() {
        for n in 0..10_000u64 {
            let mut out = Vec::new();
            decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    proptest! {
        #[test]
        fn numbers_are_written_as_serde_json_writes_them(n in any::<u64>()) {
            let mut out = Vec::new();
            decimal(&mut out, n);
            prop_assert_eq!(out, serde_json::to_vec(&n).unwrap());
        }

        #[test]
        fn addresses_are_written_as_serde_json_writes_them(addr in any::<SocketAddr>()) {
            let expected = format!("{}\n", serde_json::json!({ "a": addr }));
            prop_assert_eq!(object(|o| o.addr(key!("a"), addr)), expected);
        }

        #[test]
        fn strings_are_written_as_serde_json_writes_them(
            text in prop_oneof![any::<String>(), "[\\u{0}-\\u{7f}\"\\\\\u{e9}\u{1F600}]{0,40}"],
        ) {
            prop_assert_eq!(written(&text), serde_json::to_string(&text).unwrap());
        }
    }
}
