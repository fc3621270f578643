//! The publisher: the single writer that turns received packages into live cortes.
//!
//! Its work is split by what starts it: [`ingest`] a package handed over, [`rollback`] an
//! operator's request, [`rebuild`] a start of the server.
//!
//! Every package from every intake channel passes through [`Publisher::handle`], one at a
//! time, on one thread: archive (pending) → journal → verify → inspect (data packages) →
//! corte time → hold? older? → build site → archive (verified) → journal → swap. Visitors
//! never wait on it; they read the live [`Site`] through one atomic pointer.
//!
//! # Invariants (DESIGN.md)
//! 1. A response is served entirely from one corte: a site is built whole, off to the side,
//!    and becomes live in one pointer store ([`Swap::store`]); a reader holds the site it
//!    loaded for the whole response.
//! 2. Nothing is published that did not verify: sites are built only from a
//!    [`VerifiedPackage`], which only [`package::verify`] makes. A rejection changes nothing;
//!    the rejected package is kept apart (`archivo/rechazados/`) for `rejected_retention`.
//! 3. Nothing published is lost: a package is archived (fsynced) before it is verified, moved
//!    among the verified packages before its corte is journaled, and a corte is recorded in
//!    the journal (fsynced) before it is swapped in. At start the live site is rebuilt from
//!    the journal's last publication and the verified packages, before any new package is
//!    taken.
//! 6. A package whose corte is older than the live one is archived and journaled, never
//!    published, unless an operator asks for a [`Publisher::rollback`].
//!
//! # What waits for an operator
//! - A package whose corte time is implausible ([`package::CorteRules::hold_reason`]: far
//!   outside the publication window, or ahead of the clock) is verified, archived and
//!   journaled as `held`, and not published: a typo in a name must not replace the night's
//!   real cortes, nor make them "older". Later cortes publish as if it had not come.
//! - A package whose processing began and never ended (the process died: a crash, a kill,
//!   the memory limit) is taken again once at the next start, from the archive; if that is
//!   interrupted too it is set aside (`set-aside`, kept with the rejected packages), so a
//!   package that kills the server cannot make it die at every start.
//!
//! # When it dies
//! The thread runs under [`Publisher::spawn`]'s watch: if it ends by a panic (a defect), what
//! stopped it is reported on [`Running::died`]; `serve` then turns the server's health red,
//! journals it (`publisher-died`) and exits non-zero, so the service manager starts it again
//! and the start takes again what was interrupted. Meanwhile every channel that hands it a
//! package is told the server failed, never that the package was refused.
//!
//! `difusor rollback <corte or SHA-256>` publishes either; `difusor ingest --force FILE`
//! ([`Command::Force`]) takes a package past both checks, never past verification.
//!
//! # Whose fault
//! A package not taken says whose fault that is ([`Fault`]). The sender's (a check it fails,
//! a limit it passes, a set-aside) is a rejection, [`Outcome::Rejected`]: decided, journaled
//! `rejected` with `"fault": "sender"`, the package kept with the rejected ones. Anything this
//! machine could not do (store or read the archived copy, move it, write the journal) is
//! [`Outcome::Failed`] with [`Fault::Ours`]: journaled as `intake-error`, the package left
//! undecided (`failed` in the journal, not an interrupted attempt), so that its channel
//! delivers it again and it is taken as if nothing had happened. It is never a rejection.
//! A package goes on only once its arrival and its verification are journaled; a failure
//! whose `failed` outcome the journal could not take either (it was locked, its disk full)
//! is remembered for this run, so that the `processing` it leaves there is not counted as
//! an interrupted attempt. While such failures go on, [`OurFaults`] says so (`/status`
//! `intake_failing`): in memory, since the journal may be what fails.
//!
//! # Evidence for a package already taken
//! Bytes already published or archived as older that arrive again (a duplicate) are not
//! verified or published again, but the evidence that comes with them is never dropped: it
//! is checked against them and journaled ([`late`]), never put in the archive. A held
//! package sent again is taken again, verified with the evidence the archive keeps beside
//! it; the evidence sent with it is checked and journaled the same way, and never rejects it.
//!
//! # Names laid over the live corte
//! A site package with a file that would be served beside a live path the same but for
//! letter case or Unicode normalisation, or a file where the live site has a folder
//! ([`Site::collision_with`]), is refused whole; the live corte stays.
//!
//! # Memory
//! A package whose site would hold more than `max_site_bytes` (files and compressed
//! variants, [`Site::memory_bytes`]) is refused whole; the live corte stays.
//!
//! Every data package is also inspected ([`crate::prep`]) once verified, by every known
//! definition of the summary or the institute's that the `reglas` setting names: a summary line
//! that contradicts its rows under all of them is a journal warning, and with
//! `reject_inconsistent` a rejection. A data package in which no results CSV is found at all
//! is a journal warning that nothing in it was checked, never a rejection: nothing in it
//! contradicts a summary. Site packages are not inspected.

