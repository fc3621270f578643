//! Reading the access logs: in parallel, streaming, one pass.
//!
//! One thread reads the files in order (plain or gzip), hashes them as read, and cuts them
//! into blocks of whole lines; a worker per core parses each block's lines and adds what does
//! not depend on order to a [`Tally`] of its own (hits, bytes, statuses, pages, per-minute
//! counts and response times); the calling thread takes the blocks' requests back in file
//! order and follows each visitor ([`super::visitors`]), which does depend on order.
//!
//! # Guarantees
//! - Memory is bounded by the number of distinct visitors and of distinct names counted (each
//!   table keeps at most [`MAX_NAMES`] names; the rest is counted under one "other" name), not
//!   by the number of lines: at most a few blocks are in flight at once. What a client names
//!   is bounded too, whatever the server let it send: a user agent is read to 512 bytes, a
//!   referring host to 253, the name a bot gives itself to 64 characters. No user agent's text
//!   outlives its block: a visitor is known by a 128-bit fingerprint of its address and agent.
//! - A page or a download is counted under the path the server read (`//`, `.` segments and
//!   percent-encoding resolved, as [`crate::http::normalise`] does), not as the client spelled
//!   it: one document is one name, however many spellings a client makes up.
//! - A line longer than [`BLOCK`] is counted as malformed and skipped, never buffered whole.
//! - A file is read through the descriptor opened when it was listed ([`Input::file`]), to
//!   the size it had then ([`Input::len`]): what a live server writes meanwhile is not read,
//!   and a rotation that renames, gzips or removes it, or puts a new file at its name,
//!   changes nothing of what is read, so the figures, the hash and the copy delivered are of
//!   the same bytes.
//! - Lines are never dropped silently: every line is a request counted in the period, a
//!   request outside it, or malformed.
//! - A gzip log that is cut short or damaged (a rotation interrupted by a full disk or a
//!   crash) does not stop the report: its lines up to the damage are counted, a line the
//!   damage cut is counted as malformed, the file is still hashed whole, and its
//!   [`FileRead::damage`] says what was wrong. A file the system cannot read stops it.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use foldhash::fast::RandomState;
use globset::GlobSet;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use sha2::{Digest, Sha256};

use super::agents::{self, Agent, Agents, Origin};
use super::logline::{self, Line};
use super::visitors::{Hit, Visitors};

/// Size of a block of lines handed to a worker.
const BLOCK: usize = 1 << 20;
/// Most distinct names kept in one table (paths, bots, encodings); more are counted apart.
pub(crate) const MAX_NAMES: usize = 100_000;
/// The name more names are counted under.
pub(crate) const OTHER_NAMES: &str = "(otros, más allá del límite de nombres distintos)";
/// Most distinct user agents a worker remembers the reading of.
const MAX_AGENT_CACHE: usize = 50_000;
/// Longest response time a histogram records, in milliseconds (an hour).
const MAX_MS: u64 = 3_600_000;

/// A log file to read, held open from when it was listed.
#[derive(Debug)]
pub(crate) struct Input {
    /// Where it was when listed: its name in the report.
    pub(crate) path: PathBuf,
    /// The file itself, opened when it was listed: it is read and copied through this
    /// descriptor, never opened again by name.
    pub(crate) file: std::fs::File,
    /// Whether it is gzip.
    pub(crate) gzip: bool,
    /// Its size when the report began: only these bytes are read and copied, so a log the
    /// server is still writing is counted and delivered as one and the same file.
    pub(crate) len: u64,
}

impl Input {
    /// Its first [`Input::len`] bytes, read by position: the scan and the copy each read it
    /// whole at once through the one descriptor.
    pub(crate) fn bytes(&self) -> Held<'_> {
        Held {
            file: &self.file,
            at: 0,
            end: self.len,
        }
    }
}

/// A reader of a held file's bytes up to a size ([`Input::bytes`]).
pub(crate) struct Held<'a> {
    file: &'a std::fs::File,
    at: u64,
    end: u64,
}

