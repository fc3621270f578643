//! Reading one PREP CSV as a stream: its encoding, line ends and separator, the lines before
//! the rows (title, corte, summary), the column header, then one row at a time.
//!
//! # Guarantees
//! - Only the first [`HEAD_BYTES`] are held to detect the encoding, the line ends and the
//!   separator; rows are read one at a time into one reused record, so memory does not grow
//!   with the file.
//! - Every error names the file, the line and, where there is one, the column. Lines are
//!   counted right whatever ends them (LF, CRLF or CR alone, the last line with or without
//!   one), blank lines included: [`LineEnds`] gives the parser LF alone.
//! - A column is found by its name under any of its spellings, never by its
//!   position, except the party and coalition columns: every column between the acta's own
//!   figures (`TOTAL_VOTOS_SACADOS`, …) and `NO_REGISTRADOS` (or `NO_REGISTRADAS`) is one.
//!   Two of them may have the same name (INE 2019): each is its own column, and where its
//!   name is repeated it is named with its column number ([`VoteColumn::label`]).
//! - The column header is the line with `CLAVE_CASILLA` or `CLAVE_ACTA`, or, in the layouts
//!   of 2015–2017 that have no key column (INE 2015, IEC Coahuila and IEEM 2017), the line with
//!   `SECCION`, `TIPO_CASILLA` and `CONTABILIZADA`.
//! - A cómputos file (the district counts, a different product: `ACTAS_COMPUTADAS` in its
//!   summary, or `COMPUTADAS` as INE's of 2015 write it, or casilla rows without
//!   `CONTABILIZADA`) is refused by name, never read as PREP results.
//! - A file that is no text ([`not_text`]: empty, UTF-16 or another byte-order mark, NUL
//!   bytes) is refused saying what it is.
//! - A quote never closed never swallows the rest of the file silently: the file ending inside
//!   a quoted cell, or a quoted cell holding whole rows, is an error naming the line where the
//!   quote opened. A quoted cell with line breaks inside it is read as one cell.
//! - A row whose cells do not fit the header is returned marked ([`Row::malformed`]), for the
//!   caller to report, and reading goes on.
//! - A separator at the end of a line is no cell: a row with more cells than the header, all
//!   of those past it empty (one row, or every row, ending in a separator where the header
//!   does not), is read as its cells, by position from the first, and is not marked; so is
//!   every row of a file whose every line, the header's included, ends in one. A row with an
//!   unquoted separator inside a cell and an empty last cell has the same cells as such a
//!   row, and cannot be told from it: it is read so too, its cells after that separator one
//!   column off.
//! - A summary header's names that name no known field are never skipped unsaid: they are
//!   kept for the report ([`Preamble::unread_summary`]), at most [`MAX_UNREAD_SUMMARY_NAMES`]
//!   of them and each cut to 200 characters, with how many there are in all. So are those of
//!   a header none of whose names is known, when a line of as many summary values follows it
//!   (two names or more, none a number or a date): it is no title, and no summary read. Such
//!   a header is cut by the rows' separator or, where it holds no known name to give the
//!   summary's own ([`separators`]), by another one that cuts its values line alike (INE
//!   2021 writes its summary with `|` before rows of `,`), which is then the summary's.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use csv::ByteRecord;
use jiff::civil::DateTime;
use jiff::tz::Offset;
use serde::Serialize;

use super::cell;
use super::summary::{Declared, Field};

/// How many bytes are looked at to detect the encoding and the separator.
pub(crate) const HEAD_BYTES: usize = 64 * 1024;

/// How many non-blank lines may come before the column header.
const MAX_PREAMBLE_LINES: usize = 40;

/// The longest record read: one line, or several joined by a quoted cell's line breaks. A
/// real row is under 2 KB; a longer record (a line without an end, a quote never closed) is
/// an error at once, so memory never grows with it.
pub(crate) const MAX_RECORD_BYTES: u64 = 1024 * 1024;

/// The most columns a column header may name. Real files have under 200; a header is
/// checked column against column, so this also bounds the time it takes.
pub(crate) const MAX_COLUMNS: usize = 1000;

/// The parser's buffer: small enough to stay in the core's cache between the kernel's copy
/// into it and the parser's pass over it (BENCHMARKS.md, inspect).
const READ_BUFFER: usize = 32 * 1024;

/// A file that cannot be read as a PREP results CSV.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{file}, line {line}{}: {what}", column.as_ref().map(|c| format!(", column {c}")).unwrap_or_default())]
pub(crate) struct ReadError {
    /// The file (its path inside the package, or on disk).
    pub(crate) file: String,
    /// 1-based line where the problem is (0: before the first line, e.g. an I/O failure).
    pub(crate) line: u64,
    /// The column concerned, by name or number, if any.
    pub(crate) column: Option<String>,
    /// What is wrong.
    pub(crate) what: String,
}

/// The text encoding of a file, detected on its first [`HEAD_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// UTF-8 (ASCII included), no byte-order mark.
    Utf8,
    /// UTF-8 starting with a byte-order mark.
    Utf8Bom,
    /// Not UTF-8: read as Latin-1 (Windows-1252, its superset in practice).
    Latin1,
}

impl Encoding {
    /// Its name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf8Bom => "UTF-8 with BOM",
            Encoding::Latin1 => "Latin-1",
        }
    }
}

/// The corte line as written: local date and time and the offset it states.
#[derive(Debug, Clone)]
pub(crate) struct CorteLine {
    /// The cell as written (wrappings removed).
    pub(crate) written: String,
    /// Local date and time and the UTC offset written beside it (`UTC-5`); `None` for the
    /// placeholder `DD/MM/AAAA HH:MM` of a file made before any corte.
    pub(crate) time: Option<(DateTime, Offset)>,
}

/// Which election a file holds, by its title or, without one, its name's election code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Election {
    /// `PRESIDENCIA`, `PRES`.
    Presidencia,
    /// `SENADURÍA`, `SEN`, `SEN_FED`.
    Senaduria,
    /// `DIPUTACIONES`, `DIP_LOC`, `DIP_FED`.
    Diputaciones,
    /// `GUBERNATURA`, `GOB`, `GUB`.
    Gubernatura,
    /// `AYUNTAMIENTOS`, `ALCALDÍAS`, `AYUN`, `ALC`.
    Ayuntamientos,
    /// `JUNTAS` (juntas municipales).
    Juntas,
    /// Neither title nor name says.
    Unknown,
}

impl Election {
    /// Words of a title, in the order they are looked for (a "presidencia municipal" is an
    /// ayuntamiento), and the election each names.
    const TITLE_WORDS: &[(&str, Election)] = &[
        ("DIPUTACION", Election::Diputaciones),
        ("JUNTA", Election::Juntas),
        ("AYUNTAMIENTO", Election::Ayuntamientos),
        ("ALCALDIA", Election::Ayuntamientos),
        ("MUNICIP", Election::Ayuntamientos),
        ("GUBERNATURA", Election::Gubernatura),
        ("GOBERNA", Election::Gubernatura),
        ("SENADU", Election::Senaduria),
        ("SENADO", Election::Senaduria),
        ("PRESIDENCIA", Election::Presidencia),
    ];

    /// Election codes of file names (`CAMP_DIP_LOC_2021.csv`, `PUE_GOB_ext_2019.csv`).
    const CODES: &[(&str, Election)] = &[
        ("DIP", Election::Diputaciones),
        ("JUNTAS", Election::Juntas),
        ("AYUN", Election::Ayuntamientos),
        ("ALC", Election::Ayuntamientos),
        ("GOB", Election::Gubernatura),
        ("GUB", Election::Gubernatura),
        ("SEN", Election::Senaduria),
        ("PRES", Election::Presidencia),
    ];

