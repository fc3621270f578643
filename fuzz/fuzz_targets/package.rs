//! A received package (zip, tar, tar.gz, zips nested in a data package), opened and verified
//! with the default limits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| difusor::fuzzing::package(data));