impl Read for Held<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt as _;
        let left = usize::try_from(self.end.saturating_sub(self.at)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// What a file was, as read.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileRead {
    /// Bytes on disk.
    pub(crate) bytes: u64,
    /// SHA-256 of its bytes on disk, hex.
    pub(crate) sha256: String,
    /// Why its lines past some point could not be read, in Spanish; `None` when read whole.
    pub(crate) damage: Option<String>,
}

/// What decides what is counted.
pub(crate) struct Rules<'a> {
    /// Instants counted: `[from, to)`; `None` counts every line.
    pub(crate) period: Option<(Timestamp, Timestamp)>,
    /// Time zone of days.
    pub(crate) timezone: TimeZone,
    /// Paths that are pages (HTML documents).
    pub(crate) pages: &'a GlobSet,
    /// User-agent rules.
    pub(crate) agents: &'a Agents,
    /// When each corte went live, in order: a request is counted for the corte live then.
    pub(crate) cortes: &'a [Timestamp],
    /// The institute's host names (referrers).
    pub(crate) institute: &'a GlobSet,
    /// Whether to count per minute, per second and by name (the timeline, the peaks, the
    /// incidents read from minutes, the rankings); the portal's usual logs need only their
    /// totals and days, so months of them cost no more than a night.
    pub(crate) details: bool,
}

/// Counts that add up in any order.
#[derive(Default)]
pub(crate) struct Tally {
    /// Lines read.
    pub(crate) lines: u64,
    /// Lines that are not a request.
    pub(crate) malformed: u64,
    /// Requests outside the period.
    pub(crate) outside: u64,
    /// Requests in the period.
    pub(crate) hits: u64,
    /// Of them, from bots.
    pub(crate) bot_hits: u64,
    /// Pages viewed by people.
    pub(crate) pages: u64,
    /// Bytes sent.
    pub(crate) bytes: u64,
    /// Whether any line carried a response time.
    pub(crate) timed: bool,
    /// Requests per status class, indexed by [`Status`].
    pub(crate) statuses: [u64; 7],
    /// Requests per encoding (extended logs).
    pub(crate) encodings: Names,
    /// Requests per protocol.
    pub(crate) protocols: Names,
    /// Pages viewed by people, per path.
    pub(crate) page_paths: Names,
    /// Downloads under `/datos/` by people, per path.
    pub(crate) downloads: Names,
    /// Bot requests per bot name.
    pub(crate) bots: Names,
    /// Per local day.
    pub(crate) days: HashMap<Date, DayTally, RandomState>,
    /// Per minute (Unix minute).
    pub(crate) minutes: HashMap<i64, MinuteTally, RandomState>,
    /// Requests per second (Unix second).
    pub(crate) seconds: HashMap<i64, u64, RandomState>,
    /// Lines per input file.
    pub(crate) lines_per_file: Vec<u64>,
}

/// A day's additive counts.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DayTally {
    /// Requests.
    pub(crate) hits: u64,
    /// Pages by people.
    pub(crate) pages: u64,
    /// Bytes.
    pub(crate) bytes: u64,
}

/// A minute's additive counts.
pub(crate) struct MinuteTally {
    /// Requests.
    pub(crate) hits: u64,
    /// Pages by people.
    pub(crate) pages: u64,
    /// 2xx and 3xx responses.
    pub(crate) ok: u64,
    /// 5xx responses.
    pub(crate) errors: u64,
    /// 429 responses.
    pub(crate) throttled: u64,
    /// Response times, ms; made at the minute's first timed request (a histogram is 8 KiB,
    /// and a log without response times has none).
    pub(crate) times: Option<Box<Histogram<u32>>>,
}

impl MinuteTally {
    /// No request yet.
    pub(crate) fn empty() -> Self {
        Self {
            hits: 0,
            pages: 0,
            ok: 0,
            errors: 0,
            throttled: 0,
            times: None,
        }
    }

    /// Adds `other`'s counts.
    pub(crate) fn add(&mut self, other: &Self) {
        self.hits += other.hits;
        self.pages += other.pages;
        self.ok += other.ok;
        self.errors += other.errors;
        self.throttled += other.throttled;
        if let Some(theirs) = &other.times {
            match &mut self.times {
                Some(mine) => {
                    mine.add(&**theirs).ok();
                }
                None => self.times = Some(theirs.clone()),
            }
        }
    }
}

