//! `difusor memoria`: the memoria técnica (R6.1–R6.6) from the access logs and the journal.
//!
//! Reads the access logs of a period from `log_dir` (`access.log` and the rotated
//! `access-YYYY-MM-DD.log[.gz]`), the journal's cortes and events, and optionally the portal's
//! usual logs; writes into one folder the report (`memoria.html`, `memoria.pdf` when Chromium
//! is installed), every table as CSV (`datos/`), every figure as JSON (`memoria.json`), the
//! access logs of the period as written (`bitacoras/`, gzip) and `SHA256SUMS` over it all.
//!
//! # Guarantees
//! - Read only: the data folder is never written (the journal is opened read-only), so it
//!   runs beside a live server or on a copy of a data folder on another machine.
//! - A damaged journal stops it before anything is written, naming the file, what SQLite's
//!   check found and what to do ([`Journal::open_read_only`]): never a report that looks
//!   whole with rows of the journal that could not be read.
//! - The same input gives the same bytes, apart from the one generated-at line (and the PDF,
//!   whose maker stamps its own date).
//! - The folder appears whole or not at all (written beside it, renamed when complete); every
//!   file in it is written to a temporary name, fsynced and renamed.
//! - Every figure's method is written in the report.

mod agents;
mod deliver;
mod figures;
mod incidents;
mod logline;
pub(crate) mod model;
mod render;
mod scan;
mod sources;
mod visitors;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::check::log::Observation;
use crate::config::Config;
use crate::journal::Journal;
use crate::store::Layout;

/// Longest period a report covers.
const MAX_PERIOD: SignedDuration = SignedDuration::from_hours(62 * 24);
/// Largest operator's notes read (some 300 printed pages): the notes are put whole into
/// the page, its PDF and its JSON.
const MAX_NOTES_BYTES: u64 = 1 << 20;

/// What `difusor memoria` is asked for: its flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// Start of the period: RFC 3339, or a date or date-time in the configured time zone
    /// (`2024-06-02T20:00`); default publish_start.
    #[arg(long, value_name = "TIME")]
    pub(crate) from: Option<String>,
    /// End of the period (excluded), likewise; a date means the end of that day; default
    /// publish_end.
    #[arg(long, value_name = "TIME")]
    pub(crate) to: Option<String>,
    /// New or empty folder to write the report into.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// The operator's notes, comments and suggestions (Markdown), shown in the report.
    #[arg(long, value_name = "FILE")]
    pub(crate) notas: Option<PathBuf>,
    /// The portal's usual access logs (Combined or Common, plain or gzip, from nginx or
    /// Apache), for the comparison with its daily average.
    #[arg(long, value_name = "LOG", num_args = 1..)]
    pub(crate) base: Vec<PathBuf>,
    /// The portal's usual visitors per day, when its figures come from elsewhere.
    #[arg(long, value_name = "N", conflicts_with = "base")]
    pub(crate) base_visitas: Option<f64>,
    /// The portal's usual pages per day.
    #[arg(long, value_name = "N", conflicts_with = "base")]
    pub(crate) base_paginas: Option<f64>,
    /// The portal's usual hits per day.
    #[arg(long, value_name = "N", conflicts_with = "base")]
    pub(crate) base_hits: Option<f64>,
    /// Globs of the paths that are pages (HTML documents), comma-separated; `*` crosses `/`.
    #[arg(
        long,
        value_name = "GLOBS",
        value_delimiter = ',',
        default_value = "/,*/,*.html,*.htm"
    )]
    pub(crate) paginas: Vec<String>,
    /// Globs of the institute's host names, for where visitors came from.
    #[arg(
        long,
        value_name = "GLOBS",
        value_delimiter = ',',
        default_value = "ine.mx,*.ine.mx"
    )]
    pub(crate) instituto: Vec<String>,
    /// Observation logs of `difusor check --watch` (CSV): the failed periods of the
    /// period become incidents.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub(crate) check_log: Vec<PathBuf>,
}

