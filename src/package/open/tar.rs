//! Reading a tar or tar.gz package.
//!
//! The whole tar stream is capped ([`Budget::tar_stream_cap`](super::limits::Budget)), so the
//! tar reader itself cannot be made to buffer without bound; a tar.gz stream is inflated to its
//! end, so its checksum is verified and its compression ratio measured. Every member passes the
//! name rules ([`names`](super::names)), and only regular files and directories are accepted:
//! links, devices, FIFOs and sparse files (GNU `S` entries, and regular entries whose pax
//! header carries `GNU.sparse.*` keys, whose data is a map of pieces) are refused. A tar must
//! end with its end-of-archive marker, so one cut short at a member boundary is refused as
//! incomplete, not read as whole; and nothing but zeros (the padding `tar` writes to its
//! record size) may follow that marker, in a plain tar as in a tar.gz stream: bytes there
//! are no part of the tar, yet other programs read them (every zip reader opens a zip
//! appended to a tar), so such a file is refused as ambiguous. A tar.gz file is read as
//! `gzip -d` reads it: its gzip members one after the other, then zeros only (bsdtar, the
//! tar of macOS and Windows, pads what it writes to a pipe with zeros to its 10 KiB block);
//! any other byte after its last member is refused as ambiguous too, saying where it is.
//!
//! # Guarantees
//! - The headers read before a member (pax extended headers, GNU long names, which the tar
//!   reader holds in memory whole) are held to
//!   [`Budget::tar_header_room`](super::limits::Budget): a header of a gigabyte is refused
//!   after that room, not read.
//! - A tar.gz stream is refused as soon as it inflates past `max_ratio` times its compressed
//!   size, not once it has been inflated to its end.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek};

use flate2::bufread::GzDecoder;

use super::super::{Member, Rejection};
use super::format::{has_ustar_magic, read_magic};
use super::limits::{Counter, CountingReader, Sizes, ratio_bound};
use super::names::tar_name;
use super::{EntryKind, Walk};

/// What a tar stream is read from, for what its limits say when one is passed.
#[derive(Clone, Copy)]
enum Stream {
    /// A plain tar file.
    Plain,
    /// A tar.gz file of `compressed` bytes.
    Gzip { compressed: u64 },
}

