//! Fuzz target: the exec connection's TLS client (`podterm::cluster::tls_fuzzing`) against a
//! hostile server stream, or a real server's stream cut short or with a byte flipped.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| podterm::cluster::tls_fuzzing::server_stream(data));
