//! A replica's follower of its primary's state (`<replica_of>state`): the operator's actions
//! that must hold on every node, and the corte the primary serves.
//!
//! The state is long-polled like the primary's listing (the feed holds a request whose
//! `If-None-Match` still matches), and what it says is applied here:
//! - **the notice** (R4.10): put in force or lifted as at the primary, journaled `notice-on`
//!   / `notice-off` with `"source": "feed"`, then the gate changed;
//! - **a rollback**: while the primary's live corte came from an operator's rollback, this
//!   node serves that corte too, through its own publisher (from its own verified archive,
//!   journaled as any rollback);
//! - **the live corte**: announced to the node's [`Health`], so the load balancer sends no
//!   visitor to a replica that is not in step; and published here when its package is one
//!   this node holds (`held`), as the primary published it all the same;
//! - **its silence**: a poll of the state that gets no answer at all (a transport failure) is
//!   told to the node's [`Health`], which lets a replica that has not read its primary's
//!   state since it started serve its own corte once its primary has not answered for
//!   `health_max_lag` ([`Replica::reached`]); any answer, an error page too, is told as one.
//!
//! # Guarantees
//! - A replica going into service on its own corte because its primary does not answer is
//!   said once per start, as a journal `warning` (`"check": "primary-unreachable"`, with the
//!   state's `url`, `since` and the `corte`) and a log line; the state is asked again at the
//!   end of `health_max_lag` after its first unanswered poll, whatever the back-off, so that
//!   the wait is that long and no longer.
//! - What the last state said is applied again before each poll and after each corte made
//!   live here (the follower is woken by the swap): a package that arrives here after the
//!   primary rolled back cannot leave this node on another corte, and an operator's notice
//!   on a replica does not outlast the primary's.
//! - Nor can a rollback outlast the primary's: once its state names none, a corte the
//!   rollback was made live over here that is the primary's live corte (its new corte,
//!   arrived here before the state that said so) is published again here, from this node's
//!   archive. Any other corte goes live here as it is pulled.
//! - A corte held here (its corte time implausible here) that the primary serves, published
//!   there by its operator (`difusor ingest --force`) or not held there, is published here
//!   from this node's archive, as an operator's rollback here would, once the state names
//!   its package (by SHA-256) live: held, it would never go live here by itself, and this
//!   node would stay behind its primary, out of the load balancer, for good. A package not
//!   here yet, or taken otherwise here (published, older, set aside), changes nothing.
//! - Only the notice, a rollback to a corte this node verified itself, and the announced
//!   corte are taken from the primary: no package, no byte of results. A state larger than
//!   [`MAX_STATE_BYTES`] or not in the feed's form is a failed poll, journaled once per run
//!   of failures like any pull, and so is a notice longer than a primary puts in force
//!   ([`MAX_NOTICE_BYTES`]). The feed's form names `live`, `notice` and `rollback`, each
//!   `null` when there is none: a document without them (a proxy's error page in JSON,
//!   another service's answer) is not read as "no notice", so it never lifts one.
//! - The cortes a state names are corte ids (`YYYYMMDD_HHMM[SS]`), the only form that names
//!   the same corte on every node. A rollback naming a publication number or a digest prefix
//!   (which an operator's rollback here would take, and whose corte then never has that
//!   name, so it would be published again at every look) is a failed poll.
//! - A rollback is published here once per rollback of the primary's: when its corte goes
//!   live here under another id (a corte time taken from arrival is worked out again when it
//!   is published), the poll fails with both ids, by the primary's fault, until the primary's
//!   state names something else; it waits for that as for any state, without backing off.
//!   A rollback to a corte this replica does not have (not pulled yet) is refused by the
//!   publisher, changes nothing, and fails the poll by the primary's fault; it is asked again
//!   after the back-off, by when the corte may have arrived.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use serde_json::json;

use super::client::{Validators, read_small};
use super::{PullError, Puller, Source};
use crate::hash::Sha256;
use crate::http::gate::{Gate, MAX_NOTICE_BYTES};
use crate::http::health::{Health, Unanswered};
use crate::journal::{EventKind, Journal, PackageState};
use crate::package::is_corte_id;
use crate::peer_text::PeerText;
use crate::publisher::{Outcome, PublisherHandle};
use crate::site::Live;

/// Largest state document read.
const MAX_STATE_BYTES: u64 = 256 * 1024;

