//! The observation log of `--watch`: one CSV row per target per period, which `difusor
//! memoria --check-log` reads back as incidents.
//!
//! # Format
//! UTF-8 CSV with a header line, the columns of [`COLUMNS`]: `time` (RFC 3339 with offset),
//! `target`, `url`, `result` (`ok`, `pending`, `fail`, `unchecked`), `expected_corte`,
//! `served_corte`, `files`, `equal`, `different`, `missing`, `errors`, `slowest_millis`,
//! `lag_seconds`, `consecutive_failures`, `event` (empty, `suspender` or `recuperado`) and
//! `detail` (the findings, `; `-separated, in Spanish).
//!
//! # Guarantees
//! - Appended, never rewritten: the header is written only to a new or empty file; each row
//!   is written whole, then fsynced, so a crash loses at most the row being written. A row
//!   left torn at the end of the file (a crash, a full disk) is ended, its field between
//!   quotes closed, before the next row is appended, so the rows after it read as their own.
//! - Reading is bounded ([`MAX_ROWS`] rows, each at most [`MAX_ROW_BYTES`] held, whatever
//!   the file holds) and tolerant of a torn last line; a row that does not read, or is
//!   longer than any row the log is written with, is skipped and counted, never guessed.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use jiff::Timestamp;

use super::watch::Line;
use crate::intake::describe;

/// Columns of the observation log, in order.
pub(crate) const COLUMNS: [&str; 16] = [
    "time",
    "target",
    "url",
    "result",
    "expected_corte",
    "served_corte",
    "files",
    "equal",
    "different",
    "missing",
    "errors",
    "slowest_millis",
    "lag_seconds",
    "consecutive_failures",
    "event",
    "detail",
];

/// Most rows read from one log.
const MAX_ROWS: usize = 2_000_000;

/// Longest row read from a log, its line end included. A row is written as one line; its
/// longest field, `detail`, holds one finding per kind of difference, each capped, so a row
/// of the log stays far below this.
const MAX_ROW_BYTES: usize = 4 * 1024 * 1024;

/// The observation log: CSV, appended, each row fsynced.
pub(super) struct Log {
    file: std::fs::File,
}

impl Log {
    /// Opens `path` to append, writing the header when the file is new or empty. Only a
    /// regular file is taken: a FIFO would hold the watch until some reader opened it (it is
    /// opened without waiting, then refused), and a device or socket cannot be read back by
    /// `memoria --check-log`.
    pub(super) fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let not_a_file = |what: &str| {
            anyhow::anyhow!(
                "the observation log {} is {what}, not a regular file: the log is appended and \
                 fsynced row by row and read back by `difusor memoria --check-log`; name a file",
                path.display()
            )
        };
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
        {
            return Err(not_a_file(describe(meta.file_type())));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)
            .with_context(|| format!("cannot open the observation log {}", path.display()))?;
        let kind = file.metadata()?.file_type();
        if !kind.is_file() {
            return Err(not_a_file(describe(kind)));
        }
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
        if empty {
            let mut header = csv::Writer::from_writer(Vec::new());
            header.write_record(COLUMNS)?;
            file.write_all(&header.into_inner().context("cannot write the log header")?)
                .and_then(|()| file.sync_data())
                .with_context(|| format!("cannot write {}", path.display()))?;
        } else {
            end_torn_row(&mut file)
                .with_context(|| format!("cannot end the last row of {}", path.display()))?;
        }
        Ok(Self { file })
    }

    /// Appends one observation.
    pub(super) fn append(&mut self, line: &Line<'_>) -> Result<()> {
        let r = line.report;
        let c = &r.counts;
        let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        let mut row = csv::Writer::from_writer(Vec::new());
        row.write_record([
            r.checked_at.clone(),
            r.target.clone(),
            r.url.clone(),
            line.period.as_str().to_owned(),
            r.expected_corte.clone().unwrap_or_default(),
            r.served_corte.clone().unwrap_or_default(),
            r.files.len().to_string(),
            c.equal.to_string(),
            c.different.to_string(),
            c.missing.to_string(),
            c.error.to_string(),
            number(r.slowest_millis.and_then(|m| i64::try_from(m).ok())),
            number(r.lag_seconds),
            line.consecutive_failures.to_string(),
            line.event.unwrap_or_default().to_owned(),
            r.summary(),
        ])?;
        let bytes = row.into_inner().context("cannot write an observation")?;
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data())
            .context("cannot write the observation log")
    }
}

