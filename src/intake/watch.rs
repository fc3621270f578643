//! Intake from the watched folder (`watch_dir`): packages pushed by OpenSSH, scp or rsync.
//!
//! A file is taken once it is complete:
//! - at once when it was renamed into place (how rsync and careful uploaders finish);
//! - a file written in place, once its writer has closed it (the kernel's close-after-write
//!   notification, inotify's `IN_CLOSE_WRITE`) and then either its `<name>.sha256` sidecar,
//!   holding a digest, is written after it (an uploader that sends the hash last has finished
//!   the package) or it stays unchanged for `settle` (the time such a sidecar has to arrive);
//! - where no open or close can be seen (files already there at start, events lost when the
//!   kernel's queue overflowed, network file systems written from another machine), once its
//!   size and modification time have not changed for `settle`, or its sidecar came after it.
//!
//! A file that the events show open, by any process, is never taken, however long its writer
//! pauses: opens and closes are counted from inotify's `IN_OPEN` and `IN_CLOSE_*`, on a
//! watch of their own ([`super::opens`]) that is told of a close after a read as well, so a
//! file read once before it is taken is not counted open for ever.
//!
//! Names starting with `.` are never taken (uploads in progress: rsync's `.name.XXXXXX`; files
//! set aside), nor evidence files (`<package>.sha256`, `<package>.minisig`), which are read
//! with their package; evidence that comes after its package was taken is looked at alone by
//! the scan ([`super::late`]). When the profile requires a sidecar or signature, a
//! complete package waits for it up to `evidence_wait`, then goes to the publisher without it
//! (and is rejected there). Folders are left alone: nothing in them is taken, and each is
//! journaled once (`rejected`, channel `watch`) while it stays, so a package uploaded as a
//! folder is said.
//!
//! Anything else is refused once it has been unchanged for `settle` (so the tool that made it
//! has finished with it), journaled once (`rejected`, channel `watch`, with the
//! reason) and set aside as `.rechazado.<name>`: a symbolic link (the link itself is moved,
//! its target is never read or copied), a FIFO, socket or device, and a name no channel takes
//! ([`package::check_file_name`], saying why): holding control characters (a newline, a
//! tab…), ending in a dot or a space, too long for its evidence's name to fit in a file name
//! (past [`PackageName::MAX_LEN`] bytes, so never left waiting for a sidecar that cannot be
//! written), or not valid UTF-8. Nothing in the folder is read except
//! through [`super::file::open_regular`], which follows no link and never blocks.
//!
//! inotify reports changes; a rescan every second is the safety net for missed events. At
//! most [`EVENT_QUEUE`] events wait to be looked at: past that they are dropped and the folder
//! is rescanned, as after the kernel's own queue overflowed. The rescan also notices the folder
//! removed (journaled once, `intake-error`) or replaced, and watches the new one; and a folder
//! this server cannot list or look files up in (its permissions changed, say by an
//! `rsync -a dir/` that gives it the mode of the sender's folder; no open file left), from
//! which nothing can be taken: journaled once (`intake-error`) until it can be read again.
//!
//! # Guarantees
//! - A half-written file is never taken by this channel's rules above.
//! - Each file is handed over once. After the publisher has archived it, it and the evidence
//!   read with it leave the folder (the archive holds them; evidence that came with bytes
//!   already taken, a duplicate, is in the journal instead, checked against them: see
//!   [`crate::publisher`]'s `late`), unless another file was put
//!   under its name meanwhile: that one stays and is taken in turn. Evidence written after
//!   it was read is not removed with it, unread. A `.sha256` that gives the digest of the
//!   package taken last under its name, or a `.minisig` that verifies that package with a
//!   configured key, with no package beside it, is journaled (`evidence-late`) and leaves the
//!   folder; any other evidence stays for its package. A file this machine failed to take
//!   (a full or read-only disk, a journal error: the publisher's `failed`) stays as it is,
//!   never set aside, and is retried when it changes (its size, modification or status change
//!   time), after a wait that doubles from two seconds up to a minute, and at the next start;
//!   no event shortens the wait. One this server cannot open is journaled once for each
//!   change of it, not at every try, and `/status` stops saying the intake fails once it is
//!   gone; so is one whose `.sha256` or `.minisig` lies beside it, a regular file, but
//!   cannot be opened: evidence that is there is never taken for absent, and its package is
//!   not taken without it; one refused for its size is renamed to
//!   `.rechazado.<name>` and stays. One decided on that cannot be removed or set aside
//!   afterwards (the folder's owner does not let this server remove files, an immutable file)
//!   stays, journaled once (`intake-error`), and is not taken again until it changes or the
//!   server starts again.
//! - Files found together by one scan (those already there at start, or after the kernel
//!   lost events) are taken in the order of their names, which is their cortes' order, so
//!   an earlier corte is never archived as older than a later one found with it. One removed
//!   (or replaced by what is not a regular file) before its turn comes is skipped, not
//!   taken and no error: the next scan sees to what is there then.
//! - No file is opened through a link, and nothing in the folder can stall the intake or
//!   grow its memory without bound.
//! - A flood of files that can only be refused (their first bytes are no archive's: empty,
//!   text, noise) does not hold back a package: complete files that begin as an archive go
//!   first, and the folder is looked at again after every [`TAKE_AT_ONCE`] files taken, so a
//!   package that arrives meanwhile is taken next. Each of the others is still taken, refused
//!   and journaled in turn.
//! - When the publisher is not running, a complete file stays where it is, and that is
//!   logged and journaled (`intake-error`), never taken for a refusal.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use jiff::Timestamp;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::file::{describe, evidence_path, gone, open_regular, read_evidence};
use super::late::{SignatureCheck, Taken};
use super::opens::{Change, Opens};
use super::{Channel, Received};
use crate::journal::{self, Journal};
use crate::package::{self, PackageName, Policy};
use crate::publisher::{Fault, Outcome, PublisherHandle};

