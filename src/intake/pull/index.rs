//! The indexes the pull channel reads: what a listing is, which names it takes, where each
//! listed file is, and which files are evidence rather than packages.
//!
//! An index is nginx's `autoindex_format json` listing (`[{"name": …, "type": "file",
//! "size": …, "mtime": …}]`), a JSON array of names, or plain text with one name per line
//! (`#` starts a comment). An HTML page is refused with a message saying how to serve one.
//!
//! # Guarantees
//! - Index entries are names, never paths: a name with `/`, `\`, a control character or a
//!   leading dot is ignored, so every fetched address is a direct child of the index; so is
//!   a name no channel takes ([`crate::package::check_file_name`]: ending in a dot or a
//!   space, too long for its evidence's name to fit in a file name). Those ignored other
//!   than hidden names (a path, `..`, an address on another server, such a name) are named
//!   ([`Index::ignored`]), for the journal to say why they are not fetched.
//! - An index is read to at most [`MAX_INDEX_BYTES`] and [`MAX_INDEX_ENTRIES`] entries. An
//!   institute's index listing more entries is refused whole. A primary's feed listing more
//!   (one that lists every package it ever took, as feeds before the limit of
//!   [`crate::feed`] did) is cut instead: its first entries are taken, the live corte's
//!   packages first as a feed lists them, without the package the cut may have parted from
//!   its evidence; the rest are skipped, never held, and the cut is said ([`Index::cut`]).
//! - Every package it lists is fetched in name order (names start with the corte time, so
//!   that is the order of cortes), or, from a primary's feed, in the order listed; with
//!   `<name>.sha256` and `<name>.minisig` when the index lists them (those that failed at the
//!   poll before are tried after the others: [`super::fetch`]). Evidence files are never
//!   fetched as packages.

use std::collections::HashSet;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use reqwest::Url;

use super::fetch::Target;
use crate::package::{PackageName, check_file_name, is_evidence};
use crate::peer_text::PeerText;

/// Largest index read.
pub(crate) const MAX_INDEX_BYTES: u64 = 4 * 1024 * 1024;

/// Most entries read from an index.
pub(super) const MAX_INDEX_ENTRIES: usize = 20_000;

/// Characters escaped when a listed name becomes the last segment of a URL.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The order an index's packages are taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// By name: an institute's names start with the corte time, so this is corte order.
    Name,
    /// As listed: a primary's feed lists its live corte's packages first, then the rest in
    /// the order it received them. Taken so only while this node serves no corte (see
    /// [`Puller::order`](super::Puller)).
    Listed,
}

/// One entry of an index, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    pub(super) name: String,
    size: Option<u64>,
    mtime: Option<String>,
}

/// An entry of a JSON index: a name, or an object with one (nginx's `autoindex_format json`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JsonEntry {
    Name(String),
    Entry {
        name: String,
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        size: Option<u64>,
        #[serde(default)]
        mtime: Option<String>,
    },
}

/// What a JSON index's array is cut short with, past [`MAX_INDEX_ENTRIES`] entries.
const TOO_MANY: &str = "too many entries";

/// How many entries of a JSON index are read: at most [`MAX_INDEX_ENTRIES`], the array
/// refused past them, or, with `cut`, the rest skipped one by one and counted. A listing of
/// millions of tiny entries is never held whole (an entry takes far more memory than its few
/// bytes of JSON).
struct Bounded {
    cut: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for Bounded {
    type Value = (Vec<JsonEntry>, usize);
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Bounded {
    type Value = (Vec<JsonEntry>, usize);
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of entries")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while items.len() < MAX_INDEX_ENTRIES {
            match seq.next_element::<JsonEntry>()? {
                Some(item) => items.push(item),
                None => return Ok((items, 0)),
            }
        }
        let mut skipped = 0;
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            if !self.cut {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            skipped += 1;
        }
        Ok((items, skipped))
    }
}

/// An index as read: the files it lists (valid names only), and what was cut from it.
pub(super) struct Index {
    /// The files taken from it, in the order listed.
    pub(super) listing: Vec<Listed>,
    /// When it listed more than [`MAX_INDEX_ENTRIES`] entries and was cut: how many it
    /// listed.
    pub(super) cut: Option<usize>,
    /// The files it lists that are no file name beside it (a path, `..`, an address on
    /// another server), as listed: never fetched. Hidden names (an upload in progress) are
    /// not among them.
    pub(super) ignored: Vec<String>,
}

/// Whether an entry the index lists, no valid file name, is worth a word: not a hidden name
/// (`.name.part`, an upload in progress beside the index), which is left out in silence.
fn said_when_ignored(name: &str) -> bool {
    !name.starts_with('.') || name.contains(['/', '\\']) || name == ".."
}