    /// The election of a file titled `title` at path `file`.
    pub(crate) fn of(title: Option<&str>, file: &str) -> Self {
        let by_title = title.map(normalise).and_then(|t| {
            Self::TITLE_WORDS
                .iter()
                .find(|(w, _)| t.contains(w))
                .map(|(_, e)| *e)
        });
        let name = file.rsplit('/').next().unwrap_or(file).to_ascii_uppercase();
        let by_name = || {
            name.split(['_', '-', '.', ' '])
                .find_map(|token| Self::CODES.iter().find(|(c, _)| *c == token))
                .map(|(_, e)| *e)
        };
        by_title.or_else(by_name).unwrap_or(Election::Unknown)
    }
}

/// What comes before the rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Preamble {
    /// The title line (`GUBERNATURA`).
    pub(crate) title: Option<String>,
    /// The corte line.
    pub(crate) corte: Option<CorteLine>,
    /// The summary line under its header, if the file has one.
    pub(crate) declared: Option<Declared>,
    /// A line that looks like a corte (it begins with a date) but is written no known way:
    /// its line and text (cut as [`shown`] cuts). Only while no corte is read.
    pub(crate) unread_corte: Option<(u64, String)>,
    /// The names of the summary header that name no known field, so that their values are
    /// not read nor checked; `None` when every name is known (or there is no summary).
    pub(crate) unread_summary: Option<UnreadSummaryFields>,
}

/// The most names of unknown summary fields kept per file; the rest are only counted. A
/// real summary line has at most 13 fields.
pub(crate) const MAX_UNREAD_SUMMARY_NAMES: usize = 20;

/// The names of a summary header that name no known field ([`Field::from_header`]), as
/// written. Empty names are none: a separator at the end of the header leaves one.
///
/// Bounded whatever the header: at most [`MAX_UNREAD_SUMMARY_NAMES`] names are kept, each cut
/// as [`shown`] cuts (200 characters, then how long it was); `count` says how many there are
/// in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct UnreadSummaryFields {
    /// 1-based line of the summary header.
    pub(crate) line: u64,
    /// How many of its names are unknown, in all.
    pub(crate) count: u64,
    /// The first [`MAX_UNREAD_SUMMARY_NAMES`] of them in file order, as written (wrappings
    /// removed), each cut to 200 characters.
    pub(crate) names: Vec<String>,
}

impl UnreadSummaryFields {
    /// The unknown names, quoted, in file order: `"ACTAS REGISTRADAS", "ACTAS_ANULADAS"`,
    /// then how many more there are past those kept.
    pub(crate) fn names_shown(&self) -> String {
        let names: Vec<String> = self.names.iter().map(|n| format!("{n:?}")).collect();
        let more = self.count.saturating_sub(self.names.len() as u64);
        if more == 0 {
            names.join(", ")
        } else {
            format!("{} and {more} more", names.join(", "))
        }
    }

    /// The unknown names among a summary header's `cells` on `line`, whose normalised names
    /// ([`header_name`]) are `names`; `None` when there are none.
    fn of(line: u64, cells: &[Vec<u8>], names: &[String], encoding: Encoding) -> Option<Self> {
        let mut unread = Self {
            line,
            count: 0,
            names: Vec::new(),
        };
        for (cell, name) in cells.iter().zip(names) {
            if name.is_empty() || Field::from_header(name).is_some() {
                continue;
            }
            unread.count += 1;
            if unread.names.len() < MAX_UNREAD_SUMMARY_NAMES {
                let written = decode(cell::bare(cell), encoding);
                unread
                    .names
                    .push(shown(written.trim_start_matches('\u{feff}').trim()));
            }
        }
        (unread.count > 0).then_some(unread)
    }
}

/// What a party-like column holds votes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum VoteKind {
    /// One party.
    Party,
    /// A coalition or common candidacy (`C_PAN_PRI_PRD`, `CO_…`, `CC_…`, `PAN_PRI`).
    Coalition,
    /// An independent candidate (`CAND_IND_1`, `CI_…`, `C_I_…`, `CI1`).
    Independent,
    /// `NO_REGISTRADOS`: votes for candidates not registered.
    NotRegistered,
    /// `NULOS`: void votes.
    Null,
}

/// A column of votes.
#[derive(Debug, Clone)]
pub(crate) struct VoteColumn {
    /// Its header name.
    pub(crate) name: String,
    /// Its position.
    pub(crate) index: usize,
    /// What it counts.
    pub(crate) kind: VoteKind,
    /// Whether another column of votes has the same name (INE 2019's extraordinary AYUN
    /// names nine coalitions twice, one for each municipality's alliance): it is then told
    /// apart by its position.
    pub(crate) repeated: bool,
}

impl VoteColumn {
    /// How a report names it: [`vote_label`].
    pub(crate) fn label(&self) -> Cow<'_, str> {
        vote_label(&self.name, self.index + 1, self.repeated)
    }
}

/// How a report names the column of votes numbered `column` (from 1) in the column header:
/// its name, and where another column of votes has the same name, its number too
/// (`C_PRD_MC_CPP (column 28)`).
pub(crate) fn vote_label(name: &str, column: usize, repeated: bool) -> Cow<'_, str> {
    if repeated {
        Cow::Owned(format!("{name} (column {column})"))
    } else {
        Cow::Borrowed(name)
    }
}

/// Where each needed column is.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    /// Every header name, normalised (upper case, no accents).
    pub(crate) names: Vec<String>,
    /// `CLAVE_ACTA`, if present.
    pub(crate) clave_acta: Option<usize>,
    /// `CLAVE_CASILLA`, if present.
    pub(crate) clave_casilla: Option<usize>,
    /// Where there is no `CLAVE_ACTA` nor `CLAVE_CASILLA` (the layouts of 2015–2017), the
    /// columns that together name an acta: its state, district, `SECCION`, `TIPO_CASILLA`,
    /// `ID_CASILLA`, `EXT_CONTIGUA` and `TIPO_ACTA`, those present.
    pub(crate) acta_parts: Vec<usize>,
    /// The level's id columns (`ID_MUNICIPIO`, `ID_DISTRITO_LOCAL`, …): one casilla may vote
    /// for two juntas or municipalities, so an acta is known by its key and these.
    pub(crate) levels: Vec<usize>,
    /// `TIPO_CASILLA`.
    pub(crate) tipo_casilla: usize,
    /// Parties and coalitions in file order, then `NO_REGISTRADOS` and `NULOS`.
    pub(crate) votes: Vec<VoteColumn>,
    /// `TOTAL_VOTOS_CALCULADO` (or another of its spellings).
    pub(crate) calculado: usize,
    /// `LISTA_NOMINAL`.
    pub(crate) lista_nominal: usize,
    /// `REPRESENTANTES_PP_CI`, if present.
    pub(crate) representantes: Option<usize>,
    /// `OBSERVACIONES`.
    pub(crate) observaciones: usize,
    /// `CONTABILIZADA`.
    pub(crate) contabilizada: usize,
    /// The `FECHA_HORA_…` columns present, with their names.
    pub(crate) dates: Vec<(usize, String)>,
}

/// One data row, borrowed from the reader until the next one is read.
pub(crate) struct Row<'r> {
    /// Its 1-based line.
    pub(crate) line: u64,
    /// How many cells it has, where they do not fit the header: fewer than its columns, or
    /// more that are not empty (a cut row, or an unquoted separator). Such a row is no acta.
    pub(crate) malformed: Option<usize>,
    record: &'r ByteRecord,
}

impl Row<'_> {
    /// Cell `i` with its wrappings removed; empty if the row is shorter.
    pub(crate) fn cell(&self, i: usize) -> &[u8] {
        cell::bare(self.record.get(i).unwrap_or_default())
    }
}

/// What the parser reads: the held head then the rest of the input, its line ends made LF,
/// each record held to [`MAX_RECORD_BYTES`].
type Parsed<R> = RecordLimit<LineEnds<std::io::Chain<Cursor<Vec<u8>>, R>>>;

