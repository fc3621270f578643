//! The admin listener: what operators (and the `difusor` commands) use on a running server.
//!
//! Routes:
//! - `GET /`: the status page for people: live corte, lag, gate, the history of cortes, and
//!   the traffic of the last hour drawn as a chart;
//! - `GET /metrics`: Prometheus text (requests by status and encoding, bytes, latency, live
//!   corte time and lag, packages, open connections);
//! - `GET /preview/…`: the live site as the public will see it, whatever the gate says (an
//!   operator's check before 20:00);
//! - `GET /status`: JSON with the live corte (id, time, package, live time, lag), the counts
//!   of received, rejected, published, inconsistent, held and set-aside packages, the
//!   packages waiting for an operator (`waiting`), the bytes the live site holds in memory
//!   (`memory`), the free space on the data folder's disks and whether received bytes are
//!   refused for the space kept free (`free_space`), the gate, the public connections
//!   (open, the cap, evicted and refused at the caps) and, on a replica, since when its
//!   primary has not answered and whether it serves its own corte for it (`primary`);
//! - `GET /health`: 200 while every part of the server runs, 503 with the reason once one
//!   stopped (the publisher thread): the server then exits non-zero in a few seconds, for its
//!   service manager to start it again; `/status` says the same (`healthy`, `publisher`);
//! - `POST /ingest`: a package in the body, its file name in `X-Difusor-Name`, its evidence
//!   in `X-Difusor-Sidecar` / `X-Difusor-Signature` (its bytes as sent, percent-encoded) or,
//!   for one larger than evidence may be, its size in `X-Difusor-Sidecar-Too-Large` /
//!   `X-Difusor-Signature-Too-Large` (the package is then refused for it), and
//!   `X-Difusor-Force: 1` to publish it past a hold; answers the outcome once the publisher
//!   has decided, or 400 saying why for a name no channel takes
//!   ([`crate::package::PackageName::parse`]);
//! - `POST /rollback?corte=<id>`: publish an earlier corte again; 404 with the outcome
//!   `rejected` when no corte or archived package has that name, 409 when the package it names
//!   would take the site past `max_site_bytes`;
//! - `POST /notice` with `{"text": "…"}`: the institute's notice replaces the results on
//!   every public path, at once; `POST /notice/off` lifts it. Both are journaled, and the
//!   notice stays in force across restarts.
//!
//! # Guarantees
//! - Bound to loopback by default; bound elsewhere it requires `Authorization: Bearer
//!   <token>` on every route ([`crate::config`] refuses to start otherwise), compared in
//!   constant time. The token comes from `admin_token_file` or `DIFUSOR_ADMIN_TOKEN`, never
//!   from the command line.
//! - A web page in an operator's browser cannot use it ([`RequestGuard`]): a request whose
//!   `Host` is not this listener's address (or a name in `admin_hosts`) is refused with 421
//!   (two `Host` fields, or one with user information, with 400, as the public listener does),
//!   so DNS rebinding reads nothing; a state-changing request (any method but GET and HEAD)
//!   that a browser sent (it carries `Origin` or `Sec-Fetch-Site`, whatever the site: the
//!   preview's pages and scripts run under this listener's own origin) is refused with 403,
//!   and one a page can send without asking first (a CORS-simple `Content-Type`: `text/plain`,
//!   `application/x-www-form-urlencoded`, `multipart/form-data`, or none with a body) with
//!   415. Refusals, these and a missing or wrong token's 401, are journaled (`warning`,
//!   check `admin-request`), at most once a minute, and logged, at most
//!   [`LOG_REFUSALS_PER_MINUTE`] a minute (the first logged after that says how many were
//!   not, `not_logged`).
//! - At most [`MAX_CONNECTIONS`] connections are open, [`MAX_PER_ADDRESS`] from one address;
//!   past that the oldest idle one gives way, so sockets opened and left silent cannot keep
//!   an operator out. At most [`MAX_UPLOADS`] packages are received at once, whatever the
//!   connections and HTTP/2 streams: one more gets 503 with `Retry-After`, journaled.
//! - An uploaded body is written to the data folder's `tmp/`, never into the space kept
//!   free on its disk (`min_free_space`: refused as an upload this server cannot write), and
//!   never past `max_package_bytes` (one larger is the outcome `rejected` with 413, journaled
//!   as the publisher journals any rejection, nothing of it kept), and removed once the
//!   publisher has archived it. A package received whole is decided on (archived, journaled,
//!   published or refused) even when its sender stops waiting for the answer and closes its
//!   connection: its temporary file, and its place among the [`MAX_UPLOADS`], are kept until
//!   the publisher has decided, so a sender that gives up never turns it into a fault of
//!   this server's. An upload that will not be kept (over the limit, or not writable here) is
//!   read to its end and dropped, for at most [`DISCARD_TIME`], before it is answered, so
//!   that its sender reads the answer rather than a reset connection. A body (package or
//!   notice) that sends nothing for `send_timeout` is answered 408, its connection closed
//!   and its temporary file removed, so a stalled upload holds no connection for ever.
//!   Journal writes wait for the journal's writer thread without blocking the async threads.

