//! Inspecting a PREP CSV: one pass over its rows that tallies them for the summary's
//! definitions, adds up the votes of counted actas, counts actas by casilla type, by
//! `CONTABILIZADA` and by observation, and notes the rows that contradict themselves; then
//! the declared summary is checked against every known definition ([`definitions`]).
//!
//! A row anomaly never fails the inspection: it is reported with its line, and the summary
//! is still recomputed. A row whose cells do not fit the header is such an anomaly, and is
//! not counted as an acta. Only a file that cannot be read as a PREP CSV is an error
//! ([`ReadError`]): so is one more than half of whose rows do not fit its header.
//!
//! What one inspection holds is bounded whatever the file: anomalies quote a cell cut to
//! [`MAX_SHOWN_CHARS`] characters, and special casillas are told apart by a hash of their key,
//! at most [`MAX_SPECIALS`] of them.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::io::Read;

use serde::Serialize;

use super::cell::{self, Value};
use super::definitions::{self, Definitions, Reglas};
use super::observation::{self, Flags};
use super::reader::{
    Columns, CorteLine, CsvReader, Election, Encoding, MAX_SHOWN_CHARS, ReadError, Row,
    UnreadSummaryFields, VoteKind, decode, normalise,
};
use super::summary::{FieldCheck, Status, Tally};

/// At most this many anomalies are kept per file; the rest are only counted.
const MAX_ANOMALIES: usize = 200;

/// How often (in rows) progress is reported.
const PROGRESS_ROWS: u64 = 8192;

/// The corte line of a file, as written and as an instant.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CorteReport {
    /// As written: `01/06/2021 18:52 (UTC-5)`.
    pub(crate) written: String,
    /// Local time with the written offset, RFC 3339: `2021-06-01T18:52:00-05:00`; `None` for
    /// the placeholder `DD/MM/AAAA HH:MM`.
    pub(crate) local: Option<String>,
    /// The same instant in UTC.
    pub(crate) utc: Option<String>,
}

impl CorteReport {
    fn new(c: &CorteLine) -> Self {
        let (local, utc) = match c.time {
            Some((local, offset)) => (
                Some(format!("{local}{}", offset_text(offset))),
                offset.to_timestamp(local).ok().map(|t| t.to_string()),
            ),
            None => (None, None),
        };
        Self {
            written: c.written.clone(),
            local,
            utc,
        }
    }
}

/// An offset as RFC 3339 writes it: `-05:00`.
fn offset_text(offset: jiff::tz::Offset) -> String {
    let s = offset.seconds();
    let sign = if s < 0 { '-' } else { '+' };
    let s = s.unsigned_abs();
    format!("{sign}{:02}:{:02}", s / 3600, s / 60 % 60)
}

/// A line before the column header that looks like a corte (it begins with a date) but is
/// written no known way.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UnreadCorte {
    /// 1-based line in the file.
    pub(crate) line: u64,
    /// The line's first cell as written, cut to 200 characters.
    pub(crate) written: String,
}

/// Votes of one column over counted actas.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VoteTotal {
    /// The column's name.
    pub(crate) column: String,
    /// Its column number in the column header, from 1: what tells apart two columns of votes
    /// with the same name.
    pub(crate) position: usize,
    /// Whether another column of votes has the same name.
    #[serde(skip)]
    pub(crate) repeated: bool,
    /// Party, coalition, independent, not registered or null.
    pub(crate) kind: VoteKind,
    /// Sum over counted actas.
    pub(crate) votes: u64,
    /// Counted actas where the cell held a missing-value marker (not zero).
    pub(crate) missing: u64,
}

/// A row that contradicts itself or holds what its column cannot.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Anomaly {
    /// 1-based line in the file.
    pub(crate) line: u64,
    /// The row's `CLAVE_ACTA`, if it has one.
    pub(crate) clave_acta: String,
    /// The column concerned, if one.
    pub(crate) column: Option<String>,
    /// What is wrong.
    pub(crate) what: String,
}

