//! Package names: the institute's file name of a package, as it is archived, journaled,
//! listed under `/datos/` and answered to its sender.
//!
//! A [`PackageName`] is a bare file name (no folders) that is not empty, not hidden (no
//! leading `.`: temporary and evidence names of the intake channels), at most
//! [`PackageName::MAX_LEN`] bytes and free of path separators and of what disguises a name
//! when it is shown ([`disguises`]): control characters, the characters that reorder
//! displayed text (a right-to-left override would show `\u{202e}piz.exe` as `exe.zip` in the
//! journal, on the status page and under `/datos/`) and those that take no room.
//! Every channel makes one the same way, so a name refused on one is refused on all.
//!
//! A package's evidence travels beside it as `<name>.sha256` and `<name>.minisig`
//! ([`EVIDENCE_EXTENSIONS`], [`is_evidence`]), read to at most [`MAX_EVIDENCE_BYTES`] by every
//! channel.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::peer_text::is_control_or_bidi;

/// The extensions of a package's evidence files, `<package>.<ext>`: its SHA-256 sidecar and
/// its minisign signature.
pub(crate) const EVIDENCE_EXTENSIONS: [&str; 2] = ["sha256", "minisig"];

/// The most bytes of an evidence file any channel reads: a sidecar or a signature is a few
/// hundred bytes, a member list a few thousand.
pub(crate) const MAX_EVIDENCE_BYTES: u64 = 64 * 1024;

/// Whether `c` disguises a name when it is shown: a control or bidirectional formatting
/// character ([`is_control_or_bidi`]), or one that takes no room (zero-width space,
/// non-joiner and joiner, word joiner, byte-order mark), with which `main\u{200b}.json` shows
/// as `main.json` beside the real one. No institute's file name holds one.
pub(crate) fn disguises(c: char) -> bool {
    is_control_or_bidi(c) || matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}')
}

/// Whether a file name is one of a package's evidence files rather than a package.
pub(crate) fn is_evidence(name: impl AsRef<[u8]>) -> bool {
    let name = name.as_ref();
    EVIDENCE_EXTENSIONS.iter().any(|ext| {
        name.strip_suffix(ext.as_bytes())
            .is_some_and(|rest| rest.ends_with(b"."))
    })
}

/// A package's file name, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub(crate) struct PackageName(String);

impl PackageName {
    /// The longest name, in bytes (the common file system limit).
    pub(crate) const MAX_LEN: usize = 255;

    /// `name`, if it is a valid bare name.
    pub(crate) fn new(name: &str) -> Option<Self> {
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name.len() <= Self::MAX_LEN
            && !name.chars().any(|c| disguises(c) || c == '/' || c == '\\');
        ok.then(|| Self(name.to_owned()))
    }

    /// The final component of `path`, if it is a valid name.
    pub(crate) fn of_path(path: &Path) -> Option<Self> {
        Self::new(path.file_name()?.to_str()?)
    }

    /// The name.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for PackageName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_visible_names_of_sane_length_are_names() {
        for good in [
            "CAMP_GOB_2021_06_07_0630.zip",
            "a",
            "ñandú.tar.gz",
            &"x".repeat(255),
        ] {
            assert_eq!(
                PackageName::new(good).map(|n| n.to_string()).as_deref(),
                Some(good)
            );
        }
        for bad in [
            "",
            ".hidden.zip",
            "..",
            "a/b.zip",
            "a\\b.zip",
            "a\nb",
            "a\0b",
            "20240602_2000_PREP\u{202e}piz.exe.zip",
            "a\u{2066}b.zip",
            &"x".repeat(256),
        ] {
            assert!(PackageName::new(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            PackageName::of_path(Path::new("/srv/entrada/P_2024.zip")).map(|n| n.to_string()),
            Some("P_2024.zip".to_owned())
        );
        assert!(PackageName::of_path(Path::new("/srv/entrada/.P_2024.zip")).is_none());
        assert!(PackageName::of_path(Path::new("/")).is_none());
    }

    #[test]
    fn evidence_is_named_by_its_extension() {
        for evidence in ["P.zip.sha256", "P.zip.minisig", ".sha256", "x.sha256"] {
            assert!(is_evidence(evidence), "{evidence}");
        }
        for package in ["P.zip", "sha256", "P.zipsha256", "P.sha256.zip", "minisig"] {
            assert!(!is_evidence(package), "{package}");
        }
    }
}
