//! The archive: every package received, under its SHA-256 (R3.1): the ones that verified
//! forever, the rejected ones apart and for a configured time.
//!
//! Layout, each package with `<sha256>.sha256` / `<sha256>.minisig` beside it for its
//! evidence:
//! - `<root>/pendientes/<sha256>`: received, not yet verified ([`Archive::store_file`]);
//! - `<root>/<first two hex digits>/<sha256>`: verified ([`Archive::accept`]), kept forever;
//! - `<root>/rechazados/<sha256>`: rejected or set aside ([`Archive::reject`]), removed by
//!   [`Archive::expire_rejected`] once older than the retention the server is given.
//!
//! # Guarantees
//! - A file appears under its final name only whole: it is written to a temporary name in
//!   `<root>/tmp`, fsynced, renamed into place, and the directory is fsynced, before
//!   [`Archive::store_file`] returns; a file the SFTP intake wrote and hashed is fsynced and
//!   linked into place, and the directory fsynced, before [`Archive::adopt_file`] returns. A crash at any point leaves either nothing or the whole
//!   file under its name. Moves between the folders are renames, each followed by an fsync
//!   of both folders; evidence moves before its package.
//! - The name is the SHA-256 of the bytes, computed while copying (or, for
//!   [`Archive::adopt_file`], by the writer that wrote every byte, in order); storing the same
//!   bytes twice keeps one copy.
//! - A copy ([`Archive::store_file`]) claims its whole size from the space kept free on the
//!   disk (`min_free_space`, [`crate::store::space`]) before anything is written, and a
//!   source that grows meanwhile is not taken: a copy that would leave less than the reserve
//!   is refused ([`ArchiveError::Short`]), nothing stored, and the journal and the logs keep
//!   their room. A file linked into place ([`Archive::adopt_file`]) takes no new space: its
//!   room was claimed while it was written (across disks it is copied, and claims as above).
//! - `<root>/<aa>/` holds only packages that verified, and nothing there is ever deleted or
//!   overwritten: the live site is rebuilt from it alone.
//! - The evidence beside a verified package is the evidence it was verified with, or none if
//!   it verified without: evidence is written only beside a copy not yet verified, always the
//!   evidence of the delivery being taken (an earlier delivery's is replaced, or removed when
//!   this one has none of that kind), and it moves with that copy. A rejected delivery's
//!   evidence stays with the rejected copy (the last rejected delivery's, when the same bytes
//!   were rejected more than once) and never joins a verified package. Evidence that comes
//!   with bytes that verified before (a duplicate, a held package sent again) is not written
//!   beside them: the publisher checks it and journals it (`evidence-late` when it matches,
//!   on the `duplicate` entry or in a warning otherwise).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::hash::{Hashed, Sha256};
use crate::intake::{evidence_path, open_regular};
use crate::package::{EVIDENCE_EXTENSIONS, EvidenceFile};
use crate::site::ArchivedFile;
use crate::store::space::{Short, Space};

/// Packages received and not yet verified.
const PENDING: &str = "pendientes";
/// Rejected or set-aside packages.
const REJECTED: &str = "rechazados";
/// Copies being written.
const TMP: &str = "tmp";

/// Errors of the archive: always this machine's fault (disk full, permissions).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArchiveError {
    /// A file system operation failed.
    #[error("archive {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The source file is larger than allowed; nothing was stored.
    #[error("the file is {size} bytes, over the limit of {limit} bytes (max_package_bytes)")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A copy would leave less free space than `min_free_space`; nothing was stored.
    #[error(transparent)]
    Short(#[from] Short),
    /// The source grew while it was being copied: it was not complete yet.
    #[error("{} grew while it was being copied into the archive; it is taken once it stays as it is", .path.display())]
    Grew {
        /// The source.
        path: PathBuf,
    },
    /// An archived file no longer has the digest it is stored under.
    #[error("archived file {path} is damaged: its SHA-256 is now {actual}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What it hashes to now.
        actual: Sha256,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ArchiveError + 'a {
    move |source| ArchiveError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A stored package: its digest, size and where it lives.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// SHA-256 of the bytes.
    pub(crate) sha256: Sha256,
    /// Size in bytes.
    pub(crate) size: u64,
    /// The archived file.
    pub(crate) path: PathBuf,
}

