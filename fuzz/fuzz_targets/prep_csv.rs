//! A PREP results CSV in a data package, inspected and its report rendered.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| difusor::fuzzing::prep_csv(data));