mod page;
mod status;

use status::Status;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use jiff::Timestamp;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::config::{Config, Invalid};
use crate::http::access_log::AccessLog;
use crate::http::gate::{Gate, notice_text};
use crate::http::health::Health;
use crate::http::limits::Limits;
use crate::http::{BoxedBody, full, json_response};
use crate::intake::{Channel, Received};
use crate::journal::{EventKind, Journal};
use crate::metrics::{AcmeSnapshot, ClockSnapshot, DiskSnapshot, Metrics, PullSnapshot, Snapshot};
use crate::package::{EvidenceFile, MAX_EVIDENCE_BYTES, PackageName};
use crate::publisher::{Fault, Outcome, PublisherHandle, Stopped};
use crate::site::Live;
use crate::store::Reserve;
use crate::store::space::Space;

/// Most connections the admin listener keeps open.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Most connections it keeps open from one address (the operator's commands come from one).
pub(crate) const MAX_PER_ADDRESS: usize = 32;
/// Most package uploads received at once, over every connection and HTTP/2 stream: each may
/// hold up to `max_package_bytes` in `tmp/`, and the publisher takes them one at a time anyway.
pub(crate) const MAX_UPLOADS: usize = 4;

/// What the admin handler needs.
pub(crate) struct Admin {
    /// The live site.
    pub(crate) live: Live,
    /// The journal, for counts.
    pub(crate) journal: Arc<Journal>,
    /// The way to the publisher.
    pub(crate) publisher: PublisherHandle,
    /// Required bearer token, if any.
    pub(crate) token: Option<String>,
    /// Refuses requests a web page could have sent.
    pub(crate) guard: RequestGuard,
    /// Where uploads are written first.
    pub(crate) tmp_dir: PathBuf,
    /// The space kept free on the data folder's disks (`min_free_space`): uploads claim their
    /// room from it, and `/status` shows it.
    pub(crate) reserve: Reserve,
    /// Largest upload accepted.
    pub(crate) max_package_bytes: u64,
    /// One permit per upload being received or waiting for the publisher ([`MAX_UPLOADS`]).
    pub(crate) uploads: Arc<tokio::sync::Semaphore>,
    /// Longest an upload's body may send nothing (`send_timeout`).
    pub(crate) body_timeout: Duration,
    /// Most bytes the live site may hold in memory.
    pub(crate) max_site_bytes: u64,
    /// Embargo and notice.
    pub(crate) gate: Arc<Gate>,
    /// Start of publication, if configured.
    pub(crate) publish_start: Option<Timestamp>,
    /// End of the required publication period, if configured.
    pub(crate) publish_end: Option<Timestamp>,
    /// Promised interval between cortes.
    pub(crate) update_interval: jiff::SignedDuration,
    /// When the server started.
    pub(crate) started_at: Timestamp,
    /// The public access log, for its lost-line count.
    pub(crate) access_log: AccessLog,
    /// The public listeners' limits, for the open connection count.
    pub(crate) limits: Arc<Limits>,
    /// The public listeners' request counters.
    pub(crate) metrics: Arc<Metrics>,
    /// The HTTPS pull's state per URL, when `pull_url` or `replica_of` is set.
    pub(crate) pull: Option<Arc<crate::intake::pull::Board>>,
    /// Whether the publisher runs.
    pub(crate) health: Arc<Health>,
    /// The clock as last checked.
    pub(crate) clock: Arc<crate::clock::Clock>,
    /// The syslog sender, when `syslog` is set.
    pub(crate) syslog: Option<Arc<crate::syslog::Syslog>>,
    /// The ACME certificate's state, when `acme_domains` is set.
    pub(crate) acme: Option<Arc<crate::acme::Board>>,
}

/// The names of `admin_hosts`, each a host name without scheme, port or path, lowercased.
pub(crate) fn admin_hosts(config: &Config) -> Result<Vec<String>, Invalid> {
    config
        .settings
        .admin_hosts
        .iter()
        .map(|h| admin_host(h))
        .collect()
}

