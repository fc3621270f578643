//! Archive formats told by their first bytes ("magic numbers").
//!
//! This is the one place that knows the magic of every archive a package may come in: zip
//! (`PK\x03\x04`, or `PK\x05\x06` for a zip with no entries), gzip (`\x1f\x8b`, holding a tar)
//! and tar (`ustar` at byte 257). [`Format::sniff`] looks at no more than [`read_magic`]
//! reads, trusts nothing beyond those bytes, and never fails: bytes it does not know are
//! `None`. Opening the archive decides whether the rest agrees. It also names what is sent
//! by mistake under a package's name ([`mistaken_for_a_package`]: an empty file, another
//! archive format, a PDF, an HTML page), for the rejection to say what was received.

use std::io::{self, Read};

/// How many bytes [`Format::sniff`] may look at: the first tar header block, which holds the
/// latest magic number we know (`ustar` at byte 257).
const MAGIC_LEN: u64 = 512;

/// Reads up to [`MAGIC_LEN`] bytes from the start of `reader`: enough for every magic number
/// we know.
pub(crate) fn read_magic(reader: impl Read) -> io::Result<Vec<u8>> {
    let mut magic = Vec::with_capacity(MAGIC_LEN as usize);
    reader.take(MAGIC_LEN).read_to_end(&mut magic)?;
    Ok(magic)
}

/// The archive formats a package may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// A zip file (`PK\x03\x04`).
    Zip,
    /// A zip with no entries: only an end-of-central-directory record (`PK\x05\x06`).
    EmptyZip,
    /// A POSIX or GNU tar (`ustar` at byte 257).
    Tar,
    /// A gzip stream (`\x1f\x8b`), to hold a tar.
    TarGz,
}

impl Format {
    /// Tells the format from the first bytes (as [`read_magic`] reads them): zip and gzip
    /// magic, else the ustar magic of a tar header; `None` for anything else.
    pub(crate) fn sniff(magic: &[u8]) -> Option<Format> {
        if magic.starts_with(b"PK\x03\x04") {
            Some(Format::Zip)
        } else if magic.starts_with(b"PK\x05\x06") {
            Some(Format::EmptyZip)
        } else if magic.starts_with(b"\x1f\x8b") {
            Some(Format::TarGz)
        } else if has_ustar_magic(magic) {
            Some(Format::Tar)
        } else {
            None
        }
    }
}

/// What bytes that are no package are, when they are something a sender may deliver by
/// mistake under a package's name: nothing at all (an export or a copy that failed), another
/// archive format (RAR, 7-Zip, a tar compressed with xz, bzip2 or zstd), a PDF, or an HTML
/// page (a web server's error page saved as the package). `None` for anything else.
pub(crate) fn mistaken_for_a_package(magic: &[u8]) -> Option<&'static str> {
    const KNOWN: [(&[u8], &str); 6] = [
        (b"Rar!\x1a\x07", "a RAR archive"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip (.7z) archive"),
        (b"\xfd7zXZ\x00", "an xz stream (a .tar.xz or .xz file)"),
        (b"BZh", "a bzip2 stream (a .tar.bz2 or .bz2 file)"),
        (
            b"\x28\xb5\x2f\xfd",
            "a zstd stream (a .tar.zst or .zst file)",
        ),
        (b"%PDF-", "a PDF document"),
    ];
    if magic.is_empty() {
        return Some("an empty file (0 bytes): its export or its copy failed");
    }
    if let Some((_, what)) = KNOWN.iter().find(|(m, _)| magic.starts_with(m)) {
        return Some(what);
    }
    let text = magic
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(magic)
        .trim_ascii_start();
    let starts = |tag: &[u8]| {
        text.get(..tag.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(tag))
    };
    (starts(b"<!doctype html") || starts(b"<html"))
        .then_some("an HTML page (a web page, such as an error page, saved under its name)")
}

/// Whether `header` (the first tar block) carries the POSIX or GNU `ustar` magic at byte 257.
pub(super) fn has_ustar_magic(header: &[u8]) -> bool {
    header.get(257..262) == Some(b"ustar".as_slice())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{not_an_archive, open_bytes, paths};
    use super::{Format, mistaken_for_a_package, read_magic};
    use crate::package::corpus::{TarKind, gzip, tar_of, zip_of};
    use crate::package::{PackageKind, Rejection};

    #[test]
    fn what_is_sent_by_mistake_is_named() {
        assert!(mistaken_for_a_package(b"").unwrap().contains("empty"));
        assert!(
            mistaken_for_a_package(b"Rar!\x1a\x07\x01\x00")
                .unwrap()
                .contains("RAR")
        );
        let page = b"\xef\xbb\xbf\r\n  <!DOCTYPE HTML><title>404</title>";
        assert!(mistaken_for_a_package(page).unwrap().contains("HTML page"));
        assert!(mistaken_for_a_package(b"<HTML>").is_some());
        assert_eq!(mistaken_for_a_package(b"<p>hola</p>"), None);
        assert_eq!(mistaken_for_a_package(b"this is a text file"), None);
    }

    #[test]
    fn formats_are_told_by_their_magic_bytes() {
        let zip = zip_of(&[("index.html", b"<p>hola</p>")]);
        assert_eq!(paths(&open_bytes(&zip).unwrap().files), ["index.html"]);

        let tar = tar_of(&[(b"json/main.json", TarKind::File(b"{}"))]);
        let opened = open_bytes(&tar).unwrap();
        assert_eq!(
            (paths(&opened.files), opened.kind),
            (vec!["json/main.json"], PackageKind::Site)
        );
        assert_eq!(&opened.files[0].bytes[..], b"{}");

        let opened = open_bytes(&gzip(&tar)).unwrap();
        assert_eq!(paths(&opened.files), ["json/main.json"]);

        let text = not_an_archive(open_bytes(b"hello, this is not an archive"));
        assert!(text.contains("no known magic"), "{text}");
        let gz_text = not_an_archive(open_bytes(&gzip(b"plain text, gzipped")));
        assert!(gz_text.contains("tar"), "{gz_text}");
        assert!(matches!(open_bytes(b""), Err(Rejection::NotAnArchive(_))));
    }

    #[test]
    fn sniff_knows_each_magic_and_nothing_else() {
        assert_eq!(Format::sniff(b"PK\x03\x04rest"), Some(Format::Zip));
        assert_eq!(Format::sniff(b"PK\x05\x06"), Some(Format::EmptyZip));
        assert_eq!(Format::sniff(b"\x1f\x8b\x08"), Some(Format::TarGz));
        let tar = tar_of(&[(b"a.csv", TarKind::File(b"1"))]);
        assert_eq!(Format::sniff(&tar), Some(Format::Tar));
        for other in [&b"PK\x01\x02"[..], b"CAMP,GOB\n", b"\x1f", b""] {
            assert_eq!(Format::sniff(other), None, "{other:?}");
        }
        let long = vec![b'x'; 4096];
        assert_eq!(read_magic(&long[..]).unwrap().len(), 512);
    }
}
