//! The data folder: its layout ([`layout`]), the lock that gives it one writer, and the space
//! kept free on its disks ([`space`], `min_free_space`), which every write of received bytes
//! claims its room from.
//!
//! Every name at the top of the data folder is spelled in [`layout`] and nowhere else:
//! - `archivo/`: the archive, whose own folders inside it ([`crate::archive`] spells them:
//!   `pendientes/`, `rechazados/`, `tmp/`, `<aa>/`) no other module knows;
//! - `tmp/`: downloads and uploads not yet handed to the publisher;
//! - `bitacora.sqlite`: the journal ([`crate::journal`]);
//! - `difusor.lock`: the lock file;
//! - defaults of settings that point into the folder: `entrada/` (`watch_dir`), `bitacoras/`
//!   (`log_dir`), `sftp_host_key`, `sftp_authorized_keys`, and `tls/` (what `difusor init
//!   --self-signed` writes).
//!
//! # Guarantees
//! - One writer per data folder. Whatever writes the archive or the journal (`serve`, and
//!   `ingest`, `rollback` and `notice` when they work on the folder themselves) first takes
//!   an exclusive lock on `difusor.lock` ([`std::fs::File::try_lock`]) and holds it until it
//!   ends; the kernel releases it when the process dies, however it dies. A [`Store`] (the
//!   archive and the journal opened for writing) can only be opened with that lock in hand.
//! - The lock never waits: a folder held by another process is [`Busy`], with the holder's
//!   process id when it wrote one. The id is written into the file after the lock is taken,
//!   for operators' messages only; the lock itself is the kernel's.
//! - A [`Store`] opens only on a journal it can write: one locked by another process (an
//!   `sqlite3` shell left in a transaction) or that this process may only read stops the
//!   opening with an error naming the file and what to do, before a server binds anything.
//!   So does a journal that is not a whole SQLite database (overwritten, cut short): the
//!   error says to restore it from a backup, the archive being intact.
//! - Reading (the journal for `history`, reports) needs no lock: SQLite's WAL lets readers
//!   in beside the writer.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::archive::Archive;
use crate::config::Config;
use crate::journal::Journal;

pub(crate) mod layout;
pub(crate) mod space;

pub(crate) use layout::Layout;
pub(crate) use space::Reserve;

/// The data folder is held by another process.
#[derive(Debug, thiserror::Error)]
#[error(
    "the data folder {} is held by another difusor{} (lock file {}){}",
    folder.display(),
    pid.map(|p| format!(", process {p}")).unwrap_or_default(),
    lock_file.display(),
    if hint.is_empty() { String::new() } else { format!("; {hint}") }
)]
pub(crate) struct Busy {
    /// The data folder.
    pub(crate) folder: PathBuf,
    /// Its lock file.
    pub(crate) lock_file: PathBuf,
    /// The holder's process id, as it wrote it.
    pub(crate) pid: Option<u32>,
    /// What the operator can do.
    pub(crate) hint: String,
}

/// The exclusive lock on a data folder, held until dropped (or the process ends).
#[derive(Debug)]
pub(crate) struct Lock {
    // The lock lives as long as this open file.
    _file: File,
}

/// Takes the data folder's lock without waiting: `Ok(Err(busy))` when another process holds
/// it. The folder is created if needed.
pub(crate) fn lock(data_dir: &Path) -> Result<std::result::Result<Lock, Busy>> {
    std::fs::create_dir_all(data_dir).with_context(|| {
        format!(
            "cannot create the data folder {}; check its permissions",
            data_dir.display()
        )
    })?;
    let path = Layout::new(data_dir).lock_file();
    // Not truncated on open: the holder's process id stays readable until the lock is ours.
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path);
    let (mut file, unwritable) = match opened {
        Ok(file) => (file, None),
        // A folder this process cannot write (a disk turned read-only, a read-only mount)
        // may still be held by a server that opened it before: read-only, the file takes
        // the same lock, which says whether one does (then it is asked, and says what is
        // wrong). Held by none, nothing here can work on the folder.
        Err(e) => match File::open(&path) {
            Ok(file) => (file, Some(e)),
            Err(_) => {
                return Err(e)
                    .with_context(|| format!("cannot open the lock file {}", path.display()));
            }
        },
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let pid = file
                .take(32)
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Ok(Err(Busy {
                folder: data_dir.to_owned(),
                lock_file: path,
                pid,
                hint: String::new(),
            }));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    if let Some(e) = unwritable {
        return Err(e).with_context(|| format!("cannot open the lock file {}", path.display()));
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    if let Err(e) = written {
        // Only the message to a second process loses its pid; the lock holds.
        tracing::warn!(path = %path.display(), error = %e, "cannot write the process id into the lock file");
    }
    Ok(Ok(Lock { _file: file }))
}

/// The data folder opened for writing: the archive and the journal, under its lock.
pub(crate) struct Store {
    /// The archive.
    pub(crate) archive: Archive,
    /// The space kept free on the folders' disks (`min_free_space`), which the archive's
    /// copies and every channel's uploads in progress leave whole.
    pub(crate) reserve: Reserve,
    /// The journal.
    pub(crate) journal: Arc<Journal>,
    /// The data folder's places.
    pub(crate) layout: Layout,
    _lock: Lock,
}

impl Store {
    /// Creates the data folder's layout if needed (and `watch_dir` and `log_dir`), opens the
    /// archive and the journal, and the reserve on their disks; `lock` proves this process is
    /// the folder's only writer.
    pub(crate) fn open(config: &Config, lock: Lock) -> Result<Self> {
        let layout = Layout::new(&config.data_dir);
        for dir in [
            layout.tmp(),
            layout.archive(),
            config.watch_dir.clone(),
            config.log_dir.clone(),
        ] {
            std::fs::create_dir_all(&dir).with_context(|| {
                format!(
                    "cannot create the folder {}; check its permissions",
                    dir.display()
                )
            })?;
        }
        let reserve = Reserve::new(
            config.settings.min_free_space.as_u64(),
            &space::Folders {
                data: &config.data_dir,
                archive: &layout.archive(),
                uploads: &layout.tmp(),
                intake: &config.watch_dir,
                logs: &config.log_dir,
            },
        )?;
        let archive = Archive::open(&layout.archive(), reserve.archive())?;
        let journal_path = layout.journal();
        let journal = Journal::open(&journal_path)
            .and_then(|journal| journal.check_writable().map(|()| journal))
            .map_err(|e| {
                e.explained(format!(
                    "cannot open the journal {} for writing",
                    journal_path.display()
                ))
            })?;
        Ok(Self {
            archive,
            reserve,
            journal: Arc::new(journal),
            layout,
            _lock: lock,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_busy_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap().unwrap();
        let busy = lock(dir.path()).unwrap().unwrap_err();
        assert_eq!(busy.pid, Some(std::process::id()));
        assert!(busy.to_string().contains(&dir.path().display().to_string()));
        drop(first);
        assert!(lock(dir.path()).unwrap().is_ok(), "free again once dropped");
    }
}
