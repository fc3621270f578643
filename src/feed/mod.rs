//! The replication feed: the private listener (`feed_listen`) where replicas (`replica_of`)
//! take what this node received from the institute, so that every node behind the load
//! balancer serves the same cortes.
//!
//! Routes (GET, and HEAD):
//! - `/packages/`: the packages this node took that a replica needs, with their evidence, as
//!   nginx's `autoindex_format json` listing: the live corte's packages first, then the
//!   newest others, [`listing::MAX_LISTED`] in all, so the listing stays within what a
//!   replica reads however many packages this node took ([`listing`]); a replica's pull
//!   reads it as any index and verifies each package as if it came from the institute;
//! - `/packages/<name>`, `/packages/<name>.sha256`, `/packages/<name>.minisig`: a package's
//!   bytes from the verified archive under the name it was taken under, its sidecar (the one
//!   it was taken with, or its digest's `sha256sum` line), its signature exactly as received;
//! - `/state`: `{"live": {"corte", "package", "sha256"} | null, "notice": text | null,
//!   "rollback": {"seq", "corte"} | null}`, where `rollback` is the operator's last rollback
//!   when the live corte came from it.
//!
//! # Guarantees
//! - Every request needs `Authorization: Bearer <feed token>` (compared in constant time)
//!   or, over HTTPS with `feed_client_ca`, a client certificate from that authority. Others
//!   get 401, and a `warning` in the journal (`"check": "feed-request"`) and the log at
//!   most once a minute per address. Served over HTTPS with the node's certificate, or
//!   plain HTTP on loopback only ([`crate::config`] refuses anything else).
//! - `/packages/` and `/state` carry a strong ETag. A request whose `If-None-Match` names
//!   the current one is held until what it names changes (the publisher tells of every
//!   decision, the gate of every notice change: nothing here polls) or `feed_hold` passes
//!   (304), or the server stops (304 at once, so a stop never waits for a hold). A request
//!   saying how long its client waits (`Prefer: wait=<seconds>`, RFC 7240 §4.3, as replicas
//!   send) is held no longer than that: a `feed_hold` longer than a replica's
//!   `pull_stall_timeout` never makes its quiet polls time out.
//!   `If-None-Match: *` matches every version, so no change could end its hold: it is
//!   answered 304 at once (RFC 9110 §13.1.2), never held.
//! - At most [`MAX_CONNECTIONS`] connections are open, [`MAX_PER_ADDRESS`] from one address
//!   (the oldest idle one gives way): sockets opened at the feed's port and left silent cannot
//!   take the descriptors the public site needs.
//! - A package is streamed from the disk in bounded chunks, never read whole into memory.
//!   A name is matched exactly against the current listing: any other name, `..` or a
//!   folder included, is 404. Other paths are 404, other methods 405.

mod listing;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::watch;

use crate::archive::Archive;
use crate::config::FeedSettings;
use crate::hash::Sha256;
use crate::http::conditional::{none_match, none_match_any};
use crate::http::gate::Gate;
use crate::http::refusals::Refusals;
use crate::http::{BoxedBody, CertifiedClient, PREFER, bearer_is, file_body, full, json_response};
use crate::journal::{Journal, JournalError, Lineage};
use crate::site::Live;
use listing::{Listed, Listing};

/// Most open connections to the feed: a few replicas, each holding two long-polls and a
/// download at most.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// Most open connections to the feed from one address (its oldest idle one gives way).
pub(crate) const MAX_PER_ADDRESS: usize = 32;

/// Why the feed could not answer (this node's fault: a 500).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FeedError {
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The live corte's publications cannot be followed.
    #[error(transparent)]
    Lineage(#[from] Lineage),
    /// A verified package could not be opened.
    #[error("cannot read the archived package {sha256}: {source}")]
    Archive {
        /// The package.
        sha256: Sha256,
        /// The failure.
        source: std::io::Error,
    },
    /// The work was cut short (the server is stopping).
    #[error("the server is stopping")]
    Stopping,
}

/// What the feed serves from, and who may ask.
pub(crate) struct Feed {
    live: Live,
    journal: Arc<Journal>,
    archive: Archive,
    gate: Arc<Gate>,
    /// Told of every decision of the publisher.
    decided: watch::Receiver<u64>,
    /// Turns true when the server stops.
    stop: watch::Receiver<bool>,
    /// The bearer token, if one is accepted.
    token: Option<String>,
    /// Whether client certificates are accepted.
    client_certificates: bool,
    /// Longest hold of a request whose validator matches.
    hold: Duration,
    /// The listing and the number of decisions it was built after.
    cache: Mutex<Option<(u64, Arc<Listing>)>>,
    /// Refused requests, journaled at most once a minute per address.
    refusals: Refusals,
}

/// What the feed is built from.
pub(crate) struct Sources {
    /// The live site.
    pub(crate) live: Live,
    /// The journal.
    pub(crate) journal: Arc<Journal>,
    /// The archive.
    pub(crate) archive: Archive,
    /// The gate, with the notice.
    pub(crate) gate: Arc<Gate>,
    /// The publisher's decisions.
    pub(crate) decided: watch::Receiver<u64>,
    /// Turns true when the server stops.
    pub(crate) stop: watch::Receiver<bool>,
}

