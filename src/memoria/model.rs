//! The memoria técnica's figures: everything the report shows, as one value that is written
//! to `memoria.json` as it is and rendered to HTML, CSV and SVG from the same fields, so no
//! figure of the report can disagree with the data delivered beside it.
//!
//! # Guarantees
//! - Every list is in a stable order (time, or count then name), so the same input gives the
//!   same bytes.
//! - Times are instants (UTC in JSON); [`Period::timezone`] says how the report shows them.
//! - Every figure has its method written in [`Memoria::methods`], so an institute can compare
//!   difusores that count differently.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Memoria {
    /// When the report was made (the one line that differs between two runs).
    pub(crate) generated_at: Timestamp,
    /// Version of difusor that made it.
    pub(crate) version: String,
    /// The period reported on.
    pub(crate) period: Period,
    /// The files read, in reading order.
    pub(crate) sources: Vec<Source>,
    /// How each figure is counted, in Spanish, in the order the report gives them.
    pub(crate) methods: Vec<Method>,
    /// Whole-period totals.
    pub(crate) totals: Totals,
    /// One row per local day of the period.
    pub(crate) days: Vec<Day>,
    /// Visits and their length.
    pub(crate) visits: Visits,
    /// One slot per minute of the period, from its first to its last minute with a request.
    pub(crate) minutes: Vec<Slot>,
    /// One slot per hour, likewise.
    pub(crate) hours: Vec<Slot>,
    /// The minute with the most requests.
    pub(crate) peak_minute: Option<Peak>,
    /// The second with the most requests.
    pub(crate) peak_second: Option<Peak>,
    /// Requests per status class (`2xx`, `3xx`, `4xx`, `5xx`, and `429` apart).
    pub(crate) statuses: Vec<Count>,
    /// Requests per content encoding sent (`br`, `gzip`, `identidad`); empty when the logs do
    /// not carry it (Combined format).
    pub(crate) encodings: Vec<Count>,
    /// Requests per protocol (`HTTP/1.1`, `HTTP/2.0`).
    pub(crate) protocols: Vec<Count>,
    /// Most requested pages (people only).
    pub(crate) top_pages: Vec<Count>,
    /// Most requested files under `/datos/` (people only).
    pub(crate) top_downloads: Vec<Count>,
    /// Visits by where they came from: `instituto`, `redes sociales`, `buscadores`, `otros
    /// sitios`, `directo` (people only, first request of each visit).
    pub(crate) referrer_kinds: Vec<Count>,
    /// Visits by referring site (host name), most first.
    pub(crate) referrers: Vec<Count>,
    /// Visitors by browser family.
    pub(crate) browsers: Vec<Count>,
    /// Visitors by operating system family.
    pub(crate) systems: Vec<Count>,
    /// Visitors by device class (`móvil`, `tableta`, `escritorio`, `otro`).
    pub(crate) devices: Vec<Count>,
    /// Automated clients (crawlers, monitors, scripts) by name, kept apart from people.
    pub(crate) bots: Vec<Count>,
    /// Every corte published in the period, in order.
    pub(crate) cortes: Vec<CorteRow>,
    /// Everything that affected publication, in time order.
    pub(crate) incidents: Vec<Incident>,
    /// The portal's usual audience, when given.
    pub(crate) baseline: Option<Baseline>,
    /// The operator's notes and suggestions (Markdown, from `--notas`), as written.
    pub(crate) notes: Option<String>,
}

/// The period reported on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Period {
    /// First instant included.
    pub(crate) from: Timestamp,
    /// First instant not included.
    pub(crate) to: Timestamp,
    /// IANA name of the time zone the report shows times in.
    pub(crate) timezone: String,
}

/// One file read.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Source {
    /// What it is: `bitácora`, `bitácora base`, `diario`, `notas`.
    pub(crate) role: String,
    /// File name (no folder).
    pub(crate) name: String,
    /// Size on disk.
    pub(crate) bytes: u64,
    /// Lines read (log files).
    pub(crate) lines: u64,
    /// SHA-256 of the file as read.
    pub(crate) sha256: String,
    /// Why the lines past some point could not be read (a gzip cut short); `None` when
    /// read whole.
    pub(crate) damage: Option<String>,
}

/// How one figure is counted.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Method {
    /// The figure (`visitantes únicos`).
    pub(crate) figure: String,
    /// How it is counted, in Spanish.
    pub(crate) text: String,
}

/// Whole-period totals.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Totals {
    /// Log lines read from the files of the period.
    pub(crate) lines: u64,
    /// Lines that are not a request in a known format (counted, not guessed at).
    pub(crate) malformed: u64,
    /// Lines whose time falls outside the period.
    pub(crate) outside: u64,
    /// Requests (hits) in the period, people and bots.
    pub(crate) hits: u64,
    /// Requests from automated clients.
    pub(crate) bot_hits: u64,
    /// Pages viewed by people.
    pub(crate) pages: u64,
    /// Response body bytes sent, people and bots.
    pub(crate) bytes: u64,
    /// Unique visitors (people) over the whole period.
    pub(crate) visitors: u64,
    /// Unique automated clients over the whole period.
    pub(crate) bot_visitors: u64,
    /// Visits by people.
    pub(crate) visits: u64,
}