/// Actas with one observation.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ObservationCount {
    /// The observation (empty: none).
    pub(crate) observation: String,
    /// How many actas.
    pub(crate) actas: u64,
    /// Whether it reports an inconsistency of the acta (illegible, sin dato, excede lista
    /// nominal, todos los campos vacíos).
    pub(crate) inconsistency: bool,
}

/// Everything `inspect` says about one results CSV.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FileReport {
    /// Path of the file (inside the package, or as given).
    pub(crate) file: String,
    /// The title line (`GUBERNATURA`).
    pub(crate) title: Option<String>,
    /// The election, by the title or the file's name.
    pub(crate) election: Election,
    /// The corte line.
    pub(crate) corte: Option<CorteReport>,
    /// Without a corte read, a line that looks like one but is written no known way.
    pub(crate) unread_corte: Option<UnreadCorte>,
    /// Detected encoding.
    pub(crate) encoding: &'static str,
    /// Detected separator of the rows.
    pub(crate) separator: char,
    /// Detected separator of the summary lines (the rows' but in INE 2021's files).
    pub(crate) summary_separator: char,
    /// Data rows (actas).
    pub(crate) rows: u64,
    /// Rows not read as actas because their cells do not fit the column header (each is
    /// among the anomalies).
    pub(crate) unread_rows: u64,
    /// Whether the file has a summary line.
    pub(crate) summary_present: bool,
    /// Each declared summary field beside its recomputed value.
    pub(crate) summary: Vec<FieldCheck>,
    /// The summary header's names that name no known field: their values are neither read
    /// nor checked, and are not among `summary`. `None` when every name is known.
    pub(crate) unread_summary_fields: Option<UnreadSummaryFields>,
    /// Which definitions the summary was checked by, and whose explain it.
    pub(crate) definitions: Option<Definitions>,
    /// Whether one known definition gives every declared field.
    pub(crate) consistent: bool,
    /// Votes per party, coalition and candidate over counted actas.
    pub(crate) votes: Vec<VoteTotal>,
    /// Actas by `TIPO_CASILLA` (empty: out of the catalogue).
    pub(crate) by_casilla_type: BTreeMap<String, u64>,
    /// Actas by `CONTABILIZADA`.
    pub(crate) by_contabilizada: BTreeMap<String, u64>,
    /// Actas by observation, most frequent first.
    pub(crate) by_observation: Vec<ObservationCount>,
    /// The latest value of each `FECHA_HORA_…` column, `YYYY-MM-DD HH:MM:SS`.
    pub(crate) latest: BTreeMap<String, String>,
    /// How many anomalies in all.
    pub(crate) anomaly_count: u64,
    /// The first anomalies, in file order.
    pub(crate) anomalies: Vec<Anomaly>,
}

impl FileReport {
    /// The differing summary fields.
    pub(crate) fn differences(&self) -> impl Iterator<Item = &FieldCheck> {
        self.summary.iter().filter(|c| !c.equal)
    }

    /// The file's election, as reports name it: `CAMP_GOB_2021.csv (GUBERNATURA)`.
    pub(crate) fn election(&self) -> String {
        match &self.title {
            Some(t) => format!("{} ({t})", self.file),
            None => self.file.clone(),
        }
    }
}

/// Inspects one results CSV read from `input`, by every known definition or `reglas`'s;
/// `progress` is called now and then with the bytes parsed so far.
pub(crate) fn inspect_csv(
    file: &str,
    input: impl Read,
    reglas: Option<&'static Reglas>,
    progress: &mut dyn FnMut(u64),
) -> Result<FileReport, ReadError> {
    let mut reader = CsvReader::open(file, input)?;
    let columns = reader.columns().clone();
    let encoding = reader.encoding();
    let mut state = State::new(&columns);
    while let Some(row) = reader.next_row()? {
        match row.malformed {
            Some(cells) => state.malformed(&row, &columns, cells),
            None => state.row(&row, &columns, encoding),
        }
        if (state.rows + state.unread_rows).is_multiple_of(PROGRESS_ROWS) {
            progress(reader.position());
        }
    }
    progress(reader.position());
    if let Some(e) = state.mostly_malformed(file, &columns) {
        return Err(e);
    }
    Ok(state.report(file, &reader, &columns, reglas))
}

