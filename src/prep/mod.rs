//! PREP results files: reading every real variant of the CSV, checking its summary against
//! every known definition of it, and inspecting whole data packages.
//!
//! What it reads (`docs/formats.md`): UTF-8 with or without a byte-order mark, or Latin-1;
//! `,`, `|` or `;` as separator, or the one a first line `sep=|` names, and summary lines with
//! a separator of their own (INE 2021); quoted cells and `="…"` cells; key apostrophes
//! (`'040001B0100`, `'150937B0100'`); LF, CRLF or CR line ends; a title line, a corte line
//! (day or year first, padded or not, or the placeholder `DD/MM/AAAA`), an optional blank
//! line, the summary header under any of its spellings and its values (`'99.5698%`,
//! `4,569,608`, `0.369`, ten fields or thirteen), the column header under the spellings of
//! every institute seen and one row per acta. Missing-value markers (`-`, `Sin dato`,
//! `Ilegible`, …) stay distinct from zero.
//!
//! # Guarantees
//! - A file is read as a stream, one row at a time ([`reader`]).
//! - The summary is checked against every known definition of its fields, or the pinned
//!   institute's ([`definitions`]): a field is reported equal naming the definition that
//!   gives it, DIFFERENT only when no definition that explains the rest of the line does,
//!   with every definition's value beside it.
//! - A package's files are inspected on at most one thread fewer than the machine has cores,
//!   each at a lower scheduling priority ([`INSPECTION_NICE`]): a national package on
//!   election night never takes every core from the threads that serve visitors.
//! - Bad rows never stop an inspection: they are reported as anomalies with their line, a
//!   row whose cells do not fit the header included (it is not counted as an acta). Only a
//!   file that is not a PREP results CSV at all is an error, naming file, line and column: a
//!   cómputos file; a file that is no text (empty, UTF-16, NUL bytes); one with a quote never
//!   closed, or a quoted cell holding whole rows, whose rows cannot be told apart; one most of
//!   whose rows do not fit its header. In a package, such a file is reported beside the
//!   elections of every other file, which are inspected all the same.
//! - A package's `.csv` file that is no text is such a file, never taken for another file
//!   (candidacies, …): it cannot be told whether it held results. A package in which no
//!   results CSV is read is never called consistent ([`Report::consistent`]).

mod cell;
mod definitions;
mod inspect;
mod observation;
mod reader;
mod render;
mod summary;

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::config::{Config, Invalid};
use crate::package::Member;

pub(crate) use definitions::{Reglas, reglas, reglas_names};
pub(crate) use inspect::{CorteReport, FileReport, inspect_csv};
pub(crate) use reader::ReadError;
pub(crate) use render::render;

/// How the publisher checks a data package's summary, from the settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SummarySettings {
    /// Reject a data package whose summary contradicts its rows (`reject_inconsistent`).
    pub(crate) reject_inconsistent: bool,
    /// The institute whose definitions the summary is checked by (`reglas`); `None`: every
    /// one known.
    pub(crate) reglas: Option<&'static Reglas>,
}

impl SummarySettings {
    /// `reject_inconsistent`, and `reglas`: an institute whose definitions are known, or
    /// empty for all of them.
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        let s = &config.settings;
        let reglas = if s.reglas.is_empty() {
            None
        } else {
            Some(reglas(&s.reglas).ok_or_else(|| {
                Invalid::new(
                    "reglas",
                    format!(
                        "no known definitions are named {:?}; use one of: {}, or leave it \
                         empty for every known definition",
                        s.reglas,
                        reglas_names()
                    ),
                )
            })?)
        };
        Ok(Self {
            reject_inconsistent: s.reject_inconsistent,
            reglas,
        })
    }
}

/// The scheduling priority (`nice`) of the threads that inspect a package's files: below
/// the servers', so visitors are answered first when the cores are busy.
pub(crate) const INSPECTION_NICE: i32 = 10;

/// What `inspect` says about a package, an inner zip or one CSV.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// What was inspected, as given.
    pub(crate) input: String,
    /// The corte of the first results file that states one.
    pub(crate) corte: Option<CorteReport>,
    /// One entry per results CSV (one per election), in package order.
    pub(crate) elections: Vec<FileReport>,
    /// The results CSVs that cannot be read, each with where and why, in package order.
    pub(crate) unreadable: Vec<ReadError>,
    /// The package's other files (candidacies, LEEME, …), not inspected.
    pub(crate) other_files: Vec<String>,
}

