//! The fuzz targets' properties (fuzz/checks.rs, `podterm::relay::fuzzing`,
//! `podterm::cluster::tls_fuzzing`) on random and mutated inputs, so the normal suite
//! exercises them on every run (`cargo +nightly fuzz run NAME` in fuzz/ goes deeper).
//!
//! Each test draws from a seeded generator and prints its seed, which shows with a failure;
//! `PODTERM_FUZZ_SEED=N cargo test --test protocol_fuzz` replays it.

#[path = "../fuzz/checks.rs"]
mod checks;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// The generator for one test: `PODTERM_FUZZ_SEED` or a fresh seed, printed either way.
fn seeded(test: &str) -> StdRng {
    let seed = std::env::var("PODTERM_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("{test}: PODTERM_FUZZ_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

const SEEDS: &[&[u8]] = &[
    b"\x00hello",
    b"\x00",
    b"\x04{\"Width\":80,\"Height\":24}",
    b"\x04{\"Width\":10000,\"Height\":1}",
    b"\x04{\"Height\":24,\"Width\":80,\"x\":1}",
    b"\x04{\"Width\":1e3,\"Height\":2}",
    &[255, 0],
    &[255, 1],
    &[255],
    &[1, 2, 3],
    &[3],
    &[],
];

/// Random bytes, or a seed with a few bytes flipped, inserted or cut.
fn input(rng: &mut impl Rng) -> Vec<u8> {
    if rng.random_bool(0.3) {
        let len = rng.random_range(0..64);
        return (0..len).map(|_| rng.random()).collect();
    }
    let mut data = SEEDS.choose(rng).unwrap().to_vec();
    for _ in 0..rng.random_range(0..4) {
        match rng.random_range(0..3) {
            0 if !data.is_empty() => {
                let i = rng.random_range(0..data.len());
                data[i] = rng.random();
            }
            1 => {
                let i = rng.random_range(0..=data.len());
                data.insert(i, *b"{}\":,0123456789 -".choose(rng).unwrap());
            }
            _ if !data.is_empty() => {
                let i = rng.random_range(0..data.len());
                data.truncate(i);
            }
            _ => {}
        }
    }
    data
}

#[test]
fn client_frame_checks_hold_on_random_input() {
    let mut rng = seeded("client_frame");
    for _ in 0..50_000 {
        checks::client_frame(&input(&mut rng));
    }
    for b in 0..=255u8 {
        checks::client_frame(&[b]);
        checks::client_frame(&[b, 0]);
    }
}

#[test]
fn resize_decoding_holds_on_random_input() {
    let mut rng = seeded("resize");
    for _ in 0..50_000 {
        let data = input(&mut rng);
        checks::resize(data.get(1..).unwrap_or(&[]));
    }
    checks::resize(&[b' '; 1000]);
}

#[test]
fn frame_sequences_hold_on_random_input() {
    let mut rng = seeded("frame_sequence");
    for _ in 0..20_000 {
        // Sequences of small frames built from seeds, to reach fragments and continuations.
        let mut data = vec![rng.random()];
        for _ in 0..rng.random_range(1..6) {
            let payload = input(&mut rng);
            data.push(
                *[0x02u8, 0x82, 0x00, 0x80, 0x01, 0x81, 0x03, 0x84]
                    .choose(&mut rng)
                    .unwrap(),
            );
            data.push(payload.len().min(255) as u8);
            data.extend_from_slice(&payload[..payload.len().min(255)]);
        }
        checks::frame_sequence(&data);
        let noise: Vec<u8> = (0..rng.random_range(0..96)).map(|_| rng.random()).collect();
        checks::frame_sequence(&noise);
    }
}

/// A valid frame: fin, opcode, payload, masked or not (mask key from `rng`).
fn frame(rng: &mut impl Rng, masked: bool) -> Vec<u8> {
    let opcode = *[0x0u8, 0x1, 0x2, 0x8, 0x9, 0xA].choose(rng).unwrap();
    let control = opcode >= 0x8;
    let fin = control || rng.random_bool(0.7);
    let len = match rng.random_range(0..10) {
        0 if !control => rng.random_range(126..1100),
        _ => rng.random_range(0..40),
    };
    let payload: Vec<u8> = if opcode == 0x1 {
        (0..len).map(|_| rng.random_range(b' '..=b'~')).collect()
    } else {
        (0..len).map(|_| rng.random()).collect()
    };
    let mut out = vec![u8::from(fin) << 7 | opcode];
    let mask_bit = u8::from(masked) << 7;
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let key: [u8; 4] = rng.random();
    if masked {
        out.extend_from_slice(&key);
    }
    out.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| if masked { b ^ key[i % 4] } else { *b }),
    );
    out
}

