//! The file the access log writer writes: `<log_dir>/access.log`, followed by its name, and
//! rotated at local midnight.
//!
//! # Guarantees
//! - Lines go to the file named `access.log`: before each write the writer checks that the
//!   file it holds open is still the one at that name. If someone removed it, moved it away
//!   or put another file there (a system `logrotate`, an operator freeing space), a fresh
//!   `access.log` is opened (or the one now there) and the change is logged and journaled,
//!   saying where the earlier lines are: the lines that follow are never written into a
//!   removed file nobody can read.
//! - A rotation never overwrites a log rotated before: the closed day is renamed without
//!   replacing (`renameat2` with `RENAME_NOREPLACE`) to `access-YYYY-MM-DD.log`, or, when a
//!   log of that day already exists (the clock was set back across midnight),
//!   `access-YYYY-MM-DD.2.log`, `.3`, …; its gzip is made durable under a temporary name and
//!   linked in without replacing, and only then is the plain file removed.
//! - A start finishes the rotations a stop cut short: a rotated log left plain is gzipped,
//!   one left beside its gzip is removed only once the gzip is read through and found to hold
//!   the same bytes, and the temporary files of gzips cut short are removed.
//! - A rotation that fails leaves the lines going to a file whose name the log and the journal
//!   give: `access.log` when the rename failed or a failed reopening could be undone, the
//!   renamed file otherwise.

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use serde_json::json;

use crate::journal::{EventKind, Journal};

/// Most logs of one day kept apart (`access-D.log` … `access-D.999.log`): past that, the
/// rotation fails and the day's lines go on in `access.log`.
const MAX_PARTS: u32 = 999;

/// What a rotated log's name says: `access-2024-06-02.log[.gz]`, or a further log of the
/// day, `access-2024-06-02.2.log[.gz]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rotated {
    /// The day its lines were written.
    pub(crate) day: Date,
    /// 1, or the `N` of a further log of the day.
    pub(crate) part: u32,
    /// Whether it is the gzip.
    pub(crate) gzip: bool,
}

impl Rotated {
    /// Reads a file name; `None` for any name the writer does not give a rotated log.
    pub(crate) fn of(name: &str) -> Option<Rotated> {
        let rest = name.strip_prefix("access-")?;
        let (stem, gzip) = match rest.strip_suffix(".log.gz") {
            Some(stem) => (stem, true),
            None => (rest.strip_suffix(".log")?, false),
        };
        let (day, part) = match stem.split_once('.') {
            Some((day, part)) if part.bytes().all(|b| b.is_ascii_digit()) => {
                (day, part.parse().ok().filter(|&n| n >= 2)?)
            }
            Some(_) => return None,
            None => (stem, 1),
        };
        Some(Rotated {
            day: day.parse().ok()?,
            part,
            gzip,
        })
    }
}

/// The open `access.log`.
pub(super) struct LogFile {
    dir: PathBuf,
    path: PathBuf,
    file: std::fs::File,
    /// Device and inode of `file`, to tell whether the name still leads to it.
    id: (u64, u64),
    /// A fresh `access.log` could not be opened after the name stopped leading to `file`; said
    /// once, tried again at every write.
    reopen_failing: bool,
}

/// Why a rotation failed, and where the lines go meanwhile.
#[derive(Debug, thiserror::Error)]
enum RotateError {
    #[error("cannot rename {path} to {closed}: {error}")]
    Rename {
        path: PathBuf,
        closed: PathBuf,
        error: std::io::Error,
    },
    #[error("every name for the day's log is taken, up to {last}")]
    NoName { path: PathBuf, last: PathBuf },
    #[error("renamed to {closed}, but cannot open a new {path}: {error}")]
    Reopen {
        path: PathBuf,
        closed: PathBuf,
        error: std::io::Error,
        /// The rename could be undone: the lines go on in `path`.
        undone: bool,
    },
}

impl RotateError {
    /// The file the lines go on into.
    fn writing_to(&self) -> &Path {
        match self {
            RotateError::Rename { path, .. } | RotateError::NoName { path, .. } => path,
            RotateError::Reopen {
                path,
                closed,
                undone,
                ..
            } => {
                if *undone {
                    path
                } else {
                    closed
                }
            }
        }
    }
}

impl LogFile {
    /// Opens (creating it if need be) `<dir>/access.log` for appending, and finishes in a
    /// thread of its own the rotations a stop interrupted ([`finish_rotations`]).
    pub(super) fn open(dir: &Path) -> std::io::Result<LogFile> {
        let path = dir.join("access.log");
        let file = open_append(&path)?;
        let id = identity(&file.metadata()?);
        // Listed now, before this writer rotates anything: a file it rotates later is its
        // own gzip thread's alone.
        let left = leftovers(dir);
        if !left.is_empty() {
            std::thread::Builder::new()
                .name("access-log-gzip".into())
                .spawn(move || finish_rotations(&left))?;
        }
        Ok(LogFile {
            dir: dir.to_owned(),
            path,
            file,
            id,
            reopen_failing: false,
        })
    }