/// A histogram of response times in milliseconds, 2 significant digits.
pub(crate) fn new_histogram() -> Histogram<u32> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_MS, 2).expect("constant bounds are valid")
}

/// Counts per name (log text, as bytes), bounded to [`MAX_NAMES`] names.
#[derive(Default)]
pub(crate) struct Names(HashMap<Box<[u8]>, u64, RandomState>);

impl Names {
    fn add(&mut self, name: &[u8], n: u64) {
        if let Some(count) = self.0.get_mut(name) {
            *count += n;
        } else if self.0.len() < MAX_NAMES {
            self.0.insert(name.into(), n);
        } else {
            *self.0.entry(OTHER_NAMES.as_bytes().into()).or_default() += n;
        }
    }

    fn merge(&mut self, other: Self) {
        for (name, n) in other.0 {
            self.add(&name, n);
        }
    }

    /// The counts, most first, then by name; bytes outside UTF-8 become U+FFFD.
    pub(crate) fn sorted(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self
            .0
            .iter()
            .map(|(k, &n)| (String::from_utf8_lossy(k).into_owned(), n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

impl Tally {
    /// Adds a minute's counts.
    fn add_minute(&mut self, minute: i64, counts: MinuteTally) {
        match self.minutes.get_mut(&minute) {
            Some(mine) => mine.add(&counts),
            None => {
                self.minutes.insert(minute, counts);
            }
        }
    }

    /// Adds a day's counts.
    fn add_day(&mut self, day: Date, counts: DayTally) {
        let mine = self.days.entry(day).or_default();
        mine.hits += counts.hits;
        mine.pages += counts.pages;
        mine.bytes += counts.bytes;
    }

    fn merge(&mut self, other: Self) {
        self.lines += other.lines;
        self.malformed += other.malformed;
        self.outside += other.outside;
        self.hits += other.hits;
        self.bot_hits += other.bot_hits;
        self.pages += other.pages;
        self.bytes += other.bytes;
        self.timed |= other.timed;
        for (mine, n) in self.statuses.iter_mut().zip(other.statuses) {
            *mine += n;
        }
        self.encodings.merge(other.encodings);
        self.protocols.merge(other.protocols);
        self.page_paths.merge(other.page_paths);
        self.downloads.merge(other.downloads);
        self.bots.merge(other.bots);
        for (day, d) in other.days {
            self.add_day(day, d);
        }
        for (minute, m) in other.minutes {
            self.add_minute(minute, m);
        }
        for (second, n) in other.seconds {
            *self.seconds.entry(second).or_default() += n;
        }
        if self.lines_per_file.len() < other.lines_per_file.len() {
            self.lines_per_file.resize(other.lines_per_file.len(), 0);
        }
        for (mine, n) in self.lines_per_file.iter_mut().zip(other.lines_per_file) {
            *mine += n;
        }
    }
}

/// A block of lines of one file, in reading order.
struct Chunk {
    seq: u64,
    file: usize,
    bytes: Vec<u8>,
    /// Lines skipped as too long before this block.
    skipped: u64,
}

/// A block's requests, for the visitor pass.
pub(crate) struct Block {
    seq: u64,
    /// The readings of the block's user agents; hits refer to them by index.
    pub(crate) agents: Vec<Arc<Agent>>,
    /// The block's referrer hosts and their kind; hits refer to them by index.
    pub(crate) hosts: Vec<(Box<str>, Origin)>,
    /// The requests in the period, in file order.
    pub(crate) hits: Vec<Hit>,
}

/// The result of reading.
pub(crate) struct Scanned {
    /// What adds up.
    pub(crate) tally: Tally,
    /// What follows visitors.
    pub(crate) visitors: Visitors,
    /// Each input as read.
    pub(crate) files: Vec<FileRead>,
}

/// Reads `inputs` in order; `visitors` follows each visitor across them.
pub(crate) fn scan(
    inputs: &[Input],
    rules: &Rules<'_>,
    mut visitors: Visitors,
    progress: &ProgressBar,
) -> io::Result<Scanned> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<Chunk>(workers * 2);
    let (block_tx, block_rx) = crossbeam_channel::bounded::<Block>(workers * 2);
    std::thread::scope(|s| {
        let reader = s.spawn(move || read_all(inputs, &chunk_tx, progress));
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let rx = chunk_rx.clone();
            let tx = block_tx.clone();
            handles.push(s.spawn(move || work(&rx, &tx, rules, inputs.len())));
        }
        drop(chunk_rx);
        drop(block_tx);
        // Blocks arrive in any order; they are followed in reading order.
        let mut waiting = std::collections::BTreeMap::new();
        let mut next = 0u64;
        for block in block_rx {
            waiting.insert(block.seq, block);
            while let Some(block) = waiting.remove(&next) {
                visitors.follow(&block);
                next += 1;
            }
        }
        let mut tally = Tally::default();
        for h in handles {
            match h.join() {
                Ok(t) => tally.merge(t),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        let (files, skipped) = match reader.join() {
            Ok(r) => r?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        tally.malformed += skipped;
        tally.lines += skipped;
        Ok(Scanned {
            tally,
            visitors,
            files,
        })
    })
}

/// The reader: every file in order, cut into blocks of whole lines.
fn read_all(
    inputs: &[Input],
    tx: &crossbeam_channel::Sender<Chunk>,
    progress: &ProgressBar,
) -> io::Result<(Vec<FileRead>, u64)> {
    let mut seq = 0;
    let mut files = Vec::with_capacity(inputs.len());
    let mut skipped_total = 0;
    for (index, input) in inputs.iter().enumerate() {
        let mut raw = Hashing {
            inner: input.bytes(),
            hash: Sha256::new(),
            bytes: 0,
            failed: false,
            progress,
        };
        let mut skipped = 0;
        let mut send = |bytes: Vec<u8>, skipped: &mut u64| {
            let chunk = Chunk {
                seq,
                file: index,
                bytes,
                skipped: std::mem::take(skipped),
            };
            seq += 1;
            // The workers only stop early when the caller has gone; nothing to do then.
            tx.send(chunk).is_ok()
        };
        let read = if input.gzip {
            let mut gz = flate2::read::MultiGzDecoder::new(io::BufReader::new(&mut raw));
            cut_lines(&mut gz, &mut skipped, &mut send)
        } else {
            cut_lines(&mut raw, &mut skipped, &mut send)
        };
        let damage = match read {
            Ok(()) => None,
            // The file was read; what it held was not a whole gzip stream.
            Err(e) if input.gzip && !raw.failed => {
                progress.suspend(|| {
                    eprintln!(
                        "warning: {}: {e}: the lines before the damage were counted, the rest \
                         could not be read; the report names the file",
                        input.path.display()
                    );
                });
                Some(gzip_damage(&e).to_owned())
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", input.path.display()),
                ));
            }
        };
        skipped_total += skipped;
        // Drain the file to its end so the hash covers every byte (a gzip member may end early).
        io::copy(&mut raw, &mut io::sink())?;
        files.push(FileRead {
            bytes: raw.bytes,
            sha256: hex::encode(raw.hash.finalize()),
            damage,
        });
    }
    Ok((files, skipped_total))
}

/// What the report says of a gzip log that could not be read to its end.
fn gzip_damage(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "el archivo gzip termina antes de su final (está truncado); se contaron sus líneas hasta \
         ese punto"
    } else {
        "el archivo gzip está dañado a partir de cierto punto; se contaron sus líneas hasta ese \
         punto"
    }
}

/// Reads `from` to its end, handing blocks that end at a line end to `send`. When reading
/// fails, the whole lines read before are handed over first, and a line cut short by the
/// failure is counted in `skipped`.
fn cut_lines(
    from: &mut impl Read,
    skipped: &mut u64,
    send: &mut impl FnMut(Vec<u8>, &mut u64) -> bool,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(BLOCK);
    let mut skipping = false;
    loop {
        let filled = buf.len();
        // Reads into the spare capacity (no zeroing), up to a whole block; on an error, what
        // was read before it is in `buf`.
        let read = from
            .by_ref()
            .take((BLOCK - filled) as u64)
            .read_to_end(&mut buf);
        if skipping {
            match memchr::memchr(b'\n', &buf) {
                Some(at) => {
                    buf.drain(..=at);
                    skipping = false;
                }
                None => buf.clear(),
            }
        }
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                let whole = memchr::memrchr(b'\n', &buf).map_or(0, |at| at + 1);
                if whole < buf.len() {
                    *skipped += 1;
                }
                buf.truncate(whole);
                if !buf.is_empty() {
                    send(buf, skipped);
                }
                return Err(e);
            }
        };
        if n == 0 {
            if !buf.is_empty() {
                send(std::mem::take(&mut buf), skipped);
            }
            return Ok(());
        }
        match memchr::memrchr(b'\n', &buf) {
            Some(at) => {
                let rest = buf.split_off(at + 1);
                let block = std::mem::replace(&mut buf, Vec::with_capacity(BLOCK));
                buf.extend_from_slice(&rest);
                if !send(block, skipped) {
                    return Ok(());
                }
            }
            None if buf.len() >= BLOCK => {
                // One line fills a whole block: count it, skip to its end.
                *skipped += 1;
                buf.clear();
                skipping = true;
            }
            None => {}
        }
    }
}

