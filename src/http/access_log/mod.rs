//! The access log: one line per public request, in Combined Log Format, written off the
//! request path (R6.1, R6.2).
//!
//! Requests hand a [`Record`] to a bounded queue and go on; one writer thread of its own
//! (`access-log`, never one of the async threads that serve visitors) wakes every
//! [`TICK`], takes what is queued, formats it and writes the lines to
//! `<log_dir>/access.log` with one write. It is never woken per record: a request pays for
//! a lock-free push and nothing else (no futex, no context switch). At local
//! midnight (in `timezone`) the file is closed and gzipped to `access-YYYY-MM-DD.log.gz`,
//! as it is at start when it was last written on another day; [`file`](mod@file) owns the file, its
//! name and its rotation.
//!
//! Format: `combined` is exactly what GoAccess, AWStats and every log tool read as
//! COMBINED; `extended` appends the request time in seconds, the corte id and the content
//! encoding as three more fields.
//!
//! # Guarantees
//! - A request never waits for the disk.
//! - No line is lost silently: when the queue is full the line is counted, and the writer
//!   journals how many were lost, once per second at most, as a `warning` event; the count
//!   is also in `/status`.
//! - Lines the file refuses (a full disk) are held, up to [`MAX_HELD`] bytes, and written
//!   from the byte where the write stopped once it takes them again: no line is cut, merged
//!   or written twice. Past that, lines are counted lost as above. The run of refusals is
//!   journaled when it begins and logged when it begins, once a minute and when it ends.
//! - Lines go to the file named `access.log`, whoever moved or removed the one before, and a
//!   rotation never overwrites an earlier day's log (see [`file`](mod@file)).
//! - Text from the client (request line, Referer, User-Agent) is escaped: `"`, `\` and
//!   bytes outside printable ASCII are written as `\xHH`, so a line cannot be forged.
//! - A line is a few KiB at most, whatever the client sends: each of those three fields
//!   keeps its first [`MAX_FIELD_BYTES`] bytes and is marked cut ([`clipped`]). Over HTTP/2 a
//!   header sent once can be named again with one byte; without the cut, a visitor could
//!   make kilobytes of log per byte it sends.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use http::HeaderValue;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;
use tokio::sync::watch;

use crate::journal::{EventKind, Journal};
use crate::metrics::Coding;

mod file;

use file::LogFile;
pub(crate) use file::Rotated;

/// How many records may wait for the writer.
const QUEUE: usize = 65_536;
/// How often the writer takes what is queued and writes it: the longest a line waits. The
/// queue holds [`QUEUE`] records, so lines are lost only past 1.3 million requests a second.
const TICK: Duration = Duration::from_millis(50);

pub(crate) use crate::config::LogFormat;

/// What is logged of one request.
#[derive(Debug)]
pub(crate) struct Record {
    /// Client address (after trusted proxies, when configured).
    pub(crate) client: IpAddr,
    /// When the request arrived.
    pub(crate) at: Timestamp,
    /// Method, target and version, as received ([`request_field`]).
    pub(crate) request: String,
    /// Response status.
    pub(crate) status: u16,
    /// Body bytes sent (Content-Length of the response).
    pub(crate) bytes: u64,
    /// Referer header, its bytes as received (any byte outside printable ASCII is logged as
    /// `\xHH`, so two different headers never give the same line), [`clipped`].
    pub(crate) referer: Option<Vec<u8>>,
    /// User-Agent header, its bytes as received, [`clipped`].
    pub(crate) user_agent: Option<Vec<u8>>,
    /// Time to build the response.
    pub(crate) elapsed: Duration,
    /// Corte served, if any (the response's `X-PREP-Corte`, shared with the site).
    pub(crate) corte: Option<HeaderValue>,
    /// Content coding sent.
    pub(crate) encoding: Coding,
}

