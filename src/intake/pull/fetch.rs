//! Fetching one package and its evidence until they agree, and handing it to the publisher.
//!
//! A package of an index is fetched with the `.sha256` and `.minisig` the index lists for it
//! ([`super::index`]). A single-package address (a "latest" address) is fetched when it
//! changes, named by the last segment of the address it was finally served from (after
//! redirects), with its evidence at that address plus `.sha256` and `.minisig` (a 404 means
//! none; asked without the token when that address is on another server, as
//! [`super::client`] guarantees). When that sidecar is one `sha256sum` line naming another
//! file (a "latest" alias, `ultimo.zip`, whose sidecar names `20270606_2000_PREP_CAMP.zip`),
//! the package takes that name: the institute's name, with its corte time.
//!
//! # Guarantees
//! - A download goes to a temporary file in `<data_dir>/tmp`; it is refused beyond
//!   `max_package_bytes` ([`super::client`] reads every body to its limit), and stopped, the
//!   file removed, at the chunk that would leave less free space on the disk than
//!   `min_free_space` ([`crate::store::space`]): this machine's fault, journaled as a
//!   `pull-error` like the others, and fetched again at a later poll. Evidence files
//!   have their own small limit: one past it is not read further, and its package is handed
//!   over with it known by its size, to be refused for it, as from every channel.
//! - A package whose bytes do not match its `.sha256` is fetched again with a fresh sidecar (it
//!   may have been replaced while it was being downloaded); one that never matches is not handed
//!   over, and the attempt fails. A torn download never reaches the publisher.
//! - A package of an index whose sidecar names a digest the journal holds as decided, under
//!   that same name, is not downloaded again; one it holds as rejected, only when its sidecar
//!   and signature are those the rejected copy keeps beside it (the last rejected
//!   delivery's): a package refused for what came with it (a signature or sidecar changed on
//!   the way, by a man in the middle or a primary in the middle of a change) is taken again
//!   with other evidence, and verified again. A sidecar is never taken for the bytes
//!   otherwise: a new name whose sidecar names a package already received (a copied
//!   sidecar), or a "latest" address whose answer changed while its sidecar still names the
//!   package before (the two are not replaced at once), is downloaded and checked against a
//!   fresh sidecar, and nothing is remembered until they agree.
//! - Bytes downloaded that the journal holds as decided under the same name (rejected ones:
//!   with the same evidence) are not handed over again. A service that never answers 304
//!   (an `ETag` that differs at every answer, as from two servers behind one address that
//!   disagree on it, an index whose times keep changing, no validators at all) costs a
//!   download at every poll, never a journal entry, an archive write or a verification.
//! - One this machine failed to take (a full disk, a journal error; the publisher's
//!   `failed`) is not taken: it is fetched again at the next poll, and after a restart.
//! - In an index, a package that fails for itself (too large, never matching its sidecar, a
//!   download that alone breaks or stalls) does not hold back the ones after it. One whose
//!   failure is the institute's (not the transfer's, not this machine's) is fetched again
//!   after a wait of its own, doubling from `pull_interval` to `pull_max_backoff`, or at
//!   once when the index lists it or its evidence changed; meanwhile the index is read every
//!   `pull_interval` ([`super::Puller::run`]), so it delays no corte listed after it. Any
//!   other is fetched again at the next poll. A service that stops answering ends the poll at the
//!   [`TRANSPORT_FAILURES_IN_A_ROW`]th package in a row it does not deliver, never once per
//!   package. The packages that failed at a poll are tried after the others at the next, so
//!   that packages that never come, ending every poll before the rest, hold back none listed
//!   after them. An index is remembered (its validators kept) only once all it lists is in.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use jiff::Timestamp;
use reqwest::{Response, StatusCode, Url};
use serde_json::json;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;

