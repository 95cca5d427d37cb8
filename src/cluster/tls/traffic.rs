//! TLS 1.3 traffic after the exec request, on a record layer of podterm's own.
//!
//! Once the handshake is done and the request is sealed, rustls' connection has one thing left
//! to do: keep the server's session tickets, which Go's crypto/tls and rustls send right after
//! the handshake and so before any answer. For the rest of the session it would keep about
//! 3 KB a connection: its state machine, a copy of the server's certificate chain, the
//! handshake deframer, its record layer. An idle session keeps little else, so this is a
//! quarter of what one costs.
//!
//! rustls gives up its keys and sequence numbers (`dangerous_into_kernel_connection`), and the
//! two traffic secrets come from its key log, captured on this thread while the handshake is
//! processed (`CaptureSecrets`). From then on [`Traffic`] keeps, per direction, the AEAD key,
//! the IV, the sequence number and the traffic secret (for key updates): about 250 bytes. The
//! kernel connection rustls hands over is kept only until the first application data comes:
//! it takes the tickets that come before it into the session store.
//!
//! The move happens right after rustls sealed the request: it keeps the answer to a key update
//! the peer asked for unsent until the next record it seals, and nothing says whether one
//! waits, so only then is it certain that nothing does.
//!
//! What it does is RFC 8446 §5.2 (record protection), §5.3 (the per-record nonce), §4.6.3 and
//! §7.2 (key updates, both ways: a peer's is followed and answered when asked for; our own once
//! a key has sealed the suite's confidentiality limit of records, as rustls does), §6.1
//! (close_notify). Session tickets that come after the first answer are not kept: a client may
//! ignore them (§4.6.1). Any other handshake message, an unprotected record or a record that
//! fails to open ends the connection with an error.
//!
//! TLS 1.2, a suite this does not know, or a configuration without [`prepare`] stay with
//! rustls' connection for their whole life.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use ring::{aead, hkdf};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::kernel::KernelConnection;
use rustls::{CipherSuite, ConnectionTrafficSecrets, KeyLog, ProtocolVersion};
use zeroize::Zeroize as _;

use super::Step;

/// Outer content type of every protected record.
const APPLICATION_DATA: u8 = 23;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
/// Handshake message types (RFC 8446 §4).
const NEW_SESSION_TICKET: u8 = 4;
const KEY_UPDATE: u8 = 24;
const CLOSE_NOTIFY: u8 = 0;
const USER_CANCELED: u8 = 90;
/// Largest inner plaintext of a record (§5.1) and largest ciphertext (§5.2).
const MAX_PLAINTEXT: usize = 16 * 1024;
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
const HEADER: usize = 5;
const TAG: usize = 16;
/// A handshake message that spans records is kept up to this size; a ticket is far smaller.
const MAX_HANDSHAKE: usize = 64 * 1024;
/// Key updates followed from the key log's secret to rustls' keys at the move; rustls itself
/// refuses a peer's run of key updates long before this.
const MAX_EARLY_UPDATES: usize = 64;
const KEY_LOG_CLIENT: &str = "CLIENT_TRAFFIC_SECRET_0";
const KEY_LOG_SERVER: &str = "SERVER_TRAFFIC_SECRET_0";

/// Sets up `config` so that its TLS 1.3 connections can move to [`Traffic`]: secret extraction
/// on, and a key log that captures the traffic secrets (and passes every line on to the key
/// log that was there, such as `SSLKEYLOGFILE`'s).
pub fn prepare(config: &mut rustls::ClientConfig) {
    config.enable_secret_extraction = true;
    config.key_log = Arc::new(CaptureSecrets {
        inner: Arc::clone(&config.key_log),
    });
}

/// The key log of a [`prepare`]d configuration.
#[derive(Debug)]
struct CaptureSecrets {
    inner: Arc<dyn KeyLog>,
}