/// One of `admin_hosts`: a host name without scheme, port or path, lowercased.
fn admin_host(h: &str) -> Result<String, Invalid> {
    let ok = !h.is_empty()
        && h.parse::<http::uri::Authority>()
            .is_ok_and(|a| a.as_str() == h && a.port().is_none() && !h.contains('@'));
    if ok {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(Invalid::new(
            "admin_hosts",
            format!(
                "{h:?} is not a host name; write it as difusor-admin.example.mx, without \
                 scheme, port or path"
            ),
        ))
    }
}

/// Answers one admin request.
pub(crate) async fn handle(admin: Arc<Admin>, req: Request<Incoming>) -> Response<BoxedBody> {
    if let Err((status, reason)) = admin.guard.check(&req) {
        admin.guard.journal(&admin.journal, &req, &reason);
        return json_response(status, &json!({"error": reason}));
    }
    if !authorised(&admin, req.headers()) {
        let reason = if req.headers().contains_key(header::AUTHORIZATION) {
            "refused: the token sent is not this listener's (`admin_token_file` or \
             DIFUSOR_ADMIN_TOKEN)"
        } else {
            "refused: this listener needs `Authorization: Bearer <token>` (the token of \
             `admin_token_file` or DIFUSOR_ADMIN_TOKEN)"
        };
        admin.guard.journal(&admin.journal, &req, reason);
        let mut res = json_response(StatusCode::UNAUTHORIZED, &json!({"error": reason}));
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return res;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/status") => json_response(
            StatusCode::OK,
            &serde_json::to_value(Status::of(&admin).await).unwrap_or_default(),
        ),
        (&Method::GET, "/metrics") => metrics(&admin).await,
        (&Method::GET, "/health") => match admin.health.publisher_error() {
            None => json_response(StatusCode::OK, &json!({"healthy": true})),
            Some(error) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"healthy": false, "error": format!("the publisher stopped: {error}")}),
            ),
        },
        (&Method::GET, "/") => page(&admin).await,
        (&(Method::GET | Method::HEAD), path) if path.starts_with("/preview/") => {
            let raw = req.uri().path().trim_start_matches("/preview").to_owned();
            let head = req.method() == Method::HEAD;
            // The operators' previews share one address's share of the archived files sent.
            let operators = std::net::IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED);
            crate::http::from_site(&admin.live, &raw, "/preview", &req, head, operators).await
        }
        (&Method::POST, "/ingest") => ingest(&admin, req).await,
        (&Method::POST, "/notice") => notice_on(&admin, req).await,
        (&Method::POST, "/notice/off") => set_notice(&admin, None).await,
        (&Method::POST, "/rollback") => {
            let corte = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("corte=")))
                .map(|c| {
                    percent_encoding::percent_decode_str(c)
                        .decode_utf8_lossy()
                        .into_owned()
                });
            let Some(corte) = corte else {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "give ?corte=<id>"}),
                );
            };
            match admin.publisher.rollback(corte).await {
                // Refused: it names nothing this server has (no package), or the package it
                // names would take the site past `max_site_bytes`.
                Ok(outcome @ Outcome::Rejected { .. }) => {
                    let status = match &outcome {
                        Outcome::Rejected { sha256: None, .. } => StatusCode::NOT_FOUND,
                        _ => StatusCode::CONFLICT,
                    };
                    json_response(status, &serde_json::to_value(&outcome).unwrap_or_default())
                }
                other => outcome_response(other),
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "no such route"})),
    }
}

/// Content types a web page may send to any site without the browser asking first (the
/// Fetch standard's CORS-safelisted request content types).
const SIMPLE_CONTENT_TYPES: [&str; 3] = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

/// How often refused requests are journaled at most (a hostile page can send many).
const JOURNAL_REFUSALS_EVERY: Duration = Duration::from_secs(60);

/// How many refused requests are logged in each minute; the others are counted, and the
/// count logged with the first refusal of a later minute.
const LOG_REFUSALS_PER_MINUTE: u32 = 10;

/// Refuses admin requests that a web page in an operator's browser could have sent: those
/// naming another host (DNS rebinding), and state-changing ones from another site.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    /// The listener's address.
    listen: SocketAddr,
    /// Other host names it answers to (lowercase), on any port.
    names: Vec<String>,
    /// The refusals journaled and logged lately.
    said: Mutex<Said>,
}

/// The refusals journaled and logged lately.
#[derive(Debug, Default)]
struct Said {
    /// When a refusal was last journaled.
    journaled: Option<Instant>,
    /// When the current minute of logging began, and how many were logged in it.
    window: Option<(Instant, u32)>,
    /// Refusals not logged since the last one logged.
    not_logged: u64,
}

