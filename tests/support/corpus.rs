//! A corpus of bad packages: every way a package must be refused, written as real files.
//!
//! [`write_bad_packages`] writes each package into a folder, with its `<name>.sha256` sidecar
//! where the case is about the sidecar, and returns what each one is and the text its
//! rejection must contain. Every package is small on disk (well under 1 MB) and is built in
//! code: the zip and tar writers where they allow it, and byte edits of what they wrote where
//! they refuse (duplicate names, invalid UTF-8, unsafe names).
//!
//! The rejections expect the limits the tests configure: `max_members` 1000,
//! `max_member_bytes` 8 MiB, `max_unpacked_bytes` 64 MiB, `max_ratio` 200, `max_depth` 2,
//! `max_name_len` 255, and `SHA256SUMS` among the member list names.

use std::io::{Cursor, Write};
use std::path::Path;

use sha2::Digest as _;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipWriter};

/// One bad package of the corpus.
#[derive(Debug, Clone)]
pub struct BadPackage {
    /// The package's file name in the folder, e.g. `20240602_2101_PREP_BAD.zip`.
    pub file_name: String,
    /// Text the rejection's message must contain.
    pub reason: &'static str,
}

const MIB: usize = 1024 * 1024;

/// Writes every bad package (and the sidecars some need) into `dir` and lists them.
///
/// Panics if `dir` cannot be written: this is test support.
pub fn write_bad_packages(dir: &Path) -> Vec<BadPackage> {
    let mut corpus = Corpus {
        dir,
        minute: 0,
        list: Vec::new(),
    };
    names(&mut corpus);
    types(&mut corpus);
    collisions(&mut corpus);
    limits(&mut corpus);
    evidence(&mut corpus);
    damage(&mut corpus);
    corpus.list
}

/// Writes packages with increasing minutes, so each has its own corte time.
struct Corpus<'d> {
    dir: &'d Path,
    minute: u32,
    list: Vec<BadPackage>,
}

impl Corpus<'_> {
    /// Writes `bytes` as the next package with extension `ext`; returns its file name.
    fn add(&mut self, ext: &str, bytes: &[u8], reason: &'static str) -> String {
        assert!(self.minute < 60, "the corpus has room for 60 packages");
        let file_name = format!("20240602_21{:02}_PREP_BAD.{ext}", self.minute);
        self.minute += 1;
        std::fs::write(self.dir.join(&file_name), bytes).expect("write a corpus package");
        self.list.push(BadPackage {
            file_name: file_name.clone(),
            reason,
        });
        file_name
    }

    /// Writes `<file_name>.sha256` beside a package.
    fn sidecar(&self, file_name: &str, text: &str) {
        let path = self.dir.join(format!("{file_name}.sha256"));
        std::fs::write(path, text).expect("write a corpus sidecar");
    }
}

// ----- builders -------------------------------------------------------------------------

/// Options for a deflated member with a fixed time, so packages are reproducible.
fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .system(System::Unix)
}

/// Options for a stored (uncompressed) member.
fn stored() -> SimpleFileOptions {
    deflated().compression_method(CompressionMethod::Stored)
}

/// A zip of `(name, bytes)` members, deflated.
pub fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    zip_with(members, deflated())
}

