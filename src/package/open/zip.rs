//! Reading a zip package, and the zips nested in a data package.
//!
//! A zip is read through its central directory, and refused whole when it is ambiguous (a name
//! twice in the directory, local headers that disagree with it, overlapping entries) or holds
//! more members than the budget allows, before any member is inflated. Every member then
//! passes the name rules ([`names`](super::names)) and its type is checked from its unix mode:
//! symlinks, devices, FIFOs, sockets and other special files are refused, and so is a member
//! marked as a folder (by its mode or DOS attribute) but named as a file and holding bytes,
//! which unzip would extract as a file. Member bytes are
//! read only through [`Budget::read_member`](super::limits::Budget::read_member), with the
//! compressed bytes actually pulled, so a lying declared size cannot hide a bomb. Nested zips
//! are opened to [`Limits::max_depth`](super::super::Limits), under the same budget.

use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};

use super::super::{Member, Rejection};
use super::limits::{CountingReader, Sizes};
use super::names::{collision, zip_name};
use super::{EntryKind, Walk, ends_with_ci};

/// The file type bits of a unix mode (`S_IFMT`).
const S_IFMT: u32 = 0o170_000;
/// Unix file type: regular file.
const S_IFREG: u32 = 0o100_000;
/// Unix file type: directory.
const S_IFDIR: u32 = 0o040_000;
/// Unix file type: symbolic link.
const S_IFLNK: u32 = 0o120_000;
/// Unix file type: character device.
const S_IFCHR: u32 = 0o020_000;
/// Unix file type: block device.
const S_IFBLK: u32 = 0o060_000;
/// Unix file type: FIFO (named pipe).
const S_IFIFO: u32 = 0o010_000;
/// Unix file type: socket.
const S_IFSOCK: u32 = 0o140_000;

impl Walk<'_> {
    /// Reads a zip archive at nesting `depth`; `prefix` is set for nested zips.
    pub(super) fn zip<R: Read + Seek>(
        &mut self,
        mut reader: R,
        depth: u32,
        prefix: Option<&str>,
    ) -> Result<Vec<Member>, Rejection> {
        let context = |e: &dyn std::fmt::Display| match prefix {
            Some(p) => format!("inner zip {p:?}.zip: {e}"),
            None => e.to_string(),
        };
        // The zip crate parses the whole central directory when it opens an archive, about
        // 200 bytes of memory for each 47-byte record: a directory of millions of empty
        // members would take gigabytes before their count could be refused. The count its
        // end record declares, which the crate holds the directory to, is refused first.
        if let Some(declared) = declared_members(&mut reader) {
            self.budget.check_members_ahead(declared)?;
        }
        let reader = CountingReader::new(reader, u64::MAX);
        let consumed = reader.counter();
        let mut archive =
            ::zip::ZipArchive::new(reader).map_err(|e| Rejection::NotAnArchive(context(&e)))?;
        self.budget.check_members_ahead(archive.len() as u64)?;
        if archive.has_duplicate_names() {
            let name = duplicate_zip_name(archive.into_inner())
                .unwrap_or_else(|| "(a name repeated in the zip's central directory)".to_owned());
            let name = match prefix {
                Some(p) => format!("{p}/{name}"),
                None => name,
            };
            return Err(collision(&name, &name));
        }
        archive.validate_header_consistency().map_err(|e| {
            let text = context(&e);
            if text.contains("header inconsistency") {
                Rejection::Ambiguous(text)
            } else {
                Rejection::NotAnArchive(text)
            }
        })?;
        let mut files = Vec::new();
        for index in 0..archive.len() {
            self.budget.count_member()?;
            let mut entry = archive.by_index(index).map_err(|e| {
                Rejection::NotAnArchive(context(&format_args!("member {index}: {e}")))
            })?;
            let name = zip_name(&entry)?;
            let kind = zip_kind(entry.unix_mode(), &name)?;
            if kind == EntryKind::Dir && !name.ends_with('/') && entry.size() > 0 {
                // unzip and every other reader go by the name and extract a file; read as a
                // folder, its bytes would be left out of the site without a word.
                return Err(Rejection::Ambiguous(context(&format_args!(
                    "member {name:?} is marked as a folder but named as a file, and holds {} \
                     bytes",
                    entry.size()
                ))));
            }
            let path = self.admit(&name, kind, prefix)?;
            if kind == EntryKind::Dir {
                continue;
            }
            let declared = entry.compressed_size();
            let before = consumed.get();
            let pulled = || consumed.get().saturating_sub(before);
            let sizes = Sizes {
                declared: entry.size(),
                compressed: Some(declared),
                pulled: Some(&pulled),
            };
            files.push(self.read_file(&mut entry, path, sizes)?);
        }
        if depth > 1 {
            let inner = self.open_inner_zips(&files, depth + 1)?;
            files.extend(inner);
        }
        Ok(files)
    }

    /// Opens every `.zip` among `files` as a nested archive at `depth`, and returns the files
    /// found inside (recursively), prefixed with the zip's path less `.zip`.
    pub(super) fn open_inner_zips(
        &mut self,
        files: &[Member],
        depth: u32,
    ) -> Result<Vec<Member>, Rejection> {
        let mut nested = Vec::new();
        for member in files.iter().filter(|m| ends_with_ci(&m.path, ".zip")) {
            if depth > self.limits().max_depth {
                return Err(Rejection::Limit {
                    what: format!("nesting depth, at {:?}", member.path),
                    limit: u64::from(self.limits().max_depth),
                });
            }
            let prefix = member
                .path
                .get(..member.path.len().saturating_sub(".zip".len()))
                .unwrap_or(&member.path);
            let reader = Cursor::new(member.bytes.clone());
            nested.extend(self.zip(reader, depth, Some(prefix))?);
        }
        Ok(nested)
    }
}