thread_local! {
    /// Traffic secrets logged by the handshake being processed on this thread; taken right
    /// after each call into rustls (`capture`), so a secret never outlives that call here.
    static CAPTURED: RefCell<Option<Box<Secrets>>> = const { RefCell::new(None) };
}

impl KeyLog for CaptureSecrets {
    fn will_log(&self, label: &str) -> bool {
        label == KEY_LOG_CLIENT || label == KEY_LOG_SERVER || self.inner.will_log(label)
    }

    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        if self.inner.will_log(label) {
            self.inner.log(label, client_random, secret);
        }
        let client = match label {
            KEY_LOG_CLIENT => true,
            KEY_LOG_SERVER => false,
            _ => return,
        };
        let Some(secret) = Secret::new(secret) else {
            return;
        };
        CAPTURED.with_borrow_mut(|captured| {
            let secrets = captured.get_or_insert_with(Default::default);
            match client {
                true => secrets.client = Some(secret),
                false => secrets.server = Some(secret),
            }
        });
    }
}

/// Runs `f` (a call into rustls for one connection) and adds the traffic secrets it logged to
/// `kept`.
pub(super) fn capture<T>(kept: &mut Option<Box<Secrets>>, f: impl FnOnce() -> T) -> T {
    CAPTURED.with_borrow_mut(|captured| *captured = None);
    let out = f();
    if let Some(new) = CAPTURED.with_borrow_mut(Option::take) {
        match kept {
            None => *kept = Some(new),
            Some(kept) => {
                let Secrets { client, server } = *new;
                if client.is_some() {
                    kept.client = client;
                }
                if server.is_some() {
                    kept.server = server;
                }
            }
        }
    }
    out
}

/// The two traffic secrets of a handshake, as the key log gave them.
#[derive(Default)]
pub(super) struct Secrets {
    client: Option<Secret>,
    server: Option<Secret>,
}

/// A traffic secret (up to SHA-384's 48 bytes) or a key (`N` = 32), zeroed when dropped.
struct Secret<const N: usize = 48> {
    bytes: [u8; N],
    len: u8,
}

impl<const N: usize> Secret<N> {
    fn new(value: &[u8]) -> Option<Secret<N>> {
        let mut bytes = [0u8; N];
        bytes.get_mut(..value.len())?.copy_from_slice(value);
        Some(Secret {
            bytes,
            len: value.len() as u8,
        })
    }

