#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dicomlab::fuzzing::token_claims(data));