/// A zip member's kind from its unix mode (when it has one) and its name.
fn zip_kind(mode: Option<u32>, name: &str) -> Result<EntryKind, Rejection> {
    let by_name = if name.ends_with('/') {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    let Some(mode) = mode else {
        return Ok(by_name);
    };
    let not_regular = |kind| {
        Err(Rejection::NotARegularFile {
            name: name.to_owned(),
            kind,
        })
    };
    match mode & S_IFMT {
        0 | S_IFREG => Ok(by_name),
        S_IFDIR => Ok(EntryKind::Dir),
        S_IFLNK => not_regular("symlink"),
        S_IFCHR => not_regular("character device"),
        S_IFBLK => not_regular("block device"),
        S_IFIFO => not_regular("FIFO"),
        S_IFSOCK => not_regular("socket"),
        _ => not_regular("special file"),
    }
}

/// The number of members the end of central directory record of a zip declares (the zip64
/// record's when there is one), which the zip crate holds its directory to, read without
/// parsing the directory (the crate's iterable reader reads only the end records); `None`
/// when the crate finds no usable end record (opening the archive then says what is wrong).
fn declared_members<R: Read + Seek>(reader: &mut R) -> Option<u64> {
    let members = ::zip::unstable::read::ZipIterable::try_new(&mut *reader, Default::default())
        .ok()?
        .len();
    u64::try_from(members).ok()
}

/// Finds a name that appears twice among the local headers of a zip, for the message of a
/// duplicate-name rejection (the zip crate's central-directory index keeps only one of them).
/// Only the compressed bytes are read; `None` when the stream cannot be walked.
fn duplicate_zip_name<R: Read + Seek>(mut reader: R) -> Option<String> {
    reader.seek(SeekFrom::Start(0)).ok()?;
    let mut reader = BufReader::new(reader);
    let mut seen = std::collections::HashSet::new();
    loop {
        let entry = ::zip::read::read_zipfile_from_stream(&mut reader).ok()??;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if !seen.insert(name.clone()) {
            return Some(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{limit, not_regular, open_bytes, open_with, paths, stored};
    use super::declared_members;
    use crate::package::corpus::{
        TarKind, tar_of, zip_of, zip_of_empty_members, zip_with, zip_with_mode,
    };
    use crate::package::tests::test_limits;
    use crate::package::{Limits, PackageKind, Rejection};
    use std::io::Cursor;

    #[test]
    fn the_member_count_is_read_from_the_end_record_before_the_directory() {
        let declared = |bytes: &[u8]| declared_members(&mut Cursor::new(bytes));
        assert_eq!(declared(&zip_of(&[("a", b"1"), ("b", b"2")])), Some(2));
        assert_eq!(declared(&zip_of(&[])), Some(0));
        // Zip64: the classic record says 0xFFFF and points to the zip64 one.
        let big = zip_of_empty_members(70_000);
        assert_eq!(declared(&big), Some(70_000));
        let limits = Limits {
            max_members: 1_000,
            ..test_limits()
        };
        assert_eq!(limit(open_with(&big, &limits)), "number of members");
        // A comment ending in what looks like an end record claiming 60,000 members, with no
        // directory behind it: the zip crate passes over it, so no valid zip is refused.
        let mut fake = b"PK\x05\x06\0\0\0\0\x60\xea\x60\xea".to_vec();
        fake.extend_from_slice(&[0; 10]);
        let mut commented = zip_of(&[("a", b"1")]);
        let comment_len = commented.len() - 2;
        commented[comment_len..].copy_from_slice(&(fake.len() as u16).to_le_bytes());
        commented.extend_from_slice(&fake);
        assert!(declared(&commented).is_none_or(|n| n == 1));
        assert_eq!(paths(&open_bytes(&commented).unwrap().files), ["a"]);
        // No end record: left to the zip crate's refusal.
        assert_eq!(declared(b"PK\x05\x06 not a zip"), None);
        assert_eq!(declared(&[]), None);
        let cut = &big[..big.len() - 30];
        assert_eq!(declared(cut), None);
    }

    #[test]
    fn zip_members_that_are_not_regular_files_are_refused() {
        assert_eq!(
            not_regular(open_bytes(&zip_with_mode(
                "link",
                0o120_777,
                b"/etc/passwd"
            ))),
            "symlink"
        );
        for (mode, kind) in [
            (0o010_644, "FIFO"),
            (0o020_644, "character device"),
            (0o060_644, "block device"),
            (0o140_644, "socket"),
            (0o160_644, "special file"),
        ] {
            assert_eq!(
                not_regular(open_bytes(&zip_with_mode("x", mode, b""))),
                kind
            );
        }
        assert!(open_bytes(&zip_with_mode("x", 0o100_644, b"1")).is_ok());
        assert!(open_bytes(&zip_with_mode("x", 0o644, b"1")).is_ok());
    }

    #[test]
    fn a_zip_whose_local_name_differs_from_its_central_name_is_ambiguous() {
        let mut zip = zip_of(&[("index.html", b"<p>bien</p>"), ("other.html", b"x")]);
        // Rename the first entry in its local header only (its first occurrence).
        let at = zip.windows(10).position(|w| w == b"index.html").unwrap();
        zip[at..at + 10].copy_from_slice(b"evil.html!");
        match open_bytes(&zip) {
            Err(Rejection::Ambiguous(why)) => assert!(why.contains("filename mismatch"), "{why}"),
            other => panic!(
                "expected an ambiguous zip, got {:?}",
                other.map(|o| o.files.len())
            ),
        }
    }

    #[test]
    fn data_packages_open_their_inner_zips_recursively_within_the_depth() {
        let inner = zip_of(&[("LEEME.txt", b"hola"), ("X_GOB_2024.csv", b"1,2\n")]);
        let outer = zip_with(
            &[
                ("sub/20240603_2005_PREP_PRES.ZIP", &inner),
                ("LEEME.txt", b"x"),
            ],
            stored(),
        );
        let opened = open_bytes(&outer).unwrap();
        assert_eq!(opened.kind, PackageKind::Data);
        assert_eq!(
            paths(&opened.nested),
            [
                "sub/20240603_2005_PREP_PRES/LEEME.txt",
                "sub/20240603_2005_PREP_PRES/X_GOB_2024.csv"
            ]
        );

        let deepest = zip_of(&[("c.csv", b"1")]);
        let middle = zip_of(&[("b.zip", &deepest)]);
        let outer = zip_of(&[("a.zip", &middle)]);
        assert!(limit(open_bytes(&outer)).starts_with("nesting depth, at \"a/b.zip\""));
        let deeper = Limits {
            max_depth: 3,
            ..test_limits()
        };
        let opened = open_with(&outer, &deeper).unwrap();
        assert_eq!(paths(&opened.nested), ["a/b.zip", "a/b/c.csv"]);

        // A tar of zips is a data package too.
        let tar = tar_of(&[(b"a.zip", TarKind::File(&deepest))]);
        assert_eq!(paths(&open_bytes(&tar).unwrap().nested), ["a/c.csv"]);
    }
}