    fn get(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl<const N: usize> Drop for Secret<N> {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// A TLS 1.3 connection's traffic keys after its handshake.
pub(super) struct Traffic {
    tx: Direction,
    rx: Direction,
    suite: &'static Suite,
    /// Records one sending key seals before a key update: the suite's confidentiality limit
    /// (rustls').
    limit: u64,
    /// rustls' kernel connection, until the first application data: it keeps the session
    /// tickets that come before it.
    tickets: Option<Box<KernelConnection<ClientConnectionData>>>,
    /// The start of a handshake message whose rest is in a later record; no allocation while
    /// empty.
    handshake: Vec<u8>,
}

/// What came of the record at the front of the input.
enum Record {
    /// It was all there and is done with; `plain`: it was application data.
    Whole { len: usize, plain: bool },
    /// Only its start is there.
    Partial,
    /// It was close_notify: nothing after it counts.
    Closed,
}

/// One direction's keys.
///
/// The AEAD key is kept as its bytes, and its schedule (ring's `LessSafeKey`, 544 bytes: the
/// AES round keys and GHASH's table) is made on the stack for each call that seals or opens
/// records, in about 0.1 µs. Kept, the two would be an eighth of what an idle session costs.
struct Direction {
    key: Secret<32>,
    iv: [u8; aead::NONCE_LEN],
    seq: u64,
    secret: Secret,
}

/// What a cipher suite needs here.
struct Suite {
    id: CipherSuite,
    aead: &'static aead::Algorithm,
    hkdf: hkdf::Algorithm,
}

static SUITES: [Suite; 3] = [
    Suite {
        id: CipherSuite::TLS13_AES_128_GCM_SHA256,
        aead: &aead::AES_128_GCM,
        hkdf: hkdf::HKDF_SHA256,
    },
    Suite {
        id: CipherSuite::TLS13_AES_256_GCM_SHA384,
        aead: &aead::AES_256_GCM,
        hkdf: hkdf::HKDF_SHA384,
    },
    Suite {
        id: CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        aead: &aead::CHACHA20_POLY1305,
        hkdf: hkdf::HKDF_SHA256,
    },
];

/// Whether `conn` can move to [`Traffic`] with `secrets` now: TLS 1.3 with a suite known here,
/// the handshake done, nothing of rustls' own waiting to be sent, both traffic secrets at hand.
pub(super) fn ready(conn: &UnbufferedClientConnection, secrets: Option<&Secrets>) -> bool {
    conn.protocol_version() == Some(ProtocolVersion::TLSv1_3)
        && !conn.is_handshaking()
        && !conn.wants_write()
        && conn
            .negotiated_cipher_suite()
            .is_some_and(|s| suite(s.suite()).is_some())
        && secrets.is_some_and(|s| s.client.is_some() && s.server.is_some())
}

fn suite(id: CipherSuite) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.id == id)
}

impl Traffic {
    /// Takes over `conn`'s traffic (which must be [`ready`]).
    pub(super) fn new(conn: UnbufferedClientConnection, secrets: Secrets) -> io::Result<Traffic> {
        let unexpected = || io::Error::other("TLS: the connection cannot leave rustls");
        let negotiated = conn.negotiated_cipher_suite().ok_or_else(unexpected)?;
        let suite = suite(negotiated.suite()).ok_or_else(unexpected)?;
        // Records one key may seal before a key update: rustls' own figure for the suite.
        let limit = negotiated
            .tls13()
            .ok_or_else(unexpected)?
            .common
            .confidentiality_limit;
        let Secrets { client, server } = secrets;
        let (Some(client), Some(server)) = (client, server) else {
            return Err(unexpected());
        };
        let (extracted, kernel) = conn
            .dangerous_into_kernel_connection()
            .map_err(super::tls_error)?;
        Ok(Traffic {
            tx: Direction::extracted(suite, extracted.tx, client)?,
            rx: Direction::extracted(suite, extracted.rx, server)?,
            suite,
            limit,
            tickets: Some(Box::new(kernel)),
            handshake: Vec::new(),
        })
    }

    /// Seals `data` into records appended to `out`; a key update goes first once the key has
    /// sealed its limit.
    pub(super) fn seal_data(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let records = data.len().div_ceil(MAX_PLAINTEXT);
        out.reserve(data.len() + records * (HEADER + 1 + TAG));
        let mut key = self.tx.aead(self.suite)?;
        for chunk in data.chunks(MAX_PLAINTEXT) {
            if self.tx.seq >= self.limit - 1 {
                key = self.update_tx(&key, false, out)?;
            }
            self.tx.seal(&key, APPLICATION_DATA, chunk, out)?;
        }
        Ok(())
    }

    /// Appends close_notify to `out`.
    pub(super) fn close_notify(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let key = self.tx.aead(self.suite)?;
        self.tx.seal(&key, ALERT, &[1, CLOSE_NOTIFY], out)
    }