impl RequestGuard {
    /// A guard for the listener on `listen`, also answering to `names` (`admin_hosts`).
    pub(crate) fn new(listen: SocketAddr, names: &[String]) -> Self {
        Self {
            listen,
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
            said: Mutex::new(Said::default()),
        }
    }

    /// Whether `authority` (`host[:port]`) names this listener: its own address (any
    /// address when it listens on all of them), `localhost` on loopback, with its port; or
    /// one of the configured names.
    fn names_us(&self, authority: &str) -> bool {
        let Ok(authority) = authority.parse::<http::uri::Authority>() else {
            return false;
        };
        // A request target's user information (`http://user@host/`) names no other host,
        // but no client has reason to send it, and the public listener refuses it too.
        if authority.as_str().contains('@') {
            return false;
        }
        let host = authority.host().to_ascii_lowercase();
        if self.names.contains(&host) {
            return true;
        }
        if authority.port_u16().unwrap_or(80) != self.listen.port() {
            return false;
        }
        let ip = self.listen.ip();
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(given) => given == ip || ip.is_unspecified(),
            Err(_) => host == "localhost" && ip.is_loopback(),
        }
    }

    /// `Ok` for a request this listener answers; otherwise the status and why.
    fn check<B: hyper::body::Body>(&self, req: &Request<B>) -> Result<(), (StatusCode, String)> {
        let headers = req.headers();
        if !crate::http::host_is_valid(req) {
            return Err((
                StatusCode::BAD_REQUEST,
                "refused: a request must name one host: one Host field, without user \
                 information (user@)"
                    .to_owned(),
            ));
        }
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| header_text(headers, header::HOST).map(str::to_owned));
        let Some(host) = host.filter(|h| self.names_us(h)) else {
            return Err((
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this listener answers only to {} (or a name listed in `admin_hosts`), \
                     not to Host {:?}",
                    self.listen,
                    header_text(headers, header::HOST).unwrap_or("(none)")
                ),
            ));
        };
        if matches!(*req.method(), Method::GET | Method::HEAD) {
            return Ok(());
        }
        // Browsers send `Origin` (and `Sec-Fetch-Site`) with every request that can change
        // something, also from a page of this listener: the preview serves the institute's
        // pages and scripts under this listener's own origin. Changes come from the
        // commands and scripts, never from a page.
        let browser = [
            header::ORIGIN,
            header::HeaderName::from_static("sec-fetch-site"),
        ]
        .into_iter()
        .find_map(|name| headers.get(&name).map(|value| (name, value)));
        if let Some((name, value)) = browser {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "refused: a web page sent this request ({name}: {:?}), and no page may \
                     change anything here (Host {host}), not even one of this listener's \
                     preview; use the difusor commands",
                    String::from_utf8_lossy(value.as_bytes())
                ),
            ));
        }
        let essence = header_text(headers, header::CONTENT_TYPE).map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
        match essence {
            Some(t) if SIMPLE_CONTENT_TYPES.contains(&t.as_str()) => Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "refused: Content-Type {t} is what any web page may send; send \
                     application/json (notices) or application/octet-stream (packages)"
                ),
            )),
            None if !req.body().is_end_stream() => Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "refused: a body needs a Content-Type: application/json (notices) or \
                 application/octet-stream (packages)"
                    .to_owned(),
            )),
            _ => Ok(()),
        }
    }

    /// Journals a refusal, at most once every [`JOURNAL_REFUSALS_EVERY`]; logs it if fewer
    /// than [`LOG_REFUSALS_PER_MINUTE`] were logged in the current minute.
    fn journal<B>(&self, journal: &Journal, req: &Request<B>, reason: &str) {
        self.journal_request(journal, req.method(), req.uri(), req.headers(), reason);
    }

    /// [`RequestGuard::journal`] for a request whose body was taken apart from its head.
    fn journal_head(&self, journal: &Journal, head: &http::request::Parts, reason: &str) {
        self.journal_request(journal, &head.method, &head.uri, &head.headers, reason);
    }

    fn journal_request(
        &self,
        journal: &Journal,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        reason: &str,
    ) {
        let now = Instant::now();
        let journal_it = {
            let mut said = self.said.lock().unwrap_or_else(|p| p.into_inner());
            let (began, logged) = match said.window {
                Some((began, logged)) if now.duration_since(began) < JOURNAL_REFUSALS_EVERY => {
                    (began, logged)
                }
                _ => (now, 0),
            };
            if logged < LOG_REFUSALS_PER_MINUTE {
                said.window = Some((began, logged + 1));
                let not_logged = std::mem::take(&mut said.not_logged);
                tracing::warn!(%method, path = uri.path(), reason, not_logged, "admin request refused");
            } else {
                said.window = Some((began, logged));
                said.not_logged += 1;
            }
            let due = said
                .journaled
                .is_none_or(|t| now.duration_since(t) >= JOURNAL_REFUSALS_EVERY);
            if due {
                said.journaled = Some(now);
            }
            due
        };
        if !journal_it {
            return;
        }
        journal.post(
            EventKind::Warning,
            None,
            json!({
                "check": "admin-request",
                "warning": format!("the admin listener refused a request: {reason}"),
                "method": method.as_str(),
                "path": uri.path().chars().take(200).collect::<String>(),
                "host": header_text(headers, header::HOST),
                "origin": header_text(headers, header::ORIGIN),
            }),
        );
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn authorised(admin: &Admin, headers: &HeaderMap) -> bool {
    admin
        .token
        .as_ref()
        .is_none_or(|token| crate::http::bearer_is(headers, token))
}

/// Prometheus metrics.
async fn metrics(admin: &Admin) -> Response<BoxedBody> {
    let state = Status::of(admin).await;
    let counts = &state.counts;
    let snapshot = Snapshot {
        corte_time: admin
            .live
            .load()
            .corte()
            .map(|c| c.time.timestamp().as_second()),
        lag_seconds: state.live.as_ref().map(|l| l.lag_seconds),
        packages: [
            ("received", counts.received),
            ("rejected", counts.rejected),
            ("published", counts.published),
            ("held", counts.held),
            ("set-aside", counts.set_aside),
            ("unjournaled", counts.unjournaled),
        ],
        site_bytes: state.memory.site_bytes,
        open_connections: state.open_connections,
        connections_evicted: state.connections_evicted,
        connections_refused: state.connections_refused,
        access_log_lost: state.access_log_lost_lines,
        publisher_up: state.publisher.running,
        intake_failures: state.intake_failing.as_ref().map_or(0, |f| f.failures),
        min_free_bytes: state.free_space.min_free_bytes,
        disks: state
            .free_space
            .disks
            .iter()
            .map(|d| DiskSnapshot {
                folder: d.folders.first().cloned().unwrap_or_default(),
                free_bytes: d.free_bytes,
                reserve_reached: d.reserve_reached,
            })
            .collect(),
        clock: ClockSnapshot {
            offset_seconds: state.clock.offset_seconds,
            checked_at: state
                .clock
                .offset_checked_at
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(|t| t.as_second()),
            exceeded: state.clock.offset_exceeded,
            synchronized: state.clock.ntp_synchronized,
        },
        syslog: state.syslog.as_ref().map(|s| (s.sent, s.dropped)),
        pull: state
            .pull
            .iter()
            .flatten()
            .map(|u| PullSnapshot {
                url: u.url.clone(),
                failures: u.failures,
                handed_over: u.packages_handed_over,
            })
            .collect(),
        acme: state.acme.as_ref().map(|a| AcmeSnapshot {
            certificate_expiry: a.certificate.as_ref().map(|c| c.not_after_unix),
            consecutive_failures: a.consecutive_failures,
            failures_total: a.failures_total,
        }),
    };
    let mut res = Response::new(full(admin.metrics.encode(&snapshot)));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// The status page for people.
async fn page(admin: &Admin) -> Response<BoxedBody> {
    let state = Status::of(admin).await;
    let journal = admin.journal.clone();
    let cortes = tokio::task::spawn_blocking(move || journal.publications())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let html = page::render(&state, &cortes, &admin.metrics.traffic());
    let mut res = Response::new(full(html));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

/// Puts the institute's notice in force from a `{"text": "…"}` body.
async fn notice_on(admin: &Admin, req: Request<Incoming>) -> Response<BoxedBody> {
    let (head, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, 64 * 1024);
    let body = match tokio::time::timeout(admin.body_timeout, limited.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": format!("reading the notice: {e}")}),
            );
        }
        Err(_) => return body_timed_out(admin, &head, "the notice"),
    };
    let raw = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_owned));
    let Some(raw) = raw else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "send {\"text\": \"…\"} with the notice to show"}),
        );
    };
    match notice_text(&raw) {
        Ok(text) => set_notice(admin, Some(text)).await,
        Err(e) => json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()})),
    }
}

