//! Archive formats told by their first bytes ("magic numbers").
//!
//! This is the one place that knows the magic of every archive a package may come in: zip
//! (`PK\x03\x04`, or `PK\x05\x06` for a zip with no entries), gzip (`\x1f\x8b`, holding a tar)
//! and tar (`ustar` at byte 257). [`Format::sniff`] looks at no more than [`read_magic`]
//! reads, trusts nothing beyond those bytes, and never fails: bytes it does not know are
//! `None`. Opening the archive decides whether the rest agrees.

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

/// Whether `header` (the first tar block) carries the POSIX or GNU `ustar` magic at byte 257.
pub(super) fn has_ustar_magic(header: &[u8]) -> bool {
    header.get(257..262) == Some(b"ustar".as_slice())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{not_an_archive, open_bytes, paths};
    use super::{Format, read_magic};
    use crate::package::corpus::{TarKind, gzip, tar_of, zip_of};
    use crate::package::{PackageKind, Rejection};

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