/// A PREP CSV being read.
pub(crate) struct CsvReader<R: Read> {
    file: String,
    encoding: Encoding,
    separator: u8,
    summary_separator: u8,
    preamble: Preamble,
    columns: Columns,
    reader: csv::Reader<Parsed<R>>,
    record: ByteRecord,
    /// Where the record being read began, in bytes given to the parser; shared with the
    /// [`RecordLimit`] under the parser.
    record_start: Arc<AtomicU64>,
    /// Set by the [`RecordLimit`] when a record passed [`MAX_RECORD_BYTES`].
    too_long: Arc<AtomicBool>,
    /// Set by the [`RecordLimit`], at the input's end inside a quoted cell, to the line that
    /// cell opened on (0: none).
    unclosed: Arc<AtomicU64>,
}

impl<R: Read> CsvReader<R> {
    /// Detects the encoding and separator, then reads up to the column header.
    pub(crate) fn open(file: &str, mut input: R) -> Result<Self, ReadError> {
        let err = |line: u64, what: String| ReadError {
            file: file.to_owned(),
            line,
            column: None,
            what,
        };
        let mut head = Vec::with_capacity(HEAD_BYTES);
        (&mut input)
            .take(HEAD_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| err(0, format!("cannot read: {e}")))?;
        if let Some(what) = not_text(&head) {
            return Err(err(1, what));
        }
        let encoding = if head.starts_with(b"\xEF\xBB\xBF") {
            head.drain(..3);
            Encoding::Utf8Bom
        } else {
            match std::str::from_utf8(&head) {
                // An error at the very end may be a character cut by the head's limit.
                Err(e) if e.error_len().is_some() => Encoding::Latin1,
                _ => Encoding::Utf8,
            }
        };
        let Separators {
            rows: separator,
            summary: summary_separator,
        } = separators(&head);
        let record_start = Arc::new(AtomicU64::new(0));
        let too_long = Arc::new(AtomicBool::new(false));
        let unclosed = Arc::new(AtomicU64::new(0));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(separator)
            .buffer_capacity(READ_BUFFER)
            .from_reader(RecordLimit {
                input: LineEnds::new(Cursor::new(head).chain(input)),
                given: 0,
                record_start: Arc::clone(&record_start),
                too_long: Arc::clone(&too_long),
                quotes: Quotes::new(separator),
                unclosed: Arc::clone(&unclosed),
            });
        let mut this = Self {
            file: file.to_owned(),
            encoding,
            separator,
            summary_separator,
            preamble: Preamble::default(),
            columns: Columns::empty(),
            reader,
            record: ByteRecord::new(),
            record_start,
            too_long,
            unclosed,
        };
        this.read_preamble()?;
        Ok(this)
    }

    /// The detected encoding.
    pub(crate) fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The detected separator of the rows.
    pub(crate) fn separator(&self) -> char {
        char::from(self.separator)
    }

    /// The detected separator of the summary lines: the rows' but where the summary is
    /// written with another (INE 2021: `|` before rows of `,`).
    pub(crate) fn summary_separator(&self) -> char {
        char::from(self.summary_separator)
    }

    /// The lines before the column header.
    pub(crate) fn preamble(&self) -> &Preamble {
        &self.preamble
    }

    /// Where each needed column is.
    pub(crate) fn columns(&self) -> &Columns {
        &self.columns
    }