impl Feed {
    /// A feed over `sources`, admitting whom `settings` admit.
    pub(crate) fn new(settings: &FeedSettings, sources: Sources) -> Arc<Self> {
        let Sources {
            live,
            journal,
            archive,
            gate,
            decided,
            stop,
        } = sources;
        let refusals = Refusals::new(journal.clone(), "feed-request");
        Arc::new(Self {
            live,
            journal,
            archive,
            gate,
            decided,
            stop,
            token: settings.token.clone(),
            client_certificates: settings.client_ca.is_some(),
            hold: settings.hold,
            cache: Mutex::new(None),
            refusals,
        })
    }

    /// Whether the request carries the token or came with an accepted client certificate.
    fn authorised(&self, req: &Request<Incoming>) -> bool {
        let token = self
            .token
            .as_ref()
            .is_some_and(|t| bearer_is(req.headers(), t));
        token || (self.client_certificates && req.extensions().get::<CertifiedClient>().is_some())
    }

    /// Journals a refused request unless `peer` was journaled in the last minute, and logs
    /// it: as a warning when journaled, at `debug` otherwise, so that an address repeating
    /// wrong tokens cannot flood the log.
    fn refused(&self, peer: IpAddr, req: &Request<Incoming>) {
        let path: String = req.uri().path().chars().take(200).collect();
        let credentials = if req.headers().contains_key(header::AUTHORIZATION) {
            "a token that is not the feed's"
        } else {
            "no token and no client certificate"
        };
        let journaled = self.refusals.refused(
            peer,
            format!("the replication feed refused a request from {peer} with {credentials}"),
            json!({"method": req.method().as_str(), "path": path}),
        );
        if journaled {
            tracing::warn!(%peer, path, credentials, "replication feed request refused; more from this address within a minute are logged at debug only");
        } else {
            tracing::debug!(%peer, path, credentials, "replication feed request refused");
        }
    }

    /// The listing after the publisher's latest decision.
    async fn listing(&self) -> Result<Arc<Listing>, FeedError> {
        let decisions = *self.decided.borrow();
        if let Some((built_after, listing)) = &*self.cache.lock().unwrap_or_else(|p| p.into_inner())
            && *built_after == decisions
        {
            return Ok(listing.clone());
        }
        let (journal, archive) = (self.journal.clone(), self.archive.clone());
        let live = self.live.load().corte().map(|c| c.seq);
        let listing = tokio::task::spawn_blocking(move || Listing::build(&journal, &archive, live))
            .await
            .map_err(|_| FeedError::Stopping)??;
        let listing = Arc::new(listing);
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((decisions, listing.clone()));
        Ok(listing)
    }

    /// `/state` now: its body and ETag.
    async fn state(&self) -> Result<(Bytes, HeaderValue), FeedError> {
        let site = self.live.load();
        let corte = site.corte();
        let journal = self.journal.clone();
        let rollback = tokio::task::spawn_blocking(move || journal.last_rollback())
            .await
            .map_err(|_| FeedError::Stopping)??
            .filter(|(seq, _)| Some(*seq) == corte.map(|c| c.seq));
        let state = json!({
            "live": corte.map(|c| json!({
                "corte": c.id, "package": c.package_name, "sha256": c.package.to_hex(),
            })),
            "notice": self.gate.notice(),
            "rollback": rollback.map(|(seq, corte)| json!({"seq": seq, "corte": corte})),
        });
        let body = Bytes::from(serde_json::to_vec(&state).unwrap_or_default());
        Ok((body.clone(), etag_of(&body)))
    }

    /// The document `render` makes, held while the request's `If-None-Match` names it (see
    /// the module documentation).
    async fn held<F, Fut>(
        &self,
        headers: &HeaderMap,
        render: F,
    ) -> Result<Response<BoxedBody>, FeedError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(Bytes, HeaderValue), FeedError>>,
    {
        // Told of changes from before the first look, so none between a look and the wait
        // that follows it is missed.
        let mut decided = self.decided.clone();
        decided.borrow_and_update();
        let mut notices = self.gate.notice_changes();
        let mut stop = self.stop.clone();
        let until = tokio::time::Instant::now() + self.hold.min(preferred_wait(headers));
        let any = none_match_any(headers);
        loop {
            let (body, etag) = render().await?;
            if !none_match(headers, &etag) {
                return Ok(document(body, etag, "application/json"));
            }
            if any || *stop.borrow_and_update() {
                return Ok(not_modified(etag));
            }
            let changed = tokio::select! {
                r = decided.changed() => r.is_ok(),
                r = notices.changed() => r.is_ok(),
                () = tokio::time::sleep_until(until) => false,
                _ = stop.changed() => false,
            };
            if !changed {
                return Ok(not_modified(etag));
            }
        }
    }