/// What a replica's follower acts on.
pub(crate) struct Replica {
    /// Where the notice is put in force.
    gate: Arc<Gate>,
    /// Told the corte the primary serves.
    health: Arc<Health>,
    /// The corte this node serves.
    pub(super) live: Live,
    /// The primary's rollback whose corte, published here, went live under another id, and
    /// that id: it is not published again until the primary's state names another rollback.
    unmet: Arc<Mutex<Option<(Rollback, String)>>>,
    /// The corte a rollback of the primary's made live here, while it is, and the cortes it
    /// was made live over ([`Replica::roll_forward`]).
    held: Arc<Mutex<Option<Held>>>,
}

/// A corte a rollback of the primary's made live here.
#[derive(Debug)]
struct Held {
    /// Its id, as live here.
    corte: String,
    /// The cortes live here when it was made live again, the latest [`MAX_HELD_OVER`]: one
    /// the primary went on to serve is published again here once the primary says so.
    over: Vec<String>,
}

/// How many cortes a rollback made live over are remembered.
const MAX_HELD_OVER: usize = 16;

/// The primary's state, as its feed serves it (`src/feed`): every field present, `null`
/// when there is none (a missing one is refused, never taken for `null`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub(super) struct State {
    /// The primary's live corte.
    #[serde(deserialize_with = "Option::deserialize")]
    live: Option<LiveCorte>,
    /// The notice in force at the primary.
    #[serde(deserialize_with = "Option::deserialize")]
    notice: Option<String>,
    /// The operator's rollback the primary's live corte came from.
    #[serde(deserialize_with = "Option::deserialize")]
    rollback: Option<Rollback>,
}

/// The primary's live corte, and the package it was last built from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
struct LiveCorte {
    corte: String,
    #[serde(deserialize_with = "digest")]
    sha256: Sha256,
}

/// A SHA-256 written as 64 hexadecimal digits.
fn digest<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Sha256, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// An operator's rollback at the primary: its publication number there and its corte.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
struct Rollback {
    seq: i64,
    corte: String,
}

impl State {
    /// The state in `body`, or why it is not one.
    pub(super) fn parse(body: &[u8]) -> Result<Self, String> {
        let state: Self = serde_json::from_slice(body)
            .map_err(|e| format!("not the feed's state: {}", PeerText(e)))?;
        let named = [
            ("live corte", state.live.as_ref().map(|l| &l.corte)),
            (
                "rollback's corte",
                state.rollback.as_ref().map(|r| &r.corte),
            ),
        ];
        // A primary puts no longer notice in force (`notice_text`): a longer one is not the
        // feed's, and would be journaled at its length at every change.
        if let Some(notice) = &state.notice
            && notice.trim().len() > MAX_NOTICE_BYTES
        {
            return Err(format!(
                "its notice is {} bytes long, over the limit of {MAX_NOTICE_BYTES} a primary \
                 puts in force",
                notice.trim().len()
            ));
        }
        for (what, corte) in named {
            if let Some(corte) = corte.filter(|c| !is_corte_id(c)) {
                let shown: String = corte.chars().take(64).collect();
                return Err(format!(
                    "its {what} \"{}\" is not a corte id (YYYYMMDD_HHMM)",
                    PeerText(shown)
                ));
            }
        }
        Ok(state)
    }
}

impl Puller {
    /// Applies again what the primary's state last said, then waits for it to change (the
    /// feed holds the request) and applies the new one.
    pub(super) async fn poll_state(&self, source: &mut Source) -> Result<(), PullError> {
        let Some(replica) = &self.replica else {
            return Ok(());
        };
        // A rollback that cannot be met here does not stop the wait for the next state.
        let mut unmet = None;
        if let Some(Some(last)) = &source.state {
            match replica.apply(last, &self.journal, &self.publisher).await {
                Err(e @ PullError::Unmet { .. }) => unmet = Some(e),
                other => other?,
            }
        }
        let Some(response) = self.client.get(&source.url, &source.validators).await? else {
            return unmet.map_or(Ok(()), Err);
        };
        let validators = Validators::of(response.headers());
        let body = read_small(response, &source.url, MAX_STATE_BYTES, "state").await?;
        let state = State::parse(&body).map_err(|why| PullError::State {
            url: source.url.clone(),
            why,
        })?;
        // Kept before it is applied: a corte made live while applying it may cut this poll
        // short, and the next one applies this state again, never the one before.
        source.state = Some(Some(state.clone()));
        source.validators = validators;
        replica.apply(&state, &self.journal, &self.publisher).await
    }
}