/// How the watched folder decides a file is complete.
#[derive(Debug, Clone)]
pub(crate) struct WatchRules {
    /// The folder.
    pub(crate) dir: PathBuf,
    /// Quiet time for files written in place.
    pub(crate) settle: Duration,
    /// Longest wait for required evidence.
    pub(crate) evidence_wait: Duration,
    /// Whether a `.sha256` sidecar is required.
    pub(crate) sidecar: Policy,
    /// Whether a `.minisig` signature is required.
    pub(crate) signature: Policy,
    /// What a signature that comes after its package is checked with.
    pub(crate) late_signatures: SignatureCheck,
}

/// Prefix of the hidden name a refused file is set aside under.
const ASIDE_PREFIX: &str = ".rechazado.";
/// The first wait before a file this machine failed to take is tried again.
const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The longest wait between tries of a file this machine keeps failing to take.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Most events waiting to be looked at. Past it, further events are dropped and the folder is
/// treated as after the kernel's own queue overflowed (rescanned; `settle` decides), so a
/// process that opens and writes files without pause cannot grow the server's memory.
const EVENT_QUEUE: usize = 4096;
/// Most files handed to the publisher before the folder is looked at again: a package that
/// arrives while thousands of files wait is seen, and goes before those that cannot be
/// published, after at most this many.
const TAKE_AT_ONCE: usize = 16;
/// Most files of the folder counted as open at once; past it every count is forgotten and
/// `settle` decides, as when events are lost.
const MAX_OPEN_FILES: usize = 4096;

/// Which file a path named when it was looked at: a file replaced under the same name, or
/// changed, is another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// A file this machine failed to take, as it was then, and when to try it again.
#[derive(Debug)]
struct Retry {
    /// The file as it was: one changed since (written, or its permissions changed) is tried
    /// again at once.
    id: RetryId,
    after: Instant,
    wait: Duration,
}

impl Retry {
    /// The next try of a file, `id`, that failed again: its wait doubles from the one
    /// `previous` had, from [`RETRY_FIRST`] up to [`RETRY_MAX`].
    fn after(previous: Option<&Self>, id: RetryId) -> Self {
        let wait = previous.map_or(RETRY_FIRST, |r| (r.wait * 2).min(RETRY_MAX));
        Self {
            id,
            after: Instant::now() + wait,
            wait,
        }
    }
}

/// What tells a file that failed from the same file changed since: its size, its
/// modification time and its status change time (a `chmod` that makes it readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RetryId {
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl RetryId {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// What is known of a file not yet taken.
#[derive(Debug)]
struct Candidate {
    len: u64,
    modified: Option<SystemTime>,
    stable_since: Instant,
    first_seen: Instant,
    renamed: bool,
    /// Whether its first bytes are those of an archive (zip, tar, tar.gz), looked at once
    /// it is complete; forgotten when it changes.
    archive: Option<bool>,
}

impl Candidate {
    /// A file seen `now` for the first time.
    fn new(meta: &std::fs::Metadata, renamed: bool, now: Instant) -> Self {
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            stable_since: now,
            first_seen: now,
            renamed,
            archive: None,
        }
    }
}

/// Whether the file at `path` begins as an archive a package may come in does (zip, tar,
/// tar.gz): anything else (empty, text, noise) can only be refused, so it never goes before
/// a file that may be published.
fn looks_like_archive(path: &Path) -> bool {
    open_regular(path).is_ok_and(|file| {
        package::read_magic(file).is_ok_and(|magic| package::Format::sniff(&magic).is_some())
    })
}

/// What an entry of the folder is to this channel.
enum Entry {
    /// A package file: a regular file with a name the publisher takes.
    Package(std::fs::Metadata),
    /// Not for this channel to take: hidden, evidence, or gone.
    Skip,
    /// Evidence (`.sha256`, `.minisig`), a regular file: read with its package, or alone when
    /// it came after its package was taken ([`super::late`]).
    Evidence(std::fs::Metadata),
    /// A folder, not hidden: left alone, and said once.
    Folder(std::fs::Metadata),
    /// Never taken, for this reason.
    Refused(String),
}

/// Whether the entry `path` itself (not what a link points to) has been unchanged for `quiet`:
/// its status change time (which no one can set back) is that old.
fn unchanged_for(path: &Path, quiet: Duration) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        let changed = SystemTime::UNIX_EPOCH
            + Duration::new(
                u64::try_from(m.ctime()).unwrap_or(0),
                u32::try_from(m.ctime_nsec()).unwrap_or(0),
            );
        changed.elapsed().is_ok_and(|age| age >= quiet)
    })
}

