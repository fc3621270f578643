//! Intake by HTTPS pull (`pull_url`): for institutes that publish their packages as a service
//! instead of pushing them (R1.3).
//!
//! Each URL is polled every `pull_interval` by its own task:
//! - a URL ending in `/` is an **index**: nginx's `autoindex_format json` listing
//!   (`[{"name": …, "type": "file", "size": …, "mtime": …}]`), a JSON array of names, or plain
//!   text with one name per line. Every package it lists is fetched once, in name order (names
//!   start with the corte time, so that is the order of cortes), with `<name>.sha256` and
//!   `<name>.minisig` when the index lists them. A listed package whose size or time changes is
//!   looked at again.
//! - any other URL is **one package that changes** (a "latest" address): fetched when it
//!   changes, named by the last segment of the address it was finally served from (after
//!   redirects), with its evidence at that address plus `.sha256` and `.minisig` (a 404 means
//!   none). When that sidecar is one `sha256sum` line naming another file (a "latest" alias,
//!   `ultimo.zip`, whose sidecar names `20270606_2000_PREP_CAMP.zip`), the package takes that
//!   name: the institute's name, with its corte time.
//!
//! # Guarantees
//! - Requests are conditional (`If-None-Match`, `If-Modified-Since`): an unchanged index or
//!   package costs one 304.
//! - A download goes to a temporary file in `<data_dir>/tmp`; it is refused beyond
//!   `max_package_bytes` (by `Content-Length` before the first byte, and by count while
//!   reading), abandoned after `pull_timeout` in all or `pull_stall_timeout` without a byte.
//!   Indexes and evidence files have their own small limits.
//! - A package whose bytes do not match its `.sha256` is fetched again with a fresh sidecar (it
//!   may have been replaced while it was being downloaded); one that never matches is not handed
//!   over, and the attempt fails. A torn download never reaches the publisher.
//! - A package whose sidecar names a digest the journal holds as decided is not downloaded
//!   again. One this machine failed to take (a full disk, a journal error; the publisher's
//!   `failed`) is not taken: it is fetched again at the next poll, and after a restart.
//! - In an index, a package that fails for itself (too large, never matching its sidecar) does
//!   not hold back the ones after it; a service that stops answering ends the poll at once.
//! - A URL that fails is polled again after a wait that doubles from `pull_interval` up to
//!   `pull_max_backoff`. The journal gets one `pull-error` when a URL starts failing and one
//!   `pull-recovered` when it works again, never one entry per attempt.
//! - Operators see each URL's state on the admin listener (`/status`, `pull`): last poll,
//!   last success, packages handed over, and while it fails, since when, how often and why.
//! - Index entries are names, never paths: a name with `/`, `\`, a control character or a
//!   leading dot is ignored, so every fetched address is a direct child of the index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode, Url};
use serde_json::json;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;

use super::{Channel, Received};
use crate::config::PullSettings;
use crate::hash::Sha256;
use crate::http::tls::{read_certificates, read_private_key};
use crate::journal::{EventKind, Journal};
use crate::package::{
    MAX_EVIDENCE_BYTES, PackageName, is_evidence, sidecar_digest, sidecar_single_entry,
};
use crate::publisher::{Fault, Outcome, PublisherHandle};