#[test]
fn the_relays_frame_reader_holds_on_random_streams() {
    let mut rng = seeded("relay_frames");
    for _ in 0..3_000 {
        let role: u8 = rng.random();
        // Streams of valid frames for the role, then damaged: bytes flipped, cut, or noise.
        let mut data = vec![role];
        for _ in 0..rng.random_range(0..6) {
            data.extend(frame(&mut rng, role & 1 == 0));
        }
        for _ in 0..rng.random_range(0..3) {
            if data.len() > 1 {
                let i = rng.random_range(1..data.len());
                match rng.random_range(0..3) {
                    0 => data[i] = rng.random(),
                    1 => data.truncate(i),
                    _ => data.insert(i, rng.random()),
                }
            }
        }
        podterm::relay::fuzzing::frames(&data);
        let noise: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
        podterm::relay::fuzzing::frames(&noise);
    }
}

#[test]
fn the_tls_client_holds_on_hostile_and_damaged_server_streams() {
    let mut rng = seeded("cluster_tls");
    // An untouched stream, then streams cut or flipped in the handshake and in the data.
    podterm::cluster::tls_fuzzing::server_stream(&[1, 0xff, 0xff, 0, 0, 0]);
    for _ in 0..150 {
        let mut data = vec![rng.random::<u8>() | 1];
        let at: u16 = rng.random_range(0..4000);
        let (cut, flip) = if rng.random_bool(0.5) {
            (at, u16::MAX)
        } else {
            (u16::MAX, at)
        };
        data.extend_from_slice(&cut.to_be_bytes());
        data.extend_from_slice(&flip.to_be_bytes());
        data.push(rng.random_range(1..=255));
        podterm::cluster::tls_fuzzing::server_stream(&data);
    }
    for _ in 0..300 {
        // Raw bytes as the server: noise, or something shaped like a TLS record header.
        let mut data = vec![rng.random::<u8>() & !1];
        if rng.random_bool(0.5) {
            data.extend_from_slice(&[0x16, 0x03, 0x03]);
        }
        data.extend((0..rng.random_range(0..300)).map(|_| rng.random::<u8>()));
        podterm::cluster::tls_fuzzing::server_stream(&data);
    }
}

/// A small archive for the tar reader's mutations: one file.
fn tar_seed() -> Vec<u8> {
    use podterm::protocol::tar::{BLOCK, file_header, trailer};
    let mut out = Vec::new();
    let data = b"hello";
    out.extend_from_slice(&file_header("top", data.len() as u64, 0o644, 0).unwrap());
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0u8, BLOCK - data.len()));
    out.extend(trailer(0));
    out
}

#[test]
fn the_tar_reader_holds_on_random_and_damaged_archives() {
    let mut rng = seeded("tar_reader");
    let seed = tar_seed();
    for _ in 0..3_000 {
        let mut data = seed.clone();
        for _ in 0..rng.random_range(0..8) {
            let i = rng.random_range(0..data.len());
            match rng.random_range(0..3) {
                0 => data[i] = rng.random(),
                1 => data[i] = *b"./\0 0157xLKg2".choose(&mut rng).unwrap(),
                _ => data.truncate(i.max(1)),
            }
        }
        checks::tar_reader(&data);
    }
}