/// Classifies `path` without following it if it is a link.
fn classify(path: &Path) -> Entry {
    let Some(name) = path.file_name() else {
        return Entry::Skip;
    };
    if name.as_bytes().first() == Some(&b'.') {
        return Entry::Skip;
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Entry::Skip;
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        return Entry::Folder(meta);
    }
    let Some(text) = name.to_str() else {
        return Entry::Refused(
            "its name is not valid UTF-8; send it again under a plain name".to_owned(),
        );
    };
    if let Err(e) = package::check_file_name(text) {
        return Entry::Refused(format!("its name {e}; send it again under another name"));
    }
    if kind.is_symlink() {
        let target: String = std::fs::read_link(path)
            .map(|t| t.to_string_lossy().chars().take(200).collect())
            .unwrap_or_default();
        return Entry::Refused(format!(
            "it is a symbolic link (to {target:?}); links are never followed: put the file \
             itself in the folder"
        ));
    }
    if !kind.is_file() {
        return Entry::Refused(format!(
            "it is {}, not a regular file; only regular files are taken",
            describe(kind)
        ));
    }
    if is_evidence(path) {
        Entry::Evidence(meta)
    } else {
        Entry::Package(meta)
    }
}

/// Whether a file is evidence read with its package, by its name.
fn is_evidence(path: &Path) -> bool {
    package::is_evidence(path.file_name().map(OsStrExt::as_bytes).unwrap_or_default())
}

/// The folder as this channel sees it.
struct Folder<'a> {
    rules: &'a WatchRules,
    journal: &'a Journal,
    publisher: &'a PublisherHandle,
    /// Files not yet taken.
    pending: HashMap<PathBuf, Candidate>,
    /// Files the publisher could not take because of this machine: retried once they change
    /// or their wait is over.
    failed: HashMap<PathBuf, Retry>,
    /// Refused files that could not be set aside: journaled once, skipped while they stay.
    stuck: HashSet<PathBuf>,
    /// Files the publisher decided on that could not be removed or set aside afterwards:
    /// journaled once, never taken again while they stay as they were.
    left: HashMap<PathBuf, FileId>,
    /// Folders in the intake folder, journaled once each while they stay (by device and
    /// inode).
    folders: HashMap<PathBuf, (u64, u64)>,
    /// Files of the folder open now, by whomever, for reading or writing: opens minus closes
    /// ([`super::opens`]). A file in it is not complete, unless it was renamed into place.
    opened: HashMap<PathBuf, u32>,
    /// The packages taken lately (before this start too, as the journal tells), for
    /// evidence that comes after its package.
    taken: Taken,
    /// Evidence with no package beside it that was looked at and left (it matches no package
    /// taken): not read again while it stays as it was.
    evidence_left: HashMap<PathBuf, FileId>,
    /// Whether the folder could not be listed at the last scan (and that was said).
    unreadable: bool,
}

/// Watches the folder until `shutdown`, handing complete packages to the publisher in turn.
pub(crate) async fn watch_folder(
    rules: WatchRules,
    publisher: PublisherHandle,
    journal: Arc<Journal>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&rules.dir)
        .with_context(|| format!("cannot create the intake folder {}", rules.dir.display()))?;
    // The events name files under the folder made absolute (from the working folder, as the
    // kernel's watch needs it): the rescan names them the same way, or one file would be two
    // candidates, taken twice.
    let rules = WatchRules {
        dir: std::path::absolute(&rules.dir)
            .with_context(|| format!("cannot resolve the intake folder {}", rules.dir.display()))?,
        ..rules
    };
    let (tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let lost = Arc::new(AtomicBool::new(false));
    let lost_by_watcher = lost.clone();
    let mut watcher = notify::recommended_watcher(move |event| {
        if tx.try_send(event).is_err() {
            lost_by_watcher.store(true, Ordering::Relaxed);
        }
    })
    .context("cannot start watching the intake folder")?;
    let mut watched = WatchedFolder::new(&rules.dir);
    watcher
        .watch(&rules.dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", rules.dir.display()))?;
    let mut opens = Opens::start(&rules.dir).with_context(|| {
        format!(
            "cannot watch who opens the files of {}",
            rules.dir.display()
        )
    })?;
    tracing::info!(dir = %rules.dir.display(), "watching the intake folder");

    let mut folder = Folder {
        rules: &rules,
        journal: &journal,
        publisher: &publisher,
        pending: HashMap::new(),
        failed: HashMap::new(),
        stuck: HashSet::new(),
        left: HashMap::new(),
        folders: HashMap::new(),
        opened: HashMap::new(),
        taken: Taken::from_journal(&journal, Channel::Watch),
        evidence_left: HashMap::new(),
        unreadable: false,
    };
    folder.rescan();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_rescan = Instant::now();
    // Complete files not taken yet because more than [`TAKE_AT_ONCE`] were: the loop comes
    // back to them at once, after the events that came meanwhile.
    let mut backlog = false;
    loop {
        let check = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            Some(event) = events.recv() => {
                let mut check = folder.note_event_or_error(event);
                // Every event waiting is noted before the folder is looked at again: one
                // look per event would cost a flood of files as many looks at all of them.
                for _ in 0..EVENT_QUEUE {
                    let Ok(event) = events.try_recv() else { break };
                    check |= folder.note_event_or_error(event);
                }
                check
            }
            change = opens.next() => folder.note_open(change),
            _ = tick.tick() => {
                if last_rescan.elapsed() >= Duration::from_secs(1) {
                    if watched.renew(&mut watcher, &journal) {
                        if let Err(e) = opens.renew() {
                            // Tried again when the folder is next replaced; settle decides.
                            tracing::warn!(error = %e, "cannot watch who opens the files of the new intake folder");
                        }
                        folder.forget_opens();
                    }
                    folder.rescan();
                    last_rescan = Instant::now();
                }
                true
            }
            () = std::future::ready(()), if backlog => true,
        };
        if lost.swap(false, Ordering::Relaxed) {
            // What the events waiting say the rescan sees anyway.
            while events.try_recv().is_ok() {}
            tracing::debug!("intake folder events dropped; rescanning");
            folder.forget_opens();
            folder.rescan();
        } else if !check {
            continue;
        }
        // Checked after events too, so a file renamed into place is taken at once.
        let ready = folder.ready();
        backlog = ready.len() > TAKE_AT_ONCE;
        for path in ready.into_iter().take(TAKE_AT_ONCE) {
            folder.pending.remove(&path);
            take(
                &path,
                &publisher,
                &journal,
                &mut folder.failed,
                &mut folder.left,
                &folder.taken,
            )
            .await;
        }
    }
}