/// A rejected package removed once its retention ran out.
#[derive(Debug, Clone)]
pub(crate) struct Expired {
    /// Its digest.
    pub(crate) sha256: Sha256,
    /// How long it had been kept, from when it was received.
    pub(crate) age: std::time::Duration,
}

/// Content-addressed, fsynced storage under one folder.
#[derive(Debug, Clone)]
pub(crate) struct Archive {
    root: PathBuf,
    /// The free space its copies leave on the disk.
    space: Space,
}

impl Archive {
    /// Opens (creating if needed) the archive under `root`, whose copies claim their room
    /// from `space`.
    pub(crate) fn open(root: &Path, space: Space) -> Result<Self, ArchiveError> {
        for dir in [TMP, PENDING, REJECTED] {
            fs::create_dir_all(root.join(dir)).map_err(io_err("create", root))?;
        }
        Ok(Self {
            root: root.to_owned(),
            space,
        })
    }

    /// Removes copies a crash left unfinished in `<root>/tmp`: only this module writes
    /// there, and a file reaches the archive only by a rename out of it, so nothing there was
    /// ever stored. Only the server calls this, at start, before anything is received.
    pub(crate) fn clear_unfinished(&self) -> Result<(), ArchiveError> {
        clear_unfinished(&self.root.join(TMP))
    }