/// A cell as an anomaly quotes it: `"…"`, cut after [`MAX_SHOWN_CHARS`] characters with how
/// long it was, so that rows of huge cells make no huge report.
fn quoted(cell: &[u8]) -> String {
    let text = String::from_utf8_lossy(cell);
    match text.char_indices().nth(MAX_SHOWN_CHARS) {
        None => format!("{text:?}"),
        Some((at, _)) => format!(
            "{:?}… ({} bytes in all)",
            text.get(..at).unwrap_or_default(),
            cell.len()
        ),
    }
}

/// The most distinct special casillas told apart: a national file has about 1,500.
const MAX_SPECIALS: usize = 100_000;

/// Rows per special casilla (`TIPO_CASILLA` = S), by a 64-bit hash of its `CLAVE_CASILLA`:
/// the keys themselves are not kept, so a casilla costs 16 bytes however long its key. Two
/// keys of one hash (about one chance in 10^9 for a national file's) would count as one
/// casilla. At most [`MAX_SPECIALS`] casillas; the rows of further ones are not counted.
#[derive(Default)]
struct Specials {
    rows: HashMap<u64, u32, foldhash::fast::RandomState>,
    hasher: foldhash::fast::RandomState,
    /// Whether a casilla was left uncounted, the limit reached.
    full: bool,
}

impl Specials {
    /// Counts a row of the special casilla `key`.
    fn add(&mut self, key: &[u8]) {
        let room = self.rows.len() < MAX_SPECIALS;
        match self.rows.entry(self.hasher.hash_one(key)) {
            Entry::Occupied(mut n) => {
                let rows = n.get_mut();
                *rows = rows.saturating_add(1);
            }
            Entry::Vacant(slot) if room => {
                slot.insert(1);
            }
            Entry::Vacant(_) => self.full = true,
        }
    }

    /// How many special casillas have one row.
    fn single_row(&self) -> u64 {
        self.rows.values().filter(|&&n| n == 1).count() as u64
    }
}

/// A map keyed by cell bytes. Keys come from the file, but a flood of colliding keys only
/// slows one inspection down; the fast hasher keeps a national file well over 200 MB/s.
type FastMap<V> = HashMap<Vec<u8>, V, foldhash::fast::RandomState>;

/// The longest acta key held inline by [`SeenActas`], plus one byte for its length.
const INLINE_KEY: usize = 32;

/// The most distinct actas remembered to find one written twice: about three times a
/// national file's (about 170,000), in at most 64 MiB.
const MAX_ACTAS: usize = 500_000;

/// The most bytes of acta keys of [`INLINE_KEY`] bytes or more remembered.
const MAX_LONG_KEY_BYTES: usize = 16 * 1024 * 1024;

/// The actas already seen, by key (`CLAVE_ACTA` and the level ids), with the line of each. A
/// key is held inline when it is short, as nearly every one is, so that remembering a national
/// file's actas allocates nothing per row. At most [`MAX_ACTAS`] keys, and
/// [`MAX_LONG_KEY_BYTES`] of long ones, are remembered; the rest are not compared.
#[derive(Default)]
struct SeenActas {
    /// Keys of fewer than [`INLINE_KEY`] bytes: the key, zeros, and its length last.
    short: HashMap<[u8; INLINE_KEY], u64, foldhash::fast::RandomState>,
    /// Longer keys.
    long: FastMap<u64>,
    /// Bytes of the keys in `long`.
    long_bytes: usize,
    /// Whether a key was left unremembered, a limit reached.
    full: bool,
}