    /// How many bytes have been parsed so far.
    pub(crate) fn position(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The text of a cell, decoded by the file's encoding (a cell that is not UTF-8 in a
    /// UTF-8 file is read as Latin-1).
    pub(crate) fn text<'b>(&self, bytes: &'b [u8]) -> Cow<'b, str> {
        decode(bytes, self.encoding)
    }

    /// The next data row, or `None` at the end. Blank lines are skipped; a row with fewer
    /// cells than the header, or more that are not empty, is returned marked
    /// [`Row::malformed`]. A quoted cell that holds whole rows is an error
    /// ([`CsvReader::swallowed_row`]).
    pub(crate) fn next_row(&mut self) -> Result<Option<Row<'_>>, ReadError> {
        loop {
            let first_line = self.reader.position().line();
            if !self.read_record()? {
                return Ok(None);
            }
            if self.record.iter().all(|c| c.trim_ascii().is_empty()) {
                continue;
            }
            let line = self.line();
            // Only a record that ends past the line it began on (blank lines before it
            // included) can hold a line break: the others are not looked into.
            if line > first_line
                && let Some((opened, row)) = self.swallowed_row()
            {
                return Err(ReadError {
                    file: self.file.clone(),
                    line: opened,
                    column: None,
                    what: format!(
                        "a quoted cell opened on this line holds whole rows (line {row} inside \
                         it has the {} separators of a row): a quote is missing or one too \
                         many, and the rows inside the cell would be lost",
                        self.columns.names.len().saturating_sub(1)
                    ),
                });
            }
            let want = self.columns.names.len();
            // Only cells past the header's are looked at: walking to them cell by cell would
            // cost as much as the rest of the row.
            let extra_filled = (want..self.record.len())
                .any(|i| self.record.get(i).is_some_and(|c| !c.is_empty()));
            let malformed = (self.record.len() < want || extra_filled).then(|| self.record.len());
            return Ok(Some(Row {
                line,
                malformed,
                record: &self.record,
            }));
        }
    }

    /// In the record just read, the first line inside a cell that holds as many separators
    /// as a whole row, with the line where that cell opened: `(opened, row)`. A real cell
    /// with a line break (an observation written on two lines) holds a few words, never a
    /// row.
    fn swallowed_row(&self) -> Option<(u64, u64)> {
        let separators = self.columns.names.len().saturating_sub(1);
        if separators == 0 {
            return None;
        }
        let breaks = |cell: &[u8]| memchr::memchr_iter(b'\n', cell).count() as u64;
        let all: u64 = self.record.iter().map(breaks).sum();
        // The record ends on the current line: it began as many lines before as it holds breaks.
        let mut line = self.line().saturating_sub(all);
        for cell in &self.record {
            for (inside, part) in (0..).zip(cell.split(|&b| b == b'\n')).skip(1) {
                if memchr::memchr_iter(self.separator, part).count() >= separators {
                    return Some((line, line + inside));
                }
            }
            line += breaks(cell);
        }
        None
    }

    /// The line of the current record: where it ends, the line before the reader's position
    /// ([`LineEnds`] ends every record with an LF the parser consumes).
    fn line(&self) -> u64 {
        self.reader.position().line().saturating_sub(1)
    }

    /// An error at the current record.
    pub(crate) fn error(&self, column: Option<String>, what: String) -> ReadError {
        ReadError {
            file: self.file.clone(),
            line: self.line(),
            column,
            what,
        }
    }

    /// Reads the next record. The input ending inside a quoted cell is an error naming the
    /// line where the cell opened: the parser would give every line after it as that cell.
    fn read_record(&mut self) -> Result<bool, ReadError> {
        let start = self.reader.position().clone();
        self.record_start.store(start.byte(), Ordering::Relaxed);
        let read = self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(|e| {
                if self.too_long.load(Ordering::Relaxed) {
                    return ReadError {
                        file: self.file.clone(),
                        line: start.line(),
                        column: None,
                        what: format!(
                            "a line (or a quoted cell across lines) goes on past \
                             {MAX_RECORD_BYTES} bytes, where a real row is under 2 KB: a line \
                             without an end, or a quote never closed"
                        ),
                    };
                }
                ReadError {
                    file: self.file.clone(),
                    line: e.position().map_or(self.line(), csv::Position::line),
                    column: None,
                    what: format!("not readable as CSV: {e}"),
                }
            })?;
        let opened = self.unclosed.load(Ordering::Relaxed);
        if opened > 0 {
            return Err(ReadError {
                file: self.file.clone(),
                line: opened,
                column: None,
                what: format!(
                    "a quoted cell opened on this line is never closed: the file ends inside \
                     it, so every line after it, to line {}, would be read as that one cell; \
                     a closing quote (\") is missing, or a quote is one too many",
                    self.line().max(opened)
                ),
            });
        }
        Ok(read)
    }

    /// The cells of a line before the column header. Where the summary lines have a
    /// separator of their own, a line that holds it is split by it: the summary's header,
    /// and the line after it (its values, whose numbers may be written `4,569,608`). The
    /// line is put back together from the cells the rows' separator cut, so nothing in it
    /// is lost; a cell quoted whole (`"4,569,608"`) loses its quotes, as the parser would
    /// have taken them.
    fn preamble_cells(&self, after_summary_header: bool) -> Vec<Vec<u8>> {
        let cells = || self.record.iter().map(<[u8]>::to_vec).collect();
        if self.summary_separator == self.separator {
            return cells();
        }
        let Some(split) = self.split_by(self.summary_separator) else {
            return cells();
        };
        let summary_header = split
            .iter()
            .any(|c| Field::from_header(&header_name(c, self.encoding)).is_some());
        if after_summary_header || summary_header {
            split
        } else {
            cells()
        }
    }

    /// The line just read, put back together from the cells the rows' separator cut, split
    /// by `separator` instead; `None` where the line does not hold it. A cell quoted whole
    /// (`"4,569,608"`) loses its quotes, as the parser would have taken them.
    fn split_by(&self, separator: u8) -> Option<Vec<Vec<u8>>> {
        let line = self.record.iter().collect::<Vec<_>>().join(&self.separator);
        line.contains(&separator).then(|| {
            line.split(|&b| b == separator)
                .map(|c| {
                    let c = c.trim_ascii();
                    c.strip_prefix(b"\"")
                        .and_then(|inner| inner.strip_suffix(b"\""))
                        .unwrap_or(c)
                        .to_vec()
                })
                .collect()
        })
    }

    /// The line just read as a summary header none of whose names is known: its cells, and
    /// the separator that cuts it into two names or more. The rows' separator first; then,
    /// where no known summary named its own ([`separators`]), each other one, for a summary
    /// written with a separator of its own (INE 2021: `|` before rows of `,`) whose every
    /// name is unknown.
    fn names_line(&self, cells: &[Vec<u8>]) -> Option<(Vec<Vec<u8>>, u8)> {
        if is_names_line(cells) {
            return Some((trimmed(cells).to_vec(), self.separator));
        }
        if self.summary_separator != self.separator {
            return None;
        }
        SEPARATORS
            .into_iter()
            .filter(|&sep| sep != self.separator)
            .find_map(|sep| {
                let split = self.split_by(sep)?;
                is_names_line(&split).then(|| (trimmed(&split).to_vec(), sep))
            })
    }

    /// Reads title, corte and summary lines up to and including the column header.
    fn read_preamble(&mut self) -> Result<(), ReadError> {
        let mut summary_names: Option<Vec<String>> = None;
        // A line that may be a summary header none of whose names is known: its line, its
        // cells, the separator that cut them, and whether the title was still unread before
        // it (it may have become one).
        let mut unknown_header: Option<(u64, Vec<Vec<u8>>, u8, bool)> = None;
        let mut seen = 0;
        // The last line that held anything, for a file that ends before its column header.
        let mut last_line = 0;
        loop {
            if !self.read_record()? {
                return Err(ReadError {
                    file: self.file.clone(),
                    line: last_line,
                    column: None,
                    what: "the file ends without a column header (CLAVE_CASILLA, …): not a \
                           PREP results CSV"
                        .to_owned(),
                });
            }
            let cells = self.preamble_cells(summary_names.is_some());
            let names: Vec<String> = cells
                .iter()
                .map(|c| header_name(c, self.encoding))
                .collect();
            if names.iter().all(String::is_empty) {
                continue;
            }
            last_line = self.line();
            seen += 1;
            let unknown_header_above = unknown_header.take();
            if seen == 1 && names.first().is_some_and(|n| n.starts_with("SEP=")) {
                // Excel's `sep=|` line, before the title: it named the separator.
                continue;
            }
            if let Some(computadas) = names
                .iter()
                .find(|n| *n == "ACTAS_COMPUTADAS" || *n == "COMPUTADAS")
            {
                return Err(self.error(
                    Some(computadas.clone()),
                    format!(
                        "a cómputos file, not PREP results: it reports {computadas} (the \
                         district counts after election night), which is not what inspect \
                         checks"
                    ),
                ));
            }
            if computos_by_casilla(&names) {
                return Err(self.error(
                    Some("CONTABILIZADA".to_owned()),
                    "a cómputos file, not PREP results: its casilla rows have no \
                     CONTABILIZADA, which every PREP results file has (the district counts \
                     after election night, acta by acta), and that is not what inspect checks"
                        .to_owned(),
                ));
            }
            if seen > MAX_PREAMBLE_LINES {
                return Err(self.error(
                    None,
                    format!(
                        "no column header (CLAVE_CASILLA, …) in the first {MAX_PREAMBLE_LINES} \
                         lines: not a PREP results CSV"
                    ),
                ));
            }
            if is_column_header(&names) {
                if names.len() > MAX_COLUMNS {
                    return Err(self.error(
                        None,
                        format!(
                            "a column header of {} columns, over the {MAX_COLUMNS} a PREP \
                             results CSV may have (real ones have under 200)",
                            names.len()
                        ),
                    ));
                }
                if let Some(names) = summary_names.take() {
                    self.preamble.declared = Some(Declared::new(&names, &[]));
                }
                self.columns =
                    Columns::new(names).map_err(|(column, what)| self.error(Some(column), what))?;
                return Ok(());
            }
            if let Some(names) = summary_names.take() {
                let values: Vec<String> = cells
                    .iter()
                    .map(|c| shown(&decode(cell::bare(c), self.encoding)))
                    .collect();
                self.preamble.declared = Some(Declared::new(&names, &values));
                continue;
            }
            if names.iter().any(|n| Field::from_header(n).is_some()) {
                self.preamble.unread_summary =
                    UnreadSummaryFields::of(self.line(), &cells, &names, self.encoding);
                summary_names = Some(names);
                continue;
            }
            // Names no known way over a line of numbers: a summary that cannot be read, named
            // for the report rather than passed over as a title.
            if let Some((line, header, separator, untitled)) = unknown_header_above
                && self.preamble.declared.is_none()
                && (if separator == self.separator {
                    is_values_line(&cells, header.len())
                } else {
                    self.split_by(separator)
                        .is_some_and(|values| is_values_line(&values, header.len()))
                })
            {
                if untitled {
                    self.preamble.title = None;
                }
                self.summary_separator = separator;
                let header_names: Vec<String> = header
                    .iter()
                    .map(|c| header_name(c, self.encoding))
                    .collect();
                self.preamble.unread_summary =
                    UnreadSummaryFields::of(line, &header, &header_names, self.encoding);
                continue;
            }
            if let Some((header, separator)) = self.names_line(&cells) {
                let untitled = self.preamble.title.is_none();
                unknown_header = Some((self.line(), header, separator, untitled));
            }
            let first = cells.first().map_or(&[][..], Vec::as_slice);
            let first = decode(cell::bare(first), self.encoding).trim().to_owned();
            if self.preamble.corte.is_none()
                && let Some(time) = corte(&first)
            {
                self.preamble.corte = Some(CorteLine {
                    written: first,
                    time,
                });
                self.preamble.unread_corte = None;
            } else if self.preamble.corte.is_none() && begins_with_a_date(&first) {
                if self.preamble.unread_corte.is_none() {
                    self.preamble.unread_corte = Some((self.line(), shown(&first)));
                }
            } else if self.preamble.title.is_none() {
                self.preamble.title = Some(shown(&first));
            }
        }
    }
}

impl Columns {
    fn empty() -> Self {
        Self {
            names: Vec::new(),
            clave_acta: None,
            clave_casilla: None,
            acta_parts: Vec::new(),
            levels: Vec::new(),
            tipo_casilla: 0,
            votes: Vec::new(),
            calculado: 0,
            lista_nominal: 0,
            representantes: None,
            observaciones: 0,
            contabilizada: 0,
            dates: Vec::new(),
        }
    }