/// A reader that hashes and counts what passes and moves the progress bar.
struct Hashing<'a, R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
    /// Whether reading the file itself failed (not what was made of its bytes).
    failed: bool,
    progress: &'a ProgressBar,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            self.failed |= e.kind() != io::ErrorKind::Interrupted;
        })?;
        let read = buf.get(..n).unwrap_or_default();
        self.hash.update(read);
        self.bytes += n as u64;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// A worker: parse blocks until the reader is done; return what it counted.
fn work(
    rx: &crossbeam_channel::Receiver<Chunk>,
    tx: &crossbeam_channel::Sender<Block>,
    rules: &Rules<'_>,
    files: usize,
) -> Tally {
    let mut tally = Tally {
        lines_per_file: vec![0; files],
        ..Tally::default()
    };
    let mut cache = AgentCache::default();
    let mut clock = Clock::new(rules.timezone.clone());
    for chunk in rx {
        tally.malformed += chunk.skipped;
        tally.lines += chunk.skipped;
        let block = parse_block(&chunk, rules, &mut tally, &mut cache, &mut clock);
        if tx.send(block).is_err() {
            break;
        }
    }
    tally
}

/// The readings a worker remembers, by agent fingerprint, each distinct reading held once
/// (both bounded to [`MAX_AGENT_CACHE`]).
#[derive(Default)]
struct AgentCache {
    by_print: HashMap<u128, Arc<Agent>, RandomState>,
    distinct: std::collections::HashSet<Arc<Agent>, RandomState>,
}

