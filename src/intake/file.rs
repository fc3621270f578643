//! Reading files that someone else put on this machine, without trusting what they are.
//!
//! Whoever can write into the intake folder can also put there a symbolic link (to a secret
//! elsewhere on the machine), a FIFO (whose open blocks until a writer comes), a socket or a
//! device. Every package and evidence file the intake reads is opened through
//! [`open_regular`], and so is the archive's copy of a package.
//!
//! A package's evidence lies beside it as `<package>.sha256` and `<package>.minisig`, in the
//! intake folder as in the archive: [`evidence_path`] names it for both. A package file an
//! operator names on the command line (`inspect`, `check`) is opened and verified by
//! [`open_package`], with the evidence beside it when present ([`operator_evidence`]: there
//! but unreadable is refused, never taken for absent); one that is no file (a pipe such as
//! `/dev/stdin` or `<(curl …)`, a device) is refused saying so, never read.
//!
//! # Guarantees
//! - A link is never followed (`O_NOFOLLOW`): opening one fails, naming it a link.
//! - Opening never blocks (`O_NONBLOCK`), and the type is checked on the opened descriptor
//!   (`fstat`), so a file swapped for a FIFO or a device after any earlier check is still
//!   refused before a byte is read.
//! - Evidence is read as it was sent, to at most [`MAX_EVIDENCE_BYTES`]: a larger file is
//!   known by its size only ([`EvidenceFile::TooLarge`]) and refused for it, never read in
//!   part nor taken for absent: one that cannot be opened or read (its permissions) is an
//!   error of [`read_evidence`], not `None`.

use std::fs::{File, FileType};
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::hash::Sha256;
use crate::package::{
    EvidenceFile, EvidencePolicy, Incoming, MAX_EVIDENCE_BYTES, PackageName, PackageSettings,
    Policy, VerifiedPackage, verify,
};

/// Opens `path` for reading only if it is a regular file itself: not a link (to anything),
/// FIFO, socket, device or folder.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            not_regular(path, "a symbolic link")
        } else {
            io::Error::from(e)
        }
    })?;
    let file = File::from(fd);
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(path, describe(kind)));
    }
    Ok(file)
}

fn not_regular(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {what}, not a regular file; it is not read",
            path.display()
        ),
    )
}

/// What a file type is, in words, for messages.
pub(crate) fn describe(kind: FileType) -> &'static str {
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// The path of `package`'s evidence file with the extension `ext` (`sha256`, `minisig`):
/// `<package>.<ext>`, beside it.
pub(crate) fn evidence_path(package: &Path, ext: &str) -> PathBuf {
    let mut p = package.as_os_str().to_owned();
    p.push(".");
    p.push(ext);
    PathBuf::from(p)
}

/// Reads an evidence file (a regular file only) as it was sent, or only its size when it is
/// larger than [`MAX_EVIDENCE_BYTES`]; `None` when there is none: absent, or not a regular
/// file ([`gone`]). A regular file that cannot be opened or read (its permissions keep this
/// user out, no open file left) is an error, never taken for absent.
pub(crate) fn read_evidence(path: &Path) -> io::Result<Option<EvidenceFile>> {
    let file = match open_regular(path) {
        Ok(file) => file,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut bytes = Vec::new();
    // One byte more than evidence may hold tells a file grown since its size was read.
    file.take(MAX_EVIDENCE_BYTES + 1).read_to_end(&mut bytes)?;
    Ok(Some(match EvidenceFile::of_bytes(bytes) {
        EvidenceFile::TooLarge(read) => EvidenceFile::TooLarge(len.max(read)),
        sent => sent,
    }))
}

/// Whether opening a file failed because there is no regular file there (any more): gone,
/// or replaced by a link, FIFO, socket, device or folder ([`open_regular`]).
pub(crate) fn gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
    )
}