    /// Finds every needed column in a header; a missing one is `(its name, what is wrong)`.
    fn new(names: Vec<String>) -> Result<Self, (String, String)> {
        let find = |wanted: &[&str]| {
            wanted
                .iter()
                .find_map(|w| names.iter().position(|n| n == w))
        };
        let need = |wanted: &[&str]| {
            find(wanted).ok_or_else(|| {
                let name = wanted.first().copied().unwrap_or_default().to_owned();
                let what = format!("the column header lacks {}", wanted.join(" or "));
                (name, what)
            })
        };
        let no_registrados = need(NO_REGISTRADOS)?;
        let nulos = need(NULOS)?;
        // The parties follow the acta's own figures, whichever of them the file has.
        let figures = ACTA_FIGURES
            .iter()
            .flat_map(|spellings| spellings.iter())
            .filter_map(|w| names.iter().position(|n| n == w))
            .filter(|i| *i < no_registrados)
            .max()
            .ok_or_else(|| {
                (
                    "TOTAL_VOTOS_SACADOS".to_owned(),
                    "no column before NO_REGISTRADOS holds the acta's own figures \
                     (TOTAL_VOTOS_SACADOS, …): the party columns cannot be found"
                        .to_owned(),
                )
            })?;
        let parties: Vec<&str> = names
            .get(figures + 1..no_registrados)
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .collect();
        let mut votes: Vec<VoteColumn> = parties
            .iter()
            .enumerate()
            .map(|(i, name)| VoteColumn {
                name: (*name).to_owned(),
                index: figures + 1 + i,
                kind: vote_kind(name, &parties),
                repeated: false,
            })
            .collect();
        votes.push(VoteColumn {
            name: names.get(no_registrados).cloned().unwrap_or_default(),
            index: no_registrados,
            kind: VoteKind::NotRegistered,
            repeated: false,
        });
        votes.push(VoteColumn {
            name: "NULOS".to_owned(),
            index: nulos,
            kind: VoteKind::Null,
            repeated: false,
        });
        let mut times: HashMap<String, usize> = HashMap::new();
        for v in &votes {
            *times.entry(v.name.clone()).or_default() += 1;
        }
        for v in &mut votes {
            v.repeated = times.get(&v.name).is_some_and(|n| *n > 1);
        }
        let dates = names
            .iter()
            .enumerate()
            .filter(|(_, n)| n.starts_with("FECHA_HORA"))
            .map(|(i, n)| (i, n.clone()))
            .collect();
        let levels = names
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                n.starts_with("ID_")
                    && !["ID_ESTADO", "ID_ENTIDAD", "ID_CASILLA"].contains(&n.as_str())
            })
            .map(|(i, _)| i)
            .collect();
        let clave_acta = find(&["CLAVE_ACTA"]);
        let clave_casilla = find(&["CLAVE_CASILLA"]);
        let acta_parts = if clave_acta.is_none() && clave_casilla.is_none() {
            ACTA_PARTS.iter().filter_map(|part| find(&[part])).collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            clave_acta,
            clave_casilla,
            acta_parts,
            levels,
            tipo_casilla: need(&["TIPO_CASILLA"])?,
            calculado: need(TOTAL_VOTOS_CALCULADO)?,
            lista_nominal: need(&["LISTA_NOMINAL"])?,
            representantes: find(&["REPRESENTANTES_PP_CI"]),
            observaciones: need(&["OBSERVACIONES"])?,
            contabilizada: need(&["CONTABILIZADA"])?,
            votes,
            dates,
            names,
        })
    }
}

/// Spellings of `TOTAL_VOTOS_CALCULADO`: `TOTAL_VOTOS` (INE 2019), `TOTAL_VOTOS_CALCULADOS`
/// (IECM 2024). Looked for in this order.
const TOTAL_VOTOS_CALCULADO: &[&str] = &[
    "TOTAL_VOTOS_CALCULADO",
    "TOTAL_VOTOS_CALCULADOS",
    "TOTAL_VOTOS",
];

/// The columns that name an acta in a file without `CLAVE_ACTA` nor `CLAVE_CASILLA` (INE's
/// LEEME of 2015: `ESTADO|DISTRITO|SECCION|ID_CASILLA|TIPO_CASILLA|EXT_CONTIGUA|…|TIPO_ACTA`).
const ACTA_PARTS: &[&str] = &[
    "ESTADO",
    "ID_ESTADO",
    "ID_ENTIDAD",
    "DISTRITO",
    "ID_DISTRITO",
    "SECCION",
    "TIPO_CASILLA",
    "ID_CASILLA",
    "EXT_CONTIGUA",
    "TIPO_ACTA",
];

/// Spellings of `NO_REGISTRADOS`.
const NO_REGISTRADOS: &[&str] = &["NO_REGISTRADOS", "NO_REGISTRADAS"];

/// Spellings of `NULOS`.
const NULOS: &[&str] = &["NULOS"];

/// The acta's own figures, which come before the party columns, each with its spellings:
/// `NUM_BOLETAS_SOBRANTES`, `TOTAL_CIUDADANOS_VOTARON` (INE 2019), `PERSONAS_VOTARON` (IECM
/// 2024), `TOTAL_REP_PARTIDOS_CI_VOTARON` (IEEM 2024), `NUM_BOLETAS_EXTRAIDAS` (INE's name of
/// 2015 for `TOTAL_VOTOS_SACADOS`, "boletas sacadas de la urna"); and the codes of the electronic
/// ballot box's acta, `CODIGOS_ENTREGADOS_PMDC`, `CODIGOS_SOBRANTES`, `CODIGOS_UTILIZADOS`
/// (INE 2021, after `TOTAL_VOTOS_SACADOS`), which are no votes.
const ACTA_FIGURES: &[&[&str]] = &[
    &["TIPO_ACTA"],
    &["TOTAL_BOLETAS_SOBRANTES", "NUM_BOLETAS_SOBRANTES"],
    &[
        "TOTAL_PERSONAS_VOTARON",
        "TOTAL_CIUDADANOS_VOTARON",
        "PERSONAS_VOTARON",
    ],
    &[
        "TOTAL_REP_PARTIDO_CI_VOTARON",
        "TOTAL_REP_PARTIDOS_CI_VOTARON",
    ],
    &["TOTAL_VOTOS_SACADOS", "NUM_BOLETAS_EXTRAIDAS"],
    &["CODIGOS_ENTREGADOS_PMDC"],
    &["CODIGOS_SOBRANTES"],
    &["CODIGOS_UTILIZADOS"],
];

/// Party names written more than one way, and the name each stands for: MORENA as `M`
/// (IEEQ 2018) or `MOR` (IEEC 2021), PVEM as `PV` (IEE Puebla 2018).
const PARTY_ALIASES: &[(&str, &str)] = &[("M", "MORENA"), ("MOR", "MORENA"), ("PV", "PVEM")];

/// A party's name as coalitions spell it.
fn party(name: &str) -> &str {
    PARTY_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, party)| party)
}

/// Whether a line is the column header: it names the acta's key (`CLAVE_CASILLA`,
/// `CLAVE_ACTA`), or, in the layouts of 2015–2017, which have no key column (INE's LEEME of
/// 2015: `ESTADO|DISTRITO|SECCION|ID_CASILLA|TIPO_CASILLA|…|CONTABILIZADA`; IEC Coahuila and
/// IEEM 2017), the casilla's parts (`SECCION`, `TIPO_CASILLA`) beside `CONTABILIZADA`.
/// A line's cells without the empty ones at its end (a separator at the end of a line).
fn trimmed(cells: &[Vec<u8>]) -> &[Vec<u8>] {
    let filled = cells
        .iter()
        .rposition(|c| !cell::bare(c).is_empty())
        .map_or(0, |last| last + 1);
    cells.get(..filled).unwrap_or_default()
}