impl SeenActas {
    /// The line `key` was first seen on, or `None` after noting it as seen on `line`.
    fn first_or_insert(&mut self, key: &[u8], line: u64) -> Option<u64> {
        let mut inline = [0u8; INLINE_KEY];
        if let (Some(bytes), Ok(len)) = (inline.get_mut(..key.len()), u8::try_from(key.len()))
            && key.len() < INLINE_KEY
        {
            bytes.copy_from_slice(key);
            inline[INLINE_KEY - 1] = len;
            let room = self.short.len() + self.long.len() < MAX_ACTAS;
            return match self.short.entry(inline) {
                Entry::Occupied(first) => Some(*first.get()),
                Entry::Vacant(slot) if room => {
                    slot.insert(line);
                    None
                }
                Entry::Vacant(_) => {
                    self.full = true;
                    None
                }
            };
        }
        if let Some(first) = self.long.get(key) {
            return Some(*first);
        }
        if self.short.len() + self.long.len() >= MAX_ACTAS
            || self.long_bytes + key.len() > MAX_LONG_KEY_BYTES
        {
            self.full = true;
            return None;
        }
        self.long_bytes += key.len();
        self.long.insert(key.to_vec(), line);
        None
    }
}

/// The running counts of one pass.
struct State {
    rows: u64,
    tally: Tally,
    votes: Vec<(u64, u64)>,
    casilla_types: Vec<(Vec<u8>, u64)>,
    contabilizada: Vec<(Vec<u8>, u64)>,
    observations: FastMap<(u64, Flags)>,
    /// Actas whose observation is past [`MAX_OBSERVATIONS`] or [`MAX_DISTINCT_BYTES`]: those
    /// that report no inconsistency, and those that do.
    other_observations: [u64; 2],
    latest: Vec<u64>,
    claves: SeenActas,
    key: Vec<u8>,
    specials: Specials,
    anomalies: Vec<(u64, Vec<u8>, Option<String>, String)>,
    anomaly_count: u64,
    /// Rows whose cells do not fit the header.
    unread_rows: u64,
    /// The line of the first of them.
    first_unread: u64,
}

/// The figures of a counted acta that its checks need.
struct CountedActa {
    line: u64,
    /// Sum of its vote cells that hold numbers.
    sum: u64,
    calculado: Value,
    lista: Value,
    /// `REPRESENTANTES_PP_CI`, if the file has it and the cell holds a number.
    representantes: Option<u64>,
    /// A special casilla (`TIPO_CASILLA` = S): voters from elsewhere, no lista nominal.
    special: bool,
    /// The votes from abroad (`TIPO_CASILLA` = M), one acta for all of them: its lista
    /// nominal is written as the institute chooses (IEEM 2024 writes 0, IEEPCO 2022 the
    /// voters registered abroad).
    abroad: bool,
}

impl State {
    fn new(columns: &Columns) -> Self {
        Self {
            rows: 0,
            tally: Tally::default(),
            votes: vec![(0, 0); columns.votes.len()],
            casilla_types: Vec::new(),
            contabilizada: Vec::new(),
            observations: FastMap::default(),
            other_observations: [0; 2],
            latest: vec![0; columns.dates.len()],
            claves: SeenActas::default(),
            key: Vec::new(),
            specials: Specials::default(),
            anomalies: Vec::new(),
            anomaly_count: 0,
            unread_rows: 0,
            first_unread: 0,
        }
    }

    /// A row of `cells` cells, which do not fit the header: an anomaly, and no acta.
    fn malformed(&mut self, row: &Row<'_>, columns: &Columns, cells: usize) {
        self.unread_rows += 1;
        if self.first_unread == 0 {
            self.first_unread = row.line;
        }
        let clave = columns.clave_acta.map_or(&b""[..], |i| row.cell(i));
        let what = || {
            format!(
                "{cells} cells where the header has {}; the row is cut or has an unquoted \
                 separator, and is not counted",
                columns.names.len()
            )
        };
        self.anomaly(row.line, clave, None, what);
    }