/// The files an index lists, valid names only: refused past [`MAX_INDEX_ENTRIES`] entries,
/// or, with `cut` (a primary's feed), cut there: its first entries are taken, without the
/// last package taken, which may have been parted from its evidence.
pub(super) fn parse_index(body: &[u8], cut: bool) -> Result<Index, String> {
    let text = std::str::from_utf8(body).map_err(|_| "it is not UTF-8 text".to_owned())?;
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let too_many = || format!("more than {MAX_INDEX_ENTRIES} entries");
    let (mut entries, skipped): (Vec<Listed>, usize) = if text.starts_with('[') {
        let mut json = serde_json::Deserializer::from_str(text);
        let read = serde::de::DeserializeSeed::deserialize(Bounded { cut }, &mut json)
            .and_then(|read| json.end().map(|()| read));
        let (items, skipped) = match read {
            Ok(read) => read,
            Err(e) if e.to_string().starts_with(TOO_MANY) => return Err(too_many()),
            Err(e) => return Err(format!("invalid JSON: {}", PeerText(e))),
        };
        let entries = items
            .into_iter()
            .filter_map(|item| match item {
                JsonEntry::Name(name) => Some(Listed {
                    name,
                    size: None,
                    mtime: None,
                }),
                JsonEntry::Entry {
                    name,
                    kind,
                    size,
                    mtime,
                } => (kind.is_none_or(|k| k == "file")).then_some(Listed { name, size, mtime }),
            })
            .collect();
        (entries, skipped)
    } else if text.starts_with('<') {
        return Err(
            "it is HTML; serve it as JSON (nginx: `autoindex_format json;`) or as \
                    plain text with one name per line"
                .to_owned(),
        );
    } else {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let entries = lines
            .by_ref()
            .take(MAX_INDEX_ENTRIES)
            .map(|name| Listed {
                name: name.to_owned(),
                size: None,
                mtime: None,
            })
            .collect();
        let skipped = if cut {
            lines.count()
        } else {
            lines.next().map_or(0, |_| 1)
        };
        if skipped > 0 && !cut {
            return Err(too_many());
        }
        (entries, skipped)
    };
    if skipped > 0
        && let Some(last) = entries.iter().rposition(|e| !is_evidence(&e.name))
    {
        entries.truncate(last);
    }
    let (listing, refused): (Vec<Listed>, Vec<Listed>) = entries
        .into_iter()
        .partition(|e| check_file_name(&e.name).is_ok());
    Ok(Index {
        listing,
        cut: (skipped > 0).then(|| MAX_INDEX_ENTRIES + skipped),
        ignored: refused
            .into_iter()
            .map(|e| e.name)
            .filter(|name| said_when_ignored(name))
            .collect(),
    })
}

/// A relative reference to the file `name` beside the index: one escaped segment, led by
/// `./` so a name with a colon cannot read as a scheme.
fn child_reference(name: &str) -> String {
    format!("./{}", utf8_percent_encode(name, SEGMENT))
}

/// The decoded last segment of `url`, if it is a valid file name.
pub(crate) fn last_segment(url: &Url) -> Option<PackageName> {
    let raw = url.path_segments()?.next_back()?;
    let name = percent_decode_str(raw).decode_utf8().ok()?;
    PackageName::new(&name)
}

/// The packages `listing` lists (not their evidence), in `order`.
pub(super) fn packages(listing: &[Listed], order: Order) -> Vec<&Listed> {
    let mut packages: Vec<&Listed> = listing.iter().filter(|e| !is_evidence(&e.name)).collect();
    if order == Order::Name {
        packages.sort_by(|a, b| a.name.cmp(&b.name));
    }
    packages
}

/// The package `entry` of the index at `index`, with its `.sha256` and `.minisig` where the
/// index lists them (`names`); `None` when it has no address beside the index (or, which
/// [`parse_index`] already excludes, its name is no package name).
pub(super) fn target(index: &Url, entry: &Listed, names: &HashSet<&str>) -> Option<Target> {
    let child = |suffix: &str| {
        let name = format!("{}{suffix}", entry.name);
        let listed = suffix.is_empty() || names.contains(name.as_str());
        listed
            .then(|| index.join(&child_reference(&name)).ok())
            .flatten()
    };
    Some(Target {
        name: PackageName::new(&entry.name)?,
        url: child("")?,
        sidecar: child(".sha256"),
        signature: child(".minisig"),
        adopt_name: false,
    })
}