/// Whether a preamble line reads as a summary header: two names or more, none of them a
/// number or a date.
fn is_names_line(cells: &[Vec<u8>]) -> bool {
    let names: Vec<&[u8]> = cells
        .iter()
        .map(|c| cell::bare(c))
        .filter(|c| !c.is_empty())
        .collect();
    names.len() >= 2
        && names.iter().all(|name| {
            cell::Decimal::parse_summary(name).is_none() && cell::date_time(name).is_none()
        })
}

/// Whether a preamble line reads as the values under a summary header of `width` names: as
/// many cells, each a value of the summary line (empty is none captured yet).
fn is_values_line(cells: &[Vec<u8>], width: usize) -> bool {
    let cells = trimmed(cells);
    cells.len() == width
        && cells
            .iter()
            .all(|c| cell::Decimal::parse_summary(cell::bare(c)).is_some())
}

fn is_column_header(names: &[String]) -> bool {
    let has = |wanted: &str| names.iter().any(|n| n == wanted);
    has("CLAVE_CASILLA")
        || has("CLAVE_ACTA")
        || (has("SECCION") && has("TIPO_CASILLA") && has("CONTABILIZADA"))
}

/// Whether a header line is that of a cómputos file by casilla (IEQROO 2021 and 2024): a
/// row per casilla (`SECCION`, `TIPO_CASILLA`) with its acta as the district counted it, and
/// no `CONTABILIZADA`, which every PREP results file has.
fn computos_by_casilla(names: &[String]) -> bool {
    let has = |wanted: &str| names.iter().any(|n| n == wanted);
    has("SECCION") && has("TIPO_CASILLA") && !has("CONTABILIZADA")
}

/// Parties written out in words instead of their acronym, as INE writes them (its cómputos
/// of 2018: `MOVIMIENTO CIUDADANO`, `NUEVA ALIANZA`, `ENCUENTRO SOCIAL`), and the other
/// national parties of 2018–2024 whose names do not begin `PARTIDO`, as [`normalise`] leaves
/// them. Any other column named in words is a coalition's own name (see [`vote_kind`]).
const PARTIES_IN_WORDS: &[&str] = &[
    "MOVIMIENTO CIUDADANO",
    "NUEVA ALIANZA",
    "ENCUENTRO SOCIAL",
    "MOVIMIENTO REGENERACION NACIONAL",
    "REDES SOCIALES PROGRESISTAS",
    "FUERZA POR MEXICO",
    "ENCUENTRO SOLIDARIO",
];

/// What a party-like column counts, from its name and the other party columns' names.
/// Independent candidates are `CAND_IND_1`, `CI_…`, `IND_…`, `C_I_LFAF` (IEEM 2024, before
/// the coalitions' `C_`), `CI1` (IEEPCO 2022), or a name whose words say `INDEPENDIENTE`.
/// Coalitions are `C_…`, `CO_…` (IEE Aguascalientes 2022, IEEH Hidalgo 2022), `CC_…` (common
/// candidacies), parties joined, or the coalition's own name in words (IETAM 2022: `Juntos
/// Hacemos Historia en Tamaulipas`, the alliance of MORENA, PT and PVEM):
/// parties are written as acronyms, or as one of [`PARTIES_IN_WORDS`], or begin `PARTIDO`.
fn vote_kind(name: &str, all: &[&str]) -> VoteKind {
    let numbered_ci = name
        .strip_prefix("CI")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let words: Vec<&str> = name.split_whitespace().collect();
    if name.starts_with("CAND_IND")
        || name.starts_with("CI_")
        || name.starts_with("IND_")
        || name.starts_with("C_I_")
        || numbered_ci
        || name
            .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
            .any(|w| w.starts_with("INDEPENDIENTE"))
    {
        return VoteKind::Independent;
    }
    if ["C_", "CO_", "CC_"].iter().any(|p| name.starts_with(p)) {
        return VoteKind::Coalition;
    }
    if words.len() >= 2 {
        let in_words = words.join(" ");
        let a_party =
            PARTIES_IN_WORDS.contains(&in_words.as_str()) || words.first() == Some(&"PARTIDO");
        return if a_party {
            VoteKind::Party
        } else {
            VoteKind::Coalition
        };
    }
    let parts: Vec<&str> = name.split(['_', '-']).collect();
    if parts.len() >= 2
        && parts
            .iter()
            .all(|p| all.iter().any(|a| party(a) == party(p)))
    {
        VoteKind::Coalition
    } else {
        VoteKind::Party
    }
}

/// The separators a PREP CSV may use: `,` (every institute), `|` (IEQROO), and `;` or a tab
/// (a file re-saved by a spreadsheet set to Spanish, which writes `;`).
const SEPARATORS: [u8; 4] = [b',', b'|', b';', b'\t'];

/// The separators of a file's rows and of its summary lines.
struct Separators {
    rows: u8,
    summary: u8,
}

/// The separators of the head. The one a first line `sep=|` names (a spreadsheet's
/// convention) is both. Else the rows' is the one the column header (`CLAVE_CASILLA`, …)
/// holds most of, and the summary's the one its header (`ACTAS_ESPERADAS`, …) holds most
/// of: INE 2021 writes the summary with `|` and the rows with `,`. A column header without
/// `CLAVE_CASILLA` (the layouts of 2015–2017) is the line with `TIPO_CASILLA`, which no
/// summary line holds. Where the head holds only one of those lines, its separator is both;
/// where it holds neither, the one the head holds most of is.
fn separators(head: &[u8]) -> Separators {
    if let Some(rest) = head.get(..4).filter(|p| p.eq_ignore_ascii_case(b"sep="))
        && let Some(&sep) = head.get(rest.len())
        && SEPARATORS.contains(&sep)
    {
        return Separators {
            rows: sep,
            summary: sep,
        };
    }
    let line = |name: &[u8]| {
        head.split(|&b| b == b'\n' || b == b'\r')
            .find(|l| contains(l, name))
    };
    let columns = line(b"CLAVE_CASILLA")
        .or_else(|| line(b"TIPO_CASILLA"))
        .map(most_frequent_separator);
    let summary = line(b"ACTAS_ESPERADAS").map(most_frequent_separator);
    let rows = columns
        .or(summary)
        .unwrap_or_else(|| most_frequent_separator(head));
    Separators {
        rows,
        summary: summary.unwrap_or(rows),
    }
}

/// The separator a line holds most of; the first of [`SEPARATORS`] on a tie (a comma wins).
fn most_frequent_separator(line: &[u8]) -> u8 {
    let count = |sep: u8| line.iter().filter(|&&b| b == sep).count();
    SEPARATORS
        .into_iter()
        .rev()
        .max_by_key(|&sep| count(sep))
        .unwrap_or(b',')
}

/// Whether the first [`HEAD_BYTES`] of a file look like a PREP results CSV (or a cómputos
/// file, which is inspected to be refused by name): `CONTABILIZADA` is for the layouts of
/// 2015–2017, which have no `CLAVE_CASILLA` and may have no summary. Names are matched in any
/// case (IEEM 2017 writes its column header in lower case).
pub(crate) fn looks_like_results(bytes: &[u8]) -> bool {
    let head = bytes.get(..HEAD_BYTES).unwrap_or(bytes);
    [
        &b"CLAVE_CASILLA"[..],
        b"ACTAS_ESPERADAS",
        b"ACTAS_COMPUTADAS",
        b"CONTABILIZADA",
    ]
    .iter()
    .any(|word| contains(head, word))
}

/// Reads a file's corte cell: `01/06/2021 18:52 (UTC-5)`, unpadded (`3/6/2019 09:15 (UTC-5)`),
/// without a space before the offset (`02/07/2018 11:45(UTC-5)`), or year first (`2019/06/03
/// 05:47 (UTC-5)`). `Some(None)` is the placeholder `DD/MM/AAAA HH:MM` of a file made before
/// any corte; `None`, not a corte.
fn corte(cell: &str) -> Option<Option<(DateTime, Offset)>> {
    if let Some(time) = crate::package::corte_cell(cell) {
        return Some(Some(time));
    }
    let cell = cell.trim();
    let date = cell.split(char::is_whitespace).next().unwrap_or(cell);
    let placeholder = normalise(date);
    (placeholder == "DD/MM/AAAA" || placeholder == "DD/MM/YYYY").then_some(None)
}

