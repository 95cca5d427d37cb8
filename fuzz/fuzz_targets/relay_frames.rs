//! Fuzz target: the relay's frame reader and writer (`podterm::relay::fuzzing::frames`) on
//! arbitrary socket bytes, read whole and cut into reads.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| podterm::relay::fuzzing::frames(data));
