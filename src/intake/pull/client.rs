//! The pull channel's HTTP client, and how it reads what it is sent.
//!
//! Certificates are checked against the public web's authorities plus `pull_ca`; a client
//! certificate (`pull_client_cert`, `pull_client_key`) and a bearer token (`pull_token_file`)
//! are sent when set.
//!
//! # Guarantees
//! - Nothing is decompressed on the way: packages arrive byte for byte as sent.
//! - Requests are conditional (`If-None-Match`, `If-Modified-Since`): an unchanged index or
//!   package costs one 304.
//! - A transport failure is told in words with every cause, a peer's text in them with its
//!   control characters made visible ([`transport_reason`]).
//! - Redirects from the institute's addresses are followed ([`MAX_REDIRECTS`] at most), never
//!   from an `https://` address to one that is not (whatever other `pull_url`s are plain
//!   http), nor to one that is not http at all (`file:`, `ftp:`): such a redirect is a failed
//!   poll by the service's fault, saying where it pointed.
//!   A replica's primary is not followed anywhere: its redirect is a failed poll.
//! - The bearer token goes only to the servers `pull_url` and `replica_of` name (the same
//!   scheme, host and port): never to a server a redirect leads to, neither with the redirect
//!   nor with the evidence and downloads asked at the address it ended at. A 401 or 403 from
//!   such a server says so. Nor over plain http past this machine: such a `pull_url` beside
//!   a token stops the server at start ([`super::settings`]).
//! - A conditional request to a replica's primary says how long this client waits for its
//!   answer (`Prefer: wait=<seconds>`, two thirds of `pull_stall_timeout`): the feed holds it
//!   no longer, whatever its `feed_hold`, so a quiet spell is never a failed poll.
//! - Every body is read to a limit: refused by its `Content-Length` before the first byte,
//!   and by count while reading. A request is abandoned after `pull_timeout` in all or
//!   `pull_stall_timeout` without a byte.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode, Url};
use url::Origin;

use super::PullError;
use super::PullSettings;
use super::settings::ClientTls;
use crate::http::PREFER;
use crate::http::tls::{read_certificates, read_private_key};
use crate::peer_text::PeerText;

/// Longest wait for a TCP and TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most redirects followed for one request to the institute's addresses.
const MAX_REDIRECTS: usize = 5;

/// The HTTPS client of the pull tasks.
pub(super) struct Client {
    /// For the institute's addresses: follows up to five redirects.
    institute: reqwest::Client,
    /// For a replica's primary (`replica_of`): follows none.
    primary: reqwest::Client,
    /// The primary's feed and state, when this node is a replica.
    primary_urls: Vec<Url>,
    /// `Authorization: Bearer …` of `pull_token_file`, when set.
    token: Option<HeaderValue>,
    /// The servers the token is sent to: those of `pull_url` and `replica_of`.
    token_origins: Vec<Origin>,
    /// `wait=<seconds>` (RFC 7240 §4.3), sent as `Prefer` with a conditional request to the
    /// primary: how long it may hold it ([`held_for`]).
    wait: HeaderValue,
}

/// How long a primary may hold a conditional request before it answers, as this client waits
/// for an answer: two thirds of `pull_stall_timeout` (and of `pull_timeout`), in whole
/// seconds, so that a hold ends well before the client gives up on it (20 s by default, the
/// feed's own `feed_hold`).
fn held_for(settings: &PullSettings) -> Duration {
    let waits = settings.stall_timeout.min(settings.timeout);
    Duration::from_secs((waits * 2 / 3).as_secs())
}