mod ingest;
mod late;
mod rebuild;
mod rollback;

pub(crate) use late::Late;

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use jiff::{Timestamp, ZonedDateTime};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::archive::{Archive, ArchiveError, Stored};
use crate::config::SiteMode;
use crate::hash::Sha256;
use crate::intake::{Channel, Received};
use crate::journal::{
    Build, EventKind, Journal, PackageState, Publication, last_rollback, lineage,
};
use crate::package::{
    self, CorteSource, CorteTime, EvidenceFile, EvidencePolicy, Incoming, PackageKind, PackageName,
    PackageSettings, Policy, VerifiedPackage,
};
use crate::prep::{self, SummarySettings};
use crate::site::{Applied, Compressor, Corte, Listed, Site, SiteSettings, Swap};

/// How many times in a row a package's processing may begin; when the last of them was
/// interrupted too, the package is set aside instead of taken again.
const MAX_ATTEMPTS: u32 = 2;

/// Whose fault it is that a package was not taken.
///
/// Only [`Fault::Sender`] is a rejection: the package (or the institute's service) is at
/// fault, and sending the same bytes again changes nothing. The others are never told to the
/// institute as a rejection: what this machine could not do is retried by the channels that
/// can (pull, the watched folder) and answered as a server error by the others (SFTP, admin,
/// `ingest`), and the journal does not hold the package as decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Fault {
    /// The package, or the service that sent it.
    Sender,
    /// This machine: the archive (a full or read-only disk, a copy that cannot be read), the
    /// journal, a rename.
    Ours,
    /// The connection that carried it: a pull download or an SFTP session that broke.
    Transport,
}

/// What became of a package.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub(crate) enum Outcome {
    /// It is the live corte now.
    Published {
        /// Corte id.
        corte: String,
        /// SHA-256 of the package.
        sha256: String,
        /// Seconds from corte time to going live.
        lag_seconds: f64,
    },
    /// The same bytes were published (or archived as older) before.
    Duplicate {
        /// SHA-256 of the package.
        sha256: String,
    },
    /// Its corte is older than the live one: archived, not published.
    Older {
        /// Its corte id.
        corte: String,
        /// The live corte id.
        live: String,
        /// SHA-256 of the package.
        sha256: String,
    },
    /// It verified, but its corte time is implausible: archived, not published until an
    /// operator says so.
    Held {
        /// Its corte id.
        corte: String,
        /// Why it is held.
        reason: String,
        /// SHA-256 of the package.
        sha256: String,
    },
    /// It failed a check, or was set aside; the live corte is unchanged. Always the
    /// sender's fault ([`Fault::Sender`]).
    Rejected {
        /// Why, precisely.
        reason: String,
        /// SHA-256 of the package, when it could be stored.
        sha256: Option<String>,
    },
    /// This machine failed (disk, journal); the package is not decided and may be retried.
    Failed {
        /// What went wrong.
        error: String,
        /// Whose fault: [`Fault::Ours`] from the publisher.
        fault: Fault,
    },
}

impl Outcome {
    /// Whose fault it is that the package was not taken, when it was not.
    pub(crate) fn fault(&self) -> Option<Fault> {
        match self {
            Self::Rejected { .. } => Some(Fault::Sender),
            Self::Failed { fault, .. } => Some(*fault),
            _ => None,
        }
    }
}

/// A request to the publisher thread, with where to send its answer.
enum Command {
    /// Take a package.
    Ingest(Received, oneshot::Sender<Outcome>),
    /// Take a package an operator insists on: published even if its corte time would hold it
    /// or it was set aside. It is verified all the same.
    Force(Received, oneshot::Sender<Outcome>),
    /// Publish again the site of an earlier corte, or a package held, set aside or older.
    Rollback(String, oneshot::Sender<Outcome>),
    /// Remove the rejected packages whose retention is over.
    Expire,
}