impl Folder<'_> {
    /// Notes what an event or a watch error says; whether a file may have become complete.
    fn note_event_or_error(&mut self, event: notify::Result<notify::Event>) -> bool {
        match event {
            Ok(event) => self.note_event(&event),
            Err(e) => {
                tracing::warn!(error = %e, "intake folder watch error; the rescan covers it");
                false
            }
        }
    }

    /// Notes what an event says; whether a file may have become complete by it.
    fn note_event(&mut self, event: &notify::Event) -> bool {
        if event.need_rescan() {
            self.forget_opens();
            self.rescan();
            return true;
        }
        match event.kind {
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                if let Some(p) = event.paths.first() {
                    self.consider(p, Some(true));
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let Some(p) = event.paths.get(1) {
                    self.consider(p, Some(true));
                }
            }
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                for p in &event.paths {
                    self.pending.remove(p);
                }
            }
            EventKind::Create(_) => {
                for p in &event.paths {
                    self.consider(p, Some(false));
                }
            }
            EventKind::Modify(_) => {
                for p in &event.paths {
                    self.consider(p, None);
                }
            }
            // Opens and closes are counted from their own watch ([`opens`]), which is told
            // of every close; here a writer's close only starts the quiet time.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in &event.paths {
                    if let Some(c) = self.pending.get_mut(p) {
                        c.stable_since = Instant::now();
                    }
                }
                return true;
            }
            _ => return false,
        }
        true
    }

    /// Notes an open or a close; whether a file may have become complete by it (its last
    /// open closed, or the counts were lost).
    fn note_open(&mut self, change: Change) -> bool {
        match change {
            Change::Opened(path) => {
                if let Some(n) = self.opened.get_mut(&path) {
                    *n = n.saturating_add(1);
                } else if self.opened.len() < MAX_OPEN_FILES {
                    self.opened.insert(path, 1);
                } else {
                    tracing::debug!(
                        "more intake files open at once than are counted; settle decides"
                    );
                    self.forget_opens();
                }
                false
            }
            Change::Closed(path) => match self.opened.get_mut(&path) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    self.opened.remove(&path);
                    true
                }
                // Opened before it was watched, or its count was forgotten.
                None => false,
            },
            Change::Lost => {
                tracing::debug!("who holds the intake files open is unknown; settle decides");
                self.forget_opens();
                true
            }
        }
    }

    /// Events were lost: who holds which file open is unknown now; settle decides.
    fn forget_opens(&mut self) {
        self.opened.clear();
    }

    /// Whether `path`, as `meta` shows it, is a file left in the folder after its outcome,
    /// unchanged since.
    fn is_left(&self, path: &Path, meta: &std::fs::Metadata) -> bool {
        self.left.get(path) == Some(&FileId::of(meta))
    }

    /// Whether `path`, as `meta` shows it, is a file this machine failed to take, unchanged
    /// since, whose wait is not over: whatever wakes the intake (an event, a rescan), it
    /// waits.
    fn is_waiting(&self, path: &Path, meta: &std::fs::Metadata) -> bool {
        self.failed
            .get(path)
            .is_some_and(|r| r.id == RetryId::of(meta) && Instant::now() < r.after)
    }

    /// Journals once, while it stays, a folder found in the intake folder: nothing in it is
    /// taken, and an upload that made it (a package sent as a folder) would otherwise vanish
    /// unsaid. It is left where it is.
    fn note_folder(&mut self, path: &Path, meta: &std::fs::Metadata) {
        let id = (meta.dev(), meta.ino());
        if self.folders.get(path) == Some(&id) {
            return;
        }
        self.folders.insert(path.to_owned(), id);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reason = format!(
            "{name:?} was not taken: it is a folder, and only files are taken from the intake \
             folder (nothing inside a folder is read); it is left where it is: send the \
             package file itself"
        );
        tracing::warn!(?name, "a folder in the intake folder is left alone");
        let _ = self.journal.record(
            journal::EventKind::Rejected,
            None,
            json!({
                "name": name, "channel": Channel::Watch, "fault": Fault::Sender,
                "reason": reason, "set_aside": null, "error": null,
            }),
        );
    }

    /// Looks at `path` after an event: a package becomes (`fresh`: anew, renamed into place
    /// or not) or stays a candidate; anything refused is refused.
    fn consider(&mut self, path: &Path, fresh: Option<bool>) {
        match classify(path) {
            Entry::Package(meta) if self.is_left(path, &meta) || self.is_waiting(path, &meta) => {}
            Entry::Package(meta) => match fresh {
                Some(renamed) => {
                    self.pending.insert(
                        path.to_owned(),
                        Candidate::new(&meta, renamed, Instant::now()),
                    );
                }
                None => {
                    self.pending
                        .entry(path.to_owned())
                        .or_insert_with(|| Candidate::new(&meta, false, Instant::now()));
                }
            },
            Entry::Refused(reason) => self.refuse(path, &reason),
            Entry::Folder(meta) => self.note_folder(path, &meta),
            Entry::Evidence(_) | Entry::Skip => {}
        }
    }

    /// Adds files the events missed (and everything at start), and refuses what is refused.
    /// The files one scan finds are seen at the same instant: nothing tells which came
    /// first, so they are taken in the order of their names (their cortes'), not in the
    /// order the directory lists them.
    fn rescan(&mut self) {
        // Listed as `<folder>/.`, which needs leave to look files up in it as well as to list
        // it: a folder that can be listed but not searched is one nothing can be taken from.
        let entries = match std::fs::read_dir(self.rules.dir.join(".")) {
            Ok(entries) => entries,
            Err(e) => return self.cannot_read(&e),
        };
        if std::mem::take(&mut self.unreadable) {
            tracing::info!(dir = %self.rules.dir.display(), "the intake folder can be read again");
        }
        let now = Instant::now();
        let mut still_stuck = HashSet::new();
        for entry in entries.flatten() {
            let path = self.rules.dir.join(entry.file_name());
            if self.pending.contains_key(&path) {
                continue;
            }
            if self.stuck.contains(&path) {
                still_stuck.insert(path);
                continue;
            }
            match classify(&path) {
                Entry::Package(meta) if self.is_left(&path, &meta) => {}
                Entry::Package(meta) => {
                    if !self.is_waiting(&path, &meta) {
                        self.pending.insert(path, Candidate::new(&meta, false, now));
                    }
                }
                Entry::Refused(reason) => self.refuse(&path, &reason),
                Entry::Folder(meta) => self.note_folder(&path, &meta),
                Entry::Evidence(meta) => self.look_at_evidence(&path, &meta),
                Entry::Skip => {}
            }
        }
        self.stuck = still_stuck;
        self.evidence_left.retain(|path, id| {
            std::fs::symlink_metadata(path).is_ok_and(|m| FileId::of(&m) == *id)
        });
        self.folders.retain(|path, id| {
            std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && (m.dev(), m.ino()) == *id)
        });
        // A file this machine kept failing to take that is gone: the failure is over (on
        // `/status`, `intake_failing`, when it was the last to fail).
        let publisher = self.publisher;
        self.failed.retain(|path, _| {
            if is_regular(path) {
                return true;
            }
            if let Some(name) = PackageName::of_path(path)
                && publisher.faults().gone(&name, Channel::Watch)
            {
                tracing::info!(%name, "the file this server failed to take left the intake folder; the failure is over");
            }
            false
        });
        self.left.retain(|path, id| {
            std::fs::symlink_metadata(path).is_ok_and(|m| FileId::of(&m) == *id)
        });
    }

    /// The folder could not be listed (its permissions keep this server's user out, or the
    /// server is out of open files): nothing in it can be taken, said once (`intake-error`)
    /// until it can be listed again. A folder gone or replaced by what is no folder is said
    /// by [`WatchedFolder::renew`].
    fn cannot_read(&mut self, error: &std::io::Error) {
        use std::io::ErrorKind::{NotADirectory, NotFound};
        if self.unreadable || matches!(error.kind(), NotFound | NotADirectory) {
            return;
        }
        self.unreadable = true;
        let error = format!(
            "the intake folder {} cannot be read by this server ({error}): nothing is taken \
             from it until it can; {}",
            self.rules.dir.display(),
            open_hint(error)
        );
        tracing::error!(error);
        self.journal.post(
            journal::EventKind::IntakeError,
            None,
            json!({"channel": Channel::Watch, "error": error, "fault": Fault::Ours}),
        );
    }

    /// Looks at evidence found by a scan: evidence with no package beside it, complete
    /// (unchanged for `settle` and open by no one), that matches the package last taken under
    /// its name (a `.sha256` giving its digest, a `.minisig` that verifies it with a
    /// configured key) came after that package ([`super::late`]): it is journaled and leaves
    /// the folder, where it would otherwise be read with the next upload of that name. Any
    /// other is left as it is, and not read again until it changes. A signature is checked
    /// here, on the intake folder's own thread, by reading the archived package.
    fn look_at_evidence(&mut self, path: &Path, meta: &std::fs::Metadata) {
        let package = path.with_extension("");
        let id = FileId::of(meta);
        if self.evidence_left.get(path) == Some(&id)
            || is_regular(&package)
            || self.opened.contains_key(path)
            || !unchanged_for(path, self.rules.settle)
        {
            return;
        }
        let late = (path.file_name().and_then(|n| n.to_str()))
            .zip(read_evidence(path).ok().flatten())
            .and_then(|(name, evidence)| {
                (self.taken).late_evidence(name, &evidence, &self.rules.late_signatures)
            });
        let unchanged = std::fs::symlink_metadata(path).is_ok_and(|m| FileId::of(&m) == id);
        match late {
            Some(late) if unchanged => {
                late.record(self.journal, Channel::Watch, None);
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove evidence come late from the intake folder");
                    self.evidence_left.insert(path.to_owned(), id);
                }
            }
            // Changed while it was read: looked at again by the next scan.
            Some(_) => {}
            None => {
                self.evidence_left.insert(path.to_owned(), id);
            }
        }
    }

    /// Journals why `path` is not taken and sets it aside, once per file, when it has been
    /// unchanged for `settle`: until then the rescan finds it again. (rsync, for one, still
    /// looks at a link it made after making it.)
    fn refuse(&mut self, path: &Path, reason: &str) {
        self.pending.remove(path);
        if self.stuck.contains(path) || !unchanged_for(path, self.rules.settle) {
            return;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let aside = set_aside(path);
        tracing::warn!(?name, reason, "a file in the intake folder was refused");
        let set_aside_as = aside
            .as_ref()
            .ok()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let error = aside
            .as_ref()
            .err()
            .map(|e| format!("it could not be set aside: {e}"));
        let _ = self.journal.record(
            journal::EventKind::Rejected,
            None,
            json!({
                "name": name, "channel": Channel::Watch, "fault": Fault::Sender,
                "reason": format!("{name:?} was not taken: {reason}"),
                "set_aside": set_aside_as, "error": error,
            }),
        );
        if aside.is_err() {
            self.stuck.insert(path.to_owned());
        }
    }

    /// The candidates complete by the rules: those that begin as an archive first, then the
    /// rest (empty files, text, noise: refused whatever comes), each the first seen first;
    /// those seen at the same instant (by one scan) by name: one of them waits for those
    /// before it by name to be complete too, for at most twice `settle` after it was seen,
    /// so a package written in place among them never lets a later corte go first.
    fn ready(&mut self) -> Vec<PathBuf> {
        let (rules, opened) = (self.rules, &self.opened);
        let mut out = Vec::new();
        let mut incomplete = Vec::new();
        self.pending.retain(|path, c| {
            let Ok(meta) = std::fs::symlink_metadata(path) else {
                return false;
            };
            if !meta.is_file() {
                return false; // replaced by something else: the next scan refuses it
            }
            let modified = meta.modified().ok();
            if meta.len() != c.len || modified != c.modified {
                c.len = meta.len();
                c.modified = modified;
                c.stable_since = Instant::now();
                c.renamed = false;
                c.archive = None;
            }
            let complete = c.renamed
                || !opened.contains_key(path)
                    && (c.stable_since.elapsed() >= rules.settle || sidecar_after(path, modified));
            let evidence_missing = (rules.sidecar == Policy::Required
                && !is_regular(&evidence_path(path, "sha256")))
                || (rules.signature == Policy::Required
                    && !is_regular(&evidence_path(path, "minisig")));
            if complete && (!evidence_missing || c.first_seen.elapsed() >= rules.evidence_wait) {
                let archive = match c.archive {
                    Some(archive) => archive,
                    None => {
                        let archive = looks_like_archive(path);
                        c.archive = Some(archive);
                        archive
                    }
                };
                out.push((!archive, c.first_seen, path.clone()));
            } else {
                incomplete.push((c.first_seen, path.clone()));
            }
            true
        });
        out.retain(|(_, seen, path)| {
            seen.elapsed() >= rules.settle * 2
                || !incomplete.iter().any(|(s, p)| s == seen && p < path)
        });
        out.sort();
        out.into_iter().map(|(_, _, p)| p).collect()
    }
}

