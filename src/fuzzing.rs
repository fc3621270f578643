//! Entry points for the fuzz targets of `fuzz/`: each takes raw bytes, hands them to the code
//! that reads that kind of input in the program, with the limits and settings the program
//! uses by default, and returns nothing.
//!
//! Guarantees: nothing here is a copy or a simplification of the code under test; a rejection
//! is a normal outcome and is ignored; a panic, an abort or a violated invariant (checked with
//! `assert!`) is a finding. Files the real code reads from disk (a package, a config file)
//! are written to one private temporary folder per process, removed when it exits normally.
//! These functions are for fuzzing only: the program itself never calls them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::config::{self, Config, SettingArgs};
use crate::hash::Sha256;
use crate::package::{self, Incoming, MAX_EVIDENCE_BYTES, Member, PackageSettings};
use crate::sections::Sections;

/// The settings every target runs with: the defaults of the generic profile, no config file,
/// nothing from the environment.
fn defaults() -> &'static Sections {
    static SECTIONS: OnceLock<Sections> = OnceLock::new();
    SECTIONS.get_or_init(|| {
        let settings = config::resolve_embedded(&SettingArgs::default())
            .expect("the default settings resolve");
        let config = Config::from_settings(settings).expect("the default settings are valid");
        Sections::new(config).expect("the default settings validate")
    })
}

/// The package settings of [`defaults`].
fn package_settings() -> &'static PackageSettings {
    &defaults().package
}

/// A private folder for the files the real code reads from disk, one per process.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("difusor-fuzz-")
            .tempdir()
            .expect("a temporary folder")
    })
    .path()
}

/// Writes `bytes` to `name` in the scratch folder and returns its path.
fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("writing to the temporary folder");
    path
}

/// A received package: `bytes` as the package file `20210601_1852_PREP_CAMP.zip` (whatever
/// its format), opened and verified as the publisher does, nested zips included, with the
/// default limits and evidence policy.
pub fn package(bytes: &[u8]) {
    let settings = package_settings();
    let path = scratch_file("package", bytes);
    let incoming = Incoming {
        name: "20210601_1852_PREP_CAMP.zip".to_owned(),
        path,
        sha256: Sha256::of(bytes),
        size: bytes.len() as u64,
        sidecar: None,
        signature: None,
    };
    if let Ok(verified) = package::verify(&incoming, &settings.evidence, &settings.limits) {
        let limits = &settings.limits;
        let members = verified.files().len() + verified.nested().len();
        assert!(
            members as u64 <= limits.max_members,
            "more members than the limit"
        );
        let unpacked: u64 = verified
            .files()
            .iter()
            .chain(verified.nested())
            .map(|m| m.bytes.len() as u64)
            .sum();
        assert!(
            unpacked <= limits.max_unpacked_bytes,
            "more bytes than the limit"
        );
        for member in verified.files().iter().chain(verified.nested()) {
            assert!(member.bytes.len() as u64 <= limits.max_member_bytes);
            assert!(
                !member
                    .path
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == ".."),
                "unsafe path {:?} accepted",
                member.path
            );
        }
    }
}

/// The name of the package [`evidence`] checks evidence for.
pub const EVIDENCE_PACKAGE: &str = "20210601_1852_PREP_CAMP.zip";

/// The bytes whose SHA-256 is the package's in [`evidence`] (a `.sha256` sidecar matches
/// when it gives this digest).
pub const EVIDENCE_PACKAGE_BYTES: &[u8] = b"package";

/// The files besides the member list that the package of [`evidence`] holds, as (path, bytes).
pub const EVIDENCE_FILES: &[(&str, &[u8])] = &[
    ("20210601_1852_PREP_GOB_CAMP.zip", b"gob"),
    ("LEEME.txt", b"leeme\n"),
];

/// Evidence: `bytes` split at the first NUL into a `.sha256` sidecar (kept only when it is
/// UTF-8 and within the size read from senders) and a member list `SHA256SUMS` that the
/// package holds beside [`EVIDENCE_FILES`]; checked as `verify` checks them, with the default
/// policy, and the sidecar read as the HTTPS pull channel reads it too.
pub fn evidence(bytes: &[u8]) {
    let (sidecar, list) = match bytes.iter().position(|&b| b == 0) {
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (bytes, &[][..]),
    };
    let sidecar = (sidecar.len() as u64 <= MAX_EVIDENCE_BYTES)
        .then(|| std::str::from_utf8(sidecar).ok())
        .flatten();
    if let Some(text) = sidecar {
        let _ = package::sidecar_digest(text, EVIDENCE_PACKAGE);
        let _ = package::sidecar_single_entry(text);
    }
    let mut files: Vec<Member> = EVIDENCE_FILES
        .iter()
        .map(|(path, bytes)| Member::new(*path, bytes::Bytes::from_static(bytes)))
        .collect();
    files.push(Member::new(
        "SHA256SUMS",
        bytes::Bytes::copy_from_slice(list),
    ));
    let incoming = Incoming {
        name: EVIDENCE_PACKAGE.to_owned(),
        path: scratch().join("not-read"),
        sha256: Sha256::of(EVIDENCE_PACKAGE_BYTES),
        size: EVIDENCE_PACKAGE_BYTES.len() as u64,
        sidecar: sidecar.map(|text| package::EvidenceFile::Sent(text.as_bytes().to_vec())),
        signature: None,
    };
    let _ = package::check_evidence(&incoming, &files, &package_settings().evidence);
}

/// A PREP results CSV: `bytes` as the member `20210601_1852_PREP_GOB_CAMP/CAMP_GOB_2021.csv`
/// of a data package, inspected as the publisher inspects one (summary checked against every
/// known definition) and its report rendered as `difusor inspect` prints it.
pub fn prep_csv(bytes: &[u8]) {
    let member = Member::new(
        "20210601_1852_PREP_GOB_CAMP/CAMP_GOB_2021.csv",
        bytes::Bytes::copy_from_slice(bytes),
    );
    let reglas = defaults().summary.reglas;
    let report = crate::prep::inspect_members("fuzz", &[&member], reglas, &|_| {});
    let _ = crate::prep::render(&report);
}

/// A request path as a visitor sends it: normalised as the public listener does before it
/// looks anything up. A path it accepts must be absolute, without empty, `.` or `..`
/// segments, backslashes or NULs.
pub fn request_path(raw: &str) {
    if let Some(path) = crate::http::normalise(raw) {
        assert!(path.starts_with('/'), "{raw:?} became {path:?}");
        assert!(!path.contains("//"), "{raw:?} became {path:?}");
        assert!(!path.contains(['\\', '\0']), "{raw:?} became {path:?}");
        assert!(
            !path.split('/').any(|s| s == "." || s == ".."),
            "{raw:?} became {path:?}"
        );
    }
}

/// A config file: `bytes` as `difusor.toml`, read and validated as every command does at
/// start (profile, file, every module's settings), with no flags and no environment.
pub fn config_file(bytes: &[u8]) {
    let path = scratch_file("difusor.toml", bytes);
    let _ = Sections::load(Some(&path), &SettingArgs::default());
}
