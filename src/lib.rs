//! difusor: receive, verify, keep and publish PREP results packages as an official difusor.
//!
//! The flow of one package, module by module:
//!
//! ```text
//! intake ──► publisher ─┬─► archive (fsync, by SHA-256)
//!                       ├─► package::verify (limits, names, evidence) ─► corte time
//!                       ├─► site (overlay or replace, in memory)
//!                       ├─► journal (fsync) ─► one atomic swap
//!                       ▼
//!                     http (visitors)      admin (operators)
//! ```
//!
//! Exit status: 0 success; 1 a package was rejected (`ingest`), a corte to return to does not
//! exist (`rollback`), or a package is inconsistent (`inspect`);
//! 3 a package is held for an operator (`ingest`); 4 the data folder is held by another
//! process (a second `serve`, or a command whose server cannot be reached, `store::Busy`);
//! 2 any other error (for `ingest`: this machine failed, not the package), printed as one
//! message on stderr.

#![forbid(unsafe_code)]

mod acme;
mod admin;
mod archive;
mod check;
mod cli;
mod clock;
mod commands;
mod config;
mod demo;
mod feed;
pub mod fuzzing;
mod hash;
mod http;
mod intake;
mod journal;
mod memoria;
mod metrics;
mod package;
mod peer_text;
mod prep;
mod publisher;
mod purge;
mod sections;
mod serve;
mod simulate;
mod site;
mod store;
mod syslog;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Cmd;
use crate::sections::Sections;

/// The program: reads the command line, runs the subcommand and returns the exit status
/// described above. `src/main.rs` is only a call to this.
pub fn main() -> ExitCode {
    let cli = cli::parse();
    logging();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("difusor: {e:#}");
            if e.downcast_ref::<store::Busy>().is_some() {
                ExitCode::from(commands::BUSY_EXIT)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

/// Logs go to stderr; when stderr is the journal's stream (systemd's `JOURNAL_STREAM` names
/// its device and inode), to journald natively instead, with the fields of each event as
/// journal fields (`journalctl -o verbose`). `RUST_LOG` filters either (default `info`);
/// rustls is held to errors ([`TLS_LIBRARY_LOG`]) and russh to nothing ([`SSH_LIBRARY_LOG`])
/// unless `RUST_LOG` names them.
fn logging() {
    use tracing_subscriber::prelude::*;
    let filter = || {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let spec = std::env::var("RUST_LOG").unwrap_or_default();
        [("rustls", TLS_LIBRARY_LOG), ("russh", SSH_LIBRARY_LOG)]
            .into_iter()
            .filter(|(library, _)| !spec.contains(library))
            .filter_map(|(_, held)| held.parse().ok())
            .fold(filter, |filter, directive| filter.add_directive(directive))
    };
    let journald = stderr_is_journal().then(tracing_journald::layer);
    match journald {
        Some(Ok(layer)) => tracing_subscriber::registry()
            .with(filter())
            .with(layer.with_syslog_identifier("difusor".to_owned()))
            .init(),
        other => {
            tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_writer(std::io::stderr)
                .init();
            if let Some(Err(e)) = other {
                tracing::warn!(error = %e, "journald cannot be reached; logging to stderr");
            }
        }
    }
}

/// The log of rustls: errors only. It logs as warnings what a TLS client sent wrong (an SNI
/// it cannot use, quoted whole, up to 64 KiB of it; a warning alert; a message out of turn),
/// once per connection and with no bound, so any client could fill the log or exhaust
/// journald's rate limit, which then drops difusor's own lines. Refused handshakes are
/// journaled with their reason under a bound instead (`http::refusals`).
const TLS_LIBRARY_LOG: &str = "rustls=error";

/// The log of russh (and russh-sftp): nothing. It logs what a logged-in SSH client sent that it
/// refuses by itself (a channel request it does not know, such as the `break` OpenSSH's `~B`
/// sends; an answer to no request; a pty mode it does not know), a line for each message, at
/// whatever rate the client sends them; its other lines come with an error that ends the
/// connection, which the SFTP session's journal entry holds (`intake::sftp`).
const SSH_LIBRARY_LOG: &str = "russh=off";

/// Whether stderr is the journal's stream: `JOURNAL_STREAM` is `<device>:<inode>` of it.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    rustix::fs::fstat(std::io::stderr())
        .is_ok_and(|st| st.st_dev.to_string() == device && st.st_ino.to_string() == inode)
}

/// The async runtime, with `workers` threads (0: one per CPU core).
fn runtime(workers: usize) -> Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    Ok(builder.enable_all().build()?)
}