/// A zip of `(name, bytes)` members written with `options`; a name ending in `/` is a folder
/// entry.
pub fn zip_with(members: &[(&str, &[u8])], options: SimpleFileOptions) -> Vec<u8> {
    let entries: Vec<(&str, ZipEntry<'_>)> = members
        .iter()
        .map(|(name, bytes)| {
            let entry = if name.ends_with('/') {
                ZipEntry::Dir
            } else {
                ZipEntry::File(bytes)
            };
            (*name, entry)
        })
        .collect();
    zip_entries(&entries, options)
}

/// What one entry of a zip written by [`zip_entries`] is.
pub enum ZipEntry<'a> {
    File(&'a [u8]),
    Dir,
    /// A symbolic link to this target.
    Symlink(&'a str),
    /// A file with these bytes and this unix mode (type and permission bits), whatever the
    /// mode says it is.
    WithMode(&'a [u8], u32),
}

/// A zip of `(name, entry)` entries written with `options`: every zip the tests make is
/// written here.
pub fn zip_entries(entries: &[(&str, ZipEntry<'_>)], options: SimpleFileOptions) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, entry) in entries {
        match entry {
            ZipEntry::File(bytes) => {
                zip.start_file(*name, options).expect("start a zip member");
                zip.write_all(bytes).expect("write a zip member");
            }
            ZipEntry::Dir => zip.add_directory(*name, options).expect("add a zip folder"),
            ZipEntry::Symlink(target) => zip
                .add_symlink(*name, *target, options)
                .expect("add a zip symlink"),
            ZipEntry::WithMode(bytes, mode) => {
                let options = options.external_attributes(mode << 16);
                zip.start_file(*name, options).expect("start a zip member");
                zip.write_all(bytes).expect("write a zip member");
            }
        }
    }
    zip.finish().expect("finish a zip").into_inner()
}

/// A zip of `n` empty stored members named by their number in hexadecimal: a central
/// directory of `n` records of 54 bytes (zip64 past 65,535 members), with nothing to inflate.
pub fn zip_of_empty_members(n: usize) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..n {
        zip.start_file(format!("{i:08x}"), stored())
            .expect("start a zip member");
    }
    zip.finish().expect("finish a zip").into_inner()
}

/// Replaces every occurrence of `from` by `to` (same length) in `bytes`: renames a member in
/// both its local header and its central directory entry.
pub fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len(), "a patch keeps lengths");
    let mut at = 0;
    let mut found = false;
    while let Some(pos) = bytes[at..].windows(from.len()).position(|w| w == from) {
        let start = at + pos;
        bytes[start..start + to.len()].copy_from_slice(to);
        at = start + to.len();
        found = true;
    }
    assert!(found, "patch target not found");
}

/// A zip whose single member has the raw name `name` (any bytes, same length as a
/// placeholder written first).
pub fn zip_named(name: &[u8], data: &[u8]) -> Vec<u8> {
    let placeholder: String = "q".repeat(name.len());
    let mut zip = zip_of(&[(placeholder.as_str(), data)]);
    patch(&mut zip, placeholder.as_bytes(), name);
    zip
}

/// A zip with one member whose unix mode (type and permission bits) is `mode`.
pub fn zip_with_mode(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
    zip_with(&[(name, data)], stored().external_attributes(mode << 16))
}

/// Data of `len` bytes that deflates about 60:1: zeros with one pseudo-random byte every
/// 256, so it is big without passing the ratio limit.
pub fn low_ratio_data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut data = vec![0u8; len];
    for byte in data.iter_mut().step_by(256) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    data
}

/// `len` pseudo-random bytes, the same for the same `len`: data that does not compress.
pub fn noise(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(len as u64);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// The kinds of tar entry the corpus writes.
pub enum TarKind<'a> {
    File(&'a [u8]),
    Dir,
    Symlink(&'a str),
    HardLink(&'a str),
    CharDevice,
    BlockDevice,
    Fifo,
}

/// A tar of entries with raw names: names are written into the header as bytes, unchecked,
/// as a hostile sender would.
pub fn tar_of(entries: &[(&[u8], TarKind<'_>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind) in entries {
        let mut header = tar::Header::new_ustar();
        {
            let raw = &mut header.as_old_mut().name;
            assert!(name.len() < raw.len(), "tar test names fit the header");
            raw[..name.len()].copy_from_slice(name);
        }
        header.set_mode(0o644);
        header.set_mtime(0);
        let data: &[u8] = match kind {
            TarKind::File(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                data
            }
            TarKind::Symlink(target) | TarKind::HardLink(target) => {
                let ty = if matches!(kind, TarKind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                header.set_entry_type(ty);
                header
                    .set_link_name_literal(target)
                    .expect("set a link name");
                &[]
            }
            TarKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                &[]
            }
            TarKind::CharDevice => {
                header.set_entry_type(tar::EntryType::Char);
                &[]
            }
            TarKind::BlockDevice => {
                header.set_entry_type(tar::EntryType::Block);
                &[]
            }
            TarKind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                &[]
            }
        };
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).expect("append a tar entry");
    }
    builder.into_inner().expect("finish a tar")
}

/// A tar of an index page and a file `header_name` whose pax header holds `keys`, with `data`:
/// how GNU tar (`--sparse --format=pax`) and bsdtar write a file with holes.
pub fn tar_with_pax_file(keys: &[(&str, &[u8])], header_name: &str, data: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut index = tar::Header::new_ustar();
    index.set_size(3);
    index.set_mode(0o644);
    tar.append_data(&mut index, "index.html", &b"<p>"[..])
        .expect("append a tar entry");
    tar.append_pax_extensions(keys.iter().copied())
        .expect("append a pax header");
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, header_name, data)
        .expect("append a tar entry");
    tar.into_inner().expect("finish a tar")
}

/// A sparse file as GNU tar and bsdtar write it in pax form (sparse format 1.0): a made-up
/// header name, the real one (`datos.csv`) in the pax header, and data that begins with the
/// map of the file's pieces.
pub fn tar_with_pax_sparse_file() -> Vec<u8> {
    let map_then_data = [b"1\n2097152\n4\n".as_slice(), &[0; 500], b"fin\n"].concat();
    tar_with_pax_file(
        &[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"datos.csv"),
            ("GNU.sparse.realsize", b"2097156"),
        ],
        "GNUSparseFile.0/datos.csv",
        &map_then_data,
    )
}