/// Journals the change, then applies it to the gate.
async fn set_notice(admin: &Admin, text: Option<String>) -> Response<BoxedBody> {
    let (kind, detail) = match &text {
        Some(t) => (EventKind::NoticeOn, json!({"text": t})),
        None => (EventKind::NoticeOff, json!({})),
    };
    if let Err(e) = admin.journal.record_async(kind, None, detail).await {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": format!("{e}; the notice was not changed")}),
        );
    }
    tracing::warn!(notice = ?text, "notice changed by an operator");
    admin.gate.set_notice(text.clone());
    json_response(
        StatusCode::OK,
        &json!({"notice": text, "open": admin.gate.is_open()}),
    )
}

/// Receives a package over the admin listener and hands it to the publisher.
async fn ingest(admin: &Admin, req: Request<Incoming>) -> Response<BoxedBody> {
    let (head, mut body) = req.into_parts();
    let decoded = |name: &str| {
        head.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    };
    let Some(named) = decoded("x-difusor-name").and_then(|n| {
        let bare = std::path::Path::new(&n).file_name()?.to_str()?;
        Some(PackageName::parse(bare))
    }) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "X-Difusor-Name must give the package's file name (no folders, not hidden)"}),
        );
    };
    let name = match named {
        Ok(name) => name,
        Err(e) => {
            let error = format!("X-Difusor-Name is no package's file name: the name {e}");
            return json_response(StatusCode::BAD_REQUEST, &json!({ "error": error }));
        }
    };
    // The evidence's bytes as sent, or the size of one too large to be sent.
    let evidence = |name: &str| {
        let too_large = head
            .headers
            .get(format!("{name}-too-large"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(len) = too_large {
            return Some(EvidenceFile::TooLarge(len.max(MAX_EVIDENCE_BYTES + 1)));
        }
        head.headers.get(name).map(|v| {
            EvidenceFile::of_bytes(percent_encoding::percent_decode(v.as_bytes()).collect())
        })
    };
    let sidecar = evidence("x-difusor-sidecar");
    let signature = evidence("x-difusor-signature");
    let force = decoded("x-difusor-force").is_some_and(|v| v == "1");
    // Held until the publisher has decided and the temporary file is gone.
    let Ok(upload) = admin.uploads.clone().try_acquire_owned() else {
        let reason = format!(
            "refused: {MAX_UPLOADS} packages are being received already; send it again when \
             one of them is done"
        );
        admin.guard.journal_head(&admin.journal, &head, &reason);
        let mut res = json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": reason}));
        res.headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        return res;
    };
    let received_at = Timestamp::now();
    let tmp = match tempfile::NamedTempFile::new_in(&admin.tmp_dir) {
        Ok(t) => t.into_temp_path(),
        Err(e) => {
            let error = format!("a temporary file in {}: {e}", admin.tmp_dir.display());
            discard(&mut body, admin.body_timeout).await;
            return upload_failed(admin, &name, error);
        }
    };
    let space = admin.reserve.uploads();
    match receive_body(
        &mut body,
        &tmp,
        admin.max_package_bytes,
        &space,
        admin.body_timeout,
    )
    .await
    {
        Ok(()) => {}
        Err(Unreceived::Refused(resp)) => return resp,
        Err(Unreceived::Unwritten(e)) => {
            discard(&mut body, admin.body_timeout).await;
            return upload_failed(admin, &name, format!("{}: {e}", tmp.display()));
        }
        Err(Unreceived::TooLarge) => {
            discard(&mut body, admin.body_timeout).await;
            return too_large(admin, &name).await;
        }
        Err(Unreceived::Silent) => return body_timed_out(admin, &head, "the package"),
    }
    let received = Received {
        hashed: None,
        name,
        path: tmp.to_path_buf(),
        channel: Channel::Cli,
        origin: None,
        sidecar,
        signature,
        received_at,
    };
    // Handed over by a task of its own: a sender that stops waiting for the answer (closes
    // its connection) drops this request, and the temporary file must outlive it until the
    // publisher has archived it, with the upload's place among the MAX_UPLOADS.
    let publisher = admin.publisher.clone();
    let decided = tokio::spawn(async move {
        let outcome = if force {
            publisher.force(received).await
        } else {
            publisher.ingest(received).await
        };
        drop(tmp); // archived by now (or refused): our temporary copy goes
        drop(upload);
        outcome
    });
    // A task that did not end is a server stopping: the publisher's answer cannot come.
    outcome_response(decided.await.unwrap_or(Err(Stopped)))
}

/// Why an upload's body was not received whole.
enum Unreceived {
    /// Refused with this answer (torn).
    Refused(Response<BoxedBody>),
    /// This server could not write it (a full or read-only disk).
    Unwritten(std::io::Error),
    /// More than `max_package_bytes` arrived.
    TooLarge,
    /// Nothing arrived for the body timeout.
    Silent,
}

/// Streams a request body into `path`, refusing more than `limit` bytes or what would take
/// the disk under the space kept free (each part claims its room from `space`), and giving
/// up when nothing arrives for `timeout`.
async fn receive_body(
    body: &mut Incoming,
    path: &std::path::Path,
    limit: u64,
    space: &Space,
    timeout: Duration,
) -> Result<(), Unreceived> {
    let internal = Unreceived::Unwritten;
    let mut file = tokio::fs::File::create(path).await.map_err(internal)?;
    let mut written = 0u64;
    while let Some(frame) = tokio::time::timeout(timeout, body.frame())
        .await
        .map_err(|_| Unreceived::Silent)?
    {
        let frame = frame.map_err(|e| {
            Unreceived::Refused(json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": format!("upload interrupted: {e}")}),
            ))
        })?;
        if let Ok(data) = frame.into_data() {
            written += data.len() as u64;
            if written > limit {
                return Err(Unreceived::TooLarge);
            }
            let room = space.claim(data.len() as u64).map_err(|short| {
                Unreceived::Unwritten(std::io::Error::new(std::io::ErrorKind::StorageFull, short))
            })?;
            file.write_all(&data).await.map_err(internal)?;
            drop(room);
        }
    }
    file.flush().await.map_err(internal)?;
    Ok(())
}

