//! Intake by HTTPS pull (`pull_url`): for institutes that publish their packages as a service
//! instead of pushing them (R1.3).
//!
//! Each URL is polled every `pull_interval` by its own task:
//! - a URL ending in `/` is an **index** ([`index`]): every package it lists is fetched once,
//!   in name order, with its evidence when the index lists it. A listed package whose size or
//!   time, or its evidence's, changes is looked at again.
//! - a replica's primary feed (`<replica_of>packages/`) is an index taken in the order it
//!   lists (the primary's live corte first), asked again as soon as it answers: the feed
//!   holds a request until its listing changes (long-poll), so a new package arrives at once.
//!   Polls start at least [`FOLLOW_GAP`] apart. A feed listing more entries than an index may
//!   hold is cut rather than refused ([`index`]): its first entries, the live corte's, are
//!   still taken, and the cut is journaled once (`warning`, `"check": "feed-listing-cut"`).
//! - a replica's primary state (`<replica_of>state`) is long-polled the same way, and the
//!   notice, rollbacks and live corte it announces are applied here ([`follow`]).
//! - any other URL is **one package that changes** (a "latest" address), fetched when it
//!   changes ([`fetch`]).
//!
//! This module is the poll loop; [`fetch`] downloads and hands packages over, [`index`] reads
//! indexes, [`follow`] applies a primary's state, [`client`] is the HTTP client and how it
//! reads bodies.
//!
//! # Guarantees
//! - A URL that fails (the feed too) is polled again after a wait that doubles from
//!   `pull_interval` up to `pull_max_backoff`, except an index whose poll failed only for
//!   packages that fail for themselves: they wait their own time ([`fetch`]), and the index
//!   is polled again at `pull_interval`, and a replica's primary state that gets no answer
//!   before the replica read it once, which is asked again at the end of `health_max_lag`
//!   if that comes sooner ([`follow`]). The journal gets one `pull-error` when a URL
//!   starts failing and one `pull-recovered` when it works again, never one entry per
//!   attempt; a poll of a replica's state cut short by a corte going live here (which wakes
//!   it) is neither, so a state failing all along is never said to have recovered.
//! - Operators see each URL's state on the admin listener (`/status`, `pull`): last poll,
//!   last success, packages handed over, and while it fails, since when, how often and why.

mod client;
mod fetch;
mod follow;
mod index;
mod settings;

pub(crate) use client::{bearer, read_small, tls_config, transport_reason};
pub(crate) use follow::Replica;
pub(crate) use index::{MAX_INDEX_BYTES, last_segment, latest};
pub(crate) use settings::{ClientTls, PullSettings};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::{StatusCode, Url};
use serde_json::json;
use tokio::sync::watch;

use crate::archive::Archive;
use crate::hash::Sha256;
use crate::journal::{EventKind, Journal};
use crate::publisher::{Fault, PublisherHandle};
use crate::store::Store;
use crate::store::space::{Short, Space};
use client::{Client, Validators};
use fetch::ATTEMPTS;
use follow::State;
use index::{Listed, Order};

/// The shortest time between the starts of two polls of a primary's feed: a feed that
/// answers at once (a listing that keeps changing, a feed that does not hold) is not asked
/// more than ten times a second.
const FOLLOW_GAP: Duration = Duration::from_millis(100);

