//! The fuzz targets' properties (fuzz/checks.rs) on random and mutated inputs, so the normal
//! suite exercises them on every run (`cargo +nightly fuzz run NAME` in fuzz/ goes deeper).

#[path = "../fuzz/checks.rs"]
mod checks;

use rand::Rng;
use rand::seq::IndexedRandom;

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
    let mut rng = rand::rng();
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
    let mut rng = rand::rng();
    for _ in 0..50_000 {
        let data = input(&mut rng);
        checks::resize(data.get(1..).unwrap_or(&[]));
    }
    checks::resize(&[b' '; 1000]);
}

#[test]
fn frame_sequences_hold_on_random_input() {
    let mut rng = rand::rng();
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
