//! The journal: an append-only record of every event, in SQLite (WAL, synchronous FULL).
//!
//! Three tables:
//! - `events`: everything that happened, with its time (received, rejected and why, archived,
//!   published with lag, duplicate, older, rollback, start, stop, intake errors);
//! - `packages`: each package once, by SHA-256, with its last outcome (`processing` while the
//!   publisher works on it, so a start finds what a crash interrupted; `failed` when this
//!   machine could not finish it, so that it is taken again when delivered again;
//!   `unjournaled` when a start found it verified in the archive and not here, this journal
//!   having lost its rows) and how many times in a row its processing began;
//! - `publications`: each corte that went live, in order, with what it was built on. The live
//!   site is rebuilt from this table and the archive at start.
//!
//! # One writer
//! Every write goes through one thread, `journal`, that owns the write connection: callers
//! hand it work over a channel and wait for the result ([`Journal::record`] on threads of
//! their own, [`Journal::record_async`] on the async threads that serve visitors, which then
//! wait without blocking), or post an event and go on ([`Journal::post`]): posted events are
//! written together, in one transaction (one fsync) per batch, in the order they were posted.
//! Reads use a connection of their own (WAL lets them run while the writer writes).
//!
//! # Guarantees
//! - Rows are only ever inserted, never updated or deleted, except a package's `outcome`,
//!   `attempts` and `name` (the name of the delivery taken last: [`Journal::note_package`],
//!   [`Journal::record_publication`]). A rejected package's hash and reason stay in `events` forever, after its
//!   archived copy is removed.
//! - [`Journal::record_publication`] commits (fsynced) before it returns, so a corte is in
//!   the journal before it is swapped in: a crash can lose a swap, never a record.
//! - Work is written in the order it was handed over, so a write that returns has also
//!   written every event posted before it. A [`Journal`] dropped writes what is queued first.
//! - Once written, every event is handed to the journal's follower, if one was set
//!   ([`Journal::follow`]: syslog), on the writer thread, in the order written.
//! - A write whose caller waits fails, and changes nothing, while the journal's file is not
//!   the one this process opened (removed, moved away, or another file put in its place
//!   while it runs): what it wrote would go where no start reads it. It writes again once
//!   that file is put back. Posted events go on into the file opened.
//! - A write whose caller waits returns once its rows are where a start reads them, even when
//!   the journal's `-wal` file was removed (or another file put in its place) while it runs:
//!   SQLite would go on writing into the file it opened, no longer at that path, lost at a
//!   crash. Then its rows are copied into the journal's file (a checkpoint, fsynced), the
//!   connections are opened again, which makes a new `-wal` file, and a `warning`
//!   (`"check": "journal-wal"`) says so ([`Writer::keep_wal`]). The same is done after each
//!   batch of posted events. A write fails when that copy cannot be made.
//! - [`Journal::open`] refuses a damaged journal ([`JournalError::Damaged`]: SQLite's
//!   `quick_check` finds a page overwritten, or the file cut short), so that a start never
//!   serves with a journal some of whose rows cannot be read, nor finds the damage only when
//!   a later write reaches it. [`Journal::open_read_only`] refuses it the same way, so that
//!   `history` and `memoria` never give cortes and events read from a damaged journal as
//!   whole, nor stop midway with no more than "database disk image is malformed".
//! - Posting never blocks: at most [`MAX_QUEUED_EVENTS`] posted events wait; past that one is
//!   counted as lost, and the writer journals how many were lost (`warning`) once it catches
//!   up.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::thread::JoinHandle;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::hash::Sha256;
use crate::package::{CorteSource, PackageKind};

/// Most posted events that may wait for the writer; past it, new ones are counted as lost.
pub(crate) const MAX_QUEUED_EVENTS: usize = 65_536;
/// Most posted events written in one transaction.
const MAX_BATCH: usize = 1024;
/// Most of the latest events [`Journal::taken_arrivals`] looks back through.
const MAX_ARRIVAL_LOOKBACK: i64 = 1 << 18;

/// A journal failure: the database could not be read or written (our side).
#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    /// SQLite failed.
    #[error("journal: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The writer thread could not start, or has stopped.
    #[error("journal: the writer thread is not running")]
    Stopped,
    /// The journal's file is not the one this process opened: removed, moved away or
    /// replaced while it runs ([`Journal`]'s guarantees).
    #[error("journal: {0}")]
    Moved(String),
    /// The journal's `-wal` file was removed or replaced while it runs, and the rows it held
    /// could not be copied into the journal's file ([`Writer::keep_wal`]).
    #[error("journal: {0}")]
    Wal(String),
    /// SQLite's check of the journal when it is opened (to write at start, or to read for
    /// `history` and `memoria`) finds it damaged: what it found.
    #[error("journal: SQLite's check of it finds pages that are not as SQLite wrote them: {0}")]
    Damaged(String),
}

type Result<T> = std::result::Result<T, JournalError>;

impl JournalError {
    /// What an operator can do about a journal this process cannot write, when SQLite says
    /// why.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        let e = match self {
            Self::Sql(e) => e,
            Self::Damaged(_) => return Some(DAMAGED),
            _ => return None,
        };
        match e.sqlite_error_code()? {
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => Some(
                "another process holds it (an sqlite3 shell left open on it, a program copying \
                 it): end that process and start again",
            ),
            rusqlite::ErrorCode::ReadOnly
            | rusqlite::ErrorCode::PermissionDenied
            | rusqlite::ErrorCode::CannotOpen => Some(
                "this process may not open it as it needs to (to write it, or to read it): \
                 check its owner and mode, and those of its folder and of the -wal and -shm \
                 files beside it",
            ),
            rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt => {
                Some(DAMAGED)
            }
            _ => None,
        }
    }

    /// This failure as an operator reads it: what could not be done (`doing`, naming the
    /// journal's file), what to do about it when that is known ([`JournalError::hint`]), then
    /// what failed. The one wording of a journal's failure for `serve`, `history` and
    /// `memoria`.
    pub(crate) fn explained(self, doing: String) -> anyhow::Error {
        let hint = self.hint().map(|h| format!(" ({h})")).unwrap_or_default();
        anyhow::Error::new(self).context(format!("{doing}{hint}"))
    }
}

/// What to do about a damaged journal.
const DAMAGED: &str = "it is damaged: not a whole SQLite database (overwritten in whole or in \
    part, or cut short). Move it and the -wal and -shm files beside it out of the data folder, \
    keep them for the record, and restore the journal from a backup; the archive (archivo/) is \
    intact, and the start journals the verified packages the restored journal does not know \
    (`unjournaled`). With no backup, the start without it makes a new journal, and the \
    archive's packages are journaled that way";