impl Walk<'_> {
    /// Reads a plain tar archive.
    pub(super) fn tar<R: Read>(&mut self, reader: R) -> Result<Vec<Member>, Rejection> {
        let stream = CountingReader::new(reader, self.budget.tar_stream_cap());
        let counter = stream.counter();
        self.tar_entries(stream, &counter, Stream::Plain)
    }

    /// Reads a gzip-compressed tar archive of `compressed` bytes; the whole stream, what
    /// follows the tar included, is inflated so its checksum is verified, and held to
    /// `max_ratio` as it inflates.
    pub(super) fn tar_gz(&mut self, file: File, compressed: u64) -> Result<Vec<Member>, Rejection> {
        let gz = GzipMembers::new(BufReader::new(file));
        let cap = self
            .budget
            .tar_stream_cap()
            .min(ratio_bound(compressed, self.limits()));
        let mut stream = CountingReader::new(gz, cap);
        let counter = stream.counter();
        let kind = Stream::Gzip { compressed };
        let first = read_magic(&mut stream)
            .map_err(|e| self.tar_error(&counter, kind, "gzip stream", &e))?;
        if !has_ustar_magic(&first) {
            return Err(Rejection::NotAnArchive(
                "the gzip stream does not hold a tar archive (no ustar magic)".to_owned(),
            ));
        }
        self.tar_entries(Cursor::new(first).chain(stream), &counter, kind)
    }

    /// Explains an error met while reading a tar stream: a limit of its reader, or a damaged
    /// archive.
    fn tar_error(
        &self,
        counter: &Counter,
        stream: Stream,
        what: &str,
        e: &dyn std::fmt::Display,
    ) -> Rejection {
        if counter.stretch_tripped() {
            return Rejection::Limit {
                what: "headers before one tar member (pax extended headers, GNU long names)"
                    .to_owned(),
                limit: self.budget.tar_header_room(),
            };
        }
        if !counter.tripped() {
            return Rejection::NotAnArchive(format!("{what}: {e}"));
        }
        match stream {
            Stream::Gzip { compressed } if counter.cap() < self.budget.tar_stream_cap() => {
                Rejection::Limit {
                    what: format!(
                        "compression ratio of the tar.gz stream (more than {} bytes inflated \
                         from {compressed})",
                        counter.cap()
                    ),
                    limit: self.limits().max_ratio,
                }
            }
            _ => Rejection::Limit {
                what: "size of the unpacked tar stream, headers included".to_owned(),
                limit: self.budget.tar_stream_cap(),
            },
        }
    }

    /// Walks the entries of a tar stream, then reads what follows its end-of-archive marker
    /// to the end of the stream: zero padding only ([`past_the_end`]).
    fn tar_entries<R: Read>(
        &mut self,
        stream: R,
        counter: &Counter,
        kind: Stream,
    ) -> Result<Vec<Member>, Rejection> {
        let mut archive = ::tar::Archive::new(stream);
        let mut files = Vec::new();
        let mut entries = archive
            .entries()
            .map_err(|e| self.tar_error(counter, kind, "tar", &e))?;
        let room = self.budget.tar_header_room();
        // Data of the entry before that the reader skips on its way to the next header.
        let mut skipped = 0;
        loop {
            counter.bound_next(room.saturating_add(padded(skipped)));
            let next = entries
                .next()
                .map(|e| e.map_err(|e| self.tar_error(counter, kind, "tar", &e)));
            counter.unbound();
            let Some(entry) = next else { break };
            let mut entry = entry?;
            skipped = entry.size();
            let entry_type = entry.header().entry_type();
            if entry_type.is_pax_global_extensions() {
                // Archive-wide metadata (e.g. `git archive`'s commit id): not a member.
                continue;
            }
            self.budget.count_member()?;
            let name = tar_name(&entry.path_bytes())?;
            let kind_of = tar_kind(entry_type, &name)?;
            let pax = Pax::of(&mut entry).map_err(|e| self.tar_error(counter, kind, "tar", &e))?;
            if let Some(real_name) = pax.sparse {
                return Err(Rejection::NotARegularFile {
                    name: real_name.unwrap_or(name),
                    kind: "sparse file",
                });
            }
            if let Some(pax_path) = pax.path.filter(|p| **p != *entry.path_bytes()) {
                return Err(Rejection::Ambiguous(format!(
                    "tar member {name:?} is named {:?} by its pax header, the name GNU tar and \
                     other readers give it",
                    String::from_utf8_lossy(&pax_path)
                )));
            }
            let path = self.admit(&name, kind_of, None)?;
            if kind_of == EntryKind::Dir {
                continue;
            }
            let sizes = Sizes {
                declared: entry.size(),
                compressed: None,
                pulled: None,
            };
            let member = self
                .read_file(&mut entry, path, sizes)
                .map_err(|e| match e {
                    Rejection::NotAnArchive(m) if counter.tripped() => {
                        self.tar_error(counter, kind, "", &m)
                    }
                    other => other,
                })?;
            skipped = 0;
            files.push(member);
        }
        // The tar reader stops at the first zero block, or quietly at the end of the stream:
        // an archive cut at a member boundary reads as a whole one but for that marker.
        if counter.reached_end() {
            return Err(Rejection::NotAnArchive(
                "the tar archive ends without its end-of-archive marker (two zero blocks): it \
                 is incomplete, cut short or still being written"
                    .to_owned(),
            ));
        }
        let what = match kind {
            Stream::Plain => "tar",
            Stream::Gzip { .. } => "gzip stream",
        };
        let past = past_the_end(archive.into_inner(), counter).map_err(|e| {
            match e.get_ref().and_then(|e| e.downcast_ref::<NotGzip>()) {
                Some(NotGzip(at)) => Rejection::Ambiguous(format!(
                    "bytes that are neither gzip nor zero padding follow the gzip stream (from \
                     byte {at} of the file): they are no part of the tar.gz, yet other programs \
                     read them (a zip appended to a tar.gz is the archive every zip reader \
                     opens); a package is one archive"
                )),
                None => self.tar_error(counter, kind, what, &e),
            }
        })?;
        if let Some(at) = past {
            return Err(Rejection::Ambiguous(format!(
                "bytes other than zeros follow the tar archive's end-of-archive marker (from \
                 byte {at} of the tar stream): they are no part of the tar, yet other programs \
                 read them (a zip appended to a tar is the archive every zip reader opens); a \
                 package is one archive"
            )));
        }
        Ok(files)
    }
}

