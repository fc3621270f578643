//! Opening a package archive: zip, tar or tar.gz, and the zips nested in a data package.
//!
//! [`open`] reads every member into memory and returns them only if the whole archive passed
//! every rule of the parent module's "What it never unpacks": safe names, regular files and
//! directories only, no two names equal but for case or Unicode normalisation, a zip whose
//! local headers agree with its central directory, a tar that ends with its end-of-archive
//! marker and nothing after it but zero padding, and every [`Limits`] value measured on the
//! bytes actually inflated, as they are inflated, so a bomb is stopped after a few megabytes. Nothing here trusts a size, a type or
//! a count that the archive declares; archive bytes can make it return a [`Rejection`], never
//! panic.
//!
//! One [`Walk`] goes over a package and everything nested in it; its parts are:
//! - [`format`](mod@format): which archive format the first bytes show;
//! - [`limits`]: the budget of members, sizes and ratios, and the reads that spend it;
//! - [`digest`]: the SHA-256 of each member (its ETag), computed while it is read;
//! - [`names`]: the rules every member name must pass, and the collisions between names;
//! - [`zip`] and [`tar`]: reading each format's members through the
//!   budget and the name rules.

mod digest;
mod format;
mod limits;
mod names;
mod tar;
mod zip;

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::{Limits, Member, PackageKind, Rejection};

pub(crate) use format::{Format, mistaken_for_a_package, read_magic};
use limits::{Budget, Sizes, check_package_size};
use names::Names;
pub(crate) use names::comparable as comparable_path;

/// An archive that passed every check of this module.
#[derive(Debug)]
pub(super) struct Opened {
    /// Site or data package, decided from the top-level files.
    pub(super) kind: PackageKind,
    /// The regular files of the package itself, in archive order.
    pub(super) files: Vec<Member>,
    /// For a data package, the files inside its zips (recursively), each prefixed with the path
    /// of its zip less `.zip`; empty for a site package.
    pub(super) nested: Vec<Member>,
}

/// Opens the package at `path` (`size` bytes, as received) and checks it whole.
///
/// Returns [`Rejection::Io`] only when the file cannot be opened or its first bytes cannot be
/// read; everything wrong with the archive itself is the sender's fault.
pub(super) fn open(path: &Path, size: u64, limits: &Limits) -> Result<Opened, Rejection> {
    check_package_size(size, limits)?;
    let mut file = File::open(path)?;
    let actual = file.metadata()?.len();
    check_package_size(actual, limits)?;
    let magic = read_magic(&mut file)?;
    file.seek(SeekFrom::Start(0))?;

    let mut walk = Walk::new(limits, actual);
    let files = match Format::sniff(&magic) {
        Some(Format::Zip) => walk.zip(BufReader::new(file), 1, None)?,
        Some(Format::EmptyZip) => return Err(Rejection::Empty),
        Some(Format::Tar) => walk.tar(BufReader::new(file))?,
        Some(Format::TarGz) => walk.tar_gz(file, actual)?,
        None => {
            return Err(Rejection::NotAnArchive(
                match format::mistaken_for_a_package(&magic) {
                    Some(what) => format!(
                        "not a zip, tar or tar.gz file: it is {what}; a package is sent as \
                         zip, tar or tar.gz"
                    ),
                    None => "not a zip, tar or tar.gz file (no known magic number)".to_owned(),
                },
            ));
        }
    };
    if files.is_empty() {
        return Err(Rejection::Empty);
    }
    let kind = kind_of(&files);
    let nested = match kind {
        PackageKind::Data => walk.open_inner_zips(&files, 2)?,
        PackageKind::Site => Vec::new(),
    };
    Ok(Opened {
        kind,
        files,
        nested,
    })
}

/// Site or data: data when every top-level file is a zip, CSV or TXT, or has no extension
/// (hash lists such as `SHA256SUMS` or `HASH`), and one is a zip or CSV.
fn kind_of(files: &[Member]) -> PackageKind {
    let data_like = |m: &Member| ends_with_ci(&m.path, ".zip") || ends_with_ci(&m.path, ".csv");
    let no_extension = |m: &Member| !m.path.rsplit('/').next().unwrap_or("").contains('.');
    let allowed = |m: &Member| data_like(m) || ends_with_ci(&m.path, ".txt") || no_extension(m);
    if files.iter().all(allowed) && files.iter().any(data_like) {
        PackageKind::Data
    } else {
        PackageKind::Site
    }
}

/// Case-insensitive ASCII suffix test that never slices inside a character.
fn ends_with_ci(path: &str, suffix: &str) -> bool {
    let (p, s) = (path.as_bytes(), suffix.as_bytes());
    p.len() >= s.len() && p[p.len() - s.len()..].eq_ignore_ascii_case(s)
}

/// What a member is, once its type has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    /// A regular file: its bytes become a [`Member`].
    File,
    /// A directory: its name is checked and counted, nothing is kept.
    Dir,
}

