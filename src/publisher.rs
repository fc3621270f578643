//! The publisher: the single writer that turns received packages into live cortes.
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
//!
//! # Memory
//! A package whose site would hold more than `max_site_bytes` (files and compressed
//! variants, [`Site::memory_bytes`]) is refused whole; the live corte stays.
//!
//! Every data package is also inspected ([`crate::prep`]) once verified, by every known
//! definition of the summary or the institute's that the `reglas` setting names: a summary line
//! that contradicts its rows under all of them is a journal warning, and with
//! `reject_inconsistent` a rejection. Site packages are not inspected.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, anyhow};
use jiff::{Timestamp, ZonedDateTime};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::archive::{Archive, ArchiveError, Stored};
use crate::config::SiteMode;
use crate::hash::Sha256;
use crate::intake::{Channel, Received};
use crate::journal::{Build, EventKind, Journal, PackageState, Publication};
use crate::package::{
    self, CorteSource, CorteTime, EvidencePolicy, Incoming, PackageKind, PackageName,
    PackageSettings, Policy, VerifiedPackage,
};
use crate::prep::{self, SummarySettings};
use crate::sections::Sections;
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

/// The way to the publisher thread, cloned into every intake channel and the admin listener:
/// each request waits for the publisher's answer, one package at a time in arrival order.
#[derive(Clone)]
pub(crate) struct PublisherHandle {
    queue: mpsc::Sender<Command>,
}

impl PublisherHandle {
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
    /// What stopped the thread, if it ended by a panic; closed without a value when it ended
    /// because its queue was closed (the server stopping).
    pub(crate) died: oneshot::Receiver<String>,
}

/// Whether the publisher runs, as the server's health shows it.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// What stopped the publisher thread, once it stopped unexpectedly.
    publisher_stopped: OnceLock<String>,
}

impl Health {
    /// Records that the publisher thread ended unexpectedly, and why.
    pub(crate) fn publisher_died(&self, why: String) {
        let _ = self.publisher_stopped.set(why);
    }

