//! Checking one server against what it must serve: its TLS handshake, then every expected
//! file fetched and compared byte for byte, `main.json`'s headers, and the corte it shows.
//!
//! # Guarantees
//! - Polite: at most `concurrency` requests at once to a server, each within the timeout;
//!   `main.json` is asked first and once.
//! - A file is `equal` only when the server answered 200 with exactly the package's bytes
//!   once decoded. Under `--embargo` an answer with exactly those bytes is a `leak` whatever
//!   its status (a browser shows a 403's or a 404's body as a 200's; an empty file only in a
//!   200), and every other answer passes.
//!   Under `--embargo` redirects are followed as a visitor's browser follows them, and the
//!   answer at their end is the one judged: a redirect proves nothing withheld, and one that
//!   leads to the package's bytes is a leak.
//! - Addresses are built by segments from the package's member paths (each percent-encoded),
//!   so a member name cannot point a request outside the site's address.
//! - Given a deadline, the check ends by it whatever the server does: a request not answered
//!   by then is abandoned, none is started after it, and each file left without an answer is
//!   an error, with a finding that says the check did not end in time.
//! - A served header value is judged whole and shown at most [`MAX_SHOWN_HEADER_CHARS`]
//!   characters long, its control and bidirectional characters escaped: what a server sends
//!   cannot swell a report or the observation log's rows.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt as _, stream};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName};
use tokio::time::Instant;

use super::expected::{Expected, File};
use super::fetch::{Answer, Fetcher};
use super::report::{CacheControl, FileReport, HeaderCheck, MAIN_CACHE_CONTROL, Outcome, Report};
use super::served::served_corte;
use crate::hash::Sha256;
use crate::peer_text::{PeerText, is_control_or_bidi};

/// Most bytes of a `main.json` the package does not carry that are read for its corte.
const MAX_UNKNOWN_MAIN: u64 = 4 * 1024 * 1024;

/// A server to check.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// What reports call it.
    pub(super) name: String,
    /// The site's address, ending in `/`.
    pub(super) url: Url,
    /// Headers `main.json`'s answer must carry.
    pub(super) headers: Vec<HeaderRule>,
}

/// A header an answer must carry, with the value it must have when one is given.
#[derive(Debug, Clone)]
pub(super) struct HeaderRule {
    /// Its name.
    pub(super) name: HeaderName,
    /// Its name as the targets file writes it, for reports.
    pub(super) written: String,
    /// Its exact value, or `None` for any.
    pub(super) value: Option<String>,
}

impl HeaderRule {
    /// `Name: value` (the value must be equal) or `Name` (it must be present).
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let (name, value) = match text.split_once(':') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
            None => (text.trim(), None),
        };
        if text.chars().any(is_control_or_bidi) {
            return Err(format!(
                "\"{}\" holds a control or bidirectional formatting character",
                PeerText(text)
            ));
        }
        let written = name.to_owned();
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{text:?} is not `Name: value` or `Name`"))?;
        Ok(Self {
            name,
            written,
            value,
        })
    }
}

/// When a check must end, and how to say it when it did not.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    /// The instant.
    pub(super) at: Instant,
    /// How long the check had (for the finding).
    pub(super) allowed: Duration,
    /// Whether it bounds a whole check (`--max-time`), not one period of a watch
    /// (`--period-timeout`).
    pub(super) whole: bool,
}

impl Deadline {
    /// A file's error when this deadline came before its answer.
    fn late_file(self) -> &'static str {
        if self.whole {
            "no llegó antes del plazo de la verificación (--max-time)"
        } else {
            "no llegó antes del plazo del periodo"
        }
    }

    /// The finding of a check cut by this deadline, `unanswered` of `files` left without
    /// answer.
    fn finding(self, unanswered: usize, files: usize) -> String {
        let (of, flag) = if self.whole {
            ("", "--max-time")
        } else {
            (" de un periodo", "--period-timeout")
        };
        format!(
            "la verificación no terminó en el plazo de {} s{of} ({flag}): {unanswered} de \
             {files} archivos sin respuesta a tiempo",
            self.allowed.as_secs_f64()
        )
    }
}