/// Longest time spent reading and dropping what is left of an upload that will not be kept
/// (nginx's `lingering_time`).
const DISCARD_TIME: Duration = Duration::from_secs(30);

/// Reads and drops what is left of an upload that will not be kept (over the limit, or
/// not writable here), so that its sender reads the answer instead of a connection reset
/// under the bytes it is still sending. For at most [`DISCARD_TIME`], each part within
/// `timeout`: past either, the answer goes out as it is and the connection is closed.
async fn discard(body: &mut Incoming, timeout: Duration) {
    let until = tokio::time::Instant::now() + DISCARD_TIME;
    loop {
        let part = tokio::time::timeout_at(until, tokio::time::timeout(timeout, body.frame()));
        match part.await {
            Ok(Ok(Some(Ok(_)))) => {}
            _ => return,
        }
    }
}

/// The answer to an upload this server could not write (a full or read-only disk): its own
/// fault, never the package's. Journaled as an `intake-error` and shown on `/status` as the
/// publisher does for a package it fails to take, and answered as it answers one (`failed`,
/// `"fault": "ours"`, 500): nothing is decided about the package.
fn upload_failed(admin: &Admin, name: &PackageName, error: String) -> Response<BoxedBody> {
    let error = format!("writing the upload to {error}");
    tracing::error!(%name, %error, "package not received, by a fault on this server's side");
    admin.publisher.faults().failed(name, Channel::Cli, &error);
    admin.journal.post(
        EventKind::IntakeError,
        None,
        json!({"name": name, "channel": Channel::Cli, "error": error, "fault": Fault::Ours}),
    );
    outcome_response(Ok(Outcome::Failed {
        error,
        fault: Fault::Ours,
    }))
}