/// Largest index read.
const MAX_INDEX_BYTES: u64 = 4 * 1024 * 1024;
/// Most entries read from an index.
const MAX_INDEX_ENTRIES: usize = 20_000;
/// Downloads of one package in one poll while its bytes and its sidecar disagree.
const ATTEMPTS: usize = 3;
/// Longest wait for a TCP and TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Characters escaped when a listed name becomes the last segment of a URL.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Why one poll of a URL failed.
#[derive(Debug, thiserror::Error)]
enum PullError {
    /// No answer, a broken connection, a TLS failure, a timeout.
    #[error("{url}: {why}")]
    Request {
        /// What was asked for.
        url: Url,
        /// The transport's reason, in words.
        why: String,
    },
    /// An answer other than the ones expected.
    #[error("{url}: the server answered {status}{hint}")]
    Status {
        /// What was asked for.
        url: Url,
        /// Its status.
        status: StatusCode,
        /// What to check, for statuses that say.
        hint: &'static str,
    },
    /// More bytes than allowed.
    #[error("{url}: larger than the {limit}-byte limit ({what})")]
    TooLarge {
        /// What was asked for.
        url: Url,
        /// The limit.
        limit: u64,
        /// Which limit.
        what: &'static str,
    },
    /// An index that cannot be read.
    #[error("{url}: the index cannot be read: {why}")]
    Index {
        /// The index.
        url: Url,
        /// What is wrong.
        why: String,
    },
    /// A single-package address whose last segment is not a usable file name.
    #[error("{url}: its last segment is not a package file name")]
    BadName {
        /// The address.
        url: Url,
    },
    /// Bytes that never matched their sidecar.
    #[error(
        "{name}: the bytes downloaded never matched its .sha256 in {ATTEMPTS} attempts \
         (last: {got}, .sha256 says {expected}); not handed over"
    )]
    Mismatch {
        /// The package.
        name: String,
        /// The digest of the last download.
        got: Sha256,
        /// What the sidecar said.
        expected: Sha256,
    },
    /// This machine could not keep the download.
    #[error("cannot write the download into {dir}: {source}")]
    Io {
        /// The temporary folder.
        dir: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The publisher could not take it (this machine's fault); it is fetched again.
    #[error("{name}: not taken: {error}")]
    NotTaken {
        /// The package.
        name: String,
        /// Why.
        error: String,
    },
}

impl PullError {
    /// Whether the service itself failed (no answer, a broken transfer), rather than one
    /// package.
    fn is_transport(&self) -> bool {
        self.fault() == Fault::Transport
    }

    /// Whose fault: the connection, this machine, or the institute's service and files.
    fn fault(&self) -> Fault {
        match self {
            Self::Request { .. } => Fault::Transport,
            Self::Io { .. } | Self::NotTaken { .. } => Fault::Ours,
            _ => Fault::Sender,
        }
    }
}

/// Everything the pull tasks share.
pub(crate) struct Puller {
    client: reqwest::Client,
    board: Arc<Board>,
    settings: PullSettings,
    tmp_dir: PathBuf,
    max_package_bytes: u64,
    publisher: PublisherHandle,
    journal: Arc<Journal>,
}

impl Puller {
    /// Builds the HTTPS client (reading the token, client certificate and authorities the
    /// settings name) for pulls into the publisher's queue.
    pub(crate) fn new(
        settings: PullSettings,
        tmp_dir: PathBuf,
        max_package_bytes: u64,
        publisher: PublisherHandle,
        journal: Arc<Journal>,
    ) -> anyhow::Result<Self> {
        if settings.urls.iter().any(|u| u.scheme() == "http") {
            tracing::warn!(
                "a `pull_url` is plain http: anyone on the way can change what arrives; only \
                 the evidence (sidecar, signature) protects those packages"
            );
        }
        Ok(Self {
            client: client(&settings)?,
            board: Arc::new(Board::default()),
            settings,
            tmp_dir,
            max_package_bytes,
            publisher,
            journal,
        })
    }

    /// The URLs to poll.
    pub(crate) fn urls(&self) -> Vec<Url> {
        self.settings.urls.clone()
    }

    /// Each URL's state, for operators.
    pub(crate) fn board(&self) -> Arc<Board> {
        self.board.clone()
    }

    /// Polls `url` until `shutdown`, backing off while it fails.
    pub(crate) async fn run(self: Arc<Self>, url: Url, mut shutdown: watch::Receiver<bool>) {
        let mut source = Source::new(url);
        let mut streak: Option<Streak> = None;
        loop {
            let result = tokio::select! {
                r = self.poll(&mut source) => r,
                _ = shutdown.changed() => return,
            };
            let error = result.err().map(|e| (e.to_string(), e.fault()));
            let wait = self.count(&source.url, &mut streak, error.as_ref());
            let error = error.map(|(text, _)| text);
            self.board
                .update(&source, streak.as_ref(), error.as_deref());
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Counts a poll of `url` that ended with `error` (and whose fault it was), if any, into
    /// the run of failures, journaling where a run begins and ends; returns the wait before
    /// the next poll.
    fn count(
        &self,
        url: &Url,
        streak: &mut Option<Streak>,
        error: Option<&(String, Fault)>,
    ) -> Duration {
        let Some((error, fault)) = error else {
            if let Some(s) = streak.take() {
                tracing::info!(%url, failures = s.failures, "pull works again");
                self.note(
                    EventKind::PullRecovered,
                    json!({"url": url.as_str(), "failures": s.failures,
                           "since": s.since.to_string()}),
                );
            }
            return self.settings.interval;
        };
        let failures = match streak {
            Some(s) => {
                s.failures += 1;
                tracing::debug!(%url, error, "pull failed again");
                s.failures
            }
            None => {
                tracing::warn!(%url, error, "pull failed");
                self.note(
                    EventKind::PullError,
                    json!({"url": url.as_str(), "error": error, "fault": fault}),
                );
                *streak = Some(Streak {
                    failures: 1,
                    since: Timestamp::now(),
                });
                1
            }
        };
        backoff(self.settings.interval, self.settings.max_backoff, failures)
    }

    /// Records an event; a journal that cannot be written is reported, not fatal here.
    fn note(&self, kind: EventKind, detail: serde_json::Value) {
        if let Err(e) = self.journal.record(kind, None, detail) {
            tracing::error!(error = %e, "cannot write to the journal");
        }
    }

    /// One look at a source.
    async fn poll(&self, source: &mut Source) -> Result<(), PullError> {
        if source.url.path().ends_with('/') {
            self.poll_index(source).await
        } else {
            self.poll_package(source).await
        }
    }

    /// Fetches every package of an index not taken before.
    async fn poll_index(&self, source: &mut Source) -> Result<(), PullError> {
        let Some(response) = self.get(&source.url, &source.validators).await? else {
            return Ok(());
        };
        let validators = Validators::of(response.headers());
        let body = self
            .read_small(response, &source.url, MAX_INDEX_BYTES, "index")
            .await?;
        let listing = parse_index(&body).map_err(|why| PullError::Index {
            url: source.url.clone(),
            why,
        })?;
        let names: HashSet<&str> = listing.iter().map(|e| e.name.as_str()).collect();
        // What the index no longer lists is forgotten: memory follows the index's limits.
        source.taken.retain(|name, _| names.contains(name.as_str()));
        let mut packages: Vec<&Listed> = listing
            .iter()
            .filter(|e| !is_evidence(&e.name) && source.taken.get(&e.name) != Some(*e))
            .collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        let mut first_error = None;
        for entry in packages {
            let child = |suffix: &str| {
                let name = format!("{}{suffix}", entry.name);
                let listed = suffix.is_empty() || names.contains(name.as_str());
                listed
                    .then(|| source.url.join(&child_reference(&name)).ok())
                    .flatten()
            };
            let Some(url) = child("") else { continue };
            let target = Target {
                name: entry.name.clone(),
                sidecar: child(".sha256"),
                signature: child(".minisig"),
                url,
                adopt_name: false,
            };
            match self.take(&target, None, &mut source.handed).await {
                Ok(_) => {
                    source.taken.insert(entry.name.clone(), entry.clone());
                }
                Err(e) => {
                    tracing::warn!(package = %entry.name, error = %e, "pull: not taken");
                    // A service that stopped answering would fail the rest as slowly.
                    let stop = e.is_transport();
                    first_error.get_or_insert(e);
                    if stop {
                        break;
                    }
                }
            }
        }
        match first_error {
            // The index is remembered only once all it lists is in: a 304 must not hide a
            // package still to fetch.
            None => {
                source.validators = validators;
                Ok(())
            }
            Some(e) => Err(e),
        }
    }

    /// Fetches a single-package address if it changed.
    async fn poll_package(&self, source: &mut Source) -> Result<(), PullError> {
        let Some(response) = self.get(&source.url, &source.validators).await? else {
            return Ok(());
        };
        let url = response.url().clone();
        let name = last_segment(&url).ok_or_else(|| PullError::BadName { url: url.clone() })?;
        let with_suffix = |suffix: &str| {
            let mut u = url.clone();
            u.set_path(&format!("{}{suffix}", url.path()));
            u
        };
        let target = Target {
            name,
            sidecar: Some(with_suffix(".sha256")),
            signature: Some(with_suffix(".minisig")),
            url: url.clone(),
            adopt_name: true,
        };
        source.validators = self
            .take(&target, Some(response), &mut source.handed)
            .await?;
        Ok(())
    }

    /// Downloads a package until its bytes match its sidecar, and hands it to the publisher;
    /// `first` is an answer for the package already in hand; `handed` counts hand-overs.
    /// Returns the validators of the answer whose bytes were taken (or of `first`, when its
    /// digest was known already).
    async fn take(
        &self,
        target: &Target,
        mut first: Option<Response>,
        handed: &mut u64,
    ) -> Result<Validators, PullError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let sidecar = self.evidence(target.sidecar.as_ref()).await?;
            let (mut name, expected) = target.named_digest(sidecar.as_deref());
            if let Some(digest) = expected
                && self.known(digest).await
            {
                tracing::debug!(package = %name, "pull: already received");
                return Ok(first
                    .map(|r| Validators::of(r.headers()))
                    .unwrap_or_default());
            }
            let response = match first.take() {
                Some(r) => r,
                None => match self.get(&target.url, &Validators::default()).await? {
                    Some(r) => r,
                    None => return Ok(Validators::default()),
                },
            };
            let validators = Validators::of(response.headers());
            let download = self.download(response, &target.url).await?;
            let sidecar = match expected {
                Some(e) if e != download.sha256 => {
                    // Replaced while it was being downloaded? The sidecar says now.
                    let fresh = self.evidence(target.sidecar.as_ref()).await?;
                    let (fresh_name, now) = target.named_digest(fresh.as_deref());
                    if now != Some(download.sha256) {
                        last = Some(PullError::Mismatch {
                            name,
                            got: download.sha256,
                            expected: now.unwrap_or(e),
                        });
                        continue;
                    }
                    name = fresh_name;
                    fresh
                }
                _ => sidecar,
            };
            let signature = self.evidence(target.signature.as_ref()).await?;
            self.hand_over(target, name, download, sidecar, signature)
                .await?;
            *handed += 1;
            return Ok(validators);
        }
        Err(last.unwrap_or_else(|| PullError::NotTaken {
            name: target.name.clone(),
            error: "no download matched its .sha256".to_owned(),
        }))
    }

    /// Whether the journal holds a package with `digest` as decided (read off the async
    /// threads; a journal that cannot answer means "no", and the package is fetched). One
    /// this machine failed to take is fetched again.
    async fn known(&self, digest: Sha256) -> bool {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || journal.decided(digest))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false)
    }

    /// Gives a download to the publisher and waits for what became of it.
    async fn hand_over(
        &self,
        target: &Target,
        name: String,
        download: Download,
        sidecar: Option<String>,
        signature: Option<String>,
    ) -> Result<(), PullError> {
        // Kept from here on: if this task is stopped while the publisher reads the file, the
        // file must stay; what is left in the temporary folder is cleared at the next start.
        let path = download.file.keep().map_err(|e| PullError::Io {
            dir: self.tmp_dir.clone(),
            source: e.error,
        })?;
        tracing::info!(package = %name, url = %target.url, bytes = download.len, "pulled");
        let stopping = || PullError::NotTaken {
            name: name.clone(),
            error: "the server is stopping".to_owned(),
        };
        let outcome = match PackageName::new(&name) {
            Some(package) => {
                let received = Received {
                    name: package,
                    path: path.clone(),
                    channel: Channel::Pull,
                    origin: Some(target.url.to_string()),
                    sidecar,
                    signature,
                    received_at: Timestamp::now(),
                };
                self.publisher
                    .ingest(received)
                    .await
                    .map_err(|_| stopping())
            }
            None => Err(PullError::NotTaken {
                name: name.clone(),
                error: "not a package file name".to_owned(),
            }),
        };
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a pulled file");
        }
        match outcome? {
            Outcome::Failed { error, .. } => Err(PullError::NotTaken { name, error }),
            // Published, archived, a duplicate, or refused for itself (journaled by the
            // publisher): the same bytes are not fetched again.
            _ => Ok(()),
        }
    }

    /// A GET of `url`, conditional on `validators`; `None` when the server says 304.
    async fn get(&self, url: &Url, validators: &Validators) -> Result<Option<Response>, PullError> {
        let mut request = self.client.get(url.clone());
        if let Some(etag) = &validators.etag {
            request = request.header(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(date) = &validators.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, date.clone());
        }
        let response = request.send().await.map_err(|e| request_error(url, &e))?;
        match response.status() {
            StatusCode::OK => Ok(Some(response)),
            StatusCode::NOT_MODIFIED if validators.any() => Ok(None),
            status => Err(PullError::Status {
                url: url.clone(),
                status,
                hint: hint(status),
            }),
        }
    }

    /// The text of an evidence file; `None` when there is no address or the server has none.
    async fn evidence(&self, url: Option<&Url>) -> Result<Option<String>, PullError> {
        let Some(url) = url else { return Ok(None) };
        let response = match self.get(url, &Validators::default()).await {
            Ok(r) => r,
            Err(PullError::Status {
                status: StatusCode::NOT_FOUND | StatusCode::GONE,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(response) = response else {
            return Ok(None);
        };
        let bytes = self
            .read_small(response, url, MAX_EVIDENCE_BYTES, "evidence file")
            .await?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// A small body, whole, held to `limit`.
    async fn read_small(
        &self,
        mut response: Response,
        url: &Url,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, PullError> {
        let too_large = || PullError::TooLarge {
            url: url.clone(),
            limit,
            what,
        };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| request_error(url, &e))? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A package body into a temporary file, hashed on the way.
    async fn download(&self, mut response: Response, url: &Url) -> Result<Download, PullError> {
        let limit = self.max_package_bytes;
        let too_large = || PullError::TooLarge {
            url: url.clone(),
            limit,
            what: "max_package_bytes",
        };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let io = |source| PullError::Io {
            dir: self.tmp_dir.clone(),
            source,
        };
        let named = tempfile::Builder::new()
            .prefix(".pull-")
            .suffix(".part")
            .tempfile_in(&self.tmp_dir)
            .map_err(io)?;
        let (file, path) = named.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = sha2::Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| request_error(url, &e))? {
            len += chunk.len() as u64;
            if len > limit {
                return Err(too_large());
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(Download {
            file: path,
            sha256: Sha256::from_bytes(hasher.finalize().into()),
            len,
        })
    }
}

/// What is polled, and what is known of it.
struct Source {
    url: Url,
    /// Validators of the last complete look.
    validators: Validators,
    /// Index entries handed over (or found already received), as listed then.
    taken: HashMap<String, Listed>,
    /// Packages handed to the publisher since the start.
    handed: u64,
}

impl Source {
    fn new(url: Url) -> Self {
        Self {
            url,
            validators: Validators::default(),
            taken: HashMap::new(),
            handed: 0,
        }
    }
}

/// Each pulled URL's state, as operators see it on the admin listener.
#[derive(Debug, Default)]
pub(crate) struct Board(Mutex<BTreeMap<String, UrlState>>);

/// One pulled URL's state.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct UrlState {
    /// The URL.
    pub(crate) url: String,
    /// When it was last polled.
    pub(crate) last_poll: String,
    /// When a poll last succeeded.
    pub(crate) last_success: Option<String>,
    /// Packages handed to the publisher since the start.
    pub(crate) packages_handed_over: u64,
    /// When the current run of failed polls began.
    pub(crate) failing_since: Option<String>,
    /// Failed polls in a row.
    pub(crate) failures: u64,
    /// What the last failed poll said.
    pub(crate) last_error: Option<String>,
}

impl Board {
    /// Records a poll of `source` that ended with `error`, if any, within `streak`.
    fn update(&self, source: &Source, streak: Option<&Streak>, error: Option<&str>) {
        let now = Timestamp::now().to_string();
        let mut board = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let state = board
            .entry(source.url.to_string())
            .or_insert_with(|| UrlState {
                url: source.url.to_string(),
                last_poll: now.clone(),
                last_success: None,
                packages_handed_over: 0,
                failing_since: None,
                failures: 0,
                last_error: None,
            });
        state.last_poll = now.clone();
        state.packages_handed_over = source.handed;
        state.failing_since = streak.map(|s| s.since.to_string());
        state.failures = streak.map_or(0, |s| s.failures);
        match error {
            Some(e) => state.last_error = Some(e.to_owned()),
            None => {
                state.last_success = Some(now);
                state.last_error = None;
            }
        }
    }

    /// Every URL's state, in URL order.
    pub(crate) fn snapshot(&self) -> Vec<UrlState> {
        let board = self.0.lock().unwrap_or_else(|p| p.into_inner());
        board.values().cloned().collect()
    }
}

/// `ETag` and `Last-Modified` of an answer, sent back to ask "changed since?".
#[derive(Debug, Default)]
struct Validators {
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl Validators {
    fn of(headers: &HeaderMap) -> Self {
        Self {
            etag: headers.get(header::ETAG).cloned(),
            last_modified: headers.get(header::LAST_MODIFIED).cloned(),
        }
    }

    fn any(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// One package to fetch and where its evidence is.
struct Target {
    name: String,
    url: Url,
    sidecar: Option<Url>,
    signature: Option<Url>,
    /// Whether a sidecar naming one other file renames the package (single-package
    /// addresses; an index's names are the institute's already).
    adopt_name: bool,
}

impl Target {
    /// The package's name and the digest its sidecar `text` gives for it.
    fn named_digest(&self, text: Option<&str>) -> (String, Option<Sha256>) {
        let Some(text) = text else {
            return (self.name.clone(), None);
        };
        if let Ok(digest) = sidecar_digest(text, &self.name) {
            return (self.name.clone(), Some(digest));
        }
        match sidecar_single_entry(text) {
            Some((digest, name)) if self.adopt_name && PackageName::new(&name).is_some() => {
                (name, Some(digest))
            }
            _ => (self.name.clone(), None),
        }
    }
}

/// A finished download.
struct Download {
    file: tempfile::TempPath,
    sha256: Sha256,
    len: u64,
}

/// A run of failed polls.
struct Streak {
    failures: u64,
    since: Timestamp,
}

/// One entry of an index, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    name: String,
    size: Option<u64>,
    mtime: Option<String>,
}

/// An entry of a JSON index: a name, or an object with one (nginx's `autoindex_format json`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JsonEntry {
    Name(String),
    Entry {
        name: String,
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        size: Option<u64>,
        #[serde(default)]
        mtime: Option<String>,
    },
}

/// The files an index lists, valid names only.
fn parse_index(body: &[u8]) -> Result<Vec<Listed>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "it is not UTF-8 text".to_owned())?;
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let entries: Vec<Listed> = if text.starts_with('[') {
        let items: Vec<JsonEntry> =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        if items.len() > MAX_INDEX_ENTRIES {
            return Err(format!("more than {MAX_INDEX_ENTRIES} entries"));
        }
        items
            .into_iter()
            .filter_map(|item| match item {
                JsonEntry::Name(name) => Some(Listed {
                    name,
                    size: None,
                    mtime: None,
                }),
                JsonEntry::Entry {
                    name,
                    kind,
                    size,
                    mtime,
                } => (kind.is_none_or(|k| k == "file")).then_some(Listed { name, size, mtime }),
            })
            .collect()
    } else if text.starts_with('<') {
        return Err(
            "it is HTML; serve it as JSON (nginx: `autoindex_format json;`) or as \
                    plain text with one name per line"
                .to_owned(),
        );
    } else {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if lines.len() > MAX_INDEX_ENTRIES {
            return Err(format!("more than {MAX_INDEX_ENTRIES} entries"));
        }
        lines
            .into_iter()
            .map(|name| Listed {
                name: name.to_owned(),
                size: None,
                mtime: None,
            })
            .collect()
    };
    Ok(entries
        .into_iter()
        .filter(|e| PackageName::new(&e.name).is_some())
        .collect())
}

/// A relative reference to the file `name` beside the index: one escaped segment, led by
/// `./` so a name with a colon cannot read as a scheme.
fn child_reference(name: &str) -> String {
    format!("./{}", utf8_percent_encode(name, SEGMENT))
}

/// The decoded last segment of `url`, if it is a valid file name.
fn last_segment(url: &Url) -> Option<String> {
    let raw = url.path_segments()?.next_back()?;
    let name = percent_decode_str(raw).decode_utf8().ok()?;
    PackageName::new(&name).map(|n| n.to_string())
}

/// The wait after `failures` failed polls in a row: doubling from `interval`, at most `max`.
fn backoff(interval: Duration, max: Duration, failures: u64) -> Duration {
    let doublings = u32::try_from(failures.min(16)).unwrap_or(16);
    interval.saturating_mul(1 << doublings).min(max)
}

/// A transport failure in words, with its causes.
fn request_error(url: &Url, e: &reqwest::Error) -> PullError {
    use std::error::Error as _;
    let mut why = if e.is_timeout() {
        "no answer in time (`pull_stall_timeout` without a byte, or longer than `pull_timeout`)"
            .to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the transfer failed".to_owned()
    };
    let mut cause = e.source();
    while let Some(c) = cause {
        why.push_str(": ");
        why.push_str(&c.to_string());
        cause = c.source();
    }
    PullError::Request {
        url: url.clone(),
        why,
    }
}

/// What to check for a status that says something about this side.
fn hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            " (check `pull_token_file` or `pull_client_cert`)"
        }
        StatusCode::NOT_FOUND => " (check `pull_url`)",
        _ => "",
    }
}

