//! Purge of the caches in front (`purge_url`): after each new corte goes live and after each
//! change of the notice, every cache is told to drop what it holds of this origin, so that
//! no visitor is served a file of the previous corte, or results kept from before a notice,
//! once the origin has changed.
//!
//! The request is `<purge_method> /` (`BAN` by default, or `PURGE`) with the header
//! `X-Ban-Url: .`, a regular expression over paths that matches every path, and
//! `X-Ban-Host`, one over `Host` headers that matches only the public site's names
//! (`purge_host`, or `acme_domains`), in any case, with or without a port: e.g.
//! `(?i)^(prep\.example\.mx|www\.prep\.example\.mx)\.?(:[0-9]+)?$`. A cache in front of
//! other sites as well (a newspaper's Varnish) keeps theirs. A Varnish VCL keeps each stored
//! object's host and path (for the ban lurker) and bans on both (after checking the client
//! is allowed):
//!
//! ```vcl
//! sub vcl_recv {
//!     if (req.method == "BAN" || req.method == "PURGE") {
//!         if (!req.http.X-Ban-Host) { return (synth(400)); }
//!         ban("obj.http.X-Host ~ " + req.http.X-Ban-Host
//!             + " && obj.http.X-Url ~ " + req.http.X-Ban-Url);
//!         return (synth(200, "Banned"));
//!     }
//! }
//! sub vcl_backend_response {
//!     set beresp.http.X-Host = bereq.http.host;
//!     set beresp.http.X-Url = bereq.url;
//! }
//! ```
//!
//! Files that did not change are then revalidated by their ETag, which costs the origin a
//! 304 each.
//!
//! # Guarantees
//! - A purge names the public site's hosts (`X-Ban-Host`, from `purge_host` or
//!   `acme_domains`; `purge_url` without either is refused at start), so that a cache
//!   applying it as documented drops this site's files and no other site's.
//! - Nobody waits on a cache: the purge runs in the background, told of changes by the
//!   live site ([`crate::site::Live::swaps`]) and the gate
//!   ([`crate::http::gate::Gate::notice_changes`]); neither the
//!   publisher nor a visitor's request waits for it. Changes that come while a cache's
//!   purge is under way make one more purge of it after that one, not one each.
//! - Every request is bounded: [`CONNECT_TIMEOUT`] to connect, [`TIMEOUT`] in all; no
//!   redirect is followed, no proxy used, the answer's body is never read. Each cache is
//!   followed on its own, so one that does not answer delays none of the others.
//! - A cache that fails (no answer in time, a refused connection, a status other than 2xx)
//!   is tried again, without waiting for the next change, after [`RETRY_FIRST`], then twice
//!   as long after each failure up to [`RETRY_MAX`], until it takes a purge: a cache that was
//!   restarting or overloaded drops the previous corte's files within that wait of coming
//!   back, not only at the next corte. It is logged and journaled as a `warning` (check
//!   `purge`) when it starts failing, not at every try; `purge-recovered` (with the number
//!   of failed tries) once it takes a purge again.

use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use reqwest::{Method, Url};
use serde_json::json;
use tokio::sync::watch;

use crate::config::{Config, Invalid, PurgeMethod};
use crate::intake::pull::{ClientTls, tls_config, transport_reason};
use crate::journal::{EventKind, Journal};

/// Longest wait for a connection to a cache.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a purge request may take, start to end.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before a cache whose purge failed is tried again; doubled at each failure, up to
/// [`RETRY_MAX`].
pub(crate) const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two tries of a cache whose purges fail.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(30);
/// The header naming what to drop, and its value: every path.
const BAN_URL: (&str, &str) = ("x-ban-url", ".");
/// The header naming whose files to drop: a regular expression over `Host` headers.
const BAN_HOST: &str = "x-ban-host";
/// Most names in `purge_host`.
const MAX_HOSTS: usize = 32;

/// The purge's settings.
#[derive(Debug, Clone)]
pub(crate) struct PurgeSettings {
    /// The caches (`purge_url`).
    pub(crate) urls: Vec<Url>,
    /// The method (`purge_method`).
    pub(crate) method: PurgeMethod,
    /// The public site's hosts (`purge_host`, or `acme_domains`), lowercase.
    pub(crate) hosts: Vec<String>,
}