/// The publisher thread is not running: the server is stopping, or the thread died (then the
/// server is about to exit and be started again). Nothing was decided about the package.
#[derive(Debug, thiserror::Error)]
#[error("the publisher is not running")]
pub(crate) struct Stopped;

/// Packages this server is failing to take because of its own side (a full or read-only
/// disk, a journal it cannot write): the run of such failures going on now, for `/status`,
/// the status page and `/metrics`. Kept in memory, since the journal may be what fails; a
/// package taken (or decided on: published, rejected, held…) ends the run.
///
/// It also keeps what a start could not rebuild: when the last corte published cannot be
/// built again from the archive (a package damaged or gone), an earlier one is served and
/// [`Behind`] says so until a new corte goes live.
#[derive(Debug, Default)]
pub(crate) struct OurFaults {
    state: Mutex<Option<Failing>>,
    behind: Mutex<Option<Behind>>,
}

/// The live corte is not the last one published: the start could not rebuild the later
/// ones from the archive, and serves the latest it could (or none).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Behind {
    /// The last corte published, which could not be rebuilt.
    pub(crate) last_published: String,
    /// The corte served instead; `None` when none could be rebuilt.
    pub(crate) serving: Option<String>,
    /// Publications after the one served that could not be rebuilt.
    pub(crate) not_rebuilt: usize,
    /// Why the last one could not be rebuilt.
    pub(crate) error: String,
}

/// A run of packages not taken because of this server's side.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Failing {
    /// When the first failure of the run happened.
    pub(crate) since: String,
    /// When the last one happened.
    pub(crate) last_at: String,
    /// How many packages (or tries of one) failed in the run.
    pub(crate) failures: u64,
    /// The last package that failed.
    pub(crate) name: String,
    /// The channel it came from.
    pub(crate) channel: Channel,
    /// What went wrong.
    pub(crate) error: String,
}

impl OurFaults {
    /// Notes that the package `name` from `channel` was not taken because of `error`, ours.
    pub(crate) fn failed(&self, name: &str, channel: Channel, error: &str) {
        let now = Timestamp::now().to_string();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (since, failures) = state
            .as_ref()
            .map_or((now.clone(), 0), |f| (f.since.clone(), f.failures));
        *state = Some(Failing {
            since,
            last_at: now,
            failures: failures.saturating_add(1),
            name: name.to_owned(),
            channel,
            error: error.to_owned(),
        });
    }