impl Client {
    /// The HTTPS client: the public web's authorities plus `pull_ca`, the client certificate
    /// and the bearer token when set, the timeouts of the settings, no compression (packages
    /// must arrive byte for byte as sent).
    pub(super) fn new(settings: &PullSettings) -> anyhow::Result<Self> {
        let build = |redirects| {
            let tls = tls_config(&settings.tls)?;
            let https_only = settings
                .urls
                .iter()
                .chain(&settings.feed)
                .all(|u| u.scheme() == "https");
            reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .user_agent(concat!("difusor/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(CONNECT_TIMEOUT.min(settings.stall_timeout))
                .read_timeout(settings.stall_timeout)
                .timeout(settings.timeout)
                .redirect(redirects)
                .https_only(https_only)
                .build()
                .context("cannot set up the HTTPS client for `pull_url`")
        };
        Ok(Self {
            institute: build(institute_redirects())?,
            primary: build(reqwest::redirect::Policy::none())?,
            primary_urls: settings
                .feed
                .iter()
                .chain(&settings.state)
                .cloned()
                .collect(),
            token: bearer(&settings.tls)?,
            token_origins: settings
                .urls
                .iter()
                .chain(&settings.feed)
                .chain(&settings.state)
                .map(Url::origin)
                .collect(),
            wait: HeaderValue::from_str(&format!("wait={}", held_for(settings).as_secs()))
                .context("cannot write the `Prefer` header")?,
        })
    }

    /// The token to send with a request for `url`: only to a server the settings name.
    fn token_for(&self, url: &Url) -> Option<&HeaderValue> {
        self.token
            .as_ref()
            .filter(|_| self.token_origins.contains(&url.origin()))
    }

    /// Whether `url` is the primary's feed, state, or something under them.
    fn is_primary(&self, url: &Url) -> bool {
        self.primary_urls
            .iter()
            .any(|p| url.as_str().starts_with(p.as_str()))
    }

    /// A GET of `url`, conditional on `validators`; `None` when the server says 304.
    pub(super) async fn get(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<Option<Response>, PullError> {
        let primary = self.is_primary(url);
        let client = if primary {
            &self.primary
        } else {
            &self.institute
        };
        let mut request = client.get(url.clone());
        // Per request, not a default header: a download at the address a redirect ended at
        // (a package's evidence beside it) must not carry it to another server.
        if let Some(token) = self.token_for(url) {
            request = request.header(header::AUTHORIZATION, token.clone());
        }
        if let Some(etag) = &validators.etag {
            request = request.header(header::IF_NONE_MATCH, etag.clone());
            // The primary holds such a request until something changes (long-poll): not
            // longer than this client waits for its answer, whatever its `feed_hold`.
            if primary {
                request = request.header(PREFER, self.wait.clone());
            }
        }
        if let Some(date) = &validators.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, date.clone());
        }
        let response = request.send().await.map_err(|e| request_error(url, &e))?;
        match response.status() {
            StatusCode::OK => Ok(Some(response)),
            StatusCode::NOT_MODIFIED if validators.any() => Ok(None),
            status if primary && status.is_redirection() => Err(PullError::Redirect {
                url: url.clone(),
                to: location(&response)
                    .unwrap_or_else(|| format!("nowhere ({status}, no Location)")),
            }),
            // A redirect of the institute's the client did not follow: it names no address
            // the client can ask (`file:`, `ftp:`, no `Location` at all).
            status if status.is_redirection() && status != StatusCode::NOT_MODIFIED => {
                Err(PullError::BadRedirect {
                    url: url.clone(),
                    why: match location(&response) {
                        Some(to) => not_web(&to),
                        None => format!("it answered {status} with no Location"),
                    },
                })
            }
            status => {
                // reqwest drops the token on a redirect to another server.
                let withheld = self.token.is_some()
                    && (self.token_for(url).is_none() || response.url().origin() != url.origin());
                Err(PullError::Status {
                    url: url.clone(),
                    status,
                    hint: hint(status, withheld),
                })
            }
        }
    }
}

/// Where a redirect points, as its `Location` says: at most 256 characters of it, its control
/// characters made visible.
fn location(response: &reqwest::Response) -> Option<String> {
    response.headers().get(header::LOCATION).map(|l| {
        let shown: String = String::from_utf8_lossy(l.as_bytes())
            .chars()
            .take(256)
            .collect();
        PeerText(shown).to_string()
    })
}

/// Why a redirect to `to`, not a web address, is not followed.
fn not_web(to: &str) -> String {
    format!("it redirects to {to}, which is not an http:// or https:// address")
}

/// How the institute's addresses are followed: [`MAX_REDIRECTS`] at most, and from an
/// `https://` address only to `https://` ones, whether or not the client is `https_only`
/// (it is not when some `pull_url` is plain http).
fn institute_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from_https = attempt.previous().iter().any(|u| u.scheme() == "https");
        let to = PeerText(attempt.url().as_str()).to_string();
        if !matches!(attempt.url().scheme(), "http" | "https") {
            attempt.error(not_web(&to))
        } else if from_https && attempt.url().scheme() != "https" {
            attempt.error(format!(
                "it redirects to {to}, which is not https: an https:// address is followed \
                 only to https:// ones, so that nothing of it travels in the clear"
            ))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// The TLS configuration of a client of the institute's servers: the public web's
/// authorities plus `pull_ca`, the client certificate when set, ALPN for HTTP/2 and 1.1.
pub(crate) fn tls_config(tls: &ClientTls) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &tls.extra_roots {
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
    let mut config = match &tls.client_identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                read_certificates(cert).context("setting `pull_client_cert`")?,
                read_private_key(key).context("setting `pull_client_key`")?,
            )
            .context("settings `pull_client_cert` and `pull_client_key` do not go together")?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The `Authorization: Bearer …` value of `pull_token_file`, when set (marked sensitive, so
/// it is never logged).
pub(crate) fn bearer(tls: &ClientTls) -> anyhow::Result<Option<HeaderValue>> {
    let Some(path) = &tls.token_file else {
        return Ok(None);
    };
    let text = crate::config::read_small(path, crate::config::MAX_TOKEN_FILE_BYTES)
        .with_context(|| format!("setting `pull_token_file`: cannot read {}", path.display()))?;
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
    Ok(Some(value))
}

/// A response's body, read chunk by chunk and held to a limit.
pub(super) struct Body {
    response: Response,
    url: Url,
    limit: u64,
    /// Which limit, for the error.
    what: &'static str,
    /// Bytes read so far.
    len: u64,
}

impl Body {
    /// The body of `response` from `url`, refused at once when its `Content-Length` passes
    /// `limit`.
    pub(super) fn new(
        response: Response,
        url: &Url,
        limit: u64,
        what: &'static str,
    ) -> Result<Self, PullError> {
        let body = Self {
            response,
            url: url.clone(),
            limit,
            what,
            len: 0,
        };
        if body.response.content_length().is_some_and(|n| n > limit) {
            return Err(body.too_large());
        }
        Ok(body)
    }

    /// The next chunk, `None` at the end; an error once the bytes read pass the limit.
    pub(super) async fn chunk(&mut self) -> Result<Option<Bytes>, PullError> {
        let Some(chunk) = self
            .response
            .chunk()
            .await
            .map_err(|e| request_error(&self.url, &e))?
        else {
            return Ok(None);
        };
        self.len += chunk.len() as u64;
        if self.len > self.limit {
            return Err(self.too_large());
        }
        Ok(Some(chunk))
    }

    /// Bytes read so far.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    fn too_large(&self) -> PullError {
        PullError::TooLarge {
            url: self.url.clone(),
            limit: self.limit,
            what: self.what,
        }
    }
}

/// A small body, whole, held to `limit`.
pub(crate) async fn read_small(
    response: Response,
    url: &Url,
    limit: u64,
    what: &'static str,
) -> Result<Vec<u8>, PullError> {
    let mut body = Body::new(response, url, limit, what)?;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.chunk().await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// `ETag` and `Last-Modified` of an answer, sent back to ask "changed since?".
#[derive(Debug, Default)]
pub(super) struct Validators {
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

impl Validators {
    pub(super) fn of(headers: &HeaderMap) -> Self {
        Self {
            etag: headers.get(header::ETAG).cloned(),
            last_modified: headers.get(header::LAST_MODIFIED).cloned(),
        }
    }

    /// Whether the answer carried any: a conditional request can then tell a change.
    pub(super) fn any(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// A transport failure in words, with its causes; a redirect not followed is the service's.
pub(super) fn request_error(url: &Url, e: &reqwest::Error) -> PullError {
    if e.is_redirect() {
        return PullError::BadRedirect {
            url: url.clone(),
            why: causes(e),
        };
    }
    PullError::Request {
        url: url.clone(),
        why: transport_reason(
            e,
            "no answer in time (`pull_stall_timeout` without a byte, or longer than \
             `pull_timeout`)",
        ),
    }
}

/// What went wrong with a request, in words (`timed_out` when it timed out), followed by
/// every cause the error carries, as [`PeerText`]: a cause can quote the server (a
/// certificate's names, a header it sent).
pub(crate) fn transport_reason(e: &reqwest::Error, timed_out: &str) -> String {
    let why = if e.is_timeout() {
        timed_out
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the transfer failed"
    };
    match causes(e) {
        causes if causes.is_empty() => why.to_owned(),
        causes => format!("{why}: {causes}"),
    }
}

/// Every cause `e` carries, as [`PeerText`], joined by `: `.
fn causes(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut why = String::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        if !why.is_empty() {
            why.push_str(": ");
        }
        let _ = write!(why, "{}", PeerText(c));
        cause = c.source();
    }
    why
}

/// What to check for a status that says something about this side; `withheld` when the
/// token was not sent, the address being on another server than the settings name.
fn hint(status: StatusCode, withheld: bool) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if withheld => {
            " (the token of `pull_token_file` was not sent: it goes only to the servers \
             `pull_url` names, and this address, reached by a redirect, is on another)"
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            " (check `pull_token_file` or `pull_client_cert`)"
        }
        StatusCode::NOT_FOUND => " (check `pull_url`)",
        _ => "",
    }
}
