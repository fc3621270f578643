//! Package names: the institute's file name of a package, as it is archived, journaled,
//! listed under `/datos/` and answered to its sender.
//!
//! A [`PackageName`] is a bare file name (no folders) that is not empty, not hidden (no
//! leading `.`: temporary and evidence names of the intake channels), free of path
//! separators and of what disguises a name when it is shown ([`disguises`]): control
//! characters, the characters that reorder displayed text (a right-to-left override would
//! show `\u{202e}piz.exe` as `exe.zip` in the journal, on the status page and under
//! `/datos/`) and those that take no room. It does not end in a dot or white space, which
//! Windows and many tools (archivers, sync clients) drop from a file name: the package would
//! be archived, listed and served under a name its sender cannot write back, and which its
//! `.sha256` may not give. It is at most [`PackageName::MAX_LEN`] bytes, so that the names of
//! its evidence fit in the [`FILE_NAME_MAX`] bytes of a file name: a longer one could never
//! have a sidecar, and would wait for one in vain.
//! Every channel makes one the same way ([`PackageName::parse`], [`check_file_name`] for a
//! package or its evidence), so a name refused on one is refused on all, saying why
//! ([`NameError`]).
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

/// The longest file name, in bytes (the common file system limit).
pub(crate) const FILE_NAME_MAX: usize = 255;

/// Why a name is no package's (or evidence's) name; each says it in words, as a clause that
/// follows "its name" or "the name".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    #[error("is empty")]
    Empty,
    #[error("starts with a dot (hidden names are kept for temporary and evidence files)")]
    Hidden,
    #[error("holds a folder separator (`/` or a backslash)")]
    Separator,
    #[error(
        "holds control characters (such as a newline or a tab), characters that reorder text \
         (a right-to-left override) or take no room (a zero-width space)"
    )]
    Disguised,
    #[error(
        "ends in a dot or a space, which Windows and many tools drop from a file name: the \
         package would be kept and served under a name its sender cannot write back"
    )]
    Trailing,
    #[error(
        "is {0} bytes long; a package's name is at most {max} bytes, so that its evidence \
         (`<name>.sha256`, `<name>.minisig`) fits in the {FILE_NAME_MAX} bytes of a file name",
        max = PackageName::MAX_LEN
    )]
    TooLong(usize),
}

/// Checks a file name a channel receives: a package's ([`PackageName::parse`]) or, for an
/// evidence name ([`is_evidence`]), its package's, so that evidence is taken under exactly
/// the names its package may have.
pub(crate) fn check_file_name(name: &str) -> Result<(), NameError> {
    let package = EVIDENCE_EXTENSIONS
        .iter()
        .find_map(|ext| name.strip_suffix(ext)?.strip_suffix('.'))
        .unwrap_or(name);
    PackageName::parse(package).map(drop)
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
    /// The longest name, in bytes: a file name's, less its longest evidence extension
    /// (`.minisig`).
    pub(crate) const MAX_LEN: usize = FILE_NAME_MAX - ".minisig".len();

    /// `name`, if it is a valid bare name.
    pub(crate) fn new(name: &str) -> Option<Self> {
        Self::parse(name).ok()
    }

    /// `name` if it is a valid bare name, else why not.
    pub(crate) fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.starts_with('.') {
            return Err(NameError::Hidden);
        }
        if name.contains(['/', '\\']) {
            return Err(NameError::Separator);
        }
        if name.chars().any(disguises) {
            return Err(NameError::Disguised);
        }
        if name.ends_with(|c: char| c == '.' || c.is_whitespace()) {
            return Err(NameError::Trailing);
        }
        if name.len() > Self::MAX_LEN {
            return Err(NameError::TooLong(name.len()));
        }
        Ok(Self(name.to_owned()))
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
            "20240602_2100_PREP_SITIO.zip.1",
            &"x".repeat(247),
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
            "20240602_2100_PREP_SITIO.zip.",
            "20240602_2100_PREP_SITIO.zip ",
            "20240602_2100_PREP_SITIO.zip\u{a0}",
            "20240602_2100_PREP_SITIO.zip\u{3000}",
            &"x".repeat(248),
        ] {
            assert!(PackageName::new(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            PackageName::parse(&"x".repeat(248)),
            Err(NameError::TooLong(248))
        );
        assert_eq!(PackageName::parse("P.zip. "), Err(NameError::Trailing));
        assert_eq!(
            PackageName::of_path(Path::new("/srv/entrada/P_2024.zip")).map(|n| n.to_string()),
            Some("P_2024.zip".to_owned())
        );
        assert!(PackageName::of_path(Path::new("/srv/entrada/.P_2024.zip")).is_none());
        assert!(PackageName::of_path(Path::new("/")).is_none());
    }

    #[test]
    fn evidence_is_checked_under_its_package_name() {
        let longest = "x".repeat(PackageName::MAX_LEN);
        for good in [
            "P.zip",
            "P.zip.sha256",
            "P.zip.minisig",
            &longest,
            &format!("{longest}.minisig"),
        ] {
            assert_eq!(check_file_name(good), Ok(()), "{good}");
        }
        let long = "x".repeat(PackageName::MAX_LEN + 1);
        for (bad, why) in [
            ("P.zip..sha256", NameError::Trailing),
            ("P.zip .minisig", NameError::Trailing),
            (".sha256", NameError::Empty),
            (&format!("{long}.sha256"), NameError::TooLong(long.len())),
        ] {
            assert_eq!(check_file_name(bad), Err(why), "{bad}");
        }
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