/// `~/.ssh/known_hosts`, where OpenSSH keeps the host keys it trusts.
fn default_known_hosts() -> Result<std::path::PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("HOME is not set: give the known_hosts file with --sftp-known-hosts")
        })?;
    Ok(std::path::PathBuf::from(home)
        .join(".ssh")
        .join("known_hosts"))
}

/// Dispatches to one function per subcommand.
fn run(cli: cli::Cli) -> Result<u8> {
    let config_file = cli.config.as_deref();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Demo { port, every } => {
            runtime.block_on(demo::run(port, every.unsigned_abs()))?;
            Ok(0)
        }
        Cmd::Simulate {
            out,
            entidad,
            elecciones,
            casillas,
            seed,
            fecha,
            desde,
            every,
            cortes,
            sign_key,
            sftp,
            sftp_key,
            sftp_known_hosts,
            sftp_accept_new,
            serve,
            serve_cert,
            serve_key,
            partidos,
        } => {
            let settings = simulate::Settings {
                entidad,
                elecciones,
                casillas,
                seed,
                fecha: fecha.unwrap_or_else(|| jiff::ZonedDateTime::now().date()),
                desde: desde.unsigned_abs(),
                partidos,
            };
            let sftp = match (sftp, sftp_key) {
                (Some(address), Some(key)) => Some(simulate::sftp::Options {
                    address,
                    key,
                    known_hosts: match sftp_known_hosts {
                        Some(path) => path,
                        None => default_known_hosts()?,
                    },
                    accept_new: sftp_accept_new,
                }),
                _ => None,
            };
            let serve = serve.map(|listen| simulate::serve::Options {
                listen,
                tls: serve_cert.zip(serve_key),
            });
            let plan = simulate::Plan {
                out,
                sftp,
                serve,
                every: every.unsigned_abs(),
                cortes,
                sign_key,
            };
            runtime.block_on(simulate::run(&settings, plan))?;
            Ok(0)
        }
        Cmd::Keygen { dir } => {
            let (secret, public) = simulate::keygen(&dir)?;
            println!("secret key: {}", secret.display());
            println!("public key: {}", public.display());
            println!(
                "servers check signatures with: minisign_keys = [\"{}\"]",
                public.display()
            );
            Ok(0)
        }
        Cmd::Serve { settings } => {
            let sections = Sections::load(config_file, &settings)?;
            drop(runtime);
            let workers = usize::try_from(sections.config.settings.workers).unwrap_or(0);
            let source = serve::Source {
                file: config_file.map(ToOwned::to_owned),
                embedded: false,
                args: settings,
            };
            self::runtime(workers)?.block_on(serve::run(sections, source))?;
            Ok(0)
        }
        Cmd::Init {
            dir,
            profile,
            force,
            self_signed,
        } => {
            commands::init(&dir, &profile, force, self_signed)?;
            Ok(0)
        }
        Cmd::Ingest {
            file,
            force,
            settings,
        } => {
            let sections = Sections::load(config_file, &settings)?;
            let outcome = runtime.block_on(commands::ingest(sections, &file, force))?;
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            commands::explain(&outcome);
            Ok(commands::exit_code(&outcome))
        }
        Cmd::Notice {
            state,
            text,
            settings,
        } => {
            let sections = Sections::load(config_file, &settings)?;
            let text = (state == cli::NoticeState::On).then(|| text.unwrap_or_default());
            let said = runtime.block_on(commands::notice(sections.config, text))?;
            println!("{said}");
            Ok(0)
        }
        Cmd::History {
            json,
            events,
            settings,
        } => {
            let sections = Sections::load(config_file, &settings)?;
            commands::history(&sections.config, json, events)?;
            Ok(0)
        }
        Cmd::Memoria { options, settings } => {
            let sections = Sections::load(config_file, &settings)?;
            memoria::run(&sections.config, &options)?;
            Ok(0)
        }
        Cmd::Check { options, settings } => {
            let config = config::Config::load(config_file, &settings)?;
            runtime.block_on(check::run(&config, &options))
        }
        Cmd::Inspect { path, json, reglas } => commands::inspect(&path, json, reglas.as_deref()),
        Cmd::Generate { what, out_dir } => {
            cli::generate::run(cli::command(), what, out_dir.as_deref())?;
            Ok(0)
        }
        Cmd::Rollback { corte, settings } => {
            let sections = Sections::load(config_file, &settings)?;
            let outcome = runtime.block_on(commands::rollback(sections, &corte))?;
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            Ok(commands::exit_code(&outcome))
        }
    }
}