    /// The error of a file more than half of whose rows do not fit its header: these are no
    /// rows of it (another separator, or not a PREP results CSV), and its report would count
    /// next to nothing.
    fn mostly_malformed(&self, file: &str, columns: &Columns) -> Option<ReadError> {
        let all = self.rows + self.unread_rows;
        (self.unread_rows > 0 && self.unread_rows * 2 > all).then(|| ReadError {
            file: file.to_owned(),
            line: self.first_unread,
            column: None,
            what: format!(
                "{} of its {all} rows have a number of cells other than the header's {} (the \
                 first on this line): more than half, so they are not rows of that header; \
                 their separator is another, or this is not a PREP results CSV",
                self.unread_rows,
                columns.names.len()
            ),
        })
    }

    /// Counts an anomaly; keeps it, `what` written, while fewer than [`MAX_ANOMALIES`] are
    /// kept (a file of anomalies on every row is not written out row by row).
    fn anomaly(
        &mut self,
        line: u64,
        clave: &[u8],
        column: Option<&str>,
        what: impl FnOnce() -> String,
    ) {
        self.anomaly_count += 1;
        if self.anomalies.len() < MAX_ANOMALIES {
            // A key is cut as a quoted cell is: a row of huge cells makes no huge report.
            let clave = match clave.get(..MAX_SHOWN_CHARS) {
                Some(cut) if clave.len() > MAX_SHOWN_CHARS => [cut, b"..."].concat(),
                _ => clave.to_vec(),
            };
            self.anomalies
                .push((line, clave, column.map(str::to_owned), what()));
        }
    }