/// How every server is checked.
pub(super) struct Checker {
    /// The HTTP client.
    pub(super) fetcher: Fetcher,
    /// The TLS configuration of the handshake probe.
    pub(super) tls: Arc<rustls::ClientConfig>,
    /// Longest wait for one answer or handshake.
    pub(super) timeout: Duration,
    /// Most requests at once to one server.
    pub(super) concurrency: usize,
    /// Nothing may be served: before the start.
    pub(super) embargo: bool,
    /// Where `main.json` is (`json/main.json`).
    pub(super) main_path: String,
    /// The institute's time zone.
    pub(super) timezone: TimeZone,
    /// The corte the servers must show, when given instead of the package's.
    pub(super) expect_corte: Option<String>,
}

impl Checker {
    /// Checks `target` against `expected`, ending by `deadline` when one is given.
    pub(super) async fn check(
        &self,
        target: &Target,
        expected: &Expected,
        deadline: Option<Deadline>,
    ) -> Report {
        let started = Timestamp::now();
        let mut report = Report::new(
            &target.name,
            target.url.as_str(),
            rfc3339(started, &self.timezone),
            self.embargo,
        );
        report.package = Some(expected.package.clone());
        let expected_corte = self
            .expect_corte
            .clone()
            .unwrap_or_else(|| expected.corte.clone());
        report.expected_corte = Some(expected_corte.clone());
        if target.url.scheme() == "https" {
            let probe = super::tls::probe(&target.url, self.tls.clone(), self.timeout);
            match by(deadline, probe).await {
                Some(Ok(info)) => report.tls = Some(info),
                Some(Err(why)) => return report.unchecked(format!("TLS: {why}")),
                None => {
                    let files = expected.files.len();
                    let mut report = report.unchecked(late(deadline, files, files));
                    report.unfinished = true;
                    return report;
                }
            }
        }
        let main_file = expected.file(&self.main_path);
        let main = self
            .get(
                &address(&target.url, &self.main_path),
                main_file.map_or(MAX_UNKNOWN_MAIN, |f| f.bytes.len() as u64),
                deadline,
            )
            .await;
        let main_late = main.as_ref().is_err_and(Unanswered::is_late);
        let main = main.map_err(|e| e.to_string());
        let judged = self.fetch_all(target, expected, deadline).await;
        let mut seen = Vec::new();
        for (file, judged) in expected.files.iter().zip(judged) {
            match judged {
                Some((file_report, answered)) => {
                    report.files.push(file_report);
                    seen.extend(answered);
                }
                None => report.files.push(judge(file, &main, self.embargo)),
            }
        }
        // Only the files the deadline cut: one refused or failed for itself is no late one.
        let late_file = deadline.map(Deadline::late_file);
        let cut = report
            .files
            .iter()
            .filter(|f| f.error.is_some() && f.error.as_deref() == late_file)
            .count();
        if main_late || cut > 0 {
            report
                .findings
                .push(late(deadline, cut, report.files.len()));
            report.unfinished = true;
        }
        let main_ok = main.as_ref().ok().filter(|a| a.status == 200);
        let main_seen = main.as_ref().ok().map(Seen::of);
        report.http_version = main_seen
            .iter()
            .chain(&seen)
            .next()
            .map(|s| version_name(s.version).to_owned());
        if !self.embargo {
            let header = main_seen
                .iter()
                .chain(&seen)
                .find_map(|s| s.corte.as_deref());
            let main_body = main_ok.filter(|a| a.complete).map(|a| a.body.as_slice());
            if let Some((corte, seen)) =
                served_corte(header, main_body, &expected.main_cortes, &self.timezone)
            {
                report.stale = corte != expected_corte;
                report.served_corte = Some(corte);
                report.served_corte_source = Some(seen);
            }
            report.main_cache_control = main_ok.map(|a| {
                let served = joined(&a.headers, "cache-control");
                CacheControl {
                    path: self.main_path.clone(),
                    ok: served.as_deref() == Some(MAIN_CACHE_CONTROL),
                    served: served.map(shortened),
                }
            });
        }
        let main_headers = main.as_ref().ok().map(|a| &a.headers);
        report.headers = target
            .headers
            .iter()
            .map(|rule| {
                let served = main_headers.and_then(|h| joined(h, rule.name.as_str()));
                HeaderCheck {
                    name: rule.written.clone(),
                    ok: served.is_some()
                        && (rule.value.is_none() || rule.value.as_deref() == served.as_deref()),
                    expected: rule.value.clone(),
                    served: served.map(shortened),
                }
            })
            .collect();
        report.conclude();
        // A whole check cut short could not be made, whatever it found before.
        if report.unfinished && deadline.is_some_and(|d| d.whole) {
            report.result = super::report::Verdict::Unchecked;
            report.exit = report.result.exit();
        }
        report
    }

