//! Intake from the watched folder (`watch_dir`): packages pushed by OpenSSH, scp or rsync.
//!
//! A file is taken once it is complete:
//! - at once when it was renamed into place (how rsync and careful uploaders finish);
//! - at once when its `<name>.sha256` sidecar, holding a digest, was written after the file
//!   last changed (an uploader that sends the hash last has finished the package);
//! - otherwise once its size and modification time have not changed for `settle`.
//!
//! Names starting with `.` are never taken (uploads in progress: rsync's `.name.XXXXXX`),
//! nor evidence files (`<package>.sha256`, `<package>.minisig`), which are read with their
//! package. When the profile requires a sidecar or signature, a complete package waits for
//! it up to `evidence_wait`, then goes to the publisher without it (and is rejected there).
//!
//! inotify reports changes; a rescan every second is the safety net for missed events.
//!
//! # Guarantees
//! - A half-written file is never taken by this channel's rules above.
//! - Each file is handed over once. After the publisher has archived it, it and its evidence
//!   leave the folder (the archive holds them). A file that could not be archived because of
//!   this machine stays, and is retried when it changes or at the next start; one refused for
//!   its size is renamed to `.rechazado.<name>` and stays.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use jiff::Timestamp;
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::journal::{self, Journal};
use crate::package::Policy;
use crate::publisher::{Command, Outcome, Received, package_name};

/// Largest evidence file read (a sidecar or a minisign signature is well under 1 KiB).
const MAX_EVIDENCE_BYTES: u64 = 64 * 1024;

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
}

/// What is known of a file not yet taken.
#[derive(Debug)]
struct Candidate {
    len: u64,
    modified: Option<SystemTime>,
    stable_since: Instant,
    first_seen: Instant,
    renamed: bool,
}

/// Watches the folder until `shutdown`, handing complete packages to the publisher in turn.
pub(crate) async fn watch_folder(
    rules: WatchRules,
    publisher: mpsc::Sender<Command>,
    journal: Arc<Journal>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&rules.dir)
        .with_context(|| format!("cannot create the intake folder {}", rules.dir.display()))?;
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .context("cannot start watching the intake folder")?;
    watcher
        .watch(&rules.dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", rules.dir.display()))?;
    tracing::info!(dir = %rules.dir.display(), "watching the intake folder");

    let mut pending: HashMap<PathBuf, Candidate> = HashMap::new();
    let mut failed: HashSet<(PathBuf, u64, Option<SystemTime>)> = HashSet::new();
    rescan(&rules.dir, &mut pending, &failed);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_rescan = Instant::now();
    loop {
        tokio::select! {
            Some(event) = events.recv() => match event {
                Ok(event) => note_event(&event, &mut pending),
                Err(e) => tracing::warn!(error = %e, "intake folder watch error; the rescan covers it"),
            },
            _ = tick.tick() => {
                if last_rescan.elapsed() >= Duration::from_secs(1) {
                    rescan(&rules.dir, &mut pending, &failed);
                    last_rescan = Instant::now();
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
        // Checked after every event too, so a file renamed into place is taken at once.
        for path in ready(&rules, &mut pending) {
            pending.remove(&path);
            take(&path, &publisher, &journal, &mut failed).await;
        }
    }
}

/// Whether a file in the folder is a package to consider.
fn is_package_file(path: &Path) -> bool {
    package_name(path).is_some_and(|n| !n.ends_with(".sha256") && !n.ends_with(".minisig"))
}

fn note_event(event: &notify::Event, pending: &mut HashMap<PathBuf, Candidate>) {
    let renamed_to = match event.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => event.paths.first(),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => event.paths.get(1),
        _ => None,
    };
    if let Some(path) = renamed_to {
        if is_package_file(path)
            && let Some(c) = candidate(path, true)
        {
            pending.insert(path.clone(), c);
        }
        return;
    }
    match event.kind {
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            for p in &event.paths {
                pending.remove(p);
            }
        }
        EventKind::Create(_) | EventKind::Modify(_) => {
            for p in event.paths.iter().filter(|p| is_package_file(p)) {
                let renamed = pending.get(p).is_some_and(|c| c.renamed);
                if let Some(c) = candidate(p, renamed) {
                    pending.insert(p.clone(), c);
                }
            }
        }
        _ => {}
    }
}

fn candidate(path: &Path, renamed: bool) -> Option<Candidate> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| Candidate {
        len: meta.len(),
        modified: meta.modified().ok(),
        stable_since: Instant::now(),
        first_seen: Instant::now(),
        renamed,
    })
}