/// Most of the faults SQLite's check finds in a damaged journal that the refusal names.
const MAX_DAMAGE_NAMED: usize = 5;

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum EventKind {
    /// The server started.
    Start,
    /// The server stopped.
    Stop,
    /// A package arrived whole on a channel.
    Received,
    /// A package failed a check; the live corte did not change.
    Rejected,
    /// A package was stored in the archive.
    Archived,
    /// A package passed every check; the detail says which evidence it had.
    Verified,
    /// Evidence came after its package was taken, alone or with its bytes again (a
    /// duplicate, `"duplicate": true`), and matches it: a `.sha256` sidecar that gives its
    /// digest, or a `.minisig` signature that verifies it with a configured key. Its text,
    /// and when the package was taken. The package is not checked or changed again.
    EvidenceLate,
    /// A corte went live.
    Published,
    /// A package already published (or archived as older) arrived again; what became of
    /// each evidence file that came with it (`"evidence"`: kept already, journaled as
    /// `evidence-late`, or, with its text, why it does not match).
    Duplicate,
    /// A package older than the live corte was archived and not published.
    Older,
    /// A verified package whose corte time is implausible (far outside the publication
    /// window, or ahead of the clock) was archived and not published: an operator decides.
    Held,
    /// A package whose processing was interrupted (the server died) twice was set aside, not
    /// retried: an operator decides.
    SetAside,
    /// A rejected package's archived copy was removed, its retention over.
    RejectedRemoved,
    /// An operator rolled back to an earlier corte.
    Rollback,
    /// The live site was rebuilt from the archive at start.
    Rebuilt,
    /// An intake channel failed (not a package's fault).
    IntakeError,
    /// Something an operator should look at.
    Warning,
    /// The institute's notice replaced the results.
    NoticeOn,
    /// The notice was lifted; results are shown again.
    NoticeOff,
    /// An SFTP session ended: address, key fingerprint, files, bytes, refusals.
    SftpSession,
    /// An SFTP connection was dropped before authentication (address, session limit).
    SftpRefused,
    /// A pulled URL started failing (recorded once per run of failures, not per attempt).
    PullError,
    /// A pulled URL that was failing works again: how many attempts failed, since when.
    PullRecovered,
    /// The publisher thread stopped unexpectedly (a defect); the server exits so that its
    /// service manager starts it again.
    PublisherDied,
    /// The server was asked to stop: its load balancer health check fails while the public
    /// listeners go on serving for `drain_time`.
    Draining,
    /// A cache in front that was failing takes purges again: how many failed, since when.
    PurgeRecovered,
    /// The clock, past `clock_max_offset`, is within it again: its offset, which server.
    ClockRecovered,
    /// A certificate was obtained over ACME (`acme_domains`): names, serial, end of validity.
    AcmeCertificate,
    /// ACME works again after failures: how many attempts failed, since when.
    AcmeRecovered,
}

impl EventKind {
    /// How the journal writes it (`published`, `notice-on`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Received => "received",
            Self::Rejected => "rejected",
            Self::Archived => "archived",
            Self::Verified => "verified",
            Self::EvidenceLate => "evidence-late",
            Self::Published => "published",
            Self::Duplicate => "duplicate",
            Self::Older => "older",
            Self::Held => "held",
            Self::SetAside => "set-aside",
            Self::RejectedRemoved => "rejected-removed",
            Self::Rollback => "rollback",
            Self::Rebuilt => "rebuilt",
            Self::IntakeError => "intake-error",
            Self::Warning => "warning",
            Self::NoticeOn => "notice-on",
            Self::NoticeOff => "notice-off",
            Self::SftpSession => "sftp-session",
            Self::SftpRefused => "sftp-refused",
            Self::PullError => "pull-error",
            Self::PullRecovered => "pull-recovered",
            Self::PublisherDied => "publisher-died",
            Self::Draining => "draining",
            Self::PurgeRecovered => "purge-recovered",
            Self::ClockRecovered => "clock-recovered",
            Self::AcmeCertificate => "acme-certificate",
            Self::AcmeRecovered => "acme-recovered",
        }
    }
}

/// Where a package stands, as the journal's `packages.outcome` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PackageState {
    /// Noted on arrival; its processing has not begun.
    Received,
    /// The publisher is working on it (found so at a start: a stop interrupted it).
    Processing,
    /// This machine could not finish it: not decided, taken again when delivered again.
    Failed,
    /// Published.
    Published,
    /// Older than the live corte: archived, not published.
    Older,
    /// Held for an operator (an implausible corte time).
    Held,
    /// Rejected: the sender's fault.
    Rejected,
    /// Set aside after interrupted attempts.
    SetAside,
    /// Found verified in the archive at a start, unknown to the journal, which had lost
    /// its rows ([`Journal::note_unjournaled`]): not published, not decided, taken again
    /// when delivered again, or published when an operator's rollback names it.
    Unjournaled,
}

impl PackageState {
    pub(crate) const ALL: [Self; 9] = [
        Self::Received,
        Self::Processing,
        Self::Failed,
        Self::Published,
        Self::Older,
        Self::Held,
        Self::Rejected,
        Self::SetAside,
        Self::Unjournaled,
    ];

    /// How the journal writes it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Processing => "processing",
            Self::Failed => "failed",
            Self::Published => "published",
            Self::Older => "older",
            Self::Held => "held",
            Self::Rejected => "rejected",
            Self::SetAside => "set-aside",
            Self::Unjournaled => "unjournaled",
        }
    }

    /// Whether what became of the package is decided: its channel need not deliver it again.
    pub(crate) fn is_decided(self) -> bool {
        matches!(
            self,
            Self::Published | Self::Older | Self::Held | Self::Rejected | Self::SetAside
        )
    }
}

/// Stores an enum of the journal's columns as its text, and reads it back, refusing text this
/// version does not know (a journal written by a newer one) with a clear error.
macro_rules! text_column {
    ($($t:ty),*) => {$(
        impl rusqlite::types::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                <$t>::ALL.into_iter().find(|v| v.as_str() == text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!(
                            "{text:?} is not a {} this version knows",
                            stringify!($t)
                        )
                        .into(),
                    )
                })
            }
        }
    )*};
}

text_column!(PackageState, PackageKind, CorteSource);

/// One recorded event.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Event {
    /// Row id: the order of events.
    pub(crate) id: i64,
    /// When it happened.
    pub(crate) at: Timestamp,
    /// What happened.
    pub(crate) kind: String,
    /// The package concerned, if any.
    pub(crate) package: Option<String>,
    /// The package's file name, if any.
    pub(crate) name: Option<String>,
    /// Details (JSON).
    pub(crate) detail: serde_json::Value,
}

/// How a publication's site was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Build {
    /// The package alone is the site.
    Replace,
    /// The package over the site of publication `base`.
    Overlay,
    /// The site of publication `base`, again.
    Rollback,
}

impl Build {
    fn as_str(self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::Overlay => "overlay",
            Self::Rollback => "rollback",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "replace" => Self::Replace,
            "rollback" => Self::Rollback,
            _ => Self::Overlay,
        }
    }
}

/// One corte that went live.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Publication {
    /// Order of publication, from 1.
    pub(crate) seq: i64,
    /// Corte id (`20240602_2015`).
    pub(crate) corte_id: String,
    /// Corte time, RFC 3339 with its offset.
    pub(crate) corte_time: String,
    /// Where the corte time came from.
    pub(crate) corte_source: CorteSource,
    /// What the package was for.
    pub(crate) kind: PackageKind,
    /// The package applied (for a rollback: the package of the target).
    pub(crate) package: Sha256,
    /// Its file name.
    pub(crate) name: String,
    /// How the site was built.
    pub(crate) build: Build,
    /// The publication it was built on (overlay) or returns to (rollback).
    pub(crate) base: Option<i64>,
    /// When the package was received.
    pub(crate) received_at: Timestamp,
    /// When the corte went live.
    pub(crate) live_at: Timestamp,
    /// live_at − corte time, in milliseconds.
    pub(crate) lag_ms: i64,
}

/// The publications whose packages built the site of publication `seq`, oldest first: from
/// the first publication, through each one's `base`, to `seq`; rollbacks, which apply no
/// package, are passed through.
pub(crate) fn lineage(
    pubs: &[Publication],
    seq: i64,
) -> std::result::Result<Vec<&Publication>, Lineage> {
    let mut steps: Vec<&Publication> = chain(pubs, seq)?
        .into_iter()
        .filter(|p| p.build != Build::Rollback)
        .collect();
    steps.reverse();
    Ok(steps)
}