/// A zip of an index page and `json/main.json`, the latter with a folder's unix mode: unzip
/// and Python's zipfile go by its name and extract a file.
pub fn zip_with_a_file_marked_as_a_folder() -> Vec<u8> {
    zip_entries(
        &[
            ("index.html", ZipEntry::File(b"<p>nuevo</p>")),
            (
                "json/main.json",
                ZipEntry::WithMode(br#"{"corte":"20240602_2015"}"#, 0o040_755),
            ),
        ],
        stored(),
    )
}

/// Gzips `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("finish gzip")
}

/// The `sha256sum` line for `bytes` named `name`.
pub fn sum_line(bytes: &[u8], name: &str) -> String {
    format!("{}  {name}\n", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A small valid site package.
fn site_zip(extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut members: Vec<(&str, &[u8])> = vec![("index.html", b"<h1>PREP</h1>\n")];
    members.extend_from_slice(extra);
    zip_of(&members)
}

// ----- the cases ----------------------------------------------------------------------------

/// Unsafe member names.
fn names(c: &mut Corpus<'_>) {
    let data = b"x\n";
    c.add("zip", &zip_named(b"/etc/passwd", data), "an absolute path");
    c.add(
        "zip",
        &zip_named(b"a/../../evil.txt", data),
        "a `..` component",
    );
    c.add("zip", &zip_named(b"css\\site.css", data), "a backslash");
    c.add("zip", &zip_named(b"C:/evil.txt", data), "a drive letter");
    c.add(
        "zip",
        &zip_named(b"css/./index.html", data),
        "a `.` component",
    );
    c.add(
        "zip",
        &zip_named(b"css//site.css", data),
        "an empty component",
    );
    c.add(
        "zip",
        &zip_named(b"bad\x01name.txt", data),
        "control character",
    );
    // Shown as `json/main.json`, beside or instead of the real one.
    c.add(
        "zip",
        &zip_of(&[("json/main\u{200b}.json", data)]),
        "zero-width character",
    );
    c.add(
        "zip",
        &zip_of(&[("json/\u{202e}nosj.niam", data)]),
        "bidirectional formatting",
    );
    let long = format!("{}.html", "a".repeat(300));
    c.add(
        "zip",
        &zip_of(&[(long.as_str(), data)]),
        "longer than the name length limit",
    );
    // Written as `bad_ñ.csv`, so the writer sets the UTF-8 flag; then `ñ` becomes FF FE.
    let mut flagged = zip_of(&[("bad_ñ.csv", data)]);
    patch(&mut flagged, "ñ".as_bytes(), b"\xff\xfe");
    c.add("zip", &flagged, "flagged as UTF-8 but not valid UTF-8");
    c.add(
        "zip",
        &zip_of(&[("index.html.", data)]),
        "a component ending in a dot or a space",
    );
    c.add(
        "zip",
        &zip_of(&[("json /main.json", data)]),
        "a component ending in a dot or a space",
    );
    c.add(
        "tar",
        &tar_of(&[(b"/etc/passwd", TarKind::File(data))]),
        "an absolute path",
    );
    c.add(
        "tar",
        &tar_of(&[(b"../evil.txt", TarKind::File(data))]),
        "a `..` component",
    );
    c.add(
        "tar",
        &tar_of(&[(b"datos_\xe1\xf1o.csv", TarKind::File(data))]),
        "not valid UTF-8",
    );
}

/// Members that are not regular files or directories.
fn types(c: &mut Corpus<'_>) {
    let zip = zip_entries(
        &[
            ("index.html", ZipEntry::File(b"<h1>PREP</h1>\n")),
            ("passwd", ZipEntry::Symlink("/etc/passwd")),
        ],
        deflated(),
    );
    c.add("zip", &zip, "is a symlink");
    c.add("zip", &zip_with_mode("queue", 0o010_644, b""), "is a FIFO");
    let tar = |extra: (&'static [u8], TarKind<'static>)| tar_of(&[file_entry(), extra]);
    c.add(
        "tar",
        &tar((b"passwd", TarKind::Symlink("/etc/passwd"))),
        "is a symlink",
    );
    c.add(
        "tar",
        &tar((b"shadow", TarKind::HardLink("/etc/shadow"))),
        "is a hard link",
    );
    c.add(
        "tar",
        &tar((b"tty", TarKind::CharDevice)),
        "is a character device",
    );
    c.add(
        "tar",
        &tar((b"sda", TarKind::BlockDevice)),
        "is a block device",
    );
    c.add("tar", &tar((b"fifo", TarKind::Fifo)), "is a FIFO");
    c.add("tar", &tar_with_pax_sparse_file(), "is a sparse file");
    c.add(
        "zip",
        &zip_with_a_file_marked_as_a_folder(),
        "marked as a folder but named as a file",
    );
}

/// The harmless first entry of the tar cases.
fn file_entry() -> (&'static [u8], TarKind<'static>) {
    (b"index.html", TarKind::File(b"<h1>PREP</h1>\n"))
}

/// Names that collide.
fn collisions(c: &mut Corpus<'_>) {
    let mut dup = zip_of(&[("a.csv", b"1\n"), ("b.csv", b"2\n")]);
    patch(&mut dup, b"b.csv", b"a.csv");
    c.add("zip", &dup, "collide");
    let case = zip_of(&[("Index.html", b"1\n"), ("index.HTML", b"2\n")]);
    c.add("zip", &case, "collide");
    let file_and_dir = zip_of(&[("css", b"1\n"), ("CSS/site.css", b"2\n")]);
    c.add("zip", &file_and_dir, "collide");
    // `año` with `ñ` (NFC) and with `n` and a combining tilde (NFD, as macOS writes it).
    let nfc_nfd = zip_of(&[("a\u{f1}o.csv", b"1\n"), ("an\u{303}o.csv", b"2\n")]);
    c.add("zip", &nfc_nfd, "collide");
    // The local header names another file than the central directory does.
    let mut renamed = zip_of(&[("index.html", b"<h1>PREP</h1>\n")]);
    let at = renamed
        .windows(10)
        .position(|w| w == b"index.html")
        .expect("the local name");
    renamed[at..at + 10].copy_from_slice(b"indez.html");
    c.add("zip", &renamed, "ambiguous archive");
}

/// Packages past a limit.
fn limits(c: &mut Corpus<'_>) {
    let names: Vec<String> = (0..1001).map(|i| format!("f{i}.txt")).collect();
    let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    c.add(
        "zip",
        &zip_with(&members, stored()),
        "limit passed: number of members",
    );

    let big = low_ratio_data(9 * MIB, 7);
    c.add(
        "zip",
        &zip_of(&[("big.csv", &big)]),
        "limit passed: size of member",
    );

    // Many members just under the 1 MiB ratio exemption, 69 MiB in all: each passes, the
    // whole package is a bomb.
    let almost = vec![0u8; MIB - 1];
    let names: Vec<String> = (0..69).map(|i| format!("part{i}.csv")).collect();
    let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &almost[..])).collect();
    c.add(
        "zip",
        &zip_of(&members),
        "limit passed: compression ratio of the whole package",
    );

    // The same with an incompressible member first, so the whole package's ratio stays under
    // its limit and the total size is what passes a limit.
    let noise = noise(700 * 1024);
    let mut padded: Vec<(&str, &[u8])> = vec![("noise.bin", &noise[..])];
    padded.extend_from_slice(&members);
    c.add("zip", &zip_of(&padded), "limit passed: total unpacked size");

    let zeros = vec![0u8; 5 * MIB];
    c.add(
        "zip",
        &zip_of(&[("bomb.csv", &zeros)]),
        "limit passed: compression ratio",
    );

    let inner = zip_of(&[("bomb.csv", &zeros)]);
    let outer = zip_with(&[("20240602_2100_PREP_GOB.zip", &inner)], stored());
    c.add("zip", &outer, "limit passed: compression ratio");

    let tar = tar_of(&[(b"bomb.csv", TarKind::File(&zeros))]);
    c.add("tar.gz", &gzip(&tar), "limit passed: compression ratio");

    let deepest = zip_of(&[("c.csv", b"1\n")]);
    let middle = zip_of(&[("b.zip", &deepest)]);
    let outer = zip_of(&[("a.zip", &middle)]);
    c.add("zip", &outer, "limit passed: nesting depth");
}