    /// Every expected file but `main.json` (`None` in its place) fetched and judged, at most
    /// `concurrency` at once, in order; each body is dropped once judged, so a site is held
    /// once.
    async fn fetch_all(
        &self,
        target: &Target,
        expected: &Expected,
        deadline: Option<Deadline>,
    ) -> Vec<Option<(FileReport, Option<Seen>)>> {
        stream::iter(&expected.files)
            .map(|file| async move {
                if file.path == self.main_path {
                    return None;
                }
                let url = address(&target.url, &file.path);
                let answer = self
                    .get(&url, file.bytes.len() as u64, deadline)
                    .await
                    .map_err(|e| e.to_string());
                let seen = answer.as_ref().ok().map(Seen::of);
                Some((judge(file, &answer, self.embargo), seen))
            })
            .buffered(self.concurrency)
            .collect()
            .await
    }

    /// One GET by the deadline: none is sent once it has passed, and one not answered by it
    /// is abandoned.
    async fn get(
        &self,
        url: &Url,
        expected: u64,
        deadline: Option<Deadline>,
    ) -> Result<Answer, Unanswered> {
        match by(deadline, self.fetcher.get(url, expected)).await {
            Some(answer) => answer.map_err(Unanswered::Failed),
            None => Err(Unanswered::Late(deadline.map_or("", Deadline::late_file))),
        }
    }
}

/// Why a request has no answer.
enum Unanswered {
    /// The transport's reason, in words.
    Failed(String),
    /// The check's deadline came first (the file's error, in words).
    Late(&'static str),
}

impl Unanswered {
    fn is_late(&self) -> bool {
        matches!(self, Self::Late(_))
    }
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(why) => f.write_str(why),
            Self::Late(why) => f.write_str(why),
        }
    }
}

/// `work` if it ends by `deadline` (`None` when it did not, or the deadline had passed before
/// it began, and then it is never started).
async fn by<F: Future>(deadline: Option<Deadline>, work: F) -> Option<F::Output> {
    let Some(deadline) = deadline else {
        return Some(work.await);
    };
    if Instant::now() >= deadline.at {
        return None;
    }
    tokio::time::timeout_at(deadline.at, work).await.ok()
}

/// The finding of a check cut by its deadline, `unanswered` of `files` left without answer.
fn late(deadline: Option<Deadline>, unanswered: usize, files: usize) -> String {
    deadline.map_or_else(
        || format!("{unanswered} de {files} archivos sin respuesta a tiempo"),
        |d| d.finding(unanswered, files),
    )
}

/// What an answer says besides its body: the corte it names and its HTTP version.
struct Seen {
    corte: Option<String>,
    version: reqwest::Version,
}

impl Seen {
    fn of(answer: &Answer) -> Self {
        Self {
            corte: answer
                .headers
                .get("x-prep-corte")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            version: answer.version,
        }
    }
}

