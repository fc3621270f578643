//! Opening a package archive: zip, tar or tar.gz, and the zips nested in a data package.
//!
//! [`open`] reads every member into memory and returns them only if the whole archive passed
//! every rule of the parent module's "What it never unpacks": safe names, regular files and
//! directories only, no two names equal but for case or Unicode normalisation, a zip whose
//! local headers agree with its central directory, a tar that ends with its end-of-archive
//! marker, and every [`Limits`] value measured on the bytes actually inflated, as they are
//! inflated, so a bomb is stopped after a few megabytes. Nothing here trusts a size, a type or
//! a count that the archive declares; archive bytes can make it return a [`Rejection`], never
//! panic.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use unicode_normalization::UnicodeNormalization as _;

use super::{Limits, Member, PackageKind, Rejection};

/// Members under this many inflated bytes are not held to [`Limits::max_ratio`], nor packages
/// under it in all to [`Limits::max_package_ratio`].
const RATIO_EXEMPT_BYTES: u64 = 1024 * 1024;

/// How many bytes are read from the inflater at a time, so limits stop a bomb early.
const READ_CHUNK: usize = 64 * 1024;

/// Bit 11 of a zip entry's general purpose flags: its name is UTF-8 (APPNOTE 4.4.4).
const ZIP_FLAG_UTF8: u16 = 0x0800;

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
    let files = match Format::detect(&magic)? {
        Format::Zip => walk.zip(BufReader::new(file), 1, None)?,
        Format::Tar => walk.tar(BufReader::new(file))?,
        Format::TarGz => walk.tar_gz(file, actual)?,
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

/// Refuses a package larger than [`Limits::max_package_bytes`].
fn check_package_size(size: u64, limits: &Limits) -> Result<(), Rejection> {
    if size > limits.max_package_bytes {
        return Err(Rejection::Limit {
            what: format!("package size, {size} bytes (max_package_bytes)"),
            limit: limits.max_package_bytes,
        });
    }
    Ok(())
}

/// Reads up to 512 bytes from the start of the file: enough for every magic number we know.
fn read_magic(file: &mut File) -> io::Result<Vec<u8>> {
    let mut magic = Vec::with_capacity(512);
    file.by_ref().take(512).read_to_end(&mut magic)?;
    Ok(magic)
}

/// The archive formats a package may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// A zip file (`PK\x03\x04`).
    Zip,
    /// A POSIX or GNU tar (`ustar` at byte 257).
    Tar,
    /// A gzip stream (`\x1f\x8b`), to hold a tar.
    TarGz,
}

impl Format {
    /// Tells the format from the first bytes: zip and gzip magic, else the ustar magic of a
    /// tar header. An empty zip (only an end-of-central-directory record) is [`Rejection::Empty`].
    fn detect(magic: &[u8]) -> Result<Format, Rejection> {
        if magic.starts_with(b"PK\x03\x04") {
            Ok(Format::Zip)
        } else if magic.starts_with(b"PK\x05\x06") {
            Err(Rejection::Empty)
        } else if magic.starts_with(b"\x1f\x8b") {
            Ok(Format::TarGz)
        } else if has_ustar_magic(magic) {
            Ok(Format::Tar)
        } else {
            Err(Rejection::NotAnArchive(
                "not a zip, tar or tar.gz file (no known magic number)".to_owned(),
            ))
        }
    }
}

/// Whether `header` (the first tar block) carries the POSIX or GNU `ustar` magic at byte 257.
fn has_ustar_magic(header: &[u8]) -> bool {
    header.get(257..262) == Some(b"ustar".as_slice())
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
/// and every name seen, for collision checks.
struct Walk<'l> {
    /// The limits of this package.
    limits: &'l Limits,
    /// Size of the package file, for [`Limits::max_package_ratio`].
    package_bytes: u64,
    /// Members (files and directories) seen so far, at every depth.
    members: u64,
    /// Bytes of files inflated so far, at every depth.
    unpacked: u64,
    /// Every path seen so far, as it will be served.
    names: Names,
}

impl<'l> Walk<'l> {
    /// A walk over a package file of `package_bytes` that has consumed nothing yet.
    fn new(limits: &'l Limits, package_bytes: u64) -> Self {
        Walk {
            limits,
            package_bytes,
            members: 0,
            unpacked: 0,
            names: Names::default(),
        }
    }

    /// Counts one more member (file or directory) against [`Limits::max_members`].
    fn count_member(&mut self) -> Result<(), Rejection> {
        self.members += 1;
        if self.members > self.limits.max_members {
            return Err(Rejection::Limit {
                what: "number of members".to_owned(),
                limit: self.limits.max_members,
            });
        }
        Ok(())
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
        let bare = match kind {
            EntryKind::Dir => name.strip_suffix('/').unwrap_or(name),
            EntryKind::File => name,
        };
        // `tar -C site .` names every member `./…` and the root `./`: the same paths.
        let bare = bare.trim_start_matches("./");
        if kind == EntryKind::Dir && (bare.is_empty() || bare == ".") {
            return Ok(String::new());
        }
        check_name(bare).map_err(|why| unsafe_name(name, why))?;
        let path = match prefix {
            Some(prefix) => format!("{prefix}/{bare}"),
            None => bare.to_owned(),
        };
        if path.len() > self.limits.max_name_len {
            return Err(unsafe_name(&path, "longer than the name length limit"));
        }
        match kind {
            EntryKind::File => self.names.add_file(&path)?,
            EntryKind::Dir => self.names.add_dir(&path)?,
        }
        Ok(path)
    }