/// The latest rollback among publication `seq` and those it was built on (followed through
/// their bases, as [`lineage`] follows them), if any: the site of `seq` holds nothing older
/// than what that rollback brought back.
pub(crate) fn last_rollback(
    pubs: &[Publication],
    seq: i64,
) -> std::result::Result<Option<&Publication>, Lineage> {
    Ok(chain(pubs, seq)?
        .into_iter()
        .find(|p| p.build == Build::Rollback))
}

/// Publication `seq` and every one it was built on, through each one's `base`, newest first.
fn chain(pubs: &[Publication], seq: i64) -> std::result::Result<Vec<&Publication>, Lineage> {
    let by_seq: HashMap<i64, &Publication> = pubs.iter().map(|p| (p.seq, p)).collect();
    let mut walked = Vec::new();
    let mut next = Some(seq);
    while let Some(s) = next {
        let p = by_seq.get(&s).ok_or(Lineage::Missing(s))?;
        walked.push(*p);
        next = p.base;
        if walked.len() > pubs.len() {
            return Err(Lineage::Loop(s));
        }
    }
    Ok(walked)
}

/// Why the publications a site was built from cannot be followed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Lineage {
    /// A publication names a base the journal does not hold.
    #[error("publication {0} missing from the journal")]
    Missing(i64),
    /// The bases lead round in a circle.
    #[error("the journal's publications form a loop at {0}")]
    Loop(i64),
}

/// A package this node took (published, archived as older, or held), as the journal holds it.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    /// Its SHA-256.
    pub(crate) sha256: Sha256,
    /// Its file name: the name it was taken under.
    pub(crate) name: String,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// When it first arrived.
    pub(crate) first_received: Timestamp,
}

/// A verified package found in the archive that the journal did not know.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Unjournaled {
    /// Its SHA-256.
    pub(crate) sha256: Sha256,
    /// Its name, as the `.sha256` file kept beside it gives it; empty when none does.
    pub(crate) name: String,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// When it was archived (its archived copy's modification time).
    pub(crate) archived_at: Timestamp,
}

/// A delivery a channel handed over whose package was taken (published, already there,
/// older, held), as the journal's events tell it: what the channel noted then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TakenArrival {
    /// The name it was delivered under.
    pub(crate) name: String,
    /// Its SHA-256.
    pub(crate) sha256: Sha256,
    /// When what became of it was journaled.
    pub(crate) at: Timestamp,
}

/// Counts for the status page.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Counts {
    /// Packages received (events, duplicates included).
    pub(crate) received: i64,
    /// Packages rejected.
    pub(crate) rejected: i64,
    /// Cortes published (rollbacks included).
    pub(crate) published: i64,
    /// Data packages whose summary line contradicts their rows (or could not be read).
    pub(crate) inconsistent: i64,
    /// Packages held for an operator now.
    pub(crate) held: i64,
    /// Packages set aside for an operator now.
    pub(crate) set_aside: i64,
    /// Verified packages a start found in the archive that the journal did not know, not
    /// delivered again since.
    pub(crate) unjournaled: i64,
}

/// A package waiting for an operator: held for its corte time, or set aside.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Waiting {
    /// SHA-256 of the package.
    pub(crate) sha256: String,
    /// Its file name.
    pub(crate) name: String,
    /// [`PackageState::Held`] or [`PackageState::SetAside`].
    pub(crate) outcome: PackageState,
    /// When that was decided.
    pub(crate) at: Timestamp,
    /// Its corte id, when known.
    pub(crate) corte: Option<String>,
    /// Why.
    pub(crate) reason: String,
}

/// An event as written, handed to the journal's follower.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    /// When it happened.
    pub(crate) at: Timestamp,
    /// What happened.
    pub(crate) kind: EventKind,
    /// The package concerned and its file name, if any.
    pub(crate) package: Option<(Sha256, String)>,
    /// Details.
    pub(crate) detail: serde_json::Value,
}

/// Told of every event once it is written; runs on the writer thread, so it must not block.
pub(crate) type Follower = Box<dyn Fn(Written) + Send + Sync>;

/// The follower, once set, shared by the handles and the writer thread.
type Following = Arc<OnceLock<Follower>>;

/// Hands an event just written to the follower, if there is one.
fn tell(
    following: &Following,
    at: Timestamp,
    kind: EventKind,
    package: Option<&(Sha256, String)>,
    detail: &serde_json::Value,
) {
    if let Some(follower) = following.get() {
        follower(Written {
            at,
            kind,
            package: package.cloned(),
            detail: detail.clone(),
        });
    }
}

/// The journal database.
pub(crate) struct Journal {
    /// The connection reads use (the writer thread opens it again with its own: [`Writer`]).
    reader: Arc<Mutex<Connection>>,
    /// The writer thread's queue; `None` once dropped.
    writer: Option<mpsc::Sender<Job>>,
    /// The writer thread, joined when the journal is dropped.
    thread: Option<JoinHandle<()>>,
    /// Posted events not yet written.
    queued: Arc<AtomicUsize>,
    /// Posted events lost because too many were queued.
    lost: Arc<AtomicU64>,
    /// Told of every event written.
    following: Following,
    /// The file this process opened for writing, and where.
    place: Option<Place>,
}

/// Where the journal's file is, and which file (device and inode) was opened there.
#[derive(Clone)]
struct Place {
    path: PathBuf,
    id: (u64, u64),
}

/// The writer thread's connection, and what it takes to keep what it writes where a start
/// reads it.
struct Writer {
    /// The connection every write goes through.
    conn: Connection,
    /// The connection reads use: the two are opened again together.
    reader: Arc<Mutex<Connection>>,
    /// The journal's file, as [`Journal::in_place`] knows it; `None` when it could not be
    /// looked at.
    place: Option<Place>,
    /// Whether the journal is in WAL mode (it always is, but on a file system where SQLite
    /// cannot make it so).
    wal_mode: bool,
    /// The `-wal` file the connections opened beside the journal (device and inode), once
    /// seen.
    wal: Option<(u64, u64)>,
}

impl Writer {
    fn new(conn: Connection, reader: Arc<Mutex<Connection>>, place: Option<Place>) -> Result<Self> {
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let mut writer = Self {
            conn,
            reader,
            place,
            wal_mode: mode.eq_ignore_ascii_case("wal"),
            wal: None,
        };
        writer.wal = writer.wal_at_path().flatten();
        Ok(writer)
    }