    /// Why the publisher thread is not running, if it stopped unexpectedly.
    pub(crate) fn publisher_error(&self) -> Option<&str> {
        self.publisher_stopped.get().map(String::as_str)
    }
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
        sections: &Sections,
        archive: Archive,
        journal: Arc<Journal>,
        live: Swap,
    ) -> Self {
        Self {
            package: sections.package.clone(),
            site: sections.site.clone(),
            summary: sections.summary,
            rejected_retention: sections.config.rejected_retention,
            compressor: None,
            archive,
            journal,
            live,
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
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                let ran = std::panic::catch_unwind(AssertUnwindSafe(|| self.serve(&mut rx)));
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
            handle: PublisherHandle { queue: tx },
            died,
        })
    }

    /// The thread's work, until its queue is closed.
    fn serve(&self, rx: &mut mpsc::Receiver<Command>) {
        self.recover();
        self.expire_rejected();
        while let Some(cmd) = rx.blocking_recv() {
            match cmd {
                Command::Ingest(received, reply) => {
                    let _ = reply.send(self.handle(received));
                }
                Command::Force(received, reply) => {
                    let _ = reply.send(self.handle_forced(received));
                }
                Command::Rollback(corte, reply) => {
                    let _ = reply.send(self.rollback(&corte));
                }
                Command::Expire => self.expire_rejected(),
            }
        }
    }

    /// Takes one package through every step; see the module documentation.
    pub(crate) fn handle(&self, r: Received) -> Outcome {
        self.take(r, false)
    }

    /// Takes one package an operator insists on: see [`Command::Force`].
    pub(crate) fn handle_forced(&self, r: Received) -> Outcome {
        self.take(r, true)
    }

    fn take(&self, r: Received, force: bool) -> Outcome {
        #[cfg(feature = "fault-injection")]
        assert!(
            r.name.as_str() != FAULT_PANIC_NAME,
            "fault injection: {FAULT_PANIC_NAME} stops the publisher"
        );
        let outcome = match self.receive(&r) {
            Ok(stored) => self.process(Job {
                received: &r,
                stored,
                force,
            }),
            Err(outcome) => outcome,
        };
        log_outcome(&r.name, &outcome);
        outcome
    }

    /// Archives a received package (pending verification) with its evidence, and journals
    /// its arrival.
    fn receive(&self, r: &Received) -> Result<Stored, Outcome> {
        let stored = match self
            .archive
            .store_file(&r.path, self.package.limits.max_package_bytes)
        {
            Ok(stored) => stored,
            Err(e @ ArchiveError::TooLarge { .. }) => {
                let reason = format!("{e}; the package was not stored");
                self.event(
                    EventKind::Rejected,
                    None,
                    json!({
                        "name": r.name, "channel": r.channel, "reason": reason, "fault": Fault::Sender,
                    }),
                );
                return Err(Outcome::Rejected {
                    reason,
                    sha256: None,
                });
            }
            Err(e) => return Err(self.failed(r, anyhow!(e).context("archiving the package"))),
        };
        let pkg_ref = Some((stored.sha256, r.name.as_str()));
        self.event(
            EventKind::Received,
            pkg_ref,
            json!({
                "channel": r.channel, "origin": r.origin, "size": stored.size,
                "received_at": r.received_at.to_string(),
            }),
        );
        for (ext, text) in [("sha256", &r.sidecar), ("minisig", &r.signature)] {
            if let Some(text) = text
                && let Err(e) = self.archive.store_evidence(&stored, ext, text.as_bytes())
            {
                return Err(self.failed(r, anyhow!(e).context("archiving the evidence")));
            }
        }
        self.event(EventKind::Archived, pkg_ref, json!({ "path": stored.path }));
        Ok(stored)
    }

    /// Everything after the package is archived: duplicates, attempts, verification, the
    /// corte time, and its outcome.
    fn process(&self, job: Job<'_>) -> Outcome {
        let (r, sha) = (job.received, job.stored.sha256);
        let pkg_ref = job.pkg_ref();
        let previous = match self
            .journal
            .note_package(sha, &r.name, job.stored.size, r.received_at)
        {
            Ok(p) => p,
            Err(e) => return self.failed(r, anyhow!(e)),
        };
        if matches!(
            previous,
            Some(PackageState::Published | PackageState::Older)
        ) {
            self.event(
                EventKind::Duplicate,
                pkg_ref,
                json!({
                    "channel": r.channel, "previous_outcome": previous,
                }),
            );
            return Outcome::Duplicate {
                sha256: sha.to_hex(),
            };
        }
        if previous == Some(PackageState::SetAside) && !job.force {
            // Refused again, but still set aside: an operator may publish it.
            let reason = "this package was set aside earlier, after its processing was \
                          interrupted twice; an operator may publish it with `difusor rollback \
                          <SHA-256>` or `difusor ingest --force`"
                .to_owned();
            self.event(
                EventKind::Rejected,
                pkg_ref,
                json!({"channel": r.channel, "reason": reason, "fault": Fault::Sender}),
            );
            self.keep_rejected(sha);
            return Outcome::Rejected {
                reason,
                sha256: Some(sha.to_hex()),
            };
        }
        let attempts = match self.journal.begin_processing(sha) {
            Ok(n) => n,
            Err(e) => return self.fail(&job, anyhow!(e)),
        };
        if attempts > MAX_ATTEMPTS && !job.force {
            return self.set_aside(&job, attempts - 1);
        }

        let incoming = Incoming {
            name: r.name.to_string(),
            path: job.stored.path.clone(),
            sha256: sha,
            size: job.stored.size,
            sidecar: r.sidecar.clone(),
            signature: r.signature.clone(),
        };
        let pkg = match package::verify(&incoming, &self.package.evidence, &self.package.limits) {
            Ok(pkg) => pkg,
            Err(rejection) if rejection.is_senders_fault() => {
                return self.reject(&job, rejection.to_string());
            }
            Err(ours) => return self.fail(&job, anyhow!(ours)),
        };
        self.event(
            EventKind::Verified,
            pkg_ref,
            json!({
                "kind": pkg.kind(),
                "files": pkg.files().len() + pkg.nested().len(),
                "evidence": pkg.evidence(),
                "evidence_summary": pkg.evidence().to_string(),
            }),
        );
        if pkg.kind() == PackageKind::Data
            && let Some(reason) = self.inspect(&pkg, pkg_ref)
            && self.summary.reject_inconsistent
        {
            return self.reject(&job, reason);
        }
        let corte = match package::corte_time(&pkg, &self.package.corte, r.received_at) {
            Ok(corte) => corte,
            Err(impossible) => return self.reject(&job, impossible.to_string()),
        };
        if corte.source == CorteSource::Arrival {
            self.event(
                EventKind::Warning,
                pkg_ref,
                json!({
                    "warning": "no corte time in the name or the content; the arrival time is used",
                }),
            );
        }
        let corte_id = corte.id();
        if !job.force
            && let Some(reason) = self
                .package
                .corte
                .hold_reason(&corte.time, Timestamp::now())
        {
            return self.hold(&job, &corte, reason);
        }
        let live = self.live.current();
        if let Some(current) = live.corte()
            && corte.time < current.time
        {
            if let Err(e) = self.archive.accept(sha) {
                return self.fail(&job, anyhow!(e).context("archiving the verified package"));
            }
            self.event(
                EventKind::Older,
                pkg_ref,
                json!({
                    "corte": corte_id, "live": current.id,
                }),
            );
            self.set_outcome(sha, PackageState::Older);
            return Outcome::Older {
                corte: corte_id,
                live: current.id.clone(),
                sha256: sha.to_hex(),
            };
        }

        match self.publish(&pkg, &corte, r.received_at) {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(too_big)) => self.reject(&job, too_big),
            Err(e) => self.fail(&job, e.context("recording the publication")),
        }
    }

    /// Journals a rejection (the sender's fault) and keeps the package apart, with the
    /// rejected ones.
    fn reject(&self, job: &Job<'_>, reason: String) -> Outcome {
        let sha = job.stored.sha256;
        self.event(
            EventKind::Rejected,
            job.pkg_ref(),
            json!({
                "channel": job.received.channel, "reason": reason, "fault": Fault::Sender,
            }),
        );
        self.set_outcome(sha, PackageState::Rejected);
        self.keep_rejected(sha);
        Outcome::Rejected {
            reason,
            sha256: Some(sha.to_hex()),
        }
    }

    /// Moves a package to the rejected ones; a failure is journaled, not fatal (the package is
    /// still archived, pending, and is moved at the next start).
    fn keep_rejected(&self, sha: Sha256) {
        if let Err(e) = self.archive.reject(sha) {
            tracing::error!(error = %e, "cannot move a rejected package apart");
            self.event(
                EventKind::Warning,
                None,
                json!({"warning": format!("cannot move rejected package {sha} apart: {e}")}),
            );
        }
    }

    /// Sets a package aside whose processing was interrupted `interrupted` times in a row.
    fn set_aside(&self, job: &Job<'_>, interrupted: u32) -> Outcome {
        let sha = job.stored.sha256;
        let reason = format!(
            "processing this package was interrupted {interrupted} times in a row (the server \
             stopped or died while verifying or publishing it); it is set aside and not taken \
             again. An operator may publish it with `difusor rollback {}` or `difusor ingest \
             --force`",
            sha.to_hex().get(..12).unwrap_or_default()
        );
        self.event(
            EventKind::SetAside,
            job.pkg_ref(),
            json!({"channel": job.received.channel, "reason": reason, "attempts": interrupted}),
        );
        self.set_outcome(sha, PackageState::SetAside);
        self.keep_rejected(sha);
        Outcome::Rejected {
            reason,
            sha256: Some(sha.to_hex()),
        }
    }

    /// Keeps a verified package whose corte time is implausible, unpublished.
    fn hold(&self, job: &Job<'_>, corte: &CorteTime, reason: String) -> Outcome {
        let sha = job.stored.sha256;
        if let Err(e) = self.archive.accept(sha) {
            return self.fail(job, anyhow!(e).context("archiving the verified package"));
        }
        let corte_id = corte.id();
        let reason = format!(
            "{reason}; held, not published. If it is right, publish it with `difusor rollback \
             {corte_id}` or `difusor ingest --force`"
        );
        self.event(
            EventKind::Held,
            job.pkg_ref(),
            json!({
                "corte": corte_id, "corte_time": corte.time.to_string(),
                "corte_source": corte.source, "reason": reason,
            }),
        );
        self.set_outcome(sha, PackageState::Held);
        Outcome::Held {
            corte: corte_id,
            reason,
            sha256: sha.to_hex(),
        }
    }

    /// Takes again, from the archive, the packages whose processing a crash interrupted
    /// (each is set aside instead once it has been interrupted [`MAX_ATTEMPTS`] times), and
    /// files away pending copies whose outcome is already decided.
    pub(crate) fn recover(&self) {
        let interrupted = match self.journal.interrupted() {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the journal to recover interrupted packages");
                return;
            }
        };
        for sha in interrupted {
            self.take_again(sha);
        }
        self.file_away_pending();
    }

    /// Takes again, from the archive, a package whose processing was interrupted.
    fn take_again(&self, sha: Sha256) {
        let Ok(Some((name, first_received, _))) = self.journal.package(sha) else {
            return;
        };
        // The journal holds only names checked when they arrived.
        let Some(package_name) = PackageName::new(&name) else {
            tracing::error!(%name, "the journal names an interrupted package with an invalid name; it is not taken again");
            return;
        };
        let stored = match self.archive.check(sha) {
            Ok(stored) => stored,
            Err(e) => {
                self.event(
                    EventKind::Warning,
                    Some((sha, &name)),
                    json!({"warning": format!(
                        "processing of {name} was interrupted, and its archived copy cannot \
                         be read to take it again: {e}; it is taken when its channel delivers \
                         it again"
                    ), "fault": Fault::Ours}),
                );
                self.set_outcome(sha, PackageState::Failed);
                return;
            }
        };
        tracing::warn!(%name, "processing was interrupted by a stop of the server; taking it again");
        self.event(
            EventKind::Warning,
            Some((sha, &name)),
            json!({"warning": format!(
                "processing of {name} was interrupted by a stop of the server; it is taken \
                 again from the archive, or set aside if it was interrupted before"
            )}),
        );
        let received = Received {
            name: package_name,
            sidecar: self.archive.read_evidence(&stored.path, "sha256"),
            signature: self.archive.read_evidence(&stored.path, "minisig"),
            path: stored.path.clone(),
            channel: Channel::Recovery,
            origin: None,
            received_at: first_received,
        };
        let outcome = self.process(Job {
            received: &received,
            stored,
            force: false,
        });
        log_outcome(&received.name, &outcome);
    }

    /// Pending copies left by a crash: one received but not yet begun is taken again; one
    /// whose outcome was journaled joins the verified packages or the rejected ones; one the
    /// journal does not know (a crash between storing and journaling) waits where it is for
    /// its channel to deliver it again.
    fn file_away_pending(&self) {
        let pending = match self.archive.pending() {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the pending packages");
                return;
            }
        };
        for sha in pending {
            let outcome = self.journal.package(sha).ok().flatten().map(|p| p.2);
            let moved = match outcome {
                Some(PackageState::Published | PackageState::Older | PackageState::Held) => {
                    self.archive.accept(sha).map(|_| ())
                }
                Some(PackageState::Rejected | PackageState::SetAside) => {
                    self.archive.reject(sha).map(|_| ())
                }
                Some(PackageState::Received) => {
                    self.take_again(sha);
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = moved {
                tracing::error!(error = %e, %sha, "cannot file away a pending package");
            }
        }
    }

    /// Removes the rejected packages kept longer than `rejected_retention`; each removal is
    /// journaled (the hash and reason of the rejection stay in the journal).
    fn expire_rejected(&self) {
        let Some(retention) = self.rejected_retention else {
            return;
        };
        let expired = match self
            .archive
            .expire_rejected(retention, std::time::SystemTime::now())
        {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(error = %e, "cannot remove expired rejected packages");
                return;
            }
        };
        for gone in expired {
            let name = self
                .journal
                .package(gone.sha256)
                .ok()
                .flatten()
                .map(|p| p.0)
                .unwrap_or_default();
            tracing::info!(%name, sha256 = %gone.sha256, "rejected package removed: its retention is over");
            self.event(
                EventKind::RejectedRemoved,
                Some((gone.sha256, &name)),
                json!({
                    "age_seconds": gone.age.as_secs(),
                    "retention_seconds": retention.as_secs(),
                }),
            );
        }
    }

    /// Inspects the results CSVs of a data package; journals a warning for each election
    /// whose summary line contradicts its rows under every definition in scope, or for a
    /// results CSV that cannot be read. Returns what is wrong, if anything.
    fn inspect(&self, pkg: &VerifiedPackage, pkg_ref: Option<(Sha256, &str)>) -> Option<String> {
        let members: Vec<&package::Member> = pkg.files().iter().chain(pkg.nested()).collect();
        let report = match prep::inspect_members(pkg.name(), &members, self.summary.reglas, &|_| {})
        {
            Ok(report) => report,
            Err(e) => {
                let warning = format!("a results CSV cannot be read: {e}");
                tracing::warn!(name = %pkg.name(), %warning);
                self.event(
                    EventKind::Warning,
                    pkg_ref,
                    json!({"warning": warning, "check": "summary", "file": e.file}),
                );
                return Some(warning);
            }
        };
        let mut problems = Vec::new();
        for e in &report.elections {
            let differences: Vec<_> = e.differences().collect();
            if differences.is_empty() {
                continue;
            }
            let text = differences
                .iter()
                .map(|c| c.describe())
                .collect::<Vec<_>>()
                .join("; ");
            let warning = format!(
                "{}: the summary line contradicts the rows: {text}",
                e.election()
            );
            tracing::warn!(name = %pkg.name(), %warning);
            self.event(
                EventKind::Warning,
                pkg_ref,
                json!({
                    "warning": warning, "check": "summary", "file": e.file,
                    "election": e.title, "fields": differences,
                }),
            );
            problems.push(warning);
        }
        (!problems.is_empty()).then(|| problems.join(" | "))
    }

    /// Builds the site of `pkg` over the live one, keeps the package among the verified
    /// ones, journals the corte, and swaps it in. `Ok(Err(reason))` when the site would hold
    /// more than `max_site_bytes`: nothing changed.
    fn publish(
        &self,
        pkg: &VerifiedPackage,
        corte: &CorteTime,
        received_at: Timestamp,
    ) -> anyhow::Result<Result<Outcome, String>> {
        let live = self.live.current();
        let replace = pkg.kind() == PackageKind::Site
            && (live.corte().is_none()
                || self.site.mode == SiteMode::Replace
                || (!self.site.complete_marker.is_empty()
                    && pkg.name().contains(&self.site.complete_marker)));
        let corte_id = corte.id();
        let site = live.apply(&Applied {
            package: pkg,
            archived: self.archive.path_of(pkg.sha256()),
            corte_id: &corte_id,
            corte_time: &corte.time,
            replace,
            received_at,
        });
        let bytes = site.memory_bytes();
        if bytes > self.site.max_bytes {
            return Ok(Err(format!(
                "the site with this package would hold {bytes} bytes in memory, over \
                 max_site_bytes ({}); the live corte stays",
                self.site.max_bytes
            )));
        }
        self.archive
            .accept(pkg.sha256())
            .context("archiving the verified package")?;
        let live_at = Timestamp::now();
        let mut publication = Publication {
            seq: 0,
            corte_id: corte_id.clone(),
            corte_time: corte.time.to_string(),
            corte_source: corte.source,
            kind: pkg.kind(),
            package: pkg.sha256(),
            name: pkg.name().to_owned(),
            build: if replace {
                Build::Replace
            } else {
                Build::Overlay
            },
            base: live.corte().map(|c| c.seq),
            received_at,
            live_at,
            lag_ms: live_at.duration_since(corte.time.timestamp()).as_millis() as i64,
        };
        publication.seq = self.journal.record_publication(&publication)?;
        self.swap(site, &publication, corte.time.clone(), corte.source);
        Ok(Ok(Outcome::Published {
            corte: corte_id,
            sha256: pkg.sha256().to_hex(),
            lag_seconds: publication.lag_ms as f64 / 1000.0,
        }))
    }

    /// Makes `site` live as the corte of `publication`.
    fn swap(
        &self,
        site: Site,
        publication: &Publication,
        time: ZonedDateTime,
        source: CorteSource,
    ) {
        let corte = Corte {
            seq: publication.seq,
            id: publication.corte_id.clone(),
            time,
            source,
            package: publication.package,
            package_name: publication.name.clone(),
            received_at: publication.received_at,
            live_at: publication.live_at,
        };
        let mut site = site.with_corte(corte);
        let jobs = site.take_jobs();
        self.live.store(site);
        if let Some(compressor) = &self.compressor {
            compressor.submit(jobs);
        }
    }

    /// Publishes again the site as it was at corte `corte` (a corte id, a publication number,
    /// or a package SHA-256 prefix of at least 8 digits).
    pub(crate) fn rollback(&self, corte: &str) -> Outcome {
        match self.rollback_inner(corte) {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed {
                error: format!("{e:#}"),
                fault: Fault::Ours,
            },
        }
    }

    fn rollback_inner(&self, wanted: &str) -> anyhow::Result<Outcome> {
        let pubs = self.journal.publications()?;
        let published = pubs.iter().rev().find(|p| {
            p.corte_id == wanted
                || p.seq.to_string() == wanted
                || (wanted.len() >= 8
                    && p.package.to_hex().starts_with(&wanted.to_ascii_lowercase()))
        });
        let Some(target) = published else {
            return self.publish_older(wanted);
        };
        let site = self.site_at(&pubs, target.seq)?;
        let live_at = Timestamp::now();
        let time: ZonedDateTime = target
            .corte_time
            .parse()
            .context("corte time in the journal")?;
        let mut publication = Publication {
            build: Build::Rollback,
            base: Some(target.seq),
            live_at,
            lag_ms: 0,
            ..target.clone()
        };
        publication.seq = self.journal.record_publication(&publication)?;
        let source = target.corte_source;
        self.swap(site, &publication, time, source);
        tracing::warn!(corte = %target.corte_id, "rolled back by an operator");
        Ok(Outcome::Published {
            corte: target.corte_id.clone(),
            sha256: target.package.to_hex(),
            lag_seconds: 0.0,
        })
    }

    /// Publishes a package that was archived without being published (older than the live
    /// corte, held, or set aside), laid over the live site, because an operator asked for it
    /// by corte id or SHA-256 prefix.
    fn publish_older(&self, wanted: &str) -> anyhow::Result<Outcome> {
        let (sha, name) = self.journal.unpublished_package(wanted)?.ok_or_else(|| {
            anyhow!(
                "no published corte and no archived unpublished (older, held or set aside) \
                 package matches {wanted:?}; `difusor history` lists them"
            )
        })?;
        let pkg = self.reverify(sha, &name)?;
        let corte = package::corte_time(&pkg, &self.package.corte, Timestamp::now())?;
        let outcome = self
            .publish(&pkg, &corte, Timestamp::now())?
            .map_err(|too_big| anyhow!(too_big))?;
        self.event(
            EventKind::Rollback,
            Some((sha, &name)),
            json!({"corte": corte.id(), "reason": "an operator published a package that had not been published"}),
        );
        tracing::warn!(corte = %corte.id(), "unpublished package published by an operator");
        Ok(outcome)
    }

    /// Rebuilds the live site from the journal and the archive, before any package is taken.
    /// Returns the number of packages applied. If the last publication cannot be rebuilt
    /// (a damaged archive), earlier ones are tried, each failure journaled as a warning.
    pub(crate) fn rebuild(&self) -> anyhow::Result<usize> {
        let pubs = self.journal.publications()?;
        for last in pubs.iter().rev() {
            match self.site_at(&pubs, last.seq) {
                Ok(site) => {
                    let time: ZonedDateTime = last
                        .corte_time
                        .parse()
                        .context("corte time in the journal")?;
                    let files = site.len();
                    self.swap(site, last, time, last.corte_source);
                    self.event(
                        EventKind::Rebuilt,
                        Some((last.package, &last.name)),
                        json!({
                            "seq": last.seq, "corte": last.corte_id, "files": files,
                        }),
                    );
                    return Ok(files);
                }
                Err(e) => {
                    tracing::error!(seq = last.seq, error = %format!("{e:#}"), "cannot rebuild corte; trying the one before");
                    self.event(EventKind::Warning, Some((last.package, &last.name)), json!({
                        "warning": format!("cannot rebuild corte {} at start: {e:#}", last.corte_id),
                    }));
                }
            }
        }
        Ok(0)
    }

    /// The site as it was when publication `seq` went live.
    fn site_at(&self, pubs: &[Publication], seq: i64) -> anyhow::Result<Site> {
        let by_seq: HashMap<i64, &Publication> = pubs.iter().map(|p| (p.seq, p)).collect();
        // Walk back to the first publication, collecting the packages applied on the way.
        let mut steps = Vec::new();
        let mut next = Some(seq);
        while let Some(s) = next {
            let p = by_seq
                .get(&s)
                .ok_or_else(|| anyhow!("publication {s} missing from the journal"))?;
            if p.build != Build::Rollback {
                steps.push(*p);
            }
            next = p.base;
            if steps.len() > pubs.len() {
                return Err(anyhow!("the journal's publications form a loop at {s}"));
            }
        }
        steps.reverse();
        // Site files before the last replacing site package contribute nothing to the result.
        let last_replace = steps
            .iter()
            .rposition(|p| p.build == Build::Replace && p.kind == PackageKind::Site);
        // Data packages before the last one are only listed: their unpacked files were
        // replaced by the last one's, and their zips are served from the archive as they are.
        let last_data = steps.iter().rposition(|p| p.kind == PackageKind::Data);
        let mut site = Site::new(self.site.cache.clone());
        for (i, p) in steps.iter().enumerate() {
            if p.kind == PackageKind::Site && last_replace.is_some_and(|r| i < r) {
                continue;
            }
            if p.kind == PackageKind::Data && last_data.is_some_and(|d| i < d) {
                let stored = self.archive.check(p.package)?;
                let time: ZonedDateTime =
                    p.corte_time.parse().context("corte time in the journal")?;
                site = site.list(&Listed {
                    name: &p.name,
                    sha256: p.package,
                    size: stored.size,
                    archived: stored.path,
                    corte_id: &p.corte_id,
                    corte_time: &time,
                    received_at: p.received_at,
                });
                continue;
            }
            let pkg = self.reverify(p.package, &p.name)?;
            let time: ZonedDateTime = p.corte_time.parse().context("corte time in the journal")?;
            site = site.apply(&Applied {
                package: &pkg,
                archived: self.archive.path_of(p.package),
                corte_id: &p.corte_id,
                corte_time: &time,
                replace: p.build == Build::Replace,
                received_at: p.received_at,
            });
        }
        Ok(site)
    }

    /// Checks an archived package's hash and opens it again with today's limits.
    fn reverify(&self, sha: Sha256, name: &str) -> anyhow::Result<VerifiedPackage> {
        let stored = self.archive.check(sha)?;
        let incoming = Incoming {
            name: name.to_owned(),
            sidecar: self.archive.read_evidence(&stored.path, "sha256"),
            signature: self.archive.read_evidence(&stored.path, "minisig"),
            path: stored.path,
            sha256: sha,
            size: stored.size,
        };
        // It verified when it was received; what evidence it had is checked again, but a
        // policy made stricter since does not unpublish it.
        let policy = EvidencePolicy {
            sidecar: Policy::IfPresent,
            member_list: Policy::IfPresent,
            signature: Policy::IfPresent,
            ..self.package.evidence.clone()
        };
        package::verify(&incoming, &policy, &self.package.limits)
            .with_context(|| format!("package {name} ({sha})"))
    }

    fn set_outcome(&self, sha: Sha256, outcome: PackageState) {
        if let Err(e) = self.journal.set_outcome(sha, outcome) {
            tracing::error!(error = %e, "could not write to the journal");
        }
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
        self.set_outcome(job.stored.sha256, PackageState::Failed);
        self.failed(job.received, e)
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