impl AgentCache {
    /// The reading of the agent with fingerprint `print`, read by `read` unless remembered.
    fn reading(&mut self, print: u128, read: impl FnOnce() -> Arc<Agent>) -> Arc<Agent> {
        if let Some(a) = self.by_print.get(&print) {
            return a.clone();
        }
        let a = read();
        let a = match self.distinct.get(&a) {
            Some(same) => same.clone(),
            None => {
                if self.distinct.len() < MAX_AGENT_CACHE {
                    self.distinct.insert(a.clone());
                }
                a
            }
        };
        if self.by_print.len() < MAX_AGENT_CACHE {
            self.by_print.insert(print, a.clone());
        }
        a
    }
}

/// What a block remembers of the texts it met, so each is read once per block.
#[derive(Default)]
struct Seen<'b> {
    /// A user agent's index in the block and its fingerprint.
    agents: HashMap<&'b [u8], (u32, [u8; 16]), RandomState>,
    referers: HashMap<&'b [u8], Option<u32>, RandomState>,
    hosts: HashMap<String, u32, RandomState>,
    paths: HashMap<&'b [u8], Served, RandomState>,
}

/// Parses one block: the additive counts go to `tally`, the requests to the returned block.
fn parse_block(
    chunk: &Chunk,
    rules: &Rules<'_>,
    tally: &mut Tally,
    cache: &mut AgentCache,
    clock: &mut Clock,
) -> Block {
    let mut block = Block {
        seq: chunk.seq,
        agents: Vec::new(),
        hosts: Vec::new(),
        hits: Vec::with_capacity(chunk.bytes.len() / 160),
    };
    let mut seen = Seen::default();
    let mut run = Run::default();
    let mut lines = 0;
    for raw in chunk.bytes.split(|&b| b == b'\n') {
        if raw.is_empty() {
            continue;
        }
        lines += 1;
        let Some(line) = logline::parse(raw) else {
            tally.malformed += 1;
            continue;
        };
        let Some(when) = clock.read(line.time) else {
            tally.malformed += 1;
            continue;
        };
        if rules
            .period
            .is_some_and(|(from, to)| when.at < from || when.at >= to)
        {
            tally.outside += 1;
            continue;
        }
        // A Common log has no user agent at all: its key cannot be a user agent's text
        // (a NUL never reaches a log line: every writer escapes it).
        let agent_text = if line.agent_recorded {
            line.agent.unwrap_or_default()
        } else {
            b"\0"
        };
        let (agent_id, print) = match seen.agents.get(agent_text) {
            Some(&known) => known,
            None => {
                let print = fingerprint(&[agent_text]);
                let agent = cache.reading(u128::from_be_bytes(print), || {
                    if line.agent_recorded {
                        rules.agents.classify(line.agent)
                    } else {
                        Agents::unrecorded()
                    }
                });
                let id = block.agents.len() as u32;
                block.agents.push(agent);
                seen.agents.insert(agent_text, (id, print));
                (id, print)
            }
        };
        let Some(agent) = block.agents.get(agent_id as usize) else {
            continue;
        };
        let bot = agent.bot.is_some();
        // What a person was sent (2xx, 3xx): the path as the server resolved it.
        let sent = (!bot && (200..400).contains(&line.status))
            .then(|| served(line.path, rules.pages, &mut seen.paths));
        let page = line.method == b"GET" && sent.is_some_and(|s| s.page);
        count(
            tally,
            &mut run,
            &line,
            &when,
            sent,
            page,
            agent,
            rules.details,
        );
        let host = line.referer.and_then(|r| {
            *seen.referers.entry(r).or_insert_with(|| {
                agents::referrer_host(r).map(|h| {
                    let next = seen.hosts.len() as u32;
                    *seen.hosts.entry(h).or_insert(next)
                })
            })
        });
        block.hits.push(Hit {
            visitor: u128::from_be_bytes(fingerprint(&[
                &client_key(line.client).to_be_bytes(),
                &print,
            ])),
            agent: agent_id,
            host,
            at: when.second,
            minute: when.minute,
            day: when.day,
            corte: rules.cortes.partition_point(|&live| live <= when.at) as u32,
            page,
            bot,
        });
    }
    run.flush(tally);
    tally.lines += lines;
    if let Some(n) = tally.lines_per_file.get_mut(chunk.file) {
        *n += lines;
    }
    let mut hosts: Vec<(String, u32)> = seen.hosts.into_iter().collect();
    hosts.sort_by_key(|h| h.1);
    block.hosts = hosts
        .into_iter()
        .map(|(h, _)| {
            let origin = agents::origin(Some(&h), rules.institute);
            (h.into(), origin)
        })
        .collect();
    block
}