impl Report {
    /// A report on the results files `elections`, those that are `unreadable`, and files
    /// that were not inspected.
    pub(crate) fn new(
        input: &str,
        elections: Vec<FileReport>,
        unreadable: Vec<ReadError>,
        other_files: Vec<String>,
    ) -> Self {
        Self {
            input: input.to_owned(),
            corte: elections
                .iter()
                .find_map(|e| e.corte.clone().filter(|c| c.utc.is_some()))
                .or_else(|| elections.iter().find_map(|e| e.corte.clone())),
            elections,
            unreadable,
            other_files,
        }
    }

    /// Whether at least one election was read and every election's summary is given, field
    /// by field, by one known definition: with no election read, nothing is consistent.
    pub(crate) fn consistent(&self) -> bool {
        !self.elections.is_empty() && self.elections.iter().all(|e| e.consistent)
    }
}

/// Inspects one CSV read from `input`, by every known definition or `reglas`'s.
pub(crate) fn inspect_file(
    name: &str,
    input: impl Read,
    reglas: Option<&'static Reglas>,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, ReadError> {
    let report = inspect_csv(name, input, reglas, progress)?;
    Ok(Report::new(name, vec![report], Vec::new(), Vec::new()))
}

/// Inspects the results CSVs among a package's files, as many at once as there are cores
/// but one (at least one), at [`INSPECTION_NICE`], by every known definition or `reglas`'s. A
/// CSV whose first bytes are text that holds neither `CLAVE_CASILLA` nor `ACTAS_ESPERADAS`
/// (a list of candidacies, …) is listed as another file; one whose first bytes are no text
/// ([`reader::not_text`]: empty, UTF-16, NUL bytes) is inspected, to be reported as
/// unreadable with what it is. A results CSV that cannot be read is reported among
/// [`Report::unreadable`]; the others are inspected all the same. `progress` is called with
/// the bytes parsed so far, in all.
pub(crate) fn inspect_members(
    input: &str,
    members: &[&Member],
    reglas: Option<&'static Reglas>,
    progress: &(dyn Fn(u64) + Sync),
) -> Report {
    let (results, others): (Vec<&Member>, Vec<&Member>) = members
        .iter()
        .partition(|m| is_csv(&m.path) && maybe_results(&m.bytes));
    let done = AtomicU64::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .saturating_sub(1)
        .max(1);
    let mut elections: Vec<FileReport> = Vec::with_capacity(results.len());
    let mut unreadable: Vec<ReadError> = Vec::new();
    for batch in results.chunks(threads) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|m| {
                    let done = &done;
                    scope.spawn(move || {
                        lower_priority();
                        let mut last = 0;
                        inspect_csv(&m.path, &m.bytes[..], reglas, &mut |at| {
                            let delta = at.saturating_sub(last);
                            last = at;
                            progress(done.fetch_add(delta, Ordering::Relaxed) + delta);
                        })
                    })
                })
                .collect();
            for (h, m) in handles.into_iter().zip(batch) {
                match h.join() {
                    Ok(Ok(report)) => elections.push(report),
                    Ok(Err(e)) => unreadable.push(e),
                    Err(_) => unreadable.push(ReadError {
                        file: m.path.clone(),
                        line: 0,
                        column: None,
                        what: "the inspection stopped unexpectedly".to_owned(),
                    }),
                }
            }
        });
    }
    let other_files = others.iter().map(|m| m.path.clone()).collect();
    Report::new(input, elections, unreadable, other_files)
}

/// Lowers the calling thread's scheduling priority to [`INSPECTION_NICE`] (on Linux the
/// nice value is a thread's own); a thread already lower stays so. Best effort: a failure
/// is logged, and the inspection goes on.
fn lower_priority() {
    use rustix::process::{getpriority_process, setpriority_process};
    let now = getpriority_process(None).unwrap_or(0);
    if now < INSPECTION_NICE
        && let Err(e) = setpriority_process(None, INSPECTION_NICE)
    {
        tracing::debug!(error = %e, "cannot lower the inspection's priority");
    }
}

/// Whether a `.csv` file may hold results, by its first [`reader::HEAD_BYTES`]: it looks like
/// them, or it is no text, so that what it holds cannot be told.
fn maybe_results(bytes: &[u8]) -> bool {
    let head = bytes.get(..reader::HEAD_BYTES).unwrap_or(bytes);
    reader::looks_like_results(head) || reader::not_text(head).is_some()
}

/// Whether a path ends in `.csv`, in any letter case.
fn is_csv(path: &str) -> bool {
    path.len() >= 4
        && path
            .get(path.len() - 4..)
            .is_some_and(|ext| ext.eq_ignore_ascii_case(".csv"))
}

#[cfg(test)]
mod tests;