/// Adds files the events missed (and everything at start).
fn rescan(
    dir: &Path,
    pending: &mut HashMap<PathBuf, Candidate>,
    failed: &HashSet<(PathBuf, u64, Option<SystemTime>)>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if pending.contains_key(&path) || !is_package_file(&path) {
            continue;
        }
        if let Some(c) = candidate(&path, false)
            && !failed.contains(&(path.clone(), c.len, c.modified))
        {
            pending.insert(path, c);
        }
    }
}

/// The candidates complete by the rules, oldest first.
fn ready(rules: &WatchRules, pending: &mut HashMap<PathBuf, Candidate>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    pending.retain(|path, c| {
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        let modified = meta.modified().ok();
        if meta.len() != c.len || modified != c.modified {
            c.len = meta.len();
            c.modified = modified;
            c.stable_since = Instant::now();
            c.renamed = false;
        }
        let complete =
            c.renamed || c.stable_since.elapsed() >= rules.settle || sidecar_after(path, modified);
        let evidence_missing = (rules.sidecar == Policy::Required
            && !with_ext(path, "sha256").exists())
            || (rules.signature == Policy::Required && !with_ext(path, "minisig").exists());
        if complete && (!evidence_missing || c.first_seen.elapsed() >= rules.evidence_wait) {
            out.push((c.first_seen, path.clone()));
        }
        true
    });
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

/// Whether a sidecar holding a digest was written after the package last changed: an
/// uploader that sends the hash after the package has finished the package.
fn sidecar_after(path: &Path, package_modified: Option<SystemTime>) -> bool {
    let sidecar = with_ext(path, "sha256");
    let Some(package_modified) = package_modified else {
        return false;
    };
    let written_after = std::fs::metadata(&sidecar)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= package_modified);
    written_after
        && read_evidence(&sidecar).is_some_and(|text| {
            text.split_whitespace()
                .next()
                .is_some_and(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        })
}

/// `<path>.<ext>`.
fn with_ext(path: &Path, ext: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".");
    p.push(ext);
    PathBuf::from(p)
}

/// Reads an evidence file, at most [`MAX_EVIDENCE_BYTES`].
pub(crate) fn read_evidence(path: &Path) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_EVIDENCE_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Hands one complete file to the publisher and tidies the folder after its outcome.
async fn take(
    path: &Path,
    publisher: &mpsc::Sender<Command>,
    journal: &Journal,
    failed: &mut HashSet<(PathBuf, u64, Option<SystemTime>)>,
) {
    let Some(name) = package_name(path) else {
        return;
    };
    let meta = std::fs::metadata(path).ok();
    let sidecar_path = with_ext(path, "sha256");
    let signature_path = with_ext(path, "minisig");
    let received = Received {
        name: name.clone(),
        path: path.to_owned(),
        channel: "watch",
        origin: None,
        sidecar: read_evidence(&sidecar_path),
        signature: read_evidence(&signature_path),
        received_at: Timestamp::now(),
    };
    let (tx, rx) = oneshot::channel();
    if publisher
        .send(Command::Ingest(received, Some(tx)))
        .await
        .is_err()
    {
        return;
    }
    let Ok(outcome) = rx.await else { return };
    let tidy = match &outcome {
        Outcome::Failed { .. } => {
            if let Some(m) = meta {
                failed.insert((path.to_owned(), m.len(), m.modified().ok()));
            }
            return;
        }
        // Refused before it could be stored: kept aside, with its evidence beside it.
        Outcome::Rejected { sha256: None, .. } => {
            std::fs::rename(path, path.with_file_name(format!(".rechazado.{name}")))
        }
        // Archived with its evidence: all of it leaves the folder.
        _ => {
            for p in [&sidecar_path, &signature_path] {
                if p.exists() {
                    let _ = std::fs::remove_file(p);
                }
            }
            std::fs::remove_file(path)
        }
    };
    if let Err(e) = tidy {
        tracing::error!(path = %path.display(), error = %e, "could not tidy the intake folder");
        let _ = journal.record(
            journal::EventKind::IntakeError,
            None,
            json!({"name": name, "channel": "watch", "error": format!("tidying the intake folder: {e}")}),
        );
    }
}