/// The most bytes of a client's text one field of a line keeps (the request, Referer,
/// User-Agent). Real browsers' User-Agent is under 400 bytes, and a target past this is
/// a 404 or a 414 whose first KiB says what it was.
pub(crate) const MAX_FIELD_BYTES: usize = 1024;
/// What ends a field cut at [`MAX_FIELD_BYTES`].
const CUT: &[u8] = b"...";

/// The bytes of a header to log: `text` itself, or its first [`MAX_FIELD_BYTES`] followed
/// by `...`.
pub(crate) fn clipped(text: &[u8]) -> Vec<u8> {
    match text.get(..MAX_FIELD_BYTES) {
        Some(head) if text.len() > MAX_FIELD_BYTES => [head, CUT].concat(),
        _ => text.to_vec(),
    }
}

/// The request field of a line: `method target version`, the method and the target each
/// cut as [`clipped`] is, before a character rather than within one.
pub(crate) fn request_field(method: &str, target: &str, version: http::Version) -> String {
    let mut field = String::with_capacity(target.len().min(MAX_FIELD_BYTES) + 24);
    for part in [method, target] {
        let end = (0..=MAX_FIELD_BYTES.min(part.len()))
            .rev()
            .find(|&at| part.is_char_boundary(at))
            .unwrap_or(0);
        field.push_str(part.get(..end).unwrap_or_default());
        if end < part.len() {
            field.push_str("...");
        }
        field.push(' ');
    }
    let _ = std::fmt::Write::write_fmt(&mut field, format_args!("{version:?}"));
    field
}

/// The request side: cheap to clone, never blocks.
#[derive(Clone)]
pub(crate) struct AccessLog {
    tx: mpsc::SyncSender<Record>,
    lost: Arc<AtomicU64>,
}