    /// Notes that a package was decided on: the run of failures, if any, is over.
    pub(crate) fn decided(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Notes that what made the package `name` from `channel` fail is gone (the file was
    /// removed, or taken): the run of failures is over if that package was its last.
    pub(crate) fn gone(&self, name: &str, channel: Channel) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let over = state
            .as_ref()
            .is_some_and(|f| f.name == name && f.channel == channel);
        if over {
            *state = None;
        }
        over
    }

    /// The run of failures going on now, if any.
    pub(crate) fn failing(&self) -> Option<Failing> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Notes what the start serves instead of the last corte published; `None` once the
    /// live corte is the last one published again.
    pub(crate) fn set_behind(&self, behind: Option<Behind>) {
        *self.behind.lock().unwrap_or_else(|p| p.into_inner()) = behind;
    }

    /// Whether the live corte is behind the last one published, and how.
    pub(crate) fn behind(&self) -> Option<Behind> {
        self.behind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The way to the publisher thread, cloned into every intake channel and the admin listener:
/// each request waits for the publisher's answer, one package at a time in arrival order.
#[derive(Clone)]
pub(crate) struct PublisherHandle {
    queue: mpsc::Sender<Command>,
    faults: Arc<OurFaults>,
}

impl PublisherHandle {
    /// The packages this server is failing to take because of its own side, shared with the
    /// publisher: a channel that fails before handing a package over notes it here too.
    pub(crate) fn faults(&self) -> &OurFaults {
        &self.faults
    }

    /// Hands over a received package; its outcome once the publisher has decided.
    pub(crate) async fn ingest(&self, received: Received) -> Result<Outcome, Stopped> {
        self.ask(|reply| Command::Ingest(received, reply)).await
    }

    /// Hands over a package an operator insists on ([`Command::Force`]).
    pub(crate) async fn force(&self, received: Received) -> Result<Outcome, Stopped> {
        self.ask(|reply| Command::Force(received, reply)).await
    }

    /// Publishes again an earlier corte, or a package held, set aside or older.
    pub(crate) async fn rollback(&self, corte: String) -> Result<Outcome, Stopped> {
        self.ask(|reply| Command::Rollback(corte, reply)).await
    }

    /// Has the rejected packages whose retention is over removed, without waiting.
    pub(crate) async fn expire(&self) -> Result<(), Stopped> {
        self.queue.send(Command::Expire).await.map_err(|_| Stopped)
    }

    async fn ask(
        &self,
        command: impl FnOnce(oneshot::Sender<Outcome>) -> Command,
    ) -> Result<Outcome, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(command(reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

/// A package by this name stops the publisher thread with a panic, in builds with the
/// `fault-injection` feature only (tests of what happens when it dies; never in a release).
#[cfg(feature = "fault-injection")]
pub(crate) const FAULT_PANIC_NAME: &str = "fault-injection-panic-publisher.zip";

/// The publisher thread, running.
pub(crate) struct Running {
    /// The way to it.
    pub(crate) handle: PublisherHandle,
    /// How many times it has decided something (a package taken or refused, a rollback):
    /// changed once the journal and the live site say what was decided.
    pub(crate) decided: watch::Receiver<u64>,
    /// What stopped the thread, if it ended by a panic; closed without a value when it ended
    /// because its queue was closed (the server stopping).
    pub(crate) died: oneshot::Receiver<String>,
}

/// The settings the publisher works by.
#[derive(Debug, Clone)]
pub(crate) struct PublisherSettings {
    /// What packages are held to.
    pub(crate) package: PackageSettings,
    /// How packages make sites.
    pub(crate) site: SiteSettings,
    /// How data packages' summaries are checked.
    pub(crate) summary: SummarySettings,
    /// How long rejected packages are kept; `None`: for ever.
    pub(crate) rejected_retention: Option<std::time::Duration>,
}

/// The single writer.
pub(crate) struct Publisher {
    /// What packages are held to.
    package: PackageSettings,
    /// How packages make sites.
    site: SiteSettings,
    /// How data packages' summaries are checked.
    summary: SummarySettings,
    /// How long rejected packages are kept; `None`: for ever.
    rejected_retention: Option<std::time::Duration>,
    /// Makes the compressed variants of new files after each swap, when set.
    compressor: Option<Compressor>,
    archive: Archive,
    journal: Arc<Journal>,
    live: Swap,
    /// The run of packages not taken because of this server's side.
    faults: Arc<OurFaults>,
    /// Packages this run failed on whose `failed` outcome could not be journaled: left
    /// `processing` there, though nothing interrupted them.
    unrecorded: Mutex<HashSet<Sha256>>,
}

/// A package being processed: what is known of it once it is stored.
struct Job<'r> {
    /// What the channel handed over.
    received: &'r Received,
    /// Where it is archived.
    stored: Stored,
    /// Whether an operator insists on it.
    force: bool,
}

impl Job<'_> {
    /// How the journal refers to the package.
    fn pkg_ref(&self) -> Option<(Sha256, &str)> {
        Some((self.stored.sha256, self.received.name.as_str()))
    }
}

impl Publisher {
    /// A publisher over the data folder's archive and journal, swapping into `live`.
    pub(crate) fn new(
        settings: PublisherSettings,
        archive: Archive,
        journal: Arc<Journal>,
        live: Swap,
    ) -> Self {
        let PublisherSettings {
            package,
            site,
            summary,
            rejected_retention,
        } = settings;
        Self {
            package,
            site,
            summary,
            rejected_retention,
            compressor: None,
            archive,
            journal,
            live,
            faults: Arc::default(),
            unrecorded: Mutex::default(),
        }
    }

    /// Has the compressed variants of every corte's new files made by `compressor`.
    pub(crate) fn with_compressor(mut self, compressor: Compressor) -> Self {
        self.compressor = Some(compressor);
        self
    }

    /// Runs the publisher on its own thread: first what a crash interrupted
    /// ([`Publisher::recover`]), then packages sent to the returned queue, in order.
    pub(crate) fn spawn(self) -> std::io::Result<Running> {
        let (tx, mut rx) = mpsc::channel::<Command>(64);
        let (died_tx, died) = oneshot::channel();
        let (decided_tx, decided) = watch::channel(0);
        let faults = self.faults.clone();
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                let ran =
                    std::panic::catch_unwind(AssertUnwindSafe(|| self.serve(&mut rx, &decided_tx)));
                if let Err(panic) = ran {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    let _ = died_tx.send(why);
                }
            })?;
        Ok(Running {
            handle: PublisherHandle { queue: tx, faults },
            decided,
            died,
        })
    }

    /// The thread's work, until its queue is closed; `decided` is told after each decision.
    fn serve(&self, rx: &mut mpsc::Receiver<Command>, decided: &watch::Sender<u64>) {
        let told = |outcome: Outcome| {
            decided.send_modify(|n| *n += 1);
            outcome
        };
        // A package decided on (taken, refused, held…) ends a run of failures of ours.
        let taken = |outcome: Outcome| {
            if !matches!(outcome, Outcome::Failed { .. }) {
                self.faults.decided();
            }
            told(outcome)
        };
        self.recover();
        self.expire_rejected();
        decided.send_modify(|n| *n += 1);
        while let Some(cmd) = rx.blocking_recv() {
            match cmd {
                Command::Ingest(received, reply) => {
                    let _ = reply.send(taken(self.handle(received)));
                }
                Command::Force(received, reply) => {
                    let _ = reply.send(taken(self.handle_forced(received)));
                }
                Command::Rollback(corte, reply) => {
                    let _ = reply.send(told(self.rollback(&corte)));
                }
                Command::Expire => self.expire_rejected(),
            }
        }
    }

    fn set_outcome(&self, sha: Sha256, outcome: PackageState) {
        if let Err(e) = self.journal.set_outcome(sha, outcome) {
            tracing::error!(error = %e, "could not write to the journal");
        }
    }

    /// Logs `warning` about a package and journals it: a `warning` event whose detail is
    /// `detail` (an object) with the text as `"warning"`.
    fn warn(&self, package: Option<(Sha256, &str)>, warning: &str, mut detail: serde_json::Value) {
        let name = package.map_or("", |(_, name)| name);
        tracing::warn!(name, %warning);
        if let Some(fields) = detail.as_object_mut() {
            fields.insert("warning".to_owned(), warning.into());
        }
        self.event(EventKind::Warning, package, detail);
    }

    fn event(&self, kind: EventKind, package: Option<(Sha256, &str)>, detail: serde_json::Value) {
        if let Err(e) = self.journal.record(kind, package, detail) {
            tracing::error!(error = %e, "could not write to the journal");
        }
    }

    /// This machine failed on a package before its processing began: journaled as an
    /// `intake-error` of ours, nothing decided.
    fn failed(&self, r: &Received, e: anyhow::Error) -> Outcome {
        let error = format!("{e:#}");
        // Said at once, before the journal (which may be what fails, and may take its busy
        // timeout to say so).
        self.faults.failed(&r.name, r.channel, &error);
        self.event(
            EventKind::IntakeError,
            None,
            json!({
                "name": r.name, "channel": r.channel, "error": error, "fault": Fault::Ours,
            }),
        );
        Outcome::Failed {
            error,
            fault: Fault::Ours,
        }
    }

    /// This machine failed on a package whose processing began: as [`Publisher::failed`],
    /// and the journal holds the package as `failed`, not decided, so that its channel
    /// delivers it again and a start does not count it as an interrupted attempt.
    fn fail(&self, job: &Job<'_>, e: anyhow::Error) -> Outcome {
        let sha = job.stored.sha256;
        if let Err(e) = self.journal.set_outcome(sha, PackageState::Failed) {
            tracing::error!(error = %e, "could not write to the journal");
            self.note_unrecorded(sha);
        }
        self.failed(job.received, e)
    }

    /// Notes that this run's failure on `sha` could not be journaled.
    fn note_unrecorded(&self, sha: Sha256) {
        self.unrecorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha);
    }

    /// Whether this run's last failure on `sha` could not be journaled; forgotten here.
    fn take_unrecorded(&self, sha: Sha256) -> bool {
        self.unrecorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&sha)
    }
}

/// Logs what became of a package.
fn log_outcome(name: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Published {
            corte, lag_seconds, ..
        } => tracing::info!(%name, %corte, lag_seconds, "corte published"),
        Outcome::Rejected { reason, .. } => {
            tracing::warn!(%name, %reason, "package rejected; the live corte is unchanged")
        }
        Outcome::Held { corte, reason, .. } => {
            tracing::warn!(%name, %corte, %reason, "package held for an operator")
        }
        Outcome::Failed { error, fault } => {
            tracing::error!(%name, %error, ?fault, "package not processed")
        }
        other => tracing::info!(%name, outcome = ?other, "package not published"),
    }
}