/// Whether a line begins with what looks like a date (`07-06-2021`, `31/02/2021`,
/// `2021-06-07T13:19`): three groups of digits joined by `/`, `-` or `.`. A corte written no
/// known way is told by it from a title.
fn begins_with_a_date(text: &str) -> bool {
    let date = text
        .split(|c: char| c.is_whitespace() || c == 'T')
        .next()
        .unwrap_or_default();
    let parts: Vec<&str> = date.split(['/', '-', '.']).collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| (1..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Why the first [`HEAD_BYTES`] of a file are not text a PREP CSV is written in, if they are
/// not: an empty file (or only blank lines), a byte-order mark of UTF-16, UTF-32 or another
/// encoding no institute writes in, or, where the head does not look like results
/// ([`looks_like_results`]), NUL bytes: UTF-16 without its mark, a spreadsheet or an archive
/// named `.csv`, or a damaged file. A NUL byte in a cell of a file that does look like results
/// is that row's anomaly, not the file's.
pub(crate) fn not_text(head: &[u8]) -> Option<String> {
    const MARKS: &[(&[u8], &str)] = &[
        (b"\xFF\xFE\0\0", "UTF-32"),
        (b"\0\0\xFE\xFF", "UTF-32"),
        (b"\xFF\xFE", "UTF-16"),
        (b"\xFE\xFF", "UTF-16"),
        (b"\x2B\x2F\x76", "UTF-7"),
        (b"\xF7\x64\x4C", "UTF-1"),
        (b"\xDD\x73\x66\x73", "UTF-EBCDIC"),
        (b"\x0E\xFE\xFF", "SCSU"),
        (b"\xFB\xEE\x28", "BOCU-1"),
        (b"\x84\x31\x95\x33", "GB 18030"),
    ];
    if let Some((mark, encoding)) = MARKS.iter().find(|(mark, _)| head.starts_with(mark)) {
        let mark: Vec<String> = mark.iter().map(|b| format!("{b:02X}")).collect();
        return Some(format!(
            "{encoding} text (it begins with the byte-order mark {}), which no PREP results CSV \
             is written in: they are UTF-8 or Latin-1; saved again as UTF-8 it can be read",
            mark.join(" ")
        ));
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Some(if text.is_empty() {
            "the file is empty: no title, summary, column header nor rows".to_owned()
        } else {
            "the file is empty: only blank lines, no column header nor rows".to_owned()
        });
    }
    if looks_like_results(text) {
        return None;
    }
    memchr::memchr(0, text).map(|at| {
        format!(
            "binary data, not a PREP results CSV: NUL bytes (the first at byte {at}), which \
             no text file holds; UTF-16 without a byte-order mark, a spreadsheet or an archive \
             named .csv, or a damaged file"
        )
    })
}

/// The parser's quoting followed over the bytes it is given, as it reads them: a quote opens
/// a quoted cell only at a cell's start (`="…"` cells and a quote inside a word are text), two
/// quotes inside one stand for one, and the next quote closes it. Tells whether the input ends
/// inside a quoted cell, and on which line that cell opened.
struct Quotes {
    separator: u8,
    /// The line the quoted cell being read opened on, if one is.
    open: Option<u64>,
    /// Line ends given so far.
    lines: u64,
    /// The byte before the next one (a line end, at the start).
    before: u8,
    /// Inside a quoted cell, the last byte given was a quote: it closes the cell unless
    /// another quote follows.
    quote_last: bool,
}

impl Quotes {
    fn new(separator: u8) -> Self {
        Self {
            separator,
            open: None,
            lines: 0,
            before: b'\n',
            quote_last: false,
        }
    }

    /// Follows the quoting over the next bytes given to the parser.
    fn scan(&mut self, chunk: &[u8]) {
        let Some(&last) = chunk.last() else {
            return;
        };
        let mut at = 0;
        if std::mem::take(&mut self.quote_last) {
            if chunk.first() == Some(&b'"') {
                at = 1;
            } else {
                self.open = None;
            }
        }
        while let Some(rest) = chunk.get(at..) {
            let Some(q) = memchr::memchr(b'"', rest) else {
                self.lines += line_ends(rest);
                break;
            };
            self.lines += line_ends(rest.get(..q).unwrap_or_default());
            let quote = at + q;
            at = quote + 1;
            if self.open.is_some() {
                match chunk.get(at) {
                    Some(b'"') => at += 1,
                    Some(_) => self.open = None,
                    None => self.quote_last = true,
                }
            } else {
                let before = quote
                    .checked_sub(1)
                    .and_then(|i| chunk.get(i).copied())
                    .unwrap_or(self.before);
                if before == self.separator || before == b'\n' {
                    self.open = Some(self.lines + 1);
                }
            }
        }
        self.before = last;
    }

    /// At the input's end: the line of the quoted cell left open, if one is.
    fn open_at_end(&self) -> Option<u64> {
        self.open.filter(|_| !self.quote_last)
    }
}

/// How many line ends (LF) `bytes` hold.
fn line_ends(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// The input of the parser, stopped with an error once the record being parsed (begun at
/// `record_start`, in bytes given out) passes [`MAX_RECORD_BYTES`]: the parser holds a record
/// whole, so without this one line of hundreds of megabytes would be held whole.
struct RecordLimit<R> {
    input: R,
    /// Bytes given out so far.
    given: u64,
    record_start: Arc<AtomicU64>,
    too_long: Arc<AtomicBool>,
    /// The quoting of what was given out.
    quotes: Quotes,
    /// Set at the input's end to the line of a quoted cell left open.
    unclosed: Arc<AtomicU64>,
}

impl<R: Read> Read for RecordLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // The parser reads ahead by at most its buffer: allow for it past the record's end.
        let allowed = self
            .record_start
            .load(Ordering::Relaxed)
            .saturating_add(MAX_RECORD_BYTES + READ_BUFFER as u64);
        let room = allowed.saturating_sub(self.given);
        if room == 0 && !buf.is_empty() {
            self.too_long.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other(format!(
                "a record longer than {MAX_RECORD_BYTES} bytes"
            )));
        }
        let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.input.read(buf.get_mut(..len).unwrap_or_default())?;
        self.given += n as u64;
        match buf.get(..n) {
            Some(given) if n > 0 => self.quotes.scan(given),
            _ if len > 0 => {
                if let Some(line) = self.quotes.open_at_end() {
                    self.unclosed.store(line, Ordering::Relaxed);
                }
            }
            _ => {}
        }
        Ok(n)
    }
}

/// The input with every line ended by LF alone: CRLF and a CR alone (old Mac style, seen in
/// INE 2023) become LF, and a last line without a line break gets one. The parser then ends
/// every record at an LF it has consumed, so a record's line is always the one before the
/// reader's position, whatever ended the lines and whatever blank lines came before it.
pub(crate) struct LineEnds<R> {
    input: R,
    /// The last byte given out was a CR turned into LF: an LF that follows it is dropped.
    after_cr: bool,
    /// The last byte given out, if any: the input's end adds an LF unless it was one.
    last: Option<u8>,
}

impl<R> LineEnds<R> {
    fn new(input: R) -> Self {
        Self {
            input,
            after_cr: false,
            last: None,
        }
    }
}

impl<R: Read> Read for LineEnds<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.input.read(buf)?;
            let Some(chunk) = buf.get_mut(..n).filter(|c| !c.is_empty()) else {
                // The end of the input (or an empty buffer).
                if self.last.is_some_and(|b| b != b'\n')
                    && let Some(first) = buf.first_mut()
                {
                    *first = b'\n';
                    self.last = Some(b'\n');
                    return Ok(1);
                }
                return Ok(0);
            };
            let kept = normalise_line_ends(chunk, &mut self.after_cr);
            if let Some(&last) = chunk.get(..kept).and_then(<[u8]>::last) {
                self.last = Some(last);
                return Ok(kept);
            }
            // The chunk was only the LF of a CRLF split between two reads: read on.
        }
    }
}

