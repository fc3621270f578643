//! Packages: opening what an institute sends, checking its evidence, and finding its corte time.
//!
//! This module owns everything between "a file arrived" and "this is a package we may
//! publish". Its one product is [`VerifiedPackage`], a type only [`verify`] can make; the
//! publisher accepts nothing else (invariant 2 of DESIGN.md: nothing is published that did
//! not verify).
//!
//! # What it never unpacks
//! An archive is refused whole, before anything of it is used, if any member
//! - has an absolute path, a `..` or `.` component, an empty component, a backslash, a drive
//!   letter (`C:`), a control character, a bidirectional formatting character or a
//!   zero-width character (which disguise a name when it is shown), or a name longer than
//!   the limit;
//! - is a symlink, a hard link, a device, a FIFO, a sparse file (a GNU `S` entry, or a regular
//!   entry whose pax header carries `GNU.sparse.*` keys) or anything but a regular file or
//!   directory;
//! - has a name component ending in a dot or a space (`a.`, `b `), which some systems drop;
//! - has the same name as another member, or a name equal to another's but for letter case or
//!   Unicode normalisation (NFC and NFD spellings of `año`);
//! - has a name that is neither valid UTF-8 nor CP437 (zip) or not UTF-8 (tar);
//! - would take the package past a [`Limits`] value (members, one member's size, total size,
//!   compression ratio of a member and of the whole package, nesting depth), measured on the
//!   bytes actually inflated, never on the sizes the archive declares.
//!
//! A zip whose local headers disagree with its central directory (another name for the same
//! entry, overlapping entries, entries missing from the directory), or that holds a member
//! marked as a folder but named as a file and holding bytes, is refused as ambiguous, and so
//! is a tar member whose pax header and GNU long name give two names;
//! a tar without its end-of-archive marker is refused as incomplete, and one followed by
//! anything but zero padding (a zip appended to a tar, which zip readers open instead) as
//! ambiguous, and so is a tar.gz whose gzip stream is followed by anything but zeros. A
//! sidecar or member list that names the same file twice is refused as ambiguous too.
//!
//! Everything is read into memory, bounded by those limits: a verified package is immutable
//! bytes, ready to become part of a site.

mod corte;
mod evidence;
mod name;
mod open;

use std::path::PathBuf;

use bytes::Bytes;

use crate::config::{Config, Invalid, positive, positive_count};
use crate::hash::Sha256;

pub(crate) use corte::{
    CorteRules, CorteSource, CorteTime, corte_cell, corte_id_of_name, corte_line, corte_time,
    is_corte_id,
};
pub(crate) use evidence::{
    Evidence, EvidenceFile, EvidencePolicy, Policy, check as check_evidence, evidence_text,
    sidecar_digest, sidecar_single_entry, sum_line, verify_signature,
};
pub(crate) use name::{
    EVIDENCE_EXTENSIONS, FILE_NAME_MAX, MAX_EVIDENCE_BYTES, PackageName, check_file_name,
    disguises, is_evidence,
};
pub(crate) use open::{Format, comparable_path, mistaken_for_a_package, read_magic};

/// Hard limits on what one package may contain. Every one is checked against real bytes.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Largest package file accepted, in bytes (checked before opening).
    pub(crate) max_package_bytes: u64,
    /// Most bytes all members together may inflate to, nested archives included.
    pub(crate) max_unpacked_bytes: u64,
    /// Most members (files and directories), nested archives included.
    pub(crate) max_members: u64,
    /// Most bytes one member may inflate to.
    pub(crate) max_member_bytes: u64,
    /// Highest ratio of inflated to compressed bytes for one member or a whole tar.gz.
    /// Members under one mebibyte inflated are not held to it.
    pub(crate) max_ratio: u64,
    /// Highest ratio of all the bytes a package inflates to (nested archives included) to the
    /// size of the package file. Packages under one mebibyte inflated are not held to it.
    pub(crate) max_package_ratio: u64,
    /// Deepest nesting of archives: 1 is a plain archive, 2 a zip of zips.
    pub(crate) max_depth: u32,
    /// Longest member path, in bytes.
    pub(crate) max_name_len: usize,
}