/// The current second, minute and day's counts, added to the tally when the time moves on:
/// lines come in time order, so this saves three map lookups on almost every line.
#[derive(Default)]
struct Run {
    second: Option<(i64, u64)>,
    minute: Option<(i64, MinuteTally)>,
    day: Option<(Date, DayTally)>,
}

impl Run {
    fn flush(&mut self, tally: &mut Tally) {
        if let Some((second, n)) = self.second.take() {
            *tally.seconds.entry(second).or_default() += n;
        }
        if let Some((minute, m)) = self.minute.take() {
            tally.add_minute(minute, m);
        }
        if let Some((day, d)) = self.day.take() {
            tally.add_day(day, d);
        }
    }

    fn second(&mut self, tally: &mut Tally, second: i64) -> &mut u64 {
        if self.second.as_ref().is_some_and(|s| s.0 != second)
            && let Some((s, n)) = self.second.take()
        {
            *tally.seconds.entry(s).or_default() += n;
        }
        &mut self.second.get_or_insert((second, 0)).1
    }

    fn minute(&mut self, tally: &mut Tally, minute: i64) -> &mut MinuteTally {
        if self.minute.as_ref().is_some_and(|m| m.0 != minute)
            && let Some((m, counts)) = self.minute.take()
        {
            tally.add_minute(m, counts);
        }
        &mut self
            .minute
            .get_or_insert_with(|| (minute, MinuteTally::empty()))
            .1
    }