    fn row(&mut self, row: &Row<'_>, columns: &Columns, encoding: Encoding) {
        self.rows += 1;
        let line = row.line;
        let clave = columns.clave_acta.map_or(&b""[..], |i| row.cell(i));
        let contab = row.cell(columns.contabilizada);
        let status = Status::of(contab);
        count(&mut self.contabilizada, contab);
        let tipo = row.cell(columns.tipo_casilla);
        count(&mut self.casilla_types, tipo);
        if status == Status::Other {
            let what = || {
                format!(
                    "CONTABILIZADA is {}; expected 1, 0, 2, - or empty",
                    quoted(contab)
                )
            };
            self.anomaly(line, clave, Some("CONTABILIZADA"), what);
        }

        let observation = row.cell(columns.observaciones);
        let flags = match self.observations.get_mut(observation) {
            Some((n, flags)) => {
                *n += 1;
                *flags
            }
            None => {
                // Read in the file's encoding: `FUERA DE CATÁLOGO` in Latin-1 is not UTF-8.
                let flags = observation::read(&normalise(&decode(observation, encoding)));
                if self.observations.len() < MAX_OBSERVATIONS
                    && observation.len() <= MAX_DISTINCT_BYTES
                {
                    self.observations.insert(observation.to_vec(), (1, flags));
                } else {
                    let other = usize::from(flags.has(Flags::INCONSISTENCY));
                    if let Some(n) = self.other_observations.get_mut(other) {
                        *n += 1;
                    }
                }
                flags
            }
        };
        self.tally.add(status, flags);
        let out = flags.has(Flags::OUT_OF_CATALOGUE) || status == Status::Two;
        // The votes of a counted acta add up, unless its observation puts it out of the
        // catalogue.
        let counted = status == Status::Counted && !out;

        let mut sum = 0u64;
        for (v, col) in columns.votes.iter().enumerate() {
            match cell::value(row.cell(col.index)) {
                Value::Number(n) => {
                    sum = sum.saturating_add(n);
                    if counted && let Some(total) = self.votes.get_mut(v) {
                        total.0 = total.0.saturating_add(n);
                    }
                }
                Value::Missing => {
                    if counted && let Some(total) = self.votes.get_mut(v) {
                        total.1 += 1;
                    }
                }
                Value::Invalid => {
                    let what = || {
                        format!(
                            "{} is neither a number nor a missing-value marker",
                            quoted(row.cell(col.index))
                        )
                    };
                    self.anomaly(line, clave, Some(col.label().as_ref()), what);
                }
            }
        }
        let calculado = self.number(row, columns.calculado, "TOTAL_VOTOS_CALCULADO", clave);
        let lista = self.number(row, columns.lista_nominal, "LISTA_NOMINAL", clave);
        if counted {
            let representantes =
                columns
                    .representantes
                    .and_then(|i| match cell::value(row.cell(i)) {
                        Value::Number(n) => Some(n),
                        _ => None,
                    });
            let acta = CountedActa {
                line,
                sum,
                calculado,
                lista,
                representantes,
                special: tipo.eq_ignore_ascii_case(b"S"),
                abroad: tipo.eq_ignore_ascii_case(b"M"),
            };
            self.counted(&acta, clave);
        }

        for (d, (index, name)) in columns.dates.iter().enumerate() {
            let cell = row.cell(*index);
            match cell::date_time(cell) {
                Some(t) => {
                    if let Some(latest) = self.latest.get_mut(d) {
                        *latest = (*latest).max(t);
                    }
                }
                None if cell::is_missing(cell) => {}
                None => {
                    let what = || {
                        format!(
                            "{} is not a date written any known way (DD/MM/YYYY HH:MM[:SS] or \
                         YYYY-MM-DD HH:MM[:SS], an offset after it)",
                            quoted(cell)
                        )
                    };
                    self.anomaly(line, clave, Some(name), what);
                }
            }
        }

        // Without a key column (the layouts of 2015–2017) an acta is named by its parts.
        let by_parts = columns.clave_acta.is_none() && !columns.acta_parts.is_empty();
        let key_column = if by_parts {
            "SECCION, TIPO_CASILLA, ID_CASILLA, …"
        } else {
            "CLAVE_ACTA"
        };
        if !cell::is_missing(clave) || by_parts {
            self.key.clear();
            self.key.extend_from_slice(clave);
            for &i in columns.acta_parts.iter().chain(&columns.levels) {
                self.key.push(0x1f);
                self.key.extend_from_slice(row.cell(i));
            }
            let full = self.claves.full;
            if let Some(first) = self.claves.first_or_insert(&self.key, line) {
                let what = || format!("the same acta is already on line {first}");
                self.anomaly(line, clave, Some(key_column), what);
            }
            if self.claves.full && !full {
                let what = || {
                    format!(
                        "more than {MAX_ACTAS} distinct actas (or {MAX_LONG_KEY_BYTES} bytes of \
                         long acta keys): from this line on, an acta is not checked for being \
                         written twice"
                    )
                };
                self.anomaly(line, clave, Some(key_column), what);
            }
        }
        if tipo.eq_ignore_ascii_case(b"S")
            && !out
            && let Some(casilla) = columns.clave_casilla.map(|i| row.cell(i))
        {
            let full = self.specials.full;
            self.specials.add(casilla);
            if self.specials.full && !full {
                let what = || {
                    format!(
                        "more than {MAX_SPECIALS} special casillas: from this line on, a new one \
                         is not counted among the special casillas of one row"
                    )
                };
                self.anomaly(line, clave, Some("CLAVE_CASILLA"), what);
            }
        }
    }

    /// A numeric cell; an invalid one is an anomaly and counts as missing.
    fn number(&mut self, row: &Row<'_>, index: usize, name: &str, clave: &[u8]) -> Value {
        let v = cell::value(row.cell(index));
        if v == Value::Invalid {
            let what = || {
                format!(
                    "{} is neither a number nor a missing-value marker",
                    quoted(row.cell(index))
                )
            };
            self.anomaly(row.line, clave, Some(name), what);
            return Value::Missing;
        }
        v
    }