/// Whether `path` is a regular file itself (not through a link).
fn is_regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Renames a refused file to a free hidden name beside it, `.rechazado.<name>` (with `.1`,
/// `.2`… when taken), where it is never taken again. A link is moved itself, not its target.
fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let name = path.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
    for n in 0..100u32 {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!(".{n}")
        };
        let room = package::FILE_NAME_MAX.saturating_sub(ASIDE_PREFIX.len() + suffix.len());
        let mut aside = ASIDE_PREFIX.as_bytes().to_vec();
        aside.extend_from_slice(name.get(..room).unwrap_or(name));
        aside.extend_from_slice(suffix.as_bytes());
        let target = path.with_file_name(OsString::from_vec(aside));
        if std::fs::symlink_metadata(&target).is_err() {
            std::fs::rename(path, &target)?;
            return Ok(target);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "no free name to set it aside under",
    ))
}

/// Whether a sidecar holding a digest was written after the package last changed: an
/// uploader that sends the hash after the package has finished the package.
fn sidecar_after(path: &Path, package_modified: Option<SystemTime>) -> bool {
    let sidecar = evidence_path(path, "sha256");
    let Some(package_modified) = package_modified else {
        return false;
    };
    let written_after = std::fs::symlink_metadata(&sidecar)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .and_then(|m| m.modified().ok())
        .is_some_and(|t| t >= package_modified);
    written_after
        && read_evidence(&sidecar)
            .ok()
            .flatten()
            .and_then(|file| file.text())
            .is_some_and(|text| {
                text.split_whitespace()
                    .next()
                    .is_some_and(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
            })
}

/// Hands one complete file to the publisher and tidies the folder after its outcome.
async fn take(
    path: &Path,
    publisher: &PublisherHandle,
    journal: &Journal,
    failed: &mut HashMap<PathBuf, Retry>,
    left: &mut HashMap<PathBuf, FileId>,
    taken: &Taken,
) {
    let Some(name) = PackageName::of_path(path) else {
        return;
    };
    match open_regular(path) {
        Ok(_) => {}
        // Gone, or replaced by what is not a regular file, while it waited its turn: not
        // taken, and no failure; the next scan sees to what is there now.
        Err(e) if gone(&e) => {
            tracing::debug!(%name, error = %e, "gone from the intake folder before its turn; skipped");
            return;
        }
        Err(e) => return cannot_open(path, path, &name, &e, publisher, journal, failed),
    }
    let meta = std::fs::symlink_metadata(path).ok();
    let sidecar_path = evidence_path(path, "sha256");
    let signature_path = evidence_path(path, "minisig");
    let read = |p: &Path| read_evidence_once(p).map_err(|e| (p.to_owned(), e));
    let ((sidecar, sidecar_read), (signature, signature_read)) =
        match read(&sidecar_path).and_then(|s| Ok((s, read(&signature_path)?))) {
            Ok(both) => both,
            // Evidence that is there is never taken for absent: its package waits for it.
            Err((unopened, e)) => {
                return cannot_open(path, &unopened, &name, &e, publisher, journal, failed);
            }
        };
    let received = Received {
        hashed: None,
        name: name.clone(),
        path: path.to_owned(),
        channel: Channel::Watch,
        origin: None,
        sidecar,
        signature,
        received_at: Timestamp::now(),
    };
    let outcome = publisher.ingest(received).await.unwrap_or_else(|_| {
        let error = "the publisher is not running; the file stays in the folder and is taken \
                     when the server runs again";
        tracing::error!(%name, error);
        journal.post(
            journal::EventKind::IntakeError,
            None,
            json!({"name": name, "channel": Channel::Watch, "error": error, "fault": Fault::Ours}),
        );
        Outcome::Failed {
            error: error.to_owned(),
            fault: Fault::Ours,
        }
    });
    if !matches!(outcome, Outcome::Failed { .. }) {
        failed.remove(path);
    }
    taken.note(&name, &outcome);
    // Another file put under the same name while this one was being taken (a corrected
    // package, an upload retried) is not this one: it stays, to be taken in turn.
    let replaced = !matches!(outcome, Outcome::Failed { .. })
        && meta.as_ref().is_some_and(|before| {
            std::fs::symlink_metadata(path).is_ok_and(|now| FileId::of(&now) != FileId::of(before))
        });
    if replaced {
        tracing::info!(%name, "replaced in the intake folder while it was taken; the new file is taken in turn");
        return;
    }
    let tidy = match &outcome {
        // This machine's fault: the file stays as it is, to be tried again.
        Outcome::Failed { .. } => {
            if let Some(m) = meta {
                let retry = Retry::after(failed.get(path), RetryId::of(&m));
                failed.insert(path.to_owned(), retry);
            }
            return;
        }
        // Refused before it could be stored: kept aside, with its evidence beside it.
        Outcome::Rejected { sha256: None, .. } => set_aside(path).map(drop),
        // Archived with its evidence: all of it leaves the folder. What lies under an
        // evidence name but is no regular file was not read as evidence: it stays, to be
        // refused and set aside like anything else that is not a regular file. Evidence
        // written there after it was read (a sidecar sent after its package) was not
        // read either: it stays, to be looked at alone ([`Folder::look_at_evidence`]).
        _ => {
            for (p, read) in [
                (&sidecar_path, sidecar_read),
                (&signature_path, signature_read),
            ] {
                let same = std::fs::symlink_metadata(p).is_ok_and(|m| Some(FileId::of(&m)) == read);
                if same {
                    let _ = std::fs::remove_file(p);
                }
            }
            std::fs::remove_file(path)
        }
    };
    if let Err(e) = tidy {
        // Taking it again would decide it again and fail again: it stays, and is taken again
        // only once it changes (or at the next start).
        let error = format!(
            "tidying the intake folder: {e}; the file stays and is not taken again until it \
             changes: let this server's user remove files in the folder"
        );
        tracing::error!(path = %path.display(), error, "could not tidy the intake folder");
        if let Some(m) = &meta {
            left.insert(path.to_owned(), FileId::of(m));
        }
        let _ = journal.record(
            journal::EventKind::IntakeError,
            None,
            json!({"name": name, "channel": Channel::Watch, "error": error}),
        );
    }
}

/// Reads the evidence file at `path` ([`read_evidence`]), with which file was read: `None`
/// when there was none, or it changed while it was read (then it is not known which was).
/// A regular file there that cannot be opened (its permissions keep this server's user out,
/// no open file left) is an error, never taken for absent.
fn read_evidence_once(
    path: &Path,
) -> std::io::Result<(Option<package::EvidenceFile>, Option<FileId>)> {
    let before = std::fs::symlink_metadata(path).ok().map(|m| FileId::of(&m));
    let evidence = read_evidence(path)?;
    let after = std::fs::symlink_metadata(path).ok().map(|m| FileId::of(&m));
    let read = before.filter(|_| evidence.is_some() && before == after);
    Ok((evidence, read))
}

/// A complete file this server cannot open, `unopened`: the package at `path` itself or its
/// evidence (its permissions keep this server's user out, or the server is out of open
/// files). The package stays as it is and is tried again after a wait that doubles up to a
/// minute, or when it changes. Said on `/status` (`intake_failing`) at every try, journaled
/// (`intake-error`) once for each change of the package, with what to do about its cause
/// ([`open_hint`]): the same failure a minute later says nothing new.
fn cannot_open(
    path: &Path,
    unopened: &Path,
    name: &PackageName,
    error: &std::io::Error,
    publisher: &PublisherHandle,
    journal: &Journal,
    failed: &mut HashMap<PathBuf, Retry>,
) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let id = RetryId::of(&meta);
    let previous = failed.get(path);
    let said = previous.is_some_and(|r| r.id == id);
    let retry = Retry::after(previous, id);
    failed.insert(path.to_owned(), retry);
    let error = if unopened == path {
        format!(
            "{name} in the intake folder cannot be opened by this server ({error}): it stays \
             in the folder and is tried again when it changes, and at least once a minute; {}",
            open_hint(error)
        )
    } else {
        let evidence = unopened.file_name().unwrap_or_default().to_string_lossy();
        format!(
            "{evidence} in the intake folder cannot be opened by this server ({error}): {name} \
             is not taken without it and stays in the folder, tried again when it changes, and \
             at least once a minute; {}",
            open_hint(error)
        )
    };
    publisher.faults().failed(name, Channel::Watch, &error);
    if said {
        tracing::debug!(%name, "still cannot open a file in the intake folder");
        return;
    }
    tracing::error!(%name, error, "a file in the intake folder cannot be opened");
    let _ = journal.record(
        journal::EventKind::IntakeError,
        None,
        json!({"name": name, "channel": Channel::Watch, "error": error, "fault": Fault::Ours}),
    );
}

