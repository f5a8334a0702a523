#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dicomlab_testkit::fuzzing::qido_query(data));