    /// Where the verified package with `sha256` is (or would be) kept.
    pub(crate) fn path_of(&self, sha256: Sha256) -> PathBuf {
        let hex = sha256.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Where a package not yet verified is kept.
    fn pending_path(&self, sha256: Sha256) -> PathBuf {
        self.root.join(PENDING).join(sha256.to_hex())
    }

    /// Where a rejected package is kept.
    pub(crate) fn rejected_path(&self, sha256: Sha256) -> PathBuf {
        self.root.join(REJECTED).join(sha256.to_hex())
    }

    /// Where the package with `sha256` is now: verified, pending or rejected, in that order.
    pub(crate) fn locate(&self, sha256: Sha256) -> Option<PathBuf> {
        [
            self.path_of(sha256),
            self.pending_path(sha256),
            self.rejected_path(sha256),
        ]
        .into_iter()
        .find(|p| p.is_file())
    }

    /// The packages received and not yet verified or rejected: what a crash interrupted.
    pub(crate) fn pending(&self) -> Result<Vec<Sha256>, ArchiveError> {
        let mut found = Vec::new();
        digests_in(&self.root.join(PENDING), &mut found)?;
        Ok(found)
    }

    /// The packages kept among the verified ones (`<root>/<aa>/`), found by their names
    /// alone: one listing of the root and of each two-digit folder, no file opened or hashed.
    pub(crate) fn verified(&self) -> Result<Vec<Sha256>, ArchiveError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.root)
            .map_err(io_err("list", &self.root))?
            .flatten()
        {
            let name = entry.file_name();
            let is_prefix = name
                .to_str()
                .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()));
            if is_prefix {
                digests_in(&entry.path(), &mut found)?;
            }
        }
        Ok(found)
    }

    /// Copies `src` into the archive, hashing while copying, and returns where it is: the
    /// verified copy if those bytes verified before, else a pending copy until
    /// [`Archive::accept`] or [`Archive::reject`]. Refuses, storing nothing, a file over
    /// `limit` bytes.
    pub(crate) fn store_file(&self, src: &Path, limit: u64) -> Result<Stored, ArchiveError> {
        // The source may lie in the intake folder: never through a link, never a FIFO.
        let input = crate::intake::open_regular(src).map_err(io_err("open", src))?;
        let len = input.metadata().map_err(io_err("open", src))?.len();
        if len > limit {
            return Err(ArchiveError::TooLarge { size: len, limit });
        }
        // Its room on the disk, claimed whole before anything is written; given back once
        // the copy is on the disk, or was removed.
        let _room = self.space.claim(len)?;
        let tmp_dir = self.root.join(TMP);
        let mut tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("create", &tmp_dir))?;
        let (sha256, size) = {
            let mut hashing = HashingWriter::new(tmp.as_file_mut());
            let copied = io::copy(&mut input.take(len.saturating_add(1)), &mut hashing)
                .map_err(io_err("copy", src))?;
            if copied > len {
                return Err(ArchiveError::Grew {
                    path: src.to_owned(),
                });
            }
            hashing.finish()
        };
        if let Some(verified) = self.verified_copy(sha256, size) {
            return Ok(verified);
        }
        let path = self.pending_path(sha256);
        self.persist(tmp, &path)?;
        Ok(Stored { sha256, size, path })
    }

    /// Takes `src`, a file this program wrote into its data folder and hashed while writing
    /// it (`hashed`), into the archive without reading it again: fsynced, then linked under
    /// its pending name (or not at all when those bytes verified before), the folder fsynced.
    /// Where a link cannot be made (the archive on another file system), it is copied and
    /// hashed like [`Archive::store_file`]. Refuses, storing nothing, a file over `limit`.
    ///
    /// The caller vouches for `hashed`: only a writer that saw every byte of `src` go in, in
    /// order, may give it (the SFTP intake's upload writer, the pull's download).
    pub(crate) fn adopt_file(
        &self,
        src: &Path,
        hashed: Hashed,
        limit: u64,
    ) -> Result<Stored, ArchiveError> {
        let Hashed { sha256, size } = hashed;
        if size > limit {
            return Err(ArchiveError::TooLarge { size, limit });
        }
        if let Some(verified) = self.verified_copy(sha256, size) {
            return Ok(verified);
        }
        crate::intake::open_regular(src)
            .and_then(|file| file.sync_all())
            .map_err(io_err("fsync", src))?;
        let path = self.pending_path(sha256);
        match fs::hard_link(src, &path) {
            Ok(()) => {}
            // The same bytes, pending since an earlier attempt.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot link an upload into the archive; copying it");
                return self.store_file(src, limit);
            }
        }
        sync_dir(path.parent().unwrap_or(&self.root))?;
        Ok(Stored { sha256, size, path })
    }

    /// The copy kept forever of bytes with `sha256`, if they verified before.
    fn verified_copy(&self, sha256: Sha256, size: u64) -> Option<Stored> {
        let path = self.path_of(sha256);
        path.exists().then_some(Stored { sha256, size, path })
    }

    /// Keeps a delivery's evidence of kind `ext` beside its stored package: `bytes` as sent,
    /// written whole (temporary file, fsync, rename) over what an earlier delivery of the same
    /// bytes left there, or, when this delivery has none (`None`), none: what is beside a
    /// copy not yet verified is always the evidence of the delivery being taken, so that it is
    /// what the package is verified with and what moves with it. A copy that verified before
    /// is left as it is, with the evidence it was verified with.
    pub(crate) fn store_evidence(
        &self,
        stored: &Stored,
        ext: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(), ArchiveError> {
        if stored.path == self.path_of(stored.sha256) {
            return Ok(());
        }
        let path = evidence_path(&stored.path, ext);
        let Some(bytes) = bytes else {
            if path.exists() {
                remove_if_present(&path)?;
                sync_dir(path.parent().unwrap_or(&self.root))?;
            }
            return Ok(());
        };
        let tmp_dir = self.root.join(TMP);
        let mut tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("create", &tmp_dir))?;
        tmp.write_all(bytes).map_err(io_err("write", &path))?;
        self.persist(tmp, &path)
    }

    /// Reads evidence of kind `ext` stored beside the package at `package`, if any, as it
    /// was sent; `None` too when it cannot be read.
    pub(crate) fn read_evidence(&self, package: &Path, ext: &str) -> Option<EvidenceFile> {
        crate::intake::read_evidence(&evidence_path(package, ext))
            .ok()
            .flatten()
    }

    /// Moves a package that verified, with its evidence, to where verified packages are kept
    /// forever; returns that place. The copy moved is the one just verified: the pending copy
    /// of the delivery being taken, else (a package published by an operator from the
    /// rejected ones) the rejected copy. A rejected copy of the same bytes stays with the
    /// rejected packages, with its own evidence, until its retention runs out. A package
    /// already there stays as it is, with its evidence; a pending copy of it is dropped.
    pub(crate) fn accept(&self, sha256: Sha256) -> Result<PathBuf, ArchiveError> {
        let dest = self.path_of(sha256);
        let pending = self.pending_path(sha256);
        if dest.is_file() {
            if pending.is_file() {
                self.remove_package(&pending)?;
            }
            return Ok(dest);
        }
        let from = if pending.is_file() {
            pending
        } else {
            self.rejected_path(sha256)
        };
        if from.is_file() {
            self.move_package(&from, &dest)?;
        }
        Ok(dest)
    }

    /// Moves a package not yet verified, with its evidence, to the rejected packages; returns
    /// where it is kept. A rejected copy of the same bytes already there is replaced, with its
    /// evidence, by this one: the rejected copy and its evidence are those of the last
    /// rejected delivery. A package that verified before stays where it is: it may be live.
    pub(crate) fn reject(&self, sha256: Sha256) -> Result<PathBuf, ArchiveError> {
        let from = self.pending_path(sha256);
        let dest = self.rejected_path(sha256);
        if from.is_file() {
            self.move_package(&from, &dest)?;
        }
        Ok(self.locate(sha256).unwrap_or(dest))
    }

    /// Removes the rejected packages (and their evidence) received longer than `retention`
    /// before `now`, and says which.
    pub(crate) fn expire_rejected(
        &self,
        retention: std::time::Duration,
        now: std::time::SystemTime,
    ) -> Result<Vec<Expired>, ArchiveError> {
        let dir = self.root.join(REJECTED);
        let mut expired = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))?.flatten() {
            let Some(sha256) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let path = entry.path();
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok());
            let Some(age) = age.filter(|age| *age > retention) else {
                continue;
            };
            for ext in EVIDENCE_EXTENSIONS {
                remove_if_present(&evidence_path(&path, ext))?;
            }
            remove_if_present(&path)?;
            expired.push(Expired { sha256, age });
        }
        if !expired.is_empty() {
            sync_dir(&dir)?;
        }
        Ok(expired)
    }

    /// Checks that the archived package, wherever it is kept, still hashes to its name. It
    /// is opened as a regular file only, never through a link: a link, FIFO or device put in
    /// its place is an error, not read (a FIFO or `/dev/zero` would never end).
    pub(crate) fn check(&self, sha256: Sha256) -> Result<Stored, ArchiveError> {
        let path = self.locate(sha256).unwrap_or_else(|| self.path_of(sha256));
        let file = open_regular(&path).map_err(io_err("open", &path))?;
        let (actual, size) = Sha256::of_reader(file).map_err(io_err("read", &path))?;
        if actual != sha256 {
            return Err(ArchiveError::Damaged { path, actual });
        }
        Ok(Stored { sha256, size, path })
    }

    /// The archived package with `sha256`, wherever it is kept now, as the site serves it
    /// from where verified packages are kept: that place and the file's modification time
    /// (kept by the renames between the archive's folders), read from a regular file only.
    pub(crate) fn archived_file(&self, sha256: Sha256) -> Result<ArchivedFile, ArchiveError> {
        let path = self.locate(sha256).unwrap_or_else(|| self.path_of(sha256));
        let modified = open_regular(&path)
            .and_then(|f| f.metadata())
            .and_then(|m| m.modified())
            .map_err(io_err("open", &path))?;
        Ok(ArchivedFile {
            path: self.path_of(sha256),
            modified,
        })
    }

    /// Moves evidence of kind `ext` kept beside the verified package `sha256`, which it was
    /// never verified with (a rejected delivery's, left there by an earlier version), to the
    /// rejected packages: beside the rejected copy of the same bytes, made by a link to the
    /// verified one when there is none, so that it is kept, and removed, as a rejected
    /// delivery's. Where that copy has evidence of its own of that kind, that is kept and the
    /// stray file removed. Returns where the rejected copy is.
    pub(crate) fn set_aside_evidence(
        &self,
        sha256: Sha256,
        ext: &str,
    ) -> Result<PathBuf, ArchiveError> {
        let verified = self.path_of(sha256);
        let stray = evidence_path(&verified, ext);
        let rejected = self.rejected_path(sha256);
        if !rejected.is_file() {
            fs::hard_link(&verified, &rejected).map_err(io_err("link", &rejected))?;
        }
        let to = evidence_path(&rejected, ext);
        if to.exists() {
            remove_if_present(&stray)?;
        } else {
            fs::rename(&stray, &to).map_err(io_err("rename into", &to))?;
        }
        sync_dir(rejected.parent().unwrap_or(&self.root))?;
        sync_dir(verified.parent().unwrap_or(&self.root))?;
        Ok(rejected)
    }

    /// Renames a package and its evidence (evidence first) to `dest`, fsyncing both folders.
    /// A package already at `dest` (an earlier rejected copy of the same bytes) is removed
    /// first, with its evidence, so that what is beside `dest` afterwards is the moved copy's
    /// evidence only. Evidence at `dest` without a package there is what a move interrupted
    /// by a crash brought; it is kept unless the moved copy has its own of that kind.
    fn move_package(&self, from: &Path, dest: &Path) -> Result<(), ArchiveError> {
        let dest_dir = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(dest_dir).map_err(io_err("create", dest_dir))?;
        if dest.is_file() {
            self.remove_package(dest)?;
        }
        for ext in EVIDENCE_EXTENSIONS {
            let (src, to) = (evidence_path(from, ext), evidence_path(dest, ext));
            if src.is_file() {
                fs::rename(&src, &to).map_err(io_err("rename into", &to))?;
            }
        }
        fs::rename(from, dest).map_err(io_err("rename into", dest))?;
        sync_dir(dest_dir)?;
        sync_dir(from.parent().unwrap_or(&self.root))
    }

    /// Removes a package and its evidence (evidence first), fsyncing its folder.
    fn remove_package(&self, path: &Path) -> Result<(), ArchiveError> {
        for ext in EVIDENCE_EXTENSIONS {
            remove_if_present(&evidence_path(path, ext))?;
        }
        remove_if_present(path)?;
        sync_dir(path.parent().unwrap_or(&self.root))
    }

    /// fsync the temporary file, rename it to `dest`, fsync the directory.
    fn persist(&self, tmp: tempfile::NamedTempFile, dest: &Path) -> Result<(), ArchiveError> {
        tmp.as_file().sync_all().map_err(io_err("fsync", dest))?;
        let dir = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        tmp.persist(dest)
            .map_err(|e| e.error)
            .map_err(io_err("rename into", dest))?;
        sync_dir(dir)
    }
}