/// Packages whose evidence contradicts them.
fn evidence(c: &mut Corpus<'_>) {
    let good = site_zip(&[]);
    let name = c.add("zip", &good, "the .sha256 file says");
    let wrong = hex::encode(sha2::Sha256::digest(b"something else"));
    c.sidecar(&name, &format!("{wrong}  {name}\n"));

    let name = c.add("zip", &good, "the .sha256 file is for");
    c.sidecar(&name, &sum_line(&good, "20240602_2059_PREP_OTHER.zip"));

    let index = b"<h1>PREP</h1>\n".as_slice();
    let wrong_list = sum_line(b"not the index", "index.html");
    let pkg = site_zip(&[("SHA256SUMS", wrong_list.as_bytes())]);
    c.add("zip", &pkg, "SHA256SUMS gives");

    let missing_list = format!(
        "{}{}",
        sum_line(index, "index.html"),
        sum_line(b"body{}", "./css/site.css")
    );
    let pkg = site_zip(&[("SHA256SUMS", missing_list.as_bytes())]);
    c.add("zip", &pkg, "which is not in the package");

    let short_list = sum_line(index, "index.html");
    let pkg = site_zip(&[("app.js", b"1;\n"), ("SHA256SUMS", short_list.as_bytes())]);
    c.add("zip", &pkg, "is not listed in SHA256SUMS");

    let twice = format!("{short_list}{}", sum_line(b"other", "./index.html"));
    let pkg = site_zip(&[("SHA256SUMS", twice.as_bytes())]);
    c.add("zip", &pkg, "more than once");

    // The right digest first, another for the same name after it.
    let name = c.add("zip", &good, "more than once");
    let other = hex::encode(sha2::Sha256::digest(b"another package"));
    c.sidecar(
        &name,
        &format!("{}{other}  {name}\n", sum_line(&good, &name)),
    );
}