/// Bytes of a log read at a time when looking for the start of its last line.
const TAIL_CHUNK: usize = 64 * 1024;

/// Ends the row a crash or a full disk left torn at the end of `file` (its last byte no line
/// end), closing the field between quotes it was cut in, so that the rows appended after it
/// are read as rows of their own, not as the rest of its field. A row of the log is one line
/// (what it quotes is written with its line ends escaped) and every quote of it is in a field
/// between quotes, so an odd number of quotes on the last line means it ends in one.
fn end_torn_row(file: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut end = file.seek(SeekFrom::End(0))?;
    let mut chunk = vec![0u8; TAIL_CHUNK];
    let mut quotes = 0usize;
    let mut last = true;
    while end > 0 {
        let n = usize::try_from(end).map_or(TAIL_CHUNK, |end| end.min(TAIL_CHUNK));
        let start = end - n as u64;
        file.seek(SeekFrom::Start(start))?;
        let part = &mut chunk[..n];
        file.read_exact(part)?;
        if last && part.last() == Some(&b'\n') {
            return Ok(());
        }
        last = false;
        let line_start = part
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        quotes += part[line_start..].iter().filter(|&&b| b == b'"').count();
        if line_start > 0 {
            break;
        }
        end = start;
    }
    let ending: &[u8] = if quotes % 2 == 1 { b"\"\n" } else { b"\n" };
    // Opened to append: written at the end, wherever the reads left the position.
    file.write_all(ending).and_then(|()| file.sync_data())
}

/// One row of an observation log, as read back.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    /// Its line in the file (the header is line 1).
    pub(crate) line: u64,
    /// When the period's check began.
    pub(crate) time: Timestamp,
    /// The target's name.
    pub(crate) target: String,
    /// Its address.
    pub(crate) url: String,
    /// `ok`, `pending`, `fail` or `unchecked`.
    pub(crate) result: String,
    /// `suspender`, `recuperado` or empty.
    pub(crate) event: String,
    /// The findings.
    pub(crate) detail: String,
}

impl Observation {
    /// Whether the period failed (`fail` or `unchecked`).
    pub(crate) fn failed(&self) -> bool {
        matches!(self.result.as_str(), "fail" | "unchecked")
    }
}

/// The observations of the log at `path` (opened as `file`), and how many rows could not be
/// read.
pub(crate) fn read(path: &Path, file: std::fs::File) -> Result<(Vec<Observation>, u64)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(Lines::new(std::io::BufReader::new(file)));
    let headers = reader
        .headers()
        .with_context(|| format!("cannot read the observation log {}", path.display()))?
        .clone();
    reader.get_mut().failed(path)?;
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(time), Some(target), Some(url), Some(result), Some(event), Some(detail)) = (
        column("time"),
        column("target"),
        column("url"),
        column("result"),
        column("event"),
        column("detail"),
    ) else {
        anyhow::bail!(
            "{} is not an observation log of difusor check (its header must name the columns {})",
            path.display(),
            COLUMNS.join(",")
        );
    };
    let mut observations = Vec::new();
    let mut skipped = 0;
    for record in reader.records().take(MAX_ROWS) {
        let Ok(record) = record else {
            skipped += 1;
            continue;
        };
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        let Ok(at) = field(time).parse::<Timestamp>() else {
            skipped += 1;
            continue;
        };
        observations.push(Observation {
            line: record.position().map_or(0, |p| p.line()),
            time: at,
            target: field(target),
            url: field(url),
            result: field(result),
            event: field(event),
            detail: field(detail),
        });
    }
    reader.get_mut().failed(path)?;
    Ok((observations, skipped))
}