/// Adds to `found` every package kept in `dir`, by its name (a SHA-256 in hex); other names
/// (evidence, anything else) are passed over.
fn digests_in(dir: &Path, found: &mut Vec<Sha256>) -> Result<(), ArchiveError> {
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))?.flatten() {
        if let Some(sha) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            found.push(sha);
        }
    }
    Ok(())
}

/// Removes a file; one already gone is fine.
fn remove_if_present(path: &Path) -> Result<(), ArchiveError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Removes the files in a folder of unfinished writes, saying how many there were.
pub(crate) fn clear_unfinished(dir: &Path) -> Result<(), ArchiveError> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            fs::remove_file(entry.path()).map_err(io_err("remove", &entry.path()))?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "removed copies left unfinished by a crash");
    }
    Ok(())
}

/// fsync a directory so that a rename inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        use sha2::Digest as _;
        Self {
            inner,
            hasher: sha2::Sha256::new(),
            written: 0,
        }
    }

    fn finish(self) -> (Sha256, u64) {
        use sha2::Digest as _;
        let digest: [u8; 32] = self.hasher.finalize().into();
        (Sha256::from_bytes(digest), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The archive under `root`, with no space kept free.
    fn open(root: &Path) -> Archive {
        let reserve = crate::store::space::tests::reserve_at(root, 0);
        Archive::open(root, reserve.archive()).unwrap()
    }

    #[test]
    fn stores_under_the_digest_once_and_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let archive = open(&dir.path().join("archivo"));
        let src = dir.path().join("p.zip");
        fs::write(&src, b"package bytes").unwrap();
        let a = archive.store_file(&src, 1000).unwrap();
        let b = archive.store_file(&src, 1000).unwrap();
        assert_eq!(a.sha256, Sha256::of(b"package bytes"));
        assert_eq!(a.path, b.path);
        assert!(a.path.starts_with(dir.path().join("archivo/pendientes")));
        assert_eq!(fs::read(&a.path).unwrap(), b"package bytes");
        assert_eq!(archive.check(a.sha256).unwrap().size, 13);
        assert_eq!(archive.pending().unwrap(), [a.sha256]);
        archive
            .store_evidence(&a, "sha256", Some(&b"digest"[..]))
            .unwrap();
        assert_eq!(archive.accept(a.sha256).unwrap(), archive.path_of(a.sha256));
        assert_eq!(
            archive.read_evidence(&archive.path_of(a.sha256), "sha256"),
            Some(EvidenceFile::Sent(b"digest".to_vec()))
        );
        assert!(archive.pending().unwrap().is_empty());
        // Once verified, the same bytes are found there and not stored again.
        let c = archive.store_file(&src, 1000).unwrap();
        assert_eq!(c.path, archive.path_of(a.sha256));
        assert!(archive.pending().unwrap().is_empty());
        // Nothing is left behind in tmp.
        assert_eq!(
            fs::read_dir(dir.path().join("archivo/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    /// A file written and hashed elsewhere in the data folder.
    fn written(dir: &Path, bytes: &[u8]) -> (PathBuf, Hashed) {
        let src = dir.join("upload");
        fs::write(&src, bytes).unwrap();
        let hashed = Hashed {
            sha256: Sha256::of(bytes),
            size: bytes.len() as u64,
        };
        (src, hashed)
    }

    #[test]
    fn adopts_a_hashed_file_without_copying_it_and_once() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let archive = open(&dir.path().join("archivo"));
        let (src, hashed) = written(dir.path(), b"package bytes");
        let a = archive.adopt_file(&src, hashed, 1000).unwrap();
        assert_eq!((a.sha256, a.size), (hashed.sha256, 13));
        assert_eq!(a.path, archive.pending_path(hashed.sha256));
        // The same file, linked: not a copy.
        assert_eq!(
            fs::metadata(&a.path).unwrap().ino(),
            fs::metadata(&src).unwrap().ino()
        );
        assert_eq!(archive.check(a.sha256).unwrap().path, a.path);
        // Again while pending: the pending copy stays.
        assert_eq!(archive.adopt_file(&src, hashed, 1000).unwrap().path, a.path);
        fs::remove_file(&src).unwrap();
        assert_eq!(fs::read(&a.path).unwrap(), b"package bytes");
        // Once verified, the same bytes are found there and nothing is stored again.
        archive.accept(a.sha256).unwrap();
        let (src, hashed) = written(dir.path(), b"package bytes");
        let b = archive.adopt_file(&src, hashed, 1000).unwrap();
        assert_eq!(b.path, archive.path_of(hashed.sha256));
        assert!(archive.pending().unwrap().is_empty());
        // Over the limit: refused, nothing stored.
        let (src, hashed) = written(dir.path(), &[7u8; 100]);
        assert!(matches!(
            archive.adopt_file(&src, hashed, 99),
            Err(ArchiveError::TooLarge { size: 100, .. })
        ));
        assert!(archive.locate(hashed.sha256).is_none());
    }

    /// With the archive on another file system than the upload, no link can be made: the file
    /// is copied, and hashed again on the way.
    #[test]
    fn adopts_from_another_file_system_by_copying() {
        use std::os::unix::fs::MetadataExt as _;
        let shm = Path::new("/dev/shm");
        let dir = tempfile::tempdir().unwrap();
        if !shm.is_dir()
            || fs::metadata(shm).unwrap().dev() == fs::metadata(dir.path()).unwrap().dev()
        {
            eprintln!("skipped: no second file system at /dev/shm");
            return;
        }
        let other = tempfile::tempdir_in(shm).unwrap();
        let archive = open(&dir.path().join("archivo"));
        let (src, hashed) = written(other.path(), b"package bytes");
        let a = archive.adopt_file(&src, hashed, 1000).unwrap();
        assert_eq!(a.sha256, hashed.sha256);
        assert_eq!(fs::read(&a.path).unwrap(), b"package bytes");
        assert_ne!(
            fs::metadata(&a.path).unwrap().ino(),
            fs::metadata(&src).unwrap().ino()
        );
    }

    #[test]
    fn refuses_files_over_the_limit_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let archive = open(&dir.path().join("archivo"));
        let src = dir.path().join("big");
        fs::write(&src, vec![0u8; 100]).unwrap();
        assert!(matches!(
            archive.store_file(&src, 99),
            Err(ArchiveError::TooLarge { .. })
        ));
        assert!(!archive.path_of(Sha256::of(&[0u8; 100])).exists());
    }

    #[test]
    fn rejected_packages_are_kept_apart_until_their_retention_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let archive = open(&dir.path().join("archivo"));
        let src = dir.path().join("p.zip");
        fs::write(&src, b"not a package").unwrap();
        let stored = archive.store_file(&src, 1000).unwrap();
        archive
            .store_evidence(&stored, "minisig", Some(&b"sig"[..]))
            .unwrap();
        let kept = archive.reject(stored.sha256).unwrap();
        assert_eq!(
            kept,
            dir.path()
                .join("archivo/rechazados")
                .join(stored.sha256.to_hex())
        );
        assert!(kept.is_file() && archive.read_evidence(&kept, "minisig").is_some());
        assert!(!archive.path_of(stored.sha256).exists());
        let hour = std::time::Duration::from_secs(3600);
        let now = std::time::SystemTime::now();
        assert!(archive.expire_rejected(hour, now).unwrap().is_empty());
        let expired = archive.expire_rejected(hour, now + 2 * hour).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].sha256, stored.sha256);
        assert!(expired[0].age > hour);
        assert!(archive.locate(stored.sha256).is_none());
        assert_eq!(
            fs::read_dir(dir.path().join("archivo/rechazados"))
                .unwrap()
                .count(),
            0,
            "its evidence went with it"
        );
    }

    /// The same bytes rejected for their evidence, then sent again without it: the verified
    /// copy keeps none, the rejected copy keeps the rejected delivery's.
    #[test]
    fn a_verified_copy_keeps_only_the_evidence_it_was_verified_with() {
        let dir = tempfile::tempdir().unwrap();
        let archive = open(&dir.path().join("archivo"));
        let src = dir.path().join("p.zip");
        fs::write(&src, b"package bytes").unwrap();
        let first = archive.store_file(&src, 1000).unwrap();
        archive
            .store_evidence(&first, "sha256", Some(&b"stale"[..]))
            .unwrap();
        let rejected = archive.reject(first.sha256).unwrap();
        // Rejected again, with other evidence: the rejected copy is the last delivery's.
        let again = archive.store_file(&src, 1000).unwrap();
        archive
            .store_evidence(&again, "sha256", Some(&b"wrong"[..]))
            .unwrap();
        archive.reject(again.sha256).unwrap();
        assert_eq!(
            archive.read_evidence(&rejected, "sha256"),
            Some(EvidenceFile::Sent(b"wrong".to_vec()))
        );
        // Sent again without a sidecar, and verified: nothing joins the verified copy.
        let last = archive.store_file(&src, 1000).unwrap();
        assert_eq!(last.path, archive.pending_path(last.sha256));
        archive.store_evidence(&last, "sha256", None).unwrap();
        let verified = archive.accept(last.sha256).unwrap();
        assert!(verified.is_file() && !archive.pending_path(last.sha256).exists());
        assert_eq!(archive.read_evidence(&verified, "sha256"), None);
        assert_eq!(
            archive.read_evidence(&rejected, "sha256"),
            Some(EvidenceFile::Sent(b"wrong".to_vec()))
        );
        // A delivery of bytes already verified changes none of its evidence.
        let dup = archive.store_file(&src, 1000).unwrap();
        assert_eq!(dup.path, verified);
        archive
            .store_evidence(&dup, "sha256", Some(&b"other"[..]))
            .unwrap();
        assert_eq!(archive.read_evidence(&verified, "sha256"), None);
    }

    /// Evidence an earlier version left beside a verified package is moved beside a rejected
    /// copy made for it.
    #[test]
    fn stray_evidence_is_set_aside_beside_a_rejected_copy() {
        let dir = tempfile::tempdir().unwrap();
        let archive = open(&dir.path().join("archivo"));
        let src = dir.path().join("p.zip");
        fs::write(&src, b"package bytes").unwrap();
        let stored = archive.store_file(&src, 1000).unwrap();
        let verified = archive.accept(stored.sha256).unwrap();
        fs::write(evidence_path(&verified, "minisig"), b"stray").unwrap();
        let kept = archive
            .set_aside_evidence(stored.sha256, "minisig")
            .unwrap();
        assert_eq!(kept, archive.rejected_path(stored.sha256));
        assert_eq!(fs::read(&kept).unwrap(), b"package bytes");
        assert_eq!(
            archive.read_evidence(&kept, "minisig"),
            Some(EvidenceFile::Sent(b"stray".to_vec()))
        );
        assert_eq!(archive.read_evidence(&verified, "minisig"), None);
        assert_eq!(archive.check(stored.sha256).unwrap().path, verified);
    }

    #[test]
    fn damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let archive = open(dir.path());
        let src = dir.path().join("p");
        fs::write(&src, b"abc").unwrap();
        let stored = archive.store_file(&src, 10).unwrap();
        fs::write(&stored.path, b"abd").unwrap();
        assert!(matches!(
            archive.check(stored.sha256),
            Err(ArchiveError::Damaged { .. })
        ));
    }
}
