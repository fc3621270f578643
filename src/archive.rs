//! The archive: every package ever received, kept forever under its SHA-256 (R3.1).
//!
//! Layout: `<root>/<first two hex digits>/<sha256>` for the package and
//! `<sha256>.sha256` / `<sha256>.minisig` beside it for its evidence.
//!
//! # Guarantees
//! - A file appears under its final name only whole: it is written to a temporary name in
//!   `<root>/tmp`, fsynced, renamed into place, and the directory is fsynced, before
//!   [`Archive::store_file`] returns. A crash at any point leaves either nothing or the whole
//!   file under its name.
//! - The name is the SHA-256 of the bytes, computed while copying; storing the same bytes
//!   twice keeps one copy.
//! - Nothing here deletes or overwrites an archived file.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::hash::Sha256;

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
        /// Bytes read before stopping.
        size: u64,
        /// The limit.
        limit: u64,
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

/// Content-addressed, fsynced storage under one folder.
#[derive(Debug, Clone)]
pub(crate) struct Archive {
    root: PathBuf,
}

impl Archive {
    /// Opens (creating if needed) the archive under `root`.
    pub(crate) fn open(root: &Path) -> Result<Self, ArchiveError> {
        fs::create_dir_all(root.join("tmp")).map_err(io_err("create", root))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Removes copies a crash left unfinished in `<root>/tmp`: only this module writes
    /// there, and a file reaches the archive only by a rename out of it, so nothing there was
    /// ever stored. Only the server calls this, at start, before anything is received.
    pub(crate) fn clear_unfinished(&self) -> Result<(), ArchiveError> {
        clear_unfinished(&self.root.join("tmp"))
    }

    /// Where the package with `sha256` is (or would be) stored.
    pub(crate) fn path_of(&self, sha256: Sha256) -> PathBuf {
        let hex = sha256.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Where evidence of kind `ext` (`sha256`, `minisig`) of a package is stored.
    pub(crate) fn evidence_path(&self, sha256: Sha256, ext: &str) -> PathBuf {
        let mut p = self.path_of(sha256).into_os_string();
        p.push(".");
        p.push(ext);
        PathBuf::from(p)
    }

    /// Copies `src` into the archive, hashing while copying, and returns where it is.
    /// Refuses, storing nothing, a file over `limit` bytes.
    pub(crate) fn store_file(&self, src: &Path, limit: u64) -> Result<Stored, ArchiveError> {
        // The source may lie in the intake folder: never through a link, never a FIFO.
        let input = crate::intake::open_regular(src).map_err(io_err("open", src))?;
        let tmp_dir = self.root.join("tmp");
        let mut tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("create", &tmp_dir))?;
        let (sha256, size) = {
            let mut hashing = HashingWriter::new(tmp.as_file_mut());
            let copied = io::copy(&mut input.take(limit.saturating_add(1)), &mut hashing)
                .map_err(io_err("copy", src))?;
            if copied > limit {
                return Err(ArchiveError::TooLarge {
                    size: copied,
                    limit,
                });
            }
            hashing.finish()
        };
        let path = self.path_of(sha256);
        if path.exists() {
            return Ok(Stored { sha256, size, path });
        }
        self.persist(tmp, &path)?;
        Ok(Stored { sha256, size, path })
    }

    /// Stores small evidence bytes next to package `sha256` (write-once: an existing file is kept).
    pub(crate) fn store_evidence(
        &self,
        sha256: Sha256,
        ext: &str,
        bytes: &[u8],
    ) -> Result<(), ArchiveError> {
        let path = self.evidence_path(sha256, ext);
        if path.exists() {
            return Ok(());
        }
        let tmp_dir = self.root.join("tmp");
        let mut tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err("create", &tmp_dir))?;
        tmp.write_all(bytes).map_err(io_err("write", &path))?;
        self.persist(tmp, &path)
    }

    /// Reads evidence of kind `ext` of package `sha256`, if stored.
    pub(crate) fn read_evidence(&self, sha256: Sha256, ext: &str) -> Option<String> {
        fs::read_to_string(self.evidence_path(sha256, ext)).ok()
    }

    /// Checks that the archived package still hashes to its name.
    pub(crate) fn check(&self, sha256: Sha256) -> Result<Stored, ArchiveError> {
        let path = self.path_of(sha256);
        let file = File::open(&path).map_err(io_err("open", &path))?;
        let (actual, size) = Sha256::of_reader(file).map_err(io_err("read", &path))?;
        if actual != sha256 {
            return Err(ArchiveError::Damaged { path, actual });
        }
        Ok(Stored { sha256, size, path })
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

    #[test]
    fn stores_under_the_digest_once_and_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(&dir.path().join("archivo")).unwrap();
        let src = dir.path().join("p.zip");
        fs::write(&src, b"package bytes").unwrap();
        let a = archive.store_file(&src, 1000).unwrap();
        let b = archive.store_file(&src, 1000).unwrap();
        assert_eq!(a.sha256, Sha256::of(b"package bytes"));
        assert_eq!(a.path, b.path);
        assert_eq!(fs::read(&a.path).unwrap(), b"package bytes");
        assert_eq!(archive.check(a.sha256).unwrap().size, 13);
        // Nothing is left behind in tmp.
        assert_eq!(
            fs::read_dir(dir.path().join("archivo/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn refuses_files_over_the_limit_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(&dir.path().join("archivo")).unwrap();
        let src = dir.path().join("big");
        fs::write(&src, vec![0u8; 100]).unwrap();
        assert!(matches!(
            archive.store_file(&src, 99),
            Err(ArchiveError::TooLarge { .. })
        ));
        assert!(!archive.path_of(Sha256::of(&[0u8; 100])).exists());
    }

    #[test]
    fn damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(dir.path()).unwrap();
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