/// What is given in place of a line too long to be a row: one empty field.
const TOO_LONG: &[u8] = b"\"\"\n";

/// The lines of a log, each held whole before the CSV reader sees it. A line longer than
/// [`MAX_ROW_BYTES`] is read to its end without being held and given as [`TOO_LONG`] instead:
/// a row that reads as no observation (so it is counted as one that could not be read, and
/// a header line that long is no header) and keeps the line numbers of the rows after it.
struct Lines<R> {
    inner: R,
    /// The line being given, and how much of it has been.
    line: Vec<u8>,
    given: usize,
    /// The read error that ended the lines: the CSV reader would take it for a bad row.
    error: Option<std::io::Error>,
}

impl<R: std::io::BufRead> Lines<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            line: Vec::new(),
            given: 0,
            error: None,
        }
    }

    /// Holds the next line, or an empty one when the log has no more.
    fn next_line(&mut self) -> std::io::Result<()> {
        use std::io::{BufRead as _, Read as _};
        self.line.clear();
        self.given = 0;
        let cap = MAX_ROW_BYTES as u64 + 1;
        (&mut self.inner)
            .take(cap)
            .read_until(b'\n', &mut self.line)?;
        if self.line.len() > MAX_ROW_BYTES {
            self.skip_to_line_end()?;
            self.line.clear();
            self.line.extend_from_slice(TOO_LONG);
        }
        Ok(())
    }

    /// The read error that ended the lines early, if one did.
    fn failed(&mut self, path: &Path) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(e)
                .with_context(|| format!("cannot read the observation log {}", path.display())),
            None => Ok(()),
        }
    }

    /// Reads past the rest of the current line, holding none of it.
    fn skip_to_line_end(&mut self) -> std::io::Result<()> {
        loop {
            let buffered = self.inner.fill_buf()?;
            if buffered.is_empty() {
                return Ok(());
            }
            match memchr::memchr(b'\n', buffered) {
                Some(at) => {
                    self.inner.consume(at + 1);
                    return Ok(());
                }
                None => {
                    let n = buffered.len();
                    self.inner.consume(n);
                }
            }
        }
    }
}

impl<R: std::io::BufRead> std::io::Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.given == self.line.len()
            && let Err(e) = self.next_line()
        {
            self.error = Some(e);
            return Ok(0);
        }
        let rest = &self.line[self.given..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.given += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_row_is_ended_closing_the_quoted_field_it_was_cut_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        // A last line longer than one read of the tail, its opening quote three reads back.
        let long = format!("a,b\n1,\"{}", "x".repeat(3 * TAIL_CHUNK));
        let long_ended = format!("{long}\"\n");
        for (torn, ended) in [
            (long.as_str(), long_ended.as_str()),
            ("a,b\n1,2\n", "a,b\n1,2\n"),
            ("a,b\n1,2", "a,b\n1,2\n"),
            ("a,b\n1,\"x, y", "a,b\n1,\"x, y\"\n"),
            // Cut after an escaped quote: still in the field; after its closing quote: not.
            ("a,b\n1,\"x \"\"y\"\"", "a,b\n1,\"x \"\"y\"\"\"\n"),
            ("a,b\n1,\"x \"\"y\"", "a,b\n1,\"x \"\"y\"\n"),
            ("1,\"x", "1,\"x\"\n"),
        ] {
            std::fs::write(&path, torn).unwrap();
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .unwrap();
            end_torn_row(&mut file).unwrap();
            let shown: String = torn.chars().take(40).collect();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), ended, "{shown:?}…");
        }
    }
}
