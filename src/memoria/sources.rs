//! Which access-log files hold a period: the access log writer's names in `log_dir`, and the
//! files an operator names for the portal's usual audience.
//!
//! # Guarantees
//! - A day's log is read once: when both `access-D.log` and `access-D.log.gz` exist (a
//!   rotation interrupted after the gzip was made durable), the gzip is read. The further
//!   logs of a day a clock set back made (`access-D.2.log[.gz]`, …) are each read too.
//! - Files are read in time order (days and their parts, then the current `access.log`), so
//!   visits that cross midnight are followed across the rotation.
//! - Only regular files are taken, never through a symbolic link.
//! - Each file is opened when it is listed and held open, and its size taken then: the
//!   report reads and copies that much of it through that descriptor, whatever a live server
//!   appends afterwards and whatever a rotation does to its name (renamed, gzipped and
//!   removed, a new `access.log` in its place). A rotated log found plain but gzipped and
//!   removed before it could be opened is taken as its gzip.
//! - The logs held open (the period's and `--base`'s) stay within the open-file limit
//!   (raised to its hard limit), less [`DESCRIPTORS_KEPT_FREE`]: more logs than that (a day
//!   has at most 999) are refused before any is read, saying how many and what the limit is.
//! - A file the operator names (`--base`, `--notas`, `--check-log`) is read only if it is a
//!   regular file, checked on the opened descriptor, which is opened without blocking: a
//!   FIFO or a folder is refused at once, naming what it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::scan::Input;
use crate::http::access_log::Rotated;

/// Descriptors left free beside the logs held open: the journal, the report's files, the
/// standard streams.
const DESCRIPTORS_KEPT_FREE: u64 = 64;

/// The logs in `dir` that may hold requests of `[from, to)`: the days of the period and the
/// day on each side (a line is written when its response ends, and a rotation happens at
/// the first write after midnight), and `access.log`. Each is opened now and held open.
pub(crate) fn logs_of_period(
    dir: &Path,
    from: Timestamp,
    to: Timestamp,
    tz: &TimeZone,
) -> Result<Vec<Input>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let first = from.to_zoned_datetime(tz.clone()).date().yesterday()?;
    let last = to.to_zoned_datetime(tz.clone()).date().tomorrow()?;
    let mut days: BTreeMap<(Date, u32), (PathBuf, bool)> = BTreeMap::new();
    let mut current = None;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name == "access.log" {
            current = Some(entry.path());
            continue;
        }
        let Some(Rotated {
            day: date,
            part,
            gzip,
        }) = Rotated::of(name)
        else {
            continue;
        };
        if date < first || date > last {
            continue;
        }
        match days.get(&(date, part)) {
            Some((_, true)) => {}
            _ => {
                days.insert((date, part), (entry.path(), gzip));
            }
        }
    }
    let listed = days.len() + usize::from(current.is_some());
    let budget = descriptors_for_logs();
    if listed as u64 > budget {
        bail!(
            "the period has {listed} access logs in {}, more than the {budget} files this \
             command may hold open (the open-file limit, `ulimit -n`, less \
             {DESCRIPTORS_KEPT_FREE}); raise the limit or give a shorter --from/--to",
            dir.display()
        );
    }
    let mut inputs = Vec::with_capacity(listed);
    for (path, gzip) in days.into_values() {
        // A rotated log found plain may have been gzipped and removed since it was listed.
        let held = match open_log(&path, gzip)? {
            None if !gzip => open_log(&gzip_of(&path), true)?,
            held => held,
        };
        inputs.extend(held);
    }
    if let Some(path) = current {
        inputs.extend(open_log(&path, false)?);
    }
    Ok(inputs)
}

/// Opens an access log to hold it: `None` when it is no longer there (a rotation renamed or
/// removed it since it was listed).
fn open_log(path: &Path, gzip: bool) -> Result<Option<Input>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW).bits() as i32)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    // Something other than a file was put at the name since it was listed.
    if !meta.is_file() {
        return Ok(None);
    }
    Ok(Some(Input {
        path: path.to_owned(),
        gzip,
        len: meta.len(),
        file,
    }))
}

/// `access-D.log.gz` for `access-D.log`.
fn gzip_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    PathBuf::from(name)
}

/// How many logs this command may hold open: its open-file limit, raised to the hard limit,
/// less [`DESCRIPTORS_KEPT_FREE`].
fn descriptors_for_logs() -> u64 {
    crate::http::limits::raise_open_file_limit();
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(u64::MAX, |limit| {
            limit.saturating_sub(DESCRIPTORS_KEPT_FREE)
        })
}

/// Opens a file the operator named (`what` says which, for messages): a link is followed,
/// but only a regular file is read, and the open never waits for a FIFO's writer.
pub(crate) fn open_named(path: &Path, what: &str) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let kind = file
        .metadata()
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .file_type();
    anyhow::ensure!(
        kind.is_file(),
        "{what} {} is {}, not a regular file; name a file",
        path.display(),
        crate::intake::describe(kind)
    );
    Ok(file)
}

/// The portal's usual logs named by the operator: each a regular file, gzip by its magic,
/// held open beside the `held` logs already open, within the open-file limit.
pub(crate) fn named_logs(paths: &[PathBuf], held: usize) -> Result<Vec<Input>> {
    let budget = descriptors_for_logs().saturating_sub(held as u64);
    if paths.len() as u64 > budget {
        bail!(
            "--base names {} logs, more than the {budget} files this command may still hold \
             open beside the period's {held} (the open-file limit, `ulimit -n`, less \
             {DESCRIPTORS_KEPT_FREE}); raise the limit or join the usual logs into fewer files",
            paths.len()
        );
    }
    paths
        .iter()
        .map(|path| {
            let mut file = open_named(path, "the usual log")?;
            let len = file
                .metadata()
                .with_context(|| format!("cannot read the usual log {}", path.display()))?
                .len();
            let mut magic = [0u8; 2];
            let gzip =
                std::io::Read::read_exact(&mut file, &mut magic).is_ok() && magic == [0x1f, 0x8b];
            Ok(Input {
                path: path.clone(),
                gzip,
                len,
                file,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_days_are_taken_in_order_gzip_first_and_access_log_last() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "access.log",
            "access-2024-05-20.log.gz",
            "access-2024-06-01.log",
            "access-2024-06-02.log",
            "access-2024-06-02.log.gz",
            "access-2024-06-02.10.log.gz",
            "access-2024-06-02.2.log",
            "access-2024-06-02.2.log.gz",
            "access-2024-06-02.3.log",
            "access-2024-06-02.1.log",
            "access-2024-06-02.x.log",
            "access-2024-06-03.log.gz",
            "access-2024-06-09.log.gz",
            "error.log",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("access-2024-06-04.log")).unwrap();
        let tz = TimeZone::get("America/Mexico_City").unwrap();
        let from = "2024-06-02T20:00:00-06:00".parse().unwrap();
        let to = "2024-06-03T20:00:00-06:00".parse().unwrap();
        let names: Vec<String> = logs_of_period(dir.path(), from, to, &tz)
            .unwrap()
            .iter()
            .map(|i| i.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "access-2024-06-01.log",
                "access-2024-06-02.log.gz",
                "access-2024-06-02.2.log.gz",
                "access-2024-06-02.3.log",
                "access-2024-06-02.10.log.gz",
                "access-2024-06-03.log.gz",
                "access.log"
            ]
        );
    }
}
