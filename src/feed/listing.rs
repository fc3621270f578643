//! What the feed lists under `/packages/`: the packages this node took that a replica needs
//! (the live corte's and the newest others), with their evidence, in the order a replica
//! should take them, and the one way from a listed name to what is served for it.
//!
//! # Guarantees
//! - At most [`MAX_LISTED`] packages are listed: every package the live site was built from,
//!   then the newest others. A node reused across drills and the night, or one that took a
//!   corte every second, never lists more than a replica reads of an index
//!   ([`crate::intake::pull::MAX_INDEX_BYTES`] and 20 000 entries): its replicas go on
//!   following it. A replica needs the live corte to serve and the recent ones to follow a
//!   rollback; an older package drops out of the listing, never out of any node's archive.
//! - Only packages the journal holds as published, older or held are listed: verified and
//!   in the verified archive, under their SHA-256. A name that was taken twice (two packages
//!   under one name) is listed once, for the later package.
//! - Order: the packages the live site was built from (from its latest complete site package
//!   through the live one) first, then the rest, each in the order they first arrived here;
//!   a replica starting empty publishes the live corte before it files away the history.
//! - Each package is listed under the name it was taken under (the journal's), and followed
//!   by its `<name>.sha256` (the sidecar archived with it when that gives the package's
//!   SHA-256 for that name, else the `sha256sum` line of its digest: a sidecar that does not
//!   was never the one it was taken with, and would make every replica refuse it) and its
//!   `<name>.minisig` when one was archived, exactly as received.
//! - [`Listing::get`] matches a name exactly against the listing: nothing else of the disk
//!   can be reached through it.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use http::HeaderValue;
use jiff::fmt::rfc2822::DateTimePrinter;
use serde::Serialize;

use super::FeedError;
use crate::archive::Archive;
use crate::hash::Sha256;
use crate::journal::{Build, Journal, Taken, lineage};
use crate::package::{
    PackageKind, PackageName, evidence_text, is_evidence, sidecar_digest, sum_line,
};

/// Most packages listed, the live corte's included (unless they alone are more). Each is
/// listed with at most two evidence files, each entry under 1 KiB (a name is at most 255
/// bytes), so the listing stays under 3 000 entries and 3 MiB, within what a replica reads;
/// and a thousand packages are several nights of cortes, so a rollback an operator asks for
/// finds its corte on every replica.
pub(super) const MAX_LISTED: usize = 1_000;

/// The listing at one moment, with what each listed name serves.
pub(super) struct Listing {
    /// The JSON array, in nginx's `autoindex_format json` form.
    pub(super) body: Bytes,
    /// Its strong ETag.
    pub(super) etag: HeaderValue,
    /// What each listed name serves.
    files: HashMap<String, Listed>,
}

/// What a listed name serves.
pub(super) enum Listed {
    /// A package's bytes, read from the verified archive.
    Package(Sha256),
    /// A package's evidence, served as it is.
    Evidence(Bytes),
}

/// One entry, as nginx's `autoindex_format json` writes it.
#[derive(Serialize)]
struct Entry {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    size: u64,
    mtime: String,
}

impl Listing {
    /// The listing as the journal and the archive hold it now; `live` is the publication of
    /// the live corte, if any.
    pub(super) fn build(
        journal: &Journal,
        archive: &Archive,
        live: Option<i64>,
    ) -> Result<Self, FeedError> {
        let taken = journal.taken()?;
        let first = live_packages(journal, live)?;
        let mut entries = Vec::new();
        let mut files = HashMap::new();
        for t in listed(&taken, &first) {
            let mtime = DateTimePrinter::new()
                .timestamp_to_rfc9110_string(&t.first_received)
                .unwrap_or_default();
            let path = archive.path_of(t.sha256);
            // The evidence as the institute sent it.
            let evidence = |ext| {
                archive
                    .read_evidence(&path, ext)
                    .and_then(|file| file.bytes().map(<[u8]>::to_vec))
            };
            let sidecar = evidence("sha256")
                .filter(|bytes| {
                    sidecar_digest(&evidence_text(bytes), &t.name).ok() == Some(t.sha256)
                })
                .unwrap_or_else(|| sum_line(t.sha256, &t.name).into_bytes());
            let signature = evidence("minisig");
            entries.push(Entry {
                name: t.name.clone(),
                kind: "file",
                size: t.size,
                mtime: mtime.clone(),
            });
            files.insert(t.name.clone(), Listed::Package(t.sha256));
            for (ext, text) in [("sha256", Some(sidecar)), ("minisig", signature)] {
                let Some(text) = text else { continue };
                let name = format!("{}.{ext}", t.name);
                entries.push(Entry {
                    name: name.clone(),
                    kind: "file",
                    size: text.len() as u64,
                    mtime: mtime.clone(),
                });
                files.insert(name, Listed::Evidence(Bytes::from(text)));
            }
        }
        let body = Bytes::from(serde_json::to_vec(&entries).unwrap_or_default());
        Ok(Self {
            etag: super::etag_of(&body),
            body,
            files,
        })
    }