/// The answer to a package larger than `max_package_bytes`: the sender's fault, journaled
/// and answered as the publisher rejects one from any other channel (the outcome
/// `rejected`), with 413; nothing of it is kept.
async fn too_large(admin: &Admin, name: &PackageName) -> Response<BoxedBody> {
    let reason = format!(
        "the package is over the limit of {} bytes (max_package_bytes); the package was not \
         stored",
        admin.max_package_bytes
    );
    let detail = json!({
        "name": name, "channel": Channel::Cli, "reason": reason, "fault": Fault::Sender,
    });
    if let Err(e) = admin
        .journal
        .record_async(EventKind::Rejected, None, detail)
        .await
    {
        tracing::error!(error = %e, "could not write to the journal");
    }
    tracing::warn!(%name, %reason, "package rejected; the live corte is unchanged");
    let mut res = json_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &serde_json::to_value(Outcome::Rejected {
            reason,
            sha256: None,
        })
        .unwrap_or_default(),
    );
    // The rest of the body may not all have been read: the connection carries no other
    // request.
    res.headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    res
}

/// The answer to an upload whose body stopped arriving (`what`: the package, the notice),
/// journaled like every refusal; the connection is closed with it.
fn body_timed_out(admin: &Admin, head: &http::request::Parts, what: &str) -> Response<BoxedBody> {
    let reason = format!(
        "refused: {what} stopped arriving (nothing for {:?}, setting `send_timeout`); send it \
         again",
        admin.body_timeout
    );
    admin.guard.journal_head(&admin.journal, head, &reason);
    let mut res = json_response(StatusCode::REQUEST_TIMEOUT, &json!({"error": reason}));
    res.headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    res
}