/// Why one poll of a URL failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PullError {
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
    /// A redirect from a replica's primary, not followed: a replica takes its cortes from
    /// the one primary it names.
    #[error(
        "{url}: the primary answered with a redirect to {to}; replica_of must name the \
         primary's feed itself"
    )]
    Redirect {
        /// What was asked for.
        url: Url,
        /// Where it pointed.
        to: String,
    },
    /// A redirect of the institute's not followed: from an `https://` address to one that is
    /// not, to no http address at all, or one too many.
    #[error("{url}: the redirect was not followed: {why}")]
    BadRedirect {
        /// What was asked for.
        url: Url,
        /// Why, with where it pointed.
        why: String,
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
    /// Writing more of the download would leave less free space than `min_free_space`.
    #[error("not downloaded further: {0}")]
    Short(#[from] Short),
    /// This machine could not keep the download.
    #[error("cannot write the download into {dir}: {source}")]
    Io {
        /// The temporary folder.
        dir: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A primary's state that is not the feed's.
    #[error("{url}: the primary's state cannot be read: {why}")]
    State {
        /// The state's address.
        url: Url,
        /// What is wrong.
        why: String,
    },
    /// A rollback of the primary's that, published here, made another corte live: its
    /// package's corte time is not the same here (one taken from its arrival). Not tried
    /// again while the primary's state asks for the same rollback.
    #[error(
        "its primary asked for corte {asked}; publishing that corte here made corte \
         {published} live instead (its package's corte time is worked out otherwise here); \
         not tried again until the primary's state changes"
    )]
    Unmet {
        /// The corte the primary's state names.
        asked: String,
        /// The corte that went live here.
        published: String,
    },
    /// A rollback of the primary's to a corte this replica does not have: not pulled yet,
    /// or known here under another id. The primary's request, not this machine's fault.
    #[error("its primary asked for corte {asked}, which cannot be published here: {reason}")]
    NotHeld {
        /// The corte the primary's state names.
        asked: String,
        /// The publisher's refusal.
        reason: String,
    },
    /// What the primary's state says could not be done here (this machine's fault).
    #[error("cannot apply the primary's {what}: {error}")]
    Apply {
        /// The notice or a rollback.
        what: &'static str,
        /// Why.
        error: String,
    },
    /// A package of an index that failed for itself at an earlier poll, waiting its own time
    /// before it is fetched again.
    #[error(
        "{error}; fetched again in {retry_in}s, or at once when the index lists it or its \
         evidence changed"
    )]
    Waiting {
        /// What its last failure said (which names it).
        error: String,
        /// Seconds left before it is fetched again.
        retry_in: u64,
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

    /// Whether the next poll waits for the peer to say something new rather than backing off
    /// (the error lasts until it does).
    fn waits_on_peer(&self) -> bool {
        matches!(self, Self::Unmet { .. })
    }

    /// Whose fault: the connection, this machine, or the institute's service and files.
    fn fault(&self) -> Fault {
        match self {
            Self::Request { .. } => Fault::Transport,
            Self::Io { .. } | Self::Short(_) | Self::NotTaken { .. } | Self::Apply { .. } => {
                Fault::Ours
            }
            _ => Fault::Sender,
        }
    }
}

/// Everything the pull tasks share.
pub(crate) struct Puller {
    client: Client,
    board: Arc<Board>,
    settings: PullSettings,
    tmp_dir: PathBuf,
    /// The room downloads claim there, within the space kept free (`min_free_space`).
    space: Space,
    max_package_bytes: u64,
    publisher: PublisherHandle,
    journal: Arc<Journal>,
    /// Where a rejected package's evidence is kept, to tell whether a package is sent again
    /// with other evidence.
    archive: Archive,
    /// What a replica applies of its primary's state (with `replica_of`).
    replica: Option<Replica>,
}

impl Puller {
    /// Builds the HTTPS client (reading the token, client certificate and authorities the
    /// settings name) for pulls into the temporary folder of `store` (claiming their room
    /// from its reserve) and the publisher's queue; a replica's primary state is applied
    /// through `replica`.
    pub(crate) fn new(
        settings: PullSettings,
        store: &Store,
        max_package_bytes: u64,
        publisher: PublisherHandle,
        replica: Replica,
    ) -> anyhow::Result<Self> {
        if settings
            .urls
            .iter()
            .chain(&settings.feed)
            .any(|u| u.scheme() == "http")
        {
            tracing::warn!(
                "a `pull_url` is plain http: anyone on the way can change what arrives; only \
                 the evidence (sidecar, signature) protects those packages"
            );
        }
        Ok(Self {
            client: Client::new(&settings)?,
            board: Arc::new(Board::default()),
            tmp_dir: store.layout.tmp(),
            space: store.reserve.uploads(),
            max_package_bytes,
            replica: settings.state.is_some().then_some(replica),
            settings,
            publisher,
            journal: store.journal.clone(),
            archive: store.archive.clone(),
        })
    }