/// Turns every CR in `chunk` into LF and drops the LF that follows one (also when the CR
/// ended the previous chunk: `after_cr`), moving what is kept to the front. Returns how many
/// bytes are kept.
fn normalise_line_ends(chunk: &mut [u8], after_cr: &mut bool) -> usize {
    let mut read = 0;
    if std::mem::take(after_cr) && chunk.first() == Some(&b'\n') {
        read = 1;
    }
    let mut kept = 0;
    while let Some(cr) = chunk
        .get(read..)
        .and_then(|rest| memchr::memchr(b'\r', rest))
    {
        let cr = read + cr;
        chunk.copy_within(read..cr, kept);
        kept += cr - read;
        if let Some(b) = chunk.get_mut(kept) {
            *b = b'\n';
        }
        kept += 1;
        read = cr + 1;
        match chunk.get(read) {
            Some(b'\n') => read += 1,
            Some(_) => {}
            None => *after_cr = true,
        }
    }
    chunk.copy_within(read.., kept);
    kept + (chunk.len() - read)
}

/// Whether `haystack` holds `needle`, in any ASCII case.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Decodes a cell: UTF-8 when it is, else Latin-1 (Windows-1252).
pub(crate) fn decode(bytes: &[u8], encoding: Encoding) -> Cow<'_, str> {
    if (encoding != Encoding::Latin1 || bytes.is_ascii())
        && let Ok(s) = std::str::from_utf8(bytes)
    {
        return Cow::Borrowed(s);
    }
    encoding_rs::WINDOWS_1252
        .decode_without_bom_handling(bytes)
        .0
}

/// A header or observation cell as compared: wrappings removed, upper case, no accents.
pub(crate) fn header_name(cell: &[u8], encoding: Encoding) -> String {
    let text = decode(cell::bare(cell), encoding);
    normalise(text.trim_start_matches('\u{feff}').trim())
}

/// The most characters of a title or summary value kept for reports and the journal; no
/// real one comes near (a summary number, separators and all, is under 60).
pub(crate) const MAX_SHOWN_CHARS: usize = 200;

/// `text` as reports show it: cut after [`MAX_SHOWN_CHARS`] characters, with `…` and how
/// long it was.
pub(crate) fn shown(text: &str) -> String {
    match text.char_indices().nth(MAX_SHOWN_CHARS) {
        None => text.to_owned(),
        Some((at, _)) => format!(
            "{}… ({} bytes in all)",
            text.get(..at).unwrap_or_default(),
            text.len()
        ),
    }
}

/// Upper case without accents: `ACTAS_FUERA_CATÁLOGO` → `ACTAS_FUERA_CATALOGO`.
pub(crate) fn normalise(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'á' | 'Á' | 'à' | 'À' => 'A',
            'é' | 'É' | 'è' | 'È' => 'E',
            'í' | 'Í' | 'ì' | 'Ì' => 'I',
            'ó' | 'Ó' | 'ò' | 'Ò' => 'O',
            'ú' | 'Ú' | 'ü' | 'Ü' => 'U',
            'ñ' | 'Ñ' => 'N',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::{
        Encoding, LineEnds, MAX_UNREAD_SUMMARY_NAMES, Quotes, UnreadSummaryFields, header_name,
        not_text,
    };

    #[test]
    fn unknown_summary_names_are_kept_as_written_and_bounded() {
        let unread = |cells: &[&[u8]]| {
            let cells: Vec<Vec<u8>> = cells.iter().map(|c| c.to_vec()).collect();
            let names: Vec<String> = cells
                .iter()
                .map(|c| header_name(c, Encoding::Utf8))
                .collect();
            UnreadSummaryFields::of(3, &cells, &names, Encoding::Utf8)
        };
        // Known names under any spelling, and the empty name a trailing separator leaves.
        assert_eq!(
            unread(&[
                b"\xEF\xBB\xBFACTAS_ESPERADAS",
                b"ACTAS_FUERA_CAT\xC3\x81LOGO",
                b" ",
                b""
            ]),
            None
        );
        let some = unread(&[b"ACTAS_ESPERADAS", b"=\"Actas Registradas\"", b"X", b""]).unwrap();
        assert_eq!((some.line, some.count), (3, 2));
        assert_eq!(some.names, ["Actas Registradas", "X"]);
        let long = vec![b'Y'; 1000];
        let many: Vec<&[u8]> = std::iter::repeat_n(&long[..], 5000).collect();
        let bounded = unread(&many).unwrap();
        assert_eq!(bounded.count, 5000);
        assert_eq!(bounded.names.len(), MAX_UNREAD_SUMMARY_NAMES);
        assert!(
            bounded.names.iter().all(|n| n.chars().count() < 230),
            "{:?}",
            bounded.names[0]
        );
    }

    /// Gives its bytes `step` at a time, so that a CRLF falls across two reads.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            let (now, rest) = self.bytes.split_at(n);
            buf[..n].copy_from_slice(now);
            self.bytes = rest;
            Ok(n)
        }
    }

    #[test]
    fn a_quoted_cell_left_open_is_found_however_the_input_is_cut() {
        let cases: [(&[u8], Option<u64>); 8] = [
            (b"a,b\n\"c\",d\n", None),
            (b"a,\"b\nc\"\"d\",e\n", None),
            (b"a,=\"b\",12\" TV\n", None),
            (b"a,\"b\"\"\"\n", None),
            (b"a\nb,\"c\nd\n", Some(2)),
            (b"a,\"b\"\"\n", Some(1)),
            (b"a\n\"b\"x,\"c\n", Some(2)),
            (b"\"", Some(1)),
        ];
        for (input, want) in cases {
            for step in [1, 2, 3, 64] {
                let mut quotes = Quotes::new(b',');
                for chunk in input.chunks(step) {
                    quotes.scan(chunk);
                }
                assert_eq!(
                    quotes.open_at_end(),
                    want,
                    "{:?} given {step} at a time",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn what_is_no_text_is_told_and_results_with_a_nul_are_not() {
        let no_text: [(&[u8], &str); 5] = [
            (b"", "the file is empty"),
            (b"\xEF\xBB\xBF\r\n\r\n", "only blank lines"),
            (b"\xFF\xFE\0\0A\0\0\0", "UTF-32 text"),
            (b"\xFE\xFF\0A", "UTF-16 text"),
            (b"A\0B\0C\0", "NUL bytes (the first at byte 1)"),
        ];
        for (head, what) in no_text {
            let said = not_text(head).unwrap_or_default();
            assert!(said.contains(what), "{head:?}: {said}");
        }
        for text in [
            &b"GUBERNATURA\nCLAVE_CASILLA,X\n7,\0\n"[..],
            b"ID,PARTIDO\n1,PAN\n",
        ] {
            assert_eq!(not_text(text), None, "{text:?}");
        }
    }

    #[test]
    fn every_line_end_becomes_one_lf_however_the_input_is_cut() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"a\r\nb\r\n", b"a\nb\n"),
            (b"a\rb\r", b"a\nb\n"),
            (b"a\nb", b"a\nb\n"),
            (b"a\r\n\r\nb", b"a\n\nb\n"),
            (b"\r\n\r\r\n\n", b"\n\n\n\n"),
            (b"a\n\rb", b"a\n\nb\n"),
            (b"", b""),
        ];
        for (input, want) in cases {
            for step in [1, 2, 3, 64] {
                let mut out = Vec::new();
                LineEnds::new(Trickle { bytes: input, step })
                    .read_to_end(&mut out)
                    .unwrap();
                assert_eq!(out, want, "{input:?} read {step} at a time");
            }
        }
    }
}