    /// Opens the whole records at the front of `input` in place; application data goes to
    /// `sink`, a key update asked for is answered into `out`. Gives what came of it (plaintext,
    /// the peer's close, or the need for more input) and how many bytes of `input` are done.
    ///
    /// A record that fails after plaintext came is left for the next call, so that a read
    /// gives the plaintext first and the error after it, as rustls does.
    pub(super) fn open(
        &mut self,
        input: &mut [u8],
        out: &mut Vec<u8>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<(Step, usize)> {
        let mut used = 0;
        let mut plaintext = false;
        // The receiving key's schedule, made at the first whole record.
        let mut key = None;
        loop {
            match self.open_one(&mut key, &mut input[used..], out, sink) {
                Ok(Record::Whole { len, plain }) => {
                    used += len;
                    plaintext |= plain;
                }
                Ok(Record::Partial) => break,
                Ok(Record::Closed) => return Ok((Step::PeerClosed, input.len())),
                Err(_) if plaintext => break,
                Err(e) => return Err(e),
            }
        }
        let step = if plaintext {
            Step::Plaintext
        } else {
            Step::NeedInput
        };
        Ok((step, used))
    }

    /// Opens the record at the front of `input`, if it is all there.
    fn open_one(
        &mut self,
        key: &mut Option<aead::LessSafeKey>,
        input: &mut [u8],
        out: &mut Vec<u8>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Record> {
        let Some(header) = input.get(..HEADER) else {
            return Ok(Record::Partial);
        };
        let header: [u8; HEADER] = header.try_into().expect("a header's length");
        if header[0] != APPLICATION_DATA || header[1] != 3 {
            return Err(protocol(
                "an unprotected or malformed record after the handshake",
            ));
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len > MAX_CIPHERTEXT {
            return Err(protocol("a record over the size limit (record_overflow)"));
        }
        let Some(record) = input.get_mut(HEADER..HEADER + len) else {
            return Ok(Record::Partial);
        };
        let opener = match key {
            Some(key) => key,
            None => key.insert(self.rx.aead(self.suite)?),
        };
        let inner = self.rx.open(opener, header, record)?;
        // The content type is the last byte that is not padding (§5.4).
        let Some(end) = inner.iter().rposition(|&b| b != 0) else {
            return Err(protocol("a record without a content type"));
        };
        let (content, kind) = (&inner[..end], inner[end]);
        let mut plain = false;
        match kind {
            APPLICATION_DATA => {
                if !content.is_empty() {
                    sink(content);
                    plain = true;
                    // The answer came: later tickets are not kept, nor is what keeps them (the
                    // certificate chain among it).
                    self.tickets = None;
                }
            }
            ALERT => match content {
                [_, CLOSE_NOTIFY] => return Ok(Record::Closed),
                [_, USER_CANCELED] => {}
                [_, description] => {
                    return Err(protocol(&format!("the server sent alert {description}")));
                }
                _ => return Err(protocol("a malformed alert")),
            },
            HANDSHAKE if !content.is_empty() => {
                if self.handshake(content, out)? {
                    // A key update: the next record opens with the next key.
                    *key = None;
                }
            }
            _ => return Err(protocol("an unexpected record after the handshake")),
        }
        Ok(Record::Whole {
            len: HEADER + len,
            plain,
        })
    }

    /// Takes the handshake messages in `content` (after any start kept from an earlier record);
    /// whether the receiving key changed.
    fn handshake(&mut self, content: &[u8], out: &mut Vec<u8>) -> io::Result<bool> {
        let mut joined = std::mem::take(&mut self.handshake);
        let messages = if joined.is_empty() {
            content
        } else {
            joined.extend_from_slice(content);
            &joined[..]
        };
        let mut rest = messages;
        while let [kind, a, b, c, body @ ..] = rest {
            let len = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
            let Some(message) = body.get(..len) else {
                break;
            };
            rest = &body[len..];
            match (*kind, message) {
                (NEW_SESSION_TICKET, ticket) => {
                    if let Some(kernel) = &mut self.tickets {
                        kernel
                            .handle_new_session_ticket(ticket)
                            .map_err(super::tls_error)?;
                    }
                }
                (KEY_UPDATE, [asked @ (0 | 1)]) => {
                    // A key change ends its record (§5.1).
                    if !rest.is_empty() {
                        return Err(protocol("data after a key update in its record"));
                    }
                    self.rx.update(self.suite)?;
                    if *asked == 1 {
                        let key = self.tx.aead(self.suite)?;
                        self.update_tx(&key, false, out)?;
                    }
                    return Ok(true);
                }
                (KEY_UPDATE, _) => return Err(protocol("a malformed key update")),
                (kind, _) => {
                    return Err(protocol(&format!(
                        "an unexpected handshake message ({kind}) after the handshake"
                    )));
                }
            }
        }
        if rest.len() > MAX_HANDSHAKE {
            return Err(protocol("a handshake message over the size limit"));
        }
        if !rest.is_empty() {
            let kept = rest.to_vec();
            self.handshake = kept;
        }
        Ok(false)
    }

    /// Sends a key update (asking for the peer's if `ask`) sealed with `key`, and moves to the
    /// next sending key; gives its schedule.
    fn update_tx(
        &mut self,
        key: &aead::LessSafeKey,
        ask: bool,
        out: &mut Vec<u8>,
    ) -> io::Result<aead::LessSafeKey> {
        self.tx
            .seal(key, HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, u8::from(ask)], out)?;
        self.tx.update(self.suite)?;
        self.tx.aead(self.suite)
    }
}

#[cfg(test)]
impl Traffic {
    /// Lowers the sending key's limit to two records past those it sealed.
    pub(super) fn near_limit(&mut self) {
        self.limit = self.tx.seq + 2;
    }

    pub(super) fn tx_seq(&self) -> u64 {
        self.tx.seq
    }

    pub(super) fn keeps_tickets(&self) -> bool {
        self.tickets.is_some()
    }
}

impl Direction {
    fn extracted(
        suite: &Suite,
        (seq, secrets): (u64, ConnectionTrafficSecrets),
        secret: Secret,
    ) -> io::Result<Direction> {
        let (ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv }) = secrets
        else {
            return Err(io::Error::other("TLS: secrets of an unknown kind"));
        };
        let iv: [u8; aead::NONCE_LEN] = iv.as_ref().try_into().map_err(|_| crypto_failed())?;
        // The key log gave the first traffic secret; rustls' keys are those of a later one if
        // key updates came before the move. Follow them to the secret the IV comes from.
        let mut secret = secret;
        let mut updates = 0;
        while iv_of(suite, &secret)? != iv {
            if updates == MAX_EARLY_UPDATES {
                return Err(protocol("too many key updates before the first answer"));
            }
            secret = next_secret(suite, &secret)?;
            updates += 1;
        }
        Ok(Direction {
            key: Secret::new(key.as_ref()).ok_or_else(crypto_failed)?,
            iv,
            seq,
            secret,
        })
    }

    /// The key's schedule, for one call's records.
    fn aead(&self, suite: &Suite) -> io::Result<aead::LessSafeKey> {
        aead::UnboundKey::new(suite.aead, self.key.get())
            .map(aead::LessSafeKey::new)
            .map_err(|_| crypto_failed())
    }

    fn nonce(&self) -> io::Result<aead::Nonce> {
        if self.seq == u64::MAX {
            return Err(protocol("the sequence numbers ran out"));
        }
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        Ok(aead::Nonce::assume_unique_for_key(nonce))
    }

    /// Appends one record of `content` (at most a record's plaintext) of type `kind` to `out`.
    fn seal(
        &mut self,
        key: &aead::LessSafeKey,
        kind: u8,
        content: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let len = content.len() + 1 + TAG;
        let start = out.len();
        out.extend_from_slice(&[APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8]);
        out.extend_from_slice(content);
        out.push(kind);
        let header: [u8; HEADER] = out[start..start + HEADER].try_into().expect("a header");
        let tag = key
            .seal_in_place_separate_tag(
                self.nonce()?,
                aead::Aad::from(header),
                &mut out[start + HEADER..],
            )
            .map_err(|_| crypto_failed())?;
        out.extend_from_slice(tag.as_ref());
        self.seq += 1;
        Ok(())
    }

    /// Opens `record` (its ciphertext and tag) in place; gives the inner plaintext.
    fn open<'a>(
        &mut self,
        key: &aead::LessSafeKey,
        header: [u8; HEADER],
        record: &'a mut [u8],
    ) -> io::Result<&'a [u8]> {
        let nonce = self.nonce()?;
        let inner = key
            .open_in_place(nonce, aead::Aad::from(header), record)
            .map_err(|_| protocol("a record failed to open (bad_record_mac)"))?;
        if inner.len() > MAX_PLAINTEXT + 1 {
            return Err(protocol("a record over the size limit (record_overflow)"));
        }
        self.seq += 1;
        Ok(inner)
    }