/// Reads `rest`, a tar stream after its end-of-archive marker, to its end, and returns where
/// the first byte that is not zero is in the stream ([`Counter::get`] counts its bytes), if
/// one is: `tar` pads an archive with zeros to its record size, and nothing else belongs
/// there. Stops at that byte.
fn past_the_end(mut rest: impl Read, counter: &Counter) -> io::Result<Option<u64>> {
    let mut chunk = [0u8; 8192];
    loop {
        let n = match rest.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(i) = chunk.get(..n).and_then(|c| c.iter().position(|&b| b != 0)) {
            let start = counter.get().saturating_sub(n as u64);
            return Ok(Some(start.saturating_add(i as u64)));
        }
    }
}

/// The inflated bytes of a gzip file, its members one after the other as `gzip -d` reads
/// them; zeros after the last member are padding, as `gzip -d` takes them (bsdtar, the tar
/// of macOS and Windows, pads what it writes to a pipe with zeros to its 10 KiB block), and
/// any other byte there ends the stream with a [`NotGzip`] error.
struct GzipMembers<R> {
    /// The member being inflated; `None` once the stream has ended, or failed.
    member: Option<GzDecoder<R>>,
}

/// What follows the last gzip member of a file, from this byte of it, is neither another
/// member nor zeros.
#[derive(Debug)]
struct NotGzip(u64);

impl std::fmt::Display for NotGzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bytes that are not gzip from byte {}", self.0)
    }
}

impl std::error::Error for NotGzip {}

impl<R: BufRead + Seek> GzipMembers<R> {
    /// The members of the gzip file `file`, from its start.
    fn new(file: R) -> Self {
        Self {
            member: Some(GzDecoder::new(file)),
        }
    }

    /// After a member has ended: the next one, or `None` at the end of the file, past zeros
    /// only.
    fn next_member(mut file: R) -> io::Result<Option<GzDecoder<R>>> {
        let at = file.stream_position()?;
        let mut head = Vec::with_capacity(2);
        file.by_ref().take(2).read_to_end(&mut head)?;
        if head == [0x1f, 0x8b] {
            file.seek_relative(-2)?;
            return Ok(Some(GzDecoder::new(file)));
        }
        file.seek_relative(-(head.len() as i64))?;
        let mut zeros = 0u64;
        loop {
            let chunk = file.fill_buf()?;
            if chunk.is_empty() {
                return Ok(None);
            }
            if let Some(i) = chunk.iter().position(|&b| b != 0) {
                let offset = at.saturating_add(zeros).saturating_add(i as u64);
                return Err(io::Error::new(io::ErrorKind::InvalidData, NotGzip(offset)));
            }
            let len = chunk.len();
            file.consume(len);
            zeros = zeros.saturating_add(len as u64);
        }
    }
}

impl<R: BufRead + Seek> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let ended = self.member.take().map(GzDecoder::into_inner);
            self.member = match ended {
                Some(file) => Self::next_member(file)?,
                None => None,
            };
        }
    }
}

