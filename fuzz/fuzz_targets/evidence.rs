//! A `.sha256` sidecar and a `SHA256SUMS` member list (split at the first NUL byte), checked
//! against a package.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| difusor::fuzzing::evidence(data));
