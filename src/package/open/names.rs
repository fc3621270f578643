//! Member name rules: which names are safe to serve, how raw names become text, and which
//! names collide.
//!
//! [`Names::admit`] is the one gate every member name passes: it refuses (as
//! [`Rejection::UnsafeName`]) empty names and components, characters that disguise a name
//! when it is shown (control, bidirectional formatting, zero-width), backslashes,
//! absolute paths, drive letters, `.` and `..` components, components ending in a dot or a
//! space, and paths longer than [`Limits::max_name_len`](super::super::Limits); and (as
//! [`Rejection::Collision`]) a name equal to one already seen, or equal but for letter case or
//! Unicode normalisation, or a file where a directory was seen or the other way round. Raw
//! names become text only as [`zip_name`] and [`tar_name`] allow: UTF-8 when a zip entry is
//! flagged so (and then it must be valid), else the zip's CP437; tar names must be UTF-8.

use std::collections::HashMap;
use std::io::Read;

use unicode_normalization::UnicodeNormalization as _;

use super::super::Rejection;
use super::super::name::disguises;
use super::EntryKind;

/// Bit 11 of a zip entry's general purpose flags: its name is UTF-8 (APPNOTE 4.4.4).
const ZIP_FLAG_UTF8: u16 = 0x0800;

/// A zip member's name as text: UTF-8 when flagged so (and then it must be valid), else the
/// zip crate's decoding (UTF-8 if valid, CP437 otherwise).
pub(super) fn zip_name<R: Read>(entry: &::zip::read::ZipFile<'_, R>) -> Result<String, Rejection> {
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

/// A tar member's name as text: it must be UTF-8.
pub(super) fn tar_name(raw: &[u8]) -> Result<String, Rejection> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| unsafe_name(&String::from_utf8_lossy(raw), "not valid UTF-8"))
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
    if name.chars().any(disguises) {
        return Err(
            "a control character, a bidirectional formatting character or a zero-width character",
        );
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
/// combining tilde (NFD, as macOS writes it) and with `ñ` (NFC) are one name. An ASCII name
/// (nearly every one a site has) is its own NFC form, so it is only lowercased.
pub(crate) fn comparable(path: &str) -> String {
    if path.is_ascii() {
        return path.to_ascii_lowercase();
    }
    path.nfc().collect::<String>().to_lowercase()
}

/// Every path seen in one package, by comparable form ([`comparable`]), to find names that
/// collide.
#[derive(Default)]
pub(super) struct Names {
    /// Comparable file path → the path as written.
    files: HashMap<String, String>,
    /// Comparable directory path (written or implied by a file's path) → the path as written.
    dirs: HashMap<String, String>,
}

impl Names {
    /// Checks a member's name and records it; returns the path it will be served under (empty
    /// for the archive's root directory, `./`).
    ///
    /// `prefix` is the nested zip's path less `.zip`, for members of nested zips; the whole
    /// path may be at most `max_len` bytes.
    pub(super) fn admit(
        &mut self,
        name: &str,
        kind: EntryKind,
        prefix: Option<&str>,
        max_len: usize,
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
        if path.len() > max_len {
            return Err(unsafe_name(&path, "longer than the name length limit"));
        }
        match kind {
            EntryKind::File => self.add_file(&path)?,
            EntryKind::Dir => self.add_dir(&path)?,
        }
        Ok(path)
    }

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
pub(super) fn collision(first: &str, second: &str) -> Rejection {
    Rejection::Collision {
        first: first.to_owned(),
        second: second.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{open_bytes, paths, why};
    use super::*;
    use crate::package::corpus::{TarKind, gzip, patch, tar_of, zip_named, zip_of};

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
            (
                b"a\x00b.txt",
                "a control character, a bidirectional formatting character or a zero-width character",
            ),
        ];
        for (name, expected) in cases {
            let got = why(open_bytes(&zip_named(name, b"x")));
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(name));
        }
        assert_eq!(
            why(open_bytes(&zip_named(b"tab\there.txt", b"x"))),
            "a control character, a bidirectional formatting character or a zero-width character"
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
        let cases: [(&[u8], &str); 7] = [
            (b"/etc/passwd", "an absolute path"),
            (b"../x.txt", "a `..` component"),
            (b"a\\b.txt", "a backslash"),
            (b"D:/x.txt", "a drive letter"),
            (
                b"x\x1b.txt",
                "a control character, a bidirectional formatting character or a zero-width character",
            ),
            (
                "json/\u{202e}nosj.niam".as_bytes(),
                "a control character, a bidirectional formatting character or a zero-width character",
            ),
            (
                "json/main\u{200b}.json".as_bytes(),
                "a control character, a bidirectional formatting character or a zero-width character",
            ),
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