fn outcome_response(outcome: Result<Outcome, Stopped>) -> Response<BoxedBody> {
    let Ok(outcome) = outcome else {
        return stopped();
    };
    // The package's fault is the sender's to fix; any other is this server's.
    let status = match outcome.fault() {
        Some(Fault::Sender) => StatusCode::UNPROCESSABLE_ENTITY,
        Some(Fault::Ours | Fault::Transport) => StatusCode::INTERNAL_SERVER_ERROR,
        None => StatusCode::OK,
    };
    json_response(status, &serde_json::to_value(&outcome).unwrap_or_default())
}

fn stopped() -> Response<BoxedBody> {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": "the publisher is not running (the server is stopping or restarting); \
            send it again shortly"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;

    fn guard(listen: &str) -> RequestGuard {
        RequestGuard::new(listen.parse().unwrap(), &["Panel.example.mx".to_owned()])
    }

    fn request(method: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(method).uri("/notice");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    }

    fn status(g: &RequestGuard, req: &Request<Full<Bytes>>) -> StatusCode {
        g.check(req).err().map_or(StatusCode::OK, |(s, _)| s)
    }

    #[test]
    fn the_host_must_name_this_listener() {
        let g = guard("127.0.0.1:9180");
        for host in [
            "127.0.0.1:9180",
            "localhost:9180",
            "panel.example.mx",
            "PANEL.example.mx:443",
        ] {
            assert_eq!(
                status(&g, &request("GET", &[("host", host)], "")),
                StatusCode::OK,
                "{host}"
            );
        }
        for host in [
            "rebind.evil.example:9180",
            "rebind.evil.example",
            "127.0.0.1:8080",
            "127.0.0.2:9180",
            "127.0.0.1",
            "",
        ] {
            let req = request("GET", &[("host", host)], "");
            assert_eq!(status(&g, &req), StatusCode::MISDIRECTED_REQUEST, "{host}");
        }
        // One host, named plainly, as the public listener requires.
        assert_eq!(
            status(&g, &request("GET", &[], "")),
            StatusCode::BAD_REQUEST
        );
        let ours = ("host", "127.0.0.1:9180");
        for headers in [
            vec![("host", "user@127.0.0.1:9180")],
            vec![ours, ours],
            vec![ours, ("host", "rebind.evil.example:9180")],
        ] {
            let req = request("GET", &headers, "");
            assert_eq!(status(&g, &req), StatusCode::BAD_REQUEST, "{headers:?}");
        }
        let target = Request::get("http://user@127.0.0.1:9180/status")
            .header("host", "127.0.0.1:9180")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(status(&g, &target), StatusCode::MISDIRECTED_REQUEST);
        // Listening on every address: any address literal is this machine; names are not.
        let all = guard("0.0.0.0:9180");
        let ok = request("GET", &[("host", "192.0.2.5:9180")], "");
        assert_eq!(status(&all, &ok), StatusCode::OK);
        let rebind = request("GET", &[("host", "evil.example:9180")], "");
        assert_eq!(status(&all, &rebind), StatusCode::MISDIRECTED_REQUEST);
        let v6 = guard("[::1]:9180");
        let ok = request("GET", &[("host", "[::1]:9180")], "");
        assert_eq!(status(&v6, &ok), StatusCode::OK);
    }

    #[test]
    fn changes_a_web_page_could_send_are_refused() {
        let g = guard("127.0.0.1:9180");
        let host = ("host", "127.0.0.1:9180");
        let json = ("content-type", "application/json");
        // (headers, body, what the guard answers)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, StatusCode);
        let cases: [Case; 10] = [
            (&[host, json], "{}", StatusCode::OK),
            (&[host], "", StatusCode::OK),
            (
                &[host, json, ("origin", "http://127.0.0.1:9180")],
                "{}",
                StatusCode::FORBIDDEN,
            ),
            (
                &[host, json, ("origin", "http://evil.example")],
                "{}",
                StatusCode::FORBIDDEN,
            ),
            (&[host, ("origin", "null")], "", StatusCode::FORBIDDEN),
            (
                &[host, json, ("sec-fetch-site", "same-origin")],
                "{}",
                StatusCode::FORBIDDEN,
            ),
            (
                &[host, ("content-type", "text/plain;charset=UTF-8")],
                "{}",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                &[host, ("content-type", "application/x-www-form-urlencoded")],
                "a=b",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                &[host, ("content-type", "Multipart/Form-Data; boundary=x")],
                "--x--",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (&[host], "{}", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ];
        for (headers, body, want) in cases {
            let req = request("POST", headers, body);
            assert_eq!(status(&g, &req), want, "{headers:?} {body:?}");
        }
        // Reads are guarded by the Host alone: another page cannot read the answer anyway.
        let read = request("GET", &[host, ("origin", "http://evil.example")], "");
        assert_eq!(status(&g, &read), StatusCode::OK);
    }
}