impl Limits {
    /// The limits the settings give, each above zero: `max_package_bytes`,
    /// `max_unpacked_bytes`, `max_members`, `max_member_bytes`, `max_ratio`,
    /// `max_package_ratio`, `max_depth`, `max_name_len`.
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        let s = &config.settings;
        Ok(Self {
            max_package_bytes: positive("max_package_bytes", s.max_package_bytes.as_u64())?,
            max_unpacked_bytes: positive("max_unpacked_bytes", s.max_unpacked_bytes.as_u64())?,
            max_members: positive("max_members", s.max_members)?,
            max_member_bytes: positive("max_member_bytes", s.max_member_bytes.as_u64())?,
            max_ratio: positive("max_ratio", s.max_ratio)?,
            max_package_ratio: positive("max_package_ratio", s.max_package_ratio)?,
            max_depth: u32::try_from(positive("max_depth", u64::from(s.max_depth))?)
                .unwrap_or(u32::MAX),
            max_name_len: positive_count("max_name_len", s.max_name_len)?,
        })
    }
}

/// What a package is held to, from the settings: how its corte time is found, what evidence
/// it must carry, and the limits on what it unpacks to.
#[derive(Debug, Clone)]
pub(crate) struct PackageSettings {
    /// How corte times are found, and when one is held.
    pub(crate) corte: CorteRules,
    /// What evidence is required, and the keys signatures are checked with.
    pub(crate) evidence: EvidencePolicy,
    /// Unpacking limits.
    pub(crate) limits: Limits,
}

impl PackageSettings {
    /// Every package setting, validated; the first invalid one is the error.
    pub(crate) fn from_config(config: &Config) -> Result<Self, Invalid> {
        Ok(Self {
            corte: CorteRules::from_config(config)?,
            evidence: EvidencePolicy::from_config(config)?,
            limits: Limits::from_config(config)?,
        })
    }
}

/// A file handed to verification: already received whole and archived under its hash.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    /// The file name the institute gave it (no directories), e.g. `20210601_1852_PREP_CAMP.zip`.
    pub(crate) name: String,
    /// Where its bytes are (the archived copy).
    pub(crate) path: PathBuf,
    /// SHA-256 of those bytes, computed on receipt.
    pub(crate) sha256: Sha256,
    /// Size in bytes.
    pub(crate) size: u64,
    /// `<name>.sha256`, if one came with it.
    pub(crate) sidecar: Option<EvidenceFile>,
    /// `<name>.minisig`, if one came with it.
    pub(crate) signature: Option<EvidenceFile>,
}

/// One file of a package, as it will be served: a normalised relative path
/// (`/`-separated, no leading slash) and its exact bytes.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Relative path inside the package, e.g. `json/main.json`.
    pub(crate) path: String,
    /// The member's bytes, unchanged.
    pub(crate) bytes: Bytes,
    /// Their SHA-256 (the site's strong ETag), computed while they were read.
    pub(crate) sha256: Sha256,
}

impl Member {
    /// A member made here rather than read from a package: its digest is computed now.
    pub(crate) fn new(path: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            path: path.into(),
            sha256: Sha256::of(&bytes),
            bytes,
        }
    }
}

/// What a package is for (FORMATS.md, "Two kinds of package").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PackageKind {
    /// The publication site, or part of it: HTML, CSS, JS, JSON, ….
    Site,
    /// Downloads only: every top-level member is a zip, CSV or TXT file.
    Data,
}

impl PackageKind {
    /// Every kind.
    pub(crate) const ALL: [Self; 2] = [Self::Site, Self::Data];

    /// How the journal and reports write it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Site => "site",
            Self::Data => "data",
        }
    }
}

/// A package that passed every check. Only [`verify`] makes one.
#[derive(Debug)]
pub(crate) struct VerifiedPackage {
    name: String,
    sha256: Sha256,
    size: u64,
    kind: PackageKind,
    files: Vec<Member>,
    nested: Vec<Member>,
    evidence: Evidence,
}

