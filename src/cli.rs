//! The command line: every subcommand and flag, defined once here.
//!
//! Settings flags (`--data-dir`, `--listen`, …) come from [`crate::config::SettingArgs`] and
//! each also reads `DIFUSOR_<NAME>` from the environment; a flag wins over its variable.

pub(crate) mod generate;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::SettingArgs;
use crate::simulate;

/// Receive, verify, keep and publish PREP results packages as an official difusor.
#[derive(Parser, Debug)]
#[command(name = "difusor", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Configuration file (default: ./difusor.toml if present).
    #[arg(long, global = true, env = "DIFUSOR_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Refused with the way to give the token instead (`ps` shows a command line to everyone).
    #[arg(long, global = true, hide = true, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// A simulated election night (SIMULACRO) served at `http://127.0.0.1:<port>/`, with no
    /// configuration: a temporary data folder and a new corte every few seconds.
    Demo {
        /// Port of the public site.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Time between simulated cortes (`5s`, `500ms`).
        #[arg(long, default_value = "5s")]
        every: jiff::SignedDuration,
    },
    /// Simulate an election night (SIMULACRO): for each corte, a site package and a data
    /// package in the real layout, each with its `.sha256`, delivered into a folder, over
    /// SFTP to a difusor's intake, or served over HTTP for a difusor that pulls (any of
    /// them, together).
    #[command(group(clap::ArgGroup::new("target").args(["out", "sftp", "serve"]).multiple(true).required(true)))]
    Simulate {
        /// Folder to deliver into (a difusor's intake folder for a drill).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Entity code: AGS, BC, BCS, CAMP, COAH, … ZAC.
        #[arg(long, default_value = "CAMP")]
        entidad: String,
        /// Elections, comma-separated: GUB, DIP_LOC, AYUN (local) or PRES, DIP_FED, SEN.
        #[arg(long, value_delimiter = ',', default_value = "GUB,DIP_LOC,AYUN")]
        elecciones: Vec<String>,
        /// Casillas in the catalogue (100 to 200000; a state has a few thousand, the
        /// country about 170000).
        #[arg(long, default_value_t = 5_000)]
        casillas: u32,
        /// Seed of every random draw: the same seed gives the same packages.
        #[arg(long, default_value_t = 2027)]
        seed: u64,
        /// Parties and coalitions of the fictitious election, comma-separated: parties
        /// (`MORENA`, or `MORENA=0.38` with its base share of the vote; known parties have
        /// theirs, others 0.05) and coalitions of listed parties (`PAN+PRI+PRD`; each gives a
        /// column for every combination of two or more of its parties, as real files do).
        #[arg(long, default_value = simulate::DEFAULT_PARTIDOS)]
        partidos: String,
        /// Election day (YYYY-MM-DD); default today.
        #[arg(long)]
        fecha: Option<jiff::civil::Date>,
        /// Election-night time of the first corte after 20:00 (`0s`, `6h`).
        #[arg(long, default_value = "0s")]
        desde: jiff::SignedDuration,
        /// Real time between cortes (`15m` as institutes do, `2s` for a fast drill). Each
        /// corte advances 15 minutes of election night whatever this is.
        #[arg(long, default_value = "15m")]
        every: jiff::SignedDuration,
        /// Stop after this many cortes (default: the whole night, to 20:00 of the next day).
        #[arg(long)]
        cortes: Option<u32>,
        /// Sign every package with this minisign secret key (`difusor keygen` makes one),
        /// writing `<package>.minisig` beside it.
        #[arg(long)]
        sign_key: Option<PathBuf>,
        /// Upload every corte to a difusor's SFTP intake (`sftp_listen`), as `user@host[:port]`
        /// (port 22 by default), over one connection kept for the whole run.
        #[arg(long, value_name = "USER@HOST[:PORT]", requires = "sftp_key")]
        sftp: Option<simulate::sftp::Address>,
        /// OpenSSH private key for --sftp (Ed25519 or ECDSA, without passphrase); its public
        /// key must be in the server's `sftp_authorized_keys`.
        #[arg(long, value_name = "PATH", requires = "sftp")]
        sftp_key: Option<PathBuf>,
        /// known_hosts file the server's host key is checked against (default:
        /// ~/.ssh/known_hosts).
        #[arg(long, value_name = "PATH", requires = "sftp")]
        sftp_known_hosts: Option<PathBuf>,
        /// Trust a server whose host key is not yet in known_hosts, and add it there (as
        /// OpenSSH's StrictHostKeyChecking=accept-new). A changed key is always refused.
        #[arg(long, requires = "sftp")]
        sftp_accept_new: bool,
        /// Serve the delivered files over HTTP on this address (`127.0.0.1:8090`), with a
        /// JSON index at `/`, for a difusor that pulls; until Ctrl-C after the last corte.
        /// Without --out, the files are delivered into a temporary folder.
        #[arg(long, value_name = "ADDR")]
        serve: Option<std::net::SocketAddr>,
        /// Certificate chain (PEM) to serve HTTPS with, with --serve-key.
        #[arg(long, value_name = "PEM", requires_all = ["serve", "serve_key"])]
        serve_cert: Option<PathBuf>,
        /// Private key (PEM) of --serve-cert.
        #[arg(long, value_name = "PEM", requires_all = ["serve", "serve_cert"])]
        serve_key: Option<PathBuf>,
    },
    /// Make a minisign key pair for signing simulated packages: `difusor.key` (secret, no
    /// password, for drills) and `difusor.pub` (for `minisign_keys`). Never overwrites.
    Keygen {
        /// Folder to write the pair into.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Run the server: rebuild the live site, then receive, publish and serve.
    Serve {
        /// Settings.
        #[command(flatten)]
        settings: SettingArgs,
    },
    /// Write a commented difusor.toml and the folders for a new difusor.
    Init {
        /// Folder to set up (created if missing).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Institute profile: generic, impepac-morelos-2021, ieem-edomex-2021,
        /// iepc-durango-2022, iepc-chiapas-2024, ietam-tamaulipas-2018.
        #[arg(long, default_value = "generic")]
        profile: String,
        /// Overwrite an existing difusor.toml.
        #[arg(long)]
        force: bool,
        /// Also make a self-signed certificate for localhost (tls/cert.pem, tls/key.pem) and
        /// serve HTTPS on 127.0.0.1:8443 with it: for tests and drills, never for the public.
        #[arg(long)]
        self_signed: bool,
    },
    /// Hand a package to the server that holds the data folder, or process it here if none
    /// runs. Its `<FILE>.sha256` and `<FILE>.minisig` are sent with it when present; one that
    /// is there but cannot be read stops it (exit status 2), and nothing is ingested.
    /// Exit status: 0 published, duplicate or archived as older; 1 rejected; 2 failed on this
    /// server's side (send it again once repaired) or another error; 3 held for an operator
    /// (its corte time is far from the publication window or ahead of the clock); 4 a server
    /// holds the data folder and its admin listener does not answer.
    Ingest {
        /// The package file.
        file: PathBuf,
        /// Publish it even if its corte time would hold it, or it was set aside after its
        /// processing was interrupted twice. It is verified all the same.
        #[arg(long)]
        force: bool,
        /// Settings.
        #[command(flatten)]
        settings: SettingArgs,
    },
    /// Show the institute's notice instead of results on every public path (`on --text`), or
    /// results again (`off`), at once; through the running server's admin listener.
    Notice {
        /// on or off.
        state: NoticeState,
        /// The notice to show (with `on`), as the institute wrote it.
        #[arg(long, required_if_eq("state", "on"))]
        text: Option<String>,
        /// Settings.
        #[command(flatten)]
        settings: SettingArgs,
    },
    /// Print the published cortes and the latest events.
    History {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// How many recent events to show.
        #[arg(long, default_value_t = 30)]
        events: usize,
        /// Settings.
        #[command(flatten)]
        settings: SettingArgs,
    },
    /// Make the memoria técnica of a period into a new folder: memoria.html (Spanish,
    /// printable, with charts), memoria.pdf (when Chromium is installed), memoria.json and
    /// datos/*.csv with every figure, bitacoras/ with the period's access logs as written,
    /// and SHA256SUMS. Reads the access logs (log_dir, rotated .gz included) and the journal;
    /// never writes the data folder, so it works beside a running server or on a copy.
    Memoria {
        /// What to report on and how.
        #[command(flatten)]
        options: crate::memoria::Options,
        /// Settings.
        #[command(flatten)]
        settings: SettingArgs,
    },
    /// Check from outside that a site serves exactly the institute's latest corte: every
    /// file of the package fetched and compared byte for byte (gzip and br decoded), the
    /// status and time of each answer, main.json's Cache-Control, the corte shown, TLS and
    /// HTTP/2; or, with --embargo, that nothing is served before the start. With --watch,
    /// every period, for a list of servers, with the suspension after 3 failed periods.
    /// Exit status: 0 all equal and fresh; 1 a difference, a stale corte or a leak; 2 could
    /// not check (network, TLS, arguments).
    Check {
        /// What to check and how.
        #[command(flatten)]
        options: crate::check::Options,
        /// Settings.
        #[command(flatten)]
        settings: SettingArgs,
    },
    /// Check a data package, an inner zip or a PREP CSV: corte, elections, the declared
    /// summary beside the one recomputed from the rows by every known definition, votes,
    /// counts and row anomalies. Exit status: 0 one known definition gives every declared
    /// summary field; 1 some field is given by none; 2 the input cannot be read.
    Inspect {
        /// The package (zip, tar, tar.gz), inner zip or CSV file.
        path: PathBuf,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Check the summary line by one institute's definitions only: ine-2019, ine-2023,
        /// iee-sonora-2021, ieec-2021, iee-puebla-2018, ieeq-2018, ieqroo-2019, iecm-2024,
        /// ieepco-2022.
        /// Without it, every known definition counts.
        #[arg(long, value_name = "NAME")]
        reglas: Option<String>,
    },
    /// Make the manual pages, a shell's completion or the configuration a system package
    /// installs (`packaging/build-deb.sh` uses it), from this program's own definition.
    Generate {
        /// What to make.
        what: generate::Asset,
        /// Folder to write the files into (created if missing); their paths are printed.
        /// Without it, the file (the main page for `man`) goes to standard output.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Publish an earlier corte again (by corte id, publication number or package SHA-256).
    /// Exit status as `ingest`'s; 1 (rejected) when no such corte was published.
    Rollback {
        /// The corte to return to, as `difusor history` lists it.
        corte: String,
        /// Settings.
        #[command(flatten)]
        settings: SettingArgs,
    },
}

/// Whether the institute's notice is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum NoticeState {
    /// The notice replaces the results.
    On,
    /// The results are shown again.
    Off,
}