    /// The path lines are meant for.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// When the file was last written, if it holds anything.
    pub(super) fn last_written(&self) -> Option<jiff::Timestamp> {
        let meta = self.file.metadata().ok().filter(|m| m.len() > 0)?;
        jiff::Timestamp::try_from(meta.modified().ok()?).ok()
    }

    /// The file to write, after making sure it is still the one named `access.log`.
    pub(super) fn current(&mut self, journal: &Journal) -> &mut std::fs::File {
        self.follow_name(journal);
        &mut self.file
    }

    /// Makes its data durable (at shutdown).
    pub(super) fn sync(&self) {
        let _ = self.file.sync_all();
    }

    /// When `access.log` no longer leads to the open file (removed, moved, replaced), opens
    /// the file at that name (creating it) and says what happened to the earlier one.
    fn follow_name(&mut self, journal: &Journal) {
        match std::fs::metadata(&self.path) {
            Ok(m) if identity(&m) == self.id => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // The folder cannot be looked at (a failing disk): keep writing where we write.
            Err(_) => return,
        }
        let fresh = match open_append(&self.path) {
            Ok(f) => f,
            Err(e) => {
                if !self.reopen_failing {
                    self.reopen_failing = true;
                    tracing::error!(
                        error = %e,
                        path = %self.path.display(),
                        "the access log's name no longer leads to the file being written, and a new one cannot be opened; lines go on into the old file"
                    );
                }
                return;
            }
        };
        let Ok(meta) = fresh.metadata() else {
            return;
        };
        let earlier = self.whereabouts();
        let warning = format!(
            "{} was {earlier} while the access log was being written; from now on lines go \
             to {}",
            self.path.display(),
            self.path.display()
        );
        tracing::warn!("{warning}");
        journal.post(EventKind::Warning, None, json!({"warning": warning}));
        self.file = fresh;
        self.id = identity(&meta);
        self.reopen_failing = false;
    }

    /// What became of the open file, as the kernel sees it: removed (its lines are lost with
    /// it), or renamed (where its lines are now).
    fn whereabouts(&self) -> String {
        let removed = self
            .file
            .metadata()
            .map(|m| m.nlink() == 0)
            .unwrap_or(false);
        if removed {
            return "removed (its lines are gone with it, unless it was copied first)".to_owned();
        }
        match std::fs::read_link(format!("/proc/self/fd/{}", self.file.as_raw_fd())) {
            Ok(now) => format!(
                "moved or replaced (the lines written until then are in {})",
                now.display()
            ),
            Err(_) => "moved or replaced".to_owned(),
        }
    }

    /// Closes the log of `day`: renames it aside without replacing any earlier log, opens a
    /// fresh `access.log` and gzips the closed one in a thread of its own. A failure is
    /// logged and journaled, naming the file the lines go on into.
    pub(super) fn rotate(&mut self, day: Date, journal: &Journal) {
        self.follow_name(journal);
        match self.rotate_to(day) {
            Ok(closed) => {
                let gzip = std::thread::Builder::new()
                    .name("access-log-gzip".into())
                    .spawn(move || gzip_or_say(&closed));
                if let Err(e) = gzip {
                    tracing::error!(error = %e, "cannot start gzipping the day's access log; it stays uncompressed until the next start");
                }
            }
            Err(e) => {
                let warning = format!(
                    "the access log of {day} could not be rotated: {e}; lines go on into {}",
                    e.writing_to().display()
                );
                tracing::error!("{warning}");
                journal.post(EventKind::Warning, None, json!({"warning": warning}));
            }
        }
    }