    /// Reads one member's bytes, stopping as soon as it passes the member size, the total
    /// size, the whole package's compression ratio, or (for a zip member) its own ratio,
    /// measured against the compressed bytes pulled so far.
    fn read_member(
        &mut self,
        reader: &mut dyn Read,
        path: &str,
        sizes: Sizes<'_>,
    ) -> Result<Bytes, Rejection> {
        let limits = self.limits;
        let mut bytes = Vec::with_capacity(self.capacity_hint(&sizes));
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Rejection::NotAnArchive(format!(
                        "cannot read member {path:?}: {e}"
                    )));
                }
            };
            bytes.extend_from_slice(chunk.get(..n).unwrap_or_default());
            let len = bytes.len() as u64;
            if len > limits.max_member_bytes {
                return Err(Rejection::Limit {
                    what: format!("size of member {path:?}"),
                    limit: limits.max_member_bytes,
                });
            }
            let total = self.unpacked.saturating_add(len);
            if total > limits.max_unpacked_bytes {
                return Err(Rejection::Limit {
                    what: format!("total unpacked size, at member {path:?}"),
                    limit: limits.max_unpacked_bytes,
                });
            }
            if let Some(pulled) = &sizes.pulled {
                let compressed = sizes.compressed.unwrap_or(u64::MAX).min(pulled());
                check_ratio(len, compressed, limits, || format!("member {path:?}"))?;
            }
            check_package_ratio(total, self.package_bytes, limits)?;
        }
        self.unpacked = self.unpacked.saturating_add(bytes.len() as u64);
        bytes.shrink_to_fit();
        Ok(Bytes::from(bytes))
    }

    /// How many bytes to reserve for a member: its declared size, but never more than the
    /// limits still allow, so a lying header cannot make us reserve memory.
    fn capacity_hint(&self, sizes: &Sizes<'_>) -> usize {
        let limits = self.limits;
        let mut most = limits
            .max_member_bytes
            .min(limits.max_unpacked_bytes.saturating_sub(self.unpacked))
            .min(
                limits
                    .max_package_ratio
                    .saturating_mul(self.package_bytes)
                    .max(RATIO_EXEMPT_BYTES)
                    .saturating_sub(self.unpacked),
            );
        if let Some(compressed) = sizes.compressed {
            most = most.min(
                limits
                    .max_ratio
                    .saturating_mul(compressed)
                    .max(RATIO_EXEMPT_BYTES),
            );
        }
        usize::try_from(sizes.declared.min(most)).unwrap_or(0)
    }

    /// Reads a zip archive at nesting `depth`; `prefix` is set for nested zips.
    fn zip<R: Read + Seek>(
        &mut self,
        reader: R,
        depth: u32,
        prefix: Option<&str>,
    ) -> Result<Vec<Member>, Rejection> {
        let context = |e: &dyn std::fmt::Display| match prefix {
            Some(p) => format!("inner zip {p:?}.zip: {e}"),
            None => e.to_string(),
        };
        let reader = CountingReader::new(reader, u64::MAX);
        let consumed = reader.counter();
        let mut archive =
            zip::ZipArchive::new(reader).map_err(|e| Rejection::NotAnArchive(context(&e)))?;
        if archive.has_duplicate_names() {
            let name = duplicate_zip_name(archive.into_inner())
                .unwrap_or_else(|| "(a name repeated in the zip's central directory)".to_owned());
            let name = match prefix {
                Some(p) => format!("{p}/{name}"),
                None => name,
            };
            return Err(Rejection::Collision {
                first: name.clone(),
                second: name,
            });
        }
        archive.validate_header_consistency().map_err(|e| {
            let text = context(&e);
            if text.contains("header inconsistency") {
                Rejection::Ambiguous(text)
            } else {
                Rejection::NotAnArchive(text)
            }
        })?;
        let remaining = self.limits.max_members.saturating_sub(self.members);
        if archive.len() as u64 > remaining {
            return Err(Rejection::Limit {
                what: "number of members".to_owned(),
                limit: self.limits.max_members,
            });
        }
        let mut files = Vec::new();
        for index in 0..archive.len() {
            self.count_member()?;
            let mut entry = archive.by_index(index).map_err(|e| {
                Rejection::NotAnArchive(context(&format_args!("member {index}: {e}")))
            })?;
            let name = zip_name(&entry)?;
            let kind = zip_kind(entry.unix_mode(), &name)?;
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
            let bytes = self.read_member(&mut entry, &path, sizes)?;
            files.push(Member { path, bytes });
        }
        if depth > 1 {
            let inner = self.open_inner_zips(&files, depth + 1)?;
            files.extend(inner);
        }
        Ok(files)
    }

    /// Opens every `.zip` among `files` as a nested archive at `depth`, and returns the files
    /// found inside (recursively), prefixed with the zip's path less `.zip`.
    fn open_inner_zips(&mut self, files: &[Member], depth: u32) -> Result<Vec<Member>, Rejection> {
        let mut nested = Vec::new();
        for member in files.iter().filter(|m| ends_with_ci(&m.path, ".zip")) {
            if depth > self.limits.max_depth {
                return Err(Rejection::Limit {
                    what: format!("nesting depth, at {:?}", member.path),
                    limit: u64::from(self.limits.max_depth),
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

    /// Reads a plain tar archive.
    fn tar<R: Read>(&mut self, reader: R) -> Result<Vec<Member>, Rejection> {
        let stream = CountingReader::new(reader, self.tar_stream_cap());
        let counter = stream.counter();
        let (files, _) = self.tar_entries(stream, &counter)?;
        Ok(files)
    }

    /// Reads a gzip-compressed tar archive of `compressed` bytes; the whole stream, trailing
    /// bytes included, is inflated so its checksum is verified and its ratio is measured.
    fn tar_gz(&mut self, file: File, compressed: u64) -> Result<Vec<Member>, Rejection> {
        let gz = flate2::read::MultiGzDecoder::new(BufReader::new(file));
        let mut stream = CountingReader::new(gz, self.tar_stream_cap());
        let counter = stream.counter();
        let mut first = Vec::with_capacity(512);
        stream
            .by_ref()
            .take(512)
            .read_to_end(&mut first)
            .map_err(|e| self.tar_error(&counter, "gzip stream", &e))?;
        if !has_ustar_magic(&first) {
            return Err(Rejection::NotAnArchive(
                "the gzip stream does not hold a tar archive (no ustar magic)".to_owned(),
            ));
        }
        let (files, mut rest) = self.tar_entries(Cursor::new(first).chain(stream), &counter)?;
        io::copy(&mut rest, &mut io::sink())
            .map_err(|e| self.tar_error(&counter, "gzip stream", &e))?;
        let inflated = counter.get();
        check_ratio(inflated, compressed, self.limits, || {
            "the tar.gz stream".to_owned()
        })?;
        Ok(files)
    }

    /// The most bytes a tar stream may hold: every member at its limit, plus generous room for
    /// headers, long names and padding. Bounds what the tar reader itself buffers.
    fn tar_stream_cap(&self) -> u64 {
        let per_member =
            4096u64.saturating_add(2u64.saturating_mul(self.limits.max_name_len as u64));
        self.limits
            .max_unpacked_bytes
            .saturating_add(
                self.limits
                    .max_members
                    .saturating_add(1)
                    .saturating_mul(per_member),
            )
            .saturating_add(RATIO_EXEMPT_BYTES)
    }

    /// Explains an error met while reading a tar stream: the stream cap, or a damaged archive.
    fn tar_error(&self, counter: &Counter, what: &str, e: &dyn std::fmt::Display) -> Rejection {
        if counter.tripped() {
            Rejection::Limit {
                what: "size of the unpacked tar stream, headers included".to_owned(),
                limit: self.tar_stream_cap(),
            }
        } else {
            Rejection::NotAnArchive(format!("{what}: {e}"))
        }
    }

    /// Walks the entries of a tar stream; returns the files and the stream, positioned after
    /// the archive's end.
    fn tar_entries<R: Read>(
        &mut self,
        stream: R,
        counter: &Counter,
    ) -> Result<(Vec<Member>, R), Rejection> {
        let mut archive = tar::Archive::new(stream);
        let mut files = Vec::new();
        let entries = archive
            .entries()
            .map_err(|e| self.tar_error(counter, "tar", &e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.tar_error(counter, "tar", &e))?;
            let entry_type = entry.header().entry_type();
            if entry_type.is_pax_global_extensions() {
                // Archive-wide metadata (e.g. `git archive`'s commit id): not a member.
                continue;
            }
            self.count_member()?;
            let raw = entry.path_bytes();
            let name = std::str::from_utf8(&raw)
                .map_err(|_| unsafe_name(&String::from_utf8_lossy(&raw), "not valid UTF-8"))?
                .to_owned();
            let kind = tar_kind(entry_type, &name)?;
            let path = self.admit(&name, kind, None)?;
            if kind == EntryKind::Dir {
                continue;
            }
            let sizes = Sizes {
                declared: entry.size(),
                compressed: None,
                pulled: None,
            };
            let bytes = self
                .read_member(&mut entry, &path, sizes)
                .map_err(|e| match e {
                    Rejection::NotAnArchive(m) if counter.tripped() => {
                        self.tar_error(counter, "", &m)
                    }
                    other => other,
                })?;
            files.push(Member { path, bytes });
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
        Ok((files, archive.into_inner()))
    }
}

/// What is known of a member's size before it is read.
struct Sizes<'a> {
    /// The size its header declares (a hint only: it may lie).
    declared: u64,
    /// The compressed size it declares, for a zip member.
    compressed: Option<u64>,
    /// The compressed bytes the inflater has pulled so far, for a zip member: unlike the
    /// declared size, it cannot lie upwards to hide a bomb.
    pulled: Option<&'a dyn Fn() -> u64>,
}

/// Refuses a package whose members inflate, in all, to more than
/// [`Limits::max_package_ratio`] times the package file, once past [`RATIO_EXEMPT_BYTES`]:
/// many members each just under the per-member exemption cannot add up to a bomb.
fn check_package_ratio(unpacked: u64, package: u64, limits: &Limits) -> Result<(), Rejection> {
    if unpacked >= RATIO_EXEMPT_BYTES && unpacked > limits.max_package_ratio.saturating_mul(package)
    {
        return Err(Rejection::Limit {
            what: format!(
                "compression ratio of the whole package ({unpacked} bytes inflated so far from \
                 a package of {package}; max_package_ratio)"
            ),
            limit: limits.max_package_ratio,
        });
    }
    Ok(())
}

/// Refuses a member of `inflated` bytes made from `compressed` bytes when it is at least
/// [`RATIO_EXEMPT_BYTES`] and inflates more than [`Limits::max_ratio`] times.
fn check_ratio(
    inflated: u64,
    compressed: u64,
    limits: &Limits,
    what: impl FnOnce() -> String,
) -> Result<(), Rejection> {
    if inflated >= RATIO_EXEMPT_BYTES && inflated > limits.max_ratio.saturating_mul(compressed) {
        return Err(Rejection::Limit {
            what: format!(
                "compression ratio of {} ({inflated} bytes inflated from {compressed})",
                what()
            ),
            limit: limits.max_ratio,
        });
    }
    Ok(())
}

/// A member's name as text: UTF-8 when flagged so (and then it must be valid), else the zip
/// crate's decoding (UTF-8 if valid, CP437 otherwise).
fn zip_name<R: Read>(entry: &zip::read::ZipFile<'_, R>) -> Result<String, Rejection> {
    let raw = entry.name_raw();
    if entry.flags().as_u16() & ZIP_FLAG_UTF8 != 0 {
        return match std::str::from_utf8(raw) {
            Ok(name) if !name.contains('\u{FFFD}') => Ok(name.to_owned()),
            _ => Err(unsafe_name(
                &String::from_utf8_lossy(raw),
                "flagged as UTF-8 but not valid UTF-8",
            )),
        };
    }
    entry
        .name()
        .map(|n| n.into_owned())
        .map_err(|_| unsafe_name(&String::from_utf8_lossy(raw), "neither UTF-8 nor CP437"))
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

/// A tar member's kind from its entry type; links, devices and the rest are refused.
fn tar_kind(entry_type: tar::EntryType, name: &str) -> Result<EntryKind, Rejection> {
    use tar::EntryType as T;
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

/// Builds an [`Rejection::UnsafeName`].
fn unsafe_name(name: &str, why: &'static str) -> Rejection {
    Rejection::UnsafeName {
        name: name.to_owned(),
        why,
    }
}

/// Checks one member name (directories without their trailing `/`); returns why it is unsafe.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("an empty name");
    }
    if name.chars().any(char::is_control) {
        return Err("a NUL or other control character");
    }
    if name.contains('\\') {
        return Err("a backslash");
    }
    if name.starts_with('/') {
        return Err("an absolute path");
    }
    if let [letter, b':', ..] = name.as_bytes()
        && letter.is_ascii_alphabetic()
    {
        return Err("a drive letter");
    }
    for component in name.split('/') {
        match component {
            "" => return Err("an empty component (`//`)"),
            "." => return Err("a `.` component"),
            ".." => return Err("a `..` component"),
            c if c.ends_with(['.', ' ']) => {
                return Err("a component ending in a dot or a space (ambiguous on some systems)");
            }
            _ => {}
        }
    }
    Ok(())
}

/// The form two names are compared in: Unicode NFC, then lowercase. `año` written with a
/// combining tilde (NFD, as macOS writes it) and with `ñ` (NFC) are one name.
fn comparable(path: &str) -> String {
    path.nfc().collect::<String>().to_lowercase()
}

/// Every path seen in one package, by comparable form ([`comparable`]), to find names that
/// collide.
#[derive(Default)]
struct Names {
    /// Comparable file path → the path as written.
    files: HashMap<String, String>,
    /// Comparable directory path (written or implied by a file's path) → the path as written.
    dirs: HashMap<String, String>,
}

impl Names {
    /// Records a file; refuses it if it equals, but for case or normalisation, a file or
    /// directory already seen, or if one of its parent directories is a file.
    fn add_file(&mut self, path: &str) -> Result<(), Rejection> {
        let lower = comparable(path);
        if let Some(first) = self.files.get(&lower).or_else(|| self.dirs.get(&lower)) {
            return Err(collision(first, path));
        }
        self.add_parents(path)?;
        self.files.insert(lower, path.to_owned());
        Ok(())
    }

    /// Records a directory and its parents.
    fn add_dir(&mut self, path: &str) -> Result<(), Rejection> {
        self.add_parents(path)?;
        self.add_one_dir(path)
    }

    /// Records every parent directory of `path`.
    fn add_parents(&mut self, path: &str) -> Result<(), Rejection> {
        for (at, _) in path.match_indices('/') {
            if let Some(parent) = path.get(..at) {
                self.add_one_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Records one directory: it may repeat exactly, but not collide with a file or with a
    /// directory spelled with other letter case or normalisation.
    fn add_one_dir(&mut self, dir: &str) -> Result<(), Rejection> {
        let lower = comparable(dir);
        if let Some(first) = self.files.get(&lower) {
            return Err(collision(first, dir));
        }
        match self.dirs.get(&lower) {
            Some(first) if first != dir => Err(collision(first, dir)),
            Some(_) => Ok(()),
            None => {
                self.dirs.insert(lower, dir.to_owned());
                Ok(())
            }
        }
    }
}

/// Builds a [`Rejection::Collision`].
fn collision(first: &str, second: &str) -> Rejection {
    Rejection::Collision {
        first: first.to_owned(),
        second: second.to_owned(),
    }
}

/// Finds a name that appears twice among the local headers of a zip, for the message of a
/// duplicate-name rejection (the zip crate's central-directory index keeps only one of them).
/// Only the compressed bytes are read; `None` when the stream cannot be walked.
fn duplicate_zip_name<R: Read + Seek>(mut reader: R) -> Option<String> {
    reader.seek(SeekFrom::Start(0)).ok()?;
    let mut reader = BufReader::new(reader);
    let mut seen = std::collections::HashSet::new();
    loop {
        let entry = zip::read::read_zipfile_from_stream(&mut reader).ok()??;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if !seen.insert(name.clone()) {
            return Some(name);
        }
    }
}

/// A shared count of the bytes a [`CountingReader`] has passed on.
#[derive(Clone)]
struct Counter {
    /// Bytes passed on so far (may exceed `cap` by the one read that tripped it).
    count: Rc<Cell<u64>>,
    /// Whether a read found the end of the underlying stream.
    end: Rc<Cell<bool>>,
    /// The most bytes the reader passes on without failing.
    cap: u64,
}

impl Counter {
    /// Bytes passed on so far.
    fn get(&self) -> u64 {
        self.count.get()
    }

    /// Whether the reader refused to go past its cap.
    fn tripped(&self) -> bool {
        self.count.get() > self.cap
    }

    /// Whether a read asked for bytes and found the end of the stream instead.
    fn reached_end(&self) -> bool {
        self.end.get()
    }
}

/// A reader that counts what it passes on and fails once it would pass more than `cap` bytes.
/// Seeking passes through and does not change the count.
struct CountingReader<R> {
    /// The reader counted.
    inner: R,
    /// The count, shared with handles from [`CountingReader::counter`].
    counter: Counter,
}

impl<R: Read> CountingReader<R> {
    /// Counts what `inner` yields, failing past `cap` bytes.
    fn new(inner: R, cap: u64) -> Self {
        CountingReader {
            inner,
            counter: Counter {
                count: Rc::new(Cell::new(0)),
                end: Rc::new(Cell::new(false)),
                cap,
            },
        }
    }

    /// A handle on the count, readable after the reader has been moved away.
    fn counter(&self) -> Counter {
        self.counter.clone()
    }
}

impl<R: Seek> Seek for CountingReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.counter.end.set(true);
        }
        let total = self.counter.get().saturating_add(n as u64);
        self.counter.count.set(total);
        if total > self.counter.cap {
            return Err(io::Error::other("unpacked stream limit passed"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::hash::Sha256;
    use crate::package::corpus::{
        TarKind, gzip, low_ratio_data, patch, tar_of, zip_named, zip_of, zip_with, zip_with_mode,
    };
    use crate::package::tests::{fixture, test_limits};

    const MIB: usize = 1024 * 1024;

    /// Opens `bytes` as a package file with `limits`.
    fn open_with(bytes: &[u8], limits: &Limits) -> Result<Opened, Rejection> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        open(file.path(), bytes.len() as u64, limits)
    }

    /// Opens `bytes` as a package file with the test limits.
    fn open_bytes(bytes: &[u8]) -> Result<Opened, Rejection> {
        open_with(bytes, &test_limits())
    }

    fn paths(members: &[Member]) -> Vec<&str> {
        members.iter().map(|m| m.path.as_str()).collect()
    }

    fn stored() -> zip::write::SimpleFileOptions {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .system(zip::System::Unix)
    }

    /// The `why` of an unsafe-name rejection.
    fn why(result: Result<Opened, Rejection>) -> &'static str {
        match result {
            Err(Rejection::UnsafeName { why, .. }) => why,
            other => panic!(
                "expected an unsafe name, got {:?}",
                other.map(|o| o.files.len())
            ),
        }
    }

    /// The `kind` of a not-a-regular-file rejection.
    fn not_regular(result: Result<Opened, Rejection>) -> &'static str {
        match result {
            Err(Rejection::NotARegularFile { kind, .. }) => kind,
            other => panic!(
                "expected a non-regular file, got {:?}",
                other.map(|o| o.files.len())
            ),
        }
    }

    /// The `what` of a limit rejection.
    fn limit(result: Result<Opened, Rejection>) -> String {
        match result {
            Err(Rejection::Limit { what, .. }) => what,
            other => panic!("expected a limit, got {:?}", other.map(|o| o.files.len())),
        }
    }

    fn not_an_archive(result: Result<Opened, Rejection>) -> String {
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
    fn a_leading_current_directory_is_the_same_path() {
        let tar = tar_of(&[
            (b"./", TarKind::Dir),
            (b"./css/", TarKind::Dir),
            (b"./css/a.css", TarKind::File(b"x")),
            (b"./index.html", TarKind::File(b"y")),
        ]);
        assert_eq!(
            paths(&open_bytes(&tar).unwrap().files),
            ["css/a.css", "index.html"]
        );
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
    fn empty_archives_and_directory_only_archives_are_empty() {
        let empty = zip_of(&[]);
        assert!(matches!(open_bytes(&empty), Err(Rejection::Empty)));
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.add_directory("css/", stored()).unwrap();
        let dirs_only = zip.finish().unwrap().into_inner();
        assert!(matches!(open_bytes(&dirs_only), Err(Rejection::Empty)));
        let empty_tar = {
            let mut header = tar::Header::new_ustar();
            header.set_path("css/").unwrap();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_cksum();
            let mut b = tar::Builder::new(Vec::new());
            b.append(&header, &b""[..]).unwrap();
            b.into_inner().unwrap()
        };
        assert!(matches!(open_bytes(&empty_tar), Err(Rejection::Empty)));
    }

    #[test]
    fn directories_are_skipped_but_counted() {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.add_directory("css/", stored()).unwrap();
        zip.start_file("css/site.css", stored()).unwrap();
        zip.write_all(b"body{}").unwrap();
        let zip = zip.finish().unwrap().into_inner();
        assert_eq!(paths(&open_bytes(&zip).unwrap().files), ["css/site.css"]);
        let tight = Limits {
            max_members: 1,
            ..test_limits()
        };
        assert_eq!(limit(open_with(&zip, &tight)), "number of members");
    }

    #[test]
    fn unsafe_names_are_refused_in_zips() {
        let cases: [(&[u8], &str); 9] = [
            (b"/etc/passwd", "an absolute path"),
            (b"a/../../x.txt", "a `..` component"),
            (b"..", "a `..` component"),
            (b"a/./index.html", "a `.` component"),
            (b"css//site.css", "an empty component (`//`)"),
            (b"css\\site.css", "a backslash"),
            (b"C:/x.txt", "a drive letter"),
            (b"c:x.txt", "a drive letter"),
            (b"a\x00b.txt", "a NUL or other control character"),
        ];
        for (name, expected) in cases {
            let got = why(open_bytes(&zip_named(name, b"x")));
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(name));
        }
        assert_eq!(
            why(open_bytes(&zip_named(b"tab\there.txt", b"x"))),
            "a NUL or other control character"
        );
        let long = "a".repeat(256);
        assert_eq!(
            why(open_bytes(&zip_of(&[(long.as_str(), b"x")]))),
            "longer than the name length limit"
        );
        let just_fits = "a".repeat(255);
        assert!(open_bytes(&zip_of(&[(just_fits.as_str(), b"x")])).is_ok());
    }

    #[test]
    fn unsafe_names_are_refused_in_tars() {
        let cases: [(&[u8], &str); 5] = [
            (b"/etc/passwd", "an absolute path"),
            (b"../x.txt", "a `..` component"),
            (b"a\\b.txt", "a backslash"),
            (b"D:/x.txt", "a drive letter"),
            (b"x\x1b.txt", "a NUL or other control character"),
        ];
        for (name, expected) in cases {
            let tar = tar_of(&[(name, TarKind::File(b"x"))]);
            assert_eq!(why(open_bytes(&tar)), expected);
            assert_eq!(why(open_bytes(&gzip(&tar))), expected);
        }
        let latin1 = tar_of(&[(b"a\xf1o.csv", TarKind::File(b"x"))]);
        assert_eq!(why(open_bytes(&latin1)), "not valid UTF-8");
    }

    #[test]
    fn long_tar_names_in_gnu_and_pax_headers_are_fine() {
        let long = format!("{}/main.json", "d".repeat(150));
        let mut gnu = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        gnu.append_data(&mut header, &long, &b"{}"[..]).unwrap();
        let gnu = gnu.into_inner().unwrap();
        assert_eq!(paths(&open_bytes(&gnu).unwrap().files), [long.as_str()]);

        let mut pax = tar::Builder::new(Vec::new());
        pax.append_pax_extensions([("comment", b"commit abc".as_slice())])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path("index.html").unwrap();
        header.set_size(1);
        header.set_cksum();
        pax.append(&header, &b"x"[..]).unwrap();
        let pax = pax.into_inner().unwrap();
        assert_eq!(paths(&open_bytes(&pax).unwrap().files), ["index.html"]);
    }

    #[test]
    fn zip_names_are_utf8_when_flagged_else_cp437() {
        // Unflagged, not UTF-8: CP437, where 0x82 is é.
        let cp437 = zip_named(b"caf\x82.txt", b"x");
        assert_eq!(paths(&open_bytes(&cp437).unwrap().files), ["café.txt"]);
        // Flagged UTF-8 and valid.
        let utf8 = zip_of(&[("año.csv", b"x")]);
        assert_eq!(paths(&open_bytes(&utf8).unwrap().files), ["año.csv"]);
        // Flagged UTF-8 but not.
        let mut bad = zip_of(&[("año.csv", b"x")]);
        patch(&mut bad, "ñ".as_bytes(), b"\xff\xfe");
        assert_eq!(
            why(open_bytes(&bad)),
            "flagged as UTF-8 but not valid UTF-8"
        );
        // Flagged UTF-8 and valid, but holding the replacement character.
        let replacement = zip_of(&[("a\u{FFFD}.csv", b"x")]);
        assert_eq!(
            why(open_bytes(&replacement)),
            "flagged as UTF-8 but not valid UTF-8"
        );
    }

    #[test]
    fn zip_members_that_are_not_regular_files_are_refused() {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.add_symlink("link", "/etc/passwd", stored()).unwrap();
        assert_eq!(
            not_regular(open_bytes(&zip.finish().unwrap().into_inner())),
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
    fn nfc_and_nfd_spellings_of_one_name_collide() {
        let nfc = "datos/a\u{f1}o.csv";
        let nfd = "datos/an\u{303}o.csv";
        let zip = zip_of(&[(nfc, b"1"), (nfd, b"2")]);
        assert!(matches!(open_bytes(&zip), Err(Rejection::Collision { .. })));
        let dirs = zip_of(&[("a\u{f1}o/x.csv", b"1"), ("an\u{303}o/y.csv", b"2")]);
        assert!(matches!(
            open_bytes(&dirs),
            Err(Rejection::Collision { .. })
        ));
        let tar = tar_of(&[
            (nfc.as_bytes(), TarKind::File(b"1")),
            (nfd.as_bytes(), TarKind::File(b"2")),
        ]);
        assert!(matches!(open_bytes(&tar), Err(Rejection::Collision { .. })));
        // One spelling alone is fine, and kept as written.
        assert_eq!(
            paths(&open_bytes(&zip_of(&[(nfd, b"2")])).unwrap().files),
            [nfd]
        );
    }

    #[test]
    fn components_ending_in_a_dot_or_a_space_are_refused() {
        let why_ending = "a component ending in a dot or a space (ambiguous on some systems)";
        for name in ["index.html.", "css./a.css", "a /b.txt", "notas.txt "] {
            assert_eq!(
                why(open_bytes(&zip_of(&[(name, b"x")]))),
                why_ending,
                "{name}"
            );
            let tar = tar_of(&[(name.as_bytes(), TarKind::File(b"x"))]);
            assert_eq!(why(open_bytes(&tar)), why_ending, "{name}");
        }
        assert!(open_bytes(&zip_of(&[(".well-known/a.txt", b"x"), ("a b.txt", b"y")])).is_ok());
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

    #[test]
    fn colliding_names_are_refused() {
        let mut dup = zip_of(&[("a.csv", b"1"), ("b.csv", b"2")]);
        patch(&mut dup, b"b.csv", b"a.csv");
        match open_bytes(&dup) {
            Err(Rejection::Collision { first, second }) => {
                assert_eq!((first.as_str(), second.as_str()), ("a.csv", "a.csv"));
            }
            other => panic!("{:?}", other.map(|o| o.files.len())),
        }
        let cases: [&[(&str, &[u8])]; 4] = [
            &[("Index.html", b"1"), ("index.HTML", b"2")],
            &[("css", b"1"), ("css/site.css", b"2")],
            &[("CSS/site.css", b"1"), ("css", b"2")],
            &[("A/x.css", b"1"), ("a/y.css", b"2")],
        ];
        for members in cases {
            assert!(
                matches!(
                    open_bytes(&zip_of(members)),
                    Err(Rejection::Collision { .. })
                ),
                "{members:?}"
            );
        }
        let tar = tar_of(&[
            (b"a.txt", TarKind::File(b"1")),
            (b"a.txt", TarKind::File(b"2")),
        ]);
        assert!(matches!(open_bytes(&tar), Err(Rejection::Collision { .. })));
        // The same directory twice, and files side by side, are fine.
        let fine = zip_of(&[("css/a.css", b"1"), ("css/b.css", b"2"), ("cssx", b"3")]);
        assert_eq!(open_bytes(&fine).unwrap().files.len(), 3);
    }

    #[test]
    fn limits_are_measured_on_inflated_bytes() {
        let limits = test_limits();
        let big = Limits {
            max_package_bytes: 10,
            ..limits.clone()
        };
        assert!(limit(open_with(&zip_of(&[("a", b"1")]), &big)).starts_with("package size"));

        let sized = low_ratio_data(9 * MIB, 3);
        assert!(limit(open_bytes(&zip_of(&[("big.csv", &sized)]))).starts_with("size of member"));
        let tar = tar_of(&[(b"big.csv", TarKind::File(&sized))]);
        assert!(limit(open_bytes(&tar)).starts_with("size of member"));

        let zeros = vec![0u8; 2 * MIB];
        let bomb = zip_of(&[("bomb.csv", &zeros)]);
        assert!(limit(open_bytes(&bomb)).starts_with("compression ratio of member \"bomb.csv\""));
        // Under 1 MiB a member may compress as well as it likes.
        let small = vec![0u8; MIB - 1];
        assert!(open_bytes(&zip_of(&[("zeros.csv", &small)])).is_ok());
        // The same bytes stored are no bomb.
        assert!(open_bytes(&zip_with(&[("zeros.csv", &zeros)], stored())).is_ok());

        let total = Limits {
            max_unpacked_bytes: 3 * MIB as u64,
            max_ratio: 100_000,
            max_package_ratio: 100_000,
            ..limits.clone()
        };
        let two = zip_of(&[("a.csv", &zeros), ("b.csv", &zeros)]);
        assert!(limit(open_with(&two, &total)).starts_with("total unpacked size"));

        let tar_gz = gzip(&tar_of(&[(b"bomb.csv", TarKind::File(&zeros))]));
        assert!(limit(open_bytes(&tar_gz)).starts_with("compression ratio of the whole package"));
        let lax = Limits {
            max_package_ratio: 100_000,
            ..limits.clone()
        };
        let what = limit(open_with(&tar_gz, &lax));
        assert!(
            what.starts_with("compression ratio of the tar.gz stream"),
            "{what}"
        );
    }

    #[test]
    fn a_lying_declared_size_does_not_get_past_the_limits() {
        // The sizes in both headers claim 1 byte; the deflate stream holds 2 MiB of zeros.
        let zeros = vec![0u8; 2 * MIB];
        let mut zip = zip_of(&[("bomb.csv", &zeros)]);
        let declared = (2 * MIB as u32).to_le_bytes();
        patch(&mut zip, &declared, &1u32.to_le_bytes());
        let err = open_bytes(&zip).unwrap_err();
        assert!(matches!(
            err,
            Rejection::NotAnArchive(_) | Rejection::Limit { .. }
        ));
    }

    #[test]
    fn a_lying_compressed_size_does_not_hide_a_bomb() {
        let zeros = vec![0u8; 4 * MIB];
        let mut zip = zip_of(&[("bomb.csv", &zeros), ("pad.bin", &low_ratio_data(MIB, 5))]);
        let real = {
            let mut archive = zip::ZipArchive::new(Cursor::new(&zip)).unwrap();
            archive.by_index(0).unwrap().compressed_size() as u32
        };
        // Claim the bomb's compressed data runs on over the next member: 4 MiB from 600 kB
        // would be a ratio of 7. The entries then overlap, which is refused before any
        // member is read.
        let claimed = real + 600_000;
        patch(&mut zip, &real.to_le_bytes(), &claimed.to_le_bytes());
        match open_bytes(&zip) {
            Err(Rejection::Ambiguous(why)) => assert!(why.contains("overlapping"), "{why}"),
            other => panic!(
                "expected an ambiguous zip, got {:?}",
                other.map(|o| o.files.len())
            ),
        }
    }

    #[test]
    fn a_bomb_is_stopped_after_a_few_megabytes_whatever_its_declared_sizes() {
        // 64 MiB of zeros deflate to about 64 kB: the running ratio, measured on the bytes the
        // inflater pulled so far, stops it long before the whole member is in memory.
        let zeros = vec![0u8; 64 * MIB];
        let bomb = zip_of(&[("bomb.csv", &zeros)]);
        let roomy = Limits {
            max_member_bytes: 128 * MIB as u64,
            max_unpacked_bytes: 128 * MIB as u64,
            ..test_limits()
        };
        let what = limit(open_with(&bomb, &roomy));
        let inflated: u64 = what
            .split('(')
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(what.starts_with("compression ratio of member"), "{what}");
        assert!(
            inflated < 8 * MIB as u64,
            "stopped only after {inflated} bytes"
        );
    }

    #[test]
    fn many_small_members_cannot_add_up_to_a_bomb() {
        // Each member is just under the per-member exemption; the whole package is not.
        let almost = vec![0u8; MIB - 1];
        let names: Vec<String> = (0..40).map(|i| format!("part{i}.csv")).collect();
        let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &almost[..])).collect();
        let zip = zip_of(&members);
        let what = limit(open_bytes(&zip));
        assert!(
            what.starts_with("compression ratio of the whole package"),
            "{what}"
        );
        // The same members stored are no bomb.
        assert!(open_bytes(&zip_with(&members[..4], stored())).is_ok());
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

    #[test]
    fn nested_members_count_against_the_same_limits() {
        let names: Vec<String> = (0..6).map(|i| format!("{i}.csv")).collect();
        let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"1"[..])).collect();
        let outer = zip_of(&[("a.zip", &zip_of(&members))]);
        let tight = Limits {
            max_members: 6,
            ..test_limits()
        };
        assert_eq!(limit(open_with(&outer, &tight)), "number of members");

        let zeros = vec![0u8; 2 * MIB];
        let inner = zip_of(&[("bomb.csv", &zeros)]);
        let outer = zip_with(&[("a.zip", &inner)], stored());
        assert!(limit(open_bytes(&outer)).contains("\"a/bomb.csv\""));

        let garbage = zip_with(&[("a.zip", b"not a zip at all".as_slice())], stored());
        assert!(not_an_archive(open_bytes(&garbage)).starts_with("inner zip \"a\".zip"));
        // An empty inner zip is fine: it holds nothing.
        let empty_inner = zip_with(&[("a.zip", &zip_of(&[])), ("b.csv", b"1")], stored());
        assert!(open_bytes(&empty_inner).unwrap().nested.is_empty());
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

    #[test]
    fn names_collide_by_case_and_by_file_against_directory() {
        let mut names = Names::default();
        names.add_file("css/site.css").unwrap();
        names.add_dir("css").unwrap();
        names.add_dir("css/img").unwrap();
        assert!(names.add_dir("CSS").is_err());
        assert!(names.add_file("css").is_err());
        assert!(names.add_file("css/site.css/x").is_err());
        assert!(names.add_file("CSS/SITE.CSS").is_err());
        names.add_file("css/site2.css").unwrap();
    }
}