/// The evidence (`ext`: `sha256`, `minisig`; `what` names it for messages) beside a package
/// file an operator names on the command line (`ingest`, `inspect`, `check`), a link
/// followed: `None` when nothing is at its name. Something there that cannot be read as
/// evidence (a folder, a FIFO, a link leading nowhere, a file its permissions keep this user
/// out of, an I/O error) is an error naming it and why: evidence that is there is never
/// taken for absent, so no package is taken or judged without it.
pub(crate) fn operator_evidence(
    package: &Path,
    ext: &str,
    what: &str,
) -> anyhow::Result<Option<EvidenceFile>> {
    let path = evidence_path(package, ext);
    if let Err(e) = std::fs::symlink_metadata(&path)
        && e.kind() == io::ErrorKind::NotFound
    {
        return Ok(None);
    }
    let refused = |why: String| {
        anyhow::anyhow!(
            "the {what} {} is there but cannot be read: {why}. Make it a file this user can \
             read, or remove it to go on with {} without it",
            path.display(),
            package.display()
        )
    };
    let followed = std::fs::canonicalize(&path).map_err(|e| refused(e.to_string()))?;
    match read_evidence(&followed) {
        Ok(Some(evidence)) => Ok(Some(evidence)),
        Ok(None) => Err(refused(match std::fs::metadata(&followed) {
            Ok(meta) => format!("it is {}, not a regular file", describe(meta.file_type())),
            Err(e) => e.to_string(),
        })),
        Err(e) => Err(refused(e.to_string())),
    }
}

/// Opens a package file by `settings`' limits, checking whatever evidence lies beside it
/// (`<file>.sha256`, `<file>.minisig`) and requiring none: the operator vouches for a file
/// named on the command line.
pub(crate) fn open_package(
    path: &Path,
    settings: &PackageSettings,
) -> anyhow::Result<VerifiedPackage> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    // A package is read twice (for its digest, then opened), and a zip from its end: a pipe
    // gives its bytes once, and a device may never end.
    if !meta.is_file() {
        anyhow::bail!(
            "{} is {}, not a file: a package is opened from a file, which can be read more \
             than once (a zip's directory is at its end); save it to a file first",
            path.display(),
            describe(meta.file_type())
        );
    }
    // A file too large to be a package is refused before it is read for its digest.
    let len = meta.len();
    let limit = settings.limits.max_package_bytes;
    if len > limit {
        anyhow::bail!(
            "{} is {len} bytes, larger than a package may be (max_package_bytes, {limit})",
            path.display()
        );
    }
    let (sha256, size) =
        Sha256::of_reader(file).with_context(|| format!("cannot read {}", path.display()))?;
    let incoming = Incoming {
        name: PackageName::of_path(path).map_or_else(|| "package".to_owned(), |n| n.to_string()),
        path: path.to_owned(),
        sha256,
        size,
        sidecar: operator_evidence(path, "sha256", "sidecar")?,
        signature: operator_evidence(path, "minisig", "signature")?,
    };
    let policy = EvidencePolicy {
        sidecar: Policy::IfPresent,
        member_list: Policy::IfPresent,
        signature: Policy::IfPresent,
        ..settings.evidence.clone()
    };
    verify(&incoming, &policy, &settings.limits)
        .with_context(|| format!("cannot open {} as a package", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_folders_are_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"secret").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::RUSR).unwrap();

        assert_eq!(
            read_evidence(&secret).unwrap(),
            Some(EvidenceFile::Sent(b"secret".to_vec()))
        );
        let err = open_regular(&link).unwrap_err().to_string();
        assert!(err.contains("a symbolic link"), "{err}");
        // Would block forever without O_NONBLOCK: no writer ever comes.
        let err = open_regular(&fifo).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
        let err = open_regular(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a folder"), "{err}");
        assert_eq!(read_evidence(&link).unwrap(), None);
        assert_eq!(read_evidence(&fifo).unwrap(), None);
    }
}