/// Makes the memoria into `options.out`.
pub(crate) fn run(config: &Config, options: &Options) -> Result<()> {
    let tz = config.timezone.clone();
    let (from, to) = period(config, options)?;
    let journal_path = Layout::new(&config.data_dir).journal();
    let (publications, events) = if journal_path.exists() {
        Journal::open_read_only(&journal_path)
            .and_then(|journal| Ok((journal.publications()?, journal.events_between(from, to)?)))
            .map_err(|e| {
                e.explained(format!(
                    "cannot read the journal {}",
                    journal_path.display()
                ))
            })?
    } else {
        eprintln!(
            "warning: no journal at {}: the report has no cortes and no incidents from the \
             server's journal (check --data-dir)",
            journal_path.display()
        );
        (Vec::new(), Vec::new())
    };
    let inputs = sources::logs_of_period(&config.log_dir, from, to, &tz)?;
    if inputs.is_empty() {
        eprintln!(
            "warning: no access log of the period in {} (check log_dir or --data-dir)",
            config.log_dir.display()
        );
    }
    let notes = options.notas.as_deref().map(read_notes).transpose()?;
    let checks = check_logs(&options.check_log)?;
    let folder = deliver::Folder::create(&options.out)?;
    // The logs are copied into the folder while they are read for the figures.
    let memoria = std::thread::scope(|s| {
        let copying = s.spawn(|| folder.copy_logs(&inputs));
        let memoria = figures::compute(&figures::Request {
            from,
            to,
            timezone: tz,
            inputs: &inputs,
            publications: &publications,
            events: &events,
            journal: journal_path.exists().then_some(journal_path.as_path()),
            update_interval: config.update_interval,
            options,
            notes,
            checks: &checks,
        });
        let copied = copying
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        copied.and(memoria)
    })?;
    folder.finish(&memoria)
}

/// The operator's notes: a regular file of UTF-8 text of at most [`MAX_NOTES_BYTES`].
fn read_notes(path: &std::path::Path) -> Result<String> {
    use std::io::Read as _;
    let file = sources::open_named(path, "the notes")?;
    let mut bytes = Vec::new();
    file.take(MAX_NOTES_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the notes {}", path.display()))?;
    if bytes.len() as u64 > MAX_NOTES_BYTES {
        bail!(
            "the notes {} are larger than 1 MiB; --notas takes the operator's comments and \
             suggestions as Markdown text",
            path.display()
        );
    }
    String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!(
            "the notes {} are not UTF-8 text; save them as UTF-8",
            path.display()
        )
    })
}

/// The observation logs of `difusor check`, each with its file name.
fn check_logs(paths: &[PathBuf]) -> Result<Vec<(String, Vec<Observation>)>> {
    paths
        .iter()
        .map(|path| {
            let file = sources::open_named(path, "the observation log")?;
            let (observations, skipped) = crate::check::log::read(path, file)?;
            if skipped > 0 {
                eprintln!(
                    "warning: {}: {skipped} rows could not be read and were left out",
                    path.display()
                );
            }
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            Ok((name, observations))
        })
        .collect()
}

/// The period asked for, or the configured publication window.
fn period(config: &Config, options: &Options) -> Result<(Timestamp, Timestamp)> {
    let tz = &config.timezone;
    let from = match &options.from {
        Some(text) => instant(text, tz, false).context("--from")?,
        None => config.publish_start.context(
            "no period: give --from and --to, or set publish_start and publish_end in the \
             configuration",
        )?,
    };
    let to = match &options.to {
        Some(text) => instant(text, tz, true).context("--to")?,
        None => config
            .publish_end
            .context("no end of the period: give --to, or set publish_end in the configuration")?,
    };
    if to <= from {
        bail!("the period ends ({to}) before it begins ({from}); check --from and --to");
    }
    if to.duration_since(from) > MAX_PERIOD {
        bail!(
            "the period from {from} to {to} is longer than 62 days; a memoria covers the \
             election days: give a shorter --from/--to"
        );
    }
    Ok((from, to))
}

/// An instant: RFC 3339 (`2024-06-02T20:00:00-06:00`), a local date-time
/// (`2024-06-02T20:00`, `2024-06-02 20:00:00`) or a local date (its start; for the end of a
/// period, the start of the next day, so `--to 2024-06-03` includes that whole day).
fn instant(text: &str, tz: &TimeZone, end: bool) -> Result<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(dt) = text.replace(' ', "T").parse::<jiff::civil::DateTime>()
        && text.contains([':'])
    {
        return Ok(dt.to_zoned_datetime(tz.clone())?.timestamp());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        let day = if end { date.tomorrow()? } else { date };
        return Ok(day.to_zoned_datetime(tz.clone())?.timestamp());
    }
    bail!(
        "{text:?} is not a time: write 2024-06-02T20:00:00-06:00, 2024-06-02T20:00 (in the \
         configured time zone) or 2024-06-02"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_bounds_read_rfc3339_local_times_and_whole_days() {
        let tz = TimeZone::get("America/Mexico_City").unwrap();
        let at = |s: &str, end| instant(s, &tz, end).unwrap().to_string();
        assert_eq!(
            at("2024-06-02T20:00:00-06:00", false),
            "2024-06-03T02:00:00Z"
        );
        assert_eq!(at("2024-06-02T20:00", false), "2024-06-03T02:00:00Z");
        assert_eq!(at("2024-06-02 20:00:00", false), "2024-06-03T02:00:00Z");
        assert_eq!(at("2024-06-02", false), "2024-06-02T06:00:00Z");
        assert_eq!(at("2024-06-03", true), "2024-06-04T06:00:00Z");
        assert!(instant("mañana", &tz, false).is_err());
    }
}