/// `size` bytes of a tar member's data with the padding to its 512-byte block.
fn padded(size: u64) -> u64 {
    size.div_ceil(512).saturating_mul(512)
}

/// What the pax header before a member says that the tar reader does not act on.
#[derive(Default)]
struct Pax {
    /// `Some` when the member is a sparse file written the POSIX way (GNU tar's `--sparse` in
    /// pax format, bsdtar's default for files with holes): a regular entry whose pax header
    /// carries `GNU.sparse.*` keys, whose data is a map of the file's pieces rather than its
    /// bytes, and whose header name may be a made-up `GNUSparseFile.<pid>/<name>`; with the
    /// name the pax header gives the file, if any, for the message.
    sparse: Option<Option<String>>,
    /// The `path` the pax header gives. The tar reader prefers a GNU long name to it when an
    /// entry has both; GNU tar and Python's tarfile do the opposite.
    path: Option<Vec<u8>>,
}

impl Pax {
    /// What the pax header of `entry` says, if it has one.
    fn of<R: Read>(entry: &mut ::tar::Entry<'_, R>) -> io::Result<Pax> {
        let mut pax = Pax::default();
        let Some(extensions) = entry.pax_extensions()? else {
            return Ok(pax);
        };
        for extension in extensions {
            let extension = extension?;
            let key = extension.key_bytes();
            if key == b"path" {
                pax.path = Some(extension.value_bytes().to_vec());
            } else if key.starts_with(b"GNU.sparse.") {
                let real = (key == b"GNU.sparse.name")
                    .then(|| String::from_utf8_lossy(extension.value_bytes()).into_owned());
                pax.sparse = Some(real.or(pax.sparse.flatten()));
            }
        }
        Ok(pax)
    }
}