impl PurgeSettings {
    /// The purge's settings, when `purge_url` is set.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Self>, Invalid> {
        let s = &config.settings;
        if s.purge_url.is_empty() {
            return Ok(None);
        }
        let urls = s
            .purge_url
            .iter()
            .map(|u| purge_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        let (setting, names) = if s.purge_host.is_empty() {
            ("acme_domains", &s.acme_domains)
        } else {
            ("purge_host", &s.purge_host)
        };
        if names.is_empty() {
            return Err(Invalid::new(
                "purge_host",
                "`purge_url` needs the public site's host names, so that a purge drops only \
                 this site's files and not those of the other sites the cache holds; set \
                 `purge_host`, e.g. prep.example.mx (or `acme_domains`)",
            ));
        }
        if names.len() > MAX_HOSTS {
            return Err(Invalid::new(
                setting,
                format!("at most {MAX_HOSTS} names, for the purge's X-Ban-Host"),
            ));
        }
        let mut hosts = Vec::new();
        for name in names {
            let host = purge_host(name).ok_or_else(|| {
                Invalid::new(
                    setting,
                    format!(
                        "{name:?} is not a host name or address; write a name of the public \
                         site as visitors' requests give it, e.g. prep.example.mx (no scheme, \
                         port or path)"
                    ),
                )
            })?;
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        Ok(Some(Self {
            urls,
            method: s.purge_method,
            hosts,
        }))
    }

    /// `X-Ban-Host`: a regular expression matching a `Host` header that names one of the
    /// hosts, in any case, with or without a final dot and a port.
    fn ban_host(&self) -> String {
        let names: Vec<String> = self.hosts.iter().map(|h| regex::escape(h)).collect();
        format!("(?i)^({})\\.?(:[0-9]+)?$", names.join("|"))
    }
}

/// One of `purge_host`: a host name or an IP address, lowercase, without a final dot.
fn purge_host(name: &str) -> Option<String> {
    let host = reqwest::Url::parse(&format!("http://{}/", name.trim().trim_end_matches('.')))
        .ok()
        .filter(|u| {
            u.port().is_none()
                && u.path() == "/"
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
        })
        .and_then(|u| u.host().map(|h| h.to_owned()))?;
    match &host {
        url::Host::Domain(d)
            if d.is_empty()
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') =>
        {
            None
        }
        _ => Some(host.to_string()),
    }
}

/// One of `purge_url`: the address of a cache, `http(s)://host:port/`, nothing more.
fn purge_url(u: &str) -> Result<Url, Invalid> {
    let url = Url::parse(u).map_err(|e| {
        Invalid::new(
            "purge_url",
            format!(
                "{u:?} is not a URL ({e}); write a cache's address, e.g. http://10.0.0.5:6081/"
            ),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Invalid::new(
            "purge_url",
            format!("{u:?} must be an http:// or https:// address, e.g. http://10.0.0.5:6081/"),
        ));
    }
    if url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(Invalid::new(
            "purge_url",
            format!(
                "{u:?} must be only a cache's address (the purge always asks for `/`), with no \
                 path, query or user; e.g. http://10.0.0.5:6081/"
            ),
        ));
    }
    Ok(url)
}

/// Sends the purges.
pub(crate) struct Purger {
    client: reqwest::Client,
    method: Method,
    caches: Vec<Url>,
    /// `X-Ban-Host`'s value.
    ban_host: String,
    journal: std::sync::Arc<Journal>,
}

/// A run of failed purges of one cache.
#[derive(Debug)]
struct Failing {
    since: Timestamp,
    failures: u64,
}

impl Purger {
    /// The purger of `settings`, journaling into `journal`.
    pub(crate) fn new(
        settings: &PurgeSettings,
        journal: std::sync::Arc<Journal>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(&ClientTls::default())?)
            .user_agent(concat!("difusor/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .context("cannot set up the HTTP client for `purge_url`")?;
        Ok(Self {
            client,
            method: Method::from_bytes(settings.method.as_str().as_bytes())
                .context("setting `purge_method`")?,
            caches: settings.urls.clone(),
            ban_host: settings.ban_host(),
            journal,
        })
    }

    /// Purges every cache after each change `swaps` tells of (a corte made live) and each one
    /// `notices` tells of (the notice changed), until `stop`. Each cache is followed on its
    /// own, so one that does not answer holds up none of the others.
    pub(crate) async fn run(
        self,
        swaps: watch::Receiver<Option<i64>>,
        notices: watch::Receiver<u64>,
        stop: watch::Receiver<bool>,
    ) {
        let followed = self
            .caches
            .iter()
            .map(|url| self.follow(url, swaps.clone(), notices.clone(), stop.clone()));
        futures_util::future::join_all(followed).await;
    }

    /// Purges the cache at `url` after each change, until `stop`.
    async fn follow(
        &self,
        url: &Url,
        mut swaps: watch::Receiver<Option<i64>>,
        mut notices: watch::Receiver<u64>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut failing = None;
        // After a failed purge: how long until it is tried again.
        let mut retry: Option<Duration> = None;
        loop {
            let wait_retry = async {
                match retry {
                    Some(after) => tokio::time::sleep(after).await,
                    None => std::future::pending().await,
                }
            };
            let why = tokio::select! {
                Ok(()) = swaps.changed() => "a new corte is live",
                Ok(()) = notices.changed() => "the notice changed",
                () = wait_retry => "its last purge failed",
                _ = stop.changed() => return,
            };
            // What changes while this purge is under way makes the next one.
            swaps.borrow_and_update();
            notices.borrow_and_update();
            tracing::debug!(%url, why, "purging a cache");
            let answer = tokio::select! {
                answer = self.purge(url) => answer,
                _ = stop.changed() => return,
            };
            retry = match answer {
                Ok(()) => None,
                Err(_) => Some(retry.map_or(RETRY_FIRST, |after| (after * 2).min(RETRY_MAX))),
            };
            count(&self.journal, url, &mut failing, answer);
        }
    }

    /// One purge of the cache at `url`: why it failed, if it did.
    async fn purge(&self, url: &Url) -> Result<(), String> {
        let answer = self
            .client
            .request(self.method.clone(), url.clone())
            .header(BAN_URL.0, BAN_URL.1)
            .header(BAN_HOST, &self.ban_host)
            .send()
            .await
            .map_err(|e| transport_reason(&e, "no answer in time"))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("it answered {status}"))
        }
    }
}