/// Damaged files and files that are no archive at all.
fn damage(c: &mut Corpus<'_>) {
    let text: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("'{i:06}B0100',{},{}\n", i % 7, i % 13).into_bytes())
        .collect();
    let whole = zip_of(&[("CAMP_GOB_2021.csv", &text)]);
    c.add("zip", &whole[..whole.len() / 2], "not a readable archive");

    let mut corrupt = whole.clone();
    let name_len = u16::from_le_bytes([corrupt[26], corrupt[27]]) as usize;
    let extra_len = u16::from_le_bytes([corrupt[28], corrupt[29]]) as usize;
    let data_start = 30 + name_len + extra_len;
    for byte in &mut corrupt[data_start + 200..data_start + 216] {
        *byte ^= 0x5a;
    }
    c.add("zip", &corrupt, "not a readable archive");

    c.add("zip", &zip_of(&[]), "the package is empty");

    c.add(
        "zip",
        b"this is a text file, not a zip\n",
        "not a readable archive",
    );
    // What a sender delivers by mistake under a package's name is named.
    c.add("zip", b"", "it is an empty file (0 bytes)");
    let page = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n";
    c.add("zip", page, "it is an HTML page");
    c.add(
        "zip",
        b"Rar!\x1a\x07\x01\x00\x33\x92\xb5\xe5",
        "it is a RAR archive",
    );
    c.add(
        "zip",
        b"7z\xbc\xaf\x27\x1c\x00\x04",
        "it is a 7-Zip (.7z) archive",
    );
    c.add(
        "tar.gz",
        b"\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46",
        "it is an xz stream",
    );

    // A tar cut at a member boundary: every member whole, the end-of-archive marker missing.
    let members: Vec<(Vec<u8>, &[u8])> = (0..20)
        .map(|i| (format!("json/{i}.json").into_bytes(), &b"{}"[..]))
        .collect();
    let entries: Vec<(&[u8], TarKind<'_>)> = members
        .iter()
        .map(|(n, d)| (n.as_slice(), TarKind::File(d)))
        .collect();
    let tar = tar_of(&entries);
    c.add("tar", &tar[..10 * 1024], "end-of-archive marker");
    c.add("tar.gz", &gzip(&tar[..10 * 1024]), "end-of-archive marker");
    // A tar with a zip appended: every zip reader opens the zip, which no check saw.
    let mut tar_and_zip = tar_of(&[(b"index.html", TarKind::File(b"<p>tar</p>"))]);
    tar_and_zip.extend(zip_of(&[("index.html", b"<p>zip</p>")]));
    c.add(
        "zip",
        &tar_and_zip,
        "bytes other than zeros follow the tar archive's end-of-archive marker",
    );

    let tar_gz = gzip(&tar_of(&[(b"CAMP_GOB_2021.csv", TarKind::File(&text))]));
    c.add(
        "tar.gz",
        &tar_gz[..tar_gz.len() * 2 / 3],
        "not a readable archive",
    );
}
