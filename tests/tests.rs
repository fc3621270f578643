//! The integration tests, one binary: each module drives the `difusor` binary through its
//! public surface (CLI, real sockets, real clients) with the helpers in `support`.
//!
//! One module: `cargo test --release --test tests <module>::`.

mod support;

mod access_log;
mod acme;
mod admin;
mod adversarial;
mod architecture;
mod check;
mod clock;
mod cluster;
mod config;
mod crash;
mod data_folder;
mod disk;
mod faults;
mod hostile_http;
mod hostile_sftp;
mod hostile_site;
mod inspect;
mod limits;
mod memoria;
mod origin;
mod packages;
mod publish;
mod pull;
mod replica;
mod serve;
mod service;
mod sftp;
mod simulate;
#[cfg(feature = "fault-injection")]
mod supervision;
mod swap;
mod syslog;
mod tampered;
mod tls;
mod watch;