    fn day(&mut self, tally: &mut Tally, day: Date) -> &mut DayTally {
        if self.day.as_ref().is_some_and(|d| d.0 != day)
            && let Some((d, counts)) = self.day.take()
        {
            tally.add_day(d, counts);
        }
        &mut self.day.get_or_insert((day, DayTally::default())).1
    }
}

/// Adds one request's additive counts; `served` is what a person was sent, when it was.
#[allow(clippy::too_many_arguments)]
fn count(
    tally: &mut Tally,
    run: &mut Run,
    line: &Line<'_>,
    when: &When,
    served: Option<&Served>,
    page: bool,
    agent: &Agent,
    details: bool,
) {
    tally.hits += 1;
    tally.bytes += line.bytes;
    tally.bot_hits += u64::from(agent.bot.is_some());
    tally.pages += u64::from(page);
    let day = run.day(tally, when.day);
    day.hits += 1;
    day.bytes += line.bytes;
    day.pages += u64::from(page);
    if !details {
        return;
    }
    let class = match line.status {
        429 => Status::Throttled,
        100..=199 => Status::Info,
        200..=299 => Status::Ok,
        300..=399 => Status::Redirect,
        400..=499 => Status::ClientError,
        500..=599 => Status::ServerError,
        _ => Status::Other,
    };
    tally.statuses[class as usize] += 1;
    if line.protocol.is_empty() {
        tally.protocols.add(b"(sin protocolo)", 1);
    } else {
        tally.protocols.add(line.protocol, 1);
    }
    if line.elapsed_ms.is_some() {
        tally.timed = true;
        tally
            .encodings
            .add(line.encoding.unwrap_or(b"identidad"), 1);
    }
    if let Some(name) = &agent.bot {
        tally.bots.add(name.as_bytes(), 1);
    } else if let Some(served) = served {
        if page {
            tally.page_paths.add(&served.name, 1);
        }
        if served.name.starts_with(b"/datos/") {
            tally.downloads.add(&served.name, 1);
        }
    }
    let minute = run.minute(tally, when.minute);
    minute.hits += 1;
    minute.pages += u64::from(page);
    minute.ok += u64::from((200..400).contains(&line.status));
    minute.errors += u64::from((500..600).contains(&line.status));
    minute.throttled += u64::from(line.status == 429);
    if let Some(ms) = line.elapsed_ms {
        minute
            .times
            .get_or_insert_with(|| Box::new(new_histogram()))
            .saturating_record(u64::from(ms));
    }
    *run.second(tally, when.second) += 1;
}

/// A response status class, as the report counts them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Status {
    /// 1xx.
    Info,
    /// 2xx.
    Ok,
    /// 3xx.
    Redirect,
    /// 4xx but 429.
    ClientError,
    /// 429.
    Throttled,
    /// 5xx.
    ServerError,
    /// Anything else.
    Other,
}

impl Status {
    /// Every class, in the report's order.
    pub(crate) const ALL: [Self; 7] = [
        Self::Info,
        Self::Ok,
        Self::Redirect,
        Self::ClientError,
        Self::Throttled,
        Self::ServerError,
        Self::Other,
    ];

    /// The report's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Info => "1xx",
            Self::Ok => "2xx",
            Self::Redirect => "3xx",
            Self::ClientError => "4xx (sin 429)",
            Self::Throttled => "429",
            Self::ServerError => "5xx",
            Self::Other => "otro",
        }
    }
}

/// The bytes a served path's name percent-encodes again once decoded: controls, `%` and
/// everything outside ASCII, so the name is ASCII, one per path, and holds no direction mark.
const NAME_ENCODED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// A requested path as the server resolved it.
struct Served {
    /// The path the report counts it under: the server's reading of it (`//`, `.` segments
    /// collapsed, percent-encoding decoded; see [`crate::http::normalise`]) with
    /// [`NAME_ENCODED`] encoded again, or the path as logged when the server could not read
    /// it (another server's log).
    name: Box<[u8]>,
    /// Whether that path is a page (it matches the page globs).
    page: bool,
}