    /// The URLs to poll, the primary's feed and state last.
    pub(crate) fn urls(&self) -> Vec<Url> {
        self.settings
            .urls
            .iter()
            .chain(&self.settings.feed)
            .chain(&self.settings.state)
            .cloned()
            .collect()
    }

    /// Each URL's state, for operators.
    pub(crate) fn board(&self) -> Arc<Board> {
        self.board.clone()
    }

    /// Polls `url` until `shutdown`, backing off while it fails; the primary's feed is asked
    /// again as soon as it answers ([`FOLLOW_GAP`] apart).
    pub(crate) async fn run(self: Arc<Self>, url: Url, mut shutdown: watch::Receiver<bool>) {
        let state = self.settings.state.as_ref() == Some(&url);
        let follow = state || self.settings.feed.as_ref() == Some(&url);
        let mut source = Source::new(url, if follow { Order::Listed } else { Order::Name });
        // The state's follower is woken by each corte made live here, to apply it again.
        let mut swaps = match &self.replica {
            Some(replica) if state => {
                source.state = Some(None);
                Some(replica.live.swaps())
            }
            _ => None,
        };
        let mut streak: Option<Streak> = None;
        loop {
            let started = Instant::now();
            let polled = tokio::select! {
                r = self.poll(&mut source) => Some(r),
                _ = swapped(swaps.as_mut()) => None,
                _ = shutdown.changed() => return,
            };
            // Whether the primary's state answered tells this node's health whether its
            // primary can be reached; a poll cut short by a swap says nothing of it.
            let sooner = match (&self.replica, &polled) {
                (Some(replica), Some(result)) if state => {
                    replica
                        .reached(&source.url, result.as_ref().err(), &self.journal)
                        .await
                }
                _ => None,
            };
            let wait = match polled {
                // A poll cut short by a swap neither failed nor worked: the run of failures
                // goes on as it was, and the state is asked again at once.
                None => FOLLOW_GAP.saturating_sub(started.elapsed()),
                Some(result) => {
                    let waits = result.as_ref().is_err_and(PullError::waits_on_peer);
                    let error = result.err().map(|e| (e.to_string(), e.fault()));
                    let wait = match self.count(&source.url, &mut streak, error.as_ref()) {
                        Some(_) if waits => FOLLOW_GAP.saturating_sub(started.elapsed()),
                        // Packages that fail for themselves wait their own time; the index
                        // is read again as usual, so that a new corte listed after them
                        // comes in time.
                        Some(_) if source.own_failures_only && !follow => self.settings.interval,
                        Some(backoff) => backoff,
                        None if follow => FOLLOW_GAP.saturating_sub(started.elapsed()),
                        None => self.settings.interval,
                    };
                    let error = error.map(|(text, _)| text);
                    self.board
                        .update(&source, streak.as_ref(), error.as_deref());
                    wait
                }
            };
            let wait = sooner.map_or(wait, |sooner| wait.min(sooner));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Counts a poll of `url` that ended with `error` (and whose fault it was), if any, into
    /// the run of failures, journaling where a run begins and ends; returns the wait before
    /// the next poll after a failure, `None` after a success.
    fn count(
        &self,
        url: &Url,
        streak: &mut Option<Streak>,
        error: Option<&(String, Fault)>,
    ) -> Option<Duration> {
        let Some((error, fault)) = error else {
            if let Some(s) = streak.take() {
                tracing::info!(%url, failures = s.failures, "pull works again");
                self.note(
                    EventKind::PullRecovered,
                    json!({"url": url.as_str(), "failures": s.failures,
                           "since": s.since.to_string()}),
                );
            }
            return None;
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
        Some(backoff(
            self.settings.interval,
            self.settings.max_backoff,
            failures,
        ))
    }

    /// Records an event; a journal that cannot be written is reported, not fatal here.
    fn note(&self, kind: EventKind, detail: serde_json::Value) {
        if let Err(e) = self.journal.record(kind, None, detail) {
            tracing::error!(error = %e, "cannot write to the journal");
        }
    }

    /// The order a source's index is taken in now: a primary's feed as listed (its live corte
    /// first) only while this node serves no corte, by name after that. For a node that
    /// serves one, a complete site package listed first would make the packages before it
    /// "older" here, never published, while the primary published them.
    fn order(&self, order: Order) -> Order {
        let serving = self
            .replica
            .as_ref()
            .is_some_and(|r| r.live.load().corte().is_some());
        if serving { Order::Name } else { order }
    }

    /// One look at a source.
    async fn poll(&self, source: &mut Source) -> Result<(), PullError> {
        if source.state.is_some() {
            self.poll_state(source).await
        } else if source.url.path().ends_with('/') {
            self.poll_index(source).await
        } else {
            self.poll_package(source).await
        }
    }
}

/// What is polled, and what is known of it.
struct Source {
    url: Url,
    /// The order its index's packages are taken in.
    order: Order,
    /// Validators of the last complete look.
    validators: Validators,
    /// Index entries handed over (or found already received), with their evidence as listed
    /// then (the package first): any of them listed otherwise, the package is looked at again.
    taken: HashMap<String, Vec<Listed>>,
    /// Index entries not taken, by name: tried after the others, and those that failed for
    /// themselves not before their own wait has passed.
    failed: HashMap<String, Failed>,
    /// Whether the last poll failed only for packages of an index that fail for themselves:
    /// the index was read, and the next poll comes at `pull_interval`, not after a back-off.
    own_failures_only: bool,
    /// Packages handed to the publisher since the start.
    handed: u64,
    /// Whether its last listing was cut (a primary's feed listing more than is read).
    cut: bool,
    /// The entries of its index last said to be ignored ([`index::Index::ignored`]).
    ignored: Vec<String>,
    /// For a primary's state: the last one read, once one was.
    state: Option<Option<State>>,
}

impl Source {
    fn new(url: Url, order: Order) -> Self {
        Self {
            url,
            order,
            validators: Validators::default(),
            taken: HashMap::new(),
            failed: HashMap::new(),
            own_failures_only: false,
            handed: 0,
            cut: false,
            ignored: Vec::new(),
            state: None,
        }
    }
}

/// An index entry not taken: as it was listed then, and when it is to be fetched again.
struct Failed {
    /// The package and its evidence as listed when it failed (the package first): any of
    /// them listed otherwise (size, time), it is fetched at once.
    listed: Vec<Listed>,
    /// Failures in a row as listed so.
    failures: u64,
    /// Not fetched again before.
    retry_at: Instant,
    /// What its last failure said.
    error: String,
}

/// Waits for the next corte made live, when there is a receiver; for ever otherwise.
async fn swapped(swaps: Option<&mut watch::Receiver<Option<i64>>>) {
    match swaps {
        Some(swaps) => {
            if swaps.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// A run of failed polls.
struct Streak {
    failures: u64,
    since: Timestamp,
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

/// The wait after `failures` failed polls in a row: doubling from `interval`, at most `max`.
fn backoff(interval: Duration, max: Duration, failures: u64) -> Duration {
    let doublings = u32::try_from(failures.min(16)).unwrap_or(16);
    interval.saturating_mul(1 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(10), s(120), 1), s(20));
        assert_eq!(backoff(s(10), s(120), 2), s(40));
        assert_eq!(backoff(s(10), s(120), 3), s(80));
        assert_eq!(backoff(s(10), s(120), 4), s(120));
        assert_eq!(backoff(s(10), s(120), u64::MAX), s(120));
    }
}