/// Counts one answer of the cache at `url` into its run of failures, journaling where a run
/// begins and ends.
fn count(journal: &Journal, url: &Url, failing: &mut Option<Failing>, answer: Result<(), String>) {
    match (answer, failing.as_mut()) {
        (Ok(()), None) => {}
        (Ok(()), Some(run)) => {
            tracing::info!(%url, failures = run.failures, "the cache takes purges again");
            journal.post(
                EventKind::PurgeRecovered,
                None,
                json!({"url": url.as_str(), "failures": run.failures,
                       "since": run.since.to_string()}),
            );
            *failing = None;
        }
        (Err(_), Some(run)) => run.failures += 1,
        (Err(why), None) => {
            let warning = format!("the cache at {url} did not take the purge: {why}");
            tracing::warn!(%url, %why, "a cache did not take the purge");
            journal.post(
                EventKind::Warning,
                None,
                json!({"warning": warning, "check": "purge", "url": url.as_str()}),
            );
            *failing = Some(Failing {
                since: Timestamp::now(),
                failures: 1,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_url_is_only_an_address() {
        assert!(purge_url("http://10.0.0.5:6081/").is_ok());
        assert!(purge_url("https://cache.example.mx").is_ok());
        for bad in [
            "ftp://10.0.0.5/",
            "http://10.0.0.5:6081/prep/",
            "http://10.0.0.5/?x=1",
            "http://user:pass@10.0.0.5/",
            "10.0.0.5:6081",
        ] {
            let err = purge_url(bad).unwrap_err().to_string();
            assert!(err.starts_with("setting `purge_url`: "), "{bad}: {err}");
        }
    }

    #[test]
    fn a_purge_host_is_a_name_or_an_address_and_x_ban_host_matches_only_its_hosts() {
        assert_eq!(
            purge_host("PREP.example.mx.").as_deref(),
            Some("prep.example.mx")
        );
        assert_eq!(purge_host("10.0.0.5").as_deref(), Some("10.0.0.5"));
        assert_eq!(purge_host("[::1]").as_deref(), Some("[::1]"));
        for bad in [
            "",
            "*.example.mx",
            "prep.example.mx:443",
            "https://prep.example.mx/",
            "prep.example.mx/prep",
            "prep.example.mx?x",
            "user@prep.example.mx",
            "prep example",
        ] {
            assert_eq!(purge_host(bad), None, "{bad:?}");
        }
        let settings = PurgeSettings {
            urls: Vec::new(),
            method: PurgeMethod::Ban,
            hosts: vec![
                "prep.example.mx".to_owned(),
                "www.prep.example.mx".to_owned(),
            ],
        };
        let ban_host = regex::Regex::new(&settings.ban_host()).unwrap();
        for host in [
            "prep.example.mx",
            "PREP.Example.MX",
            "www.prep.example.mx:8080",
            "prep.example.mx.",
        ] {
            assert!(ban_host.is_match(host), "{host}");
        }
        for host in [
            "example.mx",
            "prepXexample.mx",
            "prep.example.mx.evil",
            "x.prep.example.mx",
        ] {
            assert!(!ban_host.is_match(host), "{host}");
        }
    }
}