impl VerifiedPackage {
    /// The file name the institute gave the package.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
    /// SHA-256 of the package file.
    pub(crate) fn sha256(&self) -> Sha256 {
        self.sha256
    }
    /// Size of the package file in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    /// Site or data package.
    pub(crate) fn kind(&self) -> PackageKind {
        self.kind
    }
    /// The top-level regular files, in archive order, member lists included.
    pub(crate) fn files(&self) -> &[Member] {
        &self.files
    }
    /// For a data package, the files inside its inner zips, each path prefixed with the inner
    /// zip's path less `.zip` (`20210601_1852_PREP_GOB_CAMP/CAMP_GOB_2021.csv`). Empty for a
    /// site package, whose inner archives are served as opaque files.
    pub(crate) fn nested(&self) -> &[Member] {
        &self.nested
    }
    /// Which evidence the package had and what became of it.
    pub(crate) fn evidence(&self) -> &Evidence {
        &self.evidence
    }
}

/// Why a package was refused. Every variant is the sender's fault except [`Rejection::Io`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Rejection {
    /// The file is not a zip, tar or tar.gz archive, or is truncated or corrupt.
    #[error("not a readable archive: {0}")]
    NotAnArchive(String),
    /// The archive holds no files.
    #[error("the package is empty: it holds no files")]
    Empty,
    /// A member name that could escape the site or confuse a file system.
    #[error("unsafe member name {name:?}: {why}")]
    UnsafeName {
        /// The name as read (lossily decoded).
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A member that is not a regular file or a directory.
    #[error("member {name:?} is a {kind}; only regular files and directories are accepted")]
    NotARegularFile {
        /// The member's name.
        name: String,
        /// symlink, hard link, device, FIFO, …
        kind: &'static str,
    },
    /// Two members with the same name, or names that differ only in letter case or Unicode
    /// normalisation.
    #[error(
        "members {first:?} and {second:?} collide (the same name, or the same but for letter \
         case or Unicode normalisation)"
    )]
    Collision {
        /// The first name seen.
        first: String,
        /// The one that collides with it.
        second: String,
    },
    /// An archive that reads differently depending on how it is read: a zip whose local
    /// headers disagree with its central directory, a tar followed by more than zeros.
    #[error("ambiguous archive: {0}")]
    Ambiguous(String),
    /// A limit of [`Limits`] was passed.
    #[error(
        "limit passed: {what} (limit {limit}); this looks like a damaged package or an archive bomb"
    )]
    Limit {
        /// Which limit, in words, with the offending member when there is one.
        what: String,
        /// The configured value.
        limit: u64,
    },
    /// Evidence that does not match the package, or required evidence that is missing.
    #[error("evidence failed: {0}")]
    Evidence(String),
    /// Reading the archived copy failed: our fault, not the sender's.
    #[error("could not read the archived package: {0}")]
    Io(#[from] std::io::Error),
}

impl Rejection {
    /// Whose fault the rejection is: the institute's package, or this machine.
    pub(crate) fn is_senders_fault(&self) -> bool {
        !matches!(self, Rejection::Io(_))
    }
}

/// Opens, bounds and checks a received package against its evidence.
///
/// Order: size limit; open the archive (zip by its magic bytes, tar.gz by gzip magic, else
/// tar); every name and type check and every limit; nested archives for data packages;
/// then evidence (sidecar, member list, signature) by `policy`.
pub(crate) fn verify(
    incoming: &Incoming,
    policy: &EvidencePolicy,
    limits: &Limits,
) -> Result<VerifiedPackage, Rejection> {
    let opened = open::open(&incoming.path, incoming.size, limits)?;
    let evidence = evidence::check(incoming, &opened.files, policy)?;
    Ok(VerifiedPackage {
        name: incoming.name.clone(),
        sha256: incoming.sha256,
        size: incoming.size,
        kind: opened.kind,
        files: opened.files,
        nested: opened.nested,
        evidence,
    })
}

/// The corpus of bad packages shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/support/corpus.rs"]
mod corpus;

#[cfg(test)]
mod tests {
    //! Whole-package tests: the real fixture and the corpus of bad packages through [`verify`].

    use std::path::{Path, PathBuf};

    use super::*;

    use super::corpus;

