//! HTTPS pull's settings (`pull_*`), validated next to the channel that uses them; each
//! invalid value is refused with the setting's name and a good value.

use std::path::PathBuf;

use crate::config::{
    Config, Invalid, duration_at_least, is_loopback_host, positive_duration, service_url,
};

impl PullSettings {
    /// The HTTPS pull's settings, when `pull_url` or `replica_of` is set. The files it names
    /// are read when the server starts, so a missing one stops it with the setting's name.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Self>, Invalid> {
        let s = &config.settings;
        // A replica pulls its primary's feed like one more address.
        let feed = config
            .replica_of
            .as_ref()
            .map(|base| {
                base.join("packages/")
                    .map_err(|e| Invalid::new("replica_of", format!("{base}: {e}")))
            })
            .transpose()?;
        let state = config
            .replica_of
            .as_ref()
            .map(|base| {
                base.join("state")
                    .map_err(|e| Invalid::new("replica_of", format!("{base}: {e}")))
            })
            .transpose()?;
        if s.pull_url.is_empty() && feed.is_none() {
            return Ok(None);
        }
        let urls = s
            .pull_url
            .iter()
            .map(|u| service_url("pull_url", u))
            .collect::<Result<Vec<_>, _>>()?;
        let interval = duration_at_least(
            "pull_interval",
            &s.pull_interval,
            std::time::Duration::from_millis(100),
            "10s",
        )?;
        let max_backoff =
            positive_duration("pull_max_backoff", &s.pull_max_backoff, "2m")?.max(interval);
        let tls = ClientTls::from_config(config)?;
        // The token goes with every request to a `pull_url`: never in the clear past this
        // machine (`replica_of` is held to the same rule).
        if tls.token_file.is_some()
            && let Some(url) = urls
                .iter()
                .find(|u| u.scheme() == "http" && !is_loopback_host(u))
        {
            return Err(Invalid::new(
                "pull_token_file",
                format!(
                    "{url} is plain http to another machine: the token would travel in the \
                     clear for anyone on the way to read and use; write the address as \
                     https://, or leave `pull_token_file` unset (the evidence, sidecar \
                     or signature, alone then protects what arrives over http)"
                ),
            ));
        }
        Ok(Some(Self {
            urls,
            feed,
            state,
            interval,
            timeout: positive_duration("pull_timeout", &s.pull_timeout, "5m")?,
            stall_timeout: positive_duration("pull_stall_timeout", &s.pull_stall_timeout, "30s")?,
            max_backoff,
            tls,
        }))
    }
}

impl ClientTls {
    /// `pull_ca`, `pull_client_cert` with `pull_client_key`, and `pull_token_file`, whether
    /// or not `pull_url` is set (`difusor check` fetches packages with them too).
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        let s = &config.settings;
        let optional = |p: &PathBuf| (!p.as_os_str().is_empty()).then(|| p.clone());
        let client_identity = match (optional(&s.pull_client_cert), optional(&s.pull_client_key)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(Invalid::Pair {
                    first: "pull_client_cert",
                    second: "pull_client_key",
                    message: "give both (the certificate chain and its private key) or neither"
                        .to_owned(),
                });
            }
        };
        Ok(Self {
            token_file: optional(&s.pull_token_file),
            client_identity,
            extra_roots: optional(&s.pull_ca),
        })
    }
}

/// HTTPS pull's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct PullSettings {
    /// What to poll (`pull_url`).
    pub(crate) urls: Vec<reqwest::Url>,
    /// The primary's feed listing (`<replica_of>packages/`), polled in its listed order and
    /// asked again at once after each answer.
    pub(crate) feed: Option<reqwest::Url>,
    /// The primary's state (`<replica_of>state`), followed like the feed and applied here.
    pub(crate) state: Option<reqwest::Url>,
    /// Time between polls.
    pub(crate) interval: std::time::Duration,
    /// Longest download.
    pub(crate) timeout: std::time::Duration,
    /// Longest silence within a response.
    pub(crate) stall_timeout: std::time::Duration,
    /// Longest wait between polls of a failing URL.
    pub(crate) max_backoff: std::time::Duration,
    /// Authorities, client certificate and token.
    pub(crate) tls: ClientTls,
}

/// How an HTTPS client of the institute's packages identifies the server and itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientTls {
    /// File with the bearer token.
    pub(crate) token_file: Option<PathBuf>,
    /// Client certificate chain and key files.
    pub(crate) client_identity: Option<(PathBuf, PathBuf)>,
    /// Extra trusted authorities.
    pub(crate) extra_roots: Option<PathBuf>,
}
