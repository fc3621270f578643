//! The `difusor` binary: everything is in the library (`src/lib.rs`), which the fuzz targets
//! of `fuzz/` use too.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    difusor::main()
}