    /// The sums and checks of a counted acta.
    fn counted(&mut self, a: &CountedActa, clave: &[u8]) {
        if let Value::Number(l) = a.lista {
            self.tally.lista_nominal = self.tally.lista_nominal.saturating_add(l);
        }
        let Value::Number(c) = a.calculado else {
            let what = || "a counted acta without TOTAL_VOTOS_CALCULADO".to_owned();
            self.anomaly(a.line, clave, Some("TOTAL_VOTOS_CALCULADO"), what);
            return;
        };
        self.tally.votos_c_cs = self.tally.votos_c_cs.saturating_add(c);
        if !a.special {
            self.tally.votos_s_cs = self.tally.votos_s_cs.saturating_add(c);
        }
        if c != a.sum {
            let what = || {
                format!(
                    "TOTAL_VOTOS_CALCULADO is {c} but its votes add up to {}",
                    a.sum
                )
            };
            self.anomaly(a.line, clave, Some("TOTAL_VOTOS_CALCULADO"), what);
        }
        if let Value::Number(l) = a.lista
            && !a.special
            && !a.abroad
            && c > l.saturating_add(a.representantes.unwrap_or(0))
        {
            let what = || match a.representantes {
                Some(r) => {
                    format!("{c} votes in a casilla with lista nominal {l} and {r} representatives")
                }
                None => format!(
                    "{c} votes in a casilla with lista nominal {l} (representatives not stated)"
                ),
            };
            self.anomaly(a.line, clave, Some("TOTAL_VOTOS_CALCULADO"), what);
        }
    }

    fn report<R: Read>(
        self,
        file: &str,
        reader: &CsvReader<R>,
        columns: &Columns,
        reglas: Option<&'static Reglas>,
    ) -> FileReport {
        let preamble = reader.preamble();
        let election = Election::of(preamble.title.as_deref(), file);
        let mut tally = self.tally.clone();
        tally.single_row_specials = self.specials.single_row();
        let (summary, definitions) = match &preamble.declared {
            Some(declared) => {
                let (checks, defs) = definitions::check(declared, &tally, election, reglas);
                (checks, Some(defs))
            }
            None => (Vec::new(), None),
        };
        let text = |b: &[u8]| reader.text(b).into_owned();
        let votes = columns
            .votes
            .iter()
            .zip(&self.votes)
            .map(|(col, (votes, missing))| VoteTotal {
                column: col.name.clone(),
                position: col.index + 1,
                repeated: col.repeated,
                kind: col.kind,
                votes: *votes,
                missing: *missing,
            })
            .collect();
        let mut by_observation: Vec<ObservationCount> = self
            .observations
            .iter()
            .map(|(o, (n, flags))| ObservationCount {
                observation: text(o),
                actas: *n,
                inconsistency: flags.has(Flags::INCONSISTENCY),
            })
            .chain(
                [false, true]
                    .into_iter()
                    .zip(self.other_observations)
                    .filter(|(_, n)| *n > 0)
                    .map(|(inconsistency, actas)| ObservationCount {
                        observation: OTHER.to_owned(),
                        actas,
                        inconsistency,
                    }),
            )
            .collect();
        by_observation.sort_by(|a, b| {
            b.actas
                .cmp(&a.actas)
                .then(a.observation.cmp(&b.observation))
        });
        let latest = columns
            .dates
            .iter()
            .zip(&self.latest)
            .filter(|(_, t)| **t > 0)
            .map(|((_, name), t)| (name.clone(), cell::format_date_time(*t)))
            .collect();
        let map = |counts: &[(Vec<u8>, u64)]| -> BTreeMap<String, u64> {
            counts.iter().map(|(k, n)| (text(k), *n)).collect()
        };
        FileReport {
            file: file.to_owned(),
            title: preamble.title.clone(),
            election,
            corte: preamble.corte.as_ref().map(CorteReport::new),
            unread_corte: preamble
                .unread_corte
                .as_ref()
                .filter(|_| preamble.corte.is_none())
                .map(|(line, written)| UnreadCorte {
                    line: *line,
                    written: written.clone(),
                }),
            encoding: reader.encoding().name(),
            separator: reader.separator(),
            summary_separator: reader.summary_separator(),
            rows: self.rows,
            unread_rows: self.unread_rows,
            summary_present: preamble.declared.is_some(),
            consistent: summary.iter().all(|c| c.equal),
            summary,
            unread_summary_fields: preamble.unread_summary.clone(),
            definitions,
            votes,
            by_casilla_type: map(&self.casilla_types),
            by_contabilizada: map(&self.contabilizada),
            by_observation,
            latest,
            anomaly_count: self.anomaly_count,
            anomalies: self
                .anomalies
                .into_iter()
                .map(|(line, clave, column, what)| Anomaly {
                    line,
                    clave_acta: text(&clave),
                    column,
                    what,
                })
                .collect(),
        }
    }
}

