//! A request path, normalised as the public listener does; invariants checked on the result.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // A request path reaches the server as text (hyper refuses a target that is not).
    if let Ok(raw) = std::str::from_utf8(data) {
        difusor::fuzzing::request_path(raw);
    }
});