/// What the operator can do about a file of the intake folder that cannot be opened.
fn open_hint(error: &std::io::Error) -> &'static str {
    use rustix::io::Errno;
    match Errno::from_io_error(error) {
        Some(Errno::MFILE) => {
            "this server has used up its open files (LimitNOFILE, `ulimit -n`): raise the \
             limit, or wait for visitors' connections to end"
        }
        Some(Errno::NFILE) => {
            "the system has used up its open files (fs.file-max): raise it, or stop what \
             holds them"
        }
        Some(Errno::ACCESS | Errno::PERM) => "let this server's user read it",
        _ => "check the file and the disk it is on",
    }
}

/// The intake folder as it was when it was last watched: found removed or replaced (by a
/// new folder or a link to one), it is watched again, and its absence is said once.
struct WatchedFolder {
    dir: PathBuf,
    /// The watched folder's device and inode; `None` while it is gone.
    id: Option<(u64, u64)>,
}

impl WatchedFolder {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            id: Self::id_of(dir),
        }
    }

    /// The device and inode of the folder `dir` names now (through a link, as configured).
    fn id_of(dir: &Path) -> Option<(u64, u64)> {
        std::fs::metadata(dir)
            .ok()
            .filter(std::fs::Metadata::is_dir)
            .map(|m| (m.dev(), m.ino()))
    }

    /// Watches the folder again if it was replaced since it was watched; whether it was (so
    /// events of the files in it were missed).
    fn renew(&mut self, watcher: &mut impl Watcher, journal: &Journal) -> bool {
        let now = Self::id_of(&self.dir);
        if now == self.id {
            return false;
        }
        let dir = self.dir.display().to_string();
        let Some(id) = now else {
            let error =
                format!("the intake folder {dir} is gone: nothing is taken until it is made again");
            tracing::error!(error);
            journal.post(
                journal::EventKind::IntakeError,
                None,
                json!({"channel": Channel::Watch, "error": error, "fault": Fault::Ours}),
            );
            self.id = None;
            return false;
        };
        // The old watch may be gone with its folder already.
        let _ = watcher.unwatch(&self.dir);
        if let Err(e) = watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
            // Tried again at the next rescan; the rescan takes files meanwhile.
            tracing::warn!(%dir, error = %e, "cannot watch the new intake folder");
            return false;
        }
        tracing::warn!(%dir, "the intake folder was replaced; watching the new one");
        self.id = Some(id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_cannot_be_opened_gets_the_hint_of_its_cause() {
        use rustix::io::Errno;
        let hint =
            |errno: Errno| open_hint(&std::io::Error::from_raw_os_error(errno.raw_os_error()));
        assert!(hint(Errno::MFILE).contains("LimitNOFILE"));
        assert!(hint(Errno::NFILE).contains("fs.file-max"));
        assert_eq!(hint(Errno::ACCESS), "let this server's user read it");
        assert_eq!(hint(Errno::PERM), "let this server's user read it");
        assert!(hint(Errno::IO).contains("disk"));
    }
}