/// Most distinct values kept by [`count`]; further ones are counted together as [`OTHER`].
const MAX_DISTINCT: usize = 32;

/// Most distinct observations kept; actas with further ones are counted together as
/// [`OTHER`].
const MAX_OBSERVATIONS: usize = 1000;

/// The longest value kept as a distinct casilla type, `CONTABILIZADA` or observation; a longer
/// one is counted as [`OTHER`].
const MAX_DISTINCT_BYTES: usize = 1000;

/// What values past [`MAX_DISTINCT`], [`MAX_OBSERVATIONS`] or [`MAX_DISTINCT_BYTES`] are
/// counted as.
const OTHER: &str = "(other)";

/// Adds one to `key`'s count in a short list of distinct values.
fn count(counts: &mut Vec<(Vec<u8>, u64)>, key: &[u8]) {
    let key = if key.len() > MAX_DISTINCT_BYTES
        || (counts.len() >= MAX_DISTINCT && !counts.iter().any(|(k, _)| k == key))
    {
        OTHER.as_bytes()
    } else {
        key
    };
    match counts.iter_mut().find(|(k, _)| k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key.to_vec(), 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acta_key_is_seen_once_whatever_its_length() {
        let mut seen = SeenActas::default();
        let keys: [&[u8]; 6] = [
            b"",
            b"A",
            b"A\0",
            &[b'K'; INLINE_KEY - 1],
            &[b'K'; INLINE_KEY],
            &[b'K'; 3 * INLINE_KEY],
        ];
        for (line, key) in (1..).zip(keys) {
            assert_eq!(seen.first_or_insert(key, line), None, "{key:?}");
        }
        for (line, key) in (1..).zip(keys) {
            assert_eq!(seen.first_or_insert(key, 100), Some(line), "{key:?}");
        }
        assert_eq!(seen.short.len(), 4);
        assert_eq!(seen.long.len(), 2);
    }

    #[test]
    fn past_its_limit_an_acta_key_is_not_remembered_and_the_rest_still_are() {
        let mut seen = SeenActas::default();
        for line in 0..MAX_ACTAS as u64 {
            assert_eq!(seen.first_or_insert(&line.to_le_bytes(), line), None);
        }
        assert!(!seen.full);
        let late = b"one acta too many";
        assert_eq!(seen.first_or_insert(late, 1), None);
        assert!(seen.full);
        assert_eq!(seen.first_or_insert(late, 2), None, "not remembered");
        assert_eq!(seen.first_or_insert(&7u64.to_le_bytes(), 3), Some(7));

        let mut long = SeenActas::default();
        let key = |i: usize| {
            let mut k = vec![b'k'; 64 * 1024];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            k
        };
        let fit = MAX_LONG_KEY_BYTES / (64 * 1024);
        for i in 0..fit {
            assert_eq!(long.first_or_insert(&key(i), i as u64), None);
        }
        assert!(!long.full);
        assert_eq!(long.first_or_insert(&key(fit), 0), None);
        assert!(long.full && long.long_bytes <= MAX_LONG_KEY_BYTES);
        assert_eq!(long.first_or_insert(&key(0), 9), Some(0));
    }
}