/// The HTTPS client: the public web's authorities plus `pull_ca`, the client certificate and
/// the bearer token when set, the timeouts of the settings, no compression (packages must
/// arrive byte for byte as sent).
fn client(settings: &PullSettings) -> anyhow::Result<reqwest::Client> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &settings.extra_roots {
        let certs = read_certificates(path).context("setting `pull_ca`")?;
        for cert in certs {
            roots.add(cert).with_context(|| {
                format!(
                    "setting `pull_ca`: {} holds a certificate that cannot be an authority",
                    path.display()
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_root_certificates(roots);
    let mut tls = match &settings.client_identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                read_certificates(cert).context("setting `pull_client_cert`")?,
                read_private_key(key).context("setting `pull_client_key`")?,
            )
            .context("settings `pull_client_cert` and `pull_client_key` do not go together")?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut headers = HeaderMap::new();
    if let Some(path) = &settings.token_file {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("setting `pull_token_file`: cannot read {}", path.display())
        })?;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", text.trim()))
            .ok()
            .filter(|_| !text.trim().is_empty())
            .with_context(|| {
                format!(
                    "setting `pull_token_file`: {} must hold one token on one line",
                    path.display()
                )
            })?;
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
    }
    let https_only = settings.urls.iter().all(|u| u.scheme() == "https");
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .default_headers(headers)
        .user_agent(concat!("difusor/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT.min(settings.stall_timeout))
        .read_timeout(settings.stall_timeout)
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::limited(5))
        .https_only(https_only)
        .build()
        .context("cannot set up the HTTPS client for `pull_url`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_in_every_accepted_form_give_their_file_names() {
        let nginx = br#"[{"name":"sub","type":"directory","mtime":"x"},
            {"name":"20270606_2000_PREP_CAMP.zip","type":"file","mtime":"Sun, 06 Jun 2027 20:00:00 GMT","size":10},
            {"name":"../etc/passwd","type":"file"},{"name":".oculto","type":"file"}]"#;
        let listed = parse_index(nginx).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "20270606_2000_PREP_CAMP.zip");
        assert_eq!(listed[0].size, Some(10));
        let names = parse_index(br#"["a.zip", "a.zip.sha256", "b/c.zip"]"#).unwrap();
        let names: Vec<&str> = names.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a.zip", "a.zip.sha256"]);
        let text = parse_index(b"\xef\xbb\xbf# paquetes\na.zip\r\n\n..\nb.zip\n").unwrap();
        let text: Vec<&str> = text.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(text, ["a.zip", "b.zip"]);
        assert!(
            parse_index(b"<html><a href=\"a.zip\">")
                .unwrap_err()
                .contains("HTML")
        );
        assert!(parse_index(b"[{\"nombre\": 1}]").is_err());
        assert!(parse_index(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn the_last_segment_is_decoded_and_must_be_a_file_name() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            last_segment(&url("https://a.mx/prep/20270606_2000_PREP_CAMP.zip")).as_deref(),
            Some("20270606_2000_PREP_CAMP.zip")
        );
        assert_eq!(
            last_segment(&url("https://a.mx/p/paquete%20uno.zip")).as_deref(),
            Some("paquete uno.zip")
        );
        assert_eq!(last_segment(&url("https://a.mx/p/a%2Fb.zip")), None);
        assert_eq!(last_segment(&url("https://a.mx/p/.oculto")), None);
        assert_eq!(last_segment(&url("https://a.mx/")), None);
    }

    #[test]
    fn a_latest_alias_takes_the_name_its_sidecar_gives() {
        let digest = Sha256::of(b"paquete");
        let target = |adopt_name| Target {
            name: "ultimo.zip".to_owned(),
            url: Url::parse("https://a.mx/prep/ultimo.zip").unwrap(),
            sidecar: None,
            signature: None,
            adopt_name,
        };
        let real = format!("{digest}  paquetes/20270606_2000_PREP_CAMP.zip\n");
        assert_eq!(
            target(true).named_digest(Some(&real)),
            ("20270606_2000_PREP_CAMP.zip".to_owned(), Some(digest))
        );
        // An index's names stand; the sidecar then does not match and the publisher says so.
        assert_eq!(
            target(false).named_digest(Some(&real)),
            ("ultimo.zip".to_owned(), None)
        );
        // A sidecar for the alias itself, a bare digest, none, or one naming a hidden file.
        for (text, expected) in [
            (Some(format!("{digest}  ultimo.zip")), Some(digest)),
            (Some(digest.to_hex()), Some(digest)),
            (None, None),
            (Some(format!("{digest}  .oculto.zip")), None),
        ] {
            assert_eq!(
                target(true).named_digest(text.as_deref()),
                ("ultimo.zip".to_owned(), expected)
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(10), s(120), 1), s(20));
        assert_eq!(backoff(s(10), s(120), 2), s(40));
        assert_eq!(backoff(s(10), s(120), 3), s(80));
        assert_eq!(backoff(s(10), s(120), 4), s(120));
        assert_eq!(backoff(s(10), s(120), u64::MAX), s(120));
    }

    #[test]
    fn names_become_single_escaped_segments() {
        let base = Url::parse("https://a.mx/prep/").unwrap();
        let join = |n: &str| base.join(&child_reference(n)).unwrap().to_string();
        assert_eq!(join("a b#?.zip"), "https://a.mx/prep/a%20b%23%3F.zip");
        assert_eq!(join("https:x.zip"), "https://a.mx/prep/https:x.zip");
        assert_eq!(join("x%2F.zip"), "https://a.mx/prep/x%252F.zip");
    }
}