use super::client::{Body, Validators, read_small};
use super::index::{
    Listed, MAX_INDEX_BYTES, MAX_INDEX_ENTRIES, Order, last_segment, packages, parse_index, target,
};
use super::{Failed, PullError, Puller, Source, backoff};
use crate::hash::{Hashed, Sha256};
use crate::intake::{Channel, Received};
use crate::journal::{EventKind, PackageState};
use crate::package::{
    EVIDENCE_EXTENSIONS, EvidenceFile, MAX_EVIDENCE_BYTES, PackageName, sidecar_digest,
    sidecar_single_entry,
};
use crate::peer_text::clipped;
use crate::publisher::{Fault, Outcome};

/// Entries an index lists that are no file name, named in the journal when it says so.
const IGNORED_SHOWN: usize = 5;

/// Downloads of one package in one poll while its bytes and its sidecar disagree.
pub(super) const ATTEMPTS: usize = 3;

/// Packages of an index in a row that the service does not deliver (no answer, a broken or
/// stalled transfer) before a poll ends: one is that package's own trouble, the next one too
/// is the service's.
pub(super) const TRANSPORT_FAILURES_IN_A_ROW: usize = 2;

impl Puller {
    /// Fetches every package of an index not taken before.
    pub(super) async fn poll_index(&self, source: &mut Source) -> Result<(), PullError> {
        // Until the index is read and its packages looked at, a failure is the service's.
        source.own_failures_only = false;
        let Some(response) = self.client.get(&source.url, &source.validators).await? else {
            return Ok(());
        };
        let validators = Validators::of(response.headers());
        let body = read_small(response, &source.url, MAX_INDEX_BYTES, "index").await?;
        // A primary's feed listing more than can be read is cut, not refused: its replicas
        // go on serving its live corte, listed first.
        let index =
            parse_index(&body, source.order == Order::Listed).map_err(|why| PullError::Index {
                url: source.url.clone(),
                why,
            })?;
        self.cut(source, index.cut, index.listing.len());
        self.ignored(source, index.ignored);
        let listing = index.listing;
        let names: HashSet<&str> = listing.iter().map(|e| e.name.as_str()).collect();
        // What the index no longer lists is forgotten: memory follows the index's limits.
        source.taken.retain(|name, _| names.contains(name.as_str()));
        source
            .failed
            .retain(|name, _| names.contains(name.as_str()));
        let by_name: HashMap<&str, &Listed> =
            listing.iter().map(|e| (e.name.as_str(), e)).collect();
        // A package with its evidence as listed now: a change to any is a change to it.
        let as_listed = |e: &Listed| -> Vec<Listed> {
            ["", ".sha256", ".minisig"]
                .iter()
                .filter_map(|suffix| by_name.get(format!("{}{suffix}", e.name).as_str()))
                .map(|&l| l.clone())
                .collect()
        };
        let now = Instant::now();
        let mut waiting = None;
        let mut fresh: Vec<&Listed> = packages(&listing, self.order(source.order))
            .into_iter()
            .filter(|e| source.taken.get(&e.name) != Some(&as_listed(e)))
            .filter(|e| match source.failed.get(&e.name) {
                Some(f) if f.retry_at > now && f.listed == as_listed(e) => {
                    waiting.get_or_insert_with(|| PullError::Waiting {
                        error: f.error.clone(),
                        retry_in: f.retry_at.duration_since(now).as_secs().max(1),
                    });
                    false
                }
                _ => true,
            })
            .collect();
        // Those that failed before go last: two that never come, ending every poll before
        // the rest, would hold back all listed after them for ever.
        fresh.sort_by_key(|e| source.failed.contains_key(&e.name));
        let mut first_error = None;
        let mut own_failures_only = true;
        let mut undelivered = 0;
        for entry in fresh {
            let Some(target) = target(&source.url, entry, &names) else {
                continue;
            };
            match self.take(&target, None, &mut source.handed).await {
                Ok(_) => {
                    undelivered = 0;
                    source.failed.remove(&entry.name);
                    source.taken.insert(entry.name.clone(), as_listed(entry));
                }
                Err(e) => {
                    tracing::warn!(package = %entry.name, error = %e, "pull: not taken");
                    self.failed(source, as_listed(entry), &e, now);
                    own_failures_only &= e.fault() == Fault::Sender;
                    // A service that stopped answering would fail the rest as slowly.
                    undelivered = if e.is_transport() { undelivered + 1 } else { 0 };
                    first_error.get_or_insert(e);
                    if undelivered == TRANSPORT_FAILURES_IN_A_ROW {
                        break;
                    }
                }
            }
        }
        source.own_failures_only = own_failures_only;
        match first_error.or(waiting) {
            // The index is remembered only once all it lists is in: a 304 must not hide a
            // package still to fetch.
            None => {
                source.validators = validators;
                Ok(())
            }
            Some(e) => Err(e),
        }
    }