/// Parses the command line, wiring `DIFUSOR_<NAME>` to every setting flag.
pub(crate) fn parse() -> Cli {
    let mut command = command();
    let matches = command.get_matches_mut();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if cli.admin_token.is_some() {
        command
            .error(
                clap::error::ErrorKind::UnknownArgument,
                format!(
                    "--admin-token is not accepted: the command line is visible to every user \
                     of this machine; {}",
                    crate::config::ADMIN_TOKEN_WHERE
                ),
            )
            .exit();
    }
    cli
}

/// The whole command line, each setting flag wired to its `DIFUSOR_<NAME>` variable.
pub(crate) fn command() -> clap::Command {
    with_env(Cli::command())
}

/// Every setting flag also reads `DIFUSOR_<NAME>` and shows its built-in default; list
/// settings take comma-separated values.
fn with_env(command: clap::Command) -> clap::Command {
    let names: Vec<&str> = crate::config::SETTING_DOCS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let defaults = toml::Table::try_from(crate::config::Settings::default()).unwrap_or_default();
    command.mut_subcommands(|sub| {
        sub.mut_args(|arg| {
            let id = arg.get_id().as_str().to_owned();
            if !names.contains(&id.as_str()) {
                return arg;
            }
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            let shown = defaults
                .get(&id)
                .filter(|v| v.as_str() != Some("") && v.as_array().is_none_or(|a| !a.is_empty()));
            let arg = match shown {
                Some(v) => arg.long_help(format!("{help}\n\n[default: {v}]")),
                None => arg,
            };
            let arg = arg.env(format!("DIFUSOR_{}", id.to_uppercase()));
            let is_bool = defaults.get(&id).is_some_and(toml::Value::is_bool);
            if is_bool {
                // `--reject-inconsistent` alone means true; `=false` still overrides a file.
                arg.num_args(0..=1).default_missing_value("true")
            } else if matches!(arg.get_action(), clap::ArgAction::Append) {
                arg.value_delimiter(',')
            } else {
                arg
            }
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        super::with_env(<super::Cli as clap::CommandFactory>::command()).debug_assert();
    }
}