/// The state of one walk over a package: limits consumed so far (nested archives included)
/// and every name seen, for collision checks. The readers of [`zip`] and
/// [`tar`] add their methods to it.
struct Walk<'l> {
    /// What this package may still spend.
    budget: Budget<'l>,
    /// Every path seen so far, as it will be served.
    names: Names,
}

impl<'l> Walk<'l> {
    /// A walk over a package file of `package_bytes` that has consumed nothing yet.
    fn new(limits: &'l Limits, package_bytes: u64) -> Self {
        Walk {
            budget: Budget::new(limits, package_bytes),
            names: Names::default(),
        }
    }

    /// The limits of this package.
    fn limits(&self) -> &'l Limits {
        self.budget.limits()
    }

    /// Reads one file at `path` through the budget ([`Budget::read_member`]), hashed while
    /// it is read ([`digest`]).
    fn read_file(
        &mut self,
        reader: &mut dyn Read,
        path: String,
        sizes: Sizes<'_>,
    ) -> Result<Member, Rejection> {
        let budget = &mut self.budget;
        let (bytes, sha256) =
            digest::while_reading(|feed| budget.read_member(reader, &path, sizes, feed))?;
        Ok(Member {
            path,
            bytes,
            sha256,
        })
    }

    /// Checks a member's name and records it; returns the path it will be served under.
    ///
    /// `prefix` is the nested zip's path less `.zip`, for members of nested zips.
    fn admit(
        &mut self,
        name: &str,
        kind: EntryKind,
        prefix: Option<&str>,
    ) -> Result<String, Rejection> {
        let max_len = self.limits().max_name_len;
        self.names.admit(name, kind, prefix, max_len)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::hash::Sha256;
    use crate::package::corpus::{TarKind, gzip, tar_of, zip_of, zip_with_mode};
    use crate::package::tests::{fixture, test_limits};

    pub(super) const MIB: usize = 1024 * 1024;

    /// Opens `bytes` as a package file with `limits`.
    pub(super) fn open_with(bytes: &[u8], limits: &Limits) -> Result<Opened, Rejection> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        open(file.path(), bytes.len() as u64, limits)
    }

    /// Opens `bytes` as a package file with the test limits.
    pub(super) fn open_bytes(bytes: &[u8]) -> Result<Opened, Rejection> {
        open_with(bytes, &test_limits())
    }

    pub(super) fn paths(members: &[Member]) -> Vec<&str> {
        members.iter().map(|m| m.path.as_str()).collect()
    }

    pub(super) fn stored() -> ::zip::write::SimpleFileOptions {
        ::zip::write::SimpleFileOptions::default()
            .compression_method(::zip::CompressionMethod::Stored)
            .system(::zip::System::Unix)
    }

    /// The `why` of an unsafe-name rejection.
    pub(super) fn why(result: Result<Opened, Rejection>) -> &'static str {
        match result {
            Err(Rejection::UnsafeName { why, .. }) => why,
            other => panic!(
                "expected an unsafe name, got {:?}",
                other.map(|o| o.files.len())
            ),
        }
    }

    /// The `kind` of a not-a-regular-file rejection.
    pub(super) fn not_regular(result: Result<Opened, Rejection>) -> &'static str {
        match result {
            Err(Rejection::NotARegularFile { kind, .. }) => kind,
            other => panic!(
                "expected a non-regular file, got {:?}",
                other.map(|o| o.files.len())
            ),
        }
    }

    /// The `what` of a limit rejection.
    pub(super) fn limit(result: Result<Opened, Rejection>) -> String {
        match result {
            Err(Rejection::Limit { what, .. }) => what,
            other => panic!("expected a limit, got {:?}", other.map(|o| o.files.len())),
        }
    }

    pub(super) fn not_an_archive(result: Result<Opened, Rejection>) -> String {
        match result {
            Err(Rejection::NotAnArchive(why)) => why,
            other => panic!(
                "expected not an archive, got {:?}",
                other.map(|o| o.files.len())
            ),
        }
    }

    #[test]
    fn a_data_package_may_carry_a_hash_list() {
        let inner = zip_of(&[("A_GOB_2024.csv", b"x".as_slice())]);
        let outer = zip_of(&[
            ("P_GOB.zip", inner.as_slice()),
            ("SHA256SUMS", b"".as_slice()),
        ]);
        let opened = open_bytes(&outer).unwrap();
        assert_eq!(opened.kind, PackageKind::Data);
        assert_eq!(paths(&opened.nested), ["P_GOB/A_GOB_2024.csv"]);
    }

    #[test]
    fn the_real_package_opens_as_data_with_inner_files_byte_for_byte() {
        let bytes = std::fs::read(fixture()).unwrap();
        let opened = open_bytes(&bytes).unwrap();
        assert_eq!(opened.kind, PackageKind::Data);
        assert_eq!(
            paths(&opened.files),
            [
                "20210601_1852_PREP_GOB_CAMP.zip",
                "20210601_1852_PREP_DIP_LOC_CAMP.zip",
                "20210601_1852_PREP_AYUN_CAMP.zip",
                "20210601_1852_PREP_JUNTAS_CAMP.zip",
            ]
        );
        let nested = paths(&opened.nested);
        assert_eq!(nested.len(), 12);
        assert!(nested.contains(&"20210601_1852_PREP_GOB_CAMP/LEEME.txt"));
        assert!(
            nested.contains(&"20210601_1852_PREP_JUNTAS_CAMP/CAMP_JUNTAS_CANDIDATURA_2021.csv")
        );
        let csv = opened
            .nested
            .iter()
            .find(|m| m.path == "20210601_1852_PREP_GOB_CAMP/CAMP_GOB_2021.csv")
            .unwrap();
        assert_eq!(csv.bytes.len(), 146_623);
        assert_eq!(
            Sha256::of(&csv.bytes).to_hex(),
            "f8509df58fcd153885c18f91d3652c0c3706a693e05d8dfe2ceb51b62f1cfd92"
        );
        // The inner zips themselves are served byte for byte too.
        assert_eq!(opened.files[0].bytes.len(), 17_195);
    }

    #[test]
    fn damaged_copies_of_the_real_package_never_panic() {
        let bytes = std::fs::read(fixture()).unwrap();
        let mut rng = fastrand::Rng::with_seed(2021);
        for round in 0..300 {
            let mut copy = bytes.clone();
            match round % 3 {
                0 => copy.truncate(rng.usize(..copy.len())),
                _ => {
                    for _ in 0..rng.usize(1..8) {
                        let at = rng.usize(..copy.len());
                        copy[at] = rng.u8(..);
                    }
                }
            }
            let _ = open_bytes(&copy);
        }
    }

    #[test]
    fn empty_archives_and_directory_only_archives_are_empty() {
        let empty = zip_of(&[]);
        assert!(matches!(open_bytes(&empty), Err(Rejection::Empty)));
        let dirs_only = zip_with_mode("css/", 0o040_755, b"");
        assert!(matches!(open_bytes(&dirs_only), Err(Rejection::Empty)));
        let empty_tar = {
            let mut header = ::tar::Header::new_ustar();
            header.set_path("css/").unwrap();
            header.set_entry_type(::tar::EntryType::Directory);
            header.set_size(0);
            header.set_cksum();
            let mut b = ::tar::Builder::new(Vec::new());
            b.append(&header, &b""[..]).unwrap();
            b.into_inner().unwrap()
        };
        assert!(matches!(open_bytes(&empty_tar), Err(Rejection::Empty)));
    }

    #[test]
    fn site_packages_serve_inner_zips_unopened() {
        let inner = zip_of(&[("bomb.csv", &vec![0u8; 2 * MIB])]);
        let site = zip_of(&[("index.html", b"<p>"), ("descargas/datos.zip", &inner)]);
        let opened = open_bytes(&site).unwrap();
        assert_eq!(opened.kind, PackageKind::Site);
        assert!(opened.nested.is_empty());
        assert_eq!(&opened.files[1].bytes[..], &inner[..]);
    }

    #[test]
    fn the_kind_follows_the_top_level_files() {
        let kind = |members: &[(&str, &[u8])]| open_bytes(&zip_of(members)).unwrap().kind;
        assert_eq!(
            kind(&[("a.CSV", b"1"), ("LEEME.TXT", b"x")]),
            PackageKind::Data
        );
        assert_eq!(kind(&[("LEEME.txt", b"x")]), PackageKind::Site);
        assert_eq!(
            kind(&[("a.csv", b"1"), ("index.html", b"x")]),
            PackageKind::Site
        );
    }

    #[test]
    fn damaged_archives_are_not_archives() {
        let text: Vec<u8> = (0..5000u32)
            .flat_map(|i| format!("{i},{}\n", i * 7).into_bytes())
            .collect();
        let zip = zip_of(&[("a.csv", &text)]);
        assert!(!not_an_archive(open_bytes(&zip[..zip.len() - 30])).is_empty());
        let mut corrupt = zip.clone();
        for byte in &mut corrupt[100..110] {
            *byte ^= 0xff;
        }
        let why = not_an_archive(open_bytes(&corrupt));
        assert!(why.contains("a.csv"), "{why}");
        let tar_gz = gzip(&tar_of(&[(b"a.csv", TarKind::File(&text))]));
        assert!(!not_an_archive(open_bytes(&tar_gz[..tar_gz.len() - 10])).is_empty());
        let tar = tar_of(&[(b"a.csv", TarKind::File(&text))]);
        assert!(!not_an_archive(open_bytes(&tar[..3000])).is_empty());
    }
}