    /// Says once, when a primary's feed starts listing more than can be read (`cut`: how
    /// many entries it lists), that only its first `kept` files are taken: a `warning` in the
    /// journal (`"check": "feed-listing-cut"`) and the log. Said again only after a listing
    /// that was read whole.
    fn cut(&self, source: &mut Source, cut: Option<usize>, kept: usize) {
        let was = std::mem::replace(&mut source.cut, cut.is_some());
        let Some(listed) = cut.filter(|_| !was) else {
            return;
        };
        let url = source.url.as_str();
        tracing::warn!(
            url,
            listed,
            kept,
            "the primary's feed lists more entries than a replica reads; only the first are taken"
        );
        let message = format!(
            "the primary's feed {url} lists {listed} entries, more than the \
             {MAX_INDEX_ENTRIES} a replica reads: only its first {kept} files are taken (its \
             live corte's first), the rest are left out while it lists so many; nothing \
             taken before is removed. Upgrade the primary: its feed lists at most the newest \
             packages"
        );
        self.note(
            EventKind::Warning,
            json!({"check": "feed-listing-cut", "warning": message, "url": url,
                   "listed": listed, "kept": kept}),
        );
    }

    /// Says, when they change, which entries of the index are not fetched for being no file
    /// name beside it (`ignored`: a path, `..`, an address on another server): a `warning`
    /// in the journal (`"check": "index-entries-ignored"`) and the log, naming the first few.
    /// An index read again unchanged (a service that never answers 304) costs nothing more.
    fn ignored(&self, source: &mut Source, ignored: Vec<String>) {
        if ignored == source.ignored {
            return;
        }
        source.ignored = ignored;
        let count = source.ignored.len();
        if count == 0 {
            return;
        }
        let shown: Vec<String> = source
            .ignored
            .iter()
            .take(IGNORED_SHOWN)
            .map(|name| clipped(name, 200))
            .collect();
        let url = source.url.as_str();
        tracing::warn!(
            url,
            count,
            first = ?shown,
            "index entries that are no file name are not fetched"
        );
        let message = format!(
            "the index {url} lists {count} entries that are no file name beside it (a path, \
             `..`, an address on another server, a name ending in a dot or a space or too long \
             to leave room for its evidence's), not fetched: {}; an index lists bare names \
             (`PREP_….zip`), and each is fetched from beside the index",
            shown.join(", ")
        );
        self.note(
            EventKind::Warning,
            json!({"check": "index-entries-ignored", "warning": message, "url": url,
                   "count": count, "entries": shown}),
        );
    }

    /// Notes that a package, `listed` with its evidence as the index lists them (the package
    /// first), was not taken for `error`. One that failed for itself (the institute's fault:
    /// never matching its sidecar, too large, refused by its server) is not fetched again
    /// before a wait that doubles, as a failing URL's does, from `pull_interval` to
    /// `pull_max_backoff`, unless the index lists it or its evidence changed; any other (its
    /// transfer broke, this machine failed) is fetched again at the next poll.
    fn failed(&self, source: &mut Source, listed: Vec<Listed>, error: &PullError, now: Instant) {
        let Some(name) = listed.first().map(|e| e.name.clone()) else {
            return;
        };
        let failures = match source.failed.get(&name) {
            Some(f) if f.listed == listed => f.failures + 1,
            _ => 1,
        };
        let retry_at = if error.fault() == Fault::Sender {
            now + backoff(self.settings.interval, self.settings.max_backoff, failures)
        } else {
            now
        };
        source.failed.insert(
            name,
            Failed {
                listed,
                failures,
                retry_at,
                error: error.to_string(),
            },
        );
    }

