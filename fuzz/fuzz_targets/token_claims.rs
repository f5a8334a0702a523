#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dicomlab_testkit::fuzzing::token_claims(data));
