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
//! - Each file's size is taken when it is listed: the report reads and copies that much of
//!   it, whatever a live server appends afterwards.
//! - A file the operator names (`--base`, `--notas`, `--check-log`) is read only if it is a
//!   regular file, checked on the opened descriptor, which is opened without blocking: a
//!   FIFO or a folder is refused at once, naming what it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::scan::Input;
use crate::http::access_log::Rotated;

/// The logs in `dir` that may hold requests of `[from, to)`: the days of the period and the
/// day on each side (a line is written when its response ends, and a rotation happens at
/// the first write after midnight), and `access.log`.
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
    let mut days: BTreeMap<(Date, u32), Input> = BTreeMap::new();
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
        let len = || -> Result<u64> {
            Ok(entry
                .metadata()
                .with_context(|| format!("cannot read {}", entry.path().display()))?
                .len())
        };
        if name == "access.log" {
            current = Some(Input {
                path: entry.path(),
                gzip: false,
                len: len()?,
            });
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
        let input = Input {
            path: entry.path(),
            gzip,
            len: len()?,
        };
        match days.get(&(date, part)) {
            Some(seen) if seen.gzip => {}
            _ => {
                days.insert((date, part), input);
            }
        }
    }
    Ok(days.into_values().chain(current).collect())
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

/// The portal's usual logs named by the operator: each a regular file, gzip by its magic.
pub(crate) fn named_logs(paths: &[PathBuf]) -> Result<Vec<Input>> {
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