    /// The `-wal` file at the journal's path now: `Some(None)` when there is none, `None`
    /// when it cannot be told (no place, or a path that cannot be looked at).
    fn wal_at_path(&self) -> Option<Option<(u64, u64)>> {
        let mut wal = self.place.as_ref()?.path.as_os_str().to_owned();
        wal.push("-wal");
        match std::fs::metadata(&wal) {
            Ok(m) => Some(Some((m.dev(), m.ino()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(None),
            Err(_) => None,
        }
    }

    /// Keeps what was just written where a start reads it. In WAL mode SQLite writes every
    /// commit into the `-wal` file beside the journal, and copies it into the journal's file
    /// only now and then (a checkpoint) and when the last connection closes. When that file
    /// was removed (or another put in its place) while the connections hold it open, they go
    /// on writing into a file no longer at that path: a clean stop still copies it, but a
    /// crash loses every row written since. Then its rows are copied into the journal's file
    /// now (`wal_checkpoint(TRUNCATE)`, fsynced), both connections are opened again, which
    /// makes a new `-wal` file at the path, and a `warning` says so. One `stat` when nothing
    /// is wrong. Fails, and opens nothing again, when the copy cannot be made (another
    /// process holds a read open for longer than the journal's wait).
    fn keep_wal(&mut self, following: &Following) -> Result<()> {
        if !self.wal_mode {
            return Ok(());
        }
        let Some(now) = self.wal_at_path() else {
            return Ok(());
        };
        match (self.wal, now) {
            (Some(was), Some(id)) if was == id => return Ok(()),
            (None, Some(id)) => {
                self.wal = Some(id);
                return Ok(());
            }
            // None seen yet: nothing was written into one that could be lost.
            (None, None) => return Ok(()),
            _ => {}
        }
        let Some(place) = self.place.clone() else {
            return Ok(());
        };
        let what = match now {
            Some(_) => "another file was put in its place",
            None => "it was removed",
        };
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        // (busy, frames in the WAL, frames copied): busy when a reader kept it from finishing.
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(JournalError::Wal(format!(
                "{}-wal is not the file this server writes ({what}), and the rows it holds \
                 could not be copied into {}: another process keeps a read open on the \
                 journal (an sqlite3 shell left open on it). End that process; until then a \
                 crash would lose them",
                place.path.display(),
                place.path.display()
            )));
        }
        let in_place = std::fs::metadata(&place.path).is_ok_and(|m| (m.dev(), m.ino()) == place.id);
        if !in_place {
            // The journal's own file is gone from its path: opening it again would open
            // another one. Its rows are in the file opened; [`Journal::in_place`] says the rest.
            return Ok(());
        }
        // Opened before the old ones close: a failure leaves those, which still write.
        let (conn, read) = (connect(&place.path)?, connect(&place.path)?);
        drop(std::mem::replace(&mut *reader, read));
        drop(reader);
        drop(std::mem::replace(&mut self.conn, conn));
        self.wal = self.wal_at_path().flatten();
        let warning = format!(
            "{}-wal, where the journal keeps its latest rows until SQLite copies them into {}, \
             is not the file this server opened: {what} while the server ran. Its rows were \
             copied into the journal now and a new -wal file made, so nothing is lost. While \
             the server runs the -wal and -shm files beside the journal are part of it: leave \
             them alone (a backup copies all three, or uses sqlite3's .backup)",
            place.path.display(),
            place.path.display()
        );
        tracing::warn!("{warning}");
        let (at, detail) = (
            Timestamp::now(),
            serde_json::json!({ "warning": warning, "check": "journal-wal" }),
        );
        insert_event(&self.conn, at, EventKind::Warning, None, &detail)?;
        tell(following, at, EventKind::Warning, None, &detail);
        Ok(())
    }
}

/// Work for the writer thread.
enum Job {
    /// An event posted by a caller that does not wait.
    Event(Posted),
    /// Work whose caller waits for its result.
    Work(Box<dyn FnOnce(&mut Writer) + Send>),
}

/// An event posted, with the time it was posted.
struct Posted {
    at: Timestamp,
    kind: EventKind,
    package: Option<(Sha256, String)>,
    detail: serde_json::Value,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    package TEXT,
    name TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS packages (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    first_received TEXT NOT NULL,
    outcome TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS publications (
    seq INTEGER PRIMARY KEY,
    corte_id TEXT NOT NULL,
    corte_time TEXT NOT NULL,
    corte_source TEXT NOT NULL,
    kind TEXT NOT NULL,
    package TEXT NOT NULL,
    name TEXT NOT NULL,
    build TEXT NOT NULL,
    base INTEGER,
    received_at TEXT NOT NULL,
    live_at TEXT NOT NULL,
    lag_ms INTEGER NOT NULL
);
";

impl Journal {
    /// Opens or creates the journal at `path`, and starts its writer thread.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let conn = connect(path)?;
        check_whole(&conn)?;
        conn.execute_batch(SCHEMA)?;
        let has_attempts: bool = conn.query_row(
            "SELECT count(*) FROM pragma_table_info('packages') WHERE name = 'attempts'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !has_attempts {
            conn.execute_batch(
                "ALTER TABLE packages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        let reader = Arc::new(Mutex::new(connect(path)?));
        let place = std::fs::metadata(path).ok().map(|m| Place {
            path: path.to_owned(),
            id: (m.dev(), m.ino()),
        });
        let writer = Writer::new(conn, reader.clone(), place.clone())?;
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let lost = Arc::new(AtomicU64::new(0));
        let following = Following::default();
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn({
                let (queued, lost, following) = (queued.clone(), lost.clone(), following.clone());
                move || write_loop(writer, &rx, &queued, &lost, &following)
            })
            .map_err(|e| {
                tracing::error!(error = %e, "cannot start the journal's writer thread");
                JournalError::Stopped
            })?;
        Ok(Self {
            reader,
            writer: Some(tx),
            thread: Some(thread),
            queued,
            lost,
            following,
            place,
        })
    }

    /// Opens the journal at `path` for reading only (a report, on a stopped server's folder or
    /// a copy of it): nothing is created or written, and every write fails with
    /// [`JournalError::Stopped`]. A damaged journal is refused as [`Journal::open`] refuses it
    /// ([`JournalError::Damaged`]): else a read that reaches a damaged page fails with no more
    /// than "database disk image is malformed", and a read that does not reach it gives a
    /// report that looks whole.
    ///
    /// SQLite creates a WAL database's `-wal` and `-shm` files beside it when a read-only
    /// connection finds them missing, as they are after a clean stop. Then no server writes
    /// the journal, so it is opened immutable, which creates nothing; with a `-wal` file (a
    /// server running, or one that crashed) it is read through the WAL as the server left it.
    pub(crate) fn open_read_only(path: &Path) -> Result<Self> {
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let immutable = path
            .to_str()
            .filter(|_| !Path::new(&wal).exists())
            .map(|p| {
                const URI_PATH: &percent_encoding::AsciiSet =
                    &percent_encoding::CONTROLS.add(b'%').add(b'?').add(b'#');
                format!(
                    "file:{}?immutable=1",
                    percent_encoding::utf8_percent_encode(p, URI_PATH)
                )
            });
        let conn = match immutable {
            Some(uri) => {
                Connection::open_with_flags(uri, flags | rusqlite::OpenFlags::SQLITE_OPEN_URI)?
            }
            None => Connection::open_with_flags(path, flags)?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        check_whole(&conn)?;
        Ok(Self {
            reader: Arc::new(Mutex::new(conn)),
            writer: None,
            thread: None,
            queued: Arc::new(AtomicUsize::new(0)),
            lost: Arc::new(AtomicU64::new(0)),
            following: Following::default(),
            place: None,
        })
    }

    /// Proves that the writer can write: takes the write lock, waiting as long as every write
    /// does, and writes a change that it rolls back. A journal locked by another process, or
    /// one this process may only read, fails here, before anything depends on it.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Dropped, the transaction is rolled back: nothing stays.
            Ok(tx.execute_batch("CREATE TABLE writable (x)")?)
        })
    }

    /// Sets the follower told of every event written from now on; a journal has at most
    /// one: whether this one was set.
    pub(crate) fn follow(&self, follower: Follower) -> bool {
        self.following.set(follower).is_ok()
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (it has its own
        // transactions), so a poisoned lock is safe to reuse.
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails when the journal's file is no longer at its path (removed, moved away) or
    /// another file is there (a copy restored over it): what this process writes would go
    /// to a file the next start does not read. One `stat`; a path that cannot be looked at
    /// is left for SQLite to say.
    fn in_place(&self) -> Result<()> {
        let Some(place) = &self.place else {
            return Ok(());
        };
        let what = match std::fs::metadata(&place.path) {
            Ok(m) if (m.dev(), m.ino()) == place.id => return Ok(()),
            Ok(_) => "another file is in its place (a copy restored over it)",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                "it is no longer there (removed, or moved away)"
            }
            Err(_) => return Ok(()),
        };
        Err(JournalError::Moved(format!(
            "{} is not the file this server opened: {what}. Nothing is taken while it is not, \
             since a start reads the file at that path: put the file this server opened back \
             there (mv) and packages are taken again at once; a restart reads whatever is \
             there",
            place.path.display()
        )))
    }

    fn send(&self, job: Job) -> Result<()> {
        self.writer
            .as_ref()
            .and_then(|w| w.send(job).ok())
            .ok_or(JournalError::Stopped)
    }

    /// Runs `work` on the writer thread and waits for its result, blocking this thread.
    fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.in_place()?;
        let following = self.following.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Work(Box::new(move |w: &mut Writer| {
            let written = work(&mut w.conn).and_then(|t| w.keep_wal(&following).map(|()| t));
            let _ = tx.send(written);
        })))?;
        rx.recv().map_err(|_| JournalError::Stopped)?
    }

    /// Records an event now, and returns once it is written (fsynced). Blocks this thread:
    /// async code uses [`Journal::record_async`] or [`Journal::post`].
    pub(crate) fn record(
        &self,
        kind: EventKind,
        package: Option<(Sha256, &str)>,
        detail: serde_json::Value,
    ) -> Result<()> {
        let (at, package) = (Timestamp::now(), owned(package));
        let following = self.following.clone();
        self.write(move |conn| {
            insert_event(conn, at, kind, package.as_ref(), &detail)?;
            tell(&following, at, kind, package.as_ref(), &detail);
            Ok(())
        })
    }

    /// Records an event now, and returns once it is written (fsynced), without blocking the
    /// async thread that waits.
    pub(crate) async fn record_async(
        &self,
        kind: EventKind,
        package: Option<(Sha256, &str)>,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.in_place()?;
        let (at, package) = (Timestamp::now(), owned(package));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let following = self.following.clone();
        self.send(Job::Work(Box::new(move |w: &mut Writer| {
            let written = insert_event(&w.conn, at, kind, package.as_ref(), &detail);
            if written.is_ok() {
                tell(&following, at, kind, package.as_ref(), &detail);
            }
            let _ = tx.send(written.and_then(|()| w.keep_wal(&following)));
        })))?;
        rx.await.map_err(|_| JournalError::Stopped)?
    }

    /// Hands an event to the writer and goes on at once; it is written with the others
    /// queued. Errors are logged: nothing waits for them.
    pub(crate) fn post(
        &self,
        kind: EventKind,
        package: Option<(Sha256, &str)>,
        detail: serde_json::Value,
    ) {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED_EVENTS {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let posted = Posted {
            at: Timestamp::now(),
            kind,
            package: owned(package),
            detail,
        };
        if self.send(Job::Event(posted)).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(
                kind = kind.as_str(),
                "the journal's writer has stopped; event lost"
            );
        }
    }

    /// Records a package's arrival, and returns its previous outcome if it came before. The
    /// package is noted once, at its first arrival; a later arrival that is taken again (any
    /// but a package published or archived as older, whose arrivals are duplicates) renames
    /// it: the journal names a package after the delivery being taken, so that a package
    /// rejected under a mistaken name and sent again under the right one is known, taken
    /// again after a stop, and listed to replicas under the right one.
    pub(crate) fn note_package(
        &self,
        sha256: Sha256,
        name: &str,
        size: u64,
        at: Timestamp,
    ) -> Result<Option<PackageState>> {
        let name = name.to_owned();
        self.write(move |conn| {
            let previous: Option<PackageState> = conn
                .query_row(
                    "SELECT outcome FROM packages WHERE sha256 = ?1",
                    [sha256.to_hex()],
                    |r| r.get(0),
                )
                .optional()?;
            match previous {
                None => {
                    conn.execute(
                        "INSERT INTO packages (sha256, name, size, first_received, outcome)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            sha256.to_hex(),
                            name,
                            size as i64,
                            at.to_string(),
                            PackageState::Received
                        ],
                    )?;
                }
                Some(PackageState::Published | PackageState::Older) => {}
                Some(_) => {
                    conn.execute(
                        "UPDATE packages SET name = ?2 WHERE sha256 = ?1",
                        params![sha256.to_hex(), name],
                    )?;
                }
            }
            Ok(previous)
        })
    }

    /// Marks a package as being processed and returns how many times in a row its processing
    /// has begun, this time included: more than one means earlier attempts were interrupted.
    /// `interrupted: false` says that a `processing` left from the last attempt was no
    /// interruption (that attempt failed and its outcome could not be written): the count
    /// starts over.
    pub(crate) fn begin_processing(&self, sha256: Sha256, interrupted: bool) -> Result<u32> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE packages SET
                 attempts = CASE WHEN outcome = 'processing' AND ?2 THEN attempts + 1 ELSE 1 END,
                 outcome = 'processing'
             WHERE sha256 = ?1",
                params![sha256.to_hex(), interrupted],
            )?;
            let attempts: i64 = conn
                .query_row(
                    "SELECT attempts FROM packages WHERE sha256 = ?1",
                    [sha256.to_hex()],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(1);
            Ok(u32::try_from(attempts).unwrap_or(u32::MAX))
        })
    }

    /// A package's file name (that of the delivery taken last), first arrival and last outcome,
    /// if it was ever received.
    pub(crate) fn package(
        &self,
        sha256: Sha256,
    ) -> Result<Option<(String, Timestamp, PackageState)>> {
        let row: Option<(String, String, PackageState)> = self
            .conn()
            .query_row(
                "SELECT name, first_received, outcome FROM packages WHERE sha256 = ?1",
                [sha256.to_hex()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(row.map(|(name, at, outcome)| {
            (name, at.parse().unwrap_or(Timestamp::UNIX_EPOCH), outcome)
        }))
    }

    /// Renames each published package the journal names otherwise than its last
    /// publication: an earlier version kept the name of a package's first arrival, so a
    /// package rejected under a mistaken name and published under the right one was listed
    /// to replicas under the mistaken one. Returns each renamed package with its old and new
    /// names.
    pub(crate) fn name_published_as_published(&self) -> Result<Vec<(Sha256, String, String)>> {
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let renamed = {
                let mut stmt = tx.prepare(
                    "SELECT sha256, name, published FROM (
                         SELECT p.sha256, p.name, (SELECT u.name FROM publications u
                             WHERE u.package = p.sha256 AND u.build != 'rollback'
                             ORDER BY u.seq DESC LIMIT 1) AS published
                         FROM packages p WHERE p.outcome = 'published')
                     WHERE published IS NOT NULL AND published != name",
                )?;
                let rows = stmt.query_map([], |r| {
                    let sha: String = r.get(0)?;
                    Ok((sha.parse().map_err(bad_column(0))?, r.get(1)?, r.get(2)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<(Sha256, String, String)>>>()?
            };
            for (sha, _, name) in &renamed {
                tx.execute(
                    "UPDATE packages SET name = ?2 WHERE sha256 = ?1",
                    params![sha.to_hex(), name],
                )?;
            }
            tx.commit()?;
            Ok(renamed)
        })
    }

    /// Which evidence the package `sha256` was last verified with, as its latest `verified`
    /// event says (`{"sidecar": "absent" | {"verified": …}, …}`), and when; `None` when the
    /// journal holds no verification of it.
    pub(crate) fn verified_evidence(
        &self,
        sha256: Sha256,
    ) -> Result<Option<(String, serde_json::Value)>> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT at, detail FROM events WHERE kind = 'verified' AND package = ?1
                 ORDER BY id DESC LIMIT 1",
                [sha256.to_hex()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(at, detail)| {
            let detail: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
            (at, detail["evidence"].clone())
        }))
    }

    /// The packages this node took (published, older or held), in the order they first
    /// arrived.
    pub(crate) fn taken(&self) -> Result<Vec<Taken>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT sha256, name, size, first_received FROM packages
             WHERE outcome IN ('published', 'older', 'held') ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            let sha: String = r.get(0)?;
            let at: String = r.get(3)?;
            Ok(Taken {
                sha256: sha.parse().map_err(bad_column(0))?,
                name: r.get(1)?,
                size: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                first_received: at.parse().map_err(bad_column(3))?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The latest delivery by `channel` (as its `received` events name it: `watch`, `sftp`)
    /// under each of at most `names` names whose package was taken, newest first: under
    /// each name, the one a channel that never stopped would remember.
    ///
    /// A delivery's outcome is the first of `published`, `duplicate`, `older`, `held`,
    /// `rejected` or `set-aside` journaled for its package after it arrived (the publisher
    /// takes one package at a time); the first four took it. A delivery refused, or that
    /// this machine failed to take (no outcome before the package's next arrival), is not
    /// one; nor does it hide an earlier delivery under its name that was taken. One whose
    /// processing a stop interrupted is taken when the start took it again from the
    /// archive. Only the last [`MAX_ARRIVAL_LOOKBACK`] events are read; a row that cannot be
    /// read as written (a digest, a time) is passed over.
    pub(crate) fn taken_arrivals(&self, channel: &str, names: usize) -> Result<Vec<TakenArrival>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT kind, package, name, at, detail FROM events
             WHERE id > (SELECT coalesce(max(id), 0) FROM events) - ?1
               AND package IS NOT NULL
               AND kind IN ('received', 'published', 'duplicate', 'older', 'held', 'rejected',
                            'set-aside')
             ORDER BY id DESC",
        )?;
        let mut rows = stmt.query([MAX_ARRIVAL_LOOKBACK])?;
        // Going back in time: the outcome met last for each package is the one that followed
        // its latest arrival not yet met, with when it was journaled if it took the package.
        let mut outcomes: HashMap<String, Option<String>> = HashMap::new();
        let mut found: Vec<TakenArrival> = Vec::new();
        let mut named = HashSet::new();
        while found.len() < names
            && let Some(row) = rows.next()?
        {
            let (kind, package): (String, String) = (row.get(0)?, row.get(1)?);
            let at: String = row.get(3)?;
            if kind != "received" {
                let took = !matches!(kind.as_str(), "rejected" | "set-aside");
                outcomes.insert(package, took.then_some(at));
                continue;
            }
            let Some(Some(at)) = outcomes.remove(&package) else {
                continue;
            };
            let (name, detail): (Option<String>, String) = (row.get(2)?, row.get(4)?);
            let by_channel = serde_json::from_str::<serde_json::Value>(&detail)
                .is_ok_and(|d| d["channel"].as_str() == Some(channel));
            let arrival = name.filter(|_| by_channel).and_then(|name| {
                Some(TakenArrival {
                    sha256: package.parse().ok()?,
                    at: at.parse().ok()?,
                    name,
                })
            });
            if let Some(arrival) = arrival
                && named.insert(arrival.name.clone())
            {
                found.push(arrival);
            }
        }
        Ok(found)
    }

    /// The publication an operator's last rollback made, as its sequence number and corte
    /// id: the site of an earlier corte published again, or a package that had not been
    /// published (older, held, set aside) published then.
    pub(crate) fn last_rollback(&self) -> Result<Option<(i64, String)>> {
        let conn = self.conn();
        let last: Option<(Option<String>, String)> = conn
            .query_row(
                "SELECT package, detail FROM events WHERE kind = 'rollback'
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((package, detail)) = last else {
            return Ok(None);
        };
        let detail: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
        let Some(corte) = detail["corte"].as_str() else {
            return Ok(None);
        };
        // A rollback to a published corte is a publication of its own, named in the event;
        // an unpublished package is published as any other, just before its event.
        let seq = match detail["seq"].as_i64() {
            Some(seq) => Some(seq),
            None => conn.query_row(
                "SELECT max(seq) FROM publications WHERE package = ?1",
                [package],
                |r| r.get(0),
            )?,
        };
        Ok(seq.map(|seq| (seq, corte.to_owned())))
    }

    /// The packages whose processing began and never ended: a crash interrupted them.
    pub(crate) fn interrupted(&self) -> Result<Vec<Sha256>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT sha256 FROM packages WHERE outcome = 'processing' ORDER BY first_received",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows
            .filter_map(|r| r.ok().and_then(|s| s.parse().ok()))
            .collect())
    }

    /// Every package the journal knows, whatever became of it: its SHA-256, name and last
    /// outcome (`None` for one this version does not know, written by a newer one).
    pub(crate) fn known_packages(&self) -> Result<HashMap<Sha256, (String, Option<PackageState>)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT sha256, name, outcome FROM packages")?;
        let rows = stmt.query_map([], |r| <(String, String, String)>::try_from(r))?;
        Ok(rows
            .filter_map(|r| {
                let (sha, name, outcome) = r.ok()?;
                let outcome = PackageState::ALL
                    .into_iter()
                    .find(|s| s.as_str() == outcome);
                Some((sha.parse().ok()?, (name, outcome)))
            })
            .collect())
    }

    /// Notes verified packages found in the archive that the journal did not know, or knew
    /// only as [`PackageState::Received`] (never verified), each as
    /// [`PackageState::Unjournaled`] under its name (empty when unknown), size and when it
    /// was archived, with one `warning` event whose detail is `warning`: all in one fsynced
    /// transaction. A package the journal knows meanwhile under any other outcome is left as
    /// it is; one it knew as received keeps its name and first arrival.
    pub(crate) fn note_unjournaled(
        &self,
        found: Vec<Unjournaled>,
        warning: serde_json::Value,
    ) -> Result<()> {
        let following = self.following.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            for p in &found {
                tx.execute(
                    "INSERT INTO packages (sha256, name, size, first_received, outcome)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (sha256) DO UPDATE SET outcome = excluded.outcome
                     WHERE packages.outcome = 'received'",
                    params![
                        p.sha256.to_hex(),
                        p.name,
                        i64::try_from(p.size).unwrap_or(i64::MAX),
                        p.archived_at.to_string(),
                        PackageState::Unjournaled
                    ],
                )?;
            }
            let at = Timestamp::now();
            insert_event(&tx, at, EventKind::Warning, None, &warning)?;
            tx.commit()?;
            tell(&following, at, EventKind::Warning, None, &warning);
            Ok(())
        })
    }

    /// The packages held or set aside now, waiting for an operator, oldest first.
    pub(crate) fn waiting(&self) -> Result<Vec<Waiting>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT p.sha256, p.name, p.outcome, e.at, e.detail FROM packages p
             JOIN events e ON e.id = (SELECT max(id) FROM events
                                      WHERE package = p.sha256 AND kind = p.outcome)
             WHERE p.outcome IN ('held', 'set-aside') ORDER BY e.id",
        )?;
        let rows = stmt.query_map([], |r| {
            let at: String = r.get(3)?;
            let detail: String = r.get(4)?;
            let detail: serde_json::Value =
                serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null);
            Ok(Waiting {
                sha256: r.get(0)?,
                name: r.get(1)?,
                outcome: r.get(2)?,
                at: at.parse().map_err(bad_column(3))?,
                corte: detail["corte"].as_str().map(str::to_owned),
                reason: detail["reason"].as_str().unwrap_or_default().to_owned(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Sets a package's outcome (`published`, `older`, `held`, `rejected`, `set-aside`,
    /// `failed`).
    pub(crate) fn set_outcome(&self, sha256: Sha256, outcome: PackageState) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE packages SET outcome = ?2 WHERE sha256 = ?1",
                params![sha256.to_hex(), outcome],
            )?;
            Ok(())
        })
    }

    /// Records a corte going live with its `published` event, in one fsynced transaction,
    /// and returns its sequence number.
    pub(crate) fn record_publication(&self, p: &Publication) -> Result<i64> {
        let p = p.clone();
        let following = self.following.clone();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO publications (corte_id, corte_time, corte_source, kind, package, name,
                 build, base, received_at, live_at, lag_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    p.corte_id,
                    p.corte_time,
                    p.corte_source,
                    p.kind,
                    p.package.to_hex(),
                    p.name,
                    p.build.as_str(),
                    p.base,
                    p.received_at.to_string(),
                    p.live_at.to_string(),
                    p.lag_ms,
                ],
            )?;
            let seq = tx.last_insert_rowid();
            let kind = if p.build == Build::Rollback {
                EventKind::Rollback
            } else {
                EventKind::Published
            };
            let detail = serde_json::json!({
                "seq": seq, "corte": p.corte_id, "corte_time": p.corte_time,
                "corte_source": p.corte_source, "build": p.build, "base": p.base,
                "lag_seconds": p.lag_ms as f64 / 1000.0,
            });
            let package = Some((p.package, p.name.clone()));
            let at = Timestamp::now();
            insert_event(&tx, at, kind, package.as_ref(), &detail)?;
            if p.build != Build::Rollback {
                tx.execute(
                    "UPDATE packages SET outcome = 'published', name = ?2 WHERE sha256 = ?1",
                    params![p.package.to_hex(), p.name],
                )?;
            }
            tx.commit()?;
            tell(&following, at, kind, package.as_ref(), &detail);
            Ok(seq)
        })
    }

    /// Every publication, oldest first.
    pub(crate) fn publications(&self) -> Result<Vec<Publication>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, corte_id, corte_time, corte_source, kind, package, name, build, base,
                    received_at, live_at, lag_ms FROM publications ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            let package: String = r.get(5)?;
            let received: String = r.get(9)?;
            let live: String = r.get(10)?;
            Ok(Publication {
                seq: r.get(0)?,
                corte_id: r.get(1)?,
                corte_time: r.get(2)?,
                corte_source: r.get(3)?,
                kind: r.get(4)?,
                package: package.parse().map_err(bad_column(5))?,
                name: r.get(6)?,
                build: Build::parse(&r.get::<_, String>(7)?),
                base: r.get(8)?,
                received_at: received.parse().map_err(bad_column(9))?,
                live_at: live.parse().map_err(bad_column(10))?,
                lag_ms: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The newest package archived without being published (older than the live corte,
    /// held, or set aside) and not published since, whose corte id is `wanted`, or whose
    /// SHA-256 starts with `wanted` (at least 8 digits).
    pub(crate) fn unpublished_package(&self, wanted: &str) -> Result<Option<(Sha256, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT e.package, e.name, e.detail FROM events e
             JOIN packages p ON p.sha256 = e.package
             WHERE e.kind IN ('older', 'held', 'set-aside') AND p.outcome = e.kind
             ORDER BY e.id DESC",
        )?;
        let rows = stmt.query_map([], |r| <(String, String, String)>::try_from(r))?;
        let wanted_lower = wanted.to_ascii_lowercase();
        for row in rows {
            let (package, name, detail) = row?;
            let corte = serde_json::from_str::<serde_json::Value>(&detail)
                .ok()
                .and_then(|d| d["corte"].as_str().map(str::to_owned));
            let matches = corte.as_deref() == Some(wanted)
                || (wanted.len() >= 8 && package.starts_with(&wanted_lower));
            if matches && let Ok(sha) = package.parse() {
                return Ok(Some((sha, name)));
            }
        }
        Ok(None)
    }

    /// The packages journaled as [`PackageState::Unjournaled`] and not decided since (a start
    /// found them verified in the archive and unknown here), each with its name (empty when
    /// unknown), oldest first.
    pub(crate) fn unjournaled_packages(&self) -> Result<Vec<(Sha256, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT sha256, name FROM packages WHERE outcome = 'unjournaled'
             ORDER BY first_received, sha256",
        )?;
        let rows = stmt.query_map([], |r| <(String, String)>::try_from(r))?;
        let mut found = Vec::new();
        for row in rows {
            let (sha, name) = row?;
            if let Ok(sha) = sha.parse() {
                found.push((sha, name));
            }
        }
        Ok(found)
    }

    /// The newest `limit` events, newest first.
    pub(crate) fn events(&self, limit: usize) -> Result<Vec<Event>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, at, kind, package, name, detail FROM events ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], event_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Every event from `from` (included) to `to` (excluded), oldest first.
    pub(crate) fn events_between(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Event>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, at, kind, package, name, detail FROM events ORDER BY id")?;
        let rows = stmt.query_map([], event_row)?;
        let mut events = Vec::new();
        for event in rows {
            let event = event?;
            if event.at >= from && event.at < to {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// The notice in force: the text of the last `notice-on`, unless a `notice-off` came after.
    pub(crate) fn current_notice(&self) -> Result<Option<String>> {
        let conn = self.conn();
        let last: Option<(String, String)> = conn
            .query_row(
                "SELECT kind, detail FROM events WHERE kind IN ('notice-on', 'notice-off')
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(last.and_then(|(kind, detail)| {
            (kind == "notice-on")
                .then(|| serde_json::from_str::<serde_json::Value>(&detail).ok())
                .flatten()
                .and_then(|d| d["text"].as_str().map(str::to_owned))
        }))
    }

    /// Received, rejected and published counts.
    pub(crate) fn counts(&self) -> Result<Counts> {
        let conn = self.conn();
        let count = |kind: &str| -> Result<i64> {
            Ok(
                conn.query_row("SELECT count(*) FROM events WHERE kind = ?1", [kind], |r| {
                    r.get(0)
                })?,
            )
        };
        Ok(Counts {
            received: count("received")?,
            rejected: count("rejected")?,
            published: count("published")? + count("rollback")?,
            held: conn.query_row(
                "SELECT count(*) FROM packages WHERE outcome = 'held'",
                [],
                |r| r.get(0),
            )?,
            set_aside: conn.query_row(
                "SELECT count(*) FROM packages WHERE outcome = 'set-aside'",
                [],
                |r| r.get(0),
            )?,
            unjournaled: conn.query_row(
                "SELECT count(*) FROM packages WHERE outcome = 'unjournaled'",
                [],
                |r| r.get(0),
            )?,
            inconsistent: conn.query_row(
                "SELECT count(DISTINCT package) FROM events
                 WHERE kind = 'warning' AND json_extract(detail, '$.check') = 'summary'",
                [],
                |r| r.get(0),
            )?,
        })
    }
}

impl Drop for Journal {
    /// Writes what is queued before the journal goes.
    fn drop(&mut self) {
        self.writer = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One row of `events`.
fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let at: String = r.get(1)?;
    let detail: String = r.get(5)?;
    Ok(Event {
        id: r.get(0)?,
        at: at.parse().map_err(bad_column(1))?,
        kind: r.get(2)?,
        package: r.get(3)?,
        name: r.get(4)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    })
}

/// Fails when the journal is damaged (a page overwritten, or missing from a file cut short),
/// naming what SQLite's check found: else SQLite finds it only when a read or a write reaches
/// that page, long after the start or midway through a report, and a table it cannot read
/// looks empty to some reads. Run by every open, to write ([`Journal::open`]) or to read
/// ([`Journal::open_read_only`]).
/// `PRAGMA quick_check` reads every page once: about 50 ms for a journal of 10,000 packages
/// (21 MB: 50,000 events, 10,000 publications), its pages in the page cache.
fn check_whole(conn: &Connection) -> Result<()> {
    let mut check = conn.prepare(&format!("PRAGMA quick_check({MAX_DAMAGE_NAMED})"))?;
    let found = check
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if found == ["ok"] {
        return Ok(());
    }
    Err(JournalError::Damaged(found.join("\n").replace('\n', "; ")))
}

/// A connection to the journal at `path`: WAL, every commit fsynced.
fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn owned(package: Option<(Sha256, &str)>) -> Option<(Sha256, String)> {
    package.map(|(sha, name)| (sha, name.to_owned()))
}

/// The writer thread: work in the order it came, posted events in batches of one
/// transaction each, until every [`Journal`] handle is gone.
fn write_loop(
    mut w: Writer,
    jobs: &mpsc::Receiver<Job>,
    queued: &AtomicUsize,
    lost: &AtomicU64,
    following: &Following,
) {
    let mut reported_lost = 0;
    let mut next = None;
    while let Some(job) = next.take().or_else(|| jobs.recv().ok()) {
        match job {
            Job::Work(work) => work(&mut w),
            Job::Event(first) => {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(Job::Event(e)) => batch.push(e),
                        Ok(work) => {
                            next = Some(work);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                queued.fetch_sub(batch.len(), Ordering::Relaxed);
                match insert_batch(&mut w.conn, &batch) {
                    Ok(()) => {
                        for e in &batch {
                            tell(following, e.at, e.kind, e.package.as_ref(), &e.detail);
                        }
                        if let Err(e) = w.keep_wal(following) {
                            tracing::error!(error = %e, "the journal's latest rows are at risk");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, events = batch.len(), "cannot write events to the journal");
                    }
                }
            }
        }
        let now_lost = lost.load(Ordering::Relaxed);
        if now_lost > reported_lost {
            let warning = format!(
                "{} journal events lost: more than {MAX_QUEUED_EVENTS} waited to be written",
                now_lost - reported_lost
            );
            tracing::error!("{warning}");
            let (at, detail) = (Timestamp::now(), serde_json::json!({ "warning": warning }));
            if insert_event(&w.conn, at, EventKind::Warning, None, &detail).is_ok() {
                tell(following, at, EventKind::Warning, None, &detail);
            }
            reported_lost = now_lost;
        }
    }
}

/// Writes posted events in one transaction.
fn insert_batch(conn: &mut Connection, batch: &[Posted]) -> Result<()> {
    let tx = conn.transaction()?;
    for e in batch {
        insert_event(&tx, e.at, e.kind, e.package.as_ref(), &e.detail)?;
    }
    Ok(tx.commit()?)
}

fn insert_event(
    conn: &Connection,
    at: Timestamp,
    kind: EventKind,
    package: Option<&(Sha256, String)>,
    detail: &serde_json::Value,
) -> Result<()> {
    conn.execute(
        "INSERT INTO events (at, kind, package, name, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            at.to_string(),
            kind.as_str(),
            package.map(|(sha, _)| sha.to_hex()),
            package.map(|(_, name)| name),
            detail.to_string(),
        ],
    )?;
    Ok(())
}

fn bad_column<E: std::error::Error + Send + Sync + 'static>(
    col: usize,
) -> impl FnOnce(E) -> rusqlite::Error {
    move |e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(seq_base: Option<i64>, build: Build) -> Publication {
        Publication {
            seq: 0,
            corte_id: "20240602_2015".into(),
            corte_time: "2024-06-02T20:15:00-06:00[America/Mexico_City]".into(),
            corte_source: CorteSource::Name,
            kind: PackageKind::Site,
            package: Sha256::of(b"p"),
            name: "20240602_2015_PREP.zip".into(),
            build,
            base: seq_base,
            received_at: Timestamp::now(),
            live_at: Timestamp::now(),
            lag_ms: 1500,
        }
    }

    #[test]
    fn publications_round_trip_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let sha = Sha256::of(b"p");
        assert_eq!(
            j.note_package(sha, "p.zip", 1, Timestamp::now()).unwrap(),
            None
        );
        let a = j
            .record_publication(&publication(None, Build::Replace))
            .unwrap();
        let b = j
            .record_publication(&publication(Some(a), Build::Overlay))
            .unwrap();
        assert!(b > a);
        let all = j.publications().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].base, Some(a));
        assert_eq!(all[1].build, Build::Overlay);
        assert_eq!(
            j.note_package(sha, "p.zip", 1, Timestamp::now()).unwrap(),
            Some(PackageState::Published)
        );
        assert_eq!(j.counts().unwrap().published, 2);
        assert_eq!(j.events(10).unwrap()[0].kind, "published");
    }

    #[test]
    fn processing_counts_attempts_in_a_row_and_a_held_package_waits() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let sha = Sha256::of(b"q");
        j.note_package(sha, "20240602_2100_PREP.zip", 1, Timestamp::now())
            .unwrap();
        assert_eq!(j.begin_processing(sha, true).unwrap(), 1);
        assert_eq!(j.interrupted().unwrap(), [sha]);
        assert_eq!(j.begin_processing(sha, true).unwrap(), 2);
        assert_eq!(
            j.begin_processing(sha, false).unwrap(),
            1,
            "a failure whose outcome was not written is no interruption"
        );
        j.set_outcome(sha, PackageState::Rejected).unwrap();
        assert!(j.interrupted().unwrap().is_empty());
        assert_eq!(
            j.begin_processing(sha, true).unwrap(),
            1,
            "a new run starts over"
        );
        j.record(
            EventKind::Held,
            Some((sha, "20240602_2100_PREP.zip")),
            serde_json::json!({"corte": "20240602_2100", "reason": "ahead of the clock"}),
        )
        .unwrap();
        j.set_outcome(sha, PackageState::Held).unwrap();
        let waiting = j.waiting().unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].corte.as_deref(), Some("20240602_2100"));
        assert_eq!(waiting[0].reason, "ahead of the clock");
        assert_eq!(j.counts().unwrap().held, 1);
        let found = j.unpublished_package("20240602_2100").unwrap();
        assert_eq!(found.map(|(s, _)| s), Some(sha));
        j.set_outcome(sha, PackageState::Published).unwrap();
        assert!(j.waiting().unwrap().is_empty());
        assert!(j.unpublished_package("20240602_2100").unwrap().is_none());
    }
}