    /// The real Campeche 2021 data package.
    pub(super) fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/real/20210601_1852_PREP_CAMP.zip")
    }

    /// The limits the integration tests configure, and a 16 MiB package size limit.
    pub(super) fn test_limits() -> Limits {
        Limits {
            max_package_bytes: 16 * 1024 * 1024,
            max_unpacked_bytes: 64 * 1024 * 1024,
            max_members: 1000,
            max_member_bytes: 8 * 1024 * 1024,
            max_ratio: 200,
            max_package_ratio: 100,
            max_depth: 2,
            max_name_len: 255,
        }
    }

    /// Every kind of evidence optional, no keys, the usual member list names.
    pub(super) fn lenient_policy() -> EvidencePolicy {
        EvidencePolicy {
            sidecar: Policy::IfPresent,
            member_list: Policy::IfPresent,
            signature: Policy::IfPresent,
            public_keys: Vec::new(),
            member_list_names: vec!["SHA256SUMS".to_owned(), "HASH".to_owned()],
        }
    }

    /// An [`Incoming`] for the file at `path`, with `<path>.sha256` as sidecar if it exists.
    pub(super) fn incoming(path: &Path) -> Incoming {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let sidecar = std::fs::read(path.with_file_name(format!("{name}.sha256")))
            .ok()
            .map(EvidenceFile::of_bytes);
        Incoming {
            name,
            path: path.to_owned(),
            sha256: Sha256::of(&bytes),
            size: bytes.len() as u64,
            sidecar,
            signature: None,
        }
    }

    #[test]
    fn the_real_package_verifies_as_data_with_its_inner_files() {
        let pkg = verify(&incoming(&fixture()), &lenient_policy(), &test_limits()).unwrap();
        assert_eq!(pkg.name(), "20210601_1852_PREP_CAMP.zip");
        assert_eq!(pkg.kind(), PackageKind::Data);
        assert_eq!(pkg.files().len(), 4);
        assert_eq!(pkg.nested().len(), 12);
        assert_eq!(
            pkg.evidence().to_string(),
            "sidecar absent; member list absent; signature absent"
        );
        let csv = pkg
            .nested()
            .iter()
            .find(|m| m.path == "20210601_1852_PREP_GOB_CAMP/CAMP_GOB_2021.csv")
            .unwrap();
        // SHA-256 of `unzip -p` of the inner zip's CAMP_GOB_2021.csv.
        assert_eq!(
            Sha256::of(&csv.bytes).to_hex(),
            "f8509df58fcd153885c18f91d3652c0c3706a693e05d8dfe2ceb51b62f1cfd92"
        );
    }

    #[test]
    fn the_real_package_verifies_against_a_sidecar() {
        let mut inc = incoming(&fixture());
        inc.sidecar = Some(EvidenceFile::Sent(
            sum_line(inc.sha256, &inc.name).into_bytes(),
        ));
        let policy = EvidencePolicy {
            sidecar: Policy::Required,
            ..lenient_policy()
        };
        let pkg = verify(&inc, &policy, &test_limits()).unwrap();
        assert_eq!(
            pkg.evidence().to_string(),
            "sidecar verified; member list absent; signature absent"
        );
        assert!(pkg.sha256() == inc.sha256 && pkg.size() == inc.size);
    }

    #[test]
    fn every_corpus_package_is_rejected_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = corpus::write_bad_packages(dir.path());
        assert!(corpus.len() >= 28, "only {} bad packages", corpus.len());
        let mut names = std::collections::HashSet::new();
        for bad in &corpus {
            assert!(
                names.insert(bad.file_name.clone()),
                "{} twice",
                bad.file_name
            );
            let path = dir.path().join(&bad.file_name);
            let on_disk = std::fs::metadata(&path).unwrap().len();
            assert!(on_disk < 1_000_000, "{} is {on_disk} bytes", bad.file_name);
            let result = verify(&incoming(&path), &lenient_policy(), &test_limits());
            let err = match result {
                Ok(pkg) => panic!("{} verified: {:?}", bad.file_name, pkg.files().len()),
                Err(e) => e.to_string(),
            };
            eprintln!("{}: {err}", bad.file_name);
            assert!(
                err.contains(bad.reason),
                "{}: expected {:?} in {err:?}",
                bad.file_name,
                bad.reason
            );
        }
    }

    #[test]
    fn only_io_rejections_are_our_fault() {
        let missing = Path::new("/nonexistent/20240602_2100_PREP.zip");
        let mut inc = incoming(&fixture());
        inc.path = missing.to_owned();
        let err = verify(&inc, &lenient_policy(), &test_limits()).unwrap_err();
        assert!(matches!(err, Rejection::Io(_)) && !err.is_senders_fault());
        assert!(Rejection::Empty.is_senders_fault());
    }
}