    /// Moves to the next traffic secret and its key and IV (§7.2).
    fn update(&mut self, suite: &Suite) -> io::Result<()> {
        let next = next_secret(suite, &self.secret)?;
        let (key, iv) = keys(suite, &next)?;
        *self = Direction {
            key,
            iv,
            seq: 0,
            secret: next,
        };
        Ok(())
    }
}

/// The traffic secret after `secret` (§7.2).
fn next_secret(suite: &Suite, secret: &Secret) -> io::Result<Secret> {
    let mut next = [0u8; 48];
    let next = &mut next[..usize::from(secret.len)];
    expand_label(suite.hkdf, secret.get(), b"traffic upd", next)?;
    let secret = Secret::<48>::new(next).ok_or_else(crypto_failed);
    next.zeroize();
    secret
}

/// The IV of `secret` (§7.3).
fn iv_of(suite: &Suite, secret: &Secret) -> io::Result<[u8; aead::NONCE_LEN]> {
    let mut iv = [0u8; aead::NONCE_LEN];
    expand_label(suite.hkdf, secret.get(), b"iv", &mut iv)?;
    Ok(iv)
}

/// The key and IV of `secret` (§7.3).
fn keys(suite: &Suite, secret: &Secret) -> io::Result<(Secret<32>, [u8; aead::NONCE_LEN])> {
    let mut key = [0u8; 32];
    let key = &mut key[..suite.aead.key_len()];
    expand_label(suite.hkdf, secret.get(), b"key", key)?;
    let kept = Secret::new(key).ok_or_else(crypto_failed);
    key.zeroize();
    Ok((kept?, iv_of(suite, secret)?))
}