    /// Fetches a single-package address if it changed.
    pub(super) async fn poll_package(&self, source: &mut Source) -> Result<(), PullError> {
        let Some(response) = self.client.get(&source.url, &source.validators).await? else {
            return Ok(());
        };
        let url = response.url().clone();
        let name = last_segment(&url).ok_or_else(|| PullError::BadName { url: url.clone() })?;
        let with_suffix = |suffix: &str| {
            let mut u = url.clone();
            u.set_path(&format!("{}{suffix}", url.path()));
            u
        };
        let target = Target {
            name,
            sidecar: Some(with_suffix(".sha256")),
            signature: Some(with_suffix(".minisig")),
            url: url.clone(),
            adopt_name: true,
        };
        source.validators = self
            .take(&target, Some(response), &mut source.handed)
            .await?;
        Ok(())
    }

    /// Downloads a package until its bytes match its sidecar, and hands it to the publisher;
    /// `first` is an answer for the package already in hand; `handed` counts hand-overs.
    /// Returns the validators of the answer whose bytes were taken or found held already
    /// (none when they were not downloaded, their sidecar naming bytes held already).
    async fn take(
        &self,
        target: &Target,
        mut first: Option<Response>,
        handed: &mut u64,
    ) -> Result<Validators, PullError> {
        // A changed answer that carries validators (a "latest" address) is always read: its
        // validators are kept once it is taken, so a sidecar not yet updated must not stand
        // in for its bytes, in any attempt.
        let changed = first
            .as_ref()
            .is_some_and(|r| Validators::of(r.headers()).any());
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let sidecar = self.evidence(target.sidecar.as_ref()).await?;
            let (mut name, expected) =
                target.named_digest(sidecar.as_ref().and_then(EvidenceFile::text).as_deref());
            if let Some(digest) = expected
                && !changed
                && self.holds(target, digest, &name, sidecar.as_ref()).await?
            {
                tracing::debug!(package = %name, "pull: already received");
                return Ok(Validators::default());
            }
            let response = match first.take() {
                Some(r) => r,
                None => match self.client.get(&target.url, &Validators::default()).await? {
                    Some(r) => r,
                    None => return Ok(Validators::default()),
                },
            };
            let validators = Validators::of(response.headers());
            let download = self.download(response, &target.url).await?;
            let sidecar = match expected {
                Some(e) if e != download.sha256 => {
                    // Replaced while it was being downloaded? The sidecar says now.
                    let fresh = self.evidence(target.sidecar.as_ref()).await?;
                    let (fresh_name, now) =
                        target.named_digest(fresh.as_ref().and_then(EvidenceFile::text).as_deref());
                    if now != Some(download.sha256) {
                        last = Some(PullError::Mismatch {
                            name: name.to_string(),
                            got: download.sha256,
                            expected: now.unwrap_or(e),
                        });
                        continue;
                    }
                    name = fresh_name;
                    fresh
                }
                _ => sidecar,
            };
            // The same bytes under the same name again (a service that never answers 304:
            // new validators at every answer, an index whose times keep changing): already
            // taken, and handing them over would only journal them again at every poll.
            if self
                .holds(target, download.sha256, &name, sidecar.as_ref())
                .await?
            {
                tracing::debug!(package = %name, "pull: downloaded again, already received");
                return Ok(validators);
            }
            let signature = self.evidence(target.signature.as_ref()).await?;
            self.hand_over(target, name, download, sidecar, signature)
                .await?;
            *handed += 1;
            return Ok(validators);
        }
        Err(last.unwrap_or_else(|| PullError::NotTaken {
            name: target.name.to_string(),
            error: "no download matched its .sha256".to_owned(),
        }))
    }

    /// Whether the journal holds `digest` as decided under this same `name`, so that a
    /// package whose sidecar names it need not be downloaded, nor its download handed over:
    /// when it was rejected, only with the same evidence, `sidecar` and the signature of
    /// `target`, as the rejected copy keeps beside it. A package rejected for what came with
    /// it (a signature or sidecar changed on the way) is taken again with other evidence,
    /// and verified again. Read off the async threads; a journal that cannot answer means
    /// "no", and the package is fetched. One this machine failed to take is fetched again.
    async fn holds(
        &self,
        target: &Target,
        digest: Sha256,
        name: &PackageName,
        sidecar: Option<&EvidenceFile>,
    ) -> Result<bool, PullError> {
        let (journal, name) = (self.journal.clone(), name.to_string());
        let state = tokio::task::spawn_blocking(move || journal.package(digest))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .filter(|(known, _, state)| *known == name && state.is_decided())
            .map(|(_, _, state)| state);
        match state {
            None => Ok(false),
            Some(PackageState::Rejected) => {
                let signature = self.evidence(target.signature.as_ref()).await?;
                let sent = [sidecar, signature.as_ref()].map(|e| e.and_then(EvidenceFile::bytes));
                let archive = self.archive.clone();
                let kept = tokio::task::spawn_blocking(move || {
                    let path = archive.rejected_path(digest);
                    EVIDENCE_EXTENSIONS.map(|ext| archive.read_evidence(&path, ext))
                })
                .await
                .ok();
                Ok(kept.is_some_and(|kept| {
                    let kept =
                        [&kept[0], &kept[1]].map(|e| e.as_ref().and_then(EvidenceFile::bytes));
                    kept == sent
                }))
            }
            Some(_) => Ok(true),
        }
    }

    /// Gives a download to the publisher and waits for what became of it.
    async fn hand_over(
        &self,
        target: &Target,
        name: PackageName,
        download: Download,
        sidecar: Option<EvidenceFile>,
        signature: Option<EvidenceFile>,
    ) -> Result<(), PullError> {
        // Kept from here on: if this task is stopped while the publisher reads the file, the
        // file must stay; what is left in the temporary folder is cleared at the next start.
        let path = download.file.keep().map_err(|e| PullError::Io {
            dir: self.tmp_dir.clone(),
            source: e.error,
        })?;
        tracing::info!(package = %name, url = %target.url, bytes = download.len, "pulled");
        let received = Received {
            // Hashed while it was downloaded and written: the archive takes the file as it is.
            hashed: Some(Hashed {
                sha256: download.sha256,
                size: download.len,
            }),
            name: name.clone(),
            path: path.clone(),
            channel: Channel::Pull,
            origin: Some(target.url.to_string()),
            sidecar,
            signature,
            received_at: Timestamp::now(),
        };
        let outcome = self
            .publisher
            .ingest(received)
            .await
            .map_err(|_| PullError::NotTaken {
                name: name.to_string(),
                error: "the server is stopping".to_owned(),
            });
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a pulled file");
        }
        match outcome? {
            Outcome::Failed { error, .. } => Err(PullError::NotTaken {
                name: name.to_string(),
                error,
            }),
            // Published, archived, a duplicate, or refused for itself (journaled by the
            // publisher): the same bytes are not fetched again.
            _ => Ok(()),
        }
    }

    /// The text of an evidence file; `None` when there is no address or the server has none.
    async fn evidence(&self, url: Option<&Url>) -> Result<Option<EvidenceFile>, PullError> {
        let Some(url) = url else { return Ok(None) };
        let response = match self.client.get(url, &Validators::default()).await {
            Ok(r) => r,
            Err(PullError::Status {
                status: StatusCode::NOT_FOUND | StatusCode::GONE,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(response) = response else {
            return Ok(None);
        };
        let declared = response.content_length();
        match read_small(response, url, MAX_EVIDENCE_BYTES, "evidence file").await {
            Ok(bytes) => Ok(Some(EvidenceFile::of_bytes(bytes))),
            // Larger than evidence may be: not read further, and kept by its size (its
            // `Content-Length`, else the most it could be without being too large, plus one),
            // so that its package is refused for it, named and journaled, as on every channel.
            Err(PullError::TooLarge { .. }) => Ok(Some(EvidenceFile::TooLarge(
                declared.unwrap_or(0).max(MAX_EVIDENCE_BYTES + 1),
            ))),
            Err(e) => Err(e),
        }
    }

    /// A package body into a temporary file, hashed on the way.
    async fn download(&self, response: Response, url: &Url) -> Result<Download, PullError> {
        let mut body = Body::new(response, url, self.max_package_bytes, "max_package_bytes")?;
        let io = |source| PullError::Io {
            dir: self.tmp_dir.clone(),
            source,
        };
        let named = tempfile::Builder::new()
            .prefix(".pull-")
            .suffix(".part")
            .tempfile_in(&self.tmp_dir)
            .map_err(io)?;
        let (file, path) = named.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) = body.chunk().await? {
            hasher.update(&chunk);
            // Given back once the chunk is on the file: a download never takes the disk under
            // the space kept free, whatever else is written beside it.
            let _room = self.space.claim(chunk.len() as u64)?;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(Download {
            file: path,
            sha256: Sha256::from_bytes(hasher.finalize().into()),
            len: body.len(),
        })
    }
}

/// One package to fetch and where its evidence is.
pub(super) struct Target {
    pub(super) name: PackageName,
    pub(super) url: Url,
    pub(super) sidecar: Option<Url>,
    pub(super) signature: Option<Url>,
    /// Whether a sidecar naming one other file renames the package (single-package
    /// addresses; an index's names are the institute's already).
    pub(super) adopt_name: bool,
}

impl Target {
    /// The package's name and the digest its sidecar `text` gives for it.
    fn named_digest(&self, text: Option<&str>) -> (PackageName, Option<Sha256>) {
        let Some(text) = text else {
            return (self.name.clone(), None);
        };
        if let Ok(digest) = sidecar_digest(text, &self.name) {
            return (self.name.clone(), Some(digest));
        }
        match sidecar_single_entry(text) {
            Some((digest, name)) if self.adopt_name => match PackageName::new(&name) {
                Some(name) => (name, Some(digest)),
                None => (self.name.clone(), None),
            },
            _ => (self.name.clone(), None),
        }
    }
}

/// A finished download.
struct Download {
    file: tempfile::TempPath,
    sha256: Sha256,
    len: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> PackageName {
        PackageName::new(text).unwrap()
    }

    #[test]
    fn a_latest_alias_takes_the_name_its_sidecar_gives() {
        let digest = Sha256::of(b"paquete");
        let target = |adopt_name| Target {
            name: name("ultimo.zip"),
            url: Url::parse("https://a.mx/prep/ultimo.zip").unwrap(),
            sidecar: None,
            signature: None,
            adopt_name,
        };
        let real = format!("{digest}  paquetes/20270606_2000_PREP_CAMP.zip\n");
        assert_eq!(
            target(true).named_digest(Some(&real)),
            (name("20270606_2000_PREP_CAMP.zip"), Some(digest))
        );
        // An index's names stand; the sidecar then does not match and the publisher says so.
        assert_eq!(
            target(false).named_digest(Some(&real)),
            (name("ultimo.zip"), None)
        );
        // A sidecar for the alias itself, a bare digest, none, or one naming a hidden file.
        for (text, expected) in [
            (Some(format!("{digest}  ultimo.zip")), Some(digest)),
            (Some(digest.to_hex()), Some(digest)),
            (None, None),
            (Some(format!("{digest}  .oculto.zip")), None),
        ] {
            assert_eq!(
                target(true).named_digest(text.as_deref()),
                (name("ultimo.zip"), expected)
            );
        }
    }
}
