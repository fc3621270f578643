//! Free space on the disks of the data folder, and the reserve that received bytes never take
//! from them (`min_free_space`).
//!
//! The data folder's disk holds the archive, the journal and, by default, the intake folder
//! and the access logs. What a sender sends (an SFTP upload, a pull download, a package copied
//! into the archive, an admin upload) is written there too; if it could fill the disk, the
//! journal and the access log would fail next, and the night's record with them. So each
//! write of received bytes first asks for its room here ([`Space::claim`]), and a write that
//! would leave less than the reserve is refused before anything of it is written.
//!
//! The folders looked at are named once, at start ([`Folders`]): each is opened, and folders
//! on one disk (one device number) share that disk's count. Received bytes go to two of them,
//! the archive ([`Reserve::archive`]) and the folder of uploads and downloads in progress
//! ([`Reserve::uploads`]); the others are looked at for operators ([`Reserve::look`]).
//!
//! # Guarantees
//! - A claim of `n` bytes is granted only if the disk's free space for unprivileged users
//!   (`f_bavail × f_frsize`, read by `fstatvfs` at the claim), less every claim granted on that
//!   disk and not yet released, less `n`, stays at or above `min_free_space`. A claim is
//!   released once its bytes are on the file, or will never be: every byte of every granted
//!   claim is counted at least once, in the free space or as still pending. So writes racing
//!   from many SFTP sessions, downloads and the archive cannot together take the disk under
//!   the reserve; only other programs, and difusor's own journal and logs, for which it is
//!   kept, can.
//! - A disk whose free space cannot be read refuses claims too ([`Short::Unread`]); with
//!   `min_free_space = 0` nothing is refused and nothing is read.
//! - The crossing is logged once each way, never once per write: a warning when a claim is
//!   first refused, or a look finds the disk under the reserve; a line when the claim last
//!   refused would fit again.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytesize::ByteSize;
use serde::Serialize;

/// The folders whose disks are looked at, as the configuration resolved them.
pub(crate) struct Folders<'a> {
    /// The data folder: the journal.
    pub(crate) data: &'a Path,
    /// The archive.
    pub(crate) archive: &'a Path,
    /// Uploads and downloads not yet handed over.
    pub(crate) uploads: &'a Path,
    /// The intake folder (`watch_dir`).
    pub(crate) intake: &'a Path,
    /// The access logs (`log_dir`).
    pub(crate) logs: &'a Path,
}

/// The reserve on every disk of the data folder's folders. Cheap to clone: one count per disk
/// for the whole process.
#[derive(Debug, Clone)]
pub(crate) struct Reserve {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    min_free: u64,
    disks: Vec<Disk>,
    /// Which disk holds the archive.
    archive: usize,
    /// Which disk holds the uploads in progress.
    uploads: usize,
}

/// One disk, as seen through the first of its folders.
#[derive(Debug)]
struct Disk {
    /// Its folders, in the order [`Folders`] names them.
    folders: Vec<PathBuf>,
    /// The first of them, open: looked at without a path lookup.
    dir: File,
    /// Bytes claimed and not yet released.
    pending: AtomicU64,
    /// While the reserve is reached: what the claim last refused needed (0 when a look found
    /// the disk under the reserve).
    short: Mutex<Option<u64>>,
}

/// Where received bytes of one kind go: the archive, or uploads in progress.
#[derive(Debug, Clone)]
pub(crate) struct Space {
    inner: Arc<Inner>,
    disk: usize,
}

/// Room granted for bytes about to be written; given back when dropped, which its holder
/// does once the bytes are on the file (or will never be).
#[derive(Debug)]
#[must_use = "the room is given back when the claim is dropped"]
pub(crate) struct Claim {
    inner: Arc<Inner>,
    disk: usize,
    bytes: u64,
}

/// Why received bytes were refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Short {
    /// Writing them would leave less than the reserve.
    #[error(
        "{wanted} more would leave less than the {min_free} kept free (min_free_space) on the \
         disk of {}: {free} are free, {pending} of them claimed by writes under way",
        .folder.display()
    )]
    Reserve {
        /// The disk's first folder.
        folder: PathBuf,
        /// What the write would add.
        wanted: ByteSize,
        /// Free for unprivileged users.
        free: ByteSize,
        /// Claimed by writes under way.
        pending: ByteSize,
        /// `min_free_space`.
        min_free: ByteSize,
    },
    /// The free space could not be read.
    #[error("cannot read the free space of the disk of {}: {source}", .folder.display())]
    Unread {
        /// The disk's first folder.
        folder: PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

/// Free space as operators see it (`/status` `free_space`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FreeSpace {
    /// `min_free_space`, in bytes.
    pub(crate) min_free_bytes: u64,
    /// Whether any disk is at its reserve: received bytes are being refused.
    pub(crate) reserve_reached: bool,
    /// Each disk.
    pub(crate) disks: Vec<DiskSpace>,
}