/// HKDF-Expand-Label with an empty context (RFC 8446 §7.1), into `out`.
fn expand_label(
    hkdf: hkdf::Algorithm,
    secret: &[u8],
    label: &[u8],
    out: &mut [u8],
) -> io::Result<()> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let length = (out.len() as u16).to_be_bytes();
    let label_len = [(b"tls13 ".len() + label.len()) as u8];
    let info: [&[u8]; 5] = [&length, &label_len, b"tls13 ", label, &[0]];
    hkdf::Prk::new_less_safe(hkdf, secret)
        .expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| crypto_failed())
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {what}"))
}

fn crypto_failed() -> io::Error {
    io::Error::other("TLS: a key operation failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an idle TLS 1.3 connection keeps of its record layer (boxed: mimalloc's 256-byte
    /// class at most); rustls' connection and key schedules kept about 4 KB.
    #[test]
    fn the_record_layer_stays_small() {
        let size = std::mem::size_of::<Traffic>();
        assert!(size <= 256, "Traffic is {size} bytes");
    }

    /// RFC 8448 §3 (a simple 1-RTT handshake): the server's application traffic secret and
    /// the key and IV it gives.
    #[test]
    fn keys_follow_rfc_8448() {
        let hex = |s: &str| -> Vec<u8> {
            let s: String = s.split_whitespace().collect();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let secret = hex(
            "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a
            4b 4f 1f 3f cb 63 16 43",
        );
        let (_, iv) = keys(&SUITES[0], &Secret::new(&secret).unwrap()).unwrap();
        assert_eq!(iv.to_vec(), hex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84"));
        let mut key = [0u8; 16];
        expand_label(hkdf::HKDF_SHA256, &secret, b"key", &mut key).unwrap();
        assert_eq!(
            key.to_vec(),
            hex("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56")
        );
    }
}