impl AccessLog {
    /// Queues a record; counts it as lost if the writer is too far behind.
    pub(crate) fn log(&self, record: Record) {
        if self.tx.try_send(record).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines lost since start.
    pub(crate) fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// Where and how the writer writes.
pub(crate) struct Writer {
    /// Folder of the logs.
    pub(crate) dir: PathBuf,
    /// Line format.
    pub(crate) format: LogFormat,
    /// Time zone of the timestamps and of the daily rotation.
    pub(crate) timezone: TimeZone,
    /// Where lost lines are reported.
    pub(crate) journal: Arc<Journal>,
}

/// Starts the writer thread; it runs until `shutdown`, then writes what is queued and stops.
pub(crate) fn start(
    writer: Writer,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(AccessLog, std::thread::JoinHandle<()>)> {
    std::fs::create_dir_all(&writer.dir)?;
    // Opened here, so that a log that cannot be written stops the start instead of leaving
    // the server serving with no record of it.
    let file = LogFile::open(&writer.dir)?;
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let lost = Arc::new(AtomicU64::new(0));
    let log = AccessLog {
        tx,
        lost: lost.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || run(&writer, file, &rx, &lost, &shutdown))?;
    Ok((log, thread))
}

fn run(
    writer: &Writer,
    mut file: LogFile,
    rx: &mpsc::Receiver<Record>,
    lost: &AtomicU64,
    shutdown: &watch::Receiver<bool>,
) {
    // The day of the lines already in `access.log`: a server started after midnight rotates
    // at once the log it left the day before.
    let mut day = file
        .last_written()
        .unwrap_or_else(Timestamp::now)
        .to_zoned_datetime(writer.timezone.clone())
        .date();
    let mut reported_lost = 0;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut stamp = Stamp::default();
    let mut refused = Refused::default();
    // A line is formatted while fewer than `MAX_HELD` bytes wait to be written; past that,
    // it is counted lost.
    let mut take = |record: &Record, buf: &mut Vec<u8>| {
        if buf.len() < MAX_HELD {
            format_line(record, writer.format, &writer.timezone, &mut stamp, buf);
        } else {
            lost.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        let mut gone = false;
        loop {
            match rx.try_recv() {
                Ok(record) => take(&record, &mut buf),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        // Once told to stop, one more round takes what the last requests queued.
        let stopping = gone || *shutdown.borrow();
        if stopping {
            while let Ok(record) = rx.try_recv() {
                take(&record, &mut buf);
            }
        }
        if !buf.is_empty() {
            let path = file.path().to_owned();
            refused.write_out(
                file.current(&writer.journal),
                &mut buf,
                &path,
                &writer.journal,
            );
        }
        let now_lost = lost.load(Ordering::Relaxed);
        if now_lost > reported_lost {
            writer.journal.post(
                EventKind::Warning,
                None,
                json!({"warning": format!(
                    "{} access log lines lost: the writer fell behind, or the file refused \
                     them for longer than {} MiB of lines could be held",
                    now_lost - reported_lost,
                    MAX_HELD >> 20
                )}),
            );
            reported_lost = now_lost;
        }
        let today = Timestamp::now()
            .to_zoned_datetime(writer.timezone.clone())
            .date();
        if today != day {
            file.rotate(day, &writer.journal);
            day = today;
        }
        if stopping {
            file.sync();
            if !buf.is_empty() {
                let lines = buf.iter().filter(|b| **b == b'\n').count();
                tracing::error!(
                    lines,
                    path = %file.path().display(),
                    "stopping with access log lines the file still refused; they are lost"
                );
            }
            return;
        }
        std::thread::sleep(TICK);
    }
}

/// Most bytes of lines held while `access.log` refuses them (a full disk): about 80,000
/// lines. Past it, lines are counted lost, and journaled as such, instead of held.
const MAX_HELD: usize = 16 << 20;

/// How often a run of refused writes is said again while it lasts.
const REFUSED_SAID_EVERY: Duration = Duration::from_secs(60);

/// The run of writes `access.log` refused, if one is going on: when it was last said.
#[derive(Default)]
struct Refused {
    said: Option<Instant>,
}

impl Refused {
    /// Writes what `buf` holds to `file`, as much as the file takes. What it refuses stays
    /// in `buf` from the exact byte where the write stopped, to be written at the next tick,
    /// so that no line is lost, cut or written twice while the disk is full for a while. A
    /// run of refusals is logged when it begins (and journaled), once a minute while it
    /// lasts, and when it ends.
    fn write_out(
        &mut self,
        file: &mut std::fs::File,
        buf: &mut Vec<u8>,
        path: &Path,
        journal: &Journal,
    ) {
        let mut done = 0;
        let mut failed = None;
        while done < buf.len() {
            match file.write(&buf[done..]) {
                Ok(0) => {
                    failed = Some(std::io::Error::from(std::io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        buf.drain(..done);
        let now = Instant::now();
        match (failed, self.said) {
            (None, None) => {}
            (None, Some(_)) => {
                self.said = None;
                tracing::warn!(path = %path.display(), "the access log is written again, with the lines held meanwhile");
            }
            (Some(e), None) => {
                self.said = Some(now);
                let warning = format!(
                    "cannot write the access log {}: {e}; its lines are held (up to {} MiB) \
                     and written once it can be written again",
                    path.display(),
                    MAX_HELD >> 20
                );
                tracing::error!("{warning}");
                journal.post(EventKind::Warning, None, json!({"warning": warning}));
            }
            (Some(e), Some(said)) if now.duration_since(said) >= REFUSED_SAID_EVERY => {
                self.said = Some(now);
                tracing::error!(error = %e, held_bytes = buf.len(), path = %path.display(), "still cannot write the access log");
            }
            (Some(_), Some(_)) => {}
        }
    }
}

/// The last second written as a log timestamp, and its text: lines of the same second
/// (nearly all of them, under load) reuse it instead of converting and formatting again.
#[derive(Default)]
struct Stamp {
    second: Option<i64>,
    text: String,
}

impl Stamp {
    /// `at` as `02/Jun/2024:20:15:00 -0600` in `tz`.
    fn of(&mut self, at: Timestamp, tz: &TimeZone) -> &str {
        let second = at.as_second();
        if self.second != Some(second) {
            self.text.clear();
            let zoned = at.to_zoned_datetime(tz.clone());
            let _ = std::fmt::Write::write_fmt(
                &mut self.text,
                format_args!("{}", zoned.strftime("%d/%b/%Y:%H:%M:%S %z")),
            );
            self.second = Some(second);
        }
        &self.text
    }
}

/// Appends one line for `r` to `out`.
fn format_line(r: &Record, format: LogFormat, tz: &TimeZone, stamp: &mut Stamp, out: &mut Vec<u8>) {
    let _ = write!(out, "{} - - [{}] \"", r.client, stamp.of(r.at, tz));
    escape(&r.request, out);
    let _ = write!(out, "\" {} {} \"", r.status, r.bytes);
    escape_bytes(r.referer.as_deref().unwrap_or(b"-"), out);
    out.extend_from_slice(b"\" \"");
    escape_bytes(r.user_agent.as_deref().unwrap_or(b"-"), out);
    out.push(b'"');
    if format == LogFormat::Extended {
        let _ = write!(out, " {:.3} ", r.elapsed.as_secs_f64());
        match &r.corte {
            Some(corte) => escape_bytes(corte.as_bytes(), out),
            None => out.push(b'-'),
        }
        out.extend_from_slice(match r.encoding {
            Coding::Br => b" br",
            Coding::Gzip => b" gzip",
            Coding::Identity => b" -",
        });
    }
    out.push(b'\n');
}

fn escape(text: &str, out: &mut Vec<u8>) {
    escape_bytes(text.as_bytes(), out);
}

/// Writes `text` for a quoted log field: printable ASCII as it is, except `"` and `\`, and
/// every other byte as `\xHH`; runs of plain bytes are copied whole.
fn escape_bytes(mut text: &[u8], out: &mut Vec<u8>) {
    let needs_escape = |b: &u8| !matches!(b, 0x20..=0x7e) || *b == b'"' || *b == b'\\';
    while let Some(at) = text.iter().position(needs_escape) {
        let (plain, rest) = text.split_at(at);
        out.extend_from_slice(plain);
        let Some((b, rest)) = rest.split_first() else {
            break;
        };
        let _ = write!(out, "\\x{b:02X}");
        text = rest;
    }
    out.extend_from_slice(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            client: "203.0.113.7".parse().unwrap(),
            at: "2024-06-03T02:15:00Z".parse().unwrap(),
            request: "GET /json/main.json?x=\"1\" HTTP/1.1".to_owned(),
            status: 200,
            bytes: 527,
            referer: None,
            user_agent: Some("Mozilla/5.0 (ñ)".as_bytes().to_vec()),
            elapsed: Duration::from_micros(1500),
            corte: Some(HeaderValue::from_static("20240602_2015")),
            encoding: Coding::Identity,
        }
    }

    #[test]
    fn every_byte_is_escaped_or_kept_between_plain_ones() {
        for b in 0..=u8::MAX {
            let mut out = Vec::new();
            escape_bytes(&[b'a', b, b, b'z'], &mut out);
            let one = if (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\' {
                (b as char).to_string()
            } else {
                format!("\\x{b:02X}")
            };
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("a{one}{one}z"),
                "byte {b}"
            );
        }
    }

    #[test]
    fn lines_are_combined_log_format_with_hostile_text_escaped() {
        let tz = TimeZone::get("America/Mexico_City").unwrap();
        let mut out = Vec::new();
        format_line(
            &record(),
            LogFormat::Combined,
            &tz,
            &mut Stamp::default(),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "203.0.113.7 - - [02/Jun/2024:20:15:00 -0600] \"GET /json/main.json?x=\\x221\\x22 HTTP/1.1\" 200 527 \"-\" \"Mozilla/5.0 (\\xC3\\xB1)\"\n"
        );
        let mut out = Vec::new();
        format_line(
            &record(),
            LogFormat::Extended,
            &tz,
            &mut Stamp::default(),
            &mut out,
        );
        assert!(
            String::from_utf8(out)
                .unwrap()
                .ends_with("\" 0.002 20240602_2015 -\n")
        );
    }
}
