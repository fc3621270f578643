//! SIGHUP (`systemctl reload`): the HTTPS certificates (public and replication feed) are
//! loaded again, and the configuration is read again and checked.
//!
//! Nothing of the configuration is applied to a running server: listeners, folders and
//! limits are wired together at start. A reload says which settings differ from those in
//! force (log and journal `warning`: they take effect at the next restart), a token file
//! whose token changed among them (`admin_token_file`, `feed_token_file`, and
//! `pull_token_file` when pulling: the pull client sends the token it read at start), and an
//! invalid file (a pull token file that cannot be read included) is reported the same way,
//! with nothing changed. The service manager is told
//! `RELOADING=1` at the beginning and `READY=1` at the end.
//!
//! # Guarantees
//! - From [`Reload::listen`] on, SIGHUP never ends the process, with or without HTTPS.
//! - A certificate that does not load keeps the old one (journaled `warning`).

use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderValue;
use serde_json::json;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use super::systemd;
use crate::config::{Config, SettingArgs, Settings, resolve_embedded};
use crate::http::tls::Tls;
use crate::intake::pull;
use crate::journal::{EventKind, Journal};
use crate::sections::Sections;

/// Where the configuration came from, to read it again the same way.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The `--config` file, if one was given (otherwise `./difusor.toml`, when present).
    pub(crate) file: Option<PathBuf>,
    /// No file at all, only the built-in layers and `args` (`difusor demo`).
    pub(crate) embedded: bool,
    /// The settings given as flags or in the environment.
    pub(crate) args: SettingArgs,
}

/// What a reload acts on.
pub(super) struct Reload {
    /// Where to read the configuration from.
    pub(super) source: Source,
    /// The settings in force.
    pub(super) running: Settings,
    /// The tokens in force, read from their files at start: a file may keep its name and
    /// change its token.
    tokens: Tokens,
    /// The certificates to load again, each with what it serves.
    pub(super) certificates: Vec<(&'static str, Arc<Tls>)>,
    /// Where warnings go.
    pub(super) journal: Arc<Journal>,
    /// What `READY=1` says after a reload.
    pub(super) status: String,
    /// SIGHUP, taken from its default action (the end of the process).
    hup: Signal,
}

impl Reload {
    /// Takes SIGHUP; from here on it reloads instead of ending the process.
    pub(super) fn listen(
        source: Source,
        running: &Sections,
        journal: Arc<Journal>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            source,
            running: running.config.settings.clone(),
            // A pull token file that cannot be read stops the start right after, where the
            // pull client reads it.
            tokens: Tokens::listeners(&running.config)
                .with_pull(running)
                .unwrap_or_else(|(t, _)| t),
            certificates: Vec::new(),
            journal,
            status: String::new(),
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Reloads at every SIGHUP until `stop`.
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                got = self.hup.recv() => if got.is_none() { return },
                _ = stop.changed() => return,
            }
            systemd::reloading();
            tracing::info!("SIGHUP: reloading the certificates and the configuration");
            self.certificates();
            self.configuration().await;
            systemd::ready(&self.status);
        }
    }

    /// Loads every certificate again; one that does not load keeps the old one.
    fn certificates(&self) {
        for (what, tls) in &self.certificates {
            match tls.reload(true) {
                Ok(_) => {
                    tracing::info!(
                        certificate = what,
                        "certificate reloaded; new connections use it"
                    );
                }
                Err(e) => {
                    tracing::error!(certificate = what, error = %e, "the certificate cannot be used; the old one stays");
                    self.journal.post(
                        EventKind::Warning,
                        None,
                        json!({"warning": format!("{what} certificate not reloaded: {e}")}),
                    );
                }
            }
        }
    }

    /// Reads and checks the configuration again; says what differs from the settings in
    /// force, or why the file cannot be used.
    async fn configuration(&self) {
        let source = self.source.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let sections = if source.embedded {
                Sections::new(Config::from_settings(resolve_embedded(&source.args)?)?)?
            } else {
                Sections::load(source.file.as_deref(), &source.args)?
            };
            let tokens = Tokens::listeners(&sections.config)
                .with_pull(&sections)
                .map_err(|(_, e)| e)?;
            Ok((sections, tokens))
        })
        .await
        .map_err(|e| anyhow::anyhow!("the configuration reader panicked: {e}"))
        .and_then(|r| r);
        let file = self.source.file.as_ref().map_or_else(
            || "the configuration".to_owned(),
            |f| f.display().to_string(),
        );
        match loaded {
            Err(e) => {
                let why = format!("{e:#}");
                tracing::error!(file, error = %why, "the configuration is not valid; nothing changed");
                self.journal.post(
                    EventKind::Warning,
                    None,
                    json!({
                        "warning": format!("configuration not reloaded, nothing changed: {why}"),
                        "file": file,
                    }),
                );
            }
            Ok((new, tokens)) => {
                let mut changed = changed(&self.running, &new.config.settings);
                changed.extend(self.tokens.changed(&tokens));
                changed.sort();
                changed.dedup();
                if changed.is_empty() {
                    tracing::info!(file, "configuration read again: no setting changed");
                } else {
                    tracing::warn!(file, settings = %changed.join(", "), "settings changed in the configuration take effect at the next restart");
                    self.journal.post(
                        EventKind::Warning,
                        None,
                        json!({
                            "warning": format!(
                                "settings changed in the configuration take effect at the next \
                                 restart: {}",
                                changed.join(", ")
                            ),
                            "restart_needed": changed,
                            "file": file,
                        }),
                    );
                }
            }
        }
    }
}

/// The tokens as read from their files (or the environment).
#[derive(Debug)]
struct Tokens {
    /// `admin_token_file`'s.
    admin: Option<String>,
    /// `feed_token_file`'s.
    feed: Option<String>,
    /// `pull_token_file`'s, as the pull client sends it, when pulling.
    pull: Option<HeaderValue>,
}

impl Tokens {
    /// The listeners' tokens, which the configuration holds.
    fn listeners(config: &Config) -> Self {
        Self {
            admin: config.admin_token.clone(),
            feed: config.feed.as_ref().and_then(|f| f.token.clone()),
            pull: None,
        }
    }

    /// With the pull token read from `pull_token_file`, when `sections` pulls; without it
    /// and why, when the file cannot be read.
    fn with_pull(mut self, sections: &Sections) -> Result<Self, (Self, anyhow::Error)> {
        let Some(settings) = &sections.pull else {
            return Ok(self);
        };
        match pull::bearer(&settings.tls) {
            Ok(token) => {
                self.pull = token;
                Ok(self)
            }
            Err(e) => Err((self, e)),
        }
    }

    /// The settings naming the files whose tokens differ between `self` and `read`.
    fn changed(&self, read: &Self) -> Vec<String> {
        [
            ("admin_token_file", self.admin == read.admin),
            ("feed_token_file", self.feed == read.feed),
            ("pull_token_file", self.pull == read.pull),
        ]
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| name.to_owned())
        .collect()
    }
}

/// The names of the settings whose values differ between `running` and `read`.
fn changed(running: &Settings, read: &Settings) -> Vec<String> {
    let table = |s: &Settings| toml::Table::try_from(s).unwrap_or_default();
    let (a, b) = (table(running), table(read));
    let mut names: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_names_the_settings_that_differ() {
        let running = Settings::default();
        let mut read = Settings::default();
        assert!(changed(&running, &read).is_empty());
        read.max_connections = 10;
        read.listen = vec!["0.0.0.0:80".into()];
        assert_eq!(changed(&running, &read), ["listen", "max_connections"]);
    }
}