/// One disk's free space.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DiskSpace {
    /// The folders on it.
    pub(crate) folders: Vec<String>,
    /// Bytes free for unprivileged users; `null` when it cannot be read.
    pub(crate) free_bytes: Option<u64>,
    /// Bytes claimed by writes under way, not yet on the disk.
    pub(crate) pending_bytes: u64,
    /// Whether received bytes are refused there for the reserve.
    pub(crate) reserve_reached: bool,
    /// Why the free space cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl Reserve {
    /// Opens `folders` (each must exist) and keeps `min_free` bytes free on their disks.
    pub(crate) fn new(min_free: u64, folders: &Folders<'_>) -> io::Result<Self> {
        let named = [
            folders.data,
            folders.archive,
            folders.uploads,
            folders.intake,
            folders.logs,
        ];
        let mut disks: Vec<Disk> = Vec::new();
        let mut devices: Vec<u64> = Vec::new();
        let mut index = [0usize; 5];
        for (slot, folder) in index.iter_mut().zip(named) {
            let dir = File::open(folder).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot open {} to read its free space: {e}",
                        folder.display()
                    ),
                )
            })?;
            let device = dir.metadata()?.dev();
            *slot = match devices.iter().position(|d| *d == device) {
                Some(i) => {
                    if !disks[i].folders.iter().any(|f| f == folder) {
                        disks[i].folders.push(folder.to_owned());
                    }
                    i
                }
                None => {
                    devices.push(device);
                    disks.push(Disk {
                        folders: vec![folder.to_owned()],
                        dir,
                        pending: AtomicU64::new(0),
                        short: Mutex::new(None),
                    });
                    disks.len() - 1
                }
            };
        }
        Ok(Self {
            inner: Arc::new(Inner {
                min_free,
                disks,
                archive: index[1],
                uploads: index[2],
            }),
        })
    }

    /// Where the archive's copies are written.
    pub(crate) fn archive(&self) -> Space {
        Space {
            inner: self.inner.clone(),
            disk: self.inner.archive,
        }
    }

    /// Where uploads and downloads in progress are written.
    pub(crate) fn uploads(&self) -> Space {
        Space {
            inner: self.inner.clone(),
            disk: self.inner.uploads,
        }
    }

    /// Every disk's free space now: one `fstatvfs` each, which does not wait on a local disk.
    pub(crate) fn look(&self) -> FreeSpace {
        let min_free = self.inner.min_free;
        let disks: Vec<DiskSpace> = self
            .inner
            .disks
            .iter()
            .map(|disk| {
                let pending = disk.pending.load(Ordering::SeqCst);
                let free = disk.free();
                if let Ok(free) = free {
                    disk.seen(min_free, free.saturating_sub(pending));
                }
                DiskSpace {
                    folders: disk
                        .folders
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect(),
                    free_bytes: free.as_ref().ok().copied(),
                    pending_bytes: pending,
                    reserve_reached: disk.reached(),
                    error: free.err().map(|e| e.to_string()),
                }
            })
            .collect();
        FreeSpace {
            min_free_bytes: min_free,
            reserve_reached: disks.iter().any(|d| d.reserve_reached),
            disks,
        }
    }
}

