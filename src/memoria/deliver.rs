//! Writes the memoria's folder: the report, its data, the period's access logs and the
//! checksums over all of it (R6.2, R6.6).
//!
//! # Guarantees
//! - The folder appears whole or not at all: everything is written into a hidden temporary
//!   folder beside it (`.memoria-…`), which is renamed to the asked name once complete; a
//!   failure leaves nothing behind. The asked folder must not exist or be empty: a report
//!   never mixes with files already there. A symbolic link is refused before anything is
//!   read.
//! - Every file is written to a temporary name, fsynced and renamed; the folders are fsynced.
//! - `bitacoras/` holds each access log of the period with the bytes the server wrote: a
//!   rotated `.gz` is copied as it is, a plain log is gzipped (no name, no time in the gzip
//!   header, so the same log gives the same bytes). Each is copied from the descriptor the
//!   report reads it through, opened when it was listed, to the size the report read it to:
//!   a log the server is still writing, or rotated meanwhile, is copied as the file its
//!   figures and its hash are of.
//! - `SHA256SUMS` (the `sha256sum` format) lists every other file of the folder, sorted.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::model::Memoria;
use super::render::{self, Pdf};
use super::scan::Input;

/// A report folder being written.
pub(crate) struct Folder {
    /// Where it is written.
    tmp: tempfile::TempDir,
    /// The name it gets when complete.
    out: PathBuf,
}

impl Folder {
    /// Checks that `out` is free and starts writing beside it.
    pub(crate) fn create(out: &Path) -> Result<Self> {
        // The folder is given its name by a rename at the end, which cannot put it where a
        // link points: a link is refused now, not after the whole report was made.
        if std::fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!(
                "{} is a symbolic link; give --out the path of a new folder itself",
                out.display()
            );
        }
        if out.exists() {
            let mut entries =
                std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))?;
            if entries.next().is_some() {
                bail!(
                    "{} is not empty; give a new folder to --out (a report never mixes with \
                     other files)",
                    out.display()
                );
            }
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".memoria-")
            .tempdir_in(parent)
            .with_context(|| format!("cannot write into {}", parent.display()))?;
        for sub in ["datos", "bitacoras"] {
            let dir = tmp.path().join(sub);
            std::fs::create_dir(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(Self {
            tmp,
            out: out.to_owned(),
        })
    }

    /// Copies the period's access logs into `bitacoras/`.
    pub(crate) fn copy_logs(&self, logs: &[Input]) -> Result<()> {
        let dir = self.tmp.path().join("bitacoras");
        for log in logs {
            copy_log(log, &dir)?;
        }
        sync_dir(&dir)
    }

    /// Writes the report, its data and the checksums, and gives the folder its name.
    pub(crate) fn finish(self, memoria: &Memoria) -> Result<()> {
        let root = self.tmp.path();
        let mut json = serde_json::to_vec_pretty(memoria)?;
        json.push(b'\n');
        durable(&root.join("memoria.json"), &json)?;
        let html = root.join("memoria.html");
        durable(&html, render::html(memoria).as_bytes())?;
        let datos = root.join("datos");
        for (name, bytes) in render::tables(memoria) {
            durable(&datos.join(name), &bytes)?;
        }
        sync_dir(&datos)?;
        let pdf = match render::pdf(&html, &root.join("memoria.pdf")) {
            Ok(Pdf::Made) => true,
            Ok(Pdf::NoChromium) => {
                eprintln!(
                    "memoria.pdf was not made: Chromium is not installed (apt-get install \
                     chromium); memoria.html prints to the same document from any browser"
                );
                false
            }
            Err(e) => {
                eprintln!(
                    "memoria.pdf was not made: {e}; memoria.html prints to the same document \
                     from any browser"
                );
                false
            }
        };
        let sums = checksums(root)?;
        durable(&root.join("SHA256SUMS"), sums.as_bytes())?;
        sync_dir(root)?;
        let root = self.tmp.keep();
        if let Err(e) = std::fs::rename(&root, &self.out) {
            let _ = std::fs::remove_dir_all(&root);
            return Err(e).with_context(|| format!("cannot write {}", self.out.display()));
        }
        if let Some(parent) = self.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        println!(
            "Wrote the memoria técnica into {}: memoria.html, memoria.json, datos/, bitacoras/, \
             SHA256SUMS{}.",
            self.out.display(),
            if pdf { ", memoria.pdf" } else { "" }
        );
        Ok(())
    }
}

/// Writes `bytes` to `path` through a temporary name, fsynced, then renamed.
fn durable(path: &Path, bytes: &[u8]) -> Result<()> {
    durable_with(path, |file| file.write_all(bytes))
}

/// Writes `path` with `write` through a temporary name, fsynced, then renamed.
fn durable_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    write(tmp.as_file_mut())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// Copies one access log into `dir`, gzipped.
fn copy_log(log: &Input, dir: &Path) -> Result<()> {
    let name = log
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("an access log without a file name")?;
    // The bytes the figures were counted from, however much a live server wrote since and
    // whatever a rotation did to the name.
    let mut from = log.bytes();
    if log.gzip {
        return durable_with(&dir.join(&name), |file| {
            std::io::copy(&mut from, file).map(drop)
        });
    }
    durable_with(&dir.join(format!("{name}.gz")), |file| {
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(file, flate2::Compression::fast());
        std::io::copy(&mut from, &mut gz)?;
        gz.finish().map(drop)
    })
}

/// `sha256sum` lines for every file under `root`, by path.
fn checksums(root: &Path) -> Result<String> {
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    files.sort();
    let mut out = String::new();
    for rel in files {
        let path = root.join(&rel);
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let (sha, _) = crate::hash::Sha256::of_reader(file)
            .with_context(|| format!("cannot read {}", path.display()))?;
        out.push_str(&format!("{}  {}\n", sha.to_hex(), rel.display()));
    }
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else if path.file_name().is_some_and(|n| n != "SHA256SUMS") {
            out.push(path.strip_prefix(root)?.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_not_finished_leaves_nothing_and_a_full_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("memoria");
        let folder = Folder::create(&out).unwrap();
        folder.copy_logs(&[]).unwrap();
        drop(folder);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("otro.txt"), b"x").unwrap();
        let refused = Folder::create(&out).err().unwrap().to_string();
        assert!(refused.contains("is not empty"), "{refused}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