/// What became of `file` given the server's `answer`; under `embargo`, served bytes are a
/// leak and anything else passes.
fn judge(file: &File, answer: &Result<Answer, String>, embargo: bool) -> FileReport {
    let mut report = FileReport {
        path: file.path.clone(),
        status: None,
        result: Outcome::Error,
        millis: None,
        encoding: None,
        expected_sha256: file.sha256.to_hex(),
        served_sha256: None,
        first_difference: None,
        error: None,
    };
    let answer = match answer {
        Ok(a) => a,
        Err(why) => {
            report.error = Some(why.clone());
            return report;
        }
    };
    report.status = Some(answer.status);
    report.millis = Some(answer.millis);
    report.encoding = answer.encoding.clone();
    report.served_sha256 = answer.complete.then(|| Sha256::of(&answer.body).to_hex());
    let same = answer.complete && answer.body == file.bytes;
    let ok = answer.status == 200;
    report.result = match (ok, same, embargo) {
        (true, true, false) => Outcome::Equal,
        (true, false, false) => {
            report.first_difference = Some(first_difference(&file.bytes, &answer.body));
            Outcome::Different
        }
        (false, _, false) => Outcome::Missing,
        // A browser shows the body of a 403 or a 404 as it shows a 200's, and a page's
        // script reads it alike: the file's bytes under any status are out. An empty file
        // tells nothing, and an empty refusal is not taken for it.
        (_, true, true) if ok || !file.bytes.is_empty() => Outcome::Leak,
        (_, _, true) => Outcome::Withheld,
    };
    report
}

/// The address of `path` under the site's address `base`, one segment at a time.
pub(super) fn address(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(path.split('/'));
    }
    url
}

/// The first byte at which `served` is not `expected` (the shorter length when one is the
/// other's beginning).
fn first_difference(expected: &[u8], served: &[u8]) -> u64 {
    let at = expected
        .iter()
        .zip(served)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(served.len()));
    at as u64
}

/// Every value of the header `name`, joined by `, `, if it was sent; what the server put in
/// it is shown through [`PeerText`], its control and bidirectional formatting characters
/// (bytes past ASCII read as UTF-8) written as `\u{…}`.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| PeerText(String::from_utf8_lossy(v.as_bytes()).trim()).to_string())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Most characters of a served header value a report shows: a server may send hundreds of
/// kilobytes in one, and `--watch` writes its findings into a log row every period.
const MAX_SHOWN_HEADER_CHARS: usize = 200;

/// `value` as a report shows it: whole up to [`MAX_SHOWN_HEADER_CHARS`] characters, cut there
/// otherwise, saying how long it was. It is judged whole before it is cut.
fn shortened(value: String) -> String {
    match value.char_indices().nth(MAX_SHOWN_HEADER_CHARS) {
        None => value,
        Some((at, _)) => format!("{}… ({} bytes en total)", &value[..at], value.len()),
    }
}

/// How people write an HTTP version: `HTTP/1.1`, `HTTP/2`.
fn version_name(version: reqwest::Version) -> &'static str {
    match version {
        reqwest::Version::HTTP_09 => "HTTP/0.9",
        reqwest::Version::HTTP_10 => "HTTP/1.0",
        reqwest::Version::HTTP_2 => "HTTP/2",
        reqwest::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// `at` in RFC 3339 with the offset of `tz`, to the second.
pub(super) fn rfc3339(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_stay_under_the_site_address() {
        let base = Url::parse("https://prep.example.mx/prep/").unwrap();
        assert_eq!(
            address(&base, "json/main.json").as_str(),
            "https://prep.example.mx/prep/json/main.json"
        );
        assert_eq!(
            address(&base, "a b/x?y#z.json").as_str(),
            "https://prep.example.mx/prep/a%20b/x%3Fy%23z.json"
        );
    }

    #[test]
    fn the_first_difference_is_found_or_is_where_one_ends() {
        assert_eq!(first_difference(b"abcdef", b"abXdef"), 2);
        assert_eq!(first_difference(b"abc", b"abcdef"), 3);
        assert_eq!(first_difference(b"abcdef", b"ab"), 2);
    }

    #[test]
    fn header_rules_read_a_name_or_a_name_and_value() {
        let r = HeaderRule::parse("X-Content-Type-Options: nosniff").unwrap();
        assert_eq!(
            (r.name.as_str(), r.value.as_deref()),
            ("x-content-type-options", Some("nosniff"))
        );
        assert_eq!(
            HeaderRule::parse("Strict-Transport-Security")
                .unwrap()
                .value,
            None
        );
        assert!(HeaderRule::parse("no es\tun nombre").is_err());
    }
}