/// One local day.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Day {
    /// The date, in the report's time zone.
    pub(crate) date: Date,
    /// Requests, people and bots.
    pub(crate) hits: u64,
    /// Pages viewed by people.
    pub(crate) pages: u64,
    /// Bytes sent.
    pub(crate) bytes: u64,
    /// Unique visitors (people) that day.
    pub(crate) visitors: u64,
    /// Unique automated clients that day.
    pub(crate) bot_visitors: u64,
    /// Visits by people that began that day.
    pub(crate) visits: u64,
}

/// Visits and their length.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Visits {
    /// Visits by people.
    pub(crate) count: u64,
    /// Mean duration in seconds (first to last request of the visit).
    pub(crate) mean_seconds: f64,
    /// Median duration in seconds.
    pub(crate) median_seconds: f64,
    /// Mean pages per visit.
    pub(crate) pages_per_visit: f64,
    /// Visits of a single request (duration 0 by the method).
    pub(crate) single_request: u64,
    /// Sum of all visits' durations, in seconds: the time people spent on the site.
    pub(crate) total_seconds: u64,
    /// Visits by duration: `0 s`, `< 1 min`, `1–5 min`, `5–15 min`, `15–30 min`, `30–60
    /// min`, `≥ 1 h`.
    pub(crate) by_duration: Vec<Count>,
}

/// One minute or one hour of the period.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Slot {
    /// Start of the slot.
    pub(crate) start: Timestamp,
    /// Requests, people and bots.
    pub(crate) hits: u64,
    /// Pages viewed by people.
    pub(crate) pages: u64,
    /// Unique visitors (people) with a request in the slot.
    pub(crate) visitors: u64,
    /// Responses 5xx.
    pub(crate) errors: u64,
    /// Responses 429 (a client over its rate limit).
    pub(crate) throttled: u64,
    /// Median response time in milliseconds, when the logs carry it.
    pub(crate) p50_ms: Option<f64>,
    /// 99th percentile response time in milliseconds, when the logs carry it.
    pub(crate) p99_ms: Option<f64>,
}

/// The busiest minute or second.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Peak {
    /// Its start.
    pub(crate) at: Timestamp,
    /// Requests in it.
    pub(crate) hits: u64,
}

/// A named count: a page, a browser, a status class.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Count {
    /// What is counted.
    pub(crate) name: String,
    /// How many.
    pub(crate) count: u64,
}

/// One corte published.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CorteRow {
    /// Order of publication.
    pub(crate) seq: i64,
    /// Corte id (`20240602_2015`).
    pub(crate) corte_id: String,
    /// Corte time, RFC 3339 with its offset, as the package gave it.
    pub(crate) corte_time: String,
    /// `site`, `data` or `site+data`: what the package was for.
    pub(crate) kind: String,
    /// `publicación` or `reversión` (an operator's rollback).
    pub(crate) build: String,
    /// Package file name.
    pub(crate) package: String,
    /// First 12 hex digits of its SHA-256.
    pub(crate) sha256: String,
    /// When the package was received.
    pub(crate) received_at: Timestamp,
    /// When it went live.
    pub(crate) live_at: Timestamp,
    /// Live − corte time, in seconds (R4.6 allows 60).
    pub(crate) lag_seconds: f64,
    /// Unique visitors (people) with a request while it was live (from the second it went
    /// live, as the logs give times to the second).
    pub(crate) visitors: u64,
    /// Whether the lag is over 60 s (an incident).
    pub(crate) late: bool,
}

/// Something that affected publication.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Incident {
    /// When it began.
    pub(crate) at: Timestamp,
    /// When it ended, for what lasts (a notice, a burst of errors, a silent stretch).
    pub(crate) until: Option<Timestamp>,
    /// Its kind, one word for tables and filters: `paquete-rechazado`, `corte-tardío`,
    /// `corte-faltante`, `aviso`, `reinicio`, `caída`, `errores-5xx`, `límite-429`,
    /// `canal`, `sin-servicio`, `bitácora`, `verificación-externa`.
    pub(crate) kind: String,
    /// What happened, in Spanish, for the institute.
    pub(crate) text: String,
    /// Where it is recorded: the journal event ids, the log minutes.
    pub(crate) evidence: String,
}

/// The portal's usual audience beside the election period (R6.4).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Baseline {
    /// Where the figures come from, in Spanish (the log files and their days, or "cifras
    /// dadas por el operador").
    pub(crate) source: String,
    /// Days the usual figures average over, when read from logs.
    pub(crate) days: Option<u64>,
    /// Usual visitors per day.
    pub(crate) visitors_per_day: f64,
    /// Usual pages per day.
    pub(crate) pages_per_day: f64,
    /// Usual hits per day.
    pub(crate) hits_per_day: f64,
    /// The election period's visitors per day (the mean over its days).
    pub(crate) election_visitors_per_day: f64,
    /// The election period's pages per day.
    pub(crate) election_pages_per_day: f64,
    /// The election period's hits per day.
    pub(crate) election_hits_per_day: f64,
}