impl Space {
    /// Room for `bytes` about to be written, if they leave the reserve whole (see the
    /// module's guarantees). One `fstatvfs`, about a microsecond; it does not wait on a
    /// local disk.
    pub(crate) fn claim(&self, bytes: u64) -> Result<Claim, Short> {
        let inner = &self.inner;
        let disk = &inner.disks[self.disk];
        // Counted before the look: a claim racing this one sees it, or is seen by it.
        let pending = disk.pending.fetch_add(bytes, Ordering::SeqCst);
        let claim = Claim {
            inner: inner.clone(),
            disk: self.disk,
            bytes,
        };
        if inner.min_free == 0 {
            return Ok(claim);
        }
        let free = disk.free().map_err(|source| Short::Unread {
            folder: disk.folders[0].clone(),
            source,
        })?;
        let room = free.saturating_sub(pending);
        if room < inner.min_free.saturating_add(bytes) {
            disk.refused(inner.min_free, free, bytes);
            return Err(Short::Reserve {
                folder: disk.folders[0].clone(),
                wanted: ByteSize::b(bytes),
                free: ByteSize::b(free),
                pending: ByteSize::b(pending),
                min_free: ByteSize::b(inner.min_free),
            });
        }
        disk.seen(inner.min_free, room);
        Ok(claim)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.inner.disks[self.disk]
            .pending
            .fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

impl Disk {
    /// Bytes free for unprivileged users.
    fn free(&self) -> io::Result<u64> {
        let s = rustix::fs::fstatvfs(&self.dir)?;
        Ok(s.f_bavail.saturating_mul(s.f_frsize))
    }

    fn short(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.short.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reached(&self) -> bool {
        self.short().is_some()
    }

    /// A claim of `wanted` was refused with `free` bytes free.
    fn refused(&self, min_free: u64, free: u64, wanted: u64) {
        let mut short = self.short();
        if short.is_none() {
            tracing::warn!(
                folders = ?self.folders, free = %ByteSize::b(free), min_free = %ByteSize::b(min_free),
                wanted = %ByteSize::b(wanted),
                "the disk is down to the space kept free (min_free_space): received packages \
                 are refused until space is freed"
            );
        }
        *short = Some(wanted);
    }

    /// `room` bytes are free beyond the writes under way: the reserve is reached if that is
    /// under it, and free again once the claim last refused would fit.
    fn seen(&self, min_free: u64, room: u64) {
        let mut short = self.short();
        match *short {
            None if room < min_free => {
                tracing::warn!(
                    folders = ?self.folders, free = %ByteSize::b(room), min_free = %ByteSize::b(min_free),
                    "the disk is down to the space kept free (min_free_space), by other writes \
                     than received packages: received packages are refused until space is freed"
                );
                *short = Some(0);
            }
            Some(wanted) if room >= min_free.saturating_add(wanted) => {
                tracing::info!(
                    folders = ?self.folders, free = %ByteSize::b(room), min_free = %ByteSize::b(min_free),
                    "the disk has room again beyond the space kept free (min_free_space): \
                     received packages are taken"
                );
                *short = None;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reserve of `min_free` with every folder at `dir` (created).
    pub(crate) fn reserve_at(dir: &Path, min_free: u64) -> Reserve {
        std::fs::create_dir_all(dir).unwrap();
        Reserve::new(
            min_free,
            &Folders {
                data: dir,
                archive: dir,
                uploads: dir,
                intake: dir,
                logs: dir,
            },
        )
        .unwrap()
    }

    #[test]
    fn claims_count_until_released_and_refuse_past_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let free = reserve_at(dir.path(), 0).look().disks[0]
            .free_bytes
            .unwrap();
        assert!(free > 4 << 20, "the test needs a few MiB free: {free}");
        // A reserve that leaves room for 2 MiB (less what others write meanwhile).
        let reserve = reserve_at(dir.path(), free - (2 << 20));
        let space = reserve.uploads();
        let first = space.claim(1 << 20).expect("1 MiB fits");
        let Err(Short::Reserve { pending, .. }) = space.claim(3 << 19) else {
            panic!("1.5 MiB more does not fit beside the first claim");
        };
        assert_eq!(pending, ByteSize::mib(1));
        let look = reserve.look();
        assert!(look.reserve_reached, "{look:?}");
        assert_eq!(look.disks[0].pending_bytes, 1 << 20);
        drop(first);
        let again = space
            .claim(3 << 19)
            .expect("fits once the first is released");
        assert_eq!(reserve.look().disks[0].pending_bytes, 3 << 19);
        assert!(!reserve.look().reserve_reached);
        drop(again);
        let Err(e) = space.claim(64 << 20) else {
            panic!("64 MiB past the reserve");
        };
        assert!(e.to_string().contains("min_free_space"), "{e}");
        assert_eq!(reserve.look().disks[0].pending_bytes, 0);
    }

    #[test]
    fn folders_on_one_disk_share_it_and_no_reserve_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = reserve_at(dir.path(), 0);
        assert_eq!(reserve.look().disks.len(), 1);
        let claim = reserve.archive().claim(u64::MAX / 2).expect("no reserve");
        assert_eq!(
            reserve.uploads().inner.disks[0]
                .pending
                .load(Ordering::SeqCst),
            u64::MAX / 2
        );
        drop(claim);
    }
}