/// The name and address of the last package the index at `index` (whose body is `body`)
/// lists in name order, the latest corte; `None` when it lists no package.
pub(crate) fn latest(index: &Url, body: &[u8]) -> Result<Option<(PackageName, Url)>, String> {
    let listing = parse_index(body, false)?.listing;
    let names: HashSet<&str> = listing.iter().map(|e| e.name.as_str()).collect();
    Ok(packages(&listing, Order::Name)
        .last()
        .and_then(|entry| target(index, entry, &names))
        .map(|t| (t.name, t.url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_in_every_accepted_form_give_their_file_names() {
        let nginx = br#"[{"name":"sub","type":"directory","mtime":"x"},
            {"name":"20270606_2000_PREP_CAMP.zip","type":"file","mtime":"Sun, 06 Jun 2027 20:00:00 GMT","size":10},
            {"name":"../etc/passwd","type":"file"},{"name":".oculto","type":"file"}]"#;
        let listed = parse_index(nginx, false).unwrap().listing;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "20270606_2000_PREP_CAMP.zip");
        assert_eq!(listed[0].size, Some(10));
        let names = parse_index(br#"["a.zip", "a.zip.sha256", "b/c.zip"]"#, false)
            .unwrap()
            .listing;
        let names: Vec<&str> = names.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a.zip", "a.zip.sha256"]);
        let text = parse_index(b"\xef\xbb\xbf# paquetes\na.zip\r\n\n..\nb.zip\n", false)
            .unwrap()
            .listing;
        let text: Vec<&str> = text.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(text, ["a.zip", "b.zip"]);
        assert!(
            parse_index(b"<html><a href=\"a.zip\">", false)
                .err()
                .unwrap()
                .contains("HTML")
        );
        assert!(parse_index(b"[{\"nombre\": 1}]", false).is_err());
        // Entries past the limit, however small, in either form.
        let many = |n: usize, each: &str, sep: &str| vec![each; n].join(sep);
        let json = format!("[{}]", many(MAX_INDEX_ENTRIES, "\"a\"", ","));
        assert_eq!(
            parse_index(json.as_bytes(), false).unwrap().listing.len(),
            MAX_INDEX_ENTRIES
        );
        let json = format!("[{}]", many(MAX_INDEX_ENTRIES + 1, "\"a\"", ","));
        let why = parse_index(json.as_bytes(), false).err().unwrap();
        assert_eq!(why, format!("more than {MAX_INDEX_ENTRIES} entries"));
        let text = many(MAX_INDEX_ENTRIES + 1, "a", "\n");
        let why = parse_index(text.as_bytes(), false).err().unwrap();
        assert_eq!(why, format!("more than {MAX_INDEX_ENTRIES} entries"));
        assert!(parse_index(&[0xff, 0xfe], false).is_err());
    }

    #[test]
    fn a_feed_listing_past_the_limit_is_cut_after_its_first_whole_packages() {
        // Package, sidecar, signature, as a feed lists them: the cut parts the last one.
        let feed: Vec<String> = (0..MAX_INDEX_ENTRIES / 3 + 100)
            .flat_map(|i| {
                let name = format!("{i:05}.zip");
                [format!("{name}.sha256"), format!("{name}.minisig"), name]
                    .map(|n| format!("{{\"name\":\"{n}\",\"type\":\"file\"}}"))
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
            })
            .collect();
        let json = format!("[{}]", feed.join(","));
        let index = parse_index(json.as_bytes(), true).unwrap();
        assert_eq!(index.cut, Some(feed.len()));
        let kept = MAX_INDEX_ENTRIES / 3;
        assert_eq!(index.listing.len(), kept * 3);
        let last = index.listing.last().unwrap();
        assert_eq!(last.name, format!("{:05}.zip.sha256", kept - 1));
        let text: Vec<String> = (0..MAX_INDEX_ENTRIES + 5)
            .map(|i| format!("{i:05}.zip"))
            .collect();
        let index = parse_index(text.join("\n").as_bytes(), true).unwrap();
        assert_eq!(index.cut, Some(MAX_INDEX_ENTRIES + 5));
        assert_eq!(index.listing.len(), MAX_INDEX_ENTRIES - 1);
        // Within the limit: nothing cut.
        let index = parse_index(br#"["a.zip", "a.zip.sha256"]"#, true).unwrap();
        assert_eq!((index.listing.len(), index.cut), (2, None));
    }

    #[test]
    fn packages_are_taken_by_name_or_as_listed() {
        let listing = parse_index(
            br#"["b.zip", "b.zip.sha256", "a.zip", "c.zip", "a.zip.minisig"]"#,
            false,
        )
        .unwrap()
        .listing;
        let names = |order| -> Vec<&str> {
            packages(&listing, order)
                .iter()
                .map(|e| e.name.as_str())
                .collect()
        };
        assert_eq!(names(Order::Name), ["a.zip", "b.zip", "c.zip"]);
        assert_eq!(names(Order::Listed), ["b.zip", "a.zip", "c.zip"]);
    }

    #[test]
    fn the_last_segment_is_decoded_and_must_be_a_file_name() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            last_segment(&url("https://a.mx/prep/20270606_2000_PREP_CAMP.zip")).as_deref(),
            Some("20270606_2000_PREP_CAMP.zip")
        );
        assert_eq!(
            last_segment(&url("https://a.mx/p/paquete%20uno.zip")).as_deref(),
            Some("paquete uno.zip")
        );
        assert_eq!(last_segment(&url("https://a.mx/p/a%2Fb.zip")), None);
        assert_eq!(last_segment(&url("https://a.mx/p/.oculto")), None);
        assert_eq!(last_segment(&url("https://a.mx/")), None);
    }

    #[test]
    fn names_become_single_escaped_segments() {
        let base = Url::parse("https://a.mx/prep/").unwrap();
        let join = |n: &str| base.join(&child_reference(n)).unwrap().to_string();
        assert_eq!(join("a b#?.zip"), "https://a.mx/prep/a%20b%23%3F.zip");
        assert_eq!(join("https:x.zip"), "https://a.mx/prep/https:x.zip");
        assert_eq!(join("x%2F.zip"), "https://a.mx/prep/x%252F.zip");
    }
}