/// What `path` was served as; `known` remembers each path's answer for the block, so a
/// spelling the client makes up costs a block, not the report.
fn served<'s, 'b>(
    path: &'b [u8],
    pages: &GlobSet,
    known: &'s mut HashMap<&'b [u8], Served, RandomState>,
) -> &'s Served {
    known.entry(path).or_insert_with(|| {
        match std::str::from_utf8(path)
            .ok()
            .and_then(crate::http::normalise)
        {
            Some(resolved) => Served {
                page: pages.is_match(&resolved),
                name: percent_encoding::utf8_percent_encode(&resolved, NAME_ENCODED)
                    .to_string()
                    .into_bytes()
                    .into(),
            },
            None => Served {
                page: std::str::from_utf8(path).is_ok_and(|p| pages.is_match(p)),
                name: path.into(),
            },
        }
    })
}

/// The first 128 bits of a SHA-256 of `parts`, each preceded by its length: what a user agent
/// or a visitor is known by instead of its text (two differ when their texts do).
fn fingerprint(parts: &[&[u8]]) -> [u8; 16] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash.finalize()[..16]);
    first
}

/// A client address as a 128-bit key: an IP address as IPv6 (IPv4 mapped), anything else
/// (a host name) by the first 16 bytes of its SHA-256.
fn client_key(client: &[u8]) -> u128 {
    match std::str::from_utf8(client)
        .ok()
        .and_then(|c| c.parse::<std::net::IpAddr>().ok())
    {
        Some(std::net::IpAddr::V4(v4)) => u128::from(v4.to_ipv6_mapped()),
        Some(std::net::IpAddr::V6(v6)) => u128::from(v6),
        None => {
            let digest = Sha256::digest(client);
            let mut first = [0u8; 16];
            first.copy_from_slice(&digest[..16]);
            u128::from_be_bytes(first)
        }
    }
}

/// A request time, read.
#[derive(Debug, Clone, Copy)]
struct When {
    at: Timestamp,
    second: i64,
    minute: i64,
    day: Date,
}

/// Reads log times; a line with the same time text as the one before costs a comparison.
struct Clock {
    timezone: TimeZone,
    last: Vec<u8>,
    when: Option<When>,
}

impl Clock {
    fn new(timezone: TimeZone) -> Self {
        Self {
            timezone,
            last: Vec::new(),
            when: None,
        }
    }

    fn read(&mut self, text: &[u8]) -> Option<When> {
        if self.last != text {
            self.last.clear();
            self.last.extend_from_slice(text);
            self.when = jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", text)
                .and_then(|t| t.to_timestamp())
                .ok()
                .map(|at| When {
                    at,
                    second: at.as_second(),
                    minute: at.as_second().div_euclid(60),
                    day: at.to_zoned_datetime(self.timezone.clone()).date(),
                });
        }
        self.when
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_whole_and_an_endless_line_is_skipped_not_buffered() {
        let mut text = b"a\nb\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', BLOCK * 3));
        text.extend_from_slice(b"\nc\nd");
        let mut blocks = Vec::new();
        let mut skipped = 0;
        cut_lines(&mut &text[..], &mut skipped, &mut |b, s| {
            blocks.push((b, *s));
            *s = 0;
            true
        })
        .unwrap();
        let lines: Vec<&[u8]> = blocks
            .iter()
            .flat_map(|(b, _)| b.split(|&c| c == b'\n'))
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines, [&b"a"[..], b"b", b"c", b"d"]);
        assert_eq!(blocks.iter().map(|b| b.1).sum::<u64>() + skipped, 1);
        assert!(blocks.iter().all(|(b, _)| b.len() <= BLOCK));
    }

    #[test]
    fn clients_are_keyed_by_address_and_names_by_hash() {
        assert_eq!(client_key(b"192.0.2.1"), client_key(b"::ffff:192.0.2.1"));
        assert_ne!(client_key(b"host.example"), client_key(b"other.example"));
        assert_eq!(client_key(b"host.example"), client_key(b"host.example"));
    }
}
