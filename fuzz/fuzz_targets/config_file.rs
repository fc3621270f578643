//! A `difusor.toml`, read and validated with every module's settings.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| difusor::fuzzing::config_file(data));