    fn rotate_to(&mut self, day: Date) -> Result<PathBuf, RotateError> {
        let mut closed = None;
        for part in 1..=MAX_PARTS {
            let name = match part {
                1 => format!("access-{day}.log"),
                n => format!("access-{day}.{n}.log"),
            };
            let candidate = self.dir.join(&name);
            if gz_of(&candidate).symlink_metadata().is_ok() {
                continue;
            }
            match rename_no_replace(&self.path, &candidate) {
                Ok(()) => {
                    closed = Some(candidate);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => {
                    return Err(RotateError::Rename {
                        path: self.path.clone(),
                        closed: candidate,
                        error,
                    });
                }
            }
        }
        let closed = closed.ok_or_else(|| RotateError::NoName {
            path: self.path.clone(),
            last: self.dir.join(format!("access-{day}.{MAX_PARTS}.log")),
        })?;
        let fresh = open_append(&self.path).and_then(|f| Ok((identity(&f.metadata()?), f)));
        match fresh {
            Ok((id, file)) => {
                self.file = file;
                self.id = id;
                Ok(closed)
            }
            Err(error) => {
                // Put back, the open file is `access.log` again; if not, the next writes
                // go on into `closed`, and the next one able to open `access.log` says so.
                let undone = rename_no_replace(&closed, &self.path).is_ok();
                Err(RotateError::Reopen {
                    path: self.path.clone(),
                    closed,
                    error,
                    undone,
                })
            }
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// `access-D.log` → `access-D.log.gz`.
fn gz_of(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".gz");
    PathBuf::from(name)
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`), in one step where the
/// file system can (`RENAME_NOREPLACE`), else by looking first: only this writer makes
/// these names.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Err(rustix::io::Errno::INVAL) => {
            if to.symlink_metadata().is_ok() {
                return Err(std::io::ErrorKind::AlreadyExists.into());
            }
            std::fs::rename(from, to)
        }
        other => other.map_err(std::io::Error::from),
    }
}

/// Gzips `log` ([`gzip_durably`]), logging a failure.
fn gzip_or_say(log: &Path) {
    if let Err(e) = gzip_durably(log) {
        tracing::error!(error = %e, "could not gzip {}; it stays uncompressed", log.display());
    }
}

/// The prefix of the temporary files gzips are written to, before their rename.
const GZIP_TEMP: &str = ".access-gz-";

/// What a stop left of earlier rotations in `dir`: the temporary files of gzips cut short,
/// and the rotated logs left plain.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            e.file_name().to_str().is_some_and(|name| {
                name.starts_with(GZIP_TEMP) || Rotated::of(name).is_some_and(|r| !r.gzip)
            })
        })
        .map(|e| e.path())
        .collect()
}

/// Finishes what a stop left of earlier rotations ([`leftovers`]): removes the temporary
/// files of gzips cut short, gzips a rotated log left plain, and removes a plain log whose
/// gzip was made durable, after reading the gzip through and finding it holds the same bytes
/// (both are kept, and the difference logged, otherwise).
fn finish_rotations(left: &[PathBuf]) {
    for path in left {
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(GZIP_TEMP))
        {
            let _ = std::fs::remove_file(path);
            continue;
        }
        let gz = gz_of(path);
        if !gz.exists() {
            tracing::info!(log = %path.display(), "gzipping an access log a stop left uncompressed");
            gzip_or_say(path);
            continue;
        }
        match same_lines(path, &gz) {
            Ok(true) => match std::fs::remove_file(path) {
                Ok(()) => {
                    tracing::info!(log = %path.display(), "removed an access log a stop left beside its gzip, which holds the same lines")
                }
                Err(e) => {
                    tracing::warn!(error = %e, log = %path.display(), "cannot remove an access log already gzipped")
                }
            },
            Ok(false) => tracing::warn!(
                log = %path.display(),
                gzip = %gz.display(),
                "an access log and its gzip hold different lines; both are kept (memoria reads the gzip)"
            ),
            Err(e) => {
                tracing::warn!(error = %e, log = %path.display(), "cannot compare an access log with its gzip; both are kept")
            }
        }
    }
}

/// Whether `gz` decompresses to exactly the bytes of `plain`, read in chunks.
fn same_lines(plain: &Path, gz: &Path) -> std::io::Result<bool> {
    let mut a = std::io::BufReader::new(std::fs::File::open(plain)?);
    let mut b =
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(std::fs::File::open(gz)?));
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(&mut a, &mut x)?;
        let m = read_full(&mut b, &mut y)?;
        if x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the end: how many bytes.
fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Gzips `log` beside itself (`.gz`) durably and without replacing a file of that name, then
/// removes `log`.
fn gzip_durably(log: &Path) -> std::io::Result<()> {
    let dest = gz_of(log);
    let dir = dest.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(GZIP_TEMP)
        .tempfile_in(dir)?;
    {
        let mut enc = flate2::write::GzEncoder::new(tmp.as_file(), flate2::Compression::default());
        std::io::copy(&mut std::fs::File::open(log)?, &mut enc)?;
        enc.finish()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(&dest).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()?;
    std::fs::remove_file(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(path: &Path) -> String {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()),
            &mut text,
        )
        .unwrap();
        text
    }

    /// Waits until `gz` exists and its plain file is gone.
    fn wait_gzipped(gz: &Path) {
        let plain = gz.with_extension("");
        for _ in 0..250 {
            if gz.exists() && !plain.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("{} not made", gz.display());
    }

    #[test]
    fn rotations_of_the_same_day_never_overwrite_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal")).unwrap();
        let mut log = LogFile::open(dir.path()).unwrap();
        let day: Date = "2024-06-02".parse().unwrap();
        for (n, gz) in [
            "access-2024-06-02.log.gz",
            "access-2024-06-02.2.log.gz",
            "access-2024-06-02.3.log.gz",
        ]
        .iter()
        .enumerate()
        {
            std::io::Write::write_all(log.current(&journal), format!("line {n}\n").as_bytes())
                .unwrap();
            log.rotate(day, &journal);
            wait_gzipped(&dir.path().join(gz));
            assert_eq!(gunzip(&dir.path().join(gz)), format!("line {n}\n"));
        }
        assert!(log.path().exists(), "a fresh access.log is open");
    }
}
