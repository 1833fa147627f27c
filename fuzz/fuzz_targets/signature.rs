#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trivy_mirror_fuzz::signature(data));