/// A tar member's kind from its entry type; links, devices and the rest are refused.
fn tar_kind(entry_type: ::tar::EntryType, name: &str) -> Result<EntryKind, Rejection> {
    use ::tar::EntryType as T;
    let kind = match entry_type {
        T::Regular | T::Continuous if name.ends_with('/') => return Ok(EntryKind::Dir),
        T::Regular | T::Continuous => return Ok(EntryKind::File),
        T::Directory => return Ok(EntryKind::Dir),
        T::Symlink => "symlink",
        T::Link => "hard link",
        T::Char => "character device",
        T::Block => "block device",
        T::Fifo => "FIFO",
        T::GNUSparse => "sparse file",
        _ => "special entry",
    };
    Err(Rejection::NotARegularFile {
        name: name.to_owned(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{limit, not_an_archive, not_regular, open_bytes, paths};
    use crate::package::Rejection;
    use crate::package::corpus::{TarKind, gzip, tar_of};

    #[test]
    fn long_tar_names_in_gnu_and_pax_headers_are_fine() {
        let long = format!("{}/main.json", "d".repeat(150));
        let mut gnu = ::tar::Builder::new(Vec::new());
        let mut header = ::tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        gnu.append_data(&mut header, &long, &b"{}"[..]).unwrap();
        let gnu = gnu.into_inner().unwrap();
        assert_eq!(paths(&open_bytes(&gnu).unwrap().files), [long.as_str()]);

        let pax = with_pax_comment(b"commit abc");
        assert_eq!(paths(&open_bytes(&pax).unwrap().files), ["index.html"]);
    }

    /// A tar of one `index.html` after a pax extended header holding `comment`.
    fn with_pax_comment(comment: &[u8]) -> Vec<u8> {
        let mut tar = ::tar::Builder::new(Vec::new());
        tar.append_pax_extensions([("comment", comment)]).unwrap();
        let mut header = ::tar::Header::new_ustar();
        header.set_path("index.html").unwrap();
        header.set_size(1);
        header.set_cksum();
        tar.append(&header, &b"x"[..]).unwrap();
        tar.into_inner().unwrap()
    }

    #[test]
    fn a_pax_header_past_its_room_is_refused_before_it_is_read_plain_or_gzipped() {
        let with_pax = |size: usize| with_pax_comment(&vec![b'a'; size]);
        // Within the room: read. Past it: refused by name, plain or gzipped.
        let fine = with_pax(32 * 1024);
        assert_eq!(paths(&open_bytes(&fine).unwrap().files), ["index.html"]);
        let big = with_pax(2 * 1024 * 1024);
        for bytes in [big.clone(), gzip(&big)] {
            let what = limit(open_bytes(&bytes));
            assert!(what.contains("headers before one tar member"), "{what}");
        }
    }

    #[test]
    fn tar_members_that_are_not_regular_files_are_refused() {
        for (kind, expected) in [
            (TarKind::Symlink("/etc/passwd"), "symlink"),
            (TarKind::HardLink("index.html"), "hard link"),
            (TarKind::CharDevice, "character device"),
            (TarKind::BlockDevice, "block device"),
            (TarKind::Fifo, "FIFO"),
        ] {
            let tar = tar_of(&[(b"index.html", TarKind::File(b"x")), (b"other", kind)]);
            assert_eq!(not_regular(open_bytes(&tar)), expected);
        }
    }

    #[test]
    fn only_zero_padding_may_follow_a_tars_end_of_archive_marker() {
        let tar = tar_of(&[(b"index.html", TarKind::File(b"<p>tar</p>"))]);
        let zip = crate::package::corpus::zip_of(&[("index.html", b"<p>zip</p>".as_slice())]);
        for tail in [zip.as_slice(), b"x", &[0, 0, 0, 1]] {
            let mut bytes = tar.clone();
            bytes.extend_from_slice(tail);
            let at = tar.len() + tail.iter().position(|&b| b != 0).unwrap();
            for bytes in [bytes.clone(), gzip(&bytes)] {
                match open_bytes(&bytes) {
                    Err(Rejection::Ambiguous(why)) => {
                        assert!(why.contains(&format!("from byte {at} ")), "{why}");
                    }
                    other => panic!("expected ambiguous, got {:?}", other.map(|o| o.files)),
                }
            }
        }
        // `tar` pads to its record size (10 KiB) with zeros: read as the archive it is.
        let mut padded = tar.clone();
        padded.resize(tar.len() + 20 * 1024, 0);
        for bytes in [padded.clone(), gzip(&padded)] {
            assert_eq!(paths(&open_bytes(&bytes).unwrap().files), ["index.html"]);
        }
    }

    #[test]
    fn a_tar_without_its_end_of_archive_marker_is_incomplete() {
        let members: Vec<(Vec<u8>, Vec<u8>)> = (0..200)
            .map(|i| (format!("f/{i:03}.json").into_bytes(), vec![b'x'; 700]))
            .collect();
        let entries: Vec<(&[u8], TarKind<'_>)> = members
            .iter()
            .map(|(n, d)| (n.as_slice(), TarKind::File(d.as_slice())))
            .collect();
        let full = tar_of(&entries);
        assert_eq!(open_bytes(&full).unwrap().files.len(), 200);
        // Member 100 starts after 100 headers and 100 padded bodies of 1024 bytes.
        let cut = &full[..100 * (512 + 1024)];
        for bytes in [cut.to_vec(), gzip(cut)] {
            let why = not_an_archive(open_bytes(&bytes));
            assert!(why.contains("end-of-archive marker"), "{why}");
        }
        // Cut inside a member, or inside the marker: incomplete or, with one zero block, whole.
        assert!(open_bytes(&full[..100 * 1536 + 700]).is_err());
        let one_zero_block = &full[..200 * 1536 + 512];
        assert_eq!(open_bytes(one_zero_block).unwrap().files.len(), 200);
    }
}