    /// A listed file: a package streamed from the archive, or its evidence.
    async fn file(&self, raw: &str, headers: &HeaderMap) -> Result<Response<BoxedBody>, FeedError> {
        let listing = self.listing().await?;
        let name = percent_encoding::percent_decode_str(raw).decode_utf8().ok();
        let Some(listed) = name.as_deref().and_then(|n| listing.get(n)) else {
            return Ok(error(
                StatusCode::NOT_FOUND,
                "no such file in the listing of /packages/",
            ));
        };
        let sha256 = match listed {
            Listed::Evidence(text) => {
                let etag = etag_of(text);
                if none_match(headers, &etag) {
                    return Ok(not_modified(etag));
                }
                return Ok(document(text.clone(), etag, "text/plain; charset=utf-8"));
            }
            Listed::Package(sha256) => *sha256,
        };
        let etag = quoted(&sha256.to_hex());
        if none_match(headers, &etag) {
            return Ok(not_modified(etag));
        }
        let archived = |source| FeedError::Archive { sha256, source };
        // A regular file only: never what a link put in its place points to.
        let path = self.archive.path_of(sha256);
        let file = tokio::task::spawn_blocking(move || crate::intake::open_regular(&path))
            .await
            .map_err(std::io::Error::other)
            .and_then(|opened| opened)
            .map(tokio::fs::File::from_std)
            .map_err(archived)?;
        let len = file.metadata().await.map_err(archived)?.len();
        let mut res = Response::new(file_body(file));
        let h = res.headers_mut();
        h.insert(header::ETAG, etag);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Ok(res)
    }
}

/// Answers one request on the feed's listener.
pub(crate) async fn handle(
    feed: Arc<Feed>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<BoxedBody> {
    if !feed.authorised(&req) {
        feed.refused(peer.ip(), &req);
        let mut res = error(
            StatusCode::UNAUTHORIZED,
            "the replication feed needs `Authorization: Bearer <token>` (the primary's \
             `feed_token_file`, the replica's `pull_token_file`) or a client certificate from \
             `feed_client_ca`",
        );
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    let path = req.uri().path();
    let file = path
        .strip_prefix("/packages/")
        .filter(|rest| !rest.is_empty());
    if path != "/packages/" && path != "/state" && file.is_none() {
        return error(StatusCode::NOT_FOUND, "no such route");
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut res = error(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    let headers = req.headers();
    let answer = match file {
        Some(raw) => feed.file(raw, headers).await,
        None if path == "/state" => feed.held(headers, || feed.state()).await,
        None => {
            feed.held(headers, || async {
                let listing = feed.listing().await?;
                Ok((listing.body.clone(), listing.etag.clone()))
            })
            .await
        }
    };
    answer.unwrap_or_else(|e| {
        tracing::error!(error = %e, path, "the replication feed cannot answer");
        error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
    })
}

/// How long the client says it waits for an answer: `wait=<seconds>` in its `Prefer` headers
/// (RFC 7240 §4.3; the shortest when several are given), or for ever.
fn preferred_wait(headers: &HeaderMap) -> Duration {
    headers
        .get_all(PREFER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|preference| {
            let (name, value) = preference.split(';').next()?.split_once('=')?;
            let value = value.trim().trim_matches('"');
            let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            (name.trim().eq_ignore_ascii_case("wait") && digits)
                .then(|| value.parse::<u64>().unwrap_or(u64::MAX))
        })
        .min()
        .map_or(Duration::MAX, Duration::from_secs)
}

/// The strong ETag of `body`: the first 128 bits of its SHA-256.
fn etag_of(body: &[u8]) -> HeaderValue {
    let hex = Sha256::of(body).to_hex();
    quoted(hex.get(..32).unwrap_or(&hex))
}

/// `"<text>"` as a header value (hex digits only, always valid).
fn quoted(text: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{text}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// A 200 with `body`, its ETag and type.
fn document(body: Bytes, etag: HeaderValue, content_type: &'static str) -> Response<BoxedBody> {
    let mut res = Response::new(full(body));
    let h = res.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// A 304 for `etag`.
fn not_modified(etag: HeaderValue) -> Response<BoxedBody> {
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::NOT_MODIFIED;
    res.headers_mut().insert(header::ETAG, etag);
    res
}

/// An error as `{"error": …}`.
fn error(status: StatusCode, text: &str) -> Response<BoxedBody> {
    json_response(status, &json!({ "error": text }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preferred_wait_is_read_from_any_prefer_header() {
        let wait = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(PREFER, HeaderValue::from_str(v).unwrap());
            }
            preferred_wait(&headers)
        };
        let s = Duration::from_secs;
        assert_eq!(wait(&["wait=20"]), s(20));
        assert_eq!(wait(&["respond-async, WAIT = \"7\"; x=1"]), s(7));
        assert_eq!(wait(&["wait=30", "wait=5"]), s(5));
        assert_eq!(wait(&["wait=0"]), s(0));
        assert_eq!(wait(&["wait=99999999999999999999999"]), s(u64::MAX));
        for none in [
            &[][..],
            &["wait="],
            &["wait=-1"],
            &["wait=1.5"],
            &["return=minimal"],
        ] {
            assert_eq!(wait(none), Duration::MAX, "{none:?}");
        }
    }
}