impl Replica {
    /// A follower that puts the primary's notice in force in `gate`, tells `health` the
    /// primary's corte, and compares it with the corte `live` here.
    pub(crate) fn new(gate: Arc<Gate>, health: Arc<Health>, live: Live) -> Self {
        Self {
            gate,
            health,
            live,
            unmet: Arc::default(),
            held: Arc::default(),
        }
    }

    /// Makes this node do what `state` says the primary does.
    pub(super) async fn apply(
        &self,
        state: &State,
        journal: &Arc<Journal>,
        publisher: &PublisherHandle,
    ) -> Result<(), PullError> {
        self.health
            .announce(state.live.as_ref().map(|l| l.corte.as_str()));
        self.notice(state.notice.as_deref(), journal).await?;
        match &state.rollback {
            Some(rollback) => self.roll_back(rollback, publisher).await,
            None => {
                let primary = state.live.as_ref().map(|l| l.corte.as_str());
                self.roll_forward(primary, publisher).await?;
                match &state.live {
                    Some(live) => self.release(live, journal, publisher).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Tells this node's health whether the primary's state at `url` answered a poll that
    /// ended with `error`, if any: only a transport failure (no answer at all) leaves the
    /// primary unreachable. Says once, in the journal (`warning`, `"check":
    /// "primary-unreachable"`) and the log, when this node goes into service on its own corte
    /// for it. Returns how soon to ask again, when that decides it.
    pub(super) async fn reached(
        &self,
        url: &Url,
        error: Option<&PullError>,
        journal: &Journal,
    ) -> Option<Duration> {
        if !error.is_some_and(PullError::is_transport) {
            self.health.answered();
            return None;
        }
        let corte = self.live.load().corte().map(|c| c.id.clone());
        match self.health.unanswered(corte.is_some()) {
            Unanswered::Nothing => None,
            Unanswered::AskAgainIn(wait) => Some(wait),
            Unanswered::OnItsOwn { since } => {
                let corte = corte.unwrap_or_default();
                tracing::warn!(
                    %url, %since, %corte,
                    "the primary does not answer: serving this node's own corte, healthy"
                );
                let message = format!(
                    "its primary has not answered since {since} (no connection, no answer in \
                     time or a TLS failure) and its state was not read since this server \
                     started: it serves its own corte {corte} as in step, its health check \
                     (`health_listen`) answering 200, until the primary answers again"
                );
                let detail = json!({"check": "primary-unreachable", "warning": message,
                                    "url": url.as_str(), "since": since.to_string(),
                                    "corte": corte});
                if let Err(e) = journal.record_async(EventKind::Warning, None, detail).await {
                    tracing::error!(error = %e, "cannot write to the journal");
                }
                None
            }
        }
    }

    /// Puts the primary's notice in force here, or lifts it, when it differs.
    async fn notice(&self, notice: Option<&str>, journal: &Journal) -> Result<(), PullError> {
        let wanted = notice.map(str::trim).filter(|t| !t.is_empty());
        if self.gate.notice().as_deref() == wanted {
            return Ok(());
        }
        let (kind, detail) = match wanted {
            Some(text) => (EventKind::NoticeOn, json!({"text": text, "source": "feed"})),
            None => (EventKind::NoticeOff, json!({"source": "feed"})),
        };
        journal
            .record_async(kind, None, detail)
            .await
            .map_err(|e| PullError::Apply {
                what: "notice",
                error: format!("{e}; the notice was not changed"),
            })?;
        tracing::warn!(notice = ?wanted, "notice changed by the primary");
        self.gate.set_notice(wanted.map(str::to_owned));
        Ok(())
    }

    /// Publishes the corte of `rollback` again here, unless it is live already. When it goes
    /// live under another id (its corte time is not the same here), that is said and it is
    /// not published again for the same rollback: every attempt would be one more swap.
    async fn roll_back(
        &self,
        rollback: &Rollback,
        publisher: &PublisherHandle,
    ) -> Result<(), PullError> {
        let corte = &rollback.corte;
        if self.live.load().corte().is_some_and(|c| &c.id == corte) {
            return Ok(());
        }
        let unmet = |published: String| PullError::Unmet {
            asked: corte.clone(),
            published,
        };
        if let Some((_, published)) = lock(&self.unmet)
            .as_ref()
            .filter(|(asked, _)| asked == rollback)
        {
            return Err(unmet(published.clone()));
        }
        let failed = |error: String| PullError::Apply {
            what: "rollback",
            error,
        };
        // On a task of its own: the corte it makes live wakes the follower, which may drop
        // this poll, and what it made live must be known all the same.
        let (wanted, record, publisher) = (rollback.clone(), self.unmet.clone(), publisher.clone());
        let (held, here) = (
            self.held.clone(),
            self.live.load().corte().map(|c| c.id.clone()),
        );
        let outcome = tokio::spawn(async move {
            let outcome = publisher.rollback(wanted.corte.clone()).await;
            if let Ok(Outcome::Published { corte, .. }) = &outcome {
                let mut held = lock(&held);
                let mut over = match held.take() {
                    Some(before) if before.corte == *corte => before.over,
                    _ => Vec::new(),
                };
                over.extend(here);
                if over.len() > MAX_HELD_OVER {
                    over.remove(0);
                }
                *held = Some(Held {
                    corte: corte.clone(),
                    over,
                });
                if *corte != wanted.corte {
                    *lock(&record) = Some((wanted, corte.clone()));
                }
            }
            outcome
        })
        .await
        .map_err(|e| failed(e.to_string()))?;
        match outcome {
            Ok(Outcome::Published {
                corte: published, ..
            }) if &published != corte => {
                tracing::warn!(%corte, %published, "rollback made another corte live here");
                Err(unmet(published))
            }
            Ok(Outcome::Published { .. }) => {
                tracing::warn!(%corte, "corte published again, as at the primary");
                Ok(())
            }
            Ok(Outcome::Rejected { reason, .. }) => Err(PullError::NotHeld {
                asked: corte.clone(),
                reason,
            }),
            Ok(other) => Err(failed(format!(
                "corte {corte} could not be published again here: {}",
                serde_json::to_string(&other).unwrap_or_default()
            ))),
            Err(stopped) => Err(failed(stopped.to_string())),
        }
    }

    /// Publishes the primary's live package here when this node holds it (`held`: its corte
    /// time implausible here) and serves another corte: the primary published it all the same
    /// (its operator's `difusor ingest --force`, or it was not held there), and held here it
    /// would never go live, leaving this node behind its primary for good. Only a package
    /// this node verified and holds is published, from its own archive, as an operator's
    /// rollback here would; one not here yet, or taken otherwise here (published, older, set
    /// aside), changes nothing.
    async fn release(
        &self,
        primary: &LiveCorte,
        journal: &Arc<Journal>,
        publisher: &PublisherHandle,
    ) -> Result<(), PullError> {
        if self
            .live
            .load()
            .corte()
            .is_some_and(|c| c.id == primary.corte)
        {
            return Ok(());
        }
        let failed = |error: String| PullError::Apply {
            what: "live corte",
            error,
        };
        let (journal, sha256) = (journal.clone(), primary.sha256);
        let held = tokio::task::spawn_blocking(move || journal.package(sha256))
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(e.to_string()))?
            .is_some_and(|(_, _, state)| state == PackageState::Held);
        if !held {
            return Ok(());
        }
        let (publisher, wanted) = (publisher.clone(), sha256.to_hex());
        // On a task of its own, as a rollback: the corte it makes live wakes the follower.
        let outcome = tokio::spawn(async move { publisher.rollback(wanted).await })
            .await
            .map_err(|e| failed(e.to_string()))?;
        let corte = &primary.corte;
        match outcome {
            Ok(Outcome::Published { corte: here, .. }) => {
                tracing::warn!(
                    %corte, %here,
                    "a corte held here, published by the primary, published here too"
                );
                Ok(())
            }
            Ok(other) => Err(failed(format!(
                "the primary serves corte {corte}, whose package {sha256} is held here and \
                 could not be published: {}",
                serde_json::to_string(&other).unwrap_or_default()
            ))),
            Err(stopped) => Err(failed(stopped.to_string())),
        }
    }

    /// Once the primary's state names no rollback, replaces the corte a rollback of its made
    /// live here (if it still is) with the primary's live corte, when that is one the
    /// rollback was made live over here: the primary's new corte reached this node while the
    /// last state still named the rollback, went live, and was rolled back over
    /// ([`Replica::apply`] after each swap). Taken already, it would never go live here by
    /// itself. It is published again from this node's own archive. A corte not here yet
    /// changes nothing: pulled, it goes live as any new corte does.
    async fn roll_forward(
        &self,
        primary: Option<&str>,
        publisher: &PublisherHandle,
    ) -> Result<(), PullError> {
        let here = self.live.load().corte().map(|c| c.id.clone());
        let wanted = {
            let mut held = lock(&self.held);
            let Some(h) = held.as_ref().filter(|h| Some(&h.corte) == here.as_ref()) else {
                // Nothing held here, or another corte went live since.
                *held = None;
                return Ok(());
            };
            match primary {
                Some(primary) if h.over.iter().any(|c| c == primary) => primary.to_owned(),
                // The primary serves this one too: nothing left to replace.
                Some(primary) if primary == h.corte => {
                    *held = None;
                    return Ok(());
                }
                // A corte not here yet goes live as any new one when it is pulled.
                _ => return Ok(()),
            }
        };
        let (held, publisher, corte) = (self.held.clone(), publisher.clone(), wanted.clone());
        // On a task of its own, as a rollback: the corte it makes live wakes the follower.
        let outcome = tokio::spawn(async move {
            let outcome = publisher.rollback(corte).await;
            if let Ok(Outcome::Published { .. }) = &outcome {
                *lock(&held) = None;
            }
            outcome
        })
        .await
        .map_err(|e| PullError::Apply {
            what: "rollback",
            error: e.to_string(),
        })?;
        match outcome {
            Ok(Outcome::Published { corte, .. }) => {
                tracing::warn!(
                    %corte,
                    "the primary moved on from its rollback: its live corte published here again"
                );
            }
            Ok(other) => {
                return Err(PullError::Apply {
                    what: "rollback",
                    error: format!(
                        "the primary moved on from its rollback to {wanted}, which could not be \
                         published again here: {}",
                        serde_json::to_string(&other).unwrap_or_default()
                    ),
                });
            }
            Err(stopped) => {
                return Err(PullError::Apply {
                    what: "rollback",
                    error: stopped.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// The value behind `mutex`, also after a panic elsewhere while it was held.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "9a559a559a559a559a559a559a559a559a559a559a559a559a559a559a559a55";

    #[test]
    fn the_feeds_state_is_read_and_anything_else_refused() {
        let state = State::parse(
            format!(
                r#"{{"live": {{"corte": "20240602_2130", "package": "x.zip", "sha256": "{DIGEST}"}},
                 "notice": "Aviso", "rollback": {{"seq": 7, "corte": "20240602_2100"}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let live = state.live.unwrap();
        assert_eq!(live.corte, "20240602_2130");
        assert_eq!(live.sha256.to_hex(), DIGEST);
        assert_eq!(state.notice.as_deref(), Some("Aviso"));
        assert_eq!(state.rollback.unwrap().corte, "20240602_2100");
        let empty = State::parse(br#"{"live": null, "notice": null, "rollback": null}"#).unwrap();
        assert_eq!(empty.live, None);
        assert!(State::parse(b"[]").is_err());
        assert!(State::parse(br#"{"live": {"corte": 5}}"#).is_err());
        // Another document is no state with every field null.
        for other in [
            &br#"{}"#[..],
            br#"{"error": "en mantenimiento"}"#,
            br#"{"live": null}"#,
        ] {
            let why = State::parse(other).unwrap_err();
            assert!(why.contains("missing field"), "{why}");
        }
        // A rollback or live corte named other than by its id.
        for other in [
            "1",
            "9a557401",
            "20240602_2000\n",
            "",
            "２０２４０６０２_２０００",
        ] {
            let state =
                json!({"live": null, "notice": null, "rollback": {"seq": 1, "corte": other}});
            let why = State::parse(state.to_string().as_bytes()).unwrap_err();
            assert!(why.contains("is not a corte id"), "{why}");
            let state = json!({"live": {"corte": other, "sha256": DIGEST}, "notice": null,
                               "rollback": null});
            let why = State::parse(state.to_string().as_bytes()).unwrap_err();
            assert!(why.contains("is not a corte id"), "{why}");
        }
        // A notice longer than any a primary puts in force.
        let notice = |n: usize| json!({"live": null, "notice": "A".repeat(n), "rollback": null});
        assert!(State::parse(notice(MAX_NOTICE_BYTES).to_string().as_bytes()).is_ok());
        let why = State::parse(notice(MAX_NOTICE_BYTES + 1).to_string().as_bytes()).unwrap_err();
        assert!(why.contains("over the limit"), "{why}");
        let live = |corte: &str, sha256: &str| {
            json!({"live": {"corte": corte, "sha256": sha256}, "notice": null, "rollback": null})
                .to_string()
        };
        assert!(State::parse(live("20240602_200030", DIGEST).as_bytes()).is_ok());
        // The live package named by anything but its digest.
        for other in ["ab", "../20240602_2000_PREP.zip", &DIGEST.replace('9', "g")] {
            let why = State::parse(live("20240602_2000", other).as_bytes()).unwrap_err();
            assert!(why.contains("not a SHA-256 digest"), "{why}");
        }
    }
}