    /// What the listed name `name` serves; `None` for any name the listing does not hold.
    pub(super) fn get(&self, name: &str) -> Option<&Listed> {
        self.files.get(name)
    }
}

/// The packages of `taken` that are listed, in arrival order: each name once, at its latest
/// arrival, and only names that are package names (never an evidence file's).
fn latest_by_name(taken: &[Taken]) -> Vec<&Taken> {
    let latest: HashMap<&str, usize> = taken
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    taken
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            latest.get(t.name.as_str()) == Some(i)
                && PackageName::new(&t.name).is_some()
                && !is_evidence(&t.name)
        })
        .map(|(_, t)| t)
        .collect()
}

/// The packages of `taken` that are listed, in order: those of `live` (the live site's) first,
/// then the newest others, [`MAX_LISTED`] in all; each part in arrival order.
fn listed<'a>(taken: &'a [Taken], live: &HashSet<Sha256>) -> Vec<&'a Taken> {
    let (mut listed, rest): (Vec<&Taken>, Vec<&Taken>) = latest_by_name(taken)
        .into_iter()
        .partition(|t| live.contains(&t.sha256));
    let older = rest
        .len()
        .saturating_sub(MAX_LISTED.saturating_sub(listed.len()));
    listed.extend(rest.into_iter().skip(older));
    listed
}

/// The packages the site of publication `live` was built from: its latest complete site
/// package (a site package that replaced the whole site) and every package after it.
fn live_packages(journal: &Journal, live: Option<i64>) -> Result<HashSet<Sha256>, FeedError> {
    let Some(seq) = live else {
        return Ok(HashSet::new());
    };
    let pubs = journal.publications()?;
    let steps = lineage(&pubs, seq)?;
    let from = steps
        .iter()
        .rposition(|p| p.kind == PackageKind::Site && p.build == Build::Replace)
        .unwrap_or(0);
    Ok(steps[from..].iter().map(|p| p.package).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(name: &str, n: u8) -> Taken {
        Taken {
            sha256: Sha256::of(&[n]),
            name: name.to_owned(),
            size: u64::from(n),
            first_received: jiff::Timestamp::from_second(i64::from(n)).unwrap(),
        }
    }

    #[test]
    fn a_name_taken_twice_is_listed_once_at_its_latest_arrival() {
        let all = [
            taken("a.zip", 1),
            taken("b.zip", 2),
            taken("a.zip", 3),
            taken("x.zip.sha256", 4),
            taken(".oculto.zip", 5),
        ];
        let listed: Vec<(&str, u64)> = latest_by_name(&all)
            .iter()
            .map(|t| (t.name.as_str(), t.size))
            .collect();
        assert_eq!(listed, [("b.zip", 2), ("a.zip", 3)]);
    }

    #[test]
    fn the_live_packages_and_the_newest_others_are_listed_up_to_the_limit() {
        let all: Vec<Taken> = (0..MAX_LISTED + 500)
            .map(|i| Taken {
                sha256: Sha256::of(&i.to_be_bytes()),
                name: format!("{i:05}.zip"),
                size: 1,
                first_received: jiff::Timestamp::from_second(i as i64).unwrap(),
            })
            .collect();
        // The live site's packages: an old complete one and the one after it.
        let live: HashSet<Sha256> = [all[3].sha256, all[4].sha256].into();
        let names: Vec<&str> = listed(&all, &live)
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names.len(), MAX_LISTED);
        assert_eq!(names[..3], ["00003.zip", "00004.zip", "00502.zip"]);
        assert_eq!(names.last(), Some(&"01499.zip"));
        // Fewer than the limit: all of them, the live ones first.
        let names: Vec<&str> = listed(&all[..10], &live)
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names.len(), 10);
        assert_eq!(names[..3], ["00003.zip", "00004.zip", "00000.zip"]);
    }
}
